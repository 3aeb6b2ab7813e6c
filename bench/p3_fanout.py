"""P3: the daily fan-out to 1,000 Discord channels through the real discord.py client.

The loopback fake Discord allows 50 REST requests per second and answers the rest with a global 429
(with ``Via``), as Discord does. The floor is therefore 1,000 / 50 = 20 s; the goal is 1.1 x that, with
every channel posted exactly once. The run is the scheduler's own unit of work (`DailyPoster.run_due`).
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from datetime import UTC, datetime
from datetime import time as wall
from pathlib import Path

from bench.common import ROOT, Figure
from bot.bootstrap import build_app
from bot.config import BUNDLED_CONTENT, Settings
from bot.core.delivery import DailyPoster
from bot.core.schedule import ScheduleRule
from bot.storage.schedule_store import SqliteScheduleStore

sys.path.insert(0, str(ROOT))
from tests.fake_discord import FakeDiscord

CHANNELS = 1000
RATE = 50
GUILD = 840000000000000001


class Clock:
    def __init__(self) -> None:
        self.at = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self.at


async def measure() -> Figure:
    from bot.adapters.discord_adapter import DiscordFrontEnd

    ids = [830000000000000000 + i for i in range(CHANNELS)]
    fake = FakeDiscord(rate_limit_per_s=RATE)
    fake.add_guild(GUILD, "Fan-out", {cid: f"study-{i}" for i, cid in enumerate(ids)})
    await fake.start()
    clock = Clock()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(STUDYBOT_DB=Path(tmp) / "p3.db", STUDYBOT_CONTENT=BUNDLED_CONTENT)  # type: ignore[call-arg]
        app = await build_app(settings, clock=clock)
        fe = DiscordFrontEnd(app.service, fake.token, guild_ready_timeout=0.05)
        runner = asyncio.create_task(fe.run())
        await asyncio.wait_for(fe.ready.wait(), 30)
        schedules = SqliteScheduleStore(app.store)
        rule = ScheduleRule(wall(9, 0), "UTC", tuple(range(7)))
        for cid in ids:
            m = await app.store.ensure_member("discord", str(GUILD), str(cid), "1", "admin", now=clock.at)
            await schedules.save_schedule(m.channel_id, rule, clock.at)
        poster = DailyPoster(schedules, app.store, app.library, {"discord": fe}, clock, name="p3")
        before = len(fake.requests)
        clock.at = datetime(2026, 11, 23, 9, 0, 1, tzinfo=UTC)
        t = time.perf_counter()
        report = await poster.run_due(clock.at)
        elapsed = time.perf_counter() - t
        per_channel = [len(fake.channel_messages(cid)) for cid in ids]
        posts_sent = sum(1 for r in fake.requests[before:] if r.method == "POST" and r.path.endswith("/messages"))
        await fe.close()
        await asyncio.wait_for(runner, 10)
        await app.close()
    await fake.stop()
    exactly_once = all(n == 1 for n in per_channel) and len(report.sent) == CHANNELS
    floor = CHANNELS / RATE
    return Figure(
        "P3",
        f"daily fan-out to {CHANNELS:,} Discord channels at {RATE} req/s",
        round(elapsed / floor, 3),
        "x floor",
        "<= 1.1 x 20 s, each channel once",
        elapsed <= 1.1 * floor and exactly_once,
        f"{elapsed:.1f} s; {sum(per_channel):,} messages, channels posted exactly once: {exactly_once}; "
        f"{fake.rate_limited} requests answered 429, {posts_sent:,} POST attempts",
    )


def main() -> None:
    asyncio.run(measure()).emit()


if __name__ == "__main__":
    main()
