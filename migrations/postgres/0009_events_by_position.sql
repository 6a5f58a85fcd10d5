-- Reads that wait for a client's own write name it by its global position
-- (`Aurora-After-Position`): finding that event's `(xid, position)` cursor, and the highest
-- position stored, must not scan the table. (SQLite's `events_global_order` is this index.)
CREATE INDEX events_by_position ON events (position);
