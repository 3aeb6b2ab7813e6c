"""`studybot` command line: run, console, db, content."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import logging
import os
import sqlite3
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from bot.config import Settings, SettingsError, load_settings
from bot.core.content import ContentInvalid, json_schema, validate_pack
from bot.core.ports import StoreError, StoreUnavailable
from bot.logs import RedactingFilter, setup_logging

if TYPE_CHECKING:
    from bot.bootstrap import App, FrontEnd

log = logging.getLogger("studybot")

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "content" / "schema.json"


def _default_user() -> str:
    try:
        return getpass.getuser() or "me"
    except Exception:
        return "me"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="studybot", description="A study-group bot for Discord, Slack and the console.")
    sub = p.add_subparsers(dest="cmd", metavar="COMMAND")

    sub.add_parser("run", help="start the configured front ends (the console when no tokens are set)")

    c = sub.add_parser("console", help="study in the terminal: one /study command per line")
    c.add_argument("--user", default=None, help="your name in the console (default: your login)")
    c.add_argument("--db", type=Path, default=None, help="database file (default: STUDYBOT_DB)")

    db = sub.add_parser("db", help="database commands").add_subparsers(dest="db_cmd", metavar="ACTION")
    m = db.add_parser("migrate", help="apply pending migrations")
    m.add_argument("--db", type=Path, default=None)
    b = db.add_parser("backup", help="copy the database to PATH safely, even while the bot runs")
    b.add_argument("path", type=Path, help="the backup file to write (replaced if it exists)")
    b.add_argument("--db", type=Path, default=None)
    cp = db.add_parser(
        "copy", help="copy a SQLite database into PostgreSQL, verified (refuses a target that holds data)"
    )
    cp.add_argument("--from", dest="source", default=None, metavar="URL", help="sqlite:///PATH (default: STUDYBOT_DB)")
    cp.add_argument(
        "--to", dest="target", default=None, metavar="URL", help="postgresql://… (default: STUDYBOT_DATABASE_URL)"
    )
    cp.add_argument("--force", action="store_true", help="replace the rows of a target that already holds data")

    e = sub.add_parser("export", help="write members.csv and questions.csv (progress and analytics) to DIR")
    e.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder for the CSV files (created)")
    e.add_argument("--db", type=Path, default=None)

    h = sub.add_parser("health", help="exit 0 if the database and content are ready to serve, else 1 and why")
    h.add_argument("--db", type=Path, default=None)

    i = sub.add_parser("invite-url", help="print the URL that adds the Discord bot to a server")
    i.add_argument("--client-id", type=int, default=None, help="the application id (default: DISCORD_APPLICATION_ID)")

    content = sub.add_parser("content", help="content pack commands").add_subparsers(
        dest="content_cmd", metavar="ACTION"
    )
    v = content.add_parser("validate", help="check a pack: file:line for every problem")
    v.add_argument("path", nargs="?", type=Path, default=None, help="folder or file (default: STUDYBOT_CONTENT)")
    s = content.add_parser("schema", help="print the JSON Schema of a content file")
    s.add_argument("--write", action="store_true", help=f"write it to {SCHEMA_PATH.name}")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.cmd is None:
        parser.print_help()
        return 2
    try:
        settings = load_settings()
    except SettingsError as e:
        print(f"studybot: {e}", file=sys.stderr)
        return 1 if args.cmd == "health" else 2  # a health check's contract is 0 or 1
    setup_logging(settings.log_level, settings.log_format, settings.secrets())
    try:
        if args.cmd == "content":
            return _content(args, settings.content)
        if args.cmd == "db":
            if args.db_cmd == "backup":
                if not settings.database(args.db).startswith("sqlite:"):
                    print("studybot: db backup copies a SQLite file; back up PostgreSQL with pg_dump", file=sys.stderr)
                    return 2
                return _backup(args.db or settings.db, args.path)
            if args.db_cmd == "copy":
                return asyncio.run(_db_copy(settings, args.source, args.target, force=args.force))
            if args.db_cmd != "migrate":
                parser.parse_args(["db", "--help"])
            return asyncio.run(_migrate(settings, args.db))
        if args.cmd == "health":
            from bot.health import check

            health = check(settings.database(args.db), settings.migrations, settings.content)
            message = RedactingFilter(settings.secrets()).scrub(health.message)  # it names paths
            print(
                message if health.ok else f"unhealthy: {message}",
                file=sys.stdout if health.ok else sys.stderr,
            )
            return 0 if health.ok else 1
        if args.cmd == "export":
            return _export(settings, args.db, args.out)
        if args.cmd == "console":
            return asyncio.run(_console(settings, args.user or _default_user(), args.db))
        if args.cmd == "run":
            return asyncio.run(_run(settings))
        if args.cmd == "invite-url":
            return _invite_url(args.client_id or settings.discord_application_id)
    except ContentInvalid as e:
        print(f"studybot: the content pack has {len(e.errors)} problem(s):", file=sys.stderr)
        for err in e.errors[:50]:
            print(f"  {err}", file=sys.stderr)
        return 1
    except StoreUnavailable as e:  # the server is down, refuses us or the URL points nowhere: fix and restart
        print(f"studybot: database: {e}", file=sys.stderr)
        return 2
    except StoreError as e:
        print(f"studybot: {e}", file=sys.stderr)
        return 2
    except sqlite3.DatabaseError as e:  # found while reading, past the checks at opening
        db = getattr(args, "db", None) or settings.db
        print(f"studybot: database {db} cannot be read: {e} (restore a backup)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    parser.print_help()
    return 2


def _content(args: argparse.Namespace, default: Path) -> int:
    if args.content_cmd == "validate":
        path = args.path or default
        pack, errors = validate_pack(path)
        for err in errors:
            print(err)
        if pack is None:
            print(f"{len(errors)} problem(s) in {path}", file=sys.stderr)
            return 1
        print(f"OK: {pack.summary()} ({path})")
        return 0
    if args.content_cmd == "schema":
        text = json_schema()
        if args.write:
            SCHEMA_PATH.write_text(text, encoding="utf-8")
            print(f"wrote {SCHEMA_PATH}")
        else:
            sys.stdout.write(text)
        return 0
    print("usage: studybot content validate [PATH] | schema [--write]", file=sys.stderr)
    return 2


def _backup(db: Path, target: Path) -> int:
    from bot.backup import BackupError, backup

    try:
        result = backup(db, target)
    except BackupError as e:
        print(f"studybot: {e}", file=sys.stderr)
        return 2
    print(f"backed up {db} to {result.path} ({result.size:,} bytes, schema version {result.schema_version})")
    return 0


async def _migrate(settings: Settings, db: Path | None) -> int:
    from bot.storage import open_storage

    storage = open_storage(settings.database(db), settings.migrations)
    applied = await storage.store.start()
    await storage.store.close()
    print(f"{storage.where}: applied {', '.join(applied)}" if applied else f"{storage.where}: up to date")
    return 0


class BarProgress:
    """`db copy` progress on stderr: a bar redrawn in place on a terminal, plain lines otherwise."""

    WIDTH = 30

    def __init__(self, stream: TextIO | None = None, *, tty: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.name, self.total, self.done, self._drawn = "", 0, 0, 0.0

    def table(self, name: str, total: int) -> None:
        self._end_line()
        self.name, self.total, self.done = name, total, 0
        if self.tty:
            self._draw()
        else:
            print(f"copying {name}: {total:,} rows", file=self.stream, flush=True)

    def advance(self, rows: int) -> None:
        self.done += rows
        now = time.monotonic()
        if self.tty and (now - self._drawn >= 0.1 or self.done >= self.total):
            self._draw()

    def note(self, text: str) -> None:
        self._end_line()
        print(text, file=self.stream, flush=True)

    def _draw(self) -> None:
        self._drawn = time.monotonic()
        filled = self.WIDTH * self.done // self.total if self.total else self.WIDTH
        bar = "#" * filled + "." * (self.WIDTH - filled)
        self.stream.write(f"\r{self.name:<16} [{bar}] {self.done:,}/{self.total:,}")
        self.stream.flush()

    def _end_line(self) -> None:
        if self.tty and self.name:
            self.stream.write("\n")
            self.name = ""


async def _db_copy(settings: Settings, source: str | None, target: str | None, *, force: bool) -> int:
    from bot.storage.copy import CopyError, copy_database
    from bot.storage.urls import UrlError

    if source is None:
        source = f"sqlite:///{settings.db}"
    elif "://" not in source:
        source = f"sqlite:///{source}"  # a plain file path
    if target is None:
        if settings.database_url is None:
            print("studybot: db copy needs --to postgresql://… (or STUDYBOT_DATABASE_URL)", file=sys.stderr)
            return 2
        target = settings.database_url.get_secret_value()
    try:
        report = await copy_database(
            source, target, migrations_root=settings.migrations, force=force, progress=BarProgress()
        )
    except UrlError as e:
        print(f"studybot: {e}", file=sys.stderr)
        return 2
    except CopyError as e:
        print(f"studybot: db copy: {e}", file=sys.stderr)
        return 1
    verb = "replaced the rows of" if report.replaced else "copied into"
    print(
        f"{report.source} {verb} {report.target} (schema version {report.schema_version}): "
        f"{report.rows:,} rows in {len(report.tables)} tables, {report.seconds:.1f} s"
    )
    width = max(len(t.name) for t in report.tables)
    for t in report.tables:
        print(f"  {t.name:<{width}}  {t.rows:>10,}  {t.checksum}")
    print("verified: every table's row count and checksum match the source")
    return 0


def _export(settings: Settings, db: Path | None, out: Path) -> int:
    from bot.storage.urls import sqlite_path

    url = settings.database(db)
    if url.startswith("sqlite:") and sqlite_path(url).is_dir():
        print(f"studybot: {sqlite_path(url)} is a folder, not a database file", file=sys.stderr)
        return 2
    if url.startswith("sqlite:") and not sqlite_path(url).is_file():
        print(f"studybot: no database at {sqlite_path(url)}", file=sys.stderr)
        return 1
    if out.exists() and not out.is_dir():
        print(f"studybot: {out} is not a folder (--out names the folder for the CSV files)", file=sys.stderr)
        return 2
    files = asyncio.run(_export_files(settings, url))
    try:
        out.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            write_new_file(out, name, text)
            print(f"wrote {out / name} ({max(0, text.count(chr(10)) - 1)} rows)")
    except OSError as e:  # a file on the way, no permission, a full disk: nothing half-written is left
        print(f"studybot: cannot write the CSV files to {out}: {e.strerror or e}", file=sys.stderr)
        return 2
    return 0


def write_new_file(folder: Path, name: str, text: str) -> None:
    """Write ``folder/name`` without following any link planted in ``folder``: the text goes to a fresh
    temporary file there (created exclusively, never through a link; readable by this user only), which
    is then renamed over ``name``; a symlink at ``name`` is replaced, not written through. Raises
    `OSError`; on failure the temporary file is removed and ``name`` is untouched."""
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, folder / name)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


async def _export_files(settings: Settings, url: str) -> dict[str, str]:
    from bot.core.clock import SystemClock
    from bot.core.content import ContentLibrary
    from bot.core.deck_commands import Catalog
    from bot.core.learning import LearningEngine
    from bot.storage import open_storage

    library = ContentLibrary.load(settings.content)
    storage = open_storage(url, settings.migrations)
    await storage.store.start()
    try:
        clock = SystemClock()
        catalog = Catalog(storage.decks, library)
        engine = LearningEngine(storage.learning, storage.store, library, clock, catalog=catalog)
        return await engine.export_files(None, clock.now())
    finally:
        await storage.store.close()


async def _console(settings: Settings, user: str, db: Path | None) -> int:
    from bot.adapters.console_adapter import ConsoleAdapter
    from bot.bootstrap import build_app, serve, serve_dashboard

    app = await build_app(settings, db=db)
    frontends: list[FrontEnd] = [ConsoleAdapter(app.service, user[:40].replace(" ", "_"))]
    await _with_dashboard(app, frontends, serve_dashboard)
    return await serve(app, frontends)


def _invite_url(client_id: int | None) -> int:
    if client_id is None:
        print(
            "studybot: set DISCORD_APPLICATION_ID or pass --client-id (Developer Portal → your app → "
            "General Information → Application ID)",
            file=sys.stderr,
        )
        return 2
    from bot.adapters.discord_adapter import invite_url

    print(invite_url(client_id))
    return 0


async def _run(settings: Settings) -> int:
    from bot.bootstrap import build_app, make_frontends, serve, serve_dashboard

    app = await build_app(settings, exclusive=True)  # first: a refusal is the only line printed
    if not (settings.discord_enabled or settings.slack_enabled):
        print(
            "studybot: no DISCORD_TOKEN or SLACK_BOT_TOKEN set — starting the local console (see README to go live).",
            file=sys.stderr,
        )
    frontends = make_frontends(app, console_user=_default_user())
    await _with_dashboard(app, frontends, serve_dashboard)
    return await serve(app, frontends)


async def _with_dashboard(
    app: App, frontends: list[FrontEnd], start: Callable[[App, list[FrontEnd]], Awaitable[None]]
) -> None:
    """Start serving the dashboard; if that fails (a broken install), close the app before the error
    propagates, so no database thread keeps the process alive."""
    try:
        await start(app, frontends)
    except BaseException:
        await app.close()
        raise
