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
import json
import logging
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from bot.core.ports import (
    AnswerIn,
    AnswerOutcome,
    CardFn,
    D,
    DealReads,
    DealView,
    LeaderRow,
    MemberRef,
    MemberStats,
    PostRecord,
    QuestionTally,
    StoreError,
    StreakFn,
)
from bot.storage import dbfile, migrations, rows, sql
from bot.storage.dbfile import DatabaseBusy, DatabaseLost
from bot.storage.dialect import NAME_EQUALS
from bot.storage.rows import CACHE_SIZE, LRU, MAX_BATCH, QUIET_TURNS, SingleFlight, from_ts, ts

__all__ = ["MAX_BATCH", "QUIET_TURNS", "DatabaseBusy", "DatabaseLost", "SqliteStore", "from_ts", "ts"]

_FIND_BY_NAME = sql.find_member_by_name(NAME_EQUALS["sqlite"])

log = logging.getLogger(__name__)
T = TypeVar("T")

#: A batch of posts alone (quiz, tip, review) is committed without an fsync: the reply that names a post
#: promises nothing a power cut could break, as long as its id is never handed to another post. So post
#: ids stay at or below a durable mark (a row of ``sqlite_sequence`` under this name), raised
#: `POST_ID_BLOCK` ids ahead with an fsync when a batch passes it; at start, AUTOINCREMENT is moved above
#: the mark. An answer to such a post commits with an fsync, which makes the post durable too (the WAL
#: is written in order).
POST_ID_MARK = "posts:durable-ids"
POST_ID_BLOCK = 1000


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
        self._members: LRU[tuple[str, str, str, str], MemberRef] = LRU(CACHE_SIZE)
        # Members' last active days from answers recorded since their refs were cached (`MemberRef.last_day`).
        self._days: LRU[int, date] = LRU(CACHE_SIZE)
        self._posts: LRU[int, PostRecord] = LRU(CACHE_SIZE)
        # The clicks of a burst on a post not yet cached share one look-up.
        self._post_flights: SingleFlight[int, PostRecord | None] = SingleFlight()
        self._watch: sqlite3.Connection | None = None
        # The watch connection is read on the event loop and, right after each group commit, on the
        # connection's thread (see `_flush_loop`): one at a time.
        self._watch_lock = threading.Lock()
        self._watch_seen: int | None = None
        self._watch_turn: int | None = None
        self._main_seen: int | None = None
        self._checking: tuple[int, asyncio.Future[None]] | None = None
        self._lock: dbfile.RunLock | None = None
        self._identity: dbfile.Identity | None = None
        self._lost: str | None = None
        #: The durable post id mark (read and written on the connection's thread only).
        self._post_mark = _PostMark()

    @property
    def cache_stats(self) -> dict[str, int]:
        """Hits and misses of the member and post caches (other processes' commits are seen through
        ``data_version``, so nothing is sent or received: those stay 0)."""
        return {
            "member_hits": self._members.hits,
            "member_misses": self._members.misses,
            "post_hits": self._posts.hits,
            "post_misses": self._posts.misses,
            "sent": 0,
            "received": 0,
        }

    @property
    def where(self) -> str:
        """The database file (for logs)."""
        return str(self.path)

    def forget_post(self, post_id: int) -> None:
        """Drop one post from the cache; call after changing it via `run_sync`."""
        self._posts.pop(post_id, None)
        self._post_flights.forget(post_id)

    def invalidate_caches(self) -> None:
        """Forget cached members and posts; call after writing groups, members or posts via `run_sync`."""
        self._members.clear()
        self._days.clear()
        self._posts.clear()
        self._post_flights.clear()

    async def cached_member_changed(self, member_id: int | None) -> None:
        """What the member lookup reads beside a member (`MemberRef.notice`, ``deck``) was changed via
        `run_sync`: a notice queued for ``member_id``, or a channel's deck (None: every member). Their
        cached refs are dropped (other processes see the commit through ``data_version``)."""
        if member_id is None:
            self._members.clear()
        else:
            rows.drop_member(self._members, member_id)

    def drop_cached_member(self, member_id: int) -> None:
        """Drop the member's cached refs here only (their notices were just taken: the next look-up reads
        that none waits)."""
        rows.drop_member(self._members, member_id)

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
            if self.path.is_dir():
                raise StoreError(f"{self.path} is a folder, not a database file: name a file (it is created)")
            self.path.parent.mkdir(parents=True, exist_ok=True)
            new = dbfile.refuse_lost(self.path)
            if exclusive:
                self._lock = dbfile.RunLock(self.path, shards)
                self._lock.acquire()
        try:
            try:
                self._db = await _connect(self.path)
                await self._run(self._configure)
                applied = await self._run(migrations.migrate, self.migrations_dir) if migrate else []
                if self.synchronous.upper() == "FULL":
                    await self._run(self._post_mark.restore)
            except sqlite3.Error as e:
                raise StoreError(_describe(self.path, e)) from e
            if not memory:
                self._identity = dbfile.identity(self.path)
                if self._lock is not None and self._identity is not None:
                    self._lock.record(self._identity)
                else:
                    dbfile.touch_marker(self.path)
                self._watch = sqlite3.connect(
                    f"{self.path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False
                )
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
            with self._watch_lock:
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
        """The watch connection's data version (None: no other process can exist; -1: unknown).

        Read once per event-loop turn: the lookups of a burst (two per click) run in the same few
        turns, and a read per lookup cost ~20 us each on the loop (bench P2). A commit by another
        process lands between turns or within one; either way the next turn sees it, as a read per
        lookup would have at the next lookup."""
        if self._watch is None:
            return None
        if self._watch_turn is not None:
            return self._watch_turn
        version = self._read_watch()
        if version is None or version == -1:
            return version
        self._watch_turn = version
        asyncio.get_running_loop().call_soon(self._next_turn)
        return version

    def _read_watch(self) -> int | None:
        """The watch connection's data version now, from any thread (None: no watch; -1: unknown)."""
        with self._watch_lock:
            if self._watch is None:
                return None
            try:
                return int(self._watch.execute("PRAGMA data_version").fetchone()[0])
            except sqlite3.Error:
                return -1

    def _next_turn(self) -> None:
        self._watch_turn = None

    def _trusted(self, seen: int | None) -> bool:
        return seen is None or (seen != -1 and seen == self._watch_seen)

    def _saw_main(self, main: int, seen: int | None) -> None:
        """Record the main connection's data version, read in a hop after ``seen`` was read."""
        if main != self._main_seen:
            self._members.clear()
            self._posts.clear()
            self._post_flights.clear()
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
            return self._with_day(key, cached)
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
        return self._with_day(key, ref)

    def _with_day(self, key: tuple[str, str, str, str], ref: MemberRef) -> MemberRef:
        return rows.cached_with_day(self._members, key, ref, self._days.get(ref.member_id))

    async def find_member(self, group_id: int, query: str, channel_id: int) -> MemberRef | None:
        q = query.strip()
        if q.startswith("<@") and q.endswith(">"):
            q = q[2:-1].lstrip("!").split("|", 1)[0]
        q = q.lstrip("@")

        def find(conn: sqlite3.Connection) -> MemberRef | None:
            row = (
                conn.execute(sql.FIND_MEMBER_BY_ID, (group_id, q)).fetchone()
                or conn.execute(_FIND_BY_NAME, (group_id, q)).fetchone()
            )
            if row is None:
                return None
            return MemberRef(row[0], group_id, channel_id, row[1], row[2], row[3], row[4])

        return await self._run(find)

    async def set_member_tz(self, member_id: int, tz: str | None) -> None:
        await self._run(_write, sql.SET_MEMBER_TZ, (tz, member_id))
        self._members.clear()

    async def set_leaderboard_hidden(self, member_id: int, hidden: bool) -> None:
        await self._run(_write, sql.SET_LEADERBOARD_HIDDEN, (int(hidden), member_id))

    async def member_stats(self, member_id: int) -> MemberStats:
        def read(conn: sqlite3.Connection) -> MemberStats:
            row = conn.execute(sql.MEMBER_STATS, (member_id,)).fetchone()
            if row is None:
                raise StoreError(f"no member {member_id}")
            return MemberStats(
                row[0],
                row[1],
                row[2],
                rows.streak(row[3:7]),
                row[7],
                bool(row[8]),
                datetime.fromisoformat(row[9]),
            )

        return await self._run(read)

    async def forget_member(self, member_id: int) -> int:
        def forget(conn: sqlite3.Connection) -> int:
            conn.execute("BEGIN IMMEDIATE")
            try:
                (counted,) = conn.execute(sql.COUNT_MEMBER_ROWS, (member_id,) * len(sql.MEMBER_TABLES)).fetchone()
                # ON DELETE CASCADE removes every row that refers to the member.
                conn.execute(sql.DELETE_MEMBER, (member_id,))
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

    async def deal_post(
        self,
        group_id: int,
        channel_id: int,
        member_id: int,
        kind: str,
        now: datetime,
        reads: DealReads,
        choose: Callable[[DealView], D | None],
    ) -> tuple[PostRecord, D] | None:
        # The reads, the pick and the insert in one write of the next group commit: one trip to the
        # database thread (a batch of posts alone commits without an fsync, see `POST_ID_MARK`).
        dealt: tuple[PostRecord, D] | None = await self._commit(
            _DEAL_POST, group_id, channel_id, member_id, kind, ts(now), reads, choose
        )
        return dealt

    async def get_post(self, post_id: int) -> PostRecord | None:
        seen = self._watch_version()
        cached = self._posts.hit(post_id)
        if cached is not None and not self._trusted(seen):
            await self._validate(seen)
            cached = self._posts.hit(post_id)
        if cached is not None:
            return cached
        # Look-ups that saw the same data version share one query (the post is cached when it lands).
        return await self._post_flights.run(post_id, seen, lambda: self._fetch_post(post_id, seen), self._keep_post)

    async def _fetch_post(self, post_id: int, seen: int | None) -> PostRecord | None:
        fetched: tuple[PostRecord | None, int] = await self._run(_versioned, _get_post, post_id)
        post, main = fetched
        self._saw_main(main, seen)  # a foreign commit seen here keeps this post out of the cache too
        return post

    def _keep_post(self, post: PostRecord | None) -> None:
        if post is not None:
            self._posts.put(post.id, post)

    async def last_question_post(self, channel_id: int, member_id: int) -> PostRecord | None:
        def last(conn: sqlite3.Connection) -> PostRecord | None:
            row = conn.execute(sql.LAST_QUESTION_POST, (channel_id, member_id, channel_id)).fetchone()
            return rows.post(row) if row else None

        return await self._run(last)

    async def set_post_message(self, post_id: int, message_id: str) -> None:
        await self._run(_write, sql.SET_POST_MESSAGE, (message_id, post_id))
        # The cached copy (a post this process created) learns its message id and stays: the burst of
        # clicks on a scheduled post then reads no post. A look-up under way may have read it before.
        self._post_flights.forget(post_id)
        cached = self._posts.get(post_id)
        if cached is not None:
            self._posts[post_id] = replace(cached, message_id=message_id)

    async def discard_post(self, post_id: int) -> bool:
        deleted = await self._run(_write, sql.DISCARD_POST, (post_id,))
        self.forget_post(post_id)
        return bool(deleted)

    async def shown_counts(self, member_id: int, kind: str) -> dict[str, int]:
        def counts(conn: sqlite3.Connection) -> dict[str, int]:
            return {item: n for item, n in conn.execute(sql.SHOWN_COUNTS, (member_id, kind))}

        return await self._run(counts)

    async def choice_counts(self, post_id: int) -> dict[str, int]:
        def counts(conn: sqlite3.Connection) -> dict[str, int]:
            return {c: n for c, n in conn.execute(sql.CHOICE_COUNTS, (post_id,))}

        return await self._run(counts)

    # ------------------------------------------------------------------ answers (group commit)

    async def record_answer(
        self, answer: AnswerIn, streak_fn: StreakFn, card_fn: CardFn | None = None
    ) -> AnswerOutcome:
        # Awaits the commit's future itself (no `_commit` coroutine in between): a burst of 10,000 clicks
        # waits here all at once, and each waiting coroutine is more for the collector to walk (bench P2).
        # `_flush_loop` tells the member cache the new last active day.
        return await self._enqueue(_record_one, (answer, streak_fn, card_fn))

    async def _commit(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(conn, *args)`` in the next group commit; returns its result once that has committed."""
        return await self._enqueue(fn, args)

    def _enqueue(self, fn: Callable[..., T], args: tuple[Any, ...]) -> asyncio.Future[T]:
        """``fn(conn, *args)`` for the next group commit; the future is done once that has committed."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        if self._db is None:
            future.set_exception(StoreError("the store is not started (or already closed)"))
            return future
        self._pending.append(_Pending(fn, args, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = loop.create_task(self._flush_loop())
        return future

    async def _flush_loop(self) -> None:
        # Writes that arrive while a batch is being committed wait for the next batch: under load the
        # batches grow by themselves. Before each commit the event loop gets turns for as long as writes
        # keep coming (until `QUIET_TURNS` turns bring none): the rest of a burst (100 clicks on one post)
        # joins the first click's commit instead of waiting for a second fsync, and a lone write waits
        # only those few turns (microseconds). Once `EAGER_BATCH` writes wait, the commit starts anyway, so
        # the first clicks of a long burst are answered while the rest are still arriving.
        while self._pending:
            await rows.batch_forming(self._pending)
            batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
            try:
                # Streak rules still waiting for their inputs (a burst's excused days): once per batch.
                failed = await rows.late_rules_failed(p.args[1] for p in batch if p.fn is _record_one)
                if failed:
                    batch = rows.drop_late_failures(batch, failed, _record_one, lambda p: (p.fn, p.args, p.future))
                    if not batch:
                        continue
                # Posts alone need no fsync (see `POST_ID_MARK`); anything else in the batch does.
                lazy = self._post_mark.enabled and all(p.fn in _POST_WRITES for p in batch)
                committed: tuple[list[Any], int | None, int] = await self._run(
                    _versioned_batch,
                    [(p.fn, p.args) for p in batch],
                    self._read_watch,
                    self._post_mark if lazy else None,
                )
            except BaseException as e:
                for p in batch:
                    if not p.future.done():
                        p.future.set_exception(e if isinstance(e, Exception) else StoreError("cancelled"))
                if not isinstance(e, Exception):
                    raise
                continue
            results, watched, main = committed
            # Our own commit changed the watch's version: checked here, so the next look-ups need no hop.
            self._saw_main(main, watched)
            self.batches_committed += 1
            for p, result in zip(batch, results, strict=True):
                if isinstance(result, Exception):
                    if not p.future.done():
                        p.future.set_exception(result)
                    continue
                if p.fn is _record_one:
                    if result.recorded and result.streak.last_day is not None:  # cached refs learn it (`_with_day`)
                        self._days.put(p.args[0].member_id, result.streak.last_day)
                elif p.fn in _POST_WRITES:
                    post = _made_post(p.fn, result)
                    if post is not None and post.kind == "question":
                        # Clicks on it come next (a quiz's member, a scheduled post's channel): no look-up for them.
                        self._posts.put(post.id, post)
                if not p.future.done():
                    p.future.set_result(result)

    async def question_tallies(self, member_id: int) -> list[QuestionTally]:
        def tallies(conn: sqlite3.Connection) -> list[QuestionTally]:
            return [QuestionTally(q, n, c) for q, n, c in conn.execute(sql.QUESTION_TALLIES, (member_id,))]

        return await self._run(tallies)

    # ------------------------------------------------------------------ career path

    async def steps_done(self, member_id: int) -> set[int]:
        def done(conn: sqlite3.Connection) -> set[int]:
            return {r[0] for r in conn.execute(sql.STEPS_DONE, (member_id,))}

        return await self._run(done)

    async def mark_step(self, member_id: int, step: int, now: datetime) -> bool:
        def mark(conn: sqlite3.Connection) -> bool:
            return conn.execute(sql.MARK_STEP, (member_id, step, ts(now))).rowcount == 1

        return await self._run(mark)

    # ------------------------------------------------------------------ leaderboards

    async def leaderboard(self, group_id: int, week: date | None, limit: int) -> list[LeaderRow]:
        def board(conn: sqlite3.Connection) -> list[LeaderRow]:
            if week is None:
                found = conn.execute(sql.BOARD_ALL_TIME, (group_id, limit))
            else:
                found = conn.execute(sql.BOARD_WEEK, (group_id, week.isoformat(), limit))
            return [LeaderRow(i, u, n, p, from_ts(t)) for i, u, n, p, t in found]

        return await self._run(board)


# ---------------------------------------------------------------------- thread-side functions


def _write(conn: sqlite3.Connection, sql: str, params: tuple[Any, ...]) -> int:
    return conn.execute(sql, params).rowcount


def _get_post(conn: sqlite3.Connection, post_id: int) -> PostRecord | None:
    row = conn.execute(sql.GET_POST, (post_id,)).fetchone()
    return rows.post(row) if row else None


def _data_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA data_version").fetchone()[0])


def _versioned(conn: sqlite3.Connection, fn: Callable[..., T], *args: Any) -> tuple[T, int]:
    """``fn(conn, *args)`` and the connection's data version read just after it, in the same hop."""
    return fn(conn, *args), _data_version(conn)


class _PostMark:
    """The durable post id mark (see `POST_ID_MARK`), used on the connection's thread only."""

    def __init__(self) -> None:
        self.enabled = False
        self.value = 0

    def restore(self, conn: sqlite3.Connection) -> None:
        """At start: AUTOINCREMENT continues above every post id that may have been handed out."""
        (mark,) = conn.execute("SELECT MAX(seq) FROM sqlite_sequence WHERE name = ?", (POST_ID_MARK,)).fetchone()
        self.value = int(mark or 0)
        self.enabled = True
        if not mark:
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            if conn.execute("UPDATE sqlite_sequence SET seq = MAX(seq, ?) WHERE name = 'posts'", (mark,)).rowcount == 0:
                conn.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('posts', ?)", (mark,))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def cover(self, conn: sqlite3.Connection, post_id: int) -> None:
        """Make the mark durably at least ``post_id`` (an fsync, once per `POST_ID_BLOCK` posts)."""
        if post_id <= self.value:
            return
        mark = post_id + POST_ID_BLOCK
        conn.execute("BEGIN IMMEDIATE")
        try:
            (old,) = conn.execute("SELECT MAX(seq) FROM sqlite_sequence WHERE name = ?", (POST_ID_MARK,)).fetchone()
            if old is None:
                conn.execute("INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)", (POST_ID_MARK, mark))
            else:
                mark = max(mark, int(old))
                conn.execute("UPDATE sqlite_sequence SET seq = ? WHERE name = ?", (mark, POST_ID_MARK))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        self.value = mark


def _versioned_batch(
    conn: sqlite3.Connection,
    items: list[tuple[Callable[..., Any], tuple[Any, ...]]],
    read_watch: Callable[[], int | None],
    lazy: _PostMark | None = None,
) -> tuple[list[Any | Exception], int | None, int]:
    """`_record_batch`, then the watch connection's data version and, read after it, the connection's own:
    like `_versioned`, they tell whether anyone but us has committed up to the moment the watch was read.

    With ``lazy`` (a batch of posts alone) the commit makes no fsync, and the post id mark is raised
    (with one) if a post passed it, before anyone hears of these posts."""
    if lazy is None:
        results = _record_batch(conn, items)
    else:
        conn.execute("PRAGMA synchronous=NORMAL")  # not allowed inside a transaction
        try:
            results = _record_batch(conn, items)
        finally:
            conn.execute("PRAGMA synchronous=FULL")
        ids = [p.id for p in (_made_post(fn, r) for (fn, _), r in zip(items, results, strict=True)) if p is not None]
        if ids:
            lazy.cover(conn, max(ids))
    seen = read_watch()
    return results, seen, _data_version(conn)


def _rescue(conn: sqlite3.Connection, target: Path) -> None:
    """Copy the open (deleted or replaced) database to ``target`` with SQLite's backup API."""
    dst = sqlite3.connect(target)
    try:
        conn.backup(dst)
    finally:
        dst.close()


async def _connect(path: Path) -> aiosqlite.Connection:
    """Open ``path`` on aiosqlite's worker thread. When the opening fails aiosqlite only asks that thread
    to stop; wait until it has, or it reports to an event loop that is closed by then (a traceback after
    the one-line refusal)."""
    connection = aiosqlite.connect(path, isolation_level=None, check_same_thread=False)
    try:
        return await connection
    except BaseException:
        await asyncio.to_thread(connection._thread.join, 5)
        raise


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
    row = conn.execute(sql.MEMBER_LOOKUP, (channel, user, platform, group)).fetchone()
    if row is not None and row[2] is not None and row[3] is not None and row[4] == display_name:
        return rows.member_ref(row, user, display_name)
    # Something is new (or renamed): write it in one transaction.
    conn.execute("BEGIN IMMEDIATE")
    try:
        (gid, _) = conn.execute(sql.UPSERT_GROUP, (platform, group, group_name, now)).fetchone()
        conn.execute(sql.UPSERT_CHANNEL, (gid, channel, channel_name)).fetchone()
        conn.execute(sql.UPSERT_MEMBER, (gid, user, display_name, now)).fetchone()
        # Read back with what the lookup reads beside the member (a renamed member may have notices).
        row = conn.execute(sql.MEMBER_LOOKUP, (channel, user, platform, group)).fetchone()
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return rows.member_ref(row, user, display_name)


def _record_one(
    conn: sqlite3.Connection, a: AnswerIn, streak_fn: StreakFn, card_fn: CardFn | None = None
) -> AnswerOutcome:
    at = ts(a.answered_at)
    row = conn.execute(sql.INSERT_ANSWER, rows.answer_params(a, at)).fetchone()
    state_row = conn.execute(sql.STREAK_STATE, (a.member_id,)).fetchone()
    if state_row is None:
        raise StoreError("that member no longer exists")
    state = rows.streak(state_row)
    if row is None:
        choice, correct, first = conn.execute(sql.EARLIER_ANSWER, (a.member_id, a.post_id)).fetchone()
        return AnswerOutcome(False, choice, bool(correct), bool(first), state)
    first_try = bool(row[0])
    new = streak_fn(state)
    point = int(a.correct and first_try)
    conn.execute(sql.SCORE_MEMBER, rows.score_params(a, new, point, at))
    if point:
        conn.execute(sql.ADD_WEEKLY_POINT, (a.member_id, a.week.isoformat(), a.group_id, at))
    if card_fn is not None:
        # The review card moves with the answer, in the same transaction (never on a duplicate click).
        old = conn.execute(sql.GET_CARD, (a.member_id, a.question_id)).fetchone()
        try:
            card, due = card_fn(old[0] if old else None)
        except Exception:  # a broken card must not cost the member (or the batch) the answer
            log.exception("review card of member %s for %s not updated", a.member_id, a.question_id)
        else:
            conn.execute(sql.PUT_CARD, (a.member_id, a.question_id, card, ts(due)))
    return AnswerOutcome(True, a.choice, a.correct, first_try, new)


def _insert_post(
    conn: sqlite3.Connection, group_id: int, channel_id: int, member_id: int | None, kind: str, item_id: str, at: str
) -> PostRecord:
    row = conn.execute(sql.CREATE_POST, (group_id, channel_id, member_id, kind, item_id, at)).fetchone()
    return rows.post(row)


def _deal_post(
    conn: sqlite3.Connection,
    group_id: int,
    channel_id: int,
    member_id: int,
    kind: str,
    at: str,
    reads: DealReads,
    choose: Callable[[DealView], D | None],
) -> tuple[PostRecord, D] | Exception | None:
    """`SqliteStore.deal_post`'s unit of work, inside a group commit (a pick that fails: `rows.pick`)."""
    view = rows.deal_view(
        conn.execute(sql.QUESTION_TALLIES, (member_id,)) if reads.tallies else (),
        conn.execute(sql.DUE_CARDS, (member_id, ts(reads.due_at), reads.due_limit)) if reads.due_at is not None else (),
        conn.execute(sql.SHOWN_COUNTS, (member_id, reads.shown)) if reads.shown is not None else (),
        conn.execute(sql.STEPS_DONE, (member_id,)) if reads.steps else (),
    )
    item = rows.pick(choose, view, kind, member_id)
    if item is None or isinstance(item, Exception):
        return item
    return _insert_post(conn, group_id, channel_id, member_id, kind, item.id, at), item


#: `_deal_post` as a batch runs it: its result is the post and item dealt, None, or the pick's error.
_DEAL_POST: Callable[..., Any] = _deal_post
#: The writes that make posts (a batch of these alone commits lazily, see `POST_ID_MARK`).
_POST_WRITES = (_insert_post, _deal_post)


def _made_post(fn: Callable[..., Any], result: Any) -> PostRecord | None:
    """The post a batch's write ``fn`` made, from its result (None: it made none, or failed)."""
    if fn is _insert_post and isinstance(result, PostRecord):
        return result
    if fn is _deal_post and isinstance(result, tuple):
        return result[0] if isinstance(result[0], PostRecord) else None
    return None


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
    """Run a batch of writes (answers, posts) in one transaction, so that one bad write (say, for a member
    deleted meanwhile) fails alone. Commits before returning.

    The batch first runs straight through, its answers together (`_record_answers`); only if a write
    fails is that attempt rolled back and the batch run again write by write, each in its own savepoint
    (three statements more per write, which `bench.p2_answers` showed to be a tenth of an answer's
    database work). The writes are pure functions of the database (streak and card updates too), so the
    second run gives each its outcome alone."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        try:
            results = _record_straight(conn, items)
        except (sqlite3.Error, StoreError):
            if conn.in_transaction:  # SQLite may have rolled back itself (disk full, I/O error)
                conn.execute("ROLLBACK")
            conn.execute("BEGIN IMMEDIATE")
            results = _record_each(conn, items)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return results


def _record_straight(
    conn: sqlite3.Connection, items: list[tuple[Callable[..., Any], tuple[Any, ...]]]
) -> list[Any | Exception]:
    """A batch's writes in the open transaction: posts (and any other write) in order, then the answers
    together. No answer can name a post of its own batch (its caller has not heard of that post yet)."""
    results: list[Any | Exception] = [None] * len(items)
    answers: list[int] = []
    for i, (fn, args) in enumerate(items):
        if fn is _record_one:
            answers.append(i)
        else:
            results[i] = fn(conn, *args)
    if answers:
        outcomes = _record_answers(conn, [items[i][1] for i in answers])
        for i, outcome in zip(answers, outcomes, strict=True):
            results[i] = outcome
    return results


def _record_answers(
    conn: sqlite3.Connection, batch: list[tuple[AnswerIn, StreakFn, CardFn | None]]
) -> list[AnswerOutcome | Exception]:
    """`_record_one` for each answer of a batch, in order, with the same outcomes, in a handful of
    statements: one read each of the members' streaks, the (member, question) pairs already answered,
    the (member, post) pairs already answered and the review cards, then the writes with `executemany`.
    What an answer changes is seen by the later answers of the same batch (a member twice: their
    first try, streak and card move on). A member deleted meanwhile fails alone, with nothing written;
    a statement that fails raises (the caller redoes the batch write by write)."""
    members = json.dumps(list({a.member_id for a, _, _ in batch}))
    questions = json.dumps(list({(a.member_id, a.question_id) for a, _, _ in batch}))
    posts = json.dumps(list({(a.member_id, a.post_id) for a, _, _ in batch}))
    states = {r[0]: rows.streak(r[1:]) for r in conn.execute(sql.BATCH_STREAK_STATES, (members,))}
    tried = {(m, q) for m, q in conn.execute(sql.BATCH_TRIED, (questions,))}
    earlier = {(m, p): (c, bool(k), bool(f)) for m, p, c, k, f in conn.execute(sql.BATCH_EARLIER, (posts,))}
    cards: dict[tuple[int, str], str] = {}
    if any(card_fn is not None for _, _, card_fn in batch):
        cards = {(m, q): c for m, q, c in conn.execute(sql.BATCH_CARDS, (questions,))}
    out: list[AnswerOutcome | Exception] = []
    inserts, scores, points, puts = [], [], [], []
    for a, streak_fn, card_fn in batch:
        state = states.get(a.member_id)
        if state is None:
            out.append(StoreError("that member no longer exists"))
            continue
        known = earlier.get((a.member_id, a.post_id))
        if known is not None:  # a second click on the same post: nothing changes
            out.append(AnswerOutcome(False, known[0], known[1], known[2], state))
            continue
        at = ts(a.answered_at)
        first_try = (a.member_id, a.question_id) not in tried
        tried.add((a.member_id, a.question_id))
        earlier[a.member_id, a.post_id] = (a.choice, a.correct, first_try)
        inserts.append(
            (a.member_id, a.post_id, a.group_id, a.question_id, a.choice, int(a.correct), int(first_try), at)
        )
        new = streak_fn(state)
        # What a later answer of the batch reads is the row as written (a freeze is told once, by this answer).
        states[a.member_id] = replace(new, freeze_used=0) if new.freeze_used else new
        point = int(a.correct and first_try)
        scores.append(rows.score_params(a, new, point, at))
        if point:
            points.append((a.member_id, a.week.isoformat(), a.group_id, at))
        if card_fn is not None:
            # The review card moves with the answer, in the same transaction (never on a duplicate click).
            try:
                card, due = card_fn(cards.get((a.member_id, a.question_id)))
            except Exception:  # a broken card must not cost the member (or the batch) the answer
                log.exception("review card of member %s for %s not updated", a.member_id, a.question_id)
            else:
                cards[a.member_id, a.question_id] = card
                puts.append((a.member_id, a.question_id, card, ts(due)))
        out.append(AnswerOutcome(True, a.choice, a.correct, first_try, new))
    conn.executemany(sql.INSERT_ANSWER_ROW, inserts)
    conn.executemany(sql.SCORE_MEMBER, scores)
    conn.executemany(sql.ADD_WEEKLY_POINT, points)
    conn.executemany(sql.PUT_CARD, puts)
    return out


def _record_each(
    conn: sqlite3.Connection, items: list[tuple[Callable[..., Any], tuple[Any, ...]]]
) -> list[Any | Exception]:
    """Each write of a batch in its own savepoint (inside the batch's transaction): its error is its result."""
    results: list[Any | Exception] = []
    for fn, args in items:
        conn.execute("SAVEPOINT one")
        try:
            results.append(fn(conn, *args))
            conn.execute("RELEASE one")
        except (sqlite3.Error, StoreError) as e:
            conn.execute("ROLLBACK TO one")
            conn.execute("RELEASE one")
            results.append(e if isinstance(e, StoreError) else StoreError(f"not recorded: {e}"))
    return results
