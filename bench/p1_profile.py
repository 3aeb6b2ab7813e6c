"""Where the bot's CPU goes in P1a (Discord, 100 members at once): a sampled profile, split by part.

    python -m bench.p1_profile [--rounds N] [--rate HZ] [--keep FILE]

Runs studybot's P1a rounds (`bench.p1_ack_latency --platform discord --shape burst --bot studybot`)
under the sampling profiler py-spy (not a dependency: ``.venv/bin/pip install py-spy``; it needs to be
allowed to trace its child, as root or with ``kernel.yama.ptrace_scope=0``), then sorts the bot process's
samples of the event loop's thread into parts: what any discord.py bot pays (the gateway's receiving and
parsing of an interaction, the HTTP request of its answer, reading HTTP responses) and what studybot
adds (the core, the adapter, the progress charts), and counts the database thread's busy samples (the
whole run's: its set-up cannot be told apart by stack). The
shares are of the event loop's samples in the measured rounds; py-spy slows the process it samples, so
read the shares, not the times.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from bench.common import ROOT

#: (part, who pays it, a frame that marks it); a sample goes to the first part whose frame it contains.
PARTS = [
    ("bench set-up (not measured)", "-", "measure (bench/p1_ack_latency.py"),
    ("progress chart: data", "studybot", "followups (bot/core/messages.py"),
    ("progress chart: upload", "studybot", "Webhook.send ("),
    ("progress chart: upload", "studybot", "MultipartWriter.write ("),
    ("the answer's HTTP request", "any bot", "DiscordFrontEnd._answer ("),
    ("the answer's HTTP request", "any bot", "InteractionResponse.send_message ("),
    ("core (StudyService.handle)", "studybot", "StudyService.handle ("),
    ("gateway: receive and parse", "any bot", "DiscordWebSocket.poll_event ("),
    ("core: database hand-offs", "studybot", "SqliteStore._hop_loop ("),
    ("adapter and command tree", "studybot", "CommandTree._from_interaction"),
    ("adapter and command tree", "studybot", "StudyClient.on_interaction ("),
    ("HTTP: writing requests", "any bot", "ClientRequest.write_bytes ("),
    ("HTTP: reading responses", "any bot", "_SelectorSocketTransport._read_ready ("),
]
#: Frames where a thread waits rather than works.
IDLE = ("select (", "Condition.wait (", "_do_waitpid (", "Event.wait (", "_connection_worker_thread (")


def split(raw: Path) -> tuple[Counter[tuple[str, str]], int, int]:
    """Samples per part of the event loop's thread, that thread's measured total, the database thread's
    busy samples (py-spy's raw format: one ``frame;frame;… count`` line per distinct stack)."""
    parts: Counter[tuple[str, str]] = Counter()
    loop = database = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        n = int(count)
        if "_connection_worker_thread" in stack:
            if not any(idle in frames[-1] for idle in IDLE):
                database += n
            continue
        if "MainThread" not in frames[0] or not any(f.startswith("Handle._run (") for f in frames):
            continue
        part = next(((name, who) for name, who, frame in PARTS if frame in stack), ("other event-loop work", "both"))
        parts[part] += n
        if part[0] != PARTS[0][0]:
            loop += n
    return parts, loop, database


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.p1_profile", description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=40, help="P1 rounds of 100 (default 40)")
    parser.add_argument("--rate", type=int, default=250, help="samples per second (default 250)")
    parser.add_argument("--keep", type=Path, help="keep py-spy's raw samples here")
    args = parser.parse_args(argv)
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not os.access(spy, os.X_OK):
        sys.exit("py-spy is not installed: .venv/bin/pip install py-spy")
    with tempfile.TemporaryDirectory() as tmp:
        raw = args.keep or Path(tmp) / "p1.raw"
        bench = [sys.executable, "-m", "bench.p1_ack_latency", "--platform", "discord", "--shape", "burst"]
        bench += ["--bot", "studybot", "--rounds", str(args.rounds), "--trials", "1"]
        cmd = [spy, "record", "-r", str(args.rate), "-f", "raw", "-o", str(raw), "--threads", "--", *bench]
        done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        if done.returncode != 0 or not raw.exists():
            sys.exit(f"py-spy failed ({done.returncode}): {done.stderr.strip()[-500:]}")
        parts, loop, database = split(raw)
    print(f"P1a, studybot, {args.rounds} rounds of 100: {loop} samples of the event loop's thread in the rounds")
    by_who: Counter[str] = Counter()
    for (name, who), n in sorted(parts.items(), key=lambda kv: -kv[1]):
        if name == PARTS[0][0]:
            continue
        by_who[who] += n
        print(f"  {100 * n / loop:5.1f}%  {name}  ({who})")
    print("  " + " · ".join(f"{who}: {100 * n / loop:.1f}%" for who, n in by_who.most_common()))
    print(f"database thread busy (set-up included): {database} samples = {100 * database / loop:.1f}% of the loop's")


if __name__ == "__main__":
    main()
