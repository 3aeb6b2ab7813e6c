"""`SuggestionStore` (`bot.core.suggestions`) on SQLite and PostgreSQL: the suggestion queue, each group's
suggestion settings and members' pending notices. The statements are shared (`bot.storage.sql`).

Every method is one hop (SQLite) or one transaction (PostgreSQL). The cap on open suggestions is checked
in the transaction that inserts: SQLite's ``BEGIN IMMEDIATE`` serialises writers, PostgreSQL locks the
member's row first, so two submissions at once cannot both pass it.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import TYPE_CHECKING

from bot.core.suggestions import DEFAULT_CAP, Suggestion
from bot.storage import sql
from bot.storage.dialect import pg
from bot.storage.rows import Row, from_ts, ts
from bot.storage.sqlite_store import SqliteStore

if TYPE_CHECKING:
    from bot.storage.pg_store import PgStore


def suggestion(row: Row) -> Suggestion:
    (sid, gid, mid, kind, body, credit, status, created, author, platform, ext, user, reason, item) = row
    created_at = from_ts(created)
    assert created_at is not None
    return Suggestion(
        int(sid), int(gid), int(mid), str(kind), str(body), bool(credit), str(status), created_at,
        str(author), str(platform), str(ext), str(user), reason, item,
    )  # fmt: skip


def _settings(row: Row | None) -> tuple[bool, int]:
    return (True, DEFAULT_CAP) if row is None else (bool(row[0]), int(row[1]))


def _cap(conn: sqlite3.Connection, group_id: int) -> int:
    return _settings(conn.execute(sql.SUGGESTION_SETTINGS, (group_id,)).fetchone())[1]


class SqliteSuggestionStore:
    """`SuggestionStore` on the bot's `SqliteStore` connection."""

    def __init__(self, store: SqliteStore) -> None:
        self.store = store

    async def add_suggestion(
        self, group_id: int, member_id: int, kind: str, body: str, credit: bool, now: datetime
    ) -> int | None:
        def add(conn: sqlite3.Connection) -> int | None:
            conn.execute("BEGIN IMMEDIATE")
            try:
                (waiting,) = conn.execute(sql.OPEN_SUGGESTIONS_OF_MEMBER, (member_id,)).fetchone()
                if int(waiting) >= _cap(conn, group_id):
                    conn.execute("ROLLBACK")
                    return None
                (sid,) = conn.execute(
                    sql.ADD_SUGGESTION, (group_id, member_id, kind, body, int(credit), ts(now))
                ).fetchone()
                conn.execute("COMMIT")
                return int(sid)
            except BaseException:
                conn.execute("ROLLBACK")
                raise

        return await self.store.run_sync(add)

    async def suggestion_settings(self, group_id: int) -> tuple[bool, int]:
        def read(conn: sqlite3.Connection) -> tuple[bool, int]:
            return _settings(conn.execute(sql.SUGGESTION_SETTINGS, (group_id,)).fetchone())

        return await self.store.run_sync(read)

    async def set_suggestions_enabled(self, group_id: int, enabled: bool) -> None:
        def write(conn: sqlite3.Connection) -> None:
            conn.execute(sql.SET_SUGGESTIONS_ENABLED, (group_id, int(enabled)))

        await self.store.run_sync(write)

    async def open_suggestion_count(self, group_id: int, member_id: int | None) -> int:
        def count(conn: sqlite3.Connection) -> int:
            if member_id is None:
                return int(conn.execute(sql.OPEN_SUGGESTIONS_IN_GROUP, (group_id,)).fetchone()[0])
            return int(conn.execute(sql.OPEN_SUGGESTIONS_OF_MEMBER, (member_id,)).fetchone()[0])

        return await self.store.run_sync(count)

    async def open_suggestions(self, group_id: int, limit: int) -> list[Suggestion]:
        def read(conn: sqlite3.Connection) -> list[Suggestion]:
            return [suggestion(r) for r in conn.execute(sql.OPEN_SUGGESTIONS, (group_id, limit))]

        return await self.store.run_sync(read)

    async def get_suggestion(self, suggestion_id: int) -> Suggestion | None:
        def read(conn: sqlite3.Connection) -> Suggestion | None:
            row = conn.execute(sql.GET_SUGGESTION, (suggestion_id,)).fetchone()
            return suggestion(row) if row else None

        return await self.store.run_sync(read)

    async def decide_suggestion(
        self, suggestion_id: int, group_id: int, status: str, decided_by: int, reason: str | None, now: datetime
    ) -> bool:
        def decide(conn: sqlite3.Connection) -> bool:
            params = (status, decided_by, reason, ts(now), suggestion_id, group_id)
            return conn.execute(sql.DECIDE_SUGGESTION, params).rowcount == 1

        return bool(await self.store.run_sync(decide))

    async def reopen_suggestion(self, suggestion_id: int) -> None:
        def reopen(conn: sqlite3.Connection) -> None:
            conn.execute(sql.REOPEN_SUGGESTION, (suggestion_id,))

        await self.store.run_sync(reopen)

    async def set_suggestion_item(self, suggestion_id: int, item_ref: str) -> None:
        def write(conn: sqlite3.Connection) -> None:
            conn.execute(sql.SET_SUGGESTION_ITEM, (item_ref, suggestion_id))

        await self.store.run_sync(write)

    async def add_member_notice(self, member_id: int, text: str, now: datetime) -> None:
        def add(conn: sqlite3.Connection) -> None:
            conn.execute(sql.ADD_MEMBER_NOTICE, (member_id, text, ts(now)))

        await self.store.run_sync(add)
        await self.store.cached_member_changed(member_id)  # the member lookup says whether notices wait

    async def take_member_notices(self, member_id: int) -> list[str]:
        def take(conn: sqlite3.Connection) -> list[str]:
            return [str(t) for _, t in sorted(conn.execute(sql.TAKE_MEMBER_NOTICES, (member_id,)).fetchall())]

        taken = await self.store.run_sync(take)
        if taken:
            self.store.drop_cached_member(member_id)
        return taken


class PgSuggestionStore:
    """`SuggestionStore` on a `PgStore`'s pool."""

    def __init__(self, store: PgStore) -> None:
        self.store = store

    async def add_suggestion(
        self, group_id: int, member_id: int, kind: str, body: str, credit: bool, now: datetime
    ) -> int | None:
        async with self.store._tx() as conn:
            await conn.execute(pg(sql.LOCK_MEMBER), member_id)
            waiting = await conn.fetchval(pg(sql.OPEN_SUGGESTIONS_OF_MEMBER), member_id)
            cap = _settings(await conn.fetchrow(pg(sql.SUGGESTION_SETTINGS), group_id))[1]
            if int(waiting) >= cap:
                return None
            sid = await conn.fetchval(pg(sql.ADD_SUGGESTION), group_id, member_id, kind, body, int(credit), ts(now))
            return int(sid)

    async def suggestion_settings(self, group_id: int) -> tuple[bool, int]:
        return _settings(await self.store._fetchrow(sql.SUGGESTION_SETTINGS, group_id))

    async def set_suggestions_enabled(self, group_id: int, enabled: bool) -> None:
        await self.store._execute(sql.SET_SUGGESTIONS_ENABLED, group_id, int(enabled))

    async def open_suggestion_count(self, group_id: int, member_id: int | None) -> int:
        if member_id is None:
            row = await self.store._fetchrow(sql.OPEN_SUGGESTIONS_IN_GROUP, group_id)
        else:
            row = await self.store._fetchrow(sql.OPEN_SUGGESTIONS_OF_MEMBER, member_id)
        return int(row[0]) if row else 0

    async def open_suggestions(self, group_id: int, limit: int) -> list[Suggestion]:
        return [suggestion(r) for r in await self.store._fetch(sql.OPEN_SUGGESTIONS, group_id, limit)]

    async def get_suggestion(self, suggestion_id: int) -> Suggestion | None:
        row = await self.store._fetchrow(sql.GET_SUGGESTION, suggestion_id)
        return suggestion(row) if row else None

    async def decide_suggestion(
        self, suggestion_id: int, group_id: int, status: str, decided_by: int, reason: str | None, now: datetime
    ) -> bool:
        done = await self.store._execute(
            sql.DECIDE_SUGGESTION, status, decided_by, reason, ts(now), suggestion_id, group_id
        )
        return done == 1

    async def reopen_suggestion(self, suggestion_id: int) -> None:
        await self.store._execute(sql.REOPEN_SUGGESTION, suggestion_id)

    async def set_suggestion_item(self, suggestion_id: int, item_ref: str) -> None:
        await self.store._execute(sql.SET_SUGGESTION_ITEM, item_ref, suggestion_id)

    async def add_member_notice(self, member_id: int, text: str, now: datetime) -> None:
        await self.store._execute(sql.ADD_MEMBER_NOTICE, member_id, text, ts(now))
        await self.store.cached_member_changed(member_id)  # the member lookup says whether notices wait

    async def take_member_notices(self, member_id: int) -> list[str]:
        async with self.store._conn() as conn:
            found = await conn.fetch(pg(sql.TAKE_MEMBER_NOTICES), member_id)
        if found:
            self.store.drop_cached_member(member_id)
        return [str(r[1]) for r in sorted(found, key=lambda r: int(r[0]))]
