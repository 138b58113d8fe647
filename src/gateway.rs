//! The running gateway: the client-facing listener and the admin listener, bound and served.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::admin::{AdminService, Readiness};
use crate::approval::ChangeControl;
use crate::audit::{AuditConfig, AuditError, AuditLog, AuditTask};
use crate::config::{IdentitySection, Settings, UpstreamTrust};
use crate::console::Console;
use crate::gate::approve::Approve;
use crate::gate::audit::{Audit, WriteAhead};
use crate::gate::classify::{Classify, ClassifyLimits};
use crate::gate::decide::Decide;
use crate::gate::forward::{Forward, UpstreamOptions};
use crate::gate::identify::Identify;
use crate::gate::look_up::LookUp;
use crate::gate::own_api::OwnApi;
use crate::gate::rescue::RescueLayer;
use crate::gate::ticket::Ticket;
use crate::gate::{GatewayService, Steps, stack};
use crate::identity::{
    IdentityTokenConfig, IdentityTokenError, IdentityTokenVerifier, SessionCache,
};
use crate::metrics::Metrics;
use crate::per_core::{MakeService, Workers, bind_shared, serve_per_core};
use crate::policy::{LoadErrors, PolicySet, PolicyStore};
use crate::reload::PolicyReloader;
use crate::server::{ConnectionLimits, ListenerMetrics, serve};
use crate::state::{ApprovalSettings, StateConfig};
use crate::ticket::change_system::ChangeSystemHealth;
use crate::ticket::{ChangeSystem, TicketConfig, TicketConfigError, TicketVerifier};
use crate::tls::{self, TlsError};
use http::HeaderName;

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A certificate or key could not be loaded.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The policy directory did not load.
    #[error("policies in {dir} are invalid:\n{errors}")]
    Policies {
        /// The directory.
        dir: PathBuf,
        /// Every problem, located.
        errors: LoadErrors,
    },
    /// The audit log could not be opened.
    #[error("audit log: {0}")]
    Audit(#[from] AuditError),
    /// The `[ticket]` settings are unusable.
    #[error("config section [ticket]: {0}")]
    Ticket(TicketConfigError),
    /// The `[identity.token]` settings are unusable.
    #[error("config section [identity.token]: {0}")]
    IdentityToken(#[from] IdentityTokenError),
    /// A listen address could not be bound.
    #[error("cannot listen on {addr} ({what}): {source}")]
    Bind {
        /// Which listener.
        what: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Everything needed to bind a gateway, whether from a config file or built in memory (demo, tests).
pub struct GatewayParts {
    /// Client-facing address.
    pub listen: SocketAddr,
    /// Threads serving clients, each with its own runtime, socket and vCenter connections
    /// (`[server] workers`); 1 serves on the runtime that runs the gateway.
    pub workers: usize,
    /// Admin address.
    pub admin_listen: SocketAddr,
    /// Client-facing TLS.
    pub server_tls: Arc<rustls::ServerConfig>,
    /// How to reach vCenter.
    pub upstream: UpstreamOptions,
    /// Connection limits.
    pub limits: ConnectionLimits,
    /// Classification size limits.
    pub classify: ClassifyLimits,
    /// The policy set in force, reloadable.
    pub policies: Arc<PolicyStore>,
    /// How often to look for policy changes (`None`: SIGHUP only).
    pub policy_poll: Option<Duration>,
    /// Session cache settings.
    pub identity: IdentitySection,
    /// Verifier of identity tokens (`[identity.token]`), if configured.
    pub identity_token: Option<Arc<IdentityTokenVerifier>>,
    /// Change-ticket verification and the header tickets travel in.
    pub tickets: TicketSettings,
    /// The audit log.
    pub audit: AuditConfig,
    /// The state store of approvals and ticket claims, and the approval settings.
    pub state: StateSettings,
}

/// Where approvals and claims are kept and how approvals behave.
#[derive(Debug, Clone)]
pub struct StateSettings {
    /// The store.
    pub config: StateConfig,
    /// Approval window, uses and pending TTL.
    pub approval: ApprovalSettings,
    /// How often expired approval requests are marked (and audited).
    pub expiry_check: Duration,
}

impl StateSettings {
    /// An embedded SQLite store at `path` with the default approval settings.
    pub fn sqlite(path: impl Into<PathBuf>) -> Self {
        Self {
            config: StateConfig::sqlite(path),
            approval: ApprovalSettings::default(),
            expiry_check: Duration::from_secs(30),
        }
    }
}

/// A ready ticket verifier and its header.
#[derive(Clone)]
pub struct TicketSettings {
    /// The verifier (pattern and/or signed).
    pub verifier: Arc<TicketVerifier>,
    /// The header carrying tickets.
    pub header: HeaderName,
    /// The change system tickets are checked in (`[ticket.change_system]`), if configured.
    pub change_system: Option<Arc<ChangeSystem>>,
}

impl TicketSettings {
    /// Compiles the pattern and loads the keys of `config`.
    pub fn from_config(config: &TicketConfig) -> Result<Self, StartError> {
        let verifier = TicketVerifier::new(config).map_err(StartError::Ticket)?;
        let header = HeaderName::from_bytes(config.header.as_bytes()).map_err(|_| {
            StartError::Ticket(TicketConfigError::InvalidHeader(config.header.clone()))
        })?;
        for key in verifier.key_info() {
            tracing::info!(key = ?key, "ticket signing key loaded");
        }
        let change_system = ChangeSystem::from_ticket_config(config)
            .map_err(|err| StartError::Ticket(TicketConfigError::ChangeSystem(err)))?;
        if let Some(change_system) = &change_system {
            tracing::info!(
                change_system = %change_system.health().detail(),
                "change tickets are checked in the change system"
            );
        }
        Ok(Self {
            verifier: Arc::new(verifier),
            header,
            change_system,
        })
    }
}

impl GatewayParts {
    /// Loads certificates and trust material named by validated `settings`.
    pub fn from_settings(settings: &Settings) -> Result<Self, StartError> {
        if settings.upstream_trust == UpstreamTrust::InsecureSkipVerify {
            tracing::warn!(
                upstream = %settings.upstream,
                "upstream.insecure_skip_verify is set: vCenter's certificate is NOT checked; anyone on the path can impersonate vCenter"
            );
        }
        Ok(Self {
            listen: settings.listen,
            workers: settings.workers,
            admin_listen: settings.admin_listen,
            server_tls: tls::server_config(&settings.cert, &settings.key)?,
            upstream: UpstreamOptions {
                base: settings.upstream.clone(),
                tls: tls::upstream_client_config(&settings.upstream_trust)?,
                connect_timeout: settings.connect_timeout,
                response_timeout: settings.response_timeout,
                pool_idle_timeout: settings.pool_idle_timeout,
                pool_max_idle: settings.pool_max_idle,
                max_connections: settings.max_upstream_connections,
                long_poll: settings.long_poll,
            },
            limits: ConnectionLimits {
                header_read_timeout: settings.header_read_timeout,
                tls_handshake_timeout: settings.tls_handshake_timeout,
                first_byte_timeout: settings.first_byte_timeout,
                max_connections: settings.max_connections,
                shutdown_grace: settings.shutdown_grace,
                ..ConnectionLimits::default()
            },
            classify: settings.classify,
            policies: Arc::new(load_policies(&settings.policy_dir)?),
            policy_poll: settings.policy_poll,
            identity: settings.identity.clone(),
            identity_token: identity_token_verifier(settings.identity.token.as_ref())?,
            tickets: TicketSettings::from_config(&settings.ticket)?,
            audit: settings.audit.clone(),
            state: StateSettings {
                config: settings.state.clone(),
                approval: settings.approval,
                expiry_check: settings.approval_expiry_check,
            },
        })
    }
}

/// Loads the keys of `[identity.token]`, if configured.
pub fn identity_token_verifier(
    config: Option<&IdentityTokenConfig>,
) -> Result<Option<Arc<IdentityTokenVerifier>>, StartError> {
    let Some(config) = config else {
        return Ok(None);
    };
    let verifier = IdentityTokenVerifier::new(config)?;
    for key in verifier.key_info() {
        tracing::info!(key = ?key, header = %verifier.header(), "identity token key loaded");
    }
    Ok(Some(Arc::new(verifier)))
}

/// Loads and validates a policy directory into a reloadable store.
pub fn load_policies(dir: &Path) -> Result<PolicyStore, StartError> {
    let set = PolicySet::load(dir).map_err(|errors| StartError::Policies {
        dir: dir.to_owned(),
        errors,
    })?;
    tracing::info!(dir = %dir.display(), hash = %set.hash(), policies = ?set.policy_ids(), "policies loaded");
    Ok(PolicyStore::new(set, dir.to_owned()))
}

/// A gateway whose listeners are bound; [`Gateway::run`] serves them.
pub struct Gateway {
    listeners: ClientListeners,
    admin_listener: TcpListener,
    server_tls: Arc<rustls::ServerConfig>,
    make_service: MakeService,
    metrics: Arc<Metrics>,
    limits: ConnectionLimits,
    policies: Arc<PolicyStore>,
    reloader: PolicyReloader,
    policy_poll: Option<Duration>,
    audit: AuditLog,
    audit_task: AuditTask,
    addrs: (SocketAddr, SocketAddr),
    change_system_health: Option<ChangeSystemHealth>,
    change_control: ChangeControl,
    expiry_check: Duration,
}

impl Gateway {
    /// Binds both listeners and builds the request stack.
    pub async fn bind(parts: GatewayParts) -> Result<Self, StartError> {
        let audit_file = parts.audit.path.clone();
        let (audit, audit_task) = AuditLog::open(parts.audit).await?;
        let change_control = ChangeControl::new(
            parts.state.config.clone(),
            parts.state.approval,
            audit.clone(),
        );
        // A store that is down does not stop the gateway: pass-through traffic flows, calls
        // that need the store fail closed, and `/readyz` says why.
        match change_control.store().await {
            Ok(store) => tracing::info!(store = %store.target(), "state store open"),
            Err(err) => {
                tracing::warn!(error = %err, "state store unavailable at start; calls that need it are refused until it answers")
            }
        }
        let listeners = ClientListeners::bind(parts.listen, parts.workers).await?;
        let admin_listener = bind("admin", parts.admin_listen).await?;
        let addrs = (
            listeners.local_addr(parts.listen)?,
            bound_addr("admin", &admin_listener, parts.admin_listen)?,
        );

        let mut metrics = Metrics::new();
        if let Some(change_system) = &parts.tickets.change_system {
            metrics.register_change_system(change_system.metrics());
        }
        let metrics = Arc::new(metrics);
        let change_system_health = parts
            .tickets
            .change_system
            .as_ref()
            .map(|change_system| change_system.health());
        let forward = Forward::new(parts.upstream, metrics.clone());
        let identity = &parts.identity;
        let sessions = Arc::new(SessionCache::new(
            Duration::from_secs(identity.session_ttl_secs),
            Duration::from_secs(identity.unknown_session_ttl_secs),
            identity.max_sessions,
        ));
        let console = Console::new(
            change_control.clone(),
            forward.clone(),
            sessions.clone(),
            parts.tickets.clone(),
            audit_file,
        );
        let steps = StepsFactory {
            rescue: RescueLayer::new(parts.policies.clone(), metrics.clone()),
            audit: Audit::new(audit.clone()),
            classify: Classify::new(parts.classify),
            sessions,
            identity_token: parts.identity_token,
            own_api: OwnApi::new(console),
            ticket: Ticket::new(
                parts.tickets.verifier,
                parts.tickets.header.clone(),
                parts.tickets.change_system.clone(),
            )
            .with_claims(change_control.clone()),
            approve: Approve::new(change_control.clone()),
            write_ahead: WriteAhead::new(audit.clone()),
            forward,
            ticket_header: parts.tickets.header.clone(),
        };
        let make_service: MakeService = Arc::new(move || steps.stack());
        Ok(Self {
            listeners,
            admin_listener,
            server_tls: parts.server_tls,
            make_service,
            reloader: PolicyReloader::new(parts.policies.clone(), metrics.clone(), audit.clone()),
            metrics,
            limits: parts.limits,
            policies: parts.policies,
            policy_poll: parts.policy_poll,
            audit,
            audit_task,
            addrs,
            change_system_health,
            change_control,
            expiry_check: parts.state.expiry_check,
        })
    }

    /// The client-facing address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addrs.0
    }

    /// The admin address actually bound.
    pub fn admin_addr(&self) -> SocketAddr {
        self.addrs.1
    }

    /// The change-control handle (approvals and claims) this gateway decides with.
    pub fn change_control(&self) -> ChangeControl {
        self.change_control.clone()
    }

    /// Serves until `shutdown` completes, then drains in-flight requests (bounded by the
    /// grace period). Returns false if requests were still running when the grace period ended.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> bool {
        let readiness = Readiness::default();
        // SIGUSR1 reopens the audit log (logrotate); installed before serving so that the
        // signal never ends the process.
        self.audit
            .count_drops_in(self.metrics.audit_dropped.clone());
        let reopen = match crate::audit::reopen_on_sigusr1(self.audit.clone()) {
            Ok(task) => Some(tokio::spawn(task)),
            Err(err) => {
                tracing::warn!(error = %err, "cannot install the SIGUSR1 handler; the audit log is still reopened when its file is moved");
                None
            }
        };
        let (stop_admin, admin_stopped) = watch::channel(());
        let admin = tokio::spawn(serve(
            self.admin_listener,
            None,
            AdminService::new(
                self.metrics.clone(),
                readiness.clone(),
                self.policies.clone(),
            )
            .with_audit(self.audit.clone())
            .with_change_system(self.change_system_health.clone())
            .with_state(self.change_control.clone()),
            ConnectionLimits::default(),
            Some(ListenerMetrics::new(
                None,
                self.metrics.accept_exhausted("admin"),
            )),
            async move {
                let mut admin_stopped = admin_stopped;
                let _ = admin_stopped.changed().await;
            },
        ));
        let reloader = tokio::spawn(self.reloader.run(self.policy_poll));
        let expiry = self.change_control.spawn_expiry(self.expiry_check);
        let client_metrics = ListenerMetrics::new(
            Some(self.metrics.open_connections.clone()),
            self.metrics.accept_exhausted("gateway"),
        );
        let shutdown = async {
            shutdown.await;
            readiness.set_draining();
            tracing::info!("no longer accepting connections; draining in-flight requests");
        };
        let drained = match self.listeners {
            ClientListeners::Single(listener) => {
                serve(
                    listener,
                    Some(self.server_tls),
                    (self.make_service)(),
                    self.limits,
                    Some(client_metrics),
                    shutdown,
                )
                .await
            }
            ClientListeners::PerCore(listeners) => {
                let workers = Workers {
                    tls: self.server_tls,
                    make_service: self.make_service,
                    limits: self.limits,
                    metrics: client_metrics,
                };
                serve_per_core(listeners, workers, shutdown).await
            }
        };
        if !drained {
            tracing::warn!("grace period over with requests still in flight");
        }
        reloader.abort();
        expiry.abort();
        if let Some(reopen) = reopen {
            reopen.abort();
        }
        let _ = stop_admin.send(());
        let _ = admin.await;
        self.audit.close().await;
        if let Err(err) = self.audit_task.wait().await {
            tracing::error!(error = %err, "audit writer ended with an error");
        }
        drained
    }
}

/// The client-facing listening sockets: one served on the gateway's runtime, or one per worker
/// thread sharing the address (`SO_REUSEPORT`).
enum ClientListeners {
    Single(TcpListener),
    PerCore(Vec<std::net::TcpListener>),
}

impl ClientListeners {
    async fn bind(addr: SocketAddr, workers: usize) -> Result<Self, StartError> {
        if workers <= 1 {
            return Ok(Self::Single(bind("gateway", addr).await?));
        }
        bind_shared(addr, workers)
            .map(Self::PerCore)
            .map_err(|source| StartError::Bind {
                what: "gateway",
                addr,
                source,
            })
    }

    fn local_addr(&self, addr: SocketAddr) -> Result<SocketAddr, StartError> {
        let bound = match self {
            Self::Single(listener) => listener.local_addr(),
            Self::PerCore(listeners) => listeners
                .first()
                .map_or_else(|| Ok(addr), std::net::TcpListener::local_addr),
        };
        bound.map_err(|source| StartError::Bind {
            what: "gateway",
            addr,
            source,
        })
    }
}

/// The parts of the request stack; each worker gets its own copy with its own vCenter
/// connection pool (the in-flight limit, caches and logs stay shared).
struct StepsFactory {
    rescue: RescueLayer,
    audit: Audit,
    classify: Classify,
    sessions: Arc<SessionCache>,
    identity_token: Option<Arc<IdentityTokenVerifier>>,
    own_api: OwnApi,
    ticket: Ticket,
    approve: Approve,
    write_ahead: WriteAhead,
    forward: Forward,
    ticket_header: HeaderName,
}

impl StepsFactory {
    fn stack(&self) -> GatewayService {
        let forward = self.forward.with_own_pool();
        stack(
            Steps {
                rescue: self.rescue.clone(),
                audit: self.audit.clone(),
                classify: self.classify.clone(),
                look_up: LookUp::new(forward.clone()),
                identify: Identify::new(
                    self.sessions.clone(),
                    forward.clone(),
                    self.identity_token.clone(),
                ),
                own_api: self.own_api.clone(),
                ticket: self.ticket.clone(),
                decide: Decide,
                approve: self.approve.clone(),
                write_ahead: self.write_ahead.clone(),
                forward,
            },
            &self.ticket_header,
        )
    }
}

fn bound_addr(
    what: &'static str,
    listener: &TcpListener,
    addr: SocketAddr,
) -> Result<SocketAddr, StartError> {
    listener
        .local_addr()
        .map_err(|source| StartError::Bind { what, addr, source })
}

async fn bind(what: &'static str, addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { what, addr, source })
}
