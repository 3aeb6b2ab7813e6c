"""Fault tests for daily posts (issue 12, item 3): the shipped bot in its own process fans a question out
to 120 channels through the real discord.py / slack-bolt, against the loopback fakes, and is

* SIGKILLed at random points of the fan-out, again and again (each restart after the claim lease has
  passed — the claims' times are moved back and the Discord nonce window is let pass — so that what was
  in flight is retried), with a few "500 on a message that was in fact created" mixed in;
* sent SIGTERM while posts take 3 s each.

Every channel must end with exactly one post, recorded with the platform's message id: the test counts
duplicates and missed channels per platform and prints them. The random seed is printed too (set
``STUDYBOT_FAULT_SEED`` to replay one).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from datetime import time as wall
from pathlib import Path
from typing import Any

import pytest

from bot.core.delivery import CLAIM_LEASE
from bot.core.schedule import ScheduleRule
from bot.storage import SqliteStore
from bot.storage.schedule_store import SqliteScheduleStore
from bot.storage.sqlite_store import from_ts, ts
from tests.botproc import BotProcess
from tests.fake_discord import FakeDiscord
from tests.fake_slack import FakeSlack

CHANNELS = 120
GUILD = 810000000000000001
SEED = int(os.environ.get("STUDYBOT_FAULT_SEED", str(time.time_ns() % 1_000_000)))


class Platform:
    """A fake platform served from its own event loop in a thread, so the test can drive a bot process
    with blocking waits while the fake answers it."""

    name: str

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the fake's loop (its state is only ever touched there)."""

        async def on_loop() -> Any:
            return fn()

        return self.run(on_loop())

    def close(self) -> None:
        self.run(self.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)

    # per platform
    channels: list[str]

    async def stop(self) -> None: ...

    def env(self) -> dict[str, str]:
        raise NotImplementedError

    def start_bot(self, db: Path) -> BotProcess:
        return BotProcess(db, "run", env=self.env())

    def posts_per_channel(self) -> Counter[str]:
        raise NotImplementedError

    def message_ids(self) -> dict[str, set[str]]:
        raise NotImplementedError

    def fail_some_after_create(self) -> None:
        """Queue a few server errors on posts that were in fact made."""

    def set_post_delay(self, seconds: float) -> None:
        raise NotImplementedError

    def let_nonces_expire(self) -> None:
        """Discord forgets a nonce after a few minutes (the lease is longer)."""


class DiscordPlatform(Platform):
    name = "discord"

    def __init__(self) -> None:
        super().__init__()
        self.channels = [str(830000000000000000 + i) for i in range(CHANNELS)]

        async def start() -> FakeDiscord:
            fake = FakeDiscord(install=False)
            fake.guilds.clear()
            fake.add_guild(GUILD, "Fan-out", {int(c): f"c{i}" for i, c in enumerate(self.channels)})
            await fake.start()
            return fake

        self.fake: FakeDiscord = self.run(start())

    async def stop(self) -> None:
        await self.fake.stop()

    def env(self) -> dict[str, str]:
        return {"DISCORD_TOKEN": self.fake.token}

    def start_bot(self, db: Path) -> BotProcess:
        args = (self.fake.rest_base, self.fake.gateway_url, "run")
        return BotProcess(db, *args, module="tests.fault_bot", env=self.env())

    def message_ids(self) -> dict[str, set[str]]:
        def read() -> dict[str, set[str]]:
            out: dict[str, set[str]] = {}
            for m in self.fake.messages.values():
                if m.get("_via") == "channel":
                    out.setdefault(m["channel_id"], set()).add(m["id"])
            return out

        return dict(self.call(read))

    def posts_per_channel(self) -> Counter[str]:
        return Counter({c: len(ids) for c, ids in self.message_ids().items()})

    def fail_some_after_create(self) -> None:
        # 503: discord.py gives up at once and the core must find the message; 500: discord.py retries
        # by itself with the same nonce, which Discord answers with the message already made.
        self.call(lambda: self.fake.fail("POST", r"/channels/\d+/messages", 503, after=True, times=2))
        self.call(lambda: self.fake.fail("POST", r"/channels/\d+/messages", 500, after=True, times=1))

    def set_post_delay(self, seconds: float) -> None:
        self.call(lambda: setattr(self.fake, "post_delay", seconds))

    def let_nonces_expire(self) -> None:
        self.call(self.fake.expire_nonces)


class SlackPlatform(Platform):
    name = "slack"

    def __init__(self) -> None:
        super().__init__()
        self.channels = [f"C{i:07d}" for i in range(CHANNELS)]

        async def start() -> FakeSlack:
            fake = FakeSlack()
            # Each post lands 0-40 ms after it arrives, at random (as on a real API): without it the eight
            # concurrent posts land together and every kill falls on a multiple of eight.
            fake.post_jitter = 0.04
            await fake.start()
            return fake

        self.fake: FakeSlack = self.run(start())

    async def stop(self) -> None:
        await self.fake.stop()

    def env(self) -> dict[str, str]:  # Socket Mode: no port of our own to bind
        return {
            "SLACK_BOT_TOKEN": self.fake.bot_token,
            "SLACK_APP_TOKEN": self.fake.app_token,
            "SLACK_API_URL": self.fake.api_url,
        }

    def message_ids(self) -> dict[str, set[str]]:
        def read() -> dict[str, set[str]]:
            out: dict[str, set[str]] = {}
            for channel, message_ts in self.fake.messages:
                out.setdefault(channel, set()).add(message_ts)
            return out

        return dict(self.call(read))

    def posts_per_channel(self) -> Counter[str]:
        return Counter({c: len(ids) for c, ids in self.message_ids().items()})

    def fail_some_after_create(self) -> None:
        self.call(lambda: self.fake.fail("chat.postMessage", 500, after=True, times=3))

    def set_post_delay(self, seconds: float) -> None:
        self.call(lambda: setattr(self.fake, "post_delay", seconds))


@pytest.fixture(params=["discord", "slack"])
def platform(request: pytest.FixtureRequest) -> Any:
    p: Platform = DiscordPlatform() if request.param == "discord" else SlackPlatform()
    try:
        yield p
    finally:
        p.close()


def seed_schedules(db: Path, p: Platform) -> datetime:
    """Every channel gets a daily question whose occurrence is the current minute (so it is due now)."""

    async def seed() -> datetime:
        now = datetime.now(UTC)
        at = now.replace(second=0, microsecond=0)
        group = str(GUILD) if p.name == "discord" else p.fake.team_id  # type: ignore[attr-defined]
        store = SqliteStore(db)
        await store.start()
        try:
            rule = ScheduleRule(wall(at.hour, at.minute), "UTC", tuple(range(7)), "question")
            for channel in p.channels:
                m = await store.ensure_member(p.name, group, channel, "admin", "admin", now=now - timedelta(days=1))
                await SqliteScheduleStore(store).save_schedule(m.channel_id, rule, now - timedelta(days=1))
        finally:
            await store.close()
        return at

    return asyncio.run(seed())


def deliveries(db: Path) -> dict[str, tuple[str, str | None]]:
    """channel external id -> (status, message id) of its delivery."""
    with sqlite3.connect(db, timeout=10) as conn:
        rows = conn.execute(
            "SELECT c.external_id, d.status, d.message_id FROM deliveries d JOIN channels c ON c.id = d.channel_id"
        ).fetchall()
    return {c: (status, mid) for c, status, mid in rows}


def let_the_lease_pass(db: Path, p: Platform) -> None:
    """What CLAIM_LEASE minutes of waiting do: claims left by the dead process become stale."""
    with sqlite3.connect(db, timeout=10) as conn:
        for did, claimed_at in conn.execute(
            "SELECT id, claimed_at FROM deliveries WHERE status = 'claimed'"
        ).fetchall():
            old = from_ts(claimed_at)
            assert old is not None
            conn.execute(
                "UPDATE deliveries SET claimed_at = ? WHERE id = ?", (ts(old - CLAIM_LEASE - timedelta(minutes=1)), did)
            )
    p.let_nonces_expire()


def start_bot(db: Path, p: Platform) -> BotProcess:
    return p.start_bot(db)


def wait(
    until: Callable[[], bool], within: float, what: str, bot: BotProcess | None = None, poll: float = 0.02
) -> None:
    deadline = time.monotonic() + within
    while not until():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}; bot stderr: {bot.err[-8:] if bot else ''}")
        if bot is not None and bot.proc.poll() is not None:
            raise AssertionError(f"the bot exited ({bot.proc.returncode}) waiting for {what}: {bot.err[-8:]}")
        time.sleep(poll)


def settle(db: Path, p: Platform) -> list[str]:
    """Run the bot until every channel's post is recorded as sent, then stop it with SIGTERM. Returns
    its log lines."""
    bot = start_bot(db, p)
    try:
        wait(
            lambda: len(d := deliveries(db)) == CHANNELS and all(s == "sent" for s, _ in d.values()),
            60,
            "every post recorded",
            bot,
        )
        # (All may have been recorded before this start: then let it come up, so the signal meets its handler.)
        wait(lambda: any(" connected " in line for line in bot.err), 60, "the bot to connect", bot)
        bot.proc.send_signal(signal.SIGTERM)
        assert bot.wait(30) == 0, bot.err[-10:]
    finally:
        bot.kill()
    return bot.err


def tally(db: Path, p: Platform) -> tuple[int, int, int]:
    """(duplicates, missed, recorded with the wrong message id) over all channels."""
    per = p.posts_per_channel()
    ids = p.message_ids()
    recorded = deliveries(db)
    duplicates = sum(max(0, per.get(c, 0) - 1) for c in p.channels)
    missed = sum(1 for c in p.channels if per.get(c, 0) == 0 or recorded.get(c, ("", None))[0] != "sent")
    wrong = sum(1 for c in p.channels if recorded.get(c, ("", None))[1] not in ids.get(c, set()))
    return duplicates, missed, wrong


def crash_run(tmp_path: Path, p: Platform, crashes: int, rng: random.Random) -> list[int]:
    """SIGKILL the bot ``crashes`` times during the fan-out, then let it finish; returns the distinct
    numbers of posts out at the kills that came before the fan-out's end."""
    db = tmp_path / "faults.db"
    seed_schedules(db, p)
    killed_at: list[int] = []
    overshoots: list[int] = []
    logs: list[str] = []
    for kill in range(crashes):
        p.fail_some_after_create()
        # Each process dies after posting 1..k new messages (counted from where the last one stopped, so
        # no kill falls on a restart that posted nothing), k sized so that the kills spread over the
        # whole fan-out and the last one still comes before its end (half the fair share on average:
        # posts land between reaching the target and the kill).
        # Posts in flight at the kill still land (overshoot: 0 to ~20 on an idle machine, where a restarted
        # bot sends fast), so the share each kill may use is what is left after the overshoot seen so far.
        start = sum(p.posts_per_channel().values())
        overshoot = round(sum(overshoots) / len(overshoots)) if overshoots else 0
        k = max(1, (CHANNELS - 1 - start) // (crashes - kill) - overshoot)
        target = min(start + rng.randint(1, k), CHANNELS - 1)
        bot = start_bot(db, p)
        try:
            wait(lambda t=target: sum(p.posts_per_channel().values()) >= t, 60, f"{target} posts", bot, poll=0.002)  # type: ignore[misc]
            time.sleep(rng.uniform(0, 0.01))  # anywhere: mid-request, mid-commit, between the two
            bot.proc.send_signal(signal.SIGKILL)
            bot.proc.wait(10)
        finally:
            bot.kill()
        logs += bot.err
        killed_at.append(sum(p.posts_per_channel().values()))
        overshoots.append(killed_at[-1] - target)
        let_the_lease_pass(db, p)
    logs += settle(db, p)
    duplicates, missed, wrong = tally(db, p)
    found = sum("was already in channel" in line or "but the message is there" in line for line in logs)
    mid = sorted({n for n in killed_at if n < CHANNELS})
    print(
        f"\n[{p.name}] seed {SEED}: {crashes} SIGKILLs during a {CHANNELS}-channel fan-out "
        f"(posts on the platform at each kill: {killed_at}; {len(mid)} distinct points before its end: {mid}); "
        f"duplicates {duplicates}, missed {missed}, wrong message id {wrong}; "
        f"{found} post(s) found already out (after a kill or a 5xx) instead of re-sent"
    )
    assert (duplicates, missed, wrong) == (0, 0, 0)
    return mid


def test_sigkill_at_random_points_of_a_fan_out_posts_each_channel_exactly_once(
    platform: Platform, tmp_path: Path
) -> None:
    crash_run(tmp_path, platform, 5, random.Random(f"{SEED}-{platform.name}"))


@pytest.mark.slow
def test_sigkill_soak_twenty_five_crash_points_per_platform(platform: Platform, tmp_path: Path) -> None:
    mid = crash_run(tmp_path, platform, 25, random.Random(f"{SEED}-soak-{platform.name}"))
    assert len(mid) >= 20, f"only {len(mid)} distinct crash points in the fan-out: {mid}"


def test_sigterm_with_slow_posts_lets_those_in_flight_finish_and_records_them(
    platform: Platform, tmp_path: Path
) -> None:
    rng = random.Random(f"{SEED}-term-{platform.name}")
    db = tmp_path / "term.db"
    seed_schedules(db, platform)
    platform.set_post_delay(3.0)
    bot = start_bot(db, platform)
    try:
        wait(lambda: sum(platform.posts_per_channel().values()) >= 1, 60, "the first posts", bot)
        time.sleep(rng.uniform(0, 2.5))  # somewhere in the first 3 s round of posts
        in_flight = sum(platform.posts_per_channel().values())
        asked = time.monotonic()
        bot.proc.send_signal(signal.SIGTERM)
        assert bot.wait(40) == 0, bot.err[-10:]
        took = time.monotonic() - asked
    finally:
        bot.kill()
    on_platform = sum(platform.posts_per_channel().values())
    recorded = deliveries(db)
    claimed = [c for c, (s, _) in recorded.items() if s == "claimed"]
    sent = [c for c, (s, _) in recorded.items() if s == "sent"]
    print(
        f"\n[{platform.name}] SIGTERM with {in_flight} post(s) of 3 s in flight: exit after {took:.1f} s; "
        f"{on_platform} on the platform, {len(sent)} recorded as sent, {len(claimed)} left claimed"
    )
    assert claimed == [], "a post in flight at SIGTERM was cut off and left for the lease"
    assert len(sent) == on_platform, "every post that went out before the stop is recorded"

    platform.set_post_delay(0.0)
    settle(db, platform)  # the restart sends the rest at once: nothing waits for a lease
    duplicates, missed, wrong = tally(db, platform)
    print(f"[{platform.name}] after the restart: duplicates {duplicates}, missed {missed}, wrong message id {wrong}")
    assert (duplicates, missed, wrong) == (0, 0, 0)
