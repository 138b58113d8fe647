//! Listeners: TCP accept with a connection cap, optional TLS, HTTP/1.1 + HTTP/2,
//! and graceful shutdown that lets in-flight requests finish.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use http::{HeaderValue, Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tower::{Service, ServiceExt};

use crate::accept_backoff::AcceptBackoff;
use crate::body::{BoxError, ProxyBody, boxed, holding};
use crate::first_request::{FirstRequestDeadline, FirstRequestSeen};
use crate::idle_connection::{Activity, Busy};

/// The client's address, placed in every request's extensions, with the texts the gateway
/// writes of it (the audit record's `client`, `X-Forwarded-For`) made once per connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAddr {
    addr: SocketAddr,
    texts: Arc<ClientTexts>,
}

#[derive(Debug, PartialEq, Eq)]
struct ClientTexts {
    addr: String,
    ip: Option<HeaderValue>,
}

impl ClientAddr {
    /// The client at `addr`.
    pub fn new(addr: SocketAddr) -> Self {
        let ip = HeaderValue::from_str(&addr.ip().to_string()).ok();
        Self {
            addr,
            texts: Arc::new(ClientTexts {
                addr: addr.to_string(),
                ip,
            }),
        }
    }

    /// The client's address and port.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `ip:port`, as the audit record shows it.
    pub fn text(&self) -> &str {
        &self.texts.addr
    }

    /// The client's IP address as a header value (for `X-Forwarded-For`).
    pub fn ip_header(&self) -> Option<&HeaderValue> {
        self.texts.ip.as_ref()
    }
}

/// Limits a listener enforces on its clients.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// Time a client may take to send request headers (for a new connection: from its first
    /// byte to its first request, HTTP/2 included); also how long a kept-alive HTTP/1.1
    /// connection may sit idle between requests.
    pub header_read_timeout: Duration,
    /// Time a client may take to finish the TLS handshake.
    pub tls_handshake_timeout: Duration,
    /// Time a new connection may stay silent: from accept to its first byte (the TLS
    /// ClientHello, or the request on a plain listener), and again from the end of the
    /// TLS handshake to the first byte of the first request.
    pub first_byte_timeout: Duration,
    /// Idle time before TCP keep-alive probes start on accepted sockets (`None`: off).
    pub tcp_keepalive: Option<Duration>,
    /// Connections open at once; further clients wait in the accept queue.
    pub max_connections: usize,
    /// After shutdown begins, how long in-flight requests may take.
    pub shutdown_grace: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(30),
            tls_handshake_timeout: Duration::from_secs(10),
            first_byte_timeout: Duration::from_secs(5),
            tcp_keepalive: Some(Duration::from_secs(60)),
            max_connections: 10_000,
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

/// What a listener counts: its open connections and its file-descriptor exhaustion episodes.
/// Clones (one per worker's accept loop) count together and share one exhaustion episode.
#[derive(Clone)]
pub struct ListenerMetrics {
    open_connections: Option<Gauge>,
    backoff: AcceptBackoff,
}

impl ListenerMetrics {
    /// Counts open connections into `open_connections` (if given) and the times accepting
    /// stopped because the process or system ran out of file descriptors into `fd_exhausted`.
    pub fn new(open_connections: Option<Gauge>, fd_exhausted: Counter) -> Self {
        Self {
            open_connections,
            backoff: AcceptBackoff::new(Some(fd_exhausted)),
        }
    }
}

/// Serves `service` on `listener` until `shutdown` completes, then drains in-flight
/// requests for at most `limits.shutdown_grace`. Returns whether draining finished in time.
pub async fn serve<S>(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    service: S,
    limits: ConnectionLimits,
    metrics: Option<ListenerMetrics>,
    shutdown: impl Future<Output = ()>,
) -> bool
where
    S: Service<Request<ProxyBody>, Response = Response<ProxyBody>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let acceptor = tls.map(TlsAcceptor::from);
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let limits = Arc::new(limits);
    let (backoff, gauge) = match metrics {
        Some(metrics) => (metrics.backoff, metrics.open_connections),
        None => (AcceptBackoff::new(None), None),
    };
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => {
                backoff.accepted();
                pair
            }
            Err(err) => {
                let pause = backoff.failed(&err);
                tokio::select! {
                    () = &mut shutdown => break,
                    () = tokio::time::sleep(pause) => continue,
                }
            }
        };
        let _ = stream.set_nodelay(true);
        if let Some(idle) = limits.tcp_keepalive {
            set_keepalive(&stream, idle);
        }
        let watcher = graceful.watcher();
        let service = service.clone();
        let acceptor = acceptor.clone();
        let limits = limits.clone();
        let gauge = gauge.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let _open = gauge.map(OpenConnection::new);
            if !first_byte_arrives(&stream, limits.first_byte_timeout, peer).await {
                return;
            }
            let seen = FirstRequestSeen::default();
            let activity = Activity::default();
            let service = PerConnection {
                inner: service,
                client: ClientAddr::new(peer),
                seen: seen.clone(),
                activity: activity.clone(),
            };
            let builder = http_builder();
            let head = limits.header_read_timeout;
            match acceptor {
                None => {
                    // The first byte is in already (peeked); the request head must follow.
                    let io = FirstRequestDeadline::new(stream, None, head, seen);
                    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
                    let conn = watcher.watch(conn.into_owned());
                    finish(until_idle(conn, &activity, head, peer).await, peer);
                }
                Some(acceptor) => {
                    let Some(tls_stream) = handshake(&acceptor, stream, &limits, peer).await else {
                        return;
                    };
                    let first_byte = Some(limits.first_byte_timeout);
                    let io = FirstRequestDeadline::new(tls_stream, first_byte, head, seen);
                    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
                    let conn = watcher.watch(conn.into_owned());
                    finish(until_idle(conn, &activity, head, peer).await, peer);
                }
            }
        });
    }
    drop(listener);
    tokio::time::timeout(limits.shutdown_grace, graceful.shutdown())
        .await
        .is_ok()
}

/// Enables TCP keep-alive probes after `idle` seconds without traffic (best effort).
pub(crate) fn set_keepalive(stream: &TcpStream, idle: Duration) {
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(idle)
        .with_interval(KEEPALIVE_PROBE_INTERVAL);
    if let Err(err) = socket2::SockRef::from(stream).set_tcp_keepalive(&keepalive) {
        tracing::debug!(error = %err, "cannot enable TCP keep-alive");
    }
}

/// Seconds between TCP keep-alive probes once they start (the OS decides how many are sent).
const KEEPALIVE_PROBE_INTERVAL: Duration = Duration::from_secs(10);

/// Waits for the first byte of a new connection; false (and the connection is dropped)
/// when the client stays silent for `limit` or closes first.
async fn first_byte_arrives(stream: &TcpStream, limit: Duration, peer: SocketAddr) -> bool {
    let mut byte = [0u8; 1];
    match tokio::time::timeout(limit, stream.peek(&mut byte)).await {
        Ok(Ok(n)) => n > 0,
        Ok(Err(err)) => {
            tracing::debug!(%peer, error = %err, "connection failed before its first byte");
            false
        }
        Err(_) => {
            tracing::debug!(%peer, ?limit, "no first byte in time; connection closed");
            false
        }
    }
}
fn http_builder() -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // A kept-alive connection waiting for its next request head is closed by `until_idle` after
    // the header-read timeout, and the first head is bounded by `FirstRequestDeadline`: hyper's
    // own header timer would arm and drop a timer for every request.
    builder.http1().header_read_timeout(None);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Duration::from_secs(30));
    builder
}

async fn handshake(
    acceptor: &TlsAcceptor,
    stream: TcpStream,
    limits: &ConnectionLimits,
    peer: SocketAddr,
) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
    match tokio::time::timeout(limits.tls_handshake_timeout, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => Some(stream),
        Ok(Err(err)) => {
            tracing::debug!(%peer, error = %err, "TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake timed out");
            None
        }
    }
}

/// Runs `conn` until it ends or has been idle (no request in progress) for `idle`.
async fn until_idle(
    conn: impl Future<Output = Result<(), BoxError>>,
    activity: &Activity,
    idle: Duration,
    peer: SocketAddr,
) -> Result<(), BoxError> {
    tokio::select! {
        result = conn => result,
        () = activity.idle_for(idle) => {
            tracing::debug!(%peer, ?idle, "idle connection closed");
            Ok(())
        }
    }
}

fn finish(result: Result<(), BoxError>, peer: SocketAddr) {
    if let Err(err) = result {
        tracing::debug!(%peer, error = %err, "connection ended with an error");
    }
}

/// Adapts the tower service to hyper for one connection, tagging requests with the client.
#[derive(Clone)]
struct PerConnection<S> {
    inner: S,
    client: ClientAddr,
    seen: FirstRequestSeen,
    activity: Activity,
}

impl<S> hyper::service::Service<Request<Incoming>> for PerConnection<S>
where
    S: Service<Request<ProxyBody>, Response = Response<ProxyBody>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = Response<ProxyBody>;
    type Error = Infallible;
    type Future = Answer<tower::util::Oneshot<S, Request<ProxyBody>>>;

    fn call(&self, mut req: Request<Incoming>) -> Self::Future {
        self.seen.mark();
        // The connection is busy until the response body has been sent in full.
        let busy = self.activity.begin();
        req.extensions_mut().insert(self.client.clone());
        Answer {
            inner: self.inner.clone().oneshot(req.map(boxed)),
            busy: Some(busy),
        }
    }
}

pin_project_lite::pin_project! {
    /// A response on its way; its body keeps the connection marked busy until sent.
    struct Answer<F> {
        #[pin]
        inner: F,
        busy: Option<Busy>,
    }
}

impl<F> Future for Answer<F>
where
    F: Future<Output = Result<Response<ProxyBody>, Infallible>>,
{
    type Output = Result<Response<ProxyBody>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = ready!(this.inner.poll(cx))?;
        Poll::Ready(Ok(match this.busy.take() {
            Some(busy) => response.map(|body| holding(body, busy)),
            None => response,
        }))
    }
}

/// Counts a connection in the open-connections gauge for as long as it lives.
struct OpenConnection(Gauge);

impl OpenConnection {
    fn new(gauge: Gauge) -> Self {
        gauge.inc();
        Self(gauge)
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("Ctrl-C received, shutting down"),
        () = terminate => tracing::info!("SIGTERM received, shutting down"),
    }
}
