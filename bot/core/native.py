"""Feeling native on each platform (issue 18): the permission self-check, discussion threads, a role to
ping on daily posts, and role rewards. Pure core: it talks to the `NativeStore` and `NativeGateway`
ports; the adapters say what their platform allows and how to fix what it does not.

- **Self-check** (`/study check`, Discord ``/study-admin check``): what the bot can and cannot do in a
  channel, each missing ability with its fix. It also runs before a channel's first scheduled post; what
  it finds missing is told once to the admin who set the schedule (their next command's reply).
- **Threads** (``schedule set … thread on``): each daily post opens a discussion thread (Discord: a public
  thread on the message; Slack: the message's reply thread) and the reveal goes there. Without the
  permission the post goes out without a thread and the admin is told once. A thread's id is the
  message's id on both platforms, and opening it again is a no-op, so a restart never opens a second one.
- **Ping** (``schedule set … ping @role``, Discord): the one mention studybot ever makes, on daily posts.
- **Role rewards** (Discord ``/study-admin rewards …``): a role granted when a member's streak or points
  reach a threshold, checked up front (Manage Roles, role position), granted once, never removed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

from bot.core.commands import Command
from bot.core.markup import name
from bot.core.messages import Reply
from bot.core.ports import AnswerOutcome, ChatGateway, DeliveryError, Store
from bot.core.schedule import ChannelSchedule
from bot.core.service import Context, StudyService, private
from bot.core.shared import SharedQuery

log = logging.getLogger(__name__)

#: How long a group's rewards are kept in memory between answers (a change in this process clears it).
REWARDS_TTL = 60.0
#: Notice topics (one notice per channel and topic until the schedule is set again).
CHECK_TOPIC = "check"
THREAD_TOPIC = "threads"
#: Bound on the in-memory record of rewards already given (cleared when passed; the database decides).
MAX_GRANTED_CACHED = 100_000


@dataclass(frozen=True, slots=True)
class Ability:
    """One thing the bot may need in a channel. ``ok`` None: the platform cannot say in advance (DMs on
    Discord) or it does not apply there (roles on Slack); ``fix`` says what an admin should do."""

    key: str
    label: str
    ok: bool | None
    fix: str = ""


@dataclass(frozen=True, slots=True)
class ChannelAccess:
    """What the bot can do in one channel, as its platform reports it."""

    abilities: tuple[Ability, ...]

    def can(self, key: str) -> bool:
        """True unless the platform says the bot cannot (unknown counts as able)."""
        return all(a.ok is not False for a in self.abilities if a.key == key)

    @property
    def missing(self) -> list[Ability]:
        return [a for a in self.abilities if a.ok is False]

    def lines(self) -> list[str]:
        out = []
        for a in self.abilities:
            mark = "✅" if a.ok else ("❌" if a.ok is False else "➖")
            extra = f" — fix: {a.fix}" if a.ok is False and a.fix else (f" — {a.fix}" if a.ok is None and a.fix else "")
            out.append(f"{mark} {a.label}{extra}")
        return out


@dataclass(frozen=True, slots=True)
class ChannelOptions:
    """A channel's posting options besides its schedule rule."""

    thread: bool = False
    ping_role: str | None = None
    set_by: int | None = None  # the member (admin) who last set the schedule
    checked_at: datetime | None = None  # when the self-check ran before the first post


@dataclass(frozen=True, slots=True)
class Reward:
    """A role granted when a member's ``kind`` (streak days, points) reaches ``threshold``."""

    id: int
    group_id: int
    kind: str
    threshold: int
    role: str


@runtime_checkable
class NativeGateway(Protocol):
    """What a gateway offers beyond posting. Each raises `DeliveryError` when the platform refuses."""

    async def check_access(self, channel: str, group: str) -> ChannelAccess:
        """What the bot can and cannot do in ``channel`` of ``group``."""
        ...

    async def open_thread(self, channel: str, message_id: str, title: str, group: str) -> str:
        """Open a discussion thread on a posted message; returns the id to post into it. Opening it
        again returns the same id and opens nothing."""
        ...

    async def role_problem(self, group: str, role: str) -> str | None:
        """Why the bot cannot grant ``role`` in ``group`` (None: it can)."""
        ...

    async def grant_role(self, group: str, user: str, role: str) -> None:
        """Give ``user`` the role (a no-op if they have it)."""
        ...


class NativeStore(Protocol):
    """Channel options, thread ids, notices for admins and role rewards. Raises `StoreError`."""

    async def channel_options(self, channel_id: int) -> ChannelOptions: ...

    async def save_channel_options(
        self, channel_id: int, thread: bool | None, ping_role: str | None, set_by: int | None, now: datetime
    ) -> ChannelOptions:
        """Set the options given (None: keep; ``ping_role`` "" clears it), record who set the schedule, and
        re-arm the pre-post check and the channel's notices (the schedule was set again)."""
        ...

    async def claim_check(self, channel_id: int, now: datetime) -> bool:
        """True for exactly one caller: the first to check this channel since its schedule was set."""
        ...

    async def add_notice(self, channel_id: int, topic: str, member_id: int | None, text: str, now: datetime) -> bool:
        """Queue a notice for ``member_id`` (None: any admin of the group) unless one on this channel and
        topic was already queued; True when queued."""
        ...

    async def take_member_notices(self, group_id: int, member_id: int, now: datetime) -> list[str]:
        """The group's notices for this member (or for any admin), each returned once."""
        ...

    async def set_thread(self, post_id: int, thread_id: str) -> None: ...

    async def thread_of(self, post_id: int) -> str | None: ...

    async def set_reward(self, group_id: int, kind: str, threshold: int, role: str, now: datetime) -> None:
        """Create or replace the reward for (kind, threshold)."""
        ...

    async def clear_rewards(self, group_id: int, kind: str | None) -> int:
        """Remove the group's rewards (of one kind, or all); returns how many."""
        ...

    async def rewards(self, group_id: int) -> list[Reward]: ...

    async def claim_grant(self, reward_id: int, member_id: int, now: datetime) -> bool:
        """True exactly once per (reward, member): the caller then grants the role."""
        ...

    async def unclaim_grant(self, reward_id: int, member_id: int) -> None:
        """Undo a claim whose grant failed (so it is tried again at the next answer)."""
        ...


def _platform_gateway(gateways: Mapping[str, ChatGateway], platform: str) -> NativeGateway | None:
    gateway = gateways.get(platform)
    return gateway if isinstance(gateway, NativeGateway) else None


class ChannelFeatures:
    """The self-check, threads, pings and rewards, for `DailyPoster`, the schedule commands and answers.
    Its methods raise only `StoreError`: platform refusals are reported, not raised."""

    def __init__(
        self,
        store: NativeStore,
        members: Store,
        gateways: Mapping[str, ChatGateway],
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.members = members
        self.gateways = gateways
        self._monotonic = monotonic
        self._rewards: dict[int, SharedQuery[list[Reward]]] = {}
        #: (reward, member) pairs known to be given already: later answers do not ask the database again.
        self._granted: set[tuple[int, int]] = set()

    # ------------------------------------------------------------------ registration

    def install(self, service: StudyService) -> None:
        """Register `check` and `rewards …` and the reward check after each answer."""
        service.register("check", self.check)
        service.register("rewards.show", self.rewards_show)
        service.register("rewards.set", self.rewards_set)
        service.register("rewards.clear", self.rewards_clear)
        service.after_answer.append(self.after_answer)
        service.before_commit.append(self.look_up_rewards)

    # ------------------------------------------------------------------ self-check

    async def access(self, platform: str, channel: str, group: str) -> ChannelAccess | None:
        """The platform's answer for a channel; None when its gateway cannot tell (or is not running)."""
        gateway = _platform_gateway(self.gateways, platform)
        if gateway is None:
            return None
        try:
            return await gateway.check_access(channel, group)
        except DeliveryError as e:
            log.warning("self-check of %s channel %s failed: %s", platform, channel, e)
            return None

    async def check(self, ctx: Context, _: Command) -> list[Reply]:
        i = ctx.inbound
        if _platform_gateway(self.gateways, i.platform) is None:
            return private("This front end has no permissions to check: it can do everything it needs here.")
        found = await self.access(i.platform, i.channel, i.group)
        if found is None:
            return private(
                "I could not ask the platform about this channel just now (see the log); try again in a minute."
            )
        lines = [f"**What studybot can do in {name(i.channel_name or i.channel)}**", *found.lines()]
        if not found.missing:
            lines.append("Everything studybot needs here is in place.")
        return private("\n".join(lines))

    async def schedule_saved(self, ctx: Context, args: Mapping[str, str]) -> list[str]:
        """After ``schedule set``: save ``thread``/``ping`` and who set it; lines for the reply (options on,
        and anything the bot is missing here right now)."""
        thread = {"on": True, "off": False}.get(args.get("thread", ""))
        ping = args.get("ping")
        lines = []
        if ping is not None and ctx.inbound.platform != "discord":
            lines.append("(ping mentions a Discord role; it was left out here.)")
            ping = None
        role = "" if ping == "off" else ping
        options = await self.store.save_channel_options(
            ctx.member.channel_id, thread, role, ctx.member.member_id, ctx.now
        )
        if options.thread:
            lines.append("🧵 Each post opens a discussion thread; the answer is revealed there.")
        if options.ping_role:
            lines.append(f"🔔 Each post mentions <@&{options.ping_role}> (the only mention studybot makes).")
        found = await self.access(ctx.inbound.platform, ctx.inbound.channel, ctx.inbound.group)
        if found is not None and found.missing:
            lines.append("⚠️ Before the first post, studybot is missing here:")
            lines += [line for line in found.lines() if line.startswith("❌")]
        return lines

    async def options_text(self, channel_id: int) -> list[str]:
        o = await self.store.channel_options(channel_id)
        out = []
        if o.thread:
            out.append("🧵 Discussion thread on each post.")
        if o.ping_role:
            out.append(f"🔔 Mentions <@&{o.ping_role}> on each post.")
        return out

    # ------------------------------------------------------------------ before and after a daily post

    async def before_post(self, s: ChannelSchedule, now: datetime) -> ChannelOptions:
        """The options for a post in ``s``'s channel. The first time after a schedule was set the channel
        is checked, and what is missing goes to the admin who set it (once); a thread the bot may not open
        is left out (and the admin told once)."""
        options = await self.store.channel_options(s.channel_id)
        access: ChannelAccess | None = None
        if await self.store.claim_check(s.channel_id, now):
            access = await self.access(s.platform, s.channel, s.group)
            if access is not None and access.missing:
                where = name(s.channel_name or s.channel)
                text = "\n".join(
                    [f"🔎 Before the first daily post in {where}, studybot checked what it may do there:"]
                    + [line for line in access.lines() if line.startswith("❌")]
                )
                await self.store.add_notice(s.channel_id, CHECK_TOPIC, options.set_by, text, now)
        return await self._thread_allowed(
            s.platform, s.channel, s.group, s.channel_id, s.channel_name, options, access, now
        )

    async def post_now_options(
        self, platform: str, channel: str, group: str, channel_id: int, now: datetime
    ) -> ChannelOptions:
        """The options for an on-demand post (``schedule post-now``): as for a scheduled one, without the
        first-post check."""
        options = await self.store.channel_options(channel_id)
        return await self._thread_allowed(platform, channel, group, channel_id, "", options, None, now)

    async def _thread_allowed(
        self,
        platform: str,
        channel: str,
        group: str,
        channel_id: int,
        channel_name: str,
        options: ChannelOptions,
        access: ChannelAccess | None,
        now: datetime,
    ) -> ChannelOptions:
        """``options`` without the thread when the platform says the bot may not open one (the admin who set
        the schedule is told, once)."""
        if not options.thread:
            return options
        if access is None:
            access = await self.access(platform, channel, group)
        if access is None or access.can("threads"):
            return options
        fix = next((a.fix for a in access.abilities if a.key == "threads"), "")
        await self.store.add_notice(
            channel_id,
            THREAD_TOPIC,
            options.set_by,
            f"🧵 Daily posts in {name(channel_name or channel)} go out without a discussion thread: studybot may "
            f"not create threads there. {fix}".strip(),
            now,
        )
        return ChannelOptions(False, options.ping_role, options.set_by, options.checked_at)

    async def open_thread(
        self,
        platform: str,
        channel: str,
        group: str,
        channel_id: int,
        post_id: int,
        message_id: str,
        title: str,
        now: datetime,
    ) -> None:
        """Open the post's discussion thread and record it (no-op when the platform has it already). A refusal
        leaves the post without a thread and tells the admin once; nothing is raised."""
        gateway = _platform_gateway(self.gateways, platform)
        if gateway is None:
            return
        try:
            thread = await gateway.open_thread(channel, message_id, title, group)
        except DeliveryError as e:
            log.warning("could not open a thread on post %s in channel %s: %s", post_id, channel, e)
            options = await self.store.channel_options(channel_id)
            await self.store.add_notice(
                channel_id,
                THREAD_TOPIC,
                options.set_by,
                f"🧵 A daily post went out without its discussion thread: {e}. Run /study check in that channel.",
                now,
            )
            return
        await self.store.set_thread(post_id, thread)

    async def thread_of(self, post_id: int) -> str | None:
        return await self.store.thread_of(post_id)

    async def notices(self, ctx: Context) -> list[Reply]:
        found = await self.store.take_member_notices(ctx.member.group_id, ctx.member.member_id, ctx.now)
        return [Reply(text, private=True) for text in found]

    # ------------------------------------------------------------------ rewards

    async def _group_rewards(self, group_id: int) -> list[Reward]:
        return await self._rewards_query(group_id).result()

    def _rewards_query(self, group_id: int) -> SharedQuery[list[Reward]]:
        cached = self._rewards.get(group_id)
        now = self._monotonic()
        if cached is None or now - cached.at > REWARDS_TTL or cached.failed():
            # One query per group, not one per answer of a burst that finds the cache cold; changes drop
            # the entry (a query under way then serves only those already waiting for it).
            cached = self._rewards[group_id] = SharedQuery(now, self.store.rewards(group_id))
        return cached

    def look_up_rewards(self, ctx: Context) -> None:
        """As an answer goes to the store: start the group's rewards look-up if it is not cached, so that
        it runs beside the group commit and `after_answer` finds it done (a burst's first clicks do not
        wait for it after their commit)."""
        if ctx.inbound.platform == "discord":
            self._rewards_query(ctx.member.group_id)

    async def rewards_show(self, ctx: Context, _: Command) -> list[Reply]:
        found = await self.store.rewards(ctx.member.group_id)
        if not found:
            return private(
                "No role rewards yet. Add one, e.g. `/study-admin rewards set streak 7 @role` "
                "or `/study-admin rewards set points 50 @role`."
            )
        lines = ["**Role rewards**"]
        for r in found:
            what = f"a {r.threshold}-day streak" if r.kind == "streak" else f"{r.threshold} points"
            lines.append(f"• <@&{r.role}> at {what}")
        lines.append("Roles once given stay: studybot never takes a role away.")
        return private("\n".join(lines))

    async def rewards_set(self, ctx: Context, command: Command) -> list[Reply]:
        if ctx.inbound.platform != "discord":
            return private("Role rewards give Discord roles, so they are set up on Discord (/study-admin rewards).")
        gateway = _platform_gateway(self.gateways, ctx.inbound.platform)
        role = command.args["role"]
        problem = (
            await gateway.role_problem(ctx.inbound.group, role) if gateway else "the Discord front end is not running"
        )
        if problem:
            return private(f"I cannot give <@&{role}>: {problem}. Nothing was saved.")
        kind, threshold = command.args["kind"], int(command.args["threshold"])
        await self.store.set_reward(ctx.member.group_id, kind, threshold, role, ctx.now)
        self._rewards.pop(ctx.member.group_id, None)
        self._granted.clear()
        what = f"reach a {threshold}-day streak" if kind == "streak" else f"reach {threshold} points"
        return private(f"🏅 Members who {what} get <@&{role}>. Roles once given stay.")

    async def rewards_clear(self, ctx: Context, command: Command) -> list[Reply]:
        kind = command.args.get("kind")
        n = await self.store.clear_rewards(ctx.member.group_id, kind)
        self._rewards.pop(ctx.member.group_id, None)
        self._granted.clear()  # a reward's id may be used again after it is gone
        if not n:
            return private("There were no role rewards to clear.")
        return private(
            f"Cleared {n} role reward{'s' if n != 1 else ''}. Members keep the roles they were given "
            "(studybot never takes a role away; remove them by hand if you want)."
        )

    async def after_answer(self, ctx: Context, outcome: AnswerOutcome) -> list[Reply]:
        """Grant every reward the member has reached (once each); a line for each role given."""
        if not outcome.recorded or ctx.inbound.platform != "discord":
            return []
        member = ctx.member.member_id
        # Rewards this member is not known to hold: most answers of a member who has them all end here.
        pending = [r for r in await self._group_rewards(ctx.member.group_id) if (r.id, member) not in self._granted]
        if not pending:
            return []
        gateway = _platform_gateway(self.gateways, ctx.inbound.platform)
        if gateway is None:
            return []
        points = (await self.members.member_stats(member)).points if any(r.kind == "points" for r in pending) else 0
        reached = [r for r in pending if (outcome.streak.streak if r.kind == "streak" else points) >= r.threshold]
        lines: list[str] = []
        for r in reached:
            pair = (r.id, member)
            if len(self._granted) > MAX_GRANTED_CACHED:
                self._granted.clear()
            if not await self.store.claim_grant(r.id, member, ctx.now):
                self._granted.add(pair)
                continue
            try:
                await gateway.grant_role(ctx.inbound.group, ctx.inbound.user, r.role)
            except DeliveryError as e:
                await self.store.unclaim_grant(r.id, member)
                log.warning("could not grant role %s to %s: %s", r.role, ctx.inbound.user, e)
                await self.store.add_notice(
                    ctx.member.channel_id,
                    f"reward-{r.id}",
                    None,
                    f"🏅 studybot could not give <@&{r.role}> to a member who earned it ({e}). "
                    "Check Manage Roles and that studybot's role is above it (Server Settings → Roles).",
                    ctx.now,
                )
                continue
            self._granted.add(pair)
            what = f"a {r.threshold}-day streak" if r.kind == "streak" else f"{r.threshold} points"
            lines.append(f"🏅 You reached {what} and got the <@&{r.role}> role!")
        return [Reply("\n".join(lines), private=True)] if lines else []
