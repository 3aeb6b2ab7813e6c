"""The dashboard end to end in a real browser: Debian's Chromium driven by Playwright, against the real
`studybot run` process (the console, as `make run` starts it) on a seeded SQLite file.

An admin gets a link from the console command, signs in, changes a schedule and sees the calendar move,
pauses a channel, approves a suggestion, adds a question to a deck (a field error first), imports a CSV
through the dry run and Confirm, reads the analytics and downloads the CSV. Every page is photographed at a desktop and a
phone size: into pytest's temporary folder, or into ``STUDYBOT_SCREENSHOTS`` (``make screenshots`` points
it at ``docs/screenshots``, which the README shows).

Needs ``/usr/bin/chromium`` and the Python ``playwright`` package (``playwright install`` is not used);
without them the test skips, except under ``CI=true``, where it fails.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.config import BUNDLED_CONTENT
from bot.core.content import ContentLibrary
from bot.core.ports import AnswerIn
from bot.core.progress import advance_streak
from bot.core.schedule import ScheduleRule
from bot.core.timezones import local_day, week_start
from bot.storage import SqliteStore, schedules_for, suggestions_for
from tests.botproc import ROOT, BotProcess

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]  # fmt: skip
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
PAGES = {
    "overview": "/",
    "schedules": "/schedules",
    "questions": "/questions",
    "members": "/members",
    "content": "/content?deck=suggestions",
}
IMPORT_CSV = """prompt,A,B,C,D,answer,explanation,topic,difficulty
What does a burndown chart show?,Work left over time,Team mood,Budget spent,Bug count,A,It plots the work remaining against the days left in the sprint.,agile,1
Which meeting reviews the finished sprint?,Sprint review,Stand-up,Planning,Grooming,A,The sprint review shows the finished increment to stakeholders.,agile,2
"""
TIPS = (
    '{"text": "Write a one-page brief before you plan any milestone of a project.", "action": "Draft one brief this week.", "step": 3}',
    '{"text": "Ask an engineer to walk you through a recent release, end to end.", "action": "Book thirty minutes with one.", "step": 4}',
)


def _browser_or_skip() -> Any:
    reason = None
    if not CHROMIUM.exists():
        reason = "no /usr/bin/chromium (apt-get install chromium; .ci/system-packages does)"
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        reason = "the Python playwright package is not installed (pip install -e '.[dev]')"
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"browser tests cannot run under CI: {reason}")
        pytest.skip(reason)
    return async_playwright


def _user() -> str:
    import getpass

    try:
        return getpass.getuser() or "me"
    except Exception:
        return "me"


async def seed(db: Path, now: datetime) -> None:
    """A console group with three channels (two scheduled, one paused) and 40 members who answered
    questions of the bundled pack over the last 30 days, the stronger ones more often right."""
    pack = ContentLibrary.load(BUNDLED_CONTENT).pack
    questions = pack.questions[:24]
    store = SqliteStore(db)
    await store.start()
    schedules = schedules_for(store)
    rng = random.Random(19)
    try:
        admin = await store.ensure_member("console", "local", "console", _user(), _user(), group_name="console",
                                          channel_name="console", now=now - timedelta(days=40))  # fmt: skip
        rooms = {}
        for ext, name in (("console", "console"), ("C-quiz", "quiz-room"), ("C-tips", "career-tips")):
            m = await store.ensure_member("console", "local", ext, _user(), _user(), channel_name=name, now=now)
            rooms[name] = m.channel_id
        await schedules.save_schedule(rooms["console"], ScheduleRule(time(9, 0), "Europe/Berlin", (0, 1, 2, 3, 4)), now)
        await schedules.save_schedule(rooms["quiz-room"], ScheduleRule(time(18, 30), "America/New_York", tuple(range(7)), "mix", 4), now)  # fmt: skip
        await schedules.save_schedule(
            rooms["career-tips"], ScheduleRule(time(12, 0), "Europe/Berlin", (0, 3), "tip"), now
        )
        await schedules.set_paused(rooms["career-tips"], True, None, now)
        names = ["Ada", "Grace", "Linus", "Margaret", "Alan", "Barbara", "Ken", "Frances", "Edsger", "Radia"]
        for n in range(40):
            name = f"{names[n % len(names)]} {chr(65 + n // len(names))}."
            m = await store.ensure_member("console", "local", "console", f"user{n}", name, now=now - timedelta(days=35))
            skill = 0.35 + 0.6 * (n % 10) / 9
            for day in range(30, -1, -1):
                if rng.random() > 0.25 + 0.5 * (n % 4) / 3:
                    continue
                for _ in range(rng.randint(1, 3)):
                    q = rng.choice(questions)
                    at = now - timedelta(days=day, minutes=rng.randint(5, 600))
                    post = await store.create_post(m.group_id, m.channel_id, m.member_id, "question", q.id, at - timedelta(seconds=rng.randint(8, 90)))  # fmt: skip
                    hard = questions.index(q) % 7 == 0
                    right = rng.random() < (skill * (0.3 if hard else 1.0))
                    choice = q.answer if right else rng.choice([x for x in "ABCD" if x != q.answer])
                    today = local_day(at, "Europe/Berlin")
                    await store.record_answer(
                        AnswerIn(
                            m.member_id, post.id, m.group_id, q.id, choice, right, at, week_start(at, "Europe/Berlin")
                        ),
                        lambda s, today=today: advance_streak(s, today),  # type: ignore[misc]
                    )
        assert admin.group_id == m.group_id
        queue = suggestions_for(store)
        for n, body in enumerate(TIPS):
            name = f"{names[n % len(names)]} {chr(65 + n // len(names))}."
            author = await store.ensure_member("console", "local", "console", f"user{n}", name, now=now)
            await queue.add_suggestion(author.group_id, author.member_id, "tip", body, True, now)
    finally:
        await store.close()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    target = os.environ.get("STUDYBOT_SCREENSHOTS")
    folder = (ROOT / target) if target else tmp_path / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
async def bot(tmp_path: Path) -> AsyncIterator[BotProcess]:
    db = tmp_path / "dash.db"
    await seed(db, datetime.now(UTC))
    proc = BotProcess(db, "run", env={"STUDYBOT_CONTENT": str(BUNDLED_CONTENT), "STUDYBOT_HTTP_HOST": "127.0.0.1"})
    try:
        yield proc
    finally:
        proc.close()


def _link(bot: BotProcess) -> str:
    out = bot.ask("/study dashboard", r"/dashboard/login/")
    m = re.search(r"http://127\.0\.0\.1:\d+/dashboard/login/\S+", out)
    assert m, out
    return m.group(0)


async def test_an_admin_runs_the_group_from_the_browser(bot: BotProcess, shots: Path, tmp_path: Path) -> None:
    async_playwright = _browser_or_skip()
    link = await asyncio.to_thread(_link, bot)
    base = link.split("/dashboard/")[0] + "/dashboard"
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        try:
            desktop = await browser.new_context(viewport=DESKTOP, accept_downloads=True)
            page = await desktop.new_page()
            refused: list[str] = []  # what the CSP blocked ("Refused to apply inline style …")
            page.on("console", lambda msg: refused.append(msg.text) if "Refused to" in msg.text else None)

            # Sign in through the console's link: a page with a button; the link then works no more.
            await page.goto(link)
            await page.get_by_role("button", name="Sign in").click()
            await page.wait_for_url(f"{base}/")
            assert await page.locator("h1").inner_text() == "Overview"
            assert await page.locator(".figure b").first.inner_text() == "41"  # 40 members and the admin
            assert await page.locator("svg.chart rect.bar").count() == 30
            other = await browser.new_context()
            spent = await (await other.new_page()).goto(link)
            assert spent is not None and spent.status == 403
            await other.close()

            # A bad zone gets the command's own message and changes nothing; a good one moves the calendar.
            await page.get_by_role("link", name="Schedules").click()
            card = page.locator("section.card", has_text="#console")
            # The group's zone is Berlin's (the first schedule set it): Berlin channels show one time,
            # the New York room its own beside the group's.
            assert await page.locator(".calendar .post", has_text="09:00 #console").count() >= 9
            assert await page.locator(".calendar .post", has_text="#quiz-room (18:30 America/New_York)").count() >= 13
            await card.locator("input[name=time]").fill("07:45")
            await card.locator("input[name=tz]").fill("Europe/Berln")
            await card.get_by_role("button", name="Save").click()
            await page.locator(".notice.error").wait_for()
            assert "did you mean Europe/Berlin?" in await page.locator(".notice.error").inner_text()
            assert await page.locator(".calendar .post", has_text="07:45 #console").count() == 0
            card = page.locator("section.card", has_text="#console")
            await card.locator("input[name=tz]").fill("Europe/Berlin")
            await card.locator("input[name=day_sat]").check()
            await card.get_by_role("button", name="Save").click()
            notice = page.locator(".notice").first
            await notice.wait_for()
            assert (
                "✅ Daily posts here: 07:45 Europe/Berlin, mon,tue,wed,thu,fri,sat: a quiz question"
                in await notice.inner_text()
            )
            assert await page.locator(".calendar .post", has_text="09:00 #console").count() == 0
            assert await page.locator(".calendar .post", has_text="07:45 #console").count() >= 11
            # The zone field offers the zone list (a datalist: no script needed).
            assert await page.locator("datalist#zones option[value='Europe/Berlin']").count() == 1

            # Pause the quiz room from its card; its posts leave the calendar.
            room = page.locator("section.card", has_text="#quiz-room")
            await room.get_by_role("button", name="Pause").click()
            await page.locator(".notice", has_text="paused").first.wait_for()
            assert await page.locator(".calendar .post", has_text="#quiz-room").count() == 0
            await page.locator("section.card", has_text="#quiz-room").get_by_role("button", name="Resume").click()
            await page.locator(".notice", has_text="back on").first.wait_for()
            assert await page.locator(".calendar .post", has_text="#quiz-room").count() >= 13

            # Analytics and members.
            await page.get_by_role("link", name="Questions").click()
            assert await page.locator("table.list tbody tr").count() >= 24
            assert await page.locator("tr.flagged").count() >= 1
            await page.get_by_role("link", name="Members").click()
            assert await page.locator("table.list tbody tr").count() == 41
            await page.get_by_role("link", name=re.compile("^Accuracy")).click()
            first = await page.locator("table.list tbody tr td:nth-child(3)").first.inner_text()
            assert first == "100%" or int(first.rstrip("%")) >= 80

            # A member's suggestion approved into a deck from the queue; it shows in that deck.
            await page.get_by_role("link", name="Content").click()
            assert await page.locator(".suggestion").count() == 2
            first_card = page.locator(".suggestion", has_text="one-page brief")
            await first_card.get_by_role("button", name="Approve").click()
            await page.locator(".notice", has_text="approved").wait_for()
            assert await page.locator(".suggestion").count() == 1
            await page.get_by_role("link", name="suggestions").click()
            assert await page.locator("table.list tbody tr", has_text="one-page brief").count() == 1

            # Add a question to that deck: the form's errors show beside the fields, what was typed stays.
            add = await page.get_by_role("link", name="Add a question").get_attribute("href")
            assert add is not None
            await page.get_by_role("link", name="Add a question").click()
            await page.locator("#f-prompt").fill("Too short")
            await page.locator("#f-choices").fill("Scope statement\nRisk register\nRACI chart\nBurn-down chart")
            await page.locator("#f-answer").fill("A")
            await page.locator("#f-explanation").fill("The scope statement says what is in and what is out.")
            await page.get_by_role("button", name="Save").click()
            assert "at least 10 characters" in await page.locator("#e-prompt").inner_text()
            assert (
                await page.locator("#f-choices").input_value()
                == "Scope statement\nRisk register\nRACI chart\nBurn-down chart"
            )
            await page.locator("#f-prompt").fill("Which document fixes what a project will and will not deliver?")
            await page.get_by_role("button", name="Save").click()
            await page.locator(".notice", has_text="✅ Added to deck").wait_for()
            assert await page.locator("table.list tbody tr", has_text="will not deliver").count() == 1

            # Import a CSV: the command's dry run, then Confirm writes it.
            deck_file = tmp_path / "more.csv"
            deck_file.write_text(IMPORT_CSV, encoding="utf-8")
            await page.locator("input[type=file]").set_input_files(str(deck_file))
            await page.get_by_role("button", name="Dry run").click()
            await page.locator(".notice", has_text="2 new, 0 changed, 0 problems").wait_for()
            assert await page.locator("table.list tbody tr", has_text="burndown").count() == 0
            await page.screenshot(path=str(shots / "import-desktop.png"))
            await page.get_by_role("button", name="Confirm import").click()
            await page.locator(".notice", has_text="✅ Imported: 2 new, 0 changed").wait_for()
            assert await page.locator("table.list tbody tr", has_text="burndown").count() == 1
            await page.get_by_role("link", name="Members").click()

            # The CSV download is the file /study export gives.
            async with page.expect_download() as info:
                await page.get_by_role("link", name="members.csv").click()
            download = await info.value
            saved = tmp_path / "members.csv"
            await download.save_as(saved)
            out = await asyncio.to_thread(bot.ask, "/study export", r"saved to .*members\.csv")
            exported = Path(re.findall(r"saved to (\S+members\.csv)", out)[-1])
            got, expected = await asyncio.to_thread(saved.read_text), await asyncio.to_thread(exported.read_text)
            assert got == expected and got.count("\n") == 42

            # Photographs of every page, desktop then phone (the same session in a phone-sized window).
            # (The questions page lists the whole pack: its picture shows the first screenfuls.)
            pages = {**PAGES, "item": add.removeprefix("/dashboard")}
            for name, path in pages.items():
                await page.goto(base + path)
                await page.screenshot(
                    path=str(shots / f"{name}-desktop.png"), full_page=name not in ("questions", "content")
                )
            phone = await browser.new_context(viewport=PHONE, is_mobile=True, device_scale_factor=2,
                                              storage_state=await desktop.storage_state())  # fmt: skip
            small = await phone.new_page()
            for name, path in pages.items():
                await small.goto(base + path)
                assert await small.locator("h1").count() == 1
                width = await small.evaluate("document.documentElement.scrollWidth")
                assert width <= PHONE["width"], f"{name} scrolls sideways on a phone ({width}px)"
                await small.screenshot(
                    path=str(shots / f"{name}-phone.png"), full_page=name not in ("questions", "members", "content")
                )
            await phone.close()
            assert not refused, refused
        finally:
            await browser.close()
    assert (shots / "import-desktop.png").stat().st_size > 10_000
    for name in (*PAGES, "item"):
        for size in ("desktop", "phone"):
            assert (shots / f"{name}-{size}.png").stat().st_size > 10_000
