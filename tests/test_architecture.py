"""Dependencies point inward: the core imports no platform library or driver."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {"discord", "slack_bolt", "slack_sdk", "aiosqlite", "apscheduler", "aiohttp", "sqlite3"}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "id", "") in ("__import__", "import_module")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.add(node.args[0].value.split(".")[0])
    return found


CORE_FILES = sorted((ROOT / "bot" / "core").rglob("*.py"))


def test_core_has_files() -> None:
    assert len(CORE_FILES) >= 5


@pytest.mark.parametrize("path", CORE_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_core_imports_no_platform_or_driver(path: Path) -> None:
    leaks = imported_modules(path) & FORBIDDEN
    assert not leaks, f"{path.relative_to(ROOT)} imports {sorted(leaks)}; the core must stay platform-free"


def test_checker_catches_a_leak(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import os\nfrom discord import app_commands\nimport aiosqlite.core\n")
    assert imported_modules(bad) & FORBIDDEN == {"discord", "aiosqlite"}


def test_only_bootstrap_and_cli_wire_concrete_parts() -> None:
    """Adapters and storage may not import each other; only bootstrap/cli compose them."""
    for path in sorted((ROOT / "bot" / "adapters").rglob("*.py")):
        mods = {m for m in _bot_imports(path)}
        assert not any(m.startswith("bot.storage") for m in mods), f"{path.name} imports storage directly"
    for path in sorted((ROOT / "bot" / "storage").rglob("*.py")):
        mods = {m for m in _bot_imports(path)}
        assert not any(m.startswith("bot.adapters") for m in mods), f"{path.name} imports an adapter"


def _bot_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("bot"):
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("bot")}
    return out
