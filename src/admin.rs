//! The admin listener: `/healthz`, `/readyz` and `/metrics` over plain HTTP.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use tower::Service;

use crate::approval::ChangeControl;
use crate::audit::{AuditLog, Health};
use crate::body::{ProxyBody, full};
use crate::metrics::Metrics;
use crate::policy::PolicyStore;
use crate::ticket::change_system::ChangeSystemHealth;

/// Shared readiness: false once shutdown has begun, so load balancers drain this replica.
#[derive(Debug, Clone)]
pub struct Readiness(Arc<AtomicBool>);

impl Default for Readiness {
    fn default() -> Self {
        Self(Arc::new(AtomicBool::new(true)))
    }
}

impl Readiness {
    /// Marks the gateway as draining.
    pub fn set_draining(&self) {
        self.0.store(false, Ordering::Release);
    }

    /// Whether the gateway takes new traffic.
    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// Answers the admin endpoints.
#[derive(Clone)]
pub struct AdminService {
    metrics: Arc<Metrics>,
    readiness: Readiness,
    policies: Arc<PolicyStore>,
    audit: Option<AuditLog>,
    change_system: Option<ChangeSystemHealth>,
    state: Option<ChangeControl>,
}

impl AdminService {
    /// An admin service over `metrics`, `readiness` and the policies in force.
    pub fn new(metrics: Arc<Metrics>, readiness: Readiness, policies: Arc<PolicyStore>) -> Self {
        Self {
            metrics,
            readiness,
            policies,
            audit: None,
            change_system: None,
            state: None,
        }
    }

    /// Adds the state store's health to `/readyz` (`state`); like the change system it never
    /// makes the gateway unready: pass-through traffic does not need the store.
    pub fn with_state(mut self, control: ChangeControl) -> Self {
        self.state = Some(control);
        self
    }

    /// Also answers `/readyz` with 503 while `log` cannot be written.
    pub fn with_audit(mut self, log: AuditLog) -> Self {
        self.audit = Some(log);
        self
    }

    /// Adds the change system's health as a line of `/healthz` (it never affects `/readyz`: an
    /// outage of the change system must not take pass-through traffic down).
    pub fn with_change_system(mut self, health: Option<ChangeSystemHealth>) -> Self {
        self.change_system = health;
        self
    }

    /// `ok`, then one line per dependency that has details (the change system).
    fn health_text(&self) -> String {
        let mut text = String::from("ok\n");
        if let Some(health) = &self.change_system {
            text.push_str(&health.detail());
            text.push('\n');
        }
        text
    }

    fn answer(&self, req: &Request<ProxyBody>) -> Response<ProxyBody> {
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return text(StatusCode::METHOD_NOT_ALLOWED, "only GET\n", "text/plain");
        }
        match req.uri().path() {
            "/healthz" => text(StatusCode::OK, self.health_text(), "text/plain"),
            "/readyz" => {
                let draining = !self.readiness.is_ready();
                let audit = self
                    .audit
                    .as_ref()
                    .map_or(Health::Healthy, AuditLog::health);
                let mut body = serde_json::json!({
                    "status": if draining {
                        "draining"
                    } else if audit.is_healthy() {
                        "ready"
                    } else {
                        "audit_failing"
                    },
                    "policy_set": self.policies.current().hash(),
                });
                if let Some(control) = &self.state {
                    body["state"] = control.health_json();
                }
                if let Health::Failing { reason, .. } = &audit {
                    body["audit"] = serde_json::json!({
                        "reason": reason,
                        "since": audit.since_rfc3339(),
                    });
                }
                let ready = !draining && audit.is_healthy();
                let status = if ready {
                    StatusCode::OK
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                };
                text(status, body.to_string(), "application/json")
            }
            "/metrics" => text(
                StatusCode::OK,
                self.metrics.encode(),
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            ),
            _ => text(StatusCode::NOT_FOUND, "not found\n", "text/plain"),
        }
    }
}

fn text(
    status: StatusCode,
    body: impl Into<bytes::Bytes>,
    content_type: &'static str,
) -> Response<ProxyBody> {
    let mut response = Response::new(full(body.into()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

impl Service<Request<ProxyBody>> for AdminService {
    type Response = Response<ProxyBody>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Response<ProxyBody>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<ProxyBody>) -> Self::Future {
        std::future::ready(Ok(self.answer(&req)))
    }
}
