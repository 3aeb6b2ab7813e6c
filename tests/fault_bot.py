"""`python -m tests.fault_bot` is `studybot run`, pointed at a loopback fake Discord (the fault tests).

discord.py's REST base and gateway URL are class attributes, so a bot in its own process must set them
itself (from ``FAKE_DISCORD_REST`` / ``FAKE_DISCORD_GATEWAY``); it also waits 0.05 s rather than 2 s for
guilds after READY. Slack needs nothing of the kind (``SLACK_API_URL``). Everything else is the shipped
bot: settings, wiring, scheduler, adapters.
"""

from __future__ import annotations

import os
from typing import Any

import discord.gateway
import discord.http
import yarl

from bot.adapters.discord_adapter import DiscordFrontEnd
from bot.cli import main


def point_discord_at_the_fake() -> None:
    rest = os.environ.get("FAKE_DISCORD_REST")
    if not rest:
        return
    discord.http.Route.BASE = rest
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(os.environ["FAKE_DISCORD_GATEWAY"])
    shipped = DiscordFrontEnd.from_settings.__func__  # type: ignore[attr-defined]

    def from_settings(cls: type[DiscordFrontEnd], *args: Any, **options: Any) -> DiscordFrontEnd:
        options.setdefault("guild_ready_timeout", 0.05)
        return shipped(cls, *args, **options)  # type: ignore[no-any-return]

    DiscordFrontEnd.from_settings = classmethod(from_settings)  # type: ignore[method-assign, assignment]


if __name__ == "__main__":
    point_discord_at_the_fake()
    raise SystemExit(main(["run"]))
