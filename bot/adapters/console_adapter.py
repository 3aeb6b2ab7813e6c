"""The local console: one `/study …` command per line on stdin, replies on stdout. Needs no tokens."""

from __future__ import annotations

import asyncio
import itertools
import re
import sys
from collections.abc import Sequence
from typing import TextIO

from bot.core import actions
from bot.core.messages import Button, Inbound, Post, Reply, SentMessage
from bot.core.service import StudyService

GROUP = "local"
CHANNEL = "console"
_AS_OTHER = re.compile(r"^@([^\s@]{1,40})\s+(.*)$", re.S)


def plain(text: str) -> str:
    """Console rendering of the core's light markdown."""
    return text.replace("**", "")


def render_buttons(buttons: Sequence[Button]) -> str:
    if not buttons:
        return ""
    labels = "  ".join(f"[{b.label}]" for b in buttons)
    parsed = [actions.parse_action(b.action_id) for b in buttons]
    if all(isinstance(p, actions.AnswerAction) for p in parsed):
        return f"{labels}   ← answer with /study answer <letter>"
    if any(isinstance(p, actions.SimpleAction) and p.name == "forget-confirm" for p in parsed):
        return f"{labels}   ← type /study forget-me confirm (or cancel)"
    return labels


def render(reply: Reply | Post, *, who: str = "") -> str:
    scope = f"(only {who} sees this) " if isinstance(reply, Reply) and reply.private and who else ""
    out = [scope + plain(reply.text)]
    if reply.buttons:
        out.append(render_buttons(reply.buttons))
    out += [f"(attached: {a.filename}, {len(a.data):,} bytes)" for a in reply.attachments]
    return "\n".join(out)


class ConsoleAdapter:
    """Reads commands from ``stdin`` and prints replies; also the `ChatGateway` for scheduled posts."""

    platform = "console"

    def __init__(self, service: StudyService, user: str, *, stdin: TextIO | None = None, stdout: TextIO | None = None):
        self.service = service
        self.user = user
        self.stdin = stdin or sys.stdin
        self.stdout = stdout or sys.stdout
        self._ids = itertools.count(1)

    def _print(self, text: str) -> None:
        self.stdout.write(text + "\n")
        self.stdout.flush()

    def inbound(self, line: str) -> Inbound:
        """One console line → `Inbound`; ``@name …`` acts as another member."""
        user = self.user
        m = _AS_OTHER.match(line.strip())
        if m:
            user, line = m.group(1), m.group(2)
        return Inbound(
            platform="console",
            group=GROUP,
            channel=CHANNEL,
            user=user,
            user_name=user,
            text=line,
            is_admin=True,  # the console is the local operator's own
            group_name="console",
            channel_name=CHANNEL,
        )

    async def handle_line(self, line: str) -> list[Reply]:
        inbound = self.inbound(line)
        replies = await self.service.handle(inbound)
        for r in replies:
            self._print(render(r, who=inbound.user))
        return replies

    async def run(self) -> None:
        """Serve until EOF (or a line ``quit``)."""
        loop = asyncio.get_running_loop()
        if self.stdin.isatty():
            self._print(f"studybot console — you are {self.user}. Try /study help; Ctrl-D quits.")
        while True:
            line = await loop.run_in_executor(None, self.stdin.readline)
            if not line:
                return
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if line in ("quit", "exit", "/quit"):
                return
            await self.handle_line(line)

    async def close(self) -> None:
        """Nothing to release: the read loop ends with its task."""

    # ChatGateway
    async def post(self, post: Post) -> SentMessage:
        self._print("📣 " + render(post))
        return SentMessage(post.channel, f"console-{next(self._ids)}")

    async def edit(self, channel: str, message_id: str, text: str, buttons: Sequence[Button] = ()) -> None:
        self._print(f"📣 (update to {message_id}) " + plain(text))
