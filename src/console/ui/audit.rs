//! The audit review page: recent records matching a filter, and the log's chain status.

use std::fmt::Write as _;

use http::{Response, StatusCode};
use serde_json::Value;

use super::{Session, frame};
use crate::body::ProxyBody;
use crate::console::ConsoleInner;
use crate::console::audit_view::{AuditForm, PAGE_RECORDS, load};
use crate::console::html::{Nav, Notice, esc};
use crate::console::reply::html;

fn text_of<'a>(record: &'a Value, key: &str) -> &'a str {
    record.get(key).and_then(Value::as_str).unwrap_or_default()
}

fn audit_filters(form: &AuditForm) -> String {
    let decision_option = |value: &str, label: &str| {
        let selected = if form.decision == value {
            " selected"
        } else {
            ""
        };
        format!("<option value=\"{value}\"{selected}>{label}</option>")
    };
    format!(
        concat!(
            "<form class=\"filters\" method=\"get\" action=\"/vcguard/ui/audit\" id=\"audit-filters\">",
            "<label>User <input name=\"user\" value=\"{}\"></label>",
            "<label>Host (moId) <input name=\"host\" value=\"{}\"></label>",
            "<label>Action <input name=\"action\" value=\"{}\"></label>",
            "<label>Decision <select name=\"decision\">{}{}{}{}</select></label>",
            "<label>From (UTC) <input name=\"since\" type=\"datetime-local\" value=\"{}\"></label>",
            "<label>Until (UTC) <input name=\"until\" type=\"datetime-local\" value=\"{}\"></label>",
            "<button type=\"submit\">Filter</button></form>"
        ),
        esc(&form.user),
        esc(&form.host),
        esc(&form.action),
        decision_option("", "any"),
        decision_option("allow", "allow"),
        decision_option("deny", "deny"),
        decision_option("would-deny", "would deny"),
        esc(&form.since),
        esc(&form.until),
    )
}

fn audit_row(record: &Value, out: &mut String) {
    let kind = text_of(record, "kind");
    let decision = match (kind, text_of(record, "decision"), record.get("monitor")) {
        ("approval" | "claim", _, _) => text_of(record, "event"),
        (_, "allow", Some(Value::Array(m))) if !m.is_empty() => "would_deny",
        (_, d, _) => d,
    };
    let principal = ["principal", "by", "user", "requester"]
        .iter()
        .map(|k| text_of(record, k))
        .find(|v| !v.is_empty())
        .unwrap_or("-");
    let what = match (text_of(record, "method"), text_of(record, "mo_id")) {
        ("", _) if kind == "claim" => format!(
            "{} on {}",
            text_of(record, "ticket"),
            record
                .get("hosts")
                .and_then(Value::as_array)
                .map(|h| h
                    .iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(", "))
                .unwrap_or_default()
        ),
        ("", _) => text_of(record, "summary").to_owned(),
        (m, "") => m.to_owned(),
        (m, o) => format!("{m} on {o}"),
    };
    let policies = record
        .get("policies")
        .and_then(Value::as_array)
        .map(|p| {
            p.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        })
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| text_of(record, "policy").to_owned());
    let mut reason: Vec<String> = Vec::new();
    if matches!(kind, "approval" | "claim") {
        reason.push(text_of(record, "id").to_owned());
    }
    for key in ["reason", "comment", "ticket_problem", "error", "fault"] {
        let value = text_of(record, key);
        if !value.is_empty() {
            reason.push(value.to_owned());
        }
    }
    let status = record
        .get("status")
        .and_then(Value::as_u64)
        .map(|s| s.to_string())
        .unwrap_or_default();
    let _ = write!(
        out,
        "<tr class=\"record {kind_class}\"><td class=\"mono\">{}</td><td>{}</td><td class=\"state {decision_class}\">{}</td><td>{}</td><td class=\"mono\">{}</td><td class=\"mono\">{}</td><td>{}</td><td>{}</td></tr>",
        esc(text_of(record, "time")),
        esc(kind),
        esc(decision),
        esc(principal),
        esc(&what),
        esc(&policies),
        esc(&status),
        esc(&reason.join(" · ")),
        kind_class = esc(kind),
        decision_class = esc(decision),
    );
}

pub(super) async fn audit_page(
    inner: &ConsoleInner,
    session: &Session,
    query: &[(String, String)],
) -> Response<ProxyBody> {
    let form = AuditForm::from_pairs(query);
    let filters = audit_filters(&form);
    let filter = match form.filter() {
        Ok(filter) => filter,
        Err(err) => {
            return html(
                StatusCode::BAD_REQUEST,
                frame(
                    session,
                    "Audit log",
                    Nav::Audit,
                    Some(&Notice::Error(err)),
                    &filters,
                ),
            );
        }
    };
    let file = inner.audit_file.clone();
    let loaded = tokio::task::spawn_blocking(move || load(&file, &filter))
        .await
        .map_err(|err| format!("the audit reader failed: {err}"))
        .and_then(|r| r);
    let page = match loaded {
        Ok(page) => page,
        Err(err) => {
            return html(
                StatusCode::INTERNAL_SERVER_ERROR,
                frame(
                    session,
                    "Audit log",
                    Nav::Audit,
                    Some(&Notice::Error(format!("cannot read the audit log: {err}"))),
                    &filters,
                ),
            );
        }
    };
    let (ok, summary) = &page.chain;
    let mut body = format!(
        "<p class=\"chain {}\" id=\"chain\">Chain: {} ({} file{})</p>",
        if *ok { "ok" } else { "broken" },
        esc(summary),
        page.files,
        if page.files == 1 { "" } else { "s" }
    );
    body.push_str(&filters);
    let _ = write!(
        body,
        "<p class=\"empty\">{} matching record{}; the newest {} are shown, newest first.</p>",
        page.matched,
        if page.matched == 1 { "" } else { "s" },
        page.records.len().min(PAGE_RECORDS)
    );
    body.push_str("<table id=\"records\"><thead><tr><th>Time (UTC)</th><th>Kind</th><th>Decision</th><th>User</th><th>Call</th><th>Policies</th><th>Status</th><th>Reason</th></tr></thead><tbody>");
    for record in &page.records {
        audit_row(record, &mut body);
    }
    body.push_str("</tbody></table>");
    html(
        StatusCode::OK,
        frame(session, "Audit log", Nav::Audit, None, &body),
    )
}
