//! Record types: what the gateway submits, and the writer's own records.

use std::fmt::{self, Write as _};

use serde::Serialize;
use time::OffsetDateTime;

use super::AuditError;
use super::call_json::{write_call, write_outcome};

/// An event the gateway submits; the writer adds `v`, `seq`, `time`, `instance`, `prev` and `hash`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditEvent {
    /// A policy decision on a guarded call, written durably before forwarding.
    Decision(CallRecord),
    /// The outcome of any call, written after the response.
    Outcome(OutcomeRecord),
    /// A policy-set reload attempt.
    Reload(ReloadRecord),
    /// A step of an approval request: requested, approved, denied, used, expired.
    Approval(ApprovalRecord),
    /// A ticket claim made or released.
    Claim(ClaimRecord),
}

/// The verdict of the policy engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The call may proceed (a non-empty `monitor` list makes it a would-deny).
    Allow,
    /// The call was refused.
    Deny,
}

impl Verdict {
    /// The verdict as written in records: `allow` or `deny`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Allow => "allow",
            Verdict::Deny => "deny",
        }
    }
}

/// How a change ticket was presented (`pattern` or `signed`, as in the policy context).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TicketKind {
    /// A plain id matched against the configured pattern.
    Pattern,
    /// A JWT signed by the change system.
    Signed,
    /// Carried by the caller's ticket claim (no header).
    Claimed,
}

impl TicketKind {
    /// The kind as written in records: `pattern`, `signed` or `claimed`.
    pub fn as_str(self) -> &'static str {
        match self {
            TicketKind::Pattern => "pattern",
            TicketKind::Signed => "signed",
            TicketKind::Claimed => "claimed",
        }
    }
}

/// A keyed hash (HMAC-SHA256, first 32 hex digits); only the redactor makes one.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct KeyedHash(String);

impl KeyedHash {
    pub(super) fn from_hex(hex: String) -> Self {
        KeyedHash(hex)
    }

    /// The hash as lowercase hex.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for KeyedHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyedHash({})", self.0)
    }
}

impl fmt::Display for KeyedHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The change ticket attached to a call: its id, kind and the keyed hash of the raw token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketRef {
    /// The ticket id (change number), not secret.
    pub id: String,
    /// Pattern-checked id or signed JWT.
    pub kind: TicketKind,
    /// Keyed hash of the raw header value; the token itself never enters the log.
    pub hash: Option<KeyedHash>,
}

/// The fields describing one call through the gateway (written by `call_json`, in this order).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallRecord {
    /// The gateway's request id (also in the tracing logs).
    pub request_id: String,
    /// Client address as `ip:port`.
    pub client: Option<String>,
    /// Protocol the client spoke, e.g. `vi-json`, `soap`, `rest`, `other`.
    pub protocol: Option<String>,
    /// vim method, e.g. `EnterMaintenanceMode_Task`, or the HTTP method for other calls.
    pub method: Option<String>,
    /// Managed object type, e.g. `HostSystem`.
    pub mo_type: Option<String>,
    /// Managed object id, e.g. `host-42`.
    pub mo_id: Option<String>,
    /// The request path (without query string secrets).
    pub route: Option<String>,
    /// The vCenter user the call ran as.
    pub principal: Option<String>,
    /// Groups a verified identity token added to the principal.
    pub groups: Vec<String>,
    /// Keyed hash of the session token.
    pub session: Option<KeyedHash>,
    /// The change ticket, if one was attached.
    pub ticket: Option<TicketRef>,
    /// The verdict, on guarded calls.
    pub decision: Option<Verdict>,
    /// Ids of the policies that determined the verdict.
    pub policies: Vec<String>,
    /// Ids of monitor-mode policies that would have denied the call.
    pub monitor: Vec<String>,
    /// The operator-facing reason of the verdict, or why the gateway refused or failed the call.
    pub reason: Option<String>,
    /// Why the change ticket the call carried was not accepted (bad signature, expired, ...).
    pub ticket_problem: Option<String>,
    /// Hash of the policy set in force.
    pub policy_set: Option<String>,
    /// The approval request this call filed, or the approval it used (`apr-…`).
    pub approval: Option<String>,
    /// The ticket claim that gave the call its ticket (`clm-…`).
    pub claim: Option<String>,
    /// What a stored call turned out to do when vcguard looked it up in vCenter (a scheduled
    /// task's action, a DRS recommendation's reason); the call was decided on that.
    pub looked_up: Option<String>,
}

/// The outcome of a call: the call fields plus what came back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutcomeRecord {
    /// The call the outcome belongs to (same fields as its decision record).
    pub call: CallRecord,
    /// HTTP status returned to the client.
    pub status: Option<u16>,
    /// vim fault type, e.g. `InvalidState`.
    pub fault: Option<String>,
    /// Task reference returned, e.g. `task-1234`.
    pub task: Option<String>,
    /// Request body bytes received from the client.
    pub bytes_in: Option<u64>,
    /// Response body bytes sent to the client.
    pub bytes_out: Option<u64>,
    /// Time from request received to response complete, in milliseconds.
    pub latency_ms: Option<u64>,
    /// Gateway-side error, e.g. `upstream timeout`.
    pub error: Option<String>,
}

impl OutcomeRecord {
    /// The outcome of `call`, nothing known yet of what came back.
    pub fn new(call: CallRecord) -> Self {
        Self {
            call,
            ..Self::default()
        }
    }
}

/// A policy-set reload attempt.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReloadRecord {
    /// Whether the new set was accepted.
    pub ok: bool,
    /// Hash of the set in force before.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old_hash: Option<String>,
    /// Hash of the candidate set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_hash: Option<String>,
    /// Validation errors when rejected.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
    /// Where the set came from, e.g. a directory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// What triggered the reload, e.g. `SIGHUP`, `admin`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trigger: Option<String>,
}

/// A step in the life of an approval request (record kind `approval`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ApprovalRecord {
    /// `requested`, `approved`, `denied`, `used` or `expired`.
    pub event: String,
    /// The request id, `apr-…`.
    pub id: String,
    /// Who made the call that needs the approval.
    pub requester: String,
    /// The vim method.
    pub action: String,
    /// The target object, `Type:moid`.
    pub target: String,
    /// SHA-256 of the call's canonical parsed body.
    pub body_hash: String,
    /// The group whose members may decide.
    pub group: String,
    /// The policy asking for the approval.
    pub policy: String,
    /// One line for people.
    pub summary: String,
    /// Who approved or denied it (`approved`, `denied`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// The decider's comment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// The request id of the call that filed or used it (`requested`, `used`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Until when the approved call may be made (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window_until: Option<String>,
    /// Uses left after this step.
    pub uses_left: u32,
}

/// A ticket claim made or released (record kind `claim`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ClaimRecord {
    /// `created` or `released`.
    pub event: String,
    /// The claim id, `clm-…`.
    pub id: String,
    /// The user working under the ticket.
    pub user: String,
    /// The ticket id (never a raw signed token).
    pub ticket_id: String,
    /// How the ticket was verified: `pattern` or `signed`.
    pub ticket_kind: String,
    /// Hosts covered.
    pub hosts: Vec<String>,
    /// Actions covered (empty: all guarded actions).
    pub actions: Vec<String>,
    /// When the claim ends (RFC 3339).
    pub until: String,
}

/// Body of a `start` record.
#[derive(Debug, Clone, Serialize)]
pub(super) struct StartBody {
    pub(super) unclean_previous_stop: bool,
    pub(super) version: &'static str,
    pub(super) pid: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) torn_tail: Option<TornTail>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) chain_break: Option<ChainBreak>,
}

/// Why a start could not chain from the last record of the previous file.
#[derive(Debug, Clone, Serialize)]
pub(super) struct ChainBreak {
    /// The newest earlier file, whose last record could not be used.
    pub(super) file: String,
    /// What was wrong with it.
    pub(super) reason: String,
}

/// Body of a `reopen` record: the running writer found its active file changed.
#[derive(Debug, Clone, Serialize)]
pub(super) struct ReopenBody {
    /// `renamed`, `deleted`, `truncated`, `appended` or `missing`.
    pub(super) reason: &'static str,
    /// The old file's name (where it was set aside, for `truncated` and `appended`).
    pub(super) file: String,
    /// Seq of the old file's first record.
    pub(super) first_seq: u64,
    /// Seq of the last record the writer put in it.
    pub(super) last_seq: u64,
    /// Bytes the writer had written to it.
    pub(super) expected_bytes: u64,
    /// Bytes found at the path (`truncated`, `appended`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) found_bytes: Option<u64>,
}

/// Body of a `gap` record: records dropped while the log could not be written.
#[derive(Debug, Clone, Serialize)]
pub(super) struct GapBody {
    /// How many records were dropped.
    pub(super) lost: u64,
    /// Submission time of the first dropped record.
    pub(super) from: String,
    /// Submission time of the last dropped record.
    pub(super) until: String,
    /// The write error at the time.
    pub(super) reason: String,
}

/// Body of a `retention` record: rotated files removed by `keep_files` / `keep_days`.
#[derive(Debug, Clone, Serialize)]
pub(super) struct RetentionBody {
    /// Names of the removed files, oldest first.
    pub(super) removed: Vec<String>,
    /// Seq of the first record still kept.
    pub(super) oldest_kept_seq: u64,
    /// The `keep_files` setting (0: no limit).
    pub(super) keep_files: u32,
    /// The `keep_days` setting (0: no limit).
    pub(super) keep_days: u32,
}

/// A torn final line removed at start-up after a crash.
#[derive(Debug, Clone, Serialize)]
pub(super) struct TornTail {
    pub(super) file: String,
    pub(super) offset: u64,
    pub(super) length: u64,
    pub(super) sha256: String,
    pub(super) text: String,
}

/// Body of a `stop` record.
#[derive(Debug, Clone, Serialize)]
pub(super) struct StopBody {
    pub(super) records: u64,
    pub(super) failures: u64,
}

/// Body of a `checkpoint` record.
#[derive(Debug, Clone, Serialize)]
pub(super) struct CheckpointBody {
    pub(super) records: u64,
    pub(super) failures: u64,
    pub(super) file: String,
}

/// Syslog severity of a record.
pub(super) const SEVERITY_WARNING: u8 = 4;
pub(super) const SEVERITY_NOTICE: u8 = 5;
pub(super) const SEVERITY_INFO: u8 = 6;

/// A record body serialised once by the submitting task, ready for the writer to chain.
#[derive(Debug, Clone)]
pub(super) struct Prepared {
    pub(super) kind: &'static str,
    pub(super) time: String,
    pub(super) body: Vec<u8>,
    pub(super) severity: u8,
}

impl Prepared {
    pub(super) fn event(event: &AuditEvent) -> Result<Prepared, AuditError> {
        match event {
            AuditEvent::Decision(call) => {
                let severity = if call.decision == Some(Verdict::Deny) {
                    SEVERITY_NOTICE
                } else {
                    SEVERITY_INFO
                };
                Ok(Prepared::written("decision", severity, |out| {
                    write_call(call, out)
                }))
            }
            AuditEvent::Outcome(outcome) => {
                Ok(Prepared::written("outcome", SEVERITY_INFO, |out| {
                    write_outcome(outcome, out)
                }))
            }
            AuditEvent::Reload(reload) => {
                let severity = if reload.ok {
                    SEVERITY_INFO
                } else {
                    SEVERITY_WARNING
                };
                Prepared::body("reload", reload, severity)
            }
            AuditEvent::Approval(approval) => Prepared::body("approval", approval, SEVERITY_NOTICE),
            AuditEvent::Claim(claim) => Prepared::body("claim", claim, SEVERITY_NOTICE),
        }
    }

    /// A body written by `write`, which appends one JSON object.
    fn written(kind: &'static str, severity: u8, write: impl FnOnce(&mut Vec<u8>)) -> Prepared {
        let mut json = Vec::with_capacity(BODY_CAPACITY);
        write(&mut json);
        Prepared {
            kind,
            time: format_time(OffsetDateTime::now_utc()),
            body: json,
            severity,
        }
    }

    pub(super) fn body<T: Serialize>(
        kind: &'static str,
        body: &T,
        severity: u8,
    ) -> Result<Prepared, AuditError> {
        let mut json = Vec::with_capacity(BODY_CAPACITY);
        serde_json::to_writer(&mut json, body).map_err(|e| AuditError::Encode(e.to_string()))?;
        if !json.starts_with(b"{") {
            return Err(AuditError::Encode("record body is not an object".into()));
        }
        Ok(Prepared {
            kind,
            time: format_time(OffsetDateTime::now_utc()),
            body: json,
            severity,
        })
    }
}

/// Room for a typical record body (an outcome is 300–500 bytes), so it is not regrown.
const BODY_CAPACITY: usize = 768;

/// RFC 3339 UTC with microseconds, e.g. `2025-11-23T01:02:03.000456Z`.
pub(super) fn format_time(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let mut text = String::with_capacity(TIME_LEN);
    let Ok(year) = u32::try_from(t.year()) else {
        // Before year 0: never a clock's reading, written the long way.
        let _ = write!(text, "{:04}", t.year());
        return format_time_after_year(text, t);
    };
    push_digits(&mut text, year, 4);
    format_time_after_year(text, t)
}

fn format_time_after_year(mut text: String, t: OffsetDateTime) -> String {
    for (separator, value, width) in [
        ('-', u32::from(u8::from(t.month())), 2),
        ('-', u32::from(t.day()), 2),
        ('T', u32::from(t.hour()), 2),
        (':', u32::from(t.minute()), 2),
        (':', u32::from(t.second()), 2),
        ('.', t.microsecond(), 6),
    ] {
        text.push(separator);
        push_digits(&mut text, value, width);
    }
    text.push('Z');
    text
}

/// Appends the last `width` decimal digits of `value`, zero-padded, without `format!`'s padding
/// machinery (every record's time goes through here).
fn push_digits(text: &mut String, value: u32, width: u32) {
    for place in (0..width).rev() {
        let digit = value / 10u32.pow(place) % 10;
        text.push(char::from_digit(digit, 10).unwrap_or('0'));
    }
}

/// Length of a [`format_time`] text (years 0–9999).
const TIME_LEN: usize = "2025-11-23T01:02:03.000456Z".len();

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_format_is_fixed_width_utc() {
        let t = time::macros::datetime!(2025-01-02 03:04:05.000678 +02:00);
        assert_eq!(format_time(t), "2025-01-02T01:04:05.000678Z");
    }

    #[test]
    fn time_format_pads_every_field_at_both_ends_of_the_range() {
        for t in [
            time::macros::datetime!(0000-01-01 00:00:00.000000 UTC),
            time::macros::datetime!(9999-12-31 23:59:59.999999 UTC),
            time::macros::datetime!(2026-12-01 21:09:07.010203 UTC),
        ] {
            let expected = format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second(),
                t.microsecond()
            );
            assert_eq!(format_time(t), expected);
        }
    }

    #[test]
    fn outcome_flattens_call_fields() {
        let outcome = OutcomeRecord {
            call: CallRecord {
                request_id: "r1".into(),
                method: Some("EnterMaintenanceMode_Task".into()),
                ..CallRecord::default()
            },
            status: Some(200),
            ..OutcomeRecord::default()
        };
        let p = Prepared::event(&AuditEvent::Outcome(outcome)).unwrap();
        assert_eq!(
            String::from_utf8(p.body).unwrap(),
            r#"{"request_id":"r1","method":"EnterMaintenanceMode_Task","status":200}"#
        );
        assert_eq!(p.kind, "outcome");
    }
}
