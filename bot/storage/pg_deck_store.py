"""The `DeckStore` port on PostgreSQL: the statement texts of `bot.storage.deck_store`, through asyncpg."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import asyncpg

from bot.core.decks import TPM, Deck, DeckDeleted, DeckItem, DeckNotice, ItemData, PendingImport
from bot.storage import deck_store as q
from bot.storage.dialect import changed as rows_changed
from bot.storage.dialect import pg
from bot.storage.pg_store import PgStore
from bot.storage.rows import ts


class _Rollback(Exception):
    """Leaves a transaction without writing anything (an import whose pending row or deck is gone)."""


class PgDeckStore:
    """`DeckStore` on a `PgStore`'s pool. Each method is one statement or one transaction."""

    def __init__(self, store: PgStore) -> None:
        self.store = store

    async def create_deck(self, group_id: int, name: str, description: str, now: datetime) -> Deck | None:
        try:
            row = await self.store._fetchrow(q.CREATE_DECK, group_id, name, description, ts(now), group_id, name)
        except asyncpg.UniqueViolationError:  # created meanwhile by another process
            return None
        return q.deck(row) if row else None

    async def decks(self, group_id: int) -> list[Deck]:
        async with self.store._conn() as conn:
            decks = await conn.fetch(pg(q.LIVE_DECKS), group_id)
            counts = await conn.fetch(pg(q.DECK_COUNTS), group_id)
        return q.with_counts(decks, counts)

    async def find_deck(self, group_id: int, name: str) -> Deck | None:
        row = await self.store._fetchrow(q.FIND_DECK, group_id, name)
        return q.deck(row) if row else None

    async def delete_deck(self, group_id: int, deck_id: int, now: datetime) -> DeckDeleted | None:
        async with self.store._tx() as conn:
            row = await conn.fetchrow(
                pg(f"SELECT {q.DECK_COLS} FROM decks WHERE id = ? AND group_id = ? AND retired_at IS NULL FOR UPDATE"),
                deck_id,
                group_id,
            )
            if row is None:
                return None
            referenced = {r[0] for r in await conn.fetch(pg(q.REFERENCED_BY_POSTS), group_id)}
            referenced |= {r[0] for r in await conn.fetch(pg(q.REFERENCED_BY_CARDS), group_id)}
            ids = [int(r[0]) for r in await conn.fetch(pg(q.DECK_ITEM_IDS), deck_id, group_id)]
            free, kept = q.split_referenced(ids, referenced)
            await conn.executemany(pg(q.DELETE_ITEM), [(i, group_id) for i in free])
            await conn.executemany(pg(q.RETIRE_ITEM_IF_LIVE), [(ts(now), i, group_id) for i in kept])
            reset = rows_changed(await conn.execute(pg(q.RESET_CHANNEL_DECKS), row[2], group_id))
            if kept:
                await conn.execute(pg(q.RETIRE_DECK), ts(now), deck_id, group_id)
                await conn.execute(pg(q.DELETE_DECK_IMPORTS), deck_id, group_id)
            else:
                await conn.execute(pg(q.DELETE_DECK), deck_id, group_id)
        if reset:
            await self.store.cached_member_changed(None)  # the member lookup reads the channel's deck
        return DeckDeleted(len(free), len(kept), reset)

    async def deck_items(self, group_id: int, deck_id: int, *, retired: bool = False) -> list[DeckItem]:
        query = q.DECK_ITEMS_WITH_RETIRED if retired else q.DECK_ITEMS
        return [q.item(r) for r in await self.store._fetch(query, group_id, deck_id)]

    async def group_items(self, group_id: int, kind: str) -> list[DeckItem]:
        return [q.item(r) for r in await self.store._fetch(q.GROUP_ITEMS, group_id, kind)]

    async def items_by_id(self, group_id: int | None, ids: Sequence[int]) -> list[DeckItem]:
        wanted = sorted(set(ids))
        if not wanted:
            return []
        if group_id is None:
            rows = await self.store._fetch(
                f"SELECT {q.ITEM_COLS} FROM deck_items WHERE id = ANY(?::bigint[]) ORDER BY id", wanted
            )
        else:
            rows = await self.store._fetch(
                f"SELECT {q.ITEM_COLS} FROM deck_items WHERE group_id = ? AND id = ANY(?::bigint[]) ORDER BY id",
                group_id,
                wanted,
            )
        return [q.item(r) for r in rows]

    async def add_item(
        self, group_id: int, deck_id: int, data: ItemData, now: datetime, credit: str | None = None
    ) -> DeckItem | None:
        row = await self.store._fetchrow(q.INSERT_ITEM, *q.insert_params(group_id, deck_id, data, now, credit))
        return q.item(row) if row else None

    async def update_item(self, group_id: int, item_id: int, data: ItemData, now: datetime) -> bool:
        return await self.store._execute(q.UPDATE_ITEM, *q.update_params(group_id, item_id, data, now)) == 1

    async def retire_item(self, group_id: int, item_id: int, now: datetime) -> bool:
        return await self.store._execute(q.RETIRE_ITEM_IF_LIVE, ts(now), item_id, group_id) == 1

    async def apply_import(
        self,
        group_id: int,
        deck_id: int,
        new: Sequence[ItemData],
        changed: Sequence[tuple[int, ItemData]],
        now: datetime,
        import_id: int | None = None,
    ) -> bool:
        try:
            async with self.store._tx() as conn:
                if import_id is not None:
                    taken = rows_changed(await conn.execute(pg(q.TAKE_PENDING_IMPORT), import_id, group_id, deck_id))
                    if taken != 1:
                        raise _Rollback
                if await conn.fetchrow(pg(q.LIVE_DECK_BY_ID), deck_id, group_id) is None:
                    raise _Rollback
                for data in new:
                    if (
                        await conn.fetchrow(pg(q.INSERT_ITEM), *q.insert_params(group_id, deck_id, data, now, None))
                        is None
                    ):
                        raise asyncpg.UniqueViolationError(f"item {data.slug!r} is already in the deck")
                for item_id, data in changed:
                    status = await conn.execute(pg(q.UPDATE_ITEM), *q.update_params(group_id, item_id, data, now))
                    if rows_changed(status) != 1:
                        raise asyncpg.DataError(f"item {data.slug!r} changed kind or left the group")
        except _Rollback:
            return False
        return True

    async def save_import(
        self, group_id: int, deck_id: int, user_id: str, payload: str, now: datetime, expires_at: datetime
    ) -> int:
        async with self.store._tx() as conn:
            await conn.execute(pg(q.SWEEP_IMPORTS), ts(now))
            return int(
                await conn.fetchval(pg(q.SAVE_IMPORT), group_id, deck_id, user_id, payload, ts(now), ts(expires_at))
            )

    async def pending_import(self, group_id: int, user_id: str, import_id: int, now: datetime) -> PendingImport | None:
        row = await self.store._fetchrow(q.PENDING_IMPORT, import_id, group_id, user_id, ts(now))
        return q.pending(row) if row else None

    async def drop_import(self, group_id: int, user_id: str, import_id: int) -> bool:
        return await self.store._execute(q.DROP_IMPORT, import_id, group_id, user_id) == 1

    async def channel_deck(self, channel_id: int) -> str:
        row = await self.store._fetchrow(q.CHANNEL_DECK, channel_id)
        return str(row[0]) if row else TPM

    async def set_channel_deck(self, channel_id: int, deck: str) -> None:
        if deck == TPM:
            await self.store._execute(q.UNSET_CHANNEL_DECK, channel_id)
        else:
            await self.store._execute(q.SET_CHANNEL_DECK, channel_id, deck)
        await self.store.cached_member_changed(None)  # the member lookup reads the channel's deck

    async def add_deck_notice(self, group_id: int, channel_id: int, text: str, now: datetime) -> None:
        await self.store._execute(q.ADD_NOTICE, channel_id, group_id, text, ts(now))

    async def take_deck_notices(self, group_id: int) -> list[DeckNotice]:
        rows = await self.store._fetch(q.TAKE_NOTICES, group_id)
        return [DeckNotice(int(r[0]), r[2] or "", r[3] or "", r[1]) for r in sorted(rows, key=lambda r: int(r[0]))]
