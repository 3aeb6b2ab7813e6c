"""Opt-in reminders: a private nudge in the member's own evening when reviews are due or a streak is at stake.

`/study remind on|off [HH:MM]` (no argument: the current setting). Each member who turned reminders on
has a row with a local time (default 19:00) and ``next_at``, the UTC instant at which they are next looked
at. `Reminders.run_due` takes the rows whose ``next_at`` has come and, for each, reads the local time in
the member's zone *today* (their own, else the group's: DST and zone changes follow), then:

* nothing due and no streak at stake → nothing is sent (the day is recorded as ``nothing``);
* otherwise one direct message with a "Quiz me" button, through the platform's `DirectGateway`.

Exactly-once, like channel posts: before sending, the (member, local day) row is claimed with an insert
that only one caller wins, so a restart or a second process on the same database never sends a day's
reminder twice. A process that dies between claim and send loses that day's reminder rather than risk a
repeat (at most once). A retryable failure (429/5xx) is retried with backoff within `GRACE`; a closed DM
(Discord 50007) turns reminders off and leaves a notice for the member's next command.

A freeze that covers a missed day is announced once: in the reminder ("a freeze kept your 12-day
streak") or, when no reminder told it first, in the reply to the answer that spends it.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Protocol, runtime_checkable

from bot.core import actions
from bot.core.commands import Command
from bot.core.learning import LearningPort, when
from bot.core.messages import Button, Inbound, Post, Reply, SentMessage
from bot.core.ports import ChatGateway, Clock, DeliveryError, MemberRef, StreakState
from bot.core.progress import current_streak, missed_days
from bot.core.schedule import resolve_wall_time
from bot.core.service import Context, StudyService, private
from bot.core.timezones import local_day

log = logging.getLogger(__name__)

DEFAULT_TIME = time(19, 0)
#: A reminder later than this after its local time is not sent that day (the bot was down all evening).
GRACE = timedelta(hours=3)
#: Members handled at once in one run (DMs overlap; the database still serialises).
CONCURRENCY = 8
#: Rows read per query in one run.
BATCH = 500
FIRST_BACKOFF = timedelta(seconds=30)
MAX_BACKOFF = timedelta(minutes=30)
BLOCKED_NOTICE = (
    "⏰ I could not send you a reminder by direct message ({platform} says it cannot send messages to you), "
    "so reminders are off. Allow direct messages from studybot (Discord: the server's privacy settings → "
    "direct messages; Slack: the app's Messages tab), then turn them back on with /study remind on."
)


# ---------------------------------------------------------------------- ports


@dataclass(frozen=True, slots=True)
class ReminderSetting:
    """A member's reminder row: on or off, the local time, and when they are next looked at."""

    enabled: bool
    at: time
    next_at: datetime | None


@dataclass(frozen=True, slots=True)
class MemberNotes:
    """See `ReminderStore.member_notes`."""

    notice: str | None
    streak: StreakState
    freeze_noted: tuple[int, date] | None


@dataclass(frozen=True, slots=True)
class DueReminder:
    """A member whose reminder time has come, with what deciding and sending need."""

    member_id: int
    group_id: int
    channel_id: int
    platform: str
    group: str  # the platform's group id (guild, workspace)
    user_id: str
    display_name: str
    tz: str | None
    group_tz: str
    at: time
    next_at: datetime

    @property
    def zone(self) -> str:
        return self.tz or self.group_tz

    def member(self) -> MemberRef:
        return MemberRef(
            self.member_id, self.group_id, self.channel_id, self.user_id, self.display_name, self.tz, self.group_tz
        )


class ReminderStore(Protocol):
    """Reminder settings, the per-day claims and the member notices. Each method is one atomic unit of
    work. Raises `StoreError` on storage failures."""

    async def set_reminder(
        self, member_id: int, channel_id: int, enabled: bool, at: time, next_at: datetime | None, now: datetime
    ) -> None:
        """Create or replace the member's setting (``next_at`` None while off)."""
        ...

    async def reminder(self, member_id: int) -> ReminderSetting | None: ...

    async def due_reminders(self, now: datetime, platforms: Sequence[str], limit: int) -> list[DueReminder]:
        """Members with reminders on whose ``next_at`` is at or before ``now``, on one of ``platforms``,
        earliest first."""
        ...

    async def next_reminder_at(self, platforms: Sequence[str]) -> datetime | None:
        """The earliest ``next_at`` of a member with reminders on, on one of ``platforms``."""
        ...

    async def set_next_reminder(self, member_id: int, next_at: datetime | None) -> None: ...

    async def claim_reminder(
        self, member_id: int, day: date, due_at: datetime, claimer: str, now: datetime
    ) -> tuple[int, int] | None:
        """Claim the member's reminder for local ``day`` before sending: (claim id, attempt number), or None
        when it was claimed before (sent, nothing to send, in flight elsewhere, or failed for good). A
        failed claim whose retry time has come is claimed again."""
        ...

    async def finish_reminder(
        self,
        claim_id: int,
        status: str,
        now: datetime,
        *,
        message_id: str | None = None,
        error: str | None = None,
        next_try_at: datetime | None = None,
    ) -> None:
        """Record a claim's outcome: ``sent``, ``nothing`` (nothing due) or ``failed`` (retried at
        ``next_try_at`` when given)."""
        ...

    async def block_reminders(self, member_id: int, notice: str) -> None:
        """Turn the member's reminders off and keep ``notice`` for their next command."""
        ...

    async def member_notes(self, member_id: int) -> MemberNotes:
        """What a member's next command may have to tell them, in one read: the pending notice (returned
        once), their stored streak and the last freeze announcement."""
        ...

    async def note_freeze(self, member_id: int, channel_id: int, streak: int, day: date) -> bool:
        """Record that the freeze keeping ``streak`` alive was announced on ``day`` (a member without a
        reminder row gets one, reminders off, in ``channel_id``); False (and nothing changes) when that
        streak's freeze was announced already, on ``day`` or up to three days before."""
        ...

    async def freeze_noted(self, member_id: int) -> tuple[int, date] | None:
        """The streak and local day of the last freeze announcement, if any."""
        ...

    async def reminder_member(self, member_id: int) -> tuple[MemberRef, str] | None:
        """The member (with the channel they turned reminders on in, else any of the group's) and their
        platform; None when unknown."""
        ...


@runtime_checkable
class DirectGateway(Protocol):
    """A gateway that can message one member privately (Discord DM, Slack app DM).

    Raises `DeliveryError`: ``forbidden`` when the member does not accept the bot's messages
    (Discord 50007), ``retryable`` for rate limits and server errors."""

    platform: str

    async def send_direct(self, user: str, post: Post) -> SentMessage:
        """Send ``post`` (its ``channel`` ignored, its ``group`` naming the workspace) to ``user``."""
        ...


# ---------------------------------------------------------------------- rules


def next_due_after(at: time, tz: str, now: datetime) -> datetime:
    """The first instant after ``now`` at which the local clock in ``tz`` shows ``at`` (a DST gap moves it
    to the first minute that exists; a fold takes the first pass)."""
    today = local_day(now, tz)
    for n in range(3):
        occ = resolve_wall_time(today + timedelta(days=n), at, tz).at
        if occ > now:
            return occ
    raise ValueError(f"no {at} after {now} in {tz}")  # pragma: no cover - a day always has one


def parse_time(text: str) -> time | None:
    """``HH:MM`` (24-hour) → a time; None when it is not one."""
    hh, sep, mm = text.partition(":")
    if not sep or not (hh.isascii() and hh.isdigit() and mm.isascii() and mm.isdigit()) or len(mm) != 2:
        return None
    if len(hh) > 2 or int(hh) > 23 or int(mm) > 59:
        return None
    return time(int(hh), int(mm))


def freeze_line(streak: int, missed: int) -> str:
    """The freeze announcement, e.g. "🧊 A freeze kept your 12-day streak (1 missed day)."."""
    return f"🧊 A freeze kept your {streak}-day streak ({missed} missed day{'s' if missed != 1 else ''})."


def _told(noted: tuple[int, date] | None, streak: int, today: date) -> bool:
    """Whether ``noted`` (the last announcement) was about the freeze that keeps ``streak`` alive today:
    the same streak, announced today or up to three days before (freezes cover at most two days)."""
    return noted is not None and noted[0] == streak and today - timedelta(days=3) <= noted[1] <= today


@dataclass(frozen=True, slots=True)
class Nudge:
    """What a reminder would say today (empty ``lines``: nothing to remind of)."""

    lines: tuple[str, ...]
    freeze_streak: int | None = None  # a freeze kept this streak alive (to announce once)


def nudge(state: StreakState, today: date, excused: frozenset[date], reviews_due: int) -> Nudge:
    """The reminder's lines for a member: reviews due, a streak that breaks (or costs a freeze) unless they
    answer today, and a freeze that covered a missed day."""
    alive = current_streak(state, today, excused)
    lines: list[str] = []
    freeze_streak = None
    if alive and state.last_day is not None and state.last_day < today:
        gap = missed_days(state.last_day, today, excused)
        if gap:
            freeze_streak = alive
            lines.append(freeze_line(alive, gap))
        if state.freezes - gap >= 1:
            lines.append(f"🔥 Answer one question today to keep your {alive}-day streak (or it costs a 🧊 freeze).")
        else:
            lines.append(f"🔥 Your {alive}-day streak ends tonight unless you answer a question today.")
    if reviews_due:
        lines.append(f"🔁 {reviews_due} review{'s' if reviews_due != 1 else ''} due — /study review")
    return Nudge(tuple(lines), freeze_streak)


# ---------------------------------------------------------------------- the engine


@dataclass
class ReminderReport:
    """What one `Reminders.run_due` did (for logs, tests and the bench)."""

    sent: list[int] = field(default_factory=list)
    nothing: list[int] = field(default_factory=list)
    missed: list[int] = field(default_factory=list)
    blocked: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    taken: list[int] = field(default_factory=list)  # claimed before (here or by another process)


class Reminders:
    """`/study remind`, the reminder run and the freeze announcement, wired into a `StudyService`.

    ``gateways`` maps platform → gateway and is read at each run; only gateways that are `DirectGateway`
    send reminders. ``rearm`` is called after a setting changes (the scheduler's wake-up moves). Methods
    raise `StoreError` only; delivery problems are recorded."""

    def __init__(
        self,
        store: ReminderStore,
        service: StudyService,
        learning: LearningPort,
        gateways: Mapping[str, ChatGateway],
        clock: Clock,
        *,
        name: str | None = None,
        grace: timedelta = GRACE,
        rearm: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.store = store
        self.service = service
        self.learning = learning
        self.gateways = gateways
        self.clock = clock
        self.name = name or f"reminders-{uuid.uuid4().hex[:8]}"
        self.grace = grace
        self.rearm = rearm
        self.stopping = False

    def install(self) -> None:
        """Register `/study remind`, the notices told at a member's next command, the quiz-me button,
        the freeze check of answer replies, and a zone change moving the next reminder."""
        svc = self.service
        svc.register("remind", self.remind_command)
        svc.member_notices.append(self.notices)
        svc.direct_member = self.direct_member
        svc.freeze_announced = self.freeze_announced
        svc.action_handlers["remind-on"] = lambda ctx: self.switch(ctx, True)
        svc.action_handlers["remind-off"] = lambda ctx: self.switch(ctx, False)
        svc.zone_changed.append(self.zone_changed)

    def _platforms(self) -> list[str]:
        return [p for p, gw in self.gateways.items() if isinstance(gw, DirectGateway)]

    # -------------------------------------------------------------- commands

    async def remind_command(self, ctx: Context, command: Command) -> list[Reply]:
        """`/study remind [on|off] [HH:MM]`."""
        m = ctx.member
        current = await self.store.reminder(m.member_id)
        switch = command.args.get("switch")
        if switch is None:
            if current is None or not current.enabled:
                return private(
                    "⏰ Reminders are off. /study remind on [HH:MM] sends you a private message at "
                    f"{DEFAULT_TIME:%H:%M} your time ({m.zone}) on days with reviews due or a streak to keep."
                )
            return private(self._on_text(ctx, current.at, current.next_at, heading="⏰ Reminders are on"))
        if switch == "off":
            await self.store.set_reminder(m.member_id, m.channel_id, False, (current or _off()).at, None, ctx.now)
            await self._rearm()
            return private("⏰ Reminders are off. /study remind on turns them back on.")
        at = parse_time(command.args["time"]) if "time" in command.args else None
        at = at or (current.at if current is not None else DEFAULT_TIME)
        next_at = next_due_after(at, m.zone, ctx.now)
        await self.store.set_reminder(m.member_id, m.channel_id, True, at, next_at, ctx.now)
        await self._rearm()
        return private(self._on_text(ctx, at, next_at, heading="⏰ Reminders on"))

    def _on_text(self, ctx: Context, at: time, next_at: datetime | None, *, heading: str) -> str:
        m = ctx.member
        whose = "your zone" if m.tz else "the group's zone; set yours with /study timezone <zone>"
        lines = [
            f"{heading}: {at:%H:%M} in {m.zone} ({whose}), by direct message, only on days with reviews due "
            "or a streak to keep — at most one a day.",
        ]
        if next_at is not None:
            lines.append(f"Next check: {when(next_at, ctx.now, m.zone)}. Turn them off with /study remind off.")
        if ctx.inbound.platform not in self._platforms():
            lines.append("(Reminders arrive on Discord and Slack; this front end has no direct messages.)")
        return "\n".join(lines)

    async def switch(self, ctx: Context, on: bool) -> list[Reply]:
        """The reminder switch of the Slack Home tab."""
        return await self.remind_command(ctx, Command("remind", {"switch": "on" if on else "off"}))

    async def notices(self, ctx: Context) -> list[Reply]:
        """What the member must hear at their next command: reminders turned off because DMs are closed,
        and a freeze that kept their streak (once, when no reminder or answer told it already)."""
        m = ctx.member
        if not m.notice and m.last_day is not None and m.last_day >= local_day(ctx.now, m.zone) - timedelta(days=1):
            return []  # the member lookup saw no notice and no missed day (answers only move the day on)
        notes = await self.store.member_notes(m.member_id)
        out = private(notes.notice) if notes.notice else []
        state, today = notes.streak, local_day(ctx.now, m.zone)
        if state.last_day is None or state.last_day >= today - timedelta(days=1):
            return out  # no missed day: the common case costs no more than the read above
        excused = await self.service.excused_days(m, ctx.now) if self.service.excused_days else frozenset[date]()
        alive, gap = current_streak(state, today, excused), missed_days(state.last_day, today, excused)
        told = _told(notes.freeze_noted, alive, today)
        if alive and gap and not told and await self.store.note_freeze(m.member_id, m.channel_id, alive, today):
            out += private(freeze_line(alive, gap))
        return out

    async def zone_changed(self, member: MemberRef, now: datetime) -> None:
        """The member's zone changed: their next reminder follows it."""
        current = await self.store.reminder(member.member_id)
        if current is not None and current.enabled:
            await self.store.set_next_reminder(member.member_id, next_due_after(current.at, member.zone, now))
            await self._rearm()

    async def direct_member(self, inbound: Inbound, member_id: int) -> MemberRef | None:
        """The member a click in a direct message acts for: ``member_id`` when it is the clicking user on
        the same platform; None otherwise."""
        found = await self.store.reminder_member(member_id)
        if found is None:
            return None
        ref, platform = found
        if platform != inbound.platform or ref.user_id != inbound.user:
            return None
        return ref

    async def freeze_announced(self, member: MemberRef, streak_before: int, today: date) -> bool:
        """Whether a reminder or an earlier reply already announced the freeze that kept ``streak_before``
        alive (then the answer's reply leaves it out)."""
        return _told(await self.store.freeze_noted(member.member_id), streak_before, today)

    async def _rearm(self) -> None:
        if self.rearm is not None:
            await self.rearm()

    # -------------------------------------------------------------- the run

    async def next_wakeup(self) -> datetime | None:
        """When `run_due` next has something to do (None: nobody has reminders on)."""
        platforms = self._platforms()
        return await self.store.next_reminder_at(platforms) if platforms else None

    async def run_due(self, now: datetime | None = None) -> ReminderReport:
        """Send the reminders due at ``now`` (each member at most once a day)."""
        now = now or self.clock.now()
        report = ReminderReport()
        platforms = self._platforms()
        if not platforms:
            return report
        gate = asyncio.Semaphore(CONCURRENCY)

        async def one(r: DueReminder) -> None:
            async with gate:
                if not self.stopping:
                    await self._one(r, now, report)

        while not self.stopping:
            batch = await self.store.due_reminders(now, platforms, BATCH)
            await asyncio.gather(*(one(r) for r in batch))
            if len(batch) < BATCH:
                break
        return report

    async def _one(self, r: DueReminder, now: datetime, report: ReminderReport) -> None:
        today = local_day(now, r.zone)
        due = resolve_wall_time(today, r.at, r.zone).at
        tomorrow = next_due_after(r.at, r.zone, max(now, due))
        if due > now:  # early (the zone changed since next_at was set): wait for today's time
            await self.store.set_next_reminder(r.member_id, due)
            return
        if now - due > self.grace:
            report.missed.append(r.member_id)
            log.info("reminder of member %s for %s skipped: %s late", r.member_id, today, now - due)
            await self.store.set_next_reminder(r.member_id, tomorrow)
            return
        claimed = await self.store.claim_reminder(r.member_id, today, due, self.name, now)
        if claimed is None:
            report.taken.append(r.member_id)
            await self.store.set_next_reminder(r.member_id, tomorrow)
            return
        claim_id, attempt = claimed
        next_at = tomorrow
        try:
            next_at = await self._send(r, today, claim_id, attempt, due, now, report) or tomorrow
        finally:
            await asyncio.shield(self.store.set_next_reminder(r.member_id, next_at))

    async def _send(
        self,
        r: DueReminder,
        today: date,
        claim_id: int,
        attempt: int,
        due: datetime,
        now: datetime,
        report: ReminderReport,
    ) -> datetime | None:
        """Decide and send one claimed reminder; returns the retry instant when it should be tried again."""
        member = r.member()
        stats, summary, excused = await asyncio.gather(
            self.service.store.member_stats(r.member_id),
            self.learning.review_summary(r.member_id, now),
            self.service.excused_days(member, now) if self.service.excused_days else _no_days(),
        )
        said = nudge(stats.streak, today, excused, summary.due)
        if not said.lines:
            await self.store.finish_reminder(claim_id, "nothing", now)
            report.nothing.append(r.member_id)
            return None
        lines = list(said.lines)
        if said.freeze_streak is not None and not await self.store.note_freeze(
            r.member_id, r.channel_id, said.freeze_streak, today
        ):
            lines = [line for line in lines if not line.startswith("🧊")]  # told before
        text = "\n".join(["⏰ **Your studybot reminder**", *lines, "Turn reminders off with /study remind off."])
        post = Post(
            "",
            text,
            (Button(actions.quizme_action(r.member_id), "Quiz me", "primary"),),
            group=r.group,
            key=f"studybot-remind-{claim_id}"[:25],
        )
        gateway = self.gateways.get(r.platform)
        try:
            if not isinstance(gateway, DirectGateway):
                raise DeliveryError(f"the {r.platform} front end is not running", retryable=True)
            sent = await gateway.send_direct(r.user_id, post)
        except DeliveryError as e:
            if e.forbidden:
                await self.store.finish_reminder(claim_id, "failed", now, error=str(e))
                await self.store.block_reminders(r.member_id, BLOCKED_NOTICE.format(platform=r.platform.capitalize()))
                report.blocked.append(r.member_id)
                log.info("reminders of member %s turned off: %s", r.member_id, e)
                return None
            wait = min(FIRST_BACKOFF * (2 ** (attempt - 1)), MAX_BACKOFF)
            if e.retry_after is not None:
                wait = max(wait, timedelta(seconds=min(e.retry_after, MAX_BACKOFF.total_seconds())))
            retry = now + wait if e.retryable and now + wait - due <= self.grace else None
            await self.store.finish_reminder(claim_id, "failed", now, error=str(e), next_try_at=retry)
            report.failed.append(r.member_id)
            log.warning("reminder of member %s failed (%s)%s", r.member_id, e, f"; retry at {retry}" if retry else "")
            return retry
        await self.store.finish_reminder(claim_id, "sent", now, message_id=sent.message_id)
        report.sent.append(r.member_id)
        return None


async def _no_days() -> frozenset[date]:
    return frozenset()


def _off() -> ReminderSetting:
    return ReminderSetting(False, DEFAULT_TIME, None)
