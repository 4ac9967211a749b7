//! The local executor: each job's `job.local.sh` runs on this machine — every role a process,
//! the same runner, folders and markers as on SLURM — one job after another.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

use sweep_folder::{BenchmarkState, JobDir, JobState, Manifest, SweepDir};

use crate::interrupt::{Group, Interrupted, Interrupts, GRACE};
use crate::{Reporter, SubmitError};

/// How a run of jobs on this machine ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Ran {
    pub completed: usize,
    pub failed: usize,
    /// Stopped by a signal: the running jobs were stopped and recorded, the rest not started.
    pub interrupted: Option<Interrupted>,
}

/// Runs the jobs at `indices`, recording each one's state in the manifest as it goes. SIGINT or
/// SIGTERM stops the running job (its unfinished points marked `cancelled`) and the run.
pub fn run(
    sweep: &SweepDir,
    manifest: &mut Manifest,
    indices: &[usize],
    reporter: &mut dyn Reporter,
) -> Result<Ran, SubmitError> {
    let interrupts = Interrupts::install()?;
    let mut ran = Ran::default();
    for (n, &index) in indices.iter().enumerate() {
        let job = manifest.jobs[index].clone();
        let job_dir = sweep.job(&job.dir);
        let script = job_dir.script_path(&job.script);
        reporter.note(&format!("[{}/{}] {}: {} points", n + 1, indices.len(), job.name, job.points.len()));
        manifest.jobs[index].state = JobState::Running;
        sweep.write_manifest(manifest)?;
        let log = job_dir.local_output_path();
        let mut group = spawn(&job_dir, &script, None, &log)?;
        let run_error = |source| SubmitError::Run { script: script.clone(), source };
        // Polled, not waited on: a signal must reach the job's group while it runs.
        let status = loop {
            if let Some(signal) = interrupts.received() {
                reporter.note(&format!(
                    "{}: stopping {} (its steps get up to {} s)",
                    signal.name(),
                    job.name,
                    GRACE.as_secs()
                ));
                group.cancel(signal);
                break group.wait_gone(GRACE).map_err(run_error)?;
            }
            if let Some(status) = group.child.try_wait().map_err(run_error)? {
                break status;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let (state, reason) = outcome(&job_dir, status, &log);
        let entry = &mut manifest.jobs[index];
        entry.state = state;
        entry.reason = Some(reason.clone());
        sweep.write_manifest(manifest)?;
        reporter.note(&format!("[{}/{}] {}: {} — {reason}", n + 1, indices.len(), job.name, state.as_str()));
        if state == JobState::Completed {
            ran.completed += 1;
        } else {
            ran.failed += 1;
        }
        if let Some(signal) = interrupts.received() {
            ran.interrupted = Some(signal);
            not_started(sweep, manifest, &indices[n + 1..], signal)?;
            reporter.note("interrupted: the remaining jobs were not run; `sweep submit --resume` runs them");
            break;
        }
    }
    Ok(ran)
}

/// Records the jobs at `indices` as never started, because of `signal`: they have ended, and
/// `--resume` runs their points.
pub(crate) fn not_started(
    sweep: &SweepDir,
    manifest: &mut Manifest,
    indices: &[usize],
    signal: Interrupted,
) -> Result<(), SubmitError> {
    if indices.is_empty() {
        return Ok(());
    }
    for &index in indices {
        let job = &mut manifest.jobs[index];
        job.state = JobState::Cancelled;
        job.reason = Some(format!(
            "not started: `sweep submit` got {}; `sweep submit --resume` runs it",
            signal.name()
        ));
    }
    sweep.write_manifest(manifest)?;
    Ok(())
}

/// Starts a job script with `bash` in a process group of its own, its output appended to
/// `log`; `nodelist` is the allocation's nodes it is given (`SWEEP_NODELIST`). A guard
/// (`sweep-runner guard`) ends the group should this process die without a word (SIGKILL, the
/// OOM killer): a job never outlives the `sweep submit` that runs it.
pub(crate) fn spawn(
    job_dir: &JobDir,
    script: &Path,
    nodelist: Option<String>,
    log: &Path,
) -> Result<Group, SubmitError> {
    let runner = job_dir.read_job()?.paths.runner;
    let (out, err) = output_file(log)?;
    let mut command = Command::new("bash");
    command.arg(script);
    if let Some(nodelist) = nodelist {
        command.env("SWEEP_NODELIST", nodelist);
    }
    let child = command
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|source| SubmitError::Run { script: script.to_owned(), source })?;
    // In a group of its own, so that a terminal's Ctrl-C (which `sweep` answers itself) does
    // not reach it.
    let guard = Command::new(&runner)
        .args(["guard", "--group", &child.id().to_string(), "--parent", &std::process::id().to_string()])
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    match guard {
        Ok(guard) => Ok(Group { child, guard, job_dir: job_dir.clone() }),
        Err(source) => {
            // Unguarded, the job is not started at all: its whole group goes.
            let mut child = child;
            let group = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
            let _ = child.wait();
            Err(SubmitError::Run { script: runner.into(), source })
        }
    }
}

/// How a job script that ran here ended: its benchmark marker's state and reason, or why there
/// is none (`log` is where its output went).
pub(crate) fn outcome(job_dir: &JobDir, status: ExitStatus, log: &Path) -> (JobState, String) {
    match job_dir.read_benchmark_status() {
        Ok(Some(m)) if m.state == BenchmarkState::Done => (JobState::Completed, m.reason),
        Ok(Some(m)) => {
            let state = match m.state {
                BenchmarkState::Timeout => JobState::Timeout,
                BenchmarkState::Cancelled => JobState::Cancelled,
                _ => JobState::Failed,
            };
            (state, m.reason.lines().next().unwrap_or_default().to_owned())
        }
        Ok(None) => (
            JobState::Failed,
            format!("the job ended ({status}) without a benchmark marker; see {}", log.display()),
        ),
        Err(error) => (JobState::Failed, format!("the job ended ({status}); {error}")),
    }
}

/// `log` opened for appending, twice: a job script's stdout and stderr.
pub(crate) fn output_file(log: &Path) -> Result<(std::fs::File, std::fs::File), SubmitError> {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|source| SubmitError::Write { path: log.to_owned(), source })?;
    let err = out.try_clone().map_err(|source| SubmitError::Write { path: log.to_owned(), source })?;
    Ok((out, err))
}
