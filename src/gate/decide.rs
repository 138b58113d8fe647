//! Decide: Cedar policies judge every guarded call. A denied call never reaches vCenter; the
//! client gets `RestrictedByAdministrator` in the protocol it spoke, naming the policy and why.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use http::Request;
use serde_json::{Value, json};

use crate::body::ProxyBody;
use crate::gate::error::GatewayError;
use crate::gate::facts::Facts;
use crate::gate::step::{Inner, Next, Step, StepResult};
use crate::policy::{Decision, PolicyRequest, Principal, Resource};
use crate::server::ClientAddr;
use crate::vsphere::operation::{GuardedBody, GuardedCall, Protocol};

/// Evaluates guarded calls under the request's policy snapshot; records the [`Decision`].
#[derive(Clone, Default)]
pub struct Decide;

impl Step for Decide {
    async fn handle<S: Inner>(
        &self,
        req: Request<ProxyBody>,
        facts: Arc<Facts>,
        next: Next<S>,
    ) -> StepResult {
        let Some(operation) = facts.operation() else {
            return next.run(req).await;
        };
        let Some(call) = &operation.guarded else {
            return next.run(req).await;
        };
        let decision = Arc::new(decide(&req, &facts, operation.protocol, call));
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
        if decision.approval.is_some() {
            // Only `@approval` forbids deny it: the approve step uses a granted approval or
            // files a request (and records the decision either way).
            tracing::info!(action = %call.method, policies = ?hit_ids(&decision), "needs approval");
            facts.set_approval_need(decision);
            return next.run(req).await;
        }
        facts.set_decision(decision.clone());
        if decision.allowed {
            tracing::info!(action = %call.method, policies = ?hit_ids(&decision), "allowed");
            return next.run(req).await;
        }
        tracing::warn!(action = %call.method, policies = ?hit_ids(&decision), "denied");
        Err(denied(&facts, decision))
    }

    fn applies_to(&self, _req: &Request<ProxyBody>, facts: &Facts) -> bool {
        facts.is_guarded()
    }
}

/// The refusal of a denied call: the decision's text and any ticket problem.
pub(crate) fn denied(facts: &Facts, decision: Arc<Decision>) -> GatewayError {
    let mut text = decision.denial_text();
    if let Some(note) = facts.ticket().and_then(|ticket| ticket.problem.as_deref()) {
        text = format!("{text} ({note})");
    }
    GatewayError::Denied { decision, text }
}

fn decide(
    req: &Request<ProxyBody>,
    facts: &Facts,
    protocol: Protocol,
    call: &GuardedCall,
) -> Decision {
    let policies = &facts.snapshot.policies;
    match policy_request(req, facts, protocol, call) {
        Ok(request) => policies.evaluate(&request),
        Err(refused) => *refused,
    }
}

/// The decision on a call whose approval `approval` (the schema's `Approval` record) was
/// granted: `@approval` forbids lifted, `context.approval` set.
pub(crate) fn decide_approved(
    req: &Request<ProxyBody>,
    facts: &Facts,
    protocol: Protocol,
    call: &GuardedCall,
    approval: Value,
) -> Decision {
    let policies = &facts.snapshot.policies;
    match policy_request(req, facts, protocol, call) {
        Ok(mut request) => {
            if let Some(context) = request.context.as_object_mut() {
                context.insert("approval".into(), approval);
            }
            policies.evaluate_approved(&request)
        }
        Err(refused) => *refused,
    }
}

/// The policy request of a guarded call, or the refusal when the caller's identity token failed.
fn policy_request(
    req: &Request<ProxyBody>,
    facts: &Facts,
    protocol: Protocol,
    call: &GuardedCall,
) -> Result<PolicyRequest, Box<Decision>> {
    let policies = &facts.snapshot.policies;
    let caller = facts.caller();
    if let Some(problem) = caller.and_then(|c| c.token_problem.clone()) {
        return Err(Box::new(Decision::refused(
            &call.method,
            policies.hash(),
            problem,
        )));
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
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |a| a.addr().ip());
    let ticket = facts.ticket().and_then(|ticket| ticket.context.clone());
    Ok(PolicyRequest {
        principal,
        action: call.method.clone(),
        resource: Resource::new(call.target.mo_type.clone(), call.target.value.clone()),
        context: policy_context(protocol, call, client_ip, ticket, SystemTime::now()),
    })
}

/// What the call asks for, canonically: its route, carrier method, typed body or effect
/// facts, and schedule (serde_json of the parsed values, never the raw bytes). An approval is
/// for exactly this.
pub fn canonical_call(call: &GuardedCall) -> Value {
    let (body_key, body) = body_of(call);
    json!({
        "route": call.route.name(),
        "method": call.via,
        body_key: body,
        "schedule": call.route.schedule().and_then(|s| serde_json::to_value(s).ok()),
    })
}

fn body_of(call: &GuardedCall) -> (&'static str, Option<Value>) {
    match &call.body {
        GuardedBody::EnterMaintenanceMode(body) => ("body", serde_json::to_value(body).ok()),
        GuardedBody::ChangeLockdownMode(body) => ("body", serde_json::to_value(body).ok()),
        GuardedBody::Effect(facts) => ("effect", serde_json::to_value(facts).ok()),
        GuardedBody::NoParameters | GuardedBody::Untyped => ("body", None),
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
        "protocol": match protocol {
            Protocol::Soap => "soap",
            Protocol::Rest => "rest",
            _ => "json",
        },
        "indirect": call.route.is_indirect(),
        "route": call.route.name(),
        "method": call.via,
        "client_ip": client_ip.to_string(),
        "hour_utc": (secs % 86_400) / 3_600,
        // 1970-01-01 was a Thursday; 0 = Monday.
        "weekday": (days + 3) % 7,
    });
    let (body_key, body) = body_of(call);
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
