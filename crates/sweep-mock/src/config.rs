//! Settings of the simulated engine: its role, where it listens, the time model and the faults.
//! Every field is a command-line flag of `sweep-mock-engine`; `docs/mock-engine.md` explains
//! them. Defaults model a small engine so that sweeps show real trade-offs without any flags.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, ValueEnum};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Prefill and decode.
    Agg,
    /// Prefill only (context server).
    Ctx,
    /// Decode only (generation server).
    Gen,
    /// The disaggregation router (DISAGG_SERVER): clients talk to it; it sends each request to a
    /// CTX worker for the prompt, then streams the decode from a GEN worker.
    Router,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Agg => "agg",
            Role::Ctx => "ctx",
            Role::Gen => "gen",
            Role::Router => "router",
        }
    }
}

/// What the output text says (`docs/mock-engine.md`, "Accuracy").
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Answers {
    /// Filler tokens only: every accuracy question is answered wrong.
    None,
    /// The result of the prompt's last `A op B` first (the built-in accuracy questions), then
    /// filler.
    Arithmetic,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Routing {
    RoundRobin,
    LeastLoaded,
}

#[derive(Debug, Clone, Parser)]
#[command(name = "sweep-mock-engine", version, about = "A simulated OpenAI-compatible LLM inference engine")]
// A later flag overrides an earlier one, so launch templates can append per-point overrides.
#[command(args_override_self = true)]
pub struct Settings {
    /// What this process serves.
    #[arg(long, value_enum, default_value_t = Role::Agg, env = "SWEEP_MOCK_ROLE")]
    pub role: Role,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on; 0 picks a free one (see --port-file).
    #[arg(long, default_value_t = 8000)]
    pub port: u16,
    /// Write the bound port to this file once listening.
    #[arg(long, value_name = "PATH")]
    pub port_file: Option<PathBuf>,
    /// The model name served (`/v1/models`, and the only `model` requests may ask for).
    #[arg(long, default_value = "mock")]
    pub model: String,
    /// Runtime worker threads; 1 runs everything on one core.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Workers: write `<role>-<port>.json` here once listening. Router: read workers from here.
    #[arg(long, value_name = "DIR")]
    pub rendezvous: Option<PathBuf>,
    /// Append one JSON line per streamed request to this file: its `X-Request-ID`, and the wall
    /// clock (ns) when the request arrived and when its first token was handed to the socket —
    /// the reference for measuring a client's TTFT error.
    #[arg(long, value_name = "FILE")]
    pub token_log: Option<PathBuf>,
    /// Router: a CTX worker's `host:port` (repeatable).
    #[arg(long = "ctx", value_name = "HOST:PORT")]
    pub ctx_workers: Vec<String>,
    /// Router: a GEN worker's `host:port` (repeatable).
    #[arg(long = "gen", value_name = "HOST:PORT")]
    pub gen_workers: Vec<String>,
    /// Router: an AGG worker's `host:port` (repeatable); requests go to it whole.
    #[arg(long = "agg", value_name = "HOST:PORT")]
    pub agg_workers: Vec<String>,
    /// Router: how to pick a worker of a role.
    #[arg(long, value_enum, default_value_t = Routing::RoundRobin)]
    pub routing: Routing,
    /// Output tokens when a request neither sets `ignore_eos` nor stops earlier: the simulated
    /// end-of-sequence position (clamped to `min_tokens..=max_tokens`).
    #[arg(long, default_value_t = 16)]
    pub eos_after: u32,
    /// Prompt tokens each image of a chat request costs (its vision tokens, prefilled with the
    /// text and counted in `usage`).
    #[arg(long, default_value_t = 256)]
    pub image_tokens: u32,
    /// What the output says: `arithmetic` answers the built-in accuracy questions right. Set
    /// through the environment too, so that a router (which renders a disaggregated job's
    /// text) takes it from `engine.env`.
    #[arg(long, value_enum, default_value_t = Answers::None, env = "SWEEP_MOCK_ANSWERS")]
    pub answers: Answers,
    /// Prefix cache size in blocks (0: off): a prompt's leading blocks already held cost no
    /// prefill (`docs/mock-engine.md`).
    #[arg(long, default_value_t = 0)]
    pub prefix_cache_blocks: usize,
    /// Words per prefix-cache block.
    #[arg(long, default_value_t = 16)]
    pub prefix_block_size: usize,
    #[command(flatten)]
    pub sim: SimParams,
    #[command(flatten)]
    pub faults: Faults,
}

/// The engine's time and capacity model (`docs/mock-engine.md`).
#[derive(Debug, Clone, Args)]
pub struct SimParams {
    /// Most sequences running at once (the engine's max batch size).
    #[arg(long, default_value_t = 64)]
    pub max_batch: u32,
    /// Most prompt tokens prefilled in one step.
    #[arg(long, default_value_t = 8192)]
    pub max_num_tokens: u32,
    /// KV-cache capacity in tokens; a request reserves prompt + output tokens while it runs.
    #[arg(long, default_value_t = 1_048_576)]
    pub kv_capacity_tokens: u64,
    /// Fixed cost of a step that prefills, in ms.
    #[arg(long, default_value_t = 5.0)]
    pub prefill_base_ms: f64,
    /// Prefill cost per prompt token, in µs.
    #[arg(long, default_value_t = 20.0)]
    pub prefill_per_token_us: f64,
    /// Fixed cost of a decode step, in ms.
    #[arg(long, default_value_t = 10.0)]
    pub decode_base_ms: f64,
    /// Decode cost per running sequence, in µs.
    #[arg(long, default_value_t = 150.0)]
    pub decode_per_seq_us: f64,
    /// Decode cost per token of context held by the batch, in ns.
    #[arg(long, default_value_t = 2.0)]
    pub decode_per_kv_token_ns: f64,
    /// Tensor-parallel size: step times are divided by tp^tp_exponent.
    #[arg(long, default_value_t = 1)]
    pub tp: u32,
    #[arg(long, default_value_t = 0.8)]
    pub tp_exponent: f64,
    /// MTP draft layers: a decode step yields 1 + a + a² + … + a^mtp tokens on average.
    #[arg(long, default_value_t = 0)]
    pub mtp: u32,
    /// Acceptance rate a of each MTP draft token.
    #[arg(long, default_value_t = 0.7)]
    pub mtp_acceptance: f64,
    /// Extra decode-step cost per MTP draft layer, as a fraction of the step.
    #[arg(long, default_value_t = 0.1)]
    pub mtp_step_overhead: f64,
    /// GEN: delay before a handed-off request joins the batch, per prompt token, in µs.
    #[arg(long, default_value_t = 1.0)]
    pub kv_transfer_per_token_us: f64,
    /// Run the simulated clock this many times faster.
    #[arg(long, default_value_t = 1.0)]
    pub speedup: f64,
    /// Set every delay to zero: the engine answers as fast as it can (for load-tool benchmarks).
    #[arg(long)]
    pub no_delay: bool,
}

impl Default for SimParams {
    fn default() -> Self {
        match Settings::try_parse_from(["sweep-mock-engine"]) {
            Ok(settings) => settings.sim,
            Err(_) => unreachable!("the defaults parse"),
        }
    }
}

fn ms(value: f64) -> Duration {
    Duration::from_secs_f64((value / 1000.0).max(0.0))
}

impl SimParams {
    fn divisor(&self) -> f64 {
        f64::from(self.tp.max(1)).powf(self.tp_exponent) * self.speedup.max(f64::MIN_POSITIVE)
    }

    /// Time of a step that prefills `tokens` prompt tokens.
    pub fn prefill_time(&self, tokens: u64) -> Duration {
        if self.no_delay || tokens == 0 {
            return Duration::ZERO;
        }
        ms((self.prefill_base_ms + tokens as f64 * self.prefill_per_token_us / 1000.0) / self.divisor())
    }

    /// Time of a decode step over `batch` sequences holding `kv_tokens` tokens of context.
    pub fn decode_time(&self, batch: usize, kv_tokens: u64) -> Duration {
        if self.no_delay || batch == 0 {
            return Duration::ZERO;
        }
        let base = self.decode_base_ms
            + batch as f64 * self.decode_per_seq_us / 1000.0
            + kv_tokens as f64 * self.decode_per_kv_token_ns / 1e6;
        ms(base * (1.0 + f64::from(self.mtp) * self.mtp_step_overhead) / self.divisor())
    }

    /// Expected tokens per decode step: 1 + a + a² + … + a^mtp.
    pub fn tokens_per_step(&self) -> f64 {
        let a = self.mtp_acceptance.clamp(0.0, 1.0);
        (1..=self.mtp).fold((1.0, 1.0), |(sum, power), _| (sum + power * a, power * a)).0
    }

    /// Delay of the KV hand-off of `prompt_tokens` to a GEN worker.
    pub fn kv_transfer_time(&self, prompt_tokens: u64) -> Duration {
        if self.no_delay {
            return Duration::ZERO;
        }
        ms(prompt_tokens as f64 * self.kv_transfer_per_token_us
            / 1000.0
            / self.speedup.max(f64::MIN_POSITIVE))
    }
}

/// Faults to inject, each off by default (`docs/mock-engine.md`).
#[derive(Debug, Clone, Default, Args)]
pub struct Faults {
    /// Answer 503 to everything (health included) for this many seconds after start.
    #[arg(long, value_name = "SECONDS")]
    pub fault_slow_start: Option<f64>,
    /// Exit with status 1 when request N+1 arrives, cutting every stream in flight.
    #[arg(long, value_name = "N")]
    pub fault_crash_after: Option<u64>,
    /// Stall a stream forever after N tokens (with --fault-hang-probability).
    #[arg(long, value_name = "N")]
    pub fault_hang_after_tokens: Option<u32>,
    #[arg(long, default_value_t = 1.0, value_name = "P")]
    pub fault_hang_probability: f64,
    /// Answer a request with an HTTP error (see --fault-error-status) with probability P.
    #[arg(long, default_value_t = 0.0, value_name = "P")]
    pub fault_error_rate: f64,
    #[arg(long, default_value_t = 500, value_name = "STATUS")]
    pub fault_error_status: u16,
    /// Replace an SSE event by a malformed line with probability P.
    #[arg(long, default_value_t = 0.0, value_name = "P")]
    pub fault_malformed_rate: f64,
    /// Drop the connection mid-stream after N tokens (with --fault-reset-probability).
    #[arg(long, value_name = "N")]
    pub fault_reset_after_tokens: Option<u32>,
    #[arg(long, default_value_t = 1.0, value_name = "P")]
    pub fault_reset_probability: f64,
    /// With --answers: answer wrong (the result plus one) with probability P.
    #[arg(long, default_value_t = 0.0, value_name = "P", env = "SWEEP_MOCK_FAULT_WRONG_ANSWER_RATE")]
    pub fault_wrong_answer_rate: f64,
    /// Seed of the fault decisions, which are deterministic per request number.
    #[arg(long, default_value_t = 0)]
    pub fault_seed: u64,
    /// Answer `/metrics` with an HTML page instead of Prometheus text, as a misconfigured proxy
    /// in front of an engine does.
    #[arg(long)]
    pub fault_metrics_garbage: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_model() {
        let mut p = SimParams { tp: 1, mtp: 0, ..SimParams::default() };
        assert_eq!(p.prefill_time(1000), Duration::from_millis(25));
        // 10 ms + 8 × 150 µs + 8000 tokens × 2 ns = 11.216 ms
        assert_eq!(p.decode_time(8, 8000), Duration::from_micros(11_216));
        p.speedup = 2.0;
        assert_eq!(p.decode_time(8, 8000), Duration::from_micros(5_608));
        p.speedup = 1.0;
        p.tp = 4;
        p.tp_exponent = 1.0;
        assert_eq!(p.prefill_time(1000), Duration::from_micros(6_250));
        p.mtp = 2;
        p.mtp_acceptance = 0.5;
        assert!((p.tokens_per_step() - 1.75).abs() < 1e-12);
        p.no_delay = true;
        assert_eq!(p.decode_time(8, 8000), Duration::ZERO);
    }
}
