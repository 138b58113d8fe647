//! The engine's answer for one call, its operator-facing text, and `explain`.

use std::fmt::Write as _;

use serde::Serialize;

use super::engine::PolicySet;
use super::request::PolicyRequest;

/// A policy that matched, with its `@reason` text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicyHit {
    /// The policy's `@id`.
    pub id: String,
    /// The policy's `@reason`, when it has one.
    pub reason: Option<String>,
}

/// A denial that an approval can lift: only `@approval("group")` forbids denied the call and
/// an enforced permit matched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApprovalNeed {
    /// The group whose members may approve (the policies' `@approval`).
    pub group: String,
    /// The `@approval` forbids that matched.
    pub policies: Vec<PolicyHit>,
}

/// The engine's decision on one guarded call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// True only when an enforced permit matched, no enforced forbid matched and nothing erred.
    pub allowed: bool,
    /// Set on a deny that an approval of this group can lift ("needs approval").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval: Option<ApprovalNeed>,
    /// The vim method decided on (used in the texts).
    pub action: String,
    /// Deny: the forbids that matched (empty when no permit matched); allow: the permits.
    pub determining: Vec<PolicyHit>,
    /// Monitor-mode forbids that matched or erred (would deny if enforced); never block.
    pub monitor_hits: Vec<PolicyHit>,
    /// Request-validation and evaluation errors of the enforced policies; any error denies.
    pub errors: Vec<String>,
    /// Evaluation errors of monitor-mode policies (reported only; they never block).
    pub monitor_errors: Vec<String>,
    /// The hash of the policy set that decided.
    pub policy_set_hash: String,
    /// A gateway check that refused the call before any policy ran (e.g. an identity token
    /// that does not verify); always a deny.
    pub refusal: Option<String>,
}

impl Decision {
    /// A deny caused by errors, before any policy was evaluated.
    pub(crate) fn error(action: &str, hash: &str, errors: Vec<String>) -> Self {
        Self {
            allowed: false,
            approval: None,
            action: action.to_string(),
            determining: Vec::new(),
            monitor_hits: Vec::new(),
            errors,
            monitor_errors: Vec::new(),
            policy_set_hash: hash.to_string(),
            refusal: None,
        }
    }

    /// A deny by a gateway check, before any policy was evaluated.
    pub fn refused(action: &str, hash: &str, reason: String) -> Self {
        Self {
            refusal: Some(reason),
            ..Self::error(action, hash, Vec::new())
        }
    }

    /// True when the call is refused because no enforced permit matched (and nothing erred).
    pub fn no_permit(&self) -> bool {
        !self.allowed
            && self.errors.is_empty()
            && self.determining.is_empty()
            && self.refusal.is_none()
    }

    /// True when a monitor-mode policy would have denied this call.
    pub fn would_deny(&self) -> bool {
        !self.monitor_hits.is_empty()
    }

    /// The text shown to the client for a refused call (for an allowed one, which permits allowed it).
    pub fn denial_text(&self) -> String {
        if let Some(reason) = &self.refusal {
            return format!("Blocked by vcguard: {reason}");
        }
        if !self.errors.is_empty() {
            return format!(
                "Blocked by vcguard: policy evaluation failed ({})",
                self.errors.join("; ")
            );
        }
        if self.allowed {
            return format!("Allowed by vcguard {}", hits_text(&self.determining));
        }
        if self.determining.is_empty() {
            return format!("Blocked by vcguard: no policy permits {}", self.action);
        }
        format!("Blocked by vcguard {}", hits_text(&self.determining))
    }
}

/// `policy a: reason a; policy b` — the policies and their reasons, in one line.
fn hits_text(hits: &[PolicyHit]) -> String {
    hits.iter()
        .map(|hit| match &hit.reason {
            Some(reason) => format!("policy {}: {reason}", hit.id),
            None => format!("policy {}", hit.id),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Evaluates `request` against `set` and describes the outcome for a person, over several lines:
/// the decision, the determining policies with their reasons, monitor hits and errors.
pub fn explain(set: &PolicySet, request: &PolicyRequest) -> String {
    let decision = set.evaluate(request);
    let mut out = String::new();
    let verdict = if decision.allowed { "ALLOW" } else { "DENY" };
    let _ = writeln!(out, "decision:  {verdict}");
    let _ = writeln!(out, "action:    {}", request.action);
    let _ = writeln!(out, "principal: {}", request.principal);
    let resource_type = set.resource_type_name(&request.resource.mo_type);
    if resource_type == request.resource.mo_type {
        let _ = writeln!(out, "resource:  {}", request.resource);
    } else {
        let _ = writeln!(
            out,
            "resource:  {} (evaluated as {resource_type})",
            request.resource
        );
    }
    let _ = writeln!(out, "policy set: {}", decision.policy_set_hash);
    if decision.allowed {
        let _ = writeln!(out, "permitted by:");
        write_hits(&mut out, &decision.determining);
    } else if !decision.errors.is_empty() {
        let _ = writeln!(out, "denied because evaluation failed (fail closed)");
        if !decision.determining.is_empty() {
            let _ = writeln!(out, "forbidden also by:");
            write_hits(&mut out, &decision.determining);
        }
    } else if decision.determining.is_empty() {
        let _ = writeln!(out, "denied because no policy permits {}", request.action);
    } else {
        let _ = writeln!(out, "forbidden by:");
        write_hits(&mut out, &decision.determining);
        if let Some(need) = &decision.approval {
            let _ = writeln!(
                out,
                "needs approval: a member of {} (not the caller) can approve this call; it then passes",
                need.group
            );
        }
    }
    let _ = writeln!(out, "monitor (would deny):");
    if decision.monitor_hits.is_empty() {
        let _ = writeln!(out, "  (none)");
    } else {
        write_hits(&mut out, &decision.monitor_hits);
    }
    let _ = writeln!(out, "errors:");
    if decision.errors.is_empty() && decision.monitor_errors.is_empty() {
        let _ = writeln!(out, "  (none)");
    }
    for error in &decision.errors {
        let _ = writeln!(out, "  - {error}");
    }
    for error in &decision.monitor_errors {
        let _ = writeln!(out, "  - (monitor) {error}");
    }
    let _ = write!(out, "client text: {}", decision.denial_text());
    out
}

fn write_hits(out: &mut String, hits: &[PolicyHit]) {
    for hit in hits {
        let _ = match &hit.reason {
            Some(reason) => writeln!(out, "  - {}: {reason}", hit.id),
            None => writeln!(out, "  - {}", hit.id),
        };
    }
}
