"""Progress rules: streaks (with freezes and excused days), accuracy and mastery. Pure functions."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, replace
from datetime import date, timedelta

from bot.core.content import ContentPack
from bot.core.ports import QuestionTally, StreakState

#: A freeze token is earned for every full week of streak, and at most this many are kept.
FREEZE_EVERY_DAYS = 7
MAX_FREEZES = 2


def _gap_days(last: date, today: date, excused: Collection[date]) -> int:
    """Days strictly between ``last`` and ``today`` that the member missed and are not excused."""
    return sum(1 for n in range(1, (today - last).days) if last + timedelta(days=n) not in excused)


def missed_days(last: date, today: date, excused: Collection[date] = ()) -> int:
    """Days strictly between ``last`` and ``today`` that the member missed and are not excused."""
    return _gap_days(last, today, excused)


def advance_streak(state: StreakState, today: date, excused: Collection[date] = ()) -> StreakState:
    """The streak after the member is active on ``today`` (their local day).

    Missed days that are ``excused`` (the bot failed to post) are skipped over; other missed days use
    freeze tokens if there are enough, else the streak restarts at 1. Being active again on the same
    day changes nothing."""
    if state.last_day is not None and today <= state.last_day:
        return replace(state, freeze_used=0)
    if state.last_day is None:
        streak, freezes, used = 1, state.freezes, 0
    else:
        gap = _gap_days(state.last_day, today, excused)
        if gap == 0:
            streak, freezes, used = state.streak + 1, state.freezes, 0
        elif gap <= state.freezes:
            streak, freezes, used = state.streak + 1, state.freezes - gap, gap
        else:
            streak, freezes, used = 1, state.freezes, 0
    if streak % FREEZE_EVERY_DAYS == 0:
        freezes = min(MAX_FREEZES, freezes + 1)
    return StreakState(streak, max(state.best, streak), today, freezes, used)


def current_streak(state: StreakState, today: date, excused: Collection[date] = ()) -> int:
    """The streak as it stands on ``today``: 0 once more days were missed than freezes can cover.

    ``today`` itself still counts as open (the member may answer later today)."""
    if state.last_day is None:
        return 0
    if today <= state.last_day:
        return state.streak
    return state.streak if _gap_days(state.last_day, today, excused) <= state.freezes else 0


@dataclass(frozen=True, slots=True)
class TopicMastery:
    topic: str
    answered: int
    correct: int
    questions_seen: int
    questions_total: int

    @property
    def accuracy(self) -> float:
        return self.correct / self.answered if self.answered else 0.0


def mastery(pack: ContentPack, tallies: Iterable[QuestionTally]) -> list[TopicMastery]:
    """Per-topic accuracy over a member's answers (questions no longer in the pack are ignored)."""
    totals: dict[str, int] = {}
    for q in pack.questions:
        totals[q.topic] = totals.get(q.topic, 0) + 1
    acc: dict[str, list[int]] = {t: [0, 0, 0] for t in totals}
    for t in tallies:
        found = pack.question(t.question_id)
        if found is None:
            continue
        row = acc[found.topic]
        row[0] += t.answered
        row[1] += t.correct
        row[2] += 1
    return [TopicMastery(topic, a, c, seen, totals[topic]) for topic, (a, c, seen) in sorted(acc.items())]


def current_step(done: Collection[int]) -> int:
    """The first career step not yet done (6 when all are)."""
    return next((n for n in range(1, 7) if n not in done), 6)


def bar(fraction: float, width: int = 10) -> str:
    filled = round(max(0.0, min(1.0, fraction)) * width)
    return "█" * filled + "░" * (width - filled)


def percent(part: int, whole: int) -> str:
    return f"{round(100 * part / whole)}%" if whole else "–"
