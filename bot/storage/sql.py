"""The statement texts both stores run, written once with ``?`` placeholders.

`SqliteStore` runs them as they are; `PgStore` runs `bot.storage.dialect.pg` of them. A statement that
must differ between the dialects does not live here but in `bot.storage.dialect`. Times are bound as
UTC ISO-8601 text and flags as 0/1 on both stores (see `bot.storage.rows.ts`).
"""

from __future__ import annotations

# ---------------------------------------------------------------------- members

POST_COLS = "id, group_id, channel_id, member_id, kind, item_id, created_at, message_id, revealed_at"

#: The member with what a command would otherwise read on its own (`MemberRef.notice`, ``last_day``,
#: ``deck``): whether a notice waits (a suggestion's outcome, reminders turned off), the last active day
#: and the channel's deck — primary-key look-ups in the same statement.
MEMBER_LOOKUP = (
    "SELECT g.id, g.tz, c.id, m.id, m.display_name, m.tz, m.last_active_day,"
    " CASE WHEN EXISTS (SELECT 1 FROM member_notices n WHERE n.member_id = m.id)"
    " OR EXISTS (SELECT 1 FROM reminders r WHERE r.member_id = m.id AND r.notice IS NOT NULL) THEN 1 ELSE 0 END,"
    " (SELECT d.deck FROM channel_decks d WHERE d.channel_id = c.id) FROM groups g"
    " LEFT JOIN channels c ON c.group_id = g.id AND c.external_id = ?"
    " LEFT JOIN members m ON m.group_id = g.id AND m.user_id = ?"
    " WHERE g.platform = ? AND g.external_id = ?"
)
UPSERT_GROUP = (
    "INSERT INTO groups (platform, external_id, name, created_at) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (platform, external_id) DO UPDATE SET name = CASE WHEN excluded.name <> ''"
    " THEN excluded.name ELSE groups.name END RETURNING id, tz"
)
UPSERT_CHANNEL = (
    "INSERT INTO channels (group_id, external_id, name) VALUES (?, ?, ?)"
    " ON CONFLICT (group_id, external_id) DO UPDATE SET name = CASE WHEN excluded.name <> ''"
    " THEN excluded.name ELSE channels.name END RETURNING id"
)
UPSERT_MEMBER = (
    "INSERT INTO members (group_id, user_id, display_name, joined_at) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (group_id, user_id) DO UPDATE SET display_name = excluded.display_name RETURNING id, tz"
)
_FIND_MEMBER = "SELECT m.id, m.user_id, m.display_name, m.tz, g.tz FROM members m JOIN groups g ON g.id = m.group_id"
FIND_MEMBER_BY_ID = _FIND_MEMBER + " WHERE m.group_id = ? AND m.user_id = ?"


def find_member_by_name(name_equals: str) -> str:
    """Find a member by display name; ``name_equals`` is the dialect's case-insensitive comparison."""
    return _FIND_MEMBER + f" WHERE m.group_id = ? AND {name_equals} ORDER BY m.id LIMIT 1"


SET_MEMBER_TZ = "UPDATE members SET tz = ? WHERE id = ?"
SET_LEADERBOARD_HIDDEN = "UPDATE members SET leaderboard_hidden = ? WHERE id = ?"
MEMBER_STATS = (
    "SELECT answered, correct, points, streak, best_streak, last_active_day, freezes, tz,"
    " leaderboard_hidden, joined_at FROM members WHERE id = ?"
)
#: (table, member column) of every table that holds rows about a member: `forget_member` counts these.
MEMBER_TABLES = (
    ("answers", "member_id"),
    ("cards", "member_id"),
    ("attempts", "member_id"),
    ("practice_cards", "member_id"),
    ("path_steps", "member_id"),
    ("weekly_points", "member_id"),
    ("posts", "member_id"),
    ("reminders", "member_id"),
    ("reminder_sends", "member_id"),
    ("suggestions", "member_id"),
    ("member_notices", "member_id"),
    ("channel_notices", "member_id"),
    ("reward_grants", "member_id"),
    ("dashboard_links", "member_id"),
    ("dashboard_sessions", "member_id"),
    ("members", "id"),
)
#: How many rows `forget_member` deletes (one ``?`` per table, each the member's id).
COUNT_MEMBER_ROWS = "SELECT " + " + ".join(f"(SELECT COUNT(*) FROM {t} WHERE {c} = ?)" for t, c in MEMBER_TABLES)
DELETE_MEMBER = "DELETE FROM members WHERE id = ?"

# ---------------------------------------------------------------------- posts

CREATE_POST = (
    "INSERT INTO posts (group_id, channel_id, member_id, kind, item_id, created_at)"
    f" VALUES (?, ?, ?, ?, ?, ?) RETURNING {POST_COLS}"
)
GET_POST = f"SELECT {POST_COLS} FROM posts WHERE id = ?"
LAST_QUESTION_POST = (
    f"SELECT {POST_COLS} FROM posts WHERE id = (SELECT MAX(id) FROM ("
    " SELECT MAX(id) AS id FROM posts WHERE channel_id = ? AND member_id = ? AND kind = 'question'"
    " UNION ALL"
    " SELECT MAX(id) FROM posts WHERE channel_id = ? AND member_id IS NULL AND kind = 'question'"
    " AND message_id IS NOT NULL) AS latest)"
)
SET_POST_MESSAGE = "UPDATE posts SET message_id = ? WHERE id = ?"
DISCARD_POST = "DELETE FROM posts WHERE id = ? AND message_id IS NULL"
SHOWN_COUNTS = "SELECT item_id, COUNT(*) FROM posts WHERE member_id = ? AND kind = ? GROUP BY item_id"
CHOICE_COUNTS = "SELECT choice, COUNT(*) FROM answers WHERE post_id = ? GROUP BY choice"

# ---------------------------------------------------------------------- answers

INSERT_ANSWER = (
    "INSERT INTO answers (member_id, post_id, group_id, question_id, choice, correct, first_try, answered_at)"
    " VALUES (?, ?, ?, ?, ?, ?,"
    " CASE WHEN EXISTS (SELECT 1 FROM answers WHERE member_id = ? AND question_id = ?) THEN 0 ELSE 1 END, ?)"
    " ON CONFLICT (member_id, post_id) DO NOTHING RETURNING first_try"
)
STREAK_STATE = "SELECT streak, best_streak, last_active_day, freezes FROM members WHERE id = ?"
EARLIER_ANSWER = "SELECT choice, correct, first_try FROM answers WHERE member_id = ? AND post_id = ?"
SCORE_MEMBER = (
    "UPDATE members SET answered = answered + 1, correct = correct + ?, points = points + ?,"
    " last_point_at = CASE WHEN ? = 1 THEN ? ELSE last_point_at END,"
    " streak = ?, best_streak = ?, last_active_day = ?, freezes = ? WHERE id = ?"
)
ADD_WEEKLY_POINT = (
    "INSERT INTO weekly_points (member_id, week, group_id, points, last_point_at) VALUES (?, ?, ?, 1, ?)"
    " ON CONFLICT (member_id, week) DO UPDATE SET points = weekly_points.points + 1,"
    " last_point_at = excluded.last_point_at"
)
GET_CARD = "SELECT card FROM cards WHERE member_id = ? AND question_id = ?"
PUT_CARD = (
    "INSERT INTO cards (member_id, question_id, card, due) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (member_id, question_id) DO UPDATE SET card = excluded.card, due = excluded.due"
)
QUESTION_TALLIES = "SELECT question_id, COUNT(*), SUM(correct) FROM answers WHERE member_id = ? GROUP BY question_id"
# A batch of answers on SQLite (`bot.storage.sqlite_store._record_answers`): what the statements above read
# one answer at a time, read for the whole batch (a JSON array of member ids, or of [member, question] or
# [member, post] pairs), and the answers inserted with their first try worked out from those reads.
BATCH_STREAK_STATES = (
    "SELECT m.id, m.streak, m.best_streak, m.last_active_day, m.freezes"
    " FROM json_each(?) j JOIN members m ON m.id = j.value"
)
BATCH_TRIED = (
    "SELECT DISTINCT a.member_id, a.question_id FROM json_each(?) j JOIN answers a"
    " ON a.member_id = json_extract(j.value, '$[0]') AND a.question_id = json_extract(j.value, '$[1]')"
)
BATCH_EARLIER = (
    "SELECT a.member_id, a.post_id, a.choice, a.correct, a.first_try FROM json_each(?) j JOIN answers a"
    " ON a.member_id = json_extract(j.value, '$[0]') AND a.post_id = json_extract(j.value, '$[1]')"
)
BATCH_CARDS = (
    "SELECT c.member_id, c.question_id, c.card FROM json_each(?) j JOIN cards c"
    " ON c.member_id = json_extract(j.value, '$[0]') AND c.question_id = json_extract(j.value, '$[1]')"
)
INSERT_ANSWER_ROW = (
    "INSERT INTO answers (member_id, post_id, group_id, question_id, choice, correct, first_try, answered_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)

# ---------------------------------------------------------------------- career path, leaderboards

STEPS_DONE = "SELECT step FROM path_steps WHERE member_id = ?"
MARK_STEP = "INSERT INTO path_steps (member_id, step, done_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING"
BOARD_ALL_TIME = (
    "SELECT id, user_id, display_name, points, last_point_at FROM members"
    " WHERE group_id = ? AND points > 0 AND leaderboard_hidden = 0"
    " ORDER BY points DESC, last_point_at, id LIMIT ?"
)
BOARD_WEEK = (
    "SELECT m.id, m.user_id, m.display_name, w.points, w.last_point_at FROM weekly_points w"
    " JOIN members m ON m.id = w.member_id"
    " WHERE w.group_id = ? AND w.week = ? AND m.leaderboard_hidden = 0"
    " ORDER BY w.points DESC, w.last_point_at, m.id LIMIT ?"
)

# ---------------------------------------------------------------------- schedules and deliveries

SCHEDULES = (
    "SELECT s.channel_id, c.group_id, g.platform, c.external_id, c.name, g.tz,"
    " s.local_time, s.tz, s.days, s.kind, s.reveal_hours, s.paused, s.paused_reason, s.skip_until,"
    " s.updated_at, (SELECT MAX(d.scheduled_for) FROM deliveries d WHERE d.channel_id = s.channel_id),"
    " g.external_id"
    " FROM schedules s JOIN channels c ON c.id = s.channel_id JOIN groups g ON g.id = c.group_id"
)
ALL_SCHEDULES = SCHEDULES + " ORDER BY s.channel_id"
SCHEDULE_FOR = SCHEDULES + " WHERE s.channel_id = ?"
DELIVERY_COLS = "id, channel_id, scheduled_for, status, attempts, next_try_at, post_id, message_id, error"
SAVE_SCHEDULE = (
    "INSERT INTO schedules (channel_id, local_time, tz, days, kind, reveal_hours, paused, paused_reason,"
    " skip_until, created_at, updated_at, notice_pending) VALUES (?, ?, ?, ?, ?, ?, 0, NULL, NULL, ?, ?, 0)"
    " ON CONFLICT (channel_id) DO UPDATE SET local_time = excluded.local_time, tz = excluded.tz,"
    " days = excluded.days, kind = excluded.kind, reveal_hours = excluded.reveal_hours, paused = 0,"
    " paused_reason = NULL, skip_until = NULL, updated_at = excluded.updated_at, notice_pending = 0"
)
SET_GROUP_ZONE_IF_UTC = (
    "UPDATE groups SET tz = ? WHERE id = (SELECT group_id FROM channels WHERE id = ?) AND tz = 'UTC'"
)
PAUSE = "UPDATE schedules SET paused = 1, paused_reason = ?, notice_pending = ? WHERE channel_id = ?"
RESUME = (
    "UPDATE schedules SET paused = 0, paused_reason = NULL, notice_pending = 0, updated_at = ? WHERE channel_id = ?"
)
SET_SKIP_UNTIL = "UPDATE schedules SET skip_until = ? WHERE channel_id = ?"
RECORD_UNSENT = (
    "INSERT INTO deliveries (channel_id, scheduled_for, status, claimed_at) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (channel_id, scheduled_for) DO NOTHING"
)
#: The exactly-once claim: of all processes inserting the same (channel, instant), one gets the row back.
CLAIM = (
    "INSERT INTO deliveries (channel_id, scheduled_for, status, claimed_by, claimed_at)"
    " VALUES (?, ?, 'claimed', ?, ?) ON CONFLICT (channel_id, scheduled_for) DO NOTHING"
    f" RETURNING {DELIVERY_COLS}"
)
#: Re-claim retries and abandoned claims. On PostgreSQL a concurrent reclaimer blocks on the row lock and
#: then re-checks the WHERE clause against the committed row, so each row is returned to one process only.
RECLAIM_DUE = (
    "UPDATE deliveries SET status = 'claimed', claimed_by = ?, claimed_at = ?, next_try_at = NULL"
    " WHERE (status = 'failed' AND next_try_at IS NOT NULL AND next_try_at <= ?)"
    " OR (status = 'claimed' AND claimed_at < ?)"
    f" RETURNING {DELIVERY_COLS}"
)
CREATE_DELIVERY_POST = (
    "INSERT INTO posts (group_id, channel_id, member_id, kind, item_id, created_at)"
    f" VALUES (?, ?, NULL, ?, ?, ?) RETURNING {POST_COLS}"
)
LINK_DELIVERY_POST = "UPDATE deliveries SET post_id = ? WHERE id = ?"
MARK_SENT = (
    "UPDATE deliveries SET status = 'sent', message_id = ?, attempts = attempts + 1, next_try_at = NULL,"
    " error = NULL, claimed_at = ? WHERE id = ?"
)
MARK_FAILED = (
    "UPDATE deliveries SET status = 'failed', attempts = attempts + 1, next_try_at = ?, error = ? WHERE id = ?"
)
#: A channel post counts (history, reveals) only once the platform took it: one being sent, or whose
#: send failed, was seen by nobody.
_SENT = "message_id IS NOT NULL"
HISTORY_COUNTS = (
    "SELECT kind, item_id, COUNT(*) FROM posts WHERE channel_id = ? AND member_id IS NULL"
    f" AND {_SENT} GROUP BY kind, item_id"
)
HISTORY_LAST_ITEM = (
    "SELECT item_id, id FROM posts WHERE channel_id = ? AND member_id IS NULL AND kind = ?"
    f" AND {_SENT} ORDER BY id DESC LIMIT 1"
)
HISTORY_LAST_KIND = (
    f"SELECT kind FROM posts WHERE channel_id = ? AND member_id IS NULL AND {_SENT} ORDER BY id DESC LIMIT 1"
)
UNREVEALED = (
    f"SELECT {POST_COLS} FROM posts WHERE channel_id = ? AND member_id IS NULL AND revealed_at IS NULL"
    f" AND kind = 'question' AND created_at <= ? AND {_SENT} ORDER BY id"
)
CLAIM_REVEAL = "UPDATE posts SET revealed_at = ? WHERE id = ? AND revealed_at IS NULL"
UNCLAIM_REVEAL = "UPDATE posts SET revealed_at = NULL WHERE id = ?"
RECENT_DELIVERIES = f"SELECT {DELIVERY_COLS} FROM deliveries WHERE channel_id = ? ORDER BY scheduled_for DESC LIMIT ?"
NEXT_RETRY = "SELECT MIN(next_try_at) FROM deliveries WHERE status = 'failed' AND next_try_at IS NOT NULL"
TAKE_NOTICES = (
    "UPDATE schedules SET notice_pending = 0 WHERE notice_pending = 1 AND channel_id IN"
    " (SELECT id FROM channels WHERE group_id = ?) RETURNING channel_id, paused_reason"
)
CHANNEL_NAMES = "SELECT external_id, name FROM channels WHERE id = ?"

# ---------------------------------------------------------------------- learning engine

#: The queries on hot paths are named so a test can check each one's plan.
DUE_CARDS = "SELECT question_id, due FROM cards WHERE member_id = ? AND due <= ? ORDER BY due LIMIT ?"
REVIEW_SUMMARY = (
    "SELECT (SELECT COUNT(*) FROM cards WHERE member_id = ? AND due <= ?),"
    " (SELECT MIN(due) FROM cards WHERE member_id = ? AND due > ?)"
)
MISSED = (
    "SELECT d.scheduled_for FROM channels c JOIN deliveries d ON d.channel_id = c.id"
    " WHERE c.group_id = ? AND d.scheduled_for >= ? AND d.status IN ('missed', 'failed')"
)
ANSWER_TIMES = "SELECT answered_at FROM answers WHERE member_id = ? AND answered_at >= ?"

EXPORT_GROUPS = "SELECT id FROM groups ORDER BY id"
EXPORT_GROUP_KEY = "SELECT platform || ':' || external_id FROM groups WHERE id = ?"
EXPORT_MEMBERS = (
    "SELECT g.platform || ':' || g.external_id, g.name, m.user_id, m.display_name, m.joined_at, m.answered,"
    " m.correct, m.points, m.streak, m.best_streak, m.last_active_day, m.freezes, m.tz, g.tz,"
    " m.leaderboard_hidden, (SELECT COUNT(*) FROM path_steps p WHERE p.member_id = m.id),"
    " (SELECT COUNT(*) FROM cards k WHERE k.member_id = m.id),"
    " (SELECT COUNT(*) FROM cards k WHERE k.member_id = m.id AND k.due <= ?)"
    " FROM members m JOIN groups g ON g.id = m.group_id WHERE m.group_id = ? ORDER BY m.id"
)
EXPORT_ASKED = (
    "SELECT p.item_id, COUNT(*) FROM channels c JOIN posts p ON p.channel_id = c.id"
    " WHERE c.group_id = ? AND p.kind = 'question' AND (p.member_id IS NOT NULL OR p.message_id IS NOT NULL)"
    " GROUP BY p.item_id"
)
EXPORT_ANSWERS = (
    "SELECT question_id, choice, COUNT(*), SUM(correct), SUM(first_try), SUM(first_try * correct)"
    " FROM answers WHERE group_id = ? GROUP BY question_id, choice"
)

# ---------------------------------------------------------------------- installations (Slack OAuth)

SAVE_INSTALLATION = (
    "INSERT INTO installations (platform, team_id, data, installed_at) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (platform, team_id) DO UPDATE SET data = excluded.data, installed_at = excluded.installed_at"
)
FIND_INSTALLATION = "SELECT data FROM installations WHERE platform = ? AND team_id = ?"
DELETE_INSTALLATION = "DELETE FROM installations WHERE platform = ? AND team_id = ?"
ISSUE_OAUTH_STATE = "INSERT INTO oauth_states (state, expires_at) VALUES (?, ?)"
#: One DELETE decides: of two requests (or processes) with the same state only one deletes the row.
CONSUME_OAUTH_STATE = "DELETE FROM oauth_states WHERE state = ? AND expires_at > ?"
SWEEP_OAUTH_STATES = "DELETE FROM oauth_states WHERE expires_at <= ?"

# ---------------------------------------------------------------------- suggestions

SUGGESTION_COLS = (
    "s.id, s.group_id, s.member_id, s.kind, s.body, s.credit, s.status, s.created_at, m.display_name,"
    " g.platform, g.external_id, m.user_id, s.reason, s.item_ref"
)
_SUGGESTION_FROM = " FROM suggestions s JOIN members m ON m.id = s.member_id JOIN groups g ON g.id = s.group_id"
SUGGESTION_SETTINGS = "SELECT enabled, cap FROM suggestion_settings WHERE group_id = ?"
SET_SUGGESTIONS_ENABLED = (
    "INSERT INTO suggestion_settings (group_id, enabled) VALUES (?, ?)"
    " ON CONFLICT (group_id) DO UPDATE SET enabled = excluded.enabled"
)
#: PostgreSQL: hold the member's row while counting their open suggestions, so two submissions at once
#: cannot both pass the cap (SQLite's BEGIN IMMEDIATE serialises writers anyway).
LOCK_MEMBER = "SELECT id FROM members WHERE id = ? FOR UPDATE"
OPEN_SUGGESTIONS_OF_MEMBER = "SELECT COUNT(*) FROM suggestions WHERE member_id = ? AND status = 'open'"
OPEN_SUGGESTIONS_IN_GROUP = "SELECT COUNT(*) FROM suggestions WHERE group_id = ? AND status = 'open'"
ADD_SUGGESTION = (
    "INSERT INTO suggestions (group_id, member_id, kind, body, credit, created_at) VALUES (?, ?, ?, ?, ?, ?)"
    " RETURNING id"
)
OPEN_SUGGESTIONS = (
    f"SELECT {SUGGESTION_COLS}{_SUGGESTION_FROM} WHERE s.group_id = ? AND s.status = 'open' ORDER BY s.id LIMIT ?"
)
GET_SUGGESTION = f"SELECT {SUGGESTION_COLS}{_SUGGESTION_FROM} WHERE s.id = ?"
DECIDE_SUGGESTION = (
    "UPDATE suggestions SET status = ?, decided_by = ?, reason = ?, decided_at = ?"
    " WHERE id = ? AND group_id = ? AND status = 'open'"
)
REOPEN_SUGGESTION = (
    "UPDATE suggestions SET status = 'open', decided_by = NULL, reason = NULL, decided_at = NULL WHERE id = ?"
)
SET_SUGGESTION_ITEM = "UPDATE suggestions SET item_ref = ? WHERE id = ?"
ADD_MEMBER_NOTICE = "INSERT INTO member_notices (member_id, text, created_at) VALUES (?, ?, ?)"
TAKE_MEMBER_NOTICES = "DELETE FROM member_notices WHERE member_id = ? RETURNING id, text"
