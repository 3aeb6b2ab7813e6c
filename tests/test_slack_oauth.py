"""Slack installed in many workspaces: slack-bolt's real OAuth flow (``/slack/install`` →
``/slack/oauth_redirect`` → ``oauth.v2.access``) over loopback against `tests/fake_slack.py`, with the
installations and OAuth states in our own database. Nothing in slack-bolt or slack-sdk is patched."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
from slack_sdk.signature import SignatureVerifier

from bot.adapters.slack_adapter import NOT_INSTALLED_TEXT, SlackAdapter
from bot.adapters.slack_oauth import DbInstallationStore, DbStateStore
from bot.bootstrap import App, build_app, make_frontends
from bot.config import Settings, SettingsError, load_settings
from bot.core.ports import InstallStore
from bot.logs import setup_logging
from bot.scheduling import Scheduler
from bot.storage import ManagedStore, installs_for, schedules_for
from tests.conftest import FIXTURE_PACK, FakeClock, read_rows
from tests.fake_slack import FakeSlack, User

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
ACME, GLOBEX, INITECH = "T0ACME", "T0GLOBEX", "T0INITECH"
CHANNELS = {ACME: "C0ACMEGEN", GLOBEX: "C0GLOBEXGEN", INITECH: "C0INITECH"}
ADMINS = {ACME: "U0ACMEADA", GLOBEX: "U0GLOBEXGUS", INITECH: "U0INITECHIVY"}


def oauth_settings(fake: FakeSlack, tmp_path: Path, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "STUDYBOT_DB": str(tmp_path / "slack.db"),
        "STUDYBOT_CONTENT": str(FIXTURE_PACK),
        "SLACK_CLIENT_ID": fake.client_id,
        "SLACK_CLIENT_SECRET": fake.client_secret,
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_API_URL": fake.api_url,
    }
    values.update(extra)
    return Settings(_env_file=None, **values)


@dataclass
class Rig:
    fake: FakeSlack
    app: App
    adapter: SlackAdapter
    session: aiohttp.ClientSession
    store: InstallStore
    n: int = 0
    statuses: list[int] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.adapter.port}"

    async def start_install(self) -> tuple[str, str]:
        """GET /slack/install like a browser: (the authorize URL on the page, the state in the cookie)."""
        async with self.session.get(f"{self.base}/slack/install") as resp:
            assert resp.status == 200
            page = await resp.text()
            cookie = resp.headers["Set-Cookie"]
        url = re.search(r'href="(https://slack\.com/oauth/v2/authorize\?[^"]+)"', page)
        state = re.match(r"slack-app-oauth-state=([^;]+);", cookie)
        assert url and state, (page, cookie)
        return url.group(1).replace("&amp;", "&"), state.group(1)

    async def redirect(self, code: str, state: str, cookie: str | None = None) -> tuple[int, str]:
        """Slack sends the installer's browser back to /slack/oauth_redirect with the code and state."""
        headers = {"Cookie": f"slack-app-oauth-state={cookie if cookie is not None else state}"}
        query = urlencode({"code": code, "state": state})
        async with self.session.get(f"{self.base}/slack/oauth_redirect?{query}", headers=headers) as resp:
            return resp.status, await resp.text()

    async def install(self, team: str) -> None:
        _, state = await self.start_install()
        status, page = await self.redirect(self.fake.authorize(team), state)
        assert status == 200, page

    async def post_signed(self, body: str, content_type: str) -> tuple[int, str]:
        stamp = str(int(time.time()))
        headers = {
            "Content-Type": content_type,
            "X-Slack-Request-Timestamp": stamp,
            "X-Slack-Signature": SignatureVerifier(SECRET).generate_signature(timestamp=stamp, body=body),
        }
        async with self.session.post(f"{self.base}/slack/events", data=body.encode(), headers=headers) as resp:
            return resp.status, await resp.text()

    async def command(self, team: str, text: str, *, user: str | None = None) -> dict[str, Any]:
        """A /study command from a workspace; returns the first reply on its response_url."""
        self.n += 1
        key = f"{team}-{self.n}"
        form = {
            "team_id": team,
            "team_domain": team.lower(),
            "channel_id": CHANNELS[team],
            "channel_name": "general",
            "user_id": user or ADMINS[team],
            "user_name": "someone",
            "command": "/study",
            "text": text,
            "api_app_id": "A0STUDY",
            "is_enterprise_install": "false",
            "response_url": self.fake.response_url(key),
            "trigger_id": f"trigger-{key}",
        }
        status, body = await self.post_signed(urlencode(form), "application/x-www-form-urlencoded")
        self.statuses.append(status)
        if status != 200 or body:
            return {"status": status, "text": body}
        return (await self.fake.responses_for(key))[0]

    async def event(self, team: str, event: dict[str, Any]) -> int:
        status, _ = await self.post_signed(json.dumps(self.fake.event(team, event)), "application/json")
        await self.adapter.drain()
        return status

    async def installed(self) -> dict[str, str]:
        """team id -> bot token, read from the database."""
        out = {}
        for team in (ACME, GLOBEX, INITECH):
            data = await self.store.find_installation("slack", team)
            if data is not None:
                out[team] = json.loads(data)["bot_token"]
        return out


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    f = FakeSlack()
    await f.start()
    for team, name in ((ACME, "Acme"), (GLOBEX, "Globex"), (INITECH, "Initech")):
        f.add_workspace(team, name, installer=ADMINS[team])
        f.users[ADMINS[team]] = User(ADMINS[team], f"Admin of {name}", is_admin=True, team_id=team)
    yield f
    await f.stop()


@pytest.fixture
def database(store_kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> dict[str, str]:
    """The bot's database settings: a SQLite file, or a fresh database on the test PostgreSQL server
    (the flow runs on both: the `store_kind` fixture parametrizes it, see tests/conftest.py)."""
    if store_kind == "sqlite":
        return {"STUDYBOT_DB": str(tmp_path / "slack.db")}
    cluster = request.getfixturevalue("pg")
    return {"STUDYBOT_DATABASE_URL": cluster.create_database(template=request.getfixturevalue("pg_template"))}


@pytest.fixture
async def rig(fake: FakeSlack, tmp_path: Path, database: dict[str, str]) -> AsyncIterator[Rig]:
    app = await build_app(oauth_settings(fake, tmp_path, **database), clock=FakeClock())
    store = installs_for(app.store)
    adapter = SlackAdapter(app.service, app.settings, http_host="127.0.0.1", http_port=0, installations=store)
    await adapter.start()
    app.gateways["slack"] = adapter
    runner = asyncio.create_task(adapter.run())
    try:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
            yield Rig(fake, app, adapter, session, store)
    finally:
        await adapter.close()
        await asyncio.wait_for(runner, 5)
        await app.close()


def tokens_of(fake: FakeSlack, method: str) -> list[str | None]:
    return [r.token for r in fake.calls(method)]


# ---------------------------------------------------------------- installing


async def test_two_workspaces_install_and_each_is_answered_with_its_own_token(rig: Rig, fake: FakeSlack) -> None:
    url, _ = await rig.start_install()
    assert f"client_id={fake.client_id}" in url
    assert "scope=commands,chat:write,users:read,files:write,im:write" in url.replace("%2C", ",").replace("%3A", ":")

    await rig.install(ACME)
    await rig.install(GLOBEX)
    acme_token, globex_token = fake.workspaces[ACME].bot_token, fake.workspaces[GLOBEX].bot_token
    assert await rig.installed() == {ACME: acme_token, GLOBEX: globex_token}
    exchanges = fake.calls("oauth.v2.access")
    assert [r.status for r in exchanges] == [200, 200] and all(r.token is None for r in exchanges)

    for team, token in ((ACME, acme_token), (GLOBEX, globex_token)):
        before = len(fake.requests)
        reply = await rig.command(team, "quiz")
        assert "test question" in reply["text"] and reply["response_type"] == "ephemeral"
        await rig.adapter.drain()
        used = {r.token for r in fake.requests[before:] if r.kind == "api"}
        assert used == {token}, f"{team} was served with {used}"
    groups = await read_rows(rig.app.store, "SELECT external_id FROM groups WHERE platform = 'slack' ORDER BY 1")
    assert groups == [(ACME,), (GLOBEX,)]


async def test_a_workspace_that_never_installed_is_refused_and_nothing_is_stored(rig: Rig, fake: FakeSlack) -> None:
    await rig.install(ACME)
    reply = await rig.command(INITECH, "quiz")
    assert reply["text"] == NOT_INSTALLED_TEXT, reply
    assert await read_rows(rig.app.store, "SELECT COUNT(*) FROM groups") == [(0,)]


async def test_scheduled_posts_go_out_in_each_workspace_with_its_own_token(rig: Rig, fake: FakeSlack) -> None:
    await rig.install(ACME)
    await rig.install(GLOBEX)
    for team in (ACME, GLOBEX):
        reply = await rig.command(team, "schedule set 12:30 tz UTC kind question")
        assert "12:30" in reply["text"], reply
    clock = rig.app.clock
    assert isinstance(clock, FakeClock)
    scheduler = Scheduler(schedules_for(rig.app.store), rig.app.service, rig.app.gateways, clock, rig.app.settings)
    clock.advance(minutes=31)
    report = await scheduler.run_due(clock.now())
    assert len(report.sent) == 2
    posts = {r.args["channel"]: r.token for r in fake.delivered("chat.postMessage")}
    assert posts == {
        CHANNELS[ACME]: fake.workspaces[ACME].bot_token,
        CHANNELS[GLOBEX]: fake.workspaces[GLOBEX].bot_token,
    }


# ---------------------------------------------------------------- forged and replayed state


async def test_a_forged_state_is_refused_and_nothing_is_stored(rig: Rig, fake: FakeSlack) -> None:
    code = fake.authorize(ACME)
    status, page = await rig.redirect(code, "forged-state-value")  # the cookie matches: only the store can tell
    assert status == 401 and "install" in page.lower()
    _, state = await rig.start_install()
    status, _ = await rig.redirect(code, state, cookie="someone-elses-state")  # not the browser that began
    assert status == 400
    assert fake.calls("oauth.v2.access") == [] and await rig.installed() == {}
    # The real state still works once: the refusals did not use it up.
    assert (await rig.redirect(fake.authorize(ACME), state))[0] == 200
    assert list(await rig.installed()) == [ACME]


async def test_a_replayed_state_is_refused_and_installs_nothing(rig: Rig, fake: FakeSlack) -> None:
    _, state = await rig.start_install()
    assert (await rig.redirect(fake.authorize(ACME), state))[0] == 200
    status, _ = await rig.redirect(fake.authorize(GLOBEX), state)  # the same redirect again, a new code
    assert status == 401
    assert len(fake.calls("oauth.v2.access")) == 1 and list(await rig.installed()) == [ACME]


async def test_a_state_expires_and_each_is_good_once(store: ManagedStore) -> None:
    now = [datetime(2026, 11, 27, 12, 0, tzinfo=UTC)]
    states = DbStateStore(installs_for(store), now=lambda: now[0])
    fresh, old = await states.async_issue(), await states.async_issue()
    assert fresh != old and len(fresh) >= 40
    now[0] += timedelta(seconds=599)
    assert await states.async_consume(fresh) is True
    assert await states.async_consume(fresh) is False
    now[0] += timedelta(seconds=2)  # 601 s after it was issued
    assert await states.async_consume(old) is False
    assert await states.async_consume("") is False and await states.async_consume("x" * 500) is False
    assert await read_rows(store, "SELECT COUNT(*) FROM oauth_states") == [(0,)]


# ---------------------------------------------------------------- uninstalling


async def test_uninstalling_deletes_that_workspace_only_and_its_posts_stop(rig: Rig, fake: FakeSlack) -> None:
    await rig.install(ACME)
    await rig.install(GLOBEX)
    await rig.command(ACME, "schedule set 12:30 tz UTC")
    fake.revoke(ACME)  # Slack ends the token, then tells the app
    assert await rig.event(ACME, {"type": "app_uninstalled"}) == 200
    assert list(await rig.installed()) == [GLOBEX]

    reply = await rig.command(ACME, "quiz")
    assert reply["text"] == NOT_INSTALLED_TEXT
    assert (await rig.command(GLOBEX, "help"))["text"]  # the other workspace carries on

    clock = rig.app.clock
    assert isinstance(clock, FakeClock)
    scheduler = Scheduler(schedules_for(rig.app.store), rig.app.service, rig.app.gateways, clock, rig.app.settings)
    clock.advance(minutes=31)
    report = await scheduler.run_due(clock.now())
    assert report.sent == [] and fake.calls("chat.postMessage") == []
    [(paused, reason)] = await read_rows(rig.app.store, "SELECT paused, paused_reason FROM schedules")
    assert paused and "not installed" in reason


async def test_a_revoked_bot_token_deletes_the_installation(rig: Rig, fake: FakeSlack) -> None:
    await rig.install(ACME)
    await rig.install(GLOBEX)
    fake.revoke(GLOBEX)
    assert await rig.event(GLOBEX, {"type": "tokens_revoked", "tokens": {"bot": ["U0BOTT0GLOBEX"]}}) == 200
    assert list(await rig.installed()) == [ACME]


# ---------------------------------------------------------------- secrets and settings


@pytest.fixture
def redacting_logs() -> Iterator[None]:
    factory = logging.getLogRecordFactory()
    yield
    logging.setLogRecordFactory(factory)


async def test_tokens_and_the_client_secret_never_reach_the_logs(
    rig: Rig, fake: FakeSlack, caplog: pytest.LogCaptureFixture, redacting_logs: None
) -> None:
    setup_logging("DEBUG", "text", rig.app.settings.secrets())
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("slack_sdk").setLevel(logging.DEBUG)
        logging.getLogger("slack_bolt").setLevel(logging.DEBUG)
        await rig.install(ACME)
        await rig.command(ACME, "quiz")
        await rig.adapter.drain()
        logging.getLogger("test").warning("a stray %s", "xoxe-1-refresh-token-from-somewhere")
    text = caplog.text
    assert "oauth.v2.access" in text or "oauth_redirect" in text or "installed in workspace" in text  # logs did flow
    for secret in (fake.workspaces[ACME].bot_token, fake.client_secret, "xoxe-1-refresh"):
        assert secret not in text


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SLACK_CLIENT_ID": "1.2"}, "SLACK_CLIENT_ID and SLACK_CLIENT_SECRET go together"),
        (
            {
                "SLACK_CLIENT_ID": "1.2",
                "SLACK_CLIENT_SECRET": "c" * 32,
                "SLACK_BOT_TOKEN": "xoxb-1",
                "SLACK_SIGNING_SECRET": "s" * 32,
            },
            "set SLACK_BOT_TOKEN (one workspace) or SLACK_CLIENT_ID and SLACK_CLIENT_SECRET (many workspaces",
        ),
        (
            {"SLACK_CLIENT_ID": "1.2", "SLACK_CLIENT_SECRET": "c" * 32},
            "many workspaces (SLACK_CLIENT_ID) are served over HTTP: set SLACK_SIGNING_SECRET",
        ),
        (
            {
                "SLACK_CLIENT_ID": "1.2",
                "SLACK_CLIENT_SECRET": "c" * 32,
                "SLACK_SIGNING_SECRET": "s" * 32,
                "SLACK_APP_TOKEN": "xapp-1",
            },
            "leave SLACK_APP_TOKEN unset",
        ),
        ({"SLACK_REDIRECT_URI": "bot.example.org/slack/oauth_redirect"}, "SLACK_REDIRECT_URI: must be the https URL"),
    ],
)
def test_bad_many_workspace_settings_are_one_line_errors_without_secrets(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as err:
        load_settings(_env_file=None, **env)
    text = str(err.value)
    assert message in text and "\n" not in text and "c" * 32 not in text and "s" * 32 not in text


async def test_make_frontends_serves_many_workspaces_from_the_database(fake: FakeSlack, tmp_path: Path) -> None:
    app = await build_app(oauth_settings(fake, tmp_path))
    try:
        [adapter] = make_frontends(app, console_user="me")
        assert isinstance(adapter, SlackAdapter) and adapter.oauth
        assert isinstance(adapter.installation_store, DbInstallationStore)
        assert app.settings.slack_client_secret is not None
        assert app.settings.slack_client_secret.get_secret_value() in app.settings.secrets()
    finally:
        await app.close()


def test_slack_tokens_are_redacted_by_their_shape_even_when_not_configured() -> None:
    from bot.logs import RedactingFilter

    scrub = RedactingFilter([]).scrub
    line = "bot xoxb-1-2-abcDEF refresh xoxe-1-ABCdef rotated xoxe.xoxb-1-MTIz app xapp-1-A0-12 xoxo, xox-ish"
    assert scrub(line) == ("bot [redacted] refresh [redacted] rotated [redacted] app [redacted] xoxo, xox-ish")


# ---------------------------------------------------------------- the store (the InstallStore port)


async def test_the_install_store_keeps_one_installation_per_workspace(store: ManagedStore) -> None:
    installs = installs_for(store)
    now = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    assert await installs.find_installation("slack", ACME) is None
    await installs.save_installation("slack", ACME, '{"bot_token": "one"}', now)
    await installs.save_installation("slack", GLOBEX, '{"bot_token": "two"}', now)
    await installs.save_installation("slack", ACME, '{"bot_token": "three"}', now + timedelta(hours=1))  # reinstall
    assert await installs.find_installation("slack", ACME) == '{"bot_token": "three"}'
    assert await installs.delete_installation("slack", ACME) is True
    assert await installs.delete_installation("slack", ACME) is False
    assert await installs.find_installation("slack", ACME) is None
    assert await installs.find_installation("slack", GLOBEX) == '{"bot_token": "two"}'

    await installs.issue_oauth_state("s1", now + timedelta(minutes=10))
    assert await installs.consume_oauth_state("s1", now + timedelta(minutes=10)) is False  # expired at that instant
    await installs.issue_oauth_state("s2", now + timedelta(minutes=10))
    assert await installs.consume_oauth_state("s2", now) is True
    assert await installs.consume_oauth_state("s2", now) is False


async def test_rotating_tokens_are_refreshed_through_our_api_url_and_kept(rig: Rig, fake: FakeSlack) -> None:
    """With token rotation on, a token about to expire is refreshed (once per use here: it lives 60 s, less
    than the 2 h margin) for commands and for scheduled posts, and the newest one is stored."""
    fake.workspaces[ACME].expires_in = 60
    await rig.install(ACME)
    first = fake.workspaces[ACME].bot_token
    stored = json.loads(await rig.store.find_installation("slack", ACME) or "{}")
    assert stored["bot_token"] == first and stored["bot_refresh_token"].startswith("xoxe-1-")

    reply = await rig.command(ACME, "schedule set 12:30 tz UTC")
    assert "12:30" in reply["text"], reply
    second = fake.workspaces[ACME].bot_token
    assert second != first and first in fake.revoked
    assert json.loads(await rig.store.find_installation("slack", ACME) or "{}")["bot_token"] == second

    clock = rig.app.clock
    assert isinstance(clock, FakeClock)
    scheduler = Scheduler(schedules_for(rig.app.store), rig.app.service, rig.app.gateways, clock, rig.app.settings)
    clock.advance(minutes=31)
    assert len((await scheduler.run_due(clock.now())).sent) == 1
    third = fake.workspaces[ACME].bot_token
    assert [r.token for r in fake.delivered("chat.postMessage")] == [third] and third != second
    assert json.loads(await rig.store.find_installation("slack", ACME) or "{}")["bot_token"] == third
    refreshes = [r for r in fake.calls("oauth.v2.access") if r.args.get("grant_type") == "refresh_token"]
    # The command, the permission check `schedule set` runs with the workspace's token, and the post.
    assert len(refreshes) == 3 and all(r.status == 200 for r in refreshes)
