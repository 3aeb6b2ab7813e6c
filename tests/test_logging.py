"""Logs are readable text or JSON lines, and no token or secret value ever appears in them."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiohttp import web

from bot.logs import REDACTED, RedactingFilter, setup_logging

ROOT = Path(__file__).resolve().parents[1]
PACK = ROOT / "tests" / "fixtures" / "pack"

DISCORD = "MTAxNjQ4.fake-discord-token.Zq9XrT0"
SLACK_BOT = "xoxb-1111-2222-fakeslackbottoken"
SLACK_SECRET = "f4k3s1gn1ngs3cr3t0123456789abcd"
SLACK_APP = "xapp-1-A0FAKE-3333-fakeapptoken"
SECRETS = [DISCORD, SLACK_BOT, SLACK_SECRET, SLACK_APP]

log = logging.getLogger("tests.logging")


def leaked(text: str) -> list[str]:
    return [s for s in SECRETS if s in text]


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    factory, hook, thread_hook = logging.getLogRecordFactory(), sys.excepthook, threading.excepthook
    yield
    setup_logging("WARNING", "text", ())  # puts the plain record factory back
    for h in list(root.handlers):
        if h not in handlers:
            root.removeHandler(h)
    root.setLevel(level)
    logging.setLogRecordFactory(factory)
    sys.excepthook, threading.excepthook = hook, thread_hook


def exercise() -> None:
    log.info("starting with token %s", DISCORD)
    log.debug(f"slack bot token inline: {SLACK_BOT}")
    log.warning("settings: %r", {"app_token": SLACK_APP})
    try:
        raise RuntimeError(f"login failed for {SLACK_APP} / {SLACK_SECRET}")
    except RuntimeError:
        log.exception("an error with a secret in its message")


def test_text_is_readable_and_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("DEBUG", "text", SECRETS)
    exercise()
    err = capsys.readouterr().err
    assert not leaked(err), err
    assert err.count(REDACTED) >= 5
    assert " INFO    tests.logging: starting with token [redacted]" in err
    assert "Traceback (most recent call last)" in err and "RuntimeError: login failed for [redacted]" in err


def test_json_lines_are_json_and_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("DEBUG", "json", SECRETS)
    exercise()
    err = capsys.readouterr().err
    assert not leaked(err), err
    records = [json.loads(line) for line in err.splitlines()]
    assert [r["level"] for r in records] == ["INFO", "DEBUG", "WARNING", "ERROR"]
    assert records[0]["msg"] == "starting with token [redacted]" and records[0]["logger"] == "tests.logging"
    assert "RuntimeError: login failed for [redacted] / [redacted]" in records[3]["exc"]


def test_the_url_quoted_form_is_redacted_too() -> None:
    secret = "abc/def+ghi=jkl"
    f = RedactingFilter([secret])
    assert f.scrub("token=abc%2Fdef%2Bghi%3Djkl&x=1") == f"token={REDACTED}&x=1"
    assert f.scrub(secret) == REDACTED


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (
            "connecting to postgresql://bot:s3cr3t-pw@db.example:5432/study",
            "connecting to postgresql://bot:[redacted]@db.example:5432/study",
        ),
        ("url='postgres://bot:p@ss:w/rd@10.0.0.5/x' failed", "url='postgres://bot:[redacted]@10.0.0.5/x' failed"),
        (
            "two: postgresql://a:xyz123@h1/d and postgresql://b:uvw456@h2/d",
            "two: postgresql://a:[redacted]@h1/d and postgresql://b:[redacted]@h2/d",
        ),
        (
            "no password: postgresql://bot@h/d, sqlite:///data/studybot.db",
            "no password: postgresql://bot@h/d, sqlite:///data/studybot.db",
        ),
        ("https://slack.com/api/ and mail bob@example.com", "https://slack.com/api/ and mail bob@example.com"),
    ],
)
def test_the_password_in_any_url_is_redacted(text: str, shown: str) -> None:
    assert RedactingFilter([]).scrub(text) == shown


def test_a_database_url_password_never_reaches_the_log(capsys: pytest.CaptureFixture[str]) -> None:
    """No secrets configured at all (the console): a URL's password is still kept out, tracebacks too."""
    setup_logging("INFO", "json", ())
    url = "postgresql://studybot:Tr0ub4dor-and-3@127.0.0.1:5432/studybot"
    log.warning("database %s", url)
    try:
        raise ConnectionError(f"could not connect to {url}")
    except ConnectionError:
        log.exception("start failed")
    err = capsys.readouterr().err
    assert "Tr0ub4dor-and-3" not in err
    assert err.count("postgresql://studybot:[redacted]@127.0.0.1:5432/studybot") == 2  # the message, the exception


def test_a_handler_a_library_adds_itself_is_covered(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("INFO", "text", SECRETS)
    own = io.StringIO()
    lib = logging.getLogger("discord.fake")
    handler = logging.StreamHandler(own)
    lib.addHandler(handler)
    try:
        lib.warning("gateway said: %s", DISCORD)
        try:
            raise ValueError(DISCORD)
        except ValueError:
            lib.error("boom", exc_info=True)
    finally:
        lib.removeHandler(handler)
    assert not leaked(own.getvalue() + capsys.readouterr().err)
    assert REDACTED in own.getvalue()


def test_uncaught_exceptions_are_logged_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("INFO", "text", SECRETS)
    try:
        raise KeyError(f"no such token {SLACK_BOT}")
    except KeyError as e:
        sys.excepthook(type(e), e, e.__traceback__)

    def crash() -> None:
        raise OSError(f"connect failed with {SLACK_APP}")

    t = threading.Thread(target=crash, name="crasher")
    t.start()
    t.join()
    err = capsys.readouterr().err
    assert not leaked(err), err
    assert "CRITICAL studybot: unhandled error" in err and "unhandled error in thread crasher" in err


# ---------------------------------------------------------------- failed logins through the real libraries


@pytest.fixture
async def echo_server() -> AsyncIterator[str]:
    """A loopback API that rejects every token and, like a careless proxy, quotes it in the error body."""

    async def reject(request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization", "")
        form = await request.post() if request.method == "POST" else {}
        body = {"ok": False, "error": "invalid_auth", "code": 0, "message": f"401: Unauthorized ({auth} {dict(form)})"}
        status = 401 if request.path.startswith("/discord") else 200
        return web.Response(status=status, text=json.dumps(body), content_type="application/json")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", reject)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def test_failed_logins_leak_no_token(
    echo_server: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import discord
    from slack_sdk.errors import SlackApiError
    from slack_sdk.web.async_client import AsyncWebClient

    setup_logging("DEBUG", "json", SECRETS)
    # Library debug logging on, as an operator chasing a login problem would do.
    for name in ("slack_sdk", "discord"):
        monkeypatch.setattr(logging.getLogger(name), "level", logging.DEBUG)

    slack = AsyncWebClient(token=SLACK_BOT, base_url=f"{echo_server}/slack/api/")
    with pytest.raises(SlackApiError) as slack_error:
        await slack.auth_test()
    assert SLACK_BOT in str(slack_error.value), "the fake does quote the token back"
    log.error("Slack login failed: %s", slack_error.value, exc_info=slack_error.value)

    monkeypatch.setattr(discord.http.Route, "BASE", f"{echo_server}/discord/api/v10")
    client = discord.Client(intents=discord.Intents.none())
    try:
        with pytest.raises(discord.LoginFailure) as discord_error:
            await client.login(DISCORD)
        log.error("Discord login failed", exc_info=discord_error.value)
    finally:
        await client.close()

    err = capsys.readouterr().err
    assert not leaked(err), err
    records = [json.loads(line) for line in err.splitlines()]
    failures = [r for r in records if r["msg"].endswith("login failed") or "login failed:" in r["msg"]]
    assert len(failures) == 2 and all(REDACTED in r["msg"] + r.get("exc", "") for r in failures)


# ---------------------------------------------------------------- the real process


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_the_bot_process_never_prints_a_secret(fmt: str, tmp_path: Path) -> None:
    # The database folder's name holds a token, so the start-up log line naming it must be redacted.
    db = tmp_path / f"data-{SLACK_BOT}" / "s.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STUDYBOT_", "DISCORD_", "SLACK_"))}
    env |= {
        "SLACK_BOT_TOKEN": SLACK_BOT,  # without a signing secret or app token Slack stays off: the console runs
        "STUDYBOT_CONTENT": str(PACK),
        "STUDYBOT_DB": str(db),
        "STUDYBOT_LOG_LEVEL": "DEBUG",
        "STUDYBOT_LOG_FORMAT": fmt,
    }
    script = "/study quiz\n/study answer A\n/study content load\n/study nonsense\n"
    runs = [
        subprocess.run(
            [sys.executable, "-m", "bot", *args],
            input=script,
            capture_output=True,
            text=True,
            env=env | extra,
            cwd=tmp_path,
            timeout=60,
        )
        for args, extra in [
            (["run"], {}),
            (["console", "--user", "ann"], {"DISCORD_TOKEN": DISCORD, "SLACK_SIGNING_SECRET": SLACK_SECRET}),
            (["health"], {"SLACK_APP_TOKEN": SLACK_APP, "DISCORD_TOKEN": DISCORD}),
        ]
    ]
    for run in runs:
        assert run.returncode == 0, run.stderr
        assert not leaked(run.stdout + run.stderr), run.stdout + run.stderr
    first = runs[0]
    assert REDACTED in first.stderr, "the start-up line naming the database was logged, redacted"
    assert "Correct" in first.stdout or "Not quite" in first.stdout
    if fmt == "json":
        lines = [ln for ln in first.stderr.splitlines() if ln.startswith("{")]
        assert lines and all(json.loads(ln)["level"] for ln in lines)
