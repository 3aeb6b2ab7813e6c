-- Ids are never reused: groups, channels, members, posts and deliveries get AUTOINCREMENT.
-- Without it SQLite hands out MAX(id) + 1, so the id of the newest row came back after a delete, and a
-- process that still held the old id (a cache, a button) reached the new row. Each table is rebuilt
-- keeping every row, its id and its indexes; the migration runner applies this with foreign keys off
-- (so dropping a parent cascades nothing) and runs PRAGMA foreign_key_check before it commits.
-- answers, weekly_points, cards, path_steps and schedules are keyed by their parents and never cached.

CREATE TABLE groups_new (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    platform    TEXT NOT NULL CHECK (platform IN ('discord', 'slack', 'console')),
    external_id TEXT NOT NULL,                 -- guild id, team id, or "local"
    name        TEXT NOT NULL DEFAULT '',
    tz          TEXT NOT NULL DEFAULT 'UTC',   -- the group's zone: weeks, and streaks of members without one
    created_at  TEXT NOT NULL,
    UNIQUE (platform, external_id)
);
INSERT INTO groups_new (id, platform, external_id, name, tz, created_at)
    SELECT id, platform, external_id, name, tz, created_at FROM groups;
DROP TABLE groups;
ALTER TABLE groups_new RENAME TO groups;

CREATE TABLE channels_new (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    group_id    INTEGER NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    external_id TEXT NOT NULL,
    name        TEXT NOT NULL DEFAULT '',
    UNIQUE (group_id, external_id)
);
INSERT INTO channels_new (id, group_id, external_id, name) SELECT id, group_id, external_id, name FROM channels;
DROP TABLE channels;
ALTER TABLE channels_new RENAME TO channels;

CREATE TABLE members_new (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    group_id           INTEGER NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    user_id            TEXT NOT NULL,          -- the platform's user id
    display_name       TEXT NOT NULL DEFAULT '',
    tz                 TEXT,                   -- NULL: use the group's zone
    joined_at          TEXT NOT NULL,
    answered           INTEGER NOT NULL DEFAULT 0,
    correct            INTEGER NOT NULL DEFAULT 0,
    points             INTEGER NOT NULL DEFAULT 0,   -- correct first answers, all time
    last_point_at      TEXT,                         -- when the last point was scored (tie-break)
    streak             INTEGER NOT NULL DEFAULT 0,
    best_streak        INTEGER NOT NULL DEFAULT 0,
    last_active_day    TEXT,
    freezes            INTEGER NOT NULL DEFAULT 0 CHECK (freezes BETWEEN 0 AND 2),
    leaderboard_hidden INTEGER NOT NULL DEFAULT 0,
    UNIQUE (group_id, user_id)
);
INSERT INTO members_new (id, group_id, user_id, display_name, tz, joined_at, answered, correct, points,
                         last_point_at, streak, best_streak, last_active_day, freezes, leaderboard_hidden)
    SELECT id, group_id, user_id, display_name, tz, joined_at, answered, correct, points,
           last_point_at, streak, best_streak, last_active_day, freezes, leaderboard_hidden FROM members;
DROP TABLE members;
ALTER TABLE members_new RENAME TO members;
CREATE INDEX members_by_points ON members (group_id, points DESC, last_point_at);
CREATE INDEX members_by_name ON members (group_id, display_name COLLATE NOCASE);

CREATE TABLE posts_new (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    group_id    INTEGER NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    channel_id  INTEGER NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    member_id   INTEGER REFERENCES members (id) ON DELETE CASCADE,
    kind        TEXT NOT NULL CHECK (kind IN ('question', 'tip')),
    item_id     TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    message_id  TEXT,          -- the platform's message id, once posted
    revealed_at TEXT           -- when the answer was revealed in the channel
);
INSERT INTO posts_new (id, group_id, channel_id, member_id, kind, item_id, created_at, message_id, revealed_at)
    SELECT id, group_id, channel_id, member_id, kind, item_id, created_at, message_id, revealed_at FROM posts;
DROP TABLE posts;
ALTER TABLE posts_new RENAME TO posts;
CREATE INDEX posts_latest ON posts (channel_id, member_id, kind, id);
CREATE INDEX posts_dealt ON posts (member_id, kind, item_id);
CREATE INDEX posts_unrevealed ON posts (channel_id, id) WHERE member_id IS NULL AND revealed_at IS NULL;

CREATE TABLE deliveries_new (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    channel_id    INTEGER NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    scheduled_for TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('claimed', 'sent', 'failed', 'missed', 'skipped')),
    claimed_by    TEXT,
    claimed_at    TEXT,
    attempts      INTEGER NOT NULL DEFAULT 0,
    next_try_at   TEXT,
    post_id       INTEGER REFERENCES posts (id) ON DELETE SET NULL,
    message_id    TEXT,
    error         TEXT,
    UNIQUE (channel_id, scheduled_for)
);
INSERT INTO deliveries_new (id, channel_id, scheduled_for, status, claimed_by, claimed_at, attempts, next_try_at,
                            post_id, message_id, error)
    SELECT id, channel_id, scheduled_for, status, claimed_by, claimed_at, attempts, next_try_at,
           post_id, message_id, error FROM deliveries;
DROP TABLE deliveries;
ALTER TABLE deliveries_new RENAME TO deliveries;
CREATE INDEX deliveries_by_status ON deliveries (status, next_try_at);
