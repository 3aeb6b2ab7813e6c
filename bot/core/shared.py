"""A query shared by the callers that arrive while it runs (a post's burst of clicks), cached for a while."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class SharedQuery(Generic[T]):
    """Runs ``query`` once, started ``at`` (any clock the owner's cache uses); `result` gives every caller
    its result or exception.

    Each waiting caller awaits a plain future of its own, and one callback releases them all when the
    query lands: cheaper than a shield per caller (a burst of 10,000 clicks made 10,000 shields and twice
    as many event loop callbacks), and one caller's cancellation still leaves the query running for the
    others."""

    __slots__ = ("at", "task", "waiters")

    def __init__(self, at: Any, query: Awaitable[T]) -> None:
        self.at = at
        self.task: asyncio.Future[T] = asyncio.ensure_future(query)
        self.waiters: list[asyncio.Future[T]] = []
        self.task.add_done_callback(self._land)

    def failed(self) -> bool:
        """The query has ended in an error or was cancelled (the owner should start another)."""
        return self.task.done() and (self.task.cancelled() or self.task.exception() is not None)

    def result(self) -> asyncio.Future[T]:
        """What to await for the result: the query itself once it has landed (awaiting a done future runs
        no coroutine: a burst's answers find it cached), else a future of the caller's own."""
        if self.task.done():
            return self.task
        waiter: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self.waiters.append(waiter)
        return waiter

    def _land(self, task: asyncio.Future[T]) -> None:
        waiters, self.waiters = self.waiters, []
        error = None if task.cancelled() else task.exception()  # retrieved even if nobody waits
        for waiter in waiters:
            if waiter.done():  # that caller was cancelled
                continue
            if task.cancelled():
                waiter.cancel()
            elif error is not None:
                waiter.set_exception(error)
            else:
                waiter.set_result(task.result())
