//! Why a step of `sweep-runner` stopped: each error carries the file, flag, server or job it is
//! about. What a job's markers record as a point's or server's reason stays text: it is data
//! (with the log's last lines), not an error of the runner's.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    /// A file of the job's folder could not be read or written.
    #[error(transparent)]
    Folder(#[from] sweep_folder::FolderError),
    /// The load generator could not run, or keep its results.
    #[error(transparent)]
    Load(#[from] sweep_load::LoadError),
    /// A trace file (`--trace`) that cannot be replayed.
    #[error(transparent)]
    Trace(#[from] sweep_load::prompts::TraceError),
    /// A CSV log (BurstGPT's) that cannot be converted: its file, and the line.
    #[error("{}: {source}", path.display())]
    Csv {
        path: PathBuf,
        #[source]
        source: sweep_load::LoadError,
    },
    /// A flag (or pair of flags) that cannot work, named in the message.
    #[error("{problem}")]
    Flag { flag: &'static str, problem: String },
    /// A file outside the job's folder: a trace, a CSV log, the results.
    #[error("cannot {action} {}: {source}", path.display())]
    File {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file the step would overwrite: nothing is.
    #[error("{} exists; give another --output (nothing is overwritten)", path.display())]
    Exists { path: PathBuf },
    /// A server's step (`serve`, `with-workers`): which server, and what stopped it (also in its
    /// status marker when it has one).
    #[error("{reason}")]
    Server { server: String, reason: String },
    /// A `/metrics` endpoint that cannot be scraped as given (not an `http://` URL).
    #[error("{problem}")]
    Scrape { url: String, problem: String },
    /// The step's own process: a runtime, a thread, a signal handler it could not have.
    #[error("cannot {what}: {source}")]
    Process {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
}

impl RunnerError {
    pub fn flag(flag: &'static str, problem: impl Into<String>) -> Self {
        RunnerError::Flag { flag, problem: problem.into() }
    }

    pub fn server(server: &str, reason: impl Into<String>) -> Self {
        RunnerError::Server { server: server.to_owned(), reason: reason.into() }
    }
}
