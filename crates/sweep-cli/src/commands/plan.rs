//! `sweep plan FILE`: the jobs and points of a sweep, as a table or as JSON.

use std::collections::BTreeSet;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::time::Instant;

use sweep_plan::capacity::Assessment;
use sweep_plan::{Plan, PlanOptions, Point, Stats};
use sweep_spec::{Document, Spec};

use crate::diagnostic::Diagnostic;
use crate::error::Error;
use crate::Format;

/// Resolved settings of one `sweep plan` call.
#[derive(Debug)]
pub struct Settings {
    pub file: PathBuf,
    pub format: Format,
    pub limits: Limits,
}

/// What planning drops or refuses, shared by every command that plans.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_points: u64,
    /// Drop the points the capacity estimate finds over their servers' KV cache.
    pub prune_infeasible: bool,
}

pub fn run(settings: &Settings) -> Result<(), Error> {
    let (_, document, plan) = load_and_plan(&settings.file, settings.limits)?;
    let stdout = std::io::stdout().lock();
    let mut out = BufWriter::with_capacity(1 << 16, stdout);
    match settings.format {
        Format::Table => write_table(&mut out, &document.spec, &plan),
        Format::Json => sweep_folder::plan::write_json(&mut out, &document.spec, &plan),
    }
    .and_then(|()| out.flush())
    .map_err(Error::Output)
}

/// Reads, validates and plans a spec; warnings go to stderr. Returns the spec's text too (a
/// sweep folder keeps it as given).
pub fn load_and_plan(file: &PathBuf, limits: Limits) -> Result<(String, Document, Plan), Error> {
    let text = std::fs::read_to_string(file).map_err(|source| Error::Read { path: file.clone(), source })?;
    let display = file.display().to_string();
    let started = Instant::now();
    let document = match sweep_spec::load(&text)
        .and_then(|d| sweep_spec::check_inputs(&d, |path| std::fs::read(path)).map(|()| d))
    {
        Ok(document) => document,
        Err(error) => return Err(Error::Spec { file: display, text, error: Box::new(error) }),
    };
    let planned = sweep_plan::plan(&document.spec, &PlanOptions { max_points: limits.max_points })
        .map_err(PlanningError::Plan)
        .and_then(|plan| estimate_capacity(&document, plan, limits.prune_infeasible));
    let plan = match planned {
        Ok(plan) => plan,
        Err(PlanningError::Plan(error)) => {
            let Document { source_map, .. } = document;
            return Err(Error::Plan {
                file: display,
                text,
                source_map: Box::new(source_map),
                error: Box::new(error),
            });
        }
        Err(PlanningError::Spec(error)) => {
            return Err(Error::Spec { file: display, text, error: Box::new(error) })
        }
        Err(PlanningError::Usage(message)) => return Err(Error::Usage(message)),
    };
    tracing::info!(
        jobs = plan.jobs.len(),
        points = plan.points.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "planned"
    );
    let mut stderr = std::io::stderr().lock();
    for warning in &plan.warnings {
        let diagnostic = Diagnostic {
            severity: "warning",
            message: warning.message.clone(),
            file: &display,
            source: Some(&text),
            location: document.source_map.nearest(&warning.path, false),
            notes: Vec::new(),
            help: None,
        };
        let _ = stderr.write_all(diagnostic.render().as_bytes());
    }
    Ok((text, document, plan))
}

enum PlanningError {
    Plan(sweep_plan::PlanError),
    Spec(sweep_spec::SpecError),
    Usage(String),
}

/// The capacity check, when the spec gives `cluster.gpu_memory_gb` and the model's `config.json`
/// can be read here; a config the estimate cannot use is a warning and planning goes on.
fn estimate_capacity(document: &Document, mut plan: Plan, prune: bool) -> Result<Plan, PlanningError> {
    let spec = &document.spec;
    let config =
        sweep_spec::read_model_config(document, |path| std::fs::read(path)).map_err(PlanningError::Spec)?;
    let Some(gpu_memory_gb) = spec.cluster.gpu_memory_gb else {
        if prune {
            return Err(PlanningError::Usage(
                "--prune-infeasible needs the capacity estimate: set `cluster.gpu_memory_gb` (one GPU's memory in GiB) in the spec".into(),
            ));
        }
        return Ok(plan);
    };
    let skipped = |why: String| {
        if prune {
            Err(PlanningError::Usage(format!("--prune-infeasible needs the capacity estimate, and {why}")))
        } else {
            Ok(sweep_plan::Warning {
                path: sweep_spec::KeyPath::keys("model.config"),
                message: format!("capacity not estimated: {why}"),
            })
        }
    };
    let warning = match config {
        None => skipped(format!(
            "`{}/config.json` cannot be read here; set `model.config` to the model's config.json",
            spec.model.path.trim_end_matches('/')
        ))?,
        Some((path, text)) => match sweep_plan::capacity::ModelShape::from_config(&text) {
            Ok(shape) => {
                let settings = sweep_plan::capacity::Settings::new(spec, &shape, gpu_memory_gb);
                return sweep_plan::capacity::assess(spec, plan, &shape, &settings, prune)
                    .map_err(PlanningError::Plan);
            }
            Err(error) => skipped(format!("`{path}`: {error}"))?,
        },
    };
    plan.warnings.push(warning);
    Ok(plan)
}

fn join<T: ToString>(items: impl IntoIterator<Item = T>) -> String {
    items.into_iter().map(|i| i.to_string()).collect::<Vec<_>>().join(",")
}

/// The concurrency column: what runs, and what was listed when the two differ; then the rates
/// and prefix ratios it runs at.
fn concurrency_cell(points: &[Point]) -> String {
    let listed: BTreeSet<u32> = points.iter().map(|p| p.concurrency).collect();
    let effective: BTreeSet<u64> = points.iter().map(|p| p.effective_concurrency).collect();
    let differs = points.iter().any(|p| u64::from(p.concurrency) != p.effective_concurrency);
    let mut cell =
        if differs { format!("{} (listed {})", join(&effective), join(&listed)) } else { join(&effective) };
    // Open-loop points: the concurrency caps what is in flight at each rate.
    let mut rates: Vec<f64> = points.iter().filter_map(|p| p.request_rate).map(|r| r.0).collect();
    rates.sort_by(f64::total_cmp);
    rates.dedup();
    if !rates.is_empty() {
        cell.push_str(&format!(" at {} req/s", join(&rates)));
    }
    let mut prefixes: Vec<f64> = points.iter().filter_map(|p| p.prefix_ratio).map(|r| r.0).collect();
    prefixes.sort_by(f64::total_cmp);
    prefixes.dedup();
    if !prefixes.is_empty() {
        cell.push_str(&format!(", prefix ratio {}", join(&prefixes)));
    }
    cell
}

fn write_table(out: &mut impl Write, spec: &Spec, plan: &Plan) -> std::io::Result<()> {
    let headers = ["JOB", "MODE", "POINTS", "NODES", "TASKS", "GPUS", "USED", "ISL/OSL", "CONCURRENCY"];
    let rows: Vec<[String; 9]> = plan
        .jobs
        .iter()
        .map(|job| {
            let points = &plan.points[job.points.clone()];
            let lengths: BTreeSet<(u32, u32)> = points.iter().map(|p| (p.isl, p.osl)).collect();
            [
                job.name.clone(),
                job.mode.as_str().to_owned(),
                points.len().to_string(),
                job.layout.nodes.to_string(),
                job.layout.ntasks.to_string(),
                job.layout.gpus_allocated.to_string(),
                job.layout.gpus_working.to_string(),
                join(lengths.iter().map(|(i, o)| format!("{i}/{o}"))),
                match &spec.workload.load.search {
                    // The planned point only starts the search; its steps choose the loads.
                    Some(s) => format!("search {} {}–{}", s.axis.as_str(), s.from, s.to),
                    None => concurrency_cell(points),
                },
            ]
        })
        .collect();
    let mut widths = headers.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    // Text columns align left, numbers right.
    let numeric = [false, false, true, true, true, true, true, false, false];
    let line = |cells: &[String]| {
        let mut text = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i > 0 {
                text.push_str("  ");
            }
            if i + 1 == cells.len() {
                text.push_str(cell);
            } else if numeric[i] {
                text.push_str(&format!("{cell:>w$}", w = widths[i]));
            } else {
                text.push_str(&format!("{cell:<w$}", w = widths[i]));
            }
        }
        text.push('\n');
        text
    };
    out.write_all(line(&headers.map(String::from)).as_bytes())?;
    for row in &rows {
        out.write_all(line(row).as_bytes())?;
    }
    let totals = sweep_folder::plan::Totals::of(plan);
    writeln!(
        out,
        "\n{}: {} job{}, {} point{}; {} node{} and {} GPUs allocated over all jobs ({} working); largest job {} node{}",
        spec.name,
        totals.jobs,
        plural(totals.jobs),
        totals.points,
        plural(totals.points),
        totals.node_allocations,
        plural(totals.node_allocations),
        totals.gpus_allocated,
        totals.gpus_working,
        totals.largest_job_nodes,
        plural(totals.largest_job_nodes),
    )?;
    let Stats { space, excluded, filtered, duplicates, infeasible } = plan.stats;
    if excluded + filtered + duplicates + infeasible > 0 {
        write!(
            out,
            "space {space} points: {excluded} excluded, {filtered} dropped by `where`, {duplicates} duplicate{}",
            plural(duplicates)
        )?;
        if infeasible > 0 {
            write!(out, ", {infeasible} over the KV cache (--prune-infeasible)")?;
        }
        writeln!(out)?;
    }
    if let Some(capacity) = &plan.capacity {
        write_capacity(out, plan, capacity)?;
    }
    Ok(())
}

/// Per job and role: weights and KV cache per GPU, and the tokens a server (or DEP rank) holds.
fn write_capacity(out: &mut impl Write, plan: &Plan, capacity: &Assessment) -> std::io::Result<()> {
    let s = &capacity.settings;
    writeln!(
        out,
        "\ncapacity: {:.1}B parameters in {}, {} GiB × {} per GPU",
        capacity.params as f64 / 1e9,
        s.weight_dtype.as_str(),
        s.gpu_memory_gb,
        s.gpu_memory_utilization
    )?;
    let width = plan.jobs.iter().map(|j| j.name.len()).max().unwrap_or(3).max(3);
    writeln!(out, "{:<width$}  ROLE  WEIGHTS/GPU  KV BYTES/TOKEN/GPU  TOKENS HELD       OVER", "JOB")?;
    for (job, roles) in plan.jobs.iter().zip(&capacity.jobs) {
        for role in roles {
            let over = capacity.over.iter().filter(|o| o.job == job.name && o.role == role.role).count();
            writeln!(
                out,
                "{:<width$}  {:<4}  {:>7.2} GiB  {:>8} {:<4}  {:>9} per {:<6}  {}",
                job.name,
                role.role.as_str().to_uppercase(),
                role.weights_gib_per_gpu,
                role.kv_bytes_per_token_per_gpu.round(),
                role.kv_dtype.as_str(),
                role.capacity_tokens,
                role.holder,
                if capacity.pruned { "-".to_owned() } else { over.to_string() },
            )?;
        }
    }
    Ok(())
}

fn plural(n: u64) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}
