//! Classify: which vSphere call is this request? Puts an [`Operation`] in the request's
//! extensions, reading only as much of the body as the decision needs.
//!
//! Guarded (and carrier) calls are read whole, up to a cap, and parsed strictly; every
//! other call is streamed, with the bytes already read put back in front. Anything
//! ambiguous is refused here and never reaches vCenter.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, Method, Request, header};
use http_body::Body;
use http_body_util::BodyExt;
use tracing::Instrument as _;

use crate::body::{CollectError, ProxyBody, collect_capped, full, prefixed};
use crate::gate::error::GatewayError;
use crate::gate::facts::Facts;
use crate::gate::soap_tail::{TailVerdict, guard_tail};
use crate::gate::step::{Inner, Next, Step, StepResult};
use crate::gate::trace::request_span;
use crate::vsphere::classify::{
    PathClass, Refusal, classify_path, classify_soap, classify_vim_json, needs_whole_body,
    operation_from_soap_head, pass_through, refuse_xml_on_vim_json, sdk_without_body, soap_release,
};
use crate::vsphere::credentials::single_credential;
use crate::vsphere::lifecycle::classify_rest;
use crate::vsphere::long_poll::{WaitBound, is_long_poll, wait_bound};
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

/// Classifies each request, refusing what cannot be classified unambiguously.
#[derive(Debug, Clone)]
pub struct Classify {
    limits: ClassifyLimits,
}

impl Classify {
    /// Classification within `limits`, against the guarded set of each request's snapshot.
    pub fn new(limits: ClassifyLimits) -> Self {
        Self { limits }
    }
}

impl Step for Classify {
    async fn handle<S: Inner>(
        &self,
        req: Request<ProxyBody>,
        facts: Arc<Facts>,
        next: Next<S>,
    ) -> StepResult {
        let verdict = TailVerdict::default();
        // Bound first: a temporary of the match would stay in the future across its await.
        let head = classify_head(req, &facts)?;
        let req = match head {
            Head::Classified(req) => req,
            // Boxed: its state would otherwise enlarge the future of every call, bodiless or not.
            Head::BodyDecides(rest) => {
                Box::pin(classify_body(rest, &facts, self.limits, &verdict)).await?
            }
        };
        let response = match guarded_call_span(&req, &facts) {
            Some(span) => next.run(req).instrument(span).await?,
            None => next.run(req).await?,
        };
        if let Some(refusal) = verdict.get() {
            return Err(GatewayError::Malformed(refusal));
        }
        Ok(response)
    }
}

impl From<CollectError> for GatewayError {
    fn from(err: CollectError) -> Self {
        match err {
            CollectError::TooLarge { cap } => GatewayError::BodyTooLarge { cap },
            CollectError::Read(err) => unreadable(err),
        }
    }
}

fn unreadable(err: crate::body::BoxError) -> GatewayError {
    GatewayError::Malformed(Refusal::invalid_request(format!(
        "the request body could not be read: {err}"
    )))
}

/// What the request head alone settles.
enum Head {
    /// The call is classified; its body streams on untouched.
    Classified(Request<ProxyBody>),
    /// The body decides the call, or must be checked before it goes on.
    BodyDecides(BodyDecides),
}

/// A request whose body [`classify_body`] reads, with what its head told.
struct BodyDecides {
    req: Request<ProxyBody>,
    class: PathClass,
    has_credential: bool,
}

/// Classifies `req` by its head where the body has no say: REST and other pass-through paths,
/// Lifecycle Manager remediations, and bodiless VI/JSON calls that are neither guarded nor long
/// polls.
fn classify_head(req: Request<ProxyBody>, facts: &Facts) -> Result<Head, GatewayError> {
    let guarded = facts.snapshot.guarded.as_ref();
    let target = req
        .uri()
        .path_and_query()
        .map_or_else(|| req.uri().path(), |pq| pq.as_str());
    let class = classify_path(target)?;
    if class == PathClass::Rest
        && let Some(call) = classify_rest(target)?
    {
        // A Lifecycle Manager remediation: decided from the request target, body streamed.
        facts.set_credential(single_credential(req.headers())?);
        facts.set_operation(Operation::rest(call));
        return Ok(Head::Classified(req));
    }
    if let Some(operation) = pass_through(&class) {
        facts.set_credential(single_credential(req.headers()).ok().flatten());
        facts.set_operation(operation);
        return Ok(Head::Classified(req));
    }
    check_identity_encoding(req.headers())?;
    let credential = single_credential(req.headers())?;
    let has_credential = credential.is_some();
    facts.set_credential(credential);
    let class = match class {
        PathClass::VimJson(path)
            if req.body().is_end_stream()
                && !needs_whole_body(&path.name, guarded)
                && !is_long_poll(&path.name) =>
        {
            let operation = classify_vim_json(path, req.method(), None, guarded)?;
            facts.set_operation(with_soap_release(operation, req.headers()));
            return Ok(Head::Classified(req));
        }
        class => class,
    };
    Ok(Head::BodyDecides(BodyDecides {
        req,
        class,
        has_credential,
    }))
}

/// Classifies a request whose body decides: reads a guarded or long-poll body whole, the start
/// of any other VI/JSON body (XML is refused there), and a SOAP body up to its method.
async fn classify_body(
    BodyDecides {
        req,
        class,
        has_credential,
    }: BodyDecides,
    facts: &Facts,
    limits: ClassifyLimits,
    verdict: &TailVerdict,
) -> Result<Request<ProxyBody>, GatewayError> {
    let guarded = facts.snapshot.guarded.as_ref();
    let (parts, body) = req.into_parts();
    let (operation, body) = match class {
        PathClass::VimJson(path) => {
            if needs_whole_body(&path.name, guarded) {
                let bytes = read_whole(&parts.headers, body, limits.guarded_body_max).await?;
                let operation = classify_vim_json(path, &parts.method, Some(&bytes), guarded)?;
                (operation, full(bytes))
            } else if is_long_poll(&path.name) {
                let bytes = read_whole(&parts.headers, body, limits.guarded_body_max).await?;
                let wait = long_poll_wait(&path.name, Protocol::VimJson, &bytes);
                let operation = classify_vim_json(path, &parts.method, None, guarded)?;
                facts.set_wait(wait);
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
            classify_soap_body(soap, body, facts, limits, verdict).await?
        }
        PathClass::Rest | PathClass::Other => unreachable_pass_through(),
    };
    facts.set_operation(with_soap_release(operation, &parts.headers));
    Ok(Request::from_parts(parts, body))
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
    facts: &Facts,
    limits: ClassifyLimits,
    verdict: &TailVerdict,
) -> Result<(Operation, ProxyBody), GatewayError> {
    let guarded = facts.snapshot.guarded.as_ref();
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
            Some(Err(err)) => return Err(unreadable(err)),
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
    let long_poll = is_long_poll(&head.method);
    if long_poll || needs_whole_body(&head.method, guarded) {
        let buffered = sniffer.into_buffered();
        let cap = limits.guarded_body_max;
        if buffered.len() > cap || content_length(headers).is_some_and(|len| len > cap as u64) {
            return Err(GatewayError::BodyTooLarge { cap });
        }
        let rest = collect_capped(body, cap - buffered.len())
            .await
            .map_err(|err| match err {
                CollectError::TooLarge { .. } => GatewayError::BodyTooLarge { cap },
                other => GatewayError::from(other),
            })?;
        let mut whole = BytesMut::from(&buffered[..]);
        whole.extend_from_slice(&rest);
        let whole = whole.freeze();
        let operation = classify_soap(&whole, guarded)?;
        if long_poll {
            facts.set_wait(long_poll_wait(&head.method, Protocol::Soap, &whole));
        }
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

/// A long poll's wait bound; a body whose wait cannot be read keeps the ordinary response timeout.
fn long_poll_wait(method: &str, protocol: Protocol, body: &[u8]) -> WaitBound {
    wait_bound(method, protocol, body).unwrap_or_else(|err| {
        tracing::debug!(error = %err, "long poll without a readable wait; ordinary timeout");
        WaitBound::NotWaiting
    })
}

/// Reads a guarded body whole, refusing it early when `Content-Length` already says it is too big.
async fn read_whole(
    headers: &HeaderMap,
    body: ProxyBody,
    cap: usize,
) -> Result<Bytes, GatewayError> {
    if content_length(headers).is_some_and(|len| len > cap as u64) {
        return Err(GatewayError::BodyTooLarge { cap });
    }
    Ok(collect_capped(body, cap).await?)
}

/// Reads until the first data bytes (enough to tell JSON from XML), returning them and the rest.
async fn read_start(mut body: ProxyBody) -> Result<(Bytes, ProxyBody), GatewayError> {
    let mut prefix = BytesMut::new();
    const ENOUGH: usize = 64;
    while prefix.iter().all(u8::is_ascii_whitespace) && prefix.len() < ENOUGH {
        match body.frame().await {
            None => break,
            Some(Err(err)) => return Err(unreadable(err)),
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
fn check_identity_encoding(headers: &HeaderMap) -> Result<(), GatewayError> {
    for value in headers.get_all(header::CONTENT_ENCODING) {
        let text = value.to_str().unwrap_or("(not text)");
        if text
            .split(',')
            .map(str::trim)
            .any(|coding| !coding.is_empty() && !coding.eq_ignore_ascii_case("identity"))
        {
            return Err(GatewayError::UnsupportedEncoding {
                encoding: text.to_owned(),
            });
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
fn guarded_call_span(req: &Request<ProxyBody>, facts: &Facts) -> Option<tracing::Span> {
    let operation = facts.operation()?;
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
