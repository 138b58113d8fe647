//! Look up: what a stored call does (PROTOCOL.md §8). `RunScheduledTask` runs a scheduled
//! task's stored action and `ApplyRecommendation` a stored DRS recommendation; the request
//! itself does not say what that is. Before such a call is decided, the gateway asks vCenter
//! with the caller's own credential, over VI/JSON
//! (`GET /sdk/vim25/{release}/ScheduledTask/{moId}/info`, or
//! `.../ClusterComputeResource/{moId}/recommendation`), and the rest of the way through sees the
//! call that vCenter reports ([`Facts::operation`]).
//!
//! The answer is kept for this one call and named in its audit records. Whatever goes wrong
//! (vCenter unreachable, a fault, an answer the gateway cannot read) refuses the call with
//! [`GatewayError::LookupFailed`]: nothing is forwarded.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, StatusCode, header};

use crate::body::{ProxyBody, collect_capped, empty};
use crate::gate::error::GatewayError;
use crate::gate::facts::Facts;
use crate::gate::forward::Forward;
use crate::gate::step::{Inner, Next, Step, StepResult};
use crate::identity::DEFAULT_RELEASE;
use crate::server::ClientAddr;
use crate::vsphere::classify::Refusal;
use crate::vsphere::credentials::{Credential, SESSION_HEADER};
use crate::vsphere::effects::EffectFacts;
use crate::vsphere::operation::{GuardedBody, GuardedCall, MoRef, Operation, Protocol, Route};
use crate::vsphere::stored_action::{
    apply_recommendation_call, describe_scheduled_action, recommendations_path,
    run_scheduled_task_call, scheduled_task_info_path,
};

/// Largest look-up answer read.
const ANSWER_CAP: usize = 1024 * 1024;
/// The first VI/JSON release (vCenter 8.0 Update 1).
const FIRST_VI_JSON_RELEASE: [u32; 3] = [8, 0, 1];

/// A stored call's meaning as vCenter reported it, for this call only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookedUp {
    /// The request as the call it turned out to make (the guarded call to decide on).
    pub operation: Operation,
    /// What was found, for the audit record, e.g.
    /// `ScheduledTask schedule-101 runs EnterMaintenanceMode_Task on HostSystem host-21`.
    pub summary: String,
}

/// Asks vCenter what `RunScheduledTask` and `ApplyRecommendation` calls do before they are decided.
#[derive(Clone)]
pub struct LookUp {
    forward: Forward,
}

impl LookUp {
    /// Look-ups sent to vCenter through `forward`.
    pub fn new(forward: Forward) -> Self {
        Self { forward }
    }
}

/// A call whose effect is stored in vCenter.
enum Stored {
    /// `RunScheduledTask` on this scheduled task.
    Task(MoRef),
    /// `ApplyRecommendation(key)` on this cluster.
    Recommendation { cluster: MoRef, key: String },
}

impl Stored {
    /// The stored call `call` makes, if it is one.
    fn of(call: &GuardedCall) -> Option<Self> {
        if call.route != Route::Direct {
            return None;
        }
        match (call.method.as_str(), &call.body) {
            ("RunScheduledTask", _) => Some(Self::Task(call.target.clone())),
            ("ApplyRecommendation", GuardedBody::Effect(facts)) => facts
                .recommendation
                .clone()
                .map(|key| Self::Recommendation {
                    cluster: call.target.clone(),
                    key,
                }),
            _ => None,
        }
    }

    fn subject(&self) -> String {
        match self {
            Self::Task(task) => format!("scheduled task {}", task.value),
            Self::Recommendation { cluster, key } => {
                format!("DRS recommendation '{key}' of {}", cluster.value)
            }
        }
    }

    fn path(&self, release: &str) -> String {
        match self {
            Self::Task(task) => scheduled_task_info_path(release, &task.value),
            Self::Recommendation { cluster, .. } => recommendations_path(release, &cluster.value),
        }
    }
}

impl Step for LookUp {
    async fn handle<S: Inner>(
        &self,
        req: Request<ProxyBody>,
        facts: Arc<Facts>,
        next: Next<S>,
    ) -> StepResult {
        let Some(operation) = facts.operation() else {
            return next.run(req).await;
        };
        let Some((call, stored)) = operation
            .guarded
            .as_ref()
            .and_then(|call| Stored::of(call).map(|stored| (call, stored)))
        else {
            return next.run(req).await;
        };
        let subject = stored.subject();
        let request = look_up_request(&req, &facts, stored.path(&look_up_release(operation)))
            .map_err(|cause| failed(&subject, cause))?;
        let answer = Box::pin(ask(&self.forward, request, &subject)).await?;
        let unusable = |refusal: Refusal| {
            failed(
                &subject,
                format!("could not use its answer: {}", refusal.message),
            )
        };
        let found = match &stored {
            Stored::Task(task) => {
                let run = run_scheduled_task_call(task, &answer, &facts.snapshot.guarded)
                    .map_err(unusable)?;
                LookedUp {
                    operation: with_call(operation, run.unwrap_or_else(|| harmless(call))),
                    summary: format!(
                        "ScheduledTask {} runs {}",
                        task.value,
                        describe_scheduled_action(&answer)
                    ),
                }
            }
            Stored::Recommendation { cluster, key } => {
                let apply = apply_recommendation_call(cluster, key, &answer).map_err(unusable)?;
                LookedUp {
                    summary: recommendation_summary(&apply),
                    operation: with_call(operation, apply),
                }
            }
        };
        tracing::info!(looked_up = %found.summary, "stored call looked up");
        facts.set_looked_up(found);
        next.run(req).await
    }

    fn applies_to(&self, _req: &Request<ProxyBody>, facts: &Facts) -> bool {
        facts.is_guarded()
    }
}

fn failed(subject: &str, cause: impl Into<String>) -> GatewayError {
    GatewayError::LookupFailed {
        subject: subject.to_owned(),
        cause: cause.into(),
    }
}

/// `operation` as the call `call`.
fn with_call(operation: &Operation, call: GuardedCall) -> Operation {
    Operation {
        guarded: Some(call),
        ..operation.clone()
    }
}

/// A stored task whose action vCenter reported and which is not guarded: the call itself,
/// with facts that now are known to do nothing to hosts.
fn harmless(call: &GuardedCall) -> GuardedCall {
    GuardedCall {
        body: GuardedBody::Effect(EffectFacts {
            known: true,
            ..EffectFacts::default()
        }),
        ..call.clone()
    }
}

fn recommendation_summary(call: &GuardedCall) -> String {
    let GuardedBody::Effect(facts) = &call.body else {
        return format!("DRS recommendation of {}", call.target.value);
    };
    format!(
        "DRS recommendation {} of {}: reason {}, {}",
        facts.recommendation.as_deref().unwrap_or("?"),
        call.target.value,
        facts.recommendation_reason.as_deref().unwrap_or("(none)"),
        if facts.enters_maintenance {
            "enters maintenance mode"
        } else {
            "migrations only"
        }
    )
}

/// The VI/JSON release to ask in: a VI/JSON call's own; for SOAP, the release of the call's
/// `SOAPAction` when VI/JSON has it (8.0.1.0 and later), otherwise the identity look-up's.
fn look_up_release(operation: &Operation) -> String {
    let release = operation.release.as_deref();
    let usable = match operation.protocol {
        Protocol::VimJson => release,
        _ => release.filter(|r| has_vi_json(r)),
    };
    usable.unwrap_or(DEFAULT_RELEASE).to_owned()
}

/// Whether a dotted numeric release is 8.0.1 or later.
fn has_vi_json(release: &str) -> bool {
    let parts: Option<Vec<u32>> = release.split('.').map(|p| p.parse().ok()).collect();
    parts.is_some_and(|parts| parts.len() >= 3 && parts[..3] >= FIRST_VI_JSON_RELEASE[..])
}

/// The look-up request: `GET path` with the credential the call itself carries (the session
/// header, the SOAP cookie — also as the session header, which VI/JSON reads — or
/// `Authorization`).
fn look_up_request(
    req: &Request<ProxyBody>,
    facts: &Facts,
    path: String,
) -> Result<Request<ProxyBody>, String> {
    let mut request = Request::builder()
        .method(Method::GET)
        .uri(path)
        .header(header::ACCEPT, "application/json")
        .body(empty())
        .map_err(|err| format!("could not build the look-up: {err}"))?;
    let headers = request.headers_mut();
    let session = header::HeaderName::from_static(SESSION_HEADER);
    for name in [session, header::COOKIE, header::AUTHORIZATION] {
        for value in req.headers().get_all(&name) {
            headers.append(name.clone(), value.clone());
        }
    }
    if !headers.contains_key(SESSION_HEADER)
        && let Some(Credential::Session(token)) = facts.credential()
    {
        let value = HeaderValue::from_str(token)
            .map_err(|_| "the session token is not a valid header value".to_owned())?;
        headers.insert(SESSION_HEADER, value);
    }
    if let Some(client) = req.extensions().get::<ClientAddr>() {
        request.extensions_mut().insert(client.clone());
    }
    Ok(request)
}

/// Sends the look-up and returns the answer of a `200`; anything else is a refusal.
async fn ask(
    forward: &Forward,
    request: Request<ProxyBody>,
    subject: &str,
) -> Result<Bytes, GatewayError> {
    let response = forward
        .send(request)
        .await
        .map_err(|err| failed(subject, format!("could not reach it ({err})")))?;
    let status = response.status();
    let body = collect_capped(response.into_body(), ANSWER_CAP)
        .await
        .map_err(|err| failed(subject, format!("could not read its answer ({err})")))?;
    if status != StatusCode::OK {
        let fault = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("_typeName")?.as_str().map(|t| format!(" {t}")))
            .unwrap_or_default();
        return Err(failed(
            subject,
            format!("vCenter answered {}{fault}", status.as_u16()),
        ));
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_for_the_look_up() {
        let op = |protocol, release: Option<&str>| Operation {
            release: release.map(str::to_owned),
            ..Operation::pass_through(protocol)
        };
        assert_eq!(
            look_up_release(&op(Protocol::VimJson, Some("uA046D008"))),
            "uA046D008"
        );
        assert_eq!(
            look_up_release(&op(Protocol::Soap, Some("8.0.2.0"))),
            "8.0.2.0"
        );
        assert_eq!(
            look_up_release(&op(Protocol::Soap, Some("7.0.3.0"))),
            DEFAULT_RELEASE
        );
        assert_eq!(
            look_up_release(&op(Protocol::Soap, Some("uA046D008"))),
            DEFAULT_RELEASE
        );
        assert_eq!(look_up_release(&op(Protocol::Soap, None)), DEFAULT_RELEASE);
        assert!(has_vi_json("9.1.0.0"));
        assert!(!has_vi_json("8.0.0.1"));
        assert!(!has_vi_json("8.0"));
    }
}
