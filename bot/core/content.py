"""Content: the question, tip, interview-prompt and career-step models, and the pack loader.

A pack is a folder of YAML files; each file is a mapping with any of the lists ``questions``,
``tips``, ``interview`` and ``steps``. Every problem is reported as ``file:line: message``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator

LETTERS = ("A", "B", "C", "D")
STEP_NUMBERS = range(1, 7)
MAX_FILE_BYTES = 1_000_000
#: Deepest nesting of lists and mappings in a content file (the pack's own files use 4).
MAX_DEPTH = 20

ItemId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{1,47}$")]
Topic = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{0,31}$")]
Source = Annotated[str, StringConstraints(pattern=r"^(general|[^#\s]+#\S.{0,199})$")]
StepNo = Annotated[int, Field(ge=1, le=6, strict=True)]


def _text(lo: int, hi: int) -> Any:
    return Annotated[str, StringConstraints(strip_whitespace=True, min_length=lo, max_length=hi)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Question(_Model):
    """A multiple-choice question: exactly four distinct choices, one correct letter."""

    id: ItemId
    topic: Topic
    difficulty: Annotated[int, Field(ge=1, le=3)]
    prompt: _text(10, 400)  # type: ignore[valid-type]
    choices: Annotated[list[_text(1, 160)], Field(min_length=4, max_length=4)]  # type: ignore[valid-type]
    answer: Literal["A", "B", "C", "D"]
    explanation: _text(20, 600)  # type: ignore[valid-type]
    source: Source

    @field_validator("choices")
    @classmethod
    def _distinct(cls, v: list[str]) -> list[str]:
        if len({c.casefold() for c in v}) != len(v):
            raise ValueError("the four choices must all be different")
        return v

    def choice(self, letter: str) -> str:
        return str(self.choices[LETTERS.index(letter)])


class Tip(_Model):
    """A career-step tip with one concrete action to take this week."""

    id: ItemId
    step: StepNo
    text: _text(20, 500)  # type: ignore[valid-type]
    action: _text(10, 300)  # type: ignore[valid-type]
    source: Source


class InterviewPrompt(_Model):
    """An interview-practice question and the points a strong answer covers."""

    id: ItemId
    prompt: _text(10, 400)  # type: ignore[valid-type]
    covers: Annotated[list[_text(5, 200)], Field(min_length=2, max_length=8)]  # type: ignore[valid-type]
    source: Source


class Step(_Model):
    """One of the six career-path steps."""

    step: StepNo
    title: _text(1, 60)  # type: ignore[valid-type]
    summary: _text(1, 400)  # type: ignore[valid-type]


class PackFile(_Model):
    """The shape of one YAML file in a pack (this is what `content/schema.json` describes)."""

    questions: list[Question] = []
    tips: list[Tip] = []
    interview: list[InterviewPrompt] = []
    steps: list[Step] = []


@dataclass(frozen=True, slots=True)
class ContentError:
    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


class ContentInvalid(Exception):
    """Raised by `load_pack` when a pack has problems; ``errors`` lists every one."""

    def __init__(self, errors: list[ContentError]) -> None:
        self.errors = errors
        super().__init__("\n".join(str(e) for e in errors))


@dataclass(frozen=True)
class ContentPack:
    """A validated, immutable content pack."""

    questions: tuple[Question, ...]
    tips: tuple[Tip, ...]
    interview: tuple[InterviewPrompt, ...]
    steps: tuple[Step, ...]
    source: str = ""
    _by_id: dict[str, Question] = field(default_factory=dict, repr=False)
    _tips_by_id: dict[str, Tip] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._by_id.update({q.id: q for q in self.questions})
        self._tips_by_id.update({t.id: t for t in self.tips})

    def question(self, qid: str) -> Question | None:
        return self._by_id.get(qid)

    def tip(self, tid: str) -> Tip | None:
        return self._tips_by_id.get(tid)

    def tips_for_step(self, step: int) -> list[Tip]:
        return [t for t in self.tips if t.step == step]

    def step(self, n: int) -> Step:
        return next(s for s in self.steps if s.step == n)

    @property
    def topics(self) -> list[str]:
        return sorted({q.topic for q in self.questions})

    def summary(self) -> str:
        return (
            f"{len(self.questions)} questions in {len(self.topics)} topics, {len(self.tips)} tips, "
            f"{len(self.interview)} interview prompts, {len(self.steps)} career steps"
        )


# ---------------------------------------------------------------- YAML with line numbers


class _LineDict(dict[str, Any]):
    """A mapping that remembers the line of itself and of each key (1-based)."""

    line: int = 0
    key_lines: dict[str, int]


class RefusedYaml(yaml.composer.ComposerError):
    """A YAML construct content files may not use (raised while composing, before objects are built)."""


class _LineLoader(yaml.SafeLoader):
    """The safe loader with line numbers, refusing what a hostile file could use to exhaust memory or
    the stack: anchors and aliases (a 396-byte "billion laughs" used as a mapping key took 1.26 GB and
    5 s to load; content files have no use for them) and nesting deeper than `MAX_DEPTH`. Both are
    refused while composing nodes, before any object is built."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise RefusedYaml(
                None, None, "anchors and aliases (& and *) are not allowed in content files", event.start_mark
            )
        if self._depth >= MAX_DEPTH:
            raise RefusedYaml(None, None, f"nested deeper than {MAX_DEPTH} levels", event.start_mark)
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> _LineDict:
    d = _LineDict()
    d.line = node.start_mark.line + 1
    d.key_lines = {}
    loader.flatten_mapping(node)
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, str):
            key = str(key)
        if key in d:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        d[key] = loader.construct_object(value_node, deep=True)
        d.key_lines[key] = key_node.start_mark.line + 1
    return d


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


_CLoader: type[Any] | None = getattr(yaml, "CSafeLoader", None)  # libyaml, when PyYAML was built with it


def _plain_events_only(text: str) -> bool:
    """Whether a file is safe for libyaml's loader: no anchor or alias, nesting within `MAX_DEPTH`, and no
    mapping key twice (libyaml would keep the last). Reads the C parser's events (a few ms for the
    whole shipped pack); anything else goes to `_LineLoader`, which refuses it with a line number."""
    assert _CLoader is not None
    stack: list[set[str] | None] = []  # a mapping's keys so far, or None for a sequence
    expect_key: list[bool] = []
    for event in yaml.parse(text, Loader=_CLoader):
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            return False
        node = isinstance(event, (yaml.ScalarEvent, yaml.MappingStartEvent, yaml.SequenceStartEvent))
        if node and stack and (keys := stack[-1]) is not None:  # inside a mapping: a key or its value
            if expect_key[-1]:
                if not isinstance(event, yaml.ScalarEvent) or event.value in keys:
                    return False  # a complex or repeated key
                keys.add(event.value)
            expect_key[-1] = not expect_key[-1]
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            if len(stack) >= MAX_DEPTH:
                return False
            stack.append(set() if isinstance(event, yaml.MappingStartEvent) else None)
            expect_key.append(True)
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            stack.pop()
            expect_key.pop()
    return True


def _line_of(data: Any, loc: tuple[int | str, ...]) -> int:
    """Best line for a pydantic error location inside a loaded file."""
    line = getattr(data, "line", 1)
    node = data
    for part in loc:
        if isinstance(node, _LineDict) and isinstance(part, str):
            line = node.key_lines.get(part, node.line)
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
            line = getattr(node, "line", line)
        else:
            break
    return line


def _describe(err: Any) -> str:
    loc = [p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-"))]
    where = ".".join(str(p) for p in loc[2:]) or str(loc[0] if loc else "")
    msg = str(err["msg"])
    if err["type"] == "extra_forbidden":
        msg = "unknown field (not allowed here)"
    elif err["type"] == "missing":
        msg = "missing required field"
    elif msg.startswith("Value error, "):
        msg = msg.removeprefix("Value error, ")
    return f"{where}: {msg}" if where else msg


def _yaml_files(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    return sorted(p for p in root.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())


def _parse_file(path: Path, shown: str, fast: bool = False) -> tuple[PackFile | None, Any, list[ContentError]]:
    """One content file, checked: ``fast`` tries libyaml first (about 8x quicker on the shipped pack) and
    returns None as the file's data, without line numbers, so a caller that finds a problem must parse
    again without it to report lines."""
    try:
        with path.open("rb") as f:  # never more than the limit (and one byte to tell it was exceeded)
            raw = f.read(MAX_FILE_BYTES + 1)
    except OSError as e:
        return None, None, [ContentError(shown, 1, f"cannot read file: {e.strerror}")]
    if len(raw) > MAX_FILE_BYTES:
        return None, None, [ContentError(shown, 1, f"file is larger than {MAX_FILE_BYTES:,} bytes")]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return None, None, [ContentError(shown, text_line(raw, e.start), "not valid UTF-8")]
    if fast and _CLoader is not None:
        try:
            if _plain_events_only(text):
                return PackFile.model_validate(yaml.load(text, Loader=_CLoader)), None, []
        except (yaml.YAMLError, ValidationError):
            pass  # the line-numbered loader below says where
    try:
        data = yaml.load(text, Loader=_LineLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        line = mark.line + 1 if mark is not None else 1
        problem = " ".join(str(getattr(e, "problem", None) or e).split())  # one line
        message = problem if isinstance(e, RefusedYaml) else f"YAML syntax: {problem}"
        return None, None, [ContentError(shown, line, message)]
    if data is None:
        return PackFile(), data, []
    if not isinstance(data, dict):
        return None, data, [ContentError(shown, 1, "a content file must be a mapping of lists")]
    try:
        return PackFile.model_validate(data), data, []
    except ValidationError as e:
        errors = [ContentError(shown, _line_of(data, err["loc"]), _describe(err)) for err in e.errors()]
        return None, data, errors


def text_line(raw: bytes, offset: int) -> int:
    return raw[:offset].count(b"\n") + 1


def _item_line(data: Any, key: str, index: int) -> int:
    try:
        return int(data[key][index].line)
    except (AttributeError, IndexError, KeyError, TypeError):
        return 1


def validate_pack(root: Path | str) -> tuple[ContentPack | None, list[ContentError]]:
    """Load and check a pack; returns the pack (None on any error) and every problem found.

    A pack is read with libyaml first; only a pack with a problem is read again with the line-numbered
    loader, so that every problem names its line (start-up of a good pack: ~0.7 s -> ~0.1 s)."""
    pack, errors = _validate_pack(Path(root), fast=True)
    if errors:
        pack, errors = _validate_pack(Path(root), fast=False)
    return pack, errors


def _validate_pack(root: Path, *, fast: bool) -> tuple[ContentPack | None, list[ContentError]]:
    if not root.exists():
        return None, [ContentError(str(root), 0, "no such file or folder")]
    files = _yaml_files(root)
    if not files:
        return None, [ContentError(str(root), 0, "no .yaml files found")]
    errors: list[ContentError] = []
    questions: list[Question] = []
    tips: list[Tip] = []
    interview: list[InterviewPrompt] = []
    steps: list[Step] = []
    seen_ids: dict[str, str] = {}
    seen_steps: dict[int, str] = {}
    tip_steps: list[tuple[int, str]] = []
    for path in files:
        shown = str(path)
        parsed, data, file_errors = _parse_file(path, shown, fast)
        errors += file_errors
        if parsed is None:
            continue
        keyed = [
            ("questions", [q.id for q in parsed.questions]),
            ("tips", [t.id for t in parsed.tips]),
            ("interview", [p.id for p in parsed.interview]),
        ]
        for key, item_ids in keyed:
            for i, item_id in enumerate(item_ids):
                where = f"{shown}:{_item_line(data, key, i)}"
                if item_id in seen_ids:
                    errors.append(
                        ContentError(
                            shown,
                            _item_line(data, key, i),
                            f"duplicate id {item_id!r} (first at {seen_ids[item_id]})",
                        )
                    )
                else:
                    seen_ids[item_id] = where
        for i, st in enumerate(parsed.steps):
            if st.step in seen_steps:
                errors.append(
                    ContentError(
                        shown,
                        _item_line(data, "steps", i),
                        f"step {st.step} is defined twice (first at {seen_steps[st.step]})",
                    )
                )
            seen_steps[st.step] = f"{shown}:{_item_line(data, 'steps', i)}"
        tip_steps += [(t.step, f"{shown}:{_item_line(data, 'tips', i)}") for i, t in enumerate(parsed.tips)]
        questions += parsed.questions
        tips += parsed.tips
        interview += parsed.interview
        steps += parsed.steps
    if not errors:
        missing = [n for n in STEP_NUMBERS if n not in seen_steps]
        if missing:
            errors.append(ContentError(str(root), 0, f"the pack must define career steps 1-6; missing {missing}"))
        for step, where in tip_steps:
            if step not in seen_steps:
                file, _, line = where.rpartition(":")
                errors.append(ContentError(file, int(line), f"tip refers to unknown step {step}"))
        if not questions:
            errors.append(ContentError(str(root), 0, "the pack has no questions"))
    if errors:
        return None, errors
    steps.sort(key=lambda s: s.step)
    pack = ContentPack(tuple(questions), tuple(tips), tuple(interview), tuple(steps), source=str(root))
    return pack, []


def load_pack(root: Path | str) -> ContentPack:
    """Load a pack; raises `ContentInvalid` listing every problem."""
    pack, errors = validate_pack(root)
    if pack is None:
        raise ContentInvalid(errors)
    return pack


def json_schema() -> str:
    """The JSON Schema of one content file, as committed in `content/schema.json`."""
    schema = PackFile.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "studybot content file"
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


class ContentLibrary:
    """Holds the pack being served; a failed reload keeps the last good pack."""

    def __init__(self, root: Path | str, pack: ContentPack) -> None:
        self.root = Path(root)
        self.pack = pack

    @classmethod
    def load(cls, root: Path | str) -> ContentLibrary:
        return cls(root, load_pack(root))

    def reload(self) -> list[ContentError]:
        """Re-read the pack from disk; on errors, keep serving the old one and return them."""
        pack, errors = validate_pack(self.root)
        if pack is not None:
            self.pack = pack
        return errors
