//! `sweep submit`, `sweep status` and `sweep cancel`: a sweep folder run on a SLURM cluster or
//! on this machine (the local executor).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use sweep_slurm::driver;
use sweep_templates::Executor;

use crate::commands::manifest::{Lock, Manifest};
use crate::commands::{local, render};
use crate::error::Error;

/// Submissions per second at most: a large sweep must not flood the controller.
const SUBMISSIONS_PER_SECOND: u32 = 10;

#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Render and print the sbatch command lines; submit nothing.
    pub dry_run: bool,
    /// Add jobs for the points with no complete result to an existing sweep folder.
    pub resume: bool,
    /// Each job waits for the one before it (`--dependency=afterany`).
    pub sequential: bool,
}

pub fn submit(settings: &render::Settings, options: Options) -> Result<(), Error> {
    // Everything is resolved first, so a login node without SLURM leaves no folder behind.
    let mut prepared = render::prepare(settings)?;
    render::check_unless_told(&prepared, settings)?;
    let (dir, executor, indices, _lock) = if options.resume {
        let dir = std::path::absolute(&settings.output)
            .map_err(|source| Error::Write { path: settings.output.clone(), source })?;
        if !dir.join("manifest.json").is_file() {
            return Err(Error::NotASweep { path: dir });
        }
        let lock = Lock::take(&dir)?;
        let manifest = Manifest::read(&dir)?;
        // A resume keeps the folder's executor unless told otherwise.
        if settings.executor.is_none() {
            prepared.executor = manifest.executor();
        }
        check_sbatch(prepared.executor, options)?;
        let live = live_points(&manifest)?;
        let resumed = render::resume(prepared, settings, &live)?;
        (resumed.dir, resumed.executor, resumed.added, lock)
    } else {
        check_sbatch(prepared.executor, options)?;
        let executor = prepared.executor;
        let dir = render::write(prepared, settings)?;
        let lock = Lock::take(&dir)?;
        let count = Manifest::read(&dir)?.jobs().len();
        (dir, executor, (0..count).collect(), lock)
    };
    let mut manifest = Manifest::read(&dir)?;
    if indices.is_empty() {
        eprintln!("nothing to run in {}: every point has a result or is queued", dir.display());
        return Ok(());
    }
    match executor {
        Executor::Local if options.dry_run => {
            let mut stdout = std::io::stdout().lock();
            for &i in &indices {
                let job = &manifest.jobs()[i];
                let script = dir
                    .join(job["dir"].as_str().unwrap_or_default())
                    .join(job["script"].as_str().unwrap_or_default());
                writeln!(stdout, "bash {}", sweep_templates::quote(&script.display().to_string()))
                    .map_err(Error::Output)?;
            }
            eprintln!("dry run: {} jobs rendered into {}, none run", indices.len(), dir.display());
            Ok(())
        }
        Executor::Local => {
            eprintln!(
                "running {} jobs on this machine (local executor); results in {}",
                indices.len(),
                dir.display()
            );
            let (completed, failed) = local::run(&dir, &mut manifest, &indices)?;
            eprintln!(
                "{completed} of {} jobs completed, {failed} did not; `sweep status {}` shows each point",
                indices.len(),
                dir.display()
            );
            if failed > 0 {
                return Err(Error::JobsFailed { failed, total: indices.len() });
            }
            Ok(())
        }
        Executor::Slurm => submit_slurm(&dir, &mut manifest, &indices, options),
    }
}

/// SLURM jobs need `sbatch` here (a dry run does not).
fn check_sbatch(executor: Executor, options: Options) -> Result<(), Error> {
    if executor == Executor::Slurm && !options.dry_run && !driver::available() {
        return Err(Error::Slurm(driver::SlurmError::Missing { command: "sbatch" }));
    }
    Ok(())
}

/// The points of jobs SLURM still has queued or running: a resume must not run them twice.
fn live_points(manifest: &Manifest) -> Result<BTreeSet<String>, Error> {
    let ids = manifest.slurm_ids();
    if ids.is_empty() || !driver::available() {
        return Ok(BTreeSet::new());
    }
    let queue = driver::squeue(&ids).map_err(Error::Slurm)?;
    let mut live = BTreeSet::new();
    for job in manifest.jobs() {
        let queued = job["slurm_job_id"]
            .as_str()
            .and_then(|id| queue.get(id))
            .is_some_and(|e| !driver::is_final(&e.state));
        if queued {
            live.extend(
                job["points"].as_array().into_iter().flatten().filter_map(|p| p.as_str().map(str::to_owned)),
            );
        }
    }
    Ok(live)
}

fn submit_slurm(
    dir: &Path,
    manifest: &mut Manifest,
    indices: &[usize],
    options: Options,
) -> Result<(), Error> {
    let mut stdout = std::io::stdout().lock();
    let (mut submitted, mut rejected) = (0usize, 0usize);
    let mut previous: Option<String> = None;
    for (n, &index) in indices.iter().enumerate() {
        let job = &manifest.jobs()[index];
        let name = job["name"].as_str().unwrap_or_default().to_owned();
        let script = dir
            .join(job["dir"].as_str().unwrap_or_default())
            .join(job["script"].as_str().unwrap_or("job.sbatch"));
        let mut extra = Vec::new();
        if options.sequential {
            extra.push(format!("--dependency=afterany:{}", previous.as_deref().unwrap_or("$PREVIOUS")));
        }
        if options.dry_run {
            let shown: Vec<String> = extra.iter().map(|e| sweep_templates::quote(e)).collect();
            let line = format!(
                "sbatch --parsable {}{}",
                shown.iter().map(|e| format!("{e} ")).collect::<String>(),
                sweep_templates::quote(&script.display().to_string())
            );
            writeln!(stdout, "{line}").map_err(Error::Output)?;
            continue;
        }
        if options.sequential && previous.is_none() {
            extra.clear();
        }
        if n > 0 {
            std::thread::sleep(Duration::from_secs(1) / SUBMISSIONS_PER_SECOND);
        }
        let entry = manifest.job_mut(index);
        match driver::sbatch(&script, &extra) {
            Ok(id) => {
                entry["state"] = "submitted".into();
                entry["slurm_job_id"] = id.clone().into();
                writeln!(stdout, "{name}\t{id}").map_err(Error::Output)?;
                submitted += 1;
                previous = Some(id);
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
        manifest.write(dir)?;
    }
    if options.dry_run {
        eprintln!("dry run: {} jobs rendered into {}, none submitted", indices.len(), dir.display());
        return Ok(());
    }
    eprintln!("submitted {submitted} of {} jobs from {} ({rejected} rejected)", indices.len(), dir.display());
    if rejected > 0 {
        return Err(Error::Rejected { rejected, total: indices.len() });
    }
    Ok(())
}

/// One job's state: SLURM's while it remembers the job, else `sacct`'s when accounting is on,
/// else what the runner's markers say; for local jobs, the manifest's.
fn job_state(
    dir: &Path,
    job: &Value,
    queue: &BTreeMap<String, driver::QueueEntry>,
    accounting: &BTreeMap<String, driver::QueueEntry>,
) -> (String, String) {
    let manifest_state = job["state"].as_str().unwrap_or("unknown");
    let Some(id) = job["slurm_job_id"].as_str() else {
        return (manifest_state.to_uppercase(), job["reason"].as_str().unwrap_or_default().to_owned());
    };
    if let Some(entry) = queue.get(id).or_else(|| accounting.get(id)) {
        return (entry.state.clone(), entry.reason.clone());
    }
    let marker = dir.join(job["dir"].as_str().unwrap_or_default()).join("status/benchmark.json");
    match std::fs::read_to_string(&marker).ok().and_then(|t| serde_json::from_str::<Value>(&t).ok()) {
        Some(status) if status["state"] == "done" => {
            ("COMPLETED".into(), "from the job's status marker".into())
        }
        Some(status) => (
            status["state"].as_str().unwrap_or("failed").to_uppercase(),
            status["reason"].as_str().unwrap_or_default().lines().next().unwrap_or_default().to_owned(),
        ),
        None => ("ENDED".into(), "SLURM has forgotten the job and it left no status marker".into()),
    }
}

/// Point states under one job folder, by point id.
fn point_states(job_dir: &Path) -> BTreeMap<String, (String, String)> {
    let mut out = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(job_dir.join("points")) else { return out };
    for entry in entries.flatten() {
        let marker = entry.path().join("status.json");
        if let Some(status) =
            std::fs::read_to_string(marker).ok().and_then(|t| serde_json::from_str::<Value>(&t).ok())
        {
            if let Some(id) = status["point"].as_str() {
                let state = status["state"].as_str().unwrap_or("?").to_owned();
                let reason = status["reason"]
                    .as_str()
                    .unwrap_or_default()
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                out.insert(id.to_owned(), (state, reason));
            }
        }
    }
    out
}

fn status_rows(dir: &Path) -> Result<(Vec<Value>, bool), Error> {
    let manifest = Manifest::read(dir)?;
    let ids = manifest.slurm_ids();
    let queue = if ids.is_empty() { BTreeMap::new() } else { driver::squeue(&ids).map_err(Error::Slurm)? };
    let forgotten: Vec<String> = ids.iter().filter(|id| !queue.contains_key(*id)).cloned().collect();
    let accounting = driver::sacct(&forgotten);
    let mut all_final = true;
    let rows = manifest
        .jobs()
        .iter()
        .map(|job| {
            let (state, reason) = job_state(dir, job, &queue, &accounting);
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
            let markers = point_states(&dir.join(job["dir"].as_str().unwrap_or_default()));
            let points: Vec<Value> = job["points"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(|id| {
                    let (state, reason) =
                        markers.get(id).cloned().unwrap_or(("pending".into(), String::new()));
                    serde_json::json!({"id": id, "state": state, "reason": reason})
                })
                .collect();
            serde_json::json!({
                "job": job["name"],
                "dir": job["dir"],
                "slurm_job_id": job["slurm_job_id"],
                "state": state,
                "reason": reason,
                "points": points,
            })
        })
        .collect();
    Ok((rows, all_final))
}

fn summary(points: &[Value]) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for p in points {
        *counts.entry(p["state"].as_str().unwrap_or("?")).or_default() += 1;
    }
    counts.iter().map(|(s, n)| format!("{n} {s}")).collect::<Vec<_>>().join(", ")
}

fn print_table(out: &mut impl Write, rows: &[Value], points: bool) -> std::io::Result<()> {
    let width = rows
        .iter()
        .filter_map(|r| r["dir"].as_str())
        .map(|d| d.trim_start_matches("jobs/").len())
        .max()
        .unwrap_or(3)
        .max(3);
    writeln!(out, "{:<width$}  {:>8}  {:<10}  {:<24}  REASON", "JOB", "SLURM ID", "STATE", "POINTS")?;
    for row in rows {
        let list = row["points"].as_array().map_or(&[][..], Vec::as_slice);
        writeln!(
            out,
            "{:<width$}  {:>8}  {:<10}  {:<24}  {}",
            row["dir"].as_str().unwrap_or_default().trim_start_matches("jobs/"),
            row["slurm_job_id"].as_str().unwrap_or("-"),
            row["state"].as_str().unwrap_or_default(),
            summary(list),
            row["reason"].as_str().unwrap_or_default(),
        )?;
        if points {
            for p in list {
                writeln!(
                    out,
                    "  {}  {:<10}  {}",
                    p["id"].as_str().unwrap_or_default(),
                    p["state"].as_str().unwrap_or_default(),
                    p["reason"].as_str().unwrap_or_default()
                )?;
            }
        }
    }
    Ok(())
}

pub fn status(dir: &Path, json: bool, points: bool, watch: Option<f64>) -> Result<(), Error> {
    loop {
        let (rows, all_final) = status_rows(dir)?;
        let mut stdout = std::io::stdout().lock();
        if json {
            writeln!(stdout, "{}", Value::from(rows)).map_err(Error::Output)?;
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

pub fn cancel(dir: &Path) -> Result<(), Error> {
    let manifest = Manifest::read(dir)?;
    let ids = manifest.slurm_ids();
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
