"""Admin commands for the content pack: `/study content list|validate|load`.

`load` re-reads the configured pack through `ContentLibrary.reload`, which keeps serving the last good
pack when the new one has problems; every problem is reported as ``file:line: message``.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from pathlib import Path

from bot.core.commands import Command
from bot.core.content import ContentError, ContentLibrary, validate_pack
from bot.core.messages import Reply
from bot.core.service import Context, StudyService, private

log = logging.getLogger(__name__)

#: Problems listed in one reply; the rest are counted (chat messages are short).
MAX_LINES = 15
#: Longest problem line shown; a longer one is cut with an ellipsis.
MAX_LINE = 160


def _where(err: ContentError, root: Path) -> str:
    """``file:line: message`` with the file relative to the pack folder, cut to `MAX_LINE`."""
    path = Path(err.file)
    base = root if root.is_dir() else root.parent
    try:
        shown = str(path.relative_to(base))
    except ValueError:
        shown = str(path)
    text = str(ContentError(shown, err.line, err.message))
    return text if len(text) <= MAX_LINE else text[: MAX_LINE - 1] + "…"


def problem_lines(errors: list[ContentError], root: Path) -> list[str]:
    """At most `MAX_LINES` ``file:line: message`` lines, then ``… and N more`` when there are more."""
    lines = [_where(e, root) for e in errors[:MAX_LINES]]
    if len(errors) > MAX_LINES:
        lines.append(f"… and {len(errors) - MAX_LINES} more (`studybot content validate` lists them all)")
    return lines


class ContentCommands:
    """The three admin handlers, bound to the service's `ContentLibrary`."""

    def __init__(self, library: ContentLibrary) -> None:
        self.library = library
        self._lock = asyncio.Lock()

    def register(self, service: StudyService) -> None:
        """Add the handlers to ``service`` (replacing any earlier ones)."""
        service.register("content.list", self.list_pack)
        service.register("content.validate", self.validate)
        service.register("content.load", self.load)

    async def list_pack(self, ctx: Context, _: Command) -> list[Reply]:
        """What the pack being served holds: counts, topics, where it came from."""
        pack = self.library.pack
        topics = Counter(q.topic for q in pack.questions)
        levels = Counter(q.difficulty for q in pack.questions)
        lines = [f"**Content pack** ({self.library.root})", pack.summary()]
        if topics:
            lines.append("Topics: " + ", ".join(f"{t} ({n})" for t, n in sorted(topics.items())))
            lines.append(f"Difficulty: easy {levels[1]} · medium {levels[2]} · hard {levels[3]}")
        lines.append("Check edits with /study content validate, then serve them with /study content load.")
        return private("\n".join(lines))

    async def validate(self, ctx: Context, _: Command) -> list[Reply]:
        """Check the pack folder on disk without serving it."""
        root = self.library.root
        pack, errors = await asyncio.to_thread(validate_pack, root)
        if pack is None:
            head = f"❌ The content at {root} has {len(errors)} problem(s); nothing was loaded:"
            return private("\n".join([head, *problem_lines(errors, root)]))
        return private(f"✅ The content at {root} is valid: {pack.summary()}. Serve it with /study content load.")

    async def load(self, ctx: Context, _: Command) -> list[Reply]:
        """Re-read the pack; on problems keep serving the last good one and list them."""
        root = self.library.root
        async with self._lock:
            before = self.library.pack
            errors = await asyncio.to_thread(self.library.reload)
            after = self.library.pack
        if errors:
            log.warning("content reload from %s refused: %d problem(s), first: %s", root, len(errors), errors[0])
            head = (
                f"❌ Not loaded: the content at {root} has {len(errors)} problem(s). "
                f"Still serving the last good pack ({before.summary()})."
            )
            return private("\n".join([head, *problem_lines(errors, root)]))
        log.info("content reloaded from %s by %s: %s", root, ctx.inbound.user, after.summary())
        return private(f"✅ Loaded {after.summary()} from {root} (was {len(before.questions)} questions).")
