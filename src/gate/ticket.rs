//! Ticket: the change ticket a guarded call carries, verified against the call's action and
//! target, as facts for the policy context. The raw ticket is removed before forwarding and
//! never logged.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::SystemTime;

use futures_util::future::BoxFuture;
use http::{HeaderName, Request, Response};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tower::{Layer, Service};

use crate::body::ProxyBody;
use crate::gate::call_boxed;
use crate::policy::PolicyStore;
use crate::ticket::{TicketCheck, TicketKind, TicketTarget, TicketVerifier};
use crate::vsphere::operation::Operation;

/// What the ticket step learned about a guarded call's change ticket.
#[derive(Debug, Clone, Default)]
pub struct TicketFacts {
    /// The verified ticket as the policy context's `ticket` record; `None` without a valid ticket.
    pub context: Option<Value>,
    /// Why the ticket does not authorise this call, shown with a denial.
    pub problem: Option<String>,
    /// The ticket's id, when one could be read.
    pub id: Option<String>,
    /// `pattern` or `signed`.
    pub kind: Option<TicketKind>,
    /// SHA-256 of the raw header value, for the audit log's keyed hash (never the value itself).
    pub raw_digest: [u8; 32],
}

/// Builds [`Ticket`].
#[derive(Clone)]
pub struct TicketLayer {
    verifier: Arc<TicketVerifier>,
    header: HeaderName,
    policies: Arc<PolicyStore>,
}

impl TicketLayer {
    /// Tickets read from `header` and checked by `verifier`; which host an object belongs to
    /// comes from the entities of the policy set in force.
    pub fn new(
        verifier: Arc<TicketVerifier>,
        header: HeaderName,
        policies: Arc<PolicyStore>,
    ) -> Self {
        Self {
            verifier,
            header,
            policies,
        }
    }
}

impl<S> Layer<S> for TicketLayer {
    type Service = Ticket<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Ticket {
            inner,
            verifier: self.verifier.clone(),
            header: self.header.clone(),
            policies: self.policies.clone(),
        }
    }
}

/// Verifies the change ticket of guarded calls and strips the ticket header from every request.
#[derive(Clone)]
pub struct Ticket<S> {
    inner: S,
    verifier: Arc<TicketVerifier>,
    header: HeaderName,
    policies: Arc<PolicyStore>,
}

impl<S> Service<Request<ProxyBody>> for Ticket<S>
where
    S: Service<Request<ProxyBody>, Response = Response<ProxyBody>, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response<ProxyBody>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response<ProxyBody>, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ProxyBody>) -> Self::Future {
        let raw: Vec<String> = req
            .headers()
            .get_all(&self.header)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        req.headers_mut().remove(&self.header);
        let call = req
            .extensions()
            .get::<Operation>()
            .and_then(|op| op.guarded.clone());
        if let (Some(call), false) = (call, raw.is_empty()) {
            let facts = match raw.as_slice() {
                [one] => {
                    let target = TicketTarget {
                        mo_id: call.target.value.clone(),
                        host_name: None,
                        hosts: self
                            .policies
                            .current()
                            .hosts_of(&call.target.mo_type, &call.target.value),
                    };
                    let check = self
                        .verifier
                        .verify(one, &call.method, &target, SystemTime::now());
                    TicketFacts {
                        raw_digest: Sha256::digest(one.as_bytes()).into(),
                        ..facts(check)
                    }
                }
                _ => TicketFacts {
                    problem: Some(format!(
                        "{} change tickets sent; send exactly one",
                        raw.len()
                    )),
                    ..TicketFacts::default()
                },
            };
            req.extensions_mut().insert(facts);
        }
        call_boxed(&mut self.inner, req)
    }
}

fn facts(check: TicketCheck) -> TicketFacts {
    let problem = check.reason_for_policy();
    match check {
        TicketCheck::Valid(ticket) => TicketFacts {
            context: Some(ticket.to_context()),
            problem,
            id: Some(ticket.id.clone()),
            kind: Some(ticket.kind),
            raw_digest: [0; 32],
        },
        TicketCheck::Invalid { id, kind, .. } => TicketFacts {
            context: None,
            problem,
            id,
            kind: Some(kind),
            raw_digest: [0; 32],
        },
    }
}
