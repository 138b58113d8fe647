//! Tamper-evident audit log: every call through the gateway, chained by SHA-256.
//!
//! The gateway builds [`AuditEvent`]s and hands them to an [`AuditLog`]: decisions on
//! guarded calls with [`AuditLog::write_durable`] (on disk before forwarding), outcomes
//! with [`AuditLog::write_committed`] or [`AuditLog::write`]. One writer task batches,
//! fsyncs and rotates; a caller waiting for its outcome usually writes it itself. The
//! review side ([`verify`], [`query`], [`tail`]) reads the files. The record format is
//! specified in `docs/AUDIT_FORMAT.md`.

mod call_json;
mod chain;
mod file;
mod files;
mod health;
mod outcome_write;
mod query;
mod reader;
mod record;
mod redact;
mod signal;
mod syslog;
mod task;
mod turn;
mod verify;
mod writer;

#[cfg(test)]
mod tests;

use std::io;
use std::path::PathBuf;

pub use files::log_set;
pub use health::{Health, OnFull};
pub use outcome_write::OutcomeWrite;
pub use query::{DecisionFilter, QueryFilter, UnknownDecision, parse_time, query, tail};
pub use reader::log_files;
pub use record::{
    ApprovalRecord, AuditEvent, CallRecord, ClaimRecord, KeyedHash, OutcomeRecord, ReloadRecord,
    TicketKind, TicketRef, Verdict,
};
pub use redact::{
    DEFAULT_REDACTED_HEADERS, KEYED_HASH_HEX_CHARS, MIN_HMAC_KEY_BYTES, Redactor, redact_headers,
};
pub use signal::reopen_on_sigusr1;
pub use syslog::{SyslogConfig, SyslogSender, spawn_syslog};
pub use turn::CallInProgress;
pub use verify::{Problem, VerifyFailure, VerifyReport, verify, verify_set};
pub use writer::{
    AuditConfig, AuditLog, AuditTask, DEFAULT_CHECKPOINT_EVERY, DEFAULT_CHECKPOINT_EVERY_RECORDS,
    DEFAULT_QUEUE_CAPACITY, DEFAULT_ROTATE_BYTES, DEFAULT_ROTATED_NAME, DEFAULT_SYNC_EVERY,
    RecordRef,
};

/// Errors of the audit log.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// A configuration value is unusable.
    #[error("audit configuration: {0}")]
    Config(String),
    /// A file or directory could not be used.
    #[error("audit log {}: cannot {op}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was attempted.
        op: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The existing log does not verify where the writer would continue it.
    #[error(
        "audit log {}: {detail}; refusing to append (check it with `vcguard audit verify`, \
         move the damaged file aside, then start again)", path.display()
    )]
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The record is not on disk: the write, fsync, rotation or reopen failed.
    #[error("audit record not written to {}: cannot {op}: {source}", path.display())]
    WriteFailed {
        /// The active file.
        path: PathBuf,
        /// What was attempted, e.g. `write to audit.jsonl`.
        op: String,
        /// The I/O error (its kind tells disk-full from other faults).
        #[source]
        source: io::Error,
    },
    /// The log is failing and the writer is backing off: refused without an attempt.
    #[error("audit log {} cannot be written since {since}: {source}", path.display())]
    Unavailable {
        /// The active file.
        path: PathBuf,
        /// When the log started failing (RFC 3339).
        since: String,
        /// The last write error.
        #[source]
        source: io::Error,
    },
    /// The log is failing and its queue is full: the record was dropped (counted, and
    /// reported in a `gap` record once the log can be written again).
    #[error("audit record dropped: {} is failing and its queue is full: {source}", path.display())]
    Dropped {
        /// The active file.
        path: PathBuf,
        /// The last write error.
        #[source]
        source: io::Error,
    },
    /// The log was closed.
    #[error("audit log is closed")]
    Closed,
    /// The writer task ended unexpectedly.
    #[error("audit writer task ended: {0}")]
    WriterGone(String),
    /// A record could not be serialised.
    #[error("audit record cannot be encoded: {0}")]
    Encode(String),
    /// A time filter is not RFC 3339.
    #[error("invalid time {0:?}: expected RFC 3339, e.g. 2025-11-23T08:00:00Z")]
    Time(String),
    /// Writing the review output failed.
    #[error("cannot write output: {0}")]
    Output(#[source] io::Error),
}
