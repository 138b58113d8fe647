//! Human-readable output of the client commands.

use std::fmt::Write as _;

use serde_json::Value;

use super::ClientCommand;

fn text<'a>(value: &'a Value, key: &str) -> &'a str {
    value.get(key).and_then(Value::as_str).unwrap_or("-")
}

fn list(value: &Value, key: &str) -> String {
    match value.get(key).and_then(Value::as_array) {
        Some(items) if !items.is_empty() => items
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(","),
        _ => "-".to_owned(),
    }
}

/// Pads rows into columns.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let last = cells.len() - 1;
        for (i, cell) in cells.iter().enumerate() {
            let cell: String = cell
                .chars()
                .map(|c| if c.is_control() { '?' } else { c })
                .collect();
            if i == last {
                out.push_str(&cell);
            } else {
                let _ = write!(out, "{cell:<width$}  ", width = widths[i]);
            }
        }
        out.push('\n');
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
    out
}

fn approval_row(a: &Value) -> Vec<String> {
    let key = a.get("key").cloned().unwrap_or_default();
    vec![
        text(a, "id").to_owned(),
        text(a, "state").to_owned(),
        text(&key, "requester").to_owned(),
        format!("{} on {}", text(&key, "action"), text(&key, "target")),
        text(a, "group").to_owned(),
        text(a, "requested_at").to_owned(),
        text(a, "decided_by").to_owned(),
    ]
}

fn approval_details(a: &Value) -> String {
    let key = a.get("key").cloned().unwrap_or_default();
    let mut out = String::new();
    let rows = [
        ("id", text(a, "id")),
        ("state", text(a, "state")),
        ("summary", text(a, "summary")),
        ("requester", text(&key, "requester")),
        ("action", text(&key, "action")),
        ("target", text(&key, "target")),
        ("group", text(a, "group")),
        ("policy", text(a, "policy")),
        ("reason", text(a, "reason")),
        ("requested", text(a, "requested_at")),
        ("expires", text(a, "expires_at")),
        ("decided by", text(a, "decided_by")),
        ("comment", text(a, "comment")),
        ("decided", text(a, "decided_at")),
        ("window until", text(a, "window_until")),
    ];
    for (name, value) in rows {
        let _ = writeln!(out, "{name:<13} {value}");
    }
    if let Some(uses) = a.get("uses_left").and_then(Value::as_u64) {
        let _ = writeln!(out, "{:<13} {uses}", "uses left");
    }
    out
}

fn claim_row(c: &Value) -> Vec<String> {
    let actions = list(c, "actions");
    vec![
        text(c, "id").to_owned(),
        format!("{} ({})", text(c, "ticket_id"), text(c, "ticket_kind")),
        list(c, "hosts"),
        if actions == "-" {
            "all guarded".to_owned()
        } else {
            actions
        },
        text(c, "until").to_owned(),
    ]
}

const CLAIM_HEADER: [&str; 5] = ["ID", "TICKET", "HOSTS", "ACTIONS", "UNTIL"];

/// The output of `command` whose API answer is `value`.
pub(super) fn render(command: &ClientCommand, value: &Value) -> String {
    match command {
        ClientCommand::ApprovalList { state } => {
            let items = value
                .get("approvals")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            if items.is_empty() {
                return format!("no approval requests ({state})\n");
            }
            let rows: Vec<Vec<String>> = items.iter().map(approval_row).collect();
            table(
                &[
                    "ID",
                    "STATE",
                    "REQUESTER",
                    "CALL",
                    "GROUP",
                    "REQUESTED",
                    "DECIDED BY",
                ],
                &rows,
            )
        }
        ClientCommand::ApprovalShow { .. } => approval_details(value),
        ClientCommand::ApprovalDecide { approve, .. } => {
            let head = if *approve {
                format!(
                    "approved {}: {} may retry the call until {} ({} use(s))\n",
                    text(value, "id"),
                    text(value.get("key").unwrap_or(&Value::Null), "requester"),
                    text(value, "window_until"),
                    value.get("uses_left").and_then(Value::as_u64).unwrap_or(0)
                )
            } else {
                format!("denied {}\n", text(value, "id"))
            };
            format!("{head}{}", approval_details(value))
        }
        ClientCommand::TicketClaim { .. } => format!(
            "claimed {}: ticket {} covers {} for {} until {}\n",
            text(value, "id"),
            text(value, "ticket_id"),
            list(value, "hosts"),
            claim_row(value)[3],
            text(value, "until")
        ),
        ClientCommand::TicketClaims => {
            let items = value
                .get("claims")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            if items.is_empty() {
                return "no active ticket claims\n".to_owned();
            }
            let rows: Vec<Vec<String>> = items.iter().map(claim_row).collect();
            table(&CLAIM_HEADER, &rows)
        }
        ClientCommand::TicketRelease { .. } => format!(
            "released {} (ticket {})\n",
            text(value, "id"),
            text(value, "ticket_id")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn approval_lists_are_tables() {
        let value = json!({"approvals": [{
            "id": "apr-abc", "state": "pending", "group": "change-approvers",
            "key": {"requester": "VSPHERE.LOCAL\\Administrator", "action": "ChangeLockdownMode", "target": "ham-21"},
            "requested_at": "2026-12-01T03:00:00Z"
        }]});
        let out = render(
            &ClientCommand::ApprovalList {
                state: "pending".into(),
            },
            &value,
        );
        assert!(out.starts_with("ID "), "{out}");
        assert!(out.contains("apr-abc"), "{out}");
        assert!(out.contains("ChangeLockdownMode on ham-21"), "{out}");
    }

    #[test]
    fn control_characters_never_reach_the_terminal() {
        let out = table(&["A", "B"], &[vec!["x\u{1b}[31m".into(), "y".into()]]);
        assert!(!out.contains('\u{1b}'));
    }
}
