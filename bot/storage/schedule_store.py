"""The `ScheduleStore` port on SQLite: schedules, delivery claims, reveals. One hop per unit of work.

Exactly-once rests on ``deliveries UNIQUE (channel_id, scheduled_for)``: a claim is an
``INSERT … ON CONFLICT DO NOTHING`` and only the connection whose insert changed a row sends.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime, time
from typing import Any

from bot.core.ports import PostRecord
from bot.core.schedule import ChannelHistory, ChannelSchedule, Delivery, Notice, ScheduleRule
from bot.storage.sqlite_store import _POST_COLS, SqliteStore, _post, from_ts, ts

_SCHED_SQL = (
    "SELECT s.channel_id, c.group_id, g.platform, c.external_id, c.name, g.tz,"
    " s.local_time, s.tz, s.days, s.kind, s.reveal_hours, s.paused, s.paused_reason, s.skip_until,"
    " s.updated_at, (SELECT MAX(d.scheduled_for) FROM deliveries d WHERE d.channel_id = s.channel_id),"
    " g.external_id"
    " FROM schedules s JOIN channels c ON c.id = s.channel_id JOIN groups g ON g.id = c.group_id"
)
_DELIVERY_COLS = "id, channel_id, scheduled_for, status, attempts, next_try_at, post_id, message_id, error"
#: A channel post counts (history, reveals) only once the platform took it: one being sent, or whose
#: send failed, was seen by nobody.
_SENT = "message_id IS NOT NULL"


def _schedule(row: tuple[Any, ...]) -> ChannelSchedule:
    (cid, gid, platform, ext, name, gtz, lt, tz, days, kind, reveal, paused, reason, skip, updated, last, group) = row
    hh, mm = lt.split(":")
    rule = ScheduleRule(time(int(hh), int(mm)), tz, tuple(int(d) for d in days.split(",")), kind, reveal)
    return ChannelSchedule(
        cid, gid, platform, ext, name, gtz, rule, bool(paused), reason, from_ts(skip),
        datetime.fromisoformat(updated), from_ts(last), group,
    )  # fmt: skip


def _delivery(row: tuple[Any, ...]) -> Delivery:
    did, cid, when, status, attempts, next_try, post_id, msg, err = row
    return Delivery(did, cid, datetime.fromisoformat(when), status, attempts, from_ts(next_try), post_id, msg, err)


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
            return [_schedule(r) for r in conn.execute(_SCHED_SQL + " ORDER BY s.channel_id")]

        return await self.store.run_sync(read)

    async def schedule_for(self, channel_id: int) -> ChannelSchedule | None:
        def read(conn: sqlite3.Connection) -> ChannelSchedule | None:
            row = conn.execute(_SCHED_SQL + " WHERE s.channel_id = ?", (channel_id,)).fetchone()
            return _schedule(row) if row else None

        return await self.store.run_sync(read)

    async def save_schedule(self, channel_id: int, rule: ScheduleRule, now: datetime) -> bool:
        def save(conn: sqlite3.Connection) -> bool:
            at = ts(now)
            conn.execute(
                "INSERT INTO schedules (channel_id, local_time, tz, days, kind, reveal_hours, paused, paused_reason,"
                " skip_until, created_at, updated_at, notice_pending) VALUES (?, ?, ?, ?, ?, ?, 0, NULL, NULL, ?, ?, 0)"
                " ON CONFLICT (channel_id) DO UPDATE SET local_time = excluded.local_time, tz = excluded.tz,"
                " days = excluded.days, kind = excluded.kind, reveal_hours = excluded.reveal_hours, paused = 0,"
                " paused_reason = NULL, skip_until = NULL, updated_at = excluded.updated_at, notice_pending = 0",
                (
                    channel_id,
                    f"{rule.local_time:%H:%M}",
                    rule.tz,
                    ",".join(str(d) for d in rule.days),
                    rule.kind,
                    rule.reveal_hours,
                    at,
                    at,
                ),
            )
            cur = conn.execute(
                "UPDATE groups SET tz = ? WHERE id = (SELECT group_id FROM channels WHERE id = ?) AND tz = 'UTC'",
                (rule.tz, channel_id),
            )
            return cur.rowcount == 1 and rule.tz != "UTC"

        changed_zone = bool(await self.store.run_sync(_tx, save))
        if changed_zone:
            self.store.invalidate_caches()  # cached members carry the group's zone
        return changed_zone

    async def set_paused(self, channel_id: int, paused: bool, reason: str | None, now: datetime) -> bool:
        def update(conn: sqlite3.Connection) -> bool:
            if paused:
                cur = conn.execute(
                    "UPDATE schedules SET paused = 1, paused_reason = ?, notice_pending = ? WHERE channel_id = ?",
                    (reason, int(reason is not None), channel_id),
                )
            else:
                # Resuming starts afresh: occurrences during the pause are neither posted nor "missed".
                cur = conn.execute(
                    "UPDATE schedules SET paused = 0, paused_reason = NULL, notice_pending = 0, updated_at = ?"
                    " WHERE channel_id = ?",
                    (ts(now), channel_id),
                )
            return cur.rowcount == 1

        return bool(await self.store.run_sync(update))

    async def set_skip_until(self, channel_id: int, until: datetime | None) -> bool:
        def update(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "UPDATE schedules SET skip_until = ? WHERE channel_id = ?",
                (ts(until) if until else None, channel_id),
            )
            return cur.rowcount == 1

        return bool(await self.store.run_sync(update))

    async def record_unsent(self, channel_id: int, rows: Sequence[tuple[datetime, str]], now: datetime) -> int:
        if not rows:
            return 0

        def record(conn: sqlite3.Connection) -> int:
            n = 0
            for when, status in rows:
                cur = conn.execute(
                    "INSERT INTO deliveries (channel_id, scheduled_for, status, claimed_at) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT (channel_id, scheduled_for) DO NOTHING",
                    (channel_id, ts(when), status, ts(now)),
                )
                n += cur.rowcount
            return n

        return int(await self.store.run_sync(_tx, record))

    async def claim(self, channel_id: int, scheduled_for: datetime, claimer: str, now: datetime) -> Delivery | None:
        def claim(conn: sqlite3.Connection) -> Delivery | None:
            row = conn.execute(
                "INSERT INTO deliveries (channel_id, scheduled_for, status, claimed_by, claimed_at)"
                " VALUES (?, ?, 'claimed', ?, ?) ON CONFLICT (channel_id, scheduled_for) DO NOTHING"
                f" RETURNING {_DELIVERY_COLS}",
                (channel_id, ts(scheduled_for), claimer, ts(now)),
            ).fetchone()
            return _delivery(row) if row else None

        return await self.store.run_sync(claim)

    async def reclaim_due(self, now: datetime, claimer: str, stale_before: datetime) -> list[Delivery]:
        def reclaim(conn: sqlite3.Connection) -> list[Delivery]:
            rows = conn.execute(
                "UPDATE deliveries SET status = 'claimed', claimed_by = ?, claimed_at = ?, next_try_at = NULL"
                " WHERE (status = 'failed' AND next_try_at IS NOT NULL AND next_try_at <= ?)"
                " OR (status = 'claimed' AND claimed_at < ?)"
                f" RETURNING {_DELIVERY_COLS}",
                (claimer, ts(now), ts(now), ts(stale_before)),
            ).fetchall()
            return sorted((_delivery(r) for r in rows), key=lambda d: d.scheduled_for)

        return await self.store.run_sync(reclaim)

    async def create_delivery_post(
        self, delivery_id: int, group_id: int, channel_id: int, kind: str, item_id: str, now: datetime
    ) -> PostRecord:
        def create(conn: sqlite3.Connection) -> PostRecord:
            row = conn.execute(
                "INSERT INTO posts (group_id, channel_id, member_id, kind, item_id, created_at)"
                f" VALUES (?, ?, NULL, ?, ?, ?) RETURNING {_POST_COLS}",
                (group_id, channel_id, kind, item_id, ts(now)),
            ).fetchone()
            post = _post(row)
            conn.execute("UPDATE deliveries SET post_id = ? WHERE id = ?", (post.id, delivery_id))
            return post

        return await self.store.run_sync(_tx, create)

    async def mark_sent(self, delivery_id: int, post_id: int, message_id: str, now: datetime) -> None:
        def mark(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE deliveries SET status = 'sent', message_id = ?, attempts = attempts + 1, next_try_at = NULL,"
                " error = NULL, claimed_at = ? WHERE id = ?",
                (message_id, ts(now), delivery_id),
            )
            conn.execute("UPDATE posts SET message_id = ? WHERE id = ?", (message_id, post_id))

        await self.store.run_sync(_tx, mark)

    async def mark_failed(self, delivery_id: int, error: str, next_try_at: datetime | None) -> None:
        def mark(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE deliveries SET status = 'failed', attempts = attempts + 1, next_try_at = ?, error = ?"
                " WHERE id = ?",
                (ts(next_try_at) if next_try_at else None, error[:500], delivery_id),
            )

        await self.store.run_sync(mark)

    async def channel_history(self, channel_id: int) -> ChannelHistory:
        def read(conn: sqlite3.Connection) -> ChannelHistory:
            counts = {
                (kind, item): n
                for kind, item, n in conn.execute(
                    "SELECT kind, item_id, COUNT(*) FROM posts WHERE channel_id = ? AND member_id IS NULL"
                    f" AND {_SENT} GROUP BY kind, item_id",
                    (channel_id,),
                )
            }
            last_kind = None
            last_item: dict[str, str] = {}
            for kind in ("question", "tip"):
                row = conn.execute(
                    "SELECT item_id, id FROM posts WHERE channel_id = ? AND member_id IS NULL AND kind = ?"
                    f" AND {_SENT} ORDER BY id DESC LIMIT 1",
                    (channel_id, kind),
                ).fetchone()
                if row:
                    last_item[kind] = row[0]
            row = conn.execute(
                f"SELECT kind FROM posts WHERE channel_id = ? AND member_id IS NULL AND {_SENT}"
                " ORDER BY id DESC LIMIT 1",
                (channel_id,),
            ).fetchone()
            if row:
                last_kind = row[0]
            return ChannelHistory(counts, last_kind, last_item)

        return await self.store.run_sync(read)

    async def unrevealed_questions(self, channel_id: int, created_before: datetime) -> list[PostRecord]:
        def read(conn: sqlite3.Connection) -> list[PostRecord]:
            rows = conn.execute(
                f"SELECT {_POST_COLS} FROM posts WHERE channel_id = ? AND member_id IS NULL AND revealed_at IS NULL"
                f" AND kind = 'question' AND created_at <= ? AND {_SENT} ORDER BY id",
                (channel_id, ts(created_before)),
            )
            return [_post(r) for r in rows]

        return await self.store.run_sync(read)

    async def claim_reveal(self, post_id: int, now: datetime) -> bool:
        def claim(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "UPDATE posts SET revealed_at = ? WHERE id = ? AND revealed_at IS NULL", (ts(now), post_id)
            )
            return cur.rowcount == 1

        claimed = bool(await self.store.run_sync(claim))
        self.store.forget_post(post_id)  # the cached copy does not know it was revealed
        return claimed

    async def unclaim_reveal(self, post_id: int) -> None:
        def unclaim(conn: sqlite3.Connection) -> None:
            conn.execute("UPDATE posts SET revealed_at = NULL WHERE id = ?", (post_id,))

        await self.store.run_sync(unclaim)
        self.store.forget_post(post_id)

    async def recent_deliveries(self, channel_id: int, limit: int) -> list[Delivery]:
        def read(conn: sqlite3.Connection) -> list[Delivery]:
            rows = conn.execute(
                f"SELECT {_DELIVERY_COLS} FROM deliveries WHERE channel_id = ? ORDER BY scheduled_for DESC LIMIT ?",
                (channel_id, limit),
            )
            return [_delivery(r) for r in rows]

        return await self.store.run_sync(read)

    async def next_retry_at(self) -> datetime | None:
        def read(conn: sqlite3.Connection) -> datetime | None:
            row = conn.execute(
                "SELECT MIN(next_try_at) FROM deliveries WHERE status = 'failed' AND next_try_at IS NOT NULL"
            ).fetchone()
            return from_ts(row[0])

        return await self.store.run_sync(read)

    async def take_notices(self, group_id: int) -> list[Notice]:
        def take(conn: sqlite3.Connection) -> list[Notice]:
            rows = conn.execute(
                "UPDATE schedules SET notice_pending = 0 WHERE notice_pending = 1 AND channel_id IN"
                " (SELECT id FROM channels WHERE group_id = ?) RETURNING channel_id, paused_reason",
                (group_id,),
            ).fetchall()
            out = []
            for cid, reason in rows:
                ext, name = conn.execute("SELECT external_id, name FROM channels WHERE id = ?", (cid,)).fetchone()
                out.append(Notice(cid, ext, name, reason or ""))
            return out

        return await self.store.run_sync(_tx, take)
