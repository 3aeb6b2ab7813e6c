"""SQL for the learning engine (`bot.core.learning.LearningPort`) on the main `SqliteStore`.

Every query is one hop to the connection thread and is answered from an index (see
`tests/test_learning.py::test_learning_queries_use_indexes`): ``cards_due`` for due cards, the
``(channel_id, scheduled_for)`` key of deliveries for missed posts, ``answers_by_member`` for
activity. The export reads through its own read-only connection in a worker thread (WAL lets it run
beside the writer), so a large export never holds up members' answers.
"""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import date, datetime
from typing import Any

from bot.core.export import MemberRow, QuestionRow
from bot.core.learning import EXCUSED_LOOKBACK, ReviewSummary
from bot.core.ports import StreakState
from bot.storage.sqlite_store import SqliteStore, from_ts, ts

#: SQL of the queries on hot paths, named so a test can check each one's plan.
DUE_CARDS = "SELECT question_id, due FROM cards WHERE member_id = ? AND due <= ? ORDER BY due LIMIT ?"
REVIEW_SUMMARY = (
    "SELECT (SELECT COUNT(*) FROM cards WHERE member_id = ? AND due <= ?),"
    " (SELECT MIN(due) FROM cards WHERE member_id = ? AND due > ?)"
)
MISSED = (
    "SELECT d.scheduled_for FROM channels c JOIN deliveries d ON d.channel_id = c.id"
    " WHERE c.group_id = ? AND d.scheduled_for >= ? AND d.status IN ('missed', 'failed')"
)
ANSWER_TIMES = "SELECT answered_at FROM answers WHERE member_id = ? AND answered_at >= ?"

_EXPORT_MEMBERS = (
    "SELECT g.platform || ':' || g.external_id, g.name, m.user_id, m.display_name, m.joined_at, m.answered,"
    " m.correct, m.points, m.streak, m.best_streak, m.last_active_day, m.freezes, m.tz, g.tz,"
    " m.leaderboard_hidden, (SELECT COUNT(*) FROM path_steps p WHERE p.member_id = m.id),"
    " (SELECT COUNT(*) FROM cards k WHERE k.member_id = m.id),"
    " (SELECT COUNT(*) FROM cards k WHERE k.member_id = m.id AND k.due <= ?)"
    " FROM members m JOIN groups g ON g.id = m.group_id WHERE m.group_id = ? ORDER BY m.id"
)
_EXPORT_ASKED = (
    "SELECT p.item_id, COUNT(*) FROM channels c JOIN posts p ON p.channel_id = c.id"
    " WHERE c.group_id = ? AND p.kind = 'question' AND (p.member_id IS NOT NULL OR p.message_id IS NOT NULL)"
    " GROUP BY p.item_id"
)
_EXPORT_ANSWERS = (
    "SELECT question_id, choice, COUNT(*), SUM(correct), SUM(first_try), SUM(first_try AND correct)"
    " FROM answers WHERE group_id = ? GROUP BY question_id, choice"
)


class LearningStore:
    """The learning engine's queries on ``store``'s connection. Raises `StoreError` when the store is
    closed and `sqlite3.Error` on database failures."""

    def __init__(self, store: SqliteStore) -> None:
        self.store = store

    async def due_cards(self, member_id: int, now: datetime, limit: int) -> list[tuple[str, datetime]]:
        def due(conn: sqlite3.Connection) -> list[tuple[str, datetime]]:
            rows = conn.execute(DUE_CARDS, (member_id, ts(now), limit)).fetchall()
            return [(q, datetime.fromisoformat(d)) for q, d in rows]

        return await self.store.run_sync(due)

    async def review_summary(self, member_id: int, now: datetime) -> ReviewSummary:
        def summary(conn: sqlite3.Connection) -> ReviewSummary:
            at = ts(now)
            n, nxt = conn.execute(REVIEW_SUMMARY, (member_id, at, member_id, at)).fetchone()
            return ReviewSummary(int(n), from_ts(nxt))

        return await self.store.run_sync(summary)

    async def missed_deliveries(self, group_id: int, since: datetime) -> list[datetime]:
        def missed(conn: sqlite3.Connection) -> list[datetime]:
            return [datetime.fromisoformat(r[0]) for r in conn.execute(MISSED, (group_id, ts(since)))]

        return await self.store.run_sync(missed)

    async def answer_times(self, member_id: int, since: datetime) -> list[datetime]:
        def times(conn: sqlite3.Connection) -> list[datetime]:
            return [datetime.fromisoformat(r[0]) for r in conn.execute(ANSWER_TIMES, (member_id, ts(since)))]

        return await self.store.run_sync(times)

    async def export_rows(self, group_id: int | None, now: datetime) -> tuple[list[MemberRow], list[QuestionRow]]:
        """Members' progress and question tallies of one group (None: all groups)."""
        path = self.store.path
        if str(path) == ":memory:":
            return await self.store.run_sync(_export, group_id, now)

        def own_connection() -> tuple[list[MemberRow], list[QuestionRow]]:
            conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
            try:
                conn.execute("PRAGMA busy_timeout=10000")
                conn.execute("BEGIN")  # one snapshot for both files
                return _export(conn, group_id, now)
            finally:
                conn.close()

        return await asyncio.to_thread(own_connection)


def _export(conn: sqlite3.Connection, group_id: int | None, now: datetime) -> tuple[list[MemberRow], list[QuestionRow]]:
    all_groups = "SELECT id FROM groups ORDER BY id"
    groups = [r[0] for r in conn.execute(all_groups)] if group_id is None else [group_id]
    members: list[MemberRow] = []
    questions: list[QuestionRow] = []
    since = ts(now - EXCUSED_LOOKBACK)
    for gid in groups:
        missed = [datetime.fromisoformat(r[0]) for r in conn.execute(MISSED, (gid, since))]
        key_row = conn.execute("SELECT platform || ':' || external_id FROM groups WHERE id = ?", (gid,)).fetchone()
        if key_row is None:
            continue
        members += [_member(row, missed) for row in conn.execute(_EXPORT_MEMBERS, (ts(now), gid))]
        asked = dict(conn.execute(_EXPORT_ASKED, (gid,)).fetchall())
        tallies: dict[str, list[Any]] = {}
        for qid, choice, n, correct, first, first_correct in conn.execute(_EXPORT_ANSWERS, (gid,)):
            t = tallies.setdefault(qid, [0, 0, 0, 0, {}])
            t[0] += n
            t[1] += correct
            t[2] += first
            t[3] += first_correct
            t[4][choice] = n
        for qid in sorted(set(asked) | set(tallies)):
            n, correct, first, first_correct, picks = tallies.get(qid, [0, 0, 0, 0, {}])
            questions.append(QuestionRow(key_row[0], qid, asked.get(qid, 0), n, correct, first, first_correct, picks))
    return members, questions


def _member(row: tuple[Any, ...], missed: list[datetime]) -> MemberRow:
    (group, gname, user, name, joined, answered, correct, points, streak, best, last, freezes, tz, gtz, hidden) = row[
        :15
    ]
    steps, cards, due = row[15:]
    state = StreakState(streak, best, date.fromisoformat(last) if last else None, freezes)
    return MemberRow(
        group,
        gname,
        user,
        name,
        datetime.fromisoformat(joined),
        answered,
        correct,
        points,
        state,
        tz or gtz,
        tz is not None,
        bool(hidden),
        steps,
        cards,
        due,
        missed,
    )
