"""Prototype (bench only): serving Discord interactions through the HTTP interactions endpoint.

Discord can deliver interactions as HTTP POSTs to a URL of the bot's instead of over the gateway
websocket; the response to the POST is the interaction's first response. Each POST is signed with
Ed25519 (headers ``X-Signature-Ed25519`` and ``X-Signature-Timestamp`` over timestamp + body) with the
application's key, and a bot must refuse a bad signature with 401. It holds no session, so several
worker processes can serve one URL: ``python -m bench.discord_http worker …`` is one of them (bench P1h
starts two on one port with ``SO_REUSEPORT``, each with its own core over the same SQLite file).

`HttpInteractions` is the smallest complete version for the benchmark: verify, parse, hand the core an
`Inbound`, answer with the first reply (type 4, private replies ephemeral, buttons as components) and
send the rest (e.g. the progress chart) as webhook follow-ups. `MinimalHttpInteractions` is its floor:
verify and answer "ok". Not wired into the bot: what it leaves out (slash-command options, deferring
slow replies, long texts) is in `bot.adapters.discord_adapter`.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from bot.core.messages import Inbound, Reply, followups

EPHEMERAL = 64
MANAGE_GUILD = 1 << 5
ADMINISTRATOR = 1 << 3
STYLES = {"primary": 1, "secondary": 2, "success": 3, "danger": 4}


def _json(body: dict[str, Any]) -> web.Response:
    return web.Response(body=json.dumps(body, separators=(",", ":")).encode(), content_type="application/json")


class MinimalHttpInteractions:
    """The floor: verify the signature, answer every interaction with an ephemeral "ok"."""

    def __init__(self, public_key: str) -> None:
        self.verify_key = VerifyKey(bytes.fromhex(public_key))
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def start(self, port: int = 0) -> None:
        """Listen on ``port`` (0: any free one); a given port is shared with ``SO_REUSEPORT``, so several
        processes can listen on it and the kernel spreads the connections among them."""
        app = web.Application()
        app.router.add_post("/interactions", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", port, reuse_port=bool(port)).start()
        self.port = int(self.runner.addresses[0][1])

    async def close(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    async def drain(self) -> None:
        return None

    async def verified(self, request: web.Request) -> dict[str, Any] | None:
        """The JSON payload when the signature holds, else None."""
        body = await request.read()
        try:
            stamp = request.headers["X-Signature-Timestamp"]
            self.verify_key.verify(stamp.encode() + body, bytes.fromhex(request.headers["X-Signature-Ed25519"]))
        except (KeyError, ValueError, BadSignatureError):
            return None
        payload: dict[str, Any] = json.loads(body)
        return payload

    async def handle(self, request: web.Request) -> web.Response:
        payload = await self.verified(request)
        if payload is None:
            return web.Response(status=401, text="invalid request signature")
        if payload.get("type") == 1:
            return _json({"type": 1})
        return _json({"type": 4, "data": {"content": "ok", "flags": EPHEMERAL}})


class HttpInteractions(MinimalHttpInteractions):
    """studybot's core behind the HTTP interactions endpoint (see the module docstring)."""

    def __init__(self, service: Any, public_key: str, rest_base: str, app_id: str) -> None:
        super().__init__(public_key)
        self.service = service
        self.webhooks = f"{rest_base}/webhooks/{app_id}"
        self.session: aiohttp.ClientSession | None = None
        self.tasks: set[asyncio.Task[None]] = set()
        #: Interactions answered (a worker reports it: how the kernel spread them).
        self.handled = 0

    async def start(self, port: int = 0) -> None:
        self.session = aiohttp.ClientSession()
        await super().start(port)

    async def close(self) -> None:
        await self.drain()
        await super().close()
        if self.session is not None:
            await self.session.close()

    async def drain(self) -> None:
        while self.tasks:
            await asyncio.gather(*set(self.tasks), return_exceptions=True)

    @staticmethod
    def inbound(payload: dict[str, Any]) -> Inbound:
        member = payload.get("member") or {}
        user = member.get("user") or payload.get("user") or {}
        perms = int(member.get("permissions") or 0)
        data = payload.get("data") or {}
        text, action = "", None
        if payload.get("type") == 3:
            action = str(data.get("custom_id", ""))
        else:
            words: list[str] = []
            options = data.get("options") or []
            while options:  # sub-command groups and sub-commands nest; values follow the innermost one
                first = options[0]
                if first.get("type") in (1, 2):
                    words.append(str(first["name"]))
                    options = first.get("options") or []
                else:
                    words += [str(o.get("value", "")) for o in options]
                    break
            text = " ".join(words)
        return Inbound(
            platform="discord",
            group=str(payload.get("guild_id", "")),
            channel=str(payload.get("channel_id", "")),
            user=str(user.get("id", "")),
            user_name=str(user.get("global_name") or user.get("username") or ""),
            text=text,
            action=action,
            is_admin=bool(perms & (MANAGE_GUILD | ADMINISTRATOR)),
        )

    @staticmethod
    def message(reply: Reply) -> dict[str, Any]:
        data: dict[str, Any] = {"content": reply.text[:2000] or "\u200b", "flags": EPHEMERAL if reply.private else 0}
        if reply.buttons:
            row = [
                {"type": 2, "style": STYLES.get(b.style, 2), "label": b.label[:80], "custom_id": b.action_id[:100]}
                for b in reply.buttons[:5]
            ]
            data["components"] = [{"type": 1, "components": row}]
        return data

    async def handle(self, request: web.Request) -> web.Response:
        payload = await self.verified(request)
        if payload is None:
            return web.Response(status=401, text="invalid request signature")
        if payload.get("type") == 1:
            return _json({"type": 1})
        self.handled += 1
        replies = await self.service.handle(self.inbound(payload))
        first, rest = (replies[0], replies[1:]) if replies else (Reply("\u200b", private=True), [])
        if rest or first.later is not None:
            task = asyncio.create_task(self.follow_up(str(payload["token"]), first, rest))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        return _json({"type": 4, "data": self.message(first)})

    async def follow_up(self, token: str, first: Reply, rest: list[Reply]) -> None:
        """The replies after the first (and the first's follow-ups, e.g. the chart) as webhook messages."""
        assert self.session is not None
        pending = [*rest, *await followups(first)]
        while pending:
            reply = pending.pop(0)
            form = aiohttp.FormData()
            form.add_field("payload_json", json.dumps(self.message(reply)))
            for i, a in enumerate(reply.attachments):
                form.add_field(f"files[{i}]", a.data, filename=a.filename, content_type=a.mime)
            async with self.session.post(f"{self.webhooks}/{token}", data=form) as resp:
                await resp.read()
            pending[:0] = await followups(reply)


async def worker(db: Path, port: int, public_key: str, rest_base: str, app_id: str) -> None:
    """One worker process: studybot's core on ``db`` (migrated already) behind `HttpInteractions` on the
    shared ``port``. Prints ``{"ready": pid}``, then answers JSON lines on stdin: ``drain`` (wait for its
    follow-ups) and ``cpu`` each answer ``{"cpu": seconds of this process's CPU, "handled": interactions
    answered, "cache": the store's cache hits and misses}``; ``quit`` stops it."""
    from bot.bootstrap import build_app, settle_gc
    from bot.config import BUNDLED_CONTENT, Settings

    settings = Settings(STUDYBOT_DB=db, STUDYBOT_CONTENT=BUNDLED_CONTENT, _env_file=None)
    app = await build_app(settings)
    server = HttpInteractions(app.service, public_key, rest_base, app_id)
    try:
        await server.start(port)
        settle_gc()  # as `serve()` leaves the bot once it is up
        print(json.dumps({"ready": os.getpid()}), flush=True)
        while line := await asyncio.to_thread(sys.stdin.readline):
            op = json.loads(line)["op"]
            if op == "quit":
                break
            if op == "drain":
                await server.drain()
            answer = {"cpu": time.process_time(), "handled": server.handled, "cache": app.store.cache_stats}
            print(json.dumps(answer), flush=True)
    finally:
        await server.close()
        await app.close()


if __name__ == "__main__":
    if len(sys.argv) != 7 or sys.argv[1] != "worker":
        sys.exit("usage: python -m bench.discord_http worker DB PORT PUBLIC_KEY REST_BASE APP_ID")
    asyncio.run(worker(Path(sys.argv[2]), int(sys.argv[3]), *sys.argv[4:7]))
