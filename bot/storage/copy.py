"""`studybot db copy`: move a SQLite database into PostgreSQL, table by table, verified.

The copy reads one consistent snapshot of the SQLite file (one read transaction, so a running bot may
keep writing) and writes the target in **one** PostgreSQL transaction: the schema is made by the
target's own migrations, rows go in with COPY, identity sequences are set past the highest id (and past
SQLite's AUTOINCREMENT high-water mark, so ids are never reused), and before COMMIT every table is read
back and compared with the source by row count and an order-independent checksum. Any difference, or
any error, rolls everything back: the target is either a verified copy or untouched.

A target that already holds rows is refused unless ``force`` is given (then its rows are replaced).
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

import asyncpg

from bot.core.ports import StoreError
from bot.storage import migrations
from bot.storage.urls import UrlError, check_url, redact, sqlite_path

#: Rows sent per COPY (and per progress update).
CHUNK = 5_000
#: The bookkeeping table: made by the target's migrations, never copied.
SKIP_TABLES = frozenset({"schema_migrations"})


class CopyError(StoreError):
    """The copy cannot be made or did not verify; one line, never holding a password. Nothing was
    committed to the target."""


class CopyProgress(Protocol):
    """Where the copy reports how far it is (the CLI draws a bar on stderr)."""

    def table(self, name: str, total: int) -> None:
        """A table starts: ``total`` rows to copy."""

    def advance(self, rows: int) -> None:
        """``rows`` more rows of the current table were sent."""

    def note(self, text: str) -> None:
        """A step that is not a table (verifying, committing)."""


class NoProgress:
    """Reports nothing."""

    def table(self, name: str, total: int) -> None:
        pass

    def advance(self, rows: int) -> None:
        pass

    def note(self, text: str) -> None:
        pass


@dataclass(frozen=True, slots=True)
class TableCopied:
    """One table: rows copied and the checksum that matched on both sides."""

    name: str
    rows: int
    checksum: str


@dataclass(slots=True)
class CopyReport:
    """What `copy_database` did."""

    source: str
    target: str
    schema_version: int
    tables: list[TableCopied] = field(default_factory=list)
    replaced: bool = False
    seconds: float = 0.0

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables)


# ---------------------------------------------------------------- checksums


class TableChecksum:
    """An order-independent checksum of a table's rows: the sum (mod 2**128) of each row's BLAKE2b hash.

    Order-independent because the two databases may return rows in different orders (text collations
    differ). A row is hashed as the ``repr`` of its tuple of values, so 1, 1.0, "1" and None all
    differ: a value that changed type on the way fails the check as surely as one that changed."""

    MOD = 1 << 128

    def __init__(self) -> None:
        self.total = 0
        self.rows = 0

    def add(self, row: Sequence[Any]) -> None:
        digest = hashlib.blake2b(repr(tuple(row)).encode("utf-8", "surrogatepass"), digest_size=16).digest()
        self.total = (self.total + int.from_bytes(digest, "little")) % self.MOD
        self.rows += 1

    def add_all(self, rows: Iterable[Sequence[Any]]) -> None:
        for row in rows:
            self.add(row)

    @property
    def hexdigest(self) -> str:
        return f"{self.total:032x}"


# ---------------------------------------------------------------- the source


@dataclass(frozen=True, slots=True)
class SourceTable:
    name: str
    columns: list[str]
    rows: int
    #: SQLite's AUTOINCREMENT high-water mark for this table (0 when it has none).
    sequence: int


class SqliteSource:
    """A read-only SQLite snapshot: one read transaction from `open` until `close`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.conn: sqlite3.Connection | None = None

    def open(self) -> None:
        """Open read-only and take the snapshot. Raises CopyError for a missing or unreadable file."""
        if not self.path.is_file():
            raise CopyError(f"no SQLite database at {self.path}")
        try:
            self.conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, isolation_level=None)
            self.conn.execute("BEGIN")
            self.conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # the snapshot starts here
        except sqlite3.Error as e:
            self.close()
            raise CopyError(f"cannot read {self.path}: {e}") from None

    def close(self) -> None:
        if self.conn is not None:
            conn, self.conn = self.conn, None
            conn.close()

    def _c(self) -> sqlite3.Connection:
        if self.conn is None:
            raise CopyError("the source is not open")
        return self.conn

    def schema_version(self) -> int:
        try:
            row = self._c().execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").fetchone()
        except sqlite3.OperationalError:
            raise CopyError(f"{self.path} is not a studybot database (no schema_migrations table)") from None
        return int(row[0])

    def tables(self) -> list[SourceTable]:
        """Every data table, parents before children (foreign keys), with its columns and row count."""
        c = self._c()
        names = [
            r[0]
            for r in c.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
            )
            if r[0] not in SKIP_TABLES
        ]
        parents = {n: {r[2] for r in c.execute(f'PRAGMA foreign_key_list("{n}")')} - {n} for n in names}
        seq: dict[str, int] = {}
        has_seq = c.execute("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence'").fetchone()
        if has_seq:
            seq = {str(n): int(s) for n, s in c.execute("SELECT name, seq FROM sqlite_sequence")}
        out: list[SourceTable] = []
        for name in _parents_first(parents):
            cols = [r[1] for r in c.execute(f'PRAGMA table_info("{name}")')]
            (count,) = c.execute(f'SELECT count(*) FROM "{name}"').fetchone()
            out.append(SourceTable(name, cols, int(count), seq.get(name, 0)))
        return out

    def rows(self, table: SourceTable) -> Iterable[list[tuple[Any, ...]]]:
        """The table's rows in chunks of `CHUNK`."""
        cols = ", ".join(f'"{c}"' for c in table.columns)
        cur = self._c().execute(f'SELECT {cols} FROM "{table.name}"')
        while chunk := cur.fetchmany(CHUNK):
            yield chunk


def _parents_first(parents: dict[str, set[str]]) -> list[str]:
    """Tables ordered so that each comes after the tables it references (ties by name)."""
    done: list[str] = []
    left = dict(parents)
    while left:
        ready = sorted(n for n, ps in left.items() if not (ps & left.keys()))
        if not ready:  # a reference cycle: keep the rest in name order (COPY checks constraints at the end)
            ready = sorted(left)
        for n in ready:
            done.append(n)
            del left[n]
    return done


# ---------------------------------------------------------------- the target


def _coercer(pg_type: str) -> Any:
    """A function turning a SQLite value into what asyncpg expects for a column of ``pg_type``, or None
    when SQLite already returns that type (its INTEGER and TEXT affinities give int and str)."""
    if pg_type in ("smallint", "integer", "bigint", "text", "character varying", "character"):
        return None
    if pg_type == "boolean":
        return lambda v: v if v is None else bool(v)
    if pg_type in ("double precision", "real"):
        return lambda v: v if v is None else float(v)
    if pg_type == "numeric":
        return lambda v: v if v is None else Decimal(str(v))
    if pg_type in ("json", "jsonb"):
        return lambda v: v if v is None or isinstance(v, str) else str(v)
    if pg_type == "bytea":
        return lambda v: v if v is None or isinstance(v, bytes) else bytes(v)
    return lambda v: v


async def _target_columns(conn: asyncpg.Connection, table: str) -> dict[str, str]:
    rows = await conn.fetch(
        "SELECT column_name, data_type FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND table_name = $1",
        table,
    )
    return {r[0]: r[1] for r in rows}


def _same(v: Any) -> Any:
    return v


async def _target_tables(conn: asyncpg.Connection) -> set[str]:
    rows = await conn.fetch(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        " AND table_type = 'BASE TABLE'"
    )
    return {r[0] for r in rows} - SKIP_TABLES


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def _set_sequences(conn: asyncpg.Connection, tables: list[SourceTable]) -> None:
    """Every serial/identity sequence past the highest id copied and past SQLite's high-water mark."""
    for t in tables:
        for col in t.columns:
            seq = await conn.fetchval("SELECT pg_get_serial_sequence($1, $2)", _ident(t.name), col)
            if seq is None:
                continue
            top = await conn.fetchval(f"SELECT COALESCE(MAX({_ident(col)}), 0) FROM {_ident(t.name)}")
            top = max(int(top), t.sequence)
            if top > 0:
                await conn.execute("SELECT setval($1::regclass, $2, true)", seq, top)
            else:
                await conn.execute("SELECT setval($1::regclass, 1, false)", seq)


# ---------------------------------------------------------------- the copy


async def copy_database(
    source_url: str,
    target_url: str,
    *,
    migrations_root: Path = migrations.DEFAULT_ROOT,
    force: bool = False,
    progress: CopyProgress | None = None,
) -> CopyReport:
    """Copy the SQLite database at ``source_url`` into the PostgreSQL database at ``target_url``.

    Raises `UrlError` for unusable URLs, `CopyError` (or `StoreError` from the target's migrations) when
    the copy cannot be made or does not verify; then nothing was committed to the target."""
    from bot.storage import open_storage

    progress = progress or NoProgress()
    started = time.perf_counter()
    if check_url(source_url) != "sqlite":
        raise UrlError("--from must be a sqlite:/// URL (the database to move up from)")
    if check_url(target_url) != "postgres":
        raise UrlError("--to must be a postgresql:// URL (the database to copy into)")
    source = SqliteSource(sqlite_path(source_url))
    source.open()
    try:
        version = source.schema_version()
        known = len(migrations.discover(migrations.folder_for(migrations_root, "sqlite")))
        if version != known:
            raise CopyError(
                f"{source.path} is at schema version {version} and this studybot's is {known}: "
                + (
                    f"run `studybot db migrate --db {source.path}` first"
                    if version < known
                    else "copy it with the studybot that wrote it"
                )
            )
        tables = source.tables()
        # The schema: the target's own migrations (they refuse a newer schema, and serialize racers).
        storage = open_storage(target_url, migrations_root)
        await storage.store.start()
        await storage.store.close()
        try:
            conn = await asyncpg.connect(target_url)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
            raise CopyError(f"cannot connect to {redact(target_url)}: {e}") from None
        try:
            report = CopyReport(redact(source_url), redact(target_url), version)
            async with conn.transaction():
                await _copy_into(conn, source, tables, report, force=force, progress=progress)
            progress.note("committed; updating the planner's statistics")
            # Fresh rows have no statistics yet: without them the first queries may pick bad plans
            # (a sequential scan for a leaderboard) until autovacuum gets round to it.
            for t in tables:
                await conn.execute(f"ANALYZE {_ident(t.name)}")
        finally:
            await conn.close()
    finally:
        source.close()
    report.seconds = time.perf_counter() - started
    return report


async def _copy_into(
    conn: asyncpg.Connection,
    source: SqliteSource,
    tables: list[SourceTable],
    report: CopyReport,
    *,
    force: bool,
    progress: CopyProgress,
) -> None:
    present = await _target_tables(conn)
    missing = [t.name for t in tables if t.name not in present]
    extra = sorted(present - {t.name for t in tables})
    if missing or extra:
        raise CopyError(
            "the two schemas differ ("
            + "; ".join(
                part
                for part in (
                    f"missing in the target: {', '.join(missing)}" if missing else "",
                    f"only in the target: {', '.join(extra)}" if extra else "",
                )
                if part
            )
            + ")"
        )
    held = []
    for t in tables:
        if await conn.fetchval(f"SELECT EXISTS (SELECT 1 FROM {_ident(t.name)})"):
            held.append(t.name)
    if held and not force:
        raise CopyError(
            f"{report.target} already holds data (in {', '.join(held)}): refusing to copy over it; "
            "--force replaces its rows"
        )
    if held:
        await conn.execute(f"TRUNCATE {', '.join(_ident(t.name) for t in tables)} RESTART IDENTITY CASCADE")
        report.replaced = True
    sums: dict[str, TableChecksum] = {}
    for t in tables:
        types = await _target_columns(conn, t.name)
        absent = [c for c in t.columns if c not in types]
        if absent:
            raise CopyError(f"the target's {t.name} has no column {', '.join(absent)}: the schemas differ")
        coerce = [_coercer(types[c]) or _same for c in t.columns]
        convert = any(f is not _same for f in coerce)
        check = sums[t.name] = TableChecksum()
        progress.table(t.name, t.rows)
        for chunk in source.rows(t):
            check.add_all(chunk)
            records = [tuple(f(v) for f, v in zip(coerce, row, strict=True)) for row in chunk] if convert else chunk
            try:
                await conn.copy_records_to_table(t.name, records=records, columns=t.columns)
            except asyncpg.PostgresError as e:
                detail = f" ({e.detail})" if getattr(e, "detail", None) else ""
                raise CopyError(
                    f"{t.name}: the target refused a row: {str(e).splitlines()[0]}{detail}; nothing was committed"
                ) from None
            progress.advance(len(chunk))
    await _set_sequences(conn, tables)
    progress.note("verifying row counts and checksums")
    for t in tables:
        back = TableChecksum()
        # Read back as the source holds it: a boolean column (SQLite has none) compares as its 0/1.
        types = await _target_columns(conn, t.name)
        cols = ", ".join(f"{_ident(c)}::int" if types[c] == "boolean" else _ident(c) for c in t.columns)
        async with conn.transaction():  # a savepoint: cursors need one
            async for row in conn.cursor(f"SELECT {cols} FROM {_ident(t.name)}", prefetch=CHUNK):
                back.add(tuple(row))
        want = sums[t.name]
        if back.rows != want.rows:
            raise CopyError(f"{t.name}: {want.rows} rows read but {back.rows} in the target; nothing was committed")
        if back.hexdigest != want.hexdigest:
            raise CopyError(
                f"{t.name}: the rows in the target differ from the source (checksum); nothing was committed"
            )
        report.tables.append(TableCopied(t.name, want.rows, want.hexdigest))
