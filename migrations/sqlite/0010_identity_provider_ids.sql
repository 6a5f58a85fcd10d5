-- Which Aurora user each of the identity provider's users is. A provider's later messages
-- (an update without a username, a deletion that carries only the id, as Clerk sends
-- them) find the user by the provider's id; a name Aurora derived for a user without one
-- (an email sign-up) stays that user's. One provider user per Aurora user.
CREATE TABLE identity_users
(
    external_id text PRIMARY KEY,
    username    text NOT NULL UNIQUE
);

-- The users the identity webhook made before this table existed.
INSERT OR IGNORE INTO identity_users (external_id, username)
SELECT json_extract(payload, '$.UserRegistered.registration.external_id'), aggregate_id
FROM events
WHERE aggregate_type = 'user'
  AND event_type = 'UserRegistered'
  AND json_extract(payload, '$.UserRegistered.registration.kind') = 'identity_provider'
ORDER BY position;
