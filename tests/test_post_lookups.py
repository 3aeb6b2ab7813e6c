"""Post look-ups in a burst (both stores): the clicks of a burst on a post not yet cached share one query,
and a post changed while that query is under way is never served from the cache as it was."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from bot.core.ports import PostRecord
from bot.storage import ManagedStore, SqliteStore
from bot.storage.rows import SingleFlight

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


async def a_post(store: ManagedStore) -> PostRecord:
    m = await store.ensure_member("console", "g", "c", "u1", "Ann", now=NOW)
    return await store.create_post(m.group_id, m.channel_id, None, "question", "t-a", NOW)


def count_queries(store: Any) -> list[int]:
    """Counts the store's post queries (its `_fetch_post`, what a cache miss runs)."""
    calls: list[int] = []
    fetch = store._fetch_post

    async def counted(post_id: int, *args: Any) -> PostRecord | None:
        calls.append(post_id)
        return await fetch(post_id, *args)

    store._fetch_post = counted
    return calls


async def test_a_burst_of_clicks_on_an_uncached_post_makes_one_query(store: ManagedStore) -> None:
    post = await a_post(store)
    store.invalidate_caches()  # as after a restart: the post is on disk, not in the cache
    queries = count_queries(store)
    got = await asyncio.gather(*(store.get_post(post.id) for _ in range(200)))
    assert got == [post] * 200
    assert queries == [post.id]
    assert await store.get_post(post.id) == post and queries == [post.id], "then served from the cache"


@pytest.mark.parametrize("turns", [0, 1, 2, 3])
async def test_a_post_changed_during_a_look_up_is_read_afresh(store: ManagedStore, turns: int) -> None:
    """Whatever the look-up had reached when the post changed (``turns`` of the event loop: say, its query
    made in the same hop as the change, before it), the post is read afresh afterwards."""
    post = await a_post(store)
    store.invalidate_caches()
    first = asyncio.ensure_future(store.get_post(post.id))
    for _ in range(turns):
        await asyncio.sleep(0)
    await store.set_post_message(post.id, "m-1")
    await first
    later = await store.get_post(post.id)
    assert later is not None and later.message_id == "m-1"


async def test_the_clicks_on_a_question_posted_here_need_no_look_up(store: ManagedStore) -> None:
    """A question post this process made (a quiz, a scheduled post) is served to its burst of clicks as
    made, and with its message id once that is set."""
    post = await a_post(store)
    queries = count_queries(store)
    assert await asyncio.gather(*(store.get_post(post.id) for _ in range(50))) == [post] * 50
    assert queries == []
    await store.set_post_message(post.id, "m-1")
    assert await store.get_post(post.id) == replace(post, message_id="m-1")
    if isinstance(store, SqliteStore):  # PostgreSQL hears of the change as every process does, and reads it
        assert queries == []


async def test_a_missing_post_is_none_for_every_caller(store: ManagedStore) -> None:
    await a_post(store)
    assert await asyncio.gather(*(store.get_post(10_000) for _ in range(20))) == [None] * 20


async def test_one_caller_cancelled_leaves_the_others_their_answer() -> None:
    flights: SingleFlight[str, int] = SingleFlight()
    started, release = asyncio.Event(), asyncio.Event()
    kept: list[int] = []

    async def fetch() -> int:
        started.set()
        await release.wait()
        return 7

    a = asyncio.ensure_future(flights.run("k", None, fetch, kept.append))
    b = asyncio.ensure_future(flights.run("k", None, fetch, kept.append))
    await started.wait()
    a.cancel()
    release.set()
    assert await b == 7
    assert a.cancelled() and kept == [7]


async def test_an_error_reaches_every_caller_and_nothing_is_kept() -> None:
    flights: SingleFlight[str, int] = SingleFlight()
    kept: list[int] = []

    async def fetch() -> int:
        await asyncio.sleep(0)
        raise OSError("server went away")

    got = await asyncio.gather(*(flights.run("k", None, fetch, kept.append) for _ in range(3)), return_exceptions=True)
    assert [str(e) for e in got] == ["server went away"] * 3 and kept == []


async def test_a_forgotten_or_other_tagged_flight_is_not_joined_nor_kept() -> None:
    flights: SingleFlight[str, int] = SingleFlight()
    kept: list[int] = []
    values = iter([1, 2, 3])

    async def fetch() -> int:
        await asyncio.sleep(0)
        return next(values)

    old = asyncio.ensure_future(flights.run("k", "v1", fetch, kept.append))
    await asyncio.sleep(0)
    flights.forget("k")  # say, the post was revealed meanwhile
    new = asyncio.ensure_future(flights.run("k", "v1", fetch, kept.append))
    newer = asyncio.ensure_future(flights.run("k", "v2", fetch, kept.append))  # saw a later data version
    assert await old == 1 and await new == 2 and await newer == 3
    assert kept == [3], "only the current flight's result is cached"


@pytest.mark.parametrize("n", [1, 50])
async def test_every_caller_of_a_flight_gets_its_result(n: int) -> None:
    flights: SingleFlight[int, str] = SingleFlight()

    async def fetch() -> str:
        await asyncio.sleep(0)
        return "row"

    assert await asyncio.gather(*(flights.run(1, None, fetch, lambda _: None) for _ in range(n))) == ["row"] * n
