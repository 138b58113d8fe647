//! The set of files one log is made of: finding them (whatever renamed them: the built-in
//! rotation, logrotate's `mv`, an operator) and removing old ones (retention).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Deserialize;

use super::AuditError;
use super::reader::{Line, Lines, RotatedName, parent_dir};

/// Compressed copies are not read (decompress them first to verify them).
const COMPRESSED: [&str; 5] = [".gz", ".xz", ".zst", ".bz2", ".lz4"];

#[derive(Deserialize)]
struct SeqOnly {
    seq: u64,
}

/// The `seq` of a file's first line, if it looks like a record (the hash is not checked).
pub(super) fn first_seq_of(path: &Path) -> Option<u64> {
    let mut lines = Lines::open(path).ok()?;
    match lines.next_line() {
        Ok(Some(Line::Complete | Line::Torn)) => serde_json::from_slice::<SeqOnly>(&lines.buf)
            .ok()
            .map(|r| r.seq),
        _ => None,
    }
}

/// The highest `seq` among a file's readable lines (for a start that cannot chain).
pub(super) fn highest_seq_in(path: &Path) -> Option<u64> {
    let mut lines = Lines::open(path).ok()?;
    let mut highest = None;
    while let Ok(Some(line)) = lines.next_line() {
        if matches!(line, Line::Complete)
            && let Ok(r) = serde_json::from_slice::<SeqOnly>(&lines.buf)
        {
            highest = highest.max(Some(r.seq));
        }
    }
    highest
}

/// Whether `name` is a sibling of the active file `active_name` (stem `stem`): the built-in
/// rotated names (`audit-000000000042.jsonl`) and logrotate's (`audit.jsonl.1`,
/// `audit.jsonl-20261130`).
fn is_sibling(name: &str, active_name: &str, stem: &str) -> bool {
    name != active_name
        && (name.starts_with(&format!("{stem}-"))
            || name.starts_with(&format!("{active_name}."))
            || name.starts_with(&format!("{active_name}-")))
}

fn compressed(name: &str) -> bool {
    COMPRESSED.iter().any(|ext| name.ends_with(ext))
}

/// The files of one log in chain order (by the `seq` of their first record).
///
/// `path` is either a directory (every file in it whose first line is a record) or the
/// active file (it and its siblings: rotated by the gateway or renamed by logrotate;
/// compressed copies are skipped). Empty files are left out, except the active file, which
/// always comes last.
pub fn log_set(path: &Path) -> Result<Vec<PathBuf>, AuditError> {
    let io_err = |source: io::Error| AuditError::Io {
        path: path.to_path_buf(),
        op: "list the log directory",
        source,
    };
    let meta = fs::metadata(path);
    let is_dir = meta.as_ref().is_ok_and(|m| m.is_dir());
    let (dir, active) = if is_dir {
        (path.to_path_buf(), None)
    } else {
        (parent_dir(path), Some(path.to_path_buf()))
    };
    let names = active.as_ref().and_then(|a| {
        let name = a.file_name()?.to_str()?.to_owned();
        let stem = a.file_stem()?.to_str()?.to_owned();
        Some((name, stem))
    });
    let mut found: Vec<(u64, PathBuf)> = Vec::new();
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if !is_dir && e.kind() == io::ErrorKind::NotFound => {
            return Ok(active.into_iter().collect());
        }
        Err(e) => return Err(io_err(e)),
    };
    for entry in entries {
        let entry = entry.map_err(io_err)?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if compressed(&name) || !entry.file_type().map_err(io_err)?.is_file() {
            continue;
        }
        if let Some((active_name, stem)) = &names
            && !is_sibling(&name, active_name, stem)
        {
            continue;
        }
        if let Some(seq) = first_seq_of(&entry.path()) {
            found.push((seq, entry.path()));
        }
    }
    found.sort();
    let mut files: Vec<PathBuf> = found.into_iter().map(|(_, p)| p).collect();
    if let Some(active) = active
        && meta.is_ok()
    {
        files.push(active);
    }
    Ok(files)
}

/// Removes the oldest rotated files beyond `keep_files`, and those last written more than
/// `keep_days` ago (0: no limit). Returns the removed names, oldest first, and the first
/// seq of the oldest file kept; failures to remove are logged, never fatal.
pub(super) fn apply_retention(
    rotated: &RotatedName,
    keep_files: u32,
    keep_days: u32,
    now: SystemTime,
) -> (Vec<String>, Option<u64>) {
    if keep_files == 0 && keep_days == 0 {
        return (Vec::new(), None);
    }
    let files = match rotated.list() {
        Ok(files) => files,
        Err(e) => {
            tracing::warn!(error = %e, "audit retention: cannot list the rotated files");
            return (Vec::new(), None);
        }
    };
    let max_age = Duration::from_secs(u64::from(keep_days) * 86_400);
    let surplus = if keep_files == 0 {
        0
    } else {
        files.len().saturating_sub(keep_files as usize)
    };
    let mut removed = Vec::new();
    let mut oldest_kept = None;
    for (i, (seq, path)) in files.iter().enumerate() {
        let too_old = keep_days > 0
            && fs::metadata(path)
                .and_then(|m| m.modified())
                .is_ok_and(|m| now.duration_since(m).unwrap_or_default() > max_age);
        if i < surplus || too_old {
            match fs::remove_file(path) {
                Ok(()) => {
                    let name = path
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    tracing::info!(file = %path.display(), keep_files, keep_days,
                        "audit retention: removed an old rotated file");
                    removed.push(name);
                }
                Err(e) => {
                    tracing::warn!(file = %path.display(), error = %e,
                        "audit retention: cannot remove an old rotated file");
                    oldest_kept = oldest_kept.or(Some(*seq));
                }
            }
        } else {
            oldest_kept = oldest_kept.or(Some(*seq));
        }
    }
    (removed, oldest_kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn siblings_cover_builtin_and_logrotate_names() {
        for name in [
            "audit-000000000042.jsonl",
            "audit.jsonl.1",
            "audit.jsonl-20261130",
        ] {
            assert!(is_sibling(name, "audit.jsonl", "audit"), "{name}");
        }
        for name in ["audit.jsonl", "other.jsonl", "auditx.jsonl"] {
            assert!(!is_sibling(name, "audit.jsonl", "audit"), "{name}");
        }
        assert!(compressed("audit.jsonl.2.gz"));
    }
}
