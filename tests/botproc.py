"""A `studybot` process driven through pipes, for the shutdown and crash-safety tests."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACK = ROOT / "tests" / "fixtures" / "pack"

#: A console acknowledgement of a recorded answer: "(only user7 sees this) ✅ Correct — …".
ACK = re.compile(r"^\(only (\S+) sees this\) (?:✅ Correct|❌ Not quite)")


class BotProcess:
    """`python -m bot ARGS` with stdin kept open; stdout and stderr are collected line by line."""

    def __init__(self, db: Path, *args: str, env: dict[str, str] | None = None, module: str = "bot") -> None:
        """``env`` adds settings; ``module`` is what ``python -m`` runs (a test launcher, say)."""
        base = {k: v for k, v in os.environ.items() if not k.startswith(("STUDYBOT_", "DISCORD_", "SLACK_"))}
        base |= {"STUDYBOT_CONTENT": str(PACK), "STUDYBOT_DB": str(db), "STUDYBOT_LOG_LEVEL": "INFO"}
        base["STUDYBOT_HTTP_PORT"] = "0"  # the dashboard's server: never a fixed port in tests
        base["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), base.get("PYTHONPATH", "")) if p)
        env = base | (env or {})
        self.proc = subprocess.Popen(
            [sys.executable, "-m", module, *(args or ("run",))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            env=env,
            cwd=db.parent,
        )
        self.out: list[str] = []
        self.err: list[str] = []
        self._changed = threading.Condition()
        for stream, sink in ((self.proc.stdout, self.out), (self.proc.stderr, self.err)):
            threading.Thread(target=self._pump, args=(stream, sink), daemon=True).start()

    def _pump(self, stream: object, sink: list[str]) -> None:
        for line in stream:  # type: ignore[attr-defined]
            with self._changed:
                sink.append(line.rstrip("\n"))
                self._changed.notify_all()

    def send(self, *lines: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("".join(f"{ln}\n" for ln in lines))
        self.proc.stdin.flush()

    def ask(self, command: str, expect: str, timeout: float = 30) -> str:
        """Send one line and return the output up to the first line matching ``expect`` (a regex)."""
        with self._changed:
            start = len(self.out)
        self.send(command)
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                new = self.out[start:]
                if any(re.search(expect, line) for line in new):
                    return "\n".join(new)
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise AssertionError(f"{command!r}: no {expect!r} in {new!r}; stderr: {self.err[-5:]!r}")
                self._changed.wait(min(left, 0.2))

    def close(self, timeout: float = 20) -> None:
        """End of input (the console then exits 0); killed if it does not end in time."""
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def acked(self) -> list[str]:
        """Users whose answer was acknowledged so far, in order."""
        with self._changed:
            return [m.group(1) for line in self.out if (m := ACK.match(line))]

    def wait_until(self, done: Callable[[], bool], timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        with self._changed:
            while not done():
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not done()):
                    raise AssertionError(f"gave up waiting; stderr: {self.err[-10:]}; stdout: {self.out[-5:]}")
                self._changed.wait(min(left, 0.2))

    def wait(self, timeout: float = 15) -> int:
        """The exit status; the output pumps are drained first."""
        code = self.proc.wait(timeout=timeout)
        time.sleep(0.05)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


def burst(users: range) -> list[str]:
    """Each user asks for a question and answers it at once."""
    lines = []
    for n in users:
        lines += [f"@user{n} /study quiz", f"@user{n} /study answer A"]
    return lines


def answered_users(db: Path) -> dict[str, int]:
    """user id -> answers stored, read with a plain connection (which recovers the WAL if needed)."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT m.user_id, COUNT(a.id) FROM members m JOIN answers a ON a.member_id = m.id GROUP BY m.user_id"
        ).fetchall()
    return dict(rows)


def integrity(db: Path) -> str:
    with sqlite3.connect(db) as conn:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
