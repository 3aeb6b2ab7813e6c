"""The `DeckStore` contract, on SQLite and PostgreSQL (the `store` fixture runs each test on both)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from bot.core.decks import TPM, DeckStore, ItemData, item_ref
from bot.core.ports import MemberRef
from bot.storage import ManagedStore, decks_for

T = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def question(slug: str, prompt: str = "Which of these is a risk response strategy?", **kw: object) -> ItemData:
    base = ItemData(
        kind="question",
        slug=slug,
        topic="risk",
        difficulty=2,
        prompt=prompt,
        choices=("Avoid", "Ignore", "Forget", "Deny"),
        answer="A",
        explanation="Avoiding a risk changes the plan so that the risk cannot happen at all.",
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def tip(slug: str) -> ItemData:
    return ItemData(
        kind="tip", slug=slug, step=2, text="Volunteer to run the stand-up for a week.", action="Ask your lead today."
    )


def card(slug: str) -> ItemData:
    return ItemData(
        kind="card", slug=slug, topic="behavioural", front="Tell me about a project that slipped.",
        back="STAR; what you changed afterwards", tags=("star", "delivery"),
    )  # fmt: skip


async def member(store: ManagedStore, group: str = "g1", user: str = "u1", channel: str = "c1") -> MemberRef:
    return await store.ensure_member("discord", group, channel, user, user, now=T)


@pytest.fixture
def decks(store: ManagedStore) -> DeckStore:
    return decks_for(store)  # type: ignore[arg-type]


async def test_decks_are_created_listed_and_found_per_group(store: ManagedStore, decks: DeckStore) -> None:
    a, b = await member(store, "g1"), await member(store, "g2")
    made = await decks.create_deck(a.group_id, "sql", "SQL basics", T)
    assert made is not None and made.name == "sql" and made.description == "SQL basics"
    assert await decks.create_deck(a.group_id, "sql", "again", T) is None  # one live deck per name
    assert await decks.create_deck(b.group_id, "sql", "theirs", T) is not None  # names are per group
    await decks.add_item(a.group_id, made.id, question("q-1"), T)
    await decks.add_item(a.group_id, made.id, tip("t-1"), T)
    await decks.add_item(a.group_id, made.id, card("c-1"), T)
    listed = await decks.decks(a.group_id)
    assert [(d.name, d.counts) for d in listed] == [("sql", {"question": 1, "tip": 1, "card": 1})]
    found = await decks.find_deck(b.group_id, "sql")
    assert found is not None and found.description == "theirs"
    assert await decks.find_deck(a.group_id, "nope") is None


async def test_items_keep_their_id_through_edits_and_round_trip_every_field(
    store: ManagedStore, decks: DeckStore
) -> None:
    m = await member(store)
    d = await decks.create_deck(m.group_id, "mine", "", T)
    assert d is not None
    q = await decks.add_item(m.group_id, d.id, question("q-1"), T)
    c = await decks.add_item(m.group_id, d.id, card("c-1"), T, credit="Ada")
    assert q is not None and c is not None
    assert c.data == card("c-1") and c.credit == "Ada"
    assert (
        await decks.add_item(m.group_id, d.id, question("q-1", prompt="Another prompt for the same slug?"), T) is None
    )
    edited = question("q-1", prompt="Which response removes the risk entirely?")
    assert await decks.update_item(m.group_id, q.id, edited, T + timedelta(hours=1))
    (after,) = await decks.items_by_id(m.group_id, [q.id])
    assert after.id == q.id and after.ref == item_ref(q.id) and after.data == edited
    assert after.updated_at == T + timedelta(hours=1) and after.created_at == T
    # Kind is part of the identity: an update cannot turn a question into a tip.
    assert not await decks.update_item(m.group_id, q.id, replace(tip("q-1")), T)


async def test_retired_items_leave_the_pools_but_still_resolve(store: ManagedStore, decks: DeckStore) -> None:
    m = await member(store)
    d = await decks.create_deck(m.group_id, "mine", "", T)
    assert d is not None
    q1 = await decks.add_item(m.group_id, d.id, question("q-1"), T)
    q2 = await decks.add_item(m.group_id, d.id, question("q-2"), T)
    assert q1 is not None and q2 is not None
    assert await decks.retire_item(m.group_id, q1.id, T)
    assert not await decks.retire_item(m.group_id, q1.id, T)  # already retired
    assert [i.id for i in await decks.deck_items(m.group_id, d.id)] == [q2.id]
    assert [i.id for i in await decks.deck_items(m.group_id, d.id, retired=True)] == [q1.id, q2.id]
    assert [i.id for i in await decks.group_items(m.group_id, "question")] == [q2.id]
    (gone,) = await decks.items_by_id(m.group_id, [q1.id])
    assert gone.retired_at == T
    (listed,) = await decks.decks(m.group_id)
    assert listed.counts == {"question": 1} and listed.retired == 1


async def test_another_groups_items_and_decks_are_out_of_reach(store: ManagedStore, decks: DeckStore) -> None:
    mine, theirs = await member(store, "g1"), await member(store, "g2")
    d = await decks.create_deck(theirs.group_id, "secret", "", T)
    assert d is not None
    q = await decks.add_item(theirs.group_id, d.id, question("q-1"), T)
    assert q is not None
    assert await decks.add_item(mine.group_id, d.id, question("q-2"), T) is None
    assert not await decks.update_item(mine.group_id, q.id, question("q-1", prompt="Hijacked prompt text here?"), T)
    assert not await decks.retire_item(mine.group_id, q.id, T)
    assert await decks.items_by_id(mine.group_id, [q.id]) == []
    assert await decks.group_items(mine.group_id, "question") == []
    assert await decks.delete_deck(mine.group_id, d.id, T) is None
    assert not await decks.apply_import(mine.group_id, d.id, [question("q-3")], [], T)
    (still,) = await decks.items_by_id(theirs.group_id, [q.id])
    assert still.data == question("q-1") and still.retired_at is None
    assert [i.slug for i in [x.data for x in await decks.deck_items(theirs.group_id, d.id)]] == ["q-1"]
    assert [x.id for x in await decks.items_by_id(None, [q.id])] == [q.id]  # the operator's export sees all


async def test_deleting_a_deck_keeps_answered_items_retired_and_frees_the_name(
    store: ManagedStore, decks: DeckStore
) -> None:
    m = await member(store)
    d = await decks.create_deck(m.group_id, "mine", "", T)
    assert d is not None
    seen = await decks.add_item(m.group_id, d.id, question("q-1"), T)
    unseen = await decks.add_item(m.group_id, d.id, question("q-2"), T)
    assert seen is not None and unseen is not None
    await store.create_post(m.group_id, m.channel_id, m.member_id, "question", seen.ref, T)
    await decks.set_channel_deck(m.channel_id, "mine")
    outcome = await decks.delete_deck(m.group_id, d.id, T)
    assert outcome is not None and (outcome.deleted, outcome.retired, outcome.channels_reset) == (1, 1, 1)
    assert await decks.decks(m.group_id) == []
    assert await decks.channel_deck(m.channel_id) == TPM
    kept = await decks.items_by_id(m.group_id, [seen.id, unseen.id])
    assert [(i.id, i.retired_at) for i in kept] == [(seen.id, T)]
    again = await decks.create_deck(m.group_id, "mine", "a new one", T)
    assert again is not None and again.id != d.id
    assert await decks.deck_items(m.group_id, again.id) == []
    # A deck nobody saw goes entirely.
    outcome = await decks.delete_deck(m.group_id, again.id, T)
    assert outcome is not None and (outcome.deleted, outcome.retired) == (0, 0)


async def test_an_import_writes_everything_or_nothing(store: ManagedStore, decks: DeckStore) -> None:
    m = await member(store)
    d = await decks.create_deck(m.group_id, "mine", "", T)
    assert d is not None
    old = await decks.add_item(m.group_id, d.id, question("q-1"), T)
    assert old is not None
    pending = await decks.save_import(m.group_id, d.id, m.user_id, "{}", T, T + timedelta(hours=1))
    # The third new item breaks a database rule half-way through (difficulty 7): nothing stays.
    bad = [question("q-2"), question("q-3"), question("q-4", difficulty=7), question("q-5")]
    changed = [(old.id, question("q-1", prompt="A changed prompt that must not stay?"))]
    with pytest.raises(Exception):  # noqa: B017 - each driver raises its own integrity error
        await decks.apply_import(m.group_id, d.id, bad, changed, T, pending)
    assert [i.data for i in await decks.deck_items(m.group_id, d.id, retired=True)] == [question("q-1")]
    assert await decks.pending_import(m.group_id, m.user_id, pending, T) is not None  # still there to retry
    good = [question("q-2"), question("q-3")]
    assert await decks.apply_import(m.group_id, d.id, good, changed, T, pending)
    assert [i.data.slug for i in await decks.deck_items(m.group_id, d.id)] == ["q-1", "q-2", "q-3"]
    (first,) = await decks.items_by_id(m.group_id, [old.id])
    assert first.data.prompt == "A changed prompt that must not stay?"
    # Confirming twice (a double click) writes once.
    assert not await decks.apply_import(m.group_id, d.id, [question("q-9")], [], T, pending)
    assert len(await decks.deck_items(m.group_id, d.id)) == 3


async def test_an_import_brings_a_retired_item_back(store: ManagedStore, decks: DeckStore) -> None:
    m = await member(store)
    d = await decks.create_deck(m.group_id, "mine", "", T)
    assert d is not None
    q = await decks.add_item(m.group_id, d.id, question("q-1"), T)
    assert q is not None
    await decks.retire_item(m.group_id, q.id, T)
    assert await decks.apply_import(m.group_id, d.id, [], [(q.id, question("q-1"))], T)
    assert [i.id for i in await decks.deck_items(m.group_id, d.id)] == [q.id]


async def test_pending_imports_belong_to_their_group_and_admin_and_expire(
    store: ManagedStore, decks: DeckStore
) -> None:
    m, other = await member(store, "g1", "u1"), await member(store, "g2", "u1")
    d = await decks.create_deck(m.group_id, "mine", "", T)
    assert d is not None
    pid = await decks.save_import(m.group_id, d.id, "u1", '{"items": []}', T, T + timedelta(hours=1))
    found = await decks.pending_import(m.group_id, "u1", pid, T)
    assert found is not None and found.payload == '{"items": []}' and found.deck_id == d.id
    assert await decks.pending_import(m.group_id, "u2", pid, T) is None  # another admin
    assert await decks.pending_import(other.group_id, "u1", pid, T) is None  # another group
    assert await decks.pending_import(m.group_id, "u1", pid, T + timedelta(hours=1)) is None  # expired
    assert not await decks.drop_import(other.group_id, "u1", pid)
    assert await decks.drop_import(m.group_id, "u1", pid)
    assert await decks.pending_import(m.group_id, "u1", pid, T) is None


async def test_channel_decks_and_notices(store: ManagedStore, decks: DeckStore) -> None:
    m = await member(store)
    other = await member(store, "g1", "u1", "c2")
    assert await decks.channel_deck(m.channel_id) == TPM
    await decks.set_channel_deck(m.channel_id, "all")
    assert await decks.channel_deck(m.channel_id) == "all"
    assert await decks.channel_deck(other.channel_id) == TPM
    await decks.set_channel_deck(m.channel_id, TPM)
    assert await decks.channel_deck(m.channel_id) == TPM
    await decks.add_deck_notice(m.group_id, m.channel_id, "first", T)
    await decks.add_deck_notice(m.group_id, m.channel_id, "second", T)
    await decks.add_deck_notice(m.group_id, other.channel_id, "elsewhere", T)
    taken = await decks.take_deck_notices(m.group_id)
    assert [(n.channel, n.text) for n in taken] == [("c1", "second"), ("c2", "elsewhere")]
    assert await decks.take_deck_notices(m.group_id) == []
