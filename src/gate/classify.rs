//! Classify: which vSphere call is this request? Puts an [`Operation`] in the request's
//! extensions, reading only as much of the body as the decision needs.
//!
//! Guarded (and carrier) calls are read whole, up to a cap, and parsed strictly; every
//! other call is streamed, with the bytes already read put back in front. Anything
//! ambiguous is refused here and never reaches vCenter.

use std::convert::Infallible;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures_util::future::BoxFuture;
use http::{HeaderMap, Method, Request, Response, StatusCode, header};
use http_body::Body;
use http_body_util::BodyExt;
use tower::{Layer, Service};
use tracing::Instrument as _;

use crate::gate::access_log::request_span;

use crate::body::{CollectError, ProxyBody, collect_capped, full, prefixed};
use crate::gate::request_id::RequestId;
use crate::gate::respond::{fault_response, protocol_of_path};
use crate::gate::soap_tail::{TailVerdict, guard_tail};
use crate::vsphere::classify::{
    PathClass, Refusal, classify_path, classify_soap, classify_vim_json, needs_whole_body,
    operation_from_soap_head, pass_through, refuse_xml_on_vim_json, sdk_without_body, soap_release,
};
use crate::vsphere::credentials::single_credential;
use crate::vsphere::fault::{FaultProtocol, VimFault};
use crate::vsphere::guarded::GuardedMethods;
use crate::vsphere::operation::{Operation, Protocol};
use crate::vsphere::soap::{SniffState, SoapSniffer};

/// Size limits of classification.
#[derive(Debug, Clone, Copy)]
pub struct ClassifyLimits {
    /// Largest guarded (or carrier) body read whole; larger ones get 413.
    pub guarded_body_max: usize,
    /// Most bytes read to find a SOAP call's method and `_this`.
    pub soap_head_max: usize,
}

impl Default for ClassifyLimits {
    fn default() -> Self {
        Self {
            guarded_body_max: 1024 * 1024,
            soap_head_max: 64 * 1024,
        }
    }
}

/// The guarded method set in force; replaced when the policy schema declares new actions.
#[derive(Debug, Clone, Default)]
pub struct GuardedSet(Arc<RwLock<Arc<GuardedMethods>>>);

impl GuardedSet {
    /// A handle holding `methods`.
    pub fn new(methods: GuardedMethods) -> Self {
        Self(Arc::new(RwLock::new(Arc::new(methods))))
    }

    /// The set in force now.
    pub fn current(&self) -> Arc<GuardedMethods> {
        match self.0.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Puts `methods` in force for requests that start from now on.
    pub fn replace(&self, methods: GuardedMethods) {
        let methods = Arc::new(methods);
        match self.0.write() {
            Ok(mut guard) => *guard = methods,
            Err(poisoned) => *poisoned.into_inner() = methods,
        }
    }
}

/// Builds [`Classify`].
#[derive(Debug, Clone)]
pub struct ClassifyLayer {
    guarded: GuardedSet,
    limits: ClassifyLimits,
}

impl ClassifyLayer {
    /// Classification against `guarded`, within `limits`.
    pub fn new(guarded: GuardedSet, limits: ClassifyLimits) -> Self {
        Self { guarded, limits }
    }
}

impl<S> Layer<S> for ClassifyLayer {
    type Service = Classify<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Classify {
            inner,
            guarded: self.guarded.clone(),
            limits: self.limits,
        }
    }
}

/// Classifies each request, refusing what cannot be classified unambiguously.
#[derive(Debug, Clone)]
pub struct Classify<S> {
    inner: S,
    guarded: GuardedSet,
    limits: ClassifyLimits,
}

/// A refusal on its way to the client: status and fault.
struct Refused {
    status: StatusCode,
    fault: VimFault,
}

impl From<Refusal> for Refused {
    fn from(refusal: Refusal) -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            fault: refusal.to_fault(),
        }
    }
}

impl Refused {
    fn too_large(cap: usize) -> Self {
        Self {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            fault: VimFault::gateway(
                "InvalidRequest",
                "request.too_large",
                format!("vcguard: the body of a guarded call may be at most {cap} bytes"),
            ),
        }
    }

    fn unsupported_encoding(encoding: &str) -> Self {
        Self {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            fault: VimFault::gateway(
                "InvalidRequest",
                "request.encoding",
                format!(
                    "vcguard: Content-Encoding '{encoding}' is not accepted under /sdk; send the body uncompressed"
                ),
            ),
        }
    }

    fn unreadable(err: crate::body::BoxError) -> Self {
        Self::from(Refusal::invalid_request(format!(
            "the request body could not be read: {err}"
        )))
    }
}

impl From<CollectError> for Refused {
    fn from(err: CollectError) -> Self {
        match err {
            CollectError::TooLarge { cap } => Self::too_large(cap),
            CollectError::Read(err) => Self::unreadable(err),
        }
    }
}

impl<S> Service<Request<ProxyBody>> for Classify<S>
where
    S: Service<Request<ProxyBody>, Response = Response<ProxyBody>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = Response<ProxyBody>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response<ProxyBody>, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ProxyBody>) -> Self::Future {
        // The clone that was polled ready serves this request (tower's clone-and-swap).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let guarded = self.guarded.current();
        let limits = self.limits;
        Box::pin(async move {
            let path_protocol = protocol_of_path(req.uri().path());
            let request_id = req.extensions().get::<RequestId>().cloned();
            let verdict = TailVerdict::default();
            let path = req.uri().path().to_owned();
            let req = match classify(req, &guarded, limits, &verdict).await {
                Ok(req) => req,
                Err(refused) => {
                    let fault = with_request_id(refused.fault, request_id.as_ref());
                    tracing::warn!(path = %path, reason = %fault.text, "request refused");
                    return Ok(fault_response(refused.status, path_protocol, &fault));
                }
            };
            let response = match guarded_call_span(&req) {
                Some(span) => super::call_boxed(&mut inner, req).instrument(span).await?,
                None => super::call_boxed(&mut inner, req).await?,
            };
            if let Some(refusal) = verdict.get() {
                let fault = with_request_id(refusal.to_fault(), request_id.as_ref());
                tracing::warn!(path = %path, reason = %fault.text, "streamed SOAP body refused");
                return Ok(fault_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    FaultProtocol::Soap,
                    &fault,
                ));
            }
            Ok(response)
        })
    }
}

fn with_request_id(mut fault: VimFault, id: Option<&RequestId>) -> VimFault {
    if let Some(id) = id {
        fault.text = format!("{} (request {id})", fault.text);
    }
    fault
}

async fn classify(
    req: Request<ProxyBody>,
    guarded: &GuardedMethods,
    limits: ClassifyLimits,
    verdict: &TailVerdict,
) -> Result<Request<ProxyBody>, Refused> {
    let target = req
        .uri()
        .path_and_query()
        .map_or_else(|| req.uri().path().to_owned(), |pq| pq.as_str().to_owned());
    let class = classify_path(&target)?;
    if let Some(operation) = pass_through(&class) {
        return Ok(with_operation(req, operation));
    }
    check_identity_encoding(req.headers())?;
    let has_credential = single_credential(req.headers())?.is_some();
    let (parts, body) = req.into_parts();
    let (operation, body) = match &class {
        PathClass::VimJson(path) => {
            if needs_whole_body(&path.name, guarded) {
                let bytes = read_whole(&parts.headers, body, limits.guarded_body_max).await?;
                let operation = classify_vim_json(path, &parts.method, Some(&bytes), guarded)?;
                (operation, full(bytes))
            } else {
                let (prefix, rest) = read_start(body).await?;
                refuse_xml_on_vim_json(&prefix)?;
                let operation = classify_vim_json(path, &parts.method, None, guarded)?;
                (operation, prefixed(prefix, rest))
            }
        }
        PathClass::SoapEndpoint => {
            let soap = SoapRequest {
                method: &parts.method,
                headers: &parts.headers,
                has_credential,
            };
            classify_soap_body(soap, body, guarded, limits, verdict).await?
        }
        PathClass::Rest | PathClass::Other => unreachable_pass_through(),
    };
    let operation = with_soap_release(operation, &parts.headers);
    Ok(with_operation(Request::from_parts(parts, body), operation))
}

fn unreachable_pass_through() -> (Operation, ProxyBody) {
    // `pass_through` answered for these classes above.
    (
        Operation::pass_through(Protocol::Other),
        crate::body::empty(),
    )
}

/// What the SOAP step needs to know of the request head.
struct SoapRequest<'a> {
    method: &'a Method,
    headers: &'a HeaderMap,
    has_credential: bool,
}

async fn classify_soap_body(
    request: SoapRequest<'_>,
    mut body: ProxyBody,
    guarded: &GuardedMethods,
    limits: ClassifyLimits,
    verdict: &TailVerdict,
) -> Result<(Operation, ProxyBody), Refused> {
    let SoapRequest {
        method,
        headers,
        has_credential,
    } = request;
    if body.is_end_stream() || (*method == Method::GET && content_length(headers) == Some(0)) {
        return Ok((sdk_without_body(), body));
    }
    let mut sniffer = SoapSniffer::new(limits.soap_head_max);
    let head = loop {
        match body.frame().await {
            None if sniffer.buffered().is_empty() => return Ok((sdk_without_body(), body)),
            None => break sniffer.finish().map_err(Refusal::from)?,
            Some(Err(err)) => return Err(Refused::unreadable(err)),
            Some(Ok(frame)) => {
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                if let SniffState::Identified(head) = sniffer.feed(&data).map_err(Refusal::from)? {
                    break head;
                }
            }
        }
    };
    if head.header_session_cookie && has_credential {
        return Err(Refusal::invalid_request(
            "the request carries a session both in the SOAP Header (vcSessionCookie) and in HTTP headers; send exactly one",
        )
        .into());
    }
    if needs_whole_body(&head.method, guarded) {
        let buffered = sniffer.into_buffered();
        let cap = limits.guarded_body_max;
        if buffered.len() > cap || content_length(headers).is_some_and(|len| len > cap as u64) {
            return Err(Refused::too_large(cap));
        }
        let rest = collect_capped(body, cap - buffered.len())
            .await
            .map_err(|err| match err {
                CollectError::TooLarge { .. } => Refused::too_large(cap),
                other => Refused::from(other),
            })?;
        let mut whole = BytesMut::from(&buffered[..]);
        whole.extend_from_slice(&rest);
        let whole = whole.freeze();
        let operation = classify_soap(&whole, guarded)?;
        return Ok((operation, full(whole)));
    }
    let guard = sniffer.tail_guard().map_err(Refusal::from)?;
    let operation = operation_from_soap_head(&head);
    let rest = guard_tail(body, guard, verdict.clone());
    Ok((
        operation,
        prefixed(Bytes::from(sniffer.into_buffered()), rest),
    ))
}

/// Reads a guarded body whole, refusing it early when `Content-Length` already says it is too big.
async fn read_whole(headers: &HeaderMap, body: ProxyBody, cap: usize) -> Result<Bytes, Refused> {
    if content_length(headers).is_some_and(|len| len > cap as u64) {
        return Err(Refused::too_large(cap));
    }
    Ok(collect_capped(body, cap).await?)
}

/// Reads until the first data bytes (enough to tell JSON from XML), returning them and the rest.
async fn read_start(mut body: ProxyBody) -> Result<(Bytes, ProxyBody), Refused> {
    let mut prefix = BytesMut::new();
    const ENOUGH: usize = 64;
    while prefix.iter().all(u8::is_ascii_whitespace) && prefix.len() < ENOUGH {
        match body.frame().await {
            None => break,
            Some(Err(err)) => return Err(Refused::unreadable(err)),
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    prefix.extend_from_slice(&data);
                }
            }
        }
    }
    Ok((prefix.freeze(), body))
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// Compressed bodies under `/sdk` cannot be classified: only identity is accepted.
fn check_identity_encoding(headers: &HeaderMap) -> Result<(), Refused> {
    for value in headers.get_all(header::CONTENT_ENCODING) {
        let text = value.to_str().unwrap_or("(not text)");
        if text
            .split(',')
            .map(str::trim)
            .any(|coding| !coding.is_empty() && !coding.eq_ignore_ascii_case("identity"))
        {
            return Err(Refused::unsupported_encoding(text));
        }
    }
    Ok(())
}

fn with_soap_release(mut operation: Operation, headers: &HeaderMap) -> Operation {
    if operation.protocol == Protocol::Soap && operation.release.is_none() {
        operation.release = headers
            .get("soapaction")
            .and_then(|v| v.to_str().ok())
            .and_then(soap_release);
    }
    operation
}

/// For a guarded call, the request span with its facts: the access log's span when it has
/// one (recorded into it, `None` returned), otherwise a new one to run the rest of the call in.
/// Pass-through calls get none: they are recorded in the audit log.
fn guarded_call_span(req: &Request<ProxyBody>) -> Option<tracing::Span> {
    let operation = req.extensions().get::<Operation>()?;
    let guarded = operation.guarded.as_ref()?;
    let current = tracing::Span::current();
    let (span, new) = if current.is_disabled() {
        (request_span(req), true)
    } else {
        (current, false)
    };
    span.record("protocol", tracing::field::debug(operation.protocol));
    span.record("guarded", guarded.method.as_str());
    span.record("moid", guarded.target.value.as_str());
    new.then_some(span)
}

fn with_operation(mut req: Request<ProxyBody>, operation: Operation) -> Request<ProxyBody> {
    req.extensions_mut().insert(operation);
    req
}
