//! Policy reload: on SIGHUP and when the policy directory changes (polled, debounced).
//! A set that fails validation is rejected and the last good one stays in force.

use std::sync::Arc;
use std::time::Duration;

use crate::audit::{AuditEvent, AuditLog, ReloadRecord};
use crate::metrics::Metrics;
use crate::policy::{PolicyStore, ReloadOutcome};

/// Reloads the policy store (the policy set and the guarded method set it implies, swapped as one).
#[derive(Clone)]
pub struct PolicyReloader {
    store: Arc<PolicyStore>,
    metrics: Arc<Metrics>,
    audit: AuditLog,
}

impl PolicyReloader {
    /// A reloader for `store`, counting into `metrics`, recording into `audit`.
    pub fn new(store: Arc<PolicyStore>, metrics: Arc<Metrics>, audit: AuditLog) -> Self {
        Self {
            store,
            metrics,
            audit,
        }
    }

    /// Reloads now; returns whether a new set is in force. Every attempt that found a change
    /// leaves a `reload` record in the audit log.
    pub async fn reload_now(&self, trigger: &str) -> bool {
        let source = Some(self.store.dir().display().to_string());
        let (applied, record) = match self.store.reload() {
            Ok(ReloadOutcome::Changed { old_hash, new_hash }) => {
                tracing::info!(trigger, old = %old_hash, new = %new_hash, "policy set reloaded");
                let record = ReloadRecord {
                    ok: true,
                    old_hash: Some(old_hash),
                    new_hash: Some(new_hash),
                    ..ReloadRecord::default()
                };
                (true, record)
            }
            Ok(ReloadOutcome::Unchanged) => return false,
            Err(errors) => {
                let in_force = self.store.current().hash().to_owned();
                tracing::error!(
                    trigger,
                    in_force = %in_force,
                    errors = %errors,
                    "policy reload rejected; the last good policy set stays in force"
                );
                let record = ReloadRecord {
                    ok: false,
                    old_hash: Some(in_force),
                    errors: errors.errors.iter().map(ToString::to_string).collect(),
                    ..ReloadRecord::default()
                };
                (false, record)
            }
        };
        self.metrics.count_reload(applied);
        let record = ReloadRecord {
            source,
            trigger: Some(trigger.to_owned()),
            ..record
        };
        if let Err(err) = self.audit.write(AuditEvent::Reload(record)).await {
            tracing::error!(error = %err, "audit: reload record not written");
        }
        applied
    }

    /// Reloads on SIGHUP and, with `poll`, when the directory's files change and then stay
    /// unchanged for one more interval (so a half-copied set is not picked up). Runs until dropped.
    pub async fn run(self, poll: Option<Duration>) {
        let mut hangup = hangup_signal();
        let mut seen = self.store.dir_fingerprint();
        let mut pending: Option<u64> = None;
        let interval = poll.unwrap_or(Duration::from_secs(3600));
        loop {
            tokio::select! {
                () = hangup.recv() => {
                    self.reload_now("SIGHUP").await;
                    seen = self.store.dir_fingerprint();
                    pending = None;
                }
                () = tokio::time::sleep(interval), if poll.is_some() => {
                    let now = self.store.dir_fingerprint();
                    if now == seen {
                        pending = None;
                    } else if pending == Some(now) {
                        self.reload_now("file change").await;
                        seen = now;
                        pending = None;
                    } else {
                        pending = Some(now);
                    }
                }
            }
        }
    }
}

/// SIGHUP as a stream of wake-ups (never fires where there are no signals).
struct Hangup(Option<tokio::signal::unix::Signal>);

fn hangup_signal() -> Hangup {
    let signal = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup());
    if let Err(err) = &signal {
        tracing::warn!(error = %err, "cannot listen for SIGHUP; policy reload by signal is off");
    }
    Hangup(signal.ok())
}

impl Hangup {
    async fn recv(&mut self) {
        match &mut self.0 {
            Some(signal) => {
                if signal.recv().await.is_none() {
                    std::future::pending::<()>().await;
                }
            }
            None => std::future::pending::<()>().await,
        }
    }
}
