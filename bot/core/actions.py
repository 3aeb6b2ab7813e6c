"""Stable action ids for buttons.

They survive restarts because they carry everything needed to act: ``sb:ans:<post id>:<letter>``,
``sb:pr:<attempt id>:<step>`` (open-card practice), ``sb:prx:<post id>`` ("Practise this" under a
channel post). Discord limits a ``custom_id`` to 100 characters and Slack an ``action_id`` to 255; ours
stay short.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PREFIX = "sb"
LETTERS = ("A", "B", "C", "D")
#: A post id in an action id: ASCII digits only (``"²".isdigit()`` is true, but ``int("²")`` fails) and
#: at most 18 of them, so the number always fits the database's signed 64-bit integers.
POST_ID = re.compile(r"[0-9]{1,18}")
#: The steps of practising an open card: show the points, write an answer, rate 1-4 (Again…Easy).
PRACTICE_STEPS = frozenset({"show", "write", "r1", "r2", "r3", "r4"})
#: Confidence on a multiple-choice answer: ``sb:ans:<post>:<letter>:<sure|guess>``.
CONFIDENCE = frozenset({"sure", "guess"})


@dataclass(frozen=True, slots=True)
class AnswerAction:
    post_id: int
    letter: str
    confidence: str | None = None


@dataclass(frozen=True, slots=True)
class SimpleAction:
    """An action without a payload, e.g. ``forget-confirm``."""

    name: str


@dataclass(frozen=True, slots=True)
class QuizMeAction:
    """The "Quiz me" button of a reminder: ``sb:quizme:<member id>``. It names the member because a click
    in a direct message carries no server to find them by."""

    member_id: int


@dataclass(frozen=True, slots=True)
class PracticeAction:
    """A step on an open card dealt to a member: ``show``, ``write`` or ``r1``…``r4`` (a rating)."""

    attempt_id: int
    step: str


@dataclass(frozen=True, slots=True)
class PractiseThisAction:
    """ "Practise this" under a channel post (``sb:prx:<post id>``): deal its card privately to whoever clicks."""

    post_id: int


Action = AnswerAction | SimpleAction | QuizMeAction | PracticeAction | PractiseThisAction
#: Buttons without a payload: forget-me's confirmation, and the Slack Home tab's buttons and switches.
SIMPLE_ACTIONS = frozenset(
    {"forget-confirm", "forget-cancel", "review-now", "remind-on", "remind-off", "board-hide", "board-show"}
)


def answer_action(post_id: int, letter: str, confidence: str | None = None) -> str:
    if confidence is not None:
        if confidence not in CONFIDENCE:
            raise ValueError(f"unknown confidence {confidence!r}")
        return f"{PREFIX}:ans:{post_id}:{letter}:{confidence}"
    return f"{PREFIX}:ans:{post_id}:{letter}"


def quizme_action(member_id: int) -> str:
    return f"{PREFIX}:quizme:{member_id}"


def simple_action(name: str) -> str:
    if name not in SIMPLE_ACTIONS:
        raise ValueError(f"unknown action {name!r}")
    return f"{PREFIX}:{name}"


def practice_action(attempt_id: int, step: str) -> str:
    if step not in PRACTICE_STEPS:
        raise ValueError(f"unknown practice step {step!r}")
    return f"{PREFIX}:pr:{attempt_id}:{step}"


def practise_this_action(post_id: int) -> str:
    return f"{PREFIX}:prx:{post_id}"


#: A routed action: ``sb:<name>:<arg>[:<arg>…]`` (see `StudyService.register_action`).
ROUTED_NAME = re.compile(r"[a-z][a-z0-9-]{0,19}")
ROUTED_ARG = re.compile(r"[A-Za-z0-9_.-]{1,40}")


def routed_action(name: str, *args: str) -> str:
    """The id of a button routed to the handler registered for ``name``; ValueError for bad parts."""
    if not ROUTED_NAME.fullmatch(name) or not args or not all(ROUTED_ARG.fullmatch(a) for a in args):
        raise ValueError(f"bad routed action {name!r} {args!r}")
    action_id = ":".join((PREFIX, name, *args))
    if len(action_id) > 100:  # Discord's custom_id limit
        raise ValueError("action id longer than 100 characters")
    return action_id


def routed_name(action_id: str) -> str | None:
    """The name part of an action id of ours (``sb:<name>:…``), unchecked; None for any other id."""
    prefix, _, rest = action_id.partition(":")
    return rest.partition(":")[0] if prefix == PREFIX else None


def parse_routed(action_id: str) -> tuple[str, tuple[str, ...]] | None:
    """``(name, args)`` of a routed action id, or None."""
    parts = action_id.split(":")
    if len(parts) < 3 or parts[0] != PREFIX or not ROUTED_NAME.fullmatch(parts[1]):
        return None
    if not all(ROUTED_ARG.fullmatch(a) for a in parts[2:]):
        return None
    return parts[1], tuple(parts[2:])


def parse_action(action_id: str) -> Action | None:
    """Decode an action id; None when it is not one of ours or is malformed."""
    parts = action_id.split(":")
    if len(parts) < 2 or parts[0] != PREFIX:
        return None
    if parts[1] == "ans" and len(parts) in (4, 5) and POST_ID.fullmatch(parts[2]) and parts[3] in LETTERS:
        if len(parts) == 5:
            return AnswerAction(int(parts[2]), parts[3], parts[4]) if parts[4] in CONFIDENCE else None
        return AnswerAction(int(parts[2]), parts[3])
    if parts[1] == "quizme" and len(parts) == 3 and POST_ID.fullmatch(parts[2]):
        return QuizMeAction(int(parts[2]))
    if parts[1] == "pr" and len(parts) == 4 and POST_ID.fullmatch(parts[2]) and parts[3] in PRACTICE_STEPS:
        return PracticeAction(int(parts[2]), parts[3])
    if parts[1] == "prx" and len(parts) == 3 and POST_ID.fullmatch(parts[2]):
        return PractiseThisAction(int(parts[2]))
    if len(parts) == 2 and parts[1] in SIMPLE_ACTIONS:
        return SimpleAction(parts[1])
    return None
