"""Graceful shutdown: SIGTERM/SIGINT stop a running bot with status 0, the command being handled
finishes and is answered, and the database is closed intact with everything that was acknowledged."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.botproc import BotProcess, answered_users, burst, integrity


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_the_bot_cleanly(sig: signal.Signals, tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    bot = BotProcess(db)
    try:
        for n in range(3):
            bot.send(*burst(range(n, n + 1)))
            bot.wait_until(lambda n=n: len(bot.acked()) == n + 1)  # type: ignore[misc]
        bot.proc.send_signal(sig)
        assert bot.wait() == 0, bot.err
    finally:
        bot.kill()
    assert any("shutting down" in line for line in bot.err)
    assert integrity(db) == "ok"
    assert answered_users(db) == {"user0": 1, "user1": 1, "user2": 1}
    assert not any("Traceback" in line for line in bot.err), bot.err


def test_in_flight_commands_finish_before_exit(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    bot = BotProcess(db)
    try:
        bot.send(*burst(range(200)))  # far more than it can answer before the signal
        bot.wait_until(lambda: len(bot.acked()) >= 20)
        bot.proc.send_signal(signal.SIGTERM)
        assert bot.wait() == 0, bot.err
    finally:
        bot.kill()
    acked = bot.acked()
    stored = answered_users(db)
    assert integrity(db) == "ok"
    assert len(acked) < 200, "the signal arrived mid-burst"
    # Nothing half-done: every answer written was also acknowledged (not cut off between commit and reply),
    # and every acknowledged answer was written.
    assert set(stored) == set(acked) and all(count == 1 for count in stored.values())
    # Commands stop being read at the signal: it did not run on to the end of the piped burst.
    print(f"answered before SIGTERM took effect: {len(acked)} of 200")
