//! The writer: one task that chains records, batches them (group commit), fsyncs,
//! rotates, writes checkpoints, and resumes the chain at start-up.

use std::collections::VecDeque;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Write as _};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::AuditError;
use super::chain::{self, Envelope, ZERO_HASH};
use super::reader::{self, RotatedName, parent_dir};
use super::record::{
    AuditEvent, CheckpointBody, KeyedHash, Prepared, SEVERITY_INFO, SEVERITY_WARNING, StartBody,
    StopBody, TornTail,
};
use super::redact::Redactor;
use super::syslog::{SyslogConfig, SyslogSender, spawn_syslog};

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

const MAX_BATCH: usize = 8192;
/// How long a batch of queued records waits for more before it is written; nobody waits on
/// them, and fewer, larger batches cost the request path fewer thread hand-offs.
const LINGER: Duration = Duration::from_millis(5);
const MIN_RETRY: Duration = Duration::from_millis(100);
const MAX_RETRY: Duration = Duration::from_secs(5);
const TORN_TEXT_MAX_CHARS: usize = 4096;

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
}

#[cfg(test)]
fn take_fault(counter: &std::sync::atomic::AtomicU32) -> bool {
    counter
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

struct Shared {
    path: PathBuf,
    redactor: Redactor,
    failures: AtomicU64,
    commits: AtomicU64,
    syslog: Option<SyslogSender>,
    #[cfg(test)]
    faults: Faults,
}

enum Msg {
    Record {
        rec: Prepared,
        ack: Option<oneshot::Sender<Result<RecordRef, AuditError>>>,
    },
    Flush(oneshot::Sender<Result<(), AuditError>>),
    Close(oneshot::Sender<()>),
}

impl Msg {
    /// A queued record nobody waits for; anything else is written without lingering.
    fn can_wait(&self) -> bool {
        matches!(self, Msg::Record { ack: None, .. })
    }
}

/// Handle to the audit log; clone it freely, every clone feeds the same writer task.
#[derive(Clone)]
pub struct AuditLog {
    tx: mpsc::UnboundedSender<Msg>,
    permits: Arc<Semaphore>,
    shared: Arc<Shared>,
}

impl fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditLog")
            .field("path", &self.shared.path)
            .field("failures", &self.failures())
            .finish()
    }
}

/// The spawned writer task; await it to learn when the writer has ended.
#[derive(Debug)]
pub struct AuditTask {
    handle: JoinHandle<()>,
}

impl AuditTask {
    /// Waits until the writer has ended (after `close`, or when every handle is dropped).
    pub async fn wait(self) -> Result<(), AuditError> {
        self.handle
            .await
            .map_err(|e| AuditError::WriterGone(e.to_string()))
    }

    /// Whether the writer has ended.
    pub fn is_finished(&self) -> bool {
        self.handle.is_finished()
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
            syslog,
            #[cfg(test)]
            faults: Faults::default(),
        });
        let cfg = config.clone();
        let shared2 = shared.clone();
        let (mut writer, start) = blocking(move || Writer::resume(&cfg, shared2)).await??;
        let (writer, results) = blocking(move || {
            let results = writer.commit(&[Spec::Start(start)], true);
            (writer, results)
        })
        .await?;
        if let Some(Err(reason)) = results.into_iter().next() {
            return Err(AuditError::WriteFailed {
                path: config.path,
                reason,
            });
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let permits = Arc::new(Semaphore::new(config.queue_capacity));
        let timing = Timing {
            checkpoint_every: config.checkpoint_every,
            sync_every: config.sync_every,
        };
        let handle = tokio::spawn(run(writer, rx, permits.clone(), timing));
        Ok((
            AuditLog {
                tx,
                permits,
                shared,
            },
            AuditTask { handle },
        ))
    }

    /// Writes a record and returns once it is on disk (fsynced); `Err` means it is not
    /// in the log and a guarded call must be refused.
    pub async fn write_durable(&self, event: AuditEvent) -> Result<RecordRef, AuditError> {
        let rec = Prepared::event(&event)?;
        let (ack, done) = oneshot::channel();
        self.tx
            .send(Msg::Record {
                rec,
                ack: Some(ack),
            })
            .map_err(|_| AuditError::Closed)?;
        done.await.map_err(|_| AuditError::Closed)?
    }

    /// Queues a record; waits while `queue_capacity` records are pending, never drops one.
    pub async fn write(&self, event: AuditEvent) -> Result<(), AuditError> {
        let rec = Prepared::event(&event)?;
        self.permits
            .acquire()
            .await
            .map_err(|_| AuditError::Closed)?
            .forget();
        self.tx
            .send(Msg::Record { rec, ack: None })
            .map_err(|_| AuditError::Closed)
    }

    /// Waits until every record queued before the call is on disk.
    pub async fn flush(&self) -> Result<(), AuditError> {
        let (ack, done) = oneshot::channel();
        self.tx
            .send(Msg::Flush(ack))
            .map_err(|_| AuditError::Closed)?;
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
        self.shared.failures.load(Ordering::Relaxed)
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
    pub(super) fn commits(&self) -> u64 {
        self.shared.commits.load(Ordering::Relaxed)
    }
}

/// `t + d`, saturating far in the future instead of overflowing.
fn after(t: Instant, d: Duration) -> Instant {
    t.checked_add(d)
        .or_else(|| t.checked_add(Duration::from_secs(365 * 86_400)))
        .unwrap_or(t)
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, AuditError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| AuditError::WriterGone(e.to_string()))
}

/// Runs `work` on the writer in the blocking pool and hands the writer back; `None` (logged)
/// when the blocking task died.
async fn on_writer<T: Send + 'static>(
    mut writer: Box<Writer>,
    path: &Path,
    work: impl FnOnce(&mut Writer) -> T + Send + 'static,
) -> Option<(Box<Writer>, T)> {
    match blocking(move || {
        let out = work(&mut writer);
        (writer, out)
    })
    .await
    {
        Ok(done) => Some(done),
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "audit writer failed");
            None
        }
    }
}

/// What the writer task turns into records.
enum Spec {
    Event(Prepared),
    Start(StartBody),
    Checkpoint,
    Stop,
}

/// Sleeps until `deadline`; never wakes without one.
async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// How the submitter of a spec learns the result.
enum Ack {
    None,
    Queued,
    Durable(oneshot::Sender<Result<RecordRef, AuditError>>),
}

/// The writer task's clocks.
#[derive(Clone, Copy)]
struct Timing {
    checkpoint_every: Duration,
    sync_every: Duration,
}

async fn run(
    mut writer: Box<Writer>,
    mut rx: mpsc::UnboundedReceiver<Msg>,
    permits: Arc<Semaphore>,
    timing: Timing,
) {
    let Timing {
        checkpoint_every,
        sync_every,
    } = timing;
    let path = writer.path.clone();
    // When the oldest written-but-unsynced record must be fsynced.
    let mut sync_due: Option<Instant> = None;
    let mut retry: VecDeque<Prepared> = VecDeque::new();
    let mut retry_delay = MIN_RETRY;
    let mut next_retry = Instant::now();
    let mut next_checkpoint = after(Instant::now(), checkpoint_every);
    let mut open = true;
    let mut close_ack: Option<oneshot::Sender<()>> = None;
    let mut final_attempts = 0;
    loop {
        let mut msgs = Vec::new();
        let mut checkpoint_due = false;
        if open {
            tokio::select! {
                biased;
                m = rx.recv() => match m {
                    Some(m) => msgs.push(m),
                    None => open = false,
                },
                _ = tokio::time::sleep_until(next_checkpoint) => checkpoint_due = true,
                _ = tokio::time::sleep_until(next_retry), if !retry.is_empty() => {}
                _ = sleep_until_opt(sync_due), if sync_due.is_some() => {}
            }
        } else if !retry.is_empty() {
            tokio::time::sleep(retry_delay).await;
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
        if open && !msgs.is_empty() && !checkpoint_due && msgs.iter().all(Msg::can_wait) {
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
            permits.close();
        }

        let mut specs = Vec::with_capacity(retry.len() + msgs.len() + 2);
        let mut acks = Vec::with_capacity(specs.capacity());
        let mut flushes = Vec::new();
        for rec in retry.drain(..) {
            specs.push(Spec::Event(rec));
            acks.push(Ack::Queued);
        }
        for m in msgs {
            match m {
                Msg::Record { rec, ack } => {
                    specs.push(Spec::Event(rec));
                    acks.push(ack.map_or(Ack::Queued, Ack::Durable));
                }
                Msg::Flush(ack) => flushes.push((specs.len(), ack)),
                Msg::Close(ack) => close_ack = Some(ack),
            }
        }
        if checkpoint_due {
            specs.push(Spec::Checkpoint);
            acks.push(Ack::None);
        }
        if closing {
            specs.push(Spec::Stop);
            acks.push(Ack::None);
        }
        let must_sync = sync_every.is_zero()
            || checkpoint_due
            || closing
            || !flushes.is_empty()
            || acks.iter().any(|ack| matches!(ack, Ack::Durable(_)))
            || sync_due.is_some_and(|due| Instant::now() >= due);
        if specs.is_empty() && must_sync && sync_due.is_some() {
            let Some((w, result)) = on_writer(writer, &path, Writer::sync).await else {
                return;
            };
            writer = w;
            if let Err(reason) = result {
                tracing::error!(path = %path.display(), error = %reason,
                    "audit log fsync failed; records queued since the last fsync may be lost");
                for (_, ack) in flushes.drain(..) {
                    let _ = ack.send(Err(AuditError::WriteFailed {
                        path: path.clone(),
                        reason: reason.clone(),
                    }));
                }
            }
        }
        if !specs.is_empty() {
            let commit = move |w: &mut Writer| {
                let results = w.commit(&specs, must_sync);
                (specs, results)
            };
            let Some((w, (specs_back, results))) = on_writer(writer, &path, commit).await else {
                return;
            };
            writer = w;
            let mut first_error: Option<(usize, String)> = None;
            let mut released = 0;
            for (i, ((spec, ack), result)) in
                specs_back.into_iter().zip(acks).zip(results).enumerate()
            {
                if let (Err(reason), None) = (&result, &first_error) {
                    first_error = Some((i, reason.clone()));
                }
                match (spec, ack, result) {
                    (_, Ack::Durable(ack), result) => {
                        let _ = ack.send(result.map_err(|reason| AuditError::WriteFailed {
                            path: path.clone(),
                            reason,
                        }));
                    }
                    (_, Ack::Queued, Ok(_)) => released += 1,
                    (Spec::Event(rec), Ack::Queued, Err(_)) => retry.push_back(rec),
                    _ => {}
                }
            }
            permits.add_permits(released);
            for (at, ack) in flushes {
                let result = match &first_error {
                    Some((i, reason)) if *i < at => Err(AuditError::WriteFailed {
                        path: path.clone(),
                        reason: reason.clone(),
                    }),
                    _ => Ok(()),
                };
                let _ = ack.send(result);
            }
            if let Some((_, reason)) = &first_error {
                tracing::error!(path = %path.display(), error = %reason, pending = retry.len(),
                    "audit log write failed; guarded calls are refused until it recovers");
                next_retry = Instant::now() + retry_delay;
                retry_delay = (retry_delay * 2).min(MAX_RETRY);
            } else {
                retry_delay = MIN_RETRY;
            }
        } else {
            for (_, ack) in flushes {
                let _ = ack.send(Ok(()));
            }
        }
        sync_due = match (writer.unsynced, sync_due) {
            (false, _) => None,
            (true, Some(due)) => Some(due),
            (true, None) => Some(after(Instant::now(), sync_every)),
        };
        let mut due = after(writer.last_checkpoint, checkpoint_every);
        if checkpoint_due {
            due = due.max(after(Instant::now(), checkpoint_every));
        }
        next_checkpoint = due;

        if !open {
            final_attempts += 1;
            if retry.is_empty() || closing || final_attempts > 3 {
                break;
            }
        }
    }
    if !retry.is_empty() {
        tracing::error!(path = %path.display(), lost = retry.len(),
            "audit writer ended with records it could not write");
    }
    drop(writer);
    if let Some(ack) = close_ack {
        let _ = ack.send(());
    }
}

/// One record staged for the current write.
struct Staged {
    spec: Option<usize>,
    rref: RecordRef,
    kind: &'static str,
    severity: u8,
    time: String,
    range: Range<usize>,
    checkpoint: bool,
}

/// Records rendered but not yet on disk, and the chain state after them.
struct Segment {
    buf: Vec<u8>,
    staged: Vec<Staged>,
    next_seq: u64,
    prev: String,
    since_checkpoint: u64,
}

/// The blocking half: owns the file and the chain state of what is on disk.
struct Writer {
    path: PathBuf,
    dir: PathBuf,
    rotated: RotatedName,
    rotate_bytes: u64,
    checkpoint_every_records: u64,
    instance: String,
    file: Option<File>,
    /// Bytes of the active file that hold committed records.
    file_len: u64,
    /// A failed write may have left bytes after `file_len` that must be cut off.
    dirty_tail: bool,
    /// Bytes up to `file_len` were written but not all fsynced yet.
    unsynced: bool,
    file_first_seq: u64,
    next_seq: u64,
    prev: String,
    since_checkpoint: u64,
    records: u64,
    last_checkpoint: Instant,
    shared: Arc<Shared>,
}

impl Writer {
    /// Repairs a torn final line, finds the last record, and opens the active file.
    fn resume(
        config: &AuditConfig,
        shared: Arc<Shared>,
    ) -> Result<(Box<Writer>, StartBody), AuditError> {
        let path = config.path.clone();
        let io_err = |p: &Path, op: &'static str| {
            let p = p.to_path_buf();
            move |source| AuditError::Io {
                path: p,
                op,
                source,
            }
        };
        let rotated = RotatedName::new(&path, &config.rotated_name)?;
        let dir = parent_dir(&path);
        let meta = std::fs::metadata(&dir).map_err(io_err(&dir, "open the log directory"))?;
        if !meta.is_dir() {
            return Err(AuditError::Io {
                path: dir,
                op: "open the log directory",
                source: io::Error::new(io::ErrorKind::NotADirectory, "not a directory"),
            });
        }

        let mut torn_tail = None;
        let read_last = |p: &Path| reader::last_line(p).map_err(io_err(p, "read"));
        let mut last = if path.exists() {
            read_last(&path)?
        } else {
            None
        };
        if let Some(torn) = last.as_ref().filter(|l| !l.complete) {
            let file = OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(io_err(&path, "open to repair a torn final line"))?;
            file.set_len(torn.offset)
                .and_then(|()| file.sync_all())
                .map_err(io_err(&path, "truncate a torn final line"))?;
            let text: String = String::from_utf8_lossy(&torn.bytes)
                .chars()
                .take(TORN_TEXT_MAX_CHARS)
                .collect();
            tracing::warn!(path = %path.display(), offset = torn.offset, bytes = torn.bytes.len(),
                "audit log ended in an incomplete line (crash during a write); removed it");
            torn_tail = Some(TornTail {
                file: file_name(&path),
                offset: torn.offset,
                length: torn.bytes.len() as u64,
                sha256: chain::sha256_hex(&torn.bytes),
                text,
            });
            last = read_last(&path)?;
        }
        let (tail_path, tail) = match last {
            Some(l) => (path.clone(), Some(l)),
            None => {
                let files = rotated
                    .list()
                    .map_err(io_err(&dir, "list the log directory"))?;
                match files.last() {
                    Some((_, p)) => (p.clone(), read_last(p)?),
                    None => (path.clone(), None),
                }
            }
        };
        let (next_seq, prev, unclean) = match tail {
            None => (1, ZERO_HASH.to_owned(), false),
            Some(l) if !l.complete => {
                return Err(AuditError::Corrupt {
                    path: tail_path,
                    detail: "rotated file ends in an incomplete line".into(),
                });
            }
            Some(l) => {
                let header = chain::check_line(&l.bytes).map_err(|detail| AuditError::Corrupt {
                    path: tail_path.clone(),
                    detail: format!(
                        "last record (byte offset {}) does not verify: {detail}",
                        l.offset
                    ),
                })?;
                (header.seq + 1, header.hash, header.kind != "stop")
            }
        };

        let file_len = match std::fs::metadata(&path) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
            Err(e) => return Err(io_err(&path, "read")(e)),
        };
        let file_first_seq = if file_len == 0 {
            next_seq
        } else {
            first_seq(&path)?
        };
        let existed = path.exists();
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .open(&path)
            .map_err(io_err(&path, "open for appending"))?;
        if !existed {
            fsync_dir(&dir).map_err(io_err(&dir, "fsync the log directory"))?;
        }
        let writer = Writer {
            path,
            dir,
            rotated,
            rotate_bytes: config.rotate_bytes,
            checkpoint_every_records: config.checkpoint_every_records,
            instance: config.instance.clone(),
            file: Some(file),
            file_len,
            dirty_tail: false,
            unsynced: false,
            file_first_seq,
            next_seq,
            prev,
            since_checkpoint: 0,
            records: 0,
            last_checkpoint: Instant::now(),
            shared,
        };
        let start = StartBody {
            unclean_previous_stop: unclean || torn_tail.is_some(),
            version: env!("CARGO_PKG_VERSION"),
            pid: std::process::id(),
            torn_tail,
        };
        Ok((Box::new(writer), start))
    }

    /// Writes the specs in order, fsyncing at the end when `sync`; returns one result per
    /// spec. Records before a failure that were already fsynced (a rotation happened in
    /// between) stay written.
    fn commit(&mut self, specs: &[Spec], sync: bool) -> Vec<Result<RecordRef, String>> {
        let mut results: Vec<Option<Result<RecordRef, String>>> =
            specs.iter().map(|_| None).collect();
        let outcome = self.commit_inner(specs, sync, &mut results);
        if let Err(reason) = outcome {
            self.shared.failures.fetch_add(1, Ordering::Relaxed);
            self.rollback();
            for r in results.iter_mut().filter(|r| r.is_none()) {
                *r = Some(Err(reason.clone()));
            }
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err("not written".into())))
            .collect()
    }

    fn commit_inner(
        &mut self,
        specs: &[Spec],
        sync: bool,
        results: &mut [Option<Result<RecordRef, String>>],
    ) -> Result<(), String> {
        self.ensure_open()?;
        let mut seg = Segment {
            buf: Vec::with_capacity(specs.len() * 512),
            staged: Vec::new(),
            next_seq: self.next_seq,
            prev: self.prev.clone(),
            since_checkpoint: self.since_checkpoint,
        };
        for (i, spec) in specs.iter().enumerate() {
            match spec {
                Spec::Event(rec) => {
                    self.stage(&mut seg, Some(i), rec, false, results)?;
                    seg.since_checkpoint += 1;
                    if seg.since_checkpoint >= self.checkpoint_every_records {
                        let cp = self.checkpoint_record(&seg)?;
                        self.stage(&mut seg, None, &cp, true, results)?;
                    }
                }
                Spec::Start(body) => {
                    let rec =
                        Prepared::body("start", body, SEVERITY_INFO).map_err(|e| e.to_string())?;
                    self.stage(&mut seg, Some(i), &rec, true, results)?;
                }
                Spec::Checkpoint => {
                    let rec = self.checkpoint_record(&seg)?;
                    self.stage(&mut seg, Some(i), &rec, true, results)?;
                }
                Spec::Stop => {
                    let body = StopBody {
                        records: self.records + seg.staged.len() as u64,
                        failures: self.shared.failures.load(Ordering::Relaxed),
                    };
                    let rec =
                        Prepared::body("stop", &body, SEVERITY_INFO).map_err(|e| e.to_string())?;
                    self.stage(&mut seg, Some(i), &rec, false, results)?;
                }
            }
        }
        self.flush(&mut seg, sync, results)
    }

    /// Fsyncs records written earlier without one.
    fn sync(&mut self) -> Result<(), String> {
        if !self.unsynced {
            return Ok(());
        }
        let failed = |e: io::Error| format!("fsync of {} failed: {e}", self.path.display());
        #[cfg(test)]
        let injected = take_fault(&self.shared.faults.fail_sync);
        #[cfg(not(test))]
        let injected = false;
        let result = match self.file.as_ref() {
            Some(_) if injected => Err(failed(io::Error::other("injected fsync failure"))),
            Some(file) => file.sync_data().map_err(failed),
            None => Err(format!("{} is not open", self.path.display())),
        };
        if result.is_ok() {
            self.shared.commits.fetch_add(1, Ordering::Relaxed);
        } else {
            self.shared.failures.fetch_add(1, Ordering::Relaxed);
            self.rollback();
        }
        self.unsynced = false;
        result
    }

    fn checkpoint_record(&self, seg: &Segment) -> Result<Prepared, String> {
        let body = CheckpointBody {
            records: self.records + seg.staged.len() as u64,
            failures: self.shared.failures.load(Ordering::Relaxed),
            file: file_name(&self.path),
        };
        let severity = if body.failures > 0 {
            SEVERITY_WARNING
        } else {
            SEVERITY_INFO
        };
        Prepared::body("checkpoint", &body, severity).map_err(|e| e.to_string())
    }

    /// Renders one record onto the segment, rotating first when it would not fit.
    fn stage(
        &mut self,
        seg: &mut Segment,
        spec: Option<usize>,
        rec: &Prepared,
        checkpoint: bool,
        results: &mut [Option<Result<RecordRef, String>>],
    ) -> Result<(), String> {
        let env = Envelope {
            seq: seg.next_seq,
            time: &rec.time,
            instance: &self.instance,
            kind: rec.kind,
            prev: &seg.prev,
        };
        let (line, hash) = chain::render(&env, &rec.body);
        let pending = self.file_len + seg.buf.len() as u64;
        if pending > 0 && pending + line.len() as u64 > self.rotate_bytes {
            self.flush(seg, true, results)?;
            self.rotate()?;
        }
        let start = seg.buf.len();
        seg.buf.extend_from_slice(&line);
        seg.staged.push(Staged {
            spec,
            rref: RecordRef {
                seq: seg.next_seq,
                hash: hash.clone(),
            },
            kind: rec.kind,
            severity: rec.severity,
            time: rec.time.clone(),
            range: start..seg.buf.len() - 1,
            checkpoint,
        });
        seg.next_seq += 1;
        seg.prev = hash;
        if checkpoint {
            seg.since_checkpoint = 0;
        }
        Ok(())
    }

    /// Writes the segment (and fsyncs the file when `sync`), then makes its chain state the
    /// committed one.
    fn flush(
        &mut self,
        seg: &mut Segment,
        sync: bool,
        results: &mut [Option<Result<RecordRef, String>>],
    ) -> Result<(), String> {
        let path = &self.path;
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| format!("{} is not open", path.display()))?;
        let failed = |op: &str, e: io::Error| format!("{op} {} failed: {e}", path.display());
        if !seg.buf.is_empty() || (sync && self.unsynced) {
            self.dirty_tail = true;
            #[cfg(test)]
            if take_fault(&self.shared.faults.fail_write) {
                let _ = file.write_all(&seg.buf[..seg.buf.len() / 2]);
                return Err(failed(
                    "write to",
                    io::Error::other("injected write failure"),
                ));
            }
            file.write_all(&seg.buf)
                .map_err(|e| failed("write to", e))?;
            if sync {
                #[cfg(test)]
                if take_fault(&self.shared.faults.fail_sync) {
                    return Err(failed(
                        "fsync of",
                        io::Error::other("injected fsync failure"),
                    ));
                }
                file.sync_data().map_err(|e| failed("fsync of", e))?;
                self.unsynced = false;
                self.shared.commits.fetch_add(1, Ordering::Relaxed);
            } else {
                self.unsynced = true;
            }
            self.dirty_tail = false;
        }
        self.file_len += seg.buf.len() as u64;
        self.next_seq = seg.next_seq;
        self.prev = seg.prev.clone();
        self.since_checkpoint = seg.since_checkpoint;
        self.records += seg.staged.len() as u64;
        for staged in seg.staged.drain(..) {
            if staged.checkpoint {
                self.last_checkpoint = Instant::now();
            }
            if let Some(syslog) = &self.shared.syslog {
                syslog.send(
                    staged.severity,
                    staged.kind,
                    &staged.time,
                    &seg.buf[staged.range],
                );
            }
            if let Some(i) = staged.spec {
                results[i] = Some(Ok(staged.rref));
            }
        }
        seg.buf.clear();
        Ok(())
    }

    /// Renames the full active file to its rotated name and starts a new one.
    fn rotate(&mut self) -> Result<(), String> {
        let target = self.rotated.path(self.file_first_seq);
        if target.exists() {
            return Err(format!(
                "cannot rotate {}: {} already exists and is never overwritten",
                self.path.display(),
                target.display()
            ));
        }
        self.file = None;
        std::fs::rename(&self.path, &target).map_err(|e| {
            format!(
                "cannot rotate {} to {}: {e}",
                self.path.display(),
                target.display()
            )
        })?;
        self.file_len = 0;
        self.file_first_seq = self.next_seq;
        fsync_dir(&self.dir).map_err(|e| format!("fsync of {} failed: {e}", self.dir.display()))?;
        self.ensure_open()
    }

    /// Opens the active file if needed, checking it still ends where the chain does.
    fn ensure_open(&mut self) -> Result<(), String> {
        if self.file.is_some() {
            return Ok(());
        }
        let path = &self.path;
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        let len = file
            .metadata()
            .map_err(|e| format!("cannot stat {}: {e}", path.display()))?
            .len();
        if len > self.file_len && self.dirty_tail {
            file.set_len(self.file_len)
                .and_then(|()| file.sync_all())
                .map_err(|e| format!("cannot cut a failed write off {}: {e}", path.display()))?;
        } else if len != self.file_len {
            return Err(format!(
                "{} changed under the writer (expected {} bytes, found {len}); refusing to append",
                path.display(),
                self.file_len
            ));
        }
        self.dirty_tail = false;
        fsync_dir(&self.dir).map_err(|e| format!("fsync of {} failed: {e}", self.dir.display()))?;
        self.file = Some(file);
        Ok(())
    }

    /// After a failed write or fsync: cut partial bytes off and drop the handle, whose
    /// page-cache state is unknown after an fsync error; the next attempt reopens.
    fn rollback(&mut self) {
        if let Some(file) = self.file.take()
            && self.dirty_tail
            && file
                .set_len(self.file_len)
                .and_then(|()| file.sync_all())
                .is_ok()
        {
            self.dirty_tail = false;
        }
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The seq of a file's first record.
fn first_seq(path: &Path) -> Result<u64, AuditError> {
    let corrupt = |detail: String| AuditError::Corrupt {
        path: path.to_path_buf(),
        detail,
    };
    let mut lines = reader::Lines::open(path).map_err(|source| AuditError::Io {
        path: path.to_path_buf(),
        op: "read",
        source,
    })?;
    match lines.next_line() {
        Ok(Some(reader::Line::Complete)) => chain::check_line(&lines.buf)
            .map(|h| h.seq)
            .map_err(|d| corrupt(format!("first record does not verify: {d}"))),
        Ok(_) => Err(corrupt("first line is not a complete record".into())),
        Err(source) => Err(AuditError::Io {
            path: path.to_path_buf(),
            op: "read",
            source,
        }),
    }
}
