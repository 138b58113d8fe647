//! Change-ticket verification.
//!
//! A ticket arrives as the raw value of an HTTP header (default `X-Change-Ticket`). A value
//! shaped like a JWT (three base64url segments) is verified as a *signed* ticket and, if that
//! fails, is refused: it never falls back to the pattern. Any other value is a *plain* ticket
//! id, valid when it matches the configured pattern in full. A plain id carries no scope; it
//! covers every target and action.
//!
//! Signed tickets are verified with `jsonwebtoken`. Accepted algorithms are RS256, ES256 and
//! EdDSA, each bound to the type of a configured key (RSA ≥ 2048 bits, P-256, Ed25519); the
//! header's `alg` only selects among keys of that type. A `kid` naming a configured key selects
//! that key alone; a `kid` naming none (the change system's own naming) or no `kid` means every
//! key of the header's algorithm is tried. Claims:
//!
//! | claim     | required | meaning |
//! |-----------|----------|---------|
//! | `ticket`  | yes | the change id, 1–128 printable characters (`jti` is not used) |
//! | `iss`     | yes | must equal `ticket.signed.issuer` |
//! | `aud`     | yes | string or array; must contain `ticket.signed.audience` |
//! | `exp`     | yes | expiry (unix seconds), with `leeway_secs` of grace |
//! | `nbf`     | no  | start of validity, with `leeway_secs` of grace |
//! | `hosts`   | yes | host moIds (exact) or host names (ASCII case-insensitive) |
//! | `actions` | yes | vim method names, exact (`EnterMaintenanceMode_Task`) |
//!
//! A ticket whose signature and claims hold but whose scope misses the call is still
//! [`TicketCheck::Valid`] with `covers_target`/`covers_action` false: policies decide.
//! No message and no `Debug` output here contains a raw signed token.

pub mod change_system;
mod config;
mod inspect;
mod keys;
mod mint;
mod pattern;
mod pem;
mod signed;
#[cfg(test)]
mod tests;

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

pub use change_system::{ChangeSystem, ChangeSystemConfig, ChangeVerdict};
pub use config::{
    DEFAULT_HEADER, DEFAULT_LEEWAY_SECS, DEFAULT_PATTERN, KeySource, MAX_LEEWAY_SECS, SignedConfig,
    TicketConfig, TicketConfigError,
};
pub use inspect::inspect;
pub use keys::TicketKeyInfo;
pub use mint::{
    KeyKind, MintError, MintRequest, SigningKeyPair, generate_signing_key, mint, parse_ttl,
};

use pattern::PatternRule;
pub(crate) use signed::JwtVerifier;
use signed::{SignedVerifier, looks_like_jwt};

/// Longest header value looked at; anything longer is refused unread.
pub const MAX_TICKET_BYTES: usize = 8192;

/// Longest untrusted string (issuer, audience, kid, alg) quoted in a message.
const MAX_SHOWN_CHARS: usize = 64;

/// How a ticket was recognised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TicketKind {
    /// A plain id matched against the configured pattern.
    Pattern,
    /// A JWT signed by the change system.
    Signed,
}

impl TicketKind {
    /// `"pattern"` or `"signed"`, as in the policy context.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pattern => "pattern",
            Self::Signed => "signed",
        }
    }
}

impl std::fmt::Display for TicketKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The managed object a guarded call acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketTarget {
    /// The moId, e.g. `host-21`.
    pub mo_id: String,
    /// The host name, when the gateway knows it, e.g. `esx-21.example.test`.
    pub host_name: Option<String>,
    /// The hosts the object belongs to (from `entities.json`), e.g. `host-21` for `ham-21`;
    /// a ticket naming one of them covers the object.
    pub hosts: Vec<String>,
}

impl TicketTarget {
    /// How the target is named in messages: `host-21`, `host-21 (esx-21.example.test)` or
    /// `ham-21 (on host-21)`.
    pub fn label(&self) -> String {
        let mut label = self.mo_id.clone();
        if let Some(name) = &self.host_name {
            label = format!("{label} ({name})");
        }
        if !self.hosts.is_empty() {
            label = format!("{label} (on {})", self.hosts.join(", "));
        }
        label
    }
}

/// The outcome of checking a ticket for one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TicketCheck {
    /// The ticket is genuine and current; its scope may or may not cover the call.
    Valid(VerifiedTicket),
    /// The ticket authorises nothing.
    Invalid {
        /// The ticket id, once a signature has verified (never for plain values).
        id: Option<String>,
        /// How the value was recognised.
        kind: TicketKind,
        /// Why it was refused, e.g. `ticket expired at 2026-11-23T10:00:00Z`.
        reason: String,
    },
}

/// A verified ticket as the policy sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedTicket {
    /// The change id, e.g. `CHG0012345`.
    pub id: String,
    /// Plain (pattern) or signed.
    pub kind: TicketKind,
    /// Whether the ticket's `hosts` name the target (always true for plain ids).
    pub covers_target: bool,
    /// Whether the ticket's `actions` name the action (always true for plain ids).
    pub covers_action: bool,
    /// Expiry in unix seconds (signed tickets only).
    pub expires_at: Option<u64>,
    /// Id of the key that verified the signature (signed tickets only).
    pub key_id: Option<String>,
    /// The target the ticket was checked against, as [`TicketTarget::label`] names it.
    pub target: String,
    /// The action the ticket was checked against.
    pub action: String,
}

impl VerifiedTicket {
    /// The Cedar `Ticket` record: `{ id, kind, verified: true, covers_target, covers_action, expires_at? }`.
    pub fn to_context(&self) -> Value {
        let mut context = json!({
            "id": self.id,
            "kind": self.kind.as_str(),
            "verified": true,
            "covers_target": self.covers_target,
            "covers_action": self.covers_action,
        });
        if let (Some(expires_at), Some(map)) = (self.expires_at, context.as_object_mut()) {
            let long = i64::try_from(expires_at).unwrap_or(i64::MAX);
            map.insert("expires_at".to_owned(), Value::from(long));
        }
        context
    }
}

impl TicketCheck {
    /// Whether the ticket is genuine and covers both the target and the action.
    pub fn authorises(&self) -> bool {
        matches!(self, Self::Valid(t) if t.covers_target && t.covers_action)
    }

    /// The deny text when the ticket does not authorise the call (`ticket CHG0012345 does not cover host-22`).
    pub fn reason_for_policy(&self) -> Option<String> {
        match self {
            Self::Valid(ticket) => {
                let mut missing = Vec::new();
                if !ticket.covers_target {
                    missing.push(ticket.target.as_str());
                }
                if !ticket.covers_action {
                    missing.push(ticket.action.as_str());
                }
                (!missing.is_empty()).then(|| {
                    format!(
                        "ticket {} does not cover {}",
                        ticket.id,
                        missing.join(" or ")
                    )
                })
            }
            Self::Invalid {
                id: Some(id),
                reason,
                ..
            } => Some(format!("change ticket {id} rejected: {reason}")),
            Self::Invalid {
                id: None, reason, ..
            } => Some(format!("change ticket rejected: {reason}")),
        }
    }

    /// The Cedar `Ticket` record; for an invalid ticket `verified: false`, nothing covered, `id` maybe `""`.
    pub fn to_context(&self) -> Value {
        match self {
            Self::Valid(ticket) => ticket.to_context(),
            Self::Invalid { id, kind, .. } => json!({
                "id": id.as_deref().unwrap_or_default(),
                "kind": kind.as_str(),
                "verified": false,
                "covers_target": false,
                "covers_action": false,
            }),
        }
    }
}

/// Checks ticket header values; built once from [`TicketConfig`], shared by all requests.
#[derive(Debug, Clone)]
pub struct TicketVerifier {
    pattern: Option<PatternRule>,
    signed: Option<SignedVerifier>,
}

impl TicketVerifier {
    /// Compiles the pattern and loads the keys of `config`.
    pub fn new(config: &TicketConfig) -> Result<Self, TicketConfigError> {
        config.validate()?;
        Ok(Self {
            pattern: config
                .pattern
                .as_deref()
                .map(PatternRule::new)
                .transpose()?,
            signed: config
                .signed
                .as_ref()
                .map(SignedVerifier::new)
                .transpose()?,
        })
    }

    /// The loaded verification keys (empty without signed tickets).
    pub fn key_info(&self) -> Vec<TicketKeyInfo> {
        self.signed
            .as_ref()
            .map(SignedVerifier::key_info)
            .unwrap_or_default()
    }

    /// Verifies a raw header value for a call of `action` on `target` at `now`.
    pub fn verify(
        &self,
        raw: &str,
        action: &str,
        target: &TicketTarget,
        now: SystemTime,
    ) -> TicketCheck {
        let jwt = looks_like_jwt(raw);
        let kind = if jwt {
            TicketKind::Signed
        } else {
            TicketKind::Pattern
        };
        let invalid = |reason: String| TicketCheck::Invalid {
            id: None,
            kind,
            reason,
        };
        if raw.len() > MAX_TICKET_BYTES {
            return invalid(format!(
                "the ticket header value is {} bytes long; at most {MAX_TICKET_BYTES} are accepted",
                raw.len()
            ));
        }
        let scoped = |id: String, covers_target, covers_action, expires_at, key_id| {
            TicketCheck::Valid(VerifiedTicket {
                id,
                kind,
                covers_target,
                covers_action,
                expires_at,
                key_id,
                target: target.label(),
                action: action.to_owned(),
            })
        };
        if jwt {
            let Some(signed) = &self.signed else {
                return invalid(
                    "the value is a signed ticket (JWT), but signed tickets are not configured \
                     ([ticket.signed])"
                        .to_owned(),
                );
            };
            return match signed.verify_token(raw, unix_secs(now)) {
                Ok(claims) => scoped(
                    claims.id.clone(),
                    claims.covers_target(target),
                    claims.covers_action(action),
                    Some(claims.expires_at),
                    Some(claims.key_id),
                ),
                Err(rejection) => TicketCheck::Invalid {
                    id: rejection.id,
                    kind,
                    reason: rejection.reason,
                },
            };
        }
        let Some(pattern) = &self.pattern else {
            return invalid(
                "plain ticket ids are not accepted (ticket.pattern is off); send a signed ticket"
                    .to_owned(),
            );
        };
        match pattern.check(raw) {
            Ok(()) => scoped(raw.to_owned(), true, true, None, None),
            Err(reason) => invalid(reason),
        }
    }
}

/// Seconds since 1970 (0 for earlier times).
fn unix_secs(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `2026-11-23T10:00:00Z` for a unix time.
fn rfc3339(secs: u64) -> String {
    i64::try_from(secs)
        .ok()
        .and_then(|secs| time::OffsetDateTime::from_unix_timestamp(secs).ok())
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| format!("{secs} (unix time)"))
}

/// An untrusted string made safe to quote: control characters replaced, long values cut.
pub(crate) fn shown(value: &str) -> String {
    let mut out: String = value
        .chars()
        .take(MAX_SHOWN_CHARS)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if value.chars().count() > MAX_SHOWN_CHARS {
        out.push('…');
    }
    out
}
