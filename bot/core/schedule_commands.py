"""`/study schedule …` handlers (admin): show, preview, set, pause, resume, skip, post-now.

Registered on `StudyService` with `install_schedule_commands`. Changes take effect at once: after
each change the handlers tell the `ScheduleRuntime` (the timer wrapper in `bot.scheduling`), which
re-arms its wake-up from the database.
"""

from __future__ import annotations

import logging
from datetime import datetime, time, timedelta
from typing import TYPE_CHECKING, Protocol

from bot.core.commands import Command, UsageError, format_days, parse_days
from bot.core.decks import ALL, TPM
from bot.core.delivery import DailyPoster, NothingToPost
from bot.core.markup import name
from bot.core.messages import Reply
from bot.core.ports import DeliveryError, ScheduleStore
from bot.core.schedule import ChannelSchedule, ScheduleRule, next_occurrence, preview
from bot.core.service import Context, StudyService, private
from bot.core.timezones import UnknownZone, resolve_zone, zone

if TYPE_CHECKING:
    from bot.core.native import ChannelFeatures

log = logging.getLogger(__name__)

EXAMPLE = "/study schedule set 09:00 tz Europe/Berlin days mon-fri kind mix"
STATUS_ICON = {"sent": "✅", "missed": "⚠️ missed", "failed": "❌ failed", "skipped": "⏭️ skipped", "claimed": "⏳"}


class ScheduleRuntime(Protocol):
    """What the handlers need from the running scheduler (never an APScheduler object)."""

    async def reschedule(self, channel_id: int | None = None) -> None:
        """Re-read the schedules and re-arm the next wake-up."""
        ...


def _when(at: datetime, tz: str, now: datetime) -> str:
    local = at.astimezone(zone(tz))
    delta = at - now
    if delta < timedelta(0):
        rel = ""
    elif delta < timedelta(hours=1):
        rel = f" (in {max(1, int(delta.total_seconds() // 60))} min)"
    elif delta < timedelta(days=2):
        rel = f" (in {delta.total_seconds() / 3600:.0f} h)"
    else:
        rel = f" (in {delta.days} days)"
    return f"{local:%a %d %b %H:%M} {tz}{rel}"


def _kind_text(kind: str) -> str:
    return {
        "question": "a quiz question",
        "tip": "a career-step tip",
        "interview": "an interview question to practise",
        "mix": "a question, tip or interview question, in turn",
    }[kind]


def _rule_text(rule: ScheduleRule) -> str:
    reveal = (
        f", answers revealed after {rule.reveal_hours} h"
        if rule.reveal_hours
        else ", answers revealed at the next post"
    )
    return f"{rule.local_time:%H:%M} {rule.tz}, {format_days(rule.days)}: {_kind_text(rule.kind)}{reveal}"


class ScheduleCommands:
    """The schedule handlers. Raise nothing for bad input: they reply with a clear private message."""

    def __init__(
        self,
        poster: DailyPoster,
        schedules: ScheduleStore,
        runtime: ScheduleRuntime | None = None,
        features: ChannelFeatures | None = None,
    ) -> None:
        self.poster = poster
        self.schedules = schedules
        self.runtime = runtime
        #: Threads, pings and the permission self-check (`bot.core.native`), when wired.
        self.features = features

    def install(self, service: StudyService) -> None:
        service.register("schedule.show", self.show)
        service.register("schedule.preview", self.preview)
        service.register("schedule.set", self.set)
        service.register("schedule.pause", self.pause)
        service.register("schedule.resume", self.resume)
        service.register("schedule.skip", self.skip)
        service.register("schedule.post-now", self.post_now)
        service.admin_notices = self.notices

    async def _changed(self, channel_id: int) -> None:
        if self.runtime is not None:
            await self.runtime.reschedule(channel_id)

    def _next_at(self, s: ChannelSchedule, now: datetime) -> datetime:
        after = max(now, s.skip_until or now)
        return next_occurrence(s.rule, after).at

    async def show(self, ctx: Context, _: Command) -> list[Reply]:
        s = await self.schedules.schedule_for(ctx.member.channel_id)
        if s is None:
            return private(f"No daily posts in this channel yet. Set them up, e.g.:\n`{EXAMPLE}`")
        lines = [f"**Daily posts here:** {_rule_text(s.rule)}"]
        if self.features is not None:
            lines += await self.features.options_text(s.channel_id)
        if self.poster.catalog is not None:
            lines.append(f"From deck {await self.poster.catalog.decks.channel_deck(s.channel_id)}.")
        if s.paused:
            why = f" — {s.paused_reason}" if s.paused_reason else ""
            lines.append(f"⏸️ Paused{why}. Resume with /study schedule resume.")
        else:
            lines.append(f"Next: {_when(self._next_at(s, ctx.now), s.rule.tz, ctx.now)}")
            if s.skip_until and s.skip_until > ctx.now:
                lines.append(f"Skipping the post of {_when(s.skip_until, s.rule.tz, ctx.now)}.")
        recent = await self.schedules.recent_deliveries(s.channel_id, 10)
        if recent:
            lines.append("Recent:")
            for d in recent:
                local = d.scheduled_for.astimezone(zone(s.rule.tz))
                icon = STATUS_ICON.get(d.status, d.status)
                extra = ""
                if d.status == "failed" and d.next_try_at:
                    extra = f" — retrying at {d.next_try_at.astimezone(zone(s.rule.tz)):%H:%M} ({d.error})"
                elif d.status == "failed" and d.error:
                    extra = f" — {d.error}"
                elif d.status == "missed":
                    extra = " — the bot was not running (outside the catch-up window)"
                lines.append(f"  {local:%a %d %b %H:%M} {icon}{extra}")
        return private("\n".join(lines))

    async def preview(self, ctx: Context, _: Command) -> list[Reply]:
        s = await self.schedules.schedule_for(ctx.member.channel_id)
        if s is None:
            return private(f"No daily posts in this channel yet. Set them up, e.g.:\n`{EXAMPLE}`")
        lines = [f"**The next 7 posts** ({_rule_text(s.rule)})"]
        if s.paused:
            lines.append("⏸️ Paused: none of these will go out until /study schedule resume.")
        lines += [f"• {p.text}" for p in preview(s.rule, ctx.now, 7, skip_until=s.skip_until)]
        return private("\n".join(lines))

    async def set(self, ctx: Context, command: Command) -> list[Reply]:
        args = command.args
        old = await self.schedules.schedule_for(ctx.member.channel_id)
        try:
            tz = resolve_zone(args["tz"]) if "tz" in args else (old.rule.tz if old else ctx.member.group_tz)
            days = parse_days(args["days"]) if "days" in args else (old.rule.days if old else tuple(range(7)))
        except (UnknownZone, UsageError) as e:
            return private(str(e))
        hh, mm = args["time"].split(":")
        kind = args.get("kind") or (old.rule.kind if old else "question")
        reveal = int(args["reveal"]) if "reveal" in args else (old.rule.reveal_hours if old else None)
        try:
            rule = ScheduleRule(time(int(hh), int(mm)), tz, days, kind, reveal)
        except ValueError as e:
            return private(f"That schedule is not valid: {e}. Example: `{EXAMPLE}`")
        deck = args.get("deck")
        catalog = self.poster.catalog
        if deck is not None and deck != TPM and catalog is None:
            return private("Decks are not available on this bot; posts come from the shipped pack (tpm).")
        if (
            deck is not None
            and catalog is not None
            and deck not in (TPM, ALL)
            and await catalog.decks.find_deck(ctx.member.group_id, deck) is None
        ):
            return private(f'There is no deck "{name(deck)}" here. See the decks with /study deck list.')
        group_tz_set = await self.schedules.save_schedule(ctx.member.channel_id, rule, ctx.now)
        if catalog is not None and deck is not None:
            await catalog.decks.set_channel_deck(ctx.member.channel_id, deck)
        elif catalog is not None:
            deck = await catalog.decks.channel_deck(ctx.member.channel_id)
        await self._changed(ctx.member.channel_id)
        nxt = next_occurrence(rule, ctx.now)
        lines = [
            f"✅ Daily posts here: {_rule_text(rule)}.",
            f"Next: {_when(nxt.at, tz, ctx.now)}. See the week with /study schedule preview.",
        ]
        if deck is not None and deck != TPM:
            lines.append(f"Posts come from deck {deck}.")
        if group_tz_set:
            lines.append(f"The group's time zone is now {tz} too (weeks and streaks follow it).")
        if self.features is not None:
            lines += await self.features.schedule_saved(ctx, args)
        return private("\n".join(lines))

    async def pause(self, ctx: Context, _: Command) -> list[Reply]:
        if not await self.schedules.set_paused(ctx.member.channel_id, True, None, ctx.now):
            return private(f"There is no schedule here to pause. Set one, e.g. `{EXAMPLE}`")
        await self._changed(ctx.member.channel_id)
        return private("⏸️ Daily posts here are paused. /study schedule resume starts them again.")

    async def resume(self, ctx: Context, _: Command) -> list[Reply]:
        if not await self.schedules.set_paused(ctx.member.channel_id, False, None, ctx.now):
            return private(f"There is no schedule here to resume. Set one, e.g. `{EXAMPLE}`")
        await self._changed(ctx.member.channel_id)
        s = await self.schedules.schedule_for(ctx.member.channel_id)
        nxt = f" Next: {_when(self._next_at(s, ctx.now), s.rule.tz, ctx.now)}." if s else ""
        return private(f"▶️ Daily posts here are back on.{nxt}")

    async def skip(self, ctx: Context, _: Command) -> list[Reply]:
        s = await self.schedules.schedule_for(ctx.member.channel_id)
        if s is None:
            return private(f"There is no schedule here. Set one, e.g. `{EXAMPLE}`")
        after = max(ctx.now, s.skip_until or ctx.now, s.last_scheduled or ctx.now)
        target = next_occurrence(s.rule, after).at
        await self.schedules.set_skip_until(s.channel_id, target)
        await self._changed(s.channel_id)
        following = next_occurrence(s.rule, target).at
        return private(
            f"⏭️ The post of {_when(target, s.rule.tz, ctx.now)} will be skipped. "
            f"The next one: {_when(following, s.rule.tz, ctx.now)}."
        )

    async def post_now(self, ctx: Context, _: Command) -> list[Reply]:
        s = await self.schedules.schedule_for(ctx.member.channel_id)
        kind = s.rule.kind if s else "question"
        try:
            posted = await self.poster.post_now(
                ctx.inbound.platform,
                ctx.inbound.channel,
                ctx.member.group_id,
                ctx.member.channel_id,
                kind,
                group=ctx.inbound.group,
            )
        except NothingToPost as e:
            return private(f"Nothing to post: {e}.")
        except DeliveryError as e:
            log.warning("post-now in channel %s failed: %s", ctx.member.channel_id, e)
            return private(self.poster.explain(e, ctx.inbound.platform))
        what = {"question": "a question", "tip": "a tip", "interview": "an interview question"}.get(posted, posted)
        return private(f"📣 Posted {what} here. Scheduled posts carry on as planned.")

    async def notices(self, ctx: Context) -> list[Reply]:
        found = await self.schedules.take_notices(ctx.member.group_id)
        deck_notes: list[Reply] = []
        if self.poster.catalog is not None:
            deck_notes = [
                Reply(
                    f"⚠️ Nothing was posted in {name(n.channel_name or n.channel)}: {n.text}. Import items with "
                    "/study deck import, or post from another deck with /study schedule set … deck <name|tpm|all>.",
                    private=True,
                )
                for n in await self.poster.catalog.decks.take_deck_notices(ctx.member.group_id)
            ]
        mine = await self.features.notices(ctx) if self.features is not None else []
        return (
            mine
            + deck_notes
            + [
                Reply(
                    f"⚠️ Daily posts in {name(n.channel_name or n.channel)} are paused: {n.reason}. "
                    "Give the bot access again, then run /study schedule resume in that channel.",
                    private=True,
                )
                for n in found
            ]
        )


def install_schedule_commands(
    service: StudyService,
    poster: DailyPoster,
    schedules: ScheduleStore,
    runtime: ScheduleRuntime | None = None,
    features: ChannelFeatures | None = None,
) -> ScheduleCommands:
    """Register the schedule handlers (and the admin-notice hook) on ``service``."""
    commands = ScheduleCommands(poster, schedules, runtime, features)
    commands.install(service)
    return commands
