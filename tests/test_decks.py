"""Decks through the core service, on SQLite and PostgreSQL: commands, import dry run and confirm, export
round trip, schedules and quiz from a deck, the empty pool reported, and tenancy."""

from __future__ import annotations

import io
import random
from pathlib import Path

import pytest

from bot.adapters.console_adapter import ConsoleAdapter
from bot.config import Settings
from bot.core import actions
from bot.core.content import ContentLibrary
from bot.core.deck_commands import Catalog, DeckCommands
from bot.core.deck_files import MAX_SHOWN, export_yaml, parse_file, plan_import
from bot.core.learning import LearningEngine
from bot.core.markup import plain
from bot.core.messages import Attachment, Inbound, Reply
from bot.core.service import StudyService
from bot.scheduling import Scheduler
from bot.storage import ManagedStore, decks_for, learning_for, schedules_for
from tests.conftest import FakeClock, inbound
from tests.fakes import FakeChatGateway

HEADER = "prompt,A,B,C,D,answer,explanation,topic,difficulty"
ROW = "What does a burndown chart show?,Work left over time,Team mood,Budget spent,Bug count,A,It plots the work remaining against the days left in the sprint.,agile,1"
ROW2 = "Which meeting reviews the finished sprint?,Sprint review,Stand-up,Planning,Grooming,A,The sprint review shows the finished increment to stakeholders.,agile,2"


def csv_file(*rows: str, name: str = "mine.csv") -> Attachment:
    return Attachment(name, ("\n".join([HEADER, *rows]) + "\n").encode("utf-8"), "text/csv")


def admin(
    text: str = "",
    *,
    group: str = "g1",
    user: str = "boss",
    files: tuple[Attachment, ...] = (),
    action: str | None = None,
) -> Inbound:
    base = inbound(text, user=user, admin=True, group=group, action=action)
    return Inbound(**{**{f: getattr(base, f) for f in base.__slots__}, "files": files})  # type: ignore[attr-defined]


def text_of(replies: list[Reply]) -> str:
    return "\n".join(plain(r.text) for r in replies)


def button(replies: list[Reply], label: str) -> str:
    for r in replies:
        for b in r.buttons:
            if b.label == label:
                return b.action_id
    raise AssertionError(f"no {label!r} button in {text_of(replies)!r}")


@pytest.fixture
def gateway() -> FakeChatGateway:
    return FakeChatGateway()


@pytest.fixture
def app(
    store: ManagedStore, library: ContentLibrary, clock: FakeClock, gateway: FakeChatGateway
) -> tuple[StudyService, Scheduler]:
    decks = decks_for(store)  # type: ignore[arg-type]
    catalog = Catalog(decks, library)
    service = StudyService(store, library, clock, rng=random.Random(7), catalog=catalog)
    LearningEngine(learning_for(store), store, library, clock, charts=False, catalog=catalog).install(service)  # type: ignore[arg-type]
    DeckCommands(decks, catalog).install(service)
    sched = Scheduler(schedules_for(store), service, {"console": gateway}, clock, Settings.model_validate({}))  # type: ignore[arg-type]
    sched.install_commands()
    return service, sched


@pytest.fixture
def service(app: tuple[StudyService, Scheduler]) -> StudyService:
    return app[0]


async def imported(service: StudyService, deck: str, file: Attachment, *, group: str = "g1") -> str:
    dry = await service.handle(admin(f"/study deck import {deck}", files=(file,), group=group))
    done = await service.handle(admin(action=button(dry, "Confirm import"), group=group))
    return text_of(done)


async def test_create_list_show_and_the_builtin_deck(service: StudyService) -> None:
    out = text_of(await service.handle(admin("/study deck create sql SQL basics for the team")))
    assert "Deck **sql** created" in out or "Deck sql created" in out
    listed = text_of(await service.handle(admin("/study deck list")))
    assert "tpm" in listed and "read-only" in listed and "sql" in listed and "SQL basics for the team" in listed
    assert "already a deck" in text_of(await service.handle(admin("/study deck create sql")))
    assert "reserved" in text_of(await service.handle(admin("/study deck create tpm")))
    assert "read-only" in text_of(await service.handle(admin("/study deck delete tpm")))
    assert "Only admins" in text_of(await service.handle(inbound("/study deck list")))


async def test_a_csv_import_is_a_dry_run_until_confirmed(service: StudyService, store: ManagedStore) -> None:
    await service.handle(admin("/study deck create mine"))
    dry = await service.handle(admin("/study deck import mine", files=(csv_file(ROW, ROW2),)))
    assert "2 new, 0 changed, 0 problems" in text_of(dry)
    assert "0 questions" in text_of(await service.handle(admin("/study deck show mine")))  # nothing written yet
    done = await service.handle(admin(action=button(dry, "Confirm import")))
    assert "Imported: 2 new, 0 changed" in text_of(done)
    assert "2 questions" in text_of(await service.handle(admin("/study deck show mine")))
    # A second click, or another admin's click on the same button, writes nothing more.
    assert "not waiting any more" in text_of(await service.handle(admin(action=button(dry, "Confirm import"))))
    # The same rows again: nothing to do; one changed explanation: 1 changed.
    again = await service.handle(admin("/study deck import mine", files=(csv_file(ROW, ROW2),)))
    assert "0 new, 0 changed, 0 problems (2 unchanged)" in text_of(again) and not again[0].buttons
    edited = ROW2.replace("to stakeholders", "to the stakeholders")
    changed = await service.handle(admin("/study deck import mine", files=(csv_file(ROW, edited),)))
    assert "0 new, 1 changed, 0 problems" in text_of(changed)


async def test_one_bad_row_writes_nothing_and_problems_name_row_and_column(service: StudyService) -> None:
    await service.handle(admin("/study deck create mine"))
    bad = ROW2.replace(",A,The sprint", ",E,The sprint")
    dry = text_of(await service.handle(admin("/study deck import mine", files=(csv_file(ROW, bad),))))
    assert "0 new, 0 changed, 1 problem" in dry, dry  # a file with a problem brings nothing in: all or nothing
    assert "3:answer:" in dry and "Nothing was written" in dry
    assert "0 questions" in text_of(await service.handle(admin("/study deck show mine")))


async def test_at_most_fifteen_problems_are_shown_with_a_count_of_the_rest(service: StudyService) -> None:
    await service.handle(admin("/study deck create mine"))
    rows = [ROW.replace(",agile,1", f",agile,{n % 2 + 7}").replace("burndown", f"burndown {n}") for n in range(20)]
    dry = text_of(await service.handle(admin("/study deck import mine", files=(csv_file(*rows),))))
    assert "20 problems" in dry
    assert dry.count("difficulty") == MAX_SHOWN and "… and 5 more" in dry


async def test_export_imports_back_unchanged(service: StudyService, store: ManagedStore) -> None:
    await service.handle(admin("/study deck create mine Questions of our own"))
    yaml_text = """
questions:
  - id: q-one
    topic: agile
    difficulty: 2
    prompt: "Which chart shows work left against time? @everyone"
    choices: ["=SUM(A1)", "Gantt chart", "Pie chart", "Org chart"]
    answer: A
    explanation: "A burndown chart plots the remaining work over the days of the sprint."
    source: general
tips:
  - id: t-one
    step: 2
    text: "Ask to run one sprint review for your team this month."
    action: "Book a slot with your lead."
    source: general
cards:
  - id: c-one
    front: "Tell me about a project that slipped and what you did."
    back: "STAR story; what you changed in planning afterwards"
    topic: behavioural
    tags: [star]
"""
    assert "3 new" in await imported(service, "mine", Attachment("mine.yaml", yaml_text.encode()))
    [reply] = await service.handle(admin("/study deck export mine"))
    (file,) = reply.attachments
    assert file.filename == "mine.yaml"
    assert "Questions of our own" in file.data.decode()
    again = text_of(await service.handle(admin("/study deck import mine", files=(file,))))
    assert "0 new, 0 changed, 0 problems (3 unchanged)" in again
    # Into a fresh deck it is the same three items, field for field.
    await service.handle(admin("/study deck create copy"))
    assert "3 new" in await imported(service, "copy", file)
    [copy] = await service.handle(admin("/study deck export copy"))
    assert copy.attachments[0].data.decode().split("\n", 1)[1] == file.data.decode().split("\n", 1)[1]


async def test_csv_formula_cells_are_stored_as_text_and_defused_on_export(service: StudyService) -> None:
    await service.handle(admin("/study deck create mine"))
    row = ROW.replace("Work left over time", "=HYPERLINK(evil)").replace("Team mood", "@SUM(1)")
    assert "1 new" in await imported(service, "mine", csv_file(row))
    [reply] = await service.handle(admin("/study deck export mine csv"))
    data = reply.attachments[0].data.decode()
    assert "'=HYPERLINK(evil)" in data and "'@SUM(1)" in data
    assert "0 new, 0 changed" in text_of(
        await service.handle(admin("/study deck import mine", files=(reply.attachments[0],)))
    )
    [y] = await service.handle(admin("/study deck export mine"))
    assert "=HYPERLINK(evil)" in y.attachments[0].data.decode()  # stored as the member wrote it


async def test_unsafe_yaml_and_oversized_files_are_refused(service: StudyService) -> None:
    await service.handle(admin("/study deck create mine"))
    evil = b"questions:\n  - !!python/object/apply:os.system ['echo hi']\n"
    out = text_of(await service.handle(admin("/study deck import mine", files=(Attachment("x.yaml", evil),))))
    assert "2:-: the tag" in out and "not allowed" in out and "Nothing was written" in out
    big = Attachment("big.csv", b"x" * 1_000_001)
    assert "limit is 1 MB" in text_of(await service.handle(admin("/study deck import mine", files=(big,))))
    many = csv_file(*(ROW.replace("burndown", f"burndown {n}") for n in range(2001)))
    assert "at most 2,000" in text_of(await service.handle(admin("/study deck import mine", files=(many,))))
    assert "Which file?" in text_of(await service.handle(admin("/study deck import mine")))


async def test_quiz_from_a_deck_and_answers_keep_history_after_delete(
    service: StudyService, store: ManagedStore
) -> None:
    await service.handle(admin("/study deck create mine"))
    await imported(service, "mine", csv_file(ROW))
    [q] = await service.handle(inbound("/study quiz mine"))
    assert "burndown" in plain(q.text)
    letter_a = q.buttons[0].action_id
    assert "Correct" in text_of(await service.handle(inbound(action=letter_a)))
    assert "Answered 1 · correct 1" in text_of(await service.handle(inbound("/study progress")))
    assert "agile: 1/1" in text_of(await service.handle(inbound("/study progress")))
    confirm = button(await service.handle(admin("/study deck delete mine")), "Delete the deck")
    out = text_of(await service.handle(admin(action=confirm)))
    assert "0 items deleted, 1 kept retired" in out
    # History stays right: progress still counts it, mastery still names its topic.
    assert "agile: 1/1" in text_of(await service.handle(inbound("/study progress")))
    assert "No deck" in text_of(await service.handle(inbound("/study quiz mine"))) or "no deck" in text_of(
        await service.handle(inbound("/study quiz mine"))
    )


async def test_member_text_from_a_deck_never_pings(service: StudyService) -> None:
    await service.handle(admin("/study deck create mine"))
    row = ROW.replace("What does a burndown chart show?", "What does a burndown chart show @everyone <!channel>?")
    await imported(service, "mine", csv_file(row))
    [q] = await service.handle(inbound("/study quiz mine"))
    # Marked as member text: each front end escapes it (markup.render); the raw marks are present.
    assert "\ue000What does a burndown chart show @everyone <!channel>?\ue001" in q.text


async def test_schedule_posts_from_its_deck_and_an_empty_pool_is_reported(
    app: tuple[StudyService, Scheduler], gateway: FakeChatGateway, clock: FakeClock
) -> None:
    service, sched = app
    await service.handle(admin("/study deck create mine"))
    assert "No deck" in text_of(
        await service.handle(admin("/study schedule set 13:00 deck nope"))
    ) or "no deck" in text_of(await service.handle(admin("/study schedule set 13:00 deck nope")))
    out = text_of(await service.handle(admin("/study schedule set 13:00 deck mine")))
    assert "deck mine" in out
    assert "deck mine" in text_of(await service.handle(admin("/study schedule show")))
    clock.advance(hours=1, minutes=1)
    await sched.poster.run_due()
    assert gateway.posts == []  # the deck is empty: nothing posted …
    notice = text_of(await service.handle(admin("/study deck list")))
    assert "deck mine has no questions" in notice  # … and the next admin hears of it, once
    assert "has no questions" not in text_of(await service.handle(admin("/study deck list")))
    await imported(service, "mine", csv_file(ROW))
    clock.advance(days=1)
    await sched.poster.run_due()
    assert len(gateway.posts) == 1 and "burndown" in plain(gateway.posts[0].text)


async def test_groups_see_only_their_own_decks(service: StudyService) -> None:
    await service.handle(admin("/study deck create secret Theirs", group="g2"))
    await imported(service, "secret", csv_file(ROW), group="g2")
    assert "secret" not in text_of(await service.handle(admin("/study deck list")))
    for cmd in ("show secret", "export secret", "delete secret"):
        assert "no deck" in text_of(await service.handle(admin(f"/study deck {cmd}"))).lower()
    assert (
        "no deck" in text_of(await service.handle(admin("/study deck import secret", files=(csv_file(ROW2),)))).lower()
    )
    assert "No deck" in text_of(await service.handle(inbound("/study quiz secret"))) or "no deck" in text_of(
        await service.handle(inbound("/study quiz secret"))
    )
    # Crafted buttons: another group's pending import and deck id are refused and change nothing.
    dry = await service.handle(admin("/study deck import secret", files=(csv_file(ROW2),), group="g2"))
    crafted = button(dry, "Confirm import")
    assert "not waiting" in text_of(await service.handle(admin(action=crafted, group="g1")))
    theirs = button(await service.handle(admin("/study deck delete secret", group="g2")), "Delete the deck")
    assert "not here" in text_of(await service.handle(admin(action=theirs, group="g1")))
    assert "1 question" in text_of(await service.handle(admin("/study deck show secret", group="g2")))
    # A member of g1 cannot confirm g1's own import either (admins only), nor an admin another's.
    await service.handle(admin("/study deck create mine"))
    mine = button(await service.handle(admin("/study deck import mine", files=(csv_file(ROW),))), "Confirm import")
    assert "Only admins" in text_of(await service.handle(inbound(action=mine)))
    assert "not waiting" in text_of(await service.handle(admin(action=mine, user="other-admin")))


async def test_crafted_deck_buttons_are_invalid_and_change_nothing(service: StudyService) -> None:
    await service.handle(admin("/study deck create mine"))
    for crafted in ("sb:dimp:99999999999999999999", "sb:dimp:²", "sb:ddel:1:2", "sb:dimp-no:x"):
        out = text_of(await service.handle(admin(action=crafted)))
        assert "no longer valid" in out or "not waiting" in out, (crafted, out)
    assert "mine" in text_of(await service.handle(admin("/study deck list")))


def test_only_ids_of_ours_have_a_routed_name() -> None:
    # The service parses an id as routed only when this names a registered route (answer clicks never do).
    assert actions.routed_name("sb:dimp:12") == "dimp" and actions.routed_name("sb:ans:3:A") == "ans"
    assert actions.routed_name("sb:dimp") == "dimp" and actions.routed_name("sb") == ""
    assert actions.routed_name("xx:dimp:12") is None and actions.routed_name("") is None


def test_parse_and_plan_are_pure() -> None:
    parsed = parse_file("x.json", b'[{"id": "q-1", "topic": "t", "difficulty": 1, "prompt": "A prompt long enough?",'
                        b' "choices": ["a", "b", "c", "d"], "answer": "B", "explanation": "An explanation long enough.",'
                        b' "source": "general"}]')  # fmt: skip
    assert not parsed.problems and parsed.items[0].answer == "B"
    assert len(plan_import(parsed.items, []).new) == 1
    text = export_yaml("x", "", parsed.items)
    assert parse_file("x.yaml", text.encode()).items == parsed.items
    bad = parse_file("x.json", b'{"questions": [{"id": "q-1"}]}')
    assert any(str(p).startswith("questions[1]:topic:") for p in bad.problems)


async def test_the_console_imports_a_file_given_by_its_path(service: StudyService, tmp_path: Path) -> None:
    out = io.StringIO()
    console = ConsoleAdapter(service, "me", stdout=out)
    path = tmp_path / "mine.csv"
    path.write_text("\n".join([HEADER, ROW]) + "\n", encoding="utf-8")
    await console.handle_line("/study deck create mine")
    [dry] = await console.handle_line(f"/study deck import mine {path}")
    assert "1 new, 0 changed, 0 problems" in plain(dry.text)
    await console.handle_line(f"/study deck import mine {tmp_path / 'missing.csv'}")
    assert "Cannot read" in out.getvalue() and "missing.csv" in out.getvalue()
    [done] = await console.handle_line(f"/study deck import mine {path}")
    confirm = button([done], "Confirm import")
    assert f"[Confirm import]  [Cancel]   ← type !{confirm}" in out.getvalue()
    [ok] = await console.handle_line(f"!{confirm}")  # the console clicks a button by its action id
    assert "Imported: 1 new" in ok.text


def test_tips_csv_json_errors_anchors_and_duplicate_ids_are_reported_by_place() -> None:
    tips = parse_file(
        "tips.csv",
        b"text,action,step\nVolunteer to run the stand-up for a whole week.,Ask your lead today.,2\n"
        b"Shadow a release manager for one deployment.,Book a slot.,9\n",
    )
    assert [str(p) for p in tips.problems] == ["3:step: Input should be less than or equal to 6"]
    good = parse_file("tips.csv", b"text,action,step\nVolunteer to run the stand-up for a whole week.,Ask today.,2\n")
    assert [(i.kind, i.step) for i in good.items] == [("tip", 2)]
    assert str(parse_file("x.json", b'{"questions": [}').problems[0]).startswith("1:16: JSON syntax")
    anchors = parse_file("x.yaml", b"questions:\n  - &a {id: q-1}\n  - *a\n")
    assert "anchors and aliases" in str(anchors.problems[0])
    dup = csv_file(ROW, ROW)
    assert "duplicate id" in str(parse_file(dup.filename, dup.data).problems[0])
    unknown = parse_file("x.csv", b"prompt,A,B,C,D,answer,explanation,topic,difficulty,colour\n")
    assert [str(p) for p in unknown.problems] == ["1:colour: unknown column"]


async def test_retiring_one_item_stops_posting_it_and_keeps_its_history(service: StudyService) -> None:
    await service.handle(admin("/study deck create mine"))
    await imported(service, "mine", csv_file(ROW.replace(",agile,1", ",agile,1"), ROW2))
    shown = text_of(await service.handle(admin("/study deck show mine")))
    slug = next(line.split("`")[1] for line in shown.splitlines() if "burndown" in line)
    [q] = await service.handle(inbound("/study quiz mine"))
    first = "burndown" in plain(q.text)
    out = text_of(await service.handle(admin(f"/study deck retire mine {slug}")))
    assert f"Retired `{slug}`" in out or f"Retired {slug}" in out
    assert "no live item" in text_of(await service.handle(admin(f"/study deck retire mine {slug}")))
    for _ in range(3):  # only the other question is dealt now
        [again] = await service.handle(inbound("/study quiz mine", user="bob"))
        assert "sprint review" in plain(again.text).lower() or "finished sprint" in plain(again.text).lower()
    if first:  # an answer to the retired question, already dealt, still counts
        assert "Correct" in text_of(await service.handle(inbound(action=q.buttons[0].action_id)))
    assert "read-only" in text_of(await service.handle(admin("/study deck retire tpm t-a")))
