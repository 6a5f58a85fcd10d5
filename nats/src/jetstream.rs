//! The JetStream bus: one file-backed stream per prefix, deduplicated by `Nats-Msg-Id`.

use std::collections::HashSet;
use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream, Context};
use async_nats::HeaderMap;
use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt};

use crate::bus::{Acker, Deliveries, Tail, WorkQueue, WorkSource, POSITION_HEADER, XID_HEADER};
use crate::{BusError, CloudEvent, Delivery, EventBus, PublishOutcome, StreamState, Subjects};

/// How long JetStream remembers message ids for deduplication. The relay does not rely on
/// it for exactly-once delivery (it resumes from the stream's last message), but it absorbs
/// a republish after a crash between publish and checkpoint.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(10 * 60);

/// The stream definition for `subjects`.
pub fn stream_config(subjects: &Subjects, replicas: usize) -> stream::Config {
    stream::Config {
        name: subjects.stream(),
        num_replicas: replicas,
        subjects: vec![subjects.all_events()],
        storage: stream::StorageType::File,
        retention: stream::RetentionPolicy::Limits,
        duplicate_window: DUPLICATE_WINDOW,
        allow_direct: true,
        ..Default::default()
    }
}

/// Event bus on NATS JetStream.
#[derive(Clone)]
pub struct JetStreamBus {
    client: async_nats::Client,
    js: Context,
    subjects: Subjects,
    /// Copies of the stream, for making it again.
    replicas: usize,
}

impl JetStreamBus {
    /// [`EventBus::consume`]; a durable created here delivers from `start`.
    async fn consume_from(
        &self,
        durable: &str,
        filter: &str,
        start: consumer::DeliverPolicy,
    ) -> Result<Deliveries, BusError> {
        let stream = self.stream().await?;
        let consumer: consumer::PullConsumer = stream
            .get_or_create_consumer(
                durable,
                consumer::pull::Config {
                    durable_name: Some(durable.to_string()),
                    filter_subject: filter.to_string(),
                    ack_policy: consumer::AckPolicy::Explicit,
                    deliver_policy: start,
                    ack_wait: Duration::from_secs(30),
                    max_ack_pending: 10_000,
                    ..Default::default()
                },
            )
            .await
            .map_err(BusError::unavailable)?;
        // Up to 1000 messages in flight per pull (the default is 200): a consumer behind
        // under load takes bigger batches, and applies its backlog in fewer round trips.
        // A heartbeat every 5 s: a consumer gone quietly is noticed within 10 s (two
        // missed), and the deliveries end (see `until_failed`).
        let messages = consumer
            .stream()
            .max_messages_per_batch(1000)
            .heartbeat(Duration::from_secs(5))
            .messages()
            .await
            .map_err(BusError::unavailable)?;
        let durable = durable.to_string();
        Ok(until_failed(messages.map_err(BusError::unavailable))
            .and_then(move |message| {
                let sequence = delivered(&message, &durable);
                async move {
                    match decode(sequence, &message.payload) {
                        Ok(event) => Ok(Delivery {
                            event,
                            stream_sequence: sequence,
                            acker: Acker::JetStream(Box::new(message)),
                        }),
                        Err(error) => {
                            // Poison message: never redeliver it, report it once.
                            let _ = message.ack_with(jetstream::AckKind::Term).await;
                            Err(error)
                        }
                    }
                }
            })
            .boxed())
    }

    /// Connects to `url` (one server, or a cluster's as a comma-separated list) and
    /// creates the stream for `subjects` with `replicas` copies if it does not exist.
    pub async fn connect(url: &str, subjects: Subjects, replicas: usize) -> Result<Self, BusError> {
        let client = connect(url, "aurora").await?;
        Self::with_client(client, subjects, replicas).await
    }

    /// Uses an existing connection.
    pub async fn with_client(
        client: async_nats::Client,
        subjects: Subjects,
        replicas: usize,
    ) -> Result<Self, BusError> {
        let js = jetstream::new(client.clone());
        js.get_or_create_stream(stream_config(&subjects, replicas))
            .await
            .map_err(BusError::unavailable)?;
        Ok(Self {
            client,
            js,
            subjects,
            replicas,
        })
    }

    /// The underlying NATS connection.
    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    /// The JetStream context.
    pub fn context(&self) -> &Context {
        &self.js
    }

    /// The stream, made again if it is gone (deleted by an operator, lost with a server's
    /// store): the relay then finds it short and heals it from the store.
    async fn stream(&self) -> Result<stream::Stream, BusError> {
        self.js
            .get_or_create_stream(stream_config(&self.subjects, self.replicas))
            .await
            .map_err(BusError::unavailable)
    }

    /// Is the connection to the server up?
    pub fn is_connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    /// Round-trip time to the server, for health checks.
    pub async fn ping(&self) -> Result<Duration, BusError> {
        let started = std::time::Instant::now();
        self.client.flush().await.map_err(BusError::unavailable)?;
        Ok(started.elapsed())
    }
}

/// `messages` up to and including the first error, then the end. The client's pull stream
/// neither ends nor heals when its consumer is gone (its stream deleted while this
/// connection was down, say): it reports "no responders" and missed heartbeats for ever.
/// Ended, it is opened again by its user (which makes the durable again).
fn until_failed<T, S>(messages: S) -> impl futures::Stream<Item = Result<T, BusError>>
where
    S: futures::Stream<Item = Result<T, BusError>>,
{
    messages.scan(false, |failed, message| {
        let item = (!*failed).then_some(message);
        *failed = matches!(item, Some(Err(_)));
        std::future::ready(item)
    })
}

fn decode(sequence: u64, payload: &[u8]) -> Result<CloudEvent, BusError> {
    serde_json::from_slice(payload).map_err(|e| BusError::Decode {
        sequence,
        reason: e.to_string(),
    })
}

/// Deletes every stream of `subjects`' prefix (events and audit heads): for tests and
/// benchmarks, which each make their own prefix. A stream that is not there is no error.
pub async fn delete_streams(
    client: &async_nats::Client,
    subjects: &Subjects,
) -> Result<(), BusError> {
    let js = jetstream::new(client.clone());
    for name in [subjects.stream(), subjects.audit_heads_stream()] {
        match js.delete_stream(&name).await {
            Ok(_) => {}
            Err(e) => match e.kind() {
                jetstream::context::DeleteStreamErrorKind::JetStream(error)
                    if error.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND => {}
                _ => return Err(BusError::unavailable(e)),
            },
        }
    }
    Ok(())
}

/// Connects to `url` as `name`, with the credentials the URL carries (the client itself
/// ignores them there). They travel in the options, not the URL: the client logs the
/// server's address (at debug), and a password must never reach a log line. `url` may list
/// a cluster's servers, separated by commas; the client also learns the others from them.
pub async fn connect(url: &str, name: &str) -> Result<async_nats::Client, BusError> {
    let (servers, credentials) = split_credentials(url);
    let options = match credentials {
        Some((user, Some(password))) => {
            async_nats::ConnectOptions::with_user_and_password(user, password)
        }
        Some((token, None)) => async_nats::ConnectOptions::with_token(token),
        None => async_nats::ConnectOptions::new(),
    };
    options
        .name(name)
        .connect(servers)
        .await
        .map_err(BusError::unavailable)
}

/// `nats://user:password@host:4222` → (`nats://host:4222`, user and password), percent
/// decoded; `nats://token@host` → a token. Each server of a comma-separated list may carry
/// them; the first found are used.
fn split_credentials(url: &str) -> (Vec<String>, Option<(String, Option<String>)>) {
    let mut credentials = None;
    let servers: Vec<String> = url
        .split(',')
        .map(|server| {
            let server = server.trim();
            let (scheme, rest) = match server.find("://") {
                Some(i) => server.split_at(i + 3),
                None => ("", server),
            };
            let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
            match rest[..end].rfind('@') {
                Some(at) => {
                    let userinfo = &rest[..at];
                    if credentials.is_none() {
                        credentials = Some(match userinfo.split_once(':') {
                            Some((user, password)) => {
                                (percent_decode(user), Some(percent_decode(password)))
                            }
                            None => (percent_decode(userinfo), None),
                        });
                    }
                    format!("{scheme}{}", &rest[at + 1..])
                }
                None => server.to_string(),
            }
        })
        .filter(|server: &String| !server.is_empty())
        .collect();
    (servers, credentials)
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A message's stream sequence; counts it in [`crate::redeliveries`] if `consumer` had it
/// before.
fn delivered(message: &jetstream::Message, consumer: &str) -> u64 {
    match message.info() {
        Ok(info) => {
            if info.delivered > 1 {
                crate::bus::count_redelivery(consumer);
            }
            info.stream_sequence
        }
        Err(_) => 0,
    }
}

/// The headers of an event's message: its content type, its place in the global log, and
/// its W3C `traceparent` (so a subscriber continues the trace without parsing the body).
pub fn event_headers(event: &CloudEvent) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(POSITION_HEADER, event.position.to_string().as_str());
    headers.insert(XID_HEADER, event.xid.to_string().as_str());
    headers.insert("Content-Type", "application/cloudevents+json");
    if let Some(traceparent) = &event.traceparent {
        headers.insert("traceparent", traceparent.as_str());
    }
    headers
}

#[async_trait]
impl EventBus for JetStreamBus {
    fn subjects(&self) -> &Subjects {
        &self.subjects
    }

    async fn publish_batch(
        &self,
        events: &[(String, CloudEvent)],
    ) -> Result<Vec<PublishOutcome>, BusError> {
        // Send everything first, then collect the acks: one connection keeps the order and
        // the round trips overlap.
        let mut pending = Vec::with_capacity(events.len());
        for (msg_id, event) in events {
            let subject =
                self.subjects
                    .event(&event.aggregatetype, &event.aggregateid, &event.eventname);
            let payload = serde_json::to_vec(event).map_err(BusError::unavailable)?;
            // `headers` replaces the header map: set it before the message id.
            let message = jetstream::message::PublishMessage::build()
                .headers(event_headers(event))
                .message_id(msg_id)
                .payload(payload.into());
            pending.push(
                self.js
                    .send_publish(subject, message)
                    .await
                    .map_err(BusError::unavailable)?,
            );
        }
        let mut outcomes = Vec::with_capacity(pending.len());
        for ack in pending {
            let ack = ack.await.map_err(BusError::unavailable)?;
            outcomes.push(PublishOutcome {
                stream_sequence: ack.sequence,
                duplicate: ack.duplicate,
            });
        }
        Ok(outcomes)
    }

    async fn state(&self) -> Result<StreamState, BusError> {
        let mut stream = self.stream().await?;
        let info = stream.info().await.map_err(BusError::unavailable)?;
        Ok(StreamState {
            messages: info.state.messages,
            last_sequence: info.state.last_sequence,
        })
    }

    async fn last_event(&self) -> Result<Option<CloudEvent>, BusError> {
        let stream = self.stream().await?;
        match stream
            .get_last_raw_message_by_subject(&self.subjects.all_events())
            .await
        {
            Ok(message) => decode(message.sequence, &message.payload).map(Some),
            Err(error)
                if error.kind()
                    == async_nats::jetstream::stream::LastRawMessageErrorKind::NoMessageFound =>
            {
                Ok(None)
            }
            Err(error) => Err(BusError::unavailable(error)),
        }
    }

    async fn positions(&self) -> Result<HashSet<i64>, BusError> {
        let stream = self.stream().await?;
        let state = self.state().await?;
        let mut positions = HashSet::with_capacity(state.messages as usize);
        if state.messages == 0 {
            return Ok(positions);
        }
        // An ordered consumer with headers only: cheap, and it ends when nothing is pending.
        let ordered = stream
            .create_consumer(consumer::push::OrderedConfig {
                deliver_subject: self.client.new_inbox(),
                headers_only: true,
                ..Default::default()
            })
            .await
            .map_err(BusError::unavailable)?;
        let mut messages = ordered.messages().await.map_err(BusError::unavailable)?;
        while let Some(message) = messages.next().await {
            let message = message.map_err(BusError::unavailable)?;
            let position = message
                .headers
                .as_ref()
                .and_then(|h| h.get(POSITION_HEADER))
                .and_then(|v| v.as_str().parse::<i64>().ok());
            if let Some(position) = position {
                positions.insert(position);
            }
            let pending = message.info().map_err(BusError::unavailable)?.pending;
            if pending == 0 {
                break;
            }
        }
        Ok(positions)
    }

    async fn consume(&self, durable: &str, filter: &str) -> Result<Deliveries, BusError> {
        self.consume_from(durable, filter, consumer::DeliverPolicy::All)
            .await
    }

    async fn consume_new(&self, durable: &str, filter: &str) -> Result<Deliveries, BusError> {
        self.consume_from(durable, filter, consumer::DeliverPolicy::New)
            .await
    }

    async fn tail(&self, filter: &str) -> Result<Tail, BusError> {
        let stream = self.stream().await?;
        // An ordered consumer: ephemeral, flow-controlled, and recreated by the client
        // from the last sequence it saw should a message go missing.
        let ordered = stream
            .create_consumer(consumer::push::OrderedConfig {
                deliver_subject: self.client.new_inbox(),
                filter_subject: filter.to_string(),
                deliver_policy: consumer::DeliverPolicy::New,
                ..Default::default()
            })
            .await
            .map_err(BusError::unavailable)?;
        let messages = ordered.messages().await.map_err(BusError::unavailable)?;
        // Not ended at an error, unlike deliveries: the client's ordered consumer makes
        // itself again after missed heartbeats, and a tail ended would cut every event
        // stream a client follows at each NATS blip.
        Ok(messages
            .map(|message| {
                let message = message.map_err(BusError::unavailable)?;
                let sequence = message
                    .info()
                    .map(|info| info.stream_sequence)
                    .unwrap_or_default();
                decode(sequence, &message.payload)
            })
            .boxed())
    }

    async fn work(
        &self,
        durable: &str,
        filter: &str,
        ack_wait: Duration,
    ) -> Result<WorkQueue, BusError> {
        let stream = self.stream().await?;
        let config = consumer::pull::Config {
            durable_name: Some(durable.to_string()),
            filter_subject: filter.to_string(),
            ack_policy: consumer::AckPolicy::Explicit,
            deliver_policy: consumer::DeliverPolicy::All,
            ack_wait,
            ..Default::default()
        };
        let mut consumer: consumer::PullConsumer = stream
            .get_or_create_consumer(durable, config.clone())
            .await
            .map_err(BusError::unavailable)?;
        let existing = consumer.cached_info().config.ack_wait;
        if existing != ack_wait {
            // Created with another setting: bring it in line (the ack wait is editable).
            match stream.update_consumer(config).await {
                Ok(updated) => consumer = updated,
                Err(error) => {
                    tracing::warn!(%error, ?existing, wanted = ?ack_wait, "cannot change the work queue's ack wait; using it as it is")
                }
            }
        }
        let ack_wait = consumer.cached_info().config.ack_wait;
        Ok(Box::new(JetStreamWork { consumer, ack_wait }))
    }
}

/// One message per fetch, fetched when asked for.
struct JetStreamWork {
    consumer: consumer::PullConsumer,
    ack_wait: Duration,
}

#[async_trait]
impl WorkSource for JetStreamWork {
    fn ack_wait(&self) -> Duration {
        self.ack_wait
    }

    async fn next(&mut self) -> Result<Delivery, BusError> {
        loop {
            let mut batch = self
                .consumer
                .batch()
                .max_messages(1)
                .expires(Duration::from_secs(5))
                .messages()
                .await
                .map_err(BusError::unavailable)?;
            while let Some(message) = batch.next().await {
                let message = message.map_err(BusError::unavailable)?;
                let sequence = delivered(&message, &self.consumer.cached_info().name);
                match decode(sequence, &message.payload) {
                    Ok(event) => {
                        return Ok(Delivery {
                            event,
                            stream_sequence: sequence,
                            acker: Acker::JetStream(Box::new(message)),
                        })
                    }
                    Err(error) => {
                        let _ = message.ack_with(jetstream::AckKind::Term).await;
                        tracing::error!(%error, "skipping an undecodable work message");
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::split_credentials;

    #[tokio::test]
    async fn a_stream_ends_after_its_first_failure() {
        use futures::StreamExt;
        let items = vec![
            Ok(1),
            Err(crate::BusError::unavailable("no responders")),
            Ok(2),
            Err(crate::BusError::unavailable("missed idle heartbeat")),
        ];
        let passed: Vec<_> = super::until_failed(futures::stream::iter(items))
            .collect()
            .await;
        assert_eq!(passed.len(), 2);
        assert!(matches!(passed[..], [Ok(1), Err(_)]));
    }

    #[test]
    fn credentials_leave_the_url_before_the_client_sees_it() {
        assert_eq!(
            split_credentials("nats://aurora:p%40ss@nats-0:4222,nats://nats-1:4222"),
            (
                vec![
                    "nats://nats-0:4222".to_string(),
                    "nats://nats-1:4222".to_string()
                ],
                Some(("aurora".to_string(), Some("p@ss".to_string())))
            )
        );
        assert_eq!(
            split_credentials("tls://s3cr3t-token@nats:4222"),
            (
                vec!["tls://nats:4222".to_string()],
                Some(("s3cr3t-token".to_string(), None))
            )
        );
        assert_eq!(
            split_credentials("nats://127.0.0.1:4222"),
            (vec!["nats://127.0.0.1:4222".to_string()], None)
        );
        assert_eq!(
            split_credentials(" nats://a:4222 , nats://b:4222,").0,
            vec!["nats://a:4222".to_string(), "nats://b:4222".to_string()],
            "spaces around servers and a trailing comma"
        );
    }
}
