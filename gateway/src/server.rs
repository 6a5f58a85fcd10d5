//! The HTTP server: hyper HTTP/1.1 connections serving the warp routes, with the limits
//! warp's own server does not set — a deadline for a request's head (a client that trickles
//! its headers is cut off), caps on the head's size and header count, a timeout per request
//! — and a graceful drain. HTTP/1.1 only: Aurora sits behind load balancers and browsers
//! speak HTTP/1.1 to it, and every limit here applies to it (h2c would bypass them).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
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
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Time to send a request's head, from the connection's start or the previous response.
    pub head_timeout: Duration,
    /// Bytes hyper buffers for a request's head; larger heads get 431 before any route
    /// sees them (the routes answer smaller ones past `AURORA_MAX_HEADER_BYTES` with a
    /// problem).
    pub head_buffer: usize,
    /// Time to produce a response's head (not its streamed body).
    pub request_timeout: Duration,
}

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
    on_timeout: OnTimeout,
    shutdown: impl Future<Output = ()>,
) where
    S: Service<http::Request<Incoming>, Response = Response, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let mut builder = Builder::new(TokioExecutor::new()).http1_only();
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.head_timeout)
        .max_buf_size(limits.head_buffer.max(8192))
        .max_headers(MAX_HEADERS);
    let graceful = GracefulShutdown::new();
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
                after: limits.request_timeout,
            };
            async move {
                if !timed(&timed_out.method, &timed_out.path) {
                    return service.call(request).await;
                }
                match tokio::time::timeout(limits.request_timeout, service.call(request)).await {
                    Ok(response) => response,
                    Err(_) => Ok(on_timeout(timed_out)),
                }
            }
        });
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), handler)
            .into_owned();
        let connection = graceful.watch(connection);
        connections.spawn(async move {
            if let Err(error) = connection.await {
                // Clients that hang up, time out or send garbage: theirs, not ours.
                tracing::debug!(%remote, error = %error, "connection ended with an error");
            }
        });
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    graceful.shutdown().await;
}
