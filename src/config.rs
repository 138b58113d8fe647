//! TOML configuration, overridable by command-line flags, validated into typed settings.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::Uri;
use serde::Deserialize;

use crate::audit::{AuditConfig, OnFull, OutcomeWrite, SyslogConfig};
use crate::gate::classify::ClassifyLimits;
use crate::identity::IdentityTokenConfig;
use crate::state::{ApprovalSettings, StateConfig, StateLocation};
use crate::ticket::TicketConfig;
use crate::vsphere::long_poll::LongPollLimits;

/// Why a configuration could not be used; each names the key or file at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The config file is not valid TOML or has an unknown or mistyped key.
    #[error("config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message (names the key and line).
        message: String,
    },
    /// A key has a value that cannot work.
    #[error("config key `{key}`: {message}")]
    Invalid {
        /// The dotted key, e.g. `upstream.url`.
        key: &'static str,
        /// What is wrong and what would be right.
        message: String,
    },
}

/// The whole configuration file. Every key is optional; defaults are documented per key.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The client-facing HTTPS listener.
    pub server: ServerSection,
    /// The vCenter behind the gateway.
    pub upstream: UpstreamSection,
    /// The admin listener (health, readiness, metrics).
    pub admin: AdminSection,
    /// Size limits on what the gateway reads to classify a call.
    pub limits: LimitsSection,
    /// The Cedar policies.
    pub policy: PolicySection,
    /// Session-to-user resolution.
    pub identity: IdentitySection,
    /// Change tickets.
    pub ticket: TicketConfig,
    /// The audit log.
    pub audit: AuditSection,
    /// Where approvals and ticket claims are kept.
    pub state: StateSection,
    /// How approval requests behave.
    pub approval: ApprovalSection,
    /// Log output.
    pub log: LogSection,
}

/// `[state]`: where approval requests and ticket claims are kept.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StateSection {
    /// The embedded SQLite file. Default `vcguard-state.db` in the audit log's directory.
    pub path: Option<PathBuf>,
    /// `postgres://user[:password]@host:port/database`: share the state between replicas.
    /// Wins over `path`. Default: unset (embedded SQLite).
    pub url: Option<String>,
    /// Seconds to open a connection to the store. Default 5.
    pub connect_timeout_secs: u64,
    /// Connections to the store held at most. Default 8.
    pub max_connections: u32,
}

impl Default for StateSection {
    fn default() -> Self {
        Self {
            path: None,
            url: None,
            connect_timeout_secs: 5,
            max_connections: 8,
        }
    }
}

/// `[approval]`: the two-person rule for policies annotated `@approval("group")`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApprovalSection {
    /// Seconds after approval in which the same call passes. Default 900.
    pub window_secs: u64,
    /// How many calls one approval lets through. Default 1.
    pub uses: u32,
    /// Seconds a request may wait for a decision before it expires. Default 3600.
    pub pending_ttl_secs: u64,
    /// Seconds between sweeps that mark (and audit) expired requests. Default 30.
    pub expiry_check_secs: u64,
}

impl Default for ApprovalSection {
    fn default() -> Self {
        Self {
            window_secs: 900,
            uses: 1,
            pending_ttl_secs: 3600,
            expiry_check_secs: 30,
        }
    }
}

impl StateSection {
    /// The typed store settings; without `url` or `path`, SQLite beside `audit_file`.
    pub fn to_config(&self, audit_file: &Path) -> Result<StateConfig, ConfigError> {
        if self.connect_timeout_secs == 0 {
            return Err(invalid(
                "state.connect_timeout_secs",
                "must be at least 1 second",
            ));
        }
        if self.max_connections == 0 {
            return Err(invalid("state.max_connections", "must be at least 1"));
        }
        let location = match (&self.url, &self.path) {
            (Some(url), _) => {
                if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                    return Err(invalid(
                        "state.url",
                        format!(
                            "`{}` is not a postgres:// URL (for an embedded store set state.path instead)",
                            crate::state::redact_url(url)
                        ),
                    ));
                }
                StateLocation::Postgres(url.clone())
            }
            (None, Some(path)) => {
                if path.as_os_str().is_empty() {
                    return Err(invalid("state.path", "must not be empty"));
                }
                StateLocation::Sqlite(path.clone())
            }
            (None, None) => StateLocation::Sqlite(
                audit_file
                    .parent()
                    .map_or_else(PathBuf::new, Path::to_path_buf)
                    .join("vcguard-state.db"),
            ),
        };
        Ok(StateConfig {
            location,
            connect_timeout: Duration::from_secs(self.connect_timeout_secs),
            max_connections: self.max_connections,
        })
    }
}

impl ApprovalSection {
    /// The typed approval settings.
    pub fn to_settings(&self) -> Result<ApprovalSettings, ConfigError> {
        for (key, value) in [
            ("approval.window_secs", self.window_secs),
            ("approval.pending_ttl_secs", self.pending_ttl_secs),
            ("approval.expiry_check_secs", self.expiry_check_secs),
        ] {
            if value == 0 {
                return Err(invalid(key, "must be at least 1 second"));
            }
        }
        if self.uses == 0 {
            return Err(invalid("approval.uses", "must be at least 1"));
        }
        Ok(ApprovalSettings {
            window: Duration::from_secs(self.window_secs),
            uses: self.uses,
            pending_ttl: Duration::from_secs(self.pending_ttl_secs),
        })
    }
}

/// `[server]`: the client-facing listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSection {
    /// Address to listen on. Default `0.0.0.0:8443`.
    pub listen: String,
    /// PEM certificate chain presented to clients. Required.
    pub cert: Option<PathBuf>,
    /// PEM private key for `cert`. Required.
    pub key: Option<PathBuf>,
    /// Seconds a client may take to send request headers. Default 30.
    pub header_read_timeout_secs: u64,
    /// Seconds a client may take to finish the TLS handshake. Default 10.
    pub tls_handshake_timeout_secs: u64,
    /// Seconds a new connection may stay silent: until its first byte, and again from the end
    /// of the TLS handshake until the first byte of its first request. Default 5.
    pub first_byte_timeout_secs: u64,
    /// Most client connections open at once; more wait to be accepted. Default 10000.
    pub max_connections: usize,
    /// Seconds in-flight requests get to finish after SIGTERM / Ctrl-C. Default 30.
    pub shutdown_grace_secs: u64,
    /// Threads serving clients, each with its own socket (`SO_REUSEPORT`), runtime and vCenter
    /// connections; 0: one per CPU core. Default 0.
    pub workers: usize,
}

impl Default for ServerSection {
    fn default() -> Self {
        Self {
            listen: "0.0.0.0:8443".into(),
            cert: None,
            key: None,
            header_read_timeout_secs: 30,
            tls_handshake_timeout_secs: 10,
            first_byte_timeout_secs: 5,
            max_connections: 10_000,
            shutdown_grace_secs: 30,
            workers: 0,
        }
    }
}

/// `[upstream]`: the vCenter the gateway forwards to.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamSection {
    /// vCenter base URL, `https://vcenter.example.com` (or `http://` for tests and sidecars). Required.
    pub url: Option<String>,
    /// PEM file of CA certificates that sign vCenter's certificate. Default: the system's roots.
    pub ca_file: Option<PathBuf>,
    /// SHA-256 thumbprint of vCenter's certificate (`AA:BB:...`); pins it instead of a CA.
    pub thumbprint: Option<String>,
    /// Accept any certificate from vCenter. Default false. Never in production.
    pub insecure_skip_verify: bool,
    /// Seconds to connect to vCenter: TCP connect and TLS handshake together. Default 5.
    pub connect_timeout_secs: u64,
    /// Seconds to wait for vCenter's response headers to an ordinary call. Default 120.
    pub response_timeout_secs: u64,
    /// Seconds a long poll (`WaitForUpdatesEx` without `maxWaitSeconds`, `WaitForUpdates`) may
    /// wait for vCenter's answer; 0: no limit, as on vCenter itself. Default 0.
    pub long_poll_max_secs: u64,
    /// Seconds added to a `WaitForUpdatesEx`'s `maxWaitSeconds` for its response deadline. Default 30.
    pub long_poll_margin_secs: u64,
    /// Seconds an idle pooled connection to vCenter is kept (0: none is kept). Default 90.
    pub pool_idle_timeout_secs: u64,
    /// Idle pooled connections to vCenter kept at most (0: every call connects). Default 128.
    pub pool_max_idle: usize,
    /// Requests in flight to vCenter at once (each holds one connection); more wait. Default 128.
    pub max_connections: usize,
}

impl Default for UpstreamSection {
    fn default() -> Self {
        Self {
            url: None,
            ca_file: None,
            thumbprint: None,
            insecure_skip_verify: false,
            connect_timeout_secs: 5,
            response_timeout_secs: 120,
            long_poll_max_secs: 0,
            long_poll_margin_secs: 30,
            pool_idle_timeout_secs: 90,
            pool_max_idle: 128,
            max_connections: 128,
        }
    }
}

/// `[policy]`: where the Cedar policies live and how changes are picked up.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicySection {
    /// Directory with `schema.cedarschema`, `*.cedar` and optional `entities.json`. Default `policies`.
    pub dir: PathBuf,
    /// Seconds between checks of the directory for changes (0: only on SIGHUP). Default 2.
    pub reload_poll_secs: u64,
}

impl Default for PolicySection {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("policies"),
            reload_poll_secs: 2,
        }
    }
}

/// `[identity]`: how the gateway knows who is calling.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdentitySection {
    /// Seconds a learned session → user mapping is trusted before vCenter is asked again. Default 600.
    pub session_ttl_secs: u64,
    /// Seconds a token vCenter did not know is remembered as unknown. Default 30.
    pub unknown_session_ttl_secs: u64,
    /// Sessions remembered at most. Default 100000.
    pub max_sessions: usize,
    /// Signed identity tokens that add groups to the session's user (`[identity.token]`); off when absent.
    pub token: Option<IdentityTokenConfig>,
}

impl Default for IdentitySection {
    fn default() -> Self {
        Self {
            session_ttl_secs: 600,
            unknown_session_ttl_secs: 30,
            max_sessions: 100_000,
            token: None,
        }
    }
}

/// `[audit]`: the tamper-evident audit log.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditSection {
    /// The active log file; rotated files sit beside it. Default `vcguard-audit.jsonl`.
    pub file: PathBuf,
    /// File holding the HMAC key (at least 16 bytes) for session and ticket hashes. Default: a random
    /// key per start (hashes then correlate within one run only).
    pub hmac_key_file: Option<PathBuf>,
    /// Rotate the active file when it would grow past this size. Default 268435456 (256 MiB).
    pub rotate_bytes: u64,
    /// Name of rotated files: `{stem}` and `{seq}` (first record's sequence number). Default `{stem}-{seq}.jsonl`.
    pub rotated_name: String,
    /// Write a checkpoint record after this many records. Default 1000.
    pub checkpoint_every_records: u64,
    /// Write a checkpoint record after this many idle seconds. Default 60.
    pub checkpoint_secs: u64,
    /// Records queued for the group-commit writer; when full, requests wait. Default 1024.
    pub queue_capacity: usize,
    /// Milliseconds an outcome record may stay written but not fsynced; 0 fsyncs every batch. Default 1000.
    pub sync_interval_ms: u64,
    /// Also rotate the active file once its first record is this many seconds old; 0: by size only. Default 0.
    pub rotate_every_secs: u64,
    /// Keep at most this many rotated files (the oldest are removed at rotation); 0: no limit. Default 0.
    pub keep_files: u32,
    /// Remove rotated files last written more than this many days ago (at rotation); 0: no limit. Default 0.
    pub keep_days: u32,
    /// What is refused with a 503 while the log cannot be written: `refuse_guarded` (default) or `refuse_all`.
    pub on_full: OnFull,
    /// When a pass-through call's outcome record reaches the OS: `before_answer` (default; a crash of
    /// the gateway cannot lose it) or `batched` (with the next batch, while the answer goes out).
    pub outcome_write: OutcomeWrite,
    /// Forward every record to a syslog collector too (RFC 5424 over TCP or TLS).
    pub syslog: Option<SyslogSection>,
}

impl Default for AuditSection {
    fn default() -> Self {
        Self {
            file: PathBuf::from("vcguard-audit.jsonl"),
            hmac_key_file: None,
            rotate_bytes: crate::audit::DEFAULT_ROTATE_BYTES,
            rotated_name: crate::audit::DEFAULT_ROTATED_NAME.into(),
            checkpoint_every_records: crate::audit::DEFAULT_CHECKPOINT_EVERY_RECORDS,
            checkpoint_secs: crate::audit::DEFAULT_CHECKPOINT_EVERY.as_secs(),
            queue_capacity: crate::audit::DEFAULT_QUEUE_CAPACITY,
            sync_interval_ms: crate::audit::DEFAULT_SYNC_EVERY.as_millis() as u64,
            rotate_every_secs: 0,
            keep_files: 0,
            keep_days: 0,
            on_full: OnFull::default(),
            outcome_write: OutcomeWrite::default(),
            syslog: None,
        }
    }
}

/// `[audit.syslog]`: a central log collector; the local file stays the source of truth.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogSection {
    /// `host:port` of the collector (TCP, octet-counted frames).
    pub address: String,
    /// PEM CA file: connect with TLS and verify the collector against it.
    pub tls_ca: Option<PathBuf>,
    /// RFC 5424 APP-NAME. Default `vcguard`.
    #[serde(default = "default_app_name")]
    pub app_name: String,
}

fn default_app_name() -> String {
    "vcguard".into()
}

impl AuditSection {
    /// The writer's configuration, with the HMAC key read from its file (or generated).
    pub fn to_config(&self, instance: &str) -> Result<AuditConfig, ConfigError> {
        let key = match &self.hmac_key_file {
            Some(path) => {
                let key = std::fs::read(path).map_err(|err| {
                    invalid(
                        "audit.hmac_key_file",
                        format!("cannot read {}: {err}", path.display()),
                    )
                })?;
                if key.len() < crate::audit::MIN_HMAC_KEY_BYTES {
                    return Err(invalid(
                        "audit.hmac_key_file",
                        format!(
                            "{} holds {} bytes; the key needs at least {}",
                            path.display(),
                            key.len(),
                            crate::audit::MIN_HMAC_KEY_BYTES
                        ),
                    ));
                }
                key
            }
            None => {
                tracing::warn!(
                    "audit.hmac_key_file is not set: session and ticket hashes use a random key and correlate within this run only"
                );
                let mut key = uuid::Uuid::new_v4().as_bytes().to_vec();
                key.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
                key
            }
        };
        let mut config = AuditConfig::new(&self.file, key, instance);
        config.rotate_bytes = self.rotate_bytes;
        config.rotated_name = self.rotated_name.clone();
        config.checkpoint_every_records = self.checkpoint_every_records;
        config.checkpoint_every = Duration::from_secs(self.checkpoint_secs.max(1));
        config.queue_capacity = self.queue_capacity.max(1);
        config.sync_every = Duration::from_millis(self.sync_interval_ms);
        config.rotate_every =
            (self.rotate_every_secs > 0).then(|| Duration::from_secs(self.rotate_every_secs));
        config.keep_files = self.keep_files;
        config.keep_days = self.keep_days;
        config.on_full = self.on_full;
        config.outcome_write = self.outcome_write;
        config.syslog = self.syslog.as_ref().map(|s| {
            let mut syslog = SyslogConfig::new(&s.address);
            syslog.tls_ca = s.tls_ca.clone();
            syslog.app_name = s.app_name.clone();
            syslog
        });
        config
            .validate()
            .map_err(|err| invalid("audit", err.to_string()))?;
        Ok(config)
    }
}

/// `[limits]`: how much of a request the gateway reads to classify it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsSection {
    /// Largest body of a guarded call, read whole and parsed; larger ones get 413. Default 1048576.
    pub guarded_body_max_bytes: usize,
    /// Most bytes of a SOAP body read to find its method and `_this`. Default 65536.
    pub soap_head_max_bytes: usize,
}

impl Default for LimitsSection {
    fn default() -> Self {
        Self {
            guarded_body_max_bytes: 1024 * 1024,
            soap_head_max_bytes: 64 * 1024,
        }
    }
}

/// `[admin]`: health, readiness and metrics over plain HTTP.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminSection {
    /// Address of the admin listener. Default `127.0.0.1:9090`; keep it off public networks.
    pub listen: String,
}

impl Default for AdminSection {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:9090".into(),
        }
    }
}

/// `[log]`: log output.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSection {
    /// `text` (default) or `json`.
    pub format: LogFormat,
    /// One `request finished` line per request (target `vcguard::access`); default off,
    /// the audit log already holds an outcome record for every call.
    pub access: bool,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Values given as command-line flags; each one set wins over the file.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--listen`.
    pub listen: Option<String>,
    /// `--cert`.
    pub cert: Option<PathBuf>,
    /// `--key`.
    pub key: Option<PathBuf>,
    /// `--upstream`.
    pub upstream: Option<String>,
    /// `--upstream-ca`.
    pub upstream_ca: Option<PathBuf>,
    /// `--upstream-thumbprint`.
    pub upstream_thumbprint: Option<String>,
    /// `--upstream-insecure`.
    pub upstream_insecure: bool,
    /// `--admin-listen`.
    pub admin_listen: Option<String>,
    /// `--policies`.
    pub policies: Option<PathBuf>,
    /// `--audit`.
    pub audit: Option<PathBuf>,
    /// `--access-log`.
    pub access_log: bool,
}

/// How the gateway trusts vCenter's certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamTrust {
    /// Plain HTTP upstream: no TLS at all.
    PlainHttp,
    /// The operating system's root certificates.
    SystemRoots,
    /// CA certificates from a PEM file.
    CaFile(PathBuf),
    /// Exactly this SHA-256 certificate fingerprint (32 bytes).
    Thumbprint([u8; 32]),
    /// Any certificate (logged loudly at start).
    InsecureSkipVerify,
}

/// A configuration that passed validation: typed, complete, ready to run.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Client-facing listen address.
    pub listen: SocketAddr,
    /// Certificate chain file for clients.
    pub cert: PathBuf,
    /// Private key file for clients.
    pub key: PathBuf,
    /// Header read timeout.
    pub header_read_timeout: Duration,
    /// TLS handshake timeout.
    pub tls_handshake_timeout: Duration,
    /// Silence allowed before a new connection's first byte (and its first request's).
    pub first_byte_timeout: Duration,
    /// Connection cap.
    pub max_connections: usize,
    /// Graceful shutdown bound.
    pub shutdown_grace: Duration,
    /// Threads serving clients (at least 1).
    pub workers: usize,
    /// vCenter base URL (scheme and authority only).
    pub upstream: Uri,
    /// How vCenter's certificate is trusted.
    pub upstream_trust: UpstreamTrust,
    /// Connect timeout to vCenter.
    pub connect_timeout: Duration,
    /// Response-header timeout from vCenter.
    pub response_timeout: Duration,
    /// Bounds on long polls.
    pub long_poll: LongPollLimits,
    /// Idle pooled connection lifetime.
    pub pool_idle_timeout: Duration,
    /// Idle pooled connections kept at most.
    pub pool_max_idle: usize,
    /// Requests in flight to vCenter at once.
    pub max_upstream_connections: usize,
    /// Admin listen address.
    pub admin_listen: SocketAddr,
    /// Classification size limits.
    pub classify: ClassifyLimits,
    /// Policy directory.
    pub policy_dir: PathBuf,
    /// Policy directory poll interval (`None`: SIGHUP only).
    pub policy_poll: Option<Duration>,
    /// Session cache settings.
    pub identity: IdentitySection,
    /// Change-ticket verification.
    pub ticket: TicketConfig,
    /// The audit log writer's settings (key loaded).
    pub audit: AuditConfig,
    /// Where approvals and claims are kept.
    pub state: StateConfig,
    /// How approvals behave.
    pub approval: ApprovalSettings,
    /// How often expired approval requests are marked.
    pub approval_expiry_check: Duration,
    /// Log format.
    pub log_format: LogFormat,
}

impl Config {
    /// Reads and parses `path`; unknown keys are errors.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses TOML text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &Path) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|err| ConfigError::Parse {
            path: origin.to_owned(),
            message: err.to_string().trim_end().to_owned(),
        })
    }

    /// Applies command-line flags over the file's values.
    pub fn apply(&mut self, flags: Overrides) {
        let Overrides {
            listen,
            cert,
            key,
            upstream,
            upstream_ca,
            upstream_thumbprint,
            upstream_insecure,
            admin_listen,
            policies,
            audit,
            access_log,
        } = flags;
        if access_log {
            self.log.access = true;
        }
        if let Some(v) = listen {
            self.server.listen = v;
        }
        if cert.is_some() {
            self.server.cert = cert;
        }
        if key.is_some() {
            self.server.key = key;
        }
        if upstream.is_some() {
            self.upstream.url = upstream;
        }
        if upstream_ca.is_some() {
            self.upstream.ca_file = upstream_ca;
        }
        if upstream_thumbprint.is_some() {
            self.upstream.thumbprint = upstream_thumbprint;
        }
        if upstream_insecure {
            self.upstream.insecure_skip_verify = true;
        }
        if let Some(v) = admin_listen {
            self.admin.listen = v;
        }
        if let Some(v) = policies {
            self.policy.dir = v;
        }
        if let Some(v) = audit {
            self.audit.file = v;
        }
    }

    /// Checks every value and returns the typed settings, or the first problem found.
    pub fn validate(&self) -> Result<Settings, ConfigError> {
        let server = &self.server;
        let upstream_cfg = &self.upstream;
        let listen = parse_addr("server.listen", &server.listen)?;
        let admin_listen = parse_addr("admin.listen", &self.admin.listen)?;
        let cert = existing_file("server.cert", server.cert.as_deref())?;
        let key = existing_file("server.key", server.key.as_deref())?;
        if server.max_connections == 0 {
            return Err(invalid("server.max_connections", "must be at least 1"));
        }
        for (key, value) in [
            (
                "server.header_read_timeout_secs",
                server.header_read_timeout_secs,
            ),
            (
                "server.tls_handshake_timeout_secs",
                server.tls_handshake_timeout_secs,
            ),
            (
                "server.first_byte_timeout_secs",
                server.first_byte_timeout_secs,
            ),
            (
                "upstream.connect_timeout_secs",
                upstream_cfg.connect_timeout_secs,
            ),
            (
                "upstream.response_timeout_secs",
                upstream_cfg.response_timeout_secs,
            ),
        ] {
            if value == 0 {
                return Err(invalid(key, "must be at least 1 second"));
            }
        }
        let limits = &self.limits;
        if limits.guarded_body_max_bytes < 1024 {
            return Err(invalid(
                "limits.guarded_body_max_bytes",
                "must be at least 1024",
            ));
        }
        if limits.soap_head_max_bytes < 1024 {
            return Err(invalid(
                "limits.soap_head_max_bytes",
                "must be at least 1024",
            ));
        }
        if upstream_cfg.long_poll_max_secs != 0
            && upstream_cfg.long_poll_max_secs < upstream_cfg.response_timeout_secs
        {
            return Err(invalid(
                "upstream.long_poll_max_secs",
                format!(
                    "is {} but must be 0 (no limit) or at least upstream.response_timeout_secs ({})",
                    upstream_cfg.long_poll_max_secs, upstream_cfg.response_timeout_secs
                ),
            ));
        }
        let upstream = parse_upstream_url(upstream_cfg.url.as_deref())?;
        let upstream_trust = upstream_trust(&upstream, upstream_cfg)?;
        if let Some(change_system) = &self.ticket.change_system {
            change_system
                .validate()
                .map_err(|err| invalid(err.key, err.message))?;
        }
        Ok(Settings {
            listen,
            cert,
            key,
            header_read_timeout: Duration::from_secs(server.header_read_timeout_secs),
            tls_handshake_timeout: Duration::from_secs(server.tls_handshake_timeout_secs),
            first_byte_timeout: Duration::from_secs(server.first_byte_timeout_secs),
            max_connections: server.max_connections,
            shutdown_grace: Duration::from_secs(server.shutdown_grace_secs),
            workers: match server.workers {
                0 => std::thread::available_parallelism().map_or(1, usize::from),
                n => n,
            },
            upstream,
            upstream_trust,
            connect_timeout: Duration::from_secs(upstream_cfg.connect_timeout_secs),
            response_timeout: Duration::from_secs(upstream_cfg.response_timeout_secs),
            long_poll: LongPollLimits {
                max: (upstream_cfg.long_poll_max_secs > 0)
                    .then(|| Duration::from_secs(upstream_cfg.long_poll_max_secs)),
                margin: Duration::from_secs(upstream_cfg.long_poll_margin_secs),
            },
            pool_idle_timeout: Duration::from_secs(upstream_cfg.pool_idle_timeout_secs),
            pool_max_idle: upstream_cfg.pool_max_idle,
            max_upstream_connections: upstream_cfg.max_connections.max(1),
            admin_listen,
            classify: ClassifyLimits {
                guarded_body_max: limits.guarded_body_max_bytes,
                soap_head_max: limits.soap_head_max_bytes,
            },
            policy_dir: self.policy.dir.clone(),
            policy_poll: (self.policy.reload_poll_secs > 0)
                .then(|| Duration::from_secs(self.policy.reload_poll_secs)),
            identity: self.identity.clone(),
            ticket: self.ticket.clone(),
            audit: self.audit.to_config(&instance_id())?,
            state: self.state.to_config(&self.audit.file)?,
            approval: self.approval.to_settings()?,
            approval_expiry_check: Duration::from_secs(self.approval.expiry_check_secs),
            log_format: self.log.format,
        })
    }
}

/// This gateway process's id in audit records: host name and a random suffix.
fn instance_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default();
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    format!(
        "{}-{}",
        if host.is_empty() { "vcguard" } else { &host },
        &suffix[..8]
    )
}

fn invalid(key: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        message: message.into(),
    }
}

fn parse_addr(key: &'static str, value: &str) -> Result<SocketAddr, ConfigError> {
    value.parse().map_err(|_| {
        let port_hint = match value.rsplit_once(':') {
            Some((_, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => {
                format!(" (the port must be 0 to {})", u16::MAX)
            }
            _ => String::new(),
        };
        invalid(
            key,
            format!("`{value}` is not an address like 127.0.0.1:8443{port_hint}"),
        )
    })
}

fn existing_file(key: &'static str, path: Option<&Path>) -> Result<PathBuf, ConfigError> {
    let path = path.ok_or_else(|| invalid(key, "is required (a PEM file)"))?;
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() => Ok(path.to_owned()),
        Ok(_) => Err(invalid(key, format!("{} is not a file", path.display()))),
        Err(err) => Err(invalid(
            key,
            format!("cannot read {}: {err}", path.display()),
        )),
    }
}

fn parse_upstream_url(url: Option<&str>) -> Result<Uri, ConfigError> {
    const KEY: &str = "upstream.url";
    let url = url.ok_or_else(|| invalid(KEY, "is required, e.g. https://vcenter.example.com"))?;
    let uri: Uri = url
        .parse()
        .map_err(|err| invalid(KEY, format!("`{url}` is not a URL: {err}")))?;
    match uri.scheme_str() {
        Some("https" | "http") => {}
        _ => {
            return Err(invalid(
                KEY,
                format!("`{url}` must start with https:// or http://"),
            ));
        }
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(invalid(KEY, format!("`{url}` has no host")));
    }
    check_url_port(KEY, url, &uri)?;
    if uri.path_and_query().is_some_and(|pq| pq.as_str() != "/") {
        return Err(invalid(
            KEY,
            format!("`{url}` must be a base URL without a path or query"),
        ));
    }
    Ok(uri)
}

/// Refuses a URL whose explicit port is not 1–65535 (`http::Uri` keeps any digits).
fn check_url_port(key: &'static str, url: &str, uri: &Uri) -> Result<(), ConfigError> {
    let Some(authority) = uri.authority() else {
        return Ok(());
    };
    let text = authority.as_str();
    let after_host = match text.rfind(']') {
        Some(end) => &text[end + 1..],
        None => text.rfind(':').map_or("", |i| &text[i..]),
    };
    let Some(port) = after_host.strip_prefix(':') else {
        return Ok(());
    };
    match port.parse::<u16>() {
        Ok(1..) => Ok(()),
        _ => Err(invalid(
            key,
            format!(
                "`{url}` has port `{port}`; a port must be 1 to {}",
                u16::MAX
            ),
        )),
    }
}

fn upstream_trust(uri: &Uri, cfg: &UpstreamSection) -> Result<UpstreamTrust, ConfigError> {
    let chosen = [
        cfg.ca_file.is_some(),
        cfg.thumbprint.is_some(),
        cfg.insecure_skip_verify,
    ]
    .iter()
    .filter(|set| **set)
    .count();
    if chosen > 1 {
        return Err(invalid(
            "upstream.ca_file",
            "set at most one of upstream.ca_file, upstream.thumbprint and upstream.insecure_skip_verify",
        ));
    }
    if uri.scheme_str() == Some("http") {
        if chosen > 0 {
            return Err(invalid(
                "upstream.url",
                "is plain http://, so upstream TLS settings cannot apply; use https:// or remove them",
            ));
        }
        return Ok(UpstreamTrust::PlainHttp);
    }
    if let Some(path) = &cfg.ca_file {
        return existing_file("upstream.ca_file", Some(path)).map(UpstreamTrust::CaFile);
    }
    if let Some(text) = &cfg.thumbprint {
        return parse_thumbprint(text)
            .map(UpstreamTrust::Thumbprint)
            .ok_or_else(|| {
                invalid(
                    "upstream.thumbprint",
                    "must be a SHA-256 fingerprint: 32 hex bytes, e.g. AA:BB:...:FF (SHA-1 thumbprints are not accepted)",
                )
            });
    }
    if cfg.insecure_skip_verify {
        return Ok(UpstreamTrust::InsecureSkipVerify);
    }
    Ok(UpstreamTrust::SystemRoots)
}

/// Parses `AA:BB:...` (colons optional, any case) into 32 bytes.
pub fn parse_thumbprint(text: &str) -> Option<[u8; 32]> {
    let hex: String = text.chars().filter(|c| *c != ':').collect();
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("test.toml"))
    }

    #[test]
    fn unknown_key_names_the_key() {
        let err = config("[upstream]\nurll = \"https://vc\"\n").expect_err("unknown key");
        let text = err.to_string();
        assert!(text.contains("test.toml"), "{text}");
        assert!(text.contains("urll"), "{text}");
    }

    #[test]
    fn malformed_url_is_named() {
        let mut cfg = Config::default();
        cfg.server.cert = Some("Cargo.toml".into());
        cfg.server.key = Some("Cargo.toml".into());
        cfg.upstream.url = Some("ftp://vc".into());
        let err = cfg.validate().expect_err("bad scheme");
        assert!(
            err.to_string().starts_with("config key `upstream.url`"),
            "{err}"
        );
        cfg.upstream.url = Some("https://vc/sdk".into());
        assert!(cfg.validate().is_err());
    }

    #[test]
    fn url_ports_outside_the_range_are_named() {
        let mut cfg = Config::default();
        cfg.server.cert = Some("Cargo.toml".into());
        cfg.server.key = Some("Cargo.toml".into());
        cfg.upstream.insecure_skip_verify = true;
        for url in [
            "https://127.0.0.1:99999",
            "https://vc:0",
            "https://vc:",
            "https://[::1]:65536",
        ] {
            cfg.upstream.url = Some(url.into());
            let err = cfg.validate().expect_err(url).to_string();
            assert!(
                err.starts_with("config key `upstream.url`") && err.contains("port"),
                "{url}: {err}"
            );
        }
        for url in ["https://127.0.0.1:65535", "https://[::1]:443", "https://vc"] {
            cfg.upstream.url = Some(url.into());
            assert!(cfg.validate().is_ok(), "{url} refused");
        }
    }

    #[test]
    fn listen_ports_outside_the_range_are_named() {
        let mut cfg = Config::default();
        cfg.server.cert = Some("Cargo.toml".into());
        cfg.server.key = Some("Cargo.toml".into());
        cfg.upstream.url = Some("https://vc".into());
        cfg.server.listen = "127.0.0.1:70000".into();
        let err = cfg.validate().expect_err("port too large").to_string();
        assert!(
            err.contains("server.listen") && err.contains("port"),
            "{err}"
        );
        cfg.server.listen = "127.0.0.1:8443".into();
        cfg.admin.listen = "[::1]:123456".into();
        let err = cfg.validate().expect_err("port too large").to_string();
        assert!(
            err.contains("admin.listen") && err.contains("port"),
            "{err}"
        );
    }

    #[test]
    fn long_poll_limit_below_the_response_timeout_is_named() {
        let mut cfg = Config::default();
        cfg.server.cert = Some("Cargo.toml".into());
        cfg.server.key = Some("Cargo.toml".into());
        cfg.upstream.url = Some("https://vc".into());
        cfg.upstream.long_poll_max_secs = 60;
        let err = cfg.validate().expect_err("below 120").to_string();
        assert!(err.contains("upstream.long_poll_max_secs"), "{err}");
        cfg.upstream.long_poll_max_secs = 0;
        let settings = cfg.validate().expect("no limit");
        assert_eq!(settings.long_poll.max, None);
        assert_eq!(settings.long_poll.margin, Duration::from_secs(30));
        cfg.upstream.long_poll_max_secs = 14_400;
        let settings = cfg.validate().expect("four hours");
        assert_eq!(settings.long_poll.max, Some(Duration::from_secs(14_400)));
    }

    #[test]
    fn missing_certificate_is_named() {
        let mut cfg = Config::default();
        cfg.upstream.url = Some("https://vc".into());
        cfg.server.cert = Some("/nonexistent/cert.pem".into());
        let err = cfg.validate().expect_err("missing cert");
        let text = err.to_string();
        assert!(
            text.contains("server.cert") && text.contains("/nonexistent/cert.pem"),
            "{text}"
        );
    }

    #[test]
    fn outcome_write_defaults_to_before_answer_and_names_a_wrong_value() {
        let cfg = config("[audit]\n").expect("parses");
        assert_eq!(cfg.audit.outcome_write, OutcomeWrite::BeforeAnswer);
        let cfg = config("[audit]\noutcome_write = \"batched\"\n").expect("parses");
        assert_eq!(cfg.audit.outcome_write, OutcomeWrite::Batched);
        let text = config("[audit]\noutcome_write = \"later\"\n")
            .expect_err("unknown value")
            .to_string();
        assert!(
            text.contains("outcome_write") && text.contains("before_answer"),
            "{text}"
        );
    }

    #[test]
    fn identity_token_section_parses_with_defaults() {
        let cfg = config(
            "[identity.token]\nissuer = \"https://sso\"\naudience = \"vcguard\"\nkeys = [{ pem_file = \"k.pem\" }]\n",
        )
        .expect("parses");
        let token = cfg.identity.token.expect("token section");
        assert_eq!(token.header, "X-Identity-Token");
        assert_eq!(token.user_claim, "sub");
        assert_eq!(token.groups_claim, "groups");
        assert_eq!(token.leeway_secs, 30);
        let err =
            config("[identity.token]\nissuer = \"x\"\n").expect_err("audience and keys missing");
        assert!(err.to_string().contains("audience"), "{err}");
    }

    #[test]
    fn example_config_parses_with_every_key() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("vcguard.example.toml");
        let cfg = Config::load(&path).expect("the shipped example parses");
        assert_eq!(cfg.server.listen, "0.0.0.0:8443");
        assert_eq!(
            cfg.upstream.url.as_deref(),
            Some("https://vcenter.example.com")
        );
    }

    #[test]
    fn state_and_approval_sections_are_checked() {
        let cfg = config("[audit]\nfile = \"/var/log/vcguard/audit.jsonl\"\n").expect("parses");
        let state = cfg.state.to_config(&cfg.audit.file).expect("default state");
        assert_eq!(
            state.location,
            StateLocation::Sqlite(PathBuf::from("/var/log/vcguard/vcguard-state.db"))
        );
        let cfg =
            config("[state]\npath = \"/x/s.db\"\nurl = \"postgres://u:pw@db:5432/vcguard\"\n")
                .expect("parses");
        let state = cfg.state.to_config(&cfg.audit.file).expect("url wins");
        assert_eq!(
            state.location,
            StateLocation::Postgres("postgres://u:pw@db:5432/vcguard".into())
        );
        let cfg = config("[state]\nurl = \"mysql://u:pw@db/x\"\n").expect("parses");
        let err = cfg
            .state
            .to_config(&cfg.audit.file)
            .expect_err("not postgres");
        assert!(err.to_string().contains("state.url"), "{err}");
        assert!(
            !err.to_string().contains("pw"),
            "no password in errors: {err}"
        );
        let cfg = config("[approval]\nuses = 0\n").expect("parses");
        let err = cfg.approval.to_settings().expect_err("uses 0");
        assert!(err.to_string().contains("approval.uses"), "{err}");
        let settings = config("")
            .expect("parses")
            .approval
            .to_settings()
            .expect("defaults");
        assert_eq!(settings.window, Duration::from_secs(900));
        assert_eq!(settings.uses, 1);
        assert_eq!(settings.pending_ttl, Duration::from_secs(3600));
        assert!(config("[approval]\nwindow = 5\n").is_err(), "unknown key");
    }

    #[test]
    fn flags_win_over_file() {
        let mut cfg = config("[server]\nlisten = \"127.0.0.1:1\"\n").expect("parses");
        cfg.apply(Overrides {
            listen: Some("127.0.0.1:2".into()),
            upstream_insecure: true,
            ..Overrides::default()
        });
        assert_eq!(cfg.server.listen, "127.0.0.1:2");
        assert!(cfg.upstream.insecure_skip_verify);
    }

    #[test]
    fn thumbprint_forms() {
        let colon = "AB:".repeat(31) + "AB";
        assert_eq!(parse_thumbprint(&colon), Some([0xAB; 32]));
        assert_eq!(parse_thumbprint(&"ab".repeat(32)), Some([0xAB; 32]));
        assert_eq!(parse_thumbprint(&"AB:".repeat(20)), None);
        assert_eq!(parse_thumbprint(&"zz".repeat(32)), None);
    }

    #[test]
    fn trust_choices_are_exclusive() {
        let mut cfg = Config::default();
        cfg.server.cert = Some("Cargo.toml".into());
        cfg.server.key = Some("Cargo.toml".into());
        cfg.upstream.url = Some("https://vc".into());
        cfg.upstream.insecure_skip_verify = true;
        cfg.upstream.thumbprint = Some("AB".repeat(32));
        assert!(cfg.validate().is_err());
        cfg.upstream.thumbprint = None;
        assert_eq!(
            cfg.validate().expect("valid").upstream_trust,
            UpstreamTrust::InsecureSkipVerify
        );
    }
}
