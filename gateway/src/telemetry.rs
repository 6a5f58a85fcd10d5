//! Logs through tracing: JSON lines on stdout (or stderr for commands whose stdout is their
//! result) and, when a log directory is set, in files rotated daily with a retention and
//! size caps (`aurora.<date>.log`), plus `aurora-error.<date>.log` with errors only.
//!
//! Every line written inside a request carries the request's span: its `request_id`, `route`
//! (template), `method`, and `principal` once the token is verified; the access line adds the
//! status and latency. Secrets never reach a log line: database URLs are logged redacted,
//! passwords and tokens are never put in fields.

use std::path::PathBuf;

use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::Config;
use crate::logfiles::{Retention, RollingFile};

/// The filter when neither `AURORA_LOG` nor `RUST_LOG` says otherwise.
pub const DEFAULT_FILTER: &str = "info,warp=warn";

/// Where logs go and how much is kept.
#[derive(Debug, Clone)]
pub struct LogSettings {
    /// An `EnvFilter` directive: a level, per module levels (`info,aurora_gateway=debug`).
    pub filter: String,
    /// Write the console lines to stderr instead of stdout.
    pub stderr: bool,
    /// Log files here too (none: console only).
    pub dir: Option<PathBuf>,
    /// What the files keep.
    pub retention: Retention,
    /// How console lines look (files are always JSON lines).
    pub format: LogFormat,
}

/// How console log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// JSON lines, for collectors (containers, files, pipes).
    Json,
    /// Human-readable lines.
    Text,
    /// Text on a terminal, JSON lines otherwise.
    Auto,
}

impl LogFormat {
    /// From `AURORA_LOG_FORMAT` (`json`, `text` or `auto`; unset is `auto`).
    pub fn from_env() -> anyhow::Result<Self> {
        match std::env::var("AURORA_LOG_FORMAT").as_deref() {
            Err(_) | Ok("" | "auto") => Ok(Self::Auto),
            Ok("json") => Ok(Self::Json),
            Ok("text") => Ok(Self::Text),
            Ok(other) => {
                anyhow::bail!("AURORA_LOG_FORMAT must be json, text or auto, not {other:?}")
            }
        }
    }

    /// Does it come out as text, when written to stderr (`true`) or stdout?
    pub fn is_text(self, stderr: bool) -> bool {
        use std::io::IsTerminal;
        match self {
            Self::Json => false,
            Self::Text => true,
            Self::Auto if stderr => std::io::stderr().is_terminal(),
            Self::Auto => std::io::stdout().is_terminal(),
        }
    }
}

/// The filter from the environment: `AURORA_LOG`, else `RUST_LOG`, else the default.
pub fn filter_from_env() -> String {
    std::env::var("AURORA_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| DEFAULT_FILTER.to_string())
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            filter: filter_from_env(),
            stderr: false,
            dir: None,
            format: LogFormat::Auto,
            retention: Retention {
                days: 30,
                file_max_bytes: 100 << 20,
                total_max_bytes: 2 << 30,
            },
        }
    }
}

impl LogSettings {
    /// Where logs go, and the filter (`AURORA_LOG`, else `RUST_LOG`, else the default), as
    /// `config` sets them.
    pub fn from_config(config: &Config, stderr: bool) -> Self {
        Self {
            filter: config.log.clone().unwrap_or_else(filter_from_env),
            stderr,
            dir: config.log_files(),
            format: LogFormat::Auto,
            retention: Retention {
                days: config.log_retention_days,
                file_max_bytes: config.log_file_max_bytes,
                total_max_bytes: config.log_max_bytes,
            },
        }
    }

    /// The filter, or an error naming the setting.
    pub fn env_filter(&self) -> anyhow::Result<EnvFilter> {
        // warp's trace filter logs every 5xx as an "internal error" (a 503 from /ready while
        // draining included): Aurora's own access line and error lines say what happened.
        EnvFilter::builder()
            .with_regex(false)
            .parse(format!("{},warp::filters::trace=off", self.filter))
            .map_err(|e| anyhow::anyhow!("AURORA_LOG (or RUST_LOG): {e} (in {:?})", self.filter))
    }
}

/// The installed logging: keep it until the process ends, so that the log files' writer
/// thread writes out every line (dropping it flushes them).
#[must_use = "dropping it stops the log files' writer"]
pub struct Logging {
    /// Whether this call installed the subscriber (`false`: one was installed already, by
    /// an earlier call in this process, and this one changed nothing).
    pub installed: bool,
    _writers: Vec<tracing_appender::non_blocking::WorkerGuard>,
}

/// Lines waiting for the log files' writer before loggers wait for it (bounded memory; no
/// line is dropped).
const QUEUED_LINES: usize = 64 * 1024;

/// Installs the global subscriber. A later call in the same process changes nothing and
/// says so ([`Logging::installed`]).
pub fn init(settings: &LogSettings) -> anyhow::Result<Logging> {
    use tracing_subscriber::fmt::writer::BoxMakeWriter;
    let out = || {
        if settings.stderr {
            BoxMakeWriter::new(std::io::stderr)
        } else {
            BoxMakeWriter::new(std::io::stdout)
        }
    };
    let console = if settings.format.is_text(settings.stderr) {
        tracing_subscriber::fmt::layer()
            .with_target(false)
            .with_writer(out())
            .boxed()
    } else {
        tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .flatten_event(true)
            .with_target(true)
            .with_writer(out())
            .boxed()
    };
    let mut layers = vec![console.with_filter(settings.env_filter()?).boxed()];
    let mut writers = Vec::new();
    if let Some(dir) = &settings.dir {
        let mut open = |stem: &str| {
            let file = RollingFile::new(dir, stem, settings.retention)
                .map_err(|e| anyhow::anyhow!("AURORA_LOG_DIR {}: {e}", dir.display()))?;
            let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
                .lossy(false)
                .buffered_lines_limit(QUEUED_LINES)
                .thread_name(&format!("log-{stem}"))
                .finish(file);
            writers.push(guard);
            anyhow::Ok(writer)
        };
        let all = open("aurora")?;
        let errors = open("aurora-error")?;
        let file = |writer: tracing_appender::non_blocking::NonBlocking| {
            tracing_subscriber::fmt::layer()
                .json()
                .with_current_span(true)
                .with_span_list(false)
                .flatten_event(true)
                .with_target(true)
                .with_ansi(false)
                .with_writer(writer)
        };
        layers.push(file(all).with_filter(settings.env_filter()?).boxed());
        layers.push(file(errors).with_filter(LevelFilter::ERROR).boxed());
    }
    let installed = tracing_subscriber::registry()
        .with(layers)
        .try_init()
        .is_ok();
    Ok(Logging {
        installed,
        _writers: writers,
    })
}
