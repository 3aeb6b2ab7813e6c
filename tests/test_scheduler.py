"""Scheduled posts end to end on a real SQLite file, driven by a fake clock (plus one real-time test).

The simulations call `Scheduler.run_due(instant)` directly — the verb APScheduler's jobs call — so 60
days take a moment, not 60 days.
"""

from __future__ import annotations

import asyncio
import io
import random
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.adapters.console_adapter import ConsoleAdapter
from bot.config import Settings
from bot.core import actions
from bot.core.content import ContentLibrary
from bot.core.markup import plain
from bot.core.ports import ChatGateway
from bot.core.schedule import ScheduleRule
from bot.core.service import StudyService
from bot.scheduling import Scheduler
from bot.storage import ManagedStore, SqliteStore, schedules_for
from tests.conftest import FakeClock, inbound, read_rows
from tests.fakes import FakeChatGateway

DAILY = tuple(range(7))


def utc(*a: int) -> datetime:
    return datetime(*a, tzinfo=UTC)


@pytest.fixture
async def fast_store(db_path: Path) -> AsyncIterator[SqliteStore]:
    # The simulations write thousands of rows; durability is not what they test.
    s = SqliteStore(db_path, synchronous="OFF")
    await s.start()
    yield s
    await s.close()


def make_scheduler(
    store: ManagedStore,
    library: ContentLibrary,
    clock: FakeClock,
    gateway: ChatGateway,
    *,
    name: str,
    catchup: float = 6,
) -> Scheduler:
    service = StudyService(store, library, clock, rng=random.Random(1))
    settings = Settings.model_validate({"STUDYBOT_CATCHUP_HOURS": catchup})
    sched = Scheduler(
        schedules_for(store),
        service,
        {gateway.platform: gateway},
        clock,
        settings,
        name=name,
        rng=random.Random(2),
    )
    sched.install_commands()
    return sched


async def make_channel(store: ManagedStore, now: datetime, channel: str = "c1") -> tuple[int, int]:
    m = await store.ensure_member("console", "g1", channel, "admin", "admin", now=now)
    return m.group_id, m.channel_id


async def statuses(store: ManagedStore, channel_id: int) -> list[tuple[datetime, str]]:
    rows = await read_rows(
        store, "SELECT scheduled_for, status FROM deliveries WHERE channel_id = ? ORDER BY scheduled_for", channel_id
    )
    return [(datetime.fromisoformat(t), s) for t, s in rows]


def expected_instant(tz: str, day: date, wall: time) -> datetime:
    """Independent of the code under test: the first UTC minute at which the local clock on ``day``
    shows ``wall`` or later (a gap moves it forward; a fold takes the first pass)."""
    z = ZoneInfo(tz)
    t = datetime(day.year, day.month, day.day, tzinfo=UTC) - timedelta(hours=15)
    step = timedelta(minutes=15)

    def reached(x: datetime) -> bool:
        local = x.astimezone(z)
        return local.date() > day or (local.date() == day and (local.hour, local.minute) >= (wall.hour, wall.minute))

    while not reached(t):
        t += step
    t -= step
    while not reached(t):
        t += timedelta(minutes=1)
    assert t.astimezone(z).date() == day
    return t


SIMULATIONS = [
    # zone, wall time, days, window start — each window spans a clock change (Kolkata has none).
    ("America/Los_Angeles", time(2, 30), DAILY, utc(2026, 2, 15)),  # gap 2026-03-08
    ("America/Los_Angeles", time(1, 30), DAILY, utc(2026, 9, 25)),  # fold 2026-11-01
    ("America/Los_Angeles", time(9, 0), (0, 2, 4), utc(2027, 2, 15)),  # spring 2027
    ("Europe/Berlin", time(2, 30), DAILY, utc(2026, 3, 1)),  # gap 2026-03-29
    ("Europe/Berlin", time(2, 30), DAILY, utc(2026, 9, 20)),  # fold 2026-10-25
    ("Europe/Berlin", time(2, 30), DAILY, utc(2027, 2, 20)),  # gap 2027-03-28
    ("Asia/Kolkata", time(9, 0), (0, 1, 2, 3, 4), utc(2026, 2, 15)),
    ("Australia/Lord_Howe", time(1, 45), DAILY, utc(2026, 3, 1)),  # 30-min fold 2026-04-05
    ("Australia/Lord_Howe", time(2, 15), DAILY, utc(2026, 9, 10)),  # 30-min gap 2026-10-04
    ("Australia/Lord_Howe", time(1, 45), (6,), utc(2027, 2, 20)),  # fold 2027-04-04 (a Sunday)
    ("America/St_Johns", time(2, 30), DAILY, utc(2026, 2, 15)),  # gap 2026-03-08
    ("America/St_Johns", time(1, 30), (0, 2, 6), utc(2026, 9, 25)),  # fold 2026-11-01 (a Sunday)
    ("America/St_Johns", time(2, 30), DAILY, utc(2027, 2, 20)),  # gap 2027-03-14
]


@pytest.mark.parametrize(("tz", "wall", "days", "start"), SIMULATIONS, ids=lambda v: str(v))
async def test_sixty_days_one_post_per_chosen_local_day_at_the_right_time(
    fast_store: SqliteStore, library: ContentLibrary, tz: str, wall: time, days: tuple[int, ...], start: datetime
) -> None:
    clock = FakeClock(start)
    gw = FakeChatGateway()
    sched = make_scheduler(fast_store, library, clock, gw, name="a")
    _, cid = await make_channel(fast_store, start)
    await schedules_for(fast_store).save_schedule(cid, ScheduleRule(wall, tz, days), start)
    z = ZoneInfo(tz)
    first = start.astimezone(z).date()
    chosen = [first + timedelta(days=i) for i in range(61) if (first + timedelta(days=i)).weekday() in days]
    chosen = [d for d in chosen if expected_instant(tz, d, wall) > start][:60]
    expected = [expected_instant(tz, d, wall) for d in chosen]
    for at in expected:
        # A minute early nothing goes (this tick also catches anything that went out since the last
        # post: a second pass through a fold, a post on a day not chosen); on the minute, exactly one.
        assert (await sched.run_due(at - timedelta(minutes=1))).sent == []
        assert (await sched.run_due(at)).sent == [(cid, at)]
    end = await sched.run_due(expected[-1] + timedelta(hours=23))
    assert end.sent == [] and end.missed == []
    assert await statuses(fast_store, cid) == [(at, "sent") for at in expected]
    assert len(gw.questions) == len(expected)
    assert {at.astimezone(z).date() for at in expected} == set(chosen)


# ---------------------------------------------------------------- restarts and races

T = utc(2026, 6, 10, 7, 0)  # 09:00 in Berlin (summer time)
RULE = ScheduleRule(time(9, 0), "Europe/Berlin", DAILY)


async def _setup(store: ManagedStore) -> int:
    _, cid = await make_channel(store, T - timedelta(days=1))
    await schedules_for(store).save_schedule(cid, RULE, T - timedelta(days=1))
    return cid


async def test_restart_just_before_the_occurrence_posts_once(store: ManagedStore, library: ContentLibrary) -> None:
    cid = await _setup(store)
    clock, gw = FakeClock(T), FakeChatGateway()
    assert (await make_scheduler(store, library, clock, gw, name="a").run_due(T - timedelta(seconds=1))).sent == []
    assert (await make_scheduler(store, library, clock, gw, name="b").run_due(T)).sent == [(cid, T)]
    assert (await make_scheduler(store, library, clock, gw, name="c").run_due(T + timedelta(seconds=1))).sent == []
    assert len(gw.questions) == 1


async def test_restart_at_the_occurrence_does_not_post_twice(store: ManagedStore, library: ContentLibrary) -> None:
    cid = await _setup(store)
    clock, gw = FakeClock(T), FakeChatGateway()
    assert (await make_scheduler(store, library, clock, gw, name="a").run_due(T)).sent == [(cid, T)]
    assert (await make_scheduler(store, library, clock, gw, name="b").run_due(T)).sent == []
    assert len(gw.questions) == 1 and await statuses(store, cid) == [(T, "sent")]


async def test_restart_after_a_missed_occurrence_catches_up_once(store: ManagedStore, library: ContentLibrary) -> None:
    cid = await _setup(store)
    clock, gw = FakeClock(T), FakeChatGateway()
    await make_scheduler(store, library, clock, gw, name="a").run_due(T - timedelta(minutes=5))
    # Down for two hours; the new instance's start-up run posts the 09:00 item once.
    assert (await make_scheduler(store, library, clock, gw, name="b").run_due(T + timedelta(hours=2))).sent == [
        (cid, T)
    ]
    assert (
        await make_scheduler(store, library, clock, gw, name="c").run_due(T + timedelta(hours=2, seconds=1))
    ).sent == []
    assert len(gw.questions) == 1


async def test_an_occurrence_older_than_the_catchup_window_is_recorded_missed_and_shown(
    store: ManagedStore, library: ContentLibrary
) -> None:
    cid = await _setup(store)
    clock, gw = FakeClock(T + timedelta(hours=7)), FakeChatGateway()
    sched = make_scheduler(store, library, clock, gw, name="b")
    report = await sched.run_due(T + timedelta(hours=7))
    assert report.sent == [] and report.missed == [(cid, T)]
    assert await statuses(store, cid) == [(T, "missed")]
    assert gw.posts == []
    replies = await sched.service.handle(inbound("schedule show", admin=True, user="admin"))
    assert "missed" in replies[0].text and "Wed 10 Jun 09:00" in replies[0].text


async def test_a_long_outage_posts_only_the_latest_occurrence_inside_the_window(
    store: ManagedStore, library: ContentLibrary
) -> None:
    cid = await _setup(store)
    clock, gw = FakeClock(T), FakeChatGateway()
    back = T + timedelta(days=3, hours=1)  # three occurrences missed, the fourth is 1 h old
    report = await make_scheduler(store, library, clock, gw, name="b").run_due(back)
    assert report.sent == [(cid, T + timedelta(days=3))]
    assert await statuses(store, cid) == [
        (T, "missed"),
        (T + timedelta(days=1), "missed"),
        (T + timedelta(days=2), "missed"),
        (T + timedelta(days=3), "sent"),
    ]
    assert len(gw.posts) == 1


async def test_a_claim_abandoned_by_a_crashed_process_is_retried_after_the_lease(
    store: ManagedStore, library: ContentLibrary
) -> None:
    cid = await _setup(store)
    assert await schedules_for(store).claim(cid, T, "crashed", T) is not None
    clock, gw = FakeClock(T), FakeChatGateway()
    sched = make_scheduler(store, library, clock, gw, name="b")
    assert (await sched.run_due(T + timedelta(minutes=1))).sent == []  # it may still be sending
    assert (await sched.run_due(T + timedelta(minutes=11))).sent == [(cid, T)]
    assert len(gw.questions) == 1


async def test_two_schedulers_on_one_database_post_once_per_occurrence(
    store: ManagedStore, twin: ManagedStore, library: ContentLibrary
) -> None:
    cid = await _setup(store)
    clock, gw = FakeClock(T), FakeChatGateway()
    a = make_scheduler(store, library, clock, gw, name="a")
    b = make_scheduler(twin, library, clock, gw, name="b")
    for day in range(5):
        at = T + timedelta(days=day)
        ra, rb = await asyncio.gather(a.run_due(at), b.run_due(at))
        assert sorted(ra.sent + rb.sent) == [(cid, at)]
    assert len(gw.questions) == 5
    assert [s for _, s in await statuses(store, cid)] == ["sent"] * 5


# ---------------------------------------------------------------- failures


async def test_rate_limits_and_server_errors_are_retried_and_delivered_once(
    store: ManagedStore, library: ContentLibrary
) -> None:
    cid = await _setup(store)
    clock, gw = FakeClock(T), FakeChatGateway()
    sched = make_scheduler(store, library, clock, gw, name="a")
    gw.fail_next(1, status=429, retry_after=45)
    gw.fail_next(1, status=500)
    report = await sched.run_due(T)
    assert report.sent == [] and report.failed == [(cid, T)]
    assert (await sched.run_due(T + timedelta(seconds=44))).sent == []  # honours Retry-After
    assert (await sched.run_due(T + timedelta(seconds=45))).sent == []  # 500 this time
    show = await sched.service.handle(inbound("schedule show", admin=True, user="admin"))
    assert "retrying" in show[0].text and "HTTP 500" in show[0].text
    # A restart in between: the new instance picks the retry up.
    other = make_scheduler(store, library, clock, gw, name="b")
    assert (await other.run_due(T + timedelta(minutes=5))).sent == [(cid, T)]
    assert (await sched.run_due(T + timedelta(minutes=10))).sent == []
    assert len(gw.questions) == 1 and gw.attempts == 3
    assert await statuses(store, cid) == [(T, "sent")]
    # Nothing lost: the next day goes out as usual.
    assert (await sched.run_due(T + timedelta(days=1))).sent == [(cid, T + timedelta(days=1))]


async def test_a_post_that_keeps_failing_is_given_up_as_failed_after_the_window(
    store: ManagedStore, library: ContentLibrary
) -> None:
    cid = await _setup(store)
    clock, gw = FakeClock(T), FakeChatGateway()
    sched = make_scheduler(store, library, clock, gw, name="a")
    gw.fail_next(1000)
    at = T
    while at < T + timedelta(hours=8):
        await sched.run_due(at)
        at += timedelta(minutes=10)
    assert await statuses(store, cid) == [(T, "failed")]  # a "bot failed to post" day for streaks
    assert gw.posts == [] and gw.attempts < 20


async def test_a_forbidden_channel_pauses_the_schedule_and_tells_the_next_admin(
    store: ManagedStore, library: ContentLibrary
) -> None:
    cid = await _setup(store)
    clock, gw = FakeClock(T), FakeChatGateway(forbidden=True)
    sched = make_scheduler(store, library, clock, gw, name="a")
    await sched.run_due(T)
    s = await schedules_for(store).schedule_for(cid)
    assert s is not None and s.paused and "lost access" in (s.paused_reason or "")
    member = await sched.service.handle(inbound("help", user="bob"))
    assert not any("paused" in r.text for r in member)
    first = await sched.service.handle(inbound("help", admin=True, user="admin"))
    assert any("Daily posts in c1 are paused" in plain(r.text) and "lost access" in r.text for r in first)
    second = await sched.service.handle(inbound("help", admin=True, user="admin"))
    assert not any("are paused" in r.text for r in second)
    gw.forbidden = False
    assert (await sched.run_due(T + timedelta(days=1))).sent == []  # stays paused until resumed
    clock.set(T + timedelta(days=1, hours=1))
    await sched.service.handle(inbound("schedule resume", admin=True, user="admin"))
    assert (await sched.run_due(T + timedelta(days=2))).sent == [(cid, T + timedelta(days=2))]


# ---------------------------------------------------------------- content and reveal


async def test_no_repeats_until_the_pool_is_used_up_then_a_new_shuffled_cycle(
    store: ManagedStore, library: ContentLibrary
) -> None:
    cid = await _setup(store)
    clock, gw = FakeClock(T), FakeChatGateway()
    sched = make_scheduler(store, library, clock, gw, name="a")
    for day in range(12):
        await sched.run_due(T + timedelta(days=day))

    rows = await read_rows(
        store,
        "SELECT item_id FROM posts WHERE channel_id = ? AND member_id IS NULL AND kind = 'question' ORDER BY id",
        cid,
    )
    items = [r[0] for r in rows]
    assert len(items) == 12
    pool = {q.id for q in library.pack.questions}
    for cycle in range(3):
        assert set(items[cycle * 4 : cycle * 4 + 4]) == pool
    assert all(a != b for a, b in pairwise(items))
    assert items[:4] != items[4:8] or items[4:8] != items[8:12]  # shuffled, not one fixed order


async def test_tips_follow_the_career_steps_and_mix_alternates(store: ManagedStore, library: ContentLibrary) -> None:
    _, cid = await make_channel(store, T - timedelta(days=1))
    _, cid2 = await make_channel(store, T - timedelta(days=1), channel="c2")
    sstore = schedules_for(store)
    await sstore.save_schedule(cid, ScheduleRule(time(9, 0), "Europe/Berlin", DAILY, "tip"), T - timedelta(days=1))
    await sstore.save_schedule(cid2, ScheduleRule(time(9, 0), "Europe/Berlin", DAILY, "mix"), T - timedelta(days=1))
    clock, gw = FakeClock(T), FakeChatGateway()
    sched = make_scheduler(store, library, clock, gw, name="a")
    for day in range(4):
        await sched.run_due(T + timedelta(days=day))
    tips = [p.text.split("\n")[0] for p in gw.posts if p.channel == "c1"]
    assert [t.split("step ")[1][0] for t in tips] == ["1", "2", "1", "2"]
    mixed = [("Question" in p.text, "Tip" in p.text) for p in gw.posts if p.channel == "c2" and "reveal" not in p.text]
    assert mixed == [(True, False), (False, True), (True, False), (False, True)]


async def test_the_reveal_comes_with_the_next_post_and_has_the_right_counts(
    store: ManagedStore, library: ContentLibrary
) -> None:
    await _setup(store)
    clock, gw = FakeClock(T), FakeChatGateway()
    sched = make_scheduler(store, library, clock, gw, name="a")
    await sched.run_due(T)
    post_id = int(actions.parse_action(gw.posts[0].buttons[0].action_id).post_id)  # type: ignore[union-attr]
    post = await store.get_post(post_id)
    assert post is not None and post.message_id == "m1"
    q = library.pack.question(post.item_id)
    assert q is not None
    wrong = next(letter for letter in "ABCD" if letter != q.answer)
    clock.set(T + timedelta(hours=1))
    for user, letter in (("ann", q.answer), ("ben", q.answer), ("cy", wrong)):
        await sched.service.handle(inbound(user=user, action=actions.answer_action(post_id, letter)))
    await sched.run_due(T + timedelta(hours=23))
    assert gw.reveals == []  # never before the next post
    await sched.run_due(T + timedelta(days=1))
    assert len(gw.reveals) == 1
    reveal = gw.reveals[0].text
    assert gw.posts.index(gw.reveals[0]) == 1  # the reveal, then the new question
    assert f"{q.answer}) {q.choice(q.answer)} — 2 votes ✅" in reveal
    assert f"{wrong}) {q.choice(wrong)} — 1 vote" in reveal
    assert "2 of 3 answered correctly" in reveal and q.explanation in reveal
    assert gw.edits and gw.edits[0].message_id == "m1" and gw.edits[0].buttons == ()
    await sched.run_due(T + timedelta(days=1, hours=1))
    assert len(gw.reveals) == 1  # once


async def test_a_timed_reveal_goes_out_after_the_set_hours(store: ManagedStore, library: ContentLibrary) -> None:
    _, cid = await make_channel(store, T - timedelta(days=1))
    rule = ScheduleRule(time(9, 0), "Europe/Berlin", DAILY, "question", reveal_hours=3)
    await schedules_for(store).save_schedule(cid, rule, T - timedelta(days=1))
    clock, gw = FakeClock(T), FakeChatGateway()
    sched = make_scheduler(store, library, clock, gw, name="a")
    await sched.run_due(T)
    assert (await sched.run_due(T + timedelta(hours=2, minutes=59))).revealed == []
    assert len((await sched.run_due(T + timedelta(hours=3))).revealed) == 1
    assert (await sched.run_due(T + timedelta(days=1))).revealed == []  # already revealed
    assert len(gw.reveals) == 1


# ---------------------------------------------------------------- admin commands


async def test_schedule_commands_validate_and_explain(store: ManagedStore, library: ContentLibrary) -> None:
    clock, gw = FakeClock(utc(2026, 3, 5, 12)), FakeChatGateway()
    sched = make_scheduler(store, library, clock, gw, name="a")
    svc = sched.service

    async def say(text: str, admin: bool = True) -> str:
        return "\n".join(r.text for r in await svc.handle(inbound(text, admin=admin, user="admin")))

    assert "Only admins" in await say("schedule set 09:00", admin=False)
    assert 'Unknown time zone "Europe/Berln" — did you mean Europe/Berlin?' in await say(
        "schedule set 09:00 tz Europe/Berln"
    )
    assert "not a time of day" in await say("schedule set 25:00")
    assert "Unknown days" in await say("schedule set 09:00 days someday")
    assert "No daily posts" in await say("schedule show")
    out = await say("schedule set 02:30 tz america/los_angeles days daily kind mix")
    assert "02:30 America/Los_Angeles, daily" in out and "group's time zone is now America/Los_Angeles" in out
    preview = await say("schedule preview")
    assert "02:30 does not exist that day (clocks go forward): posts at 03:00" in preview
    # The group's zone is no longer UTC: another channel's zone does not replace it.
    out2 = "\n".join(
        r.text
        for r in await svc.handle(inbound("schedule set 09:00 tz Asia/Kolkata", admin=True, user="admin", channel="c9"))
    )
    assert "group's time zone" not in out2
    assert "Paused" not in await say("schedule show")
    assert "paused" in await say("schedule pause")
    assert "Paused" in await say("schedule show")
    assert "back on" in await say("schedule resume")


async def test_skip_skips_the_next_post_only(store: ManagedStore, library: ContentLibrary) -> None:
    cid = await _setup(store)
    clock, gw = FakeClock(T - timedelta(hours=1)), FakeChatGateway()
    sched = make_scheduler(store, library, clock, gw, name="a")
    out = await sched.service.handle(inbound("schedule skip", admin=True, user="admin"))
    assert "Wed 10 Jun 09:00" in out[0].text and "will be skipped" in out[0].text
    report = await sched.run_due(T)
    assert report.sent == [] and report.skipped == [(cid, T)]
    assert (await sched.run_due(T + timedelta(days=1))).sent == [(cid, T + timedelta(days=1))]
    assert await statuses(store, cid) == [(T, "skipped"), (T + timedelta(days=1), "sent")]


async def test_post_now_in_the_console_prints_the_post(store: ManagedStore, library: ContentLibrary) -> None:
    clock = FakeClock(T)
    service = StudyService(store, library, clock, rng=random.Random(1))
    out = io.StringIO()
    console = ConsoleAdapter(service, "admin", stdin=io.StringIO(""), stdout=out)
    settings = Settings.model_validate({})
    sched = Scheduler(schedules_for(store), service, {"console": console}, clock, settings, name="a")
    sched.install_commands()
    await console.handle_line("/study schedule post-now")
    text = out.getvalue()
    assert "📣 Question of the day" in text and "[A]  [B]  [C]  [D]" in text
    assert "Posted a question here" in text


# ---------------------------------------------------------------- the real timer


class OffsetClock:
    """The real clock shifted so that "now" starts at ``start`` (APScheduler still runs in real time)."""

    def __init__(self, start: datetime) -> None:
        self.offset = start - datetime.now(UTC)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset


async def test_apscheduler_fires_the_post_after_a_schedule_change_without_a_restart(
    store: ManagedStore, library: ContentLibrary
) -> None:
    clock = OffsetClock(utc(2026, 6, 10, 8, 59, 59) - timedelta(milliseconds=200))  # 1.2 s before 09:00 UTC
    gw = FakeChatGateway()
    service = StudyService(store, library, clock, rng=random.Random(1))
    sched = Scheduler(schedules_for(store), service, {"console": gw}, clock, Settings.model_validate({}), name="rt")
    sched.install_commands()
    await sched.start()
    try:
        await service.handle(inbound("schedule set 09:00 tz UTC", admin=True, user="admin"))
        assert sched.wake_at == utc(2026, 6, 10, 9, 0)
        loop = asyncio.get_running_loop()
        started = loop.time()
        async with asyncio.timeout(10):  # a bound, not a timing assertion
            await gw.posted.wait()
        print(f"APScheduler fired {loop.time() - started:.2f} s after the change (the post was due in ~1.2 s)")
    finally:
        await sched.close()
    assert len(gw.questions) == 1
    assert sched.runs >= 2  # the start-up catch-up and the timed wake
