"""Deployment: the compose file and Dockerfile pass their checkers, the image's install layout works,
and `studybot health` says exactly when the bot can serve (without changing anything)."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import yaml

from bot.health import check
from bot.storage import SqliteStore

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PACK = ROOT / "tests" / "fixtures" / "pack"
MIGRATIONS = ROOT / "migrations"


def tool(name: str, *args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    exe = BIN / name
    assert exe.exists(), f"{name} is missing: it comes with the dev extras (pip install -e '.[dev]')"
    return subprocess.run([str(exe), *args], capture_output=True, text=True, cwd=cwd, timeout=120)


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STUDYBOT_", "DISCORD_", "SLACK_", "PYTHONPATH"))}
    env["STUDYBOT_HTTP_PORT"] = "0"  # the dashboard's server: never a fixed port in tests
    return env | extra


def studybot(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=clean_env(**env),
        timeout=60,
    )


# ---------------------------------------------------------------- compose


def test_compose_file_passes_the_compose_spec_schema(tmp_path: Path) -> None:
    ok = tool("check-jsonschema", "--builtin-schema", "vendor.compose-spec", "docker-compose.yml")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    # The check can fail: a misspelt restart policy is caught.
    broken = tmp_path / "docker-compose.yml"
    broken.write_text((ROOT / "docker-compose.yml").read_text().replace("restart: unless-stopped", "restrat: always"))
    bad = tool("check-jsonschema", "--builtin-schema", "vendor.compose-spec", str(broken))
    assert bad.returncode == 1 and "restrat" in bad.stdout + bad.stderr


def test_compose_service_runs_the_bot_with_a_volume_and_a_healthcheck() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    # Without a profile, only the bot runs (the postgres service belongs to the "postgres" profile).
    [svc] = [s for s in compose["services"].values() if not s.get("profiles")]
    assert svc["build"] == "." and svc["env_file"] == ".env"
    assert svc["restart"] == "unless-stopped"
    assert svc["environment"]["STUDYBOT_DB"] == "/data/studybot.db"
    [volume] = svc["volumes"]
    source, target = volume.split(":")
    assert target == "/data" and source in compose["volumes"], "the database is on a named volume"
    assert svc["healthcheck"]["test"] == ["CMD", "studybot", "health"]
    assert any(str(p).startswith("3000:3000") for p in svc["ports"])


def test_compose_postgres_profile_runs_the_server_and_the_bot_waits_for_it(tmp_path: Path) -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    pg = compose["services"]["postgres"]
    assert pg["profiles"] == ["postgres"], "PostgreSQL only runs when asked for (SQLite stays the default)"
    assert pg["image"].split(":")[0] == "postgres", "the official image"
    [volume] = pg["volumes"]
    source, target = volume.split(":")
    assert target == "/var/lib/postgresql/data" and source in compose["volumes"], "its data is on a named volume"
    assert "pg_isready" in " ".join(pg["healthcheck"]["test"])
    assert pg["environment"]["POSTGRES_PASSWORD"].startswith("${"), "the password comes from .env, not the file"
    assert "ports" not in pg, "the database is reachable only on the compose network"
    bot = compose["services"]["studybot"]
    assert bot["depends_on"]["postgres"] == {"condition": "service_healthy", "required": False}
    # The schema check catches a wrong condition in this part too.
    broken = tmp_path / "docker-compose.yml"
    broken.write_text((ROOT / "docker-compose.yml").read_text().replace("service_healthy", "service_ready"))
    bad = tool("check-jsonschema", "--builtin-schema", "vendor.compose-spec", str(broken))
    assert bad.returncode == 1 and "service_ready" in bad.stdout + bad.stderr


# ---------------------------------------------------------------- Dockerfile


def test_dockerfile_passes_hadolint(tmp_path: Path) -> None:
    ok = tool("hadolint", "--no-color", "Dockerfile")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    sloppy = tmp_path / "Dockerfile"
    sloppy.write_text("FROM python:latest\nRUN apt-get update && apt-get install curl\n")
    bad = tool("hadolint", "--no-color", str(sloppy))
    assert bad.returncode != 0 and "DL3007" in bad.stdout, "hadolint does flag a sloppy Dockerfile"


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs with continuation lines joined."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), " ".join(rest.split())))
    return out


def test_dockerfile_builds_a_slim_non_root_image_with_content_and_migrations() -> None:
    steps = dockerfile()
    assert steps[0] == ("FROM", "python:3.11-slim")
    users = [arg for ins, arg in steps if ins == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), "the bot does not run as root"
    runs = " ".join(arg for ins, arg in steps if ins == "RUN")
    assert "pip install --no-cache-dir /app" in runs and " -e " not in runs, "a regular install, not editable"
    assert "tzdata" in runs
    copies = [arg for ins, arg in steps if ins == "COPY"]
    assert "migrations ./migrations" in copies and "content ./content" in copies
    env = " ".join(arg for ins, arg in steps if ins == "ENV")
    for setting in (
        "STUDYBOT_DB=/data/studybot.db",
        "STUDYBOT_CONTENT=/app/content",
        "STUDYBOT_MIGRATIONS=/app/migrations",
    ):
        assert setting in env
    assert any(ins == "HEALTHCHECK" and arg.endswith('CMD ["studybot", "health"]') for ins, arg in steps)
    # .dockerignore excludes everything except what the COPY lines need.
    allowed = {
        ln.strip().strip("!").rstrip("/")
        for ln in (ROOT / ".dockerignore").read_text().splitlines()
        if ln.startswith("!")
    }
    for arg in copies:
        for src in arg.split()[:-1]:
            assert src.rstrip("/") in allowed, f"{src} is copied but excluded by .dockerignore"


def test_the_installed_layout_works_with_the_image_settings(tmp_path: Path) -> None:
    """Lay the package out as `pip install /app` does (only the packages setuptools finds, nothing beside
    them) and run it from elsewhere with the Dockerfile's settings."""
    import tomllib

    from setuptools import find_namespace_packages

    site = tmp_path / "site-packages"
    data_files = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    for package in find_namespace_packages(where=str(ROOT), include=["bot*"]):
        folder = ROOT / package.replace(".", "/")
        patterns = ["*.py", *data_files.get(package, [])]  # and the package data pip installs with it
        for source in (f for pattern in patterns for f in folder.glob(pattern)):
            target = site / source.relative_to(ROOT)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, target)
    app = tmp_path / "app"
    shutil.copytree(MIGRATIONS, app / "migrations")
    shutil.copytree(ROOT / "content", app / "content")
    data = tmp_path / "data"
    data.mkdir()
    image = {
        "PYTHONPATH": str(site),
        "STUDYBOT_DB": str(data / "studybot.db"),
        "STUDYBOT_CONTENT": str(app / "content"),
        "STUDYBOT_MIGRATIONS": str(app / "migrations"),
    }
    where = studybot("health", cwd=data, PYTHONPATH=str(site))
    assert where.returncode == 1, "without the image's settings an installed package has no migrations or content"
    probe = subprocess.run(
        [sys.executable, "-c", "import bot; print(bot.__file__)"],
        capture_output=True,
        text=True,
        cwd=data,
        env=clean_env(**image),
    )
    assert probe.stdout.strip() == str(site / "bot" / "__init__.py"), "the copied package is the one imported"
    assert studybot("health", cwd=data, **image).returncode == 1, "no database yet"
    session = subprocess.run(
        [sys.executable, "-m", "bot", "run"],
        input="/study quiz\n/study answer A\n/study progress\n",
        capture_output=True,
        text=True,
        cwd=data,
        env=clean_env(**image),
        timeout=60,
    )
    assert session.returncode == 0, session.stderr
    assert "Answered 1" in session.stdout
    assert "dashboard: listening on http://127.0.0.1:" in session.stderr, "templates and stylesheet were installed"
    healthy = studybot("health", cwd=data, **image)
    assert healthy.returncode == 0 and healthy.stdout.startswith("OK: database"), healthy.stderr


# ---------------------------------------------------------------- studybot health


def schema_version(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone()[0])


async def migrated(db: Path, migrations: Path = MIGRATIONS / "sqlite") -> None:
    store = SqliteStore(db, migrations_dir=migrations)
    await store.start()
    await store.close()


def test_health_exit_codes_through_the_command_line(tmp_path: Path) -> None:
    env = {"STUDYBOT_CONTENT": str(PACK), "STUDYBOT_DB": str(tmp_path / "s.db")}
    missing = studybot("health", cwd=tmp_path, **env)
    assert (
        missing.returncode == 1
        and missing.stderr.startswith("unhealthy: database")
        and "does not exist" in missing.stderr
    )
    assert not (tmp_path / "s.db").exists(), "health does not create the database"
    assert studybot("db", "migrate", cwd=tmp_path, **env).returncode == 0
    ok = studybot("health", cwd=tmp_path, **env)
    assert ok.returncode == 0 and len(ok.stdout.strip().splitlines()) == 1 and ok.stdout.startswith("OK: ")
    bad_setting = studybot("health", cwd=tmp_path, **env, STUDYBOT_LOG_LEVEL="LOUD")
    assert bad_setting.returncode == 1, "a health check answers 0 or 1, never 2"


async def test_health_while_the_bot_holds_the_database(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    store = SqliteStore(db)
    await store.start()
    try:
        verdict = check(db, MIGRATIONS, PACK)
        assert verdict.ok, verdict.message
        assert f"schema version {schema_version(db)}" in verdict.message and "4 questions" in verdict.message
    finally:
        await store.close()


async def test_health_reports_pending_migrations_and_applies_none(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    await migrated(db)
    before = schema_version(db)
    newer = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS, newer)
    (newer / "sqlite" / f"{before + 1:04d}_later.sql").write_text("CREATE TABLE later (id INTEGER PRIMARY KEY);\n")
    verdict = check(db, newer, PACK)
    assert not verdict.ok and f"pending {before + 1:04d}_later" in verdict.message
    assert schema_version(db) == before, "health only checks"
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT name FROM sqlite_master WHERE name = 'later'").fetchone() is None


async def test_health_refuses_a_database_from_a_newer_studybot(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    await migrated(db)
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO schema_migrations VALUES (99, '0099_future', '2030-01-01T00:00:00Z')")
    verdict = check(db, MIGRATIONS, PACK)
    assert not verdict.ok and "schema version 99, newer than this studybot knows" in verdict.message


async def test_health_reports_a_broken_pack_with_file_and_line(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    await migrated(db)
    pack = tmp_path / "pack"
    pack.mkdir()
    (pack / "q.yaml").write_text("questions:\n  - id: Bad Id\n    topic: x\n")
    verdict = check(db, MIGRATIONS, pack)
    assert not verdict.ok and f"{pack / 'q.yaml'}:2:" in verdict.message


def test_health_reports_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    db.write_bytes(b"this is not sqlite" * 100)
    verdict = check(db, MIGRATIONS, PACK)
    assert not verdict.ok and "cannot be read" in verdict.message
