//! `aurora watch <run-id>`: prints a run's events and live progress as they happen, from
//! the gateway's Server-Sent Events (so it works against embedded and clustered Aurora
//! alike), reconnecting with `Last-Event-ID` if the stream breaks before the run ends.

use std::io::Write;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use serde_json::Value;

use crate::http::run_events::TERMINAL;

/// Arguments of `aurora watch`.
#[derive(Debug, Clone, Args)]
pub struct WatchArgs {
    /// The run to watch.
    pub run_id: String,
    /// The gateway.
    #[arg(long, env = "AURORA_SERVER", default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// A token that may read the run.
    #[arg(long, env = "AURORA_TOKEN", hide_env_values = true)]
    pub token: String,
}

/// One Server-Sent Event.
#[derive(Debug, Default, PartialEq)]
struct Frame {
    event: String,
    id: Option<String>,
    data: String,
}

/// Splits complete frames off the front of `buffer` (bytes, so that a character split
/// between two chunks is decoded whole).
fn frames(buffer: &mut Vec<u8>) -> Vec<Frame> {
    let mut out = Vec::new();
    while let Some(end) = buffer.windows(2).position(|w| w == b"\n\n") {
        let block: Vec<u8> = buffer.drain(..end + 2).collect();
        let block = String::from_utf8_lossy(&block);
        let mut frame = Frame::default();
        for line in block.lines() {
            if let Some(value) = line.strip_prefix("event:") {
                frame.event = value.trim().to_string();
            } else if let Some(value) = line.strip_prefix("id:") {
                frame.id = Some(value.trim().to_string());
            } else if let Some(value) = line.strip_prefix("data:") {
                if !frame.data.is_empty() {
                    frame.data.push('\n');
                }
                frame
                    .data
                    .push_str(value.strip_prefix(' ').unwrap_or(value));
            }
        }
        if !frame.event.is_empty() || !frame.data.is_empty() {
            out.push(frame);
        }
    }
    out
}

/// A line for a human.
fn describe(frame: &Frame) -> String {
    let data: Value = serde_json::from_str(&frame.data).unwrap_or(Value::Null);
    if frame.event == "progress" {
        return format!(
            "  step {} attempt {}: {:>5.1}%  {:>6.1} fps  {:>5.2}x",
            data["step"],
            data["attempt"],
            data["percent"].as_f64().unwrap_or(0.0),
            data["fps"].as_f64().unwrap_or(0.0),
            data["speed"].as_f64().unwrap_or(0.0)
        );
    }
    let detail = data["data"]
        .as_object()
        .and_then(|o| o.values().next())
        .map(Value::to_string)
        .unwrap_or_default();
    format!(
        "#{} {} {} by {} {}",
        frame.id.as_deref().unwrap_or("-"),
        data["time"].as_str().unwrap_or_default(),
        frame.event,
        data["principal"].as_str().unwrap_or_default(),
        detail
    )
}

/// Follows the run until it ends.
pub async fn run(args: WatchArgs) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let url = format!(
        "{}/api/v1/runs/{}/events",
        args.server.trim_end_matches('/'),
        args.run_id
    );
    let mut last: Option<String> = None;
    let mut stdout = std::io::stdout();
    for attempt in 0..10 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let mut request = client.get(&url).bearer_auth(&args.token);
        if let Some(id) = &last {
            request = request.header("last-event-id", id);
        }
        let mut response = request.send().await.with_context(|| format!("GET {url}"))?;
        if !response.status().is_success() {
            let status = response.status();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            anyhow::bail!(
                "{status}: {}",
                body["detail"].as_str().unwrap_or("no detail")
            );
        }
        if response.status() == reqwest::StatusCode::NO_CONTENT {
            return Ok(()); // resumed after the end of a finished run
        }
        let mut buffer = Vec::new();
        while let Some(chunk) = response.chunk().await.context("reading the event stream")? {
            buffer.extend_from_slice(&chunk);
            for frame in frames(&mut buffer) {
                writeln!(stdout, "{}", describe(&frame))?;
                if frame.id.is_some() {
                    last.clone_from(&frame.id);
                }
                if TERMINAL.contains(&frame.event.as_str()) {
                    return Ok(());
                }
            }
        }
    }
    anyhow::bail!("the event stream kept breaking before the run ended")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_split_and_partial_ones_kept() {
        let mut buffer =
            b"event: StepStarted\nid: 2\ndata: {\"a\":1}\n\nevent: progress\ndata: {\"percent\":5"
                .to_vec();
        let got = frames(&mut buffer);
        assert_eq!(
            got,
            vec![Frame {
                event: "StepStarted".into(),
                id: Some("2".into()),
                data: "{\"a\":1}".into()
            }]
        );
        assert!(buffer.starts_with(b"event: progress"));
        buffer.extend_from_slice(b"}\n\n");
        assert_eq!(frames(&mut buffer)[0].event, "progress");
    }
}
