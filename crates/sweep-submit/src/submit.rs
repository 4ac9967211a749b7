//! A rendered sweep run: sent to SLURM, or run on this machine by the local executor; and what
//! `sweep status` and `sweep cancel` do with it afterwards.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use sweep_folder::{BenchmarkState, Executor, JobState, Manifest, ManifestJob, SweepDir};
use sweep_slurm::driver;

use crate::render::{self, Prepared};
use crate::{Reporter, SubmitError};

/// Submissions per second at most: a large sweep must not flood the controller.
const SUBMISSIONS_PER_SECOND: u32 = 10;

#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Render and list the commands that would run; run nothing.
    pub dry_run: bool,
    /// Add jobs for the points with no complete result to an existing sweep folder.
    pub resume: bool,
    /// Each job waits for the one before it (`--dependency=afterany`).
    pub sequential: bool,
}

/// How a submit ended.
#[derive(Debug)]
pub enum Outcome {
    /// Every point has a result or is queued: nothing was added.
    Nothing { dir: PathBuf },
    /// `--dry-run`: the folder is rendered; these are the commands that would run it.
    DryRun { dir: PathBuf, executor: Executor, commands: Vec<String> },
    /// The local executor ran the jobs.
    Ran { dir: PathBuf, completed: usize, failed: usize, total: usize },
    /// The jobs were sent to SLURM.
    Submitted { dir: PathBuf, submitted: usize, rejected: usize, total: usize },
}

/// SLURM jobs need `sbatch` here (a dry run does not).
fn check_sbatch(executor: Executor, options: Options) -> Result<(), SubmitError> {
    if executor == Executor::Slurm && !options.dry_run && !driver::available() {
        return Err(SubmitError::Slurm(driver::SlurmError::Missing { command: "sbatch" }));
    }
    Ok(())
}

/// Renders `prepared` into `output` (or, with `--resume`, adds to the folder there) and runs or
/// submits what it added. `executor_given` says whether the command line chose the executor;
/// a resume otherwise keeps the folder's.
pub fn run(
    mut prepared: Prepared,
    output: &Path,
    executor_given: bool,
    options: Options,
    reporter: &mut dyn Reporter,
) -> Result<Outcome, SubmitError> {
    let (sweep, indices, _lock) = if options.resume {
        let sweep = SweepDir::open(render::absolute(output)?)?;
        let lock = sweep.lock()?;
        let manifest = sweep.read_manifest()?;
        if !executor_given {
            prepared.executor = manifest.executor;
        }
        check_sbatch(prepared.executor, options)?;
        let live = live_points(&manifest)?;
        let resumed = render::resume(&prepared, &sweep, &live)?;
        reporter.note(&format!(
            "resume: {} points already complete, {} queued or running, {} to run in {} new job folders",
            resumed.complete,
            resumed.live,
            resumed.to_run,
            resumed.added.len()
        ));
        (sweep, resumed.added, lock)
    } else {
        check_sbatch(prepared.executor, options)?;
        let rendered = render::write(&prepared, output)?;
        reporter.note(&format!(
            "rendered {} job scripts for {} points into {}",
            rendered.jobs,
            rendered.points,
            rendered.dir.display()
        ));
        let sweep = SweepDir::open(rendered.dir)?;
        let lock = sweep.lock()?;
        (sweep, (0..rendered.jobs).collect(), lock)
    };
    let dir = sweep.path().to_owned();
    let mut manifest = sweep.read_manifest()?;
    if indices.is_empty() {
        return Ok(Outcome::Nothing { dir });
    }
    let executor = prepared.executor;
    if options.dry_run {
        let commands = dry_run_commands(&sweep, &manifest, &indices, executor, options.sequential);
        return Ok(Outcome::DryRun { dir, executor, commands });
    }
    match executor {
        Executor::Local => {
            reporter.note(&format!(
                "running {} jobs on this machine (local executor); results in {}",
                indices.len(),
                dir.display()
            ));
            let (completed, failed) = crate::local::run(&sweep, &mut manifest, &indices, reporter)?;
            Ok(Outcome::Ran { dir, completed, failed, total: indices.len() })
        }
        Executor::Slurm => submit_slurm(&sweep, &mut manifest, &indices, options.sequential, reporter),
    }
}

fn script(sweep: &SweepDir, job: &ManifestJob) -> PathBuf {
    sweep.job(&job.dir).script_path(&job.script)
}

/// The command lines that would run the jobs at `indices`. In a chain, the first job depends on
/// nothing and each later one on the job before it (`$PREVIOUS`: its id once submitted).
fn dry_run_commands(
    sweep: &SweepDir,
    manifest: &Manifest,
    indices: &[usize],
    executor: Executor,
    sequential: bool,
) -> Vec<String> {
    indices
        .iter()
        .enumerate()
        .map(|(n, &i)| {
            let path = sweep_templates::quote(&script(sweep, &manifest.jobs[i]).display().to_string());
            match executor {
                Executor::Local => format!("bash {path}"),
                Executor::Slurm if sequential && n > 0 => {
                    format!("sbatch --parsable --dependency=afterany:$PREVIOUS {path}")
                }
                Executor::Slurm => format!("sbatch --parsable {path}"),
            }
        })
        .collect()
}

/// The points of jobs SLURM still has queued or running: a resume must not run them twice.
fn live_points(manifest: &Manifest) -> Result<BTreeSet<String>, SubmitError> {
    let ids = manifest.slurm_ids();
    if ids.is_empty() || !driver::available() {
        return Ok(BTreeSet::new());
    }
    let queue = driver::squeue(&ids).map_err(SubmitError::Slurm)?;
    let mut live = BTreeSet::new();
    for job in &manifest.jobs {
        let queued = job
            .slurm_job_id
            .as_ref()
            .and_then(|id| queue.get(id))
            .is_some_and(|e| !driver::is_final(&e.state));
        if queued {
            live.extend(job.points.iter().cloned());
        }
    }
    Ok(live)
}

fn submit_slurm(
    sweep: &SweepDir,
    manifest: &mut Manifest,
    indices: &[usize],
    sequential: bool,
    reporter: &mut dyn Reporter,
) -> Result<Outcome, SubmitError> {
    let (mut submitted, mut rejected) = (0usize, 0usize);
    let mut previous: Option<String> = None;
    for (n, &index) in indices.iter().enumerate() {
        let script = script(sweep, &manifest.jobs[index]);
        let extra: Vec<String> = match (&previous, sequential) {
            (Some(id), true) => vec![format!("--dependency=afterany:{id}")],
            _ => Vec::new(),
        };
        if n > 0 {
            std::thread::sleep(Duration::from_secs(1) / SUBMISSIONS_PER_SECOND);
        }
        let entry = &mut manifest.jobs[index];
        match driver::sbatch(&script, &extra) {
            Ok(id) => {
                entry.state = JobState::Submitted;
                entry.slurm_job_id = Some(id.clone());
                submitted += 1;
                let line = format!("{}\t{id}", entry.name);
                previous = Some(id);
                // Recorded before it is shown: an interrupted submit loses nothing it did.
                sweep.write_manifest(manifest)?;
                reporter
                    .data(&line)
                    .map_err(|source| SubmitError::Write { path: "stdout".into(), source })?;
            }
            Err(driver::SlurmError::Refused { message, .. }) => {
                reporter.note(&format!("error: SLURM rejected job `{}`: {message}", entry.name));
                entry.state = JobState::Rejected;
                entry.reason = Some(message);
                rejected += 1;
                sweep.write_manifest(manifest)?;
            }
            Err(error) => return Err(SubmitError::Slurm(error)),
        }
    }
    Ok(Outcome::Submitted { dir: sweep.path().to_owned(), submitted, rejected, total: indices.len() })
}

/// One point in `sweep status`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PointRow {
    pub id: String,
    /// The point marker's state, or `pending` when it has none yet.
    pub state: String,
    /// The first line of the marker's reason.
    pub reason: String,
}

/// One job folder in `sweep status`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobRow {
    pub job: String,
    pub dir: String,
    pub slurm_job_id: Option<String>,
    /// SLURM's state while it knows the job (`PENDING`, `RUNNING`, `COMPLETED`, …), else the
    /// job's markers'.
    pub state: String,
    pub reason: String,
    pub points: Vec<PointRow>,
}

/// Every job folder's state and its points', and whether every job has ended.
pub fn status(sweep: &SweepDir) -> Result<(Vec<JobRow>, bool), SubmitError> {
    let manifest = sweep.read_manifest()?;
    let ids = manifest.slurm_ids();
    let queue =
        if ids.is_empty() { BTreeMap::new() } else { driver::squeue(&ids).map_err(SubmitError::Slurm)? };
    let forgotten: Vec<String> = ids.iter().filter(|id| !queue.contains_key(*id)).cloned().collect();
    let accounting = driver::sacct(&forgotten);
    let mut all_final = true;
    let rows = manifest
        .jobs
        .iter()
        .map(|job| {
            let (state, reason) = job_state(sweep, job, &queue, &accounting);
            all_final &= !matches!(
                state.as_str(),
                "PENDING"
                    | "RUNNING"
                    | "CONFIGURING"
                    | "COMPLETING"
                    | "SUBMITTED"
                    | "RENDERED"
                    | "SUSPENDED"
                    | "REQUEUED"
            );
            let markers = sweep.job(&job.dir).point_states();
            let points = job
                .points
                .iter()
                .map(|id| match markers.get(id) {
                    Some(m) => PointRow {
                        id: id.clone(),
                        state: m.state.as_str().to_owned(),
                        reason: m.short_reason().to_owned(),
                    },
                    None => PointRow { id: id.clone(), state: "pending".into(), reason: String::new() },
                })
                .collect();
            JobRow {
                job: job.name.clone(),
                dir: job.dir.clone(),
                slurm_job_id: job.slurm_job_id.clone(),
                state,
                reason,
                points,
            }
        })
        .collect();
    Ok((rows, all_final))
}

/// One job's state: SLURM's while it remembers the job, else `sacct`'s when accounting is on,
/// else what the runner's markers say; for local jobs, the manifest's.
fn job_state(
    sweep: &SweepDir,
    job: &ManifestJob,
    queue: &BTreeMap<String, driver::QueueEntry>,
    accounting: &BTreeMap<String, driver::QueueEntry>,
) -> (String, String) {
    let Some(id) = &job.slurm_job_id else {
        return (job.state.as_str().to_uppercase(), job.reason.clone().unwrap_or_default());
    };
    if let Some(entry) = queue.get(id).or_else(|| accounting.get(id)) {
        return (entry.state.clone(), entry.reason.clone());
    }
    match sweep.job(&job.dir).read_benchmark_status() {
        Ok(Some(status)) if status.state == BenchmarkState::Done => {
            ("COMPLETED".into(), "from the job's status marker".into())
        }
        Ok(Some(status)) => (
            status.state.as_str().to_uppercase(),
            status.reason.lines().next().unwrap_or_default().to_owned(),
        ),
        Ok(None) => ("ENDED".into(), "SLURM has forgotten the job and it left no status marker".into()),
        Err(error) => ("ENDED".into(), format!("its status marker cannot be read: {error}")),
    }
}

/// Cancels the sweep's jobs SLURM still has queued or running (by id only); returns their ids.
pub fn cancel(sweep: &SweepDir) -> Result<Vec<String>, SubmitError> {
    let manifest = sweep.read_manifest()?;
    let ids = manifest.slurm_ids();
    let queue = driver::squeue(&ids).map_err(SubmitError::Slurm)?;
    let live: Vec<String> =
        ids.into_iter().filter(|id| queue.get(id).is_some_and(|e| !driver::is_final(&e.state))).collect();
    driver::scancel(&live).map_err(SubmitError::Slurm)?;
    Ok(live)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(names: &[&str]) -> Manifest {
        Manifest {
            sweep: "s".into(),
            executor: Executor::Slurm,
            resumes: 0,
            jobs: names
                .iter()
                .map(|name| ManifestJob {
                    id: "0000000000000001".into(),
                    name: (*name).into(),
                    dir: format!("jobs/{name}"),
                    script: "job.sbatch".into(),
                    attempt: 1,
                    state: JobState::Rendered,
                    slurm_job_id: None,
                    reason: None,
                    points: Vec::new(),
                })
                .collect(),
        }
    }

    #[test]
    fn a_dry_run_chain_starts_with_no_dependency() {
        let sweep = SweepDir::new("/sweeps/s");
        let m = manifest(&["a", "b", "c"]);
        let chained = dry_run_commands(&sweep, &m, &[0, 1, 2], Executor::Slurm, true);
        assert_eq!(
            chained,
            [
                "sbatch --parsable /sweeps/s/jobs/a/job.sbatch",
                "sbatch --parsable --dependency=afterany:$PREVIOUS /sweeps/s/jobs/b/job.sbatch",
                "sbatch --parsable --dependency=afterany:$PREVIOUS /sweeps/s/jobs/c/job.sbatch",
            ]
        );
        let free = dry_run_commands(&sweep, &m, &[2], Executor::Slurm, false);
        assert_eq!(free, ["sbatch --parsable /sweeps/s/jobs/c/job.sbatch"]);
        let local = dry_run_commands(&sweep, &m, &[0], Executor::Local, true);
        assert_eq!(local, ["bash /sweeps/s/jobs/a/job.sbatch"]);
    }
}
