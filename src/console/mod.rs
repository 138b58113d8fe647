//! vcguard's own API (`/vcguard/api/v1/`) and web console (`/vcguard/ui/`), answered on the
//! client-facing listener by the gate's `own_api` step. Nothing under `/vcguard/` is forwarded
//! to vCenter. Callers are vCenter users, identified by the identify step from the session they
//! made through the gateway (see `docs/CONSOLE.md`).

mod api;
mod audit_view;
mod claims;
mod html;
mod reply;
mod session;
mod ui;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use http::{Request, Response};

use crate::approval::ChangeControl;
use crate::body::ProxyBody;
use crate::gate::facts::Facts;
use crate::gate::forward::Forward;
use crate::gateway::TicketSettings;
use crate::identity::SessionCache;
use crate::state::{Approval, ApprovalFilter, Claim, StateError};

pub use reply::ApiError;

/// The path prefix of everything vcguard answers itself.
pub const OWN_PREFIX: &str = "/vcguard/";
/// The API's path prefix.
pub const API_PREFIX: &str = "/vcguard/api/v1/";
/// The console's path prefix.
pub const UI_PREFIX: &str = "/vcguard/ui/";

/// What the API and the console work with.
#[derive(Clone)]
pub struct Console {
    inner: Arc<ConsoleInner>,
}

struct ConsoleInner {
    control: ChangeControl,
    forward: Forward,
    sessions: Arc<SessionCache>,
    tickets: TicketSettings,
    audit_file: PathBuf,
}

impl ConsoleInner {
    /// Approval requests matching `filter`.
    async fn approvals(
        &self,
        filter: &ApprovalFilter,
        now: SystemTime,
    ) -> Result<Vec<Approval>, StateError> {
        self.control.store().await?.approvals(filter, now).await
    }

    /// Approval request `id`.
    async fn approval(&self, id: &str) -> Result<Option<Approval>, StateError> {
        self.control.store().await?.approval(id).await
    }

    /// `user`'s active claims.
    async fn claims_of(&self, user: &str, now: SystemTime) -> Result<Vec<Claim>, StateError> {
        self.control.store().await?.claims_of(user, now).await
    }
}

/// The vCenter user making an API call or using the console.
#[derive(Debug, Clone)]
pub(crate) struct Who {
    /// The vCenter user name.
    pub(crate) user: String,
    /// Groups from the policy entities and any identity token.
    pub(crate) groups: Vec<String>,
}

impl Console {
    /// The API and console over `control` (approvals and claims), logging console users in
    /// through `forward` and remembering their sessions in `sessions` (the identify step's
    /// cache); claims are verified with `tickets`; the audit view reads `audit_file` and its
    /// rotated siblings.
    pub fn new(
        control: ChangeControl,
        forward: Forward,
        sessions: Arc<SessionCache>,
        tickets: TicketSettings,
        audit_file: PathBuf,
    ) -> Self {
        Self {
            inner: Arc::new(ConsoleInner {
                control,
                forward,
                sessions,
                tickets,
                audit_file,
            }),
        }
    }

    /// Answers a request under [`OWN_PREFIX`] whose facts (caller) are `facts`.
    pub async fn answer(&self, req: Request<ProxyBody>, facts: &Facts) -> Response<ProxyBody> {
        let path = req.uri().path();
        if path.starts_with(API_PREFIX) {
            return api::answer(&self.inner, req, facts).await;
        }
        if path.starts_with(UI_PREFIX) || path == "/vcguard/ui" {
            return ui::answer(&self.inner, req, facts).await;
        }
        ApiError::not_found(format!(
            "nothing at {path}: vcguard serves its API under {API_PREFIX} and its console under {UI_PREFIX}"
        ))
        .to_json()
    }
}

/// The caller of a request as the identify step found it, with the groups the policy
/// entities give the user; `None` without a known vCenter session (fail closed).
pub(crate) fn who(facts: &Facts) -> Option<Who> {
    let caller = facts.caller()?;
    let user = caller.user.clone()?;
    let groups = ChangeControl::groups_of(&user, &caller.groups, &facts.snapshot.policies);
    Some(Who { user, groups })
}

/// An RFC 3339 time (UTC, seconds) for pages and tables.
pub(crate) fn rfc3339(time: SystemTime) -> String {
    let time = time::OffsetDateTime::from(time);
    let time = time.replace_nanosecond(0).unwrap_or(time);
    time.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "(unreadable time)".to_owned())
}
