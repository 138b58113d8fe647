//! Approve: a guarded call that only `@approval("group")` policies deny (decide hands it on
//! with the denial as its "approval need") either uses an approval granted for exactly this
//! call — same requester, action, target and canonical parsed body — or files a pending
//! approval request and is refused with its id, the group and the command that approves it.
//! Calls without an approval need pass straight through: no store access.

use std::sync::Arc;
use std::time::SystemTime;

use http::{Request, header};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::approval::ChangeControl;
use crate::body::ProxyBody;
use crate::gate::decide::{canonical_call, decide_approved, denied};
use crate::gate::error::GatewayError;
use crate::gate::facts::Facts;
use crate::gate::request_id::request_id_of;
use crate::gate::step::{Inner, Next, Step, StepResult};
use crate::policy::Decision;
use crate::state::{ApprovalKey, NewApproval, format_rfc3339};
use crate::vsphere::operation::{GuardedBody, GuardedCall};

/// Turns "needs approval" into a pass (with a usable approval) or a pending request.
#[derive(Clone)]
pub struct Approve {
    control: ChangeControl,
}

impl Approve {
    /// Approvals kept and recorded by `control`.
    pub fn new(control: ChangeControl) -> Self {
        Self { control }
    }
}

impl Step for Approve {
    async fn handle<S: Inner>(
        &self,
        req: Request<ProxyBody>,
        facts: Arc<Facts>,
        next: Next<S>,
    ) -> StepResult {
        let Some(need) = facts.approval_need().cloned() else {
            return next.run(req).await;
        };
        let (Some(operation), Some(user)) = (
            facts.operation(),
            facts.caller().and_then(|c| c.user.clone()),
        ) else {
            facts.set_decision(need.clone());
            return Err(denied(&facts, need));
        };
        let Some(call) = operation.guarded.as_ref() else {
            facts.set_decision(need.clone());
            return Err(denied(&facts, need));
        };
        let key = approval_key(&user, call);
        let request_id = request_id_of(&req).to_owned();
        let now = SystemTime::now();
        let unavailable = |facts: &Facts, err: &dyn std::fmt::Display| {
            facts.set_decision(need.clone());
            GatewayError::StateUnavailable {
                decision: need.clone(),
                cause: err.to_string(),
            }
        };
        match Box::pin(self.control.use_approval(&key, &request_id, now)).await {
            Err(err) => return Err(unavailable(&facts, &err)),
            Ok(Some(approval)) => {
                let record = json!({
                    "id": approval.id,
                    "approved": true,
                    "approver": approval.decided_by.clone().unwrap_or_default(),
                });
                let decision = Arc::new(decide_approved(
                    &req,
                    &facts,
                    operation.protocol,
                    call,
                    record,
                ));
                facts.set_approval(approval.id.clone());
                facts.set_decision(decision.clone());
                if decision.allowed {
                    tracing::info!(action = %call.method, approval = %approval.id, "allowed with an approval");
                    return next.run(req).await;
                }
                tracing::warn!(action = %call.method, approval = %approval.id, "denied despite an approval");
                return Err(denied(&facts, decision));
            }
            Ok(None) => {}
        }
        let Some(wanted) = need.approval.as_ref() else {
            facts.set_decision(need.clone());
            return Err(denied(&facts, need));
        };
        let first = wanted.policies.first();
        let hosts = facts
            .snapshot
            .policies
            .hosts_of(&call.target.mo_type, &call.target.value);
        let new = NewApproval {
            key,
            group: wanted.group.clone(),
            policy: first.map(|p| p.id.clone()).unwrap_or_default(),
            reason: first.and_then(|p| p.reason.clone()),
            summary: summary(call, &hosts),
        };
        let approval = match Box::pin(self.control.request_approval(new, &request_id, now)).await {
            Ok(approval) => approval,
            Err(err) => return Err(unavailable(&facts, &err)),
        };
        facts.set_approval(approval.id.clone());
        facts.set_decision(need.clone());
        let text = approval_text(
            &need,
            &approval.id,
            &wanted.group,
            &gateway_of(&req),
            approval.expires_at,
        );
        tracing::warn!(action = %call.method, approval = %approval.id, group = %wanted.group, "approval required; request pending");
        Err(GatewayError::ApprovalRequired {
            decision: need,
            text,
        })
    }

    fn applies_to(&self, _req: &Request<ProxyBody>, facts: &Facts) -> bool {
        facts.approval_need().is_some()
    }
}

/// The approval key of `user`'s `call`.
pub fn approval_key(user: &str, call: &GuardedCall) -> ApprovalKey {
    let canonical = canonical_call(call).to_string();
    let digest = Sha256::digest(canonical.as_bytes());
    ApprovalKey {
        requester: user.to_owned(),
        action: call.method.clone(),
        target: format!("{}:{}", call.target.mo_type, call.target.value),
        body_hash: hex::encode(digest),
    }
}

/// One line for people: `ChangeLockdownMode lockdownDisabled on HostAccessManager ham-21 (host-21)`.
fn summary(call: &GuardedCall, hosts: &[String]) -> String {
    let detail = match &call.body {
        GuardedBody::ChangeLockdownMode(body) => serde_json::to_value(body)
            .ok()
            .and_then(|v| v["mode"].as_str().map(|m| format!(" {m}"))),
        _ => None,
    }
    .unwrap_or_default();
    let on_hosts = if hosts.is_empty() {
        String::new()
    } else {
        format!(" ({})", hosts.join(", "))
    };
    let route = if call.route.is_indirect() {
        format!(" via {}", call.route.name())
    } else {
        String::new()
    };
    format!(
        "{}{detail} on {} {}{on_hosts}{route}",
        call.method, call.target.mo_type, call.target.value
    )
}

/// The refusal text of a call waiting for approval.
fn approval_text(
    decision: &Decision,
    id: &str,
    group: &str,
    gateway: &str,
    expires_at: SystemTime,
) -> String {
    format!(
        "{}. Approval request {id} is pending: a member of {group} other than you must approve it \
         (vcguard approval approve {id} --gateway https://{gateway}, or the console at \
         https://{gateway}/vcguard/ui/); then make the same call again. The request expires at {}.",
        decision.denial_text(),
        format_rfc3339(expires_at)
    )
}

/// `host[:port]` the client reached the gateway at (the `Host` header or the URI's authority).
fn gateway_of(req: &Request<ProxyBody>) -> String {
    req.headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| req.uri().authority().map(|a| a.to_string()))
        .filter(|h| {
            !h.is_empty()
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
        })
        .unwrap_or_else(|| "<gateway>".to_owned())
}
