//! The process's own figures in `/metrics`, as Prometheus's client libraries name them
//! (here under the `aurora_` prefix): CPU time, resident and virtual memory, threads, open
//! and allowed file descriptors, start time. Read from `/proc/self` at each scrape (Linux;
//! elsewhere they stay 0).

use std::collections::VecDeque;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Clock ticks per second in `/proc/<pid>/stat` (`USER_HZ`: 100 on Linux's user ABI).
const TICKS_PER_SECOND: f64 = 100.0;

/// The process's metrics.
#[derive(Debug, Clone, Default)]
pub struct ProcessMetrics {
    /// User and system CPU time spent, seconds.
    pub cpu_seconds: Counter<f64, AtomicU64>,
    /// Resident memory, bytes.
    pub resident_bytes: Gauge,
    /// Virtual memory, bytes.
    pub virtual_bytes: Gauge,
    /// Threads.
    pub threads: Gauge,
    /// Open file descriptors.
    pub open_fds: Gauge,
    /// The most file descriptors the process may open (its soft limit).
    pub max_fds: Gauge,
    /// When the process started, seconds since the epoch.
    pub start_time_seconds: Gauge,
    /// Recent readings of the totals, for [`ProcessMetrics::rates`].
    samples: Arc<Mutex<VecDeque<Sample>>>,
}

/// Rates are measured over about this long (since the start, in a younger process).
pub const RATE_WINDOW: Duration = Duration::from_secs(60);

/// Totals at one moment.
#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Instant,
    cpu_seconds: f64,
    requests: u64,
    events: u64,
}

/// What the process did per second over the last [`RATE_WINDOW`] or so.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rates {
    /// How long the rates are measured over, seconds.
    pub window_seconds: f64,
    /// CPU use, percent of one core.
    pub cpu_percent: f64,
    /// Requests answered per second.
    pub requests_per_second: f64,
    /// Events this process appended to the store per second.
    pub events_per_second: f64,
}

impl ProcessMetrics {
    /// Registers them in `registry`; the start time is now.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        registry.register(
            "process_cpu_seconds",
            "User and system CPU time spent by the process, in seconds",
            metrics.cpu_seconds.clone(),
        );
        registry.register(
            "process_resident_memory_bytes",
            "Resident memory of the process",
            metrics.resident_bytes.clone(),
        );
        registry.register(
            "process_virtual_memory_bytes",
            "Virtual memory of the process",
            metrics.virtual_bytes.clone(),
        );
        registry.register(
            "process_threads",
            "Threads of the process",
            metrics.threads.clone(),
        );
        registry.register(
            "process_open_fds",
            "File descriptors the process holds open",
            metrics.open_fds.clone(),
        );
        registry.register(
            "process_max_fds",
            "The most file descriptors the process may open",
            metrics.max_fds.clone(),
        );
        registry.register(
            "process_start_time_seconds",
            "When the process started, in seconds since the epoch",
            metrics.start_time_seconds.clone(),
        );
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        metrics
            .start_time_seconds
            .set(i64::try_from(now).unwrap_or_default());
        metrics
    }

    /// The rates since the oldest reading within [`RATE_WINDOW`] (the start, in a younger
    /// process), given the totals now; keeps this reading for later calls (at most one a
    /// second).
    pub fn rates(&self, uptime: Duration, requests: u64, events: u64) -> Rates {
        let now = Instant::now();
        let started = now.checked_sub(uptime).unwrap_or(now);
        self.rates_at(started, now, self.cpu_seconds.get(), requests, events)
    }

    fn rates_at(
        &self,
        started: Instant,
        at: Instant,
        cpu_seconds: f64,
        requests: u64,
        events: u64,
    ) -> Rates {
        let now = Sample {
            at,
            cpu_seconds,
            requests,
            events,
        };
        let mut samples = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        if samples.is_empty() {
            // The first reading: the process's start, when every total was zero (at least
            // a second back, so that a first call right at the start is no spike).
            let second_back = at.checked_sub(Duration::from_secs(1)).unwrap_or(at);
            samples.push_back(Sample {
                at: started.min(second_back),
                cpu_seconds: 0.0,
                requests: 0,
                events: 0,
            });
        }
        // Keep one reading older than the window (the base), none older than it needs.
        while samples.len() > 1 && at.duration_since(samples[1].at) >= RATE_WINDOW {
            samples.pop_front();
        }
        let base = samples[0];
        if samples
            .back()
            .is_none_or(|last| at.duration_since(last.at) >= Duration::from_secs(1))
        {
            samples.push_back(now);
        }
        let seconds = at.duration_since(base.at).as_secs_f64().max(1e-3);
        let per_second = |now: f64, then: f64| ((now - then).max(0.0)) / seconds;
        Rates {
            window_seconds: seconds,
            cpu_percent: 100.0 * per_second(now.cpu_seconds, base.cpu_seconds),
            requests_per_second: per_second(now.requests as f64, base.requests as f64),
            events_per_second: per_second(now.events as f64, base.events as f64),
        }
    }

    /// Reads the figures as they are now.
    pub fn observe(&self) {
        if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
            if let Some(seconds) = cpu_seconds(&stat) {
                let spent = self.cpu_seconds.get();
                if seconds > spent {
                    self.cpu_seconds.inc_by(seconds - spent);
                }
            }
        }
        if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
            let field = |name: &str| status_field(&status, name);
            if let Some(kb) = field("VmRSS:") {
                self.resident_bytes.set(kb.saturating_mul(1024));
            }
            if let Some(kb) = field("VmSize:") {
                self.virtual_bytes.set(kb.saturating_mul(1024));
            }
            if let Some(threads) = field("Threads:") {
                self.threads.set(threads);
            }
        }
        if let Ok(entries) = std::fs::read_dir("/proc/self/fd") {
            self.open_fds
                .set(i64::try_from(entries.count()).unwrap_or(i64::MAX));
        }
        if let Ok(limits) = std::fs::read_to_string("/proc/self/limits") {
            if let Some(max) = max_open_files(&limits) {
                self.max_fds.set(max);
            }
        }
    }
}

/// User plus system time in `/proc/<pid>/stat`, seconds: fields 14 and 15, counted after
/// the command name (which is in parentheses and may hold spaces).
fn cpu_seconds(stat: &str) -> Option<f64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // after_name starts at field 3 (state): utime is field 14, stime field 15.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / TICKS_PER_SECOND)
}

/// A `Name:   <number> kB`-style field of `/proc/<pid>/status`.
fn status_field(status: &str, name: &str) -> Option<i64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix(name))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|value| value.parse().ok())
}

/// The soft limit of `Max open files` in `/proc/<pid>/limits`.
fn max_open_files(limits: &str) -> Option<i64> {
    limits
        .lines()
        .find_map(|line| line.strip_prefix("Max open files"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|value| value.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_files_are_read_as_linux_writes_them() {
        let stat = "4242 (aurora (worker) x) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 50 0 0 20 0 9 0 100 1000000 500";
        assert_eq!(cpu_seconds(stat), Some(3.0));
        let status = "Name:\taurora\nVmSize:\t  204800 kB\nVmRSS:\t   51200 kB\nThreads:\t9\n";
        assert_eq!(status_field(status, "VmRSS:"), Some(51200));
        assert_eq!(status_field(status, "Threads:"), Some(9));
        assert_eq!(status_field(status, "VmSwap:"), None);
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \nMax open files            1024                 1048576              files     \n";
        assert_eq!(max_open_files(limits), Some(1024));
    }

    #[test]
    fn this_process_is_measured() {
        let mut registry = Registry::default();
        let metrics = ProcessMetrics::register(&mut registry);
        metrics.observe();
        if std::path::Path::new("/proc/self/stat").exists() {
            assert!(metrics.resident_bytes.get() > 0);
            assert!(metrics.open_fds.get() >= 1);
            assert!(metrics.max_fds.get() >= metrics.open_fds.get());
            assert!(metrics.threads.get() >= 1);
        }
        assert!(metrics.start_time_seconds.get() > 1_700_000_000);
    }

    #[test]
    fn rates_are_taken_over_the_last_minute() {
        let mut registry = Registry::default();
        let metrics = ProcessMetrics::register(&mut registry);
        let start = Instant::now();
        let at = |seconds: u64| start + Duration::from_secs(seconds);
        // The first reading is measured from the start (less than a second ago: 1 s).
        let first = metrics.rates_at(start, at(0), 0.5, 10, 4);
        assert_eq!(first.window_seconds, 1.0);
        assert_eq!(first.requests_per_second, 10.0);
        assert_eq!(first.cpu_percent, 50.0);
        // 30 s later: over the 31 s since the start.
        let later = metrics.rates_at(start, at(30), 16.0, 320, 66);
        assert_eq!(later.window_seconds, 31.0);
        assert_eq!(later.requests_per_second, 320.0 / 31.0);
        assert_eq!(later.events_per_second, 66.0 / 31.0);
        // 100 s in: readings older than the window are dropped; the base is the newest
        // reading at least a window old (t = 30 s).
        let now = metrics.rates_at(start, at(100), 23.0, 1020, 66);
        assert_eq!(now.window_seconds, 70.0);
        assert_eq!(now.requests_per_second, 10.0);
        assert_eq!(now.cpu_percent, 10.0);
        assert_eq!(now.events_per_second, 0.0, "no events since");
        // Readings less than a second apart are not kept.
        let again = metrics.rates_at(start, at(100) + Duration::from_millis(10), 23.0, 1021, 66);
        assert!(again.window_seconds < 71.0);
        assert_eq!(metrics.samples.lock().unwrap().len(), 2);
    }
}
