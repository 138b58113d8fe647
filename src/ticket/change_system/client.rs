//! The Table API client: two GETs per look-up, over rustls, bounded in time and size.

use std::error::Error as _;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::config::{ChangeSystemSettings, Credentials};
use super::record::{ChangeRecord, change_row, ci_rows, result_rows};
use crate::ticket::shown;

/// Largest answer body read; a change request and its CIs are a few kilobytes.
const MAX_ANSWER_BYTES: usize = 1024 * 1024;
/// Most affected CIs asked for in one look-up.
const MAX_AFFECTED_CIS: usize = 1000;
/// The `change_request` fields the checks need (`cmdb_ci.name` dot-walks the reference).
const CHANGE_FIELDS: &str = "sys_id,number,state,start_date,end_date,cmdb_ci.name";

/// Why a look-up produced no usable change request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LookupError {
    /// No connection or no answer (the text says which).
    Unreachable(String),
    /// No complete answer within the timeout.
    Timeout(u64),
    /// The change system answered with a non-2xx status.
    Status {
        /// The status.
        status: StatusCode,
        /// The `error.message` of the answer, when it had one.
        message: Option<String>,
    },
    /// The answer is not what the Table API documents.
    Malformed(String),
    /// No change request has this number.
    NotFound,
    /// Several change requests have this number.
    Ambiguous(usize),
}

impl LookupError {
    /// The reason text for ticket `id`.
    pub(crate) fn reason(&self, id: &str) -> String {
        match self {
            Self::Unreachable(detail) => format!("change system unreachable: {detail}"),
            Self::Timeout(secs) => {
                format!("change system unreachable: no answer within {secs} s")
            }
            Self::Status { status, message } => match message {
                Some(message) => format!("change system answered {status}: {message}"),
                None => format!("change system answered {status}"),
            },
            Self::Malformed(detail) => format!("change system sent an unusable answer: {detail}"),
            Self::NotFound => format!("{id} does not exist in the change system"),
            Self::Ambiguous(count) => {
                format!("{count} change requests are numbered {id}; the ticket is ambiguous")
            }
        }
    }

    /// The metric label for this failure.
    pub(crate) fn label(&self) -> &'static str {
        match self {
            Self::Unreachable(_) => "unreachable",
            Self::Timeout(_) => "timeout",
            Self::Status { .. } => "http_error",
            Self::Malformed(_) => "malformed",
            Self::NotFound => "not_found",
            Self::Ambiguous(_) => "ambiguous",
        }
    }

    /// Whether the change system answered properly (only the change was not usable).
    pub(crate) fn change_system_answered(&self) -> bool {
        matches!(self, Self::NotFound | Self::Ambiguous(_))
    }
}

type HttpsConnector = hyper_rustls::HttpsConnector<HttpConnector>;

/// Asks one ServiceNow instance about change requests.
#[derive(Clone)]
pub(crate) struct TableClient {
    client: Client<HttpsConnector, Empty<Bytes>>,
    base: Arc<str>,
    authorization: HeaderValue,
    timeout: std::time::Duration,
}

impl std::fmt::Debug for TableClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableClient")
            .field("base", &self.base)
            .field("authorization", &"<redacted>")
            .finish()
    }
}

impl TableClient {
    /// A client for `settings.base` trusting `tls`, logging in with `credentials`.
    pub(crate) fn new(
        settings: &ChangeSystemSettings,
        tls: rustls::ClientConfig,
        credentials: &Credentials,
    ) -> Result<Self, String> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(settings.timeout));
        http.set_nodelay(true);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_only()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(std::time::Duration::from_secs(30))
            .pool_max_idle_per_host(4)
            .build(connector);
        let mut authorization =
            HeaderValue::from_str(&credentials.header_value()).map_err(|_| {
                "the credentials hold characters an HTTP header cannot carry".to_owned()
            })?;
        authorization.set_sensitive(true);
        Ok(Self {
            client,
            base: settings.base.clone().into(),
            authorization,
            timeout: settings.timeout,
        })
    }

    /// Looks up change `number` (already checked to be query-safe) and its affected CIs, within
    /// the timeout.
    pub(crate) async fn change(&self, number: &str) -> Result<ChangeRecord, LookupError> {
        let secs = self.timeout.as_secs();
        tokio::time::timeout(self.timeout, self.change_unbounded(number))
            .await
            .unwrap_or(Err(LookupError::Timeout(secs)))
    }

    async fn change_unbounded(&self, number: &str) -> Result<ChangeRecord, LookupError> {
        // sysparm_limit=2: a number matching two records is refused, never resolved to the first.
        let uri = format!(
            "{}/api/now/table/change_request?sysparm_query={}&sysparm_fields={}&sysparm_limit=2",
            self.base,
            encode(&format!("number={number}")),
            encode(CHANGE_FIELDS),
        );
        let rows = self.get_rows(&uri).await?;
        let mut record = match rows.as_slice() {
            [] => return Err(LookupError::NotFound),
            [row] => change_row(row).map_err(LookupError::Malformed)?,
            several => return Err(LookupError::Ambiguous(several.len())),
        };
        if record.number != number {
            return Err(LookupError::Malformed(format!(
                "asked for {number}, got {}",
                shown(&record.number)
            )));
        }
        let uri = format!(
            "{}/api/now/table/task_ci?sysparm_query={}&sysparm_fields={}&sysparm_limit={MAX_AFFECTED_CIS}",
            self.base,
            encode(&format!("task={}", record.sys_id)),
            encode("ci_item.name"),
        );
        let rows = self.get_rows(&uri).await?;
        record
            .ci_names
            .extend(ci_rows(&rows).map_err(LookupError::Malformed)?);
        Ok(record)
    }

    async fn get_rows(
        &self,
        uri: &str,
    ) -> Result<Vec<serde_json::Map<String, serde_json::Value>>, LookupError> {
        let request = Request::builder()
            .method(Method::GET)
            .uri(uri)
            .header(header::ACCEPT, "application/json")
            .header(header::AUTHORIZATION, self.authorization.clone())
            .header(
                header::USER_AGENT,
                concat!("vcguard/", env!("CARGO_PKG_VERSION")),
            )
            .body(Empty::new())
            .map_err(|err| LookupError::Malformed(format!("cannot build the request: {err}")))?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|err| LookupError::Unreachable(error_chain(&err)))?;
        let status = response.status();
        let body = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
            .collect()
            .await
            .map_err(|err| {
                if err.is::<http_body_util::LengthLimitError>() {
                    LookupError::Malformed(format!("answer longer than {MAX_ANSWER_BYTES} bytes"))
                } else {
                    LookupError::Unreachable(format!("answer broke off: {err}"))
                }
            })?
            .to_bytes();
        if !status.is_success() {
            return Err(LookupError::Status {
                status,
                message: error_message(&body),
            });
        }
        result_rows(&body).map_err(LookupError::Malformed)
    }
}

/// The `error.message` of a Table API failure answer, made safe to show.
fn error_message(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let message = value.get("error")?.get("message")?.as_str()?;
    (!message.is_empty()).then(|| shown(message))
}

/// An error and its sources, `client error (Connect): tcp connect error: Connection refused`.
fn error_chain(err: &hyper_util::client::legacy::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let next = cause.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = cause.source();
    }
    text
}

/// Percent-encodes a query parameter value: everything but RFC 3986 unreserved characters.
pub(crate) fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len() * 3);
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(encode("number=CHG0012345"), "number%3DCHG0012345");
        assert_eq!(
            encode(CHANGE_FIELDS),
            "sys_id%2Cnumber%2Cstate%2Cstart_date%2Cend_date%2Ccmdb_ci.name"
        );
        assert_eq!(encode("a^b&c d/é"), "a%5Eb%26c%20d%2F%C3%A9");
    }

    #[test]
    fn reasons() {
        assert_eq!(
            LookupError::Timeout(5).reason("CHG0012345"),
            "change system unreachable: no answer within 5 s"
        );
        assert_eq!(
            LookupError::Status {
                status: StatusCode::UNAUTHORIZED,
                message: error_message(
                    br#"{"error":{"message":"User Not Authenticated","detail":"Required to provide Auth information"},"status":"failure"}"#
                ),
            }
            .reason("CHG0012345"),
            "change system answered 401 Unauthorized: User Not Authenticated"
        );
        assert_eq!(
            LookupError::Ambiguous(2).reason("CHG0012345"),
            "2 change requests are numbered CHG0012345; the ticket is ambiguous"
        );
        assert_eq!(error_message(b"<html>"), None);
    }
}
