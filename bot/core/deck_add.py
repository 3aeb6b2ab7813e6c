"""`/study deck add <name> [question|tip]`: one question or tip typed into a form (`bot.core.item_form`)
and added to one of the group's decks, with the same validation and field-level errors as the pack's.

The form names the deck by id (``sb:form:deck-add:q-<deck id>``); every submission looks the deck up among
the clicking admin's group's live decks again, so a crafted id from another group adds nothing.
"""

from __future__ import annotations

import re
from typing import Any

from bot.core.commands import Command
from bot.core.decks import TPM, Deck, DeckStore, ItemData
from bot.core.forms import Form, FormRoute, quoted
from bot.core.item_form import ItemDraft, ItemKind, item_form, preview, read_item
from bot.core.messages import Reply
from bot.core.service import Context, StudyService, private

_ARG = re.compile(r"(q|t)-([0-9]{1,18})")
#: Tries at a free slug when two admins add to one deck at once.
SLUG_TRIES = 5


class DeckAdd:
    """The `deck.add` command and its form, on ``decks``."""

    def __init__(self, decks: DeckStore) -> None:
        self.decks = decks

    def install(self, service: StudyService) -> None:
        service.register("deck.add", self.add)
        service.register_form("deck-add", FormRoute(self._build, self._submit))

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
        return ("question" if m.group(1) == "q" else "tip"), deck

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
        fields: dict[str, Any] = draft.as_dict()
        if kind == "question":
            fields["choices"] = tuple(draft.choices)
        taken = len(await self.decks.deck_items(ctx.member.group_id, deck.id, retired=True))
        for n in range(taken + 1, taken + 1 + SLUG_TRIES):
            data = ItemData(kind=kind, slug=f"{kind}-{n}", **fields)
            item = await self.decks.add_item(ctx.member.group_id, deck.id, data, ctx.now)
            if item is not None:
                return private(f'✅ Added to deck "{deck.name}" as item {item.ref} ({data.slug}).\n' + preview(draft))
        return private("Could not find a free id for the item in that deck; nothing was saved. Try again.")
