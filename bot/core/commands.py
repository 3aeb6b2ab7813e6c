"""The `/study` command grammar: text in, a `Command` or a `UsageError` out. No I/O.

Discord's typed options, Slack's command text and console lines all arrive here as text, so the
three front ends share one grammar and one set of error messages.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from bot.core.messages import MAX_COMMAND_CHARS


@dataclass(frozen=True, slots=True)
class Command:
    """A parsed command: ``name`` like ``"quiz"`` or ``"schedule.set"``, and its arguments."""

    name: str
    args: dict[str, str] = field(default_factory=dict)


class UsageError(ValueError):
    """The text is not a valid command; ``str(e)`` is a one-line message that shows the right form."""


@dataclass(frozen=True, slots=True)
class Spec:
    usage: str
    summary: str
    admin: bool = False
    #: Only the bot's operator (``STUDYBOT_OWNERS``, the console user): it affects every group.
    operator: bool = False
    #: Listed by `help`. The steps of a dealt card (write, points, rate) are named in `interview`'s line
    #: instead: their buttons are the main path.
    listed: bool = True

    @property
    def restricted(self) -> bool:
        """Not for every member: admins (and operators) only. On Discord these live under `ADMIN_COMMAND`."""
        return self.admin or self.operator

    def usage_on(self, platform: str) -> str:
        """The usage as typed on ``platform``: Discord registers admin commands under `ADMIN_COMMAND`
        (``/study-admin schedule set …``); Slack and the console type them after ``/study``."""
        if platform == "discord" and self.restricted and self.usage.startswith(MEMBER_COMMAND + " "):
            return ADMIN_COMMAND + self.usage[len(MEMBER_COMMAND) :]
        return self.usage


#: The command members type everywhere.
MEMBER_COMMAND = "/study"
#: Discord's second top-level command: the admin commands, hidden from members by Discord's default
#: member permissions (which apply to top-level commands only). Same grammar after it as after ``/study``.
ADMIN_COMMAND = "/study-admin"
#: Leading words `parse` drops: the command names typed along with the text.
_PREFIXES = ("/study", "study", "/study-admin", "study-admin")


#: The longest written answer kept (`/study write`, the answer form). Discord's modal text input allows
#: 4,000 characters and Slack's 3,000: a member who reaches this has written a long essay, not an answer.
MAX_ANSWER_CHARS = 2000
#: A `/study write` text up to this length reaches the practice flow, which explains what is wrong with
#: it; longer ones are refused here without being looked at further.
MAX_WRITE_CHARS = 20_000
_WRITE = re.compile(r"^\s*(?:/?study\s+)?write(?:\s+|$)", re.I)

#: Every command, in the order `help` lists them.
SPECS: dict[str, Spec] = {
    "help": Spec("/study help [<command>]", "what studybot can do; one command in detail"),
    "quiz": Spec(
        "/study quiz [deck]", "a question for you now (due reviews first), from this channel's deck or one named"
    ),
    "answer": Spec("/study answer <A|B|C|D>", "answer the last question shown to you here"),
    "tip": Spec("/study tip", "a tip for your current career step"),
    "path": Spec("/study path", "the six career steps and where you stand"),
    "path.done": Spec("/study path done <1-6>", "mark a career step done"),
    "progress": Spec("/study progress [member]", "answers, accuracy, streak, mastery per topic"),
    "leaderboard": Spec("/study leaderboard [week|all|hide|show]", "top members; hide/show yourself"),
    "review": Spec("/study review", "spaced-repetition reviews due for you"),
    "interview": Spec(
        "/study interview", "practise an interview question (then /study write <answer>, points, rate <again…easy>)"
    ),
    "cards": Spec("/study cards [deck]", "flashcards from a deck, the same way"),
    "write": Spec("/study write <your answer>", "answer the card in front of you (private)", listed=False),
    "points": Spec("/study points", "show that card's points", listed=False),
    "rate": Spec("/study rate <again|hard|good|easy>", "rate yourself on it", listed=False),
    "timezone": Spec("/study timezone <IANA zone>", "your own zone, for streaks (e.g. Europe/Berlin)"),
    "remind": Spec("/study remind [on|off] [HH:MM]", "a private reminder in your evening when reviews are due"),
    "forget-me": Spec("/study forget-me", "delete everything stored about you in this group"),
    "schedule.show": Spec("/study schedule show", "this channel's daily post schedule", admin=True),
    "schedule.preview": Spec("/study schedule preview", "the next 7 posts in local time", admin=True),
    "schedule.set": Spec(
        "/study schedule set <HH:MM> [tz <IANA zone>] [days <mon-fri|daily|mon,wed,fri>] "
        "[kind question|tip|interview|mix] [reveal <hours>] [thread on|off] [ping <@role>|off] "
        "[deck <name|tpm|all>]",
        "post here every chosen day at a local time",
        admin=True,
    ),
    "schedule.pause": Spec("/study schedule pause", "stop posting here until resumed", admin=True),
    "schedule.resume": Spec("/study schedule resume", "start posting here again", admin=True),
    "schedule.skip": Spec("/study schedule skip", "skip the next scheduled post", admin=True),
    "schedule.post-now": Spec("/study schedule post-now", "post the next item here now", admin=True),
    "content.list": Spec("/study content list", "what the loaded content pack holds", admin=True, operator=True),
    "content.validate": Spec(
        "/study content validate", "check the content folder without loading it", admin=True, operator=True
    ),
    "content.load": Spec(
        "/study content load", "reload the content pack for every group (keeps the old one on errors)", True, True
    ),
    "export": Spec("/study export", "CSV of members' progress and per-question analytics", admin=True),
    "check": Spec("/study check", "what studybot can and cannot do in this channel, and how to fix it", admin=True),
    "rewards.show": Spec("/study rewards show", "the role rewards of this server (Discord)", admin=True),
    "rewards.set": Spec(
        "/study rewards set <streak|points> <number> <@role>",
        "give a role when a member reaches a streak or points (Discord)",
        admin=True,
    ),
    "rewards.clear": Spec(
        "/study rewards clear [streak|points]", "remove role rewards (roles already given stay)", admin=True
    ),
    "suggest": Spec("/study suggest [question|tip] [anonymous]", "propose a question or tip"),
    "suggestions": Spec("/study suggestions [on|off]", "approve or deny members' suggestions", admin=True),
    "dashboard": Spec(
        "/study dashboard [logout-all]",
        "web dashboard sign-in link",
        admin=True,
    ),
    "deck.list": Spec("/study deck list", "the group's own decks and the built-in deck tpm", admin=True),
    "deck.show": Spec("/study deck show <name>", "what a deck holds", admin=True),
    "deck.create": Spec("/study deck create <name> [description]", "a new deck of your own questions", admin=True),
    "deck.delete": Spec("/study deck delete <name>", "delete a deck (answered items are kept retired)", admin=True),
    "deck.import": Spec(
        "/study deck import <name>",
        "import a YAML, CSV, JSON or Anki file into a deck: dry run, then Confirm",
        admin=True,
    ),
    "deck.export": Spec(
        "/study deck export <name> [yaml|csv]", "a deck as a file that imports back unchanged", admin=True
    ),
    "deck.retire": Spec(
        "/study deck retire <name> <item id>", "stop posting one item (its answers and reviews stay)", admin=True
    ),
    "deck.add": Spec(
        "/study deck add <name> [question|tip|card]",
        "type one question, tip or flashcard into a deck (a form)",
        admin=True,
    ),
    "deck.edit": Spec(
        "/study deck edit <name> <item id>",
        "change one question, tip or flashcard in a form, filled in with it",
        admin=True,
    ),
}

_GROUPS = {"schedule", "content", "path", "rewards", "deck"}
#: A role as typed or picked: a mention ``<@&123…>`` or the bare id.
_ROLE = re.compile(r"^(?:<@&([0-9]{1,20})>|([0-9]{1,20}))$")
#: The highest reward threshold (days of streak or points).
MAX_THRESHOLD = 100_000
_SCHEDULE_SIMPLE = {"show", "preview", "pause", "resume", "skip", "post-now"}
_CONTENT_SIMPLE = {"list", "validate", "load"}
_TIME = re.compile(r"^([01]?[0-9]|2[0-3]):([0-5][0-9])$")
#: Hours as ASCII digits: ``str.isdigit`` accepts ``²`` and ``①``, which ``int`` then refuses.
_HOURS = re.compile(r"[0-9]{1,3}")
_SUGGESTION_ID = re.compile(r"[0-9]{1,18}")
DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _usage(name: str) -> str:
    return SPECS[name].usage


def _shown(word: str) -> str:
    return word if len(word) <= 30 else word[:30] + "…"


def _no_more(name: str, rest: list[str]) -> None:
    if rest:
        raise UsageError(f'Unexpected "{_shown(" ".join(rest))}" — usage: {_usage(name)}')


def parse(text: str) -> Command:
    """Parse the text after ``/study`` (or Discord's ``/study-admin``: one grammar for both); raises
    `UsageError` with a one-line explanation."""
    written = _WRITE.match(text)
    if written:
        # A written answer keeps its line breaks and may run past MAX_COMMAND_CHARS; the practice flow
        # checks it (empty, too long) with the same messages as the answer form.
        if len(text) > MAX_WRITE_CHARS:
            raise UsageError(
                f"Your answer is too long ({len(text) - written.end():,} characters; the limit is "
                f"{MAX_ANSWER_CHARS:,}). Nothing was saved — shorten it and send it again."
            )
        return Command("write", {"text": text[written.end() :]})
    if len(text) > MAX_COMMAND_CHARS:
        raise UsageError(
            f"That command is too long ({len(text):,} characters; the limit is {MAX_COMMAND_CHARS}). Try /study help."
        )
    words = text.split()
    if words and words[0].casefold() in _PREFIXES:
        words = words[1:]
    if not words:
        raise UsageError("Which command? Try /study help — for a question now: /study quiz")
    head, rest = words[0].casefold(), words[1:]
    if head == "schedule":
        return _parse_schedule(rest)
    if head == "rewards":
        return _parse_rewards(rest)
    if head == "check":
        _no_more("check", rest)
        return Command("check")
    if head == "content":
        sub = rest[0].casefold() if rest else ""
        if sub not in _CONTENT_SIMPLE:
            raise UsageError("Usage: /study content list|validate|load")
        _no_more(f"content.{sub}", rest[1:])
        return Command(f"content.{sub}")
    if head == "path":
        if not rest:
            return Command("path")
        if rest[0].casefold() != "done" or len(rest) != 2 or rest[1] not in {"1", "2", "3", "4", "5", "6"}:
            raise UsageError("Usage: /study path done <1-6> (the step number from /study path)")
        return Command("path.done", {"step": rest[1]})
    if head == "answer":
        if len(rest) != 1 or rest[0].upper() not in ("A", "B", "C", "D"):
            got = f' (got "{_shown(" ".join(rest))}")' if rest else ""
            raise UsageError(f"Answer with one letter A, B, C or D{got} — usage: /study answer <A|B|C|D>")
        return Command("answer", {"letter": rest[0].upper()})
    if head == "progress":
        if len(rest) > 1:
            raise UsageError(f"Usage: {_usage('progress')} — one member at a time")
        return Command("progress", {"member": rest[0]} if rest else {})
    if head == "leaderboard":
        scope = rest[0].casefold() if rest else "week"
        if scope not in ("week", "all", "hide", "show") or len(rest) > 1:
            raise UsageError(f"Usage: {_usage('leaderboard')}")
        return Command("leaderboard", {"scope": scope})
    if head == "timezone":
        if len(rest) > 1:
            raise UsageError(f"Usage: {_usage('timezone')} — one zone name, no spaces")
        return Command("timezone", {"zone": rest[0]} if rest else {})
    if head in ("remind", "reminder", "reminders"):
        return _parse_remind(rest)
    if head in ("forget-me", "forgetme", "forget"):
        if rest and (len(rest) > 1 or rest[0].casefold() not in ("confirm", "cancel")):
            raise UsageError("Usage: /study forget-me (then confirm with the button or /study forget-me confirm)")
        return Command("forget-me", {"confirm": rest[0].casefold()} if rest else {})
    if head == "deck" and rest and rest[0].casefold() == "add":
        return _parse_deck_add(rest[1:])
    if head == "suggest":
        return _parse_suggest(rest)
    if head == "suggestions":
        return _parse_suggestions(rest)
    if head == "dashboard":
        if rest and (len(rest) > 1 or rest[0].casefold() != "logout-all"):
            raise UsageError(f"Usage: {_usage('dashboard')}")
        return Command("dashboard", {"action": "logout-all"} if rest else {})
    if head == "cards":
        if len(rest) > 1:
            raise UsageError(f"Usage: {_usage('cards')} — one deck name")
        return Command("cards", {"deck": rest[0].casefold()} if rest else {})
    if head == "rate":
        if len(rest) != 1 or rest[0].casefold() not in ("again", "hard", "good", "easy"):
            raise UsageError(f"Usage: {_usage('rate')}")
        return Command("rate", {"rating": rest[0].casefold()})
    if head == "quiz":
        if len(rest) > 1:  # one deck name at most
            _no_more("quiz", rest)
        return Command("quiz", {"deck": rest[0].casefold()} if rest else {})
    if head == "deck":
        return _parse_deck(rest)
    if head == "help":
        if len(rest) > 1:
            raise UsageError(f"Usage: {_usage('help')} — one topic, e.g. /study help schedule")
        topic = rest[0].casefold().removeprefix("/") if rest else ""
        return Command("help", {"topic": topic} if topic else {})
    if head in ("tip", "review", "export", "interview", "points"):
        _no_more(head, rest)
        return Command(head)
    raise UsageError(f'Unknown command "{_shown(words[0])}". Try /study help.')


def _parse_remind(rest: list[str]) -> Command:
    usage = _usage("remind")
    if not rest:
        return Command("remind")
    switch = rest[0].casefold()
    if switch not in ("on", "off") or len(rest) > 2 or (switch == "off" and len(rest) > 1):
        raise UsageError(f"Usage: {usage} — e.g. /study remind on 19:30")
    args = {"switch": switch}
    if len(rest) == 2:
        m = _TIME.match(rest[1])
        if not m:
            raise UsageError(f'"{_shown(rest[1])}" is not a time of day — use 24-hour HH:MM, e.g. 19:30')
        args["time"] = f"{int(m.group(1)):02d}:{m.group(2)}"
    return Command("remind", args)


def _parse_deck_add(rest: list[str]) -> Command:
    usage = _usage("deck.add")
    if not rest:
        raise UsageError(f"Which deck? Usage: {usage}")
    deck = rest[0].casefold()
    if not _DECK.fullmatch(deck):
        raise UsageError(
            f'"{_shown(rest[0])}" is not a deck name: 1-32 lower-case letters, digits and dashes — usage: {usage}'
        )
    kind = rest[1].casefold() if len(rest) > 1 else "question"
    if kind not in ("question", "tip", "card") or len(rest) > 2:
        raise UsageError(f"Usage: {usage}")
    return Command("deck.add", {"name": deck, "kind": kind})


def _parse_suggest(rest: list[str]) -> Command:
    args: dict[str, str] = {"kind": "question"}
    words = [w.casefold() for w in rest]
    if words and words[0] in ("question", "tip"):
        args["kind"] = words.pop(0)
    if words and words[0] in ("anonymous", "anon", "nocredit"):
        args["credit"] = "no"
        words.pop(0)
    if words:
        raise UsageError(f'Unexpected "{_shown(" ".join(rest))}" — usage: {_usage("suggest")}')
    return Command("suggest", args)


def _parse_suggestions(rest: list[str]) -> Command:
    usage = "/study suggestions [on|off|approve <id> [deck]|deny <id> [reason]]"
    if not rest:
        return Command("suggestions")
    sub = rest[0].casefold()
    if sub in ("on", "off"):
        _no_more("suggestions", rest[1:])
        return Command("suggestions", {"sub": sub})
    if sub in ("approve", "deny"):
        if len(rest) < 2 or not _SUGGESTION_ID.fullmatch(rest[1].lstrip("#")):
            raise UsageError(f"Which suggestion? Give its number from /study suggestions — usage: {usage}")
        args = {"sub": sub, "id": rest[1].lstrip("#")}
        if sub == "approve":
            if len(rest) > 3:
                raise UsageError(f"Approve one suggestion into at most one deck — usage: {usage}")
            if len(rest) == 3:
                args["deck"] = rest[2].casefold()
        elif rest[2:]:
            args["reason"] = " ".join(rest[2:])
        return Command("suggestions", args)
    raise UsageError(f"Usage: {usage}")


def _parse_schedule(rest: list[str]) -> Command:
    sub = rest[0].casefold() if rest else ""
    if sub in _SCHEDULE_SIMPLE:
        _no_more(f"schedule.{sub}", rest[1:])
        return Command(f"schedule.{sub}")
    if sub != "set":
        raise UsageError("Usage: /study schedule show|preview|set|pause|resume|skip|post-now")
    usage = _usage("schedule.set")
    if len(rest) < 2:
        raise UsageError(f"Which time? Usage: {usage}")
    m = _TIME.match(rest[1])
    if not m:
        raise UsageError(f'"{_shown(rest[1])}" is not a time of day — use 24-hour HH:MM, e.g. 09:30')
    args = {"time": f"{int(m.group(1)):02d}:{m.group(2)}"}
    opts = rest[2:]
    if len(opts) % 2:
        raise UsageError(f'"{_shown(opts[-1])}" needs a value — usage: {usage}')
    for key, value in zip(opts[::2], opts[1::2], strict=True):
        key = key.casefold()
        if key not in ("tz", "days", "kind", "reveal", "thread", "ping", "deck"):
            raise UsageError(f'Unknown option "{_shown(key)}" — usage: {usage}')
        if key in args:
            raise UsageError(f'"{key}" is given twice — usage: {usage}')
        if key == "kind" and value.casefold() not in ("question", "tip", "interview", "mix"):
            raise UsageError(f'kind must be question, tip, interview or mix (got "{_shown(value)}")')
        if key == "reveal" and not (_HOURS.fullmatch(value) and 0 < int(value) <= 72):
            raise UsageError(f'reveal takes a whole number of hours from 1 to 72 (got "{_shown(value)}")')
        if key == "thread" and value.casefold() not in ("on", "off"):
            raise UsageError(f'thread takes on or off (got "{_shown(value)}")')
        if key == "ping":
            value = "off" if value.casefold() == "off" else parse_role(value)
        if key == "deck" and not _DECK.fullmatch(value.casefold()):
            raise UsageError(f'deck takes a deck name, tpm or all (got "{_shown(value)}")')
        args[key] = value.casefold() if key in ("kind", "days", "thread", "deck") else value
    if "days" in args:
        parse_days(args["days"])
    return Command("schedule.set", args)


def parse_role(text: str) -> str:
    """A role mention (``<@&123>``) or id → the id; raises `UsageError`."""
    m = _ROLE.match(text)
    if not m:
        raise UsageError(f'"{_shown(text)}" is not a role — mention one, like @Learners (on Discord)')
    return m.group(1) or m.group(2)


def _parse_rewards(rest: list[str]) -> Command:
    sub = rest[0].casefold() if rest else "show"
    if sub == "show":
        _no_more("rewards.show", rest[1:])
        return Command("rewards.show")
    if sub == "clear":
        if len(rest) > 2 or (len(rest) == 2 and rest[1].casefold() not in ("streak", "points")):
            raise UsageError(f"Usage: {_usage('rewards.clear')}")
        return Command("rewards.clear", {"kind": rest[1].casefold()} if len(rest) == 2 else {})
    if sub != "set":
        raise UsageError("Usage: /study rewards show|set|clear")
    usage = _usage("rewards.set")
    if len(rest) != 4:
        raise UsageError(f"Usage: {usage} — e.g. rewards set streak 7 @Regulars")
    kind, number, role = rest[1].casefold(), rest[2], rest[3]
    if kind not in ("streak", "points"):
        raise UsageError(f'A reward is for a streak or for points (got "{_shown(rest[1])}") — usage: {usage}')
    if not (_HOURS.fullmatch(number) or re.fullmatch(r"[0-9]{4,6}", number)) or not 0 < int(number) <= MAX_THRESHOLD:
        raise UsageError(f'"{_shown(number)}" is not a number from 1 to {MAX_THRESHOLD:,} — usage: {usage}')
    return Command("rewards.set", {"kind": kind, "threshold": str(int(number)), "role": parse_role(role)})


_DECK_SUBS = ("list", "show", "create", "delete", "import", "export", "retire", "add", "edit")
_DECK = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")


def _parse_deck(rest: list[str]) -> Command:
    sub = rest[0].casefold() if rest else ""
    if sub not in _DECK_SUBS:
        raise UsageError(f"Usage: /study deck {'|'.join(_DECK_SUBS)} — e.g. /study deck create sql SQL for TPMs")
    name = f"deck.{sub}"
    if sub == "list":
        _no_more(name, rest[1:])
        return Command(name)
    if len(rest) < 2:
        raise UsageError(f"Which deck? Usage: {_usage(name)}")
    deck = rest[1].casefold()
    if not _DECK.fullmatch(deck):
        raise UsageError(
            f'"{_shown(rest[1])}" is not a deck name: 1-32 lower-case letters, digits and dashes — usage: {_usage(name)}'
        )
    args = {"name": deck}
    extra = rest[2:]
    if sub == "create" and extra:
        args["description"] = " ".join(extra)[:200]
    elif sub == "import" and extra:
        args["path"] = " ".join(extra)  # the console reads this file; chat front ends attach one instead
    elif sub in ("retire", "edit"):
        if len(extra) != 1:
            raise UsageError(f"Which item? Usage: {_usage(name)} (the ids are in /study deck show)")
        args["item"] = extra[0].casefold()[:48]
    elif sub == "export" and extra:
        if len(extra) > 1 or extra[0].casefold() not in ("yaml", "csv"):
            raise UsageError(f"Usage: {_usage(name)}")
        args["format"] = extra[0].casefold()
    else:
        _no_more(name, extra)
    return Command(name, args)


def parse_days(text: str) -> tuple[int, ...]:
    """``daily``, ``weekdays``/``mon-fri``, ``weekends``, ranges and lists → weekday numbers (Mon=0).

    Raises `UsageError` for unknown names or an empty set."""
    t = text.casefold().strip()
    if t in ("daily", "every", "all"):
        return tuple(range(7))
    if t in ("weekdays",):
        return tuple(range(5))
    if t in ("weekends", "weekend"):
        return (5, 6)
    days: set[int] = set()
    for part in filter(None, t.split(",")):
        lo, _, hi = part.partition("-")
        try:
            a = _day(lo)
            if hi:
                b = _day(hi)
                days.update(range(a, b + 1) if a <= b else [*range(a, 7), *range(b + 1)])
            else:
                days.add(a)
        except ValueError:
            raise UsageError(
                f'Unknown days "{_shown(text)}" — use daily, mon-fri, weekends or a list like mon,wed,fri'
            ) from None
    if not days:
        raise UsageError("The day set is empty — use daily, mon-fri or a list like mon,wed,fri")
    return tuple(sorted(days))


_FULL_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def _day(word: str) -> int:
    """Weekday number for ``mon``/``monday``/``tues``…; ValueError otherwise."""
    if len(word) >= 3:
        for i, full in enumerate(_FULL_DAYS):
            if full.startswith(word):
                return i
    raise ValueError(word)


def format_days(days: tuple[int, ...]) -> str:
    if days == tuple(range(7)):
        return "daily"
    if days == tuple(range(5)):
        return "mon-fri"
    if days == (5, 6):
        return "weekends"
    return ",".join(DAY_NAMES[d] for d in days)
