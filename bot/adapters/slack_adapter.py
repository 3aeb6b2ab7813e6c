"""The Slack front end: one `/study` command and Block Kit answer buttons, served by slack-bolt.

Two translations and a thin I/O shell (the core decides everything):
- a `/study` command or a button click -> `Inbound` -> `StudyService.handle` -> `Reply` list -> `respond()`
  through the request's ``response_url`` (private replies ephemeral, public ones in the channel) and
  file uploads for attachments;
- `Post` -> ``chat.postMessage`` / ``chat.update`` for the core's own posts (`ChatGateway`).

Forms (`bot.core.forms`): a reply with a form opens a modal with ``views.open`` and the request's
``trigger_id``; its ``view_submission`` goes to the core before the acknowledgement, so that field errors
go back in the ack (``response_action: errors``, shown under each field) and the modal stays open with
what was typed. The channel the form was opened from rides in the view's ``private_metadata``: replies
to a submission go there (``chat.postEphemeral`` for private ones).

HTTP mode (bot token + signing secret) serves ``/slack/events``; Socket Mode (bot token + app token)
holds a websocket instead. With OAuth credentials instead of a bot token (many workspaces) the HTTP
listener also serves ``/slack/install`` and ``/slack/oauth_redirect``; each workspace's installation (its
bot token) is kept in the database (`bot.adapters.slack_oauth`) and used for that workspace's commands
and posts. Every request is acknowledged at once; the work runs afterwards in a task
this adapter tracks, so `close()` can let it finish.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import aiohttp
from aiohttp import web
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_bolt.authorization.async_authorize import AsyncInstallationStoreAuthorize
from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings
from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackApiError, SlackClientError, SlackTokenRotationError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.oauth.token_rotation.async_rotator import AsyncTokenRotator
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook import WebhookResponse
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot.adapters.slack_oauth import DbInstallationStore, DbStateStore
from bot.anki import UPLOAD_MAX_BYTES
from bot.config import Settings
from bot.core import markup
from bot.core.forms import Form
from bot.core.home import HomeTab, HomeView
from bot.core.messages import Attachment, Button, Inbound, Post, Reply, SentMessage, followups
from bot.core.native import Ability, ChannelAccess
from bot.core.ports import DeliveryError, InstallStore
from bot.core.service import StudyService

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
INSTALL_PATH = "/slack/install"
REDIRECT_PATH = "/slack/oauth_redirect"
#: The bot scopes an OAuth install asks for: exactly those in slack-manifest.yaml.
SCOPES = (
    "commands",
    "chat:write",
    "users:read",
    "files:write",
    "im:write",
    "channels:history",
    "groups:history",
    "channels:read",
    "groups:read",
    "files:read",
)
COMMAND = "/study"
#: Every button the core makes has an action id starting with ``sb:`` (see `bot.core.actions`).
ACTION_PATTERN = re.compile(r"^sb:")
#: Every form's callback id (`bot.core.forms.Form.action`).
FORM_PATTERN = re.compile(r"^sb:form:")
#: The modal that asks for a file (a deck to import): Slack's slash commands cannot carry one.
FILE_VIEW = "sb-file"
#: What Slack takes in a modal: title and button texts, placeholders, a field error (kept short).
VIEW_TITLE = 24
PLACEHOLDER = 150
ERROR_CHARS = 150
FORM_FAILED_TEXT = "The form could not be opened (Slack allows 3 seconds for that); run the command again."
#: Slack refuses a section text longer than this, and a message with more than 50 blocks.
SECTION_LIMIT = 3000
MAX_BLOCKS = 50
ADMIN_TTL = 600.0
#: A member's Home tab is published again after an answer at most this often (seconds).
HOME_DEBOUNCE = 60.0
#: Slack's limits on a published view and its parts (a longer one is refused as ``invalid_arguments``).
MAX_VIEW_BLOCKS = 100
HEADER_LIMIT = 150
#: The metadata event type of our channel posts; its payload carries the post's key (see `Post.key`).
POST_EVENT = "studybot_post"
#: How many of a channel's messages after a post's creation `find` looks through.
FIND_LIMIT = 200
#: What Slack sends as ``X-Slack-Request-Timestamp``: Unix seconds in ASCII digits. slack-sdk's verifier
#: calls ``int()`` on the header, so anything else would surface as a 500 with a traceback.
TIMESTAMP = re.compile(r"[0-9]{1,12}")
#: Errors that mean the bot cannot reach the channel: retrying will not help, an admin must act.
FORBIDDEN_ERRORS = frozenset(
    {
        "not_in_channel",
        "channel_not_found",
        "missing_scope",
        "is_archived",
        "restricted_action",
        "restricted_action_read_only_channel",
        "restricted_action_non_threadable_channel",
        "ekm_access_denied",
        "not_authed",
        "invalid_auth",
        "account_inactive",
        "token_revoked",
        # direct messages (reminders): the member cannot be written to
        "messages_tab_disabled",
        "cannot_dm_bot",
        "user_not_found",
        "user_disabled",
    }
)
NOT_INSTALLED_TEXT = (
    "studybot is not installed in this workspace (or was removed from it), so nothing was recorded. "
    "Ask a workspace admin to install it."
)
FOREIGN_TEAM_TEXT = (
    "This studybot is installed for another Slack workspace, so it cannot serve yours. "
    "Nothing was recorded. Ask your workspace admin to install studybot there."
)

# ---------------------------------------------------------------- rendering (pure)

_BOLD = re.compile(r"\*\*(.+?)\*\*", re.S)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _convert(text: str) -> str:
    return _BOLD.sub(r"*\1*", _escape(text))


#: Slack formatting characters (bold, italic, strike, code).
_SLACK_FORMAT = re.compile(r"([*_~`])")
#: Where Slack's auto-linking starts: URL schemes and domains (``:`` ``.``), ``@channel``/``@here``
#: mentions and ``#channel`` names.
_SLACK_AUTOLINK = re.compile(r"([:.@#])")
ZWSP = "\u200b"


def escape_name(text: str) -> str:
    """A member-controlled string as literal Slack text. mrkdwn has no escape character, so: ``&<>``
    become entities (no ``<https://…|link>``, ``<!channel>`` or ``<@U…>``); a zero-width space on both
    sides of ``* _ ~ ` `` puts them inside a word, where Slack does not read them as formatting; and
    one after ``: . @ #`` keeps URLs, domains, ``@channel`` and ``#channel`` from being linked."""
    text = _SLACK_FORMAT.sub(ZWSP + r"\1" + ZWSP, _escape(text))
    return _SLACK_AUTOLINK.sub(r"\1" + ZWSP, text)


def mrkdwn(text: str) -> str:
    """The core's light markdown as Slack mrkdwn: ``**bold**`` -> ``*bold*``; ``&``, ``<`` and ``>``
    escaped so that e.g. ``<A|B|C|D>`` in a usage line is shown, not read as a link; names and other
    member-controlled strings the core marked are escaped with `escape_name`."""
    return markup.render(text, escape_name, _convert)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _chunks(text: str, limit: int = SECTION_LIMIT) -> list[str]:
    """Split on line breaks into pieces of at most ``limit`` characters (hard-splitting long lines)."""
    out: list[str] = []
    current = ""
    for line in text.split("\n"):
        while len(line) > limit:
            if current:
                out.append(current)
                current = ""
            out.append(line[:limit])
            line = line[limit:]
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) > limit:
            out.append(current)
            current = line
        else:
            current = candidate
    if current.strip():
        out.append(current)
    return out


def button_element(button: Button) -> dict[str, Any]:
    """One Block Kit button; ``action_id`` and ``value`` both carry the core's action id."""
    element: dict[str, Any] = {
        "type": "button",
        "text": {"type": "plain_text", "text": button.label[:75], "emoji": True},
        "action_id": button.action_id,
        "value": button.action_id,
    }
    # Slack knows only "primary" (green) and "danger" (red); anything else is the default style.
    if button.style in ("primary", "danger"):
        element["style"] = button.style
    elif button.style == "success":
        element["style"] = "primary"
    return element


def home_blocks(view: HomeView) -> list[dict[str, Any]]:
    """The Home tab's Block Kit: a header, then per section a divider, its text (split to Slack's section
    limit) and its buttons; never more than `MAX_VIEW_BLOCKS` blocks."""
    title = markup.plain(view.title)
    title = title if len(title) <= HEADER_LIMIT else title[: HEADER_LIMIT - 1] + "…"
    blocks: list[dict[str, Any]] = [{"type": "header", "text": {"type": "plain_text", "text": title, "emoji": True}}]
    for n, section in enumerate(view.sections):
        part: list[dict[str, Any]] = [{"type": "divider"}]
        text = mrkdwn(f"**{section.heading}**\n{section.text}")
        part += [{"type": "section", "text": {"type": "mrkdwn", "text": chunk}} for chunk in _chunks(text)]
        if section.buttons:
            elements = [button_element(b) for b in section.buttons[:25]]
            part.append({"type": "actions", "block_id": f"sb-home-{n}", "elements": elements})
        if len(blocks) + len(part) > MAX_VIEW_BLOCKS:
            break
        blocks += part
    return blocks


def blocks_for(text: str, buttons: Sequence[Button] = ()) -> list[dict[str, Any]]:
    """Section blocks for already-converted mrkdwn ``text`` plus one actions block for the buttons."""
    room = MAX_BLOCKS - (1 if buttons else 0)
    sections = _chunks(text)[:room]
    blocks: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn", "text": s}} for s in sections]
    if buttons:
        # An actions block holds at most 25 elements; the core sends at most a handful.
        blocks.append(
            {"type": "actions", "block_id": "sb-buttons", "elements": [button_element(b) for b in buttons][:25]}
        )
    return blocks


def modal_view(form: Form, channel: str) -> dict[str, Any]:
    """The Block Kit modal for ``form``: one input block per field (block and action id = the field's key);
    the ``channel`` it was opened from in ``private_metadata``."""
    blocks: list[dict[str, Any]] = []
    for f in form.fields:
        element: dict[str, Any] = {
            "type": "plain_text_input",
            "action_id": f.key,
            "multiline": f.style == "paragraph",
            "max_length": f.max_len,
        }
        if f.placeholder:
            element["placeholder"] = {"type": "plain_text", "text": f.placeholder[:PLACEHOLDER]}
        if f.default:
            element["initial_value"] = f.default
        blocks.append(
            {
                "type": "input",
                "block_id": f.key,
                "optional": not f.required,
                "label": {"type": "plain_text", "text": f.label},
                "element": element,
            }
        )
    return {
        "type": "modal",
        "callback_id": form.action,
        "title": {"type": "plain_text", "text": form.title[:VIEW_TITLE]},
        "submit": {"type": "plain_text", "text": form.submit_label[:VIEW_TITLE]},
        "close": {"type": "plain_text", "text": "Cancel"},
        "private_metadata": json.dumps({"channel": channel}),
        "blocks": blocks,
    }


def view_values(view: dict[str, Any]) -> dict[str, str]:
    """Field key → typed text from a ``view_submission``'s ``view.state.values``."""
    out: dict[str, str] = {}
    for actions in ((view.get("state") or {}).get("values") or {}).values():
        for action_id, element in (actions or {}).items():
            out[str(action_id)] = str((element or {}).get("value") or "")
    return out


# ---------------------------------------------------------------- errors


def _error_code(e: SlackApiError) -> str:
    data = getattr(e.response, "data", None)
    return str(data.get("error", "")) if isinstance(data, dict) else ""


def delivery_error(e: Exception, what: str) -> DeliveryError:
    """Map a Web API failure to the core's `DeliveryError` (after the client's own retries)."""
    if isinstance(e, SlackApiError):
        status = int(getattr(e.response, "status_code", 0) or 0)
        code = _error_code(e)
        if code in FORBIDDEN_ERRORS:
            return DeliveryError(f"{what}: {code}", retryable=False, forbidden=True)
        if status == 429 or code == "ratelimited":
            headers = getattr(e.response, "headers", {}) or {}
            retry_after = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
            if isinstance(retry_after, list):
                retry_after = retry_after[0] if retry_after else None
            try:
                hint = float(retry_after) if retry_after is not None else None
            except ValueError:
                hint = None
            return DeliveryError(f"{what}: rate limited", retryable=True, retry_after=hint, rate_limited=True)
        if status >= 500 or code in ("internal_error", "fatal_error", "service_unavailable", "request_timeout"):
            return DeliveryError(f"{what}: Slack server error {status} {code}".strip(), retryable=True, maybe_sent=True)
        return DeliveryError(f"{what}: {code or f'HTTP {status}'}", retryable=False)
    # Connection trouble and timeouts: the next attempt may well work.
    return DeliveryError(f"{what}: {type(e).__name__}: {e}", retryable=True, maybe_sent=True)


def _retrying_429s_only(api: AsyncWebClient) -> AsyncWebClient:
    """``api`` for channel posts: it retries only what surely did not post (429). After a 5xx or a dropped
    connection the message may exist, and the core looks for it (`SlackAdapter.find`) before any second
    try, instead of the SDK sending it again blindly."""
    return AsyncWebClient(
        token=api.token,
        base_url=api.base_url,
        session=api.session,
        team_id=api.default_params.get("team_id"),
        retry_handlers=[h for h in api.retry_handlers if isinstance(h, AsyncRateLimitErrorRetryHandler)],
    )


# ---------------------------------------------------------------- the adapter


@web.middleware
async def refuse_malformed_timestamps(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Answer 401 to a request whose ``X-Slack-Request-Timestamp`` is not a number, before slack-bolt's
    signature check (which would raise on it). Logged at debug only: anyone can send such a request."""
    stamp = request.headers.get("X-Slack-Request-Timestamp")
    if stamp is not None and not TIMESTAMP.fullmatch(stamp):
        log.debug("slack: refused a request with a malformed timestamp header (401)")
        return web.json_response({"error": "invalid request"}, status=401)
    return await handler(request)


class _QuietTokenWarning(logging.Filter):
    """slack-bolt reads SLACK_BOT_TOKEN from the environment itself and then warns, at every start,
    that the client we hand it wins over that token. It does, on purpose; the warning only confuses."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "`token` will be unused" not in record.getMessage()


@dataclass(frozen=True, slots=True)
class _Who:
    admin: bool
    name: str
    expires: float
    #: The workspace ``users.info`` places the user in; their admin flags hold there only.
    team: str = ""


async def read_at_most(stream: aiohttp.StreamReader, limit: int) -> bytes:
    """The body up to ``limit`` bytes. (`StreamReader.read(n)` returns what has arrived so far, at most n:
    a file larger than one network read would come back cut short.)"""
    parts: list[bytes] = []
    got = 0
    while got < limit:
        chunk = await stream.read(limit - got)
        if not chunk:
            break
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


class SlackAdapter:
    """The Slack front end and `ChatGateway` (``platform = "slack"``).

    Nothing happens in ``__init__``; `start` checks the bot token (``auth.test``) and opens the HTTP
    listener or the Socket Mode connection, `run` serves until `close`. ``http_port=0`` picks a free
    port (tests); `port` tells which one was bound. Raises ``ValueError`` in ``__init__`` when the
    settings lack a bot token, or lack both a signing secret and an app token.

    Many workspaces (``SLACK_CLIENT_ID``/``SLACK_CLIENT_SECRET``, `Settings.slack_oauth`): no bot token;
    ``installations`` keeps each workspace's installation and the OAuth states (``ValueError`` without it).
    """

    platform = "slack"

    def __init__(
        self,
        service: StudyService,
        settings: Settings,
        *,
        http_host: str | None = None,
        http_port: int | None = None,
        admin_ttl: float = ADMIN_TTL,
        rate_limit_retries: int = 3,
        server_error_retries: int = 2,
        monotonic: Callable[[], float] = time.monotonic,
        installations: InstallStore | None = None,
        home: HomeTab | None = None,
        home_debounce: float = HOME_DEBOUNCE,
        web_mounts: Sequence[Callable[[web.Application], None]] = (),
    ) -> None:
        self.oauth = settings.slack_oauth
        #: Members' dashboards for the Home tab (None: no Home tab).
        self.home = home
        self.home_debounce = home_debounce
        if not self.oauth and settings.slack_bot_token is None:
            raise ValueError("SLACK_BOT_TOKEN is not set")
        if self.oauth and installations is None:
            raise ValueError("many workspaces need a store for the installations")
        self.service = service
        self.settings = settings
        self.socket_mode = not self.oauth and settings.slack_app_token is not None
        signing_secret = settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else ""
        if not self.socket_mode and not signing_secret:
            raise ValueError("Slack over HTTP needs SLACK_SIGNING_SECRET (or SLACK_APP_TOKEN for Socket Mode)")
        self.http_host = http_host if http_host is not None else settings.http_host
        self.http_port = http_port if http_port is not None else settings.http_port
        #: More applications served by the HTTP listener (the web dashboard), each given the aiohttp app.
        self.web_mounts = list(web_mounts)
        self.admin_ids = settings.slack_admin_ids
        #: Slack user ids of the bot's operators (``STUDYBOT_OWNERS``).
        self.owner_ids = settings.owners_on("slack")
        self.admin_ttl = admin_ttl
        #: How long `close` lets acknowledged requests finish before cancelling them.
        self.drain_timeout = 10.0
        self._monotonic = monotonic
        self.client = AsyncWebClient(
            # Many workspaces: no token here; each request's client carries its workspace's.
            token=settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None,
            base_url=settings.slack_api_url,
            retry_handlers=[
                AsyncConnectionErrorRetryHandler(max_retry_count=1),
                AsyncRateLimitErrorRetryHandler(max_retry_count=rate_limit_retries),
                AsyncServerErrorRetryHandler(max_retry_count=server_error_retries),
            ],
        )
        bolt_log = logging.getLogger("slack_bolt.studybot")
        if not any(isinstance(f, _QuietTokenWarning) for f in bolt_log.filters):
            bolt_log.addFilter(_QuietTokenWarning())
        self.installation_store: DbInstallationStore | None = None
        self._rotator: AsyncTokenRotator | None = None
        oauth_settings: AsyncOAuthSettings | None = None
        if self.oauth:
            assert installations is not None and settings.slack_client_id and settings.slack_client_secret
            self.installation_store = DbInstallationStore(installations)
            client_secret = settings.slack_client_secret.get_secret_value()
            oauth_settings = AsyncOAuthSettings(
                client_id=settings.slack_client_id,
                client_secret=client_secret,
                scopes=list(SCOPES),
                redirect_uri=settings.slack_redirect_uri,
                install_path=INSTALL_PATH,
                redirect_uri_path=REDIRECT_PATH,
                installation_store=self.installation_store,
                state_store=DbStateStore(installations),
                logger=bolt_log,
            )
            self._rotator = AsyncTokenRotator(
                client_id=settings.slack_client_id, client_secret=client_secret, client=self.client
            )
            # bolt's own authorizer would refresh rotating tokens through a default client (slack.com);
            # this one uses ours (SLACK_API_URL, retries) and caches auth.test per token.
            oauth_settings.authorize = AsyncInstallationStoreAuthorize(
                logger=bolt_log,
                installation_store=self.installation_store,
                client_id=settings.slack_client_id,
                client_secret=client_secret,
                cache_enabled=True,
                client=self.client,
            )
        self.app = AsyncApp(
            client=self.client,
            signing_secret=signing_secret,
            oauth_settings=oauth_settings,
            user_facing_authorize_error_message=NOT_INSTALLED_TEXT,
            # Socket Mode requests come over our own authenticated websocket and carry no signature.
            request_verification_enabled=not self.socket_mode,
            # Our listeners only ack and hand the work to a task, so bolt may run them inline: the ack
            # then goes out at once instead of after bolt's 10 ms polling sleep.
            process_before_response=True,
            name="studybot",
            logger=bolt_log,
        )
        if self.oauth:
            # app_uninstalled / tokens_revoked delete that workspace's installation.
            self.app.enable_token_revocation_listeners()
        else:
            self.app.middleware(self._only_home_team)
            self.app.event("app_uninstalled")(self._uninstalled)
            self.app.event("tokens_revoked")(self._uninstalled)
        self.app.command(COMMAND)(self._on_command)
        self.app.action(ACTION_PATTERN)(self._on_action)
        if home is not None:
            self.app.event("app_home_opened")(self._on_home_opened)
        self.app.view(FORM_PATTERN)(self._on_view)
        self.app.view(FILE_VIEW)(self._on_file_view)
        #: The installed workspace and the bot's own user, from ``auth.test`` in `start`.
        self.team_id: str | None = None
        self.bot_user_id: str | None = None
        self.port: int | None = None
        self._who: dict[str, _Who] = {}
        #: Members who opened their Home tab while this process ran, with their DM channel with the app:
        #: their tab is kept up to date after answers. When each was last published (monotonic), and
        #: the updates waiting out `home_debounce`.
        self._home_seen: dict[tuple[str, str], str] = {}
        self._home_last: dict[tuple[str, str], float] = {}
        self._home_pending: set[tuple[str, str]] = set()
        self._home_tasks: set[asyncio.Task[None]] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None
        self._socket: AsyncSocketModeHandler | None = None
        self._closed: asyncio.Event | None = None
        self._started = False

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Check the token and start listening. Raises `SlackApiError` when Slack rejects a token
        (e.g. ``invalid_auth``) and `OSError` when the HTTP port cannot be bound."""
        if self._started:
            return
        self._closed = asyncio.Event()
        self._session = aiohttp.ClientSession()
        self.client.session = self._session
        if not self.oauth:
            auth = await self.client.auth_test()
            self.team_id = str(auth["team_id"])
            self.bot_user_id = str(auth.get("user_id") or "")
        if self.socket_mode:
            assert self.settings.slack_app_token is not None
            self._socket = AsyncSocketModeHandler(self.app, self.settings.slack_app_token.get_secret_value())
            # Ask for the websocket URL ourselves so a rejected app token fails start-up loudly
            # (the client's own connect loop would log and retry forever).
            self._socket.client.wss_uri = await self._socket.client.issue_new_wss_url()
            await self._socket.connect_async()  # type: ignore[no-untyped-call]
            log.info("slack: Socket Mode connected for workspace %s", self.team_id)
        else:
            web_app = self.app.web_app(path=EVENTS_PATH)
            web_app.middlewares.append(refuse_malformed_timestamps)
            for mount in self.web_mounts:
                mount(web_app)
            self._runner = web.AppRunner(web_app, access_log=None, shutdown_timeout=5.0)
            await self._runner.setup()
            site = web.TCPSite(self._runner, self.http_host, self.http_port)
            await site.start()
            self.port = int(self._runner.addresses[0][1])
            log.info(
                "slack: listening on http://%s:%s%s for %s",
                self.http_host,
                self.port,
                EVENTS_PATH,
                f"workspace {self.team_id}" if not self.oauth else f"every workspace that installs it ({INSTALL_PATH})",
            )
        self._started = True

    async def run(self) -> None:
        """Start (if needed) and serve until `close`. Raises what `start` raises."""
        await self.start()
        assert self._closed is not None
        await self._closed.wait()

    async def close(self) -> None:
        """Stop taking requests, let in-flight work finish (up to ``drain_timeout`` s), release connections."""
        if self._closed is not None:
            self._closed.set()
        if self._socket is not None:
            socket, self._socket = self._socket, None
            await socket.close_async()  # type: ignore[no-untyped-call]
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
        for task in list(self._home_tasks):  # debounced Home updates: the next opening publishes anyway
            task.cancel()
        await asyncio.gather(*self._home_tasks, return_exceptions=True)
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=self.drain_timeout)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._session is not None:
            session, self._session = self._session, None
            self.client.session = None
            await session.close()
        self._started = False

    def _spawn(self, work: Awaitable[None], what: str) -> None:
        async def guarded() -> None:
            try:
                await work
            except Exception:
                log.exception("slack: %s failed", what)

        task = asyncio.create_task(guarded(), name=f"slack-{what}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait until every acknowledged request has been answered (tests and shutdown)."""
        while self._tasks:
            await asyncio.gather(*set(self._tasks), return_exceptions=True)

    # ------------------------------------------------------------------ bolt listeners

    async def _only_home_team(
        self, body: dict[str, Any], context: Any, respond: Any, next: Callable[[], Awaitable[Any]]
    ) -> Any:
        """Global middleware: refuse requests from any workspace but the installed one."""
        home = self.team_id or getattr(context.authorize_result, "team_id", None)
        teams = {
            context.team_id,
            (body.get("user") or {}).get("team_id") if isinstance(body.get("user"), dict) else None,
        }
        teams.discard(None)
        if not home or not teams or teams == {home}:
            return await next()
        log.warning("slack: refused a request from workspace %s (installed in %s)", sorted(teams), home)
        if body.get("command"):
            return BoltResponse(status=200, body={"response_type": "ephemeral", "text": FOREIGN_TEAM_TEXT})
        if respond is not None and body.get("response_url"):
            self._spawn(respond(text=FOREIGN_TEAM_TEXT, response_type="ephemeral", replace_original=False), "refusal")
        return BoltResponse(status=200, body="")

    async def _uninstalled(self, event: dict[str, Any]) -> None:
        """One workspace: the app was uninstalled or its token revoked; say why everything fails from now."""
        log.error(
            "slack: %s in workspace %s: SLACK_BOT_TOKEN no longer works; reinstall the app and set the new token",
            "studybot was uninstalled" if event.get("type") == "app_uninstalled" else "tokens were revoked",
            self.team_id,
        )

    def _request_api(self, client: AsyncWebClient) -> AsyncWebClient:
        """The Web API client for a request: bolt's, which carries the workspace's token (many
        workspaces), or the one bot token's."""
        return client if self.oauth else self.client

    def _responder(self, url: object) -> Callable[..., Awaitable[WebhookResponse]] | None:
        """``respond()`` for a request's ``response_url`` (None without one), through the adapter's one
        HTTP session: bolt's own ``respond`` opens a new session, and a new connection, for every reply."""
        if not isinstance(url, str) or not url:
            return None
        client = AsyncWebhookClient(url=url, session=self._session)

        async def respond(**message: Any) -> WebhookResponse:
            return await client.send(**message)

        return respond

    async def _on_command(self, ack: Any, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        api = self._request_api(client)
        self._spawn(self._command(body, self._responder(body.get("response_url")), api), "command")

    async def _on_action(self, ack: Any, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        api = self._request_api(client)
        self._spawn(self._action(body, self._responder(body.get("response_url")), api), "action")

    async def _on_home_opened(self, event: dict[str, Any], body: dict[str, Any], client: AsyncWebClient) -> None:
        if event.get("tab", "home") != "home":
            return  # the Messages tab
        user = str(event.get("user", ""))
        team = str(body.get("team_id") or self.team_id or "")
        if event.get("channel"):
            self._home_seen[(team, user)] = str(event["channel"])
        self._spawn(self.publish_home(team, user, api=self._request_api(client)), "home")

    async def _dm_channel(self, team: str, user: str, api: AsyncWebClient) -> str:
        """The member's DM channel with the app (where Home tab buttons answer)."""
        known = self._home_seen.get((team, user))
        if known:
            return known
        opened = await api.conversations_open(users=user)
        channel = str(opened["channel"]["id"])
        self._home_seen[(team, user)] = channel
        return channel

    async def publish_home(self, team: str, user: str, *, api: AsyncWebClient | None = None) -> None:
        """Publish ``user``'s own dashboard to their Home tab (``views.publish``). Never raises: a failure is
        logged, and the next opening tries again."""
        if self.home is None:
            return
        api = api or self.client
        try:
            admin, name = await self.whois(user, team=team, api=api)
            channel = await self._dm_channel(team, user, api)
            inbound = Inbound(
                platform="slack",
                group=team,
                channel=channel,
                user=user,
                user_name=name,
                is_admin=admin,
                is_operator=user in self.owner_ids,
            )
            view = await self.home.view(inbound)
            self._home_last[(team, user)] = self._monotonic()
            await api.views_publish(user_id=user, view={"type": "home", "blocks": home_blocks(view)})
        except (SlackApiError, SlackClientError, aiohttp.ClientError, TimeoutError) as e:
            log.warning("slack: could not publish the Home tab of %s: %s", user, delivery_error(e, "views.publish"))

    def home_soon(self, team: str, user: str, api: AsyncWebClient) -> None:
        """Publish the member's Home tab again after an answer: at once when the last publish is
        `home_debounce` seconds old, else once when it will be (answers meanwhile share that one)."""
        key = (team, user)
        if self.home is None or key not in self._home_seen or key in self._home_pending:
            return
        wait = self._home_last.get(key, float("-inf")) + self.home_debounce - self._monotonic()
        self._home_pending.add(key)

        async def later() -> None:
            try:
                if wait > 0:
                    await asyncio.sleep(wait)
            finally:
                self._home_pending.discard(key)
            try:
                await self.publish_home(team, user, api=api)
            except Exception:  # e.g. the database: logged here, as `_spawn` does for requests
                log.exception("slack: Home tab update of %s failed", user)

        task = asyncio.create_task(later(), name="slack-home-update")
        self._home_tasks.add(task)
        task.add_done_callback(self._home_tasks.discard)

    async def _on_view(self, ack: Any, body: dict[str, Any], client: AsyncWebClient) -> None:
        """A form submitted: the core decides before the ack, so field errors go back in it."""
        api = self._request_api(client)
        view = body.get("view") or {}
        user_obj = body.get("user") or {}
        team = body.get("team") or {}
        user = str(user_obj.get("id", ""))
        group = str(team.get("id") or user_obj.get("team_id") or "")
        try:
            channel = str(json.loads(view.get("private_metadata") or "{}").get("channel") or "")
        except (ValueError, AttributeError):
            channel = ""
        admin, name = await self.whois(
            user, str(user_obj.get("username") or user_obj.get("name") or ""), team=group, api=api
        )
        inbound = Inbound(
            platform="slack",
            group=group,
            channel=channel,
            user=user,
            user_name=name,
            action=str(view.get("callback_id") or ""),
            values=view_values(view),
            is_admin=admin,
            is_operator=user in self.owner_ids,
            group_name=str(team.get("domain", "")),
        )
        replies = await self.service.handle(inbound)
        bad = next((r.form for r in replies if r.form is not None and r.form.errors), None)
        if bad is not None:
            errors = {k: _cut(v, ERROR_CHARS) for k, v in bad.errors.items()}
            await ack(response_action="errors", errors=errors)
            return
        await ack()
        if channel:
            self._spawn(self._deliver(replies, None, inbound, api), "form")

    async def _command(self, body: dict[str, Any], respond: Any, api: AsyncWebClient | None = None) -> None:
        api = api or self.client
        user = str(body.get("user_id", ""))
        team = str(body.get("team_id", ""))
        admin, name = await self.whois(user, str(body.get("user_name", "")), team=team, api=api)
        inbound = Inbound(
            platform="slack",
            group=team,
            channel=str(body.get("channel_id", "")),
            user=user,
            user_name=name,
            text=str(body.get("text", "")),
            is_admin=admin,
            is_operator=user in self.owner_ids,
            group_name=str(body.get("team_domain", "")),
            channel_name=str(body.get("channel_name", "")),
        )
        replies = await self.service.handle(inbound)
        trigger = str(body.get("trigger_id") or "")
        asked = [r for r in replies if r.file_request]
        if asked and trigger and await self._ask_for_file(asked[0], inbound, trigger, api):
            replies = [r for r in replies if not r.file_request]
        await self._deliver(replies, respond, inbound, api, trigger_id=trigger)
        if inbound.text.split()[:1] == ["answer"]:  # `/study answer B` moves the Home tab like a click
            self.home_soon(team, user, api)

    async def _ask_for_file(self, reply: Reply, inbound: Inbound, trigger: str, api: AsyncWebClient) -> bool:
        """Open a modal with a file field for a command that needs a file (slash commands cannot carry
        one, and a pasted-text field holds at most 3,000 characters). False when it could not be opened
        (the trigger expired): then the reply's text, which says how, goes out instead."""
        meta = json.dumps({"channel": inbound.channel, "text": reply.file_request})
        view = {
            "type": "modal",
            "callback_id": FILE_VIEW,
            "private_metadata": meta,
            "title": {"type": "plain_text", "text": "Import a deck file"},
            "submit": {"type": "plain_text", "text": "Dry run"},
            "close": {"type": "plain_text", "text": "Cancel"},
            "blocks": [
                {
                    "type": "input",
                    "block_id": "file",
                    "label": {
                        "type": "plain_text",
                        "text": "YAML, CSV or JSON up to 1 MB, or Anki (.apkg, .txt) up to 10 MB",
                    },
                    "element": {
                        "type": "file_input",
                        "action_id": "file",
                        "filetypes": ["yaml", "yml", "csv", "json", "txt", "apkg"],
                        "max_files": 1,
                    },
                }
            ],
        }
        try:
            await api.views_open(trigger_id=trigger, view=view)
        except (SlackApiError, SlackClientError, aiohttp.ClientError, TimeoutError) as e:
            log.warning("slack: could not open the file form: %s", delivery_error(e, "views.open"))
            return False
        return True

    async def _on_file_view(self, ack: Any, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()  # the modal closes; the dry run arrives as a private message in the channel
        self._spawn(self._file_submitted(body, self._request_api(client)), "file form")

    async def _file_submitted(self, body: dict[str, Any], api: AsyncWebClient) -> None:
        """A file form was submitted: fetch the file (with the bot's token; not when it is larger than a
        deck file may be) and run the command it was asked for, answering privately in its channel."""
        view = body.get("view") or {}
        try:
            meta = json.loads(str(view.get("private_metadata") or "{}"))
        except ValueError:
            return
        user_obj = body.get("user") or {}
        team = body.get("team") or {}
        user = str(user_obj.get("id", ""))
        group = str(team.get("id") or user_obj.get("team_id") or "")
        state = ((view.get("state") or {}).get("values") or {}).get("file") or {}
        chosen = ((state.get("file") or {}).get("files")) or []
        files: tuple[Attachment, ...] = ()
        if chosen:
            files = (await self._fetch_file(chosen[0], api),)
        admin, name = await self.whois(user, str(user_obj.get("username") or ""), team=group, api=api)
        inbound = Inbound(
            platform="slack",
            group=group,
            channel=str(meta.get("channel") or ""),
            user=user,
            user_name=name,
            text=str(meta.get("text") or ""),
            is_admin=admin,
            is_operator=user in self.owner_ids,
            files=files,
        )
        await self._deliver(await self.service.handle(inbound), None, inbound, api)

    async def _fetch_file(self, file: dict[str, Any], api: AsyncWebClient) -> Attachment:
        name = str(file.get("name") or "file")
        size = int(file.get("size") or 0)
        url = str(file.get("url_private_download") or file.get("url_private") or "")
        if size > UPLOAD_MAX_BYTES:  # not fetched: the core refuses it by its size
            return Attachment(name, b"", size=size)
        if not url or self._session is None:
            return Attachment(name, b"")
        headers = {"Authorization": f"Bearer {api.token}"} if api.token else {}
        try:
            async with self._session.get(url, headers=headers) as resp:
                resp.raise_for_status()
                data = await read_at_most(resp.content, UPLOAD_MAX_BYTES + 1)  # never more than the limit allows
        except (aiohttp.ClientError, TimeoutError) as e:
            log.warning("slack: could not fetch the file %s: %s", name, e)
            return Attachment(name, b"")
        return Attachment(name, data)

    async def _action(self, body: dict[str, Any], respond: Any, api: AsyncWebClient | None = None) -> None:
        api = api or self.client
        actions = body.get("actions") or []
        if not actions:
            return
        clicked = actions[0]
        action_id = str(clicked.get("action_id") or clicked.get("value") or "")
        user_obj = body.get("user") or {}
        team = body.get("team") or {}
        channel = body.get("channel") or {}
        user = str(user_obj.get("id", ""))
        group = str(team.get("id") or user_obj.get("team_id") or "")
        fallback = str(user_obj.get("username") or user_obj.get("name") or "")
        admin, name = await self.whois(user, fallback, team=group, api=api)
        # A click on the Home tab has no channel and no response_url: it acts in the member's DM with the
        # app, where its replies go as messages.
        from_home = (body.get("container") or {}).get("type") == "view" and self.home is not None
        where = await self._dm_channel(group, user, api) if from_home else str(channel.get("id", ""))
        inbound = Inbound(
            platform="slack",
            group=group,
            channel=where,
            user=user,
            user_name=name,
            action=action_id,
            is_admin=admin,
            is_operator=user in self.owner_ids,
            group_name=str(team.get("domain", "")),
            channel_name=str(channel.get("name", "")),
        )
        replies = await self.service.handle(inbound)
        if from_home:
            await self._deliver([replace(r, private=False) for r in replies], None, inbound, api)
            await self.publish_home(group, user, api=api)  # a switch shows its new state at once
            return
        await self._deliver(replies, respond, inbound, api, trigger_id=str(body.get("trigger_id") or ""))
        if action_id.startswith("sb:ans:"):
            self.home_soon(group, user, api)

    async def _deliver(
        self, replies: Iterable[Reply], respond: Any, inbound: Inbound, api: AsyncWebClient, trigger_id: str = ""
    ) -> None:
        for reply in replies:
            if reply.form is not None:
                if await self._open_form(reply.form, trigger_id, inbound, api):
                    continue
                reply = Reply(FORM_FAILED_TEXT, private=True)
            text = mrkdwn(reply.text)
            await self._say(text, reply.buttons, private=reply.private, respond=respond, inbound=inbound, api=api)
            for attachment in reply.attachments:
                await self._attach(attachment, inbound, private=reply.private, respond=respond, api=api)
            if reply.later is not None:
                await self._deliver(await followups(reply), respond, inbound, api)

    async def _open_form(self, form: Form, trigger_id: str, inbound: Inbound, api: AsyncWebClient) -> bool:
        """``views.open`` for ``form``; False when there is no trigger or Slack refused (e.g. expired)."""
        if not trigger_id:
            return False
        try:
            await api.views_open(trigger_id=trigger_id, view=modal_view(form, inbound.channel))
            return True
        except (SlackApiError, SlackClientError, aiohttp.ClientError, TimeoutError) as e:
            log.warning(
                "slack: could not open form %s for %s: %s", form.name, inbound.user, delivery_error(e, "views.open")
            )
            return False

    async def _say(
        self,
        text: str,
        buttons: Sequence[Button],
        *,
        private: bool,
        respond: Any,
        inbound: Inbound,
        api: AsyncWebClient | None = None,
    ) -> None:
        """Answer through the request's ``response_url``; when there is none or it fails (expired
        after 30 minutes, or used five times), through the Web API instead. Never raises."""
        blocks = blocks_for(text, buttons)
        if respond is not None:
            try:
                result = await respond(
                    text=text,
                    blocks=blocks,
                    response_type="ephemeral" if private else "in_channel",
                    replace_original=False,
                )
                if result.status_code == 200:
                    return
                log.warning("slack: response_url answered %s: %.200s", result.status_code, result.body)
            except (ValueError, aiohttp.ClientError, TimeoutError) as e:
                log.warning("slack: response_url failed (%s); answering through the Web API", e)
        api = api or self.client
        try:
            if private:
                await api.chat_postEphemeral(channel=inbound.channel, user=inbound.user, text=text, blocks=blocks)
            else:
                await api.chat_postMessage(channel=inbound.channel, text=text, blocks=blocks)
        except (SlackApiError, SlackClientError, aiohttp.ClientError, TimeoutError) as e:
            log.warning(
                "slack: could not answer %s in %s: %s", inbound.user, inbound.channel, delivery_error(e, "reply")
            )

    async def _attach(
        self, attachment: Attachment, inbound: Inbound, *, private: bool, respond: Any, api: AsyncWebClient
    ) -> None:
        """Upload a file: to the channel for public replies, to a DM with the member for private ones."""
        try:
            if private:
                opened = await api.conversations_open(users=inbound.user)
                channel = str(opened["channel"]["id"])
            else:
                channel = inbound.channel
            await api.files_upload_v2(
                channel=channel, file=attachment.data, filename=attachment.filename, title=attachment.filename
            )
        except (SlackApiError, SlackClientError, aiohttp.ClientError, TimeoutError) as e:
            err = delivery_error(e, f"upload {attachment.filename}")
            log.warning("slack: %s", err)
            hint = " Invite studybot to this channel (/invite @studybot) and try again." if err.forbidden else ""
            note = mrkdwn(f"I could not attach {attachment.filename}.{hint}")
            await self._say(note, (), private=True, respond=respond, inbound=inbound, api=api)

    # ------------------------------------------------------------------ admins

    async def whois(
        self, user: str, fallback_name: str = "", *, team: str | None = None, api: AsyncWebClient | None = None
    ) -> tuple[bool, str]:
        """Whether ``user`` is an admin (workspace admin/owner per ``users.info``, or listed in
        ``STUDYBOT_SLACK_ADMINS``) and their display name. Cached for ``admin_ttl`` seconds per user.

        With ``team`` (the request's workspace), the admin flags count only when ``users.info`` says
        the user belongs to that workspace: an admin of another organisation (a Slack Connect guest)
        is no admin here. Never raises: when Slack cannot say, the member is treated as a non-admin."""
        now = self._monotonic()
        cached = self._who.get(user)
        if cached is None or cached.expires <= now:
            try:
                info = (await (api or self.client).users_info(user=user))["user"]
            except (SlackApiError, SlackClientError, aiohttp.ClientError, TimeoutError) as e:
                log.warning("slack: users.info for %s failed (%s); treating as a non-admin", user, e)
                return user in self.admin_ids, fallback_name or user
            profile = info.get("profile") or {}
            name = profile.get("display_name") or profile.get("real_name") or info.get("real_name") or info.get("name")
            admin = bool(info.get("is_admin") or info.get("is_owner") or info.get("is_primary_owner"))
            cached = _Who(
                admin, str(name or fallback_name or user), now + self.admin_ttl, str(info.get("team_id") or "")
            )
            self._who[user] = cached
        admin_here = cached.admin and (team is None or cached.team == team)
        return admin_here or user in self.admin_ids, cached.name

    # ------------------------------------------------------------------ ChatGateway

    async def api_for(self, team: str) -> AsyncWebClient:
        """The Web API client for posting in workspace ``team``: the one bot token's, or (many workspaces)
        one with that workspace's installed token, refreshed first if it rotates and is about to expire.
        Raises `DeliveryError` (``forbidden``) when studybot is not installed there (or was uninstalled)."""
        if not self.oauth:
            return self.client
        assert self.installation_store is not None
        if not team:
            raise DeliveryError("no Slack workspace given for this post", retryable=False)
        try:
            found = await self.installation_store.async_find_installation(enterprise_id=None, team_id=team)
            if found is not None and found.bot_refresh_token and self._rotator is not None:
                refreshed = await self._rotator.perform_token_rotation(installation=found)
                if refreshed is not None:
                    await self.installation_store.async_save(refreshed)
                    found = refreshed
        except (SlackApiError, SlackClientError, SlackTokenRotationError, aiohttp.ClientError, TimeoutError) as e:
            raise DeliveryError(
                f"could not refresh the token of Slack workspace {team}: {type(e).__name__}", retryable=True
            ) from e
        if found is None or not found.bot_token:
            raise DeliveryError(
                f"studybot is not installed in Slack workspace {team} (or was uninstalled)",
                retryable=False,
                forbidden=True,
            )
        return AsyncWebClient(
            token=found.bot_token,
            base_url=self.client.base_url,
            session=self._session,
            team_id=team,
            retry_handlers=list(self.client.retry_handlers),
        )

    async def post(self, post: Post) -> SentMessage:
        """Post to a channel (``chat.postMessage`` with Block Kit buttons); files follow as uploads.
        ``post.key`` goes in the message's metadata, where `find` recognises it. The message id is Slack's
        ``ts``. Raises `DeliveryError` (rate limits after the client's retries; a 5xx at once, with
        ``maybe_sent``; ``forbidden`` when the bot is not in the channel or lacks a scope, or not installed
        in the post's workspace)."""
        api = await self.api_for(post.group)
        text = mrkdwn(post.text)
        extra: dict[str, Any] = {}
        if post.key is not None:
            extra["metadata"] = {"event_type": POST_EVENT, "event_payload": {"key": post.key}}
        if post.thread is not None:
            extra["thread_ts"] = post.thread  # a reply in the post's discussion thread
        try:
            result = await _retrying_429s_only(api).chat_postMessage(
                channel=post.channel, text=text, blocks=blocks_for(text, post.buttons), unfurl_links=False, **extra
            )
        except (SlackApiError, SlackClientError, aiohttp.ClientError, TimeoutError) as e:
            raise delivery_error(e, f"post to {post.channel}") from e
        ts = str(result["ts"])
        for attachment in post.attachments:
            # The message is out: a failed upload is logged, not raised, so no one re-posts it.
            try:
                await api.files_upload_v2(channel=post.channel, file=attachment.data, filename=attachment.filename)
            except (SlackApiError, SlackClientError, aiohttp.ClientError, TimeoutError) as e:
                log.warning("slack: %s", delivery_error(e, f"upload {attachment.filename} to {post.channel}"))
        return SentMessage(post.channel, ts)

    async def send_direct(self, user: str, post: Post) -> SentMessage:
        """Send ``post`` to ``user`` in the app's direct messages (``chat.postMessage`` with ``channel`` set to
        the user id; ``post.group`` is the workspace). Raises `DeliveryError` (``forbidden`` when Slack
        refuses, e.g. the app's Messages tab is off; ``retryable`` for rate limits and server errors)."""
        api = await self.api_for(post.group)
        text = mrkdwn(post.text)
        try:
            result = await _retrying_429s_only(api).chat_postMessage(
                channel=user, text=text, blocks=blocks_for(text, post.buttons), unfurl_links=False
            )
        except (SlackApiError, SlackClientError, aiohttp.ClientError, TimeoutError) as e:
            raise delivery_error(e, f"direct message to {user}") from e
        return SentMessage(str(result.get("channel") or user), str(result["ts"]))

    async def find(self, post: Post, since: datetime) -> str | None:
        """The ``ts`` of the bot's own message in ``post.channel`` after ``since`` that is ``post``: its key in
        the metadata, any of its buttons, or (a post without either) the same text
        (``conversations.history``; needs ``channels:history``/``groups:history``). Raises `DeliveryError`."""
        wanted = {b.action_id for b in post.buttons}
        text = mrkdwn(post.text)
        api = await self.api_for(post.group)
        try:
            if post.thread is not None:  # a reply: it is in the thread, not in the channel's history
                result = await api.conversations_replies(
                    channel=post.channel,
                    ts=post.thread,
                    oldest=f"{since.timestamp():.6f}",
                    limit=FIND_LIMIT,
                    include_all_metadata=True,
                )
            else:
                result = await api.conversations_history(
                    channel=post.channel,
                    oldest=f"{since.timestamp():.6f}",
                    limit=FIND_LIMIT,
                    include_all_metadata=True,
                )
        except (SlackApiError, SlackClientError, aiohttp.ClientError, TimeoutError) as e:
            raise delivery_error(e, f"read the history of {post.channel}") from e
        for message in result.get("messages") or []:
            if self.bot_user_id and not self.oauth and message.get("user") != self.bot_user_id:
                continue
            payload = (message.get("metadata") or {}).get("event_payload") or {}
            ids = {el.get("action_id") for block in message.get("blocks") or [] for el in block.get("elements") or []}
            if (
                (post.key is not None and payload.get("key") == post.key)
                or (wanted and wanted & ids)
                or (post.key is None and not wanted and message.get("text") == text)
            ):
                return str(message["ts"])
        return None

    # ------------------------------------------------------------------ native touches

    async def check_access(self, channel: str, group: str) -> ChannelAccess:
        """What studybot may do in a channel: the token's scopes (``auth.test``'s ``x-oauth-scopes`` header)
        and whether the bot is a member of the channel (``conversations.info``). Raises `DeliveryError`."""
        api = await self.api_for(group)
        try:
            auth = await api.auth_test()
        except (SlackApiError, SlackClientError, aiohttp.ClientError, TimeoutError) as e:
            raise delivery_error(e, "auth.test") from e
        header = next((v for k, v in (auth.headers or {}).items() if k.lower() == "x-oauth-scopes"), "")
        scopes = {s.strip() for s in str(header).split(",") if s.strip()}
        member: bool | None
        try:
            info = await api.conversations_info(channel=channel)
            member = bool((info.get("channel") or {}).get("is_member"))
        except SlackApiError as e:
            code = _error_code(e)
            if code == "missing_scope":
                member = None
            elif code == "channel_not_found":
                member = False  # a private channel the bot was not invited to
            else:
                raise delivery_error(e, f"conversations.info {channel}") from e
        except (SlackClientError, aiohttp.ClientError, TimeoutError) as e:
            raise delivery_error(e, f"conversations.info {channel}") from e

        def scope(*names: str) -> bool:
            return any(n in scopes for n in names)

        reinstall = "reinstall the app from slack-manifest.yaml (it asks for {})"
        invite = "invite studybot here: /invite @studybot"
        can_post = scope("chat:write") and member is not False
        post_fix = reinstall.format("chat:write") if not scope("chat:write") else invite
        return ChannelAccess(
            (
                Ability(
                    "view",
                    "View the channel",
                    member,
                    invite if member is False else reinstall.format("channels:read and groups:read"),
                ),
                Ability("send", "Send messages (daily posts)", can_post, post_fix),
                Ability("attach", "Attach files", scope("files:write"), reinstall.format("files:write")),
                Ability(
                    "history",
                    "Read message history",
                    scope("channels:history", "groups:history") and member is not False,
                    reinstall.format("channels:history and groups:history") if member is not False else invite,
                ),
                Ability("threads", "Reply in discussion threads", can_post, post_fix),
                Ability(
                    "roles", "Manage roles (role rewards)", None, "Slack has no roles: role rewards are for Discord"
                ),
                Ability("dm", "DM members", scope("im:write") and scope("chat:write"), reinstall.format("im:write")),
            )
        )

    async def open_thread(self, channel: str, message_id: str, title: str, group: str) -> str:
        """On Slack a message's replies are its thread: its ``ts`` is the thread's id, and nothing is called."""
        return message_id

    async def role_problem(self, group: str, role: str) -> str | None:
        return "Slack has no roles to give"

    async def grant_role(self, group: str, user: str, role: str) -> None:
        raise DeliveryError("Slack has no roles to give", retryable=False)

    async def edit(
        self, channel: str, message_id: str, text: str, buttons: Sequence[Button] = (), *, group: str = ""
    ) -> None:
        """Replace a posted message's text and buttons (``chat.update``; no buttons removes them).
        Raises `DeliveryError`."""
        api = await self.api_for(group)
        md = mrkdwn(text)
        try:
            await api.chat_update(channel=channel, ts=message_id, text=md, blocks=blocks_for(md, buttons))
        except (SlackApiError, SlackClientError, aiohttp.ClientError, TimeoutError) as e:
            raise delivery_error(e, f"update {channel}/{message_id}") from e
