//! The CLI's HTTP client: TLS to the gateway (rustls, hyper-util), a vCenter session made
//! through the gateway, and JSON calls to vcguard's API with that session.

use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use serde_json::Value;

use crate::config::UpstreamTrust;
use crate::upstream_connect::UpstreamConnector;
use crate::vsphere::credentials::SESSION_HEADER;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const CALL_TIMEOUT: Duration = Duration::from_secs(60);
const ANSWER_CAP: usize = 16 * 1024 * 1024;

/// Why a CLI call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The options are unusable.
    #[error("{0}")]
    Usage(String),
    /// The gateway could not be reached or did not answer.
    #[error("cannot reach the gateway at {gateway}: {cause}")]
    Unreachable {
        /// The gateway's URL.
        gateway: String,
        /// What failed.
        cause: String,
    },
    /// vCenter (through the gateway) refused the login.
    #[error("login as {user} failed: {detail}")]
    Login {
        /// The user.
        user: String,
        /// vCenter's or the gateway's answer.
        detail: String,
    },
    /// The API refused the call.
    #[error("{message} (HTTP {status}, {error})")]
    Api {
        /// The HTTP status.
        status: StatusCode,
        /// The API's short error name.
        error: String,
        /// The API's message.
        message: String,
    },
    /// The answer is not what the API sends.
    #[error("unexpected answer from the gateway: {0}")]
    Unexpected(String),
}

/// A logged-in connection to the gateway.
pub struct GatewayClient {
    client: Client<UpstreamConnector, Full<Bytes>>,
    base: Uri,
    release: String,
    session: Option<String>,
}

impl GatewayClient {
    /// A client of the gateway at `base` (`https://host:port`), trusting its certificate as
    /// `trust` says; `release` is the VI/JSON release used to log in (e.g. `8.0.3.0`).
    pub fn new(base: &str, trust: &UpstreamTrust, release: &str) -> Result<Self, ClientError> {
        let base: Uri = base
            .trim_end_matches('/')
            .parse()
            .map_err(|err| ClientError::Usage(format!("--gateway {base:?}: {err}")))?;
        if base.scheme_str() != Some("https") || base.authority().is_none() {
            return Err(ClientError::Usage(format!(
                "--gateway {base}: expected https://HOST[:PORT]"
            )));
        }
        let tls = crate::tls::upstream_client_config(trust)
            .map_err(|err| ClientError::Usage(err.to_string()))?;
        let connector = UpstreamConnector::new(tls, CONNECT_TIMEOUT, None);
        let client = Client::builder(TokioExecutor::new())
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .build(connector);
        Ok(Self {
            client,
            base,
            release: release.to_owned(),
            session: None,
        })
    }

    fn url(&self, path: &str) -> Result<Uri, ClientError> {
        let scheme = self.base.scheme_str().unwrap_or("https");
        let authority = self.base.authority().map_or("", |a| a.as_str());
        format!("{scheme}://{authority}{path}")
            .parse()
            .map_err(|err| ClientError::Usage(format!("bad URL path {path:?}: {err}")))
    }

    async fn send(
        &self,
        request: Request<Full<Bytes>>,
    ) -> Result<(StatusCode, http::HeaderMap, Bytes), ClientError> {
        let unreachable = |cause: String| ClientError::Unreachable {
            gateway: self.base.to_string(),
            cause,
        };
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|err| unreachable(error_chain(&err)))?;
            let (parts, body) = response.into_parts();
            let body = http_body_util::Limited::new(body, ANSWER_CAP)
                .collect()
                .await
                .map_err(|err| unreachable(format!("the answer broke off: {err}")))?
                .to_bytes();
            Ok((parts.status, parts.headers, body))
        };
        tokio::time::timeout(CALL_TIMEOUT, exchange)
            .await
            .map_err(|_| unreachable(format!("no answer within {} s", CALL_TIMEOUT.as_secs())))?
    }

    /// Logs in to vCenter through the gateway (VI/JSON `Login`) and keeps the session id.
    pub async fn login(&mut self, user: &str, password: &str) -> Result<(), ClientError> {
        let uri = self.url(&format!(
            "/sdk/vim25/{}/SessionManager/SessionManager/Login",
            self.release
        ))?;
        let body = serde_json::json!({"userName": user, "password": password}).to_string();
        let request = Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|err| ClientError::Usage(err.to_string()))?;
        let (status, headers, body) = self.send(request).await?;
        if status != StatusCode::OK {
            let detail = serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|fault| {
                    fault
                        .get("_typeName")
                        .and_then(Value::as_str)
                        .map(|t| match t {
                            "InvalidLogin" => {
                                "vCenter refused the user name or password".to_owned()
                            }
                            other => format!("{other}: {}", fault_text(&fault)),
                        })
                })
                .unwrap_or_else(|| {
                    format!(
                        "HTTP {status}: {}",
                        String::from_utf8_lossy(&body[..body.len().min(300)])
                    )
                });
            return Err(ClientError::Login {
                user: user.to_owned(),
                detail,
            });
        }
        let token = headers
            .get(SESSION_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .ok_or_else(|| ClientError::Login {
                user: user.to_owned(),
                detail: format!("the answer has no {SESSION_HEADER} header"),
            })?;
        self.session = Some(token);
        Ok(())
    }

    /// Ends the vCenter session (best effort).
    pub async fn logout(&mut self) {
        let Some(token) = self.session.take() else {
            return;
        };
        let Ok(uri) = self.url(&format!(
            "/sdk/vim25/{}/SessionManager/SessionManager/Logout",
            self.release
        )) else {
            return;
        };
        let request = Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header(SESSION_HEADER, token)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::new()));
        if let Ok(request) = request {
            let _ = self.send(request).await;
        }
    }

    /// Calls the API at `path` (under `/vcguard/api/v1/`) with the session; returns the JSON
    /// answer, or the API's error.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, ClientError> {
        let token = self
            .session
            .as_deref()
            .ok_or_else(|| ClientError::Usage("not logged in".into()))?;
        let mut request = Request::builder()
            .method(method)
            .uri(self.url(&format!("/vcguard/api/v1/{path}"))?)
            .header(SESSION_HEADER, token)
            .header(header::ACCEPT, "application/json");
        let bytes = match body {
            Some(body) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Bytes::from(body.to_string())
            }
            None => Bytes::new(),
        };
        let request = request
            .body(Full::new(bytes))
            .map_err(|err| ClientError::Usage(err.to_string()))?;
        let (status, _, body) = self.send(request).await?;
        let value: Value = serde_json::from_slice(&body).map_err(|_| {
            ClientError::Unexpected(format!(
                "HTTP {status} with a body that is not JSON: {}",
                String::from_utf8_lossy(&body[..body.len().min(200)])
            ))
        })?;
        if status.is_success() {
            return Ok(value);
        }
        let text = |key: &str| {
            value
                .get(key)
                .and_then(Value::as_str)
                .unwrap_or("-")
                .to_owned()
        };
        Err(ClientError::Api {
            status,
            error: text("error"),
            message: text("message"),
        })
    }
}

/// The message of a VI/JSON fault (`localizedMessage`, or the first fault message).
fn fault_text(fault: &Value) -> String {
    fault
        .get("localizedMessage")
        .or_else(|| fault.pointer("/faultMessage/0/message"))
        .and_then(Value::as_str)
        .unwrap_or("(no message)")
        .to_owned()
}

/// An error and its sources on one line.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
