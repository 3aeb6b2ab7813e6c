"""`/study deck …` (admin), the deck a channel posts from, and the `Catalog` that serves deck items.

The `Catalog` is how the rest of the core reaches items: the shipped pack (the deck ``tpm``) from the
`ContentLibrary`, a group's own items from the `DeckStore`, always asked for one group. Deck text is
member-written: it is marked with `markup.name` on the way out, so no front end lets it ping anyone.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from datetime import timedelta
from typing import Any, Protocol

from bot.core import actions
from bot.core.commands import Command
from bot.core.content import ContentLibrary, ContentPack, Question, Tip
from bot.core.deck_files import (
    MAX_BYTES,
    Problem,
    decode_items,
    encode_items,
    export_csv,
    export_yaml,
    parse_file,
    plan_import,
    question_data,
    report,
    tip_data,
)
from bot.core.decks import ALL, TPM, Deck, DeckItem, DeckStore, ItemData, check_deck_name, parse_ref
from bot.core.markup import name
from bot.core.messages import Attachment, Button, Reply
from bot.core.service import Context, StudyService, private

log = logging.getLogger(__name__)

#: How long a dry run waits for its Confirm button.
IMPORT_TTL = timedelta(hours=1)
ATTACH_HOW = (
    "Attach the file: on Discord with the command's file option, on Slack in the form that opens, "
    "in the console by giving its path: /study deck import <name> <path>"
)


def _credited(text: str, it: DeckItem) -> str:
    """Member text marked, plus "suggested by <name>" when the item came from a credited suggestion."""
    return name(text) + (f"\n— suggested by {name(it.credit)}" if it.credit else "")


def deck_question(it: DeckItem) -> Question:
    """A deck question as the core shows it: its id is the item's ref, its text marked as member text, its
    suggester credited under the prompt."""
    d = it.data
    answer: Any = d.answer or "A"
    return Question.model_construct(
        id=it.ref,
        topic=d.topic or "general",
        difficulty=d.difficulty or 1,
        prompt=_credited(d.prompt or "", it),
        choices=[name(c) for c in d.choices],
        answer=answer,
        explanation=name(d.explanation or ""),
        source=d.source,
    )


def deck_tip(it: DeckItem) -> Tip:
    d = it.data
    return Tip.model_construct(
        id=it.ref, step=d.step or 1, text=_credited(d.text or "", it), action=name(d.action or ""), source=d.source
    )


class Catalog:
    """Items by ref and pools by deck, for one group at a time. Raises `StoreError` on storage failures."""

    def __init__(self, decks: DeckStore, library: ContentLibrary) -> None:
        self.decks = decks
        self.library = library

    async def question(self, group_id: int | None, ref: str, *, live: bool = False) -> Question | None:
        """The question ``ref`` names, if the group may see it: retired deck items too (their history),
        unless ``live``."""
        item_id = parse_ref(ref)
        if item_id is None:
            return self.library.pack.question(ref)
        found = await self.decks.items_by_id(group_id, [item_id])
        if not found or found[0].data.kind != "question" or (live and found[0].retired_at is not None):
            return None
        return deck_question(found[0])

    async def tip(self, group_id: int, ref: str) -> Tip | None:
        item_id = parse_ref(ref)
        if item_id is None:
            return self.library.pack.tip(ref)
        found = await self.decks.items_by_id(group_id, [item_id])
        return deck_tip(found[0]) if found and found[0].data.kind == "tip" else None

    async def pool(self, group_id: int, deck: str) -> ContentPack | None:
        """What ``deck`` (a name, ``tpm`` or ``all``) offers the group now; None when it has no such deck."""
        pack = self.library.pack
        if deck == TPM:
            return pack
        if deck == ALL:
            questions = await self.decks.group_items(group_id, "question")
            tips = await self.decks.group_items(group_id, "tip")
            return ContentPack(
                (*pack.questions, *map(deck_question, questions)), (*pack.tips, *map(deck_tip, tips)),
                pack.interview, pack.steps, source=ALL,
            )  # fmt: skip
        found = await self.decks.find_deck(group_id, deck)
        if found is None:
            return None
        items = await self.decks.deck_items(group_id, found.id)
        return ContentPack(
            tuple(deck_question(i) for i in items if i.data.kind == "question"),
            tuple(deck_tip(i) for i in items if i.data.kind == "tip"),
            (),
            pack.steps,
            source=deck,
        )

    async def pack_with(self, group_id: int | None, refs: Iterable[str]) -> ContentPack:
        """The shipped pack plus the deck questions among ``refs`` (for mastery and exports): the pack itself
        when ``refs`` names none (no database trip)."""
        pack = self.library.pack
        ids = [i for i in (parse_ref(r) for r in refs) if i is not None]
        if not ids:
            return pack
        items = [i for i in await self.decks.items_by_id(group_id, ids) if i.data.kind == "question"]
        return ContentPack(
            (*pack.questions, *map(deck_question, items)), pack.tips, pack.interview, pack.steps, source=pack.source
        )

    async def channel_pool(
        self, group_id: int, channel_id: int, deck: str | None = None
    ) -> tuple[str, ContentPack | None]:
        """The channel's deck (``deck`` when the caller read it already) and what it offers (None: the deck
        is gone)."""
        if deck is None:
            deck = await self.decks.channel_deck(channel_id)
        return deck, await self.pool(group_id, deck)


def _counts(d: Deck) -> str:
    parts = [f"{d.counts.get(k, 0)} {k}{'s' if d.counts.get(k, 0) != 1 else ''}" for k in ("question", "tip", "card")]
    text = ", ".join(parts)
    if d.retired:
        text += f" ({d.retired} retired)"
    return text


def _item_line(it: DeckItem) -> str:
    d = it.data
    shown = d.prompt or d.text or d.front or ""
    shown = shown if len(shown) <= 70 else shown[:69] + "…"
    return f"• `{d.slug}` · {d.kind} · {name(shown)}"


def _by_id(
    fn: Callable[[Context, int], Awaitable[list[Reply]]],
) -> Callable[[Context, tuple[str, ...]], Awaitable[list[Reply]]]:
    """A routed button handler (``sb:<name>:<row id>``) for ``fn(ctx, row_id)``: anything but one row id, in
    ASCII digits that fit the database's integers, is an invalid button. ``fn`` checks the row's group."""

    async def handler(ctx: Context, args: tuple[str, ...]) -> list[Reply]:
        if len(args) != 1 or not actions.POST_ID.fullmatch(args[0]):
            return private("That button is no longer valid.")
        return await fn(ctx, int(args[0]))

    return handler


class AnkiReader(Protocol):
    """Reads Anki exports for `/study deck import` (`bot.anki`, which opens SQLite and so lives outside the
    core)."""

    MAX_FILE_BYTES: int

    def is_anki(self, filename: str, data: bytes) -> bool:
        """Whether an upload is an Anki package or text export rather than a YAML/CSV/JSON deck file."""
        ...

    def deck_items(self, filename: str, data: bytes) -> tuple[list[ItemData], str]:
        """The upload's notes as open cards and a one-line report; raises ValueError (one line) for a
        file it cannot read."""
        ...


class DeckCommands:
    """The `/study deck …` handlers and the import/delete buttons. Bad input gets a one-line private reply.
    With ``anki``, `/study deck import` also takes Anki's ``.apkg`` and text exports (as open cards)."""

    def __init__(self, decks: DeckStore, catalog: Catalog, anki: AnkiReader | None = None) -> None:
        self.decks = decks
        self.catalog = catalog
        self.anki = anki

    def install(self, service: StudyService) -> None:
        for cmd, handler in (
            ("deck.list", self.list_decks),
            ("deck.show", self.show),
            ("deck.create", self.create),
            ("deck.delete", self.delete),
            ("deck.import", self.import_file),
            ("deck.export", self.export),
            ("deck.retire", self.retire),
        ):
            service.register(cmd, handler)
        service.register_action("dimp", _by_id(self.confirm_import))
        service.register_action("dimp-no", _by_id(self.cancel_import))
        service.register_action("ddel", _by_id(self.confirm_delete))

    async def _deck(self, ctx: Context, deck_name: str) -> Deck | None:
        return await self.decks.find_deck(ctx.member.group_id, deck_name)

    @staticmethod
    def _no_deck(deck_name: str) -> list[Reply]:
        return private(f'There is no deck "{name(deck_name)}" here. See them with /study deck list.')

    async def list_decks(self, ctx: Context, _: Command) -> list[Reply]:
        pack = self.catalog.library.pack
        lines = [
            "**Decks**",
            f"• `tpm` — the built-in pack (read-only, shared): {len(pack.questions)} questions, {len(pack.tips)} tips",
        ]
        for d in await self.decks.decks(ctx.member.group_id):
            about = f" — {name(d.description)}" if d.description else ""
            lines.append(f"• `{d.name}`{about}: {_counts(d)}")
        if len(lines) == 2:
            lines.append("No decks of your own yet: /study deck create <name> [description]")
        return private("\n".join(lines))

    async def show(self, ctx: Context, command: Command) -> list[Reply]:
        deck_name = command.args["name"]
        if deck_name == TPM:
            pack = self.catalog.library.pack
            return private(f"**Deck tpm** — the built-in pack (read-only, shared by every group): {pack.summary()}.")
        d = await self._deck(ctx, deck_name)
        if d is None:
            return self._no_deck(deck_name)
        d = next((x for x in await self.decks.decks(ctx.member.group_id) if x.id == d.id), d)
        items = await self.decks.deck_items(ctx.member.group_id, d.id)
        lines = [f"**Deck {d.name}**" + (f" — {name(d.description)}" if d.description else ""), _counts(d)]
        lines += [_item_line(i) for i in items[:20]]
        if len(items) > 20:
            lines.append(f"… and {len(items) - 20} more (/study deck export {d.name} has them all)")
        if not items:
            lines.append(f"Empty. Fill it with /study deck import {d.name} (a YAML, CSV or JSON file).")
        return private("\n".join(lines))

    async def create(self, ctx: Context, command: Command) -> list[Reply]:
        deck_name = command.args["name"]
        why = check_deck_name(deck_name)
        if why is not None:
            return private(f'Cannot create "{name(deck_name)}": {why}.')
        made = await self.decks.create_deck(
            ctx.member.group_id, deck_name, command.args.get("description", ""), ctx.now
        )
        if made is None:
            return private(f'There is already a deck "{deck_name}" here (see /study deck show {deck_name}).')
        return private(
            f"✅ Deck **{deck_name}** created. Fill it with /study deck import {deck_name} (a YAML, CSV or JSON "
            f"file), then post from it with /study schedule set <HH:MM> deck {deck_name}."
        )

    async def delete(self, ctx: Context, command: Command) -> list[Reply]:
        deck_name = command.args["name"]
        if deck_name == TPM:
            return private("The deck tpm is built in and read-only; it cannot be deleted.")
        d = await self._deck(ctx, deck_name)
        if d is None:
            return self._no_deck(deck_name)
        d = next((x for x in await self.decks.decks(ctx.member.group_id) if x.id == d.id), d)
        return private(
            f"Delete the deck **{d.name}** ({_counts(d)})? Items members have already seen or answered are kept "
            "out of sight (their answers, reviews and exports stay right); the others are deleted. Channels "
            "posting from it go back to tpm.",
            Button(actions.routed_action("ddel", str(d.id)), "Delete the deck", "danger"),
            Button(actions.simple_action("forget-cancel"), "Cancel", "secondary"),
        )

    async def retire(self, ctx: Context, command: Command) -> list[Reply]:
        deck_name, slug = command.args["name"], command.args["item"]
        if deck_name == TPM:
            return private("The deck tpm is built in and read-only; its items cannot be retired.")
        d = await self._deck(ctx, deck_name)
        if d is None:
            return self._no_deck(deck_name)
        found = next((i for i in await self.decks.deck_items(ctx.member.group_id, d.id) if i.data.slug == slug), None)
        if found is None or not await self.decks.retire_item(ctx.member.group_id, found.id, ctx.now):
            return private(f'Deck {d.name} has no live item "{name(slug)}" (see /study deck show {d.name}).')
        return private(
            f"Retired `{slug}` from deck {d.name}: it is no longer posted or dealt; answers, reviews and exports "
            "keep it. Importing it again brings it back."
        )

    async def confirm_delete(self, ctx: Context, deck_id: int) -> list[Reply]:
        if not ctx.inbound.can_admin:
            return private("Only admins can delete decks.")
        done = await self.decks.delete_deck(ctx.member.group_id, deck_id, ctx.now)
        if done is None:
            return private("That deck is not here any more (deleted already?). Nothing changed.")
        lines = [f"🗑️ Deck deleted: {done.deleted} item{'s' if done.deleted != 1 else ''} deleted"]
        if done.retired:
            lines[0] += (
                f", {done.retired} kept retired because members saw or answered them (their stats, reviews "
                "and exports stay right; they are no longer posted)"
            )
        lines[0] += "."
        if done.channels_reset:
            lines.append(f"{done.channels_reset} channel schedule(s) that posted from it now post from tpm.")
        return private("\n".join(lines))

    # -------------------------------------------------------------- import and export

    async def import_file(self, ctx: Context, command: Command) -> list[Reply]:
        deck_name = command.args["name"]
        if deck_name == TPM:
            return private(
                "The deck tpm is built in and read-only; import into a deck of your own (/study deck create)."
            )
        d = await self._deck(ctx, deck_name)
        if d is None:
            return private(
                f'There is no deck "{name(deck_name)}" here yet: create it with /study deck create {deck_name}.'
            )
        files = ctx.inbound.files
        if not files:
            text = f"Which file? {ATTACH_HOW}. YAML, CSV or JSON, at most 1 MB and 2,000 items"
            text += "; or an Anki package or text export, at most 10 MB." if self.anki is not None else "."
            return [Reply(text, private=True, file_request=f"deck import {d.name}")]
        f = files[0]
        size = f.size if f.size is not None else len(f.data)
        if self.anki is not None and self.anki.is_anki(f.filename, f.data):
            return await self._import_anki(ctx, d, f.filename, f.data, size)
        if size > MAX_BYTES:
            return private(
                f"That file is {size:,} bytes; the limit is 1 MB ({MAX_BYTES:,} bytes). Nothing was imported."
            )
        if not f.data:
            return private(f"The file {name(f.filename)} is empty or could not be read. Nothing was imported.")
        parsed = parse_file(f.filename, f.data)
        return await self._dry_run(ctx, d, f.filename, parsed.items, parsed.problems)

    async def _import_anki(self, ctx: Context, d: Deck, filename: str, data: bytes, size: int) -> list[Reply]:
        """An Anki package or text export: its notes become open cards, then the same dry run and Confirm."""
        assert self.anki is not None
        limit = self.anki.MAX_FILE_BYTES
        if size > limit:
            return private(
                f"That file is {size:,} bytes; the limit for Anki files is {limit // (1024 * 1024)} MB "
                "(export without media). Nothing was imported."
            )
        try:
            items, read = self.anki.deck_items(filename, data)
        except ValueError as e:
            return private(f"{e} Nothing was imported.")
        return await self._dry_run(ctx, d, filename, items, [], f"Anki: {read}")

    async def _dry_run(
        self, ctx: Context, d: Deck, filename: str, items: list[ItemData], problems: list[Problem], note: str = ""
    ) -> list[Reply]:
        """Compare ``items`` with the deck and offer Confirm/Cancel (nothing is written before Confirm)."""
        existing = await self.decks.deck_items(ctx.member.group_id, d.id, retired=True)
        plan = plan_import(items, existing)
        head = f"**Dry run: {name(filename)} → deck {d.name}**\n" + (f"{note}\n" if note else "")
        head += report(plan, problems)
        if problems or plan.problems:
            return private(head + "\nNothing was written. Fix the file and import it again.")
        if not plan.new and not plan.changed:
            return private(head + "\nNothing to import: the deck already holds all of it.")
        pending = await self.decks.save_import(
            ctx.member.group_id,
            d.id,
            ctx.inbound.user,
            encode_items(plan.new, plan.changed),
            ctx.now,
            ctx.now + IMPORT_TTL,
        )
        return private(
            head + "\nNothing is written until you confirm (within an hour); items not in the file stay as they are.",
            Button(actions.routed_action("dimp", str(pending)), "Confirm import", "success"),
            Button(actions.routed_action("dimp-no", str(pending)), "Cancel", "secondary"),
        )

    async def confirm_import(self, ctx: Context, import_id: int) -> list[Reply]:
        if not ctx.inbound.can_admin:
            return private("Only admins can import decks.")
        pending = await self.decks.pending_import(ctx.member.group_id, ctx.inbound.user, import_id, ctx.now)
        if pending is None:
            return private(
                "That import is not waiting any more (confirmed already, cancelled, expired after an hour, or "
                "started by someone else). Nothing was written; run /study deck import again."
            )
        existing = await self.decks.deck_items(ctx.member.group_id, pending.deck_id, retired=True)
        plan = plan_import(decode_items(pending.payload), existing)  # the deck may have changed since the dry run
        if plan.problems:
            return private("The deck changed since the dry run:\n" + report(plan, []) + "\nNothing was written.")
        if not await self.decks.apply_import(
            ctx.member.group_id, pending.deck_id, plan.new, plan.changed, ctx.now, pending.id
        ):
            return private("That import was already confirmed, or its deck was deleted. Nothing more was written.")
        return private(f"✅ Imported: {len(plan.new)} new, {len(plan.changed)} changed ({plan.unchanged} unchanged).")

    async def cancel_import(self, ctx: Context, import_id: int) -> list[Reply]:
        await self.decks.drop_import(ctx.member.group_id, ctx.inbound.user, import_id)
        return private("Import cancelled; nothing was written.")

    async def export(self, ctx: Context, command: Command) -> list[Reply]:
        deck_name, fmt = command.args["name"], command.args.get("format", "yaml")
        if deck_name == TPM:
            pack = self.catalog.library.pack
            items = [*map(question_data, pack.questions), *map(tip_data, pack.tips)]
            description = "the built-in pack"
        else:
            d = await self._deck(ctx, deck_name)
            if d is None:
                return self._no_deck(deck_name)
            items = [i.data for i in await self.decks.deck_items(ctx.member.group_id, d.id)]
            description = d.description
        if fmt == "csv":
            files = [Attachment(f"{deck_name}-questions.csv", export_csv(items).encode("utf-8"), "text/csv")]
            if any(i.kind == "tip" for i in items):
                files.append(Attachment(f"{deck_name}-tips.csv", export_csv(items, "tip").encode("utf-8"), "text/csv"))
        else:
            text = export_yaml(deck_name, description, items)
            files = [Attachment(f"{deck_name}.yaml", text.encode("utf-8"), "application/x-yaml")]
        return [Reply(f"📦 Deck {deck_name}: {len(items)} items.", private=True, attachments=tuple(files), slow=True)]
