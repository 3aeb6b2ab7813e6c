"""The database file under stress: several processes on one file, damaged, read-only and deleted files.

Real processes on a real file: `python -m bot run` (the console front end, no tokens) and
`python -m bot console`, driven through pipes (`tests.botproc`)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.storage import SqliteStore
from bot.storage.dbfile import BUSY_TEXT, DatabaseBusy, RunLock
from bot.storage.migrations import migrate
from tests.botproc import PACK, ROOT, BotProcess, answered_users

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def studybot(*args: str, cwd: Path, wrap: list[str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STUDYBOT_", "DISCORD_", "SLACK_"))}
    env |= {"STUDYBOT_CONTENT": str(PACK), "STUDYBOT_DB": str(cwd / "s.db"), "STUDYBOT_HTTP_PORT": "0"}
    return subprocess.run(
        [*(wrap or []), sys.executable, "-m", "bot", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def one_line(run: subprocess.CompletedProcess[str]) -> str:
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in run.stderr, run.stderr
    return lines[0]


def make_db(path: Path, members: int = 0) -> None:
    """A migrated database with ``members`` members (rows enough to span many pages)."""
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
        migrate(conn)
    if members:
        with sqlite3.connect(path) as conn:
            conn.execute("INSERT INTO groups (platform, external_id, created_at) VALUES ('console', 'g', 'x')")
            conn.executemany(
                "INSERT INTO members (group_id, user_id, display_name, joined_at) VALUES (1, ?, ?, 'x')",
                [(f"u{i}", f"member number {i} " + "x" * 40) for i in range(members)],
            )
        sqlite3.connect(path).execute("PRAGMA wal_checkpoint(TRUNCATE)").close()


# ------------------------------------------------------------------ item 2: several processes


def test_a_second_run_on_one_database_is_refused_with_one_line(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    first = BotProcess(db)
    try:
        first.send("@ann /study path done 1")
        first.wait_until(lambda: any("marked done" in line for line in first.out))
        second = studybot("run", cwd=tmp_path)
        assert second.returncode == 2
        assert one_line(second) == f"studybot: {BUSY_TEXT}"
        # The first bot is untouched and still serves.
        first.send("@ann /study path done 2")
        first.wait_until(lambda: sum("marked done" in line for line in first.out) == 2)
        first.proc.send_signal(signal.SIGKILL)  # no clean-up: the kernel drops the lock with the process
        first.wait()
    finally:
        first.kill()
    again = BotProcess(db)
    try:
        again.send("@ann /study path", "quit")
        assert again.wait() == 0, again.err
    finally:
        again.kill()
    assert any(line.startswith("✅ 2.") for line in again.out), again.out


def test_the_console_beside_a_running_bot_never_acts_on_someone_elses_member(tmp_path: Path) -> None:
    """The running bot caches alice's member; the console forgets alice and carol joins. Before, carol
    got alice's old id and the bot, trusting its cache, marked alice's steps on carol's record."""
    db = tmp_path / "s.db"
    bot = BotProcess(db)
    try:
        bot.send("@alice /study path done 2")
        bot.wait_until(lambda: any("Step 2" in line for line in bot.out))
        side = BotProcess(db, "console", "--user", "alice")
        try:
            side.send("/study forget-me confirm", "@carol /study path", "quit")
            assert side.wait() == 0, side.err
        finally:
            side.kill()
        assert any("is gone" in line for line in side.out), side.out
        bot.send("@alice /study path done 3", "@alice /study path")
        bot.wait_until(lambda: sum("of 6 done" in line for line in bot.out) == 1)
    finally:
        bot.kill()
    assert not any("went wrong" in line for line in bot.out), bot.out
    path_lines = bot.out[-9:]
    assert "✅ 3. Experience — Gain hands-on project experience." in path_lines, path_lines
    assert not any(line.startswith("✅ 2.") for line in path_lines), "alice was forgotten: step 2 is gone"
    with sqlite3.connect(db) as conn:
        steps = dict(
            conn.execute(
                "SELECT m.user_id, GROUP_CONCAT(p.step) FROM members m"
                " LEFT JOIN path_steps p ON p.member_id = m.id GROUP BY m.id"
            ).fetchall()
        )
    assert steps == {"carol": None, "alice": "3"}, steps


async def test_cached_members_and_posts_follow_another_processs_writes(tmp_path: Path) -> None:
    """Two stores on one file (two connections, as two processes have): each one's caches follow the
    other's commits — a zone change, a forgotten member, a revealed post."""
    db = tmp_path / "two.db"
    bot, other = SqliteStore(db), SqliteStore(db)
    await bot.start()
    await other.start()
    try:
        ann = await bot.ensure_member("console", "g", "c", "u1", "Ann", now=NOW)
        post = await bot.create_post(ann.group_id, ann.channel_id, None, "question", "t-a", NOW)
        assert (await bot.get_post(post.id)) == post  # cached now
        await other.set_member_tz(ann.member_id, "Asia/Tokyo")
        assert (await bot.ensure_member("console", "g", "c", "u1", "Ann", now=NOW)).tz == "Asia/Tokyo"
        await other.run_sync(
            lambda c: c.execute("UPDATE posts SET revealed_at = '2026-11-24T00:00:00.000000Z' WHERE id = ?", (post.id,))
        )
        fresh = await bot.get_post(post.id)
        assert fresh is not None and fresh.revealed_at is not None
        await other.forget_member(ann.member_id)
        again = await bot.ensure_member("console", "g", "c", "u1", "Ann", now=NOW)
        assert again.member_id != ann.member_id and again.tz is None
        # With nobody else writing, the caches serve: no hop for a repeated lookup.
        hops = 0
        real = bot._run

        async def counting(fn, *args):  # type: ignore[no-untyped-def]
            nonlocal hops
            hops += 1
            return await real(fn, *args)

        bot._run = counting  # type: ignore[method-assign]
        for _ in range(5):
            await bot.ensure_member("console", "g", "c", "u1", "Ann", now=NOW)
            await bot.get_post(post.id)
        assert hops <= 2, hops
    finally:
        await bot.close()
        await other.close()


# ------------------------------------------------------------------ item 8: damaged databases

GARBAGE = b"this is not a database, just some text that got here somehow\n" * 200


ALL = [["run"], ["console"], ["db", "migrate"], ["export", "--out", "out"], ["db", "backup", "b.db"], ["health"]]


@pytest.mark.parametrize(
    ("damage", "command"), [*(("garbage", c) for c in ALL), ("truncated", ["console"]), ("truncated", ["health"])]
)
def test_a_damaged_database_file_gives_one_line_and_is_left_alone(
    damage: str, command: list[str], tmp_path: Path
) -> None:
    db = tmp_path / "s.db"
    if damage == "garbage":
        db.write_bytes(GARBAGE)
    else:
        make_db(db, members=300)
        db.write_bytes(db.read_bytes()[:5000])
    before = db.read_bytes()
    run = studybot(*command, *(["--db", str(db)] if command != ["run"] else []), cwd=tmp_path)
    line = one_line(run)
    assert run.returncode == (1 if command == ["health"] else 2), run.stderr  # health: Docker's 0 or 1
    assert str(db.name) in line
    assert db.read_bytes() == before, "the damaged file is left as it was"
    assert not (tmp_path / "b.db").exists() and not (tmp_path / "out").exists()


def _without_root_powers() -> list[str]:
    """A prefix that makes a write-protected file unwritable even for root (which ignores the mode)."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("running as root without setpriv (util-linux): cannot make a file read-only for the bot")
        pytest.skip("running as root without setpriv: cannot make a file read-only for the bot")
    caps = "-dac_override,-dac_read_search"
    return ["setpriv", "--bounding-set", caps, "--inh-caps", caps]


@pytest.mark.parametrize("command", [["run"], ["console"], ["db", "migrate"], ["health"]])
def test_a_read_only_database_is_refused_at_start_with_one_line(command: list[str], tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    make_db(db, members=3)
    db.chmod(0o444)
    run = studybot(
        *command, *(["--db", str(db)] if command != ["run"] else []), cwd=tmp_path, wrap=_without_root_powers()
    )
    assert "read-only" in one_line(run)
    assert run.returncode == (1 if command == ["health"] else 2)


@pytest.mark.parametrize("command", [["run"], ["console"], ["db", "migrate"], ["export", "--out", "csv"], ["health"]])
def test_a_folder_given_as_the_database_is_one_line_that_says_so(command: list[str], tmp_path: Path) -> None:
    (tmp_path / "s.db").mkdir()  # STUDYBOT_DB names a folder
    run = studybot(*command, cwd=tmp_path)
    assert "is a folder, not a database file" in one_line(run)  # and no thread's traceback after it
    assert run.returncode == (1 if command == ["health"] else 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.db"] and not any((tmp_path / "s.db").iterdir())


def test_a_read_only_database_can_still_be_backed_up(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    make_db(db, members=3)
    db.chmod(0o444)
    run = studybot("db", "backup", "b.db", "--db", str(db), cwd=tmp_path, wrap=_without_root_powers())
    assert run.returncode == 0, run.stderr
    with sqlite3.connect(tmp_path / "b.db") as conn:
        assert conn.execute("SELECT COUNT(*) FROM members").fetchone()[0] == 3


def test_health_finds_a_corrupted_page(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    make_db(db, members=2000)
    assert studybot("health", "--db", str(db), cwd=tmp_path).returncode == 0
    with sqlite3.connect(db) as conn:
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        (root,) = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'members'").fetchone()
    raw = bytearray(db.read_bytes())
    raw[(root - 1) * page_size : root * page_size] = b"\xa5" * page_size  # the members table's root page
    db.write_bytes(bytes(raw))
    run = studybot("health", "--db", str(db), cwd=tmp_path)
    assert run.returncode == 1
    assert "is damaged" in one_line(run) and "restore a backup" in run.stderr


# ------------------------------------------------------------------ item 8: a database deleted under the bot


def test_a_database_deleted_under_the_running_bot_stops_acknowledging(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    bot = BotProcess(db)
    try:
        for n in range(5):
            bot.send(f"@user{n} /study quiz", f"@user{n} /study answer A")
        bot.wait_until(lambda: len(bot.acked()) == 5)
        db.unlink()
        for n in range(5, 15):
            bot.send(f"@user{n} /study quiz", f"@user{n} /study answer A")
        bot.wait_until(lambda: sum("try again" in line for line in bot.out) >= 10)
        health = studybot("health", "--db", str(db), cwd=tmp_path)
        bot.send("@user0 /study answer B")
        bot.wait_until(lambda: sum("try again" in line for line in bot.out) >= 11)
        assert len(bot.acked()) == 5, "nothing is acknowledged once the file is gone"
        bot.send("quit")
        assert bot.wait() == 0, bot.err
    finally:
        bot.kill()
    assert health.returncode == 1 and "missing" in one_line(health)
    loud = [line for line in bot.err if "CRITICAL" in line]
    assert len(loud) == 1 and "was deleted" in loud[0], bot.err
    # What the bot held is rescued beside it: every acknowledged answer.
    [rescued] = tmp_path.glob("s.db.rescued-*")
    assert set(answered_users(rescued)) == {f"user{n}" for n in range(5)}
    # A restart does not start afresh on an empty database in its place.
    restart = studybot("run", cwd=tmp_path)
    assert restart.returncode == 2 and "s.db is missing" in one_line(restart)
    assert not db.exists()
    # Putting the rescued file back is the way out.
    rescued.rename(db)
    back = BotProcess(db, "console", "--user", "user3")
    try:
        back.send("/study progress", "quit")
        assert back.wait() == 0, back.err
    finally:
        back.kill()
    assert any("Answered 1" in line for line in back.out), back.out


def test_health_fails_when_the_running_bots_file_was_replaced(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    bot = BotProcess(db)
    try:
        bot.send("@ann /study path done 1")
        bot.wait_until(lambda: any("marked done" in line for line in bot.out))
        assert studybot("health", "--db", str(db), cwd=tmp_path).returncode == 0
        shutil.copy(db, tmp_path / "copy.db")
        os.replace(tmp_path / "copy.db", db)  # e.g. a backup restored while the bot still runs
        health = studybot("health", "--db", str(db), cwd=tmp_path)
        assert health.returncode == 1 and "deleted or replaced" in one_line(health)
        bot.send("@ann /study path done 2")
        bot.wait_until(lambda: any("try again" in line for line in bot.out))
    finally:
        bot.kill()
    assert not any("Step 2" in line for line in bot.out)


def test_a_fresh_start_creates_the_database_and_says_so(tmp_path: Path) -> None:
    run = studybot("db", "migrate", "--db", str(tmp_path / "new.db"), cwd=tmp_path)
    assert run.returncode == 0 and "created a new, empty database" in run.stderr
    assert (tmp_path / "new.db.lock").exists(), "the record that a database lives here"
    (tmp_path / "new.db").unlink()
    gone = studybot("db", "migrate", "--db", str(tmp_path / "new.db"), cwd=tmp_path)
    assert gone.returncode == 2 and "new.db.lock beside it shows there was one" in one_line(gone)
    for leftover in tmp_path.glob("new.db*"):
        leftover.unlink()
    assert studybot("db", "migrate", "--db", str(tmp_path / "new.db"), cwd=tmp_path).returncode == 0


def test_processes_that_split_discord_shards_share_the_file_and_no_one_else(tmp_path: Path) -> None:
    """`run` with STUDYBOT_DISCORD_SHARD_IDS locks only its shards (the full run over a fake Discord is
    tests/test_discord_shards.py); another process wanting one of them, or everything, is refused."""
    db = tmp_path / "s.db"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from pathlib import Path; from bot.storage.dbfile import RunLock;"
            f" lock = RunLock(Path({str(db)!r}), [1, 3]); lock.acquire(); print('held', flush=True); sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        with pytest.raises(DatabaseBusy, match="already serves Discord shard 3"):
            RunLock(db, [0, 3]).acquire()
        with pytest.raises(DatabaseBusy) as everything:
            RunLock(db).acquire()
        assert str(everything.value) == BUSY_TEXT
        other = RunLock(db, [0, 2])
        other.acquire()
        other.release()
    finally:
        holder.communicate("", timeout=10)
    alone = RunLock(db)
    alone.acquire()  # the holder is gone, and its locks with it
    alone.release()
