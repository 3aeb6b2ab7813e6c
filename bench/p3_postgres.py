"""P3pg: the daily fan-out to 1,000 Discord channels by **three** bot processes on one PostgreSQL.

The parent process runs the loopback fake Discord (50 REST requests/s, a global 429 beyond, as in P3)
and a throwaway PostgreSQL cluster, and stores 1,000 channel schedules. Three worker processes each
build the shipped app on that database, connect the real discord.py client to the fake, and at the
same instant run the scheduler's own unit of work (`DailyPoster.run_due`). Claims in the database
decide which process posts to which channel; each process paces its posts at a third of the bot's
48/s, so together they stay under Discord's global limit. The floor is 1,000 / 50 = 20 s; the goal
is 1.1 x that, with every channel posted exactly once.

    python -m bench.p3_postgres            # the benchmark

tests/test_pg_processes.py drives the same workers to kill one of them mid-fan-out.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from datetime import time as wall

from bench.common import ROOT, Figure

sys.path.insert(0, str(ROOT))

CHANNELS = 1000
RATE = 50
PROCESSES = 3
GUILD = 840000000000000001
AT = datetime(2026, 11, 23, 9, 0, 1, tzinfo=UTC)


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def now(self) -> datetime:
        return self.at


async def worker(url: str, rest: str, gateway: str, token: str, pace: float, name: str) -> None:
    """One bot process: connect, say READY, run the fan-out on GO, report, close."""
    import discord
    import yarl

    from bot.adapters.discord_adapter import DiscordFrontEnd
    from bot.bootstrap import build_app
    from bot.config import BUNDLED_CONTENT, Settings
    from bot.core.delivery import DailyPoster

    discord.http.Route.BASE = rest
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway)
    clock = Clock(AT)
    settings = Settings(STUDYBOT_DATABASE_URL=url, STUDYBOT_CONTENT=BUNDLED_CONTENT)  # type: ignore[call-arg]
    app = await build_app(settings, clock=clock)
    fe = DiscordFrontEnd(app.service, token, guild_ready_timeout=0.05, posts_per_second=pace)
    runner = asyncio.create_task(fe.run())
    await asyncio.wait_for(fe.ready.wait(), 60)
    print("READY", flush=True)
    loop = asyncio.get_running_loop()
    poster = DailyPoster(app.schedules, app.store, app.library, {"discord": fe}, clock, name=name)
    # "GO <ISO instant>" runs the scheduler's unit of work at that instant; end of input stops.
    while (line := await loop.run_in_executor(None, sys.stdin.readline)).startswith("GO "):
        clock.at = datetime.fromisoformat(line[3:].strip())
        t = time.perf_counter()
        report = await poster.run_due(clock.at)
        print("DONE " + json.dumps({"sent": len(report.sent), "seconds": time.perf_counter() - t}), flush=True)
    await fe.close()
    await asyncio.wait_for(runner, 10)
    await app.close()


async def prepare(url: str, channels: int = CHANNELS) -> list[int]:
    from bot.bootstrap import build_app
    from bot.config import BUNDLED_CONTENT, Settings
    from bot.core.schedule import ScheduleRule

    ids = [830000000000000000 + i for i in range(channels)]
    clock = Clock(datetime(2026, 11, 23, 8, 0, tzinfo=UTC))
    settings = Settings(STUDYBOT_DATABASE_URL=url, STUDYBOT_CONTENT=BUNDLED_CONTENT)  # type: ignore[call-arg]
    app = await build_app(settings, clock=clock)
    rule = ScheduleRule(wall(9, 0), "UTC", tuple(range(7)))
    for cid in ids:
        m = await app.store.ensure_member("discord", str(GUILD), str(cid), "1", "admin", now=clock.at)
        await app.schedules.save_schedule(m.channel_id, rule, clock.at)
    await app.close()
    return ids


def spawn(url: str, rest: str, gateway: str, token: str, pace: float, name: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STUDYBOT_", "DISCORD_", "SLACK_"))}
    return subprocess.Popen(
        [sys.executable, "-m", "bench.p3_postgres", "--worker", url, rest, gateway, token, str(pace), name],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=env | {"STUDYBOT_LOG_LEVEL": "WARNING"},
    )


def tell(proc: subprocess.Popen[str], line: str) -> None:
    assert proc.stdin is not None
    proc.stdin.write(line + "\n")
    proc.stdin.flush()


async def read_line(proc: subprocess.Popen[str], prefix: str, within: float) -> str:
    assert proc.stdout is not None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while loop.time() < deadline:
        line = await asyncio.wait_for(loop.run_in_executor(None, proc.stdout.readline), deadline - loop.time())
        if not line:
            raise RuntimeError(f"worker exited (status {proc.wait()}) before {prefix}")
        if line.startswith(prefix):
            return line.strip()
    raise TimeoutError(prefix)


async def measure(pg: object, processes: int = PROCESSES) -> Figure:
    from tests.fake_discord import FakeDiscord
    from tests.pg import PgCluster

    assert isinstance(pg, PgCluster)
    url = pg.create_database("p3")
    ids = await prepare(url)
    fake = FakeDiscord(rate_limit_per_s=RATE, install=False)
    fake.add_guild(GUILD, "Fan-out", {cid: f"study-{i}" for i, cid in enumerate(ids)})
    await fake.start()
    pace = 48.0 / processes
    procs = [spawn(url, fake.rest_base, fake.gateway_url, fake.token, pace, f"p3-{i}") for i in range(processes)]
    try:
        for p in procs:
            await read_line(p, "READY", 120)
        before = len(fake.requests)
        t = time.perf_counter()
        for p in procs:
            tell(p, f"GO {AT.isoformat()}")
        done = [json.loads((await read_line(p, "DONE", 300))[5:]) for p in procs]
        elapsed = time.perf_counter() - t
        for p in procs:
            assert p.stdin is not None
            p.stdin.close()
            p.wait(30)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        await fake.stop()
    per_channel = [len(fake.channel_messages(cid)) for cid in ids]
    posts_sent = sum(1 for r in fake.requests[before:] if r.method == "POST" and r.path.endswith("/messages"))
    exactly_once = all(n == 1 for n in per_channel) and sum(d["sent"] for d in done) == CHANNELS
    floor = CHANNELS / RATE
    split = "/".join(str(d["sent"]) for d in done)
    return Figure(
        "P3pg",
        f"fan-out to {CHANNELS:,} Discord channels, {processes} processes on one PostgreSQL",
        round(elapsed / floor, 3),
        "x floor",
        "<= 1.1 x 20 s, each channel once",
        elapsed <= 1.1 * floor and exactly_once,
        f"{elapsed:.1f} s; channels per process {split}; {sum(per_channel):,} messages, exactly once: "
        f"{exactly_once}; {fake.rate_limited} requests answered 429, {posts_sent:,} POST attempts",
    )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        url, rest, gateway, token, pace, name = sys.argv[2:8]
        asyncio.run(worker(url, rest, gateway, token, float(pace), name))
        return
    from tests.pg import DURABLE, PgCluster

    with PgCluster.start(settings=DURABLE) as pg:
        figure = asyncio.run(measure(pg))
    figure.emit()


if __name__ == "__main__":
    main()
