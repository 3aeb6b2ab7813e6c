"""Decks: each group's own questions, tips and open cards, beside the shipped pack (the deck ``tpm``).

An item in a group's deck has a database id that never changes; posts, answers and review cards name it
``d:<id>`` (`item_ref`), which no shipped item id can look like (those never contain ``:``). The
shipped pack stays in `content/` and is served as the built-in, read-only deck ``tpm``, shared by all
groups. Items with history are retired, never deleted, so stats, reviews and exports keep resolving them.

This module holds the data types and the `DeckStore` port; no I/O.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Protocol

from pydantic import Field

from bot.core.content import ItemId, Source, Topic, _Model, _text

#: The built-in deck: the shipped pack.
TPM = "tpm"
#: Every deck of the group and ``tpm`` (schedules and quiz only).
ALL = "all"
RESERVED = frozenset({TPM, ALL})
#: A deck's name: what admins type after ``/study deck …``.
DECK_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")
MAX_DESCRIPTION = 200
KINDS = ("question", "tip", "card")
_REF = re.compile(r"^d:([0-9]{1,18})$")


def item_ref(item_id: int) -> str:
    """How posts, answers and review cards name a deck item."""
    return f"d:{item_id}"


def parse_ref(ref: str) -> int | None:
    """The deck item id in ``ref``, or None when ``ref`` names a shipped item."""
    m = _REF.match(ref)
    return int(m.group(1)) if m else None


def check_deck_name(name: str) -> str | None:
    """Why ``name`` cannot name a new deck, or None when it can."""
    if name in RESERVED:
        return f'"{name}" is reserved (tpm is the built-in deck, all means every deck)'
    if not DECK_NAME.match(name):
        return "a deck name is 1-32 lower-case letters, digits and dashes, starting with a letter or digit"
    return None


class Card(_Model):
    """An open card (interview practice): a prompt to answer in your own words and what a good answer
    covers. ``tags`` are free labels for filtering."""

    id: ItemId
    front: _text(10, 400)  # type: ignore[valid-type]
    back: _text(5, 2000)  # type: ignore[valid-type]
    topic: Topic | None = None
    source: Source = "general"
    tags: Annotated[list[Topic], Field(default_factory=list, max_length=10)]


@dataclass(frozen=True, slots=True)
class ItemData:
    """The content of one deck item, as stored and as files carry it. Which fields are set depends on
    ``kind``: a question has topic, difficulty, prompt, four choices, answer and explanation; a tip has
    step, text and action; a card has front, back, topic and tags. ``slug`` is the item's id in files."""

    kind: str
    slug: str
    source: str = "general"
    topic: str | None = None
    difficulty: int | None = None
    prompt: str | None = None
    choices: tuple[str, ...] = ()
    answer: str | None = None
    explanation: str | None = None
    step: int | None = None
    text: str | None = None
    action: str | None = None
    front: str | None = None
    back: str | None = None
    tags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Deck:
    """A group's deck. ``counts`` maps kind → live items (filled by `DeckStore.decks`)."""

    id: int
    group_id: int
    name: str
    description: str
    created_at: datetime
    counts: dict[str, int] = field(default_factory=dict)
    retired: int = 0


@dataclass(frozen=True, slots=True)
class DeckItem:
    """One stored item: its id (never changes), its deck and group, and its content."""

    id: int
    deck_id: int
    group_id: int
    data: ItemData
    created_at: datetime
    updated_at: datetime
    retired_at: datetime | None = None
    credit: str | None = None

    @property
    def ref(self) -> str:
        return item_ref(self.id)


@dataclass(frozen=True, slots=True)
class DeckDeleted:
    """What deleting a deck did: items deleted outright, items kept retired (they have history), and
    channels whose schedule used the deck (now back on ``tpm``)."""

    deleted: int
    retired: int
    channels_reset: int


@dataclass(frozen=True, slots=True)
class PendingImport:
    """An import between its dry run and its confirmation."""

    id: int
    group_id: int
    deck_id: int
    user_id: str
    payload: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class DeckNotice:
    channel_id: int
    channel: str
    channel_name: str
    text: str


class DeckStore(Protocol):
    """Decks, their items, pending imports, each channel's deck and deck notices. Every method takes the
    group it acts for and touches only that group's rows. Each is one atomic unit of work. Raises
    `StoreError` on storage failures."""

    async def create_deck(self, group_id: int, name: str, description: str, now: datetime) -> Deck | None:
        """A new deck; None when the group already has a live deck of that name."""
        ...

    async def decks(self, group_id: int) -> list[Deck]:
        """The group's live decks by name, with counts of live items per kind and of retired items."""
        ...

    async def find_deck(self, group_id: int, name: str) -> Deck | None:
        """The group's live deck of that name."""
        ...

    async def delete_deck(self, group_id: int, deck_id: int, now: datetime) -> DeckDeleted | None:
        """Delete a deck: items nobody saw go, items with posts, answers or review cards are retired
        with the deck (its name is free again); channels using it go back to ``tpm``. None: no such
        live deck in the group."""
        ...

    async def deck_items(self, group_id: int, deck_id: int, *, retired: bool = False) -> list[DeckItem]:
        """The deck's live items (``retired``: the retired ones too), in id order."""
        ...

    async def group_items(self, group_id: int, kind: str) -> list[DeckItem]:
        """Live items of ``kind`` in all the group's live decks, in id order."""
        ...

    async def items_by_id(self, group_id: int | None, ids: Sequence[int]) -> list[DeckItem]:
        """The items with these ids in the group (None: any group, for operator exports), retired
        ones included; unknown ids and other groups' items are left out."""
        ...

    async def add_item(
        self, group_id: int, deck_id: int, data: ItemData, now: datetime, credit: str | None = None
    ) -> DeckItem | None:
        """Add one item; None when the deck is not the group's or already has an item with that slug."""
        ...

    async def update_item(self, group_id: int, item_id: int, data: ItemData, now: datetime) -> bool:
        """Replace an item's content (its id, deck, kind and slug stay); False: not the group's item."""
        ...

    async def retire_item(self, group_id: int, item_id: int, now: datetime) -> bool:
        """Stop dealing and posting an item, keeping it for its history; False: not the group's live item."""
        ...

    async def apply_import(
        self,
        group_id: int,
        deck_id: int,
        new: Sequence[ItemData],
        changed: Sequence[tuple[int, ItemData]],
        now: datetime,
        import_id: int | None = None,
    ) -> bool:
        """Write an import in one transaction: add ``new``, replace ``changed`` (item id, content; a
        retired item comes back) and, with ``import_id``, delete that pending import. All or nothing:
        False (nothing written) when the pending import is gone (confirmed already) or the deck is not
        the group's; any failure rolls everything back and raises."""
        ...

    async def save_import(
        self, group_id: int, deck_id: int, user_id: str, payload: str, now: datetime, expires_at: datetime
    ) -> int:
        """Keep a dry-run's items until confirmed; returns the pending import's id. Expired ones are swept."""
        ...

    async def pending_import(self, group_id: int, user_id: str, import_id: int, now: datetime) -> PendingImport | None:
        """The pending import if it is this group's and this user's and has not expired."""
        ...

    async def drop_import(self, group_id: int, user_id: str, import_id: int) -> bool:
        """Forget a pending import (Cancel); False when it was not there."""
        ...

    async def channel_deck(self, channel_id: int) -> str:
        """The deck a channel's posts come from ("tpm" when never set)."""
        ...

    async def set_channel_deck(self, channel_id: int, deck: str) -> None: ...

    async def add_deck_notice(self, group_id: int, channel_id: int, text: str, now: datetime) -> None:
        """Queue a notice for the group's next admin (one per channel: a newer one replaces it)."""
        ...

    async def take_deck_notices(self, group_id: int) -> list[DeckNotice]:
        """The group's pending deck notices, each returned once."""
        ...


def item_row(data: ItemData) -> tuple[Any, ...]:
    """``data`` as the stored columns (`ITEM_DATA_COLS` order)."""
    return (
        data.kind,
        data.slug,
        data.topic,
        data.difficulty,
        data.prompt,
        json.dumps(list(data.choices), ensure_ascii=False) if data.choices else None,
        data.answer,
        data.explanation,
        data.step,
        data.text,
        data.action,
        data.front,
        data.back,
        json.dumps(list(data.tags), ensure_ascii=False) if data.tags else None,
        data.source,
    )


#: The columns `item_row` fills, in order.
ITEM_DATA_COLS = (
    "kind",
    "slug",
    "topic",
    "difficulty",
    "prompt",
    "choices",
    "answer",
    "explanation",
    "step",
    "text",
    "action",
    "front",
    "back",
    "tags",
    "source",
)


def item_data(values: Sequence[Any]) -> ItemData:
    """The inverse of `item_row`."""
    (kind, slug, topic, difficulty, prompt, choices, answer, explanation, step, text, action, front, back, tags,
     source) = values  # fmt: skip
    return ItemData(
        kind=kind,
        slug=slug,
        source=source,
        topic=topic,
        difficulty=difficulty,
        prompt=prompt,
        choices=tuple(json.loads(choices)) if choices else (),
        answer=answer,
        explanation=explanation,
        step=step,
        text=text,
        action=action,
        front=front,
        back=back,
        tags=tuple(json.loads(tags)) if tags else (),
    )
