"""The `InstallStore` port on SQLite: app installations per workspace and one-time OAuth states."""

from __future__ import annotations

import sqlite3
from datetime import datetime

from bot.storage.sqlite_store import SqliteStore, ts


class SqliteInstallStore:
    """`InstallStore` on the bot's `SqliteStore` connection (one hop per call)."""

    def __init__(self, store: SqliteStore) -> None:
        self.store = store

    async def save_installation(self, platform: str, team_id: str, data: str, now: datetime) -> None:
        def save(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO installations (platform, team_id, data, installed_at)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (platform, team_id)"
                " DO UPDATE SET data = excluded.data, installed_at = excluded.installed_at",
                (platform, team_id, data, ts(now)),
            )

        await self.store.run_sync(save)

    async def find_installation(self, platform: str, team_id: str) -> str | None:
        def find(conn: sqlite3.Connection) -> str | None:
            row = conn.execute(
                "SELECT data FROM installations WHERE platform = ? AND team_id = ?",
                (platform, team_id),
            ).fetchone()
            return str(row[0]) if row else None

        return await self.store.run_sync(find)

    async def delete_installation(self, platform: str, team_id: str) -> bool:
        def delete(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "DELETE FROM installations WHERE platform = ? AND team_id = ?",
                (platform, team_id),
            )
            return cur.rowcount > 0

        return await self.store.run_sync(delete)

    async def issue_oauth_state(self, state: str, expires_at: datetime) -> None:
        def issue(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT INTO oauth_states (state, expires_at) VALUES (?, ?)", (state, ts(expires_at)))

        await self.store.run_sync(issue)

    async def consume_oauth_state(self, state: str, now: datetime) -> bool:
        def consume(conn: sqlite3.Connection) -> bool:
            # One DELETE decides: of two requests with the same state only one deletes the row.
            cur = conn.execute("DELETE FROM oauth_states WHERE state = ? AND expires_at > ?", (state, ts(now)))
            conn.execute("DELETE FROM oauth_states WHERE expires_at <= ?", (ts(now),))
            return cur.rowcount == 1

        return await self.store.run_sync(consume)
