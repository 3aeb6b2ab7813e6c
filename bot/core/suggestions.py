"""Member suggestions: `/study suggest` (any member) and the admins' queue, `/study suggestions`.

A member fills in the question/tip form (`bot.core.item_form`); the suggestion waits in the group's queue
(at most ``cap`` open per member, 3 by default). Admins see the queue with Approve / Deny buttons (Deny
asks for an optional reason in a small form). Approving adds the item to a group deck (`to_deck`: the deck
``suggestions``, created on first use, or the deck named in ``/study suggestions approve <id> <deck>``),
credited "suggested by <name>" unless the member asked not to be, and records it; the member is told the outcome privately — a direct message,
or, when the platform cannot deliver one (Discord DMs closed), a private notice the next time they use a
command. Members may suggest without credit (``anonymous``); otherwise the item carries "suggested by
<name>". Admins turn suggestions off and on with `/study suggestions off|on`.

Every button and form names a suggestion by its id; the handler checks that it belongs to the clicking
admin's group, so an id crafted in another group is refused and changes nothing.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from bot.core import actions
from bot.core.commands import Command
from bot.core.decks import DeckStore, ItemData
from bot.core.forms import Field, Form, FormRoute, quoted
from bot.core.item_form import KINDS, ItemDraft, ItemKind, item_form, preview, read_item
from bot.core.markup import name
from bot.core.messages import Button, Post, Reply
from bot.core.ports import DeliveryError
from bot.core.reminders import DirectGateway
from bot.core.service import Context, StudyService, private

log = logging.getLogger(__name__)

#: Open suggestions shown by one `/study suggestions` (each with its buttons).
PAGE = 5
DEFAULT_CAP = 3
OFF_TEXT = "Suggestions are turned off in this group (an admin can turn them on with /study suggestions on)."


@dataclass(frozen=True, slots=True)
class Suggestion:
    """One suggestion and who made it (``platform``/``group_ext``/``user_id`` reach them directly)."""

    id: int
    group_id: int
    member_id: int
    kind: str
    body: str
    credit: bool
    status: str
    created_at: datetime
    author: str
    platform: str
    group_ext: str
    user_id: str
    reason: str | None = None
    item_ref: str | None = None

    def draft(self) -> ItemDraft:
        kind: ItemKind = "question" if self.kind == "question" else "tip"
        return ItemDraft.from_dict(kind, json.loads(self.body))


class SuggestionStore(Protocol):
    """The suggestion queue, per-group settings and members' pending notices. Raises `StoreError`."""

    async def add_suggestion(
        self, group_id: int, member_id: int, kind: str, body: str, credit: bool, now: datetime
    ) -> int | None:
        """Queue a suggestion and return its id; None (nothing written) when the member already has the
        group's cap of open ones — counted in the same transaction, so two at once cannot pass the cap."""
        ...

    async def suggestion_settings(self, group_id: int) -> tuple[bool, int]:
        """``(enabled, cap)`` of the group (``(True, 3)`` until changed)."""
        ...

    async def set_suggestions_enabled(self, group_id: int, enabled: bool) -> None: ...

    async def open_suggestion_count(self, group_id: int, member_id: int | None) -> int:
        """Open suggestions in the group, or of one member when ``member_id`` is given."""
        ...

    async def open_suggestions(self, group_id: int, limit: int) -> list[Suggestion]:
        """The group's open suggestions, oldest first."""
        ...

    async def get_suggestion(self, suggestion_id: int) -> Suggestion | None: ...

    async def decide_suggestion(
        self, suggestion_id: int, group_id: int, status: str, decided_by: int, reason: str | None, now: datetime
    ) -> bool:
        """Move an open suggestion of ``group_id`` to ``approved``/``denied`` (once: False when it is not
        open, or not in that group; then nothing changes)."""
        ...

    async def reopen_suggestion(self, suggestion_id: int) -> None:
        """Back to open (an approval whose deck write failed)."""
        ...

    async def set_suggestion_item(self, suggestion_id: int, item_ref: str) -> None: ...

    async def add_member_notice(self, member_id: int, text: str, now: datetime) -> None: ...

    async def take_member_notices(self, member_id: int) -> list[str]:
        """The member's pending notices, oldest first, deleted as they are read."""
        ...


#: Adds an approved suggestion to a deck of the group (named, or the default when ""); returns where it
#: went (shown to the admin) or raises ValueError with a one-line reason (e.g. no such deck).
ApproveTo = Callable[[Context, Suggestion, ItemDraft, str], Awaitable[str]]
#: The deck approved suggestions go to when the admin names none (created on the first approval).
SUGGESTIONS_DECK = "suggestions"


def to_deck(decks: DeckStore) -> ApproveTo:
    """`ApproveTo` on the group's decks: the named deck, or `SUGGESTIONS_DECK` (created when missing); the
    item's slug is ``sug-<id>``, its credit the author's name unless they suggested anonymously."""

    async def add(ctx: Context, s: Suggestion, draft: ItemDraft, deck: str) -> str:
        name = deck or SUGGESTIONS_DECK
        group = ctx.member.group_id
        found = await decks.find_deck(group, name)
        if found is None and name == SUGGESTIONS_DECK:
            made = await decks.create_deck(group, name, "Questions and tips members suggested", ctx.now)
            found = made or await decks.find_deck(group, name)  # another admin created it meanwhile
        if found is None:
            raise ValueError(f'this group has no deck "{name}" (create it with /study deck create {name})')
        fields: dict[str, Any] = draft.as_dict()
        if draft.kind == "question":
            fields["choices"] = tuple(draft.choices)
        data = ItemData(kind=draft.kind, slug=f"sug-{s.id}", **fields)
        item = await decks.add_item(group, found.id, data, ctx.now, credit=s.author if s.credit else None)
        if item is None:
            raise ValueError(f'deck "{name}" already has an item sug-{s.id}')
        return f'to deck "{name}" (item {item.ref})'

    return add


class Suggestions:
    """The commands, buttons and forms of member suggestions, on ``store``. ``messengers`` is the running
    front ends by platform (those that are a `DirectGateway` carry outcomes by direct message);
    ``approve_to`` adds approved items to a deck (None: approval is recorded and the item kept in the
    queue's history)."""

    def __init__(
        self,
        store: SuggestionStore,
        messengers: Mapping[str, object],
        *,
        approve_to: ApproveTo | None = None,
    ) -> None:
        self.store = store
        self.messengers = messengers
        self.approve_to = approve_to

    def install(self, service: StudyService) -> None:
        """Register the commands, buttons and forms on ``service``, and the members' notices."""
        service.register("suggest", self.suggest)
        service.register("suggestions", self.queue)
        service.register_form("suggest", FormRoute(self._build_suggest, self._submit_suggest))
        service.register_form("sug-deny", FormRoute(self._build_deny, self._submit_deny))
        service.register_action("sug-ok", self._approve_click)
        service.register_action("sug-no", self._deny_click)
        service.member_notices.append(self.notices)

    # ------------------------------------------------------------------ members

    async def suggest(self, ctx: Context, command: Command) -> list[Reply]:
        kind = command.args.get("kind", "question")
        refusal = await self._refusal(ctx)
        if refusal:
            return private(refusal)
        arg = kind + ("-anon" if command.args.get("credit") == "no" else "")
        return await self._service_open(ctx, arg)

    async def _service_open(self, ctx: Context, arg: str) -> list[Reply]:
        built = await self._build_suggest(ctx, arg)
        if not isinstance(built, Form):
            return built
        credit = (
            "without your name" if arg.endswith("-anon") else "credited to you (add `anonymous` to leave your name off)"
        )
        text = f"**{built.title}** — an admin looks at it before it is posted; {credit}."
        return [Reply(text, private=True, form=built)]

    async def _refusal(self, ctx: Context) -> str | None:
        enabled, cap = await self.store.suggestion_settings(ctx.member.group_id)
        if not enabled:
            return OFF_TEXT
        waiting = await self.store.open_suggestion_count(ctx.member.group_id, ctx.member.member_id)
        if waiting >= cap:
            return _cap_text(cap)
        return None

    async def _build_suggest(self, ctx: Context, arg: str) -> Form | list[Reply]:
        kind = arg.removesuffix("-anon")
        if kind not in KINDS:
            return private("That form is no longer valid; nothing was saved. Try /study suggest.")
        title = "Suggest a question" if kind == "question" else "Suggest a tip"
        return item_form("suggest", "question" if kind == "question" else "tip", title, arg=arg)

    async def _submit_suggest(self, ctx: Context, form: Form, values: dict[str, str]) -> list[Reply]:
        kind: ItemKind = "question" if form.arg.startswith("question") else "tip"
        enabled, cap = await self.store.suggestion_settings(ctx.member.group_id)
        if not enabled:
            return private(OFF_TEXT)
        draft = read_item(kind, values)
        if not isinstance(draft, ItemDraft):
            return [form.invalid(values, draft)]
        credit = not form.arg.endswith("-anon")
        sid = await self.store.add_suggestion(
            ctx.member.group_id, ctx.member.member_id, kind, json.dumps(draft.as_dict()), credit, ctx.now
        )
        if sid is None:
            return private(_cap_text(cap) + " Nothing was saved.")
        return private(
            f"📝 Thanks — your {kind} (suggestion #{sid}) waits for an admin. You will hear privately whether it "
            "is added.\n" + preview(draft)
        )

    async def notices(self, ctx: Context) -> list[Reply]:
        """Outcomes that could not be sent directly, shown (once) with the member's next command."""
        if not ctx.member.notice:  # the member lookup saw none waiting (one queued since drops that ref)
            return []
        return [Reply(text, private=True) for text in await self.store.take_member_notices(ctx.member.member_id)]

    # ------------------------------------------------------------------ admins

    async def queue(self, ctx: Context, command: Command) -> list[Reply]:
        sub = command.args.get("sub", "")
        if sub in ("on", "off"):
            await self.store.set_suggestions_enabled(ctx.member.group_id, sub == "on")
            if sub == "on":
                return private("Members can suggest questions and tips again (/study suggest).")
            return private("Suggestions are off: /study suggest now tells members so. Open ones stay in the queue.")
        if sub == "approve":
            return await self.approve(ctx, int(command.args["id"]), command.args.get("deck", ""))
        if sub == "deny":
            return await self.deny(ctx, int(command.args["id"]), command.args.get("reason") or None)
        enabled, _ = await self.store.suggestion_settings(ctx.member.group_id)
        waiting = await self.store.open_suggestions(ctx.member.group_id, PAGE)
        total = await self.store.open_suggestion_count(ctx.member.group_id, None)
        state = "" if enabled else " (suggestions are off: /study suggestions on)"
        if not waiting:
            return private(f"No suggestions waiting{state}.")
        more = f" — the oldest {len(waiting)} shown" if total > len(waiting) else ""
        replies = [Reply(f"**{total} suggestion{'s' if total != 1 else ''} waiting**{more}{state}", private=True)]
        for s in waiting:
            credit = f"by {name(s.author)}" + ("" if s.credit else " (asked not to be credited)")
            text = f"**#{s.id} · {s.kind}** {credit}\n{preview(s.draft())}"
            replies.append(
                Reply(
                    text,
                    private=True,
                    buttons=(
                        Button(actions.routed_action("sug-ok", str(s.id)), "Approve", "success"),
                        Button(actions.routed_action("sug-no", str(s.id)), "Deny", "danger"),
                    ),
                )
            )
        return replies

    async def _mine(self, ctx: Context, sid: int) -> Suggestion | str:
        """The suggestion if the clicker may decide it here, else the one-line refusal."""
        if not ctx.inbound.can_admin:
            return "Only admins can approve or deny suggestions."
        found = await self.store.get_suggestion(sid)
        if found is None or found.group_id != ctx.member.group_id:
            return f"There is no suggestion #{sid} in this group."
        if found.status != "open":
            return f"Suggestion #{sid} was already {found.status}."
        return found

    async def _approve_click(self, ctx: Context, args: tuple[str, ...]) -> list[Reply]:
        if len(args) != 1 or not args[0].isdigit():
            return private("That button is no longer valid.")
        return await self.approve(ctx, int(args[0]))

    async def _deny_click(self, ctx: Context, args: tuple[str, ...]) -> list[Reply]:
        if len(args) != 1 or not args[0].isdigit():
            return private("That button is no longer valid.")
        found = await self._mine(ctx, int(args[0]))
        if isinstance(found, str):
            return private(found)
        built = await self._build_deny(ctx, args[0])
        if not isinstance(built, Form):
            return built
        return [Reply(f"Deny suggestion #{found.id}: a reason for {name(found.author)} is optional.", form=built)]

    async def _build_deny(self, ctx: Context, arg: str) -> Form | list[Reply]:
        if not arg.isdigit():
            return private("That form is no longer valid.")
        found = await self._mine(ctx, int(arg))
        if isinstance(found, str):
            return private(found)
        reason = Field(
            "reason",
            "Reason (optional, sent to the member)",
            "paragraph",
            required=False,
            max_len=300,
            placeholder="e.g. we already have a question on this",
        )
        return Form(
            name="sug-deny", title=f"Deny suggestion #{found.id}"[:24], fields=(reason,), arg=arg, submit_label="Deny"
        )

    async def _submit_deny(self, ctx: Context, form: Form, values: dict[str, str]) -> list[Reply]:
        return await self.deny(ctx, int(form.arg), values.get("reason") or None)

    async def approve(self, ctx: Context, sid: int, deck: str = "") -> list[Reply]:
        found = await self._mine(ctx, sid)
        if isinstance(found, str):
            return private(found)
        # Claimed first: of two admins clicking at once, one approves; the other is told it was done.
        if not await self.store.decide_suggestion(
            sid, ctx.member.group_id, "approved", ctx.member.member_id, None, ctx.now
        ):
            return private(f"Suggestion #{sid} was already decided.")
        where = ""
        if self.approve_to is not None:
            try:
                ref = await self.approve_to(ctx, found, found.draft(), deck)
            except ValueError as e:
                await self.store.reopen_suggestion(sid)
                return private(f"Suggestion #{sid} was not approved: {e}")
            except Exception:
                await self.store.reopen_suggestion(sid)
                raise
            await self.store.set_suggestion_item(sid, ref)
            where = f" {ref}"
        told = await self._tell(
            ctx, found, f"✅ Your suggested {found.kind} (#{sid}) was approved{where}. Thank you!\n" + _gist(found)
        )
        return private(f"✅ Suggestion #{sid} by {name(found.author)} approved{where}. {told}")

    async def deny(self, ctx: Context, sid: int, reason: str | None) -> list[Reply]:
        found = await self._mine(ctx, sid)
        if isinstance(found, str):
            return private(found)
        if not await self.store.decide_suggestion(
            sid, ctx.member.group_id, "denied", ctx.member.member_id, reason, ctx.now
        ):
            return private(f"Suggestion #{sid} was already decided.")
        why = f"\nReason: {quoted(reason)}" if reason else ""
        told = await self._tell(
            ctx, found, f"Your suggested {found.kind} (#{sid}) was not added this time.{why}\n" + _gist(found)
        )
        return private(f"Suggestion #{sid} by {name(found.author)} denied. {told}")

    async def _tell(self, ctx: Context, s: Suggestion, text: str) -> str:
        """Tell the suggester privately; says how (for the admin's reply)."""
        gateway = self.messengers.get(s.platform)
        if isinstance(gateway, DirectGateway):
            try:
                await gateway.send_direct(s.user_id, Post(channel="", text=text, group=s.group_ext))
                return "They were told by direct message."
            except DeliveryError as e:
                log.info("suggestions: no direct message to member %s (%s)", s.member_id, e)
            except Exception:
                log.warning("suggestions: could not message member %s directly", s.member_id, exc_info=True)
        await self.store.add_member_notice(s.member_id, text, ctx.now)
        return "Their direct messages are closed: they will see it with their next command."


def _cap_text(cap: int) -> str:
    return (
        f"You already have {cap} suggestion{'s' if cap != 1 else ''} waiting for an admin (the limit here is {cap}); "
        "you can suggest more once those are looked at."
    )


def _gist(s: Suggestion) -> str:
    draft = s.draft()
    text = draft.prompt if draft.kind == "question" else draft.text
    return f"“{quoted(text[:120] + ('…' if len(text) > 120 else ''))}”"
