"""Crash safety: SIGKILL in the middle of an answer burst loses no acknowledged answer and leaves a
database that passes `PRAGMA integrity_check` (answers are acknowledged only after their commit)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.botproc import BotProcess, answered_users, burst, integrity


@pytest.mark.parametrize("kill_after", [1, 25, 80])
def test_sigkill_mid_burst_keeps_every_acknowledged_answer(kill_after: int, tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    bot = BotProcess(db)
    try:
        bot.send(*burst(range(300)))
        bot.wait_until(lambda: len(bot.acked()) >= kill_after)
        bot.kill()  # SIGKILL: no handler, no clean-up
    finally:
        bot.kill()
    acked = bot.acked()
    assert kill_after <= len(acked) < 300, "killed mid-burst"
    assert integrity(db) == "ok"
    stored = answered_users(db)
    missing = [user for user in acked if user not in stored]
    assert not missing, f"acknowledged but lost: {missing}"
    assert all(count == 1 for count in stored.values())
    # Each member's counters moved in the same transaction as their answer.
    with sqlite3.connect(db) as conn:
        skew = conn.execute(
            "SELECT m.user_id FROM members m LEFT JOIN answers a ON a.member_id = m.id"
            " GROUP BY m.id HAVING m.answered != COUNT(a.id)"
        ).fetchall()
    assert skew == []
    print(f"killed after {len(acked)} acknowledgements; {len(stored)} answers on disk")

    # The restarted bot serves from the same database and remembers the answers.
    again = BotProcess(db, "console", "--user", acked[0])
    try:
        again.send("/study progress", "quit")
        assert again.wait() == 0, again.err
    finally:
        again.kill()
    assert any("Answered 1" in line for line in again.out), again.out
    assert integrity(db) == "ok"
