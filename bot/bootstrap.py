"""The composition root: the one module that knows both the core and the concrete parts."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from bot import anki
from bot.config import Settings
from bot.core.clock import SystemClock
from bot.core.content import ContentLibrary
from bot.core.content_commands import ContentCommands
from bot.core.dashboard import Dashboard
from bot.core.deck_add import DeckAdd
from bot.core.deck_commands import Catalog, DeckCommands
from bot.core.home import HomeTab
from bot.core.learning import LearningEngine
from bot.core.ports import ChatGateway, Clock, ScheduleStore
from bot.core.practice import DeckCards, PracticeEngine
from bot.core.reminders import Reminders
from bot.core.service import StudyService
from bot.core.suggestions import Suggestions, to_deck
from bot.storage import ManagedStore, dashboard_for, open_storage, reminders_for, suggestions_for

if TYPE_CHECKING:
    from bot.adapters.dashboard import DashboardWeb

log = logging.getLogger(__name__)


class FrontEnd(ChatGateway, Protocol):
    """A running front end: it serves members (`run`) and posts for the core (`ChatGateway`)."""

    async def run(self) -> None:
        """Serve until closed; returning early means the front end ended by itself (console EOF).
        Raises on a fatal start-up problem (e.g. a rejected token)."""
        ...

    async def close(self) -> None:
        """Stop serving and release connections. Safe to call twice."""
        ...


@dataclass
class App:
    """The wired-up bot. `build_app` opens the store and loads content; `close()` releases them."""

    settings: Settings
    store: ManagedStore
    library: ContentLibrary
    service: StudyService
    clock: Clock
    schedules: ScheduleStore
    #: One gateway per platform, filled as front ends start; the scheduler posts through these.
    gateways: dict[str, ChatGateway] = field(default_factory=dict)
    #: Background parts (the scheduler) started after the front ends and closed before them.
    on_start: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    on_close: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    #: Resources the request path uses (the chart worker): released after the front ends have
    #: finished their in-flight work, just before the database.
    resources: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    #: Members' reminders (run by the scheduler; tests drive them directly).
    reminders: Reminders | None = None
    #: The web dashboard's core (`/study dashboard`); served once `serve_dashboard` has run.
    dashboard: Dashboard | None = None

    async def stop_background(self) -> None:
        """Stop the background parts (in reverse order of start). Safe to call twice."""
        await _run_all(self.on_close, "stopping a background part")

    async def close(self) -> None:
        """Stop the background parts, release the request path's resources, close the database."""
        await self.stop_background()
        await _run_all(self.resources, "releasing a resource")
        await self.store.close()


async def _run_all(hooks: list[Callable[[], Awaitable[None]]], what: str) -> None:
    """Run and clear ``hooks`` in reverse order; one failing is logged and does not stop the rest."""
    while hooks:
        hook = hooks.pop()
        try:
            await hook()
        except Exception:
            log.exception("error while %s", what)


async def build_app(
    settings: Settings, *, db: Path | None = None, clock: Clock | None = None, exclusive: bool = False
) -> App:
    """Open the database (applying migrations), load the content pack and build the service. The
    database is ``db`` (a SQLite file) when given, else the settings' (`Settings.database`).

    ``exclusive`` (`studybot run`): refuse to share the SQLite file with another running bot (other
    than processes that run other Discord shards of this one).
    Raises `StoreError` for database problems and `ContentInvalid` for a broken content pack."""
    clock = clock or SystemClock()
    library = ContentLibrary.load(settings.content)
    storage = open_storage(settings.database(db), settings.migrations)
    store = storage.store
    shards = settings.discord_shard_id_list if settings.discord_enabled else None
    applied = await store.start(exclusive=exclusive, shards=shards)
    if applied:
        log.info("database %s: applied %s", storage.where, ", ".join(applied))
    catalog = Catalog(storage.decks, library)
    service = StudyService(store, library, clock, catalog=catalog)
    ContentCommands(library).register(service)
    learning = LearningEngine(
        storage.learning, store, library, clock, catalog=catalog, chart_workers=settings.chart_workers
    )
    learning.install(service)
    PracticeEngine(storage.practice, DeckCards(library, storage.decks), learning, store).install(service)
    DeckCommands(storage.decks, catalog, anki).install(service)
    app = App(settings, store, library, service, clock, storage.schedules)
    app.resources.append(learning.close)
    app.reminders = Reminders(reminders_for(store), service, storage.learning, app.gateways, clock)  # type: ignore[arg-type]
    # Outcomes go to members by direct message through the running front ends (app.gateways).
    suggestion_store = suggestions_for(store)  # type: ignore[arg-type]
    Suggestions(suggestion_store, app.gateways, approve_to=to_deck(storage.decks)).install(service)
    DeckAdd(storage.decks).install(service)
    app.dashboard = Dashboard(
        dashboard_for(store),  # type: ignore[arg-type]
        service,
        library,
        export_files=learning.export_files,
        pack_with=catalog.pack_with,
        decks=storage.decks,
        suggestions=suggestion_store,
    )
    app.dashboard.install(service)
    app.resources.append(app.dashboard.close)
    wire_scheduling(app, app.reminders)
    return app


def wire_scheduling(app: App, reminders: Reminders | None = None) -> None:
    """Daily posts (and members' reminders, on the same timers): register the commands; the scheduler
    starts after the front ends."""
    from bot.core.native import ChannelFeatures
    from bot.scheduling import Scheduler
    from bot.storage.native_store import native_for

    # Threads, pings, the permission self-check and role rewards (issue 18).
    features = ChannelFeatures(native_for(app.store), app.store, app.gateways)  # type: ignore[arg-type]
    features.install(app.service)
    scheduler = Scheduler(
        app.schedules, app.service, app.gateways, app.clock, app.settings, reminders=reminders, features=features
    )
    scheduler.install_commands()
    if reminders is not None:
        reminders.rearm = scheduler.reschedule
        reminders.install()
    app.on_start.append(scheduler.start)
    app.on_close.append(scheduler.close)


def make_frontends(app: App, *, console_user: str) -> list[FrontEnd]:
    """The front ends the settings ask for; the console when no platform is configured."""
    frontends: list[FrontEnd] = []
    # Platform adapters are imported only when configured: a console user needs neither library loaded.
    # (Discord and Slack front ends are added here by their adapters.)
    if app.settings.discord_enabled:
        from bot.adapters.discord_adapter import DiscordFrontEnd

        frontends.append(DiscordFrontEnd.from_settings(app.service, app.settings))
    if app.settings.slack_enabled:
        from bot.adapters.slack_adapter import SlackAdapter
        from bot.storage import installs_for

        installations = installs_for(app.store) if app.settings.slack_oauth else None  # type: ignore[arg-type]
        mounts = [_dashboard_web(app).mount] if app.dashboard is not None else []
        frontends.append(
            SlackAdapter(app.service, app.settings, installations=installations, home=home_tab(app), web_mounts=mounts)
        )
    if not frontends:
        from bot.adapters.console_adapter import ConsoleAdapter

        frontends.append(ConsoleAdapter(app.service, console_user))
    return frontends


def home_tab(app: App) -> HomeTab | None:
    """The members' dashboards of the Slack Home tab (None without reminders, whose store it reads)."""
    if app.reminders is None:
        return None
    return HomeTab(app.service, app.reminders.learning, app.reminders.store)


def _dashboard_web(app: App) -> DashboardWeb:
    from bot.adapters.dashboard import DashboardWeb

    assert app.dashboard is not None
    secure = (app.settings.public_url or "").startswith("https://")
    return DashboardWeb(app.dashboard, secure_cookies=secure, public_url=app.settings.public_url)


async def serve_dashboard(app: App, frontends: list[FrontEnd]) -> None:
    """Serve the web dashboard: on Slack's HTTP server when there is one (mounted by `make_frontends`),
    else on a server of its own at ``STUDYBOT_HTTP_HOST:STUDYBOT_HTTP_PORT``, started now so that
    `/study dashboard` has a link from the first command on. A port that cannot be bound is logged and
    leaves the bot running without the dashboard (the command then says so)."""
    from bot.adapters.dashboard import DashboardServer, local_base

    dashboard = app.dashboard
    if dashboard is None:
        return
    settings = app.settings
    for fe in frontends:
        if getattr(fe, "web_mounts", None) and not getattr(fe, "socket_mode", True):

            def on_slack(slack: FrontEnd = fe) -> str | None:
                port = getattr(slack, "port", None)
                return settings.public_url or (local_base(settings.http_host, port) if port else None)

            dashboard.base_url = on_slack
            return
    server = DashboardServer(_dashboard_web(app), settings.http_host, settings.http_port, settings.public_url)
    try:
        await server.start()
    except OSError as e:
        log.warning(
            "dashboard not served: cannot listen on %s:%s (%s); set STUDYBOT_HTTP_HOST/STUDYBOT_HTTP_PORT",
            settings.http_host,
            settings.http_port,
            e.strerror or e,
        )
        return
    dashboard.base_url = server.base_url
    app.on_close.append(server.close)


async def _start_all(hooks: list[Callable[[], Awaitable[None]]]) -> None:
    for hook in hooks:
        await hook()


#: Allocations (less deallocations) of tracked objects between two young collections; CPython's default is 700.
GC_YOUNG = 10_000


def settle_gc() -> None:
    """Tune the cyclic garbage collector for a long-running bot, once it is up.

    Everything loaded so far (libraries, content, settings) lives as long as the process: `gc.freeze` moves
    it out of the collector's reach, which spares every later full collection from walking it (a 64 ms
    pause in the middle of a burst of button clicks was measured before this, bench P1). A burst of
    interactions allocates a few thousand objects each that live until its replies are out; at the default
    threshold the young generation was collected ~180 times per 1,000 interactions of bench P1 (with 16
    middle-generation collections: ~0.1 ms of CPU per interaction in all), at `GC_YOUNG` 6 times (~0.03 ms).
    The benchmarks' floors get the same settings."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG, middle, old)


async def serve(app: App, frontends: list[FrontEnd]) -> int:
    """Run the front ends until one ends by itself or SIGTERM/SIGINT arrives, then shut down cleanly:
    in-flight work finishes, front ends close, the database closes. Returns the exit status."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    for fe in frontends:
        app.gateways[fe.platform] = fe
    tasks = {asyncio.create_task(fe.run(), name=f"frontend-{fe.platform}"): fe for fe in frontends}
    stopper = asyncio.create_task(stop.wait(), name="stop-signal")
    # The scheduler's start-up catch-up may be a long fan-out: a signal during it must stop it (the posts
    # in flight finish, no new ones start), not wait for the whole fan-out.
    starting = asyncio.create_task(_start_all(app.on_start), name="start-background")
    status = 0
    try:
        await asyncio.wait([starting, stopper], return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():
            log.info("shutting down")
            return status
        starting.result()  # a start-up failure propagates
        settle_gc()
        done, _ = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
        for task, fe in tasks.items():
            if task in done and not task.cancelled() and task.exception() is not None:
                exc = task.exception()
                log.error("the %s front end stopped: %s", fe.platform, exc, exc_info=exc)
                status = 1
        if stopper in done:
            log.info("shutting down")
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
        stopper.cancel()
        # Background parts (the scheduler) stop first, while the front ends can still deliver what they
        # are posting; then the front ends; the database closes last.
        await app.stop_background()
        if not starting.done():  # stop_background let its posts in flight finish; nothing more to wait for
            starting.cancel()
        await asyncio.gather(starting, return_exceptions=True)
        for fe in frontends:
            try:
                await fe.close()
            except Exception:
                log.exception("error closing the %s front end", fe.platform)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await app.close()
    return status
