"""The `Store` port on SQLite through aiosqlite: WAL, foreign keys, one connection, group commit.

Every public method runs a whole unit of work in one hop to the connection's thread (see
`SqliteStore._run`), because each await on aiosqlite costs a thread hop; units of work that arrive
while a hop is under way share the next hop (a burst of 100 commands makes a few hops, not 100).
Answers and posts are group-committed: those arriving together are written in one transaction and
each caller is released only after that transaction has committed, so "recorded" is never said of an
answer that is not on disk, and no button ever names a post that is not.

Other processes may use the same file (the console beside a running bot, `studybot export`): the
member and post caches are trusted only while no other connection has committed (`PRAGMA
data_version`, see `SqliteStore._validate`). After every hop the file's identity is compared with
the one opened: a database deleted or replaced under the bot stops every write and acknowledgement
(`DatabaseLost`), and what the bot still holds is copied beside it.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections import OrderedDict
from collections.abc import Callable, Hashable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from bot.core.ports import (
    AnswerIn,
    AnswerOutcome,
    CardFn,
    LeaderRow,
    MemberRef,
    MemberStats,
    PostRecord,
    QuestionTally,
    StoreError,
    StreakFn,
    StreakState,
)
from bot.storage import dbfile, migrations
from bot.storage.dbfile import DatabaseBusy, DatabaseLost

__all__ = ["DatabaseBusy", "DatabaseLost", "SqliteStore"]

log = logging.getLogger(__name__)
T = TypeVar("T")

#: The most answers written in one group commit.
MAX_BATCH = 2000
#: Event-loop turns without a new write after which a group commit starts (see `_flush_loop`).
QUIET_TURNS = 3
#: Entries kept in the member and post caches (a few MB at most).
CACHE_SIZE = 20_000

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class _LRU(OrderedDict[K, V]):
    """A small least-recently-used cache."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def hit(self, key: K) -> V | None:
        value = self.get(key)
        if value is not None:
            self.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        self[key] = value
        self.move_to_end(key)
        if len(self) > self.size:
            self.popitem(last=False)


def ts(dt: datetime) -> str:
    """UTC ISO text that sorts in time order."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def from_ts(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _post(row: sqlite3.Row | tuple[Any, ...]) -> PostRecord:
    pid, gid, cid, mid, kind, item, created, msg, revealed = row
    return PostRecord(pid, gid, cid, mid, kind, item, datetime.fromisoformat(created), msg, from_ts(revealed))


_POST_COLS = "id, group_id, channel_id, member_id, kind, item_id, created_at, message_id, revealed_at"


def _streak(row: tuple[Any, ...]) -> StreakState:
    streak, best, last, freezes = row
    return StreakState(streak, best, date.fromisoformat(last) if last else None, freezes)


class _Pending:
    """A write waiting for the next group commit: ``fn(conn, *args)`` runs inside the batch's transaction."""

    __slots__ = ("args", "fn", "future")

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...], future: asyncio.Future[Any]) -> None:
        self.fn = fn
        self.args = args
        self.future = future


class _Call:
    """A unit of work waiting for the next hop to the connection's thread."""

    __slots__ = ("args", "fn", "future")

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...], future: asyncio.Future[Any]) -> None:
        self.fn = fn
        self.args = args
        self.future = future


class SqliteStore:
    """SQLite storage. Call `start()` before use and `close()` after; `start` applies migrations.

    Raises `StoreError` (or `SchemaTooNew`) from `start`; other methods raise `sqlite3.Error`
    subclasses wrapped in `StoreError` only for expected conditions."""

    def __init__(
        self,
        path: Path | str,
        *,
        migrations_dir: Path = migrations.DEFAULT_DIR,
        synchronous: str = "FULL",
    ) -> None:
        self.path = Path(path)
        self.migrations_dir = migrations_dir
        self.synchronous = synchronous
        self._db: aiosqlite.Connection | None = None
        self._pending: list[_Pending] = []
        self._flusher: asyncio.Task[None] | None = None
        self._calls: list[_Call] = []
        self._hopper: asyncio.Task[None] | None = None
        self.batches_committed = 0
        # Every command looks up its member and every click its post; caching both saves two hops to the
        # DB thread per answer. This process changes entries only through this class (or
        # `invalidate_caches`); other processes' commits are noticed by `_validate`.
        self._members: _LRU[tuple[str, str, str, str], MemberRef] = _LRU(CACHE_SIZE)
        self._posts: _LRU[int, PostRecord] = _LRU(CACHE_SIZE)
        self._watch: sqlite3.Connection | None = None
        self._watch_seen: int | None = None
        self._main_seen: int | None = None
        self._checking: tuple[int, asyncio.Future[None]] | None = None
        self._lock: dbfile.RunLock | None = None
        self._identity: dbfile.Identity | None = None
        self._lost: str | None = None

    def forget_post(self, post_id: int) -> None:
        """Drop one post from the cache; call after changing it via `run_sync`."""
        self._posts.pop(post_id, None)

    def invalidate_caches(self) -> None:
        """Forget cached members and posts; call after writing groups, members or posts via `run_sync`."""
        self._members.clear()
        self._posts.clear()

    # ------------------------------------------------------------------ lifecycle

    async def start(
        self, *, migrate: bool = True, exclusive: bool = False, shards: list[int] | None = None
    ) -> list[str]:
        """Open the database (creating it and its folder) and apply pending migrations; returns their names.

        ``exclusive`` (for `studybot run`): hold the database's lock file while open — for the Discord
        ``shards`` given (processes serving other shards may share the file), else for everything. Raises
        `DatabaseBusy` when another process holds it, `DatabaseLost` when the file is missing but its
        lock file or WAL shows that a database was there, `StoreError` (one line) for a file that is
        not a database, is damaged or is read-only, and `SchemaTooNew`."""
        memory = str(self.path) == ":memory:"
        new = False
        if not memory:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            new = dbfile.refuse_lost(self.path)
            if exclusive:
                self._lock = dbfile.RunLock(self.path, shards)
                self._lock.acquire()
        try:
            try:
                self._db = await aiosqlite.connect(self.path, isolation_level=None, check_same_thread=False)
                await self._run(self._configure)
                applied = await self._run(migrations.migrate, self.migrations_dir) if migrate else []
            except sqlite3.Error as e:
                raise StoreError(_describe(self.path, e)) from e
            if not memory:
                self._identity = dbfile.identity(self.path)
                if self._lock is not None and self._identity is not None:
                    self._lock.record(self._identity)
                else:
                    dbfile.touch_marker(self.path)
                self._watch = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True)
            if new:
                log.warning("created a new, empty database at %s", self.path)
            return applied
        except BaseException:
            await self.close()
            raise

    def _configure(self, conn: sqlite3.Connection) -> None:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self.synchronous}")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=10000")
        # SQLite opens a write-protected file read-only without a word (and in WAL mode even lets a write
        # transaction begin): write one header field, rolled back, to find out now and not at the first answer.
        conn.execute("BEGIN IMMEDIATE")
        try:
            (version,) = conn.execute("PRAGMA user_version").fetchone()
            conn.execute(f"PRAGMA user_version = {int(version)}")
        finally:
            conn.execute("ROLLBACK")

    async def close(self) -> None:
        """Finish pending answers, then close the connection. Safe to call twice."""
        if self._flusher is not None:
            await asyncio.shield(self._flusher)
        if self._hopper is not None:
            await asyncio.shield(self._hopper)
        if self._watch is not None:
            watch, self._watch = self._watch, None
            watch.close()
        if self._db is not None:
            db, self._db = self._db, None
            await db.close()
        if self._lock is not None:
            lock, self._lock = self._lock, None
            lock.release()

    @property
    def lost(self) -> str | None:
        """Why the database can no longer be used (its file was deleted or replaced), or None."""
        return self._lost

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(conn, *args)`` on the connection's own thread, in the next hop there.

        Calls made while a hop is under way wait for it and then go together, in order, in one hop: a
        hop costs a thread switch each way (and, while the event loop is busy, a wait for the GIL), so
        a burst shares a few of them. Each call is still its own unit of work with its own result or
        exception."""
        if self._db is None:
            raise StoreError("the store is not started (or already closed)")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._calls.append(_Call(fn, args, future))
        if self._hopper is None or self._hopper.done():
            self._hopper = loop.create_task(self._hop_loop())
        return await future

    async def _hop_loop(self) -> None:
        while self._calls:
            calls, self._calls = self._calls, []
            try:
                results = await self._hop(_run_calls, [(c.fn, c.args) for c in calls])
            except BaseException as e:
                for c in calls:
                    if not c.future.done():
                        c.future.set_exception(e if isinstance(e, Exception) else StoreError("cancelled"))
                if not isinstance(e, Exception):
                    raise
                continue
            for c, (ok, value) in zip(calls, results, strict=True):
                if c.future.done():  # the caller was cancelled; the work was done anyway
                    continue
                if ok:
                    c.future.set_result(value)
                else:
                    c.future.set_exception(value)

    async def _hop(self, fn: Callable[..., T], *args: Any) -> T:
        """One hop: ``fn(conn, *args)`` on the connection's thread.

        aiosqlite offers no public way to run a function on its thread; `_execute` is what each of its
        own methods uses (stable since 0.17; `tests/test_storage.py` pins the behaviour)."""
        if self._db is None:
            raise StoreError("the store is not started (or already closed)")
        if self._lost is not None:
            raise DatabaseLost(self._lost)
        db = self._db
        result: T = await db._execute(fn, db._conn, *args)  # type: ignore[no-untyped-call]
        if self._identity is not None and dbfile.identity(self.path) != self._identity:
            # Whatever fn wrote went to a file nobody will open again: say so instead of returning.
            await self._database_lost()
        return result

    async def _database_lost(self) -> None:
        """The file at our path is no longer the one we opened: stop, keep what we hold, say it loudly."""
        now = dbfile.identity(self.path)
        what = "deleted" if now is None else "replaced by another file"
        self._lost = (
            f"the database file {self.path} was {what} while studybot was running; nothing more is recorded"
            " (restart studybot once the database is back)"
        )
        self._identity = None
        rescue = self.path.with_name(f"{self.path.name}.rescued-{datetime.now(UTC):%Y%m%dT%H%M%SZ}")
        db = self._db
        try:
            if db is None:
                raise StoreError("closed")
            await db._execute(_rescue, db._conn, rescue)  # type: ignore[no-untyped-call]
        except Exception as e:  # the rescue is a bonus; the refusal below is what matters
            log.critical("%s; copying what it held to %s failed: %s", self._lost, rescue, e)
        else:
            log.critical(
                "%s. Everything it held is copied to %s: stop studybot and put that file back as %s",
                self._lost,
                rescue,
                self.path,
            )
        raise DatabaseLost(self._lost)

    # Caches and other processes. ``PRAGMA data_version`` on the watch connection (read on the event
    # loop, about 10 us) changes after any commit by another connection, ours included; the main
    # connection's value changes only after commits by *other* connections. So: while the watch value is
    # the one last checked, nobody has committed and a cached row is served as is; otherwise the main
    # connection is asked in a hop (one the lookup makes anyway on a cache miss, or one shared by the
    # lookups arriving together) and any foreign commit empties the caches.

    def _watch_version(self) -> int | None:
        """The watch connection's data version (None: no other process can exist; -1: unknown)."""
        if self._watch is None:
            return None
        try:
            return int(self._watch.execute("PRAGMA data_version").fetchone()[0])
        except sqlite3.Error:
            return -1

    def _trusted(self, seen: int | None) -> bool:
        return seen is None or (seen != -1 and seen == self._watch_seen)

    def _saw_main(self, main: int, seen: int | None) -> None:
        """Record the main connection's data version, read in a hop after ``seen`` was read."""
        if main != self._main_seen:
            self._members.clear()
            self._posts.clear()
            self._main_seen = main
        if seen is not None and seen != -1:
            self._watch_seen = seen

    async def _validate(self, seen: int | None) -> None:
        """Empty the caches if another connection committed; lookups with the same ``seen`` share the hop."""
        if self._checking is not None and self._checking[0] == seen and seen != -1:
            await asyncio.shield(self._checking[1])
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._checking = (seen if seen is not None else -1, future)
        try:
            self._saw_main(await self._run(_data_version), seen)
            future.set_result(None)
        except BaseException as e:
            future.set_exception(e if isinstance(e, Exception) else StoreError("cancelled"))
            future.exception()  # retrieved here: the waiters re-raise it
            raise
        finally:
            if self._checking is not None and self._checking[1] is future:
                self._checking = None

    async def run_sync(self, fn: Callable[..., T], *args: Any) -> T:
        """Public form of `_run` for other storage modules (scheduling, learning)."""
        return await self._run(fn, *args)

    # ------------------------------------------------------------------ members

    async def ensure_member(
        self,
        platform: str,
        group: str,
        channel: str,
        user: str,
        display_name: str,
        *,
        group_name: str = "",
        channel_name: str = "",
        now: datetime,
    ) -> MemberRef:
        display_name = display_name[:80]
        key = (platform, group, channel, user)
        seen = self._watch_version()
        cached = self._members.hit(key)
        if cached is not None and cached.display_name == display_name and not self._trusted(seen):
            await self._validate(seen)
            cached = self._members.hit(key)
        if cached is not None and cached.display_name == display_name:
            return cached
        fetched: tuple[MemberRef, int] = await self._run(
            _versioned,
            _ensure_member,
            platform,
            group,
            channel,
            user,
            display_name,
            group_name[:100],
            channel_name[:100],
            ts(now),
        )
        ref, main = fetched
        self._members.put(key, ref)
        self._saw_main(main, seen)  # after the put: a foreign commit seen here drops this entry too
        return ref

    async def find_member(self, group_id: int, query: str, channel_id: int) -> MemberRef | None:
        q = query.strip()
        if q.startswith("<@") and q.endswith(">"):
            q = q[2:-1].lstrip("!").split("|", 1)[0]
        q = q.lstrip("@")

        def find(conn: sqlite3.Connection) -> MemberRef | None:
            row = (
                conn.execute(
                    "SELECT m.id, m.user_id, m.display_name, m.tz, g.tz FROM members m JOIN groups g ON g.id = m.group_id"
                    " WHERE m.group_id = ? AND m.user_id = ?",
                    (group_id, q),
                ).fetchone()
                or conn.execute(
                    "SELECT m.id, m.user_id, m.display_name, m.tz, g.tz FROM members m JOIN groups g ON g.id = m.group_id"
                    " WHERE m.group_id = ? AND m.display_name = ? COLLATE NOCASE ORDER BY m.id LIMIT 1",
                    (group_id, q),
                ).fetchone()
            )
            if row is None:
                return None
            return MemberRef(row[0], group_id, channel_id, row[1], row[2], row[3], row[4])

        return await self._run(find)

    async def set_member_tz(self, member_id: int, tz: str | None) -> None:
        await self._run(_write, "UPDATE members SET tz = ? WHERE id = ?", (tz, member_id))
        self._members.clear()

    async def set_leaderboard_hidden(self, member_id: int, hidden: bool) -> None:
        await self._run(_write, "UPDATE members SET leaderboard_hidden = ? WHERE id = ?", (int(hidden), member_id))

    async def member_stats(self, member_id: int) -> MemberStats:
        def read(conn: sqlite3.Connection) -> MemberStats:
            row = conn.execute(
                "SELECT answered, correct, points, streak, best_streak, last_active_day, freezes, tz,"
                " leaderboard_hidden, joined_at FROM members WHERE id = ?",
                (member_id,),
            ).fetchone()
            if row is None:
                raise StoreError(f"no member {member_id}")
            return MemberStats(
                row[0],
                row[1],
                row[2],
                _streak(row[3:7]),
                row[7],
                bool(row[8]),
                datetime.fromisoformat(row[9]),
            )

        return await self._run(read)

    async def forget_member(self, member_id: int) -> int:
        def forget(conn: sqlite3.Connection) -> int:
            conn.execute("BEGIN IMMEDIATE")
            try:
                counted = 0
                for table, col in (
                    ("answers", "member_id"),
                    ("cards", "member_id"),
                    ("path_steps", "member_id"),
                    ("weekly_points", "member_id"),
                    ("posts", "member_id"),
                    ("members", "id"),
                ):
                    counted += conn.execute(f"SELECT COUNT(*) FROM {table} WHERE {col} = ?", (member_id,)).fetchone()[0]
                # ON DELETE CASCADE removes every row that refers to the member.
                conn.execute("DELETE FROM members WHERE id = ?", (member_id,))
                conn.execute("COMMIT")
                return int(counted)
            except BaseException:
                conn.execute("ROLLBACK")
                raise

        try:
            return await self._run(forget)
        finally:
            self.invalidate_caches()

    # ------------------------------------------------------------------ posts

    async def create_post(
        self, group_id: int, channel_id: int, member_id: int | None, kind: str, item_id: str, now: datetime
    ) -> PostRecord:
        # Group-committed like answers: a quiz's buttons name the post, so it is on disk before the reply.
        return await self._commit(_insert_post, group_id, channel_id, member_id, kind, item_id, ts(now))

    async def get_post(self, post_id: int) -> PostRecord | None:
        seen = self._watch_version()
        cached = self._posts.hit(post_id)
        if cached is not None and not self._trusted(seen):
            await self._validate(seen)
            cached = self._posts.hit(post_id)
        if cached is not None:
            return cached

        def get(conn: sqlite3.Connection) -> PostRecord | None:
            row = conn.execute(f"SELECT {_POST_COLS} FROM posts WHERE id = ?", (post_id,)).fetchone()
            return _post(row) if row else None

        fetched: tuple[PostRecord | None, int] = await self._run(_versioned, get)
        post, main = fetched
        if post is not None:
            self._posts.put(post_id, post)
        self._saw_main(main, seen)
        return post

    async def last_question_post(self, channel_id: int, member_id: int) -> PostRecord | None:
        def last(conn: sqlite3.Connection) -> PostRecord | None:
            row = conn.execute(
                f"SELECT {_POST_COLS} FROM posts WHERE id = (SELECT MAX(id) FROM ("
                " SELECT MAX(id) AS id FROM posts WHERE channel_id = ? AND member_id = ? AND kind = 'question'"
                " UNION ALL"
                " SELECT MAX(id) FROM posts WHERE channel_id = ? AND member_id IS NULL AND kind = 'question'"
                " AND message_id IS NOT NULL))",
                (channel_id, member_id, channel_id),
            ).fetchone()
            return _post(row) if row else None

        return await self._run(last)

    async def set_post_message(self, post_id: int, message_id: str) -> None:
        await self._run(_write, "UPDATE posts SET message_id = ? WHERE id = ?", (message_id, post_id))
        self._posts.pop(post_id, None)

    async def discard_post(self, post_id: int) -> bool:
        deleted = await self._run(_write, "DELETE FROM posts WHERE id = ? AND message_id IS NULL", (post_id,))
        self._posts.pop(post_id, None)
        return bool(deleted)

    async def shown_counts(self, member_id: int, kind: str) -> dict[str, int]:
        def counts(conn: sqlite3.Connection) -> dict[str, int]:
            rows = conn.execute(
                "SELECT item_id, COUNT(*) FROM posts WHERE member_id = ? AND kind = ? GROUP BY item_id",
                (member_id, kind),
            )
            return {item: n for item, n in rows}

        return await self._run(counts)

    async def choice_counts(self, post_id: int) -> dict[str, int]:
        def counts(conn: sqlite3.Connection) -> dict[str, int]:
            rows = conn.execute("SELECT choice, COUNT(*) FROM answers WHERE post_id = ? GROUP BY choice", (post_id,))
            return {c: n for c, n in rows}

        return await self._run(counts)

    # ------------------------------------------------------------------ answers (group commit)

    async def record_answer(
        self, answer: AnswerIn, streak_fn: StreakFn, card_fn: CardFn | None = None
    ) -> AnswerOutcome:
        return await self._commit(_record_one, answer, streak_fn, card_fn)

    async def _commit(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(conn, *args)`` in the next group commit; returns its result once that has committed."""
        if self._db is None:
            raise StoreError("the store is not started (or already closed)")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._pending.append(_Pending(fn, args, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = loop.create_task(self._flush_loop())
        return await future

    async def _flush_loop(self) -> None:
        # Writes that arrive while a batch is being committed wait for the next batch: under load the
        # batches grow by themselves. Before each commit the event loop gets turns for as long as writes
        # keep coming (until `QUIET_TURNS` turns bring none): the rest of a burst (100 clicks on one post)
        # joins the first click's commit instead of waiting for a second fsync, and a lone write waits
        # only those few turns (microseconds).
        while self._pending:
            seen, quiet = len(self._pending), 0
            while quiet < QUIET_TURNS and len(self._pending) < MAX_BATCH:
                await asyncio.sleep(0)
                quiet = quiet + 1 if len(self._pending) == seen else 0
                seen = len(self._pending)
            batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
            try:
                results = await self._run(_record_batch, [(p.fn, p.args) for p in batch])
            except BaseException as e:
                for p in batch:
                    if not p.future.done():
                        p.future.set_exception(e if isinstance(e, Exception) else StoreError("cancelled"))
                if not isinstance(e, Exception):
                    raise
                continue
            self.batches_committed += 1
            for p, result in zip(batch, results, strict=True):
                if p.future.done():
                    continue
                if isinstance(result, Exception):
                    p.future.set_exception(result)
                else:
                    p.future.set_result(result)

    async def question_tallies(self, member_id: int) -> list[QuestionTally]:
        def tallies(conn: sqlite3.Connection) -> list[QuestionTally]:
            rows = conn.execute(
                "SELECT question_id, COUNT(*), SUM(correct) FROM answers WHERE member_id = ? GROUP BY question_id",
                (member_id,),
            )
            return [QuestionTally(q, n, c) for q, n, c in rows]

        return await self._run(tallies)

    # ------------------------------------------------------------------ career path

    async def steps_done(self, member_id: int) -> set[int]:
        def done(conn: sqlite3.Connection) -> set[int]:
            return {r[0] for r in conn.execute("SELECT step FROM path_steps WHERE member_id = ?", (member_id,))}

        return await self._run(done)

    async def mark_step(self, member_id: int, step: int, now: datetime) -> bool:
        def mark(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "INSERT INTO path_steps (member_id, step, done_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                (member_id, step, ts(now)),
            )
            return cur.rowcount == 1

        return await self._run(mark)

    # ------------------------------------------------------------------ leaderboards

    async def leaderboard(self, group_id: int, week: date | None, limit: int) -> list[LeaderRow]:
        def board(conn: sqlite3.Connection) -> list[LeaderRow]:
            if week is None:
                rows = conn.execute(
                    "SELECT id, user_id, display_name, points, last_point_at FROM members"
                    " WHERE group_id = ? AND points > 0 AND leaderboard_hidden = 0"
                    " ORDER BY points DESC, last_point_at, id LIMIT ?",
                    (group_id, limit),
                )
            else:
                rows = conn.execute(
                    "SELECT m.id, m.user_id, m.display_name, w.points, w.last_point_at FROM weekly_points w"
                    " JOIN members m ON m.id = w.member_id"
                    " WHERE w.group_id = ? AND w.week = ? AND m.leaderboard_hidden = 0"
                    " ORDER BY w.points DESC, w.last_point_at, m.id LIMIT ?",
                    (group_id, week.isoformat(), limit),
                )
            return [LeaderRow(i, u, n, p, from_ts(t)) for i, u, n, p, t in rows]

        return await self._run(board)


# ---------------------------------------------------------------------- thread-side functions


def _write(conn: sqlite3.Connection, sql: str, params: tuple[Any, ...]) -> int:
    return conn.execute(sql, params).rowcount


def _data_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA data_version").fetchone()[0])


def _versioned(conn: sqlite3.Connection, fn: Callable[..., T], *args: Any) -> tuple[T, int]:
    """``fn(conn, *args)`` and the connection's data version read just after it, in the same hop."""
    return fn(conn, *args), _data_version(conn)


def _rescue(conn: sqlite3.Connection, target: Path) -> None:
    """Copy the open (deleted or replaced) database to ``target`` with SQLite's backup API."""
    dst = sqlite3.connect(target)
    try:
        conn.backup(dst)
    finally:
        dst.close()


def _describe(path: Path, e: sqlite3.Error) -> str:
    """One line for a database that cannot be opened."""
    text = str(e)
    if "not a database" in text:
        return f"{path} is not a studybot database (not SQLite, or its header is damaged): {text}"
    if "malformed" in text or "corrupt" in text:
        return f"database {path} is damaged ({text}): restore a backup (studybot db backup makes them)"
    if "readonly" in text or "read-only" in text:
        return f"database {path} is read-only ({text}): studybot must be able to write it and its folder"
    return f"cannot open database {path}: {text}"


def _ensure_member(
    conn: sqlite3.Connection,
    platform: str,
    group: str,
    channel: str,
    user: str,
    display_name: str,
    group_name: str,
    channel_name: str,
    now: str,
) -> MemberRef:
    row = conn.execute(
        "SELECT g.id, g.tz, c.id, m.id, m.display_name, m.tz FROM groups g"
        " LEFT JOIN channels c ON c.group_id = g.id AND c.external_id = ?"
        " LEFT JOIN members m ON m.group_id = g.id AND m.user_id = ?"
        " WHERE g.platform = ? AND g.external_id = ?",
        (channel, user, platform, group),
    ).fetchone()
    if row is not None and row[2] is not None and row[3] is not None and row[4] == display_name:
        return MemberRef(row[3], row[0], row[2], user, display_name, row[5], row[1])
    # Something is new (or renamed): write it in one transaction.
    conn.execute("BEGIN IMMEDIATE")
    try:
        gid, gtz = conn.execute(
            "INSERT INTO groups (platform, external_id, name, created_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (platform, external_id) DO UPDATE SET name = CASE WHEN excluded.name <> ''"
            " THEN excluded.name ELSE groups.name END RETURNING id, tz",
            (platform, group, group_name, now),
        ).fetchone()
        (cid,) = conn.execute(
            "INSERT INTO channels (group_id, external_id, name) VALUES (?, ?, ?)"
            " ON CONFLICT (group_id, external_id) DO UPDATE SET name = CASE WHEN excluded.name <> ''"
            " THEN excluded.name ELSE channels.name END RETURNING id",
            (gid, channel, channel_name),
        ).fetchone()
        mid, mtz = conn.execute(
            "INSERT INTO members (group_id, user_id, display_name, joined_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (group_id, user_id) DO UPDATE SET display_name = excluded.display_name RETURNING id, tz",
            (gid, user, display_name, now),
        ).fetchone()
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return MemberRef(mid, gid, cid, user, display_name, mtz, gtz)


def _record_one(
    conn: sqlite3.Connection, a: AnswerIn, streak_fn: StreakFn, card_fn: CardFn | None = None
) -> AnswerOutcome:
    at = ts(a.answered_at)
    row = conn.execute(
        "INSERT INTO answers (member_id, post_id, group_id, question_id, choice, correct, first_try, answered_at)"
        " VALUES (?, ?, ?, ?, ?, ?, NOT EXISTS (SELECT 1 FROM answers WHERE member_id = ? AND question_id = ?), ?)"
        " ON CONFLICT (member_id, post_id) DO NOTHING RETURNING first_try",
        (
            a.member_id,
            a.post_id,
            a.group_id,
            a.question_id,
            a.choice,
            int(a.correct),
            a.member_id,
            a.question_id,
            at,
        ),
    ).fetchone()
    state_row = conn.execute(
        "SELECT streak, best_streak, last_active_day, freezes FROM members WHERE id = ?", (a.member_id,)
    ).fetchone()
    if state_row is None:
        raise StoreError("that member no longer exists")
    state = _streak(state_row)
    if row is None:
        choice, correct, first = conn.execute(
            "SELECT choice, correct, first_try FROM answers WHERE member_id = ? AND post_id = ?",
            (a.member_id, a.post_id),
        ).fetchone()
        return AnswerOutcome(False, choice, bool(correct), bool(first), state)
    first_try = bool(row[0])
    new = streak_fn(state)
    point = int(a.correct and first_try)
    conn.execute(
        "UPDATE members SET answered = answered + 1, correct = correct + ?, points = points + ?,"
        " last_point_at = CASE WHEN ? THEN ? ELSE last_point_at END,"
        " streak = ?, best_streak = ?, last_active_day = ?, freezes = ? WHERE id = ?",
        (
            int(a.correct),
            point,
            point,
            at,
            new.streak,
            new.best,
            new.last_day.isoformat() if new.last_day else None,
            new.freezes,
            a.member_id,
        ),
    )
    if point:
        conn.execute(
            "INSERT INTO weekly_points (member_id, week, group_id, points, last_point_at) VALUES (?, ?, ?, 1, ?)"
            " ON CONFLICT (member_id, week) DO UPDATE SET points = points + 1, last_point_at = excluded.last_point_at",
            (a.member_id, a.week.isoformat(), a.group_id, at),
        )
    if card_fn is not None:
        # The review card moves with the answer, in the same transaction (never on a duplicate click).
        old = conn.execute(
            "SELECT card FROM cards WHERE member_id = ? AND question_id = ?", (a.member_id, a.question_id)
        ).fetchone()
        try:
            card, due = card_fn(old[0] if old else None)
        except Exception:  # a broken card must not cost the member (or the batch) the answer
            log.exception("review card of member %s for %s not updated", a.member_id, a.question_id)
        else:
            conn.execute(
                "INSERT INTO cards (member_id, question_id, card, due) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (member_id, question_id) DO UPDATE SET card = excluded.card, due = excluded.due",
                (a.member_id, a.question_id, card, ts(due)),
            )
    return AnswerOutcome(True, a.choice, a.correct, first_try, new)


def _insert_post(
    conn: sqlite3.Connection, group_id: int, channel_id: int, member_id: int | None, kind: str, item_id: str, at: str
) -> PostRecord:
    row = conn.execute(
        "INSERT INTO posts (group_id, channel_id, member_id, kind, item_id, created_at)"
        f" VALUES (?, ?, ?, ?, ?, ?) RETURNING {_POST_COLS}",
        (group_id, channel_id, member_id, kind, item_id, at),
    ).fetchone()
    return _post(row)


def _run_calls(
    conn: sqlite3.Connection, calls: list[tuple[Callable[..., Any], tuple[Any, ...]]]
) -> list[tuple[bool, Any]]:
    """Run several units of work in order; each result is (True, value) or (False, the exception)."""
    out: list[tuple[bool, Any]] = []
    for fn, args in calls:
        try:
            out.append((True, fn(conn, *args)))
        except Exception as e:
            out.append((False, e))
    return out


def _record_batch(
    conn: sqlite3.Connection, items: list[tuple[Callable[..., Any], tuple[Any, ...]]]
) -> list[Any | Exception]:
    """Run a batch of writes (answers, posts) in one transaction; each in a savepoint so one bad write
    (say, for a member deleted meanwhile) fails alone. Commits before returning."""
    results: list[Any | Exception] = []
    conn.execute("BEGIN IMMEDIATE")
    try:
        for fn, args in items:
            conn.execute("SAVEPOINT one")
            try:
                results.append(fn(conn, *args))
                conn.execute("RELEASE one")
            except (sqlite3.Error, StoreError) as e:
                conn.execute("ROLLBACK TO one")
                conn.execute("RELEASE one")
                results.append(e if isinstance(e, StoreError) else StoreError(f"not recorded: {e}"))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return results
