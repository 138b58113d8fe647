//! `query` and `tail`: the reviewer's view of the log, as a table or raw JSON lines.

use std::borrow::Cow;
use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::AuditError;
use super::chain::encode_str;
use super::reader::{Line, Lines, last_lines};
use super::record::format_time;

const TAIL_POLL: Duration = Duration::from_millis(200);

/// Which decisions a query keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecisionFilter {
    /// `decision: allow` (including would-deny records, which were allowed).
    Allow,
    /// `decision: deny`.
    Deny,
    /// `decision: allow` with a non-empty `monitor` list.
    WouldDeny,
}

/// A `--decision` value that is not `allow`, `deny` or `would-deny`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown decision {0:?}: expected allow, deny or would-deny")]
pub struct UnknownDecision(pub String);

impl FromStr for DecisionFilter {
    type Err = UnknownDecision;

    fn from_str(s: &str) -> Result<Self, UnknownDecision> {
        match s {
            "allow" => Ok(DecisionFilter::Allow),
            "deny" => Ok(DecisionFilter::Deny),
            "would-deny" | "would_deny" => Ok(DecisionFilter::WouldDeny),
            other => Err(UnknownDecision(other.to_owned())),
        }
    }
}

/// What `query` keeps; every set field must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryFilter {
    /// Records at or after this time.
    pub since: Option<OffsetDateTime>,
    /// Records before this time.
    pub until: Option<OffsetDateTime>,
    /// Principal contains this, ignoring case.
    pub user: Option<String>,
    /// vim method equals this, ignoring ASCII case.
    pub method: Option<String>,
    /// Managed object id (`mo_id`) equals this.
    pub host: Option<String>,
    /// Decision is this.
    pub decision: Option<DecisionFilter>,
    /// Ticket id equals this.
    pub ticket: Option<String>,
}

/// Parses an RFC 3339 time for `since` / `until`.
pub fn parse_time(s: &str) -> Result<OffsetDateTime, AuditError> {
    OffsetDateTime::parse(s, &Rfc3339).map_err(|_| AuditError::Time(s.to_owned()))
}

#[derive(Deserialize)]
struct TicketView<'a> {
    #[serde(borrow)]
    id: Option<Cow<'a, str>>,
}

/// The fields the table and the filters need, borrowed from the line where possible.
#[derive(Deserialize)]
struct View<'a> {
    seq: Option<u64>,
    #[serde(borrow)]
    time: Option<Cow<'a, str>>,
    #[serde(borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    decision: Option<Cow<'a, str>>,
    #[serde(borrow)]
    principal: Option<Cow<'a, str>>,
    #[serde(borrow)]
    method: Option<Cow<'a, str>>,
    #[serde(borrow)]
    mo_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    ticket: Option<TicketView<'a>>,
    #[serde(borrow, default)]
    monitor: Vec<Cow<'a, str>>,
    #[serde(borrow, default)]
    policies: Vec<Cow<'a, str>>,
    #[serde(borrow)]
    reason: Option<Cow<'a, str>>,
    status: Option<u64>,
    #[serde(borrow)]
    fault: Option<Cow<'a, str>>,
    #[serde(borrow)]
    error: Option<Cow<'a, str>>,
    #[serde(borrow)]
    task: Option<Cow<'a, str>>,
    ok: Option<bool>,
    #[serde(borrow, default)]
    errors: Vec<Cow<'a, str>>,
    #[serde(borrow)]
    old_hash: Option<Cow<'a, str>>,
    #[serde(borrow)]
    new_hash: Option<Cow<'a, str>>,
    unclean_previous_stop: Option<bool>,
    #[serde(borrow)]
    event: Option<Cow<'a, str>>,
    #[serde(borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    summary: Option<Cow<'a, str>>,
    #[serde(borrow)]
    by: Option<Cow<'a, str>>,
    #[serde(borrow)]
    ticket_id: Option<Cow<'a, str>>,
    records: Option<u64>,
    failures: Option<u64>,
}

/// A filter prepared for fast matching.
struct Matcher {
    since: Option<String>,
    until: Option<String>,
    user: Option<String>,
    method: Option<String>,
    host: Option<String>,
    decision: Option<DecisionFilter>,
    ticket: Option<String>,
    /// Substrings a matching line must contain (checked before parsing).
    needles: Vec<String>,
    /// ASCII substrings a matching line must contain, ignoring ASCII case.
    folded_needles: Vec<String>,
}

/// The JSON-escaped form of `s` without quotes, ASCII-lowercased; `None` unless ASCII.
fn folded_needle(s: &str) -> Option<String> {
    if !s.is_ascii() {
        return None;
    }
    let quoted = json_str(&s.to_ascii_lowercase());
    quoted
        .strip_prefix('"')
        .and_then(|q| q.strip_suffix('"'))
        .map(str::to_owned)
}

fn json_str(s: &str) -> String {
    let mut out = Vec::new();
    encode_str(s, &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

impl Matcher {
    fn new(f: &QueryFilter) -> Matcher {
        let mut needles = Vec::new();
        if let Some(host) = &f.host {
            needles.push(json_str(host));
        }
        if let Some(ticket) = &f.ticket {
            needles.push(json_str(ticket));
        }
        match f.decision {
            Some(DecisionFilter::Deny) => needles.push("\"decision\":\"deny\"".into()),
            Some(DecisionFilter::Allow) => needles.push("\"decision\":\"allow\"".into()),
            Some(DecisionFilter::WouldDeny) => {
                needles.push("\"decision\":\"allow\"".into());
                needles.push("\"monitor\":".into());
            }
            None => {}
        }
        let folded_needles = [&f.user, &f.method]
            .into_iter()
            .flatten()
            .filter_map(|n| folded_needle(n))
            .collect();
        Matcher {
            since: f.since.map(format_time),
            until: f.until.map(format_time),
            user: f.user.as_ref().map(|u| u.to_lowercase()),
            method: f.method.clone(),
            host: f.host.clone(),
            decision: f.decision,
            ticket: f.ticket.clone(),
            needles,
            folded_needles,
        }
    }

    /// Cheap rejection on the raw line: time range and required substrings.
    fn precheck(&self, line: &str, scratch: &mut String) -> bool {
        if (self.since.is_some() || self.until.is_some())
            && let Some(t) = raw_time(line)
            && (self.since.as_deref().is_some_and(|s| t < s)
                || self.until.as_deref().is_some_and(|u| t >= u))
        {
            return false;
        }
        if !self.needles.iter().all(|n| line.contains(n.as_str())) {
            return false;
        }
        if !self.folded_needles.is_empty() {
            scratch.clear();
            scratch.push_str(line);
            scratch.make_ascii_lowercase();
            return self
                .folded_needles
                .iter()
                .all(|n| scratch.contains(n.as_str()));
        }
        true
    }

    fn matches(&self, v: &View<'_>) -> bool {
        if self.since.is_some() || self.until.is_some() {
            let Some(t) = v.time.as_deref().and_then(canonical_time) else {
                return false;
            };
            if self.since.as_deref().is_some_and(|s| t.as_str() < s)
                || self.until.as_deref().is_some_and(|u| t.as_str() >= u)
            {
                return false;
            }
        }
        if let Some(user) = &self.user
            && !v
                .principal
                .as_deref()
                .is_some_and(|p| p.to_lowercase().contains(user.as_str()))
        {
            return false;
        }
        if let Some(method) = &self.method
            && !v
                .method
                .as_deref()
                .is_some_and(|m| m.eq_ignore_ascii_case(method))
        {
            return false;
        }
        if self.host.is_some() && v.mo_id.as_deref() != self.host.as_deref() {
            return false;
        }
        if let Some(ticket) = &self.ticket
            && v.ticket.as_ref().and_then(|t| t.id.as_deref()) != Some(ticket.as_str())
        {
            return false;
        }
        match self.decision {
            None => true,
            Some(DecisionFilter::Allow) => v.decision.as_deref() == Some("allow"),
            Some(DecisionFilter::Deny) => v.decision.as_deref() == Some("deny"),
            Some(DecisionFilter::WouldDeny) => {
                v.decision.as_deref() == Some("allow") && !v.monitor.is_empty()
            }
        }
    }
}

/// The `time` value of a line written by the writer (fixed layout), without parsing.
fn raw_time(line: &str) -> Option<&str> {
    const KEY: &str = "\"time\":\"";
    let head = line.get(..line.len().min(96))?;
    let at = head.find(KEY)? + KEY.len();
    let t = line.get(at..at + 27)?;
    (t.ends_with('Z') && line.as_bytes().get(at + 27) == Some(&b'"')).then_some(t)
}

/// A record time in the writer's fixed-width UTC form, comparable as a string.
fn canonical_time(t: &str) -> Option<String> {
    if t.len() == 27 && t.ends_with('Z') {
        return Some(t.to_owned());
    }
    OffsetDateTime::parse(t, &Rfc3339).ok().map(format_time)
}

/// Streams the files and writes every matching record as a table row or its JSON line;
/// returns how many matched. Lines that are not records are skipped (`verify` reports them).
pub fn query(
    files: &[PathBuf],
    filter: &QueryFilter,
    out: &mut dyn Write,
    json: bool,
) -> Result<u64, AuditError> {
    let matcher = Matcher::new(filter);
    let mut out = BufWriter::with_capacity(64 * 1024, out);
    let mut row = String::with_capacity(256);
    let mut scratch = String::with_capacity(4096);
    if !json {
        out.write_all(table_header().as_bytes())
            .map_err(AuditError::Output)?;
    }
    let mut count = 0;
    for path in files {
        let mut lines = Lines::open(path).map_err(|source| AuditError::Io {
            path: path.clone(),
            op: "read",
            source,
        })?;
        loop {
            match lines.next_line() {
                Ok(None) => break,
                Ok(Some(Line::Complete)) => {}
                Ok(Some(_)) => continue,
                Err(source) => {
                    return Err(AuditError::Io {
                        path: path.clone(),
                        op: "read",
                        source,
                    });
                }
            }
            let Ok(text) = std::str::from_utf8(&lines.buf) else {
                continue;
            };
            if !matcher.precheck(text, &mut scratch) {
                continue;
            }
            let Ok(view) = serde_json::from_str::<View<'_>>(text) else {
                continue;
            };
            if !matcher.matches(&view) {
                continue;
            }
            count += 1;
            if json {
                out.write_all(text.as_bytes())
                    .and_then(|()| out.write_all(b"\n"))
                    .map_err(AuditError::Output)?;
            } else {
                row.clear();
                format_row(&view, &mut row);
                out.write_all(row.as_bytes()).map_err(AuditError::Output)?;
            }
        }
    }
    out.flush().map_err(AuditError::Output)?;
    Ok(count)
}

const COLUMNS: [(&str, usize); 9] = [
    ("TIME (UTC)", 23),
    ("KIND", 10),
    ("DECISION", 10),
    ("PRINCIPAL", 24),
    ("METHOD", 28),
    ("TARGET", 20),
    ("TICKET", 14),
    ("STATUS", 6),
    ("REASON", 60),
];

/// The table's header line.
fn table_header() -> String {
    let mut s = String::new();
    for (i, (name, width)) in COLUMNS.iter().enumerate() {
        push_cell(&mut s, name, *width, i + 1 == COLUMNS.len());
    }
    s
}

/// Appends a cell: control and bidi characters replaced, cut with `…`, padded.
fn push_cell(out: &mut String, value: &str, width: usize, last: bool) {
    let n = value.chars().count();
    let keep = if n > width { width - 1 } else { n };
    for c in value.chars().take(keep) {
        let unsafe_char = c.is_control()
            || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
        out.push(if unsafe_char { '?' } else { c });
    }
    if n > width {
        out.push('…');
    }
    if last {
        out.push('\n');
    } else {
        for _ in keep + usize::from(n > width)..width {
            out.push(' ');
        }
        out.push_str("  ");
    }
}

fn short(hash: Option<&str>) -> &str {
    hash.map_or("-", |h| h.get(..12).unwrap_or(h))
}

fn format_row(v: &View<'_>, out: &mut String) {
    let time = v.time.as_deref().unwrap_or("-");
    let time = match (time.get(..10), time.get(11..23)) {
        (Some(d), Some(t)) if time.len() == 27 => format!("{d} {t}"),
        _ => time.to_owned(),
    };
    let kind = v.kind.as_deref().unwrap_or("-");
    let decision = match v.decision.as_deref() {
        Some("allow") if !v.monitor.is_empty() => "would_deny",
        Some(d) => d,
        None => "-",
    };
    let status = match (v.status, &v.error) {
        (Some(s), _) => s.to_string(),
        (None, Some(_)) => "ERR".into(),
        _ => "-".into(),
    };
    let reason = match kind {
        "decision" => {
            let mut r = v
                .reason
                .as_deref()
                .map(str::to_owned)
                .unwrap_or_else(|| v.policies.join(","));
            if !v.monitor.is_empty() {
                r = format!("monitor: {} {r}", v.monitor.join(","));
            }
            r
        }
        "outcome" => match (&v.fault, &v.error, &v.task) {
            (Some(f), _, _) => format!("fault {f}"),
            (None, Some(e), _) => e.to_string(),
            (None, None, Some(t)) => format!("task {t}"),
            _ => String::new(),
        },
        "reload" if v.ok == Some(true) => format!(
            "ok {} -> {}",
            short(v.old_hash.as_deref()),
            short(v.new_hash.as_deref())
        ),
        "reload" => format!("rejected: {}", v.errors.first().map_or("", |e| e.as_ref())),
        "approval" => format!(
            "{} {} {}{}",
            v.event.as_deref().unwrap_or("?"),
            v.id.as_deref().unwrap_or("?"),
            v.summary.as_deref().unwrap_or(""),
            v.by.as_deref()
                .map(|by| format!(" by {by}"))
                .unwrap_or_default()
        ),
        "claim" => format!(
            "{} {} {}",
            v.event.as_deref().unwrap_or("?"),
            v.id.as_deref().unwrap_or("?"),
            v.ticket_id.as_deref().unwrap_or("")
        ),
        "start" if v.unclean_previous_stop == Some(true) => "unclean previous stop".into(),
        "start" => String::new(),
        "stop" | "checkpoint" => format!(
            "records={} failures={}",
            v.records.unwrap_or(0),
            v.failures.unwrap_or(0)
        ),
        _ => String::new(),
    };
    let cells = [
        time.as_str(),
        kind,
        decision,
        v.principal.as_deref().unwrap_or("-"),
        v.method.as_deref().unwrap_or("-"),
        v.mo_id.as_deref().unwrap_or("-"),
        v.ticket
            .as_ref()
            .and_then(|t| t.id.as_deref())
            .unwrap_or("-"),
        &status,
        &reason,
    ];
    for (i, (cell, (_, width))) in cells.iter().zip(COLUMNS).enumerate() {
        push_cell(out, cell, width, i + 1 == COLUMNS.len());
    }
}

/// Prints one line as a table row, first noting records that were never shown (rotated
/// away between two polls).
fn print_line(
    line: &[u8],
    last_seq: &mut Option<u64>,
    out: &mut dyn Write,
) -> Result<(), AuditError> {
    let mut row = String::new();
    match std::str::from_utf8(line)
        .ok()
        .and_then(|t| serde_json::from_str::<View<'_>>(t).ok())
    {
        Some(view) => {
            if let (Some(prev), Some(seq)) = (*last_seq, view.seq)
                && seq > prev + 1
            {
                row.push_str(&format!(
                    "... {} records not shown (seq {}..{} were rotated away between polls; \
                         see `vcguard audit query`)\n",
                    seq - prev - 1,
                    prev + 1,
                    seq - 1
                ));
            }
            *last_seq = view.seq.or(*last_seq);
            format_row(&view, &mut row);
        }
        None => row.push_str("(a line that is not a record; run `vcguard audit verify`)\n"),
    }
    out.write_all(row.as_bytes()).map_err(AuditError::Output)
}

#[cfg(unix)]
fn file_id(meta: &std::fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (meta.dev(), meta.ino())
}

#[cfg(not(unix))]
fn file_id(_meta: &std::fs::Metadata) -> (u64, u64) {
    (0, 0)
}

/// Follows one file handle, printing complete lines as they arrive.
struct Follower {
    file: File,
    id: (u64, u64),
    pos: u64,
    partial: Vec<u8>,
}

impl Follower {
    fn open(path: &Path, pos: u64) -> io::Result<Follower> {
        let mut file = File::open(path)?;
        let id = file_id(&file.metadata()?);
        file.seek(SeekFrom::Start(pos))?;
        Ok(Follower {
            file,
            id,
            pos,
            partial: Vec::new(),
        })
    }

    fn drain(&mut self, last_seq: &mut Option<u64>, out: &mut dyn Write) -> Result<(), AuditError> {
        let mut chunk = Vec::new();
        let n = self
            .file
            .read_to_end(&mut chunk)
            .map_err(AuditError::Output)?;
        self.pos += n as u64;
        self.partial.extend_from_slice(&chunk);
        let mut start = 0;
        while let Some(i) = self.partial[start..].iter().position(|&b| b == b'\n') {
            print_line(&self.partial[start..start + i], last_seq, out)?;
            start += i + 1;
        }
        self.partial.drain(..start);
        out.flush().map_err(AuditError::Output)
    }
}

/// Prints the last `last` records of `file` as the table; with `follow`, keeps printing
/// records as they are appended (polling every 200 ms, reopening after a rotation) until
/// the future is dropped.
pub async fn tail(
    file: &Path,
    last: usize,
    follow: bool,
    out: &mut (dyn Write + Send),
) -> Result<(), AuditError> {
    let io_err = |source| AuditError::Io {
        path: file.to_path_buf(),
        op: "read",
        source,
    };
    let (lines, end) = last_lines(file, last).map_err(io_err)?;
    out.write_all(table_header().as_bytes())
        .map_err(AuditError::Output)?;
    let mut last_seq = None;
    for line in lines.iter().filter(|l| l.complete) {
        print_line(&line.bytes, &mut last_seq, out)?;
    }
    out.flush().map_err(AuditError::Output)?;
    if !follow {
        return Ok(());
    }
    let mut follower = Follower::open(file, end).map_err(io_err)?;
    loop {
        tokio::time::sleep(TAIL_POLL).await;
        follower.drain(&mut last_seq, out)?;
        let Ok(meta) = std::fs::metadata(file) else {
            continue;
        };
        if file_id(&meta) != follower.id {
            // Rotated: finish the old file (fsynced before the rename), then switch.
            follower.drain(&mut last_seq, out)?;
            if let Ok(next) = Follower::open(file, 0) {
                follower = next;
                follower.drain(&mut last_seq, out)?;
            }
        } else if meta.len() < follower.pos {
            // Cut back (a torn line removed at start-up): continue from the new end.
            if let Ok(next) = Follower::open(file, meta.len()) {
                follower = next;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_note_records_that_were_never_shown() {
        let mut out = Vec::new();
        let mut last = Some(3);
        print_line(
            br#"{"seq":7,"time":"2025-01-01T00:00:00.000000Z","kind":"checkpoint","records":5}"#,
            &mut last,
            &mut out,
        )
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with("... 3 records not shown (seq 4..6"),
            "{text}"
        );
        assert!(
            text.contains("2025-01-01 00:00:00.000  checkpoint"),
            "{text}"
        );
        assert_eq!(last, Some(7));
    }

    #[test]
    fn cells_are_cut_padded_and_defanged() {
        let mut s = String::new();
        push_cell(&mut s, "abcdef", 4, false);
        push_cell(&mut s, "x\u{202e}y\u{7}", 5, false);
        push_cell(&mut s, "end", 9, true);
        assert_eq!(s, "abc…  x?y?   end\n");
    }

    #[test]
    fn raw_time_needs_the_writer_layout() {
        let line = r#"{"v":1,"seq":3,"time":"2025-01-01T00:00:00.000000Z","instance":"i"}"#;
        assert_eq!(raw_time(line), Some("2025-01-01T00:00:00.000000Z"));
        assert_eq!(raw_time(r#"{"time":"2025-01-01T00:00:00Z"}"#), None);
    }
}
