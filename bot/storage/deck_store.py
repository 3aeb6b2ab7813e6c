"""The `DeckStore` port on SQLite, and the statement texts both deck stores run.

The texts use ``?`` placeholders like `bot.storage.sql`; `bot.storage.pg_deck_store` runs them through
`bot.storage.dialect.pg`. The one dialect difference (a list of ids) is written in each store.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from bot.core.decks import (
    ITEM_DATA_COLS,
    TPM,
    Deck,
    DeckDeleted,
    DeckItem,
    DeckNotice,
    ItemData,
    PendingImport,
    item_data,
    item_row,
)
from bot.storage.rows import Row, from_ts, ts
from bot.storage.schedule_store import _tx
from bot.storage.sqlite_store import SqliteStore

# ---------------------------------------------------------------------- statement texts

DECK_COLS = "id, group_id, name, description, created_at"
ITEM_COLS = "id, deck_id, group_id, " + ", ".join(ITEM_DATA_COLS) + ", created_at, updated_at, retired_at, credit"
_DATA_SLOTS = ", ".join("?" for _ in ITEM_DATA_COLS)

CREATE_DECK = (
    "INSERT INTO decks (group_id, name, description, created_at) SELECT ?, ?, ?, ?"
    " WHERE NOT EXISTS (SELECT 1 FROM decks WHERE group_id = ? AND name = ? AND retired_at IS NULL)"
    f" RETURNING {DECK_COLS}"
)
LIVE_DECKS = f"SELECT {DECK_COLS} FROM decks WHERE group_id = ? AND retired_at IS NULL ORDER BY name"
FIND_DECK = f"SELECT {DECK_COLS} FROM decks WHERE group_id = ? AND name = ? AND retired_at IS NULL"
LIVE_DECK_BY_ID = "SELECT 1 FROM decks WHERE id = ? AND group_id = ? AND retired_at IS NULL"
DECK_COUNTS = (
    "SELECT i.deck_id, i.kind, SUM(CASE WHEN i.retired_at IS NULL THEN 1 ELSE 0 END),"
    " SUM(CASE WHEN i.retired_at IS NULL THEN 0 ELSE 1 END)"
    " FROM deck_items i JOIN decks d ON d.id = i.deck_id"
    " WHERE d.group_id = ? AND d.retired_at IS NULL GROUP BY i.deck_id, i.kind"
)
#: Deck item refs of the group that something points at: posts (answers need one), review cards.
REFERENCED_BY_POSTS = "SELECT DISTINCT item_id FROM posts WHERE group_id = ? AND item_id LIKE 'd:%'"
REFERENCED_BY_CARDS = (
    "SELECT DISTINCT c.question_id FROM cards c JOIN members m ON m.id = c.member_id"
    " WHERE m.group_id = ? AND c.question_id LIKE 'd:%'"
)
DECK_ITEM_IDS = "SELECT id FROM deck_items WHERE deck_id = ? AND group_id = ?"
DELETE_ITEM = "DELETE FROM deck_items WHERE id = ? AND group_id = ?"
RETIRE_ITEM_IF_LIVE = "UPDATE deck_items SET retired_at = ? WHERE id = ? AND group_id = ? AND retired_at IS NULL"
RETIRE_DECK = "UPDATE decks SET retired_at = ? WHERE id = ? AND group_id = ?"
DELETE_DECK = "DELETE FROM decks WHERE id = ? AND group_id = ?"
DELETE_DECK_IMPORTS = "DELETE FROM deck_imports WHERE deck_id = ? AND group_id = ?"
RESET_CHANNEL_DECKS = (
    "DELETE FROM channel_decks WHERE deck = ? AND channel_id IN (SELECT id FROM channels WHERE group_id = ?)"
)
DECK_ITEMS = f"SELECT {ITEM_COLS} FROM deck_items WHERE group_id = ? AND deck_id = ? AND retired_at IS NULL ORDER BY id"
DECK_ITEMS_WITH_RETIRED = f"SELECT {ITEM_COLS} FROM deck_items WHERE group_id = ? AND deck_id = ? ORDER BY id"
GROUP_ITEMS = (
    f"SELECT {', '.join('i.' + c for c in ITEM_COLS.split(', '))} FROM deck_items i JOIN decks d ON d.id = i.deck_id"
    " WHERE i.group_id = ? AND i.kind = ? AND i.retired_at IS NULL AND d.retired_at IS NULL ORDER BY i.id"
)
INSERT_ITEM = (
    f"INSERT INTO deck_items (deck_id, group_id, {', '.join(ITEM_DATA_COLS)}, created_at, updated_at, credit)"
    f" SELECT ?, ?, {_DATA_SLOTS}, ?, ?, ? WHERE EXISTS"
    " (SELECT 1 FROM decks WHERE id = ? AND group_id = ? AND retired_at IS NULL)"
    f" ON CONFLICT (deck_id, slug) DO NOTHING RETURNING {ITEM_COLS}"
)
#: Kind and slug are the item's identity: they never change.
UPDATE_ITEM = (
    "UPDATE deck_items SET "
    + ", ".join(f"{c} = ?" for c in ITEM_DATA_COLS if c not in ("kind", "slug"))
    + ", updated_at = ?, retired_at = NULL WHERE id = ? AND group_id = ? AND kind = ?"
)
TAKE_PENDING_IMPORT = "DELETE FROM deck_imports WHERE id = ? AND group_id = ? AND deck_id = ?"
SWEEP_IMPORTS = "DELETE FROM deck_imports WHERE expires_at <= ?"
SAVE_IMPORT = (
    "INSERT INTO deck_imports (group_id, deck_id, user_id, payload, created_at, expires_at)"
    " VALUES (?, ?, ?, ?, ?, ?) RETURNING id"
)
PENDING_IMPORT = (
    "SELECT id, group_id, deck_id, user_id, payload, expires_at FROM deck_imports"
    " WHERE id = ? AND group_id = ? AND user_id = ? AND expires_at > ?"
)
DROP_IMPORT = "DELETE FROM deck_imports WHERE id = ? AND group_id = ? AND user_id = ?"
CHANNEL_DECK = "SELECT deck FROM channel_decks WHERE channel_id = ?"
SET_CHANNEL_DECK = "INSERT INTO channel_decks (channel_id, deck) VALUES (?, ?) ON CONFLICT (channel_id) DO UPDATE SET deck = excluded.deck"
UNSET_CHANNEL_DECK = "DELETE FROM channel_decks WHERE channel_id = ?"
ADD_NOTICE = (
    "INSERT INTO deck_notices (channel_id, group_id, text, created_at) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (channel_id) DO UPDATE SET text = excluded.text, created_at = excluded.created_at"
)
TAKE_NOTICES = (
    "DELETE FROM deck_notices WHERE group_id = ? RETURNING channel_id, text,"
    " (SELECT external_id FROM channels c WHERE c.id = deck_notices.channel_id),"
    " (SELECT name FROM channels c WHERE c.id = deck_notices.channel_id)"
)

# ---------------------------------------------------------------------- rows


def deck(row: Row, counts: dict[str, int] | None = None, retired: int = 0) -> Deck:
    return Deck(int(row[0]), int(row[1]), row[2], row[3], from_ts_req(row[4]), dict(counts or {}), retired)


def from_ts_req(text: str) -> datetime:
    value = from_ts(text)
    assert value is not None
    return value


def item(row: Row) -> DeckItem:
    n = len(ITEM_DATA_COLS)
    return DeckItem(
        id=int(row[0]),
        deck_id=int(row[1]),
        group_id=int(row[2]),
        data=item_data(tuple(row[3 : 3 + n])),
        created_at=from_ts_req(row[3 + n]),
        updated_at=from_ts_req(row[4 + n]),
        retired_at=from_ts(row[5 + n]),
        credit=row[6 + n],
    )


def with_counts(deck_rows: Sequence[Row], count_rows: Sequence[Row]) -> list[Deck]:
    counts: dict[int, dict[str, int]] = {}
    retired: dict[int, int] = {}
    for deck_id, kind, live, gone in count_rows:
        counts.setdefault(int(deck_id), {})[kind] = int(live or 0)
        retired[int(deck_id)] = retired.get(int(deck_id), 0) + int(gone or 0)
    return [deck(r, counts.get(int(r[0]), {}), retired.get(int(r[0]), 0)) for r in deck_rows]


def insert_params(group_id: int, deck_id: int, data: ItemData, now: datetime, credit: str | None) -> tuple[Any, ...]:
    at = ts(now)
    return (deck_id, group_id, *item_row(data), at, at, credit, deck_id, group_id)


def update_params(group_id: int, item_id: int, data: ItemData, now: datetime) -> tuple[Any, ...]:
    body = item_row(data)[2:]  # without kind and slug
    return (*body, ts(now), item_id, group_id, data.kind)


def pending(row: Row) -> PendingImport:
    return PendingImport(int(row[0]), int(row[1]), int(row[2]), row[3], row[4], from_ts_req(row[5]))


def split_referenced(ids: Sequence[int], referenced: set[str]) -> tuple[list[int], list[int]]:
    """(ids nothing points at, ids with history)."""
    free = [i for i in ids if f"d:{i}" not in referenced]
    kept = [i for i in ids if f"d:{i}" in referenced]
    return free, kept


# ---------------------------------------------------------------------- SQLite


def _ids_query(group_id: int | None, ids: Sequence[int]) -> tuple[str, list[Any]]:
    slots = ", ".join("?" for _ in ids)
    if group_id is None:
        return f"SELECT {ITEM_COLS} FROM deck_items WHERE id IN ({slots}) ORDER BY id", list(ids)
    return f"SELECT {ITEM_COLS} FROM deck_items WHERE group_id = ? AND id IN ({slots}) ORDER BY id", [group_id, *ids]


class SqliteDeckStore:
    """`DeckStore` on the bot's `SqliteStore` connection (one hop per call)."""

    def __init__(self, store: SqliteStore) -> None:
        self.store = store

    async def create_deck(self, group_id: int, name: str, description: str, now: datetime) -> Deck | None:
        def create(conn: sqlite3.Connection) -> Deck | None:
            row = conn.execute(CREATE_DECK, (group_id, name, description, ts(now), group_id, name)).fetchone()
            return deck(row) if row else None

        return await self.store.run_sync(_tx, create)

    async def decks(self, group_id: int) -> list[Deck]:
        def read(conn: sqlite3.Connection) -> list[Deck]:
            return with_counts(
                conn.execute(LIVE_DECKS, (group_id,)).fetchall(), conn.execute(DECK_COUNTS, (group_id,)).fetchall()
            )

        return await self.store.run_sync(read)

    async def find_deck(self, group_id: int, name: str) -> Deck | None:
        def read(conn: sqlite3.Connection) -> Deck | None:
            row = conn.execute(FIND_DECK, (group_id, name)).fetchone()
            return deck(row) if row else None

        return await self.store.run_sync(read)

    async def delete_deck(self, group_id: int, deck_id: int, now: datetime) -> DeckDeleted | None:
        def delete(conn: sqlite3.Connection) -> DeckDeleted | None:
            row = conn.execute(f"SELECT {DECK_COLS} FROM decks WHERE id = ? AND group_id = ? AND retired_at IS NULL",
                               (deck_id, group_id)).fetchone()  # fmt: skip
            if row is None:
                return None
            referenced = {r[0] for r in conn.execute(REFERENCED_BY_POSTS, (group_id,))}
            referenced |= {r[0] for r in conn.execute(REFERENCED_BY_CARDS, (group_id,))}
            ids = [r[0] for r in conn.execute(DECK_ITEM_IDS, (deck_id, group_id))]
            free, kept = split_referenced(ids, referenced)
            conn.executemany(DELETE_ITEM, [(i, group_id) for i in free])
            conn.executemany(RETIRE_ITEM_IF_LIVE, [(ts(now), i, group_id) for i in kept])
            reset = conn.execute(RESET_CHANNEL_DECKS, (row[2], group_id)).rowcount
            if kept:
                conn.execute(RETIRE_DECK, (ts(now), deck_id, group_id))
                conn.execute(DELETE_DECK_IMPORTS, (deck_id, group_id))
            else:
                conn.execute(DELETE_DECK, (deck_id, group_id))
            return DeckDeleted(len(free), len(kept), reset)

        deleted: DeckDeleted | None = await self.store.run_sync(_tx, delete)
        if deleted is not None and deleted.channels_reset:
            await self.store.cached_member_changed(None)  # the member lookup reads the channel's deck
        return deleted

    async def deck_items(self, group_id: int, deck_id: int, *, retired: bool = False) -> list[DeckItem]:
        query = DECK_ITEMS_WITH_RETIRED if retired else DECK_ITEMS

        def read(conn: sqlite3.Connection) -> list[DeckItem]:
            return [item(r) for r in conn.execute(query, (group_id, deck_id))]

        return await self.store.run_sync(read)

    async def group_items(self, group_id: int, kind: str) -> list[DeckItem]:
        def read(conn: sqlite3.Connection) -> list[DeckItem]:
            return [item(r) for r in conn.execute(GROUP_ITEMS, (group_id, kind))]

        return await self.store.run_sync(read)

    async def items_by_id(self, group_id: int | None, ids: Sequence[int]) -> list[DeckItem]:
        wanted = sorted(set(ids))

        def read(conn: sqlite3.Connection) -> list[DeckItem]:
            out: list[DeckItem] = []
            for start in range(0, len(wanted), 500):  # SQLite caps the number of parameters
                query, params = _ids_query(group_id, wanted[start : start + 500])
                out += [item(r) for r in conn.execute(query, params)]
            return out

        return await self.store.run_sync(read) if wanted else []

    async def add_item(
        self, group_id: int, deck_id: int, data: ItemData, now: datetime, credit: str | None = None
    ) -> DeckItem | None:
        def add(conn: sqlite3.Connection) -> DeckItem | None:
            row = conn.execute(INSERT_ITEM, insert_params(group_id, deck_id, data, now, credit)).fetchone()
            return item(row) if row else None

        return await self.store.run_sync(_tx, add)

    async def update_item(self, group_id: int, item_id: int, data: ItemData, now: datetime) -> bool:
        def update(conn: sqlite3.Connection) -> bool:
            return conn.execute(UPDATE_ITEM, update_params(group_id, item_id, data, now)).rowcount == 1

        return await self.store.run_sync(_tx, update)

    async def retire_item(self, group_id: int, item_id: int, now: datetime) -> bool:
        def retire(conn: sqlite3.Connection) -> bool:
            return conn.execute(RETIRE_ITEM_IF_LIVE, (ts(now), item_id, group_id)).rowcount == 1

        return await self.store.run_sync(_tx, retire)

    async def apply_import(
        self,
        group_id: int,
        deck_id: int,
        new: Sequence[ItemData],
        changed: Sequence[tuple[int, ItemData]],
        now: datetime,
        import_id: int | None = None,
    ) -> bool:
        def apply(conn: sqlite3.Connection) -> bool:
            conn.execute("BEGIN IMMEDIATE")
            try:
                ok = _apply(conn)
                conn.execute("COMMIT" if ok else "ROLLBACK")
                return ok
            except BaseException:
                conn.execute("ROLLBACK")
                raise

        def _apply(conn: sqlite3.Connection) -> bool:
            if (
                import_id is not None
                and conn.execute(TAKE_PENDING_IMPORT, (import_id, group_id, deck_id)).rowcount != 1
            ):
                return False
            if conn.execute(LIVE_DECK_BY_ID, (deck_id, group_id)).fetchone() is None:
                return False
            for data in new:
                if conn.execute(INSERT_ITEM, insert_params(group_id, deck_id, data, now, None)).fetchone() is None:
                    raise sqlite3.IntegrityError(f"item {data.slug!r} is already in the deck")
            for item_id, data in changed:
                if conn.execute(UPDATE_ITEM, update_params(group_id, item_id, data, now)).rowcount != 1:
                    raise sqlite3.IntegrityError(f"item {data.slug!r} changed kind or left the group")
            return True

        return await self.store.run_sync(apply)

    async def save_import(
        self, group_id: int, deck_id: int, user_id: str, payload: str, now: datetime, expires_at: datetime
    ) -> int:
        def save(conn: sqlite3.Connection) -> int:
            conn.execute(SWEEP_IMPORTS, (ts(now),))
            row = conn.execute(SAVE_IMPORT, (group_id, deck_id, user_id, payload, ts(now), ts(expires_at))).fetchone()
            return int(row[0])

        return await self.store.run_sync(_tx, save)

    async def pending_import(self, group_id: int, user_id: str, import_id: int, now: datetime) -> PendingImport | None:
        def read(conn: sqlite3.Connection) -> PendingImport | None:
            row = conn.execute(PENDING_IMPORT, (import_id, group_id, user_id, ts(now))).fetchone()
            return pending(row) if row else None

        return await self.store.run_sync(read)

    async def drop_import(self, group_id: int, user_id: str, import_id: int) -> bool:
        def drop(conn: sqlite3.Connection) -> bool:
            return conn.execute(DROP_IMPORT, (import_id, group_id, user_id)).rowcount == 1

        return await self.store.run_sync(drop)

    async def channel_deck(self, channel_id: int) -> str:
        def read(conn: sqlite3.Connection) -> str:
            row = conn.execute(CHANNEL_DECK, (channel_id,)).fetchone()
            return str(row[0]) if row else TPM

        return await self.store.run_sync(read)

    async def set_channel_deck(self, channel_id: int, deck: str) -> None:
        def write(conn: sqlite3.Connection) -> None:
            if deck == TPM:
                conn.execute(UNSET_CHANNEL_DECK, (channel_id,))
            else:
                conn.execute(SET_CHANNEL_DECK, (channel_id, deck))

        await self.store.run_sync(write)
        await self.store.cached_member_changed(None)  # the member lookup reads the channel's deck

    async def add_deck_notice(self, group_id: int, channel_id: int, text: str, now: datetime) -> None:
        def add(conn: sqlite3.Connection) -> None:
            conn.execute(ADD_NOTICE, (channel_id, group_id, text, ts(now)))

        await self.store.run_sync(add)

    async def take_deck_notices(self, group_id: int) -> list[DeckNotice]:
        def take(conn: sqlite3.Connection) -> list[DeckNotice]:
            rows = conn.execute(TAKE_NOTICES, (group_id,)).fetchall()
            return [DeckNotice(int(r[0]), r[2] or "", r[3] or "", r[1]) for r in sorted(rows)]

        return await self.store.run_sync(_tx, take)
