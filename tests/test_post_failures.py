"""A post that fails leaves nothing behind, and the admin is told what really happened (issue 12, item 4).

`/study schedule post-now` used to keep the question it could not post: the next post revealed an answer
nobody had seen, and the question counted as asked. And every failure read "check the bot's
permissions", a rate limit or a platform outage included.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from bot.config import Settings
from bot.core.content import ContentLibrary
from bot.core.service import StudyService
from bot.scheduling import Scheduler
from bot.storage import ManagedStore, schedules_for
from tests.conftest import FakeClock, inbound, read_rows
from tests.fakes import FakeChatGateway

T = datetime(2026, 6, 10, 7, 0, tzinfo=UTC)


def poster(store: ManagedStore, library: ContentLibrary, gw: FakeChatGateway) -> Scheduler:
    clock = FakeClock(T)
    service = StudyService(store, library, clock, rng=random.Random(1))
    sched = Scheduler(schedules_for(store), service, {gw.platform: gw}, clock, Settings.model_validate({}), name="a")
    sched.install_commands()
    return sched


async def post_now(sched: Scheduler) -> str:
    (reply,) = await sched.service.handle(inbound("schedule post-now", admin=True, user="admin"))
    assert reply.private
    return reply.text


async def channel_posts(store: ManagedStore) -> list[tuple[str, str | None]]:
    return await read_rows(store, "SELECT item_id, message_id FROM posts WHERE member_id IS NULL ORDER BY id")


@pytest.mark.parametrize("status", [429, 500, 403])
async def test_a_failed_post_now_leaves_no_question_behind(
    store: ManagedStore, library: ContentLibrary, status: int
) -> None:
    gw = FakeChatGateway()
    sched = poster(store, library, gw)
    gw.fail_next(1, status=status, retry_after=30)
    await post_now(sched)
    assert gw.posts == []
    assert await channel_posts(store) == []  # not on record: not revealed later, not counted as asked

    assert (await post_now(sched)).startswith("📣 Posted a question")
    assert len(gw.questions) == 1
    assert gw.reveals == []  # nobody saw the failed one, so its answer is not given away
    ((_, message_id),) = await channel_posts(store)
    assert message_id == "m1"
    # A text answer goes to the question members saw.
    (ack,) = await sched.service.handle(inbound("answer A", user="bob"))
    assert "Correct" in ack.text or "Not quite" in ack.text


async def test_an_unsent_scheduled_question_is_never_revealed_nor_counted(
    store: ManagedStore, library: ContentLibrary
) -> None:
    """A scheduled question still being retried (or given up) is not revealed by the next post."""
    gw = FakeChatGateway()
    sched = poster(store, library, gw)
    m = await store.ensure_member("console", "g1", "c1", "admin", "admin", now=T)
    pending = await store.create_post(m.group_id, m.channel_id, None, "question", "t-a", T)  # never sent
    schedules = schedules_for(store)
    history = await schedules.channel_history(m.channel_id)
    assert history.counts == {} and history.last_kind is None  # not counted as asked
    assert await schedules.unrevealed_questions(m.channel_id, T) == []
    assert (await post_now(sched)).startswith("📣 Posted a question")
    assert gw.reveals == []  # the next post does not reveal it
    assert pending.id not in [p.id for p in await schedules.unrevealed_questions(m.channel_id, T)]


@pytest.mark.parametrize(
    ("status", "expected", "not_expected"),
    [
        (429, "rate-limiting the bot right now (HTTP 429); nothing was posted. Try again in 30 s.", "permissions"),
        (500, "had a problem on its side (HTTP 500); nothing was posted. Try again in a minute.", "permissions"),
        (403, "no access to this channel (HTTP 403 Missing Access). Check the bot's permissions", "Try again"),
    ],
)
async def test_post_now_tells_the_admin_what_really_happened(
    store: ManagedStore, library: ContentLibrary, status: int, expected: str, not_expected: str
) -> None:
    gw = FakeChatGateway()
    sched = poster(store, library, gw)
    gw.fail_next(1, status=status, retry_after=30)
    text = await post_now(sched)
    assert expected in text, text
    assert not_expected not in text, text
