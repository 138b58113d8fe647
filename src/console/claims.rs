//! A ticket claim's ticket, verified exactly as a header ticket would be: the pattern or the
//! signature (with its host and action scope) for every claimed host and action, and the
//! change system when one is configured.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use http::StatusCode;
use serde::Deserialize;
use serde_json::Value;

use crate::console::reply::ApiError;
use crate::gateway::TicketSettings;
use crate::policy::PolicySet;
use crate::ticket::change_system::host_name;
use crate::ticket::{TicketCheck, TicketKind, TicketTarget, VerifiedTicket};

/// Longest claim: a day. A longer change is claimed again.
pub(crate) const MAX_CLAIM_TTL: Duration = Duration::from_secs(24 * 3600);
/// Most hosts and actions one claim names.
const MAX_SCOPE: usize = 64;

/// `POST /vcguard/api/v1/ticket-claims`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ClaimRequest {
    /// The ticket as it would travel in the ticket header (a plain id or a signed ticket).
    pub(crate) ticket: String,
    /// Host moIds (or names) the claim covers.
    pub(crate) hosts: Vec<String>,
    /// vim methods the claim covers; empty: the signed ticket's own actions, or every guarded
    /// action for a plain id.
    #[serde(default)]
    pub(crate) actions: Vec<String>,
    /// How long the claim lasts, in seconds.
    pub(crate) ttl_secs: u64,
}

/// A claim's ticket after verification.
#[derive(Debug)]
pub(crate) struct VerifiedClaim {
    /// The change id.
    pub(crate) id: String,
    /// `pattern` or `signed`.
    pub(crate) kind: TicketKind,
    /// The verified ticket's policy-context record.
    pub(crate) context: Value,
    /// The actions the claim covers (empty: all guarded).
    pub(crate) actions: Vec<String>,
    /// Until when the claim lasts: the asked lifetime, cut at the ticket's own expiry.
    pub(crate) until: SystemTime,
}

fn unprocessable(error: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, error, message)
}

/// Checks the shape of a claim request.
fn check_shape(request: &ClaimRequest) -> Result<(), ApiError> {
    let ticket = request.ticket.trim();
    if ticket.is_empty() {
        return Err(ApiError::bad_request("'ticket' is empty"));
    }
    if request.hosts.is_empty() {
        return Err(ApiError::bad_request(
            "'hosts' is empty: name the hosts (moIds such as host-21) the claim covers",
        ));
    }
    if request.hosts.len() > MAX_SCOPE || request.actions.len() > MAX_SCOPE {
        return Err(ApiError::bad_request(format!(
            "a claim names at most {MAX_SCOPE} hosts and {MAX_SCOPE} actions"
        )));
    }
    for name in request.hosts.iter().chain(&request.actions) {
        if name.trim().is_empty() || name.len() > 256 || name.chars().any(char::is_control) {
            return Err(ApiError::bad_request(
                "host and action names must be non-empty printable text",
            ));
        }
    }
    if request.ttl_secs == 0 {
        return Err(ApiError::bad_request("'ttl_secs' must be at least 1"));
    }
    if request.ttl_secs > MAX_CLAIM_TTL.as_secs() {
        return Err(ApiError::bad_request(format!(
            "'ttl_secs' may be at most {} (a day); claim again for a longer change",
            MAX_CLAIM_TTL.as_secs()
        )));
    }
    Ok(())
}

/// The actions a signed ticket names (read after its signature verified).
fn signed_actions(raw: &str) -> Vec<String> {
    let Some(payload) = raw.split('.').nth(1) else {
        return Vec::new();
    };
    let Ok(bytes) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload) else {
        return Vec::new();
    };
    serde_json::from_slice::<Value>(&bytes)
        .ok()
        .and_then(|claims| claims.get("actions").cloned())
        .and_then(|actions| serde_json::from_value(actions).ok())
        .unwrap_or_default()
}

/// Verifies a claim's ticket for every host and action it names, at `now`.
pub(crate) async fn verify_claim(
    tickets: &TicketSettings,
    set: &PolicySet,
    request: &ClaimRequest,
    now: SystemTime,
) -> Result<VerifiedClaim, ApiError> {
    check_shape(request)?;
    let raw = request.ticket.trim();
    // Actions to check: those asked for; else a signed ticket's own; else every action (a
    // plain id has no scope, so one check with no action stands for all).
    let mut actions = request.actions.clone();
    let mut first: Option<VerifiedTicket> = None;
    let probe = tickets
        .verifier
        .verify(raw, "", &target(set, &request.hosts[0]), now);
    if let TicketCheck::Valid(ticket) = &probe
        && ticket.kind == TicketKind::Signed
        && actions.is_empty()
    {
        actions = signed_actions(raw);
        if actions.is_empty() {
            return Err(unprocessable(
                "ticket_rejected",
                "the signed ticket names no actions; name them with 'actions'",
            ));
        }
    }
    let checks: Vec<&str> = if actions.is_empty() {
        vec![""]
    } else {
        actions.iter().map(String::as_str).collect()
    };
    for host in &request.hosts {
        let target = target(set, host);
        for action in &checks {
            let check = tickets.verifier.verify(raw, action, &target, now);
            let reason = check.reason_for_policy();
            match check {
                TicketCheck::Valid(ticket) if ticket.covers_target && ticket.covers_action => {
                    if first.is_none() {
                        first = Some(ticket);
                    }
                }
                _ => {
                    return Err(unprocessable(
                        "ticket_rejected",
                        reason.unwrap_or_else(|| "the ticket was refused".to_owned()),
                    ));
                }
            }
        }
    }
    let Some(ticket) = first else {
        return Err(unprocessable("ticket_rejected", "the ticket was refused"));
    };
    let mut context = ticket.to_context();
    if let Some(change_system) = &tickets.change_system {
        for action in &checks {
            let names: Vec<String> = request
                .hosts
                .iter()
                .map(|host| host_name(set, host).unwrap_or_else(|| host.clone()))
                .collect();
            let verdict = change_system.check(&ticket.id, &names, action, now).await;
            if !verdict.authorises() {
                return Err(unprocessable(
                    "change_system",
                    verdict.reason.clone().unwrap_or_else(|| {
                        format!("the change system does not authorise {}", ticket.id)
                    }),
                ));
            }
            verdict.apply_to(&mut context);
        }
    }
    let mut until = now + Duration::from_secs(request.ttl_secs);
    if let Some(expires) = ticket.expires_at {
        until = until.min(UNIX_EPOCH + Duration::from_secs(expires));
    }
    Ok(VerifiedClaim {
        id: ticket.id,
        kind: ticket.kind,
        context,
        actions,
        until,
    })
}

/// The ticket target of a claimed host.
fn target(set: &PolicySet, host: &str) -> TicketTarget {
    TicketTarget {
        mo_id: host.to_owned(),
        host_name: host_name(set, host),
        hosts: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_errors_are_explained() {
        let request = |hosts: Vec<&str>, ttl| ClaimRequest {
            ticket: "CHG0012345".into(),
            hosts: hosts.into_iter().map(String::from).collect(),
            actions: Vec::new(),
            ttl_secs: ttl,
        };
        assert!(check_shape(&request(vec!["host-21"], 60)).is_ok());
        let empty = check_shape(&request(vec![], 60)).expect_err("no hosts");
        assert!(empty.message.contains("'hosts' is empty"), "{empty}");
        let long = check_shape(&request(vec!["host-21"], 90_000)).expect_err("too long");
        assert!(long.message.contains("at most 86400"), "{long}");
        assert!(check_shape(&request(vec!["host-21"], 0)).is_err());
    }

    #[test]
    fn a_signed_tickets_actions_are_read_from_its_payload() {
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"ticket":"CHG1","actions":["EnterMaintenanceMode_Task"]}"#);
        assert_eq!(
            signed_actions(&format!("e30.{payload}.sig")),
            vec!["EnterMaintenanceMode_Task".to_owned()]
        );
        assert!(signed_actions("not-a-jwt").is_empty());
    }
}
