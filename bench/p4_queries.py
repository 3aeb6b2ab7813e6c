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
from bot.config import BUNDLED_CONTENT
from bot.core.content import ContentLibrary
from bot.core.messages import Inbound
from bot.core.service import StudyService
from bot.storage import SqliteStore

MEMBERS, ANSWERS = 100_000, 1_000_000


class Clock:
    def now(self) -> datetime:
        return datetime(2026, 11, 18, 12, 0, tzinfo=UTC)  # inside the generated history's last week


async def measure(samples: int = 1000) -> list[Figure]:
    source = generate(default_path(MEMBERS, ANSWERS), MEMBERS, ANSWERS)
    db = OUT / "p4-run.db"
    shutil.copyfile(source, db)  # requests may write (e.g. a renamed member); keep the cached file pristine
    store = SqliteStore(db)
    await store.start()
    service = StudyService(store, ContentLibrary.load(BUNDLED_CONTENT), Clock(), rng=random.Random(1))
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
    await store.close()
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
        Figure("P4c", "peak RSS of the bot process with the large DB", round(rss, 1), "MB", "<= 150 MB", rss <= 150),
    ]


def main() -> None:
    for f in asyncio.run(measure()):
        f.emit()


if __name__ == "__main__":
    main()
