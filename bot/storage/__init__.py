"""Storage: the core's ports on SQLite (the default) or PostgreSQL, chosen by a database URL.

`open_storage` is the one place that turns ``STUDYBOT_DATABASE_URL`` into stores; the CLI and the
composition root call it and never ask which database they got.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from bot.core.ports import InstallStore, ScheduleStore, Store
from bot.storage import migrations
from bot.storage.sqlite_store import SqliteStore
from bot.storage.urls import UrlError, check_url, redact, sqlite_path

if TYPE_CHECKING:
    from bot.core.dashboard import DashboardStore
    from bot.core.decks import DeckStore
    from bot.core.learning import LearningPort
    from bot.core.practice import PracticePort
    from bot.core.reminders import ReminderStore
    from bot.core.suggestions import SuggestionStore
    from bot.storage.pg_store import PgStore

__all__ = [
    "ManagedStore",
    "SqliteStore",
    "Storage",
    "UrlError",
    "check_url",
    "dashboard_for",
    "decks_for",
    "learning_for",
    "open_storage",
    "practice_for",
    "redact",
    "reminders_for",
    "schedules_for",
    "suggestions_for",
]


class ManagedStore(Store, Protocol):
    """A `Store` with its lifecycle: `start` (connect, migrate; returns migrations applied) and `close`."""

    @property
    def batches_committed(self) -> int: ...

    @property
    def lost(self) -> str | None: ...

    async def start(
        self, *, migrate: bool = True, exclusive: bool = False, shards: list[int] | None = None
    ) -> list[str]: ...

    async def close(self) -> None: ...

    @property
    def where(self) -> str:
        """The database, for messages: a file path, or a URL without its password."""
        ...

    def invalidate_caches(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Storage:
    """The stores behind one database: the main `Store`, schedules, the learning engine's queries and decks.
    ``where`` names the database for messages (a file path, or a URL without its password)."""

    store: ManagedStore
    schedules: ScheduleStore
    learning: LearningPort
    installs: InstallStore
    dialect: str
    decks: DeckStore
    practice: PracticePort

    @property
    def where(self) -> str:
        return self.store.where


def open_storage(url: str, migrations_root: Path = migrations.DEFAULT_ROOT) -> Storage:
    """The stores for ``url``, not yet started (call ``storage.store.start()``). ``migrations_root``
    holds ``sqlite/`` and ``postgres/``. Raises `UrlError` for a URL it cannot use."""
    dialect = check_url(url)
    folder = migrations.folder_for(migrations_root, dialect)
    if dialect == "sqlite":
        sqlite = SqliteStore(sqlite_path(url), migrations_dir=folder)
        return Storage(
            sqlite,
            schedules_for(sqlite),
            learning_for(sqlite),
            installs_for(sqlite),
            dialect,
            decks_for(sqlite),
            practice_for(sqlite),
        )
    from bot.storage.pg_store import PgStore  # asyncpg is loaded only for a PostgreSQL URL

    pgstore = PgStore(url, migrations_dir=folder)
    return Storage(
        pgstore,
        schedules_for(pgstore),
        learning_for(pgstore),
        installs_for(pgstore),
        dialect,
        decks_for(pgstore),
        practice_for(pgstore),
    )


def schedules_for(store: SqliteStore | PgStore) -> ScheduleStore:
    """The `ScheduleStore` sharing ``store``'s connection(s)."""
    if isinstance(store, SqliteStore):
        from bot.storage.schedule_store import SqliteScheduleStore

        return SqliteScheduleStore(store)
    from bot.storage.pg_store import PgScheduleStore

    return PgScheduleStore(store)


def learning_for(store: SqliteStore | PgStore) -> LearningPort:
    """The learning engine's queries on ``store``'s connection(s)."""
    if isinstance(store, SqliteStore):
        from bot.storage.learning_store import LearningStore

        return LearningStore(store)
    from bot.storage.pg_store import PgLearningStore

    return PgLearningStore(store)


def installs_for(store: SqliteStore | PgStore) -> InstallStore:
    """The `InstallStore` (Slack installations, OAuth states) on ``store``'s connection(s)."""
    if isinstance(store, SqliteStore):
        from bot.storage.install_store import SqliteInstallStore

        return SqliteInstallStore(store)
    from bot.storage.pg_store import PgInstallStore

    return PgInstallStore(store)


def decks_for(store: SqliteStore | PgStore) -> DeckStore:
    """The `DeckStore` (each group's decks, items, pending imports) on ``store``'s connection(s)."""
    if isinstance(store, SqliteStore):
        from bot.storage.deck_store import SqliteDeckStore

        return SqliteDeckStore(store)
    from bot.storage.pg_deck_store import PgDeckStore

    return PgDeckStore(store)


def reminders_for(store: SqliteStore | PgStore) -> ReminderStore:
    """The `ReminderStore` (opt-in reminders) on ``store``'s connection(s)."""
    from bot.storage.reminder_store import PgReminderStore, SqliteReminderStore

    if isinstance(store, SqliteStore):
        return SqliteReminderStore(store)
    return PgReminderStore(store)


def practice_for(store: SqliteStore | PgStore) -> PracticePort:
    """Open-card practice (attempts, their FSRS cards) on ``store``'s connection(s)."""
    from bot.storage.practice_store import PgPracticeStore, SqlitePracticeStore

    if isinstance(store, SqliteStore):
        return SqlitePracticeStore(store)
    return PgPracticeStore(store)


def suggestions_for(store: SqliteStore | PgStore) -> SuggestionStore:
    """The `SuggestionStore` (member suggestions, settings, notices) on ``store``'s connection(s)."""
    from bot.storage.suggestion_store import PgSuggestionStore, SqliteSuggestionStore

    if isinstance(store, SqliteStore):
        return SqliteSuggestionStore(store)
    return PgSuggestionStore(store)


def dashboard_for(store: SqliteStore | PgStore) -> DashboardStore:
    """The `DashboardStore` (sign-in links, sessions, the dashboard's page queries) on ``store``."""
    from bot.storage.dashboard_store import PgDashboardStore, SqliteDashboardStore

    if isinstance(store, SqliteStore):
        return SqliteDashboardStore(store)
    return PgDashboardStore(store)
