//! Identify: who is calling? Resolves the request's session token to a vCenter user
//! ([`Caller`]), learning from `Login` answers and forgetting on `Logout`.
//!
//! Unknown tokens are looked up in vCenter (with that same token) only for guarded calls,
//! so that a flood of random tokens on pass-through traffic costs vCenter nothing.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::SystemTime;

use futures_util::future::BoxFuture;
use http::{Request, Response, StatusCode};
use tower::{Layer, Service};

use crate::body::{ProxyBody, collect_capped, full};
use crate::gate::forward::Forward;
use crate::gate::respond::fault_response;
use crate::identity::{
    Caller, IdentityTokenVerifier, SessionCache, SessionKey, login_result, lookup_user,
};
use crate::vsphere::credentials::{Credential, SESSION_HEADER, single_credential};
use crate::vsphere::fault::{FaultProtocol, VimFault};
use crate::vsphere::operation::{Operation, Protocol};

const LOGIN_ANSWER_CAP: usize = 1024 * 1024;

/// Builds [`Identify`].
#[derive(Clone)]
pub struct IdentifyLayer {
    cache: Arc<SessionCache>,
    forward: Forward,
    tokens: Option<Arc<IdentityTokenVerifier>>,
}

impl IdentifyLayer {
    /// Identification with `cache`, asking vCenter through `forward` for unknown tokens, and
    /// taking groups from identity tokens when `tokens` is set.
    pub fn new(
        cache: Arc<SessionCache>,
        forward: Forward,
        tokens: Option<Arc<IdentityTokenVerifier>>,
    ) -> Self {
        Self {
            cache,
            forward,
            tokens,
        }
    }
}

impl<S> Layer<S> for IdentifyLayer {
    type Service = Identify<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Identify {
            inner,
            cache: self.cache.clone(),
            forward: self.forward.clone(),
            tokens: self.tokens.clone(),
        }
    }
}

/// Puts a [`Caller`] in every request's extensions and keeps the session cache current.
#[derive(Clone)]
pub struct Identify<S> {
    inner: S,
    cache: Arc<SessionCache>,
    forward: Forward,
    tokens: Option<Arc<IdentityTokenVerifier>>,
}

/// What a call does to the session it runs in.
#[derive(Clone, Copy, PartialEq, Eq)]
enum SessionEffect {
    None,
    Login,
    Ends,
}

fn session_effect(operation: Option<&Operation>) -> SessionEffect {
    match operation.and_then(Operation::method_name) {
        Some(
            "Login"
            | "LoginByToken"
            | "LoginBySSPI"
            | "LoginExtensionByCertificate"
            | "LoginExtensionBySubjectName",
        ) => SessionEffect::Login,
        Some("Logout" | "ImpersonateUser" | "CloneSession") => SessionEffect::Ends,
        _ => SessionEffect::None,
    }
}

impl<S> Service<Request<ProxyBody>> for Identify<S>
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

    fn call(&mut self, mut req: Request<ProxyBody>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let cache = self.cache.clone();
        let forward = self.forward.clone();
        let tokens = self.tokens.clone();
        Box::pin(async move {
            let operation = req.extensions().get::<Operation>().cloned();
            let effect = session_effect(operation.as_ref());
            let token = session_token(&req);
            let key = token.as_ref().map(|(token, _)| cache.key_for(token));
            let cached = key.as_ref().and_then(|key| cache.get(key));
            let mut user = cached.clone().flatten();
            let guarded = operation.as_ref().is_some_and(Operation::is_guarded);
            if cached.is_none()
                && guarded
                && let (Some((token, soap)), Some(key)) = (&token, key)
            {
                let release = operation.as_ref().and_then(|op| op.release.as_deref());
                match lookup_user(&forward, token, *soap, release).await {
                    Ok(found) => {
                        cache.put(key, found.clone());
                        user = found;
                    }
                    Err(err) => tracing::warn!(error = %err, "session lookup failed"),
                }
            }
            if guarded && let Some(user) = &user {
                tracing::Span::current().record("user", user.as_str());
            }
            let mut caller = Caller {
                user,
                session: key,
                ..Caller::default()
            };
            if let Some(tokens) = &tokens {
                if guarded {
                    apply_identity_token(tokens, &req, &mut caller);
                }
                // A credential meant for the gateway: vCenter never sees it.
                req.headers_mut().remove(tokens.header());
            }
            req.extensions_mut().insert(caller);
            let response = super::call_boxed(&mut inner, req).await?;
            Ok(match effect {
                SessionEffect::None => response,
                SessionEffect::Ends => {
                    if let Some(key) = key {
                        cache.forget(&key);
                    }
                    response
                }
                SessionEffect::Login => learn_login(&cache, operation.as_ref(), response).await,
            })
        })
    }
}

/// Adds the groups of the request's identity token to `caller`, or notes why it is refused.
fn apply_identity_token(
    tokens: &IdentityTokenVerifier,
    req: &Request<ProxyBody>,
    caller: &mut Caller,
) {
    let mut values = req.headers().get_all(tokens.header()).iter();
    let Some(value) = values.next() else {
        return;
    };
    let verdict = if values.next().is_some() {
        Err(format!("the {} header is repeated", tokens.header()))
    } else {
        match value.to_str() {
            Ok(raw) => tokens.verify(raw.trim(), caller.user.as_deref(), SystemTime::now()),
            Err(_) => Err(format!(
                "the {} header is not visible ASCII",
                tokens.header()
            )),
        }
    };
    match verdict {
        Ok(found) => {
            tracing::debug!(groups = ?found.groups, key = %found.key_id, "identity token verified");
            caller.groups = found.groups;
        }
        Err(reason) => {
            tracing::warn!(reason = %reason, "identity token refused");
            caller.token_problem = Some(format!("identity token rejected: {reason}"));
        }
    }
}

/// The request's session token and whether it came as the SOAP cookie.
fn session_token(req: &Request<ProxyBody>) -> Option<(String, bool)> {
    match single_credential(req.headers()).ok().flatten()? {
        Credential::Session(token) => {
            let soap = !req.headers().contains_key(SESSION_HEADER);
            Some((token, soap))
        }
        Credential::Authorization => None,
    }
}

/// Reads a successful login answer (small) to map its new token to its user.
async fn learn_login(
    cache: &SessionCache,
    operation: Option<&Operation>,
    response: Response<ProxyBody>,
) -> Response<ProxyBody> {
    let small = http_body::Body::size_hint(response.body())
        .exact()
        .is_some_and(|len| len <= LOGIN_ANSWER_CAP as u64);
    if response.status() != StatusCode::OK || !small {
        return response;
    }
    let protocol = operation.map_or(Protocol::Other, |op| op.protocol);
    let (parts, body) = response.into_parts();
    let bytes = match collect_capped(body, LOGIN_ANSWER_CAP).await {
        Ok(bytes) => bytes,
        Err(err) => {
            tracing::warn!(error = %err, "login answer could not be read");
            let fault = VimFault::gateway(
                "HostCommunication",
                "upstream.broken",
                format!("vcguard: vCenter's login answer broke off: {err}"),
            );
            let protocol = match protocol {
                Protocol::Soap => FaultProtocol::Soap,
                _ => FaultProtocol::Json,
            };
            return fault_response(StatusCode::BAD_GATEWAY, protocol, &fault);
        }
    };
    if let Some(login) = login_result(protocol, &parts.headers, &bytes) {
        let key: SessionKey = cache.key_for(&login.token);
        tracing::info!(user = %login.user, session = %key.short_hex(), "login seen");
        cache.put(key, Some(login.user));
    }
    Response::from_parts(parts, full(bytes))
}
