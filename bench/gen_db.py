"""Deterministic large database: 100,000 members and 1,000,000 answers in one group (fixed seed).

    python -m bench.gen_db [--members N] [--answers N] [--out PATH]

The file is cached under bench/out/ and rebuilt only when missing or made with other parameters.
Rows are written with the stdlib driver in large transactions (this is set-up, not a measurement);
the members' totals, streaks and weekly points are computed to match the answers, as the bot would,
and every (member, question) answered has its FSRS review card, replayed from those answers with the
bot's own scheduler and ratings (wrong → Again, right → Good).

Benchmarks run this module as its own process (`ensure`), so that building the file never counts
towards the measured process's memory.
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fsrs import Card

from bench.common import OUT, ROOT, progress
from bot.config import BUNDLED_CONTENT
from bot.core.content import load_pack
from bot.core.learning import card_id_for, make_scheduler, rating_for
from bot.storage.migrations import discover, migrate

SEED = 20261123
START = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)  # a Monday; 200 days of daily posts follow


def ts(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


#: Bumped whenever the generated content changes, so a cached file of an older kind is not reused.
VERSION = 2


def default_path(members: int, answers: int) -> Path:
    """The cached file for these sizes, this generator and the current schema (the last migration)."""
    schema = len(discover())
    return OUT / f"large-{members}-{answers}-{SEED}-v{VERSION}-m{schema:04d}.db"


def ensure(members: int = 100_000, answers: int = 1_000_000) -> Path:
    """The cached database's path, generating it first in a separate process when it is missing.
    Raises `subprocess.CalledProcessError` when generation fails."""
    path = default_path(members, answers)
    if not path.exists():
        for stale in OUT.glob(f"large-{members}-{answers}-*"):  # made by an older generator or schema
            stale.unlink()
        cmd = [sys.executable, "-m", "bench.gen_db", "--members", str(members), "--answers", str(answers)]
        subprocess.run(cmd, cwd=ROOT, check=True, stdout=sys.stderr)
    return path


def generate(path: Path, members: int = 100_000, answers: int = 1_000_000, channels: int = 10, days: int = 200) -> Path:
    """Build the database at ``path`` unless it already exists; returns the path."""
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    rng = random.Random(SEED)
    pack = load_pack(BUNDLED_CONTENT)
    questions = [(q.id, q.answer) for q in pack.questions]
    conn = sqlite3.connect(tmp, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    migrate(conn)
    t0 = time.perf_counter()
    conn.execute("BEGIN")
    conn.execute(
        "INSERT INTO groups (id, platform, external_id, name, tz, created_at) VALUES (1, 'discord', 'G1', 'Big study group', 'Europe/Berlin', ?)",
        (ts(START),),
    )
    conn.executemany(
        "INSERT INTO channels (id, group_id, external_id, name) VALUES (?, 1, ?, ?)",
        [(c, f"C{c}", f"study-{c}") for c in range(1, channels + 1)],
    )
    # One question post per channel per day.
    posts = []
    for d in range(days):
        for c in range(1, channels + 1):
            qid, right = questions[(d * channels + c) % len(questions)]
            posts.append((len(posts) + 1, c, qid, right, START + timedelta(days=d)))
    conn.executemany(
        "INSERT INTO posts (id, group_id, channel_id, member_id, kind, item_id, created_at, message_id) VALUES (?, 1, ?, NULL, 'question', ?, ?, ?)",
        [(pid, c, qid, ts(at), f"M{pid}") for pid, c, qid, _, at in posts],
    )
    # Each answer: a member answers a post (unique per member+post). A fifth of the answers are skewed
    # towards low member ids, so a few members answer hundreds of questions, as in real groups.
    per_member = [0] * (members + 1)
    stats = {}
    rows = []
    weekly: dict[tuple[int, str], list[object]] = {}
    seen_q: dict[int, set[str]] = {}
    made = 0
    batch = 50_000
    while made < answers:
        m = int(members * rng.random() ** 2) + 1 if rng.random() < 0.2 else rng.randint(1, members)
        pid, c, qid, right, at = posts[rng.randrange(len(posts))]
        key = (m, pid)
        if key in stats:
            continue
        choice = right if rng.random() < 0.62 else rng.choice("ABCD")
        correct = int(choice == right)
        qs = seen_q.setdefault(m, set())
        first = int(qid not in qs)
        qs.add(qid)
        when = at + timedelta(minutes=rng.randint(1, 600))
        stats[key] = True
        per_member[m] += 1
        rows.append((m, pid, qid, choice, correct, first, ts(when)))
        if correct and first:
            wk = (when.date() - timedelta(days=when.weekday())).isoformat()
            w = weekly.setdefault((m, wk), [0, ""])
            w[0] = int(w[0]) + 1  # type: ignore[call-overload]
            w[1] = max(str(w[1]), ts(when))
        made += 1
        if len(rows) >= batch:
            progress(made, answers, "answers")
            rows_to_write, rows = rows, []
            _write_answers(conn, rows_to_write)
    _write_answers(conn, rows)
    progress(answers, answers, "answers")
    stats.clear()
    # Members with totals computed from their answers.
    totals = conn.execute(
        "SELECT member_id, COUNT(*), SUM(correct), SUM(correct AND first_try), MAX(CASE WHEN correct AND first_try THEN answered_at END), MAX(answered_at) FROM answers GROUP BY member_id"
    ).fetchall()
    by_member = {r[0]: r[1:] for r in totals}
    member_rows = []
    for m in range(1, members + 1):
        n, corr, pts, last_pt, last = by_member.get(m, (0, 0, 0, None, None))
        last_day = last[:10] if last else None
        streak = rng.randint(1, 30) if last else 0
        member_rows.append(
            (
                m,
                f"U{m}",
                f"member{m}",
                ts(START),
                n,
                corr or 0,
                pts or 0,
                last_pt,
                streak,
                streak,
                last_day,
                min(2, streak // 7),
            )
        )
        if m % 20_000 == 0:
            progress(m, members, "members")
    conn.executemany(
        "INSERT INTO members (id, group_id, user_id, display_name, joined_at, answered, correct, points, last_point_at, streak, best_streak, last_active_day, freezes) VALUES (?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        member_rows,
    )
    conn.executemany(
        "INSERT INTO weekly_points (member_id, week, group_id, points, last_point_at) VALUES (?, ?, 1, ?, ?)",
        [(m, wk, p, last) for (m, wk), (p, last) in weekly.items()],
    )
    # Steps done for some members.
    conn.executemany(
        "INSERT INTO path_steps (member_id, step, done_at) VALUES (?, ?, ?)",
        [(m, s, ts(START)) for m in range(1, members + 1, 3) for s in range(1, 1 + (m % 4))],
    )
    _write_cards(conn)
    conn.execute("COMMIT")
    conn.execute("ANALYZE")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    tmp.rename(path)
    print(f"generated {path} in {time.perf_counter() - t0:.1f} s", flush=True)
    return path


def _write_answers(conn: sqlite3.Connection, rows: list[tuple[object, ...]]) -> None:
    conn.executemany(
        "INSERT INTO answers (member_id, post_id, group_id, question_id, choice, correct, first_try, answered_at) VALUES (?, ?, 1, ?, ?, ?, ?, ?)",
        rows,
    )


def _write_cards(conn: sqlite3.Connection) -> None:
    """One FSRS card per (member, question) answered, replaying that member's answers to it in order."""
    scheduler = make_scheduler()
    rows = conn.execute(
        "SELECT member_id, question_id, answered_at, correct FROM answers ORDER BY member_id, question_id, answered_at"
    )
    batch: list[tuple[int, str, str, str]] = []
    key: tuple[int, str] | None = None
    card: Card | None = None
    written = 0

    def flush_card() -> None:
        nonlocal written
        if key is not None and card is not None:
            batch.append((key[0], key[1], json.dumps(card.to_dict(), separators=(",", ":")), ts(card.due)))
            written += 1

    for member_id, question_id, answered_at, correct in rows:
        at = datetime.fromisoformat(answered_at)
        if (member_id, question_id) != key:
            flush_card()
            key = (member_id, question_id)
            card = Card(card_id=card_id_for(member_id, question_id), due=at)
        assert card is not None
        card, _ = scheduler.review_card(card, rating_for(bool(correct)), review_datetime=at)
        if len(batch) >= 50_000:
            conn.executemany("INSERT INTO cards (member_id, question_id, card, due) VALUES (?, ?, ?, ?)", batch)
            batch.clear()
            sys.stderr.write(f"\rcards {written:,}")
            sys.stderr.flush()
    flush_card()
    conn.executemany("INSERT INTO cards (member_id, question_id, card, due) VALUES (?, ?, ?, ?)", batch)
    sys.stderr.write(f"\rcards {written:,}\n")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--members", type=int, default=100_000)
    p.add_argument("--answers", type=int, default=1_000_000)
    p.add_argument("--out", type=Path, default=None)
    a = p.parse_args()
    generate(a.out or default_path(a.members, a.answers), a.members, a.answers)


if __name__ == "__main__":
    main()
