//! Password hashing: argon2id in PHC strings. The hash lives in the credentials table,
//! never in an event. Verifying a login for a user that does not exist does the same work
//! against a dummy hash, so the answer's timing does not tell whether the user exists.

use std::sync::OnceLock;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

/// Longest accepted password, in bytes (argon2 itself takes more; this bounds the work).
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// Shortest accepted password, in characters.
pub const MIN_PASSWORD_CHARS: usize = 8;

/// Hashes `password` with argon2id and a fresh salt. CPU-heavy: call from a blocking task.
pub fn hash(password: &str) -> String {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 with default parameters hashes any input")
        .to_string()
}

/// Does `password` match `stored` (a PHC string)? With `None` (no such user) the work is
/// done against a dummy hash and the answer is `false`. CPU-heavy: call from a blocking task.
pub fn verify(password: &str, stored: Option<&str>) -> bool {
    static DUMMY: OnceLock<String> = OnceLock::new();
    let dummy = DUMMY.get_or_init(|| hash("aurora-dummy-password"));
    let (phc, real) = match stored {
        Some(phc) => (phc, true),
        None => (dummy.as_str(), false),
    };
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    let ok = Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok();
    ok && real
}

/// Why a password was refused at registration.
pub fn check_policy(password: &str) -> Result<(), String> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(format!(
            "a password has at least {MIN_PASSWORD_CHARS} characters"
        ));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(format!("a password has at most {MAX_PASSWORD_BYTES} bytes"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only_and_is_argon2id() {
        let stored = hash("correct horse");
        assert!(stored.starts_with("$argon2id$"));
        assert!(!stored.contains("correct horse"));
        assert!(verify("correct horse", Some(&stored)));
        assert!(!verify("wrong horse", Some(&stored)));
        assert!(
            !verify("aurora-dummy-password", None),
            "unknown users never match"
        );
        assert!(!verify("x", Some("not a phc string")));
    }

    #[test]
    fn the_policy_bounds_length() {
        assert!(check_policy("short").is_err());
        assert!(check_policy(&"x".repeat(MAX_PASSWORD_BYTES + 1)).is_err());
        assert!(check_policy("long enough").is_ok());
    }
}
