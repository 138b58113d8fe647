//! The last step: forward the request to vCenter and stream the answer back.
//!
//! Bodies stream in both directions; headers get reverse-proxy treatment
//! (hop-by-hop removed, `Host` rewritten, `X-Forwarded-*` set, redirects and
//! cookies that name vCenter's own host made to work through the gateway).

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Response, StatusCode, Uri, Version};
use hyper_util::rt::TokioIo;
use tokio::sync::Semaphore;

use crate::body::{ProxyBody, holding};
use crate::gate::error::GatewayError;
use crate::gate::facts::Facts;
use crate::gate::step::{Inner, StepResult};
use crate::metrics::{Metrics, Outcome};
use crate::server::ClientAddr;
use crate::upstream_connect::{UPSTREAM_TCP_KEEPALIVE, UpstreamConnector};
use crate::upstream_pool::{IdleBudget, UpstreamError, UpstreamPool};
use crate::vsphere::long_poll::{LongPollLimits, WaitBound};

/// Where and how to reach vCenter.
#[derive(Debug, Clone)]
pub struct UpstreamOptions {
    /// vCenter's base URL (scheme and authority).
    pub base: Uri,
    /// TLS client config (unused for a plain-HTTP base URL).
    pub tls: rustls::ClientConfig,
    /// Time to connect.
    pub connect_timeout: Duration,
    /// Time to receive response headers.
    pub response_timeout: Duration,
    /// Idle pooled connection lifetime.
    pub pool_idle_timeout: Duration,
    /// Idle pooled connections kept at most.
    pub pool_max_idle: usize,
    /// Requests in flight to vCenter at once; more wait (within the response timeout).
    pub max_connections: usize,
    /// Deadlines of long polls (`WaitForUpdatesEx`, `WaitForUpdates`) instead of the response timeout.
    pub long_poll: LongPollLimits,
}

impl UpstreamOptions {
    /// Options for `base` with the documented defaults of `[upstream]`.
    pub fn new(base: Uri, tls: rustls::ClientConfig) -> Self {
        let defaults = crate::config::UpstreamSection::default();
        Self {
            base,
            tls,
            connect_timeout: Duration::from_secs(defaults.connect_timeout_secs),
            response_timeout: Duration::from_secs(defaults.response_timeout_secs),
            pool_idle_timeout: Duration::from_secs(defaults.pool_idle_timeout_secs),
            pool_max_idle: defaults.pool_max_idle,
            max_connections: defaults.max_connections,
            long_poll: LongPollLimits::default(),
        }
    }
}

/// The forwarding service: a pooled keep-alive client to one vCenter.
#[derive(Clone)]
pub struct Forward {
    inner: Arc<ForwardInner>,
}

struct ForwardInner {
    pool: Arc<UpstreamPool>,
    authority: Authority,
    /// The `Host` header vCenter gets, made once from the base URL.
    host: HeaderValue,
    response_timeout: Duration,
    long_poll: LongPollLimits,
    /// One permit per request in flight to vCenter, held until its response body is done.
    in_flight: Arc<Semaphore>,
    metrics: Arc<Metrics>,
    /// What the pool was built from, for the pools of further workers.
    options: UpstreamOptions,
}

impl Forward {
    /// A forwarder to `options.base`, counting into `metrics`.
    pub fn new(options: UpstreamOptions, metrics: Arc<Metrics>) -> Self {
        let in_flight = Arc::new(Semaphore::new(
            options.max_connections.clamp(1, Semaphore::MAX_PERMITS),
        ));
        let idle_budget = IdleBudget::new(options.pool_max_idle);
        Self::with_pool(options, metrics, in_flight, idle_budget)
    }

    /// A forwarder with its own connection pool for one worker thread (its connections are
    /// driven where its requests run), sharing this one's idle-connection budget, in-flight
    /// limit and metrics.
    pub fn with_own_pool(&self) -> Self {
        Self::with_pool(
            self.inner.options.clone(),
            self.inner.metrics.clone(),
            self.inner.in_flight.clone(),
            self.inner.pool.budget().clone(),
        )
    }

    fn with_pool(
        options: UpstreamOptions,
        metrics: Arc<Metrics>,
        in_flight: Arc<Semaphore>,
        idle_budget: Arc<IdleBudget>,
    ) -> Self {
        let connector = UpstreamConnector::new(
            options.tls.clone(),
            options.connect_timeout,
            Some(UPSTREAM_TCP_KEEPALIVE),
        );
        let pool = UpstreamPool::new(
            connector,
            options.base.clone(),
            idle_budget,
            options.pool_idle_timeout,
        );
        let scheme = options.base.scheme().cloned().unwrap_or(Scheme::HTTPS);
        let authority = options
            .base
            .authority()
            .cloned()
            .unwrap_or_else(|| Authority::from_static("localhost"));
        let host = host_header(&scheme, &authority);
        Self {
            inner: Arc::new(ForwardInner {
                pool,
                authority,
                host,
                response_timeout: options.response_timeout,
                long_poll: options.long_poll,
                in_flight,
                metrics,
                options,
            }),
        }
    }
}

impl Forward {
    /// Sends one request to vCenter (used by steps that ask vCenter themselves, e.g. identify).
    pub fn send(
        &self,
        req: Request<ProxyBody>,
    ) -> impl Future<Output = Result<Response<ProxyBody>, GatewayError>> + Send + 'static {
        forward(self.inner.clone(), req)
    }
}

impl Inner for Forward {
    fn call(&self, req: Request<ProxyBody>) -> BoxFuture<'static, StepResult> {
        Box::pin(forward(self.inner.clone(), req))
    }
}

/// Sends `req` to vCenter and brings its answer back. The request is prepared before the future
/// is made, so the future holds the upstream request alone, not the client's as well.
fn forward(
    this: Arc<ForwardInner>,
    mut req: Request<ProxyBody>,
) -> impl Future<Output = Result<Response<ProxyBody>, GatewayError>> + Send + 'static {
    let client_upgrade = is_upgrade_request(&req).then(|| hyper::upgrade::on(&mut req));
    let public_authority = client_facing_authority(&req);
    let upstream_req = this.upstream_request(req);
    let wait = Facts::of(&upstream_req).map_or(WaitBound::NotWaiting, |facts| facts.wait());
    let deadline = this
        .long_poll
        .response_deadline(wait, this.response_timeout);
    async move {
        let this = &*this;
        let started = Instant::now();
        let exchange = async {
            // A long poll waits by design: it holds no slot of `max_connections` while it waits.
            let permit = match wait {
                WaitBound::NotWaiting => this.in_flight.clone().acquire_owned().await.ok(),
                _ => None,
            };
            (permit, this.pool.send(upstream_req).await)
        };
        let (permit, result) = match deadline {
            None => exchange.await,
            Some(deadline) => match tokio::time::timeout(deadline, exchange).await {
                Ok(done) => done,
                Err(_) => {
                    return Err(GatewayError::UpstreamTimeout {
                        authority: this.authority.to_string(),
                        secs: deadline.as_secs(),
                    });
                }
            },
        };
        let mut response = result.map_err(|err| this.send_error(&err))?;
        this.metrics
            .upstream_latency
            .observe(started.elapsed().as_secs_f64());
        this.metrics.count(Outcome::Forwarded);

        if response.status() == StatusCode::SWITCHING_PROTOCOLS
            && let Some(client_upgrade) = client_upgrade
        {
            let upstream_upgrade = hyper::upgrade::on(&mut response);
            tokio::spawn(splice_upgraded(client_upgrade, upstream_upgrade));
            let (parts, _) = response.into_parts();
            return Ok(Response::from_parts(parts, crate::body::empty()));
        }
        strip_hop_by_hop(response.headers_mut(), false);
        rewrite_location(
            response.headers_mut(),
            &this.authority,
            public_authority.as_ref(),
        );
        rewrite_set_cookie(response.headers_mut(), this.authority.host());
        // The connection stays busy until the body is streamed out (or dropped).
        Ok(response.map(|body| holding(body, permit)))
    }
}

impl ForwardInner {
    /// What a failed exchange with vCenter means for the client.
    fn send_error(&self, err: &UpstreamError) -> GatewayError {
        let cause = cause_of(err);
        if request_body_failed(err) {
            return GatewayError::ClientAborted { cause };
        }
        let authority = self.authority.to_string();
        if certificate_refused(err) {
            GatewayError::UpstreamCertificate { authority, cause }
        } else {
            GatewayError::UpstreamUnreachable { authority, cause }
        }
    }

    fn upstream_request(&self, req: Request<ProxyBody>) -> Request<ProxyBody> {
        let (mut parts, body) = req.into_parts();
        let upgrade = is_upgrade(&parts.headers);
        let original_host = parts.headers.get(header::HOST).cloned().or_else(|| {
            parts
                .uri
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        });
        let path_and_query = parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        // Origin form: vCenter is named by the connection and the `Host` header.
        parts.uri = Uri::from(path_and_query);
        parts.version = Version::HTTP_11;
        let client = parts.extensions.get::<ClientAddr>();
        let headers = &mut parts.headers;
        strip_hop_by_hop(headers, upgrade);
        headers.insert(header::HOST, self.host.clone());
        headers.remove(header::EXPECT);
        // The gateway's request id is the client's to see, not vCenter's.
        headers.remove(crate::gate::request_id::REQUEST_ID_HEADER);
        if let Some(client) = client {
            let forwarded_for = match headers.get(X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
                Some(prior) => {
                    HeaderValue::from_str(&format!("{prior}, {}", client.addr().ip())).ok()
                }
                None => client.ip_header().cloned(),
            };
            if let Some(value) = forwarded_for {
                headers.insert(X_FORWARDED_FOR, value);
            }
        }
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("https"));
        if let Some(host) = original_host {
            headers.insert(X_FORWARDED_HOST, host);
        }
        Request::from_parts(parts, body)
    }
}

/// The `Host` header for vCenter at `authority`: its host, and its port unless the scheme's own.
fn host_header(scheme: &Scheme, authority: &Authority) -> HeaderValue {
    let default_port = if *scheme == Scheme::HTTP { 80 } else { 443 };
    let text = match authority.port_u16() {
        Some(port) if port != default_port => format!("{}:{port}", authority.host()),
        _ => authority.host().to_owned(),
    };
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("localhost"))
}

/// The most telling text of a client error: its cause when it has one.
fn cause_of(err: &(dyn std::error::Error + 'static)) -> String {
    err.source()
        .map(ToString::to_string)
        .unwrap_or_else(|| err.to_string())
}

/// Whether sending failed because the client's own request body failed (it went away mid-upload),
/// not because of vCenter.
fn request_body_failed(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(err);
    while let Some(error) = source {
        if let Some(hyper_error) = error.downcast_ref::<hyper::Error>() {
            return hyper_error.is_user();
        }
        source = error.source();
    }
    false
}

/// Whether the TLS handshake failed because vCenter's certificate is not the configured one.
fn certificate_refused(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(err);
    while let Some(error) = source {
        if let Some(rustls::Error::InvalidCertificate(_)) = error.downcast_ref::<rustls::Error>() {
            return true;
        }
        if let Some(io) = error.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
            && let Some(rustls::Error::InvalidCertificate(_)) =
                inner.downcast_ref::<rustls::Error>()
        {
            return true;
        }
        source = error.source();
    }
    false
}

/// A redirect to vCenter's own address is turned into one to the gateway.
fn rewrite_location(headers: &mut HeaderMap, upstream: &Authority, public: Option<&Authority>) {
    let Some(public) = public else { return };
    let Some(location) = headers.get(header::LOCATION).and_then(|v| v.to_str().ok()) else {
        return;
    };
    let Ok(uri) = location.parse::<Uri>() else {
        return;
    };
    if uri.authority() != Some(upstream) {
        return;
    }
    let pq = uri
        .path_and_query()
        .map(PathAndQuery::as_str)
        .unwrap_or("/");
    if let Ok(value) = HeaderValue::from_str(&format!("https://{public}{pq}")) {
        headers.insert(header::LOCATION, value);
    }
}

/// A cookie scoped to vCenter's host name would never be sent to the gateway: drop the scope.
fn rewrite_set_cookie(headers: &mut HeaderMap, host: &str) {
    let cookies: Vec<HeaderValue> = headers
        .get_all(header::SET_COOKIE)
        .iter()
        .cloned()
        .collect();
    if !cookies.iter().any(|c| cookie_domain_is(c, host)) {
        return;
    }
    headers.remove(header::SET_COOKIE);
    for cookie in cookies {
        let value = match cookie.to_str() {
            Ok(text) if cookie_domain_is(&cookie, host) => {
                let kept: Vec<&str> = text
                    .split(';')
                    .filter(|attr| !is_domain_attr(attr, host))
                    .collect();
                HeaderValue::from_str(&kept.join(";")).unwrap_or(cookie)
            }
            _ => cookie,
        };
        headers.append(header::SET_COOKIE, value);
    }
}

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

fn cookie_domain_is(cookie: &HeaderValue, host: &str) -> bool {
    cookie
        .to_str()
        .map(|text| text.split(';').any(|attr| is_domain_attr(attr, host)))
        .unwrap_or(false)
}

fn is_domain_attr(attr: &str, host: &str) -> bool {
    let Some((name, value)) = attr.split_once('=') else {
        return false;
    };
    name.trim().eq_ignore_ascii_case("domain")
        && value
            .trim()
            .trim_start_matches('.')
            .eq_ignore_ascii_case(host)
}

fn client_facing_authority<B>(req: &Request<B>) -> Option<Authority> {
    req.uri().authority().cloned().or_else(|| {
        req.headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.parse().ok())
    })
}

fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|token| token.trim().eq_ignore_ascii_case("upgrade"))
}

fn is_upgrade_request<B>(req: &Request<B>) -> bool {
    req.version() == Version::HTTP_11 && is_upgrade(req.headers())
}

/// Removes hop-by-hop headers (RFC 9110 §7.6.1), keeping `Connection: upgrade` and
/// `Upgrade` when an upgrade is being passed through.
fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    let listed: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    // One pass over the names present (a handful) instead of a hashed removal per listed name.
    let doomed: Vec<HeaderName> = headers
        .keys()
        .filter(|name| HOP_BY_HOP.contains(name) || listed.contains(name))
        .filter(|name| !(keep_upgrade && *name == header::UPGRADE))
        .cloned()
        .collect();
    for name in doomed {
        headers.remove(&name);
    }
    if keep_upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

/// Headers that describe one hop, never forwarded (RFC 9110 §7.6.1, plus the legacy ones).
const HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
];

async fn splice_upgraded(client: hyper::upgrade::OnUpgrade, upstream: hyper::upgrade::OnUpgrade) {
    let (client, upstream) = match tokio::try_join!(client, upstream) {
        Ok(pair) => pair,
        Err(err) => {
            tracing::debug!(error = %err, "upgrade failed");
            return;
        }
    };
    let mut client = TokioIo::new(client);
    let mut upstream = TokioIo::new(upstream);
    if let Err(err) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
        tracing::debug!(error = %err, "upgraded connection ended");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_header_names_the_port_unless_it_is_the_schemes_own() {
        let host = |scheme: Scheme, authority: &'static str| {
            host_header(&scheme, &Authority::from_static(authority))
        };
        assert_eq!(host(Scheme::HTTPS, "vc.example:443"), "vc.example");
        assert_eq!(host(Scheme::HTTPS, "vc.example"), "vc.example");
        assert_eq!(host(Scheme::HTTPS, "vc.example:8443"), "vc.example:8443");
        assert_eq!(host(Scheme::HTTPS, "vc.example:80"), "vc.example:80");
        assert_eq!(host(Scheme::HTTP, "vc.example:80"), "vc.example");
        assert_eq!(host(Scheme::HTTPS, "[::1]:8443"), "[::1]:8443");
    }

    #[test]
    fn hop_by_hop_headers_are_removed() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret-hop"),
        );
        headers.insert("x-secret-hop", HeaderValue::from_static("1"));
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        headers.insert("vmware-api-session-id", HeaderValue::from_static("abc"));
        strip_hop_by_hop(&mut headers, false);
        assert_eq!(headers.len(), 1);
        assert!(headers.contains_key("vmware-api-session-id"));
    }

    #[test]
    fn upgrade_headers_survive_for_upgrades() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        assert!(is_upgrade(&headers));
        strip_hop_by_hop(&mut headers, true);
        assert_eq!(headers[header::UPGRADE], "websocket");
        assert_eq!(headers[header::CONNECTION], "upgrade");
    }

    #[test]
    fn redirects_to_vcenter_point_at_the_gateway() {
        let upstream = Authority::from_static("vc.example.com");
        let public = Authority::from_static("gw.example.com:8443");
        let mut headers = HeaderMap::new();
        headers.insert(
            header::LOCATION,
            HeaderValue::from_static("https://vc.example.com/ui/?x=1"),
        );
        rewrite_location(&mut headers, &upstream, Some(&public));
        assert_eq!(
            headers[header::LOCATION],
            "https://gw.example.com:8443/ui/?x=1"
        );

        headers.insert(
            header::LOCATION,
            HeaderValue::from_static("https://sso.example.com/"),
        );
        rewrite_location(&mut headers, &upstream, Some(&public));
        assert_eq!(headers[header::LOCATION], "https://sso.example.com/");
    }

    #[test]
    fn cookies_scoped_to_vcenter_lose_the_scope() {
        let mut headers = HeaderMap::new();
        headers.append(
            header::SET_COOKIE,
            HeaderValue::from_static("a=1; Domain=vc.example.com; Path=/; Secure"),
        );
        headers.append(header::SET_COOKIE, HeaderValue::from_static("b=2; Path=/"));
        rewrite_set_cookie(&mut headers, "vc.example.com");
        let cookies: Vec<_> = headers.get_all(header::SET_COOKIE).iter().collect();
        assert_eq!(cookies, ["a=1; Path=/; Secure", "b=2; Path=/"]);
    }

    #[test]
    fn domain_attribute_matching() {
        assert!(is_domain_attr(" Domain=.VC.example.com", "vc.example.com"));
        assert!(!is_domain_attr(" Path=/", "vc.example.com"));
        assert!(!is_domain_attr(
            "Domain=other.example.com",
            "vc.example.com"
        ));
    }
}
