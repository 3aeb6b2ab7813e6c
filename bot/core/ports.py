"""The ports: the few interfaces the core needs from the outside world.

Adapters and storage implement these; the core only ever sees these types.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Protocol, TypeVar

from bot.core.messages import Button, Post, SentMessage
from bot.core.schedule import ChannelHistory, ChannelSchedule, Delivery, Notice, ScheduleRule


class Clock(Protocol):
    """Where the core gets the time. Always returns an aware UTC datetime."""

    def now(self) -> datetime: ...


@dataclass(frozen=True, slots=True)
class MemberRef:
    """A member as the core knows it: internal ids plus the member's and group's zones."""

    member_id: int
    group_id: int
    channel_id: int
    user_id: str
    display_name: str
    tz: str | None
    group_tz: str
    # What the store's member lookup read beside the member, so that a command needs no read of its own
    # for it (`Store.ensure_member`); a ref made any other way keeps the defaults, which mean "ask".
    #: Whether a notice may wait for the member (a suggestion's outcome, reminders turned off): False only
    #: when the lookup saw none and none has been queued since.
    notice: bool = field(default=True, compare=False)
    #: The member's last active day as far as the lookup (or a later answer) knows; the real one is never
    #: earlier. None: not known.
    last_day: date | None = field(default=None, compare=False)
    #: The deck the channel posts from (``schedule set … deck``) when looked up; None: not known.
    deck: str | None = field(default=None, compare=False)

    @property
    def zone(self) -> str:
        """The zone that decides this member's days: their own, else the group's."""
        return self.tz or self.group_tz


@dataclass(frozen=True, slots=True)
class PostRecord:
    """A question or tip shown in a channel (``member_id`` None) or to one member."""

    id: int
    group_id: int
    channel_id: int
    member_id: int | None
    kind: str
    item_id: str
    created_at: datetime
    message_id: str | None = None
    revealed_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class StreakState:
    streak: int
    best: int
    last_day: date | None
    freezes: int
    freeze_used: int = 0


@dataclass(frozen=True, slots=True)
class AnswerIn:
    """An answer to record. ``week`` is the Monday of the group's week (leaderboards)."""

    member_id: int
    post_id: int
    group_id: int
    question_id: str
    choice: str
    correct: bool
    answered_at: datetime
    week: date


@dataclass(frozen=True, slots=True)
class AnswerOutcome:
    """What recording did. ``recorded`` is False when the member had already answered the post;
    then ``choice``/``correct`` are those of the earlier answer and nothing changed."""

    recorded: bool
    choice: str
    correct: bool
    first_try: bool
    streak: StreakState


@dataclass(frozen=True, slots=True)
class MemberStats:
    answered: int
    correct: int
    points: int
    streak: StreakState
    tz: str | None
    hidden: bool
    joined_at: datetime


@dataclass(frozen=True, slots=True)
class QuestionTally:
    """One member's history with one question."""

    question_id: str
    answered: int
    correct: int


@dataclass(frozen=True, slots=True)
class LeaderRow:
    member_id: int
    user_id: str
    display_name: str
    points: int
    last_point_at: datetime | None


@dataclass(frozen=True, slots=True)
class DealReads:
    """What the pick of a dealt post (`Store.deal_post`) reads about its member, in the post's unit of work."""

    tallies: bool = False  #: the member's question tallies
    due_at: datetime | None = None  #: the member's review cards due at this time, most overdue first
    due_limit: int = 20  #: how many of those at most
    shown: str | None = None  #: how often each item of this kind was shown to the member
    steps: bool = False  #: the career steps the member has marked done


@dataclass(frozen=True, slots=True)
class DealView:
    """What was read for a dealt post's pick (what `DealReads` did not ask for is empty)."""

    tallies: list[QuestionTally] = field(default_factory=list)
    due: list[tuple[str, datetime]] = field(default_factory=list)
    shown: dict[str, int] = field(default_factory=dict)
    steps: set[int] = field(default_factory=set)


class Dealt(Protocol):
    """An item a post can be made of (a question, a tip): the post names it by ``id``."""

    @property
    def id(self) -> str: ...


#: The item type of a dealt post.
D = TypeVar("D", bound=Dealt)

StreakFn = Callable[[StreakState], StreakState]
#: Spaced repetition: the stored card (JSON, None for a new card) -> (new card JSON, next due, UTC).
CardFn = Callable[[str | None], tuple[str, datetime]]


class LateRule:
    """Base of a `StreakFn` whose inputs may still be on their way when its answer reaches the store (the
    excused days of the first clicks of a burst, while the group's missed posts are looked up).

    The store awaits `ready` before it runs the rule: once per batch for all the answers that share the
    rule, not once per answer on the event loop. If `ready` raises, those answers fail with that error
    and nothing of theirs is written; the rule must not be called before `ready` has returned."""

    __slots__ = ()

    async def ready(self) -> None:
        """Wait until the rule can run (returns at once when it already can)."""


class StoreError(Exception):
    """Base for storage failures the core may report to a member."""


class SchemaTooNew(StoreError):
    """The database was written by a newer studybot (it has migrations we do not know)."""


class StoreUnavailable(StoreError):
    """The database server cannot be reached or refuses us (refused connection, wrong password, no such
    database): a configuration or operations problem, reported at start as one line."""


class Store(Protocol):
    """Persistence for groups, members, posts, answers and the career path.

    Every method is atomic: it either completes or changes nothing. Raises `StoreError` on
    storage failures.
    """

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
        """Find or create the group, channel and member (updating the display name). The ref carries
        `MemberRef.notice`, ``last_day`` and ``deck`` as read with it (cached refs stay true to them: a
        queued notice or a changed channel deck, here or in another process, drops the cached ref)."""
        ...

    async def find_member(self, group_id: int, query: str, channel_id: int) -> MemberRef | None:
        """A member of the group by platform user id or (case-insensitive) display name."""
        ...

    async def create_post(
        self, group_id: int, channel_id: int, member_id: int | None, kind: str, item_id: str, now: datetime
    ) -> PostRecord: ...

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
        """Read what ``reads`` asks about the member, let ``choose`` pick the item and create the member's
        post of it, as one unit of work — one trip to the database where the store allows — committed
        as `create_post`'s are before it returns. None (nothing written) when ``choose`` picks nothing.
        ``choose`` runs where the store reads (SQLite: on its database thread, inside a group commit), so it
        must be quick and do no I/O; if it raises, nothing is written and its error is raised here."""
        ...

    async def get_post(self, post_id: int) -> PostRecord | None: ...

    async def last_question_post(self, channel_id: int, member_id: int) -> PostRecord | None:
        """The latest question shown in this channel to everyone or to this member."""
        ...

    async def record_answer(
        self, answer: AnswerIn, streak_fn: StreakFn, card_fn: CardFn | None = None
    ) -> AnswerOutcome:
        """Record an answer at most once per (member, post), with scoring, streak and (``card_fn``) the
        member's review card for the question, durably and atomically. A ``streak_fn`` that is a
        `LateRule` runs only after its `ready` has returned (awaited once per batch; if it raises, the
        answer fails with that error and nothing is written).

        Returns only after the answer is committed."""
        ...

    async def question_tallies(self, member_id: int) -> list[QuestionTally]: ...

    async def shown_counts(self, member_id: int, kind: str) -> dict[str, int]:
        """How often each item of ``kind`` was shown to this member personally."""
        ...

    async def member_stats(self, member_id: int) -> MemberStats: ...

    async def set_member_tz(self, member_id: int, tz: str | None) -> None: ...

    async def set_leaderboard_hidden(self, member_id: int, hidden: bool) -> None:
        """Leave the member off (or put them back on) every leaderboard."""
        ...

    async def set_post_message(self, post_id: int, message_id: str) -> None:
        """Record the platform's message id of a post once it has been sent."""
        ...

    async def discard_post(self, post_id: int) -> bool:
        """Delete a post that was never sent (no message id): a failed send leaves nothing behind.
        Returns False (and changes nothing) when it was sent or is gone."""
        ...

    async def steps_done(self, member_id: int) -> set[int]: ...

    async def mark_step(self, member_id: int, step: int, now: datetime) -> bool:
        """Mark a career step done; False if it already was."""
        ...

    async def leaderboard(self, group_id: int, week: date | None, limit: int) -> list[LeaderRow]:
        """Top members by points (this ``week`` or all time when None), earliest scorer first on ties;
        members who hid themselves are left out."""
        ...

    async def forget_member(self, member_id: int) -> int:
        """Delete every row about the member; returns how many rows went."""
        ...

    async def choice_counts(self, post_id: int) -> dict[str, int]:
        """How many members picked each letter on a post."""
        ...


class DeliveryError(Exception):
    """A gateway could not post. ``retryable`` says whether trying again later may work
    (rate limits, 5xx); ``retry_after`` is the platform's hint in seconds, if any."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        retry_after: float | None = None,
        forbidden: bool = False,
        rate_limited: bool = False,
        maybe_sent: bool = False,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after
        #: The bot lacks access to the channel (Discord 403 / Missing Access, Slack not_in_channel):
        #: the scheduler pauses that channel's schedule and tells the next admin.
        self.forbidden = forbidden
        #: The platform refused for now because of its rate limits (HTTP 429): nothing was sent.
        self.rate_limited = rate_limited
        #: The platform may have created the message anyway (a 5xx or a lost connection after the request
        #: went out): look for it before sending again.
        self.maybe_sent = maybe_sent


class ChatGateway(Protocol):
    """Posting to a platform's channels on the core's own initiative (scheduled posts, reveals).

    Raises `DeliveryError`."""

    platform: str

    async def post(self, post: Post) -> SentMessage: ...

    async def edit(
        self, channel: str, message_id: str, text: str, buttons: Sequence[Button] = (), *, group: str = ""
    ) -> None:
        """Replace a posted message's text and buttons; ``group`` as in `Post.group`."""
        ...

    async def find(self, post: Post, since: datetime) -> str | None:
        """The message id of ``post`` if the bot already posted it in ``post.channel`` after ``since`` (found
        among the channel's recent messages by its ``key``, its buttons or, lacking both, its text); None
        when it is not there. A gateway that cannot read a channel back returns None. Raises
        `DeliveryError` (e.g. the bot may not read the channel's history)."""
        ...


class InstallStore(Protocol):
    """Installations of a chat app in many workspaces (Slack OAuth), one per workspace (``team_id``), and
    the one-time OAuth ``state`` values of installs under way. ``data`` is the platform library's own
    record (JSON text), kept whole. Raises `StoreError` on storage failures."""

    async def save_installation(self, platform: str, team_id: str, data: str, now: datetime) -> None:
        """Create or replace the workspace's installation."""
        ...

    async def find_installation(self, platform: str, team_id: str) -> str | None: ...

    async def delete_installation(self, platform: str, team_id: str) -> bool:
        """Forget the workspace's installation; False when there was none."""
        ...

    async def issue_oauth_state(self, state: str, expires_at: datetime) -> None: ...

    async def consume_oauth_state(self, state: str, now: datetime) -> bool:
        """True exactly once for a state issued and not expired at ``now``; it is gone afterwards
        (expired states are swept on the way)."""
        ...


class ScheduleStore(Protocol):
    """Daily-post schedules and their deliveries (see `bot.core.delivery`). Each method is one atomic
    unit of work; the unique (channel, instant) delivery row is what makes posting exactly-once.
    Raises `StoreError` on storage failures."""

    async def schedules(self) -> list[ChannelSchedule]: ...

    async def schedule_for(self, channel_id: int) -> ChannelSchedule | None: ...

    async def save_schedule(self, channel_id: int, rule: ScheduleRule, now: datetime) -> bool:
        """Create or replace, unpaused and active from ``now``; also sets the group's zone when it is
        still UTC. Returns whether the group's zone was set."""
        ...

    async def set_paused(self, channel_id: int, paused: bool, reason: str | None, now: datetime) -> bool:
        """Pause (a ``reason`` also queues a notice for the next admin) or resume; False: no schedule."""
        ...

    async def set_skip_until(self, channel_id: int, until: datetime | None) -> bool: ...

    async def record_unsent(self, channel_id: int, rows: Sequence[tuple[datetime, str]], now: datetime) -> int:
        """Record occurrences as 'missed' or 'skipped' (never overwriting a row); returns how many."""
        ...

    async def claim(self, channel_id: int, scheduled_for: datetime, claimer: str, now: datetime) -> Delivery | None:
        """Claim an occurrence before sending; None when someone already has it."""
        ...

    async def reclaim_due(self, now: datetime, claimer: str, stale_before: datetime) -> list[Delivery]:
        """Claim failed deliveries whose retry time has come and claims abandoned before ``stale_before``."""
        ...

    async def create_delivery_post(
        self, delivery_id: int, group_id: int, channel_id: int, kind: str, item_id: str, now: datetime
    ) -> PostRecord: ...

    async def mark_sent(self, delivery_id: int, post_id: int, message_id: str, now: datetime) -> None: ...

    async def mark_failed(self, delivery_id: int, error: str, next_try_at: datetime | None) -> None: ...

    async def channel_history(self, channel_id: int) -> ChannelHistory: ...

    async def unrevealed_questions(self, channel_id: int, created_before: datetime) -> list[PostRecord]: ...

    async def claim_reveal(self, post_id: int, now: datetime) -> bool:
        """Mark a channel question revealed; False when it already was (someone else reveals it)."""
        ...

    async def unclaim_reveal(self, post_id: int) -> None: ...

    async def recent_deliveries(self, channel_id: int, limit: int) -> list[Delivery]: ...

    async def next_retry_at(self) -> datetime | None: ...

    async def take_notices(self, group_id: int) -> list[Notice]:
        """The group's pending admin notices, each returned once."""
        ...
