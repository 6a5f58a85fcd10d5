-- Password hashes (argon2id PHC strings), one per user (the User aggregate's id: the
-- normalised username). Not event-sourced and never relayed: no password hash may reach
-- the bus or the audit log.
CREATE TABLE credentials
(
    username      text PRIMARY KEY,
    password_hash text NOT NULL,
    updated_at    text NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
) STRICT;
