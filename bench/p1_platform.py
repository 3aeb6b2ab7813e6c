"""P1's platform side, run in its own process: the loopback fake Discord or Slack plus the load generator.

    python -m bench.p1_platform discord|slack|discord-http      (started by bench.p1_ack_latency)

On Discord and Slack the platform's servers do not share the bot's CPU, so neither do they here: the bot
process runs only the adapter, the core and SQLite, and this process plays the platform and its members.
Both latencies are measured here, on this process's clock:

- Discord: from sending ``INTERACTION_CREATE`` on the gateway to receiving the interaction callback
  (the ack); the answer is the callback itself (type 4) or, after a defer (type 5), the ``@original`` edit.
- Slack: from sending the signed request to ``/slack/events`` to reading its HTTP 200 (the ack); the
  answer is the first post to the request's ``response_url``.
- Discord over HTTP interactions (the prototype in `bench.discord_http`): from sending the signed POST
  to reading its response, which is the answer.

Control protocol: one JSON object per line. On start this process prints ``{"ready": …}`` with the URLs
the bot needs; then it reads requests from stdin and answers each with one line on stdout:

- ``{"op": "round", "kind": "warm"|"command"|"click", "shape": "burst"|"steady", "seed": int,
  "post_id": int, "message_id": str, "url": str}`` → every member acts once (``warm``: ``help``,
  not measured; ``command``: quiz/progress/leaderboard/tip in turn; ``click``: an answer button on the
  bot's post). ``burst``: all at the same instant; ``steady``: arrivals uniform at random over `SPREAD`
  seconds. Waits until every member got an answer, then returns ``{"ack": [s…], "answer": [s…],
  "commands": [name…]}`` (seconds, in the members' order).
- ``{"op": "quit"}`` → stops the fake and exits.

Anything that goes wrong is answered as ``{"error": "…"}``. Logs go to stderr; stdout is the protocol.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

from bench.common import ROOT
from bot.core import actions

sys.path.insert(0, str(ROOT))
from tests.fake_discord import FakeDiscord, FakeUser
from tests.fake_slack import FakeSlack

MEMBERS = 100
COMMANDS = ("quiz", "progress", "leaderboard", "tip")
#: Arrivals of the "steady" shape are spread uniformly at random over this many seconds.
SPREAD = 1.0
SIGNING_SECRET = "bench-signing-secret"
TEAM = "T0HOME"
SLACK_CHANNEL = "C0STUDY"
#: How long one round may take before the bench gives up (the platforms allow 3 s per ack).
ROUND_TIMEOUT = 60.0


def discord_members() -> list[FakeUser]:
    """The members who click and command on Discord (the bot process registers the same ids)."""
    return [FakeUser(850000000000000000 + i, f"member{i}") for i in range(MEMBERS)]


def slack_members() -> list[str]:
    """The Slack user ids of the members (the bot process registers the same ids)."""
    return [f"U{i:05d}" for i in range(MEMBERS)]


def arrival_offsets(shape: str, seed: int, n: int = MEMBERS) -> list[float]:
    """Seconds after the round's start at which each member acts. Raises ValueError for an unknown shape."""
    if shape == "burst":
        return [0.0] * n
    if shape == "steady":
        rng = random.Random(seed)
        return [rng.uniform(0.0, SPREAD) for _ in range(n)]
    raise ValueError(f"unknown load shape {shape!r}")


def command_of(kind: str, i: int) -> str:
    """What member ``i`` types in a round of ``kind`` (``warm`` or ``command``)."""
    return "help" if kind == "warm" else COMMANDS[i % len(COMMANDS)]


async def at_offsets(offsets: list[float], act: Callable[[int], Awaitable[None]]) -> None:
    """Run ``act(i)`` for every member at its offset after now. A burst (all offsets 0) starts every act in
    one go, without yielding between them, so they really leave at the same instant."""
    loop = asyncio.get_running_loop()
    t0 = loop.time()

    async def later(i: int, delay: float) -> None:
        await asyncio.sleep(max(0.0, t0 + delay - loop.time()))
        await act(i)

    tasks = [asyncio.ensure_future(act(i) if d <= 0 else later(i, d)) for i, d in enumerate(offsets)]
    await asyncio.gather(*tasks)


async def until(predicate: Callable[[], bool], what: str, within: float = ROUND_TIMEOUT) -> None:
    """Poll ``predicate`` every 10 ms; raises TimeoutError naming ``what``. (The latencies come from the
    requests' own arrival stamps, so polling slower only ends the round later, and leaves the CPU to the bot.)"""
    deadline = time.perf_counter() + within
    while not predicate():
        if time.perf_counter() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


class DiscordSide:
    """A FakeDiscord (not installed: the bot is another process) and the members' interactions."""

    def __init__(self) -> None:
        self.fake = FakeDiscord(install=False)
        self.members = discord_members()

    async def start(self) -> dict[str, Any]:
        await self.fake.start()
        return {
            "rest_base": self.fake.rest_base,
            "gateway_url": self.fake.gateway_url,
            "token": self.fake.token,
            "guild": str(self.fake.guild.id),
            "channel": str(self.fake.channel_id),
        }

    async def stop(self) -> None:
        await self.fake.stop()

    async def round(self, req: dict[str, Any]) -> dict[str, Any]:
        fake = self.fake
        await fake.wait_identified()
        kind = req["kind"]
        if kind == "click":
            message = fake.messages[int(req["message_id"])]
            payloads = [
                fake.click(actions.answer_action(int(req["post_id"]), "ABCD"[i % 4]), message, user=u)
                for i, u in enumerate(self.members)
            ]
            names = ["click"] * len(payloads)
        else:
            names = [command_of(kind, i) for i in range(len(self.members))]
            payloads = [fake.slash(n, user=u) for n, u in zip(names, self.members, strict=True)]
        iids = [int(p["id"]) for p in payloads]
        tokens = {str(p["token"]): int(p["id"]) for p in payloads}
        sent: dict[int, float] = {}
        start = len(fake.requests)

        async def act(i: int) -> None:
            sent[iids[i]] = time.perf_counter()
            await fake.dispatch_interaction(payloads[i])

        acked: dict[int, float] = {}
        answered: dict[int, float] = {}

        def scan() -> bool:
            # Read only the requests that arrived since the last look.
            nonlocal start
            new, start = fake.requests[start:], len(fake.requests)
            for r in new:
                parts = r.path.split("/")
                if r.path.startswith("/interactions/") and r.method == "POST":
                    iid = int(parts[2])
                    if iid in sent and iid not in acked:
                        acked[iid] = r.at
                        if int((r.json or {}).get("type", 0)) == 4:  # the answer came with the ack
                            answered[iid] = r.at
                elif r.path.startswith("/webhooks/") and len(parts) > 3:
                    iid = tokens.get(parts[3], 0)
                    if iid in sent and iid not in answered:
                        answered[iid] = r.at
            return len(answered) == len(iids)

        await at_offsets(arrival_offsets(req["shape"], int(req.get("seed", 0))), act)
        await until(scan, f"answers to {len(iids)} Discord interactions ({len(answered)} answered)")
        return {
            "ack": [acked[i] - sent[i] for i in iids],
            "answer": [answered[i] - sent[i] for i in iids],
            "commands": names,
        }


class DiscordHttpSide:
    """Discord delivering interactions as Ed25519-signed HTTP POSTs to the bot (the prototype in
    `bench.discord_http`); the FakeDiscord takes the webhook follow-ups. The ack is the HTTP response."""

    def __init__(self) -> None:
        import aiohttp
        from nacl.signing import SigningKey

        self.fake = FakeDiscord(install=False)
        self.members = discord_members()
        self.key = SigningKey.generate()
        self._aiohttp = aiohttp
        self.session: aiohttp.ClientSession | None = None

    async def start(self) -> dict[str, Any]:
        await self.fake.start()
        self.session = self._aiohttp.ClientSession(connector=self._aiohttp.TCPConnector(limit=MEMBERS))
        return {
            "rest_base": self.fake.rest_base,
            "app_id": str(self.fake.app_id),
            "public_key": self.key.verify_key.encode().hex(),
            "guild": str(self.fake.guild.id),
            "channel": str(self.fake.channel_id),
        }

    async def stop(self) -> None:
        if self.session is not None:
            await self.session.close()
        await self.fake.stop()

    async def round(self, req: dict[str, Any]) -> dict[str, Any]:
        assert self.session is not None
        session, fake, url = self.session, self.fake, str(req["url"])
        kind = req["kind"]
        if kind == "click":
            message = {"id": str(req["message_id"]), "channel_id": str(fake.channel_id)}
            payloads = [
                fake.click(actions.answer_action(int(req["post_id"]), "ABCD"[i % 4]), message, user=u)
                for i, u in enumerate(self.members)
            ]
            names = ["click"] * len(payloads)
        else:
            names = [command_of(kind, i) for i in range(len(self.members))]
            payloads = [fake.slash(n, user=u) for n, u in zip(names, self.members, strict=True)]
        bodies = [json.dumps(p).encode() for p in payloads]
        ack = [0.0] * len(bodies)
        # Signed before the round starts, so that a burst really leaves at once.
        stamp = str(int(time.time()))
        headers = [
            {
                "Content-Type": "application/json",
                "X-Signature-Timestamp": stamp,
                "X-Signature-Ed25519": self.key.sign(stamp.encode() + body).signature.hex(),
            }
            for body in bodies
        ]

        async def act(i: int) -> None:
            t = time.perf_counter()
            async with session.post(url, data=bodies[i], headers=headers[i]) as resp:
                await resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"the bot answered {resp.status} to {names[i]}")
            ack[i] = time.perf_counter() - t

        await at_offsets(arrival_offsets(req["shape"], int(req.get("seed", 0))), act)
        return {"ack": ack, "answer": ack, "commands": names}


class SlackSide:
    """A FakeSlack for the bot's Web API calls and ``response_url`` posts, and signed requests to the bot."""

    def __init__(self) -> None:
        import aiohttp
        from slack_sdk.signature import SignatureVerifier

        self.fake = FakeSlack(team_id=TEAM)
        self.members = slack_members()
        for u in self.members:
            self.fake.add_user(u, f"member-{u}")
        self.signer = SignatureVerifier(SIGNING_SECRET)
        self._aiohttp = aiohttp
        self.session: aiohttp.ClientSession | None = None
        self._keys = 0

    async def start(self) -> dict[str, Any]:
        await self.fake.start()
        # One connection per member, kept alive between rounds (as a proxy in front of a bot would).
        self.session = self._aiohttp.ClientSession(connector=self._aiohttp.TCPConnector(limit=MEMBERS))
        return {"api_url": self.fake.api_url, "bot_token": self.fake.bot_token, "signing_secret": SIGNING_SECRET}

    async def stop(self) -> None:
        if self.session is not None:
            await self.session.close()
        await self.fake.stop()

    def _key(self) -> str:
        self._keys += 1
        return f"r{self._keys}"

    def _command(self, name: str, user: str, key: str) -> str:
        return urlencode(
            {
                "team_id": TEAM,
                "channel_id": SLACK_CHANNEL,
                "user_id": user,
                "user_name": user,
                "command": "/study",
                "text": name,
                "response_url": self.fake.response_url(key),
                "trigger_id": f"t-{key}",
            }
        )

    def _click(self, post_id: int, letter: str, user: str, key: str) -> str:
        action = actions.answer_action(post_id, letter)
        payload = {
            "type": "block_actions",
            "team": {"id": TEAM},
            "user": {"id": user, "team_id": TEAM},
            "channel": {"id": SLACK_CHANNEL},
            "response_url": self.fake.response_url(key),
            "actions": [{"type": "button", "action_id": action, "value": action, "block_id": "b"}],
        }
        return urlencode({"payload": json.dumps(payload)})

    async def round(self, req: dict[str, Any]) -> dict[str, Any]:
        assert self.session is not None
        session, fake, url = self.session, self.fake, str(req["url"])
        kind = req["kind"]
        keys = [self._key() for _ in self.members]
        if kind == "click":
            names = ["click"] * len(keys)
            bodies = [
                self._click(int(req["post_id"]), "ABCD"[i % 4], u, k)
                for i, (u, k) in enumerate(zip(self.members, keys, strict=True))
            ]
        else:
            names = [command_of(kind, i) for i in range(len(keys))]
            bodies = [self._command(n, u, k) for n, u, k in zip(names, self.members, keys, strict=True)]
        ack: list[float] = [0.0] * len(keys)
        sent_mono: list[float] = [0.0] * len(keys)

        async def act(i: int) -> None:
            stamp = str(int(time.time()))
            headers = {
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Slack-Request-Timestamp": stamp,
                "X-Slack-Signature": self.signer.generate_signature(timestamp=stamp, body=bodies[i]),
            }
            data = bodies[i].encode()
            sent_mono[i] = time.monotonic()  # FakeSlack stamps what it receives with time.monotonic()
            t = time.perf_counter()
            async with session.post(url, data=data, headers=headers) as resp:
                await resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"the bot answered {resp.status} to {names[i]}")
            ack[i] = time.perf_counter() - t

        start = len(fake.requests)
        await at_offsets(arrival_offsets(req["shape"], int(req.get("seed", 0))), act)
        index = {k: i for i, k in enumerate(keys)}
        answered: dict[int, float] = {}

        def scan() -> bool:
            nonlocal start
            new, start = fake.requests[start:], len(fake.requests)
            for r in new:
                i = index.get(r.name, -1) if r.kind == "respond" else -1
                if i >= 0 and i not in answered:
                    answered[i] = r.at - sent_mono[i]
            return len(answered) == len(keys)

        await until(scan, f"answers to {len(keys)} Slack requests ({len(answered)} answered)")
        return {"ack": ack, "answer": [answered[i] for i in range(len(keys))], "commands": names}


def say(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def serve(platform: str) -> None:
    sides: dict[str, type[DiscordSide | SlackSide | DiscordHttpSide]] = {
        "discord": DiscordSide,
        "slack": SlackSide,
        "discord-http": DiscordHttpSide,
    }
    side = sides[platform]()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    say({"ready": await side.start()})
    try:
        while line := await reader.readline():
            req = json.loads(line)
            if req.get("op") == "quit":
                break
            try:
                cpu = time.process_time()
                answer = await side.round(req)
                answer["cpu"] = time.process_time() - cpu  # this process's CPU seconds for the round
                say(answer)
            except Exception as e:  # reported to the bench, which fails loudly
                say({"error": f"{type(e).__name__}: {e}"})
    finally:
        await side.stop()


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in ("discord", "slack", "discord-http"):
        print("usage: python -m bench.p1_platform discord|slack|discord-http", file=sys.stderr)
        return 2
    asyncio.run(serve(argv[0]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
