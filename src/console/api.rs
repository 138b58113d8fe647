//! `/vcguard/api/v1/`: approvals and ticket claims as JSON, for the CLI and for scripts.
//! Every call needs a vCenter session made through the gateway; errors are
//! `{"error": "...", "message": "..."}` with an HTTP status.

use std::time::SystemTime;

use http::{Method, Request, Response, StatusCode, header};
use serde::Deserialize;
use serde_json::json;

use crate::body::ProxyBody;
use crate::console::claims::{ClaimRequest, verify_claim};
use crate::console::reply::{ApiError, json, read_body};
use crate::console::{API_PREFIX, ConsoleInner, Who, who};
use crate::gate::facts::Facts;
use crate::state::{
    Approval, ApprovalError, ApprovalFilter, ApprovalState, ClaimError, Decider, NewClaim, Verdict,
};

/// Most approvals one list returns.
const MAX_LIST: u32 = 500;

/// `{"comment": "..."}` of approve and deny.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DecideRequest {
    #[serde(default)]
    comment: String,
}

pub(super) async fn answer(
    inner: &ConsoleInner,
    req: Request<ProxyBody>,
    facts: &Facts,
) -> Response<ProxyBody> {
    match route(inner, req, facts).await {
        Ok(response) => response,
        Err(error) => error.to_json(),
    }
}

async fn route(
    inner: &ConsoleInner,
    req: Request<ProxyBody>,
    facts: &Facts,
) -> Result<Response<ProxyBody>, ApiError> {
    let Some(who) = who(facts) else {
        return Err(ApiError::unauthenticated());
    };
    let path = req
        .uri()
        .path()
        .strip_prefix(API_PREFIX)
        .unwrap_or_default()
        .to_owned();
    let segments: Vec<&str> = path.split('/').collect();
    let method = req.method().clone();
    let now = SystemTime::now();
    match (&method, segments.as_slice()) {
        (&Method::GET, ["whoami"]) => Ok(json(
            StatusCode::OK,
            &json!({"user": who.user, "groups": who.groups}),
        )),
        (&Method::GET, ["approvals"]) => {
            let query = req.uri().query().unwrap_or_default().to_owned();
            list_approvals(inner, &query, now).await
        }
        (&Method::GET, ["approvals", id]) => show_approval(inner, id).await,
        (&Method::POST, ["approvals", id, verb @ ("approve" | "deny")]) => {
            let verdict = if *verb == "approve" {
                Verdict::Approve
            } else {
                Verdict::Deny
            };
            let id = (*id).to_owned();
            let request: DecideRequest = json_body(req).await?;
            let approval = decide(inner, &who, &id, verdict, &request.comment, now).await?;
            Ok(json(StatusCode::OK, &approval))
        }
        (&Method::GET, ["ticket-claims"]) => {
            let claims = inner
                .claims_of(&who.user, now)
                .await
                .map_err(ApiError::state_unavailable)?;
            Ok(json(StatusCode::OK, &json!({ "claims": claims })))
        }
        (&Method::POST, ["ticket-claims"]) => {
            let request: ClaimRequest = json_body(req).await?;
            let claim = claim(inner, facts, &who, &request, now).await?;
            Ok(json(StatusCode::CREATED, &claim))
        }
        (&Method::DELETE, ["ticket-claims", id]) => {
            let claim = release(inner, &who, id, now).await?;
            Ok(json(StatusCode::OK, &claim))
        }
        (_, ["approvals" | "ticket-claims", ..] | ["whoami"]) => Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("{method} is not allowed on {API_PREFIX}{path}"),
        )),
        _ => Err(ApiError::not_found(format!(
            "no API endpoint {API_PREFIX}{path}; see docs/CONSOLE.md"
        ))),
    }
}

/// Reads a JSON body (an empty body is the type's default). The content type must be
/// `application/json` even for an empty body: a cross-site HTML form cannot send it, so a
/// browser that holds a session cookie cannot be made to post to the API.
async fn json_body<T: for<'de> Deserialize<'de>>(req: Request<ProxyBody>) -> Result<T, ApiError> {
    let json_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
        });
    if !json_type {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as Content-Type: application/json",
        ));
    }
    let bytes = read_body(req.into_body()).await?;
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        &bytes
    };
    serde_json::from_slice(bytes)
        .map_err(|err| ApiError::bad_request(format!("the JSON body is not valid: {err}")))
}

/// Parses `?state=` (`pending`, `approved`, `denied`, `used`, `expired`, or `all`).
pub(crate) fn parse_state(value: &str) -> Result<Option<ApprovalState>, ApiError> {
    const ALL: [ApprovalState; 5] = [
        ApprovalState::Pending,
        ApprovalState::Approved,
        ApprovalState::Denied,
        ApprovalState::Used,
        ApprovalState::Expired,
    ];
    if value == "all" {
        return Ok(None);
    }
    ALL.into_iter()
        .find(|state| state.as_str() == value)
        .map(Some)
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "unknown state {value:?}: expected pending, approved, denied, used, expired or all"
            ))
        })
}

async fn list_approvals(
    inner: &ConsoleInner,
    query: &str,
    now: SystemTime,
) -> Result<Response<ProxyBody>, ApiError> {
    let mut filter = ApprovalFilter {
        state: None,
        requester: None,
        limit: 100,
    };
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        match key.as_ref() {
            "state" => filter.state = parse_state(&value)?,
            "requester" => filter.requester = Some(value.into_owned()),
            "limit" => {
                filter.limit = value
                    .parse::<u32>()
                    .ok()
                    .filter(|l| (1..=MAX_LIST).contains(l))
                    .ok_or_else(|| {
                        ApiError::bad_request(format!("'limit' must be 1 to {MAX_LIST}"))
                    })?;
            }
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown query parameter {other:?}: expected state, requester or limit"
                )));
            }
        }
    }
    let approvals = inner
        .approvals(&filter, now)
        .await
        .map_err(ApiError::state_unavailable)?;
    Ok(json(StatusCode::OK, &json!({ "approvals": approvals })))
}

async fn show_approval(inner: &ConsoleInner, id: &str) -> Result<Response<ProxyBody>, ApiError> {
    match inner
        .approval(id)
        .await
        .map_err(ApiError::state_unavailable)?
    {
        Some(approval) => Ok(json(StatusCode::OK, &approval)),
        None => Err(ApiError::not_found(format!("no approval request {id}"))),
    }
}

/// Approves or denies approval request `id` as `who`, mapping refusals to statuses.
pub(crate) async fn decide(
    inner: &ConsoleInner,
    who: &Who,
    id: &str,
    verdict: Verdict,
    comment: &str,
    now: SystemTime,
) -> Result<Approval, ApiError> {
    if comment.len() > 2000 {
        return Err(ApiError::bad_request(
            "the comment may be at most 2000 bytes",
        ));
    }
    let decider = Decider {
        user: who.user.clone(),
        groups: who.groups.clone(),
    };
    inner
        .control
        .decide_approval(id, &decider, verdict, comment, now)
        .await
        .map_err(|err| {
            let (status, name) = match &err {
                ApprovalError::NotFound { .. } => (StatusCode::NOT_FOUND, "not_found"),
                ApprovalError::SelfApproval { .. } => (StatusCode::FORBIDDEN, "self_approval"),
                ApprovalError::NotMember { .. } => (StatusCode::FORBIDDEN, "not_member"),
                ApprovalError::Expired { .. } => (StatusCode::CONFLICT, "expired"),
                ApprovalError::AlreadyDecided { .. } => (StatusCode::CONFLICT, "already_decided"),
                ApprovalError::Used { .. } => (StatusCode::CONFLICT, "used"),
                ApprovalError::Store(_) => (StatusCode::SERVICE_UNAVAILABLE, "state_unavailable"),
            };
            ApiError::new(status, name, err.to_string())
        })
}

/// Verifies and stores a claim for `who`.
pub(crate) async fn claim(
    inner: &ConsoleInner,
    facts: &Facts,
    who: &Who,
    request: &ClaimRequest,
    now: SystemTime,
) -> Result<crate::state::Claim, ApiError> {
    let verified = verify_claim(&inner.tickets, &facts.snapshot.policies, request, now).await?;
    let new = NewClaim {
        user: who.user.clone(),
        ticket_id: verified.id,
        ticket_kind: verified.kind.as_str().to_owned(),
        ticket_context: verified.context,
        hosts: request.hosts.iter().map(|h| h.trim().to_owned()).collect(),
        actions: verified.actions,
        until: verified.until,
    };
    inner
        .control
        .claim_ticket(new, now)
        .await
        .map_err(ApiError::state_unavailable)
}

/// Releases claim `id` of `who`.
pub(crate) async fn release(
    inner: &ConsoleInner,
    who: &Who,
    id: &str,
    now: SystemTime,
) -> Result<crate::state::Claim, ApiError> {
    inner
        .control
        .release_claim(id, &who.user, now)
        .await
        .map_err(|err| {
            let (status, name) = match &err {
                ClaimError::NotFound { .. } => (StatusCode::NOT_FOUND, "not_found"),
                ClaimError::NotYours { .. } => (StatusCode::FORBIDDEN, "not_yours"),
                ClaimError::Store(_) => (StatusCode::SERVICE_UNAVAILABLE, "state_unavailable"),
            };
            ApiError::new(status, name, err.to_string())
        })
}
