//! `/vcguard/ui/`: the web console. Server-rendered pages; every POST carries the session's
//! CSRF token and must come from the console's own origin.

use std::fmt::Write as _;
use std::time::SystemTime;

use http::{Method, Request, Response, StatusCode, header};
use serde_json::Value;

use crate::body::ProxyBody;
use crate::console::api::{claim, decide, release};
use crate::console::audit_view::{AuditForm, PAGE_RECORDS, load};
use crate::console::claims::ClaimRequest;
use crate::console::html::{Nav, Notice, Viewer, csrf_field, esc, page};
use crate::console::reply::{ApiError, asset, field, form_pairs, html, read_body, see_other};
use crate::console::session::{
    LOGIN_COOKIE, clear_cookie, cookie, csrf_ok, csrf_token, login, login_nonce, logout,
    same_origin, session_cookie_name, set_cookie,
};
use crate::console::{ConsoleInner, UI_PREFIX, Who, rfc3339, who};
use crate::gate::facts::Facts;
use crate::state::{Approval, ApprovalFilter, ApprovalState, Claim, Verdict};
use crate::ticket::parse_ttl;

const APP_CSS: &str = include_str!("static/app.css");
const APP_JS: &str = include_str!("static/app.js");

/// A logged-in console user: who, and the session token the CSRF token is derived from.
struct Session {
    who: Who,
    token: String,
}

impl Session {
    fn viewer(&self) -> (String, String) {
        (self.who.user.clone(), csrf_token(&self.token))
    }
}

pub(super) async fn answer(
    inner: &ConsoleInner,
    req: Request<ProxyBody>,
    facts: &Facts,
) -> Response<ProxyBody> {
    let path = req.uri().path().to_owned();
    let rest = path.strip_prefix(UI_PREFIX).unwrap_or_default();
    let segments: Vec<&str> = rest.split('/').collect();
    let method = req.method().clone();
    match (&method, segments.as_slice()) {
        (&Method::GET, ["static", "app.css"]) => return asset("text/css; charset=utf-8", APP_CSS),
        (&Method::GET, ["static", "app.js"]) => {
            return asset("text/javascript; charset=utf-8", APP_JS);
        }
        (&Method::GET, ["login"]) => return login_page(None, StatusCode::OK),
        (&Method::POST, ["login"]) => return login_post(inner, req).await,
        _ => {}
    }
    let token = cookie(req.headers(), session_cookie_name()).map(str::to_owned);
    let (Some(who), Some(token)) = (who(facts), token) else {
        return see_other("/vcguard/ui/login");
    };
    let session = Session { who, token };
    if method == Method::POST {
        let authority = authority(&req);
        if !same_origin(req.headers(), authority.as_deref()) {
            return refused(
                StatusCode::FORBIDDEN,
                "this form was sent from another site (Origin does not match)",
            );
        }
        let body = match read_body(req.into_body()).await {
            Ok(body) => body,
            Err(err) => return refused(err.status, &err.message),
        };
        let form = form_pairs(&body);
        if !csrf_ok(&session.token, field(&form, "csrf")) {
            return refused(
                StatusCode::FORBIDDEN,
                "the form's CSRF token is missing or stale: reload the page and try again",
            );
        }
        return match segments.as_slice() {
            ["logout"] => {
                logout(&inner.forward, &inner.sessions, &session.token).await;
                let mut response = see_other("/vcguard/ui/login");
                response
                    .headers_mut()
                    .append(header::SET_COOKIE, clear_cookie(session_cookie_name()));
                response
            }
            ["approvals", id, "decide"] => decide_post(inner, &session, id, &form).await,
            ["claims"] => claim_post(inner, facts, &session, &form).await,
            ["claims", id, "release"] => release_post(inner, &session, id).await,
            _ => refused(StatusCode::NOT_FOUND, "no such console action"),
        };
    }
    if method != Method::GET && method != Method::HEAD {
        return refused(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    }
    let query = form_pairs(req.uri().query().unwrap_or_default().as_bytes());
    match segments.as_slice() {
        [""] | [] => see_other("/vcguard/ui/approvals"),
        ["approvals"] => {
            let notice = done_notice(&query);
            approvals_page(inner, &session, notice, StatusCode::OK).await
        }
        ["claims"] => {
            let notice = done_notice(&query);
            claims_page(inner, &session, notice, StatusCode::OK).await
        }
        ["audit"] => audit_page(inner, &session, &query).await,
        _ => refused(StatusCode::NOT_FOUND, "no such console page"),
    }
}

/// The host the browser sent the request to.
fn authority(req: &Request<ProxyBody>) -> Option<String> {
    req.uri()
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| {
            req.headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_owned)
        })
}

/// A bare error page (no navigation: the session may be the problem).
fn refused(status: StatusCode, message: &str) -> Response<ProxyBody> {
    let body = "<p><a href=\"/vcguard/ui/approvals\">Back to the console</a></p>";
    html(
        status,
        page(
            "Refused",
            Nav::None,
            None,
            Some(&Notice::Error(message.to_owned())),
            body,
        ),
    )
}

/// The notice of a finished action after its redirect (`?done=approved&id=apr-...`).
fn done_notice(query: &[(String, String)]) -> Option<Notice> {
    let id = field(query, "id").unwrap_or_default();
    let safe_id = id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if !safe_id {
        return None;
    }
    let text = match field(query, "done")? {
        "approved" => format!("Approved {id}. The requester can now retry the call."),
        "denied" => format!("Denied {id}."),
        "claimed" => format!("Claim {id} recorded."),
        "released" => format!("Claim {id} released."),
        _ => return None,
    };
    Some(Notice::Ok(text))
}

fn login_page(error: Option<&str>, status: StatusCode) -> Response<ProxyBody> {
    let nonce = login_nonce();
    let body = format!(
        concat!(
            "<div class=\"card login\"><form class=\"stack\" method=\"post\" action=\"/vcguard/ui/login\" id=\"login\">",
            "<input type=\"hidden\" name=\"login_csrf\" value=\"{nonce}\">",
            "<label>vCenter user <input name=\"user\" id=\"user-name\" autocomplete=\"username\" required></label>",
            "<label>Password <input name=\"password\" id=\"password\" type=\"password\" autocomplete=\"current-password\" required></label>",
            "<button type=\"submit\" id=\"login-button\">Log in</button>",
            "<p class=\"empty\">You log in to vCenter through vcguard; the console keeps only your vCenter session, in a cookie this page cannot read.</p>",
            "</form></div>"
        ),
        nonce = esc(&nonce)
    );
    let notice = error.map(|e| Notice::Error(e.to_owned()));
    let mut response = html(
        status,
        page("Log in", Nav::None, None, notice.as_ref(), &body),
    );
    if let Some(value) = set_cookie(LOGIN_COOKIE, &nonce) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

async fn login_post(inner: &ConsoleInner, req: Request<ProxyBody>) -> Response<ProxyBody> {
    let authority = authority(&req);
    if !same_origin(req.headers(), authority.as_deref()) {
        return login_page(
            Some("the login form was sent from another site"),
            StatusCode::FORBIDDEN,
        );
    }
    let nonce = cookie(req.headers(), LOGIN_COOKIE).map(str::to_owned);
    let body = match read_body(req.into_body()).await {
        Ok(body) => body,
        Err(err) => return login_page(Some(&err.message), err.status),
    };
    let form = form_pairs(&body);
    let fresh = match (nonce, field(&form, "login_csrf")) {
        (Some(cookie), Some(sent)) => crate::console::reply::same_secret(&cookie, sent),
        _ => false,
    };
    if !fresh {
        return login_page(
            Some("the login form expired: please log in again"),
            StatusCode::FORBIDDEN,
        );
    }
    let user = field(&form, "user").unwrap_or_default().trim();
    let password = field(&form, "password").unwrap_or_default();
    if user.is_empty() || password.is_empty() {
        return login_page(
            Some("enter your vCenter user name and password"),
            StatusCode::BAD_REQUEST,
        );
    }
    match login(&inner.forward, &inner.sessions, user, password).await {
        Ok(logged_in) => {
            let mut response = see_other("/vcguard/ui/approvals");
            match set_cookie(session_cookie_name(), &logged_in.token) {
                Some(value) => {
                    response.headers_mut().append(header::SET_COOKIE, value);
                }
                None => {
                    return login_page(
                        Some("vCenter's session id cannot be kept in a cookie"),
                        StatusCode::BAD_GATEWAY,
                    );
                }
            }
            response
                .headers_mut()
                .append(header::SET_COOKIE, clear_cookie(LOGIN_COOKIE));
            response
        }
        Err(err) => login_page(Some(&err.message), err.status),
    }
}

fn frame(session: &Session, title: &str, nav: Nav, notice: Option<&Notice>, body: &str) -> String {
    let (user, csrf) = session.viewer();
    let viewer = Viewer {
        user: &user,
        csrf: &csrf,
    };
    page(title, nav, Some(&viewer), notice, body)
}

fn time_cell(time: SystemTime) -> String {
    let text = rfc3339(time);
    format!("<time datetime=\"{0}\">{0}</time>", esc(&text))
}

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

async fn approvals_page(
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

async fn decide_post(
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

async fn claims_page(
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

async fn claim_post(
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

async fn release_post(inner: &ConsoleInner, session: &Session, id: &str) -> Response<ProxyBody> {
    match release(inner, &session.who, id, SystemTime::now()).await {
        Ok(claim) => see_other(&format!("/vcguard/ui/claims?done=released&id={}", claim.id)),
        Err(err) => claims_page(inner, session, Some(Notice::Error(err.message)), err.status).await,
    }
}

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

async fn audit_page(
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
