"""The local console: one `/study …` command per line on stdin, replies on stdout. Needs no tokens.

A form (`bot.core.forms`) is asked field by field, one line each (``\\n`` typed in a several-line field
makes a line break); a field's error is shown and the field asked again. A blank line on a required
field, or the end of input, cancels the form: nothing is submitted.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import re
import sys
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import TextIO

from bot.anki import UPLOAD_MAX_BYTES
from bot.core import actions, forms, markup
from bot.core.commands import UsageError, parse
from bot.core.messages import Attachment, Button, Inbound, Post, Reply, SentMessage, followups
from bot.core.native import Ability, ChannelAccess
from bot.core.ports import DeliveryError
from bot.core.service import StudyService

GROUP = "local"
CHANNEL = "console"
_AS_OTHER = re.compile(r"^@([^\s@]{1,40})\s+(.*)$", re.S)


def plain(text: str) -> str:
    """Console rendering of the core's light markdown; names are shown exactly as they are."""
    return markup.render(text, lambda s: s, lambda t: t.replace("**", ""))


def render_buttons(buttons: Sequence[Button]) -> str:
    if not buttons:
        return ""
    labels = "  ".join(f"[{b.label}]" for b in buttons)
    parsed = [actions.parse_action(b.action_id) for b in buttons]
    if all(isinstance(p, actions.AnswerAction) for p in parsed):
        return f"{labels}   ← answer with /study answer <letter>"
    if any(isinstance(p, actions.SimpleAction) and p.name == "forget-confirm" for p in parsed):
        return f"{labels}   ← type /study forget-me confirm (or cancel)"
    steps = {p.step for p in parsed if isinstance(p, actions.PracticeAction)}
    if steps & {"r1", "r2", "r3", "r4"}:
        return f"{labels}   ← type /study rate again|hard|good|easy"
    if "show" in steps:
        hint = "/study write <your answer>, then /study points" if "write" in steps else "/study points"
        return f"{labels}   ← type {hint}"
    # Any other button: typing its action id after "!" clicks it.
    return f"{labels}   ← type " + " or ".join(f"!{b.action_id}" for b in buttons)


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
        self._closing = False
        self._inflight: asyncio.Future[list[Reply]] | None = None
        #: Where attachments (the progress chart, CSV exports) are saved; a fresh temp folder by default.
        self.files_dir: Path | None = None

    def _print(self, text: str) -> None:
        self.stdout.write(text + "\n")
        self.stdout.flush()

    def inbound(self, line: str) -> Inbound:
        """One console line → `Inbound`; ``@name …`` acts as another member, ``!<action id>`` clicks a button."""
        user = self.user
        m = _AS_OTHER.match(line.strip())
        if m:
            user, line = m.group(1), m.group(2)
        action = None
        if line.strip().startswith("!"):  # a click on a button, by its action id ("!sb:dimp:3")
            action, line = line.strip()[1:], ""
        return Inbound(
            platform="console",
            group=GROUP,
            channel=CHANNEL,
            user=user,
            user_name=user,
            text=line,
            action=action,
            is_admin=True,  # the console is the local operator's own
            is_operator=True,
            group_name="console",
            channel_name=CHANNEL,
        )

    def attach(self, inbound: Inbound) -> Inbound | str:
        """``/study deck import <name> <path>``: the file at ``path`` attached, as a chat front end attaches
        an upload (at most `UPLOAD_MAX_BYTES`, Anki's limit, are read: a larger file goes by its size, and the core refuses
        what is over its format's limit). Returns the
        one-line problem instead when the file cannot be read."""
        try:
            command = parse(inbound.text)
        except UsageError:
            return inbound
        path = command.args.get("path") if command.name == "deck.import" else None
        if not path:
            return inbound
        file = Path(path).expanduser()
        try:
            with file.open("rb") as f:
                data = f.read(UPLOAD_MAX_BYTES + 1)
                size = os.fstat(f.fileno()).st_size
        except OSError as e:
            return f"Cannot read {path}: {e.strerror or e}"
        if len(data) > UPLOAD_MAX_BYTES:  # as the chat front ends do: the core names the limit
            return replace(inbound, files=(Attachment(file.name, b"", size=size),))
        return replace(inbound, files=(Attachment(file.name, data),))

    async def handle_line(self, line: str) -> list[Reply]:
        attached = self.attach(self.inbound(line))
        if isinstance(attached, str):
            self._print(attached)
            return [Reply(attached)]
        inbound = attached
        replies = await self.service.handle(inbound)
        pending = list(replies)
        while pending:
            r = pending.pop(0)
            if r.form is not None:
                pending[:0] = await self.fill(r, inbound)
                continue
            self._print(render(r, who=inbound.user))
            for a in r.attachments:
                self._print(f"(saved to {self._save(a.filename, a.data)})")
            pending[:0] = await followups(r)
        return replies

    async def fill(self, reply: Reply, inbound: Inbound) -> list[Reply]:
        """Ask ``reply.form`` field by field and submit it; the replies to the submission (a form offered
        again with errors is asked again, its fields with errors only). Cancelled: a one-line notice."""
        form = reply.form
        assert form is not None
        self._print(plain(reply.text))
        values = {f.key: f.default for f in form.fields}
        ask = list(form.fields) if not form.errors else [f for f in form.fields if f.key in form.errors]
        errors = dict(form.errors)
        while True:
            for f in ask:
                value = await self._ask(f, errors.get(f.key), values[f.key] if not errors.get(f.key) else "")
                if value is None:
                    self._print("Form cancelled — nothing was saved.")
                    return []
                values[f.key] = value
            submitted = replace(inbound, text="", action=form.action, values=values)
            answers = await self.service.handle(submitted)
            again = next((r for r in answers if r.form is not None and r.form.errors), None)
            if again is None or again.form is None:
                return answers
            form, errors = again.form, dict(again.form.errors)
            ask = [f for f in form.fields if f.key in errors]

    async def _ask(self, f: forms.Field, error: str | None, default: str) -> str | None:
        """One field's value (checked for length and presence); None to cancel."""
        while True:
            if error:
                self._print(f"  ⚠ {f.label}: {error}")
            hint = [] if f.required else ["optional"]
            if f.style == "paragraph":
                hint.append("\\n for a new line")
            if default:
                hint.append(f"Enter keeps: {default[:60]}")
            note = f" ({'; '.join(hint)})" if hint else ""
            self._print(f"› {f.label}{note}:")
            line = await self._readline()
            if not line:  # end of input
                return None
            typed = line.rstrip("\r\n")
            if f.style == "paragraph":
                typed = typed.replace("\\n", "\n")
            if not typed.strip():
                if default:
                    return default
                if f.required:
                    return None
            value = forms.clean(typed)
            error = forms.check_field(f, value)
            if error is None:
                return value

    def _save(self, filename: str, data: bytes) -> Path:
        if self.files_dir is None:
            self.files_dir = Path(tempfile.mkdtemp(prefix="studybot-console-"))
        path = self.files_dir / (Path(filename).name or "attachment")
        path.write_bytes(data)
        return path

    async def _readline(self) -> str:
        """The next stdin line, read on a daemon thread: a read still blocked at shutdown must not keep
        the process alive (asyncio.run joins the default executor's threads, forever on an open pipe)."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[str] = loop.create_future()

        def deliver(line: str) -> None:
            if not fut.done():
                fut.set_result(line)

        def read() -> None:
            try:
                line = self.stdin.readline()
            except (OSError, ValueError):
                line = ""
            with contextlib.suppress(RuntimeError):  # the loop may be closed by now
                loop.call_soon_threadsafe(deliver, line)

        threading.Thread(target=read, name="console-stdin", daemon=True).start()
        return await fut

    async def run(self) -> None:
        """Serve until EOF (or a line ``quit``)."""
        if self.stdin.isatty():
            self._print(f"studybot console — you are {self.user}. Try /study help; Ctrl-D quits.")
        while not self._closing:
            line = await self._readline()
            if not line or self._closing:
                return
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if line in ("quit", "exit", "/quit"):
                return
            # Shielded: a shutdown that cancels this task still lets the current command finish.
            self._inflight = asyncio.ensure_future(self.handle_line(line))
            await asyncio.shield(self._inflight)

    async def close(self) -> None:
        """Stop reading; a command already being handled finishes (and its reply is printed) first."""
        self._closing = True
        if self._inflight is not None and not self._inflight.done():
            await asyncio.wait([self._inflight])

    # ChatGateway
    async def post(self, post: Post) -> SentMessage:
        where = f"🧵 (in the thread of {post.thread}) " if post.thread else ""
        self._print("📣 " + where + render(post))
        return SentMessage(post.channel, f"console-{next(self._ids)}")

    # The native touches: the console prints everything, has no roles and no one to DM.
    async def check_access(self, channel: str, group: str) -> ChannelAccess:
        """Everything a channel needs works in the console; roles and DMs do not apply."""
        ok = [("view", "View the channel"), ("send", "Send messages (daily posts)"), ("attach", "Attach files")]
        ok += [("history", "Read message history"), ("threads", "Discussion threads")]
        return ChannelAccess(
            (
                *tuple(Ability(k, label, True) for k, label in ok),
                Ability("roles", "Manage roles (role rewards)", None, "the console has no roles"),
                Ability("dm", "DM members", None, "the console has no one to DM"),
            )
        )

    async def open_thread(self, channel: str, message_id: str, title: str, group: str) -> str:
        self._print(f"🧵 thread opened on {message_id}: {title}")
        return message_id

    async def role_problem(self, group: str, role: str) -> str | None:
        return "the console has no roles"

    async def grant_role(self, group: str, user: str, role: str) -> None:
        raise DeliveryError("the console has no roles", retryable=False)

    async def find(self, post: Post, since: datetime) -> str | None:
        """The console cannot read back what it printed: nothing is ever found."""
        return None

    async def edit(
        self, channel: str, message_id: str, text: str, buttons: Sequence[Button] = (), *, group: str = ""
    ) -> None:
        self._print(f"📣 (update to {message_id}) " + plain(text))
