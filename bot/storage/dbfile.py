"""The SQLite file on disk: its sidecar lock, its identity, and refusing to replace a lost database.

Beside ``studybot.db`` lives ``studybot.db.lock``. It is created the first time studybot opens the
database and stays, so it also records that a database lived here: if ``studybot.db`` is later missing
while the lock file (or SQLite's ``-wal``/``-shm``) is still there, the database was deleted or moved,
and studybot refuses to start on a new empty one (``rm studybot.db*`` clears all of them, for a real
fresh start). ``studybot run`` holds an exclusive lock on it while it runs (`RunLock`), so a second
``run`` on the same file is refused, and writes into it the identity (device, inode) of the file it opened, so
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
    """The locks a running bot holds on ``<db>.lock``; released by `release` or by the process's end.

    POSIX record locks: byte 1 + n stands for Discord shard n, and a bot that serves everything (no
    `STUDYBOT_DISCORD_SHARD_IDS`) locks every byte from 1 on. So processes that split the shards of
    one bot between them share the file, and any other second `run` is refused. (Record locks belong
    to the process: nothing else in it may open and close the lock file while it runs.)"""

    def __init__(self, db: Path, shards: list[int] | None = None) -> None:
        self.path = lock_path(db)
        self.shards = shards
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the locks at once or raise `DatabaseBusy`."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            if self.shards is None:
                self._lock(fd, 0, 1, BUSY_TEXT)
            for shard in self.shards or ():
                self._lock(
                    fd,
                    1,
                    1 + shard,
                    f"another studybot on this database already serves Discord shard {shard}: give each process"
                    " its own STUDYBOT_DISCORD_SHARD_IDS (for several processes, PostgreSQL is the better home)",
                )
        except BaseException:
            os.close(fd)  # drops any lock taken here
            raise
        self._fd = fd

    @staticmethod
    def _lock(fd: int, length: int, start: int, busy: str) -> None:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, length, start)
        except (BlockingIOError, PermissionError):
            raise DatabaseBusy(busy) from None

    def record(self, ident: Identity) -> None:
        """Write the identity of the database file this process has open (read by `running_identity`);
        processes sharing the file write the same line."""
        if self._fd is not None:
            os.pwrite(self._fd, f"{ident[0]} {ident[1]}".ljust(63).encode() + b"\n", 0)

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)  # closing releases the process's record locks


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
            fcntl.lockf(fd, fcntl.LOCK_SH | fcntl.LOCK_NB, 0, 1)
        except (BlockingIOError, PermissionError):
            pass  # held: a bot runs
        else:
            fcntl.lockf(fd, fcntl.LOCK_UN, 0, 1)
            return None
        words = os.pread(fd, 100, 0).split()
        if len(words) < 2:
            return None
        return (int(words[0]), int(words[1]))
    except (OSError, ValueError):
        return None
    finally:
        os.close(fd)
