"""The open card form (`bot.core.item_form`, kind ``card``): `/study deck add <deck> card` and `/study deck
edit` on a card, checked by the deck file's own `Card` rules, saved in place so practice and reviews stay."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from bot.core.deck_add import DeckAdd
from bot.core.deck_files import parse_file
from bot.core.forms import check
from bot.core.item_form import ItemDraft, item_form, preview, read_item
from bot.core.markup import plain
from bot.storage import ManagedStore, decks_for
from tests.conftest import FakeClock, Outside, inbound
from tests.test_deck_cards import wired
from tests.test_forms import console, open_form, submit
from tests.test_practice import step

GOOD_CARD = {
    "front": "Tell me about a time you cut scope to hold a date.",
    "back": "- what was at stake\n- who agreed and how\n- what you would do again",
    "topic": "Risk-And-Scope",
    "tags": "behavioural, scope  trade-offs",
    "source": "",
}


def test_the_card_form_has_five_inputs_and_the_deck_files_rules() -> None:
    form = item_form("deck-add", "card", "Add a card", arg="c-1")
    assert [f.key for f in form.fields] == ["front", "back", "topic", "tags", "source"]
    assert all(len(f.label) <= 45 for f in form.fields)
    draft = read_item("card", GOOD_CARD)
    assert isinstance(draft, ItemDraft)
    assert (draft.topic, draft.tags, draft.source) == (
        "risk-and-scope",
        ("behavioural", "scope", "trade-offs"),
        "general",
    )
    assert ItemDraft.from_dict("card", draft.as_dict()) == draft
    # The same card in a deck file reads the same.
    yaml_file = (
        "cards:\n  - id: c1\n    front: Tell me about a time you cut scope to hold a date.\n"
        '    back: "- what was at stake\\n- who agreed and how\\n- what you would do again"\n'
        "    topic: risk-and-scope\n    tags: [behavioural, scope, trade-offs]\n"
    )
    (from_file,) = parse_file("d.yaml", yaml_file.encode()).items
    assert (from_file.front, from_file.back, from_file.topic, from_file.tags, from_file.source) == (
        draft.front, draft.back, draft.topic, draft.tags, draft.source
    )  # fmt: skip

    # Bad inputs: each on its field, in words.
    bad = read_item(
        "card",
        {"front": "short", "back": "x" * 2001, "topic": "two words", "tags": "ok #bad", "source": "my book#2"},
    )
    assert isinstance(bad, dict) and set(bad) == {"front", "back", "topic", "tags", "source"}
    assert bad["front"] == "The front needs at least 10 characters."
    assert bad["back"] == "The back takes at most 2,000 characters."
    assert "one word" in bad["topic"] and "#bad" in plain(bad["tags"]) and "book#chapter" in bad["source"]
    many = read_item("card", {**GOOD_CARD, "tags": " ".join(f"t{n}" for n in range(11))})
    assert many == {"tags": "At most 10 tags (this has 11)."}
    # An empty front, or an oversized back, is refused by the form's generic checks before the rules.
    _, generic = check(form, {**GOOD_CARD, "front": "   ", "back": "y" * 2001})
    assert generic == {"front": "This field is required.", "back": "At most 2000 characters (this has 2001)."}
    # Member text never pings: the preview marks it for every front end to escape.
    pinging = read_item("card", {**GOOD_CARD, "front": "@everyone what is <!channel> for?", "tags": ""})
    assert isinstance(pinging, ItemDraft)
    assert "\ue000@everyone what is <!channel> for?\ue001" in preview(pinging)


async def test_deck_add_card_then_edit_it_in_place_keeps_its_practice(
    store: ManagedStore, clock: FakeClock, outside: Outside
) -> None:
    service = await wired(store, clock)
    decks = decks_for(store)  # type: ignore[arg-type]
    DeckAdd(decks).install(service)
    await service.handle(inbound("help"))  # the group exists
    deck = await decks.create_deck(1, "sql", "", clock.now())
    assert deck is not None

    (member,) = await service.handle(inbound("/study deck add sql card"))
    assert "Only admins" in member.text and member.form is None
    form = await open_form(service, "/study deck add sql card", admin=True)
    assert form.action == f"sb:form:deck-add:c-{deck.id}" and form.title == "Add a card"
    (bad,) = await submit(service, form, {**GOOD_CARD, "front": "short"}, admin=True)
    assert bad.form is not None and set(bad.form.errors) == {"front"}
    assert {f.key: f.default for f in bad.form.fields}["back"] == GOOD_CARD["back"], "what was typed is kept"
    assert await decks.deck_items(1, deck.id) == []
    (ok,) = await submit(service, form, GOOD_CARD, admin=True)
    assert 'Added to deck "sql"' in ok.text and "(card-1)" in ok.text
    (item,) = await decks.deck_items(1, deck.id)
    assert (item.data.kind, item.data.slug, item.data.topic, item.data.tags, item.data.source) == (
        "card", "card-1", "risk-and-scope", ("behavioural", "scope", "trade-offs"), "general"
    )  # fmt: skip

    # Practised and rated: a practice card exists for it.
    (dealt,) = await service.handle(inbound("cards sql"))
    assert GOOD_CARD["front"] in plain(dealt.text)
    (shown,) = await service.handle(inbound(action=step(dealt, "show")))
    await service.handle(inbound(action=step(shown, "r3")))
    assert await outside("SELECT card_key FROM practice_cards") == [(item.ref,)]

    # Edit: the form opens filled in; a bad value is refused and changes nothing.
    edit = await open_form(service, "/study deck edit sql card-1", admin=True)
    assert edit.action == f"sb:form:deck-edit:{item.id}" and edit.title == "Edit a card"
    shown_values = {f.key: f.default for f in edit.fields}
    assert shown_values == {
        "front": GOOD_CARD["front"],
        "back": GOOD_CARD["back"],
        "topic": "risk-and-scope",
        "tags": "behavioural scope trade-offs",
        "source": "general",
    }
    (bad_topic,) = await submit(service, edit, {**shown_values, "topic": "Not A Topic"}, admin=True)
    assert bad_topic.form is not None and set(bad_topic.form.errors) == {"topic"}
    (member_edit,) = await submit(service, edit, {**shown_values, "front": "A member's replay of the form."})
    assert "Only admins" in member_edit.text
    new_front = "Describe a date you held by cutting scope, and who agreed."
    changed = {**shown_values, "front": new_front, "tags": "", "source": "interviews#3"}
    (other,) = await submit(service, edit, changed, admin=True, group="g2")  # an admin of another group
    assert "not a live item of this group" in other.text
    assert (await decks.items_by_id(1, [item.id]))[0].data.front == GOOD_CARD["front"], "refusals change nothing"

    (saved,) = await submit(service, edit, changed, admin=True)
    assert "Changed `card-1`" in saved.text and "practice attempts and reviews stay" in saved.text
    (after,) = await decks.deck_items(1, deck.id)
    assert (after.id, after.data.slug, after.data.front, after.data.tags, after.data.source) == (
        item.id, "card-1", new_front, (), "interviews#3"
    )  # fmt: skip
    assert await outside("SELECT card_key FROM practice_cards") == [(item.ref,)], "its practice card stays"
    (again,) = await service.handle(inbound("cards sql"))
    assert new_front in plain(again.text)


async def test_a_card_id_of_another_group_cannot_be_edited(store: ManagedStore, clock: FakeClock) -> None:
    service = await wired(store, clock)
    decks = decks_for(store)  # type: ignore[arg-type]
    DeckAdd(decks).install(service)
    await service.handle(inbound("help"))
    await service.handle(inbound("help", group="g2"))
    mine = await decks.create_deck(1, "sql", "", clock.now())
    theirs = await decks.create_deck(2, "sql", "", clock.now())
    assert mine is not None and theirs is not None
    await submit(service, await open_form(service, "/study deck add sql card", admin=True), GOOD_CARD, admin=True)
    (card,) = await decks.deck_items(1, mine.id)

    # g2's admin crafts the edit and add forms with g1's ids: refused, nothing changes.
    crafted = replace(item_form("deck-edit", "card", "Edit a card"), arg=str(card.id))
    (edit,) = await submit(
        service, crafted, {**GOOD_CARD, "front": "Overwritten by another group?"}, admin=True, group="g2"
    )
    assert "not a live item of this group" in edit.text and edit.form is None
    add = replace(item_form("deck-add", "card", "Add a card"), arg=f"c-{mine.id}")
    (added,) = await submit(service, add, GOOD_CARD, admin=True, group="g2")
    assert "not in this group" in added.text
    (opened,) = await service.handle(inbound(action=crafted.action, admin=True, group="g2"))
    assert opened.form is None
    assert [i.data.front for i in await decks.deck_items(1, mine.id)] == [GOOD_CARD["front"]]
    assert await decks.deck_items(2, theirs.id) == []
    # In g2 the slug names nothing.
    (nosuch,) = await service.handle(inbound("/study deck edit sql card-1", admin=True, group="g2"))
    assert "no live item" in nosuch.text


def test_the_console_asks_for_a_card_field_by_field(tmp_path: Path) -> None:
    run = console(
        tmp_path / "c.db",
        [
            "/study deck create sql",
            "/study deck add sql card",
            "Short?",  # too short: asked again after submitting
            "- the why\\n- an alternative",
            "Two Words",  # not a topic: asked again after submitting
            "",  # tags: optional
            "",  # source: optional
            "How do you say no to a sponsor without losing them?",
            "stakeholders",
            "/study deck show sql",
        ],
    )
    assert run.returncode == 0, run.stderr
    out = run.stdout
    assert (
        "› Front: the prompt (\\n for a new line):" in out
        and "› Tags, separated by spaces or commas (optional):" in out
    )
    assert "⚠ Front: the prompt: The front needs at least 10 characters." in out
    assert "⚠ Topic: A topic is one word" in out
    assert 'Added to deck "sql" as item d:1 (card-1)' in out
    assert "• `card-1` · card · How do you say no to a sponsor without losing them?" in out  # deck show
