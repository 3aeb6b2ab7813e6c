"""Answers that arrive together are written together — and each gets the outcome it would get alone.

On PostgreSQL a batch of answers from different members is written in a handful of statements for the
whole batch (`bot.storage.pg_store._record_many`); a batch it cannot do that way (a member twice, a
member deleted meanwhile) goes one by one. Both stores must give the same outcomes.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, date, datetime, timedelta

from bot.core.ports import AnswerIn, AnswerOutcome, LateRule, MemberRef, PostRecord, StoreError, StreakState
from bot.storage import ManagedStore
from bot.storage.rows import EAGER_BATCH
from tests.conftest import Outside

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def streak_up(s: StreakState) -> StreakState:
    return StreakState(s.streak + 1, max(s.best, s.streak + 1), NOW.date(), s.freezes)


def card(old: str | None) -> tuple[str, datetime]:
    return (f"{old or ''}+", NOW + timedelta(days=1))


def answer(member: int, group: int, post: int, question: str, choice: str, correct: bool) -> AnswerIn:
    return AnswerIn(member, post, group, question, choice, correct, NOW, date(2026, 11, 23))


async def members_and_post(store: ManagedStore, n: int) -> tuple[list[MemberRef], int, int, PostRecord]:
    """``n`` members of one group and channel, the group's and channel's ids, and a question post there."""
    refs = [await store.ensure_member("console", "g", "c", f"u{i}", f"U{i}", now=NOW) for i in range(n)]
    g, c = refs[0].group_id, refs[0].channel_id
    return refs, g, c, await store.create_post(g, c, None, "question", "q1", NOW)


async def test_a_batch_of_members_is_recorded_as_if_one_by_one(store: ManagedStore) -> None:
    refs, g, c, p1 = await members_and_post(store, 40)
    p2 = await store.create_post(g, c, None, "question", "q1", NOW)  # the same question again
    first = await asyncio.gather(
        *(
            store.record_answer(answer(r.member_id, g, p1.id, "q1", "AB"[i % 2], i % 2 == 0), streak_up, card)
            for i, r in enumerate(refs)
        )
    )
    assert [o.recorded for o in first] == [True] * 40
    assert [o.first_try for o in first] == [True] * 40
    assert [o.correct for o in first] == [i % 2 == 0 for i in range(40)]
    assert all(o.streak.streak == 1 for o in first)
    # Clicking the same post again changes nothing and reports the first answer; the same question on
    # another post is no longer a first try (no point), and the streak and card move on.
    again = await asyncio.gather(
        *(store.record_answer(answer(r.member_id, g, p1.id, "q1", "C", True), streak_up, card) for r in refs)
    )
    assert [o.recorded for o in again] == [False] * 40
    assert [o.choice for o in again] == ["AB"[i % 2] for i in range(40)]
    later = await asyncio.gather(
        *(store.record_answer(answer(r.member_id, g, p2.id, "q1", "A", True), streak_up, card) for r in refs)
    )
    assert all(o.recorded and not o.first_try and o.streak.streak == 2 for o in later)
    for i, r in enumerate(refs):
        stats = await store.member_stats(r.member_id)
        assert (stats.answered, stats.correct, stats.points) == (2, 2 if i % 2 == 0 else 1, 1 if i % 2 == 0 else 0)
    board = await store.leaderboard(g, date(2026, 11, 23), 100)
    assert len(board) == 20 and all(row.points == 1 for row in board)


async def test_a_member_gone_from_a_batch_fails_alone(store: ManagedStore) -> None:
    refs, g, _, post = await members_and_post(store, 10)
    await store.forget_member(refs[3].member_id)
    results = await asyncio.gather(
        *(store.record_answer(answer(r.member_id, g, post.id, "q1", "A", True), streak_up, card) for r in refs),
        return_exceptions=True,
    )
    assert isinstance(results[3], StoreError)
    assert all(not isinstance(x, Exception) and x.recorded for i, x in enumerate(results) if i != 3)
    assert await store.choice_counts(post.id) == {"A": 9}


async def test_a_bad_answer_in_the_middle_of_a_batch_leaves_every_other_write_applied_once(
    store: ManagedStore, outside: Outside
) -> None:
    # SQLite runs a batch straight through and, when a write fails, runs it again write by write: the
    # writes before the bad one must not count twice, nor those after it go missing.
    refs, g, c, p1 = await members_and_post(store, 12)
    p2 = await store.create_post(g, c, None, "question", "q1", NOW)
    gone = refs[6]
    await store.forget_member(gone.member_id)
    writes = [store.record_answer(answer(r.member_id, g, p1.id, "q1", "A", True), streak_up, card) for r in refs]
    writes.insert(9, store.record_answer(answer(refs[2].member_id, g, p2.id, "q1", "A", True), streak_up, card))
    writes.insert(3, store.create_post(g, c, refs[0].member_id, "tip", "t1", NOW))
    results = await asyncio.gather(*writes, return_exceptions=True)
    assert isinstance(results[7], StoreError), results[7]
    assert [type(x).__name__ for i, x in enumerate(results) if i != 7].count("AnswerOutcome") == 12
    assert await store.choice_counts(p1.id) == {"A": 11}
    assert await store.choice_counts(p2.id) == {"A": 1}
    assert await outside("SELECT COUNT(*) FROM posts WHERE kind = 'tip'") == [(1,)]
    for r in refs:
        if r is gone:
            continue
        twice = r is refs[2]
        stats = await store.member_stats(r.member_id)
        assert (stats.answered, stats.correct, stats.points) == (2 if twice else 1, 2 if twice else 1, 1), r.user_id
        assert stats.streak.streak == (2 if twice else 1)
        cards = await outside("SELECT card FROM cards WHERE member_id = ?", r.member_id)
        assert cards == [("++" if twice else "+",)], r.user_id
    board = await store.leaderboard(g, date(2026, 11, 23), 100)
    assert sorted(row.points for row in board) == [1] * 11


async def test_a_member_twice_in_one_batch_is_recorded_as_if_one_by_one(store: ManagedStore, outside: Outside) -> None:
    # SQLite reads a batch's streaks, first tries, earlier answers and cards once for the whole batch: what
    # an answer writes must still be seen by the same member's later answers in that batch.
    refs, g, c, p1 = await members_and_post(store, 4)
    p2 = await store.create_post(g, c, None, "question", "q1", NOW)  # the same question again
    p3 = await store.create_post(g, c, None, "question", "q2", NOW)
    clicks = [(p1.id, "q1", "A", True), (p2.id, "q1", "A", True), (p3.id, "q2", "B", False), (p1.id, "q1", "C", True)]
    before = store.batches_committed
    outcomes = await asyncio.gather(
        *(
            store.record_answer(answer(r.member_id, g, post, q, choice, right), streak_up, card)
            for r in refs
            for post, q, choice, right in clicks
        )
    )
    assert store.batches_committed - before == 1, "one batch"
    for n in range(len(refs)):
        first, again, other, double = outcomes[4 * n : 4 * n + 4]
        assert (first.recorded, first.first_try, first.streak.streak) == (True, True, 1)
        assert (again.recorded, again.first_try, again.streak.streak) == (True, False, 2), "q1 answered just before"
        assert (other.recorded, other.first_try, other.correct, other.streak.streak) == (True, True, False, 3)
        assert (double.recorded, double.choice, double.correct, double.first_try) == (False, "A", True, True)
        assert double.streak.streak == 3, "the streak as the batch left it"
    for r in refs:
        stats = await store.member_stats(r.member_id)
        assert (stats.answered, stats.correct, stats.points, stats.streak.streak) == (3, 2, 1, 3)
        cards = await outside(
            "SELECT question_id, card FROM cards WHERE member_id = ? ORDER BY question_id", r.member_id
        )
        assert cards == [("q1", "++"), ("q2", "+")], "the q1 card moved twice, from the first move"
        assert await outside("SELECT COUNT(*) FROM answers WHERE member_id = ?", r.member_id) == [(3,)]
    board = await store.leaderboard(g, date(2026, 11, 23), 100)
    assert sorted(row.points for row in board) == [1] * 4


async def test_an_answer_to_a_post_deleted_meanwhile_fails_alone(store: ManagedStore, outside: Outside) -> None:
    # A failing write (here the post's foreign key) sends the batch write by write: that answer fails,
    # every other is applied once.
    refs, g, c, kept = await members_and_post(store, 6)
    gone = await store.create_post(g, c, None, "question", "q2", NOW)
    await outside("DELETE FROM posts WHERE id = ?", gone.id)
    results = await asyncio.gather(
        *(
            store.record_answer(
                answer(r.member_id, g, gone.id if i == 2 else kept.id, "q1", "A", True), streak_up, card
            )
            for i, r in enumerate(refs)
        ),
        return_exceptions=True,
    )
    assert isinstance(results[2], StoreError), results[2]
    assert all(not isinstance(x, BaseException) and x.recorded for i, x in enumerate(results) if i != 2)
    assert await store.choice_counts(kept.id) == {"A": 5}
    for i, r in enumerate(refs):
        stats = await store.member_stats(r.member_id)
        assert (stats.answered, stats.points) == ((0, 0) if i == 2 else (1, 1))
        assert await outside("SELECT card FROM cards WHERE member_id = ?", r.member_id) == ([] if i == 2 else [("+",)])


async def test_the_first_members_of_a_long_burst_hear_back_before_the_burst_ends(store: ManagedStore) -> None:
    # Clicks keep arriving, one per event-loop turn, each turn busy reading the next (as a gateway parsing a
    # burst is): the rule "commit once the clicks stop coming" alone would hold every answer until the last
    # click has arrived. A group commit starts once `EAGER_BATCH` wait, so the first answers come back early.
    refs, g, _, post = await members_and_post(store, 150)
    clicks: list[asyncio.Task[AnswerOutcome]] = []
    first_back_at: int | None = None
    for i, r in enumerate(refs):
        clicks.append(
            asyncio.ensure_future(
                store.record_answer(answer(r.member_id, g, post.id, "q1", "A", True), streak_up, card)
            )
        )
        time.sleep(0.0005)  # noqa: ASYNC251 - blocking on purpose: this turn reading the next click
        await asyncio.sleep(0)
        if first_back_at is None and clicks[0].done():
            first_back_at = i
    outcomes = await asyncio.gather(*clicks)
    assert all(o.recorded for o in outcomes)
    assert await store.choice_counts(post.id) == {"A": 150}
    assert first_back_at is not None, "the first answer waited for the whole burst"
    assert first_back_at >= EAGER_BATCH - 1, "answers still arriving every turn were committed one by one"


class Late(LateRule):
    """A late streak rule whose input (how many days to add) arrives when ``gate`` opens, or fails."""

    def __init__(self, gate: asyncio.Event, fail: bool = False) -> None:
        self.gate, self.fail = gate, fail
        self.readied = 0
        self.step: int | None = None

    async def ready(self) -> None:
        self.readied += 1
        await self.gate.wait()
        if self.fail:
            raise StoreError("the look-up failed")
        self.step = 2

    def __call__(self, s: StreakState) -> StreakState:
        assert self.step is not None, "run before it was ready"
        return StreakState(s.streak + self.step, max(s.best, s.streak + self.step), NOW.date(), s.freezes)


async def test_late_streak_rules_are_awaited_once_a_batch_and_one_that_fails_fails_only_its_answers(
    store: ManagedStore, outside: Outside
) -> None:
    refs, g, _, post = await members_and_post(store, 9)
    gate = asyncio.Event()
    good, bad = Late(gate), Late(gate, fail=True)
    rules = [good, bad, streak_up] * 3
    writes = asyncio.gather(
        *(
            store.record_answer(answer(r.member_id, g, post.id, "q1", "A", True), rule, card)
            for r, rule in zip(refs, rules, strict=True)
        ),
        return_exceptions=True,
    )
    try:
        for _ in range(20):  # the batch waits for its late rules (one after the other), not each answer
            await asyncio.sleep(0)
        assert (good.readied, bad.readied) == (1, 0)
    finally:
        gate.set()
    outcomes = await writes
    assert (good.readied, bad.readied) == (1, 1), "one wait per rule and batch"
    assert [type(o).__name__ for o in outcomes] == ["AnswerOutcome", "StoreError", "AnswerOutcome"] * 3
    assert [o.streak.streak for o in outcomes if isinstance(o, AnswerOutcome)] == [2, 1] * 3
    assert str(outcomes[1]) == "the look-up failed"
    stored = await outside("SELECT m.user_id, m.streak, m.answered FROM members m ORDER BY m.id")
    assert stored == [(f"u{i}", [2, 0, 1][i % 3], [1, 0, 1][i % 3]) for i in range(9)], "nothing of theirs written"
    assert await outside("SELECT COUNT(*) FROM answers") == [(6,)]
    assert await outside("SELECT COUNT(*) FROM cards") == [(6,)]


async def test_an_answer_whose_caller_gave_up_is_still_recorded_when_a_late_rule_of_its_batch_fails(
    store: ManagedStore, outside: Outside
) -> None:
    # A caller may stop waiting (its task cancelled: a shutdown, a platform timeout); its answer was handed
    # to the store and is written anyway, as in any batch — also when another answer's look-up fails.
    refs, g, _, post = await members_and_post(store, 3)
    gate = asyncio.Event()
    rules = [Late(gate, fail=True), streak_up, streak_up]
    clicks = [
        asyncio.ensure_future(store.record_answer(answer(r.member_id, g, post.id, "q1", "A", True), rule, card))
        for r, rule in zip(refs, rules, strict=True)
    ]
    for _ in range(10):  # the batch is formed and waits for the failing rule's look-up
        await asyncio.sleep(0)
    clicks[2].cancel()
    gate.set()
    outcomes = await asyncio.gather(*clicks, return_exceptions=True)
    assert isinstance(outcomes[0], StoreError) and isinstance(outcomes[1], AnswerOutcome)
    assert isinstance(outcomes[2], asyncio.CancelledError)
    stored = await outside("SELECT m.user_id FROM answers a JOIN members m ON m.id = a.member_id ORDER BY m.id")
    assert stored == [("u1",), ("u2",)], "the answer of the caller who gave up is lost"
