//! The approvals page: pending requests (approve or deny with a comment, or why not) and the
//! recently decided ones.

use std::fmt::Write as _;
use std::time::SystemTime;

use http::{Response, StatusCode};

use super::{Session, frame, refused, time_cell};
use crate::body::ProxyBody;
use crate::console::api::decide;
use crate::console::html::{Nav, Notice, csrf_field, esc};
use crate::console::reply::{ApiError, field, html, see_other};
use crate::console::session::csrf_token;
use crate::console::{ConsoleInner, Who};
use crate::state::{Approval, ApprovalFilter, ApprovalState, Verdict};

/// Why `who` may not decide `approval`, if they may not.
fn why_not(who: &Who, approval: &Approval) -> Option<String> {
    if approval.key.requester == who.user {
        return Some(format!(
            "Your own request: another member of {} must approve or deny it.",
            approval.group
        ));
    }
    if !who.groups.iter().any(|g| g == &approval.group) {
        return Some(format!(
            "You are not a member of {}, whose approval this request needs.",
            approval.group
        ));
    }
    None
}

fn approval_card(session: &Session, approval: &Approval, out: &mut String) {
    let id = esc(&approval.id);
    let _ = write!(
        out,
        "<article class=\"card approval\" id=\"{id}\" data-id=\"{id}\"><h3>{}</h3><dl class=\"facts\">",
        esc(&approval.summary)
    );
    let mut fact = |name: &str, value: String| {
        let _ = write!(out, "<dt>{name}</dt><dd>{value}</dd>");
    };
    fact("Request", format!("<span class=\"mono\">{id}</span>"));
    fact("Requested by", esc(&approval.key.requester));
    fact(
        "Call",
        format!(
            "<span class=\"mono\">{} on {}</span>",
            esc(&approval.key.action),
            esc(&approval.key.target)
        ),
    );
    fact("Approver group", esc(&approval.group));
    fact(
        "Policy",
        format!("<span class=\"mono\">{}</span>", esc(&approval.policy)),
    );
    if let Some(reason) = &approval.reason {
        fact("Reason", esc(reason));
    }
    fact("Requested", time_cell(approval.requested_at));
    fact("Expires", time_cell(approval.expires_at));
    out.push_str("</dl>");
    match why_not(&session.who, approval) {
        Some(reason) => {
            let _ = write!(out, "<p class=\"why-not\">{}</p>", esc(&reason));
        }
        None => {
            let _ = write!(
                out,
                concat!(
                    "<form class=\"stack decide\" method=\"post\" action=\"/vcguard/ui/approvals/{id}/decide\">{csrf}",
                    "<label>Comment <textarea name=\"comment\" maxlength=\"2000\" placeholder=\"why you approve or deny\"></textarea></label>",
                    "<div class=\"buttons\"><button type=\"submit\" name=\"verdict\" value=\"approve\" class=\"approve\">Approve</button>",
                    "<button type=\"submit\" name=\"verdict\" value=\"deny\" class=\"deny\" data-confirm=\"Deny this request?\">Deny</button></div>",
                    "</form>"
                ),
                id = id,
                csrf = csrf_field(&csrf_token(&session.token))
            );
        }
    }
    out.push_str("</article>");
}

pub(super) async fn approvals_page(
    inner: &ConsoleInner,
    session: &Session,
    notice: Option<Notice>,
    status: StatusCode,
) -> Response<ProxyBody> {
    let now = SystemTime::now();
    let pending = inner
        .approvals(
            &ApprovalFilter {
                state: Some(ApprovalState::Pending),
                requester: None,
                limit: 200,
            },
            now,
        )
        .await;
    let recent = inner
        .approvals(
            &ApprovalFilter {
                state: None,
                requester: None,
                limit: 50,
            },
            now,
        )
        .await;
    let (pending, recent) = match (pending, recent) {
        (Ok(p), Ok(r)) => (p, r),
        (Err(err), _) | (_, Err(err)) => {
            let error = ApiError::state_unavailable(err);
            return html(
                error.status,
                frame(
                    session,
                    "Approvals",
                    Nav::Approvals,
                    Some(&Notice::Error(error.message)),
                    "",
                ),
            );
        }
    };
    let mut body = String::from("<section id=\"pending\"><h2>Pending</h2>");
    if pending.is_empty() {
        body.push_str("<p class=\"empty\">No approval request is waiting.</p>");
    }
    for approval in &pending {
        approval_card(session, approval, &mut body);
    }
    body.push_str("</section><section id=\"decided\"><h2>Recent requests</h2>");
    body.push_str("<table><thead><tr><th>Request</th><th>Call</th><th>Requested by</th><th>State</th><th>Decided by</th><th>Comment</th><th>Decided</th></tr></thead><tbody>");
    for approval in recent.iter().filter(|a| a.state != ApprovalState::Pending) {
        let _ = write!(
            body,
            "<tr id=\"row-{id}\"><td class=\"mono\">{id}</td><td>{}</td><td>{}</td><td class=\"state {state}\">{state}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&approval.summary),
            esc(&approval.key.requester),
            esc(approval.decided_by.as_deref().unwrap_or("-")),
            esc(approval.comment.as_deref().unwrap_or("")),
            approval.decided_at.map(time_cell).unwrap_or_default(),
            id = esc(&approval.id),
            state = approval.state.as_str(),
        );
    }
    body.push_str("</tbody></table></section>");
    html(
        status,
        frame(session, "Approvals", Nav::Approvals, notice.as_ref(), &body),
    )
}

pub(super) async fn decide_post(
    inner: &ConsoleInner,
    session: &Session,
    id: &str,
    form: &[(String, String)],
) -> Response<ProxyBody> {
    let verdict = match field(form, "verdict") {
        Some("approve") => Verdict::Approve,
        Some("deny") => Verdict::Deny,
        _ => return refused(StatusCode::BAD_REQUEST, "choose Approve or Deny"),
    };
    let comment = field(form, "comment").unwrap_or_default().trim();
    match decide(inner, &session.who, id, verdict, comment, SystemTime::now()).await {
        Ok(approval) => {
            let done = match verdict {
                Verdict::Approve => "approved",
                Verdict::Deny => "denied",
            };
            see_other(&format!(
                "/vcguard/ui/approvals?done={done}&id={}",
                approval.id
            ))
        }
        Err(err) => {
            approvals_page(inner, session, Some(Notice::Error(err.message)), err.status).await
        }
    }
}
