//! `verify`: checks every record's hash, every `prev` link and `seq` continuity.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::chain::{Header, ZERO_HASH, check_line};
use super::reader::{Line, Lines, MAX_LINE};

const MAX_NOTES: usize = 100;

/// What is wrong at the first broken place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    /// A record's content no longer matches its hash, or its link was rewritten.
    Edited,
    /// Records are missing inside a file (a `seq` gap).
    Missing,
    /// Records are out of order or duplicated.
    Reordered,
    /// A file ends in an incomplete line.
    Truncated,
    /// A whole file is missing between two files (the gap is at a file boundary).
    MissingFile,
    /// A file cannot be read.
    Unreadable,
    /// A start could not chain from the previous file (its `chain_break` says why).
    ChainBreak,
    /// The gateway dropped records while the log could not be written (a `gap` record).
    Dropped,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Problem::Edited => "edited",
            Problem::Missing => "missing records",
            Problem::Reordered => "reordered",
            Problem::Truncated => "truncated",
            Problem::MissingFile => "missing file",
            Problem::Unreadable => "unreadable",
            Problem::ChainBreak => "chain break",
            Problem::Dropped => "records dropped",
        })
    }
}

/// The first broken place in the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyFailure {
    /// The file holding it.
    pub file: PathBuf,
    /// 1-based line number (0 when the file cannot be opened).
    pub line: u64,
    /// The kind of damage.
    pub problem: Problem,
    /// A sentence for the reviewer.
    pub detail: String,
}

impl fmt::Display for VerifyFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: {}: {}",
            self.file.display(),
            self.line,
            self.problem,
            self.detail
        )
    }
}

/// The result of [`verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Whether the whole chain verified.
    pub ok: bool,
    /// Records verified (up to the first broken place).
    pub records: u64,
    /// The first broken place, if any.
    pub failure: Option<VerifyFailure>,
    /// Observations that are not failures (unclean stops, a chain starting after seq 1,
    /// the log ending without a `stop` record).
    pub notes: Vec<String>,
    /// Whether the last record is a `stop`.
    pub ends_with_stop: bool,
    /// Time of the last checkpoint record, if any.
    pub last_checkpoint: Option<String>,
    /// Every break found ([`verify_set`] goes on past gaps; [`verify`] stops at the first).
    pub breaks: Vec<VerifyFailure>,
    /// Records verified before the first break.
    pub records_before_failure: u64,
}

impl VerifyReport {
    /// The last line: exactly `N records, chain intact` on success.
    pub fn summary(&self) -> String {
        match &self.failure {
            None => format!("{} records, chain intact", self.records),
            Some(f) if self.breaks.len() > 1 => format!(
                "FAILED: {f} ({} records verified before it; {} breaks, {} records checked in all)",
                self.records_before_failure,
                self.breaks.len(),
                self.records
            ),
            Some(f) => format!(
                "FAILED: {f} ({} records verified before it)",
                self.records_before_failure
            ),
        }
    }

    /// Process exit status for the CLI: 0 intact, 1 broken.
    pub fn exit_code(&self) -> i32 {
        if self.ok { 0 } else { 1 }
    }
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for note in &self.notes {
            writeln!(f, "note: {note}")?;
        }
        if self.breaks.len() > 1 {
            for b in &self.breaks {
                writeln!(f, "break: {b}")?;
            }
        }
        writeln!(f, "{}", self.summary())
    }
}

struct Last {
    seq: u64,
    hash: String,
    kind: String,
    time: String,
    file: usize,
    line: u64,
}

#[derive(Default)]
struct Verifier {
    last: Option<Last>,
    records: u64,
    notes: Vec<String>,
    dropped_notes: usize,
    last_checkpoint: Option<(u64, String)>,
    noted_failures: u64,
    /// Go on past gaps, chain breaks and unreadable files ([`verify_set`]).
    resume: bool,
    breaks: Vec<VerifyFailure>,
    records_before_failure: Option<u64>,
}

/// Checks the files in order as one chain and reports the first broken place.
pub fn verify(files: &[PathBuf]) -> VerifyReport {
    let mut v = Verifier::default();
    let mut failure = None;
    for index in 0..files.len() {
        if let Err(f) = v.file(files, index) {
            failure = Some(f);
            break;
        }
    }
    v.finish(files, failure)
}

/// Checks the files of one log (as found by [`log_set`](super::log_set)) in order as one
/// chain, and goes on past every gap it can explain or survive: missing records or files
/// (also across restarts and reopens), starts that could not chain, dropped records,
/// unreadable or torn files. Edited or reordered records still end the check. `ok` is
/// false on any break; `breaks` lists them all.
pub fn verify_set(files: &[PathBuf]) -> VerifyReport {
    let mut v = Verifier {
        resume: true,
        ..Verifier::default()
    };
    let mut failure = None;
    for index in 0..files.len() {
        if let Err(f) = v.file(files, index) {
            failure = Some(f);
            break;
        }
    }
    v.finish(files, failure)
}

impl Verifier {
    /// A break the check can go on after (in `resume` mode); otherwise it ends the check.
    fn gap(&mut self, f: VerifyFailure) -> Result<(), VerifyFailure> {
        if self.resume {
            self.records_before_failure.get_or_insert(self.records);
            self.breaks.push(f);
            Ok(())
        } else {
            Err(f)
        }
    }

    fn note(&mut self, note: String) {
        if self.notes.len() < MAX_NOTES {
            self.notes.push(note);
        } else {
            self.dropped_notes += 1;
        }
    }

    fn file(&mut self, files: &[PathBuf], index: usize) -> Result<(), VerifyFailure> {
        let path = &files[index];
        let fail = |line: u64, problem: Problem, detail: String| VerifyFailure {
            file: path.clone(),
            line,
            problem,
            detail,
        };
        let mut lines = match Lines::open(path) {
            Ok(lines) => lines,
            Err(e) => return self.gap(fail(0, Problem::Unreadable, format!("cannot open: {e}"))),
        };
        let mut first_in_file = true;
        loop {
            let line = match lines.next_line() {
                Ok(None) => break,
                Ok(Some(line)) => line,
                Err(e) => {
                    return self.gap(fail(
                        lines.line_no + 1,
                        Problem::Unreadable,
                        format!("cannot read: {e}"),
                    ));
                }
            };
            let no = lines.line_no;
            match line {
                Line::Complete => {}
                Line::Torn => {
                    return self.gap(fail(
                        no,
                        Problem::Truncated,
                        format!(
                            "the file ends in an incomplete line ({} bytes without a newline)",
                            lines.buf.len()
                        ),
                    ));
                }
                Line::TooLong => {
                    return Err(fail(
                        no,
                        Problem::Edited,
                        format!("line longer than {MAX_LINE} bytes: not a record"),
                    ));
                }
            }
            let h = check_line(&lines.buf)
                .map_err(|d| fail(no, Problem::Edited, format!("not a valid record: {d}")))?;
            // A `reopen` record after the active file was deleted or truncated explains the
            // gap before it.
            let lost_file = h
                .note
                .as_ref()
                .filter(|_| h.kind == "reopen")
                .and_then(|n| n.reason.clone())
                .filter(|r| r != "renamed");
            let resumable = if let Some((file, reason)) = &h.chain_break {
                Some(fail(
                    no,
                    Problem::ChainBreak,
                    format!(
                        "the gateway started at seq {} without chaining to the previous file                          ({file}: {reason}); records after that file's last readable one may                          be missing",
                        h.seq
                    ),
                ))
            } else {
                match &self.last {
                    None if h.seq == 1 => {
                        if h.prev != ZERO_HASH {
                            return Err(fail(
                                no,
                                Problem::Edited,
                                "the first record (seq 1) must have `prev` all zeros".into(),
                            ));
                        }
                        None
                    }
                    None => match &lost_file {
                        Some(reason) => Some(fail(
                            no,
                            Problem::MissingFile,
                            format!(
                                "the chain starts at seq {} with a `reopen` record: the gateway                                  found its active file {reason}, so records before it are lost",
                                h.seq
                            ),
                        )),
                        None => {
                            self.note(format!(
                                "the chain starts at seq {} ({}:{no}); earlier records are not                                  among the files given (removed by retention?), so its `prev`                                  cannot be checked",
                                h.seq,
                                path.display()
                            ));
                            None
                        }
                    },
                    Some(last) => {
                        let expected = last.seq + 1;
                        let at_last = format!("{}:{}", files[last.file].display(), last.line);
                        if h.seq == expected {
                            if h.prev != last.hash {
                                return Err(fail(
                                    no,
                                    Problem::Edited,
                                    format!(
                                        "`prev` does not match the hash of the record before it                                          (seq {} at {at_last}): one of them was replaced",
                                        last.seq
                                    ),
                                ));
                            }
                            None
                        } else if h.seq > expected {
                            if let Some((f, l, seq)) =
                                find_later(&mut lines, &files[index + 1..], expected..h.seq)
                            {
                                let f = f.unwrap_or_else(|| path.clone());
                                return Err(fail(
                                    no,
                                    Problem::Reordered,
                                    format!(
                                        "seq jumps from {} to {}, and seq {seq} appears later at {}:{l}",
                                        last.seq,
                                        h.seq,
                                        f.display()
                                    ),
                                ));
                            }
                            let gap = h.seq - expected;
                            Some(if let Some(reason) = &lost_file {
                                fail(
                                    no,
                                    Problem::MissingFile,
                                    format!(
                                        "seq jumps from {} ({at_last}) to {}: the `reopen` record                                          here says the gateway found its active file {reason};                                          {gap} records are lost",
                                        last.seq, h.seq
                                    ),
                                )
                            } else if first_in_file && last.file != index {
                                fail(
                                    no,
                                    Problem::MissingFile,
                                    format!(
                                        "the file starts at seq {} but the previous file ends at seq {} \
                                         ({at_last}): {gap} records between the files are missing \
                                         (a rotated file was removed?)",
                                        h.seq, last.seq
                                    ),
                                )
                            } else {
                                fail(
                                    no,
                                    Problem::Missing,
                                    format!(
                                        "seq jumps from {} ({at_last}) to {}: {gap} record{} missing",
                                        last.seq,
                                        h.seq,
                                        if gap == 1 { " is" } else { "s are" }
                                    ),
                                )
                            })
                        } else if h.seq == last.seq && h.hash == last.hash {
                            return Err(fail(
                                no,
                                Problem::Reordered,
                                format!("duplicate of the record at {at_last}"),
                            ));
                        } else {
                            return Err(fail(
                                no,
                                Problem::Reordered,
                                format!(
                                    "seq goes backwards from {} ({at_last}) to {}",
                                    last.seq, h.seq
                                ),
                            ));
                        }
                    }
                }
            };
            if let Some(f) = resumable {
                self.gap(f)?;
            }
            first_in_file = false;
            if let Some(f) = self.observe(path, no, &h) {
                self.gap(f)?;
            }
            self.records += 1;
            self.last = Some(Last {
                seq: h.seq,
                hash: h.hash,
                kind: h.kind,
                time: h.time,
                file: index,
                line: no,
            });
        }
        if first_in_file {
            self.note(format!("{} is empty", path.display()));
        }
        Ok(())
    }

    /// Notes what a record tells the reviewer; a `gap` record is a break.
    fn observe(&mut self, path: &Path, line: u64, h: &Header) -> Option<VerifyFailure> {
        let note = h.note.clone().unwrap_or_default();
        match h.kind.as_str() {
            "gap" => {
                return Some(VerifyFailure {
                    file: path.to_path_buf(),
                    line,
                    problem: Problem::Dropped,
                    detail: format!(
                        "the gateway dropped {} records submitted between {} and {} because \
                         the log could not be written ({})",
                        note.lost.unwrap_or(0),
                        note.from.as_deref().unwrap_or("?"),
                        note.until.as_deref().unwrap_or("?"),
                        note.reason.as_deref().unwrap_or("no reason given")
                    ),
                });
            }
            "reopen" => self.note(format!(
                "the gateway found its active file {} at seq {} ({}:{line}) and continued the \
                 chain in a new file (the old one held seq {} to {}: {})",
                note.reason.as_deref().unwrap_or("changed"),
                h.seq,
                path.display(),
                note.first_seq.unwrap_or(0),
                note.last_seq.unwrap_or(0),
                if note.reason.as_deref() == Some("renamed") {
                    "rotated by an outside tool"
                } else {
                    "its records are lost unless a copy exists"
                }
            )),
            "retention" => self.note(format!(
                "retention at seq {} ({}:{line}) removed {}",
                h.seq,
                path.display(),
                note.removed.join(", ")
            )),
            "start" => {
                self.noted_failures = 0;
                if h.unclean_previous_stop {
                    self.note(format!(
                        "unclean stop before seq {}: the gateway did not close the log \
                         (crash or kill); restarted at {} ({}:{line})",
                        h.seq,
                        h.time,
                        path.display()
                    ));
                }
                if let Some((file, bytes)) = &h.torn_tail {
                    self.note(format!(
                        "the start at {}:{line} removed an incomplete final line of {file} \
                         ({bytes} bytes) left by the crash",
                        path.display()
                    ));
                }
            }
            "checkpoint" => {
                self.last_checkpoint = Some((h.seq, h.time.clone()));
                let failures = h.failures.unwrap_or(0);
                if failures > self.noted_failures {
                    self.noted_failures = failures;
                    self.note(format!(
                        "checkpoint seq {} at {}: {failures} failed write attempts since \
                         the start (records refused or retried meanwhile)",
                        h.seq, h.time
                    ));
                }
            }
            _ => {}
        }
        None
    }

    fn finish(mut self, files: &[PathBuf], failure: Option<VerifyFailure>) -> VerifyReport {
        let ends_with_stop = self.last.as_ref().is_some_and(|l| l.kind == "stop");
        if failure.is_none()
            && let Some(last) = &self.last
            && !ends_with_stop
        {
            let checkpoint = match &self.last_checkpoint {
                Some((seq, time)) => format!("{time} (seq {seq})"),
                None => "never".into(),
            };
            let note = format!(
                "ends without a stop record; last checkpoint at {checkpoint}; last record \
                         seq {} at {} ({}:{}). A running gateway's active file ends like this; \
                         otherwise compare the last checkpoint with the wall clock and the \
                         checkpoint interval: records after it may have been cut off",
                last.seq,
                last.time,
                files[last.file].display(),
                last.line
            );
            self.note(note);
        }
        if self.dropped_notes > 0 {
            self.notes
                .push(format!("... and {} more notes", self.dropped_notes));
        }
        let records_before_failure = self.records_before_failure.unwrap_or(self.records);
        let mut breaks = self.breaks;
        if let Some(f) = failure {
            breaks.push(f);
        }
        VerifyReport {
            ok: breaks.is_empty(),
            records: self.records,
            failure: breaks.first().cloned(),
            notes: self.notes,
            ends_with_stop,
            last_checkpoint: self.last_checkpoint.map(|(_, t)| t),
            breaks,
            records_before_failure,
        }
    }
}

#[derive(Deserialize)]
struct SeqOnly {
    seq: u64,
}

/// Looks ahead (rest of the current file, then the later files) for a record whose seq
/// lies in `wanted`; the returned path is `None` for the current file.
fn find_later(
    current: &mut Lines,
    later: &[PathBuf],
    wanted: Range<u64>,
) -> Option<(Option<PathBuf>, u64, u64)> {
    let scan = |lines: &mut Lines| -> Option<(u64, u64)> {
        while let Ok(Some(line)) = lines.next_line() {
            if matches!(line, Line::Complete)
                && let Ok(r) = serde_json::from_slice::<SeqOnly>(&lines.buf)
                && wanted.contains(&r.seq)
            {
                return Some((lines.line_no, r.seq));
            }
        }
        None
    };
    if let Some((line, seq)) = scan(current) {
        return Some((None, line, seq));
    }
    for path in later {
        if let Ok(mut lines) = Lines::open(path)
            && let Some((line, seq)) = scan(&mut lines)
        {
            return Some((Some(path.clone()), line, seq));
        }
    }
    None
}
