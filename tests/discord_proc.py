"""`python -m tests.discord_proc REST_BASE GATEWAY_URL ARGS…`: run `studybot ARGS` with discord.py pointed at
a fake Discord (tests/fake_discord.py) served by the test process, for tests with several bot processes.

The two class attributes are all that is patched (see ../shared/platform-testing.md); everything else is
the shipped `studybot` command line.
"""

from __future__ import annotations

import sys

import discord.gateway
import discord.http
import yarl


def main(argv: list[str]) -> int:
    rest, gateway, *args = argv
    discord.http.Route.BASE = rest
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway)
    from bot.cli import main as studybot

    return studybot(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
