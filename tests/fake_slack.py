"""A loopback fake of the parts of Slack that studybot talks to.

One aiohttp server on 127.0.0.1 serves:

- the Web API under ``/api/<method>`` (``auth.test``, ``chat.postMessage``, ``chat.update``,
  ``chat.postEphemeral``, ``users.info``, ``conversations.open``, ``conversations.history``,
  ``files.getUploadURLExternal``, ``files.completeUploadExternal``, ``apps.connections.open``), checking
  the bearer token;
- modals: ``views.open`` checks the view as Slack does (a ``trigger_id`` it handed out, title ≤ 24, input
  blocks with ``plain_text_input``, ``max_length`` ≤ 3000, at most 100 blocks) and keeps it in `views`;
  `view_submission` builds the payload Slack sends when the member submits it;
- the file upload URLs that ``files.getUploadURLExternal`` hands out (``/upload/<file id>``);
- ``response_url`` endpoints (``/respond/<key>``) that record what ``respond()`` sent;
- a Socket Mode websocket (``/link``): it says hello, sends envelopes and collects the acks;
- OAuth for many workspaces: `add_workspace` makes a workspace that can install the app; the browser's
  trip to Slack's authorize page ends in a one-time ``code`` (`authorize`), which ``oauth.v2.access``
  (client id and secret by HTTP Basic auth) exchanges for that workspace's bot token. Tokens are
  checked per workspace (``auth.test`` says whose), `revoke` ends them as an uninstall does, and
  `event` builds the ``event_callback`` bodies Slack sends (``app_uninstalled``, ``tokens_revoked``).

Every request is recorded. Failures can be injected on any Web API method (e.g. a 429 with
``Retry-After`` or a 500 on ``chat.postMessage``), before the call takes effect or after it did
(``after=True``: the message is posted, the answer is a 500). Messages keep their ``metadata``
(``event_type``/``event_payload``), and ``conversations.history`` returns it when asked
(``include_all_metadata``), newest first, from ``oldest`` on; message ``ts`` are real times.
`post_delay` makes ``chat.postMessage`` slow (posted at once, answered after the delay); `post_jitter` makes each
post take effect up to that many seconds after it arrives, at random, so concurrent posts land apart. Nothing here
is studybot-specific, so the
benchmarks reuse it::

    fake = FakeSlack()
    await fake.start()
    client = AsyncWebClient(token=fake.bot_token, base_url=fake.api_url)
    ...
    await fake.stop()
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import WSMsgType, web


@dataclass
class Recorded:
    """One request the fake received: ``kind`` is ``api``, ``respond`` or ``upload``."""

    kind: str
    name: str  # API method, response_url key or file id
    args: dict[str, Any]
    token: str | None
    status: int = 200
    at: float = field(default_factory=time.monotonic)


@dataclass
class Failure:
    status: int
    retry_after: int | None
    body: dict[str, Any] | None
    times: int
    after: bool = False


@dataclass
class Workspace:
    """A workspace that can install the app through OAuth."""

    team_id: str
    name: str
    bot_token: str
    bot_user_id: str
    installer: str
    #: Token rotation on: tokens live ``expires_in`` seconds and come with a refresh token.
    expires_in: int | None = None


@dataclass
class User:
    id: str
    name: str
    is_admin: bool = False
    is_owner: bool = False
    is_primary_owner: bool = False
    team_id: str = ""


class FakeSlack:
    """The fake server. ``start()`` binds a free port on 127.0.0.1; ``stop()`` closes everything."""

    def __init__(
        self,
        *,
        team_id: str = "T0HOME",
        team_domain: str = "home",
        bot_token: str = "xoxb-fake-bot-token",
        app_token: str = "xapp-fake-app-token",
        bot_user_id: str = "U0BOT",
        client_id: str = "1111.2222",
        client_secret: str = "fake-client-secret-0123456789ab",
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        #: Workspaces that can install through OAuth, by team id; one-time codes -> team id.
        self.workspaces: dict[str, Workspace] = {}
        self._codes: dict[str, str] = {}
        #: Every bot token Slack accepts now, and its workspace.
        self.tokens: dict[str, str] = {bot_token: team_id}
        self.revoked: set[str] = set()
        self._refresh_tokens: dict[str, str] = {}
        self.team_id = team_id
        self.team_domain = team_domain
        self.bot_token = bot_token
        self.app_token = app_token
        self.bot_user_id = bot_user_id
        self.users: dict[str, User] = {}
        #: Channel id -> Slack error code for posts there (e.g. ``"not_in_channel"``).
        self.channel_errors: dict[str, str] = {}
        #: Channel id -> Slack error code for reading its history (e.g. ``"missing_scope"``).
        self.history_errors: dict[str, str] = {}
        #: Users whose direct messages with the app are closed (the app's Messages tab is off).
        self.closed_dms: set[str] = set()
        #: Home tabs published with ``views.publish``, by user id (the latest view), and how many times.
        self.home_views: dict[str, dict[str, Any]] = {}
        self.home_publishes: dict[str, int] = {}
        #: The bot token's scopes, as ``auth.test`` reports them in its ``x-oauth-scopes`` header.
        self.scopes: list[str] = [
            "commands", "chat:write", "users:read", "files:write", "im:write",
            "channels:history", "groups:history", "channels:read", "groups:read",
        ]  # fmt: skip
        #: Channels studybot was not invited to (``conversations.info`` says ``is_member: false``).
        self.not_member: set[str] = set()
        #: Seconds ``chat.postMessage`` takes to answer (the message exists on arrival).
        self.post_delay = 0.0
        #: Each ``chat.postMessage`` takes effect up to this many seconds after it arrives, at random.
        self.post_jitter = 0.0
        self._last_ts = 0.0
        #: response_url keys that answer 404 ``expired_url``, as Slack does after 30 minutes or 5 uses.
        self.expired_response_urls: set[str] = set()
        #: Every request, in arrival order.
        self.requests: list[Recorded] = []
        #: Messages as they stand now: (channel, ts) -> {"text", "blocks", "edits"}.
        self.messages: dict[tuple[str, str], dict[str, Any]] = {}
        #: Ephemeral messages sent through chat.postEphemeral: {"channel", "user", "text", "blocks"}.
        self.ephemeral: list[dict[str, Any]] = []
        #: What each response_url received, by key, in order.
        self.responses: dict[str, list[dict[str, Any]]] = {}
        #: Uploaded file bytes by file id, and completed uploads (file ids, channel, comment).
        self.uploaded: dict[str, bytes] = {}
        self.completed_uploads: list[dict[str, Any]] = []
        #: Modals opened with views.open, in order (each with its ``id`` and ``trigger_id``).
        self.views: list[dict[str, Any]] = []
        #: trigger_ids that views.open refuses as ``expired_trigger_id``.
        self.expired_triggers: set[str] = set()
        #: Files members uploaded into a form (`host_file`), by id; `downloads` lists the ids fetched.
        self.hosted: dict[str, tuple[str, bytes]] = {}
        self.downloads: list[str] = []
        self._failures: dict[str, list[Failure]] = {}
        self._ts = itertools.count(1)
        self._ids = itertools.count(1)
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self._ws: web.WebSocketResponse | None = None
        self._ws_ready = asyncio.Event()
        self._acks: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.port = 0
        #: How many Socket Mode connections were opened so far (reconnects add one each).
        self.socket_connections = 0

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @property
    def api_url(self) -> str:
        """The Web API base URL, for ``AsyncWebClient(base_url=...)`` / ``SLACK_API_URL``."""
        return f"{self.url}api/"

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_post("/respond/{key}", self._respond)
        app.router.add_post("/upload/{file_id}", self._upload)
        app.router.add_get("/link", self._link)
        app.router.add_get("/files/{file_id}/{name}", self._file)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        for fut in self._acks.values():
            if not fut.done():
                fut.cancel()
        if self._ws is not None:
            await self._ws.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # ------------------------------------------------------------------ configuration

    def add_user(self, user_id: str, name: str, *, admin: bool = False, owner: bool = False) -> User:
        user = User(user_id, name, is_admin=admin, is_owner=owner, team_id=self.team_id)
        self.users[user_id] = user
        return user

    def fail(
        self,
        method: str,
        status: int = 429,
        *,
        retry_after: int | None = 1,
        times: int = 1,
        body: dict[str, Any] | None = None,
        after: bool = False,
    ) -> None:
        """Make the next ``times`` calls of ``method`` fail with ``status`` (429 carries
        ``Retry-After``; 5xx answers with a plain-text body unless ``body`` is given). ``after``: the call
        takes effect first (the message is posted), then the failure is answered."""
        self._failures.setdefault(method, []).append(Failure(status, retry_after, body, times, after))

    def add_workspace(
        self, team_id: str, name: str, *, installer: str = "U0INSTALLER", expires_in: int | None = None
    ) -> Workspace:
        """A workspace that can install the app (its bot token is issued at install time). With
        ``expires_in`` its tokens rotate: each refresh (``grant_type=refresh_token``) ends the old token."""
        ws = Workspace(team_id, name, f"xoxb-{team_id.lower()}-fake-token", f"U0BOT{team_id}", installer, expires_in)
        self.workspaces[team_id] = ws
        return ws

    def authorize(self, team_id: str) -> str:
        """What Slack's authorize page does when the workspace's admin approves: a one-time code."""
        code = f"code-{team_id}-{next(self._ids)}"
        self._codes[code] = team_id
        return code

    def revoke(self, team_id: str) -> None:
        """End every token of the workspace (Slack does so when the app is uninstalled)."""
        self.revoked |= {t for t, team in self.tokens.items() if team == team_id}
        self.tokens = {t: team for t, team in self.tokens.items() if team != team_id}

    def event(self, team_id: str, event: dict[str, Any]) -> dict[str, Any]:
        """An Events API ``event_callback`` body from ``team_id``."""
        return {
            "token": "legacy-verification-token",
            "team_id": team_id,
            "api_app_id": "A0STUDY",
            "event": {"event_ts": f"{time.time():.6f}", **event},
            "type": "event_callback",
            "event_id": f"Ev{next(self._ids):08d}",
            "event_time": int(time.time()),
            "authorizations": [{"enterprise_id": None, "team_id": team_id, "user_id": "U0BOT", "is_bot": True}],
        }

    def response_url(self, key: str) -> str:
        return f"{self.url}respond/{key}"

    # ------------------------------------------------------------------ queries

    def calls(self, name: str, kind: str = "api") -> list[Recorded]:
        return [r for r in self.requests if r.kind == kind and r.name == name]

    def delivered(self, name: str) -> list[Recorded]:
        """Calls of an API method that succeeded."""
        return [r for r in self.calls(name) if r.status == 200]

    async def wait_for(self, predicate: Callable[[], Any], within: float = 10.0) -> Any:
        """Wait until ``predicate()`` is truthy (re-checked on every request); returns its value."""
        async with asyncio.timeout(within), self._changed:
            while not (value := predicate()):
                await self._changed.wait()
            return value

    async def responses_for(self, key: str, count: int = 1, within: float = 10.0) -> list[dict[str, Any]]:
        """Wait for ``count`` posts to ``response_url(key)`` and return them all."""
        await self.wait_for(lambda: len(self.responses.get(key, [])) >= count, within)
        return self.responses[key]

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    # ------------------------------------------------------------------ HTTP handlers

    @staticmethod
    def _json(data: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
        return web.Response(text=json.dumps(data), status=status, content_type="application/json", headers=headers)

    async def _args(self, request: web.Request) -> dict[str, Any]:
        args: dict[str, Any] = dict(request.query)
        raw = await request.read()
        if not raw:
            return args
        if request.content_type == "application/json":
            args.update(json.loads(raw))
        else:
            args.update(parse_qsl(raw.decode(), keep_blank_values=True))
        return args

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        args = await self._args(request)
        auth = request.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else args.get("token")
        if auth.startswith("Basic "):
            args["_basic"] = base64.b64decode(auth.removeprefix("Basic ")).decode()
        rec = Recorded("api", method, args, token)
        self.requests.append(rec)
        try:
            if method == "chat.postMessage" and self.post_jitter:
                await asyncio.sleep(random.uniform(0, self.post_jitter))
            response = self._inject(method, after=False)
            if response is None:
                response = self._dispatch(method, args, token)
                if response.status == 200:
                    response = self._inject(method, after=True) or response
            rec.status = response.status
            if method == "chat.postMessage" and self.post_delay:
                await asyncio.sleep(self.post_delay)
            return response
        finally:
            await self._notify()

    def _inject(self, method: str, *, after: bool) -> web.Response | None:
        queue = self._failures.get(method)
        if not queue or queue[0].after != after:
            return None
        failure = queue[0]
        failure.times -= 1
        if failure.times <= 0:
            queue.pop(0)
        if failure.status == 429:
            headers = {"Retry-After": str(failure.retry_after)} if failure.retry_after is not None else {}
            return self._json(failure.body or {"ok": False, "error": "ratelimited"}, 429, headers)
        if failure.body is not None:
            return self._json(failure.body, failure.status)
        return web.Response(text="upstream trouble", status=failure.status, content_type="text/plain")

    def _dispatch(self, method: str, args: dict[str, Any], token: str | None) -> web.Response:
        if method == "apps.connections.open":
            if token != self.app_token:
                return self._json({"ok": False, "error": "invalid_auth"})
            return self._json({"ok": True, "url": f"ws://127.0.0.1:{self.port}/link"})
        if method == "oauth.v2.access":
            return self._json(self._oauth_v2_access(args))
        if token not in self.tokens:
            error = "token_revoked" if token in self.revoked else "invalid_auth" if token else "not_authed"
            return self._json({"ok": False, "error": error})
        handler = getattr(self, "_m_" + method.replace(".", "_"), None)
        if handler is None:
            return self._json({"ok": False, "error": "unknown_method"})
        if method == "auth.test":
            return self._json(self._m_auth_test(args, token), headers={"x-oauth-scopes": ",".join(self.scopes)})
        result: dict[str, Any] = handler(args)
        return self._json(result)

    def _oauth_v2_access(self, args: dict[str, Any]) -> dict[str, Any]:
        basic = args.pop("_basic", "")
        client_id, _, secret = basic.partition(":") if basic else (args.get("client_id", ""), "", "")
        secret = secret or args.get("client_secret", "")
        if (client_id, secret) != (self.client_id, self.client_secret):
            return {"ok": False, "error": "invalid_client_id" if client_id != self.client_id else "bad_client_secret"}
        if args.get("grant_type") == "refresh_token":
            return self._refresh(str(args.get("refresh_token", "")))
        team_id = self._codes.pop(str(args.get("code", "")), None)  # a code works once
        if team_id is None:
            return {"ok": False, "error": "invalid_code"}
        ws = self.workspaces[team_id]
        self.tokens[ws.bot_token] = team_id
        rotation = self._new_refresh(ws) if ws.expires_in else {}
        return rotation | {
            "ok": True,
            "app_id": "A0STUDY",
            "authed_user": {"id": ws.installer},
            "scope": "commands,chat:write,users:read,files:write,im:write",
            "token_type": "bot",
            "access_token": ws.bot_token,
            "bot_user_id": ws.bot_user_id,
            "team": {"id": team_id, "name": ws.name},
            "enterprise": None,
            "is_enterprise_install": False,
        }

    def _new_refresh(self, ws: Workspace) -> dict[str, Any]:
        refresh = f"xoxe-1-{ws.team_id.lower()}-refresh-{next(self._ids)}"
        self._refresh_tokens[refresh] = ws.team_id
        return {"refresh_token": refresh, "expires_in": ws.expires_in}

    def _refresh(self, refresh_token: str) -> dict[str, Any]:
        team_id = self._refresh_tokens.pop(refresh_token, None)  # a refresh token works once
        if team_id is None:
            return {"ok": False, "error": "invalid_refresh_token"}
        ws = self.workspaces[team_id]
        self.revoked |= {t for t, team in self.tokens.items() if team == team_id}
        self.tokens = {t: team for t, team in self.tokens.items() if team != team_id}
        ws.bot_token = f"xoxe.xoxb-{team_id.lower()}-rotated-{next(self._ids)}"
        self.tokens[ws.bot_token] = team_id
        return {"ok": True, "token_type": "bot", "access_token": ws.bot_token, "team": {"id": team_id}} | (
            self._new_refresh(ws)
        )

    def _m_auth_test(self, args: dict[str, Any], token: str | None = None) -> dict[str, Any]:
        team_id = self.tokens.get(token or "", self.team_id)
        ws = self.workspaces.get(team_id)
        domain = ws.name.lower().replace(" ", "-") if ws else self.team_domain
        return {
            "ok": True,
            "url": f"https://{domain}.slack.com/",
            "team": domain,
            "user": "studybot",
            "team_id": team_id,
            "user_id": ws.bot_user_id if ws else self.bot_user_id,
            "bot_id": f"B0BOT{team_id}" if ws else "B0BOT",
            "is_enterprise_install": False,
        }

    def _channel_error(self, channel: str) -> dict[str, Any] | None:
        if not channel:
            return {"ok": False, "error": "channel_not_found"}
        if channel in self.channel_errors:
            return {"ok": False, "error": self.channel_errors[channel]}
        return None

    @staticmethod
    def _blocks(args: dict[str, Any]) -> list[Any]:
        blocks = args.get("blocks") or []
        return json.loads(blocks) if isinstance(blocks, str) else list(blocks)

    def _m_chat_postMessage(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = str(args.get("channel", ""))
        if channel.startswith(("U", "W")):  # a user id: Slack posts in the app's DM with that user
            if channel in self.closed_dms:
                return {"ok": False, "error": "messages_tab_disabled"}
            channel = "D" + channel
        error = self._channel_error(channel)
        if error:
            return error
        ts = self._new_ts()
        metadata = args.get("metadata")
        metadata = json.loads(metadata) if isinstance(metadata, str) else metadata
        self.messages[(channel, ts)] = {
            "text": args.get("text", ""),
            "blocks": self._blocks(args),
            "edits": 0,
            "metadata": metadata,
            "thread_ts": str(args["thread_ts"]) if args.get("thread_ts") else None,
        }
        return {"ok": True, "channel": channel, "ts": ts, "message": {"text": args.get("text", ""), "ts": ts}}

    def _new_ts(self) -> str:
        """A message ``ts`` as Slack makes them: the posting time, unique within the fake."""
        self._last_ts = max(self._last_ts + 0.000001, time.time())
        return f"{self._last_ts:.6f}"

    def _m_conversations_history(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = str(args.get("channel", ""))
        error = self._channel_error(channel)
        if error:
            return error
        if channel in self.history_errors:
            return {"ok": False, "error": self.history_errors[channel], "needed": "channels:history"}
        oldest = float(args.get("oldest") or 0)
        limit = max(1, min(999, int(args.get("limit") or 100)))
        with_metadata = str(args.get("include_all_metadata", "")).lower() in ("1", "true")
        # Replies in a thread are not in the channel's history (they are in conversations.replies).
        found = sorted(
            (ts, m)
            for (ch, ts), m in self.messages.items()
            if ch == channel and float(ts) > oldest and m.get("thread_ts") in (None, ts)
        )[-limit:]
        return self._listing(found, with_metadata)

    def _m_conversations_replies(self, args: dict[str, Any]) -> dict[str, Any]:
        """A thread: its parent message and the replies (``thread_ts`` = ``ts``), oldest first."""
        channel = str(args.get("channel", ""))
        error = self._channel_error(channel)
        if error:
            return error
        parent = str(args.get("ts", ""))
        if (channel, parent) not in self.messages:
            return {"ok": False, "error": "thread_not_found"}
        oldest = float(args.get("oldest") or 0)
        with_metadata = str(args.get("include_all_metadata", "")).lower() in ("1", "true")
        found = sorted(
            (ts, m)
            for (ch, ts), m in self.messages.items()
            if ch == channel and (ts == parent or m.get("thread_ts") == parent) and float(ts) > oldest
        )
        listing = self._listing(found, with_metadata)
        listing["messages"].reverse()
        return listing

    def _m_conversations_info(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = str(args.get("channel", ""))
        if "channels:read" not in self.scopes:
            return {"ok": False, "error": "missing_scope", "needed": "channels:read"}
        if not channel:
            return {"ok": False, "error": "channel_not_found"}
        member = channel not in self.not_member
        return {
            "ok": True,
            "channel": {"id": channel, "name": channel.lower(), "is_private": False, "is_member": member},
        }

    def thread(self, channel: str, ts: str) -> list[dict[str, Any]]:
        """The replies in a message's thread, oldest first."""
        return [
            m for (ch, t), m in sorted(self.messages.items()) if ch == channel and m.get("thread_ts") == ts and t != ts
        ]

    def _listing(self, found: list[tuple[str, dict[str, Any]]], with_metadata: bool) -> dict[str, Any]:
        out = []
        for ts, m in reversed(found):
            msg: dict[str, Any] = {
                "type": "message",
                "ts": ts,
                "text": m["text"],
                "blocks": m["blocks"],
                "user": self.bot_user_id,
                "bot_id": "B0BOT",
            }
            if with_metadata and m.get("metadata"):
                msg["metadata"] = m["metadata"]
            out.append(msg)
        return {"ok": True, "messages": out, "has_more": False}

    def _m_chat_postEphemeral(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = str(args.get("channel", ""))
        error = self._channel_error(channel)
        if error:
            return error
        if not args.get("user"):
            return {"ok": False, "error": "user_not_in_channel"}
        ts = f"{1700000000 + next(self._ts)}.000200"
        self.ephemeral.append(
            {"channel": channel, "user": args["user"], "text": args.get("text", ""), "blocks": self._blocks(args)}
        )
        return {"ok": True, "message_ts": ts}

    def _m_chat_update(self, args: dict[str, Any]) -> dict[str, Any]:
        channel, ts = str(args.get("channel", "")), str(args.get("ts", ""))
        error = self._channel_error(channel)
        if error:
            return error
        msg = self.messages.get((channel, ts))
        if msg is None:
            return {"ok": False, "error": "message_not_found"}
        msg.update(text=args.get("text", ""), blocks=self._blocks(args), edits=msg["edits"] + 1)
        return {"ok": True, "channel": channel, "ts": ts, "text": msg["text"]}

    def _m_users_info(self, args: dict[str, Any]) -> dict[str, Any]:
        user = self.users.get(str(args.get("user", "")))
        if user is None:
            return {"ok": False, "error": "user_not_found"}
        return {
            "ok": True,
            "user": {
                "id": user.id,
                "team_id": user.team_id or self.team_id,
                "name": user.name.lower(),
                "real_name": user.name,
                "is_admin": user.is_admin,
                "is_owner": user.is_owner,
                "is_primary_owner": user.is_primary_owner,
                "is_bot": False,
                "profile": {"display_name": user.name, "real_name": user.name},
            },
        }

    def _m_views_publish(self, args: dict[str, Any]) -> dict[str, Any]:
        """A Home tab view for ``user_id``; refused as Slack does when it breaks the view limits."""
        user = str(args.get("user_id", ""))
        view = args.get("view")
        view = json.loads(view) if isinstance(view, str) else view
        if not user or not isinstance(view, dict) or view.get("type") != "home":
            return {"ok": False, "error": "invalid_arguments"}
        blocks = view.get("blocks") or []
        too_long = any(
            len((b.get("text") or {}).get("text", "")) > (150 if b.get("type") == "header" else 3000)
            or any(len(el["text"]["text"]) > 75 for el in b.get("elements") or [] if el.get("type") == "button")
            for b in blocks
        )
        if len(blocks) > 100 or too_long:
            return {"ok": False, "error": "invalid_arguments"}
        self.home_views[user] = view
        self.home_publishes[user] = self.home_publishes.get(user, 0) + 1
        return {"ok": True, "view": {"id": f"V{next(self._ids):06d}", "type": "home", **view}}

    def _m_views_open(self, args: dict[str, Any]) -> dict[str, Any]:
        trigger = str(args.get("trigger_id") or "")
        if not trigger.startswith("trigger-") or trigger in self.expired_triggers:
            return {"ok": False, "error": "expired_trigger_id" if trigger else "invalid_arguments"}
        view = args.get("view")
        view = json.loads(view) if isinstance(view, str) else view
        problem = self._view_problem(view) if isinstance(view, dict) else "view must be an object"
        if problem:
            return {"ok": False, "error": "invalid_arguments", "response_metadata": {"messages": [problem]}}
        assert isinstance(view, dict)
        opened = {**view, "id": f"V{next(self._ids):06d}", "trigger_id": trigger}
        self.views.append(opened)
        return {"ok": True, "view": opened}

    @staticmethod
    def _view_problem(view: dict[str, Any]) -> str | None:
        if view.get("type") != "modal":
            return "type must be modal"
        for key in ("title", "submit", "close"):
            text = (view.get(key) or {}).get("text", "")
            if (key == "title" and not text) or len(text) > 24:
                return f"{key} must be 1-24 characters"
        if len(view.get("callback_id") or "") > 255 or len(view.get("private_metadata") or "") > 3000:
            return "callback_id up to 255, private_metadata up to 3000"
        blocks = view.get("blocks") or []
        if not 0 < len(blocks) <= 100:
            return "1-100 blocks"
        for b in blocks:
            el = b.get("element") or {}
            if (
                b.get("type") != "input"
                or el.get("type") not in ("plain_text_input", "file_input")
                or not b.get("block_id")
            ):
                return "input blocks with a plain_text_input or file_input and a block_id expected"
            if el.get("type") == "file_input" and not 1 <= int(el.get("max_files") or 10) <= 10:
                return "max_files 1-10"
            if not 0 < len((b.get("label") or {}).get("text", "")) <= 2000:
                return "labels 1-2000 characters"
            if not 1 <= int(el.get("max_length") or 3000) <= 3000:
                return "max_length 1-3000"
            if len(el.get("initial_value") or "") > int(el.get("max_length") or 3000):
                return "initial_value longer than max_length"
            if len((el.get("placeholder") or {}).get("text", "")) > 150:
                return "placeholder up to 150 characters"
        return None

    def view_submission(
        self, view: dict[str, Any], values: dict[str, str], *, user: str, team: str | None = None
    ) -> dict[str, Any]:
        """The ``view_submission`` payload for submitting ``view`` (from `views`) with ``values`` by block
        id; blocks not in ``values`` keep their initial value, as in the client."""
        team = team or self.team_id
        state: dict[str, Any] = {}
        for b in view["blocks"]:
            el = b["element"]
            value = values.get(b["block_id"], el.get("initial_value") or "")
            state[b["block_id"]] = {el["action_id"]: {"type": "plain_text_input", "value": value or None}}
        return {
            "type": "view_submission",
            "team": {"id": team, "domain": "home"},
            "user": {"id": user, "username": user.lower(), "name": user.lower(), "team_id": team},
            "api_app_id": "A0STUDY",
            "token": "legacy-verification-token",
            "trigger_id": f"trigger-sub-{next(self._ids)}",
            "view": {
                "id": view["id"],
                "team_id": team,
                "type": "modal",
                "blocks": view["blocks"],
                "private_metadata": view.get("private_metadata", ""),
                "callback_id": view["callback_id"],
                "state": {"values": state},
                "hash": "1700000000.abcdef",
                "title": view["title"],
                "app_id": "A0STUDY",
                "bot_id": "B0BOT",
            },
            "response_urls": [],
        }

    def _m_conversations_open(self, args: dict[str, Any]) -> dict[str, Any]:
        users = str(args.get("users", ""))
        if not users:
            return {"ok": False, "error": "users_list_not_supplied"}
        return {"ok": True, "channel": {"id": "D" + users.split(",")[0]}}

    def _m_files_getUploadURLExternal(self, args: dict[str, Any]) -> dict[str, Any]:
        if not args.get("filename") or not str(args.get("length", "")).isdigit():
            return {"ok": False, "error": "invalid_arguments"}
        file_id = f"F{next(self._ids):06d}"
        return {"ok": True, "upload_url": f"{self.url}upload/{file_id}", "file_id": file_id}

    def _m_files_completeUploadExternal(self, args: dict[str, Any]) -> dict[str, Any]:
        files = args.get("files")
        files = json.loads(files) if isinstance(files, str) else files
        channel = str(args.get("channel_id") or "")
        if channel:
            error = self._channel_error(channel)
            if error:
                return error
        missing = [f["id"] for f in files or [] if f["id"] not in self.uploaded]
        if not files or missing:
            return {"ok": False, "error": "file_not_found"}
        self.completed_uploads.append(
            {"files": [f["id"] for f in files], "channel": channel, "comment": args.get("initial_comment")}
        )
        return {"ok": True, "files": [{"id": f["id"], "title": f.get("title") or ""} for f in files]}

    def host_file(self, name: str, data: bytes, *, size: int | None = None) -> dict[str, Any]:
        """A file as a ``file_input`` submission lists it; its bytes are served (to a valid bot token)."""
        fid = f"F{next(self._ids):06d}"
        self.hosted[fid] = (name, data)
        url = f"http://127.0.0.1:{self.port}/files/{fid}/{name}"
        return {"id": fid, "name": name, "size": len(data) if size is None else size,
                "url_private": url, "url_private_download": url}  # fmt: skip

    async def _file(self, request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization", "")
        if auth.removeprefix("Bearer ") not in self.tokens:
            return web.Response(status=403, text="not allowed")
        found = self.hosted.get(request.match_info["file_id"])
        if found is None:
            return web.Response(status=404)
        self.downloads.append(request.match_info["file_id"])
        return web.Response(body=found[1], content_type="application/octet-stream")

    async def _respond(self, request: web.Request) -> web.Response:
        key = request.match_info["key"]
        body = json.loads(await request.read())
        if key in self.expired_response_urls:
            self.requests.append(Recorded("respond", key, body, None, status=404))
            await self._notify()
            return web.Response(text="expired_url", status=404, content_type="text/plain")
        self.requests.append(Recorded("respond", key, body, None))
        self.responses.setdefault(key, []).append(body)
        await self._notify()
        return web.Response(text="ok", content_type="text/plain")

    async def _upload(self, request: web.Request) -> web.Response:
        file_id = request.match_info["file_id"]
        self.uploaded[file_id] = await request.read()
        self.requests.append(Recorded("upload", file_id, {"size": len(self.uploaded[file_id])}, None))
        await self._notify()
        return web.Response(text=f"OK - {len(self.uploaded[file_id])}", content_type="text/plain")

    # ------------------------------------------------------------------ Socket Mode

    async def _link(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self._ws = ws
        self.socket_connections += 1
        await ws.send_str(json.dumps({"type": "hello", "num_connections": 1, "debug_info": {"host": "fake"}}))
        self._ws_ready.set()
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                data = json.loads(msg.data)
                fut = self._acks.get(str(data.get("envelope_id")))
                if fut is not None and not fut.done():
                    fut.set_result(data)
        finally:
            if self._ws is ws:
                self._ws = None
                self._ws_ready.clear()
        return ws

    async def ask_to_reconnect(self) -> None:
        """Send Slack's ``disconnect`` message (it does so every few hours): the client must fetch a
        fresh URL and connect again."""
        assert self._ws is not None
        old, self._ws = self._ws, None
        self._ws_ready.clear()
        await old.send_str(json.dumps({"type": "disconnect", "reason": "refresh_requested"}))

    async def socket_connected(self, within: float = 10.0) -> None:
        """Wait until a Socket Mode client holds the websocket."""
        await asyncio.wait_for(self._ws_ready.wait(), within)

    async def send_envelope(
        self, kind: str, payload: dict[str, Any], within: float = 10.0
    ) -> tuple[dict[str, Any], float]:
        """Send a Socket Mode envelope (``slash_commands`` or ``interactive``); return the client's
        ack and the seconds it took to arrive."""
        await self.socket_connected(within)
        assert self._ws is not None
        envelope_id = f"env-{next(self._ids)}"
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._acks[envelope_id] = fut
        envelope = {"envelope_id": envelope_id, "type": kind, "accepts_response_payload": True, "payload": payload}
        started = time.perf_counter()
        await self._ws.send_str(json.dumps(envelope))
        try:
            ack = await asyncio.wait_for(fut, within)
        finally:
            with contextlib.suppress(KeyError):
                del self._acks[envelope_id]
        return ack, time.perf_counter() - started
