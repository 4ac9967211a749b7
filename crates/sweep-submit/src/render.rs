//! The sweep folder as `sweep render` writes it — spec, plan, provenance, manifest, and per job
//! its script and `job.json` — and `--resume`, which adds job folders for the points that have
//! no complete result, next to (never over) what is there.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use sweep_folder::job::{JobContext, JobPaths};
use sweep_folder::{file, Executor, JobDir, JobState, Manifest, ManifestJob, SweepDir};
use sweep_templates::Templates;

use crate::allocation::{Allocation, PortSlots};
use crate::SubmitError;

/// How to render, beyond the spec.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// A folder of templates overriding the built-ins (beats `cluster.templates_dir`).
    pub templates: Option<PathBuf>,
    /// The `sweep-runner` binary as compute nodes see it; default: beside this program.
    pub runner: Option<PathBuf>,
    /// Beats the spec's `executor`.
    pub executor: Option<sweep_spec::ExecutorKind>,
    /// `--in-allocation`: the jobs run inside this allocation (beats `executor`).
    pub allocation: Option<Allocation>,
}

/// Everything a rendering needs, resolved before anything is written.
#[derive(Debug)]
pub struct Prepared {
    spec_text: Vec<u8>,
    document: sweep_spec::Document,
    plan: sweep_plan::Plan,
    templates: Templates,
    runner: PathBuf,
    bin_dir: PathBuf,
    pub executor: Executor,
    /// With `--in-allocation`: the allocation, and the port slots its jobs are rendered in.
    pub allocation: Option<(Allocation, PortSlots)>,
}

impl Prepared {
    /// `spec_text` is the spec file as given (kept in the folder byte for byte).
    pub fn new(
        spec_text: Vec<u8>,
        document: sweep_spec::Document,
        plan: sweep_plan::Plan,
        options: &Options,
    ) -> Result<Self, SubmitError> {
        let spec = &document.spec;
        let runner = match &options.runner {
            Some(path) => absolute(path)?,
            None => default_runner()?,
        };
        let bin_dir = runner.parent().map(Path::to_path_buf).unwrap_or_default();
        let templates_dir =
            options.templates.clone().or_else(|| spec.cluster.templates_dir.as_ref().map(PathBuf::from));
        let templates = Templates::new(templates_dir.as_deref(), &spec.engine.commands)
            .map_err(SubmitError::Templates)?;
        let mut executor = match options.executor.unwrap_or(spec.executor) {
            sweep_spec::ExecutorKind::Slurm => Executor::Slurm,
            sweep_spec::ExecutorKind::Local => Executor::Local,
        };
        // Every job must fit in the allocation: refused here, before anything is written.
        let allocation = match &options.allocation {
            Some(allocation) => {
                executor = Executor::Allocation;
                Some((allocation.clone(), crate::allocation::slots(&plan, allocation)?))
            }
            None => None,
        };
        Ok(Prepared { spec_text, document, plan, templates, runner, bin_dir, executor, allocation })
    }

    pub fn spec(&self) -> &sweep_spec::Spec {
        &self.document.spec
    }

    pub fn plan(&self) -> &sweep_plan::Plan {
        &self.plan
    }

    /// The port slot of the job at plan index `index` (allocation mode only).
    pub fn port_slot(&self, index: usize) -> Option<u32> {
        self.allocation.as_ref().map(|(_, slots)| slots.slot(index))
    }

    fn context(&self, index: usize, output: &Path, dir: &str, points: Vec<sweep_plan::Point>) -> JobContext {
        let job = &self.plan.jobs[index];
        let paths = JobPaths {
            sweep_dir: output.display().to_string(),
            job_dir: output.join(dir).display().to_string(),
            runner: self.runner.display().to_string(),
            bin_dir: self.bin_dir.display().to_string(),
        };
        let mut context = JobContext::new(&self.document.spec, &self.plan, job, paths);
        context.points = points.iter().map(sweep_folder::settings::Point::from).collect();
        // The benchmark step reads the questions where the job runs, from another directory.
        if let Some(questions) = context.accuracy.as_mut().and_then(|a| a.questions.as_mut()) {
            if questions != sweep_spec::Accuracy::BUILTIN {
                if let Ok(path) = std::path::absolute(&*questions) {
                    *questions = path.display().to_string();
                }
            }
        }
        if let Some((_, slots)) = &self.allocation {
            // `slots` checked that the highest shifted port fits in a u16.
            let offset = slots.offset(index);
            for server in &mut context.servers {
                server.port += offset;
            }
            if let Some(frontend) = &mut context.frontend {
                frontend.port += offset;
            }
        }
        context
    }
}

/// What a render wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The sweep folder (absolute).
    pub dir: PathBuf,
    pub jobs: usize,
    pub points: usize,
    /// Files written, and their total size in bytes.
    pub files: usize,
    pub bytes: u64,
}

/// Writes the sweep folder at `output`, which must not exist. Everything is written under a
/// temporary name beside it and renamed at the end, so a failure leaves nothing half-written.
pub fn write(prepared: &Prepared, output: &Path) -> Result<Rendered, SubmitError> {
    let output = absolute(output)?;
    if output.exists() {
        return Err(SubmitError::Exists { path: output });
    }
    let parent = output.parent().ok_or_else(|| SubmitError::Exists { path: output.clone() })?;
    std::fs::create_dir_all(parent)
        .map_err(|source| SubmitError::Write { path: parent.to_path_buf(), source })?;
    let staging = parent.join(format!(
        ".{}.rendering-{}",
        output.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        std::process::id()
    ));
    if let Err(error) = write_sweep(&staging, &output, prepared) {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(error);
    }
    std::fs::rename(&staging, &output).map_err(|source| {
        let _ = std::fs::remove_dir_all(&staging);
        SubmitError::Write { path: output.clone(), source }
    })?;
    let files = files_under(&output);
    let bytes = files.iter().filter_map(|f| f.metadata().ok()).map(|m| m.len()).sum();
    Ok(Rendered {
        dir: output,
        jobs: prepared.plan.jobs.len(),
        points: prepared.plan.points.len(),
        files: files.len(),
        bytes,
    })
}

/// Every file under `dir`, sorted by path.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.filter_map(Result::ok) {
            match entry.file_type() {
                Ok(t) if t.is_dir() => stack.push(entry.path()),
                Ok(_) => out.push(entry.path()),
                Err(_) => {}
            }
        }
    }
    out.sort();
    out
}

/// A job folder's rendered files as they will run, each with its path relative to the sweep
/// folder: the script first, then the engine configs, by path. `job.json` (the runner's input,
/// the same facts as `plan.json`) is left out.
pub fn job_files(sweep: &SweepDir, job: &ManifestJob) -> Result<Vec<(String, String)>, SubmitError> {
    let dir = sweep.job(&job.dir);
    let script = dir.script_path(&job.script);
    let mut paths = vec![script.clone()];
    paths.extend(files_under(dir.path()).into_iter().filter(|p| *p != script && *p != dir.job_path()));
    paths
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path)
                .map_err(|source| SubmitError::Read { path: path.clone(), source })?;
            let relative = path.strip_prefix(sweep.path()).unwrap_or(&path).display().to_string();
            Ok((relative, text))
        })
        .collect()
}

fn create_dir(path: &Path) -> Result<(), SubmitError> {
    std::fs::create_dir_all(path).map_err(|source| SubmitError::Write { path: path.to_path_buf(), source })
}

fn write_sweep(staging: &Path, output: &Path, p: &Prepared) -> Result<(), SubmitError> {
    create_dir(staging)?;
    let staged = SweepDir::new(staging);
    let spec = &p.document.spec;
    file::create_new(&staged.spec_path(), &p.spec_text)?;
    let plan_bytes = staged.write_plan(spec, &p.plan)?;
    let provenance = crate::provenance::collect(spec, &p.spec_text, &plan_bytes);
    file::write(&staged.provenance_path(), &provenance)?;
    let mut jobs = Vec::with_capacity(p.plan.jobs.len());
    for (index, job) in p.plan.jobs.iter().enumerate() {
        let points = p.plan.points[job.points.clone()].to_vec();
        let dir = SweepDir::job_relative(&job.name);
        jobs.push(write_job(&staged.job(&dir), output, &dir, index, points, p, 1)?);
    }
    let manifest =
        Manifest { sweep: spec.name.clone(), executor: p.executor, resumes: 0, queue_limit: None, jobs };
    staged.write_manifest(&manifest)?;
    Ok(())
}

/// Renders one job folder (script, engine configs, `job.json`) into `staged`, to live at
/// `<output>/<dir>`; returns its manifest entry.
fn write_job(
    staged: &JobDir,
    output: &Path,
    dir: &str,
    index: usize,
    points: Vec<sweep_plan::Point>,
    p: &Prepared,
    attempt: u32,
) -> Result<ManifestJob, SubmitError> {
    let job = &p.plan.jobs[index];
    let context = p.context(index, output, dir, points);
    let rendered = p
        .templates
        .render_job(context.clone(), p.executor)
        .map_err(|source| SubmitError::RenderJob { job: job.name.clone(), source })?;
    create_dir(staged.path())?;
    let script = p.executor.script_name();
    file::create_new(&staged.script_path(script), rendered.script.as_bytes())?;
    for (path, contents) in &rendered.files {
        let path = staged.path().join(path);
        if let Some(parent) = path.parent() {
            create_dir(parent)?;
        }
        file::create_new(&path, contents.as_bytes())?;
    }
    file::create_new(&staged.job_path(), &staged.job_bytes(&context)?)?;
    Ok(ManifestJob {
        id: job.id.to_string(),
        name: job.name.clone(),
        dir: dir.to_owned(),
        script: script.to_owned(),
        attempt,
        state: JobState::Rendered,
        slurm_job_id: None,
        reason: None,
        points: context.points.iter().map(|pt| pt.id.to_string()).collect(),
        chain: None,
        after: None,
        allocation: None,
    })
}

/// Every launch command of every job, rendered as [`write`] would into `output`: (job name,
/// step name, shell text).
pub fn launch_commands(p: &Prepared, output: &Path) -> Result<Vec<(String, String, String)>, SubmitError> {
    let mut out = Vec::new();
    for (index, job) in p.plan.jobs.iter().enumerate() {
        let points = p.plan.points[job.points.clone()].to_vec();
        let context = p.context(index, output, &SweepDir::job_relative(&job.name), points);
        let rendered = p
            .templates
            .render_job(context, p.executor)
            .map_err(|source| SubmitError::RenderJob { job: job.name.clone(), source })?;
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
    /// Points that already have a complete result.
    pub complete: usize,
    /// Points of jobs still queued or running.
    pub live: usize,
    /// Points the added folders run.
    pub to_run: usize,
}

/// Adds a job folder for every job of the (possibly changed) spec that has points with no
/// complete result and not queued or running (`live`); existing folders are never touched.
pub fn resume(p: &Prepared, sweep: &SweepDir, live: &BTreeSet<String>) -> Result<Resumed, SubmitError> {
    let mut manifest = sweep.read_manifest()?;
    let done = sweep.completed_points();
    let (mut complete, mut running, mut to_run) = (0usize, 0usize, 0usize);
    let mut added = Vec::new();
    let resumes = manifest.resumes + 1;
    for (index, job) in p.plan.jobs.iter().enumerate() {
        let mut points = Vec::new();
        for point in &p.plan.points[job.points.clone()] {
            let id = point.id.to_string();
            if done.contains(&id) {
                complete += 1;
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
        added.push(add_job_folder(p, sweep, &mut manifest, index, points)?);
    }
    // The spec and provenance of this resume, beside (not over) the first ones.
    file::create_new(&sweep.resume_spec_path(resumes), &p.spec_text)?;
    let mut plan_bytes = Vec::new();
    sweep_folder::plan::write_json(&mut plan_bytes, &p.document.spec, &p.plan)
        .map_err(|source| SubmitError::Write { path: sweep.plan_path(), source })?;
    let provenance = crate::provenance::collect(&p.document.spec, &p.spec_text, &plan_bytes);
    file::write(&sweep.resume_provenance_path(resumes), &provenance)?;
    manifest.resumes = resumes;
    sweep.write_manifest(&manifest)?;
    Ok(Resumed { dir: sweep.path().to_owned(), executor: p.executor, added, complete, live: running, to_run })
}

/// Renders a new folder for the plan's job `index` that runs only `points` (the next free
/// `jobs/<name>.<n>`; staged under a temporary name and renamed into place, so a failure leaves
/// nothing half-written) and adds its entry to `manifest`, which the caller writes. Returns
/// the entry's index.
pub fn add_job_folder(
    p: &Prepared,
    sweep: &SweepDir,
    manifest: &mut Manifest,
    index: usize,
    points: Vec<sweep_plan::Point>,
) -> Result<usize, SubmitError> {
    let (attempt, dir) = sweep.free_job_dir(&p.plan.jobs[index].name);
    let target = sweep.job(&dir);
    let staged =
        JobDir::new(sweep.jobs_path().join(format!(".{}.rendering-{}", target.name(), std::process::id())));
    let entry = match write_job(&staged, sweep.path(), &dir, index, points, p, attempt) {
        Ok(entry) => entry,
        Err(error) => {
            let _ = std::fs::remove_dir_all(staged.path());
            return Err(error);
        }
    };
    std::fs::rename(staged.path(), target.path())
        .map_err(|source| SubmitError::Write { path: target.path().to_owned(), source })?;
    manifest.jobs.push(entry);
    Ok(manifest.jobs.len() - 1)
}

pub fn absolute(path: &Path) -> Result<PathBuf, SubmitError> {
    std::path::absolute(path).map_err(|source| SubmitError::Write { path: path.to_path_buf(), source })
}

/// `sweep-runner` beside this program: where `cargo build` and an install put it.
fn default_runner() -> Result<PathBuf, SubmitError> {
    let exe = std::env::current_exe()
        .map_err(|source| SubmitError::Read { path: PathBuf::from("sweep"), source })?;
    Ok(exe.with_file_name("sweep-runner"))
}
