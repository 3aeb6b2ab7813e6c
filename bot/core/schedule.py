"""Schedule rules → occurrences, computed with `zoneinfo`. Pure: no I/O, no scheduler library.

Why here and not in a cron trigger: APScheduler 3.11's local-time `CronTrigger` skips or repeats days
at clock changes. We turn "09:00 Europe/Berlin on mon-fri" into UTC instants ourselves:

* a wall time that does not exist that day (spring forward) posts at the first valid minute after it
  (02:30 in Los Angeles on 2026-03-08 posts at 03:00 PDT);
* a wall time that occurs twice (fall back) posts once, at the first occurrence (``fold=0``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from bot.core.timezones import zone

KINDS = ("question", "tip", "interview", "mix")
#: How far back the engine looks for occurrences it has not handled (a long outage is bounded).
MAX_LOOKBACK = timedelta(days=62)


@dataclass(frozen=True, slots=True)
class ScheduleRule:
    """When a channel gets its daily post: local wall time, IANA zone, weekdays (Mon=0), content kind."""

    local_time: time
    tz: str
    days: tuple[int, ...]
    kind: str = "question"
    reveal_hours: int | None = None

    def __post_init__(self) -> None:
        if not self.days or any(d not in range(7) for d in self.days):
            raise ValueError("days must be a non-empty set of weekday numbers 0-6")
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}")
        zone(self.tz)  # raises for an unknown zone


@dataclass(frozen=True, slots=True)
class Occurrence:
    """One scheduled post: the UTC instant, the local day it belongs to, and what the clock did."""

    at: datetime  # aware UTC
    day: date  # the local day it was scheduled for
    shifted_from: time | None = None  # the wall time did not exist; posted at ``local`` instead
    ambiguous: bool = False  # the wall time happened twice that day; this is the first

    def local(self, tz: str) -> datetime:
        return self.at.astimezone(zone(tz))


def _exists(naive: datetime, tz: str) -> bool:
    z = zone(tz)
    return naive.replace(tzinfo=z).astimezone(UTC).astimezone(z).replace(tzinfo=None) == naive


def resolve_wall_time(day: date, wall: time, tz: str) -> Occurrence:
    """The UTC instant at which ``wall`` on local ``day`` in ``tz`` posts, by the rules above."""
    z = zone(tz)
    naive = datetime.combine(day, wall.replace(second=0, microsecond=0, tzinfo=None))
    if _exists(naive, tz):
        first = naive.replace(tzinfo=z, fold=0)
        second = naive.replace(tzinfo=z, fold=1)
        ambiguous = first.utcoffset() != second.utcoffset()
        return Occurrence(first.astimezone(UTC), day, None, ambiguous)
    # In a gap: walk the wall clock minute by minute to the first time that exists (gaps are at most
    # a day long, e.g. Pacific/Apia skipped 2011-12-30).
    probe = naive
    for _ in range(2 * 24 * 60):
        probe += timedelta(minutes=1)
        if _exists(probe, tz):
            return Occurrence(probe.replace(tzinfo=z).astimezone(UTC), day, wall, False)
    raise ValueError(f"no valid local time after {naive} in {tz}")  # pragma: no cover - no such zone


def occurrences(rule: ScheduleRule, after: datetime, until: datetime) -> Iterator[Occurrence]:
    """Occurrences with ``after < at <= until``, in time order (both bounds aware)."""
    z = zone(rule.tz)
    day = after.astimezone(z).date() - timedelta(days=1)
    last = until.astimezone(z).date() + timedelta(days=1)
    seen: set[datetime] = set()
    while day <= last:
        if day.weekday() in rule.days:
            occ = resolve_wall_time(day, rule.local_time, rule.tz)
            if after < occ.at <= until and occ.at not in seen:
                seen.add(occ.at)
                yield occ
        day += timedelta(days=1)


def next_occurrences(rule: ScheduleRule, after: datetime, n: int) -> list[Occurrence]:
    """The next ``n`` occurrences strictly after ``after``."""
    out: list[Occurrence] = []
    start = after
    while len(out) < n:
        batch = list(occurrences(rule, start, start + timedelta(days=8)))
        out.extend(batch)
        start = start + timedelta(days=8)
    return out[:n]


def next_occurrence(rule: ScheduleRule, after: datetime) -> Occurrence:
    return next_occurrences(rule, after, 1)[0]


def _offset_text(dt: datetime) -> str:
    off = dt.utcoffset() or timedelta(0)
    total = int(off.total_seconds() // 60)
    sign = "+" if total >= 0 else "-"
    return f"UTC{sign}{abs(total) // 60:02d}:{abs(total) % 60:02d}"


@dataclass(frozen=True, slots=True)
class PreviewLine:
    occurrence: Occurrence
    text: str
    clock_change: bool


def preview(
    rule: ScheduleRule, after: datetime, n: int = 7, *, skip_until: datetime | None = None
) -> list[PreviewLine]:
    """The next ``n`` posts as lines in local time, with clock changes flagged."""
    lines: list[PreviewLine] = []
    prev_offset = after.astimezone(zone(rule.tz)).utcoffset()
    for occ in next_occurrences(rule, after, n):
        local = occ.local(rule.tz)
        text = f"{local:%a %d %b %Y %H:%M} ({_offset_text(local)})"
        notes = []
        if occ.shifted_from is not None:
            notes.append(
                f"{occ.shifted_from:%H:%M} does not exist that day (clocks go forward): posts at {local:%H:%M}"
            )
        if occ.ambiguous:
            notes.append(f"{local:%H:%M} happens twice that day (clocks go back): posts once, at the first")
        if local.utcoffset() != prev_offset:
            notes.append(f"clocks change before this one ({_offset_text(local)} from now on)")
        if skip_until is not None and occ.at <= skip_until:
            notes.append("skipped")
        prev_offset = local.utcoffset()
        flagged = occ.shifted_from is not None or occ.ambiguous or any(n.startswith("clocks change") for n in notes)
        lines.append(PreviewLine(occ, text + ("  ⚠️ " + "; ".join(notes) if notes else ""), flagged))
    return lines


# ---------------------------------------------------------------- records the engine works with


@dataclass(frozen=True, slots=True)
class ChannelSchedule:
    """A channel's schedule with what the engine needs to post there."""

    channel_id: int
    group_id: int
    platform: str
    channel: str  # the platform's channel id
    channel_name: str
    group_tz: str
    rule: ScheduleRule
    paused: bool
    paused_reason: str | None
    skip_until: datetime | None
    active_since: datetime  # occurrences at or before this are not due (set or resumed then)
    last_scheduled: datetime | None  # the latest occurrence with a delivery row
    group: str = ""  # the platform's group id (guild, workspace) of the channel


@dataclass(frozen=True, slots=True)
class Delivery:
    """A row of the deliveries table (one scheduled occurrence in one channel)."""

    id: int
    channel_id: int
    scheduled_for: datetime
    status: str
    attempts: int
    next_try_at: datetime | None
    post_id: int | None
    message_id: str | None
    error: str | None


@dataclass(frozen=True, slots=True)
class ChannelHistory:
    """What a channel has been shown as group posts: counts per (kind, item) and the latest kinds."""

    counts: dict[tuple[str, str], int]
    last_kind: str | None
    last_item: dict[str, str]  # kind -> the latest item id of that kind


@dataclass(frozen=True, slots=True)
class Notice:
    """Something an admin must hear about: a channel paused because the bot lost access."""

    channel_id: int
    channel: str
    channel_name: str
    reason: str
