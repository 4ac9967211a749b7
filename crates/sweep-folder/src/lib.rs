//! The sweep folder, the one interface between the parts of `sweep`: `sweep render`/`submit`
//! write it on the login node, `sweep-runner` fills it on the compute nodes, and `sweep
//! status`, `submit --resume` and `sweep aggregate` read it back. Every file of the folder has
//! its typed format here, and its path, and nothing else names them: a field renamed here is
//! renamed for every writer and reader at once.
//!
//! - [`paths`]: [`SweepDir`], [`JobDir`], [`PointDir`]: where each file is, how each is read
//!   and written, and the walk over job folders and points.
//! - Formats: [`manifest`], [`plan`] (`plan.json`, also `sweep plan --format json`), [`job`]
//!   (`job.json`, what the templates saw), [`metadata`], [`markers`] (rendezvous and status
//!   files), [`provenance`], [`search`], [`server_metrics`], [`gpu_metrics`], [`accuracy`]; [`settings`]: the folder's own
//!   form of what it records of the spec and the plan (the load, a role, a point).
//! - [`file`]: versioned, atomic reads and writes. Every file carries `format` and
//!   `written_by`; a reader takes this format and the one before it (folders written before
//!   formats were numbered, which have no `format` key) and refuses a newer one by name.
//!
//! The aiperf-compatible exports of each point keep aiperf's own format, untouched; only their
//! file names are here ([`exports`]).

pub mod accuracy;
pub mod build;
pub mod error;
pub mod file;
pub mod gpu_metrics;
pub mod job;
pub mod lock;
pub mod manifest;
pub mod markers;
pub mod metadata;
pub mod paths;
pub mod plan;
pub mod provenance;
pub mod search;
pub mod server_metrics;
pub mod settings;

pub use error::FolderError;
pub use lock::FileLock;
pub use manifest::{AllocationRun, Executor, JobState, Manifest, ManifestJob, QueueLimit, QueueMode};
pub use markers::{
    BenchmarkState, BenchmarkStatus, PointState, PointStatus, Registration, ServerState, ServerStatus,
};
pub use paths::{JobDir, PointDir, SubmitLock, SweepDir};

/// The format every file is written in now. 5: `job.json`'s `accuracy` and each job's
/// `accuracy/accuracy.json` (a deployment's scores, which can take its points off the
/// frontiers); format 4 files read unchanged (no accuracy step). 4: `job.json`'s `metrics.gpu_interval_ms` (GPU
/// telemetry, with `gpu_metrics.json` per point) and `explore.json`'s `loads` and `measure` per
/// decision; format 3 files read unchanged (GPU telemetry at its default interval). 3: the
/// manifest's `allocation` executor (sweep 0.3.0), which sweep 0.2.0 could not parse.
pub const FORMAT: u32 = 5;

/// The oldest format still read: folders of sweep 0.1.0, written before files carried a
/// `format` key (read as format 1).
pub const OLDEST_FORMAT: u32 = 1;

/// File names of a point's aiperf-compatible exports (aiperf's names, so its users' tools find
/// them).
pub mod exports {
    /// One JSON record per request, appended as each finishes.
    pub const RECORDS: &str = "profile_export.jsonl";
    /// The run's statistics, as aiperf writes them.
    pub const SUMMARY: &str = "profile_export_aiperf.json";
    /// The same statistics as aiperf's CSV.
    pub const CSV: &str = "profile_export_aiperf.csv";
    /// aiperf's record of its phases (read from aiperf's own runs; this project writes none).
    pub const PHASES: &str = "phase_manifest.json";
}
