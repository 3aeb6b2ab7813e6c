-- Twin of migrations/sqlite/0013_dashboard_indexes.sql: the overview's 30 days of answers are read
-- from the index alone.
DROP INDEX answers_by_time;
CREATE INDEX answers_by_time ON answers (group_id, answered_at, correct, member_id);
