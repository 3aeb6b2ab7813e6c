"""The Slack front end, end to end: the real slack-bolt `AsyncApp` served over loopback HTTP (and
Socket Mode), driven by correctly signed Slack requests, talking to `tests/fake_slack.py`.

Nothing in slack-bolt or slack-sdk is patched: the Web API client only gets the fake's base URL.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
import yaml
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import SignatureVerifier

from bot.adapters.slack_adapter import SCOPES, SlackAdapter, blocks_for, home_blocks, mrkdwn
from bot.bootstrap import App, build_app, home_tab, make_frontends, serve_dashboard
from bot.config import Settings
from bot.core.commands import SPECS
from bot.core.home import HomeSection, HomeView
from bot.core.messages import Attachment, Button, Post, Reply
from bot.core.ports import Clock, DeliveryError
from bot.core.service import ERROR_TEXT, answer_buttons
from tests.conftest import FIXTURE_PACK
from tests.fake_slack import FakeSlack
from tests.test_anki import anki_package_of

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
HOME = "T0HOME"
CHANNEL = "C0GENERAL"
ADMIN = "U0ADMIN"  # a workspace admin according to users.info
OWNER = "U0OWNER"  # the workspace owner
LISTED = "U0LISTED"  # an ordinary member named in STUDYBOT_SLACK_ADMINS
MEMBER = "U0MEMBER"  # an ordinary member
BOB = "U0BOB"

RIGHT = {"t-a": "A", "t-b": "B", "t-c": "C", "t-d": "D"}


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def report(label: str, latencies: list[float]) -> None:
    print(
        f"\n[slack ack latency] {label}: n={len(latencies)} p50={percentile(latencies, 50) * 1000:.1f} ms "
        f"p99={percentile(latencies, 99) * 1000:.1f} ms max={max(latencies) * 1000:.1f} ms"
    )


def slack_settings(fake: FakeSlack, tmp_path: Path, *, socket: bool = False, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "STUDYBOT_DB": str(tmp_path / "slack.db"),
        "STUDYBOT_CONTENT": str(FIXTURE_PACK),
        "SLACK_BOT_TOKEN": fake.bot_token,
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_API_URL": fake.api_url,
        "STUDYBOT_SLACK_ADMINS": LISTED,
        # The bot's operator (the content pack is theirs): a workspace admin here; a plain id on another
        # platform must not make anyone an operator on Slack.
        "STUDYBOT_OWNERS": f"slack:{ADMIN},discord:{BOB}",
    }
    if socket:
        values["SLACK_APP_TOKEN"] = fake.app_token
    values.update(extra)
    return Settings(_env_file=None, **values)


def command_form(fake: FakeSlack, text: str, key: str, *, user: str, team: str, channel: str) -> dict[str, str]:
    """The fields Slack sends for a slash command."""
    return {
        "token": "legacy-verification-token",
        "team_id": team,
        "team_domain": "home" if team == HOME else "elsewhere",
        "channel_id": channel,
        "channel_name": "general",
        "user_id": user,
        "user_name": user.lower(),
        "command": "/study",
        "text": text,
        "api_app_id": "A0STUDY",
        "is_enterprise_install": "false",
        "response_url": fake.response_url(key),
        "trigger_id": f"trigger-{key}",
    }


def click_payload(
    fake: FakeSlack, action_id: str, key: str, *, user: str, team: str, channel: str, value: str | None = None
) -> dict[str, Any]:
    """A ``block_actions`` payload as Slack sends it for a button click."""
    return {
        "type": "block_actions",
        "team": {"id": team, "domain": "home"},
        "user": {"id": user, "username": user.lower(), "name": user.lower(), "team_id": team},
        "api_app_id": "A0STUDY",
        "token": "legacy-verification-token",
        "container": {
            "type": "message",
            "message_ts": "1700000001.000100",
            "channel_id": channel,
            "is_ephemeral": True,
        },
        "trigger_id": f"trigger-{key}",
        "channel": {"id": channel, "name": "general"},
        "response_url": fake.response_url(key),
        "actions": [
            {
                "type": "button",
                "action_id": action_id,
                "block_id": "sb-buttons",
                "value": value if value is not None else action_id,
                "text": {"type": "plain_text", "text": action_id.rsplit(":", 1)[-1]},
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }


def buttons_of(message: dict[str, Any]) -> list[dict[str, Any]]:
    return [el for block in message.get("blocks", []) if block["type"] == "actions" for el in block["elements"]]


def question_id(text: str) -> str:
    """The fixture pack's prompts say which letter is right: 'test question B' -> t-b."""
    letter = text.split("test question ")[1][0]
    return f"t-{letter.lower()}"


@dataclass
class Rig:
    """One running Slack front end on a fresh database, plus helpers to talk to it like Slack does."""

    fake: FakeSlack
    app: App
    adapter: SlackAdapter
    session: aiohttp.ClientSession
    latencies: list[float] = field(default_factory=list)
    n: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.adapter.port}/slack/events"

    def key(self) -> str:
        self.n += 1
        return f"r{self.n}"

    async def send(
        self, body: str, *, ts: int | None = None, secret: str | None = SECRET, signature: str | None = None
    ) -> tuple[int, str]:
        """POST a form-encoded body signed like Slack (or badly, when told); records the ack latency."""
        stamp = str(ts if ts is not None else int(time.time()))
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if secret is not None:
            headers["X-Slack-Request-Timestamp"] = stamp
            headers["X-Slack-Signature"] = signature or SignatureVerifier(secret).generate_signature(
                timestamp=stamp, body=body
            )
        started = time.perf_counter()
        async with self.session.post(self.url, data=body.encode(), headers=headers) as resp:
            text = await resp.text()
        elapsed = time.perf_counter() - started
        if resp.status == 200:
            self.latencies.append(elapsed)
        return resp.status, text

    async def command(
        self, text: str, *, user: str = MEMBER, team: str = HOME, channel: str = CHANNEL
    ) -> tuple[str, int, str]:
        key = self.key()
        status, body = await self.send(
            urlencode(command_form(self.fake, text, key, user=user, team=team, channel=channel))
        )
        return key, status, body

    async def ask(self, text: str, *, user: str = MEMBER, channel: str = CHANNEL) -> dict[str, Any]:
        """Run a command and return the first reply posted to its response_url."""
        key, status, body = await self.command(text, user=user, channel=channel)
        assert (status, body) == (200, ""), (status, body)
        return (await self.fake.responses_for(key))[0]

    async def click(
        self, action_id: str, *, user: str = MEMBER, team: str = HOME, channel: str = CHANNEL
    ) -> tuple[str, int, str]:
        key = self.key()
        payload = click_payload(self.fake, action_id, key, user=user, team=team, channel=channel)
        status, body = await self.send(urlencode({"payload": json.dumps(payload)}))
        return key, status, body

    async def scalar(self, sql: str, *args: Any) -> Any:
        return await self.app.store.run_sync(lambda conn: conn.execute(sql, args).fetchone()[0])

    async def rows_written(self) -> int:
        tables = ("groups", "channels", "members", "posts", "answers", "suggestions", "suggestion_settings")
        return int(sum([await self.scalar(f"SELECT COUNT(*) FROM {t}") for t in tables]))


def add_users(fake: FakeSlack) -> None:
    fake.add_user(ADMIN, "Ada", admin=True)
    fake.add_user(OWNER, "Olu", owner=True)
    fake.add_user(LISTED, "Lin")
    fake.add_user(MEMBER, "Mia")
    fake.add_user(BOB, "Bob")


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    f = FakeSlack(team_id=HOME)
    await f.start()
    add_users(f)
    yield f
    await f.stop()


@asynccontextmanager
async def running_rig(
    fake: FakeSlack, settings: Settings, *, clock: Clock | None = None, home_debounce: float | None = None
) -> AsyncIterator[Rig]:
    """The app on `settings` with its Slack front end listening over HTTP on a free loopback port (the
    Home tab wired in when `home_debounce` is given); everything is stopped on the way out."""
    app = await build_app(settings, clock=clock)
    home = home_tab(app) if home_debounce is not None else None
    adapter = SlackAdapter(app.service, settings, http_host="127.0.0.1", http_port=0, home=home)
    if home_debounce is not None:
        adapter.home_debounce = home_debounce
    await adapter.start()
    app.gateways["slack"] = adapter
    runner = asyncio.create_task(adapter.run())
    try:
        async with aiohttp.ClientSession() as session:
            yield Rig(fake, app, adapter, session)
    finally:
        await adapter.close()
        await asyncio.wait_for(runner, 5)
        await app.close()


@pytest.fixture
async def rig(fake: FakeSlack, tmp_path: Path) -> AsyncIterator[Rig]:
    async with running_rig(fake, slack_settings(fake, tmp_path)) as r:
        yield r


# ---------------------------------------------------------------- rendering


def test_mrkdwn_converts_bold_and_escapes_what_slack_would_read_as_markup() -> None:
    assert mrkdwn("**Question** · usage: /study answer <A|B|C|D> & more") == (
        "*Question* · usage: /study answer &lt;A|B|C|D&gt; &amp; more"
    )


def test_long_text_is_split_into_sections_slack_accepts() -> None:
    text = "\n".join(f"line {i} " + "x" * 90 for i in range(100))  # ~10,000 characters
    blocks = blocks_for(text, answer_buttons(7))
    sections = [b["text"]["text"] for b in blocks if b["type"] == "section"]
    assert all(len(s) <= 3000 for s in sections) and len(sections) >= 4
    assert "\n".join(sections) == text
    actions = blocks[-1]
    assert [e["action_id"] for e in actions["elements"]] == [f"sb:ans:7:{x}" for x in "ABCD"]
    assert all(e["value"] == e["action_id"] for e in actions["elements"])


# ---------------------------------------------------------------- commands over HTTP


async def test_every_subcommand_is_acked_at_once_and_answered_through_the_response_url(rig: Rig) -> None:
    texts = [
        "help",
        "quiz",
        "answer",
        "tip",
        "path",
        "path done 1",
        "progress",
        "progress Mia",
        "leaderboard",
        "leaderboard all",
        "leaderboard hide",
        "leaderboard show",
        "review",
        "timezone",
        "timezone Europe/Berlin",
        "forget-me",
        "forget-me cancel",
        "schedule show",
        "schedule preview",
        "schedule set 09:00 tz Europe/Berlin days mon-fri kind question",
        "schedule pause",
        "schedule resume",
        "schedule skip",
        "schedule post-now",
        "content list",
        "content validate",
        "content load",
        "export",
        "",
        "frobnicate",
    ]
    seen: dict[str, dict[str, Any]] = {}
    for text in texts:
        if text == "answer":  # the right letter, so the leaderboards that follow have points to show
            text = f"answer {RIGHT[question_id(seen['quiz']['text'])]}"
        key, status, body = await rig.command(text, user=ADMIN)
        assert (status, body) == (200, ""), text  # the ack is empty: the answer follows via response_url
        seen[text] = (await rig.fake.responses_for(key))[0]
    await rig.adapter.drain()
    for text, reply in seen.items():
        assert reply["text"] and "**" not in reply["text"], text
        assert ERROR_TEXT not in reply["text"], (text, reply["text"])
        assert "Only admins" not in reply["text"], text
        assert reply["replace_original"] is False
        expected = "in_channel" if text in ("leaderboard", "leaderboard all") else "ephemeral"
        assert reply["response_type"] == expected, (text, reply["response_type"])
    assert seen["help"]["text"].startswith("*studybot*")
    assert "&lt;A|B|C|D&gt;" in seen["help"]["text"]
    quiz_buttons = buttons_of(seen["quiz"])
    assert [b["text"]["text"] for b in quiz_buttons] == ["A", "B", "C", "D"]
    assert "Unknown command" in seen["frobnicate"]["text"]
    assert "Europe/Berlin" in seen["timezone Europe/Berlin"]["text"]
    assert [t for t in seen if t.startswith("answer ")] and "Correct" in seen[
        next(t for t in seen if t.startswith("answer "))
    ]["text"]
    assert buttons_of(seen["forget-me"])[0]["action_id"] == "sb:forget-confirm"
    # The group is the Slack workspace, the member the Slack user, named from users.info.
    assert await rig.scalar("SELECT external_id FROM groups WHERE platform = 'slack'") == HOME
    assert await rig.scalar("SELECT display_name FROM members WHERE user_id = ?", ADMIN) == "Ada"
    assert await rig.scalar("SELECT tz FROM members WHERE user_id = ?", ADMIN) == "Europe/Berlin"
    report("every subcommand over HTTP", rig.latencies)
    assert max(rig.latencies) < 3.0


async def test_bad_input_gets_a_clear_private_message_and_changes_nothing(rig: Rig) -> None:
    await rig.ask("help")
    before = await rig.rows_written()
    reply = await rig.ask("timezone Europe/Berln")
    assert reply["response_type"] == "ephemeral"
    assert "Europe/Berlin" in reply["text"]
    reply = await rig.ask("answer E")
    assert "A, B, C or D" in reply["text"]
    assert await rig.rows_written() == before
    assert await rig.scalar("SELECT tz FROM members WHERE user_id = ?", MEMBER) is None


# ---------------------------------------------------------------- buttons


async def test_a_button_click_records_the_answer_and_a_double_click_counts_once(rig: Rig) -> None:
    quiz = await rig.ask("quiz")
    right = RIGHT[question_id(quiz["text"])]
    button = next(b for b in buttons_of(quiz) if b["text"]["text"] == right)
    # Two clicks arriving together, as a double click does.
    (k1, s1, b1), (k2, s2, b2) = await asyncio.gather(rig.click(button["action_id"]), rig.click(button["action_id"]))
    assert (s1, b1, s2, b2) == (200, "", 200, "")
    replies = [(await rig.fake.responses_for(k))[0]["text"] for k in (k1, k2)]
    assert sum("Correct" in r for r in replies) == 1
    assert sum("already answered" in r for r in replies) == 1
    assert await rig.scalar("SELECT COUNT(*) FROM answers") == 1
    assert await rig.scalar("SELECT points FROM members WHERE user_id = ?", MEMBER) == 1
    # A third click, later, still changes nothing.
    key, _, _ = await rig.click(button["action_id"])
    assert "already answered" in (await rig.fake.responses_for(key))[0]["text"]
    assert await rig.scalar("SELECT COUNT(*) FROM answers") == 1


async def test_a_wrong_answer_button_and_someone_elses_question(rig: Rig) -> None:
    quiz = await rig.ask("quiz")
    right = RIGHT[question_id(quiz["text"])]
    wrong = next(b for b in buttons_of(quiz) if b["text"]["text"] != right)
    key, _, _ = await rig.click(wrong["action_id"], user=BOB)
    assert "dealt to someone else" in (await rig.fake.responses_for(key))[0]["text"]
    key, _, _ = await rig.click(wrong["action_id"])
    reply = (await rig.fake.responses_for(key))[0]
    assert reply["response_type"] == "ephemeral" and "Not quite" in reply["text"]
    assert await rig.scalar("SELECT correct FROM answers") == 0
    key, _, _ = await rig.click("sb:ans:999:Z")
    assert "no longer valid" in (await rig.fake.responses_for(key))[0]["text"]


async def test_forget_me_confirm_button_deletes_the_members_data(rig: Rig) -> None:
    await rig.ask("path done 2")
    reply = await rig.ask("forget-me")
    confirm = next(b for b in buttons_of(reply) if b["action_id"] == "sb:forget-confirm")
    assert confirm["style"] == "danger"
    key, _, _ = await rig.click(confirm["action_id"])
    assert "Done" in (await rig.fake.responses_for(key))[0]["text"]
    assert await rig.scalar("SELECT COUNT(*) FROM path_steps") == 0


async def test_without_a_usable_response_url_replies_go_through_the_web_api(rig: Rig) -> None:
    quiz = await rig.ask("quiz")
    right = RIGHT[question_id(quiz["text"])]
    action_id = next(b["action_id"] for b in buttons_of(quiz) if b["text"]["text"] == right)
    # A click without a response_url: the answer goes out as chat.postEphemeral to the member.
    payload = click_payload(rig.fake, action_id, "none", user=MEMBER, team=HOME, channel=CHANNEL)
    del payload["response_url"]
    status, _ = await rig.send(urlencode({"payload": json.dumps(payload)}))
    assert status == 200
    [sent] = await rig.fake.wait_for(lambda: rig.fake.ephemeral)
    assert (sent["channel"], sent["user"]) == (CHANNEL, MEMBER)
    assert "Correct" in sent["text"]
    # An expired response_url (Slack answers 404): the same fallback; public replies go to the channel.
    rig.fake.expired_response_urls.add(f"r{rig.n + 1}")
    await rig.command("leaderboard")
    await rig.fake.wait_for(lambda: rig.fake.delivered("chat.postMessage"))
    [board] = rig.fake.messages.values()
    assert board["text"].startswith("*Leaderboard")
    assert await rig.scalar("SELECT COUNT(*) FROM answers") == 1


# ---------------------------------------------------------------- security


async def test_unsigned_forged_and_stale_requests_get_401_and_change_nothing(rig: Rig) -> None:
    body = urlencode(command_form(rig.fake, "quiz", "forged", user=MEMBER, team=HOME, channel=CHANNEL))
    click = urlencode(
        {
            "payload": json.dumps(
                click_payload(rig.fake, "sb:ans:1:A", "forged", user=MEMBER, team=HOME, channel=CHANNEL)
            )
        }
    )
    stale = int(time.time()) - 6 * 60
    attempts = {
        "unsigned": await rig.send(body, secret=None),
        "wrong secret": await rig.send(body, secret="not-the-secret"),
        "garbage signature": await rig.send(body, signature="v0=deadbeef"),
        "stale (6 min)": await rig.send(body, ts=stale),
        "future (6 min)": await rig.send(body, ts=int(time.time()) + 6 * 60),
        "tampered body": await rig.send(
            body.replace("quiz", "forget-me+confirm"),
            signature=SignatureVerifier(SECRET).generate_signature(timestamp=str(int(time.time())), body=body),
        ),
        "unsigned click": await rig.send(click, secret=None),
        "stale click": await rig.send(click, ts=stale),
    }
    assert {name: status for name, (status, _) in attempts.items()} == dict.fromkeys(attempts, 401)
    await rig.adapter.drain()
    assert await rig.rows_written() == 0
    assert rig.fake.responses == {}
    assert [r.name for r in rig.fake.requests if r.kind == "api"] == ["auth.test"]  # only start-up


async def test_a_malformed_timestamp_header_is_a_quiet_401_not_a_500(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    body = urlencode(command_form(rig.fake, "quiz", "bad-ts", user=MEMBER, team=HOME, channel=CHANNEL))
    caplog.set_level(logging.DEBUG)
    for stamp in ("abc", "²", "1e9", "", "-5", "9" * 40):
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Slack-Request-Timestamp": stamp,
            "X-Slack-Signature": "v0=" + "0" * 64,
        }
        async with rig.session.post(rig.url, data=body.encode(), headers=headers) as resp:
            assert resp.status == 401, (stamp, resp.status, await resp.text())
    await rig.adapter.drain()
    assert await rig.rows_written() == 0
    loud = [r for r in caplog.records if r.levelno > logging.DEBUG and r.name.startswith(("slack", "bot", "aiohttp"))]
    assert not loud, [r.getMessage() for r in loud]
    assert not any(r.exc_info for r in caplog.records)


async def test_unicode_digits_and_huge_numbers_in_a_button_id_are_an_invalid_button(rig: Rig) -> None:
    for action in ("sb:ans:²:A", "sb:ans:①:A", f"sb:ans:{2**64}:B"):
        key, status, _ = await rig.click(action)
        assert status == 200
        [reply] = await rig.fake.responses_for(key)
        assert reply["response_type"] == "ephemeral" and "no longer valid" in reply["text"], reply["text"]
        assert ERROR_TEXT not in reply["text"]
    reply = await rig.ask("schedule set 09:00 reveal ²", user=ADMIN)
    assert reply["text"].startswith("reveal takes a whole number of hours"), reply["text"]
    assert await rig.scalar("SELECT COUNT(*) FROM schedules") == 0


async def test_an_admin_of_another_workspace_is_no_admin_here(rig: Rig) -> None:
    # A Slack Connect guest: an admin in their own organisation, writing in our workspace.
    guest = rig.fake.add_user("U0GUEST", "Gus", admin=True)
    guest.team_id = "T0OTHER"
    reply = await rig.ask("schedule set 09:00", user="U0GUEST")
    assert reply["text"].startswith("Only admins can use"), reply["text"]
    assert await rig.scalar("SELECT COUNT(*) FROM schedules") == 0
    # The same flags on a user of this workspace do make an admin.
    reply = await rig.ask("schedule show", user=ADMIN)
    assert not reply["text"].startswith("Only admins"), reply["text"]


async def test_a_request_from_another_workspace_is_refused_and_changes_nothing(rig: Rig) -> None:
    key, status, body = await rig.command("quiz", team="T0OTHER")
    assert status == 200
    refusal = json.loads(body)
    assert refusal["response_type"] == "ephemeral" and "another Slack workspace" in refusal["text"]
    key, status, _ = await rig.click("sb:ans:1:A", team="T0OTHER")
    assert status == 200
    reply = (await rig.fake.responses_for(key))[0]
    assert reply["response_type"] == "ephemeral" and "another Slack workspace" in reply["text"]
    await rig.adapter.drain()
    assert await rig.rows_written() == 0
    assert not rig.fake.calls("users.info")


ADMIN_COMMANDS = {
    "schedule.show": "schedule show",
    "schedule.preview": "schedule preview",
    "schedule.set": "schedule set 09:00",
    "schedule.pause": "schedule pause",
    "schedule.resume": "schedule resume",
    "schedule.skip": "schedule skip",
    "schedule.post-now": "schedule post-now",
    "content.list": "content list",
    "content.validate": "content validate",
    "content.load": "content load",
    "export": "export",
    "check": "check",
    "rewards.show": "rewards show",
    "rewards.set": "rewards set streak 7 <@&860000000000000001>",
    "rewards.clear": "rewards clear",
    "suggestions": "suggestions off",
    "deck.add": "deck add sql",
    "deck.edit": "deck edit sql question-1",
    "dashboard": "dashboard",
    "deck.list": "deck list",
    "deck.show": "deck show mine",
    "deck.create": "deck create mine",
    "deck.delete": "deck delete mine",
    "deck.import": "deck import mine",
    "deck.export": "deck export mine",
    "deck.retire": "deck retire mine q-1",
}


async def test_a_non_admin_is_refused_every_admin_subcommand_and_nothing_changes(rig: Rig) -> None:
    assert set(ADMIN_COMMANDS) == {name for name, spec in SPECS.items() if spec.admin}
    await rig.ask("help")  # the member exists; what follows must not add a row anywhere
    before = await rig.rows_written()
    for name, text in ADMIN_COMMANDS.items():
        reply = await rig.ask(text)
        assert reply["response_type"] == "ephemeral"
        refusal = "Only the bot's operator can use" if SPECS[name].operator else "Only admins can use"
        assert reply["text"].startswith(refusal), (text, reply["text"])
    await rig.adapter.drain()
    assert await rig.rows_written() == before
    assert await rig.scalar("SELECT COUNT(*) FROM schedules") == 0
    assert not rig.fake.calls("chat.postMessage") and not rig.fake.completed_uploads
    # users.info was asked once for this member, then the answer came from the cache.
    assert len([c for c in rig.fake.calls("users.info") if c.args["user"] == MEMBER]) == 1


async def test_workspace_admins_owners_and_listed_ids_are_admins(rig: Rig) -> None:
    for user in (ADMIN, OWNER, LISTED):
        reply = await rig.ask("schedule show", user=user)
        assert not reply["text"].startswith("Only admins"), (user, reply["text"])
    reply = await rig.ask("schedule show", user=BOB)
    assert reply["text"].startswith("Only admins")


async def test_the_shipped_pack_is_the_operators_not_every_workspace_admins(rig: Rig) -> None:
    # STUDYBOT_OWNERS names ADMIN on Slack (and BOB on Discord only).
    for user in (OWNER, LISTED, BOB):
        for text in ("content list", "content validate", "content load"):
            reply = await rig.ask(text, user=user)
            assert reply["text"].startswith("Only the bot's operator can use /study content"), (user, reply["text"])
        help_text = (await rig.ask("help", user=user))["text"]
        assert "/study content" not in help_text, user
    loaded = await rig.ask("content load", user=ADMIN)
    assert loaded["text"].startswith("✅ Loaded"), loaded["text"]
    listed = await rig.ask("content list", user=ADMIN)
    assert "(pack/)" in listed["text"] and str(FIXTURE_PACK.parent) not in listed["text"]
    assert "/study content load" in (await rig.ask("help content", user=ADMIN))["text"]
    member_help = (await rig.ask("help", user=MEMBER))["text"]
    assert "/study quiz" in member_help and "schedule" not in member_help and "export" not in member_help


async def test_the_admin_answer_is_cached_for_a_while_then_asked_again(fake: FakeSlack, tmp_path: Path) -> None:
    now = [1000.0]
    settings = slack_settings(fake, tmp_path)
    app = await build_app(settings)
    try:
        adapter = SlackAdapter(app.service, settings, http_port=0, monotonic=lambda: now[0])
        assert await adapter.whois(MEMBER) == (False, "Mia")
        fake.users[MEMBER].is_admin = True  # promoted in Slack
        now[0] += 599
        assert await adapter.whois(MEMBER) == (False, "Mia")
        now[0] += 2
        assert await adapter.whois(MEMBER) == (True, "Mia")
        assert len(fake.calls("users.info")) == 2
        # Slack cannot say (unknown user): not an admin, unless listed.
        assert await adapter.whois("U0GHOST", "ghost") == (False, "ghost")
        assert await adapter.whois(LISTED) == (True, "Lin")
    finally:
        await app.close()


# ---------------------------------------------------------------- slow replies and files


async def test_attachments_are_uploaded_to_a_dm_when_private_and_to_the_channel_when_public(rig: Rig) -> None:
    async def export(ctx: Any, command: Any) -> list[Reply]:
        return [
            Reply(
                "📊 **Export** ready",
                private=True,
                attachments=(Attachment("members.csv", b"a,b\n1,2\n", "text/csv"),),
                slow=True,
            ),
            Reply(
                "A chart for everyone",
                private=False,
                attachments=(Attachment("chart.png", b"\x89PNG fake", "image/png"),),
            ),
        ]

    rig.app.service.register("export", export)
    key, status, body = await rig.command("export", user=ADMIN)
    assert (status, body) == (200, "")
    replies = await rig.fake.responses_for(key, 2)
    await rig.adapter.drain()
    assert [r["response_type"] for r in replies] == ["ephemeral", "in_channel"]
    assert replies[0]["text"] == "📊 *Export* ready"
    uploads = rig.fake.completed_uploads
    assert [u["channel"] for u in uploads] == [f"D{ADMIN}", CHANNEL]
    assert [rig.fake.uploaded[u["files"][0]] for u in uploads] == [b"a,b\n1,2\n", b"\x89PNG fake"]


async def test_the_ack_never_waits_for_the_work(rig: Rig) -> None:
    release = asyncio.Event()

    async def slow_export(ctx: Any, command: Any) -> list[Reply]:
        await release.wait()  # e.g. rendering a large export
        return [Reply("Export done", slow=True)]

    rig.app.service.register("export", slow_export)
    key, status, body = await rig.command("export", user=ADMIN)
    assert (status, body) == (200, "")  # acknowledged while the work is still blocked
    assert key not in rig.fake.responses
    release.set()
    assert (await rig.fake.responses_for(key))[0]["text"] == "Export done"


async def test_a_failed_upload_is_explained_to_the_member(rig: Rig) -> None:
    async def export(ctx: Any, command: Any) -> list[Reply]:
        return [Reply("Chart", private=False, attachments=(Attachment("chart.png", b"png"),))]

    rig.app.service.register("export", export)
    rig.fake.channel_errors["C0SECRET"] = "not_in_channel"
    key, _, _ = await rig.command("export", user=ADMIN, channel="C0SECRET")
    replies = await rig.fake.responses_for(key, 2)
    assert "could not attach chart.png" in replies[1]["text"] and "/invite" in replies[1]["text"]


# ---------------------------------------------------------------- the gateway (scheduled posts, reveals)


async def test_the_gateway_posts_with_buttons_and_edits(rig: Rig) -> None:
    gateway = rig.app.gateways["slack"]
    sent = await gateway.post(Post(CHANNEL, "**Question** of the day", answer_buttons(41)))
    msg = rig.fake.messages[(CHANNEL, sent.message_id)]
    assert sent.channel == CHANNEL
    assert msg["text"] == "*Question* of the day"
    assert [b["action_id"] for b in buttons_of(msg)] == [f"sb:ans:41:{x}" for x in "ABCD"]
    await gateway.edit(CHANNEL, sent.message_id, "**Answer:** B", ())
    assert msg["text"] == "*Answer:* B" and buttons_of(msg) == [] and msg["edits"] == 1


async def test_a_scheduled_post_survives_a_429_and_is_delivered_exactly_once(rig: Rig) -> None:
    rig.fake.fail("chat.postMessage", 429, retry_after=1)
    sent = await rig.app.gateways["slack"].post(Post(CHANNEL, "Daily question", answer_buttons(5)))
    attempts = rig.fake.calls("chat.postMessage")
    assert [a.status for a in attempts] == [429, 200]
    assert attempts[1].at - attempts[0].at >= 1.0  # it waited as Retry-After asked
    assert list(rig.fake.messages) == [(CHANNEL, sent.message_id)]


async def test_a_500_on_a_post_is_not_sent_again_blindly_and_the_post_can_be_found(rig: Rig) -> None:
    """After a 5xx the message may exist: the client does not repeat it (the core looks first, see
    test_exactly_once.py); the post's key travels in the message metadata, where `find` sees it."""
    rig.fake.fail("chat.postMessage", 500, after=True)
    since = datetime.now(UTC) - timedelta(seconds=5)
    post = Post(CHANNEL, "once", key="studybot-post-7")
    with pytest.raises(DeliveryError) as err:
        await rig.adapter.post(post)
    assert err.value.retryable and err.value.maybe_sent
    assert [a.status for a in rig.fake.calls("chat.postMessage")] == [500]
    ((channel, ts),) = rig.fake.messages
    assert rig.fake.messages[(channel, ts)]["metadata"] == {
        "event_type": "studybot_post",
        "event_payload": {"key": "studybot-post-7"},
    }
    assert await rig.adapter.find(post, since) == ts
    assert await rig.adapter.find(Post(CHANNEL, "once", key="studybot-post-8"), since) is None
    assert await rig.adapter.find(post, datetime.now(UTC) + timedelta(seconds=5)) is None  # only after `since`
    rig.fake.history_errors[CHANNEL] = "missing_scope"
    with pytest.raises(DeliveryError):
        await rig.adapter.find(post, since)


async def test_rate_limits_and_5xx_beyond_the_retries_are_retryable_delivery_errors(
    fake: FakeSlack, tmp_path: Path
) -> None:
    settings = slack_settings(fake, tmp_path)
    app = await build_app(settings)
    try:
        adapter = SlackAdapter(app.service, settings, http_port=0, rate_limit_retries=1, server_error_retries=1)
        fake.fail("chat.postMessage", 429, retry_after=0, times=5)
        with pytest.raises(DeliveryError) as err:
            await adapter.post(Post(CHANNEL, "hi"))
        assert err.value.retryable and err.value.retry_after == 0 and not err.value.forbidden
        assert len(fake.calls("chat.postMessage")) == 2 and not fake.messages

        fake.fail("chat.postMessage", 503, times=5)
        with pytest.raises(DeliveryError) as err:
            await adapter.post(Post(CHANNEL, "hi"))
        assert err.value.retryable and not err.value.forbidden
        assert len(fake.calls("chat.postMessage")) == 4 and not fake.messages
    finally:
        await app.close()


@pytest.mark.parametrize("error", ["not_in_channel", "channel_not_found", "missing_scope"])
async def test_no_access_to_the_channel_is_a_forbidden_delivery_error(rig: Rig, error: str) -> None:
    rig.fake.channel_errors["C0LOCKED"] = error
    with pytest.raises(DeliveryError) as err:
        await rig.adapter.post(Post("C0LOCKED", "hi", answer_buttons(1)))
    assert err.value.forbidden and not err.value.retryable
    with pytest.raises(DeliveryError) as err:
        await rig.adapter.edit("C0LOCKED", "1.2", "x", [Button("sb:ans:1:A", "A")])
    assert err.value.forbidden
    assert len(rig.fake.calls("chat.postMessage")) == 1  # no pointless retries


# ---------------------------------------------------------------- acks under load


async def test_acks_stay_fast_while_many_members_use_the_bot_at_once(rig: Rig) -> None:
    users = [f"U{i:04d}" for i in range(30)]
    for u in users:
        rig.fake.add_user(u, f"member{u}")
    results = await asyncio.gather(*(rig.command("quiz", user=u) for u in users))
    assert all((status, body) == (200, "") for _, status, body in results)
    quizzes = [(await rig.fake.responses_for(key))[0] for key, _, _ in results]
    clicks = []
    for u, quiz in zip(users, quizzes, strict=True):
        right = RIGHT[question_id(quiz["text"])]
        clicks.append(rig.click(next(b["action_id"] for b in buttons_of(quiz) if b["text"]["text"] == right), user=u))
    results = await asyncio.gather(*clicks)
    await rig.adapter.drain()
    assert await rig.scalar("SELECT COUNT(*) FROM answers WHERE correct = 1") == len(users)
    report("30 concurrent commands + 30 concurrent clicks over HTTP", rig.latencies)
    assert max(rig.latencies) < 3.0


# ---------------------------------------------------------------- lifecycle and wiring


async def test_a_rejected_bot_token_fails_start_up_loudly(fake: FakeSlack, tmp_path: Path) -> None:
    settings = slack_settings(fake, tmp_path, SLACK_BOT_TOKEN="xoxb-revoked")
    app = await build_app(settings)
    adapter = SlackAdapter(app.service, settings, http_port=0)
    try:
        with pytest.raises(SlackApiError, match="invalid_auth"):
            await adapter.run()
    finally:
        await adapter.close()
        await app.close()


async def test_make_frontends_picks_slack_when_configured(
    fake: FakeSlack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STUDYBOT_HTTP_PORT")  # the defaults are the subject here
    for socket in (False, True):
        settings = slack_settings(fake, tmp_path, socket=socket)
        app = await build_app(settings)
        try:
            [frontend] = make_frontends(app, console_user="me")
            assert isinstance(frontend, SlackAdapter) and frontend.platform == "slack"
            assert frontend.socket_mode is socket
            assert (frontend.http_host, frontend.http_port) == ("127.0.0.1", 3000)
        finally:
            await app.close()
    # Socket Mode needs no signing secret; HTTP does.
    settings = Settings(
        _env_file=None,
        STUDYBOT_DB=str(tmp_path / "x.db"),
        SLACK_BOT_TOKEN="xoxb-1",
        SLACK_APP_TOKEN="xapp-1",
    )
    assert settings.slack_enabled
    with pytest.raises(ValueError, match="SLACK_BOT_TOKEN"):
        SlackAdapter(None, Settings(_env_file=None, SLACK_SIGNING_SECRET="s"))  # type: ignore[arg-type]


# ---------------------------------------------------------------- Socket Mode


async def test_the_same_flows_work_over_socket_mode(fake: FakeSlack, tmp_path: Path) -> None:
    settings = slack_settings(fake, tmp_path, socket=True)
    app = await build_app(settings)
    adapter = SlackAdapter(app.service, settings)
    await adapter.start()
    app.gateways["slack"] = adapter
    runner = asyncio.create_task(adapter.run())
    latencies: list[float] = []

    async def envelope(kind: str, payload: dict[str, Any]) -> dict[str, Any]:
        ack, seconds = await fake.send_envelope(kind, payload)
        latencies.append(seconds)
        return ack

    try:
        assert adapter.port is None  # no HTTP listener in Socket Mode
        assert [c.token for c in fake.calls("apps.connections.open")] == [fake.app_token]
        # A command: acked over the websocket, answered through the response_url.
        ack = await envelope(
            "slash_commands", command_form(fake, "quiz", "s1", user=MEMBER, team=HOME, channel=CHANNEL)
        )
        assert ack["envelope_id"] and not ack.get("payload")
        quiz = (await fake.responses_for("s1"))[0]
        right = RIGHT[question_id(quiz["text"])]
        action_id = next(b["action_id"] for b in buttons_of(quiz) if b["text"]["text"] == right)
        # A double click over the websocket counts once.
        click = click_payload(fake, action_id, "s2", user=MEMBER, team=HOME, channel=CHANNEL)
        click_again = click_payload(fake, action_id, "s3", user=MEMBER, team=HOME, channel=CHANNEL)
        await asyncio.gather(envelope("interactive", click), envelope("interactive", click_again))
        texts = [(await fake.responses_for(k))[0]["text"] for k in ("s2", "s3")]
        assert sum("Correct" in t for t in texts) == 1 and sum("already answered" in t for t in texts) == 1
        # Public replies go to the channel; admin commands are refused to members.
        await envelope(
            "slash_commands", command_form(fake, "leaderboard", "s4", user=MEMBER, team=HOME, channel=CHANNEL)
        )
        board = (await fake.responses_for("s4"))[0]
        assert board["response_type"] == "in_channel" and "Mia (you)" in board["text"]
        await envelope(
            "slash_commands", command_form(fake, "schedule pause", "s5", user=MEMBER, team=HOME, channel=CHANNEL)
        )
        assert (await fake.responses_for("s5"))[0]["text"].startswith("Only admins")
        # Another workspace is refused in the ack itself.
        ack = await envelope(
            "slash_commands", command_form(fake, "quiz", "s6", user=BOB, team="T0OTHER", channel=CHANNEL)
        )
        assert "another Slack workspace" in ack["payload"]["text"]
        await adapter.drain()
        assert await app.store.run_sync(lambda c: c.execute("SELECT COUNT(*) FROM answers").fetchone()[0]) == 1
        assert await app.store.run_sync(lambda c: c.execute("SELECT COUNT(*) FROM members").fetchone()[0]) == 1
        # Slack asks clients to reconnect every few hours: the next envelope arrives on a new socket.
        await fake.ask_to_reconnect()
        await envelope(
            "slash_commands", command_form(fake, "path done 3", "s7", user=MEMBER, team=HOME, channel=CHANNEL)
        )
        assert "Step 3" in (await fake.responses_for("s7"))[0]["text"]
        assert fake.socket_connections == 2 and len(fake.calls("apps.connections.open")) == 2
        # The gateway works the same in Socket Mode.
        sent = await adapter.post(Post(CHANNEL, "**Daily**", answer_buttons(3)))
        assert fake.messages[(CHANNEL, sent.message_id)]["text"] == "*Daily*"
        report("Socket Mode envelopes", latencies)
        assert max(latencies) < 3.0
    finally:
        await adapter.close()
        await asyncio.wait_for(runner, 5)
        await app.close()


async def test_a_rejected_app_token_fails_socket_mode_start_up(fake: FakeSlack, tmp_path: Path) -> None:
    settings = slack_settings(fake, tmp_path, socket=True, SLACK_APP_TOKEN="xapp-wrong")
    app = await build_app(settings)
    adapter = SlackAdapter(app.service, settings)
    try:
        with pytest.raises(SlackApiError, match="invalid_auth"):
            await adapter.start()
    finally:
        await adapter.close()
        await app.close()


# ---------------------------------------------------------------- the manifest

#: The scope each Web API method the adapter calls needs (auth.test needs none).
SCOPES_BY_METHOD = {
    "auth_test": set(),
    "chat_postMessage": {"chat:write"},
    "chat_update": {"chat:write"},
    "chat_postEphemeral": {"chat:write"},
    "users_info": {"users:read"},
    "files_upload_v2": {"files:write"},
    "conversations_open": {"im:write"},
    "conversations_history": {"channels:history", "groups:history"},
    "views_publish": set(),  # the Home tab: Slack asks no scope for it, only the app_home_opened event
    "conversations_replies": {"channels:history", "groups:history"},
    "conversations_info": {"channels:read", "groups:read"},
    "views_open": set(),  # modals need no scope, only a trigger_id from the member's command or click
}


def test_the_manifest_asks_for_exactly_the_scopes_the_adapter_uses() -> None:
    root = Path(__file__).resolve().parents[1]
    manifest = yaml.safe_load((root / "slack-manifest.yaml").read_text(encoding="utf-8"))
    source = (root / "bot" / "adapters" / "slack_adapter.py").read_text(encoding="utf-8")
    # the one bot token's client, or the workspace's (many workspaces)
    called = set(re.findall(r"(?:self\.client|\bapi|\(api or self\.client\))\.(\w+)\(", source))
    assert called <= set(SCOPES_BY_METHOD), f"add the scope for {called - set(SCOPES_BY_METHOD)}"
    # files:read: fetching the file a member submits in the deck-import form (its url_private, not a method)
    needed = {"commands", "files:read"}.union(*(SCOPES_BY_METHOD[m] for m in called))
    assert set(manifest["oauth_config"]["scopes"]["bot"]) == needed == set(SCOPES)  # OAuth installs ask for these
    [command] = manifest["features"]["slash_commands"]
    assert command["command"] == "/study" and command["url"].endswith("/slack/events")
    assert manifest["settings"]["interactivity"]["is_enabled"] is True
    assert "app_home_opened" in manifest["settings"]["event_subscriptions"]["bot_events"]  # the Home tab
    assert manifest["features"]["app_home"]["home_tab_enabled"] is True
    assert manifest["settings"]["interactivity"]["request_url"].endswith("/slack/events")
    assert manifest["settings"]["socket_mode_enabled"] in (True, False)


# ---------------------------------------------------------------- names


EVIL_NAME = "<https://evil.example|Claim> *b* _i_ ~s~ `c` <!channel> @here #gen evil.example"


async def test_member_names_are_shown_as_text_never_as_links_formatting_or_mentions(rig: Rig) -> None:
    rig.fake.users[MEMBER].name = EVIL_NAME
    quiz = await rig.ask("quiz")
    right = RIGHT[question_id(quiz["text"])]
    action_id = next(b["action_id"] for b in buttons_of(quiz) if b["text"]["text"] == right)
    await rig.click(action_id)
    await rig.adapter.drain()
    board = await rig.ask("leaderboard all", user=BOB)
    assert board["response_type"] == "in_channel"
    z = "\u200b"
    shown = (
        f"&lt;https:{z}//evil.{z}example|Claim&gt; {z}*{z}b{z}*{z} {z}_{z}i{z}_{z} "
        f"{z}~{z}s{z}~{z} {z}`{z}c{z}`{z} &lt;!channel&gt; @{z}here #{z}gen evil.{z}example"
    )
    for text in (board["text"], board["blocks"][0]["text"]["text"]):
        assert f"🥇 {shown} — 1 pt" in text, text
        assert "<" not in text and ">" not in text  # no link, no <!channel>, no <@U…>
        assert "https://" not in text and "@here" not in text and "#gen " not in text
    assert board["text"].startswith("*Leaderboard — all time*")  # the core's own bold still converts
    progress = await rig.ask(f"progress {MEMBER}", user=BOB)
    assert f"*Progress — {shown}*" in progress["text"]


# ---------------------------------------------------------------- reminders


async def answer_one(rig: Rig, user: str) -> None:
    q = await rig.ask("quiz", user=user)
    [ids] = [[b["action_id"] for b in buttons_of(q)]]
    right = RIGHT[question_id(q["text"])]
    key, status, _ = await rig.click(next(i for i in ids if i.endswith(":" + right)), user=user)
    assert status == 200
    [done] = await rig.fake.responses_for(key)
    assert "Correct" in done["text"]


def tomorrow_at_19() -> datetime:
    return datetime.now(UTC).replace(hour=19, minute=0, second=0, microsecond=0) + timedelta(days=1)


async def test_a_reminder_arrives_in_the_app_dm_and_quiz_me_deals_a_question_there(rig: Rig) -> None:
    on = await rig.ask("remind on 19:00")
    assert "19:00 in UTC" in on["text"] and on["response_type"] == "ephemeral"
    await answer_one(rig, MEMBER)
    assert rig.app.reminders is not None
    report_ = await rig.app.reminders.run_due(tomorrow_at_19())
    assert len(report_.sent) == 1
    [_] = [c for c in rig.fake.delivered("chat.postMessage") if c.args.get("channel") == MEMBER]
    dm = rig.fake.messages[("D" + MEMBER, next(ts for (ch, ts) in rig.fake.messages if ch == "D" + MEMBER))]
    assert "streak" in dm["text"]
    [quiz_me] = [b["action_id"] for b in buttons_of(dm)]
    assert re.fullmatch(r"sb:quizme:\d+", quiz_me)
    assert (await rig.app.reminders.run_due(tomorrow_at_19() + timedelta(minutes=5))).sent == []
    key, status, _ = await rig.click(quiz_me, channel="D" + MEMBER)
    assert status == 200
    [question] = await rig.fake.responses_for(key)
    assert [b["action_id"].rsplit(":", 1)[1] for b in buttons_of(question)] == ["A", "B", "C", "D"]


async def test_a_closed_app_dm_turns_reminders_off_and_the_member_is_told(rig: Rig) -> None:
    await rig.ask("remind on", user=BOB)
    await answer_one(rig, BOB)
    rig.fake.closed_dms.add(BOB)
    assert rig.app.reminders is not None
    report_ = await rig.app.reminders.run_due(tomorrow_at_19())
    assert len(report_.blocked) == 1 and not report_.sent
    key, _, _ = await rig.command("tip", user=BOB)
    said = " ".join(r["text"] for r in await rig.fake.responses_for(key, count=2))
    assert "could not send you a reminder by direct message (Slack says" in said


# ---------------------------------------------------------------- the Home tab

#: Slack's limits on a published Home view (https://docs.slack.dev/reference/block-kit).
VIEW_LIMITS = {"blocks": 100, "section": 3000, "header": 150, "button": 75, "action_id": 255, "elements": 25}


def assert_valid_home(view: dict[str, Any]) -> None:
    """Fail unless ``view`` keeps Slack's limits for a Home tab view."""
    assert view["type"] == "home"
    blocks = view["blocks"]
    assert 0 < len(blocks) <= VIEW_LIMITS["blocks"]
    block_ids = [b["block_id"] for b in blocks if "block_id" in b]
    assert len(block_ids) == len(set(block_ids)), "block ids are unique"
    for block in blocks:
        assert block["type"] in ("header", "section", "divider", "actions", "context")
        if block["type"] == "header":
            assert block["text"]["type"] == "plain_text" and 0 < len(block["text"]["text"]) <= VIEW_LIMITS["header"]
        if block["type"] == "section":
            assert 0 < len(block["text"]["text"]) <= VIEW_LIMITS["section"]
        if block["type"] == "actions":
            assert 0 < len(block["elements"]) <= VIEW_LIMITS["elements"]
            for el in block["elements"]:
                assert 0 < len(el["text"]["text"]) <= VIEW_LIMITS["button"]
                assert len(el["action_id"]) <= VIEW_LIMITS["action_id"] and el["action_id"].startswith("sb:")


def home_text(view: dict[str, Any]) -> str:
    return "\n".join(b["text"]["text"] for b in view["blocks"] if b["type"] in ("section", "header"))


def home_buttons(view: dict[str, Any]) -> dict[str, str]:
    return {el["text"]["text"]: el["action_id"] for el in buttons_of(view)}


async def send_event(rig: Rig, event: dict[str, Any]) -> None:
    body = json.dumps(rig.fake.event(HOME, event))
    stamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": SignatureVerifier(SECRET).generate_signature(timestamp=stamp, body=body),
    }
    async with rig.session.post(rig.url, data=body.encode(), headers=headers) as resp:
        assert resp.status == 200


async def click_home(rig: Rig, action_id: str, user: str = MEMBER) -> None:
    """A button click on the Home tab: a ``view`` container, no channel and no response_url."""
    payload = click_payload(rig.fake, action_id, rig.key(), user=user, team=HOME, channel="")
    payload.pop("channel")
    payload.pop("response_url")
    payload["container"] = {"type": "view", "view_id": "V0HOME"}
    payload["view"] = {"id": "V0HOME", "type": "home"}
    status, _ = await rig.send(urlencode({"payload": json.dumps(payload)}))
    assert status == 200


async def published(rig: Rig, user: str, count: int) -> dict[str, Any]:
    await rig.fake.wait_for(lambda: rig.fake.home_publishes.get(user, 0) >= count)
    return rig.fake.home_views[user]


@pytest.fixture
async def home_rig(fake: FakeSlack, tmp_path: Path) -> AsyncIterator[Rig]:
    async with running_rig(fake, slack_settings(fake, tmp_path), home_debounce=0.5) as r:
        yield r


async def test_opening_the_home_tab_publishes_the_members_dashboard_within_slacks_limits(home_rig: Rig) -> None:
    rig = home_rig
    await send_event(rig, {"type": "app_home_opened", "user": MEMBER, "channel": "D0MEMBER", "tab": "home"})
    view = await published(rig, MEMBER, 1)
    assert_valid_home(view)
    text = home_text(view)
    for part in ("Streak", "freezes 0 of 2", "Answered 0", "Career path", "Reminders", "Off", "Leaderboard"):
        assert part in text, part
    assert set(home_buttons(view)) == {"Quiz me", "Turn on", "Hide me"}, "no Review now without due reviews"
    # The Messages tab opening publishes nothing.
    await send_event(rig, {"type": "app_home_opened", "user": MEMBER, "channel": "D0MEMBER", "tab": "messages"})
    await asyncio.sleep(0.2)
    assert rig.fake.home_publishes[MEMBER] == 1


async def test_the_home_tab_follows_answers_at_most_once_per_debounce_window(home_rig: Rig) -> None:
    rig = home_rig
    await send_event(rig, {"type": "app_home_opened", "user": MEMBER, "channel": "D0MEMBER", "tab": "home"})
    await published(rig, MEMBER, 1)
    for _ in range(3):  # three answers inside one window: one update, after the window
        await answer_one(rig, MEMBER)
    assert rig.fake.home_publishes[MEMBER] == 1, "not at once: the last publish is younger than the window"
    view = await published(rig, MEMBER, 2)
    assert "Answered 3" in home_text(view) and "1 day" in home_text(view)
    await asyncio.sleep(0.8)
    assert rig.fake.home_publishes[MEMBER] == 2, "one publish for the three answers"
    await answer_one(rig, MEMBER)  # the window has passed: at once
    view = await published(rig, MEMBER, 3)
    assert "Answered 4" in home_text(view)
    assert_valid_home(view)
    await asyncio.sleep(0.6)
    await rig.ask("quiz")
    await rig.ask("answer A")  # the text command moves it too
    view = await published(rig, MEMBER, 4)
    assert "Answered 5" in home_text(view)


async def test_home_tab_buttons_review_now_and_the_switches_work(home_rig: Rig) -> None:
    rig = home_rig
    await answer_one(rig, MEMBER)
    past = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    await rig.app.store.run_sync(lambda conn: conn.execute("UPDATE cards SET due = ?", (past,)))
    await send_event(rig, {"type": "app_home_opened", "user": MEMBER, "channel": "D0MEMBER", "tab": "home"})
    view = await published(rig, MEMBER, 1)
    assert "1 review due" in home_text(view)
    buttons = home_buttons(view)
    assert buttons["Review now"] == "sb:review-now"

    await click_home(rig, buttons["Review now"])
    await rig.fake.wait_for(lambda: any(ch == "D0MEMBER" for ch, _ in rig.fake.messages))
    [review] = [m for (ch, _), m in rig.fake.messages.items() if ch == "D0MEMBER"]
    assert "Review (1 review due)" in review["text"]
    assert [b["action_id"].rsplit(":", 1)[1] for b in buttons_of(review)] == ["A", "B", "C", "D"]

    await click_home(rig, buttons["Hide me"])
    view = await published(rig, MEMBER, 3)
    assert "Show me" in home_buttons(view) and "hidden" in home_text(view)
    assert await rig.scalar("SELECT leaderboard_hidden FROM members WHERE user_id = ?", MEMBER) == 1
    await click_home(rig, buttons["Turn on"])
    view = await published(rig, MEMBER, 4)
    assert "Turn off" in home_buttons(view) and "On: 19:00 in UTC" in home_text(view)
    assert rig.app.reminders is not None and await rig.app.reminders.next_wakeup() is not None
    await click_home(rig, home_buttons(view)["Turn off"])
    view = await published(rig, MEMBER, 5)
    assert "Turn on" in home_buttons(view)


def test_home_blocks_stay_within_slacks_limits_whatever_the_content() -> None:
    huge = HomeView(
        "studybot — " + "N" * 400,
        tuple(
            HomeSection(
                f"Heading {n}", "line of text " * 700, tuple(Button(f"sb:x{n}-{b}", "L" * 120) for b in range(30))
            )
            for n in range(60)
        ),
    )
    assert_valid_home({"type": "home", "blocks": home_blocks(huge)})


async def test_the_dashboard_is_served_on_slacks_http_server(fake: FakeSlack, tmp_path: Path) -> None:
    """HTTP mode: the dashboard shares Slack's listener (one port), and a link from `/study dashboard` in
    Slack opens there."""
    settings = slack_settings(fake, tmp_path)
    app = await build_app(settings)
    [adapter] = make_frontends(app, console_user="me")
    assert isinstance(adapter, SlackAdapter)
    adapter.http_host, adapter.http_port = "127.0.0.1", 0
    await serve_dashboard(app, [adapter])  # mounted, not a server of its own
    assert app.dashboard is not None and app.dashboard.base_url() is None  # not listening yet
    await adapter.start()
    app.gateways["slack"] = adapter
    runner = asyncio.create_task(adapter.run())
    try:
        async with aiohttp.ClientSession() as session:
            rig = Rig(fake, app, adapter, session)
            reply = await rig.ask("dashboard", user=ADMIN)
            link = re.search(r"(http://127\.0\.0\.1:(\d+))/dashboard/login/(\S+)", reply["text"])
            assert link and int(link.group(2)) == adapter.port, reply["text"]
            # A browser keeps the cookie of an IP-address host; aiohttp's client needs telling.
            async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
                r = await browser.post(f"{link.group(1)}/dashboard/login", data={"token": link.group(3)})
                assert r.status == 200 and "Overview" in await r.text()
            assert r.headers["X-Frame-Options"] == "DENY"
            refused = await rig.ask("dashboard", user=MEMBER)
            assert refused["text"].startswith("Only admins can use /study dashboard")
    finally:
        await adapter.close()
        await asyncio.wait_for(runner, 5)
        await app.close()


# ---------------------------------------------------------------- decks: a file through a form


def file_submission(rig: Rig, meta: str, files: list[dict[str, Any]], *, user: str = ADMIN) -> dict[str, Any]:
    """A ``view_submission`` payload for the file form, as Slack sends it."""
    return {
        "type": "view_submission",
        "team": {"id": HOME, "domain": "home"},
        "user": {"id": user, "username": user.lower(), "name": user.lower(), "team_id": HOME},
        "api_app_id": "A0STUDY",
        "token": "legacy-verification-token",
        "trigger_id": "trigger-view",
        "view": {
            "id": "V1",
            "type": "modal",
            "callback_id": "sb-file",
            "private_metadata": meta,
            "hash": "1700000000.abc",
            "state": {"values": {"file": {"file": {"type": "file_input", "files": files}}}},
        },
    }


DECK_CSV = (
    b"prompt,A,B,C,D,answer,explanation,topic,difficulty\n"
    b"What does a burndown chart show <!channel>?,Work left over time,Team mood,Budget spent,Bug count,A,"
    b"It plots the work remaining against the days left in the sprint.,agile,1\n"
)


async def test_deck_import_asks_for_the_file_in_a_form_then_dry_runs_and_confirms(rig: Rig) -> None:
    made = await rig.ask("deck create mine Our own", user=ADMIN)
    assert "Deck *mine* created" in made["text"], made["text"]
    key, status, _ = await rig.command("deck import mine", user=ADMIN)
    assert status == 200
    opened = await rig.fake.wait_for(lambda: rig.fake.views or None)
    view = opened[0]
    assert view["trigger_id"] == f"trigger-{key}" and view["callback_id"] == "sb-file"
    assert view["blocks"][0]["element"]["type"] == "file_input"
    # The member picks the file and submits: the modal closes at once, the dry run comes privately.
    payload = file_submission(rig, view["private_metadata"], [rig.fake.host_file("mine.csv", DECK_CSV)])
    status, body = await rig.send(urlencode({"payload": json.dumps(payload)}))
    assert status == 200 and body == ""
    dry = await rig.fake.wait_for(lambda: next((e for e in rig.fake.ephemeral if "Dry run" in e["text"]), None))
    assert "1 new, 0 changed, 0 problems" in dry["text"] and dry["user"] == ADMIN and dry["channel"] == CHANNEL
    assert await rig.scalar("SELECT COUNT(*) FROM deck_items") == 0
    confirm = next(b["action_id"] for b in buttons_of(dry) if b["action_id"].startswith("sb:dimp:"))
    key, _, _ = await rig.click(confirm, user=ADMIN)
    (done,) = await rig.fake.responses_for(key)
    assert "Imported: 1 new" in done["text"]
    quiz = await rig.ask("quiz mine")
    assert "burndown chart show &lt;!channel&gt;?" in quiz["text"], quiz["text"]  # escaped: never a ping


async def test_a_file_over_the_limit_is_not_fetched(rig: Rig) -> None:
    await rig.ask("deck create mine", user=ADMIN)
    meta = json.dumps({"channel": CHANNEL, "text": "deck import mine"})
    big = rig.fake.host_file("big.csv", b"x", size=11_000_000)  # past every format's limit (Anki's is 10 MB)
    status, _ = await rig.send(urlencode({"payload": json.dumps(file_submission(rig, meta, [big]))}))
    assert status == 200
    said = await rig.fake.wait_for(lambda: next((e for e in rig.fake.ephemeral if "limit" in e["text"]), None))
    assert "11,000,000 bytes" in said["text"] and rig.fake.downloads == []


async def test_an_anki_package_over_a_megabyte_is_fetched_whole_and_dry_run(rig: Rig) -> None:
    """Anki files may be up to 10 MB: the adapter must not stop reading at YAML/CSV/JSON's 1 MB."""
    await rig.ask("deck create mine", user=ADMIN)
    meta = json.dumps({"channel": CHANNEL, "text": "deck import mine"})
    hosted = rig.fake.host_file("big.apkg", anki_package_of(2_000_000))
    status, _ = await rig.send(urlencode({"payload": json.dumps(file_submission(rig, meta, [hosted]))}))
    assert status == 200
    dry = await rig.fake.wait_for(lambda: next((e for e in rig.fake.ephemeral if "Dry run" in e["text"]), None))
    assert "4 new" in dry["text"], dry["text"]


async def test_a_member_cannot_import_through_a_crafted_form(rig: Rig) -> None:
    await rig.ask("deck create mine", user=ADMIN)
    meta = json.dumps({"channel": CHANNEL, "text": "deck import mine"})
    payload = file_submission(rig, meta, [rig.fake.host_file("mine.csv", DECK_CSV)], user=MEMBER)
    await rig.send(urlencode({"payload": json.dumps(payload)}))
    said = await rig.fake.wait_for(lambda: next((e for e in rig.fake.ephemeral if "Only admins" in e["text"]), None))
    assert said["user"] == MEMBER
    assert await rig.scalar("SELECT COUNT(*) FROM deck_imports") == 0


async def test_a_file_slack_will_not_hand_over_is_reported_not_imported(rig: Rig) -> None:
    await rig.ask("deck create mine", user=ADMIN)
    meta = json.dumps({"channel": CHANNEL, "text": "deck import mine"})
    hosted = rig.fake.host_file("mine.csv", DECK_CSV)
    del rig.fake.hosted[hosted["id"]]  # the download fails (gone, or no files:read scope)
    await rig.send(urlencode({"payload": json.dumps(file_submission(rig, meta, [hosted]))}))
    said = await rig.fake.wait_for(lambda: next((e for e in rig.fake.ephemeral if "be read" in e["text"]), None))
    assert "empty or could not be read" in said["text"]
    assert await rig.scalar("SELECT COUNT(*) FROM deck_imports") == 0
