"""Schedule rules → occurrences: DST gaps, folds, 30-minute shifts, weekday sets, preview flags."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest

from bot.core.schedule import ScheduleRule, next_occurrences, occurrences, preview, resolve_wall_time


def utc(*a: int) -> datetime:
    return datetime(*a, tzinfo=UTC)


@pytest.mark.parametrize(
    ("tz", "day", "wall", "expected", "local_expected"),
    [
        # Spring forward: the wall time does not exist; post at the first valid minute after it.
        ("America/Los_Angeles", date(2026, 3, 8), time(2, 30), utc(2026, 3, 8, 10, 0), "03:00"),
        ("America/Los_Angeles", date(2027, 3, 14), time(2, 0), utc(2027, 3, 14, 10, 0), "03:00"),
        ("Europe/Berlin", date(2026, 3, 29), time(2, 30), utc(2026, 3, 29, 1, 0), "03:00"),
        ("Europe/Berlin", date(2027, 3, 28), time(2, 59), utc(2027, 3, 28, 1, 0), "03:00"),
        ("America/St_Johns", date(2026, 3, 8), time(2, 30), utc(2026, 3, 8, 5, 30), "03:00"),
        # Lord Howe moves by 30 minutes: 02:00 → 02:30.
        ("Australia/Lord_Howe", date(2026, 10, 4), time(2, 15), utc(2026, 10, 3, 15, 30), "02:30"),
    ],
)
def test_a_time_in_the_spring_gap_posts_at_the_first_valid_minute_after(
    tz: str, day: date, wall: time, expected: datetime, local_expected: str
) -> None:
    occ = resolve_wall_time(day, wall, tz)
    assert occ.at == expected
    assert f"{occ.at.astimezone(ZoneInfo(tz)):%H:%M}" == local_expected
    assert occ.shifted_from == wall
    assert occ.at.astimezone(ZoneInfo(tz)).date() == day


@pytest.mark.parametrize(
    ("tz", "day", "wall", "expected"),
    [
        # Fall back: the wall time happens twice; post once, at the first (summer-time) one.
        ("Europe/Berlin", date(2026, 10, 25), time(2, 30), utc(2026, 10, 25, 0, 30)),
        ("America/Los_Angeles", date(2026, 11, 1), time(1, 30), utc(2026, 11, 1, 8, 30)),
        ("America/St_Johns", date(2026, 11, 1), time(1, 30), utc(2026, 11, 1, 4, 0)),
        ("Australia/Lord_Howe", date(2026, 4, 5), time(1, 45), utc(2026, 4, 4, 14, 45)),
    ],
)
def test_a_time_in_the_autumn_fold_posts_once_at_the_first(tz: str, day: date, wall: time, expected: datetime) -> None:
    occ = resolve_wall_time(day, wall, tz)
    assert occ.at == expected
    assert occ.ambiguous
    rule = ScheduleRule(wall, tz, tuple(range(7)))
    that_day = [o for o in occurrences(rule, expected - timedelta(hours=12), expected + timedelta(hours=12))]
    assert [o.at for o in that_day if o.day == day] == [expected]


def test_ordinary_days_are_neither_shifted_nor_ambiguous() -> None:
    occ = resolve_wall_time(date(2026, 7, 1), time(9, 0), "Asia/Kolkata")
    assert occ.at == utc(2026, 7, 1, 3, 30)
    assert occ.shifted_from is None and not occ.ambiguous


@pytest.mark.parametrize(
    ("tz", "wall", "start"),
    [
        ("America/Los_Angeles", time(0, 0), utc(2026, 3, 1)),  # the day APScheduler's cron trigger skipped
        ("America/Los_Angeles", time(2, 30), utc(2026, 10, 15)),
        ("Europe/Berlin", time(2, 30), utc(2026, 10, 1)),  # the time APScheduler's cron trigger repeated
        ("Asia/Kolkata", time(9, 0), utc(2026, 3, 1)),
        ("Australia/Lord_Howe", time(2, 10), utc(2026, 9, 20)),
        ("Australia/Lord_Howe", time(1, 40), utc(2027, 3, 15)),
        ("America/St_Johns", time(2, 30), utc(2027, 2, 20)),
    ],
)
def test_one_occurrence_per_local_day_across_clock_changes(tz: str, wall: time, start: datetime) -> None:
    z = ZoneInfo(tz)
    rule = ScheduleRule(wall, tz, tuple(range(7)))
    got = list(occurrences(rule, start, start + timedelta(days=60)))
    days = [o.at.astimezone(z).date() for o in got]
    assert len(days) == len(set(days)) == 60
    assert all(b - a == timedelta(days=1) for a, b in pairwise(days))
    for o in got:
        local = o.at.astimezone(z)
        assert (local.hour, local.minute) == (wall.hour, wall.minute) or o.shifted_from == wall


def test_only_the_chosen_weekdays() -> None:
    rule = ScheduleRule(time(9, 0), "Europe/Berlin", (0, 2, 4))
    got = list(occurrences(rule, utc(2026, 3, 1), utc(2026, 4, 30)))
    assert {o.at.astimezone(ZoneInfo("Europe/Berlin")).weekday() for o in got} == {0, 2, 4}
    assert len(got) == 26


def test_bounds_are_after_exclusive_until_inclusive() -> None:
    rule = ScheduleRule(time(9, 0), "UTC", tuple(range(7)))
    at = utc(2026, 5, 5, 9)
    assert [o.at for o in occurrences(rule, at, at + timedelta(hours=1))] == []
    assert [o.at for o in occurrences(rule, at - timedelta(seconds=1), at)] == [at]
    assert next_occurrences(rule, at, 2)[0].at == at + timedelta(days=1)


def test_preview_flags_the_clock_changes() -> None:
    rule = ScheduleRule(time(2, 30), "America/Los_Angeles", tuple(range(7)))
    lines = preview(rule, utc(2026, 3, 5, 12), 7)
    assert len(lines) == 7
    march8 = next(line for line in lines if line.occurrence.day == date(2026, 3, 8))
    assert march8.clock_change
    assert "02:30 does not exist" in march8.text and "posts at 03:00" in march8.text
    assert "UTC-07:00" in march8.text
    assert not any(line.clock_change for line in lines if line.occurrence.day > date(2026, 3, 8))
    fold = preview(ScheduleRule(time(2, 30), "Europe/Berlin", tuple(range(7))), utc(2026, 10, 23), 7)
    assert [line.occurrence.day for line in fold][2] == date(2026, 10, 25)
    assert [line.clock_change for line in fold][:5] == [False, False, True, True, False]
    assert "happens twice" in fold[2].text
    assert "clocks change" in fold[3].text  # the first post on winter time


def test_preview_marks_a_skipped_post() -> None:
    rule = ScheduleRule(time(9, 0), "Asia/Kolkata", tuple(range(7)))
    first = next_occurrences(rule, utc(2026, 5, 1), 1)[0].at
    lines = preview(rule, utc(2026, 5, 1), 3, skip_until=first)
    assert "skipped" in lines[0].text and "skipped" not in lines[1].text


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"days": ()}, "days"),
        ({"days": (7,)}, "days"),
        ({"kind": "poem"}, "kind"),
    ],
)
def test_bad_rules_are_refused(kwargs: dict[str, object], message: str) -> None:
    base: dict[str, object] = {"local_time": time(9, 0), "tz": "UTC", "days": (0,)}
    base.update(kwargs)
    with pytest.raises(ValueError, match=message):
        ScheduleRule(**base)  # type: ignore[arg-type]
