//! Reading log files: streaming lines, the last lines of a file, the set of rotated files.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::AuditError;

/// Longest line accepted; longer ones are reported, never held in memory whole.
pub(super) const MAX_LINE: usize = 1 << 20;

/// One line read from a log file.
pub(super) enum Line {
    /// A line ending in `\n` (the newline is not in the buffer).
    Complete,
    /// Bytes at the end of the file without a final `\n`.
    Torn,
    /// A line longer than [`MAX_LINE`]; its bytes were skipped.
    TooLong,
}

/// Streams the lines of one file with a reused buffer.
pub(super) struct Lines {
    reader: BufReader<File>,
    /// The current line, without its newline.
    pub(super) buf: Vec<u8>,
    /// 1-based number of the current line.
    pub(super) line_no: u64,
}

impl Lines {
    pub(super) fn open(path: &Path) -> io::Result<Lines> {
        Ok(Lines {
            reader: BufReader::with_capacity(256 * 1024, File::open(path)?),
            buf: Vec::with_capacity(4096),
            line_no: 0,
        })
    }

    /// Reads the next line into `buf`; `None` at end of file.
    pub(super) fn next_line(&mut self) -> io::Result<Option<Line>> {
        self.buf.clear();
        let limit = MAX_LINE as u64 + 1;
        let n = (&mut self.reader)
            .take(limit)
            .read_until(b'\n', &mut self.buf)?;
        if n == 0 {
            return Ok(None);
        }
        self.line_no += 1;
        if self.buf.last() == Some(&b'\n') {
            self.buf.pop();
            return Ok(Some(Line::Complete));
        }
        if self.buf.len() > MAX_LINE {
            self.buf.clear();
            self.reader.skip_until(b'\n')?;
            return Ok(Some(Line::TooLong));
        }
        Ok(Some(Line::Torn))
    }
}

/// The last line of a file and where it starts.
pub(super) struct LastLine {
    pub(super) offset: u64,
    pub(super) bytes: Vec<u8>,
    pub(super) complete: bool,
}

/// Reads the last line of a file backwards; `None` for an empty file.
pub(super) fn last_line(path: &Path) -> io::Result<Option<LastLine>> {
    let (mut lines, _) = last_lines(path, 1)?;
    Ok(lines.pop())
}

/// Reads up to `n` last lines (the final one possibly torn) and returns them with the
/// offset just after the last complete line.
pub(super) fn last_lines(path: &Path, n: usize) -> io::Result<(Vec<LastLine>, u64)> {
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    if len == 0 || n == 0 {
        return Ok((Vec::new(), len));
    }
    let mut last = [0u8];
    file.seek(SeekFrom::Start(len - 1))?;
    file.read_exact(&mut last)?;
    let complete_tail = last[0] == b'\n';

    const CHUNK: u64 = 64 * 1024;
    // `window` holds the bytes from `pos` up to the end of the lines not yet taken.
    let mut pos = if complete_tail { len - 1 } else { len };
    let mut window: Vec<u8> = Vec::new();
    let mut out: Vec<LastLine> = Vec::new();
    let mut complete = complete_tail;
    while out.len() < n {
        match window.iter().rposition(|&b| b == b'\n') {
            Some(i) => {
                out.push(LastLine {
                    offset: pos + i as u64 + 1,
                    bytes: window[i + 1..].to_vec(),
                    complete,
                });
                complete = true;
                window.truncate(i);
            }
            None if pos == 0 => {
                out.push(LastLine {
                    offset: 0,
                    bytes: std::mem::take(&mut window),
                    complete,
                });
                break;
            }
            None => {
                if window.len() > MAX_LINE {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("a line near the end is longer than {MAX_LINE} bytes"),
                    ));
                }
                let step = CHUNK.min(pos);
                let mut chunk = vec![0u8; step as usize];
                file.seek(SeekFrom::Start(pos - step))?;
                file.read_exact(&mut chunk)?;
                chunk.extend_from_slice(&window);
                window = chunk;
                pos -= step;
            }
        }
    }
    out.reverse();
    let complete_end = if complete_tail {
        len
    } else {
        out.last().map(|l| l.offset).unwrap_or(len)
    };
    Ok((out, complete_end))
}

/// The shape of rotated file names, from a pattern like `{stem}-{seq}.jsonl`.
#[derive(Debug, Clone)]
pub(super) struct RotatedName {
    dir: PathBuf,
    prefix: String,
    suffix: String,
}

/// Zero-padding width of `{seq}` in rotated names.
pub(super) const SEQ_WIDTH: usize = 12;

impl RotatedName {
    pub(super) fn new(active: &Path, pattern: &str) -> Result<RotatedName, AuditError> {
        let bad = |why: &str| AuditError::Config(format!("rotated_name {pattern:?}: {why}"));
        if pattern.contains('/') || pattern.contains('\\') {
            return Err(bad("must be a file name, not a path"));
        }
        let stem = active.file_stem().and_then(|s| s.to_str()).ok_or_else(|| {
            AuditError::Config(format!("path {}: no file name", active.display()))
        })?;
        let expanded = pattern.replace("{stem}", stem);
        let Some((prefix, suffix)) = expanded.split_once("{seq}") else {
            return Err(bad("must contain {seq}"));
        };
        if suffix.contains("{seq}") || prefix.contains('{') || suffix.contains('{') {
            return Err(bad("only {stem} and one {seq} are allowed"));
        }
        let name = RotatedName {
            dir: parent_dir(active),
            prefix: prefix.to_owned(),
            suffix: suffix.to_owned(),
        };
        if let Some(active_name) = active.file_name().and_then(|n| n.to_str())
            && name.seq_of(active_name).is_some()
        {
            return Err(bad("the active file name would match the rotated pattern"));
        }
        Ok(name)
    }

    pub(super) fn path(&self, first_seq: u64) -> PathBuf {
        self.dir.join(format!(
            "{}{:0width$}{}",
            self.prefix,
            first_seq,
            self.suffix,
            width = SEQ_WIDTH
        ))
    }

    fn seq_of(&self, name: &str) -> Option<u64> {
        let digits = name
            .strip_prefix(&self.prefix)?
            .strip_suffix(&self.suffix)?;
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok()
    }

    /// Rotated files in the directory, oldest first.
    pub(super) fn list(&self) -> io::Result<Vec<(u64, PathBuf)>> {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            if let Some(seq) = entry.file_name().to_str().and_then(|n| self.seq_of(n))
                && entry.file_type()?.is_file()
            {
                files.push((seq, entry.path()));
            }
        }
        files.sort();
        Ok(files)
    }
}

/// The directory holding a file (`.` for a bare name).
pub(super) fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// All files of a log in chain order: rotated files by first seq, then the active file.
pub fn log_files(active: &Path, rotated_name: &str) -> Result<Vec<PathBuf>, AuditError> {
    let pattern = RotatedName::new(active, rotated_name)?;
    let dir = parent_dir(active);
    let mut files: Vec<PathBuf> = pattern
        .list()
        .map_err(|source| AuditError::Io {
            path: dir,
            op: "list the log directory",
            source,
        })?
        .into_iter()
        .map(|(_, p)| p)
        .collect();
    if active.exists() {
        files.push(active.to_path_buf());
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines_of(content: &[u8], n: usize) -> (Vec<(u64, String, bool)>, u64) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, content).unwrap();
        let (lines, end) = last_lines(&p, n).unwrap();
        (
            lines
                .into_iter()
                .map(|l| (l.offset, String::from_utf8(l.bytes).unwrap(), l.complete))
                .collect(),
            end,
        )
    }

    #[test]
    fn last_lines_complete_and_torn() {
        assert_eq!(lines_of(b"", 3).0, vec![]);
        assert_eq!(
            lines_of(b"a\nbb\nccc\n", 2),
            (vec![(2, "bb".into(), true), (5, "ccc".into(), true)], 9)
        );
        assert_eq!(
            lines_of(b"a\nbb\ncc", 5),
            (
                vec![
                    (0, "a".into(), true),
                    (2, "bb".into(), true),
                    (5, "cc".into(), false)
                ],
                5
            )
        );
        assert_eq!(lines_of(b"torn", 1), (vec![(0, "torn".into(), false)], 0));
        assert_eq!(lines_of(b"x\n", 4), (vec![(0, "x".into(), true)], 2));
    }

    #[test]
    fn last_lines_across_chunks() {
        let mut content = Vec::new();
        for i in 0..50_000 {
            content.extend_from_slice(format!("line {i}\n").as_bytes());
        }
        let (lines, _) = lines_of(&content, 20_000);
        assert_eq!(lines.len(), 20_000);
        assert_eq!(lines[0].1, "line 30000");
        assert_eq!(lines[19_999].1, "line 49999");
    }

    #[test]
    fn streaming_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"one\ntwo\nthr").unwrap();
        let mut l = Lines::open(&p).unwrap();
        assert!(matches!(l.next_line().unwrap(), Some(Line::Complete)));
        assert_eq!(l.buf, b"one");
        assert!(matches!(l.next_line().unwrap(), Some(Line::Complete)));
        assert!(matches!(l.next_line().unwrap(), Some(Line::Torn)));
        assert_eq!((l.buf.as_slice(), l.line_no), (&b"thr"[..], 3));
        assert!(l.next_line().unwrap().is_none());
    }

    #[test]
    fn rotated_names() {
        let n = RotatedName::new(
            Path::new("/var/log/vcguard/audit.jsonl"),
            "{stem}-{seq}.jsonl",
        )
        .unwrap();
        assert_eq!(
            n.path(42),
            PathBuf::from("/var/log/vcguard/audit-000000000042.jsonl")
        );
        assert_eq!(n.seq_of("audit-000000000042.jsonl"), Some(42));
        assert_eq!(n.seq_of("audit-x.jsonl"), None);
        assert_eq!(n.seq_of("audit.jsonl"), None);
        assert!(RotatedName::new(Path::new("a.jsonl"), "{stem}.old").is_err());
        assert!(RotatedName::new(Path::new("a.jsonl"), "../{seq}").is_err());
    }
}
