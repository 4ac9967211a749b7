//! Expands a validated [`Spec`] into jobs and points with exact layouts. Pure computation: no
//! I/O, no async runtime, deterministic output.
//!
//! A **point** is one measurement (a configuration at one ISL/OSL and concurrency). Points that
//! differ only in workload share one deployment and therefore one **job**, because starting the
//! servers dominates a job's cost.

pub mod capacity;
mod id;
mod layout;

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::ops::Range;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sweep_spec::expr::EvalError;
use sweep_spec::{AxisKey, AxisValue, KeyPath, Knob, Mode, Parallel, Role, Spec, Subspace, Value, MODE_SLOT};

pub use id::{job_id, point_id, Id};
pub use layout::{Endpoint, Layout, LayoutError, LayoutSettings, RoleConfig, RoleLayout, ServerPlacement};

/// Limits on planning.
#[derive(Debug, Clone, Copy)]
pub struct PlanOptions {
    /// The largest space (before excludes and `where`) to expand.
    pub max_points: u64,
}

impl Default for PlanOptions {
    fn default() -> Self {
        Self { max_points: 100_000 }
    }
}

/// Every job and point of a sweep.
#[derive(Debug)]
pub struct Plan {
    pub jobs: Vec<Job>,
    /// Grouped by job: `jobs[j].points` indexes this list.
    pub points: Vec<Point>,
    pub stats: Stats,
    /// Things that are legal but probably not meant, each with the key it is about.
    pub warnings: Vec<Warning>,
    /// The capacity estimate, when [`capacity::assess`] was asked for one.
    pub capacity: Option<capacity::Assessment>,
}

#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Stats {
    /// Points in the space before excludes and `where`.
    pub space: u128,
    pub excluded: u64,
    pub filtered: u64,
    /// Points identical to an earlier one (possible when derived values coincide), kept once.
    pub duplicates: u64,
    /// Points dropped by the capacity check (`--prune-infeasible`).
    #[serde(skip_serializing_if = "is_zero")]
    pub infeasible: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Debug, Clone)]
pub struct Warning {
    pub path: KeyPath,
    pub message: String,
}

/// One deployment: the servers of every role, laid out, and the points measured on it.
#[derive(Debug, Clone)]
pub struct Job {
    pub id: Id,
    /// The directory name users' scripts parse, e.g. `ctx1_gen4_tep4_batch8_eplb0_mtp3`.
    pub name: String,
    pub mode: Mode,
    /// In spec order: `agg`, or `ctx` then `gen`.
    pub roles: Vec<RoleConfig>,
    pub layout: Layout,
    pub points: Range<usize>,
    /// The value of every knob that is an axis (`docs/spec.md`, "Knobs"), in axis order.
    pub knobs: Vec<KnobValue>,
    /// Which deployment of its configuration this is (`workload.deployment_repeats`), from 0.
    pub deployment: u32,
    /// The id of the configuration's first deployment: what its deployments share (equal to
    /// `id` for the first).
    pub configuration: Id,
}

/// A knob's value in one job.
#[derive(Debug, Clone, PartialEq)]
pub struct KnobValue {
    pub knob: Arc<Knob>,
    pub value: serde_json::Value,
}

impl KnobValue {
    /// `max_num_seqs-64`: the knob's short name and its value, in characters a folder name
    /// and a SLURM job name take as they are.
    pub fn label(&self) -> String {
        let text = match &self.value {
            serde_json::Value::String(text) => text.clone(),
            other => other.to_string(),
        };
        // An image or a venv is told by its last part (`vllm-openai:v0.9`, `dynamo-1.6.1`).
        let text = match self.knob.target {
            sweep_spec::KnobTarget::Image | sweep_spec::KnobTarget::Venv => {
                text.trim_end_matches('/').rsplit('/').next().unwrap_or_default().to_owned()
            }
            _ => text,
        };
        let clean: String = text
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '-') { c } else { '_' })
            .take(32)
            .collect();
        format!("{}-{}", self.knob.short, clean.trim_matches('_'))
    }
}

impl Job {
    pub fn role(&self, role: Role) -> Option<&RoleConfig> {
        self.roles.iter().find(|r| r.role == role)
    }
}

/// One measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Point {
    pub id: Id,
    #[serde(skip)]
    pub job: u32,
    pub isl: u32,
    pub osl: u32,
    /// As listed in the spec.
    pub concurrency: u32,
    /// What the load generator runs: the listed value, times the GEN (or AGG) servers when
    /// `workload.concurrency_per_gen_server` is set.
    pub effective_concurrency: u64,
    /// The open loop's rate (`workload.request_rate`); `None` for a closed loop or a trace. The
    /// concurrency then caps the requests in flight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_rate: Option<sweep_spec::Rate>,
    /// The share of each synthetic prompt that is a shared prefix (`workload.prefix_ratio`);
    /// `None` when the spec has no such axis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix_ratio: Option<sweep_spec::Ratio>,
    pub requests: u64,
    pub warmup: u64,
    /// A step of a search (`workload.search`): the id of the planned point that searches. Steps
    /// are made by the runner as the search goes; planned points have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search: Option<Id>,
    /// Which measurement of the point this is (`workload.repeats`), from 0; hashed into the id
    /// only when above 0, so the first repetition keeps the point's id.
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub repeat: u32,
}

fn is_zero_u32(n: &u32) -> bool {
    *n == 0
}

impl Point {
    /// The step of this planned point's search (`workload.search`) at `load`: the concurrency
    /// (scaled per GEN server as the planned point's was) or the request rate set to it, its
    /// request counts resolved, and an id of its own under job `job` with `load_settings`.
    /// Planned here, beside every other point, so that a rerun of the same search gives the
    /// same step ids.
    pub fn search_step(
        &self,
        job: Id,
        load_settings: &sweep_spec::Load,
        search: &sweep_spec::Search,
        load: f64,
    ) -> Point {
        let per_server = (self.effective_concurrency / u64::from(self.concurrency.max(1))).max(1);
        let mut step = Point { search: Some(self.id), ..*self };
        match search.axis {
            sweep_spec::SearchAxis::Concurrency => {
                step.concurrency = load as u32;
                step.effective_concurrency = u64::from(step.concurrency) * per_server;
            }
            sweep_spec::SearchAxis::RequestRate => step.request_rate = Some(sweep_spec::Rate(load)),
        }
        step.requests = search.requests.resolve(step.effective_concurrency);
        step.warmup = search.warmup.resolve(step.effective_concurrency);
        step.id = point_id(id::with_load(job, load_settings), &step);
        step
    }
}

/// Why a spec that validated still cannot be planned.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The space is larger than `--max-points`.
    #[error("the space has {size} points, more than the limit of {max}")]
    TooManyPoints { size: u128, max: u64 },
    /// Excludes and `where` dropped every point.
    #[error("no point is left to run: of {space} points, {excluded} are excluded by `sweep.exclude` and {filtered} fail `sweep.where`")]
    Empty { space: u128, excluded: u64, filtered: u64 },
    /// `--prune-infeasible` dropped every point.
    #[error("no point is left to run: all {points} need more KV cache than their servers hold")]
    NothingFits { points: u64, reasons: Vec<String> },
    /// A job whose servers cannot be laid out on the cluster's nodes.
    #[error("job `{job}` cannot be placed: {source}")]
    Layout {
        job: String,
        path: KeyPath,
        #[source]
        source: LayoutError,
    },
    /// A job larger than `cluster.max_nodes`.
    #[error("job `{job}` needs {nodes} nodes, more than `cluster.max_nodes` ({max_nodes})")]
    TooManyNodes { job: String, nodes: u32, max_nodes: u32 },
    /// An expression failed for some point.
    #[error("`{axis}` cannot be computed for the point {point}: {source}")]
    Eval {
        axis: String,
        point: String,
        path: KeyPath,
        #[source]
        source: EvalError,
    },
    /// A derived value outside its axis's range.
    #[error("`{axis}` computes to {value} for the point {point}, outside {min}..={max}")]
    OutOfRange { axis: String, value: i64, min: i64, max: i64, point: String, path: KeyPath },
}

impl PlanError {
    /// The spec key the error is about, for pointing at the file.
    pub fn path(&self) -> Option<KeyPath> {
        match self {
            PlanError::TooManyPoints { .. } => None,
            PlanError::NothingFits { .. } => Some(KeyPath::keys("cluster.gpu_memory_gb")),
            PlanError::Empty { filtered, .. } => Some(if *filtered > 0 {
                KeyPath::keys("sweep.where")
            } else {
                KeyPath::keys("sweep.exclude")
            }),
            PlanError::Layout { path, .. }
            | PlanError::Eval { path, .. }
            | PlanError::OutOfRange { path, .. } => Some(path.clone()),
            PlanError::TooManyNodes { .. } => Some(KeyPath::keys("cluster.max_nodes")),
        }
    }

    /// Further lines that explain it.
    pub fn notes(&self) -> Vec<String> {
        match self {
            PlanError::NothingFits { reasons, .. } => reasons.clone(),
            _ => Vec::new(),
        }
    }

    /// What the user can do about it.
    pub fn help(&self) -> Option<String> {
        Some(match self {
            PlanError::TooManyPoints { .. } => {
                "narrow the lists, add `sweep.exclude` or `sweep.where`, or raise `--max-points` if the size is meant".into()
            }
            PlanError::Empty { .. } => "loosen `sweep.where` or `sweep.exclude`".into(),
            PlanError::NothingFits { .. } => {
                "lower the batch sizes or lengths, or use more GPUs per server; the notes show the arithmetic".into()
            }
            PlanError::Layout { source: LayoutError::NotWholeNodes { .. }, .. } => {
                "drop this size with `sweep.exclude` or `sweep.where`, or choose a size that fills whole nodes".into()
            }
            PlanError::Layout { .. } => "adjust `cluster.base_port` / `cluster.frontend_port` or the server counts".into(),
            PlanError::TooManyNodes { .. } => {
                "drop the largest configurations with `sweep.where`, or raise `cluster.max_nodes`".into()
            }
            PlanError::Eval { .. } | PlanError::OutOfRange { .. } => return None,
        })
    }
}

/// Expands `spec` into a plan.
pub fn plan(spec: &Spec, options: &PlanOptions) -> Result<Plan, PlanError> {
    let space = &spec.space;
    // Rates and prefix ratios cross every other axis; they are not in the expression space (no
    // exclude or where).
    let size = space.size()
        * spec.workload.request_rates.len().max(1) as u128
        * spec.workload.prefix_ratios.len().max(1) as u128;
    if size > u128::from(options.max_points) {
        return Err(PlanError::TooManyPoints { size, max: options.max_points });
    }
    let mut expander = Expander {
        spec,
        jobs: Vec::new(),
        points: Vec::new(),
        job_index: HashMap::new(),
        seen_points: HashSet::default(),
        stats: Stats { space: size, ..Stats::default() },
        exclude_hits: vec![0; space.excludes.len()],
        slots: vec![None; space.slot_count()],
        chosen: vec![0; space.axes.len()],
        key: Vec::new(),
    };
    for subspace in &space.subspaces {
        expander.subspace(subspace)?;
    }
    let Expander { mut jobs, points, stats, exclude_hits, .. } = expander;
    if points.is_empty() {
        return Err(PlanError::Empty { space: size, excluded: stats.excluded, filtered: stats.filtered });
    }
    let mut points = group_by_job(points, &mut jobs);
    // Repetitions interleaved across each job's points (p1 p2 p3 p1 p2 p3 …), so that drift
    // over the job's life falls on every point alike.
    if spec.workload.repeats > 1 {
        for job in &jobs {
            points[job.points.clone()].sort_by_key(|p| p.repeat);
        }
    }
    name_knobs(&mut jobs);
    disambiguate_names(&mut jobs);
    if spec.workload.deployment_repeats > 1 {
        (jobs, points) = deploy_again(spec, jobs, points);
    }
    let warnings = space
        .excludes
        .iter()
        .zip(exclude_hits)
        .filter(|(_, hits)| *hits == 0)
        .map(|(exclude, _)| Warning {
            path: exclude.path.clone(),
            message: "this exclude entry matches no point".into(),
        })
        .collect();
    Ok(Plan { jobs, points, stats, warnings, capacity: None })
}

struct Expander<'a> {
    spec: &'a Spec,
    jobs: Vec<Job>,
    points: Vec<Point>,
    job_index: HashMap<(Mode, Vec<Value>), u32>,
    seen_points: HashSet<Id, BuildHasherDefault<IdHasher>>,
    stats: Stats,
    exclude_hits: Vec<u64>,
    /// The current point's values; slot 0 is the mode.
    slots: Vec<Option<Value>>,
    /// The value index chosen for each axis.
    chosen: Vec<usize>,
    key: Vec<Value>,
}

impl Expander<'_> {
    fn subspace(&mut self, sub: &Subspace) -> Result<(), PlanError> {
        let axes = &self.spec.space.axes;
        // What makes a deployment: the roles' axes and every knob.
        let role_axes: Vec<usize> = sub
            .axes
            .iter()
            .copied()
            .filter(|&a| axes[a].name.role.is_some() || axes[a].name.key.knob().is_some())
            .collect();
        let workload = |key| self.spec.space.axis(None, key).unwrap_or_default();
        let (isl, osl, concurrency) =
            (workload(AxisKey::Isl), workload(AxisKey::Osl), workload(AxisKey::Concurrency));
        self.slots.iter_mut().for_each(|s| *s = None);
        self.slots[MODE_SLOT] = Some(Value::Str(sub.mode.as_str().into()));
        // Mixed-radix counter over the dimensions, the last one fastest.
        let mut counter = vec![0usize; sub.dims.len()];
        // The last point's deployment and job: consecutive points usually share them.
        let mut last: Option<(Vec<Value>, u32)> = None;
        'points: loop {
            for (d, dim) in sub.dims.iter().enumerate() {
                for &axis in &dim.axes {
                    self.chosen[axis] = counter[d];
                    self.slots[axis + 1] = match &axes[axis].values[counter[d]] {
                        AxisValue::Lit(value) => Some(value.clone()),
                        AxisValue::Expr(_) => None,
                    };
                }
            }
            for &axis in &sub.derived {
                if let AxisValue::Expr(expr) = &axes[axis].values[self.chosen[axis]] {
                    let value = expr.eval(&self.slots).map_err(|source| PlanError::Eval {
                        axis: axes[axis].name.to_string(),
                        point: self.describe(),
                        path: axes[axis].value_paths[self.chosen[axis]].clone(),
                        source,
                    })?;
                    if let Value::Int(v) = value {
                        let key = &axes[axis].name.key;
                        if v < key.minimum() || v > key.maximum() {
                            return Err(PlanError::OutOfRange {
                                axis: axes[axis].name.to_string(),
                                value: v,
                                min: key.minimum(),
                                max: key.maximum(),
                                point: self.describe(),
                                path: axes[axis].value_paths[self.chosen[axis]].clone(),
                            });
                        }
                    }
                    self.slots[axis + 1] = Some(value);
                }
            }
            if self.keep()? {
                let same_as_last = last.as_ref().is_some_and(|(key, _)| {
                    key.iter().zip(&role_axes).all(|(value, &a)| self.slots[a + 1].as_ref() == Some(value))
                });
                let job = match &last {
                    Some((_, j)) if same_as_last => *j,
                    _ => {
                        self.key.clear();
                        self.key.extend(
                            role_axes.iter().map(|&a| self.slots[a + 1].clone().unwrap_or(Value::Int(0))),
                        );
                        let j = match self.job_index.get(&(sub.mode, self.key.clone())) {
                            Some(&j) => j,
                            None => self.new_job(sub)?,
                        };
                        last = Some((self.key.clone(), j));
                        j
                    }
                };
                let int =
                    |axis: usize| self.slots[axis + 1].as_ref().and_then(Value::as_int).unwrap_or(0) as u32;
                let (isl, osl, concurrency) = (int(isl), int(osl), int(concurrency));
                // An unset axis is one `None` value, so the loops below always run.
                let w = &self.spec.workload;
                let rates: Vec<_> = optional_values(&w.request_rates);
                let prefixes: Vec<_> = optional_values(&w.prefix_ratios);
                for &request_rate in &rates {
                    for &prefix_ratio in &prefixes {
                        self.push_point(job, Load { isl, osl, concurrency, request_rate, prefix_ratio });
                    }
                }
            }
            // Advance the counter.
            let mut d = sub.dims.len();
            loop {
                if d == 0 {
                    break 'points;
                }
                d -= 1;
                counter[d] += 1;
                if counter[d] < sub.dims[d].len {
                    break;
                }
                counter[d] = 0;
            }
        }
        Ok(())
    }

    /// Applies excludes and `where`; counts what each drops.
    fn keep(&mut self) -> Result<bool, PlanError> {
        for (i, exclude) in self.spec.space.excludes.iter().enumerate() {
            let matches = exclude.conditions.iter().all(|(slot, accepted)| {
                self.slots[*slot].as_ref().is_some_and(|value| accepted.contains(value))
            });
            if matches {
                self.exclude_hits[i] += 1;
                self.stats.excluded += 1;
                return Ok(false);
            }
        }
        if let Some(filter) = &self.spec.space.filter {
            let keep = filter.expr.eval(&self.slots).map_err(|source| PlanError::Eval {
                axis: "sweep.where".into(),
                point: self.describe(),
                path: filter.path.clone(),
                source,
            })?;
            if keep != Value::Bool(true) {
                self.stats.filtered += 1;
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn new_job(&mut self, sub: &Subspace) -> Result<u32, PlanError> {
        let roles: Vec<RoleConfig> = self
            .spec
            .roles
            .iter()
            .filter(|r| r.role.mode() == sub.mode)
            .map(|r| self.role_config(r.role))
            .collect();
        let knobs = self.knob_values(sub);
        let name = job_name(sub.mode, &roles);
        let cluster = &self.spec.cluster;
        let settings = LayoutSettings {
            gpus_per_node: cluster.gpus_per_node,
            packing: cluster.packing,
            tasks: self.spec.engine.tasks,
            segment: cluster.segment,
            base_port: cluster.base_port,
            frontend_port: cluster.frontend_port,
            always_frontend: self.spec.engine.kind == sweep_spec::EngineKind::Dynamo,
        };
        let layout = Layout::compute(&roles, &settings).map_err(|source| {
            let path = match &source {
                LayoutError::NotWholeNodes { role, .. } => {
                    let tp = self.spec.space.axis(Some(*role), AxisKey::Tp);
                    tp.map(|a| self.spec.space.axes[a].value_paths[self.chosen[a]].clone())
                        .unwrap_or_else(|| KeyPath::keys(role.as_str()))
                }
                LayoutError::Ports { .. } => KeyPath::keys("cluster.base_port"),
                LayoutError::TooLarge { .. } => KeyPath::root(),
            };
            PlanError::Layout { job: name.clone(), path, source }
        })?;
        if let Some(max_nodes) = cluster.max_nodes {
            if layout.nodes > max_nodes {
                return Err(PlanError::TooManyNodes { job: name, nodes: layout.nodes, max_nodes });
            }
        }
        let id = job_id(self.spec, sub.mode, &roles, &knobs);
        let index = self.jobs.len() as u32;
        self.jobs.push(Job {
            id,
            name,
            mode: sub.mode,
            roles,
            layout,
            points: 0..0,
            knobs,
            deployment: 0,
            configuration: id,
        });
        self.job_index.insert((sub.mode, self.key.clone()), index);
        Ok(index)
    }

    /// The current point's knob values: as written, or as computed for an expression.
    fn knob_values(&self, sub: &Subspace) -> Vec<KnobValue> {
        let axes = &self.spec.space.axes;
        sub.axes
            .iter()
            .filter_map(|&a| {
                let axis = &axes[a];
                let knob = match &axis.name.key {
                    AxisKey::Knob(knob) => knob.clone(),
                    _ => return None,
                };
                let value = match (&axis.values[self.chosen[a]], &self.slots[a + 1]) {
                    (AxisValue::Lit(_), _) => axis.written[self.chosen[a]].clone(),
                    (AxisValue::Expr(_), Some(Value::Int(v))) => serde_json::Value::from(*v),
                    (AxisValue::Expr(_), Some(Value::Bool(b))) => serde_json::Value::Bool(*b),
                    (AxisValue::Expr(_), Some(Value::Str(s))) => serde_json::Value::String(s.to_string()),
                    (AxisValue::Expr(_), None) => serde_json::Value::Null,
                };
                Some(KnobValue { knob, value })
            })
            .collect()
    }

    fn role_config(&self, role: Role) -> RoleConfig {
        let space = &self.spec.space;
        let get = |key| -> Option<u32> {
            let axis = space.axis(Some(role), key)?;
            self.slots[axis + 1].as_ref().and_then(Value::as_int).map(|v| v as u32)
        };
        let parallel = space
            .axis(Some(role), AxisKey::Parallel)
            .and_then(|a| self.slots[a + 1].as_ref())
            .and_then(Value::as_str)
            .map_or(Parallel::Tep, |p| if p == "dep" { Parallel::Dep } else { Parallel::Tep });
        RoleConfig {
            role,
            servers: get(AxisKey::Servers).unwrap_or(1),
            tp: get(AxisKey::Tp).unwrap_or(1),
            pp: get(AxisKey::Pp).unwrap_or(1),
            cp: get(AxisKey::Cp).unwrap_or(1),
            parallel,
            batch: get(AxisKey::Batch).unwrap_or(1),
            max_num_tokens: get(AxisKey::MaxNumTokens),
            max_seq_len: get(AxisKey::MaxSeqLen),
            mtp: get(AxisKey::Mtp).unwrap_or(0),
            eplb: get(AxisKey::Eplb).unwrap_or(0),
        }
    }

    fn push_point(&mut self, job: u32, load: Load) {
        let Load { isl, osl, concurrency, request_rate, prefix_ratio } = load;
        let spec = self.spec;
        let j = &self.jobs[job as usize];
        let multiplier = if spec.workload.concurrency_per_gen_server {
            let serving = if j.mode == Mode::Disagg { Role::Gen } else { Role::Agg };
            j.role(serving).map_or(1, |r| u64::from(r.servers))
        } else {
            1
        };
        let effective_concurrency = u64::from(concurrency) * multiplier;
        let mut point = Point {
            id: Id(0),
            job,
            isl,
            osl,
            concurrency,
            effective_concurrency,
            request_rate,
            prefix_ratio,
            search: None,
            requests: spec.workload.requests.resolve(effective_concurrency),
            warmup: spec.workload.warmup.resolve(effective_concurrency),
            repeat: 0,
        };
        let base = id::with_load(j.id, &spec.workload.load);
        point.id = point_id(base, &point);
        if !self.seen_points.insert(point.id) {
            self.stats.duplicates += 1;
            return;
        }
        self.points.push(point);
        for repeat in 1..spec.workload.repeats {
            let again = Point { repeat, ..point };
            self.points.push(Point { id: point_id(base, &again), ..again });
        }
    }

    /// The current point's values, for error messages.
    fn describe(&self) -> String {
        let axes = &self.spec.space.axes;
        let mut parts = vec![format!(
            "mode={}",
            self.slots[MODE_SLOT].as_ref().map(ToString::to_string).unwrap_or_default()
        )];
        for (i, axis) in axes.iter().enumerate() {
            if let Some(value) = &self.slots[i + 1] {
                parts.push(format!("{}={value}", axis.name));
            }
        }
        format!("{{{}}}", parts.join(", "))
    }
}

/// What one point loads its job with, before its request counts are resolved.
struct Load {
    isl: u32,
    osl: u32,
    concurrency: u32,
    request_rate: Option<sweep_spec::Rate>,
    prefix_ratio: Option<sweep_spec::Ratio>,
}

/// A crossed axis's values, or the one value `None` when it is unset.
fn optional_values<T: Copy>(values: &[T]) -> Vec<Option<T>> {
    if values.is_empty() {
        vec![None]
    } else {
        values.iter().copied().map(Some).collect()
    }
}

/// Ids are already uniform hashes: hashing them again would only cost time.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

/// Reorders points so that each job's points are contiguous (stable within a job).
/// Each job deployed `workload.deployment_repeats` times, as jobs of their own: all first
/// deployments, then all second ones, and so on, so that a configuration's redeploys land at
/// other times (and, on a cluster, other nodes). A later deployment is `<name>_d<k>`, with its
/// own job and point ids.
fn deploy_again(spec: &Spec, jobs: Vec<Job>, points: Vec<Point>) -> (Vec<Job>, Vec<Point>) {
    let n = jobs.len();
    let mut all_jobs = Vec::with_capacity(n * spec.workload.deployment_repeats as usize);
    let mut all_points = Vec::with_capacity(points.len() * spec.workload.deployment_repeats as usize);
    for deployment in 1..spec.workload.deployment_repeats {
        for job in &jobs {
            let id = id::deployment(job.id, deployment);
            let base = id::with_load(id, &spec.workload.load);
            let index = (n * deployment as usize + (all_jobs.len() % n)) as u32;
            let start = points.len() + all_points.len();
            all_points.extend(points[job.points.clone()].iter().map(|p| {
                let again = Point { job: index, ..*p };
                Point { id: point_id(base, &again), ..again }
            }));
            let end = points.len() + all_points.len();
            all_jobs.push(Job {
                id,
                name: format!("{}_d{deployment}", job.name),
                points: start..end,
                deployment,
                ..job.clone()
            });
        }
    }
    let mut jobs = jobs;
    jobs.extend(all_jobs);
    let mut points = points;
    points.extend(all_points);
    (jobs, points)
}

fn group_by_job(points: Vec<Point>, jobs: &mut [Job]) -> Vec<Point> {
    let mut counts = vec![0usize; jobs.len()];
    for p in &points {
        counts[p.job as usize] += 1;
    }
    let mut start = 0;
    for (job, count) in jobs.iter_mut().zip(&counts) {
        job.points = start..start + count;
        start += count;
    }
    let mut next: Vec<usize> = jobs.iter().map(|j| j.points.start).collect();
    let mut grouped = vec![None; points.len()];
    for p in points {
        let slot = &mut next[p.job as usize];
        grouped[*slot] = Some(p);
        *slot += 1;
    }
    grouped.into_iter().flatten().collect()
}

/// `ctx{N}_gen{M}_{dep|tep}{TP}_batch{B}_eplb{S}_mtp{K}` (the name Dynamo's and TensorRT-LLM's
/// post-processing parse), and `agg{N}_{dep|tep}{TP}_batch{B}_eplb{S}_mtp{K}` for aggregated jobs.
fn job_name(mode: Mode, roles: &[RoleConfig]) -> String {
    let find = |role| roles.iter().find(|r| r.role == role);
    let tail = |r: &RoleConfig| {
        format!("{}{}_batch{}_eplb{}_mtp{}", r.parallel.as_str(), r.tp, r.batch, r.eplb, r.mtp)
    };
    match (mode, find(Role::Ctx), find(Role::Gen), find(Role::Agg)) {
        (Mode::Disagg, Some(ctx), Some(gen), _) => {
            format!("ctx{}_gen{}_{}", ctx.servers, gen.servers, tail(gen))
        }
        (_, _, _, Some(agg)) => format!("agg{}_{}", agg.servers, tail(agg)),
        _ => "job".into(),
    }
}

/// Appends to each job's name the knobs whose values differ between jobs
/// (`…_mtp0_max_num_seqs-64`): a knob that is the same everywhere (one value, or a derived value
/// that comes out the same) names nothing, so a spec without varied knobs keeps its names.
fn name_knobs(jobs: &mut [Job]) {
    let mut values: HashMap<String, HashSet<String>> = HashMap::new();
    for job in jobs.iter() {
        for k in &job.knobs {
            values.entry(k.knob.name.clone()).or_default().insert(k.value.to_string());
        }
    }
    for job in jobs.iter_mut() {
        // Zipped knobs of two roles (CTX and GEN's KV transfer backend) say the same once.
        let mut labels: Vec<String> = Vec::new();
        for k in &job.knobs {
            let varies = values.get(&k.knob.name).is_some_and(|v| v.len() > 1);
            let label = k.label();
            if varies && !labels.contains(&label) {
                job.name.push('_');
                job.name.push_str(&label);
                labels.push(label);
            }
        }
    }
}

/// Jobs that differ only in values the conventional name leaves out (e.g. the CTX TP or an
/// engine argument) would share a directory; each of them gets its id's first 8 digits appended.
fn disambiguate_names(jobs: &mut [Job]) {
    let mut count: HashMap<&str, usize> = HashMap::new();
    for job in jobs.iter() {
        *count.entry(job.name.as_str()).or_default() += 1;
    }
    let shared: HashSet<String> =
        count.into_iter().filter(|(_, n)| *n > 1).map(|(name, _)| name.to_owned()).collect();
    for job in jobs.iter_mut() {
        if shared.contains(&job.name) {
            job.name = format!("{}_{}", job.name, &job.id.to_string()[..8]);
        }
    }
}
