"""Member-controlled text in replies: the core marks it, each front end escapes it its own way."""

from __future__ import annotations

from bot.adapters.console_adapter import plain as console_text
from bot.adapters.discord_adapter import render as discord_text
from bot.adapters.slack_adapter import mrkdwn
from bot.core.markup import END, START, name, plain, render

EVIL = "[Claim your prize](https://evil.example) **x** <@&1> @everyone"


def test_a_name_is_marked_and_loses_marks_and_line_breaks_of_its_own() -> None:
    assert name("bob") == f"{START}bob{END}"
    assert name(f"a{END}b{START}c\nd\re") == f"{START}abc d e{END}"  # cannot end its own span early


def test_a_name_cannot_reorder_the_rest_of_its_line() -> None:
    # U+202E (right-to-left override) would show "🥇 evil — 1 pt" as "🥇 tp 1 — live"; isolates and
    # embeddings likewise. Right-to-left letters themselves stay: they need no control characters.
    for control in ("\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068", "\u2069"):
        assert name(f"evil{control}x") == f"{START}evil x{END}", repr(control)
    assert plain(f"🥇 {name('שלום')} — 1 pt") == "🥇 שלום — 1 pt"


def test_render_escapes_names_and_converts_only_the_rest() -> None:
    text = f"**Top** {name('**bold**')} and {name('x')}"
    out = render(text, lambda s: f"<{s}>", lambda t: t.replace("**", "*"))
    assert out == "*Top* <**bold**> and <x>"


def test_stray_marks_in_core_text_are_dropped_and_never_mistaken_for_names() -> None:
    assert render(f"a{START}0{END}{START}b", lambda s: "NAME") == "aNAMEb"
    assert plain(f"x{END}y{START}") == "xy"
    assert plain("\x000\x00") == "\x000\x00"  # NUL and digits are just text


def test_each_front_end_shows_the_same_name_its_own_way() -> None:
    text = f"**Progress — {name(EVIL)}**"
    assert console_text(text) == f"Progress — {EVIL}"  # the console shows the name as it is
    assert discord_text(text) == (
        r"**Progress — \[Claim your prize\]\(https\://evil.example\) \*\*x\*\* \<\@&1\> \@everyone**"
    )
    z = "\u200b"
    assert mrkdwn(text) == (
        f"*Progress — [Claim your prize](https:{z}//evil.{z}example) {z}*{z}{z}*{z}x{z}*{z}{z}*{z} "
        f"&lt;@{z}&amp;1&gt; @{z}everyone*"
    )
