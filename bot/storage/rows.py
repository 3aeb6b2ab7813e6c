"""What both stores share besides statement texts: time text, row -> record conversions, the caches
and group commit of answers. Nothing here talks to a database."""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable, Iterable, Iterator, Sized
from dataclasses import replace
from datetime import UTC, date, datetime, time
from typing import Any, Generic, Protocol, TypeVar

from bot.core.decks import TPM
from bot.core.export import MemberRow, QuestionRow
from bot.core.ports import (
    AnswerIn,
    D,
    DealView,
    LateRule,
    MemberRef,
    PostRecord,
    QuestionTally,
    StoreError,
    StreakState,
)
from bot.core.schedule import ChannelSchedule, Delivery, ScheduleRule


class Row(Protocol):
    """A result row: a `sqlite3` tuple or an `asyncpg.Record` (both index, slice and unpack)."""

    def __getitem__(self, index: Any, /) -> Any: ...
    def __iter__(self) -> Iterator[Any]: ...
    def __len__(self) -> int: ...


log = logging.getLogger(__name__)
T = TypeVar("T")
K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
B = TypeVar("B")

#: The most answers written in one group commit.
MAX_BATCH = 2000
#: Event-loop turns without a new write after which a group commit starts (see `GroupCommit`).
QUIET_TURNS = 3
#: Writes waiting after which a group commit starts even while more keep coming: the first members of a
#: long burst hear back while the rest are still being read (bench P1: a burst of 100 clicks on Discord,
#: three interleaved pairs of runs, click p99 62.5 / 80.2 / 51.1 ms → 55.9 / 59.2 / 43.7 ms). A batch still
#: takes every write waiting when it starts (up to `MAX_BATCH`), so under load batches grow as before.
EAGER_BATCH = 32
#: Entries kept in the member and post caches (a few MB at most).
CACHE_SIZE = 20_000


class LRU(OrderedDict[K, V]):
    """A small least-recently-used cache."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size
        self.hits = 0
        self.misses = 0

    def hit(self, key: K) -> V | None:
        value = self.get(key)
        if value is not None:
            self.move_to_end(key)
            self.hits += 1
        else:
            self.misses += 1
        return value

    def put(self, key: K, value: V) -> None:
        self[key] = value
        self.move_to_end(key)
        if len(self) > self.size:
            self.popitem(last=False)


def member_ref(row: Row, user: str, display_name: str) -> MemberRef:
    """A `sql.MEMBER_LOOKUP` row whose member was found, with what was read beside the member."""
    gid, gtz, cid, mid, _, mtz, last, notice, deck = row
    last_day = date.fromisoformat(last) if last else None
    return MemberRef(mid, gid, cid, user, display_name, mtz, gtz, bool(notice), last_day, deck or TPM)


def with_day(ref: MemberRef, day: date | None) -> MemberRef:
    """``ref`` knowing ``day`` (a later answer's) as the member's last active day, if later than it knew."""
    if day is None or (ref.last_day is not None and ref.last_day >= day):
        return ref
    return replace(ref, last_day=day)


def cached_with_day(cache: LRU[K, MemberRef], key: K, ref: MemberRef, day: date | None) -> MemberRef:
    """``ref`` (cached under ``key``) with the last active day of an answer recorded since it was read;
    the cache keeps the newer ref unless it already holds another."""
    newer = with_day(ref, day)
    if newer is not ref and cache.get(key) is ref:
        cache[key] = newer
    return newer


def drop_member(cache: LRU[K, MemberRef], member_id: int) -> None:
    """Drop every cached ref of one member (one per channel they used)."""
    for key in [k for k, ref in cache.items() if ref.member_id == member_id]:
        del cache[key]


class _Flight(Generic[V]):
    __slots__ = ("tag", "waiters")

    def __init__(self, tag: object) -> None:
        self.tag = tag
        self.waiters: list[asyncio.Future[V]] = []


class SingleFlight(Generic[K, V]):
    """Concurrent look-ups of one key share one query: the first starts it, the others await the same
    result (a burst of 10,000 clicks on a post not yet cached makes one query, not 10,000).

    ``tag`` says what the caller has already seen (SQLite: the turn's data version); a caller with another
    tag starts a query of its own rather than take one that began before what it saw. ``keep`` (say, the
    cache put) runs before any waiter resumes, and only if the flight is still current: `forget` and
    `clear` (call them wherever the cache entry is dropped) make later callers query afresh and keep the
    running flight's result out of the cache. One caller's cancellation never cancels the others' query."""

    def __init__(self) -> None:
        self._flights: dict[K, _Flight[V]] = {}

    async def run(self, key: K, tag: object, fetch: Callable[[], Awaitable[V]], keep: Callable[[V], None]) -> V:
        flight = self._flights.get(key)
        if flight is None or flight.tag != tag:
            flight = self._flights[key] = _Flight(tag)
            task = asyncio.ensure_future(fetch())
            task.add_done_callback(lambda t, key=key, flight=flight: self._land(key, flight, t, keep))  # type: ignore[misc]
        # A plain future per caller (cheaper than a shield): cancelling it leaves the query running.
        waiter: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        flight.waiters.append(waiter)
        return await waiter

    def _land(self, key: K, flight: _Flight[V], task: asyncio.Task[V], keep: Callable[[V], None]) -> None:
        current = self._flights.get(key) is flight
        if current:
            del self._flights[key]
        if task.cancelled():
            for waiter in flight.waiters:
                waiter.cancel()
            return
        error = task.exception()
        if error is None and current:
            keep(task.result())
        for waiter in flight.waiters:
            if waiter.done():  # that caller was cancelled
                continue
            if error is not None:
                waiter.set_exception(error)
            else:
                waiter.set_result(task.result())

    def forget(self, key: K) -> None:
        self._flights.pop(key, None)

    def clear(self) -> None:
        self._flights.clear()


def ts(dt: datetime) -> str:
    """UTC ISO text that sorts in time order ("2026-11-23T09:05:00.000000Z").

    ``isoformat`` rather than ``strftime``: the same text in a third of the time (an answer makes four)."""
    return dt.astimezone(UTC).isoformat(timespec="microseconds")[:-6] + "Z"


def from_ts(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def post(row: Row) -> PostRecord:
    pid, gid, cid, mid, kind, item, created, msg, revealed = row
    return PostRecord(pid, gid, cid, mid, kind, item, datetime.fromisoformat(created), msg, from_ts(revealed))


def deal_view(tallies: Iterable[Row], due: Iterable[Row], shown: Iterable[Row], steps: Iterable[Row]) -> DealView:
    """A dealt post's `DealView` from the rows of its reads (either store's; a read not made: no rows)."""
    return DealView(
        [QuestionTally(q, n, c) for q, n, c in tallies],
        [(q, datetime.fromisoformat(d)) for q, d in due],
        {item: n for item, n in shown},
        {r[0] for r in steps},
    )


def pick(choose: Callable[[DealView], D | None], view: DealView, kind: str, member_id: int) -> D | Exception | None:
    """``choose(view)`` inside a group commit: a pick that raises fails alone — its error is its result
    (logged here), so the batch's other writes go on and nothing of the deal is written."""
    try:
        return choose(view)
    except Exception as e:
        log.exception("picking a %s for member %s failed", kind, member_id)
        return e


def streak(row: Row) -> StreakState:
    value, best, last, freezes = row
    return StreakState(value, best, date.fromisoformat(last) if last else None, freezes)


def schedule(row: Row) -> ChannelSchedule:
    (cid, gid, platform, ext, name, gtz, lt, tz, days, kind, reveal, paused, reason, skip, updated, last, group) = row
    hh, mm = lt.split(":")
    rule = ScheduleRule(time(int(hh), int(mm)), tz, tuple(int(d) for d in days.split(",")), kind, reveal)
    return ChannelSchedule(
        cid, gid, platform, ext, name, gtz, rule, bool(paused), reason, from_ts(skip),
        datetime.fromisoformat(updated), from_ts(last), group,
    )  # fmt: skip


def delivery(row: Row) -> Delivery:
    did, cid, when, status, attempts, next_try, post_id, msg, err = row
    return Delivery(did, cid, datetime.fromisoformat(when), status, attempts, from_ts(next_try), post_id, msg, err)


def export_member(row: Row, missed: list[datetime]) -> MemberRow:
    (group, gname, user, name, joined, answered, correct, points, value, best, last, freezes, tz, gtz, hidden) = row[
        :15
    ]
    steps, cards, due = row[15:]
    state = StreakState(value, best, date.fromisoformat(last) if last else None, freezes)
    return MemberRow(
        group, gname, user, name, datetime.fromisoformat(joined), answered, correct, points, state,
        tz or gtz, tz is not None, bool(hidden), steps, cards, due, missed,
    )  # fmt: skip


def export_questions(group_key: str, asked: dict[str, int], answers: Iterable[Row]) -> list[QuestionRow]:
    """One group's question tallies from its asked counts and its ``EXPORT_ANSWERS`` rows."""
    tallies: dict[str, list[Any]] = {}
    for qid, choice, n, correct, first, first_correct in answers:
        t = tallies.setdefault(qid, [0, 0, 0, 0, {}])
        t[0] += n
        t[1] += correct
        t[2] += first
        t[3] += first_correct
        t[4][choice] = n
    out = []
    for qid in sorted(set(asked) | set(tallies)):
        n, correct, first, first_correct, picks = tallies.get(qid, [0, 0, 0, 0, {}])
        out.append(QuestionRow(group_key, qid, asked.get(qid, 0), n, correct, first, first_correct, picks))
    return out


def answer_params(a: AnswerIn, at: str | None = None) -> tuple[Any, ...]:
    """The parameters of `bot.storage.sql.INSERT_ANSWER` (both stores bind the same); ``at``: `ts` of
    ``a.answered_at`` if the caller has it already."""
    at = at or ts(a.answered_at)
    return (a.member_id, a.post_id, a.group_id, a.question_id, a.choice, int(a.correct), a.member_id, a.question_id, at)


def score_params(a: AnswerIn, new: StreakState, point: int, at: str | None = None) -> tuple[Any, ...]:
    """The parameters of `bot.storage.sql.SCORE_MEMBER` (both stores bind the same); ``at`` as in
    `answer_params`."""
    last_day = new.last_day.isoformat() if new.last_day else None
    at = at or ts(a.answered_at)
    return (int(a.correct), point, point, at, new.streak, new.best, last_day, new.freezes, a.member_id)


def schedule_params(channel_id: int, rule: ScheduleRule, now: datetime) -> tuple[Any, ...]:
    """The parameters of `bot.storage.sql.SAVE_SCHEDULE` (both stores bind the same)."""
    days = ",".join(str(d) for d in rule.days)
    return (channel_id, f"{rule.local_time:%H:%M}", rule.tz, days, rule.kind, rule.reveal_hours, ts(now), ts(now))


# ---------------------------------------------------------------------- group commit

#: A write for the next group commit: ``fn(conn, *args)`` (a coroutine function on PostgreSQL).
PendingItem = tuple[Callable[..., Any], tuple[Any, ...]]
#: Runs a batch in one transaction (each write alone in a savepoint) and commits before returning; one
#: result per item, an exception standing for a write that failed alone.
BatchWriter = Callable[[list[PendingItem]], Awaitable[list[Any]]]


async def batch_forming(pending: Sized) -> None:
    """Give the event loop turns while writes keep joining ``pending`` (until `QUIET_TURNS` turns bring
    none) and fewer than `EAGER_BATCH` wait: the rule both stores' group commits start a batch by."""
    seen, quiet = len(pending), 0
    while quiet < QUIET_TURNS and len(pending) < EAGER_BATCH:
        await asyncio.sleep(0)
        quiet = quiet + 1 if len(pending) == seen else 0
        seen = len(pending)


async def late_rules_failed(streak_fns: Iterable[object]) -> dict[LateRule, Exception]:
    """Await `LateRule.ready` once for each distinct late rule among a batch's streak functions, before
    the batch is written; returns the rules whose inputs could not be had, with the error."""
    failed: dict[LateRule, Exception] = {}
    done: set[LateRule] = set()
    for fn in streak_fns:
        if isinstance(fn, LateRule) and fn not in done:
            done.add(fn)
            try:
                await fn.ready()
            except Exception as e:
                failed[fn] = e
    return failed


def drop_late_failures(
    batch: list[B],
    failed: dict[LateRule, Exception],
    answer_fn: Callable[..., Any] | None,
    parts: Callable[[B], tuple[Callable[..., Any], tuple[Any, ...], asyncio.Future[Any]]],
) -> list[B]:
    """``batch`` without the answers whose late rule `failed`: each of those fails with the rule's error,
    alone; everything else stays (a caller who gave up still has its answer written). ``parts`` gives an
    item's write function, its arguments (the streak function second) and its caller's future."""
    kept: list[B] = []
    for item in batch:
        fn, args, future = parts(item)
        if fn is answer_fn and args[1] in failed:
            if not future.done():
                future.set_exception(failed[args[1]])
        else:
            kept.append(item)
    return kept


class GroupCommit:
    """Writes (answers, posts) arriving together are made in one transaction by ``write``; each caller is
    released only after that transaction has committed, so "recorded" is never said of an answer not on
    disk, and no button names a post that is not.

    Answers that arrive while a batch is being committed wait for the next batch: under load the batches
    grow by themselves. Before each commit the event loop gets turns for as long as answers keep coming
    (until `QUIET_TURNS` turns bring none, or `EAGER_BATCH` wait), so the rest of a burst joins the first
    answer's commit; a lone answer waits only those few turns (the same rule as `SqliteStore._flush_loop`)."""

    def __init__(self, write: BatchWriter, answer_fn: Callable[..., Any] | None = None) -> None:
        self._write = write
        #: The write that records an answer: ``fn(conn, answer, streak_fn, card_fn)``; its `LateRule`
        #: streak functions are made ready before the batch is written.
        self.answer_fn = answer_fn
        self._pending: list[tuple[PendingItem, asyncio.Future[Any]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self.batches_committed = 0

    async def submit(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Make ``fn(conn, *args)`` in the next group commit; returns its result once that has committed."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._pending.append(((fn, args), future))
        if self._flusher is None or self._flusher.done():
            self._flusher = loop.create_task(self._flush_loop())
        return await future

    async def drain(self) -> None:
        """Wait until every submitted answer has been written (or has failed)."""
        if self._flusher is not None:
            await asyncio.shield(self._flusher)

    async def _flush_loop(self) -> None:
        while self._pending:
            await batch_forming(self._pending)
            batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
            try:
                failed = await late_rules_failed(args[1] for (fn, args), _ in batch if fn is self.answer_fn)
                if failed:
                    batch = drop_late_failures(batch, failed, self.answer_fn, lambda b: (*b[0], b[1]))
                    if not batch:
                        continue
                results = await self._write([item for item, _ in batch])
            except BaseException as e:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(e if isinstance(e, Exception) else StoreError("cancelled"))
                if not isinstance(e, Exception):
                    raise
                continue
            self.batches_committed += 1
            for (_, future), result in zip(batch, results, strict=True):
                if future.done():
                    continue
                if isinstance(result, Exception):
                    future.set_exception(result)
                else:
                    future.set_result(result)
