//! Errors reading and writing execution profiles.

use std::path::{Path, PathBuf};

/// Why an execution profile could not be read or written.
///
/// Every variant names the file; content errors name the JSON path too.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProfileError {
    /// The file could not be opened or read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The file (or its temporary sibling) could not be written or renamed
    /// into place.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The file is larger than the limit.
    #[error("{} is {size} bytes, more than the limit of {limit} bytes", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size (at least this many bytes).
        size: u64,
        /// The limit in force.
        limit: u64,
    },
    /// The file holds nothing but whitespace.
    #[error("{} is empty", path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// The file is not well-formed JSON.
    #[error("{}: malformed json at line {line} column {column}: {message}", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// The parser's description.
        message: String,
    },
    /// The JSON ends before the document is complete (a cut-off file).
    #[error("{}: json ends early at line {line} column {column} (truncated file?)", path.display())]
    Truncated {
        /// The file.
        path: PathBuf,
        /// 1-based line where the input ended.
        line: usize,
        /// Column where the input ended.
        column: usize,
    },
    /// The top-level JSON value is not an object.
    #[error("{}: the top-level json value is not an object", path.display())]
    NotAnObject {
        /// The file.
        path: PathBuf,
    },
    /// The `schema` field names another format or version.
    #[error(
        "{}: at schema: unsupported execution profile schema {found:?}, expected {expected:?}",
        path.display()
    )]
    UnsupportedSchema {
        /// The file.
        path: PathBuf,
        /// The value found.
        found: String,
        /// The schema this crate reads.
        expected: &'static str,
    },
    /// A field has the wrong type, or a required field is missing.
    #[error("{}: at {json_path} (line {line} column {column}): {message}", path.display())]
    Schema {
        /// The file.
        path: PathBuf,
        /// The JSON path of the offending value, e.g. `execution_profile.files_accessed[3].opens`.
        json_path: String,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// What was wrong.
        message: String,
    },
    /// A value is well-typed but not allowed (a duplicate entry, a malformed digest).
    #[error("{}: at {json_path}: {message}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The JSON path of the offending value.
        json_path: String,
        /// What was wrong.
        message: String,
    },
}

impl ProfileError {
    /// True when the input's content is at fault (malformed, of the wrong
    /// shape or version, too large), false for I/O trouble.
    pub fn is_bad_input(&self) -> bool {
        !matches!(self, Self::Read { .. } | Self::Write { .. })
    }

    /// The file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            Self::Read { path, .. }
            | Self::Write { path, .. }
            | Self::TooLarge { path, .. }
            | Self::Empty { path }
            | Self::Malformed { path, .. }
            | Self::Truncated { path, .. }
            | Self::NotAnObject { path }
            | Self::UnsupportedSchema { path, .. }
            | Self::Schema { path, .. }
            | Self::Invalid { path, .. } => path,
        }
    }

    /// The JSON path the error is about, for content errors that have one.
    pub fn json_path(&self) -> Option<&str> {
        match self {
            Self::UnsupportedSchema { .. } => Some("schema"),
            Self::Schema { json_path, .. } | Self::Invalid { json_path, .. } => Some(json_path),
            _ => None,
        }
    }

    /// Maps a serde_json error from reading `path` at `json_path`.
    pub(crate) fn from_json(path: &Path, err: &serde_json::Error, json_path: String) -> Self {
        use serde_json::error::Category;
        let path = path.to_path_buf();
        let (line, column) = (err.line(), err.column());
        match err.classify() {
            Category::Eof => Self::Truncated { path, line, column },
            Category::Syntax => Self::Malformed {
                path,
                line,
                column,
                message: message_of(err),
            },
            Category::Data | Category::Io => Self::Schema {
                path,
                json_path,
                line,
                column,
                message: message_of(err),
            },
        }
    }
}

/// serde_json's message without its trailing ` at line L column C`.
fn message_of(err: &serde_json::Error) -> String {
    let text = err.to_string();
    match text.rfind(" at line ") {
        Some(i) => text[..i].to_owned(),
        None => text,
    }
}

/// A conversion error inside a document, before the file is known.
#[derive(Debug)]
pub(crate) struct FieldError {
    pub(crate) json_path: String,
    pub(crate) message: String,
}

impl FieldError {
    pub(crate) fn at(self, path: &Path) -> ProfileError {
        ProfileError::Invalid {
            path: path.to_path_buf(),
            json_path: self.json_path,
            message: self.message,
        }
    }
}
