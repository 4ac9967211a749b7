//! `sweep render FILE -o DIR`: the sweep folder as `sweep submit` would create it — spec, plan,
//! manifest, and per job its sbatch script and `job.json` — without submitting anything.

use std::io::Write;
use std::path::{Path, PathBuf};

use sweep_templates::{JobContext, JobPaths, Templates};

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
}

pub fn run(settings: &Settings) -> Result<(), Error> {
    let output = render(settings)?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{}", output.display()).map_err(Error::Output)
}

/// Writes the sweep folder; returns its absolute path.
pub fn render(settings: &Settings) -> Result<PathBuf, Error> {
    let (document, plan) = load_and_plan(&settings.file, settings.max_points)?;
    let spec = &document.spec;
    let output = absolute(&settings.output)?;
    if output.exists() {
        return Err(Error::Exists { path: output });
    }
    let runner = match &settings.runner {
        Some(path) => absolute(path)?,
        None => default_runner()?,
    };
    let bin_dir = runner.parent().map(Path::to_path_buf).unwrap_or_default();
    let templates_dir =
        settings.templates.clone().or_else(|| spec.cluster.templates_dir.as_ref().map(PathBuf::from));
    let templates = Templates::new(templates_dir.as_deref(), &spec.engine.commands).map_err(Error::Render)?;

    // Everything is written under a temporary name beside the target and renamed at the end, so
    // a failure leaves nothing half-written behind.
    let parent = output.parent().ok_or_else(|| Error::Exists { path: output.clone() })?;
    std::fs::create_dir_all(parent).map_err(|source| Error::Write { path: parent.to_path_buf(), source })?;
    let staging = parent.join(format!(
        ".{}.rendering-{}",
        output.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        std::process::id()
    ));
    let result = write_sweep(&staging, &output, &settings.file, spec, &plan, &templates, &runner, &bin_dir);
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
        plan.jobs.len(),
        plan.points.len(),
        output.display()
    );
    Ok(output)
}

#[allow(clippy::too_many_arguments)]
fn write_sweep(
    staging: &Path,
    output: &Path,
    spec_file: &Path,
    spec: &sweep_spec::Spec,
    plan: &sweep_plan::Plan,
    templates: &Templates,
    runner: &Path,
    bin_dir: &Path,
) -> Result<(), Error> {
    let write = |path: PathBuf, contents: &[u8]| -> Result<(), Error> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|source| Error::Write { path: dir.to_path_buf(), source })?;
        }
        std::fs::write(&path, contents).map_err(|source| Error::Write { path, source })
    };
    let spec_text =
        std::fs::read(spec_file).map_err(|source| Error::Read { path: spec_file.to_path_buf(), source })?;
    write(staging.join("spec.yaml"), &spec_text)?;
    let mut plan_json = Vec::new();
    crate::commands::plan::write_json(&mut plan_json, spec, plan).map_err(Error::Output)?;
    write(staging.join("plan.json"), &plan_json)?;

    let mut jobs = Vec::with_capacity(plan.jobs.len());
    for job in &plan.jobs {
        let job_dir = output.join("jobs").join(&job.name);
        let paths = JobPaths {
            sweep_dir: output.display().to_string(),
            job_dir: job_dir.display().to_string(),
            runner: runner.display().to_string(),
            bin_dir: bin_dir.display().to_string(),
        };
        let context = JobContext::new(spec, plan, job, paths);
        let rendered = templates
            .render_job(context.clone())
            .map_err(|source| Error::RenderJob { job: job.name.clone(), source })?;
        let staged = staging.join("jobs").join(&job.name);
        write(staged.join("job.sbatch"), rendered.script.as_bytes())?;
        let context_json = serde_json::to_vec_pretty(&context).map_err(|e| Error::Output(e.into()))?;
        write(staged.join("job.json"), &context_json)?;
        jobs.push(serde_json::json!({
            "id": job.id,
            "name": job.name,
            "dir": format!("jobs/{}", job.name),
            "state": "rendered",
            "slurm_job_id": null,
            "points": plan.points[job.points.clone()].iter().map(|p| p.id).collect::<Vec<_>>(),
        }));
    }
    let manifest = serde_json::json!({
        "manifest_version": 1,
        "sweep": spec.name,
        "jobs": jobs,
    });
    write(
        staging.join("manifest.json"),
        &serde_json::to_vec_pretty(&manifest).map_err(|e| Error::Output(e.into()))?,
    )
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
