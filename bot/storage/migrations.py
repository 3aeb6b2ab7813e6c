"""Plain-SQL migrations, applied in order, each in one transaction.

One folder per dialect under the migrations root: ``migrations/sqlite/NNNN_name.sql`` and
``migrations/postgres/NNNN_name.sql``, the same numbers with the same meaning (a test checks the twins).
Both stores use this runner: the same discovery, the same bookkeeping table and the same refusal of a
schema newer than the code. On PostgreSQL the run holds an advisory lock, so processes starting together
migrate one after the other instead of racing.
"""

from __future__ import annotations

import logging
import re
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from bot.core.ports import SchemaTooNew, StoreError

if TYPE_CHECKING:
    import asyncpg

log = logging.getLogger(__name__)

#: The migrations root (``STUDYBOT_MIGRATIONS`` points at one like it in an installed package).
DEFAULT_ROOT = Path(__file__).resolve().parents[2] / "migrations"
#: The SQLite migrations (the default store's).
DEFAULT_DIR = DEFAULT_ROOT / "sqlite"
DIALECTS = ("sqlite", "postgres")
_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
_DROPS = re.compile(r"\bDROP\s+TABLE\b", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def discover(folder: Path = DEFAULT_DIR) -> list[Migration]:
    """The migrations in ``folder``, by version; raises `StoreError` on gaps or bad names."""
    if not folder.is_dir():
        raise StoreError(f"migrations folder not found: {folder}")
    found: list[Migration] = []
    for path in sorted(folder.glob("*.sql")):
        m = _NAME.match(path.name)
        if not m:
            raise StoreError(f"{path}: migration files are named NNNN_lower_case.sql")
        found.append(Migration(int(m.group(1)), path.stem, path.read_text(encoding="utf-8")))
    for expected, mig in enumerate(found, 1):
        if mig.version != expected:
            raise StoreError(f"migration {mig.name}: expected version {expected:04d} (no gaps, no repeats)")
    return found


def folder_for(root: Path, dialect: str) -> Path:
    """The migrations folder of ``dialect`` ("sqlite" or "postgres") under ``root``."""
    if dialect not in DIALECTS:
        raise ValueError(f"unknown dialect {dialect!r}")
    return root / dialect


def pending(migrations: list[Migration], have: int) -> list[Migration]:
    """The migrations still to apply to a database at version ``have``; raises `SchemaTooNew`."""
    known = migrations[-1].version if migrations else 0
    if have > known:
        raise SchemaTooNew(
            f"the database is at schema version {have}, but this studybot only knows up to {known}: "
            "upgrade studybot (or restore a backup) instead of running an older version on it"
        )
    return migrations[have:]


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def current_version(conn: sqlite3.Connection) -> int:
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
    )
    row = conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").fetchone()
    return int(row[0])


def migrate(conn: sqlite3.Connection, folder: Path = DEFAULT_DIR) -> list[str]:
    """Apply every pending migration; returns the names applied (empty when up to date).

    ``conn`` must be in autocommit mode (``isolation_level=None``). Raises `SchemaTooNew` for a
    database written by a newer studybot, `StoreError` when a migration fails (it is rolled back)."""
    todo = pending(discover(folder), current_version(conn))
    applied: list[str] = []
    if not todo:
        return applied
    # A migration may rebuild a table (SQLite's way to change a column): with foreign keys on, dropping
    # the old parent table would cascade-delete its children. So migrations run with foreign keys off
    # (the pragma is a no-op inside a transaction, hence here) and each is checked before it commits.
    fk_on = bool(conn.execute("PRAGMA foreign_keys").fetchone()[0])
    conn.execute("PRAGMA foreign_keys=OFF")
    try:
        for mig in todo:
            _apply(conn, mig)
            log.info("applied migration %s", mig.name)
            applied.append(mig.name)
    finally:
        conn.execute(f"PRAGMA foreign_keys={'ON' if fk_on else 'OFF'}")
    return applied


def _apply(conn: sqlite3.Connection, mig: Migration) -> None:
    """Apply one migration in one transaction; roll back and raise `StoreError` if it fails or leaves a
    row whose parent is missing."""
    stamp = _stamp()
    try:
        conn.execute("BEGIN IMMEDIATE")
        # executescript would COMMIT first; run the statements one by one inside our transaction.
        for statement in _statements(mig.sql):
            conn.execute(statement)
        # Only a migration that drops a table (a rebuild) can orphan rows; the check reads every row
        # with a foreign key (17 s for the 1,000,000-answer benchmark database), so only then.
        broken = conn.execute("PRAGMA foreign_key_check").fetchone() if _DROPS.search(mig.sql) else None
        if broken is not None:
            raise StoreError(
                f"migration {mig.name} left a {broken[0]} row ({broken[1]}) whose {broken[2]} row is missing;"
                " it was rolled back"
            )
        conn.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
            (mig.version, mig.name, stamp),
        )
        conn.execute("COMMIT")
    except sqlite3.Error as e:
        conn.execute("ROLLBACK")
        raise StoreError(f"migration {mig.name} failed and was rolled back: {e}") from e
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


async def migrate_postgres(conn: asyncpg.Connection, folder: Path) -> list[str]:
    """`migrate` for PostgreSQL, on an asyncpg connection outside any transaction.

    Holds a session advisory lock for the whole run: a second process starting at the same moment waits,
    then finds nothing left to apply. Raises `SchemaTooNew` and `StoreError` like `migrate`."""
    import asyncpg

    from bot.storage.dialect import MIGRATION_LOCK

    migrations = discover(folder)
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
        )
        have = int(await conn.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_migrations"))
        applied: list[str] = []
        for mig in pending(migrations, have):
            try:
                async with conn.transaction():
                    # A script of several statements runs as one simple query, inside our transaction.
                    if _has_sql(mig.sql):
                        await conn.execute(mig.sql)
                    await conn.execute(
                        "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
                        mig.version,
                        mig.name,
                        _stamp(),
                    )
            except asyncpg.PostgresError as e:
                raise StoreError(f"migration {mig.name} failed and was rolled back: {e}") from e
            log.info("applied migration %s", mig.name)
            applied.append(mig.name)
        return applied
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK)


def _has_sql(sql: str) -> bool:
    """Whether a script holds more than comments (a twin may be a comment only: nothing to do here)."""
    return any(ln.strip() and not ln.strip().startswith("--") for ln in sql.splitlines())


def _statements(sql: str) -> list[str]:
    """Split a script into complete statements (sqlite3.complete_statement respects quotes/triggers)."""
    out: list[str] = []
    buf = ""
    for line in sql.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            stmt = buf.strip()
            if stmt.rstrip(";").strip() and not all(
                ln.strip().startswith("--") or not ln.strip() for ln in stmt.splitlines()
            ):
                out.append(stmt)
            buf = ""
    if buf.strip() and not all(ln.strip().startswith("--") or not ln.strip() for ln in buf.splitlines()):
        raise StoreError("migration ends with an incomplete statement")
    return out
