-- Scheduling: a schedule paused because the bot lost access to its channel tells the next admin once.
ALTER TABLE schedules ADD COLUMN notice_pending INTEGER NOT NULL DEFAULT 0;
-- Channel group posts not yet revealed (the timed reveal looks for these).
CREATE INDEX posts_unrevealed ON posts (channel_id, id) WHERE member_id IS NULL AND revealed_at IS NULL;
