"""Streaks on the member's own local day, freezes, days the bot failed to post, and leaderboard weeks
in the group's zone — the rules (`bot.core.progress`) and the whole path through the service."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from bot.core import actions
from bot.core.content import ContentLibrary
from bot.core.learning import LearningEngine
from bot.core.markup import plain
from bot.core.messages import Reply
from bot.core.ports import AnswerOutcome, MemberRef, StoreError, StreakState
from bot.core.progress import advance_streak, current_streak
from bot.core.service import ERROR_TEXT, StudyService
from bot.storage import ManagedStore, learning_for
from tests.conftest import FakeClock, Outside, inbound
from tests.test_learning import learning_service, post_of, quiz_and_answer, right_letter

D = date(2026, 11, 23)
LA = "America/Los_Angeles"


def day(n: int) -> date:
    return D + timedelta(days=n)


# ---------------------------------------------------------------------- the rules


def test_consecutive_days_count_and_a_second_answer_the_same_day_does_not() -> None:
    s = advance_streak(StreakState(0, 0, None, 0), day(0))
    assert (s.streak, s.best, s.last_day) == (1, 1, day(0))
    assert advance_streak(s, day(0)).streak == 1
    s = advance_streak(s, day(1))
    assert (s.streak, s.best) == (2, 2)


def test_a_freeze_per_full_week_at_most_two() -> None:
    s = StreakState(0, 0, None, 0)
    earned = []
    for n in range(22):
        s = advance_streak(s, day(n))
        earned.append(s.freezes)
    assert earned[5] == 0 and earned[6] == 1, "the 7th day completes a week"
    assert earned[13] == 2 and earned[20] == 2, "never more than two"


def test_freezes_cover_missed_days_automatically() -> None:
    s = StreakState(9, 9, day(0), 2)
    one = advance_streak(s, day(2))  # day 1 missed
    assert (one.streak, one.freezes, one.freeze_used) == (10, 1, 1)
    two = advance_streak(s, day(3))  # days 1 and 2 missed
    assert (two.streak, two.freezes, two.freeze_used) == (10, 0, 2)
    three = advance_streak(s, day(4))  # more missed days than freezes: start again, freezes kept
    assert (three.streak, three.best, three.freezes, three.freeze_used) == (1, 9, 2, 0)


def test_days_the_bot_missed_are_skipped_without_spending_freezes() -> None:
    s = StreakState(3, 3, day(0), 0)
    assert advance_streak(s, day(2), {day(1)}).streak == 4
    assert advance_streak(s, day(3), {day(1)}).streak == 1, "day 2 was not excused"
    assert advance_streak(StreakState(3, 3, day(0), 1), day(3), {day(1)}) == StreakState(4, 4, day(3), 0, 1)


def test_the_streak_as_it_stands_today() -> None:
    s = StreakState(5, 5, day(0), 1)
    assert current_streak(s, day(0)) == 5
    assert current_streak(s, day(1)) == 5, "today is still open"
    assert current_streak(s, day(2)) == 5, "one missed day, one freeze"
    assert current_streak(s, day(3)) == 0
    assert current_streak(s, day(3), {day(1)}) == 5
    assert current_streak(StreakState(0, 0, None, 0), day(0)) == 0


# ---------------------------------------------------------------------- through the service


@pytest.fixture
def svc(store: ManagedStore, library: ContentLibrary, clock: FakeClock) -> StudyService:
    clock.set(datetime(2026, 11, 23, 18, 0, tzinfo=UTC))  # Monday 10:00 in Los Angeles
    return learning_service(store, library, clock)


async def set_group_zone(svc: StudyService, outside: Outside, tz: str, group: str = "g1") -> None:
    """Create the group with its zone before anyone uses it (the store may cache members and their zones)."""
    await outside(
        "INSERT INTO groups (platform, external_id, tz, created_at) VALUES ('console', ?, ?, '2026-11-01')", group, tz
    )
    [r] = await svc.handle(inbound("timezone", group=group))
    assert tz in r.text


async def add_delivery(outside: Outside, when: datetime, status: str, group: str = "g1") -> None:
    [(channel,)] = await outside(
        "SELECT c.id FROM channels c JOIN groups g ON g.id = c.group_id WHERE g.external_id = ?", group
    )
    await outside(
        "INSERT INTO deliveries (channel_id, scheduled_for, status) VALUES (?, ?, ?)",
        channel,
        when.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        status,
    )


async def streak_line(svc: StudyService, user: str = "alice", **kw: str) -> str:
    [p] = await svc.handle(inbound("progress", user=user, **kw))
    return next(line for line in p.text.splitlines() if line.startswith("🔥"))


async def test_streak_follows_the_members_midnight_not_the_groups(
    svc: StudyService, outside: Outside, clock: FakeClock
) -> None:
    await set_group_zone(svc, outside, LA)
    await svc.handle(inbound("timezone Pacific/Kiritimati"))  # UTC+14: 22 hours ahead of Los Angeles
    clock.set(datetime(2026, 11, 24, 9, 30, tzinfo=UTC))  # 23:30 on the 24th there; 01:30 on the 24th in LA
    await quiz_and_answer(svc, "alice", right=True)
    await quiz_and_answer(svc, "bob", right=True)  # bob keeps the group's zone
    clock.advance(hours=1)  # 00:30 on the 25th in Kiritimati; still 02:30 on the 24th in LA
    _, alice = await quiz_and_answer(svc, "alice", right=True)
    _, bob = await quiz_and_answer(svc, "bob", right=True)
    assert "🔥 Streak: 2 days" in alice.text, "a new day began for alice"
    assert "🔥 Streak: 1 day" in bob.text, "the same day for bob"
    assert (await streak_line(svc)).startswith("🔥 Streak 2 days (best 2)")
    clock.set(datetime(2026, 11, 25, 0, 30, tzinfo=UTC))  # a new day in UTC, still the 24th (16:30) in LA
    _, bob = await quiz_and_answer(svc, "bob", right=True)
    assert "🔥 Streak: 1 day" in bob.text, "bob's days are the group's (Los Angeles), not UTC's"


async def test_members_of_one_burst_each_get_the_streak_of_their_own_day(
    svc: StudyService, outside: Outside, clock: FakeClock
) -> None:
    """The answers of a burst share streak rules by day: members whose days differ never get another's."""
    await set_group_zone(svc, outside, LA)
    await svc.handle(inbound("timezone Pacific/Kiritimati"))
    clock.set(datetime(2026, 11, 24, 9, 30, tzinfo=UTC))  # the 24th for both (23:30 / 01:30)
    await quiz_and_answer(svc, "alice", right=True)
    await quiz_and_answer(svc, "bob", right=True)
    clock.advance(hours=1)  # the 25th for alice, still the 24th for bob
    dealt = [(await svc.handle(inbound("quiz", user=u)))[0] for u in ("alice", "bob", "alice", "bob")]
    replies = await asyncio.gather(
        *(
            svc.handle(inbound(user=u, action=actions.answer_action(post_of(q), right_letter(q.text))))
            for u, q in zip(("alice", "bob", "alice", "bob"), dealt, strict=True)
        )
    )
    texts = [r[0].text for r in replies]
    assert "🔥 Streak: 2 days" in texts[0] and "🔥 Streak: 2 days" in texts[2], texts
    assert "🔥 Streak: 1 day" in texts[1] and "🔥 Streak: 1 day" in texts[3], texts
    assert (await streak_line(svc)).startswith("🔥 Streak 2 days")
    assert (await streak_line(svc, "bob")).startswith("🔥 Streak 1 day")


async def test_a_freeze_is_used_for_a_missed_day(svc: StudyService, clock: FakeClock) -> None:
    for n in range(7):
        _, out = await quiz_and_answer(svc, "alice", right=n % 2 == 0)
        clock.advance(days=1)
    assert "🔥 Streak: 7 days" in out.text
    assert "freezes 1" in await streak_line(svc)
    clock.advance(days=1)  # a whole day without answering
    assert (await streak_line(svc)).startswith("🔥 Streak 7 days"), "the freeze holds the streak"
    _, out = await quiz_and_answer(svc, "alice", right=True)
    assert "🔥 Streak: 8 days" in out.text and "🧊 A freeze kept your 7-day streak (1 missed day)." in out.text
    assert "freezes 0" in await streak_line(svc)


async def test_a_day_the_bot_failed_to_post_never_breaks_a_streak(
    svc: StudyService, outside: Outside, clock: FakeClock
) -> None:
    await set_group_zone(svc, outside, LA)
    await set_group_zone(svc, outside, LA, group="g2")
    for _ in range(3):
        await quiz_and_answer(svc, "alice", right=True)
        await quiz_and_answer(svc, "bob", right=True, group="g2")
        clock.advance(days=1)
    # Thursday 09:00 in Los Angeles: g1's post was missed (bot down); g2's went out.
    thursday = datetime(2026, 11, 26, 17, 0, tzinfo=UTC)
    await add_delivery(outside, thursday, "missed")
    await add_delivery(outside, thursday, "sent", group="g2")
    await add_delivery(outside, thursday - timedelta(days=2), "skipped")  # an admin's skip excuses nothing
    clock.set(datetime(2026, 11, 27, 18, 0, tzinfo=UTC))  # Friday; nobody answered on Thursday
    assert (await streak_line(svc)).startswith("🔥 Streak 3 days")
    assert (await streak_line(svc, "bob", group="g2")).startswith("🔥 Streak 0 days")
    _, alice = await quiz_and_answer(svc, "alice", right=True)
    _, bob = await quiz_and_answer(svc, "bob", right=True, group="g2")
    assert "🔥 Streak: 4 days" in alice.text and "freeze" not in alice.text
    assert "🔥 Streak: 1 day" in bob.text


async def test_a_failed_post_excuses_the_day_in_the_members_own_zone(
    svc: StudyService, outside: Outside, clock: FakeClock
) -> None:
    await set_group_zone(svc, outside, LA)
    await svc.handle(inbound("timezone Pacific/Kiritimati"))
    clock.set(datetime(2026, 11, 23, 12, 0, tzinfo=UTC))  # 02:00 on the 24th in Kiritimati
    await quiz_and_answer(svc, "alice", right=True)
    # The group's post for Tuesday 09:00 LA (17:00 UTC) failed: that is Wednesday 07:00 for alice.
    await add_delivery(outside, datetime(2026, 11, 24, 17, 0, tzinfo=UTC), "failed")
    clock.set(datetime(2026, 11, 25, 12, 0, tzinfo=UTC))  # Thursday 02:00 for alice; she skipped Wednesday
    _, out = await quiz_and_answer(svc, "alice", right=True)
    assert "🔥 Streak: 2 days" in out.text


# ---------------------------------------------------------------------- leaderboards


async def test_the_week_runs_monday_to_sunday_in_the_groups_zone(
    svc: StudyService, outside: Outside, clock: FakeClock
) -> None:
    await set_group_zone(svc, outside, LA)
    clock.set(datetime(2026, 11, 30, 5, 0, tzinfo=UTC))  # Monday in UTC, still Sunday 21:00 in LA
    await quiz_and_answer(svc, "alice", right=True)
    [week] = await svc.handle(inbound("leaderboard week"))
    assert "since Monday 23 Nov" in week.text and "alice (you) — 1 pt" in plain(week.text)
    clock.set(datetime(2026, 11, 30, 17, 0, tzinfo=UTC))  # Monday 09:00 in LA: a new week
    [week] = await svc.handle(inbound("leaderboard week"))
    assert "since Monday 30 Nov" in week.text and "No points yet" in week.text
    [all_time] = await svc.handle(inbound("leaderboard all"))
    assert "alice (you) — 1 pt" in plain(all_time.text)


async def test_points_ties_and_opt_out(svc: StudyService, clock: FakeClock) -> None:
    await quiz_and_answer(svc, "bob", right=True)  # bob scores first ...
    clock.advance(minutes=5)
    await quiz_and_answer(svc, "alice", right=True)  # ... alice ties him later
    await quiz_and_answer(svc, "cy", right=False)  # a wrong answer scores nothing
    clock.advance(days=1, hours=1)
    [review] = await svc.handle(inbound("review", user="cy"))
    assert review.buttons, review.text
    await svc.handle(inbound(user="cy", action=actions.answer_action(post_of(review), right_letter(review.text))))
    for scope in ("week", "all"):
        [board] = await svc.handle(inbound(f"leaderboard {scope}", user="cy"))
        lines = board.text.splitlines()
        assert "bob" in lines[1] and "alice" in lines[2], board.text
        assert "cy" not in board.text, "right on a retry of a question: no point"
    await svc.handle(inbound("leaderboard hide", user="bob"))
    [board] = await svc.handle(inbound("leaderboard all", user="cy"))
    assert "bob" not in board.text and "🥇 alice" in plain(board.text)
    await svc.handle(inbound("leaderboard show", user="bob"))
    [board] = await svc.handle(inbound("leaderboard week", user="cy"))
    assert "🥇 bob" in plain(board.text)


async def counting_engine(
    store: ManagedStore, library: ContentLibrary, clock: FakeClock, members: int
) -> tuple[LearningEngine, list[int], list[MemberRef]]:
    """A learning engine whose store counts its look-ups of missed posts (by group), and ``members`` members."""
    learning_store = learning_for(store)
    calls: list[int] = []
    real = learning_store.missed_deliveries

    async def counted(group_id: int, since: datetime) -> list[datetime]:
        calls.append(group_id)
        return await real(group_id, since)

    learning_store.missed_deliveries = counted  # type: ignore[method-assign]
    engine = LearningEngine(learning_store, store, library, clock, chart_process=False)
    refs = [await store.ensure_member("console", "g1", "c1", f"u{i}", f"U{i}", now=clock.now()) for i in range(members)]
    return engine, calls, refs


async def test_a_burst_of_answers_looks_up_missed_posts_once(
    store: ManagedStore, library: ContentLibrary, clock: FakeClock
) -> None:
    engine, calls, members = await counting_engine(store, library, clock, 50)
    days = await asyncio.gather(*(engine.excused_days(m, clock.now()) for m in members))
    assert days == [frozenset()] * 50 and calls == [members[0].group_id]
    clock.advance(minutes=2)
    await engine.excused_days(members[0], clock.now())
    assert len(calls) == 2, "looked up again once the short cache expired"


async def test_one_look_up_of_missed_posts_gives_each_zone_its_own_days(
    store: ManagedStore, library: ContentLibrary, clock: FakeClock, outside: Outside
) -> None:
    engine, calls, members = await counting_engine(store, library, clock, 6)
    # The post for Tuesday 17:00 UTC failed: Tuesday in UTC (the group's zone) and Los Angeles, Wednesday
    # in Kiritimati. Members of the three zones ask in one burst, interleaved.
    await add_delivery(outside, datetime(2026, 11, 24, 17, 0, tzinfo=UTC), "failed")
    refs = [replace(m, tz=z) for m, z in zip(members, [LA, "Pacific/Kiritimati", None] * 2, strict=True)]
    clock.set(datetime(2026, 11, 26, 12, 0, tzinfo=UTC))
    days = await asyncio.gather(*(engine.excused_days(r, clock.now()) for r in refs))
    assert days == [frozenset({day(1)}), frozenset({day(2)}), frozenset({day(1)})] * 2
    assert [await engine.excused_days(r, clock.now()) for r in reversed(refs)] == days[::-1]
    assert len(calls) == 1


class HeldLookUps:
    """Holds the learning engine's look-ups of missed posts until `release` (the first fails with
    ``fail_first``), and counts the answers handed to the store meanwhile."""

    def __init__(self, svc: StudyService, store: ManagedStore, fail_first: bool = False) -> None:
        engine = svc.known_excused_days.__self__  # type: ignore[union-attr]
        self.real, self.fail_first = engine.store.missed_deliveries, fail_first
        engine.store.missed_deliveries = self.look_up
        self.record, self.calls, self.handed = store.record_answer, 0, 0
        store.record_answer = self.record_answer  # type: ignore[method-assign]
        self.held, self.all_handed, self.expect = asyncio.Event(), asyncio.Event(), 0

    async def look_up(self, group_id: int, since: datetime) -> list[datetime]:
        self.calls += 1
        await self.held.wait()
        if self.fail_first and self.calls == 1:
            raise StoreError("database is locked")
        result: list[datetime] = await self.real(group_id, since)
        return result

    async def record_answer(self, *args: Any) -> AnswerOutcome:
        self.handed += 1
        if self.handed == self.expect:
            self.all_handed.set()
        outcome: AnswerOutcome = await self.record(*args)
        return outcome

    async def burst(self, svc: StudyService, clicks: list[tuple[str, Reply]]) -> list[str]:
        """The clicks at once; each reaches the store while the look-up is held; then it is released."""
        self.expect = self.handed + len(clicks)
        self.all_handed.clear()
        task = asyncio.gather(
            *(
                svc.handle(inbound(user=u, action=actions.answer_action(post_of(q), right_letter(q.text))))
                for u, q in clicks
            )
        )
        try:
            await asyncio.wait_for(self.all_handed.wait(), 10)  # no answer waits for the look-up on its own
        finally:
            self.held.set()
        return [r[0].text for r in await task]


async def test_a_burst_that_meets_the_missed_post_look_up_gets_each_zones_excused_days(
    svc: StudyService, store: ManagedStore, outside: Outside, clock: FakeClock
) -> None:
    """Answers that arrive while their group's missed posts are looked up go to the store at once (it waits
    for the look-up once per batch); each still gets the excused days of their own zone and day."""
    zones = {"alice": "Pacific/Kiritimati", "bob": LA, "cy": "UTC", "dee": "Pacific/Kiritimati", "eve": LA}
    await set_group_zone(svc, outside, LA)
    for user, tz in zones.items():
        await svc.handle(inbound(f"timezone {tz}", user=user))
    clock.set(datetime(2026, 11, 23, 9, 0, tzinfo=UTC))  # Monday in all three zones (LA 01:00, Kiritimati 23:00)
    for user in zones:
        await quiz_and_answer(svc, user, right=True)
    # The post for Tuesday 17:00 UTC failed: Tuesday in Los Angeles and UTC, Wednesday in Kiritimati.
    await add_delivery(outside, datetime(2026, 11, 24, 17, 0, tzinfo=UTC), "failed")
    clock.set(datetime(2026, 11, 25, 9, 0, tzinfo=UTC))  # Wednesday in all three (LA 01:00, Kiritimati 23:00)
    dealt = [(u, (await svc.handle(inbound("quiz", user=u)))[0]) for u in zones]
    held = HeldLookUps(svc, store)
    texts = await held.burst(svc, dealt)
    streaks = {u: t.split("🔥 Streak: ")[1].split("\n")[0] for (u, _), t in zip(dealt, texts, strict=True)}
    # Tuesday was excused in LA and UTC; in Kiritimati Wednesday was, and Tuesday broke the streak.
    assert streaks == {"alice": "1 day", "bob": "2 days", "cy": "2 days", "dee": "1 day", "eve": "2 days"}
    assert held.calls == 1, "one look-up for the burst"
    assert all("freeze" not in t for t in texts), texts


async def test_answers_whose_missed_post_look_up_fails_are_not_recorded(
    svc: StudyService, store: ManagedStore, outside: Outside, clock: FakeClock
) -> None:
    await set_group_zone(svc, outside, LA)
    await quiz_and_answer(svc, "alice", right=True)
    await quiz_and_answer(svc, "bob", right=True)
    await add_delivery(outside, datetime(2026, 11, 24, 17, 0, tzinfo=UTC), "failed")  # Tuesday in LA
    clock.set(datetime(2026, 11, 25, 18, 0, tzinfo=UTC))  # Wednesday 10:00 in LA
    dealt = [(u, (await svc.handle(inbound("quiz", user=u)))[0]) for u in ("alice", "bob")]
    held = HeldLookUps(svc, store, fail_first=True)
    texts = await held.burst(svc, dealt)
    assert texts == [ERROR_TEXT, ERROR_TEXT]
    assert await outside("SELECT COUNT(*) FROM answers") == [(2,)], "only Monday's answers"
    texts = await held.burst(svc, dealt)  # clicked again: a new look-up, and Tuesday excused
    assert all("🔥 Streak: 2 days" in t for t in texts), texts
    assert held.calls == 2
