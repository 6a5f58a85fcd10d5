//! The artifact store: uploaded media and the files runs produce, in a directory (under the
//! data dir by default; a shared volume when several replicas run).
//!
//! Names are Aurora's, never a client's: `media/<uuid>` and
//! `runs/<run uuid>/step-<n>-a<attempt>.<ext>`. Files are written under a `.part` name and
//! renamed when complete, so a crash leaves no half file under a final name, and the
//! attempt in the name keeps an executor that lost the run from overwriting the winner's.

use std::path::{Path, PathBuf};

use aurora_domain::media::InputFormat;
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;
use uuid::Uuid;

/// Where artifacts live.
#[derive(Debug, Clone)]
pub struct ArtifactStore {
    root: PathBuf,
}

impl ArtifactStore {
    /// A store rooted at `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Creates the directories.
    pub async fn prepare(&self) -> std::io::Result<()> {
        tokio::fs::create_dir_all(self.root.join("media")).await?;
        tokio::fs::create_dir_all(self.root.join("runs")).await
    }

    /// The file of uploaded media `id`.
    pub fn media(&self, id: Uuid) -> PathBuf {
        self.root.join("media").join(id.to_string())
    }

    /// A fresh temporary name for an upload in progress. It names the uploading process, so
    /// that the janitor removes it once that process is gone.
    pub fn media_part(&self, id: Uuid) -> PathBuf {
        let owner = crate::owner::Owner::this().tag();
        self.root.join("media").join(format!(".{id}.{owner}.part"))
    }

    /// The directory of run `id`'s files.
    pub fn run_dir(&self, run: Uuid) -> PathBuf {
        self.root.join("runs").join(run.to_string())
    }

    /// A run's fetched input (for URL inputs).
    pub fn run_input(&self, run: Uuid) -> PathBuf {
        self.run_dir(run).join("input")
    }

    /// The final name of the output of `step`, attempt `attempt`.
    pub fn step_file_name(step: usize, attempt: u32, extension: &str) -> String {
        format!("step-{step}-a{attempt}.{extension}")
    }

    /// The path of a run's artifact called `name`; `None` for a name Aurora never gives
    /// (anything with a separator, `..`, or a leading dot).
    pub fn artifact(&self, run: Uuid, name: &str) -> Option<PathBuf> {
        let safe = !name.is_empty()
            && !name.starts_with('.')
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_');
        safe.then(|| self.run_dir(run).join(name))
    }

    /// The temporary path an artifact is written to before [`ArtifactStore::commit`].
    pub fn part(final_path: &Path) -> PathBuf {
        let name = final_path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        final_path.with_file_name(format!(".{name}.part"))
    }

    /// Moves a complete `.part` file to its final name.
    pub async fn commit(part: &Path, final_path: &Path) -> std::io::Result<()> {
        tokio::fs::rename(part, final_path).await
    }

    /// Size and SHA-256 of a file, read in chunks.
    pub async fn digest(path: &Path) -> std::io::Result<(u64, String)> {
        let mut file = tokio::fs::File::open(path).await?;
        let mut hasher = Sha256::new();
        let mut buffer = vec![0u8; 256 * 1024];
        let mut size = 0u64;
        loop {
            let read = file.read(&mut buffer).await?;
            if read == 0 {
                break;
            }
            hasher.update(&buffer[..read]);
            size += read as u64;
        }
        Ok((size, hex::encode(hasher.finalize())))
    }
}

/// The candidate format of the file at `path`, judged by its first bytes (see
/// [`InputFormat::sniff`]); `None` when they name no admitted format.
pub async fn sniff_file(path: &Path) -> std::io::Result<Option<InputFormat>> {
    let mut file = tokio::fs::File::open(path).await?;
    let mut head = vec![0u8; SNIFF_BYTES];
    let mut filled = 0;
    while filled < head.len() {
        let read = file.read(&mut head[filled..]).await?;
        if read == 0 {
            break;
        }
        filled += read;
    }
    Ok(InputFormat::sniff(&head[..filled]))
}

/// Bytes of a file's head the sniff looks at.
pub const SNIFF_BYTES: usize = 512;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifact_names_cannot_leave_the_run_directory() {
        let store = ArtifactStore::new("/data/artifacts");
        let run = Uuid::from_u128(1);
        assert!(store.artifact(run, "step-0-a1.webm").is_some());
        for bad in ["../x", "..", "a/b", "", ".step-0.part", "a\\b", "%2e%2e"] {
            assert!(store.artifact(run, bad).is_none(), "{bad}");
        }
    }
}
