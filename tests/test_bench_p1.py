"""bench P1's figure: the median of studybot's runs, each over the floor's runs just before and after it."""

from __future__ import annotations

import json

import pytest

from bench.p1_ack_latency import Result, Trials, figure


def run(p99_ms: float, cpu_ms_each: float = 0.5) -> Result:
    """A run of 100 interactions that all took ``p99_ms`` (so its p99 is exactly that)."""
    return Result(ack=[p99_ms / 1000] * 100, answer=[p99_ms / 1000] * 100, what=["click"] * 100, cpu=cpu_ms_each / 10)


def test_each_run_is_over_the_floor_runs_beside_it_and_the_figure_is_the_median() -> None:
    # Floor runs 30, 40, 30, 20 around studybot's 50, 70, 60: ratios 50/35, 70/35, 60/25 = 1.43, 2.00, 2.40.
    trials = Trials([run(50), run(70), run(60)], [run(30), run(40), run(30), run(20)])

    assert trials.ratios() == pytest.approx([50 / 35, 2.0, 2.4])
    assert trials.median() == 1
    fig = figure("discord", "burst", trials)

    assert (fig.id, fig.value, fig.ok) == ("P1a", 2.0, False)
    assert "studybot 70.0 ms / floor 35.0 ms (the median of 3 runs" in fig.what
    assert "run 2 of 3, the median" in fig.note
    assert "50.0 / 35.0 ms, 70.0 / 35.0 ms, 60.0 / 25.0 ms = 1.43 / 2.00 / 2.40x" in fig.note


def test_a_slow_floor_run_moves_one_ratio_not_the_figure() -> None:
    # The second floor run is slow (as a drifting machine makes one): only the runs beside it move.
    steady = Trials([run(60), run(60), run(60)], [run(30)] * 4)
    one_slow = Trials([run(60), run(60), run(60)], [run(30), run(90), run(30), run(30)])

    assert figure("discord", "burst", steady).value == 2.0
    assert one_slow.ratios() == pytest.approx([1.0, 1.0, 2.0])
    assert figure("discord", "burst", one_slow).value == 1.0  # the median of 1.0 / 1.0 / 2.0
    # A single studybot run has no such shelter: one slow floor run beside it halves its figure.
    assert figure("discord", "burst", Trials([run(60)], [run(90), run(30)])).value == 1.0


def test_without_a_floor_the_figure_is_studybots_median_p99_in_ms() -> None:
    fig = figure("slack", "burst", Trials([run(40), run(90), run(55)], []))

    assert (fig.id, fig.value, fig.unit) == ("P1b", 55.0, "ms")
    assert "p99 of all runs 40.0 / 90.0 / 55.0 ms" in fig.note


def test_the_workers_figure_has_its_own_id_and_prints_as_one_json_line(capsys: pytest.CaptureFixture[str]) -> None:
    fig = figure("discord-http", "burst", Trials([run(60)], [run(20), run(30)]), workers=True)
    fig.emit()

    line = capsys.readouterr().out
    assert line.startswith("FIGURE ") and line.count("\n") == 1
    printed = json.loads(line[len("FIGURE ") :])
    assert (printed["id"], printed["value"], printed["goal"]) == ("P1h", 2.4, "informational")
    assert "studybot in 2 worker processes" in printed["what"]
