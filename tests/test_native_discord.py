"""Issue 18 on Discord through the real discord.py against the loopback fake: the permission self-check,
discussion threads (and the reveal inside them), the role ping, and role rewards."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import discord
import pytest

from bot.bootstrap import App, build_app
from bot.config import Settings
from bot.core.delivery import CLAIM_LEASE
from bot.core.native import ChannelFeatures
from bot.scheduling import Scheduler
from bot.storage.native_store import native_for
from tests.conftest import FIXTURE_PACK, FakeClock
from tests.fake_discord import EPHEMERAL, FakeDiscord
from tests.test_discord import ADMIN, ALICE, BOB, Bot, command, custom_ids, reply_of, right_letter, rows, start_bot

pytestmark = pytest.mark.sqlite_only

THREADS = int(discord.Permissions(create_public_threads=True).value)
ATTACH = int(discord.Permissions(attach_files=True).value)
MANAGE_ROLES = int(discord.Permissions(manage_roles=True).value)
REGULARS_ID = 860000000000000001
MODS_ID = 860000000000000002
LEARNERS_ID = 860000000000000003


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as f:
        yield f


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[App]:
    settings = Settings(STUDYBOT_DB=tmp_path / "study.db", STUDYBOT_CONTENT=FIXTURE_PACK)  # type: ignore[call-arg]
    a = await build_app(settings, clock=FakeClock())
    yield a
    await a.close()


async def go_live(app: App, fake: FakeDiscord) -> Bot:
    b = await start_bot(app.service, fake)
    app.gateways["discord"] = b.fe
    return b


def scheduler_of(app: App) -> Scheduler:
    """A scheduler wired like `bootstrap.wire_scheduling` (threads, pings, the first-post check)."""
    features = ChannelFeatures(native_for(app.store), app.store, app.gateways)  # type: ignore[arg-type]
    return Scheduler(app.schedules, app.service, app.gateways, app.clock, app.settings, features=features)


async def texts_of(fake: FakeDiscord, iid: int, cb: Any) -> list[str]:
    """Every message a command's reply came in (its notices follow as follow-ups)."""
    out = [cb.json["data"]["content"]] if cb.json["type"] == 4 else []
    try:
        await fake.followups(iid, count=1, within=1.0)
    except TimeoutError:
        return out
    await asyncio.sleep(0.3)  # the rest of them
    return out + [r.json["content"] for r in await fake.followups(iid, count=1)]


# ---------------------------------------------------------------------------------------------- self-check


async def test_the_check_reports_each_missing_permission_with_its_fix(app: App, fake: FakeDiscord) -> None:
    general, quiz = list(fake.guild.channels)
    fake.overwrite(quiz, fake.guild.bot_role.id, deny=THREADS | ATTACH)  # the channel takes two away
    bot = await go_live(app, fake)
    try:
        reply = await reply_of(fake, "check", user=ADMIN, channel_id=quiz)
        assert reply["flags"] & EPHEMERAL
        lines = reply["content"].splitlines()
        assert "✅ View the channel" in lines and "✅ Send messages (daily posts)" in lines
        attach = next(line for line in lines if "Attach files" in line)
        threads = next(line for line in lines if "discussion threads" in line)
        assert attach.startswith("❌") and "fix: allow Attach Files" in attach
        assert threads.startswith("❌") and "Create Public Threads" in threads
        assert next(line for line in lines if "DM members" in line).startswith("➖")
        assert any(line.startswith("✅ Manage roles") for line in lines)
        # The other channel has everything.
        fine = await reply_of(fake, "check", user=ADMIN, channel_id=general)
        assert "❌" not in fine["content"] and "Everything studybot needs here is in place." in fine["content"]
        # Members cannot run it (Discord hides /study-admin from them; the core refuses anyway).
        refused = await reply_of(fake, "check", user=ALICE, channel_id=quiz)
        assert refused["content"].startswith("Only admins can use /study-admin check")
    finally:
        await bot.stop()


async def test_the_first_post_in_a_channel_is_checked_and_the_admin_who_set_it_is_told_once(
    app: App, fake: FakeDiscord
) -> None:
    _, quiz = list(fake.guild.channels)
    fake.overwrite(quiz, fake.guild.bot_role.id, deny=ATTACH)
    bot = await go_live(app, fake)
    clock = app.clock
    assert isinstance(clock, FakeClock)
    try:
        done = await reply_of(
            fake, "schedule set", {"time": "12:30", "tz": "UTC", "kind": "question"}, user=ADMIN, channel_id=quiz
        )
        assert "⚠️ Before the first post, studybot is missing here" in done["content"]
        assert "Attach files" in done["content"]
        scheduler = scheduler_of(app)
        clock.advance(minutes=31)
        assert len((await scheduler.run_due(clock.now())).sent) == 1
        clock.advance(days=1)
        assert len((await scheduler.run_due(clock.now())).sent) == 1  # a second post: no second check
        iid, cb = await command(fake, "schedule show", user=ADMIN, channel_id=quiz)
        told = [t for t in await texts_of(fake, iid, cb) if t.startswith("🔎")]
        assert len(told) == 1 and "Before the first daily post in" in told[0] and "Attach files" in told[0]
        iid, cb = await command(fake, "schedule show", user=ADMIN, channel_id=quiz)
        assert not [t for t in await texts_of(fake, iid, cb) if t.startswith("🔎")], "told once"
    finally:
        await bot.stop()


# ---------------------------------------------------------------------------------------------- threads


async def test_each_post_opens_a_thread_where_the_reveal_goes_and_a_retry_opens_no_second_one(
    app: App, fake: FakeDiscord, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, quiz = list(fake.guild.channels)
    bot = await go_live(app, fake)
    clock = app.clock
    assert isinstance(clock, FakeClock)
    try:
        done = await reply_of(
            fake,
            "schedule set",
            {"time": "12:30", "tz": "UTC", "kind": "question", "reveal": 2, "thread": "on"},
            user=ADMIN,
            channel_id=quiz,
        )
        assert "🧵 Each post opens a discussion thread" in done["content"], done["content"]
        scheduler = scheduler_of(app)
        # The process dies after the post and its thread, before recording them: the next run (after the
        # claim's lease) finds the post, and opening its thread again opens nothing new.
        real_mark_sent = app.schedules.mark_sent
        crashed: list[int] = []

        async def crash_once(*args: Any) -> None:
            if not crashed:
                crashed.append(1)
                raise RuntimeError("killed before recording")
            await real_mark_sent(*args)

        monkeypatch.setattr(app.schedules, "mark_sent", crash_once)
        clock.advance(minutes=31)
        with pytest.raises(RuntimeError):
            await scheduler.run_due(clock.now())
        clock.advance(seconds=CLAIM_LEASE.total_seconds() + 1)
        assert len((await scheduler.run_due(clock.now())).sent) == 1
        (message,) = fake.channel_messages(quiz)
        opened = fake.find("POST", rf"/channels/{quiz}/messages/\d+/threads")
        assert [r.status for r in opened] == [200, 400], "the second opening was Discord's 'already has a thread'"
        assert list(fake.threads) == [int(message["id"])]
        assert fake.threads[int(message["id"])]["name"].startswith("Question of the day")
        post_id = int(custom_ids(message)[0].split(":")[2])
        assert rows(app.store.path, "SELECT thread_id FROM post_threads WHERE post_id = ?", post_id) == [
            (message["id"],)
        ]
        # A member answers; two hours later the answer is revealed in the thread, not in the channel.
        right = right_letter(message["content"])
        await fake.callback(
            await fake.dispatch_interaction(fake.click(custom_ids(message)["ABCD".index(right)], message, user=BOB))
        )
        clock.advance(hours=2)
        assert (await scheduler.run_due(clock.now())).revealed == [post_id]
        assert len(fake.channel_messages(quiz)) == 1, "nothing new in the channel itself"
        (reveal,) = fake.channel_messages(int(message["id"]))
        assert reveal["content"].startswith("🔎 **Answer reveal**") and "1 of 1 answered correctly" in reveal["content"]
    finally:
        await bot.stop()


async def test_without_thread_permission_the_post_goes_out_plain_and_the_admin_is_told_once(
    app: App, fake: FakeDiscord
) -> None:
    _, quiz = list(fake.guild.channels)
    fake.overwrite(quiz, fake.guild.bot_role.id, deny=THREADS)
    bot = await go_live(app, fake)
    clock = app.clock
    assert isinstance(clock, FakeClock)
    try:
        await reply_of(
            fake, "schedule set", {"time": "12:30", "tz": "UTC", "thread": "on"}, user=ADMIN, channel_id=quiz
        )
        scheduler = scheduler_of(app)
        clock.advance(minutes=31)
        for _ in range(2):
            assert len((await scheduler.run_due(clock.now())).sent) == 1
            clock.advance(days=1)
        posts = [m["content"] for m in fake.channel_messages(quiz)]
        assert [p.split("**")[1] for p in posts] == ["Question of the day", "Answer reveal", "Question of the day"]
        assert fake.find("POST", r"/channels/\d+/messages/\d+/threads") == [], "not even tried"
        iid, cb = await command(fake, "help", user=ADMIN, channel_id=quiz)
        told = [t for t in await texts_of(fake, iid, cb) if t.startswith("🧵")]
        assert len(told) == 1 and "without a discussion thread" in told[0] and "Create Public Threads" in told[0]
    finally:
        await bot.stop()


# ---------------------------------------------------------------------------------------------- ping


async def test_a_daily_post_mentions_the_chosen_role_and_nothing_else(app: App, fake: FakeDiscord) -> None:
    _, quiz = list(fake.guild.channels)
    learners = fake.add_role(fake.guild.id, LEARNERS_ID, "Learners", 0)
    bot = await go_live(app, fake)
    clock = app.clock
    assert isinstance(clock, FakeClock)
    try:
        done = await reply_of(
            fake, "schedule set", {"time": "12:30", "tz": "UTC", "ping": learners}, user=ADMIN, channel_id=quiz
        )
        assert f"<@&{LEARNERS_ID}>" in done["content"]
        scheduler = scheduler_of(app)
        clock.advance(minutes=31)
        await scheduler.run_due(clock.now())
        (posted,) = fake.find("POST", rf"/channels/{quiz}/messages")
        assert posted.json["content"].startswith(f"<@&{LEARNERS_ID}> **Question of the day**")
        mentions = posted.json["allowed_mentions"]
        assert mentions["roles"] == [str(LEARNERS_ID)] or mentions["roles"] == [LEARNERS_ID]
        assert mentions["parse"] == [] and not mentions.get("users")
        # ping off: back to no mention at all
        await reply_of(fake, "schedule set", {"time": "12:30", "ping_off": True}, user=ADMIN, channel_id=quiz)
        clock.advance(days=1)
        await scheduler.run_due(clock.now())
        last = fake.find("POST", rf"/channels/{quiz}/messages")[-1]
        assert "<@&" not in last.json["content"] and last.json["allowed_mentions"]["parse"] == []
        assert not last.json["allowed_mentions"].get("roles")
    finally:
        await bot.stop()


# ---------------------------------------------------------------------------------------------- rewards


async def answer_today(fake: FakeDiscord, user: Any) -> str:
    """Quiz and answer once (right); returns the answer's reply text (with any reward lines)."""
    question = await reply_of(fake, "quiz", user=user)
    right = right_letter(question["content"])
    iid = await fake.dispatch_interaction(fake.click(custom_ids(question)["ABCD".index(right)], question, user=user))
    cb = await fake.callback(iid)
    return "\n".join(await texts_of(fake, iid, cb))


async def test_a_role_is_granted_at_a_7_day_streak_once_and_kept_after_clear(app: App, fake: FakeDiscord) -> None:
    regulars = fake.add_role(fake.guild.id, REGULARS_ID, "Regulars", 0)
    bot = await go_live(app, fake)
    clock = app.clock
    assert isinstance(clock, FakeClock)
    try:
        ok = await reply_of(fake, "rewards set", {"kind": "streak", "threshold": 7, "role": regulars}, user=ADMIN)
        assert ok["content"].startswith("🏅 Members who reach a 7-day streak get"), ok["content"]
        shown = await reply_of(fake, "rewards show", user=ADMIN)
        assert f"<@&{REGULARS_ID}> at a 7-day streak" in shown["content"]
        for day in range(1, 8):
            text = await answer_today(fake, ALICE)
            if day < 7:
                assert "🏅" not in text, (day, text)
                assert fake.guild.member_roles.get(ALICE.id) is None
            clock.advance(days=1)
        assert "🏅 You reached a 7-day streak and got the" in text
        assert fake.guild.member_roles[ALICE.id] == {REGULARS_ID}
        granted = fake.find("PUT", rf"/guilds/{fake.guild.id}/members/{ALICE.id}/roles/{REGULARS_ID}")
        assert [r.status for r in granted] == [204]
        await answer_today(fake, ALICE)  # day 8: already given, not asked again
        assert len(fake.find("PUT", r"/guilds/.*")) == 1
        cleared = await reply_of(fake, "rewards clear", user=ADMIN)
        assert "Members keep the roles they were given" in cleared["content"]
        assert fake.guild.member_roles[ALICE.id] == {REGULARS_ID}
        assert fake.find("DELETE", r"/guilds/.*") == [], "never removed"
    finally:
        await bot.stop()


async def test_rewards_are_refused_up_front_without_manage_roles_or_below_the_role(app: App, fake: FakeDiscord) -> None:
    regulars = fake.add_role(fake.guild.id, REGULARS_ID, "Regulars", 0)
    mods = fake.add_role(fake.guild.id, MODS_ID, "Mods", 5)  # above studybot's own role
    fake.guild.bot_role.permissions &= ~MANAGE_ROLES
    bot = await go_live(app, fake)
    try:
        no = await reply_of(fake, "rewards set", {"kind": "streak", "threshold": 7, "role": regulars}, user=ADMIN)
        assert no["content"].startswith(f"I cannot give <@&{REGULARS_ID}>: studybot lacks Manage Roles"), no["content"]
        assert "Nothing was saved" in no["content"]
        high = await reply_of(fake, "rewards set", {"kind": "points", "threshold": 50, "role": mods}, user=ADMIN)
        assert "Nothing was saved" in high["content"]
        assert rows(app.store.path, "SELECT COUNT(*) FROM rewards") == [(0,)]
        assert fake.find("PUT", r"/guilds/.*") == []
        check = await reply_of(fake, "check", user=ADMIN)
        roles_line = next(line for line in check["content"].splitlines() if "Manage roles" in line)
        assert roles_line.startswith("❌") and "Manage Roles" in roles_line
    finally:
        await bot.stop()


async def test_a_role_above_the_bot_is_named_in_the_refusal(app: App, fake: FakeDiscord) -> None:
    mods = fake.add_role(fake.guild.id, MODS_ID, "Mods", 5)
    bot = await go_live(app, fake)
    try:
        high = await reply_of(fake, "rewards set", {"kind": "points", "threshold": 50, "role": mods}, user=ADMIN)
        assert re.search(r"studybot's highest role \(studybot\) is not above Mods", high["content"]), high["content"]
        assert rows(app.store.path, "SELECT COUNT(*) FROM rewards") == [(0,)]
    finally:
        await bot.stop()


async def test_a_grant_discord_refuses_is_told_to_admins_and_tried_again_at_the_next_answer(
    app: App, fake: FakeDiscord
) -> None:
    regulars = fake.add_role(fake.guild.id, REGULARS_ID, "Regulars", 0)
    bot = await go_live(app, fake)
    try:
        ok = await reply_of(fake, "rewards set", {"kind": "points", "threshold": 2, "role": regulars}, user=ADMIN)
        assert ok["content"].startswith("🏅 Members who reach 2 points get"), ok["content"]
        # Someone drags the role above studybot's after the reward was set.
        fake.guild.roles[REGULARS_ID].position = 5
        await answer_today(fake, ALICE)
        refused = await answer_today(fake, ALICE)  # 2 points: due, but Discord says no
        assert "🏅" not in refused and fake.guild.member_roles.get(ALICE.id) is None
        assert [r.status for r in fake.find("PUT", r"/guilds/.*")] == [403]
        iid, cb = await command(fake, "rewards show", user=ADMIN)
        told = [t for t in await texts_of(fake, iid, cb) if "could not give" in t]
        assert len(told) == 1 and "above it" in told[0], told
        fake.guild.roles[REGULARS_ID].position = 0  # fixed
        given = await answer_today(fake, ALICE)
        assert "🏅 You reached 2 points and got the" in given
        assert fake.guild.member_roles[ALICE.id] == {REGULARS_ID}
    finally:
        await bot.stop()
