"""Fuzzing: arbitrary text through the /study grammar and the wired-up service never crashes, and
every command or click gets exactly one short private reply."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.bootstrap import App, build_app
from bot.config import Settings
from bot.core.commands import Command, UsageError, parse
from bot.core.messages import Inbound
from tests.conftest import FIXTURE_PACK, FakeClock

#: Discord's limit is 2,000 characters per message and Slack's section text 3,000; stay well inside 4,000.
MAX_REPLY = 4000

WORDS = [
    "/study",
    "study",
    "help",
    "quiz",
    "answer",
    "A",
    "b",
    "E",
    "AB",
    "tip",
    "path",
    "done",
    "0",
    "3",
    "7",
    "progress",
    "@bob",
    "<@123>",
    "<@!9|x>",
    "leaderboard",
    "week",
    "all",
    "hide",
    "show",
    "timezone",
    "Europe/Berlin",
    "europe/berln",
    "UTC+2",
    "forget-me",
    "forget",
    "confirm",
    "cancel",
    "review",
    "export",
    "schedule",
    "set",
    "09:00",
    "9:5",
    "24:00",
    "tz",
    "days",
    "mon-fri",
    "daily",
    "mon,wed,fri",
    "sun,sun",
    "kind",
    "question",
    "tip",
    "mix",
    "preview",
    "pause",
    "resume",
    "skip",
    "post-now",
    "content",
    "list",
    "validate",
    "load",
]

words = st.one_of(st.sampled_from(WORDS), st.text(max_size=12))
commands = st.lists(words, max_size=9).map(" ".join)
texts = st.one_of(
    commands,
    commands.map(lambda c: "/study " + c),
    st.text(max_size=200),
    st.integers(1_000, 20_000).map(lambda n: "/study " + "quiz " * (n // 5)),
)
clicks = st.one_of(
    st.text(max_size=40),
    st.builds(lambda p, letter: f"sb:ans:{p}:{letter}", st.integers(-3, 10**15), st.text(max_size=3)),
    st.sampled_from(["sb:forget:confirm", "sb:forget:cancel", "sb:", "sb:ans::", "sb:ans:1:A"]),
)


def check_parse(text: str) -> None:
    try:
        command = parse(text)
    except UsageError as e:
        message = str(e)
        assert message and len(message) <= 300 and "\n" not in message, message
    else:
        assert isinstance(command, Command) and command.name


def run_parse_fuzz(examples: int) -> None:
    @settings(max_examples=examples, deadline=None, derandomize=True, database=None)
    @given(texts)
    def fuzz(text: str) -> None:
        check_parse(text)

    fuzz()


def test_grammar_fuzz_quick() -> None:
    run_parse_fuzz(500)


@pytest.mark.slow
def test_grammar_fuzz_10000_examples() -> None:
    run_parse_fuzz(10_000)


def run_service_fuzz(tmp_path: Path, examples: int) -> None:
    loop = asyncio.new_event_loop()
    config = Settings(STUDYBOT_CONTENT=str(FIXTURE_PACK), STUDYBOT_DB=str(tmp_path / "fuzz.db"))  # type: ignore[call-arg]
    app: App = loop.run_until_complete(build_app(config, clock=FakeClock()))
    # Durability is not under test here; speed is welcome.
    loop.run_until_complete(app.store.run_sync(lambda conn: conn.execute("PRAGMA synchronous=OFF")))
    seen = {"commands": 0, "clicks": 0}

    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(
        text=texts,
        click=st.one_of(st.none(), clicks),
        user=st.sampled_from(["ann", "bob", "<@1>", "ü" * 40]),
        admin=st.booleans(),
    )
    def fuzz(text: str, click: str | None, user: str, admin: bool) -> None:
        inbound = Inbound(
            platform="console",
            group="g",
            channel="c",
            user=user,
            user_name=user,
            text=text,
            action=click,
            is_admin=admin,
        )
        replies = loop.run_until_complete(app.service.handle(inbound))
        assert len(replies) == 1, replies
        [reply] = replies
        assert reply.private and reply.text.strip(), reply
        assert len(reply.text) <= MAX_REPLY, len(reply.text)
        assert "Something went wrong on our side" not in reply.text, f"an unexpected error for {text!r} / {click!r}"
        seen["clicks" if click is not None else "commands"] += 1

    try:
        fuzz()
    finally:
        loop.run_until_complete(app.close())
        loop.close()
    assert seen["commands"] and seen["clicks"]


def test_service_fuzz_quick(tmp_path: Path) -> None:
    run_service_fuzz(tmp_path, 300)


@pytest.mark.slow
def test_service_fuzz_many(tmp_path: Path) -> None:
    run_service_fuzz(tmp_path, 2_000)
