//! Change control: approval requests (the two-person rule) and ticket claims. [`ChangeControl`]
//! is the one handle the gateway's steps and its own API use: each call is the state store's
//! operation plus its audit record. The store is opened lazily and again after a failure, so a
//! store that is down at start does not stop the gateway; calls that need it fail closed.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::OnceCell;

use crate::audit::{ApprovalRecord, AuditEvent, AuditLog, ClaimRecord};
use crate::policy::PolicySet;
use crate::state::{
    Approval, ApprovalError, ApprovalKey, ApprovalSettings, Claim, ClaimError, Decider,
    NewApproval, NewClaim, StateConfig, StateError, StateStore, Verdict, format_rfc3339,
};

/// How long a failed open is remembered before the store is tried again.
const RETRY_AFTER: Duration = Duration::from_secs(2);

/// The state store, the approval settings and the audit log, as one handle (cheap to clone).
#[derive(Clone)]
pub struct ChangeControl {
    inner: Arc<Inner>,
}

struct Inner {
    config: StateConfig,
    settings: ApprovalSettings,
    audit: AuditLog,
    store: OnceCell<StateStore>,
    last_failure: Mutex<Option<(Instant, String)>>,
}

impl std::fmt::Debug for ChangeControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangeControl")
            .field("store", &self.inner.config.describe())
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

impl ChangeControl {
    /// Change control on the store `config` names (opened on first use), deciding with
    /// `settings`, recording into `audit`.
    pub fn new(config: StateConfig, settings: ApprovalSettings, audit: AuditLog) -> Self {
        Self {
            inner: Arc::new(Inner {
                config,
                settings,
                audit,
                store: OnceCell::new(),
                last_failure: Mutex::new(None),
            }),
        }
    }

    /// The approval settings in force.
    pub fn settings(&self) -> ApprovalSettings {
        self.inner.settings
    }

    /// The store's location, without secrets.
    pub fn describe(&self) -> String {
        self.inner.config.describe()
    }

    /// The open store, opening (and migrating) it first if needed. After a failure the store
    /// is not tried again for two seconds; calls in between get the same error at once.
    pub async fn store(&self) -> Result<StateStore, StateError> {
        if let Some(store) = self.inner.store.get() {
            return Ok(store.clone());
        }
        if let Some((at, reason)) = self.last_failure()
            && at.elapsed() < RETRY_AFTER
        {
            return Err(StateError::Unavailable {
                target: self.describe(),
                reason,
            });
        }
        let opened = self
            .inner
            .store
            .get_or_try_init(|| async {
                let store = StateStore::open(&self.inner.config).await?;
                Ok::<_, StateError>(store.with_approval_settings(self.inner.settings))
            })
            .await;
        match opened {
            Ok(store) => {
                self.set_last_failure(None);
                Ok(store.clone())
            }
            Err(err) => {
                tracing::warn!(error = %err, "state store unavailable");
                self.set_last_failure(Some(err.to_string()));
                Err(err)
            }
        }
    }

    fn last_failure(&self) -> Option<(Instant, String)> {
        self.inner
            .last_failure
            .lock()
            .map(|g| g.clone())
            .unwrap_or_else(|poisoned| poisoned.into_inner().clone())
    }

    fn set_last_failure(&self, reason: Option<String>) {
        let mut guard = self
            .inner
            .last_failure
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *guard = reason.map(|reason| (Instant::now(), reason));
    }

    /// The store's health as last seen, for `/readyz`: `{"store", "status": "ok" |
    /// "unavailable" | "not_opened", "reason"?}`.
    pub fn health_json(&self) -> serde_json::Value {
        let mut health = serde_json::json!({ "store": self.describe() });
        match self.last_failure() {
            Some((_, reason)) => {
                health["status"] = "unavailable".into();
                health["reason"] = reason.into();
            }
            None if self.inner.store.get().is_some() => health["status"] = "ok".into(),
            None => health["status"] = "not_opened".into(),
        }
        health
    }

    /// Notes the outcome of a store operation for [`Self::health_json`].
    fn noted<T>(&self, result: Result<T, StateError>) -> Result<T, StateError> {
        match &result {
            Ok(_) => {
                if self.last_failure().is_some() {
                    self.set_last_failure(None);
                }
            }
            Err(err) => self.set_last_failure(Some(err.to_string())),
        }
        result
    }

    /// Whether the store answers (for `/readyz`); the reason when it does not.
    pub async fn readiness(&self) -> Result<(), String> {
        let store = self.store().await.map_err(|err| err.to_string())?;
        store.check().await.map_err(|err| err.to_string())
    }

    /// Every group `user` is a member of: the groups the identity step found for the session
    /// (`caller_groups`, e.g. from an identity token) and the `User` → `Group` membership in
    /// the policies' `entities.json`. The approver check and the console use this; it is the
    /// same group knowledge the policies decide with.
    pub fn groups_of(user: &str, caller_groups: &[String], policies: &PolicySet) -> Vec<String> {
        let mut groups = policies.groups_of_user(user);
        groups.extend(caller_groups.iter().cloned());
        groups.sort();
        groups.dedup();
        groups
    }

    /// Approves or denies request `id` as `decider`, and records it (`approved` / `denied`).
    /// A request found expired is marked and recorded `expired`.
    pub async fn decide_approval(
        &self,
        id: &str,
        decider: &Decider,
        verdict: Verdict,
        comment: &str,
        now: SystemTime,
    ) -> Result<Approval, ApprovalError> {
        let store = self.store().await?;
        match store.decide(id, decider, verdict, comment, now).await {
            Ok(approval) => {
                let event = match verdict {
                    Verdict::Approve => "approved",
                    Verdict::Deny => "denied",
                };
                tracing::info!(approval = %approval.id, by = %decider.user, event, "approval request decided");
                self.record(&approval, event, None).await;
                Ok(approval)
            }
            Err(ApprovalError::Expired { id }) => {
                if let Err(err) = self.expire_due(now).await {
                    tracing::warn!(error = %err, "cannot mark expired approval requests");
                }
                Err(ApprovalError::Expired { id })
            }
            Err(err) => Err(err),
        }
    }

    /// Files an approval request for a refused call (`request_id`), recorded `requested` when
    /// it is new; the same call's pending request is returned as it is.
    pub async fn request_approval(
        &self,
        new: NewApproval,
        request_id: &str,
        now: SystemTime,
    ) -> Result<Approval, StateError> {
        let store = self.store().await?;
        let (approval, created) = self.noted(store.request_approval_new(new, now).await)?;
        if created {
            self.record(&approval, "requested", Some(request_id)).await;
        }
        Ok(approval)
    }

    /// Takes one use of an approval for `key` for call `request_id`, recorded `used`.
    pub async fn use_approval(
        &self,
        key: &ApprovalKey,
        request_id: &str,
        now: SystemTime,
    ) -> Result<Option<Approval>, StateError> {
        let store = self.store().await?;
        let used = self.noted(store.use_approval(key, now).await)?;
        if let Some(approval) = &used {
            self.record(approval, "used", Some(request_id)).await;
        }
        Ok(used)
    }

    /// Marks requests past their time `expired` and records each.
    pub async fn expire_due(&self, now: SystemTime) -> Result<Vec<Approval>, StateError> {
        let store = self.store().await?;
        let expired = self.noted(store.expire(now).await)?;
        for approval in &expired {
            self.record(approval, "expired", None).await;
        }
        Ok(expired)
    }

    /// Marks expired requests every `every` until the returned task is aborted.
    pub fn spawn_expiry(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        let control = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(err) = control.expire_due(SystemTime::now()).await {
                    tracing::debug!(error = %err, "approval expiry skipped");
                }
            }
        })
    }

    /// Stores a claim whose ticket the caller verified, and records it (`created`).
    pub async fn claim_ticket(&self, new: NewClaim, now: SystemTime) -> Result<Claim, StateError> {
        let store = self.store().await?;
        let claim = store.claim(new, now).await?;
        tracing::info!(claim = %claim.id, user = %claim.user, ticket = %claim.ticket_id, "ticket claimed");
        self.record_claim(&claim, "created").await;
        Ok(claim)
    }

    /// Releases `user`'s claim `id`, and records it (`released`) unless it already was.
    pub async fn release_claim(
        &self,
        id: &str,
        user: &str,
        now: SystemTime,
    ) -> Result<Claim, ClaimError> {
        let store = self.store().await?;
        let was_released = store
            .claim_by_id(id)
            .await?
            .is_some_and(|claim| claim.released_at.is_some());
        let claim = store.release(id, user, now).await?;
        if !was_released {
            self.record_claim(&claim, "released").await;
        }
        Ok(claim)
    }

    /// `user`'s newest active claim covering `action` on one of `hosts`.
    pub async fn covering_claim(
        &self,
        user: &str,
        action: &str,
        hosts: &[String],
        now: SystemTime,
    ) -> Result<Option<Claim>, StateError> {
        let store = self.store().await?;
        self.noted(store.covering_claim(user, action, hosts, now).await)
    }

    async fn record(&self, approval: &Approval, event: &str, request_id: Option<&str>) {
        let record = ApprovalRecord {
            event: event.to_owned(),
            id: approval.id.clone(),
            requester: approval.key.requester.clone(),
            action: approval.key.action.clone(),
            target: approval.key.target.clone(),
            body_hash: approval.key.body_hash.clone(),
            group: approval.group.clone(),
            policy: approval.policy.clone(),
            summary: approval.summary.clone(),
            by: approval
                .decided_by
                .clone()
                .filter(|_| matches!(event, "approved" | "denied")),
            comment: approval
                .comment
                .clone()
                .filter(|_| matches!(event, "approved" | "denied")),
            request_id: request_id.map(str::to_owned),
            window_until: approval.window_until.map(format_rfc3339),
            uses_left: approval.uses_left,
        };
        if let Err(err) = self.inner.audit.write(AuditEvent::Approval(record)).await {
            tracing::error!(error = %err, approval = %approval.id, event, "audit: approval record not written");
        }
    }

    async fn record_claim(&self, claim: &Claim, event: &str) {
        let record = ClaimRecord {
            event: event.to_owned(),
            id: claim.id.clone(),
            user: claim.user.clone(),
            ticket_id: claim.ticket_id.clone(),
            ticket_kind: claim.ticket_kind.clone(),
            hosts: claim.hosts.clone(),
            actions: claim.actions.clone(),
            until: format_rfc3339(claim.until),
        };
        if let Err(err) = self.inner.audit.write(AuditEvent::Claim(record)).await {
            tracing::error!(error = %err, claim = %claim.id, event, "audit: claim record not written");
        }
    }
}
