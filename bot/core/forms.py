"""Forms: when a command needs structured input, the core replies with a `Form` and gets the values back.

How a feature uses a form (the whole API; `bot.core.item_form` and `/study suggest` are worked examples):

1. Describe it: ``Form(name="suggest", arg="question", title="Suggest a question", fields=(Field(…), …))``.
   ``name`` routes the submission, ``arg`` (optional, ``[A-Za-z0-9_-]``, ≤ 40) says which one (a deck id …).
   At most 5 fields (Discord's limit), title ≤ 24 characters and labels ≤ 45 (Slack's and Discord's).
2. Register it once on the service: ``service.register_form("suggest", FormRoute(build, submit))``.
   ``build(ctx, arg)`` returns the `Form` for that arg — or replies that refuse (not allowed, a deck of
   another group): it runs again on every submission, so a crafted or stale submission is checked
   exactly like a fresh one. ``submit(ctx, form, values)`` gets values that passed the generic checks
   (known keys only, trimmed, required ones present, within ``max_len``) and returns the normal replies,
   or ``[form.invalid(values, {"key": "what is wrong"})]`` for field-level errors.
3. Open it from a command or button handler: ``return await service.open_form(ctx, "suggest", "question")``
   (or ``[Reply(text, form=form)]``).

What each front end does with a `Reply` whose ``form`` is set:

- Discord answers the interaction with a modal (callback type 9: text inputs, ``custom_id`` = the form's
  action id); the submit comes back as interaction type 5. Field errors: Discord does not let a modal
  submit be answered with another modal, so the member gets a private message listing each field's
  error and a button that reopens the form with what they typed.
- Slack opens a modal with ``views.open`` (the request's ``trigger_id``); the submit is a
  ``view_submission``, acknowledged with ``response_action: errors`` (shown under each field) when bad.
- The console asks field by field; a field's error is shown and the field asked again; a blank line on a
  required field, or end of input, cancels.

A submission reaches the core as an `Inbound` whose ``action`` is `Form.action` (``sb:form:<name>[:<arg>]``)
and whose ``values`` maps field keys to what was typed.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Literal

from bot.core import markup
from bot.core.messages import Reply

if TYPE_CHECKING:
    from bot.core.service import Context

FieldStyle = Literal["short", "paragraph"]

PREFIX = "sb:form:"
#: Discord shows at most 5 inputs in a modal.
MAX_FIELDS = 5
#: Slack's limit on a modal title (Discord allows 45).
MAX_TITLE = 24
#: Discord's limit on an input's label (Slack allows 2,000).
MAX_LABEL = 45
#: Discord's limit on a placeholder (Slack allows 150).
MAX_PLACEHOLDER = 100
#: Slack's limit on a plain-text input (Discord allows 4,000).
MAX_LEN = 3000

_NAME = re.compile(r"[a-z][a-z0-9-]{0,19}")
_ARG = re.compile(r"[A-Za-z0-9_-]{1,40}")
_KEY = re.compile(r"[a-z][a-z0-9_]{0,19}")


@dataclass(frozen=True, slots=True)
class Field:
    """One text input. ``short`` is one line, ``paragraph`` several. ``default`` prefills it."""

    key: str
    label: str
    style: FieldStyle = "short"
    required: bool = True
    max_len: int = 200
    placeholder: str = ""
    default: str = ""

    def __post_init__(self) -> None:
        if not _KEY.fullmatch(self.key):
            raise ValueError(f"field key {self.key!r} must match {_KEY.pattern}")
        if not 0 < len(self.label) <= MAX_LABEL:
            raise ValueError(f"field label {self.label!r} must be 1-{MAX_LABEL} characters")
        if not 0 < self.max_len <= MAX_LEN:
            raise ValueError(f"max_len of {self.key!r} must be 1-{MAX_LEN}")
        if len(self.placeholder) > MAX_PLACEHOLDER:
            raise ValueError(f"placeholder of {self.key!r} is longer than {MAX_PLACEHOLDER}")
        if len(self.default) > self.max_len:
            raise ValueError(f"default of {self.key!r} is longer than its max_len")


@dataclass(frozen=True, slots=True)
class Form:
    """A form to fill in. ``errors`` (field key → message) is set when it is offered again after a
    submission with problems; the fields' ``default`` then hold what the member typed."""

    name: str
    title: str
    fields: tuple[Field, ...]
    arg: str = ""
    submit_label: str = "Submit"
    errors: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name):
            raise ValueError(f"form name {self.name!r} must match {_NAME.pattern}")
        if self.arg and not _ARG.fullmatch(self.arg):
            raise ValueError(f"form arg {self.arg!r} must match {_ARG.pattern}")
        if not 0 < len(self.title) <= MAX_TITLE:
            raise ValueError(f"form title {self.title!r} must be 1-{MAX_TITLE} characters")
        if not 0 < len(self.submit_label) <= MAX_TITLE:
            raise ValueError(f"submit label must be 1-{MAX_TITLE} characters")
        if not 0 < len(self.fields) <= MAX_FIELDS:
            raise ValueError(f"a form has 1-{MAX_FIELDS} fields")
        if len({f.key for f in self.fields}) != len(self.fields):
            raise ValueError("field keys must be different")

    @property
    def action(self) -> str:
        """The id the submission comes back with: ``sb:form:<name>`` or ``sb:form:<name>:<arg>``."""
        return f"{PREFIX}{self.name}:{self.arg}" if self.arg else f"{PREFIX}{self.name}"

    def field(self, key: str) -> Field | None:
        return next((f for f in self.fields if f.key == key), None)

    def prefilled(self, values: Mapping[str, str]) -> Form:
        """This form with ``values`` as the fields' defaults (cut to each field's ``max_len``)."""
        fields = tuple(replace(f, default=values.get(f.key, f.default)[: f.max_len]) for f in self.fields)
        return replace(self, fields=fields)

    def invalid(self, values: Mapping[str, str], errors: Mapping[str, str]) -> Reply:
        """The reply that offers this form again with field-level ``errors`` and what was typed.

        Its text lists the errors (``Label: message``), for front ends that show it as a message."""
        unknown = set(errors) - {f.key for f in self.fields}
        if unknown:
            raise ValueError(f"errors for unknown fields {sorted(unknown)}")
        again = replace(self.prefilled(values), errors=dict(errors))
        lines = ["Please fix the form:"]
        lines += [f"• **{f.label}**: {errors[f.key]}" for f in self.fields if f.key in errors]
        return Reply("\n".join(lines), private=True, form=again)


@dataclass(frozen=True, slots=True)
class FormRoute:
    """What the service needs to serve one form name: see the module docstring."""

    build: Callable[[Context, str], Awaitable[Form | list[Reply]]]
    submit: Callable[[Context, Form, dict[str, str]], Awaitable[list[Reply]]]


def parse_action(action_id: str) -> tuple[str, str] | None:
    """``(name, arg)`` of a form's action id; None when it is not one (or is malformed)."""
    if not action_id.startswith(PREFIX):
        return None
    name, _, arg = action_id[len(PREFIX) :].partition(":")
    if not _NAME.fullmatch(name) or (arg and not _ARG.fullmatch(arg)):
        return None
    return name, arg


def clean(value: str) -> str:
    """A typed value as the core keeps it: line breaks made ``\\n``, outer whitespace trimmed."""
    return value.replace("\r\n", "\n").replace("\r", "\n").strip()


def check_field(f: Field, value: str) -> str | None:
    """The generic problem with one cleaned value (missing, too long), or None."""
    if not value:
        return "This field is required." if f.required else None
    if len(value) > f.max_len:
        return f"At most {f.max_len} characters (this has {len(value)})."
    return None


def check(form: Form, raw: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """``(values, errors)``: the form's fields only, cleaned, and the generic problems by key."""
    values = {f.key: clean(str(raw.get(f.key, ""))) for f in form.fields}
    errors = {f.key: e for f in form.fields if (e := check_field(f, values[f.key])) is not None}
    return values, errors


def quoted(text: str) -> str:
    """Member-typed text to show inside a reply: marked so that every front end escapes it (no pings,
    no markup), line by line so that its line breaks survive."""
    return "\n".join(markup.name(line) for line in text.split("\n"))
