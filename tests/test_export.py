"""Analytics and export: CSV columns and numbers on a known small history, `/study export` (admin) and
`studybot export --out DIR` writing the same files."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.core import actions
from bot.core.content import ContentLibrary
from bot.core.export import MEMBER_COLUMNS, QUESTION_COLUMNS
from bot.core.learning import LearningEngine
from bot.core.service import StudyService
from bot.storage import ManagedStore, SqliteStore, learning_for
from tests.conftest import FIXTURE_PACK, ROOT, FakeClock, inbound
from tests.test_learning import learning_service


def rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def header(text: str) -> list[str]:
    return next(csv.reader(io.StringIO(text)))


@pytest.fixture
def svc(store: ManagedStore, library: ContentLibrary, clock: FakeClock) -> StudyService:
    return learning_service(store, library, clock)


async def click(svc: StudyService, user: str, post: int, letter: str, **kw: str) -> None:
    [out] = await svc.handle(inbound(user=user, action=actions.answer_action(post, letter), **kw))
    assert out.text.startswith(("✅", "❌")), out.text


async def history(svc: StudyService, store: ManagedStore, clock: FakeClock) -> None:
    """A known history in group g1 (and one member in g2, which g1's export must not show).

    t-a (right: A) goes to the channel; alice A, bob B, "=cmd" A. bob gets t-a again personally and
    picks A. bob gets t-b (right: B) personally and picks B. alice marks two career steps done."""
    names = {"alice": "alice", "bob": "bob", "cy": "=cmd|' /C calc'!A0"}
    refs = {u: await store.ensure_member("console", "g1", "c1", u, n, now=clock.now()) for u, n in names.items()}
    g1, ch = refs["alice"].group_id, refs["alice"].channel_id
    shared = await store.create_post(g1, ch, None, "question", "t-a", clock.now())
    await store.set_post_message(shared.id, "m-shared")  # posted: it counts as asked
    for user, letter in (("alice", "A"), ("bob", "B"), ("cy", "A")):
        await click(svc, user, shared.id, letter, name=names[user])
        clock.advance(minutes=1)
    again = await store.create_post(g1, ch, refs["bob"].member_id, "question", "t-a", clock.now())
    await click(svc, "bob", again.id, "A")
    tb = await store.create_post(g1, ch, refs["bob"].member_id, "question", "t-b", clock.now())
    await click(svc, "bob", tb.id, "B")
    await svc.handle(inbound("path done 1"))
    await svc.handle(inbound("path done 2"))
    dave = await store.ensure_member("console", "g2", "c9", "dave", "dave", now=clock.now())
    other = await store.create_post(dave.group_id, dave.channel_id, None, "question", "t-c", clock.now())
    await click(svc, "dave", other.id, "D", group="g2", channel="c9")


async def test_csv_columns_and_numbers_on_a_known_history(
    svc: StudyService, store: ManagedStore, clock: FakeClock
) -> None:
    await history(svc, store, clock)
    [reply] = await svc.handle(inbound("export", admin=True))
    assert reply.private and reply.slow
    assert reply.text == "📊 Export for this group: members.csv (3 rows), questions.csv (4 rows)."
    files = {a.filename: a for a in reply.attachments}
    assert set(files) == {"members.csv", "questions.csv"} and {a.mime for a in reply.attachments} == {"text/csv"}
    members_text = files["members.csv"].data.decode()
    questions_text = files["questions.csv"].data.decode()
    assert header(members_text) == list(MEMBER_COLUMNS)
    assert header(questions_text) == list(QUESTION_COLUMNS)

    members = {r["user_id"]: r for r in rows(members_text)}
    assert set(members) == {"alice", "bob", "cy"}, "only this group's members"
    alice, bob, cy = members["alice"], members["bob"], members["cy"]
    assert (alice["answered"], alice["correct"], alice["share_correct"], alice["points"]) == ("1", "1", "1.000", "1")
    assert (bob["answered"], bob["correct"], bob["share_correct"], bob["points"]) == ("3", "2", "0.667", "1")
    assert (alice["steps_done"], bob["steps_done"], alice["cards"], bob["cards"]) == ("2", "0", "1", "2")
    assert (alice["streak"], alice["best_streak"], alice["last_active_day"]) == ("1", "1", "2026-11-23")
    assert bob["reviews_due"] == "0" and alice["group"] == "console:g1" and alice["leaderboard_hidden"] == "0"
    assert cy["display_name"] == "'=cmd|' /C calc'!A0", "a name a spreadsheet would run is defused"

    questions = {r["question_id"]: r for r in rows(questions_text)}
    assert list(questions) == ["t-a", "t-b", "t-c", "t-d"], "every pack question, in pack order"
    ta, tb, tc = questions["t-a"], questions["t-b"], questions["t-c"]
    assert (ta["topic"], ta["difficulty"], ta["right_answer"], ta["in_pack"]) == ("alpha", "1", "A", "1")
    assert (ta["times_asked"], ta["answers"], ta["correct"], ta["share_correct"]) == ("2", "4", "3", "0.750")
    assert (ta["first_answers"], ta["first_share_correct"]) == ("3", "0.667")
    assert [ta[f"picks_{x}"] for x in "ABCD"] == ["3", "1", "0", "0"]
    assert (tb["times_asked"], tb["answers"], tb["share_correct"], tb["picks_B"]) == ("1", "1", "1.000", "1")
    assert (tc["times_asked"], tc["answers"], tc["share_correct"], tc["picks_D"]) == ("0", "0", "", "0"), "g2's post"


async def test_export_is_for_admins_only(svc: StudyService) -> None:
    [refused] = await svc.handle(inbound("export"))
    assert refused.text.startswith("Only admins can use /study export") and not refused.attachments


async def test_questions_removed_from_the_pack_keep_their_history(
    svc: StudyService, store: ManagedStore, clock: FakeClock, library: ContentLibrary
) -> None:
    await history(svc, store, clock)
    engine = LearningEngine(
        learning_for(store), store, ContentLibrary.load(ROOT / "tests" / "fixtures" / "console_pack"), clock
    )
    files = await engine.export_files(None, clock.now())
    questions = rows(files["questions.csv"])
    gone = [r for r in questions if r["question_id"] == "t-a" and r["group"] == "console:g1"]
    assert len(gone) == 1 and gone[0]["in_pack"] == "0" and gone[0]["answers"] == "4" and gone[0]["topic"] == ""
    assert {r["group"] for r in rows(files["members.csv"])} == {"console:g1", "console:g2"}


def studybot(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("STUDYBOT_", "DISCORD_", "SLACK_"))}
    full |= {"STUDYBOT_CONTENT": str(FIXTURE_PACK), "STUDYBOT_LOG_LEVEL": "WARNING"} | (env or {})
    return subprocess.run(
        [sys.executable, "-m", "bot", *args], capture_output=True, text=True, env=full, cwd=ROOT, timeout=60
    )


async def test_cli_export_writes_the_same_files(
    svc: StudyService, store: ManagedStore, clock: FakeClock, library: ContentLibrary, db_path: Path, tmp_path: Path
) -> None:
    await history(svc, store, clock)
    out = tmp_path / "export" / "today"
    if isinstance(store, SqliteStore):
        run = studybot("export", "--out", str(out), "--db", str(db_path))
    else:  # the same command, on the PostgreSQL database the test's store uses
        run = studybot("export", "--out", str(out), env={"STUDYBOT_DATABASE_URL": store.url})  # type: ignore[attr-defined]
    assert run.returncode == 0, run.stderr
    assert f"wrote {out / 'members.csv'} (4 rows)" in run.stdout
    now = datetime.now(UTC)  # the CLI used the real clock
    expected = await LearningEngine(learning_for(store), store, library, clock).export_files(None, now)
    assert sorted(p.name for p in out.iterdir()) == ["members.csv", "questions.csv"]
    for name, text in expected.items():
        assert (out / name).read_text(encoding="utf-8") == text, name
    [reply] = await svc.handle(inbound("export", admin=True))
    g1_only = {a.filename: a.data.decode() for a in reply.attachments}
    assert header(g1_only["members.csv"]) == header((out / "members.csv").read_text())
    assert set(g1_only["questions.csv"].splitlines()) <= set((out / "questions.csv").read_text().splitlines()), (
        "a group's export is the CLI's files narrowed to that group"
    )


def test_cli_export_without_a_database_says_so(tmp_path: Path) -> None:
    run = studybot("export", "--out", str(tmp_path / "out"), "--db", str(tmp_path / "missing.db"))
    assert run.returncode == 1 and "no database at" in run.stderr
    assert not (tmp_path / "out").exists() and not (tmp_path / "missing.db").exists()


@pytest.mark.sqlite_only  # about the folder written, not the store
@pytest.mark.parametrize("where", ["an existing file", "a folder under a file"])
def test_cli_export_to_a_place_that_is_no_folder_is_one_line_and_exit_2(
    tmp_path: Path, db_path: Path, store: SqliteStore, where: str
) -> None:
    planted = tmp_path / "report.csv"
    planted.write_text("precious\n")
    out = planted if where == "an existing file" else planted / "sub"
    run = studybot("export", "--out", str(out), "--db", str(db_path))
    assert run.returncode == 2, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and str(out) in lines[0] and "Traceback" not in run.stderr, run.stderr
    assert planted.read_text() == "precious\n" and run.stdout == ""
    assert sorted(
        p.name for p in tmp_path.iterdir() if p.name != db_path.name and not p.name.startswith(db_path.name)
    ) == ["report.csv"], "nothing else was written"


@pytest.mark.parametrize(
    ("name", "defused"),
    [
        ("x;=2+5;", "x;'=2+5;"),  # a spreadsheet splitting on ";" (many locales) would run =2+5
        ("a,=1+1", "a,'=1+1"),
        ("a\t+1", "a\t'+1"),
        ("a|-1", "a|'-1"),
        ("a| @SUM(A1)", "a| '@SUM(A1)"),
        ('a;"=HYPERLINK(1)"', 'a;"\'=HYPERLINK(1)"'),
        ("=start", "'=start"),
        ("Anne-Marie; Bob", "Anne-Marie; Bob"),  # no trigger after a separator: unchanged
        ("plain name", "plain name"),
    ],
)
def test_formula_triggers_after_any_separator_are_defused(name: str, defused: str) -> None:
    from bot.core.export import _safe

    assert _safe(name) == defused


@pytest.mark.parametrize("separator", [",", ";", "\t", "|"])
async def test_no_cell_of_the_export_starts_a_formula_whatever_the_separator(
    svc: StudyService, store: SqliteStore, clock: FakeClock, separator: str
) -> None:
    hostile = "x;=2+5;|+cmd\t-1,@A1"
    await svc.handle(inbound("quiz", user="eve", name=hostile))
    [reply] = await svc.handle(inbound("export", admin=True))
    text = {a.filename: a.data.decode() for a in reply.attachments}["members.csv"]
    # Split the way a spreadsheet would with this separator (quotes honoured or not: both are checked).
    honoured = [cell for row in csv.reader(io.StringIO(text), delimiter=separator) for cell in row]
    naive = [cell for line in text.splitlines() for cell in line.split(separator)]
    for cell in honoured + naive:
        assert not cell.lstrip(" \"'").startswith(("=", "+", "-", "@")) or cell.lstrip(' "').startswith("'"), (
            separator,
            cell,
        )


@pytest.mark.sqlite_only  # about the files written, not the store
def test_cli_export_never_writes_through_a_planted_symlink(tmp_path: Path, db_path: Path, store: SqliteStore) -> None:
    out = tmp_path / "out"
    out.mkdir()
    victims = {name: tmp_path / f"victim-{name}" for name in ("tmp", "members", "questions")}
    for victim in victims.values():
        victim.write_text("precious\n")
    # Links where the old code wrote its temporary file and where the final files go.
    (out / ".members.csv.tmp").symlink_to(victims["tmp"])
    (out / ".questions.csv.tmp").symlink_to(victims["tmp"])
    (out / "members.csv").symlink_to(victims["members"])
    (out / "questions.csv").symlink_to(victims["questions"])
    run = studybot("export", "--out", str(out), "--db", str(db_path))
    assert run.returncode == 0, run.stderr
    assert {p.name: p.read_text() for p in victims.values()} == dict.fromkeys(
        (p.name for p in victims.values()), "precious\n"
    )
    for name in ("members.csv", "questions.csv"):
        path = out / name
        assert not path.is_symlink() and path.is_file() and path.read_text().startswith("group,")
    # Nothing else was left behind but the planted links, which were not touched.
    assert sorted(p.name for p in out.iterdir() if not p.is_symlink()) == ["members.csv", "questions.csv"]
