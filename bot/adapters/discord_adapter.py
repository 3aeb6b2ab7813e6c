"""The Discord front end: a discord.py client with a `/study` command group and persistent buttons.

Two translations and a thin shell around them (the core decides everything):

- an interaction (slash command or button click) → the `/study …` command text or button action id →
  `Inbound` → `StudyService.handle` → `Reply` objects → an interaction response (private → ephemeral,
  buttons → a view of persistent buttons, attachments → files);
- a `Post` from the core (scheduled questions, reveals) → ``channel.send``/``message.edit`` (`ChatGateway`).

A button's ``custom_id`` carries everything its click needs (``sb:ans:<post>:<letter>``), and clicks are
served by that id alone (`StudyClient.on_interaction`), so a click on a message from before a restart still
reaches the core.

Forms (`bot.core.forms`): a reply with a form answers the interaction with a modal (callback type 9) of
labelled text inputs whose ``custom_id`` is the form's action id; the submit (interaction type 5) is read
in `StudyClient.on_interaction` straight from the payload, so a modal opened before a restart still
submits. Discord does not allow answering a modal submit with another modal, so a form offered again with
field errors goes out as a private message listing them, with a button that reopens the modal prefilled
with what was typed and each error under its field (kept in memory: after a restart that button says the
form expired).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import re
import secrets
from collections import OrderedDict
from collections.abc import Awaitable, Collection, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any, Literal
from zoneinfo import available_timezones

import aiohttp
import discord
from discord import app_commands
from discord.webhook.async_ import async_context

from bot.anki import UPLOAD_MAX_BYTES
from bot.config import Settings
from bot.core import markup
from bot.core.commands import ADMIN_COMMAND, SPECS, Spec
from bot.core.forms import Form
from bot.core.messages import Attachment, Button, Inbound, Post, Reply, SentMessage, followups
from bot.core.native import Ability, ChannelAccess
from bot.core.ports import DeliveryError
from bot.core.service import ERROR_TEXT, StudyService

log = logging.getLogger(__name__)

#: Discord's limit on a message's text.
MAX_CONTENT = 2000
#: A command whose reply is not ready after this many seconds is deferred ("thinking…") first;
#: Discord wants the first response within 3 s.
DEFER_AFTER = 1.5
#: The longest a follow-up (a chart) waits for the acknowledgements of other interactions to go out first.
FOLLOWUP_WAIT = 2.0
#: Discord accepts one gateway IDENTIFY per this many seconds in each rate-limit bucket.
IDENTIFY_DELAY = 5.0
#: On shutdown, how long to wait for interactions being answered (and their follow-ups) to finish.
DRAIN_SECONDS = 10.0
#: Channel posts and edits per second. Discord allows a bot 50 REST requests/s in all; discord.py only
#: learns of that global limit from a 429 and gives each request 5 tries, so a fan-out to many channels
#: paces itself below the limit instead of racing into it. Interaction callbacks and follow-ups (webhooks)
#: do not count against that limit, so 48/s leaves room for the few other REST calls (P3 in bench/).
POSTS_PER_SECOND = 48.0
#: Everything the bot does in a channel: see it, post scheduled questions/tips (with buttons, which need
#: no extra permission), attach files (charts) and read the channel's recent messages — only to look for
#: its own post before sending one again after a crash or a failed answer (Read Message History; without
#: it only the message nonce guards against a repeat, for a few minutes). Interaction replies need no
#: channel permission at all, and editing its own messages needs none beyond these. No Embed Links.
#: Create Public Threads and Send Messages in Threads serve `schedule set … thread on` (a thread per
#: post, the reveal inside it). Manage Roles (role rewards) is left out on purpose: it is powerful, and
#: an admin who wants rewards grants it to the bot's role; `/study-admin check` names the fix.
BOT_PERMISSIONS = discord.Permissions(
    view_channel=True,
    send_messages=True,
    attach_files=True,
    read_message_history=True,
    create_public_threads=True,
    send_messages_in_threads=True,
)
#: How many of a channel's messages after the post's creation `find` looks through.
FIND_LIMIT = 100
#: Discord's JSON error code for a DM the member does not accept ("Cannot send messages to this user").
CANNOT_MESSAGE_USER = 50007
NOT_IN_SERVER = "studybot works inside a server: use /study in one of its channels."

_STYLES = {
    "primary": discord.ButtonStyle.primary,
    "secondary": discord.ButtonStyle.secondary,
    "success": discord.ButtonStyle.success,
    "danger": discord.ButtonStyle.danger,
}
_STYLE_NAMES = {v: k for k, v in _STYLES.items()}


class DiscordStartError(RuntimeError):
    """The Discord front end cannot start (e.g. the token was rejected). The message never holds the token."""


def invite_url(client_id: int) -> str:
    """The OAuth2 URL that adds the bot to a server with the ``bot applications.commands`` scopes and
    exactly `BOT_PERMISSIONS`."""
    return discord.utils.oauth_url(client_id, permissions=BOT_PERMISSIONS, scopes=("bot", "applications.commands"))


@lru_cache(maxsize=1)
def _zones() -> tuple[str, ...]:
    return tuple(sorted(z for z in available_timezones() if "/" in z or z == "UTC"))


def match_zones(current: str, limit: int = 25) -> list[str]:
    """Time-zone names for autocomplete: names starting with what was typed (or whose city does) first,
    then names containing it; at most ``limit`` (Discord shows 25)."""
    typed = "_".join(current.strip().split()).casefold()
    if not typed:
        return list(_zones()[:limit])
    first: list[str] = []
    rest: list[str] = []
    for z in _zones():
        folded = z.casefold()
        if folded.startswith(typed) or folded.rsplit("/", 1)[-1].startswith(typed):
            first.append(z)
        elif typed in folded:
            rest.append(z)
    return (first + rest)[:limit]


def chunks(text: str, limit: int = MAX_CONTENT) -> list[str]:
    """Split text into pieces Discord accepts, at line breaks where possible; never loses a character."""
    if len(text) <= limit:
        return [text]
    out: list[str] = []
    current = ""
    for line in text.splitlines(keepends=True):
        while len(line) > limit:
            if current:
                out.append(current)
                current = ""
            out.append(line[:limit])
            line = line[limit:]
        if len(current) + len(line) > limit:
            out.append(current)
            current = ""
        current += line
    if current:
        out.append(current)
    return [c.rstrip("\n") or "\u200b" for c in out]


class Pacer:
    """Spaces calls evenly: at most ``rate`` per second (none when ``rate`` is None)."""

    def __init__(self, rate: float | None) -> None:
        self.interval = 1.0 / rate if rate else 0.0
        self._next = 0.0

    async def wait(self) -> None:
        if not self.interval:
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        at = max(now, self._next)
        self._next = at + self.interval  # reserved before sleeping: concurrent callers queue up in order
        if at > now:
            await asyncio.sleep(at - now)


#: Everything Discord's markdown could read in a name: emphasis, spoilers, code, masked links
#: (``[text](url)``), headings, quotes and lists, emoji and URL schemes (``:``), and mentions (``<@…>``,
#: ``<@&…>``, ``<#…>``, ``@everyone``). A backslash before any of them shows the character itself.
_DISCORD_MARKUP = re.compile(r"([\\*_~`|\[\]()<>#@:\-])")


def escape_name(text: str) -> str:
    """A member-controlled string (a display name…) as literal Discord text: no formatting, no link
    (``[Claim your prize](https://evil.example)`` stays text), no mention pill. Pings are off anyway
    (``AllowedMentions.none()``); this keeps the text from even looking like one."""
    return _DISCORD_MARKUP.sub(r"\\\1", text)


def render(text: str) -> str:
    """The core's text for Discord: its markdown is Discord's already; marked names are escaped."""
    return markup.render(text, escape_name)


def _word(value: str, joiner: str) -> str:
    """A typed option as one word of the command text (``America/New York`` → ``America/New_York``), so an
    option's value never spills into the next option."""
    return joiner.join(value.split())


# ---------------------------------------------------------------------------------------------- buttons


#: The button ids a click is served for, as the core makes them: a core action (``sb:forget-confirm``,
#: ``sb:pr:12:show``, ``sb:<name>:<arg>`` …), an answer (``sb:ans:<post id>:<letter>``, and any other
#: ``sb:ans:`` id, which the core says is no longer valid instead of the click going unanswered) and a
#: reminder's "Quiz me" (``sb:quizme:<member id>``, clicked in a direct message or a server).
CORE_BUTTON = re.compile(r"sb:(?!ans:|quizme:)[a-z][A-Za-z0-9_.:-]*|sb:ans:.*|sb:quizme:[0-9]{1,18}")
#: "Fix the form": reopens a form offered again with field errors (see `DiscordFrontEnd.offer_again`).
REOPEN_BUTTON = re.compile(r"sbx:form:(?P<token>[0-9a-f]{16})")


class _Button(discord.ui.Button[Any]):
    """A button as sent. Its ``custom_id`` says everything a click needs, so a click on any message — also
    one from before a restart — is served by its id alone (`StudyClient.on_interaction`). Not dispatchable:
    discord.py registers nothing for the views that carry it and builds nothing for a click (as dynamic
    items, each click had it rebuild the message's whole view and a button object)."""

    def is_dispatchable(self) -> bool:
        return False


#: Discord's limits on a label's description and an input's placeholder.
_DESCRIPTION = 100


def modal(form: Form) -> discord.ui.Modal:
    """The modal for ``form``: one labelled text input per field (``custom_id`` = the field's key), each
    field's error (when offered again) as its label's description."""
    m = discord.ui.Modal(title=form.title[:45], custom_id=form.action, timeout=None)
    for f in form.fields:
        text_input: discord.ui.TextInput[Any] = discord.ui.TextInput(
            style=discord.TextStyle.paragraph if f.style == "paragraph" else discord.TextStyle.short,
            custom_id=f.key,
            placeholder=f.placeholder[:_DESCRIPTION] or None,
            default=f.default[: f.max_len] or None,
            required=f.required,
            max_length=f.max_len,
        )
        error = form.errors.get(f.key)
        description = _cut(f"⚠️ {error}", _DESCRIPTION) if error else None
        m.add_item(discord.ui.Label(text=f.label[:45], component=text_input, description=description))
    return m


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def submitted_values(components: Sequence[Any]) -> dict[str, str]:
    """Field key → value from a modal submit's ``data.components`` (action rows of text inputs, or
    labels holding one component each)."""
    out: dict[str, str] = {}
    for c in components:
        if not isinstance(c, dict):
            continue
        if c.get("type") == 1:
            out.update(submitted_values(c.get("components") or []))
        elif c.get("type") == 18:
            out.update(submitted_values([c.get("component")]))
        elif c.get("type") == 4 and isinstance(c.get("custom_id"), str):
            out[c["custom_id"]] = str(c.get("value") or "")
    return out


#: Forms offered again with errors, kept for their "Fix the form" button: at most this many, this long.
MAX_DRAFTS = 2000
DRAFT_SECONDS = 3600.0


def _view(buttons: Sequence[Button]) -> discord.ui.View | None:
    """The buttons as a view to send (an id that is not one we serve is shown, and a click on it is answered
    by nobody)."""
    if not buttons:
        return None
    view = discord.ui.View(timeout=None)
    for b in buttons[:25]:
        style = _STYLES.get(b.style, discord.ButtonStyle.secondary)
        view.add_item(_Button(label=b.label[:80] or None, style=style, custom_id=b.action_id[:100]))
    return view


def _components(buttons: Sequence[Button]) -> list[dict[str, Any]]:
    """The buttons as Discord's component payload, laid out as `_view` lays them out (five to a row)."""
    rows: list[dict[str, Any]] = []
    for i, b in enumerate(buttons[:25]):
        if i % 5 == 0:
            rows.append({"type": 1, "components": []})
        button: dict[str, Any] = {
            "type": 2,
            "style": _STYLES.get(b.style, discord.ButtonStyle.secondary).value,
            "custom_id": b.action_id[:100],
        }
        if b.label[:80]:
            button["label"] = b.label[:80]
        rows[-1]["components"].append(button)
    return rows


#: Discord's flag for a message only its member sees.
EPHEMERAL = 64
#: What a reply may ping: nobody (the client's default, `discord.AllowedMentions.none()`).
_NO_MENTIONS: dict[str, Any] = dict(discord.AllowedMentions.none().to_dict())


def _responded(interaction: discord.Interaction[Any]) -> bool:
    """Whether the interaction has had its one response (by discord.py or by `DiscordFrontEnd._answer`)."""
    return interaction.response.is_done() or "sb_responded" in interaction.extras


def _files(attachments: Sequence[Attachment]) -> list[discord.File]:
    return [discord.File(io.BytesIO(a.data), filename=a.filename) for a in attachments]


# ---------------------------------------------------------------------------------------------- commands

_ADMIN = discord.Permissions(manage_guild=True)


class StudyCommands(app_commands.Group):
    """`/study …`: the member commands; every subcommand rebuilds the command text and hands it to the core.

    Admin commands live in `AdminCommands` (``/study-admin``): Discord applies default member permissions
    only to top-level commands. Member commands of `SPECS` without a typed command here are added by
    `add_spec_commands`.
    """

    def __init__(self, frontend: DiscordFrontEnd) -> None:
        super().__init__(name="study", description="Study for the technical project manager path together")
        self.frontend = frontend

    async def _run(self, interaction: discord.Interaction[Any], text: str, *, slow: bool = False) -> None:
        await self.frontend.serve_interaction(interaction, text=text, slow=slow)

    @app_commands.command(name="help", description="What studybot can do")
    @app_commands.describe(topic="admin, operator, or a command such as schedule (leave empty for yours)")
    async def help_(self, interaction: discord.Interaction[Any], topic: str | None = None) -> None:
        await self._run(interaction, f"help {topic}" if topic else "help")

    @app_commands.command(description="A question for you now (due reviews first)")
    @app_commands.describe(deck="A deck of this server's (default: this channel's deck)")
    async def quiz(self, interaction: discord.Interaction[Any], deck: str | None = None) -> None:
        await self._run(interaction, f"quiz {_word(deck, '-')}" if deck else "quiz")

    @app_commands.command(description="Answer the last question shown to you here")
    @app_commands.describe(letter="Your choice")
    async def answer(self, interaction: discord.Interaction[Any], letter: Literal["A", "B", "C", "D"]) -> None:
        await self._run(interaction, f"answer {letter}")

    @app_commands.command(description="A tip for your current career step")
    async def tip(self, interaction: discord.Interaction[Any]) -> None:
        await self._run(interaction, "tip")

    @app_commands.command(description="The six career steps and where you stand; mark one done")
    @app_commands.describe(done="Mark this step (1-6) done")
    async def path(
        self, interaction: discord.Interaction[Any], done: app_commands.Range[int, 1, 6] | None = None
    ) -> None:
        await self._run(interaction, "path" if done is None else f"path done {done}")

    @app_commands.command(description="Answers, accuracy, streak and mastery per topic")
    @app_commands.describe(member="Someone else's progress (default: yours)")
    async def progress(self, interaction: discord.Interaction[Any], member: discord.User | None = None) -> None:
        await self._run(interaction, "progress" if member is None else f"progress {member.id}")

    @app_commands.command(description="Top members; hide or show yourself")
    @app_commands.describe(scope="This week (default), all time, or hide/show yourself")
    async def leaderboard(
        self, interaction: discord.Interaction[Any], scope: Literal["week", "all", "hide", "show"] | None = None
    ) -> None:
        await self._run(interaction, "leaderboard" if scope is None else f"leaderboard {scope}")

    @app_commands.command(description="Spaced-repetition reviews due for you (questions and open cards)")
    async def review(self, interaction: discord.Interaction[Any]) -> None:
        await self._run(interaction, "review")

    @app_commands.command(description="Practise an interview question: think or write, show points, rate yourself")
    async def interview(self, interaction: discord.Interaction[Any]) -> None:
        await self._run(interaction, "interview")

    @app_commands.command(description="Flashcards: an open card from a deck, rated Again/Hard/Good/Easy")
    @app_commands.describe(deck="The deck (default: every deck here)")
    async def cards(self, interaction: discord.Interaction[Any], deck: str | None = None) -> None:
        await self._run(interaction, "cards" if deck is None else f"cards {_word(deck, '-')}")

    @app_commands.command(description="Write your answer to the card in front of you (only you see it)")
    @app_commands.describe(answer="Your answer")
    async def write(self, interaction: discord.Interaction[Any], answer: str) -> None:
        await self._run(interaction, f"write {answer}")

    @app_commands.command(description="Show the points (the back) of the card in front of you")
    async def points(self, interaction: discord.Interaction[Any]) -> None:
        await self._run(interaction, "points")

    @app_commands.command(description="Rate yourself on the card in front of you")
    @app_commands.describe(rating="How well you knew it")
    async def rate(
        self, interaction: discord.Interaction[Any], rating: Literal["again", "hard", "good", "easy"]
    ) -> None:
        await self._run(interaction, f"rate {rating}")

    @app_commands.command(description="Your own time zone, for streaks")
    @app_commands.describe(zone="An IANA zone such as Europe/Berlin (empty: show yours)")
    async def timezone(self, interaction: discord.Interaction[Any], zone: str | None = None) -> None:
        await self._run(interaction, "timezone" if zone is None else f"timezone {_word(zone, '_')}")

    @timezone.autocomplete("zone")
    async def _zone_choices(
        self, interaction: discord.Interaction[Any], current: str
    ) -> list[app_commands.Choice[str]]:
        return [app_commands.Choice(name=z, value=z) for z in match_zones(current)]

    @app_commands.command(description="A private reminder in your evening when reviews are due (on/off, HH:MM)")
    @app_commands.describe(switch="on or off (empty: show your setting)", at="Local time HH:MM (default 19:00)")
    async def remind(
        self,
        interaction: discord.Interaction[Any],
        switch: Literal["on", "off"] | None = None,
        at: str | None = None,
    ) -> None:
        words = ["remind", *([switch] if switch else []), *([_word(at, "")] if at else [])]
        await self._run(interaction, " ".join(words))

    @app_commands.command(name="forget-me", description="Delete everything stored about you in this server")
    async def forget_me(self, interaction: discord.Interaction[Any]) -> None:
        await self._run(interaction, "forget-me")

    @app_commands.command(description="Suggest a question or tip for this server")
    @app_commands.describe(kind="A question (default) or a tip", credit="Show your name with it (default: yes)")
    async def suggest(
        self,
        interaction: discord.Interaction[Any],
        kind: Literal["question", "tip"] | None = None,
        credit: bool = True,
    ) -> None:
        await self._run(interaction, f"suggest {kind or 'question'}" + ("" if credit else " anonymous"))


class AdminCommands(app_commands.Group):
    """`/study-admin …`: the admin (and operator) commands, as a second top-level command so that Discord's
    default member permissions (Manage Server) hide them from members; server owners can re-assign who sees
    it in Server Settings → Integrations. The text after ``/study-admin`` is the same grammar as after
    ``/study`` on Slack and the console, and the core still checks the rights of whoever runs one.

    Admin commands of `SPECS` without a typed command here are added by `add_spec_commands`."""

    def __init__(self, frontend: DiscordFrontEnd) -> None:
        super().__init__(
            name=ADMIN_COMMAND.lstrip("/"),
            description="Admins: schedules, checks and settings of studybot in this server",
            default_permissions=_ADMIN,
            guild_only=True,
        )
        self.frontend = frontend

    async def _run(self, interaction: discord.Interaction[Any], text: str, *, slow: bool = False) -> None:
        await self.frontend.serve_interaction(interaction, text=text, slow=slow)

    @app_commands.command(description="CSV of members' progress and per-question analytics")
    async def export(self, interaction: discord.Interaction[Any]) -> None:
        await self._run(interaction, "export", slow=True)

    @app_commands.command(description="Members' suggestions waiting for approval")
    @app_commands.describe(switch="Turn suggestions on or off for this server")
    async def suggestions(
        self, interaction: discord.Interaction[Any], switch: Literal["on", "off"] | None = None
    ) -> None:
        await self._run(interaction, "suggestions" if switch is None else f"suggestions {switch}")

    deck = app_commands.Group(name="deck", description="Your own decks of questions, tips and cards")

    @deck.command(name="import", description="Import a YAML, CSV or JSON file into a deck: dry run, then Confirm")
    @app_commands.describe(
        name="The deck (create it first with /study-admin deck create)",
        file="YAML, CSV or JSON up to 1 MB; Anki (.apkg, .txt) up to 10 MB",
    )
    async def deck_import(self, interaction: discord.Interaction[Any], name: str, file: discord.Attachment) -> None:
        await self.frontend.serve_interaction(interaction, text=f"deck import {_word(name, '-')}", file=file)

    schedule = app_commands.Group(name="schedule", description="This channel's daily post schedule")

    @schedule.command(name="show", description="This channel's schedule")
    async def schedule_show(self, interaction: discord.Interaction[Any]) -> None:
        await self._run(interaction, "schedule show")

    @schedule.command(name="preview", description="The next 7 posts in local time")
    async def schedule_preview(self, interaction: discord.Interaction[Any]) -> None:
        await self._run(interaction, "schedule preview")

    @schedule.command(name="set", description="Post here every chosen day at a local time")
    @app_commands.describe(
        time="24-hour local time, e.g. 09:30",
        tz="IANA time zone, e.g. Europe/Berlin",
        days="daily, mon-fri, weekends or a list like mon,wed,fri",
        kind="What to post",
        reveal="Reveal the answer after this many hours",
        thread="Open a discussion thread on each post (the answer is revealed there)",
        ping="A role to mention on each post (the only mention studybot makes)",
        ping_off="Stop mentioning a role on each post",
    )
    async def schedule_set(
        self,
        interaction: discord.Interaction[Any],
        time: str,
        tz: str | None = None,
        days: str | None = None,
        kind: Literal["question", "tip", "interview", "mix"] | None = None,
        reveal: app_commands.Range[int, 1, 72] | None = None,
        thread: Literal["on", "off"] | None = None,
        ping: discord.Role | None = None,
        ping_off: bool | None = None,
    ) -> None:
        text = f"schedule set {_word(time, '')}"
        if tz is not None:
            text += f" tz {_word(tz, '_')}"
        if days is not None:
            text += f" days {_word(days, '')}"
        if kind is not None:
            text += f" kind {kind}"
        if reveal is not None:
            text += f" reveal {reveal}"
        if thread is not None:
            text += f" thread {thread}"
        if ping is not None:
            text += f" ping {ping.id}"
        elif ping_off:
            text += " ping off"
        await self._run(interaction, text)

    @schedule_set.autocomplete("tz")
    async def _tz_choices(self, interaction: discord.Interaction[Any], current: str) -> list[app_commands.Choice[str]]:
        return [app_commands.Choice(name=z, value=z) for z in match_zones(current)]

    @schedule.command(name="pause", description="Stop posting here until resumed")
    async def schedule_pause(self, interaction: discord.Interaction[Any]) -> None:
        await self._run(interaction, "schedule pause")

    @schedule.command(name="resume", description="Start posting here again")
    async def schedule_resume(self, interaction: discord.Interaction[Any]) -> None:
        await self._run(interaction, "schedule resume")

    @schedule.command(name="skip", description="Skip the next scheduled post")
    async def schedule_skip(self, interaction: discord.Interaction[Any]) -> None:
        await self._run(interaction, "schedule skip")

    @schedule.command(name="post-now", description="Post the next item here now")
    async def schedule_post_now(self, interaction: discord.Interaction[Any]) -> None:
        await self._run(interaction, "schedule post-now")

    rewards = app_commands.Group(name="rewards", description="Roles given for streaks and points")

    @rewards.command(name="show", description="The role rewards of this server")
    async def rewards_show(self, interaction: discord.Interaction[Any]) -> None:
        await self._run(interaction, "rewards show")

    @rewards.command(name="set", description="Give a role when a member reaches a streak or points")
    @app_commands.describe(
        kind="Streak (days in a row) or points", threshold="How many days or points", role="The role to give"
    )
    async def rewards_set(
        self,
        interaction: discord.Interaction[Any],
        kind: Literal["streak", "points"],
        threshold: app_commands.Range[int, 1, 100000],
        role: discord.Role,
    ) -> None:
        await self._run(interaction, f"rewards set {kind} {threshold} {role.id}")

    @rewards.command(name="clear", description="Remove role rewards (roles already given stay)")
    @app_commands.describe(kind="Only this kind (default: all)")
    async def rewards_clear(
        self, interaction: discord.Interaction[Any], kind: Literal["streak", "points"] | None = None
    ) -> None:
        await self._run(interaction, "rewards clear" if kind is None else f"rewards clear {kind}")

    content = app_commands.Group(name="content", description="Operator: the content pack")

    @content.command(name="list", description="What the loaded content pack holds")
    async def content_list(self, interaction: discord.Interaction[Any]) -> None:
        await self._run(interaction, "content list")

    @content.command(name="validate", description="Check the content folder without loading it")
    async def content_validate(self, interaction: discord.Interaction[Any]) -> None:
        await self._run(interaction, "content validate")

    @content.command(name="load", description="Reload the content pack (keeps the old one on errors)")
    async def content_load(self, interaction: discord.Interaction[Any]) -> None:
        await self._run(interaction, "content load")


#: Discord's limits on a command: 25 subcommands (or groups) per level, 100 characters of description.
MAX_SUBCOMMANDS = 25
MAX_DESCRIPTION = 100


def _covered(group: app_commands.Group, words: Sequence[str]) -> bool:
    """Whether a typed command already serves this path: the path itself, or a command above it that takes
    the rest as an option (``path`` with its ``done`` option serves ``path done``)."""
    node: app_commands.Group | app_commands.Command[Any, ..., Any] = group
    for word in words:
        if not isinstance(node, app_commands.Group):
            return True
        child = node.get_command(word)
        if child is None:
            return False
        node = child
    return True


def _spec_command(name: str, text: str, spec: Spec) -> app_commands.Command[Any, ..., Any]:
    """A command for a `Spec` without a typed one: its arguments, if the usage has any, go in one text
    option ``options`` (described by the usage), so ``/study-admin deck import options:x.yaml dry-run``
    reaches the core as ``deck import x.yaml dry-run``."""
    words = text.split()
    rest = spec.usage.split(None, len(words) + 1)[len(words) + 1 :]
    args = rest[0] if rest else ""
    description = spec.summary[:MAX_DESCRIPTION] or name

    async def run_with(interaction: discord.Interaction[Any], options: str | None = None) -> None:
        client = interaction.client
        if isinstance(client, StudyClient):
            await client.frontend.serve_interaction(interaction, text=f"{text} {options or ''}".strip())

    async def run(interaction: discord.Interaction[Any]) -> None:
        client = interaction.client
        if isinstance(client, StudyClient):
            await client.frontend.serve_interaction(interaction, text=text)

    if args:
        callback: Any = app_commands.describe(options=args[:MAX_DESCRIPTION])(run_with)
    else:
        callback = run
    return app_commands.Command(name=name, description=description, callback=callback)


def add_spec_commands(group: app_commands.Group, *, restricted: bool) -> list[str]:
    """Add a command to ``group`` for every `SPECS` entry (admin ones when ``restricted``, member ones
    otherwise) that has no typed command there yet, so a command added to the core's grammar reaches
    Discord without adapter code. ``schedule.set`` → ``schedule set``; a third word joins the second
    (``a.b.c`` → ``a b-c``: Discord nests two levels deep). Returns the spec names added; one that would
    pass Discord's 25-per-level limit is left out with an error in the log."""
    added: list[str] = []
    for spec_name, spec in SPECS.items():
        if spec.restricted != restricted:
            continue
        words = spec_name.split(".")
        if _covered(group, words):
            continue
        parent = group
        if len(words) > 1:
            found = group.get_command(words[0])
            if found is None:
                if len(group.commands) >= MAX_SUBCOMMANDS:
                    log.error("Discord: no room for /%s %s (25 per level)", group.name, words[0])
                    continue
                found = app_commands.Group(name=words[0], description=f"{words[0].capitalize()} commands")
                group.add_command(found)
            if not isinstance(found, app_commands.Group):
                continue  # a typed command of that name takes the rest as its options
            parent = found
        leaf = "-".join(words[1:]) if len(words) > 1 else words[0]
        if len(parent.commands) >= MAX_SUBCOMMANDS:
            log.error("Discord: no room for /%s %s (25 per level)", group.name, " ".join(words))
            continue
        parent.add_command(_spec_command(leaf, " ".join(words), spec))
        added.append(spec_name)
    return added


#: Every `/study` subcommand path Discord knows, e.g. ``"schedule set"`` (for tests and docs).
def command_paths(group: app_commands.Group) -> list[str]:
    """The full names of the commands under ``group`` (``"quiz"``, ``"schedule set"`` …)."""
    out: list[str] = []
    for cmd in group.commands:
        if isinstance(cmd, app_commands.Group):
            out += [f"{cmd.name} {sub}" for sub in command_paths(cmd)]
        else:
            out.append(cmd.name)
    return out


# ---------------------------------------------------------------------------------------------- client


class _Tree(app_commands.CommandTree["StudyClient"]):
    async def on_error(
        self, interaction: discord.Interaction[StudyClient], error: app_commands.AppCommandError
    ) -> None:
        await self.client.frontend.report_error(interaction, getattr(error, "original", error))


class StudyClient(discord.Client):
    """The discord.py client: no privileged intents (guilds only), mentions off, commands in ``tree``.

    ``identify_delay``: Discord accepts one IDENTIFY per 5 s in each rate-limit bucket
    (``shard_id % max_concurrency``); later shards of a bucket wait that long after the previous one."""

    def __init__(self, frontend: DiscordFrontEnd, *, identify_delay: float = IDENTIFY_DELAY, **options: Any) -> None:
        intents = discord.Intents.none()
        intents.guilds = True
        super().__init__(intents=intents, allowed_mentions=discord.AllowedMentions.none(), **options)
        self.frontend = frontend
        self.tree = _Tree(self)
        members, admins = StudyCommands(frontend), AdminCommands(frontend)
        add_spec_commands(members, restricted=False)
        add_spec_commands(admins, restricted=True)
        self.tree.add_command(members)
        self.tree.add_command(admins)
        self.identify_delay = identify_delay
        #: From Discord's session start limit (sharded clients ask for it at start).
        self.max_concurrency = 1
        self._identified_at: dict[int, float] = {}

    async def setup_hook(self) -> None:
        await self.frontend.sync_commands()

    async def on_interaction(self, interaction: discord.Interaction[Any]) -> None:
        # Button clicks and modal submits are served by their custom id, read from the payload: a button on a
        # message from before a restart works, and so does a modal opened before one (discord.py's modal
        # store forgets every modal at a restart; a member may take minutes to fill one in).
        kind = interaction.type
        if kind is not discord.InteractionType.component and kind is not discord.InteractionType.modal_submit:
            return
        data: Any = interaction.data or {}
        custom_id = data.get("custom_id")
        if not isinstance(custom_id, str):
            return
        try:
            if kind is discord.InteractionType.modal_submit:
                if custom_id.startswith("sb:form:"):
                    values = submitted_values(data.get("components") or [])
                    await self.frontend.serve_interaction(interaction, action=custom_id, values=values)
            elif data.get("component_type") == discord.ComponentType.button.value:
                if CORE_BUTTON.fullmatch(custom_id):
                    await self.frontend.serve_interaction(interaction, action=custom_id)
                elif reopen := REOPEN_BUTTON.fullmatch(custom_id):
                    await self.frontend.reopen(interaction, reopen.group("token"))
        except Exception as e:
            await self.frontend.report_error(interaction, e)

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        # discord.py sleeps 5 s before every IDENTIFY but a process's first; the limit is per bucket, so a
        # bucket's first IDENTIFY (or one long after the last) need not wait at all.
        bucket = (shard_id or 0) % max(1, self.max_concurrency)
        loop = asyncio.get_running_loop()
        last = self._identified_at.get(bucket)
        if last is not None:
            wait = last + self.identify_delay - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
        self._identified_at[bucket] = loop.time()

    async def on_ready(self) -> None:
        log.info("Discord: connected as %s to %d server(s)%s", self.user, len(self.guilds), self.frontend.shard_note())
        self.frontend.ready.set()


class ShardedStudyClient(StudyClient, discord.AutoShardedClient):
    """`StudyClient` as an `AutoShardedClient`: runs the shards in ``shard_ids`` (all when None) of
    ``shard_count`` (asked of Discord when None). Guilds live on shard ``(guild_id >> 22) % shard_count``."""

    async def setup_hook(self) -> None:
        limits = await self.fetch_session_start_limits()
        self.max_concurrency = max(1, limits.max_concurrency)
        wanted = len(self.shard_ids) if self.shard_ids is not None else (self.shard_count or 1)
        if limits.remaining < wanted:
            hours = limits.reset_after / 3_600_000
            raise DiscordStartError(
                f"Discord allows {limits.remaining} more gateway session start(s) for this token until the limit "
                f"resets in {hours:.1f} h; this process needs {wanted} (one per shard)."
            )
        await super().setup_hook()


class DiscordFrontEnd:
    """Serves `/study` on Discord and posts for the core (`ChatGateway`).

    ``guild_id`` syncs the commands to that one server (instant, for testing) instead of globally.
    ``run`` raises `DiscordStartError` on a rejected token; ``post``/``edit`` raise `DeliveryError`.
    """

    platform = "discord"

    def __init__(
        self,
        service: StudyService,
        token: str,
        *,
        guild_id: int | None = None,
        defer_after: float = DEFER_AFTER,
        ready_timeout: float = 30.0,
        posts_per_second: float | None = POSTS_PER_SECOND,
        shard_count: int | Literal["auto"] | None = None,
        shard_ids: Sequence[int] | None = None,
        owners: Collection[str] = (),
        **client_options: Any,
    ) -> None:
        self.service = service
        #: Discord user ids of the bot's operators (``STUDYBOT_OWNERS``), as strings.
        self.owners = frozenset(owners)
        self._token = token
        self.guild_id = guild_id
        self.defer_after = defer_after
        self.ready_timeout = ready_timeout
        self.ready = asyncio.Event()
        self._inflight: set[asyncio.Task[Any]] = set()
        #: Interactions in hand without their first response yet, and an event set when there are none.
        self._unacked = 0
        self._acks_out = asyncio.Event()
        self._acks_out.set()
        #: Forms offered again with errors, by token: (user id, form, expiry on the loop's clock).
        self._drafts: OrderedDict[str, tuple[int, Form, float]] = OrderedDict()
        self.pacer = Pacer(posts_per_second)
        self.client: StudyClient
        if shard_count is None:
            self.client = StudyClient(self, **client_options)
        else:
            self.client = ShardedStudyClient(
                self,
                shard_count=None if shard_count == "auto" else shard_count,
                shard_ids=list(shard_ids) if shard_ids is not None else None,
                **client_options,
            )

    @classmethod
    def from_settings(cls, service: StudyService, settings: Settings, **client_options: Any) -> DiscordFrontEnd:
        """Build from `Settings`; raises `DiscordStartError` when ``DISCORD_TOKEN`` is not set."""
        if settings.discord_token is None:
            raise DiscordStartError("DISCORD_TOKEN is not set")
        return cls(
            service,
            settings.discord_token.get_secret_value(),
            guild_id=settings.discord_guild,
            shard_count=settings.discord_shards,
            shard_ids=settings.discord_shard_id_list,
            owners=settings.owners_on("discord"),
            posts_per_second=settings.discord_posts_per_second,
            **client_options,
        )

    @property
    def shard_ids(self) -> list[int] | None:
        """The shards this process runs (None: not sharded)."""
        client = self.client
        if not isinstance(client, discord.AutoShardedClient):
            return None
        return list(client.shard_ids) if client.shard_ids is not None else list(range(client.shard_count or 1))

    def shard_note(self) -> str:
        """`` on shard(s) 0, 1 of 4`` for log lines; empty when not sharded."""
        ids = self.shard_ids
        if ids is None:
            return ""
        return f" on shard(s) {', '.join(map(str, ids))} of {self.client.shard_count}"

    # -------------------------------------------------------------------------------- lifecycle

    async def run(self) -> None:
        """Log in, sync the commands, connect and serve until `close`. Raises `DiscordStartError` when
        Discord rejects the token."""
        try:
            async with self.client:
                await self.client.start(self._token)
        except discord.LoginFailure:
            raise DiscordStartError(
                "Discord rejected DISCORD_TOKEN (401 Unauthorized). Copy a fresh token from the Developer "
                "Portal (your app → Bot → Reset Token) into DISCORD_TOKEN."
            ) from None
        except discord.GatewayNotFound:
            raise DiscordStartError("Discord did not say how to reach its gateway (GET /gateway/bot failed)") from None
        except discord.PrivilegedIntentsRequired:  # we ask for none; kept for a clear message if that changes
            raise DiscordStartError("Discord refused a privileged intent; studybot needs none.") from None

    async def close(self) -> None:
        """Let interactions in flight finish (up to `DRAIN_SECONDS`), then disconnect and close the HTTP
        session. Safe to call twice, or before `run`."""
        if self._inflight:
            _, pending = await asyncio.wait(set(self._inflight), timeout=DRAIN_SECONDS)
            if pending:
                log.warning("Discord: closing with %d interaction(s) still being answered", len(pending))
        await self.client.close()

    async def drain(self) -> None:
        """Wait until every interaction being answered (follow-ups such as charts included) has finished."""
        while self._inflight:
            await asyncio.gather(*set(self._inflight), return_exceptions=True)

    async def sync_commands(self) -> None:
        """Register `/study` globally, or in ``guild_id`` only (instant). Logs (does not raise) on failure:
        commands synced earlier keep working. With shards split over processes only the process that runs
        shard 0 syncs: the commands are the same for every shard."""
        tree = self.client.tree
        ids = self.shard_ids
        if ids is not None and 0 not in ids:
            log.info("Discord: commands are synced by the process that runs shard 0")
            return
        try:
            if self.guild_id is not None:
                guild = discord.Object(id=self.guild_id)
                tree.copy_global_to(guild=guild)
                synced = await tree.sync(guild=guild)
                log.info("Discord: synced %d command(s) to server %s", len(synced), self.guild_id)
            else:
                synced = await tree.sync()
                log.info("Discord: synced %d global command(s) (may take a while to show up)", len(synced))
        except discord.Forbidden:
            log.error(
                "Discord: not allowed to register commands in server %s: invite the bot with the "
                "applications.commands scope (studybot invite-url)",
                self.guild_id,
            )
        except discord.HTTPException as e:
            log.error("Discord: could not sync commands: %s %s", e.status, e.text)

    # -------------------------------------------------------------------------------- interactions

    def inbound(
        self,
        interaction: discord.Interaction[Any],
        *,
        text: str = "",
        action: str | None = None,
        values: dict[str, str] | None = None,
        files: tuple[Attachment, ...] = (),
    ) -> Inbound:
        """The core's view of an interaction. ``is_admin`` is Manage Server (or Administrator) in that channel;
        ``is_operator``, the user being one of ``STUDYBOT_OWNERS`` (whatever the server)."""
        perms = interaction.permissions
        user = interaction.user
        return Inbound(
            platform="discord",
            group=str(interaction.guild_id) if interaction.guild_id is not None else "",
            channel=str(interaction.channel_id),
            user=str(user.id),
            user_name=user.display_name,
            text=text,
            action=action,
            is_admin=interaction.guild_id is not None and bool(perms.manage_guild or perms.administrator),
            is_operator=str(user.id) in self.owners,
            group_name=interaction.guild.name if interaction.guild and interaction.guild.name else "",
            channel_name=getattr(interaction.channel, "name", None) or "",
            values=values,
            files=files,
        )

    async def serve_interaction(
        self,
        interaction: discord.Interaction[Any],
        *,
        text: str = "",
        action: str | None = None,
        slow: bool = False,
        values: dict[str, str] | None = None,
        file: discord.Attachment | None = None,
    ) -> None:
        """Answer one command (``text``), click (``action``) or form submit (``action`` and ``values``): core
        call, then the replies. A reply not ready within `defer_after` (or a slow command) is deferred
        first and followed up. Follow-ups (`Reply.later`: the progress chart) wait until every interaction in
        hand has had its first response (`_after_acks`). An attached ``file`` is fetched (after deferring) and
        handed to the core, unless it is larger than a deck file may be: then only its size goes."""
        # Outside a server only buttons work (a reminder's "Quiz me" in a DM names the member it is for).
        if (interaction.guild_id is None and action is None) or interaction.channel_id is None:
            await interaction.response.send_message(NOT_IN_SERVER, ephemeral=True)
            return
        task = asyncio.current_task()
        if task is not None:  # so that close() can wait for the answer (and its follow-ups) to go out
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)
        files: tuple[Attachment, ...] = ()
        if file is not None:
            await self._defer(interaction)
            if file.size > UPLOAD_MAX_BYTES:
                files = (Attachment(file.filename, b"", file.content_type or "", size=file.size),)
            else:
                files = (Attachment(file.filename, await file.read(), file.content_type or ""),)
        inbound = self.inbound(interaction, text=text, action=action, values=values, files=files)
        self._unacked += 1
        self._acks_out.clear()
        acked = False
        try:
            if slow and not _responded(interaction):
                await self._defer(interaction)
            replies = await self._within_window(interaction, self.service.handle(inbound))
            if any(r.slow for r in replies) and not _responded(interaction):
                await self._defer(interaction)  # uploads go out as a follow-up, not inside the 3 s window
            pending = list(replies)
            while pending:
                reply = pending.pop(0)
                await self.send_reply(interaction, reply)
                if not acked:
                    acked = True
                    self._acked()
                if reply.later is not None:  # e.g. the progress chart, after the text
                    await self._after_acks()
                    pending[:0] = await followups(reply)
        finally:
            if not acked:
                self._acked()

    async def _within_window(self, interaction: discord.Interaction[Any], work: Awaitable[list[Reply]]) -> list[Reply]:
        """``work``'s replies; if they are not ready within `defer_after`, the interaction is deferred
        meanwhile (Discord wants a first response within 3 s), and the replies then edit that response."""
        if _responded(interaction):  # deferred already (a slow command, or to fetch a file)
            return await work
        deferring: list[asyncio.Task[None]] = []
        timer = asyncio.get_running_loop().call_later(
            self.defer_after, lambda: deferring.append(asyncio.ensure_future(self._defer(interaction)))
        )
        try:
            return await work
        finally:
            timer.cancel()
            if deferring:
                await deferring[0]

    def _acked(self) -> None:
        self._unacked -= 1
        if self._unacked == 0:
            self._acks_out.set()

    async def _after_acks(self) -> None:
        """Wait (at most `FOLLOWUP_WAIT` s) until every interaction in hand has had its first response.
        Follow-ups (the progress chart: its data, then a file upload, 2.6–3.2 ms of this process's CPU each
        in bench P1) can wait; an acknowledgement is due within 3 s, and in a burst every chart sent first delays the
        acknowledgements still to go."""
        if self._unacked:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._acks_out.wait(), FOLLOWUP_WAIT)

    @staticmethod
    async def _defer(interaction: discord.Interaction[Any]) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        interaction.extras["sb_deferred"] = True

    async def send_reply(self, interaction: discord.Interaction[Any], reply: Reply) -> None:
        """Send one `Reply`: as the response, as the edit of a deferred response, or as a follow-up.
        Long text is split into several messages; buttons and files go with the last. A form opens as a
        modal when the interaction can still answer with one, else see `offer_again`."""
        if reply.form is not None:
            can_open = (
                not _responded(interaction)
                and interaction.type is not discord.InteractionType.modal_submit
                and not reply.form.errors
            )
            if can_open:
                await interaction.response.send_modal(modal(reply.form))
                return
            reply = self.offer_again(interaction, reply, reply.form)
        parts = chunks(render(reply.text) or "\u200b")
        for i, text in enumerate(parts):
            last = i == len(parts) - 1
            buttons = reply.buttons if last else ()
            attachments = reply.attachments if last else ()
            if not attachments and not _responded(interaction):
                await self._answer(interaction, text, private=reply.private, buttons=buttons)
                continue
            files = _files(attachments)
            extra: dict[str, Any] = {}
            if (view := _view(buttons)) is not None:
                extra["view"] = view
            if not _responded(interaction):
                await interaction.response.send_message(text, ephemeral=reply.private, files=files, **extra)
            elif interaction.extras.get("sb_deferred") and not interaction.extras.get("sb_original"):
                interaction.extras["sb_original"] = True
                await interaction.edit_original_response(content=text, attachments=files, **extra)
            else:
                await interaction.followup.send(text, ephemeral=reply.private, files=files, **extra)

    async def _answer(
        self, interaction: discord.Interaction[Any], text: str, *, private: bool, buttons: Sequence[Button]
    ) -> None:
        """The interaction's response (a message), posted to Discord's callback endpoint by discord.py's own
        webhook adapter (its retries on 5xx and 429 included), as `InteractionResponse.send_message` posts it
        — but without asking Discord to send the message back (``with_response``), which discord.py would
        parse into a `Message` and more that nothing here reads (~10% of the event loop in P1's profile)."""
        data: dict[str, Any] = {"content": text, "allowed_mentions": _NO_MENTIONS}
        if private:
            data["flags"] = EPHEMERAL
        if buttons:
            data["components"] = _components(buttons)
        route = discord.http.Route(
            "POST",
            "/interactions/{webhook_id}/{webhook_token}/callback",
            webhook_id=interaction.id,
            webhook_token=interaction.token,
        )
        await async_context.get().request(route, interaction._session, payload={"type": 4, "data": data})
        interaction.extras["sb_responded"] = True

    def offer_again(self, interaction: discord.Interaction[Any], reply: Reply, form: Form) -> Reply:
        """``reply`` as a private message with a "Fix the form" button that reopens ``form`` (kept here
        for `DRAFT_SECONDS`, for this member only): a modal submit cannot be answered with a modal."""
        token = secrets.token_hex(8)
        loop = asyncio.get_running_loop()
        self._drafts[token] = (interaction.user.id, form, loop.time() + DRAFT_SECONDS)
        while len(self._drafts) > MAX_DRAFTS:
            self._drafts.popitem(last=False)
        button = Button(f"sbx:form:{token}", "Fix the form" if form.errors else "Open the form", "primary")
        text = reply.text if form.errors else f"{reply.text}\nOpen it with the button."
        return Reply(text, private=True, buttons=(*reply.buttons, button))

    async def reopen(self, interaction: discord.Interaction[Any], token: str) -> None:
        """The "Fix the form" button: the form again, prefilled, errors under the fields."""
        draft = self._drafts.get(token)
        if draft is None or draft[2] < asyncio.get_running_loop().time():
            self._drafts.pop(token, None)
            await interaction.response.send_message(
                "That form has expired (or the bot restarted); run the command again.", ephemeral=True
            )
            return
        if draft[0] != interaction.user.id:
            await interaction.response.send_message("That form is someone else's.", ephemeral=True)
            return
        await interaction.response.send_modal(modal(draft[1]))

    async def report_error(self, interaction: discord.Interaction[Any], error: BaseException) -> None:
        """Log an unexpected error with its traceback and tell the member privately (never the details)."""
        command = interaction.command.qualified_name if interaction.command else "button"
        log.error(
            "Discord: error in %s (interaction %s, user %s)",
            command,
            interaction.id,
            interaction.user.id,
            exc_info=(type(error), error, error.__traceback__),
        )
        if interaction.type is discord.InteractionType.autocomplete:
            return
        try:
            if not _responded(interaction):
                await interaction.response.send_message(ERROR_TEXT, ephemeral=True)
            elif interaction.extras.get("sb_deferred") and not interaction.extras.get("sb_original"):
                interaction.extras["sb_original"] = True
                await interaction.edit_original_response(content=ERROR_TEXT)
            else:
                await interaction.followup.send(ERROR_TEXT, ephemeral=True)
        except Exception:
            log.warning("Discord: could not tell the member about the error", exc_info=True)

    # -------------------------------------------------------------------------------- ChatGateway

    async def _connected(self) -> None:
        try:
            await asyncio.wait_for(self.ready.wait(), self.ready_timeout)
        except TimeoutError:
            raise DeliveryError("not connected to Discord yet", retryable=True) from None
        if self.client.is_closed():
            raise DeliveryError("the Discord client is closed", retryable=True)

    async def post(self, post: Post) -> SentMessage:
        """Post to a channel (``post.channel`` is its id) with the buttons and files. ``post.key`` goes out as
        the message nonce with ``enforce_nonce``: Discord answers a repeat within a few minutes with the
        earlier message, so discord.py's own retries after a 5xx never post twice. Raises `DeliveryError`:
        ``forbidden`` for Missing Access or an unknown channel, ``retryable`` for 5xx and network errors.
        429s are waited out by discord.py."""
        cid = _channel_id(post.channel)
        await self._connected()
        rendered = render(post.text)
        text = _fit(rendered)
        if text != rendered:
            log.warning("Discord: post to channel %s cut to %d characters", cid, MAX_CONTENT)
        if post.mention_role is not None and post.mention_role.isdigit():
            # The one mention studybot ever makes: the role an admin chose, and nothing else in the text.
            text = _fit(f"<@&{post.mention_role}> {rendered}")
        try:
            channel: Any
            if post.thread is not None:
                channel = self.client.get_partial_messageable(_channel_id(post.thread), guild_id=_guild(post.group))
            else:
                channel = self.client.get_channel(cid) or await self.client.fetch_channel(cid)
            if not isinstance(channel, discord.abc.Messageable):
                raise DeliveryError(f"Discord channel {cid} is not a text channel", retryable=False, forbidden=True)
            extra: dict[str, Any] = {}
            if post.mention_role is not None and post.mention_role.isdigit():
                extra["allowed_mentions"] = discord.AllowedMentions(
                    everyone=False, users=False, roles=[discord.Object(int(post.mention_role))], replied_user=False
                )
            view = _view(post.buttons)
            if view is not None:
                extra["view"] = view
            if post.key is not None:
                extra["nonce"] = post.key
            await self.pacer.wait()
            message = await channel.send(text, files=_files(post.attachments), **extra)
        except DeliveryError:
            raise
        except Exception as e:
            raise _delivery_error(e, f"post to channel {cid}") from e
        return SentMessage(post.channel, str(message.id))

    async def send_direct(self, user: str, post: Post) -> SentMessage:
        """Send ``post`` to ``user`` by direct message (``POST /users/@me/channels``, then the message, with
        ``post.key`` as its nonce). Raises `DeliveryError`: ``forbidden`` when Discord answers 50007 (the
        member does not accept direct messages from the bot), ``retryable`` for 5xx and network errors."""
        if not user.isdigit():
            raise DeliveryError(f"{user!r} is not a Discord user id", retryable=False)
        await self._connected()
        text = _fit(render(post.text))
        try:
            await self.pacer.wait()  # opening the DM is a REST request too: paced with the posts
            channel = await self.client.create_dm(discord.Object(id=int(user)))
            extra: dict[str, Any] = {}
            view = _view(post.buttons)
            if view is not None:
                extra["view"] = view
            if post.key is not None:
                extra["nonce"] = post.key
            await self.pacer.wait()
            message = await channel.send(text, **extra)
        except discord.Forbidden as e:
            if e.code == CANNOT_MESSAGE_USER:
                raise DeliveryError(
                    f"direct message to {user}: cannot send messages to this user (50007)",
                    retryable=False,
                    forbidden=True,
                ) from e
            raise _delivery_error(e, f"direct message to {user}") from e
        except Exception as e:
            raise _delivery_error(e, f"direct message to {user}") from e
        return SentMessage(str(channel.id), str(message.id))

    # -------------------------------------------------------------------------------- native touches

    async def check_access(self, channel: str, group: str) -> ChannelAccess:
        """What studybot may do in a channel, from the guild's roles and the channel's overwrites
        (``channel.permissions_for(guild.me)``), each missing permission with its fix. Raises `DeliveryError`."""
        cid = _channel_id(channel)
        await self._connected()
        found = self.client.get_channel(cid)
        if found is None:
            try:
                found = await self.client.fetch_channel(cid)
            except (discord.Forbidden, discord.NotFound):
                fix = (
                    "the bot cannot see this channel: give its role View Channel here (channel settings → Permissions)"
                )
                return ChannelAccess(tuple(Ability(k, label, False, fix) for k, label in _LABELS.items() if k != "dm"))
            except Exception as e:
                raise _delivery_error(e, f"read channel {cid}") from e
        guild = getattr(found, "guild", None)
        if guild is None or not isinstance(found, discord.abc.GuildChannel | discord.Thread):
            raise DeliveryError(f"Discord channel {cid} is not in a server", retryable=False)
        if self.client.get_guild(guild.id) is None:
            # Another shard's server (shards split over processes): without its roles here, any answer would
            # be a guess, so say so instead.
            raise DeliveryError(f"server {guild.id} is served by another shard's process", retryable=True)
        me = guild.me
        if me is None:
            try:
                me = await guild.fetch_member(self.client.user.id if self.client.user else 0)
            except Exception as e:
                raise _delivery_error(e, f"read studybot's member in server {guild.id}") from e
        here = found.permissions_for(me)
        server = me.guild_permissions
        where = "this channel's settings → Permissions → studybot's role"
        return ChannelAccess(
            (
                Ability("view", _LABELS["view"], here.view_channel, f"allow View Channel ({where})"),
                Ability("send", _LABELS["send"], here.send_messages, f"allow Send Messages ({where})"),
                Ability("attach", _LABELS["attach"], here.attach_files, f"allow Attach Files ({where})"),
                Ability(
                    "history",
                    _LABELS["history"],
                    here.read_message_history,
                    f"allow Read Message History ({where}); without it a post may repeat after a crash",
                ),
                Ability(
                    "threads",
                    _LABELS["threads"],
                    here.create_public_threads and here.send_messages_in_threads,
                    f"allow Create Public Threads and Send Messages in Threads ({where})",
                ),
                Ability(
                    "roles",
                    _LABELS["roles"],
                    server.manage_roles,
                    "give studybot's role Manage Roles (Server Settings → Roles) and drag it above the reward roles",
                ),
                Ability(
                    "dm",
                    _LABELS["dm"],
                    None,
                    "Discord lets the bot DM a member who allows direct messages from server members",
                ),
            )
        )

    async def open_thread(self, channel: str, message_id: str, title: str, group: str) -> str:
        """A public thread on a posted message (``POST /channels/{id}/messages/{id}/threads``); its id is the
        message's. A thread already there (Discord's 160004) is that one: nothing new is opened. Raises
        `DeliveryError`."""
        cid = _channel_id(channel)
        if not message_id.isdigit():
            raise DeliveryError(f"{message_id!r} is not a Discord message id", retryable=False)
        await self._connected()
        try:
            await self.pacer.wait()
            thread = await self.client.http.start_thread_with_message(
                cid, int(message_id), name=title[:100] or "Discussion", auto_archive_duration=1440
            )
        except discord.HTTPException as e:
            if e.code == THREAD_EXISTS:
                return message_id
            raise _delivery_error(e, f"open a thread on message {message_id}") from e
        except Exception as e:
            raise _delivery_error(e, f"open a thread on message {message_id}") from e
        return str(thread["id"])

    async def role_problem(self, group: str, role: str) -> str | None:
        """Why studybot cannot give ``role`` in the server (None: it can): it needs Manage Roles and a highest
        role above the one given; @everyone and roles of integrations cannot be given at all."""
        await self._connected()
        guild = self.client.get_guild(_guild(group) or 0)
        if guild is None:
            return "studybot does not see this server"
        found = guild.get_role(int(role)) if role.isdigit() else None
        if found is None:
            return "that role is not in this server"
        if found.is_default() or found.managed:
            return "that role cannot be given by anyone (it is @everyone or belongs to an integration)"
        me = guild.me
        if me is None:
            return "studybot cannot see its own roles in this server yet; try again in a minute"
        if not me.guild_permissions.manage_roles:
            return "studybot lacks Manage Roles — give its role that permission in Server Settings → Roles"
        if found >= me.top_role:
            return (
                f"studybot's highest role ({me.top_role.name}) is not above {found.name} — drag studybot's role "
                "above it in Server Settings → Roles"
            )
        return None

    async def grant_role(self, group: str, user: str, role: str) -> None:
        """``PUT /guilds/{id}/members/{id}/roles/{id}`` (a no-op on Discord's side if the member has it).
        Raises `DeliveryError` (``forbidden`` without Manage Roles or for a role above the bot's)."""
        gid = _guild(group)
        if gid is None or not user.isdigit() or not role.isdigit():
            raise DeliveryError(f"cannot grant role {role!r} to {user!r} in {group!r}", retryable=False)
        await self._connected()
        try:
            await self.pacer.wait()
            await self.client.http.add_role(gid, int(user), int(role), reason="studybot reward")
        except Exception as e:
            raise _delivery_error(e, f"give role {role} to {user}") from e

    async def find(self, post: Post, since: datetime) -> str | None:
        """The id of the bot's own message in ``post.channel`` after ``since`` that is ``post``: one carrying
        any of its buttons' ids (answer buttons name the post), or for a post without buttons the same text
        (``GET /channels/{id}/messages``; needs Read Message History). Raises `DeliveryError`."""
        cid = _channel_id(post.channel)
        await self._connected()
        me = self.client.user.id if self.client.user else None
        wanted = {b.action_id for b in post.buttons}
        text = _fit(render(post.text))
        if post.mention_role is not None and post.mention_role.isdigit():
            text = _fit(f"<@&{post.mention_role}> {render(post.text)}")
        where = _channel_id(post.thread) if post.thread is not None else cid
        try:
            await self.pacer.wait()
            found: list[Any] = await self.client.http.logs_from(
                where, FIND_LIMIT, after=discord.utils.time_snowflake(since)
            )
        except Exception as e:
            raise _delivery_error(e, f"read the messages of channel {cid}") from e
        for message in found:
            if me is not None and str(message.get("author", {}).get("id")) != str(me):
                continue
            ids = {c.get("custom_id") for row in message.get("components") or [] for c in row.get("components") or []}
            if (wanted and wanted & ids) or (not wanted and not ids and message.get("content") == text):
                return str(message["id"])
        return None

    async def edit(
        self, channel: str, message_id: str, text: str, buttons: Sequence[Button] = (), *, group: str = ""
    ) -> None:
        """Replace a posted message's text and buttons (none: buttons removed). Raises `DeliveryError`."""
        cid = _channel_id(channel)
        if not message_id.isdigit():
            raise DeliveryError(f"{message_id!r} is not a Discord message id", retryable=False)
        await self._connected()
        text = _fit(render(text))
        try:
            message = self.client.get_partial_messageable(cid).get_partial_message(int(message_id))
            await self.pacer.wait()
            await message.edit(content=text, view=_view(buttons))
        except Exception as e:
            raise _delivery_error(e, f"edit message {message_id} in channel {cid}") from e


def _fit(text: str) -> str:
    """``text`` as posted: cut to Discord's limit."""
    return text if len(text) <= MAX_CONTENT else text[: MAX_CONTENT - 1] + "…"


#: The self-check's abilities as Discord names them.
_LABELS = {
    "view": "View the channel",
    "send": "Send messages (daily posts)",
    "attach": "Attach files",
    "history": "Read message history",
    "threads": "Create discussion threads",
    "roles": "Manage roles (role rewards)",
    "dm": "DM members",
}
#: Discord's error code for "A thread has already been created for this message".
THREAD_EXISTS = 160004


def _guild(group: str) -> int | None:
    return int(group) if group.isdigit() else None


def _channel_id(channel: str) -> int:
    if not channel.isdigit():
        raise DeliveryError(f"{channel!r} is not a Discord channel id", retryable=False)
    return int(channel)


def _delivery_error(e: Exception, what: str) -> DeliveryError:
    """Map a discord.py/network failure to the core's `DeliveryError`."""
    if isinstance(e, discord.Forbidden):
        return DeliveryError(f"{what}: no access ({e.text or 'Missing Access'})", retryable=False, forbidden=True)
    if isinstance(e, discord.NotFound):
        unknown_channel = e.code == 10003
        return DeliveryError(f"{what}: not found ({e.text})", retryable=False, forbidden=unknown_channel)
    if isinstance(e, discord.RateLimited):
        return DeliveryError(f"{what}: rate limited", retryable=True, retry_after=e.retry_after, rate_limited=True)
    if isinstance(e, discord.DiscordServerError):
        return DeliveryError(f"{what}: Discord error {e.status}", retryable=True, maybe_sent=True)
    if isinstance(e, discord.HTTPException) and e.status == 429:
        # a 429 discord.py did not wait out: out of tries, or without Via (a Cloudflare-level limit)
        return DeliveryError(f"{what}: rate limited", retryable=True, retry_after=_retry_after(e), rate_limited=True)
    if isinstance(e, discord.HTTPException):
        server = e.status >= 500
        return DeliveryError(f"{what}: rejected ({e.status} {e.text})", retryable=server, maybe_sent=server)
    if isinstance(e, aiohttp.ClientError | OSError | TimeoutError):
        return DeliveryError(f"{what}: network error ({type(e).__name__})", retryable=True, maybe_sent=True)
    return DeliveryError(f"{what}: {type(e).__name__}", retryable=False)


def _retry_after(e: discord.HTTPException) -> float | None:
    try:
        return float(e.response.headers.get("Retry-After", ""))
    except (TypeError, ValueError, AttributeError):
        return None
