"""Plain-SQL migrations: ``migrations/NNNN_name.sql``, applied in order, each in one transaction."""

from __future__ import annotations

import logging
import re
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bot.core.ports import SchemaTooNew, StoreError

log = logging.getLogger(__name__)

DEFAULT_DIR = Path(__file__).resolve().parents[2] / "migrations"
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
    migrations = discover(folder)
    have = current_version(conn)
    known = migrations[-1].version if migrations else 0
    if have > known:
        raise SchemaTooNew(
            f"the database is at schema version {have}, but this studybot only knows up to {known}: "
            "upgrade studybot (or restore a backup) instead of running an older version on it"
        )
    applied: list[str] = []
    if have >= known:
        return applied
    # A migration may rebuild a table (SQLite's way to change a column): with foreign keys on, dropping
    # the old parent table would cascade-delete its children. So migrations run with foreign keys off
    # (the pragma is a no-op inside a transaction, hence here) and each is checked before it commits.
    fk_on = bool(conn.execute("PRAGMA foreign_keys").fetchone()[0])
    conn.execute("PRAGMA foreign_keys=OFF")
    try:
        for mig in migrations[have:]:
            _apply(conn, mig)
            log.info("applied migration %s", mig.name)
            applied.append(mig.name)
    finally:
        conn.execute(f"PRAGMA foreign_keys={'ON' if fk_on else 'OFF'}")
    return applied


def _apply(conn: sqlite3.Connection, mig: Migration) -> None:
    """Apply one migration in one transaction; roll back and raise `StoreError` if it fails or leaves a
    row whose parent is missing."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
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
