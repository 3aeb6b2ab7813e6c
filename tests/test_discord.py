"""The Discord front end through the real discord.py client, against the loopback fake in fake_discord.py."""

from __future__ import annotations

import asyncio
import copy
import logging
import re
import shutil
import sqlite3
import statistics
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import discord
import pytest

from bot.adapters import discord_adapter
from bot.adapters.discord_adapter import (
    BOT_PERMISSIONS,
    DiscordFrontEnd,
    DiscordStartError,
    StudyCommands,
    chunks,
    command_paths,
    match_zones,
)
from bot.bootstrap import App, build_app, make_frontends
from bot.config import Settings
from bot.core.commands import SPECS, Command, Spec
from bot.core.messages import Button, Inbound, Post, Reply
from bot.core.ports import DeliveryError
from bot.core.service import ERROR_TEXT, Context, StudyService
from tests.conftest import FIXTURE_PACK, FakeClock
from tests.fake_discord import ADMIN_PERMISSIONS, EPHEMERAL, FakeDiscord, FakeFile, FakeRole, FakeUser, Recorded
from tests.test_anki import anki_package_of

# A front-end test: the store behind the service is not its subject (the storage tests run on both).
pytestmark = pytest.mark.sqlite_only

ALICE = FakeUser(830000000000000001, "alice")
BOB = FakeUser(830000000000000002, "bob")
ADMIN = FakeUser(830000000000000003, "ada", ADMIN_PERMISSIONS)
#: A role below studybot's own (which sits at position 1 in the fake), so studybot may give it.
REGULARS = FakeRole(860000000000000001, "Regulars", 0)
ADMIN_PATHS = [name.replace(".", " ") for name, spec in SPECS.items() if spec.admin]

#: Ack latencies (seconds) of every interaction in this module, printed at the end.
LATENCIES: list[float] = []


@pytest.fixture(scope="module", autouse=True)
def _latency_report() -> Iterator[None]:
    yield
    if LATENCIES:
        ordered = sorted(LATENCIES)
        p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
        print(
            f"\nDiscord ack latency, one interaction at a time, over {len(ordered)} interactions: "
            f"p50 {statistics.median(ordered) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, max {ordered[-1] * 1000:.1f} ms"
        )


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as f:
        yield f
        LATENCIES.extend(f.ack_latencies())


class Bot:
    """A running front end and its task."""

    def __init__(self, fe: DiscordFrontEnd, task: asyncio.Task[None]) -> None:
        self.fe = fe
        self.task = task

    async def stop(self) -> None:
        await self.fe.close()
        await asyncio.wait_for(self.task, 5)


async def start_bot(service: StudyService, fake: FakeDiscord, **kw: Any) -> Bot:
    fe = DiscordFrontEnd(service, fake.token, guild_ready_timeout=0.05, **kw)
    task = asyncio.create_task(fe.run())
    ready = asyncio.create_task(fe.ready.wait())
    await asyncio.wait({task, ready}, timeout=5, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        task.result()  # raises the start-up error
    assert fe.ready.is_set(), "the client did not get READY from the fake"
    return Bot(fe, task)


@pytest.fixture
async def bot(service: StudyService, fake: FakeDiscord) -> AsyncIterator[Bot]:
    b = await start_bot(service, fake)
    yield b
    await b.stop()


def top_level(path: str) -> str:
    """The top-level command a path lives under on Discord: admin commands under /study-admin."""
    spec = SPECS.get(path.replace(" ", "."))
    return "study-admin" if spec is not None and spec.restricted else "study"


async def command(
    fake: FakeDiscord, path: str, options: dict[str, Any] | None = None, **kw: Any
) -> tuple[int, Recorded]:
    kw.setdefault("command", top_level(path))
    iid = await fake.dispatch_interaction(fake.slash(path, options, **kw))
    return iid, await fake.callback(iid)


async def reply_of(fake: FakeDiscord, path: str, options: dict[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
    """The message the member finally sees for a command (following a defer to its edit)."""
    iid, cb = await command(fake, path, options, **kw)
    if cb.json["type"] == 5:
        await fake.followups(iid)
    return fake.message_of(cb)


def custom_ids(message: dict[str, Any]) -> list[str]:
    return [c["custom_id"] for row in message["components"] for c in row["components"]]


def rows(db: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql, args).fetchall()


def dump(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        return list(conn.iterdump())


# ---------------------------------------------------------------------------------------------- start-up


def synced_paths(command: dict[str, Any]) -> set[str]:
    """The subcommand paths of a synced top-level command's JSON (``"schedule set"`` …)."""
    out: set[str] = set()
    for o in command.get("options") or []:
        if o["type"] == 2:
            out |= {f"{o['name']} {sub['name']}" for sub in o["options"]}
        elif o["type"] == 1:
            out.add(o["name"])
    return out


async def test_login_syncs_study_and_study_admin_globally_without_privileged_intents(
    bot: Bot, fake: FakeDiscord
) -> None:
    synced = {c["name"]: c for c in fake.commands[None]}
    assert list(synced) == ["study", "study-admin"]
    assert fake.identifies[0]["intents"] == discord.Intents(guilds=True).value  # guilds only, nothing privileged
    # Members never see /study-admin: Discord shows it only to Manage Server (server owners may re-assign it).
    admin = synced["study-admin"]
    assert int(admin["default_member_permissions"]) == discord.Permissions(manage_guild=True).value
    assert admin["dm_permission"] is False
    assert synced["study"]["default_member_permissions"] is None  # everyone
    # Every command of the core's grammar is a subcommand of exactly one of them (path done is the `done`
    # option of path): the member ones under /study, the admin and operator ones under /study-admin.
    members = {name.replace(".", " ") for name, spec in SPECS.items() if not spec.restricted and name != "path.done"}
    admins = {name.replace(".", " ") for name, spec in SPECS.items() if spec.restricted}
    assert synced_paths(synced["study"]) == members
    assert synced_paths(admin) == admins
    assert not any(p.startswith(("schedule", "content", "export")) for p in synced_paths(synced["study"]))
    assert set(command_paths(StudyCommands(bot.fe))) <= members
    study = synced["study"]
    subs = {o["name"]: o for o in study["options"]}
    admin_subs = {o["name"]: o for o in admin["options"]}
    assert {o["name"] for o in admin_subs["schedule"]["options"]} == {
        "show",
        "preview",
        "set",
        "pause",
        "resume",
        "skip",
        "post-now",
    }
    letter = subs["answer"]["options"][0]
    assert [c["value"] for c in letter["choices"]] == ["A", "B", "C", "D"] and letter["required"]
    done = subs["path"]["options"][0]
    assert (done["name"], done["min_value"], done["max_value"], done["required"]) == ("done", 1, 6, False)
    scope = subs["leaderboard"]["options"][0]
    assert [c["value"] for c in scope["choices"]] == ["week", "all", "hide", "show"]
    assert subs["timezone"]["options"][0]["autocomplete"] is True
    member = subs["progress"]["options"][0]
    assert member["type"] == 6  # a user picker


async def test_a_command_added_to_the_grammar_lands_on_discord_without_adapter_code(
    service: StudyService, fake: FakeDiscord, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What another feature does: a new admin command and a new member command in the core's SPECS.
    monkeypatch.setitem(SPECS, "widget.frob", Spec("/study widget frob <n> [fast]", "frob the widget", admin=True))
    monkeypatch.setitem(SPECS, "gizmo", Spec("/study gizmo", "a gizmo for you"))
    seen: list[Inbound] = []
    handle = service.handle

    async def recording(inbound: Inbound) -> list[Reply]:
        seen.append(inbound)
        return await handle(inbound)

    monkeypatch.setattr(service, "handle", recording)
    b = await start_bot(service, fake)
    try:
        synced = {c["name"]: c for c in fake.commands[None]}
        assert "widget frob" in synced_paths(synced["study-admin"]) and "gizmo" in synced_paths(synced["study"])
        assert "widget frob" not in synced_paths(synced["study"])
        widget = next(o for o in synced["study-admin"]["options"] if o["name"] == "widget")
        (frob,) = widget["options"]
        assert frob["description"] == "frob the widget"
        assert [(o["name"], o["description"], o["type"]) for o in frob["options"]] == [("options", "<n> [fast]", 3)]
        await reply_of(fake, "widget frob", {"options": "3 fast"}, user=ADMIN, command="study-admin")
        await reply_of(fake, "gizmo", user=ALICE)
        # The core gets the same text as from Slack or the console: one grammar.
        assert [i.text for i in seen] == ["widget frob 3 fast", "gizmo"]
        assert seen[0].is_admin and not seen[1].is_admin
    finally:
        await b.stop()


async def test_a_guild_setting_syncs_to_that_server_only(service: StudyService, fake: FakeDiscord) -> None:
    b = await start_bot(service, fake, guild_id=fake.guild.id)
    try:
        assert None not in fake.commands
        assert [c["name"] for c in fake.commands[fake.guild.id]] == ["study", "study-admin"]
    finally:
        await b.stop()


async def test_a_rejected_token_is_a_clear_error_without_the_token(
    service: StudyService, fake: FakeDiscord, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "MTIz.wrong-token.abcdef"
    fe = DiscordFrontEnd(service, secret, guild_ready_timeout=0.05)
    with caplog.at_level(logging.DEBUG), pytest.raises(DiscordStartError) as err:
        await asyncio.wait_for(fe.run(), 5)
    assert "rejected DISCORD_TOKEN" in str(err.value)
    assert secret not in str(err.value) and secret not in caplog.text
    await fe.close()  # safe after a failed run
    await fe.close()


def test_make_frontends_adds_discord_when_a_token_is_set(tmp_path: Path) -> None:
    settings = Settings(DISCORD_TOKEN="x", STUDYBOT_DISCORD_GUILD=42, STUDYBOT_DB=tmp_path / "s.db")  # type: ignore[call-arg]

    async def go() -> None:
        app = await build_app(settings)
        try:
            fronts = make_frontends(app, console_user="me")
            discord_fe = [f for f in fronts if f.platform == "discord"]
            assert len(discord_fe) == 1 and isinstance(discord_fe[0], DiscordFrontEnd)
            assert discord_fe[0].guild_id == 42
            assert not any(f.platform == "console" for f in fronts)
        finally:
            await app.close()

    asyncio.run(go())


# ---------------------------------------------------------------------------------------------- the app


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[App]:
    """The whole wired-up bot (content, learning, scheduling commands) on a temp database."""
    settings = Settings(STUDYBOT_DB=tmp_path / "study.db", STUDYBOT_CONTENT=FIXTURE_PACK)  # type: ignore[call-arg]
    a = await build_app(settings, clock=FakeClock())
    yield a
    await a.close()


@pytest.fixture
async def live(app: App, fake: FakeDiscord) -> AsyncIterator[Bot]:
    b = await start_bot(app.service, fake)
    app.gateways["discord"] = b.fe  # what serve() does: the scheduler posts through it
    yield b
    await b.stop()


def right_letter(content: str) -> str:
    """The fixture pack's prompts say which letter is right."""
    m = re.search(r"test question ([ABCD])", content)
    assert m, content
    return m.group(1)


async def test_quiz_buttons_record_one_answer_and_a_second_click_changes_nothing(
    app: App, live: Bot, fake: FakeDiscord
) -> None:
    _, cb = await command(fake, "quiz", user=ALICE)
    assert cb.json["type"] == 4 and cb.json["data"]["flags"] & EPHEMERAL
    question = fake.message_of(cb)
    ids = custom_ids(question)
    assert [i.rsplit(":", 1)[1] for i in ids] == ["A", "B", "C", "D"]
    post_id = int(ids[0].split(":")[2])
    assert all(i == f"sb:ans:{post_id}:{letter}" for i, letter in zip(ids, "ABCD", strict=True))
    assert rows(app.store.path, "SELECT kind FROM posts WHERE id = ?", post_id) == [("question",)]

    right = right_letter(question["content"])
    click = await fake.dispatch_interaction(fake.click(f"sb:ans:{post_id}:{right}", question, user=ALICE))
    first = await fake.callback(click)
    assert first.json["type"] == 4 and first.json["data"]["flags"] & EPHEMERAL
    assert first.json["data"]["content"].startswith("✅ Correct")
    wrong = "A" if right != "A" else "B"
    again = await fake.callback(await fake.dispatch_interaction(fake.click(f"sb:ans:{post_id}:{wrong}", question)))
    assert "already answered" in again.json["data"]["content"] and again.json["data"]["flags"] & EPHEMERAL
    assert rows(app.store.path, "SELECT choice, correct FROM answers WHERE post_id = ?", post_id) == [(right, 1)]
    assert rows(app.store.path, "SELECT answered, correct, points FROM members WHERE user_id = ?", str(ALICE.id)) == [
        (1, 1, 1)
    ]


async def test_malformed_answer_button_ids_are_answered_as_invalid_not_left_hanging(
    app: App, live: Bot, fake: FakeDiscord
) -> None:
    _, cb = await command(fake, "quiz", user=ALICE)
    question = fake.message_of(cb)
    for custom_id in ("sb:ans:²:A", "sb:ans:①:B", "sb:ans:٣:A", f"sb:ans:{2**64}:C", "sb:ans:1:E"):
        # Discord only sends clicks on buttons a message carries: a message carrying this one.
        forged = copy.deepcopy(question)
        forged["components"][0]["components"][0]["custom_id"] = custom_id
        iid = await fake.dispatch_interaction(fake.click(custom_id, forged, user=ALICE))
        reply = (await fake.callback(iid)).json
        assert reply["type"] == 4 and reply["data"]["flags"] & EPHEMERAL, custom_id
        assert "no longer valid" in reply["data"]["content"], (custom_id, reply["data"]["content"])
    assert rows(app.store.path, "SELECT COUNT(*) FROM answers") == [(0,)]
    # A well-formed click is still answered exactly once (the templates do not overlap).
    post_id = int(custom_ids(question)[0].split(":")[2])
    iid = await fake.dispatch_interaction(fake.click(f"sb:ans:{post_id}:A", question, user=ALICE))
    assert (await fake.callback(iid)).json["data"]["content"].startswith(("✅", "❌"))
    await asyncio.sleep(0.2)
    assert len(fake.find("POST", rf"/interactions/{iid}/[^/]+/callback")) == 1


async def test_buttons_sent_leave_no_state_in_the_client_and_clicks_are_served_by_id(
    app: App, live: Bot, fake: FakeDiscord
) -> None:
    """Every question dealt carries four buttons: the client registers nothing for them, and a click is
    served by its custom id alone, without discord.py rebuilding the message's view for it."""
    for _ in range(3):
        _, cb = await command(fake, "quiz", user=ALICE)
    views = live.fe.client._connection._view_store
    assert not views._views and not views._dynamic_items and not views._synced_message_views
    question = fake.message_of(cb)
    iid = await fake.dispatch_interaction(fake.click(custom_ids(question)[0], question, user=ALICE))
    assert (await fake.callback(iid)).json["data"]["content"].startswith(("✅", "❌"))


async def test_member_commands_reach_the_core_and_change_the_database(app: App, live: Bot, fake: FakeDiscord) -> None:
    db = app.store.path
    help_msg = await reply_of(fake, "help")
    assert "/study quiz" in help_msg["content"] and help_msg["flags"] & EPHEMERAL

    question = await reply_of(fake, "quiz")
    letter = right_letter(question["content"])
    answered = await reply_of(fake, "answer", {"letter": letter})
    assert answered["content"].startswith("✅ Correct")
    assert rows(db, "SELECT choice FROM answers") == [(letter,)]

    assert (await reply_of(fake, "tip"))["content"].startswith("💡")
    assert "Your path" in (await reply_of(fake, "path"))["content"]
    done = await reply_of(fake, "path", {"done": 3})
    assert "Step 3" in done["content"]
    assert rows(db, "SELECT step FROM path_steps") == [(3,)]

    zone = await reply_of(fake, "timezone", {"zone": "America/New York"})  # a space typed for "_"
    assert "America/New_York" in zone["content"]
    assert rows(db, "SELECT tz FROM members WHERE user_id = ?", str(ALICE.id)) == [("America/New_York",)]
    bad = await reply_of(fake, "timezone", {"zone": "Europe/Berln"})
    assert "Europe/Berlin" in bad["content"]  # the core's "did you mean"
    assert rows(db, "SELECT tz FROM members WHERE user_id = ?", str(ALICE.id)) == [("America/New_York",)]

    board = await reply_of(fake, "leaderboard", {"scope": "all"})
    assert board["flags"] & EPHEMERAL == 0 and "alice" in board["content"]  # the leaderboard is public
    await reply_of(fake, "leaderboard", {"scope": "hide"})
    assert rows(db, "SELECT leaderboard_hidden FROM members WHERE user_id = ?", str(ALICE.id)) == [(1,)]

    review = await reply_of(fake, "review")
    assert review["flags"] & EPHEMERAL and review["content"] and ERROR_TEXT not in review["content"]


async def test_progress_answers_at_once_and_the_chart_follows_for_another_member(
    app: App, live: Bot, fake: FakeDiscord
) -> None:
    await reply_of(fake, "quiz", user=BOB)
    iid, cb = await command(fake, "progress", {"member": BOB}, user=ALICE)
    assert cb.json["type"] == 4 and cb.json["data"]["flags"] & EPHEMERAL  # the text at once, only alice sees it
    assert "Progress — bob" in cb.json["data"]["content"]
    (chart,) = await fake.followups(iid, within=30)
    assert chart.method == "POST" and chart.json["flags"] & EPHEMERAL
    assert "Progress chart — bob" in chart.json["content"]
    assert [name for name, _ in chart.files] == ["progress.png"] and chart.files[0][1][:8] == b"\x89PNG\r\n\x1a\n"
    mine = await reply_of(fake, "progress", user=ALICE)
    assert "Progress — alice" in mine["content"] and mine["flags"] & EPHEMERAL


def test_buttons_sent_without_discord_py_are_laid_out_as_its_views_lay_them_out() -> None:
    # The first response is posted as a raw payload (`_answer`); posts and uploads go through discord.py's
    # View. A member must see the same buttons either way: rows of five, labels and ids cut to Discord's
    # limits, an unknown style shown as secondary, at most 25.
    buttons = [Button(f"sb:x:{i}", f"Choice {i}", "primary" if i % 2 else "danger") for i in range(7)]
    buttons += [Button("sb:" + "y" * 120, "L" * 90, "no-such-style"), Button("sb:z", "")]
    buttons += [Button(f"sb:w:{i}", f"More {i}") for i in range(20)]
    view = discord_adapter._view(buttons)
    assert view is not None

    def shown(rows: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:  # what Discord shows: no defaults
        return [[{k: v for k, v in c.items() if v not in (False, None)} for c in r["components"]] for r in rows]

    assert shown(discord_adapter._components(buttons)) == shown(view.to_components())  # type: ignore[arg-type]
    rows = discord_adapter._components(buttons)
    assert [len(r["components"]) for r in rows] == [5, 5, 5, 5, 5]
    assert rows[1]["components"][2] == {"type": 2, "style": 2, "custom_id": "sb:" + "y" * 97, "label": "L" * 80}


class Held:
    """The service, holding one member's commands until `release` is set (a slow core for them alone)."""

    def __init__(self, service: StudyService, user: FakeUser) -> None:
        self.service = service
        self.user = str(user.id)
        self.release = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.service, name)

    async def handle(self, inbound: Inbound) -> list[Reply]:
        if inbound.user == self.user:
            await self.release.wait()
        return await self.service.handle(inbound)


async def test_a_chart_waits_until_every_member_in_hand_has_an_answer(app: App, fake: FakeDiscord) -> None:
    # In a burst, every chart uploaded first would delay the answers still to go (due within 3 s); a chart
    # can wait. Bob's command is held in the core; Alice's progress text goes at once, her chart only
    # after Bob's answer has gone.
    held = Held(app.service, BOB)
    b = await start_bot(held, fake)  # type: ignore[arg-type]
    try:
        warm, _ = await command(fake, "progress", user=ALICE)
        await fake.followups(warm, within=30)  # the chart worker is up
        bob = await fake.dispatch_interaction(fake.slash("leaderboard", user=BOB))
        iid, cb = await command(fake, "progress", user=ALICE)
        assert cb.json["type"] == 4 and "Progress — alice" in cb.json["data"]["content"]
        await asyncio.sleep(1.5)  # long enough to draw and send a chart
        assert not [r for r in fake.requests if r.path.startswith(f"/webhooks/{fake.app_id}/") and r.at > cb.at]
        held.release.set()
        bob_cb = await fake.callback(bob)
        (chart,) = await fake.followups(iid, within=30)
        assert [name for name, _ in chart.files] == ["progress.png"] and chart.at > bob_cb.at
    finally:
        held.release.set()
        await b.stop()


async def test_a_chart_waits_for_other_answers_two_seconds_at_most(
    app: App, fake: FakeDiscord, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(discord_adapter, "FOLLOWUP_WAIT", 0.3)
    held = Held(app.service, BOB)
    b = await start_bot(held, fake)  # type: ignore[arg-type]
    try:
        bob = await fake.dispatch_interaction(fake.slash("leaderboard", user=BOB))
        iid, _ = await command(fake, "progress", user=ALICE)
        (chart,) = await fake.followups(iid, within=30)  # Bob's command is still in the core
        assert [name for name, _ in chart.files] == ["progress.png"]
        assert not [r for r in fake.requests if r.path.startswith(f"/interactions/{bob}/")]
    finally:
        held.release.set()
        await b.stop()


async def test_forget_me_asks_with_buttons_and_deletes_on_confirm(app: App, live: Bot, fake: FakeDiscord) -> None:
    db = app.store.path
    await reply_of(fake, "quiz", user=ALICE)
    ask = await reply_of(fake, "forget-me", user=ALICE)
    assert custom_ids(ask) == ["sb:forget-confirm", "sb:forget-cancel"]
    styles = [c["style"] for row in ask["components"] for c in row["components"]]
    assert styles == [discord.ButtonStyle.danger.value, discord.ButtonStyle.secondary.value]
    cancel = await fake.callback(await fake.dispatch_interaction(fake.click("sb:forget-cancel", ask, user=ALICE)))
    assert cancel.json["data"]["content"] == "Nothing was deleted." and cancel.json["data"]["flags"] & EPHEMERAL
    assert rows(db, "SELECT count(*) FROM members WHERE user_id = ?", str(ALICE.id)) == [(1,)]
    confirm = await fake.callback(await fake.dispatch_interaction(fake.click("sb:forget-confirm", ask, user=ALICE)))
    assert confirm.json["data"]["content"].startswith("Done")
    assert rows(db, "SELECT count(*) FROM members WHERE user_id = ?", str(ALICE.id)) == [(0,)]
    assert rows(db, "SELECT count(*) FROM posts WHERE member_id IS NOT NULL") == [(0,)]


async def test_timezone_autocomplete_offers_matching_zones(live: Bot, fake: FakeDiscord) -> None:
    iid = await fake.dispatch_interaction(fake.slash("timezone", {"zone": "berl"}, focused="zone"))
    cb = await fake.callback(iid)
    assert cb.json["type"] == 8
    choices = [c["value"] for c in cb.json["data"]["choices"]]
    assert choices[0] == "Europe/Berlin"
    many = await fake.callback(await fake.dispatch_interaction(fake.slash("timezone", {"zone": "a"}, focused="zone")))
    assert len(many.json["data"]["choices"]) == 25
    tz = await fake.callback(
        await fake.dispatch_interaction(
            fake.slash("schedule set", {"time": "09:00", "tz": "tok"}, focused="tz", command="study-admin")
        )
    )
    assert "Asia/Tokyo" in [c["value"] for c in tz.json["data"]["choices"]]


def admin_options(path: str) -> dict[str, Any]:
    if path == "rewards set":
        return {"kind": "streak", "threshold": 7, "role": REGULARS}
    if path == "deck import":
        return {"name": "mine", "file": FakeFile("mine.csv", DECK_CSV)}
    if path in ("deck retire", "deck edit"):
        return {"options": "mine q-1"}
    if path.startswith("deck ") and path != "deck list":
        return {"options": "mine"}
    return {"time": "09:00"} if path == "schedule set" else {}


async def test_members_without_manage_server_are_refused_every_admin_command(
    app: App, live: Bot, fake: FakeDiscord
) -> None:
    await reply_of(fake, "quiz", user=ALICE)  # alice exists; the database has something to lose
    before = dump(app.store.path)
    for path in ADMIN_PATHS:
        iid, cb = await command(fake, path, admin_options(path), user=ALICE)
        if cb.json["type"] == 5:
            (edit,) = await fake.followups(iid)
            content = edit.json["content"]
        else:
            content = cb.json["data"]["content"]
        assert cb.json["data"]["flags"] & EPHEMERAL, path
        refusal = "Only the bot's operator can use" if path.startswith("content") else "Only admins can use"
        assert content.startswith(refusal), (path, content)
    assert dump(app.store.path) == before
    assert fake.channel_messages(fake.channel_id) == []  # post-now posted nothing


async def test_admins_schedule_a_channel_post_now_and_export(app: App, live: Bot, fake: FakeDiscord) -> None:
    db = app.store.path
    opts = {"time": "9:00", "tz": "Europe/Berlin", "days": "mon - fri", "kind": "mix", "reveal": 4}
    done = await reply_of(fake, "schedule set", opts, user=ADMIN)
    assert done["content"].startswith("✅ Daily posts here"), done["content"]
    assert rows(db, "SELECT local_time, tz, days, kind, reveal_hours, paused FROM schedules") == [
        ("09:00", "Europe/Berlin", "0,1,2,3,4", "mix", 4, 0)
    ]
    await reply_of(fake, "schedule pause", user=ADMIN)
    assert rows(db, "SELECT paused FROM schedules") == [(1,)]
    await reply_of(fake, "schedule resume", user=ADMIN)
    assert rows(db, "SELECT paused FROM schedules") == [(0,)]
    for path in ("schedule show", "schedule preview", "schedule skip"):
        shown = await reply_of(fake, path, user=ADMIN)
        assert shown["flags"] & EPHEMERAL and not shown["content"].startswith("Only admins"), (path, shown)

    # post-now goes out through app.gateways["discord"].post, i.e. channel.send with answer buttons
    await reply_of(fake, "schedule set", {"time": "09:00", "kind": "question"}, user=ADMIN)
    posted = await reply_of(fake, "schedule post-now", user=ADMIN)
    assert posted["content"].startswith("📣 Posted"), posted["content"]
    (message,) = fake.channel_messages(fake.channel_id)
    ids = custom_ids(message)
    assert len(ids) == 4 and all(re.fullmatch(r"sb:ans:\d+:[ABCD]", i) for i in ids), ids
    right = right_letter(message["content"])  # members answer the channel post
    ok = await fake.callback(await fake.dispatch_interaction(fake.click(ids["ABCD".index(right)], message, user=BOB)))
    assert ok.json["data"]["content"].startswith("✅ Correct")
    assert rows(db, "SELECT count(*) FROM answers") == [(1,)]

    iid, cb = await command(fake, "export", user=ADMIN)
    assert cb.json["type"] == 5 and cb.json["data"]["flags"] & EPHEMERAL
    (edit,) = await fake.followups(iid)
    names = [name for name, _ in edit.files]
    assert names and all(n.endswith(".csv") for n in names)
    assert all(data for _, data in edit.files)


async def test_scheduled_posts_go_out_through_the_gateway_once_and_a_lost_channel_pauses_and_tells_an_admin(
    app: App, live: Bot, fake: FakeDiscord
) -> None:
    from bot.scheduling import Scheduler
    from bot.storage.schedule_store import SqliteScheduleStore

    db = app.store.path
    clock = app.clock
    assert isinstance(clock, FakeClock)
    quiz_channel = list(fake.guild.channels)[1]
    await reply_of(
        fake, "schedule set", {"time": "12:30", "tz": "UTC", "kind": "question"}, user=ADMIN, channel_id=quiz_channel
    )
    scheduler = Scheduler(SqliteScheduleStore(app.store), app.service, app.gateways, clock, app.settings)

    fake.fail("POST", rf"/channels/{quiz_channel}/messages", 429, retry_after=0.1)  # waited out by discord.py
    clock.advance(minutes=30)
    report = await scheduler.run_due(clock.now())
    assert len(report.sent) == 1
    (message,) = fake.channel_messages(quiz_channel)
    assert len(custom_ids(message)) == 4
    assert rows(db, "SELECT message_id FROM posts WHERE member_id IS NULL") == [(message["id"],)]
    await scheduler.run_due(clock.now())  # the same instant again: nothing new
    assert len(fake.channel_messages(quiz_channel)) == 1

    fake.forbid(quiz_channel)  # the bot lost access overnight
    clock.advance(days=1)
    await scheduler.run_due(clock.now())
    assert rows(db, "SELECT paused FROM schedules") == [(1,)]
    assert len(fake.channel_messages(quiz_channel)) == 1
    # (A short reply, so the notice is the first follow-up: help no longer fits in one message.)
    iid, _ = await command(fake, "schedule show", user=ADMIN)
    notices = [r.json["content"] for r in await fake.followups(iid)]
    assert any("paused" in n for n in notices), notices


# ---------------------------------------------------------------------------------------------- ChatGateway


async def test_a_post_rate_limited_with_via_is_retried_and_lands_once(bot: Bot, fake: FakeDiscord) -> None:
    fake.fail("POST", r"/channels/\d+/messages", 429, retry_after=0.2)
    buttons = (Button("sb:ans:77:A", "A", "primary"), Button("sb:ans:77:B", "B", "primary"))
    sent = await bot.fe.post(Post(str(fake.channel_id), "**Question** · daily", buttons))
    tries = fake.find("POST", rf"/channels/{fake.channel_id}/messages")
    assert [r.status for r in tries] == [429, 200]
    assert tries[1].at - tries[0].at >= 0.2  # it waited out retry_after
    (message,) = fake.channel_messages(fake.channel_id)
    assert sent.message_id == message["id"] and sent.channel == str(fake.channel_id)
    assert message["content"] == "**Question** · daily" and custom_ids(message) == ["sb:ans:77:A", "sb:ans:77:B"]


async def test_edit_replaces_text_and_buttons(bot: Bot, fake: FakeDiscord) -> None:
    sent = await bot.fe.post(Post(str(fake.channel_id), "Q?", (Button("sb:ans:5:A", "A"),)))
    await bot.fe.edit(sent.channel, sent.message_id, "Q? — the answer was A")
    (message,) = fake.channel_messages(fake.channel_id)
    assert message["content"] == "Q? — the answer was A" and message["components"] == []
    await bot.fe.edit(sent.channel, sent.message_id, "again", [Button("sb:ans:5:B", "B")])
    assert custom_ids(fake.messages[int(sent.message_id)]) == ["sb:ans:5:B"]


async def test_delivery_errors_say_whether_to_retry_or_pause(bot: Bot, fake: FakeDiscord) -> None:
    general, other = list(fake.guild.channels)
    fake.forbid(other)
    with pytest.raises(DeliveryError) as forbidden:
        await bot.fe.post(Post(str(other), "hello"))
    assert forbidden.value.forbidden and not forbidden.value.retryable

    with pytest.raises(DeliveryError) as unknown:  # not in the cache: fetched, 404 Unknown Channel
        await bot.fe.post(Post("123456789012345678", "hello"))
    assert unknown.value.forbidden and not unknown.value.retryable

    fake.fail("POST", rf"/channels/{general}/messages", 503)
    with pytest.raises(DeliveryError) as outage:
        await bot.fe.post(Post(str(general), "hello"))
    assert outage.value.retryable and not outage.value.forbidden

    fake.fail("POST", rf"/channels/{general}/messages", 400, message="Invalid Form Body", code=50035)
    with pytest.raises(DeliveryError) as rejected:
        await bot.fe.post(Post(str(general), "hello"))
    assert not rejected.value.retryable and not rejected.value.forbidden

    with pytest.raises(DeliveryError) as not_an_id:
        await bot.fe.post(Post("#general", "hello"))
    assert not not_an_id.value.retryable
    with pytest.raises(DeliveryError) as gone:
        await bot.fe.edit(str(general), "999", "x")
    assert not gone.value.retryable and not gone.value.forbidden
    assert fake.channel_messages(general) == []


async def test_fan_out_paces_itself_under_the_rate_limit_and_posts_each_message_once(service: StudyService) -> None:
    async with FakeDiscord(rate_limit_per_s=20) as fake:
        channels = {900000000000001000 + i: f"c{i}" for i in range(15)}
        fake.add_guild(810000000000000002, "Big", channels)
        b = await start_bot(service, fake, posts_per_second=10)  # half the limit: room for a stalled loop
        try:
            sent = await asyncio.gather(*(b.fe.post(Post(str(c), f"post {c}")) for c in channels))
        finally:
            await b.stop()
    assert len({s.message_id for s in sent}) == 15
    for c in channels:
        assert [m["content"] for m in fake.channel_messages(c)] == [f"post {c}"]
    assert fake.rate_limited == 0  # paced below the limit: no 429 at all


async def test_a_rate_limit_discord_py_gives_up_on_is_retryable(bot: Bot, fake: FakeDiscord) -> None:
    fake.fail("POST", r"/channels/\d+/messages", 429, via=False, retry_after=2)  # no Via: not waited out
    with pytest.raises(DeliveryError) as err:
        await bot.fe.post(Post(str(fake.channel_id), "hello"))
    assert err.value.retryable and err.value.retry_after == 2 and not err.value.forbidden
    assert fake.channel_messages(fake.channel_id) == []


async def test_post_before_the_client_is_connected_is_retryable(service: StudyService) -> None:
    fe = DiscordFrontEnd(service, "token", ready_timeout=0.01)
    with pytest.raises(DeliveryError) as err:
        await fe.post(Post("1", "x"))
    assert err.value.retryable
    await fe.close()


# ---------------------------------------------------------------------------------------------- restarts, errors


async def test_a_button_from_before_a_restart_still_records_the_answer(tmp_path: Path, fake: FakeDiscord) -> None:
    settings = Settings(STUDYBOT_DB=tmp_path / "study.db", STUDYBOT_CONTENT=FIXTURE_PACK)  # type: ignore[call-arg]
    first_app = await build_app(settings, clock=FakeClock())
    first = await start_bot(first_app.service, fake)
    question = await reply_of(fake, "quiz", user=ALICE)
    await first.stop()
    await first_app.close()

    second_app = await build_app(settings, clock=FakeClock())  # a new process on the same database
    second = await start_bot(second_app.service, fake)
    try:
        assert len(fake.identifies) == 2
        right = right_letter(question["content"])
        custom_id = next(i for i in custom_ids(question) if i.endswith(right))
        cb = await fake.callback(await fake.dispatch_interaction(fake.click(custom_id, question, user=ALICE)))
        assert cb.json["data"]["content"].startswith("✅ Correct")
        assert rows(second_app.store.path, "SELECT choice FROM answers") == [(right,)]
    finally:
        await second.stop()
        await second_app.close()


class Exploding:
    """A service stand-in whose every call fails, to exercise the adapter's own error path."""

    async def handle(self, inbound: object) -> list[Reply]:
        raise RuntimeError("boom in the core")


async def test_an_error_gets_a_private_apology_and_a_logged_traceback_without_the_token(
    bot: Bot, fake: FakeDiscord, caplog: pytest.LogCaptureFixture
) -> None:
    bot.fe.service = Exploding()  # type: ignore[assignment]
    with caplog.at_level(logging.ERROR):
        cb = await fake.callback(await fake.dispatch_interaction(fake.slash("tip")))
        assert cb.json["type"] == 4 and cb.json["data"] == {"content": ERROR_TEXT, "flags": EPHEMERAL} | {
            k: v for k, v in cb.json["data"].items() if k not in ("content", "flags")
        }
        message = {"id": "1", "channel_id": str(fake.channel_id), "content": "", "components": []}
        message = fake._public(fake._new_message(fake.channel_id, {"components": _answer_row()}, [], "test"))
        click = await fake.callback(await fake.dispatch_interaction(fake.click("sb:ans:1:A", message)))
    assert click.json["data"]["content"] == ERROR_TEXT and click.json["data"]["flags"] & EPHEMERAL
    tracebacks = [r for r in caplog.records if r.exc_info and "boom in the core" in str(r.exc_info[1])]
    assert len(tracebacks) == 2
    assert fake.token not in caplog.text


def _answer_row() -> list[dict[str, Any]]:
    return [{"type": 1, "components": [{"type": 2, "style": 1, "label": "A", "custom_id": "sb:ans:1:A"}]}]


async def test_a_long_reply_is_split_without_losing_text(service: StudyService, bot: Bot, fake: FakeDiscord) -> None:
    long = "\n".join(f"line {i} " + "x" * 90 for i in range(60))  # ~6,000 characters

    async def chatty(ctx: Context, command: Command) -> list[Reply]:
        return [Reply(long, private=True, buttons=(Button("sb:forget-cancel", "OK"),))]

    service.register("tip", chatty)
    iid, cb = await command(fake, "tip")
    parts = [cb.json["data"]] + [r.json for r in await fake.followups(iid, 2)]
    assert len(parts) == 3 and all(len(p["content"]) <= 2000 and p["flags"] & EPHEMERAL for p in parts)
    assert "\n".join(p["content"] for p in parts) == long
    assert [bool(p.get("components")) for p in parts] == [False, False, True]  # buttons with the last


def test_chunks_and_zone_matching() -> None:
    assert chunks("short") == ["short"]
    assert chunks("y" * 4500) == ["y" * 2000, "y" * 2000, "y" * 500]
    assert match_zones("new york")[0] == "America/New_York"
    assert match_zones("") and len(match_zones("")) == 25


async def test_a_reconnect_resumes_and_keeps_serving(bot: Bot, fake: FakeDiscord) -> None:
    await fake.reconnect()
    await fake.wait_for(lambda: len(fake._identified) == 1 and fake.find("GET", "/users/@me"), 5)
    await asyncio.sleep(0.2)  # let the client finish its resume before dispatching
    await fake.wait_identified(1)
    cb = await fake.callback(await fake.dispatch_interaction(fake.slash("help")), within=5)
    assert cb.json["type"] == 4


async def test_one_hundred_members_at_once_are_all_acknowledged_within_3_s(
    service: StudyService, bot: Bot, fake: FakeDiscord
) -> None:
    members = [FakeUser(840000000000000000 + i, f"m{i}") for i in range(100)]
    iids = await asyncio.gather(*(fake.dispatch_interaction(fake.slash("quiz", user=m)) for m in members))
    callbacks = await asyncio.gather(*(fake.callback(i, within=10) for i in iids))
    # Each member sees the question with its four buttons: in the first response, or (on a loaded
    # machine, after DEFER_AFTER) in the edit that follows a "thinking…" acknowledgement.
    for iid, cb in zip(iids, callbacks, strict=True):
        assert cb.json["type"] in (4, 5)
        if cb.json["type"] == 5:
            await fake.followups(iid, within=10)
        assert len(custom_ids(fake.message_of(cb))) == 4
    latencies = sorted(fake.take_ack_latencies())  # kept out of the module's one-at-a-time figures
    assert len(latencies) == 100 and latencies[-1] < 3.0
    print(
        f"\n100 concurrent /study quiz: ack p50 {statistics.median(latencies) * 1000:.1f} ms, "
        f"p99 {latencies[98] * 1000:.1f} ms"
    )


def test_invite_url_lists_only_the_permissions_used(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from bot.cli import main

    monkeypatch.delenv("DISCORD_APPLICATION_ID", raising=False)
    assert main(["invite-url", "--client-id", "123456"]) == 0
    url = capsys.readouterr().out.strip()
    assert url == (
        f"https://discord.com/oauth2/authorize?client_id=123456&scope=bot+applications.commands"
        f"&permissions={BOT_PERMISSIONS.value}"
    )
    perms = discord.Permissions(BOT_PERMISSIONS.value)
    # View Channel, Send Messages, Attach Files, Read Message History (to find its own post after a crash),
    # Create Public Threads and Send Messages in Threads (discussion threads)
    assert perms.value == 1024 + 2048 + 32768 + 65536 + 2**35 + 2**38
    assert perms.view_channel and perms.send_messages and perms.attach_files and perms.read_message_history
    assert perms.create_public_threads and perms.send_messages_in_threads
    assert not (perms.embed_links or perms.manage_messages or perms.administrator or perms.manage_roles)
    monkeypatch.setenv("DISCORD_APPLICATION_ID", "777")
    assert main(["invite-url"]) == 0
    assert "client_id=777&" in capsys.readouterr().out
    monkeypatch.delenv("DISCORD_APPLICATION_ID")
    assert main(["invite-url"]) == 2
    assert "DISCORD_APPLICATION_ID" in capsys.readouterr().err


async def test_closing_waits_for_answers_in_flight_and_their_follow_ups(app: App, fake: FakeDiscord) -> None:
    """A shutdown (SIGTERM → close) in the middle of answering still delivers the answer and the chart."""
    b = await start_bot(app.service, fake)
    iid = await fake.dispatch_interaction(fake.slash("progress", user=ALICE))
    cb = await fake.callback(iid)
    assert "Progress — alice" in cb.json["data"]["content"]
    await b.stop()  # the chart follow-up is still being drawn at this moment
    (chart,) = await fake.followups(iid, within=10)
    assert [name for name, _ in chart.files] == ["progress.png"]


# ---------------------------------------------------------------------------------------------- names


EVIL = FakeUser(830000000000000009, "[Claim your prize](https://evil.example) **b** <@&830000000000000077> @everyone")


async def test_member_names_are_shown_as_text_never_as_links_markdown_or_mentions(
    app: App, live: Bot, fake: FakeDiscord
) -> None:
    question = await reply_of(fake, "quiz", user=EVIL)
    await reply_of(fake, "answer", {"letter": right_letter(question["content"])}, user=EVIL)
    iid, cb = await command(fake, "leaderboard", {"scope": "all"}, user=ALICE)
    board = cb.json["data"]
    assert board.get("flags", 0) & EPHEMERAL == 0  # the public board, where the link showed
    shown = r"\[Claim your prize\]\(https\://evil.example\) \*\*b\*\* \<\@&830000000000000077\> \@everyone"
    assert f"🥇 {shown} — 1 pt" in board["content"], board["content"]
    # Nothing Discord would read as markup is left unescaped: no masked link, no bold, no mention.
    unescaped = re.sub(r"\\.", "", board["content"])
    assert "](" not in unescaped and "**b" not in unescaped and "<@" not in unescaped
    assert "@everyone" not in unescaped and "https://" not in unescaped
    assert board["allowed_mentions"] == {"parse": []}  # pings stay off as well
    # Someone else's progress (and its chart's caption) show the name the same way.
    iid, cb = await command(fake, "progress", {"member": EVIL}, user=ALICE)
    assert f"**Progress — {shown}**" in cb.json["data"]["content"]
    (chart,) = await fake.followups(iid, within=30)
    assert f"Progress chart — {shown}" in chart.json["content"]
    # The core's own markdown is untouched: the heading is still bold.
    assert board["content"].startswith("**Leaderboard — all time**")


# ---------------------------------------------------------------------------------------------- operator


OPERATOR = FakeUser(830000000000000042, "ops")  # no Manage Server anywhere: STUDYBOT_OWNERS makes it


async def test_only_the_operator_reloads_the_shipped_pack_whatever_server_admins_do(
    tmp_path: Path, fake: FakeDiscord
) -> None:
    pack = tmp_path / "pack"
    shutil.copytree(FIXTURE_PACK, pack)
    settings = Settings(STUDYBOT_DB=tmp_path / "study.db", STUDYBOT_CONTENT=pack)  # type: ignore[call-arg]
    app = await build_app(settings, clock=FakeClock())
    bot = await start_bot(app.service, fake, owners=[str(OPERATOR.id)])
    try:
        # Someone invites the bot to their own server, where they are admin, and edits nothing but asks.
        own = fake.add_guild(880000000000000001, "mallory's server", {880000000000000002: "general"})
        mallory = FakeUser(830000000000000066, "mallory", ADMIN_PERMISSIONS)
        (pack / "pack.yaml").write_text((pack / "pack.yaml").read_text().replace("test question", "edited question"))
        for path in ("content load", "content validate", "content list"):
            reply = await reply_of(fake, path, user=mallory, guild_id=own.id)
            assert reply["content"].startswith("Only the bot's operator can use /study-admin content"), reply["content"]
        help_text = (await reply_of(fake, "help", {"topic": "schedule"}, user=mallory, guild_id=own.id))["content"]
        assert "/study-admin schedule set" in help_text and "content" not in help_text
        assert all("edited" not in q.prompt for q in app.library.pack.questions), "the edit did not go live"
        # The operator may, from any server, and chat shows no server path.
        loaded = await reply_of(fake, "content load", user=OPERATOR)
        assert loaded["content"].startswith("✅ Loaded 4 questions") and "from pack/ " in loaded["content"]
        assert str(tmp_path) not in loaded["content"]
        assert all("edited" in q.prompt for q in app.library.pack.questions)
        # The operator's own page names the content commands as typed on Discord.
        operator_help = await reply_of(fake, "help", {"topic": "content"}, user=OPERATOR)
        assert "/study-admin content load" in operator_help["content"]
        first_page = await reply_of(fake, "help", user=OPERATOR)
        assert "`/study help operator`" in first_page["content"] and "content load" not in first_page["content"]
    finally:
        await bot.stop()
        await app.close()


# ---------------------------------------------------------------------------------------------- reminders


async def answer_a_quiz(fake: FakeDiscord, user: FakeUser) -> None:
    _, cb = await command(fake, "quiz", user=user)
    question = fake.message_of(cb)
    post_id = int(custom_ids(question)[0].split(":")[2])
    right = right_letter(question["content"])
    done = await fake.callback(
        await fake.dispatch_interaction(fake.click(f"sb:ans:{post_id}:{right}", question, user=user))
    )
    assert done.json["data"]["content"].startswith("✅ Correct")


async def test_a_reminder_arrives_by_dm_and_its_quiz_me_button_works_there(
    app: App, live: Bot, fake: FakeDiscord
) -> None:
    on = await reply_of(fake, "remind", {"switch": "on", "at": "19:00"}, user=ALICE)
    assert "19:00 in UTC" in on["content"] and on["flags"] & EPHEMERAL
    await answer_a_quiz(fake, ALICE)
    clock = app.clock
    assert isinstance(clock, FakeClock) and app.reminders is not None
    clock.set(clock.now().replace(hour=19, minute=0) + timedelta(days=1))
    report = await app.reminders.run_due()
    assert len(report.sent) == 1
    [opened] = fake.find("POST", "/users/@me/channels")
    assert int(opened.json["recipient_id"]) == ALICE.id
    [dm] = fake.dm_messages(ALICE.id)
    assert "streak" in dm["content"] and "guild_id" not in dm
    [quiz_me] = custom_ids(dm)
    assert re.fullmatch(r"sb:quizme:\d+", quiz_me)
    assert (await app.reminders.run_due()).sent == [] and len(fake.dm_messages(ALICE.id)) == 1

    # One click in the DM deals a question there; answering it in the DM records the answer.
    cb = await fake.callback(await fake.dispatch_interaction(fake.dm_click(quiz_me, dm, user=ALICE)))
    question = fake.message_of(cb)
    post_id = int(custom_ids(question)[0].split(":")[2])
    right = right_letter(question["content"])
    done = await fake.callback(
        await fake.dispatch_interaction(fake.dm_click(f"sb:ans:{post_id}:{right}", question, user=ALICE))
    )
    assert done.json["data"]["content"].startswith("✅ Correct")
    assert rows(app.store.path, "SELECT answered FROM members WHERE user_id = ?", str(ALICE.id)) == [(2,)]
    # Someone else clicking that button (a forwarded message) gets nothing of Alice's.
    other = await fake.callback(await fake.dispatch_interaction(fake.dm_click(quiz_me, dm, user=BOB)))
    assert "no longer valid here" in other.json["data"]["content"]


async def test_dms_closed_50007_turn_reminders_off_and_say_so_at_the_next_command(
    app: App, live: Bot, fake: FakeDiscord
) -> None:
    await reply_of(fake, "remind", {"switch": "on"}, user=BOB)
    await answer_a_quiz(fake, BOB)
    fake.close_dms(BOB.id)
    clock = app.clock
    assert isinstance(clock, FakeClock) and app.reminders is not None
    clock.set(clock.now().replace(hour=19, minute=0) + timedelta(days=1))
    report = await app.reminders.run_due()
    assert report.blocked and not report.sent
    assert [r.status for r in fake.find("POST", r"/channels/\d+/messages")] == [403]
    iid, cb = await command(fake, "tip", user=BOB)
    notes = [cb, *await fake.followups(iid)]
    said = " ".join(fake.message_of(n)["content"] for n in notes)
    assert "could not send you a reminder by direct message" in said and "Discord says" in said
    shown = await reply_of(fake, "remind", user=BOB)
    assert "Reminders are off" in shown["content"] and "could not send" not in shown["content"]
    clock.set(clock.now() + timedelta(days=1))
    assert not (await app.reminders.run_due()).blocked
    assert len(fake.find("POST", r"/channels/\d+/messages")) == 1, "no more DMs while off"


# ---------------------------------------------------------------------------------------------- decks

DECK_CSV = (
    b"prompt,A,B,C,D,answer,explanation,topic,difficulty\n"
    b"What does a burndown chart show @everyone?,Work left over time,Team mood,Budget spent,Bug count,A,"
    b"It plots the work remaining against the days left in the sprint.,agile,1\n"
)


async def test_an_admin_imports_a_deck_file_attached_to_the_command_and_members_quiz_from_it(
    app: App, live: Bot, fake: FakeDiscord
) -> None:
    db = app.store.path
    made = await reply_of(fake, "deck create", {"options": "mine Our own questions"}, user=ADMIN)
    assert "Deck **mine** created" in made["content"], made["content"]
    iid, cb = await command(fake, "deck import", {"name": "mine", "file": FakeFile("mine.csv", DECK_CSV)}, user=ADMIN)
    assert cb.json["type"] == 5  # deferred while the file is fetched
    (edit,) = await fake.followups(iid)
    assert "1 new, 0 changed, 0 problems" in edit.json["content"], edit.json["content"]
    assert fake.cdn_fetches == ["mine.csv"]
    assert rows(db, "SELECT count(*) FROM deck_items") == [(0,)]  # a dry run writes nothing
    message = fake.message_of(edit)
    confirm = next(i for i in custom_ids(message) if i.startswith("sb:dimp:"))
    done = await fake.callback(await fake.dispatch_interaction(fake.click(confirm, message, user=ADMIN)))
    assert "Imported: 1 new" in done.json["data"]["content"], done.json
    assert rows(db, "SELECT slug, prompt FROM deck_items") == [
        (rows(db, "SELECT slug FROM deck_items")[0][0], "What does a burndown chart show @everyone?")
    ]
    quiz = await reply_of(fake, "quiz", {"deck": "mine"}, user=BOB)
    assert "burndown chart" in quiz["content"]
    assert "\\@everyone" in quiz["content"], quiz["content"]  # escaped: member text never pings


async def test_a_file_over_the_limit_is_refused_without_being_fetched(app: App, live: Bot, fake: FakeDiscord) -> None:
    await reply_of(fake, "deck create", {"options": "mine"}, user=ADMIN)
    big = FakeFile("big.csv", b"x", size=11_000_000)  # past every format's limit (Anki's is 10 MB)
    iid, _ = await command(fake, "deck import", {"name": "mine", "file": big}, user=ADMIN)
    (edit,) = await fake.followups(iid)
    assert "11,000,000 bytes; the limit is 1 MB" in edit.json["content"]
    assert fake.cdn_fetches == []
    # A CSV between 1 MB and Anki's 10 MB is fetched (it might have been an Anki file) and refused by size.
    iid, _ = await command(
        fake, "deck import", {"name": "mine", "file": FakeFile("mid.csv", b"x" * 3_000_000)}, user=ADMIN
    )
    (edit,) = await fake.followups(iid)
    assert "3,000,000 bytes; the limit is 1 MB" in edit.json["content"]


async def test_an_anki_package_over_a_megabyte_is_fetched_whole_and_dry_run(
    app: App, live: Bot, fake: FakeDiscord
) -> None:
    """Anki files may be up to 10 MB (media make them big): the adapter must not stop at the 1 MB of
    YAML/CSV/JSON, or a 2 MB package arrives empty."""
    await reply_of(fake, "deck create", {"options": "mine"}, user=ADMIN)
    package = anki_package_of(2_000_000)
    iid, _ = await command(fake, "deck import", {"name": "mine", "file": FakeFile("big.apkg", package)}, user=ADMIN)
    (edit,) = await fake.followups(iid)
    assert "Dry run" in edit.json["content"] and "4 new" in edit.json["content"], edit.json["content"]
    assert fake.cdn_fetches == ["big.apkg"]
