"""The study service: turns an `Inbound` into replies. The one entry point every front end calls."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import TYPE_CHECKING, Protocol

from bot.core import actions, forms
from bot.core.commands import SPECS, Command, Spec, UsageError, parse
from bot.core.content import LETTERS, ContentLibrary, ContentPack, Question, Tip
from bot.core.markup import name
from bot.core.messages import Attachment, Button, Inbound, Reply
from bot.core.ports import (
    AnswerIn,
    AnswerOutcome,
    CardFn,
    Clock,
    DealReads,
    DealView,
    LateRule,
    MemberRef,
    Store,
    StreakFn,
    StreakState,
)
from bot.core.progress import advance_streak, bar, current_step, current_streak, mastery, percent
from bot.core.timezones import UnknownZone, local_day, resolve_zone, week_start, zone

if TYPE_CHECKING:
    from bot.core.deck_commands import Catalog

log = logging.getLogger(__name__)

DIFFICULTY = {1: "easy", 2: "medium", 3: "hard"}
ERROR_TEXT = "Something went wrong on our side; it has been logged. Please try again in a moment."


@dataclass(frozen=True, slots=True)
class Context:
    """Everything a handler needs about one request."""

    inbound: Inbound
    member: MemberRef
    now: datetime


Handler = Callable[[Context, Command], Awaitable[list[Reply]]]
#: A feature's button clicks: its replies, or None when the action is not the feature's.
ActionHandler = Callable[[Context, actions.Action], Awaitable[list[Reply] | None]]
#: Runs after an answer was recorded (e.g. role rewards); returns extra replies for the member.
AfterAnswer = Callable[[Context, AnswerOutcome], Awaitable[list[Reply]]]
#: A button whose action id is ``sb:<name>:<arg>[:<arg>…]``: gets the args (see `StudyService.register_action`).
RoutedHandler = Callable[[Context, tuple[str, ...]], Awaitable[list[Reply]]]
ExcusedDays = Callable[[MemberRef, datetime], Awaitable[frozenset[date]]]


class PendingExcused(Protocol):
    """Excused days still being looked up; the same object for every answer that would join that look-up."""

    async def days(self, member: MemberRef) -> frozenset[date]: ...


#: `ExcusedDays` without waiting: the days if known now, else the look-up under way.
KnownExcusedDays = Callable[[MemberRef, datetime], "frozenset[date] | PendingExcused"]


@dataclass(frozen=True, slots=True)
class StreakRule:
    """The streak update of an answer given on local day ``today`` (a `StreakFn`, run by the store inside
    the answer's transaction). One per day and set of excused days, shared by every answer that has them
    (a burst of clicks holds no closure each)."""

    today: date
    excused: frozenset[date]

    def __call__(self, state: StreakState) -> StreakState:
        return advance_streak(state, self.today, self.excused)


class LateStreakRule(LateRule):
    """`StreakRule` for the answers that arrive while their group's missed posts are still being looked
    up (the first clicks of a burst): the store awaits `ready` once per batch (it joins that look-up),
    so these answers go to the group commit at once instead of each waiting on the event loop. One per
    (day, zone, look-up), shared by the answers that have them."""

    __slots__ = ("excused", "look_up", "today")

    def __init__(self, today: date, look_up: Callable[[], Awaitable[frozenset[date]]]) -> None:
        self.today = today
        self.look_up = look_up
        self.excused: frozenset[date] | None = None

    async def ready(self) -> None:
        if self.excused is None:
            self.excused = await self.look_up()

    def __call__(self, state: StreakState) -> StreakState:
        if self.excused is None:
            raise RuntimeError("a late streak rule was run before it was ready")
        return advance_streak(state, self.today, self.excused)


def private(text: str, *buttons: Button) -> list[Reply]:
    return [Reply(text, private=True, buttons=buttons)]


def question_text(q: Question, heading: str = "Question") -> str:
    lines = [f"**{heading}** · {q.topic} · {DIFFICULTY.get(q.difficulty, '')}", q.prompt, ""]
    lines += [f"**{letter})** {choice}" for letter, choice in zip(LETTERS, q.choices, strict=True)]
    return "\n".join(lines)


def answer_buttons(post_id: int) -> tuple[Button, ...]:
    return tuple(Button(actions.answer_action(post_id, letter), letter, "primary") for letter in LETTERS)


class StudyService:
    """Routes commands and button clicks to handlers; never raises for bad input.

    Other features (scheduling, reviews, export) add their commands with `register`. ``catalog`` serves
    the groups' own decks beside the shipped pack (without it, only the pack: the deck ``tpm``).
    """

    def __init__(
        self,
        store: Store,
        library: ContentLibrary,
        clock: Clock,
        *,
        rng: random.Random | None = None,
        catalog: Catalog | None = None,
    ) -> None:
        self.store = store
        self.library = library
        self.clock = clock
        self.rng = rng or random.Random()
        self.catalog = catalog
        self._handlers: dict[str, Handler] = {
            "help": self._help,
            "quiz": self._quiz,
            "answer": self._answer_command,
            "tip": self._tip,
            "path": self._path,
            "path.done": self._path_done,
            "progress": self._progress,
            "leaderboard": self._leaderboard,
            "timezone": self._timezone,
            "forget-me": self._forget_me,
        }
        #: Days on which the bot failed to post in the member's group (they never break streaks).
        self.excused_days: ExcusedDays | None = None
        #: The same without waiting (answers pass a `LateStreakRule` to the store while it is looked up).
        self.known_excused_days: KnownExcusedDays | None = None
        #: Extra lines for `progress` (e.g. reviews due), added by other features.
        self.progress_extras: list[Callable[[Context, MemberRef], Awaitable[str | None]]] = []
        #: What a quiz reads about its member at a time, and the pick of its question from a pool (a deck)
        #: given what was read; both run in the store's one unit of work for the quiz (`Store.deal_post`),
        #: the pick where the store reads. A learning engine reads due reviews too and puts them first.
        self.question_reads: Callable[[datetime], DealReads] = lambda _: DealReads(tallies=True)
        self.choose_question: Callable[[ContentPack, DealView], Question | None] = self._least_answered
        #: Files for `progress` (e.g. the chart); a slow reply when there are any.
        self.progress_attachments: list[Callable[[Context, MemberRef], Awaitable[Attachment | None]]] = []
        #: The review-card update for an answer (learning engine); runs inside the answer's transaction.
        self.card_fn_for: Callable[[AnswerIn], CardFn] | None = None
        #: Notices for the next admin who uses a command (e.g. a schedule paused for lost access).
        self.admin_notices: Callable[[Context], Awaitable[list[Reply]]] | None = None
        #: Notices for a member at their next command (e.g. reminders turned off because DMs are closed).
        self.member_notices: list[Callable[[Context], Awaitable[list[Reply]]]] = []
        #: The member a click in a direct message (no group) acts for, given the member id its button
        #: names; None when it is not the clicking user's (see `bot.core.reminders`).
        self.direct_member: Callable[[Inbound, int], Awaitable[MemberRef | None]] | None = None
        #: Whether the freeze that kept a streak (the streak before today's answer) was announced already.
        self.freeze_announced: Callable[[MemberRef, int, date], Awaitable[bool]] | None = None
        #: Buttons without a payload (`actions.SIMPLE_ACTIONS`) that features answer, by name.
        self.action_handlers: dict[str, Callable[[Context], Awaitable[list[Reply]]]] = {
            "review-now": lambda ctx: self._run_command(ctx, Command("review")),
            "board-hide": lambda ctx: self._leaderboard(ctx, Command("leaderboard", {"scope": "hide"})),
            "board-show": lambda ctx: self._leaderboard(ctx, Command("leaderboard", {"scope": "show"})),
        }
        #: Called after a member changed their zone (the next reminder follows it).
        self.zone_changed: list[Callable[[MemberRef, datetime], Awaitable[None]]] = []
        #: Button clicks of other features (open-card practice), asked in order before the fallback.
        self.feature_actions: list[ActionHandler] = []
        #: After a recorded answer (role rewards); a failing hook is logged and costs only its replies.
        self.after_answer: list[AfterAnswer] = []
        #: Called (not awaited) as an answer goes to the store: they start look-ups their `after_answer`
        #: step will need, so those run beside the group commit instead of after it. Must not raise.
        self.before_commit: list[Callable[[Context], None]] = []
        self._forms: dict[str, forms.FormRoute] = {}
        self._actions: dict[str, RoutedHandler] = {}
        self._streak_rules: dict[tuple[date, frozenset[date]], StreakRule] = {}
        self._late_rules: dict[tuple[date, str, PendingExcused], LateStreakRule] = {}

    def register(self, name: str, handler: Handler) -> None:
        """Add or replace the handler for a command name from `commands.SPECS`."""
        if name not in SPECS:
            raise ValueError(f"unknown command {name!r}")
        self._handlers[name] = handler

    def register_form(self, name: str, route: forms.FormRoute) -> None:
        """Serve the form ``name`` (its submissions, and `open_form`); see `bot.core.forms`."""
        self._forms[name] = route

    def register_action(self, name: str, handler: RoutedHandler) -> None:
        """Route clicks on buttons ``sb:<name>:<arg>[:<arg>…]`` (args ``[A-Za-z0-9_.-]``, ≤ 40 each) to
        ``handler(ctx, args)``. The handler must check that what the args name belongs to ``ctx``'s group:
        anyone can craft a button id."""
        if not actions.ROUTED_NAME.fullmatch(name) or name in ("ans", "form"):
            raise ValueError(f"bad action name {name!r}")
        self._actions[name] = handler

    async def open_form(self, ctx: Context, name: str, arg: str = "", text: str = "") -> list[Reply]:
        """The reply that opens form ``name`` for ``arg`` (or the route's refusal)."""
        built = await self._forms[name].build(ctx, arg)
        if not isinstance(built, forms.Form):
            return built
        return [Reply(text or f"**{built.title}** — fill in the form.", private=True, form=built)]

    # ------------------------------------------------------------------ entry point

    async def handle(self, inbound: Inbound) -> list[Reply]:
        """Answer one command or click. Bad input gets a private one-line reply; an unexpected error
        is logged and gets a private apology — this method does not raise (except cancellation)."""
        try:
            if inbound.action is not None:
                return await self._handle_action(inbound)
            try:
                command = parse(inbound.text)
            except UsageError as e:
                return private(str(e))
            spec = SPECS[command.name]
            shown = spec.usage_on(inbound.platform).split(" <")[0].split(" [")[0]
            if spec.operator and not inbound.is_operator:
                return private(
                    f"Only the bot's operator can use {shown}: the content pack serves every group "
                    "(operators are listed in STUDYBOT_OWNERS)."
                )
            if spec.admin and not inbound.can_admin:
                return private(f"Only admins can use {shown} (on Discord: Manage Server; on Slack: workspace admins).")
            handler = self._handlers.get(command.name)
            if handler is None:
                return private(f"{spec.usage_on(inbound.platform)} is not available on this front end.")
            ctx = await self._context(inbound)
            replies = await handler(ctx, command)
            if any(r.form is not None for r in replies):
                return replies  # a form opens as the response itself: notices wait for the next command
            if inbound.can_admin and self.admin_notices is not None:
                replies = [*replies, *await self.admin_notices(ctx)]
            for notices in self.member_notices:
                replies = [*replies, *await notices(ctx)]
            return replies
        except Exception:
            log.exception("error handling %s command from %s", inbound.platform, inbound.user)
            return private(ERROR_TEXT)

    async def context(self, inbound: Inbound) -> Context:
        """The member and time of ``inbound`` (the member is created if new), for features that answer
        outside `handle` (the Slack Home tab). Raises `StoreError`."""
        return await self._context(inbound)

    async def _context(self, inbound: Inbound) -> Context:
        now = self.clock.now()
        member = await self.store.ensure_member(
            inbound.platform,
            inbound.group,
            inbound.channel,
            inbound.user,
            inbound.user_name or inbound.user,
            group_name=inbound.group_name,
            channel_name=inbound.channel_name,
            now=now,
        )
        return Context(inbound, member, now)

    async def _handle_action(self, inbound: Inbound) -> list[Reply]:
        action_id = inbound.action or ""
        # Only a registered name is worth parsing as a routed id (answer clicks, the bulk, are not).
        routed = actions.parse_routed(action_id) if actions.routed_name(action_id) in self._actions else None
        if inbound.values is not None or routed is not None:
            if not inbound.group:  # forms and routed buttons act in a group: never from a direct message
                return private("That button is no longer valid here. Use /study in your study server.")
            if inbound.values is not None:
                return await self._submit_form(inbound)
            assert routed is not None
            return await self._actions[routed[0]](await self._context(inbound), routed[1])
        action = actions.parse_action(action_id)
        if action is None:
            return private("That button is no longer valid. Try /study quiz for a fresh question.")
        ctx = await self._context(inbound) if inbound.group else await self._direct_context(inbound, action)
        if ctx is None:
            return private("That button is no longer valid here. Use /study quiz in your study server.")
        if isinstance(action, actions.AnswerAction):
            return await self.answer(ctx, action.post_id, action.letter)
        if isinstance(action, actions.QuizMeAction):
            if action.member_id != ctx.member.member_id:
                return private("That button was someone else's reminder — get your own question with /study quiz.")
            return await self._quiz(ctx, Command("quiz"))
        if isinstance(action, actions.SimpleAction):
            if action.name == "forget-confirm":
                return await self._forget_me(ctx, Command("forget-me", {"confirm": "confirm"}))
            handler = self.action_handlers.get(action.name)
            if handler is not None:
                return await handler(ctx)
            if action.name == "forget-cancel":
                return private("Nothing was deleted.")
            return private(f"That button is not available on this front end ({action.name}).")
        for handle in self.feature_actions:
            replies = await handle(ctx, action)
            if replies is not None:
                return replies
        return private("That button is no longer valid. Try /study quiz for a fresh question.")

    async def _direct_context(self, inbound: Inbound, action: actions.Action) -> Context | None:
        """A click in a direct message (no group): the member is found through what the button names — the
        member of a reminder's "Quiz me", the member a question was dealt to — and must be the clicker."""
        if self.direct_member is None:
            return None
        if isinstance(action, actions.QuizMeAction):
            member_id: int | None = action.member_id
        elif isinstance(action, actions.AnswerAction):
            post = await self.store.get_post(action.post_id)
            member_id = post.member_id if post is not None else None
        else:
            member_id = None
        member = await self.direct_member(inbound, member_id) if member_id is not None else None
        return Context(inbound, member, self.clock.now()) if member is not None else None

    async def _run_command(self, ctx: Context, command: Command) -> list[Reply]:
        """Run a registered command for a button (the Home tab's "Review now")."""
        handler = self._handlers.get(command.name)
        if handler is None:
            return private(f"{SPECS[command.name].usage} is not available on this front end.")
        return await handler(ctx, command)

    async def _submit_form(self, inbound: Inbound) -> list[Reply]:
        """A form came back: build it again for this member (the route refuses what they may not do),
        check the values generically, then let the route decide."""
        parsed = forms.parse_action(inbound.action or "")
        route = self._forms.get(parsed[0]) if parsed else None
        if parsed is None or route is None:
            return private("That form is no longer valid; nothing was saved. Run the command again.")
        ctx = await self._context(inbound)
        built = await route.build(ctx, parsed[1])
        if not isinstance(built, forms.Form):
            return built
        values, errors = forms.check(built, inbound.values or {})
        if errors:
            return [built.invalid(values, errors)]
        return await route.submit(ctx, built, values)

    # ------------------------------------------------------------------ commands

    async def _help(self, ctx: Context, command: Command) -> list[Reply]:
        # Each person sees only the commands they may use, as typed on their platform (Discord's admin
        # commands live under /study-admin). The first page is the member's; admins and operators get a
        # line pointing to theirs, so the list stays one short message as features grow.
        platform = ctx.inbound.platform
        topic = command.args.get("topic", "")
        may = [
            (name, s)
            for name, s in SPECS.items()
            if s.listed and (not s.operator or ctx.inbound.is_operator) and (not s.admin or ctx.inbound.can_admin)
        ]

        def line(s: Spec) -> str:
            return f"`{s.usage_on(platform)}` — {s.summary}"

        help_cmd = "/study help"
        if topic in ("admin", "operator"):
            wanted = [s for _, s in may if (s.operator if topic == "operator" else s.admin and not s.operator)]
            if not wanted:
                who = "the bot's operator" if topic == "operator" else "this group's admins"
                return private(f"Those commands are for {who}. Yours are in `{help_cmd}`.")
            heading = "**Operator** (every group):" if topic == "operator" else "**Admins** — running this group:"
            return private("\n".join([heading, *_grouped_lines(wanted, platform, help_cmd)]))
        if topic:
            wanted = [s for name, s in may if name.split(".")[0] == topic]
            if not wanted:
                return private(f'No command "{topic}" that you can use. `{help_cmd}` lists yours.')
            return private("\n".join(line(s) for s in wanted))
        lines = ["**studybot** — learn the path into technical project management together.", ""]
        lines += [line(s) for _, s in may if not s.restricted]
        admin_count = sum(1 for _, s in may if s.admin and not s.operator)
        if admin_count:
            lines += ["", f"**Admins:** `{help_cmd} admin` lists the {admin_count} commands for running this group."]
        if any(s.operator for _, s in may):
            lines.append(f"**Operator:** `{help_cmd} operator` — the content pack every group shares.")
        example = "schedule" if admin_count else "remind"
        lines.append(f"Any command in detail: `{help_cmd} <command>`, e.g. `{help_cmd} {example}`.")
        return private("\n".join(lines))

    def _least_answered(self, pack: ContentPack, view: DealView) -> Question | None:
        """A question of ``pack`` this member has answered least often (never, until the pool is used up)."""
        pool = pack.questions
        if not pool:
            return None
        counts = {t.question_id: t.answered for t in view.tallies}
        fewest = min(counts.get(q.id, 0) for q in pool)
        candidates = [q for q in pool if counts.get(q.id, 0) == fewest]
        return self.rng.choice(candidates)

    def _least_shown_tip(self, view: DealView) -> Tip | None:
        """A tip for the member's current step (any tip when it has none) shown to them least often."""
        pack = self.library.pack
        tips = pack.tips_for_step(current_step(view.steps)) or list(pack.tips)
        if not tips:
            return None
        fewest = min(view.shown.get(t.id, 0) for t in tips)
        return self.rng.choice([t for t in tips if view.shown.get(t.id, 0) == fewest])

    async def question(self, group_id: int, ref: str) -> Question | None:
        """The question a post or answer names: the shipped pack's, or (with a catalog) the group's deck item."""
        if self.catalog is None:
            return self.library.pack.question(ref)
        return await self.catalog.question(group_id, ref)

    async def pack_for(self, group_id: int, refs: list[str]) -> ContentPack:
        """The shipped pack plus the group's deck questions among ``refs`` (mastery, charts)."""
        if self.catalog is None:
            return self.library.pack
        return await self.catalog.pack_with(group_id, refs)

    async def _quiz(self, ctx: Context, command: Command) -> list[Reply]:
        deck = command.args.get("deck")
        pool: ContentPack | None = self.library.pack
        if self.catalog is not None:
            if deck is None:  # the deck this channel's posts come from (read with the member, when it was)
                deck, pool = await self.catalog.channel_pool(
                    ctx.member.group_id, ctx.member.channel_id, ctx.member.deck
                )
            else:
                pool = await self.catalog.pool(ctx.member.group_id, deck)
        elif deck not in (None, "tpm", "all"):
            pool = None
        if pool is None:
            return private(f'There is no deck "{name(deck or "")}" here. See the decks with /study deck list.')
        choose = self.choose_question
        m = ctx.member
        dealt = await self.store.deal_post(  # the reads, the pick and the post: one unit of work
            m.group_id, m.channel_id, m.member_id, "question", ctx.now, self.question_reads(ctx.now),
            lambda view: choose(pool, view),
        )  # fmt: skip
        if dealt is None:
            if deck not in (None, "tpm", "all"):
                return private(f"The deck {deck} has no questions yet. An admin can import some (/study deck import).")
            return private("The content pack has no questions yet. An admin can add some (see content/README.md).")
        post, q = dealt
        return [Reply(question_text(q), private=True, buttons=answer_buttons(post.id))]

    async def _answer_command(self, ctx: Context, command: Command) -> list[Reply]:
        post = await self.store.last_question_post(ctx.member.channel_id, ctx.member.member_id)
        if post is None:
            return private("There is no question to answer here yet — get one with /study quiz.")
        return await self.answer(ctx, post.id, command.args["letter"])

    async def answer(self, ctx: Context, post_id: int, letter: str) -> list[Reply]:
        """Record ``letter`` as the member's answer to ``post_id`` (once) and explain the result."""
        post = await self.store.get_post(post_id)
        if post is None or post.kind != "question" or post.group_id != ctx.member.group_id:
            return private("That question isn't available here. Try /study quiz for a fresh one.")
        if post.member_id is not None and post.member_id != ctx.member.member_id:
            return private("That question was dealt to someone else — get your own with /study quiz.")
        q = await self.question(post.group_id, post.item_id)
        if q is None:
            return private("That question was removed from the content pack. Try /study quiz.")
        if post.revealed_at is not None:
            # Everyone has seen the answer by now; a late answer would be a free point.
            return private(
                "The answer to that question has already been revealed in the channel. Try /study quiz for a fresh one."
            )
        today = local_day(ctx.now, ctx.member.zone)
        # Set with `excused_days` (by the learning engine); without it no day is excused.
        excused = self.known_excused_days(ctx.member, ctx.now) if self.known_excused_days else frozenset[date]()
        streak_fn = self._streak_rule(ctx, today, excused)
        answer_in = AnswerIn(
            member_id=ctx.member.member_id,
            post_id=post.id,
            group_id=post.group_id,
            question_id=q.id,
            choice=letter,
            correct=letter == q.answer,
            answered_at=ctx.now,
            week=week_start(ctx.now, ctx.member.group_tz),
        )
        card_fn = self.card_fn_for(answer_in) if self.card_fn_for else None
        for start in self.before_commit:
            start(ctx)
        outcome = await self.store.record_answer(answer_in, streak_fn, card_fn)
        right = f"**{q.answer})** {q.choice(q.answer)}"
        if not outcome.recorded:
            verdict = "right" if outcome.correct else "not right"
            return private(
                f"You already answered this one (you picked {outcome.choice}, which was {verdict}). "
                f"Only your first answer counts.\nThe answer: {right}\n{q.explanation}"
            )
        if outcome.correct:
            head = f"✅ Correct — {right}"
        else:
            head = f"❌ Not quite — you picked {letter}; the answer is {right}"
        lines = [head, q.explanation]
        s = outcome.streak
        if s.streak:
            lines.append(f"🔥 Streak: {s.streak} day{'s' if s.streak != 1 else ''}")
        if s.freeze_used and not (
            self.freeze_announced is not None and await self.freeze_announced(ctx.member, s.streak - 1, today)
        ):
            missed = f"{s.freeze_used} missed day{'s' if s.freeze_used != 1 else ''}"
            lines.append(f"🧊 A freeze kept your {s.streak - 1}-day streak ({missed}).")
        return private("\n".join(lines)) + await self._after_answer(ctx, outcome)

    def _streak_rule(self, ctx: Context, today: date, excused: frozenset[date] | PendingExcused) -> StreakFn:
        """The streak update of an answer on ``today``: a shared `StreakRule` when the excused days are
        known, a shared `LateStreakRule` while they are being looked up (the store waits for them once per
        batch, not each answer here)."""
        if isinstance(excused, frozenset):
            rule = self._streak_rules.get((today, excused))
            if rule is None:
                if len(self._streak_rules) > 1000:  # days and zones in use are few; this only bounds the cache
                    self._streak_rules.clear()
                rule = self._streak_rules[today, excused] = StreakRule(today, excused)
            return rule
        key = (today, ctx.member.zone, excused)
        late = self._late_rules.get(key)
        if late is None:
            if len(self._late_rules) > 1000:  # one per look-up under way and zone; this only bounds the cache
                self._late_rules.clear()
            member = ctx.member
            late = self._late_rules[key] = LateStreakRule(today, lambda: excused.days(member))
        return late

    async def _after_answer(self, ctx: Context, outcome: AnswerOutcome) -> list[Reply]:
        extra: list[Reply] = []
        for hook in self.after_answer:
            try:
                extra += await hook(ctx, outcome)
            except Exception:
                log.exception("an after-answer step failed for member %s", ctx.member.member_id)
        return extra

    async def _tip(self, ctx: Context, _: Command) -> list[Reply]:
        m = ctx.member
        dealt = await self.store.deal_post(  # the reads, the pick and the post: one unit of work
            m.group_id, m.channel_id, m.member_id, "tip", ctx.now, DealReads(shown="tip", steps=True),
            self._least_shown_tip,
        )  # fmt: skip
        if dealt is None:
            return private("The content pack has no tips yet.")
        tip = dealt[1]
        title = self.library.pack.step(tip.step).title
        return private(f"💡 **Tip · step {tip.step}: {title}**\n{tip.text}\n**This week:** {tip.action}")

    async def _path(self, ctx: Context, _: Command) -> list[Reply]:
        done = await self.store.steps_done(ctx.member.member_id)
        now_step = current_step(done)
        lines = ["**Your path to technical project manager**"]
        for s in self.library.pack.steps:
            mark = "✅" if s.step in done else ("▶️" if s.step == now_step else "⬜")
            lines.append(f"{mark} {s.step}. **{s.title}** — {s.summary}")
        lines.append(f"{len(done)} of 6 done. Mark one with /study path done <1-6>; /study tip helps with the next.")
        return private("\n".join(lines))

    async def _path_done(self, ctx: Context, command: Command) -> list[Reply]:
        n = int(command.args["step"])
        title = self.library.pack.step(n).title
        if not await self.store.mark_step(ctx.member.member_id, n, ctx.now):
            return private(f"Step {n} ({title}) was already marked done.")
        done = await self.store.steps_done(ctx.member.member_id)
        nxt = "" if len(done) == 6 else f" Next up: step {current_step(done)}."
        return private(f"✅ Step {n} — {title} — marked done ({len(done)} of 6).{nxt}")

    async def _progress(self, ctx: Context, command: Command) -> list[Reply]:
        target = ctx.member
        if "member" in command.args:
            found = await self.store.find_member(ctx.member.group_id, command.args["member"], ctx.member.channel_id)
            # A member who left the leaderboards is not looked up by others either (admins may).
            if (
                found is not None
                and found.member_id != ctx.member.member_id
                and not ctx.inbound.can_admin
                and (await self.store.member_stats(found.member_id)).hidden
            ):
                found = None
            if found is None:
                shown = command.args["member"][:40]
                return private(f'No member "{name(shown)}" here yet — they appear once they use studybot.')
            target = found
        text = await self.progress_text(ctx, target)
        if not self.progress_attachments:
            return private(text)

        async def chart() -> list[Reply]:
            # Drawn after the text has gone out: nobody waits for a picture to read their numbers.
            files = [f for make in self.progress_attachments if (f := await make(ctx, target)) is not None]
            title = f"📈 Progress chart — {name(target.display_name)}"
            return [Reply(title, attachments=tuple(files))] if files else []

        return [Reply(text, private=True, later=chart)]

    async def progress_text(self, ctx: Context, m: MemberRef) -> str:
        # Asked all at once: a store that can (SQLite) answers them in one round trip.
        stats, done, tallies, excused, extra_lines = await asyncio.gather(
            self.store.member_stats(m.member_id),
            self.store.steps_done(m.member_id),
            self.store.question_tallies(m.member_id),
            self._excused(m, ctx.now),
            asyncio.gather(*(extra(ctx, m) for extra in self.progress_extras)),
        )
        pack = await self.pack_for(m.group_id, [t.question_id for t in tallies])
        streak = current_streak(stats.streak, local_day(ctx.now, m.zone), excused)
        step = current_step(done)
        lines = [
            f"**Progress — {name(m.display_name)}**",
            f"Answered {stats.answered} · correct {stats.correct} ({percent(stats.correct, stats.answered)})"
            f" · points {stats.points}",
            f"🔥 Streak {streak} day{'s' if streak != 1 else ''} (best {stats.streak.best})"
            f" · 🧊 freezes {stats.streak.freezes}",
            f"Career path: {len(done)} of 6 steps done — now on step {step}: {pack.step(step).title}",
        ]
        topics = [t for t in mastery(pack, tallies) if t.answered]
        if topics:
            lines.append("Mastery by topic:")
            lines += [
                f"`{bar(t.accuracy)}` {t.topic}: {t.correct}/{t.answered} correct "
                f"({t.questions_seen}/{t.questions_total} questions seen)"
                for t in topics
            ]
        lines += [line for line in extra_lines if line]
        return "\n".join(lines)

    async def _excused(self, m: MemberRef, now: datetime) -> frozenset[date]:
        return await self.excused_days(m, now) if self.excused_days else frozenset()

    async def _leaderboard(self, ctx: Context, command: Command) -> list[Reply]:
        scope = command.args["scope"]
        if scope in ("hide", "show"):
            await self.store.set_leaderboard_hidden(ctx.member.member_id, scope == "hide")
            if scope == "hide":
                return private("You no longer appear on leaderboards. /study leaderboard show brings you back.")
            return private("You appear on leaderboards again.")
        week = week_start(ctx.now, ctx.member.group_tz) if scope == "week" else None
        rows = await self.store.leaderboard(ctx.member.group_id, week, 10)
        title = f"this week (since Monday {week:%d %b})" if week else "all time"
        if not rows:
            return private(f"**Leaderboard — {title}**\nNo points yet — be the first: /study quiz")
        lines = [f"**Leaderboard — {title}**"]
        medals = {1: "🥇", 2: "🥈", 3: "🥉"}
        for i, r in enumerate(rows, 1):
            you = " (you)" if r.member_id == ctx.member.member_id else ""
            lines.append(
                f"{medals.get(i, f'{i}.')} {name(r.display_name)}{you} — {r.points} pt{'s' if r.points != 1 else ''}"
            )
        lines.append("Points: correct first answers. Ties go to whoever got there first.")
        return [Reply("\n".join(lines), private=False)]

    async def _timezone(self, ctx: Context, command: Command) -> list[Reply]:
        if "zone" not in command.args:
            mine = ctx.member.tz
            zone_text = mine or f"{ctx.member.group_tz} (the group's; set yours with /study timezone <zone>)"
            return private(f"Your time zone: {zone_text}")
        try:
            tz = resolve_zone(command.args["zone"])
        except UnknownZone as e:
            return private(str(e))
        await self.store.set_member_tz(ctx.member.member_id, tz)
        moved = replace(ctx.member, tz=tz)
        for hook in self.zone_changed:
            await hook(moved, ctx.now)
        local = ctx.now.astimezone(zone(tz))
        return private(f"Your time zone is now {tz} (it is {local:%H:%M} there). Your streak days follow it.")

    async def _forget_me(self, ctx: Context, command: Command) -> list[Reply]:
        choice = command.args.get("confirm")
        if choice == "cancel":
            return private("Nothing was deleted.")
        if choice != "confirm":
            return private(
                "This deletes everything studybot stored about you in this group: answers, streak, "
                "reviews, career steps and your leaderboard place. It cannot be undone.\n"
                "Confirm with the button or /study forget-me confirm.",
                Button(actions.simple_action("forget-confirm"), "Delete my data", "danger"),
                Button(actions.simple_action("forget-cancel"), "Cancel", "secondary"),
            )
        removed = await self.store.forget_member(ctx.member.member_id)
        return private(f"Done — everything studybot stored about you in this group is gone ({removed} records).")


#: One line for a command family on the admin and operator help pages (`/study help <family>` has each form).
_FAMILIES = {
    "schedule": "this channel's daily posts: when, what, from which deck, threads",
    "deck": "the group's own decks: questions, tips and flashcards",
    "rewards": "roles for streaks and points (Discord)",
    "content": "the content pack every group shares",
    "suggestions": "members' suggestions: review, approve, deny, switch off",
}


def _grouped_lines(specs: list[Spec], platform: str, help_cmd: str) -> list[str]:
    """Help lines with each command family (``schedule show|set|…``) folded into one, so a page stays one
    message as commands are added; a family's forms are in ``/study help <family>``."""
    families: dict[str, list[Spec]] = {}
    for spec in specs:
        families.setdefault(spec.usage.split()[1], []).append(spec)
    lines = []
    for family, members in families.items():
        if len(members) == 1:
            lines.append(f"`{members[0].usage_on(platform)}` — {members[0].summary}")
            continue
        words = members[0].usage_on(platform).split()
        subs = "|".join(dict.fromkeys(m.usage.split()[2] for m in members if len(m.usage.split()) > 2))
        summary = _FAMILIES.get(family, members[0].summary)
        lines.append(f"`{words[0]} {family} {subs}` — {summary}; each in `{help_cmd} {family}`")
    return lines
