"""SQLite commits a batch of posts alone (quiz, tip, review) without an fsync, so a power cut may lose
posts whose buttons are already out. Their ids must never be handed to another post afterwards: a click
on a lost post's button says the question is gone, never records an answer to some other question."""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.core.ports import DealReads, MemberRef, PostRecord
from bot.storage import SqliteStore
from bot.storage.sqlite_store import POST_ID_BLOCK, POST_ID_MARK

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)

pytestmark = pytest.mark.sqlite_only


def power_cut_after(path: Path, kept: int) -> None:
    """What a power cut leaves when the commits after post ``kept`` had not reached the disk: those posts
    are gone and AUTOINCREMENT's counter is back where it was (the durable mark, written with an fsync
    before any of them, stays)."""
    with sqlite3.connect(path) as conn:
        conn.execute("DELETE FROM posts WHERE id > ?", (kept,))
        conn.execute("UPDATE sqlite_sequence SET seq = ? WHERE name = 'posts'", (kept,))


@dataclass(frozen=True)
class Item:
    id: str


async def made_by_create_post(store: SqliteStore, m: MemberRef) -> PostRecord:
    return await store.create_post(m.group_id, m.channel_id, m.member_id, "question", "t-a", NOW)


async def made_by_deal_post(store: SqliteStore, m: MemberRef) -> PostRecord:
    """A quiz's or tip's post: read, picked and inserted in one write."""
    reads = DealReads(tallies=True)
    dealt = await store.deal_post(m.group_id, m.channel_id, m.member_id, "question", NOW, reads, lambda _: Item("t-a"))
    assert dealt is not None
    return dealt[0]


@pytest.mark.parametrize("make", [made_by_create_post, made_by_deal_post])
async def test_ids_of_posts_lost_in_a_power_cut_are_never_handed_out_again(
    db_path: Path, make: Callable[[SqliteStore, MemberRef], Awaitable[PostRecord]]
) -> None:
    store = SqliteStore(db_path)
    await store.start()
    m = await store.ensure_member("discord", "g", "c", "u1", "Ann", now=NOW)
    posts = [await make(store, m) for _ in range(3)]
    await store.close()
    power_cut_after(db_path, posts[0].id)

    store = SqliteStore(db_path)
    await store.start()
    try:
        assert await store.get_post(posts[1].id) is None, "the lost post is gone: its button says so"
        again = await store.create_post(m.group_id, m.channel_id, m.member_id, "question", "t-b", NOW)
        assert again.id > posts[-1].id, f"post id {again.id} was handed out before the power cut"
    finally:
        await store.close()


async def test_the_durable_mark_moves_a_block_ahead_of_the_posts(db_path: Path) -> None:
    store = SqliteStore(db_path)
    await store.start()
    m = await store.ensure_member("discord", "g", "c", "u1", "Ann", now=NOW)
    first = await store.create_post(m.group_id, m.channel_id, m.member_id, "question", "t-a", NOW)
    await store.close()
    with sqlite3.connect(db_path) as conn:
        (mark,) = conn.execute("SELECT MAX(seq) FROM sqlite_sequence WHERE name = ?", (POST_ID_MARK,)).fetchone()
    assert mark == first.id + POST_ID_BLOCK


async def test_a_delivery_post_made_meanwhile_keeps_ids_in_time_order(db_path: Path) -> None:
    """Posts keep AUTOINCREMENT's order (the newest question is the one `/study answer` answers)."""
    store = SqliteStore(db_path)
    await store.start()
    try:
        m = await store.ensure_member("discord", "g", "c", "u1", "Ann", now=NOW)
        quiz = await store.create_post(m.group_id, m.channel_id, m.member_id, "question", "t-a", NOW)
        later = await store.create_post(m.group_id, m.channel_id, m.member_id, "question", "t-b", NOW)
        assert later.id == quiz.id + 1
        last = await store.last_question_post(m.channel_id, m.member_id)
        assert last is not None and last.id == later.id
    finally:
        await store.close()
