"""`studybot db backup PATH`: a consistent copy of a live database through SQLite's online backup API."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path


class BackupError(Exception):
    """The backup could not be made; the message says why. Nothing is left at the target path."""


@dataclass(frozen=True, slots=True)
class BackupResult:
    """What was written: the file, its size and the schema version it holds."""

    path: Path
    size: int
    schema_version: int


def backup(source: Path, target: Path) -> BackupResult:
    """Copy ``source`` to ``target`` while the bot may be running, and verify the copy.

    The copy is one consistent snapshot: the backup API reads every page inside one read transaction
    (in WAL mode writers go on meanwhile). It is written beside the target, converted to a
    self-contained rollback-journal file, checked with ``PRAGMA integrity_check`` and only then renamed
    over ``target``. Raises `BackupError` (a missing source, the target being the live database, a
    failed check or an I/O error)."""
    if not source.is_file():
        raise BackupError(f"database {source} does not exist")
    if target.is_dir():
        raise BackupError(f"{target} is a folder: give the backup's file name")
    if target.resolve() == source.resolve():
        raise BackupError("the backup target is the live database itself")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
    try:
        src = sqlite3.connect(f"{source.resolve().as_uri()}?mode=rw", uri=True, timeout=30)
        try:
            dst = sqlite3.connect(partial, isolation_level=None)
            try:
                src.backup(dst)  # pages=-1: all pages in one step, so one snapshot
                # The copy carries the source's WAL flag; make it one file that can be copied around.
                dst.execute("PRAGMA journal_mode=DELETE")
                verdict = dst.execute("PRAGMA integrity_check").fetchone()[0]
                if verdict != "ok":
                    raise BackupError(f"the copy failed its integrity check: {verdict}")
                row = dst.execute("SELECT name FROM sqlite_master WHERE name = 'schema_migrations'").fetchone()
                version = (
                    int(dst.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").fetchone()[0])
                    if row
                    else 0
                )
            finally:
                dst.close()
        finally:
            src.close()
        with partial.open("rb+") as f:
            os.fsync(f.fileno())
        os.replace(partial, target)
    except sqlite3.Error as e:
        raise BackupError(f"backup of {source} failed: {e}") from e
    except OSError as e:
        raise BackupError(f"cannot write {target}: {e}") from e
    finally:
        with contextlib.suppress(OSError):
            partial.unlink()
    return BackupResult(target, target.stat().st_size, version)
