//! `sweep plan FILE`: the jobs and points of a sweep, as a table or as JSON.

use std::collections::BTreeSet;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use sweep_plan::capacity::Assessment;
use sweep_plan::{Plan, Point, Stats};
use sweep_spec::Spec;
use sweep_submit::pipeline::{Limits, Planned};

use crate::error::Error;
use crate::prepare::planned;
use crate::Format;

/// Resolved settings of one `sweep plan` call.
#[derive(Debug)]
pub struct Settings {
    pub file: PathBuf,
    pub format: Format,
    pub limits: Limits,
}

pub fn run(settings: &Settings) -> Result<(), Error> {
    let Planned { document, plan, .. } = planned(&settings.file, settings.limits)?;
    let stdout = std::io::stdout().lock();
    let mut out = BufWriter::with_capacity(1 << 16, stdout);
    match settings.format {
        Format::Table => write_table(&mut out, &document.spec, &plan),
        Format::Json => sweep_folder::plan::write_json(&mut out, &document.spec, &plan),
    }
    .and_then(|()| out.flush())
    .map_err(Error::Output)
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
