"""The `ScheduleStore` port on SQLite: schedules, delivery claims, reveals. One hop per unit of work.

Exactly-once rests on ``deliveries UNIQUE (channel_id, scheduled_for)``: a claim is an
``INSERT … ON CONFLICT DO NOTHING`` and only the connection whose insert changed a row sends.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from bot.core.ports import PostRecord
from bot.core.schedule import ChannelHistory, ChannelSchedule, Delivery, Notice, ScheduleRule
from bot.storage import rows, sql
from bot.storage.rows import from_ts, ts
from bot.storage.sqlite_store import SqliteStore


def _tx(conn: sqlite3.Connection, fn: Any, *args: Any) -> Any:
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = fn(conn, *args)
        conn.execute("COMMIT")
        return result
    except BaseException:
        conn.execute("ROLLBACK")
        raise


class SqliteScheduleStore:
    """`ScheduleStore` on the bot's `SqliteStore` connection (shares its thread and transactions)."""

    def __init__(self, store: SqliteStore) -> None:
        self.store = store

    async def schedules(self) -> list[ChannelSchedule]:
        def read(conn: sqlite3.Connection) -> list[ChannelSchedule]:
            return [rows.schedule(r) for r in conn.execute(sql.ALL_SCHEDULES)]

        return await self.store.run_sync(read)

    async def schedule_for(self, channel_id: int) -> ChannelSchedule | None:
        def read(conn: sqlite3.Connection) -> ChannelSchedule | None:
            row = conn.execute(sql.SCHEDULE_FOR, (channel_id,)).fetchone()
            return rows.schedule(row) if row else None

        return await self.store.run_sync(read)

    async def save_schedule(self, channel_id: int, rule: ScheduleRule, now: datetime) -> bool:
        def save(conn: sqlite3.Connection) -> bool:
            conn.execute(sql.SAVE_SCHEDULE, rows.schedule_params(channel_id, rule, now))
            cur = conn.execute(sql.SET_GROUP_ZONE_IF_UTC, (rule.tz, channel_id))
            return cur.rowcount == 1 and rule.tz != "UTC"

        changed_zone = bool(await self.store.run_sync(_tx, save))
        if changed_zone:
            self.store.invalidate_caches()  # cached members carry the group's zone
        return changed_zone

    async def set_paused(self, channel_id: int, paused: bool, reason: str | None, now: datetime) -> bool:
        def update(conn: sqlite3.Connection) -> bool:
            if paused:
                cur = conn.execute(sql.PAUSE, (reason, int(reason is not None), channel_id))
            else:
                # Resuming starts afresh: occurrences during the pause are neither posted nor "missed".
                cur = conn.execute(sql.RESUME, (ts(now), channel_id))
            return cur.rowcount == 1

        return bool(await self.store.run_sync(update))

    async def set_skip_until(self, channel_id: int, until: datetime | None) -> bool:
        def update(conn: sqlite3.Connection) -> bool:
            return conn.execute(sql.SET_SKIP_UNTIL, (ts(until) if until else None, channel_id)).rowcount == 1

        return bool(await self.store.run_sync(update))

    async def record_unsent(self, channel_id: int, rows: Sequence[tuple[datetime, str]], now: datetime) -> int:
        if not rows:
            return 0

        def record(conn: sqlite3.Connection) -> int:
            n = 0
            for when, status in rows:
                n += conn.execute(sql.RECORD_UNSENT, (channel_id, ts(when), status, ts(now))).rowcount
            return n

        return int(await self.store.run_sync(_tx, record))

    async def claim(self, channel_id: int, scheduled_for: datetime, claimer: str, now: datetime) -> Delivery | None:
        def claim(conn: sqlite3.Connection) -> Delivery | None:
            row = conn.execute(sql.CLAIM, (channel_id, ts(scheduled_for), claimer, ts(now))).fetchone()
            return rows.delivery(row) if row else None

        return await self.store.run_sync(claim)

    async def reclaim_due(self, now: datetime, claimer: str, stale_before: datetime) -> list[Delivery]:
        def reclaim(conn: sqlite3.Connection) -> list[Delivery]:
            found = conn.execute(sql.RECLAIM_DUE, (claimer, ts(now), ts(now), ts(stale_before))).fetchall()
            return sorted((rows.delivery(r) for r in found), key=lambda d: d.scheduled_for)

        return await self.store.run_sync(reclaim)

    async def create_delivery_post(
        self, delivery_id: int, group_id: int, channel_id: int, kind: str, item_id: str, now: datetime
    ) -> PostRecord:
        def create(conn: sqlite3.Connection) -> PostRecord:
            row = conn.execute(sql.CREATE_DELIVERY_POST, (group_id, channel_id, kind, item_id, ts(now))).fetchone()
            post = rows.post(row)
            conn.execute(sql.LINK_DELIVERY_POST, (post.id, delivery_id))
            return post

        return await self.store.run_sync(_tx, create)

    async def mark_sent(self, delivery_id: int, post_id: int, message_id: str, now: datetime) -> None:
        def mark(conn: sqlite3.Connection) -> None:
            conn.execute(sql.MARK_SENT, (message_id, ts(now), delivery_id))
            conn.execute(sql.SET_POST_MESSAGE, (message_id, post_id))

        await self.store.run_sync(_tx, mark)

    async def mark_failed(self, delivery_id: int, error: str, next_try_at: datetime | None) -> None:
        def mark(conn: sqlite3.Connection) -> None:
            conn.execute(sql.MARK_FAILED, (ts(next_try_at) if next_try_at else None, error[:500], delivery_id))

        await self.store.run_sync(mark)

    async def channel_history(self, channel_id: int) -> ChannelHistory:
        def read(conn: sqlite3.Connection) -> ChannelHistory:
            counts = {(kind, item): n for kind, item, n in conn.execute(sql.HISTORY_COUNTS, (channel_id,))}
            last_kind = None
            last_item: dict[str, str] = {}
            for kind in ("question", "tip", "interview"):
                row = conn.execute(sql.HISTORY_LAST_ITEM, (channel_id, kind)).fetchone()
                if row:
                    last_item[kind] = row[0]
            row = conn.execute(sql.HISTORY_LAST_KIND, (channel_id,)).fetchone()
            if row:
                last_kind = row[0]
            return ChannelHistory(counts, last_kind, last_item)

        return await self.store.run_sync(read)

    async def unrevealed_questions(self, channel_id: int, created_before: datetime) -> list[PostRecord]:
        def read(conn: sqlite3.Connection) -> list[PostRecord]:
            return [rows.post(r) for r in conn.execute(sql.UNREVEALED, (channel_id, ts(created_before)))]

        return await self.store.run_sync(read)

    async def claim_reveal(self, post_id: int, now: datetime) -> bool:
        def claim(conn: sqlite3.Connection) -> bool:
            return conn.execute(sql.CLAIM_REVEAL, (ts(now), post_id)).rowcount == 1

        claimed = bool(await self.store.run_sync(claim))
        self.store.forget_post(post_id)  # the cached copy does not know it was revealed
        return claimed

    async def unclaim_reveal(self, post_id: int) -> None:
        def unclaim(conn: sqlite3.Connection) -> None:
            conn.execute(sql.UNCLAIM_REVEAL, (post_id,))

        await self.store.run_sync(unclaim)
        self.store.forget_post(post_id)

    async def recent_deliveries(self, channel_id: int, limit: int) -> list[Delivery]:
        def read(conn: sqlite3.Connection) -> list[Delivery]:
            return [rows.delivery(r) for r in conn.execute(sql.RECENT_DELIVERIES, (channel_id, limit))]

        return await self.store.run_sync(read)

    async def next_retry_at(self) -> datetime | None:
        def read(conn: sqlite3.Connection) -> datetime | None:
            row = conn.execute(sql.NEXT_RETRY).fetchone()
            return from_ts(row[0])

        return await self.store.run_sync(read)

    async def take_notices(self, group_id: int) -> list[Notice]:
        def take(conn: sqlite3.Connection) -> list[Notice]:
            taken = conn.execute(sql.TAKE_NOTICES, (group_id,)).fetchall()
            out = []
            for cid, reason in taken:
                ext, name = conn.execute(sql.CHANNEL_NAMES, (cid,)).fetchone()
                out.append(Notice(cid, ext, name, reason or ""))
            return out

        return await self.store.run_sync(_tx, take)
