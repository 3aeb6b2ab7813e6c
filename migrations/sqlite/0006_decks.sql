-- Decks: each group's own questions, tips and open cards (issue 15). The shipped pack is the built-in
-- read-only deck "tpm", served from content/ as before: it has no rows here.
--
-- Posts, answers and review cards refer to a deck item as 'd:<deck_items.id>' (posts.item_id,
-- answers.question_id, cards.question_id); the shipped pack's ids never contain ':', so the two never
-- meet. An item's id never changes and is never reused (AUTOINCREMENT); an item with history is retired,
-- not deleted, so stats, reviews and exports keep resolving it.

CREATE TABLE decks (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    group_id    INTEGER NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    name        TEXT NOT NULL,                 -- [a-z0-9-], "tpm" and "all" are reserved
    description TEXT NOT NULL DEFAULT '',
    created_at  TEXT NOT NULL,
    retired_at  TEXT                           -- deleted, kept because answers point at its items
);
-- A name is taken only by a live deck: a deleted (retired) deck frees its name.
CREATE UNIQUE INDEX decks_by_name ON decks (group_id, name) WHERE retired_at IS NULL;

-- One item: kind 'question' and 'tip' in the shipped pack's schema, 'card' an open card (front/back).
-- group_id repeats the deck's so every query can say which group it serves.
CREATE TABLE deck_items (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    deck_id     INTEGER NOT NULL REFERENCES decks (id) ON DELETE CASCADE,
    group_id    INTEGER NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    slug        TEXT NOT NULL,                 -- the item's id in files (import/export), unique in its deck
    kind        TEXT NOT NULL CHECK (kind IN ('question', 'tip', 'card')),
    topic       TEXT,                          -- question, card
    difficulty  INTEGER CHECK (difficulty IS NULL OR difficulty BETWEEN 1 AND 3),
    prompt      TEXT,                          -- question
    choices     TEXT,                          -- question: JSON list of the four choices
    answer      TEXT CHECK (answer IS NULL OR answer IN ('A', 'B', 'C', 'D')),
    explanation TEXT,                          -- question
    step        INTEGER CHECK (step IS NULL OR step BETWEEN 1 AND 6),  -- tip
    text        TEXT,                          -- tip
    action      TEXT,                          -- tip
    front       TEXT,                          -- card: the prompt
    back        TEXT,                          -- card: the points a good answer covers
    tags        TEXT,                          -- card: JSON list of tags
    source      TEXT NOT NULL DEFAULT 'general',
    credit      TEXT,                          -- who suggested it ("suggested by …"), if anyone
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    retired_at  TEXT,                          -- no longer dealt or posted; kept for its history
    UNIQUE (deck_id, slug)
);
CREATE INDEX deck_items_by_group ON deck_items (group_id, kind, deck_id);

-- An import between its dry run and its Confirm button: scoped to the group and the admin who ran it.
CREATE TABLE deck_imports (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    group_id   INTEGER NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    deck_id    INTEGER NOT NULL REFERENCES decks (id) ON DELETE CASCADE,
    user_id    TEXT NOT NULL,
    payload    TEXT NOT NULL,                  -- the validated items, JSON
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE INDEX deck_imports_by_group ON deck_imports (group_id, user_id);

-- Which deck a channel's posts (and its members' /study quiz) come from; no row: "tpm".
CREATE TABLE channel_decks (
    channel_id INTEGER PRIMARY KEY REFERENCES channels (id) ON DELETE CASCADE,
    deck       TEXT NOT NULL                   -- a deck name, "tpm" or "all"
);

-- Something about decks the next admin must hear (a schedule whose deck had nothing to post), once.
CREATE TABLE deck_notices (
    channel_id INTEGER PRIMARY KEY REFERENCES channels (id) ON DELETE CASCADE,
    group_id   INTEGER NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    text       TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX deck_notices_by_group ON deck_notices (group_id);
