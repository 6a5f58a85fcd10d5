//! The audit trail anchored outside its database: chain heads signed and kept elsewhere,
//! and `aurora audit verify` finding a rewritten event, a cut or a re-chained log.

use rstest::rstest;
use rstest_reuse::apply;

use super::both_modes;

use std::time::{Duration, Instant};

use aurora_gateway::config::Config;

use super::{Mode, WAIT};

/// Runs one statement on `db`, Postgres or SQLite.
async fn sql(db: &aurora_projections::Database, postgres: &str, sqlite: &str) {
    use aurora_projections::Database;
    match db {
        Database::Postgres(pool) => sqlx::query(postgres).execute(pool).await.map(drop),
        Database::Sqlite(pool) => sqlx::query(sqlite).execute(pool).await.map(drop),
    }
    .unwrap();
}

/// The audit trail was tamper-evident only against itself: rewriting an event, deleting the
/// log's tail and fixing the checkpoint row, or re-chaining a stretch all passed
/// `aurora audit verify`. Now the store is replayed against the log, and the log is checked
/// against chain heads signed with a key outside the database and published outside it.
#[apply(both_modes)]
async fn the_audit_trail_is_anchored_outside_its_database(mode: Mode) {
    use aurora_gateway::anchor::{AnchorKey, HeadStore};
    let app = super::spawn_app_with(mode, |c| c.audit_anchor_seconds = 1).await;
    for _ in 0..3 {
        app.created_id(&super::valid_run()).await;
    }
    assert_eq!(app.register("grace").await.status(), 201);
    let stored = app.stored_events().await;
    assert!(app.state.audit.wait_for(stored, WAIT).await);
    let head = app.state.audit.head().await.unwrap().unwrap();
    // The replica signs and publishes the head within a second or so.
    let heads = HeadStore::open(
        &app.config.data_dir,
        app.state.bus.nats_client(),
        &app.config.nats_prefix,
        1,
    )
    .await
    .unwrap();
    let key = AnchorKey::load(&app.config.data_dir.join("audit-key"), false).unwrap();
    let deadline = Instant::now() + WAIT;
    while heads
        .last_signed(&key.public())
        .await
        .unwrap()
        .map(|h| h.seq)
        != Some(head.seq)
    {
        assert!(
            Instant::now() < deadline,
            "the head {head:?} was never published"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (config, _dir) = app.stop().await;

    let (ok, verdict, out) = cli(&config, &["audit", "verify"]);
    assert!(ok, "{out}");
    assert_eq!(verdict["anchors"]["last_signed"]["seq"], head.seq, "{out}");
    assert_eq!(
        verdict["anchors"]["last_signed"]["hash"],
        head.hash.as_str()
    );
    assert!(verdict["anchors"]["published_heads"].as_u64().unwrap() >= 1);
    // An auditor needs only the public half.
    let public = verdict["anchors"]["public_keys"][0]
        .as_str()
        .unwrap()
        .to_string();
    let (ok, _, out) = cli(&config, &["audit", "verify", "--audit-public-key", &public]);
    assert!(ok, "{out}");
    let stranger = AnchorKey::load(&config.data_dir.join("stranger"), true).unwrap();
    let stranger_public = aurora_gateway::anchor::public_key_hex(&stranger.public());
    let (ok, verdict, _) = cli(
        &config,
        &["audit", "verify", "--audit-public-key", &stranger_public],
    );
    assert!(!ok);
    assert_eq!(
        verdict["finding"]["kind"], "forged",
        "heads signed by another key"
    );

    let db = aurora_gateway::startup::connect_database(&config)
        .await
        .unwrap();
    // 1. A rewritten event (grace's tier): the store no longer produces the log.
    let grace = "aggregate_type = 'user' AND aggregate_id = 'grace' AND sequence = 1";
    let promote = |to: &str| {
        (
            format!(
                "UPDATE events SET payload = CAST(REPLACE(CAST(payload AS TEXT), '\"tier\":\"free\"', \
                 '\"tier\":\"{to}\"') AS JSON) WHERE {grace}"
            ),
            format!(
                "UPDATE events SET payload = REPLACE(payload, '\"tier\":\"free\"', \
                 '\"tier\":\"{to}\"') WHERE {grace}"
            ),
        )
    };
    let demote = (
        format!(
            "UPDATE events SET payload = CAST(REPLACE(CAST(payload AS TEXT), \
             '\"tier\":\"enterprise\"', '\"tier\":\"free\"') AS JSON) WHERE {grace}"
        ),
        format!(
            "UPDATE events SET payload = REPLACE(payload, '\"tier\":\"enterprise\"', \
             '\"tier\":\"free\"') WHERE {grace}"
        ),
    );
    let (pg, lite) = promote("enterprise");
    sql(&db, &pg, &lite).await;
    assert_eq!(finding(&config).as_deref(), Some("rewritten"));
    sql(&db, &demote.0, &demote.1).await;
    assert_eq!(finding(&config), None, "restored");

    // 2. Rewritten, and the log rebuilt to match: chain and store agree; the signed heads
    //    do not.
    sql(&db, &pg, &lite).await;
    let (ok, _, out) = cli(&config, &["projections", "rebuild", "audit-log"]);
    assert!(ok, "{out}");
    assert_eq!(finding(&config).as_deref(), Some("rechained"));
    sql(&db, &demote.0, &demote.1).await;
    let (ok, _, out) = cli(&config, &["projections", "rebuild", "audit-log"]);
    assert!(ok, "{out}");
    assert_eq!(
        finding(&config),
        None,
        "a rebuild of the true store meets the heads"
    );

    // 3. A statement slipped into the published heads: not signed by the audit key (and
    //    reported only when nothing worse is found).
    let forged = stranger.sign(
        &aurora_projections::audit::Head {
            seq: 1,
            hash: "00".repeat(32),
        },
        chrono::Utc::now(),
    );
    let heads = HeadStore::open(&config.data_dir, None, &config.nats_prefix, 1)
        .await
        .unwrap();
    match &config.nats_url {
        None => heads.publish(&forged).await.unwrap(),
        Some(url) => {
            let client = async_nats::connect(url).await.unwrap();
            let heads = HeadStore::open(&config.data_dir, Some(client), &config.nats_prefix, 1)
                .await
                .unwrap();
            heads.publish(&forged).await.unwrap();
        }
    }
    assert_eq!(finding(&config).as_deref(), Some("forged"));

    // 4. A row written into the log by hand far ahead (to make every later head look
    //    older than the last signed one): the signer refuses it, and signs nothing.
    let log = std::sync::Arc::new(aurora_projections::AuditLog::new(db.clone()));
    let key = AnchorKey::load(&config.data_dir.join("audit-key"), false).unwrap();
    let nats = match &config.nats_url {
        Some(url) => Some(async_nats::connect(url).await.unwrap()),
        None => None,
    };
    let store = HeadStore::open(&config.data_dir, nats.clone(), &config.nats_prefix, 1)
        .await
        .unwrap();
    let signed_before = store.last_signed(&key.public()).await.unwrap();
    let ahead = format!(
        "INSERT INTO audit_log (seq, position, xid, recorded_at, actor, role, token_id, \
         request_id, client_ip, action, resource_type, resource_id, sequence, version, details, \
         prev_hash, hash) SELECT {} AS seq, position, xid, recorded_at, actor, role, \
         token_id, request_id, client_ip, action, resource_type, resource_id, sequence, version, \
         details, hash AS prev_hash, hash FROM audit_log WHERE seq = {}",
        1i64 << 62,
        head.seq
    );
    sql(&db, &ahead, &ahead).await;
    let mut publisher = aurora_gateway::anchor::Publisher::new(log.clone(), key, store);
    let refused = publisher.round().await.unwrap_err().to_string();
    assert!(refused.contains("not signing"), "{refused}");
    let store = HeadStore::open(&config.data_dir, nats, &config.nats_prefix, 1)
        .await
        .unwrap();
    assert_eq!(
        store
            .last_signed(&stranger.public())
            .await
            .unwrap()
            .map(|h| h.seq),
        Some(1)
    );
    let key = AnchorKey::load(&config.data_dir.join("audit-key"), false).unwrap();
    assert_eq!(
        store.last_signed(&key.public()).await.unwrap(),
        signed_before
    );
    let remove = format!("DELETE FROM audit_log WHERE seq = {}", 1i64 << 62);
    sql(&db, &remove, &remove).await;
    // Entries no signed head covers, past the grace: signing stopped, and that is a finding.
    let nobody = AnchorKey::load(&config.data_dir.join("nobody"), true).unwrap();
    let report = aurora_gateway::anchor::check(&log, &store, &[nobody.public()], Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(
        report.finding.map(|f| format!("{:?}", f.kind)).as_deref(),
        Some("Unanchored")
    );

    // 4b. The heads stream deleted (deny_delete guards messages, not the stream), made
    //     again, and an old signed head published into it: heads older than their stream.
    if let Some(url) = &config.nats_url {
        let client = async_nats::connect(url).await.unwrap();
        let name = aurora_nats::Subjects::new(config.nats_prefix.clone()).audit_heads_stream();
        async_nats::jetstream::new(client.clone())
            .delete_stream(&name)
            .await
            .unwrap();
        let store = HeadStore::open(&config.data_dir, Some(client), &config.nats_prefix, 1)
            .await
            .unwrap();
        let key = AnchorKey::load(&config.data_dir.join("audit-key"), false).unwrap();
        let old = key.sign(&head, chrono::Utc::now() - chrono::Duration::minutes(10));
        store.publish(&old).await.unwrap();
        assert_eq!(finding(&config).as_deref(), Some("unanchored"));
    }

    // 5. The log's tail cut, its events deleted, the checkpoint's head fixed: the chain,
    //    the checkpoint and the store agree; a published head is missing.
    let cut = head.seq - 2;
    let (tail_pg, tail_lite) = (
        format!("DELETE FROM events WHERE position IN (SELECT position FROM audit_log WHERE seq > {cut})"),
        format!("DELETE FROM events WHERE position IN (SELECT position FROM audit_log WHERE seq > {cut})"),
    );
    sql(&db, &tail_pg, &tail_lite).await;
    let log = format!("DELETE FROM audit_log WHERE seq > {cut}");
    sql(&db, &log, &log).await;
    let checkpoint = format!(
        "UPDATE projection_checkpoints SET head_seq = {cut}, head_hash = \
         (SELECT hash FROM audit_log WHERE seq = {cut}) WHERE projection = 'audit-log'"
    );
    sql(&db, &checkpoint, &checkpoint).await;
    let (_, verdict, out) = cli(&config, &["audit", "verify"]);
    assert_eq!(verdict["finding"]["kind"], "removed", "{out}");
    assert_eq!(verdict["finding"]["seq"], head.seq, "{out}");
}

/// Runs the `aurora` binary with `config`'s database, NATS and data dir: its exit status,
/// stdout as JSON (null if it is not), and stdout itself.
pub fn cli(config: &Config, args: &[&str]) -> (bool, serde_json::Value, String) {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_aurora"));
    command
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AURORA_LOG", "warn")
        .env("AURORA_DATA_DIR", &config.data_dir)
        .env("AURORA_NATS_PREFIX", &config.nats_prefix);
    if let Some(url) = &config.database_url {
        command.env("DATABASE_URL", url);
    }
    if let Some(url) = &config.nats_url {
        command.env("NATS_URL", url);
    }
    let output = tokio::task::block_in_place(|| command.output()).unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let json = serde_json::from_str(&stdout).unwrap_or(serde_json::Value::Null);
    (output.status.success(), json, stdout)
}

/// `aurora audit verify`'s finding (its kind), `None` if it found nothing.
fn finding(config: &Config) -> Option<String> {
    let (ok, verdict, out) = cli(config, &["audit", "verify"]);
    assert_eq!(
        ok,
        verdict["finding"].is_null(),
        "exit status and finding agree: {out}"
    );
    assert!(verdict.is_object(), "{out}");
    verdict["finding"]["kind"].as_str().map(str::to_string)
}
