//! Idle detection for one client connection: it is busy while a request is being answered
//! (until its response body has been sent) and idle otherwise. A connection idle for the
//! header-read timeout is closed; this bounds HTTP/2 connections, which hyper keeps open
//! as long as the client answers pings, the way `header_read_timeout` bounds HTTP/1.1 ones.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

/// Requests in progress on one connection.
#[derive(Debug, Clone, Default)]
pub(crate) struct Activity(Arc<Inner>);

#[derive(Debug, Default)]
struct Inner {
    busy: AtomicUsize,
    changed: Notify,
}

/// One request in progress; dropping it ends the request.
#[derive(Debug)]
pub(crate) struct Busy(Arc<Inner>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::AcqRel);
        self.0.changed.notify_waiters();
    }
}

impl Activity {
    /// Marks one request as in progress until the returned guard is dropped.
    pub(crate) fn begin(&self) -> Busy {
        self.0.busy.fetch_add(1, Ordering::AcqRel);
        self.0.changed.notify_waiters();
        Busy(self.0.clone())
    }

    /// Completes once no request has been in progress for `limit` without a break.
    pub(crate) async fn idle_for(&self, limit: Duration) {
        loop {
            let changed = self.0.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.0.busy.load(Ordering::Acquire) == 0 {
                tokio::select! {
                    () = tokio::time::sleep(limit) => return,
                    () = &mut changed => {}
                }
            } else {
                changed.await;
            }
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
}
