//! `sweep render FILE -o DIR`: the sweep folder as `sweep submit` would create it — spec, plan,
//! manifest, and per job its script and `job.json` — without submitting anything. Also the
//! rendering behind `sweep submit --resume`, which adds job folders for the points that have no
//! complete result, next to (never over) what is there.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::Value;
use sweep_templates::{Executor, JobContext, JobPaths, Templates};

use crate::commands::manifest::{self, Manifest};
use crate::commands::plan::load_and_plan;
use crate::error::Error;

#[derive(Debug)]
pub struct Settings {
    pub file: PathBuf,
    pub output: PathBuf,
    pub max_points: u64,
    /// A folder of templates overriding the built-ins (beats `cluster.templates_dir`).
    pub templates: Option<PathBuf>,
    /// The `sweep-runner` binary as compute nodes see it.
    pub runner: Option<PathBuf>,
    /// Beats the spec's `executor`.
    pub executor: Option<sweep_spec::ExecutorKind>,
    /// Skip `sweep check` (the engines' own option parsers) before writing.
    pub no_check: bool,
}

pub fn run(settings: &Settings) -> Result<(), Error> {
    let prepared = prepare(settings)?;
    check_unless_told(&prepared, settings)?;
    let output = write(prepared, settings)?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{}", output.display()).map_err(Error::Output)
}

/// What every rendering needs, resolved before anything is written.
pub struct Prepared {
    spec_text: Vec<u8>,
    document: sweep_spec::Document,
    plan: sweep_plan::Plan,
    templates: Templates,
    runner: PathBuf,
    bin_dir: PathBuf,
    pub executor: Executor,
}

pub fn prepare(settings: &Settings) -> Result<Prepared, Error> {
    let (document, plan) = load_and_plan(&settings.file, settings.max_points)?;
    let spec = &document.spec;
    let runner = match &settings.runner {
        Some(path) => absolute(path)?,
        None => default_runner()?,
    };
    let bin_dir = runner.parent().map(Path::to_path_buf).unwrap_or_default();
    let templates_dir =
        settings.templates.clone().or_else(|| spec.cluster.templates_dir.as_ref().map(PathBuf::from));
    let templates = Templates::new(templates_dir.as_deref(), &spec.engine.commands).map_err(Error::Render)?;
    let executor = match settings.executor.unwrap_or(spec.executor) {
        sweep_spec::ExecutorKind::Slurm => Executor::Slurm,
        sweep_spec::ExecutorKind::Local => Executor::Local,
    };
    let spec_text = std::fs::read(&settings.file)
        .map_err(|source| Error::Read { path: settings.file.clone(), source })?;
    Ok(Prepared { spec_text, document, plan, templates, runner, bin_dir, executor })
}

/// `sweep check` before anything is written, unless `--no-check`.
pub fn check_unless_told(prepared: &Prepared, settings: &Settings) -> Result<(), Error> {
    if settings.no_check {
        return Ok(());
    }
    crate::commands::check::finish(crate::commands::check::check(prepared)?)
}

/// Writes the sweep folder; returns its absolute path.
pub fn write(prepared: Prepared, settings: &Settings) -> Result<PathBuf, Error> {
    let output = absolute(&settings.output)?;
    if output.exists() {
        return Err(Error::Exists { path: output });
    }
    // Everything is written under a temporary name beside the target and renamed at the end, so
    // a failure leaves nothing half-written behind.
    let parent = output.parent().ok_or_else(|| Error::Exists { path: output.clone() })?;
    std::fs::create_dir_all(parent).map_err(|source| Error::Write { path: parent.to_path_buf(), source })?;
    let staging = parent.join(format!(
        ".{}.rendering-{}",
        output.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        std::process::id()
    ));
    let result = write_sweep(&staging, &output, &prepared);
    if let Err(error) = result {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(error);
    }
    std::fs::rename(&staging, &output).map_err(|source| {
        let _ = std::fs::remove_dir_all(&staging);
        Error::Write { path: output.clone(), source }
    })?;
    eprintln!(
        "rendered {} job scripts for {} points into {}",
        prepared.plan.jobs.len(),
        prepared.plan.points.len(),
        output.display()
    );
    Ok(output)
}

fn write_file(path: PathBuf, contents: &[u8]) -> Result<(), Error> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| Error::Write { path: dir.to_path_buf(), source })?;
    }
    std::fs::write(&path, contents).map_err(|source| Error::Write { path, source })
}

fn write_sweep(staging: &Path, output: &Path, p: &Prepared) -> Result<(), Error> {
    let spec = &p.document.spec;
    write_file(staging.join("spec.yaml"), &p.spec_text)?;
    let mut plan_json = Vec::new();
    crate::commands::plan::write_json(&mut plan_json, spec, &p.plan).map_err(Error::Output)?;
    write_file(staging.join("plan.json"), &plan_json)?;
    let mut jobs = Vec::with_capacity(p.plan.jobs.len());
    for job in &p.plan.jobs {
        let points: Vec<sweep_plan::Point> = p.plan.points[job.points.clone()].to_vec();
        jobs.push(write_job(&staging.join("jobs").join(&job.name), output, &job.name, job, points, p, 1)?);
    }
    let manifest = Manifest::new(spec.name.clone(), p.executor, jobs);
    write_file(staging.join("manifest.json"), &manifest.to_bytes()?)
}

/// Renders one job folder (script and `job.json`) into `staged`, to live at
/// `<output>/jobs/<dir_name>`; returns its manifest entry.
fn write_job(
    staged: &Path,
    output: &Path,
    dir_name: &str,
    job: &sweep_plan::Job,
    points: Vec<sweep_plan::Point>,
    p: &Prepared,
    attempt: u32,
) -> Result<Value, Error> {
    let job_dir = output.join("jobs").join(dir_name);
    let paths = JobPaths {
        sweep_dir: output.display().to_string(),
        job_dir: job_dir.display().to_string(),
        runner: p.runner.display().to_string(),
        bin_dir: p.bin_dir.display().to_string(),
    };
    let mut context = JobContext::new(&p.document.spec, &p.plan, job, paths);
    context.points = points;
    let rendered = p
        .templates
        .render_job(context.clone(), p.executor)
        .map_err(|source| Error::RenderJob { job: job.name.clone(), source })?;
    write_file(staged.join(p.executor.script_name()), rendered.script.as_bytes())?;
    for (path, contents) in &rendered.files {
        write_file(staged.join(path), contents.as_bytes())?;
    }
    let context_json = serde_json::to_vec_pretty(&context).map_err(|e| Error::Output(e.into()))?;
    write_file(staged.join("job.json"), &context_json)?;
    Ok(serde_json::json!({
        "id": job.id,
        "name": job.name,
        "dir": format!("jobs/{dir_name}"),
        "script": p.executor.script_name(),
        "attempt": attempt,
        "state": "rendered",
        "slurm_job_id": null,
        "points": context.points.iter().map(|pt| pt.id).collect::<Vec<_>>(),
    }))
}

/// Every launch command of every job, rendered as [`write`] would into `output`: (job name,
/// step name, shell text).
pub fn launch_commands(p: &Prepared, output: &Path) -> Result<Vec<(String, String, String)>, Error> {
    let mut out = Vec::new();
    for job in &p.plan.jobs {
        let paths = JobPaths {
            sweep_dir: output.display().to_string(),
            job_dir: output.join("jobs").join(&job.name).display().to_string(),
            runner: p.runner.display().to_string(),
            bin_dir: p.bin_dir.display().to_string(),
        };
        let mut context = JobContext::new(&p.document.spec, &p.plan, job, paths);
        context.points = p.plan.points[job.points.clone()].to_vec();
        let rendered = p
            .templates
            .render_job(context, p.executor)
            .map_err(|source| Error::RenderJob { job: job.name.clone(), source })?;
        out.extend(rendered.commands.into_iter().map(|(step, command)| (job.name.clone(), step, command)));
    }
    Ok(out)
}

/// What a resume found and added.
#[derive(Debug)]
pub struct Resumed {
    pub dir: PathBuf,
    pub executor: Executor,
    /// Manifest indices of the job folders it added.
    pub added: Vec<usize>,
}

/// Adds a job folder for every job of the (possibly changed) spec that has points with no
/// complete result and not queued or running (`live`); existing folders are never touched.
pub fn resume(p: Prepared, settings: &Settings, live: &BTreeSet<String>) -> Result<Resumed, Error> {
    let dir = absolute(&settings.output)?;
    let mut manifest = Manifest::read(&dir)?;
    let done = manifest::completed_points(&dir);
    let (mut already, mut running, mut to_run) = (0usize, 0usize, 0usize);
    let mut added = Vec::new();
    let resumes = manifest.resumes() + 1;
    for job in &p.plan.jobs {
        let mut points = Vec::new();
        for point in &p.plan.points[job.points.clone()] {
            let id = point.id.to_string();
            if done.contains(&id) {
                already += 1;
            } else if live.contains(&id) {
                running += 1;
            } else {
                points.push(*point);
            }
        }
        if points.is_empty() {
            continue;
        }
        to_run += points.len();
        // The first free folder name: `name`, `name.2`, `name.3`, …
        let (attempt, dir_name) = (1u32..)
            .map(|n| (n, if n == 1 { job.name.clone() } else { format!("{}.{n}", job.name) }))
            .find(|(_, name)| !dir.join("jobs").join(name).exists())
            .expect("unbounded");
        let staged = dir.join("jobs").join(format!(".{dir_name}.rendering-{}", std::process::id()));
        let entry = match write_job(&staged, &dir, &dir_name, job, points, &p, attempt) {
            Ok(entry) => entry,
            Err(error) => {
                let _ = std::fs::remove_dir_all(&staged);
                return Err(error);
            }
        };
        let target = dir.join("jobs").join(&dir_name);
        std::fs::rename(&staged, &target).map_err(|source| Error::Write { path: target, source })?;
        added.push(manifest.push(entry));
    }
    // The spec this resume ran from, beside (not over) the first one.
    write_file(dir.join(format!("spec.resume-{resumes}.yaml")), &p.spec_text)?;
    manifest.set_resumes(resumes);
    manifest.write(&dir)?;
    eprintln!(
        "resume: {already} points already complete, {running} queued or running, {to_run} to run in {} new job folders",
        added.len()
    );
    Ok(Resumed { dir, executor: p.executor, added })
}

fn absolute(path: &Path) -> Result<PathBuf, Error> {
    std::path::absolute(path).map_err(|source| Error::Write { path: path.to_path_buf(), source })
}

/// `sweep-runner` beside this `sweep` binary: where `cargo build` and an install put it.
fn default_runner() -> Result<PathBuf, Error> {
    let exe =
        std::env::current_exe().map_err(|source| Error::Read { path: PathBuf::from("sweep"), source })?;
    Ok(exe.with_file_name("sweep-runner"))
}
