//! Prometheus metrics of the gateway, served on the admin listener's `/metrics`.

use std::sync::OnceLock;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// How a request through the gateway ended.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum Outcome {
    /// vCenter answered (any status).
    Forwarded,
    /// The gateway refused the request itself (malformed, denied, too large).
    Refused,
    /// vCenter could not be reached.
    UpstreamError,
    /// vCenter did not answer in time.
    UpstreamTimeout,
    /// The client's request body broke off before it was sent in full.
    ClientAborted,
    /// A step of the gateway failed (a panic).
    Internal,
}

impl Outcome {
    /// The label value, in Prometheus' snake case.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Forwarded => "forwarded",
            Self::Refused => "refused",
            Self::UpstreamError => "upstream_error",
            Self::UpstreamTimeout => "upstream_timeout",
            Self::ClientAborted => "client_aborted",
            Self::Internal => "internal",
        }
    }
}

impl EncodeLabelValue for Outcome {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        std::fmt::Write::write_str(encoder, self.as_str())
    }
}

/// Label set of `vcguard_requests_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// How the request ended.
    pub outcome: Outcome,
}

/// Every metric the gateway exports.
pub struct Metrics {
    registry: Registry,
    /// Requests by outcome.
    pub requests: Family<OutcomeLabels, Counter>,
    /// Seconds from forwarding a request to vCenter's response headers.
    pub upstream_latency: Histogram,
    /// Client connections open now.
    pub open_connections: Gauge,
    /// Policy reloads by result.
    pub policy_reloads: Family<ReloadLabels, Counter>,
    /// Audit records dropped because the log could not be written and its queue was full.
    pub audit_dropped: Counter,
    /// Episodes in which a listener stopped accepting for lack of file descriptors or memory.
    pub accept_exhausted: Family<ListenerLabels, Counter>,
    outcome_counters: [OnceLock<Counter>; OUTCOMES],
}

/// How many [`Outcome`]s there are.
const OUTCOMES: usize = 6;

/// Label set of `vcguard_accept_exhausted_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ListenerLabels {
    /// `gateway` or `admin`.
    pub listener: &'static str,
}

/// Label set of `vcguard_policy_reloads_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReloadLabels {
    /// `applied` or `rejected`.
    pub result: &'static str,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric under the `vcguard` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("vcguard");
        let requests = Family::<OutcomeLabels, Counter>::default();
        registry.register("requests", "Requests by outcome", requests.clone());
        let upstream_latency = Histogram::new(exponential_buckets(0.0005, 2.0, 16));
        registry.register(
            "upstream_latency_seconds",
            "Time from forwarding a request to vCenter's response headers",
            upstream_latency.clone(),
        );
        let open_connections = Gauge::default();
        registry.register(
            "open_connections",
            "Client connections open now",
            open_connections.clone(),
        );
        let policy_reloads = Family::<ReloadLabels, Counter>::default();
        registry.register(
            "policy_reloads",
            "Policy reloads by result (applied, rejected)",
            policy_reloads.clone(),
        );
        let accept_exhausted = Family::<ListenerLabels, Counter>::default();
        registry.register(
            "accept_exhausted",
            "Episodes in which a listener stopped accepting connections because the process ran out of file descriptors (or memory); open connections were still served",
            accept_exhausted.clone(),
        );
        let audit_dropped = Counter::default();
        registry.register(
            "audit_dropped",
            "Audit records dropped because the log could not be written and its queue was full",
            audit_dropped.clone(),
        );
        Self {
            registry,
            audit_dropped,
            requests,
            upstream_latency,
            open_connections,
            policy_reloads,
            accept_exhausted,
            outcome_counters: [const { OnceLock::new() }; OUTCOMES],
        }
    }

    /// Counts one request that ended with `outcome`.
    pub fn count(&self, outcome: Outcome) {
        // The family's look-up takes its lock and hashes the labels; the counter is kept instead.
        let family = || self.requests.get_or_create(&OutcomeLabels { outcome });
        match self.outcome_counters.get(outcome as usize) {
            Some(kept) => kept.get_or_init(|| family().clone()).inc(),
            None => family().inc(),
        };
    }

    /// Counts one policy reload that was applied (`true`) or rejected.
    pub fn count_reload(&self, applied: bool) {
        let result = if applied { "applied" } else { "rejected" };
        self.policy_reloads
            .get_or_create(&ReloadLabels { result })
            .inc();
    }

    /// The counter of accept-exhaustion episodes of `listener`.
    pub fn accept_exhausted(&self, listener: &'static str) -> Counter {
        self.accept_exhausted
            .get_or_create(&ListenerLabels { listener })
            .clone()
    }

    /// Registers the change-system metrics (only when `[ticket.change_system]` is configured).
    pub fn register_change_system(&mut self, metrics: &ChangeSystemMetrics) {
        metrics.register(&mut self.registry);
    }

    /// The registry, for later modules to register their own metrics.
    pub fn registry_mut(&mut self) -> &mut Registry {
        &mut self.registry
    }

    /// Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Label set of `vcguard_change_system_lookups_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LookupLabels {
    /// `found`, `not_found`, `ambiguous`, `unreachable`, `timeout`, `http_error` or `malformed`.
    pub result: &'static str,
}

/// Metrics of the change system (`[ticket.change_system]`); cheap to clone, shared handles.
#[derive(Debug, Clone)]
pub struct ChangeSystemMetrics {
    /// Look-ups sent to the change system, by result.
    pub lookups: Family<LookupLabels, Counter>,
    /// Seconds per look-up (both requests).
    pub lookup_latency: Histogram,
    /// Checks answered from the cache.
    pub cache_hits: Counter,
}

impl Default for ChangeSystemMetrics {
    fn default() -> Self {
        Self {
            lookups: Family::default(),
            lookup_latency: Histogram::new(exponential_buckets(0.005, 2.0, 12)),
            cache_hits: Counter::default(),
        }
    }
}

impl ChangeSystemMetrics {
    /// Counts one look-up that ended with `result` after `seconds`.
    pub fn count_lookup(&self, result: &'static str, seconds: f64) {
        self.lookups.get_or_create(&LookupLabels { result }).inc();
        self.lookup_latency.observe(seconds);
    }

    /// How many look-ups ended with `result` so far.
    pub fn lookups_with(&self, result: &'static str) -> u64 {
        self.lookups.get_or_create(&LookupLabels { result }).get()
    }

    fn register(&self, registry: &mut Registry) {
        registry.register(
            "change_system_lookups",
            "Look-ups sent to the change system, by result",
            self.lookups.clone(),
        );
        registry.register(
            "change_system_lookup_seconds",
            "Time per change-system look-up (change request and affected CIs)",
            self.lookup_latency.clone(),
        );
        registry.register(
            "change_system_cache_hits",
            "Ticket checks answered from the change-system cache",
            self.cache_hits.clone(),
        );
    }
}
