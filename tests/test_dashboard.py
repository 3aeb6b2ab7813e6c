"""The web dashboard through its real HTTP handlers (aiohttp's test client over loopback), on a real
SQLite file: sign-in links, sessions, CSRF, tenancy, the rate limit, headers and every page."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot.adapters.dashboard import COOKIE, PREFIX, DashboardServer, DashboardWeb, FailedLogins
from bot.bootstrap import App, build_app, serve_dashboard
from bot.config import Settings
from bot.core.messages import Inbound
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
    ):
        body = await rig.page(path, status=401)
        assert "needs you to be signed in" in body and "members.csv" not in body
    for path in ("/schedules/1", "/logout", "/logout-all", "/content/suggestions/1", "/content/items/1/retire"):
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


async def test_question_analytics(rig: Rig) -> None:
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
    assert "too hard" in html or "too easy" in html or all(0.25 < (i.share or 0) < 0.95 for i in asked)
    hard = await rig.page("/questions?flag=hard")
    assert all("too easy" not in row for row in re.findall(r"<tr class=\"flagged\">.*?</tr>", hard, re.S))


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
    assert "steps-001" in html or "<b>" in html  # the built-in deck's items are listed
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
