"""`/study content list|validate|load` through the service: problems as file:line, the last good pack kept."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest

from bot.core.content import ContentLibrary
from bot.core.content_commands import MAX_LINES, ContentCommands
from bot.core.messages import Reply
from bot.core.service import StudyService
from bot.storage import SqliteStore
from tests.conftest import FIXTURE_PACK, FakeClock, inbound

EXTRA_QUESTION = """  - id: t-e
    topic: gamma
    difficulty: 2
    prompt: Which letter is right in test question E?
    choices: [Right, Wrong one, Wrong two, Wrong three]
    answer: A
    explanation: The first choice is the right one in this test question.
    source: general
"""


@pytest.fixture
def pack_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "pack"
    shutil.copytree(FIXTURE_PACK, folder)
    return folder


@pytest.fixture
def svc(store: SqliteStore, pack_dir: Path, clock: FakeClock) -> StudyService:
    service = StudyService(store, ContentLibrary.load(pack_dir), clock, rng=random.Random(3))
    ContentCommands(service.library, in_process=True).register(service)  # checks in a thread: quick
    return service


async def admin(service: StudyService, text: str, *, user: str = "root") -> Reply:
    """``text`` from the bot's operator (``STUDYBOT_OWNERS``; no admin of this group needed)."""
    replies = await service.handle(inbound(text, user=user, operator=True))
    assert len(replies) == 1 and replies[0].private
    return replies[0]


def add_question(pack_dir: Path) -> None:
    text = (pack_dir / "pack.yaml").read_text()
    (pack_dir / "pack.yaml").write_text(text.replace("tips:\n", EXTRA_QUESTION + "tips:\n", 1))


async def test_members_who_are_not_admins_cannot_reload(svc: StudyService, pack_dir: Path) -> None:
    add_question(pack_dir)
    [reply] = await svc.handle(inbound("/study content load", user="bob"))
    assert reply.text.startswith("Only the bot's operator")
    assert len(svc.library.pack.questions) == 4


async def test_a_server_admin_who_is_not_the_operator_cannot_touch_the_shipped_pack(
    svc: StudyService, pack_dir: Path
) -> None:
    # Anyone can invite the bot to a server of their own and be its admin there.
    add_question(pack_dir)
    for text in ("content load", "content validate", "content list"):
        [reply] = await svc.handle(inbound(f"/study {text}", user="mallory", admin=True, group="own-server"))
        assert reply.private and reply.text.startswith("Only the bot's operator can use /study content"), text
        assert "STUDYBOT_OWNERS" in reply.text
    assert len(svc.library.pack.questions) == 4, "the edited pack did not go live"
    reply = await admin(svc, "/study content load")
    assert reply.text.startswith("✅ Loaded 5 questions")


async def test_chat_never_shows_a_server_path(svc: StudyService, pack_dir: Path) -> None:
    secret = str(pack_dir.parent)  # the server's folders above the pack
    replies = [await admin(svc, "/study content list"), await admin(svc, "/study content validate")]
    (pack_dir / "pack.yaml").write_text("questions: [oops")
    (pack_dir / "sub").mkdir()
    (pack_dir / "sub" / "more.yaml").write_text("tips: 3\n")
    replies += [await admin(svc, "/study content validate"), await admin(svc, "/study content load")]
    shutil.rmtree(pack_dir)
    replies += [await admin(svc, "/study content validate"), await admin(svc, "/study content load")]
    for reply in replies:
        assert secret not in reply.text and "/tmp" not in reply.text, reply.text
    assert "(pack/)" in replies[0].text and "pack.yaml:1: YAML syntax" in replies[2].text
    assert "sub/more.yaml:1:" in replies[2].text
    assert "pack:0: no such file or folder" in replies[4].text


async def test_a_burst_of_validate_and_load_runs_one_check_at_a_time_off_the_event_loop(
    svc: StudyService, pack_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio
    import threading

    import bot.core.content_commands as cc

    loop_thread = threading.get_ident()
    running, seen = [0], {"max": 0, "calls": 0, "on_loop": 0}
    guard, release = threading.Lock(), threading.Event()
    real = cc.validate_pack

    def counting(root: Path):  # type: ignore[no-untyped-def]
        with guard:
            running[0] += 1
            seen["calls"] += 1
            seen["max"] = max(seen["max"], running[0])
            seen["on_loop"] += threading.get_ident() == loop_thread
        release.wait(30)  # the first check is held until every request has asked
        try:
            return real(root)
        finally:
            with guard:
                running[0] -= 1

    monkeypatch.setattr(cc, "validate_pack", counting)
    commands = svc._handlers["content.validate"].__self__  # type: ignore[attr-defined]
    asked, check = [0], commands.check

    async def counted_check():  # type: ignore[no-untyped-def]
        asked[0] += 1
        return await check()

    monkeypatch.setattr(commands, "check", counted_check)
    add_question(pack_dir)
    texts = ["/study content validate", "/study content load"] * 40
    burst = asyncio.gather(*(admin(svc, t, user=f"op{i}") for i, t in enumerate(texts)))
    for _ in range(3000):
        if asked[0] == len(texts):
            break
        await asyncio.sleep(0.01)
    release.set()
    replies = await burst
    assert asked[0] == 80 and all(r.text.startswith("✅") for r in replies)
    assert seen["on_loop"] == 0, "parsing ran on the event loop"
    # The first check began before the others asked; all 79 share the second. Never two at once.
    assert seen["max"] == 1 and seen["calls"] == 2, seen
    assert len(svc.library.pack.questions) == 5
    # A check that starts after an edit sees the edit (a request never gets a result older than itself).
    shutil.copy(FIXTURE_PACK / "pack.yaml", pack_dir / "pack.yaml")
    reply = await admin(svc, "/study content load")
    assert reply.text.startswith("✅ Loaded 4 questions") and seen["calls"] == 3


async def test_list_shows_what_is_served(svc: StudyService) -> None:
    reply = await admin(svc, "/study content list")
    assert "4 questions in 2 topics" in reply.text
    assert "alpha (2), beta (2)" in reply.text


async def test_load_serves_an_edited_pack(svc: StudyService, pack_dir: Path) -> None:
    add_question(pack_dir)
    reply = await admin(svc, "/study content load")
    assert reply.text.startswith("✅ Loaded 5 questions in 3 topics") and "was 4 questions" in reply.text
    assert svc.library.pack.question("t-e") is not None
    listed = await admin(svc, "/study content list")
    assert "gamma (1)" in listed.text


async def test_a_broken_pack_is_refused_with_file_and_line_and_the_old_one_keeps_serving(
    svc: StudyService, pack_dir: Path
) -> None:
    [quiz] = await svc.handle(inbound("/study quiz", user="ann"))
    text = (pack_dir / "pack.yaml").read_text()
    # Line 15 holds question t-a's answer; make it invalid, and add a second bad file with a YAML syntax error.
    lines = text.splitlines()
    assert lines[14].strip() == "answer: A"
    lines[14] = "    answer: Z"
    (pack_dir / "pack.yaml").write_text("\n".join(lines) + "\n")
    (pack_dir / "more.yaml").write_text("questions:\n  - id: t-x\n    prompt: [unclosed\n")

    reply = await admin(svc, "/study content load")
    assert reply.text.startswith("❌ Not loaded") and "Still serving the last good pack (4 questions" in reply.text
    problems = reply.text.splitlines()[1:]
    assert any(p.startswith("pack.yaml:15: ") for p in problems), problems
    assert any(p.startswith("more.yaml:") and p.split(":")[1].isdigit() for p in problems), problems
    # Members notice nothing: the question they hold can still be answered from the old pack.
    assert len(svc.library.pack.questions) == 4
    [answered] = await svc.handle(inbound("/study answer A", user="ann"))
    assert "Correct" in answered.text or "Not quite" in answered.text
    assert quiz.buttons


async def test_validate_reports_without_loading(svc: StudyService, pack_dir: Path) -> None:
    (pack_dir / "pack.yaml").write_text((pack_dir / "pack.yaml").read_text().replace("difficulty: 2", "difficulty: 9"))
    reply = await admin(svc, "/study content validate")
    assert reply.text.startswith("❌") and "nothing was loaded" in reply.text
    assert all(line.startswith("pack.yaml:") for line in reply.text.splitlines()[1:])
    shutil.copy(FIXTURE_PACK / "pack.yaml", pack_dir / "pack.yaml")
    add_question(pack_dir)
    ok = await admin(svc, "/study content validate")
    assert ok.text.startswith("✅") and "5 questions" in ok.text
    assert len(svc.library.pack.questions) == 4, "validate does not load"


async def test_many_problems_are_capped_with_a_count(svc: StudyService, pack_dir: Path) -> None:
    bad = "questions:\n" + "".join(f"  - id: Bad Id {i}\n    topic: x\n" for i in range(40))
    (pack_dir / "bad.yaml").write_text(bad)
    reply = await admin(svc, "/study content load")
    lines = reply.text.splitlines()
    assert len(lines) == 1 + MAX_LINES + 1
    assert lines[-1].startswith("… and ") and lines[-1].split()[2].isdigit()
    assert all(line.startswith("bad.yaml:") for line in lines[1:-1])
    assert len(reply.text) < 4000


async def test_a_deleted_pack_folder_keeps_the_last_good_pack(svc: StudyService, pack_dir: Path) -> None:
    shutil.rmtree(pack_dir)
    reply = await admin(svc, "/study content load")
    assert reply.text.startswith("❌ Not loaded") and "no such file or folder" in reply.text
    [quiz] = await svc.handle(inbound("/study quiz", user="cat"))
    assert quiz.buttons, "quizzes are still served from the last good pack"


async def test_the_running_app_has_the_content_commands(tmp_path: Path, pack_dir: Path) -> None:
    from bot.bootstrap import build_app
    from bot.config import Settings

    settings = Settings(STUDYBOT_CONTENT=str(pack_dir), STUDYBOT_DB=str(tmp_path / "app.db"))  # type: ignore[call-arg]
    app = await build_app(settings)
    try:
        add_question(pack_dir)
        reply = await admin(app.service, "/study content load")
        assert reply.text.startswith("✅ Loaded 5 questions")
        assert app.library.pack.question("t-e") is not None
    finally:
        await app.close()


async def test_by_default_the_pack_is_checked_in_a_worker_process(
    store: SqliteStore, pack_dir: Path, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    service = StudyService(store, ContentLibrary.load(pack_dir), clock)
    ContentCommands(service.library).register(service)
    add_question(pack_dir)
    ok = await admin(service, "/study content load")
    assert ok.text.startswith("✅ Loaded 5 questions") and service.library.pack.question("t-e") is not None
    (pack_dir / "pack.yaml").write_text("questions: [oops")
    bad = await admin(service, "/study content validate")
    assert bad.text.startswith("❌") and "pack.yaml:1: YAML syntax" in bad.text
    assert "checking in a thread" not in caplog.text  # the worker process did the work
