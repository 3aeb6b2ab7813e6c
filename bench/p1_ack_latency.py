"""P1: interaction ack latency through the real discord.py and slack-bolt over loopback, against the floor.

This process is the bot and nothing else (P1h's workers aside, see below). For each platform it runs two
bots (three on Discord), one after the other, against the same kind of platform process and the same load:

- **the floor**: the smallest bot the library allows — a `discord.Client` whose ``on_interaction``
  answers ``send_message("ok")``, or a slack-bolt `AsyncApp` whose listeners ``ack()`` and then
  ``respond("ok")``. It does no work of its own: its latency is the library's and the machine's.
- **studybot**: the Discord front end or the Slack adapter wired by `bot.bootstrap.build_app` (core,
  learning engine, SQLite on a temporary database, the bundled content).
- on Discord also **the floor with a memory** (P1g, informational, burst only unless ``--shape`` asks):
  the floor that, before answering, records each click durably — one ``INSERT`` and one ``COMMIT``
  (fsync) per click through aiosqlite, studybot's pragmas — and reads one row for each command. It is
  the promise studybot's answers make ("recorded" is said only of an answer on disk) done the simplest
  way, so it shows what keeping that promise costs before any of studybot's own work.

Each figure is studybot's p99 divided by the floor's p99 in the same run, so a busy machine slows both.
The machine's speed drifts within seconds (in one run of 20 rounds the CPU of the same click rounds grew
from 31 ms in the first to 60-71 ms in rounds 11-17 for the bot, and from 17 to 26-32 ms for the
platform process), so the burst figures run studybot
`TRIALS` times, each time between two runs of the floor, and take the median of each run's p99 over
the mean of the floor's two beside it; every bot run starts afresh (its own platform process and
database).
The platform — the loopback fake and 100 members acting — runs in a child process (`bench.p1_platform`),
as Discord's and Slack's servers run on other machines than the bot; it measures the latencies on its
own clock: for Discord from dispatching ``INTERACTION_CREATE`` to receiving the interaction callback,
for Slack from sending the signed request to reading the HTTP 200.

Members are known to the bot already (they joined on earlier days). `ROUNDS` rounds per shape, taking
turns: each member clicks an answer button on a fresh daily post (posted by the bot through its
gateway), then each member sends a command (quiz, progress, leaderboard or tip in turn), and so on.
Two load shapes:

- burst (P1a Discord, P1b Slack; the goal): all 100 members in the same instant;
- steady (P1c Discord, P1d Slack; informational): each member once, arrivals spread uniformly at random
  over one second.

P1e/P1f (informational) do the same through a prototype of Discord's HTTP interactions endpoint
(`bench.discord_http`), against its own floor (verify the signature, answer "ok"); P1h (informational)
serves that prototype from `HTTP_WORKERS` processes listening on one port (``SO_REUSEPORT``), each with
its own core over the same SQLite file — what the endpoint's statelessness allows (``--bot workers``).

Every round waits until the bot has finished all its work (follow-ups such as progress charts
included) before the next starts. An unmeasured warm-up round (``help`` from everyone) opens the
connections first.

    python -m bench.p1_ack_latency [--platform discord|slack|discord-http] [--shape burst|steady]
                                   [--rounds N] [--bot floor|durable|studybot] [-v] [--profile FILE]
                                   [--no-charts] [--defer-after S] [--stub-core] [--no-gc-freeze]
                                   [--synchronous NORMAL] [--json stdlib|orjson] [--loop uvloop]
                                   [--switch-interval S]

``-v`` logs each round (with the CPU each process spent); ``--profile`` writes a cProfile of this (the
bot's) process during studybot's measured rounds. Experiments, for finding what the latency is made of:
``--no-charts`` (progress without the PNG), ``--defer-after 0`` (Discord acks first, then edits),
``--stub-core`` (our adapter over a core that answers "ok" at once), ``--no-gc-freeze`` (skip the
``gc.freeze()`` and young-generation threshold that `bot.bootstrap.serve` sets once the bot is up
(`settle_gc`); the floor gets the same),
``--synchronous NORMAL`` (commits without fsync), ``--json stdlib|orjson`` (discord.py's JSON),
``--loop uvloop`` and ``--switch-interval S`` (the GIL's; both bots get them).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import itertools
import json
import logging
import re
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import ROOT, Figure, percentile
from bench.p1_platform import SLACK_CHANNEL, TEAM, discord_members, slack_members
from bot.bootstrap import App, build_app, settle_gc
from bot.config import BUNDLED_CONTENT, Settings
from bot.core.messages import Inbound, Post, Reply
from bot.core.service import answer_buttons, question_text

log = logging.getLogger("bench.p1")
#: The collector's thresholds before `settle_gc` (each bot starts from them).
DEFAULT_GC = gc.get_threshold()

SHAPES = ("burst", "steady")
BOTS = ("floor", "durable", "studybot", "workers")
#: Worker processes behind the HTTP interactions prototype's P1h (on one port, one SQLite file).
HTTP_WORKERS = 2
#: Rounds per shape (clicks and commands taking turns): 10 rounds of 100 members = 1,000 samples.
ROUNDS = 10
#: Runs of studybot behind each burst figure, each between two runs of the floor (see `measure`).
TRIALS = 3
#: Each bot run's own folder under the temporary one.
RUN_NUMBERS = itertools.count()
PLATFORMS = ("discord", "slack", "discord-http")
FIGURE_IDS = {
    ("discord", "burst"): "P1a",
    ("slack", "burst"): "P1b",
    ("discord", "steady"): "P1c",
    ("slack", "steady"): "P1d",
    ("discord-http", "burst"): "P1e",
    ("discord-http", "steady"): "P1f",
}
#: The figures of studybot served by `HTTP_WORKERS` processes (the prototype only).
WORKER_FIGURE_IDS = {"burst": "P1h", "steady": "P1i"}
#: studybot's p99 over the floor's p99, same run (the steady shapes are informational).
GOALS = {"P1a": 1.5, "P1b": 1.2}
FLOOR_NAMES = {
    "discord": "a minimal discord.py bot",
    "slack": "a minimal slack-bolt app",
    "discord-http": "a minimal HTTP interactions endpoint",
}
PLATFORM_NAMES = {"discord": "Discord", "slack": "Slack", "discord-http": "Discord over HTTP interactions (prototype)"}


class Clock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class Child:
    """A child process (``python -m …``) that prints one JSON line ``{"ready": …}`` once it is up, then answers
    each JSON line sent to its stdin with one JSON line; ``{"op": "quit"}`` stops it."""

    #: Seconds it has to quit before it is killed.
    grace = 10.0

    def __init__(self, proc: asyncio.subprocess.Process, name: str, ready: Any) -> None:
        self.proc = proc
        self.name = name
        self.ready = ready

    @classmethod
    async def spawn(cls, name: str, *argv: str) -> tuple[asyncio.subprocess.Process, Any]:
        """Start ``python -m argv…`` and wait (60 s at most) for its ready line; returns the process and what
        the line said. ``name`` (e.g. "the discord platform process") goes into errors."""
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", *argv, cwd=ROOT, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
        )
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 60)
        if not line:
            raise RuntimeError(f"{name} exited (status {await proc.wait()})")
        return proc, json.loads(line)["ready"]

    async def ask(self, request: dict[str, Any]) -> dict[str, Any]:
        """Send ``request``, return the answer; raises RuntimeError when the child reports an error or exits."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write((json.dumps(request) + "\n").encode())
        await self.proc.stdin.drain()
        line = await self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.name} exited")
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"{self.name}: {answer['error']}")
        return answer

    async def close(self) -> None:
        """Ask the child to quit; kill it if it has not within `grace` seconds."""
        if self.proc.returncode is None:
            assert self.proc.stdin is not None
            self.proc.stdin.write(b'{"op": "quit"}\n')
            await self.proc.stdin.drain()
            try:
                await asyncio.wait_for(self.proc.wait(), self.grace)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


class Platform(Child):
    """The child process playing Discord or Slack (`bench.p1_platform`); ``info`` is what it is listening on."""

    @classmethod
    async def start(cls, platform: str) -> Platform:
        name = f"the {platform} platform process"
        proc, info = await cls.spawn(name, "bench.p1_platform", platform)
        return cls(proc, name, info)

    @property
    def info(self) -> dict[str, Any]:
        info: dict[str, Any] = self.ready
        return info


@dataclass
class Options:
    platforms: tuple[str, ...] = PLATFORMS
    shapes: tuple[str, ...] = SHAPES
    bots: tuple[str, ...] = BOTS
    rounds: int = ROUNDS
    profile: Path | None = None
    charts: bool = True
    defer_after: float | None = None
    stub_core: bool = False
    gc_freeze: bool = True
    synchronous: str | None = None
    trials: int = TRIALS


@dataclass
class Result:
    """Per shape: ack and answer latencies (seconds) and what each was (click or a command name)."""

    ack: list[float] = field(default_factory=list)
    answer: list[float] = field(default_factory=list)
    what: list[str] = field(default_factory=list)
    #: CPU seconds the bot process (all its threads) spent on the measured rounds, their work included.
    cpu: float = 0.0
    #: Anything else the run tells (for the figure's note).
    note: str = ""


@dataclass
class Running:
    """A bot under test, as the rounds see it: how to make today's post and how to wait for its work."""

    post: Callable[[], Awaitable[tuple[int, str]]]
    drain: Callable[[], Awaitable[None]]
    extra: dict[str, Any] = field(default_factory=dict)
    #: studybot's group commits so far (logged per round with -v); None for the floors.
    commits: Callable[[], int] | None = None
    #: The load shapes this bot is measured with (the prototype: the burst only, to keep the run short).
    shapes: tuple[str, ...] = SHAPES
    #: The CPU seconds the bot's processes have spent so far (None: this process's `time.process_time`).
    cpu: Callable[[], Awaitable[float]] | None = None


async def daily_post(app: App, platform: str, group: str, channel: str, gateway: Any) -> tuple[int, str]:
    """Post today's question the way the scheduler does; returns (post id, the platform's message id)."""
    now = Clock().now()
    m = await app.store.ensure_member(platform, group, channel, "poster", "poster", now=now)
    q = app.library.pack.questions[0]
    post = await app.store.create_post(m.group_id, m.channel_id, None, "question", q.id, now)
    sent = await gateway.post(Post(channel, question_text(q, heading="Question of the day"), answer_buttons(post.id)))
    return post.id, sent.message_id


async def rounds(
    child: Platform, bot: Running, opts: Options, label: str, profiler: cProfile.Profile | None
) -> dict[str, Result]:
    # Unmeasured: everyone's first command ("help"), then a burst of commands, so the bot's caches and
    # its chart workers (started by the first progress charts, drawn in other processes) are as a bot
    # that has been up a while has them — every run starts its bot afresh.
    await child.ask({"op": "round", "kind": "warm", "shape": "burst", **bot.extra})
    await bot.drain()
    await child.ask({"op": "round", "kind": "command", "shape": "burst", "seed": -1, "warm-up": True, **bot.extra})
    await bot.drain()
    out: dict[str, Result] = {}
    for s, shape in enumerate(opts.shapes):
        if shape not in bot.shapes:
            continue
        res = out[shape] = Result()
        for rnd in range(opts.rounds):
            req: dict[str, Any] = {"op": "round", "shape": shape, "seed": 100 * s + rnd, **bot.extra}
            if rnd % 2:
                req["kind"] = "command"
            else:
                post_id, message_id = await bot.post()
                req |= {"kind": "click", "post_id": post_id, "message_id": message_id}
            if profiler is not None:
                profiler.enable()
            cpu = await bot.cpu() if bot.cpu else time.process_time()
            commits = bot.commits() if bot.commits else 0
            got = await child.ask(req)
            await bot.drain()  # the round's follow-ups (charts) are part of its work
            if profiler is not None:
                profiler.disable()
            spent = (await bot.cpu() if bot.cpu else time.process_time()) - cpu
            log.info(
                "%s %s round %d (%s): ack %s; CPU bot %.0f ms, platform %.0f ms%s",
                label,
                shape,
                rnd + 1,
                req["kind"],
                summary(got["ack"]),
                spent * 1000,
                got["cpu"] * 1000,
                f"; {bot.commits() - commits} group commits" if bot.commits else "",
            )
            res.cpu += spent
            res.ack += got["ack"]
            res.answer += got["answer"]
            res.what += got["commands"]
    return out


def settings_for(tmp: Path, name: str, **extra: Any) -> Settings:
    return Settings(  # type: ignore[call-arg]
        STUDYBOT_DB=tmp / f"{name}.db", STUDYBOT_CONTENT=BUNDLED_CONTENT, _env_file=None, **extra
    )


class StubService:
    """Experiment (``--stub-core``): answers everything at once with one short private line, so the run
    measures discord.py/slack-bolt and our adapter alone."""

    async def handle(self, inbound: Inbound) -> list[Reply]:
        return [Reply("ok", private=True)]


async def bot_app(settings: Settings, opts: Options) -> App:
    app = await build_app(settings, clock=Clock())
    if not opts.charts:
        app.service.progress_attachments.clear()
    if opts.synchronous is not None:
        await app.store.run_sync(lambda conn: conn.execute(f"PRAGMA synchronous={opts.synchronous}"))
    return app


def service_of(app: App, opts: Options) -> Any:
    return StubService() if opts.stub_core else app.service


def freeze(opts: Options) -> None:
    if opts.gc_freeze:  # as bot.bootstrap.serve does once the bot is up
        settle_gc()


def thaw() -> None:
    gc.unfreeze()
    gc.set_threshold(*DEFAULT_GC)
    gc.collect()


# ---------------------------------------------------------------------- Discord


def point_discord_at(info: dict[str, Any]) -> None:
    """What FakeDiscord.install() does, for a fake in another process."""
    import discord.gateway
    import discord.http
    import yarl

    discord.http.Route.BASE = info["rest_base"]
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(info["gateway_url"])


async def discord_floor(
    opts: Options, label: str, profiler: cProfile.Profile | None, durable: Path | None = None
) -> dict[str, Result]:
    """The floor on Discord: a `discord.Client` that answers every interaction with ``send_message``.

    With ``durable`` (a database file), the floor with a memory — the same promise as studybot's, done the
    simplest way: before answering, a click is recorded (one ``INSERT`` and a ``COMMIT`` per click through
    aiosqlite, with studybot's pragmas: WAL, ``synchronous=FULL``) and a command reads one row."""
    import aiosqlite
    import discord

    db: aiosqlite.Connection | None = None
    if durable is not None:
        db = await aiosqlite.connect(durable)
        await db.execute("PRAGMA journal_mode=WAL")
        await db.execute("PRAGMA synchronous=FULL")
        await db.execute(
            "CREATE TABLE IF NOT EXISTS answers (id INTEGER PRIMARY KEY, message TEXT, member TEXT, choice TEXT,"
            " at REAL, UNIQUE (message, member))"
        )
        await db.commit()

    class MinimalBot(discord.Client):
        def __init__(self) -> None:
            intents = discord.Intents.none()
            intents.guilds = True
            super().__init__(intents=intents, guild_ready_timeout=0.05)
            self.ready_event = asyncio.Event()
            self.inflight: set[asyncio.Task[Any]] = set()

        async def on_ready(self) -> None:
            self.ready_event.set()

        async def on_interaction(self, interaction: discord.Interaction[Any]) -> None:
            task = asyncio.current_task()
            if task is not None:
                self.inflight.add(task)
                task.add_done_callback(self.inflight.discard)
            if db is not None:
                member = str(interaction.user.id)
                if interaction.type is discord.InteractionType.component:
                    message = str(interaction.message.id) if interaction.message else ""
                    choice = str((interaction.data or {}).get("custom_id", ""))
                    await db.execute(
                        "INSERT OR IGNORE INTO answers (message, member, choice, at) VALUES (?, ?, ?, ?)",
                        (message, member, choice, time.time()),
                    )
                    await db.commit()
                else:
                    async with db.execute("SELECT COUNT(*) FROM answers WHERE member = ?", (member,)) as cur:
                        await cur.fetchone()
            await interaction.response.send_message("ok", ephemeral=True)

    child = await Platform.start("discord")
    try:
        info = child.info
        point_discord_at(info)
        bot = MinimalBot()
        runner = asyncio.create_task(bot.start(info["token"]))
        await asyncio.wait_for(bot.ready_event.wait(), 30)
        channel = bot.get_channel(int(info["channel"]))
        assert isinstance(channel, discord.TextChannel)

        async def post() -> tuple[int, str]:
            message = await channel.send("Question of the day")
            return 0, str(message.id)

        async def drain() -> None:
            while bot.inflight:
                await asyncio.gather(*set(bot.inflight), return_exceptions=True)

        try:
            freeze(opts)
            # The floor with a memory is a reference for the burst (the goal's shape) unless asked for more.
            shapes = ("burst",) if db is not None and opts.shapes == SHAPES else opts.shapes
            return await rounds(child, Running(post, drain, shapes=shapes), opts, label, profiler)
        finally:
            thaw()
            await bot.close()
            await asyncio.wait_for(runner, 10)
    finally:
        await child.close()
        if db is not None:
            await db.close()


async def discord_studybot(
    tmp: Path, opts: Options, label: str, profiler: cProfile.Profile | None
) -> dict[str, Result]:
    from bot.adapters.discord_adapter import DEFER_AFTER, DiscordFrontEnd

    child = await Platform.start("discord")
    try:
        info = child.info
        point_discord_at(info)
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

        try:
            freeze(opts)
            running = Running(post, fe.drain, commits=lambda: app.store.batches_committed)
            return await rounds(child, running, opts, label, profiler)
        finally:
            thaw()
            await fe.close()
            await asyncio.wait_for(runner, 10)
            await app.close()
    finally:
        await child.close()


# ---------------------------------------------------------------------- Slack


async def slack_floor(opts: Options, label: str, profiler: cProfile.Profile | None) -> dict[str, Result]:
    """The floor on Slack: a bolt `AsyncApp` whose listeners ``ack()`` and then ``respond("ok")``.

    It acks the way studybot does — inline (``process_before_response``) with the reply in a task —
    because bolt's default runs the listener in a task and polls for the ack every 10 ms."""
    from aiohttp import web
    from slack_bolt.async_app import AsyncApp
    from slack_sdk.web.async_client import AsyncWebClient

    child = await Platform.start("slack")
    try:
        info = child.info
        client = AsyncWebClient(token=info["bot_token"], base_url=info["api_url"])
        app = AsyncApp(client=client, signing_secret=info["signing_secret"], process_before_response=True)
        tasks: set[asyncio.Task[Any]] = set()

        async def listener(ack: Any, respond: Any) -> None:
            await ack()
            task = asyncio.create_task(respond(text="ok", response_type="ephemeral"))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

        app.command("/study")(listener)
        app.action(re.compile(".*"))(listener)
        runner = web.AppRunner(app.web_app(path="/slack/events"), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = int(runner.addresses[0][1])

        async def post() -> tuple[int, str]:
            return 0, "0"

        async def drain() -> None:
            while tasks:
                await asyncio.gather(*set(tasks), return_exceptions=True)

        extra = {"url": f"http://127.0.0.1:{port}/slack/events"}
        try:
            freeze(opts)
            return await rounds(child, Running(post, drain, extra), opts, label, profiler)
        finally:
            thaw()
            await runner.cleanup()
    finally:
        await child.close()


async def slack_studybot(tmp: Path, opts: Options, label: str, profiler: cProfile.Profile | None) -> dict[str, Result]:
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
            freeze(opts)
            running = Running(post, adapter.drain, extra, commits=lambda: app.store.batches_committed)
            return await rounds(child, running, opts, label, profiler)
        finally:
            thaw()
            await adapter.close()
            await asyncio.wait_for(runner, 10)
            await app.close()
    finally:
        await child.close()


# ---------------------------------------------------------------------- Discord over HTTP (prototype)


async def discord_http(
    tmp: Path, opts: Options, label: str, profiler: cProfile.Profile | None, *, floor: bool
) -> dict[str, Result]:
    """The prototype of `bench.discord_http`: the floor (verify, "ok") or the core behind it."""
    from bench.discord_http import HttpInteractions, MinimalHttpInteractions

    child = await Platform.start("discord-http")
    try:
        info = child.info
        app: App | None = None
        server: MinimalHttpInteractions
        if floor:
            server = MinimalHttpInteractions(info["public_key"])
        else:
            app = await bot_app(settings_for(tmp, "p1h"), opts)
            server = HttpInteractions(service_of(app, opts), info["public_key"], info["rest_base"], info["app_id"])
            for u in discord_members():
                await app.store.ensure_member(
                    "discord", info["guild"], info["channel"], str(u.id), u.name, now=Clock().now()
                )
        await server.start()

        async def post() -> tuple[int, str]:
            # The daily post's delivery is not what this measures: only its row, for the buttons.
            if app is None:
                return 0, "0"
            m = await app.store.ensure_member(
                "discord", info["guild"], info["channel"], "poster", "poster", now=Clock().now()
            )
            p = await app.store.create_post(
                m.group_id, m.channel_id, None, "question", app.library.pack.questions[0].id, Clock().now()
            )
            return p.id, "1"

        extra = {"url": f"http://127.0.0.1:{server.port}/interactions"}
        try:
            freeze(opts)
            running = Running(post, server.drain, extra, shapes=("burst",) if opts.shapes == SHAPES else opts.shapes)
            if isinstance(server, HttpInteractions) and app is not None:
                store = app.store
                running.commits = lambda: store.batches_committed
            return await rounds(child, running, opts, label, None if floor else profiler)
        finally:
            thaw()
            await server.close()
            if app is not None:
                await app.close()
    finally:
        await child.close()


class Worker(Child):
    """One worker process of the HTTP interactions prototype (`bench.discord_http.worker`)."""

    grace = 30.0  # it finishes its follow-ups and closes its store first

    def __init__(self, proc: asyncio.subprocess.Process, name: str, ready: Any) -> None:
        super().__init__(proc, name, ready)
        #: Interactions this worker has answered, and its store's cache hits and misses (as of its last answer).
        self.handled = 0
        self.cache: dict[str, int] = {}

    @classmethod
    async def start(cls, db: Path, port: int, info: dict[str, Any]) -> Worker:
        name = "an HTTP interactions worker"
        argv = (
            "bench.discord_http",
            "worker",
            str(db),
            str(port),
            info["public_key"],
            info["rest_base"],
            info["app_id"],
        )
        proc, pid = await cls.spawn(name, *argv)
        return cls(proc, name, pid)

    async def call(self, op: str) -> float:
        """Send ``op`` (drain, cpu); returns the worker's CPU seconds so far."""
        answer = await self.ask({"op": op})
        self.handled = int(answer["handled"])
        self.cache = answer["cache"]
        return float(answer["cpu"])


def reserved_port() -> socket.socket:
    """A loopback port for the workers to share, held (bound with ``SO_REUSEPORT``, not listening) until
    they listen on it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


async def discord_http_workers(tmp: Path, opts: Options, label: str) -> dict[str, Result]:
    """studybot behind the HTTP interactions prototype in `HTTP_WORKERS` processes: each its own core on
    the same SQLite file, all listening on one port (the kernel spreads the platform's connections among
    them). This process migrates the database, enrolls the members and makes the daily posts; the figure's
    CPU is the workers' (``--synchronous`` and the other experiments do not reach them)."""
    child = await Platform.start("discord-http")
    try:
        info = child.info
        settings = settings_for(tmp, "p1w")
        app = await bot_app(settings, opts)
        workers: list[Worker] = []
        try:
            for u in discord_members():
                await app.store.ensure_member(
                    "discord", info["guild"], info["channel"], str(u.id), u.name, now=Clock().now()
                )
            with reserved_port() as held:
                port = int(held.getsockname()[1])
                for _ in range(HTTP_WORKERS):
                    workers.append(await Worker.start(settings.db, port, info))

            async def post() -> tuple[int, str]:
                m = await app.store.ensure_member(
                    "discord", info["guild"], info["channel"], "poster", "poster", now=Clock().now()
                )
                p = await app.store.create_post(
                    m.group_id, m.channel_id, None, "question", app.library.pack.questions[0].id, Clock().now()
                )
                return p.id, "1"

            async def drain() -> None:
                await asyncio.gather(*(w.call("drain") for w in workers))

            async def cpu() -> float:
                return sum(await asyncio.gather(*(w.call("cpu") for w in workers)))

            extra = {"url": f"http://127.0.0.1:{port}/interactions"}
            shapes = ("burst",) if opts.shapes == SHAPES else opts.shapes
            await cpu()  # each worker's counts so far
            before = [(w.handled, dict(w.cache)) for w in workers]
            got = await rounds(child, Running(post, drain, extra, shapes=shapes, cpu=cpu), opts, label, None)
            await cpu()
            for res in got.values():
                res.note = "per worker, the warm-up rounds included: interactions " + " / ".join(
                    str(w.handled - n) for w, (n, _) in zip(workers, before, strict=True)
                )
                res.note += ", member cache hits/misses " + " / ".join(
                    f"{w.cache['member_hits'] - c['member_hits']}/{w.cache['member_misses'] - c['member_misses']}"
                    for w, (_, c) in zip(workers, before, strict=True)
                )
                res.note += ", post cache hits/misses " + " / ".join(
                    f"{w.cache['post_hits'] - c['post_hits']}/{w.cache['post_misses'] - c['post_misses']}"
                    for w, (_, c) in zip(workers, before, strict=True)
                )
            return got
        finally:
            await asyncio.gather(*(w.close() for w in workers))
            await app.close()
    finally:
        await child.close()


# ---------------------------------------------------------------------- figures


def summary(values_s: list[float]) -> str:
    ms = [v * 1000 for v in values_s]
    return f"p50 {percentile(ms, 50):.1f} / p99 {percentile(ms, 99):.1f} / max {max(ms):.1f} ms"


def cpu_ms(res: Result) -> float:
    """The bot process's CPU per interaction (ms): the work behind the latency, which a busy machine
    stretches into waiting but does not change."""
    return res.cpu * 1000 / max(1, len(res.ack))


def p99_ms(values_s: list[float]) -> float:
    return percentile([v * 1000 for v in values_s], 99)


@dataclass
class Trials:
    """One figure's runs: studybot's, and the floor's before and after each of them (``floors`` has one
    more than ``ours``; either may be empty when ``--bot`` left that bot out)."""

    ours: list[Result]
    floors: list[Result]

    def ratios(self) -> list[float]:
        """Each studybot run's p99 over the mean of the floor's two runs beside it."""
        return [p99_ms(o.ack) / self.floor_p99(i) for i, o in enumerate(self.ours)]

    def floor_p99(self, i: int) -> float:
        """The mean p99 of the floor's runs just before and just after studybot's run ``i``."""
        return (p99_ms(self.floors[i].ack) + p99_ms(self.floors[i + 1].ack)) / 2

    def median(self) -> int:
        """The index of the run that sets the figure: the median ratio (the median p99 without a floor)."""
        keys = self.ratios() if self.floors else [p99_ms(o.ack) for o in self.ours]
        return sorted(range(len(keys)), key=keys.__getitem__)[len(keys) // 2]


def by_kind(res: Result) -> str:
    groups: dict[str, list[float]] = {}
    for v, w in zip(res.ack, res.what, strict=True):
        groups.setdefault(w, []).append(v)
    return "; ".join(f"{k} {p99_ms(vs):.1f}" for k, vs in sorted(groups.items()))


def figure(platform: str, shape: str, runs: Trials, *, workers: bool = False) -> Figure:
    fid = WORKER_FIGURE_IDS[shape] if workers else FIGURE_IDS[(platform, shape)]
    name = PLATFORM_NAMES[platform] + (f", studybot in {HTTP_WORKERS} worker processes" if workers else "")
    crowd = "100 members in the same instant" if shape == "burst" else "100 members spread over 1 s"
    m = runs.median()
    ours = runs.ours[m]
    n = len(runs.ours)
    note = f"studybot ack {summary(ours.ack)} over {len(ours.ack)} interactions (p99 by kind: {by_kind(ours)} ms)"
    if n > 1:
        note = f"run {m + 1} of {n}, the median: " + note
    if runs.floors:
        before, after = runs.floors[m], runs.floors[m + 1]
        note += (
            f"; {FLOOR_NAMES[platform]} just before and after it: ack {summary(before.ack)} and"
            f" {summary(after.ack)} over {len(before.ack)} each"
        )
        floor_cpu = (cpu_ms(before) + cpu_ms(after)) / 2
        note += (
            f"; bot CPU per interaction: studybot {cpu_ms(ours):.2f} ms, floor {floor_cpu:.2f} ms"
            f" ({cpu_ms(ours) / floor_cpu:.1f}x)"
        )
        if n > 1:
            note += (
                f"; all {n} runs, studybot p99 / the floor's beside it: "
                + ", ".join(f"{p99_ms(o.ack):.1f} / {runs.floor_p99(i):.1f} ms" for i, o in enumerate(runs.ours))
                + " = "
                + " / ".join(f"{r:.2f}" for r in runs.ratios())
                + "x (the figure: their median)"
            )
    elif n > 1:
        note += "; p99 of all runs " + " / ".join(f"{p99_ms(o.ack):.1f}" for o in runs.ours) + " ms"
    note += f"; studybot's answer in hand {summary(ours.answer)}"
    if ours.note:
        note += f"; {ours.note}"
    goal = GOALS.get(fid)
    if not runs.floors:  # only studybot ran (--bot studybot): the absolute figure
        value, unit = round(p99_ms(ours.ack), 1), "ms"
        return Figure(fid, f"{name} ack latency, {crowd} (p99)", value, unit, "(no floor run)", True, note)
    ratio = runs.ratios()[m]
    what = f"{name} ack p99, {crowd}: studybot {p99_ms(ours.ack):.1f} ms / floor {runs.floor_p99(m):.1f} ms"
    if n > 1:
        what += f" (the median of {n} runs, each over the floor's runs beside it)"
    if not goal:
        what += " (informational)"
    return Figure(
        fid,
        what,
        round(ratio, 2),
        "x floor",
        f"<= {goal}x" if goal else "informational",
        ratio <= goal if goal else True,
        note,
    )


def durable_figure(runs: Trials, durable: Result) -> Figure:
    """P1g (informational): studybot's Discord burst p99 (the run that sets P1a) over the floor with a
    memory's (see `discord_floor`)."""
    m = runs.median()
    ours = runs.ours[m]
    ratio = p99_ms(ours.ack) / p99_ms(durable.ack)
    groups: dict[str, list[float]] = {}
    for v, w in zip(durable.ack, durable.what, strict=True):
        groups.setdefault("click" if w == "click" else "command", []).append(v)
    kinds = "; ".join(f"{k} {p99_ms(vs):.1f}" for k, vs in sorted(groups.items()))
    note = (
        f"a minimal discord.py bot that records each click (aiosqlite: INSERT + COMMIT with fsync per click) and"
        f" reads one row per command before answering: ack {summary(durable.ack)} over {len(durable.ack)}"
        f" (p99 by kind: {kinds} ms); bot CPU per interaction {cpu_ms(durable):.2f} ms"
    )
    if runs.floors:
        floors = [p99_ms(f.ack) for f in runs.floors]
        note += (
            f"; {p99_ms(durable.ack) / statistics.median(floors):.2f}x the minimal bot without a memory"
            f" (the median of its {len(floors)} runs, {statistics.median(floors):.1f} ms)"
        )
    return Figure(
        "P1g",
        f"Discord ack p99, 100 members in the same instant: studybot {p99_ms(ours.ack):.1f} ms / the floor with a"
        f" memory {p99_ms(durable.ack):.1f} ms (informational)",
        round(ratio, 2),
        "x floor",
        "informational",
        True,
        note,
    )


async def run_bot(platform: str, bot: str, tmp: Path, opts: Options, profiler: cProfile.Profile | None) -> Result:
    """One run of one bot for the one shape in ``opts.shapes``: start it with its own platform process and a
    new database (in a new folder under ``tmp``), run the rounds, stop both."""
    label = f"{platform}/{bot}"
    tmp = tmp / f"run{next(RUN_NUMBERS)}"
    tmp.mkdir()
    if bot == "durable":
        got = await discord_floor(opts, label, None, durable=tmp / "durable.db")
    elif bot == "workers":
        got = await discord_http_workers(tmp, opts, label)
    elif platform == "discord-http":
        got = await discord_http(tmp, opts, label, profiler, floor=bot == "floor")
    elif bot == "floor":
        fn = discord_floor if platform == "discord" else slack_floor
        got = await fn(opts, label, None)
    else:
        fn2 = discord_studybot if platform == "discord" else slack_studybot
        got = await fn2(tmp, opts, label, profiler)
    (shape,) = opts.shapes
    return got[shape]


async def measure(opts: Options) -> list[Figure]:
    """Per platform: for the goal's shape (burst) `Options.trials` runs of studybot, each between two runs
    of the floor (F S F S F S F: the machine's speed drifts within seconds, and a ratio to the floor's
    runs on either side of studybot's is not at its mercy), then the floor with a memory once; the
    other shape (informational; not for the HTTP prototype unless ``--shape`` asks) once, between two
    runs of the floor. Every run starts its bot afresh."""
    profiler = cProfile.Profile() if opts.profile else None
    runs: dict[tuple[str, str, str], Trials] = {}
    durables: dict[tuple[str, str], Result] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for platform in opts.platforms:
            phases = [(("burst",), opts.trials)] if "burst" in opts.shapes else []
            if platform != "discord-http" or opts.shapes != SHAPES:  # the prototype: the burst unless asked
                phases += [((s,), 1) for s in opts.shapes if s != "burst"]
            ours = [
                b for b in ("studybot", "workers") if b in opts.bots and (b == "studybot" or platform == "discord-http")
            ]
            for shapes, trials in phases:
                phase = replace(opts, shapes=shapes)
                (shape,) = shapes
                with_floor = "floor" in opts.bots
                floors = [await run_bot(platform, "floor", Path(tmp), phase, None)] if with_floor else []
                if not ours:
                    runs[(platform, shape, "floor")] = Trials([], floors)
                for bot in ours:  # the floor's run after one bot's last is the next bot's first
                    got = runs[(platform, shape, bot)] = Trials([], floors[-1:])
                    for _ in range(trials):
                        got.ours.append(await run_bot(platform, bot, Path(tmp), phase, profiler))
                        if with_floor:
                            floors.append(await run_bot(platform, "floor", Path(tmp), phase, None))
                            got.floors.append(floors[-1])
                # The floor with a memory: a reference for the burst (the goal's shape) unless asked for more.
                if "durable" in opts.bots and platform == "discord" and (shape == "burst" or opts.shapes != SHAPES):
                    durables[(platform, shape)] = await run_bot(platform, "durable", Path(tmp), phase, None)
    if profiler is not None and opts.profile is not None:
        profiler.dump_stats(str(opts.profile))
    figures = []
    for s in opts.shapes:  # the goal (burst) first
        for p in opts.platforms:
            for bot in ("studybot", "workers"):
                if (p, s, bot) in runs:
                    figures.append(figure(p, s, runs[(p, s, bot)], workers=bot == "workers"))
                if bot == "studybot" and (p, s) in durables and (p, s, bot) in runs:
                    figures.append(durable_figure(runs[(p, s, bot)], durables[(p, s)]))
            if (p, s, "floor") in runs and runs[(p, s, "floor")].floors:
                floor = runs[(p, s, "floor")].floors[0]
                figures.append(
                    Figure(
                        FIGURE_IDS[(p, s)] + "0",
                        f"{FLOOR_NAMES[p]}, {s} (p99)",
                        round(p99_ms(floor.ack), 1),
                        "ms",
                        "the floor",
                        True,
                        f"ack {summary(floor.ack)} over {len(floor.ack)}",
                    )
                )
    return figures


def use_json(kind: str) -> None:
    """Experiment: make discord.py encode and decode with ``kind`` ("orjson" or "stdlib"); it picks orjson
    by itself when installed, looking the two functions up on `discord.utils` at every call."""
    import discord.utils

    if kind == "orjson":
        import orjson

        discord.utils._to_json = lambda obj: orjson.dumps(obj).decode("utf-8")
        discord.utils._from_json = orjson.loads
    else:
        discord.utils._to_json = lambda obj: json.dumps(obj, separators=(",", ":"), ensure_ascii=True)
        discord.utils._from_json = json.loads


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.p1_ack_latency", description=__doc__.split("\n")[0])
    parser.add_argument("--platform", choices=PLATFORMS, action="append")
    parser.add_argument("--shape", choices=SHAPES, action="append")
    parser.add_argument(
        "--bot",
        choices=BOTS,
        action="append",
        help="run only these bots (durable: the Discord floor that records each click first; workers: studybot"
        f" in {HTTP_WORKERS} processes behind the HTTP interactions prototype)",
    )
    parser.add_argument("--rounds", type=int, default=ROUNDS, help=f"rounds per shape (default {ROUNDS})")
    parser.add_argument(
        "--trials", type=int, default=TRIALS, help=f"studybot runs behind each burst figure (default {TRIALS})"
    )
    parser.add_argument("--profile", type=Path, help="write a cProfile of studybot's rounds here")
    parser.add_argument("--no-charts", action="store_true", help="experiment: progress without the PNG chart")
    parser.add_argument("--defer-after", type=float, help="experiment: Discord defers replies not ready by then")
    parser.add_argument("-v", "--verbose", action="store_true", help="log each round's figures to stderr")
    parser.add_argument("--stub-core", action="store_true", help="experiment: adapters over a core that answers 'ok'")
    parser.add_argument(
        "--no-gc-freeze",
        dest="gc_freeze",
        action="store_false",
        help="experiment: skip serve()'s settle_gc() (gc.freeze and the young threshold)",
    )
    parser.add_argument(
        "--json", choices=("orjson", "stdlib"), help="experiment: discord.py's JSON (default: orjson when installed)"
    )
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio", help="experiment: the event loop")
    parser.add_argument(
        "--synchronous", choices=("FULL", "NORMAL", "OFF"), help="experiment: SQLite's synchronous (no fsync: NORMAL)"
    )
    parser.add_argument("--switch-interval", type=float, help="experiment: sys.setswitchinterval (seconds)")
    args = parser.parse_args(argv)
    if args.json is not None:
        use_json(args.json)
    if args.switch_interval:
        sys.setswitchinterval(args.switch_interval)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    log.setLevel(logging.INFO if args.verbose else logging.WARNING)
    opts = Options(
        platforms=tuple(args.platform or PLATFORMS),
        shapes=tuple(args.shape or SHAPES),
        bots=tuple(args.bot or BOTS),
        rounds=args.rounds,
        profile=args.profile,
        charts=not args.no_charts,
        defer_after=args.defer_after,
        stub_core=args.stub_core,
        gc_freeze=args.gc_freeze,
        synchronous=args.synchronous,
        trials=args.trials,
    )
    if args.loop == "uvloop":
        import uvloop

        figures = uvloop.run(measure(opts))
    else:
        figures = asyncio.run(measure(opts))
    for f in figures:
        f.emit()


if __name__ == "__main__":
    main()
