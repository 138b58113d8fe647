//! Gives every request a gateway-made id (clients cannot choose it), returned in `x-request-id`.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll, ready};

use http::{HeaderName, HeaderValue, Request, Response};
use tower::{Layer, Service};

/// Response header carrying the request id.
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// The gateway's id for one request, found in request extensions.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RequestId(Arc<str>);

impl RequestId {
    /// A new id (32 hex digits): a random per-process prefix and a counter, so ids never
    /// repeat within a run and collide across runs or replicas only by chance (2^-64).
    pub fn generate() -> Self {
        static PREFIX: LazyLock<u64> = LazyLock::new(|| uuid::Uuid::new_v4().as_u64_pair().0);
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        Self(format!("{:016x}{n:016x}", *PREFIX).into())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Builds [`SetRequestId`].
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestIdLayer;

impl<S> Layer<S> for RequestIdLayer {
    type Service = SetRequestId<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SetRequestId { inner }
    }
}

/// Replaces any client-sent `x-request-id` with a fresh [`RequestId`] and echoes it in the response.
#[derive(Debug, Clone)]
pub struct SetRequestId<S> {
    inner: S,
}

impl<S, B, R> Service<Request<B>> for SetRequestId<S>
where
    S: Service<Request<B>, Response = Response<R>>,
{
    type Response = Response<R>;
    type Error = S::Error;
    type Future = SetRequestIdFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let id = RequestId::generate();
        req.headers_mut().remove(REQUEST_ID_HEADER);
        req.extensions_mut().insert(id.clone());
        SetRequestIdFuture {
            inner: self.inner.call(req),
            id: Some(id),
        }
    }
}

pin_project_lite::pin_project! {
    /// Response future of [`SetRequestId`].
    pub struct SetRequestIdFuture<F> {
        #[pin]
        inner: F,
        id: Option<RequestId>,
    }
}

impl<F, R, E> Future for SetRequestIdFuture<F>
where
    F: Future<Output = Result<Response<R>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = ready!(this.inner.poll(cx))?;
        if let Some(id) = this.id.take()
            && let Ok(value) = HeaderValue::from_str(id.as_str())
        {
            response.headers_mut().insert(REQUEST_ID_HEADER, value);
        }
        Poll::Ready(Ok(response))
    }
}

#[cfg(test)]
mod tests {
    use super::RequestId;

    #[test]
    fn ids_are_32_hex_digits_and_distinct() {
        let ids: Vec<RequestId> = (0..1000).map(|_| RequestId::generate()).collect();
        for id in &ids {
            assert_eq!(id.as_str().len(), 32, "{id}");
            assert!(id.as_str().bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
        }
        let mut unique: Vec<&str> = ids.iter().map(RequestId::as_str).collect();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), ids.len());
    }
}
