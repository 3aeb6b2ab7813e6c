"""The item forms: one question, tip or open card in the deck file schema, typed into a form.

Shared by `/study suggest` (members: questions and tips) and `/study deck add` / `deck edit` (admins: all
three): `item_form` builds the form, `read_item` turns the submitted values into an `ItemDraft` or
field-level errors. The rules are the deck file's (`bot.core.content.Question` / `Tip`,
`bot.core.decks.Card`), each problem attached to the field to fix.

A question fits Discord's five inputs by taking its four choices in one box, one per line; a card's five
are front, back (the points a good answer covers), topic, tags and source.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from pydantic import ValidationError

from bot.core.content import LETTERS, Question, Tip
from bot.core.decks import Card
from bot.core.forms import Field, Form, quoted

ItemKind = Literal["question", "tip", "card"]
#: The kinds members may suggest (a suggestion's kind is a question or a tip in the database).
KINDS: tuple[ItemKind, ...] = ("question", "tip")
#: The kinds an admin may type into a deck.
DECK_KINDS: tuple[ItemKind, ...] = ("question", "tip", "card")
DIFFICULTIES = {"easy": 1, "medium": 2, "hard": 3}
_TOPIC = re.compile(r"[a-z][a-z0-9-]{0,31}")


@dataclass(frozen=True, slots=True)
class ItemDraft:
    """A checked question, tip or card without an id yet: the fields of `Question` / `Tip` / `Card` in the
    deck file schema.

    Questions use ``prompt``, ``choices``, ``answer``, ``explanation``, ``topic``, ``difficulty``;
    tips use ``text``, ``action``, ``step``; cards ``front``, ``back``, ``topic`` (empty: none), ``tags``
    and ``source`` (the rest stay empty)."""

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
    front: str = ""
    back: str = ""
    tags: tuple[str, ...] = ()
    source: str = "general"

    def as_dict(self) -> dict[str, object]:
        """The draft in the pack's YAML shape (without ``id``; ``source`` for cards only, whose form has it)."""
        if self.kind == "card":
            return {
                "front": self.front,
                "back": self.back,
                "topic": self.topic or None,
                "tags": list(self.tags),
                "source": self.source,
            }
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
        if kind == "card":
            tags = data.get("tags") or []
            assert isinstance(tags, list)
            return cls(
                "card",
                front=str(data.get("front", "")),
                back=str(data.get("back", "")),
                topic=str(data.get("topic") or ""),
                tags=tuple(str(t) for t in tags),
                source=str(data.get("source") or "general"),
            )
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
    """The form for one ``kind`` (question, tip or card), routed as ``name``/``arg``. ``extra`` adds one
    field of the caller's own (a tip has room; a question's and a card's five are taken, so ``extra`` is
    refused for them)."""
    if kind == "card":
        if extra is not None:
            raise ValueError("a card form has no room for another field")
        fields: tuple[Field, ...] = (
            Field("front", "Front: the prompt", "paragraph", max_len=FRONT_MAX, placeholder="10-400 characters"),
            Field(
                "back",
                "Back: the points a good answer covers",
                "paragraph",
                max_len=BACK_MAX,
                placeholder="5-2,000 characters",
            ),
            Field("topic", "Topic", required=False, max_len=32, placeholder="e.g. stakeholders (default: none)"),
            Field(
                "tags",
                "Tags, separated by spaces or commas",
                required=False,
                max_len=10 * 33,
                placeholder="up to 10, e.g. behavioural conflict",
            ),
            Field(
                "source",
                "Source",
                required=False,
                max_len=SOURCE_MAX,
                placeholder="general, or where it comes from: book#chapter",
            ),
        )
        return Form(name=name, title=title, fields=fields, arg=arg)
    if kind == "question":
        if extra is not None:
            raise ValueError("a question form has no room for another field")
        fields = (
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


#: A card's limits as the form shows them: the same as `bot.core.decks.Card` (which `read_item` applies).
FRONT_MAX = 400
BACK_MAX = 2000
SOURCE_MAX = 1000
_TAG_SPLIT = re.compile(r"[\s,]+")
#: Card model field → form field (``id`` is the form's own business: never typed).
_CARD_FIELDS = {"front": "front", "back": "back", "topic": "topic", "tags": "tags", "source": "source"}


def read_card(values: dict[str, str]) -> ItemDraft | dict[str, str]:
    """A card draft from the form's values, checked by `Card` itself (the deck file's rules), or field key
    → message. Topic and tags are lower-cased as typed (like a question's topic)."""
    front, back = values.get("front", ""), values.get("back", "")
    topic = values.get("topic", "").strip().casefold()
    tags = [t for t in _TAG_SPLIT.split(values.get("tags", "").casefold()) if t]
    source = values.get("source", "").strip() or "general"
    try:
        card = Card(id="draft", front=front, back=back, topic=topic or None, source=source, tags=tags)
    except ValidationError as invalid:
        return _card_errors(invalid, tags)
    return ItemDraft(
        "card", front=card.front, back=card.back, topic=card.topic or "", tags=tuple(card.tags), source=card.source
    )


def _card_errors(invalid: ValidationError, tags: list[str]) -> dict[str, str]:
    """`Card`'s validation errors as one message per form field, in words a person fixes."""
    errors: dict[str, str] = {}
    for err in invalid.errors():
        loc = err.get("loc") or ("front",)
        key = _CARD_FIELDS.get(str(loc[0]), "front")
        if key in errors:
            continue
        kind, ctx = err.get("type", ""), err.get("ctx") or {}
        what = {"front": "The front", "back": "The back"}.get(key, "")
        if key in ("front", "back") and kind == "string_too_short":
            errors[key] = f"{what} needs at least {ctx.get('min_length')} characters."
        elif key in ("front", "back") and kind == "string_too_long":
            errors[key] = f"{what} takes at most {ctx.get('max_length'):,} characters."
        elif key == "topic":
            errors[key] = (
                "A topic is one word: lower-case letters, digits and dashes, starting with a letter (up to 32)."
            )
        elif key == "tags" and kind == "too_long":
            errors[key] = f"At most 10 tags (this has {len(tags)})."
        elif key == "tags":
            bad = tags[int(loc[1])] if len(loc) > 1 and str(loc[1]).isdigit() else ""
            errors[key] = (
                f'"{quoted(bad[:40])}" is not a tag: ' if bad else ""
            ) + "a tag is lower-case letters, digits and dashes, starting with a letter (up to 32)."
        elif key == "source":
            errors[key] = 'A source is "general" or where the card comes from, like book#chapter (no spaces before #).'
        else:  # pragma: no cover - every Card field is mapped above
            errors[key] = str(err.get("msg", "invalid"))[:200]
    return errors


def _length(value: str, lo: int, hi: int, what: str) -> str | None:
    if len(value) < lo:
        return f"{what} needs at least {lo} characters (this has {len(value)})."
    if len(value) > hi:
        return f"{what} takes at most {hi} characters (this has {len(value)})."
    return None


def read_item(kind: ItemKind, values: dict[str, str]) -> ItemDraft | dict[str, str]:
    """The draft the values describe, or field key → message for every problem found."""
    if kind == "card":
        return read_card(values)
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
    if draft.kind == "card":
        about = " · ".join(quoted(x) for x in (draft.topic, *draft.tags) if x)
        lines = [f"**Front:** {quoted(draft.front)}", f"**Back:** {quoted(draft.back)}"]
        if about:
            lines.append(about)
        if draft.source != "general":
            lines.append(f"Source: {quoted(draft.source)}")
        return "\n".join(lines)
    if draft.kind == "question":
        lines = [quoted(draft.prompt)]
        lines += [f"**{letter})** {quoted(c)}" for letter, c in zip(LETTERS, draft.choices, strict=True)]
        lines.append(
            f"Answer: {draft.answer} · {quoted(draft.topic)} · {['', 'easy', 'medium', 'hard'][draft.difficulty]}"
        )
        lines.append(quoted(draft.explanation))
        return "\n".join(lines)
    return f"Step {draft.step}: {quoted(draft.text)}\n**This week:** {quoted(draft.action)}"
