"""P5: cold start to ready — interpreter start, imports, migrations on a new DB, content load.

Measured from the parent: spawn a fresh Python, which builds the app and prints READY. Done for the
console configuration and again with the Discord and Slack libraries imported (a platform deployment).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import ROOT, Figure, percentile

PROBE = """
import asyncio, sys
from bot.bootstrap import build_app
from bot.config import load_settings
if sys.argv[2] == "platforms":
    import discord, slack_bolt.async_app, slack_sdk.web.async_client  # noqa: F401
async def main():
    app = await build_app(load_settings(), db=__import__("pathlib").Path(sys.argv[1]))
    print("READY", flush=True)
    await app.close()
asyncio.run(main())
"""


def once(kind: str) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "cold.db"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("STUDYBOT_", "DISCORD_", "SLACK_"))}
        t = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-c", PROBE, str(db), kind], stdout=subprocess.PIPE, text=True, cwd=ROOT, env=env
        )
        assert proc.stdout is not None
        line = proc.stdout.readline()
        elapsed = time.perf_counter() - t
        proc.wait(timeout=60)
        assert line.strip() == "READY", line
        return elapsed


def main(runs: int = 5) -> None:
    for kind, fid in (("console", "P5a"), ("platforms", "P5b")):
        once(kind)  # the first run fills the OS file cache and writes .pyc files
        times = [once(kind) for _ in range(runs)]
        med = percentile(times, 50)
        Figure(
            fid,
            f"cold start to ready ({kind})",
            round(med, 3),
            "s",
            "<= 1.5 s",
            med <= 1.5,
            f"median of {runs}; max {max(times):.3f} s",
        ).emit()


if __name__ == "__main__":
    main()
