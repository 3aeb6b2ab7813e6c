"""The web dashboard through its real HTTP handlers (aiohttp's test client over loopback), on a real
SQLite file: sign-in links, sessions, CSRF, tenancy, the rate limit, headers and every page."""

from __future__ import annotations

import asyncio
import csv
import io
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

import bot.adapters.dashboard as dashboard_web
from bot.adapters.dashboard import COOKIE, PREFIX, DashboardServer, DashboardWeb, FailedLogins
from bot.bootstrap import App, build_app, serve_dashboard
from bot.config import Settings
from bot.core.dashboard_tallies import AnalyticsBase
from bot.core.messages import Attachment, Inbound
from tests.conftest import FIXTURE_PACK, FakeClock
from tests.fakes import FakeChatGateway

LINK = re.compile(r"(https?://\S+)/dashboard/login/(\S+)")


class Clock:
    """Monotonic seconds for the failed-login window, moved by hand."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@dataclass
class Rig:
    app: App
    client: TestClient  # type: ignore[type-arg]
    clock: FakeClock
    gateway: FakeChatGateway
    window: Clock

    def inbound(
        self, text: str, *, group: str = "G1", channel: str = "C1", user: str = "U1", admin: bool = True
    ) -> Inbound:
        return Inbound("discord", group, channel, user, f"name-{user}", text, is_admin=admin, group_name=f"guild {group}",
                       channel_name=f"chan-{channel}")  # fmt: skip

    async def say(self, text: str, **kw: object) -> str:
        replies = await self.app.service.handle(self.inbound(text, **kw))  # type: ignore[arg-type]
        return "\n".join(r.text for r in replies)

    async def link(self, **kw: object) -> str:
        """A fresh sign-in link's path (from the chat command, as an admin would get it)."""
        text = await self.say("dashboard", **kw)
        m = LINK.search(text)
        assert m, text
        return f"{PREFIX}/login/{m.group(2)}"

    async def sign_in(self, **kw: object) -> None:
        path = await self.link(**kw)
        page = await self.client.get(path)
        assert page.status == 200 and "Sign in" in await page.text()
        token = path.rsplit("/", 1)[1]
        done = await self.client.post(f"{PREFIX}/login", data={"token": token}, allow_redirects=False)
        assert done.status == 303 and done.headers["Location"] == f"{PREFIX}/"

    async def page(self, path: str, status: int = 200) -> str:
        r = await self.client.get(PREFIX + path, allow_redirects=False)
        body = await r.text()
        assert r.status == status, (path, r.status, body[:500])
        return body

    async def csrf(self) -> str:
        m = re.search(r'name="csrf" value="([^"]+)"', await self.page("/"))
        assert m
        return m.group(1)

    async def post(self, path: str, data: dict[str, str], status: int = 200) -> str:
        r = await self.client.post(PREFIX + path, data=data, allow_redirects=False)
        body = await r.text()
        assert r.status == status, (path, r.status, body[:800])
        return body

    async def scalar(self, query: str, *args: object) -> object:
        rows = await self.app.store.run_sync(lambda c: c.execute(query, args).fetchall())  # type: ignore[attr-defined]
        return rows[0][0] if rows else None


@pytest.fixture
async def rig(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Rig]:
    settings = Settings(STUDYBOT_DB=tmp_path / "s.db", STUDYBOT_CONTENT=FIXTURE_PACK)  # type: ignore[call-arg]
    app = await build_app(settings, clock=clock)
    gateway = FakeChatGateway("discord")
    app.gateways["discord"] = gateway
    assert app.dashboard is not None
    app.dashboard.base_url = lambda: "http://dash.test"
    window = Clock()
    parent = web.Application()
    DashboardWeb(app.dashboard, failed_logins=FailedLogins(clock=window)).mount(parent)
    client = TestClient(TestServer(parent))
    await client.start_server()
    try:
        yield Rig(app, client, clock, gateway, window)
    finally:
        await client.close()
        await app.close()


# ---------------------------------------------------------------------- sign-in links and sessions


async def test_the_command_gives_admins_a_private_link_and_refuses_members(rig: Rig) -> None:
    replies = await rig.app.service.handle(rig.inbound("dashboard"))
    assert len(replies) == 1 and replies[0].private
    assert "http://dash.test/dashboard/login/" in replies[0].text and "10 minutes" in replies[0].text
    assert "/study-admin dashboard logout-all signs everyone out" in replies[0].text  # as typed on Discord
    refused = await rig.say("dashboard", user="U9", admin=False)
    assert refused.startswith("Only admins can use /study-admin dashboard")
    assert await rig.scalar("SELECT COUNT(*) FROM dashboard_links") == 1


async def test_only_the_hash_of_a_link_is_stored(rig: Rig) -> None:
    path = await rig.link()
    token = path.rsplit("/", 1)[1]
    stored = await rig.scalar("SELECT token_hash FROM dashboard_links")
    assert token not in str(stored) and len(str(stored)) == 64


async def test_a_link_signs_in_once(rig: Rig) -> None:
    path = await rig.link()
    token = path.rsplit("/", 1)[1]
    assert (await rig.client.get(path)).status == 200  # opening (or a preview fetching) it spends nothing
    first = await rig.client.post(f"{PREFIX}/login", data={"token": token}, allow_redirects=False)
    assert first.status == 303
    cookie = first.cookies[COOKIE]
    assert cookie["httponly"] and cookie["samesite"] == "Strict" and cookie["path"] == PREFIX
    assert not cookie["secure"]  # http public URL; see the https test below
    assert "guild G1" in await rig.page("/")
    rig.client.session.cookie_jar.clear()
    again = await rig.client.post(f"{PREFIX}/login", data={"token": token}, allow_redirects=False)
    assert again.status == 403 and "was used already" in await again.text()
    assert (await rig.client.get(path)).status == 403
    await rig.page("/", status=401)


async def test_an_expired_or_tampered_link_is_refused(rig: Rig) -> None:
    path = await rig.link()
    token = path.rsplit("/", 1)[1]
    tampered = token[:-1] + ("A" if token[-1] != "A" else "B")
    r = await rig.client.post(f"{PREFIX}/login", data={"token": tampered}, allow_redirects=False)
    assert r.status == 403
    rig.clock.advance(minutes=10, seconds=1)
    r = await rig.client.post(f"{PREFIX}/login", data={"token": token}, allow_redirects=False)
    assert r.status == 403 and "expired" in await r.text()
    assert COOKIE not in r.cookies


async def test_a_session_lasts_twelve_hours(rig: Rig) -> None:
    await rig.sign_in()
    rig.clock.advance(hours=11, minutes=59)
    await rig.page("/")
    rig.clock.advance(minutes=2)
    assert "needs you to be signed in" in await rig.page("/", status=401)


async def test_secure_cookie_when_the_public_url_is_https(tmp_path: Path, clock: FakeClock) -> None:
    settings = Settings(STUDYBOT_DB=tmp_path / "s.db", STUDYBOT_CONTENT=FIXTURE_PACK, STUDYBOT_PUBLIC_URL="https://bot.example.org/")  # type: ignore[call-arg]  # fmt: skip
    app = await build_app(settings, clock=clock)
    try:
        await serve_dashboard(app, [])
        assert app.dashboard is not None and app.dashboard.base_url() == "https://bot.example.org"
        reply = await app.service.handle(Inbound("console", "local", "console", "me", "me", "dashboard", is_admin=True))
        m = LINK.search(reply[0].text)
        assert m and m.group(1) == "https://bot.example.org"
        server = next(h.__self__ for h in app.on_close if isinstance(getattr(h, "__self__", None), DashboardServer))
        async with TestClient(TestServer(web.Application())) as c:
            r = await c.session.post(
                f"http://127.0.0.1:{server.bound}{PREFIX}/login", data={"token": m.group(2)}, allow_redirects=False
            )
            assert r.status == 303 and r.cookies[COOKIE]["secure"]
    finally:
        await app.close()


async def test_no_page_without_a_session(rig: Rig) -> None:
    channel = await rig.say("schedule set 09:00")
    assert channel.startswith("✅")
    for path in (
        "/",
        "/schedules",
        "/questions",
        "/members",
        "/content",
        "/export/members.csv",
        "/export/questions.csv",
        "/content/decks/1/add/question",
        "/content/items/1/edit",
        "/content/export/tpm/tpm.yaml",
    ):
        body = await rig.page(path, status=401)
        assert "needs you to be signed in" in body and "members.csv" not in body
    for path in ("/schedules/1", "/logout", "/logout-all", "/content/suggestions/1", "/content/items/1/retire",
                 "/content/decks", "/content/decks/1/add/tip", "/content/items/1/edit", "/content/decks/1/import",
                 "/content/imports/1"):  # fmt: skip
        assert "needs you to be signed in" in await rig.post(path, {"action": "pause", "csrf": "x"}, status=401)
    rig.client.session.cookie_jar.update_cookies({COOKIE: "made-up"})
    await rig.page("/", status=401)
    assert await rig.scalar("SELECT paused FROM schedules") == 0


async def test_logout_and_logout_all(rig: Rig) -> None:
    await rig.sign_in()
    await rig.post("/logout", {"csrf": await rig.csrf()})
    await rig.page("/", status=401)
    await rig.sign_in()
    # A second admin of the group, signed in elsewhere.
    token = (await rig.link(user="U2")).rsplit("/", 1)[1]
    assert rig.app.dashboard is not None and await rig.app.dashboard.sign_in(token) is not None
    ended = await rig.say("dashboard logout-all")
    assert "2 sessions ended" in ended
    await rig.page("/", status=401)
    assert await rig.scalar("SELECT COUNT(*) FROM dashboard_sessions") == 0


async def test_logout_all_from_the_page_ends_the_groups_sessions_only(rig: Rig) -> None:
    await rig.sign_in(group="G2", user="V1")  # another group's session stays
    rig.client.session.cookie_jar.clear()
    await rig.sign_in()
    body = await rig.post("/logout-all", {"csrf": await rig.csrf()})
    assert "1 session of this group ended" in body
    assert await rig.scalar("SELECT COUNT(*) FROM dashboard_sessions") == 1
    await rig.page("/", status=401)


async def test_logout_all_cancels_unused_links(rig: Rig) -> None:
    path = await rig.link()
    await rig.say("dashboard logout-all")
    assert (await rig.client.get(path)).status == 403


# ---------------------------------------------------------------------- the web's own hygiene


async def test_security_headers_on_every_response(rig: Rig) -> None:
    await rig.sign_in()
    for method, path in (("GET", "/"), ("GET", "/schedules"), ("GET", "/nope"), ("GET", "/login/bad"),
                         ("GET", "/static/style.css"), ("DELETE", "/")):  # fmt: skip
        r = await rig.client.request(method, PREFIX + path, allow_redirects=False)
        csp = r.headers["Content-Security-Policy"]
        assert "script-src" not in csp and "default-src 'none'" in csp and "'unsafe-inline'" not in csp, path
        assert r.headers["X-Frame-Options"] == "DENY" and r.headers["Referrer-Policy"] == "no-referrer", path
    for path in ("/", "/schedules", "/questions", "/members", "/content"):
        html = await rig.page(path)
        assert "<script" not in html and " style=" not in html and "onclick" not in html, path


async def test_every_form_carries_the_csrf_token_and_a_wrong_one_changes_nothing(rig: Rig) -> None:
    await rig.say("schedule set 09:00")
    await rig.sign_in()
    html = await rig.page("/schedules")
    forms = re.findall(r"<form[^>]*>.*?</form>", html, re.S)
    assert len(forms) >= 4 and all('name="csrf"' in f for f in forms)
    token = await rig.csrf()
    channel = await rig.scalar("SELECT id FROM channels")
    for bad in ("", "0" * 32, token[:-1] + "x"):
        body = await rig.post(f"/schedules/{channel}", {"action": "pause", "csrf": bad}, status=403)
        assert "not sent from this dashboard session" in body
    assert await rig.scalar("SELECT paused FROM schedules") == 0
    await rig.post(f"/schedules/{channel}", {"action": "pause", "csrf": token})
    assert await rig.scalar("SELECT paused FROM schedules") == 1


async def test_twenty_failed_sign_ins_a_minute_from_one_address_are_refused(rig: Rig) -> None:
    good = (await rig.link()).rsplit("/", 1)[1]
    for n in range(20):
        r = await rig.client.post(f"{PREFIX}/login", data={"token": f"wrong-{n}"}, allow_redirects=False)
        assert r.status == 403
    r = await rig.client.post(f"{PREFIX}/login", data={"token": good}, allow_redirects=False)
    assert r.status == 429 and r.headers["Retry-After"] == "60"
    assert (await rig.client.get(f"{PREFIX}/login/{good}")).status == 429
    rig.window.t += 61  # a minute later the address may try again, and the link was not spent
    r = await rig.client.post(f"{PREFIX}/login", data={"token": good}, allow_redirects=False)
    assert r.status == 303


# ---------------------------------------------------------------------- tenancy


async def test_a_session_reaches_only_its_own_groups_objects(rig: Rig) -> None:
    await rig.say("schedule set 07:15", group="G2", channel="D1", user="V1")
    theirs = await rig.scalar(
        "SELECT c.id FROM channels c JOIN groups g ON g.id = c.group_id WHERE g.external_id = 'G2'"
    )
    await rig.say("schedule set 09:00")
    await rig.sign_in()
    token = await rig.csrf()
    for action in ("pause", "skip", "post-now"):
        body = await rig.post(f"/schedules/{theirs}", {"action": action, "csrf": token}, status=404)
        assert "chan-D1" not in body
    await rig.post(f"/schedules/{theirs}", {"action": "set", "time": "03:00", "csrf": token}, status=404)
    for crafted in ("999999", "-1", "abc", f"{theirs}.0"):
        await rig.post(f"/schedules/{crafted}", {"action": "pause", "csrf": token}, status=404)
    assert await rig.scalar("SELECT local_time || paused FROM schedules WHERE channel_id = ?", theirs) == "07:150"
    assert not rig.gateway.posts
    for path in ("/", "/schedules", "/members", "/questions"):
        body = await rig.page(path)
        assert "chan-D1" not in body and "name-V1" not in body and "07:15" not in body, path
    csv_text = await rig.page("/export/members.csv")
    assert "V1" not in csv_text and "U1" in csv_text


# ---------------------------------------------------------------------- schedules


async def test_schedule_form_uses_the_commands_rules_and_messages(rig: Rig) -> None:
    await rig.say("schedule set 09:00 tz Europe/Berlin days mon-fri")
    await rig.sign_in()
    channel = await rig.scalar("SELECT id FROM channels")
    token = await rig.csrf()
    form = {"csrf": token, "action": "set", "time": "18:30", "tz": "Europe/Berln", "days_shown": "1", "day_mon": "1", "kind": "tip"}  # fmt: skip
    body = await rig.post(f"/schedules/{channel}", form, status=400)
    assert "Unknown time zone &#34;Europe/Berln&#34; — did you mean Europe/Berlin?" in body
    assert 'value="Europe/Berln"' in body, "the form keeps what was typed"
    assert (
        await rig.scalar("SELECT local_time || ' ' || days || ' ' || kind FROM schedules") == "09:00 0,1,2,3,4 question"
    )
    for field, value, message in (
        ("time", "25:00", "is not a time of day — use 24-hour HH:MM"),
        ("reveal", "99", "reveal takes a whole number of hours from 1 to 72"),
        ("kind", "poem", "kind must be question, tip, interview or mix"),
    ):
        body = await rig.post(f"/schedules/{channel}", {**form, "tz": "Europe/Berlin", field: value}, status=400)
        assert message in body, field
    body = await rig.post(f"/schedules/{channel}", {**form, "tz": "Europe/Berlin", "day_mon": ""}, status=400)
    assert "The day set is empty" in body
    body = await rig.post(f"/schedules/{channel}", {**form, "tz": "Europe/Berlin", "thread": "maybe"}, status=400)
    assert "thread takes on or off (got &#34;maybe&#34;)" in body
    body = await rig.post(
        f"/schedules/{channel}", {**form, "tz": "europe/berlin", "day_wed": "1", "reveal": "4", "thread": "on"}
    )
    assert "✅ Daily posts here: 18:30 Europe/Berlin, mon,wed: a career-step tip, answers revealed after 4 h." in body
    assert "🧵 Each post opens a discussion thread" in body  # the native option, saved by the same command
    body = await rig.post(f"/schedules/{channel}", {**form, "tz": "Europe/Berlin", "deck": "nosuch"}, status=400)
    assert "There is no deck &#34;nosuch&#34; here" in body
    assert 'value="nosuch"' in body, "the form keeps what was typed"
    body = await rig.post(
        f"/schedules/{channel}", {**form, "tz": "Europe/Berlin", "deck": "all", "day_wed": "1", "reveal": "4"}
    )
    assert "✅ Daily posts here" in body
    assert await rig.scalar("SELECT local_time || ' ' || days || ' ' || kind || ' ' || reveal_hours FROM schedules") == "18:30 0,2 tip 4"  # fmt: skip


async def test_the_calendar_shows_fourteen_days_and_moves_with_the_schedule(rig: Rig) -> None:
    # Monday 23 Nov 2026, noon UTC; daily at 09:00 in New York.
    await rig.say("schedule set 09:00 tz America/New_York days daily")
    await rig.sign_in()
    html = await rig.page("/schedules")
    days = re.findall(r'<span class="date">([^<]+)</span>', html)
    assert len(days) == 14 and days[0] == "Mon 23 Nov" and days[-1] == "Sun 06 Dec"
    assert len(re.findall(r"<b>09:00</b> #chan-C1", html)) == 14  # today's 09:00 (14:00 UTC) is still ahead
    channel = await rig.scalar("SELECT id FROM channels")
    form = {"csrf": await rig.csrf(), "action": "set", "time": "10:45", "tz": "America/New_York", "days_shown": "1"}
    await rig.post(f"/schedules/{channel}", {**form, "day_tue": "1", "day_thu": "1"})
    html = await rig.page("/schedules")
    assert "<b>09:00</b>" not in html and len(re.findall(r"<b>10:45</b> #chan-C1", html)) == 4


async def test_the_calendar_flags_clock_changes(rig: Rig) -> None:
    rig.clock.current = rig.clock.current.replace(year=2027, month=3, day=20)  # Berlin springs forward 28 Mar
    await rig.say("schedule set 02:30 tz Europe/Berlin days daily")
    await rig.sign_in()
    html = await rig.page("/schedules")
    assert "02:30 does not exist that day (clocks go forward)" in html
    assert html.count('class="post change"') >= 1


async def test_pause_resume_skip_and_post_now(rig: Rig) -> None:
    await rig.say("schedule set 09:00 tz UTC days daily")
    await rig.sign_in()
    channel = await rig.scalar("SELECT id FROM channels")
    token = await rig.csrf()
    assert "⏸️ Daily posts here are paused" in await rig.post(
        f"/schedules/{channel}", {"action": "pause", "csrf": token}
    )
    assert ">Resume<" in await rig.page("/schedules") and "paused" in await rig.page("/")
    assert "▶️ Daily posts here are back on" in await rig.post(
        f"/schedules/{channel}", {"action": "resume", "csrf": token}
    )
    body = await rig.post(f"/schedules/{channel}", {"action": "skip", "csrf": token})
    assert "⏭️ The post of Tue 24 Nov 09:00 UTC" in body and "(skipped)" in body
    body = await rig.post(f"/schedules/{channel}", {"action": "post-now", "csrf": token})
    assert "📣 Posted a" in body
    assert len(rig.gateway.posts) == 1 and rig.gateway.posts[0].channel == "C1"
    assert "Unknown action" in await rig.post(f"/schedules/{channel}", {"action": "drop", "csrf": token}, status=400)


# ---------------------------------------------------------------------- overview, analytics, members


async def _answers(rig: Rig) -> None:
    """Six members answer quiz questions; U1..U3 right, U4..U6 wrong (the fixture pack's answer is read)."""
    pack = rig.app.library.pack
    for n in range(1, 7):
        user = f"U{n}"
        for _ in range(2):
            text = await rig.say("quiz", user=user, admin=False)
            q = next(q for q in pack.questions if q.prompt in text)
            wrong = next(letter for letter in "ABCD" if letter != q.answer)
            await rig.say(f"answer {q.answer if n <= 3 else wrong}", user=user, admin=False)
            rig.clock.advance(seconds=30)


async def test_overview_shows_activity_streaks_and_next_posts(rig: Rig) -> None:
    await rig.say("schedule set 09:00 tz Europe/Berlin days daily")
    await _answers(rig)
    await rig.sign_in()
    html = await rig.page("/")
    assert re.search(r"<b>6</b><span>members</span>", html)  # U1..U6 (U1 is also the admin)
    assert re.search(r"<b>6</b><span>answered this week</span>", html)
    assert re.search(r"<b>12</b><span>answers, last 30 days</span>", html)
    assert "Mon 23 Nov: 12 answers" in html
    assert "<polyline" in html
    assert re.search(r"<th>1–2</th>.*?<td class=\"num\">6</td>", html, re.S)
    assert "#chan-C1" in html and "Tue 24 Nov 09:00 Europe/Berlin" in html


#: The quiz's random seed for `test_question_analytics`: with it, one question comes out too hard and one too easy.
ANALYTICS_SEED = 3


async def test_question_analytics(rig: Rig) -> None:
    rig.app.service.rng.seed(ANALYTICS_SEED)  # which questions the quiz deals (random otherwise)
    await _answers(rig)
    await rig.sign_in()
    html = await rig.page("/questions")
    stats = await rig.app.dashboard.analytics(await _admin(rig))  # type: ignore[union-attr]
    asked = [i for i in stats[0] if i.answers]
    assert sum(i.answers for i in asked) == 12 and sum(i.correct for i in asked) == 6
    for item in asked:
        assert item.avg_seconds is not None and 0 <= item.avg_seconds < 1  # answered right after the quiz
        assert sum(item.picks.values()) == item.answers
    # The top third by points (U1, U2) always right, the bottom third (two of U4..U6) always wrong.
    assert all(i.discrimination in (None, 1.0) for i in asked) and any(i.discrimination == 1.0 for i in asked)
    # Flags: <= 25 % correct is too hard, >= 95 % too easy; the page marks exactly those rows, and a
    # filter shows only its own.
    expected = {i.question_id: ("hard" if i.share <= 0.25 else "easy") for i in asked if not 0.25 < i.share < 0.95}  # type: ignore[operator]
    assert sorted(expected.values()) == ["easy", "hard"], "the seeded answers leave one question of each flag"

    def flagged(page: str) -> dict[str, str]:
        rows = re.findall(r'<tr class="flagged">\s*<td><b>([^<]+)</b>.*?badge warn">too (hard|easy)<', page, re.S)
        return dict(rows)

    assert flagged(html) == expected
    for flag in ("hard", "easy"):
        page = await rig.page(f"/questions?flag={flag}")
        only = {k: v for k, v in expected.items() if v == flag}
        assert flagged(page) == only and page.count("<tr") - 1 == len(only)  # those rows alone (+ the header)


async def _admin(rig: Rig):  # type: ignore[no-untyped-def]
    token = rig.client.session.cookie_jar.filter_cookies(rig.client.make_url(PREFIX + "/"))[COOKIE].value
    return await rig.app.dashboard.session(token)  # type: ignore[union-attr]


async def test_members_table_sorts_and_pages(rig: Rig) -> None:
    await _answers(rig)
    await rig.sign_in()
    html = await rig.page("/members?sort=points&dir=desc")
    names = re.findall(r"<td>(name-U\d)</td>", html)
    assert len(names) == 6 and set(names[:3]) == {"name-U1", "name-U2", "name-U3"}
    html = await rig.page("/members?sort=name&dir=desc")
    assert re.findall(r"<td>(name-U\d)</td>", html) == [f"name-U{n}" for n in range(6, 0, -1)]
    html = await rig.page("/members?sort=evil;DROP&page=-3")
    assert len(re.findall(r"<td>(name-U\d)</td>", html)) == 6
    assert "next →" not in html


async def test_csv_export_is_the_same_as_the_command(rig: Rig) -> None:
    await _answers(rig)
    await rig.sign_in()
    replies = await rig.app.service.handle(rig.inbound("export"))
    files = {a.filename: a.data.decode() for a in replies[0].attachments}
    for name in ("members.csv", "questions.csv"):
        r = await rig.client.get(f"{PREFIX}/export/{name}")
        assert r.status == 200 and r.headers["Content-Disposition"] == f'attachment; filename="{name}"'
        assert await r.text() == files[name]
    rows = list(csv.DictReader(io.StringIO(files["members.csv"])))
    assert len(rows) == 6
    await rig.page("/export/passwords.csv", status=404)


async def test_dashboard_served_beside_the_console_opens_from_the_link(tmp_path: Path, clock: FakeClock) -> None:
    settings = Settings(STUDYBOT_DB=tmp_path / "s.db", STUDYBOT_CONTENT=FIXTURE_PACK, STUDYBOT_HTTP_HOST="127.0.0.1", STUDYBOT_HTTP_PORT=0)  # type: ignore[call-arg]  # fmt: skip
    app = await build_app(settings, clock=clock)
    try:
        assert app.dashboard is not None and app.dashboard.base_url() is None
        text = (
            await app.service.handle(Inbound("console", "local", "console", "me", "me", "dashboard", is_admin=True))
        )[0].text
        assert "not running" in text
        await serve_dashboard(app, [])
        text = (
            await app.service.handle(Inbound("console", "local", "console", "me", "me", "dashboard", is_admin=True))
        )[0].text
        m = LINK.search(text)
        assert m and re.fullmatch(r"http://127\.0\.0\.1:\d+", m.group(1))
        async with TestClient(TestServer(web.Application())) as c:
            r = await c.session.get(f"{m.group(1)}/dashboard/login/{m.group(2)}")
            assert r.status == 200 and "Sign in" in await r.text()
            r = await c.session.post(f"{m.group(1)}/dashboard/login", data={"token": m.group(2)})
            assert r.status == 200 and "Overview" in await r.text() and "console" in await r.text()
    finally:
        await app.close()


async def test_a_busy_port_leaves_the_bot_running_without_the_dashboard(tmp_path: Path, clock: FakeClock) -> None:
    blocker = web.AppRunner(web.Application())
    await blocker.setup()
    site = web.TCPSite(blocker, "127.0.0.1", 0)
    await site.start()
    port = int(blocker.addresses[0][1])
    settings = Settings(STUDYBOT_DB=tmp_path / "s.db", STUDYBOT_CONTENT=FIXTURE_PACK, STUDYBOT_HTTP_PORT=port)  # type: ignore[call-arg]
    app = await build_app(settings, clock=clock)
    try:
        await serve_dashboard(app, [])
        text = (
            await app.service.handle(Inbound("console", "local", "console", "me", "me", "dashboard", is_admin=True))
        )[0].text
        assert "not running" in text
    finally:
        await app.close()
        await blocker.cleanup()


# ---------------------------------------------------------------------- content: decks and suggestions

TIP = '{"text": "Write a one-page brief before you plan any milestone of a project.", "action": "Draft one brief this week for a project you know.", "step": 3}'


async def _suggest(rig: Rig, *, group: str = "G1", user: str = "U7") -> int:
    """A member's suggestion in the queue (what `/study suggest tip` stores once its form is sent)."""
    assert rig.app.dashboard is not None and rig.app.dashboard.suggestions is not None
    await rig.say("help", group=group, user=user, admin=False)  # the member exists
    gid = await rig.scalar("SELECT id FROM groups WHERE external_id = ?", group)
    mid = await rig.scalar("SELECT id FROM members WHERE group_id = ? AND user_id = ?", gid, user)
    sid = await rig.app.dashboard.suggestions.add_suggestion(gid, mid, "tip", TIP, True, rig.clock.now())  # type: ignore[arg-type]
    assert sid is not None
    return sid


async def test_content_page_approves_a_suggestion_into_a_deck_and_retires_an_item(rig: Rig) -> None:
    sid = await _suggest(rig)
    await rig.sign_in()
    html = await rig.page("/content")
    assert f"#{sid} · tip" in html and "by name-U7" in html and "one-page brief" in html
    assert "<b>t-a</b>" in html and "Which letter is right in test question A?" in html  # the built-in deck listed
    body = await rig.post(f"/content/suggestions/{sid}", {"action": "approve", "deck": "", "csrf": await rig.csrf()})
    assert f"✅ Suggestion #{sid} by name-U7 approved" in body
    assert f'id="suggestion-{sid}"' not in body
    html = await rig.page("/content?deck=suggestions")
    item = await rig.scalar("SELECT id FROM deck_items")
    assert f"d:{item}" in html and "one-page brief" in html and ">Retire<" in html
    html = await rig.page("/content?deck=suggestions&q=nothing-like-this")
    assert f"d:{item}" not in html
    body = await rig.post(f"/content/items/{item}/retire?deck=suggestions", {"csrf": await rig.csrf()})
    assert f"Item d:{item} retired" in body
    assert await rig.scalar("SELECT retired_at IS NOT NULL FROM deck_items WHERE id = ?", item) == 1


async def test_denying_a_suggestion_with_a_reason(rig: Rig) -> None:
    sid = await _suggest(rig)
    await rig.sign_in()
    body = await rig.post(
        f"/content/suggestions/{sid}", {"action": "deny", "reason": "we have  this one", "csrf": await rig.csrf()}
    )
    assert f"Suggestion #{sid} by name-U7 denied" in body
    assert (
        await rig.scalar("SELECT status || ' ' || reason FROM suggestions WHERE id = ?", sid)
        == "denied we have this one"
    )


async def test_content_of_another_group_is_out_of_reach(rig: Rig) -> None:
    theirs = await _suggest(rig, group="G2", user="V7")
    await rig.say("help")
    await rig.sign_in()
    html = await rig.page("/content")
    assert "name-V7" not in html and "one-page brief" not in html
    token = await rig.csrf()
    body = await rig.post(f"/content/suggestions/{theirs}", {"action": "approve", "csrf": token}, status=400)
    assert "approved" not in body
    assert await rig.scalar("SELECT status FROM suggestions WHERE id = ?", theirs) == "open"
    # A deck item of the other group cannot be retired from here.
    rig.client.session.cookie_jar.clear()
    await rig.sign_in(group="G2", user="V1")
    await rig.post(f"/content/suggestions/{theirs}", {"action": "approve", "csrf": await rig.csrf()})
    item = await rig.scalar("SELECT id FROM deck_items")
    rig.client.session.cookie_jar.clear()
    await rig.sign_in()
    await rig.post(f"/content/items/{item}/retire", {"csrf": await rig.csrf()}, status=404)
    assert await rig.scalar("SELECT retired_at FROM deck_items WHERE id = ?", item) is None


async def test_a_post_from_another_site_is_refused(rig: Rig) -> None:
    await rig.say("schedule set 09:00")
    link = await rig.link()
    evil = {"Origin": "https://evil.example"}
    r = await rig.client.post(
        f"{PREFIX}/login", data={"token": link.rsplit("/", 1)[1]}, headers=evil, allow_redirects=False
    )
    assert r.status == 403 and COOKIE not in r.cookies
    token = link.rsplit("/", 1)[1]
    r = await rig.client.post(f"{PREFIX}/login", data={"token": token}, allow_redirects=False)
    assert r.status == 303, "the refused attempt did not spend the link"
    channel = await rig.scalar("SELECT id FROM channels")
    for headers in (evil, {"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site", "Origin": "null"}):
        data = {"action": "pause", "csrf": await rig.csrf()}
        r = await rig.client.post(f"{PREFIX}/schedules/{channel}", data=data, headers=headers)
        assert r.status == 403 and "sent from another site" in await r.text(), headers
    assert await rig.scalar("SELECT paused FROM schedules") == 0
    same = {"Origin": str(rig.client.make_url("")).rstrip("/"), "Sec-Fetch-Site": "same-origin"}
    r = await rig.client.post(
        f"{PREFIX}/schedules/{channel}", data={"action": "pause", "csrf": await rig.csrf()}, headers=same
    )
    assert r.status == 200 and await rig.scalar("SELECT paused FROM schedules") == 1


# ---------------------------------------------------------------------- content: add, edit, import, export

QUESTION = {
    "prompt": "Which document fixes what a project will and will not deliver?",
    "choices": "Scope statement\nRisk register\nRACI chart\nBurn-down chart",
    "answer": "a",
    "explanation": "The scope statement says what is in and what is out; the others track other things.",
    "topic": "scope hard",
}


async def _deck(rig: Rig, name: str = "sql", *, group: str = "G1", user: str = "U1") -> int:
    assert (await rig.say(f"deck create {name}", group=group, user=user)).startswith("✅")
    gid = await rig.scalar("SELECT id FROM groups WHERE external_id = ?", group)
    deck = await rig.scalar("SELECT id FROM decks WHERE group_id = ? AND name = ?", gid, name)
    assert isinstance(deck, int)
    return deck


async def test_adding_a_question_from_the_page_checks_it_like_the_command(rig: Rig) -> None:
    deck = await _deck(rig)
    await rig.sign_in()
    html = await rig.page("/content?deck=sql")
    assert f'href="{PREFIX}/content/decks/{deck}/add/question"' in html
    posts = re.findall(r'<form[^>]*method="post".*?</form>', html, re.S)
    assert len(posts) >= 4 and all('name="csrf"' in f for f in posts)  # import, new deck, sign out (x2)
    form = await rig.page(f"/content/decks/{deck}/add/question")
    assert "Four choices, one per line (A, B, C, D)" in form and 'name="csrf"' in form
    token = await rig.csrf()
    bad = {**QUESTION, "csrf": token, "prompt": "Too short", "choices": "Yes\nNo", "topic": "Two words"}
    body = await rig.post(f"/content/decks/{deck}/add/question", bad, status=400)
    # The core's own messages (the same as /study deck add's form), beside their fields ...
    assert "The question needs at least 10 characters (this has 9)." in body
    assert "Exactly four choices, one per line (this has 2)." in body
    assert "One topic word (like risk-and-scope), then optionally easy, medium or hard." in body
    # ... and what the admin typed is kept.
    assert 'value="Too short"' not in body and ">Too short</textarea>" in body
    assert 'value="a"' in body and "Yes\nNo</textarea>" in body
    assert await rig.scalar("SELECT COUNT(*) FROM deck_items") == 0
    # The chat form says the same about the same values.
    replies = await rig.app.service.handle(
        Inbound(
            "discord",
            "G1",
            "C1",
            "U1",
            "name-U1",
            action=f"sb:form:deck-add:q-{deck}",
            is_admin=True,
            values={k: v for k, v in bad.items() if k != "csrf"},
        )
    )
    assert replies[0].form is not None and replies[0].form.errors["prompt"] in body
    body = await rig.post(f"/content/decks/{deck}/add/question", {**QUESTION, "csrf": token})
    item = await rig.scalar("SELECT id FROM deck_items")
    assert f"✅ Added to deck &#34;sql&#34; as item d:{item} (question-1)." in body
    assert "Which document fixes what a project will and will not deliver?" in body  # the deck's list
    assert await rig.scalar("SELECT answer || ' ' || topic || ' ' || difficulty FROM deck_items") == "A scope 3"


async def test_adding_a_tip_and_member_text_is_escaped(rig: Rig) -> None:
    deck = await _deck(rig)
    await rig.sign_in()
    tip = {"text": "<b>@everyone</b> write a one-page brief before any plan.", "action": "Draft one brief <i>now</i>.",
           "step": "3", "csrf": await rig.csrf()}  # fmt: skip
    body = await rig.post(f"/content/decks/{deck}/add/tip", tip)
    assert "✅ Added to deck" in body and "<b>@everyone</b>" not in body and "&lt;b&gt;@everyone&lt;/b&gt;" in body
    assert await rig.scalar("SELECT text FROM deck_items") == tip["text"]


async def test_editing_an_item_keeps_its_id_answers_and_reviews(rig: Rig) -> None:
    deck = await _deck(rig)
    await rig.sign_in()
    await rig.post(f"/content/decks/{deck}/add/question", {**QUESTION, "csrf": await rig.csrf()})
    item = await rig.scalar("SELECT id FROM deck_items")
    html = await rig.page("/content?deck=sql")
    assert f'href="{PREFIX}/content/items/{item}/edit"' in html
    form = await rig.page(f"/content/items/{item}/edit")
    assert ">Which document fixes what a project will and will not deliver?</textarea>" in form
    assert 'value="scope hard"' in form and 'value="A"' in form
    token = await rig.csrf()
    body = await rig.post(f"/content/items/{item}/edit", {**QUESTION, "answer": "E", "csrf": token}, status=400)
    assert "One letter: A, B, C or D." in body and 'value="E"' in body
    assert await rig.scalar("SELECT answer FROM deck_items") == "A"
    body = await rig.post(f"/content/items/{item}/edit", {**QUESTION, "answer": "b", "topic": "", "csrf": token})
    assert f"✅ Changed question-1 (item d:{item}); its answers and reviews stay." in body
    assert await rig.scalar("SELECT id || ' ' || answer || ' ' || topic FROM deck_items") == f"{item} B general"
    # A retired item has no form any more: the command's message, nothing saved.
    await rig.post(f"/content/items/{item}/retire", {"csrf": token})
    body = await rig.post(f"/content/items/{item}/edit", {**QUESTION, "csrf": token}, status=400)
    assert "not a live item" in body and await rig.scalar("SELECT answer FROM deck_items") == "B"


async def test_a_card_is_added_and_edited_on_the_page_with_the_card_forms_rules(rig: Rig) -> None:
    deck = await _deck(rig)
    theirs = await _deck(rig, "theirs", group="G2", user="V1")
    await rig.sign_in()
    html = await rig.page("/content?deck=sql")
    assert f'href="{PREFIX}/content/decks/{deck}/add/card"' in html
    form = await rig.page(f"/content/decks/{deck}/add/card")
    assert '<textarea id="f-front" name="front"' in form and 'maxlength="2000"' in form and 'name="tags"' in form
    token = await rig.csrf()
    card = {"front": "<b>@everyone</b> how do you say no to a sponsor?", "back": "- the why\n- an alternative",
            "topic": "stakeholders", "tags": "conflict, sponsors", "source": "", "csrf": token}  # fmt: skip
    # Bad inputs: an empty front, a back past 2,000 characters (the browser's maxlength is only a hint), a
    # topic of two words: each beside its field, what was typed kept, nothing saved.
    body = await rig.post(f"/content/decks/{deck}/add/card", {**card, "front": " ", "back": "x" * 2001}, status=400)
    assert "This field is required." in body and "At most 2000 characters (this has 2001)." in body
    body = await rig.post(f"/content/decks/{deck}/add/card", {**card, "topic": "Two Words"}, status=400)
    assert "A topic is one word" in body and 'value="Two Words"' in body and "&lt;b&gt;@everyone" in body
    assert await rig.scalar("SELECT COUNT(*) FROM deck_items") == 0
    body = await rig.post(f"/content/decks/{deck}/add/card", card)
    assert "✅ Added to deck &#34;sql&#34; as item d:1 (card-1)." in body and "<b>@everyone</b>" not in body
    item = await rig.scalar("SELECT id FROM deck_items WHERE slug = 'card-1'")

    html = await rig.page("/content?deck=sql")
    assert f'href="{PREFIX}/content/items/{item}/edit"' in html and "export and import" not in html
    form = await rig.page(f"/content/items/{item}/edit")
    assert 'value="conflict sponsors"' in form and 'value="stakeholders"' in form and 'value="general"' in form
    body = await rig.post(f"/content/items/{item}/edit", {**card, "topic": "", "tags": "", "source": "notes#3"})
    assert f"✅ Changed card-1 (item d:{item}); its practice attempts and reviews stay." in body
    assert await rig.scalar("SELECT id || ' ' || COALESCE(topic, '-') || ' ' || source FROM deck_items") == (
        f"{item} - notes#3"
    )
    # Another group's deck and this group's card id crafted into it: out of reach.
    await rig.page(f"/content/decks/{theirs}/add/card", status=404)
    await rig.post(f"/content/decks/{theirs}/add/card", card, status=404)
    assert await rig.scalar("SELECT COUNT(*) FROM deck_items") == 1


async def test_items_and_decks_of_another_group_cannot_be_added_to_or_edited(rig: Rig) -> None:
    theirs = await _deck(rig, "theirs", group="G2", user="V1")
    await rig.app.service.handle(
        Inbound(
            "discord",
            "G2",
            "D1",
            "V1",
            "V",
            action=f"sb:form:deck-add:q-{theirs}",
            is_admin=True,
            values={k: v for k, v in QUESTION.items()},
        )
    )
    item = await rig.scalar("SELECT id FROM deck_items")
    assert item is not None
    await rig.say("help")
    await rig.sign_in()
    token = await rig.csrf()
    await rig.page(f"/content/decks/{theirs}/add/question", status=404)
    await rig.post(f"/content/decks/{theirs}/add/question", {**QUESTION, "csrf": token}, status=404)
    await rig.page(f"/content/items/{item}/edit", status=404)
    await rig.post(f"/content/items/{item}/edit", {**QUESTION, "answer": "D", "csrf": token}, status=404)
    for crafted in ("abc", "-1", "99999999999999999999", "1.0"):
        await rig.page(f"/content/items/{crafted}/edit", status=404)
        await rig.page(f"/content/decks/{crafted}/add/tip", status=404)
    mine = await _deck(rig)
    await rig.page(f"/content/decks/{mine}/add/flashcard", status=404)
    assert await rig.scalar("SELECT COUNT(*) || answer FROM deck_items") == "1A"
    # Without the form's token nothing is added either.
    await rig.post(f"/content/decks/{mine}/add/question", {**QUESTION, "csrf": "x" * 32}, status=403)
    assert await rig.scalar("SELECT COUNT(*) FROM deck_items") == 1


async def test_creating_a_deck_from_the_page(rig: Rig) -> None:
    await rig.say("help")
    await rig.sign_in()
    token = await rig.csrf()
    body = await rig.post("/content/decks", {"name": "SQL: basics", "description": "joins", "csrf": token}, status=400)
    assert "&#34;sql:-basics&#34; is not a deck name: 1-32 lower-case letters, digits and dashes" in body
    assert 'value="joins"' in body
    body = await rig.post("/content/decks", {"name": "tpm", "csrf": token}, status=400)
    assert "reserved" in body
    body = await rig.post("/content/decks", {"name": "sql", "description": "Joins  and keys", "csrf": token})
    assert "✅ Deck sql created." in body and "Add a question" in body
    assert await rig.scalar("SELECT name || ': ' || description FROM decks") == "sql: Joins and keys"
    body = await rig.post("/content/decks", {"name": "sql", "csrf": token}, status=400)
    assert "There is already a deck" in body
    # Words become one name joined by dashes, as the core's deck names are (and as Discord joins them).
    body = await rig.post("/content/decks", {"name": "SQL  basics", "csrf": token})
    assert "✅ Deck sql-basics created." in body, body[-2000:]


HEADER = "prompt,A,B,C,D,answer,explanation,topic,difficulty"
ROW = "What does a burndown chart show?,Work left over time,Team mood,Budget spent,Bug count,A,It plots the work remaining against the days left in the sprint.,agile,1"
ROW2 = "Which meeting reviews the finished sprint?,Sprint review,Stand-up,Planning,Grooming,A,The sprint review shows the finished increment to stakeholders.,agile,2"


def _csv(*rows: str) -> bytes:
    return ("\n".join([HEADER, *rows]) + "\n").encode("utf-8")


async def _upload(rig: Rig, deck: int, name: str, data: bytes, status: int = 200, csrf: str | None = None) -> str:
    form = aiohttp.FormData()
    form.add_field("csrf", await rig.csrf() if csrf is None else csrf)
    form.add_field("file", data, filename=name, content_type="application/octet-stream")
    r = await rig.client.post(f"{PREFIX}/content/decks/{deck}/import", data=form, allow_redirects=False)
    body = await r.text()
    assert r.status == status, (r.status, body[:800])
    return body


def _confirm_id(body: str) -> str:
    m = re.search(rf'action="{PREFIX}/content/imports/(\d+)"', body)
    assert m, body[:2000]
    return m.group(1)


async def test_importing_a_file_shows_the_commands_dry_run_and_confirm_writes_it(rig: Rig) -> None:
    deck = await _deck(rig)
    await rig.sign_in()
    html = await rig.page("/content?deck=sql")
    upload = re.search(r'<form[^>]*enctype="multipart/form-data"[^>]*>.*?</form>', html, re.S)
    assert upload and upload.group(0).index('name="csrf"') < upload.group(0).index('type="file"')
    body = await _upload(rig, deck, "mine.csv", _csv(ROW, ROW2))
    # The command's own dry run for the same file, as a chat admin would see it.
    chat = await rig.app.service.handle(
        Inbound(
            "discord",
            "G1",
            "C1",
            "U2",
            "name-U2",
            "deck import sql",
            is_admin=True,
            files=(Attachment("mine.csv", _csv(ROW, ROW2)),),
        )
    )
    assert "2 new, 0 changed, 0 problems" in chat[0].text and "2 new, 0 changed, 0 problems" in body
    assert "Dry run: mine.csv → deck sql" in body and "Nothing is written until you confirm" in body
    assert await rig.scalar("SELECT COUNT(*) FROM deck_items") == 0
    pending = _confirm_id(body)
    token = await rig.csrf()
    body = await rig.post(f"/content/imports/{pending}", {"action": "confirm", "deck": "sql", "csrf": token})
    assert "✅ Imported: 2 new, 0 changed (0 unchanged)." in body and "What does a burndown chart show?" in body
    assert await rig.scalar("SELECT COUNT(*) FROM deck_items") == 2
    body = await rig.post(f"/content/imports/{pending}", {"action": "confirm", "csrf": token}, status=400)
    assert "not waiting any more" in body and await rig.scalar("SELECT COUNT(*) FROM deck_items") == 2
    # One changed row: 1 changed; Cancel writes nothing.
    body = await _upload(rig, deck, "mine.csv", _csv(ROW, ROW2.replace("to stakeholders", "to the stakeholders")))
    assert "0 new, 1 changed, 0 problems (1 unchanged)" in body
    body = await rig.post(f"/content/imports/{_confirm_id(body)}", {"action": "cancel", "deck": "sql", "csrf": token})
    assert "Import cancelled; nothing was written." in body
    assert await rig.scalar("SELECT COUNT(*) FROM deck_items WHERE explanation LIKE '%the stakeholders%'") == 0


async def test_an_import_with_problems_or_a_corrupt_file_writes_nothing(rig: Rig) -> None:
    deck = await _deck(rig)
    await rig.sign_in()
    body = await _upload(rig, deck, "mine.csv", _csv(ROW, ROW2.replace(",A,The sprint", ",E,The sprint")), status=400)
    assert "1 problem" in body and "3:answer:" in body and "Nothing was written. Fix the file" in body
    assert "Confirm import" not in body
    body = await _upload(rig, deck, "mine.yaml", b"questions: [unclosed\n  - : :", status=400)
    assert "Nothing was written" in body and "Confirm import" not in body
    body = await _upload(rig, deck, "notes.apkg", b"PK\x03\x04 this is no zip at all", status=400)
    assert "Nothing was imported." in body and "Confirm import" not in body
    body = await _upload(rig, deck, "empty.csv", b"", status=400)
    assert "is empty" in body, body[-1500:]
    assert await rig.scalar("SELECT COUNT(*) FROM deck_items") == 0
    assert await rig.scalar("SELECT COUNT(*) FROM deck_imports") == 0


async def test_oversized_uploads_get_the_commands_limits(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    deck = await _deck(rig)
    await rig.sign_in()
    # Over aiohttp's 1 MiB client_max_size and the 1 MB deck limit: the command's message, not a bare 413.
    body = await _upload(rig, deck, "big.yaml", b"#" * 1_200_000, status=400)
    assert "That file is 1,200,000 bytes; the limit is 1 MB (1,000,000 bytes). Nothing was imported." in body
    # Over the largest file the command takes (Anki's): only counted, and refused by its size.
    assert dashboard_web.UPLOAD_MAX == 10 * 1024 * 1024
    body = await _upload(rig, deck, "big.apkg", b"PK\x03\x04" + b"0" * 11_000_000, status=400)
    assert "That file is 11,000,004 bytes; the limit for Anki files is 10 MB (export without media)." in body
    # Far over it: refused from its Content-Length before the body is read.
    monkeypatch.setattr(dashboard_web, "UPLOAD_REFUSED", 3_000_000)
    body = await _upload(rig, deck, "huge.csv", b"x" * 3_500_000, status=413)
    assert "Nothing was imported." in body
    assert await rig.scalar("SELECT COUNT(*) FROM deck_imports") == 0


async def test_an_upload_needs_the_csrf_token_before_its_file(rig: Rig) -> None:
    deck = await _deck(rig)
    await rig.sign_in()
    body = await _upload(rig, deck, "mine.csv", _csv(ROW), status=403, csrf="0" * 32)
    assert "not sent from this dashboard session" in body
    form = aiohttp.FormData()  # the file first, the token after it: refused before the file is read
    form.add_field("file", _csv(ROW), filename="mine.csv")
    form.add_field("csrf", await rig.csrf())
    r = await rig.client.post(f"{PREFIX}/content/decks/{deck}/import", data=form)
    assert r.status == 403
    r = await rig.client.post(f"{PREFIX}/content/decks/{deck}/import", data={"csrf": await rig.csrf()})
    assert r.status == 400 and "could not be read" in await r.text()  # not multipart at all
    assert await rig.scalar("SELECT COUNT(*) FROM deck_imports") == 0


async def test_imports_of_another_group_are_out_of_reach(rig: Rig) -> None:
    theirs = await _deck(rig, "theirs", group="G2", user="V1")
    dry = await rig.app.service.handle(
        Inbound(
            "discord",
            "G2",
            "D1",
            "V1",
            "V",
            "deck import theirs",
            is_admin=True,
            files=(Attachment("t.csv", _csv(ROW)),),
        )
    )
    pending = await rig.scalar("SELECT id FROM deck_imports")
    assert dry[0].buttons and pending is not None
    mine = await _deck(rig)
    await rig.sign_in()
    await _upload(rig, theirs, "mine.csv", _csv(ROW, ROW2), status=404)
    body = await rig.post(f"/content/imports/{pending}", {"action": "confirm", "csrf": await rig.csrf()}, status=400)
    assert "not waiting any more" in body
    assert await rig.scalar("SELECT COUNT(*) FROM deck_items") == 0
    await rig.page("/content/export/theirs/theirs.yaml", status=404)
    await rig.page(f"/content/decks/{mine}/import", status=405)


async def test_export_downloads_the_commands_files(rig: Rig) -> None:
    deck = await _deck(rig)
    await rig.sign_in()
    body = await _upload(rig, deck, "mine.csv", _csv(ROW, ROW2))
    await rig.post(f"/content/imports/{_confirm_id(body)}", {"action": "confirm", "csrf": await rig.csrf()})
    html = await rig.page("/content?deck=sql")
    assert f'href="{PREFIX}/content/export/sql/sql.yaml"' in html
    replies = await rig.app.service.handle(rig.inbound("deck export sql"))
    expected = replies[0].attachments[0]
    r = await rig.client.get(f"{PREFIX}/content/export/sql/sql.yaml")
    assert r.status == 200 and await r.read() == expected.data
    assert r.headers["Content-Disposition"] == 'attachment; filename="sql.yaml"'
    replies = await rig.app.service.handle(rig.inbound("deck export sql csv"))
    r = await rig.client.get(f"{PREFIX}/content/export/sql/sql-questions.csv")
    assert r.status == 200 and await r.read() == replies[0].attachments[0].data
    r = await rig.client.get(f"{PREFIX}/content/export/tpm/tpm.yaml")
    assert r.status == 200 and b"questions:" in await r.read()
    for path in ("/content/export/sql/other.yaml", "/content/export/nope/nope.yaml", "/content/export/..%2F/x.yaml"):
        await rig.page(path, status=404)


async def test_schedule_form_sets_the_ping_role_and_shows_each_channels_settings(rig: Rig) -> None:
    await _deck(rig)
    assert (await rig.say("schedule set 09:00 deck sql thread on ping <@&555>")).startswith("✅")
    await rig.say("help", channel="C2")  # a channel without a schedule: the defaults
    await rig.sign_in()
    html = await rig.page("/schedules")
    channel = await rig.scalar("SELECT id FROM channels WHERE external_id = 'C1'")
    card = html[html.index(f'id="channel-{channel}"') :]
    assert "Deck <b>sql</b> · discussion thread <b>on</b> · pings <b>role 555</b>" in card
    assert 'name="ping" ' in card and 'value="555"' in card and 'value="sql"' in card
    assert '<option value="on" selected>' in card
    other = html[html.index("#chan-C2") :]
    assert "Deck <b>tpm</b> · discussion thread <b>off</b>" in other and "pings <b>no one</b>" in other
    form = {"csrf": await rig.csrf(), "action": "set", "time": "09:00", "days_shown": "1", "day_mon": "1",
            "deck": "sql", "thread": "on", "ping_shown": "1"}  # fmt: skip
    body = await rig.post(f"/schedules/{channel}", {**form, "ping": "Learners"}, status=400)
    assert "&#34;Learners&#34; is not a role" in body and 'value="Learners"' in body  # the command's message
    assert await rig.scalar("SELECT ping_role FROM channel_options") == "555"
    body = await rig.post(f"/schedules/{channel}", {**form, "ping": "<@&777>"})
    assert "🔔 Each post mentions" in body and "pings <b>role 777</b>" in body
    assert await rig.scalar("SELECT ping_role FROM channel_options") == "777"
    body = await rig.post(f"/schedules/{channel}", {**form, "ping": "", "thread": "off"})
    assert await rig.scalar("SELECT COALESCE(ping_role, '-') || thread FROM channel_options") == "-0"
    assert "pings <b>no one</b>" in body and "discussion thread <b>off</b>" in body


async def test_the_schedule_form_has_no_ping_on_slack(rig: Rig) -> None:
    def slack(text: str) -> Inbound:
        return Inbound("slack", "T1", "C9", "W1", "w", text, is_admin=True, group_name="ws", channel_name="general")

    await rig.app.service.handle(slack("schedule set 09:00 thread on"))
    m = LINK.search((await rig.app.service.handle(slack("dashboard")))[0].text)
    assert m
    r = await rig.client.post(f"{PREFIX}/login", data={"token": m.group(2)}, allow_redirects=False)
    assert r.status == 303
    html = await rig.page("/schedules")
    assert 'name="ping"' not in html and "pings" not in html
    assert "A post can ping one role on Discord only" in html and "discussion thread <b>on</b>" in html
    channel = await rig.scalar("SELECT id FROM channels")
    form = {
        "csrf": await rig.csrf(),
        "action": "set",
        "time": "10:00",
        "days_shown": "1",
        "day_tue": "1",
        "thread": "on",
    }
    body = await rig.post(f"/schedules/{channel}", form)
    assert "✅ Daily posts here: 10:00" in body and await rig.scalar("SELECT ping_role FROM channel_options") is None


async def test_a_sign_in_link_computes_the_analytics_ahead(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first analytics of a process read every answer: handing out a link starts them, so the admin's
    Questions page finds them kept (no second full read)."""
    await _answers(rig)
    dashboard = rig.app.dashboard
    assert dashboard is not None
    full_reads: list[int] = []
    read_all = dashboard.store.analytics_base

    async def counted(group_id: int, settle_before: datetime) -> AnalyticsBase:
        full_reads.append(group_id)
        return await read_all(group_id, settle_before)

    monkeypatch.setattr(dashboard.store, "analytics_base", counted)
    await rig.sign_in()
    admin = await _admin(rig)
    for _ in range(500):  # the computation runs beside the sign-in; give it up to 5 s to start
        if full_reads:
            break
        await asyncio.sleep(0.01)
    assert full_reads == [admin.group_id]
    html = await rig.page("/questions")
    assert full_reads == [admin.group_id]
    assert "Question analytics" in html


async def test_a_deck_questions_figures_show_it_with_its_right_answer(rig: Rig) -> None:
    """Questions of the group's own decks are analysed like the shipped ones: with their prompt, and the
    right letter not counted among the wrong picks (they were shown as 'no longer in the pack')."""
    deck = await _deck(rig)
    await rig.sign_in()
    await rig.post(f"/content/decks/{deck}/add/question", {**QUESTION, "csrf": await rig.csrf()})
    for user, letter in (("U2", "A"), ("U3", "B")):
        quiz = await rig.app.service.handle(rig.inbound("quiz sql", user=user, admin=False))
        [click] = [b.action_id for r in quiz for b in r.buttons if b.action_id.endswith(f":{letter}")]
        await rig.app.service.handle(replace(rig.inbound("", user=user, admin=False), action=click))
    html = await rig.page("/questions?fresh=1")
    row = html[html.index("<b>d:") :].split("</tr>")[0]
    assert "Which document fixes what a project will and will not deliver?" in row, row
    assert "no longer in the pack" not in row and "A 1" not in row and "B 1" in row, row
