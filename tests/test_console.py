"""The console front end as a person uses it: a subprocess fed through a pipe."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACK = ROOT / "tests" / "fixtures" / "console_pack"


def console(db: Path, lines: list[str], *, user: str = "alice", pack: Path = PACK) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "STUDYBOT_CONTENT": str(pack), "STUDYBOT_LOG_LEVEL": "WARNING"}
    env.pop("DISCORD_TOKEN", None)
    return subprocess.run(
        [sys.executable, "-m", "bot", "console", "--user", user, "--db", str(db)],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
    )


def test_the_readme_session_and_memory_across_runs(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    first = console(db, ["/study quiz", "/study answer B", "/study progress"], pack=ROOT / "content")
    assert first.returncode == 0, first.stderr
    out = first.stdout
    assert all(f"[{x}]" in out for x in "ABCD") and "A) " in out and "D) " in out
    assert ("Correct" in out) or ("Not quite" in out)
    assert "Answered 1 · correct" in out
    second = console(db, ["/study progress"])
    assert second.returncode == 0, second.stderr
    assert "Answered 1 · correct" in second.stdout, "the same database remembers the answer"


def test_two_members_progress_and_leaderboard(tmp_path: Path) -> None:
    db = tmp_path / "two.db"
    run = console(
        db,
        [
            "/study quiz",
            "/study answer B",
            "@bob /study quiz",
            "@bob /study answer A",
            "/study quiz",
            "/study answer B",
            "@bob /study quiz",
            "@bob /study answer B",
            "/study leaderboard all",
            "/study progress",
            "@bob /study progress",
        ],
    )
    assert run.returncode == 0, run.stderr
    out = run.stdout
    assert out.count("✅ Correct") == 3 and out.count("❌ Not quite") == 1
    board = out[out.index("Leaderboard — all time") :].splitlines()
    assert board[1] == "🥇 alice (you) — 2 pts" and board[2] == "🥈 bob — 1 pt"
    assert "Progress — alice\nAnswered 2 · correct 2 (100%) · points 2" in out
    assert "Progress — bob\nAnswered 2 · correct 1 (50%) · points 1" in out
    # A second process on the same file sees the same data.
    later = console(db, ["/study leaderboard all"], user="carol")
    assert "🥇 alice — 2 pts\n🥈 bob — 1 pt" in later.stdout


def test_bad_lines_get_one_line_errors_and_the_session_goes_on(tmp_path: Path) -> None:
    bad = [
        "/study answer Z",
        "/study timezone Mars/Olympus",
        "/study",
        "/study quiz extra words",
        "x" * 10_240,
        "/study ünïcødé ✨",
        "/study answer A",
    ]
    run = console(tmp_path / "bad.db", [*bad, "/study help"])
    assert run.returncode == 0, run.stderr
    lines = [ln for ln in run.stdout.splitlines() if ln.strip()]
    errors = lines[: len(bad)]
    assert "A, B, C or D" in errors[0]
    assert 'Unknown time zone "Mars/Olympus"' in errors[1]
    assert "Which command?" in errors[2]
    assert 'Unexpected "extra words"' in errors[3]
    assert "too long (10,240 characters" in errors[4]
    assert 'Unknown command "ünïcødé"' in errors[5]
    assert "no question to answer here yet" in errors[6]
    assert "studybot" in lines[len(bad)] and "/study quiz" in run.stdout, "help still answers afterwards"
    assert "Traceback" not in run.stderr


def test_run_without_tokens_starts_the_console_and_says_so(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DISCORD_TOKEN", "SLACK_BOT_TOKEN", "SLACK_APP_TOKEN")}
    env |= {"STUDYBOT_CONTENT": str(PACK), "STUDYBOT_DB": str(tmp_path / "run.db")}
    run = subprocess.run(
        [sys.executable, "-m", "bot", "run"],
        input="/study path\n",
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    notice = [ln for ln in run.stderr.splitlines() if "console" in ln]
    assert len(notice) == 1 and "no DISCORD_TOKEN or SLACK_BOT_TOKEN" in notice[0]
    assert "Your path to technical project manager" in run.stdout


def test_check_and_threads_in_the_console(tmp_path: Path) -> None:
    run = console(
        tmp_path / "c.db",
        [
            "/study check",
            "/study schedule set 09:00 thread on",
            "/study schedule post-now",
            "/study rewards set streak 7 123",
        ],
    )
    assert run.returncode == 0, run.stderr
    out = run.stdout
    assert "✅ View the channel" in out and "✅ Discussion threads" in out and "➖ Manage roles" in out
    assert "Everything studybot needs here is in place." in out
    assert "🧵 Each post opens a discussion thread" in out
    assert "🧵 thread opened on console-" in out  # post-now opens the post's thread too
    assert "Role rewards give Discord roles" in out
