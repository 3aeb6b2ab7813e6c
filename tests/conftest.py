"""Shared fixtures, the loopback-only network guard and the `slow` marker switch."""

from __future__ import annotations

import ipaddress
import os
import random
import socket
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.core.content import ContentLibrary
from bot.core.messages import Inbound
from bot.core.service import StudyService
from bot.storage import ManagedStore, SqliteStore
from tests.pg import PgCluster, cluster_for_session

ROOT = Path(__file__).resolve().parents[1]
FIXTURE_PACK = ROOT / "tests" / "fixtures" / "pack"

# Every bot a test starts (in this process or a child that inherits the environment) serves its web
# dashboard on a free port, never on the fixed default: tests run side by side.
os.environ["STUDYBOT_HTTP_PORT"] = "0"

# ---------------------------------------------------------------- network guard


class NetworkBlocked(RuntimeError):
    pass


def _is_loopback(host: object) -> bool:
    if host in (None, "", "localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex
_real_getaddrinfo = socket.getaddrinfo


def _guarded_connect(self: socket.socket, address: object) -> None:
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address[0]):  # type: ignore[index]
        raise NetworkBlocked(f"tests may only connect to loopback, not {address!r}")
    _real_connect(self, address)  # type: ignore[arg-type]


def _guarded_connect_ex(self: socket.socket, address: object) -> int:
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address[0]):  # type: ignore[index]
        raise NetworkBlocked(f"tests may only connect to loopback, not {address!r}")
    return _real_connect_ex(self, address)  # type: ignore[arg-type]


def _guarded_getaddrinfo(host: object, *args: object, **kwargs: object) -> object:
    if not _is_loopback(host if not isinstance(host, bytes) else host.decode()):
        raise NetworkBlocked(f"tests may not resolve {host!r}: only loopback is allowed")
    return _real_getaddrinfo(host, *args, **kwargs)  # type: ignore[arg-type]


def pytest_configure(config: pytest.Config) -> None:
    socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]
    socket.getaddrinfo = _guarded_getaddrinfo  # type: ignore[assignment]


# ---------------------------------------------------------------- slow tests


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--runslow", action="store_true", help="also run tests marked slow (CI does)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--runslow") or os.environ.get("CI") == "true":
        return
    skip = pytest.mark.skip(reason="slow: run with --runslow (CI runs it)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


# ---------------------------------------------------------------- fixtures


class FakeClock:
    """A clock that only moves when told to."""

    def __init__(self, start: datetime | None = None) -> None:
        self.current = start or datetime(2026, 11, 23, 12, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self.current

    def advance(self, **kw: float) -> datetime:
        self.current += timedelta(**kw)
        return self.current

    def set(self, when: datetime) -> None:
        self.current = when


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "study.db"


# ---------------------------------------------------------------- the store, on SQLite and PostgreSQL

#: The stores every storage test runs on. The `store` fixture is the contract suite's entry point.
STORE_KINDS = ("sqlite", "postgres")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test that uses the `store` fixture (directly or through another fixture) runs once per
    store, unless marked ``sqlite_only`` (it reaches SQLite internals: files, PRAGMAs, `run_sync`)."""
    if "store_kind" in metafunc.fixturenames and metafunc.definition.get_closest_marker("sqlite_only") is None:
        metafunc.parametrize("store_kind", STORE_KINDS)


@pytest.fixture
def store_kind() -> str:
    """Which store `store` is: "sqlite" unless the test is parametrized over both (see above)."""
    return "sqlite"


@pytest.fixture
async def store(store_kind: str, db_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[ManagedStore]:
    """A started store on a fresh database: a SQLite file, or a PostgreSQL database copied from a
    migrated template (a few ms)."""
    s: ManagedStore
    if store_kind == "sqlite":
        s = SqliteStore(db_path)
        await s.start()
        yield s
        await s.close()
        return
    from bot.storage.pg_store import PgStore

    cluster: PgCluster = request.getfixturevalue("pg")
    url = cluster.create_database(template=request.getfixturevalue("pg_template"))
    s = PgStore(url, pool_size=4)
    await s.start()
    try:
        yield s
    finally:
        await s.close()
        cluster.drop_database(url.rsplit("/", 1)[1])


#: Runs one statement (``?`` placeholders) on a connection of its own and returns the rows as tuples.
Outside = Callable[..., Awaitable[list[tuple[Any, ...]]]]


async def read_rows(store: ManagedStore, query: str, *args: Any) -> list[tuple[Any, ...]]:
    """Run one statement (``?`` placeholders) on a connection of its own to ``store``'s database, as
    another process would, and return the rows as tuples. Sees committed data only."""
    if isinstance(store, SqliteStore):
        conn = sqlite3.connect(store.path, isolation_level=None)
        try:
            conn.execute("PRAGMA foreign_keys=ON")
            return [tuple(r) for r in conn.execute(query, args).fetchall()]
        finally:
            conn.close()
    import asyncpg

    from bot.storage.dialect import pg
    from bot.storage.pg_store import PgStore

    assert isinstance(store, PgStore)
    pgconn = await asyncpg.connect(store.url)
    try:
        return [tuple(r) for r in await pgconn.fetch(pg(query), *args)]
    finally:
        await pgconn.close()


@pytest.fixture
def outside(store: ManagedStore) -> Outside:
    """`read_rows` on the test's store: ``await outside("SELECT COUNT(*) FROM answers WHERE member_id = ?", 7)``."""

    async def run(query: str, *args: Any) -> list[tuple[Any, ...]]:
        return await read_rows(store, query, *args)

    return run


@pytest.fixture
async def twin(store: ManagedStore) -> AsyncIterator[ManagedStore]:
    """A second store on the same database as `store`, with its own connections and caches: what a second
    bot process would have."""
    from bot.storage.pg_store import PgStore

    other: ManagedStore = SqliteStore(store.path) if isinstance(store, SqliteStore) else PgStore(store.url)  # type: ignore[union-attr]
    await other.start()
    try:
        yield other
    finally:
        await other.close()


# ---------------------------------------------------------------- PostgreSQL (see tests/pg.py)


@pytest.fixture(scope="session")
def pg() -> Iterator[PgCluster]:
    """The session's throwaway PostgreSQL cluster (skips without the server; fails under CI=true)."""
    with cluster_for_session() as cluster:
        yield cluster


@pytest.fixture(scope="session")
def pg_dsn(pg: PgCluster) -> str:
    """URL of the cluster's `postgres` database (superuser; make your own databases with `pg`)."""
    return pg.dsn


@pytest.fixture(scope="session")
def pg_template(pg: PgCluster) -> str:
    """The name of a database with every PostgreSQL migration applied, to copy for each test."""
    import asyncio
    import concurrent.futures

    from bot.storage.pg_store import PgStore

    url = pg.create_database("studybot_template")

    async def migrate() -> None:
        s = PgStore(url, pool_size=1)
        await s.start()
        await s.close()

    # First requested from inside an async fixture: run the migration on a loop of its own thread.
    with concurrent.futures.ThreadPoolExecutor(1) as one:
        one.submit(asyncio.run, migrate()).result()
    return "studybot_template"


@pytest.fixture
def pg_db(pg: PgCluster) -> Iterator[str]:
    """URL of a fresh, empty database for this test, dropped afterwards."""
    url = pg.create_database()
    yield url
    pg.drop_database(url.rsplit("/", 1)[1])


@pytest.fixture
def library() -> ContentLibrary:
    return ContentLibrary.load(FIXTURE_PACK)


@pytest.fixture
def service(store: SqliteStore, library: ContentLibrary, clock: FakeClock) -> StudyService:
    return StudyService(store, library, clock, rng=random.Random(7))


def inbound(
    text: str = "",
    *,
    user: str = "alice",
    action: str | None = None,
    admin: bool = False,
    operator: bool = False,
    **kw: str,
) -> Inbound:
    """A console-style Inbound for tests."""
    return Inbound(
        platform="console",
        group=kw.get("group", "g1"),
        channel=kw.get("channel", "c1"),
        user=user,
        user_name=kw.get("name", user),
        text=text,
        action=action,
        is_admin=admin,
        is_operator=operator,
    )


@pytest.fixture
def ib() -> Iterator[object]:
    yield inbound
