"""CSV export: each member's progress and each question's analytics (times asked, share correct,
picks per choice). `/study export` and `studybot export --out DIR` produce the same files."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from bot.core.content import LETTERS, ContentPack
from bot.core.ports import StreakState
from bot.core.progress import current_streak
from bot.core.timezones import local_day

MEMBERS_FILE = "members.csv"
QUESTIONS_FILE = "questions.csv"

MEMBER_COLUMNS = (
    "group",
    "group_name",
    "user_id",
    "display_name",
    "joined_at",
    "answered",
    "correct",
    "share_correct",
    "points",
    "streak",
    "best_streak",
    "freezes",
    "last_active_day",
    "steps_done",
    "cards",
    "reviews_due",
    "time_zone",
    "leaderboard_hidden",
)
QUESTION_COLUMNS = (
    "group",
    "question_id",
    "topic",
    "difficulty",
    "right_answer",
    "times_asked",
    "answers",
    "correct",
    "share_correct",
    "first_answers",
    "first_share_correct",
    *(f"picks_{letter}" for letter in LETTERS),
    "in_pack",
)


@dataclass(frozen=True, slots=True)
class MemberRow:
    """One member's stored progress, as the store reads it. ``excused``: the group's missed-post
    instants (UTC), which never break a streak."""

    group: str
    group_name: str
    user_id: str
    display_name: str
    joined_at: datetime
    answered: int
    correct: int
    points: int
    streak: StreakState
    zone: str
    own_zone: bool
    hidden: bool
    steps_done: int
    cards: int
    reviews_due: int
    excused: Collection[datetime] = ()


@dataclass(frozen=True, slots=True)
class QuestionRow:
    """One question's history in one group."""

    group: str
    question_id: str
    times_asked: int
    answers: int
    correct: int
    first_answers: int
    first_correct: int
    picks: Mapping[str, int] = field(default_factory=dict)


#: A formula trigger (``=``, ``+``, ``-``, ``@``) that a spreadsheet would see at the start of a cell:
#: at the start of the text or just after any separator a spreadsheet may split on (``,`` ``;`` tab
#: ``|`` or a line break), after optional spaces and quotes.
_FORMULA = re.compile(r"(^|[,;\t|\r\n])([ \"']*)(?=[=+\-@])")


def _safe(text: str) -> str:
    """Member-chosen text, defused for spreadsheets: every place where a formula could start, for any
    common separator, gets an apostrophe (``x;=2+5;`` → ``x;'=2+5;``), so no locale's import runs it."""
    return _FORMULA.sub(r"\1\2'", text)


def _share(part: int, whole: int) -> str:
    return f"{part / whole:.3f}" if whole else ""


def _csv(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def members_csv(rows: Iterable[MemberRow], now: datetime) -> str:
    """Per-member progress; the streak is the one standing today in the member's zone."""
    out = []
    for r in rows:
        excused = {local_day(t, r.zone) for t in r.excused}
        streak = current_streak(r.streak, local_day(now, r.zone), excused)
        out.append(
            (
                _safe(r.group),
                _safe(r.group_name),
                _safe(r.user_id),
                _safe(r.display_name),
                r.joined_at.isoformat(timespec="seconds"),
                r.answered,
                r.correct,
                _share(r.correct, r.answered),
                r.points,
                streak,
                r.streak.best,
                r.streak.freezes,
                r.streak.last_day.isoformat() if r.streak.last_day else "",
                r.steps_done,
                r.cards,
                r.reviews_due,
                r.zone if r.own_zone else "",
                int(r.hidden),
            )
        )
    return _csv(MEMBER_COLUMNS, out)


def questions_csv(rows: Iterable[QuestionRow], pack: ContentPack, groups: Iterable[str] = ()) -> str:
    """Per-question analytics. Every pack question appears for each of ``groups`` (zeros if never
    asked there); questions since removed from the pack appear while they have history."""
    by_key = {(r.group, r.question_id): r for r in rows}
    keys = set(by_key)
    for g in groups:
        keys.update((g, q.id) for q in pack.questions)
    order = {q.id: i for i, q in enumerate(pack.questions)}
    out = []
    for g, qid in sorted(keys, key=lambda k: (k[0], order.get(k[1], len(order)), k[1])):
        r = by_key.get((g, qid)) or QuestionRow(g, qid, 0, 0, 0, 0, 0)
        q = pack.question(qid)
        out.append(
            (
                _safe(g),
                _safe(qid),
                q.topic if q else "",
                q.difficulty if q else "",
                q.answer if q else "",
                r.times_asked,
                r.answers,
                r.correct,
                _share(r.correct, r.answers),
                r.first_answers,
                _share(r.first_correct, r.first_answers),
                *(r.picks.get(letter, 0) for letter in LETTERS),
                int(q is not None),
            )
        )
    return _csv(QUESTION_COLUMNS, out)


def export_files(
    members: Sequence[MemberRow], questions: Sequence[QuestionRow], pack: ContentPack, now: datetime
) -> dict[str, str]:
    """The export's files by name: ``members.csv`` and ``questions.csv``."""
    groups = {m.group for m in members} | {q.group for q in questions}
    return {MEMBERS_FILE: members_csv(members, now), QUESTIONS_FILE: questions_csv(questions, pack, groups)}
