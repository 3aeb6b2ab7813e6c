"""Open-answer practice: interview prompts and flashcards, self-rated on the same FSRS review queue.

An *open card* has a front (the prompt), a back (the answer, or the points a strong answer covers), a
topic, a source and tags. The shipped interview prompts are the open cards of the built-in ``tpm`` deck;
other open cards come from decks (`CardSource`).

The flow, the same on every front end:

1. `/study interview` (or `/study cards [deck]`, or "Practise this" under a channel post) deals one card
   privately: a due one first, then one the member has practised least. Dealing records an *attempt*,
   whose id the buttons carry.
2. The member may write an answer (**Write an answer**, or `/study write <answer>`): kept for them only.
3. **Show points** reveals the back privately, beside what they wrote.
4. **Again / Hard / Good / Easy** rate it: the attempt's rating and the member's FSRS card for the open
   card are written in one transaction (`PracticePort.rate_attempt`). A second rating changes nothing.

`/study review` serves due items of both kinds (questions and open cards), most overdue first.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from fsrs import Rating, Scheduler

from bot.core import actions
from bot.core.commands import MAX_ANSWER_CHARS, Command
from bot.core.content import ContentLibrary
from bot.core.decks import ALL, DeckItem, DeckStore, parse_ref
from bot.core.forms import MAX_PLACEHOLDER, Form, FormRoute
from bot.core.forms import Field as FormField
from bot.core.learning import LearningEngine, make_scheduler, review, when
from bot.core.markup import name
from bot.core.messages import Button, Reply
from bot.core.ports import MemberRef, Store
from bot.core.service import Context, StudyService, private

log = logging.getLogger(__name__)

#: The built-in deck that holds the shipped pack's interview prompts.
BUILTIN_DECK = "tpm"
KINDS = ("interview", "card")
RATINGS = {"again": Rating.Again, "hard": Rating.Hard, "good": Rating.Good, "easy": Rating.Easy}
RATING_NAMES = {int(r): n.capitalize() for n, r in RATINGS.items()}
_KIND_TITLE = {"interview": "Interview practice", "card": "Flashcard"}


@dataclass(frozen=True, slots=True)
class OpenCard:
    """A card answered in the member's own words. ``key`` never changes (``iv-01``, ``d.42``);
    ``points`` is the back as a checklist when it is one (interview prompts)."""

    key: str
    kind: str
    front: str
    back: str
    topic: str
    source: str
    deck: str = BUILTIN_DECK
    tags: tuple[str, ...] = ()
    points: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Attempt:
    """One open card dealt to one member, and what became of it."""

    id: int
    member_id: int
    group_id: int
    kind: str
    card_key: str
    answer: str | None
    dealt_at: datetime
    rating: int | None
    rated_at: datetime | None


@dataclass(frozen=True, slots=True)
class RateOutcome:
    """``recorded`` False: the attempt was rated already (``rating`` is that earlier rating) or is
    not the member's; nothing changed. ``due`` is when the card comes back (None if not recorded)."""

    recorded: bool
    rating: int | None
    due: datetime | None


@dataclass(frozen=True, slots=True)
class KindSummary:
    """A member's practice of one kind: attempts rated, written answers kept, cards due now, next due."""

    kind: str
    rated: int
    written: int
    good: int
    due: int
    next_due: datetime | None


#: The FSRS card update for a rating: stored card JSON (None: new) -> (new card JSON, next due UTC).
PracticeCardFn = Callable[[str | None], tuple[str, datetime]]


class PracticePort(Protocol):
    """Storage for attempts and open-card review state. Raises `StoreError` on storage failures."""

    async def deal_attempt(self, member_id: int, group_id: int, kind: str, card_key: str, now: datetime) -> int:
        """Record that ``card_key`` was dealt to the member; returns the attempt id (committed)."""
        ...

    async def get_attempt(self, attempt_id: int) -> Attempt | None: ...

    async def latest_attempt(self, member_id: int) -> Attempt | None:
        """The member's most recently dealt attempt (rated or not)."""
        ...

    async def write_answer(self, attempt_id: int, member_id: int, text: str) -> bool:
        """Keep the member's written answer on their unrated attempt; False (nothing written) when the
        attempt is rated already or is not theirs."""
        ...

    async def rate_attempt(
        self, attempt_id: int, member_id: int, rating: int, now: datetime, card_fn: PracticeCardFn
    ) -> RateOutcome:
        """Rate the attempt once and move the member's FSRS card for it (``card_fn``), in one transaction."""
        ...

    async def due_practice(self, member_id: int, now: datetime, limit: int) -> list[tuple[str, str, datetime]]:
        """(kind, card key, due) of the member's open cards due at ``now``, most overdue first."""
        ...

    async def practice_counts(self, member_id: int) -> dict[str, int]:
        """How many times each open card was dealt to the member."""
        ...

    async def practice_summary(self, member_id: int, now: datetime) -> list[KindSummary]:
        """One summary per kind the member has practised."""
        ...


class CardSource(Protocol):
    """Where open cards come from: the shipped pack, and group decks once they exist."""

    async def open_cards(self, group_id: int, deck: str | None) -> list[OpenCard] | None:
        """The open cards a group can practise from ``deck`` (None: every deck); None when there is no
        such deck for the group."""
        ...

    async def open_card(self, group_id: int, key: str) -> OpenCard | None:
        """The card with ``key`` if the group can still practise it (None: retired, or not theirs)."""
        ...

    async def deck_names(self, group_id: int) -> list[str]: ...


def pack_cards(library: ContentLibrary) -> list[OpenCard]:
    """The shipped pack's interview prompts as open cards of the built-in deck."""
    return [
        OpenCard(
            key=p.id,
            kind="interview",
            front=p.prompt,
            back="\n".join(f"• {c}" for c in p.covers),
            topic="interview",
            source=p.source,
            points=tuple(p.covers),
        )
        for p in library.pack.interview
    ]


class PackCards:
    """`CardSource` for the shipped pack's interview prompts (deck ``tpm``, every group)."""

    def __init__(self, library: ContentLibrary) -> None:
        self.library = library

    async def open_cards(self, group_id: int, deck: str | None) -> list[OpenCard] | None:
        if deck not in (None, BUILTIN_DECK):
            return None
        return pack_cards(self.library)

    async def open_card(self, group_id: int, key: str) -> OpenCard | None:
        prompt = next((p for p in self.library.pack.interview if p.id == key), None)
        if prompt is None:
            return None
        return next(c for c in pack_cards(self.library) if c.key == key)

    async def deck_names(self, group_id: int) -> list[str]:
        return [BUILTIN_DECK]


def card_text(card: OpenCard, heading: str) -> str:
    """The front of a card as dealt."""
    tags = f" · {', '.join(card.tags)}" if card.tags else ""
    return f"**{heading}** · {card.topic}{tags}\n{card.front}"


def clean_answer(text: str) -> tuple[str | None, str | None]:
    """(answer, None) for a usable written answer, or (None, one-line reason) for one that is not."""
    stripped = text.strip()
    if not stripped:
        return None, "Your answer is empty — write a few words (or just think it through and press Show points)."
    if len(stripped) > MAX_ANSWER_CHARS:
        return None, (
            f"Your answer is too long ({len(stripped):,} characters; the limit is {MAX_ANSWER_CHARS:,}). "
            "Nothing was saved — shorten it and send it again."
        )
    return stripped, None


@dataclass
class PracticeEngine:
    """Open-card practice wired into a `StudyService` (`install`). With ``learning`` (the engine of
    multiple-choice reviews), `/study review` mixes both kinds and the chart gets a row per kind.

    Methods raise `StoreError` on storage failures; the service turns those into an apology."""

    store: PracticePort
    cards: CardSource
    learning: LearningEngine | None = None
    #: The channel posts whose "Practise this" deals their card (the main store).
    posts: Store | None = None
    scheduler: Scheduler = field(default_factory=make_scheduler)
    #: The service it is installed in (`install`): forms open through it.
    service: StudyService | None = field(default=None, init=False)

    def install(self, service: StudyService) -> None:
        """Register `interview`, `cards`, `write`, `points`, `rate`, the mixed `review` and the answer form."""
        self.service = service
        service.register_form("answer", FormRoute(self.answer_form, self.answer_submitted))
        if self.learning is not None:
            self.learning.chart_rows.append(self.chart_rows)
        service.register("interview", self.interview_command)
        service.register("cards", self.cards_command)
        service.register("write", self.write_command)
        service.register("points", self.points_command)
        service.register("rate", self.rate_command)
        service.register("review", self.review_command)
        service.progress_extras.append(self.progress_line)
        service.feature_actions.append(self.handle_action)

    # -------------------------------------------------------------- dealing

    async def interview_command(self, ctx: Context, _: Command) -> list[Reply]:
        """`/study interview`: one interview prompt, due ones first, then the least practised."""
        pool = [
            c for c in await self.cards.open_cards(ctx.member.group_id, BUILTIN_DECK) or [] if c.kind == "interview"
        ]
        if not pool:
            return private("There are no interview prompts to practise yet (the content pack has none).")
        return await self.deal_from(ctx, pool, "Interview practice")

    async def cards_command(self, ctx: Context, command: Command) -> list[Reply]:
        """`/study cards [deck]`: one open card from the deck (every deck when none is named)."""
        deck = command.args.get("deck")
        pool = await self.cards.open_cards(ctx.member.group_id, deck)
        if pool is None:
            names = ", ".join(await self.cards.deck_names(ctx.member.group_id))
            return private(f'No deck "{name(deck or "")}" here — decks: {names}.')
        if not pool:
            where = f'deck "{name(deck)}"' if deck else "any deck here"
            return private(f"There are no open cards in {where} yet.")
        return await self.deal_from(ctx, pool, "Flashcards")

    async def deal_from(self, ctx: Context, pool: Sequence[OpenCard], heading: str) -> list[Reply]:
        due, counts = await asyncio.gather(
            self.store.due_practice(ctx.member.member_id, ctx.now, 50), self.store.practice_counts(ctx.member.member_id)
        )
        by_key = {c.key: c for c in pool}
        card = next((by_key[k] for _, k, _ in due if k in by_key), None)
        if card is None:
            fewest = min(counts.get(c.key, 0) for c in pool)
            card = next(c for c in pool if counts.get(c.key, 0) == fewest)
        return await self.deal(ctx, card, heading)

    async def deal(self, ctx: Context, card: OpenCard, heading: str) -> list[Reply]:
        """Deal ``card`` to the member privately, with Write an answer / Show points."""
        attempt = await self.store.deal_attempt(ctx.member.member_id, ctx.member.group_id, card.kind, card.key, ctx.now)
        text = (
            f"{card_text(card, heading)}\n\n"
            "Answer out loud or in your head — or write it down (Write an answer, or /study write <your answer>) — "
            "then Show points and rate yourself."
        )
        return private(
            text,
            Button(actions.practice_action(attempt, "write"), "Write an answer", "secondary"),
            Button(actions.practice_action(attempt, "show"), "Show points", "primary"),
        )

    # -------------------------------------------------------------- the steps

    async def handle_action(self, ctx: Context, action: actions.Action) -> list[Reply] | None:
        """Button clicks of this feature; None for someone else's action."""
        if isinstance(action, actions.PracticeAction):
            if action.step == "show":
                return await self.show(ctx, action.attempt_id)
            if action.step == "write":
                return await self.write_prompt(ctx, action.attempt_id)
            return await self.rate(ctx, action.attempt_id, int(action.step[1]))
        if isinstance(action, actions.PractiseThisAction):
            post = await self.posts.get_post(action.post_id) if self.posts is not None else None
            if post is None or post.group_id != ctx.member.group_id or post.kind != "interview":
                return private("That post isn't available here. Try /study interview for a question to practise.")
            card = await self.cards.open_card(ctx.member.group_id, post.item_id)
            if card is None:
                return private("That card was retired from its deck. Try /study interview for another one.")
            return await self.deal(ctx, card, _KIND_TITLE.get(card.kind, "Practice"))
        return None

    async def _own(self, ctx: Context, attempt_id: int) -> tuple[Attempt | None, OpenCard | None, list[Reply] | None]:
        """The member's attempt and its card, or a private refusal."""
        attempt = await self.store.get_attempt(attempt_id)
        if attempt is None or attempt.group_id != ctx.member.group_id:
            return None, None, private("That card isn't available here any more. Try /study interview for a fresh one.")
        if attempt.member_id != ctx.member.member_id:
            return None, None, private("That card was dealt to someone else — get your own with /study interview.")
        card = await self.cards.open_card(ctx.member.group_id, attempt.card_key)
        if card is None:
            return (
                None,
                None,
                private(
                    "That card was retired from its deck, so nothing was recorded. Try /study interview for another one."
                ),
            )
        return attempt, card, None

    async def write_prompt(self, ctx: Context, attempt_id: int) -> list[Reply]:
        """ "Write an answer": the answer form (a Discord or Slack modal; the console asks for it line by
        line), prefilled with what the member wrote so far."""
        if self.service is None:
            return private(
                f"Write your answer with /study write <your answer> (up to {MAX_ANSWER_CHARS:,} characters)."
            )
        return await self.service.open_form(
            ctx, "answer", str(attempt_id), text="✍️ Your answer — only you will ever see it."
        )

    async def answer_form(self, ctx: Context, arg: str) -> Form | list[Reply]:
        """The answer form for attempt ``arg``, or why the member cannot write on it (runs again on submit,
        so a stale or crafted submission is refused the same way)."""
        if not arg.isdigit() or len(arg) > 18:
            return private("That answer form is no longer valid; nothing was saved. Try /study interview.")
        attempt, card, refusal = await self._own(ctx, int(arg))
        if refusal is not None:
            return refusal
        assert attempt is not None and card is not None
        if attempt.rating is not None:
            return private("You have rated that card already; its answer can no longer change. Try /study interview.")
        answer = FormField(
            "answer",
            "Your answer (only you will see it)",
            "paragraph",
            required=True,
            max_len=MAX_ANSWER_CHARS,
            placeholder=card.front[:MAX_PLACEHOLDER],
            default=(attempt.answer or "")[:MAX_ANSWER_CHARS],
        )
        return Form(name="answer", arg=arg, title="Your answer", fields=(answer,), submit_label="Keep it")

    async def answer_submitted(self, ctx: Context, form: Form, values: dict[str, str]) -> list[Reply]:
        """A submitted answer form: kept like `/study write` (the form's generic checks ran already)."""
        return await self.save_answer(ctx, int(form.arg), values["answer"])

    async def show(self, ctx: Context, attempt_id: int) -> list[Reply]:
        """Show points: the back, beside what the member wrote, and the four rating buttons."""
        attempt, card, refusal = await self._own(ctx, attempt_id)
        if refusal is not None:
            return refusal
        assert attempt is not None and card is not None
        title = "Points a strong answer covers" if card.points else "Answer"
        lines = [f"**{title}** — {name(card.front[:120])}", card.back, ""]
        if attempt.answer:
            # Marked line by line: escaped as data on every platform, its line breaks kept.
            lines += ["**What you wrote** (only you see this):", *(name(line) for line in attempt.answer.splitlines())]
        else:
            lines.append("You answered in your head.")
        if attempt.rating is not None:
            lines += ["", f"You rated this {RATING_NAMES[attempt.rating]}."]
            return private("\n".join(lines))
        lines += ["", "How did you do?"]
        return private("\n".join(lines), *rating_buttons(attempt.id))

    async def rate(self, ctx: Context, attempt_id: int, rating: int) -> list[Reply]:
        """Rate an attempt (1-4) once: the rating and the FSRS card move in one transaction."""
        attempt, card, refusal = await self._own(ctx, attempt_id)
        if refusal is not None:
            return refusal
        assert attempt is not None and card is not None
        if attempt.rating is not None:
            return private(f"You already rated this card {RATING_NAMES[attempt.rating]}; only the first rating counts.")
        member, key = ctx.member.member_id, card.key

        def card_fn(stored: str | None) -> tuple[str, datetime]:
            return review(self.scheduler, stored, member_id=member, question_id=key, rating=Rating(rating), at=ctx.now)

        outcome = await self.store.rate_attempt(attempt.id, member, rating, ctx.now, card_fn)
        if not outcome.recorded:
            earlier = RATING_NAMES.get(outcome.rating or 0, "already")
            return private(f"You already rated this card {earlier}; only the first rating counts.")
        nxt = when(outcome.due, ctx.now, ctx.member.zone) if outcome.due else "later"
        again = "/study interview" if card.kind == "interview" else "/study cards"
        return private(f"Rated {RATING_NAMES[rating]} — this card comes back {nxt}. Another one: {again}")

    # -------------------------------------------------------------- text commands (console, typed)

    async def _latest_open(self, ctx: Context) -> tuple[Attempt | None, list[Reply] | None]:
        attempt = await self.store.latest_attempt(ctx.member.member_id)
        if attempt is None:
            return None, private("You have no card in front of you — get one with /study interview or /study cards.")
        return attempt, None

    async def write_command(self, ctx: Context, command: Command) -> list[Reply]:
        """`/study write <answer>`: keep a written answer on the card in front of the member."""
        answer, reason = clean_answer(command.args.get("text", ""))
        if reason is not None:
            return private(reason)
        assert answer is not None
        attempt, refusal = await self._latest_open(ctx)
        if refusal is not None:
            return refusal
        assert attempt is not None
        return await self.save_answer(ctx, attempt.id, answer)

    async def save_answer(self, ctx: Context, attempt_id: int, text: str) -> list[Reply]:
        """Keep ``text`` as the member's answer on an attempt (a form submission lands here too)."""
        answer, reason = clean_answer(text)
        if reason is not None:
            return private(reason)
        assert answer is not None
        attempt, _, refusal = await self._own(ctx, attempt_id)
        if refusal is not None:
            return refusal
        assert attempt is not None
        if attempt.rating is not None or not await self.store.write_answer(attempt.id, ctx.member.member_id, answer):
            return private("You have rated that card already; its answer can no longer change. Try /study interview.")
        return private(
            f"✍️ Answer kept ({len(answer):,} characters, only you see it). Now Show points to compare.",
            Button(actions.practice_action(attempt.id, "show"), "Show points", "primary"),
        )

    async def points_command(self, ctx: Context, _: Command) -> list[Reply]:
        """`/study points`: Show points for the card in front of the member."""
        attempt, refusal = await self._latest_open(ctx)
        if refusal is not None:
            return refusal
        assert attempt is not None
        return await self.show(ctx, attempt.id)

    async def rate_command(self, ctx: Context, command: Command) -> list[Reply]:
        """`/study rate again|hard|good|easy`: rate the card in front of the member."""
        attempt, refusal = await self._latest_open(ctx)
        if refusal is not None:
            return refusal
        assert attempt is not None
        return await self.rate(ctx, attempt.id, int(RATINGS[command.args["rating"]]))

    # -------------------------------------------------------------- review and progress

    async def review_command(self, ctx: Context, command: Command) -> list[Reply]:
        """`/study review`: the most overdue item of either kind (a question or an open card)."""
        due = await self.store.due_practice(ctx.member.member_id, ctx.now, 50)
        card: OpenCard | None = None
        card_due: datetime | None = None
        for _, key, at in due:
            card = await self.cards.open_card(ctx.member.group_id, key)
            if card is not None:
                card_due = at
                break
        question_due = await self.learning.question_due_at(ctx.member, ctx.now) if self.learning else None
        if card is not None and card_due is not None and (question_due is None or card_due < question_due):
            total = sum(s.due for s in await self.store.practice_summary(ctx.member.member_id, ctx.now))
            return await self.deal(ctx, card, f"Review · {_KIND_TITLE.get(card.kind, 'Practice')} ({total} due)")
        if self.learning is not None:
            return await self.learning.review_command(ctx, command)
        return private("No reviews due.")

    async def progress_line(self, ctx: Context, member: MemberRef) -> str | None:
        """Progress: practice per kind, written answers counted (never shown), and what is due."""
        parts = []
        for s in await self.store.practice_summary(member.member_id, ctx.now):
            label = "🎤 Interview practice" if s.kind == "interview" else "🃏 Flashcards"
            written = f" ({s.written} written)" if s.written else ""
            due = f" · {s.due} due — /study review" if s.due else ""
            parts.append(f"{label}: {s.rated} rated{written}{due}")
        return "\n".join(parts) or None

    async def chart_rows(self, member: MemberRef, now: datetime) -> list[tuple[str, float, int]]:
        """Rows for the progress chart: per kind, the share of ratings Good or Easy, and how many."""
        rows = []
        for s in await self.store.practice_summary(member.member_id, now):
            if s.rated:
                label = "interview practice" if s.kind == "interview" else "flashcards"
                rows.append((label, s.good / s.rated, s.rated))
        return rows


def rating_buttons(attempt_id: int) -> tuple[Button, ...]:
    styles = {1: "danger", 2: "secondary", 3: "primary", 4: "success"}
    return tuple(
        Button(actions.practice_action(attempt_id, f"r{n}"), RATING_NAMES[n], styles[n])  # type: ignore[arg-type]
        for n in (1, 2, 3, 4)
    )


def deck_card(item: DeckItem, deck: str) -> OpenCard:
    """A group deck's open card (kind ``card``) as dealt; its key is the deck item's ref (``d:<id>``)."""
    d = item.data
    return OpenCard(
        key=item.ref,
        kind="card",
        front=d.front or "",
        back=d.back or "",
        topic=d.topic or deck,
        source=d.source,
        deck=deck,
        tags=d.tags,
    )


class DeckCards:
    """`CardSource` over the shipped pack (deck ``tpm``) and the group's own decks (`DeckStore`):
    a group deck's open cards are its items of kind ``card``; retired items are no longer dealt, and a
    click on one already dealt is refused."""

    def __init__(self, library: ContentLibrary, decks: DeckStore) -> None:
        self.pack = PackCards(library)
        self.decks = decks

    async def open_cards(self, group_id: int, deck: str | None) -> list[OpenCard] | None:
        if deck == BUILTIN_DECK:
            return await self.pack.open_cards(group_id, deck)
        if deck is None or deck == ALL:
            names = {d.id: d.name for d in await self.decks.decks(group_id)}
            own = [deck_card(i, names.get(i.deck_id, "")) for i in await self.decks.group_items(group_id, "card")]
            return [*(await self.pack.open_cards(group_id, None) or []), *own]
        found = await self.decks.find_deck(group_id, deck)
        if found is None:
            return None
        return [
            deck_card(i, found.name) for i in await self.decks.deck_items(group_id, found.id) if i.data.kind == "card"
        ]

    async def open_card(self, group_id: int, key: str) -> OpenCard | None:
        item_id = parse_ref(key)
        if item_id is None:
            return await self.pack.open_card(group_id, key)
        items = await self.decks.items_by_id(group_id, [item_id])
        if not items or items[0].retired_at is not None or items[0].data.kind != "card":
            return None
        names = {d.id: d.name for d in await self.decks.decks(group_id)}
        if items[0].deck_id not in names:  # its deck was deleted
            return None
        return deck_card(items[0], names[items[0].deck_id])

    async def deck_names(self, group_id: int) -> list[str]:
        return [BUILTIN_DECK, *(d.name for d in await self.decks.decks(group_id))]
