//! What can go wrong with a sweep folder's files: always with the file, and for a parse error
//! the line, column and key.

use std::path::PathBuf;

/// An error reading or writing a file of the sweep folder.
#[derive(Debug, thiserror::Error)]
pub enum FolderError {
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },

    #[error("cannot write {}: {source}", path.display())]
    Write { path: PathBuf, source: std::io::Error },

    /// Not JSON, or not this file's format. `key` is the path of the value that did not fit
    /// (`jobs[2].state`), empty for the document itself.
    #[error("{}:{line}:{column}: {}{message}", path.display(), if key.is_empty() { String::new() } else { format!("at `{key}`: ") })]
    Parse { path: PathBuf, line: usize, column: usize, key: String, message: String },

    /// Written by a newer `sweep` in a format this one does not know.
    #[error(
        "{} was written by {written_by} in format {format}; this is sweep {this}, which reads formats {oldest} to {current}: read it with a newer sweep",
        path.display(), this = crate::build::VERSION, oldest = crate::OLDEST_FORMAT, current = crate::FORMAT
    )]
    Newer { path: PathBuf, format: u32, written_by: String },

    /// A folder with no `manifest.json`.
    #[error("`{}` is not a sweep folder (no manifest.json)", path.display())]
    NotASweep { path: PathBuf },

    /// Another `sweep submit` holds the folder's lock.
    #[error("{} is held ({holder}): another `sweep submit` is working on this folder; wait for it to end (the lock goes with its process)", path.display())]
    Locked { path: PathBuf, holder: String },
}

impl FolderError {
    /// What is wrong, without the file's path (for messages that show the path already).
    pub fn detail(&self) -> String {
        match self {
            FolderError::Read { source, .. } => format!("cannot read: {source}"),
            FolderError::Write { source, .. } => format!("cannot write: {source}"),
            FolderError::Parse { line, column, key, message, .. } if key.is_empty() => {
                format!("line {line}, column {column}: {message}")
            }
            FolderError::Parse { line, column, key, message, .. } => {
                format!("line {line}, column {column}, at `{key}`: {message}")
            }
            FolderError::Newer { format, written_by, .. } => format!(
                "written by {written_by} in format {format}; this is sweep {}, which reads formats {} to {}",
                crate::build::VERSION,
                crate::OLDEST_FORMAT,
                crate::FORMAT
            ),
            FolderError::NotASweep { .. } => "not a sweep folder (no manifest.json)".to_owned(),
            FolderError::Locked { holder, .. } => format!("held by another `sweep submit` ({holder})"),
        }
    }

    /// The file the error is about.
    pub fn path(&self) -> &std::path::Path {
        match self {
            FolderError::Read { path, .. }
            | FolderError::Write { path, .. }
            | FolderError::Parse { path, .. }
            | FolderError::Newer { path, .. }
            | FolderError::NotASweep { path }
            | FolderError::Locked { path, .. } => path,
        }
    }
}
