//! What the commands that plan share, so that none calls another: the spec planned through
//! the library's one pipeline ([`sweep_submit::pipeline`]) with its warnings shown, made ready to
//! render, the engines' check reported, and a job's files printed.

use std::io::Write;
use std::path::{Path, PathBuf};

use sweep_submit::check::{Outcome, Report};
use sweep_submit::pipeline::{Limits, Planned};
use sweep_submit::render::{self as library, Prepared};

use crate::diagnostic::Diagnostic;
use crate::error::Error;

#[derive(Debug)]
pub struct Settings {
    pub file: PathBuf,
    pub output: PathBuf,
    pub limits: Limits,
    pub options: library::Options,
    /// Skip `sweep check` (the engines' own option parsers) before writing.
    pub no_check: bool,
    /// Print each job's script and engine configs on stdout (`render --print`, `submit
    /// --dry-run`), only job `job`'s when given.
    pub print: bool,
    pub job: Option<String>,
}

/// Reads, validates and plans the spec at `file` (the library's pipeline); its warnings go to
/// stderr, each pointing at its line.
pub fn planned(file: &Path, limits: Limits) -> Result<Planned, Error> {
    let started = std::time::Instant::now();
    let planned = sweep_submit::pipeline::plan(file, limits)?;
    tracing::info!(
        jobs = planned.plan.jobs.len(),
        points = planned.plan.points.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "planned"
    );
    let display = file.display().to_string();
    let mut stderr = std::io::stderr().lock();
    for warning in &planned.plan.warnings {
        let diagnostic = Diagnostic {
            severity: "warning",
            message: warning.message.clone(),
            file: &display,
            source: Some(&planned.text),
            location: planned.document.source_map.nearest(&warning.path, false),
            notes: Vec::new(),
            help: None,
        };
        let _ = stderr.write_all(diagnostic.render().as_bytes());
    }
    Ok(planned)
}

/// The spec read, planned and made ready to render: nothing is written yet. `--job` must name
/// one of the plan's jobs.
pub fn prepare(settings: &Settings) -> Result<Prepared, Error> {
    let planned = planned(&settings.file, settings.limits)?;
    let plan = &planned.plan;
    if let Some(name) = &settings.job {
        if !plan.jobs.iter().any(|j| &j.name == name) {
            let names: Vec<&str> = plan.jobs.iter().map(|j| j.name.as_str()).collect();
            return Err(Error::Usage(format!(
                "--job {name}: the plan has no such job; its jobs are {}",
                names.join(", ")
            )));
        }
    }
    Ok(planned.prepare(&settings.options)?)
}

/// Messages to stderr, data lines to stdout as they come.
pub struct Console;

impl sweep_submit::Reporter for Console {
    fn note(&mut self, message: &str) {
        eprintln!("{message}");
    }

    fn data(&mut self, line: &str) -> std::io::Result<()> {
        let mut stdout = std::io::stdout().lock();
        match writeln!(stdout, "{line}").and_then(|()| stdout.flush()) {
            // A reader that stopped early (`sweep submit … | head -1`) stops nothing: the
            // manifest records every job, printed or not.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            other => other,
        }
    }
}

/// A job to print: its manifest index and the command that would start it.
pub struct Listed {
    pub index: usize,
    pub command: Option<String>,
}

/// Each job's files under a header, in the order given; only job `only`'s when set. The
/// headers (`==> job … <==` per job, `--- path ---` per file) are `head`'s style, so a reader
/// can split the output again.
pub fn print_jobs(
    out: &mut impl Write,
    sweep: &sweep_folder::SweepDir,
    manifest: &sweep_folder::Manifest,
    jobs: &[Listed],
    only: Option<&str>,
) -> Result<(), Error> {
    let total = jobs.len();
    for (n, listed) in jobs.iter().enumerate() {
        let job = &manifest.jobs[listed.index];
        if only.is_some_and(|name| name != job.name) {
            continue;
        }
        let files = library::job_files(sweep, job)?;
        let w = |out: &mut dyn Write| -> std::io::Result<()> {
            let points = match job.points.len() {
                1 => "1 point".to_owned(),
                n => format!("{n} points"),
            };
            writeln!(out, "==> job {} ({} of {total}, {points}): {} <==", job.name, n + 1, job.dir)?;
            if let Some(command) = &listed.command {
                writeln!(out, "$ {command}")?;
            }
            for (path, text) in &files {
                writeln!(out, "--- {path} ({}) ---", size(text.len() as u64))?;
                out.write_all(text.as_bytes())?;
                if !text.ends_with('\n') {
                    writeln!(out)?;
                }
            }
            writeln!(out)
        };
        w(out).map_err(Error::Output)?;
    }
    Ok(())
}

/// A size for people: bytes, KiB or MiB.
pub fn size(bytes: u64) -> String {
    match bytes {
        0..=1023 => format!("{bytes} B"),
        1024..=1_048_575 => format!("{:.1} KiB", bytes as f64 / 1024.0),
        _ => format!("{:.1} MiB", bytes as f64 / 1_048_576.0),
    }
}

/// `sweep check` before anything is written, unless `--no-check`.
pub fn check_unless_told(prepared: &Prepared, settings: &Settings) -> Result<(), Error> {
    if settings.no_check {
        return Ok(());
    }
    report_check(sweep_submit::check::check(prepared)?)
}

/// Tells what was checked on stderr; an unknown option is an error.
pub fn report_check(report: Report) -> Result<(), Error> {
    for (program, _, outcome) in &report.programs {
        match outcome {
            Outcome::Checked { known, given } => {
                eprintln!("check: `{}`: {given} options checked against its {known}", program.name);
            }
            Outcome::NotChecked(why) => eprintln!("check: `{}` not checked: {why}", program.name),
        }
    }
    if !report.unknown.is_empty() {
        Err(Error::UnknownOptions(report.unknown))
    } else if !report.missing.is_empty() {
        Err(Error::MissingPrograms(report.missing))
    } else {
        Ok(())
    }
}

/// Takes what a run or submission started to its end, for a command that reads the results
/// next (`sweep ci`, `sweep explore`): an interrupted run and SLURM's rejections are errors,
/// submitted jobs are waited for (polling from 2 s up to 30 s).
pub fn run_to_end(
    outcome: sweep_submit::submit::Outcome,
    sweep: &sweep_folder::SweepDir,
) -> Result<(), Error> {
    use sweep_submit::submit::Outcome;
    match outcome {
        Outcome::Ran { ran, total, .. } => {
            if let Some(signal) = ran.interrupted {
                return Err(sweep_submit::SubmitError::Interrupted {
                    signal,
                    completed: ran.completed,
                    total,
                }
                .into());
            }
        }
        Outcome::Submitted { rejected, total, .. } if rejected > 0 => {
            return Err(sweep_submit::SubmitError::Rejected { rejected, total }.into());
        }
        Outcome::Submitted { .. } => {
            sweep_submit::wait::wait(sweep, &wait_options(), &mut Console)?;
        }
        Outcome::Nothing { .. } | Outcome::DryRun { .. } => {}
    }
    Ok(())
}

/// Waiting for jobs to end: until every one has, polling from 2 s up to 30 s. Jobs left
/// `rendered` (never submitted) count as not run, not as waiting.
pub fn wait_options() -> sweep_submit::wait::Options {
    sweep_submit::wait::Options {
        timeout: None,
        submit_more: false,
        interval: std::time::Duration::from_secs(2),
        max_interval: std::time::Duration::from_secs(30),
    }
}
