//! The bodies of decision and outcome records, written member by member.
//!
//! Every call through the gateway leaves one of these, so they are written without serde: its
//! flattening of the call into the outcome cost more than the record's own bytes. The bytes are
//! those serde_json wrote before: members in field order, absent and empty ones left out.

use super::chain::encode_str;
use super::record::{CallRecord, KeyedHash, OutcomeRecord, TicketRef};

/// The members of one JSON object, written in order into a buffer.
struct Members<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl<'a> Members<'a> {
    fn open(out: &'a mut Vec<u8>) -> Self {
        out.push(b'{');
        Members { out, first: true }
    }

    /// Starts a member; names are this module's own literals and need no escaping.
    fn name(&mut self, name: &str) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.out.push(b'"');
        self.out.extend_from_slice(name.as_bytes());
        self.out.extend_from_slice(b"\":");
    }

    fn str(&mut self, name: &str, value: &str) {
        self.name(name);
        encode_str(value, self.out);
    }

    fn opt_str(&mut self, name: &str, value: Option<&str>) {
        if let Some(value) = value {
            self.str(name, value);
        }
    }

    fn opt_u64(&mut self, name: &str, value: Option<u64>) {
        if let Some(value) = value {
            self.name(name);
            self.out
                .extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
        }
    }

    /// A list of strings, left out when empty.
    fn strs(&mut self, name: &str, values: &[String]) {
        let Some((head, tail)) = values.split_first() else {
            return;
        };
        self.name(name);
        self.out.push(b'[');
        encode_str(head, self.out);
        for value in tail {
            self.out.push(b',');
            encode_str(value, self.out);
        }
        self.out.push(b']');
    }

    fn ticket(&mut self, ticket: Option<&TicketRef>) {
        let Some(ticket) = ticket else {
            return;
        };
        let TicketRef { id, kind, hash } = ticket;
        self.name("ticket");
        let mut inner = Members::open(self.out);
        inner.str("id", id);
        inner.str("kind", kind.as_str());
        inner.opt_str("hash", hash.as_ref().map(KeyedHash::as_str));
        inner.close();
    }

    fn close(self) {
        self.out.push(b'}');
    }
}

/// Appends the body of a decision record: `call` as a JSON object.
pub(super) fn write_call(call: &CallRecord, out: &mut Vec<u8>) {
    let mut members = Members::open(out);
    call_members(call, &mut members);
    members.close();
}

/// Appends the body of an outcome record: the call's members, then what came back.
pub(super) fn write_outcome(outcome: &OutcomeRecord, out: &mut Vec<u8>) {
    let OutcomeRecord {
        call,
        status,
        fault,
        task,
        bytes_in,
        bytes_out,
        latency_ms,
        error,
    } = outcome;
    let mut members = Members::open(out);
    call_members(call, &mut members);
    members.opt_u64("status", status.map(u64::from));
    members.opt_str("fault", fault.as_deref());
    members.opt_str("task", task.as_deref());
    members.opt_u64("bytes_in", *bytes_in);
    members.opt_u64("bytes_out", *bytes_out);
    members.opt_u64("latency_ms", *latency_ms);
    members.opt_str("error", error.as_deref());
    members.close();
}

/// Writes the call's members; the whole record is destructured, so that a field added to
/// [`CallRecord`] cannot be left unwritten.
fn call_members(call: &CallRecord, members: &mut Members<'_>) {
    let CallRecord {
        request_id,
        client,
        protocol,
        method,
        mo_type,
        mo_id,
        route,
        principal,
        groups,
        session,
        ticket,
        decision,
        policies,
        monitor,
        reason,
        ticket_problem,
        policy_set,
        approval,
        claim,
        looked_up,
    } = call;
    members.str("request_id", request_id);
    members.opt_str("client", client.as_deref());
    members.opt_str("protocol", protocol.as_deref());
    members.opt_str("method", method.as_deref());
    members.opt_str("mo_type", mo_type.as_deref());
    members.opt_str("mo_id", mo_id.as_deref());
    members.opt_str("route", route.as_deref());
    members.opt_str("principal", principal.as_deref());
    members.strs("groups", groups);
    members.opt_str("session", session.as_ref().map(KeyedHash::as_str));
    members.ticket(ticket.as_ref());
    members.opt_str("decision", decision.map(|verdict| verdict.as_str()));
    members.strs("policies", policies);
    members.strs("monitor", monitor);
    members.opt_str("reason", reason.as_deref());
    members.opt_str("ticket_problem", ticket_problem.as_deref());
    members.opt_str("policy_set", policy_set.as_deref());
    members.opt_str("approval", approval.as_deref());
    members.opt_str("claim", claim.as_deref());
    members.opt_str("looked_up", looked_up.as_deref());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::record::{TicketKind, Verdict};

    fn full_call() -> CallRecord {
        CallRecord {
            request_id: "0123456789abcdef0000000000000001".into(),
            client: Some("10.0.0.7:50123".into()),
            protocol: Some("soap".into()),
            method: Some("EnterMaintenanceMode_Task".into()),
            mo_type: Some("HostSystem".into()),
            mo_id: Some("host-42".into()),
            route: Some("vim".into()),
            principal: Some("VSPHERE.LOCAL\\ops \"night\"".into()),
            groups: vec!["ops".into(), "change\u{1}board".into()],
            session: Some(KeyedHash::from_hex("aa".repeat(16))),
            ticket: Some(TicketRef {
                id: "CHG0001234".into(),
                kind: TicketKind::Signed,
                hash: Some(KeyedHash::from_hex("bb".repeat(16))),
            }),
            decision: Some(Verdict::Deny),
            policies: vec!["hosts-need-ticket".into()],
            monitor: vec!["m1".into(), "m2".into()],
            reason: Some("line one\nline two\ttab é ✓".into()),
            ticket_problem: Some("expired".into()),
            policy_set: Some("9f2c".into()),
            approval: Some("apr-1".into()),
            claim: Some("clm-2".into()),
            looked_up: Some("scheduled task: EnterMaintenanceMode_Task".into()),
        }
    }

    fn text(write: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut out = Vec::new();
        write(&mut out);
        String::from_utf8(out).expect("UTF-8")
    }

    #[test]
    fn every_member_of_a_full_outcome_is_written_in_order_and_escaped() {
        let outcome = OutcomeRecord {
            call: full_call(),
            status: Some(403),
            fault: Some("NoPermission".into()),
            task: Some("task-7".into()),
            bytes_in: Some(0),
            bytes_out: Some(18_446_744_073_709_551_615),
            latency_ms: Some(12),
            error: Some("client_aborted".into()),
        };
        let expected = concat!(
            r#"{"request_id":"0123456789abcdef0000000000000001","client":"10.0.0.7:50123","#,
            r#""protocol":"soap","method":"EnterMaintenanceMode_Task","mo_type":"HostSystem","#,
            r#""mo_id":"host-42","route":"vim","principal":"VSPHERE.LOCAL\\ops \"night\"","#,
            r#""groups":["ops","change\u0001board"],"session":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","#,
            r#""ticket":{"id":"CHG0001234","kind":"signed","hash":"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"},"#,
            r#""decision":"deny","policies":["hosts-need-ticket"],"monitor":["m1","m2"],"#,
            r#""reason":"line one\nline two\ttab é ✓","ticket_problem":"expired","#,
            r#""policy_set":"9f2c","approval":"apr-1","claim":"clm-2","#,
            r#""looked_up":"scheduled task: EnterMaintenanceMode_Task","#,
            r#""status":403,"fault":"NoPermission","task":"task-7","bytes_in":0,"#,
            r#""bytes_out":18446744073709551615,"latency_ms":12,"error":"client_aborted"}"#,
        );
        let written = text(|out| write_outcome(&outcome, out));
        assert_eq!(written, expected);
        let parsed: serde_json::Value = serde_json::from_str(&written).expect("valid JSON");
        assert_eq!(parsed["principal"], "VSPHERE.LOCAL\\ops \"night\"");
        assert_eq!(parsed["groups"][1], "change\u{1}board");
    }

    #[test]
    fn absent_and_empty_members_are_left_out() {
        let call = CallRecord {
            request_id: "r1".into(),
            ticket: Some(TicketRef {
                id: "CHG1".into(),
                kind: TicketKind::Claimed,
                hash: None,
            }),
            decision: Some(Verdict::Allow),
            ..CallRecord::default()
        };
        assert_eq!(
            text(|out| write_call(&call, out)),
            r#"{"request_id":"r1","ticket":{"id":"CHG1","kind":"claimed"},"decision":"allow"}"#
        );
        assert_eq!(
            text(|out| write_outcome(&OutcomeRecord::default(), out)),
            r#"{"request_id":""}"#
        );
    }
}
