"""Member-controlled text inside the core's replies: marked here, escaped by each front end.

Names (and anything else a member typed) are data, not markup. The core wraps such text with `name`;
each adapter renders a reply with `render`, escaping the marked spans its own way (Discord markdown
and mentions, Slack mrkdwn and links) while converting the core's own light markdown as usual. The
marks are two private-use characters that never survive into a message.
"""

from __future__ import annotations

import re
from collections.abc import Callable

START = "\ue000"
END = "\ue001"
_MARKED = re.compile(f"{START}([^{START}{END}]*){END}")
_STRAY = re.compile(f"[{START}{END}]")
_SLOT = re.compile(f"{START}([0-9]+){END}")
#: Control characters (line breaks included) in a name would let it break out of its line, and
#: bidirectional embeddings, overrides and isolates would let it reorder the rest of it ("— 1 pt").
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029\u202a-\u202e\u2066-\u2069]+")


def name(text: str) -> str:
    """Mark ``text`` (a display name, a channel name, a member's own words) as data for the adapters
    to escape. Control characters become spaces; our marks inside ``text`` are dropped."""
    return f"{START}{_CONTROL.sub(' ', _STRAY.sub('', text))}{END}"


def render(text: str, escape: Callable[[str], str], convert: Callable[[str], str] | None = None) -> str:
    """``text`` for a platform: the core's own text through ``convert`` (its markdown → the platform's;
    none when the platform's markdown is the core's), each marked span through ``escape`` (inserted after
    ``convert``, so a name is never converted). Unpaired marks (not made by `name`) are dropped."""
    if START not in text and END not in text:
        return text if convert is None else convert(text)
    if convert is None:  # one pass: nothing to keep the spans away from
        return _STRAY.sub("", _MARKED.sub(lambda m: escape(m.group(1)), text))
    spans: list[str] = []
    parts: list[str] = []
    pos = 0
    for m in _MARKED.finditer(text):
        # Unpaired marks are dropped, so the only marks left are our slots.
        parts.append(_STRAY.sub("", text[pos : m.start()]))
        spans.append(m.group(1))
        parts.append(f"{START}{len(spans) - 1}{END}")
        pos = m.end()
    parts.append(_STRAY.sub("", text[pos:]))
    converted = convert("".join(parts))
    return _SLOT.sub(lambda m: escape(spans[int(m.group(1))]), converted)


def plain(text: str) -> str:
    """``text`` with the marks removed (the console shows names as they are)."""
    return render(text, lambda s: s)
