"""P2: answers recorded per second when 10,000 members answer one post at once, against the same work
done bare.

Every answer goes through the core (`StudyService.handle` with the button's action id) and the real
store, and each caller gets its reply only after its answer is committed (synchronous=FULL, WAL). The
process is as `bot.bootstrap.serve` leaves it once the bot is up (`settle_gc`, as bench P1 does too):
what start-up loaded is moved out of the collector's reach (the members and everything after are not),
and the young generation is collected every `GC_YOUNG` allocations. The ceilings run with that same
threshold.

The ceiling, in the same run and on the same disk: the **same statements** the store runs for an
answer — insert the answer (first try or not), read and update the member's totals and streak, the
week's points, read and upsert the FSRS review card, with the same streak rule and FSRS update in
Python — on the same schema, in a plain stdlib `sqlite3` loop on one thread, group-committed in
batches of the store's `MAX_BATCH` with the same pragmas. The core runs `TRIALS` times, the ceiling
before, between and after them; the figure is the median over the core runs of each one's rate over the
mean of the two ceiling runs beside it (one burst takes under a second, and one run against one drifts
with the machine's load). Also printed: that SQL committing once per answer (what acknowledging after commit costs
without group commit), and the statements the store now runs for a batch of answers (since session 5:
one read each of the batch's streaks, answered questions, answered posts and cards, then the writes with
`executemany`; `bot.storage.sqlite_store._record_answers`) in the same plain loop. The figure stays over
the per-answer ceiling, the same work done the simplest way; the batched loop shows what the core's
own statements would reach bare.
"""

from __future__ import annotations

import asyncio
import gc
import json
import sqlite3
import statistics
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

from bench.common import Figure
from bot.bootstrap import GC_YOUNG, build_app, settle_gc
from bot.config import BUNDLED_CONTENT, Settings
from bot.core import actions
from bot.core.content import load_pack
from bot.core.learning import make_scheduler, rating_for, review
from bot.core.messages import Inbound
from bot.core.ports import StreakState
from bot.core.progress import advance_streak
from bot.core.timezones import week_start
from bot.storage import sql
from bot.storage.migrations import migrate
from bot.storage.sqlite_store import MAX_BATCH, ts

N = 10_000
#: Core runs per figure, each between two ceiling runs.
TRIALS = 3


class Clock:
    def now(self) -> datetime:
        return datetime(2026, 11, 23, 9, 5, tzinfo=UTC)


async def core_rate(folder: Path) -> tuple[float, int]:
    # The shipped wiring: the learning engine updates each member's review card inside the answer's
    # transaction, and missed posts are looked up for streaks.
    settings = Settings(STUDYBOT_DB=folder / "p2.db", STUDYBOT_CONTENT=BUNDLED_CONTENT)  # type: ignore[call-arg]
    app = await build_app(settings, clock=Clock())
    # As serve() does once the bot is up (before any member has used it): the burst's full collections
    # then walk what the bot made since, not every module and content object loaded at start.
    settle_gc()
    store, service = app.store, app.service
    now = Clock().now()
    # The members already exist (they joined on earlier days); the post is today's question.
    members = [await store.ensure_member("discord", "G1", "C1", f"U{i}", f"m{i}", now=now) for i in range(N)]
    q = service.library.pack.questions[0]
    post = await store.create_post(members[0].group_id, members[0].channel_id, None, "question", q.id, now)
    letters = "ABCD"

    async def click(i: int) -> str:
        action = actions.answer_action(post.id, letters[i % 4])
        [reply] = await service.handle(Inbound("discord", "G1", "C1", f"U{i}", f"m{i}", action=action))
        return reply.text

    batches_before = store.batches_committed
    t = time.perf_counter()
    replies = await asyncio.gather(*(click(i) for i in range(N)))
    elapsed = time.perf_counter() - t
    batches = store.batches_committed - batches_before
    assert all(r.startswith(("✅", "❌")) for r in replies), replies[:3]
    counts = await store.choice_counts(post.id)
    assert sum(counts.values()) == N, counts
    cards = await store.run_sync(lambda conn: conn.execute("SELECT COUNT(*) FROM cards").fetchone()[0])
    assert cards == N, f"{cards} review cards for {N} answers"
    await app.close()
    gc.unfreeze()
    gc.collect()
    return N / elapsed, batches


def _bare(path: Path, answers: int) -> sqlite3.Connection:
    """The schema, the pragmas, one group and channel, ``answers`` members who joined earlier, one post."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    migrate(conn)
    now = Clock().now()
    at = ts(now)
    conn.execute(
        "INSERT INTO groups (id, platform, external_id, name, created_at) VALUES (1, 'discord', 'G1', '', ?)", (at,)
    )
    conn.execute("INSERT INTO channels (id, group_id, external_id, name) VALUES (1, 1, 'C1', '')")
    conn.executemany(
        "INSERT INTO members (id, group_id, user_id, display_name, joined_at) VALUES (?, 1, ?, ?, ?)",
        [(i + 1, f"U{i}", f"m{i}", at) for i in range(answers)],
    )
    q = load_pack(BUNDLED_CONTENT).questions[0]
    conn.execute(
        "INSERT INTO posts (id, group_id, channel_id, member_id, kind, item_id, created_at) VALUES (1, 1, 1, NULL, 'question', ?, ?)",
        (q.id, at),
    )
    return conn


def ceiling_rate(path: Path, batch: int = MAX_BATCH, answers: int = N) -> float:
    """The statements `SqliteStore.record_answer` ran for one answer until session 5 (`_record_one`, still
    its write-by-write redo) for ``answers`` members on one post, committed every ``batch`` answers, in a
    plain loop; returns answers per second."""
    conn = _bare(path, answers)
    now = Clock().now()
    at = ts(now)
    q = load_pack(BUNDLED_CONTENT).questions[0]
    scheduler = make_scheduler()
    today = now.date()
    week = week_start(now, "UTC").isoformat()
    t = time.perf_counter()
    for first in range(0, answers, batch):
        conn.execute("BEGIN IMMEDIATE")
        for i in range(first, min(answers, first + batch)):
            mid, letter = i + 1, "ABCD"[i % 4]
            correct = letter == q.answer
            (first_try,) = conn.execute(
                "INSERT INTO answers (member_id, post_id, group_id, question_id, choice, correct, first_try, answered_at)"
                " VALUES (?, 1, 1, ?, ?, ?, NOT EXISTS (SELECT 1 FROM answers WHERE member_id = ? AND question_id = ?), ?)"
                " ON CONFLICT (member_id, post_id) DO NOTHING RETURNING first_try",
                (mid, q.id, letter, int(correct), mid, q.id, at),
            ).fetchone()
            streak, best, last, freezes = conn.execute(
                "SELECT streak, best_streak, last_active_day, freezes FROM members WHERE id = ?", (mid,)
            ).fetchone()
            state = StreakState(streak, best, date.fromisoformat(last) if last else None, freezes)
            new = advance_streak(state, today, frozenset())
            point = int(correct and first_try)
            conn.execute(
                "UPDATE members SET answered = answered + 1, correct = correct + ?, points = points + ?,"
                " last_point_at = CASE WHEN ? THEN ? ELSE last_point_at END,"
                " streak = ?, best_streak = ?, last_active_day = ?, freezes = ? WHERE id = ?",
                (int(correct), point, point, at, new.streak, new.best, today.isoformat(), new.freezes, mid),
            )
            if point:
                conn.execute(
                    "INSERT INTO weekly_points (member_id, week, group_id, points, last_point_at) VALUES (?, ?, 1, 1, ?)"
                    " ON CONFLICT (member_id, week) DO UPDATE SET points = points + 1, last_point_at = excluded.last_point_at",
                    (mid, week, at),
                )
            old = conn.execute("SELECT card FROM cards WHERE member_id = ? AND question_id = ?", (mid, q.id)).fetchone()
            card, due = review(
                scheduler, old[0] if old else None, member_id=mid, question_id=q.id, rating=rating_for(correct), at=now
            )
            conn.execute(
                "INSERT INTO cards (member_id, question_id, card, due) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (member_id, question_id) DO UPDATE SET card = excluded.card, due = excluded.due",
                (mid, q.id, card, ts(due)),
            )
        conn.execute("COMMIT")
    rate = answers / (time.perf_counter() - t)
    (cards,) = conn.execute("SELECT COUNT(*) FROM cards").fetchone()
    assert cards == answers, f"{cards} cards for {answers} answers"
    conn.close()
    return rate


def batched_ceiling_rate(path: Path, batch: int = MAX_BATCH, answers: int = N) -> float:
    """The statements the store runs for a batch of answers (`sqlite_store._record_answers`: four reads
    per batch, the writes with `executemany`), with the same streak rule and FSRS update, for ``answers``
    members on one post committed every ``batch`` answers, in a plain loop; returns answers per second."""
    conn = _bare(path, answers)
    now = Clock().now()
    at = ts(now)
    q = load_pack(BUNDLED_CONTENT).questions[0]
    scheduler = make_scheduler()
    today = now.date()
    week = week_start(now, "UTC").isoformat()
    t = time.perf_counter()
    for first in range(0, answers, batch):
        conn.execute("BEGIN IMMEDIATE")
        ids = range(first + 1, min(answers, first + batch) + 1)
        states = {
            r[0]: StreakState(r[1], r[2], date.fromisoformat(r[3]) if r[3] else None, r[4])
            for r in conn.execute(sql.BATCH_STREAK_STATES, (json.dumps(list(ids)),))
        }
        pairs = json.dumps([[mid, q.id] for mid in ids])
        tried = set(conn.execute(sql.BATCH_TRIED, (pairs,)).fetchall())
        earlier = {(m, p) for m, p, *_ in conn.execute(sql.BATCH_EARLIER, (json.dumps([[mid, 1] for mid in ids]),))}
        cards = {(m, qid): c for m, qid, c in conn.execute(sql.BATCH_CARDS, (pairs,))}
        inserts, scores, points, puts = [], [], [], []
        for mid in ids:
            if (mid, 1) in earlier:
                continue
            letter = "ABCD"[(mid - 1) % 4]
            correct = letter == q.answer
            first_try = (mid, q.id) not in tried
            tried.add((mid, q.id))
            inserts.append((mid, 1, 1, q.id, letter, int(correct), int(first_try), at))
            new = advance_streak(states[mid], today, frozenset())
            states[mid] = new
            point = int(correct and first_try)
            scores.append((int(correct), point, point, at, new.streak, new.best, today.isoformat(), new.freezes, mid))
            if point:
                points.append((mid, week, 1, at))
            card, due = review(
                scheduler, cards.get((mid, q.id)), member_id=mid, question_id=q.id, rating=rating_for(correct), at=now
            )
            cards[mid, q.id] = card
            puts.append((mid, q.id, card, ts(due)))
        conn.executemany(sql.INSERT_ANSWER_ROW, inserts)
        conn.executemany(sql.SCORE_MEMBER, scores)
        conn.executemany(sql.ADD_WEEKLY_POINT, points)
        conn.executemany(sql.PUT_CARD, puts)
        conn.execute("COMMIT")
    rate = answers / (time.perf_counter() - t)
    (cards_n,) = conn.execute("SELECT COUNT(*) FROM cards").fetchone()
    assert cards_n == answers, f"{cards_n} cards for {answers} answers"
    conn.close()
    return rate


def main() -> None:
    default = gc.get_threshold()
    gc.set_threshold(GC_YOUNG, *default[1:])  # both sides collect as the running bot does (`settle_gc`)
    try:
        figure()
    finally:
        gc.set_threshold(*default)


def figure() -> None:
    with tempfile.TemporaryDirectory(dir=Path(__file__).parent) as tmp:
        folder = Path(tmp)
        # The ceiling before and after each core run (the disk's speed and the machine's load drift); each
        # core run is compared with the two beside it, and the figure is the median of those ratios.
        ceilings = [ceiling_rate(folder / "c0.db")]
        cores: list[float] = []
        batches: list[int] = []
        for i in range(TRIALS):
            (folder / f"core{i}").mkdir()
            ours, commits = asyncio.run(core_rate(folder / f"core{i}"))
            cores.append(ours)
            batches.append(commits)
            ceilings.append(ceiling_rate(folder / f"c{i + 1}.db"))
        batched = batched_ceiling_rate(folder / "cb.db")
        single = ceiling_rate(folder / "c1x.db", batch=1, answers=2000)
    ratios = [ours / ((ceilings[i] + ceilings[i + 1]) / 2) for i, ours in enumerate(cores)]
    ratio = statistics.median(ratios)
    ours = statistics.median(cores)
    ceiling = statistics.median(ceilings)
    Figure(
        "P2",
        f"answers/s through core+SQLite {ours:,.0f}/s / same SQL in a stdlib loop {ceiling:,.0f}/s"
        f" (medians of {TRIALS} and {TRIALS + 1} interleaved runs)",
        round(ratio, 2),
        "x ceiling",
        ">= 0.6x",
        ratio >= 0.6,
        f"{N:,} members answer one post at once, {TRIALS} times: core {' / '.join(f'{c:,.0f}' for c in cores)} "
        f"answers/s (in {' / '.join(map(str, batches))} group commits); the same statements (+ streak rule and FSRS update) "
        f"group-committed {MAX_BATCH:,} at a time in a plain sqlite3 loop before, between and after them "
        f"{' / '.join(f'{c:,.0f}' for c in ceilings)}/s; each core run over the mean of the two beside it "
        f"{' / '.join(f'{r:.2f}' for r in ratios)}x (the figure: their median); that SQL committing once per "
        f"answer: {single:,.0f}/s; "
        f"the store's own per-batch statements (4 reads a batch, executemany writes) in the same loop: {batched:,.0f}/s "
        f"(core = {ours / batched:.2f}x that). All WAL + synchronous=FULL (durable on power loss)",
    ).emit()


if __name__ == "__main__":
    main()
