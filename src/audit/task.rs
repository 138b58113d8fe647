//! The writer task: batches submitted records (group commit), writes them on its own thread
//! (`writer::spawn_writer_thread`), fsyncs on schedule, and backs off while the disk fails (one log line
//! per state change, the backlog written in pieces once it recovers).

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::time::Instant;

use super::AuditError;
use super::file::{Failure, PathCheck, Spec, Writer};
use super::health::{DropSpan, Health};
use super::record::{GapBody, Prepared};
use super::writer::{Ack, Msg, Shared, WriterCell};

/// Most records taken from the queue for one batch.
const MAX_BATCH: usize = 8192;
/// How long a batch of queued records waits for more before it is written; nobody waits on
/// them, and fewer, larger batches cost the request path fewer thread hand-offs. A batch
/// with a waiting caller (`write_committed`, `write_durable`, `flush`) never lingers.
const LINGER: Duration = Duration::from_millis(5);
/// First retry after a failed write; doubles up to [`MAX_RETRY`].
const MIN_RETRY: Duration = Duration::from_millis(100);
const MAX_RETRY: Duration = Duration::from_secs(5);
/// Bytes per write (each fsynced) while a backlog is written after a failure, so that a
/// little free space lets some of it through.
const PIECE_BYTES: usize = 16 * 1024;

/// The writer task's clocks.
#[derive(Clone, Copy)]
pub(super) struct Timing {
    pub(super) checkpoint_every: Duration,
    pub(super) sync_every: Duration,
}

/// The back-off state while writes fail.
struct Failing {
    since: SystemTime,
    delay: Duration,
    retry_at: Instant,
    attempts: u64,
}

/// `t + d`, saturating far in the future instead of overflowing.
fn after(t: Instant, d: Duration) -> Instant {
    t.checked_add(d)
        .or_else(|| t.checked_add(Duration::from_secs(365 * 86_400)))
        .unwrap_or(t)
}

/// Sleeps until `deadline`; never wakes without one.
async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Runs `work` on the writer, in place: the loop has its thread to itself, so a blocking
/// write or fsync delays only the records queued behind it (a caller committing on its own
/// thread meanwhile waits for a write, and queues during an fsync: see [`syncing`]). `None`
/// (logged) when the writer panicked, here or on a caller's thread; it is then gone for good.
fn on_writer<T>(cell: &WriterCell, path: &Path, work: impl FnOnce(&mut Writer) -> T) -> Option<T> {
    let Ok(mut guard) = cell.lock() else {
        tracing::error!(path = %path.display(), "audit writer panicked");
        return None;
    };
    let writer = guard.as_mut()?;
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || work(writer))) {
        Ok(out) => Some(out),
        Err(_) => {
            *guard = None;
            tracing::error!(path = %path.display(), "audit writer panicked");
            None
        }
    }
}

/// Fsyncs records written earlier without one, holding the writer only to start and to finish:
/// callers committing on their own threads go on writing while the disk works. `None` when the
/// writer panicked.
fn sync_unlocked(cell: &WriterCell, path: &Path, shared: &Shared) -> Option<Result<(), Failure>> {
    let sync = match on_writer(cell, path, Writer::begin_sync)? {
        Ok(Some(sync)) => sync,
        Ok(None) => return Some(Ok(())),
        Err(failure) => return Some(Err(failure)),
    };
    let result = sync.run(shared);
    on_writer(cell, path, |w| w.end_sync(&sync, result))
}

/// Runs `work`, which fsyncs, telling callers meanwhile to queue rather than wait for the writer.
fn syncing<T>(shared: &Shared, work: impl FnOnce() -> T) -> T {
    shared.syncing.store(true, Ordering::Release);
    let out = work();
    shared.syncing.store(false, Ordering::Release);
    out
}

/// Cuts specs into pieces of about `max` bytes (at least one record each).
fn cut(specs: Vec<(Spec, Ack)>, max: usize) -> Vec<Vec<(Spec, Ack)>> {
    let mut pieces = Vec::new();
    let mut piece = Vec::new();
    let mut bytes = 0;
    for (spec, ack) in specs {
        let len = spec.approx_len();
        if !piece.is_empty() && bytes + len > max {
            pieces.push(std::mem::take(&mut piece));
            bytes = 0;
        }
        bytes += len;
        piece.push((spec, ack));
    }
    if !piece.is_empty() {
        pieces.push(piece);
    }
    pieces
}

/// The state the loop carries between batches.
struct State {
    path: PathBuf,
    shared: Arc<Shared>,
    permits: Arc<Semaphore>,
    /// Queued records not yet written (they hold their queue permits).
    backlog: VecDeque<Prepared>,
    failing: Option<Failing>,
    /// Flushes that arrived during a back-off; answered after the next attempt.
    waiting_flushes: Vec<oneshot::Sender<Result<(), AuditError>>>,
}

impl State {
    fn unavailable(&self) -> AuditError {
        let health = self.shared.health.get();
        AuditError::Unavailable {
            path: self.path.clone(),
            since: health.since_rfc3339().unwrap_or_default(),
            source: health
                .error()
                .unwrap_or_else(|| std::io::Error::other("the audit log is failing")),
        }
    }

    /// A spec that was not written: a queued record goes back to the backlog (in order),
    /// a waiting caller gets the error, undelivered drops are kept for the next `gap`.
    fn unwritten(&mut self, spec: Spec, ack: Ack, failure: &Failure, drops: &mut Option<DropSpan>) {
        match (spec, ack) {
            (Spec::Event(rec), Ack::Queued) => self.backlog.push_back(rec),
            (_, Ack::Committed(tx) | Ack::Durable(tx)) => {
                let _ = tx.send(Err(failure.duplicate().into_error(&self.path)));
            }
            (Spec::Gap(_), _) => {
                if let Some(span) = drops.take() {
                    self.shared.health.restore_drops(span);
                }
            }
            _ => {}
        }
    }

    fn failed(&mut self, failure: &Failure) {
        let now = Instant::now();
        let reason = failure.to_string();
        let since = match &mut self.failing {
            None => {
                tracing::error!(path = %self.path.display(), error = %reason,
                    kind = ?failure.source.kind(), pending = self.backlog.len(),
                    "audit log cannot be written; guarded calls are refused, retrying with back-off until it recovers");
                let since = SystemTime::now();
                self.failing = Some(Failing {
                    since,
                    delay: MIN_RETRY,
                    retry_at: now + MIN_RETRY,
                    attempts: 1,
                });
                since
            }
            Some(f) => {
                f.delay = (f.delay * 2).min(MAX_RETRY);
                f.retry_at = now + f.delay;
                f.attempts += 1;
                tracing::debug!(error = %reason, next_retry_ms = f.delay.as_millis() as u64,
                    "audit log still cannot be written");
                f.since
            }
        };
        self.shared.health.set(Health::Failing {
            reason,
            kind: failure.source.kind(),
            since,
        });
    }

    fn succeeded(&mut self) {
        if let Some(f) = self.failing.take() {
            let down = SystemTime::now()
                .duration_since(f.since)
                .unwrap_or_default();
            tracing::warn!(path = %self.path.display(), failed_for_ms = down.as_millis() as u64,
                attempts = f.attempts, dropped_total = self.shared.health.dropped_total(),
                "audit log can be written again; the backlog is written");
            self.shared.health.set(Health::Healthy);
        }
    }
}

pub(super) async fn run(
    cell: Arc<WriterCell>,
    mut rx: mpsc::UnboundedReceiver<Msg>,
    permits: Arc<Semaphore>,
    timing: Timing,
    shared: Arc<Shared>,
) {
    let Timing {
        checkpoint_every,
        sync_every,
    } = timing;
    let path = shared.path.clone();
    let mut st = State {
        path: path.clone(),
        shared,
        permits,
        backlog: VecDeque::new(),
        failing: None,
        waiting_flushes: Vec::new(),
    };
    // When the oldest written-but-unsynced record must be fsynced.
    let mut sync_due: Option<Instant> = None;
    let mut next_checkpoint = after(Instant::now(), checkpoint_every);
    let mut open = true;
    let mut close_ack: Option<oneshot::Sender<()>> = None;
    let mut final_attempts = 0;
    loop {
        let mut msgs = Vec::new();
        let mut checkpoint_due = false;
        let retry_at = st.failing.as_ref().map(|f| f.retry_at);
        if open {
            tokio::select! {
                biased;
                m = rx.recv() => match m {
                    Some(m) => msgs.push(m),
                    None => open = false,
                },
                _ = tokio::time::sleep_until(next_checkpoint) => checkpoint_due = true,
                _ = sleep_until_opt(retry_at), if retry_at.is_some() => {}
                _ = sleep_until_opt(sync_due), if sync_due.is_some() => {}
            }
        } else if let Some(at) = retry_at {
            tokio::time::sleep_until(at).await;
        }
        // Under sustained load `recv` always wins the biased select.
        if open && Instant::now() >= next_checkpoint {
            checkpoint_due = true;
        }
        while open && msgs.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(m) => msgs.push(m),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => open = false,
            }
        }
        if open
            && st.failing.is_none()
            && !msgs.is_empty()
            && !checkpoint_due
            && msgs.iter().all(Msg::can_wait)
        {
            let until = Instant::now() + LINGER;
            while msgs.len() < MAX_BATCH {
                match tokio::time::timeout_at(until, rx.recv()).await {
                    Ok(Some(m)) => {
                        let urgent = !m.can_wait();
                        msgs.push(m);
                        if urgent {
                            break;
                        }
                    }
                    Ok(None) => {
                        open = false;
                        break;
                    }
                    Err(_) => break,
                }
            }
        }
        let closing = msgs.iter().any(|m| matches!(m, Msg::Close(_)));
        if closing {
            rx.close();
            while let Ok(m) = rx.try_recv() {
                msgs.push(m);
            }
            open = false;
            st.permits.close();
        }

        let reopen_asked = msgs.iter().any(|m| matches!(m, Msg::Reopen(_)));
        let attempt = match &st.failing {
            None => true,
            Some(f) => closing || !open || reopen_asked || Instant::now() >= f.retry_at,
        };
        let mut batch: Vec<(Spec, Ack)> = Vec::with_capacity(msgs.len() + 2);
        let mut flushes = Vec::new();
        let mut reopens = Vec::new();
        for m in msgs {
            match m {
                Msg::Record {
                    rec,
                    ack: Ack::Queued,
                } if !attempt => st.backlog.push_back(rec),
                Msg::Record {
                    ack: Ack::Committed(tx) | Ack::Durable(tx),
                    ..
                } if !attempt => {
                    let _ = tx.send(Err(st.unavailable()));
                }
                Msg::Record { rec, ack } => batch.push((Spec::Event(rec), ack)),
                Msg::Flush(tx) if !attempt => st.waiting_flushes.push(tx),
                Msg::Flush(tx) => flushes.push((st.backlog.len() + batch.len(), tx)),
                Msg::Reopen(tx) => reopens.push(tx),
                Msg::Close(tx) => close_ack = Some(tx),
                // Only wakes the loop, which schedules the fsync below.
                Msg::Unsynced => {}
            }
        }

        if !reopens.is_empty() {
            let Some(result) = syncing(&st.shared, || on_writer(&cell, &path, Writer::reopen_now))
            else {
                return;
            };
            for tx in reopens {
                let _ = tx.send(match &result {
                    Ok(changed) => Ok(*changed),
                    Err(f) => Err(f.duplicate().into_error(&path)),
                });
            }
        }

        if checkpoint_due && st.failing.is_none() {
            batch.push((Spec::Checkpoint, Ack::None));
        }
        if attempt {
            let recovering = st.failing.is_some();
            let mut specs: Vec<(Spec, Ack)> = st
                .backlog
                .drain(..)
                .map(|rec| (Spec::Event(rec), Ack::Queued))
                .chain(batch)
                .collect();
            if recovering && specs.is_empty() {
                // Probe the disk with a real record.
                specs.push((Spec::Checkpoint, Ack::None));
            }
            let mut drops = st.shared.health.take_drops();
            if let Some(span) = &drops {
                let reason = match st.shared.health.get() {
                    Health::Failing { reason, .. } => reason,
                    Health::Healthy => "the audit log could not be written".into(),
                };
                specs.push((
                    Spec::Gap(GapBody {
                        lost: span.count,
                        from: span.first.clone(),
                        until: span.last.clone(),
                        reason,
                    }),
                    Ack::None,
                ));
            }
            if closing {
                specs.push((Spec::Stop, Ack::None));
            }
            let must_sync = sync_every.is_zero()
                || recovering
                || checkpoint_due
                || closing
                || !flushes.is_empty()
                || specs.iter().any(|(_, ack)| matches!(ack, Ack::Durable(_)))
                || sync_due.is_some_and(|due| Instant::now() >= due);
            let mut failure: Option<(usize, Failure)> = None;
            let mut sync_failed = false;
            if specs.is_empty() {
                if must_sync {
                    let Some(result) = sync_unlocked(&cell, &path, &st.shared) else {
                        return;
                    };
                    // Records written while the fsync ran are due one interval from now.
                    sync_due = None;
                    if let Err(f) = result {
                        st.failed(&f);
                        failure = Some((0, f));
                        sync_failed = true;
                    }
                }
            } else {
                let pieces = if recovering {
                    cut(specs, PIECE_BYTES)
                } else {
                    vec![specs]
                };
                let mut released = 0;
                let mut index = 0;
                for piece in pieces {
                    if let Some((_, f)) = &failure {
                        let f = f.duplicate();
                        for (spec, ack) in piece {
                            st.unwritten(spec, ack, &f, &mut drops);
                            index += 1;
                        }
                        continue;
                    }
                    let (piece_specs, acks): (Vec<Spec>, Vec<Ack>) = piece.into_iter().unzip();
                    let commit = move |w: &mut Writer| {
                        let results = w.commit(&piece_specs, must_sync, PathCheck::Now);
                        (piece_specs, results)
                    };
                    let run = || on_writer(&cell, &path, commit);
                    let done = if must_sync || recovering {
                        syncing(&st.shared, run)
                    } else {
                        run()
                    };
                    let Some((specs_back, results)) = done else {
                        return;
                    };
                    for ((spec, ack), result) in specs_back.into_iter().zip(acks).zip(results) {
                        match result {
                            Ok(rref) => match ack {
                                Ack::Queued => released += 1,
                                Ack::Committed(tx) | Ack::Durable(tx) => {
                                    let _ = tx.send(Ok(rref));
                                }
                                Ack::None => {}
                            },
                            Err(f) => {
                                if failure.is_none() {
                                    // Health first: a caller told "failed" sees `Failing`.
                                    st.failed(&f);
                                    failure = Some((index, f.duplicate()));
                                }
                                st.unwritten(spec, ack, &f, &mut drops);
                            }
                        }
                        index += 1;
                    }
                }
                st.permits.add_permits(released);
            }
            if failure.is_none() {
                st.succeeded();
            }
            for (at, tx) in flushes {
                let result = match &failure {
                    Some((i, f)) if *i < at || sync_failed => Err(f.duplicate().into_error(&path)),
                    _ => Ok(()),
                };
                let _ = tx.send(result);
            }
            for tx in st.waiting_flushes.drain(..) {
                let _ = tx.send(match &failure {
                    Some((_, f)) => Err(f.duplicate().into_error(&path)),
                    None => Ok(()),
                });
            }
        }

        let Some((unsynced, last_checkpoint)) =
            on_writer(&cell, &path, |w| (w.unsynced, w.last_checkpoint))
        else {
            return;
        };
        sync_due = match (unsynced, sync_due) {
            (false, _) => None,
            (true, Some(due)) => Some(due),
            (true, None) => Some(after(Instant::now(), sync_every)),
        };
        let mut due = after(last_checkpoint, checkpoint_every);
        if checkpoint_due {
            due = due.max(after(Instant::now(), checkpoint_every));
        }
        next_checkpoint = due;

        if !open {
            final_attempts += 1;
            if st.backlog.is_empty() || closing || final_attempts > 3 {
                break;
            }
        }
    }
    if !st.backlog.is_empty() {
        tracing::error!(path = %path.display(), lost = st.backlog.len(),
            "audit writer ended with records it could not write");
    }
    if let Ok(mut writer) = cell.lock() {
        writer.take();
    }
    if let Some(ack) = close_ack {
        let _ = ack.send(());
    }
}
