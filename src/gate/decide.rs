//! Decide: Cedar policies judge every guarded call. A denied call never reaches vCenter; the
//! client gets `RestrictedByAdministrator` in the protocol it spoke, naming the policy and why.

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{SystemTime, UNIX_EPOCH};

use futures_util::future::BoxFuture;
use http::{Request, Response, StatusCode};
use serde_json::{Value, json};
use tower::{Layer, Service};

use crate::body::ProxyBody;
use crate::gate::call_boxed;
use crate::gate::request_id::RequestId;
use crate::gate::respond::fault_response;
use crate::gate::ticket::TicketFacts;
use crate::identity::Caller;
use crate::metrics::{Metrics, Outcome};
use crate::policy::{Decision, PolicyRequest, PolicyStore, Principal, Resource};
use crate::server::ClientAddr;
use crate::vsphere::fault::{FaultProtocol, VimFault};
use crate::vsphere::operation::{GuardedBody, GuardedCall, Operation, Protocol};

/// Builds [`Decide`].
#[derive(Clone)]
pub struct DecideLayer {
    policies: Arc<PolicyStore>,
    metrics: Arc<Metrics>,
}

impl DecideLayer {
    /// Decisions by the policy set in force in `policies`.
    pub fn new(policies: Arc<PolicyStore>, metrics: Arc<Metrics>) -> Self {
        Self { policies, metrics }
    }
}

impl<S> Layer<S> for DecideLayer {
    type Service = Decide<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Decide {
            inner,
            policies: self.policies.clone(),
            metrics: self.metrics.clone(),
        }
    }
}

/// Evaluates guarded calls; puts the [`Decision`] in the request's extensions.
#[derive(Clone)]
pub struct Decide<S> {
    inner: S,
    policies: Arc<PolicyStore>,
    metrics: Arc<Metrics>,
}

impl<S> Service<Request<ProxyBody>> for Decide<S>
where
    S: Service<Request<ProxyBody>, Response = Response<ProxyBody>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = Response<ProxyBody>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response<ProxyBody>, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ProxyBody>) -> Self::Future {
        let guarded = req
            .extensions()
            .get::<Operation>()
            .and_then(|op| op.guarded.clone().map(|call| (op.protocol, call)));
        let Some((protocol, call)) = guarded else {
            return call_boxed(&mut self.inner, req);
        };
        let decision = Arc::new(self.decide(&req, protocol, &call));
        let ticket_note = req
            .extensions()
            .get::<TicketFacts>()
            .and_then(|facts| facts.problem.clone());
        for hit in &decision.monitor_hits {
            tracing::warn!(
                policy = %hit.id,
                reason = hit.reason.as_deref().unwrap_or(""),
                "would deny (monitor mode); forwarding"
            );
        }
        if !decision.errors.is_empty() {
            tracing::error!(errors = ?decision.errors, "policy evaluation failed; denying");
        }
        req.extensions_mut().insert(decision.clone());
        if decision.allowed {
            tracing::info!(action = %call.method, policies = ?hit_ids(&decision), "allowed");
            return call_boxed(&mut self.inner, req);
        }
        self.metrics.count(Outcome::Refused);
        let mut text = decision.denial_text();
        if let Some(note) = ticket_note {
            text = format!("{text} ({note})");
        }
        if let Some(id) = req.extensions().get::<RequestId>() {
            text = format!("{text} (request {id})");
        }
        tracing::warn!(action = %call.method, policies = ?hit_ids(&decision), reason = %text, "denied");
        let fault_protocol = match protocol {
            Protocol::Soap => FaultProtocol::Soap,
            _ => FaultProtocol::Json,
        };
        let fault = VimFault::restricted_by_administrator(text);
        let mut response =
            fault_response(StatusCode::INTERNAL_SERVER_ERROR, fault_protocol, &fault);
        response.extensions_mut().insert(decision);
        Box::pin(async move { Ok(response) })
    }
}

impl<S> Decide<S> {
    fn decide(&self, req: &Request<ProxyBody>, protocol: Protocol, call: &GuardedCall) -> Decision {
        let policies = self.policies.current();
        let caller = req.extensions().get::<Caller>();
        if let Some(problem) = caller.and_then(|c| c.token_problem.clone()) {
            return Decision::refused(&call.method, policies.hash(), problem);
        }
        let principal = match caller.and_then(|c| c.user.clone().map(|name| (name, c))) {
            Some((name, caller)) => Principal::User {
                name,
                groups: caller.groups.clone(),
            },
            None => Principal::Unauthenticated,
        };
        let client_ip = req
            .extensions()
            .get::<ClientAddr>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |a| a.0.ip());
        let ticket = req
            .extensions()
            .get::<TicketFacts>()
            .and_then(|facts| facts.context.clone());
        let request = PolicyRequest {
            principal,
            action: call.method.clone(),
            resource: Resource::new(call.target.mo_type.clone(), call.target.value.clone()),
            context: policy_context(protocol, call, client_ip, ticket, SystemTime::now()),
        };
        policies.evaluate(&request)
    }
}

fn hit_ids(decision: &Decision) -> Vec<&str> {
    decision.determining.iter().map(|h| h.id.as_str()).collect()
}

/// The Cedar context of a guarded call (the schema's `CallContext` plus `body` where typed).
pub fn policy_context(
    protocol: Protocol,
    call: &GuardedCall,
    client_ip: IpAddr,
    ticket: Option<Value>,
    now: SystemTime,
) -> Value {
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = secs / 86_400;
    let mut context = json!({
        "protocol": match protocol { Protocol::Soap => "soap", _ => "json" },
        "indirect": call.route.is_indirect(),
        "route": call.route.name(),
        "method": call.via,
        "client_ip": client_ip.to_string(),
        "hour_utc": (secs % 86_400) / 3_600,
        // 1970-01-01 was a Thursday; 0 = Monday.
        "weekday": (days + 3) % 7,
    });
    let (body_key, body) = match &call.body {
        GuardedBody::EnterMaintenanceMode(body) => ("body", serde_json::to_value(body).ok()),
        GuardedBody::ChangeLockdownMode(body) => ("body", serde_json::to_value(body).ok()),
        GuardedBody::Effect(facts) => ("effect", serde_json::to_value(facts).ok()),
        GuardedBody::NoParameters | GuardedBody::Untyped => ("body", None),
    };
    let schedule = call
        .route
        .schedule()
        .and_then(|s| serde_json::to_value(s).ok());
    if let Some(object) = context.as_object_mut() {
        if let Some(body) = body {
            object.insert(body_key.into(), body);
        }
        if let Some(schedule) = schedule {
            object.insert("schedule".into(), schedule);
        }
        if let Some(ticket) = ticket {
            object.insert("ticket".into(), ticket);
        }
    }
    context
}
