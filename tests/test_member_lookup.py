"""What the member lookup reads beside the member (`MemberRef.notice`, ``last_day``, ``deck``), on SQLite
and PostgreSQL: a command of a member with nothing waiting makes no read of its own for notices or for the
channel's deck, and what another path or another process changes is still seen at the next command —
a notice shown once, a freeze announced, a channel's new deck used by the next quiz."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from typing import Any

import pytest

from bot.core.content import ContentLibrary
from bot.core.deck_commands import Catalog, DeckCommands
from bot.core.learning import LearningEngine
from bot.core.markup import plain
from bot.core.reminders import Reminders
from bot.core.service import StudyService
from bot.core.suggestions import Suggestions
from bot.storage import ManagedStore, decks_for, learning_for, reminders_for, suggestions_for
from bot.storage.sqlite_store import SqliteStore
from tests.conftest import FakeClock, inbound
from tests.test_decks import ROW, admin, button, csv_file, imported
from tests.test_learning import quiz_and_answer

APPROVED = "✅ Your suggestion #1 is in the deck now."
BLOCKED = "⏰ Reminders are off: your direct messages are closed to studybot."


class Counted:
    """Counts the calls of one store method (the notice reads a command may make)."""

    def __init__(self, target: Any, name: str) -> None:
        self.calls = 0
        real = getattr(target, name)

        async def counted(*args: Any, **kw: Any) -> Any:
            self.calls += 1
            return await real(*args, **kw)

        setattr(target, name, counted)


def wired(store: ManagedStore, library: ContentLibrary, clock: FakeClock) -> tuple[StudyService, Counted, Counted]:
    """A service with suggestions' and reminders' member notices, as `build_app` wires them; with counters
    on the two notice reads."""
    service = StudyService(store, library, clock, rng=random.Random(7))
    LearningEngine(learning_for(store), store, library, clock, charts=False).install(service)  # type: ignore[arg-type]
    suggestion_store, reminder_store = suggestions_for(store), reminders_for(store)  # type: ignore[arg-type]
    Suggestions(suggestion_store, {}).install(service)
    Reminders(reminder_store, service, learning_for(store), {}, clock).install()  # type: ignore[arg-type]
    return service, Counted(suggestion_store, "take_member_notices"), Counted(reminder_store, "member_notes")


async def say(service: StudyService, text: str, user: str = "alice") -> str:
    return "\n".join(plain(r.text) for r in await service.handle(inbound(text, user=user)))


async def heard(store: ManagedStore, changes: int) -> None:
    """Until ``store`` has heard of ``changes`` changes made by other processes (PostgreSQL's NOTIFY is
    asynchronous; SQLite sees another process's commit at the next look-up)."""
    if isinstance(store, SqliteStore):
        return
    deadline = time.monotonic() + 5
    while store.cache_stats["received"] < changes:
        assert time.monotonic() < deadline, "the change was never heard of"
        await asyncio.sleep(0.01)


async def member_id(store: ManagedStore, user: str = "alice") -> int:
    ref = await store.ensure_member("console", "g1", "c1", user, user, now=FakeClock().now())
    return ref.member_id


async def test_a_command_with_nothing_waiting_reads_no_notices(
    store: ManagedStore, library: ContentLibrary, clock: FakeClock
) -> None:
    service, taken, notes = wired(store, library, clock)
    await quiz_and_answer(service, "alice", right=True)  # a new member, active today
    before = (taken.calls, notes.calls)
    for text in ("path", "tip", "progress", "leaderboard", "quiz"):
        await say(service, text)
    assert (taken.calls, notes.calls) == before, "the member lookup said nothing waits"
    clock.advance(days=3)  # days missed: a freeze may have to be told, so the notes are read
    await say(service, "path")
    assert notes.calls == before[1] + 1


@pytest.mark.parametrize("path", ["suggestion", "reminders"])
async def test_a_notice_queued_in_another_process_is_shown_once_at_the_next_command(
    store: ManagedStore, twin: ManagedStore, library: ContentLibrary, clock: FakeClock, path: str
) -> None:
    service, _, _ = wired(store, library, clock)
    await quiz_and_answer(service, "alice", right=True)
    assert "Reminders on" in await say(service, "remind on")  # what a closed DM turns off
    assert "notice" not in await say(service, "path")  # cached now, nothing waiting
    mid = await member_id(twin)
    if path == "suggestion":
        await suggestions_for(twin).add_member_notice(mid, APPROVED, clock.now())  # type: ignore[arg-type]
        notice = APPROVED
    else:
        await reminders_for(twin).block_reminders(mid, BLOCKED)  # type: ignore[arg-type]
        notice = BLOCKED
    await heard(store, 1)
    assert notice in await say(service, "path")
    assert notice not in await say(service, "path"), "once"
    assert notice not in await say(service, "tip")


async def test_a_notice_queued_in_this_process_is_shown_once_at_the_next_command(
    store: ManagedStore, library: ContentLibrary, clock: FakeClock
) -> None:
    service, _, _ = wired(store, library, clock)
    await quiz_and_answer(service, "alice", right=True)
    await say(service, "path")
    await suggestions_for(store).add_member_notice(await member_id(store), APPROVED, clock.now())  # type: ignore[arg-type]
    assert APPROVED in await say(service, "path")
    assert APPROVED not in await say(service, "path")
    await say(service, "remind on")
    await reminders_for(store).block_reminders(await member_id(store), BLOCKED)  # type: ignore[arg-type]
    assert BLOCKED in await say(service, "progress")
    assert BLOCKED not in await say(service, "progress")


async def test_a_freeze_is_told_at_the_next_command_after_missed_days_of_a_cached_member(
    store: ManagedStore, library: ContentLibrary, clock: FakeClock
) -> None:
    service, _, _ = wired(store, library, clock)
    for _ in range(7):  # seven days earn a freeze; the member stays cached all along
        await quiz_and_answer(service, "alice", right=True)
        await say(service, "path")
        clock.advance(days=1)
    clock.advance(days=1)  # one day missed
    assert "🧊 A freeze kept your 7-day streak (1 missed day)." in await say(service, "path")
    assert "freeze" not in await say(service, "path"), "once"


def deck_service(store: ManagedStore, library: ContentLibrary, clock: FakeClock) -> StudyService:
    decks = decks_for(store)  # type: ignore[arg-type]
    catalog = Catalog(decks, library)
    service = StudyService(store, library, clock, rng=random.Random(7), catalog=catalog)
    LearningEngine(learning_for(store), store, library, clock, charts=False, catalog=catalog).install(service)  # type: ignore[arg-type]
    DeckCommands(decks, catalog).install(service)
    return service


async def quiz_prompt(service: StudyService) -> str:
    [q] = await service.handle(inbound("/study quiz"))
    return plain(q.text)


@pytest.mark.parametrize("where", ["this process", "another process"])
async def test_the_next_quiz_uses_the_channels_deck_as_changed(
    store: ManagedStore, twin: ManagedStore, library: ContentLibrary, clock: FakeClock, where: str
) -> None:
    service = deck_service(store, library, clock)
    await service.handle(admin("/study deck create mine"))
    await imported(service, "mine", csv_file(ROW))
    assert "burndown" not in await quiz_prompt(service)  # the channel posts from tpm; alice is cached
    changer = store if where == "this process" else twin
    ref = await changer.ensure_member("console", "g1", "c1", "alice", "alice", now=clock.now())
    changes: Callable[[int], Any] = lambda n: heard(store, n) if changer is twin else asyncio.sleep(0)  # noqa: E731
    await decks_for(changer).set_channel_deck(ref.channel_id, "mine")  # type: ignore[arg-type]
    await changes(1)
    assert "burndown" in await quiz_prompt(service), "the channel's new deck"
    if changer is store:
        confirm = button(await service.handle(admin("/study deck delete mine")), "Delete the deck")
        await service.handle(admin(action=confirm))
    else:  # the other process deletes it: the channel is back on tpm
        found = await decks_for(twin).find_deck(ref.group_id, "mine")  # type: ignore[arg-type]
        assert found is not None
        await decks_for(twin).delete_deck(ref.group_id, found.id, clock.now())  # type: ignore[arg-type]
        await changes(2)
    assert "burndown" not in await quiz_prompt(service), "back on tpm once the deck is gone"
