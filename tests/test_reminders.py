"""Opt-in reminders (`bot.core.reminders`) on both stores: the member's local evening in their zone across a
DST change, once per day across a restart and across two processes, nothing when nothing is due, closed DMs,
retries, the freeze announcement, `/study remind` itself and the store's contract."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, date, datetime, time, timedelta

import pytest

from bot.config import Settings
from bot.core import actions
from bot.core.commands import UsageError, parse
from bot.core.content import ContentLibrary
from bot.core.reminders import Reminders, next_due_after, parse_time
from bot.core.service import StudyService
from bot.scheduling import Scheduler
from bot.storage import ManagedStore, learning_for, reminders_for, schedules_for
from tests.conftest import FakeClock, Outside, inbound
from tests.fakes import FakeDirectGateway
from tests.test_learning import learning_service, quiz_and_answer

BERLIN = "Europe/Berlin"
NEW_YORK = "America/New_York"


def utc(*a: int) -> datetime:
    return datetime(*a, tzinfo=UTC)


def build(
    store: ManagedStore, library: ContentLibrary, clock: FakeClock, gw: FakeDirectGateway, name: str = "a"
) -> tuple[StudyService, Reminders]:
    """A service with the learning engine and reminders installed, as `build_app` wires them."""
    service = learning_service(store, library, clock)
    rem = Reminders(reminders_for(store), service, learning_for(store), {gw.platform: gw}, clock, name=name)  # type: ignore[arg-type]
    rem.install()
    return service, rem


async def say(svc: StudyService, text: str, user: str = "alice") -> str:
    return "\n".join(r.text for r in await svc.handle(inbound(text, user=user)))


# ---------------------------------------------------------------------- the member's evening


async def test_a_reminder_goes_out_once_at_local_19_in_two_zones_across_a_dst_change_and_a_restart(
    store: ManagedStore, twin: ManagedStore, library: ContentLibrary
) -> None:
    clock = FakeClock(utc(2026, 10, 23, 10, 0))  # Friday; Berlin leaves summer time on Sunday the 25th
    gw = FakeDirectGateway(clock=clock)
    svc, first = build(store, library, clock, gw, "first")
    for user, tz in (("alice", BERLIN), ("bob", NEW_YORK)):
        await say(svc, f"timezone {tz}", user)
        assert "19:00 in " + tz in await say(svc, "remind on", user)
        await quiz_and_answer(svc, user, right=True)  # a streak that is at stake on the next days
    # The same database seen by a second process: what a restart (or another bot process) sees.
    gw2 = FakeDirectGateway(clock=clock)
    svc2, restarted = build(twin, library, clock, gw2, "restarted")

    assert (await first.run_due(utc(2026, 10, 23, 17, 0))).nothing, "answered today, nothing due: no reminder"
    expected = [  # local 19:00 in UTC, by member and day
        ("alice", utc(2026, 10, 24, 17, 0)),  # CEST, UTC+2
        ("bob", utc(2026, 10, 24, 23, 0)),  # EDT, UTC-4
        ("alice", utc(2026, 10, 25, 18, 0)),  # CET from that morning, UTC+1
        ("bob", utc(2026, 10, 25, 23, 0)),  # New York changes a week later
    ]
    for user, at in expected:
        before = len(gw.dms) + len(gw2.dms)
        clock.set(at - timedelta(minutes=1))
        assert not (await first.run_due()).sent, f"{user}: not before 19:00 local"
        clock.set(at)
        report = await first.run_due()
        assert len(report.sent) == 1 and gw.dms[-1][0] == user, f"{user} at {at}"
        assert gw.sent_at[-1] == at
        for later in (timedelta(0), timedelta(seconds=30), timedelta(hours=1)):
            clock.set(at + later)
            assert not (await restarted.run_due()).sent, "a restart never sends the day's reminder again"
            assert not (await first.run_due()).sent
        assert len(gw.dms) + len(gw2.dms) == before + 1
        text = gw.dms[-1][1].text
        assert "streak" in text and "/study remind off" in text
        assert [b.label for b in gw.dms[-1][1].buttons] == ["Quiz me"]
        clock.set(at + timedelta(hours=1))  # 20:00 local: they answer, so tomorrow's streak is at stake again
        await quiz_and_answer(svc2, user, right=True)
    assert [u for u, _ in gw.dms] == ["alice", "bob", "alice", "bob"] and not gw2.dms


async def test_nothing_due_means_nothing_sent(store: ManagedStore, library: ContentLibrary, outside: Outside) -> None:
    clock = FakeClock(utc(2026, 11, 23, 8, 0))
    gw = FakeDirectGateway(clock=clock)
    svc, rem = build(store, library, clock, gw)
    await say(svc, "remind on", "newcomer")  # never answered: no streak, no cards
    await say(svc, "remind on 18:30", "keen")
    await quiz_and_answer(svc, "keen", right=True)  # answered today; the card is due in days
    clock.set(utc(2026, 11, 23, 19, 0))
    report = await rem.run_due()
    assert len(report.nothing) == 2 and not report.sent
    assert gw.dms == []
    rows = await outside("SELECT status FROM reminder_sends ORDER BY member_id")
    assert rows == [("nothing",), ("nothing",)]
    assert (await rem.next_wakeup()) == utc(2026, 11, 24, 18, 30), "keen's 18:30 tomorrow comes first"


async def test_reviews_due_alone_bring_a_reminder(store: ManagedStore, library: ContentLibrary) -> None:
    clock = FakeClock(utc(2026, 11, 23, 8, 0))
    gw = FakeDirectGateway(clock=clock)
    svc, rem = build(store, library, clock, gw)
    await say(svc, "remind on 19:00")
    await quiz_and_answer(svc, "alice", right=False)  # a wrong answer comes back the next day
    clock.set(utc(2026, 11, 24, 6, 0))
    await quiz_and_answer(svc, "alice", right=True)  # active today (a new question): the streak is safe
    clock.set(utc(2026, 11, 24, 19, 0))
    assert len((await rem.run_due()).sent) == 1
    text = gw.dms[-1][1].text
    assert "🔁 1 review due" in text and "streak" not in text


async def test_late_start_sends_within_the_grace_and_skips_after_it(
    store: ManagedStore, library: ContentLibrary
) -> None:
    clock = FakeClock(utc(2026, 11, 23, 8, 0))
    gw = FakeDirectGateway(clock=clock)
    svc, rem = build(store, library, clock, gw)
    await say(svc, "remind on 19:00")
    await quiz_and_answer(svc, "alice", right=True)
    clock.set(utc(2026, 11, 24, 20, 30))  # the bot was down at 19:00 and is back at 20:30
    assert len((await rem.run_due()).sent) == 1
    clock.set(utc(2026, 11, 25, 23, 30))  # down all evening: 4.5 h late is too late for a reminder
    report = await rem.run_due()
    assert report.missed and not report.sent
    assert (await rem.next_wakeup()) == utc(2026, 11, 26, 19, 0)


async def test_two_processes_at_the_same_instant_send_each_reminder_once(
    store: ManagedStore, twin: ManagedStore, library: ContentLibrary
) -> None:
    clock = FakeClock(utc(2026, 11, 23, 8, 0))
    gw, gw2 = FakeDirectGateway(clock=clock), FakeDirectGateway(clock=clock)
    svc, one = build(store, library, clock, gw, "one")
    _, two = build(twin, library, clock, gw2, "two")
    users = [f"m{n}" for n in range(30)]
    for user in users:
        await say(svc, "remind on 19:00", user)
        await quiz_and_answer(svc, user, right=True)
    clock.set(utc(2026, 11, 24, 19, 0))
    await asyncio.gather(one.run_due(), two.run_due(), one.run_due())
    sent = [u for u, _ in gw.dms + gw2.dms]
    assert sorted(sent) == sorted(users), "every member exactly once"


# ---------------------------------------------------------------------- failures


async def test_closed_dms_turn_reminders_off_and_the_member_hears_it_at_their_next_command(
    store: ManagedStore, library: ContentLibrary
) -> None:
    clock = FakeClock(utc(2026, 11, 23, 8, 0))
    gw = FakeDirectGateway(clock=clock, closed={"alice"})
    svc, rem = build(store, library, clock, gw)
    await say(svc, "remind on")
    await quiz_and_answer(svc, "alice", right=True)
    clock.set(utc(2026, 11, 24, 19, 0))
    report = await rem.run_due()
    assert report.blocked and not gw.dms
    tip = await say(svc, "tip")
    assert "could not send you a reminder by direct message" in tip and "/study remind on" in tip
    assert "could not send you a reminder" not in await say(svc, "tip"), "told once"
    assert "Reminders are off" in await say(svc, "remind")
    clock.set(utc(2026, 11, 25, 19, 0))
    assert not (await rem.run_due()).blocked and gw.attempts == 1, "no further attempts while off"


async def test_a_server_error_is_retried_and_the_reminder_still_goes_once(
    store: ManagedStore, library: ContentLibrary
) -> None:
    clock = FakeClock(utc(2026, 11, 23, 8, 0))
    gw = FakeDirectGateway(clock=clock)
    svc, rem = build(store, library, clock, gw)
    await say(svc, "remind on")
    await quiz_and_answer(svc, "alice", right=True)
    gw.fail_next(2, status=503)
    clock.set(utc(2026, 11, 24, 19, 0))
    assert (await rem.run_due()).failed
    wake = await rem.next_wakeup()
    assert wake == utc(2026, 11, 24, 19, 0, 30), "retried after 30 s"
    clock.set(wake)
    assert (await rem.run_due()).failed
    clock.set(await rem.next_wakeup() or wake)
    assert len((await rem.run_due()).sent) == 1
    clock.advance(minutes=5)
    assert not (await rem.run_due()).sent
    assert len(gw.dms) == 1 and gw.attempts == 3


# ---------------------------------------------------------------------- freezes


async def test_a_freeze_is_announced_once_in_the_reminder_and_not_again_in_the_reply(
    store: ManagedStore, library: ContentLibrary
) -> None:
    clock = FakeClock(utc(2026, 11, 1, 8, 0))
    gw = FakeDirectGateway(clock=clock)
    svc, rem = build(store, library, clock, gw)
    for _ in range(7):  # seven days earn a freeze
        await quiz_and_answer(svc, "alice", right=True)
        clock.advance(days=1)
    await say(svc, "remind on 19:00")
    # Nov 8 is missed; on Nov 9 at 19:00 the freeze holds the 7-day streak.
    clock.set(utc(2026, 11, 9, 19, 0))
    await rem.run_due()
    text = gw.dms[-1][1].text
    assert "🧊 A freeze kept your 7-day streak (1 missed day)." in text
    assert "ends tonight" in text, "no freeze left for today"
    clock.set(utc(2026, 11, 9, 20, 0))
    _, out = await quiz_and_answer(svc, "alice", right=True)
    assert "🔥 Streak: 8 days" in out.text and "freeze" not in out.text, "announced once, in the reminder"


async def a_week_of_answers(store: ManagedStore, library: ContentLibrary) -> tuple[FakeClock, StudyService]:
    """Alice answers right on Nov 1-7 (a 7-day streak earns a freeze), with reminders installed; the clock
    is then at Nov 8, 08:00 UTC."""
    clock = FakeClock(utc(2026, 11, 1, 8, 0))
    svc = learning_service(store, library, clock)
    Reminders(reminders_for(store), svc, learning_for(store), {}, clock).install()  # type: ignore[arg-type]
    for _ in range(7):
        await quiz_and_answer(svc, "alice", right=True)
        clock.advance(days=1)
    return clock, svc


async def test_a_freeze_is_announced_once_in_the_next_commands_reply(
    store: ManagedStore, library: ContentLibrary
) -> None:
    clock, svc = await a_week_of_answers(store, library)
    clock.advance(days=1)  # Nov 8 missed; Nov 9
    tip = await svc.handle(inbound("tip"))
    assert len(tip) == 2 and tip[1].text == "🧊 A freeze kept your 7-day streak (1 missed day)." and tip[1].private
    assert "freeze kept" not in await say(svc, "path"), "once"
    [q] = await svc.handle(inbound("quiz"))
    [out] = await svc.handle(inbound(action=q.buttons[0].action_id))
    assert "🔥 Streak: 8 days" in out.text and "freeze" not in out.text, "not again in the answer's reply"


async def test_an_answer_by_button_with_no_command_before_announces_the_freeze(
    store: ManagedStore, library: ContentLibrary
) -> None:
    clock, svc = await a_week_of_answers(store, library)
    [q] = await svc.handle(inbound("quiz"))  # dealt on Nov 8, answered on Nov 9 with its button
    clock.advance(days=1)
    [out] = await svc.handle(inbound(action=q.buttons[0].action_id))
    assert "🧊 A freeze kept your 7-day streak (1 missed day)." in out.text


# ---------------------------------------------------------------------- the command and the buttons


@pytest.mark.parametrize(
    ("text", "args"),
    [
        ("remind", {}),
        ("remind on", {"switch": "on"}),
        ("remind ON 7:05", {"switch": "on", "time": "07:05"}),
        ("remind off", {"switch": "off"}),
    ],
)
def test_remind_grammar(text: str, args: dict[str, str]) -> None:
    assert parse(text).args == args and parse(text).name == "remind"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("remind maybe", "Usage: /study remind [on|off] [HH:MM]"),
        ("remind on 25:00", '"25:00" is not a time of day'),
        ("remind on 7pm", '"7pm" is not a time of day'),
        ("remind off 19:00", "Usage: /study remind"),
        ("remind on 19:00 extra", "Usage: /study remind"),
    ],
)
def test_remind_bad_input_is_one_clear_line(text: str, message: str) -> None:
    with pytest.raises(UsageError) as e:
        parse(text)
    assert message in str(e.value) and "\n" not in str(e.value)


async def test_remind_on_off_and_show(store: ManagedStore, library: ContentLibrary) -> None:
    clock = FakeClock(utc(2026, 11, 23, 20, 0))
    gw = FakeDirectGateway(clock=clock)
    svc, rem = build(store, library, clock, gw)
    assert "Reminders are off" in await say(svc, "remind")
    on = await say(svc, "remind on 21:15")
    assert "21:15 in UTC" in on and "the group's zone" in on and "today 21:15" in on
    assert "Reminders are on: 21:15" in await say(svc, "remind")
    assert "21:15 in UTC" in await say(svc, "remind on"), "on again without a time keeps the time"
    await say(svc, "timezone Europe/Berlin")  # 21:00 there: the next 21:15 Berlin is 20:15 UTC today
    assert await rem.next_wakeup() == utc(2026, 11, 23, 20, 15)
    assert "Reminders are off" in await say(svc, "remind off")
    assert await rem.next_wakeup() is None
    bad = await svc.handle(inbound("remind on 24:00"))
    assert len(bad) == 1 and "not a time of day" in bad[0].text


async def test_quiz_me_deals_a_question_only_to_its_member(store: ManagedStore, library: ContentLibrary) -> None:
    clock = FakeClock(utc(2026, 11, 23, 8, 0))
    gw = FakeDirectGateway(clock=clock)
    svc, rem = build(store, library, clock, gw)
    await say(svc, "remind on")
    await say(svc, "help", "bob")
    alice = (await rem.store.reminder_member(1)) or (await rem.store.reminder_member(2))
    assert alice is not None
    mine = actions.quizme_action(alice[0].member_id)
    [q] = await svc.handle(inbound(user=alice[0].user_id, action=mine))
    assert q.buttons and q.buttons[0].action_id.startswith("sb:ans:")
    [other] = await svc.handle(inbound(user="bob", action=mine))
    assert "someone else's reminder" in other.text
    # In a direct message (no group) the button names the member, who must be the clicker.
    dm = inbound(user=alice[0].user_id, action=mine, group="")
    [q2] = await svc.handle(dm)
    assert q2.buttons and q2.buttons[0].action_id.startswith("sb:ans:")
    [answered] = await svc.handle(inbound(user=alice[0].user_id, action=q2.buttons[0].action_id, group=""))
    assert "Correct" in answered.text or "Not quite" in answered.text
    [stranger] = await svc.handle(inbound(user="bob", action=mine, group=""))
    assert "no longer valid here" in stranger.text


async def test_the_scheduler_runs_reminders_and_wakes_for_the_next_one(
    store: ManagedStore, library: ContentLibrary
) -> None:
    clock = FakeClock(utc(2026, 11, 23, 8, 0))
    gw = FakeDirectGateway(clock=clock)
    svc = learning_service(store, library, clock)
    gateways = {gw.platform: gw}
    rem = Reminders(reminders_for(store), svc, learning_for(store), gateways, clock)  # type: ignore[arg-type]
    sched = Scheduler(schedules_for(store), svc, gateways, clock, Settings(), rng=random.Random(1), reminders=rem)
    rem.rearm = sched.reschedule
    rem.install()
    await say(svc, "remind on 19:00")
    await quiz_and_answer(svc, "alice", right=True)
    await sched.start()
    try:
        assert sched.wake_at == utc(2026, 11, 23, 19, 0)
        clock.set(utc(2026, 11, 24, 19, 0))
        await sched.tick()
        assert sched.last_reminders is not None and len(sched.last_reminders.sent) == 1
        assert sched.wake_at == utc(2026, 11, 25, 19, 0)
    finally:
        await sched.close()


# ---------------------------------------------------------------------- rules and the store's contract


def test_next_due_after_follows_the_local_clock() -> None:
    assert next_due_after(time(19), BERLIN, utc(2026, 10, 24, 16, 0)) == utc(2026, 10, 24, 17, 0)
    assert next_due_after(time(19), BERLIN, utc(2026, 10, 24, 17, 0)) == utc(2026, 10, 25, 18, 0)
    assert next_due_after(time(2, 30), BERLIN, utc(2026, 3, 28, 12, 0)) == utc(2026, 3, 29, 1, 0), "gap: 03:00"
    assert parse_time("07:05") == time(7, 5) and parse_time("7:5") is None and parse_time("²3:00") is None


async def test_reminder_store_claims_once_and_retries_only_when_due(store: ManagedStore) -> None:
    rs = reminders_for(store)  # type: ignore[arg-type]
    now = utc(2026, 11, 23, 19, 0)
    m = await store.ensure_member("discord", "g", "c", "u1", "Ann", now=now)
    await rs.set_reminder(m.member_id, m.channel_id, True, time(19), now, now)
    assert (await rs.reminder(m.member_id)) is not None
    [due] = await rs.due_reminders(now, ["discord"], 10)
    assert (due.user_id, due.group, due.platform, due.at) == ("u1", "g", "discord", time(19))
    assert await rs.due_reminders(now, ["slack"], 10) == []
    assert await rs.next_reminder_at(["discord"]) == now
    day = date(2026, 11, 23)
    claim = await rs.claim_reminder(m.member_id, day, now, "a", now)
    assert claim is not None and claim[1] == 1
    assert await rs.claim_reminder(m.member_id, day, now, "b", now) is None, "claimed once"
    retry = now + timedelta(seconds=30)
    await rs.finish_reminder(claim[0], "failed", now, error="503", next_try_at=retry)
    assert await rs.claim_reminder(m.member_id, day, now, "b", now) is None, "not before its retry time"
    again = await rs.claim_reminder(m.member_id, day, now, "b", retry)
    assert again == (claim[0], 2)
    await rs.finish_reminder(again[0], "sent", retry, message_id="m1")
    assert await rs.claim_reminder(m.member_id, day, now, "c", retry + timedelta(hours=1)) is None
    await rs.set_next_reminder(m.member_id, now + timedelta(days=1))
    assert await rs.due_reminders(now, ["discord"], 10) == []


async def test_reminder_store_notices_freeze_notes_and_members(store: ManagedStore) -> None:
    rs = reminders_for(store)  # type: ignore[arg-type]
    now = utc(2026, 11, 23, 19, 0)
    m = await store.ensure_member("slack", "T1", "C1", "U1", "Ann", now=now)
    assert (await rs.member_notes(m.member_id)).notice is None
    await rs.set_reminder(m.member_id, m.channel_id, True, time(19), now, now)
    await rs.block_reminders(m.member_id, "DMs closed")
    setting = await rs.reminder(m.member_id)
    assert setting is not None and not setting.enabled and setting.next_at is None
    notes = await rs.member_notes(m.member_id)
    assert notes.notice == "DMs closed" and notes.streak.streak == 0 and notes.freeze_noted is None
    assert (await rs.member_notes(m.member_id)).notice is None, "once"
    day = date(2026, 11, 23)
    assert await rs.note_freeze(m.member_id, m.channel_id, 12, day)
    assert not await rs.note_freeze(m.member_id, m.channel_id, 12, day + timedelta(days=1)), "already told"
    assert await rs.freeze_noted(m.member_id) == (12, day)
    assert (await rs.member_notes(m.member_id)).freeze_noted == (12, day)
    assert await rs.note_freeze(m.member_id, m.channel_id, 20, day + timedelta(days=8))
    # A member without reminders gets a row (reminders off) that remembers the announcement.
    other = await store.ensure_member("slack", "T1", "C1", "U2", "Bo", now=now)
    assert await rs.note_freeze(other.member_id, other.channel_id, 7, day)
    assert not await rs.note_freeze(other.member_id, other.channel_id, 7, day)
    setting = await rs.reminder(other.member_id)
    assert setting is not None and not setting.enabled and setting.next_at is None
    assert (await rs.member_notes(other.member_id + 999)).notice is None
    found = await rs.reminder_member(m.member_id)
    assert found is not None and found[1] == "slack" and found[0].user_id == "U1"
    assert found[0].channel_id == m.channel_id
    assert await rs.reminder_member(m.member_id + 999) is None
    assert await store.forget_member(m.member_id) >= 2
    assert await rs.reminder(m.member_id) is None
