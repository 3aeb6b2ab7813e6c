"""P4pg: `/study progress` and leaderboard latency on PostgreSQL with the large database.

The 100,000-member, 1,000,000-answer SQLite database of P4 is moved into a throwaway PostgreSQL
cluster (durable defaults) with `studybot db copy`'s own code — itself timed, as P4pg-copy — and
each request then goes through the whole core (`StudyService.handle`) and the real PostgreSQL store,
one at a time, as P4 does on SQLite.
"""

from __future__ import annotations

import asyncio
import random
import sys
import time
from datetime import UTC, datetime

from bench.common import ROOT, Figure, percentile
from bench.gen_db import default_path, generate
from bot.bootstrap import build_app
from bot.config import BUNDLED_CONTENT, Settings
from bot.core.messages import Inbound
from bot.storage.copy import copy_database

MEMBERS, ANSWERS = 100_000, 1_000_000


class Clock:
    def now(self) -> datetime:
        return datetime(2026, 11, 18, 12, 0, tzinfo=UTC)  # inside the generated history's last week


async def measure(url: str, samples: int = 1000) -> list[Figure]:
    source = generate(default_path(MEMBERS, ANSWERS), MEMBERS, ANSWERS)
    t = time.perf_counter()
    report = await copy_database(f"sqlite:///{source}", url)
    copy_s = time.perf_counter() - t
    settings = Settings(STUDYBOT_DATABASE_URL=url, STUDYBOT_CONTENT=BUNDLED_CONTENT)  # type: ignore[call-arg]
    app = await build_app(settings, clock=Clock())
    service = app.service
    rng = random.Random(4)

    def ib(member: int, text: str) -> Inbound:
        return Inbound("discord", "G1", "C1", f"U{member}", f"member{member}", text)

    for m in range(1, 50):  # warm the server's buffers and the statement cache a little
        await service.handle(ib(m, "progress"))
    progress_ms, week_ms, all_ms = [], [], []
    for _ in range(samples):
        m = rng.randint(1, MEMBERS)
        t = time.perf_counter()
        reply, *_ = await service.handle(ib(m, "progress"))  # + a once-only notice (a freeze kept a streak)
        progress_ms.append((time.perf_counter() - t) * 1000)
        assert "Answered" in reply.text, reply.text
    for scope, out in (("week", week_ms), ("all", all_ms)):
        for _ in range(samples // 4):
            m = rng.randint(1, MEMBERS)
            t = time.perf_counter()
            reply, *_ = await service.handle(ib(m, f"leaderboard {scope}"))
            out.append((time.perf_counter() - t) * 1000)
            assert "🥇" in reply.text, reply.text
    await app.close()
    p99 = percentile(progress_ms, 99)
    lb99 = max(percentile(week_ms, 99), percentile(all_ms, 99))
    return [
        Figure(
            "P4pg-copy",
            f"studybot db copy of the large database ({report.rows:,} rows) into PostgreSQL",
            round(copy_s, 1),
            "s",
            "informational",
            True,
            f"{report.rows / copy_s:,.0f} rows/s including the read-back verification of every table",
        ),
        Figure(
            "P4pg-a",
            "/study progress p99 on PostgreSQL (100k members, 1M answers)",
            round(p99, 2),
            "ms",
            "<= 10 ms",
            p99 <= 10,
            f"p50 {percentile(progress_ms, 50):.2f} ms over {len(progress_ms)} requests",
        ),
        Figure(
            "P4pg-b",
            "/study leaderboard p99 on PostgreSQL (week and all time)",
            round(lb99, 2),
            "ms",
            "<= 50 ms",
            lb99 <= 50,
            f"week p50 {percentile(week_ms, 50):.2f} ms, all p50 {percentile(all_ms, 50):.2f} ms",
        ),
    ]


def main() -> None:
    sys.path.insert(0, str(ROOT))
    from tests.pg import DURABLE, PgCluster

    with PgCluster.start(settings=DURABLE) as pg:
        figures = asyncio.run(measure(pg.create_database("p4")))
    for f in figures:
        f.emit()


if __name__ == "__main__":
    main()
