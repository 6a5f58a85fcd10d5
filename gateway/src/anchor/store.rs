//! Where signed heads are published: a JetStream stream that denies deletes and purges
//! (production), or an append-only file beside the database (embedded).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use async_nats::jetstream;
use aurora_nats::Subjects;
use ed25519_dalek::VerifyingKey;
use tokio::io::AsyncWriteExt;

use super::SignedHead;

/// Stream messages a signer reads at most in one round looking for the newest signed head.
pub const SCAN_BOUND: u64 = 1000;

/// Where signed heads are published.
pub enum HeadStore {
    /// An append-only file (embedded mode).
    File(PathBuf),
    /// A JetStream stream that denies deletes and purges.
    Stream {
        /// JetStream.
        js: Box<jetstream::Context>,
        /// The stream's name.
        stream: String,
        /// Its one subject.
        subject: String,
    },
}

impl HeadStore {
    /// The store of this deployment as it is, for a verifier: nothing is created.
    pub fn existing(data_dir: &Path, nats: Option<async_nats::Client>, prefix: &str) -> Self {
        let Some(client) = nats else {
            return HeadStore::File(data_dir.join("audit-heads.ndjson"));
        };
        let subjects = Subjects::new(prefix.to_string());
        HeadStore::Stream {
            js: Box::new(jetstream::new(client)),
            stream: subjects.audit_heads_stream(),
            subject: subjects.audit_heads(),
        }
    }

    /// The store for this deployment, created if missing: the stream (with `replicas`
    /// copies) when NATS is there, else the file.
    pub async fn open(
        data_dir: &Path,
        nats: Option<async_nats::Client>,
        prefix: &str,
        replicas: usize,
    ) -> anyhow::Result<Self> {
        let store = Self::existing(data_dir, nats, prefix);
        let HeadStore::Stream {
            js,
            stream,
            subject,
        } = &store
        else {
            return Ok(store);
        };
        js.get_or_create_stream(jetstream::stream::Config {
            name: stream.clone(),
            subjects: vec![subject.clone()],
            description: Some("Aurora's signed audit chain heads (append-only)".into()),
            // Kept for good, and no one who can publish can take one back.
            deny_delete: true,
            deny_purge: true,
            storage: jetstream::stream::StorageType::File,
            num_replicas: replicas,
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        })
        .await
        .map_err(|e| anyhow::anyhow!("creating the stream {stream}: {e}"))?;
        Ok(store)
    }

    /// The stream, with its state as of this call (one request).
    async fn stream(&self) -> anyhow::Result<Option<jetstream::stream::Stream>> {
        let HeadStore::Stream { js, stream, .. } = self else {
            return Ok(None);
        };
        let found = js
            .get_stream(stream.as_str())
            .await
            .map_err(|e| anyhow::anyhow!("opening the audit heads stream {stream}: {e}"))?;
        Ok(Some(found))
    }

    /// Publishes `head` (acknowledged by the server, or written and synced).
    pub async fn publish(&self, head: &SignedHead) -> anyhow::Result<()> {
        let line = serde_json::to_string(head)?;
        match self {
            HeadStore::File(path) => {
                let mut file = tokio::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .await
                    .with_context(|| format!("opening {}", path.display()))?;
                file.write_all(format!("{line}\n").as_bytes()).await?;
                file.sync_data().await?;
            }
            HeadStore::Stream { js, subject, .. } => {
                let mut headers = async_nats::HeaderMap::new();
                let id = format!(
                    "audit-head-{}-{}",
                    head.seq,
                    &head.hash[..16.min(head.hash.len())]
                );
                headers.insert("Nats-Msg-Id", id.as_str());
                js.publish_with_headers(subject.clone(), headers, line.into())
                    .await
                    .map_err(|e| anyhow::anyhow!("publishing an audit head: {e}"))?
                    .await
                    .map_err(|e| anyhow::anyhow!("publishing an audit head: {e}"))?;
            }
        }
        Ok(())
    }

    /// Every published statement in publication order; lines or messages that are not a
    /// statement are returned as errors in place (a verifier reports them). A message that
    /// cannot be fetched is the transport's failure, and fails the call.
    pub async fn all(&self) -> anyhow::Result<Vec<Result<SignedHead, String>>> {
        match self {
            HeadStore::File(path) => {
                let text = match tokio::fs::read(path).await {
                    Ok(text) => text,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
                    Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
                };
                Ok(text
                    .split(|b| *b == b'\n')
                    .filter(|line| !line.iter().all(u8::is_ascii_whitespace))
                    .map(parse)
                    .collect())
            }
            HeadStore::Stream { .. } => {
                let stream = self.stream().await?.expect("a stream store");
                let state = &stream.cached_info().state;
                if state.messages == 0 {
                    return Ok(Vec::new());
                }
                let mut heads = Vec::new();
                for sequence in state.first_sequence..=state.last_sequence {
                    heads.push(parse(&message(&stream, sequence).await?));
                }
                Ok(heads)
            }
        }
    }

    /// The newest statement signed by `key`: [`HeadStore::last_signed_since`] over it all.
    pub async fn last_signed(&self, key: &VerifyingKey) -> anyhow::Result<Option<SignedHead>> {
        Ok(self.last_signed_since(key, 0).await?.0)
    }

    /// The newest statement signed by `key` among those published after stream message
    /// `since` (the file: all of it), and the last message there is. Statements not signed
    /// by the key are skipped and logged (anyone who can publish to the store could add
    /// one); at most [`SCAN_BOUND`] messages are read, newest first, so junk cannot make a
    /// round unbounded. A message that cannot be fetched is an error.
    pub async fn last_signed_since(
        &self,
        key: &VerifyingKey,
        since: u64,
    ) -> anyhow::Result<(Option<SignedHead>, u64)> {
        let valid = |statement: Result<SignedHead, String>| match statement {
            Ok(head) if head.is_signed_by(key) => Some(head),
            Ok(head) => {
                tracing::warn!(
                    seq = head.seq,
                    "a published audit head is not signed by the audit key"
                );
                None
            }
            Err(reason) => {
                tracing::warn!(%reason, "an unreadable published audit head");
                None
            }
        };
        let Some(stream) = self.stream().await? else {
            return Ok((self.all().await?.into_iter().rev().find_map(valid), 0));
        };
        let state = &stream.cached_info().state;
        let last = state.last_sequence;
        if state.messages == 0 || last <= since {
            return Ok((None, last));
        }
        let oldest = state
            .first_sequence
            .max(since + 1)
            .max(last.saturating_sub(SCAN_BOUND - 1));
        for sequence in (oldest..=last).rev() {
            if let Some(head) = valid(parse(&message(&stream, sequence).await?)) {
                return Ok((Some(head), last));
            }
        }
        Ok((None, last))
    }

    /// What the store says of itself: a problem (a stream that is missing, allows deletes
    /// or purges, or no longer starts at its first message: heads can be, or were,
    /// removed), and when the stream was created (a signed head older than its stream was
    /// republished into a recreated one). The file says nothing.
    pub async fn inspect(
        &self,
    ) -> anyhow::Result<(Option<String>, Option<chrono::DateTime<chrono::Utc>>)> {
        let HeadStore::Stream { stream: name, .. } = self else {
            return Ok((None, None));
        };
        let stream = match self.stream().await {
            Ok(stream) => stream.expect("a stream store"),
            Err(e) => {
                return Ok((
                    Some(format!("the audit heads stream {name} is missing: {e}")),
                    None,
                ))
            }
        };
        let info = stream.cached_info();
        let created = chrono::DateTime::from_timestamp(info.created.unix_timestamp(), 0);
        let problem = if !info.config.deny_delete || !info.config.deny_purge {
            Some(format!(
                "the audit heads stream {name} allows deletes or purges"
            ))
        } else if info.state.messages > 0 && info.state.first_sequence != 1 {
            Some(format!(
                "the audit heads stream {name} starts at message {}: earlier heads were removed",
                info.state.first_sequence
            ))
        } else {
            None
        };
        Ok((problem, created))
    }
}

/// A stored statement, or why it is not one.
fn parse(text: &[u8]) -> Result<SignedHead, String> {
    serde_json::from_slice::<SignedHead>(text).map_err(|e| {
        format!(
            "not a signed head ({e}): {}",
            String::from_utf8_lossy(&text[..text.len().min(200)])
        )
    })
}

/// Message `sequence` of `stream`'s payload.
async fn message(
    stream: &jetstream::stream::Stream,
    sequence: u64,
) -> anyhow::Result<bytes::Bytes> {
    let message = stream
        .get_raw_message(sequence)
        .await
        .map_err(|e| anyhow::anyhow!("reading audit head message {sequence}: {e}"))?;
    Ok(message.payload)
}
