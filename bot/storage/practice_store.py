"""Open-card practice (`bot.core.practice.PracticePort`) on SQLite and PostgreSQL.

The statement texts are shared by both stores (``?`` placeholders; `bot.storage.dialect.pg` numbers
them for PostgreSQL). A rating and the member's FSRS card move in one transaction on both: the
``rating IS NULL`` guard of `RATE` makes a second rating (a double click, two processes) change nothing.
Written answers are read back only by `ATTEMPT` (for their own member); no export reads them.
"""

from __future__ import annotations

import logging
import sqlite3
from datetime import datetime
from typing import TYPE_CHECKING, Any

from bot.core.practice import Attempt, KindSummary, PracticeCardFn, RateOutcome
from bot.storage.dialect import pg
from bot.storage.rows import from_ts, ts
from bot.storage.sqlite_store import SqliteStore

if TYPE_CHECKING:
    from bot.storage.pg_store import PgStore

log = logging.getLogger(__name__)

_ATTEMPT_COLS = "id, member_id, group_id, kind, card_key, answer, dealt_at, rating, rated_at"
DEAL = "INSERT INTO attempts (member_id, group_id, kind, card_key, dealt_at) VALUES (?, ?, ?, ?, ?) RETURNING id"
ATTEMPT = f"SELECT {_ATTEMPT_COLS} FROM attempts WHERE id = ?"
LATEST = f"SELECT {_ATTEMPT_COLS} FROM attempts WHERE member_id = ? ORDER BY id DESC LIMIT 1"
WRITE = "UPDATE attempts SET answer = ? WHERE id = ? AND member_id = ? AND rating IS NULL"
RATE = (
    "UPDATE attempts SET rating = ?, rated_at = ? WHERE id = ? AND member_id = ? AND rating IS NULL"
    " RETURNING kind, card_key"
)
EARLIER_RATING = "SELECT rating FROM attempts WHERE id = ? AND member_id = ?"
GET_CARD = "SELECT card FROM practice_cards WHERE member_id = ? AND card_key = ?"
PUT_CARD = (
    "INSERT INTO practice_cards (member_id, card_key, kind, card, due) VALUES (?, ?, ?, ?, ?)"
    " ON CONFLICT (member_id, card_key) DO UPDATE SET card = excluded.card, due = excluded.due"
)
DUE = "SELECT kind, card_key, due FROM practice_cards WHERE member_id = ? AND due <= ? ORDER BY due LIMIT ?"
COUNTS = "SELECT card_key, COUNT(*) FROM attempts WHERE member_id = ? GROUP BY card_key"
SUMMARY_ATTEMPTS = (
    "SELECT kind, COUNT(rating), COUNT(answer), COALESCE(SUM(CASE WHEN rating >= 3 THEN 1 ELSE 0 END), 0)"
    " FROM attempts WHERE member_id = ? GROUP BY kind"
)
SUMMARY_DUE = (
    "SELECT kind, COALESCE(SUM(CASE WHEN due <= ? THEN 1 ELSE 0 END), 0), MIN(CASE WHEN due > ? THEN due END)"
    " FROM practice_cards WHERE member_id = ? GROUP BY kind"
)


def _attempt(row: Any) -> Attempt:
    return Attempt(
        int(row[0]),
        int(row[1]),
        int(row[2]),
        str(row[3]),
        str(row[4]),
        row[5],
        datetime.fromisoformat(row[6]),
        None if row[7] is None else int(row[7]),
        from_ts(row[8]),
    )


def _summaries(attempts: list[Any], due: list[Any]) -> list[KindSummary]:
    by_kind: dict[str, list[Any]] = {}
    for kind, rated, written, good in attempts:
        by_kind[kind] = [int(rated), int(written), int(good), 0, None]
    for kind, n, nxt in due:
        entry = by_kind.setdefault(kind, [0, 0, 0, 0, None])
        entry[3], entry[4] = int(n), from_ts(nxt)
    return [KindSummary(k, *v) for k, v in sorted(by_kind.items())]


def _new_card(card_fn: PracticeCardFn, stored: str | None, attempt_id: int) -> tuple[str, datetime] | None:
    try:
        return card_fn(stored)
    except Exception:  # a broken card must not cost the member the rating
        log.exception("practice card for attempt %s not updated", attempt_id)
        return None


class SqlitePracticeStore:
    """`PracticePort` on the bot's `SqliteStore` connection (one hop per call). Raises `StoreError` when
    the store is closed and `sqlite3.Error` on database failures."""

    def __init__(self, store: SqliteStore) -> None:
        self.store = store

    async def deal_attempt(self, member_id: int, group_id: int, kind: str, card_key: str, now: datetime) -> int:
        def deal(conn: sqlite3.Connection) -> int:
            return int(conn.execute(DEAL, (member_id, group_id, kind, card_key, ts(now))).fetchone()[0])

        return await self.store.run_sync(deal)

    async def get_attempt(self, attempt_id: int) -> Attempt | None:
        def get(conn: sqlite3.Connection) -> Attempt | None:
            row = conn.execute(ATTEMPT, (attempt_id,)).fetchone()
            return _attempt(row) if row else None

        return await self.store.run_sync(get)

    async def latest_attempt(self, member_id: int) -> Attempt | None:
        def latest(conn: sqlite3.Connection) -> Attempt | None:
            row = conn.execute(LATEST, (member_id,)).fetchone()
            return _attempt(row) if row else None

        return await self.store.run_sync(latest)

    async def write_answer(self, attempt_id: int, member_id: int, text: str) -> bool:
        def write(conn: sqlite3.Connection) -> bool:
            return conn.execute(WRITE, (text, attempt_id, member_id)).rowcount == 1

        return await self.store.run_sync(write)

    async def rate_attempt(
        self, attempt_id: int, member_id: int, rating: int, now: datetime, card_fn: PracticeCardFn
    ) -> RateOutcome:
        def rate(conn: sqlite3.Connection) -> RateOutcome:
            conn.execute("BEGIN IMMEDIATE")
            try:
                row = conn.execute(RATE, (rating, ts(now), attempt_id, member_id)).fetchone()
                if row is None:
                    earlier = conn.execute(EARLIER_RATING, (attempt_id, member_id)).fetchone()
                    conn.execute("ROLLBACK")
                    return RateOutcome(False, earlier[0] if earlier else None, None)
                kind, key = row
                old = conn.execute(GET_CARD, (member_id, key)).fetchone()
                new = _new_card(card_fn, old[0] if old else None, attempt_id)
                if new is not None:
                    conn.execute(PUT_CARD, (member_id, key, kind, new[0], ts(new[1])))
                conn.execute("COMMIT")
                return RateOutcome(True, rating, new[1] if new else None)
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

        return await self.store.run_sync(rate)

    async def due_practice(self, member_id: int, now: datetime, limit: int) -> list[tuple[str, str, datetime]]:
        def due(conn: sqlite3.Connection) -> list[tuple[str, str, datetime]]:
            return [(k, c, datetime.fromisoformat(d)) for k, c, d in conn.execute(DUE, (member_id, ts(now), limit))]

        return await self.store.run_sync(due)

    async def practice_counts(self, member_id: int) -> dict[str, int]:
        def counts(conn: sqlite3.Connection) -> dict[str, int]:
            return {k: int(n) for k, n in conn.execute(COUNTS, (member_id,))}

        return await self.store.run_sync(counts)

    async def practice_summary(self, member_id: int, now: datetime) -> list[KindSummary]:
        def summary(conn: sqlite3.Connection) -> list[KindSummary]:
            at = ts(now)
            attempts = conn.execute(SUMMARY_ATTEMPTS, (member_id,)).fetchall()
            return _summaries(attempts, conn.execute(SUMMARY_DUE, (at, at, member_id)).fetchall())

        return await self.store.run_sync(summary)


class PgPracticeStore:
    """`PracticePort` on a `PgStore`'s pool."""

    def __init__(self, store: PgStore) -> None:
        self.store = store

    async def deal_attempt(self, member_id: int, group_id: int, kind: str, card_key: str, now: datetime) -> int:
        row = await self.store._fetchrow(DEAL, member_id, group_id, kind, card_key, ts(now))
        assert row is not None  # INSERT … RETURNING
        return int(row[0])

    async def get_attempt(self, attempt_id: int) -> Attempt | None:
        row = await self.store._fetchrow(ATTEMPT, attempt_id)
        return _attempt(row) if row else None

    async def latest_attempt(self, member_id: int) -> Attempt | None:
        row = await self.store._fetchrow(LATEST, member_id)
        return _attempt(row) if row else None

    async def write_answer(self, attempt_id: int, member_id: int, text: str) -> bool:
        return await self.store._execute(WRITE, text, attempt_id, member_id) == 1

    async def rate_attempt(
        self, attempt_id: int, member_id: int, rating: int, now: datetime, card_fn: PracticeCardFn
    ) -> RateOutcome:
        async with self.store._tx() as conn:
            row = await conn.fetchrow(pg(RATE), rating, ts(now), attempt_id, member_id)
            if row is None:
                earlier = await conn.fetchval(pg(EARLIER_RATING), attempt_id, member_id)
                return RateOutcome(False, earlier, None)
            kind, key = row
            # Two attempts at one card rated at the same instant: the later write wins (as for questions).
            old = await conn.fetchval(pg(GET_CARD), member_id, key)
            new = _new_card(card_fn, old, attempt_id)
            if new is not None:
                await conn.execute(pg(PUT_CARD), member_id, key, kind, new[0], ts(new[1]))
        return RateOutcome(True, rating, new[1] if new else None)

    async def due_practice(self, member_id: int, now: datetime, limit: int) -> list[tuple[str, str, datetime]]:
        found = await self.store._fetch(DUE, member_id, ts(now), limit)
        return [(k, c, datetime.fromisoformat(d)) for k, c, d in found]

    async def practice_counts(self, member_id: int) -> dict[str, int]:
        return {k: int(n) for k, n in await self.store._fetch(COUNTS, member_id)}

    async def practice_summary(self, member_id: int, now: datetime) -> list[KindSummary]:
        at = ts(now)
        async with self.store._conn() as conn:
            attempts = await conn.fetch(pg(SUMMARY_ATTEMPTS), member_id)
            due = await conn.fetch(pg(SUMMARY_DUE), at, at, member_id)
        return _summaries(list(attempts), list(due))
