//! Decoding once: allocations per delivered event, counted by dhat (this test binary's
//! allocator).
//!
//! "Before" is the read side as it was fed until the projections supervisor: every
//! follower's durable consumer decoded its own copy of each message (audit log, runs view,
//! run feed), the runs view and the run feed each decoded the payload again from a clone of
//! it, and the audit log read every event once more from the store (payload and metadata
//! parsed again, metadata into a map). "After" is the feed: one decode of the message,
//! moved into an envelope, the run payload decoded once and borrowed by both users.

use std::collections::HashMap;
use std::sync::Arc;

use aurora_domain::run::{Input, RunEvent, RunSpec, Step};
use aurora_domain::EventMetadata;
use aurora_nats::CloudEvent;
use aurora_projections::read::Envelope;
use aurora_projections::{Cursor, StoredEvent};
use serde::Deserialize;

/// Allocations `work` makes (on this thread and any other running meanwhile: the test runs
/// alone in its process under nextest), counted by dhat.
fn allocations(work: impl FnOnce()) -> u64 {
    let before = dhat::HeapStats::get().total_blocks;
    work();
    dhat::HeapStats::get().total_blocks - before
}

/// A requested run as stored, with its metadata: what the bench's commands make.
fn requested(position: i64) -> StoredEvent {
    let id = uuid::Uuid::from_u64_pair(0x0190_0000_0000_7000, position as u64);
    let spec = RunSpec {
        input: Some(Input::Url("https://media.example/bench.mov".into())),
        steps: vec![Step::Probe {}, Step::Thumbnail { at_seconds: 1.5 }],
    };
    let payload = serde_json::to_value(RunEvent::RunRequested {
        run_id: id,
        owner: "bench".into(),
        input: spec.input.clone(),
        steps: spec.steps.clone(),
    })
    .unwrap();
    let mut metadata = EventMetadata::new("bench", format!("req-{position}"));
    metadata.token_id = Some("0190c2f4-0000-7000-8000-000000000001".into());
    metadata.client_ip = Some("127.0.0.1".into());
    metadata.role = Some("user".into());
    StoredEvent {
        cursor: Cursor { xid: 7, position },
        aggregate_type: "run".into(),
        aggregate_id: id.to_string(),
        sequence: 1,
        event_type: "RunRequested".into(),
        event_version: "1".into(),
        payload,
        metadata,
    }
}

pub fn every_projection_shares_one_decode_of_each_delivered_event() {
    let _profiler = dhat::Profiler::builder().testing().build();
    const EVENTS: u64 = 1000;
    let stored: Vec<StoredEvent> = (1..=EVENTS as i64).map(requested).collect();
    // As they travel (message bodies) and as the store holds them (row columns).
    let wire: Vec<Vec<u8>> = stored
        .iter()
        .map(|e| serde_json::to_vec(&e.to_cloud_event()).unwrap())
        .collect();
    let rows: Vec<(String, String)> = stored
        .iter()
        .map(|e| {
            (
                e.payload.to_string(),
                serde_json::to_string(&e.metadata.to_map()).unwrap(),
            )
        })
        .collect();

    let before = allocations(|| {
        for (body, (payload, metadata)) in wire.iter().zip(&rows) {
            // Three durable consumers, three decodes of the message.
            let audit: CloudEvent = serde_json::from_slice(body).unwrap();
            let runs: CloudEvent = serde_json::from_slice(body).unwrap();
            let feed: CloudEvent = serde_json::from_slice(body).unwrap();
            // Runs view and run feed: the payload again, from a clone.
            let a: RunEvent = serde_json::from_value(runs.data.clone()).unwrap();
            let b: RunEvent = serde_json::from_value(feed.data.clone()).unwrap();
            // The audit log: the event once more from the store.
            let p: serde_json::Value = serde_json::from_str(payload).unwrap();
            let m: HashMap<String, String> = serde_json::from_str(metadata).unwrap();
            let m = EventMetadata::from_map(&m);
            std::hint::black_box((audit, a, b, p, m));
        }
    });
    let after = allocations(|| {
        for body in &wire {
            let envelope = Arc::new(Envelope::delivered(serde_json::from_slice(body).unwrap()));
            // The runs view and the run feed borrow one decode of the payload; the audit
            // log reads the envelope itself.
            let shared = (envelope.clone(), envelope.clone(), envelope.clone());
            let a = shared.0.run_event().unwrap();
            let b = shared.1.run_event().unwrap();
            std::hint::black_box((a, b, &shared.2.event));
        }
    });
    // The store's metadata read, before and after decoding it straight into its struct.
    let (payload_text, metadata_text) = &rows[0];
    let map_read = allocations(|| {
        let m: HashMap<String, String> = serde_json::from_str(metadata_text).unwrap();
        std::hint::black_box(EventMetadata::from_map(&m));
    });
    let struct_read = allocations(|| {
        std::hint::black_box(EventMetadata::from_json(metadata_text).unwrap());
    });
    std::hint::black_box(serde_json::Value::deserialize(
        &mut serde_json::Deserializer::from_str(payload_text),
    ))
    .unwrap();
    println!(
        "allocations per delivered event: {:.1} before (a decode per follower, payloads \
         decoded again, the audit log reading the store), {:.1} after (one decode, shared); \
         metadata read from the store: {map_read} through a map, {struct_read} straight",
        before as f64 / EVENTS as f64,
        after as f64 / EVENTS as f64,
    );
    assert!(
        after * 2 < before,
        "decoding once allocates less than half: {after} vs {before}"
    );
    assert!(struct_read < map_read, "{struct_read} vs {map_read}");
}
