-- Token revocations are read at every gateway start (the revocation set is loaded from
-- the store, then kept current from the bus): a partial index keeps that read small
-- without costing any other append.
CREATE INDEX events_token_revocations ON events (position)
    WHERE aggregate_type = 'user' AND event_type = 'TokenRevoked';

-- The users read model, for admins listing users. Fed from the bus, rebuildable from the
-- event store; each row is the User aggregate's state at `last_sequence`.
CREATE TABLE users_view
(
    username      text PRIMARY KEY,
    user_id       text    NOT NULL UNIQUE,
    role          text    NOT NULL,
    tier          text    NOT NULL,
    disabled      boolean NOT NULL,
    deleted       boolean NOT NULL,
    created_at    text    NOT NULL,
    updated_at    text    NOT NULL,
    last_sequence bigint  NOT NULL
);

-- Identity webhook messages already applied, by message id: a replayed message changes
-- nothing. Kept beyond the signature tolerance window, after which a replay is refused
-- by its timestamp anyway.
CREATE TABLE webhook_messages
(
    id          text PRIMARY KEY,
    received_at timestamptz NOT NULL DEFAULT now()
);

-- The identity provider's event time last applied per user (milliseconds since the
-- epoch): a message older than it (a retry overtaken by a newer change) changes nothing.
CREATE TABLE identity_sync
(
    username      text PRIMARY KEY,
    last_event_ms bigint NOT NULL
);
