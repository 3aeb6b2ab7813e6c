"""Forms and member suggestions on Discord, through the real discord.py against tests/fake_discord.py:
a modal answers the command (callback type 9), its submit arrives as interaction type 5."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.bootstrap import App, build_app
from bot.config import Settings
from bot.storage import decks_for
from tests.conftest import FIXTURE_PACK, FakeClock
from tests.fake_discord import ADMIN_PERMISSIONS, EPHEMERAL, FakeDiscord, FakeUser, Recorded
from tests.test_discord import Bot, command, custom_ids, rows, start_bot

pytestmark = pytest.mark.sqlite_only

ALICE = FakeUser(830000000000000001, "alice")
BOB = FakeUser(830000000000000002, "bob")
ADMIN = FakeUser(830000000000000003, "ada", ADMIN_PERMISSIONS)
OTHER_GUILD = 810000000000000009
OTHER_CHANNEL = 820000000000000009
EVE = FakeUser(830000000000000009, "eve", ADMIN_PERMISSIONS)  # an admin of another server

BAD = {
    "prompt": "What does a risk register hold?",
    "choices": "Nothing\nAn owner, a rating and a plan\nThe budget",
    "answer": "E",
    "explanation": "An owner, a rating and a response plan keep every risk visible and handled.",
    "topic": "",
}


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as f:
        f.add_guild(OTHER_GUILD, "Elsewhere", {OTHER_CHANNEL: "general"})
        yield f


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[App]:
    settings = Settings(STUDYBOT_DB=tmp_path / "study.db", STUDYBOT_CONTENT=FIXTURE_PACK)  # type: ignore[call-arg]
    a = await build_app(settings, clock=FakeClock())
    yield a
    await a.close()


@pytest.fixture
async def live(app: App, fake: FakeDiscord) -> AsyncIterator[Bot]:
    b = await start_bot(app.service, fake)
    app.gateways["discord"] = b.fe  # what serve() does: outcomes go out as DMs through it
    yield b
    await b.stop()


def inputs(modal: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The modal's text inputs by custom_id, each with its label and description."""
    out = {}
    for row in modal["components"]:
        assert row["type"] == 18  # a label holding one text input
        out[row["component"]["custom_id"]] = {
            **row["component"],
            "label": row["label"],
            "description": row.get("description"),
        }
    return out


async def submitted(
    fake: FakeDiscord, modal: dict[str, Any], values: dict[str, str], user: FakeUser, **kw: Any
) -> tuple[int, Recorded]:
    iid = await fake.dispatch_interaction(fake.submit_modal(modal, values, user=user, **kw))
    return iid, await fake.callback(iid)


async def test_a_modal_submitted_with_bad_values_shows_field_errors_and_reopens_prefilled(
    app: App, live: Bot, fake: FakeDiscord
) -> None:
    db = app.store.path
    iid, cb = await command(fake, "suggest", user=ALICE)
    assert cb.status == 200 and cb.json["type"] == 9  # MODAL
    modal = fake.modals[iid]
    assert modal["custom_id"] == "sb:form:suggest:question" and modal["title"] == "Suggest a question"
    fields = inputs(modal)
    assert list(fields) == ["prompt", "choices", "answer", "explanation", "topic"]
    assert fields["choices"]["style"] == 2 and fields["answer"]["max_length"] == 1 and not fields["topic"]["required"]

    _, bad = await submitted(fake, modal, BAD, ALICE)
    # A modal submit cannot be answered with a modal: a private message lists the errors, with a button.
    assert bad.json["type"] == 4 and bad.json["data"]["flags"] & EPHEMERAL
    text = bad.json["data"]["content"]
    assert "Four choices, one per line" in text and "Exactly four choices" in text and "One letter" in text
    assert rows(db, "SELECT COUNT(*) FROM suggestions") == [(0,)]
    message = fake.message_of(bad)
    (fix,) = custom_ids(message)
    assert fix.startswith("sbx:form:")

    # Somebody else cannot open alice's draft.
    other = await fake.callback(await fake.dispatch_interaction(fake.click(fix, message, user=BOB)))
    assert "someone else's" in other.json["data"]["content"]

    again_iid = await fake.dispatch_interaction(fake.click(fix, message, user=ALICE))
    again = await fake.callback(again_iid)
    assert again.status == 200 and again.json["type"] == 9
    reopened = inputs(fake.modals[again_iid])
    assert reopened["prompt"]["value"] == BAD["prompt"]  # what alice typed is kept
    assert reopened["choices"]["description"].startswith("⚠️ Exactly four choices")
    assert reopened["prompt"]["description"] is None  # no error there

    good = {"choices": BAD["choices"] + "\nOnly the date", "answer": "b"}
    _, ok = await submitted(fake, fake.modals[again_iid], good, ALICE)
    assert ok.json["type"] == 4 and ok.json["data"]["flags"] & EPHEMERAL
    assert "waits for an admin" in ok.json["data"]["content"]
    ((kind, body, credit),) = rows(db, "SELECT kind, body, credit FROM suggestions")
    assert (kind, credit) == ("question", 1)
    assert json.loads(body)["answer"] == "B" and json.loads(body)["choices"][3] == "Only the date"


async def test_a_modal_submitted_after_a_restart_is_still_handled(app: App, fake: FakeDiscord) -> None:
    first = await start_bot(app.service, fake)
    iid, _ = await command(fake, "suggest", {"kind": "tip", "credit": False}, user=ALICE)
    modal = fake.modals[iid]
    assert modal["custom_id"] == "sb:form:suggest:tip-anon"
    await first.stop()
    second = await start_bot(app.service, fake)  # discord.py's own modal store is empty now
    try:
        values = {
            "text": "Read three TPM listings and note what they share.",
            "action": "List three skills.",
            "step": "4",
        }
        _, ok = await submitted(fake, modal, values, ALICE)
        assert "waits for an admin" in ok.json["data"]["content"]
        assert rows(app.store.path, "SELECT kind, credit FROM suggestions") == [("tip", 0)]
    finally:
        await second.stop()


async def suggest(fake: FakeDiscord, user: FakeUser, prompt: str) -> None:
    iid, _ = await command(fake, "suggest", user=user)
    values = {**BAD, "prompt": prompt, "choices": BAD["choices"] + "\nOnly the date", "answer": "B"}
    _, ok = await submitted(fake, fake.modals[iid], values, user)
    assert "waits for an admin" in ok.json["data"]["content"]


async def test_admins_approve_and_deny_with_buttons_and_members_hear_by_dm_or_next_time(
    app: App, live: Bot, fake: FakeDiscord
) -> None:
    db = app.store.path
    await suggest(fake, ALICE, "Which of these belongs in a risk register?")
    await suggest(fake, BOB, "@everyone <@&123> which one is right?")

    iid, cb = await command(fake, "suggestions", user=ADMIN, command="study-admin")
    assert "2 suggestions waiting" in cb.json["data"]["content"] and cb.json["data"]["flags"] & EPHEMERAL
    first, second = [fake.message_of(r) for r in await fake.followups(iid, 2)]
    assert "\\@everyone" in second["content"] and "<@&123>" not in second["content"]  # member text pings no one
    approve = custom_ids(first)[0]
    deny = custom_ids(second)[1]
    assert approve.startswith("sb:sug-ok:") and deny.startswith("sb:sug-no:")

    member_click = await fake.callback(await fake.dispatch_interaction(fake.click(approve, first, user=BOB)))
    assert "Only admins" in member_click.json["data"]["content"]
    # An admin of another server crafting the id is refused; nothing changes.
    crafted = fake.click(approve, first, user=EVE, channel_id=OTHER_CHANNEL, guild_id=OTHER_GUILD)
    refused = await fake.callback(await fake.dispatch_interaction(crafted))
    assert "no suggestion" in refused.json["data"]["content"]
    assert rows(db, "SELECT status FROM suggestions ORDER BY id") == [("open",), ("open",)]

    done = await fake.callback(await fake.dispatch_interaction(fake.click(approve, first, user=ADMIN)))
    assert "approved" in done.json["data"]["content"] and "direct message" in done.json["data"]["content"]
    (dm,) = fake.dm_messages(ALICE.id)
    assert "was approved" in dm["content"]
    assert str(fake.find("POST", "/users/@me/channels")[0].json["recipient_id"]) == str(ALICE.id)

    fake.close_dms(BOB.id)
    deny_iid = await fake.dispatch_interaction(fake.click(deny, second, user=ADMIN))
    asked = await fake.callback(deny_iid)
    assert asked.json["type"] == 9
    reason_modal = fake.modals[deny_iid]
    assert reason_modal["custom_id"].startswith("sb:form:sug-deny:")
    _, denied = await submitted(fake, reason_modal, {"reason": "We have one like it, @everyone"}, ADMIN)
    assert "denied" in denied.json["data"]["content"] and "next command" in denied.json["data"]["content"]
    assert fake.dm_messages(BOB.id) == []  # 50007: nothing delivered
    assert rows(db, "SELECT status, reason FROM suggestions ORDER BY id") == [
        ("approved", None),
        ("denied", "We have one like it, @everyone"),
    ]

    help_iid, _ = await command(fake, "help", user=BOB)
    (notice,) = await fake.followups(help_iid)
    assert "was not added" in notice.json["content"] and "\\@everyone" in notice.json["content"]
    assert notice.json["flags"] & EPHEMERAL and notice.json["allowed_mentions"]["parse"] == []


async def test_a_form_that_cannot_open_at_once_comes_with_a_button_that_opens_it(app: App, fake: FakeDiscord) -> None:
    # A reply slower than defer_after is deferred ("thinking…"): a deferred interaction cannot open a modal.
    bot = await start_bot(app.service, fake, defer_after=0.0)
    try:
        iid, cb = await command(fake, "suggest", {"kind": "tip"}, user=ALICE)
        assert cb.json["type"] == 5  # deferred
        (edit,) = await fake.followups(iid)
        message = fake.message_of(edit)
        assert "Open it with the button" in message["content"]
        (button,) = [c for row in message["components"] for c in row["components"]]
        assert button["label"] == "Open the form" and button["custom_id"].startswith("sbx:form:")
        opened_iid = await fake.dispatch_interaction(fake.click(button["custom_id"], message, user=ALICE))
        assert (await fake.callback(opened_iid)).json["type"] == 9
        assert fake.modals[opened_iid]["custom_id"] == "sb:form:suggest:tip"
    finally:
        await bot.stop()


async def test_deck_add_is_a_modal_under_study_admin_and_stores_the_item(
    app: App, live: Bot, fake: FakeDiscord
) -> None:
    db = app.store.path
    await command(fake, "help", user=ADMIN)  # the server's group exists from its first command
    ((group_id,),) = rows(db, "SELECT id FROM groups WHERE external_id = ?", str(fake.guild.id))
    assert await decks_for(app.store).create_deck(group_id, "sql", "", FakeClock().now()) is not None  # type: ignore[arg-type]
    rows_before = rows(db, "SELECT COUNT(*) FROM deck_items")
    iid, cb = await command(fake, "deck add", {"options": "sql tip"}, user=ADMIN, command="study-admin")
    assert cb.json["type"] == 9
    modal = fake.modals[iid]
    assert modal["custom_id"].startswith("sb:form:deck-add:t-") and list(inputs(modal)) == ["text", "action", "step"]
    _, bad = await submitted(fake, modal, {"text": "Too short", "action": "Do it now, today.", "step": "9"}, ADMIN)
    assert "The tip needs at least 20 characters" in bad.json["data"]["content"]
    assert rows(db, "SELECT COUNT(*) FROM deck_items") == rows_before
    good = {"text": "Read three TPM listings and note what they share.", "action": "List three skills.", "step": "4"}
    _, ok = await submitted(fake, modal, good, ADMIN)
    assert 'Added to deck "sql"' in ok.json["data"]["content"]
    assert rows(db, "SELECT kind, step, slug FROM deck_items") == [("tip", 4, "tip-1")]


async def test_a_card_is_added_and_edited_in_place_through_discord_modals(
    app: App, live: Bot, fake: FakeDiscord
) -> None:
    db = app.store.path
    await command(fake, "help", user=ADMIN)
    ((group_id,),) = rows(db, "SELECT id FROM groups WHERE external_id = ?", str(fake.guild.id))
    assert await decks_for(app.store).create_deck(group_id, "sql", "", FakeClock().now()) is not None  # type: ignore[arg-type]
    iid, cb = await command(fake, "deck add", {"options": "sql card"}, user=ADMIN, command="study-admin")
    assert cb.json["type"] == 9
    modal = fake.modals[iid]
    fields = inputs(modal)
    assert modal["custom_id"].startswith("sb:form:deck-add:c-") and modal["title"] == "Add a card"
    assert list(fields) == ["front", "back", "topic", "tags", "source"]
    assert fields["back"]["style"] == 2 and fields["back"]["max_length"] == 2000 and not fields["tags"]["required"]
    card = {"front": "@everyone: how do you say no to a stakeholder?", "back": "- the why\n- an alternative"}
    _, bad = await submitted(fake, modal, {**card, "topic": "Two Words"}, ADMIN)
    assert "**Topic**: A topic is one word" in bad.json["data"]["content"]
    assert rows(db, "SELECT COUNT(*) FROM deck_items") == [(0,)]
    _, ok = await submitted(fake, modal, {**card, "tags": "conflict"}, ADMIN)
    content = ok.json["data"]["content"]
    assert 'Added to deck "sql"' in content and "\\@everyone" in content  # escaped: member text never pings
    ((item_id, slug),) = rows(db, "SELECT id, slug FROM deck_items")
    assert slug == "card-1"

    iid, cb = await command(fake, "deck edit", {"options": "sql card-1"}, user=ADMIN, command="study-admin")
    assert cb.json["type"] == 9
    edit = fake.modals[iid]
    shown = inputs(edit)
    assert edit["custom_id"] == f"sb:form:deck-edit:{item_id}"
    assert (shown["front"]["value"], shown["tags"]["value"]) == (card["front"], "conflict")
    _, saved = await submitted(fake, edit, {"back": "- the why\n- an alternative\n- a date to revisit"}, ADMIN)
    assert "Changed `card-1`" in saved.json["data"]["content"]
    assert rows(db, "SELECT id, back FROM deck_items") == [
        (item_id, "- the why\n- an alternative\n- a date to revisit")
    ]
