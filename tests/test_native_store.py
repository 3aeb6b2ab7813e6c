"""The `NativeStore` contract (issue 18) on both stores: channel options, post threads, notices for admins,
role rewards and their grants."""

from __future__ import annotations

import asyncio
import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.core import actions
from bot.core.content import ContentLibrary
from bot.core.messages import Inbound, Reply
from bot.core.native import ChannelAccess, ChannelFeatures, ChannelOptions, Reward
from bot.core.ports import AnswerOutcome
from bot.core.service import StudyService
from bot.storage import ManagedStore
from bot.storage.native_store import native_for
from tests.conftest import FakeClock, Outside, inbound
from tests.test_learning import post_of, right_letter, wrong_letter

T = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


async def _member(store: ManagedStore, user: str = "ada", channel: str = "c1", group: str = "g1"):  # type: ignore[no-untyped-def]
    return await store.ensure_member("discord", group, channel, user, user, now=T)


async def test_channel_options_merge_record_who_set_them_and_rearm_the_first_post_check(store: ManagedStore) -> None:
    native = native_for(store)  # type: ignore[arg-type]
    ada = await _member(store)
    assert await native.channel_options(ada.channel_id) == ChannelOptions()
    assert not await native.claim_check(ada.channel_id, T), "no options yet: nothing to check"
    saved = await native.save_channel_options(ada.channel_id, True, "123", ada.member_id, T)
    assert saved == ChannelOptions(True, "123", ada.member_id, None)
    # Options left out keep their value; "" clears the role.
    assert (await native.save_channel_options(ada.channel_id, None, None, ada.member_id, T)).thread is True
    cleared = await native.save_channel_options(ada.channel_id, False, "", ada.member_id, T)
    assert (cleared.thread, cleared.ping_role) == (False, None)
    assert await native.channel_options(ada.channel_id) == cleared
    # The check before the first post runs once; setting the schedule again re-arms it.
    assert await native.claim_check(ada.channel_id, T) is True
    assert await native.claim_check(ada.channel_id, T) is False
    assert (await native.channel_options(ada.channel_id)).checked_at == T
    await native.save_channel_options(ada.channel_id, None, None, ada.member_id, T + timedelta(days=1))
    assert await native.claim_check(ada.channel_id, T + timedelta(days=1)) is True


async def test_notices_go_once_to_their_admin_or_to_any_admin(store: ManagedStore) -> None:
    native = native_for(store)  # type: ignore[arg-type]
    ada = await _member(store)
    bob = await _member(store, "bob")
    other = await _member(store, "eve", group="g2")
    assert await native.add_notice(ada.channel_id, "check", ada.member_id, "for ada", T)
    assert not await native.add_notice(ada.channel_id, "check", ada.member_id, "again", T), "told once per topic"
    assert await native.add_notice(ada.channel_id, "reward-1", None, "for any admin", T + timedelta(seconds=1))
    assert await native.take_member_notices(other.group_id, other.member_id, T) == [], "another group's are not seen"
    assert await native.take_member_notices(ada.group_id, bob.member_id, T) == ["for any admin"]
    assert await native.take_member_notices(ada.group_id, ada.member_id, T) == ["for ada"]
    assert await native.take_member_notices(ada.group_id, ada.member_id, T) == []
    # Setting the schedule again clears the channel's notices, so the same problem is told again later.
    await native.save_channel_options(ada.channel_id, True, None, ada.member_id, T)
    assert await native.add_notice(ada.channel_id, "check", ada.member_id, "for ada, later", T)


async def test_a_post_thread_is_recorded_once(store: ManagedStore) -> None:
    native = native_for(store)  # type: ignore[arg-type]
    ada = await _member(store)
    post = await store.create_post(ada.group_id, ada.channel_id, None, "question", "q1", T)
    assert await native.thread_of(post.id) is None
    await native.set_thread(post.id, "555")
    await native.set_thread(post.id, "666")  # a second opening changes nothing
    assert await native.thread_of(post.id) == "555"


async def test_rewards_are_per_group_replaced_by_threshold_and_granted_once(
    store: ManagedStore, outside: Outside
) -> None:
    native = native_for(store)  # type: ignore[arg-type]
    ada = await _member(store)
    eve = await _member(store, "eve", group="g2")
    await native.set_reward(ada.group_id, "streak", 7, "111", T)
    await native.set_reward(ada.group_id, "points", 50, "222", T)
    await native.set_reward(ada.group_id, "streak", 7, "333", T)  # same threshold: the role is replaced
    await native.set_reward(eve.group_id, "streak", 3, "999", T)
    found = await native.rewards(ada.group_id)
    assert [(r.kind, r.threshold, r.role) for r in found] == [("points", 50, "222"), ("streak", 7, "333")]
    assert all(isinstance(r, Reward) and r.group_id == ada.group_id for r in found)
    streak = found[1]
    assert await native.claim_grant(streak.id, ada.member_id, T) is True
    assert await native.claim_grant(streak.id, ada.member_id, T) is False
    await native.unclaim_grant(streak.id, ada.member_id)  # the grant failed: try again next time
    assert await native.claim_grant(streak.id, ada.member_id, T) is True
    assert await native.clear_rewards(ada.group_id, "points") == 1
    assert await native.clear_rewards(ada.group_id, None) == 1
    assert await native.rewards(ada.group_id) == []
    assert await outside("SELECT COUNT(*) FROM reward_grants") == [(0,)], "grants go with their reward"
    assert [r.role for r in await native.rewards(eve.group_id)] == ["999"]


async def test_forgetting_a_member_removes_their_notices_and_grants(store: ManagedStore, outside: Outside) -> None:
    native = native_for(store)  # type: ignore[arg-type]
    ada = await _member(store)
    await native.save_channel_options(ada.channel_id, True, None, ada.member_id, T)
    await native.add_notice(ada.channel_id, "check", ada.member_id, "for ada", T)
    await native.set_reward(ada.group_id, "streak", 7, "111", T)
    (reward,) = await native.rewards(ada.group_id)
    await native.claim_grant(reward.id, ada.member_id, T)
    await store.forget_member(ada.member_id)
    assert await outside("SELECT COUNT(*) FROM channel_notices") == [(0,)]
    assert await outside("SELECT COUNT(*) FROM reward_grants") == [(0,)]
    assert (await native.channel_options(ada.channel_id)).set_by is None


async def test_a_burst_of_answers_on_a_cold_rewards_cache_asks_the_store_once(store: ManagedStore) -> None:
    native = native_for(store)  # type: ignore[arg-type]
    ada = await _member(store)
    await native.set_reward(ada.group_id, "streak", 7, "111", T)
    asked: list[int] = []

    class Counting:
        def __getattr__(self, name: str) -> Any:
            return getattr(native, name)

        async def rewards(self, group_id: int) -> list[Reward]:
            asked.append(group_id)
            return await native.rewards(group_id)

    features = ChannelFeatures(Counting(), store, {})  # type: ignore[arg-type]
    found = await asyncio.gather(*(features._group_rewards(ada.group_id) for _ in range(50)))
    assert asked == [ada.group_id], "the answers of a burst share one query"
    assert all([r.role for r in f] == ["111"] for f in found)
    # A change drops the cached query: the next answer reads afresh.
    await native.set_reward(ada.group_id, "points", 50, "222", T)
    features._rewards.pop(ada.group_id)
    assert [r.role for r in await features._group_rewards(ada.group_id)] == ["222", "111"]
    assert len(asked) == 2


class Roles:
    """A Discord gateway that may grant every role, and records what it granted."""

    def __init__(self) -> None:
        self.granted: list[tuple[str, str]] = []

    async def check_access(self, channel: str, group: str) -> ChannelAccess:
        return ChannelAccess(())

    async def open_thread(self, channel: str, message_id: str, title: str, group: str) -> str:
        return message_id

    async def role_problem(self, group: str, role: str) -> str | None:
        return None

    async def grant_role(self, group: str, user: str, role: str) -> None:
        self.granted.append((user, role))


async def test_a_burst_on_a_cold_rewards_cache_gets_each_reward_crossed_in_its_batch(
    store: ManagedStore, library: ContentLibrary, clock: FakeClock
) -> None:
    """The group's rewards are looked up beside the burst's group commit (not after it), and each member
    gets exactly the rewards their answer reached."""
    native = native_for(store)  # type: ignore[arg-type]
    events: list[str] = []

    class Counting:
        def __getattr__(self, name: str) -> Any:
            return getattr(native, name)

        async def rewards(self, group_id: int) -> list[Reward]:
            events.append("rewards asked")
            return await native.rewards(group_id)

    service = StudyService(store, library, clock, rng=random.Random(7))
    roles = Roles()
    features = ChannelFeatures(Counting(), store, {"discord": roles}, monotonic=lambda: clock.now().timestamp())  # type: ignore[arg-type, dict-item]
    features.install(service)

    def on_discord(text: str = "", **kw: Any) -> Inbound:
        return replace(inbound(text, **kw), platform="discord")

    async def dealt(user: str) -> Reply:
        return (await service.handle(on_discord("quiz", user=user)))[0]

    users = [f"u{i}" for i in range(6)]
    clock.set(T)
    for u in users:  # day one: a point and a one-day streak each
        q = await dealt(u)
        await service.handle(on_discord(user=u, action=actions.answer_action(post_of(q), right_letter(q.text))))
    member = await store.ensure_member("discord", "g1", "c1", "u0", "u0", now=T)
    await native.set_reward(member.group_id, "streak", 2, "111", T)
    await native.set_reward(member.group_id, "points", 2, "222", T)
    clock.set(T + timedelta(days=1))  # the rewards cached yesterday (none) have expired
    questions = [await dealt(u) for u in users[:5]]
    record = store.record_answer

    async def recorded(*args: Any) -> AnswerOutcome:
        outcome: AnswerOutcome = await record(*args)
        events.append("answer committed")
        return outcome

    store.record_answer = recorded  # type: ignore[method-assign]
    events.clear()
    # Three right answers (2 points, a 2-day streak), two wrong ones (a 2-day streak); u5 does not answer.
    letters = [right_letter(q.text) for q in questions[:3]] + [wrong_letter(q.text) for q in questions[3:]]
    replies = await asyncio.gather(
        *(
            service.handle(on_discord(user=u, action=actions.answer_action(post_of(q), letter)))
            for u, q, letter in zip(users[:5], questions, letters, strict=True)
        )
    )
    assert events[0] == "rewards asked" and events.count("rewards asked") == 1, events
    assert sorted(roles.granted) == sorted([(u, "111") for u in users[:5]] + [(u, "222") for u in users[:3]]), (
        "each member exactly the rewards they reached"
    )
    for i, r in enumerate(replies):
        lines = [line for reply in r for line in reply.text.splitlines() if line.startswith("🏅")]
        assert len(lines) == (2 if i < 3 else 1), (i, lines)
