"""PostgreSQL faults: a bad URL, a refused connection or a wrong password stop the start with one line
(exit 2, no traceback, no password); a server that goes away mid-run costs a "try again", not data."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.storage.pg_store import PgStore
from tests.pg import PgCluster, PgUnavailable, free_port

ROOT = Path(__file__).resolve().parents[1]
PACK = ROOT / "tests" / "fixtures" / "console_pack"
SECRET = "Sup3r-s3cret-pw"


def run(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STUDYBOT_", "DISCORD_", "SLACK_"))}
    env |= {"STUDYBOT_DATABASE_URL": url, "STUDYBOT_CONTENT": str(PACK)}
    return subprocess.run(
        [sys.executable, "-m", "bot", *(args or ("run",))],
        input="",
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("case", "expect"),
    [
        ("refused", "refused"),
        ("password", "password authentication failed"),
        ("database", 'database "no_such_db" does not exist'),
        ("scheme", "is not a database URL studybot knows"),
        ("port", "malformed"),
    ],
)
def test_a_bad_database_stops_the_start_with_one_line(pg: PgCluster, case: str, expect: str) -> None:
    url = {
        "refused": f"postgresql://postgres:{SECRET}@127.0.0.1:{free_port()}/studybot",
        "password": pg.url(password=SECRET),
        "database": pg.url("no_such_db"),
        "scheme": f"mysql://root:{SECRET}@127.0.0.1/studybot",
        "port": f"postgresql://postgres:{SECRET}@127.0.0.1:port/studybot",
    }[case]
    r = run(url)
    assert r.returncode == 2, (r.returncode, r.stderr)
    # (`run` without platform tokens first says it starts the console; then the one line about the database)
    lines = [ln for ln in r.stderr.strip().splitlines() if "starting the local console" not in ln]
    assert len(lines) == 1 and expect in lines[0], r.stderr
    assert "Traceback" not in r.stderr and SECRET not in r.stdout + r.stderr and pg.password not in r.stderr


def test_health_says_unhealthy_in_one_line_without_the_password(pg: PgCluster) -> None:
    r = run(pg.url(password=SECRET), "health")
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert SECRET not in r.stdout + r.stderr


async def test_a_server_that_goes_away_mid_run_costs_a_retry_not_data(tmp_path: Path) -> None:
    """Its own cluster (the session's must stay up): answers acknowledged before the outage survive it,
    calls during it raise (the service turns that into its "try again" reply), and once the server is
    back the same store serves again without a restart."""
    from bot.core.ports import AnswerIn

    try:
        cluster = PgCluster.start()
    except PgUnavailable as e:  # installed but failing to start is a failure, as in tests/pg.py
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(f"no PostgreSQL here: {e}")
    now = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
    try:
        store = PgStore(cluster.create_database("outage"))
        await store.start()
        ref = await store.ensure_member("console", "g", "c", "alice", "alice", now=now)
        post = await store.create_post(ref.group_id, ref.channel_id, None, "question", "q1", now)
        answer = AnswerIn(ref.member_id, post.id, ref.group_id, "q1", "A", True, now, now.date())
        outcome = await store.record_answer(answer, lambda s: s)
        assert outcome.recorded
        cluster.stop_server()
        with pytest.raises(Exception) as failed:
            await store.member_stats(ref.member_id)
        assert not isinstance(failed.value, AssertionError)
        cluster.start_server()
        stats = await store.member_stats(ref.member_id)
        assert stats.answered == 1, "the acknowledged answer survived the outage"
        await store.close()
    finally:
        cluster.stop()
