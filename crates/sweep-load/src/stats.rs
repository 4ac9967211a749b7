//! The results of a phase: distributions in HDR histograms, exact sums, and aiperf-compatible
//! exports (`profile_export_aiperf.json` and `.csv`).
//!
//! Each distribution keeps an HDR histogram with 3 significant digits (every percentile within
//! 0.1 % of the exact value) plus the exact count, sum, sum of squares, min and max, so that
//! averages, totals and extremes are exact.

use crate::LoadError;
use std::collections::BTreeMap;

use hdrhistogram::Histogram;

use super::record::{Record, TokenSource};

/// The percentiles aiperf reports.
const PERCENTILES: [(&str, f64); 9] = [
    ("p1", 0.01),
    ("p5", 0.05),
    ("p10", 0.10),
    ("p25", 0.25),
    ("p50", 0.50),
    ("p75", 0.75),
    ("p90", 0.90),
    ("p95", 0.95),
    ("p99", 0.99),
];

#[derive(Debug, Clone)]
pub struct Stat {
    histogram: Histogram<u64>,
    /// Histogram units per metric unit: µs for ms, milli-units for throughputs.
    scale: f64,
    count: u64,
    sum: f64,
    sum_sq: f64,
    min: f64,
    max: f64,
}

impl Stat {
    pub fn new(scale: f64) -> Self {
        Stat {
            histogram: Histogram::new(3).expect("3 significant digits is a valid precision"),
            scale,
            count: 0,
            sum: 0.0,
            sum_sq: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        }
    }

    pub fn record(&mut self, value: f64) {
        if !value.is_finite() {
            return;
        }
        let _ = self.histogram.record((value.max(0.0) * self.scale).round() as u64);
        self.count += 1;
        self.sum += value;
        self.sum_sq += value * value;
        self.min = self.min.min(value);
        self.max = self.max.max(value);
    }

    pub fn merge(&mut self, other: &Stat) {
        let _ = self.histogram.add(&other.histogram);
        self.count += other.count;
        self.sum += other.sum;
        self.sum_sq += other.sum_sq;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn mean(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum / self.count as f64
        }
    }

    /// The value at quantile `q`, the middle of the histogram bucket it falls in, kept within
    /// the exact extremes.
    pub fn quantile(&self, q: f64) -> f64 {
        let raw = self.histogram.median_equivalent(self.histogram.value_at_quantile(q));
        (raw as f64 / self.scale).clamp(self.min, self.max)
    }

    /// Population standard deviation, as numpy (and so aiperf) computes it.
    pub fn std(&self) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        let mean = self.mean();
        (self.sum_sq / self.count as f64 - mean * mean).max(0.0).sqrt()
    }

    /// aiperf's shape: `unit`, `avg`, `p1` … `p99`, `min`, `max`, `std`, `count`, `sum`.
    pub fn to_json(&self, unit: &str) -> serde_json::Value {
        let mut out = serde_json::Map::new();
        out.insert("unit".into(), unit.into());
        out.insert("avg".into(), self.mean().into());
        for (name, q) in PERCENTILES {
            out.insert(name.into(), self.quantile(q).into());
        }
        out.insert("min".into(), self.min.into());
        out.insert("max".into(), self.max.into());
        out.insert("std".into(), self.std().into());
        out.insert("count".into(), self.count.into());
        out.insert("sum".into(), self.sum.into());
        serde_json::Value::Object(out)
    }
}

/// A distribution: its key (aiperf's tag), CSV header, unit and histogram scale.
struct Metric {
    tag: &'static str,
    header: &'static str,
    unit: &'static str,
    scale: f64,
}

const DISTRIBUTIONS: [Metric; 8] = [
    Metric { tag: "request_latency", header: "Request Latency", unit: "ms", scale: 1000.0 },
    Metric { tag: "time_to_first_token", header: "Time to First Token", unit: "ms", scale: 1000.0 },
    Metric { tag: "inter_token_latency", header: "Inter Token Latency", unit: "ms", scale: 1000.0 },
    Metric { tag: "inter_chunk_latency", header: "Inter Chunk Latency", unit: "ms", scale: 1000.0 },
    Metric {
        tag: "output_token_throughput_per_user",
        header: "Output Token Throughput Per User",
        unit: "tokens/sec/user",
        scale: 1000.0,
    },
    Metric { tag: "output_sequence_length", header: "Output Sequence Length", unit: "tokens", scale: 1.0 },
    Metric { tag: "input_sequence_length", header: "Input Sequence Length", unit: "tokens", scale: 1.0 },
    Metric { tag: "credit_to_start_latency", header: "Credit-to-Start Latency", unit: "ms", scale: 1000.0 },
];

/// Service-level objectives for goodput, by aiperf's metric tags; a request is good when it
/// meets every one.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Slos {
    pub time_to_first_token: Option<f64>,
    pub inter_token_latency: Option<f64>,
    pub request_latency: Option<f64>,
}

impl Slos {
    pub fn is_empty(&self) -> bool {
        *self == Slos::default()
    }

    /// Parses aiperf's syntax: `time_to_first_token:200 inter_token_latency:20` (ms), separated
    /// by spaces or commas.
    pub fn parse(text: &str) -> Result<Slos, LoadError> {
        let bad = |problem: String| LoadError::Setting { setting: "goodput", problem };
        let mut slos = Slos::default();
        for item in text.split([' ', ',']).filter(|s| !s.is_empty()) {
            let (key, value) = item
                .split_once(':')
                .ok_or_else(|| bad(format!("goodput SLO `{item}` is not `metric:milliseconds`")))?;
            let value: f64 =
                value.parse().ok().filter(|v: &f64| v.is_finite() && *v > 0.0).ok_or_else(|| {
                    bad(format!("goodput SLO `{item}`: `{value}` is not a positive number of ms"))
                })?;
            match key {
                "time_to_first_token" | "ttft" => slos.time_to_first_token = Some(value),
                "inter_token_latency" | "itl" => slos.inter_token_latency = Some(value),
                "request_latency" => slos.request_latency = Some(value),
                other => {
                    return Err(bad(format!(
                        "goodput SLO on `{other}`: use time_to_first_token, inter_token_latency or request_latency"
                    )))
                }
            }
        }
        Ok(slos)
    }

    fn met_by(&self, d: &super::record::Derived) -> bool {
        let within = |limit: Option<f64>, value: Option<f64>| match limit {
            None => true,
            Some(limit) => value.is_some_and(|v| v <= limit),
        };
        within(self.time_to_first_token, d.time_to_first_token)
            && within(self.inter_token_latency, d.inter_token_latency)
            && within(self.request_latency, Some(d.request_latency))
    }
}

/// Everything one phase measured.
#[derive(Debug, Clone)]
pub struct Aggregate {
    stats: Vec<Stat>,
    pub completed: u64,
    pub cancelled: u64,
    pub good: u64,
    pub output_tokens: u64,
    pub input_tokens: u64,
    /// By (HTTP code, type): the count and the first message seen.
    pub errors: BTreeMap<(Option<u16>, &'static str), (u64, String)>,
    pub first_start_ns: Option<u64>,
    pub last_end_ns: Option<u64>,
    /// The least exact source of any completed request's counts (none completed: `None`).
    pub token_source: Option<TokenSource>,
    /// TTFT by turn index: how the first token slows as a session's history grows.
    pub ttft_by_turn: BTreeMap<u32, Stat>,
    slos: Slos,
}

impl Aggregate {
    pub fn new(slos: Slos) -> Self {
        Aggregate {
            stats: DISTRIBUTIONS.iter().map(|m| Stat::new(m.scale)).collect(),
            completed: 0,
            cancelled: 0,
            good: 0,
            output_tokens: 0,
            input_tokens: 0,
            errors: BTreeMap::new(),
            first_start_ns: None,
            last_end_ns: None,
            token_source: None,
            ttft_by_turn: BTreeMap::new(),
            slos,
        }
    }

    pub fn stat(&self, tag: &str) -> Option<&Stat> {
        DISTRIBUTIONS.iter().position(|m| m.tag == tag).map(|i| &self.stats[i])
    }

    pub fn error_count(&self) -> u64 {
        self.errors.values().map(|(n, _)| n).sum()
    }

    pub fn add(&mut self, record: &Record) {
        self.first_start_ns = Some(self.first_start_ns.map_or(record.start_ns, |s| s.min(record.start_ns)));
        self.last_end_ns = Some(self.last_end_ns.map_or(record.end_ns, |e| e.max(record.end_ns)));
        if record.cancelled {
            self.cancelled += 1;
        }
        if let Some(error) = &record.error {
            let entry =
                self.errors.entry((error.code, error.kind)).or_insert_with(|| (0, error.message.clone()));
            entry.0 += 1;
            return;
        }
        self.completed += 1;
        self.output_tokens += record.output_tokens;
        self.input_tokens += record.input_tokens;
        self.token_source = self.token_source.max(Some(record.token_source));
        let d = record.derived();
        if !self.slos.is_empty() && self.slos.met_by(&d) {
            self.good += 1;
        }
        let values = [
            Some(d.request_latency),
            d.time_to_first_token,
            d.inter_token_latency,
            None,
            d.output_token_throughput_per_user,
            Some(record.output_tokens as f64),
            Some(record.input_tokens as f64),
            Some(d.credit_to_start_latency),
        ];
        for (stat, value) in self.stats.iter_mut().zip(values) {
            if let Some(value) = value {
                stat.record(value);
            }
        }
        if let Some(ttft) = d.time_to_first_token {
            self.ttft_by_turn.entry(record.turn).or_insert_with(|| Stat::new(1000.0)).record(ttft);
        }
        for gap in d.inter_chunk_latency {
            self.stats[3].record(gap);
        }
    }

    /// Last response − first request start, in seconds.
    pub fn duration_s(&self) -> f64 {
        match (self.first_start_ns, self.last_end_ns) {
            (Some(start), Some(end)) => end.saturating_sub(start) as f64 / 1e9,
            _ => 0.0,
        }
    }

    /// The scalar metrics: (tag, header, unit, value).
    fn scalars(&self) -> Vec<(&'static str, &'static str, &'static str, f64)> {
        let duration = self.duration_s();
        let per_s = |n: u64| if duration > 0.0 { n as f64 / duration } else { 0.0 };
        let mut out = vec![
            ("request_throughput", "Request Throughput", "requests/sec", per_s(self.completed)),
            ("request_count", "Request Count", "requests", self.completed as f64),
            ("error_request_count", "Error Request Count", "requests", self.error_count() as f64),
            ("cancelled_request_count", "Cancelled Request Count", "requests", self.cancelled as f64),
            ("output_token_throughput", "Output Token Throughput", "tokens/sec", per_s(self.output_tokens)),
            ("input_token_throughput", "Input Token Throughput", "tokens/sec", per_s(self.input_tokens)),
            (
                "total_token_throughput",
                "Total Token Throughput",
                "tokens/sec",
                per_s(self.output_tokens + self.input_tokens),
            ),
            ("total_output_tokens", "Total Output Tokens", "tokens", self.output_tokens as f64),
            ("total_osl", "Total Output Sequence Length", "tokens", self.output_tokens as f64),
            ("total_isl", "Total Input Sequence Length", "tokens", self.input_tokens as f64),
            ("benchmark_duration", "Benchmark Duration", "sec", duration),
        ];
        if !self.slos.is_empty() {
            out.push(("good_request_count", "Good Request Count", "requests", self.good as f64));
            out.push(("goodput", "Goodput", "requests/sec", per_s(self.good)));
        }
        out
    }

    /// The metrics in the shape of aiperf's `profile_export_aiperf.json`; `extra` (run
    /// information) is merged in at the top level.
    pub fn to_aiperf_json(&self, extra: serde_json::Map<String, serde_json::Value>) -> serde_json::Value {
        let mut out = serde_json::Map::new();
        out.insert("schema_version".into(), "1.4".into());
        for (tag, _, unit, value) in self.scalars() {
            out.insert(tag.into(), serde_json::json!({"unit": unit, "avg": value}));
        }
        for (metric, stat) in DISTRIBUTIONS.iter().zip(&self.stats) {
            if stat.count() > 0 {
                out.insert(metric.tag.into(), stat.to_json(metric.unit));
            }
        }
        out.insert(
            "error_summary".into(),
            self.errors
                .iter()
                .map(|((code, kind), (count, message))| {
                    serde_json::json!({
                        "error_details": {"code": code, "type": kind, "message": message},
                        "count": count,
                    })
                })
                .collect(),
        );
        out.insert("token_source".into(), self.token_source.map(TokenSource::as_str).into());
        // Sessions only: a run of single requests has turn 0 alone, already the whole TTFT.
        if self.ttft_by_turn.keys().any(|&t| t > 0) {
            let by_turn = self.ttft_by_turn.iter().map(|(turn, stat)| {
                let mut row = stat.to_json("ms");
                row["turn_index"] = (*turn).into();
                row
            });
            out.insert("time_to_first_token_by_turn".into(), by_turn.collect());
        }
        out.extend(extra);
        serde_json::Value::Object(out)
    }

    /// aiperf's `profile_export_aiperf.csv`: a block of distributions, a blank line, a block of
    /// scalars; rows sorted by name, numbers with two decimals, CRLF line ends (Python's csv
    /// module writes those, and byte-level diffs against aiperf's files stay clean).
    pub fn to_aiperf_csv(&self) -> String {
        let mut rows: Vec<(String, &Stat)> = DISTRIBUTIONS
            .iter()
            .zip(&self.stats)
            .filter(|(_, stat)| stat.count() > 0)
            .map(|(m, stat)| (format!("{} ({})", m.header, m.unit), stat))
            .collect();
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        let mut out = String::from("Metric,avg,min,max,sum,p1,p5,p10,p25,p50,p75,p90,p95,p99,std\n");
        for (name, stat) in rows {
            out.push_str(&csv_field(&name));
            for v in [stat.mean(), stat.min, stat.max, stat.sum] {
                out.push_str(&format!(",{v:.2}"));
            }
            for (_, q) in PERCENTILES {
                out.push_str(&format!(",{:.2}", stat.quantile(q)));
            }
            out.push_str(&format!(",{:.2}\n", stat.std()));
        }
        out.push_str("\nMetric,Value\n");
        let mut scalars: Vec<(String, f64)> = self
            .scalars()
            .into_iter()
            .map(|(_, header, unit, v)| (format!("{header} ({unit})"), v))
            .collect();
        scalars.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, value) in scalars {
            out.push_str(&format!("{},{value:.2}\n", csv_field(&name)));
        }
        out.replace('\n', "\r\n")
    }
}

fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}
