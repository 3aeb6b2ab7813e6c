"""P4: `/study progress`, leaderboard and review latency on the large database, and the bot's peak RSS.

The database (`bench.gen_db`: 100,000 members, 1,000,000 answers and a review card for every member
and question answered) is built by its own process and cached, so this process is the bot alone and
its peak RSS is the bot's. Each request goes through the whole core (`StudyService.handle`) and the
real SQLite store, one at a time, so the figure is the latency a member would see minus the platform
round trip. `/study review` deals a due card when there is one, which writes its post.
"""

from __future__ import annotations

import asyncio
import gc
import random
import shutil
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.common import OUT, Figure, peak_rss_mb, percentile
from bench.gen_db import ensure
from bot.bootstrap import build_app
from bot.config import BUNDLED_CONTENT, Settings
from bot.core.chart import ChartRenderer
from bot.core.messages import Inbound, Reply, followups
from bot.core.service import StudyService

MEMBERS, ANSWERS = 100_000, 1_000_000


class Clock:
    def now(self) -> datetime:
        return datetime(2026, 11, 18, 12, 0, tzinfo=UTC)  # inside the generated history's last week


async def measure(samples: int = 1000) -> list[Figure]:
    source = ensure(MEMBERS, ANSWERS)
    db = OUT / "p4-run.db"
    shutil.copyfile(source, db)  # requests may write (e.g. a renamed member); keep the cached file pristine
    # The shipped wiring (learning engine included: reviews due on progress, due cards first on quiz).
    # The progress chart is a follow-up drawn after the text has gone out, so it is timed apart (P4d).
    settings = Settings(STUDYBOT_DB=db, STUDYBOT_CONTENT=BUNDLED_CONTENT)  # type: ignore[call-arg]
    app = await build_app(settings, clock=Clock())
    try:
        service = app.service
        rng = random.Random(4)

        def ib(member: int, text: str) -> Inbound:
            return Inbound("discord", "G1", "C1", f"U{member}", f"member{member}", text)

        for m in range(1, 50):  # warm the page cache and statement cache a little
            await service.handle(ib(m, "progress"))
        # As `bot.bootstrap.serve` does once the bot is up: what start-up loaded is out of the collector's
        # reach, so a full collection does not walk it in the middle of the measured requests.
        gc.collect()
        gc.freeze()
        full_collections = gc.get_stats()[2]["collections"]
        progress_ms, week_ms, all_ms = [], [], []
        with_notice = 0
        for _ in range(samples):
            m = rng.randint(1, MEMBERS)
            t = time.perf_counter()
            reply, *notices = await service.handle(ib(m, "progress"))  # + a once-only notice, if any
            progress_ms.append((time.perf_counter() - t) * 1000)
            with_notice += bool(notices)
            assert "Answered" in reply.text, reply.text
        for scope, out in (("week", week_ms), ("all", all_ms)):
            for _ in range(samples // 4):
                m = rng.randint(1, MEMBERS)
                t = time.perf_counter()
                reply, *_ = await service.handle(ib(m, f"leaderboard {scope}"))
                out.append((time.perf_counter() - t) * 1000)
                assert "🥇" in reply.text, reply.text  # the board is not empty
        review_ms = []
        dealt = 0
        for _ in range(samples):
            m = rng.randint(1, MEMBERS)
            t = time.perf_counter()
            reply, *_ = await service.handle(ib(m, "review"))
            review_ms.append((time.perf_counter() - t) * 1000)
            assert reply.text.startswith(("**Review", "No reviews due")), reply.text
            dealt += reply.text.startswith("**Review")
        chart_ms = []
        for _ in range(20):
            m = rng.randint(1, MEMBERS)
            reply, *_ = await service.handle(ib(m, "progress"))
            t = time.perf_counter()
            [chart] = await followups(reply)
            chart_ms.append((time.perf_counter() - t) * 1000)
            assert chart.attachments and chart.attachments[0].data[:4] == b"\x89PNG"
        full_collections = gc.get_stats()[2]["collections"] - full_collections
        # P4f: 25 members ask at once; their charts with the shipped renderer, then with one worker alone
        # (each with one worker warm, as a running bot's is).
        engine = app.service.progress_attachments[0].__self__  # type: ignore[attr-defined]
        burst: dict[str, list[float]] = {}
        for label, renderer in (("shipped", engine.renderer), ("one worker", ChartRenderer(workers=1))):
            shipped, engine.renderer = engine.renderer, renderer
            try:
                await chart_burst(service, [ib(rng.randint(1, MEMBERS), "progress")])  # its first worker warm
                burst[label] = await chart_burst(service, [ib(rng.randint(1, MEMBERS), "progress") for _ in range(25)])
            finally:
                engine.renderer = shipped
                if renderer is not shipped:
                    await renderer.close()
        workers = len(engine.renderer.processes)
    finally:  # an error must not leave the database thread (not a daemon) holding the process open
        await app.close()
    gc.unfreeze()
    db.unlink(missing_ok=True)
    p99 = percentile(progress_ms, 99)
    lb99 = max(percentile(week_ms, 99), percentile(all_ms, 99))
    rv99 = percentile(review_ms, 99)
    rss = peak_rss_mb()
    (cards,) = await _count(source, "cards")
    return [
        Figure(
            "P4a",
            "/study progress p99 (100k members, 1M answers, review cards)",
            round(p99, 2),
            "ms",
            "<= 5 ms",
            p99 <= 5,
            f"p50 {percentile(progress_ms, 50):.2f} ms over {len(progress_ms)} requests; {cards:,} review cards;"
            f" {full_collections} full garbage collections during the requests; {with_notice} also said a"
            " once-only notice (a freeze kept the member's streak)",
        ),
        Figure(
            "P4b",
            "/study leaderboard p99 (week and all time)",
            round(lb99, 2),
            "ms",
            "<= 5 ms",
            lb99 <= 5,
            f"week p50 {percentile(week_ms, 50):.2f} ms, all p50 {percentile(all_ms, 50):.2f} ms, {len(week_ms)} each",
        ),
        Figure(
            "P4e",
            "/study review p99",
            round(rv99, 2),
            "ms",
            "<= 5 ms",
            rv99 <= 5,
            f"p50 {percentile(review_ms, 50):.2f} ms over {len(review_ms)} requests, {dealt} of them dealt a due "
            "card (a post written)",
        ),
        Figure(
            "P4c",
            "peak RSS of the bot process with the large DB",
            round(rss, 1),
            "MB",
            "<= 150 MB",
            rss <= 150,
            "this process only: the database is generated by another process, and the chart workers are"
            " separate processes (not counted)",
        ),
        Figure(
            "P4f",
            "25 members ask /study progress at once: the last chart back",
            round(burst["shipped"][-1]),
            "ms",
            "informational",
            True,
            f"{workers} worker processes (STUDYBOT_CHART_WORKERS, bounded by the cores): first"
            f" {burst['shipped'][0]:.0f} ms, median {percentile(burst['shipped'], 50):.0f} ms; with one worker in"
            f" the same run: first {burst['one worker'][0]:.0f}, median {percentile(burst['one worker'], 50):.0f},"
            f" last {burst['one worker'][-1]:.0f} ms (texts answered first; times from when all 25 had their text)",
        ),
        Figure(
            "P4d",
            "progress chart, drawn after the text (median)",
            round(percentile(chart_ms, 50), 1),
            "ms",
            "informational",
            True,
            f"p99 {percentile(chart_ms, 99):.0f} ms over {len(chart_ms)}; a follow-up message",
        ),
    ]


async def chart_burst(service: StudyService, asks: list[Inbound]) -> list[float]:
    """Ms from when every ask has its text reply until each chart is back, sorted."""
    replies = [(await service.handle(ask))[0] for ask in asks]
    t = time.perf_counter()

    async def chart(reply: Reply) -> float:
        [drawn] = await followups(reply)
        assert drawn.attachments and drawn.attachments[0].data[:4] == b"\x89PNG"
        return (time.perf_counter() - t) * 1000

    return sorted(await asyncio.gather(*(chart(r) for r in replies)))


async def _count(db: Path, table: str) -> tuple[int]:
    def count() -> tuple[int]:
        conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
        try:
            return conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()  # type: ignore[no-any-return]
        finally:
            conn.close()

    return await asyncio.to_thread(count)


def main() -> None:
    for f in asyncio.run(measure()):
        f.emit()


if __name__ == "__main__":
    main()
