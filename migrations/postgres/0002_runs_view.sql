-- The runs read model, fed from the bus, rebuildable from the event store.
-- Portable types only (text, bigint): the projection code is shared by both backends.
CREATE TABLE runs_view
(
    id            text PRIMARY KEY,
    owner         text   NOT NULL,
    status        text   NOT NULL,
    input         text   NOT NULL,
    steps         text   NOT NULL,
    cancel_reason text,
    created_at    text   NOT NULL,
    updated_at    text   NOT NULL,
    last_sequence bigint NOT NULL
);

-- Checkpoints of read models: the last global cursor each has applied.
CREATE TABLE projection_checkpoints
(
    projection text PRIMARY KEY,
    xid        bigint NOT NULL,
    position   bigint NOT NULL
);
