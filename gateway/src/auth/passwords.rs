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

/// The longest a login or registration waits for its turn at the password work before it
/// is answered 503 (busy) instead.
pub const HASHING_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Password work could not start within [`HASHING_WAIT`]: every core is hashing already.
#[derive(Debug, thiserror::Error)]
#[error("too many logins and registrations at once; retry in a moment")]
pub struct Busy;

/// Runs `work` (hashing or verifying) on a blocking thread, at most one per core at once.
/// Argon2id costs ~20 ms of a core each: unbounded, a burst of logins took every core and
/// ~1 GiB, and every other request waited behind it (the load test's collapse). Bounded,
/// logins queue for their turn (at most [`HASHING_WAIT`]) and the rest of the API answers.
pub async fn bounded<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Busy> {
    static TURNS: OnceLock<std::sync::Arc<tokio::sync::Semaphore>> = OnceLock::new();
    let turns = TURNS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        std::sync::Arc::new(tokio::sync::Semaphore::new(cores))
    });
    let turn = tokio::time::timeout(HASHING_WAIT, turns.clone().acquire_owned())
        .await
        .map_err(|_| Busy)?
        .map_err(|_| Busy)?;
    tokio::task::spawn_blocking(move || {
        let _turn = turn;
        work()
    })
    .await
    .map_err(|_| Busy)
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

    /// (Takes HASHING_WAIT: tokio's paused clock does not advance while blocking work runs.)
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn password_work_runs_one_per_core_and_past_its_wait_is_busy() {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let (started_tx, started) = std::sync::mpsc::channel::<()>();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let released = std::sync::Arc::new(std::sync::Mutex::new(released));
        let mut holders = Vec::new();
        for _ in 0..cores {
            let (started_tx, released) = (started_tx.clone(), released.clone());
            holders.push(tokio::spawn(bounded(move || {
                started_tx.send(()).unwrap();
                released.lock().unwrap().recv().unwrap();
            })));
        }
        for _ in 0..cores {
            tokio::task::block_in_place(|| started.recv().unwrap());
        }
        // Every core is taken: one more waits its HASHING_WAIT, then is refused.
        assert!(bounded(|| 1).await.is_err());
        // A turn given back is taken by the next.
        release.send(()).unwrap();
        assert_eq!(bounded(|| 2).await.unwrap(), 2);
        for _ in 1..cores {
            release.send(()).unwrap();
        }
        for holder in holders {
            holder.await.unwrap().unwrap();
        }
    }

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
