"""The admin web dashboard: an aiohttp sub-application under ``/dashboard``, pages from Jinja2 templates.

An adapter like the chat ones: a request becomes a call on `bot.core.dashboard.Dashboard` (which reuses
the `/study` commands for every change) and the answer becomes a page. No business rules live here; what
does live here is the web's own hygiene:

* no page without a session cookie (HttpOnly, SameSite=Strict, Secure when the public URL is https);
* a CSRF token in every form, checked on every POST;
* at most `MAX_FAILED_LOGINS` failed sign-ins per address per minute (more are refused, 429);
* security headers on every response: a CSP that allows no script at all, ``X-Frame-Options: DENY``,
  ``Referrer-Policy: no-referrer`` (the sign-in page's URL holds the token), no caching.

`DashboardWeb.mount` adds it to an existing aiohttp application (Slack's HTTP server); `DashboardServer`
runs it on its own server when there is none (console, Discord, Socket Mode).
"""

from __future__ import annotations

import collections
import hmac
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import jinja2
from aiohttp import BodyPartReader, web

from bot import anki
from bot.core import actions, forms, markup
from bot.core.content import LETTERS
from bot.core.dashboard import MEMBER_SORTS, SESSION_TTL, Admin, Dashboard, csrf_token
from bot.core.decks import DECK_NAME
from bot.core.messages import Attachment, Reply
from bot.core.schedule import KINDS

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
PREFIX = "/dashboard"
COOKIE = "studybot_dashboard"
MAX_FAILED_LOGINS = 20
FAILED_LOGIN_WINDOW = 60.0
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}
ADMIN_KEY = web.RequestKey("studybot.admin", Admin)
SESSION_KEY = web.RequestKey("studybot.session", str)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: An upload is read up to this (see `anki.UPLOAD_MAX_BYTES`), and the core refuses what is over its
#: format's limit with the command's message.
UPLOAD_MAX = anki.UPLOAD_MAX_BYTES
#: An upload larger than this is refused from its Content-Length, before its body is read.
UPLOAD_REFUSED = 4 * UPLOAD_MAX
#: Routes whose POST is a file upload: the handler reads the body as a stream (checking the CSRF token,
#: sent first, before the file), so aiohttp's ``client_max_size`` (1 MiB) does not cut it short.
UPLOADS = ("/content/decks/{deck_id}/import",)
#: The forms of the core a page may fill in (`bot.core.deck_add`), by the kind a URL names.
ITEM_KINDS = ("question", "tip", "card")

#: Schedule actions a form may ask for, and the `/study` command each one is.
ACTIONS = {
    "pause": "schedule pause",
    "resume": "schedule resume",
    "skip": "schedule skip",
    "post-now": "schedule post-now",
}


def _html_text(text: str) -> str:
    """A core reply as plain text (names as they are; the template escapes everything)."""
    return markup.render(text, lambda s: s, lambda t: t.replace("**", "").replace("`", ""))


def _admin(request: web.Request) -> Admin:
    return request[ADMIN_KEY]


def _session(request: web.Request) -> str:
    return request[SESSION_KEY]


class FailedLogins:
    """Failed sign-ins per client address in a sliding window; `blocked` once there were ``limit``."""

    def __init__(
        self,
        limit: int = MAX_FAILED_LOGINS,
        window: float = FAILED_LOGIN_WINDOW,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self._seen: dict[str, collections.deque[float]] = {}

    def _recent(self, address: str) -> collections.deque[float]:
        times = self._seen.setdefault(address, collections.deque())
        cutoff = self.clock() - self.window
        while times and times[0] <= cutoff:
            times.popleft()
        return times

    def blocked(self, address: str) -> bool:
        blocked = len(self._recent(address)) >= self.limit
        if not self._seen.get(address):
            self._seen.pop(address, None)
        return blocked

    def failed(self, address: str) -> None:
        if len(self._seen) > 100_000:  # bounded memory under a spray of addresses
            self._seen.clear()
        self._recent(address).append(self.clock())


class DashboardWeb:
    """The dashboard's aiohttp sub-application. ``secure_cookies``: mark the cookie Secure (https)."""

    def __init__(
        self,
        dashboard: Dashboard,
        *,
        secure_cookies: bool = False,
        failed_logins: FailedLogins | None = None,
        public_url: str | None = None,
    ) -> None:
        self.dashboard = dashboard
        self.secure_cookies = secure_cookies
        #: Hosts a form may be sent from (besides the request's own Host): the public URL's.
        self.public_hosts = {urlsplit(public_url).netloc} if public_url else set()
        self.failed_logins = failed_logins or FailedLogins()
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"),
            autoescape=True,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters["pct"] = lambda v: "–" if v is None else f"{v * 100:.0f}%"
        self.env.filters["plain"] = _html_text  # core text (marks, **bold**) as plain text; escaped as usual
        self.stylesheet = (HERE / "static" / "style.css").read_bytes()

    # -------------------------------------------------------------- wiring

    def app(self) -> web.Application:
        """A new sub-application with every route, to be mounted at `PREFIX`."""
        sub = web.Application(middlewares=[self._headers, self._sessions])
        sub.router.add_get("/static/style.css", self.style)
        sub.router.add_get("/login/{token}", self.login_page)
        sub.router.add_post("/login", self.login)
        sub.router.add_post("/logout", self.logout)
        sub.router.add_post("/logout-all", self.logout_all)
        sub.router.add_get("/", self.overview)
        sub.router.add_get("/schedules", self.schedules)
        sub.router.add_post("/schedules/{channel_id}", self.schedule_change)
        sub.router.add_get("/questions", self.questions)
        sub.router.add_get("/members", self.members)
        sub.router.add_get("/export/{name}", self.export)
        sub.router.add_get("/content", self.content)
        sub.router.add_post("/content/suggestions/{suggestion_id}", self.suggestion)
        sub.router.add_post("/content/items/{item_id}/retire", self.retire)
        sub.router.add_route("*", "/content/decks/{deck_id}/add/{kind}", self.item_add)
        sub.router.add_route("*", "/content/items/{item_id}/edit", self.item_edit)
        sub.router.add_post("/content/decks", self.deck_create)
        sub.router.add_post("/content/decks/{deck_id}/import", self.deck_import)
        sub.router.add_post("/content/imports/{import_id}", self.import_decision)
        sub.router.add_get("/content/export/{deck}/{filename}", self.deck_export)
        return sub

    def mount(self, parent: web.Application) -> None:
        """Serve the dashboard under `PREFIX` of ``parent`` (``/dashboard`` itself redirects to ``/dashboard/``)."""

        async def to_slash(_: web.Request) -> web.StreamResponse:
            raise web.HTTPFound(PREFIX + "/")

        parent.router.add_get(PREFIX, to_slash)
        parent.add_subapp(PREFIX, self.app())

    # -------------------------------------------------------------- middlewares

    @web.middleware
    async def _headers(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        response: web.StreamResponse
        try:
            response = await handler(request)
        except web.HTTPException as e:
            # Our 404s and aiohttp's own (no such route, 405) get a page of ours instead of plain text.
            messages = {
                404: "There is nothing here (or it belongs to another group).",
                405: "Not allowed here.",
                413: "That form was larger than the dashboard accepts; nothing was changed.",
            }
            message = messages.get(e.status, "That request was not understood.")
            response = self._page(None, "error.html", status=e.status, title=e.reason, message=message)
        except Exception:
            log.exception("dashboard: error serving %s %s", request.method, request.path)
            response = self._page(None, "error.html", status=500, title="Something went wrong")
        response.headers.update(SECURITY_HEADERS)
        return response

    def _foreign(self, request: web.Request) -> bool:
        """A POST whose browser says it comes from another site (``Origin``): refused before anything else,
        sign-in included (a forged sign-in would put the victim in the attacker's group)."""
        if request.method != "POST":
            return False
        # Browsers say where a request comes from; our own forms are same-origin. (With Referrer-Policy
        # no-referrer, Chromium sends ``Origin: null`` even for them, so null proves nothing either way.)
        if request.headers.get("Sec-Fetch-Site", "same-origin") in ("cross-site", "same-site"):
            return True
        origin = request.headers.get("Origin", "null")
        return origin != "null" and urlsplit(origin).netloc not in {request.host, *self.public_hosts}

    @web.middleware
    async def _sessions(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Every page but sign-in and the stylesheet needs a live session; every POST its CSRF token; no
        POST from another site."""
        if self._foreign(request):
            return self._page(None, "error.html", status=403, title="Not from this site",
                              message="That form was sent from another site. Open the dashboard and try again.")  # fmt: skip
        name = request.match_info.route.resource.canonical if request.match_info.route.resource else ""
        if name.endswith(("/login", "/login/{token}", "/static/style.css")):
            return await handler(request)
        token = request.cookies.get(COOKIE, "")
        admin = await self.dashboard.session(token) if token else None
        if admin is None:
            response = self._page(None, "signed_out.html", status=401, title="Sign in")
            if token:
                response.del_cookie(COOKIE, path=PREFIX)
            return response
        request[ADMIN_KEY] = admin
        request[SESSION_KEY] = token
        if request.method == "POST" and name.endswith(UPLOADS):
            return await handler(request)  # the handler checks the token before it reads the file
        if request.method == "POST":
            form = await request.post()
            sent = str(form.get("csrf", ""))
            if not hmac.compare_digest(sent, csrf_token(token)):
                return self._expired(admin)
        return await handler(request)

    def _expired(self, admin: Admin) -> web.Response:
        return self._page(admin, "error.html", status=403, title="Form expired", csrf="",
                          message="That form was not sent from this dashboard session. Reload the page and try again.")  # fmt: skip

    # -------------------------------------------------------------- rendering

    def _page(
        self, admin: Admin | None, template: str, *, status: int = 200, csrf: str = "", **context: Any
    ) -> web.Response:
        body = self.env.get_template(template).render(admin=admin, csrf=csrf, prefix=PREFIX, **context)
        return web.Response(text=body, status=status, content_type="text/html", charset="utf-8")

    def _render(self, request: web.Request, template: str, **context: Any) -> web.Response:
        admin = _admin(request)
        return self._page(admin, template, csrf=csrf_token(_session(request)), **context)

    @staticmethod
    def _address(request: web.Request) -> str:
        return request.remote or "unknown"

    # -------------------------------------------------------------- sign-in

    async def style(self, _: web.Request) -> web.Response:
        return web.Response(body=self.stylesheet, content_type="text/css", charset="utf-8")

    def _too_many(self, request: web.Request) -> web.Response | None:
        if self.failed_logins.blocked(self._address(request)):
            response = self._page(None, "error.html", status=429, title="Too many attempts",
                                  message="Too many failed sign-ins from your address. Wait a minute, then use a fresh link.")  # fmt: skip
            response.headers["Retry-After"] = str(int(self.failed_logins.window))
            return response
        return None

    def _bad_link(self, request: web.Request) -> web.Response:
        self.failed_logins.failed(self._address(request))
        return self._page(None, "error.html", status=403, title="Link not valid",
                          message="This sign-in link has expired, was used already or is not valid. "
                          "Ask for a fresh one with /study dashboard (it works once, for 10 minutes).")  # fmt: skip

    async def login_page(self, request: web.Request) -> web.Response:
        """The link's page: a button that signs in. A GET never uses the link up, so a chat app fetching a
        preview of it cannot spend it."""
        refused = self._too_many(request)
        if refused is not None:
            return refused
        token = request.match_info["token"]
        if len(token) > 100 or not await self.dashboard.link_valid(token):
            return self._bad_link(request)
        return self._page(None, "login.html", token=token, title="Sign in")

    async def login(self, request: web.Request) -> web.Response:
        refused = self._too_many(request)
        if refused is not None:
            return refused
        form = await request.post()
        token = str(form.get("token", ""))
        found = await self.dashboard.sign_in(token) if 0 < len(token) <= 100 else None
        if found is None:
            return self._bad_link(request)
        session, admin = found
        log.info("dashboard: %s signed in to group %s", admin.user, admin.group_id)
        response = web.Response(status=303, headers={"Location": PREFIX + "/"})
        response.set_cookie(
            COOKIE,
            session,
            path=PREFIX,
            max_age=int(SESSION_TTL.total_seconds()),
            httponly=True,
            secure=self.secure_cookies,
            samesite="Strict",
        )
        return response

    async def logout(self, request: web.Request) -> web.Response:
        await self.dashboard.sign_out(_session(request))
        response = self._page(None, "signed_out.html", title="Signed out", signed_out=True)
        response.del_cookie(COOKIE, path=PREFIX)
        return response

    async def logout_all(self, request: web.Request) -> web.Response:
        ended = await self.dashboard.sign_out_everyone(_admin(request))
        response = self._page(None, "signed_out.html", title="Signed out", signed_out=True, ended=ended)
        response.del_cookie(COOKIE, path=PREFIX)
        return response

    # -------------------------------------------------------------- pages

    async def overview(self, request: web.Request) -> web.Response:
        admin = _admin(request)
        data = await self.dashboard.overview(admin)
        return self._render(request, "overview.html", title="Overview", page="overview", data=data,
                            bars=_bars(data), trend=_trend(data), streak_bars=_streak_bars(data.streaks))  # fmt: skip

    async def schedules(self, request: web.Request, *, messages: list[str] | None = None,
                        error: bool = False, status: int = 200, edited: int | None = None,
                        values: dict[str, str] | None = None) -> web.Response:  # fmt: skip
        admin = _admin(request)
        channels, days = await self.dashboard.schedules(admin)
        decks = [d.name for d in await self.dashboard.decks.decks(admin.group_id)] if self.dashboard.decks else []
        response = self._render(
            request, "schedules.html", title="Schedules", page="schedules", channels=channels, days=days,
            zones=_ZONES(), messages=messages or [], error=error, edited=edited, values=values or {},
            day_names=("mon", "tue", "wed", "thu", "fri", "sat", "sun"), kinds=KINDS, deck_names=["tpm", "all", *decks],
        )  # fmt: skip
        response.set_status(status)
        return response

    async def schedule_change(self, request: web.Request) -> web.Response:
        admin = _admin(request)
        channel_id = _id(request, "channel_id")
        channel = await self.dashboard.channel(admin, channel_id)
        if channel is None:  # not in the session's group: as if it did not exist
            raise web.HTTPNotFound()
        form = await request.post()
        action = str(form.get("action", ""))
        values = {k: str(v).strip() for k, v in form.items() if k != "csrf" and isinstance(v, str)}
        if action == "set":
            text = _set_command(values)
        elif action in ACTIONS:
            text = ACTIONS[action]
        else:
            return await self.schedules(request, messages=["Unknown action."], error=True, status=400)
        replies = await self.dashboard.command(admin, channel, text)
        shown = [_html_text(r.text) for r in replies]
        failed = not any(s.startswith(("✅", "⏸️", "▶️", "⏭️", "📣")) for s in shown)
        return await self.schedules(request, messages=shown, error=failed, status=400 if failed else 200,
                                    edited=channel_id, values=values if failed else None)  # fmt: skip

    async def questions(self, request: web.Request) -> web.Response:
        admin = _admin(request)
        items, age = await self.dashboard.analytics(admin, fresh=request.query.get("fresh") == "1")
        only = request.query.get("flag", "")
        shown = [i for i in items if not only or i.flag == only]
        return self._render(request, "questions.html", title="Question analytics", page="questions",
                            items=shown, age=int(age), only=only, letters=LETTERS,
                            flagged=sum(1 for i in items if i.flag))  # fmt: skip

    async def members(self, request: web.Request) -> web.Response:
        admin = _admin(request)
        sort = request.query.get("sort", "points")
        sort = sort if sort in MEMBER_SORTS else "points"
        descending = request.query.get("dir", "desc" if sort != "name" else "asc") == "desc"
        try:
            page = max(0, int(request.query.get("page", "0")))
        except ValueError:
            page = 0
        rows, more = await self.dashboard.members(admin, sort, descending, page)

        def link(**kw: Any) -> str:
            q = {"sort": sort, "dir": "desc" if descending else "asc", "page": page} | kw
            return f"{PREFIX}/members?{urlencode(q)}"

        return self._render(request, "members.html", title="Members", page="members", rows=rows, sort=sort,
                            descending=descending, number=page, more=more, link=link, sorts=MEMBER_SORTS)  # fmt: skip

    async def export(self, request: web.Request) -> web.Response:
        admin = _admin(request)
        files = await self.dashboard.export(admin)
        name = request.match_info["name"]
        if name not in files:
            raise web.HTTPNotFound()
        return web.Response(
            body=files[name].encode("utf-8"),
            content_type="text/csv",
            charset="utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )

    async def content(self, request: web.Request, *, messages: list[str] | None = None, error: bool = False,
                      status: int = 200, deck: str | None = None, pending: int | None = None,
                      new_deck: dict[str, str] | None = None) -> web.Response:  # fmt: skip
        """The Content page; ``pending``: an import's dry run waits for Confirm (its id)."""
        admin = _admin(request)
        deck = deck if deck is not None else request.query.get("deck", "tpm")
        data = await self.dashboard.content(admin, deck, request.query.get("q", "")[:100])
        response = self._render(request, "content.html", title="Content", page="content", data=data,
                                messages=messages or [], error=error, pending=pending, new_deck=new_deck or {},
                                upload_mb=UPLOAD_MAX // (1024 * 1024), kinds=ITEM_KINDS)  # fmt: skip
        response.set_status(status)
        return response

    async def suggestion(self, request: web.Request) -> web.Response:
        """Approve (into a deck) or deny (with a reason) through `/study suggestions …`: the core checks the
        suggestion belongs to the session's group and says what happened."""
        admin = _admin(request)
        sid = _id(request, "suggestion_id")
        form = await request.post()
        action = str(form.get("action", ""))
        if action == "approve":
            deck = str(form.get("deck", "")).strip().replace(" ", "-")
            text = f"suggestions approve {sid}" + (f" {deck}" if deck else "")
        elif action == "deny":
            reason = " ".join(str(form.get("reason", "")).split())
            text = f"suggestions deny {sid}" + (f" {reason}" if reason else "")
        else:
            return await self.content(request, messages=["Unknown action."], error=True, status=400)
        replies = await self.dashboard.group_command(admin, text)
        if replies is None:
            raise web.HTTPNotFound()
        shown = [_html_text(r.text) for r in replies]
        failed = not any(s.startswith(("✅", f"Suggestion #{sid} by")) for s in shown)
        return await self.content(request, messages=shown, error=failed, status=400 if failed else 200)

    async def retire(self, request: web.Request) -> web.Response:
        admin = _admin(request)
        item_id = _id(request, "item_id")
        if not await self.dashboard.retire(admin, item_id):
            raise web.HTTPNotFound()
        return await self.content(
            request, messages=[f"Item d:{item_id} retired: it is no longer posted or dealt; its history stays."]
        )

    # -------------------------------------------------------------- deck items, decks, import and export

    async def item_add(self, request: web.Request) -> web.Response:
        """The question / tip / card form of `/study deck add <deck> <kind>` (GET), and its submission (POST) as
        the form's own submission: the core checks it with the command's rules and messages."""
        admin = _admin(request)
        kind = request.match_info["kind"]
        deck = await self.dashboard.deck(admin, _id(request, "deck_id"))
        if deck is None or kind not in ITEM_KINDS:
            raise web.HTTPNotFound()
        command, action = f"deck add {deck.name} {kind}", f"{forms.PREFIX}deck-add:{kind[0]}-{deck.id}"
        return await self._form(request, admin, command, action, deck.name)

    async def item_edit(self, request: web.Request) -> web.Response:
        """`/study deck edit <deck> <item>`'s form, filled in with the item (GET), and its submission (POST):
        the item keeps its id, so its answers and reviews stay."""
        admin = _admin(request)
        item_id = _id(request, "item_id")
        found = await self.dashboard.deck_item(admin, item_id)
        if found is None:
            raise web.HTTPNotFound()
        deck, item = found
        command, action = f"deck edit {deck.name} {item.data.slug}", f"{forms.PREFIX}deck-edit:{item.id}"
        return await self._form(request, admin, command, action, deck.name)

    async def _form(self, request: web.Request, admin: Admin, command: str, action: str, deck: str) -> web.Response:
        """GET: the form ``command`` offers; POST: the submitted values as that form's own submission
        (``action``), so the core checks them with the command's rules and messages."""
        if request.method == "GET":
            replies = await self.dashboard.group_command(admin, command)
        elif request.method == "POST":
            replies = await self.dashboard.group_command(admin, action=action, values=await _values(request))
        else:
            raise web.HTTPMethodNotAllowed(request.method, ["GET", "POST"])
        return await self._form_result(request, replies, deck)

    async def _form_result(self, request: web.Request, replies: list[Reply] | None, deck: str) -> web.Response:
        """A form the core offers (fresh, or again with field errors and what was typed), else the Content
        page of ``deck`` with the core's answer."""
        if replies is None:  # no channel of the group seen yet: nothing to run a command in
            raise web.HTTPNotFound()
        form = next((r.form for r in replies if r.form is not None), None)
        if form is None:
            shown = [_html_text(r.text) for r in replies]
            ok = any(s.startswith("✅") for s in shown)
            return await self.content(request, messages=shown, error=not ok, status=200 if ok else 400, deck=deck)
        heading = _html_text(replies[0].text) if not form.errors else ""
        response = self._render(request, "item.html", title=form.title, page="content", form=form, deck=deck,
                                heading=heading, action=request.path)  # fmt: skip
        response.set_status(400 if form.errors else 200)
        return response

    async def deck_create(self, request: web.Request) -> web.Response:
        """`/study deck create <name> [description]`: the name as one word (the core says what a name may be)."""
        admin = _admin(request)
        form = await request.post()
        name = "-".join(str(form.get("name", "")).split()).casefold()  # deck names are words joined by "-"
        description = " ".join(str(form.get("description", "")).split())[:200]
        if not name:
            return await self.content(request, messages=["Give the deck a name."], error=True, status=400,
                                      new_deck={"description": description})  # fmt: skip
        replies = await self.dashboard.group_command(admin, f"deck create {name} {description}".strip())
        if replies is None:
            raise web.HTTPNotFound()
        shown = [_html_text(r.text) for r in replies]
        if not any(s.startswith("✅") for s in shown):
            return await self.content(request, messages=shown, error=True, status=400,
                                      new_deck={"name": name, "description": description})  # fmt: skip
        return await self.content(request, messages=shown, deck=name)

    async def deck_import(self, request: web.Request) -> web.Response:
        """Upload a deck file: `/study deck import <deck>` with it attached gives the dry run (nothing is
        written), and the page offers its Confirm. The body is read as a stream: the CSRF token first, then
        at most `UPLOAD_MAX` bytes of the file (a larger one is counted, not kept, and refused by the core
        with the command's message)."""
        admin = _admin(request)
        deck = await self.dashboard.deck(admin, _id(request, "deck_id"))
        if deck is None:
            raise web.HTTPNotFound()
        if (request.content_length or 0) > UPLOAD_REFUSED:
            return await self.content(request, status=413, error=True, deck=deck.name, messages=[
                f"That upload is over {UPLOAD_REFUSED // (1024 * 1024)} MB; a deck file may have 1 MB "
                f"({UPLOAD_MAX // (1024 * 1024)} MB for Anki files). Nothing was imported."])  # fmt: skip
        try:
            upload = await _read_upload(request, csrf_token(_session(request)))
        except _Expired:
            return self._expired(admin)
        except (ValueError, AssertionError, LookupError):
            return await self.content(request, status=400, error=True, deck=deck.name,
                                      messages=["That upload could not be read. Choose the file again."])  # fmt: skip
        if upload is None:
            return await self.content(request, status=400, error=True, deck=deck.name,
                                      messages=["Choose a file to import (YAML, CSV, JSON or an Anki export)."])  # fmt: skip
        replies = await self.dashboard.group_command(admin, f"deck import {deck.name}", files=(upload,))
        if replies is None:
            raise web.HTTPNotFound()
        pending = next(
            (int(p[1][0]) for r in replies for b in r.buttons if (p := actions.parse_routed(b.action_id)) and p[0] == "dimp"),
            None,
        )  # fmt: skip
        shown = [_html_text(r.text) for r in replies]
        return await self.content(request, messages=shown, error=pending is None, status=200 if pending else 400,
                                  deck=deck.name, pending=pending)  # fmt: skip

    async def import_decision(self, request: web.Request) -> web.Response:
        """Confirm or cancel a dry run: the import's own buttons (``dimp``/``dimp-no``), which find it only
        among this admin's waiting imports in this group, then write all of it or nothing."""
        admin = _admin(request)
        import_id = _id(request, "import_id")
        form = await request.post()
        name = {"confirm": "dimp", "cancel": "dimp-no"}.get(str(form.get("action", "")))
        if name is None:
            return await self.content(request, messages=["Unknown action."], error=True, status=400)
        deck = str(form.get("deck", ""))[:40]
        replies = await self.dashboard.group_command(admin, action=actions.routed_action(name, str(import_id)))
        if replies is None:
            raise web.HTTPNotFound()
        shown = [_html_text(r.text) for r in replies]
        ok = any(s.startswith(("✅", "Import cancelled")) for s in shown)
        return await self.content(request, messages=shown, error=not ok, status=200 if ok else 400, deck=deck)

    async def deck_export(self, request: web.Request) -> web.Response:
        """A file of `/study deck export <deck> yaml|csv`, byte for byte (the built-in deck too)."""
        admin = _admin(request)
        deck, filename = request.match_info["deck"], request.match_info["filename"]
        fmt = "csv" if filename.endswith(".csv") else "yaml"
        if not DECK_NAME.fullmatch(deck):
            raise web.HTTPNotFound()
        replies = await self.dashboard.group_command(admin, f"deck export {deck} {fmt}")
        found = next((a for r in replies or [] for a in r.attachments if a.filename == filename), None)
        if found is None:
            raise web.HTTPNotFound()
        return web.Response(
            body=found.data,
            content_type="text/csv" if fmt == "csv" else "application/x-yaml",
            charset="utf-8",
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )


#: Longest text field of a form the dashboard reads beside an upload (the CSRF token, a deck name).
_FIELD_MAX = 1000


def _id(request: web.Request, key: str) -> int:
    """A row id from the URL (ASCII digits that fit the database's integers), else 404."""
    text = request.match_info[key]
    if not (text.isascii() and text.isdigit() and len(text) <= 18):
        raise web.HTTPNotFound()
    return int(text)


async def _values(request: web.Request) -> dict[str, str]:
    """A posted form's text fields, the CSRF token left out (the core checks which fields it knows)."""
    form = await request.post()
    return {k: v for k, v in form.items() if k != "csrf" and isinstance(v, str)}


class _Expired(Exception):
    """The upload's CSRF token is missing or wrong."""


async def _read_upload(request: web.Request, csrf: str) -> Attachment | None:
    """The file of a multipart upload whose ``csrf`` field (sent before the file) matches, at most
    `UPLOAD_MAX` bytes of it; a larger file comes back with its ``size`` only. None when no file was
    chosen. Raises `_Expired` for a wrong or late token, ValueError for a body that is not multipart."""
    reader = await request.multipart()
    fields: dict[str, str] = {}
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            raise ValueError("nested multipart")
        if part.filename is None:  # a text field
            data = bytearray()
            while chunk := await part.read_chunk(4096):
                data += chunk
                if len(data) > _FIELD_MAX:
                    raise ValueError("field too long")
            fields[part.name or ""] = data.decode("utf-8", "replace")
            continue
        if not hmac.compare_digest(fields.get("csrf", ""), csrf):
            raise _Expired()
        data = bytearray()
        size = 0
        while chunk := await part.read_chunk(65536):
            size += len(chunk)
            if size <= UPLOAD_MAX:
                data += chunk
            elif size > UPLOAD_REFUSED:  # no Content-Length said so: stop reading here
                break
        filename = part.filename.replace("\\", "/").rsplit("/", 1)[-1][:200]
        if not filename and not size:
            return None
        if size > UPLOAD_MAX:  # only its size goes, as the chat front ends send a file too large to fetch
            return Attachment(filename, b"", size=size)
        return Attachment(filename, bytes(data))
    if not hmac.compare_digest(fields.get("csrf", ""), csrf):
        raise _Expired()
    return None


def _set_command(values: dict[str, str]) -> str:
    """The `/study schedule set …` text for a form's fields; the core validates it like typed text.
    Each value is one word (spaces would be taken as further options by the grammar)."""

    def word(v: str) -> str:
        return v.replace(" ", "_") if v else "?"

    parts = ["schedule", "set", word(values.get("time", ""))]
    tz = values.get("tz", "")
    if tz:
        parts += ["tz", word(tz)]
    days = [d for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun") if values.get(f"day_{d}")]
    if values.get("days"):
        parts += ["days", word(values["days"])]
    elif days:
        parts += ["days", ",".join(days)]
    elif values.get("days_shown"):
        parts += ["days", ","]  # no day ticked: the core says the day set is empty
    if values.get("kind"):
        parts += ["kind", word(values["kind"])]
    if values.get("reveal"):
        parts += ["reveal", word(values["reveal"])]
    if values.get("deck"):  # empty: the channel keeps its deck
        parts += ["deck", word(values["deck"])]
    if values.get("thread"):  # empty: leave the channel's thread option as it is
        parts += ["thread", word(values["thread"])]
    if values.get("ping"):  # a role id or mention (Discord); the core says what it takes
        parts += ["ping", word(values["ping"])]
    elif values.get("ping_shown"):  # the field was there and left empty: no role is pinged
        parts += ["ping", "off"]
    return " ".join(parts)


_zone_cache: list[str] = []


def _ZONES() -> list[str]:
    if not _zone_cache:
        import zoneinfo

        _zone_cache.extend(sorted(z for z in zoneinfo.available_timezones() if "/" in z and not z.startswith("Etc/")))
    return _zone_cache


# ---------------------------------------------------------------------- charts (server-drawn SVG)

CHART_W, CHART_H = 600, 160


def _bars(data: Any) -> list[dict[str, Any]]:
    top = max((d.answers for d in data.days), default=0) or 1
    width = CHART_W / max(1, len(data.days))
    out = []
    for i, d in enumerate(data.days):
        h = round((CHART_H - 20) * d.answers / top, 1)
        out.append({"x": round(i * width + 1, 1), "y": round(CHART_H - 16 - h, 1), "w": round(width - 2, 1), "h": h,
                    "label": f"{d.day:%a %d %b}: {d.answers} answers", "tick": f"{d.day:%d}" if i % 5 == 0 else ""})  # fmt: skip
    return out


def _trend(data: Any) -> str:
    """The accuracy line as SVG polyline points (days without answers are left out)."""
    width = CHART_W / max(1, len(data.accuracy))
    pts = [
        f"{i * width + width / 2:.1f},{(CHART_H - 16) - (CHART_H - 20) * share:.1f}"
        for i, (_, share) in enumerate(data.accuracy)
        if share is not None
    ]
    return " ".join(pts)


def _streak_bars(buckets: list[tuple[str, int]]) -> list[dict[str, Any]]:
    top = max((n for _, n in buckets), default=0) or 1
    return [{"label": label, "n": n, "w": round(100 * n / top, 1)} for label, n in buckets]


# ---------------------------------------------------------------------- its own server


class DashboardServer:
    """The dashboard on a server of its own (no Slack HTTP server to share). ``port`` 0 picks a free one.

    `start` raises `OSError` when the address cannot be bound; `base_url` is the link base once started
    (``public_url`` when given)."""

    def __init__(self, web_app: DashboardWeb, host: str, port: int, public_url: str | None = None) -> None:
        self.web = web_app
        self.host = host
        self.port = port
        self.public_url = public_url
        self._runner: web.AppRunner | None = None
        self.bound: int | None = None

    async def start(self) -> None:
        app = web.Application()
        self.web.mount(app)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=5.0)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self.port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.bound = int(runner.addresses[0][1])
        log.info("dashboard: listening on http://%s:%s%s/", self.host, self.bound, PREFIX)

    def base_url(self) -> str | None:
        if self.public_url:
            return self.public_url
        if self.bound is None:
            return None
        return local_base(self.host, self.bound)

    async def close(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
        self.bound = None


def local_base(host: str, port: int) -> str:
    """``http://host:port`` for a link that opens on this machine (a wildcard address becomes loopback)."""
    shown = {"0.0.0.0": "127.0.0.1", "::": "[::1]", "": "127.0.0.1"}.get(host, host)
    if ":" in shown and not shown.startswith("["):
        shown = f"[{shown}]"
    return f"http://{shown}:{port}"


__all__ = ["DashboardServer", "DashboardWeb", "FailedLogins", "local_base"]
