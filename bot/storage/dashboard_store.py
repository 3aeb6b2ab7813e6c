"""The `DashboardStore` port (`bot.core.dashboard`) on SQLite and on PostgreSQL.

Sign-in links and sessions are kept as SHA-256 hashes (migration 0012). The page queries are read-only
and each names its group. On SQLite the heavy ones (they read a whole group's answers or members) run on
a read-only connection of their own in a worker thread, so the bot's one writer connection, which
records answers, is never held up by a page load.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from bot.core.content import LETTERS
from bot.core.dashboard import Admin, ChannelRow, MemberLine, QuestionStat
from bot.core.dashboard_tallies import AnalyticsBase, AnswerDelta, AnswerRow, Census, QuestionTotals
from bot.storage import rows, sql
from bot.storage.dialect import pg
from bot.storage.rows import ts
from bot.storage.sqlite_store import SqliteStore

if TYPE_CHECKING:
    from bot.storage.pg_store import PgStore

T = TypeVar("T")
Row = Any

# ---------------------------------------------------------------------- statements (both dialects)

SAVE_LINK = "INSERT INTO dashboard_links (token_hash, group_id, member_id, expires_at) VALUES (?, ?, ?, ?)"
SWEEP_LINKS = "DELETE FROM dashboard_links WHERE expires_at <= ?"
#: A link is deleted when used, expired or not: it never works twice.
USE_LINK = "DELETE FROM dashboard_links WHERE token_hash = ? RETURNING group_id, member_id, expires_at"
LINK_VALID = "SELECT 1 FROM dashboard_links WHERE token_hash = ? AND expires_at > ?"
START_SESSION = (
    "INSERT INTO dashboard_sessions (token_hash, group_id, member_id, created_at, expires_at) VALUES (?, ?, ?, ?, ?)"
)
SWEEP_SESSIONS = "DELETE FROM dashboard_sessions WHERE expires_at <= ?"
FIND_SESSION = (
    "SELECT s.group_id, s.member_id, g.platform, g.external_id, g.name, g.tz, m.user_id, m.display_name,"
    " s.expires_at FROM dashboard_sessions s JOIN groups g ON g.id = s.group_id"
    " JOIN members m ON m.id = s.member_id AND m.group_id = s.group_id"
    " WHERE s.token_hash = ? AND s.expires_at > ?"
)
END_SESSION = "DELETE FROM dashboard_sessions WHERE token_hash = ?"
END_SESSIONS = "DELETE FROM dashboard_sessions WHERE group_id = ?"
END_LINKS = "DELETE FROM dashboard_links WHERE group_id = ?"

#: A channel with the options `schedule set` keeps beside its rule (deck, thread, ping role).
_CHANNEL_COLS = (
    "SELECT c.id, c.external_id, c.name, COALESCE(d.deck, 'tpm'), COALESCE(o.thread, 0), o.ping_role FROM channels c"
    " LEFT JOIN channel_decks d ON d.channel_id = c.id LEFT JOIN channel_options o ON o.channel_id = c.id"
)
CHANNELS = _CHANNEL_COLS + " WHERE c.group_id = ? ORDER BY c.name, c.id"
CHANNEL = _CHANNEL_COLS + " WHERE c.group_id = ? AND c.id = ?"
GROUP_SCHEDULES = sql.SCHEDULES + " WHERE c.group_id = ?"
CHANNEL_SCHEDULE = sql.SCHEDULES + " WHERE c.group_id = ? AND s.channel_id = ?"

ACTIVE_SINCE = "SELECT COUNT(DISTINCT member_id) FROM answers WHERE group_id = ? AND answered_at >= ?"
#: Answers per UTC hour (the core folds hours into the group's local days).
ANSWERS_BY_HOUR = (
    "SELECT substr(answered_at, 1, 13), COUNT(*), SUM(correct) FROM answers"
    " WHERE group_id = ? AND answered_at >= ? GROUP BY substr(answered_at, 1, 13)"
)
STREAKS = (
    "SELECT CASE WHEN last_active_day >= ? THEN streak ELSE 0 END, COUNT(*) FROM members WHERE group_id = ? GROUP BY 1"
)
#: Seconds from a post to an answer to it: the only expression the dialects write differently.
SECONDS = {
    "sqlite": "(julianday(a.answered_at) - julianday(p.created_at)) * 86400.0",
    "postgres": "EXTRACT(EPOCH FROM (a.answered_at::timestamptz - p.created_at::timestamptz))",
}


def question_stats_sql(dialect: str, sums: bool = False) -> str:
    """Per question: answers, correct, picks per letter, average seconds to answer (``sums``: their sum and
    count), and answers/correct of the top and bottom third of the group's members who answered anything,
    ranked by points."""
    picks = ", ".join(f"SUM(CASE WHEN a.choice = '{letter}' THEN 1 ELSE 0 END)" for letter in LETTERS)
    seconds = f"SUM({SECONDS[dialect]}), COUNT({SECONDS[dialect]})" if sums else f"AVG({SECONDS[dialect]})"
    return (
        "WITH ranked AS (SELECT id, NTILE(3) OVER (ORDER BY points DESC, id) AS third FROM members"
        " WHERE group_id = ? AND answered > 0)"
        f" SELECT a.question_id, COUNT(*), SUM(a.correct), {picks}, {seconds},"
        " SUM(CASE WHEN r.third = 1 THEN 1 ELSE 0 END), SUM(CASE WHEN r.third = 1 THEN a.correct ELSE 0 END),"
        " SUM(CASE WHEN r.third = 3 THEN 1 ELSE 0 END), SUM(CASE WHEN r.third = 3 THEN a.correct ELSE 0 END)"
        " FROM answers a JOIN posts p ON p.id = a.post_id LEFT JOIN ranked r ON r.id = a.member_id"
        " WHERE a.group_id = ? GROUP BY a.question_id"
    )


QUESTION_STATS = {d: question_stats_sql(d) for d in SECONDS}
#: The same with the seconds as sum and count: the start of a group's incremental tallies.
QUESTION_TOTALS = {d: question_stats_sql(d, sums=True) for d in SECONDS}
#: Members in the ranking of the thirds above.
RANKED = "SELECT id, points FROM members WHERE group_id = ? AND answered > 0"
#: `Census`: both counts from an index of the group's members (they hold the id), the highest id of all.
CENSUS = (
    "SELECT COUNT(CASE WHEN id <= ? THEN 1 END), COUNT(*), (SELECT COALESCE(MAX(id), 0) FROM members)"
    " FROM members WHERE group_id = ?"
)
#: A group's answers above a mark. On SQLite ``+a.group_id`` keeps the planner on the id range (the rows
#: since the last refresh) instead of answers_by_question (every answer of the group).
_AFTER = {"sqlite": "a.id > ? AND +a.group_id = ?", "postgres": "a.id > ? AND a.group_id = ?"}
DELTA_ROWS = {
    d: f"SELECT a.id, a.member_id, a.question_id, a.choice, a.correct, {SECONDS[d]}, a.answered_at"
    f" FROM answers a JOIN posts p ON p.id = a.post_id WHERE {_AFTER[d]}"
    for d in SECONDS
}
DELTA_MEMBERS = {
    d: f"SELECT id, points, answered FROM members WHERE id IN (SELECT a.member_id FROM answers a WHERE {_AFTER[d]})"
    for d in SECONDS
}
MEMBER_ANSWERS = {
    "sqlite": "SELECT id, member_id, question_id, correct FROM answers"
    " WHERE group_id = ? AND member_id IN (SELECT value FROM json_each(?))",
    "postgres": "SELECT id, member_id, question_id, correct FROM answers WHERE group_id = ? AND member_id = ANY(?::bigint[])",
}
#: SQLite: one writer, so ids follow the commit order and every id up to the highest is settled.
HIGHEST_ANSWER = "SELECT COALESCE(MAX(id), 0) FROM answers"
#: PostgreSQL: settled up to the highest id among the group's answers older than `SETTLE`; above it, the
#: ids already counted.
SETTLED_ANSWER = "SELECT COALESCE(MAX(id), 0) FROM answers WHERE group_id = ? AND answered_at < ?"
ANSWER_IDS_AFTER = "SELECT id FROM answers WHERE group_id = ? AND id > ?"

_MEMBER_COLS = "id, user_id, display_name, answered, correct, points, streak, best_streak, last_active_day, joined_at"
#: Sort keys: each a list of (expression, flipped) where flipped terms run against the chosen direction.
#: By name and by points they follow an index of each dialect (members_by_name, members_by_points: the
#: leaderboard's order, earliest scorer first on ties), so a page of a big group is read, not sorted.
_ORDER: dict[str, dict[str, list[tuple[str, bool]]]] = {
    dialect: {
        "name": [(name, False), ("id", False)],
        "answered": [("answered", False), ("id", False)],
        "accuracy": [("CASE WHEN answered > 0 THEN correct * 1.0 / answered ELSE -1 END", False), ("id", False)],
        "points": [("points", False), ("last_point_at", True), ("id", True)],
        "streak": [("streak", False), ("id", False)],
        "last_active": [("COALESCE(last_active_day, '')", False), ("id", False)],
    }
    for dialect, name in (("sqlite", "display_name COLLATE NOCASE"), ("postgres", "lower(display_name)"))
}


def member_lines_sql(dialect: str, sort: str, descending: bool) -> str:
    """A page of members; ``sort`` must be a key of ``_ORDER`` (never text from a request)."""
    terms = ", ".join(f"{expr} {'DESC' if descending != flipped else 'ASC'}" for expr, flipped in _ORDER[dialect][sort])
    return f"SELECT {_MEMBER_COLS} FROM members WHERE group_id = ? ORDER BY {terms} LIMIT ? OFFSET ?"


# ---------------------------------------------------------------------- row conversion


def _admin(row: Row) -> Admin:
    gid, mid, platform, group, gname, gtz, user, dname, expires = row
    return Admin(gid, mid, platform, group, gname, gtz, user, dname, datetime.fromisoformat(expires))


def _channels(channel_rows: list[Row], schedule_rows: list[Row]) -> list[ChannelRow]:
    schedules = {s.channel_id: s for s in map(rows.schedule, schedule_rows)}
    out = [ChannelRow(r[0], r[1], r[2], schedules.get(r[0]), str(r[3]), bool(r[4]), r[5] or None) for r in channel_rows]
    out.sort(key=lambda c: (c.schedule is None, c.name.casefold(), c.channel_id))
    return out


def _stat(r: Row) -> QuestionStat:
    qid, answers, correct, *rest = r
    picks = dict(zip(LETTERS, (int(n or 0) for n in rest[: len(LETTERS)]), strict=True))
    avg, top_n, top_c, bottom_n, bottom_c = rest[len(LETTERS) :]
    return QuestionStat(
        str(qid),
        int(answers),
        int(correct or 0),
        picks,
        float(avg) if avg is not None else None,
        (int(top_n or 0), int(top_c or 0)),
        (int(bottom_n or 0), int(bottom_c or 0)),
    )


def _totals(r: Row) -> QuestionTotals:
    qid, answers, correct, *rest = r
    n = len(LETTERS)
    picks = dict(zip(LETTERS, (int(x or 0) for x in rest[:n]), strict=True))
    seconds, timed, top_n, top_c, bottom_n, bottom_c = rest[n:]
    return QuestionTotals(
        str(qid),
        int(answers),
        int(correct or 0),
        picks,
        float(seconds or 0.0),
        int(timed or 0),
        (int(top_n or 0), int(top_c or 0)),
        (int(bottom_n or 0), int(bottom_c or 0)),
    )


def _row(r: Row) -> AnswerRow:
    return AnswerRow(int(r[0]), int(r[1]), str(r[2]), str(r[3]), bool(r[4]), float(r[5]) if r[5] is not None else None)


def _census(r: Row) -> Census:
    return Census(int(r[0] or 0), int(r[1]), int(r[2]))


def _member(r: Row) -> MemberLine:
    mid, user, name, answered, correct, points, streak, best, last, joined = r
    return MemberLine(mid, user, name, answered, correct, points, streak, best, last, datetime.fromisoformat(joined))


def _hours(r: list[Row]) -> list[tuple[datetime, int, int]]:
    return [(datetime.fromisoformat(h + ":00:00").replace(tzinfo=UTC), int(n), int(c or 0)) for h, n, c in r]


# ---------------------------------------------------------------------- SQLite


class SqliteDashboardStore:
    """`DashboardStore` on SQLite: writes on the bot's connection, page queries on a read-only one."""

    def __init__(self, store: SqliteStore) -> None:
        self.store = store

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        path = self.store.path
        if str(path) == ":memory:":
            return await self.store.run_sync(fn)

        def own_connection() -> T:
            conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
            try:
                conn.execute("PRAGMA busy_timeout=10000")
                conn.execute("BEGIN")  # one snapshot for the whole page
                return fn(conn)
            finally:
                conn.close()

        return await asyncio.to_thread(own_connection)

    async def save_dashboard_link(
        self, token_hash: str, group_id: int, member_id: int, now: datetime, expires_at: datetime
    ) -> None:
        def save(conn: sqlite3.Connection) -> None:
            conn.execute(SWEEP_LINKS, (ts(now),))
            conn.execute(SAVE_LINK, (token_hash, group_id, member_id, ts(expires_at)))

        await self.store.run_sync(save)

    async def use_dashboard_link(self, token_hash: str, now: datetime) -> tuple[int, int] | None:
        def use(conn: sqlite3.Connection) -> tuple[int, int] | None:
            row = conn.execute(USE_LINK, (token_hash,)).fetchone()
            if row is None or row[2] <= ts(now):
                return None
            return int(row[0]), int(row[1])

        return await self.store.run_sync(use)

    async def dashboard_link_valid(self, token_hash: str, now: datetime) -> bool:
        def valid(conn: sqlite3.Connection) -> bool:
            return conn.execute(LINK_VALID, (token_hash, ts(now))).fetchone() is not None

        return await self.store.run_sync(valid)

    async def start_dashboard_session(
        self, token_hash: str, group_id: int, member_id: int, now: datetime, expires_at: datetime
    ) -> None:
        def start(conn: sqlite3.Connection) -> None:
            conn.execute(SWEEP_SESSIONS, (ts(now),))
            conn.execute(START_SESSION, (token_hash, group_id, member_id, ts(now), ts(expires_at)))

        await self.store.run_sync(start)

    async def find_dashboard_session(self, token_hash: str, now: datetime) -> Admin | None:
        def find(conn: sqlite3.Connection) -> Admin | None:
            row = conn.execute(FIND_SESSION, (token_hash, ts(now))).fetchone()
            return _admin(row) if row else None

        return await self.store.run_sync(find)

    async def end_dashboard_session(self, token_hash: str) -> bool:
        def end(conn: sqlite3.Connection) -> bool:
            return conn.execute(END_SESSION, (token_hash,)).rowcount > 0

        return await self.store.run_sync(end)

    async def end_dashboard_sessions(self, group_id: int) -> int:
        def end(conn: sqlite3.Connection) -> int:
            conn.execute(END_LINKS, (group_id,))
            return int(conn.execute(END_SESSIONS, (group_id,)).rowcount)

        return await self.store.run_sync(end)

    async def group_channels(self, group_id: int) -> list[ChannelRow]:
        def read(conn: sqlite3.Connection) -> list[ChannelRow]:
            return _channels(
                conn.execute(CHANNELS, (group_id,)).fetchall(), conn.execute(GROUP_SCHEDULES, (group_id,)).fetchall()
            )

        return await self.store.run_sync(read)

    async def group_channel(self, group_id: int, channel_id: int) -> ChannelRow | None:
        def read(conn: sqlite3.Connection) -> ChannelRow | None:
            found = conn.execute(CHANNEL, (group_id, channel_id)).fetchall()
            if not found:
                return None
            return _channels(found, conn.execute(CHANNEL_SCHEDULE, (group_id, channel_id)).fetchall())[0]

        return await self.store.run_sync(read)

    async def activity(
        self, group_id: int, since: datetime, week_from: datetime, upto: int = 0
    ) -> tuple[Census, int, list[tuple[datetime, int, int]]]:
        def read(conn: sqlite3.Connection) -> tuple[Census, int, list[tuple[datetime, int, int]]]:
            census = _census(conn.execute(CENSUS, (upto, group_id)).fetchone())
            active = conn.execute(ACTIVE_SINCE, (group_id, ts(week_from))).fetchone()[0]
            return census, int(active), _hours(conn.execute(ANSWERS_BY_HOUR, (group_id, ts(since))).fetchall())

        return await self._read(read)

    async def streaks(self, group_id: int, alive_since: str) -> dict[int, int]:
        def read(conn: sqlite3.Connection) -> dict[int, int]:
            return {int(s): int(n) for s, n in conn.execute(STREAKS, (alive_since, group_id))}

        return await self._read(read)

    async def question_stats(self, group_id: int) -> list[QuestionStat]:
        def read(conn: sqlite3.Connection) -> list[QuestionStat]:
            return [_stat(r) for r in conn.execute(QUESTION_STATS["sqlite"], (group_id, group_id))]

        return await self._read(read)

    async def analytics_base(self, group_id: int, settle_before: datetime) -> AnalyticsBase:
        def read(conn: sqlite3.Connection) -> AnalyticsBase:
            mark = int(conn.execute(HIGHEST_ANSWER).fetchone()[0])
            totals = [_totals(r) for r in conn.execute(QUESTION_TOTALS["sqlite"], (group_id, group_id))]
            ranked = [(int(m), int(p)) for m, p in conn.execute(RANKED, (group_id,))]
            census = _census(conn.execute(CENSUS, (0, group_id)).fetchone())
            return AnalyticsBase(totals, ranked, mark, census)

        return await self._read(read)

    async def answers_after(self, group_id: int, mark: int, settle_before: datetime, upto: int) -> AnswerDelta:
        def read(conn: sqlite3.Connection) -> AnswerDelta:
            census = _census(conn.execute(CENSUS, (upto, group_id)).fetchone())
            settled = int(conn.execute(HIGHEST_ANSWER).fetchone()[0])
            found = [_row(r) for r in conn.execute(DELTA_ROWS["sqlite"], (mark, group_id))]
            members = [(int(m), int(p), int(n)) for m, p, n in conn.execute(DELTA_MEMBERS["sqlite"], (mark, group_id))]
            return AnswerDelta(found, members, max(mark, settled), census)

        return await self._read(read)

    async def member_answers(self, group_id: int, member_ids: list[int]) -> list[tuple[int, int, str, bool]]:
        def read(conn: sqlite3.Connection) -> list[tuple[int, int, str, bool]]:
            found = conn.execute(MEMBER_ANSWERS["sqlite"], (group_id, json.dumps(member_ids)))
            return [(int(i), int(m), str(q), bool(c)) for i, m, q, c in found]

        return await self._read(read)

    async def member_lines(
        self, group_id: int, sort: str, descending: bool, limit: int, offset: int
    ) -> list[MemberLine]:
        def read(conn: sqlite3.Connection) -> list[MemberLine]:
            return [
                _member(r)
                for r in conn.execute(member_lines_sql("sqlite", sort, descending), (group_id, limit, offset))
            ]

        return await self._read(read)


# ---------------------------------------------------------------------- PostgreSQL


class PgDashboardStore:
    """`DashboardStore` on a `PgStore`'s pool."""

    def __init__(self, store: PgStore) -> None:
        self.store = store

    async def save_dashboard_link(
        self, token_hash: str, group_id: int, member_id: int, now: datetime, expires_at: datetime
    ) -> None:
        await self.store._execute(SWEEP_LINKS, ts(now))
        await self.store._execute(SAVE_LINK, token_hash, group_id, member_id, ts(expires_at))

    async def use_dashboard_link(self, token_hash: str, now: datetime) -> tuple[int, int] | None:
        row = await self.store._fetchrow(USE_LINK, token_hash)
        if row is None or row[2] <= ts(now):
            return None
        return int(row[0]), int(row[1])

    async def dashboard_link_valid(self, token_hash: str, now: datetime) -> bool:
        return await self.store._fetchrow(LINK_VALID, token_hash, ts(now)) is not None

    async def start_dashboard_session(
        self, token_hash: str, group_id: int, member_id: int, now: datetime, expires_at: datetime
    ) -> None:
        await self.store._execute(SWEEP_SESSIONS, ts(now))
        await self.store._execute(START_SESSION, token_hash, group_id, member_id, ts(now), ts(expires_at))

    async def find_dashboard_session(self, token_hash: str, now: datetime) -> Admin | None:
        row = await self.store._fetchrow(FIND_SESSION, token_hash, ts(now))
        return _admin(tuple(row)) if row else None

    async def end_dashboard_session(self, token_hash: str) -> bool:
        return await self.store._execute(END_SESSION, token_hash) > 0

    async def end_dashboard_sessions(self, group_id: int) -> int:
        await self.store._execute(END_LINKS, group_id)
        return await self.store._execute(END_SESSIONS, group_id)

    async def group_channels(self, group_id: int) -> list[ChannelRow]:
        found = await self.store._fetch(CHANNELS, group_id)
        return _channels(
            [tuple(r) for r in found], [tuple(r) for r in await self.store._fetch(GROUP_SCHEDULES, group_id)]
        )

    async def group_channel(self, group_id: int, channel_id: int) -> ChannelRow | None:
        found = await self.store._fetch(CHANNEL, group_id, channel_id)
        if not found:
            return None
        schedule = await self.store._fetch(CHANNEL_SCHEDULE, group_id, channel_id)
        return _channels([tuple(r) for r in found], [tuple(r) for r in schedule])[0]

    async def activity(
        self, group_id: int, since: datetime, week_from: datetime, upto: int = 0
    ) -> tuple[Census, int, list[tuple[datetime, int, int]]]:
        async with self.store._tx(isolation="repeatable_read", readonly=True) as conn:
            census = await conn.fetchrow(pg(CENSUS), upto, group_id)
            active = await conn.fetchval(pg(ACTIVE_SINCE), group_id, ts(week_from))
            hours = await conn.fetch(pg(ANSWERS_BY_HOUR), group_id, ts(since))
        return _census(census), int(active), _hours([tuple(r) for r in hours])

    async def streaks(self, group_id: int, alive_since: str) -> dict[int, int]:
        return {int(s): int(n) for s, n in await self.store._fetch(STREAKS, alive_since, group_id)}

    async def question_stats(self, group_id: int) -> list[QuestionStat]:
        return [_stat(tuple(r)) for r in await self.store._fetch(QUESTION_STATS["postgres"], group_id, group_id)]

    async def analytics_base(self, group_id: int, settle_before: datetime) -> AnalyticsBase:
        async with self.store._tx(isolation="repeatable_read", readonly=True) as conn:
            mark = int(await conn.fetchval(pg(SETTLED_ANSWER), group_id, ts(settle_before)))
            recent = [int(r[0]) for r in await conn.fetch(pg(ANSWER_IDS_AFTER), group_id, mark)]
            totals = [_totals(tuple(r)) for r in await conn.fetch(pg(QUESTION_TOTALS["postgres"]), group_id, group_id)]
            ranked = [(int(m), int(p)) for m, p in await conn.fetch(pg(RANKED), group_id)]
            census = await conn.fetchrow(pg(CENSUS), 0, group_id)
        return AnalyticsBase(totals, ranked, mark, _census(census), recent)

    async def answers_after(self, group_id: int, mark: int, settle_before: datetime, upto: int) -> AnswerDelta:
        async with self.store._tx(isolation="repeatable_read", readonly=True) as conn:
            census = await conn.fetchrow(pg(CENSUS), upto, group_id)
            found = await conn.fetch(pg(DELTA_ROWS["postgres"]), mark, group_id)
            members = await conn.fetch(pg(DELTA_MEMBERS["postgres"]), mark, group_id)
        cutoff = ts(settle_before)
        settled = max([mark] + [int(r[0]) for r in found if r[6] < cutoff])
        rows_ = [_row(tuple(r)) for r in found]
        return AnswerDelta(rows_, [(int(m), int(p), int(n)) for m, p, n in members], settled, _census(census))

    async def member_answers(self, group_id: int, member_ids: list[int]) -> list[tuple[int, int, str, bool]]:
        found = await self.store._fetch(MEMBER_ANSWERS["postgres"], group_id, member_ids)
        return [(int(i), int(m), str(q), bool(c)) for i, m, q, c in found]

    async def member_lines(
        self, group_id: int, sort: str, descending: bool, limit: int, offset: int
    ) -> list[MemberLine]:
        found = await self.store._fetch(member_lines_sql("postgres", sort, descending), group_id, limit, offset)
        return [_member(tuple(r)) for r in found]
