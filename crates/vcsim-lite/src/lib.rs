//! vcsim-lite, vcguard's built-in vCenter simulator: answers VI/JSON, SOAP and datastore file
//! transfers like vCenter.
//!
//! It is the upstream of the demo and of every end-to-end test. The inventory is one
//! datacenter (`datacenter-1`), one cluster (`domain-c7`, resource pool `resgroup-8`), three
//! hosts (`host-21`..`host-23`, with HostAccessManagers `ham-21`..`ham-23`), one VM per host
//! (`vm-31`..`vm-33`) and one datastore (`datastore-41`, `datastore1`). It answers what govc and
//! pyVmomi send (property collectors, views, tasks, events, esxcli maintenance mode). Tasks
//! complete at once, or after [`SimConfig::task_duration`]. Every request is recorded in a
//! bounded journal so tests can check what reached "vCenter". Of the Automation REST API it
//! answers sessions and Lifecycle Manager remediation (see [`Remediation`]).

mod args;
mod console;
mod datastore_search;
mod entities;
mod esxcli;
mod events;
mod faults;
mod inventory;
mod json_api;
mod lifecycle;
mod listener;
mod methods;
mod property_collector;
mod scheduled_tasks;
pub mod server;
mod session_objects;
mod sessions;
mod soap_api;
mod soap_xml;
mod tasks;
mod transfer;
mod value;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_govc;

use std::collections::VecDeque;
use std::error::Error;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use vsphere_wire::fault::SOAP_CONTENT_TYPE;

use self::inventory::{API_VERSION, Inventory};
pub use self::lifecycle::Remediation;

/// Body type of every simulator response.
pub(crate) type SimBody =
    http_body_util::combinators::UnsyncBoxBody<Bytes, Box<dyn Error + Send + Sync>>;

/// A request body, boxed as soon as it arrives.
pub(crate) type RequestBody =
    http_body_util::combinators::UnsyncBoxBody<Bytes, Box<dyn Error + Send + Sync>>;

/// Most journal entries kept; older ones are dropped first.
const JOURNAL_CAPACITY: usize = 10_000;
/// Most request body bytes kept in one journal entry.
const JOURNAL_BODY_LIMIT: usize = 64 * 1024;
/// Largest VI/JSON or SOAP request body read.
const MAX_API_BODY: usize = 32 * 1024 * 1024;

/// Simulator settings.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Accepted logins as (user name, password).
    pub users: Vec<(String, String)>,
    /// Delay applied before answering every request (to trigger gateway timeouts).
    pub response_delay: Option<Duration>,
    /// How long each task (maintenance mode, power, datastore search) runs before it succeeds
    /// and takes effect; zero completes tasks at once.
    pub task_duration: Duration,
    /// Whether the SOAP session cookie is marked `Secure` (never over plain HTTP: Go clients
    /// would not send it back).
    pub secure_cookie: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            users: vec![
                ("administrator@vsphere.local".into(), "VMware1!".into()),
                // The demo's second person, in the group change-approvers (policies/entities.json).
                ("approver@vsphere.local".into(), "VMware1!".into()),
            ],
            response_delay: None,
            task_duration: Duration::ZERO,
            secure_cookie: true,
        }
    }
}

/// The wire protocol of a journaled request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SimProtocol {
    /// VI/JSON under `/sdk/vim25/{release}/...`.
    Json,
    /// SOAP under `/sdk`.
    Soap,
    /// Anything else (service versions, `/folder` transfers, unknown paths).
    Other,
}

/// One request the simulator handled, as recorded in the journal.
#[derive(Debug, Clone)]
pub struct SeenRequest {
    /// HTTP method, e.g. `POST`.
    pub http_method: String,
    /// URI path (no query).
    pub path: String,
    /// Wire protocol the request was handled as.
    pub protocol: SimProtocol,
    /// The vim method called (`None` for VI/JSON property reads and non-API requests).
    pub vim_method: Option<String>,
    /// The moId of the target object, if any.
    pub mo_id: Option<String>,
    /// The raw body of a VI/JSON or SOAP request, at most 64 KiB.
    pub body: Bytes,
    /// The request headers as they arrived.
    pub headers: http::HeaderMap,
}

/// The simulated vCenter; cheap to clone, all clones share state.
#[derive(Clone)]
pub struct Simulator {
    inner: Arc<SimInner>,
}

impl std::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulator").finish_non_exhaustive()
    }
}

/// Mutable simulator state, behind one lock.
#[derive(Debug)]
pub(crate) struct SimState {
    /// Objects and their state, and the logged-in sessions.
    pub(crate) inventory: Inventory,
    /// Size and digest of uploaded files.
    pub(crate) files: transfer::FileStore,
}

/// Shared simulator internals.
#[derive(Debug)]
pub(crate) struct SimInner {
    /// All mutable state.
    pub(crate) state: Mutex<SimState>,
    /// Recent requests.
    journal: Mutex<VecDeque<SeenRequest>>,
    /// Delay before every answer.
    delay: Option<Duration>,
    /// Whether the session cookie is marked `Secure`.
    pub(crate) secure_cookie: bool,
    /// Requests being answered now, and the most ever at once.
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    /// One 64 KiB chunk of the download pattern, shared by every download.
    pub(crate) pattern_chunk: Bytes,
}

/// What a handler learned about a request, for the journal.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    /// Protocol the request was handled as.
    pub protocol: SimProtocol,
    /// The vim method, if any.
    pub(crate) vim_method: Option<String>,
    /// The target moId, if any.
    pub mo_id: Option<String>,
    /// The request body, truncated to the journal limit.
    pub(crate) body: Bytes,
}

impl Seen {
    /// A record of a request that was not an API call.
    pub(crate) fn other() -> Self {
        Self {
            protocol: SimProtocol::Other,
            vim_method: None,
            mo_id: None,
            body: Bytes::new(),
        }
    }

    /// A record of an API call of `protocol` with its (possibly unreadable) body.
    pub(crate) fn api(protocol: SimProtocol, body: &Result<Bytes, String>) -> Self {
        let body = match body {
            Ok(b) => b.slice(..b.len().min(JOURNAL_BODY_LIMIT)),
            Err(_) => Bytes::new(),
        };
        Self {
            protocol,
            vim_method: None,
            mo_id: None,
            body,
        }
    }
}

/// Locks a mutex, carrying on with the data if a panicking thread poisoned it.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A complete body from bytes.
pub(crate) fn full_body(bytes: impl Into<Bytes>) -> SimBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A response with `status`, an optional content type and a complete body.
pub(crate) fn respond(
    status: StatusCode,
    content_type: Option<&'static str>,
    body: impl Into<Bytes>,
) -> Response<SimBody> {
    let mut response = Response::new(full_body(body));
    *response.status_mut() = status;
    if let Some(ct) = content_type {
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(ct));
    }
    response
}

/// Decodes `%XX` escapes once; `None` if an escape is malformed or the result is not UTF-8.
pub(crate) fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The `User-Agent` header, or empty.
pub(crate) fn user_agent(headers: &http::HeaderMap) -> String {
    headers
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// `vimServiceVersions.xml` as vCenter serves it.
fn service_versions_xml() -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<namespaces version=\"1.0\">\n <namespace>\n  <name>urn:vim25</name>\n  <version>{API_VERSION}</version>\n  <priorVersions>\n   <version>8.0.2.0</version>\n   <version>8.0.1.0</version>\n   <version>8.0.0.0</version>\n   <version>7.0.3.0</version>\n   <version>7.0</version>\n   <version>6.7</version>\n   <version>6.5</version>\n   <version>6.0</version>\n   <version>5.5</version>\n  </priorVersions>\n </namespace>\n</namespaces>\n"
    )
}

/// Reads a whole API request body, up to the size limit.
async fn read_body(mut body: RequestBody) -> Result<Bytes, String> {
    let mut buf = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| format!("cannot read request body: {e}"))?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > MAX_API_BODY {
                return Err(format!("request body larger than {MAX_API_BODY} bytes"));
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}

/// Counts one request in flight for as long as it lives (also when the client goes away).
struct InFlight<'a>(&'a SimInner);

impl<'a> InFlight<'a> {
    fn enter(inner: &'a SimInner) -> Self {
        let now = inner.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        inner.max_in_flight.fetch_max(now, Ordering::SeqCst);
        Self(inner)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Simulator {
    /// A simulator with the default inventory and `config`'s users and delay.
    pub(crate) fn new(config: SimConfig) -> Self {
        let pattern: Vec<u8> = (0..transfer::CHUNK_SIZE).map(|i| (i % 256) as u8).collect();
        let mut inventory = Inventory::default();
        inventory.sessions.set_users(config.users);
        inventory.tasks.duration = config.task_duration;
        let inner = SimInner {
            state: Mutex::new(SimState {
                inventory,
                files: transfer::FileStore::default(),
            }),
            journal: Mutex::new(VecDeque::new()),
            delay: config.response_delay,
            secure_cookie: config.secure_cookie,
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            pattern_chunk: Bytes::from(pattern),
        };
        Self {
            inner: Arc::new(inner),
        }
    }

    /// Answers one HTTP request like vCenter would.
    pub(crate) async fn handle<B>(&self, req: Request<B>) -> Response<SimBody>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn Error + Send + Sync>>,
    {
        // Box the body at once so no generic bound is held across an await (keeps the future Send
        // for every body type, including boxed bodies whose error type is already boxed).
        let (parts, body) = req.into_parts();
        let body: RequestBody = body.map_err(Into::into).boxed_unsync();
        let _counted = InFlight::enter(&self.inner);
        self.handle_boxed(parts, body).await
    }

    /// The most requests this simulator was answering at the same time (until the headers of
    /// each answer were ready).
    pub fn max_in_flight(&self) -> usize {
        self.inner.max_in_flight.load(Ordering::SeqCst)
    }

    /// Answers one request whose body is already boxed.
    async fn handle_boxed(
        &self,
        mut parts: http::request::Parts,
        body: RequestBody,
    ) -> Response<SimBody> {
        if let Some(delay) = self.inner.delay {
            tokio::time::sleep(delay).await;
        }
        let path = parts.uri.path().to_string();
        let (response, seen) = if path == "/sdk/vimServiceVersions.xml"
            && parts.method == Method::GET
        {
            let response = respond(
                StatusCode::OK,
                Some(SOAP_CONTENT_TYPE),
                service_versions_xml(),
            );
            (response, Seen::other())
        } else if json_api::is_vi_json_path(&path) {
            let body = read_body(body).await;
            json_api::handle(&self.inner, &parts, body).await
        } else if (path == "/sdk" || path.starts_with("/sdk/")) && parts.method == Method::POST {
            let body = read_body(body).await;
            soap_api::handle(&self.inner, &parts, body).await
        } else if lifecycle::is_rest_path(&path) {
            lifecycle::handle(&self.inner, &parts)
        } else if path == "/folder" || path.starts_with("/folder/") {
            transfer::handle(&self.inner, &parts, body).await
        } else if console::is_console_path(&path) && parts.method == Method::GET {
            console::handle(&mut parts)
        } else {
            let response = respond(
                StatusCode::NOT_FOUND,
                Some("text/plain; charset=utf-8"),
                "Not Found\n",
            );
            (response, Seen::other())
        };
        self.record(SeenRequest {
            http_method: parts.method.to_string(),
            path,
            protocol: seen.protocol,
            vim_method: seen.vim_method,
            mo_id: seen.mo_id,
            body: seen.body,
            headers: parts.headers,
        });
        response
    }

    /// Appends to the journal, dropping the oldest entry when full.
    fn record(&self, entry: SeenRequest) {
        let mut journal = lock(&self.inner.journal);
        while journal.len() >= JOURNAL_CAPACITY {
            journal.pop_front();
        }
        journal.push_back(entry);
    }

    /// Every journaled request, oldest first.
    pub fn journal(&self) -> Vec<SeenRequest> {
        lock(&self.inner.journal).iter().cloned().collect()
    }

    /// Whether host `host_id` is in maintenance mode (`None` for an unknown host).
    pub fn host_in_maintenance(&self, host_id: &str) -> Option<bool> {
        let mut state = lock(&self.inner.state);
        state.inventory.complete_due_tasks();
        state.inventory.host_in_maintenance(host_id)
    }

    /// Whether VM `vm_id` is powered on (`None` for an unknown VM).
    pub fn vm_powered_on(&self, vm_id: &str) -> Option<bool> {
        let mut state = lock(&self.inner.state);
        state.inventory.complete_due_tasks();
        state.inventory.vm(vm_id).map(|v| v.powered_on)
    }

    /// Every Lifecycle Manager remediation run over the Automation REST API, oldest first.
    pub fn remediations(&self) -> Vec<Remediation> {
        lock(&self.inner.state).inventory.remediations.clone()
    }

    /// Lockdown mode of HostAccessManager `ham_id` (`None` if unknown).
    pub fn lockdown_mode(&self, ham_id: &str) -> Option<String> {
        lock(&self.inner.state).inventory.lockdown_mode(ham_id)
    }
}
