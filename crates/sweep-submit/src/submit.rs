//! A rendered sweep run: sent to SLURM, or run on this machine by the local executor; and what
//! `sweep status` and `sweep cancel` do with it afterwards.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use sweep_folder::{
    BenchmarkState, Executor, JobState, Manifest, ManifestJob, QueueLimit, QueueMode, SweepDir,
};
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
    /// At most this many of the sweep's jobs pending or running at once (`--max-in-queue`;
    /// `--sequential` is one chain). A resume without one keeps the folder's.
    pub queue_limit: Option<QueueLimit>,
}

/// How a submit ended.
#[derive(Debug)]
pub enum Outcome {
    /// Every point has a result or is queued: nothing was added.
    Nothing { dir: PathBuf },
    /// `--dry-run`: the folder is rendered; these are the jobs that would run, in order.
    DryRun { dir: PathBuf, executor: Executor, jobs: Vec<DryRunJob> },
    /// The local executor (or an allocation) ran the jobs, or some of them when interrupted.
    Ran { dir: PathBuf, ran: crate::local::Ran, total: usize },
    /// The jobs were sent to SLURM (`held` wait in the folder for `sweep wait --submit-more`).
    Submitted { dir: PathBuf, submitted: usize, rejected: usize, held: usize, total: usize },
}

/// One job of a dry run: its manifest index and the command that would start it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DryRunJob {
    pub index: usize,
    pub command: String,
    /// Its chain with `--max-in-queue` (chains mode).
    pub chain: Option<u32>,
    /// Waves mode: not submitted now, but by `sweep wait --submit-more` once fewer than the
    /// limit are queued.
    pub held: bool,
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
    let (sweep, indices, live, _lock) = if options.resume {
        let sweep = SweepDir::open(render::absolute(output)?)?;
        let lock = sweep.lock()?;
        let manifest = sweep.read_manifest()?;
        if !executor_given {
            prepared.executor = manifest.executor;
        }
        if prepared.executor == Executor::Allocation && prepared.allocation.is_none() {
            return Err(SubmitError::NotInAllocation);
        }
        check_sbatch(prepared.executor, options)?;
        let live = live_jobs(&manifest)?;
        let live_points = live.iter().flat_map(|&i| manifest.jobs[i].points.iter().cloned()).collect();
        let resumed = render::resume(&prepared, &sweep, &live_points)?;
        reporter.note(&format!(
            "resume: {} points already complete, {} queued or running, {} to run in {} new job folders",
            resumed.complete,
            resumed.live,
            resumed.to_run,
            resumed.added.len()
        ));
        let live_ids = live.iter().filter_map(|&i| manifest.jobs[i].slurm_job_id.clone()).collect();
        (sweep, resumed.added, live_ids, lock)
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
        (sweep, (0..rendered.jobs).collect(), Vec::new(), lock)
    };
    execute(&prepared, &sweep, &indices, &live, options, reporter)
}

/// Renders `prepared` into a new sweep folder at `output` and runs nothing: a caller that
/// chooses which jobs to run ([`run_jobs`]) starts here (`sweep explore`).
pub fn render_only(prepared: &Prepared, output: &Path) -> Result<SweepDir, SubmitError> {
    check_sbatch(prepared.executor, Options::default())?;
    let rendered = render::write(prepared, output)?;
    Ok(SweepDir::open(rendered.dir)?)
}

/// Runs (or submits) the jobs at manifest `indices` of a folder [`render_only`] wrote, through
/// `prepared`'s executor; `queue_limit` as `--max-in-queue`. The caller holds the folder's lock
/// (`SweepDir::lock`) for as long as it chooses and runs.
pub fn run_jobs(
    prepared: &Prepared,
    sweep: &SweepDir,
    indices: &[usize],
    queue_limit: Option<QueueLimit>,
    reporter: &mut dyn Reporter,
) -> Result<Outcome, SubmitError> {
    let manifest = sweep.read_manifest()?;
    let live = live_jobs(&manifest)?;
    let live_ids: Vec<String> = live.iter().filter_map(|&i| manifest.jobs[i].slurm_job_id.clone()).collect();
    let options = Options { dry_run: false, resume: false, queue_limit };
    execute(prepared, sweep, indices, &live_ids, options, reporter)
}

/// The jobs at `indices` run, submitted or (with `--dry-run`) listed; the caller holds the lock.
fn execute(
    prepared: &Prepared,
    sweep: &SweepDir,
    indices: &[usize],
    live: &[String],
    options: Options,
    reporter: &mut dyn Reporter,
) -> Result<Outcome, SubmitError> {
    let dir = sweep.path().to_owned();
    let mut manifest = sweep.read_manifest()?;
    if indices.is_empty() {
        return Ok(Outcome::Nothing { dir });
    }
    let executor = prepared.executor;
    if executor == Executor::Slurm && options.queue_limit.is_some() {
        manifest.queue_limit = options.queue_limit;
        sweep.write_manifest(&manifest)?;
    }
    let queue = Queue::new(manifest.queue_limit.filter(|_| executor == Executor::Slurm), live);
    if options.dry_run {
        let jobs = dry_run_jobs(sweep, &manifest, indices, executor, queue);
        return Ok(Outcome::DryRun { dir, executor, jobs });
    }
    match executor {
        Executor::Local => {
            reporter.note(&format!(
                "running {} jobs on this machine (local executor); results in {}",
                indices.len(),
                dir.display()
            ));
            let ran = crate::local::run(sweep, &mut manifest, indices, reporter)?;
            Ok(Outcome::Ran { dir, ran, total: indices.len() })
        }
        Executor::Slurm => submit_slurm(sweep, &mut manifest, indices, queue, reporter),
        Executor::Allocation => {
            let Some((allocation, _)) = prepared.allocation.clone() else {
                return Err(SubmitError::NotInAllocation);
            };
            let items: Vec<crate::allocation::Item> = indices
                .iter()
                .filter_map(|&index| {
                    let position =
                        prepared.plan().jobs.iter().position(|j| j.name == manifest.jobs[index].name)?;
                    let nodes = prepared.plan().jobs[position].layout.nodes;
                    Some(crate::allocation::Item { index, nodes, slot: prepared.port_slot(position)? })
                })
                .collect();
            reporter.note(&format!(
                "running {} jobs inside allocation {} ({} nodes); results in {}",
                items.len(),
                allocation.job_id,
                allocation.nodes.len(),
                dir.display()
            ));
            let ran = crate::allocation::run(sweep, &mut manifest, &allocation, &items, reporter)?;
            Ok(Outcome::Ran { dir, ran, total: indices.len() })
        }
    }
}

fn script(sweep: &SweepDir, job: &ManifestJob) -> PathBuf {
    sweep.job(&job.dir).script_path(&job.script)
}

/// Where each new job goes under a queue limit: the pure part of a submission, shared by the
/// dry run and the real one.
#[derive(Debug, Clone)]
struct Queue {
    limit: Option<QueueLimit>,
    /// Per chain, the job the next one waits for (a live job's SLURM id, or, in a dry run, a
    /// job's name).
    tails: Vec<Option<String>>,
    /// Waves mode: how many may still be submitted now.
    free: usize,
    /// Jobs placed so far.
    placed: usize,
}

/// Where one job goes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Place {
    /// Submitted now, waiting for `after` if given.
    Now { chain: Option<u32>, after: Option<String> },
    /// Waves mode: left in the folder for `sweep wait --submit-more`.
    Held,
}

impl Queue {
    /// `live`: the SLURM ids of the sweep's jobs still queued or running, oldest first. New
    /// chains start behind them, so a resume keeps the limit too.
    fn new(limit: Option<QueueLimit>, live: &[String]) -> Self {
        let width = limit.map_or(0, |l| l.max_in_queue as usize);
        let mut tails = vec![None; width];
        for (k, id) in live.iter().enumerate() {
            if width > 0 {
                tails[k % width] = Some(id.clone());
            }
        }
        Queue { limit, tails, free: width.saturating_sub(live.len()), placed: 0 }
    }

    fn place(&mut self) -> Place {
        let n = self.placed;
        self.placed += 1;
        match self.limit {
            None => Place::Now { chain: None, after: None },
            Some(QueueLimit { mode: QueueMode::Chains, .. }) => {
                let chain = n % self.tails.len();
                Place::Now { chain: Some(chain as u32), after: self.tails[chain].clone() }
            }
            Some(QueueLimit { mode: QueueMode::Waves, .. }) if self.free > 0 => {
                self.free -= 1;
                Place::Now { chain: None, after: None }
            }
            Some(QueueLimit { mode: QueueMode::Waves, .. }) => Place::Held,
        }
    }

    /// The job placed last in `chain` was accepted as `id`: the chain's next job waits for it.
    /// (A rejected job leaves the tail as it was, so the chain goes on behind the job before.)
    fn accepted(&mut self, chain: Option<u32>, id: &str) {
        if let Some(tail) = chain.and_then(|c| self.tails.get_mut(c as usize)) {
            *tail = Some(id.to_owned());
        }
    }
}

/// The jobs at `indices` as the submit would start them. A chain's first job depends on nothing
/// (or on the live job it continues); each later one on the job before it in its chain.
fn dry_run_jobs(
    sweep: &SweepDir,
    manifest: &Manifest,
    indices: &[usize],
    executor: Executor,
    mut queue: Queue,
) -> Vec<DryRunJob> {
    indices
        .iter()
        .map(|&index| {
            let job = &manifest.jobs[index];
            let path = sweep_templates::quote(&script(sweep, job).display().to_string());
            match executor {
                Executor::Local => {
                    return DryRunJob { index, command: format!("bash {path}"), chain: None, held: false }
                }
                Executor::Allocation => {
                    let nodes = format!("<{} of the allocation's nodes>", job_nodes(sweep, job));
                    let command = format!("SWEEP_NODELIST={nodes} bash {path}");
                    return DryRunJob { index, command, chain: None, held: false };
                }
                Executor::Slurm => {}
            }
            match queue.place() {
                Place::Now { chain, after } => {
                    queue.accepted(chain, &format!("<id of {}>", job.name));
                    let dependency =
                        after.map(|id| format!("--dependency=afterany:{id} ")).unwrap_or_default();
                    DryRunJob {
                        index,
                        command: format!("sbatch --parsable {dependency}{path}"),
                        chain,
                        held: false,
                    }
                }
                Place::Held => {
                    DryRunJob { index, command: format!("sbatch --parsable {path}"), chain: None, held: true }
                }
            }
        })
        .collect()
}

/// How many nodes a rendered job asks for (from its `job.json`; `?` when it cannot be read).
fn job_nodes(sweep: &SweepDir, job: &ManifestJob) -> String {
    sweep.job(&job.dir).read_job().map_or_else(|_| "?".to_owned(), |c| c.slurm.nodes.to_string())
}

/// The manifest indices of jobs SLURM still has queued or running, and, in waves mode, of jobs
/// waiting in the folder for `sweep wait --submit-more`: a resume must not run their points
/// twice.
fn live_jobs(manifest: &Manifest) -> Result<Vec<usize>, SubmitError> {
    let ids = manifest.slurm_ids();
    let queue = if ids.is_empty() || !driver::available() {
        BTreeMap::new()
    } else {
        driver::squeue(&ids).map_err(SubmitError::Slurm)?
    };
    let waves = manifest.queue_limit.is_some_and(|l| l.mode == QueueMode::Waves);
    Ok(manifest
        .jobs
        .iter()
        .enumerate()
        .filter(|(_, job)| {
            let queued = job
                .slurm_job_id
                .as_ref()
                .and_then(|id| queue.get(id))
                .is_some_and(|e| !driver::is_final(&e.state));
            queued || (waves && job.state == JobState::Rendered)
        })
        .map(|(i, _)| i)
        .collect())
}

/// Submits the job at `index` (after `after`, when given) and records the outcome in the
/// manifest before showing it, so an interrupted submit loses nothing it did. Returns its
/// SLURM id, or `None` when SLURM rejected it (the reason is recorded).
pub(crate) fn submit_one(
    sweep: &SweepDir,
    manifest: &mut Manifest,
    index: usize,
    chain: Option<u32>,
    after: Option<String>,
    reporter: &mut dyn Reporter,
) -> Result<Option<String>, SubmitError> {
    let script = script(sweep, &manifest.jobs[index]);
    let extra: Vec<String> = after.iter().map(|id| format!("--dependency=afterany:{id}")).collect();
    let result = driver::sbatch(&script, &extra);
    let entry = &mut manifest.jobs[index];
    entry.chain = chain;
    entry.after = after;
    match result {
        Ok(id) => {
            entry.state = JobState::Submitted;
            entry.slurm_job_id = Some(id.clone());
            let line = format!("{}\t{id}", entry.name);
            sweep.write_manifest(manifest)?;
            reporter.data(&line).map_err(|source| SubmitError::Write { path: "stdout".into(), source })?;
            Ok(Some(id))
        }
        Err(driver::SlurmError::Refused { message, .. }) => {
            reporter.note(&format!("error: SLURM rejected job `{}`: {message}", entry.name));
            entry.state = JobState::Rejected;
            entry.reason = Some(message);
            sweep.write_manifest(manifest)?;
            Ok(None)
        }
        Err(error) => Err(SubmitError::Slurm(error)),
    }
}

/// Spaces submissions: a large sweep must not flood the controller.
pub(crate) fn pace(n: usize) {
    if n > 0 {
        std::thread::sleep(Duration::from_secs(1) / SUBMISSIONS_PER_SECOND);
    }
}

fn submit_slurm(
    sweep: &SweepDir,
    manifest: &mut Manifest,
    indices: &[usize],
    mut queue: Queue,
    reporter: &mut dyn Reporter,
) -> Result<Outcome, SubmitError> {
    let (mut submitted, mut rejected, mut held) = (0usize, 0usize, 0usize);
    for &index in indices {
        let (chain, after) = match queue.place() {
            Place::Now { chain, after } => (chain, after),
            Place::Held => {
                held += 1;
                continue;
            }
        };
        pace(submitted + rejected);
        match submit_one(sweep, manifest, index, chain, after, reporter)? {
            Some(id) => {
                queue.accepted(chain, &id);
                submitted += 1;
            }
            None => rejected += 1,
        }
    }
    if held > 0 {
        reporter.note(&format!(
            "{held} jobs wait in the folder: `sweep wait {} --submit-more` submits them as the queued ones end",
            sweep.path().display()
        ));
    }
    Ok(Outcome::Submitted { dir: sweep.path().to_owned(), submitted, rejected, held, total: indices.len() })
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
                    // A job never started (its `sweep submit` interrupted first) has no marker
                    // to come.
                    None if job.state == JobState::Cancelled => PointRow {
                        id: id.clone(),
                        state: "not run".into(),
                        reason: job.reason.clone().unwrap_or_default(),
                    },
                    None => PointRow { id: id.clone(), state: "pending".into(), reason: String::new() },
                })
                .collect();
            JobRow {
                job: job.name.clone(),
                dir: job.dir.clone(),
                // A job run in an allocation shows the allocation's id.
                slurm_job_id: job
                    .slurm_job_id
                    .clone()
                    .or_else(|| job.allocation.as_ref().map(|a| a.job_id.clone())),
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
pub(crate) fn job_state(
    sweep: &SweepDir,
    job: &ManifestJob,
    queue: &BTreeMap<String, driver::QueueEntry>,
    accounting: &BTreeMap<String, driver::QueueEntry>,
) -> (String, String) {
    let Some(id) = &job.slurm_job_id else {
        let reason = match (&job.allocation, job.state) {
            (Some(run), JobState::Running) => {
                format!("in allocation {} on {} (port slot {})", run.job_id, run.nodes.join(","), run.slot)
            }
            _ => job.reason.clone().unwrap_or_default(),
        };
        return (job.state.as_str().to_uppercase(), reason);
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
            queue_limit: None,
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
                    chain: None,
                    after: None,
                    allocation: None,
                })
                .collect(),
        }
    }

    fn commands(jobs: &[DryRunJob]) -> Vec<String> {
        jobs.iter().map(|j| j.command.clone()).collect()
    }

    const fn limit(max_in_queue: u32, mode: QueueMode) -> Option<QueueLimit> {
        Some(QueueLimit { max_in_queue, mode })
    }

    #[test]
    fn a_dry_run_chain_starts_with_no_dependency() {
        let sweep = SweepDir::new("/sweeps/s");
        let m = manifest(&["a", "b", "c"]);
        let one_chain = Queue::new(limit(1, QueueMode::Chains), &[]);
        let chained = dry_run_jobs(&sweep, &m, &[0, 1, 2], Executor::Slurm, one_chain);
        assert_eq!(
            commands(&chained),
            [
                "sbatch --parsable /sweeps/s/jobs/a/job.sbatch",
                "sbatch --parsable --dependency=afterany:<id of a> /sweeps/s/jobs/b/job.sbatch",
                "sbatch --parsable --dependency=afterany:<id of b> /sweeps/s/jobs/c/job.sbatch",
            ]
        );
        let free = dry_run_jobs(&sweep, &m, &[2], Executor::Slurm, Queue::new(None, &[]));
        assert_eq!(commands(&free), ["sbatch --parsable /sweeps/s/jobs/c/job.sbatch"]);
        let local = dry_run_jobs(&sweep, &m, &[0], Executor::Local, Queue::new(None, &[]));
        assert_eq!(commands(&local), ["bash /sweeps/s/jobs/a/job.sbatch"]);
    }

    #[test]
    fn jobs_are_dealt_to_chains_in_turn_and_a_rejection_keeps_the_chain_going() {
        let mut queue = Queue::new(limit(2, QueueMode::Chains), &[]);
        let mut placed = Vec::new();
        for (n, accepted) in [true, true, false, true, true].into_iter().enumerate() {
            let place = queue.place();
            if let (Place::Now { chain, .. }, true) = (&place, accepted) {
                queue.accepted(*chain, &format!("{}", 100 + n));
            }
            placed.push(place);
        }
        let now =
            |chain: u32, after: Option<&str>| Place::Now { chain: Some(chain), after: after.map(Into::into) };
        assert_eq!(
            placed,
            [
                now(0, None),
                now(1, None),
                now(0, Some("100")),
                // Job 2 (chain 0) was rejected: job 4 waits for job 0, the chain's last accepted.
                now(1, Some("101")),
                now(0, Some("100")),
            ]
        );
    }

    #[test]
    fn a_resumed_queue_starts_behind_the_live_jobs() {
        let live = ["7".to_owned(), "8".to_owned(), "9".to_owned()];
        let mut queue = Queue::new(limit(2, QueueMode::Chains), &live);
        assert_eq!(queue.place(), Place::Now { chain: Some(0), after: Some("9".into()) });
        assert_eq!(queue.place(), Place::Now { chain: Some(1), after: Some("8".into()) });
        let mut waves = Queue::new(limit(4, QueueMode::Waves), &live);
        assert_eq!(waves.place(), Place::Now { chain: None, after: None });
        assert_eq!(waves.place(), Place::Held, "3 live + 1 new = the limit of 4");
    }
}
