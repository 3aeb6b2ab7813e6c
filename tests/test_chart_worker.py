"""The chart worker process (`bot.core.chart.ChartRenderer`): charts come back as PNGs, a chart that
cannot be drawn is one error (the worker goes on), and a dead worker is replaced by the next chart."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from bot.core.chart import ChartData, ChartError, ChartRenderer

PNG = b"\x89PNG\r\n\x1a\n"


def data(title: str = "Progress — Ann") -> ChartData:
    days = [date(2026, 11, 1) + timedelta(days=n) for n in range(30)]
    return ChartData(title, [("tools", 0.5, 4)], [(d, n % 3) for n, d in enumerate(days)], [(1, "Learn", True)])


async def test_a_chart_that_cannot_be_drawn_is_one_error_and_the_worker_goes_on() -> None:
    renderer = ChartRenderer()
    try:
        assert (await renderer.draw(data())).startswith(PNG)
        worker = renderer._proc
        broken = ChartData("x", [], [(5, 1)] * 30, [])  # type: ignore[list-item]  # not dates
        with pytest.raises(ChartError, match="ValueError"):
            await renderer.draw(broken)
        assert (await renderer.draw(data("again"))).startswith(PNG)
        assert renderer._proc is worker, "the same worker drew the next chart"
    finally:
        await renderer.close()
    assert worker is not None and worker.returncode is not None


async def test_a_dead_worker_is_replaced_by_the_next_chart() -> None:
    renderer = ChartRenderer()
    try:
        assert (await renderer.draw(data())).startswith(PNG)
        first = renderer._proc
        assert first is not None
        first.kill()
        await first.wait()
        assert (await renderer.draw(data())).startswith(PNG)
        assert renderer._proc is not None and renderer._proc.pid != first.pid
    finally:
        await renderer.close()


async def test_a_closed_renderer_refuses_and_leaves_no_process() -> None:
    renderer = ChartRenderer()
    assert (await renderer.draw(data())).startswith(PNG)
    worker = renderer._proc
    await renderer.close()
    await renderer.close()
    assert worker is not None and worker.returncode == 0
    with pytest.raises(RuntimeError, match="closed"):
        await renderer.draw(data())


async def test_the_worker_draws_at_a_lower_priority_than_the_bot() -> None:
    """Charts are follow-ups that may wait: on a busy machine the answers to members come first."""
    import os

    from bot.core.chart import WORKER_NICENESS

    renderer = ChartRenderer()
    try:
        assert (await renderer.draw(data())).startswith(PNG)
        assert renderer._proc is not None
        ours = os.getpriority(os.PRIO_PROCESS, 0)
        assert os.getpriority(os.PRIO_PROCESS, renderer._proc.pid) == min(ours + WORKER_NICENESS, 19)
    finally:
        await renderer.close()
