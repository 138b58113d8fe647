//! The ticket claims page: the user's active claims (release) and the form to claim a ticket.

use std::fmt::Write as _;
use std::time::SystemTime;

use http::{Response, StatusCode};

use super::{Session, frame, time_cell};
use crate::body::ProxyBody;
use crate::console::ConsoleInner;
use crate::console::api::{claim, release};
use crate::console::claims::ClaimRequest;
use crate::console::html::{Nav, Notice, csrf_field, esc};
use crate::console::reply::{ApiError, field, html, see_other};
use crate::console::session::csrf_token;
use crate::gate::facts::Facts;
use crate::state::Claim;
use crate::ticket::parse_ttl;

fn claim_form(session: &Session) -> String {
    format!(
        concat!(
            "<section id=\"new-claim\"><h2>Claim a ticket</h2><form class=\"stack card\" method=\"post\" action=\"/vcguard/ui/claims\">{csrf}",
            "<label>Change ticket <input name=\"ticket\" id=\"ticket\" autocomplete=\"off\" required placeholder=\"CHG0012345 or a signed ticket\"></label>",
            "<label>Hosts (moIds, separated by spaces or commas) <input name=\"hosts\" id=\"hosts\" required placeholder=\"host-21\"></label>",
            "<label>Actions (optional; empty: the ticket's own scope) <input name=\"actions\" id=\"actions\" placeholder=\"EnterMaintenanceMode_Task\"></label>",
            "<label>For <input name=\"ttl\" id=\"ttl\" value=\"2h\" required placeholder=\"2h\"></label>",
            "<button type=\"submit\">Claim</button></form></section>"
        ),
        csrf = csrf_field(&csrf_token(&session.token))
    )
}

pub(super) async fn claims_page(
    inner: &ConsoleInner,
    session: &Session,
    notice: Option<Notice>,
    status: StatusCode,
) -> Response<ProxyBody> {
    let claims = match inner.claims_of(&session.who.user, SystemTime::now()).await {
        Ok(claims) => claims,
        Err(err) => {
            let error = ApiError::state_unavailable(err);
            return html(
                error.status,
                frame(
                    session,
                    "Ticket claims",
                    Nav::Claims,
                    Some(&Notice::Error(error.message)),
                    "",
                ),
            );
        }
    };
    let mut body = String::from(
        "<p>A claim attaches a change ticket to your calls from any client (govc, PowerCLI, Ansible, Terraform) that cannot send the ticket header.</p><section id=\"claims\"><h2>Your active claims</h2>",
    );
    if claims.is_empty() {
        body.push_str("<p class=\"empty\">You have no active claim.</p>");
    } else {
        body.push_str("<table><thead><tr><th>Claim</th><th>Ticket</th><th>Hosts</th><th>Actions</th><th>Until</th><th></th></tr></thead><tbody>");
        for claim in &claims {
            claim_row(session, claim, &mut body);
        }
        body.push_str("</tbody></table>");
    }
    body.push_str("</section>");
    body.push_str(&claim_form(session));
    html(
        status,
        frame(
            session,
            "Ticket claims",
            Nav::Claims,
            notice.as_ref(),
            &body,
        ),
    )
}

fn claim_row(session: &Session, claim: &Claim, out: &mut String) {
    let actions = if claim.actions.is_empty() {
        "all guarded actions".to_owned()
    } else {
        claim.actions.join(", ")
    };
    let _ = write!(
        out,
        concat!(
            "<tr id=\"{id}\"><td class=\"mono\">{id}</td><td>{} ({})</td><td>{}</td><td>{}</td><td>{}</td>",
            "<td><form class=\"inline\" method=\"post\" action=\"/vcguard/ui/claims/{id}/release\">{csrf}",
            "<button type=\"submit\" class=\"release\" data-confirm=\"Release this claim?\">Release</button></form></td></tr>"
        ),
        esc(&claim.ticket_id),
        esc(&claim.ticket_kind),
        esc(&claim.hosts.join(", ")),
        esc(&actions),
        time_cell(claim.until),
        id = esc(&claim.id),
        csrf = csrf_field(&csrf_token(&session.token)),
    );
}

fn words(text: &str) -> Vec<String> {
    text.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

pub(super) async fn claim_post(
    inner: &ConsoleInner,
    facts: &Facts,
    session: &Session,
    form: &[(String, String)],
) -> Response<ProxyBody> {
    let ttl = match parse_ttl(field(form, "ttl").unwrap_or_default().trim()) {
        Ok(ttl) => ttl,
        Err(err) => {
            return claims_page(
                inner,
                session,
                Some(Notice::Error(format!("For: {err}"))),
                StatusCode::BAD_REQUEST,
            )
            .await;
        }
    };
    let request = ClaimRequest {
        ticket: field(form, "ticket").unwrap_or_default().trim().to_owned(),
        hosts: words(field(form, "hosts").unwrap_or_default()),
        actions: words(field(form, "actions").unwrap_or_default()),
        ttl_secs: ttl.as_secs(),
    };
    match claim(inner, facts, &session.who, &request, SystemTime::now()).await {
        Ok(claim) => see_other(&format!("/vcguard/ui/claims?done=claimed&id={}", claim.id)),
        Err(err) => claims_page(inner, session, Some(Notice::Error(err.message)), err.status).await,
    }
}

pub(super) async fn release_post(
    inner: &ConsoleInner,
    session: &Session,
    id: &str,
) -> Response<ProxyBody> {
    match release(inner, &session.who, id, SystemTime::now()).await {
        Ok(claim) => see_other(&format!("/vcguard/ui/claims?done=released&id={}", claim.id)),
        Err(err) => claims_page(inner, session, Some(Notice::Error(err.message)), err.status).await,
    }
}
