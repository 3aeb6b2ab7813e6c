"""Issue 18 on Slack through the real slack-bolt against the loopback fake: the permission self-check
(scopes from ``auth.test``'s ``x-oauth-scopes``, membership from ``conversations.info``) and discussion
threads (replies in the post's thread via ``thread_ts``, the reveal there too)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.core.messages import Post
from bot.core.native import ChannelFeatures
from bot.scheduling import Scheduler
from bot.storage.native_store import native_for
from tests.conftest import FakeClock
from tests.fake_slack import FakeSlack
from tests.test_slack import (
    ADMIN,
    CHANNEL,
    MEMBER,
    RIGHT,
    Rig,
    add_users,
    buttons_of,
    question_id,
    running_rig,
    slack_settings,
)

pytestmark = pytest.mark.sqlite_only


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    f = FakeSlack()
    await f.start()
    add_users(f)
    yield f
    await f.stop()


@pytest.fixture
async def rig(fake: FakeSlack, tmp_path: Path) -> AsyncIterator[Rig]:
    async with running_rig(fake, slack_settings(fake, tmp_path), clock=FakeClock()) as r:
        yield r


def scheduler_of(rig: Rig) -> Scheduler:
    app = rig.app
    features = ChannelFeatures(native_for(app.store), app.store, app.gateways)  # type: ignore[arg-type]
    return Scheduler(app.schedules, app.service, app.gateways, app.clock, app.settings, features=features)


async def test_the_check_reads_the_granted_scopes_and_the_channel_membership(rig: Rig) -> None:
    fine = await rig.ask("check", user=ADMIN)
    assert fine["response_type"] == "ephemeral"
    assert "❌" not in fine["text"] and "Everything studybot needs here is in place." in fine["text"]
    assert "➖ Manage roles" in fine["text"]  # Slack has no roles
    rig.fake.scopes.remove("files:write")
    rig.fake.not_member.add(CHANNEL)
    lines = (await rig.ask("check", user=ADMIN))["text"].splitlines()
    view = next(line for line in lines if "View the channel" in line)
    send = next(line for line in lines if "Send messages" in line)
    attach = next(line for line in lines if "Attach files" in line)
    assert view.startswith("❌") and "/invite @studybot" in view
    assert send.startswith("❌") and "/invite @studybot" in send
    assert attach.startswith("❌") and "files:write" in attach
    assert next(line for line in lines if "DM members" in line).startswith("✅")
    assert (await rig.ask("check"))["text"].startswith("Only admins can use /study check")


async def test_each_post_opens_its_thread_and_the_reveal_goes_there(rig: Rig) -> None:
    clock = rig.app.clock
    assert isinstance(clock, FakeClock)
    done = await rig.ask("schedule set 12:30 tz UTC kind question reveal 2 thread on", user=ADMIN)
    assert "🧵 Each post opens a discussion thread" in done["text"], done["text"]
    scheduler = scheduler_of(rig)
    clock.advance(minutes=31)
    assert len((await scheduler.run_due(clock.now())).sent) == 1
    ((channel, ts),) = [key for key, m in rig.fake.messages.items() if m.get("thread_ts") is None]
    post = rig.fake.messages[(channel, ts)]
    right = RIGHT[question_id(post["text"])]
    action = next(b["action_id"] for b in buttons_of(post) if b["text"]["text"] == right)
    await rig.click(action, user=MEMBER)
    await rig.adapter.drain()
    clock.advance(hours=2)
    report = await scheduler.run_due(clock.now())
    assert len(report.revealed) == 1
    (reveal,) = rig.fake.thread(channel, ts)
    assert "Answer reveal" in reveal["text"] and "1 of 1 answered correctly" in reveal["text"]
    posted = rig.fake.calls("chat.postMessage")
    assert [c.args.get("thread_ts") for c in posted] == [None, ts]
    # The reveal is found in the thread (conversations.replies) when Slack's answer to it is lost.
    key = reveal["metadata"]["event_payload"]["key"]
    found = await rig.adapter.find(Post(channel, "x", key=key, thread=ts), clock.now().replace(year=2000))
    assert found is not None and found != ts
