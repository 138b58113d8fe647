//! The step contract: each step of the request's way through is its logic alone, an async
//! `handle(request, next)`; the tower machinery (clone-and-swap, boxing, `poll_ready`) is written
//! once here, as axum's `from_fn` does it.
//!
//! A step answers with the inner steps' response (`next.run(req).await`), a response of its own,
//! or a [`GatewayError`] that the rescue step renders as a vim fault.
//!
//! Every call's step futures are moved into boxes, so a step boxes the awaits of its rare paths
//! (reading a guarded body, asking vCenter or the state store, serving the console): their state
//! would otherwise make every pass-through call's futures kilobytes large, copied on each call.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::FutureExt as _;
use futures_util::future::BoxFuture;
use http::{Request, Response};
use tower::{Layer, Service};

use crate::body::ProxyBody;
use crate::gate::error::GatewayError;
use crate::gate::facts::Facts;

/// What a step (and the rest of the way through after it) answers.
pub type StepResult = Result<Response<ProxyBody>, GatewayError>;

/// The services a step can hand a request on to: the rest of the way through. Their futures
/// are boxed: a named future type keeps the compiler able to prove the steps' futures `Send`.
pub trait Inner:
    Service<
        Request<ProxyBody>,
        Response = Response<ProxyBody>,
        Error = GatewayError,
        Future = BoxFuture<'static, StepResult>,
    > + Clone
    + Send
    + 'static
{
}

impl<S> Inner for S where
    S: Service<
            Request<ProxyBody>,
            Response = Response<ProxyBody>,
            Error = GatewayError,
            Future = BoxFuture<'static, StepResult>,
        > + Clone
        + Send
        + 'static
{
}

/// One step of the request's way through.
pub trait Step: Send + Sync + 'static {
    /// Handles `req` (whose facts so far are `facts`), handing it on with `next` when the step
    /// lets it through.
    fn handle<S: Inner>(
        &self,
        req: Request<ProxyBody>,
        facts: Arc<Facts>,
        next: Next<S>,
    ) -> impl Future<Output = StepResult> + Send;
}

/// The rest of the way through after a step, ready to take the request.
pub struct Next<S> {
    inner: S,
}

impl<S: Inner> Next<S> {
    /// Hands `req` on and waits for the answer.
    pub async fn run(mut self, req: Request<ProxyBody>) -> StepResult {
        self.inner.call(req).await
    }
}

/// Builds [`StepService`]s of one step.
pub struct StepLayer<T> {
    step: Arc<T>,
}

impl<T> StepLayer<T> {
    /// A layer running `step`.
    pub fn new(step: T) -> Self {
        Self {
            step: Arc::new(step),
        }
    }
}

impl<T> Clone for StepLayer<T> {
    fn clone(&self) -> Self {
        Self {
            step: self.step.clone(),
        }
    }
}

impl<T, S> Layer<S> for StepLayer<T> {
    type Service = StepService<T, S>;

    fn layer(&self, inner: S) -> Self::Service {
        StepService {
            step: self.step.clone(),
            inner,
        }
    }
}

/// A step in front of the rest of the way through, as a tower service.
pub struct StepService<T, S> {
    step: Arc<T>,
    inner: S,
}

impl<T, S: Clone> Clone for StepService<T, S> {
    fn clone(&self) -> Self {
        Self {
            step: self.step.clone(),
            inner: self.inner.clone(),
        }
    }
}

impl<T: Step, S: Inner> Service<Request<ProxyBody>> for StepService<T, S> {
    type Response = Response<ProxyBody>;
    type Error = GatewayError;
    type Future = BoxFuture<'static, StepResult>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), GatewayError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ProxyBody>) -> Self::Future {
        // The clone that was polled ready serves this request (tower's clone-and-swap).
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let step = self.step.clone();
        let Some(facts) = Facts::of(&req) else {
            return Box::pin(std::future::ready(Err(GatewayError::missing_facts(
                "a step",
            ))));
        };
        Box::pin(async move {
            // A panicking step fails its request, not the connection: the audit step and the
            // rescue see an ordinary `GatewayError::Internal`.
            AssertUnwindSafe(step.handle(req, facts, Next { inner }))
                .catch_unwind()
                .await
                .unwrap_or_else(|panic| {
                    let error = GatewayError::from_panic(panic.as_ref());
                    tracing::error!(%error, "a step panicked");
                    Err(error)
                })
        })
    }
}
