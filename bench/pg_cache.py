"""Cpg: what the member and post caches are worth on PostgreSQL, and what keeping them true costs.

Two `PgStore`s on one throwaway cluster stand for two bot processes. Measured:
- the lookup every command and click makes (`ensure_member`, `get_post`) with the caches, and with
  them bypassed (as a process does while its invalidation connection is down);
- the hit rate over a realistic mix: 1,000 members each sending 10 commands, with one forget-me or
  zone change per 100 commands made through the *other* store;
- the latency of an invalidation: NOTIFY until the writer's own message comes back (the writer waits
  for that before answering its member).
"""

from __future__ import annotations

import asyncio
import random
import sys
import time
from datetime import UTC, datetime

from bench.common import ROOT, Figure, percentile

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


async def measure(url: str) -> list[Figure]:
    from bot.storage.pg_store import PgStore

    one, two = PgStore(url), PgStore(url)
    await one.start()
    await two.start()
    try:
        refs = [await one.ensure_member("discord", "G", "C", f"U{i}", f"m{i}", now=NOW) for i in range(1000)]
        post = await one.create_post(refs[0].group_id, refs[0].channel_id, None, "question", "q1", NOW)

        async def lookups(store: PgStore, n: int) -> list[float]:
            out = []
            for i in range(n):
                t = time.perf_counter()
                await store.ensure_member("discord", "G", "C", f"U{i % 1000}", f"m{i % 1000}", now=NOW)
                await store.get_post(post.id)
                out.append((time.perf_counter() - t) * 1000)
            return out

        await lookups(two, 1000)  # warm
        cached = await lookups(two, 3000)
        two._bus._healthy = False  # bypass the caches, as while deaf
        uncached = await lookups(two, 3000)
        two._bus._healthy = True
        # The mix: 10,000 commands in `two`; every 100th, a change through `one`.
        rng = random.Random(14)
        before = dict(two.cache_stats)
        for i in range(10_000):
            if i % 100 == 99:
                victim = rng.randrange(1000)
                if i % 200 == 199:
                    await one.set_member_tz(refs[victim].member_id, "Asia/Tokyo")
                else:
                    await one.forget_member(refs[victim].member_id)
            u = rng.randrange(1000)
            await two.ensure_member("discord", "G", "C", f"U{u}", f"m{u}", now=NOW)
        after = two.cache_stats
        hits = after["member_hits"] - before["member_hits"]
        misses = after["member_misses"] - before["member_misses"]
        echo_ms = [s * 1000 for s in one._bus.echo_seconds]
    finally:
        await one.close()
        await two.close()
    rate = hits / (hits + misses)
    return [
        Figure(
            "Cpg-a",
            "member+post lookup on PostgreSQL, cached vs caches bypassed (p50)",
            round(percentile(cached, 50), 3),
            "ms",
            "informational",
            True,
            f"bypassed p50 {percentile(uncached, 50):.3f} ms, p99 {percentile(uncached, 99):.3f} ms; "
            f"cached p99 {percentile(cached, 99):.3f} ms",
        ),
        Figure(
            "Cpg-b",
            "member cache hit rate, 10,000 commands with a change from another process every 100",
            round(100 * rate, 1),
            "%",
            "informational",
            True,
            f"{hits:,} hits, {misses:,} misses, {after['received'] - before['received']} invalidations received",
        ),
        Figure(
            "Cpg-c",
            "invalidation: NOTIFY until it is back on the writer's listener (p50)",
            round(percentile(echo_ms, 50), 2),
            "ms",
            "informational",
            True,
            f"p99 {percentile(echo_ms, 99):.2f} ms over {len(echo_ms)} changes; the writer answers after it",
        ),
    ]


def main() -> None:
    sys.path.insert(0, str(ROOT))
    from tests.pg import DURABLE, PgCluster

    with PgCluster.start(settings=DURABLE) as pg:
        figures = asyncio.run(measure(pg.create_database("cache")))
    for f in figures:
        f.emit()


if __name__ == "__main__":
    main()
