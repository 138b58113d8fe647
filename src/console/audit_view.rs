//! The console's audit review: the most recent records of the gateway's own log that match a
//! filter (user, host, action, decision, time), and the chain status of the log.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::path::Path;

use serde_json::Value;

use crate::audit::{QueryFilter, log_set, parse_time, query, verify_set};

/// Most records a page shows.
pub(crate) const PAGE_RECORDS: usize = 200;

/// The filter as typed into the form (empty fields are no filter).
#[derive(Debug, Default, Clone)]
pub(crate) struct AuditForm {
    /// Principal contains this.
    pub(crate) user: String,
    /// Target moId.
    pub(crate) host: String,
    /// vim method.
    pub(crate) action: String,
    /// allow, deny or would-deny.
    pub(crate) decision: String,
    /// RFC 3339 or `YYYY-MM-DDTHH:MM` (UTC) lower bound.
    pub(crate) since: String,
    /// Upper bound, same forms.
    pub(crate) until: String,
}

impl AuditForm {
    /// The form's values from a query string's pairs.
    pub(crate) fn from_pairs(pairs: &[(String, String)]) -> Self {
        let get = |name: &str| {
            super::reply::field(pairs, name)
                .unwrap_or_default()
                .trim()
                .to_owned()
        };
        Self {
            user: get("user"),
            host: get("host"),
            action: get("action"),
            decision: get("decision"),
            since: get("since"),
            until: get("until"),
        }
    }

    /// The audit query filter, or why a field is unusable.
    pub(crate) fn filter(&self) -> Result<QueryFilter, String> {
        let text = |s: &String| (!s.is_empty()).then(|| s.clone());
        let time = |s: &String, name: &str| -> Result<_, String> {
            if s.is_empty() {
                return Ok(None);
            }
            // `<input type="datetime-local">` sends `2026-11-23T08:00`: read it as UTC.
            let full = match s.len() {
                16 => format!("{s}:00Z"),
                19 => format!("{s}Z"),
                _ => s.clone(),
            };
            parse_time(&full)
                .map(Some)
                .map_err(|_| format!("{name}: {s:?} is not a time such as 2026-11-23T08:00 (UTC)"))
        };
        Ok(QueryFilter {
            since: time(&self.since, "from")?,
            until: time(&self.until, "until")?,
            user: text(&self.user),
            method: text(&self.action),
            host: text(&self.host),
            decision: match self.decision.as_str() {
                "" => None,
                d => Some(
                    d.parse()
                        .map_err(|e: crate::audit::UnknownDecision| e.to_string())?,
                ),
            },
            ticket: None,
        })
    }
}

/// What the audit page shows.
pub(crate) struct AuditPage {
    /// The most recent matching records, newest first.
    pub(crate) records: Vec<Value>,
    /// How many records matched in all.
    pub(crate) matched: u64,
    /// Whether the chain verifies, and the verifier's summary.
    pub(crate) chain: (bool, String),
    /// How many files the log has.
    pub(crate) files: usize,
}

/// Keeps the last lines written to it.
struct LastLines {
    keep: usize,
    lines: VecDeque<Vec<u8>>,
    partial: Vec<u8>,
}

impl Write for LastLines {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        for &b in buf {
            if b == b'\n' {
                let line = std::mem::take(&mut self.partial);
                if self.lines.len() == self.keep {
                    self.lines.pop_front();
                }
                self.lines.push_back(line);
            } else {
                self.partial.push(b);
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Reads the log of `active` (with its rotated files) for `filter` (blocking: run it off the
/// async threads).
pub(crate) fn load(active: &Path, filter: &QueryFilter) -> Result<AuditPage, String> {
    let files = log_set(active).map_err(|e| e.to_string())?;
    let mut sink = LastLines {
        keep: PAGE_RECORDS,
        lines: VecDeque::new(),
        partial: Vec::new(),
    };
    let matched = query(&files, filter, &mut sink, true).map_err(|e| e.to_string())?;
    let records = sink
        .lines
        .iter()
        .rev()
        .filter_map(|line| serde_json::from_slice(line).ok())
        .collect();
    let report = verify_set(&files);
    Ok(AuditPage {
        records,
        matched,
        chain: (report.ok, report.summary()),
        files: files.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_times_are_utc_and_bad_ones_are_explained() {
        let form = AuditForm {
            since: "2026-11-23T08:00".into(),
            decision: "deny".into(),
            ..AuditForm::default()
        };
        let filter = form.filter().expect("valid");
        assert!(filter.since.is_some());
        assert!(filter.decision.is_some());
        let bad = AuditForm {
            until: "yesterday".into(),
            ..AuditForm::default()
        };
        assert!(bad.filter().expect_err("invalid").contains("until"));
    }

    #[test]
    fn only_the_last_lines_are_kept() {
        let mut sink = LastLines {
            keep: 2,
            lines: VecDeque::new(),
            partial: Vec::new(),
        };
        sink.write_all(b"1\n2\n3\n").expect("write");
        assert_eq!(sink.lines, [b"2".to_vec(), b"3".to_vec()]);
    }
}
