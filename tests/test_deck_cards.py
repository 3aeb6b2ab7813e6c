"""Open cards of a group's own decks (kind ``card`` in the decks' item table) through `/study cards`:
dealt, shown, rated like the shipped prompts; another group's deck out of reach; a retired card refused."""

from __future__ import annotations

import random
from datetime import UTC, datetime

from bot.core.content import ContentLibrary
from bot.core.decks import ItemData
from bot.core.learning import LearningEngine
from bot.core.markup import plain
from bot.core.practice import DeckCards, PracticeEngine
from bot.core.service import StudyService
from bot.storage import ManagedStore, decks_for, learning_for, practice_for
from tests.conftest import ROOT, FakeClock, Outside, inbound
from tests.test_practice import step

NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)


def card(slug: str, front: str, back: str) -> ItemData:
    return ItemData(kind="card", slug=slug, front=front, back=back, topic="estimation", tags=("pm",))


async def wired(store: ManagedStore, clock: FakeClock) -> StudyService:
    library = ContentLibrary.load(ROOT / "content")
    service = StudyService(store, library, clock, rng=random.Random(3))
    learning = LearningEngine(learning_for(store), store, library, clock, charts=False)
    learning.install(service)
    cards = DeckCards(library, decks_for(store))  # type: ignore[arg-type]
    PracticeEngine(practice_for(store), cards, learning, store).install(service)
    return service


async def test_a_groups_deck_cards_are_practised_like_the_shipped_prompts(
    store: ManagedStore, clock: FakeClock, outside: Outside
) -> None:
    svc = await wired(store, clock)
    member = await store.ensure_member("console", "g1", "c1", "alice", "alice", now=NOW)
    decks = decks_for(store)  # type: ignore[arg-type]
    deck = await decks.create_deck(member.group_id, "estimates", "", NOW)
    assert deck is not None
    one = await decks.add_item(
        member.group_id,
        deck.id,
        card("c1", "What is a three-point estimate?", "Optimistic, likely and pessimistic, weighted"),
        NOW,
    )
    await decks.add_item(
        member.group_id,
        deck.id,
        ItemData(kind="tip", slug="t1", step=1, text="A tip that is long enough to pass", action="Do something useful"),
        NOW,
    )
    assert one is not None

    [dealt] = await svc.handle(inbound("cards estimates"))
    assert "What is a three-point estimate?" in dealt.text and "Flashcards" in dealt.text
    [shown] = await svc.handle(inbound(action=step(dealt, "show")))
    assert "Optimistic, likely and pessimistic, weighted" in plain(shown.text)
    [rated] = await svc.handle(inbound(action=step(shown, "r2")))
    assert rated.text.startswith("Rated Hard")
    assert await outside("SELECT kind, card_key FROM practice_cards") == [("card", one.ref)]

    [mixed] = await svc.handle(inbound("cards"))  # every deck: the shipped prompts and the group's cards
    assert mixed.buttons
    [progress] = await svc.handle(inbound("progress"))
    assert "Flashcards: 1 rated" in plain(progress.text)

    # Someone in another group cannot reach the deck, and a retired card is refused.
    [other] = await svc.handle(inbound("cards estimates", group="g2"))
    assert 'No deck "' in plain(other.text) and "decks: tpm" in other.text
    [again] = await svc.handle(inbound("cards estimates"))
    assert await decks.retire_item(member.group_id, one.id, NOW)
    [refused] = await svc.handle(inbound(action=step(again, "show")))
    assert "retired" in refused.text
    [empty] = await svc.handle(inbound("cards estimates"))
    assert "no open cards" in empty.text
