-- Slack in many workspaces (OAuth): one row per installed workspace, holding the installation as
-- slack_sdk describes it, as JSON (bot token, refresh token, scopes, installer, enterprise). The tokens are
-- secrets: this database deserves the same care as the .env file.
CREATE TABLE installations (
    platform     TEXT NOT NULL CHECK (platform IN ('slack')),
    team_id      TEXT NOT NULL,               -- the workspace
    data         TEXT NOT NULL,
    installed_at TEXT NOT NULL,
    PRIMARY KEY (platform, team_id)
);

-- The OAuth `state` handed to an installer's browser: accepted once, before it expires.
CREATE TABLE oauth_states (
    state      TEXT PRIMARY KEY,
    expires_at TEXT NOT NULL
);
