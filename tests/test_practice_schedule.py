"""Interview prompts as daily posts (issue 16): `kind interview`, `mix` rotating question, tip and
interview, the channel post's "Practise this" button dealing the prompt privately to whoever clicks it
(Discord through discord.py and the fake, and the console), and migration 0011 keeping every post, id and
schedule on both stores."""

from __future__ import annotations

import io
import random
import shutil
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bot.adapters.console_adapter import ConsoleAdapter
from bot.bootstrap import App, build_app
from bot.config import Settings
from bot.core import actions
from bot.core.commands import UsageError, parse
from bot.core.content import ContentLibrary
from bot.core.posting import MIX, pick_channel_item
from bot.core.schedule import ChannelHistory
from bot.storage import ManagedStore
from bot.storage.migrations import DEFAULT_DIR, migrate
from tests.conftest import FIXTURE_PACK, ROOT, FakeClock, Outside, inbound
from tests.fake_discord import EPHEMERAL, FakeDiscord
from tests.test_discord import ADMIN, ALICE, BOB, Bot, custom_ids, reply_of, start_bot

SHIPPED = ROOT / "content"


def history(*kinds: str) -> ChannelHistory:
    return ChannelHistory({}, kinds[-1] if kinds else None, {})


def test_mix_rotates_question_tip_interview_and_skips_kinds_the_pack_lacks() -> None:
    pack = ContentLibrary.load(SHIPPED).pack
    rng = random.Random(1)
    assert MIX == ("question", "tip", "interview")
    seen = [pick_channel_item(pack, history(last), "mix", rng).kind for last in (None, "question", "tip", "interview")]  # type: ignore[union-attr]
    assert seen == ["question", "tip", "interview", "question"]
    no_prompts = ContentLibrary.load(FIXTURE_PACK).pack  # the fixture pack has no interview prompts
    assert pick_channel_item(no_prompts, history("tip"), "mix", rng).kind == "question"  # type: ignore[union-attr]
    assert pick_channel_item(no_prompts, history(), "interview", rng) is None
    first = pick_channel_item(pack, history(), "interview", rng)
    assert first is not None and first.kind == "interview" and first.item_id.startswith("iv-")


def test_the_schedule_grammar_takes_kind_interview() -> None:
    assert parse("schedule set 09:00 kind interview").args["kind"] == "interview"
    with pytest.raises(UsageError, match="question, tip, interview or mix"):
        parse("schedule set 09:00 kind essay")


async def test_console_post_now_posts_an_interview_prompt_with_practise_this(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, STUDYBOT_DB=tmp_path / "study.db", STUDYBOT_CONTENT=SHIPPED)  # type: ignore[call-arg]
    app = await build_app(settings, clock=FakeClock())
    out = io.StringIO()
    console = ConsoleAdapter(app.service, "admin", stdin=io.StringIO(), stdout=out)
    app.gateways["console"] = console
    try:
        await console.handle_line("/study schedule set 09:00 kind interview")
        await console.handle_line("/study schedule post-now")
        text = out.getvalue()
        assert "🎤 Interview question of the day" in text and "[Practise this]" in text
        assert "Posted an interview question here" in text
        [(post_id, item)] = (
            sqlite3.connect(tmp_path / "study.db")
            .execute("SELECT id, item_id FROM posts WHERE kind = 'interview' AND member_id IS NULL")
            .fetchall()
        )
        prompt = next(p for p in app.library.pack.interview if p.id == item)
        for user in ("ann", "ben"):  # each clicker gets the prompt privately, as their own card
            [dealt] = await app.service.handle(
                inbound(action=actions.practise_this_action(post_id), user=user, group="local", channel="console")
            )
            assert dealt.private and prompt.prompt in dealt.text
            assert [b.label for b in dealt.buttons] == ["Write an answer", "Show points"]
        [bad] = await app.service.handle(inbound(action=actions.practise_this_action(post_id + 999)))
        assert "isn't available" in bad.text
    finally:
        await app.close()
    rows = sqlite3.connect(tmp_path / "study.db").execute("SELECT card_key FROM attempts").fetchall()
    assert rows == [(item,), (item,)]


# ---------------------------------------------------------------------- Discord


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as f:
        yield f


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[App]:
    settings = Settings(_env_file=None, STUDYBOT_DB=tmp_path / "study.db", STUDYBOT_CONTENT=SHIPPED)  # type: ignore[call-arg]
    a = await build_app(settings, clock=FakeClock())
    yield a
    await a.close()


@pytest.fixture
async def live(app: App, fake: FakeDiscord) -> AsyncIterator[Bot]:
    b = await start_bot(app.service, fake)
    app.gateways["discord"] = b.fe
    yield b
    await b.stop()


@pytest.mark.sqlite_only
async def test_discord_practise_this_deals_the_channel_prompt_privately(app: App, live: Bot, fake: FakeDiscord) -> None:
    await reply_of(fake, "schedule set", {"time": "09:00", "kind": "interview"}, user=ADMIN)
    posted = await reply_of(fake, "schedule post-now", user=ADMIN)
    assert posted["content"].startswith("📣 Posted an interview question"), posted["content"]
    (message,) = fake.channel_messages(fake.channel_id)
    assert "Interview question of the day" in message["content"]
    (practise,) = custom_ids(message)
    assert practise.startswith("sb:prx:")
    for user in (ALICE, BOB):
        cb = await fake.callback(await fake.dispatch_interaction(fake.click(practise, message, user=user)))
        assert cb.json["type"] == 4 and cb.json["data"]["flags"] & EPHEMERAL
        dealt: dict[str, Any] = cb.json["data"]
        assert [c["label"] for row in dealt["components"] for c in row["components"]] == [
            "Write an answer",
            "Show points",
        ]
    assert sqlite3.connect(app.store.path).execute("SELECT COUNT(DISTINCT member_id) FROM attempts").fetchone() == (2,)  # type: ignore[union-attr]


# ---------------------------------------------------------------------- migration 0011


@pytest.mark.sqlite_only
def test_migration_0011_keeps_posts_ids_and_schedules(tmp_path: Path) -> None:
    before = tmp_path / "before"
    before.mkdir()
    for f in sorted(DEFAULT_DIR.glob("*.sql")):
        if f.name < "0011":
            shutil.copy(f, before / f.name)
    conn = sqlite3.connect(tmp_path / "s.db", isolation_level=None)
    conn.execute("PRAGMA foreign_keys=ON")
    migrate(conn, before)
    at = "2026-11-23T09:00:00.000000Z"
    conn.execute("INSERT INTO groups (platform, external_id, created_at) VALUES ('console', 'g', ?)", (at,))
    conn.execute("INSERT INTO channels (group_id, external_id) VALUES (1, 'c')")
    conn.execute("INSERT INTO members (group_id, user_id, joined_at) VALUES (1, 'u', ?)", (at,))
    for i in range(3):
        conn.execute(
            "INSERT INTO posts (group_id, channel_id, kind, item_id, created_at) VALUES (1, 1, 'question', ?, ?)",
            (f"q{i}", at),
        )
    conn.execute(
        "INSERT INTO answers (member_id, post_id, group_id, question_id, choice, correct, first_try, answered_at) VALUES (1, 2, 1, 'q1', 'A', 1, 1, ?)",
        (at,),
    )
    conn.execute("DELETE FROM posts WHERE id = 3")  # the high-water mark (3) is above MAX(id) now
    conn.execute(
        "INSERT INTO schedules (channel_id, local_time, tz, days, kind, created_at, updated_at, notice_pending) VALUES (1, '09:00', 'UTC', '0,1', 'mix', ?, ?, 1)",
        (at, at),
    )
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute(
            "INSERT INTO posts (group_id, channel_id, kind, item_id, created_at) VALUES (1, 1, 'interview', 'iv-01', ?)",
            (at,),
        )

    assert migrate(conn)[0] == "0011_interview_posts"  # and any later ones
    assert conn.execute("SELECT id, kind, item_id FROM posts ORDER BY id").fetchall() == [
        (1, "question", "q0"),
        (2, "question", "q1"),
    ]
    assert conn.execute("SELECT post_id FROM answers").fetchall() == [(2,)]
    assert conn.execute("SELECT kind, notice_pending FROM schedules").fetchall() == [("mix", 1)]
    new = conn.execute(
        "INSERT INTO posts (group_id, channel_id, kind, item_id, created_at) VALUES (1, 1, 'interview', 'iv-01', ?) RETURNING id",
        (at,),
    ).fetchone()
    assert new == (4,)  # id 3 is never handed out again
    conn.execute("UPDATE schedules SET kind = 'interview'")
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    indexes = {
        r[0]
        for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'posts' AND sql IS NOT NULL"
        )
    }
    assert indexes == {"posts_latest", "posts_dealt", "posts_unrevealed"}


async def test_both_stores_take_interview_posts_and_schedules(store: ManagedStore, outside: Outside) -> None:
    now = datetime(2026, 11, 23, 9, tzinfo=UTC)
    m = await store.ensure_member("console", "g", "c", "u", "U", now=now)
    post = await store.create_post(m.group_id, m.channel_id, None, "interview", "iv-03", now)
    assert (await store.get_post(post.id)).kind == "interview"  # type: ignore[union-attr]
    from datetime import time

    from bot.core.schedule import ScheduleRule
    from bot.storage import schedules_for

    schedules = schedules_for(store)  # type: ignore[arg-type]
    await schedules.save_schedule(m.channel_id, ScheduleRule(time(9), "UTC", (0, 1), "interview"), now)
    assert (await schedules.schedule_for(m.channel_id)).rule.kind == "interview"  # type: ignore[union-attr]
    hist = await schedules.channel_history(m.channel_id)
    assert hist.last_kind is None  # unsent posts are not history


@pytest.mark.sqlite_only
async def test_an_interview_post_pings_the_chosen_role_and_names_its_thread(
    app: App, live: Bot, fake: FakeDiscord
) -> None:
    """An interview post is a channel post like the others: it mentions the schedule's role and its
    discussion thread says what it is (it was named "Tip" and pinged nobody)."""
    role = fake.add_role(fake.guild.id, 777000111, "Learners", 0)
    await reply_of(
        fake, "schedule set", {"time": "09:00", "kind": "interview", "ping": role, "thread": "on"}, user=ADMIN
    )
    await reply_of(fake, "schedule post-now", user=ADMIN)
    (message,) = fake.channel_messages(fake.channel_id)
    assert message["content"].startswith("<@&777000111> 🎤 **Interview question of the day**"), message["content"]
    assert fake.threads[int(message["id"])]["name"].startswith("Interview question · ")
