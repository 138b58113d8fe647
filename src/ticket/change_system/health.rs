//! How the change system has been answering lately, for the admin `/healthz`.

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use super::config::ChangeSystemKind;

#[derive(Debug, Default)]
struct HealthState {
    last_answer: Option<SystemTime>,
    last_failure: Option<(SystemTime, String)>,
    failures_in_a_row: u64,
}

/// Shared record of the latest look-ups (cheap to clone).
#[derive(Debug, Clone)]
pub struct ChangeSystemHealth {
    kind: ChangeSystemKind,
    base: Arc<str>,
    state: Arc<Mutex<HealthState>>,
}

impl ChangeSystemHealth {
    pub(crate) fn new(kind: ChangeSystemKind, base: &str) -> Self {
        Self {
            kind,
            base: base.into(),
            state: Arc::default(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, HealthState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The change system answered (whatever it said about the change).
    pub(crate) fn answered(&self, at: SystemTime) {
        let mut state = self.state();
        state.last_answer = Some(at);
        state.failures_in_a_row = 0;
    }

    /// A look-up failed with `reason`.
    pub(crate) fn failed(&self, at: SystemTime, reason: String) {
        let mut state = self.state();
        state.last_failure = Some((at, reason));
        state.failures_in_a_row += 1;
    }

    /// `Some(false)` while the latest look-up failed, `None` before any look-up.
    pub fn reachable(&self) -> Option<bool> {
        let state = self.state();
        if state.failures_in_a_row > 0 {
            Some(false)
        } else {
            state.last_answer.map(|_| true)
        }
    }

    /// One line for `/healthz`, e.g. `change_system servicenow https://…: failing (3 look-ups in
    /// a row) since …: change system unreachable: …`.
    pub fn detail(&self) -> String {
        let state = self.state();
        let head = format!("change_system {} {}", self.kind.as_str(), self.base);
        let when = |t: SystemTime| crate::ticket::rfc3339(crate::ticket::unix_secs(t));
        match (
            &state.last_failure,
            state.failures_in_a_row,
            state.last_answer,
        ) {
            (Some((at, reason)), n, _) if n > 0 => format!(
                "{head}: failing ({n} look-up{} in a row), last at {}: {reason}",
                if n == 1 { "" } else { "s" },
                when(*at)
            ),
            (_, _, Some(at)) => format!("{head}: ok, last answer at {}", when(at)),
            _ => format!("{head}: no look-up yet"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn detail_follows_the_latest_look_ups() {
        let health =
            ChangeSystemHealth::new(ChangeSystemKind::Servicenow, "https://sn.example.test");
        assert_eq!(health.reachable(), None);
        assert_eq!(
            health.detail(),
            "change_system servicenow https://sn.example.test: no look-up yet"
        );
        let t = UNIX_EPOCH + Duration::from_secs(1_796_090_400);
        health.answered(t);
        assert_eq!(health.reachable(), Some(true));
        assert_eq!(
            health.detail(),
            "change_system servicenow https://sn.example.test: ok, last answer at 2026-12-01T02:00:00Z"
        );
        health.failed(t, "change system unreachable: no answer within 5 s".into());
        health.failed(t, "change system unreachable: no answer within 5 s".into());
        assert_eq!(health.reachable(), Some(false));
        assert_eq!(
            health.detail(),
            "change_system servicenow https://sn.example.test: failing (2 look-ups in a row), last at \
             2026-12-01T02:00:00Z: change system unreachable: no answer within 5 s"
        );
        health.answered(t);
        assert_eq!(health.reachable(), Some(true));
    }
}
