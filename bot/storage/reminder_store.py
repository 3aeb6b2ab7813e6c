"""The `ReminderStore` port (`bot.core.reminders`) on SQLite and on PostgreSQL.

Its statement texts live here, written once with ``?`` placeholders as in `bot.storage.sql` (PostgreSQL
runs `bot.storage.dialect.pg` of them). At most once per member and local day rests on
``reminder_sends UNIQUE (member_id, day)``: a claim is an ``INSERT … ON CONFLICT`` that returns a row only
to the caller whose insert (or retry of a failed row whose time has come) changed it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from bot.core.ports import MemberRef, StreakState
from bot.core.reminders import DueReminder, MemberNotes, ReminderSetting
from bot.storage.dialect import changed, pg
from bot.storage.rows import from_ts, ts
from bot.storage.sqlite_store import SqliteStore

if TYPE_CHECKING:
    from bot.storage.pg_store import PgStore

SET_REMINDER = (
    "INSERT INTO reminders (member_id, channel_id, enabled, at_time, next_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (member_id) DO UPDATE SET channel_id = excluded.channel_id, enabled = excluded.enabled,"
    " at_time = excluded.at_time, next_at = excluded.next_at, updated_at = excluded.updated_at"
)
GET_REMINDER = "SELECT enabled, at_time, next_at FROM reminders WHERE member_id = ?"
#: Three platform slots (discord, slack, console): unused ones are bound to ''.
DUE_REMINDERS = (
    "SELECT r.member_id, m.group_id, r.channel_id, g.platform, g.external_id, m.user_id, m.display_name, m.tz,"
    " g.tz, r.at_time, r.next_at FROM reminders r JOIN members m ON m.id = r.member_id"
    " JOIN groups g ON g.id = m.group_id"
    " WHERE r.next_at IS NOT NULL AND r.next_at <= ? AND r.enabled = 1 AND g.platform IN (?, ?, ?)"
    " ORDER BY r.next_at, r.member_id LIMIT ?"
)
NEXT_REMINDER = (
    "SELECT MIN(r.next_at) FROM reminders r JOIN members m ON m.id = r.member_id JOIN groups g ON g.id = m.group_id"
    " WHERE r.next_at IS NOT NULL AND r.enabled = 1 AND g.platform IN (?, ?, ?)"
)
SET_NEXT_REMINDER = "UPDATE reminders SET next_at = ? WHERE member_id = ? AND enabled = 1"
CLAIM_REMINDER = (
    "INSERT INTO reminder_sends (member_id, day, due_at, status, claimed_by, claimed_at) VALUES (?, ?, ?, 'claimed', ?, ?)"
    " ON CONFLICT (member_id, day) DO UPDATE SET status = 'claimed', claimed_by = excluded.claimed_by,"
    " claimed_at = excluded.claimed_at, attempts = reminder_sends.attempts + 1, next_try_at = NULL"
    " WHERE reminder_sends.status = 'failed' AND reminder_sends.next_try_at IS NOT NULL"
    " AND reminder_sends.next_try_at <= ?"
    " RETURNING id, attempts"
)
FINISH_REMINDER = (
    "UPDATE reminder_sends SET status = ?, sent_at = ?, message_id = ?, error = ?, next_try_at = ?"
    " WHERE id = ? AND status = 'claimed'"
)
BLOCK_REMINDERS = "UPDATE reminders SET enabled = 0, next_at = NULL, notice = ? WHERE member_id = ?"
MEMBER_NOTES = (
    "SELECT r.notice, m.streak, m.best_streak, m.last_active_day, m.freezes, r.freeze_streak, r.freeze_day"
    " FROM members m LEFT JOIN reminders r ON r.member_id = m.id WHERE m.id = ?"
)
PEEK_NOTICE = "SELECT notice FROM reminders WHERE member_id = ? AND notice IS NOT NULL"
CLEAR_NOTICE = "UPDATE reminders SET notice = NULL WHERE member_id = ? AND notice IS NOT NULL"
GET_FREEZE_NOTE = "SELECT freeze_streak, freeze_day FROM reminders WHERE member_id = ?"
SET_FREEZE_NOTE = (
    "INSERT INTO reminders (member_id, channel_id, enabled, at_time, next_at, freeze_streak, freeze_day, updated_at)"
    " VALUES (?, ?, 0, '19:00', NULL, ?, ?, ?) ON CONFLICT (member_id) DO UPDATE"
    " SET freeze_streak = excluded.freeze_streak, freeze_day = excluded.freeze_day"
    " WHERE NOT (reminders.freeze_streak IS NOT NULL AND reminders.freeze_streak = excluded.freeze_streak"
    " AND reminders.freeze_day >= ? AND reminders.freeze_day <= excluded.freeze_day)"
)
REMINDER_MEMBER = (
    "SELECT m.id, m.group_id, COALESCE(r.channel_id, (SELECT MIN(c.id) FROM channels c WHERE c.group_id = m.group_id)),"
    " m.user_id, m.display_name, m.tz, g.tz, g.platform FROM members m JOIN groups g ON g.id = m.group_id"
    " LEFT JOIN reminders r ON r.member_id = m.id WHERE m.id = ?"
)

#: A freeze announced this many days before still counts as announced (freezes cover at most two days).
FREEZE_NOTE_DAYS = 3


def _platforms(platforms: Sequence[str]) -> tuple[str, str, str]:
    slots = [*platforms[:3], "", "", ""][:3]
    return slots[0], slots[1], slots[2]


def _at(text: str) -> time:
    return time.fromisoformat(text)


def _due(row: Any) -> DueReminder:
    mid, gid, cid, platform, group, user, name, tz, gtz, at, next_at = row
    return DueReminder(mid, gid, cid, platform, group, user, name, tz, gtz, _at(at), datetime.fromisoformat(next_at))


def _setting(row: Any) -> ReminderSetting:
    return ReminderSetting(bool(row[0]), _at(row[1]), from_ts(row[2]))


def _member(row: Any) -> tuple[MemberRef, str]:
    mid, gid, cid, user, name, tz, gtz, platform = row
    return MemberRef(mid, gid, cid or 0, user, name, tz, gtz), platform


def _freeze_params(member_id: int, channel_id: int, streak: int, day: date) -> tuple[Any, ...]:
    earliest = day - timedelta(days=FREEZE_NOTE_DAYS)
    # updated_at (a row made here) is the day of the announcement, at midnight UTC.
    made = f"{day.isoformat()}T00:00:00.000000Z"
    return (member_id, channel_id, streak, day.isoformat(), made, earliest.isoformat())


def _notes(row: Any, notice: str | None) -> MemberNotes:
    _, streak, best, last, freezes, noted_streak, noted_day = row
    state = StreakState(streak, best, date.fromisoformat(last) if last else None, freezes)
    noted = (int(noted_streak), date.fromisoformat(noted_day)) if noted_streak is not None else None
    return MemberNotes(notice, state, noted)


_NO_ONE = MemberNotes(None, StreakState(0, 0, None, 0), None)


def _finish_params(
    claim_id: int, status: str, now: datetime, message_id: str | None, error: str | None, next_try_at: datetime | None
) -> tuple[Any, ...]:
    sent_at = ts(now) if status == "sent" else None
    return (
        status,
        sent_at,
        message_id,
        error[:500] if error else None,
        ts(next_try_at) if next_try_at else None,
        claim_id,
    )


class SqliteReminderStore:
    """`ReminderStore` on the bot's `SqliteStore` connection (one hop per call)."""

    def __init__(self, store: SqliteStore) -> None:
        self.store = store

    async def set_reminder(
        self, member_id: int, channel_id: int, enabled: bool, at: time, next_at: datetime | None, now: datetime
    ) -> None:
        params = (member_id, channel_id, int(enabled), f"{at:%H:%M}", ts(next_at) if next_at else None, ts(now))

        def save(conn: sqlite3.Connection) -> None:
            conn.execute(SET_REMINDER, params)

        await self.store.run_sync(save)

    async def reminder(self, member_id: int) -> ReminderSetting | None:
        def read(conn: sqlite3.Connection) -> ReminderSetting | None:
            row = conn.execute(GET_REMINDER, (member_id,)).fetchone()
            return _setting(row) if row else None

        return await self.store.run_sync(read)

    async def due_reminders(self, now: datetime, platforms: Sequence[str], limit: int) -> list[DueReminder]:
        def read(conn: sqlite3.Connection) -> list[DueReminder]:
            return [_due(r) for r in conn.execute(DUE_REMINDERS, (ts(now), *_platforms(platforms), limit))]

        return await self.store.run_sync(read)

    async def next_reminder_at(self, platforms: Sequence[str]) -> datetime | None:
        def read(conn: sqlite3.Connection) -> datetime | None:
            return from_ts(conn.execute(NEXT_REMINDER, _platforms(platforms)).fetchone()[0])

        return await self.store.run_sync(read)

    async def set_next_reminder(self, member_id: int, next_at: datetime | None) -> None:
        def update(conn: sqlite3.Connection) -> None:
            conn.execute(SET_NEXT_REMINDER, (ts(next_at) if next_at else None, member_id))

        await self.store.run_sync(update)

    async def claim_reminder(
        self, member_id: int, day: date, due_at: datetime, claimer: str, now: datetime
    ) -> tuple[int, int] | None:
        params = (member_id, day.isoformat(), ts(due_at), claimer, ts(now), ts(now))

        def claim(conn: sqlite3.Connection) -> tuple[int, int] | None:
            row = conn.execute(CLAIM_REMINDER, params).fetchone()
            return (int(row[0]), int(row[1])) if row else None

        return await self.store.run_sync(claim)

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
        params = _finish_params(claim_id, status, now, message_id, error, next_try_at)

        def finish(conn: sqlite3.Connection) -> None:
            conn.execute(FINISH_REMINDER, params)

        await self.store.run_sync(finish)

    async def block_reminders(self, member_id: int, notice: str) -> None:
        def block(conn: sqlite3.Connection) -> None:
            conn.execute(BLOCK_REMINDERS, (notice, member_id))

        await self.store.run_sync(block)
        await self.store.cached_member_changed(member_id)  # the member lookup says whether notices wait

    async def member_notes(self, member_id: int) -> MemberNotes:
        def take(conn: sqlite3.Connection) -> MemberNotes:
            # One read: nearly every command finds no notice, and a read takes no write lock.
            row = conn.execute(MEMBER_NOTES, (member_id,)).fetchone()
            if row is None:
                return _NO_ONE
            taken = row[0] is not None and conn.execute(CLEAR_NOTICE, (member_id,)).rowcount == 1
            return _notes(row, str(row[0]) if taken else None)

        notes = await self.store.run_sync(take)
        if notes.notice is not None:
            self.store.drop_cached_member(member_id)
        return notes

    async def note_freeze(self, member_id: int, channel_id: int, streak: int, day: date) -> bool:
        def note(conn: sqlite3.Connection) -> bool:
            return conn.execute(SET_FREEZE_NOTE, _freeze_params(member_id, channel_id, streak, day)).rowcount == 1

        return await self.store.run_sync(note)

    async def freeze_noted(self, member_id: int) -> tuple[int, date] | None:
        def read(conn: sqlite3.Connection) -> tuple[int, date] | None:
            row = conn.execute(GET_FREEZE_NOTE, (member_id,)).fetchone()
            return (int(row[0]), date.fromisoformat(row[1])) if row and row[0] is not None else None

        return await self.store.run_sync(read)

    async def reminder_member(self, member_id: int) -> tuple[MemberRef, str] | None:
        def read(conn: sqlite3.Connection) -> tuple[MemberRef, str] | None:
            row = conn.execute(REMINDER_MEMBER, (member_id,)).fetchone()
            return _member(row) if row else None

        return await self.store.run_sync(read)


class PgReminderStore:
    """`ReminderStore` on a `PgStore`'s pool: one statement per call (the claim is one upsert)."""

    def __init__(self, store: PgStore) -> None:
        self.store = store

    async def set_reminder(
        self, member_id: int, channel_id: int, enabled: bool, at: time, next_at: datetime | None, now: datetime
    ) -> None:
        await self.store._execute(
            SET_REMINDER, member_id, channel_id, int(enabled), f"{at:%H:%M}", ts(next_at) if next_at else None, ts(now)
        )

    async def reminder(self, member_id: int) -> ReminderSetting | None:
        row = await self.store._fetchrow(GET_REMINDER, member_id)
        return _setting(row) if row else None

    async def due_reminders(self, now: datetime, platforms: Sequence[str], limit: int) -> list[DueReminder]:
        return [_due(r) for r in await self.store._fetch(DUE_REMINDERS, ts(now), *_platforms(platforms), limit)]

    async def next_reminder_at(self, platforms: Sequence[str]) -> datetime | None:
        row = await self.store._fetchrow(NEXT_REMINDER, *_platforms(platforms))
        return from_ts(row[0]) if row else None

    async def set_next_reminder(self, member_id: int, next_at: datetime | None) -> None:
        await self.store._execute(SET_NEXT_REMINDER, ts(next_at) if next_at else None, member_id)

    async def claim_reminder(
        self, member_id: int, day: date, due_at: datetime, claimer: str, now: datetime
    ) -> tuple[int, int] | None:
        row = await self.store._fetchrow(
            CLAIM_REMINDER, member_id, day.isoformat(), ts(due_at), claimer, ts(now), ts(now)
        )
        return (int(row[0]), int(row[1])) if row else None

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
        await self.store._execute(
            FINISH_REMINDER, *_finish_params(claim_id, status, now, message_id, error, next_try_at)
        )

    async def block_reminders(self, member_id: int, notice: str) -> None:
        await self.store._execute(BLOCK_REMINDERS, notice, member_id)
        await self.store.cached_member_changed(member_id)  # the member lookup says whether notices wait

    async def member_notes(self, member_id: int) -> MemberNotes:
        async with self.store._conn() as conn:
            # One read: nearly every command finds no notice. Then the update decides who tells it.
            row = await conn.fetchrow(pg(MEMBER_NOTES), member_id)
            if row is None:
                return _NO_ONE
            if row[0] is None:
                return _notes(row, None)
            async with conn.transaction():
                text = await conn.fetchval(pg(PEEK_NOTICE + " FOR UPDATE"), member_id)
                taken = text is not None and changed(await conn.execute(pg(CLEAR_NOTICE), member_id)) == 1
        self.store.drop_cached_member(member_id)
        return _notes(row, str(text) if taken else None)

    async def note_freeze(self, member_id: int, channel_id: int, streak: int, day: date) -> bool:
        params = _freeze_params(member_id, channel_id, streak, day)
        return await self.store._execute(SET_FREEZE_NOTE, *params) == 1

    async def freeze_noted(self, member_id: int) -> tuple[int, date] | None:
        row = await self.store._fetchrow(GET_FREEZE_NOTE, member_id)
        return (int(row[0]), date.fromisoformat(row[1])) if row and row[0] is not None else None

    async def reminder_member(self, member_id: int) -> tuple[MemberRef, str] | None:
        row = await self.store._fetchrow(REMINDER_MEMBER, member_id)
        return _member(row) if row else None
