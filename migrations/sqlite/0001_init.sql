-- studybot schema, version 1.
-- Times are UTC ISO-8601 text ("2026-11-23T17:45:00.000000Z"), which sorts in time order.
-- Local days ("2026-11-23") are in the member's own zone, weeks are the Monday of the group's week.

CREATE TABLE groups (
    id          INTEGER PRIMARY KEY,
    platform    TEXT NOT NULL CHECK (platform IN ('discord', 'slack', 'console')),
    external_id TEXT NOT NULL,                 -- guild id, team id, or "local"
    name        TEXT NOT NULL DEFAULT '',
    tz          TEXT NOT NULL DEFAULT 'UTC',   -- the group's zone: weeks, and streaks of members without one
    created_at  TEXT NOT NULL,
    UNIQUE (platform, external_id)
);

CREATE TABLE channels (
    id          INTEGER PRIMARY KEY,
    group_id    INTEGER NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    external_id TEXT NOT NULL,
    name        TEXT NOT NULL DEFAULT '',
    UNIQUE (group_id, external_id)
);

CREATE TABLE members (
    id                 INTEGER PRIMARY KEY,
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
CREATE INDEX members_by_points ON members (group_id, points DESC, last_point_at);
CREATE INDEX members_by_name ON members (group_id, display_name COLLATE NOCASE);

-- A question or tip shown in a channel (member_id NULL: a group post) or dealt to one member.
CREATE TABLE posts (
    id          INTEGER PRIMARY KEY,
    group_id    INTEGER NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    channel_id  INTEGER NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    member_id   INTEGER REFERENCES members (id) ON DELETE CASCADE,
    kind        TEXT NOT NULL CHECK (kind IN ('question', 'tip')),
    item_id     TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    message_id  TEXT,          -- the platform's message id, once posted
    revealed_at TEXT           -- when the answer was revealed in the channel
);
CREATE INDEX posts_latest ON posts (channel_id, member_id, kind, id);
CREATE INDEX posts_dealt ON posts (member_id, kind, item_id);

-- One answer per member per post: a double click never counts twice.
CREATE TABLE answers (
    id          INTEGER PRIMARY KEY,
    member_id   INTEGER NOT NULL REFERENCES members (id) ON DELETE CASCADE,
    post_id     INTEGER NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
    group_id    INTEGER NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    question_id TEXT NOT NULL,
    choice      TEXT NOT NULL CHECK (choice IN ('A', 'B', 'C', 'D')),
    correct     INTEGER NOT NULL CHECK (correct IN (0, 1)),
    first_try   INTEGER NOT NULL CHECK (first_try IN (0, 1)),  -- the member's first answer to this question
    answered_at TEXT NOT NULL,
    UNIQUE (member_id, post_id)
);
CREATE INDEX answers_by_member ON answers (member_id, question_id);
CREATE INDEX answers_by_post ON answers (post_id, choice);
CREATE INDEX answers_by_question ON answers (group_id, question_id);

-- Points per member per week (week = Monday in the group's zone), kept as answers arrive.
CREATE TABLE weekly_points (
    member_id     INTEGER NOT NULL REFERENCES members (id) ON DELETE CASCADE,
    week          TEXT NOT NULL,
    group_id      INTEGER NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    points        INTEGER NOT NULL,
    last_point_at TEXT NOT NULL,
    PRIMARY KEY (member_id, week)
);
CREATE INDEX weekly_board ON weekly_points (group_id, week, points DESC, last_point_at);

-- Spaced-repetition state per member and question (a serialised fsrs card).
CREATE TABLE cards (
    member_id   INTEGER NOT NULL REFERENCES members (id) ON DELETE CASCADE,
    question_id TEXT NOT NULL,
    card        TEXT NOT NULL,
    due         TEXT NOT NULL,
    PRIMARY KEY (member_id, question_id)
);
CREATE INDEX cards_due ON cards (member_id, due);

CREATE TABLE path_steps (
    member_id INTEGER NOT NULL REFERENCES members (id) ON DELETE CASCADE,
    step      INTEGER NOT NULL CHECK (step BETWEEN 1 AND 6),
    done_at   TEXT NOT NULL,
    PRIMARY KEY (member_id, step)
);

-- One daily-post schedule per channel.
CREATE TABLE schedules (
    channel_id   INTEGER PRIMARY KEY REFERENCES channels (id) ON DELETE CASCADE,
    local_time   TEXT NOT NULL,                  -- HH:MM wall time
    tz           TEXT NOT NULL,
    days         TEXT NOT NULL,                  -- weekday numbers, Monday = 0, e.g. "0,1,2,3,4"
    kind         TEXT NOT NULL CHECK (kind IN ('question', 'tip', 'mix')),
    reveal_hours INTEGER CHECK (reveal_hours IS NULL OR reveal_hours BETWEEN 1 AND 72),
    paused       INTEGER NOT NULL DEFAULT 0,
    paused_reason TEXT,
    skip_until   TEXT,                           -- occurrences up to this instant are skipped
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
);

-- A scheduled occurrence: claimed before sending, unique per channel and instant (exactly once).
CREATE TABLE deliveries (
    id            INTEGER PRIMARY KEY,
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
CREATE INDEX deliveries_by_status ON deliveries (status, next_try_at);
