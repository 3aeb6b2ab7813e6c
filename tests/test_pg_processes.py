"""Several bot processes on one PostgreSQL database behave like one bot.

Each process caches members and posts; a change made through one process (forget-me, a zone change,
a reveal) must be seen by the others at once (LISTEN/NOTIFY, bot/storage/pg_notify.py).
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from bot.storage.pg_store import PgStore
from tests.botproc import BotProcess
from tests.pg import PgCluster

ROOT = Path(__file__).resolve().parents[1]
PACK = ROOT / "tests" / "fixtures" / "console_pack"
NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


def console_on(url: str, user: str, cwd: Path) -> BotProcess:
    """`studybot console` on a PostgreSQL database, fed line by line (the URL wins over STUDYBOT_DB)."""
    env = {"STUDYBOT_DATABASE_URL": url, "STUDYBOT_CONTENT": str(PACK), "STUDYBOT_LOG_LEVEL": "WARNING"}
    return BotProcess(cwd / "unused.db", "console", "--user", user, env=env)


@pytest.fixture
def consoles(pg_db: str, tmp_path: Path) -> Iterator[tuple[BotProcess, BotProcess]]:
    a, b = console_on(pg_db, "alice", tmp_path), console_on(pg_db, "alice", tmp_path)
    try:
        yield a, b
    finally:
        a.close()
        b.close()
    assert not [line for line in a.err + b.err if "Traceback" in line]


def test_forget_me_in_one_process_is_seen_by_the_other_at_once(consoles: tuple[BotProcess, BotProcess]) -> None:
    a, b = consoles
    a.ask("/study quiz", r"\[D\]")
    a.ask("/study answer B", r"Correct|Not quite")
    assert "Answered 1" in b.ask("/study progress", r"Answered \d"), "B sees A's answer (same database)"
    a.ask("/study forget-me confirm", r"is gone")
    # B has alice cached from its own /study progress; the very next command must not use that entry.
    after = b.ask("/study progress", r"Answered \d|went wrong|no member")
    assert "Answered 0" in after, after


def test_a_zone_change_in_one_process_is_seen_by_the_other(consoles: tuple[BotProcess, BotProcess]) -> None:
    a, b = consoles
    b.ask("/study progress", r"Answered \d")  # B caches alice (with no zone of her own)
    assert "the group's" in b.ask("/study timezone", r"Your time zone")
    a.ask("/study timezone Asia/Tokyo", r"Asia/Tokyo")
    assert "Your time zone: Asia/Tokyo" in b.ask("/study timezone", r"Your time zone")


async def test_two_stores_invalidate_each_others_caches_and_measure_it(pg_db: str) -> None:
    """The store level, with numbers: hits stay high for what does not change, and a change made
    through one store is gone from the other's cache before the writer's call returns plus delivery."""
    one, two = PgStore(pg_db), PgStore(pg_db)
    await one.start()
    await two.start()
    try:
        ref = await one.ensure_member("discord", "G", "C", "U1", "Ann", now=NOW)
        for _ in range(100):
            assert (await two.ensure_member("discord", "G", "C", "U1", "Ann", now=NOW)).member_id == ref.member_id
        assert two.cache_stats["member_hits"] == 99
        post = await one.create_post(ref.group_id, ref.channel_id, None, "question", "q1", NOW)
        assert (await two.get_post(post.id)) is not None and (await two.get_post(post.id)) is not None
        assert two.cache_stats["post_hits"] == 1
        await one.set_post_message(post.id, "M-1")
        await _until(lambda: two.cache_stats["received"] >= 1)
        assert (await two.get_post(post.id)).message_id == "M-1"  # type: ignore[union-attr]
        await one.forget_member(ref.member_id)
        await _until(lambda: two.cache_stats["received"] >= 2)
        again = await two.ensure_member("discord", "G", "C", "U1", "Ann", now=NOW)
        assert again.member_id != ref.member_id, "a forgotten member comes back as a new one"
    finally:
        await one.close()
        await two.close()


async def test_while_the_listener_is_down_the_caches_are_bypassed(pg_db: str) -> None:
    store = PgStore(pg_db)
    await store.start()
    try:
        ref = await store.ensure_member("discord", "G", "C", "U1", "Ann", now=NOW)
        admin = await asyncpg.connect(pg_db)
        try:  # kill our listening connection, as a network blip or a server restart would
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'LISTEN%' AND datname = current_database()"
            )
        finally:
            await admin.close()
        await _until(lambda: not store._bus.healthy)
        before = store.cache_stats["member_hits"]
        await store.ensure_member("discord", "G", "C", "U1", "Ann", now=NOW)
        assert store.cache_stats["member_hits"] == before, "no cached entry is trusted while deaf"
        await _until(lambda: store._bus.healthy, within=10)
        await store.ensure_member("discord", "G", "C", "U1", "Ann", now=NOW)
        await store.ensure_member("discord", "G", "C", "U1", "Ann", now=NOW)
        assert store.cache_stats["member_hits"] == before + 1, "caching resumes once listening again"
        assert (await store.member_stats(ref.member_id)).answered == 0
    finally:
        await store.close()


async def _until(done: object, within: float = 5) -> None:
    deadline = time.monotonic() + within
    while not done():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.005)


# ---------------------------------------------------------------- fan-out with several processes


async def test_three_processes_fan_out_once_even_when_one_is_killed(pg: PgCluster) -> None:
    """Three bot processes run the same fan-out at the same instant; one is SIGKILLed half-way. The two
    left finish theirs, and at their next run after the claim lease they take over the dead one's claims.
    Every channel gets its post exactly once — a post the dead process had already sent is not sent
    again (its retry carries the same Discord nonce)."""
    from bench import p3_postgres as p3
    from bot.core.delivery import CLAIM_LEASE
    from tests.fake_discord import FakeDiscord

    channels = 90
    url = pg.create_database()
    ids = await p3.prepare(url, channels)
    fake = FakeDiscord(install=False)
    fake.add_guild(p3.GUILD, "Fan-out", {cid: f"study-{i}" for i, cid in enumerate(ids)})
    await fake.start()
    procs = [p3.spawn(url, fake.rest_base, fake.gateway_url, fake.token, 15.0, f"w{i}") for i in range(3)]
    try:
        for p in procs:
            await p3.read_line(p, "READY", 120)
        for p in procs:
            p3.tell(p, f"GO {p3.AT.isoformat()}")
        victim, survivors = procs[0], procs[1:]
        await _until(lambda: len(fake.requests) > 0 and _posts(fake) >= channels // 3, within=60)
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        first = [json.loads((await p3.read_line(p, "DONE", 120))[5:]) for p in survivors]
        assert sum(d["sent"] for d in first) < channels, "the killed process had claimed some channels"
        later = p3.AT + CLAIM_LEASE + timedelta(minutes=1)
        for p in survivors:
            p3.tell(p, f"GO {later.isoformat()}")
        [json.loads((await p3.read_line(p, "DONE", 120))[5:]) for p in survivors]
    finally:
        for p in procs:
            if p.poll() is None and p.stdin is not None:
                p.stdin.close()
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        await fake.stop()
    per_channel = {cid: len(fake.channel_messages(cid)) for cid in ids}
    assert set(per_channel.values()) == {1}, {c: n for c, n in per_channel.items() if n != 1}
    conn = await asyncpg.connect(url)
    try:
        states = dict(await conn.fetch("SELECT status, count(*) FROM deliveries GROUP BY status"))
    finally:
        await conn.close()
    assert states == {"sent": channels}, states


def _posts(fake: object) -> int:
    return sum(1 for r in fake.requests if r.method == "POST" and r.path.endswith("/messages"))  # type: ignore[attr-defined]
