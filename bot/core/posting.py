"""What a channel's daily post shows, and the text of a reveal. Pure: no I/O.

Selection per channel (from the channel's own group posts, ``posts.member_id IS NULL``):

* ``question`` — one of the questions the channel has seen least often: no repeats until the pool is
  used up, then a new shuffled cycle (never the same question twice in a row across cycles);
* ``tip`` — the career steps in order (step 1's tips first), least-shown first, so the steps cycle;
* ``mix`` — alternates question / tip, starting with a question.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from bot.core.content import LETTERS, ContentPack, Question, Tip
from bot.core.schedule import ChannelHistory


@dataclass(frozen=True, slots=True)
class Pick:
    kind: str  # "question" | "tip"
    item: Question | Tip

    @property
    def item_id(self) -> str:
        return self.item.id


def _least_shown_question(pack: ContentPack, history: ChannelHistory, rng: random.Random) -> Question | None:
    pool = list(pack.questions)
    if not pool:
        return None
    count = {q.id: history.counts.get(("question", q.id), 0) for q in pool}
    fewest = min(count.values())
    candidates = [q for q in pool if count[q.id] == fewest]
    last = history.last_item.get("question")
    if len(candidates) > 1:
        # A new cycle must not open with the question that closed the previous one.
        candidates = [q for q in candidates if q.id != last] or candidates
    return rng.choice(candidates)


def _next_tip(pack: ContentPack, history: ChannelHistory, rng: random.Random) -> Tip | None:
    pool = sorted(pack.tips, key=lambda t: t.step)  # stable: pack order within a step
    if not pool:
        return None
    count = {t.id: history.counts.get(("tip", t.id), 0) for t in pool}
    fewest = min(count.values())
    first_step = min(t.step for t in pool if count[t.id] == fewest)
    candidates = [t for t in pool if count[t.id] == fewest and t.step == first_step]
    last = history.last_item.get("tip")
    if len(candidates) > 1:
        candidates = [t for t in candidates if t.id != last] or candidates
    return rng.choice(candidates)


def pick_channel_item(pack: ContentPack, history: ChannelHistory, kind: str, rng: random.Random) -> Pick | None:
    """The next item for a channel whose schedule has ``kind``; None when the pack has nothing to post."""
    if kind == "mix":
        order = ["tip", "question"] if history.last_kind == "question" else ["question", "tip"]
    else:
        order = [kind]
    for k in order:
        if k == "question":
            q = _least_shown_question(pack, history, rng)
            if q is not None:
                return Pick("question", q)
        else:
            t = _next_tip(pack, history, rng)
            if t is not None:
                return Pick("tip", t)
    return None


def tip_post_text(pack: ContentPack, tip: Tip, heading: str = "Tip of the day") -> str:
    title = next((s.title for s in pack.steps if s.step == tip.step), "")
    return f"💡 **{heading} · step {tip.step}: {title}**\n{tip.text}\n**This week:** {tip.action}"


def reveal_text(q: Question, counts: dict[str, int]) -> str:
    """The answer to a channel question: how many picked each choice, the right one, why."""
    total = sum(counts.get(letter, 0) for letter in LETTERS)
    lines = [f"🔎 **Answer reveal** — {q.prompt}"]
    for letter, choice in zip(LETTERS, q.choices, strict=True):
        n = counts.get(letter, 0)
        mark = " ✅" if letter == q.answer else ""
        lines.append(f"{letter}) {choice} — {n} vote{'s' if n != 1 else ''}{mark}")
    right = counts.get(q.answer, 0)
    if total:
        lines.append(f"{right} of {total} answered correctly.")
    else:
        lines.append("Nobody answered this one.")
    lines.append(f"**The answer: {q.answer})** {q.choice(q.answer)}")
    lines.append(q.explanation)
    return "\n".join(lines)
