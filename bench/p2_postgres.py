"""P2pg: answers recorded per second on PostgreSQL when 10,000 members answer one post at once.

The same work as P2 (every answer through `StudyService.handle` and the real store, each caller
released only after its answer is committed), with the store on a throwaway PostgreSQL cluster that
keeps the server's durable defaults (fsync on, synchronous_commit on). The baseline, against the same
server in the same run: a plain asyncpg loop inserting one row per transaction — what "acknowledge
after commit" costs without group commit. Goal: at least twice that loop.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import asyncpg

from bench.common import ROOT, Figure
from bot.bootstrap import build_app
from bot.config import BUNDLED_CONTENT, Settings
from bot.core import actions
from bot.core.messages import Inbound

N = 10_000


class Clock:
    def now(self) -> datetime:
        return datetime(2026, 11, 23, 9, 5, tzinfo=UTC)


async def core_rate(url: str) -> tuple[float, int]:
    settings = Settings(STUDYBOT_DATABASE_URL=url, STUDYBOT_CONTENT=BUNDLED_CONTENT)  # type: ignore[call-arg]
    app = await build_app(settings, clock=Clock())
    store, service = app.store, app.service
    now = Clock().now()
    members = []
    for start in range(0, N, 200):  # the members joined on earlier days (set-up, not measured)
        members += await asyncio.gather(
            *(store.ensure_member("discord", "G1", "C1", f"U{i}", f"m{i}", now=now) for i in range(start, start + 200))
        )
    q = service.library.pack.questions[0]
    post = await store.create_post(members[0].group_id, members[0].channel_id, None, "question", q.id, now)
    letters = "ABCD"

    async def click(i: int) -> str:
        action = actions.answer_action(post.id, letters[i % 4])
        [reply] = await service.handle(Inbound("discord", "G1", "C1", f"U{i}", f"m{i}", action=action))
        return reply.text

    batches_before = store.batches_committed
    t = time.perf_counter()
    replies = await asyncio.gather(*(click(i) for i in range(N)))
    elapsed = time.perf_counter() - t
    batches = store.batches_committed - batches_before
    assert all(r.startswith(("✅", "❌")) for r in replies), replies[:3]
    counts = await store.choice_counts(post.id)
    assert sum(counts.values()) == N, counts
    await app.close()
    conn = await asyncpg.connect(url)
    try:
        cards = await conn.fetchval("SELECT count(*) FROM cards")
    finally:
        await conn.close()
    assert cards == N, f"{cards} review cards for {N} answers"
    return N / elapsed, batches


async def asyncpg_rate(url: str, rows: int = 2000) -> float:
    """One row per transaction, one connection, awaited in turn: the plain way to acknowledge after commit."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS plain_answers (member_id BIGINT, post_id BIGINT, choice TEXT, at TEXT,"
            " UNIQUE (member_id, post_id))"
        )
        await conn.execute("TRUNCATE plain_answers")
        t = time.perf_counter()
        for i in range(rows):
            async with conn.transaction():
                await conn.execute(
                    "INSERT INTO plain_answers VALUES ($1, 1, 'A', $2)", i, "2026-11-23T09:05:00.000000Z"
                )
        return rows / (time.perf_counter() - t)
    finally:
        await conn.close()


async def measure(pg: object) -> Figure:
    from tests.pg import PgCluster

    assert isinstance(pg, PgCluster)
    url = pg.create_database("p2")
    base = await asyncpg_rate(url)
    ours, batches = await core_rate(url)
    base2 = await asyncpg_rate(url)  # the baseline on both sides: the disk's speed drifts
    commit = await pg_setting(url, "synchronous_commit"), await pg_setting(url, "fsync")
    baseline = (base + base2) / 2
    ratio = ours / baseline
    return Figure(
        "P2pg",
        "answers/s through core+PostgreSQL vs asyncpg row-per-transaction",
        round(ratio, 2),
        "x",
        ">= 2",
        ratio >= 2,
        f"{ours:,.0f} answers/s ({N:,} at once, {batches} group commits) vs {baseline:,.0f} rows/s plain asyncpg "
        f"loop; same server, synchronous_commit={commit[0]}, fsync={commit[1]}",
    )


async def pg_setting(url: str, name: str) -> str:
    conn = await asyncpg.connect(url)
    try:
        return str(await conn.fetchval(f"SHOW {name}"))
    finally:
        await conn.close()


def main() -> None:
    import sys

    sys.path.insert(0, str(ROOT))
    from tests.pg import DURABLE, PgCluster

    with PgCluster.start(settings=DURABLE) as pg:
        figure = asyncio.run(measure(pg))
    figure.emit()


if __name__ == "__main__":
    main()
