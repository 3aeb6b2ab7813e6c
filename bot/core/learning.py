"""The learning engine: spaced repetition with FSRS, reviews, excused days, the progress chart and export.

`LearningEngine.install(service)` plugs it into a `StudyService` through the service's hooks:

* every recorded answer updates the member's FSRS card for the question, inside the answer's own
  transaction (`StudyService.card_fn_for` → `Store.record_answer(..., card_fn)`): wrong → Again,
  right → Good;
* `/study review` deals the member's due cards, `/study quiz` prefers a due card over an unseen question;
* `/study progress` says how many reviews are due and attaches a PNG chart;
* days on which the group's scheduled post was missed or failed never break a streak;
* `/study export` (admin) sends the members' progress and per-question analytics as CSV.

The engine reaches the database only through `LearningPort` (implemented by
`bot.storage.learning_store.LearningStore`), so this module stays platform- and driver-free.
"""

from __future__ import annotations

import asyncio
import json
import logging
import zlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from fsrs import Card, Rating, Scheduler

from bot.core import chart, export
from bot.core.commands import Command
from bot.core.content import ContentLibrary, ContentPack, Question
from bot.core.messages import Attachment, Reply
from bot.core.ports import AnswerIn, CardFn, Clock, DealReads, DealView, MemberRef, Store
from bot.core.progress import mastery
from bot.core.service import Context, StudyService, answer_buttons, private, question_text
from bot.core.shared import SharedQuery
from bot.core.timezones import local_day, zone

if TYPE_CHECKING:
    from bot.core.deck_commands import Catalog

log = logging.getLogger(__name__)

#: How far back missed deliveries are looked up: a streak whose last active day is older than this
#: cannot be saved by excused days anyway (freezes cover at most two days).
EXCUSED_LOOKBACK = timedelta(days=400)
#: How long a group's missed-delivery days are reused (answers to one post arrive in bursts).
EXCUSED_CACHE = timedelta(seconds=60)
ACTIVITY_DAYS = 30
#: Due cards read at a time, most overdue first (those whose question left the pool are passed over).
DUE_LOOKAHEAD = 20


# ---------------------------------------------------------------------- FSRS cards


def card_id_for(member_id: int, question_id: str) -> int:
    """A stable fsrs card id for a member's card on a question (fsrs sleeps 1 ms without one)."""
    return (member_id << 32) | zlib.crc32(question_id.encode("utf-8"))


def make_scheduler() -> Scheduler:
    """The FSRS scheduler studybot uses.

    No sub-day learning steps: members meet questions a few times a day at most, so a wrong answer
    comes back the next day rather than in ten minutes (when the explanation is still on screen)."""
    return Scheduler(learning_steps=(), relearning_steps=())


def rating_for(correct: bool, confidence: str | None = None) -> Rating:
    """Wrong → Again, right → Good; a right answer marked "easy"/"hard" → Easy/Hard."""
    if not correct:
        return Rating.Again
    return {"easy": Rating.Easy, "hard": Rating.Hard}.get((confidence or "").lower(), Rating.Good)


def review(
    scheduler: Scheduler,
    stored: str | None,
    *,
    member_id: int,
    question_id: str,
    rating: Rating,
    at: datetime,
) -> tuple[str, datetime]:
    """Apply one review to a stored card (JSON; None or unreadable: a new card).

    Returns the new card as JSON and its next due instant (aware UTC). Does not raise for a broken
    stored card: it is logged and the member starts a fresh card."""
    card: Card | None = None
    if stored:
        try:
            card = Card.from_dict(json.loads(stored))
        except (ValueError, KeyError, TypeError):
            log.warning("unreadable review card of member %s for %s; starting afresh", member_id, question_id)
    if card is None:
        card = Card(card_id=card_id_for(member_id, question_id), due=at.astimezone(UTC))
    new, _ = scheduler.review_card(card, rating, review_datetime=at.astimezone(UTC))
    return json.dumps(new.to_dict(), separators=(",", ":")), new.due.astimezone(UTC)


class CardUpdate:
    """The review-card update of one answer (a `CardFn`): wrong → Again, right → Good.

    One small object per answer rather than a closure (a function, its cells and their tuple): a burst
    of 10,000 clicks holds one per answer waiting for its group commit, and the collector walks them all
    (bench P2)."""

    __slots__ = ("answer", "scheduler")

    def __init__(self, scheduler: Scheduler, answer: AnswerIn) -> None:
        self.scheduler = scheduler
        self.answer = answer

    def __call__(self, stored: str | None) -> tuple[str, datetime]:
        a = self.answer
        rating = rating_for(a.correct)
        return review(
            self.scheduler, stored, member_id=a.member_id, question_id=a.question_id, rating=rating, at=a.answered_at
        )


# ---------------------------------------------------------------------- the port


@dataclass(frozen=True, slots=True)
class ReviewSummary:
    """How many of a member's cards are due now, and when the next one after now falls due."""

    due: int
    next_due: datetime | None


class LearningPort(Protocol):
    """The queries the learning engine needs. Raises `StoreError` on storage failures."""

    async def due_cards(self, member_id: int, now: datetime, limit: int) -> list[tuple[str, datetime]]:
        """Question ids of the member's cards due at ``now``, most overdue first."""
        ...

    async def review_summary(self, member_id: int, now: datetime) -> ReviewSummary: ...

    async def missed_deliveries(self, group_id: int, since: datetime) -> list[datetime]:
        """Scheduled instants (UTC) since ``since`` of the group's posts that ended missed or failed."""
        ...

    async def answer_times(self, member_id: int, since: datetime) -> list[datetime]:
        """When the member answered (UTC), since ``since``."""
        ...

    async def export_rows(
        self, group_id: int | None, now: datetime
    ) -> tuple[list[export.MemberRow], list[export.QuestionRow]]:
        """Every member's progress and every question's tallies, of one group (None: all groups)."""
        ...


# ---------------------------------------------------------------------- the engine


class PendingDays:
    """Excused days whose look-up (a group's missed posts) is still under way: `days` joins that very
    look-up (its error, if it fails). One per look-up, so answers can share what they make of it."""

    __slots__ = ("engine", "query")

    def __init__(self, engine: LearningEngine, query: SharedQuery[list[datetime]]) -> None:
        self.engine = engine
        self.query = query

    async def days(self, member: MemberRef) -> frozenset[date]:
        """The member's excused days (in their zone) from this look-up."""
        return self.engine._days_in_zone(self.query, await self.query.result(), member)


class LearningEngine:
    """Spaced repetition, excused days, the progress chart and export, wired into a `StudyService`.

    ``charts=False`` leaves the PNG out of `/study progress` (text only); ``chart_process=False`` draws
    in a thread instead of worker processes (``chart_workers`` of them at most; default
    `chart.CHART_WORKERS`). Methods raise `StoreError` on storage failures; the service turns those into
    an apology. Call `close` at shutdown (it stops the chart workers)."""

    def __init__(
        self,
        store: LearningPort,
        main: Store,
        library: ContentLibrary,
        clock: Clock,
        *,
        charts: bool = True,
        chart_process: bool = True,
        chart_workers: int | None = None,
        scheduler: Scheduler | None = None,
        catalog: Catalog | None = None,
    ) -> None:
        self.store = store
        self.catalog = catalog
        self.main = main
        self.library = library
        self.clock = clock
        self.charts = charts
        self.scheduler = scheduler or make_scheduler()
        self._excused: dict[int, SharedQuery[list[datetime]]] = {}
        #: The days of a group's query in one zone, made once per query (every answer of a burst asks).
        self._excused_days: dict[tuple[int, str], tuple[SharedQuery[list[datetime]], frozenset[date]]] = {}
        #: The look-up under way of each group, as `known_excused_days` tells of it (one object per look-up).
        self._pending: dict[int, PendingDays] = {}
        #: Extra rows for the chart's accuracy section (open-card practice adds its own row per kind).
        self.chart_rows: list[Callable[[MemberRef, datetime], Awaitable[list[tuple[str, float, int]]]]] = []
        self.renderer = chart.ChartRenderer(in_process=not chart_process, workers=chart_workers)

    async def close(self) -> None:
        """Stop the chart worker processes that were started."""
        await self.renderer.close()

    def install(self, service: StudyService) -> None:
        """Plug the engine into ``service``'s hooks and register `review` and `export`."""
        fallback = service.choose_question

        def choose(pool: ContentPack, view: DealView) -> Question | None:
            # The most overdue card of the pool first; the fallback only when none of the pool is due.
            for qid, _ in view.due:
                q = pool.question(qid)
                if q is not None:
                    return q
            return fallback(pool, view)

        service.question_reads = lambda now: DealReads(tallies=True, due_at=now, due_limit=DUE_LOOKAHEAD)
        service.choose_question = choose
        service.card_fn_for = self.card_fn_for
        service.excused_days = self.excused_days
        service.known_excused_days = self.known_excused_days
        service.progress_extras.append(self.reviews_line)
        if self.charts:
            service.progress_attachments.append(self.progress_chart)
        service.register("review", self.review_command)
        service.register("export", self.export_command)

    # -------------------------------------------------------------- cards

    def card_fn_for(self, answer: AnswerIn) -> CardFn:
        """The card update for ``answer``: runs on the database thread inside the answer's transaction."""
        return CardUpdate(self.scheduler, answer)

    async def due_question(self, member: MemberRef, pool: ContentPack | None = None) -> Question | None:
        """The member's most overdue card whose question is in ``pool`` (None: still in the pack or a live
        item of the group's decks), if any."""
        for qid, _ in await self.store.due_cards(member.member_id, self.clock.now(), DUE_LOOKAHEAD):
            if pool is not None:
                q = pool.question(qid)
            elif self.catalog is not None:
                q = await self.catalog.question(member.group_id, qid, live=True)
            else:
                q = self.library.pack.question(qid)
            if q is not None:
                return q
        return None

    async def question_due_at(self, member: MemberRef, now: datetime) -> datetime | None:
        """When the member's most overdue question card (still in the pack) fell due; None: none due."""
        for qid, due in await self.store.due_cards(member.member_id, now, DUE_LOOKAHEAD):
            if self.library.pack.question(qid) is not None:
                return due
        return None

    # -------------------------------------------------------------- streaks

    async def excused_days(self, member: MemberRef, now: datetime) -> frozenset[date]:
        """The member's local days on which a scheduled post in their group ended missed or failed."""
        cached = self._missed(member.group_id, now)
        missed = await cached.result()
        return self._days_in_zone(cached, missed, member)

    def known_excused_days(self, member: MemberRef, now: datetime) -> frozenset[date] | PendingDays:
        """`excused_days` without waiting: the days when the group's missed posts are known, else the
        look-up under way (started here if none is), which `excused_days` would join."""
        cached = self._missed(member.group_id, now)
        if cached.task.done() and not cached.failed():
            return self._days_in_zone(cached, cached.task.result(), member)
        pending = self._pending.get(member.group_id)
        if pending is None or pending.query is not cached:
            if len(self._pending) > 10_000:
                self._pending.clear()
            pending = self._pending[member.group_id] = PendingDays(self, cached)
        return pending

    def _missed(self, group_id: int, now: datetime) -> SharedQuery[list[datetime]]:
        """The group's missed posts: the look-up of the last `EXCUSED_CACHE`, or a new one."""
        cached = self._excused.get(group_id)
        if cached is None or not (now - EXCUSED_CACHE <= cached.at <= now) or cached.failed():
            # One query per group, shared by every answer that arrives meanwhile (a post's burst of clicks).
            if len(self._excused) > 10_000:  # groups are few; this only bounds a pathological case
                self._excused.clear()
            cached = self._excused[group_id] = SharedQuery(
                now, self.store.missed_deliveries(group_id, now - EXCUSED_LOOKBACK)
            )
        return cached

    def _days_in_zone(
        self, cached: SharedQuery[list[datetime]], missed: list[datetime], member: MemberRef
    ) -> frozenset[date]:
        key = (member.group_id, member.zone)
        known = self._excused_days.get(key)
        if known is not None and known[0] is cached:
            return known[1]
        days = frozenset(local_day(t, member.zone) for t in missed)
        if len(self._excused_days) > 10_000:
            self._excused_days.clear()
        self._excused_days[key] = (cached, days)
        return days

    # -------------------------------------------------------------- commands and progress

    async def review_command(self, ctx: Context, _: Command) -> list[Reply]:
        """`/study review`: the most overdue card as a private question, or when the next one is due."""
        # Both at once (one round trip where the store allows); the question counts only if one is due.
        summary, due = await asyncio.gather(
            self.store.review_summary(ctx.member.member_id, ctx.now), self.due_question(ctx.member)
        )
        q = due if summary.due else None
        if q is None:
            return private(self._nothing_due(ctx.member, summary, ctx.now))
        post = await self.main.create_post(
            ctx.member.group_id, ctx.member.channel_id, ctx.member.member_id, "question", q.id, ctx.now
        )
        more = f"{summary.due} review{'s' if summary.due != 1 else ''} due"
        return [Reply(question_text(q, heading=f"Review ({more})"), private=True, buttons=answer_buttons(post.id))]

    def _nothing_due(self, member: MemberRef, summary: ReviewSummary, now: datetime) -> str:
        if summary.next_due is None:
            return "No reviews due — answer a few questions first (/study quiz); each comes back here when it is due."
        return f"No reviews due — next one {when(summary.next_due, now, member.zone)}."

    async def reviews_line(self, ctx: Context, member: MemberRef) -> str | None:
        """The progress line about reviews (None for a member with no cards yet)."""
        summary = await self.store.review_summary(member.member_id, ctx.now)
        if summary.due:
            return f"🔁 Reviews due: {summary.due} — /study review"
        if summary.next_due is not None:
            return f"🔁 No reviews due — next one {when(summary.next_due, ctx.now, member.zone)}"
        return None

    async def progress_chart(self, ctx: Context, member: MemberRef) -> Attachment | None:
        """The PNG chart for `/study progress`; None (logged) if it cannot be drawn."""
        try:
            data = await self.chart_data(ctx.now, member)
            png = await self.renderer.draw(data)
        except Exception:
            log.exception("progress chart for member %s not drawn", member.member_id)
            return None
        return Attachment("progress.png", png, "image/png")

    async def chart_data(self, now: datetime, member: MemberRef) -> chart.ChartData:
        """What the chart shows: accuracy per topic, answers per local day for 30 days, career steps."""
        pack = self.library.pack
        today = local_day(now, member.zone)
        first = today - timedelta(days=ACTIVITY_DAYS - 1)
        since = datetime.combine(first, datetime.min.time(), zone(member.zone))
        # Asked all at once: a store that can (SQLite) answers them in one hop, not one each.
        tallies, done, times, extra_rows = await asyncio.gather(
            self.main.question_tallies(member.member_id),
            self.main.steps_done(member.member_id),
            self.store.answer_times(member.member_id, since),
            asyncio.gather(*(make(member, now) for make in self.chart_rows)),
        )
        if self.catalog is not None:  # the group's deck questions resolve too
            pack = await self.catalog.pack_with(member.group_id, [t.question_id for t in tallies])
        per_day = counts_by_day(times, member.zone)
        days = [first + timedelta(days=n) for n in range(ACTIVITY_DAYS)]
        extra = [row for rows in extra_rows for row in rows]
        return chart.ChartData(
            title=f"Progress — {member.display_name}",
            topics=[(t.topic, t.accuracy, t.answered) for t in mastery(pack, tallies)] + extra,
            activity=[(d, per_day.get(d, 0)) for d in days],
            steps=[(s.step, s.title, s.step in done) for s in pack.steps],
        )

    async def export_command(self, ctx: Context, _: Command) -> list[Reply]:
        """`/study export` (admin): the group's member progress and question analytics as CSV files."""
        files = await self.export_files(ctx.member.group_id, ctx.now)
        attachments = tuple(Attachment(name, text.encode("utf-8"), "text/csv") for name, text in files.items())
        rows = {name: max(0, text.count("\n") - 1) for name, text in files.items()}
        summary = ", ".join(f"{name} ({n} row{'s' if n != 1 else ''})" for name, n in rows.items())
        return [Reply(f"📊 Export for this group: {summary}.", private=True, attachments=attachments, slow=True)]

    async def export_files(self, group_id: int | None, now: datetime) -> dict[str, str]:
        """The export's CSV files by name, for one group (None: every group)."""
        members, questions = await self.store.export_rows(group_id, now)
        pack = self.library.pack
        if self.catalog is not None:  # the groups' deck questions resolve too (retired ones included)
            pack = await self.catalog.pack_with(group_id, [q.question_id for q in questions])
        return export.export_files(members, questions, pack, now)


def when(instant: datetime, now: datetime, tz: str) -> str:
    """A due time in the member's zone, e.g. "tomorrow 09:15" or "Wed 25 Nov 09:15"."""
    local = instant.astimezone(zone(tz))
    days = (local.date() - now.astimezone(zone(tz)).date()).days
    if days <= 0:
        return f"today {local:%H:%M}"
    if days == 1:
        return f"tomorrow {local:%H:%M}"
    return f"{local:%a %d %b %H:%M}"


def counts_by_day(times: Sequence[datetime], tz: str) -> Mapping[date, int]:
    """How many instants fall on each local day of ``tz``."""
    out: dict[date, int] = {}
    for t in times:
        d = local_day(t, tz)
        out[d] = out.get(d, 0) + 1
    return out
