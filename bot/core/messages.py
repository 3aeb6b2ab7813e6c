"""The messages the core speaks: what comes in from a front end and what goes out."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from bot.core.forms import Form

log = logging.getLogger(__name__)

Platform = Literal["discord", "slack", "console"]
ButtonStyle = Literal["primary", "secondary", "success", "danger"]

#: Longest command text the core will parse; anything longer is refused with a clear message.
MAX_COMMAND_CHARS = 500


@dataclass(frozen=True, slots=True)
class Inbound:
    """One thing a member did: a `/study …` command (``text``) or a button click (``action``).

    ``group``, ``channel`` and ``user`` are the platform's own ids (guild/team, channel, user).
    ``is_admin`` is decided by the adapter from the platform's permissions (a group admin);
    ``is_operator`` means the person running this bot (``STUDYBOT_OWNERS``, the console user), who
    may also do what affects every group, such as reloading the shipped content pack.
    ``values`` is set for a form submission (``action`` is then the form's action id): field key → text.
    """

    platform: Platform
    group: str
    channel: str
    user: str
    user_name: str = ""
    text: str = ""
    action: str | None = None
    is_admin: bool = False
    group_name: str = ""
    channel_name: str = ""
    is_operator: bool = False
    values: Mapping[str, str] | None = None
    #: Files the member attached to the command (a deck to import); the adapter has read them.
    files: tuple[Attachment, ...] = ()

    @property
    def can_admin(self) -> bool:
        """Group admin rights: a group admin, or the operator (who has every admin right)."""
        return self.is_admin or self.is_operator


@dataclass(frozen=True, slots=True)
class Button:
    """A clickable button. ``action_id`` is stable across restarts (see `actions.py`)."""

    action_id: str
    label: str
    style: ButtonStyle = "secondary"


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file to send along with a reply (a chart, a CSV export), or one a member attached to a command.
    ``size`` is set instead of ``data`` when an adapter did not fetch a file larger than it may be."""

    filename: str
    data: bytes
    mime: str = "application/octet-stream"
    size: int | None = None


@dataclass(frozen=True, slots=True)
class Reply:
    """What the core wants said back to the member who acted.

    ``private`` replies are ephemeral (only the member sees them). ``slow`` tells an adapter that
    producing this reply may take a while, so it should acknowledge/defer first. ``later`` produces
    more replies that take a while (a chart): adapters send this reply at once, then those as
    follow-ups (see `followups`), so the member is not kept waiting for the slow part.
    ``form`` asks the member to fill in a form (see `bot.core.forms`); ``text`` is then what a front end
    that shows it as a message says (the field errors, when the form is offered again).
    """

    text: str
    private: bool = True
    buttons: tuple[Button, ...] = ()
    attachments: tuple[Attachment, ...] = ()
    slow: bool = False
    form: Form | None = None
    later: Callable[[], Awaitable[list[Reply]]] | None = field(default=None, compare=False, repr=False)
    #: The command to run again once the member has attached a file (``deck import sql``): a front end
    #: whose commands cannot carry files (Slack) asks for one in a form instead of showing ``text``.
    file_request: str = ""


async def followups(reply: Reply) -> list[Reply]:
    """The replies ``reply.later`` produces (none when it has none). Never raises: a failure is logged
    and costs only the follow-up, not the reply already sent."""
    if reply.later is None:
        return []
    try:
        return await reply.later()
    except Exception:
        log.exception("a follow-up reply failed")
        return []


@dataclass(frozen=True, slots=True)
class Post:
    """A message the core posts to a channel on its own (the daily question, a reveal).

    ``group`` is the platform's id of the channel's group (guild, workspace): a gateway that serves many
    workspaces picks its credentials by it. Empty when not known.

    ``key`` names the post the same way on every attempt (at most 25 characters): a gateway hands it to
    the platform's own means of idempotency (Discord's message nonce, Slack's message metadata) so that a
    repeat is dropped or the message can be recognised later (`ChatGateway.find`).

    ``thread``: post inside this discussion thread of the channel (Discord: the thread's channel id;
    Slack: the parent message's ``ts``). ``mention_role``: the one role the post may ping (Discord), set by
    an admin with ``schedule set … ping``; no other mention ever pings."""

    channel: str
    text: str
    buttons: tuple[Button, ...] = ()
    attachments: tuple[Attachment, ...] = field(default=())
    group: str = ""
    key: str | None = None
    thread: str | None = None
    mention_role: str | None = None


@dataclass(frozen=True, slots=True)
class SentMessage:
    """What a gateway reports back after posting: the platform's message id."""

    channel: str
    message_id: str
