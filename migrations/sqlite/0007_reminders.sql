-- Opt-in reminders (`/study remind on|off [HH:MM]`): one row per member who ever turned them on.
-- ``next_at`` is the UTC instant at which the member is next looked at (NULL while off); the local time
-- ``at_time`` is read in the member's zone (else the group's) every day, so DST and zone changes follow.
CREATE TABLE reminders (
    member_id     INTEGER PRIMARY KEY REFERENCES members (id) ON DELETE CASCADE,
    channel_id    INTEGER NOT NULL REFERENCES channels (id) ON DELETE CASCADE,  -- where they turned it on
    enabled       INTEGER NOT NULL DEFAULT 1,
    at_time       TEXT NOT NULL DEFAULT '19:00',     -- local HH:MM
    next_at       TEXT,
    notice        TEXT,                              -- told at the member's next command (e.g. DMs closed)
    freeze_streak INTEGER,                           -- the streak a freeze was last announced for …
    freeze_day    TEXT,                              -- … and the local day of that announcement
    updated_at    TEXT NOT NULL
);
CREATE INDEX reminders_due ON reminders (next_at) WHERE next_at IS NOT NULL;

-- One row per member and local day: the claim that makes a reminder go out at most once, across
-- restarts and processes (INSERT … ON CONFLICT DO NOTHING, like deliveries).
CREATE TABLE reminder_sends (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    member_id   INTEGER NOT NULL REFERENCES members (id) ON DELETE CASCADE,
    day         TEXT NOT NULL,                      -- the member's local day
    due_at      TEXT NOT NULL,                      -- the UTC instant it was due
    status      TEXT NOT NULL CHECK (status IN ('claimed', 'sent', 'nothing', 'failed')),
    claimed_by  TEXT,
    claimed_at  TEXT NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 1,
    next_try_at TEXT,
    sent_at     TEXT,
    message_id  TEXT,
    error       TEXT,
    UNIQUE (member_id, day)
);
