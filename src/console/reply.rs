//! Answers of vcguard's own API and console: JSON and HTML bodies with the security headers,
//! and the typed error every handler returns.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use serde::Serialize;

use crate::body::{CollectError, ProxyBody, collect_capped, full};

/// The console's Content-Security-Policy: nothing from outside the gateway, no inline code.
pub(crate) const CSP: &str = "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Largest request body the API and the console read.
pub(crate) const BODY_CAP: usize = 64 * 1024;

/// Why an API call or a console action was refused: an HTTP status, a short machine-readable
/// name and a message a person can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// Short name, e.g. `self_approval`.
    pub error: &'static str,
    /// What went wrong and what to do.
    pub message: String,
}

impl ApiError {
    /// An error with `status`, `error` and `message`.
    pub(crate) fn new(status: StatusCode, error: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            error,
            message: message.into(),
        }
    }

    /// 400: the request itself is wrong.
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 404: no such thing.
    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 401: no known vCenter session.
    pub(crate) fn unauthenticated() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "no vCenter session known for this request: log in to vCenter through the gateway and send the session (vmware-api-session-id header or vmware_soap_session cookie)",
        )
    }

    /// 503: the state store cannot be used.
    pub(crate) fn state_unavailable(detail: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "state_unavailable",
            format!("vcguard's state store cannot be used: {detail}"),
        )
    }

    /// The JSON answer `{"error": ..., "message": ...}`.
    pub(crate) fn to_json(&self) -> Response<ProxyBody> {
        json(
            self.status,
            &serde_json::json!({"error": self.error, "message": self.message}),
        )
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// A JSON answer.
pub(crate) fn json<T: Serialize + ?Sized>(status: StatusCode, value: &T) -> Response<ProxyBody> {
    let body = serde_json::to_vec(value).unwrap_or_else(|err| {
        format!(r#"{{"error":"internal","message":"cannot encode the answer: {err}"}}"#)
            .into_bytes()
    });
    respond(status, "application/json", Bytes::from(body))
}

/// An HTML page.
pub(crate) fn html(status: StatusCode, page: String) -> Response<ProxyBody> {
    respond(status, "text/html; charset=utf-8", Bytes::from(page))
}

/// A static asset.
pub(crate) fn asset(content_type: &'static str, body: &'static str) -> Response<ProxyBody> {
    respond(
        StatusCode::OK,
        content_type,
        Bytes::from_static(body.as_bytes()),
    )
}

/// `303 See Other` to `location` (a path on the gateway).
pub(crate) fn see_other(location: &str) -> Response<ProxyBody> {
    let mut response = respond(
        StatusCode::SEE_OTHER,
        "text/plain; charset=utf-8",
        Bytes::new(),
    );
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// A response with the headers every answer under `/vcguard/` carries.
fn respond(status: StatusCode, content_type: &'static str, body: Bytes) -> Response<ProxyBody> {
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

/// Reads a request body of at most [`BODY_CAP`] bytes.
pub(crate) async fn read_body(body: ProxyBody) -> Result<Bytes, ApiError> {
    collect_capped(body, BODY_CAP)
        .await
        .map_err(|err| match err {
            CollectError::TooLarge { cap } => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!("the request body may be at most {cap} bytes"),
            ),
            CollectError::Read(err) => {
                ApiError::bad_request(format!("the request body could not be read: {err}"))
            }
        })
}

/// The pairs of an `application/x-www-form-urlencoded` body or query string.
pub(crate) fn form_pairs(bytes: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(bytes)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// The first value of `name` in `pairs`.
pub(crate) fn field<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Compares two secrets in time independent of where they differ.
pub(crate) fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_answer_carries_the_security_headers() {
        let response = html(StatusCode::OK, String::new());
        let headers = response.headers();
        assert_eq!(headers[header::CONTENT_SECURITY_POLICY], CSP);
        assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(headers[header::REFERRER_POLICY], "no-referrer");
        assert_eq!(headers[header::CACHE_CONTROL], "no-store");
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "abcd"));
    }

    #[test]
    fn forms_decode_once() {
        let pairs = form_pairs(b"comment=a%20b+c&csrf=x%26y");
        assert_eq!(field(&pairs, "comment"), Some("a b c"));
        assert_eq!(field(&pairs, "csrf"), Some("x&y"));
    }
}
