//! `sweep wait DIR`: blocks until every job of a sweep has ended, for CI pipelines and scripts.
//!
//! One `squeue` call per poll for the jobs not yet known to have ended (and one `sacct` call for
//! those the controller has just forgotten), at an interval that grows from 2 s by half each
//! poll up to a cap, so a day-long sweep costs the controller a call a minute. A failed `squeue`
//! (the controller down or restarting, a site that hides other users' jobs) is retried with a
//! doubling backoff, and said so, until `--timeout`. So is a job squeue will not show this user
//! (another user's sweep on a cluster with `PrivateData=jobs`): it is followed by its markers in
//! the folder until they say it ended. With `--submit-more`, jobs a `--waves`
//! submit left in the folder are submitted as queued ones end, never more than the limit.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, Instant};

use sweep_folder::{JobState, Manifest, QueueMode, SweepDir};
use sweep_slurm::driver;

use crate::submit::{job_state, pace, submit_one};
use crate::{Reporter, SubmitError};

#[derive(Debug, Clone)]
pub struct Options {
    /// Give up after this long (exit 16); `None`: wait as long as it takes.
    pub timeout: Option<Duration>,
    /// Submit the jobs a `--waves` submit left in the folder as queued ones end.
    pub submit_more: bool,
    /// The first poll interval; each later one is half as long again, up to `max_interval`.
    pub interval: Duration,
    pub max_interval: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            timeout: None,
            submit_more: false,
            interval: Duration::from_secs(2),
            max_interval: Duration::from_secs(60),
        }
    }
}

/// The sweep's points when the wait ended.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Counts {
    pub total: usize,
    /// Measured: their exports are complete.
    pub done: usize,
    /// Not run on purpose (`workload.load: false`).
    pub skipped: usize,
    /// The points that are not done, by their marker's state (`failed`, `timeout`, …), or
    /// `not run` when their job left no marker for them.
    pub not_done: BTreeMap<String, usize>,
    /// Jobs still queued or running (only after a timeout), and jobs left in the folder.
    pub live_jobs: usize,
    pub held_jobs: usize,
}

impl Counts {
    /// Whether every point was measured or skipped on purpose.
    pub fn all_done(&self) -> bool {
        self.done + self.skipped == self.total
    }

    /// `4 of 6 points done; 1 failed, 1 not run`.
    pub fn sentence(&self) -> String {
        let mut text = format!("{} of {} points done", self.done, self.total);
        if self.skipped > 0 {
            text.push_str(&format!(", {} skipped on purpose", self.skipped));
        }
        if !self.not_done.is_empty() {
            let parts: Vec<String> = self.not_done.iter().map(|(state, n)| format!("{n} {state}")).collect();
            text.push_str(&format!("; {}", parts.join(", ")));
        }
        text
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// Every job has ended (or, without `--submit-more`, every submitted one).
    Ended(Counts),
    /// `--timeout` came first.
    TimedOut { after: Duration, counts: Counts },
}

/// Waits for the sweep at `sweep` as `options` say. Each change of a job's state is a note:
/// `<seconds since the start>s  <job folder>  <state> (<reason>)`; the ids of jobs it submits
/// are data lines (`name<TAB>id`), as `submit` prints them.
pub fn wait(sweep: &SweepDir, options: &Options, reporter: &mut dyn Reporter) -> Result<End, SubmitError> {
    let start = Instant::now();
    let mut shown: BTreeMap<String, String> = BTreeMap::new();
    // Jobs known to have ended, by folder: never asked about again.
    let mut ended: BTreeMap<String, (String, String)> = BTreeMap::new();
    let mut interval = options.interval;
    let mut backoff = options.interval;
    let mut told_held = false;
    // Why squeue hides the sweep's jobs from this user, asked the first time a job is missing.
    let mut hidden: Option<Option<String>> = None;
    let mut unseen_backoff = options.interval;
    loop {
        let mut manifest = sweep.read_manifest()?;
        let asking: Vec<String> = manifest
            .jobs
            .iter()
            .filter(|j| !ended.contains_key(&j.dir))
            .filter_map(|j| j.slurm_job_id.clone())
            .collect();
        let queue = match driver::squeue(&asking) {
            Ok(queue) => {
                backoff = options.interval;
                queue
            }
            Err(error @ driver::SlurmError::Missing { .. }) => return Err(SubmitError::Slurm(error)),
            Err(error) => {
                if let Some(end) = timed_out(sweep, &manifest, start, options, &ended)? {
                    return Ok(end);
                }
                reporter.note(&format!(
                    "squeue failed ({error}); retrying in {} s",
                    backoff.as_secs_f64().round()
                ));
                sleep_within(backoff, start, options.timeout);
                backoff = (backoff * 2).min(options.max_interval);
                continue;
            }
        };
        let forgotten: Vec<String> = asking.iter().filter(|id| !queue.contains_key(*id)).cloned().collect();
        let accounting = driver::sacct(&forgotten);
        let mut live = 0usize;
        let mut unseen = 0usize;
        for job in &manifest.jobs {
            let (state, reason) = match ended.get(&job.dir) {
                Some(known) => known.clone(),
                None => {
                    let queued = match &job.slurm_job_id {
                        Some(id) => queue.get(id).is_some_and(|e| !driver::is_final(&e.state)),
                        None => job.state == JobState::Running,
                    };
                    let (state, reason) = job_state(sweep, job, &queue, &accounting);
                    if queued {
                        live += 1;
                        (state, reason)
                    } else if is_held(&manifest, job.state) {
                        (state, reason)
                    } else if job.slurm_job_id.as_ref().is_some_and(|id| !accounting.contains_key(id))
                        && matches!(sweep.job(&job.dir).read_benchmark_status(), Ok(None))
                        && hidden.get_or_insert_with(|| hidden_from_us(sweep)).is_some()
                    {
                        // Missing from squeue may only mean hidden: the job has not ended until
                        // its marker says so.
                        live += 1;
                        unseen += 1;
                        ("UNSEEN".to_owned(), "hidden from this user; following its markers".to_owned())
                    } else {
                        // Gone from the queue with a marker that still says running: the job
                        // was killed before its runner could say how it ended.
                        let (state, reason) = if driver::is_final(&state) {
                            (state, reason)
                        } else {
                            (
                                "ENDED".to_owned(),
                                format!("SLURM no longer has the job; its marker says {state}"),
                            )
                        };
                        ended.insert(job.dir.clone(), (state.clone(), reason.clone()));
                        (state, reason)
                    }
                }
            };
            if shown.get(&job.dir) != Some(&state) {
                // squeue's reason for a running job is `None`.
                let reason = if reason.is_empty() || reason == "None" {
                    String::new()
                } else {
                    format!(" ({reason})")
                };
                reporter.note(&format!(
                    "{:>5.0}s  {}  {state}{reason}",
                    start.elapsed().as_secs_f64(),
                    job.dir
                ));
                shown.insert(job.dir.clone(), state);
            }
        }
        let held: Vec<usize> =
            (0..manifest.jobs.len()).filter(|&i| is_held(&manifest, manifest.jobs[i].state)).collect();
        if options.submit_more && !held.is_empty() {
            let limit = manifest.queue_limit.map_or(0, |l| l.max_in_queue as usize);
            let room = limit.saturating_sub(live);
            if room > 0 {
                submit_held(sweep, &mut manifest, &held[..room.min(held.len())], reporter)?;
                // The new jobs' states are shown by the next poll, which comes at once.
                continue;
            }
        } else if !held.is_empty() && !told_held {
            reporter.note(&format!(
                "{} jobs wait in the folder, unsubmitted; `sweep wait --submit-more` submits them",
                held.len()
            ));
            told_held = true;
        }
        if live == 0 && (held.is_empty() || !options.submit_more) {
            return Ok(End::Ended(counts(sweep, &manifest, 0)?));
        }
        if let Some(end) = timed_out(sweep, &manifest, start, options, &ended)? {
            return Ok(end);
        }
        if unseen > 0 {
            let why = hidden.clone().flatten().unwrap_or_default();
            reporter.note(&format!(
                "squeue does not show {unseen} of the sweep's jobs ({why}); following their markers in \
                 the folder, retrying in {} s",
                unseen_backoff.as_secs_f64().round()
            ));
            sleep_within(unseen_backoff, start, options.timeout);
            unseen_backoff = (unseen_backoff * 2).min(options.max_interval);
            continue;
        }
        sleep_within(interval, start, options.timeout);
        interval = interval.mul_f64(1.5).min(options.max_interval);
    }
}

/// Why squeue may not show this user the sweep's jobs: the folder belongs to someone else and
/// the cluster's `PrivateData` hides other users' jobs. `None` when it shows them (root and
/// the owner see every job of theirs).
fn hidden_from_us(sweep: &SweepDir) -> Option<String> {
    let owner = std::fs::metadata(sweep.manifest_path()).ok()?.uid();
    let us = effective_uid()?;
    if us == 0 || us == owner {
        return None;
    }
    let private = driver::private_data();
    private.iter().any(|p| p == "jobs").then(|| {
        format!(
            "the sweep belongs to uid {owner}, and this cluster's PrivateData={} hides other users' jobs",
            private.join(",")
        )
    })
}

/// This process's effective uid, read from /proc: SLURM runs on Linux, and it spares an
/// unsafe libc call.
fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find_map(|line| line.strip_prefix("Uid:"))?.split_whitespace().nth(1)?.parse().ok()
}

/// A job a `--waves` submit left in the folder for `--submit-more`.
fn is_held(manifest: &Manifest, state: JobState) -> bool {
    state == JobState::Rendered && manifest.queue_limit.is_some_and(|l| l.mode == QueueMode::Waves)
}

/// Submits the held jobs at `indices` under the folder's lock; a submit working on the folder
/// at the same moment is waited out by trying again at the next poll.
fn submit_held(
    sweep: &SweepDir,
    manifest: &mut Manifest,
    indices: &[usize],
    reporter: &mut dyn Reporter,
) -> Result<(), SubmitError> {
    let _lock = match sweep.lock() {
        Ok(lock) => lock,
        Err(sweep_folder::FolderError::Locked { .. }) => {
            reporter.note("another `sweep submit` holds the folder; submitting the next wave later");
            return Ok(());
        }
        Err(error) => return Err(error.into()),
    };
    // Read again under the lock: what was read before may be stale.
    *manifest = sweep.read_manifest()?;
    for (n, &index) in indices.iter().enumerate() {
        if manifest.jobs[index].state != JobState::Rendered {
            continue;
        }
        pace(n);
        match submit_one(sweep, manifest, index, None, None, reporter) {
            Ok(_) => {}
            // The controller may be down for a moment: the job stays held for the next poll.
            Err(SubmitError::Slurm(error)) => {
                reporter.note(&format!("cannot submit the next wave yet: {error}"));
                return Ok(());
            }
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

fn timed_out(
    sweep: &SweepDir,
    manifest: &Manifest,
    start: Instant,
    options: &Options,
    ended: &BTreeMap<String, (String, String)>,
) -> Result<Option<End>, SubmitError> {
    let Some(timeout) = options.timeout.filter(|t| start.elapsed() >= *t) else { return Ok(None) };
    let live =
        manifest.jobs.iter().filter(|j| !ended.contains_key(&j.dir) && !is_held(manifest, j.state)).count();
    Ok(Some(End::TimedOut { after: timeout, counts: counts(sweep, manifest, live)? }))
}

/// Sleeps `wanted`, but never past the timeout.
fn sleep_within(wanted: Duration, start: Instant, timeout: Option<Duration>) {
    let left = timeout.map_or(wanted, |t| t.saturating_sub(start.elapsed()));
    std::thread::sleep(wanted.min(left));
}

/// Every point of the sweep, in the last job folder that lists it.
fn counts(sweep: &SweepDir, manifest: &Manifest, live_jobs: usize) -> Result<Counts, SubmitError> {
    let done = sweep.completed_points();
    let mut seen = BTreeSet::new();
    let mut counts = Counts { live_jobs, ..Counts::default() };
    counts.held_jobs = manifest.jobs.iter().filter(|j| is_held(manifest, j.state)).count();
    for job in manifest.jobs.iter().rev() {
        let markers = sweep.job(&job.dir).point_states();
        for id in &job.points {
            if !seen.insert(id.clone()) {
                continue;
            }
            counts.total += 1;
            if done.contains(id) {
                counts.done += 1;
                continue;
            }
            match markers.get(id) {
                Some(m) if m.state == sweep_folder::PointState::Skipped => counts.skipped += 1,
                Some(m) => *counts.not_done.entry(m.state.as_str().to_owned()).or_default() += 1,
                None => *counts.not_done.entry("not run".to_owned()).or_default() += 1,
            }
        }
    }
    Ok(counts)
}
