"""Forms and member suggestions on Slack, through the real slack-bolt app over loopback HTTP against
tests/fake_slack.py: ``views.open`` with the command's trigger_id, ``view_submission`` acknowledged with
``response_action: errors`` when a field is wrong."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from tests.test_slack import ADMIN, BOB, CHANNEL, MEMBER, Rig, buttons_of, fake, rig

__all__ = ["fake", "rig"]  # the fixtures, shared with tests/test_slack.py

BAD = {
    "prompt": "What does a risk register hold?",
    "choices": "Nothing\nAn owner, a rating and a plan\nThe budget",
    "answer": "E",
    "explanation": "An owner, a rating and a response plan keep every risk visible and handled.",
    "topic": "",
}
FIXED = {"choices": BAD["choices"] + "\nOnly the date", "answer": "B"}


async def submit(rig: Rig, view: dict[str, Any], values: dict[str, str], user: str) -> tuple[int, str]:
    payload = rig.fake.view_submission(view, values, user=user)
    return await rig.send(urlencode({"payload": json.dumps(payload)}))


async def opened(rig: Rig, text: str, user: str) -> dict[str, Any]:
    key, status, body = await rig.command(text, user=user)
    assert (status, body) == (200, "")
    view: dict[str, Any] = await rig.fake.wait_for(
        lambda: next((v for v in rig.fake.views if v["trigger_id"] == f"trigger-{key}"), None)
    )
    return view


async def test_a_form_opens_with_the_trigger_and_field_errors_go_back_in_the_ack(rig: Rig) -> None:
    view = await opened(rig, "suggest", MEMBER)
    assert view["callback_id"] == "sb:form:suggest:question" and view["title"]["text"] == "Suggest a question"
    assert [b["block_id"] for b in view["blocks"]] == ["prompt", "choices", "answer", "explanation", "topic"]
    assert view["blocks"][1]["element"]["multiline"] and view["blocks"][4]["optional"]
    assert json.loads(view["private_metadata"]) == {"channel": CHANNEL}

    status, body = await submit(rig, view, BAD, MEMBER)
    assert status == 200
    ack = json.loads(body)
    assert ack["response_action"] == "errors"
    assert set(ack["errors"]) == {"choices", "answer"} and "four choices" in ack["errors"]["choices"]
    assert await rig.scalar("SELECT COUNT(*) FROM suggestions") == 0

    status, body = await submit(rig, view, {**BAD, **FIXED}, MEMBER)
    assert (status, body) == (200, "")  # an empty ack closes the modal
    await rig.adapter.drain()
    thanks = rig.fake.ephemeral[-1]
    assert (thanks["channel"], thanks["user"]) == (CHANNEL, MEMBER) and "waits for an admin" in thanks["text"]
    assert await rig.scalar("SELECT kind FROM suggestions") == "question"


async def test_an_expired_trigger_is_a_clear_message(rig: Rig) -> None:
    rig.fake.expired_triggers.add("trigger-r1")
    key, _, _ = await rig.command("suggest tip", user=MEMBER)
    assert key == "r1"
    (reply,) = await rig.fake.responses_for(key)
    assert "could not be opened" in reply["text"] and reply["response_type"] == "ephemeral"


async def test_approve_by_button_tells_the_member_by_dm_and_deny_asks_for_a_reason(rig: Rig) -> None:
    for user, prompt in ((MEMBER, "Which of these belongs in a risk register?"), (BOB, "<!channel> which one?")):
        view = await opened(rig, "suggest", user)
        assert (await submit(rig, view, {**BAD, **FIXED, "prompt": prompt}, user)) == (200, "")
    await rig.adapter.drain()

    key, _, _ = await rig.command("suggestions", user=ADMIN)
    header, first, second = await rig.fake.responses_for(key, 3)
    assert "2 suggestions waiting" in header["text"]
    assert "<!channel>" not in second["text"] and "&lt;!channel&gt;" in second["text"]  # no ping
    approve = buttons_of(first)[0]["action_id"]
    deny = buttons_of(second)[1]["action_id"]

    key, _, _ = await rig.click(approve, user=ADMIN)
    (done,) = await rig.fake.responses_for(key)
    assert "approved" in done["text"] and "direct message" in done["text"]
    dm = [c for c in rig.fake.delivered("chat.postMessage") if c.args.get("channel") == MEMBER]
    assert len(dm) == 1 and "was approved" in dm[0].args["text"]

    key, _, _ = await rig.click(deny, user=ADMIN)
    reason_view = await rig.fake.wait_for(
        lambda: next((v for v in rig.fake.views if v["trigger_id"] == f"trigger-{key}"), None)
    )
    assert reason_view["callback_id"].startswith("sb:form:sug-deny:") and reason_view["blocks"][0]["optional"]
    assert (await submit(rig, reason_view, {"reason": "Too close to #1"}, ADMIN)) == (200, "")
    await rig.adapter.drain()
    told = [c for c in rig.fake.delivered("chat.postMessage") if c.args.get("channel") == BOB]
    assert len(told) == 1 and "Too close to" in told[0].args["text"]
    assert await rig.scalar("SELECT group_concat(status) FROM (SELECT status FROM suggestions ORDER BY id)") == (
        "approved,denied"
    )

    # A member who is no admin cannot approve by crafting the button.
    key, _, _ = await rig.click(approve, user=BOB)
    (no,) = await rig.fake.responses_for(key)
    assert "Only admins" in no["text"]


async def test_a_card_is_added_and_edited_in_place_through_slack_modals(rig: Rig) -> None:
    await rig.ask("deck create sql", user=ADMIN)
    view = await opened(rig, "deck add sql card", ADMIN)
    assert view["callback_id"].startswith("sb:form:deck-add:c-") and view["title"]["text"] == "Add a card"
    assert [b["block_id"] for b in view["blocks"]] == ["front", "back", "topic", "tags", "source"]
    assert view["blocks"][1]["element"]["multiline"] and view["blocks"][1]["element"]["max_length"] == 2000
    card = {"front": "<!channel> how do you say no to a stakeholder?", "back": "- the why\n- an alternative"}

    status, body = await submit(rig, view, {**card, "source": "my notes#1", "tags": "a,b,c,d,e,f,g,h,i,j,k"}, ADMIN)
    ack = json.loads(body)
    assert status == 200 and ack["response_action"] == "errors"
    assert set(ack["errors"]) == {"source", "tags"} and ack["errors"]["tags"] == "At most 10 tags (this has 11)."
    assert await rig.scalar("SELECT COUNT(*) FROM deck_items") == 0

    assert await submit(rig, view, card, ADMIN) == (200, "")
    await rig.adapter.drain()
    added = rig.fake.ephemeral[-1]["text"]
    assert 'Added to deck "sql"' in added and "<!channel>" not in added  # member text pings no one
    item_id = await rig.scalar("SELECT id FROM deck_items WHERE slug = 'card-1'")

    edit = await opened(rig, "deck edit sql card-1", ADMIN)
    assert edit["callback_id"] == f"sb:form:deck-edit:{item_id}"
    assert edit["blocks"][0]["element"]["initial_value"] == card["front"]
    assert await submit(rig, edit, {"topic": "stakeholders"}, ADMIN) == (200, "")
    await rig.adapter.drain()
    assert "Changed `card-1`" in rig.fake.ephemeral[-1]["text"]
    assert await rig.scalar("SELECT topic FROM deck_items WHERE id = ?", item_id) == "stakeholders"
    assert await rig.scalar("SELECT COUNT(*) FROM deck_items") == 1
