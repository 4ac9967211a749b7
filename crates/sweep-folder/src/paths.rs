//! Where every file of the sweep folder is, how each is read and written, and the walk over
//! job folders and points (`docs/templates.md` draws the layout).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::file;
use crate::job::JobContext;
use crate::lock::FileLock;
use crate::manifest::Manifest;
use crate::markers::{BenchmarkStatus, PointState, PointStatus, Registration, ServerStatus};
use crate::metadata::Metadata;
use crate::plan::PlanFile;
use crate::provenance::{JobProvenance, Provenance, PythonEnvironment};
use crate::FolderError;

/// A sweep folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepDir {
    root: PathBuf,
}

impl SweepDir {
    /// The folder at `root`, which may not exist yet (a render writes it).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        SweepDir { root: root.into() }
    }

    /// An existing sweep folder: one with a manifest.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, FolderError> {
        let dir = SweepDir::new(root);
        if !dir.manifest_path().is_file() {
            return Err(FolderError::NotASweep { path: dir.root });
        }
        Ok(dir)
    }

    /// Whether `dir` holds a sweep folder (a manifest and a plan), as opposed to other
    /// results.
    pub fn is_sweep(dir: &Path) -> bool {
        let dir = SweepDir::new(dir);
        dir.manifest_path().is_file() && dir.plan_path().is_file()
    }

    pub fn path(&self) -> &Path {
        &self.root
    }

    pub fn manifest_path(&self) -> PathBuf {
        self.root.join("manifest.json")
    }

    pub fn plan_path(&self) -> PathBuf {
        self.root.join("plan.json")
    }

    /// The spec as given.
    pub fn spec_path(&self) -> PathBuf {
        self.root.join("spec.yaml")
    }

    /// The spec of resume `n` (1, 2, …), beside the first.
    pub fn resume_spec_path(&self, n: u32) -> PathBuf {
        self.root.join(format!("spec.resume-{n}.yaml"))
    }

    pub fn provenance_path(&self) -> PathBuf {
        self.root.join("provenance.json")
    }

    /// The provenance of resume `n`, beside the first.
    pub fn resume_provenance_path(&self, n: u32) -> PathBuf {
        self.root.join(format!("provenance.resume-{n}.json"))
    }

    pub fn jobs_path(&self) -> PathBuf {
        self.root.join("jobs")
    }

    /// A job folder by its manifest entry's `dir` (`jobs/<name>[.<n>]`).
    pub fn job(&self, relative: &str) -> JobDir {
        JobDir::new(self.root.join(relative))
    }

    /// The folder name `name` (`name.2`, … for later attempts) of a job, relative to the
    /// sweep folder, as the manifest records it.
    pub fn job_relative(name: &str) -> String {
        format!("jobs/{name}")
    }

    pub fn read_manifest(&self) -> Result<Manifest, FolderError> {
        file::read(&self.manifest_path())
    }

    pub fn write_manifest(&self, manifest: &Manifest) -> Result<(), FolderError> {
        file::write(&self.manifest_path(), manifest)
    }

    pub fn read_plan(&self) -> Result<PlanFile, FolderError> {
        file::read(&self.plan_path())
    }

    pub fn write_plan(
        &self,
        spec: &sweep_spec::Spec,
        plan: &sweep_plan::Plan,
    ) -> Result<Vec<u8>, FolderError> {
        let mut bytes = Vec::new();
        let path = self.plan_path();
        crate::plan::write_json(&mut bytes, spec, plan)
            .map_err(|source| FolderError::Write { path: path.clone(), source })?;
        file::create_new(&path, &bytes)?;
        Ok(bytes)
    }

    pub fn read_provenance(&self) -> Result<Option<Provenance>, FolderError> {
        file::read_optional(&self.provenance_path())
    }

    /// The spec as given; `None` when the folder has none.
    pub fn read_spec(&self) -> Option<String> {
        std::fs::read_to_string(self.spec_path()).ok()
    }

    /// The first free folder of a job named `name`: `(attempt, relative dir)` for
    /// `jobs/name`, `jobs/name.2`, …
    pub fn free_job_dir(&self, name: &str) -> (u32, String) {
        (1u32..)
            .map(|n| (n, if n == 1 { name.to_owned() } else { format!("{name}.{n}") }))
            .find(|(_, folder)| !self.jobs_path().join(folder).exists())
            .map(|(n, folder)| (n, Self::job_relative(&folder)))
            .expect("the attempts are unbounded")
    }

    /// Every job folder: those the manifest lists, in its order (so attempts in order), then
    /// any other folder under `jobs/` — a manifest that lost an entry must not lose its
    /// results. With the index of its manifest entry, when it has one.
    pub fn job_dirs(&self, manifest: Option<&Manifest>) -> Vec<(JobDir, Option<usize>)> {
        let mut out: Vec<(JobDir, Option<usize>)> = manifest
            .map(|m| m.jobs.iter().enumerate().map(|(i, job)| (self.job(&job.dir), Some(i))).collect())
            .unwrap_or_default();
        let mut extra: Vec<PathBuf> = visible_folders(&self.jobs_path())
            .into_iter()
            .filter(|path| !out.iter().any(|(job, _)| job.path() == path))
            .collect();
        extra.sort();
        out.extend(extra.into_iter().map(|path| (JobDir::new(path), None)));
        out
    }

    /// Every point marker under every job folder, with its folder, in folder order. A marker
    /// that cannot be read is returned as its error.
    pub fn point_markers(&self) -> Vec<(PointDir, Result<PointStatus, FolderError>)> {
        let mut out = Vec::new();
        for (job, _) in self.job_dirs(None) {
            for point in job.point_dirs() {
                match point.read_status() {
                    Ok(Some(status)) => out.push((point, Ok(status))),
                    Ok(None) => {}
                    Err(error) => out.push((point, Err(error))),
                }
            }
        }
        out
    }

    /// The ids of points with a complete (`done`) result in any job folder.
    pub fn completed_points(&self) -> BTreeSet<String> {
        self.point_markers()
            .into_iter()
            .filter_map(|(_, status)| status.ok())
            .filter(|status| status.state == PointState::Done)
            .map(|status| status.point)
            .collect()
    }

    /// `.submit.lock`, held by one `sweep submit` at a time.
    pub fn lock(&self) -> Result<SubmitLock, FolderError> {
        FileLock::submit(&self.root.join(".submit.lock"))
    }
}

/// `explore.json` of the sweep folder at `root`: `sweep explore`'s waves. Its type is
/// `sweep_explore::log::Log` (the choice's types live there); it is written and read through
/// [`crate::file`] like every file here.
pub fn explore_log_path(root: &Path) -> PathBuf {
    root.join("explore.json")
}

/// Every registration in a rendezvous folder (`jobs/<job>/rendezvous`, or the folder a mock
/// router is given), in name order. A file being written, or that is not a registration, is
/// left for the next scan.
pub fn registrations_in(dir: &Path) -> Vec<Registration> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.extension().is_some_and(|e| e == "json")
                && !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    paths.sort();
    paths.into_iter().filter_map(|path| file::read::<Registration>(&path).ok()).collect()
}

/// Folders in `dir` whose names do not start with a dot (staging folders do), unsorted.
fn visible_folders(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    entries
        .filter_map(Result::ok)
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect()
}

/// One job folder (`jobs/<name>[.<n>]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobDir {
    dir: PathBuf,
}

impl JobDir {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        JobDir { dir: dir.into() }
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The folder's name (`name` or `name.2`).
    pub fn name(&self) -> String {
        self.dir.file_name().unwrap_or_default().to_string_lossy().into_owned()
    }

    pub fn job_path(&self) -> PathBuf {
        self.dir.join("job.json")
    }

    pub fn metadata_path(&self) -> PathBuf {
        self.dir.join("metadata.json")
    }

    pub fn provenance_path(&self) -> PathBuf {
        self.dir.join("provenance.json")
    }

    /// The script of `executor` in this folder.
    pub fn script_path(&self, script: &str) -> PathBuf {
        self.dir.join(script)
    }

    /// The local executor's output of the job script.
    pub fn local_output_path(&self) -> PathBuf {
        self.dir.join("local.out")
    }

    /// The job script's output when it ran inside an allocation (`--in-allocation`).
    pub fn allocation_output_path(&self) -> PathBuf {
        self.dir.join("allocation.out")
    }

    /// The engine log of server `name` (`gen_0`).
    pub fn log_path(&self, name: &str) -> PathBuf {
        self.dir.join("logs").join(format!("{name}.log"))
    }

    pub fn rendezvous_path(&self) -> PathBuf {
        self.dir.join("rendezvous")
    }

    pub fn registration_path(&self, name: &str) -> PathBuf {
        self.rendezvous_path().join(format!("{name}.json"))
    }

    pub fn server_status_path(&self, name: &str) -> PathBuf {
        self.dir.join("status").join(format!("{name}.json"))
    }

    pub fn benchmark_status_path(&self) -> PathBuf {
        self.dir.join("status").join("benchmark.json")
    }

    /// Appears when the benchmark step ends: every server then stops.
    pub fn stop_path(&self) -> PathBuf {
        self.dir.join("control").join("stop")
    }

    pub fn cancel_path(&self) -> PathBuf {
        self.dir.join("control").join("cancel")
    }

    pub fn points_path(&self) -> PathBuf {
        self.dir.join("points")
    }

    /// Creates the folders the job's steps write into (`logs`, `rendezvous`, `status`,
    /// `control`, `points`).
    pub fn create_folders(&self) -> Result<(), FolderError> {
        for sub in ["logs", "rendezvous", "status", "control", "points"] {
            let path = self.dir.join(sub);
            std::fs::create_dir_all(&path).map_err(|source| FolderError::Write { path, source })?;
        }
        Ok(())
    }

    pub fn read_job(&self) -> Result<JobContext, FolderError> {
        file::read(&self.job_path())
    }

    /// `job.json`, as bytes to write into a staging folder (see [`file::create_new`]).
    pub fn job_bytes(&self, job: &JobContext) -> Result<Vec<u8>, FolderError> {
        file::to_bytes(&self.job_path(), job)
    }

    pub fn read_metadata(&self) -> Result<Option<Metadata>, FolderError> {
        file::read_optional(&self.metadata_path())
    }

    pub fn write_metadata(&self, metadata: &Metadata) -> Result<(), FolderError> {
        file::write(&self.metadata_path(), metadata)
    }

    pub fn read_provenance(&self) -> Result<Option<JobProvenance>, FolderError> {
        file::read_optional(&self.provenance_path())
    }

    pub fn write_provenance(&self, provenance: &JobProvenance) -> Result<(), FolderError> {
        file::write(&self.provenance_path(), provenance)
    }

    /// The Python environment server `name`'s serve step found for its engine.
    pub fn environment_path(&self, name: &str) -> PathBuf {
        self.dir.join("provenance").join(format!("{name}.json"))
    }

    pub fn read_environment(&self, name: &str) -> Result<Option<PythonEnvironment>, FolderError> {
        file::read_optional(&self.environment_path(name))
    }

    pub fn write_environment(&self, name: &str, environment: &PythonEnvironment) -> Result<(), FolderError> {
        let path = self.environment_path(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|source| FolderError::Write { path: parent.to_owned(), source })?;
        }
        file::write(&path, environment)
    }

    pub fn read_registration(&self, name: &str) -> Result<Option<Registration>, FolderError> {
        file::read_optional(&self.registration_path(name))
    }

    pub fn write_registration(&self, name: &str, registration: &Registration) -> Result<(), FolderError> {
        file::write(&self.registration_path(name), registration)
    }

    pub fn read_server_status(&self, name: &str) -> Result<Option<ServerStatus>, FolderError> {
        file::read_optional(&self.server_status_path(name))
    }

    pub fn write_server_status(&self, name: &str, status: &ServerStatus) -> Result<(), FolderError> {
        let path = self.server_status_path(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|source| FolderError::Write { path: parent.to_owned(), source })?;
        }
        file::write(&path, status)
    }

    pub fn read_benchmark_status(&self) -> Result<Option<BenchmarkStatus>, FolderError> {
        file::read_optional(&self.benchmark_status_path())
    }

    pub fn write_benchmark_status(&self, status: &BenchmarkStatus) -> Result<(), FolderError> {
        file::write(&self.benchmark_status_path(), status)
    }

    /// Tells every server of the job to stop.
    pub fn request_stop(&self) -> Result<(), FolderError> {
        let path = self.stop_path();
        std::fs::write(&path, b"").map_err(|source| FolderError::Write { path, source })
    }

    pub fn stop_requested(&self) -> bool {
        self.stop_path().exists()
    }

    /// `control/cancel`: whoever runs the job (an interrupted `sweep submit`) asks its benchmark
    /// step to stop the load as SIGTERM would, with `reason`; it works wherever the steps run
    /// (an `srun` step's tasks are not the submitter's processes).
    pub fn request_cancel(&self, reason: &str) -> Result<(), FolderError> {
        let path = self.cancel_path();
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|source| FolderError::Write { path: parent.to_owned(), source })?;
        }
        std::fs::write(&path, reason).map_err(|source| FolderError::Write { path, source })
    }

    /// The reason in `control/cancel`, once someone asked.
    pub fn cancel_requested(&self) -> Option<String> {
        std::fs::read_to_string(self.cancel_path()).ok().map(|r| r.trim().to_owned())
    }

    /// A new folder for point `id`: `points/<id>`, or `points/<id>.2`, … when this job folder
    /// already ran it (an existing folder is never reused).
    pub fn new_point_dir(&self, id: &str) -> Result<PointDir, FolderError> {
        let base = self.points_path();
        std::fs::create_dir_all(&base).map_err(|source| FolderError::Write { path: base.clone(), source })?;
        for attempt in 1.. {
            let name = if attempt == 1 { id.to_owned() } else { format!("{id}.{attempt}") };
            let dir = base.join(name);
            match std::fs::create_dir(&dir) {
                Ok(()) => return Ok(PointDir::new(dir)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(source) => return Err(FolderError::Write { path: dir, source }),
            }
        }
        unreachable!("the attempts are unbounded")
    }

    /// A new folder for the accuracy step: `accuracy`, or `accuracy.2`, … when this job folder
    /// already ran one (a requeued job); an earlier step's files are never overwritten.
    pub fn new_accuracy_dir(&self) -> Result<PathBuf, FolderError> {
        for attempt in 1.. {
            let dir = self.dir.join(accuracy_name(attempt));
            match std::fs::create_dir(&dir) {
                Ok(()) => return Ok(dir),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(source) => return Err(FolderError::Write { path: dir, source }),
            }
        }
        unreachable!("the attempts are unbounded")
    }

    /// Writes the accuracy step's outcome in `dir` (from [`JobDir::new_accuracy_dir`]): the
    /// probe's answers, when it ran, then `accuracy.json`.
    pub fn write_accuracy(
        &self,
        dir: &Path,
        result: &crate::accuracy::AccuracyResult,
        answers: &[crate::accuracy::Answer],
    ) -> Result<(), FolderError> {
        if !answers.is_empty() {
            file::write_lines(&dir.join(crate::accuracy::ANSWERS), answers)?;
        }
        file::write(&dir.join(crate::accuracy::SUMMARY), result)
    }

    /// The latest accuracy step's `accuracy.json`, with its path; `None` when no step wrote one.
    pub fn read_accuracy(&self) -> Result<Option<(PathBuf, crate::accuracy::AccuracyResult)>, FolderError> {
        let mut latest = None;
        for attempt in 1.. {
            let dir = self.dir.join(accuracy_name(attempt));
            if !dir.is_dir() {
                break;
            }
            let path = dir.join(crate::accuracy::SUMMARY);
            if path.is_file() {
                latest = Some(path);
            }
        }
        match latest {
            Some(path) => Ok(Some((path.clone(), file::read(&path)?))),
            None => Ok(None),
        }
    }

    /// Every point folder, sorted by name.
    pub fn point_dirs(&self) -> Vec<PointDir> {
        let mut dirs = visible_folders(&self.points_path());
        dirs.sort();
        dirs.into_iter().map(PointDir::new).collect()
    }

    /// The marker of each point by id (the last folder's, when a point ran twice here);
    /// unreadable markers are left out.
    pub fn point_states(&self) -> BTreeMap<String, PointStatus> {
        self.point_dirs()
            .into_iter()
            .filter_map(|point| point.read_status().ok().flatten())
            .map(|status| (status.point.clone(), status))
            .collect()
    }

    /// Marks `point` of job `job` skipped, with `reason`, before the job runs: its runner leaves
    /// a point so marked alone (`sweep explore` measures only the loads that can still add to
    /// the frontier). The marker stays as the point's record.
    pub fn skip_point(
        &self,
        point: &crate::settings::Point,
        job: &str,
        reason: &str,
    ) -> Result<(), FolderError> {
        let dir = self.new_point_dir(&point.id.to_string())?;
        dir.write_point(point)?;
        let now = file::now();
        dir.write_status(&PointStatus {
            point: point.id.to_string(),
            job: job.to_owned(),
            state: PointState::Skipped,
            reason: reason.to_owned(),
            started_at: now,
            ended_at: now,
        })
    }

    /// The points marked skipped in this job folder. Read by the runner as it starts, these
    /// are the points [`JobDir::skip_point`] marked: a job folder runs once.
    pub fn skipped_points(&self) -> BTreeSet<String> {
        self.point_states()
            .into_iter()
            .filter(|(_, status)| status.state == PointState::Skipped)
            .map(|(id, _)| id)
            .collect()
    }
}

/// `accuracy`, `accuracy.2`, …
fn accuracy_name(attempt: u32) -> String {
    if attempt == 1 {
        crate::accuracy::DIR.to_owned()
    } else {
        format!("{}.{attempt}", crate::accuracy::DIR)
    }
}

/// One point's folder (`points/<id>[.<n>]`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PointDir {
    dir: PathBuf,
}

impl PointDir {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        PointDir { dir: dir.into() }
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The folder's name: the point's id, with `.2`, … for a rerun in the same job folder.
    pub fn name(&self) -> String {
        self.dir.file_name().unwrap_or_default().to_string_lossy().into_owned()
    }

    pub fn point_path(&self) -> PathBuf {
        self.dir.join("point.json")
    }

    pub fn status_path(&self) -> PathBuf {
        self.dir.join("status.json")
    }

    /// One of the point's aiperf-compatible exports ([`crate::exports`]), when it is there.
    pub fn export(&self, name: &str) -> Option<PathBuf> {
        Some(self.dir.join(name)).filter(|p| p.is_file())
    }

    pub fn read_point(&self) -> Result<Option<crate::settings::Point>, FolderError> {
        file::read_optional(&self.point_path())
    }

    pub fn write_point(&self, point: &crate::settings::Point) -> Result<(), FolderError> {
        file::write(&self.point_path(), point)
    }

    pub fn read_status(&self) -> Result<Option<PointStatus>, FolderError> {
        file::read_optional(&self.status_path())
    }

    /// `search.json`: the search this point ran, when it is a search's planned point.
    pub fn search_path(&self) -> PathBuf {
        self.dir.join("search.json")
    }

    pub fn read_search(&self) -> Result<Option<crate::search::SearchRecord>, FolderError> {
        file::read_optional(&self.search_path())
    }

    pub fn write_search(&self, record: &crate::search::SearchRecord) -> Result<(), FolderError> {
        file::write(&self.search_path(), record)
    }

    pub fn write_status(&self, status: &PointStatus) -> Result<(), FolderError> {
        file::write(&self.status_path(), status)
    }

    /// `server_metrics.json`: the point's summary of its servers' `/metrics`.
    pub fn server_metrics_path(&self) -> PathBuf {
        self.dir.join(crate::server_metrics::SUMMARY)
    }

    /// `gpu_metrics.json`: the point's GPU telemetry summary.
    pub fn gpu_metrics_path(&self) -> PathBuf {
        self.dir.join(crate::gpu_metrics::SUMMARY)
    }

    /// `gpu_metrics.jsonl`: every GPU sample of the point's measured window.
    pub fn gpu_samples_path(&self) -> PathBuf {
        self.dir.join(crate::gpu_metrics::SAMPLES)
    }

    pub fn read_gpu_metrics(&self) -> Result<Option<crate::gpu_metrics::GpuSummary>, FolderError> {
        file::read_optional(&self.gpu_metrics_path())
    }

    /// Every GPU sample of `gpu_metrics.jsonl`, for the report's panel; a line that does not
    /// parse is left out (the summary, which the table reads, is the record).
    pub fn read_gpu_samples(&self) -> Result<Vec<crate::gpu_metrics::Sample>, FolderError> {
        let path = self.gpu_samples_path();
        let text = std::fs::read_to_string(&path).map_err(|source| FolderError::Read { path, source })?;
        Ok(text.lines().filter_map(|line| serde_json::from_str(line).ok()).collect())
    }

    /// Writes the point's GPU samples (one JSON line each) and their summary.
    pub fn write_gpu_metrics(
        &self,
        samples: &[crate::gpu_metrics::Sample],
        summary: &crate::gpu_metrics::GpuSummary,
    ) -> Result<(), FolderError> {
        file::write_lines(&self.gpu_samples_path(), samples)?;
        file::write(&self.gpu_metrics_path(), summary)
    }

    /// `server_metrics.jsonl`: every scrape of the point.
    pub fn scrapes_path(&self) -> PathBuf {
        self.dir.join(crate::server_metrics::SCRAPES)
    }

    pub fn read_server_metrics(&self) -> Result<Option<crate::server_metrics::Summary>, FolderError> {
        file::read_optional(&self.server_metrics_path())
    }

    pub fn write_server_metrics(&self, summary: &crate::server_metrics::Summary) -> Result<(), FolderError> {
        file::write(&self.server_metrics_path(), summary)
    }
}

/// Holds a sweep folder's `.submit.lock` while it lives, so that two submits cannot work on one
/// folder at once. The lock is the kernel's ([`FileLock`]), so it dies with its holder whatever
/// ends it: no crash leaves a folder locked.
pub type SubmitLock = FileLock;

impl FileLock {
    fn submit(path: &Path) -> Result<Self, FolderError> {
        match FileLock::try_take(path, &format!("pid {}", std::process::id())) {
            Ok(Ok(lock)) => Ok(lock),
            Ok(Err(holder)) => Err(FolderError::Locked { path: path.to_owned(), holder }),
            Err(source) => Err(FolderError::Write { path: path.to_owned(), source }),
        }
    }
}
