//! A stand-in ServiceNow instance for tests: HTTPS on loopback port 0 with a certificate
//! generated at start (rcgen), answering the two Table API reads vcguard makes
//! (`change_request` by number, `task_ci` by task) as the Table API documents them:
//! `{"result": [...]}` with fields as strings, dot-walked field names as keys, states as codes,
//! failures as `{"error": {"message", "detail"}, "status": "failure"}`. It counts every request
//! and keeps every query string it was sent.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use vcguard::tls::SelfSigned;

/// How long a hanging answer hangs (longer than any timeout under test, bounded).
const HANG: Duration = Duration::from_secs(30);

/// A change request as the instance holds it.
#[derive(Debug, Clone)]
pub struct Change {
    pub sys_id: String,
    pub number: String,
    /// The state code as ServiceNow stores it, e.g. `"-1"` (implement).
    pub state: String,
    /// `YYYY-MM-DD HH:MM:SS` UTC, or `""`.
    pub start_date: String,
    pub end_date: String,
    /// The change's configuration item (`cmdb_ci`), by name.
    pub cmdb_ci: Option<String>,
    /// Affected CIs (`task_ci` rows), by name.
    pub affected: Vec<String>,
}

impl Change {
    /// A change numbered `number` in state `state` for `window` (start, end), on `cmdb_ci`.
    pub fn new(number: &str, state: i64, window: (String, String), cmdb_ci: &str) -> Self {
        let digest = sha2::Digest::finalize(sha2::Digest::chain_update(
            <sha2::Sha256 as sha2::Digest>::new(),
            number.as_bytes(),
        ));
        let sys_id: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
        Self {
            sys_id,
            number: number.to_owned(),
            state: state.to_string(),
            start_date: window.0,
            end_date: window.1,
            cmdb_ci: Some(cmdb_ci.to_owned()),
            affected: Vec::new(),
        }
    }
}

/// How the stand-in answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// As ServiceNow does.
    Normal,
    /// Every request fails with this status and a Table API error body.
    Status(u16),
    /// Accepts the request and answers nothing for a long time.
    Hang,
    /// Answers 200 with a body that is not JSON.
    Garbage,
}

struct State {
    authorization: String,
    changes: Mutex<Vec<Change>>,
    behaviour: Mutex<Behaviour>,
    delay: Mutex<Duration>,
    requests: AtomicUsize,
    queries: Mutex<Vec<String>>,
    accepts: Mutex<Vec<String>>,
}

/// A running stand-in; stops when dropped.
pub struct StandIn {
    pub addr: SocketAddr,
    pub certificate: SelfSigned,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl StandIn {
    /// Starts on 127.0.0.1 port 0, accepting only requests whose `Authorization` header is
    /// exactly `authorization` (e.g. `Bearer <token>`).
    pub async fn start(authorization: &str) -> Self {
        let certificate = SelfSigned::generate(&["localhost", "127.0.0.1"]).expect("certificate");
        let tls = tokio_rustls::TlsAcceptor::from(certificate.server_config().expect("tls"));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let state = Arc::new(State {
            authorization: authorization.to_owned(),
            changes: Mutex::default(),
            behaviour: Mutex::new(Behaviour::Normal),
            delay: Mutex::new(Duration::ZERO),
            requests: AtomicUsize::new(0),
            queries: Mutex::default(),
            accepts: Mutex::default(),
        });
        let served = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let (tls, state) = (tls.clone(), served.clone());
                tokio::spawn(async move {
                    let Ok(stream) = tls.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(move |req| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(answer(&state, req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            addr,
            certificate,
            state,
            task,
        }
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.addr.port())
    }

    /// Writes the certificate as a CA file into `dir`.
    pub fn write_ca(&self, dir: &Path) -> PathBuf {
        let path = dir.join("servicenow-ca.pem");
        std::fs::write(&path, &self.certificate.cert_pem).expect("write CA");
        path
    }

    pub fn add(&self, change: Change) {
        self.state.changes.lock().expect("changes").push(change);
    }

    /// Sets the state code of every change numbered `number`.
    pub fn set_state(&self, number: &str, state: i64) {
        for change in self.state.changes.lock().expect("changes").iter_mut() {
            if change.number == number {
                change.state = state.to_string();
            }
        }
    }

    pub fn set_behaviour(&self, behaviour: Behaviour) {
        *self.state.behaviour.lock().expect("behaviour") = behaviour;
    }

    /// Adds a fixed delay before every answer (a remote instance's round trip).
    pub fn set_delay(&self, delay: Duration) {
        *self.state.delay.lock().expect("delay") = delay;
    }

    /// Requests received so far (any path, any outcome).
    pub fn requests(&self) -> usize {
        self.state.requests.load(Ordering::SeqCst)
    }

    /// The raw query strings received so far.
    pub fn queries(&self) -> Vec<String> {
        self.state.queries.lock().expect("queries").clone()
    }

    /// The `Accept` headers received so far.
    pub fn accepts(&self) -> Vec<String> {
        self.state.accepts.lock().expect("accepts").clone()
    }
}

async fn answer(state: &State, req: Request<Incoming>) -> Response<Full<Bytes>> {
    state.requests.fetch_add(1, Ordering::SeqCst);
    let query = req.uri().query().unwrap_or_default().to_owned();
    state.queries.lock().expect("queries").push(query.clone());
    let accept = req
        .headers()
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    state.accepts.lock().expect("accepts").push(accept.clone());
    let delay = *state.delay.lock().expect("delay");
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let behaviour = *state.behaviour.lock().expect("behaviour");
    match behaviour {
        Behaviour::Normal => {}
        Behaviour::Status(code) => {
            return error(
                StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                "Internal server error",
                "the stand-in was told to fail",
            );
        }
        Behaviour::Hang => {
            tokio::time::sleep(HANG).await;
        }
        Behaviour::Garbage => {
            return respond(
                StatusCode::OK,
                "<html><body>Instance hibernating</body></html>",
            );
        }
    }
    let authorized = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .is_some_and(|v| v.as_bytes() == state.authorization.as_bytes());
    if !authorized {
        return error(
            StatusCode::UNAUTHORIZED,
            "User Not Authenticated",
            "Required to provide Auth information",
        );
    }
    if !accept.contains("application/json") {
        return error(
            StatusCode::NOT_ACCEPTABLE,
            "Invalid Accept header",
            "only application/json is served here",
        );
    }
    if req.method() != http::Method::GET {
        return error(
            StatusCode::METHOD_NOT_ALLOWED,
            "Method not Supported",
            "GET only",
        );
    }
    let params = parse_query(&query);
    let conditions =
        match parse_encoded_query(params.get("sysparm_query").map_or("", String::as_str)) {
            Ok(conditions) => conditions,
            Err(message) => {
                return error(StatusCode::BAD_REQUEST, &message, "invalid sysparm_query");
            }
        };
    let fields: Vec<&str> = params
        .get("sysparm_fields")
        .map(|f| f.split(',').collect())
        .unwrap_or_default();
    let limit = params
        .get("sysparm_limit")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(10_000);
    let changes = state.changes.lock().expect("changes").clone();
    let rows: Vec<Map> = match req.uri().path() {
        "/api/now/table/change_request" => changes.iter().map(change_row).collect(),
        "/api/now/table/task_ci" => changes
            .iter()
            .flat_map(|c| c.affected.iter().map(|ci| task_ci_row(c, ci)))
            .collect(),
        _ => return error(StatusCode::BAD_REQUEST, "Invalid table", "no such table"),
    };
    let result: Vec<Value> = rows
        .into_iter()
        .filter(|row| {
            conditions
                .iter()
                .all(|(field, value)| row.get(field).and_then(Value::as_str) == Some(value))
        })
        .take(limit)
        .map(|row| {
            Value::Object(
                row.into_iter()
                    .filter(|(k, _)| fields.is_empty() || fields.contains(&k.as_str()))
                    .collect(),
            )
        })
        .collect();
    respond(StatusCode::OK, json!({ "result": result }).to_string())
}

type Map = serde_json::Map<String, Value>;

fn change_row(change: &Change) -> Map {
    let mut row = Map::new();
    row.insert("sys_id".into(), json!(change.sys_id));
    row.insert("number".into(), json!(change.number));
    row.insert("state".into(), json!(change.state));
    row.insert("start_date".into(), json!(change.start_date));
    row.insert("end_date".into(), json!(change.end_date));
    row.insert("short_description".into(), json!("Patch ESXi"));
    match &change.cmdb_ci {
        Some(name) => {
            row.insert(
                "cmdb_ci".into(),
                json!({"link": "https://instance/api/now/table/cmdb_ci/0", "value": "0"}),
            );
            row.insert("cmdb_ci.name".into(), json!(name));
        }
        None => {
            row.insert("cmdb_ci".into(), json!(""));
            row.insert("cmdb_ci.name".into(), json!(""));
        }
    }
    row
}

fn task_ci_row(change: &Change, ci: &str) -> Map {
    let mut row = Map::new();
    row.insert("task".into(), json!(change.sys_id));
    row.insert("ci_item.name".into(), json!(ci));
    row
}

fn respond(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json;charset=UTF-8"),
    );
    response
}

fn error(status: StatusCode, message: &str, detail: &str) -> Response<Full<Bytes>> {
    respond(
        status,
        json!({"error": {"message": message, "detail": detail}, "status": "failure"}).to_string(),
    )
}

/// `a=1&b=x%3Dy` → {a: 1, b: x=y} (last one wins).
fn parse_query(query: &str) -> HashMap<String, String> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// An encoded query of `field=value` conditions joined by `^` (AND); other operators are
/// refused, as this stand-in does not implement them.
fn parse_encoded_query(query: &str) -> Result<Vec<(String, String)>, String> {
    if query.is_empty() {
        return Ok(Vec::new());
    }
    query
        .split('^')
        .map(|condition| {
            condition
                .split_once('=')
                .filter(|(field, _)| !field.is_empty() && !field.starts_with("OR"))
                .map(|(f, v)| (f.to_owned(), v.to_owned()))
                .ok_or_else(|| format!("unsupported condition '{condition}'"))
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        if let (b'%', Some(byte)) = (bytes[i], hex) {
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `YYYY-MM-DD HH:MM:SS` (UTC) `offset_secs` from now, as the Table API writes date-times.
pub fn table_time(offset_secs: i64) -> String {
    let now = time::OffsetDateTime::now_utc() + time::Duration::seconds(offset_secs);
    now.format(time::macros::format_description!(
        "[year]-[month]-[day] [hour]:[minute]:[second]"
    ))
    .expect("format")
}

/// A window from `start_offset` to `end_offset` seconds from now.
pub fn window(start_offset: i64, end_offset: i64) -> (String, String) {
    (table_time(start_offset), table_time(end_offset))
}
