"""A member's own dashboard (the Slack Home tab): streak and freezes, answers and accuracy, reviews due
with a "Review now" button, the career path, and the reminder and leaderboard switches.

Platform-free: `HomeTab.view` returns a `HomeView` of plain sections; the Slack adapter turns it into
Block Kit and publishes it (``views.publish``). Its buttons are core actions (`bot.core.actions`), so a
click goes through `StudyService.handle` like any other.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import date

from bot.core import actions
from bot.core.learning import LearningPort, when
from bot.core.markup import name
from bot.core.messages import Button, Inbound
from bot.core.progress import current_step, current_streak, percent
from bot.core.reminders import ReminderStore
from bot.core.service import StudyService
from bot.core.timezones import local_day


@dataclass(frozen=True, slots=True)
class HomeSection:
    """One part of the dashboard: a heading, its text (the core's markdown) and its buttons."""

    heading: str
    text: str
    buttons: tuple[Button, ...] = ()


@dataclass(frozen=True, slots=True)
class HomeView:
    """A member's dashboard, ready for a front end to draw."""

    title: str
    sections: tuple[HomeSection, ...]


class HomeTab:
    """Builds members' dashboards from the stores the service and its features already use. Raises
    `StoreError` on storage failures."""

    def __init__(self, service: StudyService, learning: LearningPort, reminders: ReminderStore) -> None:
        self.service = service
        self.learning = learning
        self.reminders = reminders

    async def view(self, inbound: Inbound) -> HomeView:
        """The dashboard of the member ``inbound`` names (created if new, like any command)."""
        ctx = await self.service.context(inbound)
        m, now = ctx.member, ctx.now
        store = self.service.store
        stats, done, summary, setting, excused = await asyncio.gather(
            store.member_stats(m.member_id),
            store.steps_done(m.member_id),
            self.learning.review_summary(m.member_id, now),
            self.reminders.reminder(m.member_id),
            self.service.excused_days(m, now) if self.service.excused_days else _none(),
        )
        today = local_day(now, m.zone)
        streak = current_streak(stats.streak, today, excused)
        sections = [
            HomeSection(
                "🔥 Streak",
                f"*{streak} day{'s' if streak != 1 else ''}* (best {stats.streak.best}) · 🧊 freezes "
                f"{stats.streak.freezes} of 2"
                + ("" if stats.streak.last_day == today or not streak else " — answer today to keep it"),
            ),
            HomeSection(
                "📊 Answers",
                f"Answered {stats.answered} · correct {stats.correct} ({percent(stats.correct, stats.answered)})"
                f" · points {stats.points}",
                (Button(actions.quizme_action(m.member_id), "Quiz me", "primary"),),
            ),
        ]
        if summary.due:
            reviews = f"*{summary.due} review{'s' if summary.due != 1 else ''} due*"
            sections.append(
                HomeSection(
                    "🔁 Reviews", reviews, (Button(actions.simple_action("review-now"), "Review now", "primary"),)
                )
            )
        elif summary.next_due is not None:
            sections.append(
                HomeSection("🔁 Reviews", f"No reviews due — next one {when(summary.next_due, now, m.zone)}")
            )
        else:
            sections.append(HomeSection("🔁 Reviews", "No reviews yet — each question you answer comes back here."))
        pack = self.service.library.pack
        step = current_step(done)
        lines = []
        for s in pack.steps:
            mark = "✅" if s.step in done else ("▶️" if s.step == step else "⬜")
            lines.append(f"{mark} {s.step}. {s.title}")
        sections.append(HomeSection(f"🧭 Career path — {len(done)} of 6 done", "\n".join(lines)))
        if setting is not None and setting.enabled:
            remind = HomeSection(
                "⏰ Reminders",
                f"On: {setting.at:%H:%M} in {m.zone}"
                + (f" · next check {when(setting.next_at, now, m.zone)}" if setting.next_at else ""),
                (Button(actions.simple_action("remind-off"), "Turn off", "secondary"),),
            )
        else:
            remind = HomeSection(
                "⏰ Reminders",
                f"Off. On: a private message at 19:00 in {m.zone} on days with reviews due or a streak to keep.",
                (Button(actions.simple_action("remind-on"), "Turn on", "primary"),),
            )
        board = HomeSection(
            "🏆 Leaderboard",
            "You are hidden from leaderboards." if stats.hidden else "You appear on leaderboards.",
            (
                Button(actions.simple_action("board-show"), "Show me", "primary")
                if stats.hidden
                else Button(actions.simple_action("board-hide"), "Hide me", "secondary"),
            ),
        )
        sections += [remind, board]
        return HomeView(f"studybot — {name(m.display_name)}", tuple(sections))


async def _none() -> frozenset[date]:
    return frozenset()
