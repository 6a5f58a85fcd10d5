-- Which Aurora user each of the identity provider's users is. A provider's later messages
-- (an update without a username, a deletion that carries only the id, as Clerk sends
-- them) find the user by the provider's id; a name Aurora derived for a user without one
-- (an email sign-up) stays that user's.
CREATE TABLE identity_users
(
    external_id text PRIMARY KEY,
    username    text NOT NULL
);
