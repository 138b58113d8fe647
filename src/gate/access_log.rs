//! One structured log line per request, inside a span that carries the request id.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use http::{Request, Response};
use tower::{Layer, Service};
use tracing::Span;

use crate::gate::request_id::RequestId;
use crate::server::ClientAddr;

/// Builds [`AccessLog`].
#[derive(Debug, Clone, Copy, Default)]
pub struct AccessLogLayer;

impl<S> Layer<S> for AccessLogLayer {
    type Service = AccessLog<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AccessLog { inner }
    }
}

/// Runs the rest of the stack in a `request` span and logs status and latency at the end.
#[derive(Debug, Clone)]
pub struct AccessLog<S> {
    inner: S,
}

impl<S, B, R> Service<Request<B>> for AccessLog<S>
where
    S: Service<Request<B>, Response = Response<R>>,
{
    type Response = Response<R>;
    type Error = S::Error;
    type Future = AccessLogFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        // Without the access log, only guarded calls get a span (classify opens it): building
        // one for every pass-through call costs more than the rest of the logging.
        let span = if tracing::enabled!(target: "vcguard::access", tracing::Level::INFO) {
            request_span(&req)
        } else {
            Span::none()
        };
        let inner = span.in_scope(|| self.inner.call(req));
        AccessLogFuture {
            inner,
            span,
            started: Instant::now(),
        }
    }
}

/// The `request` span: the request id, client, method and path; classify and identify fill in
/// the call's protocol, target, guarded method and user.
pub fn request_span<B>(req: &Request<B>) -> Span {
    let id = req.extensions().get::<RequestId>().map(RequestId::as_str);
    let client = req.extensions().get::<ClientAddr>().map(|a| a.0);
    tracing::info_span!(
        "request",
        id = id.unwrap_or("-"),
        client = client.map(tracing::field::display),
        method = %req.method(),
        path = req.uri().path(),
        protocol = tracing::field::Empty,
        moid = tracing::field::Empty,
        guarded = tracing::field::Empty,
        user = tracing::field::Empty,
    )
}

pin_project_lite::pin_project! {
    /// Response future of [`AccessLog`].
    pub struct AccessLogFuture<F> {
        #[pin]
        inner: F,
        span: Span,
        started: Instant,
    }
}

impl<F, R, E> Future for AccessLogFuture<F>
where
    F: Future<Output = Result<Response<R>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let _entered = this.span.enter();
        let result = ready!(this.inner.poll(cx));
        if let Ok(response) = &result {
            tracing::info!(
                target: "vcguard::access",
                status = response.status().as_u16(),
                latency_us = this.started.elapsed().as_micros() as u64,
                "request finished"
            );
        }
        Poll::Ready(result)
    }
}
