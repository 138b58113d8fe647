//! The step contract: each step of the request's way through is its logic alone, an async
//! `handle(request, next)`; the machinery (boxing, panics, handing on) is written once here.
//!
//! A step answers with the inner steps' response (`next.run(req).await`), a response of its own,
//! or a [`GatewayError`] that the rescue step renders as a vim fault.
//!
//! The rest of the way through after a step is shared, not cloned per call: a call costs each
//! step two reference counts, however many steps follow it. Steps are always ready; the only
//! back-pressure is forwarding's limit of requests in flight to vCenter.
//!
//! Every call's step futures are moved into boxes, so a step boxes the awaits of its rare paths
//! (reading a guarded body, asking vCenter or the state store, serving the console): their state
//! would otherwise make every pass-through call's futures kilobytes large, copied on each call.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures_util::FutureExt as _;
use futures_util::future::BoxFuture;
use http::{Request, Response};
use tower::{Layer, ServiceExt as _};

use crate::body::ProxyBody;
use crate::gate::error::GatewayError;
use crate::gate::facts::Facts;

/// What a step (and the rest of the way through after it) answers.
pub type StepResult = Result<Response<ProxyBody>, GatewayError>;

/// The rest of the way through after a step: the later steps and forwarding.
pub trait Inner: Send + Sync + 'static {
    /// Takes `req` the rest of the way through.
    fn call(&self, req: Request<ProxyBody>) -> BoxFuture<'static, StepResult>;
}

/// A tower service as the end of the way through (tests put a stand-in for vCenter there).
impl Inner
    for tower::util::BoxCloneSyncService<Request<ProxyBody>, Response<ProxyBody>, GatewayError>
{
    fn call(&self, req: Request<ProxyBody>) -> BoxFuture<'static, StepResult> {
        Box::pin(self.clone().oneshot(req))
    }
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

    /// Whether the step has anything to do with `req` (whose facts so far are `facts`). A step
    /// that has not is passed by without a future of its own; its `handle` must then do nothing
    /// but hand the request on, so an answer of `true` is always safe.
    fn applies_to(&self, _req: &Request<ProxyBody>, _facts: &Facts) -> bool {
        true
    }
}

/// The rest of the way through after a step, ready to take the request.
pub struct Next<S> {
    inner: Arc<S>,
}

impl<S: Inner> Next<S> {
    /// Hands `req` on; the answer comes when the returned future is awaited.
    pub fn run(self, req: Request<ProxyBody>) -> BoxFuture<'static, StepResult> {
        self.inner.call(req)
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

impl<T, S> Layer<S> for StepLayer<T> {
    type Service = StepService<T, S>;

    fn layer(&self, inner: S) -> Self::Service {
        StepService {
            step: self.step.clone(),
            inner: Arc::new(inner),
        }
    }
}

/// A step in front of the rest of the way through.
pub struct StepService<T, S> {
    step: Arc<T>,
    inner: Arc<S>,
}

impl<T: Step, S: Inner> Inner for StepService<T, S> {
    fn call(&self, req: Request<ProxyBody>) -> BoxFuture<'static, StepResult> {
        let Some(facts) = Facts::of(&req) else {
            return Box::pin(std::future::ready(Err(GatewayError::missing_facts(
                "a step",
            ))));
        };
        if !self.step.applies_to(&req, &facts) {
            return self.inner.call(req);
        }
        let step = self.step.clone();
        let next = Next {
            inner: self.inner.clone(),
        };
        Box::pin(async move {
            // A panicking step fails its request, not the connection: the audit step and the
            // rescue see an ordinary `GatewayError::Internal`.
            AssertUnwindSafe(step.handle(req, facts, next))
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
