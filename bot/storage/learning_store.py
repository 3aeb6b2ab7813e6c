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
from datetime import datetime

from bot.core.export import MemberRow, QuestionRow
from bot.core.learning import EXCUSED_LOOKBACK, ReviewSummary
from bot.storage import rows, sql
from bot.storage.rows import from_ts, ts
from bot.storage.sql import ANSWER_TIMES, DUE_CARDS, MISSED, REVIEW_SUMMARY
from bot.storage.sqlite_store import SqliteStore

__all__ = ["ANSWER_TIMES", "DUE_CARDS", "MISSED", "REVIEW_SUMMARY", "LearningStore"]


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
    groups = [r[0] for r in conn.execute(sql.EXPORT_GROUPS)] if group_id is None else [group_id]
    members: list[MemberRow] = []
    questions: list[QuestionRow] = []
    since = ts(now - EXCUSED_LOOKBACK)
    for gid in groups:
        missed = [datetime.fromisoformat(r[0]) for r in conn.execute(MISSED, (gid, since))]
        key_row = conn.execute(sql.EXPORT_GROUP_KEY, (gid,)).fetchone()
        if key_row is None:
            continue
        members += [rows.export_member(row, missed) for row in conn.execute(sql.EXPORT_MEMBERS, (ts(now), gid))]
        asked = dict(conn.execute(sql.EXPORT_ASKED, (gid,)).fetchall())
        questions += rows.export_questions(key_row[0], asked, conn.execute(sql.EXPORT_ANSWERS, (gid,)).fetchall())
    return members, questions
