-- Leaderboards read top-N straight from an index on PostgreSQL too. Their ORDER BY ends in the member
-- id (the last tie-break); SQLite appends the rowid to every index, so its members_by_points and
-- weekly_board already end in it. Here the id is named, or a whole group's rows would be sorted.
DROP INDEX members_by_points;
CREATE INDEX members_by_points ON members (group_id, points DESC, last_point_at, id);
DROP INDEX weekly_board;
CREATE INDEX weekly_board ON weekly_points (group_id, week, points DESC, last_point_at, member_id);
