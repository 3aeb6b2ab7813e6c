-- Feeling native on each platform (issue 18): a channel's posting options besides its schedule rule,
-- the discussion thread of each post, notices for the admin who set a schedule, and role rewards.

-- One row per channel that has options (written by `schedule set`).
CREATE TABLE channel_options (
    channel_id INTEGER PRIMARY KEY REFERENCES channels (id) ON DELETE CASCADE,
    thread     INTEGER NOT NULL DEFAULT 0 CHECK (thread IN (0, 1)),  -- open a discussion thread on each post
    ping_role  TEXT,                                                 -- the platform role mentioned on each post
    set_by     INTEGER REFERENCES members (id) ON DELETE SET NULL,   -- the admin who set the schedule
    checked_at TEXT,                                                 -- the self-check before the first post ran
    updated_at TEXT NOT NULL
);

-- A post's discussion thread (its id on the platform: the message's own id on Discord and Slack).
CREATE TABLE post_threads (
    post_id   INTEGER PRIMARY KEY REFERENCES posts (id) ON DELETE CASCADE,
    thread_id TEXT NOT NULL
);

-- Something an admin must hear once (a missing permission): for one member, or any admin when NULL.
CREATE TABLE channel_notices (
    channel_id INTEGER NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    topic      TEXT NOT NULL,
    member_id  INTEGER REFERENCES members (id) ON DELETE CASCADE,
    text       TEXT NOT NULL,
    created_at TEXT NOT NULL,
    taken_at   TEXT,
    PRIMARY KEY (channel_id, topic)
);
CREATE INDEX channel_notices_pending ON channel_notices (channel_id) WHERE taken_at IS NULL;

-- A role given when a member's streak (days) or points reach a threshold (Discord).
CREATE TABLE rewards (
    id         INTEGER PRIMARY KEY,
    group_id   INTEGER NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    kind       TEXT NOT NULL CHECK (kind IN ('streak', 'points')),
    threshold  INTEGER NOT NULL CHECK (threshold BETWEEN 1 AND 100000),
    role_id    TEXT NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE (group_id, kind, threshold)
);

-- Each reward is given to a member once (claimed before the role is granted); never taken away.
CREATE TABLE reward_grants (
    reward_id  INTEGER NOT NULL REFERENCES rewards (id) ON DELETE CASCADE,
    member_id  INTEGER NOT NULL REFERENCES members (id) ON DELETE CASCADE,
    granted_at TEXT NOT NULL,
    PRIMARY KEY (reward_id, member_id)
);
CREATE INDEX reward_grants_by_member ON reward_grants (member_id);
