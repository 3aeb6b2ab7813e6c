"""`Store.deal_post` (quiz and tip): the member's reads, the pick and the post in one unit of work, on
SQLite and on PostgreSQL — the pick sees what was committed, a post is made only for what it picks, and
a pick that fails costs nothing but itself."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest

from bot.bootstrap import build_app
from bot.config import Settings
from bot.core.ports import AnswerIn, DealReads, DealView, QuestionTally, StreakState
from bot.storage import ManagedStore, SqliteStore
from tests.conftest import FIXTURE_PACK, FakeClock, Outside, inbound

T = TypeVar("T")

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Item:
    id: str


def keep(state: StreakState) -> StreakState:
    return state


async def test_the_pick_sees_what_the_member_did_and_the_post_is_committed_when_dealt(
    store: ManagedStore, outside: Outside
) -> None:
    ann = await store.ensure_member("console", "g", "c", "u1", "Ann", now=NOW)
    bob = await store.ensure_member("console", "g", "c", "u2", "Bob", now=NOW)
    post = await store.create_post(ann.group_id, ann.channel_id, None, "question", "t-a", NOW)
    due = NOW - timedelta(days=1)
    for m in (ann, bob):  # Bob's rows must not reach Ann's pick
        answer = AnswerIn(m.member_id, post.id, m.group_id, "t-a", "A", True, NOW, date(2026, 11, 23))
        await store.record_answer(answer, keep, lambda _: ("{}", due))
    await store.create_post(ann.group_id, ann.channel_id, ann.member_id, "tip", "tip-x", NOW)
    await store.create_post(bob.group_id, bob.channel_id, bob.member_id, "tip", "tip-y", NOW)
    await store.mark_step(ann.member_id, 2, NOW)
    seen: list[DealView] = []

    def choose(view: DealView) -> Item:
        seen.append(view)
        return Item("t-b")

    reads = DealReads(tallies=True, due_at=NOW, shown="tip", steps=True)
    dealt = await store.deal_post(ann.group_id, ann.channel_id, ann.member_id, "question", NOW, reads, choose)
    assert seen == [DealView([QuestionTally("t-a", 1, 1)], [("t-a", due)], {"tip-x": 1}, {2})]
    assert dealt is not None
    made, item = dealt
    assert item == Item("t-b")
    assert (made.kind, made.item_id, made.member_id, made.channel_id) == (
        "question",
        "t-b",
        ann.member_id,
        ann.channel_id,
    )
    # Committed before we heard of it: another connection sees it, and a click finds it.
    assert await outside("SELECT kind, item_id FROM posts WHERE id = ?", made.id) == [("question", "t-b")]
    assert await store.get_post(made.id) == made
    assert await store.last_question_post(ann.channel_id, ann.member_id) == made

    # A card not yet due is not read as due; what the reads do not name is not read.
    await store.deal_post(ann.group_id, ann.channel_id, ann.member_id, "tip", NOW, DealReads(), choose)
    await store.deal_post(
        ann.group_id, ann.channel_id, ann.member_id, "tip", NOW, DealReads(due_at=due - timedelta(seconds=1)), choose
    )
    assert seen[1:] == [DealView(), DealView()]


async def test_nothing_picked_makes_no_post(store: ManagedStore, outside: Outside) -> None:
    ann = await store.ensure_member("console", "g", "c", "u1", "Ann", now=NOW)
    dealt = await store.deal_post(
        ann.group_id, ann.channel_id, ann.member_id, "tip", NOW, DealReads(shown="tip"), lambda _: None
    )
    assert dealt is None
    assert await outside("SELECT COUNT(*) FROM posts") == [(0,)]


async def test_a_pick_that_fails_fails_alone(store: ManagedStore, outside: Outside) -> None:
    """The pick runs inside a group commit with other members' writes: its error is raised to its caller
    and nothing of it is written, while the answers and posts committed beside it are kept."""
    ann = await store.ensure_member("console", "g", "c", "u1", "Ann", now=NOW)
    bob = await store.ensure_member("console", "g", "c", "u2", "Bob", now=NOW)
    post = await store.create_post(ann.group_id, ann.channel_id, None, "question", "t-a", NOW)

    def broken(_: DealView) -> Item:
        raise ValueError("the pick broke")

    answer = AnswerIn(bob.member_id, post.id, bob.group_id, "t-a", "A", True, NOW, date(2026, 11, 23))
    results = await asyncio.gather(
        store.deal_post(ann.group_id, ann.channel_id, ann.member_id, "question", NOW, DealReads(tallies=True), broken),
        store.record_answer(answer, keep),
        store.deal_post(ann.group_id, ann.channel_id, ann.member_id, "tip", NOW, DealReads(), lambda _: Item("tip-x")),
        return_exceptions=True,
    )
    assert isinstance(results[0], ValueError) and str(results[0]) == "the pick broke"
    assert not isinstance(results[1], BaseException) and results[1].recorded
    assert not isinstance(results[2], BaseException) and results[2] is not None
    assert await outside("SELECT kind, item_id FROM posts ORDER BY id") == [("question", "t-a"), ("tip", "tip-x")]
    assert await outside("SELECT COUNT(*) FROM answers") == [(1,)]


async def test_a_deal_for_a_member_deleted_meanwhile_fails_alone(store: ManagedStore, outside: Outside) -> None:
    ann = await store.ensure_member("console", "g", "c", "u1", "Ann", now=NOW)
    bob = await store.ensure_member("console", "g", "c", "u2", "Bob", now=NOW)
    await store.forget_member(ann.member_id)
    results = await asyncio.gather(
        store.deal_post(ann.group_id, ann.channel_id, ann.member_id, "tip", NOW, DealReads(), lambda _: Item("tip-x")),
        store.deal_post(bob.group_id, bob.channel_id, bob.member_id, "tip", NOW, DealReads(), lambda _: Item("tip-y")),
        return_exceptions=True,
    )
    assert isinstance(results[0], Exception), "a post for a member who is gone is refused"
    assert not isinstance(results[1], BaseException) and results[1] is not None
    assert await outside("SELECT item_id FROM posts") == [("tip-y",)]


@pytest.mark.parametrize("kind", ["question", "tip"])
async def test_many_deals_at_once_share_group_commits(store: ManagedStore, kind: str) -> None:
    members = [await store.ensure_member("console", "g", "c", f"u{i}", f"U{i}", now=NOW) for i in range(30)]
    before = store.batches_committed
    dealt = await asyncio.gather(
        *(
            store.deal_post(
                m.group_id,
                m.channel_id,
                m.member_id,
                kind,
                NOW,
                DealReads(tallies=True, shown=kind),
                lambda _, i=i: Item(f"x-{i}"),
            )
            for i, m in enumerate(members)
        )
    )
    assert [d[1].id for d in dealt if d is not None] == [f"x-{i}" for i in range(30)]
    assert len({d[0].id for d in dealt if d is not None}) == 30
    assert 1 <= store.batches_committed - before < 10, "deals made together should share group commits"


@pytest.mark.sqlite_only
async def test_quiz_and_tip_are_one_trip_to_the_database_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As `build_app` wires the bot: once the member is known, a quiz or a tip is one hop to the SQLite
    connection's thread (the reads, the pick and the post together), not one for the reads and one for
    the post."""
    settings = Settings(STUDYBOT_DB=tmp_path / "s.db", STUDYBOT_CONTENT=FIXTURE_PACK)  # type: ignore[call-arg]
    app = await build_app(settings, clock=FakeClock())
    hops: list[str] = []
    real = SqliteStore._hop

    async def counted(self: SqliteStore, fn: Callable[..., T], *args: Any) -> T:
        calls = args[0] if fn.__name__ == "_run_calls" else [(fn, args)]  # the calls the hop carries
        hops.append(", ".join(f.__qualname__ for f, _ in calls))
        return await real(self, fn, *args)

    try:
        # Ann has been here before: she is known and has answered today.
        for _ in range(2):
            [quiz] = await app.service.handle(inbound("quiz", user="ann"))
        await app.service.handle(inbound(user="ann", action=quiz.buttons[0].action_id))
        monkeypatch.setattr(SqliteStore, "_hop", counted)
        for command, shows in (("quiz", "test question"), ("tip", "Tip · step 1")):
            hops.clear()
            [reply] = await app.service.handle(inbound(command, user="ann"))
            assert shows in reply.text
            assert len(hops) == 1, f"{command}: {hops}"
        [quiz] = await app.service.handle(inbound("quiz", user="ann"))
        [answered] = await app.service.handle(inbound(user="ann", action=quiz.buttons[0].action_id))
        assert answered.text.startswith(("✅ Correct", "❌ Not quite")), answered.text
    finally:
        await app.close()
