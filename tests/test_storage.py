"""The stores' contract (every test taking `store` runs on SQLite and on PostgreSQL): idempotency, group
commit, deletion; and the migrations of both dialects."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from bot.core.ports import AnswerIn, SchemaTooNew, StoreError, StreakState
from bot.storage import ManagedStore, SqliteStore
from bot.storage.migrations import DEFAULT_DIR, discover, migrate
from bot.storage.rows import ts
from tests.conftest import Outside

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def keep(state: StreakState) -> StreakState:
    return state


def tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_every_migration_applies_to_an_empty_database(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "empty.db", isolation_level=None)
    applied = migrate(conn)
    assert applied == [m.name for m in discover()]
    assert {"groups", "channels", "members", "posts", "answers", "schedules", "deliveries", "path_steps"} <= {
        r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
    }
    assert migrate(conn) == [], "a second run must apply nothing"
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []


def test_failed_migration_rolls_back_and_is_not_recorded(tmp_path: Path) -> None:
    folder = tmp_path / "migs"
    folder.mkdir()
    (folder / "0001_ok.sql").write_text("CREATE TABLE a (x INTEGER);")
    (folder / "0002_bad.sql").write_text("CREATE TABLE b (y INTEGER);\nINSERT INTO nowhere VALUES (1);")
    conn = sqlite3.connect(tmp_path / "m.db", isolation_level=None)
    with pytest.raises(StoreError, match="0002_bad failed and was rolled back"):
        migrate(conn, folder)
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "a" in names and "b" not in names
    assert conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone()[0] == 1


def test_refuses_a_database_from_a_newer_version(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "new.db", isolation_level=None)
    migrate(conn)
    conn.execute("INSERT INTO schema_migrations VALUES (999, '0999_future', 'x')")
    with pytest.raises(SchemaTooNew, match="schema version 999"):
        migrate(conn)


def test_migration_names_must_not_have_gaps(tmp_path: Path) -> None:
    (tmp_path / "0001_a.sql").write_text("SELECT 1;")
    (tmp_path / "0003_c.sql").write_text("SELECT 1;")
    with pytest.raises(StoreError, match="expected version 0002"):
        discover(tmp_path)


def test_bundled_migrations_are_numbered() -> None:
    assert [m.version for m in discover(DEFAULT_DIR)] == list(range(1, len(discover(DEFAULT_DIR)) + 1))


@pytest.mark.sqlite_only
async def test_store_uses_wal_and_foreign_keys(store: SqliteStore) -> None:
    def pragmas(conn: sqlite3.Connection) -> tuple[str, int, int]:
        return (
            conn.execute("PRAGMA journal_mode").fetchone()[0],
            conn.execute("PRAGMA foreign_keys").fetchone()[0],
            conn.execute("PRAGMA synchronous").fetchone()[0],
        )

    # run_sync is how other storage modules reach the connection's thread (pins aiosqlite's _execute).
    assert await store.run_sync(pragmas) == ("wal", 1, 2)


async def test_ensure_member_is_idempotent_and_tracks_renames(store: SqliteStore) -> None:
    a = await store.ensure_member("console", "g", "c", "u1", "Ann", now=NOW)
    again = await store.ensure_member("console", "g", "c", "u1", "Ann", now=NOW)
    renamed = await store.ensure_member("console", "g", "c", "u1", "Annie", now=NOW)
    other_channel = await store.ensure_member("console", "g", "c2", "u1", "Annie", now=NOW)
    assert a == again
    assert renamed.member_id == a.member_id and renamed.display_name == "Annie"
    assert other_channel.member_id == a.member_id and other_channel.channel_id != a.channel_id
    other_group = await store.ensure_member("slack", "g", "c", "u1", "Ann", now=NOW)
    assert other_group.member_id != a.member_id, "progress is per member per group"


async def _setup(store: SqliteStore) -> tuple[int, int, int]:
    m = await store.ensure_member("console", "g", "c", "u1", "Ann", now=NOW)
    post = await store.create_post(m.group_id, m.channel_id, None, "question", "t-a", NOW)
    return m.member_id, m.group_id, post.id


def _answer(
    member: int, group: int, post: int, choice: str = "A", correct: bool = True, when: datetime = NOW
) -> AnswerIn:
    return AnswerIn(member, post, group, "t-a", choice, correct, when, date(2026, 11, 23))


async def test_double_answer_counts_once(store: SqliteStore) -> None:
    member, group, post = await _setup(store)
    first = await store.record_answer(_answer(member, group, post, "A", True), keep)
    second = await store.record_answer(_answer(member, group, post, "B", False), keep)
    assert first.recorded and first.first_try
    assert not second.recorded and second.choice == "A" and second.correct
    stats = await store.member_stats(member)
    assert (stats.answered, stats.correct, stats.points) == (1, 1, 1)
    assert await store.choice_counts(post) == {"A": 1}


async def test_concurrent_clicks_are_group_committed_and_each_counted_once(store: SqliteStore) -> None:
    members = [await store.ensure_member("console", "g", "c", f"u{i}", f"U{i}", now=NOW) for i in range(50)]
    post = await store.create_post(members[0].group_id, members[0].channel_id, None, "question", "t-a", NOW)
    calls = [
        store.record_answer(_answer(m.member_id, m.group_id, post.id, "A", True), keep)
        for m in members
        for _ in range(3)  # everyone clicks three times at once
    ]
    before = store.batches_committed
    outcomes = await asyncio.gather(*calls)
    assert sum(o.recorded for o in outcomes) == 50
    assert store.batches_committed - before < 10, "simultaneous answers should share commits"
    assert await store.choice_counts(post.id) == {"A": 50}


async def test_answers_are_on_disk_when_acknowledged(store: ManagedStore, outside: Outside) -> None:
    member, group, post = await _setup(store)
    await store.record_answer(_answer(member, group, post), keep)
    # A second, independent connection sees it at once: it was committed before we were told.
    assert await outside("SELECT COUNT(*) FROM answers") == [(1,)]


async def test_streak_function_runs_inside_the_transaction(store: SqliteStore) -> None:
    member, group, post = await _setup(store)

    def bump(state: StreakState) -> StreakState:
        return StreakState(state.streak + 5, 9, date(2026, 11, 23), 1)

    out = await store.record_answer(_answer(member, group, post), bump)
    stats = await store.member_stats(member)
    assert out.streak.streak == 5 and stats.streak == StreakState(5, 9, date(2026, 11, 23), 1)


async def test_first_try_only_once_per_question(store: SqliteStore) -> None:
    member, group, post = await _setup(store)
    m = await store.ensure_member("console", "g", "c", "u1", "Ann", now=NOW)
    again = await store.create_post(m.group_id, m.channel_id, m.member_id, "question", "t-a", NOW)
    await store.record_answer(_answer(member, group, post, "B", False), keep)
    second = await store.record_answer(_answer(member, group, again.id, "A", True), keep)
    assert second.recorded and not second.first_try
    assert (await store.member_stats(member)).points == 0, "a retry of a question scores no point"


async def test_leaderboard_order_ties_and_hiding(store: SqliteStore) -> None:
    ids = []
    for i, name in enumerate(["Ann", "Bob", "Cy"]):
        m = await store.ensure_member("console", "g", "c", f"u{i}", name, now=NOW)
        ids.append(m)
    group = ids[0].group_id
    plan = {"Ann": 1, "Bob": 2, "Cy": 1}
    t = NOW
    for m in [ids[2], ids[1], ids[1], ids[0]]:  # Cy scores before Ann: Cy wins the tie
        p = await store.create_post(group, m.channel_id, m.member_id, "question", f"q{t.timestamp()}", t)
        a = AnswerIn(m.member_id, p.id, group, f"q{t.timestamp()}", "A", True, t, date(2026, 11, 23))
        await store.record_answer(a, keep)
        t += timedelta(minutes=1)
    board = await store.leaderboard(group, None, 10)
    assert [(r.display_name, r.points) for r in board] == [("Bob", 2), ("Cy", 1), ("Ann", 1)]
    assert plan == {r.display_name: r.points for r in board}
    week = await store.leaderboard(group, date(2026, 11, 23), 10)
    assert [r.display_name for r in week] == ["Bob", "Cy", "Ann"]
    assert await store.leaderboard(group, date(2026, 11, 16), 10) == []
    await store.set_leaderboard_hidden(ids[1].member_id, True)
    assert [r.display_name for r in await store.leaderboard(group, None, 10)] == ["Cy", "Ann"]


async def test_forget_member_leaves_no_row_behind(store: ManagedStore, outside: Outside) -> None:
    member, group, post = await _setup(store)
    m = await store.ensure_member("console", "g", "c", "u1", "Ann", now=NOW)
    await store.record_answer(_answer(member, group, post), keep)
    await store.mark_step(member, 1, NOW)
    await store.create_post(group, m.channel_id, member, "tip", "tip-t1", NOW)
    bob = await store.ensure_member("console", "g", "c", "u2", "Bob", now=NOW)
    await store.record_answer(_answer(bob.member_id, group, post), keep)
    removed = await store.forget_member(member)
    assert removed >= 5
    for table in ("answers", "cards", "path_steps", "weekly_points", "posts"):
        assert await outside(f"SELECT COUNT(*) FROM {table} WHERE member_id = ?", member) == [(0,)], table
    assert await outside("SELECT COUNT(*) FROM members WHERE id = ?", member) == [(0,)]
    assert await outside("SELECT COUNT(*) FROM answers") == [(1,)], "Bob's answer stays"


async def test_answer_for_a_deleted_member_fails_alone(store: SqliteStore) -> None:
    member, group, post = await _setup(store)
    bob = await store.ensure_member("console", "g", "c", "u2", "Bob", now=NOW)
    await store.forget_member(member)
    results = await asyncio.gather(
        store.record_answer(_answer(member, group, post), keep),
        store.record_answer(_answer(bob.member_id, group, post), keep),
        return_exceptions=True,
    )
    assert isinstance(results[0], StoreError)
    assert not isinstance(results[1], BaseException) and results[1].recorded


async def test_a_burst_of_posts_shares_commits_and_every_post_is_on_disk_when_returned(
    store: ManagedStore, outside: Outside
) -> None:
    members = [await store.ensure_member("console", "g", "c", f"u{i}", f"U{i}", now=NOW) for i in range(40)]
    gone = members.pop()
    await store.forget_member(gone.member_id)
    before = store.batches_committed
    posts = await asyncio.gather(
        *(store.create_post(m.group_id, m.channel_id, m.member_id, "question", "t-a", NOW) for m in members),
        store.create_post(gone.group_id, gone.channel_id, gone.member_id, "question", "t-a", NOW),
        return_exceptions=True,
    )
    assert isinstance(posts[-1], StoreError), "a post for a deleted member fails alone"
    made = [p for p in posts[:-1] if not isinstance(p, BaseException)]
    assert len({p.id for p in made}) == len(members) and all(p.member_id for p in made)
    assert 1 <= store.batches_committed - before < 10, "posts made together should share group commits"
    # Each was committed before its caller heard of it: another connection sees every one.
    assert await outside("SELECT COUNT(*) FROM posts") == [(len(members),)]


async def test_reads_made_together_each_get_their_own_answer_or_error(store: SqliteStore) -> None:
    ann = await store.ensure_member("console", "g", "c", "u1", "Ann", now=NOW)
    await store.mark_step(ann.member_id, 2, NOW)
    results = await asyncio.gather(
        store.steps_done(ann.member_id),
        store.member_stats(999_999),  # nobody: this one raises, the others are unaffected
        store.member_stats(ann.member_id),
        store.shown_counts(ann.member_id, "tip"),
        return_exceptions=True,
    )
    assert results[0] == {2}
    assert isinstance(results[1], StoreError)
    assert not isinstance(results[2], BaseException) and results[2].answered == 0
    assert results[3] == {}


async def test_last_question_post_prefers_the_newest_visible(store: SqliteStore) -> None:
    ann = await store.ensure_member("console", "g", "c", "u1", "Ann", now=NOW)
    bob = await store.ensure_member("console", "g", "c", "u2", "Bob", now=NOW)
    group_post = await store.create_post(ann.group_id, ann.channel_id, None, "question", "t-a", NOW)
    await store.set_post_message(group_post.id, "m1")
    bobs = await store.create_post(ann.group_id, ann.channel_id, bob.member_id, "question", "t-b", NOW)
    # A channel question not (yet) posted is seen by nobody: a text answer does not go to it.
    await store.create_post(ann.group_id, ann.channel_id, None, "question", "t-c", NOW)
    assert (await store.last_question_post(ann.channel_id, ann.member_id)).id == group_post.id  # type: ignore[union-attr]
    assert (await store.last_question_post(ann.channel_id, bob.member_id)).id == bobs.id  # type: ignore[union-attr]


async def test_closed_store_says_so(db_path: Path) -> None:
    s = SqliteStore(db_path)
    await s.start()
    await s.close()
    with pytest.raises(StoreError, match="not started"):
        await s.get_post(1)


async def test_caches_never_serve_a_forgotten_member_or_stale_zone(store: SqliteStore) -> None:
    first = await store.ensure_member("console", "g", "c", "u1", "Ann", now=NOW)
    await store.set_member_tz(first.member_id, "Asia/Tokyo")
    assert (await store.ensure_member("console", "g", "c", "u1", "Ann", now=NOW)).tz == "Asia/Tokyo"
    post = await store.create_post(first.group_id, first.channel_id, first.member_id, "question", "t-a", NOW)
    assert await store.get_post(post.id) == post
    await store.forget_member(first.member_id)
    again = await store.ensure_member("console", "g", "c", "u1", "Ann", now=NOW)
    assert again.tz is None, "a forgotten member starts afresh (no cached zone)"
    assert (await store.member_stats(again.member_id)).answered == 0
    assert await store.get_post(post.id) is None, "their personal posts are gone, not cached"


async def test_ids_are_never_reused_after_a_delete(store: ManagedStore, outside: Outside) -> None:
    """A forgotten member's id (still cached by another process, or in a button) never names someone else."""
    ann = await store.ensure_member("console", "g", "c", "u1", "Ann", now=NOW)
    post = await store.create_post(ann.group_id, ann.channel_id, ann.member_id, "question", "t-a", NOW)
    await store.forget_member(ann.member_id)
    bob = await store.ensure_member("console", "g", "c", "u2", "Bob", now=NOW)
    assert bob.member_id != ann.member_id
    again = await store.create_post(bob.group_id, bob.channel_id, bob.member_id, "question", "t-a", NOW)
    assert again.id != post.id
    await outside("DELETE FROM groups")
    store.invalidate_caches()
    cy = await store.ensure_member("console", "g", "c", "u3", "Cy", now=NOW)
    assert cy.group_id != bob.group_id and cy.channel_id != bob.channel_id and cy.member_id != bob.member_id


def test_ids_migration_keeps_rows_ids_and_foreign_keys(tmp_path: Path) -> None:
    """0003 rebuilds the id tables on a populated version-2 database: every row and id stays, deletes
    still cascade, and the ids of deleted rows are not handed out again."""
    folder = tmp_path / "migs"
    folder.mkdir()
    for mig in discover()[:2]:
        (folder / f"{mig.name}.sql").write_text(mig.sql)
    path = tmp_path / "v2.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA foreign_keys=ON")
    migrate(conn, folder)
    t = "2026-11-23T12:00:00.000000Z"
    conn.execute("INSERT INTO groups (id, platform, external_id, created_at) VALUES (1, 'console', 'g', ?)", (t,))
    conn.execute("INSERT INTO channels (id, group_id, external_id) VALUES (5, 1, 'c')")
    conn.execute("INSERT INTO members (id, group_id, user_id, joined_at, points) VALUES (7, 1, 'u1', ?, 3)", (t,))
    conn.execute("INSERT INTO members (id, group_id, user_id, joined_at) VALUES (9, 1, 'u2', ?)", (t,))
    conn.execute(
        "INSERT INTO posts (id, group_id, channel_id, member_id, kind, item_id, created_at) VALUES (11, 1, 5, 9, 'question', 'q', ?)",
        (t,),
    )
    conn.execute(
        "INSERT INTO posts (id, group_id, channel_id, kind, item_id, created_at) VALUES (12, 1, 5, 'question', 'q', ?)",
        (t,),
    )
    conn.execute(
        "INSERT INTO answers (member_id, post_id, group_id, question_id, choice, correct, first_try, answered_at) VALUES (9, 12, 1, 'q', 'A', 1, 1, ?)",
        (t,),
    )
    conn.execute("INSERT INTO cards (member_id, question_id, card, due) VALUES (9, 'q', '{}', ?)", (t,))
    conn.execute(
        "INSERT INTO schedules (channel_id, local_time, tz, days, kind, created_at, updated_at) VALUES (5, '09:00', 'UTC', '0', 'question', ?, ?)",
        (t, t),
    )
    conn.execute(
        "INSERT INTO deliveries (id, channel_id, scheduled_for, status, post_id) VALUES (4, 5, ?, 'sent', 12)", (t,)
    )
    before = {tb: conn.execute(f"SELECT * FROM {tb} ORDER BY 1, 2").fetchall() for tb in _ALL_TABLES}

    assert migrate(conn) == [m.name for m in discover()[2:]]

    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1, "the connection's setting is restored"
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    after = {tb: conn.execute(f"SELECT * FROM {tb} ORDER BY 1, 2").fetchall() for tb in _ALL_TABLES}
    for tb in _ALL_TABLES:  # later migrations may add columns: compare the ones there were
        assert [r[: len(before[tb][0])] for r in after[tb]] == before[tb], tb
    indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")}
    assert {"members_by_points", "members_by_name", "posts_latest", "posts_dealt", "posts_unrevealed"} <= indexes
    assert "deliveries_by_status" in indexes
    # Deleting member 9 still cascades to their answers, cards and personal post; the delivery keeps going.
    conn.execute("DELETE FROM members WHERE id = 9")
    assert conn.execute("SELECT COUNT(*) FROM answers").fetchone()[0] == 0
    assert conn.execute("SELECT COUNT(*) FROM cards").fetchone()[0] == 0
    assert conn.execute("SELECT id FROM posts").fetchall() == [(12,)]
    new = conn.execute("INSERT INTO members (group_id, user_id, joined_at) VALUES (1, 'u3', ?) RETURNING id", (t,))
    assert new.fetchone()[0] == 10, "the deleted member's id 9 is not reused"
    conn.execute("DELETE FROM posts WHERE id = 12")
    assert conn.execute("SELECT post_id FROM deliveries").fetchone()[0] is None
    new = conn.execute(
        "INSERT INTO posts (group_id, channel_id, kind, item_id, created_at) VALUES (1, 5, 'tip', 't', ?) RETURNING id",
        (t,),
    )
    assert new.fetchone()[0] == 13
    conn.execute("DELETE FROM groups")
    assert all(conn.execute(f"SELECT COUNT(*) FROM {tb}").fetchone()[0] == 0 for tb in _ALL_TABLES)


_ALL_TABLES = ("groups", "channels", "members", "posts", "answers", "cards", "schedules", "deliveries")


def test_a_rebuild_that_would_orphan_rows_is_rolled_back(tmp_path: Path) -> None:
    """Migrations run with foreign keys off (so a rebuilt parent does not cascade), and a migration that
    drops a table is checked before it commits: losing a parent row rolls it back."""
    folder = tmp_path / "migs"
    folder.mkdir()
    (folder / "0001_init.sql").write_text(
        "CREATE TABLE p (id INTEGER PRIMARY KEY);\n"
        "CREATE TABLE c (id INTEGER PRIMARY KEY, p_id INTEGER REFERENCES p (id) ON DELETE CASCADE);\n"
        "INSERT INTO p VALUES (1), (2);\nINSERT INTO c VALUES (10, 1), (20, 2);"
    )
    (folder / "0002_rebuild.sql").write_text(
        "CREATE TABLE p_new (id INTEGER PRIMARY KEY AUTOINCREMENT);\n"
        "INSERT INTO p_new SELECT id FROM p WHERE id = 1;\nDROP TABLE p;\nALTER TABLE p_new RENAME TO p;"
    )
    conn = sqlite3.connect(tmp_path / "m.db", isolation_level=None)
    conn.execute("PRAGMA foreign_keys=ON")
    with pytest.raises(StoreError, match="0002_rebuild left a c row"):
        migrate(conn, folder)
    assert conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone()[0] == 1
    assert conn.execute("SELECT id FROM p ORDER BY id").fetchall() == [(1,), (2,)]
    assert conn.execute("SELECT COUNT(*) FROM c").fetchone()[0] == 2, "nothing cascaded"
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1


def test_times_are_stored_as_utc_text_that_sorts_in_time_order() -> None:
    # Every stored time is this text (both stores compare and sort it as text): the format must not drift.
    east = timezone(timedelta(hours=5, minutes=30))
    assert ts(datetime(2026, 11, 23, 9, 5, tzinfo=UTC)) == "2026-11-23T09:05:00.000000Z"
    assert ts(datetime(2026, 11, 23, 9, 5, 1, 42, tzinfo=east)) == "2026-11-23T03:35:01.000042Z"
    times = [datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=s * 7919.3) for s in range(200)]
    assert sorted(ts(t) for t in reversed(times)) == [ts(t) for t in times]
    assert [ts(t) for t in times] == [t.strftime("%Y-%m-%dT%H:%M:%S.%fZ") for t in times], "as before"


def test_forget_me_counts_every_table_that_holds_rows_about_a_member() -> None:
    """`forget_member` tells the member how many records went: every table whose rows go with the member
    (a foreign key to members with ON DELETE CASCADE) must be in `sql.MEMBER_TABLES`, or the count is short."""
    from bot.storage import sql

    conn = sqlite3.connect(":memory:")
    migrate(conn)
    tables = [t for (t,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    cascading = {
        (t, fk[3])
        for t in tables
        for fk in conn.execute(f"PRAGMA foreign_key_list({t})")
        if fk[2] == "members" and fk[6] == "CASCADE"
    }
    assert cascading and cascading | {("members", "id")} == set(sql.MEMBER_TABLES)
