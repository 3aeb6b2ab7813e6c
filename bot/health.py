"""`studybot health`: is this installation able to serve? Checks only; it never changes anything."""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from bot.core.content import validate_pack
from bot.core.ports import StoreError
from bot.storage import dbfile
from bot.storage.migrations import discover, folder_for
from bot.storage.urls import SQLITE_PREFIX, redact, sqlite_path


@dataclass(frozen=True, slots=True)
class Health:
    """The verdict: ``ok`` and one line saying what was found (or what is wrong)."""

    ok: bool
    message: str


def _schema_version(db: Path) -> int:
    """The highest applied migration, read without writing, after ``PRAGMA quick_check`` (every page
    of the file is read: a damaged one fails here, not under a member's click). Raises `sqlite3.Error`,
    `ValueError` naming the damage."""
    # mode=rw: never create a missing file; query_only: this check writes nothing, not even the
    # bookkeeping table that the migration runner would create.
    conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=rw", uri=True, timeout=5)
    try:
        conn.execute("PRAGMA query_only=ON")
        problems = [r[0] for r in conn.execute("PRAGMA quick_check(3)")]
        if problems != ["ok"]:
            found = "; ".join(p.replace("\n", "; ") for p in problems)
            raise ValueError(f"is damaged ({found[:300]}): restore a backup")
        has_table = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
        ).fetchone()
        if not has_table:
            return 0
        return int(conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").fetchone()[0])
    finally:
        conn.close()


def _pg_schema_version(url: str) -> int:
    """The highest applied migration of a PostgreSQL database, read in a read-only transaction."""
    import asyncio

    import asyncpg

    async def read() -> int:
        conn = await asyncpg.connect(url, timeout=5)
        try:
            async with conn.transaction(readonly=True):
                if await conn.fetchval("SELECT to_regclass('schema_migrations')") is None:
                    return 0
                return int(await conn.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_migrations"))
        finally:
            await conn.close()

    return asyncio.run(read())


def check(db: Path | str, migrations_root: Path, content: Path) -> Health:
    """Check that the database opens, its schema matches the migrations exactly and the content pack
    loads. ``db`` is a SQLite file or a database URL; ``migrations_root`` holds ``sqlite/`` and
    ``postgres/``. Does not raise: every problem becomes an unhealthy verdict naming the reason."""
    if isinstance(db, str) and db.startswith(SQLITE_PREFIX):
        db = sqlite_path(db)
    if isinstance(db, Path):
        dialect = "sqlite"
        if db.is_dir():
            return Health(False, f"{db} is a folder, not a database file: name a file (it is created)")
        if not db.is_file():
            trace = dbfile.traces_of_lost(db)
            if trace is not None:
                return Health(False, f"database {db} is missing, but {trace.name} beside it shows there was one")
            return Health(False, f"database {db} does not exist (start the bot once, or run `studybot db migrate`)")
        running = dbfile.running_identity(db)
        if running is not None and running != dbfile.identity(db):
            return Health(False, f"the running studybot's database file {db} was deleted or replaced under it")
        if not (os.access(db, os.W_OK) and os.access(db.parent, os.W_OK)):
            return Health(False, f"database {db} is read-only: studybot must be able to write it and its folder")
        try:
            have = _schema_version(db)
        except sqlite3.Error as e:
            return Health(False, f"database {db} cannot be read: {e}")
        except ValueError as e:
            return Health(False, f"database {db} {e}")
    else:
        dialect, url, db = "postgres", db, redact(db)
        try:
            have = _pg_schema_version(url)
        except Exception as e:  # refused, wrong password, timeout: all mean "not ready"
            return Health(False, f"database {db} cannot be read: {str(e).strip() or type(e).__name__}")
    migrations_dir = folder_for(migrations_root, dialect)
    try:
        known = discover(migrations_dir)
    except StoreError as e:
        return Health(False, str(e))
    latest = known[-1].version if known else 0
    if have > latest:
        return Health(
            False,
            f"database {db} is at schema version {have}, newer than this studybot knows ({latest}): "
            "upgrade studybot or restore a backup",
        )
    if have < latest:
        pending = ", ".join(m.name for m in known[have:])
        return Health(False, f"database {db} is at schema version {have}, {latest} expected: pending {pending}")
    pack, errors = validate_pack(content)
    if pack is None:
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        return Health(False, f"content pack {content} has {len(errors)} problem(s): {errors[0]}{more}")
    return Health(True, f"OK: database {db} at schema version {have}; content {pack.summary()}")
