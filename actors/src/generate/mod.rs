//! The `generate` step: a video made by a paid provider (HeyGen), then handled like any
//! input.
//!
//! One attempt: if the run has recorded no video for the step, ask the provider for one
//! (busy answers retried with backoff and `Retry-After`) and record its id
//! (`GenerationSubmitted`) *before* waiting; then wait for that id — polling its status
//! with backoff, woken early by the provider's webhook (`GenerationReported`, delivered to
//! every replica through the bus) — and download the result through the guarded fetcher
//! (only the provider's hosts, size and time limits, sniffed like any input). An attempt
//! that follows a dead replica finds the recorded id and waits for it: a step pays for one
//! video. The provider's creation carries an idempotency key per step (v3), so even a
//! replica that dies between the provider's answer and the record is followed by a
//! creation the provider replays, not a second video.
//!
//! Outcomes: the provider failing the video, refusing the request (4xx) or not knowing the
//! recorded id fail the run (another attempt would pay again or fail the same way); a
//! provider that stays busy or unreachable, or a video not ready within the step timeout,
//! fails the attempt, and the next one resumes waiting on the same id.

pub mod heygen;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

pub use heygen::{ApiKey, ApiVersion, Heygen, HeygenSettings, ProviderError, Status};

/// How generate steps behave.
#[derive(Debug, Clone)]
pub struct GenerateSettings {
    /// HeyGen, when a key is configured.
    pub heygen: Option<HeygenSettings>,
    /// Longest a step waits for its video, from when the provider took the request (over
    /// all its attempts).
    pub timeout: Duration,
    /// The first pause between status polls; it doubles up to `poll_max`.
    pub poll: Duration,
    /// The longest pause between status polls.
    pub poll_max: Duration,
    /// Hosts the finished video may be downloaded from.
    pub media_hosts: HostPatterns,
}

impl Default for GenerateSettings {
    fn default() -> Self {
        Self {
            heygen: None,
            timeout: Duration::from_secs(60 * 60),
            poll: Duration::from_secs(5),
            poll_max: Duration::from_secs(60),
            media_hosts: HostPatterns::heygen(),
        }
    }
}

/// Host names, exact (`files.heygen.ai`) or by suffix (`*.heygen.ai`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPatterns(Vec<String>);

impl HostPatterns {
    /// HeyGen's file hosts (`files.heygen.ai`, `files2.heygen.ai`, `resource2.heygen.ai`,
    /// …).
    pub fn heygen() -> Self {
        Self::parse("*.heygen.ai,*.heygen.com").expect("valid patterns")
    }

    /// Parses a comma-separated list.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut patterns = Vec::new();
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let bare = item.strip_prefix("*.").unwrap_or(item);
            if bare.is_empty()
                || bare.contains('*')
                || !bare
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'))
            {
                return Err(format!(
                    "{item:?} is not a host name or *.suffix (like *.heygen.ai)"
                ));
            }
            patterns.push(item.to_ascii_lowercase());
        }
        if patterns.is_empty() {
            return Err("list at least one host".into());
        }
        Ok(Self(patterns))
    }

    /// Is `host` one of them?
    pub fn allows(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.0
            .iter()
            .any(|pattern| match pattern.strip_prefix("*.") {
                Some(suffix) => host
                    .strip_suffix(suffix)
                    .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
                None => host == *pattern,
            })
    }
}

/// Wake-ups for the attempts waiting on a provider's video, by video id: a verified
/// webhook reported it (here or on another replica).
#[derive(Debug, Default)]
pub struct Signals {
    waiting: Mutex<HashMap<String, Arc<Notify>>>,
}

impl Signals {
    /// The wake-up of `video_id`, registered until the [`Waiter`] is dropped.
    pub fn waiter(&self, video_id: &str) -> Waiter<'_> {
        let notify = self
            .waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(video_id.to_string())
            .or_default()
            .clone();
        Waiter {
            signals: self,
            video_id: video_id.to_string(),
            notify,
        }
    }

    /// Wakes whoever waits on `video_id` here (nobody: nothing happens).
    pub fn notify(&self, video_id: &str) {
        let waiter = self
            .waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(video_id)
            .cloned();
        if let Some(waiter) = waiter {
            waiter.notify_one();
        }
    }
}

/// A registered wake-up of one video; dropping it unregisters it.
pub struct Waiter<'a> {
    signals: &'a Signals,
    video_id: String,
    notify: Arc<Notify>,
}

impl Waiter<'_> {
    /// Returns when a report about the video arrived (at once if one arrived since the
    /// last call).
    pub async fn notified(&self) {
        self.notify.notified().await;
    }
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        self.signals
            .waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.video_id);
    }
}

/// The pause before the next try: `backoff`, or longer if the provider's `Retry-After`
/// says so (a `Retry-After: 0` does not make Aurora hammer it).
pub fn next_pause(backoff: Duration, retry_after: Option<Duration>) -> Duration {
    retry_after.map_or(backoff, |wait| wait.max(backoff))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_patterns_match_exactly_or_by_whole_labels() {
        let hosts = HostPatterns::heygen();
        assert!(hosts.allows("files2.heygen.ai"));
        assert!(hosts.allows("resource2.heygen.ai."));
        assert!(hosts.allows("FILES.HEYGEN.COM"));
        assert!(!hosts.allows("heygen.ai.evil.example"));
        assert!(!hosts.allows("evilheygen.ai"));
        assert!(
            !hosts.allows("heygen.ai"),
            "the suffix needs a label before it"
        );
        let exact = HostPatterns::parse("127.0.0.1").unwrap();
        assert!(exact.allows("127.0.0.1") && !exact.allows("127.0.0.2"));
        assert!(HostPatterns::parse("*").is_err());
        assert!(HostPatterns::parse("a/b").is_err());
        assert!(HostPatterns::parse(" , ").is_err());
    }

    #[test]
    fn a_signal_wakes_the_waiter_even_if_sent_first() {
        let signals = Signals::default();
        let waiter = signals.waiter("v1");
        signals.notify("v1");
        signals.notify("unknown");
        // A permit was stored: the wait returns at once.
        futures::executor::block_on(waiter.notified());
        drop(waiter);
        assert!(signals.waiting.lock().unwrap().is_empty());
    }
}
