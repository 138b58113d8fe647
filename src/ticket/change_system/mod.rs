//! Change tickets checked where they live: a ServiceNow change request must exist, be in an
//! allowed state (default Implement), be inside its planned window and name the target host as
//! a configuration item (`[ticket.change_system]`).
//!
//! [`ChangeSystem::check`] runs after the pattern or signature check: the id is validated against
//! `[ticket] pattern` and a fixed safe alphabet before it is put in a query, so `^`, `=`, `&`,
//! spaces and the like never reach ServiceNow. One look-up is two Table API GETs
//! (`change_request` by number, `task_ci` by the change's `sys_id`), bounded by `timeout_secs`
//! and 1 MiB per answer. Every failure — unreachable, timeout, non-2xx, malformed JSON, zero or
//! several changes with the number — is a refusal with the reason (fail closed). Outcomes are
//! cached per id: `cache_ttl_secs` for a change in an allowed state, `negative_cache_ttl_secs`
//! for anything else, so a just-approved change is seen within seconds.

mod cache;
mod client;
mod config;
mod health;
mod hosts;
mod record;
mod verdict;

use std::sync::Arc;
use std::time::{Instant, SystemTime};

pub use config::{
    ChangeSystemConfig, ChangeSystemConfigError, ChangeSystemKind, DEFAULT_CACHE_TTL_SECS,
    DEFAULT_NEGATIVE_CACHE_TTL_SECS, DEFAULT_TIMEOUT_SECS, StateSpec,
};
pub use health::ChangeSystemHealth;
pub use hosts::{host_name, target_host_names};
pub use verdict::ChangeVerdict;

use self::cache::LookupCache;
use self::client::TableClient;
use self::config::{ChangeSystemSettings, Credentials};
use super::pattern::{PatternRule, describe};
use crate::config::UpstreamTrust;
use crate::metrics::ChangeSystemMetrics;

/// Longest ticket id ever sent to the change system.
const MAX_ID_CHARS: usize = 64;

/// A configured change system: client, cache, metrics and health, shared by all requests.
#[derive(Debug)]
pub struct ChangeSystem {
    settings: ChangeSystemSettings,
    client: TableClient,
    pattern: Option<PatternRule>,
    cache: LookupCache,
    metrics: ChangeSystemMetrics,
    health: ChangeSystemHealth,
}

impl ChangeSystem {
    /// Checks `config`, reads its CA and secret files; ids must also match `pattern` (the
    /// `[ticket] pattern`, if any) to be looked up.
    pub fn new(
        config: &ChangeSystemConfig,
        pattern: Option<&str>,
    ) -> Result<Self, ChangeSystemConfigError> {
        let settings = config.settings()?;
        let credentials = Credentials::load(config)?;
        let trust = match &config.ca_file {
            Some(path) => UpstreamTrust::CaFile(path.clone()),
            None => UpstreamTrust::SystemRoots,
        };
        let tls =
            crate::tls::upstream_client_config(&trust).map_err(|err| ChangeSystemConfigError {
                key: "ticket.change_system.ca_file",
                message: err.to_string(),
            })?;
        let client = TableClient::new(&settings, tls, &credentials).map_err(|message| {
            ChangeSystemConfigError {
                key: "ticket.change_system.password_file",
                message,
            }
        })?;
        let pattern =
            pattern
                .map(PatternRule::new)
                .transpose()
                .map_err(|err| ChangeSystemConfigError {
                    key: "ticket.pattern",
                    message: err.to_string(),
                })?;
        Ok(Self {
            health: ChangeSystemHealth::new(settings.kind, &settings.base),
            settings,
            client,
            pattern,
            cache: LookupCache::default(),
            metrics: ChangeSystemMetrics::default(),
        })
    }

    /// The change system of a `[ticket]` section, if it configures one.
    pub fn from_ticket_config(
        config: &super::TicketConfig,
    ) -> Result<Option<Arc<Self>>, ChangeSystemConfigError> {
        config
            .change_system
            .as_ref()
            .map(|cs| Self::new(cs, config.pattern.as_deref()).map(Arc::new))
            .transpose()
    }

    /// Which change system this is (`"servicenow"`).
    pub fn source(&self) -> &'static str {
        self.settings.kind.as_str()
    }

    /// The metric handles (register them with `Metrics::register_change_system`).
    pub fn metrics(&self) -> &ChangeSystemMetrics {
        &self.metrics
    }

    /// The shared health record, for the admin `/healthz`.
    pub fn health(&self) -> ChangeSystemHealth {
        self.health.clone()
    }

    /// Asks (or remembers) whether change `id` authorises `action` on a target on `hosts`
    /// (host names, see [`target_host_names`]) at `now`. Never fails: any problem is a verdict
    /// that does not authorise, with the reason.
    pub async fn check(
        &self,
        id: &str,
        hosts: &[String],
        action: &str,
        now: SystemTime,
    ) -> ChangeVerdict {
        if let Err(reason) = self.query_safe(id) {
            return ChangeVerdict::refused(id, self.source(), reason);
        }
        let started = Instant::now();
        let (outcome, cached) = match self.cache.get(id, started) {
            Some(outcome) => {
                self.metrics.cache_hits.inc();
                (outcome, true)
            }
            None => (self.look_up(id, now).await, false),
        };
        let now_secs = i64::try_from(super::unix_secs(now)).unwrap_or(i64::MAX);
        let mut verdict = verdict::judge(&self.settings, id, &outcome, hosts, now_secs);
        verdict.cached = cached;
        tracing::debug!(
            ticket = id,
            action,
            hosts = ?hosts,
            cached,
            authorises = verdict.authorises(),
            reason = verdict.reason.as_deref().unwrap_or(""),
            "change system verdict"
        );
        verdict
    }

    /// [`ChangeSystem::check`] for a call on managed object `mo_type`/`mo_id`: the host names
    /// come from the `entities.json` of `set` (see [`target_host_names`]). This is what the
    /// ticket step calls after the pattern or signature check passed.
    pub async fn check_target(
        &self,
        id: &str,
        set: &crate::policy::PolicySet,
        (mo_type, mo_id): (&str, &str),
        action: &str,
        now: SystemTime,
    ) -> ChangeVerdict {
        let hosts = target_host_names(set, mo_type, mo_id);
        self.check(id, &hosts, action, now).await
    }

    async fn look_up(&self, id: &str, now: SystemTime) -> cache::Outcome {
        let started = Instant::now();
        let result = self.client.change(id).await;
        let elapsed = started.elapsed();
        let label = match &result {
            Ok(_) => "found",
            Err(err) => err.label(),
        };
        self.metrics.count_lookup(label, elapsed.as_secs_f64());
        match &result {
            Err(err) if !err.change_system_answered() => {
                let reason = err.reason(id);
                tracing::warn!(ticket = id, %reason, "change system look-up failed");
                self.health.failed(now, reason);
            }
            _ => self.health.answered(now),
        }
        let positive = matches!(&result, Ok(r) if self.settings.allowed_states.contains(&r.state));
        let ttl = if positive {
            self.settings.cache_ttl
        } else {
            self.settings.negative_cache_ttl
        };
        let outcome = Arc::new(result);
        self.cache.put(id, outcome.clone(), ttl, Instant::now());
        outcome
    }

    /// `Ok` when `id` may be put in a query: it matches the ticket pattern (if configured) and
    /// uses only letters, digits, `-`, `_` and `.`.
    fn query_safe(&self, id: &str) -> Result<(), String> {
        if let Some(pattern) = &self.pattern {
            pattern.check(id)?;
        }
        let safe = !id.is_empty()
            && id.chars().count() <= MAX_ID_CHARS
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if safe {
            Ok(())
        } else {
            Err(format!(
                "{} is not looked up in the change system: a ticket id there is 1 to \
                 {MAX_ID_CHARS} letters, digits, '-', '_' or '.'",
                describe(id)
            ))
        }
    }
}
