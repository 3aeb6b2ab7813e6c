"""P7: web dashboard page load times on the large database (100,000 members, 1,000,000 answers in one group).

    python -m bench.p7_dashboard [--samples N]

The database is `bench.gen_db`'s (cached, copied so the run may write), with the group's 10 channels given
daily schedules (set-up, not measured). The dashboard is served by its real aiohttp application on
127.0.0.1 and fetched over HTTP with a signed-in session, one request at a time, so each figure is what a
browser would wait for the HTML (server time plus loopback), without the stylesheet. Goal: p95 ≤ 200 ms
for every page.

The question analytics read every answer of the group; the page reuses them for 5 minutes per group. Its
figure is the page as served (mostly from that cache); the computation itself is measured apart
(``?fresh=1``), once per sample.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import time as _time
from datetime import UTC, datetime, time

import aiohttp
from aiohttp import web

from bench.common import OUT, Figure, percentile
from bench.gen_db import ensure
from bot.adapters.dashboard import COOKIE, PREFIX, DashboardWeb
from bot.bootstrap import build_app
from bot.config import BUNDLED_CONTENT, Settings
from bot.core.dashboard import SESSION_TTL, token_hash
from bot.core.schedule import ScheduleRule

MEMBERS, ANSWERS = 100_000, 1_000_000
GOAL_MS = 200.0
ZONES = ("Europe/Berlin", "America/New_York", "Asia/Tokyo", "Europe/London", "Australia/Sydney")


class Clock:
    def now(self) -> datetime:
        return datetime(2026, 11, 18, 12, 0, tzinfo=UTC)  # inside the generated history's last week


PAGES = {
    "overview": "/",
    "schedules": "/schedules",
    "questions": "/questions",
    "members (by points)": "/members?sort=points&dir=desc",
    "members (by accuracy, page 40)": "/members?sort=accuracy&dir=desc&page=40",
    "members (by name)": "/members?sort=name&dir=asc",
}


async def measure(samples: int) -> list[Figure]:
    source = ensure(MEMBERS, ANSWERS)
    db = OUT / "p7-run.db"
    shutil.copyfile(source, db)
    settings = Settings(STUDYBOT_DB=db, STUDYBOT_CONTENT=BUNDLED_CONTENT)  # type: ignore[call-arg]
    clock = Clock()
    app = await build_app(settings, clock=clock)
    assert app.dashboard is not None
    store = app.dashboard.store
    channels = await store.group_channels(1)
    for n, ch in enumerate(channels):
        rule = ScheduleRule(time(7 + n, 15 * (n % 4)), ZONES[n % len(ZONES)], tuple(range(5 if n % 2 else 7)))
        await app.schedules.save_schedule(ch.channel_id, rule, clock.now())
    session = "bench-session"
    now = clock.now()
    await store.start_dashboard_session(token_hash(session), 1, 1, now, now + SESSION_TTL)
    parent = web.Application()
    DashboardWeb(app.dashboard).mount(parent)
    runner = web.AppRunner(parent, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}{PREFIX}"
    figures: list[Figure] = []
    jar = aiohttp.CookieJar(unsafe=True)
    try:
        async with aiohttp.ClientSession(cookie_jar=jar, cookies={COOKIE: session}) as http:

            async def fetch(path: str) -> float:
                t = _time.perf_counter()
                async with http.get(base + path) as r:
                    body = await r.read()
                    assert r.status == 200, (path, r.status, body[:300])
                return (_time.perf_counter() - t) * 1000

            for path in PAGES.values():  # warm: page cache, statement caches, templates, the analytics cache
                await fetch(path)
            for name, path in PAGES.items():
                times = [await fetch(path) for _ in range(samples)]
                p95 = percentile(times, 95)
                figures.append(
                    Figure(
                        "P7",
                        f"dashboard {name}: p95 page load",
                        round(p95, 1),
                        "ms",
                        f"≤ {GOAL_MS:.0f} ms",
                        p95 <= GOAL_MS,
                        f"p50 {percentile(times, 50):.1f} ms, max {max(times):.1f} ms, {samples} loads, {MEMBERS:,} members",
                    )
                )
            cold = []
            for _ in range(max(5, samples // 4)):
                app.dashboard._overview.clear()  # the counts recomputed on every load, as after a minute
                cold.append(await fetch("/"))
            p95 = percentile(cold, 95)
            figures.append(
                Figure(
                    "P7",
                    "dashboard overview, counts recomputed: p95",
                    round(p95, 1),
                    "ms",
                    f"≤ {GOAL_MS:.0f} ms",
                    p95 <= GOAL_MS,
                    f"p50 {percentile(cold, 50):.1f} ms, {len(cold)} loads; 30 days of answers and every member",
                )
            )
            fresh = [await fetch("/questions?fresh=1") for _ in range(max(3, samples // 10))]
            p95 = percentile(fresh, 95)
            figures.append(
                Figure(
                    "P7",
                    "dashboard questions, recomputed (?fresh=1): p95",
                    round(p95, 1),
                    "ms",
                    f"≤ {GOAL_MS:.0f} ms",
                    p95 <= GOAL_MS,
                    f"p50 {percentile(fresh, 50):.1f} ms, {len(fresh)} loads; reads all {ANSWERS:,} answers",
                )
            )
    finally:
        await runner.cleanup()
        await app.close()
    return figures


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--samples", type=int, default=60)
    args = p.parse_args()
    for figure in asyncio.run(measure(args.samples)):
        figure.emit()
        print(f"{figure.what}: {figure.value} {figure.unit} ({figure.note})", flush=True)


if __name__ == "__main__":
    main()
