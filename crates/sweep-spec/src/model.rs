//! The validated, resolved sweep: what every later stage trusts. Built only by [`crate::load`].

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

pub use crate::expr::{Expr, Type, Value};
pub use crate::raw::{
    ArrivalKind, Count, DatasetFormat, Discovery, Dtype, DynamoBackend, Endpoint, EngineKind, ExecutorKind,
    ImageFormat, LmEvalModel, Mode, Packing, Parallel, RequestPlane, SearchAxis, TaskMode,
};
use crate::source::KeyPath;

/// A whole sweep, validated.
#[derive(Debug)]
pub struct Spec {
    pub name: String,
    /// Where `sweep submit` runs the jobs unless told otherwise.
    pub executor: ExecutorKind,
    pub model: Model,
    pub engine: Engine,
    pub cluster: Cluster,
    pub workload: Workload,
    /// The roles the spec defines, in the order agg, ctx, gen.
    pub roles: Vec<RoleSpec>,
    pub space: Space,
    /// `accuracy`: what each job's benchmark step asks its servers after the performance points.
    pub accuracy: Option<Accuracy>,
}

/// How a deployment's answers are checked (`docs/accuracy.md`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Accuracy {
    /// The exact-match probe's questions: [`Accuracy::BUILTIN`] (the shipped arithmetic set) or
    /// a JSONL file; `None` when only lm-eval runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub questions: Option<String>,
    /// Ask only the first this many questions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// Most tokens of each answer (greedy decoding).
    pub max_tokens: u32,
    /// Questions in flight at once.
    pub concurrency: u32,
    /// A deployment scoring below this on any of its scores is `inaccurate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_score: Option<f64>,
    /// Seconds the whole accuracy step may take (the probe and lm-eval together).
    pub timeout: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lm_eval: Option<LmEval>,
}

impl Accuracy {
    /// The `questions` word for the set shipped with sweep.
    pub const BUILTIN: &'static str = "builtin";
}

/// `accuracy.lm_eval`: the harness, run where the job runs, against its frontend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LmEval {
    pub tasks: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    pub model: LmEvalModel,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_fewshot: Option<u32>,
    /// The result field scored (`exact_match,strict-match`); `None`: each task's first metric in
    /// name order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
    /// More `--model_args`, `key=value` pairs joined by commas, after sweep's own (a key given
    /// twice takes its last value): `tokenizer_backend=None`, say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_args: Option<String>,
    /// The program: a name looked up on `PATH` and in `engine.venv`, or a path.
    pub command: String,
    /// More options, passed as given.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Model {
    pub path: String,
    pub served_name: String,
    /// The model's `config.json` (or a folder holding one) on this machine, for the capacity
    /// estimate; `None`: `<path>/config.json` when that exists here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<String>,
    /// The weights' number format, when the config's own (`quantization_config`, `torch_dtype`)
    /// is not what is served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dtype: Option<Dtype>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Engine {
    pub kind: EngineKind,
    /// The engine behind Dynamo, when `kind` is `dynamo`.
    pub backend: Option<DynamoBackend>,
    /// Dynamo's discovery and request planes, when `kind` is `dynamo`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dynamo: Option<DynamoPlanes>,
    pub tasks: TaskMode,
    /// `custom` engines: each role's launch command (a template), and the frontend's.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub commands: BTreeMap<String, String>,
    pub health: Health,
    pub metrics: Metrics,
    /// `engine.env`: environment variables of every step, fixed values only (knobs are axes).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// `engine.frontend_args`: the frontend's or router's options, fixed values only.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub frontend_args: BTreeMap<String, serde_json::Value>,
    /// `engine.venv`, when it is one path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub venv: Option<String>,
}

/// How a Dynamo deployment's processes find and reach each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DynamoPlanes {
    pub discovery: Discovery,
    pub request_plane: RequestPlane,
}

/// How the benchmark step decides a server is ready.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Health {
    /// The URL path polled until it answers 200; `None`: ready once registered.
    pub path: Option<String>,
    /// Seconds between polls.
    pub interval: f64,
    /// Seconds before giving up on a server.
    pub timeout: f64,
}

impl Default for Health {
    fn default() -> Self {
        Health { path: Some("/health".into()), interval: 2.0, timeout: 1800.0 }
    }
}

/// How the benchmark step scrapes the servers' Prometheus endpoint during each point.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Metrics {
    /// The URL path scraped on every server and the frontend; `None`: no scraping.
    pub path: Option<String>,
    /// Milliseconds between scrapes.
    pub interval_ms: u64,
    /// Milliseconds between samples of every GPU of the job's nodes (`nvidia-smi`) during each
    /// point; `None`: no GPU telemetry.
    pub gpu_interval_ms: Option<u64>,
    /// Sample the GPUs from a DCGM exporter's Prometheus endpoint instead of `nvidia-smi`: its
    /// URL, `{host}` standing for each node of the job.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dcgm_url: Option<String>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            path: Some("/metrics".into()),
            interval_ms: 1000,
            gpu_interval_ms: Some(1000),
            dcgm_url: None,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Cluster {
    pub gpus_per_node: u32,
    pub max_nodes: Option<u32>,
    pub partition: Option<String>,
    pub account: Option<String>,
    pub qos: Option<String>,
    pub time_limit: Option<String>,
    pub packing: Packing,
    pub segment: bool,
    pub container: Option<Container>,
    pub sbatch: Vec<String>,
    pub base_port: u16,
    pub frontend_port: u16,
    /// A folder of templates that override the built-in ones by path.
    pub templates_dir: Option<String>,
    /// One GPU's memory in GiB, for the capacity estimate; `None`: no estimate.
    pub gpu_memory_gb: Option<f64>,
    /// The share of a GPU's memory the engine may take for weights and KV cache.
    pub gpu_memory_utilization: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Container {
    /// The image, when it is one; `None` when `cluster.container.image` is an axis.
    pub image: Option<String>,
    pub mounts: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Workload {
    pub concurrency_per_gen_server: bool,
    /// `workload.repeats`: each point measured this many times on its deployment, the
    /// repetitions interleaved across the job's points. Left out of the serialized form at 1.
    #[serde(skip_serializing_if = "is_one")]
    pub repeats: u32,
    /// `workload.deployment_repeats`: each job deployed this many times, as separate jobs
    /// (`<name>_d1`, `_d2`, …), since a redeploy's placement is part of the noise. Left out
    /// of the serialized form at 1.
    #[serde(skip_serializing_if = "is_one")]
    pub deployment_repeats: u32,
    #[serde(serialize_with = "serialize_count")]
    pub requests: Count,
    #[serde(serialize_with = "serialize_count")]
    pub warmup: Count,
    /// `workload.request_rate`: crossed with the other workload axes, a point per rate; empty
    /// for a closed loop or a trace.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub request_rates: Vec<Rate>,
    /// `workload.prefix_ratio`: the share of each synthetic prompt that starts with one of
    /// `load.prefix_prompts` shared prefixes; crossed like the rates, a point per ratio; empty
    /// when unset.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub prefix_ratios: Vec<Ratio>,
    /// How the benchmark step generates load; the same for every point.
    pub load: Load,
}

/// An open loop's target rate, in requests per second: finite and positive (checked when the
/// spec is resolved), so equality is total.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Rate(pub f64);

impl Eq for Rate {}

impl std::fmt::Display for Rate {
    /// `5`, `0.5`, `12.25`: the shortest form that reads back the same.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A share between 0 and 1 (`workload.prefix_ratio`): finite (checked when the spec is
/// resolved), so equality is total.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Ratio(pub f64);

impl Eq for Ratio {}

impl std::fmt::Display for Ratio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Goodput {
    pub time_to_first_token: Option<f64>,
    pub inter_token_latency: Option<f64>,
    pub request_latency: Option<f64>,
}

/// The load generator's settings (`workload.*` beyond the axes), resolved with their defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Load {
    pub endpoint: Endpoint,
    pub streaming: bool,
    pub arrival: ArrivalKind,
    /// Always `null`: each point carries its own rate since `request_rate` became an axis.
    /// Kept in the serialized form because the load settings are hashed into point ids as JSON,
    /// and dropping the key would change the id of every point of a sweep with other load keys
    /// set. Never read back.
    #[serde(rename = "request_rate", skip_deserializing)]
    pub hashed_rate: Option<()>,
    pub burstiness: f64,
    pub trace: Option<String>,
    pub trace_block_size: u32,
    pub trace_speedup: f64,
    pub isl_stddev: f64,
    pub osl_stddev: f64,
    pub seed: u64,
    pub duration: Option<f64>,
    pub request_timeout: f64,
    pub extra_body: BTreeMap<String, serde_json::Value>,
    /// A local tokenizer.json (or a model folder holding one) for token counts. Left out of the
    /// serialized form when unset, so point ids from before this key existed stay the same.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokenizer: Option<String>,
    pub goodput: Goodput,
    pub dep_ttft_correction: bool,
    /// `false`: deploy and check only — wait for every server, send no load.
    pub enabled: bool,
    /// Each point is a search for the highest load meeting the SLOs, run as steps in the job.
    /// Left out when unset, so that ids from before this key existed stay the same.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub search: Option<Search>,
    /// Prompts from a file. Left out when unset, as `search` is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dataset: Option<Dataset>,
    /// Synthetic images sent with every synthetic prompt. Left out when unset, as `search` is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub images: Option<Images>,
    /// How many different shared prefixes the prompts of a `prefix_ratio` point start with
    /// (request n takes prefix n mod this); set exactly when `workload.prefix_ratio` is. Left
    /// out when unset, as `search` is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix_prompts: Option<u32>,
}

/// `workload.images`, resolved: `count` PNGs of `width` × `height` per request, made by the
/// runner (seeded noise, different for every request).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Images {
    pub count: u32,
    pub width: u32,
    pub height: u32,
    pub format: ImageFormat,
}

/// `workload.dataset`, resolved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dataset {
    /// As written; read where the benchmark step runs (and checked by `sweep submit` where it
    /// runs, unless `check` is off).
    pub path: String,
    pub format: DatasetFormat,
    /// Cut or pad each prompt to the point's ISL (in the tokenizer's tokens with
    /// `workload.tokenizer`, else in words). Off: prompts are sent as they are.
    pub fit_to_isl: bool,
    /// Whether `sweep submit` reads the file before anything is submitted. Not part of what is
    /// measured, so not in the job's settings (nor in any id).
    #[serde(skip)]
    pub check: bool,
}

/// `workload.search`, resolved: the load climbs from `from` by doubling until an SLO breaks or
/// the throughput stops growing, then bisects to within `resolution` (a fraction of the load).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Search {
    pub axis: SearchAxis,
    pub from: f64,
    pub to: f64,
    pub slo: Vec<Slo>,
    /// Saturation: a doubling that adds less than this fraction of output throughput.
    pub stop_when_gain_below: Option<f64>,
    pub resolution: f64,
    /// The requests and warm-up of each step, as `workload.requests`/`warmup` say.
    #[serde(serialize_with = "serialize_count")]
    pub requests: Count,
    #[serde(serialize_with = "serialize_count")]
    pub warmup: Count,
}

/// One service-level objective: `metric`'s `stat` at most `max_ms`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Slo {
    /// `time_to_first_token`, `inter_token_latency` or `request_latency`.
    pub metric: String,
    /// `avg`, `p50`, `p90`, `p95` or `p99`.
    pub stat: String,
    pub max_ms: f64,
}

impl Slo {
    pub const METRICS: [&'static str; 3] = ["time_to_first_token", "inter_token_latency", "request_latency"];
    pub const STATS: [&'static str; 5] = ["avg", "p50", "p90", "p95", "p99"];
}

impl Default for Load {
    fn default() -> Self {
        Load {
            endpoint: Endpoint::Chat,
            streaming: true,
            arrival: ArrivalKind::Closed,
            hashed_rate: None,
            search: None,
            dataset: None,
            images: None,
            prefix_prompts: None,
            burstiness: 1.0,
            trace: None,
            trace_block_size: 512,
            trace_speedup: 1.0,
            isl_stddev: 0.0,
            osl_stddev: 0.0,
            seed: 0,
            duration: None,
            request_timeout: 600.0,
            extra_body: BTreeMap::new(),
            tokenizer: None,
            goodput: Goodput::default(),
            dep_ttft_correction: false,
            enabled: true,
        }
    }
}

fn is_one(n: &u32) -> bool {
    *n == 1
}

fn serialize_count<S: serde::Serializer>(count: &Count, s: S) -> Result<S::Ok, S::Error> {
    match count {
        Count::Fixed(n) => s.serialize_u64(*n),
        Count::PerConcurrency(k) => s.serialize_str(&format!("{k}x")),
    }
}

impl Count {
    /// The number of requests for one point at `effective_concurrency`.
    pub fn resolve(self, effective_concurrency: u64) -> u64 {
        match self {
            Count::Fixed(n) => n,
            Count::PerConcurrency(k) => k.saturating_mul(effective_concurrency),
        }
    }
}

/// A server role of a job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Agg,
    Ctx,
    Gen,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Agg, Role::Ctx, Role::Gen];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Agg => "agg",
            Role::Ctx => "ctx",
            Role::Gen => "gen",
        }
    }

    /// The name the in-job roles use (`DISAGG_SERVING_TYPE`).
    pub fn serving_type(self) -> &'static str {
        match self {
            Role::Agg => "AGG",
            Role::Ctx => "CTX",
            Role::Gen => "GEN",
        }
    }

    pub fn mode(self) -> Mode {
        match self {
            Role::Agg => Mode::Agg,
            Role::Ctx | Role::Gen => Mode::Disagg,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A role's settings that are not axes.
#[derive(Debug, Clone)]
pub struct RoleSpec {
    pub role: Role,
    /// Passed to the engine verbatim; part of the deployment's identity. Arguments that are
    /// axes (`{sweep: [...]}`, `{expr: ...}`) are not here but in [`Space::axes`], as knobs.
    pub engine_args: BTreeMap<String, serde_json::Value>,
    /// Environment variables of this role's servers (`<role>.env`), fixed values only.
    pub env: BTreeMap<String, String>,
}

/// A setting of the deployment that is not one of the planner's own axes but can vary like one:
/// an engine argument, an environment variable, a frontend option, the container image or the
/// engine's environment (`docs/spec.md`, "Knobs").
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Knob {
    pub target: KnobTarget,
    /// The axis's name, as `zip`, `exclude` and `where` write it: `gen.engine_args.max_num_seqs`.
    pub name: String,
    /// What the job's name shows of it: `max_num_seqs`.
    pub short: String,
    /// The type its values have in expressions.
    pub ty: Type,
}

/// Where a knob's value goes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum KnobTarget {
    /// `<role>.engine_args.<path>`: an engine argument, nested keys in order.
    EngineArg { role: Role, path: Vec<String> },
    /// `<role>.env.<name>`, or `engine.env.<name>` for every step of the job.
    Env { role: Option<Role>, name: String },
    /// `engine.frontend_args.<name>`: an option of the frontend or router.
    FrontendArg { name: String },
    /// `cluster.container.image`.
    Image,
    /// `engine.venv`: the Python environment the engine's steps run from.
    Venv,
}

/// The axes a role or the workload can vary, in canonical order, and the knobs.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum AxisKey {
    Servers,
    Tp,
    Pp,
    Cp,
    Parallel,
    Batch,
    MaxNumTokens,
    MaxSeqLen,
    Mtp,
    Eplb,
    Isl,
    Osl,
    Concurrency,
    Knob(std::sync::Arc<Knob>),
}

impl AxisKey {
    pub const ROLE: [AxisKey; 10] = [
        AxisKey::Servers,
        AxisKey::Tp,
        AxisKey::Pp,
        AxisKey::Cp,
        AxisKey::Parallel,
        AxisKey::Batch,
        AxisKey::MaxNumTokens,
        AxisKey::MaxSeqLen,
        AxisKey::Mtp,
        AxisKey::Eplb,
    ];
    pub const WORKLOAD: [AxisKey; 3] = [AxisKey::Isl, AxisKey::Osl, AxisKey::Concurrency];

    pub fn as_str(&self) -> &str {
        match self {
            AxisKey::Knob(knob) => &knob.name,
            AxisKey::Servers => "servers",
            AxisKey::Tp => "tp",
            AxisKey::Pp => "pp",
            AxisKey::Cp => "cp",
            AxisKey::Parallel => "parallel",
            AxisKey::Batch => "batch",
            AxisKey::MaxNumTokens => "max_num_tokens",
            AxisKey::MaxSeqLen => "max_seq_len",
            AxisKey::Mtp => "mtp",
            AxisKey::Eplb => "eplb",
            AxisKey::Isl => "isl",
            AxisKey::Osl => "osl",
            AxisKey::Concurrency => "concurrency",
        }
    }

    pub fn ty(&self) -> Type {
        match self {
            AxisKey::Knob(knob) => knob.ty,
            AxisKey::Parallel => Type::Str,
            _ => Type::Int,
        }
    }

    /// The smallest value that makes sense for the axis.
    pub fn minimum(&self) -> i64 {
        match self {
            AxisKey::Knob(_) => i64::MIN,
            AxisKey::Mtp | AxisKey::Eplb => 0,
            _ => 1,
        }
    }

    /// The largest value the planner can place (counts are 32-bit in layouts and artifacts).
    pub fn maximum(&self) -> i64 {
        match self {
            AxisKey::Knob(_) => i64::MAX,
            _ => i64::from(u32::MAX),
        }
    }

    pub fn knob(&self) -> Option<&Knob> {
        match self {
            AxisKey::Knob(knob) => Some(knob),
            _ => None,
        }
    }
}

/// `gen.tp`, `agg.batch`, a workload axis such as `isl`, or a knob
/// (`gen.engine_args.max_num_seqs`, whose name is whole).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AxisName {
    pub role: Option<Role>,
    pub key: AxisKey,
}

impl fmt::Display for AxisName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.role {
            _ if matches!(self.key, AxisKey::Knob(_)) => f.write_str(self.key.as_str()),
            Some(role) => write!(f, "{}.{}", role.as_str(), self.key.as_str()),
            None => f.write_str(self.key.as_str()),
        }
    }
}

/// One value of an axis as written: a literal, or an expression evaluated per point.
#[derive(Debug, Clone)]
pub enum AxisValue {
    Lit(Value),
    Expr(Expr),
}

/// An axis of the space and its values.
#[derive(Debug, Clone)]
pub struct Axis {
    pub name: AxisName,
    pub values: Vec<AxisValue>,
    /// A knob's values as written (JSON), for the engine; `null` where a value is an
    /// expression. Empty for the planner's own axes.
    pub written: Vec<serde_json::Value>,
    /// Where the axis is written (`gen.tp`, or `workload.isl_osl` for paired values).
    pub path: KeyPath,
    /// Where each value is written.
    pub value_paths: Vec<KeyPath>,
}

impl Axis {
    pub fn has_expressions(&self) -> bool {
        self.values.iter().any(|v| matches!(v, AxisValue::Expr(_)))
    }
}

/// Slot 0 of a point's value array holds the mode; axis `i` lives in slot `i + 1`.
pub const MODE_SLOT: usize = 0;

pub fn slot_of(axis: usize) -> usize {
    axis + 1
}

/// The parameter space: axes, how they combine per mode, and what is filtered out.
#[derive(Debug)]
pub struct Space {
    pub axes: Vec<Axis>,
    /// One per mode the spec asks for, in the order written.
    pub subspaces: Vec<Subspace>,
    pub excludes: Vec<Exclude>,
    pub filter: Option<Filter>,
}

impl Space {
    pub fn slot_count(&self) -> usize {
        self.axes.len() + 1
    }

    pub fn axis(&self, role: Option<Role>, key: AxisKey) -> Option<usize> {
        self.axes.iter().position(|a| a.name.role == role && a.name.key == key)
    }

    /// The knob axes, in order.
    pub fn knobs(&self) -> impl Iterator<Item = (usize, &Knob)> {
        self.axes.iter().enumerate().filter_map(|(i, a)| Some((i, a.name.key.knob()?)))
    }

    /// The number of points before excludes and `where`, summed over modes.
    pub fn size(&self) -> u128 {
        self.subspaces.iter().map(Subspace::size).sum()
    }
}

/// The part of the space for one mode.
#[derive(Debug)]
pub struct Subspace {
    pub mode: Mode,
    /// Indices of the axes present in this mode.
    pub axes: Vec<usize>,
    /// Crossed dimensions; the axes of one dimension vary together (zip).
    pub dims: Vec<Dim>,
    /// Axes with expression values, in an order where each comes after what it reads.
    pub derived: Vec<usize>,
}

impl Subspace {
    pub fn size(&self) -> u128 {
        self.dims.iter().map(|d| d.len as u128).product()
    }
}

#[derive(Debug, Clone)]
pub struct Dim {
    pub axes: Vec<usize>,
    pub len: usize,
}

/// Drops every point whose slots match all conditions.
#[derive(Debug, Clone)]
pub struct Exclude {
    /// (slot, accepted values)
    pub conditions: Vec<(usize, Vec<Value>)>,
    pub path: KeyPath,
}

#[derive(Debug, Clone)]
pub struct Filter {
    pub expr: Expr,
    pub path: KeyPath,
}
