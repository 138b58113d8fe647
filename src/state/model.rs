//! The values the state store keeps: approval requests and ticket claims.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Serialize, Serializer};

/// What identifies "the same call" for an approval: who, what, on which object, with which body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApprovalKey {
    /// The vCenter user who made the call.
    pub requester: String,
    /// The vim method (the policy action), e.g. `ChangeLockdownMode`.
    pub action: String,
    /// The target object, `Type:moid`, e.g. `HostAccessManager:ham-21`.
    pub target: String,
    /// SHA-256 (hex) of the canonical parsed body (serde_json of the typed body or effect facts).
    pub body_hash: String,
}

/// A new approval request, as the approve step files it.
#[derive(Debug, Clone)]
pub struct NewApproval {
    /// The call it is for.
    pub key: ApprovalKey,
    /// The group whose members may approve it (`@approval("group")`).
    pub group: String,
    /// The policy that asks for the approval.
    pub policy: String,
    /// The policy's `@reason`.
    pub reason: Option<String>,
    /// One line for people, e.g. `ChangeLockdownMode lockdownDisabled on host-21`.
    pub summary: String,
}

/// Where an approval request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalState {
    /// Waiting for a member of the group.
    Pending,
    /// Approved: the same call passes within the window, `uses_left` more times.
    Approved,
    /// Denied by a member of the group.
    Denied,
    /// Approved and used up.
    Used,
    /// Not decided in time, or approved but not used within the window.
    Expired,
}

impl ApprovalState {
    /// The state's name: `pending`, `approved`, `denied`, `used`, `expired`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Denied => "denied",
            Self::Used => "used",
            Self::Expired => "expired",
        }
    }
}

impl fmt::Display for ApprovalState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ApprovalState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "pending" => Self::Pending,
            "approved" => Self::Approved,
            "denied" => Self::Denied,
            "used" => Self::Used,
            "expired" => Self::Expired,
            other => {
                return Err(format!(
                    "unknown approval state `{other}` (pending, approved, denied, used, expired)"
                ));
            }
        })
    }
}

/// An approval request and what became of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Approval {
    /// `apr-` and 12 random base32 characters.
    pub id: String,
    /// The call it is for.
    pub key: ApprovalKey,
    /// The group whose members may decide it.
    pub group: String,
    /// The policy that asked for it.
    pub policy: String,
    /// The policy's `@reason`.
    pub reason: Option<String>,
    /// One line for people.
    pub summary: String,
    /// Where it stands.
    pub state: ApprovalState,
    /// When it was requested.
    #[serde(serialize_with = "rfc3339")]
    pub requested_at: SystemTime,
    /// When a pending request expires.
    #[serde(serialize_with = "rfc3339")]
    pub expires_at: SystemTime,
    /// Who approved or denied it.
    pub decided_by: Option<String>,
    /// The decider's comment.
    pub comment: Option<String>,
    /// When it was decided.
    #[serde(serialize_with = "rfc3339_opt")]
    pub decided_at: Option<SystemTime>,
    /// Until when an approved request lets the call through.
    #[serde(serialize_with = "rfc3339_opt")]
    pub window_until: Option<SystemTime>,
    /// How many more calls an approved request lets through.
    pub uses_left: u32,
}

/// Who decides an approval request, with the groups they are a member of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decider {
    /// The vCenter user.
    pub user: String,
    /// Every group the user is a member of (see `ChangeControl::groups_of`).
    pub groups: Vec<String>,
}

/// An approver's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Let the call through.
    Approve,
    /// Refuse it for good.
    Deny,
}

/// Which approval requests to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApprovalFilter {
    /// Only requests in this state.
    pub state: Option<ApprovalState>,
    /// Only requests of this user.
    pub requester: Option<String>,
    /// At most this many, newest first (0: 100).
    pub limit: u32,
}

/// How approvals behave (`[approval]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApprovalSettings {
    /// How long after approval the call may be made.
    pub window: Duration,
    /// How many calls one approval lets through.
    pub uses: u32,
    /// How long a request may stay pending.
    pub pending_ttl: Duration,
}

impl Default for ApprovalSettings {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(900),
            uses: 1,
            pending_ttl: Duration::from_secs(3600),
        }
    }
}

/// A new ticket claim, its ticket already verified.
#[derive(Debug, Clone)]
pub struct NewClaim {
    /// The vCenter user working under the ticket.
    pub user: String,
    /// The ticket id, e.g. `CHG0012345`.
    pub ticket_id: String,
    /// How the ticket was verified: `pattern` or `signed`.
    pub ticket_kind: String,
    /// The verified ticket's policy-context record.
    pub ticket_context: serde_json::Value,
    /// The hosts (`HostSystem` moIds) it covers.
    pub hosts: Vec<String>,
    /// The guarded actions it covers; empty: all.
    pub actions: Vec<String>,
    /// When it ends.
    pub until: SystemTime,
}

/// A ticket claim: a user's later guarded calls without a ticket header carry its ticket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Claim {
    /// `clm-` and 12 random base32 characters.
    pub id: String,
    /// The vCenter user.
    pub user: String,
    /// The ticket id.
    pub ticket_id: String,
    /// `pattern` or `signed`.
    pub ticket_kind: String,
    /// The verified ticket's policy-context record.
    pub ticket_context: serde_json::Value,
    /// The hosts it covers.
    pub hosts: Vec<String>,
    /// The actions it covers; empty: all guarded actions.
    pub actions: Vec<String>,
    /// When it was made.
    #[serde(serialize_with = "rfc3339")]
    pub created_at: SystemTime,
    /// When it ends.
    #[serde(serialize_with = "rfc3339")]
    pub until: SystemTime,
    /// When it was released, if it was.
    #[serde(serialize_with = "rfc3339_opt")]
    pub released_at: Option<SystemTime>,
}

impl Claim {
    /// True when the claim is in force at `now`.
    pub fn is_active(&self, now: SystemTime) -> bool {
        self.released_at.is_none() && self.until > now
    }

    /// True when the claim covers `action` on one of `hosts`.
    pub fn covers(&self, action: &str, hosts: &[String]) -> bool {
        (self.actions.is_empty() || self.actions.iter().any(|a| a == action))
            && hosts.iter().any(|h| self.hosts.contains(h))
    }
}

/// Unix seconds of `t` (0 before 1970).
pub(crate) fn unix_secs(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The time `secs` unix seconds name.
pub(crate) fn from_unix_secs(secs: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).unwrap_or(0))
}

/// `t` as RFC 3339 UTC, e.g. `2026-12-01T03:04:05Z`.
pub fn format_rfc3339(t: SystemTime) -> String {
    let secs = unix_secs(t);
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| secs.to_string())
}

fn rfc3339<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_rfc3339(*t))
}

fn rfc3339_opt<S: Serializer>(t: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(&format_rfc3339(*t)),
        None => s.serialize_none(),
    }
}

/// A new id: `prefix` and 12 random base32 characters (60 bits).
pub(crate) fn new_id(prefix: &str) -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let bytes = uuid::Uuid::new_v4().as_u128();
    let mut id = String::with_capacity(prefix.len() + 12);
    id.push_str(prefix);
    for i in 0..12 {
        let index = ((bytes >> (i * 5)) & 31) as usize;
        id.push(char::from(ALPHABET[index]));
    }
    id
}

/// True when `a` and `b` name the same vCenter user: case-insensitive, and `DOMAIN\user` is
/// `user@domain`.
pub fn same_user(a: &str, b: &str) -> bool {
    normal_user(a) == normal_user(b)
}

fn normal_user(name: &str) -> String {
    let name = name.trim().to_lowercase();
    match name.split_once('\\') {
        Some((domain, user)) if !domain.is_empty() && !user.is_empty() => {
            format!("{user}@{domain}")
        }
        _ => name,
    }
}
