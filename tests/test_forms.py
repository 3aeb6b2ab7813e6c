"""Forms in the core (`bot.core.forms`, the question/tip form) and member suggestions on both stores, plus
the console asking a form field by field."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from bot.bootstrap import build_app
from bot.config import Settings
from bot.core.deck_add import DeckAdd
from bot.core.forms import Field, Form, check, parse_action
from bot.core.item_form import ItemDraft, item_form, read_item
from bot.core.messages import Post, Reply, SentMessage
from bot.core.ports import DeliveryError
from bot.core.service import StudyService
from bot.core.suggestions import Suggestions, to_deck
from bot.storage import ManagedStore, decks_for, suggestions_for
from tests.conftest import FIXTURE_PACK, FakeClock, inbound

ROOT = Path(__file__).resolve().parents[1]

GOOD_QUESTION = {
    "prompt": "What does a risk register hold for each risk?",
    "choices": "A) Nothing at all\nB) An owner, a rating and a response plan\nC) Only the date\nD) The budget",
    "answer": "b",
    "explanation": "An owner, a likelihood and impact rating and a planned response keep the risk visible.",
    "topic": "risk-and-scope hard",
}
GOOD_TIP = {
    "text": "Read three TPM job listings and note the skills that all of them ask for.",
    "action": "Write the three skills on a card and keep it by your desk.",
    "step": "4",
}


class Messenger:
    """A `DirectGateway` that records what it sent, or refuses as Discord does when DMs are closed."""

    platform = "console"

    def __init__(self, *, open_dms: bool = True) -> None:
        self.open = open_dms
        self.sent: list[tuple[str, str, str]] = []

    async def send_direct(self, user: str, post: Post) -> SentMessage:
        if not self.open:
            raise DeliveryError("cannot send messages to this user (50007)", retryable=False, forbidden=True)
        self.sent.append((post.group, user, post.text))
        return SentMessage(f"dm-{user}", str(len(self.sent)))


@pytest.fixture
def messenger() -> Messenger:
    return Messenger()


@pytest.fixture
def suggesting(service: StudyService, store: ManagedStore, messenger: Messenger) -> StudyService:
    Suggestions(suggestions_for(store), {"console": messenger}).install(service)  # type: ignore[arg-type]
    return service


async def submit(service: StudyService, form: Form, values: dict[str, str], **kw: Any) -> list[Reply]:
    return await service.handle(replace(inbound(**kw), action=form.action, values=values))


async def open_form(service: StudyService, text: str, **kw: Any) -> Form:
    replies = await service.handle(inbound(text, **kw))
    assert replies[0].form is not None, replies
    return replies[0].form


# ---------------------------------------------------------------------------------------------- forms


def test_forms_refuse_what_a_platform_would_refuse() -> None:
    ok = Field("name", "Name")
    with pytest.raises(ValueError, match="fields"):
        Form("f", "Title", tuple(Field(f"k{i}", "L") for i in range(6)))  # Discord: at most 5 inputs
    with pytest.raises(ValueError, match="title"):
        Form("f", "A title longer than twenty-four", (ok,))  # Slack: 24
    with pytest.raises(ValueError, match="label"):
        Field("k", "L" * 46)  # Discord: 45
    with pytest.raises(ValueError, match="max_len"):
        Field("k", "L", max_len=3001)  # Slack: 3,000
    with pytest.raises(ValueError, match="keys"):
        Form("f", "T", (ok, ok))
    with pytest.raises(ValueError, match="arg"):
        Form("f", "T", (ok,), arg="x:y")  # would break the action id
    assert Form("f", "T", (ok,), arg="d-1").action == "sb:form:f:d-1"
    assert parse_action("sb:form:f:d-1") == ("f", "d-1") and parse_action("sb:form:f") == ("f", "")
    assert parse_action("sb:form:F!") is None and parse_action("sb:ans:1:A") is None


def test_check_keeps_known_fields_trims_and_reports_missing_and_long_values() -> None:
    form = Form("f", "T", (Field("a", "A"), Field("b", "B", required=False, max_len=5)))
    values, errors = check(form, {"a": "  \r\n", "b": "123456", "evil": "x"})
    assert values == {"a": "", "b": "123456"}
    assert errors == {"a": "This field is required.", "b": "At most 5 characters (this has 6)."}
    values, errors = check(form, {"a": " hi\r\nthere ", "b": ""})
    assert values == {"a": "hi\nthere", "b": ""} and errors == {}


def test_the_question_form_reports_each_problem_on_its_field() -> None:
    form = item_form("x", "question", "Suggest a question")
    assert len(form.fields) == 5 and all(len(f.label) <= 45 for f in form.fields)
    bad = read_item(
        "question",
        {
            "prompt": "short",
            "choices": "one\ntwo\ntwo",
            "answer": "E",
            "explanation": "too short",
            "topic": "Bad Topic x",
        },
    )
    assert isinstance(bad, dict)
    assert set(bad) == {"prompt", "choices", "answer", "explanation", "topic"}
    assert "four choices" in bad["choices"] and "A, B, C or D" in bad["answer"]
    same = read_item("question", {**GOOD_QUESTION, "choices": "x\ny\nX\nz"})
    assert same == {"choices": "The four choices must all be different."}
    draft = read_item("question", GOOD_QUESTION)
    assert isinstance(draft, ItemDraft)
    assert draft.choices[1] == "An owner, a rating and a response plan"  # "B) " taken off
    assert (draft.answer, draft.topic, draft.difficulty) == ("B", "risk-and-scope", 3)
    assert ItemDraft.from_dict("question", json.loads(json.dumps(draft.as_dict()))) == draft
    assert read_item("tip", {**GOOD_TIP, "step": "7"}) == {"step": "A step number from 1 to 6 (see /study path)."}
    tip = read_item("tip", GOOD_TIP)
    assert isinstance(tip, ItemDraft) and tip.step == 4


# ---------------------------------------------------------------------------------------------- the service


async def test_a_form_submission_with_errors_is_offered_again_with_what_was_typed(
    suggesting: StudyService, store: ManagedStore
) -> None:
    form = await open_form(suggesting, "/study suggest")
    assert form.action == "sb:form:suggest:question" and not form.errors
    typed = {**GOOD_QUESTION, "answer": "Z", "choices": "only one"}
    (again,) = await submit(suggesting, form, typed)
    assert again.form is not None and set(again.form.errors) == {"answer", "choices"}
    assert {f.key: f.default for f in again.form.fields}["prompt"] == GOOD_QUESTION["prompt"]
    assert "Right answer" in again.text and again.private
    assert await suggestions_for(store).open_suggestion_count(1, None) == 0  # nothing written
    (ok,) = await submit(suggesting, again.form, GOOD_QUESTION)
    assert ok.form is None and "waits for an admin" in ok.text
    (waiting,) = await suggestions_for(store).open_suggestions(1, 10)
    assert waiting.kind == "question" and waiting.credit and waiting.author == "alice"
    assert waiting.draft().answer == "B"


async def test_unknown_or_crafted_form_submissions_change_nothing(
    suggesting: StudyService, store: ManagedStore
) -> None:
    for action in ("sb:form:nope", "sb:form:suggest:poem", "sb:form:sug-deny:999", "sb:form:%%"):
        replies = await suggesting.handle(replace(inbound(), action=action, values=GOOD_QUESTION))
        assert len(replies) == 1 and replies[0].form is None and replies[0].private, action
    assert await suggestions_for(store).open_suggestion_count(1, None) == 0


async def test_suggestion_cap_off_switch_and_anonymous(suggesting: StudyService, store: ManagedStore) -> None:
    port = suggestions_for(store)
    form = await open_form(suggesting, "/study suggest tip anonymous")
    assert form.arg == "tip-anon"
    for _ in range(3):
        (ok,) = await submit(suggesting, form, GOOD_TIP)
        assert "waits for an admin" in ok.text
    (full,) = await suggesting.handle(inbound("/study suggest"))
    assert full.form is None and "already have 3 suggestions waiting" in full.text
    (late,) = await submit(suggesting, form, GOOD_TIP)  # a form opened before the cap was reached
    assert "Nothing was saved" in late.text
    assert await port.open_suggestion_count(1, None) == 3
    assert not any(s.credit for s in await port.open_suggestions(1, 10))

    (only,) = await suggesting.handle(inbound("/study suggestions off"))
    assert "only admins" in only.text.lower()
    await suggesting.handle(inbound("/study suggestions off", admin=True))
    (off,) = await suggesting.handle(inbound("/study suggest", user="bob"))
    assert "turned off" in off.text and off.form is None
    (listing, *_) = await suggesting.handle(inbound("/study suggestions", admin=True))
    assert "suggestions are off" in listing.text
    await suggesting.handle(inbound("/study suggestions on", admin=True))
    assert (await suggesting.handle(inbound("/study suggest", user="bob")))[0].form is not None


async def test_admins_approve_and_deny_and_the_member_hears_privately(
    suggesting: StudyService, store: ManagedStore, messenger: Messenger
) -> None:
    form = await open_form(suggesting, "/study suggest", user="bob")
    await submit(suggesting, form, GOOD_QUESTION, user="bob")
    await submit(suggesting, form, {**GOOD_QUESTION, "prompt": "<!channel> @everyone which is right?"}, user="bob")
    header, first, second = await suggesting.handle(inbound("/study suggestions", admin=True))
    assert header.text.startswith("**2 suggestions waiting**")
    ok_id, no_id = first.buttons[0].action_id, second.buttons[1].action_id
    assert ok_id.startswith("sb:sug-ok:") and no_id.startswith("sb:sug-no:")

    (refused,) = await suggesting.handle(replace(inbound(), action=ok_id))  # not an admin
    assert "Only admins" in refused.text
    (approved,) = await suggesting.handle(replace(inbound(admin=True), action=ok_id))
    assert "approved" in approved.text and "direct message" in approved.text
    (twice,) = await suggesting.handle(replace(inbound(admin=True), action=ok_id))
    assert "already approved" in twice.text
    assert messenger.sent[0][:2] == ("g1", "bob") and "was approved" in messenger.sent[0][2]

    (asked,) = await suggesting.handle(replace(inbound(admin=True), action=no_id))
    assert asked.form is not None and asked.form.fields[0].key == "reason" and not asked.form.fields[0].required
    messenger.open = False  # bob's DMs are closed now
    (denied,) = await suggesting.handle(
        replace(inbound(admin=True), action=asked.form.action, values={"reason": "We have one like it @everyone"})
    )
    assert "denied" in denied.text and "next command" in denied.text
    assert len(messenger.sent) == 1
    replies = await suggesting.handle(inbound("/study help", user="bob"))
    notice = replies[-1].text
    assert "was not added" in notice and "We have one like it" in notice
    # Member text is marked as data: every front end escapes it (no @everyone, no <!channel>).
    assert "\ue000We have one like it @everyone\ue001" in notice
    again = await suggesting.handle(inbound("/study help", user="bob"))
    assert len(again) == 1  # shown once
    port = suggestions_for(store)
    assert await port.open_suggestion_count(1, None) == 0


async def test_a_suggestion_id_from_another_group_is_refused_and_changes_nothing(
    suggesting: StudyService, store: ManagedStore
) -> None:
    form = await open_form(suggesting, "/study suggest", user="bob")
    await submit(suggesting, form, GOOD_QUESTION, user="bob")
    port = suggestions_for(store)
    (theirs,) = await port.open_suggestions(1, 10)
    other = replace(inbound(admin=True, group="g2", user="eve"))
    for action in (f"sb:sug-ok:{theirs.id}", f"sb:sug-no:{theirs.id}"):
        (reply,) = await suggesting.handle(replace(other, action=action))
        assert f"no suggestion #{theirs.id} in this group" in reply.text and reply.form is None
    (reply,) = await suggesting.handle(replace(other, action=f"sb:form:sug-deny:{theirs.id}", values={"reason": "x"}))
    assert "no suggestion" in reply.text
    (reply,) = await suggesting.handle(replace(other, text=f"/study suggestions approve {theirs.id}"))
    assert "no suggestion" in reply.text
    (still,) = await port.open_suggestions(1, 10)
    assert still.status == "open"


# ---------------------------------------------------------------------------------------------- the store


async def test_suggestion_store_contract(store: ManagedStore, clock: FakeClock) -> None:
    port = suggestions_for(store)
    now = clock.now()
    a = await store.ensure_member("slack", "T1", "C1", "U1", "Ann", now=now)
    b = await store.ensure_member("slack", "T2", "C2", "U2", "Ben", now=now)
    assert await port.suggestion_settings(a.group_id) == (True, 3)
    ids = [await port.add_suggestion(a.group_id, a.member_id, "tip", '{"step": 1}', i % 2 == 0, now) for i in range(4)]
    assert ids[3] is None and all(isinstance(i, int) for i in ids[:3])
    assert await port.open_suggestion_count(a.group_id, a.member_id) == 3
    assert await port.open_suggestion_count(b.group_id, None) == 0
    listed = await port.open_suggestions(a.group_id, 2)
    assert [s.id for s in listed] == ids[:2] and [s.credit for s in listed] == [True, False]
    s = listed[0]
    assert (s.platform, s.group_ext, s.user_id, s.author, s.status) == ("slack", "T1", "U1", "Ann", "open")
    # Deciding happens once, and only in the suggestion's own group.
    assert not await port.decide_suggestion(s.id, b.group_id, "approved", b.member_id, None, now)
    assert await port.decide_suggestion(s.id, a.group_id, "denied", a.member_id, "dup", now)
    assert not await port.decide_suggestion(s.id, a.group_id, "approved", a.member_id, None, now)
    got = await port.get_suggestion(s.id)
    assert got is not None and (got.status, got.reason) == ("denied", "dup")
    await port.reopen_suggestion(s.id)
    await port.set_suggestion_item(s.id, "deck-1#7")
    got = await port.get_suggestion(s.id)
    assert got is not None and (got.status, got.reason, got.item_ref) == ("open", None, "deck-1#7")
    assert await port.get_suggestion(10**12) is None
    await port.set_suggestions_enabled(a.group_id, False)
    assert await port.suggestion_settings(a.group_id) == (False, 3)
    assert await port.suggestion_settings(b.group_id) == (True, 3)
    await port.add_member_notice(a.member_id, "first", now)
    await port.add_member_notice(a.member_id, "second", now)
    assert await port.take_member_notices(b.member_id) == []
    assert await port.take_member_notices(a.member_id) == ["first", "second"]
    assert await port.take_member_notices(a.member_id) == []
    # forget-me takes a member's suggestions and notices with them.
    await port.add_member_notice(a.member_id, "third", now)
    assert await store.forget_member(a.member_id) >= 4
    assert await port.open_suggestion_count(a.group_id, None) == 0


async def test_two_submissions_at_once_never_pass_the_cap(store: ManagedStore, clock: FakeClock) -> None:
    port = suggestions_for(store)
    m = await store.ensure_member("discord", "G", "C", "U", "Una", now=clock.now())
    results = await asyncio.gather(
        *(port.add_suggestion(m.group_id, m.member_id, "tip", "{}", True, clock.now()) for _ in range(8))
    )
    assert sum(r is not None for r in results) == 3
    assert await port.open_suggestion_count(m.group_id, m.member_id) == 3


# ---------------------------------------------------------------------------------------------- console


def console(db: Path, lines: list[str], *, end: str = "\n") -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "STUDYBOT_CONTENT": str(ROOT / "tests" / "fixtures" / "console_pack"),
        "STUDYBOT_LOG_LEVEL": "WARNING",
    }
    env.pop("DISCORD_TOKEN", None)
    return subprocess.run(
        [sys.executable, "-m", "bot", "console", "--user", "alice", "--db", str(db)],
        input="\n".join(lines) + end,
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
    )


def test_the_console_asks_field_by_field_and_asks_again_on_an_error(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    run = console(
        db,
        [
            "/study suggest",
            "Short?",  # too short: asked again after submitting
            "Nothing at all\\nAn owner, a rating and a response plan\\nOnly the date\\nThe budget",
            "BB",  # longer than the field allows: asked again at once
            "B",
            GOOD_QUESTION["explanation"],
            "",  # optional: blank is fine
            GOOD_QUESTION["prompt"],
            "/study suggestions",
        ],
    )
    assert run.returncode == 0, run.stderr
    out = run.stdout
    assert "› Question (\\n for a new line):" in out and "› Topic and difficulty (optional):" in out
    assert "⚠ Right answer: A, B, C or D: At most 1 characters (this has 2)." in out
    assert "⚠ Question: The question needs at least 10 characters (this has 6)." in out
    assert "waits for an admin" in out
    assert "1 suggestion waiting" in out and "An owner, a rating and a response plan" in out


def test_a_blank_required_field_or_the_end_of_input_cancels_cleanly(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    blank = console(db, ["/study suggest tip", "", "/study suggestions"])
    assert blank.returncode == 0, blank.stderr
    assert "Form cancelled — nothing was saved." in blank.stdout and "No suggestions waiting" in blank.stdout
    eof = console(db, ["/study suggest tip", "A tip that is long enough to pass the check."], end="")
    assert eof.returncode == 0, eof.stderr
    assert "Form cancelled — nothing was saved." in eof.stdout and "Traceback" not in eof.stderr
    again = console(db, ["/study suggestions"])
    assert "No suggestions waiting" in again.stdout


async def test_approving_adds_the_item_to_a_group_deck_credited_unless_anonymous(
    service: StudyService, store: ManagedStore, messenger: Messenger
) -> None:
    decks = decks_for(store)  # type: ignore[arg-type]
    Suggestions(suggestions_for(store), {"console": messenger}, approve_to=to_deck(decks)).install(service)  # type: ignore[arg-type]
    named = await open_form(service, "/study suggest", user="bob")
    await submit(service, named, GOOD_QUESTION, user="bob")
    anon = await open_form(service, "/study suggest tip anonymous", user="bob")
    await submit(service, anon, GOOD_TIP, user="bob")
    first, second = await suggestions_for(store).open_suggestions(1, 10)

    (missing,) = await service.handle(inbound(f"/study suggestions approve {first.id} nosuch", admin=True))
    assert 'no deck "nosuch"' in missing.text and "was not approved" in missing.text
    assert (await suggestions_for(store).get_suggestion(first.id)).status == "open"  # type: ignore[union-attr]
    assert messenger.sent == []

    (ok,) = await service.handle(replace(inbound(admin=True), action=f"sb:sug-ok:{first.id}"))
    assert 'to deck "suggestions"' in ok.text
    deck = await decks.find_deck(1, "suggestions")
    assert deck is not None
    (item,) = await decks.deck_items(1, deck.id)
    assert (item.data.kind, item.data.slug, item.credit) == ("question", f"sug-{first.id}", "bob")
    assert item.data.answer == "B" and item.data.choices[1] == "An owner, a rating and a response plan"
    assert (
        await suggestions_for(store).get_suggestion(first.id)
    ).item_ref == f'to deck "suggestions" (item {item.ref})'  # type: ignore[union-attr]
    assert 'approved to deck "suggestions"' in messenger.sent[0][2]

    await decks.create_deck(1, "mine", "", FakeClock().now())
    (ok,) = await service.handle(inbound(f"/study suggestions approve {second.id} mine", admin=True))
    assert 'to deck "mine"' in ok.text
    mine = await decks.find_deck(1, "mine")
    assert mine is not None
    (tip,) = await decks.deck_items(1, mine.id)
    assert (tip.data.kind, tip.data.step, tip.credit) == ("tip", 4, None)  # anonymous: no credit


async def test_deck_add_opens_the_question_form_and_adds_one_checked_item(
    service: StudyService, store: ManagedStore, clock: FakeClock
) -> None:
    decks = decks_for(store)  # type: ignore[arg-type]
    DeckAdd(decks).install(service)
    (member,) = await service.handle(inbound("/study deck add sql"))
    assert "Only admins" in member.text and member.form is None
    (nosuch,) = await service.handle(inbound("/study deck add sql", admin=True))
    assert 'no deck "' in nosuch.text and nosuch.form is None
    (tpm,) = await service.handle(inbound("/study deck add tpm", admin=True))
    assert "built-in" in tpm.text
    deck = await decks.create_deck(1, "sql", "", clock.now())
    assert deck is not None
    form = await open_form(service, "/study deck add sql", admin=True)
    assert form.action == f"sb:form:deck-add:q-{deck.id}" and len(form.fields) == 5
    (bad,) = await submit(service, form, {**GOOD_QUESTION, "answer": "Q"}, admin=True)
    assert bad.form is not None and set(bad.form.errors) == {"answer"}
    assert await decks.deck_items(1, deck.id) == []
    (not_admin,) = await submit(service, form, GOOD_QUESTION)  # a member replaying an admin's form
    assert "Only admins" in not_admin.text
    (ok,) = await submit(service, form, GOOD_QUESTION, admin=True)
    assert 'Added to deck "sql"' in ok.text
    (item,) = await decks.deck_items(1, deck.id)
    assert (item.data.kind, item.data.slug, item.data.answer, item.data.topic) == (
        "question",
        "question-1",
        "B",
        "risk-and-scope",
    )
    tip_form = await open_form(service, "/study deck add sql tip", admin=True)
    await submit(service, tip_form, GOOD_TIP, admin=True)
    assert [i.data.slug for i in await decks.deck_items(1, deck.id)] == ["question-1", "tip-2"]
    # An admin of another group replaying the form adds nothing.
    (other,) = await submit(service, form, GOOD_QUESTION, admin=True, group="g2")
    assert "not in this group" in other.text
    assert len(await decks.deck_items(1, deck.id)) == 2


async def test_an_approved_suggestion_is_posted_with_its_credit(tmp_path: Path) -> None:
    settings = Settings(STUDYBOT_DB=tmp_path / "s.db", STUDYBOT_CONTENT=FIXTURE_PACK)  # type: ignore[call-arg]
    app = await build_app(settings, clock=FakeClock())
    try:
        service = app.service
        form = await open_form(service, "/study suggest", user="bob", name="Bob @everyone")
        await submit(service, form, GOOD_QUESTION, user="bob", name="Bob @everyone")
        (_, listed) = await service.handle(inbound("/study suggestions", admin=True))
        (ok,) = await service.handle(replace(inbound(admin=True), action=listed.buttons[0].action_id))
        assert 'to deck "suggestions"' in ok.text
        (quiz,) = await service.handle(inbound("/study quiz suggestions", user="carol"))
        assert GOOD_QUESTION["prompt"] in quiz.text
        assert "— suggested by \ue000Bob @everyone\ue001" in quiz.text  # marked: no front end pings
    finally:
        await app.close()


async def test_deck_edit_opens_the_form_filled_in_and_changes_the_item_in_place(
    service: StudyService, store: ManagedStore, clock: FakeClock
) -> None:
    decks = decks_for(store)  # type: ignore[arg-type]
    DeckAdd(decks).install(service)
    await service.handle(inbound("help"))  # the group exists
    deck = await decks.create_deck(1, "sql", "", clock.now())
    assert deck is not None
    await submit(service, await open_form(service, "/study deck add sql", admin=True), GOOD_QUESTION, admin=True)
    (before,) = await decks.deck_items(1, deck.id)

    (member,) = await service.handle(inbound("/study deck edit sql question-1"))
    assert "Only admins" in member.text and member.form is None
    (nosuch,) = await service.handle(inbound("/study deck edit sql question-9", admin=True))
    assert "no live item" in nosuch.text and "question-9" in nosuch.text and nosuch.form is None
    (tpm,) = await service.handle(inbound("/study deck edit tpm q-risk-01", admin=True))
    assert "built-in" in tpm.text and tpm.form is None

    form = await open_form(service, "/study deck edit sql question-1", admin=True)
    assert form.action == f"sb:form:deck-edit:{before.id}"
    shown = {f.key: f.default for f in form.fields}
    assert shown["prompt"] == GOOD_QUESTION["prompt"] and shown["answer"] == "B"
    assert shown["choices"].splitlines()[1] == "An owner, a rating and a response plan"
    assert shown["topic"] == "risk-and-scope hard"

    (bad,) = await submit(service, form, {**shown, "answer": "E"}, admin=True)
    assert bad.form is not None and set(bad.form.errors) == {"answer"}
    (other,) = await submit(service, form, {**shown, "answer": "C"}, admin=True, group="g2")
    assert "not a live item of this group" in other.text
    assert (await decks.deck_items(1, deck.id))[0].data.answer == "B", "refused edits changed nothing"

    (ok,) = await submit(service, form, {**shown, "answer": "C", "topic": "risk-and-scope easy"}, admin=True)
    assert "Changed `question-1`" in ok.text
    (after,) = await decks.deck_items(1, deck.id)
    assert (after.id, after.data.slug, after.data.answer, after.data.difficulty) == (before.id, "question-1", "C", 1)

    assert await decks.retire_item(1, after.id, clock.now())
    (late,) = await submit(service, form, shown, admin=True)
    assert "retired or deleted" in late.text
    assert (await decks.items_by_id(1, [after.id]))[0].data.answer == "C"
