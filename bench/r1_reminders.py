"""R1: how late after the member's local time a reminder arrives, with many members due at one instant.

The real `Scheduler` (APScheduler wake-up job, real clock) runs the real `Reminders` against the loopback
fake Discord (real discord.py: a DM channel is opened, then the message sent; the fake allows 50 REST
requests per second like Discord) or the fake Slack (real slack-sdk ``chat.postMessage`` to the user).
Every member has a streak at stake and reminders at the same local minute, spread over zones that share
that instant. Lateness = when the fake received the member's DM - the instant it was due.

    python -m bench.r1_reminders [--platform discord|slack …] [--members N]   (default: both, 500)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from bench.common import ROOT, Figure, percentile
from bot.bootstrap import build_app
from bot.config import BUNDLED_CONTENT, Settings
from bot.core.reminders import Reminders
from bot.scheduling import Scheduler

sys.path.insert(0, str(ROOT))
from tests.fake_discord import FakeDiscord
from tests.fake_slack import FakeSlack

GUILD = 840000000000000001
TEAM = "T0BENCH"
#: Zones at UTC+0 in late November, so one instant is everyone's local time (their own zone each).
ZONES = ("UTC", "Europe/London", "Europe/Lisbon", "Atlantic/Reykjavik", "Africa/Abidjan")


async def measure(platform: str, members: int) -> Figure:
    with tempfile.TemporaryDirectory() as tmp:
        values = {"STUDYBOT_DB": Path(tmp) / "r1.db", "STUDYBOT_CONTENT": BUNDLED_CONTENT}
        fake_discord = fake_slack = None
        if platform == "discord":
            fake_discord = FakeDiscord(rate_limit_per_s=50)
            await fake_discord.start()
        else:
            fake_slack = FakeSlack(team_id=TEAM)
            await fake_slack.start()
            values |= {
                "SLACK_BOT_TOKEN": fake_slack.bot_token,
                "SLACK_SIGNING_SECRET": "bench-secret",
                "SLACK_API_URL": fake_slack.api_url,
            }
        settings = Settings(_env_file=None, **values)  # type: ignore[arg-type]
        app = await build_app(settings)
        assert app.reminders is not None
        frontend: object
        if fake_discord is not None:
            from bot.adapters.discord_adapter import DiscordFrontEnd

            frontend = DiscordFrontEnd(app.service, fake_discord.token, guild_ready_timeout=0.05)
            runner = asyncio.create_task(frontend.run())  # type: ignore[attr-defined]
            await asyncio.wait_for(frontend.ready.wait(), 30)  # type: ignore[attr-defined]
            group, users = str(GUILD), [str(830000000000000000 + i) for i in range(members)]
        else:
            from bot.adapters.slack_adapter import SlackAdapter

            frontend = SlackAdapter(app.service, settings, http_host="127.0.0.1", http_port=0)
            await frontend.start()  # type: ignore[attr-defined]
            runner = asyncio.create_task(frontend.run())  # type: ignore[attr-defined]
            group, users = TEAM, [f"U{i:07d}" for i in range(members)]
        app.gateways[platform] = frontend  # type: ignore[assignment]

        # Everyone's reminder at the next whole minute that leaves time to set up; a streak at stake.
        now = datetime.now(UTC)
        due = (now + timedelta(seconds=20 + members / 100)).replace(second=0, microsecond=0) + timedelta(minutes=1)
        yesterday = (due - timedelta(days=1)).date()
        reminders: Reminders = app.reminders
        for i, user in enumerate(users):
            m = await app.store.ensure_member(platform, group, "c-bench", user, f"member {i}", now=now)
            await app.store.set_member_tz(m.member_id, ZONES[i % len(ZONES)])
            await reminders.store.set_reminder(m.member_id, m.channel_id, True, due.time(), due, now)
        await app.store.run_sync(  # type: ignore[attr-defined]
            lambda conn: conn.execute(
                "UPDATE members SET streak = 3, best_streak = 3, last_active_day = ?", (date.isoformat(yesterday),)
            )
        )
        scheduler = Scheduler(app.schedules, app.service, app.gateways, app.clock, settings, reminders=reminders)
        wall0, perf0, mono0 = time.time(), time.perf_counter(), time.monotonic()
        await scheduler.start()
        armed = scheduler.wake_at

        def received() -> list[float]:
            """Wall-clock arrival times of the DMs at the fake."""
            if fake_discord is not None:
                return [
                    wall0 + (r.at - perf0)
                    for r in fake_discord.requests
                    if r.method == "POST" and r.path.startswith("/channels/") and r.status == 200
                ]
            assert fake_slack is not None
            return [wall0 + (r.at - mono0) for r in fake_slack.delivered("chat.postMessage")]

        fake = fake_discord if fake_discord is not None else fake_slack
        assert fake is not None
        with contextlib.suppress(TimeoutError):
            await fake.wait_for(lambda: len(received()) >= members, within=due.timestamp() - time.time() + 600)
        arrivals = received()
        await scheduler.close()  # waits for the run in progress to finish its bookkeeping
        report = scheduler.last_reminders
        await frontend.close()  # type: ignore[attr-defined]
        await asyncio.wait_for(runner, 10)
        await app.close()
        if fake_discord is not None:
            rate_limited = fake_discord.rate_limited
            await fake_discord.stop()
        else:
            rate_limited = 0
            assert fake_slack is not None
            await fake_slack.stop()
        # Each member once: one DM channel (Discord) or one user (Slack) per received message.
        if fake_discord is not None:
            posted = fake_discord.requests
            distinct = len(
                {r.path for r in posted if r.method == "POST" and r.path.startswith("/channels/") and r.status == 200}
            )
        else:
            assert fake_slack is not None
            distinct = len({r.args.get("channel") for r in fake_slack.delivered("chat.postMessage")})
    late = [t - due.timestamp() for t in arrivals]
    p50, p99 = percentile(late, 50), percentile(late, 99)
    sent = len(report.sent) if report else 0
    return Figure(
        "R1" + ("d" if platform == "discord" else "s"),
        f"reminder lateness p99, {members:,} {platform} members due at one instant",
        round(p99, 3),
        "s",
        "informational",
        len(arrivals) == members == distinct,
        f"p50 {p50:.3f} s, p99 {p99:.3f} s, first {min(late):.3f} s, last {max(late):.3f} s; {len(arrivals):,} DMs "
        f"received for {members:,} members, {distinct:,} distinct ({sent:,} in the scheduler's report); wake-up armed for "
        f"{armed.isoformat() if armed else None}; {rate_limited} requests answered 429",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--platform", choices=("discord", "slack"), action="append")
    parser.add_argument("--members", type=int, default=500)
    args = parser.parse_args()
    for platform in args.platform or ["slack", "discord"]:
        figure = asyncio.run(measure(platform, args.members))
        figure.emit()
        print(f"{figure.id}: {figure.note}", file=sys.stderr)


if __name__ == "__main__":
    main()
