//! The vSphere Automation REST API, as far as the gateway's tests need it: sessions
//! (`POST`/`GET`/`DELETE /api/session`) and vSphere Lifecycle Manager remediation
//! (`POST /api/esx/settings/clusters/{cluster}/software?action=apply`, `.../configuration`,
//! `/api/esx/settings/hosts/{host}/software`, and the `/rest/...` forms).
//!
//! A remediation is recorded in [`Inventory::remediations`] (hosts enter maintenance mode,
//! are remediated and leave it again, so their maintenance state does not show it); with
//! `vmw-task=true` the answer is `202` with the task id, as vCenter's task-based operations do.

use base64::Engine as _;
use http::request::Parts;
use http::{Method, Response, StatusCode, header};
use serde_json::{Value as Json, json};

use super::inventory::Inventory;
use super::sessions::session_header;
use super::{Seen, SimBody, SimInner, lock, respond, user_agent};

const JSON: &str = "application/json";

/// One Lifecycle Manager remediation the simulator ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remediation {
    /// `clusters` or `hosts`.
    pub kind: String,
    /// The cluster or host moId.
    pub id: String,
    /// `software` or `configuration`.
    pub what: String,
    /// The vCenter user who asked for it.
    pub user: String,
}

/// Whether `path` belongs to the Automation REST API.
pub(crate) fn is_rest_path(path: &str) -> bool {
    ["/api", "/rest"]
        .iter()
        .any(|prefix| path == *prefix || path.starts_with(&format!("{prefix}/")))
}

/// A vAPI error answer: `{"error_type": ..., "messages": [...]}`.
fn error(status: StatusCode, error_type: &str, message: &str) -> Response<SimBody> {
    let body = json!({
        "error_type": error_type,
        "messages": [{"args": [], "default_message": message, "id": format!("vapi.sim.{}", error_type.to_ascii_lowercase())}],
    });
    respond(status, Some(JSON), body.to_string())
}

fn json_answer(status: StatusCode, body: &Json) -> Response<SimBody> {
    respond(status, Some(JSON), body.to_string())
}

/// Answers one Automation REST API request.
pub(crate) fn handle(sim: &SimInner, parts: &Parts) -> (Response<SimBody>, Seen) {
    let path = parts.uri.path();
    let query = parts.uri.query().unwrap_or("");
    let segments: Vec<&str> = path.split('/').skip(2).collect();
    let response = match (segments.as_slice(), &parts.method) {
        (["session"] | ["com", "vmware", "cis", "session"], &Method::POST) => login(sim, parts),
        (["session"], &Method::GET) => with_session(sim, parts, |inv, token| {
            let session = inv.sessions.get(token).cloned();
            session.map_or_else(unauthenticated, |s| {
                json_answer(
                    StatusCode::OK,
                    &json!({"user": s.user_name, "created_time": s.login_time, "last_accessed_time": s.last_active_time}),
                )
            })
        }),
        (["session"], &Method::DELETE) => with_session(sim, parts, |inv, token| {
            inv.sessions.logout(token);
            respond(StatusCode::NO_CONTENT, None, "")
        }),
        (["esx", "settings", kind @ ("clusters" | "hosts"), id, what], &Method::POST) => {
            let remediation = Remediation {
                kind: (*kind).into(),
                id: (*id).into(),
                what: (*what).into(),
                user: String::new(),
            };
            with_session(sim, parts, |inv, token| {
                apply(inv, token, remediation, query)
            })
        }
        _ => error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "The requested resource was not found",
        ),
    };
    (response, Seen::other())
}

/// `POST /api/session` with basic authentication: `201` and the token as a JSON string.
fn login(sim: &SimInner, parts: &Parts) -> Response<SimBody> {
    let credentials = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
        .and_then(|raw| String::from_utf8(raw).ok());
    let Some((user, password)) = credentials.as_deref().and_then(|text| text.split_once(':'))
    else {
        return unauthenticated();
    };
    let mut state = lock(&sim.state);
    match state
        .inventory
        .sessions
        .login(user, password, None, &user_agent(&parts.headers))
    {
        Ok((token, _)) => {
            let body = if parts.uri.path().starts_with("/rest/") {
                json!({ "value": token })
            } else {
                Json::String(token)
            };
            json_answer(StatusCode::CREATED, &body)
        }
        Err(_) => unauthenticated(),
    }
}

fn unauthenticated() -> Response<SimBody> {
    error(
        StatusCode::UNAUTHORIZED,
        "UNAUTHENTICATED",
        "This method requires authentication.",
    )
}

/// Runs `then` with the live session of the request's `vmware-api-session-id`, or answers 401.
fn with_session(
    sim: &SimInner,
    parts: &Parts,
    then: impl FnOnce(&mut Inventory, &str) -> Response<SimBody>,
) -> Response<SimBody> {
    let mut state = lock(&sim.state);
    match session_header(&parts.headers) {
        Some(token) if state.inventory.sessions.get(&token).is_some() => {
            state.inventory.sessions.touch(&token);
            then(&mut state.inventory, &token)
        }
        _ => unauthenticated(),
    }
}

/// `POST .../{software|configuration}?action=apply[&vmw-task=true]` on a known cluster or host.
fn apply(
    inv: &mut Inventory,
    token: &str,
    mut remediation: Remediation,
    query: &str,
) -> Response<SimBody> {
    let params: Vec<(&str, &str)> = query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .collect();
    let param = |name: &str| params.iter().find(|(k, _)| *k == name).map(|(_, v)| *v);
    let known = match remediation.kind.as_str() {
        "clusters" => inv.object_type(&remediation.id, None) == Some("ClusterComputeResource"),
        _ => inv.host(&remediation.id).is_some(),
    };
    let what_known = remediation.what == "software"
        || (remediation.what == "configuration" && remediation.kind == "clusters");
    if !known || !what_known {
        return error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            &format!("{} {} not found", remediation.kind, remediation.id),
        );
    }
    if param("action") != Some("apply") {
        return error(
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            "the simulator only implements action=apply",
        );
    }
    remediation.user = inv
        .sessions
        .get(token)
        .map(|s| s.user_name.clone())
        .unwrap_or_default();
    let serial = inv.remediations.len() + 1;
    let task = format!(
        "52{serial:06x}-sim:com.vmware.esx.settings.{}.{}",
        remediation.kind, remediation.what
    );
    inv.remediations.push(remediation);
    if param("vmw-task") == Some("true") {
        json_answer(StatusCode::ACCEPTED, &Json::String(task))
    } else {
        json_answer(
            StatusCode::OK,
            &json!({"status": "OK", "commit": serial.to_string(), "host_status": {}}),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rest_paths() {
        assert!(is_rest_path("/api/session"));
        assert!(is_rest_path("/rest/com/vmware/cis/session"));
        assert!(is_rest_path("/api"));
        assert!(!is_rest_path("/apix"));
        assert!(!is_rest_path("/sdk"));
    }
}
