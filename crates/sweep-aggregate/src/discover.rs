//! Finding every point under a folder.
//!
//! Three shapes are recognised:
//! - **this project's sweep folders** (`manifest.json` + `plan.json`): the plan says every point
//!   that should exist and its configuration, `metadata.json` what the job really had,
//!   `status.json` how each point ended. A planned point with no folder is a row too
//!   (`not_run`, with its job's state from the manifest).
//! - **Dynamo-style aiperf trees**: `<kind>-bm-<isl>-<osl>/<config>/aiperf_artifacts/` with
//!   `deployment_config.json` and `concurrency_<C>/profile_export_aiperf.json`. Only here are
//!   parameters parsed from folder names, because nothing else records them.
//! - **any other aiperf run folder** (a `profile_export_aiperf.json` or `profile_export.jsonl`).
//!
//! Nothing is guessed: a value no file gives stays empty (no `total_gpus = 1` fallback) and a
//! file that cannot be read is a [`Warning`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;
use sweep_folder::{exports, FolderError, PointDir, SweepDir};

use crate::{Error, Warning};

/// Where a point comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Sweep,
    Dynamo,
    Aiperf,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Sweep => "sweep",
            Source::Dynamo => "dynamo",
            Source::Aiperf => "aiperf",
        }
    }
}

/// One serving role of a configuration.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RoleConfig {
    /// `agg`, `ctx` or `gen`.
    pub role: String,
    pub servers: Option<i64>,
    pub tp: Option<i64>,
    pub pp: Option<i64>,
    /// `tep` or `dep` (attention data parallel).
    pub parallel: Option<String>,
    pub batch: Option<i64>,
    pub mtp: Option<i64>,
    pub eplb: Option<i64>,
}

/// The deployment a point ran on.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Config {
    pub sweep: Option<String>,
    /// The configuration's name: the job's name, or the Dynamo config folder.
    pub job: String,
    pub job_id: Option<String>,
    /// `agg` or `disagg`.
    pub mode: Option<String>,
    pub roles: Vec<RoleConfig>,
    pub gpus_allocated: Option<i64>,
    pub gpus_working: Option<i64>,
    pub model: Option<String>,
    pub engine: Option<String>,
    /// The engine's version, as the job's provenance recorded it.
    pub engine_version: Option<String>,
    /// Set only when sweeps of several engine versions are merged (`--allow-mixed-versions`):
    /// frontiers are then drawn per version.
    pub version_group: Option<String>,
    /// The job's knob values (`docs/spec.md`, "Knobs"), by axis name, as text.
    pub knobs: BTreeMap<String, String>,
    /// Which deployment of its configuration the job is (`workload.deployment_repeats`), and
    /// the id its deployments share.
    pub deployment: u32,
    pub configuration: Option<String>,
}

/// A knob's value as a table shows it: text as itself, anything else as JSON.
pub fn knob_text(value: &serde_json::Value) -> String {
    value.as_str().map_or_else(|| value.to_string(), str::to_owned)
}

/// The knobs that say where the engine came from: the image and the venv.
pub const INSTALLATION_KNOBS: [&str; 2] = ["cluster.container.image", "engine.venv"];

impl Config {
    /// Where the engine came from, when the sweep varies it: `image`, `venv` or both.
    pub fn installation(&self) -> Option<String> {
        let parts: Vec<&str> =
            INSTALLATION_KNOBS.iter().filter_map(|k| self.knobs.get(*k).map(String::as_str)).collect();
        (!parts.is_empty()).then(|| parts.join(" + "))
    }

    pub fn role(&self, name: &str) -> Option<&RoleConfig> {
        self.roles.iter().find(|r| r.role == name)
    }

    /// The role that produces output tokens: GEN in disagg, AGG otherwise.
    pub fn decode_role(&self) -> Option<&RoleConfig> {
        self.role("gen").or_else(|| self.role("agg"))
    }
}

/// A point found on disk (or planned and missing).
#[derive(Debug, Clone, PartialEq)]
pub struct PointSource {
    pub source: Source,
    /// Which repetition of its point this is (`workload.repeats`), from 0.
    pub repeat: u32,
    /// The point's folder; for a point that never ran, its job's folder or the sweep's.
    pub dir: PathBuf,
    pub config: Config,
    pub point: String,
    pub isl: Option<i64>,
    pub osl: Option<i64>,
    pub concurrency: Option<i64>,
    pub effective_concurrency: Option<i64>,
    /// The open loop's rate, requests/s; `None` for a closed loop.
    pub request_rate: Option<f64>,
    /// The shared-prefix share of each prompt (`workload.prefix_ratio`).
    pub prefix_ratio: Option<f64>,
    /// The search (`workload.search`) this point belongs to: the planned point's id, for the
    /// planned point itself and for each of its steps.
    pub search: Option<String>,
    /// The planned point's `search.json`: what its search found.
    pub search_record: Option<sweep_folder::search::SearchRecord>,
    /// `done`, `failed`, `timeout`, `cancelled`, `running`, `not_run` (or `unknown` when no
    /// marker says; reading may turn it into `done` or `unreadable`).
    pub state: String,
    pub reason: Option<String>,
    /// How many job folders held this point (a resume adds one per rerun).
    pub attempts: u32,
    pub summary: Option<PathBuf>,
    pub records: Option<PathBuf>,
    /// aiperf's `phase_manifest.json`: the profiling phase's own start and end, which aiperf's
    /// throughputs divide by.
    pub phase_manifest: Option<PathBuf>,
    /// The point's `server_metrics.json` (`engine.metrics`).
    pub server_metrics: Option<PathBuf>,
    /// Its job folder's accuracy step (`accuracy/accuracy.json`), when it ran one.
    pub accuracy: Option<sweep_folder::accuracy::AccuracyResult>,
}

/// What a sweep folder says about where and how it ran, for the report.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SweepInfo {
    pub dir: PathBuf,
    pub name: String,
    pub executor: Option<String>,
    /// The resolved spec as submitted (`spec.yaml`).
    pub spec: Option<String>,
    pub engine: Option<String>,
    pub model: Option<String>,
    pub nodes: BTreeSet<String>,
    pub versions: BTreeMap<String, String>,
    pub slurm_job_ids: Vec<String>,
    pub jobs: usize,
    /// `provenance.json`: which build rendered it, from what (none for folders of sweep 0.1).
    pub provenance: Option<sweep_folder::provenance::Provenance>,
    /// Each job folder's `provenance.json`, by folder name.
    pub job_provenance: Vec<(String, sweep_folder::provenance::JobProvenance)>,
    /// Each job folder's accuracy step, by folder name, with its configuration's label.
    pub accuracy: Vec<(String, sweep_folder::accuracy::AccuracyResult)>,
}

#[derive(Debug, Default)]
pub struct Discovery {
    pub points: Vec<PointSource>,
    pub sweeps: Vec<SweepInfo>,
    pub warnings: Vec<Warning>,
}

impl Discovery {
    pub fn merge(&mut self, other: Discovery) {
        self.points.extend(other.points);
        self.sweeps.extend(other.sweeps);
        self.warnings.extend(other.warnings);
    }

    fn warn(&mut self, path: &Path, message: impl Into<String>) {
        self.warnings.push(Warning { path: path.to_owned(), message: message.into() });
    }
}

const SUMMARY: &str = exports::SUMMARY;
const RECORDS: &str = exports::RECORDS;

/// Walks `root` (a sweep folder, an aiperf tree, or any folder holding them).
pub fn discover(root: &Path) -> Result<Discovery, Error> {
    let meta = std::fs::metadata(root).map_err(|source| Error::Read { path: root.to_owned(), source })?;
    if !meta.is_dir() {
        return Err(Error::Read {
            path: root.to_owned(),
            source: std::io::Error::other("not a folder: give a sweep folder or a folder of aiperf runs"),
        });
    }
    let mut found = Discovery::default();
    walk(root, root, &mut found, &mut BTreeSet::new());
    Ok(found)
}

/// Symbolic links to folders are followed (run folders are often linked into one tree); a
/// folder reached twice is read once, which also ends link cycles.
fn walk(root: &Path, dir: &Path, found: &mut Discovery, visited: &mut BTreeSet<PathBuf>) {
    if !visited.insert(dir.canonicalize().unwrap_or_else(|_| dir.to_owned())) {
        return;
    }
    if SweepDir::is_sweep(dir) {
        sweep_folder(dir, found);
        return;
    }
    if dir.join(SUMMARY).is_file() || dir.join(RECORDS).is_file() {
        aiperf_point(root, dir, found);
        // A run folder's `phases/*/` hold copies of its own summary: not points of their own.
        return;
    }
    if dir.join("deployment_config.json").is_file() && !has_concurrency_results(dir) {
        found.warn(
            &dir.join("deployment_config.json"),
            "a deployment with no concurrency_<C> results: the job ended before its first point",
        );
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        found.warn(dir, "cannot list this folder");
        return;
    };
    let mut children: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    children.sort();
    for child in children {
        walk(root, &child, found, visited);
    }
}

fn has_concurrency_results(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries.filter_map(Result::ok).any(|e| e.file_name().to_string_lossy().starts_with("concurrency_"))
    })
}

/// Reads a JSON file; a missing or broken one is a warning and `None`.
fn read_json(path: &Path, found: &mut Discovery, missing_is_warning: bool) -> Option<Value> {
    match std::fs::read(path) {
        Ok(bytes) => match serde_json::from_slice(&bytes) {
            Ok(value) => Some(value),
            Err(e) => {
                found.warn(path, format!("not valid JSON ({e}); ignored"));
                None
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !missing_is_warning => None,
        Err(e) => {
            found.warn(path, format!("cannot read ({e})"));
            None
        }
    }
}

fn int(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| v.as_f64().map(|f| f.round() as i64))
}

fn string(v: &Value) -> Option<String> {
    v.as_str().map(str::to_owned)
}

/// One attempt at a point: its folder in one job folder.
struct Attempt {
    dir: PointDir,
    state: String,
    reason: Option<String>,
    point: Option<sweep_folder::settings::Point>,
    config: Config,
    accuracy: Option<sweep_folder::accuracy::AccuracyResult>,
}

/// A file of the folder that could not be read is a warning (its path leads the message), and
/// `None`.
fn readable<T>(result: Result<Option<T>, FolderError>, found: &mut Discovery) -> Option<T> {
    match result {
        Ok(value) => value,
        Err(error) => {
            let path = error.path().to_owned();
            found.warn(&path, format!("{}; ignored", error.detail()));
            None
        }
    }
}

fn role_config(r: &sweep_folder::settings::RoleConfig) -> RoleConfig {
    RoleConfig {
        role: r.role.as_str().to_owned(),
        servers: Some(i64::from(r.servers)),
        tp: Some(i64::from(r.tp)),
        pp: Some(i64::from(r.pp)),
        parallel: Some(r.parallel.as_str().to_owned()),
        batch: Some(i64::from(r.batch)),
        mtp: Some(i64::from(r.mtp)),
        eplb: Some(i64::from(r.eplb)),
    }
}

fn sweep_folder(dir: &Path, found: &mut Discovery) {
    let sweep = SweepDir::new(dir);
    let plan = readable(sweep.read_plan().map(Some), found);
    let manifest = readable(sweep.read_manifest().map(Some), found);
    let name = plan
        .as_ref()
        .map(|p| p.sweep.clone())
        .or_else(|| manifest.as_ref().map(|m| m.sweep.clone()))
        .unwrap_or_else(|| dir.file_name().unwrap_or_default().to_string_lossy().into_owned());
    let mut info = SweepInfo {
        dir: dir.to_owned(),
        name: name.clone(),
        executor: manifest.as_ref().map(|m| m.executor.as_str().to_owned()),
        spec: sweep.read_spec(),
        engine: plan.as_ref().map(|p| p.engine.kind.clone()),
        model: plan.as_ref().map(|p| p.model.served_name.clone()),
        provenance: readable(sweep.read_provenance(), found),
        ..SweepInfo::default()
    };

    // The configuration of each planned job, by job id.
    let mut planned: BTreeMap<String, (Config, Vec<sweep_folder::settings::Point>)> = BTreeMap::new();
    for job in plan.iter().flat_map(|p| &p.jobs) {
        let config = Config {
            sweep: Some(name.clone()),
            job: job.name.clone(),
            job_id: Some(job.id.clone()),
            mode: Some(job.mode.as_str().to_owned()),
            roles: job.roles.iter().map(role_config).collect(),
            gpus_allocated: Some(i64::from(job.layout.gpus_allocated)),
            gpus_working: Some(i64::from(job.layout.gpus_working)),
            model: info.model.clone(),
            engine: info.engine.clone(),
            knobs: job.knobs.iter().map(|(k, v)| (k.clone(), knob_text(v))).collect(),
            deployment: job.deployment,
            configuration: job.configuration.clone(),
            ..Config::default()
        };
        planned.insert(job.id.clone(), (config, job.points.clone()));
    }
    info.jobs = planned.len();
    if let Some(m) = &manifest {
        info.slurm_job_ids = m.slurm_ids();
    }

    let mut attempts: BTreeMap<String, Vec<Attempt>> = BTreeMap::new();
    for (job_dir, index) in sweep.job_dirs(manifest.as_ref()) {
        let entry = index.and_then(|i| manifest.as_ref().map(|m| &m.jobs[i]));
        let metadata = readable(job_dir.read_metadata(), found);
        let job_id = entry.map(|e| e.id.clone()).or_else(|| metadata.as_ref().map(|m| m.job.id.clone()));
        let mut config =
            job_id.as_ref().and_then(|id| planned.get(id)).map(|(c, _)| c.clone()).unwrap_or_else(|| {
                Config {
                    sweep: Some(name.clone()),
                    job: job_dir.name(),
                    job_id: job_id.clone(),
                    ..Config::default()
                }
            });
        if let Some(m) = &metadata {
            // What the job really had beats what was planned.
            config.gpus_allocated = i64::try_from(m.gpus.allocated).ok();
            config.gpus_working = i64::try_from(m.gpus.working).ok();
            if config.roles.is_empty() {
                config.roles = m.roles.iter().map(|r| role_config(&r.config)).collect();
                config.mode = Some(m.job.mode.clone());
                config.job = m.job.name.clone();
            }
            if !m.knobs.is_empty() {
                config.knobs = m.knobs.iter().map(|(k, v)| (k.clone(), knob_text(v))).collect();
            }
            info.nodes.extend(m.nodes.iter().cloned());
            info.versions.extend(m.versions.clone());
        }
        if let Some(provenance) = readable(job_dir.read_provenance(), found) {
            config.engine_version = provenance.engine_version.clone();
            info.job_provenance.push((job_dir.name(), provenance));
        }
        let accuracy = readable(job_dir.read_accuracy(), found).map(|(_, result)| result);
        if let Some(result) = &accuracy {
            info.accuracy.push((job_dir.name(), result.clone()));
        }
        for point_dir in job_dir.point_dirs() {
            let (state, reason) = match readable(point_dir.read_status(), found) {
                Some(s) => (s.state.as_str().to_owned(), Some(s.reason).filter(|r| !r.is_empty())),
                None => ("unknown".to_owned(), Some("no readable status.json marker".to_owned())),
            };
            let point = readable(point_dir.read_point(), found);
            attempts.entry(point_dir.name()).or_default().push(Attempt {
                dir: point_dir,
                state,
                reason,
                point,
                config: config.clone(),
                accuracy: accuracy.clone(),
            });
        }
    }

    // One row per planned point, then any point found that the plan does not list.
    let mut seen = BTreeSet::new();
    for (job_id, (config, points)) in &planned {
        for point in points {
            let id = point.id.to_string();
            seen.insert(id.clone());
            match attempts.remove(&id) {
                Some(list) => found.points.push(choose(list, Some(point))),
                None => {
                    let entry = manifest.as_ref().and_then(|m| m.job_of_point(&id));
                    let reason = match entry {
                        Some(e) => format!(
                            "job {} {}{}",
                            e.name,
                            e.state.as_str(),
                            e.reason
                                .as_deref()
                                .filter(|r| !r.is_empty())
                                .map(|r| format!(": {r}"))
                                .unwrap_or_default()
                        ),
                        None if manifest.is_some() => "never submitted (not in manifest.json)".to_owned(),
                        None => format!("job {job_id}: manifest.json cannot be read"),
                    };
                    let point_dir = entry.map_or_else(|| dir.to_owned(), |e| dir.join(&e.dir));
                    found.points.push(PointSource {
                        repeat: 0,
                        source: Source::Sweep,
                        dir: point_dir,
                        config: config.clone(),
                        point: id,
                        isl: Some(i64::from(point.isl)),
                        osl: Some(i64::from(point.osl)),
                        concurrency: Some(i64::from(point.concurrency)),
                        effective_concurrency: i64::try_from(point.effective_concurrency).ok(),
                        request_rate: point.request_rate,
                        prefix_ratio: point.prefix_ratio,
                        search: None,
                        search_record: None,
                        state: "not_run".to_owned(),
                        reason: Some(reason),
                        attempts: 0,
                        summary: None,
                        records: None,
                        phase_manifest: None,
                        server_metrics: None,
                        accuracy: None,
                    });
                }
            }
        }
    }
    for (id, list) in attempts {
        if !seen.contains(&id) {
            found.points.push(choose(list, None));
        }
    }
    found.sweeps.push(info);
}

/// The attempt that speaks for a point: the last one that finished (`done`), else the last.
fn choose(mut list: Vec<Attempt>, planned: Option<&sweep_folder::settings::Point>) -> PointSource {
    let attempts = list.len() as u32;
    let index = list.iter().rposition(|a| a.state == "done").unwrap_or(list.len() - 1);
    let a = list.swap_remove(index);
    let p = a.point.as_ref().or(planned);
    // A search's record is a help to the table, never a reason to lose the point: unreadable,
    // it is left out.
    let search_record = a.dir.read_search().ok().flatten();
    let search = match &search_record {
        Some(record) => Some(record.point.clone()),
        None => p.and_then(|p| p.search).map(|id| id.to_string()),
    };
    PointSource {
        repeat: p.map_or(0, |p| p.repeat),
        search,
        search_record,
        source: Source::Sweep,
        summary: a.dir.export(exports::SUMMARY),
        records: a.dir.export(exports::RECORDS),
        phase_manifest: None,
        server_metrics: Some(a.dir.server_metrics_path()).filter(|p| p.is_file()),
        point: a.dir.name(),
        isl: p.map(|p| i64::from(p.isl)),
        osl: p.map(|p| i64::from(p.osl)),
        concurrency: p.map(|p| i64::from(p.concurrency)),
        effective_concurrency: p.and_then(|p| i64::try_from(p.effective_concurrency).ok()),
        request_rate: p.and_then(|p| p.request_rate),
        prefix_ratio: p.and_then(|p| p.prefix_ratio),
        state: a.state,
        reason: a.reason,
        attempts,
        config: a.config,
        accuracy: a.accuracy,
        dir: a.dir.path().to_owned(),
    }
}

/// A folder with aiperf exports outside any sweep folder of ours.
fn aiperf_point(root: &Path, dir: &Path, found: &mut Discovery) {
    let name = dir.file_name().unwrap_or_default().to_string_lossy().into_owned();
    let concurrency = name.strip_prefix("concurrency_").and_then(|c| c.parse::<i64>().ok());
    let parent = dir.parent().unwrap_or(dir);
    // Dynamo: <kind>-bm-<isl>-<osl>/<config>/aiperf_artifacts/concurrency_<C>/
    let deployment =
        [dir, parent].into_iter().map(|d| d.join("deployment_config.json")).find(|p| p.is_file());
    let source = if deployment.is_some() && concurrency.is_some() { Source::Dynamo } else { Source::Aiperf };
    let config_dir = if parent.file_name().is_some_and(|n| n == "aiperf_artifacts") {
        parent.parent().unwrap_or(parent)
    } else if concurrency.is_some() {
        parent
    } else {
        dir
    };
    let mut config = Config {
        job: config_dir
            .strip_prefix(root)
            .ok()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(config_dir)
            .display()
            .to_string(),
        ..Config::default()
    };
    let config_name = config_dir.file_name().unwrap_or_default().to_string_lossy().into_owned();
    let (mut isl, mut osl) = (None, None);
    if source == Source::Dynamo {
        if let Some(parsed) = parse_config_name(&config_name) {
            config.roles = parsed;
        }
        if let Some((kind, i, o)) = config_dir
            .parent()
            .and_then(|p| p.file_name())
            .and_then(|n| parse_bench_dir(&n.to_string_lossy()))
        {
            config.mode = Some(kind);
            isl = Some(i);
            osl = Some(o);
        }
    }
    if let Some(path) = &deployment {
        if let Some(d) = read_json(path, found, true) {
            config.mode = string(&d["kind"]).or(config.mode);
            config.model = string(&d["model"]);
            match int(&d["total_gpus"]) {
                // Dynamo's total_gpus is ctx_gpus + gen_gpus: the GPUs the servers use.
                Some(g) => {
                    config.gpus_working = Some(g);
                    config.gpus_allocated = Some(g);
                }
                None => found.warn(path, "no total_gpus: tokens/s per GPU left empty for its points"),
            }
        }
    } else if source == Source::Dynamo || concurrency.is_some() {
        found.warn(
            &parent.join("deployment_config.json"),
            "missing: GPU count unknown, tokens/s per GPU left empty (never assumed to be 1)",
        );
    }
    if config.mode.is_none() {
        config.mode = config
            .roles
            .iter()
            .any(|r| r.role == "gen")
            .then(|| "disagg".to_owned())
            .or_else(|| config.roles.iter().any(|r| r.role == "agg").then(|| "agg".to_owned()));
    }
    let file = |name: &str| Some(dir.join(name)).filter(|f| f.is_file());
    found.points.push(PointSource {
        repeat: 0,
        source,
        dir: dir.to_owned(),
        point: name,
        isl,
        osl,
        concurrency,
        effective_concurrency: concurrency,
        request_rate: None,
        prefix_ratio: None,
        search: None,
        search_record: None,
        // aiperf leaves no marker: reading the summary decides.
        state: "unknown".to_owned(),
        reason: None,
        attempts: 1,
        summary: file(SUMMARY),
        records: file(RECORDS),
        phase_manifest: file(exports::PHASES),
        server_metrics: None,
        accuracy: None,
        config,
    });
}

/// `<kind>-bm-<isl>-<osl>` → (kind, isl, osl).
pub fn parse_bench_dir(name: &str) -> Option<(String, i64, i64)> {
    let mut parts = name.rsplitn(4, '-');
    let osl = parts.next()?.parse().ok()?;
    let isl = parts.next()?.parse().ok()?;
    (parts.next()? == "bm").then_some(())?;
    Some((parts.next()?.to_owned(), isl, osl))
}

/// Dynamo's config folder names: `ctx{N}_gen{M}_{dep|tep}{TP}_batch{B}_eplb{S}_mtp{K}` for disagg
/// (N, M: server counts; the parallelism and the rest describe the GEN servers) and
/// `agg{N}_…` or `agg_tp{TP}` for aggregated serving. Unknown words make the name unparsed.
pub fn parse_config_name(name: &str) -> Option<Vec<RoleConfig>> {
    let mut ctx: Option<i64> = None;
    let mut decode = RoleConfig::default();
    for word in name.split('_') {
        let split = word.find(|c: char| c.is_ascii_digit()).unwrap_or(word.len());
        let (key, digits) = word.split_at(split);
        let number = if digits.is_empty() { None } else { Some(digits.parse::<i64>().ok()?) };
        match (key, number) {
            ("ctx", Some(n)) => ctx = Some(n),
            ("gen", Some(n)) => {
                decode.role = "gen".into();
                decode.servers = Some(n);
            }
            ("agg", n) => {
                decode.role = "agg".into();
                decode.servers = n.or(Some(1));
            }
            ("tep" | "dep", Some(n)) => {
                decode.parallel = Some(key.into());
                decode.tp = Some(n);
            }
            ("tp", Some(n)) => decode.tp = Some(n),
            ("batch", Some(n)) => decode.batch = Some(n),
            ("eplb", Some(n)) => decode.eplb = Some(n),
            ("mtp", Some(n)) => decode.mtp = Some(n),
            _ => return None,
        }
    }
    if decode.role.is_empty() {
        return None;
    }
    let mut roles = Vec::new();
    if let Some(n) = ctx {
        roles.push(RoleConfig { role: "ctx".into(), servers: Some(n), ..RoleConfig::default() });
    }
    roles.push(decode);
    Some(roles)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dynamo_names() {
        assert_eq!(parse_bench_dir("disagg-bm-8192-1024"), Some(("disagg".into(), 8192, 1024)));
        assert_eq!(parse_bench_dir("agg-bm-128-64"), Some(("agg".into(), 128, 64)));
        assert_eq!(parse_bench_dir("agg-128-64"), None);
        let roles = parse_config_name("ctx2_gen1_dep16_batch256_eplb288_mtp3").expect("a Dynamo config name");
        assert_eq!(roles[0], RoleConfig { role: "ctx".into(), servers: Some(2), ..Default::default() });
        assert_eq!(
            roles[1],
            RoleConfig {
                role: "gen".into(),
                servers: Some(1),
                tp: Some(16),
                pp: None,
                parallel: Some("dep".into()),
                batch: Some(256),
                mtp: Some(3),
                eplb: Some(288),
            }
        );
        let agg = parse_config_name("agg_tp1").expect("a Dynamo config name");
        assert_eq!(
            agg,
            vec![RoleConfig { role: "agg".into(), servers: Some(1), tp: Some(1), ..Default::default() }]
        );
        assert_eq!(parse_config_name("my_best_run"), None);
        assert_eq!(parse_config_name("ctx1"), None);
    }
}
