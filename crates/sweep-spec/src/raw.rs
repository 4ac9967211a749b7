//! The spec as written: serde structs that mirror the YAML one to one and reject unknown keys.
//! Nothing here is trusted: the `resolve` module turns it into the validated model. The words
//! both share (modes, engine kinds, formats) live here, so the model imports this module and
//! not the other way round.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserializer, IntoDeserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSpec {
    pub version: Option<u64>,
    pub name: String,
    pub executor: Option<ExecutorKind>,
    pub model: RawModel,
    pub engine: RawEngine,
    pub cluster: RawCluster,
    pub mode: OneOrMany<Mode>,
    pub agg: Option<RawRole>,
    pub ctx: Option<RawRole>,
    pub gen: Option<RawRole>,
    pub workload: RawWorkload,
    #[serde(default)]
    pub sweep: RawSweep,
    pub accuracy: Option<RawAccuracy>,
}

/// `accuracy`: probes each deployment's answers after its performance points.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAccuracy {
    /// `builtin`, or a JSONL file of `{"question", "answer"}` lines.
    pub questions: Option<String>,
    pub limit: Option<u32>,
    pub max_tokens: Option<u32>,
    pub concurrency: Option<u32>,
    pub min_score: Option<f64>,
    pub timeout: Option<f64>,
    pub lm_eval: Option<RawLmEval>,
}

/// `accuracy.lm_eval`: EleutherAI's lm-evaluation-harness against the job's frontend.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLmEval {
    pub tasks: OneOrMany<String>,
    pub limit: Option<u32>,
    pub model: Option<LmEvalModel>,
    pub num_fewshot: Option<u32>,
    pub metric: Option<String>,
    pub model_args: Option<String>,
    pub command: Option<String>,
    #[serde(default)]
    pub args: Vec<String>,
}

/// Which of lm-eval's OpenAI-compatible clients talks to the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LmEvalModel {
    /// `/v1/completions`.
    LocalCompletions,
    /// `/v1/chat/completions`, with the chat template applied by the server.
    LocalChatCompletions,
}

impl LmEvalModel {
    pub fn as_str(self) -> &'static str {
        match self {
            LmEvalModel::LocalCompletions => "local-completions",
            LmEvalModel::LocalChatCompletions => "local-chat-completions",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawModel {
    pub path: String,
    pub served_name: Option<String>,
    pub config: Option<String>,
    pub dtype: Option<Dtype>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEngine {
    pub kind: EngineKind,
    pub backend: Option<DynamoBackend>,
    pub discovery: Option<Discovery>,
    pub request_plane: Option<RequestPlane>,
    pub tasks: Option<TaskMode>,
    pub commands: Option<BTreeMap<String, String>>,
    pub health: Option<RawHealth>,
    pub metrics: Option<RawMetrics>,
    /// Environment variables of every step of the job; values may be knobs.
    pub env: Option<BTreeMap<String, serde_json::Value>>,
    /// Options of the frontend or router; values may be knobs.
    pub frontend_args: Option<BTreeMap<String, serde_json::Value>>,
    /// The Python environment the engine's steps run from: a path, or several as an axis.
    pub venv: Option<serde_json::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMetrics {
    /// `null`: do not scrape.
    #[serde(default, deserialize_with = "explicit_null")]
    pub path: Option<Option<String>>,
    pub interval_ms: Option<u64>,
    /// `null`: do not sample the GPUs.
    #[serde(default, deserialize_with = "explicit_null_u64")]
    pub gpu_interval_ms: Option<Option<u64>>,
    /// A DCGM exporter's `/metrics` URL, `{host}` standing for each node.
    pub dcgm_url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHealth {
    /// `null`: the servers have no HTTP health endpoint; ready once registered.
    #[serde(default, deserialize_with = "explicit_null")]
    pub path: Option<Option<String>>,
    pub interval: Option<f64>,
    pub timeout: Option<f64>,
}

/// [`explicit_null`] for a number.
fn explicit_null_u64<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<u64>>, D::Error> {
    Option::<u64>::deserialize(d).map(Some)
}

/// Tells `key: null` (Some(None)) apart from a missing key (None).
fn explicit_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGoodput {
    pub time_to_first_token: Option<f64>,
    pub inter_token_latency: Option<f64>,
    pub request_latency: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCluster {
    pub gpus_per_node: u32,
    pub max_nodes: Option<u32>,
    pub partition: Option<String>,
    pub account: Option<String>,
    pub qos: Option<String>,
    pub time_limit: Option<TimeLimit>,
    pub packing: Option<Packing>,
    pub segment: Option<bool>,
    pub container: Option<RawContainer>,
    pub sbatch: Option<Vec<String>>,
    pub base_port: Option<u16>,
    pub frontend_port: Option<u16>,
    pub templates_dir: Option<String>,
    pub gpu_memory_gb: Option<f64>,
    pub gpu_memory_utilization: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawContainer {
    /// One image, or several (a list) as an axis.
    pub image: serde_json::Value,
    #[serde(default)]
    pub mounts: Vec<String>,
}

/// One role's axes. Every axis takes a scalar or a list; numeric axes also take expressions.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRole {
    pub servers: Option<OneOrMany<Number>>,
    pub tp: Option<OneOrMany<Number>>,
    pub pp: Option<OneOrMany<Number>>,
    pub cp: Option<OneOrMany<Number>>,
    pub parallel: Option<OneOrMany<Parallel>>,
    pub batch: Option<OneOrMany<Number>>,
    pub max_num_tokens: Option<OneOrMany<Number>>,
    pub max_seq_len: Option<OneOrMany<Number>>,
    pub mtp: Option<OneOrMany<Number>>,
    pub eplb: Option<OneOrMany<Number>>,
    pub engine_args: Option<BTreeMap<String, serde_json::Value>>,
    pub env: Option<BTreeMap<String, serde_json::Value>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWorkload {
    pub isl: Option<OneOrMany<Number>>,
    pub osl: Option<OneOrMany<Number>>,
    pub isl_osl: Option<Vec<(Number, Number)>>,
    pub concurrency: Option<OneOrMany<Number>>,
    pub concurrency_per_gen_server: Option<bool>,
    /// Measure each point this many times on the same deployment.
    pub repeats: Option<u32>,
    /// Deploy each configuration this many times, as separate jobs.
    pub deployment_repeats: Option<u32>,
    pub requests: Option<Count>,
    pub warmup: Option<Count>,
    pub endpoint: Option<Endpoint>,
    pub streaming: Option<bool>,
    pub arrival: Option<ArrivalKind>,
    pub request_rate: Option<OneOrMany<f64>>,
    pub prefix_ratio: Option<OneOrMany<f64>>,
    pub prefix_prompts: Option<u32>,
    pub burstiness: Option<f64>,
    pub trace: Option<String>,
    pub trace_block_size: Option<u32>,
    pub trace_speedup: Option<f64>,
    pub isl_stddev: Option<f64>,
    pub osl_stddev: Option<f64>,
    pub seed: Option<u64>,
    pub duration: Option<f64>,
    pub request_timeout: Option<f64>,
    pub extra_body: Option<BTreeMap<String, serde_json::Value>>,
    pub tokenizer: Option<String>,
    pub goodput: Option<RawGoodput>,
    pub dep_ttft_correction: Option<bool>,
    pub load: Option<bool>,
    pub search: Option<RawSearch>,
    pub dataset: Option<RawDataset>,
    pub images: Option<RawImages>,
}

/// `workload.images`: synthetic images with every prompt.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawImages {
    pub count: Option<u32>,
    pub width: u32,
    pub height: u32,
    pub format: Option<ImageFormat>,
}

/// `workload.dataset`: prompts from a file instead of synthetic ones.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDataset {
    pub path: String,
    pub format: Option<DatasetFormat>,
    pub fit_to_isl: Option<bool>,
    pub check: Option<bool>,
}

/// `workload.search`: the highest load that meets the SLOs, found inside one job.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSearch {
    pub axis: SearchAxis,
    pub from: f64,
    pub to: f64,
    /// Metric name to statistic (`p50`, `p90`, `p95`, `p99`, `avg`) to its ceiling in ms.
    #[serde(default)]
    pub slo: BTreeMap<String, BTreeMap<String, f64>>,
    pub stop_when_gain_below: Option<f64>,
    pub resolution: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSweep {
    #[serde(default)]
    pub zip: Vec<Vec<String>>,
    #[serde(default)]
    pub exclude: Vec<BTreeMap<String, OneOrMany<Scalar>>>,
    #[serde(rename = "where")]
    pub filter: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageFormat {
    Png,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DatasetFormat {
    /// One request per line: `text` or OpenAI `messages`, optional images and `output_length`
    /// (aiperf's `single_turn`).
    SingleTurn,
    /// One session per line, `{session_id, turns}` (aiperf's `multi_turn`).
    MultiTurn,
    /// One request per line by length and block ids, or `text_input`; lines sharing a
    /// `session_id` are one session (aiperf's `mooncake_trace`).
    MooncakeTrace,
}

/// Which load a search varies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SearchAxis {
    Concurrency,
    RequestRate,
}

impl SearchAxis {
    pub fn as_str(self) -> &'static str {
        match self {
            SearchAxis::Concurrency => "concurrency",
            SearchAxis::RequestRate => "request_rate",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Agg,
    Disagg,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Agg => "agg",
            Mode::Disagg => "disagg",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    Trtllm,
    Vllm,
    Sglang,
    Dynamo,
    Mock,
    Custom,
}

impl EngineKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EngineKind::Trtllm => "trtllm",
            EngineKind::Vllm => "vllm",
            EngineKind::Sglang => "sglang",
            EngineKind::Dynamo => "dynamo",
            EngineKind::Mock => "mock",
            EngineKind::Custom => "custom",
        }
    }
}

/// The engine behind Dynamo's frontend (`engine.backend` with `kind: dynamo`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DynamoBackend {
    Trtllm,
    Vllm,
    Sglang,
    /// Dynamo's own simulated engine (`python -m dynamo.mocker`): no GPU needed.
    Mocker,
}

impl DynamoBackend {
    pub fn as_str(self) -> &'static str {
        match self {
            DynamoBackend::Trtllm => "trtllm",
            DynamoBackend::Vllm => "vllm",
            DynamoBackend::Sglang => "sglang",
            DynamoBackend::Mocker => "mocker",
        }
    }
}

/// How Dynamo's workers and frontend find each other (`engine.discovery`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Discovery {
    /// An etcd server the frontend's step starts on its node.
    Etcd,
    /// Dynamo's file discovery in a folder of the job's (shared by its nodes): no etcd.
    File,
}

/// How Dynamo's frontend sends requests to its workers (`engine.request_plane`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RequestPlane {
    /// A NATS server the frontend's step starts on its node.
    Nats,
    /// Direct TCP from the frontend to each worker: no NATS.
    Tcp,
}

/// How many SLURM tasks a server gets: one per GPU (MPI-launched engines) or one per node
/// (engines that spawn their own workers).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskMode {
    PerGpu,
    PerNode,
}

/// A number format of weights or KV cache, as far as memory goes: its width is all the capacity
/// estimate needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
pub enum Dtype {
    #[serde(rename = "fp32", alias = "float32")]
    Fp32,
    #[serde(rename = "bf16", alias = "bfloat16")]
    Bf16,
    #[serde(rename = "fp16", alias = "float16")]
    Fp16,
    #[serde(rename = "fp8")]
    Fp8,
    #[serde(rename = "fp4")]
    Fp4,
}

impl Dtype {
    /// Bytes per value (FP4 packs two values in a byte).
    pub fn bytes(self) -> f64 {
        match self {
            Dtype::Fp32 => 4.0,
            Dtype::Bf16 | Dtype::Fp16 => 2.0,
            Dtype::Fp8 => 1.0,
            Dtype::Fp4 => 0.5,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Dtype::Fp32 => "fp32",
            Dtype::Bf16 => "bf16",
            Dtype::Fp16 => "fp16",
            Dtype::Fp8 => "fp8",
            Dtype::Fp4 => "fp4",
        }
    }

    /// The names a model's `config.json` (`torch_dtype`, `quantization_config.quant_method`) and
    /// the engines' `--kv-cache-dtype` use; `None` for one it does not know (`auto` included).
    pub fn from_name(name: &str) -> Option<Dtype> {
        let name = name.to_ascii_lowercase();
        Some(match name.as_str() {
            "float32" | "fp32" | "float" => Dtype::Fp32,
            "bfloat16" | "bf16" => Dtype::Bf16,
            "float16" | "fp16" | "half" => Dtype::Fp16,
            n if n.starts_with("fp8") || n.starts_with("float8") => Dtype::Fp8,
            n if n.contains("fp4") => Dtype::Fp4,
            _ => return None,
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Packing {
    Spread,
    Packed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Parallel {
    Tep,
    Dep,
}

impl Parallel {
    pub fn as_str(self) -> &'static str {
        match self {
            Parallel::Tep => "tep",
            Parallel::Dep => "dep",
        }
    }
}

/// A numeric axis value: an integer, or an expression evaluated per point.
#[derive(Clone, Debug, PartialEq)]
pub enum Number {
    Int(i64),
    Expr(String),
}

impl<'de> Deserialize<'de> for Number {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NumberVisitor;
        impl Visitor<'_> for NumberVisitor {
            type Value = Number;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an integer or an expression string")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Number, E> {
                Ok(Number::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Number, E> {
                i64::try_from(v).map(Number::Int).map_err(|_| E::custom(format!("{v} is too large")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Number, E> {
                Ok(Number::Expr(v.to_owned()))
            }
        }
        deserializer.deserialize_any(NumberVisitor)
    }
}

/// A value in an `exclude` entry: an integer or a string (e.g. `dep`).
#[derive(Clone, Debug, PartialEq)]
pub enum Scalar {
    Int(i64),
    Str(String),
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Number::deserialize(deserializer)? {
            Number::Int(v) => Ok(Scalar::Int(v)),
            Number::Expr(s) => Ok(Scalar::Str(s)),
        }
    }
}

/// `"10x"` (a multiple of the effective concurrency) or a fixed count.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Count {
    PerConcurrency(u64),
    Fixed(u64),
}

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct CountVisitor;
        impl Visitor<'_> for CountVisitor {
            type Value = Count;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a count such as 500, or a multiple of the concurrency such as \"10x\"")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Count, E> {
                Ok(Count::Fixed(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Count, E> {
                u64::try_from(v)
                    .map(Count::Fixed)
                    .map_err(|_| E::custom(format!("a count cannot be negative ({v})")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Count, E> {
                v.strip_suffix('x')
                    .and_then(|n| n.trim().parse::<u64>().ok())
                    .map(Count::PerConcurrency)
                    .ok_or_else(|| E::invalid_value(de::Unexpected::Str(v), &self))
            }
        }
        deserializer.deserialize_any(CountVisitor)
    }
}

/// A SLURM time limit, as minutes or a `[days-]hours:minutes:seconds` style string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimeLimit(pub String);

impl<'de> Deserialize<'de> for TimeLimit {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TimeVisitor;
        impl Visitor<'_> for TimeVisitor {
            type Value = TimeLimit;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("minutes, or a SLURM time such as \"02:00:00\" or \"1-12:00:00\"")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<TimeLimit, E> {
                Ok(TimeLimit(v.to_string()))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<TimeLimit, E> {
                if is_slurm_time(v) {
                    Ok(TimeLimit(v.to_owned()))
                } else {
                    Err(E::invalid_value(de::Unexpected::Str(v), &self))
                }
            }
        }
        deserializer.deserialize_any(TimeVisitor)
    }
}

/// The formats `sbatch --time` accepts: `M`, `M:S`, `H:M:S`, `D-H`, `D-H:M`, `D-H:M:S`.
fn is_slurm_time(text: &str) -> bool {
    let numbers = |part: &str, max_parts: usize| {
        let parts: Vec<&str> = part.split(':').collect();
        parts.len() <= max_parts
            && parts.iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
    };
    match text.split_once('-') {
        Some((days, rest)) => numbers(days, 1) && numbers(rest, 3),
        None => numbers(text, 3),
    }
}

/// A scalar or a list of them; a scalar is a list of one. The flag says whether a list was
/// written, which decides whether an item's position is `key` or `key[i]`.
#[derive(Clone, Debug, PartialEq)]
pub struct OneOrMany<T>(pub Vec<T>, pub bool);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for OneOrMany<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct OneOrManyVisitor<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for OneOrManyVisitor<T> {
            type Value = OneOrMany<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a value or a list of values")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(OneOrMany(items, true))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map)).map(|v| OneOrMany(vec![v], false))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                T::deserialize(v.into_deserializer()).map(|v| OneOrMany(vec![v], false))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                T::deserialize(v.into_deserializer()).map(|v| OneOrMany(vec![v], false))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                T::deserialize(v.into_deserializer()).map(|v| OneOrMany(vec![v], false))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                T::deserialize(v.into_deserializer()).map(|v| OneOrMany(vec![v], false))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                T::deserialize(v.into_deserializer()).map(|v| OneOrMany(vec![v], false))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Err(E::invalid_type(de::Unexpected::Unit, &self))
            }
        }
        deserializer.deserialize_any(OneOrManyVisitor(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slurm_time_formats() {
        for ok in ["30", "30:00", "02:00:00", "1-12", "1-12:30", "1-12:30:00"] {
            assert!(is_slurm_time(ok), "{ok}");
        }
        for bad in ["", "2h", "1:2:3:4", "-1", "1-", "a-1", "1--2", "01:00:"] {
            assert!(!is_slurm_time(bad), "{bad}");
        }
    }

    #[test]
    fn one_or_many_accepts_both_shapes() {
        let one: OneOrMany<Number> = serde_yaml::from_str("4").expect("scalar");
        assert_eq!(one.0, vec![Number::Int(4)]);
        let many: OneOrMany<Number> = serde_yaml::from_str("[1, \"batch * 2\"]").expect("list");
        assert_eq!(many.0, vec![Number::Int(1), Number::Expr("batch * 2".into())]);
        let parallel: OneOrMany<Parallel> = serde_yaml::from_str("[tep, dep]").expect("enum list");
        assert_eq!(parallel.0, vec![Parallel::Tep, Parallel::Dep]);
        assert!(serde_yaml::from_str::<OneOrMany<Number>>("1.5").is_err());
    }

    #[test]
    fn counts() {
        assert_eq!(serde_yaml::from_str::<Count>("\"10x\"").ok(), Some(Count::PerConcurrency(10)));
        assert_eq!(serde_yaml::from_str::<Count>("500").ok(), Some(Count::Fixed(500)));
        assert!(serde_yaml::from_str::<Count>("ten").is_err());
        assert!(serde_yaml::from_str::<Count>("-1").is_err());
    }
}

/// `slurm`: each job is an sbatch script. `local`: each job's roles are processes on this
/// machine, one job after another.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ExecutorKind {
    #[default]
    Slurm,
    Local,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Endpoint {
    Chat,
    Completions,
}

/// When requests are sent: a closed loop at the point's concurrency, or an open loop at
/// `request_rate` (the concurrency then caps what is in flight), or a trace's timestamps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ArrivalKind {
    Closed,
    Constant,
    Poisson,
    Gamma,
    Trace,
}
