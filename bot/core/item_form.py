"""The question / tip form: one question or tip in the shipped content schema, typed into a form.

Shared by `/study suggest` (members) and `/study deck add` (admins): `item_form` builds the form,
`read_item` turns the submitted values into an `ItemDraft` or field-level errors. The rules are the
content pack's (`bot.core.content.Question` / `Tip`), each problem attached to the field to fix.

A question fits Discord's five inputs by taking its four choices in one box, one per line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from pydantic import ValidationError

from bot.core.content import LETTERS, Question, Tip
from bot.core.forms import Field, Form, quoted

ItemKind = Literal["question", "tip"]
KINDS: tuple[ItemKind, ...] = ("question", "tip")
DIFFICULTIES = {"easy": 1, "medium": 2, "hard": 3}
_TOPIC = re.compile(r"[a-z][a-z0-9-]{0,31}")


@dataclass(frozen=True, slots=True)
class ItemDraft:
    """A checked question or tip without an id yet: the fields of `Question` / `Tip` in the pack's schema.

    Questions use ``prompt``, ``choices``, ``answer``, ``explanation``, ``topic``, ``difficulty``;
    tips use ``text``, ``action``, ``step`` (the rest stay empty)."""

    kind: ItemKind
    prompt: str = ""
    choices: tuple[str, ...] = ()
    answer: str = ""
    explanation: str = ""
    topic: str = ""
    difficulty: int = 2
    text: str = ""
    action: str = ""
    step: int = 0

    def as_dict(self) -> dict[str, object]:
        """The draft in the pack's YAML shape (without ``id`` and ``source``)."""
        if self.kind == "question":
            return {
                "topic": self.topic,
                "difficulty": self.difficulty,
                "prompt": self.prompt,
                "choices": list(self.choices),
                "answer": self.answer,
                "explanation": self.explanation,
            }
        return {"step": self.step, "text": self.text, "action": self.action}

    @classmethod
    def from_dict(cls, kind: ItemKind, data: dict[str, object]) -> ItemDraft:
        """The inverse of `as_dict` (for a draft kept in a database as JSON)."""
        if kind == "question":
            choices = data.get("choices") or []
            assert isinstance(choices, list)
            return cls(
                "question",
                prompt=str(data.get("prompt", "")),
                choices=tuple(str(c) for c in choices),
                answer=str(data.get("answer", "")),
                explanation=str(data.get("explanation", "")),
                topic=str(data.get("topic", "")),
                difficulty=int(str(data.get("difficulty", 2))),
            )
        return cls(
            "tip",
            text=str(data.get("text", "")),
            action=str(data.get("action", "")),
            step=int(str(data.get("step", 0))),
        )


def item_form(name: str, kind: ItemKind, title: str, *, arg: str = "", extra: Field | None = None) -> Form:
    """The form for one ``kind`` (question or tip), routed as ``name``/``arg``. ``extra`` adds one field of
    the caller's own (a tip has room; a question's five are taken, so ``extra`` is refused for it)."""
    if kind == "question":
        if extra is not None:
            raise ValueError("a question form has no room for another field")
        fields: tuple[Field, ...] = (
            Field("prompt", "Question", "paragraph", max_len=400, placeholder="10-400 characters"),
            Field("choices", "Four choices, one per line (A, B, C, D)", "paragraph", max_len=4 * 161),
            Field("answer", "Right answer: A, B, C or D", max_len=1, placeholder="A"),
            Field("explanation", "Why that answer is right", "paragraph", max_len=600, placeholder="20-600 characters"),
            Field(
                "topic",
                "Topic and difficulty",
                required=False,
                max_len=45,
                placeholder="e.g. risk-and-scope hard (default: general medium)",
            ),
        )
    else:
        fields = (
            Field("text", "Tip", "paragraph", max_len=500, placeholder="20-500 characters"),
            Field("action", "One thing to do this week", "paragraph", max_len=300, placeholder="10-300 characters"),
            Field("step", "Career step it belongs to (1-6)", max_len=1, placeholder="1-6 (see /study path)"),
        )
        if extra is not None:
            fields = (*fields, extra)
    return Form(name=name, title=title, fields=fields, arg=arg)


def _length(value: str, lo: int, hi: int, what: str) -> str | None:
    if len(value) < lo:
        return f"{what} needs at least {lo} characters (this has {len(value)})."
    if len(value) > hi:
        return f"{what} takes at most {hi} characters (this has {len(value)})."
    return None


def read_item(kind: ItemKind, values: dict[str, str]) -> ItemDraft | dict[str, str]:
    """The draft the values describe, or field key → message for every problem found."""
    errors: dict[str, str] = {}
    if kind == "tip":
        text, action, step = values.get("text", ""), values.get("action", ""), values.get("step", "")
        if e := _length(text, 20, 500, "The tip"):
            errors["text"] = e
        if e := _length(action, 10, 300, "The action"):
            errors["action"] = e
        if step not in ("1", "2", "3", "4", "5", "6"):
            errors["step"] = "A step number from 1 to 6 (see /study path)."
        if errors:
            return errors
        draft = ItemDraft("tip", text=text, action=action, step=int(step))
        try:
            Tip(id="draft", step=draft.step, text=text, action=action, source="general")
        except ValidationError as invalid:  # pragma: no cover - the checks above mirror the model
            return {"text": _first(invalid)}
        return draft
    prompt, answer, explanation = (
        values.get("prompt", ""),
        values.get("answer", "").upper(),
        values.get("explanation", ""),
    )
    if e := _length(prompt, 10, 400, "The question"):
        errors["prompt"] = e
    lines = [line.strip() for line in values.get("choices", "").split("\n") if line.strip()]
    lines = [re.sub(r"^[A-Da-d][).:]\s*", "", line) for line in lines]  # "A) …" is fine too
    if len(lines) != 4:
        errors["choices"] = f"Exactly four choices, one per line (this has {len(lines)})."
    elif (long := next((i for i, c in enumerate(lines) if len(c) > 160), None)) is not None:
        errors["choices"] = f"Choice {LETTERS[long]} is longer than 160 characters."
    elif len({c.casefold() for c in lines}) != 4:
        errors["choices"] = "The four choices must all be different."
    if answer not in LETTERS:
        errors["answer"] = "One letter: A, B, C or D."
    if e := _length(explanation, 20, 600, "The explanation"):
        errors["explanation"] = e
    words = values.get("topic", "").casefold().split()
    topic, difficulty = "general", 2
    if words and words[-1] in DIFFICULTIES:
        difficulty = DIFFICULTIES[words.pop()]
    if len(words) > 1:
        errors["topic"] = "One topic word (like risk-and-scope), then optionally easy, medium or hard."
    elif words:
        if not _TOPIC.fullmatch(words[0]):
            errors["topic"] = "A topic is lower-case letters, digits and dashes, starting with a letter (up to 32)."
        topic = words[0]
    if errors:
        return errors
    draft = ItemDraft(
        "question",
        prompt=prompt,
        choices=tuple(lines),
        answer=answer,
        explanation=explanation,
        topic=topic,
        difficulty=difficulty,
    )
    try:
        Question(
            id="draft",
            topic=topic,
            difficulty=difficulty,
            prompt=prompt,
            choices=list(lines),
            answer=answer,  # type: ignore[arg-type]
            explanation=explanation,
            source="general",
        )
    except ValidationError as invalid:  # pragma: no cover - the checks above mirror the model
        return {"prompt": _first(invalid)}
    return draft


def _first(e: ValidationError) -> str:
    err = e.errors()[0]
    return str(err.get("msg", "invalid"))[:200]


def preview(draft: ItemDraft) -> str:
    """The draft as the core shows it (member text marked, so no front end pings or formats it)."""
    if draft.kind == "question":
        lines = [quoted(draft.prompt)]
        lines += [f"**{letter})** {quoted(c)}" for letter, c in zip(LETTERS, draft.choices, strict=True)]
        lines.append(
            f"Answer: {draft.answer} · {quoted(draft.topic)} · {['', 'easy', 'medium', 'hard'][draft.difficulty]}"
        )
        lines.append(quoted(draft.explanation))
        return "\n".join(lines)
    return f"Step {draft.step}: {quoted(draft.text)}\n**This week:** {quoted(draft.action)}"
