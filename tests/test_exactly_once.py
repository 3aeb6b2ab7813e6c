"""Exactly-once channel posts through the real discord.py and slack-bolt, against the loopback fakes
(issue 12, item 3). The fakes behave as the platforms do: Discord drops a repeated message nonce for a
few minutes, Slack keeps a message's metadata; both list a channel's recent messages.

The faults: a server error on a message that was in fact created, and a process that died between the
platform taking a post and the message id being written. The crash tests with a real process (SIGKILL,
SIGTERM) are in test_delivery_faults.py.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.adapters.discord_adapter import DiscordFrontEnd
from bot.adapters.slack_adapter import SlackAdapter
from bot.bootstrap import App, build_app
from bot.config import Settings
from bot.core.delivery import CLAIM_LEASE, DailyPoster
from bot.core.messages import Button, Inbound, Post, SentMessage
from bot.core.ports import ChatGateway
from bot.core.schedule import ScheduleRule
from bot.storage.schedule_store import SqliteScheduleStore
from bot.storage.sqlite_store import ts
from tests.conftest import FIXTURE_PACK, FakeClock
from tests.fake_discord import FakeDiscord
from tests.fake_slack import FakeSlack

DAILY = tuple(range(7))


@dataclass
class Rig:
    """One platform's real client library against its fake, with a poster on a fresh database."""

    platform: str
    app: App
    gateway: ChatGateway
    channel: str
    group: str
    messages: Callable[[], list[str]]  # message ids in the channel, oldest first
    fail_after_create: Callable[[], None]  # the next post is made, then a server error is answered
    let_nonces_expire: Callable[[], None]
    clock: FakeClock
    fake: Any = None

    def poster(self, gateway: ChatGateway | None = None, name: str = "a") -> DailyPoster:
        gw = gateway or self.gateway
        return DailyPoster(
            SqliteScheduleStore(self.app.store),
            self.app.store,
            self.app.library,
            {gw.platform: gw},
            self.clock,
            name=name,
        )

    async def schedule(self) -> tuple[int, datetime]:
        """A daily question in the channel whose first occurrence is the current minute."""
        at = self.clock.now().replace(second=0, microsecond=0)
        m = await self.app.store.ensure_member(
            self.platform, self.group, self.channel, "admin", "admin", now=at - timedelta(days=1)
        )
        rule = ScheduleRule(time(at.hour, at.minute), "UTC", DAILY, "question")
        await SqliteScheduleStore(self.app.store).save_schedule(m.channel_id, rule, at - timedelta(days=1))
        return m.channel_id, at

    def recorded(self) -> list[tuple[str, str | None]]:
        with sqlite3.connect(self.app.store.path) as conn:
            return conn.execute("SELECT status, message_id FROM deliveries ORDER BY id").fetchall()


def settings(tmp_path: Path, **extra: str) -> Settings:
    return Settings(_env_file=None, STUDYBOT_DB=str(tmp_path / "s.db"), STUDYBOT_CONTENT=str(FIXTURE_PACK), **extra)  # type: ignore[call-arg]


@pytest.fixture(params=["discord", "slack"])
async def rig(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Rig]:
    clock = FakeClock(datetime.now(UTC))
    if request.param == "discord":
        async with FakeDiscord() as fake:
            app = await build_app(settings(tmp_path), clock=clock)
            fe = DiscordFrontEnd(app.service, fake.token, guild_ready_timeout=0.05)
            task = asyncio.create_task(fe.run())
            try:
                await asyncio.wait_for(fe.ready.wait(), 5)
                cid = fake.channel_id
                # 503: discord.py does not retry it itself, so the core sees the failure.
                yield Rig(
                    "discord",
                    app,
                    fe,
                    str(cid),
                    str(fake.guild.id),
                    lambda: [m["id"] for m in fake.channel_messages(cid)],
                    lambda: fake.fail("POST", rf"/channels/{cid}/messages", 503, after=True) and None,
                    fake.expire_nonces,
                    clock,
                    fake,
                )
            finally:
                await fe.close()
                await asyncio.wait_for(task, 5)
                await app.close()
    else:
        fake_slack = FakeSlack()
        await fake_slack.start()
        s = settings(
            tmp_path,
            SLACK_BOT_TOKEN=fake_slack.bot_token,
            SLACK_SIGNING_SECRET="x" * 32,
            SLACK_API_URL=fake_slack.api_url,
        )
        app = await build_app(s, clock=clock)
        adapter = SlackAdapter(app.service, s, http_host="127.0.0.1", http_port=0)
        await adapter.start()
        try:
            yield Rig(
                "slack",
                app,
                adapter,
                "C0GENERAL",
                fake_slack.team_id,
                lambda: [ts for ch, ts in fake_slack.messages if ch == "C0GENERAL"],
                lambda: fake_slack.fail("chat.postMessage", 500, after=True),
                lambda: None,  # Slack has no nonce
                clock,
                fake_slack,
            )
        finally:
            await adapter.close()
            await app.close()
            await fake_slack.stop()


class Crash(BaseException):
    """The process died (nothing after this point ran)."""


class DiesAfterPosting:
    """A gateway whose process dies right after the platform took the post, before it was recorded."""

    def __init__(self, inner: ChatGateway) -> None:
        self.inner = inner
        self.platform = inner.platform

    async def post(self, post: Post) -> SentMessage:
        await self.inner.post(post)
        raise Crash

    async def edit(
        self, channel: str, message_id: str, text: str, buttons: Sequence[Button] = (), *, group: str = ""
    ) -> None:
        await self.inner.edit(channel, message_id, text, buttons, group=group)

    async def find(self, post: Post, since: datetime) -> str | None:
        return await self.inner.find(post, since)


async def test_a_server_error_on_a_post_that_was_made_gives_one_post(rig: Rig) -> None:
    _, at = await rig.schedule()
    poster = rig.poster()
    rig.fail_after_create()
    report = await poster.run_due(at)
    for later in (timedelta(minutes=1), timedelta(minutes=5)):  # any retry would be due by now
        await poster.run_due(at + later)
    posted = rig.messages()
    print(f"{rig.platform}: server error after create -> {len(posted)} message(s)")
    assert len(posted) == 1, "the message that was made is found, not posted again"
    assert report.sent and rig.recorded() == [("sent", posted[0])]


def reveals(rig: Rig) -> list[str]:
    """The answer reveals in the rig's channel (their text), oldest first."""
    if rig.platform == "discord":
        texts = [m["content"] for m in rig.fake.channel_messages(int(rig.channel))]
    else:
        texts = [m["text"] for (ch, _), m in sorted(rig.fake.messages.items()) if ch == rig.channel]
    return [t for t in texts if "Answer reveal" in t]


async def test_a_server_error_on_a_reveal_that_was_made_gives_one_reveal(rig: Rig) -> None:
    """The reveal of yesterday's question goes out before today's question; the platform makes it and
    answers a server error. It is found in the channel, not revealed again by a later post."""
    _, at = await rig.schedule()
    poster = rig.poster()
    assert (await poster.run_due(at)).sent
    rig.fail_after_create()  # the next post is the reveal, made before today's question
    assert (await poster.run_due(at + timedelta(days=1))).sent
    rig.let_nonces_expire()  # a day later Discord's nonce window is long past: only a look-up helps
    assert (await poster.run_due(at + timedelta(days=2))).sent
    print(f"{rig.platform}: server error after a reveal was made -> {len(reveals(rig))} reveal message(s) in 3 days")
    assert len(reveals(rig)) == 2, "day 1 revealed once (the 5xx one, found), day 2 once; no repeat"
    assert len(set(reveals(rig))) == 2
    with sqlite3.connect(rig.app.store.path) as conn:
        unrevealed = conn.execute("SELECT COUNT(*) FROM posts WHERE revealed_at IS NULL").fetchone()
    assert unrevealed == (1,), "only today's question waits for its reveal"


async def test_a_post_made_just_before_a_crash_is_found_and_recorded_not_sent_again(rig: Rig) -> None:
    cid, at = await rig.schedule()
    with pytest.raises(Crash):
        await rig.poster(DiesAfterPosting(rig.gateway), name="dead").run_due(at)
    assert len(rig.messages()) == 1 and rig.recorded() == [("claimed", None)]
    rig.let_nonces_expire()  # the lease is longer than Discord's nonce window: only the lookup is left
    later = at + CLAIM_LEASE + timedelta(minutes=1)
    assert (await rig.poster(name="next").run_due(at + timedelta(minutes=1))).sent == []  # still leased
    report = await rig.poster(name="next").run_due(later)
    posted = rig.messages()
    assert len(posted) == 1, "found in the channel's history: recorded, not sent again"
    assert report.sent == [(cid, at)] and rig.recorded() == [("sent", posted[0])]
    # The post members see is the recorded one: its reveal edits that very message.
    ((message_id,),) = sqlite3.connect(rig.app.store.path).execute("SELECT message_id FROM posts").fetchall()
    assert message_id == posted[0]


async def test_without_read_message_history_discord_still_drops_the_repeat_by_its_nonce(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock(datetime.now(UTC))
    async with FakeDiscord() as fake:
        app = await build_app(settings(tmp_path), clock=clock)
        fe = DiscordFrontEnd(app.service, fake.token, guild_ready_timeout=0.05)
        task = asyncio.create_task(fe.run())
        try:
            await asyncio.wait_for(fe.ready.wait(), 5)
            cid = fake.channel_id
            fake.deny_history(cid)
            rig = Rig("discord", app, fe, str(cid), str(fake.guild.id), list, lambda: None, lambda: None, clock)
            _, at = await rig.schedule()
            with pytest.raises(Crash):
                await rig.poster(DiesAfterPosting(fe), name="dead").run_due(at)
            # A restart soon after (here: another claimant once the claim is released to it).
            with sqlite3.connect(app.store.path) as conn:
                conn.execute("UPDATE deliveries SET claimed_at = ?", (ts(at - CLAIM_LEASE * 2),))
            with caplog.at_level(logging.WARNING, "bot.core.delivery"):
                report = await rig.poster(name="next").run_due(at + timedelta(minutes=2))
            posted = [m["id"] for m in fake.channel_messages(cid)]
            assert len(posted) == 1 and fake.nonce_hits == 1, "Discord answered the repeat with the first message"
            assert report.sent and rig.recorded() == [("sent", posted[0])]
            assert "could not look for post" in caplog.text
        finally:
            await fe.close()
            await asyncio.wait_for(task, 5)
            await app.close()


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        ("429", "is rate-limiting the bot right now"),
        ("5xx", "had a problem on its side"),
        ("403", "Check the bot's permissions in this channel"),
    ],
)
async def test_post_now_on_the_platform_tells_the_admin_what_happened_and_keeps_nothing(
    rig: Rig, fault: str, expected: str
) -> None:
    """Item 4 through the real client libraries: the admin reads the platform's real problem, and the
    question that could not be posted is not kept (nothing to reveal or count later)."""
    rig.app.gateways[rig.platform] = rig.gateway
    if rig.platform == "discord":
        fake_d: FakeDiscord = rig.fake
        path = rf"/channels/{rig.channel}/messages"
        if fault == "429":  # more than discord.py's five tries
            fake_d.fail("POST", path, 429, times=5, retry_after=0.05)
        elif fault == "5xx":
            fake_d.fail("POST", path, 503)
        else:
            fake_d.forbid(int(rig.channel))
    else:
        fake_s: FakeSlack = rig.fake
        if fault == "429":  # more than the client's three retries
            fake_s.fail("chat.postMessage", 429, retry_after=0, times=4)
        elif fault == "5xx":
            fake_s.fail("chat.postMessage", 500)
        else:
            fake_s.channel_errors[rig.channel] = "not_in_channel"
    (reply,) = await rig.app.service.handle(
        Inbound(rig.platform, rig.group, rig.channel, "U0ADMIN", "admin", "schedule post-now", is_admin=True)  # type: ignore[arg-type]
    )
    print(f"{rig.platform} {fault}: {reply.text}")
    assert reply.private and expected in reply.text, reply.text
    if fault != "403":
        assert "permissions" not in reply.text
    assert rig.messages() == []
    with sqlite3.connect(rig.app.store.path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM posts").fetchone() == (0,)
