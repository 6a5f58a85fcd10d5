-- The audit log: one entry per stored event in the store's global order, hash-chained
-- (see projections/src/audit.rs). Written from the store, rebuildable by replay into a
-- shadow table that is swapped in; index names carry a generation (0 here) so that a
-- rebuild's new indexes never collide with the live ones.
CREATE TABLE audit_log
(
    seq           bigint PRIMARY KEY,
    position      bigint NOT NULL,
    xid           bigint NOT NULL,
    recorded_at   text   NOT NULL,
    actor         text   NOT NULL,
    role          text   NOT NULL,
    token_id      text,
    request_id    text   NOT NULL,
    client_ip     text,
    action        text   NOT NULL,
    resource_type text   NOT NULL,
    resource_id   text   NOT NULL,
    sequence      bigint NOT NULL,
    version       text   NOT NULL,
    details       text   NOT NULL,
    prev_hash     text   NOT NULL,
    hash          text   NOT NULL
);

CREATE INDEX audit_log_by_actor_0 ON audit_log (actor, seq);
CREATE INDEX audit_log_by_resource_0 ON audit_log (resource_type, resource_id, seq);
CREATE INDEX audit_log_by_action_0 ON audit_log (action, seq);
CREATE INDEX audit_log_by_time_0 ON audit_log (recorded_at);

-- The chain's head as the writer recorded it, beside the log's checkpoint and in the same
-- transaction: a log whose last rows were deleted, or whose last row was edited and
-- re-hashed, no longer ends where its checkpoint says, and the writer refuses to build on it.
ALTER TABLE projection_checkpoints ADD COLUMN head_seq bigint NOT NULL DEFAULT 0;
ALTER TABLE projection_checkpoints ADD COLUMN head_hash text NOT NULL DEFAULT '';

-- The users view had no checkpoint (it is refreshed from the store): start it at the head,
-- so that its lag counts only what it has not seen since.
INSERT INTO projection_checkpoints (projection, xid, position)
SELECT 'users-view', 0, position FROM events WHERE true ORDER BY position DESC LIMIT 1
ON CONFLICT (projection) DO NOTHING;
