//! Whether the log can be written now, what the gateway refuses while it cannot, and the
//! records dropped meanwhile.

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::SystemTime;

use prometheus_client::metrics::counter::Counter;
use serde::Deserialize;
use tokio::sync::watch;

use super::record::format_time;

/// Whether the audit log can be written, as the gateway and `/readyz` see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// The last write attempt succeeded.
    Healthy,
    /// Writes fail; the writer retries with back-off (100 ms doubling to 5 s).
    Failing {
        /// The last write error, e.g. `cannot write to audit.jsonl: No space left on device`.
        reason: String,
        /// Its kind (e.g. `StorageFull`), to tell disk-full from other faults.
        kind: io::ErrorKind,
        /// When the log started failing.
        since: SystemTime,
    },
}

impl Health {
    /// Whether the log can be written.
    pub fn is_healthy(&self) -> bool {
        matches!(self, Health::Healthy)
    }

    /// An `io::Error` describing the failure (`None` when healthy).
    pub(super) fn error(&self) -> Option<io::Error> {
        match self {
            Health::Healthy => None,
            Health::Failing { reason, kind, .. } => Some(io::Error::new(*kind, reason.clone())),
        }
    }

    /// The RFC 3339 time the failure began (`None` when healthy).
    pub fn since_rfc3339(&self) -> Option<String> {
        match self {
            Health::Healthy => None,
            Health::Failing { since, .. } => Some(format_time((*since).into())),
        }
    }
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Health::Healthy => f.write_str("healthy"),
            Health::Failing { reason, .. } => write!(
                f,
                "failing since {}: {reason}",
                self.since_rfc3339().unwrap_or_default()
            ),
        }
    }
}

/// What the gateway refuses while the audit log cannot be written (`[audit] on_full`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnFull {
    /// Refuse every call with a 503: nothing passes without a record.
    RefuseAll,
    /// Refuse guarded calls (their decision cannot be written ahead); pass-through calls
    /// keep flowing, and their outcomes are dropped, counted and reported in a `gap` record.
    #[default]
    RefuseGuarded,
}

impl OnFull {
    /// The configuration spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            OnFull::RefuseAll => "refuse_all",
            OnFull::RefuseGuarded => "refuse_guarded",
        }
    }
}

/// Records dropped while the log was failing, not yet reported in a `gap` record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct DropSpan {
    pub(super) count: u64,
    pub(super) first: String,
    pub(super) last: String,
}

impl DropSpan {
    fn merge(&mut self, other: DropSpan) {
        self.count += other.count;
        if other.first < self.first {
            self.first = other.first;
        }
        if other.last > self.last {
            self.last = other.last;
        }
    }
}

/// Health shared by every handle and the writer task.
pub(super) struct HealthCell {
    failing: AtomicBool,
    state: watch::Sender<Health>,
    dropped_total: AtomicU64,
    pending_drops: Mutex<Option<DropSpan>>,
    dropped_metric: OnceLock<Counter>,
}

impl HealthCell {
    pub(super) fn new() -> Self {
        HealthCell {
            failing: AtomicBool::new(false),
            state: watch::Sender::new(Health::Healthy),
            dropped_total: AtomicU64::new(0),
            pending_drops: Mutex::new(None),
            dropped_metric: OnceLock::new(),
        }
    }

    /// Cheap check for the request path.
    pub(super) fn is_failing(&self) -> bool {
        self.failing.load(Ordering::Acquire)
    }

    pub(super) fn get(&self) -> Health {
        self.state.borrow().clone()
    }

    pub(super) fn set(&self, health: Health) {
        self.failing.store(!health.is_healthy(), Ordering::Release);
        self.state.send_replace(health);
    }

    /// A receiver that sees every state change.
    pub(super) fn subscribe(&self) -> watch::Receiver<Health> {
        self.state.subscribe()
    }

    /// Counts one dropped record submitted at `time`.
    pub(super) fn note_drop(&self, time: &str) {
        self.dropped_total.fetch_add(1, Ordering::Relaxed);
        if let Some(counter) = self.dropped_metric.get() {
            counter.inc();
        }
        let span = DropSpan {
            count: 1,
            first: time.to_owned(),
            last: time.to_owned(),
        };
        let mut pending = self
            .pending_drops
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match pending.as_mut() {
            Some(p) => p.merge(span),
            None => *pending = Some(span),
        }
    }

    /// Takes the drops not yet reported.
    pub(super) fn take_drops(&self) -> Option<DropSpan> {
        self.pending_drops
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    /// Puts back drops whose `gap` record could not be written.
    pub(super) fn restore_drops(&self, span: DropSpan) {
        let mut pending = self
            .pending_drops
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match pending.as_mut() {
            Some(p) => p.merge(span),
            None => *pending = Some(span),
        }
    }

    pub(super) fn dropped_total(&self) -> u64 {
        self.dropped_total.load(Ordering::Relaxed)
    }

    /// Mirrors drops into a metrics counter from now on (and adds those counted so far).
    pub(super) fn count_drops_in(&self, counter: Counter) {
        let already = self.dropped_total();
        if self.dropped_metric.set(counter.clone()).is_ok() {
            counter.inc_by(already);
        }
    }
}
