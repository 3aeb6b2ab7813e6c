-- Open-answer practice (interview prompts, flashcards): one row per card dealt to a member, and the
-- member's FSRS card per open card, beside the `cards` of multiple-choice questions.
-- A written answer belongs to its member only: it is never shown to anyone else and never exported;
-- forget-me deletes it with the member (ON DELETE CASCADE).

CREATE TABLE attempts (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    member_id INTEGER NOT NULL REFERENCES members (id) ON DELETE CASCADE,
    group_id  INTEGER NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    kind      TEXT NOT NULL CHECK (kind IN ('interview', 'card')),
    card_key  TEXT NOT NULL,                 -- "iv-01" (the pack's prompt id), "d.42" (a deck item)
    answer    TEXT,                          -- what the member wrote, if anything
    dealt_at  TEXT NOT NULL,
    rating    INTEGER CHECK (rating IS NULL OR rating BETWEEN 1 AND 4),   -- Again, Hard, Good, Easy
    rated_at  TEXT
);
CREATE INDEX attempts_by_member ON attempts (member_id, card_key);

-- Spaced-repetition state per member and open card (a serialised fsrs card).
CREATE TABLE practice_cards (
    member_id INTEGER NOT NULL REFERENCES members (id) ON DELETE CASCADE,
    card_key  TEXT NOT NULL,
    kind      TEXT NOT NULL CHECK (kind IN ('interview', 'card')),
    card      TEXT NOT NULL,
    due       TEXT NOT NULL,
    PRIMARY KEY (member_id, card_key)
);
CREATE INDEX practice_cards_due ON practice_cards (member_id, due);
