//! The blocking half of the writer: owns the active file and the chain state of what is on
//! disk. It renders and chains records, writes and fsyncs them, rotates by size and age,
//! applies retention, and notices an active file that was renamed, deleted or truncated
//! under it (checked at every commit; see [`PathCheck`]), continuing the chain in a new file.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Write as _};
use std::ops::Range;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use super::AuditError;
use super::chain::{self, Envelope, ZERO_HASH};
use super::files::{apply_retention, first_seq_of, highest_seq_in, log_set};
use super::reader::{self, RotatedName, parent_dir};
use super::record::{
    ChainBreak, CheckpointBody, GapBody, Prepared, ReopenBody, RetentionBody, SEVERITY_INFO,
    SEVERITY_WARNING, StartBody, StopBody, TornTail,
};
use super::writer::{AuditConfig, RecordRef, Shared};

const TORN_TEXT_MAX_CHARS: usize = 4096;

/// A failed write, fsync, rotation or reopen: what was attempted and the I/O error.
#[derive(Debug)]
pub(super) struct Failure {
    pub(super) op: String,
    pub(super) source: io::Error,
}

impl Failure {
    pub(super) fn new(op: impl Into<String>, source: io::Error) -> Failure {
        Failure {
            op: op.into(),
            source,
        }
    }

    /// The same failure again (one per caller of a failed batch).
    pub(super) fn duplicate(&self) -> Failure {
        Failure {
            op: self.op.clone(),
            source: copy_io_error(&self.source),
        }
    }

    pub(super) fn into_error(self, path: &Path) -> AuditError {
        AuditError::WriteFailed {
            path: path.to_path_buf(),
            op: self.op,
            source: self.source,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot {}: {}", self.op, self.source)
    }
}

/// An `io::Error` with the same OS code (or kind and message).
pub(super) fn copy_io_error(e: &io::Error) -> io::Error {
    match e.raw_os_error() {
        Some(code) => io::Error::from_raw_os_error(code),
        None => io::Error::new(e.kind(), e.to_string()),
    }
}

/// What the writer task turns into records.
pub(super) enum Spec {
    Event(Prepared),
    Start(StartBody),
    Checkpoint,
    Stop,
    Gap(GapBody),
}

impl Spec {
    /// Rough size of the line, to cut a backlog into pieces.
    pub(super) fn approx_len(&self) -> usize {
        match self {
            Spec::Event(p) => p.body.len() + 320,
            _ => 512,
        }
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
    /// How many of the writer's pending notices are staged in `buf`.
    notices: usize,
}

/// Whether a commit checks the active file's path (a stat(2)) or trusts a recent check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PathCheck {
    /// Check now: the writer task's batches, durable records, rotation and reopen.
    Now,
    /// Trust a check made within [`RECENT_CHECK`]: a record committed on a caller's thread,
    /// so that under load the stat runs about once a millisecond instead of once a call.
    Recent,
}

/// How long a check of the active file's path stands for [`PathCheck::Recent`] commits. Records
/// written in that window after an `rm` of the active file go with the deleted file, as records
/// written between any check and its write always could.
pub(super) const RECENT_CHECK: Duration = Duration::from_millis(1);

/// An fsync of the active file that runs without the writer's lock, so that callers committing
/// on their own threads meanwhile write instead of queueing behind it.
pub(super) struct SyncInProgress {
    file: File,
    ident: Option<Ident>,
    file_len: u64,
}

impl SyncInProgress {
    /// Fsyncs the file's data (blocking; without the writer's lock).
    pub(super) fn run(&self, shared: &Shared) -> io::Result<()> {
        sync_data(&self.file, shared)
    }
}

/// `file.sync_data()`, delayed or failed as the tests ask.
fn sync_data(file: &File, shared: &Shared) -> io::Result<()> {
    #[cfg(test)]
    if injected_sync_fault(shared) {
        return Err(io::Error::other("injected fsync failure"));
    }
    #[cfg(not(test))]
    let _ = shared;
    file.sync_data()
}

/// Device and inode: which file a path or handle is.
type Ident = (u64, u64);

fn ident_of(m: &std::fs::Metadata) -> Ident {
    (m.dev(), m.ino())
}

pub(super) type Results = Vec<Option<Result<RecordRef, Failure>>>;

/// Owns the file and the chain state of what is on disk.
pub(super) struct Writer {
    pub(super) path: PathBuf,
    dir: PathBuf,
    rotated: RotatedName,
    rotate_bytes: u64,
    rotate_every: Option<Duration>,
    keep_files: u32,
    keep_days: u32,
    checkpoint_every_records: u64,
    instance: String,
    file: Option<File>,
    /// Which file the writer appends to; compared with the path at every commit.
    ident: Option<Ident>,
    /// Bytes of the active file that hold committed records.
    file_len: u64,
    /// A failed write may have left bytes after `file_len` that must be cut off.
    dirty_tail: bool,
    /// Bytes up to `file_len` were written but not all fsynced yet.
    pub(super) unsynced: bool,
    file_first_seq: u64,
    /// When the active file got its first record (for `rotate_every`).
    file_started: SystemTime,
    next_seq: u64,
    prev: String,
    since_checkpoint: u64,
    records: u64,
    pub(super) last_checkpoint: Instant,
    /// When `reconcile` last found the path, inode and length as the writer left them.
    path_checked: Option<Instant>,
    /// The writer's own records (`reopen`, `retention`) waiting to be written first.
    notices: Vec<Prepared>,
    shared: Arc<Shared>,
}

impl Writer {
    /// Repairs a torn final line, finds the last record (in the active file or the newest
    /// earlier file, whatever its name), and opens the active file.
    pub(super) fn resume(
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
        let mut chain_break = None;
        let (next_seq, prev, unclean) = match last {
            Some(l) => {
                let header = chain::check_line(&l.bytes).map_err(|e| AuditError::Corrupt {
                    path: path.clone(),
                    detail: format!(
                        "last record (byte offset {}) does not verify: {e}",
                        l.offset
                    ),
                })?;
                (header.seq + 1, header.hash, header.kind != "stop")
            }
            None => match newest_earlier_file(&path, &rotated) {
                None => (1, ZERO_HASH.to_owned(), false),
                Some(earlier) => match chain_from(&earlier) {
                    Ok((seq, hash, unclean)) => (seq + 1, hash, unclean),
                    Err(reason) => {
                        let next = highest_seq_in(&earlier).map_or(1, |s| s + 1);
                        tracing::error!(file = %earlier.display(), reason = %reason, next_seq = next,
                            "audit log: cannot chain from the previous file; the new start records the break");
                        chain_break = Some(ChainBreak {
                            file: file_name(&earlier),
                            reason,
                        });
                        (next, ZERO_HASH.to_owned(), true)
                    }
                },
            },
        };

        let file_len = match std::fs::metadata(&path) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
            Err(e) => return Err(io_err(&path, "read")(e)),
        };
        let (file_first_seq, file_started) = if file_len == 0 {
            (next_seq, SystemTime::now())
        } else {
            first_record(&path)?
        };
        let existed = path.exists();
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .open(&path)
            .map_err(io_err(&path, "open for appending"))?;
        let ident = file
            .metadata()
            .map_err(io_err(&path, "stat the active file"))?;
        if !existed {
            fsync_dir(&dir).map_err(io_err(&dir, "fsync the log directory"))?;
        }
        let writer = Writer {
            path,
            dir,
            rotated,
            rotate_bytes: config.rotate_bytes,
            rotate_every: config.rotate_every,
            keep_files: config.keep_files,
            keep_days: config.keep_days,
            checkpoint_every_records: config.checkpoint_every_records,
            instance: config.instance.clone(),
            file: Some(file),
            ident: Some(ident_of(&ident)),
            file_len,
            dirty_tail: false,
            unsynced: false,
            file_first_seq,
            file_started,
            next_seq,
            prev,
            since_checkpoint: 0,
            records: 0,
            last_checkpoint: Instant::now(),
            path_checked: None,
            notices: Vec::new(),
            shared,
        };
        let start = StartBody {
            unclean_previous_stop: unclean || torn_tail.is_some(),
            version: env!("CARGO_PKG_VERSION"),
            pid: std::process::id(),
            torn_tail,
            chain_break,
        };
        Ok((Box::new(writer), start))
    }

    /// Writes the specs in order, fsyncing at the end when `sync`; returns one result per
    /// spec. Records before a failure that were already fsynced (a rotation happened in
    /// between) stay written.
    pub(super) fn commit(
        &mut self,
        specs: &[Spec],
        sync: bool,
        check: PathCheck,
    ) -> Vec<Result<RecordRef, Failure>> {
        let mut results: Results = specs.iter().map(|_| None).collect();
        let outcome = self.commit_inner(specs, sync, check, &mut results);
        let failure = match outcome {
            Ok(()) => None,
            Err(failure) => {
                self.shared.failures.fetch_add(1, Ordering::Relaxed);
                self.rollback();
                Some(failure)
            }
        };
        results
            .into_iter()
            .map(|r| match (r, &failure) {
                (Some(r), _) => r,
                (None, Some(f)) => Err(f.duplicate()),
                (None, None) => Err(Failure::new(
                    "write",
                    io::Error::other("not written (internal error)"),
                )),
            })
            .collect()
    }

    fn commit_inner(
        &mut self,
        specs: &[Spec],
        sync: bool,
        check: PathCheck,
        results: &mut Results,
    ) -> Result<(), Failure> {
        if check == PathCheck::Now || !self.checked_recently() {
            self.reconcile()?;
        }
        let mut seg = Segment {
            buf: Vec::with_capacity(specs.len() * 512),
            staged: Vec::new(),
            next_seq: self.next_seq,
            prev: self.prev.clone(),
            since_checkpoint: self.since_checkpoint,
            notices: 0,
        };
        self.stage_notices(&mut seg, results)?;
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
                    let rec = own_record("start", body, SEVERITY_INFO)?;
                    self.stage(&mut seg, Some(i), &rec, true, results)?;
                }
                Spec::Checkpoint => {
                    let rec = self.checkpoint_record(&seg)?;
                    self.stage(&mut seg, Some(i), &rec, true, results)?;
                }
                Spec::Gap(body) => {
                    let rec = own_record("gap", body, SEVERITY_WARNING)?;
                    self.stage(&mut seg, Some(i), &rec, false, results)?;
                }
                Spec::Stop => {
                    let body = StopBody {
                        records: self.records + seg.staged.len() as u64,
                        failures: self.shared.failures.load(Ordering::Relaxed),
                    };
                    let rec = own_record("stop", &body, SEVERITY_INFO)?;
                    self.stage(&mut seg, Some(i), &rec, false, results)?;
                }
            }
        }
        self.flush(&mut seg, sync, results)
    }

    /// Starts an fsync of records written earlier without one, to run while callers go on
    /// writing (see [`SyncInProgress`]); `None` when every record is fsynced already.
    pub(super) fn begin_sync(&mut self) -> Result<Option<SyncInProgress>, Failure> {
        if !self.unsynced {
            return Ok(None);
        }
        let file = match self.file.as_ref().map(File::try_clone) {
            Some(Ok(file)) => file,
            // No second handle: fsync here, under the lock, as the writer does for batches.
            _ => return self.sync().map(|()| None),
        };
        Ok(Some(SyncInProgress {
            file,
            ident: self.ident,
            file_len: self.file_len,
        }))
    }

    /// Takes the result of an fsync begun with [`Writer::begin_sync`]. Records written while it
    /// ran may not be covered: the file stays unsynced if any were.
    pub(super) fn end_sync(
        &mut self,
        sync: &SyncInProgress,
        result: io::Result<()>,
    ) -> Result<(), Failure> {
        let covered = self.ident == sync.ident && self.file_len == sync.file_len;
        let done = self.sync_done(result);
        if done.is_ok() && covered {
            self.unsynced = false;
        }
        done
    }

    /// Fsyncs records written earlier without one.
    pub(super) fn sync(&mut self) -> Result<(), Failure> {
        if !self.unsynced {
            return Ok(());
        }
        let result = match self.file.as_ref() {
            Some(file) => sync_data(file, &self.shared),
            None => Err(io::Error::new(
                io::ErrorKind::NotFound,
                "the file is not open",
            )),
        };
        let done = self.sync_done(result);
        self.unsynced = false;
        done
    }

    /// Counts an fsync's result; after a failure the handle is dropped (its page-cache state
    /// is unknown) and the failure reported.
    fn sync_done(&mut self, result: io::Result<()>) -> Result<(), Failure> {
        match result {
            Ok(()) => {
                self.shared.commits.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => {
                self.shared.failures.fetch_add(1, Ordering::Relaxed);
                self.rollback();
                self.unsynced = false;
                Err(Failure::new(format!("fsync {}", file_name(&self.path)), e))
            }
        }
    }

    fn checked_recently(&self) -> bool {
        self.file.is_some()
            && !self.dirty_tail
            && self
                .path_checked
                .is_some_and(|at| at.elapsed() < RECENT_CHECK)
    }

    /// Checks the active file before appending: still at the path, same inode, as long as
    /// the writer left it. If it was renamed (logrotate), deleted or truncated, the chain
    /// continues in a new file whose first record (`reopen`) says what happened.
    fn reconcile(&mut self) -> Result<(), Failure> {
        self.path_checked = None;
        self.reconcile_path()?;
        self.path_checked = Some(Instant::now());
        Ok(())
    }

    fn reconcile_path(&mut self) -> Result<(), Failure> {
        let name = file_name(&self.path);
        let at_path = match std::fs::metadata(&self.path) {
            Ok(m) => Some(m),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(Failure::new(format!("stat {name}"), e)),
        };
        let same = matches!((&at_path, self.ident), (Some(m), Some(id)) if ident_of(m) == id);
        if same && let Some(m) = &at_path {
            let len = m.len();
            if len == self.file_len || (len > self.file_len && self.dirty_tail) {
                if self.file.is_none() {
                    let file = OpenOptions::new()
                        .append(true)
                        .open(&self.path)
                        .map_err(|e| Failure::new(format!("open {name}"), e))?;
                    self.file = Some(file);
                }
                if len > self.file_len
                    && let Some(file) = &self.file
                {
                    file.set_len(self.file_len)
                        .and_then(|()| file.sync_all())
                        .map_err(|e| Failure::new(format!("cut a failed write off {name}"), e))?;
                }
                self.dirty_tail = false;
                return Ok(());
            }
            // Someone truncated or appended to the file: set it aside, keep it as evidence.
            let reason = if len < self.file_len {
                "truncated"
            } else {
                "appended"
            };
            let aside = self.rotated.path(self.file_first_seq);
            if aside.exists() {
                return Err(Failure::new(
                    format!("set {name} aside"),
                    io::Error::new(
                        io::ErrorKind::AlreadyExists,
                        format!("{} already exists", aside.display()),
                    ),
                ));
            }
            self.file = None;
            std::fs::rename(&self.path, &aside)
                .map_err(|e| Failure::new(format!("set {name} aside"), e))?;
            tracing::error!(path = %self.path.display(), set_aside = %aside.display(), reason,
                expected_bytes = self.file_len, found_bytes = len,
                "audit log was changed under the writer; set it aside and continue the chain in a new file");
            self.notice_reopen(reason, file_name(&aside), Some(len))?;
        } else {
            let reason = match &self.file {
                Some(file) => match file.metadata() {
                    Ok(m) if m.nlink() == 0 => "deleted",
                    Ok(_) => "renamed",
                    Err(_) => "missing",
                },
                None => "missing",
            };
            if let Some(file) = self.file.take()
                && reason == "renamed"
                && let Err(e) = file.sync_data()
            {
                tracing::warn!(error = %e, "audit log: fsync of the renamed file failed");
            }
            if reason == "renamed" {
                tracing::info!(path = %self.path.display(), last_seq = self.next_seq - 1,
                    "audit log was renamed (log rotation); continuing the chain in a new file");
            } else {
                tracing::error!(path = %self.path.display(), reason,
                    first_lost_seq = self.file_first_seq, last_lost_seq = self.next_seq - 1,
                    "audit log file vanished under the writer; its records are lost; continuing the chain in a new file");
            }
            self.notice_reopen(reason, name, None)?;
        }
        self.open_fresh()
    }

    fn notice_reopen(
        &mut self,
        reason: &'static str,
        file: String,
        found_bytes: Option<u64>,
    ) -> Result<(), Failure> {
        let body = ReopenBody {
            reason,
            file,
            first_seq: self.file_first_seq,
            last_seq: self.next_seq.saturating_sub(1),
            expected_bytes: self.file_len,
            found_bytes,
        };
        self.notices
            .push(own_record("reopen", &body, SEVERITY_WARNING)?);
        Ok(())
    }

    /// Opens (creates) the active file for a new part of the chain. An empty file already
    /// there (logrotate's `create`) is adopted; one holding data is not the writer's.
    fn open_fresh(&mut self) -> Result<(), Failure> {
        let name = file_name(&self.path);
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .open(&self.path)
            .map_err(|e| Failure::new(format!("create {name}"), e))?;
        let meta = file
            .metadata()
            .map_err(|e| Failure::new(format!("stat {name}"), e))?;
        if meta.len() > 0 {
            return Err(Failure::new(
                format!("start a new {name}"),
                io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!(
                        "{} holds {} bytes the writer did not write; move it aside",
                        self.path.display(),
                        meta.len()
                    ),
                ),
            ));
        }
        fsync_dir(&self.dir).map_err(|e| Failure::new("fsync the log directory", e))?;
        self.file = Some(file);
        self.ident = Some(ident_of(&meta));
        self.file_len = 0;
        self.dirty_tail = false;
        self.unsynced = false;
        self.file_first_seq = self.next_seq;
        self.file_started = SystemTime::now();
        Ok(())
    }

    fn checkpoint_record(&self, seg: &Segment) -> Result<Prepared, Failure> {
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
        own_record("checkpoint", &body, severity)
    }

    /// Stages the notices not yet staged.
    fn stage_notices(&mut self, seg: &mut Segment, results: &mut Results) -> Result<(), Failure> {
        while seg.notices < self.notices.len() {
            let rec = self.notices[seg.notices].clone();
            seg.notices += 1;
            self.stage(seg, None, &rec, false, results)?;
        }
        Ok(())
    }

    /// Whether `rec` can be appended now without a rotation or pending notices, with room to
    /// spare for a checkpoint after it: then a caller may commit it on its own thread.
    pub(super) fn takes_without_rotating(&self, records: &[Prepared]) -> bool {
        let room: usize = records
            .iter()
            .map(|rec| rec.body.len() + self.instance.len() + 2048)
            .sum();
        let room = room as u64;
        self.file.is_some()
            && self.notices.is_empty()
            && self.file_len + room <= self.rotate_bytes
            && !self.age_due()
    }

    fn age_due(&self) -> bool {
        self.rotate_every.is_some_and(|every| {
            SystemTime::now()
                .duration_since(self.file_started)
                .is_ok_and(|age| age >= every)
        })
    }

    /// Renders one record onto the segment, rotating first when it would not fit or the
    /// active file is older than `rotate_every`.
    fn stage(
        &mut self,
        seg: &mut Segment,
        spec: Option<usize>,
        rec: &Prepared,
        checkpoint: bool,
        results: &mut Results,
    ) -> Result<(), Failure> {
        let render = |seg: &Segment| {
            chain::render(
                &Envelope {
                    seq: seg.next_seq,
                    time: &rec.time,
                    instance: &self.instance,
                    kind: rec.kind,
                    prev: &seg.prev,
                },
                &rec.body,
            )
        };
        let (mut line, mut hash) = render(seg);
        let pending = self.file_len + seg.buf.len() as u64;
        if pending > 0 && (pending + line.len() as u64 > self.rotate_bytes || self.age_due()) {
            self.flush(seg, true, results)?;
            self.rotate()?;
            self.stage_notices(seg, results)?;
            (line, hash) = chain::render(
                &Envelope {
                    seq: seg.next_seq,
                    time: &rec.time,
                    instance: &self.instance,
                    kind: rec.kind,
                    prev: &seg.prev,
                },
                &rec.body,
            );
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
        results: &mut Results,
    ) -> Result<(), Failure> {
        // Named only when something fails: a flush runs once per call.
        let name = || file_name(&self.path);
        let file = self.file.as_mut().ok_or_else(|| {
            Failure::new(
                format!("write to {}", name()),
                io::Error::new(io::ErrorKind::NotFound, "the file is not open"),
            )
        })?;
        if !seg.buf.is_empty() || (sync && self.unsynced) {
            self.dirty_tail = true;
            #[cfg(test)]
            if take_fault(&self.shared.faults.fail_write) {
                let _ = file.write_all(&seg.buf[..seg.buf.len() / 2]);
                return Err(Failure::new(
                    format!("write to {}", name()),
                    io::Error::other("injected write failure"),
                ));
            }
            file.write_all(&seg.buf)
                .map_err(|e| Failure::new(format!("write to {}", name()), e))?;
            #[cfg(test)]
            self.shared.writes.fetch_add(1, Ordering::Relaxed);
            if sync {
                sync_data(file, &self.shared)
                    .map_err(|e| Failure::new(format!("fsync {}", name()), e))?;
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
        self.notices.drain(..seg.notices);
        seg.notices = 0;
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

    /// Renames the full active file to its rotated name, starts a new one, and applies
    /// retention.
    fn rotate(&mut self) -> Result<(), Failure> {
        let target = self.rotated.path(self.file_first_seq);
        let op = format!("rotate {} to {}", file_name(&self.path), file_name(&target));
        if target.exists() {
            return Err(Failure::new(
                op,
                io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!(
                        "{} already exists and is never overwritten",
                        target.display()
                    ),
                ),
            ));
        }
        self.file = None;
        std::fs::rename(&self.path, &target).map_err(|e| Failure::new(op, e))?;
        self.file_len = 0;
        fsync_dir(&self.dir).map_err(|e| Failure::new("fsync the log directory", e))?;
        self.open_fresh()?;
        let (removed, oldest_kept) = apply_retention(
            &self.rotated,
            self.keep_files,
            self.keep_days,
            SystemTime::now(),
        );
        if !removed.is_empty() {
            let body = RetentionBody {
                removed,
                oldest_kept_seq: oldest_kept.unwrap_or(self.file_first_seq),
                keep_files: self.keep_files,
                keep_days: self.keep_days,
            };
            self.notices
                .push(own_record("retention", &body, SEVERITY_INFO)?);
        }
        Ok(())
    }

    /// Closes the file so that the next commit reopens it (SIGUSR1: the reopen happens at
    /// once if the file was renamed; otherwise the same file is opened again).
    pub(super) fn reopen_now(&mut self) -> Result<bool, Failure> {
        let before = self.ident;
        let mut results: Results = Vec::new();
        let mut seg = Segment {
            buf: Vec::new(),
            staged: Vec::new(),
            next_seq: self.next_seq,
            prev: self.prev.clone(),
            since_checkpoint: self.since_checkpoint,
            notices: 0,
        };
        let outcome = self
            .reconcile()
            .and_then(|()| self.stage_notices(&mut seg, &mut results))
            .and_then(|()| self.flush(&mut seg, true, &mut results));
        if let Err(failure) = outcome {
            self.shared.failures.fetch_add(1, Ordering::Relaxed);
            self.rollback();
            return Err(failure);
        }
        Ok(self.ident != before)
    }

    /// After a failed write or fsync: cut partial bytes off and drop the handle, whose
    /// page-cache state is unknown after an fsync error; the next attempt reopens.
    fn rollback(&mut self) {
        self.path_checked = None;
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

fn own_record<T: serde::Serialize>(
    kind: &'static str,
    body: &T,
    severity: u8,
) -> Result<Prepared, Failure> {
    Prepared::body(kind, body, severity).map_err(|e| {
        Failure::new(
            format!("encode a {kind} record"),
            io::Error::new(io::ErrorKind::InvalidData, e.to_string()),
        )
    })
}

/// The newest file of the log other than the active one (built-in rotated names and
/// logrotate's), by the seq of its first record.
fn newest_earlier_file(active: &Path, rotated: &RotatedName) -> Option<PathBuf> {
    let mut candidates: Vec<(u64, PathBuf)> = rotated.list().unwrap_or_default();
    if let Ok(set) = log_set(active) {
        for p in set.into_iter().filter(|p| p != active) {
            if let Some(seq) = first_seq_of(&p)
                && !candidates.iter().any(|(_, c)| c == &p)
            {
                candidates.push((seq, p));
            }
        }
    }
    candidates.into_iter().max().map(|(_, p)| p)
}

/// The last record of an earlier file: its seq, hash and whether it was not a `stop`; the
/// error says why the chain cannot continue from it.
fn chain_from(path: &Path) -> Result<(u64, String, bool), String> {
    match reader::last_line(path) {
        Err(e) => Err(format!("cannot read it: {e}")),
        Ok(None) => Err("it is empty".into()),
        Ok(Some(l)) if !l.complete => Err("it ends in an incomplete line".into()),
        Ok(Some(l)) => chain::check_line(&l.bytes)
            .map(|h| (h.seq, h.hash, h.kind != "stop"))
            .map_err(|e| format!("its last record does not verify: {e}")),
    }
}

pub(super) fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The seq and time of a file's first record.
fn first_record(path: &Path) -> Result<(u64, SystemTime), AuditError> {
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
            .map(|h| {
                let started = super::query::parse_time(&h.time)
                    .map(SystemTime::from)
                    .unwrap_or_else(|_| SystemTime::now());
                (h.seq, started)
            })
            .map_err(|e| corrupt(format!("first record does not verify: {e}"))),
        Ok(_) => Err(corrupt("first line is not a complete record".into())),
        Err(source) => Err(AuditError::Io {
            path: path.to_path_buf(),
            op: "read",
            source,
        }),
    }
}

/// Delays an fsync as the tests ask; whether it is to fail.
#[cfg(test)]
fn injected_sync_fault(shared: &Shared) -> bool {
    let slow = shared.faults.slow_sync_ms.load(Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(slow));
    take_fault(&shared.faults.fail_sync)
}

#[cfg(test)]
fn take_fault(counter: &std::sync::atomic::AtomicU32) -> bool {
    counter
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}
