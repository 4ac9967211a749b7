//! `sweep plan FILE`: the jobs and points of a sweep, as a table or as JSON.

use std::collections::BTreeSet;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::time::Instant;

use serde::Serialize;
use sweep_plan::{Id, Job, Layout, Plan, PlanOptions, Point, RoleConfig, ServerPlacement, Stats};
use sweep_spec::{Document, Mode, Spec};

use crate::diagnostic::Diagnostic;
use crate::error::Error;
use crate::Format;

/// Resolved settings of one `sweep plan` call.
#[derive(Debug)]
pub struct Settings {
    pub file: PathBuf,
    pub format: Format,
    pub max_points: u64,
}

pub fn run(settings: &Settings) -> Result<(), Error> {
    let (document, plan) = load_and_plan(&settings.file, settings.max_points)?;
    let stdout = std::io::stdout().lock();
    let mut out = BufWriter::with_capacity(1 << 16, stdout);
    match settings.format {
        Format::Table => write_table(&mut out, &document.spec, &plan),
        Format::Json => write_json(&mut out, &document.spec, &plan),
    }
    .and_then(|()| out.flush())
    .map_err(Error::Output)
}

/// Reads, validates and plans a spec; warnings go to stderr.
pub fn load_and_plan(file: &PathBuf, max_points: u64) -> Result<(Document, Plan), Error> {
    let text = std::fs::read_to_string(file).map_err(|source| Error::Read { path: file.clone(), source })?;
    let display = file.display().to_string();
    let started = Instant::now();
    let document = match sweep_spec::load(&text) {
        Ok(document) => document,
        Err(error) => return Err(Error::Spec { file: display, text, error: Box::new(error) }),
    };
    let plan = match sweep_plan::plan(&document.spec, &PlanOptions { max_points }) {
        Ok(plan) => plan,
        Err(error) => {
            let Document { source_map, .. } = document;
            return Err(Error::Plan {
                file: display,
                text,
                source_map: Box::new(source_map),
                error: Box::new(error),
            });
        }
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
    Ok((document, plan))
}

fn join<T: ToString>(items: impl IntoIterator<Item = T>) -> String {
    items.into_iter().map(|i| i.to_string()).collect::<Vec<_>>().join(",")
}

/// The concurrency column: what runs, and what was listed when the two differ.
fn concurrency_cell(points: &[Point]) -> String {
    let listed: BTreeSet<u32> = points.iter().map(|p| p.concurrency).collect();
    let effective: BTreeSet<u64> = points.iter().map(|p| p.effective_concurrency).collect();
    let differs = points.iter().any(|p| u64::from(p.concurrency) != p.effective_concurrency);
    if differs {
        format!("{} (listed {})", join(&effective), join(&listed))
    } else {
        join(&effective)
    }
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
                concurrency_cell(points),
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
    let totals = Totals::of(plan);
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
    let Stats { space, excluded, filtered, duplicates } = plan.stats;
    if excluded + filtered + duplicates > 0 {
        writeln!(
            out,
            "space {space} points: {excluded} excluded, {filtered} dropped by `where`, {duplicates} duplicate{}",
            plural(duplicates)
        )?;
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

#[derive(Debug, Serialize)]
struct Totals {
    jobs: u64,
    points: u64,
    /// Sum over jobs: what the sweep asks of the cluster, not what runs at once.
    node_allocations: u64,
    gpus_allocated: u64,
    gpus_working: u64,
    largest_job_nodes: u64,
}

impl Totals {
    fn of(plan: &Plan) -> Self {
        let sum = |f: fn(&Layout) -> u32| plan.jobs.iter().map(|j| u64::from(f(&j.layout))).sum();
        Totals {
            jobs: plan.jobs.len() as u64,
            points: plan.points.len() as u64,
            node_allocations: sum(|l| l.nodes),
            gpus_allocated: sum(|l| l.gpus_allocated),
            gpus_working: sum(|l| l.gpus_working),
            largest_job_nodes: plan.jobs.iter().map(|j| u64::from(j.layout.nodes)).max().unwrap_or(0),
        }
    }
}

#[derive(Serialize)]
struct PlanView<'a> {
    plan_version: u32,
    sweep: &'a str,
    model: &'a sweep_spec::Model,
    engine: &'a sweep_spec::Engine,
    cluster: &'a sweep_spec::Cluster,
    workload: &'a sweep_spec::Workload,
    stats: Stats,
    totals: Totals,
    jobs: JobsView<'a>,
}

struct JobsView<'a> {
    spec: &'a Spec,
    plan: &'a Plan,
}

impl Serialize for JobsView<'_> {
    /// Jobs are serialised one at a time, with their server placements computed on the fly, so a
    /// large plan is never held twice in memory.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = s.serialize_seq(Some(self.plan.jobs.len()))?;
        for job in &self.plan.jobs {
            seq.serialize_element(&JobView::new(self.spec, self.plan, job))?;
        }
        seq.end()
    }
}

#[derive(Serialize)]
struct JobView<'a> {
    id: Id,
    name: &'a str,
    mode: Mode,
    roles: Vec<RoleView<'a>>,
    layout: LayoutView<'a>,
    concurrency: Vec<u32>,
    effective_concurrency: Vec<u64>,
    points: &'a [Point],
}

#[derive(Serialize)]
struct RoleView<'a> {
    #[serde(flatten)]
    config: &'a RoleConfig,
    world_size: u64,
    engine_args: Option<&'a std::collections::BTreeMap<String, serde_json::Value>>,
}

#[derive(Serialize)]
struct LayoutView<'a> {
    #[serde(flatten)]
    layout: &'a Layout,
    servers: Vec<ServerPlacement>,
}

impl<'a> JobView<'a> {
    fn new(spec: &'a Spec, plan: &'a Plan, job: &'a Job) -> Self {
        let points = &plan.points[job.points.clone()];
        let concurrency: BTreeSet<u32> = points.iter().map(|p| p.concurrency).collect();
        let effective: BTreeSet<u64> = points.iter().map(|p| p.effective_concurrency).collect();
        JobView {
            id: job.id,
            name: &job.name,
            mode: job.mode,
            roles: job
                .roles
                .iter()
                .map(|config| RoleView {
                    config,
                    world_size: config.world_size(),
                    engine_args: spec
                        .roles
                        .iter()
                        .find(|r| r.role == config.role)
                        .map(|r| &r.engine_args)
                        .filter(|args| !args.is_empty()),
                })
                .collect(),
            layout: LayoutView { layout: &job.layout, servers: job.layout.servers() },
            concurrency: concurrency.into_iter().collect(),
            effective_concurrency: effective.into_iter().collect(),
            points,
        }
    }
}

pub fn write_json(out: &mut impl Write, spec: &Spec, plan: &Plan) -> std::io::Result<()> {
    let view = PlanView {
        plan_version: 1,
        sweep: &spec.name,
        model: &spec.model,
        engine: &spec.engine,
        cluster: &spec.cluster,
        workload: &spec.workload,
        stats: plan.stats,
        totals: Totals::of(plan),
        jobs: JobsView { spec, plan },
    };
    serde_json::to_writer(&mut *out, &view)?;
    out.write_all(b"\n")
}
