//! The measured figures of a point that the results table carries: one list, so the summary
//! reader, the record scan, the table writer and the docs cannot disagree on a name.

/// How a figure is taken from aiperf's summary (`profile_export_aiperf.json`) and from records.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Stat {
    /// A scalar of the point (`{"unit", "avg"}` in the summary); records yield it by counting.
    Scalar,
    /// The mean over requests of a per-request metric.
    Avg,
    /// A percentile (linear interpolation between ranks, numpy's default, as aiperf does).
    P(u8),
}

#[derive(Debug, Clone, Copy)]
pub struct Metric {
    /// Column of `results.parquet` / `results.csv`.
    pub column: &'static str,
    /// aiperf's metric tag (the summary's key and, for per-request metrics, the record's).
    pub key: &'static str,
    pub stat: Stat,
    pub unit: &'static str,
}

const fn m(column: &'static str, key: &'static str, stat: Stat, unit: &'static str) -> Metric {
    Metric { column, key, stat, unit }
}

/// Every measured column, in table order.
pub const METRICS: &[Metric] = &[
    m("request_count", "request_count", Stat::Scalar, "requests"),
    m("error_request_count", "error_request_count", Stat::Scalar, "requests"),
    m("cancelled_request_count", "cancelled_request_count", Stat::Scalar, "requests"),
    m("good_request_count", "good_request_count", Stat::Scalar, "requests"),
    m("benchmark_duration_s", "benchmark_duration", Stat::Scalar, "s"),
    m("request_throughput", "request_throughput", Stat::Scalar, "requests/s"),
    m("goodput", "goodput", Stat::Scalar, "requests/s"),
    m("output_token_throughput", "output_token_throughput", Stat::Scalar, "tokens/s"),
    m("total_token_throughput", "total_token_throughput", Stat::Scalar, "tokens/s"),
    m("ttft_avg_ms", "time_to_first_token", Stat::Avg, "ms"),
    m("ttft_p50_ms", "time_to_first_token", Stat::P(50), "ms"),
    m("ttft_p90_ms", "time_to_first_token", Stat::P(90), "ms"),
    m("ttft_p99_ms", "time_to_first_token", Stat::P(99), "ms"),
    m("itl_avg_ms", "inter_token_latency", Stat::Avg, "ms"),
    m("itl_p50_ms", "inter_token_latency", Stat::P(50), "ms"),
    m("itl_p90_ms", "inter_token_latency", Stat::P(90), "ms"),
    m("itl_p99_ms", "inter_token_latency", Stat::P(99), "ms"),
    m("latency_avg_ms", "request_latency", Stat::Avg, "ms"),
    m("latency_p50_ms", "request_latency", Stat::P(50), "ms"),
    m("latency_p90_ms", "request_latency", Stat::P(90), "ms"),
    m("latency_p99_ms", "request_latency", Stat::P(99), "ms"),
    m("output_token_throughput_per_user_avg", "output_token_throughput_per_user", Stat::Avg, "tokens/s/user"),
    m("isl_avg", "input_sequence_length", Stat::Avg, "tokens"),
    m("osl_avg", "output_sequence_length", Stat::Avg, "tokens"),
];

/// Index of a column in [`METRICS`]; a typo is a panic in every test, not a silent null.
pub fn index(column: &str) -> usize {
    METRICS.iter().position(|m| m.column == column).unwrap_or_else(|| panic!("no metric column `{column}`"))
}

/// One point's figures, in [`METRICS`] order; `None` where the source did not have it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Figures(pub Vec<Option<f64>>);

impl Figures {
    pub fn empty() -> Self {
        Figures(vec![None; METRICS.len()])
    }

    /// The measured requests' output tokens as the client counted them:
    /// `osl_avg × request_count`.
    pub fn output_tokens(&self) -> Option<f64> {
        Some(self.get("osl_avg")? * self.get("request_count")?)
    }

    pub fn get(&self, column: &str) -> Option<f64> {
        self.0.get(index(column)).copied().flatten()
    }

    pub fn set(&mut self, column: &str, value: Option<f64>) {
        let i = index(column);
        self.0[i] = value;
    }
}

/// TTFT over the requests of one turn index of multi-turn sessions: how a growing history
/// costs. Points without sessions have none (their turn 0 is the whole TTFT already).
#[derive(Debug, Clone, PartialEq)]
pub struct TurnTtft {
    /// 0 for a session's first request.
    pub turn_index: u32,
    pub count: u64,
    pub avg_ms: Option<f64>,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}
