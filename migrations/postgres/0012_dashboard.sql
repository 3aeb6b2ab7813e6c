-- Twin of migrations/sqlite/0012_dashboard.sql: the admin web dashboard's one-time sign-in links and
-- sessions, kept as SHA-256 hashes only.
CREATE TABLE dashboard_links (
    token_hash TEXT PRIMARY KEY,
    group_id   BIGINT NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    member_id  BIGINT NOT NULL REFERENCES members (id) ON DELETE CASCADE,
    expires_at TEXT COLLATE "C" NOT NULL
);

CREATE TABLE dashboard_sessions (
    token_hash TEXT PRIMARY KEY,
    group_id   BIGINT NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    member_id  BIGINT NOT NULL REFERENCES members (id) ON DELETE CASCADE,
    created_at TEXT COLLATE "C" NOT NULL,
    expires_at TEXT COLLATE "C" NOT NULL
);
CREATE INDEX dashboard_sessions_by_group ON dashboard_sessions (group_id);

CREATE INDEX answers_by_time ON answers (group_id, answered_at);
