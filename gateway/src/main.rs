//! `aurora`: serve, migrate, rebuild projections, benchmark.

// The router is one warp filter whose type nests every route; laying out the future that
// serves it takes the compiler past its default query depth of 128 in release builds.
#![recursion_limit = "256"]

use anyhow::Context;
use aurora_gateway::cli::admin;
use aurora_gateway::cli::bench::audit::{self as bench_audit, BenchAuditArgs};
use aurora_gateway::cli::bench::auth::{self as bench_auth, AuthBenchArgs};
use aurora_gateway::cli::bench::commands::{self as bench, BenchArgs};
use aurora_gateway::cli::bench::limits::{self as bench_limits, LimitsBenchArgs};
use aurora_gateway::cli::bench::transcode::{self as bench_transcode, TranscodeBenchArgs};
use aurora_gateway::cli::maintenance::{self, Projection};
use aurora_gateway::cli::watch::{self, WatchArgs};
use aurora_gateway::config::{self, Config};
use aurora_gateway::startup::{connect_database, Application};
use aurora_gateway::telemetry;
use clap::{Parser, Subcommand};

/// mimalloc: the request path allocates a great deal (JSON, headers, SQL rows), and glibc's
/// malloc took ~10 % of Aurora's CPU under load (perf, see docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(name = "aurora", version, about = "Event-sourced media pipelines")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the HTTP API (embedded mode unless DATABASE_URL / NATS_URL are set).
    Serve(Config),
    /// Apply pending database migrations and exit.
    Migrate(Config),
    /// Read-model maintenance.
    Projections {
        #[command(subcommand)]
        action: ProjectionsCommand,
    },
    /// Measure POST /api/v1/runs against raw single-row inserts on the same database.
    Bench(BenchArgs),
    /// Measure what authorization adds per request (cache hit and miss) beside an
    /// unauthenticated route, on an embedded Aurora.
    BenchAuth(AuthBenchArgs),
    /// Measure a rate-limit decision (beside governor), what the limiter adds per request,
    /// and memory per bucket.
    BenchLimits(LimitsBenchArgs),
    /// Measure a transcode through Aurora against the same ffmpeg command run directly,
    /// and (with the `faults` feature) panic-to-progress time.
    BenchTranscode(TranscodeBenchArgs),
    /// Print a run's events and live progress until it ends.
    Watch(WatchArgs),
    /// The audit log.
    Audit {
        #[command(subcommand)]
        action: AuditCommand,
    },
    /// Replaying history.
    Replay {
        #[command(subcommand)]
        action: ReplayCommand,
    },
    /// Measure an audit-log rebuild over generated events against a raw read of the
    /// events table, and peak memory.
    BenchAudit(BenchAuditArgs),
    /// Administration.
    Admin {
        #[command(subcommand)]
        action: AdminCommand,
    },
    /// Settings.
    Config {
        #[command(subcommand)]
        action: ConfigCommand,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Check the settings (flags, environment, `--config` file) as `aurora serve` would,
    /// without connecting to anything; print them (secrets hidden) as JSON. Exit status 1
    /// with a message naming the first bad setting.
    Check(Config),
}

#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)] // Parsed once per process.
enum AdminCommand {
    /// Create an admin (the first one, typically); the password is read from stdin.
    /// Prints a session token as JSON on stdout.
    Create {
        /// The admin's username.
        #[arg(long)]
        username: String,
        #[command(flatten)]
        config: Config,
    },
    /// Make the NATS auth callout's issuer key pair. Prints JSON: `seed` (for
    /// AURORA_NATS_CALLOUT_ISSUER_SEED: keep it in a secret) and `public_key` (the
    /// server's `auth_callout.issuer`).
    NatsIssuer,
}

#[derive(Debug, Subcommand)]
enum ProjectionsCommand {
    /// Rebuild a read model by replaying the event store, while Aurora keeps serving
    /// (a progress bar on stderr, a JSON report on stdout).
    Rebuild {
        /// Which read model.
        projection: Projection,
        #[command(flatten)]
        config: Config,
    },
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Check the audit log — its hash chain, the store replayed against it, and the chain
    /// heads signed and published outside the database — or an export file's chain, and
    /// report the first entry that was changed, removed, reordered, rewritten or re-chained.
    /// Exit status 1 if one was.
    Verify {
        /// An export (`GET /api/v1/audit/export`) to check instead of the database.
        #[arg(long)]
        file: Option<std::path::PathBuf>,
        /// The export selected entries by actor, action or resource (its `x-audit-chain`
        /// header said `selection`): check each entry and their order, not the links.
        #[arg(long, requires = "file")]
        selection: bool,
        /// The audit key's public half (`ed25519/<hex>`, as `verify` prints it), for an
        /// auditor who does not hold the key itself; comma-separated to accept heads signed
        /// by keys rotated out. Default: the key in `AURORA_AUDIT_KEY_DIR`.
        #[arg(long, env = "AURORA_AUDIT_PUBLIC_KEY")]
        audit_public_key: Option<String>,
        #[command(flatten)]
        config: Config,
    },
}

#[derive(Debug, Subcommand)]
enum ReplayCommand {
    /// Load every aggregate in the store with today's code (upcasters included) and
    /// report each that fails. Exit status 1 if any does.
    Verify {
        #[command(flatten)]
        config: Config,
    },
}

fn main() -> anyhow::Result<()> {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // The settings file goes beneath the environment before clap reads it, and before any
    // thread exists (setting variables is only sound then).
    if let Some(path) = config::settings_file(&args) {
        config::apply_settings_file(&path)?;
    }
    let cli = Cli::parse_from(args);
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?
        .block_on(run(cli))
}

/// The settings of a command that has them.
fn settings(command: &Command) -> Option<&Config> {
    match command {
        Command::Serve(config)
        | Command::Migrate(config)
        | Command::Projections {
            action: ProjectionsCommand::Rebuild { config, .. },
        }
        | Command::Audit {
            action: AuditCommand::Verify { config, .. },
        }
        | Command::Replay {
            action: ReplayCommand::Verify { config },
        }
        | Command::Admin {
            action: AdminCommand::Create { config, .. },
        }
        | Command::Config {
            action: ConfigCommand::Check(config),
        } => Some(config),
        _ => None,
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    // Commands whose stdout is their result log to stderr.
    let stderr = !matches!(
        cli.command,
        Command::Serve(_)
            | Command::Migrate(_)
            | Command::Bench(_)
            | Command::BenchAuth(_)
            | Command::BenchLimits(_)
            | Command::BenchTranscode(_)
            | Command::BenchAudit(_)
    );
    let mut logs = match settings(&cli.command) {
        Some(config) => telemetry::LogSettings::from_config(config, stderr),
        None => telemetry::LogSettings {
            stderr,
            ..Default::default()
        },
    };
    logs.format = telemetry::LogFormat::from_env()?;
    // Only the server writes log files: CLI commands sharing its settings file must not
    // write into its files (nor create them with their own owner). Checking the settings
    // writes nothing at all.
    if !matches!(cli.command, Command::Serve(_)) {
        logs.dir = None;
    }
    let _logging = match cli.command {
        Command::Config { .. } => None,
        _ => Some(telemetry::init(&logs)?),
    };
    match cli.command {
        Command::Serve(config) => serve(config).await,
        Command::Migrate(config) => {
            let db = connect_database(&config).await?;
            db.migrate().await.context("applying migrations")?;
            tracing::info!(backend = db.backend(), "migrations applied");
            Ok(())
        }
        Command::Projections {
            action: ProjectionsCommand::Rebuild { projection, config },
        } => {
            let db = connect_database(&config).await?;
            db.migrate().await.context("applying migrations")?;
            let report = maintenance::rebuild(db, projection).await?;
            println!("{report}");
            Ok(())
        }
        Command::Audit {
            action:
                AuditCommand::Verify {
                    file,
                    selection,
                    audit_public_key,
                    config,
                },
        } => {
            let verdict = match file {
                Some(path) => serde_json::to_value(maintenance::verify_export(&path, selection)?)?,
                None => maintenance::verify_anchored(&config, audit_public_key.as_deref()).await?,
            };
            println!("{}", serde_json::to_string_pretty(&verdict)?);
            if !verdict["finding"].is_null() {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Replay {
            action: ReplayCommand::Verify { config },
        } => {
            let db = connect_database(&config).await?;
            db.migrate().await.context("applying migrations")?;
            let report = maintenance::replay_verify(&db).await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            if !report.failures.is_empty() {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::BenchAudit(args) => bench_audit::run(args).await,
        Command::Watch(args) => watch::run(args).await,
        Command::Bench(args) => bench::run(args).await,
        Command::BenchAuth(args) => bench_auth::run(args).await,
        Command::BenchLimits(args) => bench_limits::run(args).await,
        Command::BenchTranscode(args) => bench_transcode::run(args).await,
        Command::Config {
            action: ConfigCommand::Check(config),
        } => {
            aurora_gateway::startup::check(&config)?;
            println!("{}", serde_json::to_string_pretty(&config)?);
            Ok(())
        }
        Command::Admin {
            action: AdminCommand::Create { username, config },
        } => {
            let password = admin::read_password()?;
            let minted = admin::create(&config, &username, password).await?;
            let expires_at: chrono::DateTime<chrono::Utc> = minted.expires_at.into();
            let out = serde_json::json!({
                "username": username.to_ascii_lowercase(),
                "token": minted.token,
                "token_type": "Bearer",
                "token_id": minted.token_id,
                "expires_at": expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            });
            println!("{out}");
            Ok(())
        }
        Command::Admin {
            action: AdminCommand::NatsIssuer,
        } => {
            let issuer = aurora_nats::callout::Issuer::generate();
            let out = serde_json::json!({
                "seed": issuer.seed(),
                "public_key": issuer.public_key(),
            });
            println!("{out}");
            Ok(())
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let text = telemetry::LogFormat::from_env()?.is_text(false);
    let app = Application::build(config).await?;
    if text {
        // A person at a terminal: where to go, and how to get in.
        print!(
            "{}",
            aurora_gateway::banner::banner(&app.state(), app.port()).await
        );
    }
    let shutdown = app.shutdown_token();
    tokio::spawn(async move {
        wait_for_signal().await;
        shutdown.cancel();
    });
    app.run_until_stopped().await
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate()).expect("installing the SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
        _ = terminate.recv() => tracing::info!("SIGTERM received"),
    }
}
