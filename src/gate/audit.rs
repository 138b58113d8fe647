//! Audit: every request leaves records in the tamper-evident log, however it ends.
//!
//! [`Audit`] sits just inside the rescue, so it sees every ending: vCenter's answer (an outcome
//! record, written before the answer goes back), a refusal by any later step (a decision record
//! for policy denials, an outcome record with the reason and the error's name for every refusal,
//! panic or upstream failure), a client that goes away before the answer (an `aborted` outcome),
//! and an answer whose body breaks off on its way out (a second outcome with the bytes actually
//! sent). [`WriteAhead`] sits just before forwarding: an allowed guarded call's decision record
//! is written and fsynced first; if that fails the call is refused and never reaches vCenter.
//! Secrets never enter a record: sessions and tickets appear as keyed hashes only.

use std::sync::Arc;
use std::time::Instant;

use http::{Request, Response, header};
use tower_http::request_id::RequestId;

use crate::audit::{
    AuditError, AuditEvent, AuditLog, CallRecord, OutcomeRecord, OutcomeWrite,
    TicketKind as AuditTicketKind, TicketRef, Verdict,
};
use crate::body::{ProxyBody, collect_capped, full};
use crate::gate::error::GatewayError;
use crate::gate::facts::Facts;
use crate::gate::request_id::id_text;
use crate::gate::step::{Inner, Next, Step, StepResult};
use crate::gate::watch_body::{BodyEnd, watch_body};
use crate::policy::Decision;
use crate::server::ClientAddr;
use crate::ticket::TicketKind;
use crate::vsphere::credentials::Credential;
use crate::vsphere::operation::{Protocol, Route};

/// Largest answer to a guarded call read to find the task it started.
const TASK_ANSWER_CAP: u64 = 64 * 1024;

/// Writes the records of every request: decisions of denied calls and every call's outcome.
#[derive(Clone)]
pub struct Audit {
    log: AuditLog,
}

impl Audit {
    /// Records into `log`.
    pub fn new(log: AuditLog) -> Self {
        Self { log }
    }
}

impl Step for Audit {
    async fn handle<S: Inner>(
        &self,
        req: Request<ProxyBody>,
        facts: Arc<Facts>,
        next: Next<S>,
    ) -> StepResult {
        let started = Instant::now();
        // Nothing is classified yet: this refuses every call under `on_full = "refuse_all"`;
        // guarded calls are refused by `WriteAhead` when their decision record cannot be written.
        if self.log.refuses(false) {
            return Err(GatewayError::AuditUnavailable);
        }
        let _in_progress = self.log.call_in_progress();
        let bytes_in = content_length(req.headers());
        // Written if the client goes away (the future is dropped) before the call ends.
        let mut pending = AbortRecord {
            log: self.log.clone(),
            facts: facts.clone(),
            request: RequestFacts::of(&req),
            started,
            armed: true,
        };
        let result = next.run(req).await;
        pending.armed = false;
        let response = match result {
            Ok(response) => response,
            Err(error) => {
                let call = call_record(&self.log, &facts, &pending.request);
                Box::pin(self.record_refusal(call, &error, bytes_in, started)).await;
                return Err(error);
            }
        };
        let (response, task) = if facts.is_guarded() {
            Box::pin(task_of(response)).await
        } else {
            (response, None)
        };
        let call = call_record(&self.log, &facts, &pending.request);
        let outcome = OutcomeRecord {
            status: Some(response.status().as_u16()),
            task,
            bytes_in,
            bytes_out: http_body::Body::size_hint(response.body()).exact(),
            latency_ms: Some(started.elapsed().as_millis() as u64),
            ..OutcomeRecord::new(call)
        };
        // By default on its way to the OS before the answer's head leaves: a crash of the gateway
        // cannot lose it. Queued instead under `outcome_write = "batched"` and while the log is
        // failing (then written, or counted as dropped and noted in a gap record, when space
        // returns).
        let queued = !facts.is_guarded() && self.log.outcome_write() == OutcomeWrite::Batched;
        let written = if queued || self.log.refuses(true) {
            Box::pin(self.log.write(AuditEvent::Outcome(outcome))).await
        } else {
            self.log
                .write_committed(AuditEvent::Outcome(outcome))
                .await
                .map(|_| ())
        };
        if let Err(err) = written {
            log_unwritten(&err);
        }
        let broken_off = BrokenOff {
            log: self.log.clone(),
            facts,
            request: pending.request.clone(),
            status: response.status().as_u16(),
            bytes_in,
            started,
        };
        Ok(response.map(|body| watch_body(body, move |end| broken_off.record(end))))
    }
}

impl Audit {
    async fn record_refusal(
        &self,
        mut call: CallRecord,
        error: &GatewayError,
        bytes_in: Option<u64>,
        started: Instant,
    ) {
        if error.decision().is_some() {
            call.reason = Some(match error {
                GatewayError::Denied { text, .. } | GatewayError::ApprovalRequired { text, .. } => {
                    text.clone()
                }
                other => other.to_string(),
            });
            if let Err(err) = self.log.write(AuditEvent::Decision(call.clone())).await {
                log_unwritten(&err);
            }
        } else {
            call.reason = Some(error.to_string());
        }
        let outcome = OutcomeRecord {
            status: Some(error.status().as_u16()),
            fault: Some(error.fault_type().as_str().to_owned()),
            bytes_in,
            latency_ms: Some(started.elapsed().as_millis() as u64),
            error: (!matches!(
                error,
                GatewayError::Denied { .. } | GatewayError::ApprovalRequired { .. }
            ))
            .then(|| error.name().to_owned()),
            ..OutcomeRecord::new(call)
        };
        if let Err(err) = self.log.write(AuditEvent::Outcome(outcome)).await {
            log_unwritten(&err);
        }
    }
}

/// A record the log did not take. While the log is failing the writer says so once; a line per
/// request would flood the logs.
fn log_unwritten(err: &AuditError) {
    match err {
        AuditError::Dropped { .. } | AuditError::Unavailable { .. } => {
            tracing::debug!(error = %err, "audit: record not written");
        }
        _ => tracing::error!(error = %err, "audit: record not written"),
    }
}

/// What a second outcome needs, for an answer whose body does not reach the client whole.
struct BrokenOff {
    log: AuditLog,
    facts: Arc<Facts>,
    request: RequestFacts,
    status: u16,
    bytes_in: Option<u64>,
    started: Instant,
}

impl BrokenOff {
    /// Writes the second outcome unless the body went out whole.
    fn record(self, end: BodyEnd) {
        let error = match end {
            BodyEnd::Complete { .. } => return,
            BodyEnd::Failed { .. } => "upstream_reset",
            BodyEnd::Dropped { .. } => "client_aborted",
        };
        let outcome = OutcomeRecord {
            status: Some(self.status),
            bytes_in: self.bytes_in,
            bytes_out: Some(end.bytes()),
            latency_ms: Some(self.started.elapsed().as_millis() as u64),
            error: Some(error.to_owned()),
            ..OutcomeRecord::new(call_record(&self.log, &self.facts, &self.request))
        };
        submit_detached(&self.log, outcome);
    }
}

/// Writes `outcome` from a place that cannot wait for the log (a drop).
fn submit_detached(log: &AuditLog, outcome: OutcomeRecord) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        tracing::error!("audit: no runtime to write an outcome record");
        return;
    };
    let log = log.clone();
    runtime.spawn(async move {
        if let Err(err) = log.write(AuditEvent::Outcome(outcome)).await {
            log_unwritten(&err);
        }
    });
}

/// The outcome of a call whose client went away before it ended.
struct AbortRecord {
    log: AuditLog,
    facts: Arc<Facts>,
    request: RequestFacts,
    started: Instant,
    armed: bool,
}

impl Drop for AbortRecord {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let outcome = OutcomeRecord {
            latency_ms: Some(self.started.elapsed().as_millis() as u64),
            error: Some("client_aborted".to_owned()),
            ..OutcomeRecord::new(call_record(&self.log, &self.facts, &self.request))
        };
        submit_detached(&self.log, outcome);
    }
}

/// Makes an allowed guarded call's decision record durable before the call is forwarded.
#[derive(Clone)]
pub struct WriteAhead {
    log: AuditLog,
}

impl WriteAhead {
    /// Durable decision records into `log`.
    pub fn new(log: AuditLog) -> Self {
        Self { log }
    }
}

impl Step for WriteAhead {
    async fn handle<S: Inner>(
        &self,
        req: Request<ProxyBody>,
        facts: Arc<Facts>,
        next: Next<S>,
    ) -> StepResult {
        if facts.decision().is_some() {
            let record = call_record(&self.log, &facts, &RequestFacts::of(&req));
            if let Err(err) = Box::pin(self.log.write_durable(AuditEvent::Decision(record))).await {
                tracing::error!(error = %err, "audit log unwritable: refusing the guarded call");
                return Err(GatewayError::AuditUnavailable);
            }
        }
        next.run(req).await
    }

    fn applies_to(&self, _req: &Request<ProxyBody>, facts: &Facts) -> bool {
        facts.decision().is_some()
    }
}

/// What the records need of the request itself (it is gone when the call ends).
#[derive(Clone)]
struct RequestFacts {
    request_id: Option<RequestId>,
    client: Option<ClientAddr>,
}

impl RequestFacts {
    fn of(req: &Request<ProxyBody>) -> Self {
        Self {
            request_id: req.extensions().get::<RequestId>().cloned(),
            client: req.extensions().get::<ClientAddr>().cloned(),
        }
    }
}

/// The facts of a call every record carries, without secrets.
fn call_record(log: &AuditLog, facts: &Facts, request: &RequestFacts) -> CallRecord {
    let operation = facts.operation();
    let caller = facts.caller();
    let guarded = operation.and_then(|op| op.guarded.as_ref());
    let target = guarded
        .map(|g| &g.target)
        .or_else(|| operation.and_then(|op| op.target.as_ref()));
    let session = match facts.credential() {
        Some(Credential::Session(token)) => Some(log.keyed_hash(token.as_bytes())),
        _ => None,
    };
    let ticket = facts.ticket();
    let call = CallRecord {
        request_id: id_text(request.request_id.as_ref()).to_owned(),
        client: request.client.as_ref().map(|addr| addr.text().to_owned()),
        protocol: operation.map(|op| protocol_name(op.protocol).to_owned()),
        method: guarded
            .map(|g| g.method.clone())
            .or_else(|| operation.and_then(|op| op.method_name().map(str::to_owned))),
        mo_type: target.map(|t| t.mo_type.clone()),
        mo_id: target.map(|t| t.value.clone()),
        route: guarded.map(|g| route_name(&g.route).to_owned()),
        principal: caller.and_then(|c| c.user.clone()),
        groups: caller.map(|c| c.groups.clone()).unwrap_or_default(),
        session,
        ticket: ticket.and_then(|facts| {
            if facts.claim.is_some() {
                return Some(TicketRef {
                    id: facts.id.clone()?,
                    kind: AuditTicketKind::Claimed,
                    hash: None,
                });
            }
            let kind = match facts.kind? {
                TicketKind::Pattern => AuditTicketKind::Pattern,
                TicketKind::Signed => AuditTicketKind::Signed,
            };
            Some(log.redactor().ticket(
                facts.id.as_deref().unwrap_or(""),
                kind,
                facts.raw_digest.as_slice(),
            ))
        }),
        ticket_problem: ticket.and_then(|facts| facts.problem.clone()),
        claim: ticket.and_then(|facts| facts.claim.clone()),
        approval: facts.approval().map(str::to_owned),
        looked_up: facts.looked_up().map(|found| found.summary.clone()),
        ..CallRecord::default()
    };
    with_decision(call, facts.decision().map(Arc::as_ref))
}

fn with_decision(mut call: CallRecord, decision: Option<&Decision>) -> CallRecord {
    if let Some(decision) = decision {
        call.decision = Some(if decision.allowed {
            Verdict::Allow
        } else {
            Verdict::Deny
        });
        call.policies = decision.determining.iter().map(|h| h.id.clone()).collect();
        call.monitor = decision.monitor_hits.iter().map(|h| h.id.clone()).collect();
        call.reason = (!decision.allowed).then(|| decision.denial_text());
        call.policy_set = Some(decision.policy_set_hash.clone());
    }
    call
}

fn protocol_name(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::VimJson => "json",
        Protocol::Soap => "soap",
        Protocol::Rest => "rest",
        Protocol::Other => "other",
    }
}

fn route_name(route: &Route) -> &'static str {
    route.name()
}

fn content_length(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// Reads a small answer to a guarded call for the task it started (`task-101`), and puts it back.
async fn task_of(response: Response<ProxyBody>) -> (Response<ProxyBody>, Option<String>) {
    let small = http_body::Body::size_hint(response.body())
        .exact()
        .is_some_and(|len| len <= TASK_ANSWER_CAP);
    if !small || !response.status().is_success() {
        return (response, None);
    }
    let (parts, body) = response.into_parts();
    match collect_capped(body, TASK_ANSWER_CAP as usize).await {
        Ok(bytes) => {
            let task = find_task(&bytes);
            (Response::from_parts(parts, full(bytes)), task)
        }
        Err(err) => {
            tracing::warn!(error = %err, "answer to a guarded call broke off");
            (Response::from_parts(parts, crate::body::empty()), None)
        }
    }
}

/// The Task moId in a VI/JSON (`"type":"Task","value":"task-1"`) or SOAP (`type="Task">task-1<`) answer.
fn find_task(body: &[u8]) -> Option<String> {
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) {
        return (value["type"] == "Task")
            .then(|| value["value"].as_str().map(str::to_owned))
            .flatten();
    }
    let text = std::str::from_utf8(body).ok()?;
    let start = text.find("type=\"Task\">")? + "type=\"Task\">".len();
    let end = text[start..].find('<')? + start;
    Some(text[start..end].to_owned())
}

#[cfg(test)]
mod tests {
    use super::find_task;

    #[test]
    fn tasks_are_found_in_both_protocols() {
        assert_eq!(
            find_task(
                br#"{"_typeName":"ManagedObjectReference","type":"Task","value":"task-101"}"#
            ),
            Some("task-101".into())
        );
        assert_eq!(
            find_task(br#"<EnterMaintenanceMode_TaskResponse xmlns="urn:vim25"><returnval type="Task">task-7</returnval></EnterMaintenanceMode_TaskResponse>"#),
            Some("task-7".into())
        );
        assert_eq!(find_task(b"{}"), None);
    }
}
