//! Identity at the edge: root keys, Biscuit tokens, password hashing.
//!
//! # Layout
//! - [`keys`]: the root key ring (several keys by `root_key_id`; the newest signs).
//! - [`tokens`]: minting session tokens, verifying any token, authorizing an operation.
//! - [`revocations`]: the revocation set, kept current on every replica from the store
//!   and the bus.
//! - [`passwords`]: argon2id hashing and verification, with equal work for unknown users.

pub mod keys;
pub mod passwords;
pub mod revocations;
pub mod tokens;
pub mod webhook;
