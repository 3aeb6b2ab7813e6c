"""The PostgreSQL side of the storage contract: one store per dialect with the same methods, twin
migrations with the same schema, the migration runner on PostgreSQL (advisory lock, refusal of a newer
schema, rollback), exactly-once claims across two stores, `STUDYBOT_DATABASE_URL` and its errors.

The behaviour of every port method is specified once, in the tests that take the `store` fixture
(`tests/conftest.py` runs each on SQLite and on PostgreSQL)."""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from bot.config import Settings, SettingsError, load_settings
from bot.core.dashboard import DashboardStore
from bot.core.decks import DeckStore
from bot.core.learning import LearningPort
from bot.core.native import NativeStore
from bot.core.ports import InstallStore, ScheduleStore, SchemaTooNew, Store, StoreError
from bot.core.practice import PracticePort
from bot.core.reminders import ReminderStore
from bot.core.suggestions import SuggestionStore
from bot.storage import ManagedStore, SqliteStore, installs_for, open_storage, schedules_for, sql
from bot.storage.dashboard_store import PgDashboardStore, SqliteDashboardStore
from bot.storage.deck_store import SqliteDeckStore
from bot.storage.dialect import NAME_EQUALS, pg
from bot.storage.install_store import SqliteInstallStore
from bot.storage.learning_store import LearningStore
from bot.storage.migrations import DEFAULT_ROOT, discover, folder_for, migrate
from bot.storage.native_store import PgNativeStore, SqliteNativeStore
from bot.storage.pg_deck_store import PgDeckStore
from bot.storage.pg_store import PgInstallStore, PgLearningStore, PgScheduleStore, PgStore
from bot.storage.practice_store import PgPracticeStore, SqlitePracticeStore
from bot.storage.reminder_store import PgReminderStore, SqliteReminderStore
from bot.storage.schedule_store import SqliteScheduleStore
from bot.storage.suggestion_store import PgSuggestionStore, SqliteSuggestionStore
from tests.pg import PgCluster, free_port

ROOT = Path(__file__).resolve().parents[1]
T = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)

#: What one store has that the other cannot: where its database is (a file and its fsync setting, or a
#: server URL and a pool size), and SQLite's other modules running functions on its thread.
SQLITE_ONLY = {"run_sync", "path", "synchronous"}
POSTGRES_ONLY = {"url", "pool_size"}


def public(cls: type) -> set[str]:
    """Public names of ``cls`` and of an instance (attributes set in ``__init__`` count too; building
    a store does no I/O)."""
    if cls is SqliteStore:
        instance: object = SqliteStore(":memory:")
    elif cls is PgStore:
        instance = PgStore("postgresql://u@127.0.0.1:1/db")
    elif cls in (
        SqliteScheduleStore,
        LearningStore,
        SqliteInstallStore,
        SqliteDeckStore,
        SqliteReminderStore,
        SqlitePracticeStore,
        SqliteNativeStore,
        SqliteSuggestionStore,
        SqliteDashboardStore,
    ):
        instance = cls(SqliteStore(":memory:"))
    else:
        instance = cls(PgStore("postgresql://u@127.0.0.1:1/db"))
    return {name for name in dir(instance) if not name.startswith("_")}


def port_members(protocol: type) -> set[str]:
    return {name for name, _ in inspect.getmembers(protocol) if not name.startswith("_")}


# ---------------------------------------------------------------------- one contract, two stores


@pytest.mark.parametrize(
    ("sqlite_cls", "pg_cls", "port"),
    [(SqliteStore, PgStore, Store), (SqliteScheduleStore, PgScheduleStore, ScheduleStore),
     (LearningStore, PgLearningStore, LearningPort), (SqliteInstallStore, PgInstallStore, InstallStore),
     (SqliteDeckStore, PgDeckStore, DeckStore), (SqliteReminderStore, PgReminderStore, ReminderStore),
     (SqlitePracticeStore, PgPracticeStore, PracticePort),
     (SqliteNativeStore, PgNativeStore, NativeStore),
     (SqliteSuggestionStore, PgSuggestionStore, SuggestionStore),
     (SqliteDashboardStore, PgDashboardStore, DashboardStore)],
)  # fmt: skip
def test_every_store_method_exists_on_both_stores(sqlite_cls: type, pg_cls: type, port: type) -> None:
    only_sqlite = public(sqlite_cls) - public(pg_cls) - SQLITE_ONLY
    only_pg = public(pg_cls) - public(sqlite_cls) - POSTGRES_ONLY
    assert not only_sqlite, f"{sorted(only_sqlite)} exist on {sqlite_cls.__name__} only: add them to {pg_cls.__name__}"
    assert not only_pg, f"{sorted(only_pg)} exist on {pg_cls.__name__} only: add them to {sqlite_cls.__name__}"
    for cls in (sqlite_cls, pg_cls):
        missing = port_members(port) - public(cls)
        assert not missing, f"{cls.__name__} lacks {sorted(missing)} of {port.__name__}"
        for name in port_members(port):
            assert inspect.iscoroutinefunction(getattr(cls, name)), f"{cls.__name__}.{name} must be async"
            ours = list(inspect.signature(getattr(cls, name)).parameters)
            assert ours == list(inspect.signature(getattr(port, name)).parameters), f"{cls.__name__}.{name}"


def test_every_migration_has_a_postgres_twin() -> None:
    sqlite_names = [m.name for m in discover(folder_for(DEFAULT_ROOT, "sqlite"))]
    pg_names = [m.name for m in discover(folder_for(DEFAULT_ROOT, "postgres"))]
    assert pg_names == sqlite_names, "migrations/sqlite and migrations/postgres need the same files, same numbers"


async def test_both_schemas_have_the_same_tables_columns_and_indexes(tmp_path: Path, pg_db: str) -> None:
    conn = sqlite3.connect(tmp_path / "s.db", isolation_level=None)
    migrate(conn)
    lite_tables = [t for (t,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    lite = {
        t: {c[1] for c in conn.execute(f"PRAGMA table_info({t})")}
        for t in lite_tables
        if t != "sqlite_sequence"  # AUTOINCREMENT's bookkeeping
    }
    lite_indexes = {
        i for (i,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")
    }
    conn.close()
    store = PgStore(pg_db)
    await store.start()
    await store.close()
    pgconn = await asyncpg.connect(pg_db)
    try:
        cols = await pgconn.fetch(
            "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'public'"
        )
        idx = await pgconn.fetch("SELECT indexname FROM pg_indexes WHERE schemaname = 'public'")
    finally:
        await pgconn.close()
    pg: dict[str, set[str]] = {}
    for table, column in cols:
        pg.setdefault(table, set()).add(column)
    assert pg == lite
    # Keys and UNIQUE constraints name their own indexes (…_pkey, …_key); the declared ones must match.
    assert {i for (i,) in idx if not i.endswith(("_pkey", "_key"))} == lite_indexes


# ---------------------------------------------------------------------- migrations on PostgreSQL


async def test_postgres_migrations_apply_once_and_refuse_a_newer_schema(pg_db: str) -> None:
    names = [m.name for m in discover(folder_for(DEFAULT_ROOT, "postgres"))]
    first = PgStore(pg_db)
    assert await first.start() == names
    await first.close()
    again = PgStore(pg_db)
    assert await again.start() == [], "a second start applies nothing"
    await again.close()
    conn = await asyncpg.connect(pg_db)
    await conn.execute("INSERT INTO schema_migrations VALUES (999, '0999_future', 'x')")
    await conn.close()
    with pytest.raises(SchemaTooNew, match="schema version 999"):
        await PgStore(pg_db).start()


async def test_two_processes_starting_together_migrate_once(pg_db: str) -> None:
    """The advisory lock: both wait their turn; the second finds nothing to do (no duplicate-table error)."""
    stores = [PgStore(pg_db), PgStore(pg_db), PgStore(pg_db)]
    results = await asyncio.gather(*(s.start() for s in stores))
    for s in stores:
        await s.close()
    names = [m.name for m in discover(folder_for(DEFAULT_ROOT, "postgres"))]
    assert sorted(results, key=len) == [[], [], names]
    conn = await asyncpg.connect(pg_db)
    try:
        assert await conn.fetchval("SELECT COUNT(*) FROM schema_migrations") == len(names)
    finally:
        await conn.close()


async def test_a_failed_postgres_migration_rolls_back_and_is_not_recorded(pg_db: str, tmp_path: Path) -> None:
    folder = tmp_path / "postgres"
    folder.mkdir()
    (folder / "0001_a.sql").write_text("CREATE TABLE a (id BIGINT PRIMARY KEY);\n")
    (folder / "0002_b.sql").write_text("CREATE TABLE b (id BIGINT PRIMARY KEY);\nCREATE TABLE a (oops INT);\n")
    store = PgStore(pg_db, migrations_dir=folder)
    with pytest.raises(StoreError, match="0002_b failed and was rolled back"):
        await store.start()
    conn = await asyncpg.connect(pg_db)
    try:
        assert await conn.fetchval("SELECT MAX(version) FROM schema_migrations") == 1
        assert await conn.fetchval("SELECT to_regclass('b')") is None, "0002's first statement was undone too"
    finally:
        await conn.close()


def _plan_nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _plan_nodes(child)


async def test_postgres_hot_queries_are_index_searches(pg_db: str) -> None:
    """The twin of `test_learning_and_board_queries_use_indexes`: with sequential scans and sorts priced
    out, every query on the progress, review, answer and leaderboard paths still plans without either, so
    an index serves each (leaderboards read their top rows in order, never sorting a whole group)."""
    store = PgStore(pg_db)
    await store.start()
    await store.close()
    now = "2026-11-23T12:00:00.000000Z"
    queries: list[tuple[str, tuple[object, ...], bool]] = [  # (query, parameters, may sort a member's rows)
        (sql.DUE_CARDS, (1, now, 20), False),
        (sql.REVIEW_SUMMARY, (1, now, 1, now), False),
        (sql.MISSED, (1, now), False),
        (sql.ANSWER_TIMES, (1, now), False),
        (sql.GET_CARD, (1, "t-a"), False),
        (sql.QUESTION_TALLIES, (1,), True),
        (sql.STEPS_DONE, (1,), False),
        (sql.BOARD_ALL_TIME, (1, 10), False),
        (sql.BOARD_WEEK, (1, "2026-11-23", 10), False),
        (sql.find_member_by_name(NAME_EQUALS["postgres"]), (1, "ann"), True),
        (sql.LAST_QUESTION_POST, (1, 1, 1), False),
    ]
    conn = await asyncpg.connect(pg_db)
    try:
        await conn.execute("SET enable_seqscan = off")
        await conn.execute("SET enable_sort = off")
        for query, params, may_sort in queries:
            plan = json.loads(await conn.fetchval("EXPLAIN (FORMAT JSON) " + pg(query), *params))[0]["Plan"]
            kinds = [n["Node Type"] for n in _plan_nodes(plan)]
            assert "Seq Scan" not in kinds, f"{query}\n  -> {kinds}"
            assert may_sort or not any("Sort" in k for k in kinds), f"{query}\n  -> {kinds}"  # incremental too
    finally:
        await conn.close()


# ---------------------------------------------------------------------- several processes, one database


async def test_claims_and_reclaims_go_to_exactly_one_of_two_stores(store: ManagedStore, twin: ManagedStore) -> None:
    """Two processes race for the same 20 occurrences, then for the same retries: each is theirs once."""
    m = await store.ensure_member("console", "g", "c", "admin", "Admin", now=T)
    one, two = schedules_for(store), schedules_for(twin)  # type: ignore[arg-type]
    instants = [T + timedelta(days=d) for d in range(20)]
    claims = await asyncio.gather(
        *(s.claim(m.channel_id, at, name, T) for at in instants for s, name in ((one, "a"), (two, "b")))
    )
    won = [c for c in claims if c is not None]
    assert sorted(c.scheduled_for for c in won) == instants
    for c in won:
        await one.mark_failed(c.id, "HTTP 500", T)
    later = T + timedelta(minutes=1)
    again = await asyncio.gather(one.reclaim_due(later, "a", T - timedelta(hours=1)), two.reclaim_due(later, "b", T))
    retried = [d.scheduled_for for batch in again for d in batch]
    assert sorted(retried) == instants, "each retry goes to one process"


async def test_a_reveal_is_claimed_by_one_of_two_stores(store: ManagedStore, twin: ManagedStore) -> None:
    m = await store.ensure_member("console", "g", "c", "admin", "Admin", now=T)
    post = await store.create_post(m.group_id, m.channel_id, None, "question", "t-a", T)
    got = await asyncio.gather(*(s.claim_reveal(post.id, T) for s in (schedules_for(store), schedules_for(twin))))  # type: ignore[arg-type]
    assert sorted(got) == [False, True]


async def test_installations_and_oauth_states_on_both_stores(store: ManagedStore, twin: ManagedStore) -> None:
    """The `InstallStore` contract; a state is consumed once even by two processes racing for it."""
    installs, other = installs_for(store), installs_for(twin)  # type: ignore[arg-type]
    now = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    assert await installs.find_installation("slack", "T1") is None
    await installs.save_installation("slack", "T1", '{"bot_token": "one"}', now)
    await installs.save_installation("slack", "T2", '{"bot_token": "two"}', now)
    await other.save_installation("slack", "T1", '{"bot_token": "three"}', now + timedelta(hours=1))  # reinstall
    assert await installs.find_installation("slack", "T1") == '{"bot_token": "three"}'
    assert await installs.delete_installation("slack", "T1") is True
    assert await other.delete_installation("slack", "T1") is False
    assert await installs.find_installation("slack", "T2") == '{"bot_token": "two"}'
    await installs.issue_oauth_state("s1", now + timedelta(minutes=10))
    assert await installs.consume_oauth_state("s1", now + timedelta(minutes=10)) is False, "expired at that instant"
    for i in range(10):
        await installs.issue_oauth_state(f"r{i}", now + timedelta(minutes=10))
    raced = await asyncio.gather(*(s.consume_oauth_state(f"r{i}", now) for i in range(10) for s in (installs, other)))
    assert sum(raced) == 10, "each state is accepted exactly once"


# ---------------------------------------------------------------------- STUDYBOT_DATABASE_URL


def test_the_database_url_decides_the_store(tmp_path: Path) -> None:
    assert load_settings(STUDYBOT_DB=str(tmp_path / "x.db")).database() == f"sqlite:///{tmp_path / 'x.db'}", (
        "STUDYBOT_DB still works"
    )
    url = "postgresql://bot:pw@127.0.0.1:5432/studybot"
    settings = Settings.model_validate({"STUDYBOT_DATABASE_URL": url, "STUDYBOT_DB": str(tmp_path / "x.db")})
    assert settings.database() == url, "the URL wins over STUDYBOT_DB"
    assert settings.database(tmp_path / "y.db") == f"sqlite:///{tmp_path / 'y.db'}", "--db names a SQLite file"
    assert "pw" in settings.secrets(), "the password is redacted from logs"
    pg = open_storage(url)
    assert isinstance(pg.store, PgStore) and isinstance(pg.schedules, PgScheduleStore) and pg.dialect == "postgres"
    assert pg.where == "postgresql://bot:***@127.0.0.1:5432/studybot"
    lite = open_storage("sqlite:///data/s.db")
    assert isinstance(lite.store, SqliteStore) and lite.store.path == Path("data/s.db")
    assert isinstance(open_storage("sqlite:////abs/s.db").store, SqliteStore)


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("mysql://bob:sekrit-pw-9@db/x", "mysql://… is not a database URL studybot knows"),
        ("postgresql://bob:sekrit-pw-9@db:99999/x", "malformed (bad port?)"),
        ("postgresql://bob:sekrit-pw-9@db", "needs a host and a database"),
        ("sqlite:///", "a sqlite URL needs a file"),
        ("sekrit-pw-9", "that value is not a database URL"),
    ],
)
def test_a_wrong_database_url_is_one_line_without_the_secret(url: str, fragment: str) -> None:
    with pytest.raises(SettingsError) as e:
        load_settings(STUDYBOT_DATABASE_URL=url)
    assert str(e.value).startswith("STUDYBOT_DATABASE_URL: ") and fragment in str(e.value)
    assert "sekrit" not in str(e.value) and "\n" not in str(e.value)
    run = studybot("db", "migrate", env={"STUDYBOT_DATABASE_URL": url})
    assert run.returncode == 2 and run.stdout == ""
    assert run.stderr.count("\n") == 1 and fragment in run.stderr and "sekrit" not in run.stderr


def test_a_refused_connection_or_wrong_password_is_one_line_without_the_secret(pg: PgCluster) -> None:
    refused = f"postgresql://bob:sekrit-pw-9@127.0.0.1:{free_port()}/studybot"
    wrong = pg.url(password="sekrit-pw-9")
    for url, fragment in ((refused, "refused"), (wrong, "password authentication failed")):
        run = studybot("db", "migrate", env={"STUDYBOT_DATABASE_URL": url})
        assert run.returncode != 0 and run.stdout == ""
        assert run.stderr.count("\n") == 1 and "Traceback" not in run.stderr, run.stderr
        assert fragment in run.stderr.lower() and "sekrit" not in run.stderr and ":***@" in run.stderr


def test_the_console_runs_on_postgres(pg_db: str) -> None:
    """The whole app on a PostgreSQL URL: migrate, study, and the answer is in the database."""
    env = {"STUDYBOT_DATABASE_URL": pg_db, "STUDYBOT_CONTENT": str(ROOT / "tests" / "fixtures" / "pack")}
    migrated = studybot("db", "migrate", env=env)
    assert migrated.returncode == 0 and "applied 0001_init" in migrated.stdout and ":***@" in migrated.stdout
    session = studybot("console", "--user", "ann", env=env, input="/study quiz\n/study answer A\n/study progress\n")
    assert session.returncode == 0, session.stderr
    assert "Answered 1" in session.stdout
    health = studybot("health", env=env)
    assert health.returncode == 0 and health.stdout.startswith("OK: database postgresql://postgres:")
    assert pg_db.split(":")[2].split("@")[0] not in health.stdout, "the password is not shown"

    async def answers() -> int:
        conn = await asyncpg.connect(pg_db)
        try:
            return int(await conn.fetchval("SELECT COUNT(*) FROM answers"))
        finally:
            await conn.close()

    assert asyncio.run(answers()) == 1


def studybot(*args: str, env: dict[str, str], input: str | None = None) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("STUDYBOT_", "DISCORD_", "SLACK_"))}
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        capture_output=True,
        text=True,
        env=full | env,
        cwd=ROOT,
        timeout=60,
        input=input,
    )
