"""`/study deck add <name> [question|tip|card]`: one question, tip or open card typed into a form
(`bot.core.item_form`) and added to one of the group's decks, with the same validation as a deck file's
and field-level errors; `/study deck edit <name> <item id>`: the same form, filled in with one item,
replacing its content (its id, slug, answers, practice attempts and reviews stay).

The form names the deck or item by id (``sb:form:deck-add:q-<deck id>`` (``t-``: tip, ``c-``: card),
``sb:form:deck-edit:<item id>``);
every submission looks it up among the clicking admin's group's live decks and items again, so a crafted
id from another group changes nothing.
"""

from __future__ import annotations

import re
from typing import Any

from bot.core.commands import Command
from bot.core.content import LETTERS
from bot.core.decks import TPM, Deck, DeckItem, DeckStore, ItemData
from bot.core.forms import Form, FormRoute, quoted
from bot.core.item_form import DECK_KINDS, DIFFICULTIES, ItemDraft, ItemKind, item_form, preview, read_item
from bot.core.messages import Reply
from bot.core.service import Context, StudyService, private

_ARG = re.compile(r"(q|t|c)-([0-9]{1,18})")
_BY_LETTER: dict[str, ItemKind] = {k[0]: k for k in DECK_KINDS}
_ITEM_ARG = re.compile(r"[0-9]{1,18}")
_DIFFICULTY_WORDS = {n: w for w, n in DIFFICULTIES.items()}
#: Tries at a free slug when two admins add to one deck at once.
SLUG_TRIES = 5


class DeckAdd:
    """The `deck.add` command and its form, on ``decks``."""

    def __init__(self, decks: DeckStore) -> None:
        self.decks = decks

    def install(self, service: StudyService) -> None:
        service.register("deck.add", self.add)
        service.register_form("deck-add", FormRoute(self._build, self._submit))
        service.register("deck.edit", self.edit)
        service.register_form("deck-edit", FormRoute(self._build_edit, self._submit_edit))

    async def add(self, ctx: Context, command: Command) -> list[Reply]:
        name = command.args.get("name", "")
        kind = command.args.get("kind", "question")
        if name == TPM:
            return private(
                "tpm is the built-in deck and cannot be changed; add to a deck of your own (/study deck create)."
            )
        deck = await self.decks.find_deck(ctx.member.group_id, name)
        if deck is None:
            return private(f'There is no deck "{quoted(name)}" in this group — see /study deck list.')
        built = await self._build(ctx, f"{kind[0]}-{deck.id}")
        if not isinstance(built, Form):
            return built
        return [Reply(f'**Add a {kind} to deck "{deck.name}"**', private=True, form=built)]

    async def _deck(self, ctx: Context, arg: str) -> tuple[ItemKind, Deck] | str:
        m = _ARG.fullmatch(arg)
        if not ctx.inbound.can_admin:
            return "Only admins can add to a deck."
        if m is None:
            return "That form is no longer valid; nothing was saved."
        deck = next((d for d in await self.decks.decks(ctx.member.group_id) if d.id == int(m.group(2))), None)
        if deck is None:
            return "That deck is not in this group (or was deleted); nothing was saved."
        return _BY_LETTER[m.group(1)], deck

    async def _build(self, ctx: Context, arg: str) -> Form | list[Reply]:
        found = await self._deck(ctx, arg)
        if isinstance(found, str):
            return private(found)
        return item_form("deck-add", found[0], f"Add a {found[0]}", arg=arg)

    async def _submit(self, ctx: Context, form: Form, values: dict[str, str]) -> list[Reply]:
        found = await self._deck(ctx, form.arg)
        if isinstance(found, str):
            return private(found)
        kind, deck = found
        draft = read_item(kind, values)
        if not isinstance(draft, ItemDraft):
            return [form.invalid(values, draft)]
        taken = len(await self.decks.deck_items(ctx.member.group_id, deck.id, retired=True))
        for n in range(taken + 1, taken + 1 + SLUG_TRIES):
            data = item_data(draft, f"{kind}-{n}")
            item = await self.decks.add_item(ctx.member.group_id, deck.id, data, ctx.now)
            if item is not None:
                return private(f'✅ Added to deck "{deck.name}" as item {item.ref} ({data.slug}).\n' + preview(draft))
        return private("Could not find a free id for the item in that deck; nothing was saved. Try again.")

    # ------------------------------------------------------------------ edit

    async def edit(self, ctx: Context, command: Command) -> list[Reply]:
        name, slug = command.args.get("name", ""), command.args.get("item", "")
        if name == TPM:
            return private("tpm is the built-in deck and cannot be changed; its items are the operator's content pack.")
        deck = await self.decks.find_deck(ctx.member.group_id, name)
        if deck is None:
            return private(f'There is no deck "{quoted(name)}" in this group — see /study deck list.')
        item = next((i for i in await self.decks.deck_items(ctx.member.group_id, deck.id) if i.data.slug == slug), None)
        if item is None:
            return private(
                f'Deck {deck.name} has no live item "{quoted(slug)}" (the ids are in /study deck show {deck.name}).'
            )
        built = await self._build_edit(ctx, str(item.id))
        if not isinstance(built, Form):
            return built
        return [Reply(f'**Edit `{slug}` in deck "{deck.name}"**', private=True, form=built)]

    async def _item(self, ctx: Context, arg: str) -> DeckItem | str:
        if not ctx.inbound.can_admin:
            return "Only admins can edit a deck."
        if not _ITEM_ARG.fullmatch(arg):
            return "That form is no longer valid; nothing was saved."
        found = await self.decks.items_by_id(ctx.member.group_id, [int(arg)])
        if not found or found[0].retired_at is not None or found[0].data.kind not in DECK_KINDS:
            return "That item is not a live item of this group's decks (retired or deleted?); nothing was saved."
        live_decks = {d.id for d in await self.decks.decks(ctx.member.group_id)}
        if found[0].deck_id not in live_decks:
            return "That item's deck was deleted; nothing was saved."
        return found[0]

    async def _build_edit(self, ctx: Context, arg: str) -> Form | list[Reply]:
        item = await self._item(ctx, arg)
        if isinstance(item, str):
            return private(item)
        kind = _BY_LETTER[item.data.kind[0]]
        return item_form("deck-edit", kind, f"Edit a {kind}", arg=arg).prefilled(_values(item.data))

    async def _submit_edit(self, ctx: Context, form: Form, values: dict[str, str]) -> list[Reply]:
        item = await self._item(ctx, form.arg)
        if isinstance(item, str):
            return private(item)
        draft = read_item(_BY_LETTER[item.data.kind[0]], values)
        if not isinstance(draft, ItemDraft):
            return [form.invalid(values, draft)]
        data = item_data(draft, item.data.slug, item.data)
        if not await self.decks.update_item(ctx.member.group_id, item.id, data, ctx.now):
            return private("That item could not be changed (retired or deleted meanwhile); nothing was saved.")
        return private(
            f"✅ Changed `{item.data.slug}` (item {item.ref}); its {_HISTORY[draft.kind]} stay.\n" + preview(draft)
        )


_HISTORY = {"question": "answers and reviews", "tip": "answers and reviews", "card": "practice attempts and reviews"}


def item_data(draft: ItemDraft, slug: str, old: ItemData | None = None) -> ItemData:
    """What a checked draft stores as item ``slug``. Fields the question and tip forms do not show (source,
    tags) are kept from the item it replaces, ``old``; a card's form has them all."""
    fields: dict[str, Any] = draft.as_dict()
    if draft.kind == "question":
        fields["choices"] = tuple(draft.choices)
    if draft.kind == "card":
        fields["tags"] = tuple(draft.tags)
    elif old is not None:
        fields |= {"source": old.source, "tags": old.tags}
    return ItemData(kind=draft.kind, slug=slug, **fields)


def _values(data: ItemData) -> dict[str, str]:
    """An item's content as the form's fields hold it (the inverse of `read_item`)."""
    if data.kind == "card":
        return {
            "front": data.front or "",
            "back": data.back or "",
            "topic": data.topic or "",
            "tags": " ".join(data.tags),
            "source": data.source,
        }
    if data.kind == "tip":
        return {"text": data.text or "", "action": data.action or "", "step": str(data.step or "")}
    topic = data.topic or "general"
    difficulty = _DIFFICULTY_WORDS.get(data.difficulty or 2, "medium")
    return {
        "prompt": data.prompt or "",
        "choices": "\n".join(data.choices),
        "answer": data.answer if data.answer in LETTERS else "",
        "explanation": data.explanation or "",
        "topic": f"{topic} {difficulty}",
    }
