"""`bot.core.shared.SharedQuery`: the look-ups a burst of answers shares (missed posts, role rewards)."""

from __future__ import annotations

import asyncio

import pytest

from bot.core.shared import SharedQuery


class Query:
    """A query that runs until released, counting how often it was started."""

    def __init__(self) -> None:
        self.started = 0
        self.go = asyncio.Event()

    async def __call__(self, value: int | Exception) -> int:
        self.started += 1
        await self.go.wait()
        if isinstance(value, Exception):
            raise value
        return value


async def test_every_caller_gets_the_one_result_and_a_cancelled_caller_cancels_nothing() -> None:
    q = Query()
    shared = SharedQuery(0, q(7))
    callers = [asyncio.ensure_future(shared.result()) for _ in range(100)]
    await asyncio.sleep(0)
    callers[0].cancel()
    await asyncio.sleep(0)
    q.go.set()
    results = await asyncio.gather(*callers[1:])
    assert results == [7] * 99 and q.started == 1
    assert callers[0].cancelled()
    assert await shared.result() == 7, "later callers get the result without waiting"
    assert not shared.failed()


async def test_an_error_reaches_every_caller_and_marks_the_query_failed() -> None:
    q = Query()
    shared = SharedQuery(0, q(ValueError("down")))
    callers = [asyncio.ensure_future(shared.result()) for _ in range(3)]
    q.go.set()
    results = await asyncio.gather(*callers, return_exceptions=True)
    assert all(isinstance(r, ValueError) for r in results)
    assert shared.failed()
    with pytest.raises(ValueError):
        await shared.result()


async def test_a_cancelled_query_cancels_its_callers_and_counts_as_failed() -> None:
    q = Query()
    shared = SharedQuery(0, q(1))
    caller = asyncio.ensure_future(shared.result())
    await asyncio.sleep(0)
    shared.task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert shared.failed()
