"""A loopback fake Discord (REST + gateway) that the unmodified discord.py client talks to.

Self-contained (aiohttp + discord.py only) so that tests and benchmarks can share it::

    async with FakeDiscord(rate_limit_per_s=50) as fake:   # starts on 127.0.0.1 and points discord.py at it
        ...                                                # run a discord.py client with fake.token
        iid = await fake.dispatch_interaction(fake.slash("quiz"))
        cb = await fake.callback(iid)                      # the interaction callback it POSTed

What it does (see /work/shared/platform-testing.md for why each detail matters):

- REST under ``/api/v10``: ``users/@me``, ``oauth2/applications/@me``, command sync (``PUT``), channel
  messages (create, edit), ``GET channels/{id}``, interaction callbacks (``?with_response=1`` bodies),
  webhook follow-ups and ``@original`` edits. JSON is served as exactly ``application/json``.
- A gateway on ``/gateway``: HELLO, heartbeat ACK, READY and one GUILD_CREATE per guild on IDENTIFY,
  RESUMED on RESUME, then whatever the test dispatches. Frames are TEXT (no zlib).
- Sharding: ``GET /gateway/bot`` answers the recommended shard count (``recommended_shards``) and a
  ``session_start_limit`` that each IDENTIFY uses up. An IDENTIFY's ``shard: [id, count]`` decides what
  that session sees: READY/GUILD_CREATE and every event that names a guild go only to the session of the
  shard that owns the guild, ``(guild_id >> 22) % count`` (`Session` records who got what).
- Every REST request is recorded (`requests`), with JSON or ``payload_json`` bodies and uploaded files.
- Faults: `fail` queues responses (429 with ``Via`` + ``retry_after``, 403 Missing Access, 5xx) for matching
  requests, before the request takes effect or (``after=True``) after it did — a 500 on a message that was in
  fact created; `forbid` denies a channel for good; `post_delay` makes every channel post slow (the message
  exists at once, the answer comes after the delay); ``rate_limit_per_s`` answers requests past that many per
  second with a global 429 (with ``Via``), the way Discord's 50 req/s limit does. Interaction callbacks and
  webhooks are exempt from the rate limit, as on Discord.
- Idempotent sends as on Discord: a channel post with ``nonce`` and ``enforce_nonce`` whose nonce was used in
  that channel within `nonce_window` seconds returns the earlier message instead of creating another
  (`expire_nonces` lets a test make that window pass). ``GET /channels/{id}/messages`` (``limit``, ``after``,
  ``before``) lists a channel's messages newest first; `deny_history` answers it with 403, as for a bot
  without Read Message History. Message ids are snowflakes of the current time.
- Modals: an interaction callback of type 9 is checked as Discord checks it (title and labels ≤ 45, at most 5
  inputs, ``custom_id`` ≤ 100, not in answer to a modal submit: 400 otherwise) and kept in `modals` by
  interaction id; `submit_modal` builds the type-5 ``INTERACTION_CREATE`` that submitting it sends.
- Ack latency: the time from dispatching an ``INTERACTION_CREATE`` to receiving its callback
  (`ack_latencies`).

Only one fake can be installed at a time: discord.py's REST base and gateway URL are class attributes.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import discord
import discord.gateway
import discord.http
import yarl
from aiohttp import WSMsgType, web

API = "/api/v10"
EPHEMERAL = 64
LOADING = 128


@dataclass(frozen=True)
class FakeFile:
    """A file a member attaches to a slash command option (type 11); the fake serves its bytes from
    ``/cdn/…``, where discord.py's `Attachment.read` fetches them."""

    filename: str
    data: bytes
    content_type: str = "text/plain"
    #: The size Discord reports (defaults to the data's); lets a test claim a file too big to fetch.
    size: int | None = None


@dataclass(frozen=True)
class FakeUser:
    """A guild member as the fake presents it in interactions."""

    id: int
    name: str
    permissions: int = int(discord.Permissions(view_channel=True, send_messages=True).value)

    def user(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "username": self.name,
            "global_name": self.name,
            "discriminator": "0",
            "avatar": None,
        }

    def member(self) -> dict[str, Any]:
        return {
            "user": self.user(),
            "nick": None,
            "roles": [],
            "joined_at": "2026-01-01T00:00:00+00:00",
            "deaf": False,
            "mute": False,
            "flags": 0,
            "permissions": str(self.permissions),
        }


#: Manage Server: what studybot's admin commands need.
ADMIN_PERMISSIONS = int(discord.Permissions(view_channel=True, send_messages=True, manage_guild=True).value)


@dataclass
class Recorded:
    """One REST request as the fake saw it, and how it answered."""

    method: str
    path: str  # without the /api/v10 prefix
    query: dict[str, str]
    json: Any
    files: list[tuple[str, bytes]]
    status: int
    at: float  # time.perf_counter() on arrival
    headers: dict[str, str] = field(default_factory=dict)
    peer: tuple[str, int] = ("", 0)  # the client's address: which process sent it


@dataclass
class Fault:
    """A queued fault: the next ``times`` requests matching ``method`` and ``path`` get ``status``."""

    method: str
    path: re.Pattern[str]
    status: int
    times: int = 1
    retry_after: float = 0.05
    via: bool = True
    code: int = 0
    message: str = ""
    after: bool = False  # the request took effect before the error was answered


#: What the fake gives studybot's own role by default: everything the bot may use (so checks pass).
BOT_ROLE_PERMISSIONS = int(
    discord.Permissions(
        view_channel=True,
        send_messages=True,
        attach_files=True,
        read_message_history=True,
        create_public_threads=True,
        send_messages_in_threads=True,
        manage_roles=True,
    ).value
)


@dataclass
class FakeRole:
    """A guild role as the fake serves it (in GUILD_CREATE and as a slash-command option)."""

    id: int
    name: str
    position: int
    permissions: int = 0
    managed: bool = False

    def json(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "name": self.name,
            "permissions": str(self.permissions),
            "position": self.position,
            "color": 0,
            "hoist": False,
            "managed": self.managed,
            "mentionable": False,
            "flags": 0,
        }


@dataclass
class Guild:
    """A guild: its channels, its roles (``@everyone`` has the guild's id), the roles of studybot's own
    member, per-channel permission overwrites and the roles granted to members so far."""

    id: int
    name: str
    channels: dict[int, str]
    roles: dict[int, FakeRole] = field(default_factory=dict)
    bot_roles: list[int] = field(default_factory=list)
    overwrites: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    member_roles: dict[int, set[int]] = field(default_factory=dict)

    @property
    def bot_role(self) -> FakeRole:
        return self.roles[self.bot_roles[0]]

    def bot_permissions(self, channel_id: int | None = None) -> discord.Permissions:
        """studybot's permissions in the guild, or in a channel after its overwrites (Discord's algorithm)."""
        perms = self.roles[self.id].permissions
        for rid in self.bot_roles:
            perms |= self.roles[rid].permissions
        if perms & discord.Permissions(administrator=True).value:
            return discord.Permissions.all()
        if channel_id is not None:
            mine = {str(self.id), *map(str, self.bot_roles)}
            for ow in sorted(self.overwrites.get(channel_id, []), key=lambda o: o["id"] != str(self.id)):
                if ow["type"] == 0 and ow["id"] in mine:
                    perms = (perms & ~int(ow["deny"])) | int(ow["allow"])
        return discord.Permissions(perms)

    def bot_top_position(self) -> int:
        return max((self.roles[r].position for r in self.bot_roles), default=0)


def shard_of(guild_id: int, count: int) -> int:
    """The shard that owns a guild, as Discord assigns it."""
    return (guild_id >> 22) % count


@dataclass
class Session:
    """One identified gateway session: its shard ``(id, count)``, the client's address and the
    dispatches (``(event, guild id or None)``) it was sent."""

    shard: tuple[int, int]
    peer: tuple[str, int]
    session_id: str
    identified_at: float
    received: list[tuple[str, int | None]] = field(default_factory=list)
    ws: web.WebSocketResponse | None = field(default=None, repr=False, compare=False)

    def owns(self, guild_id: int) -> bool:
        return shard_of(guild_id, self.shard[1]) == self.shard[0]


class FakeDiscord:
    """A fake Discord on 127.0.0.1. `start`/`stop` (or ``async with``), then dispatch events.

    ``rate_limit_per_s``: at most this many REST requests (outside interactions/webhooks) per rolling second;
    the rest get a global 429 with a ``Via`` header and ``retry_after``.
    """

    def __init__(
        self,
        *,
        token: str = "fake-bot-token",
        app_id: int = 710000000000000001,
        bot_id: int = 710000000000000002,
        rate_limit_per_s: float | None = None,
        install: bool = True,
        recommended_shards: int = 1,
        session_starts: int = 1000,
        max_concurrency: int = 1,
        nonce_window: float = 300.0,
    ) -> None:
        self.token = token
        self.app_id = app_id
        self.bot_id = bot_id
        self.rate_limit_per_s = rate_limit_per_s
        self._install = install
        self.guilds: dict[int, Guild] = {}
        self.requests: list[Recorded] = []
        self.messages: dict[int, dict[str, Any]] = {}  # every message the bot created, by id
        self.commands: dict[int | None, list[dict[str, Any]]] = {}  # synced commands by guild (None: global)
        self.faults: list[Fault] = []
        self.forbidden_channels: set[int] = set()
        #: Direct-message channels the bot opened (``POST /users/@me/channels``): channel id -> user id.
        self.dm_channels: dict[int, int] = {}
        #: Users who do not accept direct messages from the bot: a DM to them answers 403 with code 50007.
        self.closed_dms: set[int] = set()
        #: Threads opened on messages (a thread's id is its message's id), as Discord returns them.
        self.threads: dict[int, dict[str, Any]] = {}
        self.history_denied: set[int] = set()
        #: Seconds a channel post takes to be answered (the message is created on arrival).
        self.post_delay = 0.0
        self.nonce_window = nonce_window
        self.nonce_hits = 0  # posts answered with an earlier message because of their nonce
        self._nonces: dict[tuple[int, str], tuple[int, float]] = {}
        self._last_snowflake = 0
        self.rate_limited = 0  # how many 429s the rate limiter gave
        self.identifies: list[dict[str, Any]] = []
        self.recommended_shards = recommended_shards
        self.session_starts_left = session_starts
        self.session_starts_total = session_starts
        self.max_concurrency = max_concurrency
        #: Identified (and resumed) gateway sessions, in order.
        self.sessions: list[Session] = []
        self._session_of: dict[web.WebSocketResponse, Session] = {}
        self._ids = itertools.count(900000000000000000)
        #: Attached files by id, served from ``/cdn/<id>/<name>``; `cdn_fetches` counts what was fetched.
        self.files: dict[str, FakeFile] = {}
        self.cdn_fetches: list[str] = []
        self._window: deque[float] = deque()
        self._sockets: set[web.WebSocketResponse] = set()
        self._identified: set[web.WebSocketResponse] = set()
        self._seq = itertools.count(1)
        self._dispatched: dict[int, float] = {}
        self._acked: dict[int, float] = {}
        self._tokens: dict[int, str] = {}
        self._channel_of: dict[int, int] = {}
        self._itype: dict[int, int] = {}
        #: DM channel id -> user id; users whose DMs are closed; what each user was sent by DM.
        #: Modals the bot opened (callback type 9), by the id of the interaction they answered.
        self.modals: dict[int, dict[str, Any]] = {}
        self._cond: asyncio.Condition | None = None
        self._runner: web.AppRunner | None = None
        self._saved: tuple[str, yarl.URL] | None = None
        self.port = 0
        self.add_guild(810000000000000001, "Study Hall", {820000000000000001: "general", 820000000000000002: "quiz"})

    # ------------------------------------------------------------------ set-up

    def add_guild(self, guild_id: int, name: str, channels: dict[int, str]) -> Guild:
        """Add a guild (with text channels ``{id: name}``); it is sent in READY/GUILD_CREATE on IDENTIFY.
        It has ``@everyone`` (View Channel, Send Messages) and studybot's own managed role at position 1
        with `BOT_ROLE_PERMISSIONS`."""
        g = Guild(guild_id, name, dict(channels))
        g.roles[guild_id] = FakeRole(
            guild_id, "@everyone", 0, int(discord.Permissions(view_channel=True, send_messages=True).value)
        )
        bot_role = guild_id + 1
        g.roles[bot_role] = FakeRole(bot_role, "studybot", 1, BOT_ROLE_PERMISSIONS, managed=True)
        g.bot_roles.append(bot_role)
        self.guilds[guild_id] = g
        return g

    def add_role(self, guild_id: int, role_id: int, name: str, position: int, permissions: int = 0) -> FakeRole:
        """Add a role to a guild (before the bot connects: it is sent in GUILD_CREATE). Positions above the
        bot's role (1) are out of its reach."""
        role = FakeRole(role_id, name, position, permissions)
        self.guilds[guild_id].roles[role_id] = role
        return role

    def overwrite(self, channel_id: int, target_id: int, *, allow: int = 0, deny: int = 0) -> None:
        """A role permission overwrite on a channel (before the bot connects)."""
        gid = self._guild_of(channel_id)
        assert gid is not None
        self.guilds[gid].overwrites.setdefault(channel_id, []).append(
            {"id": str(target_id), "type": 0, "allow": str(allow), "deny": str(deny)}
        )

    @property
    def guild(self) -> Guild:
        """The first guild (the default ``Study Hall``)."""
        return next(iter(self.guilds.values()))

    @property
    def channel_id(self) -> int:
        return next(iter(self.guild.channels))

    def fail(
        self,
        method: str,
        path: str,
        status: int,
        *,
        times: int = 1,
        retry_after: float = 0.05,
        via: bool = True,
        code: int = 0,
        message: str = "",
        after: bool = False,
    ) -> Fault:
        """Answer the next ``times`` requests whose path (without ``/api/v10``) fully matches the regex
        ``path`` with ``status``. A 429 carries ``retry_after`` (and a ``Via`` header unless ``via=False``).
        ``after``: the request takes effect first (a channel post is created), then the error is answered."""
        f = Fault(method.upper(), re.compile(path), status, times, retry_after, via, code, message, after)
        self.faults.append(f)
        return f

    def deny_history(self, channel_id: int) -> None:
        """Reading this channel's messages answers 403 Missing Access (no Read Message History)."""
        self.history_denied.add(channel_id)

    def expire_nonces(self) -> None:
        """Let the nonce window pass: later posts with a nonce used before create new messages."""
        self._nonces.clear()

    def close_dms(self, user_id: int) -> None:
        """This user no longer accepts direct messages from the bot (Discord's error 50007)."""
        self.closed_dms.add(user_id)

    def dm_channel_of(self, user_id: int) -> int | None:
        """The DM channel the bot opened with ``user_id``, if any."""
        return next((cid for cid, uid in self.dm_channels.items() if uid == user_id), None)

    def dm_messages(self, user_id: int) -> list[dict[str, Any]]:
        """Messages the bot sent ``user_id`` by direct message, oldest first."""
        cid = self.dm_channel_of(user_id)
        return [] if cid is None else self.channel_messages(cid)

    def dm_click(self, custom_id: str, message: dict[str, Any], *, user: FakeUser) -> dict[str, Any]:
        """An ``INTERACTION_CREATE`` payload for ``user`` clicking ``custom_id`` on ``message`` in their DM with
        the bot: no guild, a ``user`` instead of a ``member``, a DM channel (type 1)."""
        cid = int(message["channel_id"])
        iid = next(self._ids)
        token = f"itoken-{iid}"
        self._tokens[iid] = token
        self._channel_of[iid] = cid
        return {
            "id": str(iid),
            "application_id": str(self.app_id),
            "type": 3,
            "data": {"custom_id": custom_id, "component_type": 2},
            "channel_id": str(cid),
            "channel": {"id": str(cid), "type": 1, "recipients": [user.user()], "last_message_id": None},
            "user": user.user(),
            "token": token,
            "version": 1,
            "app_permissions": str(discord.Permissions(view_channel=True, send_messages=True).value),
            "locale": "en-US",
            "entitlements": [],
            "authorizing_integration_owners": {"1": str(user.id)},
            "context": 1,
            "attachment_size_limit": 10 * 1024 * 1024,
            "message": message,
        }

    def forbid(self, channel_id: int) -> None:
        """Posting to (or fetching) this channel answers 403 Missing Access from now on."""
        self.forbidden_channels.add(channel_id)

    @property
    def rest_base(self) -> str:
        return f"http://127.0.0.1:{self.port}{API}"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gateway"

    async def start(self) -> None:
        """Listen on 127.0.0.1 (a free port) and, unless ``install=False``, point discord.py here."""
        self._cond = asyncio.Condition()
        app = web.Application(client_max_size=32 * 1024 * 1024)
        app.router.add_get("/gateway", self._gateway)
        app.router.add_get("/cdn/{aid}/{name}", self._cdn)
        app.router.add_route("*", API + "/{tail:.*}", self._rest)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        if self._install:
            self.install()

    def install(self) -> None:
        """Point discord.py's REST base and gateway URL at this fake (undone by `uninstall`/`stop`)."""
        if self._saved is None:
            self._saved = (discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY)
        discord.http.Route.BASE = self.rest_base
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(self.gateway_url)

    def uninstall(self) -> None:
        if self._saved is not None:
            discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = self._saved
            self._saved = None

    async def stop(self) -> None:
        """Close every gateway connection and the server; restore discord.py's URLs."""
        self.uninstall()
        for ws in list(self._sockets):
            with contextlib.suppress(Exception):
                await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeDiscord:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ------------------------------------------------------------------ waiting

    async def _notify(self) -> None:
        assert self._cond is not None
        async with self._cond:
            self._cond.notify_all()

    async def wait_for(self, predicate: Callable[[], Any], within: float = 5.0) -> Any:
        """Wait until ``predicate()`` returns something truthy (re-checked after each request); return it.
        Raises `TimeoutError` after ``within`` seconds."""
        assert self._cond is not None
        cond = self._cond

        async def waiter() -> Any:
            async with cond:
                result = predicate()
                while not result:
                    await cond.wait()
                    result = predicate()
                return result

        return await asyncio.wait_for(waiter(), within)

    def find(self, method: str, path: str, *, status: int | None = None) -> list[Recorded]:
        """Recorded requests with this method whose path fully matches the regex ``path``."""
        rx = re.compile(path)
        return [
            r
            for r in self.requests
            if r.method == method.upper() and rx.fullmatch(r.path) and (status is None or r.status == status)
        ]

    async def wait_identified(self, count: int = 1, within: float = 5.0) -> None:
        """Wait until ``count`` gateway sessions have identified."""
        await self.wait_for(lambda: len(self._identified) >= count, within)

    # ------------------------------------------------------------------ interactions

    def slash(
        self,
        path: str,
        options: dict[str, Any] | None = None,
        *,
        user: FakeUser | None = None,
        channel_id: int | None = None,
        guild_id: int | None = None,
        command: str = "study",
        focused: str | None = None,
    ) -> dict[str, Any]:
        """An ``INTERACTION_CREATE`` payload for ``/<command> <path> options…`` (``path`` like
        ``"schedule set"``). Option values: str → string, bool → boolean, int → integer, `FakeUser` → user,
        `FakeRole` → role (both with ``resolved`` data). ``focused`` makes it an autocomplete (type 4) for that option."""
        user = user or FakeUser(830000000000000001, "alice")
        opts: list[dict[str, Any]] = []
        resolved: dict[str, Any] = {}
        for name, value in (options or {}).items():
            if isinstance(value, FakeRole):
                opts.append({"name": name, "type": 8, "value": str(value.id)})
                resolved.setdefault("roles", {})[str(value.id)] = value.json()
            elif isinstance(value, FakeUser):
                opts.append({"name": name, "type": 6, "value": str(value.id)})
                resolved.setdefault("users", {})[str(value.id)] = value.user()
                m = value.member()
                m.pop("user")
                resolved.setdefault("members", {})[str(value.id)] = m
            elif isinstance(value, FakeFile):
                aid = str(next(self._ids))
                self.files[aid] = value
                url = f"http://127.0.0.1:{self.port}/cdn/{aid}/{value.filename}"
                opts.append({"name": name, "type": 11, "value": aid})
                resolved.setdefault("attachments", {})[aid] = {
                    "id": aid, "filename": value.filename, "size": value.size if value.size is not None else len(value.data),
                    "url": url, "proxy_url": url, "content_type": value.content_type,
                }  # fmt: skip
            elif isinstance(value, bool):
                opts.append({"name": name, "type": 5, "value": value})
            elif isinstance(value, int):
                opts.append({"name": name, "type": 4, "value": value})
            else:
                opts.append({"name": name, "type": 3, "value": str(value)})
            if focused == name:
                opts[-1]["focused"] = True
        words = path.split()
        for i, word in enumerate(reversed(words)):
            # the innermost word is a subcommand (1); any word around it is a subcommand group (2)
            opts = [{"name": word, "type": 1 if i == 0 else 2, "options": opts}]
        data: dict[str, Any] = {"id": "840000000000000001", "name": command, "type": 1, "options": opts}
        if resolved:
            data["resolved"] = resolved
        return self._interaction(4 if focused else 2, data, user, channel_id, guild_id)

    def click(
        self,
        custom_id: str,
        message: dict[str, Any],
        *,
        user: FakeUser | None = None,
        channel_id: int | None = None,
        guild_id: int | None = None,
    ) -> dict[str, Any]:
        """An ``INTERACTION_CREATE`` payload for clicking the button ``custom_id`` on ``message`` (a message
        the bot created, e.g. from `messages` or `message_of`)."""
        user = user or FakeUser(830000000000000001, "alice")
        data = {"custom_id": custom_id, "component_type": 2}
        ch = channel_id or int(message.get("channel_id") or self.channel_id)
        payload = self._interaction(3, data, user, ch, guild_id or self._guild_of(ch))
        payload["message"] = message
        return payload

    def submit_modal(
        self,
        modal: dict[str, Any],
        values: dict[str, str],
        *,
        user: FakeUser | None = None,
        channel_id: int | None = None,
        guild_id: int | None = None,
    ) -> dict[str, Any]:
        """The ``INTERACTION_CREATE`` (type 5) for submitting ``modal`` (from `modals`) with ``values`` by
        field ``custom_id``; fields not in ``values`` keep their prefilled value, as in the client."""
        user = user or FakeUser(830000000000000001, "alice")
        components = []
        for row in modal["components"]:
            inner = row["component"] if row["type"] == 18 else row["components"][0]
            value = values.get(inner["custom_id"], inner.get("value") or "")
            component = {"type": 4, "id": row.get("id", 1), "custom_id": inner["custom_id"], "value": value}
            components.append({"type": 18, "id": row.get("id", 1), "component": component})
        data = {"custom_id": modal["custom_id"], "components": components}
        return self._interaction(5, data, user, channel_id, guild_id)

    def _interaction(
        self, itype: int, data: dict[str, Any], user: FakeUser, channel_id: int | None, guild_id: int | None
    ) -> dict[str, Any]:
        gid = guild_id or self.guild.id
        cid = channel_id or next(iter(self.guilds[gid].channels))
        iid = next(self._ids)
        token = f"itoken-{iid}"
        self._tokens[iid] = token
        self._itype[iid] = itype
        self._channel_of[iid] = cid
        return {
            "id": str(iid),
            "application_id": str(self.app_id),
            "type": itype,
            "data": data,
            "guild_id": str(gid),
            "guild": {"id": str(gid), "locale": "en-US", "features": []},
            "channel_id": str(cid),
            "channel": self._channel_obj(gid, cid),
            "member": user.member(),
            "token": token,
            "version": 1,
            "app_permissions": str(discord.Permissions.all_channel().value),
            "locale": "en-US",
            "guild_locale": "en-US",
            "entitlements": [],
            "authorizing_integration_owners": {"0": str(gid)},
            "context": 0,
            "attachment_size_limit": 10 * 1024 * 1024,
        }

    async def dispatch(self, event: str, data: dict[str, Any]) -> None:
        """Send a DISPATCH (op 0) event to every identified gateway session, or, when the event names a
        guild (``guild_id``), only to the sessions whose shard owns that guild."""
        frame = json.dumps({"op": 0, "t": event, "s": next(self._seq), "d": data})
        gid = int(data["guild_id"]) if isinstance(data, dict) and data.get("guild_id") else None
        for ws in list(self._identified):
            session = self._session_of.get(ws)
            if ws.closed or (gid is not None and session is not None and not session.owns(gid)):
                continue
            if session is not None:
                session.received.append((event, gid))
            await ws.send_str(frame)

    def sessions_that_got(self, event: str, guild_id: int) -> list[Session]:
        """The sessions that were sent ``event`` for ``guild_id``."""
        return [s for s in self.sessions if (event, guild_id) in s.received]

    async def dispatch_interaction(self, payload: dict[str, Any]) -> int:
        """Dispatch an ``INTERACTION_CREATE``; returns its id. The ack latency clock starts here."""
        iid = int(payload["id"])
        self._dispatched[iid] = time.perf_counter()
        await self.dispatch("INTERACTION_CREATE", payload)
        return iid

    async def callback(self, iid: int, within: float = 5.0) -> Recorded:
        """The interaction callback (the first response) for interaction ``iid``, waiting for it."""
        rx = re.compile(rf"/interactions/{iid}/[^/]+/callback")
        found: Recorded = await self.wait_for(
            lambda: next((r for r in self.requests if r.method == "POST" and rx.fullmatch(r.path)), None), within
        )
        return found

    async def followups(self, iid: int, count: int = 1, within: float = 5.0) -> list[Recorded]:
        """Follow-up requests (webhook POSTs and ``@original`` edits) for interaction ``iid``."""
        token = self._tokens[iid]
        rx = re.compile(rf"/webhooks/{self.app_id}/{re.escape(token)}(/messages/.*)?")

        def found() -> list[Recorded] | None:
            got = [r for r in self.requests if r.method in ("POST", "PATCH") and rx.fullmatch(r.path)]
            return got if len(got) >= count else None

        result: list[Recorded] = await self.wait_for(found, within)
        return result

    def message_of(self, recorded: Recorded) -> dict[str, Any]:
        """The message the fake created for a callback/follow-up/post it answered."""
        mid = recorded.headers.get("x-fake-message-id")
        if mid is None:
            raise KeyError("that request created no message")
        return self.messages[int(mid)]

    def channel_messages(self, channel_id: int) -> list[dict[str, Any]]:
        """Messages the bot posted to a channel with ``POST /channels/{id}/messages``, oldest first."""
        return [m for m in self.messages.values() if m["channel_id"] == str(channel_id) and m.get("_via") == "channel"]

    def ack_latencies(self) -> list[float]:
        """Seconds from each dispatched interaction to its callback, for those acknowledged so far."""
        return [self._acked[i] - self._dispatched[i] for i in self._acked if i in self._dispatched]

    def take_ack_latencies(self) -> list[float]:
        """`ack_latencies`, then forget them (to measure one phase at a time)."""
        found = self.ack_latencies()
        self._acked.clear()
        return found

    async def reconnect(self) -> None:
        """Ask every session to reconnect (op 7), exercising discord.py's resume path."""
        for ws in list(self._identified):
            await ws.send_str(json.dumps({"op": 7, "d": None}))

    # ------------------------------------------------------------------ objects

    def _bot_user(self) -> dict[str, Any]:
        return {
            "id": str(self.bot_id),
            "username": "studybot",
            "global_name": None,
            "discriminator": "0",
            "avatar": None,
            "bot": True,
            "verified": True,
            "flags": 0,
            "mfa_enabled": False,
        }

    def _channel_obj(self, gid: int, cid: int) -> dict[str, Any]:
        name = self.guilds[gid].channels.get(cid, f"channel-{cid}")
        return {
            "id": str(cid),
            "type": 0,
            "guild_id": str(gid),
            "name": name,
            "position": 0,
            "permission_overwrites": self.guilds[gid].overwrites.get(cid, []) if gid in self.guilds else [],
            "nsfw": False,
            "parent_id": None,
            "topic": None,
            "last_message_id": None,
            "rate_limit_per_user": 0,
        }

    def _guild_of(self, cid: int) -> int | None:
        found = next((g.id for g in self.guilds.values() if cid in g.channels), None)
        if found is None and cid in self.threads:
            return int(self.threads[cid]["guild_id"])
        return found

    def _guild_create(self, g: Guild) -> dict[str, Any]:
        return {
            "id": str(g.id),
            "name": g.name,
            "icon": None,
            "owner_id": "830000000000000099",
            "afk_channel_id": None,
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "mfa_level": 0,
            "nsfw_level": 0,
            "premium_tier": 0,
            "preferred_locale": "en-US",
            "features": [],
            "emojis": [],
            "stickers": [],
            "roles": [r.json() for r in g.roles.values()],
            "channels": [self._channel_obj(g.id, cid) for cid in g.channels],
            "threads": [],
            # Discord always sends the bot's own member, whatever the intents: that is `guild.me`.
            "members": [self._bot_member(g)],
            "presences": [],
            "voice_states": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "member_count": 2,
            "large": False,
            "unavailable": False,
            "joined_at": "2026-01-01T00:00:00+00:00",
        }

    def _bot_member(self, g: Guild) -> dict[str, Any]:
        return {
            "user": self._bot_user(),
            "nick": None,
            "roles": [str(r) for r in g.bot_roles],
            "joined_at": "2026-01-01T00:00:00+00:00",
            "deaf": False,
            "mute": False,
            "flags": 0,
        }

    def _snowflake(self) -> int:
        """A message id as Discord makes them: milliseconds since 2015 in the high bits, so ``after=`` works."""
        ms = int(time.time() * 1000) - 1420070400000
        self._last_snowflake = max(self._last_snowflake + 1, ms << 22)
        return self._last_snowflake

    def _new_message(self, channel_id: int, body: dict[str, Any], files: list[tuple[str, bytes]], via: str) -> dict:
        mid = self._snowflake() if via == "channel" else next(self._ids)
        gid = self._guild_of(channel_id)
        msg: dict[str, Any] = {
            "id": str(mid),
            "channel_id": str(channel_id),
            "author": self._bot_user(),
            "content": body.get("content") or "",
            "timestamp": "2026-11-23T12:00:00+00:00",
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "attachments": [
                {"id": str(next(self._ids)), "filename": name, "size": len(data), "url": "", "proxy_url": ""}
                for name, data in files
            ],
            "embeds": body.get("embeds") or [],
            "pinned": False,
            "type": 0,
            "flags": int(body.get("flags") or 0),
            "components": body.get("components") or [],
            "_via": via,
            "_files": files,
        }
        if gid is not None:
            msg["guild_id"] = str(gid)
        self.messages[mid] = msg
        return msg

    @staticmethod
    def _public(msg: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in msg.items() if not k.startswith("_")}

    def _edit(self, msg: dict[str, Any], body: dict[str, Any], files: list[tuple[str, bytes]]) -> dict[str, Any]:
        for key in ("content", "components", "embeds", "flags"):
            if key in body:
                msg[key] = body[key] if body[key] is not None else ([] if key != "content" else "")
        if files:
            msg["_files"] = files
            msg["attachments"] = [
                {"id": str(next(self._ids)), "filename": n, "size": len(d), "url": "", "proxy_url": ""}
                for n, d in files
            ]
        msg["edited_timestamp"] = "2026-11-23T12:00:01+00:00"
        return msg

    # ------------------------------------------------------------------ gateway

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self._sockets.add(ws)
        try:
            await ws.send_str(json.dumps({"op": 10, "d": {"heartbeat_interval": 41250}}))
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                frame = json.loads(msg.data)
                op = frame.get("op")
                if op == 1:
                    await ws.send_str(json.dumps({"op": 11}))
                elif op == 2:
                    self.identifies.append(frame["d"])
                    self.session_starts_left = max(0, self.session_starts_left - 1)
                    shard = frame["d"].get("shard") or [0, 1]
                    await self._ready(ws, (int(shard[0]), int(shard[1])), request)
                elif op == 6:
                    await ws.send_str(json.dumps({"op": 0, "t": "RESUMED", "s": next(self._seq), "d": {}}))
                    old = next((x for x in self.sessions if x.session_id == frame["d"].get("session_id")), None)
                    if old is not None:
                        self._track(ws, old.shard, request, old.session_id)
                    self._identified.add(ws)
                    await self._notify()
        finally:
            self._sockets.discard(ws)
            self._identified.discard(ws)
            self._session_of.pop(ws, None)
        return ws

    def _track(self, ws: web.WebSocketResponse, shard: tuple[int, int], request: web.Request, sid: str) -> Session:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        address = (str(peer[0]), int(peer[1])) if peer else ("", 0)
        session = Session(shard, address, sid, time.perf_counter(), ws=ws)
        self.sessions.append(session)
        self._session_of[ws] = session
        return session

    async def _ready(self, ws: web.WebSocketResponse, shard: tuple[int, int], request: web.Request) -> None:
        session = self._track(ws, shard, request, f"session-{next(self._ids)}")
        mine = [g for g in self.guilds.values() if session.owns(g.id)]
        ready = {
            "v": 10,
            "user": self._bot_user(),
            "guilds": [{"id": str(g.id), "unavailable": True} for g in mine],
            "session_id": session.session_id,
            "shard": list(shard),
            "resume_gateway_url": self.gateway_url,
            "application": {"id": str(self.app_id), "flags": 0},
            "private_channels": [],
            "relationships": [],
        }
        await ws.send_str(json.dumps({"op": 0, "t": "READY", "s": next(self._seq), "d": ready}))
        for g in mine:
            session.received.append(("GUILD_CREATE", g.id))
            await ws.send_str(
                json.dumps({"op": 0, "t": "GUILD_CREATE", "s": next(self._seq), "d": self._guild_create(g)})
            )
        self._identified.add(ws)
        await self._notify()

    # ------------------------------------------------------------------ REST

    @staticmethod
    def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
        # Exactly "application/json": discord.py compares the header for equality.
        h = {"Content-Type": "application/json", **(headers or {})}
        return web.Response(body=json.dumps(body).encode(), status=status, headers=h)

    def _error(self, status: int, message: str, code: int = 0) -> web.Response:
        return self._json({"message": message, "code": code}, status)

    def _429(self, retry_after: float, *, is_global: bool, via: bool = True) -> web.Response:
        headers = {
            "Retry-After": str(max(1, math.ceil(retry_after))),
            "X-RateLimit-Scope": "global" if is_global else "user",
        }
        if via:
            headers["Via"] = "1.1 google"
        if is_global:
            headers["X-RateLimit-Global"] = "true"
        body = {"message": "You are being rate limited.", "retry_after": retry_after, "global": is_global, "code": 0}
        return self._json(body, 429, headers)

    async def _cdn(self, request: web.Request) -> web.Response:
        found = self.files.get(request.match_info["aid"])
        if found is None:
            return web.Response(status=404)
        self.cdn_fetches.append(found.filename)
        return web.Response(body=found.data, content_type=found.content_type)

    async def _rest(self, request: web.Request) -> web.Response:
        at = time.perf_counter()
        path = "/" + request.match_info["tail"]
        body: Any = None
        files: list[tuple[str, bytes]] = []
        if request.content_type == "multipart/form-data":
            form = await request.post()
            for key, value in form.items():
                if key == "payload_json":
                    body = json.loads(str(value))
                elif isinstance(value, web.FileField):
                    files.append((value.filename, value.file.read()))
        elif request.can_read_body:
            raw = await request.read()
            body = json.loads(raw) if raw else None
        rec = Recorded(request.method, path, dict(request.query), body, files, 0, at)
        peer = request.transport.get_extra_info("peername") if request.transport else None
        rec.peer = (str(peer[0]), int(peer[1])) if peer else ("", 0)
        try:
            resp = self._route(request, rec)
        except Exception as e:  # a bug in the fake must show up, not hang the client
            resp = self._error(500, f"fake discord error: {e!r}")
        if self.post_delay and rec.method == "POST" and re.fullmatch(r"/channels/\d+/messages", path):
            await asyncio.sleep(self.post_delay)
        rec.status = resp.status
        rec.headers = {k.lower(): v for k, v in resp.headers.items()}
        self.requests.append(rec)
        await self._notify()
        return resp

    def _rate_limited(self, rec: Recorded) -> web.Response | None:
        if self.rate_limit_per_s is None or rec.path.startswith(("/interactions/", "/webhooks/")):
            return None
        now = rec.at
        while self._window and now - self._window[0] >= 1.0:
            self._window.popleft()
        if len(self._window) >= self.rate_limit_per_s:
            self.rate_limited += 1
            return self._429(max(0.001, 1.0 - (now - self._window[0])), is_global=True)
        self._window.append(now)
        return None

    def _fault(self, rec: Recorded, *, after: bool = False) -> web.Response | None:
        for f in self.faults:
            if f.times > 0 and f.after == after and f.method == rec.method and f.path.fullmatch(rec.path):
                f.times -= 1
                if f.status == 429:
                    return self._429(f.retry_after, is_global=False, via=f.via)
                if f.status == 403:
                    return self._error(403, f.message or "Missing Access", f.code or 50001)
                return self._error(f.status, f.message or f"{f.status}: injected fault", f.code)
        return None

    def _route(self, request: web.Request, rec: Recorded) -> web.Response:
        p, m, body = rec.path, rec.method, rec.json or {}
        exempt = p.startswith(("/interactions/", "/webhooks/"))
        if not exempt and request.headers.get("Authorization") != f"Bot {self.token}":
            return self._error(401, "401: Unauthorized")
        limited = self._rate_limited(rec) or self._fault(rec)
        if limited is not None:
            return limited
        if m == "GET" and p == "/users/@me":
            return self._json(self._bot_user())
        if m == "GET" and p == "/oauth2/applications/@me":
            return self._json(
                {
                    "id": str(self.app_id),
                    "name": "studybot",
                    "icon": None,
                    "description": "",
                    "bot_public": True,
                    "bot_require_code_grant": False,
                    "owner": {"id": "830000000000000099", "username": "owner", "discriminator": "0", "avatar": None},
                    "verify_key": "00",
                    "flags": 0,
                }
            )
        if m == "GET" and p == "/gateway":
            return self._json({"url": self.gateway_url})
        if m == "GET" and p == "/gateway/bot":
            limit = {
                "total": self.session_starts_total,
                "remaining": self.session_starts_left,
                "reset_after": 14_400_000,
                "max_concurrency": self.max_concurrency,
            }
            return self._json(
                {"url": self.gateway_url, "shards": self.recommended_shards, "session_start_limit": limit}
            )
        cmds = re.fullmatch(rf"/applications/{self.app_id}(?:/guilds/(\d+))?/commands", p)
        if cmds and m == "PUT":
            gid = int(cmds.group(1)) if cmds.group(1) else None
            out = []
            for c in body:
                c = {**c, "id": str(next(self._ids)), "application_id": str(self.app_id), "version": "1"}
                if gid:
                    c["guild_id"] = str(gid)
                out.append(c)
            self.commands[gid] = out
            return self._json(out)
        if cmds and m == "GET":
            gid = int(cmds.group(1)) if cmds.group(1) else None
            return self._json(self.commands.get(gid, []))
        if m == "POST" and p == "/users/@me/channels":
            uid = int(body["recipient_id"])
            cid = self.dm_channel_of(uid) or next(self._ids)
            self.dm_channels[cid] = uid
            recipient = {"id": str(uid), "username": f"user-{uid}", "discriminator": "0", "avatar": None}
            return self._json({"id": str(cid), "type": 1, "recipients": [recipient], "last_message_id": None})
        th = re.fullmatch(r"/channels/(\d+)/messages/(\d+)/threads", p)
        if th and m == "POST":
            return self._open_thread(int(th.group(1)), int(th.group(2)), body)
        role = re.fullmatch(r"/guilds/(\d+)/members/(\d+)/roles/(\d+)", p)
        if role and m == "PUT":
            return self._grant(int(role.group(1)), int(role.group(2)), int(role.group(3)))
        member = re.fullmatch(r"/guilds/(\d+)/members/(\d+)", p)
        if member and m == "GET" and int(member.group(1)) in self.guilds and int(member.group(2)) == self.bot_id:
            return self._json(self._bot_member(self.guilds[int(member.group(1))]))
        ch = re.fullmatch(r"/channels/(\d+)(/messages(?:/(\d+))?)?", p)
        if ch and int(ch.group(1)) in self.dm_channels and ch.group(3) is None and m == "POST":
            if self.dm_channels[int(ch.group(1))] in self.closed_dms:
                return self._error(403, "Cannot send messages to this user", 50007)
            return self._create(int(ch.group(1)), body, rec)
        if ch:
            cid = int(ch.group(1))
            gid = self._guild_of(cid)
            if cid in self.forbidden_channels:
                return self._error(403, "Missing Access", 50001)
            if gid is None:
                return self._error(404, "Unknown Channel", 10003)
            if ch.group(2) is None and m == "GET":
                return self._json(self._channel_obj(gid, cid))
            if ch.group(2) is not None and ch.group(3) is None and m == "GET":
                if cid in self.history_denied:
                    return self._error(403, "Missing Access", 50001)
                return self._json(self._history(cid, rec.query))
            if ch.group(3) is None and m == "POST":
                return self._create(cid, body, rec)
            if ch.group(3) is not None and m == "PATCH":
                found = self.messages.get(int(ch.group(3)))
                if found is None or found["channel_id"] != str(cid):
                    return self._error(404, "Unknown Message", 10008)
                self._edit(found, body, rec.files)
                return self._json(self._public(found), headers={"X-Fake-Message-Id": found["id"]})
        cb = re.fullmatch(r"/interactions/(\d+)/([^/]+)/callback", p)
        if cb and m == "POST":
            return self._interaction_callback(int(cb.group(1)), body, rec)
        wh = re.fullmatch(rf"/webhooks/{self.app_id}/([^/]+)(?:/messages/(@original|\d+))?", p)
        if wh:
            return self._webhook(wh.group(1), wh.group(2), m, body, rec)
        return self._error(404, "404: Not Found")

    def _open_thread(self, cid: int, mid: int, body: dict[str, Any]) -> web.Response:
        """``POST /channels/{id}/messages/{id}/threads``: a public thread whose id is the message's; a second
        one on the same message is refused (160004), as on Discord; without Create Public Threads, 403."""
        gid = self._guild_of(cid)
        msg = self.messages.get(mid)
        if gid is None or msg is None or msg["channel_id"] != str(cid):
            return self._error(404, "Unknown Message", 10008)
        if not self.guilds[gid].bot_permissions(cid).create_public_threads:
            return self._error(403, "Missing Permissions", 50013)
        if mid in self.threads:
            return self._error(400, "A thread has already been created for this message", 160004)
        thread = {
            "id": str(mid),
            "guild_id": str(gid),
            "parent_id": str(cid),
            "owner_id": str(self.bot_id),
            "type": 11,
            "name": str(body.get("name", "")),
            "last_message_id": None,
            "rate_limit_per_user": 0,
            "message_count": 0,
            "member_count": 1,
            "thread_metadata": {
                "archived": False,
                "auto_archive_duration": int(body.get("auto_archive_duration") or 1440),
                "archive_timestamp": "2026-11-23T12:00:00+00:00",
                "locked": False,
            },
        }
        self.threads[mid] = thread
        msg["thread"] = thread
        return self._json(thread)

    def _grant(self, gid: int, uid: int, rid: int) -> web.Response:
        """``PUT /guilds/{id}/members/{id}/roles/{id}``: 204, or 403 (50013) without Manage Roles or for a
        role at or above the bot's highest, or a managed one."""
        g = self.guilds.get(gid)
        if g is None or rid not in g.roles:
            return self._error(404, "Unknown Role", 10011)
        role = g.roles[rid]
        if not g.bot_permissions().manage_roles or role.position >= g.bot_top_position() or role.managed:
            return self._error(403, "Missing Permissions", 50013)
        g.member_roles.setdefault(uid, set()).add(rid)
        return web.Response(status=204)

    def _create(self, cid: int, body: dict[str, Any], rec: Recorded) -> web.Response:
        nonce = str(body["nonce"]) if body.get("nonce") is not None and body.get("enforce_nonce") else None
        now = time.monotonic()
        earlier = self._nonces.get((cid, nonce)) if nonce is not None else None
        if earlier is not None and now - earlier[1] <= self.nonce_window and earlier[0] in self.messages:
            self.nonce_hits += 1
            msg = self.messages[earlier[0]]
        else:
            msg = self._new_message(cid, body, rec.files, "channel")
            if nonce is not None:
                self._nonces[(cid, nonce)] = (int(msg["id"]), now)
        failed = self._fault(rec, after=True)
        if failed is not None:
            return failed
        out = self._public(msg)
        if nonce is not None:
            out["nonce"] = nonce  # only in the answer to the create, as on Discord
        return self._json(out, headers={"X-Fake-Message-Id": msg["id"]})

    def _history(self, cid: int, query: dict[str, str]) -> list[dict[str, Any]]:
        limit = max(1, min(100, int(query.get("limit", "50"))))
        found = sorted(
            (m for m in self.messages.values() if m["channel_id"] == str(cid) and m["_via"] == "channel"),
            key=lambda m: int(m["id"]),
        )
        if "after" in query:
            found = [m for m in found if int(m["id"]) > int(query["after"])][:limit]
        elif "before" in query:
            found = [m for m in found if int(m["id"]) < int(query["before"])][-limit:]
        else:
            found = found[-limit:]
        return [self._public(m) for m in reversed(found)]

    def _interaction_callback(self, iid: int, body: dict[str, Any], rec: Recorded) -> web.Response:
        self._acked.setdefault(iid, rec.at)
        rtype = int(body.get("type", 0))
        data = body.get("data") or {}
        interaction: dict[str, Any] = {"id": str(iid), "type": 2}
        resource: dict[str, Any] = {"type": rtype}
        headers: dict[str, str] = {}
        if rtype == 9:
            problem = self._modal_problem(iid, data)
            if problem:
                return self._error(400, f"Invalid Form Body: {problem}", 50035)
            self.modals[iid] = data
        if rtype in (4, 5):
            flags = int(data.get("flags") or 0) | (LOADING if rtype == 5 else 0)
            cid = int(self._channel_for_token(iid))
            msg = self._new_message(cid, {**data, "flags": flags}, rec.files, f"interaction:{iid}")
            msg["_interaction"] = iid
            interaction |= {
                "response_message_id": msg["id"],
                "response_message_loading": rtype == 5,
                "response_message_ephemeral": bool(flags & EPHEMERAL),
            }
            resource["message"] = self._public(msg)
            headers["X-Fake-Message-Id"] = msg["id"]
        if "with_response" not in rec.query:  # Discord answers 204 unless asked for the callback's result
            return web.Response(status=204, headers=headers)
        return self._json({"interaction": interaction, "resource": resource}, headers=headers)

    def _modal_problem(self, iid: int, data: dict[str, Any]) -> str | None:
        """What Discord would refuse in a modal callback, or None."""
        if self._itype.get(iid) == 5:
            return "interaction response type 9 is not valid for a MODAL_SUBMIT interaction"
        if not 0 < len(data.get("title") or "") <= 45:
            return "title must be 1-45 characters"
        if not 0 < len(data.get("custom_id") or "") <= 100:
            return "custom_id must be 1-100 characters"
        rows = data.get("components") or []
        if not 0 < len(rows) <= 5:
            return "a modal holds 1-5 components"
        for row in rows:
            if row.get("type") == 18:
                label, inner = row.get("label") or "", row.get("component") or {}
                if len(row.get("description") or "") > 100:
                    return "label description longer than 100"
            elif row.get("type") == 1 and len(row.get("components") or []) == 1:
                inner = row["components"][0]
                label = inner.get("label") or ""
            else:
                return f"unexpected modal component {row.get('type')}"
            if not 0 < len(label) <= 45:
                return "labels must be 1-45 characters"
            if inner.get("type") != 4 or not inner.get("custom_id"):
                return "a text input with a custom_id is expected"
            max_length = int(inner.get("max_length") or 4000)
            if not 1 <= max_length <= 4000 or len(inner.get("placeholder") or "") > 100:
                return "max_length 1-4000, placeholder up to 100"
            if len(inner.get("value") or "") > max_length:
                return "a prefilled value is longer than max_length"
        return None

    def _channel_for_token(self, iid: int) -> int:
        return self._channel_of.get(iid, self.channel_id)

    def _webhook(self, token: str, which: str | None, method: str, body: dict[str, Any], rec: Recorded) -> web.Response:
        iid = next((i for i, t in self._tokens.items() if t == token), None)
        if iid is None:
            return self._error(404, "Unknown Webhook", 10015)
        if which is None and method == "POST":
            msg = self._new_message(self._channel_for_token(iid), body, rec.files, f"followup:{iid}")
            return self._json(self._public(msg), headers={"X-Fake-Message-Id": msg["id"]})
        if which is not None and method == "PATCH":
            if which == "@original":
                found = next((x for x in self.messages.values() if x.get("_interaction") == iid), None)
            else:
                found = self.messages.get(int(which))
            if found is None:
                return self._error(404, "Unknown Message", 10008)
            # an edit keeps the ephemeral flag and ends the "thinking…" state
            body = {**body, "flags": int(found["flags"]) & ~LOADING}
            self._edit(found, body, rec.files)
            return self._json(self._public(found), headers={"X-Fake-Message-Id": found["id"]})
        return self._error(405, "405: Method Not Allowed")
