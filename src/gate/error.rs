//! Every way the gateway itself can end a request, as one typed error. Each cause knows its HTTP
//! status, its vim fault type, the metric it counts under and the audit record's `error` name;
//! the rescue step renders it (see `rescue.rs`).

use std::sync::Arc;

use http::StatusCode;

use crate::metrics::Outcome;
use crate::policy::Decision;
use crate::vsphere::classify::Refusal;
use crate::vsphere::fault::{FaultType, VimFault};

/// Why the gateway answered a request itself instead of forwarding vCenter's answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum GatewayError {
    /// A policy (or a refused ticket or identity token) denied a guarded call.
    #[error("{text}")]
    Denied {
        /// The decision, for the audit record.
        decision: Arc<Decision>,
        /// What the client is told: the policy, its reason and any ticket problem.
        text: String,
    },
    /// Only `@approval` policies deny the call and no approval for it was granted: an approval
    /// request is pending.
    #[error("{text}")]
    ApprovalRequired {
        /// The decision (deny, with the approval need), for the audit record.
        decision: Arc<Decision>,
        /// What the client is told: the policy, the request id, the group and the command.
        text: String,
    },
    /// The state store (approvals, claims) cannot be reached for a call that needs it.
    #[error(
        "vcguard cannot reach its state store, which this call needs ({cause}); it was not forwarded: try again later"
    )]
    StateUnavailable {
        /// The decision so far, for the audit record.
        decision: Arc<Decision>,
        /// What failed, without secrets.
        cause: String,
    },
    /// What a stored call (a scheduled task, a DRS recommendation) does could not be looked up
    /// in vCenter: the call is refused (fail closed).
    #[error(
        "vcguard could not find out what this call does: it looked up {subject} in vCenter and {cause}; refused, nothing was forwarded"
    )]
    LookupFailed {
        /// What was looked up, e.g. `scheduled task schedule-7`.
        subject: String,
        /// What went wrong, e.g. `vCenter answered 500 ManagedObjectNotFound`.
        cause: String,
    },
    /// The request is malformed or ambiguous and cannot be classified safely.
    #[error("vcguard: {}", .0.message)]
    Malformed(#[from] Refusal),
    /// A guarded call's body is larger than the cap.
    #[error("vcguard: the body of a guarded call may be at most {cap} bytes")]
    BodyTooLarge {
        /// The cap in bytes.
        cap: usize,
    },
    /// The body is compressed, so it cannot be classified.
    #[error(
        "vcguard: Content-Encoding '{encoding}' is not accepted under /sdk; send the body uncompressed"
    )]
    UnsupportedEncoding {
        /// The `Content-Encoding` the client sent.
        encoding: String,
    },
    /// The client's request body broke off before it was sent in full.
    #[error("vcguard: the request body broke off before it was sent in full: {cause}")]
    ClientAborted {
        /// What broke.
        cause: String,
    },
    /// The request cannot be turned into one for vCenter.
    #[error("{0}")]
    BadRequest(String),
    /// The audit log cannot take the decision record, so the guarded call is not forwarded.
    #[error(
        "vcguard cannot record this call in its audit log, so it was not forwarded; try again later"
    )]
    AuditUnavailable,
    /// vCenter cannot be reached (connect, TLS, or the connection broke).
    #[error("vcguard cannot reach vCenter at {authority}: {cause}")]
    UpstreamUnreachable {
        /// vCenter's address.
        authority: String,
        /// What failed.
        cause: String,
    },
    /// vCenter's certificate is not the one configured (CA or pinned thumbprint).
    #[error("vcguard cannot reach vCenter at {authority}: {cause}")]
    UpstreamCertificate {
        /// vCenter's address.
        authority: String,
        /// The TLS error.
        cause: String,
    },
    /// vCenter did not answer in time.
    #[error("vCenter at {authority} did not answer within {secs} s")]
    UpstreamTimeout {
        /// vCenter's address.
        authority: String,
        /// The response timeout in seconds.
        secs: u64,
    },
    /// vCenter's answer broke off while the gateway had to read it.
    #[error("vcguard: vCenter's answer broke off: {cause}")]
    UpstreamBroken {
        /// What broke.
        cause: String,
    },
    /// A step of the gateway failed (a panic); nothing was forwarded.
    #[error("vcguard failed internally ({what}) and did not forward this call")]
    Internal {
        /// What failed, without secrets: the panic message.
        what: String,
    },
}

impl GatewayError {
    /// A step ran outside the gateway's stack, without the facts the first step puts in place.
    pub fn missing_facts(step: &str) -> Self {
        Self::Internal {
            what: format!("the {step} step ran without the request's facts"),
        }
    }

    /// A step panicked with `payload`.
    pub fn from_panic(payload: &(dyn std::any::Any + Send)) -> Self {
        let message = payload
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("a panic");
        Self::Internal {
            what: format!("panic: {message}"),
        }
    }

    /// The HTTP status the client gets.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Denied { .. }
            | Self::ApprovalRequired { .. }
            | Self::LookupFailed { .. }
            | Self::Malformed(_)
            | Self::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            Self::StateUnavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedEncoding { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::ClientAborted { .. } | Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::AuditUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::UpstreamUnreachable { .. }
            | Self::UpstreamCertificate { .. }
            | Self::UpstreamBroken { .. } => StatusCode::BAD_GATEWAY,
            Self::UpstreamTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// The vim fault type the client gets.
    pub fn fault_type(&self) -> FaultType {
        match self {
            Self::Denied { .. }
            | Self::ApprovalRequired { .. }
            | Self::StateUnavailable { .. }
            | Self::LookupFailed { .. } => FaultType::RestrictedByAdministrator,
            Self::Malformed(refusal) => refusal.fault_type,
            Self::BodyTooLarge { .. }
            | Self::UnsupportedEncoding { .. }
            | Self::ClientAborted { .. }
            | Self::BadRequest(_) => FaultType::InvalidRequest,
            Self::AuditUnavailable
            | Self::UpstreamUnreachable { .. }
            | Self::UpstreamCertificate { .. }
            | Self::UpstreamTimeout { .. }
            | Self::UpstreamBroken { .. } => FaultType::HostCommunication,
            Self::Internal { .. } => FaultType::SystemError,
        }
    }

    /// The short name of the cause in audit records' `error` member and in logs.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Denied { .. } => "denied",
            Self::ApprovalRequired { .. } => "approval_required",
            Self::StateUnavailable { .. } => "state_unavailable",
            Self::LookupFailed { .. } => "lookup_failed",
            Self::Malformed(_) => "malformed",
            Self::BodyTooLarge { .. } => "too_large",
            Self::UnsupportedEncoding { .. } => "encoding",
            Self::ClientAborted { .. } => "client_aborted",
            Self::BadRequest(_) => "bad_request",
            Self::AuditUnavailable => "audit_unavailable",
            Self::UpstreamUnreachable { .. } => "upstream_unreachable",
            Self::UpstreamCertificate { .. } => "tls_mismatch",
            Self::UpstreamTimeout { .. } => "timeout",
            Self::UpstreamBroken { .. } => "upstream_reset",
            Self::Internal { .. } => "internal",
        }
    }

    /// The outcome counted in `vcguard_requests_total`.
    pub fn outcome(&self) -> Outcome {
        match self {
            Self::ClientAborted { .. } => Outcome::ClientAborted,
            Self::UpstreamUnreachable { .. }
            | Self::UpstreamCertificate { .. }
            | Self::UpstreamBroken { .. } => Outcome::UpstreamError,
            Self::UpstreamTimeout { .. } => Outcome::UpstreamTimeout,
            Self::Internal { .. } => Outcome::Internal,
            Self::Denied { .. }
            | Self::ApprovalRequired { .. }
            | Self::StateUnavailable { .. }
            | Self::LookupFailed { .. }
            | Self::Malformed(_)
            | Self::BodyTooLarge { .. }
            | Self::UnsupportedEncoding { .. }
            | Self::BadRequest(_)
            | Self::AuditUnavailable => Outcome::Refused,
        }
    }

    /// The decision behind a denial, if this is one.
    pub fn decision(&self) -> Option<&Arc<Decision>> {
        match self {
            Self::Denied { decision, .. }
            | Self::ApprovalRequired { decision, .. }
            | Self::StateUnavailable { decision, .. } => Some(decision),
            _ => None,
        }
    }

    /// The vim fault the client gets, its text ending with the request id.
    pub fn to_fault(&self, request_id: &str) -> VimFault {
        let text = format!("{self} (request {request_id})");
        match self {
            Self::Denied { .. }
            | Self::ApprovalRequired { .. }
            | Self::StateUnavailable { .. }
            | Self::LookupFailed { .. } => VimFault::restricted_by_administrator(text),
            Self::Malformed(refusal) => {
                VimFault::gateway(refusal.fault_type, "request.refused", text)
            }
            _ => VimFault::gateway(self.fault_type(), self.message_key(), text),
        }
    }

    /// The log line's message.
    pub fn log_message(&self) -> &'static str {
        match self {
            Self::UpstreamUnreachable { .. } | Self::UpstreamCertificate { .. } => {
                "vCenter unreachable"
            }
            Self::UpstreamTimeout { .. } => "vCenter did not answer in time",
            Self::UpstreamBroken { .. } => "vCenter's answer broke off",
            Self::ClientAborted { .. } => {
                "the client's request body broke off; not forwarded in full"
            }
            Self::AuditUnavailable => "audit log unwritable: refusing the guarded call",
            Self::Internal { .. } => "internal failure",
            Self::Denied { .. } => "denied",
            Self::ApprovalRequired { .. } => "approval required",
            Self::StateUnavailable { .. } => "state store unavailable: refusing the call",
            Self::LookupFailed { .. } => "look-up of a stored call failed: refusing the call",
            _ => "request refused",
        }
    }

    fn message_key(&self) -> &'static str {
        match self {
            Self::Denied { .. } | Self::ApprovalRequired { .. } => "policy.denied",
            Self::StateUnavailable { .. } => "state.unavailable",
            Self::LookupFailed { .. } => "lookup.failed",
            Self::Malformed(_) => "request.refused",
            Self::BodyTooLarge { .. } => "request.too_large",
            Self::UnsupportedEncoding { .. } => "request.encoding",
            Self::ClientAborted { .. } => "request.body",
            Self::BadRequest(_) => "request.invalid",
            Self::AuditUnavailable => "audit.unavailable",
            Self::UpstreamUnreachable { .. } | Self::UpstreamCertificate { .. } => {
                "upstream.unreachable"
            }
            Self::UpstreamTimeout { .. } => "upstream.timeout",
            Self::UpstreamBroken { .. } => "upstream.broken",
            Self::Internal { .. } => "internal",
        }
    }
}
