//! The command's errors, each with its exit code and its rendering for stderr.

use sweep_folder::FolderError;
use sweep_submit::pipeline::PipelineError;
use sweep_submit::SubmitError;

use crate::diagnostic::Diagnostic;
use crate::exit::Exit;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The spec file could not be read, is invalid, or cannot be planned.
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    /// Writing the output failed.
    #[error("cannot write the output: {0}")]
    Output(#[source] std::io::Error),
    /// A file the command was asked to read could not be read.
    #[error("cannot read `{}`: {source}", path.display())]
    Read {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file the command was asked to write could not be written.
    #[error("cannot write `{}`: {source}", path.display())]
    Write {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `sweep compare`: the two sides measured different things (a model, an engine, a
    /// workload) and `--allow` does not say so.
    #[error("the sweeps cannot be compared: {0}")]
    Incomparable(String),
    /// The results history could not be opened, read or written.
    #[error("{0}")]
    History(#[from] sweep_history::HistoryError),
    /// The cases file of `sweep ci` is invalid: a key, at its line.
    #[error("{error}")]
    Cases { file: std::path::PathBuf, text: String, error: sweep_ci::CasesError },
    /// `sweep ci`: cases whose sweep could not run or measured nothing.
    #[error("{failed} of {total} case(s) failed to run")]
    CasesFailed { failed: usize, total: usize },
    /// `sweep history add`: the sweep has no valid measured point to keep.
    #[error("{}: none of its {points} points is valid and measured; nothing was added", dir.display())]
    NothingToKeep { dir: std::path::PathBuf, points: usize },
    /// `sweep explore`: the budget does not cover the cheapest job.
    #[error("the budget of {budget:.4} GPU-hours is below the cheapest job's predicted cost: {job} at {cost:.4} GPU-hours")]
    BudgetTooSmall { budget: f64, job: String, cost: f64 },
    /// `sweep explore`: the output folder exists but is not an exploration (no `explore.json`).
    #[error("{}: exists and holds no explore.json; `sweep explore` resumes only its own folders", dir.display())]
    NotExplore { dir: std::path::PathBuf },
    /// A results file (`results.json`) written by a newer sweep, in a format this one does not
    /// read.
    #[error("{}: written in results format {format} by a newer sweep (this one reads up to {}); upgrade sweep", path.display(), sweep_aggregate::compare::RESULTS_FORMAT)]
    ResultsNewer { path: std::path::PathBuf, format: u64 },
    /// A results file (`results.json`) could not be read.
    #[error("{}: {message}", path.display())]
    Results { path: std::path::PathBuf, message: String },
    /// `sweep compare`: points regressed past their thresholds.
    #[error("{0} point(s) regressed")]
    Regressed(usize),
    /// Rendering, submitting, status or cancel failed.
    #[error("{0}")]
    Submit(#[from] SubmitError),
    /// A file of the sweep folder could not be read or written.
    #[error("{0}")]
    Folder(#[from] FolderError),
    /// The command line is wrong in a way clap cannot see.
    #[error("{0}")]
    Usage(String),
    /// Aggregation failed: nothing found or readable, or an output could not be written.
    #[error("{0}")]
    Aggregate(#[source] sweep_aggregate::Error),
    /// Launch commands give an engine options its own parser does not list (`sweep check`).
    #[error("{} option(s) or value(s) the engines do not take", .0.len())]
    UnknownOptions(Vec<UnknownOption>),
    /// Services a job's step starts are not installed on this node (`sweep check`).
    #[error("{} program(s) the jobs start are not installed on this node", .0.len())]
    MissingPrograms(Vec<sweep_submit::check::MissingProgram>),
    /// `sweep wait`: every job ended, and some points are not done.
    #[error("the sweep ended with {}", .0.sentence())]
    NotDone(sweep_submit::wait::Counts),
    /// `sweep wait --timeout` came before the jobs ended.
    #[error(
        "timed out after {} s with {} job(s) still queued or running; {}",
        after.as_secs(), counts.live_jobs, counts.sentence()
    )]
    WaitTimedOut { after: std::time::Duration, counts: sweep_submit::wait::Counts },
}

pub use sweep_submit::check::UnknownOption;

impl Error {
    pub fn exit(&self) -> Exit {
        match self {
            Error::Pipeline(e) => match e {
                PipelineError::Read { .. } => Exit::Io,
                PipelineError::Spec { .. } => Exit::InvalidSpec,
                PipelineError::Plan { .. } => Exit::Unplannable,
                PipelineError::Usage(_) => Exit::Usage,
            },
            Error::Output(_) | Error::Write { .. } | Error::Read { .. } => Exit::Io,
            Error::Incomparable(_) => Exit::Incomparable,
            Error::Regressed(_) => Exit::Regressed,
            Error::History(e) => match e {
                sweep_history::HistoryError::Locked { .. } => Exit::Locked,
                sweep_history::HistoryError::Newer { .. } => Exit::NewerFormat,
                sweep_history::HistoryError::NoMatch { .. } => Exit::NotInHistory,
                _ => Exit::Io,
            },
            Error::Results { .. } => Exit::Io,
            Error::ResultsNewer { .. } => Exit::NewerFormat,
            Error::NothingToKeep { .. } => Exit::NoResults,
            Error::BudgetTooSmall { .. } => Exit::Usage,
            Error::NotExplore { .. } => Exit::Exists,
            Error::Cases { .. } => Exit::InvalidSpec,
            Error::CasesFailed { .. } => Exit::JobsFailed,
            Error::Submit(e) => match e {
                SubmitError::Folder(e) => folder_exit(e),
                SubmitError::Write { .. } | SubmitError::Read { .. } | SubmitError::Run { .. } => Exit::Io,
                SubmitError::Exists { .. } => Exit::Exists,
                SubmitError::Templates(_) | SubmitError::RenderJob { .. } => Exit::Template,
                SubmitError::Slurm(_) | SubmitError::Rejected { .. } | SubmitError::NotInAllocation => {
                    Exit::Slurm
                }
                SubmitError::TooLarge { .. } | SubmitError::Allocation(_) => Exit::Unplannable,
                SubmitError::JobsFailed { .. } => Exit::JobsFailed,
                SubmitError::Interrupted { signal, .. } => match signal {
                    sweep_submit::interrupt::Interrupted::Interrupt => Exit::Interrupted,
                    sweep_submit::interrupt::Interrupted::Terminate => Exit::Terminated,
                },
                SubmitError::Signals(_) => Exit::Internal,
            },
            Error::Folder(e) => folder_exit(e),
            Error::Usage(_) => Exit::Usage,
            Error::UnknownOptions(_) | Error::MissingPrograms(_) => Exit::EngineOptions,
            Error::NotDone(_) => Exit::PointsNotDone,
            Error::WaitTimedOut { .. } => Exit::WaitTimedOut,
            Error::Aggregate(e) => match e {
                sweep_aggregate::Error::NothingFound { .. }
                | sweep_aggregate::Error::NothingReadable { .. } => Exit::NoResults,
                sweep_aggregate::Error::MixedVersions { .. } => Exit::MixedVersions,
                sweep_aggregate::Error::Folder(e) => folder_exit(e),
                sweep_aggregate::Error::Polars(_) => Exit::Internal,
                _ => Exit::Io,
            },
        }
    }

    pub fn render(&self) -> String {
        match self {
            Error::Pipeline(PipelineError::Spec { file, text, error }) => Diagnostic {
                severity: "error",
                message: error.to_string(),
                file,
                source: Some(text),
                location: error.location,
                notes: Vec::new(),
                help: error.help.clone(),
            }
            .render(),
            Error::Pipeline(PipelineError::Plan { file, text, source_map, error }) => Diagnostic {
                severity: "error",
                message: error.to_string(),
                file,
                source: Some(text),
                location: error.path().and_then(|path| source_map.nearest(&path, true)),
                notes: error.notes(),
                help: error.help(),
            }
            .render(),
            Error::Submit(SubmitError::Exists { .. }) => {
                format!("error: {self}\n  = help: choose a new folder\n")
            }
            Error::Submit(SubmitError::Templates(source) | SubmitError::RenderJob { source, .. }) => {
                // minijinja's error shows the template lines around the problem.
                let detail = match source {
                    sweep_templates::RenderError::Template { source, .. } => format!("\n{source:#}"),
                    _ => String::new(),
                };
                format!("error: {self}{detail}\n")
            }
            Error::Submit(SubmitError::Slurm(sweep_slurm::driver::SlurmError::Missing { .. })) => format!(
                "error: {self}\n  = help: submit from a login node of the cluster, or run the sweep on this machine with `--executor local`\n"
            ),
            Error::Submit(SubmitError::Folder(FolderError::NotASweep { .. })) | Error::Folder(FolderError::NotASweep { .. }) => {
                format!("error: {self}\n  = help: give the folder an earlier `sweep submit -o DIR` or `sweep render -o DIR` created\n")
            }
            Error::Submit(SubmitError::NotInAllocation) => format!(
                "error: {self}\n  = help: run it inside `salloc --nodes=N` or an sbatch script; without `--in-allocation` each job is a job of its own\n"
            ),
            Error::Submit(SubmitError::TooLarge { .. }) => format!(
                "error: {self}\n  = help: ask for a larger allocation, or leave the job out of the spec (`sweep.exclude`)\n"
            ),
            Error::Submit(SubmitError::JobsFailed { .. }) => format!(
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
                    match &u.value {
                        None => out.push_str(&format!(
                            "  job `{}`, {} ({role}): `{}` does not take `{}`{closest}\n",
                            u.job, u.step, u.program, u.option
                        )),
                        Some((value, choices)) => out.push_str(&format!(
                            "  job `{}`, {} ({role}): `{}` does not take `{} {value}`; it takes {}{closest}\n",
                            u.job,
                            u.step,
                            u.program,
                            u.option,
                            choices.join(", ")
                        )),
                    }
                }
                out.push_str("  = help: fix the role's `engine_args` or `engine.frontend_args` (or the template that adds the option); `--no-check` skips this check\n");
                out
            }
            Error::MissingPrograms(missing) => {
                let mut out = format!("error: {self}\n");
                for m in missing {
                    out.push_str(&format!("  `{}` is not on PATH; it is needed for {}\n", m.program, m.needed_for));
                }
                let fixes: std::collections::BTreeSet<&str> = missing.iter().map(|m| m.fix.as_str()).collect();
                for fix in fixes {
                    out.push_str(&format!("  = help: {fix}; `--no-check` skips this check\n"));
                }
                out
            }
            Error::Aggregate(sweep_aggregate::Error::MixedVersions { .. }) => format!(
                "error: {self}\n  = help: compare like with like, or pass `--allow-mixed-versions` to merge them with a column and groups per version\n"
            ),
            Error::NotDone(_) => format!(
                "error: {self}\n  = help: `sweep status DIR --points` shows each point's reason; `sweep submit FILE -o DIR --resume` reruns what has no result\n"
            ),
            Error::WaitTimedOut { .. } => format!(
                "error: {self}\n  = help: the jobs go on; `sweep wait DIR` again waits for them, `sweep cancel DIR` stops them\n"
            ),
            Error::Incomparable(_) => format!(
                "error: {self}\n  = help: compare like with like, or name the intended difference with `--allow model,engine,workload`\n"
            ),
            Error::Regressed(_) => format!(
                "error: {self}\n  = help: the table above shows each regressed metric's delta and interval; `--threshold` sets how much worse counts\n"
            ),
            Error::Cases { file, text, error } => {
                let display = file.display().to_string();
                let map = sweep_spec::SourceMap::build(text);
                Diagnostic {
                    severity: "error",
                    message: error.to_string(),
                    file: &display,
                    source: Some(text),
                    location: map.nearest(&error.path, false),
                    notes: Vec::new(),
                    help: error.help.clone(),
                }
                .render()
            }
            Error::BudgetTooSmall { .. } => format!(
                "error: {self}\n  = help: raise `--budget-gpu-hours` or `--budget-share`, or narrow the spec\n"
            ),
            Error::NotExplore { .. } => format!(
                "error: {self}\n  = help: choose a new `-o` folder, or `sweep submit --resume` to continue a plain sweep\n"
            ),
            Error::NothingToKeep { .. } => format!(
                "error: {self}\n  = help: `sweep report DIR` lists each point's state and why it is left out\n"
            ),
            Error::CasesFailed { .. } => format!(
                "error: {self}\n  = help: the line of each failed case above says why; its sweep folder is under DIR/cases/\n"
            ),
            Error::History(sweep_history::HistoryError::NoMatch { .. }) => format!(
                "error: {self}\n  = help: `sweep history list` shows the ids and tags there are\n"
            ),
            Error::Pipeline(_)
            | Error::History(_)
            | Error::Results { .. }
            | Error::ResultsNewer { .. }
            | Error::Output(_)
            | Error::Write { .. }
            | Error::Read { .. }
            | Error::Usage(_)
            | Error::Aggregate(_)
            | Error::Submit(_)
            | Error::Folder(_) => format!("error: {self}\n"),
        }
    }
}

/// A folder error's code: a newer format has its own, so that scripts can tell "upgrade sweep"
/// from "the file is broken".
fn folder_exit(error: &FolderError) -> Exit {
    match error {
        FolderError::Locked { .. } => Exit::Locked,
        FolderError::Newer { .. } => Exit::NewerFormat,
        FolderError::Read { .. }
        | FolderError::Write { .. }
        | FolderError::Parse { .. }
        | FolderError::NotASweep { .. } => Exit::Io,
    }
}
