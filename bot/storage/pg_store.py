"""The `Store`, `ScheduleStore` and learning ports on PostgreSQL through asyncpg.

The twin of `SqliteStore`, `SqliteScheduleStore` and `LearningStore`: the same statement texts
(`bot.storage.sql`, numbered once by `bot.storage.dialect.pg`), the same row conversions and caches
(`bot.storage.rows`), the same migration runner. Each unit of work runs on one pooled connection, in one
transaction where it writes more than one row. Answers are group-committed as on SQLite: one
transaction per batch, each answer in its own savepoint, callers released after the commit.

Several bot processes may share one database: delivery claims are ``INSERT … ON CONFLICT DO NOTHING`` on
the unique (channel, instant), reveals are ``UPDATE … WHERE revealed_at IS NULL``, so each goes to one
process only. The member and post caches are this process's own; a change one process makes is announced
to the others with NOTIFY after its commit and dropped from their caches (`bot.storage.pg_notify`).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

import asyncpg

from bot.core.export import MemberRow, QuestionRow
from bot.core.learning import EXCUSED_LOOKBACK, ReviewSummary
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
    StoreUnavailable,
    StreakFn,
)
from bot.core.schedule import ChannelHistory, ChannelSchedule, Delivery, Notice, ScheduleRule
from bot.storage import migrations, rows, sql
from bot.storage.dialect import NAME_EQUALS, changed, pg
from bot.storage.pg_notify import CacheBus
from bot.storage.rows import CACHE_SIZE, LRU, GroupCommit, PendingItem, SingleFlight, from_ts, ts
from bot.storage.urls import redact

log = logging.getLogger(__name__)

DEFAULT_DIR = migrations.folder_for(migrations.DEFAULT_ROOT, "postgres")
_FIND_BY_NAME = sql.find_member_by_name(NAME_EQUALS["postgres"])


class PgStore:
    """PostgreSQL storage. Call `start()` before use and `close()` after; `start` connects and applies
    migrations (under an advisory lock).

    Raises `StoreError` (or `SchemaTooNew`) from `start`; other methods raise `StoreError` for expected
    conditions and `asyncpg.PostgresError` / `OSError` when the server fails."""

    def __init__(self, url: str, *, migrations_dir: Path = DEFAULT_DIR, pool_size: int = 10) -> None:
        self.url = url
        self.migrations_dir = migrations_dir
        self.pool_size = pool_size
        self._pool: asyncpg.Pool | None = None
        self._answers = GroupCommit(self._write_batch, _record_one)
        # Every command looks up its member and every click its post; caching both saves two round trips
        # per answer. Entries change only through this class (`_changed`), here or in another process.
        self._members: LRU[tuple[str, str, str, str], MemberRef] = LRU(CACHE_SIZE)
        # Members' last active days from answers recorded since their refs were cached (`MemberRef.last_day`).
        self._days: LRU[int, date] = LRU(CACHE_SIZE)
        # Moves on with every change heard of: a look-up that began before one does not cache what it read.
        self._member_gen = 0
        self._posts: LRU[int, PostRecord] = LRU(CACHE_SIZE)
        # The clicks of a burst on a post not yet cached share one look-up (and one pooled connection).
        self._post_flights: SingleFlight[int, PostRecord | None] = SingleFlight()
        # Other processes on this database change rows too: their changes arrive here (LISTEN/NOTIFY).
        self._bus = CacheBus(url, self._on_change, self.invalidate_caches)

    @property
    def batches_committed(self) -> int:
        """How many group commits of answers have been made (tests and benchmarks read it)."""
        return self._answers.batches_committed

    @property
    def where(self) -> str:
        """The database, password left out (for logs)."""
        return redact(self.url)

    @property
    def lost(self) -> str | None:
        """Why the database can no longer be used, or None: a server's database is not a file that can be
        deleted under us (a lost connection is an error of the call that met it)."""
        return None

    def forget_post(self, post_id: int) -> None:
        """Drop one post from the cache."""
        self._posts.pop(post_id, None)
        self._post_flights.forget(post_id)

    def invalidate_caches(self) -> None:
        """Forget cached members and posts (in this process only; see `_changed`)."""
        self._member_gen += 1
        self._members.clear()
        self._days.clear()
        self._posts.clear()
        self._post_flights.clear()

    async def cached_member_changed(self, member_id: int | None) -> None:
        """What the member lookup reads beside a member (`MemberRef.notice`, ``deck``) was changed (and
        committed): a notice queued for ``member_id``, or a channel's deck (None: every member). Their
        cached refs are dropped here and in every other process on this database."""
        await self._changed("members" if member_id is None else f"member {member_id}")

    def drop_cached_member(self, member_id: int) -> None:
        """Drop the member's cached refs here only (their notices were just taken: the next look-up reads
        that none waits)."""
        self._member_gen += 1
        rows.drop_member(self._members, member_id)

    @property
    def _cache_ok(self) -> bool:
        """Cached entries may be used only while we hear of other processes' changes."""
        return self._bus.healthy

    def _on_change(self, what: str) -> None:
        """``what`` changed: "member <id>" (its zone, or forgotten with its posts), "post <id>", "members"
        (a group's zone: every member carries it) or anything else (drop everything)."""
        kind, _, ident = what.partition(" ")
        self._post_flights.clear()  # a look-up under way may have read the row before this change
        self._member_gen += 1  # and so may a member look-up
        if kind == "member" and ident.isdigit():
            member = int(ident)
            rows.drop_member(self._members, member)
            self._days.pop(member, None)
            for pid in [p for p, post in self._posts.items() if post.member_id == member]:
                del self._posts[pid]
        elif kind == "post" and ident.isdigit():
            self._posts.pop(int(ident), None)
        elif kind == "members":
            self._members.clear()
        else:
            self.invalidate_caches()

    async def _changed(self, what: str) -> None:
        """``what`` changed (committed): drop it here and tell the other processes on this database."""
        self._on_change(what)
        async with self._conn() as conn:
            await self._bus.publish(conn, what)

    @property
    def cache_stats(self) -> dict[str, int]:
        """Hits and misses of the member and post caches, and invalidations sent and received."""
        return {
            "member_hits": self._members.hits,
            "member_misses": self._members.misses,
            "post_hits": self._posts.hits,
            "post_misses": self._posts.misses,
            "sent": self._bus.sent,
            "received": self._bus.received,
        }

    # ------------------------------------------------------------------ lifecycle

    async def start(
        self, *, migrate: bool = True, exclusive: bool = False, shards: list[int] | None = None
    ) -> list[str]:
        """Connect (a pool of up to ``pool_size`` connections) and apply pending migrations; returns their
        names. Raises `StoreError` with one line when the server cannot be reached or refuses us.

        ``exclusive`` and ``shards`` are accepted for `SqliteStore`'s sake and ignored: sharing one
        PostgreSQL database between bot processes is what this store is for (claims keep posts single)."""
        del exclusive, shards
        try:
            self._pool = await asyncpg.create_pool(self.url, min_size=1, max_size=self.pool_size)
        except ConnectionRefusedError:
            raise StoreUnavailable(
                f"cannot connect to {self.where}: connection refused (is PostgreSQL running?)"
            ) from None
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, ValueError) as e:
            raise StoreUnavailable(f"cannot connect to {self.where}: {_one_line(e)}") from None
        try:
            try:
                await self._bus.start()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
                raise StoreUnavailable(f"cannot listen on {self.where}: {_one_line(e)}") from None
            if not migrate:
                return []
            async with self._pool.acquire() as conn:
                return await migrations.migrate_postgres(conn, self.migrations_dir)  # type: ignore[arg-type]
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Finish pending answers, then close the pool. Safe to call twice."""
        await self._answers.drain()
        await self._bus.close()
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    @contextlib.asynccontextmanager
    async def _conn(self) -> AsyncIterator[asyncpg.pool.PoolConnectionProxy]:
        if self._pool is None:
            raise StoreError("the store is not started (or already closed)")
        async with self._pool.acquire() as conn:
            yield conn

    @contextlib.asynccontextmanager
    async def _tx(self, **kw: Any) -> AsyncIterator[asyncpg.pool.PoolConnectionProxy]:
        async with self._conn() as conn, conn.transaction(**kw):
            yield conn

    async def _fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        async with self._conn() as conn:
            return await conn.fetch(pg(query), *args)

    async def _fetchrow(self, query: str, *args: Any) -> asyncpg.Record | None:
        async with self._conn() as conn:
            return await conn.fetchrow(pg(query), *args)

    async def _execute(self, query: str, *args: Any) -> int:
        """Run a write; returns how many rows it changed."""
        async with self._conn() as conn:
            return changed(await conn.execute(pg(query), *args))

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
        cached = self._members.hit(key) if self._cache_ok else None
        if cached is not None and cached.display_name == display_name:
            return self._with_day(key, cached)
        gen = self._member_gen
        row = await self._fetchrow(sql.MEMBER_LOOKUP, channel, user, platform, group)
        if row is not None and row[2] is not None and row[3] is not None and row[4] == display_name:
            ref = rows.member_ref(row, user, display_name)
        else:
            # Something is new (or renamed): write it in one transaction.
            at = ts(now)
            async with self._tx() as conn:
                gid, _ = _one(await conn.fetchrow(pg(sql.UPSERT_GROUP), platform, group, group_name[:100], at))
                await conn.fetchval(pg(sql.UPSERT_CHANNEL), gid, channel, channel_name[:100])
                await conn.fetchrow(pg(sql.UPSERT_MEMBER), gid, user, display_name, at)
                # Read back with what the lookup reads beside the member (a renamed member may have notices).
                row = _one(await conn.fetchrow(pg(sql.MEMBER_LOOKUP), channel, user, platform, group))
            ref = rows.member_ref(row, user, display_name)
        if self._cache_ok and gen == self._member_gen:
            self._members.put(key, ref)
        return self._with_day(key, ref)

    def _with_day(self, key: tuple[str, str, str, str], ref: MemberRef) -> MemberRef:
        return rows.cached_with_day(self._members, key, ref, self._days.get(ref.member_id))

    async def find_member(self, group_id: int, query: str, channel_id: int) -> MemberRef | None:
        q = query.strip()
        if q.startswith("<@") and q.endswith(">"):
            q = q[2:-1].lstrip("!").split("|", 1)[0]
        q = q.lstrip("@")
        async with self._conn() as conn:
            row = await conn.fetchrow(pg(sql.FIND_MEMBER_BY_ID), group_id, q) or await conn.fetchrow(
                pg(_FIND_BY_NAME), group_id, q
            )
        if row is None:
            return None
        return MemberRef(row[0], group_id, channel_id, row[1], row[2], row[3], row[4])

    async def set_member_tz(self, member_id: int, tz: str | None) -> None:
        await self._execute(sql.SET_MEMBER_TZ, tz, member_id)
        await self._changed(f"member {member_id}")

    async def set_leaderboard_hidden(self, member_id: int, hidden: bool) -> None:
        await self._execute(sql.SET_LEADERBOARD_HIDDEN, int(hidden), member_id)

    async def member_stats(self, member_id: int) -> MemberStats:
        row = await self._fetchrow(sql.MEMBER_STATS, member_id)
        if row is None:
            raise StoreError(f"no member {member_id}")
        return MemberStats(
            row[0], row[1], row[2], rows.streak(row[3:7]), row[7], bool(row[8]), datetime.fromisoformat(row[9])
        )

    async def forget_member(self, member_id: int) -> int:
        try:
            async with self._tx() as conn:
                counted = await conn.fetchval(pg(sql.COUNT_MEMBER_ROWS), *(member_id,) * len(sql.MEMBER_TABLES))
                # ON DELETE CASCADE removes every row that refers to the member.
                await conn.execute(pg(sql.DELETE_MEMBER), member_id)
            return int(counted)
        finally:
            await self._changed(f"member {member_id}")

    # ------------------------------------------------------------------ posts

    async def create_post(
        self, group_id: int, channel_id: int, member_id: int | None, kind: str, item_id: str, now: datetime
    ) -> PostRecord:
        # Group-committed like answers: a quiz's buttons name the post, so it is committed before the reply.
        post: PostRecord = await self._answers.submit(
            _insert_post, group_id, channel_id, member_id, kind, item_id, ts(now)
        )
        if kind == "question" and self._cache_ok:  # clicks on it come next: no look-up for them
            self._posts.put(post.id, post)
        return post

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
        # The reads, the pick and the insert in one write of the next group commit: one connection, one
        # transaction (the reads are a statement each on it, not a connection each from the pool).
        dealt: tuple[PostRecord, D] | None = await self._answers.submit(
            _DEAL_POST, group_id, channel_id, member_id, kind, ts(now), reads, choose
        )
        if dealt is not None and kind == "question" and self._cache_ok:  # clicks on it come next
            self._posts.put(dealt[0].id, dealt[0])
        return dealt

    async def get_post(self, post_id: int) -> PostRecord | None:
        cached = self._posts.hit(post_id) if self._cache_ok else None
        if cached is not None:
            return cached
        if not self._cache_ok:  # not hearing other processes' changes: every look-up asks the server
            return await self._fetch_post(post_id)
        return await self._post_flights.run(post_id, None, lambda: self._fetch_post(post_id), self._keep_post)

    async def _fetch_post(self, post_id: int) -> PostRecord | None:
        row = await self._fetchrow(sql.GET_POST, post_id)
        return None if row is None else rows.post(row)

    def _keep_post(self, post: PostRecord | None) -> None:
        if post is not None and self._cache_ok:
            self._posts.put(post.id, post)

    async def last_question_post(self, channel_id: int, member_id: int) -> PostRecord | None:
        row = await self._fetchrow(sql.LAST_QUESTION_POST, channel_id, member_id, channel_id)
        return rows.post(row) if row else None

    async def set_post_message(self, post_id: int, message_id: str) -> None:
        await self._execute(sql.SET_POST_MESSAGE, message_id, post_id)
        await self._changed(f"post {post_id}")

    async def discard_post(self, post_id: int) -> bool:
        deleted = await self._execute(sql.DISCARD_POST, post_id)
        if deleted:
            await self._changed(f"post {post_id}")
        return bool(deleted)

    async def shown_counts(self, member_id: int, kind: str) -> dict[str, int]:
        return {item: n for item, n in await self._fetch(sql.SHOWN_COUNTS, member_id, kind)}

    async def choice_counts(self, post_id: int) -> dict[str, int]:
        return {c: n for c, n in await self._fetch(sql.CHOICE_COUNTS, post_id)}

    # ------------------------------------------------------------------ answers (group commit)

    async def record_answer(
        self, answer: AnswerIn, streak_fn: StreakFn, card_fn: CardFn | None = None
    ) -> AnswerOutcome:
        outcome: AnswerOutcome = await self._answers.submit(_record_one, answer, streak_fn, card_fn)
        if outcome.recorded and outcome.streak.last_day is not None:
            self._days.put(answer.member_id, outcome.streak.last_day)  # cached refs learn it (`_with_day`)
        return outcome

    async def _write_batch(self, items: list[PendingItem]) -> list[Any]:
        """Make a batch of writes (answers, posts) in one transaction; each in a savepoint so one bad write
        (say, for a member deleted meanwhile) fails alone. Commits before returning."""
        results: list[Any] = [None] * len(items)
        answers = [i for i, (fn, _) in enumerate(items) if fn is _record_one]
        async with self._tx() as conn:
            # Posts first: an answer is only ever submitted for a post that has already committed.
            for i, (fn, args) in enumerate(items):
                if fn is not _record_one:
                    results[i] = await _one_by_one(conn, fn, args)
            # Answers: a handful of statements for the whole batch (round trips, not fsyncs, are what
            # a batch costs on PostgreSQL); one by one when the batch needs it (see `_record_many`).
            many = await _record_many(conn, [items[i][1] for i in answers]) if len(answers) > 1 else None
            for n, i in enumerate(answers):
                results[i] = many[n] if many is not None else await _one_by_one(conn, _record_one, items[i][1])
        return results

    async def question_tallies(self, member_id: int) -> list[QuestionTally]:
        return [QuestionTally(q, n, c) for q, n, c in await self._fetch(sql.QUESTION_TALLIES, member_id)]

    # ------------------------------------------------------------------ career path

    async def steps_done(self, member_id: int) -> set[int]:
        return {r[0] for r in await self._fetch(sql.STEPS_DONE, member_id)}

    async def mark_step(self, member_id: int, step: int, now: datetime) -> bool:
        return await self._execute(sql.MARK_STEP, member_id, step, ts(now)) == 1

    # ------------------------------------------------------------------ leaderboards

    async def leaderboard(self, group_id: int, week: date | None, limit: int) -> list[LeaderRow]:
        if week is None:
            found = await self._fetch(sql.BOARD_ALL_TIME, group_id, limit)
        else:
            found = await self._fetch(sql.BOARD_WEEK, group_id, week.isoformat(), limit)
        return [LeaderRow(i, u, n, p, from_ts(t)) for i, u, n, p, t in found]


async def _record_one(
    conn: asyncpg.pool.PoolConnectionProxy, a: AnswerIn, streak_fn: StreakFn, card_fn: CardFn | None
) -> AnswerOutcome:
    """`bot.storage.sqlite_store._record_one` on asyncpg: the same statements in the same order."""
    row = await conn.fetchrow(pg(sql.INSERT_ANSWER), *rows.answer_params(a))
    state_row = await conn.fetchrow(pg(sql.STREAK_STATE), a.member_id)
    if state_row is None:
        raise StoreError("that member no longer exists")
    state = rows.streak(state_row)
    if row is None:
        earlier = await conn.fetchrow(pg(sql.EARLIER_ANSWER), a.member_id, a.post_id)
        assert earlier is not None  # the conflict was with this row
        choice, correct, first = earlier
        return AnswerOutcome(False, choice, bool(correct), bool(first), state)
    first_try = bool(row[0])
    new = streak_fn(state)
    point = int(a.correct and first_try)
    await conn.execute(pg(sql.SCORE_MEMBER), *rows.score_params(a, new, point))
    if point:
        await conn.execute(pg(sql.ADD_WEEKLY_POINT), a.member_id, a.week.isoformat(), a.group_id, ts(a.answered_at))
    if card_fn is not None:
        # The review card moves with the answer, in the same transaction (never on a duplicate click).
        old = await conn.fetchval(pg(sql.GET_CARD), a.member_id, a.question_id)
        try:
            card, due = card_fn(old)
        except Exception:  # a broken card must not cost the member (or the batch) the answer
            log.exception("review card of member %s for %s not updated", a.member_id, a.question_id)
        else:
            await conn.execute(pg(sql.PUT_CARD), a.member_id, a.question_id, card, ts(due))
    return AnswerOutcome(True, a.choice, a.correct, first_try, new)


async def _one_by_one(conn: asyncpg.pool.PoolConnectionProxy, fn: Any, args: tuple[Any, ...]) -> Any:
    """One write of a batch in its own savepoint, so that it fails alone (its error is its result)."""
    try:
        async with conn.transaction():  # a savepoint inside the batch's transaction
            return await fn(conn, *args)
    except asyncpg.PostgresError as e:
        return StoreError(f"not recorded: {_one_line(e)}")
    except StoreError as e:
        return e


#: `sql.INSERT_ANSWER` for many answers at once (PostgreSQL only: arrays through ``unnest``).
_INSERT_ANSWERS = (
    "INSERT INTO answers (member_id, post_id, group_id, question_id, choice, correct, first_try, answered_at)"
    " SELECT u.m, u.p, u.g, u.q, u.c, u.k,"
    " CASE WHEN EXISTS (SELECT 1 FROM answers a WHERE a.member_id = u.m AND a.question_id = u.q) THEN 0 ELSE 1 END,"
    " u.t FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::int[], $7::text[])"
    " AS u(m, p, g, q, c, k, t)"
    " ON CONFLICT (member_id, post_id) DO NOTHING RETURNING member_id, first_try"
)
_EARLIER_ANSWERS = (
    "SELECT a.member_id, a.choice, a.correct, a.first_try FROM answers a"
    " JOIN unnest($1::bigint[], $2::bigint[]) AS u(m, p) ON a.member_id = u.m AND a.post_id = u.p"
)
_STREAK_STATES = "SELECT id, streak, best_streak, last_active_day, freezes FROM members WHERE id = ANY($1::bigint[])"
_CARDS = (
    "SELECT c.member_id, c.card FROM cards c"
    " JOIN unnest($1::bigint[], $2::text[]) AS u(m, q) ON c.member_id = u.m AND c.question_id = u.q"
)


#: `sql.SCORE_MEMBER`, `sql.ADD_WEEKLY_POINT` and `sql.PUT_CARD` for many members at once, one statement
#: each (`_record_many` has each member once, so no row is touched twice). An ``executemany`` pipelines
#: its rows but the server still runs one statement per row: at a batch of 2,000 that was most of its work.
_SCORE_MEMBERS = (
    "UPDATE members AS m SET answered = m.answered + 1, correct = m.correct + u.k, points = m.points + u.pt,"
    " last_point_at = CASE WHEN u.pt = 1 THEN u.t ELSE m.last_point_at END,"
    " streak = u.s, best_streak = u.b, last_active_day = u.d, freezes = u.f"
    " FROM unnest($1::int[], $2::int[], $3::text[], $4::int[], $5::int[], $6::text[], $7::int[], $8::bigint[])"
    " AS u(k, pt, t, s, b, d, f, id) WHERE m.id = u.id"
)
_ADD_WEEKLY_POINTS = (
    "INSERT INTO weekly_points (member_id, week, group_id, points, last_point_at)"
    " SELECT u.m, u.w, u.g, 1, u.t FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::text[]) AS u(m, w, g, t)"
    " ON CONFLICT (member_id, week) DO UPDATE SET points = weekly_points.points + 1,"
    " last_point_at = excluded.last_point_at"
)
_PUT_CARDS = (
    "INSERT INTO cards (member_id, question_id, card, due)"
    " SELECT u.m, u.q, u.c, u.d FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[]) AS u(m, q, c, d)"
    " ON CONFLICT (member_id, question_id) DO UPDATE SET card = excluded.card, due = excluded.due"
)


async def _record_many(
    conn: asyncpg.pool.PoolConnectionProxy, batch: list[tuple[Any, ...]]
) -> list[AnswerOutcome | Exception] | None:
    """`_record_one` for a whole batch in about eight statements instead of about eight per answer, with
    the same results. None (nothing written) when the batch must go one by one instead: a member twice
    in it (their streak and first try depend on the order), or any statement failing (a member or post
    deleted meanwhile: one by one, that answer fails alone)."""
    answers: list[AnswerIn] = [b[0] for b in batch]
    members = [a.member_id for a in answers]
    if len(set(members)) != len(members):
        return None
    try:
        async with conn.transaction():  # a savepoint: on failure nothing of this attempt stays
            first = {
                m: bool(f)
                for m, f in await conn.fetch(
                    _INSERT_ANSWERS,
                    members,
                    [a.post_id for a in answers],
                    [a.group_id for a in answers],
                    [a.question_id for a in answers],
                    [a.choice for a in answers],
                    [int(a.correct) for a in answers],
                    [ts(a.answered_at) for a in answers],
                )
            }
            states = {r[0]: rows.streak(r[1:5]) for r in await conn.fetch(_STREAK_STATES, members)}
            if len(states) != len(members):
                raise _OneByOne  # a member is gone (rolls this attempt back): one by one says which answer fails
            dupes = [a for a in answers if a.member_id not in first]
            earlier = {}
            if dupes:
                found = await conn.fetch(_EARLIER_ANSWERS, [a.member_id for a in dupes], [a.post_id for a in dupes])
                earlier = {r[0]: (r[1], bool(r[2]), bool(r[3])) for r in found}
            out: list[AnswerOutcome | Exception] = []
            scores, points, carded = [], [], []
            for a, streak_fn, card_fn in batch:
                state = states[a.member_id]
                if a.member_id not in first:
                    choice, correct, first_try = earlier[a.member_id]
                    out.append(AnswerOutcome(False, choice, correct, first_try, state))
                    continue
                new = streak_fn(state)
                point = int(a.correct and first[a.member_id])
                scores.append(rows.score_params(a, new, point))
                if point:
                    points.append((a.member_id, a.week.isoformat(), a.group_id, ts(a.answered_at)))
                if card_fn is not None:
                    carded.append((a, card_fn))
                out.append(AnswerOutcome(True, a.choice, a.correct, first[a.member_id], new))
            if scores:
                k, pt, _, t, st, b, d, f, m = map(list, zip(*scores, strict=True))  # SCORE_MEMBER's order
                await conn.execute(_SCORE_MEMBERS, k, pt, t, st, b, d, f, m)
            if points:
                await conn.execute(_ADD_WEEKLY_POINTS, *map(list, zip(*points, strict=True)))
            if carded:
                found_cards = await conn.fetch(
                    _CARDS, [a.member_id for a, _ in carded], [a.question_id for a, _ in carded]
                )
                old: dict[int, str] = {r[0]: r[1] for r in found_cards}
                cards = []
                for a, card_fn in carded:
                    try:
                        card, due = card_fn(old.get(a.member_id))
                    except Exception:  # as in `_record_one`: a broken card does not cost the answer
                        log.exception("review card of member %s for %s not updated", a.member_id, a.question_id)
                    else:
                        cards.append((a.member_id, a.question_id, card, ts(due)))
                if cards:
                    await conn.execute(_PUT_CARDS, *map(list, zip(*cards, strict=True)))
            return out
    except (asyncpg.PostgresError, _OneByOne):
        return None


class _OneByOne(Exception):
    """Raised inside `_record_many`'s savepoint to roll it back and go one by one."""


async def _insert_post(
    conn: asyncpg.pool.PoolConnectionProxy,
    group_id: int,
    channel_id: int,
    member_id: int | None,
    kind: str,
    item_id: str,
    at: str,
) -> PostRecord:
    return rows.post(_one(await conn.fetchrow(pg(sql.CREATE_POST), group_id, channel_id, member_id, kind, item_id, at)))


async def _deal_post(
    conn: asyncpg.pool.PoolConnectionProxy,
    group_id: int,
    channel_id: int,
    member_id: int,
    kind: str,
    at: str,
    reads: DealReads,
    choose: Callable[[DealView], D | None],
) -> tuple[PostRecord, D] | Exception | None:
    """`bot.storage.sqlite_store._deal_post` on asyncpg: the same reads, pick and insert."""
    view = rows.deal_view(
        await conn.fetch(pg(sql.QUESTION_TALLIES), member_id) if reads.tallies else (),
        await conn.fetch(pg(sql.DUE_CARDS), member_id, ts(reads.due_at), reads.due_limit)
        if reads.due_at is not None
        else (),
        await conn.fetch(pg(sql.SHOWN_COUNTS), member_id, reads.shown) if reads.shown is not None else (),
        await conn.fetch(pg(sql.STEPS_DONE), member_id) if reads.steps else (),
    )
    item = rows.pick(choose, view, kind, member_id)
    if item is None or isinstance(item, Exception):
        return item
    return await _insert_post(conn, group_id, channel_id, member_id, kind, item.id, at), item


#: `_deal_post` as a batch runs it: its result is the post and item dealt, None, or the pick's error.
_DEAL_POST: Callable[..., Any] = _deal_post


def _one(row: asyncpg.Record | None) -> asyncpg.Record:
    """The row a statement always returns (``INSERT … RETURNING``, a row we hold a reference to)."""
    if row is None:
        raise StoreError("a row vanished while being written")
    return row


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return text


class PgScheduleStore:
    """`ScheduleStore` on a `PgStore`'s pool. Each method is one statement or one transaction."""

    def __init__(self, store: PgStore) -> None:
        self.store = store

    async def schedules(self) -> list[ChannelSchedule]:
        return [rows.schedule(r) for r in await self.store._fetch(sql.ALL_SCHEDULES)]

    async def schedule_for(self, channel_id: int) -> ChannelSchedule | None:
        row = await self.store._fetchrow(sql.SCHEDULE_FOR, channel_id)
        return rows.schedule(row) if row else None

    async def save_schedule(self, channel_id: int, rule: ScheduleRule, now: datetime) -> bool:
        async with self.store._tx() as conn:
            await conn.execute(pg(sql.SAVE_SCHEDULE), *rows.schedule_params(channel_id, rule, now))
            changed_zone = changed(await conn.execute(pg(sql.SET_GROUP_ZONE_IF_UTC), rule.tz, channel_id)) == 1
        changed_zone = changed_zone and rule.tz != "UTC"
        if changed_zone:
            await self.store._changed("members")  # cached members carry the group's zone
        return changed_zone

    async def set_paused(self, channel_id: int, paused: bool, reason: str | None, now: datetime) -> bool:
        if paused:
            n = await self.store._execute(sql.PAUSE, reason, int(reason is not None), channel_id)
        else:
            # Resuming starts afresh: occurrences during the pause are neither posted nor "missed".
            n = await self.store._execute(sql.RESUME, ts(now), channel_id)
        return n == 1

    async def set_skip_until(self, channel_id: int, until: datetime | None) -> bool:
        return await self.store._execute(sql.SET_SKIP_UNTIL, ts(until) if until else None, channel_id) == 1

    async def record_unsent(self, channel_id: int, rows: Sequence[tuple[datetime, str]], now: datetime) -> int:
        if not rows:  # (``rows`` shadows the module here, as the port names the parameter)
            return 0
        n = 0
        async with self.store._tx() as conn:
            for when, status in rows:
                n += changed(await conn.execute(pg(sql.RECORD_UNSENT), channel_id, ts(when), status, ts(now)))
        return n

    async def claim(self, channel_id: int, scheduled_for: datetime, claimer: str, now: datetime) -> Delivery | None:
        row = await self.store._fetchrow(sql.CLAIM, channel_id, ts(scheduled_for), claimer, ts(now))
        return rows.delivery(row) if row else None

    async def reclaim_due(self, now: datetime, claimer: str, stale_before: datetime) -> list[Delivery]:
        found = await self.store._fetch(sql.RECLAIM_DUE, claimer, ts(now), ts(now), ts(stale_before))
        return sorted((rows.delivery(r) for r in found), key=lambda d: d.scheduled_for)

    async def create_delivery_post(
        self, delivery_id: int, group_id: int, channel_id: int, kind: str, item_id: str, now: datetime
    ) -> PostRecord:
        async with self.store._tx() as conn:
            row = await conn.fetchrow(pg(sql.CREATE_DELIVERY_POST), group_id, channel_id, kind, item_id, ts(now))
            assert row is not None  # INSERT … RETURNING always returns the row
            post = rows.post(row)
            await conn.execute(pg(sql.LINK_DELIVERY_POST), post.id, delivery_id)
        return post

    async def mark_sent(self, delivery_id: int, post_id: int, message_id: str, now: datetime) -> None:
        async with self.store._tx() as conn:
            await conn.execute(pg(sql.MARK_SENT), message_id, ts(now), delivery_id)
            await conn.execute(pg(sql.SET_POST_MESSAGE), message_id, post_id)

    async def mark_failed(self, delivery_id: int, error: str, next_try_at: datetime | None) -> None:
        await self.store._execute(sql.MARK_FAILED, ts(next_try_at) if next_try_at else None, error[:500], delivery_id)

    async def channel_history(self, channel_id: int) -> ChannelHistory:
        async with self.store._conn() as conn:
            counts = {(kind, item): n for kind, item, n in await conn.fetch(pg(sql.HISTORY_COUNTS), channel_id)}
            last_item: dict[str, str] = {}
            for kind in ("question", "tip", "interview"):
                row = await conn.fetchrow(pg(sql.HISTORY_LAST_ITEM), channel_id, kind)
                if row:
                    last_item[kind] = row[0]
            last_kind = await conn.fetchval(pg(sql.HISTORY_LAST_KIND), channel_id)
        return ChannelHistory(counts, last_kind, last_item)

    async def unrevealed_questions(self, channel_id: int, created_before: datetime) -> list[PostRecord]:
        return [rows.post(r) for r in await self.store._fetch(sql.UNREVEALED, channel_id, ts(created_before))]

    async def claim_reveal(self, post_id: int, now: datetime) -> bool:
        claimed = await self.store._execute(sql.CLAIM_REVEAL, ts(now), post_id) == 1
        await self.store._changed(f"post {post_id}")  # the cached copies do not know it was revealed
        return claimed

    async def unclaim_reveal(self, post_id: int) -> None:
        await self.store._execute(sql.UNCLAIM_REVEAL, post_id)
        await self.store._changed(f"post {post_id}")

    async def recent_deliveries(self, channel_id: int, limit: int) -> list[Delivery]:
        return [rows.delivery(r) for r in await self.store._fetch(sql.RECENT_DELIVERIES, channel_id, limit)]

    async def next_retry_at(self) -> datetime | None:
        row = await self.store._fetchrow(sql.NEXT_RETRY)
        return from_ts(row[0]) if row else None

    async def take_notices(self, group_id: int) -> list[Notice]:
        async with self.store._tx() as conn:
            taken = await conn.fetch(pg(sql.TAKE_NOTICES), group_id)
            out = []
            for cid, reason in taken:
                ext, name = _one(await conn.fetchrow(pg(sql.CHANNEL_NAMES), cid))
                out.append(Notice(cid, ext, name, reason or ""))
        return out


class PgLearningStore:
    """The learning engine's queries (`bot.core.learning.LearningPort`) on a `PgStore`'s pool."""

    def __init__(self, store: PgStore) -> None:
        self.store = store

    async def due_cards(self, member_id: int, now: datetime, limit: int) -> list[tuple[str, datetime]]:
        found = await self.store._fetch(sql.DUE_CARDS, member_id, ts(now), limit)
        return [(q, datetime.fromisoformat(d)) for q, d in found]

    async def review_summary(self, member_id: int, now: datetime) -> ReviewSummary:
        at = ts(now)
        row = await self.store._fetchrow(sql.REVIEW_SUMMARY, member_id, at, member_id, at)
        assert row is not None  # a SELECT without FROM returns one row
        return ReviewSummary(int(row[0]), from_ts(row[1]))

    async def missed_deliveries(self, group_id: int, since: datetime) -> list[datetime]:
        return [datetime.fromisoformat(r[0]) for r in await self.store._fetch(sql.MISSED, group_id, ts(since))]

    async def answer_times(self, member_id: int, since: datetime) -> list[datetime]:
        return [datetime.fromisoformat(r[0]) for r in await self.store._fetch(sql.ANSWER_TIMES, member_id, ts(since))]

    async def export_rows(self, group_id: int | None, now: datetime) -> tuple[list[MemberRow], list[QuestionRow]]:
        """Members' progress and question tallies of one group (None: all groups), from one snapshot
        (a read-only repeatable-read transaction), so members' answers go on meanwhile."""
        members: list[MemberRow] = []
        questions: list[QuestionRow] = []
        since = ts(now - EXCUSED_LOOKBACK)
        async with self.store._tx(isolation="repeatable_read", readonly=True) as conn:
            groups = [r[0] for r in await conn.fetch(pg(sql.EXPORT_GROUPS))] if group_id is None else [group_id]
            for gid in groups:
                missed = [datetime.fromisoformat(r[0]) for r in await conn.fetch(pg(sql.MISSED), gid, since)]
                key = await conn.fetchval(pg(sql.EXPORT_GROUP_KEY), gid)
                if key is None:
                    continue
                found = await conn.fetch(pg(sql.EXPORT_MEMBERS), ts(now), gid)
                members += [rows.export_member(row, missed) for row in found]
                asked = {item: n for item, n in await conn.fetch(pg(sql.EXPORT_ASKED), gid)}
                questions += rows.export_questions(key, asked, await conn.fetch(pg(sql.EXPORT_ANSWERS), gid))
        return members, questions


class PgInstallStore:
    """`InstallStore` (Slack installations per workspace, one-time OAuth states) on a `PgStore`'s pool."""

    def __init__(self, store: PgStore) -> None:
        self.store = store

    async def save_installation(self, platform: str, team_id: str, data: str, now: datetime) -> None:
        await self.store._execute(sql.SAVE_INSTALLATION, platform, team_id, data, ts(now))

    async def find_installation(self, platform: str, team_id: str) -> str | None:
        row = await self.store._fetchrow(sql.FIND_INSTALLATION, platform, team_id)
        return str(row[0]) if row else None

    async def delete_installation(self, platform: str, team_id: str) -> bool:
        return await self.store._execute(sql.DELETE_INSTALLATION, platform, team_id) > 0

    async def issue_oauth_state(self, state: str, expires_at: datetime) -> None:
        await self.store._execute(sql.ISSUE_OAUTH_STATE, state, ts(expires_at))

    async def consume_oauth_state(self, state: str, now: datetime) -> bool:
        async with self.store._tx() as conn:
            taken = changed(await conn.execute(pg(sql.CONSUME_OAUTH_STATE), state, ts(now))) == 1
            await conn.execute(pg(sql.SWEEP_OAUTH_STATES), ts(now))
        return taken
