"""`studybot db copy`: a SQLite database moves into PostgreSQL whole, verified, or not at all."""

from __future__ import annotations

import io
import os
import re
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest

from bench.gen_db import generate
from bot.cli import BarProgress
from bot.storage.copy import TableChecksum
from bot.storage.pg_store import PgStore
from tests.pg import PgCluster

ROOT = Path(__file__).resolve().parents[1]
CONSOLE_PACK = ROOT / "tests" / "fixtures" / "console_pack"


def studybot(*args: str, stdin: str | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("STUDYBOT_", "DISCORD_", "SLACK_"))}
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=base | {"STUDYBOT_LOG_LEVEL": "WARNING"} | env,
        timeout=180,
    )


def sqlite_counts(path: Path) -> dict[str, int]:
    conn = sqlite3.connect(path)
    try:
        names = [
            r[0]
            for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'")
            if r[0] != "schema_migrations"
        ]
        return {n: conn.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0] for n in names}
    finally:
        conn.close()


async def pg_counts(url: str, tables: list[str]) -> dict[str, int]:
    conn = await asyncpg.connect(url)
    try:
        return {t: await conn.fetchval(f'SELECT count(*) FROM "{t}"') for t in tables}
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def small_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bench/gen_db.py database at a small size: 300 members, 3,000 answers."""
    return generate(tmp_path_factory.mktemp("gen") / "small.db", members=300, answers=3000, channels=3, days=20)


async def test_a_generated_database_is_copied_whole_and_verified(small_db: Path, pg_db: str) -> None:
    want = sqlite_counts(small_db)
    assert want["members"] == 300 and want["answers"] == 3000
    r = studybot("db", "copy", "--from", f"sqlite:///{small_db}", "--to", pg_db)
    assert r.returncode == 0, r.stderr
    assert await pg_counts(pg_db, list(want)) == want
    for table, n in want.items():
        assert any(line.split()[:2] == [table, f"{n:,}"] for line in r.stdout.splitlines()), (table, r.stdout)
    assert "verified: every table's row count and checksum match" in r.stdout
    # progress on stderr, plain lines when it is not a terminal; the password is in no output
    assert "copying answers: 3,000 rows" in r.stderr and "\r" not in r.stderr
    password = pg_db.split(":")[2].split("@")[0]
    assert password not in r.stdout + r.stderr
    # the rows themselves, not only their number: every member's totals arrived unchanged
    src = sqlite3.connect(small_db)
    members = src.execute(
        "SELECT id, user_id, answered, correct, points, streak, last_point_at FROM members"
    ).fetchall()
    src.close()
    conn = await asyncpg.connect(pg_db)
    try:
        got = await conn.fetch("SELECT id, user_id, answered, correct, points, streak, last_point_at FROM members")
    finally:
        await conn.close()
    assert sorted(tuple(r) for r in got) == sorted(members)


def without_the_newest_member(small_db: Path, db: Path) -> int:
    """A copy of ``small_db`` whose highest member id was deleted (as forget-me does); returns that id."""
    db.write_bytes(small_db.read_bytes())
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA foreign_keys=ON")
    top = int(conn.execute("SELECT max(id) FROM members").fetchone()[0])
    conn.execute("DELETE FROM members WHERE id = ?", (top,))  # its id must never come back
    conn.commit()
    conn.close()
    return top


async def test_the_copy_serves_the_bot_and_new_ids_follow_the_old_ones(
    small_db: Path, pg_db: str, tmp_path: Path
) -> None:
    """Ids continue after the highest copied one — and after SQLite's AUTOINCREMENT high-water mark."""
    db = tmp_path / "trimmed.db"
    top = without_the_newest_member(small_db, db)
    assert studybot("db", "copy", "--from", str(db), "--to", pg_db).returncode == 0
    store = PgStore(pg_db)
    await store.start()
    try:
        now = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
        ref = await store.ensure_member("discord", "G1", "C1", "newcomer", "New", now=now)
        assert ref.member_id == top + 1
        old = await store.ensure_member("discord", "G1", "C1", "U1", "U1", now=now)
        assert (await store.member_stats(old.member_id)).answered > 0, "the copied member is the same member"
    finally:
        await store.close()


async def test_a_target_with_data_is_refused_unless_forced(small_db: Path, pg_db: str) -> None:
    assert studybot("db", "copy", "--from", str(small_db), "--to", pg_db).returncode == 0
    conn = await asyncpg.connect(pg_db)
    await conn.execute("DELETE FROM answers WHERE id IN (SELECT id FROM answers ORDER BY id LIMIT 10)")
    await conn.close()
    again = studybot("db", "copy", "--from", str(small_db), "--to", pg_db)
    assert again.returncode == 1
    [line] = again.stderr.strip().splitlines()[-1:]
    assert "already holds data" in line and "--force" in line and "Traceback" not in again.stderr
    assert (await pg_counts(pg_db, ["answers"]))["answers"] == 2990, "the refused copy changed nothing"
    forced = studybot("db", "copy", "--from", str(small_db), "--to", pg_db, "--force")
    assert forced.returncode == 0, forced.stderr
    assert "replaced the rows of" in forced.stdout
    assert (await pg_counts(pg_db, ["answers"]))["answers"] == 3000


async def test_a_copy_that_does_not_verify_leaves_the_target_empty(small_db: Path, pg_db: str) -> None:
    """A trigger on the target alters rows in flight: the checksum catches it and nothing is committed."""
    assert studybot("db", "migrate", STUDYBOT_DATABASE_URL=pg_db).returncode == 0
    conn = await asyncpg.connect(pg_db)
    await conn.execute(
        """CREATE FUNCTION meddle() RETURNS trigger LANGUAGE plpgsql AS
           $$ BEGIN NEW.points := NEW.points + 1; RETURN NEW; END $$;
           CREATE TRIGGER meddle BEFORE INSERT ON members FOR EACH ROW EXECUTE FUNCTION meddle();"""
    )
    await conn.close()
    r = studybot("db", "copy", "--from", str(small_db), "--to", pg_db)
    assert r.returncode == 1
    assert "members: the rows in the target differ from the source (checksum); nothing was committed" in r.stderr
    assert set((await pg_counts(pg_db, ["groups", "members", "answers"])).values()) == {0}


async def test_the_consoles_database_moves_to_postgres_and_the_bot_carries_on(tmp_path: Path, pg_db: str) -> None:
    db = tmp_path / "console.db"
    lines = [
        "/study quiz",
        "/study answer B",
        "@bob /study quiz",
        "@bob /study answer A",
        "/study timezone Europe/Berlin",
    ]
    first = studybot(
        "console", "--user", "alice", "--db", str(db), stdin="\n".join(lines) + "\n", STUDYBOT_CONTENT=str(CONSOLE_PACK)
    )
    assert first.returncode == 0, first.stderr
    before = studybot(
        "console",
        "--user",
        "alice",
        "--db",
        str(db),
        stdin="/study progress\n@bob /study progress\n/study leaderboard all\n",
        STUDYBOT_CONTENT=str(CONSOLE_PACK),
    )
    r = studybot("db", "copy", "--to", pg_db, STUDYBOT_DB=str(db))  # --from defaults to STUDYBOT_DB
    assert r.returncode == 0, r.stderr
    after = studybot(
        "console",
        "--user",
        "alice",
        stdin="/study progress\n@bob /study progress\n/study leaderboard all\n",
        STUDYBOT_CONTENT=str(CONSOLE_PACK),
        STUDYBOT_DATABASE_URL=pg_db,
    )
    assert after.returncode == 0, after.stderr
    assert "Progress — alice\nAnswered 1" in before.stdout and "Progress — bob\nAnswered 1" in before.stdout

    def shown(text: str) -> str:  # each run draws its chart into its own temp file
        return re.sub(r"\S*\.png", "CHART.png", text)

    assert shown(after.stdout) == shown(before.stdout), "progress and leaderboard read the same from PostgreSQL"


def test_bad_sources_and_targets_get_one_line(tmp_path: Path, pg: PgCluster, small_db: Path) -> None:
    missing = studybot("db", "copy", "--from", str(tmp_path / "nope.db"), "--to", pg.dsn)
    assert (
        missing.returncode == 1
        and missing.stderr.strip() == f"studybot: db copy: no SQLite database at {tmp_path / 'nope.db'}"
    )
    not_pg = studybot("db", "copy", "--from", str(tmp_path / "nope.db"), "--to", f"sqlite:///{tmp_path}/x.db")
    assert not_pg.returncode == 2 and "--to must be a postgresql:// URL" in not_pg.stderr
    no_target = studybot("db", "copy", "--from", str(tmp_path / "nope.db"))
    assert no_target.returncode == 2 and "needs --to" in no_target.stderr
    old = tmp_path / "old.db"
    conn = sqlite3.connect(old)
    conn.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT, applied_at TEXT)")
    conn.execute("INSERT INTO schema_migrations VALUES (1, '0001_init', 'x')")
    conn.commit()
    conn.close()
    stale = studybot("db", "copy", "--from", str(old), "--to", pg.dsn)
    assert stale.returncode == 1 and "run `studybot db migrate --db" in stale.stderr
    wrong_pw = studybot("db", "copy", "--from", str(small_db), "--to", pg.url(password="wrong-password-123"))
    assert wrong_pw.returncode == 2 and "password authentication failed" in wrong_pw.stderr
    assert "wrong-password-123" not in wrong_pw.stderr
    for r in (missing, not_pg, no_target, stale, wrong_pw):
        assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr, r.stderr


def test_the_progress_bar_redraws_in_place_on_a_terminal() -> None:
    out = io.StringIO()
    bar = BarProgress(out, tty=True)
    bar.table("members", 300)
    bar.advance(150)
    bar.advance(150)
    bar.table("answers", 0)
    bar.note("verifying")
    text = out.getvalue()
    assert "\rmembers" in text and "[" + "#" * 30 + "] 300/300" in text and text.endswith("verifying\n")
    assert text.count("\n") == 3, "one line per table and the note"


def test_the_checksum_ignores_row_order_but_not_values_or_types() -> None:
    rows = [(1, "a", None), (2, "b", 1.5)]
    a, b, c, d = TableChecksum(), TableChecksum(), TableChecksum(), TableChecksum()
    a.add_all(rows)
    b.add_all(reversed(rows))
    c.add_all([(1, "a", None), (2, "b", 1.6)])
    d.add_all([(1, "a", None), ("2", "b", 1.5)])
    assert a.hexdigest == b.hexdigest and a.rows == 2
    assert len({a.hexdigest, c.hexdigest, d.hexdigest}) == 3
