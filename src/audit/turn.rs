//! Outcome records of calls answered in the same turn of a thread's tasks share one write(2).
//!
//! `write_committed` stages its record in its thread's slot and lets the thread's other ready
//! tasks run once; whichever of the slot's callers runs next writes every record staged there
//! with one write(2), before any of their answers leaves. A caller that goes away first writes
//! the slot's records as it is dropped, so none lingers unwritten. A call alone on its thread
//! (no other call in progress there, see [`CallInProgress`]) writes at once: nobody could join it.

use std::future::Future;
use std::mem;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use tokio::sync::oneshot;

use super::AuditError;
use super::record::Prepared;
use super::writer::{AuditLog, RecordRef};

/// Slots records are staged in; threads beyond this many share them (correct, fewer batched).
const SLOTS: usize = 64;

/// A thread's slot, assigned on its first staged record.
fn this_threads_slot() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SLOT: usize = NEXT.fetch_add(1, Ordering::Relaxed) % SLOTS;
    }
    SLOT.with(|slot| *slot)
}

/// Where a record written for a waiting caller stands.
pub(super) enum Committed {
    /// Written (or refused) on a caller's thread.
    Answered(Result<RecordRef, AuditError>),
    /// Queued for the writer task, which answers once it is written.
    Queued(oneshot::Receiver<Result<RecordRef, AuditError>>),
}

/// The staging slots of one log.
pub(super) struct Turns {
    slots: Box<[Mutex<Slot>]>,
    /// Calls in progress per slot (approximate where a runtime moves tasks between threads).
    calls: Box<[AtomicUsize]>,
}

impl Default for Turns {
    fn default() -> Self {
        Self {
            slots: (0..SLOTS).map(|_| Mutex::default()).collect(),
            calls: (0..SLOTS).map(|_| AtomicUsize::new(0)).collect(),
        }
    }
}

/// A call in progress on this thread, counted while it lasts: a record staged while the thread
/// has no other call in progress is written without waiting for the turn to end.
pub struct CallInProgress<'a> {
    turns: &'a Turns,
    slot: usize,
}

impl<'a> CallInProgress<'a> {
    pub(super) fn begin(turns: &'a Turns) -> Self {
        let slot = this_threads_slot();
        turns.calls[slot].fetch_add(1, Ordering::Relaxed);
        Self { turns, slot }
    }
}

impl Drop for CallInProgress<'_> {
    fn drop(&mut self) {
        self.turns.calls[self.slot].fetch_sub(1, Ordering::Relaxed);
    }
}

/// Records staged in one slot, and the batch they will be answered in.
#[derive(Default)]
struct Slot {
    records: Vec<Prepared>,
    batch: Arc<Batch>,
}

/// The answers of one slot's records once they are written.
#[derive(Default)]
struct Batch {
    answers: Mutex<Vec<Option<Committed>>>,
}

impl Turns {
    fn slot(&self, index: usize) -> MutexGuard<'_, Slot> {
        lock(&self.slots[index])
    }
}

/// A staged record's way to its answer.
pub(super) struct Staged<'a> {
    log: &'a AuditLog,
    slot: usize,
    index: usize,
    batch: Arc<Batch>,
    state: State,
}

enum State {
    /// Staged; the thread's other ready tasks have not run yet.
    Staged,
    /// They have (or the call is alone on its thread): the slot is written when this is polled
    /// next.
    Turned,
    /// Queued for the writer task.
    Queued(oneshot::Receiver<Result<RecordRef, AuditError>>),
    Done,
}

impl<'a> Staged<'a> {
    /// Stages `rec` in this thread's slot of `log`.
    pub(super) fn new(log: &'a AuditLog, rec: Prepared) -> Self {
        let slot = this_threads_slot();
        let turns = log.turns();
        let alone = turns.calls[slot].load(Ordering::Relaxed) <= 1;
        let mut staged = turns.slot(slot);
        let state = if alone && staged.records.is_empty() {
            State::Turned
        } else {
            State::Staged
        };
        staged.records.push(rec);
        Staged {
            log,
            slot,
            index: staged.records.len() - 1,
            batch: staged.batch.clone(),
            state,
        }
    }

    /// Writes the slot's records unless another caller of this batch already has, and takes
    /// this record's answer.
    fn answer(&self) -> Committed {
        let mut slot = self.log.turns().slot(self.slot);
        if Arc::ptr_eq(&slot.batch, &self.batch) {
            let records = mem::take(&mut slot.records);
            slot.batch = Arc::default();
            let answers = self.log.commit_batch(records);
            *lock(&self.batch.answers) = answers.into_iter().map(Some).collect();
        }
        drop(slot);
        lock(&self.batch.answers)
            .get_mut(self.index)
            .and_then(Option::take)
            .unwrap_or(Committed::Answered(Err(AuditError::Closed)))
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Future for Staged<'_> {
    type Output = Result<RecordRef, AuditError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            match &mut self.state {
                State::Staged => {
                    // Back of the thread's run queue: the tasks already woken run first and
                    // stage their records in the same slot.
                    self.state = State::Turned;
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                State::Turned => match self.answer() {
                    Committed::Answered(result) => {
                        self.state = State::Done;
                        return Poll::Ready(result);
                    }
                    Committed::Queued(done) => self.state = State::Queued(done),
                },
                State::Queued(done) => {
                    let result = std::task::ready!(Pin::new(done).poll(cx));
                    self.state = State::Done;
                    return Poll::Ready(result.map_err(|_| AuditError::Closed)?);
                }
                State::Done => panic!("a staged record's answer was polled after it was taken"),
            }
        }
    }
}

impl Drop for Staged<'_> {
    fn drop(&mut self) {
        // A caller gone before its turn writes the slot now: its record, and the records of
        // the slot's other callers, are not left waiting for another call on this thread.
        if matches!(self.state, State::Staged | State::Turned) {
            let _ = self.answer();
        }
    }
}
