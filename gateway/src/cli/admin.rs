//! `aurora admin create --username …`: the first admin, in either storage mode.
//!
//! The password comes from stdin (one line; a prompt is printed to stderr when stdin is a
//! terminal). It is held to the same policy as registration, hashed with argon2id, and
//! never logged. The admin is registered (`Registration::Bootstrap`), a session is
//! recorded as a login, and the session token is returned for the caller to print. The
//! events are committed to the store; the relay of a running (or the next started)
//! gateway carries them to the bus.

use std::io::{BufRead, IsTerminal, Write};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context};
use aurora_domain::user::{
    Registration, Role, Tier, TokenGrant, TokenKind, UserCommand, UserError, Username,
};
use aurora_domain::EventMetadata;
use aurora_projections::UserCommands;
use cqrs_es::AggregateError;
use tokio::sync::Notify;

use crate::auth::passwords;
use crate::auth::revocations::Revocations;
use crate::auth::tokens::{Minted, Tokens};
use crate::config::Config;
use crate::startup::{connect_database, load_root_keys};

/// Reads the password: one line from stdin, prompting on a terminal.
pub fn read_password() -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("password for the new admin (input is echoed): ");
        std::io::stderr().flush().ok();
    }
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .context("reading the password from stdin")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// Creates admin `username` with `password` and returns a session token for it.
pub async fn create(config: &Config, username: &str, password: String) -> anyhow::Result<Minted> {
    let username = Username::parse_new(username).map_err(|e| anyhow::anyhow!("username: {e}"))?;
    if let Err(detail) = passwords::check_policy(&password) {
        bail!("password: {detail}");
    }
    let db = connect_database(config).await?;
    db.migrate().await.context("applying migrations")?;
    let users = UserCommands::new(&db, Arc::new(Notify::new()));
    let tokens = Tokens::new(load_root_keys(config)?, Revocations::new());
    let name = username.as_str();
    let metadata = EventMetadata::system(
        format!("bootstrap:{name}"),
        uuid::Uuid::now_v7().to_string(),
    );
    let hash = tokio::task::spawn_blocking(move || passwords::hash(&password)).await?;
    let user_id = uuid::Uuid::now_v7();
    // The hash before the event, as registration does (see migration 0006).
    db.set_password_hash(&user_id.to_string(), name, &hash)
        .await?;
    let command = UserCommand::Register {
        user_id,
        username: username.clone(),
        role: Role::Admin,
        tier: Tier::Enterprise,
        registration: Registration::Bootstrap,
    };
    if let Err(error) = users.create(name, command, &metadata).await {
        if matches!(
            error,
            AggregateError::AggregateConflict
                | AggregateError::UserError(UserError::AlreadyRegistered)
        ) {
            if let Err(cleanup) = db.delete_password_hash(&user_id.to_string()).await {
                tracing::warn!(error = %cleanup, "could not remove the unused hash");
            }
            bail!("creating {name}: the username is taken");
        }
        bail!("creating {name}: {error}");
    }
    let now = SystemTime::now();
    let ttl = Duration::from_secs(config.session_ttl_seconds);
    let minted = tokens.mint(
        TokenKind::Session,
        name,
        Role::Admin,
        Tier::Enterprise,
        now,
        ttl,
    )?;
    let command = UserCommand::RecordLogin {
        token: TokenGrant {
            token_id: minted.token_id.clone(),
            kind: TokenKind::Session,
            label: None,
            revocation_id: minted.revocation_id.clone(),
            issued_at: now.into(),
            expires_at: minted.expires_at.into(),
            role: Role::Admin,
        },
    };
    users
        .execute(name, command, &metadata)
        .await
        .map_err(|e| anyhow::anyhow!("recording the session: {e}"))?;
    db.close().await;
    tracing::info!(username = name, "admin created");
    Ok(minted)
}
