"""The chart worker process (`bot.core.chart.ChartRenderer`): charts come back as PNGs, a chart that
cannot be drawn is one error (the worker goes on), and a dead worker is replaced by the next chart."""

from __future__ import annotations

import asyncio
import os
from datetime import date, timedelta

import pytest

from bot.core.chart import ChartData, ChartError, ChartRenderer

PNG = b"\x89PNG\r\n\x1a\n"
#: Two workers where the machine has two cores or more (the renderer never runs more than the cores).
TWO = min(2, os.cpu_count() or 1)


def data(title: str = "Progress — Ann") -> ChartData:
    days = [date(2026, 11, 1) + timedelta(days=n) for n in range(30)]
    return ChartData(title, [("tools", 0.5, 4)], [(d, n % 3) for n, d in enumerate(days)], [(1, "Learn", True)])


async def test_a_chart_that_cannot_be_drawn_is_one_error_and_the_worker_goes_on() -> None:
    renderer = ChartRenderer()
    try:
        assert (await renderer.draw(data())).startswith(PNG)
        [worker] = renderer.processes
        broken = ChartData("x", [], [(5, 1)] * 30, [])  # type: ignore[list-item]  # not dates
        with pytest.raises(ChartError, match="ValueError"):
            await renderer.draw(broken)
        assert (await renderer.draw(data("again"))).startswith(PNG)
        assert renderer.processes == [worker], "the same worker drew the next chart"
    finally:
        await renderer.close()
    assert worker is not None and worker.returncode is not None


async def test_a_dead_worker_is_replaced_by_the_next_chart() -> None:
    renderer = ChartRenderer()
    try:
        assert (await renderer.draw(data())).startswith(PNG)
        [first] = renderer.processes
        first.kill()
        await first.wait()
        assert (await renderer.draw(data())).startswith(PNG)
        [second] = renderer.processes
        assert second.pid != first.pid
    finally:
        await renderer.close()


async def test_a_closed_renderer_refuses_and_leaves_no_process() -> None:
    renderer = ChartRenderer()
    assert (await renderer.draw(data())).startswith(PNG)
    [worker] = renderer.processes
    await renderer.close()
    await renderer.close()
    assert worker.returncode == 0 and renderer.processes == []
    with pytest.raises(RuntimeError, match="closed"):
        await renderer.draw(data())


async def test_the_worker_draws_at_a_lower_priority_than_the_bot() -> None:
    """Charts are follow-ups that may wait: on a busy machine the answers to members come first."""
    from bot.core.chart import WORKER_NICENESS

    renderer = ChartRenderer()
    try:
        assert (await renderer.draw(data())).startswith(PNG)
        [worker] = renderer.processes
        ours = os.getpriority(os.PRIO_PROCESS, 0)
        assert os.getpriority(os.PRIO_PROCESS, worker.pid) == min(ours + WORKER_NICENESS, 19)
    finally:
        await renderer.close()


async def test_charts_wanted_at_once_are_drawn_by_two_workers_and_each_caller_gets_its_own() -> None:
    renderer = ChartRenderer(workers=2)
    try:
        wanted = [data(f"Progress — member {'x' * n}") for n in range(5)]
        got = await asyncio.gather(*(renderer.draw(d) for d in wanted))
        assert len({p.pid for p in renderer.processes}) == TWO, "a second worker started for the burst"
        assert len(set(got)) == 5 and all(png.startswith(PNG) for png in got)
        # Drawn again one at a time (by the warm worker alone), each chart is the one its caller got.
        first = renderer.processes[0]
        assert [await renderer.draw(d) for d in wanted] == got
        assert renderer.processes[0] is first
    finally:
        await renderer.close()
    assert renderer.processes == []


async def test_one_chart_at_a_time_keeps_to_one_worker() -> None:
    renderer = ChartRenderer(workers=2)
    try:
        for n in range(3):
            assert (await renderer.draw(data(f"chart {n}"))).startswith(PNG)
        assert len(renderer.processes) == 1
    finally:
        await renderer.close()


def test_there_are_never_more_workers_than_cores() -> None:
    assert len(ChartRenderer(workers=64)._workers) == min(64, os.cpu_count() or 1)
    assert len(ChartRenderer(workers=0)._workers) == 1


async def test_a_worker_idle_for_a_while_stops_while_another_runs_and_comes_back_for_the_next_burst() -> None:
    # No stop during the bursts (spare_idle 60 s): how long a worker waits there depends on the machine.
    renderer = ChartRenderer(workers=2, spare_idle=60.0)
    try:
        await asyncio.gather(*(renderer.draw(data(f"a{n}")) for n in range(4)))
        burst = renderer.processes
        assert len(burst) == TWO
        renderer.spare_idle = 0.2
        assert (await renderer.draw(data("alone"))).startswith(PNG)  # its timer: 0.2 s
        await asyncio.sleep(0.6)
        [left] = renderer.processes  # the worker idle for 0.2 s ended cleanly, the other runs on
        for stopped in (p for p in burst if p is not left):
            assert await asyncio.wait_for(stopped.wait(), 10) == 0
        for worker in renderer._workers:  # the other's time is up too, but the last one running stays warm
            renderer._retire(worker)
        assert renderer.processes == [left]
        renderer.spare_idle = 60.0
        got = await asyncio.gather(*(renderer.draw(data(f"b{n}")) for n in range(4)))
        assert all(png.startswith(PNG) for png in got) and len(renderer.processes) == TWO
    finally:
        await renderer.close()
    assert all(p.returncode == 0 for p in burst)
