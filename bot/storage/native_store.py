"""The `NativeStore` port (issue 18) on SQLite and PostgreSQL: channel options, post threads, admin notices
and role rewards (tables of migration 0009). The statement texts are shared; ``?`` placeholders are
numbered for PostgreSQL by `bot.storage.dialect.pg`. Each method is one statement or one transaction.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import TYPE_CHECKING, Any

from bot.core.native import ChannelOptions, Reward
from bot.storage.dialect import pg
from bot.storage.rows import from_ts, ts

if TYPE_CHECKING:
    from bot.storage.pg_store import PgStore
    from bot.storage.sqlite_store import SqliteStore

OPTIONS = "SELECT thread, ping_role, set_by, checked_at FROM channel_options WHERE channel_id = ?"
#: Setting a schedule again re-arms the check before its first post (``checked_at`` back to NULL).
SAVE_OPTIONS = (
    "INSERT INTO channel_options (channel_id, thread, ping_role, set_by, checked_at, updated_at)"
    " VALUES (?, ?, ?, ?, NULL, ?) ON CONFLICT (channel_id) DO UPDATE SET thread = excluded.thread,"
    " ping_role = excluded.ping_role, set_by = excluded.set_by, checked_at = NULL, updated_at = excluded.updated_at"
)
CLEAR_CHANNEL_NOTICES = "DELETE FROM channel_notices WHERE channel_id = ?"
#: The check runs once: the caller whose update changed the row.
CLAIM_CHECK = "UPDATE channel_options SET checked_at = ? WHERE channel_id = ? AND checked_at IS NULL"
ADD_NOTICE = (
    "INSERT INTO channel_notices (channel_id, topic, member_id, text, created_at) VALUES (?, ?, ?, ?, ?)"
    " ON CONFLICT (channel_id, topic) DO NOTHING"
)
TAKE_MEMBER_NOTICES = (
    "UPDATE channel_notices SET taken_at = ? WHERE taken_at IS NULL AND (member_id = ? OR member_id IS NULL)"
    " AND channel_id IN (SELECT id FROM channels WHERE group_id = ?) RETURNING created_at, text"
)
SET_THREAD = "INSERT INTO post_threads (post_id, thread_id) VALUES (?, ?) ON CONFLICT (post_id) DO NOTHING"
THREAD_OF = "SELECT thread_id FROM post_threads WHERE post_id = ?"
SET_REWARD = (
    "INSERT INTO rewards (group_id, kind, threshold, role_id, created_at) VALUES (?, ?, ?, ?, ?)"
    " ON CONFLICT (group_id, kind, threshold) DO UPDATE SET role_id = excluded.role_id"
)
CLEAR_ALL_REWARDS = "DELETE FROM rewards WHERE group_id = ?"
CLEAR_REWARDS_OF_KIND = "DELETE FROM rewards WHERE group_id = ? AND kind = ?"
REWARDS = "SELECT id, group_id, kind, threshold, role_id FROM rewards WHERE group_id = ? ORDER BY kind, threshold, id"
CLAIM_GRANT = (
    "INSERT INTO reward_grants (reward_id, member_id, granted_at) VALUES (?, ?, ?)"
    " ON CONFLICT (reward_id, member_id) DO NOTHING"
)
UNCLAIM_GRANT = "DELETE FROM reward_grants WHERE reward_id = ? AND member_id = ?"


def _options(row: Any) -> ChannelOptions:
    if row is None:
        return ChannelOptions()
    thread, ping, set_by, checked = row
    return ChannelOptions(bool(thread), ping, set_by, from_ts(checked))


def _merged(old: ChannelOptions, thread: bool | None, ping_role: str | None) -> tuple[int, str | None]:
    new_thread = old.thread if thread is None else thread
    new_ping = old.ping_role if ping_role is None else (ping_role or None)
    return int(new_thread), new_ping


def _notices(found: list[Any]) -> list[str]:
    return [text for _, text in sorted(found, key=lambda r: r[0])]


class SqliteNativeStore:
    """`NativeStore` on the bot's `SqliteStore` connection (its thread, its transactions)."""

    def __init__(self, store: SqliteStore) -> None:
        self.store = store

    async def _tx(self, fn: Any, *args: Any) -> Any:
        def run(conn: sqlite3.Connection) -> Any:
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(conn, *args)
                conn.execute("COMMIT")
                return result
            except BaseException:
                conn.execute("ROLLBACK")
                raise

        return await self.store.run_sync(run)

    async def _one(self, query: str, *args: Any) -> Any:
        return await self.store.run_sync(lambda conn: conn.execute(query, args).fetchone())

    async def _change(self, query: str, *args: Any) -> int:
        return int(await self.store.run_sync(lambda conn: conn.execute(query, args).rowcount))

    async def channel_options(self, channel_id: int) -> ChannelOptions:
        return _options(await self._one(OPTIONS, channel_id))

    async def save_channel_options(
        self, channel_id: int, thread: bool | None, ping_role: str | None, set_by: int | None, now: datetime
    ) -> ChannelOptions:
        def save(conn: sqlite3.Connection) -> ChannelOptions:
            new_thread, new_ping = _merged(_options(conn.execute(OPTIONS, (channel_id,)).fetchone()), thread, ping_role)
            conn.execute(SAVE_OPTIONS, (channel_id, new_thread, new_ping, set_by, ts(now)))
            conn.execute(CLEAR_CHANNEL_NOTICES, (channel_id,))
            return ChannelOptions(bool(new_thread), new_ping, set_by, None)

        result: ChannelOptions = await self._tx(save)
        return result

    async def claim_check(self, channel_id: int, now: datetime) -> bool:
        return await self._change(CLAIM_CHECK, ts(now), channel_id) == 1

    async def add_notice(self, channel_id: int, topic: str, member_id: int | None, text: str, now: datetime) -> bool:
        return await self._change(ADD_NOTICE, channel_id, topic, member_id, text, ts(now)) == 1

    async def take_member_notices(self, group_id: int, member_id: int, now: datetime) -> list[str]:
        def take(conn: sqlite3.Connection) -> list[str]:
            return _notices(conn.execute(TAKE_MEMBER_NOTICES, (ts(now), member_id, group_id)).fetchall())

        result: list[str] = await self._tx(take)
        return result

    async def set_thread(self, post_id: int, thread_id: str) -> None:
        await self._change(SET_THREAD, post_id, thread_id)

    async def thread_of(self, post_id: int) -> str | None:
        row = await self._one(THREAD_OF, post_id)
        return str(row[0]) if row else None

    async def set_reward(self, group_id: int, kind: str, threshold: int, role: str, now: datetime) -> None:
        await self._change(SET_REWARD, group_id, kind, threshold, role, ts(now))

    async def clear_rewards(self, group_id: int, kind: str | None) -> int:
        if kind is None:
            return await self._change(CLEAR_ALL_REWARDS, group_id)
        return await self._change(CLEAR_REWARDS_OF_KIND, group_id, kind)

    async def rewards(self, group_id: int) -> list[Reward]:
        found = await self.store.run_sync(lambda conn: conn.execute(REWARDS, (group_id,)).fetchall())
        return [Reward(*r) for r in found]

    async def claim_grant(self, reward_id: int, member_id: int, now: datetime) -> bool:
        return await self._change(CLAIM_GRANT, reward_id, member_id, ts(now)) == 1

    async def unclaim_grant(self, reward_id: int, member_id: int) -> None:
        await self._change(UNCLAIM_GRANT, reward_id, member_id)


class PgNativeStore:
    """`NativeStore` on a `PgStore`'s pool."""

    def __init__(self, store: PgStore) -> None:
        self.store = store

    async def channel_options(self, channel_id: int) -> ChannelOptions:
        return _options(await self.store._fetchrow(OPTIONS, channel_id))

    async def save_channel_options(
        self, channel_id: int, thread: bool | None, ping_role: str | None, set_by: int | None, now: datetime
    ) -> ChannelOptions:
        async with self.store._tx() as conn:
            old = _options(await conn.fetchrow(pg(OPTIONS) + " FOR UPDATE", channel_id))
            new_thread, new_ping = _merged(old, thread, ping_role)
            await conn.execute(pg(SAVE_OPTIONS), channel_id, new_thread, new_ping, set_by, ts(now))
            await conn.execute(pg(CLEAR_CHANNEL_NOTICES), channel_id)
        return ChannelOptions(bool(new_thread), new_ping, set_by, None)

    async def claim_check(self, channel_id: int, now: datetime) -> bool:
        return await self.store._execute(CLAIM_CHECK, ts(now), channel_id) == 1

    async def add_notice(self, channel_id: int, topic: str, member_id: int | None, text: str, now: datetime) -> bool:
        return await self.store._execute(ADD_NOTICE, channel_id, topic, member_id, text, ts(now)) == 1

    async def take_member_notices(self, group_id: int, member_id: int, now: datetime) -> list[str]:
        return _notices(list(await self.store._fetch(TAKE_MEMBER_NOTICES, ts(now), member_id, group_id)))

    async def set_thread(self, post_id: int, thread_id: str) -> None:
        await self.store._execute(SET_THREAD, post_id, thread_id)

    async def thread_of(self, post_id: int) -> str | None:
        row = await self.store._fetchrow(THREAD_OF, post_id)
        return str(row[0]) if row else None

    async def set_reward(self, group_id: int, kind: str, threshold: int, role: str, now: datetime) -> None:
        await self.store._execute(SET_REWARD, group_id, kind, threshold, role, ts(now))

    async def clear_rewards(self, group_id: int, kind: str | None) -> int:
        if kind is None:
            return await self.store._execute(CLEAR_ALL_REWARDS, group_id)
        return await self.store._execute(CLEAR_REWARDS_OF_KIND, group_id, kind)

    async def rewards(self, group_id: int) -> list[Reward]:
        return [Reward(*r) for r in await self.store._fetch(REWARDS, group_id)]

    async def claim_grant(self, reward_id: int, member_id: int, now: datetime) -> bool:
        return await self.store._execute(CLAIM_GRANT, reward_id, member_id, ts(now)) == 1

    async def unclaim_grant(self, reward_id: int, member_id: int) -> None:
        await self.store._execute(UNCLAIM_GRANT, reward_id, member_id)


def native_for(store: SqliteStore | PgStore) -> SqliteNativeStore | PgNativeStore:
    """The `NativeStore` sharing ``store``'s connection(s)."""
    from bot.storage.sqlite_store import SqliteStore

    if isinstance(store, SqliteStore):
        return SqliteNativeStore(store)
    return PgNativeStore(store)
