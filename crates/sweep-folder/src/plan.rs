//! `plan.json`: the plan, as `sweep plan --format json` prints it: the spec's resolved
//! settings, the totals, and every job with its roles, layout, server placements and points.
//! Written streaming (jobs one at a time), read back by `sweep aggregate` through
//! [`PlanFile`], which takes the parts it needs.
//!
//! A job's roles and points are written in the folder's own types ([`crate::settings`]), as
//! `job.json` writes them; the `engine`, `cluster` and `workload` sections echo the spec's
//! resolved settings for people and are not read back.

use std::collections::BTreeSet;
use std::io::Write;

use serde::{Deserialize, Serialize};
use sweep_plan::{Id, Job, Layout, Plan, ServerPlacement, Stats};
use sweep_spec::Spec;

use crate::settings::{Mode, Model, Point, RoleConfig};

#[derive(Debug, Serialize)]
pub struct Totals {
    pub jobs: u64,
    pub points: u64,
    /// Sum over jobs: what the sweep asks of the cluster, not what runs at once.
    pub node_allocations: u64,
    pub gpus_allocated: u64,
    pub gpus_working: u64,
    pub largest_job_nodes: u64,
}

impl Totals {
    pub fn of(plan: &Plan) -> Self {
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
    format: u32,
    written_by: String,
    sweep: &'a str,
    model: Model,
    engine: &'a sweep_spec::Engine,
    cluster: &'a sweep_spec::Cluster,
    workload: &'a sweep_spec::Workload,
    /// `accuracy`: what each job asks its servers after the performance points.
    #[serde(skip_serializing_if = "Option::is_none")]
    accuracy: Option<crate::settings::Accuracy>,
    stats: Stats,
    totals: Totals,
    /// The capacity estimate's inputs and the points over it (`sweep_plan::capacity`).
    #[serde(skip_serializing_if = "Option::is_none")]
    capacity: Option<&'a sweep_plan::capacity::Assessment>,
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
        for (index, job) in self.plan.jobs.iter().enumerate() {
            seq.serialize_element(&JobView::new(self.spec, self.plan, index, job))?;
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
    /// Per role: weights and KV cache per GPU and the tokens a holder caches.
    #[serde(skip_serializing_if = "Option::is_none")]
    capacity: Option<&'a [sweep_plan::capacity::RoleCapacity]>,
    points: Vec<Point>,
    /// The job's knob values by axis name; left out when the sweep has no knob axis.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    knobs: std::collections::BTreeMap<&'a str, &'a serde_json::Value>,
    /// `workload.deployment_repeats`: which deployment of its configuration this job is, and
    /// the first deployment's id; left out for a configuration deployed once.
    #[serde(skip_serializing_if = "Option::is_none")]
    deployment: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    configuration: Option<Id>,
}

#[derive(Serialize)]
struct RoleView<'a> {
    #[serde(flatten)]
    config: RoleConfig,
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
    fn new(spec: &'a Spec, plan: &'a Plan, index: usize, job: &'a Job) -> Self {
        let points = &plan.points[job.points.clone()];
        let concurrency: BTreeSet<u32> = points.iter().map(|p| p.concurrency).collect();
        let effective: BTreeSet<u64> = points.iter().map(|p| p.effective_concurrency).collect();
        JobView {
            id: job.id,
            name: &job.name,
            mode: job.mode.into(),
            roles: job
                .roles
                .iter()
                .map(|config| RoleView {
                    config: config.into(),
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
            capacity: plan.capacity.as_ref().and_then(|c| c.jobs.get(index)).map(Vec::as_slice),
            points: points.iter().map(Point::from).collect(),
            knobs: job.knobs.iter().map(|k| (k.knob.name.as_str(), &k.value)).collect(),
            deployment: (spec.workload.deployment_repeats > 1).then_some(job.deployment),
            configuration: (spec.workload.deployment_repeats > 1).then_some(job.configuration),
        }
    }
}

/// Writes the plan as JSON, with its format header, and a newline.
pub fn write_json(out: &mut impl Write, spec: &Spec, plan: &Plan) -> std::io::Result<()> {
    let view = PlanView {
        format: crate::FORMAT,
        written_by: crate::build::written_by(),
        sweep: &spec.name,
        model: (&spec.model).into(),
        engine: &spec.engine,
        cluster: &spec.cluster,
        workload: &spec.workload,
        accuracy: spec.accuracy.as_ref().map(Into::into),
        stats: plan.stats,
        totals: Totals::of(plan),
        capacity: plan.capacity.as_ref(),
        jobs: JobsView { spec, plan },
    };
    serde_json::to_writer(&mut *out, &view)?;
    out.write_all(b"\n")
}

/// What `sweep aggregate` reads of a `plan.json`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct PlanFile {
    pub sweep: String,
    pub model: PlanModel,
    pub engine: PlanEngine,
    pub jobs: Vec<PlanJob>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct PlanModel {
    pub path: String,
    pub served_name: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct PlanEngine {
    /// `vllm`, `sglang`, `trtllm`, `dynamo`, `mock` or `custom`.
    pub kind: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct PlanJob {
    pub id: String,
    pub name: String,
    pub mode: Mode,
    pub roles: Vec<RoleConfig>,
    pub layout: PlanLayout,
    pub points: Vec<Point>,
    #[serde(default)]
    pub knobs: std::collections::BTreeMap<String, serde_json::Value>,
    /// Which deployment of its configuration (`workload.deployment_repeats`); 0 when deployed
    /// once.
    #[serde(default)]
    pub deployment: u32,
    /// The configuration's first deployment's id, when it is deployed several times.
    #[serde(default)]
    pub configuration: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct PlanLayout {
    pub nodes: u32,
    pub gpus_allocated: u32,
    pub gpus_working: u32,
}
