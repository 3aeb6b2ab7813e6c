"""The timer around `DailyPoster`: APScheduler 3.11 wrapped behind start / close / reschedule.

Design (the simplest one that stays right): the database is the only schedule. Occurrences are
computed in the core with `zoneinfo` (APScheduler's local-time `CronTrigger` skips or repeats days at
clock changes), so APScheduler only ever holds two jobs with fixed ids:

* ``studybot-wake`` — a one-shot UTC `DateTrigger` at the earliest instant anything is due (next
  occurrence, retry or timed reveal), re-armed after every run and on every schedule change;
* ``studybot-sweep`` — every `SWEEP_SECONDS`, a safety net for what the wake cannot know (another
  process changed a schedule, the machine slept, a claim abandoned by a dead process).

Both call `tick()`, which runs `DailyPoster.run_due(now)` under a lock. Jobs are rebuilt from the
database at `start()` (which also catches up on what was missed while the bot was down). Duplicate
ticks — in this process or another one on the same database — are harmless: every occurrence is
claimed in the database before it is sent.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from bot.config import Settings
from bot.core.delivery import DailyPoster, RunReport
from bot.core.native import ChannelFeatures
from bot.core.ports import ChatGateway, Clock, ScheduleStore
from bot.core.reminders import ReminderReport, Reminders
from bot.core.schedule_commands import ScheduleCommands, install_schedule_commands
from bot.core.service import StudyService

log = logging.getLogger(__name__)

WAKE_JOB = "studybot-wake"
SWEEP_JOB = "studybot-sweep"
SWEEP_SECONDS = 300
CLOSE_TIMEOUT = 15.0
MIN_DELAY = timedelta(seconds=5)


class Scheduler:
    """Runs scheduled posts while the bot runs. `start()` catches up and arms the timers; `close()`
    waits for a run in progress, then stops. `reschedule()` re-arms after a schedule change.

    `start` raises `StoreError` if the database cannot be read; runs never raise (they log)."""

    def __init__(
        self,
        schedules: ScheduleStore,
        service: StudyService,
        gateways: Mapping[str, ChatGateway],
        clock: Clock,
        settings: Settings,
        *,
        name: str | None = None,
        rng: random.Random | None = None,
        reminders: Reminders | None = None,
        features: ChannelFeatures | None = None,
    ) -> None:
        #: Members' reminders, run on the same timers as the posts (None: no reminders).
        self.reminders = reminders
        #: Threads, pings and the first-post check (`bot.core.native`), handed to the poster and commands.
        self.features = features
        self.poster = DailyPoster(
            schedules,
            service.store,
            service.library,
            gateways,
            clock,
            catchup=timedelta(hours=settings.catchup_hours),
            name=name,
            rng=rng,
            features=features,
            catalog=service.catalog,
        )
        self.schedules = schedules
        self.service = service
        self.clock = clock
        self._aps: AsyncIOScheduler | None = None
        self._lock = asyncio.Lock()
        self._closed = False
        self.wake_at: datetime | None = None
        self.runs = 0
        #: What the last reminder run did (tests, the bench).
        self.last_reminders: ReminderReport | None = None

    def install_commands(self) -> ScheduleCommands:
        """Register the `/study schedule …` handlers on the service, with this scheduler as runtime."""
        return install_schedule_commands(self.service, self.poster, self.schedules, self, self.features)

    async def start(self) -> None:
        """Catch up on what is due (posting once within the grace window), then arm the timers."""
        self._closed = False
        self.poster.stopping = False
        if self.reminders is not None:
            self.reminders.stopping = False
        aps = AsyncIOScheduler(timezone=UTC)
        aps.start()
        self._aps = aps
        aps.add_job(
            self.tick,
            IntervalTrigger(seconds=SWEEP_SECONDS, timezone=UTC),
            id=SWEEP_JOB,
            replace_existing=True,
            coalesce=True,
            misfire_grace_time=None,
            max_instances=3,
        )
        await self.tick()

    async def close(self) -> None:
        """Let a run in progress finish its posts in flight (bounded by `CLOSE_TIMEOUT`), recording them,
        then stop the timers. No new post starts once this is called. Safe to call twice."""
        self._closed = True
        self.poster.stop()
        if self.reminders is not None:
            self.reminders.stopping = True
        aps, self._aps = self._aps, None
        try:
            await asyncio.wait_for(self._lock.acquire(), CLOSE_TIMEOUT)
            self._lock.release()
        except TimeoutError:
            log.warning("a scheduled run was still going after %.0f s; stopping anyway", CLOSE_TIMEOUT)
        if aps is not None:
            aps.shutdown(wait=False)

    async def tick(self) -> RunReport | None:
        """Do what is due now, then re-arm the wake-up. Logs (never raises) on storage errors."""
        if self._closed:
            return None
        async with self._lock:
            if self._closed:
                return None
            try:
                report = await self.poster.run_due(self.clock.now())
                self.runs += 1
            except Exception:
                log.exception("scheduled run failed; the sweep will try again")
                report = None
            if self.reminders is not None:
                try:  # after the posts: a member's reminder may say what today's post was
                    self.last_reminders = await self.reminders.run_due(self.clock.now())
                except Exception:
                    log.exception("reminder run failed; the sweep will try again")
            await self._arm()
            return report

    async def run_due(self, now: datetime) -> RunReport:
        """Do what is due at ``now`` (tests drive simulated time through this)."""
        async with self._lock:
            report = await self.poster.run_due(now)
            if self.reminders is not None:
                self.last_reminders = await self.reminders.run_due(now)
            return report

    async def reschedule(self, channel_id: int | None = None) -> None:
        """A schedule changed: re-arm the wake-up from the database (no restart needed)."""
        await self._arm()

    async def _arm(self) -> None:
        aps = self._aps
        if aps is None or self._closed:
            return
        try:
            wake = await self.poster.next_wakeup(self.clock.now())
            if self.reminders is not None:
                remind = await self.reminders.next_wakeup()
                wake = remind if wake is None else wake if remind is None else min(wake, remind)
        except Exception:
            log.exception("could not compute the next wake-up; the sweep will try again")
            return
        self.wake_at = wake
        if wake is None:
            if aps.get_job(WAKE_JOB) is not None:
                aps.remove_job(WAKE_JOB)
            return
        # APScheduler runs on the real clock and ours may be offset (tests), so arm by delay. Something
        # already overdue (say, a reveal the platform keeps refusing) waits MIN_DELAY rather than spin.
        now = self.clock.now()
        delay = wake - now if wake > now else MIN_DELAY
        aps.add_job(
            self.tick,
            DateTrigger(run_date=datetime.now(UTC) + delay, timezone=UTC),
            id=WAKE_JOB,
            replace_existing=True,
            misfire_grace_time=None,
            coalesce=True,
            max_instances=3,
        )
        log.debug("next scheduled run at %s", wake.isoformat())
