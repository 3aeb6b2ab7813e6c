-- The admin web dashboard (bot/adapters/dashboard): one-time sign-in links and the sessions they start.
-- Only SHA-256 hashes of the secrets are kept: a copy of this database signs nobody in.

-- A sign-in link handed to one admin of one group: used once, before it expires (10 minutes).
CREATE TABLE dashboard_links (
    token_hash TEXT PRIMARY KEY,
    group_id   INTEGER NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    member_id  INTEGER NOT NULL REFERENCES members (id) ON DELETE CASCADE,
    expires_at TEXT NOT NULL
);

-- A browser session (the cookie's hash), scoped to the group whose admin opened the link.
CREATE TABLE dashboard_sessions (
    token_hash TEXT PRIMARY KEY,
    group_id   INTEGER NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    member_id  INTEGER NOT NULL REFERENCES members (id) ON DELETE CASCADE,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE INDEX dashboard_sessions_by_group ON dashboard_sessions (group_id);

-- The dashboard's answers-per-day chart reads one group's recent answers by time.
CREATE INDEX answers_by_time ON answers (group_id, answered_at);
