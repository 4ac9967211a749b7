//! The local executor: each job's `job.local.sh` runs on this machine — every role a process,
//! the same runner, folders and markers as on SLURM — one job after another.

use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};

use sweep_folder::{BenchmarkState, JobDir, JobState, Manifest, SweepDir};

use crate::{Reporter, SubmitError};

/// Runs the jobs at `indices`, recording each one's state in the manifest as it goes. Returns
/// (jobs that completed, jobs that did not).
pub fn run(
    sweep: &SweepDir,
    manifest: &mut Manifest,
    indices: &[usize],
    reporter: &mut dyn Reporter,
) -> Result<(usize, usize), SubmitError> {
    let (mut completed, mut failed) = (0, 0);
    for (n, &index) in indices.iter().enumerate() {
        let job = manifest.jobs[index].clone();
        let job_dir = sweep.job(&job.dir);
        let script = job_dir.script_path(&job.script);
        reporter.note(&format!("[{}/{}] {}: {} points", n + 1, indices.len(), job.name, job.points.len()));
        manifest.jobs[index].state = JobState::Running;
        sweep.write_manifest(manifest)?;
        let log = job_dir.local_output_path();
        let (out, err) = output_file(&log)?;
        let status = Command::new("bash")
            .arg(&script)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .status()
            .map_err(|source| SubmitError::Run { script: script.clone(), source })?;
        let (state, reason) = outcome(&job_dir, status, &log);
        let entry = &mut manifest.jobs[index];
        entry.state = state;
        entry.reason = Some(reason.clone());
        sweep.write_manifest(manifest)?;
        reporter.note(&format!("[{}/{}] {}: {} — {reason}", n + 1, indices.len(), job.name, state.as_str()));
        if state == JobState::Completed {
            completed += 1;
        } else {
            failed += 1;
        }
        // Interrupted (Ctrl-C reaches the job's processes too): leave the rest for --resume.
        if state == JobState::Cancelled || status.code() == Some(130) {
            reporter.note("interrupted: the remaining jobs were not run; `sweep submit --resume` runs them");
            break;
        }
    }
    Ok((completed, failed))
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
