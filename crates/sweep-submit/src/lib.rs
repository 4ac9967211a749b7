//! A planned sweep made into a sweep folder, and run.
//!
//! - [`pipeline`]: the one way a spec file becomes a plan (read, validate, check its inputs, plan,
//!   estimate capacity), which every command that plans calls.
//! - [`render`]: the folder as `sweep render` writes it (spec, plan, provenance, manifest, a
//!   folder per job with its script and `job.json`), all or nothing; and `--resume`, which adds
//!   job folders for the points with no complete result beside (never over) the others.
//! - [`submit`]: the jobs sent to SLURM (at a bounded rate, optionally in `--max-in-queue`
//!   dependency chains or waves), run one after another on this machine ([`local`]), or run as
//!   steps of the current allocation, side by side where they fit ([`allocation`]); `status`
//!   and `cancel`;
//! - [`wait`]: blocks until a sweep's jobs have ended, submitting held waves as it goes.
//! - [`check`]: every option the launch commands give an engine, held against the engine's own
//!   `--help` where it is installed.
//!
//! Nothing here prints: progress goes to a [`Reporter`], results are returned, and the command
//! decides what is data (stdout) and what is a message (stderr).

pub mod allocation;
pub mod check;
mod error;
pub mod interrupt;
pub mod local;
pub mod pipeline;
pub mod provenance;
pub mod render;
pub mod submit;
pub mod wait;

pub use error::SubmitError;

/// Where progress goes while jobs are submitted or run.
pub trait Reporter {
    /// A message for the person watching (stderr).
    fn note(&mut self, message: &str);
    /// A line of the command's output (stdout): e.g. `job-name<TAB>slurm-id` as each job is
    /// accepted, so that a submit cut short still shows what it did.
    fn data(&mut self, line: &str) -> std::io::Result<()>;
}
