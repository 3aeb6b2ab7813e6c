"""Reading Anki exports into open cards: an ``.apkg`` package or Anki's tab-separated text export.

Pure and synchronous, standard library only (`zipfile`, `sqlite3`, `html.parser`, `csv`); no Anki
install. It lives outside `bot.core` because it opens SQLite (the core imports no driver): the import
command runs it in a thread and hands the core plain `AnkiCard` values.

An ``.apkg`` is a zip holding the collection as an SQLite file: ``collection.anki21`` (preferred) or
``collection.anki2``, schema 11, with the note types as JSON in ``col.models``. Anki 2.1.50+ exports
by default a zstd-compressed ``collection.anki21b`` with a newer schema (and a stub ``collection.anki2``
that only says "please update"): that is refused with how to export in the older format.

Each note becomes one card: its first field is the front, its second the back (cloze notes: the text
with the deletions hidden as ``[…]``, and the text in full). HTML is reduced to plain text: ``<br>``,
``<div>``, ``<p>`` and ``<li>`` become line breaks, entities are decoded, and scripts, styles, images and
``[sound:…]`` references are dropped and counted for the report.

Every problem with the file is an `AnkiError` whose message is one line a member can act on.

`deck_items` turns an upload into deck items of kind ``card`` for `/study deck import` (the composition
root hands this module to `bot.core.deck_commands.DeckCommands` as its `AnkiReader`).
"""

from __future__ import annotations

import csv
import html
import io
import json
import re
import sqlite3
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import ClassVar

from bot.core.deck_files import MAX_BYTES, slug_for
from bot.core.decks import ItemData

#: The largest file read (an .apkg with media can be big; the notes alone rarely pass 1 MB).
MAX_FILE_BYTES = 10 * 1024 * 1024
#: The largest file any `/study deck import` takes (an Anki file; YAML/CSV/JSON stop at 1 MB): front ends
#: fetch an upload up to this and leave the format's own limit to the core, which names it.
UPLOAD_MAX_BYTES = max(MAX_BYTES, MAX_FILE_BYTES)
#: The largest collection unpacked from a package (a zip bomb stops here, not in memory).
MAX_COLLECTION_BYTES = 50 * 1024 * 1024
#: Notes read from one file; a bigger deck is refused rather than half imported.
MAX_NOTES = 5000
MAX_FRONT_CHARS = 1000
MAX_BACK_CHARS = 3000
#: The collection schema this reader understands (Anki 2.1's "legacy" export format).
SCHEMA = 11
_FIELD_SEP = "\x1f"
_CLOZE = re.compile(r"\{\{c\d+::(.*?)(?:::(.*?))?\}\}", re.S)
_SOUND = re.compile(r"\[sound:[^\]]*\]")


class AnkiError(ValueError):
    """The file cannot be read as an Anki export; ``str(e)`` is one line saying why and what to do."""


@dataclass(frozen=True, slots=True)
class AnkiCard:
    """One note as an open card: plain text front and back, and the note's tags."""

    front: str
    back: str
    tags: tuple[str, ...] = ()


@dataclass
class AnkiImport:
    """What a file held: the cards, the notes left out (with why) and what was dropped from the HTML."""

    cards: list[AnkiCard] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    dropped: Counter[str] = field(default_factory=Counter)
    notes: int = 0

    def report(self) -> str:
        """One line, e.g. ``12 notes: 10 cards; skipped 2 (empty front); dropped 3 images, 1 script``."""
        parts = [
            f"{self.notes} note{'s' if self.notes != 1 else ''}: {len(self.cards)} card{'s' if len(self.cards) != 1 else ''}"
        ]
        if self.skipped:
            why = ", ".join(f"{n} {reason}" for reason, n in sorted(self.skipped.items()))
            parts.append(f"skipped {sum(self.skipped.values())} ({why})")
        if self.dropped:
            parts.append("dropped " + ", ".join(_count(n, what) for what, n in sorted(self.dropped.items())))
        return "; ".join(parts)


def _count(n: int, what: str) -> str:
    return f"{n} {what if n != 1 else what.rstrip('s')}"


# ---------------------------------------------------------------------- HTML to text


class _Text(HTMLParser):
    """Collects the text of an HTML fragment; line breaks for block elements; drops and counts the rest."""

    _BREAKS: ClassVar[frozenset[str]] = frozenset({"br", "div", "p", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6"})
    _SKIP: ClassVar[dict[str, str]] = {"script": "scripts", "style": "styles"}

    def __init__(self, dropped: Counter[str]) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.dropped = dropped
        self._skipping: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self._skipping:
            return
        if tag in self._SKIP:
            self.dropped[self._SKIP[tag]] += 1
            self._skipping = tag
        elif tag == "img":
            self.dropped["images"] += 1
        elif tag in ("audio", "video", "object", "embed", "iframe"):
            self.dropped["media"] += 1
        elif (tag in self._BREAKS and tag != "br") or tag == "br":
            self.parts.append("\n")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if self._skipping:
            if tag == self._skipping:
                self._skipping = None
            return
        if tag in ("div", "p", "li", "tr"):
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)


def html_to_text(fragment: str, dropped: Counter[str]) -> str:
    """Plain text of an Anki field (HTML): line breaks kept, entities decoded, scripts, styles, images and
    sounds dropped (counted in ``dropped``), runs of blank lines and spaces squeezed."""
    sounds = len(_SOUND.findall(fragment))
    if sounds:
        dropped["sounds"] += sounds
        fragment = _SOUND.sub("", fragment)
    parser = _Text(dropped)
    parser.feed(fragment)
    parser.close()
    text = html.unescape("".join(parser.parts)).replace("\xa0", " ")
    lines = [" ".join(line.split()) for line in text.splitlines()]
    out: list[str] = []
    for line in lines:
        if line or (out and out[-1]):
            out.append(line)
    return "\n".join(out).strip()


# ---------------------------------------------------------------------- notes to cards


def _add(result: AnkiImport, front_html: str, back_html: str, tags: tuple[str, ...], cloze: bool = False) -> None:
    result.notes += 1
    if cloze:
        front_html, back_html = (
            _CLOZE.sub(lambda m: f"[{m.group(2) or '…'}]", front_html),
            _CLOZE.sub(r"\1", front_html) + (f"<br>{back_html}" if back_html.strip() else ""),
        )
    front = html_to_text(front_html, result.dropped)
    back = html_to_text(back_html, result.dropped)
    if not front:
        result.skipped["empty front"] += 1
    elif not back:
        result.skipped["empty back"] += 1
    elif len(front) > MAX_FRONT_CHARS or len(back) > MAX_BACK_CHARS:
        result.skipped["too long"] += 1
    else:
        result.cards.append(AnkiCard(front, back, tags))


def _tags(text: str) -> tuple[str, ...]:
    return tuple(t for t in text.split() if t)


# ---------------------------------------------------------------------- .apkg


def read_apkg(data: bytes) -> AnkiImport:
    """The notes of an ``.apkg`` (bytes) as cards. Raises `AnkiError`."""
    if len(data) > MAX_FILE_BYTES:
        raise AnkiError(_too_big(len(data)))
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise AnkiError("That file is not an Anki package: an .apkg is a zip file, and this one is not.") from None
    with archive:
        names = set(archive.namelist())
        if "collection.anki21b" in names:
            raise AnkiError(
                "That .apkg is in Anki's newer format (collection.anki21b, Anki 2.1.50 and later), which studybot "
                "cannot read: in Anki, export it again with “Support older Anki versions” ticked."
            )
        member = next((n for n in ("collection.anki21", "collection.anki2") if n in names), None)
        if member is None:
            raise AnkiError("That .apkg holds no Anki collection (no collection.anki21 or collection.anki2 inside).")
        info = archive.getinfo(member)
        if info.file_size > MAX_COLLECTION_BYTES:
            raise AnkiError(
                f"The collection inside that .apkg is too large ({_mb(info.file_size)}; the limit is {_mb(MAX_COLLECTION_BYTES)})."
            )
        try:
            with archive.open(member) as f:
                collection = f.read(MAX_COLLECTION_BYTES + 1)
        except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as e:
            raise AnkiError(f"The collection inside that .apkg cannot be unpacked ({e}).") from None
        if len(collection) > MAX_COLLECTION_BYTES:
            raise AnkiError(f"The collection inside that .apkg is too large (over {_mb(MAX_COLLECTION_BYTES)}).")
    return read_collection(collection)


def read_collection(collection: bytes) -> AnkiImport:
    """The notes of an Anki collection (the SQLite file's bytes). Raises `AnkiError`."""
    conn = sqlite3.connect(":memory:")
    try:
        try:
            conn.deserialize(collection)
            # Only our SELECTs run; a crafted schema (views, triggers) gets no functions it could abuse.
            conn.execute("PRAGMA trusted_schema = OFF")
            conn.execute("PRAGMA query_only = ON")
            row = conn.execute("SELECT ver, models FROM col").fetchone()
        except sqlite3.Error as e:
            raise AnkiError(f"That is not a readable Anki collection ({e}).") from None
        if row is None:
            raise AnkiError("That Anki collection is empty (its col table has no row).")
        ver, models_json = row
        if not isinstance(ver, int) or ver > SCHEMA:
            raise AnkiError(
                f"That collection uses Anki schema {ver}, newer than studybot reads ({SCHEMA}): in Anki, export "
                "it again with “Support older Anki versions” ticked."
            )
        try:
            models = json.loads(models_json or "{}")
        except (TypeError, ValueError):
            raise AnkiError("That Anki collection's note types cannot be read (col.models is not JSON).") from None
        cloze = {str(mid) for mid, m in models.items() if isinstance(m, dict) and m.get("type") == 1}
        result = AnkiImport()
        try:
            (count,) = conn.execute("SELECT COUNT(*) FROM notes").fetchone()
            if count > MAX_NOTES:
                raise AnkiError(
                    f"That collection holds {count:,} notes; studybot imports at most {MAX_NOTES:,} at a time."
                )
            for mid, tags, flds in conn.execute("SELECT mid, tags, flds FROM notes ORDER BY id"):
                fields = str(flds or "").split(_FIELD_SEP)
                front, back = fields[0], fields[1] if len(fields) > 1 else ""
                _add(result, front, back, _tags(str(tags or "")), cloze=str(mid) in cloze)
        except sqlite3.Error as e:
            raise AnkiError(f"That Anki collection's notes cannot be read ({e}).") from None
        return result
    finally:
        conn.close()


# ---------------------------------------------------------------------- text export

_SEPARATORS = {"tab": "\t", "comma": ",", "semicolon": ";", "space": " ", "pipe": "|", "colon": ":"}


def read_text_export(data: bytes) -> AnkiImport:
    """Anki's "Notes in Plain Text" export: one note per line, fields separated by tabs (or the
    ``#separator:`` header's), quoted like CSV when they hold separators or line breaks; ``#`` header
    lines name the tags, note type, deck and guid columns. Raises `AnkiError`."""
    if len(data) > MAX_FILE_BYTES:
        raise AnkiError(_too_big(len(data)))
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise AnkiError(
            "That text export is not UTF-8 (Anki writes UTF-8; was it saved by another program?)."
        ) from None
    if "\x00" in text:
        raise AnkiError("That is not a text export (it holds binary data). For a package, upload the .apkg.")
    lines = text.splitlines(keepends=True)
    sep, is_html, meta = "\t", True, {}
    body_start = 0
    for i, line in enumerate(lines):
        if not line.startswith("#"):
            break
        body_start = i + 1
        key, _, value = line[1:].strip().partition(":")
        key, value = key.strip().lower(), value.strip()
        if key == "separator":
            sep = _SEPARATORS.get(value.lower(), value[:1] or "\t")
        elif key == "html":
            is_html = value.lower() == "true"
        elif key.endswith(" column") and value.isdigit():
            meta[key[: -len(" column")]] = int(value) - 1
    reader = csv.reader(io.StringIO("".join(lines[body_start:])), delimiter=sep, quotechar='"')
    result = AnkiImport()
    skip = set(meta.values())
    try:
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            if result.notes >= MAX_NOTES:
                raise AnkiError(
                    f"That file holds more than {MAX_NOTES:,} notes; studybot imports at most {MAX_NOTES:,} at a time."
                )
            fields = [cell for i, cell in enumerate(row) if i not in skip]
            tags = _tags(row[meta["tags"]]) if "tags" in meta and meta["tags"] < len(row) else ()
            front, back = [*fields, "", ""][:2]
            if not is_html:
                front, back = html.escape(front).replace("\n", "<br>"), html.escape(back).replace("\n", "<br>")
            _add(result, front, back, tags)
    except csv.Error as e:
        raise AnkiError(f"That text export cannot be read (line {reader.line_num}: {e}).") from None
    if not result.notes:
        raise AnkiError("That text export holds no notes (one per line: front, a tab, back).")
    return result


# ---------------------------------------------------------------------- files


def read_file(path: Path | str) -> AnkiImport:
    """An ``.apkg`` or a text export from disk (by content: a zip is a package). Reads at most the size
    limit, so a huge file is refused without being read. Raises `AnkiError` (and `OSError` for a file
    that cannot be opened)."""
    with open(path, "rb") as f:
        data = f.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise AnkiError(_too_big(Path(path).stat().st_size))
    return read_bytes(data, Path(path).name)


def read_bytes(data: bytes, filename: str = "") -> AnkiImport:
    """An upload by its content: a zip (or a name ending in .apkg) is a package, else a text export."""
    if data[:4] == b"PK\x03\x04" or filename.lower().endswith((".apkg", ".colpkg")):
        return read_apkg(data)
    return read_text_export(data)


def _mb(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MB"


def _too_big(n: int) -> str:
    return f"That file is too large ({_mb(n)}; the limit is {_mb(MAX_FILE_BYTES)}). Export the notes without media."


# ---------------------------------------------------------------------- deck import


#: A tag as decks keep it (`bot.core.decks.Card`): lower case, letters, digits and dashes.
_TAG = re.compile(r"[a-z][a-z0-9-]{0,31}")
#: The shortest front and back a deck card may have (`bot.core.decks.Card`).
MIN_FRONT, MIN_BACK = 10, 5


def is_anki(filename: str, data: bytes) -> bool:
    """Whether an upload is an Anki package (a zip, or named ``.apkg``) or an Anki text export (``.txt``)."""
    return data[:4] == b"PK\x03\x04" or filename.lower().endswith((".apkg", ".colpkg", ".txt"))


def _deck_tag(tag: str) -> str | None:
    cleaned = re.sub(r"[^a-z0-9-]+", "-", tag.casefold().replace("::", "-")).strip("-")[:32]
    return cleaned if _TAG.fullmatch(cleaned) else None


def deck_items(filename: str, data: bytes) -> tuple[list[ItemData], str]:
    """An Anki upload as deck items of kind ``card`` and a one-line report of what was read, skipped and
    dropped. Cards whose front is under 10 or back under 5 characters are skipped (counted): a deck card
    needs that much to be practised. Raises `AnkiError` for a file that cannot be read."""
    result = read_bytes(data, filename)
    items: list[ItemData] = []
    kept: list[AnkiCard] = []
    seen: set[str] = set()
    for card in result.cards:
        if len(card.front) < MIN_FRONT or len(card.back) < MIN_BACK:
            result.skipped["too short for a deck card"] += 1
            continue
        slug = slug_for("card", card.front)
        if slug in seen:
            result.skipped["same front twice"] += 1
            continue
        seen.add(slug)
        kept.append(card)
        tags = tuple(dict.fromkeys(t for t in map(_deck_tag, card.tags) if t))[:10]
        items.append(ItemData(kind="card", slug=slug, front=card.front, back=card.back, tags=tags, source="general"))
    result.cards = kept
    return items, result.report()
