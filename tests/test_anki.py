"""The Anki reader: a tiny .apkg made here (Anki's schema 11, built with sqlite3 and zipfile, nothing
downloaded), Anki's text export, HTML reduced to text, and each bad file refused in one line."""

from __future__ import annotations

import io
import json
import random
import sqlite3
import zipfile
from pathlib import Path

import pytest

from bot import anki
from bot.anki import AnkiCard, AnkiError, read_apkg, read_bytes, read_file, read_text_export

BASIC, CLOZE = 1342697561419, 1342697561420
#: The tables of an Anki 2.1 "legacy" (schema 11) collection, as Anki creates them.
SCHEMA_11 = """
CREATE TABLE col (id integer primary key, crt integer not null, mod integer not null, scm integer not null,
  ver integer not null, dty integer not null, usn integer not null, ls integer not null, conf text not null,
  models text not null, decks text not null, dconf text not null, tags text not null);
CREATE TABLE notes (id integer primary key, guid text not null, mid integer not null, mod integer not null,
  usn integer not null, tags text not null, flds text not null, sfld integer not null, csum integer not null,
  flags integer not null, data text not null);
CREATE TABLE cards (id integer primary key, nid integer not null, did integer not null, ord integer not null,
  mod integer not null, usn integer not null, type integer not null, queue integer not null, due integer not null,
  ivl integer not null, factor integer not null, reps integer not null, lapses integer not null,
  left integer not null, odue integer not null, odid integer not null, flags integer not null, data text not null);
CREATE TABLE revlog (id integer primary key, cid integer not null, usn integer not null, ease integer not null,
  ivl integer not null, lastIvl integer not null, factor integer not null, time integer not null,
  type integer not null);
CREATE TABLE graves (usn integer not null, oid integer not null, type integer not null);
"""


def collection(notes: list[tuple[int, str, list[str]]], *, ver: int = 11) -> bytes:
    """An Anki collection file holding ``notes`` (note type id, tags, fields), as bytes."""
    conn = sqlite3.connect(":memory:")
    conn.executescript(SCHEMA_11)
    models = {
        str(BASIC): {
            "id": BASIC,
            "name": "Basic",
            "type": 0,
            "flds": [{"name": "Front", "ord": 0}, {"name": "Back", "ord": 1}],
        },
        str(CLOZE): {
            "id": CLOZE,
            "name": "Cloze",
            "type": 1,
            "flds": [{"name": "Text", "ord": 0}, {"name": "Back Extra", "ord": 1}],
        },
    }
    conn.execute(
        "INSERT INTO col VALUES (1, 0, 0, 0, ?, 0, 0, 0, '{}', ?, '{}', '{}', '{}')", (ver, json.dumps(models))
    )
    for i, (mid, tags, fields) in enumerate(notes, 1):
        conn.execute(
            "INSERT INTO notes VALUES (?, ?, ?, 0, 0, ?, ?, ?, 0, 0, '')",
            (1_600_000_000_000 + i, f"guid{i}", mid, f" {tags} " if tags else "", "\x1f".join(fields), fields[0]),
        )
    conn.commit()
    data = conn.serialize()
    conn.close()
    return data


def apkg(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files.items():
            z.writestr(name, data)
        z.writestr("media", "{}")
    return buf.getvalue()


NOTES = [
    (BASIC, "tpm risk", ["What is a RAID log?", "Risks, <b>assumptions</b>, issues<br>and dependencies &amp; owners"]),
    (
        BASIC,
        "",
        [
            '<div>Critical path?</div><img src="cp.png">',
            "The longest chain of dependent tasks<script>alert(1)</script>",
        ],
    ),
    (BASIC, "", ["Sound[sound:hello.mp3] check", "yes&nbsp;it&#39;s fine"]),
    (BASIC, "", ["", "a back without a front"]),
    (CLOZE, "cloze", ["A {{c1::Gantt chart::chart type}} shows tasks over time.", ""]),
]


def anki_package_of(size: int) -> bytes:
    """An .apkg of about ``size`` bytes: the 4 cards of `NOTES` plus a media file of random bytes (which
    do not compress), as a package with pictures is."""
    return apkg({"collection.anki2": collection(NOTES), "0": random.Random(size).randbytes(size)})


def test_a_tiny_apkg_made_here_imports_as_open_cards_with_plain_text() -> None:
    result = read_apkg(apkg({"collection.anki2": collection(NOTES)}))
    assert result.cards == [
        AnkiCard("What is a RAID log?", "Risks, assumptions, issues\nand dependencies & owners", ("tpm", "risk")),
        AnkiCard("Critical path?", "The longest chain of dependent tasks"),
        AnkiCard("Sound check", "yes it's fine"),
        AnkiCard("A [chart type] shows tasks over time.", "A Gantt chart shows tasks over time.", ("cloze",)),
    ]
    assert result.notes == 5 and result.skipped == {"empty front": 1}
    assert result.dropped == {"images": 1, "scripts": 1, "sounds": 1}
    assert result.report() == "5 notes: 4 cards; skipped 1 (1 empty front); dropped 1 image, 1 script, 1 sound"


def test_collection_anki21_is_preferred_over_the_legacy_file() -> None:
    stub = collection([(BASIC, "", ["old", "file"])])
    result = read_apkg(apkg({"collection.anki2": stub, "collection.anki21": collection(NOTES[:1])}))
    assert [c.front for c in result.cards] == ["What is a RAID log?"]


def test_anki_text_export_with_headers_quotes_and_tags() -> None:
    text = (
        "#separator:tab\n#html:true\n#tags column:3\n"
        'Front one\t"Back with a\ttab and<br>a break"\ttag1 tag2\n'
        "\n"
        "<b>Bold</b> front\tplain back\t\n"
    )
    result = read_text_export(text.encode())
    assert result.cards == [
        AnkiCard("Front one", "Back with a tab and\na break", ("tag1", "tag2")),  # HTML: white space squeezed
        AnkiCard("Bold front", "plain back"),
    ]


def test_a_headerless_text_export_and_plain_text_mode() -> None:
    assert read_text_export(b"Q1\tA1\nQ2\tA2\n").cards == [AnkiCard("Q1", "A1"), AnkiCard("Q2", "A2")]
    plain = read_text_export(b"#html:false\n1 < 2\tyes <b> stays text\n")
    assert plain.cards == [AnkiCard("1 < 2", "yes <b> stays text")]


def test_read_bytes_tells_packages_from_text_by_content() -> None:
    assert (
        read_bytes(apkg({"collection.anki2": collection(NOTES[:1])}), "upload.bin").cards[0].front
        == "What is a RAID log?"
    )
    assert read_bytes(b"front\tback\n", "cards.txt").cards == [AnkiCard("front", "back")]


# ---------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b"this is plain text, not a zip", "not an Anki package"),
        (apkg({"notes.txt": b"hello"}), "holds no Anki collection"),
        (apkg({"collection.anki2": collection([]), "collection.anki21b": b"\x28\xb5\x2f\xfd"}), "newer format"),
        (apkg({"collection.anki2": collection(NOTES, ver=18)}), "Anki schema 18, newer than studybot reads (11)"),
        (apkg({"collection.anki2": b"SQLite format 3\x00" + b"\x00" * 200}), "not a readable Anki collection"),
        (apkg({"collection.anki2": b"just some bytes"}), "not a readable Anki collection"),
    ],
)
def test_bad_packages_are_refused_in_one_line(data: bytes, says: str) -> None:
    with pytest.raises(AnkiError) as e:
        read_apkg(data)
    assert says in str(e.value) and "\n" not in str(e.value)


def test_a_50_mb_file_is_refused_without_being_read_whole(tmp_path: Path) -> None:
    big = tmp_path / "huge.apkg"
    with open(big, "wb") as f:
        f.truncate(50 * 1024 * 1024)
    with pytest.raises(AnkiError, match=r"too large \(50\.0 MB; the limit is 10\.0 MB\)"):
        read_file(big)
    with pytest.raises(AnkiError, match="too large"):
        read_apkg(b"PK\x03\x04" + b"\x00" * anki.MAX_FILE_BYTES)


def test_a_zip_bomb_collection_is_refused_by_its_declared_size(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(anki, "MAX_COLLECTION_BYTES", 10_000)
    data = apkg({"collection.anki2": collection([(BASIC, "", ["x" * 5000, "y" * 5000])])})
    with pytest.raises(AnkiError, match="too large"):
        read_apkg(data)


def test_too_many_notes_are_refused_rather_than_half_imported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(anki, "MAX_NOTES", 3)
    with pytest.raises(AnkiError, match="holds 5 notes; studybot imports at most 3"):
        read_apkg(apkg({"collection.anki2": collection(NOTES)}))
    with pytest.raises(AnkiError, match="more than 3 notes"):
        read_text_export(b"a\tb\n" * 4)


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b"", "holds no notes"),
        (b"\xff\xfe\x00Q", "not UTF-8"),
        (b"front\tback\x00", "binary data"),
    ],
)
def test_bad_text_exports_are_refused_in_one_line(data: bytes, says: str) -> None:
    with pytest.raises(AnkiError, match=says):
        read_text_export(data)


def test_over_long_fields_are_skipped_and_counted() -> None:
    result = read_text_export(("x" * (anki.MAX_FRONT_CHARS + 1) + "\tback\nok\tfine\n").encode())
    assert result.cards == [AnkiCard("ok", "fine")] and result.skipped == {"too long": 1}
