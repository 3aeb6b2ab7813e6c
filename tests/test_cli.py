"""The command line: settings errors, content validation, migrations."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def studybot(*args: str, env: dict[str, str] | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("STUDYBOT_", "DISCORD_", "SLACK_"))}
    full["STUDYBOT_HTTP_PORT"] = "0"  # the dashboard's server: never a fixed port in tests
    full |= env or {}
    return subprocess.run(
        [sys.executable, "-m", "bot", *args], capture_output=True, text=True, env=full, cwd=cwd, timeout=60
    )


@pytest.mark.parametrize(
    ("var", "value", "fragment"),
    [
        ("STUDYBOT_LOG_LEVEL", "LOUD", "STUDYBOT_LOG_LEVEL: must be 'DEBUG', 'INFO', 'WARNING' or 'ERROR'"),
        ("STUDYBOT_HTTP_PORT", "99999", "STUDYBOT_HTTP_PORT:"),
        ("STUDYBOT_CATCHUP_HOURS", "soon", "STUDYBOT_CATCHUP_HOURS:"),
        ("STUDYBOT_CHART_WORKERS", "0", "STUDYBOT_CHART_WORKERS:"),
        ("SLACK_API_URL", "ftp://x", "SLACK_API_URL: must be an http(s) URL"),
    ],
)
def test_bad_setting_exits_2_with_one_line(var: str, value: str, fragment: str, tmp_path: Path) -> None:
    run = studybot("db", "migrate", "--db", str(tmp_path / "x.db"), env={var: value})
    assert run.returncode == 2
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0], run.stderr


def test_secret_values_are_not_echoed_in_settings_errors(tmp_path: Path) -> None:
    run = studybot("db", "migrate", env={"DISCORD_TOKEN": "sekrit-token-123", "STUDYBOT_LOG_LEVEL": "nope"})
    assert run.returncode == 2 and "sekrit-token-123" not in run.stderr + run.stdout


@pytest.mark.parametrize(
    ("var", "value"),
    [
        # A secret pasted into the wrong variable: the error names the variable, never the value.
        ("STUDYBOT_DISCORD_GUILD", "MTA5ODc2NTQzMjEwOTg3NjU0.GaBcDe.sekrit_discord_token_value_0123"),
        ("STUDYBOT_HTTP_PORT", "xoxb-1234-5678-sekrit"),
        ("STUDYBOT_CATCHUP_HOURS", "8f742231b10e8888abcd99yyyzzz85a5"),
        ("STUDYBOT_LOG_FORMAT", "token=abc"),
        ("SLACK_API_URL", "ftp://admin:hunter2@slack.example/"),
    ],
)
def test_bad_values_that_may_be_secrets_are_not_echoed(var: str, value: str, tmp_path: Path) -> None:
    run = studybot("db", "migrate", "--db", str(tmp_path / "x.db"), env={var: value})
    assert run.returncode == 2
    [line] = run.stderr.strip().splitlines()
    assert line.startswith(f"studybot: {var}:") and "not shown" in line, line
    for part in (value, "sekrit", "hunter2", "8f742231"):
        assert part not in run.stderr + run.stdout


def test_a_short_harmless_bad_value_is_still_shown(tmp_path: Path) -> None:
    run = studybot("db", "migrate", "--db", str(tmp_path / "x.db"), env={"STUDYBOT_LOG_LEVEL": "LOUD"})
    assert run.returncode == 2 and "(got 'loud')" in run.stderr, run.stderr


def test_env_file_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("STUDYBOT_LOG_LEVEL=LOUD\n")
    run = studybot("db", "migrate", cwd=tmp_path)
    assert run.returncode == 2 and "STUDYBOT_LOG_LEVEL" in run.stderr


def test_db_migrate_creates_folder_and_is_idempotent(tmp_path: Path) -> None:
    db = tmp_path / "nested" / "dir" / "s.db"
    first = studybot("db", "migrate", "--db", str(db))
    assert first.returncode == 0 and "applied 0001_init" in first.stdout
    second = studybot("db", "migrate", "--db", str(db))
    assert second.returncode == 0 and "up to date" in second.stdout


def test_content_validate_clean_and_broken(tmp_path: Path) -> None:
    ok = studybot("content", "validate", str(ROOT / "tests" / "fixtures" / "pack"))
    assert ok.returncode == 0 and ok.stdout.startswith("OK: 4 questions in 2 topics, 2 tips")
    broken = tmp_path / "broken.yaml"
    broken.write_text("questions:\n  - id: Bad Id\n    topic: x\n")
    bad = studybot("content", "validate", str(broken))
    assert bad.returncode == 1
    assert all(line.startswith(f"{broken}:") for line in bad.stdout.strip().splitlines())
    assert f"{broken}:2: id:" in bad.stdout


def test_console_refuses_a_broken_pack_with_file_and_line(tmp_path: Path) -> None:
    broken = tmp_path / "pack"
    broken.mkdir()
    (broken / "q.yaml").write_text("questions:\n  - id: x\n")
    run = studybot("console", "--db", str(tmp_path / "c.db"), env={"STUDYBOT_CONTENT": str(broken)})
    assert run.returncode == 1 and f"{broken / 'q.yaml'}:2:" in run.stderr


def test_owners_are_platform_user_ids() -> None:
    from bot.config import SettingsError, load_settings

    settings = load_settings(_env_file=None, STUDYBOT_OWNERS=" discord:123456789012345678, slack:U0OPS ,W0PLAIN")
    assert settings.owners_on("discord") == {"123456789012345678", "W0PLAIN"}
    assert settings.owners_on("slack") == {"U0OPS", "W0PLAIN"}
    assert load_settings(_env_file=None).owners_on("discord") == frozenset()
    for bad in ("telegram:1", "discord:", "slack:U 1", "discord:12;drop"):
        with pytest.raises(SettingsError, match=r"^STUDYBOT_OWNERS: must be comma-separated user ids"):
            load_settings(_env_file=None, STUDYBOT_OWNERS=bad)
