//! The open-file limit (`RLIMIT_NOFILE`): raised from the soft to the hard limit at start-up
//! (as nginx's `worker_rlimit_nofile` does), and checked against what the configuration may
//! keep open at once, so the connection cap is reached before the file-descriptor limit.

/// File descriptors kept free for everything that is not a connection: listeners, the audit
/// log and its directory, syslog, policy reloads, identity and ticket key files, the runtime.
pub const HEADROOM: u64 = 64;

/// What the configuration may hold open at once, by config key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdDemand {
    /// `server.max_connections`: client connections.
    pub client_connections: u64,
    /// `upstream.max_connections`: connections to vCenter busy with a request.
    pub upstream_in_flight: u64,
    /// `upstream.pool_max_idle`: idle pooled connections to vCenter.
    pub upstream_idle: u64,
}

impl FdDemand {
    /// Every descriptor the gateway may need, headroom included.
    pub fn total(&self) -> u64 {
        self.fixed().saturating_add(self.client_connections)
    }

    /// Everything except client connections.
    fn fixed(&self) -> u64 {
        self.upstream_in_flight
            .saturating_add(self.upstream_idle)
            .saturating_add(HEADROOM)
    }
}

/// The limit found at start-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdLimit {
    /// The soft limit in force (after raising).
    pub soft: u64,
    /// The hard limit (the most the soft limit can be raised to without privileges).
    pub hard: u64,
    /// The soft limit before it was raised.
    pub was: u64,
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit and returns both; `None` where the
/// platform has no such limit or it cannot be read.
pub fn raise_to_hard_limit() -> Option<FdLimit> {
    let resource = rlimit::Resource::NOFILE;
    if !resource.is_supported() {
        return None;
    }
    let (was, hard) = match resource.get() {
        Ok(limits) => limits,
        Err(err) => {
            tracing::warn!(error = %err, "cannot read RLIMIT_NOFILE");
            return None;
        }
    };
    let soft = match rlimit::increase_nofile_limit(hard) {
        Ok(soft) => soft,
        Err(err) => {
            tracing::warn!(error = %err, soft = was, hard, "cannot raise RLIMIT_NOFILE");
            was
        }
    };
    Some(FdLimit { soft, hard, was })
}

/// Raises the limit, logs it, and checks `demand` against it: a warning when client
/// connections may run into it, an error (naming the keys) when nothing fits.
pub fn prepare(demand: FdDemand) -> Result<(), String> {
    let Some(limit) = raise_to_hard_limit() else {
        return Ok(());
    };
    if limit.soft != limit.was {
        tracing::info!(
            from = limit.was,
            to = limit.soft,
            "raised the open-file limit to its hard limit"
        );
    }
    match check(demand, limit.soft) {
        FdVerdict::Fits => Ok(()),
        FdVerdict::Tight(message) => {
            tracing::warn!("{message}");
            Ok(())
        }
        FdVerdict::TooLow(message) => Err(message),
    }
}

/// How the demand compares with the limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FdVerdict {
    /// Everything fits.
    Fits,
    /// Client connections beyond what fits would get `accept` failures (served again as
    /// descriptors free up): a warning naming the keys.
    Tight(String),
    /// Not even one client connection fits next to vCenter's connections and the headroom:
    /// start-up is refused with a message naming the keys.
    TooLow(String),
}

/// Compares `demand` with the soft limit `soft`.
pub fn check(demand: FdDemand, soft: u64) -> FdVerdict {
    let total = demand.total();
    if total <= soft {
        return FdVerdict::Fits;
    }
    let breakdown = format!(
        "server.max_connections ({}) + upstream.max_connections ({}) + upstream.pool_max_idle ({}) + {HEADROOM} for listeners, audit and key files = {total} file descriptors, but the open-file limit (RLIMIT_NOFILE) is {soft}",
        demand.client_connections, demand.upstream_in_flight, demand.upstream_idle,
    );
    let room = soft.saturating_sub(demand.fixed());
    if room == 0 {
        FdVerdict::TooLow(format!(
            "{breakdown}: no client connection fits; raise the limit (ulimit -n, LimitNOFILE= in systemd) or lower upstream.max_connections and upstream.pool_max_idle"
        ))
    } else {
        FdVerdict::Tight(format!(
            "{breakdown}: raise the limit (ulimit -n, LimitNOFILE= in systemd) or set server.max_connections to at most {room}; until then clients beyond that wait while accepting pauses"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demand(clients: u64) -> FdDemand {
        FdDemand {
            client_connections: clients,
            upstream_in_flight: 128,
            upstream_idle: 128,
        }
    }

    #[test]
    fn fits_under_a_large_limit() {
        assert_eq!(check(demand(10_000), 1 << 20), FdVerdict::Fits);
    }

    #[test]
    fn too_many_clients_is_a_warning_naming_the_keys_and_the_room() {
        let FdVerdict::Tight(message) = check(demand(10_000), 1024) else {
            panic!("expected a warning");
        };
        for needle in [
            "server.max_connections (10000)",
            "upstream.max_connections (128)",
            "upstream.pool_max_idle (128)",
            "is 1024",
            "at most 704",
        ] {
            assert!(message.contains(needle), "{needle} missing: {message}");
        }
    }

    #[test]
    fn no_room_for_any_client_refuses() {
        let FdVerdict::TooLow(message) = check(demand(10), 200) else {
            panic!("expected a refusal");
        };
        assert!(message.contains("upstream.max_connections"), "{message}");
    }

    #[test]
    fn raising_never_lowers_the_limit() {
        if let Some(limit) = raise_to_hard_limit() {
            assert!(limit.soft >= limit.was, "{limit:?}");
            assert!(limit.soft <= limit.hard, "{limit:?}");
        }
    }
}
