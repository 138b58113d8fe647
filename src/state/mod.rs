//! The state store for approvals and ticket claims: an embedded SQLite file by default,
//! PostgreSQL when several gateway replicas share it (`[state] url`). Migrations (in
//! `migrations/`, embedded at build time) are applied when the store opens. Every write that
//! must not happen twice (deciding a request, using an approval, expiring) is one conditional
//! `UPDATE` whose affected-row count says whether this caller won.

mod approvals;
mod claims;
mod model;

#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::sync::Once;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, ConnectOptions as _};

pub use model::{
    Approval, ApprovalFilter, ApprovalKey, ApprovalSettings, ApprovalState, Claim, Decider,
    NewApproval, NewClaim, Verdict, format_rfc3339, same_user,
};

/// Where the state lives (`[state]`, validated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateLocation {
    /// An embedded SQLite file (created if missing).
    Sqlite(PathBuf),
    /// A PostgreSQL database, `postgres://user@host:port/db`.
    Postgres(String),
}

/// The validated `[state]` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateConfig {
    /// Where the state lives.
    pub location: StateLocation,
    /// How long opening a connection may take.
    pub connect_timeout: Duration,
    /// Most connections held open at once.
    pub max_connections: u32,
}

impl StateConfig {
    /// An embedded SQLite file at `path`, default timeouts.
    pub fn sqlite(path: impl Into<PathBuf>) -> Self {
        Self {
            location: StateLocation::Sqlite(path.into()),
            connect_timeout: Duration::from_secs(5),
            max_connections: 8,
        }
    }

    /// The PostgreSQL database at `url`, default timeouts.
    pub fn postgres(url: impl Into<String>) -> Self {
        Self {
            location: StateLocation::Postgres(url.into()),
            connect_timeout: Duration::from_secs(5),
            max_connections: 8,
        }
    }

    /// The store's location for messages, without any password.
    pub fn describe(&self) -> String {
        match &self.location {
            StateLocation::Sqlite(path) => format!("SQLite file {}", path.display()),
            StateLocation::Postgres(url) => format!("PostgreSQL {}", redact_url(url)),
        }
    }
}

/// `url` with any password replaced by `***`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return url.to_owned();
    };
    let user = userinfo.split(':').next().unwrap_or("");
    if userinfo.contains(':') {
        format!("{scheme}://{user}:***@{host}{tail}")
    } else {
        url.to_owned()
    }
}

/// Why the state store could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The store could not be reached or opened.
    #[error("cannot open the state store ({target}): {source}")]
    Connect {
        /// The store, without secrets.
        target: String,
        /// The driver's error.
        source: sqlx::Error,
    },
    /// The schema migrations failed.
    #[error("cannot migrate the state store ({target}): {source}")]
    Migrate {
        /// The store, without secrets.
        target: String,
        /// The migrator's error.
        source: sqlx::migrate::MigrateError,
    },
    /// A query failed.
    #[error("state store: {what}: {source}")]
    Query {
        /// What was being done.
        what: &'static str,
        /// The driver's error.
        source: sqlx::Error,
    },
    /// The store could not be opened a moment ago; not tried again yet.
    #[error("the state store ({target}) is unavailable: {reason}")]
    Unavailable {
        /// The store, without secrets.
        target: String,
        /// The last failure.
        reason: String,
    },
    /// A stored row cannot be read back.
    #[error("state store: a stored {what} is unreadable: {detail}")]
    Corrupt {
        /// Which kind of row.
        what: &'static str,
        /// What is wrong with it.
        detail: String,
    },
}

impl StateError {
    pub(crate) fn query(what: &'static str) -> impl FnOnce(sqlx::Error) -> StateError {
        move |source| StateError::Query { what, source }
    }
}

/// Why an approver's verdict was refused.
#[derive(Debug, thiserror::Error)]
pub enum ApprovalError {
    /// No request has this id.
    #[error("no approval request {id}")]
    NotFound {
        /// The id asked for.
        id: String,
    },
    /// The requester cannot decide their own request (two-person rule).
    #[error(
        "{user} made approval request {id} and cannot decide it: another member of {group} must"
    )]
    SelfApproval {
        /// The request.
        id: String,
        /// The requester.
        user: String,
        /// The approver group.
        group: String,
    },
    /// The decider is not a member of the approver group.
    #[error("{user} is not a member of {group}, whose approval request {id} needs")]
    NotMember {
        /// The request.
        id: String,
        /// The decider.
        user: String,
        /// The approver group.
        group: String,
    },
    /// The request expired before it was decided.
    #[error(
        "approval request {id} expired before it was decided; make the call again for a new request"
    )]
    Expired {
        /// The request.
        id: String,
    },
    /// The request was already decided.
    #[error("approval request {id} is already {state}")]
    AlreadyDecided {
        /// The request.
        id: String,
        /// What it is now.
        state: ApprovalState,
    },
    /// The request was approved and used up.
    #[error("approval request {id} was approved and has been used")]
    Used {
        /// The request.
        id: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StateError),
}

/// Why a claim could not be released.
#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    /// No claim has this id.
    #[error("no ticket claim {id}")]
    NotFound {
        /// The id asked for.
        id: String,
    },
    /// The claim belongs to another user.
    #[error("ticket claim {id} belongs to another user")]
    NotYours {
        /// The claim.
        id: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StateError),
}

/// A handle on the state store; cheap to clone (a connection pool).
#[derive(Clone)]
pub struct StateStore {
    pool: AnyPool,
    target: String,
    settings: ApprovalSettings,
}

impl std::fmt::Debug for StateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateStore")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

impl StateStore {
    /// Opens (creating an SQLite file if missing) and migrates the store.
    pub async fn open(config: &StateConfig) -> Result<StateStore, StateError> {
        static DRIVERS: Once = Once::new();
        DRIVERS.call_once(sqlx::any::install_default_drivers);
        let target = config.describe();
        let connect = |source| StateError::Connect {
            target: target.clone(),
            source,
        };
        let options: AnyConnectOptions = match &config.location {
            StateLocation::Sqlite(path) => {
                let sqlite = sqlx::sqlite::SqliteConnectOptions::new()
                    .filename(path)
                    .create_if_missing(true);
                AnyConnectOptions::from_url(&sqlite.to_url_lossy()).map_err(connect)?
            }
            StateLocation::Postgres(url) => url.parse::<AnyConnectOptions>().map_err(connect)?,
        };
        let options = options.disable_statement_logging();
        let pool = AnyPoolOptions::new()
            .max_connections(config.max_connections.max(1))
            .acquire_timeout(config.connect_timeout)
            .connect_with(options)
            .await
            .map_err(connect)?;
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|source| StateError::Migrate {
                target: target.clone(),
                source,
            })?;
        Ok(StateStore {
            pool,
            target,
            settings: ApprovalSettings::default(),
        })
    }

    /// The same store, deciding approvals with `settings` (window, uses, pending TTL).
    pub fn with_approval_settings(mut self, settings: ApprovalSettings) -> Self {
        self.settings = settings;
        self
    }

    /// The approval settings in force.
    pub fn approval_settings(&self) -> ApprovalSettings {
        self.settings
    }

    /// The store's location, without secrets.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Checks that the store answers (for `/readyz`).
    pub async fn check(&self) -> Result<(), StateError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(StateError::query("check"))
    }

    /// Closes the pool (tests; the gateway just drops it).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

#[doc(hidden)]
pub mod testing;
