use std::path::PathBuf;

/// Why a render, submit, status or cancel stopped.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// A file of the sweep folder.
    #[error(transparent)]
    Folder(#[from] sweep_folder::FolderError),

    /// A file or folder outside the sweep folder's own files (its parent, a staging folder).
    #[error("cannot write `{}`: {source}", path.display())]
    Write { path: PathBuf, source: std::io::Error },

    #[error("cannot read `{}`: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },

    /// The folder to create exists: sweep never overwrites results.
    #[error("`{}` already exists; sweep never overwrites a sweep folder", path.display())]
    Exists { path: PathBuf },

    /// The templates could not be loaded.
    #[error("{0}")]
    Templates(#[source] sweep_templates::RenderError),

    /// A job's templates failed to render.
    #[error("job `{job}`: {source}")]
    RenderJob {
        job: String,
        #[source]
        source: sweep_templates::RenderError,
    },

    /// A SLURM command is missing or refused.
    #[error("{0}")]
    Slurm(#[source] sweep_slurm::driver::SlurmError),

    /// SLURM rejected some jobs; the others were submitted.
    #[error("SLURM rejected {rejected} of {total} jobs; their reasons are in the manifest")]
    Rejected { rejected: usize, total: usize },

    /// Jobs run by the local executor did not complete.
    #[error("{failed} of {total} jobs did not complete")]
    JobsFailed { failed: usize, total: usize },

    /// `--in-allocation` outside an allocation.
    #[error("`--in-allocation`: this process is not inside a SLURM allocation (SLURM_JOB_ID and SLURM_JOB_NODELIST are not set)")]
    NotInAllocation,

    /// A job needs more nodes than the allocation has.
    #[error("job `{job}` needs {needs} nodes; the allocation has {has} ({nodelist})")]
    TooLarge { job: String, needs: u32, has: u32, nodelist: String },

    /// The allocation's node list or the jobs' ports cannot be used.
    #[error("in the allocation: {0}")]
    Allocation(String),

    /// A signal stopped the jobs the local executor (or an allocation) was running.
    #[error(
        "{} stopped the sweep: {completed} of {total} jobs completed; the running one's unfinished points are marked cancelled, and `sweep submit --resume` runs what is left",
        signal.name()
    )]
    Interrupted { signal: crate::interrupt::Interrupted, completed: usize, total: usize },

    /// SIGINT/SIGTERM handlers could not be installed.
    #[error("cannot take over SIGINT and SIGTERM: {0}")]
    Signals(String),

    /// The local executor could not start a job's script.
    #[error("cannot run `{}`: {source}", script.display())]
    Run { script: PathBuf, source: std::io::Error },
}
