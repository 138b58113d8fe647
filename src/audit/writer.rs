//! The audit log's handle and configuration: callers submit records here. A waiting
//! caller (`write_committed`) usually writes its record on its own thread, with those of the
//! calls answered in the same turn of that thread's tasks (`turn.rs`); the writer task
//! (`task.rs`) batches the rest, fsyncs, rotates and backs off (`file.rs` writes).

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, TryLockError};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use tokio::sync::{Semaphore, TryAcquireError, mpsc, oneshot};

use super::AuditError;
use super::file::{PathCheck, Spec, Writer};
use super::health::{Health, HealthCell, OnFull};
use super::outcome_write::OutcomeWrite;
use super::reader::RotatedName;
use super::record::{AuditEvent, KeyedHash, Prepared};
use super::redact::Redactor;
use super::syslog::{SyslogConfig, SyslogSender, spawn_syslog};
use super::task::{Timing, run};
use super::turn::{CallInProgress, Committed, Staged, Turns};

/// Default size at which the active file is rotated: 256 MiB.
pub const DEFAULT_ROTATE_BYTES: u64 = 256 * 1024 * 1024;
/// Default rotated file name pattern.
pub const DEFAULT_ROTATED_NAME: &str = "{stem}-{seq}.jsonl";
/// Default number of records between checkpoints.
pub const DEFAULT_CHECKPOINT_EVERY_RECORDS: u64 = 1000;
/// Default time between checkpoints.
pub const DEFAULT_CHECKPOINT_EVERY: Duration = Duration::from_secs(60);
/// Default number of `write` records that may be pending.
pub const DEFAULT_QUEUE_CAPACITY: usize = 1024;
/// Default longest time a queued (not durable) record stays written but not fsynced.
pub const DEFAULT_SYNC_EVERY: Duration = Duration::from_secs(1);

/// Where and how the audit log is written.
#[derive(Clone)]
pub struct AuditConfig {
    /// The active file, e.g. `/var/log/vcguard/audit.jsonl`.
    pub path: PathBuf,
    /// Rotate when the active file would grow beyond this many bytes.
    pub rotate_bytes: u64,
    /// Rotated file name in the same directory: `{stem}` is the active file's stem,
    /// `{seq}` the seq of the file's first record, zero-padded to 12 digits.
    pub rotated_name: String,
    /// Write a checkpoint after this many records.
    pub checkpoint_every_records: u64,
    /// Write a checkpoint at least this often, even when idle.
    pub checkpoint_every: Duration,
    /// How many `write` records may be pending before callers wait.
    pub queue_capacity: usize,
    /// Longest time records queued with `write` stay unsynced (written to the OS, which
    /// keeps them across a gateway crash, but not yet fsynced); zero fsyncs every batch.
    /// `write_durable`, `flush`, checkpoints, rotation and `close` always fsync.
    pub sync_every: Duration,
    /// Key of the keyed hashes of sessions and tickets (at least 16 bytes).
    pub hmac_key: Vec<u8>,
    /// Gateway instance id written in every record.
    pub instance: String,
    /// Forward every record to a syslog collector as well.
    pub syslog: Option<SyslogConfig>,
    /// Also rotate the active file once its first record is this old (`None`: size only).
    pub rotate_every: Option<Duration>,
    /// Keep at most this many rotated files, removing the oldest (0: no limit).
    pub keep_files: u32,
    /// Remove rotated files last written more than this many days ago (0: no limit).
    pub keep_days: u32,
    /// What the gateway refuses while the log cannot be written.
    pub on_full: OnFull,
    /// When a pass-through call's outcome reaches the OS, relative to its answer.
    pub outcome_write: OutcomeWrite,
}

impl AuditConfig {
    /// A configuration with the default sizes and intervals.
    pub fn new(path: impl Into<PathBuf>, hmac_key: Vec<u8>, instance: impl Into<String>) -> Self {
        AuditConfig {
            path: path.into(),
            rotate_bytes: DEFAULT_ROTATE_BYTES,
            rotated_name: DEFAULT_ROTATED_NAME.into(),
            checkpoint_every_records: DEFAULT_CHECKPOINT_EVERY_RECORDS,
            checkpoint_every: DEFAULT_CHECKPOINT_EVERY,
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            sync_every: DEFAULT_SYNC_EVERY,
            hmac_key,
            instance: instance.into(),
            syslog: None,
            rotate_every: None,
            keep_files: 0,
            keep_days: 0,
            on_full: OnFull::default(),
            outcome_write: OutcomeWrite::default(),
        }
    }

    /// Checks every value; the error names the offending key.
    pub fn validate(&self) -> Result<(), AuditError> {
        let bad = |msg: &str| Err(AuditError::Config(msg.into()));
        if self.path.file_name().is_none() {
            return Err(AuditError::Config(format!(
                "path {}: must name a file",
                self.path.display()
            )));
        }
        if self.rotate_bytes == 0 {
            return bad("rotate_bytes must be > 0");
        }
        if self.checkpoint_every_records == 0 {
            return bad("checkpoint_every_records must be > 0");
        }
        if self.checkpoint_every.is_zero() {
            return bad("checkpoint_every must be > 0");
        }
        if self.queue_capacity == 0 || self.queue_capacity > Semaphore::MAX_PERMITS {
            return bad("queue_capacity must be > 0");
        }
        if self.instance.is_empty() {
            return bad("instance must not be empty");
        }
        if self.rotate_every.is_some_and(|d| d.is_zero()) {
            return bad("rotate_every must be > 0");
        }
        RotatedName::new(&self.path, &self.rotated_name)?;
        Redactor::new(&self.hmac_key)?;
        Ok(())
    }
}

impl fmt::Debug for AuditConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditConfig")
            .field("path", &self.path)
            .field("rotate_bytes", &self.rotate_bytes)
            .field("rotated_name", &self.rotated_name)
            .field("checkpoint_every_records", &self.checkpoint_every_records)
            .field("checkpoint_every", &self.checkpoint_every)
            .field("queue_capacity", &self.queue_capacity)
            .field("hmac_key", &"<redacted>")
            .field("instance", &self.instance)
            .field("syslog", &self.syslog)
            .field("rotate_every", &self.rotate_every)
            .field("keep_files", &self.keep_files)
            .field("keep_days", &self.keep_days)
            .field("on_full", &self.on_full)
            .field("outcome_write", &self.outcome_write)
            .finish()
    }
}

/// Where a written record sits in the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordRef {
    /// Its sequence number.
    pub seq: u64,
    /// Its hash (the next record's `prev`).
    pub hash: String,
}

/// Injected I/O failures for tests.
#[cfg(test)]
#[derive(Default)]
pub(super) struct Faults {
    /// Fail the next N segment writes after writing half of the bytes.
    pub(super) fail_write: std::sync::atomic::AtomicU32,
    /// Fail the next N fsyncs (after the bytes were written).
    pub(super) fail_sync: std::sync::atomic::AtomicU32,
    /// Make each fsync of records written earlier take this many ms more.
    pub(super) slow_sync_ms: std::sync::atomic::AtomicU64,
}

/// What every handle and the writer task share.
pub(super) struct Shared {
    pub(super) path: PathBuf,
    pub(super) redactor: Redactor,
    pub(super) failures: AtomicU64,
    pub(super) commits: AtomicU64,
    /// Writes of records to the active file (one write(2) each, however many records).
    #[cfg(test)]
    pub(super) writes: AtomicU64,
    pub(super) syslog: Option<SyslogSender>,
    pub(super) health: HealthCell,
    pub(super) on_full: OnFull,
    pub(super) outcome_write: OutcomeWrite,
    /// The writer task holds the writer for an fsync: callers queue rather than wait.
    pub(super) syncing: AtomicBool,
    #[cfg(test)]
    pub(super) faults: Faults,
}

/// How the submitter of a record learns the result.
pub(super) enum Ack {
    /// Nobody waits (`write`); the record holds a queue permit until written.
    Queued,
    /// Answer once written to the OS (`write_committed`).
    Committed(oneshot::Sender<Result<RecordRef, AuditError>>),
    /// Answer once written and fsynced (`write_durable`).
    Durable(oneshot::Sender<Result<RecordRef, AuditError>>),
    /// The writer's own record; nobody is told.
    None,
}

pub(super) enum Msg {
    Record {
        rec: Prepared,
        ack: Ack,
    },
    /// A caller wrote to a synced file on its own thread: the file needs an fsync in time.
    Unsynced,
    Flush(oneshot::Sender<Result<(), AuditError>>),
    Reopen(oneshot::Sender<Result<bool, AuditError>>),
    Close(oneshot::Sender<()>),
}

impl Msg {
    /// A queued record nobody waits for; anything else is written without lingering.
    pub(super) fn can_wait(&self) -> bool {
        matches!(
            self,
            Msg::Record {
                ack: Ack::Queued,
                ..
            }
        )
    }
}

/// The active file's writer, shared by the writer task and callers committing on their own
/// thread; `None` once the task has ended or the writer panicked.
pub(super) type WriterCell = Mutex<Option<Box<Writer>>>;

/// Handle to the audit log; clone it freely, every clone feeds the same writer task.
#[derive(Clone)]
pub struct AuditLog {
    tx: mpsc::UnboundedSender<Msg>,
    permits: Arc<Semaphore>,
    shared: Arc<Shared>,
    writer: Arc<WriterCell>,
    /// Records written on the caller's thread are fsynced by the task later (`sync_every`).
    may_commit_here: bool,
    /// Where `write_committed` records wait for their thread's turn to end.
    turns: Arc<Turns>,
    /// All permits free: no queued record is waiting to be written before a new one.
    queue_capacity: usize,
}

impl fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditLog")
            .field("path", &self.shared.path)
            .field("failures", &self.failures())
            .finish()
    }
}

/// The writer's thread; await it to learn when the writer has ended.
#[derive(Debug)]
pub struct AuditTask {
    thread: std::thread::JoinHandle<()>,
    ended: oneshot::Receiver<()>,
}

impl AuditTask {
    /// Waits until the writer has ended (after `close`, or when every handle is dropped).
    pub async fn wait(self) -> Result<(), AuditError> {
        self.ended
            .await
            .map_err(|_| AuditError::WriterGone("the audit writer thread ended abnormally".into()))
    }

    /// Whether the writer has ended.
    pub fn is_finished(&self) -> bool {
        self.thread.is_finished()
    }
}

impl AuditLog {
    /// Opens the log, resumes the chain, writes the `start` record and spawns the writer.
    pub async fn open(config: AuditConfig) -> Result<(AuditLog, AuditTask), AuditError> {
        config.validate()?;
        let redactor = Redactor::new(&config.hmac_key)?;
        let syslog = config.syslog.clone().map(spawn_syslog).transpose()?;
        let shared = Arc::new(Shared {
            path: config.path.clone(),
            redactor,
            failures: AtomicU64::new(0),
            commits: AtomicU64::new(0),
            #[cfg(test)]
            writes: AtomicU64::new(0),
            syslog,
            health: HealthCell::new(),
            on_full: config.on_full,
            outcome_write: config.outcome_write,
            syncing: AtomicBool::new(false),
            #[cfg(test)]
            faults: Faults::default(),
        });
        let cfg = config.clone();
        let shared2 = shared.clone();
        let (mut writer, start) = blocking(move || Writer::resume(&cfg, shared2)).await??;
        let (writer, results) = blocking(move || {
            let results = writer.commit(&[Spec::Start(start)], true, PathCheck::Now);
            (writer, results)
        })
        .await?;
        if let Some(Err(failure)) = results.into_iter().next() {
            return Err(failure.into_error(&config.path));
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let permits = Arc::new(Semaphore::new(config.queue_capacity));
        let timing = Timing {
            checkpoint_every: config.checkpoint_every,
            sync_every: config.sync_every,
        };
        let writer = Arc::new(Mutex::new(Some(writer)));
        let task =
            spawn_writer_thread(writer.clone(), rx, permits.clone(), timing, shared.clone())?;
        Ok((
            AuditLog {
                tx,
                permits,
                shared,
                writer,
                may_commit_here: !config.sync_every.is_zero(),
                turns: Arc::default(),
                queue_capacity: config.queue_capacity,
            },
            task,
        ))
    }

    /// Writes a record and returns once it is on disk (fsynced); `Err` means it is not
    /// in the log and a guarded call must be refused. While the log is failing it returns
    /// [`AuditError::Unavailable`] at once, except when a retry is due.
    pub async fn write_durable(&self, event: AuditEvent) -> Result<RecordRef, AuditError> {
        let rec = Prepared::event(&event)?;
        let (ack, done) = oneshot::channel();
        self.send(Msg::Record {
            rec,
            ack: Ack::Durable(ack),
        })?;
        done.await.map_err(|_| AuditError::Closed)?
    }

    /// Writes a record and returns once it has been handed to the OS with write(2) (no
    /// fsync): it survives a crash of the gateway, not of the machine. Usually the caller
    /// writes on its own thread, with no hand-off to the writer thread and back, also while the
    /// periodic fsync runs; while the writer task fsyncs a batch, the record joins its next batch, which never lingers for a
    /// waiting caller. While the log is failing it returns [`AuditError::Unavailable`] at
    /// once, except when a retry is due.
    ///
    /// The record is serialised and staged when this is called; the thread's other ready tasks
    /// run once, and the records they staged meanwhile go out with it in one write(2). The
    /// future holds neither the event nor the record, so it stays a few words large in the
    /// caller's.
    pub fn write_committed(
        &self,
        event: AuditEvent,
    ) -> impl Future<Output = Result<RecordRef, AuditError>> + Send + '_ {
        let staged = Prepared::event(&event).map(|rec| Staged::new(self, rec));
        async move { staged?.await }
    }

    /// Counts a call in progress on this thread until the guard is dropped; `write_committed`
    /// writes the record of a call alone on its thread at once instead of waiting for company.
    pub fn call_in_progress(&self) -> CallInProgress<'_> {
        CallInProgress::begin(&self.turns)
    }

    /// The staging slots of `write_committed` records.
    pub(super) fn turns(&self) -> &Turns {
        &self.turns
    }

    /// Writes `records` (the records of one turn, in order) on the caller's thread if the log
    /// is healthy and no batch is being fsynced, no queued record waits (records keep their
    /// order) and no rotation is due. Queues them for the writer task otherwise, and those whose
    /// write failed (the task retries them, and backs off and reports if the disk keeps
    /// failing).
    pub(super) fn commit_batch(&self, records: Vec<Prepared>) -> Vec<Committed> {
        let results = match self.commit_here(records) {
            Ok(results) => results,
            Err(records) => records.into_iter().map(Err).collect(),
        };
        results
            .into_iter()
            .map(|result| match result {
                Ok(written) => Committed::Answered(Ok(written)),
                Err(rec) => self.queue_committed(rec),
            })
            .collect()
    }

    /// Writes `records` on the caller's thread, or gives them all back for the writer task;
    /// after a failed write, gives back each record that was not written.
    fn commit_here(
        &self,
        records: Vec<Prepared>,
    ) -> Result<Vec<Result<RecordRef, Prepared>>, Vec<Prepared>> {
        if !self.may_commit_here
            || self.shared.health.is_failing()
            || self.permits.available_permits() != self.queue_capacity
        {
            return Err(records);
        }
        let mut guard = match self.writer.try_lock() {
            Ok(guard) => guard,
            // Another caller's write or a batch of the writer's takes microseconds: wait for
            // it. An fsync takes milliseconds: queue instead.
            Err(TryLockError::WouldBlock) if !self.shared.syncing.load(Ordering::Acquire) => {
                match self.writer.lock() {
                    Ok(guard) => guard,
                    Err(_) => return Err(records),
                }
            }
            Err(_) => return Err(records),
        };
        let Some(writer) = guard.as_mut() else {
            return Err(records);
        };
        // Closed permits: the task is writing the `stop` record, nothing may follow it.
        if self.permits.is_closed() || !writer.takes_without_rotating(&records) {
            return Err(records);
        }
        let was_synced = !writer.unsynced;
        let specs: Vec<Spec> = records.into_iter().map(Spec::Event).collect();
        let results = writer.commit(&specs, false, PathCheck::Recent);
        drop(guard);
        if was_synced && results.iter().any(Result::is_ok) {
            let _ = self.tx.send(Msg::Unsynced);
        }
        Ok(specs
            .into_iter()
            .zip(results)
            .map(|(spec, result)| match (spec, result) {
                (_, Ok(written)) => Ok(written),
                (Spec::Event(rec), Err(_)) => Err(rec),
                _ => unreachable!("only event specs went in"),
            })
            .collect())
    }

    /// Queues `rec` for the writer task, which answers once it is written.
    fn queue_committed(&self, rec: Prepared) -> Committed {
        let (ack, done) = oneshot::channel();
        match self.send(Msg::Record {
            rec,
            ack: Ack::Committed(ack),
        }) {
            Ok(()) => Committed::Queued(done),
            Err(err) => Committed::Answered(Err(err)),
        }
    }

    /// Queues a record. While the log is healthy it waits when `queue_capacity` records
    /// are pending (back-pressure, nothing dropped). While the log is failing, records
    /// wait in the queue for the retry; once it is full the record is dropped at once
    /// ([`AuditError::Dropped`]), counted (`dropped()`, `vcguard_audit_dropped_total`) and
    /// reported in a `gap` record when the log can be written again. Never hangs on a
    /// failing disk.
    pub async fn write(&self, event: AuditEvent) -> Result<(), AuditError> {
        let rec = Prepared::event(&event)?;
        let permit = match self.permits.try_acquire() {
            Ok(permit) => permit,
            Err(TryAcquireError::Closed) => return Err(AuditError::Closed),
            Err(TryAcquireError::NoPermits) => {
                if self.shared.health.is_failing() {
                    return Err(self.drop_record(&rec));
                }
                let mut health = self.shared.health.subscribe();
                tokio::select! {
                    permit = self.permits.acquire() => permit.map_err(|_| AuditError::Closed)?,
                    _ = health.wait_for(|h| !h.is_healthy()) => return Err(self.drop_record(&rec)),
                }
            }
        };
        permit.forget();
        self.send(Msg::Record {
            rec,
            ack: Ack::Queued,
        })
    }

    fn drop_record(&self, rec: &Prepared) -> AuditError {
        self.shared.health.note_drop(&rec.time);
        let source = self
            .shared
            .health
            .get()
            .error()
            .unwrap_or_else(|| std::io::Error::other("the audit log is failing"));
        AuditError::Dropped {
            path: self.shared.path.clone(),
            source,
        }
    }

    fn send(&self, msg: Msg) -> Result<(), AuditError> {
        self.tx.send(msg).map_err(|_| AuditError::Closed)
    }

    /// Waits until every record queued before the call is on disk. While the log is
    /// failing it waits for the next retry (at most 5 s) and returns its result.
    pub async fn flush(&self) -> Result<(), AuditError> {
        let (ack, done) = oneshot::channel();
        self.send(Msg::Flush(ack))?;
        done.await.map_err(|_| AuditError::Closed)?
    }

    /// Checks the active file now (SIGUSR1, logrotate's convention): if it was renamed,
    /// deleted or truncated, the chain continues in a new file at the configured path whose
    /// first record says what happened. Returns whether a new file was opened. (The same
    /// check runs before every write, or for outcomes written on the caller's thread at most a
    /// millisecond after the last one, so records never go to a renamed file for long.)
    pub async fn reopen(&self) -> Result<bool, AuditError> {
        let (ack, done) = oneshot::channel();
        self.send(Msg::Reopen(ack))?;
        done.await.map_err(|_| AuditError::Closed)?
    }

    /// Writes the `stop` record after everything queued, fsyncs, and waits for the writer
    /// to end; later writes through other clones return [`AuditError::Closed`].
    pub async fn close(self) {
        let (ack, done) = oneshot::channel();
        if self.tx.send(Msg::Close(ack)).is_ok() {
            let _ = done.await;
        }
        if let Some(syslog) = &self.shared.syslog {
            syslog.wait_drained(Duration::from_secs(2)).await;
        }
    }

    /// Whether the log can be written now, and if not why and since when (for `/readyz`).
    pub fn health(&self) -> Health {
        self.shared.health.get()
    }

    /// What the gateway refuses while the log cannot be written (`[audit] on_full`).
    pub fn on_full(&self) -> OnFull {
        self.shared.on_full
    }

    /// When a pass-through call's outcome reaches the OS (`[audit] outcome_write`).
    pub fn outcome_write(&self) -> OutcomeWrite {
        self.shared.outcome_write
    }

    /// Whether the gateway must refuse a call now (503) because the log cannot be written:
    /// guarded calls whenever it is failing, every call under `on_full = "refuse_all"`.
    /// A cheap atomic load, for the request path.
    pub fn refuses(&self, guarded: bool) -> bool {
        self.shared.health.is_failing() && (guarded || self.shared.on_full == OnFull::RefuseAll)
    }

    /// Records dropped so far because the log was failing and its queue full.
    pub fn dropped(&self) -> u64 {
        self.shared.health.dropped_total()
    }

    /// Mirrors dropped records into `counter` (the gateway's `vcguard_audit_dropped_total`),
    /// including those dropped before the call; only the first counter given is used.
    pub fn count_drops_in(&self, counter: Counter) {
        self.shared.health.count_drops_in(counter);
    }

    /// Keyed hash (HMAC-SHA256, 32 hex digits) of a session token or ticket.
    pub fn hmac_hex(&self, value: &[u8]) -> String {
        self.shared.redactor.hex(value)
    }

    /// Keyed hash typed for record fields.
    pub fn keyed_hash(&self, value: &[u8]) -> KeyedHash {
        self.shared.redactor.hash(value)
    }

    /// The redactor holding this log's key.
    pub fn redactor(&self) -> &Redactor {
        &self.shared.redactor
    }

    /// Failed write or fsync attempts so far (each failed batch counts once).
    pub fn failures(&self) -> u64 {
        self.shared
            .failures
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Syslog messages dropped because the collector was unreachable and the queue full.
    pub fn syslog_dropped(&self) -> u64 {
        self.shared.syslog.as_ref().map_or(0, SyslogSender::dropped)
    }

    #[cfg(test)]
    pub(super) fn faults(&self) -> &Faults {
        &self.shared.faults
    }

    #[cfg(test)]
    pub(super) fn writes(&self) -> u64 {
        self.shared.writes.load(Ordering::Relaxed)
    }

    #[cfg(test)]
    pub(super) fn commits(&self) -> u64 {
        self.shared
            .commits
            .load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Runs the writer loop on its own thread, where a write(2) or fsync blocks nothing else: a
/// caller waiting for its record costs one hand-off there and one back, not a trip through
/// the blocking pool as well.
fn spawn_writer_thread(
    writer: Arc<WriterCell>,
    rx: mpsc::UnboundedReceiver<Msg>,
    permits: Arc<Semaphore>,
    timing: Timing,
    shared: Arc<Shared>,
) -> Result<AuditTask, AuditError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .map_err(|e| AuditError::WriterGone(format!("cannot start the audit writer: {e}")))?;
    let (done, ended) = oneshot::channel();
    let thread = std::thread::Builder::new()
        .name("vcguard-audit".into())
        .spawn(move || {
            runtime.block_on(run(writer, rx, permits, timing, shared));
            let _ = done.send(());
        })
        .map_err(|e| AuditError::WriterGone(format!("cannot start the audit writer: {e}")))?;
    Ok(AuditTask { thread, ended })
}

pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, AuditError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| AuditError::WriterGone(e.to_string()))
}
