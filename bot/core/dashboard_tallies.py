"""The dashboard's question analytics kept up to date incrementally, in the bot's memory.

Recomputing a big group's analytics reads every answer it ever got (4.9 s for 1,000,000 answers). So the
first computation in a process (`AnalyticsBase`, the store's full query) is kept per group as tallies, and
each later refresh folds in only the answers after a high-water mark (`AnswerDelta`): a few milliseconds.
Nothing is added to the answer path, and nothing is written: several bot processes each keep their own
tallies, so none can double count another's.

The figures stay exactly those of the full query:

* share correct, picks per letter, average seconds from post to answer: plain sums, folded per answer;
* discrimination: answers and correct answers of the top and bottom third of the group's answering
  members by points (``NTILE(3) OVER (ORDER BY points DESC, id)``). A member's third changes as points
  change, so the members' ranking is kept here too (a sorted list of ``(-points, id)``), each member's
  folded answers are tallied under the third they are in now, and when a refresh moves a member to
  another third their earlier answers are read again (by member, a few rows) and moved with them. Points
  change only when a member answers, so only the members who answered since the mark, and those around
  the two boundaries (which shift by at most the number of changed members), can change third.
* Answers are deleted only with their member (`/study forget-me`): a refresh first counts the group's
  members up to the highest id seen before (ids are never reused); fewer means a deletion, and the group
  is computed in full again.

On SQLite the answer ids follow the commit order (one writer), so every id up to the highest one read is
settled. On PostgreSQL an id is taken before its transaction commits, so a lower id can appear later: the
store settles the mark only up to answers older than `SETTLE`, and the ids above it already folded are
remembered (``recent``) so they are not folded twice.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

from bot.core.content import LETTERS

if TYPE_CHECKING:
    from bot.core.dashboard import QuestionStat

#: How long an answer may take from its ``answered_at`` to being visible to another connection (its
#: transaction committed); answers older than this are settled. Also used for the overview's hours.
SETTLE = timedelta(minutes=10)


@dataclass(frozen=True, slots=True)
class Census:
    """Members of a group: how many have an id up to the highest seen before (``upto``), how many in all,
    and the highest member id now (of any group). Ids are never reused, so fewer members up to the
    highest id seen before than there were members then means a member was deleted."""

    upto: int
    total: int
    highest: int


@dataclass(frozen=True, slots=True)
class QuestionTotals:
    """One question's sums over a group's answers, as the full query reads them."""

    question_id: str
    answers: int
    correct: int
    picks: dict[str, int]
    seconds: float  # sum of seconds from post to answer, over ``timed`` answers
    timed: int
    top: tuple[int, int]  # (answers, correct) of the top third of members by points
    bottom: tuple[int, int]


@dataclass(frozen=True, slots=True)
class AnalyticsBase:
    """A group's analytics in full, read in one snapshot: the totals, every member who answered anything
    with their points, the mark (every answer of the group with an id up to it is counted) and the ids above
    the mark that are counted too (PostgreSQL only)."""

    totals: list[QuestionTotals]
    ranked: list[tuple[int, int]]  # (member id, points) of members with answered > 0
    mark: int
    census: Census
    recent: list[int] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class AnswerRow:
    id: int
    member_id: int
    question_id: str
    choice: str
    correct: bool
    seconds: float | None


@dataclass(frozen=True, slots=True)
class AnswerDelta:
    """The group's answers with an id above a mark, read in one snapshot with the current points and
    ``answered`` of the members who gave them; ``settled``: the new mark (see the module's docstring)."""

    rows: list[AnswerRow]
    members: list[tuple[int, int, int]]  # (member id, points, answered)
    settled: int
    census: Census


def thirds(n: int) -> tuple[int, int]:
    """The first positions (0-based) of the second and third tiles of ``NTILE(3)`` over ``n`` rows: the
    first ``n % 3`` tiles have one row more."""
    size, extra = divmod(n, 3)
    b1 = size + (1 if extra > 0 else 0)
    return b1, b1 + size + (1 if extra > 1 else 0)


def _third(position: int, bounds: tuple[int, int]) -> int:
    return 1 if position < bounds[0] else 2 if position < bounds[1] else 3


class _Tally:
    __slots__ = ("answers", "bottom", "correct", "picks", "seconds", "timed", "top")

    def __init__(self, t: QuestionTotals | None = None) -> None:
        self.answers = t.answers if t else 0
        self.correct = t.correct if t else 0
        self.picks = [t.picks.get(letter, 0) if t else 0 for letter in LETTERS]
        self.seconds = t.seconds if t else 0.0
        self.timed = t.timed if t else 0
        self.top = list(t.top) if t else [0, 0]
        self.bottom = list(t.bottom) if t else [0, 0]

    def third(self, third: int) -> list[int] | None:
        return self.top if third == 1 else self.bottom if third == 3 else None


class QuestionTallies:
    """One group's analytics, kept between refreshes (see the module's docstring)."""

    def __init__(self, base: AnalyticsBase) -> None:
        self.census = base.census
        self.mark = base.mark
        self.recent = {i for i in base.recent if i > base.mark}
        self.tallies = {t.question_id: _Tally(t) for t in base.totals}
        self.points = dict(base.ranked)
        self.keys = sorted((-p, m) for m, p in base.ranked)
        bounds = thirds(len(self.keys))
        #: The third each ranked member's counted answers are tallied under.
        self.third = {m: _third(i, bounds) for i, (_, m) in enumerate(self.keys)}

    def still_valid(self, census: Census) -> bool:
        """False when a member counted before is gone (their answers with them): compute in full again."""
        return census.upto == self.census.total

    def counted(self, answer_id: int) -> bool:
        return answer_id <= self.mark or answer_id in self.recent

    def rank(self, delta: AnswerDelta) -> dict[int, tuple[int, int]]:
        """Update the ranking with the members of ``delta``; returns the members whose third changed and whose
        counted answers must move: member id → (old third, new third)."""
        changed: set[int] = set()
        for member, points, answered in delta.members:
            if answered <= 0:
                continue
            old = self.points.get(member)
            if old == points:
                continue
            if old is not None:
                del self.keys[bisect_left(self.keys, (-old, member))]
            insort(self.keys, (-points, member))
            self.points[member] = points
            changed.add(member)
        bounds = thirds(len(self.keys))
        # An unchanged member's position moves by at most len(changed), each boundary by at most
        # len(changed) / 3 + 1: only those this close to a boundary can cross it.
        reach = 2 * len(changed) + 2
        candidates = set(changed)
        for b in bounds:
            candidates.update(m for _, m in self.keys[max(0, b - reach) : b + reach])
        moves: dict[int, tuple[int, int]] = {}
        for member in candidates:
            new = _third(bisect_left(self.keys, (-self.points[member], member)), bounds)
            old = self.third.get(member)
            if old == new:
                continue
            self.third[member] = new
            if old is not None and (old != 2 or new != 2):
                moves[member] = (old, new)
        return moves

    def move(self, moves: dict[int, tuple[int, int]], answers: Iterable[tuple[int, int, str, bool]]) -> None:
        """Move the counted ``answers`` (id, member id, question id, correct) of members who changed third."""
        for answer_id, member, question, correct in answers:
            if member not in moves or not self.counted(answer_id):
                continue
            tally = self.tallies.get(question)
            if tally is None:
                continue
            old, new = moves[member]
            if (was := tally.third(old)) is not None:
                was[0] -= 1
                was[1] -= int(correct)
            if (now := tally.third(new)) is not None:
                now[0] += 1
                now[1] += int(correct)

    def fold(self, delta: AnswerDelta) -> None:
        """Count the answers of ``delta`` not counted yet (after `rank` and `move`), and advance the mark."""
        for row in delta.rows:
            if self.counted(row.id):
                continue
            tally = self.tallies.get(row.question_id)
            if tally is None:
                tally = self.tallies[row.question_id] = _Tally()
            tally.answers += 1
            tally.correct += int(row.correct)
            if row.choice in LETTERS:
                tally.picks[LETTERS.index(row.choice)] += 1
            if row.seconds is not None:
                tally.seconds += row.seconds
                tally.timed += 1
            if (part := tally.third(self.third.get(row.member_id, 0))) is not None:
                part[0] += 1
                part[1] += int(row.correct)
            if row.id > self.mark:
                self.recent.add(row.id)
        self.census = delta.census
        self.mark = max(self.mark, delta.settled)
        self.recent = {i for i in self.recent if i > self.mark}

    def stats(self) -> list[QuestionStat]:
        from bot.core.dashboard import QuestionStat

        return [
            QuestionStat(
                qid,
                t.answers,
                t.correct,
                dict(zip(LETTERS, t.picks, strict=True)),
                t.seconds / t.timed if t.timed else None,
                (t.top[0], t.top[1]),
                (t.bottom[0], t.bottom[1]),
            )
            for qid, t in self.tallies.items()
            if t.answers
        ]
