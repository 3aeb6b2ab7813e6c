"""When each part of a P1a round happens (Discord, 100 members at once): a timeline per round.

    python -m bench.p1_timeline [--rounds N] [--switch-interval S]

Runs studybot's P1a rounds (`bench.p1_ack_latency --platform discord --shape burst --bot studybot`) in
this process with a clock on five places — discord.py parsing an ``INTERACTION_CREATE``, the store taking
a write for its next group commit, the database thread running a batch, the adapter posting an
interaction's first response (and reading the platform's HTTP response to it) — and prints, per round,
in ms from the round's first parse:

    click: parsed 0.0-7.5 · queued 8.8-9.6 · batches 9.7+5.9/100 · acks sent 17.1-27.5 · their responses
    read 24.1-42.3 · platform p99 40.6

(a batch as start+duration/writes). It shows what a profile cannot: how long the acks of a round wait
for its group commit while the event loop has nothing else to do, and how long a batch takes on the
database thread while the event loop is busy with the rest of the burst (both threads run Python, and
each time the database thread has let the GIL go — around every SQLite call — it must wait to get it
back, up to `sys.getswitchinterval()`, 5 ms by default). The summary gives the medians over the rounds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import bench.p1_ack_latency as p1
import bot.storage.sqlite_store as sqlite_store
from bot.adapters.discord_adapter import DiscordFrontEnd

#: (perf_counter, what, batch size): what is "parse", "queue", "batch start", "batch end", "ack" or "acked".
Event = tuple[float, str, int]


class Timeline:
    def __init__(self) -> None:
        self.events: list[Event] = []
        self.lock = threading.Lock()  # the database thread records too

    def mark(self, what: str, n: int = 0) -> None:
        with self.lock:
            self.events.append((time.perf_counter(), what, n))

    def take(self) -> list[Event]:
        with self.lock:
            out, self.events = self.events, []
        return out


def install(timeline: Timeline) -> None:
    """Put the clock on the four places (this process only; nothing is changed but the timing)."""
    import discord.state

    state: Any = discord.state.ConnectionState
    parse = state.parse_interaction_create

    def parse_interaction_create(self: Any, data: Any) -> None:
        timeline.mark("parse")
        parse(self, data)

    state.parse_interaction_create = parse_interaction_create

    enqueue = sqlite_store.SqliteStore._enqueue

    def queued(self: Any, fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
        timeline.mark("queue")
        return enqueue(self, fn, args)

    sqlite_store.SqliteStore._enqueue = queued  # type: ignore[method-assign]

    batch = sqlite_store._versioned_batch

    def versioned_batch(conn: Any, items: list[Any], *rest: Any) -> Any:
        timeline.mark("batch start", len(items))
        try:
            return batch(conn, items, *rest)
        finally:
            timeline.mark("batch end", len(items))

    sqlite_store._versioned_batch = versioned_batch

    answer = DiscordFrontEnd._answer

    async def answered(self: Any, *args: Any, **kwargs: Any) -> None:
        timeline.mark("ack")
        await answer(self, *args, **kwargs)
        timeline.mark("acked")  # the platform's HTTP response to it read

    DiscordFrontEnd._answer = answered  # type: ignore[method-assign]


def span(times: list[float]) -> str:
    return f"{min(times):.1f}-{max(times):.1f}" if times else "-"


def describe(kind: str, events: list[Event], platform_p99: float, stats: dict[str, list[float]]) -> str:
    t0 = min((t for t, what, _ in events if what == "parse"), default=events[0][0] if events else 0.0)

    def at(what: str) -> list[float]:
        return [(t - t0) * 1000 for t, w, _ in events if w == what]

    starts = [(t, n) for t, w, n in events if w == "batch start"]
    ends = [(t, n) for t, w, n in events if w == "batch end"]
    batches = [((s - t0) * 1000, (e - s) * 1000, n) for (s, n), (e, _) in zip(starts, ends, strict=False)]
    queued, acks, acked = at("queue"), at("ack"), at("acked")

    def add(name: str, value: float) -> None:
        stats.setdefault(name, []).append(value)

    if kind == "click" and queued and acks and batches:
        _, last_took, last_n = batches[-1]
        add("click: last write queued → last ack sent (ms)", max(acks) - max(queued))
        add("click: the round's last batch (ms on the database thread)", last_took)
        add("click: the round's last batch (µs per write)", 1000 * last_took / last_n)
    if acks and acked:
        add(f"{kind}: last ack sent → last ack's response read (ms)", max(acked) - max(acks))
    for _, took, n in batches:
        add("batches of 1-2 writes (ms)" if n <= 2 else "batches of 3 or more (ms)", took)
    add(f"{kind}: platform p99 (ms)", platform_p99)
    shown = " ".join(f"{s:.1f}+{d:.1f}/{n}" for s, d, n in batches)
    return (
        f"{kind}: parsed {span(at('parse'))} · queued {span(queued)} · batches {shown or '-'} · "
        f"acks sent {span(acks)} · their responses read {span(acked)} · platform p99 {platform_p99:.1f}"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.p1_timeline", description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=p1.ROUNDS, help=f"rounds (default {p1.ROUNDS})")
    parser.add_argument("--switch-interval", type=float, help="sys.setswitchinterval (seconds), both bots")
    args = parser.parse_args(argv)
    out = sys.stdout
    timeline = Timeline()
    install(timeline)
    stats: dict[str, list[float]] = {}
    real_rounds = p1.rounds

    async def rounds(child: Any, bot: Any, opts: Any, label: str, profiler: Any) -> Any:
        ask = child.ask

        async def timed(request: dict[str, Any]) -> dict[str, Any]:
            timeline.take()
            got = await ask(request)
            await bot.drain()
            events = timeline.take()
            if request.get("kind") != "warm" and not request.get("warm-up"):
                p99 = 1000 * sorted(got["ack"])[max(0, int(len(got["ack"]) * 0.99) - 1)]
                print(describe(str(request.get("kind")), events, p99, stats), file=out, flush=True)
            return got

        child.ask = timed
        return await real_rounds(child, bot, opts, label, profiler)

    p1.rounds = rounds  # type: ignore[assignment]
    p1_args = ["--platform", "discord", "--shape", "burst", "--bot", "studybot", "--rounds", str(args.rounds)]
    p1_args += ["--trials", "1"]
    if args.switch_interval:
        p1_args += ["--switch-interval", str(args.switch_interval)]
    sys.stdout = sys.stderr  # p1's FIGURE line is not this tool's output
    try:
        p1.main(p1_args)
    finally:
        sys.stdout = out
    print(f"medians over the rounds (load average {os.getloadavg()[0]:.2f}):")
    for name, values in sorted(stats.items()):
        print(
            f"  {name}: {statistics.median(values):.1f} (min {min(values):.1f}, max {max(values):.1f}; {len(values)})"
        )


if __name__ == "__main__":
    main()
