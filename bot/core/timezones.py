"""Time-zone names: validation with a helpful suggestion, and local-day arithmetic."""

from __future__ import annotations

import difflib
import functools
import zoneinfo
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo


class UnknownZone(ValueError):
    """Raised for a zone name the tz database does not know; the message suggests the nearest."""


@functools.cache
def _zones() -> dict[str, str]:
    return {z.casefold(): z for z in zoneinfo.available_timezones()}


def resolve_zone(name: str) -> str:
    """The canonical IANA name for ``name`` (case-insensitive); raises `UnknownZone`."""
    cleaned = name.strip()
    found = _zones().get(cleaned.casefold())
    if found is not None:
        return found
    close = difflib.get_close_matches(cleaned.casefold(), list(_zones()), n=1, cutoff=0.75)
    hint = f" — did you mean {_zones()[close[0]]}?" if close else " — use an IANA name like Europe/Berlin"
    shown = cleaned if len(cleaned) <= 40 else cleaned[:40] + "…"
    raise UnknownZone(f'Unknown time zone "{shown}"{hint}')


@functools.cache
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def local_day(instant: datetime, tz: str) -> date:
    return instant.astimezone(zone(tz)).date()


def week_start(instant: datetime, tz: str) -> date:
    """The Monday of the week containing ``instant`` in zone ``tz``."""
    d = local_day(instant, tz)
    return d - timedelta(days=d.weekday())
