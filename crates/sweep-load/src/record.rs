//! One request's measurements, and the line it becomes in `profile_export.jsonl`.

use std::time::Duration;

use serde::Serialize;

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

/// A new worker id, the prefix of one run's request ids: the process and the run's number in
/// it, so that the runs of one process (a job's readiness check and its points) never send the
/// same `X-Request-ID` twice.
pub fn worker_id() -> String {
    static RUNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let run = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("sweep-runner-{}-r{run}", std::process::id())
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

/// Where a request's token counts came from. Ordered from most to least exact for a run's
/// summary, which names the least exact source any of its requests used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TokenSource {
    /// The server's `usage` (input and output).
    ServerUsage,
    /// A local `tokenizer.json`: the prompt and the streamed text, without special tokens.
    Tokenizer,
    /// Neither: content events for the output, prompt words for the input.
    ClientCount,
}

impl TokenSource {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenSource::ServerUsage => "server_usage",
            TokenSource::Tokenizer => "tokenizer",
            TokenSource::ClientCount => "client_count",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Record {
    pub index: u64,
    pub phase: Phase,
    /// The conversation it is a turn of (its own number for single requests), and which turn.
    pub conversation: u64,
    pub turn: u32,
    /// The dataset's name for the session, when it gives one.
    pub session_id: Option<std::sync::Arc<str>>,
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
    pub token_source: TokenSource,
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

    /// The record as a line of aiperf's `profile_export.jsonl`, appended to `out`.
    pub fn write_json(&self, worker: &str, out: &mut Vec<u8>) {
        let v = |value: f64, unit: &'static str| Some(Value { value, unit });
        let metrics = if self.error.is_none() {
            let d = self.derived();
            Metrics {
                request_latency: v(d.request_latency, "ms"),
                time_to_first_token: d.time_to_first_token.and_then(|t| v(t, "ms")),
                inter_token_latency: d.inter_token_latency.and_then(|t| v(t, "ms")),
                output_token_throughput_per_user: d
                    .output_token_throughput_per_user
                    .and_then(|t| v(t, "tokens/sec/user")),
                inter_chunk_latency: (!d.inter_chunk_latency.is_empty())
                    .then_some(Value { value: d.inter_chunk_latency, unit: "ms" }),
                output_sequence_length: v(self.output_tokens as f64, "tokens"),
                input_sequence_length: v(self.input_tokens as f64, "tokens"),
                credit_to_start_latency: v(d.credit_to_start_latency, "ms"),
            }
        } else {
            Metrics::default()
        };
        let line = Line {
            metadata: Metadata {
                session_num: self.conversation,
                x_request_id: request_id(worker, self.phase, self.index),
                conversation_id: match &self.session_id {
                    Some(id) => id.to_string(),
                    None => self.conversation.to_string(),
                },
                turn_index: self.turn,
                credit_issued_ns: self.credit_ns,
                request_start_ns: self.start_ns,
                request_end_ns: self.end_ns,
                worker_id: worker,
                benchmark_phase: self.phase.as_str(),
                was_cancelled: self.cancelled,
                token_source: self.token_source.as_str(),
            },
            metrics,
            error: self.error.as_ref().map(|e| ErrorOut { code: e.code, kind: e.kind, message: &e.message }),
        };
        // Writing plain structs into a Vec cannot fail.
        let _ = serde_json::to_writer(out, &line);
    }

    /// The same line as a JSON value.
    pub fn to_json(&self, worker: &str) -> serde_json::Value {
        let mut out = Vec::new();
        self.write_json(worker, &mut out);
        serde_json::from_slice(&out).unwrap_or_default()
    }
}

#[derive(Serialize)]
struct Value<T> {
    value: T,
    unit: &'static str,
}

#[derive(Serialize, Default)]
struct Metrics {
    #[serde(skip_serializing_if = "Option::is_none")]
    request_latency: Option<Value<f64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    time_to_first_token: Option<Value<f64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    inter_token_latency: Option<Value<f64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    output_token_throughput_per_user: Option<Value<f64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    inter_chunk_latency: Option<Value<Vec<f64>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    output_sequence_length: Option<Value<f64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    input_sequence_length: Option<Value<f64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    credit_to_start_latency: Option<Value<f64>>,
}

#[derive(Serialize)]
struct Metadata<'a> {
    session_num: u64,
    x_request_id: String,
    conversation_id: String,
    turn_index: u32,
    credit_issued_ns: u64,
    request_start_ns: u64,
    request_end_ns: u64,
    worker_id: &'a str,
    benchmark_phase: &'static str,
    was_cancelled: bool,
    token_source: &'static str,
}

#[derive(Serialize)]
struct ErrorOut<'a> {
    code: Option<u16>,
    #[serde(rename = "type")]
    kind: &'static str,
    message: &'a str,
}

#[derive(Serialize)]
struct Line<'a> {
    metadata: Metadata<'a>,
    metrics: Metrics,
    error: Option<ErrorOut<'a>>,
}
