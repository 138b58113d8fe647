//! Identify: who is calling? Resolves the request's session token to a vCenter user
//! ([`Caller`]), learning from `Login` answers and forgetting on `Logout`.
//!
//! Unknown tokens are looked up in vCenter (with that same token) only for guarded calls and
//! for vcguard's own API and console (which need the caller), so that a flood of random tokens
//! on pass-through traffic costs vCenter nothing.

use std::sync::Arc;
use std::time::SystemTime;

use http::{Request, Response, StatusCode};

use crate::body::{ProxyBody, collect_capped, full};
use crate::gate::error::GatewayError;
use crate::gate::facts::Facts;
use crate::gate::forward::Forward;
use crate::gate::step::{Inner, Next, Step, StepResult};
use crate::identity::{
    Caller, IdentityTokenVerifier, SessionCache, SessionKey, SessionService, login_result,
    lookup_user,
};
use crate::vsphere::credentials::{Credential, SESSION_HEADER};
use crate::vsphere::operation::{Operation, Protocol};

const LOGIN_ANSWER_CAP: usize = 1024 * 1024;

/// Puts a [`Caller`] in every request's facts and keeps the session cache current.
#[derive(Clone)]
pub struct Identify {
    cache: Arc<SessionCache>,
    forward: Forward,
    tokens: Option<Arc<IdentityTokenVerifier>>,
}

impl Identify {
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

impl Step for Identify {
    async fn handle<S: Inner>(
        &self,
        mut req: Request<ProxyBody>,
        facts: Arc<Facts>,
        next: Next<S>,
    ) -> StepResult {
        let operation = facts.operation();
        let effect = session_effect(operation);
        let token = session_token(&req, &facts);
        let cache = &self.cache;
        let key = token.as_ref().map(|(token, _)| cache.key_for(token));
        let cached = key.as_ref().and_then(|key| cache.get(key));
        let mut user = cached.clone().flatten();
        let guarded = facts.is_guarded();
        let needs_user = guarded || facts.own_api;
        if cached.is_none()
            && needs_user
            && let (Some((token, service)), Some(key)) = (&token, key)
        {
            let release = operation.and_then(|op| op.release.as_deref());
            match Box::pin(lookup_user(&self.forward, token, *service, release)).await {
                Ok(found) => {
                    cache.put(key, found.clone());
                    user = found;
                }
                Err(err) => tracing::warn!(error = %err, "session lookup failed"),
            }
        }
        if needs_user && let Some(user) = &user {
            tracing::Span::current().record("user", user.as_str());
        }
        let mut caller = Caller {
            user,
            session: key,
            ..Caller::default()
        };
        if let Some(tokens) = &self.tokens {
            if needs_user {
                apply_identity_token(tokens, &req, &mut caller);
            }
            // A credential meant for the gateway: vCenter never sees it.
            req.headers_mut().remove(tokens.header());
        }
        facts.set_caller(caller);
        let response = next.run(req).await?;
        Ok(match effect {
            SessionEffect::None => response,
            SessionEffect::Ends => {
                if let Some(key) = key {
                    cache.forget(&key);
                }
                response
            }
            SessionEffect::Login => Box::pin(learn_login(cache, operation, response)).await?,
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

/// The request's session token and the session service it belongs to: the SOAP cookie, the
/// VI/JSON header, or the same header on an Automation REST API call.
fn session_token(req: &Request<ProxyBody>, facts: &Facts) -> Option<(String, SessionService)> {
    match facts.credential()? {
        Credential::Session(token) => {
            let service = if !req.headers().contains_key(SESSION_HEADER) {
                SessionService::Soap
            } else if facts.operation().map(|op| op.protocol) == Some(Protocol::Rest) {
                SessionService::Rest
            } else {
                SessionService::VimJson
            };
            Some((token.clone(), service))
        }
        Credential::Authorization => None,
    }
}

/// Reads a successful login answer (small) to map its new token to its user.
async fn learn_login(
    cache: &SessionCache,
    operation: Option<&Operation>,
    response: Response<ProxyBody>,
) -> StepResult {
    let small = http_body::Body::size_hint(response.body())
        .exact()
        .is_some_and(|len| len <= LOGIN_ANSWER_CAP as u64);
    if response.status() != StatusCode::OK || !small {
        return Ok(response);
    }
    let protocol = operation.map_or(Protocol::Other, |op| op.protocol);
    let (parts, body) = response.into_parts();
    let bytes = match collect_capped(body, LOGIN_ANSWER_CAP).await {
        Ok(bytes) => bytes,
        Err(err) => {
            return Err(GatewayError::UpstreamBroken {
                cause: format!("the login answer: {err}"),
            });
        }
    };
    if let Some(login) = login_result(protocol, &parts.headers, &bytes) {
        let key: SessionKey = cache.key_for(&login.token);
        tracing::info!(user = %login.user, session = %key.short_hex(), "login seen");
        cache.put(key, Some(login.user));
    }
    Ok(Response::from_parts(parts, full(bytes)))
}
