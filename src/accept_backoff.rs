//! What an accept loop does when `accept()` fails: per-connection errors are skipped; running
//! out of file descriptors (or memory) pauses accepting with a growing pause, logs once per
//! episode and counts the episode, while connections already open keep being served.

use std::io;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;

/// First pause after a resource failure; doubled on each further failure.
const FIRST_PAUSE: Duration = Duration::from_millis(10);
/// Longest pause between accept attempts while resources are exhausted.
const MAX_PAUSE: Duration = Duration::from_millis(500);
/// An episode ends once accepting has worked for this long without a failure.
const QUIET: Duration = Duration::from_secs(2);

/// Accept-failure state of one listener; clones (the accept loops of several workers on the
/// same address) share one episode, so an exhaustion of the process is logged and counted once.
#[derive(Clone)]
pub(crate) struct AcceptBackoff {
    episode: Arc<Mutex<Option<Episode>>>,
    episodes: Option<Counter>,
}

struct Episode {
    started: Instant,
    last_failure: Instant,
    failures: u64,
    pause: Duration,
}

impl AcceptBackoff {
    /// A listener that counts exhaustion episodes into `episodes` (if given).
    pub(crate) fn new(episodes: Option<Counter>) -> Self {
        Self {
            episode: Arc::default(),
            episodes,
        }
    }

    fn episode(&self) -> MutexGuard<'_, Option<Episode>> {
        self.episode.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records a failed `accept()`; returns how long to wait before the next attempt.
    pub(crate) fn failed(&self, err: &io::Error) -> Duration {
        if is_per_connection(err) {
            tracing::debug!(error = %err, "a connection failed while being accepted");
            return Duration::ZERO;
        }
        let now = Instant::now();
        let mut current = self.episode();
        match &mut *current {
            Some(episode) if now.duration_since(episode.last_failure) < QUIET => {
                episode.last_failure = now;
                episode.failures += 1;
                episode.pause = (episode.pause * 2).min(MAX_PAUSE);
                episode.pause
            }
            _ => {
                tracing::warn!(
                    error = %err,
                    "accept failed: out of file descriptors or memory; new connections wait until some close, open connections are still served (logged once per episode)"
                );
                if let Some(episodes) = &self.episodes {
                    episodes.inc();
                }
                *current = Some(Episode {
                    started: now,
                    last_failure: now,
                    failures: 1,
                    pause: FIRST_PAUSE,
                });
                FIRST_PAUSE
            }
        }
    }

    /// Records a successful `accept()`; ends the episode once failures have stopped.
    pub(crate) fn accepted(&self) {
        let mut current = self.episode();
        let Some(episode) = &mut *current else {
            return;
        };
        episode.pause = FIRST_PAUSE;
        if episode.last_failure.elapsed() >= QUIET {
            tracing::info!(
                failed_attempts = episode.failures,
                lasted = ?episode.last_failure.duration_since(episode.started),
                "accepting connections again"
            );
            *current = None;
        }
    }

    /// Whether accepting is in an exhaustion episode now.
    #[cfg(test)]
    fn exhausted(&self) -> bool {
        self.episode().is_some()
    }
}

/// Errors that concern one pending connection only (it went away before being accepted).
fn is_per_connection(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn emfile() -> io::Error {
        io::Error::from_raw_os_error(24)
    }

    #[test]
    fn one_episode_per_burst_of_failures_with_growing_pauses() {
        let counter = Counter::default();
        let backoff = AcceptBackoff::new(Some(counter.clone()));
        let pauses: Vec<Duration> = (0..10).map(|_| backoff.failed(&emfile())).collect();
        assert_eq!(counter.get(), 1, "ten failures in a row are one episode");
        assert_eq!(pauses[0], FIRST_PAUSE);
        assert!(pauses.windows(2).all(|w| w[1] >= w[0]), "{pauses:?}");
        assert_eq!(*pauses.last().expect("pauses"), MAX_PAUSE);
        backoff.accepted();
        assert!(
            backoff.exhausted(),
            "a success right after failures keeps the episode"
        );
        assert_eq!(backoff.failed(&emfile()), FIRST_PAUSE * 2, "pause restarts");
        assert_eq!(counter.get(), 1);
    }

    #[test]
    fn clones_share_one_episode() {
        let counter = Counter::default();
        let first = AcceptBackoff::new(Some(counter.clone()));
        let second = first.clone();
        first.failed(&emfile());
        second.failed(&emfile());
        assert_eq!(counter.get(), 1, "two accept loops, one episode");
        assert!(second.exhausted());
    }

    #[test]
    fn a_connection_that_went_away_is_no_episode() {
        let counter = Counter::default();
        let backoff = AcceptBackoff::new(Some(counter.clone()));
        let aborted = io::Error::from(io::ErrorKind::ConnectionAborted);
        assert_eq!(backoff.failed(&aborted), Duration::ZERO);
        assert!(!backoff.exhausted());
        assert_eq!(counter.get(), 0);
    }
}
