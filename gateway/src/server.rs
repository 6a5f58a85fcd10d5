//! The HTTP server: hyper HTTP/1.1 connections serving the warp routes, with the limits
//! warp's own server does not set — a deadline for a request's head (a client that trickles
//! its headers, or sends nothing at all, is cut off), the same deadline for an idle
//! keep-alive connection's next request, caps on the head's size and header count, a cap on
//! open connections, a timeout per request — and a graceful drain.
//!
//! HTTP/1.1 only, in fact: hyper's HTTP/1 connection alone, not the auto builder (which
//! serves HTTP/2 prior knowledge whatever it is told, outside every limit here, and reads
//! the first bytes of a connection with no deadline at all). An HTTP/2 preface is refused
//! by the HTTP/1 parser. Aurora sits behind load balancers and browsers speak HTTP/1.1 to
//! it.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use aurora_domain::net::IpRanges;
use aurora_projections::read::consistency::POSITION_HEADER;
use aurora_projections::store::committed_position;
use tower_service::Service;
use warp::reply::Response;
use warp::Filter;

/// The peer of a connection, in every request's extensions.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

/// The connection's peer address (`None` for requests not served by [`serve`]).
pub fn peer() -> impl Filter<Extract = (Option<SocketAddr>,), Error = Infallible> + Copy {
    warp::ext::optional::<Peer>().map(|peer: Option<Peer>| peer.map(|Peer(addr)| addr))
}

/// Most headers a request may have: 431 past it.
pub const MAX_HEADERS: usize = 128;

/// What the server allows a client.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Time to send a request's head, from the connection's start or the previous response.
    pub head_timeout: Duration,
    /// Bytes hyper buffers for a request's head; larger heads get 431 before any route
    /// sees them (the routes answer smaller ones past `AURORA_MAX_HEADER_BYTES` with a
    /// problem).
    pub head_buffer: usize,
    /// Time to produce a response's head (not its streamed body).
    pub request_timeout: Duration,
    /// Connections open at once; past it a new connection gets 503 and is closed.
    pub max_connections: usize,
    /// Connections one client (an address; IPv6 by its /64) may hold open at once: one
    /// host cannot take every slot. Past it, 503 and closed.
    pub max_connections_per_client: usize,
    /// Addresses the per-client cap does not apply to (trusted proxies: everyone behind
    /// them shares their address).
    pub exempt: IpRanges,
}

/// The server's own metrics.
#[derive(Debug, Clone, Default)]
pub struct ConnectionMetrics {
    /// Connections open now.
    pub open: Gauge,
    /// Connections refused because [`Limits::max_connections`] were open.
    pub refused: Counter,
}

/// Refusals of connections past the cap being answered at once; past these, a connection
/// is closed without an answer (a flood must not cost more than the cap).
const REFUSALS_AT_ONCE: usize = 64;

/// How long a refused connection is given to send its head before its 503 is written.
const REFUSAL_READ: Duration = Duration::from_millis(500);

/// What the answer to a request that ran past its timeout needs to know of it.
#[derive(Debug, Clone)]
pub struct TimedOut {
    /// The method.
    pub method: http::Method,
    /// The path.
    pub path: String,
    /// Its `x-request-id`, if sent.
    pub request_id: Option<String>,
    /// Its `Origin`, if sent (for CORS).
    pub origin: Option<String>,
    /// The timeout it ran past.
    pub after: Duration,
}

/// The answer of a request that ran past its timeout.
pub type OnTimeout = std::sync::Arc<dyn Fn(TimedOut) -> Response + Send + Sync>;

/// Uploads are bounded by their size, not by a clock: a large file on a slow link takes
/// what it takes.
fn timed(method: &http::Method, path: &str) -> bool {
    !(method == http::Method::POST && path.trim_end_matches('/') == "/api/v1/media")
}

/// Serves `service` on `listener` until `shutdown` resolves, then stops accepting and waits
/// for the requests in flight (the caller bounds that wait).
pub async fn serve<S>(
    listener: TcpListener,
    service: S,
    limits: Limits,
    metrics: ConnectionMetrics,
    on_timeout: OnTimeout,
    shutdown: impl Future<Output = ()>,
) where
    S: Service<http::Request<Incoming>, Response = Response, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        // From the connection's start and again after each response: a connection that
        // never sends a byte, or sits idle between requests, is closed at this deadline.
        .header_read_timeout(limits.head_timeout)
        .max_buf_size(limits.head_buffer.max(8192))
        .max_headers(MAX_HEADERS);
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let per_client = Clients::default();
    let refusals = Arc::new(Semaphore::new(REFUSALS_AT_ONCE));
    let (request_timeout, max) = (limits.request_timeout, limits.max_connections);
    // Dropped with this future (the drain's deadline passed): every connection still open
    // is aborted then, not left running.
    let mut connections = tokio::task::JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: pause rather than spin.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let slot = slots.clone().try_acquire_owned().ok().and_then(|slot| {
            let exempt = limits.exempt.contains(remote.ip());
            let client = per_client.admit(remote.ip(), limits.max_connections_per_client, exempt);
            client.map(|client| (slot, client))
        });
        let Some(slot) = slot else {
            metrics.refused.inc();
            match refusals.clone().try_acquire_owned() {
                Ok(permit) => {
                    tokio::spawn(async move {
                        refuse(stream, max).await;
                        drop(permit);
                    });
                }
                Err(_) => drop(stream),
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (service, on_timeout) = (service.clone(), on_timeout.clone());
        let handler = hyper::service::service_fn(move |mut request: http::Request<Incoming>| {
            request.extensions_mut().insert(Peer(remote));
            let (mut service, on_timeout) = (service.clone(), on_timeout.clone());
            let header = |name: http::header::HeaderName| {
                request
                    .headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            };
            let timed_out = TimedOut {
                method: request.method().clone(),
                path: request.uri().path().to_string(),
                request_id: header(http::header::HeaderName::from_static("x-request-id")),
                origin: header(http::header::ORIGIN),
                after: request_timeout,
            };
            async move {
                // Whatever the request committed, its answer says where (read your writes).
                // Boxed: the routes' future is deep enough without one more layer around it.
                let served: std::pin::Pin<Box<dyn Future<Output = _> + Send>> =
                    Box::pin(async move {
                        if !timed(&timed_out.method, &timed_out.path) {
                            return service.call(request).await;
                        }
                        match tokio::time::timeout(request_timeout, service.call(request)).await {
                            Ok(response) => response,
                            Err(_) => Ok(on_timeout(timed_out)),
                        }
                    });
                let (response, position) = committed_position(served).await;
                response.map(|response| with_position(response, position))
            }
        });
        let connection = builder.serve_connection(TokioIo::new(stream), handler);
        let connection = graceful.watch(connection);
        let open = metrics.open.clone();
        open.inc();
        connections.spawn(async move {
            if let Err(error) = connection.await {
                // Clients that hang up, time out or send garbage: theirs, not ours.
                tracing::debug!(%remote, error = %error, "connection ended with an error");
            }
            open.dec();
            drop(slot);
        });
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Connections open per client.
#[derive(Default, Clone)]
struct Clients(Arc<std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>>);

/// A client's open connection; its count goes down when dropped.
struct ClientSlot {
    clients: Clients,
    key: Option<std::net::IpAddr>,
}

impl Clients {
    /// A slot for a connection from `ip`, unless it already holds `max` (an `exempt`
    /// address always gets one, uncounted).
    fn admit(&self, ip: std::net::IpAddr, max: usize, exempt: bool) -> Option<ClientSlot> {
        if exempt {
            return Some(ClientSlot {
                clients: self.clone(),
                key: None,
            });
        }
        let key = match ip.to_canonical() {
            std::net::IpAddr::V6(v6) => {
                let s = v6.segments();
                std::net::IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
            v4 => v4,
        };
        let mut counts = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let count = counts.entry(key).or_insert(0);
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(ClientSlot {
            clients: self.clone(),
            key: Some(key),
        })
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let Some(key) = self.key else { return };
        let mut counts = self.clients.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = counts.get_mut(&key) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&key);
            }
        }
    }
}

/// Answers a connection past the cap with a 503 problem and closes it. The head is read
/// first (briefly), so that closing does not reset the connection before the answer
/// arrives.
async fn refuse(mut stream: TcpStream, max: usize) {
    let mut head = [0u8; 4096];
    let _ = tokio::time::timeout(REFUSAL_READ, stream.read(&mut head)).await;
    let body = serde_json::json!({
        "type": "/problems/too-many-connections",
        "title": "Service unavailable",
        "status": 503,
        "detail": format!(
            "the server holds its most connections, or this client its share of them \
             (the server allows {max}); retry later"
        ),
        "request_id": uuid::Uuid::new_v4().to_string(),
    })
    .to_string();
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/problem+json\r\n\
         content-length: {}\r\nretry-after: 5\r\nconnection: close\r\n\
         cache-control: no-store\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(REFUSAL_READ, async {
        stream.write_all(response.as_bytes()).await?;
        stream.shutdown().await
    })
    .await;
}

/// Adds the position a successful request committed at to its answer (only to successes:
/// the global position says how busy Aurora is, which a refused request need not learn).
fn with_position<B>(mut response: http::Response<B>, position: Option<i64>) -> http::Response<B> {
    if let Some(position) = position.filter(|_| response.status().is_success()) {
        response.headers_mut().insert(
            http::header::HeaderName::from_static(POSITION_HEADER),
            http::HeaderValue::from(position),
        );
    }
    response
}
