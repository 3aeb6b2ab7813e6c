"""Interview practice on every front end, through the real libraries: discord.py against the loopback
Discord fake, slack-bolt against the Slack fake, and the console — deal, write, Show points, rate,
someone else's click, a second rating. The shipped content pack (its interview prompts) is loaded."""

from __future__ import annotations

import io
import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.adapters.console_adapter import ConsoleAdapter
from bot.bootstrap import App, build_app
from bot.config import Settings
from tests.conftest import ROOT, FakeClock
from tests.fake_discord import EPHEMERAL, FakeDiscord
from tests.fake_slack import FakeSlack
from tests.test_discord import ALICE, BOB, Bot, command, custom_ids, start_bot
from tests.test_slack import BOB as SLACK_BOB
from tests.test_slack import MEMBER, Rig, add_users, buttons_of, running_rig, slack_settings
from tests.test_slack_forms import submit

pytestmark = pytest.mark.sqlite_only
SHIPPED = ROOT / "content"


def rows(db: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql, args).fetchall()


# ---------------------------------------------------------------------- Discord


@pytest.fixture
async def fake_discord() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as f:
        yield f


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[App]:
    settings = Settings(_env_file=None, STUDYBOT_DB=tmp_path / "study.db", STUDYBOT_CONTENT=SHIPPED)  # type: ignore[call-arg]
    a = await build_app(settings, clock=FakeClock())
    yield a
    await a.close()


@pytest.fixture
async def live(app: App, fake_discord: FakeDiscord) -> AsyncIterator[Bot]:
    b = await start_bot(app.service, fake_discord)
    yield b
    await b.stop()


async def click(fake: FakeDiscord, custom_id: str, message: dict[str, Any], user: Any = ALICE) -> dict[str, Any]:
    cb = await fake.callback(await fake.dispatch_interaction(fake.click(custom_id, message, user=user)))
    assert cb.json["type"] == 4 and cb.json["data"]["flags"] & EPHEMERAL, cb.json
    return fake.message_of(cb)


async def test_discord_interview_practice_from_deal_to_rating(app: App, live: Bot, fake_discord: FakeDiscord) -> None:
    fake = fake_discord
    _, cb = await command(fake, "interview", user=ALICE)
    assert cb.json["data"]["flags"] & EPHEMERAL
    dealt = fake.message_of(cb)
    write, show = custom_ids(dealt)
    assert write.endswith(":write") and show.endswith(":show")

    # Write an answer opens a modal; an empty one is refused in the form, then the answer is kept.
    iid = await fake.dispatch_interaction(fake.click(write, dealt, user=ALICE))
    opened = await fake.callback(iid)
    assert opened.json["type"] == 9  # MODAL
    modal = fake.modals[iid]
    (field,) = [row["component"] for row in modal["components"]]
    assert field["max_length"] == 2000 and field["style"] == 2
    too_long = await fake.callback(
        await fake.dispatch_interaction(fake.submit_modal(modal, {field["custom_id"]: "x" * 4000}, user=ALICE))
    )
    assert "At most 2000 characters (this has 4000)" in too_long.json["data"]["content"]
    assert rows(app.store.path, "SELECT answer FROM attempts") == [(None,)]
    answer = "@everyone I would agree outcomes first"
    kept = await fake.callback(
        await fake.dispatch_interaction(fake.submit_modal(modal, {field["custom_id"]: answer}, user=ALICE))
    )
    assert "Answer kept" in kept.json["data"]["content"] and kept.json["data"]["flags"] & EPHEMERAL

    shown = await click(fake, show, dealt)
    assert "Points a strong answer covers" in shown["content"]
    assert "\\@everyone I would agree outcomes first" in shown["content"]  # escaped: no mention, even for oneself
    rating_ids = custom_ids(shown)
    assert [i.rsplit(":", 1)[1] for i in rating_ids] == ["r1", "r2", "r3", "r4"]
    assert len(shown["components"]) == 1  # four buttons: one row

    refused = await click(fake, rating_ids[2], shown, user=BOB)
    assert "dealt to someone else" in refused["content"]
    rated = await click(fake, rating_ids[2], shown)
    assert rated["content"].startswith("Rated Good")
    twice = await click(fake, rating_ids[0], shown)
    assert "already rated this card Good" in twice["content"]
    assert rows(app.store.path, "SELECT rating, answer FROM attempts") == [
        (3, "@everyone I would agree outcomes first")
    ]
    assert rows(app.store.path, "SELECT COUNT(*) FROM practice_cards") == [(1,)]


# ---------------------------------------------------------------------- Slack


@pytest.fixture
async def fake_slack() -> AsyncIterator[FakeSlack]:
    f = FakeSlack(team_id="T0HOME")
    await f.start()
    add_users(f)
    yield f
    await f.stop()


@pytest.fixture
async def rig(fake_slack: FakeSlack, tmp_path: Path) -> AsyncIterator[Rig]:
    async with running_rig(fake_slack, slack_settings(fake_slack, tmp_path, STUDYBOT_CONTENT=str(SHIPPED))) as r:
        yield r


async def answer_to(rig: Rig, action_id: str, user: str | None = None) -> dict[str, Any]:
    key, status, body = await rig.click(action_id, **({"user": user} if user else {}))
    assert (status, body) == (200, "")
    reply: dict[str, Any] = (await rig.fake.responses_for(key))[0]
    assert reply["response_type"] == "ephemeral"
    return reply


async def test_slack_interview_practice_from_deal_to_rating(rig: Rig) -> None:
    dealt = await rig.ask("interview")
    assert dealt["response_type"] == "ephemeral"
    write, show = (b["action_id"] for b in buttons_of(dealt))
    key, _, _ = await rig.click(write)
    view: dict[str, Any] = await rig.fake.wait_for(
        lambda: next((v for v in rig.fake.views if v["trigger_id"] == f"trigger-{key}"), None)
    )
    assert view["title"]["text"] == "Your answer" and view["blocks"][0]["element"]["max_length"] == 2000
    status, body = await submit(rig, view, {"answer": ""}, MEMBER)
    assert status == 200 and json.loads(body)["errors"] == {"answer": "This field is required."}
    status, body = await submit(rig, view, {"answer": "<!channel> first I would\nmeet the sponsor"}, MEMBER)
    assert (status, body) == (200, "")
    await rig.adapter.drain()
    assert "Answer kept" in rig.fake.ephemeral[-1]["text"]
    shown = await answer_to(rig, show)
    assert "Points a strong answer covers" in shown["text"]
    assert "<!channel>" not in shown["text"] and "&lt;!channel&gt;" in shown["text"]
    ratings = [b["action_id"] for b in buttons_of(shown)]
    assert [b["text"]["text"] for b in buttons_of(shown)] == ["Again", "Hard", "Good", "Easy"]
    assert "someone else" in (await answer_to(rig, ratings[3], user=SLACK_BOB))["text"]
    assert (await answer_to(rig, ratings[3]))["text"].startswith("Rated Easy")
    assert "already rated" in (await answer_to(rig, ratings[0]))["text"]
    assert await rig.scalar("SELECT rating FROM attempts") == 4
    assert await rig.scalar("SELECT answer FROM attempts") == "<!channel> first I would\nmeet the sponsor"
    too_long = await rig.ask("write " + "x" * 4000)
    assert "too long (4,000 characters" in too_long["text"]


# ---------------------------------------------------------------------- console


async def test_console_interview_practice_by_typed_lines(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, STUDYBOT_DB=tmp_path / "study.db", STUDYBOT_CONTENT=SHIPPED)  # type: ignore[call-arg]
    app = await build_app(settings, clock=FakeClock())
    out = io.StringIO()
    console = ConsoleAdapter(app.service, "me", stdin=io.StringIO(), stdout=out)
    try:
        for line in (
            "/study interview",
            "/study write Stakeholders first, then the plan.",
            "/study points",
            "/study rate good",
        ):
            await console.handle_line(line)
    finally:
        await app.close()
    text = out.getvalue()
    assert "[Write an answer]  [Show points]   ← type /study write <your answer>, then /study points" in text
    assert "Points a strong answer covers" in text and "Stakeholders first, then the plan." in text
    assert "[Again]  [Hard]  [Good]  [Easy]   ← type /study rate again|hard|good|easy" in text
    assert "Rated Good — this card comes back" in text
    assert rows(tmp_path / "study.db", "SELECT rating, answer FROM attempts") == [
        (3, "Stakeholders first, then the plan.")
    ]
