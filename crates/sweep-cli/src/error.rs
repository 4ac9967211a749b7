//! The command's errors, each with its exit code and its rendering for stderr.

use std::path::PathBuf;

use sweep_plan::PlanError;
use sweep_spec::{SourceMap, SpecError};

use crate::diagnostic::Diagnostic;
use crate::exit::Exit;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The spec file could not be read.
    #[error("cannot read `{}`: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The spec is invalid.
    #[error("{error}")]
    Spec { file: String, text: String, error: Box<SpecError> },
    /// The spec is valid but cannot be planned.
    #[error("{error}")]
    Plan { file: String, text: String, source_map: Box<SourceMap>, error: Box<PlanError> },
    /// Writing the output failed.
    #[error("cannot write the output: {0}")]
    Output(#[source] std::io::Error),
    /// A file or folder could not be written.
    #[error("cannot write `{}`: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The output folder exists: sweep never overwrites results.
    #[error("`{}` already exists; sweep never overwrites a sweep folder", path.display())]
    Exists { path: PathBuf },
    /// The templates could not be loaded.
    #[error("{0}")]
    Render(#[source] sweep_templates::RenderError),
    /// Another `sweep submit` holds the folder's lock.
    #[error("`{}` is held by another submit ({holder})", path.display())]
    Locked { path: PathBuf, holder: String },
    /// A SLURM command is missing or refused.
    #[error("{0}")]
    Slurm(#[source] sweep_slurm::driver::SlurmError),
    /// SLURM rejected some jobs; the others were submitted.
    #[error("SLURM rejected {rejected} of {total} jobs; their reasons are in the manifest")]
    Rejected { rejected: usize, total: usize },
    /// `--resume` on a folder that holds no sweep.
    #[error("`{}` is not a sweep folder (no manifest.json)", path.display())]
    NotASweep { path: PathBuf },
    /// Jobs run by the local executor did not complete.
    #[error("{failed} of {total} jobs did not complete")]
    JobsFailed { failed: usize, total: usize },
    /// The command line is wrong in a way clap cannot see.
    #[error("{0}")]
    Usage(String),
    /// Aggregation failed: nothing found or readable, or an output could not be written.
    #[error("{0}")]
    Aggregate(#[source] sweep_aggregate::Error),
    /// A job's templates failed to render.
    #[error("job `{job}`: {source}")]
    RenderJob {
        job: String,
        #[source]
        source: sweep_templates::RenderError,
    },
    /// Launch commands give an engine options its own parser does not list (`sweep check`).
    #[error("{} option(s) the engines do not take", .0.len())]
    UnknownOptions(Vec<UnknownOption>),
}

/// An option a launch command gives an engine that the engine's `--help` does not list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownOption {
    pub job: String,
    /// The step (`gen_0`, `disagg_server_0`), hence the role.
    pub step: String,
    pub program: String,
    pub option: String,
    pub closest: Option<String>,
}

impl Error {
    pub fn exit(&self) -> Exit {
        match self {
            Error::Read { .. } | Error::Output(_) | Error::Write { .. } | Error::NotASweep { .. } => Exit::Io,
            Error::JobsFailed { .. } => Exit::JobsFailed,
            Error::Spec { .. } => Exit::InvalidSpec,
            Error::Plan { .. } => Exit::Unplannable,
            Error::Exists { .. } => Exit::Exists,
            Error::Render(_) | Error::RenderJob { .. } => Exit::Template,
            Error::Locked { .. } => Exit::Locked,
            Error::Slurm(_) | Error::Rejected { .. } => Exit::Slurm,
            Error::Usage(_) => Exit::Usage,
            Error::UnknownOptions(_) => Exit::EngineOptions,
            Error::Aggregate(e) => match e {
                sweep_aggregate::Error::NothingFound { .. }
                | sweep_aggregate::Error::NothingReadable { .. } => Exit::NoResults,
                sweep_aggregate::Error::Polars(_) => Exit::Internal,
                _ => Exit::Io,
            },
        }
    }

    pub fn render(&self) -> String {
        match self {
            Error::Spec { file, text, error } => Diagnostic {
                severity: "error",
                message: error.to_string(),
                file,
                source: Some(text),
                location: error.location,
                notes: Vec::new(),
                help: error.help.clone(),
            }
            .render(),
            Error::Plan { file, text, source_map, error } => Diagnostic {
                severity: "error",
                message: error.to_string(),
                file,
                source: Some(text),
                location: error.path().and_then(|path| source_map.nearest(&path, true)),
                notes: Vec::new(),
                help: error.help(),
            }
            .render(),
            Error::Exists { .. } => {
                format!("error: {self}\n  = help: choose a new folder\n")
            }
            Error::Render(source) | Error::RenderJob { source, .. } => {
                // minijinja's error shows the template lines around the problem.
                let detail = match source {
                    sweep_templates::RenderError::Template { source, .. } => format!("\n{source:#}"),
                    _ => String::new(),
                };
                format!("error: {self}{detail}\n")
            }
            Error::Locked { .. } => {
                format!("error: {self}\n  = help: wait for it to finish; remove the lock file only if no submit is running\n")
            }
            Error::Slurm(sweep_slurm::driver::SlurmError::Missing { .. }) => format!(
                "error: {self}\n  = help: submit from a login node of the cluster, or run the sweep on this machine with `--executor local`\n"
            ),
            Error::NotASweep { .. } => {
                format!("error: {self}\n  = help: `--resume` continues the folder an earlier `sweep submit -o DIR` created\n")
            }
            Error::JobsFailed { .. } => format!(
                "error: {self}\n  = help: `sweep status DIR --points` shows each point's reason; `sweep submit FILE -o DIR --resume` reruns what has no result\n"
            ),
            Error::Aggregate(sweep_aggregate::Error::NothingFound { .. }) => format!(
                "error: {self}\n  = help: give a folder `sweep submit -o` created, or one holding aiperf runs (profile_export_aiperf.json)\n"
            ),
            Error::Aggregate(sweep_aggregate::Error::NothingReadable { .. }) => format!(
                "error: {self}\n  = help: `sweep status DIR --points` shows why points have no result\n"
            ),
            Error::UnknownOptions(unknown) => {
                let mut out = format!("error: {self}\n");
                for u in unknown {
                    let role = u.step.rsplit_once('_').map_or(u.step.as_str(), |(role, _)| role);
                    let closest = u.closest.as_ref().map(|c| format!("; the closest it takes is `{c}`")).unwrap_or_default();
                    out.push_str(&format!(
                        "  job `{}`, {} ({role}): `{}` does not take `{}`{closest}\n",
                        u.job, u.step, u.program, u.option
                    ));
                }
                out.push_str("  = help: fix the role's `engine_args` (or the template that adds the option); `--no-check` skips this check\n");
                out
            }
            Error::Read { .. }
            | Error::Output(_)
            | Error::Usage(_)
            | Error::Aggregate(_)
            | Error::Write { .. }
            | Error::Slurm(_)
            | Error::Rejected { .. } => format!("error: {self}\n"),
        }
    }
}
