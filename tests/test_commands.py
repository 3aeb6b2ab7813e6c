"""The /study grammar: what parses, and the one-line messages for what does not."""

from __future__ import annotations

import pytest

from bot.core.commands import Command, UsageError, format_days, parse, parse_days


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("help", Command("help")),
        ("/study quiz", Command("quiz")),
        ("QUIZ", Command("quiz")),
        ("answer b", Command("answer", {"letter": "B"})),
        ("path", Command("path")),
        ("path done 3", Command("path.done", {"step": "3"})),
        ("progress", Command("progress")),
        ("progress <@U123>", Command("progress", {"member": "<@U123>"})),
        ("leaderboard", Command("leaderboard", {"scope": "week"})),
        ("leaderboard ALL", Command("leaderboard", {"scope": "all"})),
        ("leaderboard hide", Command("leaderboard", {"scope": "hide"})),
        ("timezone Europe/Berlin", Command("timezone", {"zone": "Europe/Berlin"})),
        ("timezone", Command("timezone")),
        ("forget-me", Command("forget-me")),
        ("forget-me confirm", Command("forget-me", {"confirm": "confirm"})),
        ("review", Command("review")),
        ("export", Command("export")),
        ("schedule show", Command("schedule.show")),
        ("schedule post-now", Command("schedule.post-now")),
        ("content load", Command("content.load")),
        (
            "schedule set 9:05 tz Europe/Berlin days mon-fri kind MIX",
            Command("schedule.set", {"time": "09:05", "tz": "Europe/Berlin", "days": "mon-fri", "kind": "mix"}),
        ),
        ("schedule set 23:59 reveal 4", Command("schedule.set", {"time": "23:59", "reveal": "4"})),
        # Discord's /study-admin is the same grammar: its text parses to the same commands.
        ("/study-admin schedule set 23:59 reveal 4", Command("schedule.set", {"time": "23:59", "reveal": "4"})),
        ("study-admin export", Command("export")),
        ("check", Command("check")),
        ("/study-admin check", Command("check")),
        ("rewards", Command("rewards.show")),
        ("rewards show", Command("rewards.show")),
        ("rewards clear", Command("rewards.clear")),
        ("rewards clear Points", Command("rewards.clear", {"kind": "points"})),
        (
            "rewards set streak 7 <@&860000000000000001>",
            Command("rewards.set", {"kind": "streak", "threshold": "7", "role": "860000000000000001"}),
        ),
        ("rewards set POINTS 050 123", Command("rewards.set", {"kind": "points", "threshold": "50", "role": "123"})),
        (
            "schedule set 09:00 thread ON ping <@&42>",
            Command("schedule.set", {"time": "09:00", "thread": "on", "ping": "42"}),
        ),
        ("schedule set 09:00 ping off", Command("schedule.set", {"time": "09:00", "ping": "off"})),
    ],
)
def test_parses(text: str, expected: Command) -> None:
    assert parse(text) == expected


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "Which command?"),
        ("/study", "Which command?"),
        ("answer Z", "A, B, C or D"),
        ("answer", "A, B, C or D"),
        ("quiz extra words", 'Unexpected "extra words"'),
        ("dance", 'Unknown command "dance"'),
        ("path done 7", "path done <1-6>"),
        ("leaderboard month", "leaderboard [week|all|hide|show]"),
        ("timezone Europe Berlin", "one zone name"),
        ("schedule", "schedule show|preview|set"),
        ("schedule set", "Which time?"),
        ("schedule set 25:00", "not a time of day"),
        ("schedule set 09:00 kind poem", "kind must be question, tip, interview or mix"),
        ("schedule set 09:00 days funday", 'Unknown days "funday"'),
        ("schedule set 09:00 days ,", "day set is empty"),
        ("schedule set 09:00 tz", '"tz" needs a value'),
        ("schedule set 09:00 colour red", 'Unknown option "colour"'),
        ("schedule set 09:00 reveal 0", "reveal takes a whole number"),
        # str.isdigit() accepts these, int() does not: usage errors, not "something went wrong".
        ("schedule set 09:00 reveal ²", "reveal takes a whole number"),
        ("schedule set 09:00 reveal ①", "reveal takes a whole number"),
        ("schedule set 09:00 reveal ٣", "reveal takes a whole number"),
        ("schedule set 09:00 reveal 99999999999999999999999", "reveal takes a whole number"),
        ("content explode", "content list|validate|load"),
        ("check now", 'Unexpected "now"'),
        ("rewards give", "rewards show|set|clear"),
        ("rewards set streak 7", "rewards set <streak|points> <number> <@role>"),
        ("rewards set coins 7 <@&1>", "for a streak or for points"),
        ("rewards set streak seven <@&1>", '"seven" is not a number from 1 to 100,000'),
        ("rewards set streak 0 <@&1>", "not a number from 1 to 100,000"),
        ("rewards set streak ٧ <@&1>", "not a number from 1 to 100,000"),
        ("rewards set points 1000001 <@&1>", "not a number from 1 to 100,000"),
        ("rewards set streak 7 @everyone", "is not a role"),
        ("rewards set streak 7 <@123>", "is not a role"),
        ("rewards clear coins", "rewards clear [streak|points]"),
        ("schedule set 09:00 thread maybe", "thread takes on or off"),
        ("schedule set 09:00 ping everyone", "is not a role"),
        ("x" * 10_000, "too long (10,000 characters"),
    ],
)
def test_rejects_with_a_one_line_message(text: str, fragment: str) -> None:
    with pytest.raises(UsageError) as e:
        parse(text)
    message = str(e.value)
    assert fragment in message
    assert "\n" not in message
    assert len(message) < 300


@pytest.mark.parametrize(
    ("text", "days"),
    [
        ("daily", (0, 1, 2, 3, 4, 5, 6)),
        ("mon-fri", (0, 1, 2, 3, 4)),
        ("weekdays", (0, 1, 2, 3, 4)),
        ("mon,wed,fri", (0, 2, 4)),
        ("Tuesday,thu", (1, 3)),
        ("fri-mon", (0, 4, 5, 6)),
        ("weekends", (5, 6)),
    ],
)
def test_days(text: str, days: tuple[int, ...]) -> None:
    assert parse_days(text) == days
    assert parse_days(format_days(days)) == days
