//! `sweep submit`, `sweep status` and `sweep cancel`: a sweep folder run on a SLURM cluster or
//! on this machine (the local executor). The running is `sweep_submit::submit`'s; this prints.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use sweep_folder::{Executor, SweepDir};
use sweep_submit::submit::{self as library, JobRow, Outcome};

use crate::error::Error;
use crate::prepare::{self, Console, Settings};

pub use library::Options;

pub fn submit(settings: &mut Settings, in_allocation: bool, options: Options) -> Result<(), Error> {
    // Everything is resolved first, so a login node without SLURM (or a shell outside the
    // allocation asked for) leaves no folder behind.
    let inside = sweep_submit::allocation::Allocation::from_env(|key| std::env::var(key).ok());
    if in_allocation {
        settings.options.allocation = Some(inside?);
    } else if let Ok(allocation) = &inside {
        if settings.options.executor.is_none() && !options.dry_run {
            eprintln!(
                "note: this shell is inside allocation {} ({} nodes); `--in-allocation` runs the jobs in it instead of queueing them",
                allocation.job_id,
                allocation.nodes.len()
            );
        }
    }
    let prepared = prepare::prepare(settings)?;
    prepare::check_unless_told(&prepared, settings)?;
    let executor_given = settings.options.executor.is_some() || settings.options.allocation.is_some();
    match library::run(prepared, &settings.output, executor_given, options, &mut Console)? {
        Outcome::Nothing { dir } => {
            eprintln!("nothing to run in {}: every point has a result or is queued", dir.display());
        }
        Outcome::DryRun { dir, executor, jobs } => {
            let sweep = SweepDir::open(&dir)?;
            let manifest = sweep.read_manifest()?;
            let listed: Vec<prepare::Listed> = jobs
                .iter()
                .map(|job| {
                    let note = if job.held {
                        "  # held: `sweep wait --submit-more` submits it when a queued job ends"
                    } else {
                        ""
                    };
                    let chain = job.chain.map(|c| format!("  # chain {c}")).unwrap_or_default();
                    prepare::Listed {
                        index: job.index,
                        command: Some(format!("{}{chain}{note}", job.command)),
                    }
                })
                .collect();
            let mut stdout = std::io::stdout().lock();
            prepare::print_jobs(&mut stdout, &sweep, &manifest, &listed, settings.job.as_deref())?;
            let none = if executor == Executor::Slurm { "none submitted" } else { "none run" };
            eprintln!("dry run: {} jobs rendered into {}, {none}", jobs.len(), dir.display());
        }
        Outcome::Ran { dir, ran, total } => {
            let sweep_submit::local::Ran { completed, failed, interrupted } = ran;
            eprintln!(
                "{completed} of {total} jobs completed, {failed} did not; `sweep status {}` shows each point",
                dir.display()
            );
            if let Some(signal) = interrupted {
                return Err(sweep_submit::SubmitError::Interrupted { signal, completed, total }.into());
            }
            if failed > 0 {
                return Err(sweep_submit::SubmitError::JobsFailed { failed, total }.into());
            }
        }
        Outcome::Submitted { dir, submitted, rejected, held: _, total } => {
            eprintln!("submitted {submitted} of {total} jobs from {} ({rejected} rejected)", dir.display());
            if rejected > 0 {
                return Err(sweep_submit::SubmitError::Rejected { rejected, total }.into());
            }
        }
    }
    Ok(())
}

fn summary(points: &[library::PointRow]) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for p in points {
        *counts.entry(p.state.as_str()).or_default() += 1;
    }
    counts.iter().map(|(s, n)| format!("{n} {s}")).collect::<Vec<_>>().join(", ")
}

fn print_table(out: &mut impl Write, rows: &[JobRow], points: bool) -> std::io::Result<()> {
    let width = rows.iter().map(|r| r.dir.trim_start_matches("jobs/").len()).max().unwrap_or(3).max(3);
    writeln!(out, "{:<width$}  {:>8}  {:<10}  {:<24}  REASON", "JOB", "SLURM ID", "STATE", "POINTS")?;
    for row in rows {
        writeln!(
            out,
            "{:<width$}  {:>8}  {:<10}  {:<24}  {}",
            row.dir.trim_start_matches("jobs/"),
            row.slurm_job_id.as_deref().unwrap_or("-"),
            row.state,
            summary(&row.points),
            row.reason,
        )?;
        if points {
            for p in &row.points {
                writeln!(out, "  {}  {:<10}  {}", p.id, p.state, p.reason)?;
            }
        }
    }
    Ok(())
}

pub fn status(dir: &Path, json: bool, points: bool, watch: Option<f64>) -> Result<(), Error> {
    let sweep = SweepDir::open(dir)?;
    loop {
        let (rows, all_final) = library::status(&sweep)?;
        let mut stdout = std::io::stdout().lock();
        if json {
            let text = serde_json::to_string(&rows).map_err(|e| Error::Output(e.into()))?;
            writeln!(stdout, "{text}").map_err(Error::Output)?;
        } else {
            if watch.is_some() && std::io::IsTerminal::is_terminal(&std::io::stdout()) {
                write!(stdout, "\x1b[2J\x1b[H").map_err(Error::Output)?;
            }
            print_table(&mut stdout, &rows, points).map_err(Error::Output)?;
        }
        drop(stdout);
        match watch {
            Some(seconds) if !all_final => std::thread::sleep(Duration::from_secs_f64(seconds.max(0.5))),
            _ => return Ok(()),
        }
    }
}

pub fn wait(dir: &Path, options: &sweep_submit::wait::Options) -> Result<(), Error> {
    let sweep = SweepDir::open(dir)?;
    match sweep_submit::wait::wait(&sweep, options, &mut Console)? {
        sweep_submit::wait::End::Ended(counts) if counts.all_done() => {
            eprintln!("every job ended: {}", counts.sentence());
            Ok(())
        }
        sweep_submit::wait::End::Ended(counts) => Err(Error::NotDone(counts)),
        sweep_submit::wait::End::TimedOut { after, counts } => Err(Error::WaitTimedOut { after, counts }),
    }
}

pub fn cancel(dir: &Path) -> Result<(), Error> {
    let sweep = SweepDir::open(dir)?;
    let cancelled = library::cancel(&sweep)?;
    let mut stdout = std::io::stdout().lock();
    for id in &cancelled {
        writeln!(stdout, "{id}").map_err(Error::Output)?;
    }
    eprintln!("cancelled {} job(s) of {}", cancelled.len(), dir.display());
    Ok(())
}
