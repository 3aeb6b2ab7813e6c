"""Operator commands for the content pack: `/study content list|validate|load`.

The pack serves every group, so these belong to the bot's operator (``STUDYBOT_OWNERS``, the console
user), not to any server's admins. `load` re-reads the configured pack and keeps serving the last good
one when the new one has problems; every problem is reported as ``file:line: message``, with files
named relative to the pack folder (chat never shows a server path).
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from bot.core.commands import Command
from bot.core.content import ContentError, ContentLibrary, ContentPack, validate_pack
from bot.core.messages import Reply
from bot.core.service import Context, StudyService, private

log = logging.getLogger(__name__)

#: Problems listed in one reply; the rest are counted (chat messages are short).
MAX_LINES = 15
#: Longest problem line shown; a longer one is cut with an ellipsis.
MAX_LINE = 160


def _shown(file: str, root: Path) -> str:
    """A problem's file as chat may show it: relative to the pack folder, else only its name. Never a
    server path: members of other groups (and their screenshots) have no business knowing it."""
    path = Path(file)
    base = root if root.is_dir() else root.parent
    try:
        rel = path.relative_to(base)
    except ValueError:
        return path.name or "?"
    return str(rel) if str(rel) != "." else f"{base.name}/"


def _where(err: ContentError, root: Path) -> str:
    """``file:line: message`` with the file relative to the pack folder, cut to `MAX_LINE`."""
    text = str(ContentError(_shown(err.file, root), err.line, err.message))
    return text if len(text) <= MAX_LINE else text[: MAX_LINE - 1] + "…"


def problem_lines(errors: list[ContentError], root: Path) -> list[str]:
    """At most `MAX_LINES` ``file:line: message`` lines, then ``… and N more`` when there are more."""
    lines = [_where(e, root) for e in errors[:MAX_LINES]]
    if len(errors) > MAX_LINES:
        lines.append(f"… and {len(errors) - MAX_LINES} more (`studybot content validate` lists them all)")
    return lines


Checked = tuple[ContentPack | None, list[ContentError]]


class ContentCommands:
    """The three operator handlers, bound to the service's `ContentLibrary`.

    Reading and checking the pack (YAML parsing, validation: about half a second of CPU for the
    bundled pack) runs in a short-lived spawned worker process, never on the event loop — a thread
    would not do: it holds the interpreter lock while it parses, and every database hop and click of
    every other group waits for it (bench P6 measured a 6.6 s stall that way). One check at a time:
    requests that arrive while a check runs share the next one. ``in_process=True`` checks in a
    thread instead (tests); so does a process that cannot start a worker, with a warning.
    """

    def __init__(self, library: ContentLibrary, *, in_process: bool = False) -> None:
        self.library = library
        self.in_process = in_process
        self._lock = asyncio.Lock()
        self._started = 0
        self._last: Checked | None = None

    def register(self, service: StudyService) -> None:
        """Add the handlers to ``service`` (replacing any earlier ones)."""
        service.register("content.list", self.list_pack)
        service.register("content.validate", self.validate)
        service.register("content.load", self.load)

    async def check(self) -> Checked:
        """The pack folder as it is now, validated: a check that started after this call (so an edit
        made before it is seen), shared with every caller that asked while the previous one ran."""
        asked = self._started
        async with self._lock:
            if self._started > asked and self._last is not None:
                return self._last  # a check began after we asked and has finished: it saw what we would
            self._started += 1
            self._last = await self._run_check()
            return self._last

    async def _run_check(self) -> Checked:
        root = self.library.root
        if self.in_process:
            return await asyncio.to_thread(validate_pack, root)
        # A fresh worker per check: operators check rarely, and nothing stays resident in between.
        pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
        try:
            return await asyncio.get_running_loop().run_in_executor(pool, validate_pack, root)
        except Exception as e:  # no worker could start or it died (say, killed for memory)
            why = " ".join(str(e).split())[:160] or type(e).__name__
            log.warning("content check: the worker process failed (%s); checking in a thread instead", why)
            return await asyncio.to_thread(validate_pack, root)
        finally:
            pool.shutdown(wait=False)

    @property
    def _name(self) -> str:
        return f"{self.library.root.name}/" if self.library.root.is_dir() else self.library.root.name

    async def list_pack(self, ctx: Context, _: Command) -> list[Reply]:
        """What the pack being served holds: counts, topics, which folder it came from (by name)."""
        pack = self.library.pack
        topics = Counter(q.topic for q in pack.questions)
        levels = Counter(q.difficulty for q in pack.questions)
        lines = [f"**Content pack** ({self._name})", pack.summary()]
        if topics:
            lines.append("Topics: " + ", ".join(f"{t} ({n})" for t, n in sorted(topics.items())))
            lines.append(f"Difficulty: easy {levels[1]} · medium {levels[2]} · hard {levels[3]}")
        lines.append("Check edits with /study content validate, then serve them with /study content load.")
        return private("\n".join(lines))

    async def validate(self, ctx: Context, _: Command) -> list[Reply]:
        """Check the pack folder on disk without serving it."""
        root = self.library.root
        pack, errors = await self.check()
        if pack is None:
            head = f"❌ The content in {self._name} has {len(errors)} problem(s); nothing was loaded:"
            return private("\n".join([head, *problem_lines(errors, root)]))
        return private(f"✅ The content in {self._name} is valid: {pack.summary()}. Serve it with /study content load.")

    async def load(self, ctx: Context, _: Command) -> list[Reply]:
        """Re-read the pack; on problems keep serving the last good one and list them."""
        root = self.library.root
        before = self.library.pack
        pack, errors = await self.check()
        if pack is None:
            log.warning("content reload from %s refused: %d problem(s), first: %s", root, len(errors), errors[0])
            head = (
                f"❌ Not loaded: the content in {self._name} has {len(errors)} problem(s). "
                f"Still serving the last good pack ({before.summary()})."
            )
            return private("\n".join([head, *problem_lines(errors, root)]))
        self.library.pack = pack
        log.info("content reloaded from %s by %s: %s", root, ctx.inbound.user, pack.summary())
        return private(f"✅ Loaded {pack.summary()} from {self._name} (was {len(before.questions)} questions).")
