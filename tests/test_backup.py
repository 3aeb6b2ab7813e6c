"""`studybot db backup PATH`: a consistent, verified copy made while the bot keeps writing; and the
documented restore (stop, copy over STUDYBOT_DB, start)."""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.backup import BackupError, backup
from bot.storage import SqliteStore
from tests.botproc import PACK, BotProcess, answered_users, burst, integrity


def fresh(db: Path) -> None:
    async def migrate() -> None:
        store = SqliteStore(db)
        await store.start()
        await store.close()

    asyncio.run(migrate())


def groups(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM groups").fetchone()[0])


def test_backup_while_another_connection_writes(tmp_path: Path) -> None:
    db = tmp_path / "live.db"
    fresh(db)
    committed = 0
    stop = threading.Event()

    def writer() -> None:
        nonlocal committed
        conn = sqlite3.connect(db, isolation_level=None, timeout=10)
        conn.execute("PRAGMA journal_mode=WAL")
        n = 0
        while not stop.is_set():
            n += 1
            stamp = datetime.now(UTC).isoformat()
            conn.execute(
                "INSERT INTO groups (platform, external_id, created_at) VALUES ('slack', ?, ?)", (f"T{n}", stamp)
            )
            committed = n  # after the autocommit insert returned
        conn.close()

    thread = threading.Thread(target=writer)
    thread.start()
    results = []
    try:
        for i in range(5):
            while committed < 50 * (i + 1):
                time.sleep(0.01)
            before = committed
            result = backup(db, tmp_path / f"copy{i}.db")
            after = committed
            results.append((before, groups(result.path), after))
            assert integrity(result.path) == "ok"
    finally:
        stop.set()
        thread.join()
    for (before, copied, after), i in zip(results, range(5), strict=True):
        assert before <= copied <= after, (before, copied, after)
        copy = tmp_path / f"copy{i}.db"
        assert not Path(f"{copy}-wal").exists()
        with sqlite3.connect(copy) as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete", "one self-contained file"
    assert groups(db) == committed > results[-1][2], "the writer went on during and after the backups"


def test_backup_of_the_running_bot_through_the_command_line(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    bot = BotProcess(db)
    try:
        bot.send(*burst(range(150)))
        bot.wait_until(lambda: len(bot.acked()) >= 30)
        acked_before = set(bot.acked())
        env = {k: v for k, v in os.environ.items() if not k.startswith(("STUDYBOT_", "DISCORD_", "SLACK_"))}
        run = subprocess.run(
            [sys.executable, "-m", "bot", "db", "backup", str(tmp_path / "backups" / "b.db")],
            capture_output=True,
            text=True,
            env=env | {"STUDYBOT_DB": str(db), "STUDYBOT_CONTENT": str(PACK)},
            timeout=60,
        )
        bot.send("quit")
        assert bot.wait() == 0, bot.err
    finally:
        bot.kill()
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith(f"backed up {db} to {tmp_path / 'backups' / 'b.db'}")
    copy = tmp_path / "backups" / "b.db"
    assert integrity(copy) == "ok"
    in_copy = set(answered_users(copy))
    assert acked_before <= in_copy <= set(answered_users(db))
    print(f"backup taken after {len(acked_before)} answers holds {len(in_copy)}; the bot went on to {len(bot.acked())}")


async def test_restore_as_documented(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    store = SqliteStore(db)
    await store.start()
    await store.run_sync(
        lambda c: c.execute("INSERT INTO groups (platform, external_id, created_at) VALUES ('slack', 'KEEP', 'x')")
    )
    backup(db, tmp_path / "b.db")
    await store.run_sync(
        lambda c: c.execute("INSERT INTO groups (platform, external_id, created_at) VALUES ('slack', 'LATER', 'x')")
    )
    await store.close()  # 1. stop the bot
    for leftover in (Path(f"{db}-wal"), Path(f"{db}-shm")):  # 2. copy the backup over STUDYBOT_DB
        leftover.unlink(missing_ok=True)
    shutil.copy(tmp_path / "b.db", db)
    restarted = SqliteStore(db)  # 3. start
    await restarted.start()
    rows = await restarted.run_sync(lambda c: [r[0] for r in c.execute("SELECT external_id FROM groups")])
    await restarted.close()
    assert rows == ["KEEP"]
    assert integrity(db) == "ok"


def test_backup_refusals_leave_nothing_behind(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    with pytest.raises(BackupError, match="does not exist"):
        backup(db, tmp_path / "b.db")
    fresh(db)
    with pytest.raises(BackupError, match="live database itself"):
        backup(db, tmp_path / "." / "s.db")
    with pytest.raises(BackupError, match="is a folder"):
        backup(db, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("s.db")) == []


def test_backup_replaces_an_older_backup(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    fresh(db)
    target = tmp_path / "b.db"
    target.write_text("an old, broken backup")
    result = backup(db, target)
    assert result.schema_version >= 1 and integrity(target) == "ok"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == [], "no partial file left"
