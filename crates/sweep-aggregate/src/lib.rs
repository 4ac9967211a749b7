//! Merges the results of sweeps into one table, Pareto frontiers, plots and a report.
//!
//! The pipeline, one module per step:
//! - [`discover`] walks folders for points: this project's sweep folders (manifest, plan and
//!   per-point markers, no name parsing), Dynamo-style aiperf trees
//!   (`deployment_config.json` + `concurrency_<C>/`) and bare aiperf run folders;
//! - [`summary`] reads a point's `profile_export_aiperf.json`; [`records`] recomputes the same
//!   figures from `profile_export.jsonl` (a typed line reader per file, each file reduced to its
//!   figures as it is read) when a summary is missing or `--from-records` asks for it;
//! - [`table`] derives per-GPU and per-user throughputs and writes `results.parquet`/`.csv`;
//! - [`pareto`] (pure) finds frontiers, best configurations at thresholds and the
//!   disagg-to-agg ratio; [`profile`] (pure) fits TTFT against ISL, prices configurations at
//!   SLOs and balances CTX against GEN; [`plot`] draws PNG and SVG charts; [`report`] writes HTML and Markdown.
//!
//! Nothing here drops a point: failed, cancelled, timed-out, unreadable and never-run points are
//! rows with their state and reason, and every file that could not be read is a [`Warning`].

pub mod compare;
pub mod discover;
pub mod exploration;
pub mod metrics;
mod page;
pub mod pareto;
pub mod plot;
pub mod profile;
pub mod records;
pub mod repeats;
pub mod report;
pub mod server;
pub mod summary;
pub mod table;
pub mod trend;

use std::path::{Path, PathBuf};

pub use discover::{Discovery, SweepInfo};
pub use table::Row;

/// Something that could not be read; the point it belongs to is kept and marked.
#[derive(Debug, Clone, PartialEq)]
pub struct Warning {
    pub path: PathBuf,
    pub message: String,
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.message)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{}: {source}", path.display())]
    Write { path: PathBuf, source: std::io::Error },
    #[error("{}: no sweep folder, aiperf export or profile_export.jsonl under it", path.display())]
    NothingFound { path: PathBuf },
    #[error("none of the {points} points found could be read:{}", list(warnings))]
    NothingReadable { points: usize, warnings: Vec<Warning> },
    #[error("polars: {0}")]
    Polars(#[from] polars::prelude::PolarsError),
    #[error("plot {}: {message}", path.display())]
    Plot { path: PathBuf, message: String },
    #[error(transparent)]
    Folder(#[from] sweep_folder::FolderError),
    /// Points of one engine ran on different versions of it.
    #[error("the points ran on different versions of {engine}: {}", versions.join(", "))]
    MixedVersions { engine: String, versions: Vec<String> },
}

fn list(warnings: &[Warning]) -> String {
    warnings.iter().map(|w| format!("\n  warning: {w}")).collect()
}

/// Which GPU count divides output throughput for the frontier's y axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GpuBasis {
    /// GPUs the servers use (the honest figure; srt-slurm once divided by allocated ones).
    #[default]
    Working,
    /// GPUs the job holds, idle ones included.
    Allocated,
}

impl GpuBasis {
    /// The results-table column of tokens/s per GPU on this basis.
    pub fn column(self) -> &'static str {
        match self {
            GpuBasis::Working => "tps_per_gpu_working",
            GpuBasis::Allocated => "tps_per_gpu_allocated",
        }
    }
}

/// The share of a point's requests that may fail before the point is left out of the
/// frontiers, unless `--max-error-rate` says otherwise.
pub const DEFAULT_MAX_ERROR_RATE: f64 = 0.01;

/// Settings of one aggregation, resolved before anything is read.
#[derive(Debug, Clone)]
pub struct Options {
    /// Recompute every point's figures from its per-request records, ignoring summaries.
    pub from_records: bool,
    /// Best configuration at each of these tokens/s/user floors.
    pub min_tps_user: Vec<f64>,
    pub gpu_basis: GpuBasis,
    /// Merge points of several versions of an engine, with a frontier per version; without
    /// it, that is an error ([`Error::MixedVersions`]).
    pub allow_mixed_versions: bool,
    /// SLOs, GPU-hour cost and target throughput for the report's cost and balance analyses.
    pub profile: profile::Settings,
    /// A point whose failed requests are a larger share than this is not valid
    /// ([`table::validate`]).
    pub max_error_rate: f64,
    /// A point whose repetitions' throughput varies by more than this coefficient of
    /// variation is `unstable`.
    pub max_cv: f64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            from_records: false,
            min_tps_user: Vec::new(),
            gpu_basis: GpuBasis::default(),
            allow_mixed_versions: false,
            profile: profile::Settings::default(),
            max_error_rate: DEFAULT_MAX_ERROR_RATE,
            max_cv: repeats::DEFAULT_MAX_CV,
        }
    }
}

/// Each engine's recorded versions among `rows`, for the engines that ran in more than one
/// within one installation: a sweep whose image or venv is an axis compares versions on purpose,
/// and its frontiers are drawn per installation.
fn mixed_versions(rows: &[Row]) -> Vec<(String, Vec<String>)> {
    let mut by_engine: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> =
        std::collections::BTreeMap::new();
    for row in rows {
        if let Some(version) = &row.config.engine_version {
            let mut engine = row.config.engine.clone().unwrap_or_else(|| "the engine".to_owned());
            if let Some(installation) = row.config.installation() {
                engine = format!("{engine} ({installation})");
            }
            by_engine.entry(engine).or_default().insert(version.clone());
        }
    }
    by_engine
        .into_iter()
        .filter(|(_, versions)| versions.len() > 1)
        .map(|(engine, versions)| (engine, versions.into_iter().collect()))
        .collect()
}

/// Everything `sweep aggregate` and `sweep report` produce, in memory.
#[derive(Debug)]
pub struct Aggregate {
    pub rows: Vec<Row>,
    pub sweeps: Vec<SweepInfo>,
    pub warnings: Vec<Warning>,
    pub analysis: pareto::Analysis,
    pub profile: profile::Profile,
    /// Earlier sweeps of the same configurations, from a history, for the report's trend
    /// charts; set by the caller (`sweep report --history`).
    pub trend: Option<trend::Trend>,
    /// What `sweep explore` chose and skipped, when a folder is an exploration; set by the
    /// caller, which reads `explore.json`.
    pub exploration: Option<exploration::Exploration>,
}

/// Discovers, reads and analyses every point under `inputs`.
pub fn aggregate(inputs: &[PathBuf], options: &Options) -> Result<Aggregate, Error> {
    let mut discovery = Discovery::default();
    for input in inputs {
        let found = discover::discover(input)?;
        if found.points.is_empty() {
            return Err(Error::NothingFound { path: input.clone() });
        }
        discovery.merge(found);
    }
    let Discovery { points, sweeps, mut warnings } = discovery;
    let mut rows = table::read_points(points, options.from_records, &mut warnings);
    if !rows.is_empty() && rows.iter().all(|r| r.state == "unreadable") {
        return Err(Error::NothingReadable { points: rows.len(), warnings });
    }
    if let Some((engine, versions)) = mixed_versions(&rows).into_iter().next() {
        if !options.allow_mixed_versions {
            return Err(Error::MixedVersions { engine, versions });
        }
        for row in &mut rows {
            row.config.version_group = row.config.engine_version.clone();
        }
    }
    // Installations compared on purpose get a frontier each, as merged versions do.
    if rows.iter().any(|r| r.config.installation().is_some()) {
        for row in &mut rows {
            let (installation, version) = (row.config.installation(), row.config.engine_version.clone());
            row.config.version_group = match (installation, version) {
                (Some(i), Some(v)) => Some(format!("{i}, {v}")),
                (i, v) => i.or(v),
            };
        }
    }
    table::derive(&mut rows);
    table::validate(&mut rows, options.max_error_rate);
    table::summarise_repeats(&mut rows, options.max_cv);
    let analysis = pareto::analyse(&rows, options);
    for i in analysis.frontier_rows().collect::<Vec<_>>() {
        rows[i].on_frontier = true;
    }
    let profile = profile::analyse(&rows, &options.profile, options.gpu_basis);
    Ok(Aggregate { rows, sweeps, warnings, analysis, profile, trend: None, exploration: None })
}

/// What to write besides the tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outputs {
    /// Tables, `pareto.csv` and plots (`sweep aggregate`).
    Tables,
    /// All of that plus `report.html` and `report.md` (`sweep report`).
    Report,
}

/// Writes the aggregate's files into `out` (created if missing); returns their paths. Every file
/// is replaced whole, never half-written; nothing else in `out` is touched.
pub fn write(agg: &Aggregate, out: &Path, outputs: Outputs) -> Result<Vec<PathBuf>, Error> {
    // Without a font no chart can be drawn: say so before writing anything.
    plot::font().map_err(|message| Error::Plot { path: out.join("plots"), message })?;
    let plots = out.join("plots");
    std::fs::create_dir_all(&plots).map_err(|source| Error::Write { path: plots.clone(), source })?;
    let mut written = Vec::new();
    let mut frame = table::frame(&agg.rows)?;
    put(out, "results.parquet", &table::to_parquet(&mut frame)?, &mut written)?;
    put(out, "results.csv", &table::to_csv(&mut frame)?, &mut written)?;
    // What `sweep compare` and the history read back: each valid point's key and figures.
    let results = serde_json::to_vec_pretty(&compare::Results::of(agg)).expect("plain values serialize");
    put(out, "results.json", &results, &mut written)?;
    let (groups, rows): (Vec<String>, Vec<Row>) = agg
        .analysis
        .frontiers
        .iter()
        .flat_map(|f| f.rows.iter().map(move |&i| (f.group.to_string(), agg.rows[i].clone())))
        .unzip();
    let mut pareto = table::frame(&rows)?;
    pareto.insert_column(0, polars::prelude::Column::new("group".into(), groups))?;
    put(out, "pareto.csv", &table::to_csv(&mut pareto)?, &mut written)?;
    if let Some(mut turns) = table::turn_frame(&agg.rows)? {
        put(out, "ttft_by_turn.csv", &table::to_csv(&mut turns)?, &mut written)?;
    }
    let mut inlined = Vec::new();
    let trend = agg.trend.as_ref().map(|t| t.charts(agg.analysis.basis));
    let growth = agg.exploration.as_ref().filter(|e| e.growth.len() > 1).map(|e| e.chart());
    let charts = plot::charts(&agg.rows, &agg.analysis).into_iter().chain(plot::profile_charts(agg));
    let spec = plot::spec_chart(&agg.rows);
    let energy = plot::energy_chart(&agg.rows);
    for chart in charts.chain(trend.into_iter().flatten()).chain(growth).chain(spec).chain(energy) {
        let (png, svg, text) = plot::write(&chart, &plots)?;
        written.extend([png, svg]);
        inlined.push((chart, text));
    }
    // A panel per point with scrapes, and per point with GPU telemetry: in folders of their
    // own, as there may be hundreds.
    for (folder, panels) in
        [("servers", plot::server_charts(&agg.rows)), ("gpus", plot::gpu_charts(&agg.rows))]
    {
        if panels.is_empty() {
            continue;
        }
        let dir = plots.join(folder);
        std::fs::create_dir_all(&dir).map_err(|source| Error::Write { path: dir.clone(), source })?;
        for chart in panels {
            let (png, svg, text) = plot::write(&chart, &dir)?;
            written.extend([png, svg]);
            inlined.push((chart, text));
        }
    }
    if outputs == Outputs::Report {
        put(out, "report.html", report::html(agg, &inlined).as_bytes(), &mut written)?;
        put(out, "report.md", report::markdown(agg).as_bytes(), &mut written)?;
    }
    Ok(written)
}

fn put(out: &Path, name: &str, bytes: &[u8], written: &mut Vec<PathBuf>) -> Result<(), Error> {
    let path = out.join(name);
    write_atomic(&path, bytes)?;
    written.push(path);
    Ok(())
}

/// Writes `bytes` to `path` through a temporary file and a rename (the sweep folder's own
/// atomic write), so a reader never sees half a file and an interrupted run leaves the previous
/// version intact.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    Ok(sweep_folder::file::write_atomically(path, bytes)?)
}
