//! Why a load could not run, or its records be kept: each error names the file, line, URL or
//! setting it is about.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A dataset file could not be read.
    #[error("dataset {}: {source}", path.display())]
    DatasetRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A dataset file is not text.
    #[error("dataset {}: not UTF-8: {source}", path.display())]
    DatasetText {
        path: PathBuf,
        #[source]
        source: std::str::Utf8Error,
    },
    /// A dataset line is not one of its format's.
    #[error("dataset {}: {source}", path.display())]
    DatasetLine {
        path: PathBuf,
        #[source]
        source: sweep_spec::dataset::DatasetError,
    },
    /// An image a dataset line names cannot be sent.
    #[error("dataset {}, line {line}: image `{image}` {problem}", path.display())]
    Image { path: PathBuf, line: usize, image: String, problem: String },
    /// `workload.tokenizer` (or `--tokenizer`) cannot be used.
    #[error("{problem}")]
    Tokenizer { path: PathBuf, problem: String },
    /// A setting (a flag of `sweep-runner profile` or `trace`, a goodput SLO, the arrival)
    /// that cannot make a load; `setting` names it.
    #[error("{problem}")]
    Setting { setting: &'static str, problem: String },
    /// The URL to load cannot be reached as given.
    #[error("`{url}`: {problem}")]
    Url { url: String, problem: String },
    /// A line of a CSV log (BurstGPT's) cannot be read.
    #[error("line {line}: {problem}")]
    Csv { line: u64, problem: String },
    /// The load's runtime, its reading tasks or its collector could not run.
    #[error("cannot start the {what}: {source}")]
    Start {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// The thread that records every request panicked: a bug.
    #[error("the record collector panicked")]
    Collector,
    /// A trace could not be written where it goes.
    #[error("cannot write the trace: {0}")]
    Output(#[source] std::io::Error),
    /// A file of the sweep folder could not be written.
    #[error(transparent)]
    Folder(#[from] sweep_folder::FolderError),
    /// A result file could not be written.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The runner's steps still say their failures as text, with this error's message.
impl From<LoadError> for String {
    fn from(error: LoadError) -> String {
        error.to_string()
    }
}
