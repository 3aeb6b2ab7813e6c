"""A throwaway PostgreSQL cluster on a free loopback port, for the tests and the benchmarks.

Usage in tests (the fixtures live in tests/conftest.py):

    async def test_something(pg_db: str) -> None:      # a fresh, empty database for this test
        conn = await asyncpg.connect(pg_db)             # "postgresql://postgres:…@127.0.0.1:PORT/t_…"

    def test_other(pg: PgCluster) -> None:             # the session's cluster itself
        dsn = pg.create_database(template=my_template)  # copy a prepared database (CREATE … TEMPLATE)
        pg.dsn                                          # the server's `postgres` database

Outside pytest (the benchmarks): ``with PgCluster.start() as pg: ...`` — stopped and removed on exit.

The cluster is made with the server's own tools (`initdb`, `pg_ctl`) from the newest
/usr/lib/postgresql/*/bin. The server refuses to run as root, so when we are root it runs as the
`postgres` user (`runuser -u postgres --`), in a data directory that user owns under the system temp
dir (pytest's tmp_path is private to root, so the server could not enter it); its socket lives in the
data directory. Local socket connections are trusted; TCP needs the superuser's password, which is
random per cluster and part of `dsn`, so wrong-password paths are real.

Where the server binaries are missing the fixtures skip with one line — except under CI=true, where a
missing or unstartable server fails the run (see `require`). `make postgres` installs the server.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

#: Settings for a cluster whose only job is tests: durability traded for speed.
FAST = ("fsync=off", "full_page_writes=off", "synchronous_commit=off")
#: Settings for benchmarks: the server's durable defaults (fsync, synchronous_commit on).
DURABLE: tuple[str, ...] = ()

_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class PgUnavailable(RuntimeError):
    """The server binaries are not installed here (the message says what to do)."""


def find_bindir() -> Path:
    """The newest PostgreSQL server's bin directory. Raises PgUnavailable when none is installed."""

    def version(p: Path) -> tuple[int, ...]:
        return tuple(int(x) for x in re.findall(r"\d+", p.parent.name)) or (0,)

    found = [
        p for p in Path("/usr/lib/postgresql").glob("*/bin") if (p / "initdb").exists() and (p / "pg_ctl").exists()
    ]
    if found:
        return max(found, key=version)
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb and pg_ctl and Path(initdb).resolve().parent == Path(pg_ctl).resolve().parent:
        return Path(initdb).resolve().parent
    raise PgUnavailable(
        "PostgreSQL server not installed (no initdb/pg_ctl in /usr/lib/postgresql/*/bin); `make postgres`"
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgCluster:
    """One running throwaway cluster. Build it with `PgCluster.start()`; `stop()` removes it."""

    def __init__(self, bindir: Path, base: Path, port: int, password: str) -> None:
        self.bindir = bindir
        self.base = base
        self.datadir = base / "data"
        self.port = port
        self.password = password
        self.user = "postgres"
        self._as_server_user: list[str] = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        self._seq = 0
        self._running = False
        self._settings: tuple[str, ...] = FAST
        self._max_connections = 200

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    def start(cls, *, settings: tuple[str, ...] = FAST, max_connections: int = 200) -> PgCluster:
        """initdb + pg_ctl start on a free loopback port. Raises PgUnavailable or RuntimeError (with the log)."""
        bindir = find_bindir()
        base = Path(tempfile.mkdtemp(prefix="studybot-pg-"))
        cluster = cls(bindir, base, 0, secrets.token_hex(12))
        try:
            cluster._init()
            last = ""
            for _ in range(3):  # a free port can be taken between finding it and binding it
                cluster.port = free_port()
                try:
                    cluster._start(settings, max_connections)
                    break
                except RuntimeError as e:
                    last = str(e)
            else:
                raise RuntimeError(last)
        except BaseException:
            cluster.stop()
            raise
        atexit.register(cluster.stop)  # a belt for runs that never reach the fixture's teardown
        return cluster

    def _run(self, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self._as_server_user, *argv], capture_output=True, text=True, timeout=timeout, check=False
        )

    def _init(self) -> None:
        if self._as_server_user:
            shutil.chown(self.base, "postgres", "postgres")
        pwfile = self.base / "pw"
        pwfile.write_text(self.password + "\n")
        if self._as_server_user:
            shutil.chown(pwfile, "postgres", "postgres")
        pwfile.chmod(0o600)
        r = self._run(
            str(self.bindir / "initdb"),
            "-D",
            str(self.datadir),
            "-U",
            self.user,
            f"--pwfile={pwfile}",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        )
        pwfile.unlink()
        if r.returncode != 0:
            raise RuntimeError(f"initdb failed (exit {r.returncode}): {(r.stderr or r.stdout).strip()[-500:]}")

    def _start(self, settings: tuple[str, ...], max_connections: int) -> None:
        self._settings, self._max_connections = settings, max_connections
        opts = [
            f"-p {self.port}",
            f"-k {self.datadir}",
            "-c listen_addresses=127.0.0.1",
            f"-c max_connections={max_connections}",
            *(f"-c {s}" for s in settings),
        ]
        log = self.base / "server.log"
        r = self._run(
            str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-l", str(log), "-o", " ".join(opts), "-w",
            "-t", "30", "start",
        )  # fmt: skip
        if r.returncode != 0:
            tail = log.read_text(errors="replace")[-800:] if log.exists() else ""
            raise RuntimeError(f"pg_ctl start failed (exit {r.returncode}): {r.stderr.strip()} {tail.strip()}")
        self._running = True

    def stop_server(self) -> None:
        """Stop the server but keep its files (`start_server` brings it back on the same port)."""
        if self._running:
            r = self._run(str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", "fast", "-w", "stop")
            if r.returncode != 0:
                raise RuntimeError(f"pg_ctl stop failed: {r.stderr.strip()}")
            self._running = False

    def start_server(self) -> None:
        """Start a stopped server again, same port and settings. Raises RuntimeError (with the log)."""
        self._start(self._settings, self._max_connections)

    def stop(self) -> None:
        """Stop the server (fast, no checkpoint wait) and delete its files. Safe to call twice."""
        if self._running:
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", "immediate", "-w", "stop")
            self._running = False
        shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> PgCluster:
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    # ------------------------------------------------------------------ addresses and databases

    def url(self, database: str = "postgres", *, password: str | None = None) -> str:
        """A `postgresql://` URL for `database` over TCP (the password defaults to the right one)."""
        pw = self.password if password is None else password
        return f"postgresql://{self.user}:{pw}@127.0.0.1:{self.port}/{database}"

    @property
    def dsn(self) -> str:
        """The URL of the server's `postgres` database."""
        return self.url()

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run SQL through psql on the local socket (no asyncio needed); returns its output. Raises RuntimeError."""
        r = subprocess.run(  # the socket is trusted and root may enter the data dir: no runuser needed
            [str(self.bindir / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", str(self.datadir),
            "-p", str(self.port), "-U", self.user, "-d", database, "-c", sql],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        if r.returncode != 0:
            raise RuntimeError(f"psql failed: {r.stderr.strip()}")
        return r.stdout.strip()

    def create_database(self, name: str | None = None, *, template: str = "template0") -> str:
        """Create a database (copying `template`, which nobody may be connected to) and return its URL.

        FILE_COPY copies the template's files instead of WAL-logging every block: a few ms here.
        """
        if name is None:
            self._seq += 1
            name = f"t_{os.getpid()}_{self._seq}"
        for ident in (name, template):
            if not _NAME.match(ident):
                raise ValueError(f"not a plain database name: {ident!r}")
        self.psql(f"CREATE DATABASE {name} TEMPLATE {template} STRATEGY FILE_COPY")
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop a database, disconnecting anyone still in it."""
        if not _NAME.match(name):
            raise ValueError(f"not a plain database name: {name!r}")
        self.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def require() -> PgCluster:
    """Start a cluster for a test session; skip (one line) without the server, fail under CI=true."""
    import pytest

    in_ci = os.environ.get("CI") == "true"
    try:
        return PgCluster.start()
    except PgUnavailable as e:
        if in_ci:
            pytest.fail(f"CI=true and {e}", pytrace=False)
        pytest.skip(str(e))
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
        pytest.fail(f"PostgreSQL is installed but the test cluster did not start: {e}", pytrace=False)


@contextlib.contextmanager
def cluster_for_session() -> Iterator[PgCluster]:
    """`require()` as a context manager that stops the cluster at the end."""
    pg = require()
    try:
        yield pg
    finally:
        pg.stop()
