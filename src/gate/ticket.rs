//! Ticket: the change ticket a guarded call carries, verified against the call's action and
//! target, as facts for the policy context. The raw ticket is removed before forwarding and
//! never logged.

use std::sync::Arc;
use std::time::SystemTime;

use http::{HeaderName, Request};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::approval::ChangeControl;
use crate::body::ProxyBody;
use crate::gate::facts::Facts;
use crate::gate::step::{Inner, Next, Step, StepResult};
use crate::ticket::{ChangeSystem, TicketCheck, TicketKind, TicketTarget, TicketVerifier};
use crate::vsphere::operation::GuardedCall;

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
    /// The ticket claim that gave a call without a ticket header its ticket (`clm-…`).
    pub claim: Option<String>,
}

/// Verifies the change ticket of guarded calls and strips the ticket header from every request.
#[derive(Clone)]
pub struct Ticket {
    verifier: Arc<TicketVerifier>,
    header: HeaderName,
    change_system: Option<Arc<ChangeSystem>>,
    claims: Option<ChangeControl>,
}

impl Ticket {
    /// Also gives guarded calls without a ticket header the ticket of the caller's covering
    /// claim, looked up in `control`'s store.
    pub fn with_claims(mut self, control: ChangeControl) -> Self {
        self.claims = Some(control);
        self
    }

    /// Tickets read from `header` and checked by `verifier` (and, when configured, in the
    /// change system); which host an object belongs to comes from the entities of the request's
    /// policy snapshot.
    pub fn new(
        verifier: Arc<TicketVerifier>,
        header: HeaderName,
        change_system: Option<Arc<ChangeSystem>>,
    ) -> Self {
        Self {
            verifier,
            header,
            change_system,
            claims: None,
        }
    }

    /// Takes coverage away from a verified ticket the change system does not authorise.
    async fn check_change_system(&self, facts: &mut TicketFacts, call: &GuardedCall, set: &Facts) {
        let (Some(change_system), Some(id), Some(context)) = (
            &self.change_system,
            facts.id.clone(),
            facts.context.as_mut(),
        ) else {
            return;
        };
        let verdict = change_system
            .check_target(
                &id,
                &set.snapshot.policies,
                (&call.target.mo_type, &call.target.value),
                &call.method,
                SystemTime::now(),
            )
            .await;
        verdict.apply_to(context);
        if !verdict.authorises() {
            facts.problem = verdict.reason.clone().or(facts.problem.take());
        }
    }

    /// What the ticket header values `raw` say about `call`.
    fn check(&self, raw: &[String], call: &GuardedCall, facts: &Facts) -> TicketFacts {
        let [one] = raw else {
            return TicketFacts {
                problem: Some(format!(
                    "{} change tickets sent; send exactly one",
                    raw.len()
                )),
                ..TicketFacts::default()
            };
        };
        let target = TicketTarget {
            mo_id: call.target.value.clone(),
            host_name: None,
            hosts: facts
                .snapshot
                .policies
                .hosts_of(&call.target.mo_type, &call.target.value),
        };
        let check = self
            .verifier
            .verify(one, &call.method, &target, SystemTime::now());
        TicketFacts {
            raw_digest: Sha256::digest(one.as_bytes()).into(),
            ..facts_of(check)
        }
    }
}

impl Step for Ticket {
    async fn handle<S: Inner>(
        &self,
        mut req: Request<ProxyBody>,
        facts: Arc<Facts>,
        next: Next<S>,
    ) -> StepResult {
        let headers = req.headers_mut();
        if headers.contains_key(&self.header) {
            let raw: Vec<String> = headers
                .get_all(&self.header)
                .iter()
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .collect();
            headers.remove(&self.header);
            if let Some(call) = facts.operation().and_then(|op| op.guarded.as_ref()) {
                let mut ticket = self.check(&raw, call, &facts);
                Box::pin(self.check_change_system(&mut ticket, call, &facts)).await;
                facts.set_ticket(ticket);
            }
        } else if let (Some(claims), Some(call), Some(user)) = (
            &self.claims,
            facts.operation().and_then(|op| op.guarded.as_ref()),
            facts.caller().and_then(|c| c.user.as_deref()),
        ) {
            // No header: the caller's ticket claim, if one covers this call.
            if let Some(mut ticket) = Box::pin(claimed(claims, user, call, &facts)).await {
                Box::pin(self.check_change_system(&mut ticket, call, &facts)).await;
                facts.set_ticket(ticket);
            }
        }
        next.run(req).await
    }

    fn applies_to(&self, req: &Request<ProxyBody>, facts: &Facts) -> bool {
        facts.is_guarded() || req.headers().contains_key(&self.header)
    }
}

/// The ticket of `user`'s claim covering `call` (its target's hosts, or the target itself), as
/// `kind = "claimed"`; a store failure is a problem shown with the denial (fail closed: no ticket).
async fn claimed(
    claims: &ChangeControl,
    user: &str,
    call: &GuardedCall,
    facts: &Facts,
) -> Option<TicketFacts> {
    let mut hosts = facts
        .snapshot
        .policies
        .hosts_of(&call.target.mo_type, &call.target.value);
    hosts.push(call.target.value.clone());
    match claims
        .covering_claim(user, &call.method, &hosts, SystemTime::now())
        .await
    {
        Ok(Some(claim)) => {
            let mut context = claim.ticket_context.clone();
            if let Some(record) = context.as_object_mut() {
                record.insert("kind".into(), "claimed".into());
                record.insert("claim".into(), claim.id.clone().into());
                record.insert("claimed_kind".into(), claim.ticket_kind.clone().into());
                // The claim covers this host and action: checked just now.
                record.insert("covers_target".into(), true.into());
                record.insert("covers_action".into(), true.into());
            }
            tracing::debug!(claim = %claim.id, ticket = %claim.ticket_id, "ticket from a claim");
            Some(TicketFacts {
                context: Some(context),
                problem: None,
                id: Some(claim.ticket_id),
                kind: None,
                raw_digest: [0; 32],
                claim: Some(claim.id),
            })
        }
        Ok(None) => None,
        Err(err) => Some(TicketFacts {
            problem: Some(format!(
                "vcguard cannot read ticket claims ({err}); send the ticket in a header or try again later"
            )),
            ..TicketFacts::default()
        }),
    }
}

fn facts_of(check: TicketCheck) -> TicketFacts {
    let problem = check.reason_for_policy();
    match check {
        TicketCheck::Valid(ticket) => TicketFacts {
            context: Some(ticket.to_context()),
            problem,
            id: Some(ticket.id.clone()),
            kind: Some(ticket.kind),
            raw_digest: [0; 32],
            claim: None,
        },
        TicketCheck::Invalid { id, kind, .. } => TicketFacts {
            context: None,
            problem,
            id,
            kind: Some(kind),
            raw_digest: [0; 32],
            claim: None,
        },
    }
}
