"""Cache invalidation across bot processes sharing one PostgreSQL database (LISTEN/NOTIFY).

Each `PgStore` keeps small in-process caches (members, posts) that save round trips on every command
and click. With several processes on one database, a change made by one (forget-me, a time-zone
change, a reveal) must reach the others' caches at once. The store that makes such a change sends a
NOTIFY on `CHANNEL` after its commit; every process LISTENs on one dedicated connection and drops the
entries named. Messages are tiny text: ``"<sender>:<n> <what>"`` where ``what`` is ``all``, ``members``
or ``post <id>``. NOTIFY is asynchronous, so the sender waits (briefly, `ECHO_WAIT`) until its own
message has come back on its own listening connection: by then the server has handed it to every
listening session, and the change is announced before the member who made it is answered.

While the listening connection is down, nothing tells this process about others' changes, so the
caches are emptied and bypassed (`healthy` is False) until it is back — correctness first, then speed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any

import asyncpg

log = logging.getLogger(__name__)

CHANNEL = "studybot_cache"
#: The longest a change waits for its own announcement to come back (then it goes on regardless).
ECHO_WAIT = 0.25
#: Waits between attempts to re-open a lost listening connection (the last one repeats).
RECONNECT_DELAYS = (0.1, 0.5, 1.0, 2.0, 5.0)


class CacheBus:
    """Publishes and receives cache invalidations. `start()` opens the listening connection; `close()`
    stops. `on_message(what)` is called for each message from another process, `on_reset()` whenever
    messages may have been lost (the connection dropped). Never raises from its callbacks' path."""

    def __init__(self, url: str, on_message: Callable[[str], None], on_reset: Callable[[], None]) -> None:
        self.url = url
        self.on_message = on_message
        self.on_reset = on_reset
        self.sender = uuid.uuid4().hex[:12]
        self.received = 0
        self.sent = 0
        #: Seconds from NOTIFY to its echo on our listening connection, per message (for the benchmarks).
        self.echo_seconds: deque[float] = deque(maxlen=1000)
        self._n = 0
        self._echoes: dict[int, asyncio.Future[None]] = {}
        self._conn: asyncpg.Connection | None = None
        self._healthy = False
        self._closing = False
        self._reconnect: asyncio.Task[None] | None = None

    @property
    def healthy(self) -> bool:
        """True while we are listening: cached entries may be trusted."""
        return self._healthy and self._conn is not None and not self._conn.is_closed()

    async def start(self) -> None:
        """Open the listening connection. Raises what asyncpg raises when the server cannot be reached."""
        await self._listen()

    async def _listen(self) -> None:
        conn = await asyncpg.connect(self.url)
        try:
            await conn.add_listener(CHANNEL, self._on_notify)
            conn.add_termination_listener(self._on_lost)
        except BaseException:
            await conn.close()
            raise
        self._conn = conn
        self._healthy = True

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: object) -> None:
        head, _, what = str(payload).partition(" ")
        sender, _, n = head.partition(":")
        if sender == self.sender:
            echo = self._echoes.pop(int(n or 0), None)
            if echo is not None and not echo.done():
                echo.set_result(None)
            return
        self.received += 1
        try:
            self.on_message(what)
        except Exception:  # a bad message must not stop the listener
            log.exception("cache invalidation %r failed; dropping every cached entry", what)
            self.on_reset()

    def _on_lost(self, _conn: Any) -> None:
        self._healthy = False
        self._conn = None
        self.on_reset()
        if not self._closing and self._reconnect is None:
            log.warning("lost the cache-invalidation connection to the database; caches are off until it is back")
            self._reconnect = asyncio.get_running_loop().create_task(self._reconnect_loop())

    async def _reconnect_loop(self) -> None:
        try:
            attempt = 0
            while not self._closing:
                await asyncio.sleep(RECONNECT_DELAYS[min(attempt, len(RECONNECT_DELAYS) - 1)])
                attempt += 1
                try:
                    await self._listen()
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
                    log.debug("cache-invalidation reconnect failed: %s", e)
                    continue
                self.on_reset()  # anything may have changed while we were deaf
                log.info("cache-invalidation connection is back; caches are on again")
                return
        finally:
            self._reconnect = None

    async def publish(self, conn: Any, what: str) -> None:
        """Tell the other processes to drop ``what`` (on ``conn``, a connection of the caller's pool)."""
        self._n += 1
        n = self._n
        echo = self._echoes[n] = asyncio.get_running_loop().create_future()
        started = time.perf_counter()
        try:
            await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, f"{self.sender}:{n} {what}")
            self.sent += 1
            if self.healthy:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(echo, ECHO_WAIT)
                    self.echo_seconds.append(time.perf_counter() - started)
        finally:
            self._echoes.pop(n, None)

    async def close(self) -> None:
        """Stop listening. Safe to call twice."""
        self._closing = True
        self._healthy = False
        if self._reconnect is not None:
            self._reconnect.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reconnect
        if self._conn is not None:
            conn, self._conn = self._conn, None
            with contextlib.suppress(Exception):
                await conn.close()
