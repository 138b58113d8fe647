//! The console's session: a vCenter session made through the gateway's own forward path at
//! login, kept only in the browser in an `HttpOnly; Secure; SameSite=Strict` cookie scoped to
//! `/vcguard/ui/`, and the CSRF token derived from it.
//!
//! The cookie is vCenter's own SOAP session cookie (`vmware_soap_session`), so the identify step
//! resolves the console's user exactly as it does for any SOAP client. Nothing under `/vcguard/`
//! is forwarded, so the cookie never reaches vCenter from the browser.

use http::{HeaderMap, HeaderValue, Method, Request, StatusCode, header};
use sha2::{Digest, Sha256};

use crate::body::{collect_capped, full};
use crate::console::reply::{ApiError, same_secret};
use crate::gate::forward::Forward;
use crate::identity::{SessionCache, login_result};
use crate::vsphere::credentials::SOAP_COOKIE;
use crate::vsphere::fault::SOAP_CONTENT_TYPE;
use crate::vsphere::operation::Protocol;

/// The path the console's cookies are scoped to.
pub(crate) const COOKIE_PATH: &str = "/vcguard/ui/";
/// The cookie carrying the login form's CSRF token (before a session exists).
pub(crate) const LOGIN_COOKIE: &str = "vcguard_login";
const LOGIN_ANSWER_CAP: usize = 256 * 1024;
const SOAP_ACTION: &str = "urn:vim25/8.0.3.0";

/// The CSRF token of the session `token`: a hash of it under a fixed label, so every replica
/// derives the same one and the page never shows the session itself.
pub(crate) fn csrf_token(token: &str) -> String {
    let mut hash = Sha256::new();
    hash.update(b"vcguard console csrf v1\0");
    hash.update(token.as_bytes());
    hex::encode(&hash.finalize()[..20])
}

/// Whether `sent` is the CSRF token of the session `token`.
pub(crate) fn csrf_ok(token: &str, sent: Option<&str>) -> bool {
    sent.is_some_and(|sent| same_secret(&csrf_token(token), sent))
}

/// A fresh random value for the login form's CSRF cookie.
pub(crate) fn login_nonce() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// The value of cookie `name` in the request, if sent once.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| k.trim() == name)
        .map(|(_, v)| v.trim().trim_matches('"'))
}

/// A `Set-Cookie` value for the console: `HttpOnly; Secure; SameSite=Strict`, path-scoped.
pub(crate) fn set_cookie(name: &str, value: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!(
        "{name}={value}; Path={COOKIE_PATH}; HttpOnly; Secure; SameSite=Strict"
    ))
    .ok()
}

/// A `Set-Cookie` value that removes cookie `name`.
pub(crate) fn clear_cookie(name: &str) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{name}=; Path={COOKIE_PATH}; Max-Age=0; HttpOnly; Secure; SameSite=Strict"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("vcguard_login=; Max-Age=0"))
}

/// The console's session cookie name (vCenter's SOAP session cookie).
pub(crate) fn session_cookie_name() -> &'static str {
    SOAP_COOKIE
}

/// Whether a state-changing request comes from the console's own pages. A browser's
/// `Sec-Fetch-Site` must be `same-origin` when sent; an `Origin` header must name the host the
/// request was sent to (`https://` + `authority`), except `null`, which browsers send for the
/// console's own forms under `Referrer-Policy: no-referrer` and which then needs
/// `Sec-Fetch-Site: same-origin`. The CSRF token is checked on top of this.
pub(crate) fn same_origin(headers: &HeaderMap, authority: Option<&str>) -> bool {
    let fetch_site = headers
        .get("sec-fetch-site")
        .map(|v| v.to_str().unwrap_or("(not text)"));
    if fetch_site.is_some_and(|site| site != "same-origin") {
        return false;
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    if origin.as_bytes() == b"null" {
        return fetch_site == Some("same-origin");
    }
    let Some(host) = authority.filter(|h| !h.is_empty()) else {
        return false;
    };
    origin
        .to_str()
        .is_ok_and(|origin| origin == format!("https://{host}"))
}

/// A new vCenter session and its user.
pub(crate) struct LoggedIn {
    /// The session token (goes into the cookie only).
    pub(crate) token: String,
}

/// Logs in to vCenter through the gateway's forward path with SOAP `Login` and remembers the
/// session's user in the identify step's cache.
pub(crate) async fn login(
    forward: &Forward,
    sessions: &SessionCache,
    user: &str,
    password: &str,
) -> Result<LoggedIn, ApiError> {
    let envelope = format!(
        concat!(
            r#"<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">"#,
            r#"<soapenv:Body><Login xmlns="urn:vim25"><_this type="SessionManager">SessionManager</_this>"#,
            "<userName>{}</userName><password>{}</password></Login></soapenv:Body></soapenv:Envelope>"
        ),
        xml_text(user),
        xml_text(password)
    );
    let request = Request::builder()
        .method(Method::POST)
        .uri("/sdk")
        .header(header::CONTENT_TYPE, SOAP_CONTENT_TYPE)
        .header("soapaction", SOAP_ACTION)
        .body(full(envelope))
        .map_err(|err| ApiError::bad_request(format!("cannot build the login call: {err}")))?;
    let response = forward.send(request).await.map_err(|err| {
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            "upstream",
            format!("cannot log in to vCenter: {err}"),
        )
    })?;
    let (parts, body) = response.into_parts();
    let body = collect_capped(body, LOGIN_ANSWER_CAP)
        .await
        .map_err(|err| {
            ApiError::new(
                StatusCode::BAD_GATEWAY,
                "upstream",
                format!("vCenter's login answer could not be read: {err}"),
            )
        })?;
    if parts.status != StatusCode::OK {
        let invalid = body.windows(12).any(|w| w == b"InvalidLogin");
        return Err(if invalid {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_login",
                "vCenter refused the user name or password",
            )
        } else {
            ApiError::new(
                StatusCode::BAD_GATEWAY,
                "upstream",
                format!("vCenter answered the login with status {}", parts.status),
            )
        });
    }
    let found = login_result(Protocol::Soap, &parts.headers, &body).ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            "upstream",
            "vCenter's login answer has no session cookie or user name",
        )
    })?;
    sessions.put(sessions.key_for(&found.token), Some(found.user.clone()));
    tracing::info!(user = %found.user, session = %sessions.key_for(&found.token).short_hex(), "console login");
    Ok(LoggedIn { token: found.token })
}

/// Ends the vCenter session `token` (SOAP `Logout`) and forgets it in the cache.
pub(crate) async fn logout(forward: &Forward, sessions: &SessionCache, token: &str) {
    sessions.forget(&sessions.key_for(token));
    let envelope = concat!(
        r#"<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">"#,
        r#"<soapenv:Body><Logout xmlns="urn:vim25"><_this type="SessionManager">SessionManager</_this></Logout></soapenv:Body></soapenv:Envelope>"#
    );
    let Ok(cookie) = HeaderValue::from_str(&format!("{SOAP_COOKIE}=\"{token}\"")) else {
        return;
    };
    let request = Request::builder()
        .method(Method::POST)
        .uri("/sdk")
        .header(header::CONTENT_TYPE, SOAP_CONTENT_TYPE)
        .header("soapaction", SOAP_ACTION)
        .header(header::COOKIE, cookie)
        .body(full(envelope));
    let Ok(request) = request else {
        return;
    };
    match forward.send(request).await {
        Ok(response) => {
            let _ = collect_capped(response.into_body(), LOGIN_ANSWER_CAP).await;
        }
        Err(err) => tracing::warn!(error = %err, "console logout: vCenter not reached"),
    }
}

/// `text` escaped for XML element content.
fn xml_text(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_csrf_token_depends_on_the_session_and_hides_it() {
        let a = csrf_token("session-a");
        assert_ne!(a, csrf_token("session-b"));
        assert!(!a.contains("session-a"));
        assert!(csrf_ok("session-a", Some(&a)));
        assert!(!csrf_ok("session-b", Some(&a)));
        assert!(!csrf_ok("session-a", None));
    }

    #[test]
    fn origin_must_match_the_host() {
        let mut headers = HeaderMap::new();
        let host = Some("gw:8443");
        assert!(same_origin(&headers, host));
        headers.insert(header::ORIGIN, HeaderValue::from_static("https://gw:8443"));
        assert!(same_origin(&headers, host));
        assert!(!same_origin(&headers, None));
        headers.insert(header::ORIGIN, HeaderValue::from_static("https://evil"));
        assert!(!same_origin(&headers, host));
        headers.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(!same_origin(&headers, host), "null without Sec-Fetch-Site");
        headers.insert("sec-fetch-site", HeaderValue::from_static("same-origin"));
        assert!(
            same_origin(&headers, host),
            "null from the console's own form"
        );
        headers.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(!same_origin(&headers, host));
    }

    #[test]
    fn cookies_are_found_by_name() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; vcguard_login=xyz; b=2"),
        );
        assert_eq!(cookie(&headers, LOGIN_COOKIE), Some("xyz"));
        assert_eq!(cookie(&headers, "c"), None);
    }
}
