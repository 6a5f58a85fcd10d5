-- Password hashes keyed by the user's stable id (chosen before registering) instead of the
-- username. Registration writes the hash first and the UserRegistered event second, so a
-- crash in between leaves at worst an orphan hash under an id no user has — never a user
-- without a password. Of simultaneous registrations of one name, each writes its own row
-- and only the one whose id the event records is ever read.
CREATE TABLE passwords
(
    user_id       text PRIMARY KEY,
    username      text NOT NULL,
    password_hash text NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now()
);

INSERT INTO passwords (user_id, username, password_hash, updated_at)
SELECT e.payload->'UserRegistered'->>'user_id', c.username, c.password_hash, c.updated_at
FROM credentials c
         JOIN events e
              ON e.aggregate_type = 'user' AND e.aggregate_id = c.username AND e.sequence = 1;

DROP TABLE credentials;
