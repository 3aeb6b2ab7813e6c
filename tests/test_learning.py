"""The learning engine through the service and a real SQLite file: FSRS cards, reviews, due-first quiz,
the progress chart, query plans and forget-me."""

from __future__ import annotations

import io
import json
import logging
import os
import random
import re
import sqlite3
import struct
import subprocess
import sys
import zlib
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from bot.core import actions, chart, learning
from bot.core.content import ContentLibrary
from bot.core.learning import LearningEngine, card_id_for
from bot.core.markup import plain
from bot.core.messages import Reply, followups
from bot.core.ports import AnswerIn
from bot.core.service import StudyService
from bot.storage import ManagedStore, learning_for
from bot.storage import learning_store as ls
from bot.storage import sql as sql_texts
from bot.storage.sqlite_store import ts
from tests.conftest import FIXTURE_PACK, FakeClock, Outside, inbound

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def svc(store: ManagedStore, library: ContentLibrary, clock: FakeClock) -> StudyService:
    return learning_service(store, library, clock)


def learning_service(store: ManagedStore, library: ContentLibrary, clock: FakeClock) -> StudyService:
    """A service wired as `build_app` wires it: with the learning engine installed."""
    service = StudyService(store, library, clock, rng=random.Random(7))
    # Charts in a thread here (quick); `test_the_app_draws_charts_in_a_worker_process` covers the shipped way.
    LearningEngine(learning_for(store), store, library, clock, chart_process=False).install(service)
    return service


def right_letter(text: str) -> str:
    # The fixture's questions say which letter is right in the prompt.
    m = re.search(r"test question ([ABCD])", text)
    assert m, text
    return m.group(1)


def wrong_letter(text: str) -> str:
    return "B" if right_letter(text) == "A" else "A"


def question_id(text: str) -> str:
    return "t-" + right_letter(text).lower()


def post_of(reply: Reply) -> int:
    parsed = actions.parse_action(reply.buttons[0].action_id)
    assert isinstance(parsed, actions.AnswerAction)
    return parsed.post_id


async def quiz_and_answer(svc: StudyService, user: str, right: bool, **kw: str) -> tuple[str, Reply]:
    """Deal a quiz question to ``user`` and click the right (or a wrong) button; returns its id and the reply."""
    [q] = await svc.handle(inbound("quiz", user=user, **kw))
    letter = right_letter(q.text) if right else wrong_letter(q.text)
    [out] = await svc.handle(inbound(user=user, action=actions.answer_action(post_of(q), letter), **kw))
    return question_id(q.text), out


async def card_rows(outside: Outside, user: str) -> dict[str, tuple[str, str]]:
    rows = await outside(
        "SELECT c.question_id, c.card, c.due FROM cards c JOIN members m ON m.id = c.member_id WHERE m.user_id = ?",
        user,
    )
    return {q: (card, due) for q, card, due in rows}


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_SIGNATURE, "not a PNG"
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and length == 13
    width, height = struct.unpack(">II", data[16:24])
    return width, height


# ---------------------------------------------------------------------- FSRS through the store


async def test_wrong_answer_is_due_sooner_than_a_right_one(
    svc: StudyService, outside: Outside, clock: FakeClock
) -> None:
    wrong_q, _ = await quiz_and_answer(svc, "ann", right=False)
    right_q, _ = await quiz_and_answer(svc, "bob", right=True)
    ann, bob = await card_rows(outside, "ann"), await card_rows(outside, "bob")
    assert list(ann) == [wrong_q] and list(bob) == [right_q]
    wrong_due = datetime.fromisoformat(ann[wrong_q][1])
    right_due = datetime.fromisoformat(bob[right_q][1])
    assert clock.now() < wrong_due < right_due
    assert wrong_due - clock.now() <= timedelta(days=1), "a wrong answer comes back by tomorrow"
    card = json.loads(ann[wrong_q][0])
    assert card["card_id"] == card_id_for(1, wrong_q) and card["last_review"]


async def test_every_answer_moves_the_card_once(store: ManagedStore, library: ContentLibrary, clock: FakeClock) -> None:
    engine = LearningEngine(learning_for(store), store, library, clock)
    m = await store.ensure_member("console", "g", "c", "u1", "Ann", now=clock.now())
    calls: list[str | None] = []

    def answer(post: int, correct: bool, at: datetime) -> AnswerIn:
        return AnswerIn(m.member_id, post, m.group_id, "t-a", "A" if correct else "B", correct, at, date(2026, 11, 23))

    def spy(a: AnswerIn) -> learning.CardFn:
        inner = engine.card_fn_for(a)

        def fn(stored: str | None) -> tuple[str, datetime]:
            calls.append(stored)
            return inner(stored)

        return fn

    p1 = await store.create_post(m.group_id, m.channel_id, m.member_id, "question", "t-a", clock.now())
    a1 = answer(p1.id, False, clock.now())
    await store.record_answer(a1, lambda s: s, spy(a1))
    await store.record_answer(a1, lambda s: s, spy(a1))  # a double click: no second review
    assert calls == [None]
    [(_, first_due)] = await engine.store.due_cards(m.member_id, clock.now() + timedelta(days=400), 5)
    later = clock.advance(days=2)
    p2 = await store.create_post(m.group_id, m.channel_id, m.member_id, "question", "t-a", later)
    a2 = answer(p2.id, True, later)
    await store.record_answer(a2, lambda s: s, spy(a2))
    assert len(calls) == 2 and calls[1] is not None, "the second answer reviews the stored card"
    [(_, second_due)] = await engine.store.due_cards(m.member_id, later + timedelta(days=400), 5)
    assert second_due - later > first_due - a1.answered_at, "remembered after a wrong start: a longer interval"


async def test_a_broken_card_never_costs_the_answer(svc: StudyService, outside: Outside, clock: FakeClock) -> None:
    qid, _ = await quiz_and_answer(svc, "ann", right=True)
    await outside("UPDATE cards SET card = 'not json', due = '2000-01-01T00:00:00.000000Z'")
    clock.advance(days=1)
    [review] = await svc.handle(inbound("review", user="ann"))
    assert "Review (1 review due)" in review.text
    [out] = await svc.handle(
        inbound(user="ann", action=actions.answer_action(post_of(review), right_letter(review.text)))
    )
    assert out.text.startswith("✅ Correct")
    card, due = (await card_rows(outside, "ann"))[qid]
    assert json.loads(card)["card_id"] == card_id_for(1, qid) and due > ts(clock.now())


# ---------------------------------------------------------------------- review and quiz


async def test_review_serves_due_cards_then_says_when_the_next_is_due(svc: StudyService, clock: FakeClock) -> None:
    [none] = await svc.handle(inbound("review"))
    assert none.text.startswith("No reviews due — answer a few questions first")
    qid, _ = await quiz_and_answer(svc, "alice", right=False)
    [later] = await svc.handle(inbound("review"))
    # Answered at 12:00 UTC (the group's zone): a wrong answer is due tomorrow.
    assert later.text == "No reviews due — next one tomorrow 12:00."
    clock.advance(days=1, minutes=1)
    [review] = await svc.handle(inbound("review"))
    assert review.private and [b.label for b in review.buttons] == ["A", "B", "C", "D"]
    assert review.text.startswith("**Review (1 review due)**") and question_id(review.text) == qid
    [out] = await svc.handle(inbound(action=actions.answer_action(post_of(review), right_letter(review.text))))
    assert out.text.startswith("✅ Correct")
    [after] = await svc.handle(inbound("review"))
    assert after.text.startswith("No reviews due — next one ")
    [progress] = await svc.handle(inbound("progress"))
    assert "points 0" in progress.text, "a review of a question already answered scores no point"


async def test_quiz_prefers_a_due_card_over_unseen_questions(svc: StudyService, clock: FakeClock) -> None:
    missed, _ = await quiz_and_answer(svc, "alice", right=False)
    seen = {missed}
    for _ in range(2):
        qid, _ = await quiz_and_answer(svc, "alice", right=True)
        seen.add(qid)
    assert len(seen) == 3, "unseen questions first while nothing is due"
    clock.advance(days=1, hours=1)
    [q] = await svc.handle(inbound("quiz"))
    assert question_id(q.text) == missed, "the due review comes before the one unseen question"


async def test_due_cards_of_removed_questions_are_skipped(
    svc: StudyService, outside: Outside, clock: FakeClock
) -> None:
    await quiz_and_answer(svc, "alice", right=False)
    await outside("UPDATE cards SET question_id = 'gone-from-pack'")
    clock.advance(days=2)
    [q] = await svc.handle(inbound("quiz"))
    assert "test question" in q.text
    [r] = await svc.handle(inbound("review"))
    assert r.text.startswith("No reviews due")


# ---------------------------------------------------------------------- progress and chart


async def test_progress_shows_reviews_due_and_attaches_a_chart(svc: StudyService, clock: FakeClock) -> None:
    await quiz_and_answer(svc, "alice", right=False)
    await quiz_and_answer(svc, "alice", right=True)
    await svc.handle(inbound("path done 1"))
    clock.advance(days=1, hours=1)
    [p] = await svc.handle(inbound("progress"))
    assert "🔁 Reviews due: 1 — /study review" in p.text and p.private and not p.slow
    assert p.attachments == (), "the text goes out at once; the chart follows"
    [chart_reply] = await followups(p)
    assert chart_reply.private and chart_reply.text.startswith("📈 Progress chart")
    [png] = chart_reply.attachments
    assert png.filename == "progress.png" and png.mime == "image/png"
    width, height = png_size(png.data)
    assert (width, height) == (800, 700) and len(png.data) < 500_000


async def test_chart_data_counts_answers_on_the_members_own_days(svc: StudyService, clock: FakeClock) -> None:
    clock.set(datetime(2026, 11, 23, 9, 30, tzinfo=UTC))  # 23:30 on the 23rd in Kiritimati (UTC+14)
    await svc.handle(inbound("timezone Pacific/Kiritimati"))
    await quiz_and_answer(svc, "alice", right=True)
    clock.advance(hours=1)  # 00:30 on the 24th there
    await quiz_and_answer(svc, "alice", right=False)
    await svc.handle(inbound("path done 2"))
    engine = _engine(svc)
    member = await svc.store.ensure_member("console", "g1", "c1", "alice", "alice", now=clock.now())
    data = await engine.chart_data(clock.now(), member)
    assert data.activity[-1] == (date(2026, 11, 24), 1) and data.activity[-2] == (date(2026, 11, 23), 1)
    assert len(data.activity) == 30 and sum(n for _, n in data.activity) == 2
    assert [s[2] for s in data.steps] == [False, True, False, False, False, False]
    assert {t[0]: t[2] for t in data.topics} == {"alpha": 1, "beta": 1}


def test_chart_is_a_png_of_sensible_size() -> None:
    days = [date(2026, 11, 1) + timedelta(days=n) for n in range(30)]
    full = chart.ChartData(
        "Progress — Ann ✨",
        [(f"topic {n}", n / 9, n) for n in range(9)],
        [(d, n % 5) for n, d in enumerate(days)],
        [(n, f"Step {n}", n < 3) for n in range(1, 7)],
    )
    empty = chart.ChartData("Progress — Bo", [], [(d, 0) for d in days], [(n, f"Step {n}", False) for n in range(1, 7)])
    for data in (full, empty):
        png = chart.draw_progress(data)
        assert png_size(png) == (800, 700)
        assert 5_000 < len(png) < 500_000
        assert png.endswith(b"IEND\xaeB`\x82")


def test_the_chart_is_a_palette_png_that_looks_like_the_full_colour_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """The chart goes out as a small palette PNG: the full-colour picture matplotlib drew, with under 1% of
    the pixels changed and none by more than 12/255 on a channel (the same picture to the eye), in under
    half the bytes."""
    from PIL import Image, ImageChops

    days = [date(2026, 11, 1) + timedelta(days=n) for n in range(30)]
    data = chart.ChartData(
        "Progress — Ann",
        [(f"topic {n}", n / 9, n) for n in range(9)],
        [(d, n % 5) for n, d in enumerate(days)],
        [(n, f"Step {n}", n < 3) for n in range(1, 7)],
    )
    png = chart.draw_progress(data)
    monkeypatch.setattr(Image.Image, "quantize", lambda im, *a, **k: im)  # the same drawing, every colour kept
    full = chart.draw_progress(data)
    ours, theirs = Image.open(io.BytesIO(png)), Image.open(io.BytesIO(full))
    assert (ours.mode, theirs.mode) == ("P", "RGB")
    diff = ImageChops.difference(ours.convert("RGB"), theirs)
    assert max(high for _, high in diff.getextrema()) <= 12
    changed = sum(diff.convert("L").point(lambda v: 255 if v else 0).histogram()[255:])
    assert changed < 0.01 * ours.width * ours.height
    assert len(png) < len(full) / 2


async def test_progress_text_survives_a_chart_failure(
    svc: StudyService, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(_: chart.ChartData) -> bytes:
        raise ImportError("No module named 'matplotlib'")

    monkeypatch.setattr(chart, "draw_progress", broken)
    await quiz_and_answer(svc, "alice", right=True)
    with caplog.at_level(logging.ERROR):
        [p] = await svc.handle(inbound("progress"))
        assert await followups(p) == []
    assert plain(p.text).startswith("**Progress — alice**") and "Answered 1" in p.text and p.attachments == ()
    assert "progress chart for member" in caplog.text


async def test_leaderboards_draw_no_chart(svc: StudyService, monkeypatch: pytest.MonkeyPatch) -> None:
    drawn: list[str] = []
    monkeypatch.setattr(chart, "draw_progress", lambda d: drawn.append(d.title) or b"")
    await quiz_and_answer(svc, "alice", right=True)
    for text in ("leaderboard", "leaderboard week", "leaderboard all"):
        [board] = await svc.handle(inbound(text))
        assert board.attachments == () and not board.slow
    assert drawn == []


# ---------------------------------------------------------------------- indexes


def _plan(conn: sqlite3.Connection, sql: str, params: tuple[object, ...]) -> list[str]:
    return [r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + sql, params)]


@pytest.mark.sqlite_only  # SQLite's EXPLAIN QUERY PLAN; PostgreSQL's planner is checked in bench P4
async def test_learning_and_board_queries_use_indexes(store: ManagedStore, db_path: Path) -> None:
    """Every query on the progress, review, answer and leaderboard paths is an index search: no table
    or index scan and no sort of a whole group (the 100k-member budget depends on it)."""
    now = "2026-11-23T12:00:00.000000Z"
    queries: list[tuple[str, tuple[object, ...]]] = [
        (ls.DUE_CARDS, (1, now, 20)),
        (ls.REVIEW_SUMMARY, (1, now, 1, now)),
        (ls.MISSED, (1, now)),
        (ls.ANSWER_TIMES, (1, now)),
        ("SELECT card FROM cards WHERE member_id = ? AND question_id = ?", (1, "t-a")),
        (
            "SELECT question_id, COUNT(*), SUM(correct) FROM answers WHERE member_id = ? GROUP BY question_id",
            (1,),
        ),
        ("SELECT step FROM path_steps WHERE member_id = ?", (1,)),
        (
            "SELECT id, user_id, display_name, points, last_point_at FROM members"
            " WHERE group_id = ? AND points > 0 AND leaderboard_hidden = 0"
            " ORDER BY points DESC, last_point_at, id LIMIT ?",
            (1, 10),
        ),
        (
            "SELECT m.id, m.user_id, m.display_name, w.points, w.last_point_at FROM weekly_points w"
            " JOIN members m ON m.id = w.member_id"
            " WHERE w.group_id = ? AND w.week = ? AND m.leaderboard_hidden = 0"
            " ORDER BY w.points DESC, w.last_point_at, m.id LIMIT ?",
            (1, "2026-11-23", 10),
        ),
        # A batch of answers: the batch's own list (JSON) is scanned, every table searched by key.
        (sql_texts.BATCH_STREAK_STATES, ("[1, 2]",)),
        (sql_texts.BATCH_TRIED, ('[[1, "t-a"]]',)),
        (sql_texts.BATCH_EARLIER, ("[[1, 1]]",)),
        (sql_texts.BATCH_CARDS, ('[[1, "t-a"]]',)),
    ]
    with sqlite3.connect(db_path) as conn:
        conn.execute("ANALYZE")
        for sql, params in queries:
            plan = _plan(conn, sql, params)
            assert plan, sql
            for step in plan:
                scans_own_list = step == "SCAN CONSTANT ROW" or step.startswith("SCAN j VIRTUAL TABLE")
                assert scans_own_list or not step.startswith("SCAN"), f"{sql}\n  -> {plan}"
            assert not any(s.removeprefix("USE ") == "TEMP B-TREE FOR ORDER BY" for s in plan), f"{sql}\n  -> {plan}"


# ---------------------------------------------------------------------- forget-me


async def test_forget_me_leaves_no_row_in_any_table(
    svc: StudyService, outside: Outside, store_kind: str, clock: FakeClock
) -> None:
    for _ in range(3):
        await quiz_and_answer(svc, "alice", right=True)
    await quiz_and_answer(svc, "alice", right=False)
    await quiz_and_answer(svc, "bob", right=True)
    await svc.handle(inbound("path done 1"))
    await svc.handle(inbound("tip"))
    await svc.handle(inbound("timezone Europe/Berlin"))
    clock.advance(days=1, hours=1)
    await svc.handle(inbound("review"))
    [(alice,)] = await outside("SELECT id FROM members WHERE user_id = 'alice'")
    if store_kind == "sqlite":
        columns = "SELECT m.name FROM sqlite_master m JOIN pragma_table_info(m.name) p WHERE m.type = 'table'"
        columns += " AND p.name = 'member_id'"
    else:
        columns = "SELECT table_name FROM information_schema.columns WHERE table_schema = 'public'"
        columns += " AND column_name = 'member_id'"
    member_tables = [t for (t,) in await outside(columns)]
    assert {"answers", "cards", "path_steps", "weekly_points", "posts"} <= set(member_tables)
    before = {t: (await outside(f"SELECT COUNT(*) FROM {t} WHERE member_id = ?", alice))[0][0] for t in member_tables}
    assert all(before[t] for t in ("answers", "cards", "path_steps", "weekly_points", "posts")), before
    [gone] = await svc.handle(inbound("forget-me confirm"))
    assert gone.text.startswith("Done — everything studybot stored about you")
    for t in member_tables:
        [(n,)] = await outside(f"SELECT COUNT(*) FROM {t} WHERE member_id = ?", alice)
        assert n == 0, f"{t} still has {n} row(s) about the member"
    assert await outside("SELECT COUNT(*) FROM members WHERE id = ? OR user_id = 'alice'", alice) == [(0,)]
    assert await outside("SELECT COUNT(*) FROM cards") == [(1,)], "bob's card stays"
    for scope in ("week", "all"):
        [board] = await svc.handle(inbound(f"leaderboard {scope}", user="bob"))
        assert "alice" not in board.text and "bob" in board.text


def _engine(svc: StudyService) -> LearningEngine:
    engine = svc.progress_extras[0].__self__  # type: ignore[attr-defined]
    assert isinstance(engine, LearningEngine)
    return engine


def test_card_ids_are_stable_and_distinct() -> None:
    assert card_id_for(7, "t-a") == card_id_for(7, "t-a") == (7 << 32) | zlib.crc32(b"t-a")
    assert len({card_id_for(m, q) for m in range(1, 50) for q in ("t-a", "t-b", "t-c")}) == 147


def test_ratings_follow_the_answer() -> None:
    assert learning.rating_for(False) == learning.Rating.Again
    assert learning.rating_for(True) == learning.Rating.Good
    assert learning.rating_for(True, "easy") == learning.Rating.Easy
    assert learning.rating_for(False, "easy") == learning.Rating.Again


def test_the_app_draws_charts_in_a_worker_process(tmp_path: Path) -> None:
    """As shipped (`build_app`): the chart comes back as a PNG while matplotlib never loads in the
    bot's own process, and closing the app stops the worker."""
    script = f"""
import asyncio, sys
from bot.bootstrap import build_app
from bot.config import load_settings
from bot.core.messages import Inbound, followups

async def main():
    app = await build_app(load_settings(), db={str(tmp_path / "app.db")!r})
    [p] = await app.service.handle(Inbound("console", "g", "c", "ann", "Ann", "progress"))
    [c] = await followups(p)
    engine = app.service.progress_attachments[0].__self__
    [worker] = engine.renderer.processes
    assert worker.returncode is None
    await app.close()
    assert engine.renderer.processes == [] and worker.returncode is not None
    print(c.attachments[0].data[:8] == {PNG_SIGNATURE!r}, len(c.attachments[0].data), "matplotlib" in sys.modules)

asyncio.run(main())
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STUDYBOT_", "DISCORD_", "SLACK_"))}
    env["STUDYBOT_CONTENT"] = str(FIXTURE_PACK)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 0, run.stderr
    ok, size, loaded = run.stdout.split()
    assert ok == "True" and 5_000 < int(size) < 500_000 and loaded == "False", run.stdout
