"""P4: `/study progress` and leaderboard latency on the large database, and the process's peak RSS.

Each request goes through the whole core (`StudyService.handle`) and the real SQLite store, one at a
time, so the figure is the latency a member would see minus the platform round trip.
"""

from __future__ import annotations

import asyncio
import random
import shutil
import time
from datetime import UTC, datetime

from bench.common import OUT, Figure, peak_rss_mb, percentile
from bench.gen_db import default_path, generate
from bot.bootstrap import build_app
from bot.config import BUNDLED_CONTENT, Settings
from bot.core.messages import Inbound, followups

MEMBERS, ANSWERS = 100_000, 1_000_000


class Clock:
    def now(self) -> datetime:
        return datetime(2026, 11, 18, 12, 0, tzinfo=UTC)  # inside the generated history's last week


async def measure(samples: int = 1000) -> list[Figure]:
    source = generate(default_path(MEMBERS, ANSWERS), MEMBERS, ANSWERS)
    db = OUT / "p4-run.db"
    shutil.copyfile(source, db)  # requests may write (e.g. a renamed member); keep the cached file pristine
    # The shipped wiring (learning engine included: reviews due on progress, due cards first on quiz).
    # The progress chart is a follow-up drawn after the text has gone out, so it is timed apart (P4d).
    settings = Settings(STUDYBOT_DB=db, STUDYBOT_CONTENT=BUNDLED_CONTENT)  # type: ignore[call-arg]
    app = await build_app(settings, clock=Clock())
    service = app.service
    rng = random.Random(4)

    def ib(member: int, text: str) -> Inbound:
        return Inbound("discord", "G1", "C1", f"U{member}", f"member{member}", text)

    for m in range(1, 50):  # warm the page cache and statement cache a little
        await service.handle(ib(m, "progress"))
    progress_ms, week_ms, all_ms = [], [], []
    for _ in range(samples):
        m = rng.randint(1, MEMBERS)
        t = time.perf_counter()
        [reply] = await service.handle(ib(m, "progress"))
        progress_ms.append((time.perf_counter() - t) * 1000)
        assert "Answered" in reply.text, reply.text
    for scope, out in (("week", week_ms), ("all", all_ms)):
        for _ in range(samples // 4):
            m = rng.randint(1, MEMBERS)
            t = time.perf_counter()
            [reply] = await service.handle(ib(m, f"leaderboard {scope}"))
            out.append((time.perf_counter() - t) * 1000)
            assert "🥇" in reply.text, reply.text  # the board is not empty
    chart_ms = []
    for _ in range(20):
        m = rng.randint(1, MEMBERS)
        [reply] = await service.handle(ib(m, "progress"))
        t = time.perf_counter()
        [chart] = await followups(reply)
        chart_ms.append((time.perf_counter() - t) * 1000)
        assert chart.attachments and chart.attachments[0].data[:4] == b"\x89PNG"
    await app.close()
    db.unlink(missing_ok=True)
    p99 = percentile(progress_ms, 99)
    lb99 = max(percentile(week_ms, 99), percentile(all_ms, 99))
    rss = peak_rss_mb()
    return [
        Figure(
            "P4a",
            "/study progress p99 (100k members, 1M answers)",
            round(p99, 2),
            "ms",
            "<= 10 ms",
            p99 <= 10,
            f"p50 {percentile(progress_ms, 50):.2f} ms over {len(progress_ms)} requests",
        ),
        Figure(
            "P4b",
            "/study leaderboard p99 (week and all time)",
            round(lb99, 2),
            "ms",
            "<= 50 ms",
            lb99 <= 50,
            f"week p50 {percentile(week_ms, 50):.2f} ms, all p50 {percentile(all_ms, 50):.2f} ms",
        ),
        Figure(
            "P4c",
            "peak RSS of the bot process with the large DB",
            round(rss, 1),
            "MB",
            "<= 150 MB",
            rss <= 150,
            "the chart worker is a separate process and not counted",
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


def main() -> None:
    for f in asyncio.run(measure()):
        f.emit()


if __name__ == "__main__":
    main()
