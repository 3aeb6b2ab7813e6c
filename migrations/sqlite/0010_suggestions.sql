-- Member suggestions (`/study suggest`): a question or tip waiting for an admin's approve or deny.
-- ``body`` is the item in the content pack's schema, as JSON (bot.core.item_form.ItemDraft.as_dict).
CREATE TABLE suggestions (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    group_id    INTEGER NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    member_id   INTEGER NOT NULL REFERENCES members (id) ON DELETE CASCADE,
    kind        TEXT NOT NULL CHECK (kind IN ('question', 'tip')),
    body        TEXT NOT NULL,
    credit      INTEGER NOT NULL DEFAULT 1,     -- 1: "suggested by <name>" shown with the item
    status      TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'approved', 'denied')),
    created_at  TEXT NOT NULL,
    decided_at  TEXT,
    decided_by  INTEGER REFERENCES members (id) ON DELETE SET NULL,
    reason      TEXT,
    item_ref    TEXT                            -- what the approved suggestion became (a deck item)
);
CREATE INDEX suggestions_queue ON suggestions (group_id, status, id);
CREATE INDEX suggestions_by_member ON suggestions (member_id, status);
CREATE INDEX suggestions_decided_by ON suggestions (decided_by);

-- Per group: suggestions on or off, and how many a member may have waiting at once.
CREATE TABLE suggestion_settings (
    group_id INTEGER PRIMARY KEY REFERENCES groups (id) ON DELETE CASCADE,
    enabled  INTEGER NOT NULL DEFAULT 1,
    cap      INTEGER NOT NULL DEFAULT 3 CHECK (cap BETWEEN 1 AND 50)
);

-- Private notices for a member who could not be told directly (Discord DMs closed): shown, once, the
-- next time they use a command.
CREATE TABLE member_notices (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    member_id  INTEGER NOT NULL REFERENCES members (id) ON DELETE CASCADE,
    text       TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX member_notices_member ON member_notices (member_id, id);
