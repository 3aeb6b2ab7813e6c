"""The throwaway PostgreSQL cluster the Postgres tests stand on (tests/pg.py) works as promised."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import asyncpg
import pytest

from tests.pg import PgCluster, PgUnavailable


async def test_asyncpg_connects_and_queries(pg_dsn: str) -> None:
    conn = await asyncpg.connect(pg_dsn)
    try:
        assert await conn.fetchval("SELECT 6 * 7") == 42
        # a real server on loopback TCP, not a socket-only or in-memory stand-in
        assert await conn.fetchval("SELECT inet_server_addr()::text") == "127.0.0.1/32"
        assert int(await conn.fetchval("SHOW server_version_num")) >= 130000
    finally:
        await conn.close()


async def test_each_test_gets_its_own_empty_database(pg: PgCluster, pg_db: str) -> None:
    conn = await asyncpg.connect(pg_db)
    try:
        await conn.execute("CREATE TABLE t (x int)")
        await conn.execute("INSERT INTO t VALUES (1)")
        assert await conn.fetchval("SELECT count(*) FROM t") == 1
    finally:
        await conn.close()
    other = pg.create_database()
    conn = await asyncpg.connect(other)
    try:
        assert await conn.fetchval("SELECT to_regclass('t')") is None
    finally:
        await conn.close()
        pg.drop_database(other.rsplit("/", 1)[1])


async def test_a_database_copies_a_prepared_template(pg: PgCluster) -> None:
    tpl = pg.create_database("tpl_smoke")
    conn = await asyncpg.connect(tpl)
    await conn.execute("CREATE TABLE seeded (x int); INSERT INTO seeded VALUES (7)")
    await conn.close()
    copy = pg.create_database(template="tpl_smoke")
    conn = await asyncpg.connect(copy)
    try:
        assert await conn.fetchval("SELECT x FROM seeded") == 7
    finally:
        await conn.close()
        pg.drop_database(copy.rsplit("/", 1)[1])
        pg.drop_database("tpl_smoke")


async def test_a_wrong_password_is_refused(pg: PgCluster) -> None:
    with pytest.raises(asyncpg.InvalidPasswordError):
        await asyncpg.connect(pg.url(password="not-the-password"))


def test_the_cluster_stops_and_leaves_nothing_behind() -> None:
    """A second, private cluster: after stop() its port is closed and its directory is gone."""
    try:
        cluster = PgCluster.start()
    except PgUnavailable as e:  # no server here; one that fails to start is a failure
        pytest.skip(f"no PostgreSQL here: {e}") if os.environ.get("CI") != "true" else pytest.fail(str(e))
    base, port = cluster.base, cluster.port
    assert cluster.psql("SELECT 1") == "1"
    cluster.stop()
    assert not base.exists()
    with pytest.raises(OSError):
        __import__("socket").create_connection(("127.0.0.1", port), timeout=1).close()


def test_ci_fails_instead_of_skipping_without_the_server(tmp_path: object) -> None:
    """With no server binaries, a developer gets a one-line skip and CI=true gets a failure."""
    probe = textwrap.dedent(
        """
        import tests.pg as pgmod
        from tests.conftest import pg, pg_dsn  # noqa: F401  (the real fixtures)
        def missing():
            raise pgmod.PgUnavailable("PostgreSQL server not installed (test)")
        pgmod.find_bindir = missing
        def test_needs_pg(pg_dsn):
            pass
        """
    )
    path = tmp_path / "test_probe.py"  # type: ignore[operator]
    path.write_text(probe)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    outcomes = {}
    for ci in ("false", "true"):
        env = {**os.environ, "CI": ci, "PYTHONPATH": root}
        r = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", root,
             "-c", os.path.join(root, "pyproject.toml"), "--confcutdir", root, str(path)],
            capture_output=True, text=True, cwd=root, env=env, timeout=120,
        )  # fmt: skip
        outcomes[ci] = (r.returncode, r.stdout)
    assert outcomes["false"][0] == 0 and "1 skipped" in outcomes["false"][1], outcomes["false"][1]
    assert "PostgreSQL server not installed" in outcomes["false"][1]
    assert outcomes["true"][0] != 0 and "CI=true and PostgreSQL server not installed" in outcomes["true"][1], outcomes[
        "true"
    ][1]
