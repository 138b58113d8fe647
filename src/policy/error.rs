//! Load errors: every problem found in a policy directory, each with its file and position.

use std::fmt;
use std::path::{Path, PathBuf};

/// One problem found while loading a policy directory, located as precisely as known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    /// The file the problem is in (as `dir/name`), when it belongs to a file.
    pub file: Option<PathBuf>,
    /// 1-based line in `file`, when known.
    pub line: Option<usize>,
    /// 1-based column (in characters) in `file`, when known.
    pub column: Option<usize>,
    /// What is wrong, in words an operator can act on.
    pub message: String,
}

impl LoadError {
    /// A problem with no file attached (e.g. the directory cannot be read).
    pub(crate) fn general(message: impl Into<String>) -> Self {
        Self {
            file: None,
            line: None,
            column: None,
            message: message.into(),
        }
    }

    /// A problem with a whole file (no position).
    pub(crate) fn in_file(file: &Path, message: impl Into<String>) -> Self {
        Self {
            file: Some(file.to_path_buf()),
            line: None,
            column: None,
            message: message.into(),
        }
    }

    /// A problem at byte `offset` of `text`, the contents of `file`.
    pub(crate) fn at(file: &Path, text: &str, offset: usize, message: impl Into<String>) -> Self {
        let (line, column) = line_col(text, offset);
        Self {
            file: Some(file.to_path_buf()),
            line: Some(line),
            column: Some(column),
            message: message.into(),
        }
    }

    /// The `file:line:column` prefix (as much of it as is known), without the message.
    pub fn location(&self) -> Option<String> {
        let file = self.file.as_ref()?;
        Some(match (self.line, self.column) {
            (Some(l), Some(c)) => format!("{}:{l}:{c}", file.display()),
            (Some(l), None) => format!("{}:{l}", file.display()),
            _ => file.display().to_string(),
        })
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.location() {
            Some(loc) => write!(f, "{loc}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// Every problem found while loading a policy directory; displayed one per line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", display_lines(.errors))]
pub struct LoadErrors {
    /// The problems, in the order they were found (files in name order).
    pub errors: Vec<LoadError>,
}

impl LoadErrors {
    /// Wraps a list of problems.
    pub(crate) fn new(errors: Vec<LoadError>) -> Self {
        Self { errors }
    }

    /// A single problem.
    pub(crate) fn one(error: LoadError) -> Self {
        Self {
            errors: vec![error],
        }
    }

    /// Iterates over the problems.
    pub fn iter(&self) -> std::slice::Iter<'_, LoadError> {
        self.errors.iter()
    }

    /// The number of problems.
    pub fn len(&self) -> usize {
        self.errors.len()
    }

    /// True when there is no problem (never the case for a returned error).
    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }
}

impl<'a> IntoIterator for &'a LoadErrors {
    type Item = &'a LoadError;
    type IntoIter = std::slice::Iter<'a, LoadError>;
    fn into_iter(self) -> Self::IntoIter {
        self.errors.iter()
    }
}

fn display_lines(errors: &[LoadError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// Turns a miette diagnostic from cedar into located load errors (one per diagnostic, placed
/// at its first label), adding the diagnostic's help text when it has one.
pub(crate) fn from_diagnostic(
    file: &Path,
    text: &str,
    diag: &dyn miette::Diagnostic,
    prefix: &str,
) -> LoadError {
    let message = format!("{prefix}{}", diagnostic_text(diag));
    let offset = diag
        .labels()
        .and_then(|mut labels| labels.next())
        .map(|label| label.offset());
    match offset {
        Some(offset) => LoadError::at(file, text, offset, message),
        None => LoadError::in_file(file, message),
    }
}

/// A diagnostic's message, the messages of its causes (when they add something) and its help
/// text, on one line.
pub(crate) fn diagnostic_text(diag: &dyn miette::Diagnostic) -> String {
    let mut text = diag.to_string();
    let mut source = diag.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    if let Some(help) = diag.help() {
        text.push_str(&format!(" (help: {help})"));
    }
    text
}
