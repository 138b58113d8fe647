//! Connections to vCenter kept open between calls, on hyper's HTTP/1.1 `client::conn`.
//!
//! One pool per worker thread (per-core serving), so a call, its connection and the task that
//! drives it stay on one thread. The pools of one vCenter share one [`IdleBudget`], so a busier
//! worker keeps more of the idle connections instead of closing what it cannot keep. The most
//! recently returned connection is taken first; a connection goes back only once its answer has
//! been read to the end and it is free, and a request that a reused connection closed under
//! before sending it goes out again on another.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Once, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, StatusCode, Uri};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use tower::ServiceExt;

use crate::body::{BoxError, ProxyBody};
use crate::upstream_connect::UpstreamConnector;

/// Why a request got no answer from vCenter.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// No connection could be made: TCP, TLS or the HTTP/1.1 handshake failed.
    #[error("cannot connect to vCenter")]
    Connect(#[source] BoxError),
    /// The connection failed while the request was sent or its answer awaited.
    #[error("the exchange with vCenter failed")]
    Exchange(#[source] hyper::Error),
}

/// How many idle connections the pools of one vCenter keep between them (`pool_max_idle`).
#[derive(Debug)]
pub struct IdleBudget {
    max: usize,
    kept: AtomicUsize,
}

impl IdleBudget {
    /// A budget of `max` idle connections for all the pools sharing it.
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            max,
            kept: AtomicUsize::new(0),
        })
    }

    /// Claims room for one more idle connection; false when the pools keep `max` already.
    fn claim(&self) -> bool {
        self.kept
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |kept| {
                (kept < self.max).then_some(kept + 1)
            })
            .is_ok()
    }

    /// Gives back the room of `count` idle connections taken out or closed.
    fn release(&self, count: usize) {
        if count > 0 {
            self.kept.fetch_sub(count, Ordering::Relaxed);
        }
    }
}

/// Open connections to one vCenter, reused across calls.
pub struct UpstreamPool {
    connector: UpstreamConnector,
    base: Uri,
    idle: Mutex<Vec<IdleConnection>>,
    budget: Arc<IdleBudget>,
    /// Whether connections are kept at all (a budget and an idle timeout above zero).
    keeps_idle: bool,
    idle_timeout: Duration,
    sweeper: Once,
}

struct IdleConnection {
    sender: SendRequest<ProxyBody>,
    since: Instant,
}

impl UpstreamPool {
    /// A pool connecting to `base` with `connector`, keeping idle connections within `budget`
    /// (shared with the other pools of the same vCenter) for `idle_timeout` each (none when
    /// either is zero).
    pub fn new(
        connector: UpstreamConnector,
        base: Uri,
        budget: Arc<IdleBudget>,
        idle_timeout: Duration,
    ) -> Arc<Self> {
        let keeps_idle = budget.max > 0 && !idle_timeout.is_zero();
        let capacity = if keeps_idle { budget.max.min(64) } else { 0 };
        Arc::new(Self {
            connector,
            base,
            idle: Mutex::new(Vec::with_capacity(capacity)),
            budget,
            keeps_idle,
            idle_timeout,
            sweeper: Once::new(),
        })
    }

    /// Sends `req` (its URI in origin form) on an idle connection or a new one.
    pub async fn send(
        self: &Arc<Self>,
        mut req: Request<ProxyBody>,
    ) -> Result<Response<UpstreamBody>, UpstreamError> {
        loop {
            let (mut sender, reused) = match self.take_idle() {
                Some(sender) => (sender, true),
                // Boxed: connecting is rare, and its state would otherwise enlarge every call's future.
                None => (Box::pin(self.connect()).await?, false),
            };
            match sender.try_send_request(req).await {
                Ok(response) => return Ok(self.lease(response, sender)),
                Err(mut failed) => match failed.take_message() {
                    // The connection closed before it took the request: vCenter never saw it.
                    Some(unsent) if reused => req = unsent,
                    _ => return Err(UpstreamError::Exchange(failed.into_error())),
                },
            }
        }
    }

    /// The idle-connection budget this pool shares.
    pub fn budget(&self) -> &Arc<IdleBudget> {
        &self.budget
    }

    /// Idle connections now open.
    pub fn idle_count(&self) -> usize {
        self.idle_list().len()
    }

    /// The most recently returned idle connection that is ready for a request and not expired.
    fn take_idle(&self) -> Option<SendRequest<ProxyBody>> {
        let now = Instant::now();
        let mut idle = self.idle_list();
        while let Some(entry) = idle.pop() {
            self.budget.release(1);
            if entry.sender.is_ready() && now.duration_since(entry.since) < self.idle_timeout {
                return Some(entry.sender);
            }
        }
        None
    }

    async fn connect(self: &Arc<Self>) -> Result<SendRequest<ProxyBody>, UpstreamError> {
        let stream = self
            .connector
            .clone()
            .oneshot(self.base.clone())
            .await
            .map_err(UpstreamError::Connect)?;
        let (sender, connection) = http1::handshake(stream)
            .await
            .map_err(|err| UpstreamError::Connect(Box::new(err)))?;
        tokio::spawn(async move {
            if let Err(err) = connection.with_upgrades().await {
                tracing::debug!(error = %err, "connection to vCenter ended");
            }
        });
        if self.keeps_idle {
            self.sweeper
                .call_once(|| drop(tokio::spawn(sweep(Arc::downgrade(self)))));
        }
        Ok(sender)
    }

    fn lease(
        self: &Arc<Self>,
        response: Response<Incoming>,
        sender: SendRequest<ProxyBody>,
    ) -> Response<UpstreamBody> {
        // An upgraded connection is the client's now; it never comes back.
        let lease =
            (self.keeps_idle && response.status() != StatusCode::SWITCHING_PROTOCOLS).then(|| {
                Lease {
                    pool: self.clone(),
                    sender,
                }
            });
        response.map(|body| UpstreamBody {
            body,
            ended: false,
            lease,
        })
    }

    fn give_back(self: &Arc<Self>, mut sender: SendRequest<ProxyBody>) {
        if sender.is_ready() {
            self.keep(sender);
        } else if !sender.is_closed()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            // Still busy, e.g. sending the rest of a request body vCenter answered early: pooled
            // once it is free, so that no call waits behind it.
            let pool = self.clone();
            drop(runtime.spawn(async move {
                if sender.ready().await.is_ok() {
                    pool.keep(sender);
                }
            }));
        }
    }

    fn keep(&self, sender: SendRequest<ProxyBody>) {
        if self.budget.claim() {
            self.idle_list().push(IdleConnection {
                sender,
                since: Instant::now(),
            });
        }
    }

    fn drop_expired(&self, now: Instant) {
        let mut idle = self.idle_list();
        let before = idle.len();
        idle.retain(|entry| {
            !entry.sender.is_closed() && now.duration_since(entry.since) < self.idle_timeout
        });
        self.budget.release(before - idle.len());
    }

    fn idle_list(&self) -> std::sync::MutexGuard<'_, Vec<IdleConnection>> {
        // The list stays consistent whatever panicked while holding it.
        self.idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for UpstreamPool {
    fn drop(&mut self) {
        self.budget.release(self.idle_list().len());
    }
}

/// Closes idle connections past their timeout while nobody asks for one.
async fn sweep(pool: Weak<UpstreamPool>) {
    let Some(every) = pool.upgrade().map(|pool| pool.idle_timeout) else {
        return;
    };
    let mut tick = tokio::time::interval(every.max(Duration::from_millis(100)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(pool) = pool.upgrade() else { return };
        pool.drop_expired(Instant::now());
    }
}

struct Lease {
    pool: Arc<UpstreamPool>,
    sender: SendRequest<ProxyBody>,
}

/// vCenter's answer body: gives its connection back to the pool once read to the end.
pub struct UpstreamBody {
    body: Incoming,
    ended: bool,
    lease: Option<Lease>,
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = std::pin::Pin::new(&mut self.body).poll_frame(cx);
        match polled {
            Poll::Ready(None) => {
                self.ended = true;
                Poll::Ready(None)
            }
            Poll::Ready(Some(frame)) => Poll::Ready(Some(frame.map_err(BoxError::from))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for UpstreamBody {
    fn drop(&mut self) {
        // A body dropped half-read leaves its connection mid-answer: that one is closed.
        if let Some(lease) = self.lease.take()
            && (self.ended || self.body.is_end_stream())
        {
            lease.pool.give_back(lease.sender);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use futures_util::StreamExt;
    use http_body_util::{BodyExt, Empty, Full};
    use hyper_util::rt::TokioIo;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// A plain-HTTP vCenter stand-in answering every request with `body`, counting the
    /// connections it accepts.
    async fn upstream(body: &'static [u8]) -> (Uri, Arc<AtomicUsize>) {
        let (listener, base) = listen().await;
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                let answer = hyper::service::service_fn(move |_req| async move {
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(body))))
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(socket), answer),
                );
            }
        });
        (base, accepted)
    }

    /// A listening socket on a free local port and its plain-HTTP base URL.
    async fn listen() -> (TcpListener, Uri) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        (listener, base.parse().expect("uri"))
    }

    /// What [`answer_once`]'s server does with a connection once it has answered.
    enum AfterAnswer {
        /// Closes it, without having said so in the answer.
        Close,
        /// Reads (and ignores) whatever else comes, e.g. the rest of a request body.
        KeepReading,
    }

    /// A raw HTTP/1.1 server answering `ok` once per connection as soon as a request head is in,
    /// counting the connections it accepts.
    async fn answer_once(after: AfterAnswer) -> (Uri, Arc<AtomicUsize>) {
        let (listener, base) = listen().await;
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        let keep_reading = matches!(after, AfterAnswer::KeepReading);
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut seen = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                        match socket.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => seen.extend_from_slice(&buf[..n]),
                        }
                    }
                    let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                    if socket.write_all(answer).await.is_err() || !keep_reading {
                        return;
                    }
                    while let Ok(1..) = socket.read(&mut buf).await {}
                });
            }
        });
        (base, accepted)
    }

    fn pool(base: Uri, max_idle: usize, idle_timeout: Duration) -> Arc<UpstreamPool> {
        sharing_pool(base, IdleBudget::new(max_idle), idle_timeout)
    }

    fn sharing_pool(
        base: Uri,
        budget: Arc<IdleBudget>,
        idle_timeout: Duration,
    ) -> Arc<UpstreamPool> {
        let tls =
            crate::tls::upstream_client_config(&crate::config::UpstreamTrust::InsecureSkipVerify)
                .expect("client config");
        let connector = UpstreamConnector::new(tls, Duration::from_secs(2), None);
        UpstreamPool::new(connector, base, budget, idle_timeout)
    }

    fn get() -> Request<ProxyBody> {
        Request::get("/sdk/vim25/8.0.3.0/SessionManager/SessionManager/currentSession")
            .body(crate::body::boxed(Empty::<Bytes>::new()))
            .expect("request")
    }

    async fn read_all(pool: &Arc<UpstreamPool>) -> Bytes {
        let response = pool.send(get()).await.expect("answer");
        let body = response.into_body().collect().await.expect("body");
        body.to_bytes()
    }

    #[tokio::test]
    async fn calls_one_after_another_share_one_connection() {
        let (base, accepted) = upstream(b"{\"ok\":true}").await;
        let pool = pool(base, 4, Duration::from_secs(30));
        for _ in 0..5 {
            assert_eq!(read_all(&pool).await, &b"{\"ok\":true}"[..]);
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
        assert_eq!(pool.idle_count(), 1);
    }

    #[tokio::test]
    async fn a_body_dropped_half_read_does_not_come_back() {
        static BIG: [u8; 1 << 20] = [b'x'; 1 << 20];
        let (base, accepted) = upstream(&BIG).await;
        let pool = pool(base, 4, Duration::from_secs(30));
        let mut body = pool.send(get()).await.expect("answer").into_body();
        let first = body.frame().await.expect("a frame").expect("data");
        assert!(first.data_ref().is_some_and(|data| data.len() < BIG.len()));
        drop(body);
        assert_eq!(pool.idle_count(), 0);
        assert_eq!(read_all(&pool).await.len(), BIG.len());
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn connections_vcenter_closes_after_answering_are_not_used_again() {
        let (base, accepted) = answer_once(AfterAnswer::Close).await;
        let pool = pool(base, 4, Duration::from_secs(30));
        for _ in 0..10 {
            assert_eq!(read_all(&pool).await, &b"ok"[..]);
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 10);
    }

    #[tokio::test]
    async fn no_call_waits_behind_a_request_body_still_going_out() {
        let (base, accepted) = answer_once(AfterAnswer::KeepReading).await;
        let pool = pool(base, 4, Duration::from_secs(30));
        let endless = futures_util::stream::iter([Ok::<_, BoxError>(Frame::data(
            Bytes::from_static(b"first chunk"),
        ))])
        .chain(futures_util::stream::pending());
        let upload = Request::post("/upload")
            .body(crate::body::boxed(http_body_util::StreamBody::new(endless)))
            .expect("request");
        let answer = pool.send(upload).await.expect("answer");
        answer.into_body().collect().await.expect("body");
        let next = tokio::time::timeout(Duration::from_secs(5), read_all(&pool))
            .await
            .expect("the next call does not wait for the upload to end");
        assert_eq!(next, &b"ok"[..]);
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn idle_connections_close_after_the_idle_timeout() {
        let (base, accepted) = upstream(b"ok").await;
        let pool = pool(base, 4, Duration::from_millis(200));
        read_all(&pool).await;
        assert_eq!(pool.idle_count(), 1);
        tokio::time::sleep(Duration::from_millis(700)).await;
        assert_eq!(pool.idle_count(), 0, "the sweeper closes it");
        read_all(&pool).await;
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn no_more_idle_connections_are_kept_than_allowed() {
        let (base, accepted) = upstream(b"ok").await;
        let pool = pool(base, 1, Duration::from_secs(30));
        let first = pool.send(get()).await.expect("answer");
        let second = pool.send(get()).await.expect("answer");
        for response in [first, second] {
            response.into_body().collect().await.expect("body");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
        assert_eq!(pool.idle_count(), 1);
    }

    #[tokio::test]
    async fn pools_sharing_a_budget_keep_no_more_idle_connections_between_them() {
        let (base, accepted) = upstream(b"ok").await;
        let budget = IdleBudget::new(2);
        let busy = sharing_pool(base.clone(), budget.clone(), Duration::from_secs(30));
        let quiet = sharing_pool(base, budget, Duration::from_secs(30));
        let first = busy.send(get()).await.expect("answer");
        let second = busy.send(get()).await.expect("answer");
        let third = quiet.send(get()).await.expect("answer");
        for response in [first, second, third] {
            response.into_body().collect().await.expect("body");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 3);
        assert_eq!(
            (busy.idle_count(), quiet.idle_count()),
            (2, 0),
            "the busier pool keeps both idle connections the budget allows"
        );

        read_all(&busy).await;
        read_all(&quiet).await;
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            4,
            "the busy pool reuses its own"
        );
        assert_eq!(
            quiet.idle_count(),
            0,
            "the quiet pool cannot keep one while the busy one holds the whole budget"
        );
        drop(busy);
        read_all(&quiet).await;
        assert_eq!(quiet.idle_count(), 1, "a dropped pool gives its share back");
        assert_eq!(accepted.load(Ordering::SeqCst), 5);
    }

    #[tokio::test]
    async fn with_no_idle_connections_allowed_every_call_connects() {
        let (base, accepted) = upstream(b"ok").await;
        let pool = pool(base, 0, Duration::from_secs(30));
        for _ in 0..3 {
            read_all(&pool).await;
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 3);
        assert_eq!(pool.idle_count(), 0);
    }

    #[tokio::test]
    async fn an_unreachable_vcenter_is_a_connect_error() {
        let (listener, base) = listen().await;
        drop(listener);
        let pool = pool(base, 4, Duration::from_secs(30));
        match pool.send(get()).await {
            Err(UpstreamError::Connect(cause)) => {
                assert!(cause.to_string().contains("connect"), "{cause}")
            }
            Err(other) => panic!("expected a connect error, got {other}"),
            Ok(_) => panic!("nothing listens there"),
        }
    }
}
