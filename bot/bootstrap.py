"""The composition root: the one module that knows both the core and the concrete parts."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from bot.config import Settings
from bot.core.clock import SystemClock
from bot.core.content import ContentLibrary
from bot.core.ports import Clock
from bot.core.service import StudyService
from bot.storage import SqliteStore

log = logging.getLogger(__name__)


@dataclass
class App:
    """The wired-up bot. `start()` opens the store and loads content; `close()` releases them."""

    settings: Settings
    store: SqliteStore
    library: ContentLibrary
    service: StudyService
    clock: Clock
    closers: list[object] = field(default_factory=list)

    async def close(self) -> None:
        await self.store.close()


async def build_app(settings: Settings, *, db: Path | None = None, clock: Clock | None = None) -> App:
    """Open the database (applying migrations), load the content pack and build the service.

    Raises `StoreError` for database problems and `ContentInvalid` for a broken content pack."""
    clock = clock or SystemClock()
    library = ContentLibrary.load(settings.content)
    store = SqliteStore(db or settings.db)
    applied = await store.start()
    if applied:
        log.info("database %s: applied %s", store.path, ", ".join(applied))
    service = StudyService(store, library, clock)
    return App(settings, store, library, service, clock)
