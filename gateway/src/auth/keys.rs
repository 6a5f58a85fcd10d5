//! The root key ring.
//!
//! Each root key is an Ed25519 key in PKCS#8 PEM, in a file `root-<id>.pem` in the key
//! directory; `<id>` is the `root_key_id` written into every token it signs. New tokens are
//! signed with the highest id; tokens signed by any key still in the directory verify; a
//! key removed from the directory (retired) invalidates every token it signed. Rotating is
//! adding `root-<id+1>.pem` (an Ed25519 PKCS#8 key: `openssl genpkey -algorithm ed25519`)
//! and restarting the replicas.
//!
//! Embedded mode keeps the directory under the data dir and creates the first key on first
//! start; production points `AURORA_ROOT_KEYS_DIR` at a mounted secret.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use biscuit_auth::{KeyPair, PublicKey};

/// What went wrong with the root keys.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Reading or writing a key file.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A key file that is not an Ed25519 PKCS#8 PEM key.
    #[error("{path}: not a root key: {reason}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// No key in a directory Aurora may not create keys in.
    #[error("no root key (root-<id>.pem) in {0}")]
    Empty(PathBuf),
}

/// Every root key Aurora accepts, by id.
pub struct KeyRing {
    keys: BTreeMap<u32, KeyPair>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("ids", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> KeyError + '_ {
    move |source| KeyError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl KeyRing {
    /// Loads every `root-<id>.pem` in `dir`. With `create`, a missing directory or an
    /// empty one gets a first key, written with mode 0600.
    pub fn load(dir: &Path, create: bool) -> Result<Self, KeyError> {
        if create {
            create_private_dir(dir)?;
        }
        let mut keys = BTreeMap::new();
        for entry in std::fs::read_dir(dir).map_err(io(dir))? {
            let path = entry.map_err(io(dir))?.path();
            let Some(id) = key_id(&path) else { continue };
            let pem = std::fs::read_to_string(&path).map_err(io(&path))?;
            let key =
                KeyPair::from_private_key_pem(pem.trim()).map_err(|e| KeyError::Malformed {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
            keys.insert(id, key);
        }
        let mut ring = Self { keys };
        if ring.keys.is_empty() {
            if !create {
                return Err(KeyError::Empty(dir.to_path_buf()));
            }
            ring.rotate(dir)?;
        }
        Ok(ring)
    }

    /// Adds a key with the next id, written to `dir` with mode 0600; it signs from now on.
    pub fn rotate(&mut self, dir: &Path) -> Result<u32, KeyError> {
        let id = self.keys.keys().next_back().map_or(1, |last| last + 1);
        let key = KeyPair::new();
        let path = dir.join(format!("root-{id}.pem"));
        let pem = key.to_private_key_pem().map_err(|e| KeyError::Malformed {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        write_private(&path, pem.as_bytes())?;
        self.keys.insert(id, key);
        Ok(id)
    }

    /// The id and key new tokens are signed with: the highest id.
    pub fn signing(&self) -> (u32, &KeyPair) {
        let (id, key) = self
            .keys
            .iter()
            .next_back()
            .expect("a key ring is never empty");
        (*id, key)
    }

    /// The public key of root key `id`, if it is in the ring.
    pub fn public(&self, id: u32) -> Option<PublicKey> {
        self.keys.get(&id).map(KeyPair::public)
    }

    /// The ids in the ring, oldest first.
    pub fn ids(&self) -> Vec<u32> {
        self.keys.keys().copied().collect()
    }
}

fn key_id(path: &Path) -> Option<u32> {
    path.file_name()?
        .to_str()?
        .strip_prefix("root-")?
        .strip_suffix(".pem")?
        .parse()
        .ok()
}

#[cfg(unix)]
pub(crate) fn create_private_dir(dir: &Path) -> Result<(), KeyError> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.exists() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io(dir))
}

#[cfg(not(unix))]
pub(crate) fn create_private_dir(dir: &Path) -> Result<(), KeyError> {
    std::fs::create_dir_all(dir).map_err(io(dir))
}

/// Writes a new file readable by its owner only; never overwrites.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> Result<(), KeyError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(io(path))?;
    file.write_all(bytes).map_err(io(path))?;
    file.sync_all().map_err(io(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_first_start_creates_one_private_key_and_a_second_start_reuses_it() {
        let dir = tempdir();
        let keys = dir.join("keys");
        let first = KeyRing::load(&keys, true).unwrap();
        assert_eq!(first.ids(), vec![1]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(keys.join("root-1.pem"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "root key readable by its owner only");
        }
        let again = KeyRing::load(&keys, true).unwrap();
        assert_eq!(again.public(1), first.public(1));
    }

    #[test]
    fn rotation_signs_with_the_newest_and_keeps_the_old() {
        let dir = tempdir();
        let mut ring = KeyRing::load(&dir, true).unwrap();
        assert_eq!(ring.rotate(&dir).unwrap(), 2);
        assert_eq!(ring.signing().0, 2);
        let reloaded = KeyRing::load(&dir, false).unwrap();
        assert_eq!(reloaded.ids(), vec![1, 2]);
    }

    #[test]
    fn production_refuses_to_start_without_a_key() {
        let dir = tempdir();
        assert!(matches!(
            KeyRing::load(&dir, false),
            Err(KeyError::Empty(_))
        ));
    }

    #[test]
    fn a_malformed_key_file_is_an_error_not_a_new_key() {
        let dir = tempdir();
        std::fs::write(dir.join("root-1.pem"), "not a key").unwrap();
        assert!(matches!(
            KeyRing::load(&dir, true),
            Err(KeyError::Malformed { .. })
        ));
    }

    fn tempdir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("aurora-keys-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
