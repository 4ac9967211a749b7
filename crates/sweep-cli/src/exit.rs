//! The exit codes of `sweep`, documented in `docs/exit-codes.md`. Scripts depend on them: never
//! renumber one.

use std::process::ExitCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Everything asked for was done.
    Success = 0,
    /// A bug in sweep: please report it.
    Internal = 1,
    /// The command line is wrong (unknown flag, missing argument).
    Usage = 2,
    /// The spec file is invalid: YAML syntax, unknown or missing keys, wrong types or values,
    /// expressions that do not compile.
    InvalidSpec = 3,
    /// The spec is valid but cannot be planned: too many points, nothing left after filtering,
    /// a layout that cannot be placed, an expression that fails for some point.
    Unplannable = 4,
    /// A file could not be read or written.
    Io = 5,
    /// The output folder exists; sweep never overwrites results.
    Exists = 6,
    /// A template failed to load or render (a user template's syntax, an undefined variable, a
    /// value a template filter refused, an engine kind without templates, a `custom` engine's
    /// missing command).
    Template = 7,
    /// Another `sweep submit` is working on the same sweep folder, or another process is
    /// writing the results history (after waiting 5 s for it).
    Locked = 8,
    /// SLURM is not installed here, or refused a command, or rejected some of the jobs (the
    /// others were submitted; the manifest has each rejection's reason).
    Slurm = 9,
    /// Jobs run by the local executor did not all complete (each point's marker says why;
    /// what was measured is kept).
    JobsFailed = 10,
    /// `sweep aggregate` / `report` found no point, or could read none of those it found
    /// (each unreadable file was named in a warning).
    NoResults = 11,
    /// `sweep check` (and `render`/`submit` before writing anything): a launch command gives an
    /// engine an option that the engine's own `--help` does not list.
    EngineOptions = 12,
    /// A file of the sweep folder, or the results history, was written by a newer sweep, in a
    /// format this one does not read (the message names the version that wrote it).
    NewerFormat = 13,
    /// `sweep aggregate` / `report`: the points ran on different versions of an engine; pass
    /// `--allow-mixed-versions` to merge them grouped by version.
    MixedVersions = 14,
    /// `sweep wait`: every job of the sweep ended, and some points are not done (the message
    /// counts them by state).
    PointsNotDone = 15,
    /// `sweep wait --timeout`: jobs were still queued or running when the time was up (they go
    /// on).
    WaitTimedOut = 16,
    /// `sweep compare`: a point of the candidate regressed past its threshold against the base.
    Regressed = 17,
    /// `sweep compare`: the two sides measured a different model, engine or workload, and
    /// `--allow` does not name the difference.
    Incomparable = 18,
    /// `sweep compare --baseline` / `sweep history show`: no sweep in the history has that id
    /// or tag.
    NotInHistory = 19,
    /// `sweep submit` running jobs itself (local executor, `--in-allocation`) got SIGINT: the
    /// running jobs were stopped and recorded, the rest not started. A second SIGINT exits at
    /// once with the same code.
    Interrupted = 130,
    /// As `Interrupted`, for SIGTERM.
    Terminated = 143,
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit as u8)
    }
}
