//! What the folder records of the spec and the plan, in types of its own: the load, health and
//! metrics settings, the model, a role's derived settings and a point, as `job.json`,
//! `metadata.json`, `point.json`, `search.json` and `plan.json` carry them.
//!
//! The spec and the plan keep their own types, free to change shape; the conversions below are
//! the one place where a change there meets the folder's format. They convert field by field
//! with exhaustive struct literals and matches, so a field or variant added to a spec type does
//! not compile until it is given a place here (and, if that changes what is written, a format
//! bump: `tests/formats.rs` holds each file's written form per format).
//!
//! Ids stay [`sweep_plan::Id`]: 16 hex digits is the identity every part of `sweep` shares, not
//! a shape that can drift.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sweep_plan::Id;

/// An enum written as one word, mirroring a spec enum variant for variant.
macro_rules! words {
    ($(#[$doc:meta])* $name:ident mirrors $spec:path { $($variant:ident = $word:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum $name {
            $(#[serde(rename = $word)] $variant),+
        }

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $word),+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl From<$spec> for $name {
            fn from(value: $spec) -> Self {
                use $spec as Spec;
                match value {
                    $(Spec::$variant => $name::$variant),+
                }
            }
        }

        impl From<$name> for $spec {
            fn from(value: $name) -> Self {
                use $spec as Spec;
                match value {
                    $($name::$variant => Spec::$variant),+
                }
            }
        }
    };
}

words! {
    /// Aggregated or disaggregated.
    Mode mirrors sweep_spec::Mode { Agg = "agg", Disagg = "disagg" }
}
words! {
    /// A server role of a job.
    Role mirrors sweep_spec::Role { Agg = "agg", Ctx = "ctx", Gen = "gen" }
}

impl Role {
    /// The name the in-job roles use (`DISAGG_SERVING_TYPE`).
    pub fn serving_type(self) -> &'static str {
        sweep_spec::Role::from(self).serving_type()
    }
}

words! {
    /// TEP or DEP.
    Parallel mirrors sweep_spec::Parallel { Tep = "tep", Dep = "dep" }
}
words! {
    /// The OpenAI API the load is sent to.
    Endpoint mirrors sweep_spec::Endpoint { Chat = "chat", Completions = "completions" }
}
words! {
    /// When requests are sent.
    ArrivalKind mirrors sweep_spec::ArrivalKind {
        Closed = "closed", Constant = "constant", Poisson = "poisson", Gamma = "gamma", Trace = "trace",
    }
}
words! {
    /// Which load a search varies.
    SearchAxis mirrors sweep_spec::SearchAxis { Concurrency = "concurrency", RequestRate = "request_rate" }
}
words! {
    /// A prompt file's layout.
    DatasetFormat mirrors sweep_spec::DatasetFormat {
        SingleTurn = "single_turn", MultiTurn = "multi_turn", MooncakeTrace = "mooncake_trace",
    }
}
words! {
    /// The synthetic images' encoding.
    ImageFormat mirrors sweep_spec::ImageFormat { Png = "png" }
}
words! {
    /// How Dynamo's processes find each other.
    Discovery mirrors sweep_spec::Discovery { Etcd = "etcd", File = "file" }
}
words! {
    /// How Dynamo's frontend reaches its workers.
    RequestPlane mirrors sweep_spec::RequestPlane { Nats = "nats", Tcp = "tcp" }
}
words! {
    /// The weights' number format.
    Dtype mirrors sweep_spec::Dtype { Fp32 = "fp32", Bf16 = "bf16", Fp16 = "fp16", Fp8 = "fp8", Fp4 = "fp4" }
}

/// A request count: fixed (`500`) or a multiple of the effective concurrency (`"10x"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    PerConcurrency(u64),
    Fixed(u64),
}

impl Serialize for Count {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Count::Fixed(n) => s.serialize_u64(*n),
            Count::PerConcurrency(k) => s.serialize_str(&format!("{k}x")),
        }
    }
}

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Wire {
            Fixed(u64),
            Text(String),
        }
        match Wire::deserialize(d)? {
            Wire::Fixed(n) => Ok(Count::Fixed(n)),
            Wire::Text(text) => {
                text.strip_suffix('x').and_then(|k| k.parse().ok()).map(Count::PerConcurrency).ok_or_else(
                    || serde::de::Error::custom(format!("a count is a number or `<k>x`, not `{text}`")),
                )
            }
        }
    }
}

impl From<sweep_spec::Count> for Count {
    fn from(count: sweep_spec::Count) -> Self {
        match count {
            sweep_spec::Count::Fixed(n) => Count::Fixed(n),
            sweep_spec::Count::PerConcurrency(k) => Count::PerConcurrency(k),
        }
    }
}

impl From<Count> for sweep_spec::Count {
    fn from(count: Count) -> Self {
        match count {
            Count::Fixed(n) => sweep_spec::Count::Fixed(n),
            Count::PerConcurrency(k) => sweep_spec::Count::PerConcurrency(k),
        }
    }
}

/// The served model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Model {
    pub path: String,
    pub served_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dtype: Option<Dtype>,
}

impl From<&sweep_spec::Model> for Model {
    fn from(m: &sweep_spec::Model) -> Self {
        let sweep_spec::Model { path, served_name, config, dtype } = m;
        Model {
            path: path.clone(),
            served_name: served_name.clone(),
            config: config.clone(),
            dtype: dtype.map(Dtype::from),
        }
    }
}

/// Dynamo's discovery and request planes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DynamoPlanes {
    pub discovery: Discovery,
    pub request_plane: RequestPlane,
}

impl From<sweep_spec::DynamoPlanes> for DynamoPlanes {
    fn from(p: sweep_spec::DynamoPlanes) -> Self {
        let sweep_spec::DynamoPlanes { discovery, request_plane } = p;
        DynamoPlanes { discovery: discovery.into(), request_plane: request_plane.into() }
    }
}

words! {
    /// Which of lm-eval's OpenAI clients talks to the job.
    LmEvalModel mirrors sweep_spec::LmEvalModel {
        LocalCompletions = "local-completions", LocalChatCompletions = "local-chat-completions",
    }
}

/// `accuracy`: what the benchmark step asks the servers after the job's performance points.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Accuracy {
    /// `builtin`, or the questions file's absolute path; `None`: lm-eval only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub questions: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    pub max_tokens: u32,
    pub concurrency: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_score: Option<f64>,
    /// Seconds for the whole step.
    pub timeout: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lm_eval: Option<LmEval>,
}

/// `accuracy.lm_eval`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LmEval {
    pub tasks: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    pub model: LmEvalModel,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_fewshot: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_args: Option<String>,
    pub command: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
}

impl From<&sweep_spec::Accuracy> for Accuracy {
    fn from(a: &sweep_spec::Accuracy) -> Self {
        let sweep_spec::Accuracy { questions, limit, max_tokens, concurrency, min_score, timeout, lm_eval } =
            a;
        Accuracy {
            questions: questions.clone(),
            limit: *limit,
            max_tokens: *max_tokens,
            concurrency: *concurrency,
            min_score: *min_score,
            timeout: *timeout,
            lm_eval: lm_eval.as_ref().map(|l| {
                let sweep_spec::LmEval {
                    tasks,
                    limit,
                    model,
                    num_fewshot,
                    metric,
                    model_args,
                    command,
                    args,
                } = l;
                LmEval {
                    tasks: tasks.clone(),
                    limit: *limit,
                    model: (*model).into(),
                    num_fewshot: *num_fewshot,
                    metric: metric.clone(),
                    model_args: model_args.clone(),
                    command: command.clone(),
                    args: args.clone(),
                }
            }),
        }
    }
}

/// How the benchmark step decides a server is ready.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Health {
    pub path: Option<String>,
    /// Seconds between polls.
    pub interval: f64,
    /// Seconds before giving up on a server.
    pub timeout: f64,
}

impl Default for Health {
    fn default() -> Self {
        (&sweep_spec::Health::default()).into()
    }
}

impl From<&sweep_spec::Health> for Health {
    fn from(h: &sweep_spec::Health) -> Self {
        let sweep_spec::Health { path, interval, timeout } = h;
        Health { path: path.clone(), interval: *interval, timeout: *timeout }
    }
}

/// How the benchmark step scrapes the servers' Prometheus endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Metrics {
    pub path: Option<String>,
    pub interval_ms: u64,
    /// GPU telemetry's sampling interval; `None`: off.
    pub gpu_interval_ms: Option<u64>,
    /// A DCGM exporter's URL (`{host}` for each node), read instead of `nvidia-smi` (format 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dcgm_url: Option<String>,
}

impl Default for Metrics {
    fn default() -> Self {
        (&sweep_spec::Metrics::default()).into()
    }
}

impl From<&sweep_spec::Metrics> for Metrics {
    fn from(m: &sweep_spec::Metrics) -> Self {
        let sweep_spec::Metrics { path, interval_ms, gpu_interval_ms, dcgm_url } = m;
        Metrics {
            path: path.clone(),
            interval_ms: *interval_ms,
            gpu_interval_ms: *gpu_interval_ms,
            dcgm_url: dcgm_url.clone(),
        }
    }
}

/// The client-side SLOs of goodput, in milliseconds.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Goodput {
    pub time_to_first_token: Option<f64>,
    pub inter_token_latency: Option<f64>,
    pub request_latency: Option<f64>,
}

/// How the benchmark step generates load: `workload.*` beyond the axes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Load {
    pub endpoint: Endpoint,
    pub streaming: bool,
    pub arrival: ArrivalKind,
    /// Always `null`: written because format 1 wrote it (each point carries its own rate).
    #[serde(rename = "request_rate", skip_deserializing)]
    pub no_rate: Option<()>,
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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokenizer: Option<String>,
    pub goodput: Goodput,
    pub dep_ttft_correction: bool,
    pub enabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub search: Option<Search>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dataset: Option<Dataset>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub images: Option<Images>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix_prompts: Option<u32>,
}

impl Default for Load {
    fn default() -> Self {
        (&sweep_spec::Load::default()).into()
    }
}

impl From<&sweep_spec::Load> for Load {
    fn from(l: &sweep_spec::Load) -> Self {
        let sweep_spec::Load {
            endpoint,
            streaming,
            arrival,
            hashed_rate: _,
            burstiness,
            trace,
            trace_block_size,
            trace_speedup,
            isl_stddev,
            osl_stddev,
            seed,
            duration,
            request_timeout,
            extra_body,
            tokenizer,
            goodput,
            dep_ttft_correction,
            enabled,
            search,
            dataset,
            images,
            prefix_prompts,
        } = l;
        let sweep_spec::Goodput { time_to_first_token, inter_token_latency, request_latency } = goodput;
        Load {
            endpoint: (*endpoint).into(),
            streaming: *streaming,
            arrival: (*arrival).into(),
            no_rate: None,
            burstiness: *burstiness,
            trace: trace.clone(),
            trace_block_size: *trace_block_size,
            trace_speedup: *trace_speedup,
            isl_stddev: *isl_stddev,
            osl_stddev: *osl_stddev,
            seed: *seed,
            duration: *duration,
            request_timeout: *request_timeout,
            extra_body: extra_body.clone(),
            tokenizer: tokenizer.clone(),
            goodput: Goodput {
                time_to_first_token: *time_to_first_token,
                inter_token_latency: *inter_token_latency,
                request_latency: *request_latency,
            },
            dep_ttft_correction: *dep_ttft_correction,
            enabled: *enabled,
            search: search.as_ref().map(Search::from),
            dataset: dataset.as_ref().map(Dataset::from),
            images: images.map(Images::from),
            prefix_prompts: *prefix_prompts,
        }
    }
}

impl From<&Load> for sweep_spec::Load {
    /// Back to the spec's form, for what the plan computes from the settings (a search step's
    /// id hashes them).
    fn from(l: &Load) -> Self {
        let Goodput { time_to_first_token, inter_token_latency, request_latency } = &l.goodput;
        sweep_spec::Load {
            endpoint: l.endpoint.into(),
            streaming: l.streaming,
            arrival: l.arrival.into(),
            hashed_rate: None,
            burstiness: l.burstiness,
            trace: l.trace.clone(),
            trace_block_size: l.trace_block_size,
            trace_speedup: l.trace_speedup,
            isl_stddev: l.isl_stddev,
            osl_stddev: l.osl_stddev,
            seed: l.seed,
            duration: l.duration,
            request_timeout: l.request_timeout,
            extra_body: l.extra_body.clone(),
            tokenizer: l.tokenizer.clone(),
            goodput: sweep_spec::Goodput {
                time_to_first_token: *time_to_first_token,
                inter_token_latency: *inter_token_latency,
                request_latency: *request_latency,
            },
            dep_ttft_correction: l.dep_ttft_correction,
            enabled: l.enabled,
            search: l.search.as_ref().map(sweep_spec::Search::from),
            dataset: l.dataset.as_ref().map(|d| sweep_spec::Dataset {
                path: d.path.clone(),
                format: d.format.into(),
                fit_to_isl: d.fit_to_isl,
                check: false,
            }),
            images: l.images.map(|i| sweep_spec::Images {
                count: i.count,
                width: i.width,
                height: i.height,
                format: i.format.into(),
            }),
            prefix_prompts: l.prefix_prompts,
        }
    }
}

/// A search for the highest load meeting the SLOs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Search {
    pub axis: SearchAxis,
    pub from: f64,
    pub to: f64,
    pub slo: Vec<Slo>,
    pub stop_when_gain_below: Option<f64>,
    pub resolution: f64,
    pub requests: Count,
    pub warmup: Count,
}

impl From<&sweep_spec::Search> for Search {
    fn from(s: &sweep_spec::Search) -> Self {
        let sweep_spec::Search { axis, from, to, slo, stop_when_gain_below, resolution, requests, warmup } =
            s;
        Search {
            axis: (*axis).into(),
            from: *from,
            to: *to,
            slo: slo
                .iter()
                .map(|sweep_spec::Slo { metric, stat, max_ms }| Slo {
                    metric: metric.clone(),
                    stat: stat.clone(),
                    max_ms: *max_ms,
                })
                .collect(),
            stop_when_gain_below: *stop_when_gain_below,
            resolution: *resolution,
            requests: (*requests).into(),
            warmup: (*warmup).into(),
        }
    }
}

impl From<&Search> for sweep_spec::Search {
    fn from(s: &Search) -> Self {
        sweep_spec::Search {
            axis: s.axis.into(),
            from: s.from,
            to: s.to,
            slo: s
                .slo
                .iter()
                .map(|slo| sweep_spec::Slo {
                    metric: slo.metric.clone(),
                    stat: slo.stat.clone(),
                    max_ms: slo.max_ms,
                })
                .collect(),
            stop_when_gain_below: s.stop_when_gain_below,
            resolution: s.resolution,
            requests: s.requests.into(),
            warmup: s.warmup.into(),
        }
    }
}

/// One service-level objective: `metric`'s `stat` at most `max_ms`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Slo {
    pub metric: String,
    pub stat: String,
    pub max_ms: f64,
}

/// Prompts from a file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dataset {
    pub path: String,
    pub format: DatasetFormat,
    pub fit_to_isl: bool,
}

impl From<&sweep_spec::Dataset> for Dataset {
    fn from(d: &sweep_spec::Dataset) -> Self {
        // `check` is what `sweep submit` does before submitting, not part of the job.
        let sweep_spec::Dataset { path, format, fit_to_isl, check: _ } = d;
        Dataset { path: path.clone(), format: (*format).into(), fit_to_isl: *fit_to_isl }
    }
}

/// Synthetic images sent with every synthetic prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Images {
    pub count: u32,
    pub width: u32,
    pub height: u32,
    pub format: ImageFormat,
}

impl From<sweep_spec::Images> for Images {
    fn from(i: sweep_spec::Images) -> Self {
        let sweep_spec::Images { count, width, height, format } = i;
        Images { count, width, height, format: format.into() }
    }
}

/// One role's settings for a job, after derivation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RoleConfig {
    pub role: Role,
    pub servers: u32,
    pub tp: u32,
    pub pp: u32,
    pub cp: u32,
    pub parallel: Parallel,
    pub batch: u32,
    pub max_num_tokens: Option<u32>,
    pub max_seq_len: Option<u32>,
    pub mtp: u32,
    pub eplb: u32,
}

impl RoleConfig {
    /// GPUs of one server.
    pub fn world_size(&self) -> u64 {
        u64::from(self.tp) * u64::from(self.pp) * u64::from(self.cp)
    }
}

impl From<&sweep_plan::RoleConfig> for RoleConfig {
    fn from(r: &sweep_plan::RoleConfig) -> Self {
        let sweep_plan::RoleConfig {
            role,
            servers,
            tp,
            pp,
            cp,
            parallel,
            batch,
            max_num_tokens,
            max_seq_len,
            mtp,
            eplb,
        } = r;
        RoleConfig {
            role: (*role).into(),
            servers: *servers,
            tp: *tp,
            pp: *pp,
            cp: *cp,
            parallel: (*parallel).into(),
            batch: *batch,
            max_num_tokens: *max_num_tokens,
            max_seq_len: *max_seq_len,
            mtp: *mtp,
            eplb: *eplb,
        }
    }
}

/// One measurement, as planned (or a search's step, as the runner made it).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Point {
    pub id: Id,
    pub isl: u32,
    pub osl: u32,
    /// As listed in the spec.
    pub concurrency: u32,
    /// What the load generator runs.
    pub effective_concurrency: u64,
    /// The open loop's rate in requests/s; `None` for a closed loop or a trace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_rate: Option<f64>,
    /// The share of each synthetic prompt that is a shared prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix_ratio: Option<f64>,
    pub requests: u64,
    pub warmup: u64,
    /// A search's step: the id of the planned point that searches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search: Option<Id>,
    /// Which measurement of the point this is (`workload.repeats`), from 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub repeat: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl From<&sweep_plan::Point> for Point {
    fn from(p: &sweep_plan::Point) -> Self {
        let sweep_plan::Point {
            id,
            job: _,
            isl,
            osl,
            concurrency,
            effective_concurrency,
            request_rate,
            prefix_ratio,
            requests,
            warmup,
            search,
            repeat,
        } = *p;
        Point {
            id,
            isl,
            osl,
            concurrency,
            effective_concurrency,
            request_rate: request_rate.map(|r| r.0),
            prefix_ratio: prefix_ratio.map(|r| r.0),
            requests,
            warmup,
            search,
            repeat,
        }
    }
}

impl Point {
    /// The step of this planned point's search at `load`, planned by `sweep_plan` beside every
    /// other point (so a rerun of the same search gives the same step ids). `job` is the job's
    /// id and `load_settings` the job's load, which the step's id hashes.
    pub fn search_step(&self, job: Id, load_settings: &Load, search: &Search, load: f64) -> Point {
        let planned = sweep_plan::Point {
            id: self.id,
            job: 0,
            isl: self.isl,
            osl: self.osl,
            concurrency: self.concurrency,
            effective_concurrency: self.effective_concurrency,
            request_rate: self.request_rate.map(sweep_spec::Rate),
            prefix_ratio: self.prefix_ratio.map(sweep_spec::Ratio),
            requests: self.requests,
            warmup: self.warmup,
            search: self.search,
            repeat: self.repeat,
        };
        let step = planned.search_step(job, &load_settings.into(), &search.into(), load);
        Point::from(&step)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The folder's form of the load settings is the spec's, key for key: point ids hash the
    /// spec's, and files written before the folder had types of its own carry it.
    #[test]
    fn the_load_settings_are_written_as_the_spec_wrote_them() {
        let mut spec = sweep_spec::Load { seed: 7, tokenizer: Some("tok.json".into()), ..Default::default() };
        spec.search = Some(sweep_spec::Search {
            axis: sweep_spec::SearchAxis::RequestRate,
            from: 1.0,
            to: 64.0,
            slo: vec![sweep_spec::Slo {
                metric: "time_to_first_token".into(),
                stat: "p99".into(),
                max_ms: 2000.0,
            }],
            stop_when_gain_below: Some(0.05),
            resolution: 0.1,
            requests: sweep_spec::Count::PerConcurrency(10),
            warmup: sweep_spec::Count::Fixed(4),
        });
        spec.dataset = Some(sweep_spec::Dataset {
            path: "p.jsonl".into(),
            format: sweep_spec::DatasetFormat::MooncakeTrace,
            fit_to_isl: true,
            check: false,
        });
        spec.images = Some(sweep_spec::Images {
            count: 2,
            width: 64,
            height: 32,
            format: sweep_spec::ImageFormat::Png,
        });
        let ours = Load::from(&spec);
        assert_eq!(serde_json::to_value(&ours).expect("json"), serde_json::to_value(&spec).expect("json"));
        assert_eq!(sweep_spec::Load::from(&ours), spec, "and back again");
        let read: Load = serde_json::from_value(serde_json::to_value(&spec).expect("json")).expect("json");
        assert_eq!(read, ours);
        assert_eq!(
            serde_json::to_value(Load::default()).expect("json"),
            serde_json::to_value(sweep_spec::Load::default()).expect("json")
        );
    }

    #[test]
    fn counts_read_as_numbers_or_multiples() {
        assert_eq!(serde_json::from_str::<Count>("500").expect("json"), Count::Fixed(500));
        assert_eq!(serde_json::from_str::<Count>("\"10x\"").expect("json"), Count::PerConcurrency(10));
        assert_eq!(serde_json::to_string(&Count::PerConcurrency(3)).expect("json"), "\"3x\"");
        let error = serde_json::from_str::<Count>("\"ten\"").expect_err("refused").to_string();
        assert!(error.contains("not `ten`"), "{error}");
    }
}
