"""Anki files through `/study deck import` (issue 16): an .apkg made in the tests and a text export become
a deck's open cards after the same dry run and Confirm as YAML/CSV/JSON, and are then practised with
`/study cards`; bad files are refused in one line and nothing is written. SQLite and PostgreSQL."""

from __future__ import annotations

import io
import random
from pathlib import Path

import pytest

from bot import anki
from bot.config import Settings
from bot.core.content import ContentLibrary
from bot.core.deck_commands import Catalog, DeckCommands
from bot.core.learning import LearningEngine
from bot.core.markup import plain
from bot.core.messages import Attachment
from bot.core.practice import DeckCards, PracticeEngine
from bot.core.service import StudyService
from bot.scheduling import Scheduler
from bot.storage import ManagedStore, decks_for, learning_for, practice_for, schedules_for
from tests.conftest import FakeClock, Outside, inbound
from tests.fakes import FakeChatGateway
from tests.test_anki import BASIC, NOTES, apkg, collection
from tests.test_decks import admin, button, text_of
from tests.test_practice import step


@pytest.fixture
def service(store: ManagedStore, library: ContentLibrary, clock: FakeClock) -> StudyService:
    decks = decks_for(store)  # type: ignore[arg-type]
    catalog = Catalog(decks, library)
    svc = StudyService(store, library, clock, rng=random.Random(7), catalog=catalog)
    learning = LearningEngine(learning_for(store), store, library, clock, charts=False, catalog=catalog)  # type: ignore[arg-type]
    learning.install(svc)
    DeckCommands(decks, catalog, anki).install(svc)
    PracticeEngine(practice_for(store), DeckCards(library, decks), learning, store).install(svc)
    gateway = FakeChatGateway()
    Scheduler(schedules_for(store), svc, {"console": gateway}, clock, Settings.model_validate({})).install_commands()  # type: ignore[arg-type]
    return svc


LONG_NOTES = [
    (BASIC, "tpm::risk Risk", ["What does a RAID log track?", "Risks, <b>assumptions</b>, issues<br>and dependencies"]),
    (
        BASIC,
        "",
        [
            "<div>What is the critical path?</div><img src='cp.png'>",
            "The longest chain of dependent tasks<script>x()</script>",
        ],
    ),
    (BASIC, "", ["Too short", "a back"]),
]


async def test_an_apkg_is_a_dry_run_until_confirmed_then_its_cards_are_practised(
    service: StudyService, outside: Outside
) -> None:
    await service.handle(admin("/study deck create anki"))
    file = Attachment("risk.apkg", apkg({"collection.anki2": collection(LONG_NOTES)}))
    dry = await service.handle(admin("/study deck import anki", files=(file,)))
    text = text_of(dry)
    assert "Dry run: risk.apkg → deck anki" in text
    assert "Anki: 3 notes: 2 cards; skipped 1 (1 too short for a deck card); dropped 1 image, 1 script" in text
    assert "2 new" in text
    assert await outside("SELECT COUNT(*) FROM deck_items") == [(0,)]  # nothing before Confirm

    done = text_of(await service.handle(admin(action=button(dry, "Confirm import"))))
    assert "2" in done
    stored = await outside("SELECT kind, front, back, tags FROM deck_items ORDER BY id")
    assert stored[0][:3] == ("card", "What does a RAID log track?", "Risks, assumptions, issues\nand dependencies")
    assert '"tpm-risk"' in stored[0][3] and '"risk"' in stored[0][3]
    assert stored[1][:3] == ("card", "What is the critical path?", "The longest chain of dependent tasks")

    again = text_of(await service.handle(admin("/study deck import anki", files=(file,))))
    assert "Nothing to import" in again  # the same notes again: same slugs, nothing new

    [dealt] = await service.handle(inbound("cards anki", user="mia"))
    [shown] = await service.handle(inbound(action=step(dealt, "show"), user="mia"))
    assert "What does a RAID log track?" in dealt.text or "critical path" in dealt.text
    assert "Answer" in shown.text and [b.label for b in shown.buttons] == ["Again", "Hard", "Good", "Easy"]


async def test_an_anki_text_export_imports_too(service: StudyService, outside: Outside) -> None:
    await service.handle(admin("/study deck create words"))
    text = b"#separator:tab\n#html:true\nWhat is a stakeholder map?\tWho is affected, their power and interest\n"
    dry = await service.handle(admin("/study deck import words", files=(Attachment("words.txt", text),)))
    assert "Anki: 1 note: 1 card" in text_of(dry)
    await service.handle(admin(action=button(dry, "Confirm import")))
    assert await outside("SELECT front FROM deck_items") == [("What is a stakeholder map?",)]


@pytest.mark.parametrize(
    ("file", "says"),
    [
        (Attachment("broken.apkg", b"not a zip at all"), "not an Anki package"),
        (
            Attachment("new.apkg", apkg({"collection.anki2": collection([]), "collection.anki21b": b"zstd"})),
            "newer format",
        ),
        (Attachment("old.apkg", apkg({"collection.anki2": collection(NOTES, ver=18)})), "Anki schema 18"),
        (Attachment("empty.apkg", apkg({"notes.txt": b"hello"})), "holds no Anki collection"),
        (Attachment("huge.apkg", b"PK\x03\x04" + b"\x00" * (10 * 1024 * 1024)), "limit for Anki files is 10 MB"),
    ],
)
async def test_bad_anki_files_are_refused_and_nothing_is_written(
    service: StudyService, outside: Outside, file: Attachment, says: str
) -> None:
    await service.handle(admin("/study deck create anki"))
    [out] = await service.handle(admin("/study deck import anki", files=(file,)))
    assert says in out.text and "Nothing was imported." in out.text and not out.buttons
    assert await outside("SELECT COUNT(*) FROM deck_items") == [(0,)]
    assert await outside("SELECT COUNT(*) FROM deck_imports") == [(0,)]


async def test_the_console_reads_an_anki_file_past_a_megabyte_and_a_file_past_ten_by_its_size(
    service: StudyService, tmp_path: Path
) -> None:
    """The console attaches a file as the chat front ends do: whole up to Anki's 10 MB (it stopped at the
    1 MB of YAML/CSV/JSON, which cut a 2 MB package into a broken zip), and larger only by its size."""
    from bot.adapters.console_adapter import ConsoleAdapter
    from tests.test_anki import anki_package_of

    console = ConsoleAdapter(service, "me", stdout=io.StringIO())
    await console.handle_line("/study deck create mine")
    big = tmp_path / "big.apkg"
    big.write_bytes(anki_package_of(2_000_000))
    [dry] = await console.handle_line(f"/study deck import mine {big}")
    assert "Dry run" in plain(dry.text) and "4 new" in plain(dry.text), dry.text
    huge = tmp_path / "huge.csv"
    huge.write_bytes(b"x" * 11_000_000)
    [refused] = await console.handle_line(f"/study deck import mine {huge}")
    assert "11,000,000 bytes; the limit is 1 MB" in plain(refused.text), refused.text
