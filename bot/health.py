"""`studybot health`: is this installation able to serve? Checks only; it never changes anything."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from bot.core.content import validate_pack
from bot.core.ports import StoreError
from bot.storage.migrations import discover


@dataclass(frozen=True, slots=True)
class Health:
    """The verdict: ``ok`` and one line saying what was found (or what is wrong)."""

    ok: bool
    message: str


def _schema_version(db: Path) -> int:
    """The highest applied migration, read without writing; raises `sqlite3.Error`."""
    # mode=rw: never create a missing file; query_only: this check writes nothing, not even the
    # bookkeeping table that the migration runner would create.
    conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=rw", uri=True, timeout=5)
    try:
        conn.execute("PRAGMA query_only=ON")
        has_table = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
        ).fetchone()
        if not has_table:
            return 0
        return int(conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").fetchone()[0])
    finally:
        conn.close()


def check(db: Path, migrations_dir: Path, content: Path) -> Health:
    """Check that the database opens, its schema matches the migrations exactly and the content pack
    loads. Does not raise: every problem becomes an unhealthy verdict naming the reason."""
    if not db.is_file():
        return Health(False, f"database {db} does not exist (start the bot once, or run `studybot db migrate`)")
    try:
        have = _schema_version(db)
    except sqlite3.Error as e:
        return Health(False, f"database {db} cannot be read: {e}")
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
