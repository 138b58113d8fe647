//! Asking vCenter, with the caller's own token, whose session it is.

use serde_json::Value;

use http::{HeaderValue, Method, Request, StatusCode, header};

use crate::body::{collect_capped, empty, full};
use crate::gate::forward::Forward;
use crate::identity::learn::soap_user_name;
use crate::vsphere::credentials::{SESSION_HEADER, SOAP_COOKIE};
use crate::vsphere::fault::SOAP_CONTENT_TYPE;

/// Why vCenter could not say whose session a token is.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    /// vCenter answered with an unexpected status.
    #[error("vCenter answered the session lookup with status {0}")]
    Status(StatusCode),
    /// The answer could not be read or parsed.
    #[error("unreadable session lookup answer: {0}")]
    Unreadable(String),
    /// vCenter could not be asked.
    #[error("session lookup failed: {0}")]
    Unreachable(#[source] crate::gate::error::GatewayError),
}

const ANSWER_CAP: usize = 256 * 1024;
/// The VI/JSON release the gateway asks vCenter in when the call names none it can use.
pub const DEFAULT_RELEASE: &str = "8.0.3.0";

/// Which of vCenter's session services a token belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionService {
    /// The vim service, token from the `vmware-api-session-id` header (VI/JSON).
    VimJson,
    /// The vim service, token from the `vmware_soap_session` cookie (SOAP).
    Soap,
    /// The Automation REST API (`POST /api/session`), token from `vmware-api-session-id`.
    Rest,
}

/// The user of `token` (`Ok(None)`: vCenter does not know it), asked over the protocol the
/// token came from: `currentSession` over VI/JSON, SOAP `Fetch` with the cookie, or
/// `GET /api/session` for an Automation API session.
pub async fn lookup_user(
    forward: &Forward,
    token: &str,
    service: SessionService,
    release: Option<&str>,
) -> Result<Option<String>, LookupError> {
    let request = match service {
        SessionService::Soap => soap_request(token),
        SessionService::VimJson => json_request(token, release.unwrap_or(DEFAULT_RELEASE)),
        SessionService::Rest => rest_request(token),
    }
    .map_err(|err| LookupError::Unreadable(err.to_string()))?;
    let response = forward
        .send(request)
        .await
        .map_err(LookupError::Unreachable)?;
    let status = response.status();
    let body = collect_capped(response.into_body(), ANSWER_CAP)
        .await
        .map_err(|err| LookupError::Unreadable(err.to_string()))?;
    if service == SessionService::Rest {
        return match status {
            StatusCode::OK => user_field(&body, "user"),
            // vAPI: 401 UNAUTHENTICATED for a token that is not a live session.
            StatusCode::UNAUTHORIZED => Ok(None),
            other => Err(LookupError::Status(other)),
        };
    }
    if service == SessionService::Soap {
        return match status {
            StatusCode::OK => Ok(soap_user_name(&body)),
            // A SOAP fault (NotAuthenticated) means the cookie is not a live session.
            StatusCode::INTERNAL_SERVER_ERROR
                if body.windows(15).any(|w| w == b"NotAuthenticate") =>
            {
                Ok(None)
            }
            other => Err(LookupError::Status(other)),
        };
    }
    match status {
        StatusCode::OK => user_field(&body, "userName"),
        other => Err(LookupError::Status(other)),
    }
}

/// The string member `field` of a JSON answer (`None` for `null` or a missing member).
fn user_field(body: &[u8], field: &str) -> Result<Option<String>, LookupError> {
    let session: Value =
        serde_json::from_slice(body).map_err(|err| LookupError::Unreadable(err.to_string()))?;
    Ok(session
        .get(field)
        .and_then(Value::as_str)
        .map(str::to_owned))
}

fn rest_request(token: &str) -> Result<Request<crate::body::ProxyBody>, http::Error> {
    Request::builder()
        .method(Method::GET)
        .uri("/api/session")
        .header(SESSION_HEADER, HeaderValue::from_str(token)?)
        .body(empty())
}

fn json_request(
    token: &str,
    release: &str,
) -> Result<Request<crate::body::ProxyBody>, http::Error> {
    Request::builder()
        .method(Method::GET)
        .uri(format!(
            "/sdk/vim25/{release}/SessionManager/SessionManager/currentSession"
        ))
        .header(SESSION_HEADER, HeaderValue::from_str(token)?)
        .body(empty())
}

fn soap_request(token: &str) -> Result<Request<crate::body::ProxyBody>, http::Error> {
    let envelope = concat!(
        r#"<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">"#,
        r#"<soapenv:Body><Fetch xmlns="urn:vim25"><_this type="SessionManager">SessionManager</_this><prop>currentSession</prop></Fetch></soapenv:Body></soapenv:Envelope>"#
    );
    Request::builder()
        .method(Method::POST)
        .uri("/sdk")
        .header(header::CONTENT_TYPE, SOAP_CONTENT_TYPE)
        .header("soapaction", "urn:vim25/8.0.3.0")
        .header(
            header::COOKIE,
            HeaderValue::from_str(&format!("{SOAP_COOKIE}=\"{token}\""))?,
        )
        .body(full(envelope))
}
