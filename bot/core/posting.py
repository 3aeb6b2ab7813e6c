"""What a channel's daily post shows, and the text of a reveal. Pure: no I/O.

Selection per channel (from the channel's own group posts, ``posts.member_id IS NULL``):

* ``question`` — one of the questions the channel has seen least often: no repeats until the pool is
  used up, then a new shuffled cycle (never the same question twice in a row across cycles);
* ``tip`` — the career steps in order (step 1's tips first), least-shown first, so the steps cycle;
* ``interview`` — the interview prompts, least-shown first (a member practises one privately with the
  post's "Practise this" button);
* ``mix`` — rotates question, tip, interview, starting with a question (kinds the pack lacks are skipped).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from bot.core import actions
from bot.core.content import LETTERS, ContentPack, InterviewPrompt, Question, Tip
from bot.core.messages import Button
from bot.core.schedule import ChannelHistory


@dataclass(frozen=True, slots=True)
class Pick:
    kind: str  # "question" | "tip" | "interview"
    item: Question | Tip | InterviewPrompt

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


def _next_interview(pack: ContentPack, history: ChannelHistory, rng: random.Random) -> InterviewPrompt | None:
    pool = list(pack.interview)
    if not pool:
        return None
    count = {p.id: history.counts.get(("interview", p.id), 0) for p in pool}
    fewest = min(count.values())
    candidates = [p for p in pool if count[p.id] == fewest]
    last = history.last_item.get("interview")
    if len(candidates) > 1:
        candidates = [p for p in candidates if p.id != last] or candidates
    return rng.choice(candidates)


#: The order ``mix`` rotates through.
MIX = ("question", "tip", "interview")


def pick_channel_item(pack: ContentPack, history: ChannelHistory, kind: str, rng: random.Random) -> Pick | None:
    """The next item for a channel whose schedule has ``kind``; None when the pack has nothing to post."""
    if kind == "mix":
        start = (MIX.index(history.last_kind) + 1) % len(MIX) if history.last_kind in MIX else 0
        order = [*MIX[start:], *MIX[:start]]
    else:
        order = [kind]
    for k in order:
        item: Question | Tip | InterviewPrompt | None
        if k == "question":
            item = _least_shown_question(pack, history, rng)
        elif k == "tip":
            item = _next_tip(pack, history, rng)
        else:
            item = _next_interview(pack, history, rng)
        if item is not None:
            return Pick(k, item)
    return None


def interview_post_text(prompt: InterviewPrompt) -> str:
    """A channel's interview question of the day; the points stay private (Practise this shows them)."""
    return (
        f"🎤 **Interview question of the day**\n{prompt.prompt}\n"
        "Practise it privately: Practise this deals it to you, to answer in your head or in writing and "
        "compare with the points a strong answer covers."
    )


def practise_button(post_id: int) -> Button:
    """The channel post's button that deals its card privately to whoever clicks."""
    return Button(actions.practise_this_action(post_id), "Practise this", "primary")


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
