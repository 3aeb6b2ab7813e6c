"""The `DashboardStore` contract on both stores (the `store` fixture runs each test on SQLite and PostgreSQL):
sign-in links used once, sessions scoped and ended, and the page queries kept inside their group."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from bot.core.dashboard import Admin, Dashboard, DashboardStore, QuestionStat, token_hash
from bot.core.ports import AnswerIn, MemberRef, StoreError, StreakState
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
    census, active, hours = await dash.activity(g, T - timedelta(days=30), T + timedelta(hours=12))
    assert (census.total, active) == (6, 6)
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


# ---------------------------------------------------------------------- analytics kept incrementally


class _Clock:
    def __init__(self, now: datetime) -> None:
        self.at = now

    def now(self) -> datetime:
        return self.at


class _Monotonic:
    def __init__(self) -> None:
        self.at = 0.0

    def __call__(self) -> float:
        return self.at


def _dashboard(store: ManagedStore, clock: _Clock, monotonic: _Monotonic | None = None) -> Dashboard:
    """The core's `Dashboard` on the real store; only its clock is taken from the service."""
    service = SimpleNamespace(clock=clock)
    return Dashboard(_dash(store), service, None, monotonic=monotonic or _Monotonic())  # type: ignore[arg-type]


def _same(kept: list[QuestionStat], full: list[QuestionStat]) -> None:
    """The incremental figures are the full query's (seconds are sums of floats: compared to 1e-6)."""
    a = {s.question_id: s for s in kept}
    b = {s.question_id: s for s in full}
    assert set(a) == set(b)
    for qid, s in b.items():
        k = a[qid]
        assert (k.answers, k.correct, k.picks, k.top, k.bottom) == (s.answers, s.correct, s.picks, s.top, s.bottom), qid
        assert (k.avg_seconds is None) == (s.avg_seconds is None)
        assert k.avg_seconds is None or s.avg_seconds is None or abs(k.avg_seconds - s.avg_seconds) < 1e-6


async def test_analytics_count_the_answers_given_after_the_last_refresh(store: ManagedStore) -> None:
    clock = _Clock(T + timedelta(days=1))
    dashboard = _dashboard(store, clock)
    ms = [await _member(store, "G1", f"U{n}") for n in range(4)]
    g = ms[0].group_id
    await _answer(store, ms[0], "q1", "A", True, T)
    await _answer(store, ms[1], "q1", "B", False, T)
    first = {s.question_id: s for s in await dashboard.question_stats(g)}
    assert (first["q1"].answers, first["q1"].correct, first["q1"].picks["B"]) == (2, 1, 1)
    # After the refresh: two more picks of the wrong option B, a right one, and a new question.
    await _answer(store, ms[2], "q1", "B", False, T + timedelta(hours=1))
    await _answer(store, ms[3], "q1", "B", False, T + timedelta(hours=1))
    await _answer(store, ms[1], "q1", "A", True, T + timedelta(hours=2))
    await _answer(store, ms[0], "q2", "C", True, T + timedelta(hours=2))
    stats = {s.question_id: s for s in await dashboard.question_stats(g)}
    q1 = stats["q1"]
    assert (q1.answers, q1.correct) == (5, 2)
    assert q1.picks == {"A": 2, "B": 3, "C": 0, "D": 0}
    assert q1.avg_seconds is not None and abs(q1.avg_seconds - 20) < 0.01  # posted 20 s before each answer
    assert (stats["q2"].answers, stats["q2"].correct) == (1, 1)
    _same(list(stats.values()), await _dash(store).question_stats(g))
    # Nothing new: the same figures again.
    _same(await dashboard.question_stats(g), await _dash(store).question_stats(g))


async def test_discrimination_follows_members_who_become_strong(store: ManagedStore) -> None:
    clock = _Clock(T + timedelta(days=2))
    dashboard = _dashboard(store, clock)
    ms = [await _member(store, "G1", f"U{n}") for n in range(6)]
    g = ms[0].group_id
    # U0, U1 are strong (three points each), U4, U5 weak: on q9 the strong are right, the weak wrong.
    for m in ms[:2]:
        for q in ("w1", "w2", "w3"):
            await _answer(store, m, q, "A", True, T)
    for m in ms[2:4]:
        await _answer(store, m, "w1", "A", True, T)
    for m in ms[:2]:
        await _answer(store, m, "q9", "A", True, T + timedelta(hours=1))
    for m in ms[4:]:
        await _answer(store, m, "q9", "D", False, T + timedelta(hours=1))
    q9 = {s.question_id: s for s in await dashboard.question_stats(g)}["q9"]
    assert (q9.top, q9.bottom) == ((2, 2), (2, 0))
    # U4 and U5 now score five points each: they are the top third, U0/U1 the middle, U2/U3 the bottom.
    for m in ms[4:]:
        for q in ("w1", "w2", "w3", "w4", "w5"):
            await _answer(store, m, q, "A", True, T + timedelta(hours=2))
    stats = await dashboard.question_stats(g)
    q9 = {s.question_id: s for s in stats}["q9"]
    assert q9.top == (2, 0), "the members now strongest were wrong on q9"
    assert q9.bottom == (0, 0)
    _same(stats, await _dash(store).question_stats(g))


async def test_forgetting_a_member_takes_their_answers_out_of_the_analytics(store: ManagedStore) -> None:
    clock = _Clock(T + timedelta(days=1))
    dashboard = _dashboard(store, clock)
    ms = [await _member(store, "G1", f"U{n}") for n in range(3)]
    g = ms[0].group_id
    for n, m in enumerate(ms):
        await _answer(store, m, "q1", "AB"[n % 2], n % 2 == 0, T)
    assert {s.question_id: s.answers for s in await dashboard.question_stats(g)} == {"q1": 3}
    await store.forget_member(ms[1].member_id)
    stats = await dashboard.question_stats(g)
    assert [(s.answers, s.correct, s.picks["B"]) for s in stats] == [(2, 2, 0)]
    _same(stats, await _dash(store).question_stats(g))


async def test_analytics_kept_between_refreshes_equal_the_full_query(store: ManagedStore) -> None:
    """Rounds of answers by random members (some overtaking others), a refresh after each: always the
    full query's figures, discrimination included. The clock runs just behind the answers, so some are
    still unsettled at a refresh (PostgreSQL counts those by id until they settle)."""
    clock = _Clock(T + timedelta(hours=1))
    dashboard = _dashboard(store, clock)
    rng = random.Random(7)
    ms = [await _member(store, "G1", f"U{n}") for n in range(14)]
    other = await _member(store, "G2", "V1")
    g = ms[0].group_id
    questions = [f"q{n}" for n in range(8)]
    for round_ in range(6):
        for _ in range(12):
            m = rng.choice(ms[: 4 + 2 * round_])  # members join as rounds go on
            correct = rng.random() < 0.6
            choice = "A" if correct else rng.choice("BCD")
            at = T + timedelta(minutes=55 + 2 * round_)
            await _answer(store, m, rng.choice(questions), choice, correct, at)
        await _answer(store, other, "q1", "A", True, T)
        _same(await dashboard.question_stats(g), await _dash(store).question_stats(g))
        clock.at += timedelta(minutes=3)


async def test_overview_counts_answers_after_its_hours_were_kept(store: ManagedStore) -> None:
    clock = _Clock(T + timedelta(hours=3))
    monotonic = _Monotonic()
    dashboard = _dashboard(store, clock, monotonic)
    ms = [await _member(store, "G1", f"U{n}") for n in range(3)]
    admin = Admin(ms[0].group_id, ms[0].member_id, "discord", "G1", "guild G1", "UTC", "U0", "name U0", T)
    await _answer(store, ms[0], "q1", "A", True, T - timedelta(days=1))
    await _answer(store, ms[1], "q1", "B", False, T - timedelta(days=1))
    before = await dashboard.overview(admin)
    assert [(d.answers, d.correct) for d in before.days[-2:]] == [(2, 1), (0, 0)]
    await _answer(store, ms[2], "q2", "A", True, clock.now())
    await _answer(store, ms[1], "q2", "A", True, clock.now())
    monotonic.at += 61  # the counts are reused for a minute
    after = await dashboard.overview(admin)
    assert [(d.answers, d.correct) for d in after.days[-2:]] == [(2, 1), (2, 2)]
    assert (after.members, after.active_week) == (3, 2)  # T is a Monday: the first two answered last week
    await store.forget_member(ms[1].member_id)
    monotonic.at += 61
    gone = await dashboard.overview(admin)
    assert [(d.answers, d.correct) for d in gone.days[-2:]] == [(1, 1), (1, 1)]
    assert (gone.members, gone.active_week) == (2, 1)


async def test_analytics_computed_ahead_are_kept_for_the_pages(store: ManagedStore) -> None:
    clock = _Clock(T + timedelta(days=1))
    dashboard = _dashboard(store, clock)
    ms = [await _member(store, "G1", f"U{n}") for n in range(3)]
    g = ms[0].group_id
    await _answer(store, ms[0], "q1", "A", True, T)
    ahead = dashboard.compute_ahead(g)
    assert ahead is not None and dashboard.compute_ahead(g) is ahead, "one computation per group at a time"
    await ahead
    assert dashboard.compute_ahead(g) is None, "kept: nothing left to compute ahead"
    await _answer(store, ms[1], "q1", "C", False, T + timedelta(hours=1))
    stats = await dashboard.question_stats(g)
    assert [(s.answers, s.correct, s.picks["C"]) for s in stats] == [(2, 1, 1)]
    _same(stats, await _dash(store).question_stats(g))


async def test_a_refresh_that_fails_halfway_leaves_no_half_counted_tallies(store: ManagedStore) -> None:
    """A refresh interrupted between re-ranking the members and moving their answers (a store error, or the
    browser gone and the request cancelled) must not leave them ranked anew with their answers unmoved."""
    clock = _Clock(T + timedelta(days=1))
    dashboard = _dashboard(store, clock)
    ms = [await _member(store, "G1", f"U{n}") for n in range(3)]
    g = ms[0].group_id
    await _answer(store, ms[0], "w1", "A", True, T)
    await _answer(store, ms[2], "q9", "D", False, T)
    await dashboard.question_stats(g)
    for q in ("w1", "w2", "w3"):  # U2 overtakes U0: their earlier q9 answer must move to the top third
        await _answer(store, ms[2], q, "A", True, T + timedelta(hours=1))
    real = dashboard.store.member_answers

    async def broken(group_id: int, member_ids: list[int]) -> list[tuple[int, int, str, bool]]:
        raise StoreError("the database went away")

    dashboard.store.member_answers = broken  # type: ignore[method-assign]
    with pytest.raises(StoreError):
        await dashboard.question_stats(g)
    dashboard.store.member_answers = real  # type: ignore[method-assign]
    stats = await dashboard.question_stats(g)
    assert {s.question_id: s.top for s in stats}["q9"] == (1, 0)
    _same(stats, await _dash(store).question_stats(g))
