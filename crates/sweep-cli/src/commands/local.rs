//! The local executor: each job's `job.local.sh` runs on this machine — every role a process,
//! the same runner, folders and markers as on SLURM — one job after another.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::commands::manifest::Manifest;
use crate::error::Error;

/// Runs the jobs at `indices`, recording each one's state in the manifest as it goes. Returns
/// (jobs that completed, jobs that did not).
pub fn run(dir: &Path, manifest: &mut Manifest, indices: &[usize]) -> Result<(usize, usize), Error> {
    let (mut completed, mut failed) = (0, 0);
    for (n, &index) in indices.iter().enumerate() {
        let job = manifest.jobs()[index].clone();
        let name = job["name"].as_str().unwrap_or_default().to_owned();
        let job_dir = dir.join(job["dir"].as_str().unwrap_or_default());
        let script = job_dir.join(job["script"].as_str().unwrap_or("job.local.sh"));
        let points = job["points"].as_array().map_or(0, Vec::len);
        eprintln!("[{}/{}] {name}: {points} points", n + 1, indices.len());
        manifest.job_mut(index)["state"] = "running".into();
        manifest.write(dir)?;
        let log = job_dir.join("local.out");
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(|source| Error::Write { path: log.clone(), source })?;
        let err = out.try_clone().map_err(|source| Error::Write { path: log.clone(), source })?;
        let status = Command::new("bash")
            .arg(&script)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .status()
            .map_err(|source| Error::Read { path: script.clone(), source })?;
        let marker = std::fs::read_to_string(job_dir.join("status/benchmark.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok());
        let (state, reason) = match &marker {
            Some(m) if m["state"] == "done" => {
                ("completed", m["reason"].as_str().unwrap_or_default().to_owned())
            }
            Some(m) => (
                m["state"].as_str().unwrap_or("failed"),
                m["reason"].as_str().unwrap_or_default().lines().next().unwrap_or_default().to_owned(),
            ),
            None => (
                "failed",
                format!("the job ended ({status}) without a benchmark marker; see {}", log.display()),
            ),
        };
        let entry = manifest.job_mut(index);
        entry["state"] = state.into();
        entry["reason"] = reason.clone().into();
        manifest.write(dir)?;
        eprintln!("[{}/{}] {name}: {state} — {reason}", n + 1, indices.len());
        if state == "completed" {
            completed += 1;
        } else {
            failed += 1;
        }
        // Interrupted (Ctrl-C reaches the job's processes too): leave the rest for --resume.
        if state == "cancelled" || status.code() == Some(130) {
            eprintln!("interrupted: the remaining jobs were not run; `sweep submit --resume` runs them");
            break;
        }
    }
    Ok((completed, failed))
}
