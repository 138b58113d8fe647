//! Idle detection for one client connection: it is busy while a request is being answered
//! (until its response body has been sent) and idle otherwise. A connection idle for the
//! header-read timeout is closed; this bounds HTTP/2 connections, which hyper keeps open
//! as long as the client answers pings, the way `header_read_timeout` bounds HTTP/1.1 ones.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// Requests in progress on one connection, and when the last one ended.
#[derive(Debug, Clone, Default)]
pub(crate) struct Activity(Arc<Inner>);

// Requests only count and stamp: the idle check looks at both when its timer fires, so a call
// costs no wake-up of the connection's task and no timer of its own.
#[derive(Debug)]
struct Inner {
    busy: AtomicUsize,
    /// When the last request ended (or the connection opened), in nanoseconds after `opened`.
    idle_since: AtomicU64,
    opened: Instant,
}

impl Default for Inner {
    fn default() -> Self {
        Inner {
            busy: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
            opened: Instant::now(),
        }
    }
}

impl Inner {
    fn since_opened(&self) -> u64 {
        u64::try_from(self.opened.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

/// One request in progress; dropping it ends the request.
#[derive(Debug)]
pub(crate) struct Busy(Arc<Inner>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0
            .idle_since
            .store(self.0.since_opened(), Ordering::Relaxed);
        self.0.busy.fetch_sub(1, Ordering::Release);
    }
}

impl Activity {
    /// Marks one request as in progress until the returned guard is dropped.
    pub(crate) fn begin(&self) -> Busy {
        self.0.busy.fetch_add(1, Ordering::Relaxed);
        Busy(self.0.clone())
    }

    /// Completes once no request has been in progress for `limit` without a break. Checks when
    /// its one timer fires: at the earliest moment the connection can have been idle that long.
    pub(crate) async fn idle_for(&self, limit: Duration) {
        let timer = tokio::time::sleep(limit);
        tokio::pin!(timer);
        loop {
            timer.as_mut().await;
            let now = Instant::now();
            let due = if self.0.busy.load(Ordering::Acquire) > 0 {
                now + limit
            } else {
                let since = Duration::from_nanos(self.0.idle_since.load(Ordering::Relaxed));
                self.0.opened + since + limit
            };
            if due <= now {
                return;
            }
            timer.as_mut().reset(due);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: Duration = Duration::from_millis(200);

    #[tokio::test]
    async fn idle_completes_and_busy_holds_it_off() {
        let activity = Activity::default();
        tokio::time::timeout(LIMIT * 10, activity.idle_for(LIMIT))
            .await
            .expect("an unused connection becomes idle");
        let busy = activity.begin();
        assert!(
            tokio::time::timeout(LIMIT * 3, activity.idle_for(LIMIT))
                .await
                .is_err(),
            "a connection with a request in progress is not idle"
        );
        drop(busy);
        tokio::time::timeout(LIMIT * 10, activity.idle_for(LIMIT))
            .await
            .expect("idle again once the request ended");
    }

    #[tokio::test]
    async fn idle_time_counts_from_the_end_of_the_last_request() {
        let activity = Activity::default();
        let busy = activity.begin();
        let waiting = tokio::spawn({
            let activity = activity.clone();
            async move { activity.idle_for(LIMIT).await }
        });
        // The check's timer fires at 1, 2 and 3 limits; the request ends at 2.5.
        tokio::time::sleep(LIMIT * 5 / 2).await;
        drop(busy);
        tokio::time::sleep(LIMIT * 3 / 4).await;
        assert!(
            !waiting.is_finished(),
            "idle for three quarters of the limit only"
        );
        tokio::time::timeout(LIMIT * 10, waiting)
            .await
            .expect("idle once the limit has passed since the request ended")
            .expect("the idle check does not panic");
    }
}
