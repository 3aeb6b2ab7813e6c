"""P1: interaction ack latency through the real discord.py and slack-bolt over loopback.

100 members act at once, three rounds each: they click an answer button on the daily post, then send
a command (quiz, progress, leaderboard or tip — a mix), then click again on a fresh post. Members are
known to the bot already (they joined on earlier days). Latency is measured by the fakes: for Discord
from dispatching INTERACTION_CREATE to receiving the interaction callback; for Slack from sending the
signed request to receiving the HTTP 200 ack. Goal: p99 <= 25 ms; the platforms' limit is 3,000 ms.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from bench.common import ROOT, Figure, percentile
from bot.bootstrap import build_app
from bot.config import BUNDLED_CONTENT, Settings
from bot.core import actions
from bot.core.messages import Post
from bot.core.service import answer_buttons, question_text

sys.path.insert(0, str(ROOT))
from tests.fake_discord import FakeDiscord, FakeUser
from tests.fake_slack import FakeSlack

MEMBERS = 100
COMMANDS = ("quiz", "progress", "leaderboard", "tip")


class Clock:
    def now(self) -> datetime:
        return datetime.now(UTC)


async def daily_post(app: Any, platform: str, group: str, channel: str, gateway: Any) -> tuple[int, Any]:
    """Post today's question the way the scheduler does; returns (post id, sent message id)."""
    m = await app.store.ensure_member(platform, group, channel, "poster", "poster", now=Clock().now())
    q = app.library.pack.questions[0]
    post = await app.store.create_post(m.group_id, m.channel_id, None, "question", q.id, Clock().now())
    sent = await gateway.post(Post(channel, question_text(q, heading="Question of the day"), answer_buttons(post.id)))
    return post.id, sent.message_id


async def discord_round(tmp: Path) -> list[float]:
    from bot.adapters.discord_adapter import DiscordFrontEnd

    fake = FakeDiscord()
    await fake.start()
    settings = Settings(STUDYBOT_DB=tmp / "p1d.db", STUDYBOT_CONTENT=BUNDLED_CONTENT)  # type: ignore[call-arg]
    app = await build_app(settings, clock=Clock())
    fe = DiscordFrontEnd(app.service, fake.token, guild_ready_timeout=0.05)
    runner = asyncio.create_task(fe.run())
    await asyncio.wait_for(fe.ready.wait(), 30)
    users = [FakeUser(850000000000000000 + i, f"member{i}") for i in range(MEMBERS)]
    guild, channel = fake.guild.id, fake.channel_id
    for u in users:  # members who used the bot before
        await app.store.ensure_member("discord", str(guild), str(channel), str(u.id), u.name, now=Clock().now())
    fake.take_ack_latencies()
    latencies: list[float] = []
    for rnd in range(3):
        if rnd == 1:
            payloads = [fake.slash(COMMANDS[i % 4], user=u) for i, u in enumerate(users)]
        else:
            post_id, message_id = await daily_post(app, "discord", str(guild), str(channel), fe)
            message = fake.messages[int(message_id)]
            payloads = [
                fake.click(actions.answer_action(post_id, "ABCD"[i % 4]), message, user=u) for i, u in enumerate(users)
            ]
        await asyncio.gather(*(fake.dispatch_interaction(p) for p in payloads))
        # Poll a counter rather than awaiting each callback: waiters that rescan the fake's request log
        # would burn the very event loop whose latency is being measured.
        deadline = time.perf_counter() + 30
        while len(fake.ack_latencies()) < len(payloads) and time.perf_counter() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        got = fake.take_ack_latencies()
        assert len(got) == len(payloads), f"only {len(got)} of {len(payloads)} interactions were acknowledged"
        latencies += got
        await asyncio.sleep(0.2)  # let follow-ups (deferred replies) finish before the next round
    await fe.close()
    await asyncio.wait_for(runner, 10)
    await app.close()
    await fake.stop()
    return latencies


async def slack_round(tmp: Path) -> list[float]:
    import aiohttp
    from slack_sdk.signature import SignatureVerifier

    from bot.adapters.slack_adapter import SlackAdapter

    secret = "bench-signing-secret"
    fake = FakeSlack(team_id="T0HOME")
    await fake.start()
    settings = Settings(  # type: ignore[call-arg]
        STUDYBOT_DB=tmp / "p1s.db",
        STUDYBOT_CONTENT=BUNDLED_CONTENT,
        SLACK_BOT_TOKEN=fake.bot_token,
        SLACK_SIGNING_SECRET=secret,
        SLACK_API_URL=fake.api_url,
        _env_file=None,
    )
    app = await build_app(settings, clock=Clock())
    adapter = SlackAdapter(app.service, settings, http_host="127.0.0.1", http_port=0)
    await adapter.start()
    runner = asyncio.create_task(adapter.run())
    users = [f"U{i:05d}" for i in range(MEMBERS)]
    for u in users:
        fake.add_user(u, f"member-{u}")
        await app.store.ensure_member("slack", "T0HOME", "C0STUDY", u, f"member-{u}", now=Clock().now())
    url = f"http://127.0.0.1:{adapter.port}/slack/events"
    signer = SignatureVerifier(secret)
    latencies: list[float] = []

    async def send(session: aiohttp.ClientSession, body: str) -> None:
        stamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Slack-Request-Timestamp": stamp,
            "X-Slack-Signature": signer.generate_signature(timestamp=stamp, body=body),
        }
        t = time.perf_counter()
        async with session.post(url, data=body.encode(), headers=headers) as resp:
            await resp.read()
            assert resp.status == 200, resp.status
        latencies.append(time.perf_counter() - t)

    def command(i: int, u: str) -> str:
        return urlencode(
            {
                "team_id": "T0HOME",
                "channel_id": "C0STUDY",
                "user_id": u,
                "user_name": u,
                "command": "/study",
                "text": COMMANDS[i % 4],
                "response_url": fake.response_url(f"c{i}"),
                "trigger_id": f"t{i}",
            }
        )

    def click(i: int, u: str, post_id: int) -> str:
        action = actions.answer_action(post_id, "ABCD"[i % 4])
        payload = {
            "type": "block_actions",
            "team": {"id": "T0HOME"},
            "user": {"id": u, "team_id": "T0HOME"},
            "channel": {"id": "C0STUDY"},
            "response_url": fake.response_url(f"a{i}"),
            "actions": [{"type": "button", "action_id": action, "value": action, "block_id": "b"}],
        }
        return urlencode({"payload": json.dumps(payload)})

    connector = aiohttp.TCPConnector(limit=MEMBERS)
    async with aiohttp.ClientSession(connector=connector) as session:
        await send(session, command(0, users[0]))  # warm-up: auth.test, connection pool
        latencies.clear()
        for rnd in range(3):
            if rnd == 1:
                bodies = [command(i, u) for i, u in enumerate(users)]
            else:
                post_id, _ = await daily_post(app, "slack", "T0HOME", "C0STUDY", adapter)
                bodies = [click(i, u, post_id) for i, u in enumerate(users)]
            await asyncio.gather(*(send(session, b) for b in bodies))
            await adapter.drain()
    await adapter.close()
    await asyncio.wait_for(runner, 10)
    await app.close()
    await fake.stop()
    return latencies


async def measure() -> list[Figure]:
    figures = []
    with tempfile.TemporaryDirectory() as tmp:
        for fid, name, fn in (("P1a", "Discord", discord_round), ("P1b", "Slack", slack_round)):
            lat_ms = [x * 1000 for x in await fn(Path(tmp))]
            p99 = percentile(lat_ms, 99)
            figures.append(
                Figure(
                    fid,
                    f"{name} ack latency, {MEMBERS} members at once (p99)",
                    round(p99, 1),
                    "ms",
                    "<= 25 ms (limit 3,000 ms)",
                    p99 <= 25,
                    f"p50 {percentile(lat_ms, 50):.1f} ms, max {max(lat_ms):.1f} ms over {len(lat_ms)} interactions",
                )
            )
    return figures


def main() -> None:
    for f in asyncio.run(measure()):
        f.emit()


if __name__ == "__main__":
    main()
