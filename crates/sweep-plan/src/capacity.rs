//! The capacity check: does each point's KV cache fit its servers' GPUs?
//!
//! An estimate from the model's shape (its `config.json`, read by the caller: this module does no
//! I/O). Weights are counted from hidden size, layers, heads, experts and vocabulary; KV bytes per
//! token from layers × KV heads × head dim × 2 (K and V), or the compressed latent for MLA. What
//! is left of `gpu_memory_gb × gpu_memory_utilization` after the weights holds the KV cache.
//! Activations, CUDA graphs and the engine's own workspace are not counted, so the estimate is
//! an upper bound on capacity: a point it finds over surely does not fit; one it passes may still
//! not. See `docs/layout.md` for the arithmetic.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;
use serde_json::Value as Json;
use sweep_spec::{Dtype, KeyPath, Parallel, Role, Spec};

use crate::{Id, Job, Plan, PlanError, Point, RoleConfig, Warning};

const GIB: f64 = (1u64 << 30) as f64;

/// What the estimate reads of a model's `config.json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelShape {
    pub hidden: u64,
    pub layers: u64,
    pub heads: u64,
    pub kv_heads: u64,
    pub head_dim: u64,
    pub vocab: u64,
    /// The dense MLP's width.
    pub intermediate: u64,
    pub tie_embeddings: bool,
    pub moe: Option<Moe>,
    pub mla: Option<Mla>,
    /// `torch_dtype`: the format of unquantized weights and, unless told otherwise, the KV cache.
    pub dtype: Dtype,
    /// From `quantization_config`: the format of quantized weights.
    pub quantized: Option<Dtype>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Moe {
    /// Routed experts per MoE layer.
    pub experts: u64,
    /// One expert's MLP width.
    pub intermediate: u64,
    pub shared_experts: u64,
    /// The first layers that keep a dense MLP (`first_k_dense_replace`).
    pub dense_layers: u64,
}

/// Multi-head latent attention (DeepSeek): the cache holds one compressed latent per token and
/// layer instead of K and V per head.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Mla {
    pub q_lora_rank: Option<u64>,
    pub kv_lora_rank: u64,
    pub qk_nope_head_dim: u64,
    pub qk_rope_head_dim: u64,
    pub v_head_dim: u64,
}

/// Why a `config.json` gives no estimate.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    #[error("it is not JSON: {0}")]
    Json(String),
    #[error("it has no `{0}`")]
    Missing(&'static str),
    #[error("`{field}` is {value}, which the estimate cannot use")]
    Invalid { field: &'static str, value: String },
}

impl ModelShape {
    /// Reads the shape from a `config.json`'s text. A multimodal config's `text_config` holds
    /// the language model's shape.
    pub fn from_config(text: &str) -> Result<Self, ConfigError> {
        let root: Json = serde_json::from_str(text).map_err(|e| ConfigError::Json(e.to_string()))?;
        let c = root.get("text_config").filter(|t| t.is_object()).unwrap_or(&root);
        let int = |names: &[&'static str]| -> Result<Option<u64>, ConfigError> {
            for &name in names {
                match c.get(name) {
                    None | Some(Json::Null) => continue,
                    Some(v) => {
                        return v
                            .as_u64()
                            .map(Some)
                            .ok_or_else(|| ConfigError::Invalid { field: name, value: v.to_string() })
                    }
                }
            }
            Ok(None)
        };
        let need = |names: &[&'static str]| int(names)?.ok_or(ConfigError::Missing(names[0]));
        let hidden = need(&["hidden_size"])?;
        let layers = need(&["num_hidden_layers"])?;
        let heads = need(&["num_attention_heads"])?;
        let vocab = need(&["vocab_size"])?;
        let intermediate = need(&["intermediate_size"])?;
        if heads == 0 {
            return Err(ConfigError::Invalid { field: "num_attention_heads", value: "0".into() });
        }
        let kv_heads = int(&["num_key_value_heads"])?.unwrap_or(heads);
        let head_dim = int(&["head_dim"])?.unwrap_or(hidden / heads);
        let moe = match int(&["n_routed_experts", "num_local_experts", "num_experts"])? {
            Some(experts) if experts > 0 => Some(Moe {
                experts,
                intermediate: int(&["moe_intermediate_size"])?.unwrap_or(intermediate),
                shared_experts: int(&["n_shared_experts"])?.unwrap_or(0),
                dense_layers: int(&["first_k_dense_replace"])?.unwrap_or(0).min(layers),
            }),
            _ => None,
        };
        let mla = match int(&["kv_lora_rank"])? {
            Some(kv_lora_rank) => Some(Mla {
                q_lora_rank: int(&["q_lora_rank"])?,
                kv_lora_rank,
                qk_nope_head_dim: need(&["qk_nope_head_dim"])?,
                qk_rope_head_dim: need(&["qk_rope_head_dim"])?,
                v_head_dim: need(&["v_head_dim"])?,
            }),
            None => None,
        };
        let text_field = |name: &'static str| {
            c.get(name).or_else(|| root.get(name)).and_then(Json::as_str).map(|s| (name, s))
        };
        let (field, name) = text_field("torch_dtype")
            .or_else(|| text_field("dtype"))
            .ok_or(ConfigError::Missing("torch_dtype"))?;
        let dtype = Dtype::from_name(name).ok_or(ConfigError::Invalid { field, value: name.into() })?;
        let quantized = match root.get("quantization_config").or_else(|| c.get("quantization_config")) {
            Some(q) => Some(quantized_dtype(q)?),
            None => None,
        };
        let tie_embeddings = c
            .get("tie_word_embeddings")
            .or_else(|| root.get("tie_word_embeddings"))
            .and_then(Json::as_bool)
            .unwrap_or(false);
        Ok(ModelShape {
            hidden,
            layers,
            heads,
            kv_heads,
            head_dim,
            vocab,
            intermediate,
            tie_embeddings,
            moe,
            mla,
            dtype,
            quantized,
        })
    }

    /// Parameters by part.
    pub fn params(&self) -> Params {
        let (h, heads) = (self.hidden, self.heads);
        // Two norms per layer (before attention and before the MLP).
        let attention_per_layer = 2 * h
            + match &self.mla {
                Some(m) => {
                    let qk = m.qk_nope_head_dim + m.qk_rope_head_dim;
                    let q = match m.q_lora_rank {
                        // Down-projection, its norm, up-projection.
                        Some(r) => h * r + r + r * heads * qk,
                        None => h * heads * qk,
                    };
                    // The latent and the shared rope key, the latent's norm, its up-projection to
                    // K (no-rope part) and V, and the output.
                    q + h * (m.kv_lora_rank + m.qk_rope_head_dim)
                        + m.kv_lora_rank
                        + m.kv_lora_rank * heads * (m.qk_nope_head_dim + m.v_head_dim)
                        + heads * m.v_head_dim * h
                }
                None => {
                    let (q, kv) = (heads * self.head_dim, self.kv_heads * self.head_dim);
                    h * q + 2 * h * kv + q * h
                }
            };
        // Gate, up and down projections.
        let mlp = |width: u64| 3 * h * width;
        let (dense_layers, experts, moe_shared) = match &self.moe {
            Some(m) => {
                let moe_layers = self.layers - m.dense_layers;
                (
                    m.dense_layers,
                    moe_layers * m.experts * mlp(m.intermediate),
                    // Shared experts and the router.
                    moe_layers * (m.shared_experts * mlp(m.intermediate) + m.experts * h),
                )
            }
            None => (self.layers, 0, 0),
        };
        Params {
            embedding: self.vocab * h * if self.tie_embeddings { 1 } else { 2 },
            // With the final norm.
            attention: self.layers * attention_per_layer + h,
            dense_mlp: dense_layers * mlp(self.intermediate),
            moe_shared,
            experts,
        }
    }

    /// KV-cache values per token and layer on one GPU holding `kv_heads_share` of the heads.
    fn kv_values_per_layer(&self, kv_heads_share: u64) -> u64 {
        match &self.mla {
            Some(m) => m.kv_lora_rank + m.qk_rope_head_dim,
            None => 2 * kv_heads_share * self.head_dim,
        }
    }

    /// KV-cache bytes of one token over the whole model.
    pub fn kv_bytes_per_token(&self, kv: Dtype) -> f64 {
        (self.layers * self.kv_values_per_layer(self.kv_heads)) as f64 * kv.bytes()
    }
}

fn quantized_dtype(q: &Json) -> Result<Dtype, ConfigError> {
    if let Some(bits) = q.get("bits").and_then(Json::as_u64) {
        return match bits {
            4 => Ok(Dtype::Fp4),
            8 => Ok(Dtype::Fp8),
            16 => Ok(Dtype::Bf16),
            _ => Err(ConfigError::Invalid { field: "quantization_config.bits", value: bits.to_string() }),
        };
    }
    let method = q
        .get("quant_method")
        .or_else(|| q.get("quant_algo"))
        .and_then(Json::as_str)
        .ok_or(ConfigError::Missing("quantization_config.quant_method"))?;
    Dtype::from_name(method)
        .ok_or(ConfigError::Invalid { field: "quantization_config.quant_method", value: method.into() })
}

/// A model's parameters by how they split over GPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Params {
    /// Input embedding and output head (one matrix when tied).
    pub embedding: u64,
    /// Attention and norms of every layer.
    pub attention: u64,
    /// The MLPs of dense layers.
    pub dense_mlp: u64,
    /// MoE layers' shared experts and routers.
    pub moe_shared: u64,
    /// Routed experts: split over expert parallelism.
    pub experts: u64,
}

impl Params {
    pub fn total(&self) -> u64 {
        self.embedding + self.attention + self.dense_mlp + self.moe_shared + self.experts
    }
}

/// The cluster's side of the estimate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Settings {
    pub gpu_memory_gb: f64,
    pub gpu_memory_utilization: f64,
    /// The weights' format: `model.dtype`, else the config's quantization, else its `torch_dtype`.
    pub weight_dtype: Dtype,
}

impl Settings {
    pub fn new(spec: &Spec, shape: &ModelShape, gpu_memory_gb: f64) -> Self {
        Settings {
            gpu_memory_gb,
            gpu_memory_utilization: spec.cluster.gpu_memory_utilization,
            weight_dtype: spec.model.dtype.or(shape.quantized).unwrap_or(shape.dtype),
        }
    }
}

/// One role's servers, as the estimate sees them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RoleCapacity {
    pub role: Role,
    pub kv_dtype: Dtype,
    pub weights_gib_per_gpu: f64,
    /// What `gpu_memory_gb × gpu_memory_utilization` leaves after the weights (negative when the
    /// weights alone do not fit).
    pub kv_budget_gib_per_gpu: f64,
    pub kv_bytes_per_token_per_gpu: f64,
    /// Tokens one holder caches: a TEP server (its GPUs each hold a slice of every token) or a
    /// DEP rank (each holds its own sequences).
    pub capacity_tokens: u64,
    pub holder: Holder,
    /// Holders of the role in the job: servers, or servers × ranks.
    pub holders: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Holder {
    Server,
    Rank,
}

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Holder::Server => "server",
            Holder::Rank => "rank",
        })
    }
}

/// Estimates one role's capacity. `kv_dtype`: the cache's format.
pub fn role_capacity(
    shape: &ModelShape,
    role: &RoleConfig,
    settings: &Settings,
    kv_dtype: Dtype,
) -> RoleCapacity {
    let params = shape.params();
    let (tp, pp, cp) = (u64::from(role.tp.max(1)), u64::from(role.pp.max(1)), u64::from(role.cp.max(1)));
    // TEP splits everything over TP (experts over EP = TP); DEP keeps attention, embeddings and
    // dense parts whole on every rank and splits the experts over EP = TP. Pipeline stages each
    // hold their share of the layers; context parallelism splits tokens, not weights.
    let per_gpu = match role.parallel {
        Parallel::Tep => params.total() as f64 / (tp * pp) as f64,
        Parallel::Dep => {
            (params.total() - params.experts) as f64 / pp as f64 + params.experts as f64 / (tp * pp) as f64
        }
    };
    let weights = per_gpu * settings.weight_dtype.bytes();
    let budget = settings.gpu_memory_gb * GIB * settings.gpu_memory_utilization - weights;
    // Under TEP each GPU caches its share of the KV heads (all of them once TP exceeds the heads:
    // they are replicated); MLA's latent is not split by TP. Under DEP a rank holds every head of
    // its own sequences.
    let heads_share = match role.parallel {
        Parallel::Tep => shape.kv_heads.div_ceil(tp),
        Parallel::Dep => shape.kv_heads,
    };
    let layers = shape.layers.div_ceil(pp);
    let kv_per_token =
        (layers * shape.kv_values_per_layer(heads_share)) as f64 * kv_dtype.bytes() / cp as f64;
    let capacity_tokens = if budget > 0.0 { (budget / kv_per_token).floor() as u64 } else { 0 };
    let (holder, holders) = match role.parallel {
        Parallel::Tep => (Holder::Server, u64::from(role.servers)),
        Parallel::Dep => (Holder::Rank, u64::from(role.servers) * tp),
    };
    RoleCapacity {
        role: role.role,
        kv_dtype,
        weights_gib_per_gpu: weights / GIB,
        kv_budget_gib_per_gpu: budget / GIB,
        kv_bytes_per_token_per_gpu: kv_per_token,
        capacity_tokens,
        holder,
        holders,
    }
}

/// What one point asks of one role's holders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Demand {
    /// Sequences one holder runs at once: its batch, or fewer when the point keeps fewer in
    /// flight.
    pub sequences: u64,
    /// A CTX server holds the prompt only (it hands the request to GEN); others the prompt and
    /// the whole output.
    pub tokens_per_sequence: u64,
}

impl Demand {
    pub fn of(role: &RoleConfig, capacity: &RoleCapacity, point: &Point) -> Self {
        let in_flight = point.effective_concurrency.div_ceil(capacity.holders.max(1));
        let tokens_per_sequence = match role.role {
            Role::Ctx => u64::from(point.isl),
            _ => u64::from(point.isl) + u64::from(point.osl),
        };
        Demand { sequences: u64::from(role.batch).min(in_flight).max(1), tokens_per_sequence }
    }

    pub fn tokens(&self) -> u64 {
        self.sequences * self.tokens_per_sequence
    }
}

/// A point that does not fit one of its roles.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Shortfall {
    pub point: Id,
    pub job: String,
    pub role: Role,
    pub isl: u32,
    pub osl: u32,
    pub sequences: u64,
    pub tokens_per_sequence: u64,
    pub demand_tokens: u64,
    pub capacity_tokens: u64,
}

/// The estimate over a whole plan.
#[derive(Debug, Clone, Serialize)]
pub struct Assessment {
    pub model: ModelShape,
    pub params: u64,
    pub settings: Settings,
    /// Per job (in the plan's order), per role.
    #[serde(skip)]
    pub jobs: Vec<Vec<RoleCapacity>>,
    /// Points that do not fit, kept in the plan unless pruned.
    pub over: Vec<Shortfall>,
    /// Whether `over` was dropped from the plan (`--prune-infeasible`).
    pub pruned: bool,
}

/// The KV cache's format for a role: its `engine_args` `kv_cache_dtype` (vLLM, SGLang) or
/// `kv_cache_config.dtype` (TensorRT-LLM) when it names one, else the model's `torch_dtype`.
pub fn kv_dtype(engine_args: &BTreeMap<String, Json>, shape: &ModelShape) -> Dtype {
    engine_args
        .get("kv_cache_dtype")
        .or_else(|| engine_args.get("kv_cache_config").and_then(|c| c.get("dtype")))
        .and_then(Json::as_str)
        .and_then(Dtype::from_name)
        .unwrap_or(shape.dtype)
}

/// Estimates every job's capacity and finds the points that do not fit; with `prune`, drops them
/// (and jobs left with no point). Each role with points over gets a warning with the arithmetic.
pub fn assess(
    spec: &Spec,
    mut plan: Plan,
    shape: &ModelShape,
    settings: &Settings,
    prune: bool,
) -> Result<Plan, PlanError> {
    let mut jobs = Vec::with_capacity(plan.jobs.len());
    let mut over = Vec::new();
    let mut warnings = Vec::new();
    for job in &plan.jobs {
        let roles: Vec<RoleCapacity> = job
            .roles
            .iter()
            .map(|r| {
                let args = spec.roles.iter().find(|s| s.role == r.role).map(|s| &s.engine_args);
                let kv = args.map_or(shape.dtype, |a| kv_dtype(a, shape));
                role_capacity(shape, r, settings, kv)
            })
            .collect();
        for (config, capacity) in job.roles.iter().zip(&roles) {
            let mut role_over: Vec<Shortfall> = plan.points[job.points.clone()]
                .iter()
                .filter_map(|p| {
                    let demand = Demand::of(config, capacity, p);
                    (demand.tokens() > capacity.capacity_tokens).then(|| Shortfall {
                        point: p.id,
                        job: job.name.clone(),
                        role: config.role,
                        isl: p.isl,
                        osl: p.osl,
                        sequences: demand.sequences,
                        tokens_per_sequence: demand.tokens_per_sequence,
                        demand_tokens: demand.tokens(),
                        capacity_tokens: capacity.capacity_tokens,
                    })
                })
                .collect();
            if !role_over.is_empty() {
                warnings.push(warning(job, settings, capacity, &role_over, prune));
            }
            over.append(&mut role_over);
        }
        jobs.push(roles);
    }
    if prune && !over.is_empty() {
        let dropped: std::collections::HashSet<Id> = over.iter().map(|s| s.point).collect();
        let (kept_jobs, kept_capacity) = retain_points(&mut plan, |p| !dropped.contains(&p.id), jobs);
        jobs = kept_capacity;
        plan.stats.infeasible = dropped.len() as u64;
        if kept_jobs == 0 {
            let reasons = warnings.into_iter().map(|w| w.message).collect();
            return Err(PlanError::NothingFits { points: dropped.len() as u64, reasons });
        }
    }
    plan.warnings.extend(warnings);
    plan.capacity = Some(Assessment {
        model: shape.clone(),
        params: shape.params().total(),
        settings: *settings,
        jobs,
        over,
        pruned: prune,
    });
    Ok(plan)
}

/// One warning per job and role: how many points are over, and the arithmetic of the largest.
fn warning(
    job: &Job,
    settings: &Settings,
    capacity: &RoleCapacity,
    over: &[Shortfall],
    prune: bool,
) -> Warning {
    let total = job.points.len();
    let worst = over.iter().max_by_key(|s| s.demand_tokens).expect("over is not empty");
    let role = capacity.role.as_str().to_uppercase();
    let memory = format!("{} GiB × {}", trim(settings.gpu_memory_gb), trim(settings.gpu_memory_utilization));
    let why = if capacity.kv_budget_gib_per_gpu <= 0.0 {
        format!(
            "the weights alone, {:.2} GiB per GPU in {}, do not fit in {memory}",
            capacity.weights_gib_per_gpu,
            settings.weight_dtype.as_str()
        )
    } else {
        format!(
            "{} sequences × {} tokens = {} tokens, and a {} holds {} = ({memory} − {:.2} GiB of {} weights per GPU) / {} bytes of {} KV per token per GPU",
            worst.sequences,
            worst.tokens_per_sequence,
            worst.demand_tokens,
            capacity.holder,
            capacity.capacity_tokens,
            capacity.weights_gib_per_gpu,
            settings.weight_dtype.as_str(),
            trim(capacity.kv_bytes_per_token_per_gpu),
            capacity.kv_dtype.as_str(),
        )
    };
    let action = if prune { "dropped by --prune-infeasible" } else { "kept; --prune-infeasible drops them" };
    Warning {
        path: KeyPath::keys(capacity.role.as_str()).key("batch"),
        message: format!(
            "job `{}`: {} of {total} point{} need more KV cache than one {role} {} holds ({action}); the largest, isl {} osl {}: {why}",
            job.name,
            over.len(),
            if total == 1 { "" } else { "s" },
            capacity.holder,
            worst.isl,
            worst.osl,
        ),
    }
}

/// A number without a trailing `.0`, with at most 2 decimals.
fn trim(value: f64) -> String {
    let text = format!("{value:.2}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// Keeps the points `keep` accepts, drops jobs left empty, and renumbers; returns the jobs left
/// and the per-job values `per_job` of the kept jobs.
fn retain_points<T>(plan: &mut Plan, keep: impl Fn(&Point) -> bool, per_job: Vec<T>) -> (usize, Vec<T>) {
    let old_jobs = std::mem::take(&mut plan.jobs);
    let old_points = std::mem::take(&mut plan.points);
    let mut kept_values = Vec::new();
    for (mut job, value) in old_jobs.into_iter().zip(per_job) {
        let start = plan.points.len();
        let index = plan.jobs.len() as u32;
        plan.points.extend(
            old_points[job.points.clone()].iter().filter(|p| keep(p)).map(|p| Point { job: index, ..*p }),
        );
        if plan.points.len() > start {
            job.points = start..plan.points.len();
            plan.jobs.push(job);
            kept_values.push(value);
        }
    }
    (plan.jobs.len(), kept_values)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{plan, PlanOptions};

    const LLAMA: &str = include_str!("../../../tests/fixtures/models/llama-3.1-8b/config.json");
    const DEEPSEEK: &str = include_str!("../../../tests/fixtures/models/deepseek-v3/config.json");

    fn role(role: Role, tp: u32, parallel: Parallel, batch: u32) -> RoleConfig {
        RoleConfig {
            role,
            servers: 1,
            tp,
            pp: 1,
            cp: 1,
            parallel,
            batch,
            max_num_tokens: None,
            max_seq_len: None,
            mtp: 0,
            eplb: 0,
        }
    }

    fn settings(gb: f64, dtype: Dtype) -> Settings {
        Settings { gpu_memory_gb: gb, gpu_memory_utilization: 0.9, weight_dtype: dtype }
    }

    #[test]
    fn llama_8b_counts_its_published_parameters() {
        let shape = ModelShape::from_config(LLAMA).expect("llama config");
        let p = shape.params();
        // 128256 × 4096, untied: twice.
        assert_eq!(p.embedding, 1_050_673_152);
        // Per layer: norms 2 × 4096, q and o 4096 × 4096 each, k and v 4096 × 1024 each:
        // 41_951_232; × 32 layers, + the final norm's 4096.
        assert_eq!(p.attention, 1_342_443_520);
        // 32 × 3 × 4096 × 14336.
        assert_eq!(p.dense_mlp, 5_637_144_576);
        assert_eq!((p.experts, p.moe_shared), (0, 0));
        // Meta's published count for Llama 3.1 8B.
        assert_eq!(p.total(), 8_030_261_248);
        // 32 layers × 8 KV heads × 128 × 2 (K, V) × 2 bytes.
        assert_eq!(shape.kv_bytes_per_token(Dtype::Bf16), 131_072.0);
    }

    #[test]
    fn llama_8b_capacity_on_an_80_gib_gpu() {
        let shape = ModelShape::from_config(LLAMA).expect("llama config");
        // TP1: 72 GiB = 77_309_411_328 B, less 16_060_522_496 B of bf16 weights, over 131_072 B
        // a token: 467_291.94.
        let tp1 = role_capacity(
            &shape,
            &role(Role::Agg, 1, Parallel::Tep, 256),
            &settings(80.0, Dtype::Bf16),
            Dtype::Bf16,
        );
        assert_eq!(tp1.capacity_tokens, 467_291);
        assert!((tp1.weights_gib_per_gpu - 14.957).abs() < 0.001, "{}", tp1.weights_gib_per_gpu);
        // TP2: half the weights (8_030_261_248 B) and half the KV heads (65_536 B a token):
        // 69_279_150_080 / 65_536 = 1_057_115.94.
        let tp2 = role_capacity(
            &shape,
            &role(Role::Agg, 2, Parallel::Tep, 256),
            &settings(80.0, Dtype::Bf16),
            Dtype::Bf16,
        );
        assert_eq!(tp2.kv_bytes_per_token_per_gpu, 65_536.0);
        assert_eq!(tp2.capacity_tokens, 1_057_115);
        // An fp8 cache holds twice the tokens: 61_248_888_832 / 65_536 = 934_583.88.
        let fp8 = role_capacity(
            &shape,
            &role(Role::Agg, 1, Parallel::Tep, 256),
            &settings(80.0, Dtype::Bf16),
            Dtype::Fp8,
        );
        assert_eq!(fp8.capacity_tokens, 934_583);
        // TP16 > 8 KV heads: each GPU keeps one head, replicated.
        let tp16 = role_capacity(
            &shape,
            &role(Role::Agg, 16, Parallel::Tep, 256),
            &settings(80.0, Dtype::Bf16),
            Dtype::Bf16,
        );
        assert_eq!(tp16.kv_bytes_per_token_per_gpu, 32.0 * 2.0 * 128.0 * 2.0);
    }

    #[test]
    fn deepseek_v3_counts_its_published_parameters_and_mla_cache() {
        let shape = ModelShape::from_config(DEEPSEEK).expect("deepseek config");
        assert_eq!(shape.quantized, Some(Dtype::Fp8));
        let p = shape.params();
        // 129280 × 7168 × 2.
        assert_eq!(p.embedding, 1_853_358_080);
        // Per layer: norms 14_336; q: 7168 × 1536 + 1536 + 1536 × 128 × 192 = 48_760_320;
        // kv_a 7168 × 576 = 4_128_768, its norm 512, kv_b 512 × 128 × 256 = 16_777_216;
        // o 16_384 × 7168 = 117_440_512. 187_121_664 × 61 + 7168.
        assert_eq!(p.attention, 11_414_428_672);
        // 3 dense layers × 3 × 7168 × 18432.
        assert_eq!(p.dense_mlp, 1_189_085_184);
        // 58 MoE layers × 256 experts × 3 × 7168 × 2048.
        assert_eq!(p.experts, 653_908_770_816);
        // 58 × (1 shared expert 44_040_192 + router 256 × 7168).
        assert_eq!(p.moe_shared, 2_660_761_600);
        // DeepSeek's published 671B for the main model (the MTP module is not counted).
        assert_eq!(p.total(), 671_026_404_352);
        // MLA: 61 layers × (512 latent + 64 rope) × 2 bytes, not × heads.
        assert_eq!(shape.kv_bytes_per_token(Dtype::Bf16), 70_272.0);
    }

    #[test]
    fn deepseek_v3_dep8_on_140_gib_and_tep8_on_80_gib() {
        let shape = ModelShape::from_config(DEEPSEEK).expect("deepseek config");
        // DEP8, fp8 weights: the 17_117_633_536 non-expert parameters whole on every rank, the
        // experts over 8: 98_856_229_888 B. 126 GiB = 135_291_469_824 B leaves 36_435_239_936 B,
        // over 70_272 B a token: 518_488.7 tokens per rank.
        let dep8 = role_capacity(
            &shape,
            &role(Role::Gen, 8, Parallel::Dep, 64),
            &settings(140.0, Dtype::Fp8),
            Dtype::Bf16,
        );
        assert_eq!(dep8.holder, Holder::Rank);
        assert_eq!(dep8.holders, 8);
        assert_eq!(dep8.capacity_tokens, 518_488);
        // TEP8 on 80 GiB: 671_026_404_352 / 8 B = 78.1 GiB of weights, over 72 GiB.
        let tep8 = role_capacity(
            &shape,
            &role(Role::Gen, 8, Parallel::Tep, 64),
            &settings(80.0, Dtype::Fp8),
            Dtype::Bf16,
        );
        assert!(tep8.kv_budget_gib_per_gpu < 0.0);
        assert_eq!(tep8.capacity_tokens, 0);
    }

    #[test]
    fn a_missing_field_is_named() {
        let missing = include_str!("../../../tests/fixtures/models/no-layers/config.json");
        assert_eq!(ModelShape::from_config(missing), Err(ConfigError::Missing("num_hidden_layers")));
        let no_dtype = LLAMA.replace("\"torch_dtype\": \"bfloat16\"", "\"model_type\": \"llama\"");
        assert_eq!(ModelShape::from_config(&no_dtype), Err(ConfigError::Missing("torch_dtype")));
        let odd = LLAMA.replace("\"num_hidden_layers\": 32", "\"num_hidden_layers\": \"32\"");
        assert!(matches!(
            ModelShape::from_config(&odd),
            Err(ConfigError::Invalid { field: "num_hidden_layers", .. })
        ));
        assert!(matches!(ModelShape::from_config("{"), Err(ConfigError::Json(_))));
    }

    fn llama_spec(extra: &str) -> sweep_spec::Spec {
        let text = format!(
            "name: cap\nmodel: {{path: /m/llama}}\nengine: {{kind: vllm}}\ncluster: {{gpus_per_node: 8, gpu_memory_gb: 80}}\nmode: agg\n\
             agg: {{tp: [1, 2], batch: 256{extra}}}\nworkload: {{isl_osl: [[8192, 1024]], concurrency: [32, 256]}}\n"
        );
        sweep_spec::load(&text).expect("spec").spec
    }

    #[test]
    fn assess_warns_about_points_over_and_prunes_them_on_request() {
        let spec = llama_spec("");
        let shape = ModelShape::from_config(LLAMA).expect("llama config");
        let settings = Settings::new(&spec, &shape, 80.0);
        let planned = plan(&spec, &PlanOptions::default()).expect("plan");
        assert_eq!(planned.points.len(), 4);
        let kept = assess(&spec, planned, &shape, &settings, false).expect("assessed");
        // TP1 at concurrency 256: 256 × 9216 = 2_359_296 tokens > 467_291. At 32: 294_912 fits.
        // TP2 holds 1_057_115: 256 sequences are over too.
        let over = &kept.capacity.as_ref().expect("estimated").over;
        assert_eq!(over.len(), 2, "{over:?}");
        assert!(over.iter().all(|s| s.sequences == 256 && s.demand_tokens == 2_359_296));
        assert_eq!(kept.points.len(), 4);
        assert_eq!(kept.warnings.len(), 2);
        let message = &kept.warnings[0].message;
        assert!(message.contains("1 of 2 points"), "{message}");
        assert!(message.contains("256 sequences × 9216 tokens = 2359296 tokens"), "{message}");
        assert!(
            message
                .contains("holds 467291 = (80 GiB × 0.9 − 14.96 GiB of bf16 weights per GPU) / 131072 bytes"),
            "{message}"
        );
        assert_eq!(kept.warnings[0].path.to_string(), "agg.batch");

        let planned = plan(&spec, &PlanOptions::default()).expect("plan");
        let pruned = assess(&spec, planned, &shape, &settings, true).expect("assessed");
        assert_eq!(pruned.points.len(), 2);
        assert_eq!(pruned.stats.infeasible, 2);
        assert!(pruned.points.iter().all(|p| p.concurrency == 32));
        for (j, job) in pruned.jobs.iter().enumerate() {
            assert!(pruned.points[job.points.clone()].iter().all(|p| p.job as usize == j));
        }
    }

    #[test]
    fn a_role_kv_cache_dtype_doubles_what_it_holds_and_pruning_everything_is_an_error() {
        let spec = llama_spec(", engine_args: {kv_cache_dtype: fp8}");
        let shape = ModelShape::from_config(LLAMA).expect("llama config");
        let settings = Settings::new(&spec, &shape, 80.0);
        let assessed =
            assess(&spec, plan(&spec, &PlanOptions::default()).expect("plan"), &shape, &settings, false)
                .expect("assessed");
        // fp8: TP1 holds 934_583 and TP2 2_114_231; 2_359_296 is over both still.
        assert_eq!(assessed.capacity.as_ref().expect("estimated").jobs[0][0].kv_dtype, Dtype::Fp8);
        assert_eq!(assessed.capacity.as_ref().expect("estimated").jobs[1][0].capacity_tokens, 2_114_231);

        let tiny = Settings { gpu_memory_gb: 10.0, ..settings };
        let error = assess(&spec, plan(&spec, &PlanOptions::default()).expect("plan"), &shape, &tiny, true)
            .expect_err("nothing fits");
        assert!(matches!(error, PlanError::NothingFits { points: 4, .. }), "{error}");
    }
}
