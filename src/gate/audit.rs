//! Audit: every call leaves records in the tamper-evident log.
//!
//! [`WriteAhead`] sits just before forwarding: an allowed guarded call's decision record is
//! written and fsynced first, and if that fails the call is refused (503) and never reaches
//! vCenter. [`Audit`] wraps the decision step: it writes the decision record of a denied call and
//! the outcome record of every call. Secrets never enter a record: sessions and tickets appear
//! as keyed hashes only.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use futures_util::future::BoxFuture;
use http::{Request, Response, StatusCode, header};
use tower::{Layer, Service};

use crate::audit::{
    AuditEvent, AuditLog, CallRecord, OutcomeRecord, TicketKind as AuditTicketKind, Verdict,
};
use crate::body::{ProxyBody, collect_capped, full};
use crate::gate::call_boxed;
use crate::gate::request_id::RequestId;
use crate::gate::respond::{GatewayFault, fault_response};
use crate::gate::ticket::TicketFacts;
use crate::identity::Caller;
use crate::policy::Decision;
use crate::server::ClientAddr;
use crate::ticket::TicketKind;
use crate::vsphere::credentials::{Credential, single_credential};
use crate::vsphere::fault::{FaultProtocol, VimFault};
use crate::vsphere::operation::{Operation, Protocol, Route};

/// Largest answer to a guarded call read to find the task it started.
const TASK_ANSWER_CAP: u64 = 64 * 1024;

/// Builds [`Audit`].
#[derive(Clone)]
pub struct AuditLayer {
    log: AuditLog,
}

impl AuditLayer {
    /// Outcome (and denial) records into `log`.
    pub fn new(log: AuditLog) -> Self {
        Self { log }
    }
}

impl<S> Layer<S> for AuditLayer {
    type Service = Audit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Audit {
            inner,
            log: self.log.clone(),
        }
    }
}

/// Writes a denied call's decision record and every call's outcome record.
#[derive(Clone)]
pub struct Audit<S> {
    inner: S,
    log: AuditLog,
}

impl<S> Service<Request<ProxyBody>> for Audit<S>
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

    fn call(&mut self, req: Request<ProxyBody>) -> Self::Future {
        let started = Instant::now();
        let call = call_record(&self.log, &req);
        let guarded = req
            .extensions()
            .get::<Operation>()
            .is_some_and(Operation::is_guarded);
        let bytes_in = content_length(req.headers());
        let log = self.log.clone();
        let response = call_boxed(&mut self.inner, req);
        Box::pin(async move {
            let response = response.await?;
            let decision = response.extensions().get::<Arc<Decision>>().cloned();
            let call = with_decision(call, decision.as_deref());
            if decision.as_deref().is_some_and(|d| !d.allowed)
                && let Err(err) = log.write(AuditEvent::Decision(call.clone())).await
            {
                tracing::error!(error = %err, "audit: the denial's decision record was not written");
            }
            let (response, task) = if guarded {
                task_of(response).await
            } else {
                (response, None)
            };
            let outcome = OutcomeRecord {
                call,
                status: Some(response.status().as_u16()),
                fault: response
                    .extensions()
                    .get::<GatewayFault>()
                    .map(|f| f.0.clone()),
                task,
                bytes_in,
                bytes_out: http_body::Body::size_hint(response.body()).exact(),
                latency_ms: Some(started.elapsed().as_millis() as u64),
                error: None,
            };
            if let Err(err) = log.write(AuditEvent::Outcome(outcome)).await {
                tracing::error!(error = %err, "audit: outcome record not written");
            }
            Ok(response)
        })
    }
}

/// Builds [`WriteAhead`].
#[derive(Clone)]
pub struct WriteAheadLayer {
    log: AuditLog,
}

impl WriteAheadLayer {
    /// Durable decision records into `log`.
    pub fn new(log: AuditLog) -> Self {
        Self { log }
    }
}

impl<S> Layer<S> for WriteAheadLayer {
    type Service = WriteAhead<S>;

    fn layer(&self, inner: S) -> Self::Service {
        WriteAhead {
            inner,
            log: self.log.clone(),
        }
    }
}

/// Makes an allowed guarded call's decision record durable before the call is forwarded.
#[derive(Clone)]
pub struct WriteAhead<S> {
    inner: S,
    log: AuditLog,
}

impl<S> Service<Request<ProxyBody>> for WriteAhead<S>
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

    fn call(&mut self, req: Request<ProxyBody>) -> Self::Future {
        let Some(decision) = req.extensions().get::<Arc<Decision>>().cloned() else {
            return call_boxed(&mut self.inner, req);
        };
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let record = with_decision(call_record(&self.log, &req), Some(&decision));
        let protocol = req
            .extensions()
            .get::<Operation>()
            .map_or(Protocol::Other, |op| op.protocol);
        let request_id = req.extensions().get::<RequestId>().cloned();
        let log = self.log.clone();
        Box::pin(async move {
            if let Err(err) = log.write_durable(AuditEvent::Decision(record)).await {
                tracing::error!(error = %err, "audit log unwritable: refusing the guarded call");
                let suffix = request_id
                    .map(|id| format!(" (request {id})"))
                    .unwrap_or_default();
                let fault = VimFault::gateway(
                    "HostCommunication",
                    "audit.unavailable",
                    format!(
                        "vcguard cannot record this call in its audit log, so it was not forwarded; try again later{suffix}"
                    ),
                );
                let protocol = match protocol {
                    Protocol::Soap => FaultProtocol::Soap,
                    _ => FaultProtocol::Json,
                };
                return Ok(fault_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    protocol,
                    &fault,
                ));
            }
            let mut response = call_boxed(&mut inner, req).await?;
            response.extensions_mut().insert(decision);
            Ok(response)
        })
    }
}

/// The facts of a call every record carries, without secrets.
fn call_record(log: &AuditLog, req: &Request<ProxyBody>) -> CallRecord {
    let extensions = req.extensions();
    let operation = extensions.get::<Operation>();
    let caller = extensions.get::<Caller>();
    let guarded = operation.and_then(|op| op.guarded.as_ref());
    let target = guarded
        .map(|g| &g.target)
        .or_else(|| operation.and_then(|op| op.target.as_ref()));
    let session = match single_credential(req.headers()) {
        Ok(Some(Credential::Session(token))) => Some(log.keyed_hash(token.as_bytes())),
        _ => None,
    };
    CallRecord {
        request_id: extensions
            .get::<RequestId>()
            .map(|id| id.as_str().to_owned())
            .unwrap_or_default(),
        client: extensions.get::<ClientAddr>().map(|a| a.0.to_string()),
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
        ticket: extensions.get::<TicketFacts>().and_then(|facts| {
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
        ..CallRecord::default()
    }
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
