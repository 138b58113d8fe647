//! `/vcguard/ui/`: the web console. Server-rendered pages; every POST carries the session's
//! CSRF token and must come from the console's own origin.

use std::time::SystemTime;

use http::{Method, Request, Response, StatusCode, header};

use crate::body::ProxyBody;
use crate::console::html::{Nav, Notice, Viewer, esc, page};
use crate::console::reply::{asset, field, form_pairs, html, read_body, see_other};
use crate::console::session::{
    LOGIN_COOKIE, clear_cookie, cookie, csrf_ok, csrf_token, login, login_nonce, logout,
    same_origin, session_cookie_name, set_cookie,
};
use crate::console::{ConsoleInner, UI_PREFIX, Who, rfc3339, who};
use crate::gate::facts::Facts;

mod approvals;
mod audit;
mod claims;

use approvals::{approvals_page, decide_post};
use audit::audit_page;
use claims::{claim_post, claims_page, release_post};

const APP_CSS: &str = include_str!("../static/app.css");
const APP_JS: &str = include_str!("../static/app.js");

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
