"""The daily-post engine: what is due, claim it, post it once, reveal the previous answer.

Platform-free: it talks to `ScheduleStore`, `Store` and `ChatGateway` ports only. Timers live in
`bot.scheduling`, which calls `DailyPoster.run_due` when something is due (and tests call it directly
with a fake clock).

Exactly-once: before sending, an occurrence is claimed by inserting its (channel, UTC instant) row;
only the claimer sends, so two loops on one database post once. The post's row (whose id the answer
buttons carry) is made under the claim before the first send, and the platform's message id is recorded
after it. A retryable failure (429/5xx) is retried with backoff until the catch-up window closes; a
forbidden channel pauses its schedule and queues a notice for the next admin.

The window between the platform taking a post and its message id being written (a crash, a 500 on a
message that was in fact created, a lost answer) is closed with the platforms' own means:

* every post carries a key derived from its claimed row (`post_key`): Discord drops a repeat with the same
  message nonce for a few minutes, Slack stores it in the message's metadata;
* before a claimed post is sent again (a retry, a claim abandoned by a dead process and taken over after
  `CLAIM_LEASE`), and after any failure that may have created the message, the channel's recent messages
  are searched for it (`ChatGateway.find`): found means recorded, not sent again. Answer reveals carry their
  own key and are looked for the same way after such a failure and before they are sent again.

`stop()` (on SIGTERM) lets the sends in flight finish and be recorded, and starts no new ones: what was
not begun is released for the next run instead of waiting out the lease.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from bot.core.content import ContentLibrary, Question, Tip
from bot.core.decks import TPM
from bot.core.messages import Post
from bot.core.ports import ChatGateway, Clock, DeliveryError, PostRecord, ScheduleStore, Store
from bot.core.posting import (
    Pick,
    interview_post_text,
    pick_channel_item,
    practise_button,
    reveal_text,
    tip_post_text,
)
from bot.core.schedule import MAX_LOOKBACK, ChannelSchedule, Delivery, next_occurrence, occurrences
from bot.core.service import answer_buttons, question_text

if TYPE_CHECKING:
    from bot.core.deck_commands import Catalog
    from bot.core.native import ChannelFeatures, ChannelOptions

log = logging.getLogger(__name__)

#: A claim older than this without an outcome belongs to a process that died mid-send.
CLAIM_LEASE = timedelta(minutes=10)
#: Search a channel for a post from this long before its row was made (clocks differ a little).
LOOK_BACK = timedelta(minutes=2)
FIRST_BACKOFF = timedelta(seconds=30)
MAX_BACKOFF = timedelta(minutes=30)
MAX_ATTEMPTS = 12
#: Channels served at once in one run (platform calls overlap; the database still serialises).
CONCURRENCY = 8
HEADING = "Question of the day"


#: The title of a post's discussion thread, by the post's kind.
_THREAD_TITLES = {"question": HEADING, "tip": "Tip", "interview": "Interview question"}


class NothingToPost(Exception):
    """The content pack has nothing of the kind asked for."""


@dataclass
class RunReport:
    """What one `run_due` did (for logs and tests)."""

    sent: list[tuple[int, datetime]] = field(default_factory=list)
    missed: list[tuple[int, datetime]] = field(default_factory=list)
    skipped: list[tuple[int, datetime]] = field(default_factory=list)
    failed: list[tuple[int, datetime]] = field(default_factory=list)
    revealed: list[int] = field(default_factory=list)


def post_key(post_id: int, kind: str = "post") -> str:
    """The idempotency key of a channel post (or of its reveal): the same on every attempt."""
    return f"studybot-{kind}-{post_id}"[:25]


def backoff(attempts: int, retry_after: float | None) -> timedelta:
    """Wait before attempt ``attempts + 1``: the platform's hint if larger, doubling from 30 s, capped."""
    wait: timedelta = min(FIRST_BACKOFF * (2 ** max(attempts - 1, 0)), MAX_BACKOFF)
    if retry_after is not None:
        wait = max(wait, timedelta(seconds=min(retry_after, MAX_BACKOFF.total_seconds())))
    return wait


class DailyPoster:
    """Posts scheduled items through the gateways. ``gateways`` maps platform → gateway and is read at
    each run (front ends register as they start); schedules of platforms without one wait untouched.
    Its methods raise only `StoreError` (delivery problems are recorded, not raised)."""

    def __init__(
        self,
        schedules: ScheduleStore,
        store: Store,
        library: ContentLibrary,
        gateways: Mapping[str, ChatGateway],
        clock: Clock,
        *,
        catchup: timedelta = timedelta(hours=6),
        name: str | None = None,
        rng: random.Random | None = None,
        features: ChannelFeatures | None = None,
        catalog: Catalog | None = None,
    ) -> None:
        self.schedules = schedules
        #: Threads, the role ping and the check before a channel's first post (`bot.core.native`).
        self.features = features
        #: The groups' own decks (a channel posts from its deck); without it, the shipped pack only.
        self.catalog = catalog
        self.store = store
        self.library = library
        self.gateways = gateways
        self.clock = clock
        self.catchup = catchup
        self.name = name or f"poster-{uuid.uuid4().hex[:8]}"
        self.rng = rng or random.Random()
        #: Set by `stop`: sends in flight finish, no new ones start.
        self.stopping = False
        #: Posts whose reveal failed in a way that may have made it (this process's memory): looked for first.
        self._reveals_maybe_out: set[int] = set()

    def stop(self) -> None:
        """Start no new sends (the process is stopping); those in flight finish and are recorded."""
        self.stopping = True

    # ------------------------------------------------------------------ the unit of work

    async def run_due(self, now: datetime | None = None) -> RunReport:
        """Handle everything due at ``now``: new occurrences (claim, post; older ones missed/skipped),
        retries, and timed reveals."""
        now = now or self.clock.now()
        report = RunReport()
        scheds = {s.channel_id: s for s in await self.schedules.schedules()}
        # Channels are independent (each claim is per channel), so sends overlap up to `CONCURRENCY`:
        # a slow platform call in one channel does not hold up the others.
        gate = asyncio.Semaphore(CONCURRENCY)

        async def one(s: ChannelSchedule) -> None:
            async with gate:
                if not self.stopping:  # unclaimed occurrences wait for the next run (catch-up)
                    await self._new_occurrences(s, now, report)

        await asyncio.gather(*(one(s) for s in scheds.values() if not s.paused and s.platform in self.gateways))
        if self.stopping:
            return report
        for d in await self.schedules.reclaim_due(now, self.name, now - CLAIM_LEASE):
            if self.stopping:  # claimed but not begun: free it for the next run at once
                await self.schedules.mark_failed(d.id, "the bot stopped before sending; retrying", now)
                continue
            owner = scheds.get(d.channel_id)
            if owner is None or owner.paused or owner.platform not in self.gateways:
                await self.schedules.mark_failed(d.id, "schedule removed, paused or front end not running", None)
                report.failed.append((d.channel_id, d.scheduled_for))
                continue
            if now - d.scheduled_for > max(self.catchup, FIRST_BACKOFF):
                await self.schedules.mark_failed(d.id, f"gave up after {d.attempts} attempts: {d.error}", None)
                report.failed.append((d.channel_id, d.scheduled_for))
                continue
            await self._deliver(owner, d, now, report)
        for s in scheds.values():
            if s.rule.reveal_hours and not s.paused and s.platform in self.gateways and not self.stopping:
                for post in await self.schedules.unrevealed_questions(
                    s.channel_id, now - timedelta(hours=s.rule.reveal_hours)
                ):
                    if await self._reveal(s.platform, s.channel, post, now, s.group):
                        report.revealed.append(post.id)
        return report

    async def _new_occurrences(self, s: ChannelSchedule, now: datetime, report: RunReport) -> None:
        since = max(s.active_since, now - MAX_LOOKBACK)
        if s.last_scheduled is not None:
            since = max(since, s.last_scheduled)
        due = list(occurrences(s.rule, since, now))
        if not due:
            return
        unsent: list[tuple[datetime, str]] = []
        to_post: datetime | None = None
        for occ in reversed(due):  # newest first: only the newest within the window is posted
            if s.skip_until is not None and occ.at <= s.skip_until:
                unsent.append((occ.at, "skipped"))
                report.skipped.append((s.channel_id, occ.at))
            elif to_post is None and now - occ.at <= self.catchup:
                to_post = occ.at
            else:
                unsent.append((occ.at, "missed"))
                report.missed.append((s.channel_id, occ.at))
        if unsent:
            await self.schedules.record_unsent(s.channel_id, unsent, now)
            missed = [at for at, st in unsent if st == "missed"]
            if missed:
                log.warning(
                    "channel %s: %d scheduled post(s) missed (latest %s)", s.channel_id, len(missed), max(missed)
                )
        if to_post is not None:
            claimed = await self.schedules.claim(s.channel_id, to_post, self.name, now)
            if claimed is not None:
                await self._deliver(s, claimed, now, report)

    async def _deliver(self, s: ChannelSchedule, d: Delivery, now: datetime, report: RunReport) -> None:
        gateway = self.gateways[s.platform]
        try:
            if d.post_id is None:
                pick = await self._pick(s.group_id, s.channel_id, s.rule.kind)
                post = await self.schedules.create_delivery_post(
                    d.id, s.group_id, s.channel_id, pick.kind, pick.item_id, now
                )
            else:
                found = await self.store.get_post(d.post_id)
                if found is None:
                    raise NothingToPost("the prepared post was deleted")
                post = found
            options = await self.features.before_post(s, now) if self.features is not None else None
            # A post prepared by an earlier attempt may have gone out (a crash or a lost answer): look first.
            message_id = await self._send(
                s.platform, s.channel, post, gateway, now, s.group, may_exist=d.post_id is not None, options=options
            )
        except NothingToPost as e:
            await self.schedules.mark_failed(d.id, str(e), None)
            report.failed.append((s.channel_id, d.scheduled_for))
            log.warning("channel %s: nothing posted for %s: %s", s.channel_id, d.scheduled_for.isoformat(), e)
            if self.catalog is not None:  # never a silent skip: the next admin hears of it
                await self.catalog.decks.add_deck_notice(s.group_id, s.channel_id, str(e), now)
        except DeliveryError as e:
            await self._failed(s, d, e, now)
            report.failed.append((s.channel_id, d.scheduled_for))
        else:
            await self.schedules.mark_sent(d.id, post.id, message_id, now)
            report.sent.append((s.channel_id, d.scheduled_for))
            log.info("posted %s in channel %s for %s", post.kind, s.channel_id, d.scheduled_for.isoformat())

    async def _failed(self, s: ChannelSchedule, d: Delivery, e: DeliveryError, now: datetime) -> None:
        attempts = d.attempts + 1
        if e.forbidden:
            reason = f"the bot lost access to this channel ({e})"
            await self.schedules.mark_failed(d.id, str(e), None)
            await self.schedules.set_paused(s.channel_id, True, reason, now)
            log.warning("channel %s: paused the schedule: %s", s.channel_id, reason)
        elif e.retryable and attempts < MAX_ATTEMPTS:
            wait = backoff(attempts, e.retry_after)
            await self.schedules.mark_failed(d.id, str(e), now + wait)
            log.warning("channel %s: post failed (%s); retry %d in %s", s.channel_id, e, attempts, wait)
        else:
            await self.schedules.mark_failed(d.id, str(e), None)
            log.error("channel %s: post failed for good after %d attempt(s): %s", s.channel_id, attempts, e)

    async def _pick(self, group_id: int, channel_id: int, kind: str) -> Pick:
        history = await self.schedules.channel_history(channel_id)
        deck, pack = TPM, self.library.pack
        if self.catalog is not None:
            deck, found = await self.catalog.channel_pool(group_id, channel_id)
            if found is None:
                raise NothingToPost(f"the deck {deck} no longer exists")
            pack = found
        pick = pick_channel_item(pack, history, kind, self.rng)
        if pick is None:
            what = "items" if kind == "mix" else kind + "s"
            if deck == TPM:
                raise NothingToPost(f"the content pack has no {what} to post")
            raise NothingToPost(f"the deck {deck} has no {what} to post")
        return pick

    async def _question(self, group_id: int, ref: str) -> Question | None:
        if self.catalog is None:
            return self.library.pack.question(ref)
        return await self.catalog.question(group_id, ref)

    async def _send(
        self,
        platform: str,
        channel: str,
        post: PostRecord,
        gateway: ChatGateway,
        now: datetime,
        group: str,
        *,
        may_exist: bool,
        options: ChannelOptions | None = None,
    ) -> str:
        """Reveal earlier questions, then post ``post`` once (`_post_once`); returns the platform's message id.
        ``group`` is the platform's group id (see `Post.group`). ``options``: the role to ping, and whether to
        open a discussion thread on the post (idempotent: a thread's id is its message's)."""
        message_id = await self._send_item(platform, channel, post, gateway, now, group, may_exist, options)
        if options is not None and options.thread and self.features is not None:
            title = f"{_THREAD_TITLES.get(post.kind, 'Tip')} · {post.created_at:%d %b}"
            await self.features.open_thread(platform, channel, group, post.channel_id, post.id, message_id, title, now)
        return message_id

    async def _send_item(
        self,
        platform: str,
        channel: str,
        post: PostRecord,
        gateway: ChatGateway,
        now: datetime,
        group: str,
        may_exist: bool,
        options: ChannelOptions | None,
    ) -> str:
        """The reveals before it, then the post itself (see `_send`).

        Raises `DeliveryError`, `NothingToPost` (the item left the pack)."""
        for old in await self.schedules.unrevealed_questions(post.channel_id, now):
            if old.id < post.id:
                await self._reveal(platform, channel, old, now, group)
        pack = self.library.pack
        item: Question | Tip | None
        if post.kind == "question":
            item = await self._question(post.group_id, post.item_id)
            if item is None:
                raise NothingToPost(f"question {post.item_id} is no longer in the content pack")
            out = Post(
                channel,
                question_text(item, heading=HEADING),
                answer_buttons(post.id),
                key=post_key(post.id),
                group=group,
                mention_role=options.ping_role if options else None,
            )
        elif post.kind == "interview":
            prompt = next((p for p in pack.interview if p.id == post.item_id), None)
            if prompt is None:
                raise NothingToPost(f"interview prompt {post.item_id} is no longer in the content pack")
            buttons = (practise_button(post.id),)
            out = Post(
                channel,
                interview_post_text(prompt),
                buttons,
                key=post_key(post.id),
                group=group,
                mention_role=options.ping_role if options else None,
            )
        else:
            item = await self.catalog.tip(post.group_id, post.item_id) if self.catalog else pack.tip(post.item_id)
            if item is None:
                raise NothingToPost(f"tip {post.item_id} is no longer in the content pack")
            out = Post(
                channel,
                tip_post_text(pack, item),
                key=post_key(post.id),
                group=group,
                mention_role=options.ping_role if options else None,
            )
        return await self._post_once(gateway, out, post.created_at - LOOK_BACK, may_exist=may_exist)

    async def _post_once(self, gateway: ChatGateway, out: Post, since: datetime, *, may_exist: bool) -> str:
        """Post ``out`` unless it is already in the channel; returns its message id. ``may_exist``: an earlier
        attempt may have reached the platform, so look before sending. A failure after which the message may
        exist anyway (5xx, lost connection) is checked the same way: found counts as sent. Raises `DeliveryError`."""
        if may_exist:
            found = await self._look(gateway, out, since)
            if found is not None:
                log.info(
                    "post %s was already in channel %s (message %s): recorded, not sent again",
                    out.key,
                    out.channel,
                    found,
                )
                return found
        try:
            return (await gateway.post(out)).message_id
        except DeliveryError as e:
            if not e.maybe_sent:
                raise
            found = await self._look(gateway, out, since)
            if found is None:
                raise
            log.info("post %s: the platform answered %s, but the message is there (%s): recorded", out.key, e, found)
            return found

    @staticmethod
    async def _look(gateway: ChatGateway, out: Post, since: datetime) -> str | None:
        try:
            return await gateway.find(out, since)
        except DeliveryError as e:
            # Without the history permission/scope only the platform's own dedup (Discord's nonce) is left.
            log.warning(
                "could not look for post %s in channel %s (%s); sending it may repeat it", out.key, out.channel, e
            )
            return None

    async def _reveal(self, platform: str, channel: str, post: PostRecord, now: datetime, group: str) -> bool:
        """Reveal one channel question once (across instances). Failures are logged and retried later."""
        if not await self.schedules.claim_reveal(post.id, now):
            return False
        q = await self._question(post.group_id, post.item_id)
        gateway = self.gateways.get(platform)
        if q is None or gateway is None:
            return False
        counts = await self.store.choice_counts(post.id)
        # In the post's discussion thread when it has one, so the channel stays tidy.
        thread = await self.features.thread_of(post.id) if self.features is not None else None
        out = Post(channel, reveal_text(q, counts), key=post_key(post.id, "reveal"), group=group, thread=thread)
        try:  # like a post: a failure that may have made the message is looked up, and so is a re-send after it
            await self._post_once(
                gateway, out, post.created_at - LOOK_BACK, may_exist=post.id in self._reveals_maybe_out
            )
        except DeliveryError as e:
            if e.maybe_sent:
                self._reveals_maybe_out.add(post.id)
            await self.schedules.unclaim_reveal(post.id)
            log.warning("reveal of post %s failed: %s", post.id, e)
            return False
        self._reveals_maybe_out.discard(post.id)
        if post.message_id:
            try:  # take the buttons off the question: the answer is out
                revealed = question_text(q, heading=HEADING) + "\n(answer revealed)"
                await gateway.edit(channel, post.message_id, revealed, group=group)
            except DeliveryError as e:
                log.info("could not remove the buttons of post %s: %s", post.id, e)
        return True

    # ------------------------------------------------------------------ on demand

    async def post_now(
        self, platform: str, channel: str, group_id: int, channel_id: int, kind: str, *, group: str = ""
    ) -> str:
        """Post the channel's next item at once (no schedule needed). Returns the kind posted. ``group`` is
        the platform's group id (see `Post.group`).

        Raises `NothingToPost`, `DeliveryError` (also when no front end for ``platform`` runs)."""
        gateway = self.gateways.get(platform)
        if gateway is None:
            raise DeliveryError(f"the {platform} front end is not running", retryable=False)
        now = self.clock.now()
        pick = await self._pick(group_id, channel_id, kind)
        # The buttons carry the post's id, so the row comes first; it stays invisible (no reveal, no
        # count) until the message id is recorded, and a failed send deletes it.
        post = await self.store.create_post(group_id, channel_id, None, pick.kind, pick.item_id, now)
        options = (
            await self.features.post_now_options(platform, channel, group, channel_id, now) if self.features else None
        )
        try:
            message_id = await self._send(
                platform, channel, post, gateway, now, group, may_exist=False, options=options
            )
        except BaseException:
            await asyncio.shield(self.store.discard_post(post.id))
            raise
        await self.store.set_post_message(post.id, message_id)
        return pick.kind

    @staticmethod
    def explain(e: DeliveryError, platform: str) -> str:
        """What an admin should read when an on-demand post failed: what happened and what to do."""
        where = platform.capitalize()
        if e.forbidden:
            return (
                f"I could not post here: {where} says the bot has no access to this channel ({e}). "
                "Check the bot's permissions in this channel."
            )
        if e.rate_limited:
            wait = f"{max(1, math.ceil(e.retry_after))} s" if e.retry_after is not None else "a minute"
            return f"{where} is rate-limiting the bot right now ({e}); nothing was posted. Try again in {wait}."
        if e.retryable:
            return f"{where} had a problem on its side ({e}); nothing was posted. Try again in a minute."
        return f"I could not post here: {e}."

    async def next_wakeup(self, now: datetime | None = None) -> datetime | None:
        """The earliest instant at which `run_due` has something to do (None: nothing scheduled)."""
        now = now or self.clock.now()
        candidates: list[datetime] = []
        for s in await self.schedules.schedules():
            if s.paused or s.platform not in self.gateways:
                continue
            since = max(s.active_since, s.last_scheduled or s.active_since)
            candidates.append(next_occurrence(s.rule, max(since, now - MAX_LOOKBACK)).at)
            if s.rule.reveal_hours:
                pending = await self.schedules.unrevealed_questions(s.channel_id, now)
                candidates += [p.created_at + timedelta(hours=s.rule.reveal_hours) for p in pending]
        retry = await self.schedules.next_retry_at()
        if retry is not None:
            candidates.append(retry)
        return min(candidates) if candidates else None
