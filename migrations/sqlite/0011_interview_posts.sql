-- Interview prompts as daily posts (issue 16): schedules may have kind 'interview' (and 'mix' rotates
-- question, tip, interview), and a channel post may be an interview prompt. SQLite cannot change a CHECK
-- constraint, so posts and schedules are rebuilt keeping every row, id and index (as 0003 did; the
-- migration runner applies this with foreign keys off and runs PRAGMA foreign_key_check before COMMIT).
-- posts keeps its AUTOINCREMENT high-water mark, so no post id is ever handed out twice.

CREATE TEMP TABLE posts_seq AS SELECT seq FROM sqlite_sequence WHERE name = 'posts';

CREATE TABLE posts_new (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    group_id    INTEGER NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    channel_id  INTEGER NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    member_id   INTEGER REFERENCES members (id) ON DELETE CASCADE,
    kind        TEXT NOT NULL CHECK (kind IN ('question', 'tip', 'interview')),
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
UPDATE sqlite_sequence SET seq = MAX(seq, COALESCE((SELECT MAX(seq) FROM temp.posts_seq), 0)) WHERE name = 'posts';
INSERT INTO sqlite_sequence (name, seq)
    SELECT 'posts', seq FROM temp.posts_seq WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'posts');
DROP TABLE temp.posts_seq;

CREATE TABLE schedules_new (
    channel_id     INTEGER PRIMARY KEY REFERENCES channels (id) ON DELETE CASCADE,
    local_time     TEXT NOT NULL,                  -- HH:MM wall time
    tz             TEXT NOT NULL,
    days           TEXT NOT NULL,                  -- weekday numbers, Monday = 0, e.g. "0,1,2,3,4"
    kind           TEXT NOT NULL CHECK (kind IN ('question', 'tip', 'interview', 'mix')),
    reveal_hours   INTEGER CHECK (reveal_hours IS NULL OR reveal_hours BETWEEN 1 AND 72),
    paused         INTEGER NOT NULL DEFAULT 0,
    paused_reason  TEXT,
    skip_until     TEXT,                           -- occurrences up to this instant are skipped
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    notice_pending INTEGER NOT NULL DEFAULT 0
);
INSERT INTO schedules_new (channel_id, local_time, tz, days, kind, reveal_hours, paused, paused_reason, skip_until,
                           created_at, updated_at, notice_pending)
    SELECT channel_id, local_time, tz, days, kind, reveal_hours, paused, paused_reason, skip_until,
           created_at, updated_at, notice_pending FROM schedules;
DROP TABLE schedules;
ALTER TABLE schedules_new RENAME TO schedules;
