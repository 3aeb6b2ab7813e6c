"""Checks on the bundled TPM content set in content/ (issues 3 and 17).

These read the YAML directly with PyYAML, so they hold even if the loader changes; the schema itself
is the loader's job. Checks that need the source articles in ../shared skip, saying so, only when
that folder is not beside the repository (or beside a folder above it, as for a git worktree), and
never when CI=true.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
CONTENT = REPO / "content"
# ../shared beside the project root; a git worktree nested one level deeper finds it further up.
SHARED = next((p / "shared" for p in REPO.parents if (p / "shared" / "seeds").is_dir()), REPO.parent / "shared")
SEEDS = SHARED / "seeds"
OVERLAP_TOOL = SHARED / "tools" / "seed_overlap.py"

LETTERS = ("A", "B", "C", "D")
MAX_LETTER_SHARE = 0.35
MAX_GENERAL_SHARE = 0.40
# No option-length rank (longest, second-longest, ...) may hold the key in more than this share.
MAX_LENGTH_RANK_SHARE = 0.35
MIN_QUESTIONS = 150
MIN_APPLIED = 50
MIN_INTERVIEW = 30
MIN_TIPS_PER_STEP = 8
# Two stems, or two tip actions, may not share a run of this many words.
SHARED_RUN = 5
# A section label for text before a document's first heading (see content/README.md).
INTRO_SECTION = "Introduction"

# Figures that carry a currency sign, a percent sign or a thousands separator.
_NUM = r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?"
FIGURE = re.compile(rf"\$\s?{_NUM}|{_NUM}\s?%|\d{{1,3}}(?:,\d{{3}})+(?:\.\d+)?")
# An applied (scenario) stem sets up a situation in a sentence of its own, then asks the question:
# a sentence end (not an abbreviation such as "U.S.") followed by a capitalized sentence and a "?".
SITUATION = re.compile(r"[a-z0-9%)'\"][.!]['\"]?\s+[A-Z].*\?\s*$")
WORD = re.compile(r"[a-z0-9$%.']+")


def _yaml_files() -> list[Path]:
    return sorted(p for p in CONTENT.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())


def _load() -> dict[str, list[tuple[Path, dict[str, Any]]]]:
    """Every item of every kind, each with the file it came from."""
    items: dict[str, list[tuple[Path, dict[str, Any]]]] = {
        "questions": [],
        "tips": [],
        "interview": [],
        "steps": [],
    }
    for path in _yaml_files():
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        assert isinstance(data, dict), f"{path.relative_to(REPO)}: top level must be a mapping"
        unknown = set(data) - set(items)
        assert not unknown, f"{path.relative_to(REPO)}: unknown top-level keys {sorted(unknown)}"
        for kind, entries in data.items():
            assert isinstance(entries, list), f"{path.relative_to(REPO)}: {kind} must be a list"
            for entry in entries:
                assert isinstance(entry, dict), f"{path.relative_to(REPO)}: a {kind} item is not a mapping"
                items[kind].append((path, entry))
    return items


PACK = _load()
QUESTIONS = [q for _, q in PACK["questions"]]
TIPS = [t for _, t in PACK["tips"]]
INTERVIEW = [p for _, p in PACK["interview"]]
STEPS = [s for _, s in PACK["steps"]]


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def _label(item: dict[str, Any]) -> str:
    return str(item.get("id", f"step {item.get('step')}"))


def _norm(text: str) -> str:
    return " ".join(text.split()).casefold()


def _need_shared() -> None:
    if not SEEDS.is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but the source articles are missing: {SEEDS}")
        pytest.skip(f"../shared not beside the repo: {SEEDS} is missing")


def _words(text: str) -> list[str]:
    return [w.strip(".'") for w in WORD.findall(text.casefold()) if w.strip(".'")]


def _runs(text: str, n: int = SHARED_RUN) -> set[tuple[str, ...]]:
    w = _words(text)
    return {tuple(w[i : i + n]) for i in range(len(w) - n + 1)}


def _is_applied(q: dict[str, Any]) -> bool:
    return bool(SITUATION.search(str(q.get("prompt", ""))))


def _key_length_rank(q: dict[str, Any]) -> int:
    """1 when the key is the longest option, 4 when it is the shortest; a tie counts as the longer rank."""
    choices = [str(c) for c in q["choices"]]
    key = choices[LETTERS.index(q["answer"])]
    return 1 + sum(len(c) > len(key) for c in choices)


def _shared_runs(texts: dict[str, str]) -> list[str]:
    """Pairs of items whose texts share a run of `SHARED_RUN` words, with one such run each."""
    first: dict[tuple[str, ...], str] = {}
    found: dict[tuple[str, str], str] = {}
    for label, text in texts.items():
        for run in sorted(_runs(text)):
            other = first.setdefault(run, label)
            if other != label:
                found.setdefault((other, label), " ".join(run))
    return [f"{a} and {b} share '{run}'" for (a, b), run in sorted(found.items())]


# ------------------------------------------------------------------ counts


def test_enough_questions() -> None:
    assert len(QUESTIONS) >= MIN_QUESTIONS, f"only {len(QUESTIONS)} questions; the set needs at least {MIN_QUESTIONS}"


def test_enough_applied_questions() -> None:
    applied = [q["id"] for q in QUESTIONS if _is_applied(q)]
    assert len(applied) >= MIN_APPLIED, (
        f"only {len(applied)} applied questions (a situation sentence, then the question); "
        f"the set needs at least {MIN_APPLIED}: {applied}"
    )


def test_enough_interview_prompts() -> None:
    assert len(INTERVIEW) >= MIN_INTERVIEW, (
        f"only {len(INTERVIEW)} interview prompts; the set needs at least {MIN_INTERVIEW}"
    )


def test_every_interview_prompt_names_a_red_flag() -> None:
    missing = [_label(p) for p in INTERVIEW if not any(str(c).startswith("Red flag: ") for c in p.get("covers") or [])]
    assert not missing, f"interview prompts without a 'Red flag: ...' point to avoid: {missing}"


def test_six_steps_each_once() -> None:
    numbers = Counter(s.get("step") for s in STEPS)
    found = sorted(numbers.elements(), key=str)
    assert numbers == Counter(range(1, 7)), f"career steps must be 1-6, each once; found {found}"


def test_enough_tips_for_every_step() -> None:
    assert len(TIPS) >= 6 * MIN_TIPS_PER_STEP, f"only {len(TIPS)} tips; the set needs at least {6 * MIN_TIPS_PER_STEP}"
    per_step = Counter(t.get("step") for t in TIPS)
    short = {step: per_step.get(step, 0) for step in range(1, 7) if per_step.get(step, 0) < MIN_TIPS_PER_STEP}
    assert not short, f"steps with fewer than {MIN_TIPS_PER_STEP} tips (step: count): {short}"
    unknown = sorted({str(s) for s in per_step} - {str(n) for n in range(1, 7)})
    assert not unknown, f"tips refer to steps that do not exist: {unknown}"


# ------------------------------------------------------------------ identity and shape


def test_ids_unique_across_files() -> None:
    seen: dict[str, Path] = {}
    clashes = []
    for kind in ("questions", "tips", "interview"):
        for path, item in PACK[kind]:
            item_id = item.get("id")
            assert item_id, f"{path.relative_to(REPO)}: a {kind} item has no id"
            if item_id in seen:
                clashes.append(f"{item_id} ({seen[item_id].name} and {path.name})")
            seen.setdefault(item_id, path)
    assert not clashes, f"duplicate ids: {clashes}"


def test_questions_have_four_distinct_choices_and_a_letter() -> None:
    bad = []
    for q in QUESTIONS:
        choices = q.get("choices")
        if not isinstance(choices, list) or len(choices) != 4:
            bad.append(f"{_label(q)}: needs exactly 4 choices")
        elif len({_norm(str(c)) for c in choices}) != 4:
            bad.append(f"{_label(q)}: choices repeat")
        if q.get("answer") not in LETTERS:
            bad.append(f"{_label(q)}: answer {q.get('answer')!r} is not one of A-D")
        if q.get("difficulty") not in (1, 2, 3):
            bad.append(f"{_label(q)}: difficulty {q.get('difficulty')!r} is not 1, 2 or 3")
    assert not bad, "; ".join(bad)


def test_question_topic_matches_its_file() -> None:
    wrong = [
        f"{q.get('id')} has topic {q.get('topic')!r} in {path.name}"
        for path, q in PACK["questions"]
        if path.parent.name == "questions" and q.get("topic") != path.stem
    ]
    assert not wrong, f"one topic per file, named after it: {wrong}"


def test_no_answer_letter_dominates() -> None:
    counts = Counter(q.get("answer") for q in QUESTIONS)
    limit = MAX_LETTER_SHARE * len(QUESTIONS)
    heavy = {letter: n for letter, n in counts.items() if n > limit}
    assert not heavy, (
        f"answer letters over {MAX_LETTER_SHARE:.0%} of {len(QUESTIONS)} questions: {heavy} "
        f"(all counts: {dict(sorted(counts.items()))})"
    )


def test_general_questions_are_a_minority() -> None:
    general = [q["id"] for q in QUESTIONS if q.get("source") == "general"]
    share = len(general) / len(QUESTIONS)
    assert share <= MAX_GENERAL_SHARE, (
        f"{len(general)} of {len(QUESTIONS)} questions ({share:.0%}) are 'general', "
        f"over {MAX_GENERAL_SHARE:.0%}: {general}"
    )


# ------------------------------------------------------------------ no cues, no near-duplicates


def test_no_option_length_rank_gives_the_key_away() -> None:
    ranks = Counter(_key_length_rank(q) for q in QUESTIONS)
    limit = MAX_LENGTH_RANK_SHARE * len(QUESTIONS)
    names = {1: "longest", 2: "second-longest", 3: "third-longest", 4: "shortest"}
    heavy = {names[r]: n for r, n in ranks.items() if n > limit}
    assert not heavy, (
        f"picking the option of one length rank would score over {MAX_LENGTH_RANK_SHARE:.0%}: {heavy} "
        f"(keys per rank: { {names[r]: ranks[r] for r in sorted(ranks)} })"
    )


def test_only_options_come_at_least_in_pairs() -> None:
    lone = [
        _label(q)
        for q in QUESTIONS
        if sum(str(c).split(" ", 1)[0].casefold() == "only" for c in q.get("choices") or []) == 1
    ]
    assert not lone, f"questions where exactly one option starts with 'Only' (a cue either way): {lone}"


def test_no_two_stems_share_a_five_word_run() -> None:
    shared = _shared_runs({_label(q): str(q.get("prompt", "")) for q in QUESTIONS})
    assert not shared, f"near-duplicate stems (shared {SHARED_RUN}-word runs): {shared}"


def test_every_topic_has_two_difficulty_levels() -> None:
    levels: dict[str, set[int]] = {}
    for q in QUESTIONS:
        levels.setdefault(str(q.get("topic")), set()).add(q.get("difficulty", 0))
    flat = {topic: sorted(found) for topic, found in levels.items() if len(found) < 2}
    assert not flat, f"topics whose questions all have one difficulty: {flat}"


def test_hard_questions_are_applied() -> None:
    recall = [_label(q) for q in QUESTIONS if q.get("difficulty") == 3 and not _is_applied(q)]
    assert not recall, f"difficulty 3 is for applying or distinguishing, set up by a situation: {recall}"


def test_no_two_tips_share_an_exercise() -> None:
    shared = _shared_runs({_label(t): str(t.get("action", "")) for t in TIPS})
    assert not shared, f"tip actions that repeat one another ({SHARED_RUN}-word runs): {shared}"


def test_source_format() -> None:
    bad = []
    for kind in ("questions", "tips", "interview"):
        for _, item in PACK[kind]:
            source = item.get("source")
            if source == "general":
                continue
            name, sep, section = str(source).partition("#")
            if not (sep and name.endswith(".txt") and "/" not in name and section.strip()):
                bad.append(f"{_label(item)}: {source!r}")
    assert not bad, f"source must be 'general' or '<seed file>#<section>': {bad}"


def test_the_articles_main_facts_are_covered() -> None:
    text = _norm(" ".join(s for q in QUESTIONS for s in _strings(q)))
    facts = [
        "scrum master",
        "devops",
        "waterfall",
        "agile",
        "kanban",
        "gantt",
        "principal",
        "project management institute",
        "project coordinator",
        "project scheduler",
        "glassdoor",
        "6%",
        "68,100",
        "$43.59",
        "$35.90",
        "$57.51",
        "2022 to 2032",
        "business or public administration",
        "market research",
        "vendors or suppliers",
        "change management",
        "management information systems",
    ]
    missing = [f for f in facts if f not in text]
    assert not missing, f"no question mentions: {missing}"


# ------------------------------------------------------------------ against the source articles


def test_sources_name_an_existing_seed_and_section() -> None:
    _need_shared()
    seeds = {p.name: _norm(p.read_text(encoding="utf-8", errors="replace")) for p in SEEDS.glob("*.txt")}
    bad = []
    for kind in ("questions", "tips", "interview"):
        for _, item in PACK[kind]:
            source = str(item.get("source"))
            if source == "general":
                continue
            name, _, section = source.partition("#")
            if name not in seeds:
                bad.append(f"{_label(item)}: no seed file {name!r}")
            elif section != INTRO_SECTION and _norm(section) not in seeds[name]:
                bad.append(f"{_label(item)}: section {section!r} does not occur in {name}")
    assert not bad, "; ".join(bad)


def test_every_figure_appears_in_the_seeds() -> None:
    _need_shared()
    seed_text = " ".join(p.read_text(encoding="utf-8", errors="replace") for p in SEEDS.glob("*.txt"))
    known = {re.sub(r"\s", "", m) for m in FIGURE.findall(seed_text)}
    invented = []
    for entries in PACK.values():
        for _, item in entries:
            for text in _strings(item):
                for figure in FIGURE.findall(text):
                    if re.sub(r"\s", "", figure) not in known:
                        invented.append(f"{_label(item)}: {figure}")
    assert not invented, f"figures not found in the seed articles: {invented} (the seeds have {sorted(known)})"


def test_no_sentences_copied_from_the_seeds() -> None:
    _need_shared()
    assert OVERLAP_TOOL.is_file(), f"{OVERLAP_TOOL} is missing while {SEEDS} exists"
    result = subprocess.run(
        [sys.executable, str(OVERLAP_TOOL), "content/"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, (
        f"seed_overlap.py exited {result.returncode}; content shares runs of words with the seeds:\n"
        f"{result.stdout}{result.stderr}"
    )


# ------------------------------------------------------------------ what an admin sees


def test_content_list_in_the_console_shows_the_bundled_counts(tmp_path: Path) -> None:
    env = {**os.environ, "STUDYBOT_CONTENT": str(CONTENT), "STUDYBOT_LOG_LEVEL": "WARNING"}
    env.pop("DISCORD_TOKEN", None)
    env.pop("SLACK_BOT_TOKEN", None)
    run = subprocess.run(
        [sys.executable, "-m", "bot", "console", "--user", "alice", "--db", str(tmp_path / "c.db")],
        input="/study content list\n",
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    topics = Counter(str(q["topic"]) for q in QUESTIONS)
    summary = (
        f"{len(QUESTIONS)} questions in {len(topics)} topics, {len(TIPS)} tips, "
        f"{len(INTERVIEW)} interview prompts, {len(STEPS)} career steps"
    )
    assert summary in run.stdout, run.stdout
    assert "Topics: " + ", ".join(f"{t} ({n})" for t, n in sorted(topics.items())) in run.stdout, run.stdout
