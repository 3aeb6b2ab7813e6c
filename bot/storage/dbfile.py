"""The SQLite file on disk: its sidecar lock, its identity, and refusing to replace a lost database.

Beside ``studybot.db`` lives ``studybot.db.lock``. It is created the first time studybot opens the
database and stays, so it also records that a database lived here: if ``studybot.db`` is later missing
while the lock file (or SQLite's ``-wal``/``-shm``) is still there, the database was deleted or moved,
and studybot refuses to start on a new empty one (``rm studybot.db*`` clears all of them, for a real
fresh start). ``studybot run`` holds an exclusive `fcntl.flock` on it while it runs, so a second ``run``
on the same file is refused, and writes into it the identity (device, inode) of the file it opened, so
that ``studybot health`` can tell when the running bot's file was deleted or replaced under it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from bot.core.ports import StoreError

#: What a second `studybot run` on one SQLite file is told (several processes need PostgreSQL).
BUSY_TEXT = "another studybot runs on this database; for several processes use PostgreSQL"

Identity = tuple[int, int]


class DatabaseBusy(StoreError):
    """Another `studybot run` holds this database."""


class DatabaseLost(StoreError):
    """The database file was deleted or replaced while it was open, or is missing where one was."""


def lock_path(db: Path) -> Path:
    """The sidecar lock file of ``db``."""
    return db.with_name(db.name + ".lock")


def identity(db: Path) -> Identity | None:
    """(st_dev, st_ino) of ``db``, or None when there is no such file."""
    try:
        st = os.stat(db)
    except FileNotFoundError:
        return None
    return (st.st_dev, st.st_ino)


def traces_of_lost(db: Path) -> Path | None:
    """A file showing that a database lived at ``db`` although ``db`` is missing, else None."""
    if db.exists():
        return None
    for trace in (lock_path(db), db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        if trace.exists():
            return trace
    return None


def refuse_lost(db: Path) -> bool:
    """Raise `DatabaseLost` if ``db`` is missing where one was; return True if ``db`` will be new."""
    trace = traces_of_lost(db)
    if trace is not None:
        raise DatabaseLost(
            f"database {db} is missing, but {trace.name} beside it shows there was one: it was deleted or "
            f"moved. Put it (or a backup) back, or remove {db}* to start with an empty database"
        )
    return not db.exists()


class RunLock:
    """The exclusive lock a running bot holds on ``<db>.lock``; released by `release` or process exit."""

    def __init__(self, db: Path) -> None:
        self.path = lock_path(db)
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock at once or raise `DatabaseBusy`."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise DatabaseBusy(BUSY_TEXT) from None
        except OSError:
            os.close(fd)
            raise
        self._fd = fd

    def record(self, ident: Identity) -> None:
        """Write the identity of the database file this process has open (read by `running_identity`)."""
        if self._fd is None:
            return
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, f"{ident[0]} {ident[1]} {os.getpid()}\n".encode(), 0)

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            os.close(fd)  # closing the last descriptor releases the flock


def touch_marker(db: Path) -> None:
    """Create ``<db>.lock`` if missing (the record that a database lives here); never raises."""
    with contextlib.suppress(OSError):
        os.close(os.open(lock_path(db), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644))


def running_identity(db: Path) -> Identity | None:
    """The identity of the file a running `studybot run` has open, or None when none runs on ``db``."""
    try:
        fd = os.open(lock_path(db), os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            pass  # held: a bot runs
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        words = os.pread(fd, 100, 0).split()
        if len(words) < 2:
            return None
        return (int(words[0]), int(words[1]))
    except (OSError, ValueError):
        return None
    finally:
        os.close(fd)
