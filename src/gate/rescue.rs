//! Rescue: the one place where a [`GatewayError`] becomes the client's answer — a vim fault in
//! the protocol the client spoke (PROTOCOL.md §4), its text ending with the request id, counted
//! once in the metrics and logged once. It also starts the request's [`Facts`] with the policy
//! snapshot the whole request is classified and decided under.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::future::BoxFuture;
use http::{HeaderValue, Request, Response, header};
use tower::{Layer, Service};
use tower_http::request_id::RequestId;

use crate::body::{ProxyBody, full};
use crate::gate::error::GatewayError;
use crate::gate::facts::Facts;
use crate::gate::request_id::id_text;
use crate::gate::step::Inner;
use crate::metrics::Metrics;
use crate::policy::PolicyStore;
use crate::vsphere::fault::FaultProtocol;

/// Builds [`Rescue`].
#[derive(Clone)]
pub struct RescueLayer {
    policies: Arc<PolicyStore>,
    metrics: Arc<Metrics>,
}

impl RescueLayer {
    /// Requests decided under the snapshots of `policies`, errors counted in `metrics`.
    pub fn new(policies: Arc<PolicyStore>, metrics: Arc<Metrics>) -> Self {
        Self { policies, metrics }
    }
}

impl<S> Layer<S> for RescueLayer {
    type Service = Rescue<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Rescue {
            inner: Arc::new(inner),
            layer: self.clone(),
        }
    }
}

/// Answers every [`GatewayError`] of the steps inside it as a vim fault.
pub struct Rescue<S> {
    inner: Arc<S>,
    layer: RescueLayer,
}

impl<S> Clone for Rescue<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            layer: self.layer.clone(),
        }
    }
}

impl<S: Inner> Service<Request<ProxyBody>> for Rescue<S> {
    type Response = Response<ProxyBody>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response<ProxyBody>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // The steps are always ready: none of them applies back-pressure here.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request<ProxyBody>) -> Self::Future {
        let facts = Arc::new(Facts::new(self.layer.policies.snapshot(), req.uri().path()));
        req.extensions_mut().insert(facts.clone());
        // A cheap handle on the id (a shared buffer), read as text only when a fault is rendered.
        let request_id = req.extensions().get::<RequestId>().cloned();
        let metrics = self.layer.metrics.clone();
        let answer = self.inner.call(req);
        Box::pin(async move {
            Ok(match answer.await {
                Ok(response) => response,
                Err(error) => {
                    let request_id = id_text(request_id.as_ref());
                    metrics.count(error.outcome());
                    // A denial was logged by the decide step, inside the call's span.
                    if !matches!(error, GatewayError::Denied { .. }) {
                        tracing::warn!(request = %request_id, error = error.name(), reason = %error, "{}", error.log_message());
                    }
                    fault_response(&error, facts.fault_protocol(), request_id)
                }
            })
        })
    }
}

/// The client's answer to `error`: its vim fault shaped for `protocol`.
pub fn fault_response(
    error: &GatewayError,
    protocol: FaultProtocol,
    request_id: &str,
) -> Response<ProxyBody> {
    let (body, content_type) = error.to_fault(request_id).render(protocol);
    let mut response = Response::new(full(body));
    *response.status_mut() = error.status();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}
