"""Deck files: reading YAML, CSV and JSON into deck items (validated whole), comparing them with a
deck, and writing a deck back out as YAML (or CSV). Pure: bytes in, items and problems out.

Every problem is ``row:column: message``: for YAML the line and the field, for CSV the row (the header
is row 1) and the column, for JSON the item (``questions[3]``) and the field.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml
from pydantic import ValidationError

from bot.core.content import LETTERS, Question, Tip, _describe, _line_of, _LineLoader, _Model
from bot.core.decks import Card, DeckItem, ItemData

MAX_BYTES = 1_000_000
MAX_ITEMS = 2_000
#: Problems listed in a dry-run report; the rest are counted.
MAX_SHOWN = 15
QUESTION_COLUMNS = ("prompt", "A", "B", "C", "D", "answer", "explanation", "topic", "difficulty")
TIP_COLUMNS = ("text", "action", "step")
OPTIONAL_COLUMNS = ("id", "source")
#: What a spreadsheet would run as a formula at the start of a cell.
FORMULA_START = ("=", "+", "-", "@")


class DeckFile(_Model):
    """One deck file: the shipped pack's ``questions`` and ``tips``, and open ``cards``."""

    questions: list[Question] = []  # noqa: RUF012 - pydantic copies defaults
    tips: list[Tip] = []  # noqa: RUF012
    cards: list[Card] = []  # noqa: RUF012


@dataclass(frozen=True, slots=True)
class Problem:
    row: str
    column: str
    message: str

    def __str__(self) -> str:
        return f"{self.row}:{self.column}: {self.message}"


@dataclass
class Parsed:
    """What a file held: the items (when there are no problems) and every problem found."""

    items: list[ItemData] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


@dataclass
class Plan:
    """An import compared with the deck: what is new, what changes (item id, content), what is the same."""

    new: list[ItemData] = field(default_factory=list)
    changed: list[tuple[int, ItemData]] = field(default_factory=list)
    unchanged: int = 0
    problems: list[Problem] = field(default_factory=list)


# ---------------------------------------------------------------------- reading


def detect_format(filename: str, data: bytes) -> str:
    """yaml, csv or json: from the file name's ending, else from the first characters."""
    lower = filename.lower()
    for ending, fmt in ((".yaml", "yaml"), (".yml", "yaml"), (".csv", "csv"), (".json", "json")):
        if lower.endswith(ending):
            return fmt
    head = data[:200].lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith((b"{", b"[")):
        return "json"
    first = head.split(b"\n", 1)[0]
    if first.count(b",") >= 2 and b":" not in first:
        return "csv"
    return "yaml"


def parse_file(filename: str, data: bytes) -> Parsed:
    """Read a deck file whole. Never raises for bad content: every problem is in ``problems``."""
    if len(data) > MAX_BYTES:
        return Parsed(problems=[Problem("1", "-", f"the file is larger than {MAX_BYTES:,} bytes (1 MB)")])
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        return Parsed(problems=[Problem(str(line), "-", "not valid UTF-8 (save the file as UTF-8)")])
    fmt = detect_format(filename, data)
    parsed = _parse_csv(text) if fmt == "csv" else _parse_json(text) if fmt == "json" else _parse_yaml(text)
    if not parsed.problems and len(parsed.items) > MAX_ITEMS:
        parsed.problems.append(Problem("1", "-", f"{len(parsed.items):,} items; a file may hold at most {MAX_ITEMS:,}"))
    if not parsed.problems:
        parsed.problems += _duplicates(parsed.items)
    if parsed.problems:
        parsed.items = []
    return parsed


def _duplicates(items: Sequence[ItemData]) -> list[Problem]:
    seen: dict[str, int] = {}
    out = []
    for n, it in enumerate(items, 1):
        if it.slug in seen:
            out.append(Problem(f"item {n}", "id", f"duplicate id {it.slug!r} (first as item {seen[it.slug]})"))
        else:
            seen[it.slug] = n
    return out


def _from_models(pf: DeckFile) -> list[ItemData]:
    return [
        *(question_data(q) for q in pf.questions),
        *(tip_data(t) for t in pf.tips),
        *(card_data(c) for c in pf.cards),
    ]


def question_data(q: Question) -> ItemData:
    return ItemData(
        kind="question", slug=q.id, source=q.source, topic=q.topic, difficulty=q.difficulty, prompt=q.prompt,
        choices=tuple(q.choices), answer=q.answer, explanation=q.explanation,
    )  # fmt: skip


def tip_data(t: Tip) -> ItemData:
    return ItemData(kind="tip", slug=t.id, source=t.source, step=t.step, text=t.text, action=t.action)


def card_data(c: Card) -> ItemData:
    return ItemData(
        kind="card", slug=c.id, source=c.source, topic=c.topic, front=c.front, back=c.back, tags=tuple(c.tags)
    )


def _parse_yaml(text: str) -> Parsed:
    try:
        data = yaml.load(text, Loader=_LineLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        line = str(mark.line + 1) if mark is not None else "1"
        problem = " ".join(str(getattr(e, "problem", None) or e).split())
        if "could not determine a constructor for the tag" in problem:
            tag = problem.rsplit("tag", 1)[-1].strip(" '")
            problem = f"the tag {tag} is not allowed: deck files are plain YAML (safe loader only)"
        elif not isinstance(e, yaml.composer.ComposerError) or "anchors" not in problem:
            problem = f"YAML syntax: {problem}"
        return Parsed(problems=[Problem(line, "-", problem)])
    if data is None:
        return Parsed()
    if not isinstance(data, dict):
        return Parsed(problems=[Problem("1", "-", "a deck file is a mapping with questions:, tips: and cards: lists")])
    try:
        return Parsed(_from_models(DeckFile.model_validate(data)))
    except ValidationError as e:
        return Parsed(problems=[_yaml_problem(data, err) for err in e.errors()])


def _yaml_problem(data: Any, err: Any) -> Problem:
    loc = [p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-"))]
    column = ".".join(str(p) for p in loc[2:]) or (str(loc[0]) if loc else "-")
    message = _describe({**err, "loc": ()})
    return Problem(str(_line_of(data, tuple(err["loc"]))), column, message)


def _parse_json(text: str) -> Parsed:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        return Parsed(problems=[Problem(str(e.lineno), str(e.colno), f"JSON syntax: {e.msg}")])
    if isinstance(data, list):  # a bare list of questions is the common hand-written form
        data = {"questions": data}
    if not isinstance(data, dict):
        return Parsed(
            problems=[Problem("1", "-", 'a deck file is an object with "questions", "tips" and "cards" lists')]
        )
    try:
        return Parsed(_from_models(DeckFile.model_validate(data)))
    except ValidationError as e:
        problems = []
        for err in e.errors():
            loc = list(err["loc"])
            row = (
                f"{loc[0]}[{int(loc[1]) + 1}]"
                if len(loc) >= 2 and isinstance(loc[1], int)
                else str(loc[0] if loc else "1")
            )
            column = ".".join(str(p) for p in loc[2:]) or "-"
            problems.append(Problem(row, column, _describe({**err, "loc": ()})))
        return Parsed(problems=problems)


def slug_for(kind: str, text: str) -> str:
    """An id for a CSV row without one: from its prompt (or tip text), so importing the same rows again
    finds them (and an edited explanation counts as changed, not new)."""
    digest = hashlib.sha256(" ".join(text.split()).casefold().encode("utf-8")).hexdigest()[:12]
    return f"{kind[0]}-{digest}"


def undefuse(cell: str) -> str:
    """A cell as the file means it: the apostrophe a spreadsheet export put before a formula start goes."""
    if len(cell) >= 2 and cell[0] == "'" and cell[1] in FORMULA_START:
        return cell[1:]
    return cell


def defuse(cell: str) -> str:
    """A cell a spreadsheet will show as text: an apostrophe before a formula start (= + - @)."""
    return (
        "'" + cell if cell.startswith(FORMULA_START) or (cell.startswith("'") and cell[1:2] in FORMULA_START) else cell
    )


def _parse_csv(text: str) -> Parsed:
    try:
        rows = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as e:
        return Parsed(problems=[Problem("1", "-", f"CSV: {e}")])
    rows = [r for r in rows if any(c.strip() for c in r)] if rows else []
    if not rows:
        return Parsed()
    header = [h.strip() for h in rows[0]]
    canon = {h.casefold(): h for h in (*QUESTION_COLUMNS, *TIP_COLUMNS, *OPTIONAL_COLUMNS)}
    names = [canon.get(h.casefold(), h) for h in header]
    if "prompt" in names:
        kind, required = "question", QUESTION_COLUMNS
    elif "text" in names:
        kind, required = "tip", TIP_COLUMNS  # type: ignore[assignment]
    else:
        return Parsed(
            problems=[
                Problem(
                    "1", "-", f"the header must be {','.join(QUESTION_COLUMNS)} (or for tips: {','.join(TIP_COLUMNS)})"
                )
            ]
        )
    problems = [Problem("1", n, "unknown column") for n in names if n not in (*required, *OPTIONAL_COLUMNS)]
    problems += [Problem("1", n, "missing column") for n in required if n not in names]
    problems += [Problem("1", n, "column given twice") for i, n in enumerate(names) if n in names[:i]]
    if problems:
        return Parsed(problems=problems)
    items: list[ItemData] = []
    line = 1
    for number, row in enumerate(rows[1:], 2):
        line = number
        if len(row) != len(names):
            problems.append(Problem(str(line), "-", f"{len(row)} cells; the header has {len(names)}"))
            continue
        cells = {n: undefuse(c.strip()) for n, c in zip(names, row, strict=True)}
        parsed = _csv_question(cells) if kind == "question" else _csv_tip(cells)
        if isinstance(parsed, ItemData):
            items.append(parsed)
        else:
            problems += [Problem(str(line), col, msg) for col, msg in parsed]
    return Parsed(items, problems)


_CHOICE_COLUMN = {f"choices.{i}": letter for i, letter in enumerate(LETTERS)}


def _csv_question(cells: dict[str, str]) -> ItemData | list[tuple[str, str]]:
    raw: dict[str, Any] = {
        "id": cells.get("id") or slug_for("question", cells["prompt"]),
        "topic": cells["topic"],
        "prompt": cells["prompt"],
        "choices": [cells[letter] for letter in LETTERS],
        "answer": cells["answer"].upper(),
        "explanation": cells["explanation"],
        "source": cells.get("source") or "general",
    }
    if not cells["difficulty"].isascii() or not cells["difficulty"].isdigit():
        return [("difficulty", "must be 1, 2 or 3")]
    raw["difficulty"] = int(cells["difficulty"])
    try:
        return question_data(Question.model_validate(raw))
    except ValidationError as e:
        return [_csv_error(err) for err in e.errors()]


def _csv_tip(cells: dict[str, str]) -> ItemData | list[tuple[str, str]]:
    if not cells["step"].isascii() or not cells["step"].isdigit():
        return [("step", "must be a career step from 1 to 6")]
    raw = {
        "id": cells.get("id") or slug_for("tip", cells["text"]),
        "step": int(cells["step"]),
        "text": cells["text"],
        "action": cells["action"],
        "source": cells.get("source") or "general",
    }
    try:
        return tip_data(Tip.model_validate(raw))
    except ValidationError as e:
        return [_csv_error(err) for err in e.errors()]


def _csv_error(err: Any) -> tuple[str, str]:
    where = ".".join(str(p) for p in err["loc"]) or "-"
    column = _CHOICE_COLUMN.get(where, "choices" if where == "choices" else where)
    return column, _describe({**err, "loc": ()})


# ---------------------------------------------------------------------- comparing with the deck


def plan_import(items: Iterable[ItemData], existing: Iterable[DeckItem]) -> Plan:
    """What importing ``items`` into a deck holding ``existing`` (retired ones included) would do:
    matched by id; a retired item given again comes back. A kind that changes is a problem."""
    by_slug = {it.data.slug: it for it in existing}
    plan = Plan()
    for n, data in enumerate(items, 1):
        old = by_slug.get(data.slug)
        if old is None:
            plan.new.append(data)
        elif old.data.kind != data.kind:
            plan.problems.append(
                Problem(f"item {n}", "id", f"{data.slug!r} is a {old.data.kind} in this deck, not a {data.kind}")
            )
        elif old.data == data and old.retired_at is None:
            plan.unchanged += 1
        else:
            plan.changed.append((old.id, data))
    return plan


def report(plan: Plan, problems: Sequence[Problem]) -> str:
    """``N new, M changed, K problems`` and at most `MAX_SHOWN` problems (plus how many more)."""
    every = [*problems, *plan.problems]
    head = f"{len(plan.new)} new, {len(plan.changed)} changed, {len(every)} problem{'s' if len(every) != 1 else ''}"
    if plan.unchanged:
        head += f" ({plan.unchanged} unchanged)"
    lines = [head]
    lines += [f"• {p}" for p in every[:MAX_SHOWN]]
    if len(every) > MAX_SHOWN:
        lines.append(f"… and {len(every) - MAX_SHOWN} more")
    return "\n".join(lines)


def encode_items(items: Sequence[ItemData], changed: Sequence[tuple[int, ItemData]]) -> str:
    """A plan's writes as JSON, to keep between the dry run and the confirmation."""

    def one(d: ItemData) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in _fields(d).items()}

    return json.dumps({"items": [one(d) for d in [*items, *(d for _, d in changed)]]}, ensure_ascii=False)


def decode_items(payload: str) -> list[ItemData]:
    """The inverse of `encode_items` (all items, new and changed together)."""
    out = []
    for raw in json.loads(payload)["items"]:
        raw["choices"] = tuple(raw.get("choices") or ())
        raw["tags"] = tuple(raw.get("tags") or ())
        out.append(ItemData(**raw))
    return out


def _fields(d: ItemData) -> dict[str, Any]:
    return {name: getattr(d, name) for name in ItemData.__slots__}


# ---------------------------------------------------------------------- writing


def _question_yaml(d: ItemData) -> dict[str, Any]:
    return {
        "id": d.slug, "topic": d.topic, "difficulty": d.difficulty, "prompt": d.prompt, "choices": list(d.choices),
        "answer": d.answer, "explanation": d.explanation, "source": d.source,
    }  # fmt: skip


def _tip_yaml(d: ItemData) -> dict[str, Any]:
    return {"id": d.slug, "step": d.step, "text": d.text, "action": d.action, "source": d.source}


def _card_yaml(d: ItemData) -> dict[str, Any]:
    out: dict[str, Any] = {"id": d.slug, "front": d.front, "back": d.back}
    if d.topic is not None:
        out["topic"] = d.topic
    out["source"] = d.source
    if d.tags:
        out["tags"] = list(d.tags)
    return out


def export_yaml(name: str, description: str, items: Sequence[ItemData]) -> str:
    """The deck as a YAML file in our schema (imports back unchanged)."""
    body: dict[str, Any] = {}
    for key, kind, fn in (
        ("questions", "question", _question_yaml),
        ("tips", "tip", _tip_yaml),
        ("cards", "card", _card_yaml),
    ):
        chosen = [fn(d) for d in items if d.kind == kind]
        if chosen:
            body[key] = chosen
    head = f"# studybot deck {name!r}" + (f": {' '.join(description.split())}" if description else "") + "\n"
    head += "# Import it again with /study deck import <name> (items are matched by id).\n"
    if not body:
        return head + "questions: []\n"
    return head + yaml.safe_dump(body, sort_keys=False, allow_unicode=True, width=100)


def export_csv(items: Sequence[ItemData], kind: str = "question") -> str:
    """Questions (or tips) as CSV in the import's columns plus id and source; cells a spreadsheet would
    run as formulas are defused with an apostrophe (an import takes it off again)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    if kind == "question":
        w.writerow([*QUESTION_COLUMNS, *OPTIONAL_COLUMNS])
        for d in items:
            if d.kind == "question":
                row = [
                    d.prompt or "",
                    *d.choices,
                    d.answer or "",
                    d.explanation or "",
                    d.topic or "",
                    str(d.difficulty),
                    d.slug,
                    d.source,
                ]
                w.writerow([defuse(c) for c in row])
    else:
        w.writerow([*TIP_COLUMNS, *OPTIONAL_COLUMNS])
        for d in items:
            if d.kind == "tip":
                w.writerow([defuse(c) for c in [d.text or "", d.action or "", str(d.step), d.slug, d.source]])
    return buf.getvalue()
