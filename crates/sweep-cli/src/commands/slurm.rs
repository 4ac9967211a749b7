//! `sweep submit`, `sweep status` and `sweep cancel`: a sweep folder on a SLURM cluster.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use sweep_slurm::driver;

use crate::commands::render;
use crate::error::Error;

/// Submissions per second at most: a large sweep must not flood the controller.
const SUBMISSIONS_PER_SECOND: u32 = 10;

fn manifest_path(dir: &Path) -> PathBuf {
    dir.join("manifest.json")
}

fn read_manifest(dir: &Path) -> Result<Value, Error> {
    let path = manifest_path(dir);
    let text = std::fs::read_to_string(&path).map_err(|source| Error::Read { path: path.clone(), source })?;
    serde_json::from_str(&text).map_err(|e| Error::Read { path, source: std::io::Error::other(e) })
}

/// Rewrites the manifest through a temporary file and a rename: never half-written.
fn write_manifest(dir: &Path, manifest: &Value) -> Result<(), Error> {
    let path = manifest_path(dir);
    let tmp = dir.join(format!(".manifest.json.{}", std::process::id()));
    let text = serde_json::to_vec_pretty(manifest).map_err(|e| Error::Output(e.into()))?;
    std::fs::write(&tmp, text).map_err(|source| Error::Write { path: tmp.clone(), source })?;
    std::fs::rename(&tmp, &path).map_err(|source| Error::Write { path, source })
}

/// Holds `<dir>/.submit.lock` while it lives, so that two submits cannot work on one folder.
struct Lock(PathBuf);

impl Lock {
    fn take(dir: &Path) -> Result<Self, Error> {
        let path = dir.join(".submit.lock");
        match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(mut file) => {
                let _ = writeln!(file, "pid {}", std::process::id());
                Ok(Lock(path))
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let holder = std::fs::read_to_string(&path).unwrap_or_default();
                Err(Error::Locked { path, holder: holder.trim().to_owned() })
            }
            Err(source) => Err(Error::Write { path, source }),
        }
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

pub fn submit(settings: &render::Settings, dry_run: bool) -> Result<(), Error> {
    if !dry_run && !driver::available() {
        return Err(Error::Slurm(driver::SlurmError::Missing { command: "sbatch" }));
    }
    let dir = render::render(settings)?;
    let _lock = Lock::take(&dir)?;
    let mut manifest = read_manifest(&dir)?;
    let mut stdout = std::io::stdout().lock();
    let (mut submitted, mut rejected) = (0usize, 0usize);
    let count = manifest["jobs"].as_array().map_or(0, Vec::len);
    for index in 0..count {
        let job = &manifest["jobs"][index];
        let name = job["name"].as_str().unwrap_or_default().to_owned();
        let script = dir.join(job["dir"].as_str().unwrap_or_default()).join("job.sbatch");
        if dry_run {
            writeln!(stdout, "sbatch --parsable {}", sweep_templates::quote(&script.display().to_string()))
                .map_err(Error::Output)?;
            continue;
        }
        if index > 0 {
            std::thread::sleep(Duration::from_secs(1) / SUBMISSIONS_PER_SECOND);
        }
        let entry = &mut manifest["jobs"][index];
        match driver::sbatch(&script) {
            Ok(id) => {
                entry["state"] = "submitted".into();
                entry["slurm_job_id"] = id.clone().into();
                writeln!(stdout, "{name}\t{id}").map_err(Error::Output)?;
                submitted += 1;
            }
            Err(driver::SlurmError::Refused { message, .. }) => {
                eprintln!("error: SLURM rejected job `{name}`: {message}");
                entry["state"] = "rejected".into();
                entry["reason"] = message.into();
                rejected += 1;
            }
            Err(error) => return Err(Error::Slurm(error)),
        }
        // Recorded as each id comes back: an interrupted submit loses nothing it did.
        write_manifest(&dir, &manifest)?;
    }
    if dry_run {
        eprintln!("dry run: {count} jobs rendered into {}, none submitted", dir.display());
        return Ok(());
    }
    eprintln!("submitted {submitted} of {count} jobs from {} ({rejected} rejected)", dir.display());
    if rejected > 0 {
        return Err(Error::Rejected { rejected, total: count });
    }
    Ok(())
}

/// One job's state: SLURM's while it remembers the job, else what the runner's markers say.
fn job_state(
    dir: &Path,
    job: &Value,
    queue: &std::collections::BTreeMap<String, driver::QueueEntry>,
) -> (String, String) {
    let manifest_state = job["state"].as_str().unwrap_or("unknown");
    let Some(id) = job["slurm_job_id"].as_str() else {
        return (manifest_state.to_uppercase(), job["reason"].as_str().unwrap_or_default().to_owned());
    };
    if let Some(entry) = queue.get(id) {
        return (entry.state.clone(), entry.reason.clone());
    }
    let marker = dir.join(job["dir"].as_str().unwrap_or_default()).join("status/benchmark.json");
    match std::fs::read_to_string(&marker).ok().and_then(|t| serde_json::from_str::<Value>(&t).ok()) {
        Some(status) if status["state"] == "done" => {
            ("COMPLETED".into(), "from the job's status marker".into())
        }
        Some(status) => ("FAILED".into(), status["reason"].as_str().unwrap_or_default().to_owned()),
        None => ("ENDED".into(), "SLURM has forgotten the job and it left no status marker".into()),
    }
}

pub fn status(dir: &Path, json: bool) -> Result<(), Error> {
    let manifest = read_manifest(dir)?;
    let jobs = manifest["jobs"].as_array().cloned().unwrap_or_default();
    let ids: Vec<String> =
        jobs.iter().filter_map(|j| j["slurm_job_id"].as_str().map(str::to_owned)).collect();
    let queue = driver::squeue(&ids).map_err(Error::Slurm)?;
    let rows: Vec<Value> = jobs
        .iter()
        .map(|job| {
            let (state, reason) = job_state(dir, job, &queue);
            serde_json::json!({
                "job": job["name"],
                "slurm_job_id": job["slurm_job_id"],
                "state": state,
                "reason": reason,
                "points": job["points"].as_array().map_or(0, Vec::len) as u64,
            })
        })
        .collect();
    let mut stdout = std::io::stdout().lock();
    if json {
        return writeln!(stdout, "{}", Value::from(rows)).map_err(Error::Output);
    }
    let width = rows.iter().filter_map(|r| r["job"].as_str()).map(str::len).max().unwrap_or(3).max(3);
    writeln!(stdout, "{:<width$}  {:>8}  {:<10}  {:>6}  REASON", "JOB", "SLURM ID", "STATE", "POINTS")
        .map_err(Error::Output)?;
    for row in &rows {
        writeln!(
            stdout,
            "{:<width$}  {:>8}  {:<10}  {:>6}  {}",
            row["job"].as_str().unwrap_or_default(),
            row["slurm_job_id"].as_str().unwrap_or("-"),
            row["state"].as_str().unwrap_or_default(),
            row["points"].as_u64().unwrap_or(0),
            row["reason"].as_str().unwrap_or_default(),
        )
        .map_err(Error::Output)?;
    }
    Ok(())
}

pub fn cancel(dir: &Path) -> Result<(), Error> {
    let manifest = read_manifest(dir)?;
    let ids: Vec<String> = manifest["jobs"]
        .as_array()
        .map(|jobs| jobs.iter().filter_map(|j| j["slurm_job_id"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    let queue = driver::squeue(&ids).map_err(Error::Slurm)?;
    // By id only, and only the jobs still queued or running.
    let live: Vec<String> =
        ids.into_iter().filter(|id| queue.get(id).is_some_and(|e| !driver::is_final(&e.state))).collect();
    driver::scancel(&live).map_err(Error::Slurm)?;
    let mut stdout = std::io::stdout().lock();
    for id in &live {
        writeln!(stdout, "{id}").map_err(Error::Output)?;
    }
    eprintln!("cancelled {} job(s) of {}", live.len(), dir.display());
    Ok(())
}
