//! Identity at the edge: root keys, Biscuit tokens, password hashing.
//!
//! # Layout
//! - [`keys`]: the root key ring (several keys by `root_key_id`; the newest signs).
//! - [`tokens`]: minting session tokens, verifying any token, authorizing an operation.
//! - [`passwords`]: argon2id hashing and verification, with equal work for unknown users.

pub mod keys;
pub mod passwords;
pub mod tokens;
