"""The admin web dashboard's core: sign-in links, sessions, and what each page shows. No I/O of its own.

The web front end (`bot.adapters.dashboard`) is an adapter like the chat ones: it turns an HTTP request
into a call here and the result into a page. Every rule lives here or in the core it reuses: schedule
changes are the `/study schedule …` commands themselves (`Dashboard.command`), so the page shows the
same validation and the same messages as the chat.

Security model:

* `/study dashboard` gives an admin a private link holding a random token, valid once for
  `LINK_TTL`; opening it (a POST from the page it leads to, so link previews cannot use it up) starts a
  session of `SESSION_TTL`, scoped to that admin's group.
* Only SHA-256 hashes of link and session tokens are stored; the CSRF token of a session is derived
  from its secret (HMAC), so it needs no storage and means nothing without the cookie.
* Every object a request names (a channel, a question) is looked up *within the session's group*: an id
  of another group is simply not found.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import time as _time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Protocol, TypeVar

from bot.core.commands import SPECS, Command
from bot.core.content import LETTERS, ContentLibrary, ContentPack, Question
from bot.core.dashboard_tallies import SETTLE, AnalyticsBase, AnswerDelta, Census, QuestionTallies
from bot.core.decks import Deck, DeckItem, DeckStore
from bot.core.item_form import preview as item_preview
from bot.core.messages import Attachment, Inbound, Reply
from bot.core.schedule import ChannelSchedule, next_occurrence, occurrences
from bot.core.service import Context, StudyService, private
from bot.core.suggestions import Suggestion, SuggestionStore
from bot.core.timezones import local_day, week_start, zone

log = logging.getLogger(__name__)
T = TypeVar("T")

LINK_TTL = timedelta(minutes=10)
SESSION_TTL = timedelta(hours=12)
#: How long the analytics of a group are reused (a refresh folds in the answers since the last one).
ANALYTICS_TTL = 300.0
#: Groups whose analytics tallies / overview hours are kept in memory (the least recently used go).
KEPT_GROUPS = 16
#: How long the overview's counts of a group are reused.
OVERVIEW_TTL = 60.0
CALENDAR_DAYS = 14
CHART_DAYS = 30
MEMBERS_PAGE = 50
#: Items answered correctly this rarely or this often are flagged (too hard / too easy).
FLAG_LOW, FLAG_HIGH = 0.25, 0.95
STREAK_BUCKETS = ((0, 0, "0"), (1, 2, "1–2"), (3, 6, "3–6"), (7, 13, "7–13"), (14, 29, "14–29"), (30, 10**9, "30+"))
#: Sortable columns of the members table (name → the store's column).
MEMBER_SORTS = ("name", "answered", "accuracy", "points", "streak", "last_active")


def token_hash(token: str) -> str:
    """What is stored for a link or session token: its SHA-256, hex."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def csrf_token(session_token: str) -> str:
    """The CSRF token of a session: derived from the session's secret, so a page of another session
    (or no session) cannot produce it."""
    return hmac.new(session_token.encode("utf-8"), b"studybot-dashboard-csrf", hashlib.sha256).hexdigest()[:32]


# ---------------------------------------------------------------------- records and ports


@dataclass(frozen=True, slots=True)
class Admin:
    """The person behind a dashboard session, and their group (all ids are the store's, platform ids
    are named as such)."""

    group_id: int
    member_id: int
    platform: str
    group: str  # the platform's group id
    group_name: str
    group_tz: str
    user: str  # the platform's user id
    display_name: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class ChannelRow:
    """A channel of the group (``schedule`` None: no daily posts there), with the options `schedule set`
    keeps beside the rule: the deck it posts from, its discussion thread option and the role it pings."""

    channel_id: int
    channel: str
    name: str
    schedule: ChannelSchedule | None
    deck: str = "tpm"
    thread: bool = False
    ping_role: str | None = None


@dataclass(frozen=True, slots=True)
class DayCount:
    day: date
    answers: int
    correct: int


@dataclass(frozen=True, slots=True)
class QuestionStat:
    """One question's history in a group, as the store reads it. ``top``/``bottom``: answers and correct
    answers from the best and the weakest third of the group's members by points."""

    question_id: str
    answers: int
    correct: int
    picks: dict[str, int]
    avg_seconds: float | None
    top: tuple[int, int] = (0, 0)
    bottom: tuple[int, int] = (0, 0)


@dataclass(frozen=True, slots=True)
class MemberLine:
    member_id: int
    user: str
    display_name: str
    answered: int
    correct: int
    points: int
    streak: int
    best_streak: int
    last_active_day: str | None
    joined_at: datetime


class DashboardStore(Protocol):
    """Sign-in links, sessions and the dashboard's read-only queries. Every query names its group.
    Raises `StoreError` on storage failures."""

    async def save_dashboard_link(
        self, token_hash: str, group_id: int, member_id: int, now: datetime, expires_at: datetime
    ) -> None:
        """Keep a new sign-in link (its hash); links expired at ``now`` are swept on the way."""
        ...

    async def use_dashboard_link(self, token_hash: str, now: datetime) -> tuple[int, int] | None:
        """(group id, member id) of a link issued and not expired at ``now``, exactly once: the link is gone
        afterwards. None for an unknown, used or expired link."""
        ...

    async def dashboard_link_valid(self, token_hash: str, now: datetime) -> bool:
        """Whether the link would be accepted now (without using it)."""
        ...

    async def start_dashboard_session(
        self, token_hash: str, group_id: int, member_id: int, now: datetime, expires_at: datetime
    ) -> None: ...

    async def find_dashboard_session(self, token_hash: str, now: datetime) -> Admin | None:
        """The session's admin and group while it has not expired; None otherwise."""
        ...

    async def end_dashboard_session(self, token_hash: str) -> bool: ...

    async def end_dashboard_sessions(self, group_id: int) -> int:
        """End every session of the group and drop its unused links; returns how many sessions ended."""
        ...

    async def group_channels(self, group_id: int) -> list[ChannelRow]:
        """The group's channels with their schedules, scheduled ones first, then by name."""
        ...

    async def group_channel(self, group_id: int, channel_id: int) -> ChannelRow | None:
        """One channel, only if it belongs to the group."""
        ...

    async def activity(
        self, group_id: int, since: datetime, week_from: datetime, upto: int = 0
    ) -> tuple[Census, int, list[tuple[datetime, int, int]]]:
        """(the members' `Census` with ``upto``, members who answered since ``week_from``, and per UTC hour
        since ``since``: the hour's start, answers, correct answers), in one snapshot."""
        ...

    async def streaks(self, group_id: int, alive_since: str) -> dict[int, int]:
        """Members per current streak length (a streak whose last active day is before ``alive_since``, a
        local day ``YYYY-MM-DD``, counts as 0)."""
        ...

    async def question_stats(self, group_id: int) -> list[QuestionStat]:
        """Per question: answers, correct, picks per letter, average seconds from post to answer, and the
        answers of the top and bottom third of members by points."""
        ...

    async def member_lines(
        self, group_id: int, sort: str, descending: bool, limit: int, offset: int
    ) -> list[MemberLine]:
        """A page of the group's members sorted by one of `MEMBER_SORTS`."""
        ...

    async def analytics_base(self, group_id: int, settle_before: datetime) -> AnalyticsBase:
        """`question_stats` as sums, the ranked members, the mark and the members' census, in one snapshot
        (see `bot.core.dashboard_tallies`; ``settle_before``: answers older than this are settled)."""
        ...

    async def answers_after(self, group_id: int, mark: int, settle_before: datetime, upto: int) -> AnswerDelta:
        """The group's answers with an id above ``mark``, their members' points and the members' `Census`
        with ``upto``, in one snapshot."""
        ...

    async def member_answers(self, group_id: int, member_ids: list[int]) -> list[tuple[int, int, str, bool]]:
        """(answer id, member id, question id, correct) of every answer of these members of the group."""
        ...


# ---------------------------------------------------------------------- page models


@dataclass(frozen=True, slots=True)
class NextPost:
    channel: ChannelRow
    at: datetime | None  # None: paused
    local: str


@dataclass(frozen=True, slots=True)
class Overview:
    members: int
    active_week: int
    days: list[DayCount]
    streaks: list[tuple[str, int]]
    next_posts: list[NextPost]

    @property
    def accuracy(self) -> list[tuple[date, float | None]]:
        return [(d.day, d.correct / d.answers if d.answers else None) for d in self.days]


@dataclass(frozen=True, slots=True)
class CalendarEntry:
    at: datetime
    local: str  # HH:MM on the group's clock
    channel: ChannelRow
    clock_change: str  # "" or what the clocks do
    skipped: bool
    own: str = ""  # the channel's own time and zone, when its zone is not the group's


@dataclass(frozen=True, slots=True)
class CalendarDay:
    day: date
    entries: list[CalendarEntry] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ItemAnalytics:
    question: Question | None
    question_id: str
    answers: int
    correct: int
    picks: dict[str, int]
    avg_seconds: float | None
    discrimination: float | None
    flag: str  # "", "hard" (≤ 25 % correct) or "easy" (≥ 95 %)

    @property
    def share(self) -> float | None:
        return self.correct / self.answers if self.answers else None

    def wrong_picks(self) -> list[tuple[str, int]]:
        right = self.question.answer if self.question else ""
        return [(letter, self.picks.get(letter, 0)) for letter in LETTERS if letter != right]


def _share(pair: tuple[int, int]) -> float | None:
    answers, correct = pair
    return correct / answers if answers else None


def analyse(stat: QuestionStat, question: Question | None) -> ItemAnalytics:
    """A question's figures: share correct, flag, and discrimination (share correct among the top third
    of members by points minus that among the bottom third; None when either third never answered)."""
    share = stat.correct / stat.answers if stat.answers else None
    flag = ""
    if share is not None and share <= FLAG_LOW:
        flag = "hard"
    elif share is not None and share >= FLAG_HIGH:
        flag = "easy"
    top, bottom = _share(stat.top), _share(stat.bottom)
    disc = top - bottom if top is not None and bottom is not None else None
    return ItemAnalytics(
        question, stat.question_id, stat.answers, stat.correct, stat.picks, stat.avg_seconds, disc, flag
    )


def _offset(dt: datetime) -> timedelta:
    return dt.utcoffset() or timedelta(0)


def calendar(channels: Sequence[ChannelRow], now: datetime, tz: str, days: int = CALENDAR_DAYS) -> list[CalendarDay]:
    """The next ``days`` days (in ``tz``) of posts of every scheduled, unpaused channel, each in its
    channel's own zone, with clock changes flagged (the offset differs from the previous post's)."""
    today = local_day(now, tz)
    by_day = {today + timedelta(days=n): CalendarDay(today + timedelta(days=n)) for n in range(days)}
    until = now + timedelta(days=days + 1)
    for ch in channels:
        s = ch.schedule
        if s is None or s.paused:
            continue
        prev = _offset(now.astimezone(zone(s.rule.tz)))
        for occ in occurrences(s.rule, now, until):
            local = occ.local(s.rule.tz)
            notes = []
            if occ.shifted_from is not None:
                notes.append(f"{occ.shifted_from:%H:%M} does not exist that day (clocks go forward)")
            if occ.ambiguous:
                notes.append(f"{local:%H:%M} happens twice that day (clocks go back): posts at the first")
            if _offset(local) != prev and not notes:
                notes.append("clocks changed since the previous post")
            prev = _offset(local)
            day = by_day.get(local_day(occ.at, tz))
            if day is None:
                continue
            skipped = s.skip_until is not None and occ.at <= s.skip_until
            # The group's clock first (the calendar's days are the group's); the channel's own beside it.
            own = f"{local:%H:%M} {s.rule.tz}" if s.rule.tz != tz else ""
            day.entries.append(
                CalendarEntry(occ.at, f"{occ.at.astimezone(zone(tz)):%H:%M}", ch, "; ".join(notes), skipped, own)
            )
    out = [by_day[d] for d in sorted(by_day)]
    for d in out:
        d.entries.sort(key=lambda e: e.at)
    return out


# ---------------------------------------------------------------------- the service


@dataclass
class _Cached:
    at: float
    value: list[ItemAnalytics]


@dataclass
class _Hours:
    """A group's answers per UTC hour for the settled hours ``[start, until)`` (answers are never changed
    afterwards, only deleted with their member, which ``census`` notices)."""

    census: Census
    start: datetime
    until: datetime
    hours: dict[datetime, tuple[int, int]]


def _keep(cache: dict[int, T], group_id: int, value: T) -> T:
    """Put ``value`` last in ``cache`` (a dict in use order), dropping the least recently used groups."""
    cache.pop(group_id, None)
    cache[group_id] = value
    while len(cache) > KEPT_GROUPS:
        del cache[next(iter(cache))]
    return value


class Dashboard:
    """Sign-in, sessions and the pages' data for one bot. ``base_url`` returns the public base URL of the
    web server (``STUDYBOT_PUBLIC_URL``, or where it listens), or None while the dashboard is not served."""

    def __init__(
        self,
        store: DashboardStore,
        service: StudyService,
        library: ContentLibrary,
        *,
        export_files: Callable[[int, datetime], Awaitable[dict[str, str]]] | None = None,
        pack_with: Callable[[int, Iterable[str]], Awaitable[ContentPack]] | None = None,
        decks: DeckStore | None = None,
        suggestions: SuggestionStore | None = None,
        base_url: Callable[[], str | None] = lambda: None,
        monotonic: Callable[[], float] = _time.monotonic,
    ) -> None:
        self.store = store
        self.service = service
        self.library = library
        self.clock = service.clock
        self.base_url = base_url
        self._export_files = export_files
        self._pack_with = pack_with
        self.decks = decks
        self.suggestions = suggestions
        self._monotonic = monotonic
        self._analytics: dict[int, _Cached] = {}
        self._analytics_lock = asyncio.Lock()
        self._overview: dict[
            int, tuple[tuple[object, ...], float, tuple[int, int, list[tuple[datetime, int, int]], dict[int, int]]]
        ] = {}
        self._tallies: dict[int, QuestionTallies] = {}
        self._hours: dict[int, _Hours] = {}
        self._ahead: dict[int, asyncio.Task[None]] = {}

    def install(self, service: StudyService) -> None:
        """Register `/study dashboard [logout-all]` on ``service``."""
        service.register("dashboard", self.command_handler)

    # -------------------------------------------------------------- the chat command

    async def command_handler(self, ctx: Context, command: Command) -> list[Reply]:
        """`/study dashboard` (admin): a private sign-in link; `… logout-all` ends the group's sessions."""
        if command.args.get("action") == "logout-all":
            ended = await self.store.end_dashboard_sessions(ctx.member.group_id)
            return private(
                f"🔒 Signed out of the dashboard everywhere: {ended} session{'s' if ended != 1 else ''} ended "
                "and unused sign-in links cancelled."
            )
        base = self.base_url()
        if base is None:
            return private(
                "The web dashboard is not running on this bot (its HTTP server did not start; see the log). "
                "Every dashboard task is also a /study command."
            )
        token = secrets.token_urlsafe(32)
        await self.store.save_dashboard_link(
            token_hash(token), ctx.member.group_id, ctx.member.member_id, ctx.now, ctx.now + LINK_TTL
        )
        self.compute_ahead(ctx.member.group_id)
        minutes = int(LINK_TTL.total_seconds() // 60)
        command_name = SPECS["dashboard"].usage_on(ctx.inbound.platform).split(" [")[0]
        return private(
            f"🔑 Your dashboard sign-in link (works once, for {minutes} minutes; keep it to yourself):\n"
            f"{base.rstrip('/')}/dashboard/login/{token}\n"
            f"Signed in for 12 hours. {command_name} logout-all signs everyone out."
        )

    # -------------------------------------------------------------- sessions

    async def link_valid(self, token: str) -> bool:
        return await self.store.dashboard_link_valid(token_hash(token), self.clock.now())

    async def sign_in(self, token: str) -> tuple[str, Admin] | None:
        """Use a sign-in link: the new session's secret and its admin, or None (unknown, used, expired)."""
        now = self.clock.now()
        grant = await self.store.use_dashboard_link(token_hash(token), now)
        if grant is None:
            return None
        session = secrets.token_urlsafe(32)
        await self.store.start_dashboard_session(token_hash(session), grant[0], grant[1], now, now + SESSION_TTL)
        admin = await self.store.find_dashboard_session(token_hash(session), now)
        if admin is None:  # the member was forgotten in between
            return None
        return session, admin

    async def session(self, session: str) -> Admin | None:
        return await self.store.find_dashboard_session(token_hash(session), self.clock.now())

    async def sign_out(self, session: str) -> None:
        await self.store.end_dashboard_session(token_hash(session))

    async def sign_out_everyone(self, admin: Admin) -> int:
        return await self.store.end_dashboard_sessions(admin.group_id)

    # -------------------------------------------------------------- commands on the admin's behalf

    async def command(
        self,
        admin: Admin,
        channel: ChannelRow,
        text: str = "",
        *,
        action: str | None = None,
        values: dict[str, str] | None = None,
        files: tuple[Attachment, ...] = (),
    ) -> list[Reply]:
        """Run a `/study …` command as the admin, in ``channel`` (already checked to be in their group):
        ``text`` as typed, or a click (``action``), or a form's submission (``action`` and ``values``), with
        ``files`` attached as a chat front end would (`/study deck import`)."""
        inbound = Inbound(
            platform=admin.platform,  # type: ignore[arg-type]
            group=admin.group,
            channel=channel.channel,
            user=admin.user,
            user_name=admin.display_name,
            text=text,
            action=action,
            values=values,
            files=files,
            is_admin=True,
            group_name=admin.group_name,
            channel_name=channel.name,
        )
        return await self.service.handle(inbound)

    async def group_command(
        self,
        admin: Admin,
        text: str = "",
        *,
        action: str | None = None,
        values: dict[str, str] | None = None,
        files: tuple[Attachment, ...] = (),
    ) -> list[Reply] | None:
        """`command` for what acts on the whole group (decks, suggestions), run in one of its channels;
        None when the bot has seen no channel of the group."""
        channel = await self.first_channel(admin)
        if channel is None:
            return None
        return await self.command(admin, channel, text, action=action, values=values, files=files)

    async def channel(self, admin: Admin, channel_id: int) -> ChannelRow | None:
        """The channel if it belongs to the admin's group; None otherwise (as if it did not exist)."""
        return await self.store.group_channel(admin.group_id, channel_id)

    # -------------------------------------------------------------- pages

    async def overview(self, admin: Admin) -> Overview:
        now = self.clock.now()
        tz = admin.group_tz
        first = local_day(now, tz) - timedelta(days=CHART_DAYS - 1)
        since = datetime.combine(first, datetime.min.time(), zone(tz))
        monday = datetime.combine(week_start(now, tz), datetime.min.time(), zone(tz))
        (members, active, hours, counts), channels = await asyncio.gather(
            self._activity(admin.group_id, since, monday, (local_day(now, tz) - timedelta(days=2)).isoformat()),
            self.store.group_channels(admin.group_id),
        )
        per_day: dict[date, tuple[int, int]] = {}
        for hour, answers, correct in hours:
            day = local_day(hour, tz)
            a, c = per_day.get(day, (0, 0))
            per_day[day] = (a + answers, c + correct)
        series = [DayCount(d, *per_day.get(d, (0, 0))) for d in (first + timedelta(days=n) for n in range(CHART_DAYS))]
        buckets = [(label, sum(n for s, n in counts.items() if lo <= s <= hi)) for lo, hi, label in STREAK_BUCKETS]
        return Overview(members, active, series, buckets, self.next_posts(channels, now))

    async def _activity(
        self, group_id: int, since: datetime, monday: datetime, alive_since: str
    ) -> tuple[int, int, list[tuple[datetime, int, int]], dict[int, int]]:
        """The overview's counts (they read a month of the group's answers and all its members): reused for
        `OVERVIEW_TTL` per group and day window, so a page load is mostly the schedules' look-up."""
        key = (group_id, since, monday, alive_since)
        cached = self._overview.get(group_id)
        now = self._monotonic()
        if cached is not None and cached[0] == key and now - cached[1] <= OVERVIEW_TTL:
            return cached[2]
        (members, active, hours), counts = await asyncio.gather(
            self._answers_by_hour(group_id, since, monday), self.store.streaks(group_id, alive_since)
        )
        value = (members, active, hours, counts)
        if len(self._overview) > 10_000:
            self._overview.clear()
        self._overview[group_id] = (key, now, value)
        return value

    async def _answers_by_hour(
        self, group_id: int, since: datetime, monday: datetime
    ) -> tuple[int, int, list[tuple[datetime, int, int]]]:
        """`DashboardStore.activity`, with the settled hours (older than `SETTLE`) read once per process and
        group: each recomputation reads only the hours since (a month of a big group's answers: 0.1 s)."""
        kept = self._hours.get(group_id)
        if kept is not None and kept.start > since:
            kept = None
        census, active, hours = await self.store.activity(
            group_id, kept.until if kept else since, monday, kept.census.highest if kept else 0
        )
        if kept is not None and census.upto != kept.census.total:  # a member was deleted: read it all again
            kept = None
            census, active, hours = await self.store.activity(group_id, since, monday)
        if kept is None:
            kept = _Hours(census, since, since, {})
        kept.census = census
        settled = self.clock.now() - SETTLE
        settled = settled.replace(minute=0, second=0, microsecond=0)
        live = []
        for hour, answers, correct in hours:
            if hour + timedelta(hours=1) <= settled:
                kept.hours[hour] = (answers, correct)
            else:
                live.append((hour, answers, correct))
        kept.until = max(kept.until, settled)
        kept.hours = {h: v for h, v in kept.hours.items() if h >= since - timedelta(hours=1)}
        _keep(self._hours, group_id, kept)
        out = sorted([(h, a, c) for h, (a, c) in kept.hours.items()] + live)
        return census.total, active, out

    @staticmethod
    def next_posts(channels: Sequence[ChannelRow], now: datetime) -> list[NextPost]:
        out = []
        for ch in channels:
            s = ch.schedule
            if s is None:
                continue
            if s.paused:
                out.append(NextPost(ch, None, "paused"))
                continue
            at = next_occurrence(s.rule, max(now, s.skip_until or now)).at
            out.append(NextPost(ch, at, f"{at.astimezone(zone(s.rule.tz)):%a %d %b %H:%M} {s.rule.tz}"))
        return out

    async def schedules(self, admin: Admin) -> tuple[list[ChannelRow], list[CalendarDay]]:
        channels = await self.store.group_channels(admin.group_id)
        return channels, calendar(channels, self.clock.now(), admin.group_tz)

    async def analytics(self, admin: Admin, *, fresh: bool = False) -> tuple[list[ItemAnalytics], float]:
        """Every question's figures in the group (pack order, then the group's deck questions answered, then
        questions no longer anywhere), and
        their age in seconds: they are computed at most once per `ANALYTICS_TTL` per group."""
        async with self._analytics_lock:
            cached = self._analytics.get(admin.group_id)
            now = self._monotonic()
            if fresh or cached is None or now - cached.at > ANALYTICS_TTL:
                stats = {s.question_id: s for s in await self.question_stats(admin.group_id)}
                # The group's own deck questions answered are figures with a question too (`Catalog.pack_with`).
                pack = await self._pack_with(admin.group_id, stats) if self._pack_with else self.library.pack
                items = [analyse(stats.pop(q.id, QuestionStat(q.id, 0, 0, {}, None)), q) for q in pack.questions]
                items += [analyse(s, None) for s in sorted(stats.values(), key=lambda s: s.question_id)]
                cached = self._analytics[admin.group_id] = _Cached(now, items)
            return cached.value, now - cached.at

    async def question_stats(self, group_id: int) -> list[QuestionStat]:
        """The group's `QuestionStat`s as `DashboardStore.question_stats` reads them, from tallies kept in
        memory: the first call reads every answer, later ones only the answers since (see
        `bot.core.dashboard_tallies`)."""
        settle_before = self.clock.now() - SETTLE
        tallies = self._tallies.pop(group_id, None)  # back only once brought up to date whole
        delta = None
        if tallies is not None:
            delta = await self.store.answers_after(group_id, tallies.mark, settle_before, tallies.census.highest)
            if not tallies.still_valid(delta.census):  # a member was deleted, with their answers
                tallies = delta = None
        if tallies is None or delta is None:
            tallies = QuestionTallies(await self.store.analytics_base(group_id, settle_before))
        else:
            moves = tallies.rank(delta)
            if moves:
                tallies.move(moves, await self.store.member_answers(group_id, sorted(moves)))
            tallies.fold(delta)
        _keep(self._tallies, group_id, tallies)
        return tallies.stats()

    def compute_ahead(self, group_id: int) -> asyncio.Task[None] | None:
        """Start the group's first analytics computation of this process in the background (a sign-in link
        was just handed out, so its pages are likely soon, and that computation reads every answer: seconds
        on a big group). Returns the computation (the one already running, if any), or None when the
        group's tallies are kept already."""
        if group_id in self._tallies:
            return None
        task = self._ahead.get(group_id)
        if task is None:
            task = self._ahead[group_id] = asyncio.get_running_loop().create_task(self._compute_ahead(group_id))
            task.add_done_callback(lambda _: self._ahead.pop(group_id, None))
        return task

    async def _compute_ahead(self, group_id: int) -> None:
        try:
            async with self._analytics_lock:
                if group_id not in self._tallies:
                    await self.question_stats(group_id)
        except Exception:  # the page computes them itself and shows the error there
            log.warning("computing group %s's analytics ahead failed", group_id, exc_info=True)

    async def close(self) -> None:
        """Stop analytics computed ahead (the app releases this with its other resources)."""
        tasks = list(self._ahead.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def members(self, admin: Admin, sort: str, descending: bool, page: int) -> tuple[list[MemberLine], bool]:
        """A page of members (``sort`` one of `MEMBER_SORTS`, else by name) and whether a next page exists."""
        if sort not in MEMBER_SORTS:
            sort = "name"
        rows = await self.store.member_lines(
            admin.group_id, sort, descending, MEMBERS_PAGE + 1, max(0, page) * MEMBERS_PAGE
        )
        return rows[:MEMBERS_PAGE], len(rows) > MEMBERS_PAGE

    async def export(self, admin: Admin) -> dict[str, str]:
        """The group's CSV files by name: the same files as `/study export`."""
        if self._export_files is None:
            return {}
        return await self._export_files(admin.group_id, self.clock.now())

    # -------------------------------------------------------------- content

    async def content(self, admin: Admin, deck_name: str, query: str) -> ContentPage:
        """The group's decks (the built-in one first), one deck's items matching ``query`` with their
        figures, and the suggestion queue. Only the admin's group is read."""
        decks = await self.decks.decks(admin.group_id) if self.decks is not None else []
        waiting: list[tuple[Suggestion, str]] = []
        if self.suggestions is not None:
            found = await self.suggestions.open_suggestions(admin.group_id, 20)
            waiting = [(s, _suggestion_text(s)) for s in found]
        items, _ = await self.analytics(admin)
        stats = {i.question_id: i for i in items}
        needle = query.casefold().strip()
        rows: list[ContentRow] = []
        chosen = next((d for d in decks if d.name == deck_name), None)
        if chosen is not None and self.decks is not None:
            for item in await self.decks.deck_items(admin.group_id, chosen.id):
                text = item.data.prompt or item.data.text or item.data.front or ""
                rows.append(ContentRow(item.ref, item.data.kind, text, stats.get(item.ref), item))
        else:
            deck_name = "tpm"
            pack = self.library.pack
            rows += [ContentRow(q.id, "question", q.prompt, stats.get(q.id)) for q in pack.questions]
            rows += [ContentRow(t.id, "tip", t.text, None) for t in pack.tips]
        if needle:
            rows = [r for r in rows if needle in r.text.casefold() or needle in r.ref.casefold()]
        return ContentPage(decks, deck_name, query, rows, waiting)

    async def first_channel(self, admin: Admin) -> ChannelRow | None:
        """A channel of the group to run a group-wide command in (suggestions are per group)."""
        channels = await self.store.group_channels(admin.group_id)
        return channels[0] if channels else None

    async def deck(self, admin: Admin, deck_id: int) -> Deck | None:
        """One of the group's live decks by id (another group's id: None)."""
        if self.decks is None:
            return None
        return next((d for d in await self.decks.decks(admin.group_id) if d.id == deck_id), None)

    async def deck_item(self, admin: Admin, item_id: int) -> tuple[Deck, DeckItem] | None:
        """One item of the group's live decks by id, with its deck (another group's id: None)."""
        if self.decks is None:
            return None
        found = await self.decks.items_by_id(admin.group_id, [item_id])
        if not found:
            return None
        deck = await self.deck(admin, found[0].deck_id)
        return (deck, found[0]) if deck is not None else None

    async def retire(self, admin: Admin, item_id: int) -> bool:
        """Retire one of the group's deck items (another group's id: False, nothing changes)."""
        if self.decks is None:
            return False
        return await self.decks.retire_item(admin.group_id, item_id, self.clock.now())


def _suggestion_text(s: Suggestion) -> str:
    try:
        return item_preview(s.draft())
    except Exception:  # a body the current form cannot read: shown raw rather than hidden
        return s.body


@dataclass(frozen=True, slots=True)
class ContentRow:
    ref: str
    kind: str
    text: str
    stats: ItemAnalytics | None
    item: DeckItem | None = None


@dataclass(frozen=True, slots=True)
class ContentPage:
    decks: list[Deck]
    deck: str
    query: str
    rows: list[ContentRow]
    suggestions: list[tuple[Suggestion, str]]
