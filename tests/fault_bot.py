"""`python -m tests.fault_bot REST_BASE GATEWAY_URL ARGS…` is `tests.discord_proc` (`studybot ARGS` with
discord.py pointed at a fake Discord) that also waits 0.05 s rather than discord.py's 2 s for guilds after
READY, since the fault tests start the bot many times. Everything else is the shipped bot.
"""

from __future__ import annotations

import sys
from typing import Any

from bot.adapters.discord_adapter import DiscordFrontEnd
from tests.discord_proc import main

_shipped = DiscordFrontEnd.from_settings.__func__  # type: ignore[attr-defined]


def _from_settings(cls: type[DiscordFrontEnd], *args: Any, **options: Any) -> DiscordFrontEnd:
    options.setdefault("guild_ready_timeout", 0.05)
    return _shipped(cls, *args, **options)  # type: ignore[no-any-return]


if __name__ == "__main__":
    DiscordFrontEnd.from_settings = classmethod(_from_settings)  # type: ignore[method-assign, assignment]
    sys.exit(main(sys.argv[1:]))
