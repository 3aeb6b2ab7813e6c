"""Discord sharding through the real discord.py `AutoShardedClient` against the loopback fake: the shard
settings, one process running several shards, and two bot processes splitting the guilds over one database."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bot.adapters.discord_adapter import DiscordFrontEnd, DiscordStartError
from bot.config import SettingsError, load_settings
from bot.core.service import StudyService
from tests.botproc import PACK, ROOT, BotProcess
from tests.fake_discord import FakeDiscord, FakeUser, Recorded, shard_of

ALICE = FakeUser(830000000000000001, "alice")
#: Two guilds that Discord puts on different shards of two: (id >> 22) % 2 is 0 and 1.
GUILD_0 = 810000000000000001
GUILD_1 = 811000000000000001
CHANNEL_1 = 821000000000000001


def test_the_test_guilds_sit_on_different_shards() -> None:
    assert (shard_of(GUILD_0, 2), shard_of(GUILD_1, 2)) == (0, 1)


# ---------------------------------------------------------------------------------------------- settings


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"STUDYBOT_DISCORD_SHARDS": "0"},
            'STUDYBOT_DISCORD_SHARDS: must be a whole number of shards (1 or more) or "auto"',
        ),
        ({"STUDYBOT_DISCORD_SHARDS": "two"}, "STUDYBOT_DISCORD_SHARDS: must be a whole number"),
        ({"STUDYBOT_DISCORD_SHARD_IDS": "0"}, "STUDYBOT_DISCORD_SHARD_IDS: needs STUDYBOT_DISCORD_SHARDS set"),
        (
            {"STUDYBOT_DISCORD_SHARDS": "2", "STUDYBOT_DISCORD_SHARD_IDS": "0,2"},
            "STUDYBOT_DISCORD_SHARD_IDS: shard 2 does not exist with STUDYBOT_DISCORD_SHARDS=2 (ids run 0 to 1)",
        ),
        ({"STUDYBOT_DISCORD_SHARDS": "auto", "STUDYBOT_DISCORD_SHARD_IDS": "1"}, "(a number, not auto)"),
        ({"STUDYBOT_DISCORD_SHARDS": "4", "STUDYBOT_DISCORD_SHARD_IDS": "1;2"}, "must be shard numbers separated"),
        ({"STUDYBOT_DISCORD_SHARDS": "4", "STUDYBOT_DISCORD_SHARD_IDS": "3,3"}, "lists a shard twice"),
    ],
)
def test_bad_shard_settings_are_one_line_errors(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as err:
        load_settings(**env)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_shard_settings_are_read() -> None:
    s = load_settings(STUDYBOT_DISCORD_SHARDS=" 4 ", STUDYBOT_DISCORD_SHARD_IDS="3, 1")
    assert (s.discord_shards, s.discord_shard_id_list) == (4, [1, 3])
    auto = load_settings(STUDYBOT_DISCORD_SHARDS="AUTO")
    assert (auto.discord_shards, auto.discord_shard_id_list) == ("auto", None)
    assert load_settings().discord_shards is None


def test_studybot_run_refuses_a_shard_outside_the_count_before_connecting(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STUDYBOT_", "DISCORD_", "SLACK_"))}
    env |= {"DISCORD_TOKEN": "x" * 30, "STUDYBOT_DISCORD_SHARDS": "2", "STUDYBOT_DISCORD_SHARD_IDS": "2"}
    env |= {"STUDYBOT_DB": str(tmp_path / "s.db"), "STUDYBOT_CONTENT": str(PACK)}
    done = subprocess.run(
        [sys.executable, "-m", "bot", "run"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "studybot: STUDYBOT_DISCORD_SHARD_IDS: shard 2 does not exist with STUDYBOT_DISCORD_SHARDS=2 "
        "(ids run 0 to 1) (got '2')"
    ]
    assert not (tmp_path / "s.db").exists()


# ---------------------------------------------------------------------------------------------- one process


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as f:
        f.add_guild(GUILD_1, "Night Owls", {CHANNEL_1: "general"})
        yield f


async def start(service: StudyService, fake: FakeDiscord, **kw: Any) -> tuple[DiscordFrontEnd, asyncio.Task[None]]:
    fe = DiscordFrontEnd(service, fake.token, guild_ready_timeout=0.05, **kw)
    task = asyncio.create_task(fe.run())
    ready = asyncio.create_task(fe.ready.wait())
    await asyncio.wait({task, ready}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        ready.cancel()
        task.result()
    assert fe.ready.is_set()
    return fe, task


async def stop(fe: DiscordFrontEnd, task: asyncio.Task[None]) -> None:
    await fe.close()
    await asyncio.wait_for(task, 5)


async def quiz_reply(fake: FakeDiscord, guild: int) -> Recorded:
    return await fake.callback(await fake.dispatch_interaction(fake.slash("quiz", user=ALICE, guild_id=guild)))


async def test_one_process_runs_both_shards_and_each_guild_arrives_on_its_own_shard(
    service: StudyService, fake: FakeDiscord
) -> None:
    fe, task = await start(service, fake, shard_count=2, identify_delay=0.05)
    try:
        assert sorted(tuple(i["shard"]) for i in fake.identifies) == [(0, 2), (1, 2)]
        assert {s.shard: [g for _, g in s.received] for s in fake.sessions} == {(0, 2): [GUILD_0], (1, 2): [GUILD_1]}
        assert {g.id for g in fe.client.guilds} == {GUILD_0, GUILD_1}
        for guild in (GUILD_0, GUILD_1):
            cb = await quiz_reply(fake, guild)
            assert cb.json["type"] == 4 and "sb:ans:" in str(cb.json["data"]["components"])
            [session] = fake.sessions_that_got("INTERACTION_CREATE", guild)
            assert session.shard == (shard_of(guild, 2), 2)
        assert fe.shard_note() == " on shard(s) 0, 1 of 2"
        assert [c["name"] for c in fake.commands[None]] == ["study", "study-admin"]
    finally:
        await stop(fe, task)


async def test_auto_asks_discord_for_the_shard_count(service: StudyService, fake: FakeDiscord) -> None:
    fake.recommended_shards = 2
    fe, task = await start(service, fake, shard_count="auto", identify_delay=0.05)
    try:
        assert sorted(tuple(i["shard"]) for i in fake.identifies) == [(0, 2), (1, 2)]
        assert fake.find("GET", "/gateway/bot") and fe.client.shard_count == 2
    finally:
        await stop(fe, task)


@pytest.mark.parametrize(("max_concurrency", "apart"), [(1, True), (2, False)])
async def test_shards_of_one_rate_limit_bucket_identify_a_window_apart(
    service: StudyService, fake: FakeDiscord, max_concurrency: int, apart: bool
) -> None:
    """Discord takes one IDENTIFY per 5 s per bucket (shard id % max_concurrency); here the window is 2 s,
    wide enough that two shards of different buckets (no wait) never look "apart" on a loaded machine."""
    fake.max_concurrency = max_concurrency
    fe, task = await start(service, fake, shard_count=2, identify_delay=2.0)
    try:
        first, second = sorted(s.identified_at for s in fake.sessions)
        assert (second - first >= 2.0) is apart
    finally:
        await stop(fe, task)


async def test_too_few_session_starts_left_stops_start_up_with_a_clear_error(
    service: StudyService, fake: FakeDiscord
) -> None:
    fake.session_starts_left = 1
    fe = DiscordFrontEnd(service, fake.token, guild_ready_timeout=0.05, shard_count=2, identify_delay=0.05)
    with pytest.raises(DiscordStartError) as err:
        await asyncio.wait_for(fe.run(), 10)
    assert "allows 1 more gateway session start(s)" in str(err.value) and "needs 2" in str(err.value)
    assert fake.identifies == []
    await fe.close()


async def test_only_the_process_with_shard_0_registers_the_commands(service: StudyService, fake: FakeDiscord) -> None:
    fe, task = await start(service, fake, shard_count=2, shard_ids=[1])
    try:
        assert [tuple(i["shard"]) for i in fake.identifies] == [(1, 2)]
        assert fake.commands == {} and not fake.find("PUT", r"/applications/\d+/commands")
        assert [g.id for g in fe.client.guilds] == [GUILD_1]
    finally:
        await stop(fe, task)


# ---------------------------------------------------------------------------------------------- two processes


def pid_of_connection(local_port: int, pids: list[int]) -> int | None:
    """Which of ``pids`` holds the TCP socket whose local port is ``local_port`` (Linux /proc)."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == local_port:
                    inodes.add(fields[9])
    for pid in pids:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:[") and link[8:-1] in inodes:
                return pid
    return None


@dataclass
class SharedDatabase:
    """The database several bot processes share: the settings that name it, and a reader for its rows."""

    env: dict[str, str]
    rows: Callable[[str], Awaitable[list[tuple[Any, ...]]]]


@pytest.fixture(params=["sqlite", "postgres"])
def shared_database(request: pytest.FixtureRequest, tmp_path: Path) -> SharedDatabase:
    """One SQLite file, or one database on the test PostgreSQL server (see tests/pg.py)."""
    if request.param == "sqlite":
        path = tmp_path / "study.db"

        async def sqlite_rows(sql: str) -> list[tuple[Any, ...]]:
            with sqlite3.connect(path) as conn:
                return [tuple(r) for r in conn.execute(sql).fetchall()]

        return SharedDatabase({"STUDYBOT_DB": str(path)}, sqlite_rows)
    url: str = request.getfixturevalue("pg_db")

    async def pg_rows(sql: str) -> list[tuple[Any, ...]]:
        import asyncpg

        conn = await asyncpg.connect(url)
        try:
            return [tuple(r) for r in await conn.fetch(sql)]
        finally:
            await conn.close()

    return SharedDatabase({"STUDYBOT_DATABASE_URL": url}, pg_rows)


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux /proc to tell the processes apart")
async def test_two_processes_split_the_guilds_by_shard_over_one_database(
    tmp_path: Path, shared_database: SharedDatabase
) -> None:
    """Shards 0 and 1 of 2 in two `studybot run` processes: each guild's interactions reach and are answered
    by the process that runs its shard, and both write one database (SQLite or PostgreSQL) without
    duplicate rows."""
    db = tmp_path / "study.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STUDYBOT_", "DISCORD_", "SLACK_"))}
    env |= {"STUDYBOT_DB": str(db), "STUDYBOT_CONTENT": str(PACK), "PYTHONPATH": str(ROOT)}
    env |= shared_database.env
    # Migrate once first, as a deployment does before starting several processes.
    migrate = [sys.executable, "-m", "bot", "db", "migrate"]
    await asyncio.to_thread(subprocess.run, migrate, env=env, cwd=tmp_path, check=True, timeout=60)
    async with FakeDiscord(install=False) as fake:
        fake.add_guild(GUILD_1, "Night Owls", {CHANNEL_1: "general"})
        procs = {
            shard: BotProcess(
                db,
                fake.rest_base,
                fake.gateway_url,
                "run",
                module="tests.discord_proc",
                env=shared_database.env
                | {
                    "DISCORD_TOKEN": fake.token,
                    "STUDYBOT_DISCORD_SHARDS": "2",
                    "STUDYBOT_DISCORD_SHARD_IDS": str(shard),
                },
            )
            for shard in (0, 1)
        }
        try:
            for p in procs.values():
                await asyncio.to_thread(p.wait_until, lambda p=p: any("Discord: connected" in ln for ln in p.err))
            pids = [p.proc.pid for p in procs.values()]
            owner = {shard: procs[shard].proc.pid for shard in procs}
            assert sorted(tuple(i["shard"]) for i in fake.identifies) == [(0, 2), (1, 2)]
            for s in fake.sessions:  # each process opened the session of its own shard
                assert pid_of_connection(s.peer[1], pids) == owner[s.shard[0]]

            for guild, shard in ((GUILD_0, 0), (GUILD_1, 1)):
                cb = await quiz_reply(fake, guild)
                assert pid_of_connection(cb.peer[1], pids) == owner[shard], "answered by the wrong process"
                question = fake.message_of(cb)
                letter = next(c["custom_id"] for r in question["components"] for c in r["components"])
                click = await fake.dispatch_interaction(fake.click(letter, question, user=ALICE))
                answered = await fake.callback(click)
                assert pid_of_connection(answered.peer[1], pids) == owner[shard]
                assert "Correct" in answered.json["data"]["content"] or "Not quite" in answered.json["data"]["content"]
                assert [s.shard for s in fake.sessions_that_got("INTERACTION_CREATE", guild)] == [(shard, 2)]
            # only the shard-0 process registered the commands
            assert len(fake.find("PUT", r"/applications/\d+/commands")) == 1
        finally:
            for p in procs.values():
                p.proc.terminate()
            for p in procs.values():
                assert await asyncio.to_thread(p.wait) == 0, p.err[-5:]

    rows = shared_database.rows
    groups = await rows("SELECT external_id FROM groups WHERE platform = 'discord' ORDER BY external_id")
    assert groups == [(str(GUILD_0),), (str(GUILD_1),)]
    members = await rows("SELECT g.external_id, m.user_id FROM members m JOIN groups g ON g.id = m.group_id")
    assert sorted(members) == sorted([(str(GUILD_0), str(ALICE.id)), (str(GUILD_1), str(ALICE.id))])
    assert await rows("SELECT COUNT(*), COUNT(DISTINCT member_id) FROM answers") == [(2, 2)]
    assert await rows("SELECT COUNT(*) FROM posts") == [(2,)]
