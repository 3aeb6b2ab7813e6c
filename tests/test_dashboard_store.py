"""The `DashboardStore` contract on both stores (the `store` fixture runs each test on SQLite and PostgreSQL):
sign-in links used once, sessions scoped and ended, and the page queries kept inside their group."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.core.dashboard import DashboardStore, token_hash
from bot.core.ports import AnswerIn, MemberRef, StreakState
from bot.core.schedule import ScheduleRule
from bot.storage import ManagedStore, dashboard_for, schedules_for

T = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


async def _member(store: ManagedStore, group: str, user: str, channel: str = "C1") -> MemberRef:
    return await store.ensure_member(
        "discord", group, channel, user, f"name {user}", group_name=f"guild {group}", now=T
    )


def _dash(store: ManagedStore) -> DashboardStore:
    return dashboard_for(store)  # type: ignore[arg-type]


async def test_a_link_works_once_and_only_before_it_expires(store: ManagedStore) -> None:
    dash = _dash(store)
    m = await _member(store, "G1", "U1")
    await dash.save_dashboard_link(token_hash("a"), m.group_id, m.member_id, T, T + timedelta(minutes=10))
    await dash.save_dashboard_link(token_hash("b"), m.group_id, m.member_id, T, T + timedelta(minutes=10))
    assert await dash.dashboard_link_valid(token_hash("a"), T)
    assert await dash.use_dashboard_link(token_hash("a"), T) == (m.group_id, m.member_id)
    assert await dash.use_dashboard_link(token_hash("a"), T) is None
    assert not await dash.dashboard_link_valid(token_hash("a"), T)
    late = T + timedelta(minutes=10)
    assert not await dash.dashboard_link_valid(token_hash("b"), late)
    assert await dash.use_dashboard_link(token_hash("b"), late) is None
    assert await dash.use_dashboard_link(token_hash("b"), T) is None, "a refused link is gone too"
    assert await dash.use_dashboard_link(token_hash("never"), T) is None


async def test_sessions_carry_their_group_and_admin_and_end(store: ManagedStore) -> None:
    dash = _dash(store)
    a = await _member(store, "G1", "U1")
    b = await _member(store, "G2", "V1")
    until = T + timedelta(hours=12)
    await dash.start_dashboard_session(token_hash("s1"), a.group_id, a.member_id, T, until)
    await dash.start_dashboard_session(token_hash("s2"), a.group_id, a.member_id, T, until)
    await dash.start_dashboard_session(token_hash("s3"), b.group_id, b.member_id, T, until)
    admin = await dash.find_dashboard_session(token_hash("s1"), T)
    assert admin is not None
    assert (admin.group_id, admin.member_id, admin.platform, admin.group, admin.group_name, admin.user) == (
        a.group_id, a.member_id, "discord", "G1", "guild G1", "U1",
    )  # fmt: skip
    assert admin.expires_at == until
    assert await dash.find_dashboard_session(token_hash("s1"), until) is None
    assert await dash.find_dashboard_session(token_hash("nope"), T) is None
    assert await dash.end_dashboard_session(token_hash("s1"))
    assert not await dash.end_dashboard_session(token_hash("s1"))
    await dash.save_dashboard_link(token_hash("link"), a.group_id, a.member_id, T, T + timedelta(minutes=10))
    assert await dash.end_dashboard_sessions(a.group_id) == 1
    assert await dash.find_dashboard_session(token_hash("s2"), T) is None
    assert await dash.use_dashboard_link(token_hash("link"), T) is None
    assert await dash.find_dashboard_session(token_hash("s3"), T) is not None, "the other group's session stays"


async def test_forgetting_the_admin_ends_their_sessions(store: ManagedStore) -> None:
    dash = _dash(store)
    a = await _member(store, "G1", "U1")
    await dash.start_dashboard_session(token_hash("s"), a.group_id, a.member_id, T, T + timedelta(hours=1))
    await store.forget_member(a.member_id)
    assert await dash.find_dashboard_session(token_hash("s"), T) is None


async def test_channels_and_schedules_stay_in_their_group(store: ManagedStore) -> None:
    dash = _dash(store)
    schedules = schedules_for(store)  # type: ignore[arg-type]
    a = await _member(store, "G1", "U1", "C1")
    await _member(store, "G1", "U1", "C2")
    b = await _member(store, "G2", "V1", "D1")
    from datetime import time

    await schedules.save_schedule(a.channel_id, ScheduleRule(time(9, 0), "Europe/Berlin", (0, 1, 2, 3, 4)), T)
    await schedules.save_schedule(b.channel_id, ScheduleRule(time(7, 0), "UTC", (0,)), T)
    channels = await dash.group_channels(a.group_id)
    assert [c.channel for c in channels] == ["C1", "C2"]  # scheduled first
    assert channels[0].schedule is not None and channels[0].schedule.rule.tz == "Europe/Berlin"
    assert channels[1].schedule is None
    assert await dash.group_channel(a.group_id, b.channel_id) is None
    found = await dash.group_channel(b.group_id, b.channel_id)
    assert found is not None and found.schedule is not None and found.schedule.rule.days == (0,)


async def test_channels_carry_their_deck_thread_and_ping(store: ManagedStore) -> None:
    from bot.storage import decks_for
    from bot.storage.native_store import native_for

    dash = _dash(store)
    a = await _member(store, "G1", "U1", "C1")
    c2 = await _member(store, "G1", "U1", "C2")
    await decks_for(store).set_channel_deck(a.channel_id, "sql")  # type: ignore[arg-type]
    await native_for(store).save_channel_options(a.channel_id, True, "555", a.member_id, T)  # type: ignore[arg-type]
    by_name = {c.channel: c for c in await dash.group_channels(a.group_id)}
    assert (by_name["C1"].deck, by_name["C1"].thread, by_name["C1"].ping_role) == ("sql", True, "555")
    assert (by_name["C2"].deck, by_name["C2"].thread, by_name["C2"].ping_role) == ("tpm", False, None)
    await native_for(store).save_channel_options(a.channel_id, False, "", a.member_id, T)  # type: ignore[arg-type]
    one = await dash.group_channel(a.group_id, a.channel_id)
    assert one is not None and (one.deck, one.thread, one.ping_role) == ("sql", False, None)
    assert (await dash.group_channel(c2.group_id, c2.channel_id)) is not None


async def _answer(store: ManagedStore, m: MemberRef, qid: str, choice: str, correct: bool, at: datetime) -> None:
    post = await store.create_post(m.group_id, m.channel_id, m.member_id, "question", qid, at - timedelta(seconds=20))
    week = (at - timedelta(days=at.weekday())).date()
    answer = AnswerIn(m.member_id, post.id, m.group_id, qid, choice, correct, at, week)
    await store.record_answer(answer, lambda s: StreakState(s.streak + 1, max(s.best, s.streak + 1), at.date(), 0))


async def test_page_queries_count_only_their_group(store: ManagedStore) -> None:
    dash = _dash(store)
    members = [await _member(store, "G1", f"U{n}") for n in range(6)]
    other = await _member(store, "G2", "V1")
    for n, m in enumerate(members):
        await _answer(store, m, "q1", "A" if n < 3 else "B", n < 3, T)
        await _answer(store, m, "q2", "C", True, T + timedelta(days=1))
    await _answer(store, other, "q1", "D", False, T)
    g = members[0].group_id
    count, active, hours = await dash.activity(g, T - timedelta(days=30), T + timedelta(hours=12))
    assert (count, active) == (6, 6)
    assert [(h, n, c) for h, n, c in hours] == [(T, 6, 3), (T + timedelta(days=1), 6, 6)]
    stats = {s.question_id: s for s in await dash.question_stats(g)}
    assert set(stats) == {"q1", "q2"}
    q1 = stats["q1"]
    assert (q1.answers, q1.correct, q1.picks) == (6, 3, {"A": 3, "B": 3, "C": 0, "D": 0})
    assert q1.avg_seconds is not None and abs(q1.avg_seconds - 20) < 0.01
    # By points the first three are the top third's two and... NTILE(3) of six: two members per third.
    assert q1.top == (2, 2) and q1.bottom == (2, 0)
    assert await dash.streaks(g, "2026-11-20") == {2: 6}
    assert await dash.streaks(g, "2026-11-30") == {0: 6}
    page = await dash.member_lines(g, "points", True, 4, 0)
    assert [m.user for m in page] == ["U0", "U1", "U2", "U3"]  # the leaderboard's order: 2 points, then 1
    rest = await dash.member_lines(g, "points", True, 4, 4)
    assert [m.user for m in rest] == ["U4", "U5"]
    by_name = await dash.member_lines(g, "name", False, 10, 0)
    assert [m.user for m in by_name] == [f"U{n}" for n in range(6)]
    assert all(m.user != "V1" for m in by_name)
