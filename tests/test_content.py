"""Content loading: every bundled file validates, the schema is current, and bad packs say file:line."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import pytest

from bot.core.content import ContentLibrary, json_schema, validate_pack

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "pack" / "pack.yaml"


def test_bundled_pack_validates() -> None:
    pack, errors = validate_pack(ROOT / "content")
    assert errors == [], "\n".join(map(str, errors))
    assert pack is not None and len(pack.questions) > 0 and len(pack.steps) == 6


@pytest.mark.parametrize("path", sorted((ROOT / "content").rglob("*.yaml")), ids=lambda p: p.name)
def test_every_bundled_file_validates_alone(path: Path) -> None:
    from bot.core.content import _parse_file

    parsed, _, errors = _parse_file(path, str(path))
    assert errors == [] and parsed is not None, "\n".join(map(str, errors))


def test_schema_json_is_current() -> None:
    committed = (ROOT / "content" / "schema.json").read_text(encoding="utf-8")
    assert committed == json_schema(), "content/schema.json is stale: run `studybot content schema --write`"
    assert json.loads(committed)["title"] == "studybot content file"


def pack_with(tmp_path: Path, extra: str, name: str = "extra.yaml") -> Path:
    folder = tmp_path / "pack"
    folder.mkdir(exist_ok=True)
    shutil.copy(FIXTURE, folder / "base.yaml")
    (folder / name).write_text(textwrap.dedent(extra), encoding="utf-8")
    return folder


QUESTION = """\
questions:
  - id: {id}
    topic: alpha
    difficulty: {difficulty}
    prompt: A perfectly reasonable question here?
    choices: [One, Two, Three, Four]
    answer: {answer}
    explanation: Because the explanation says so, at length.
    source: general
"""


@pytest.mark.parametrize(
    ("extra", "line", "fragment"),
    [
        (
            "questions:\n  - id: x1\n    topic: a: b\n    difficulty: 1\n",
            3,
            "YAML syntax: mapping values are not allowed",
        ),
        (QUESTION.format(id="t-a", difficulty=1, answer="A"), 2, "duplicate id 't-a'"),
        (QUESTION.format(id="q-new", difficulty=1, answer="E"), 7, "answer"),
        (QUESTION.format(id="q-new", difficulty=5, answer="A"), 4, "difficulty"),
        (QUESTION.format(id="q-new", difficulty=1, answer="A") + "    colour: red\n", 10, "unknown field"),
        (
            QUESTION.format(id="q-new", difficulty=1, answer="A").replace("    source: general\n", ""),
            2,
            "source: missing",
        ),
        (
            QUESTION.format(id="q-new", difficulty=1, answer="A").replace("[One, Two, Three, Four]", "[One, Two]"),
            6,
            "choices",
        ),
        (
            QUESTION.format(id="q-new", difficulty=1, answer="A").replace("[One, Two, Three, Four]", "[a, b, a, c]"),
            6,
            "different",
        ),
        (
            QUESTION.format(id="q-new", difficulty=1, answer="A").replace(
                "A perfectly reasonable question here?", "''"
            ),
            5,
            "prompt",
        ),
        (
            QUESTION.format(id="q-new", difficulty=1, answer="A").replace("at length.", "x" * 700),
            8,
            "explanation",
        ),
        (
            "tips:\n  - id: tip-z\n    step: 9\n    text: Some long enough tip text here.\n    action: Do a thing now.\n    source: general\n",
            3,
            "step",
        ),
        ("- just\n- a list\n", 1, "mapping"),
        ("steps:\n  - {step: 2, title: Again, summary: Twice.}\n", 2, "step 2 is defined twice"),
    ],
)
def test_problems_are_reported_with_file_and_line(tmp_path: Path, extra: str, line: int, fragment: str) -> None:
    folder = pack_with(tmp_path, extra)
    pack, errors = validate_pack(folder)
    assert pack is None
    ours = [e for e in errors if e.file.endswith("extra.yaml")]
    assert ours, errors
    assert any(fragment in e.message and e.line == line for e in ours), [str(e) for e in ours]
    assert all(str(e).startswith(f"{e.file}:{e.line}: ") for e in errors)


def test_every_problem_is_reported_not_just_the_first(tmp_path: Path) -> None:
    bad = QUESTION.format(id="q-1", difficulty=9, answer="Z")
    folder = pack_with(tmp_path, bad)
    _, errors = validate_pack(folder)
    assert {"difficulty", "answer"} <= {e.message.split(":")[0] for e in errors}


def test_library_keeps_last_good_pack_when_reload_fails(tmp_path: Path) -> None:
    folder = pack_with(tmp_path, QUESTION.format(id="q-new", difficulty=1, answer="A"))
    lib = ContentLibrary.load(folder)
    assert lib.pack.question("q-new") is not None
    (folder / "extra.yaml").write_text("questions: [oops", encoding="utf-8")
    errors = lib.reload()
    assert errors and errors[0].message.startswith("YAML syntax")
    assert lib.pack.question("q-new") is not None, "a failed reload must keep serving the old pack"


def test_empty_folder_is_an_error(tmp_path: Path) -> None:
    pack, errors = validate_pack(tmp_path)
    assert pack is None and "no .yaml files" in errors[0].message


#: A "billion laughs" whose expansion is used as a mapping key: 9**7 * 3 strings once expanded (the
#: hostile test's 396-byte variant took 1.26 GB and 5 s to validate before anchors were refused).
ALIAS_BOMB = (
    'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    "b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
    "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
    "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
    "e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n"
    "f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
    "g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\n"
    "h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]\n"
    "? [*h,*h,*h]\n"
    ": boom\n"
)


def test_a_yaml_alias_bomb_is_refused_before_it_expands(tmp_path: Path) -> None:
    import tracemalloc

    folder = pack_with(tmp_path, ALIAS_BOMB, name="bomb.yaml")
    assert len(ALIAS_BOMB.encode()) < 400
    tracemalloc.start()
    try:
        pack, errors = validate_pack(folder)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert pack is None
    [error] = errors
    assert str(error) == f"{folder / 'bomb.yaml'}:1: anchors and aliases (& and *) are not allowed in content files"
    assert peak < 5_000_000, f"refusing the bomb allocated {peak:,} bytes"


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("questions: &q []\n", 1),  # an anchor alone is refused too: there is nothing to refer to it
        ("steps: []\nquestions:\n  - &x {id: a}\n", 3),
        ("questions: []\n<<: *nothing\n", 2),  # merge keys need aliases
    ],
)
def test_anchors_and_aliases_are_refused_with_file_and_line(tmp_path: Path, text: str, line: int) -> None:
    folder = pack_with(tmp_path, text, name="anchors.yaml")
    pack, errors = validate_pack(folder)
    assert pack is None
    [error] = [e for e in errors if e.file.endswith("anchors.yaml")]
    assert error.line == line and "anchors and aliases" in error.message and "\n" not in str(error)


def test_deep_nesting_is_a_one_line_error_not_a_recursion_crash(tmp_path: Path) -> None:
    deep = "questions: " + "[" * 50_000 + "]" * 50_000 + "\n"
    assert len(deep.encode()) < 1_000_000  # under the size limit: the depth limit must catch it
    folder = pack_with(tmp_path, deep, name="deep.yaml")
    pack, errors = validate_pack(folder)
    assert pack is None
    [error] = errors
    assert error.line == 1 and "nested deeper than 20 levels" in error.message


def test_a_file_over_the_size_limit_is_refused_unread(tmp_path: Path) -> None:
    folder = pack_with(tmp_path, "# " + "x" * 1_000_000 + "\n", name="huge.yaml")
    pack, errors = validate_pack(folder)
    assert pack is None and [e.message for e in errors] == ["file is larger than 1,000,000 bytes"]


def test_a_huge_file_is_refused_without_reading_it_into_memory(tmp_path: Path) -> None:
    import tracemalloc

    folder = pack_with(tmp_path, "# a comment\n", name="huge.yaml")
    with (folder / "huge.yaml").open("r+b") as f:
        f.truncate(300_000_000)  # sparse: no disk used, but reading it all would take 300 MB
    tracemalloc.start()
    try:
        pack, errors = validate_pack(folder)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert pack is None and [(e.line, e.message) for e in errors] == [(1, "file is larger than 1,000,000 bytes")]
    assert peak < 20_000_000, f"refusing a 300 MB file allocated {peak:,} bytes"


def test_the_quick_loader_reads_the_same_pack_as_the_line_numbered_one() -> None:
    """Start-up reads a good pack with libyaml; the result is exactly what the line-numbered loader gives."""
    from bot.core.content import _validate_pack

    for root in (ROOT / "content", FIXTURE.parent):
        quick, slow = _validate_pack(root, fast=True), _validate_pack(root, fast=False)
        assert quick == slow and quick[0] is not None and quick[1] == []


@pytest.mark.parametrize(
    ("text", "plain"),
    [
        ("questions:\n  - id: a\n    tags: [x, y]\n", True),
        ("questions: &q []\n", False),  # an anchor
        ("a: [1]\nb: *a\n", False),  # an alias (not even defined)
        ("a: 1\nb: 2\na: 3\n", False),  # a repeated key: libyaml would keep the last silently
        ("? [1, 2]\n: x\n", False),  # a complex key
        ("a: " + "[" * 21 + "]" * 21 + "\n", False),  # deeper than MAX_DEPTH
        ("a: " + "[" * 19 + "]" * 19 + "\n", True),
        ("- {a: 1}\n- {a: 1}\n", True),  # the same key in two mappings is fine
    ],
)
def test_only_plain_files_take_the_quick_loader(text: str, plain: bool) -> None:
    from bot.core.content import _plain_events_only

    assert _plain_events_only(text) is plain


def test_a_repeated_key_is_reported_with_its_line_not_silently_overwritten(tmp_path: Path) -> None:
    question = QUESTION.format(id="q-new", difficulty=1, answer="A")
    folder = pack_with(tmp_path, question.replace("    difficulty: 1\n", "    difficulty: 1\n    difficulty: 2\n"))
    pack, errors = validate_pack(folder)
    assert pack is None
    [error] = [e for e in errors if e.file.endswith("extra.yaml")]
    assert "duplicate key 'difficulty'" in error.message and error.line == 5, str(error)
