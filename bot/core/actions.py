"""Stable action ids for buttons.

They survive restarts because they carry everything needed to act: ``sb:ans:<post id>:<letter>``.
Discord limits a ``custom_id`` to 100 characters and Slack an ``action_id`` to 255; ours stay short.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PREFIX = "sb"
LETTERS = ("A", "B", "C", "D")
#: A post id in an action id: ASCII digits only (``"²".isdigit()`` is true, but ``int("²")`` fails) and
#: at most 18 of them, so the number always fits the database's signed 64-bit integers.
POST_ID = re.compile(r"[0-9]{1,18}")


@dataclass(frozen=True, slots=True)
class AnswerAction:
    post_id: int
    letter: str


@dataclass(frozen=True, slots=True)
class SimpleAction:
    """An action without a payload, e.g. ``forget-confirm``."""

    name: str


@dataclass(frozen=True, slots=True)
class QuizMeAction:
    """The "Quiz me" button of a reminder: ``sb:quizme:<member id>``. It names the member because a click
    in a direct message carries no server to find them by."""

    member_id: int


Action = AnswerAction | SimpleAction | QuizMeAction
#: Buttons without a payload: forget-me's confirmation, and the Slack Home tab's buttons and switches.
SIMPLE_ACTIONS = frozenset(
    {"forget-confirm", "forget-cancel", "review-now", "remind-on", "remind-off", "board-hide", "board-show"}
)


def answer_action(post_id: int, letter: str) -> str:
    return f"{PREFIX}:ans:{post_id}:{letter}"


def quizme_action(member_id: int) -> str:
    return f"{PREFIX}:quizme:{member_id}"


def simple_action(name: str) -> str:
    if name not in SIMPLE_ACTIONS:
        raise ValueError(f"unknown action {name!r}")
    return f"{PREFIX}:{name}"


def parse_action(action_id: str) -> Action | None:
    """Decode an action id; None when it is not one of ours or is malformed."""
    parts = action_id.split(":")
    if len(parts) < 2 or parts[0] != PREFIX:
        return None
    if parts[1] == "ans" and len(parts) == 4 and POST_ID.fullmatch(parts[2]) and parts[3] in LETTERS:
        return AnswerAction(int(parts[2]), parts[3])
    if parts[1] == "quizme" and len(parts) == 3 and POST_ID.fullmatch(parts[2]):
        return QuizMeAction(int(parts[2]))
    if len(parts) == 2 and parts[1] in SIMPLE_ACTIONS:
        return SimpleAction(parts[1])
    return None
