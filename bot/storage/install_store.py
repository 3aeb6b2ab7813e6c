"""The `InstallStore` port on SQLite: app installations per workspace and one-time OAuth states."""

from __future__ import annotations

import sqlite3
from datetime import datetime

from bot.storage import sql
from bot.storage.sqlite_store import SqliteStore, ts


class SqliteInstallStore:
    """`InstallStore` on the bot's `SqliteStore` connection (one hop per call)."""

    def __init__(self, store: SqliteStore) -> None:
        self.store = store

    async def save_installation(self, platform: str, team_id: str, data: str, now: datetime) -> None:
        def save(conn: sqlite3.Connection) -> None:
            conn.execute(sql.SAVE_INSTALLATION, (platform, team_id, data, ts(now)))

        await self.store.run_sync(save)

    async def find_installation(self, platform: str, team_id: str) -> str | None:
        def find(conn: sqlite3.Connection) -> str | None:
            row = conn.execute(sql.FIND_INSTALLATION, (platform, team_id)).fetchone()
            return str(row[0]) if row else None

        return await self.store.run_sync(find)

    async def delete_installation(self, platform: str, team_id: str) -> bool:
        def delete(conn: sqlite3.Connection) -> bool:
            return conn.execute(sql.DELETE_INSTALLATION, (platform, team_id)).rowcount > 0

        return await self.store.run_sync(delete)

    async def issue_oauth_state(self, state: str, expires_at: datetime) -> None:
        def issue(conn: sqlite3.Connection) -> None:
            conn.execute(sql.ISSUE_OAUTH_STATE, (state, ts(expires_at)))

        await self.store.run_sync(issue)

    async def consume_oauth_state(self, state: str, now: datetime) -> bool:
        def consume(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(sql.CONSUME_OAUTH_STATE, (state, ts(now)))
            conn.execute(sql.SWEEP_OAUTH_STATES, (ts(now),))
            return cur.rowcount == 1

        return await self.store.run_sync(consume)
