//! One request's measurements, and the line it becomes in `profile_export.jsonl`.

use std::time::Duration;

/// Warm-up requests are recorded (marked as such) but never enter the results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Warmup,
    Profiling,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Warmup => "warmup",
            Phase::Profiling => "profiling",
        }
    }
}

/// This process's worker id, the prefix of its requests' ids.
pub fn worker_id() -> String {
    format!("sweep-runner-{}", std::process::id())
}

/// The `X-Request-ID` a request is sent with, and its `x_request_id` in the records: unique in
/// the run (warm-up requests have their own numbering).
pub fn request_id(worker: &str, phase: Phase, index: u64) -> String {
    match phase {
        Phase::Warmup => format!("{worker}-w{index}"),
        Phase::Profiling => format!("{worker}-{index}"),
    }
}

/// Why a request failed. `kind` is one of the types in `docs/metrics.md`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestError {
    /// The HTTP status, when the server answered with one.
    pub code: Option<u16>,
    pub kind: &'static str,
    pub message: String,
}

#[derive(Debug, Clone)]
pub struct Record {
    pub index: u64,
    pub phase: Phase,
    /// Wall-clock ns when the request was due (its schedule slot; its start in a closed loop).
    pub credit_ns: u64,
    /// Wall-clock ns when it was sent and when its last byte arrived.
    pub start_ns: u64,
    pub end_ns: u64,
    /// Offsets from the start of each read that brought content; several events in one read
    /// share that read's time.
    pub content_times: Vec<Duration>,
    pub output_tokens: u64,
    pub input_tokens: u64,
    /// Token counts came from the server's `usage` (else: content events and prompt words).
    pub usage: bool,
    pub error: Option<RequestError>,
    pub cancelled: bool,
}

/// Per-request metrics in aiperf's units (ms, tokens, tokens/s/user).
#[derive(Debug, Clone, PartialEq)]
pub struct Derived {
    pub request_latency: f64,
    pub time_to_first_token: Option<f64>,
    pub inter_token_latency: Option<f64>,
    pub output_token_throughput_per_user: Option<f64>,
    pub inter_chunk_latency: Vec<f64>,
    pub credit_to_start_latency: f64,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

impl Record {
    pub fn latency(&self) -> Duration {
        Duration::from_nanos(self.end_ns.saturating_sub(self.start_ns))
    }

    /// aiperf's definitions: TTFT = first content − start; ITL = (latency − TTFT) / (OSL − 1),
    /// for two or more output tokens; per-user throughput = 1000 / ITL; inter-chunk latency =
    /// the gaps between content-bearing reads.
    pub fn derived(&self) -> Derived {
        let latency = ms(self.latency());
        let ttft = self.content_times.first().map(|&t| ms(t));
        let itl = match ttft {
            Some(ttft) if self.output_tokens >= 2 => Some((latency - ttft) / (self.output_tokens - 1) as f64),
            _ => None,
        };
        Derived {
            request_latency: latency,
            time_to_first_token: ttft,
            inter_token_latency: itl,
            output_token_throughput_per_user: itl.filter(|&v| v > 0.0).map(|v| 1000.0 / v),
            inter_chunk_latency: self.content_times.windows(2).map(|w| ms(w[1] - w[0])).collect(),
            credit_to_start_latency: self.start_ns.saturating_sub(self.credit_ns) as f64 / 1e6,
        }
    }

    /// The record as a line of aiperf's `profile_export.jsonl`.
    pub fn to_json(&self, worker: &str) -> serde_json::Value {
        let value = |v: f64, unit: &str| serde_json::json!({"value": v, "unit": unit});
        let mut metrics = serde_json::Map::new();
        if self.error.is_none() {
            let d = self.derived();
            metrics.insert("request_latency".into(), value(d.request_latency, "ms"));
            if let Some(ttft) = d.time_to_first_token {
                metrics.insert("time_to_first_token".into(), value(ttft, "ms"));
            }
            if let Some(itl) = d.inter_token_latency {
                metrics.insert("inter_token_latency".into(), value(itl, "ms"));
            }
            if let Some(tps) = d.output_token_throughput_per_user {
                metrics.insert("output_token_throughput_per_user".into(), value(tps, "tokens/sec/user"));
            }
            if !d.inter_chunk_latency.is_empty() {
                metrics.insert(
                    "inter_chunk_latency".into(),
                    serde_json::json!({"value": d.inter_chunk_latency, "unit": "ms"}),
                );
            }
            metrics.insert("output_sequence_length".into(), value(self.output_tokens as f64, "tokens"));
            metrics.insert("input_sequence_length".into(), value(self.input_tokens as f64, "tokens"));
            metrics.insert("credit_to_start_latency".into(), value(d.credit_to_start_latency, "ms"));
        }
        serde_json::json!({
            "metadata": {
                "session_num": self.index,
                "x_request_id": request_id(worker, self.phase, self.index),
                "turn_index": 0,
                "credit_issued_ns": self.credit_ns,
                "request_start_ns": self.start_ns,
                "request_end_ns": self.end_ns,
                "worker_id": worker,
                "benchmark_phase": self.phase.as_str(),
                "was_cancelled": self.cancelled,
                "token_source": if self.usage { "server_usage" } else { "client_count" },
            },
            "metrics": metrics,
            "error": self.error.as_ref().map(|e| serde_json::json!({
                "code": e.code, "type": e.kind, "message": e.message,
            })),
        })
    }
}
