"""P1: interaction ack latency through the real discord.py and slack-bolt over loopback.

This process is the bot and nothing else: the Discord front end or the Slack adapter wired by
`bot.bootstrap.build_app` (core, learning engine, SQLite on a temporary database, the bundled content).
The platform — the loopback fake and 100 members acting — runs in a child process (`bench.p1_platform`),
as Discord's and Slack's servers run on other machines than the bot; it measures the latencies on its
own clock: for Discord from dispatching ``INTERACTION_CREATE`` to receiving the interaction callback,
for Slack from sending the signed request to reading the HTTP 200.

Members are known to the bot already (they joined on earlier days). Three rounds: each member clicks an
answer button on a fresh daily post (posted by the bot through its gateway), then sends a command
(quiz, progress, leaderboard or tip in turn), then clicks on the next fresh post. Two load shapes:

- burst (P1a Discord, P1b Slack; the goal): all 100 members in the same instant;
- steady (P1c Discord, P1d Slack; informational): each member once, arrivals spread uniformly at random
  over one second.

Every round waits until each member has the answer (deferred replies and chart uploads included) before
the next starts. An unmeasured warm-up round (``help`` from everyone) opens the connections first.
Goal: p99 <= 25 ms; the platforms' limit is 3,000 ms.

    python -m bench.p1_ack_latency [--platform discord|slack] [--shape burst|steady]
                                   [-v] [--profile FILE] [--no-charts] [--defer-after S] [--stub-core]
                                   [--no-gc-freeze]

``-v`` logs each round (with the CPU each process spent); ``--profile`` writes a cProfile of this (the
bot's) process during the measured rounds. Experiments, for finding what the latency is made of:
``--no-charts`` (progress without the PNG), ``--defer-after 0`` (Discord acks first, then edits),
``--stub-core`` (a core that answers "ok" at once: the discord.py/slack-bolt + adapter floor),
``--no-gc-freeze`` (skip the ``gc.freeze()`` that `bot.bootstrap.serve` does once the bot is up).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import json
import logging
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import ROOT, Figure, percentile
from bench.p1_platform import SLACK_CHANNEL, TEAM, discord_members, slack_members
from bot.bootstrap import App, build_app
from bot.config import BUNDLED_CONTENT, Settings
from bot.core.messages import Inbound, Post, Reply
from bot.core.service import answer_buttons, question_text

log = logging.getLogger("bench.p1")

GOAL_MS = 25.0
SHAPES = ("burst", "steady")
FIGURE_IDS = {
    ("discord", "burst"): "P1a",
    ("slack", "burst"): "P1b",
    ("discord", "steady"): "P1c",
    ("slack", "steady"): "P1d",
}


class Clock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class Platform:
    """The child process playing Discord or Slack; `ask` sends one request line and reads the answer."""

    def __init__(self, proc: asyncio.subprocess.Process, info: dict[str, Any]) -> None:
        self.proc = proc
        self.info = info

    @classmethod
    async def start(cls, platform: str) -> Platform:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.p1_platform",
            platform,
            cwd=ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 60)
        if not line:
            raise RuntimeError(f"the {platform} platform process exited (status {await proc.wait()})")
        return cls(proc, json.loads(line)["ready"])

    async def ask(self, request: dict[str, Any]) -> dict[str, Any]:
        """Send a request; raises RuntimeError when the platform reports an error or exits."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write((json.dumps(request) + "\n").encode())
        await self.proc.stdin.drain()
        line = await self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the platform process exited")
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"platform: {answer['error']}")
        return answer

    async def close(self) -> None:
        if self.proc.returncode is None:
            assert self.proc.stdin is not None
            self.proc.stdin.write(b'{"op": "quit"}\n')
            await self.proc.stdin.drain()
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


@dataclass
class Options:
    platforms: tuple[str, ...] = ("discord", "slack")
    shapes: tuple[str, ...] = SHAPES
    profile: Path | None = None
    charts: bool = True
    defer_after: float | None = None
    stub_core: bool = False
    gc_freeze: bool = True


@dataclass
class Result:
    """Per shape: ack and answer latencies (seconds) and what each was (click or a command name)."""

    ack: list[float]
    answer: list[float]
    what: list[str]


async def daily_post(app: App, platform: str, group: str, channel: str, gateway: Any) -> tuple[int, str]:
    """Post today's question the way the scheduler does; returns (post id, the platform's message id)."""
    now = Clock().now()
    m = await app.store.ensure_member(platform, group, channel, "poster", "poster", now=now)
    q = app.library.pack.questions[0]
    post = await app.store.create_post(m.group_id, m.channel_id, None, "question", q.id, now)
    sent = await gateway.post(Post(channel, question_text(q, heading="Question of the day"), answer_buttons(post.id)))
    return post.id, sent.message_id


async def rounds(
    child: Platform,
    shapes: tuple[str, ...],
    post: Callable[[], Awaitable[tuple[int, str]]],
    extra: dict[str, Any],
    after: Callable[[], Awaitable[None]],
    profiler: cProfile.Profile | None,
) -> dict[str, Result]:
    await child.ask({"op": "round", "kind": "warm", "shape": "burst", **extra})
    await after()
    out: dict[str, Result] = {}
    for s, shape in enumerate(shapes):
        res = Result([], [], [])
        for rnd in range(3):
            req: dict[str, Any] = {"op": "round", "shape": shape, "seed": 10 * s + rnd, **extra}
            if rnd == 1:
                req["kind"] = "command"
            else:
                post_id, message_id = await post()
                req |= {"kind": "click", "post_id": post_id, "message_id": message_id}
            if profiler is not None:
                profiler.enable()
            cpu = time.process_time()
            got = await child.ask(req)
            await after()
            if profiler is not None:
                profiler.disable()
            log.info(
                "%s round %d (%s): ack %s; CPU bot %.0f ms, platform %.0f ms",
                shape,
                rnd + 1,
                req["kind"],
                summary(got["ack"]),
                (time.process_time() - cpu) * 1000,
                got["cpu"] * 1000,
            )
            res.ack += got["ack"]
            res.answer += got["answer"]
            res.what += got["commands"]
        out[shape] = res
    return out


def settings_for(tmp: Path, name: str, **extra: Any) -> Settings:
    return Settings(  # type: ignore[call-arg]
        STUDYBOT_DB=tmp / f"{name}.db", STUDYBOT_CONTENT=BUNDLED_CONTENT, _env_file=None, **extra
    )


class StubService:
    """Experiment (``--stub-core``): answers everything at once with one short private line, so the run
    measures discord.py/slack-bolt and our adapter alone — the floor the core and SQLite add to."""

    async def handle(self, inbound: Inbound) -> list[Reply]:
        return [Reply("ok", private=True)]


async def bot_app(settings: Settings, opts: Options) -> App:
    app = await build_app(settings, clock=Clock())
    if not opts.charts:
        app.service.progress_attachments.clear()
    return app


def service_of(app: App, opts: Options) -> Any:
    return StubService() if opts.stub_core else app.service


async def discord_bot(tmp: Path, opts: Options, profiler: cProfile.Profile | None) -> dict[str, Result]:
    import discord.gateway
    import discord.http
    import yarl

    from bot.adapters.discord_adapter import DEFER_AFTER, DiscordFrontEnd

    child = await Platform.start("discord")
    try:
        info = child.info
        # What FakeDiscord.install() does, for a fake in another process.
        discord.http.Route.BASE = info["rest_base"]
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(info["gateway_url"])
        app = await bot_app(settings_for(tmp, "p1d"), opts)
        defer_after = DEFER_AFTER if opts.defer_after is None else opts.defer_after
        fe = DiscordFrontEnd(service_of(app, opts), info["token"], guild_ready_timeout=0.05, defer_after=defer_after)
        runner = asyncio.create_task(fe.run())
        await asyncio.wait_for(fe.ready.wait(), 30)
        guild, channel = info["guild"], info["channel"]
        for u in discord_members():  # members who used the bot before
            await app.store.ensure_member("discord", guild, channel, str(u.id), u.name, now=Clock().now())

        async def post() -> tuple[int, str]:
            return await daily_post(app, "discord", guild, channel, fe)

        async def nothing() -> None:
            return None

        try:
            if opts.gc_freeze:
                gc.freeze()
            return await rounds(child, opts.shapes, post, {}, nothing, profiler)
        finally:
            await fe.close()
            await asyncio.wait_for(runner, 10)
            await app.close()
    finally:
        await child.close()


async def slack_bot(tmp: Path, opts: Options, profiler: cProfile.Profile | None) -> dict[str, Result]:
    from bot.adapters.slack_adapter import SlackAdapter

    child = await Platform.start("slack")
    try:
        info = child.info
        settings = settings_for(
            tmp,
            "p1s",
            SLACK_BOT_TOKEN=info["bot_token"],
            SLACK_SIGNING_SECRET=info["signing_secret"],
            SLACK_API_URL=info["api_url"],
        )
        app = await bot_app(settings, opts)
        adapter = SlackAdapter(service_of(app, opts), settings, http_host="127.0.0.1", http_port=0)
        await adapter.start()
        runner = asyncio.create_task(adapter.run())
        for u in slack_members():
            await app.store.ensure_member("slack", TEAM, SLACK_CHANNEL, u, f"member-{u}", now=Clock().now())

        async def post() -> tuple[int, str]:
            return await daily_post(app, "slack", TEAM, SLACK_CHANNEL, adapter)

        extra = {"url": f"http://127.0.0.1:{adapter.port}/slack/events"}
        try:
            if opts.gc_freeze:
                gc.freeze()
            return await rounds(child, opts.shapes, post, extra, adapter.drain, profiler)
        finally:
            await adapter.close()
            await asyncio.wait_for(runner, 10)
            await app.close()
    finally:
        await child.close()


def summary(values_s: list[float]) -> str:
    ms = [v * 1000 for v in values_s]
    return f"p50 {percentile(ms, 50):.1f} / p99 {percentile(ms, 99):.1f} / max {max(ms):.1f} ms"


def figure(platform: str, shape: str, res: Result) -> Figure:
    ack_ms = [v * 1000 for v in res.ack]
    p99 = percentile(ack_ms, 99)
    name = platform.capitalize()
    if shape == "burst":
        what = f"{name} ack latency, 100 members in the same instant (p99)"
        context = "the goal's load: every member acts at once, three rounds (click, command, click)"
    else:
        what = f"{name} ack latency, 100 members spread over 1 s (p99, informational)"
        context = "each member once per round, arrivals uniform at random over 1 s, three rounds"
    by_kind: dict[str, list[float]] = {}
    for v, w in zip(res.ack, res.what, strict=True):
        by_kind.setdefault(w, []).append(v)
    kinds = "; ".join(f"{k} p99 {percentile([v * 1000 for v in vs], 99):.1f}" for k, vs in sorted(by_kind.items()))
    note = (
        f"ack {summary(res.ack)} over {len(ack_ms)} interactions ({kinds} ms); "
        f"answer in hand {summary(res.answer)}; {context}; platform in its own process"
    )
    return Figure(
        FIGURE_IDS[(platform, shape)], what, round(p99, 1), "ms", "<= 25 ms (limit 3,000 ms)", p99 <= GOAL_MS, note
    )


async def measure(opts: Options) -> list[Figure]:
    profiler = cProfile.Profile() if opts.profile else None
    results: dict[tuple[str, str], Result] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for platform in opts.platforms:
            fn = discord_bot if platform == "discord" else slack_bot
            for shape, res in (await fn(Path(tmp), opts, profiler)).items():
                results[(platform, shape)] = res
    if profiler is not None and opts.profile is not None:
        profiler.dump_stats(str(opts.profile))
    # Figures in id order: the goal (burst) first.
    return [figure(p, s, results[(p, s)]) for s in opts.shapes for p in opts.platforms if (p, s) in results]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.p1_ack_latency", description=__doc__.split("\n")[0])
    parser.add_argument("--platform", choices=("discord", "slack"), action="append")
    parser.add_argument("--shape", choices=SHAPES, action="append")
    parser.add_argument("--profile", type=Path, help="write a cProfile of the bot process here")
    parser.add_argument("--no-charts", action="store_true", help="experiment: progress without the PNG chart")
    parser.add_argument("--defer-after", type=float, help="experiment: Discord defers replies not ready by then")
    parser.add_argument("-v", "--verbose", action="store_true", help="log each round's figures to stderr")
    parser.add_argument("--stub-core", action="store_true", help="experiment: adapters over a core that answers 'ok'")
    parser.add_argument(
        "--no-gc-freeze", dest="gc_freeze", action="store_false", help="experiment: skip serve()'s gc.freeze()"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    log.setLevel(logging.INFO if args.verbose else logging.WARNING)
    opts = Options(
        platforms=tuple(args.platform or ("discord", "slack")),
        shapes=tuple(args.shape or SHAPES),
        profile=args.profile,
        charts=not args.no_charts,
        defer_after=args.defer_after,
        stub_core=args.stub_core,
        gc_freeze=args.gc_freeze,
    )
    for f in asyncio.run(measure(opts)):
        f.emit()


if __name__ == "__main__":
    main()
