-- Interview prompts as daily posts, twin of migrations/sqlite/0011_interview_posts.sql: schedules may
-- have kind 'interview' (and 'mix' rotates question, tip, interview), and a channel post may be an
-- interview prompt. PostgreSQL changes the CHECK constraints in place.
ALTER TABLE posts DROP CONSTRAINT posts_kind_check;
ALTER TABLE posts ADD CONSTRAINT posts_kind_check CHECK (kind IN ('question', 'tip', 'interview'));
ALTER TABLE schedules DROP CONSTRAINT schedules_kind_check;
ALTER TABLE schedules ADD CONSTRAINT schedules_kind_check CHECK (kind IN ('question', 'tip', 'interview', 'mix'));
