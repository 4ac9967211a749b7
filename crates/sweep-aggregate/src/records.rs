//! Recomputing a point's figures from its per-request records (`profile_export.jsonl`).
//!
//! Each file is read on its own, one line at a time, by a typed reader that keeps the profiling
//! phase's few fields a figure needs and skips the rest (most of a line is the list of
//! inter-chunk gaps) without converting it; files are spread over the cores. Each file is reduced
//! to its figures as soon as it is read, with aiperf's definitions: errors and cancelled requests
//! counted apart and kept out of the latency statistics, percentiles by linear interpolation
//! between ranks. Memory holds one file's kept values per core (8 bytes a value), never the whole
//! sweep's.
//!
//! Why plain Rust and not a polars group-by: the figures are a mean and a few percentiles per
//! file, which need no query engine, and polars' lazy engine was the largest part of a cold build
//! (docs/benchmarks.md).
//!
//! Why not polars' own NDJSON scan: it builds every value of a line, the gap lists included, and
//! ran at ≈110 MB/s per core here — 13.9 s for the benchmark's 2.6 GB, over the 10 s target. The
//! typed reader does the same work in a fraction of that (docs/benchmarks.md).
//!
//! A line that is not valid JSON (cut short by `kill -9`, a corrupt byte) is left out, and the
//! warning says how many.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::de::IgnoredAny;
use serde::Deserialize;

use crate::metrics::{Figures, Stat, TurnTtft, METRICS};

/// One point's records file.
#[derive(Debug, Clone)]
pub struct Input {
    pub path: PathBuf,
    /// aiperf's `phase_manifest.json` beside it, when there is one.
    pub phase_manifest: Option<PathBuf>,
}

/// What was made of one file.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    pub figures: Option<Figures>,
    /// TTFT per turn index, when the records are of multi-turn sessions.
    pub ttft_by_turn: Vec<TurnTtft>,
    /// A sentence for a warning (lines left out, nothing usable).
    pub warning: Option<String>,
}

/// The per-request metrics the table needs, as aiperf's record tags.
const PER_REQUEST: [&str; 6] = [
    "time_to_first_token",
    "inter_token_latency",
    "request_latency",
    "output_token_throughput_per_user",
    "input_sequence_length",
    "output_sequence_length",
];

#[derive(Deserialize)]
struct Line<'a> {
    #[serde(borrow)]
    metadata: Metadata<'a>,
    #[serde(default)]
    metrics: Metrics,
    #[serde(default)]
    error: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct Metadata<'a> {
    #[serde(borrow, default)]
    benchmark_phase: Option<Cow<'a, str>>,
    #[serde(default)]
    request_start_ns: Option<i64>,
    #[serde(default)]
    request_end_ns: Option<i64>,
    #[serde(default)]
    was_cancelled: Option<bool>,
    #[serde(default)]
    turn_index: Option<u32>,
}

#[derive(Deserialize, Default)]
struct Value {
    value: Option<f64>,
}

/// Unknown metrics (the gap lists, aiperf's http_* timings) are skipped unconverted.
#[derive(Deserialize, Default)]
#[serde(default)]
struct Metrics {
    time_to_first_token: Value,
    inter_token_latency: Value,
    request_latency: Value,
    output_token_throughput_per_user: Value,
    input_sequence_length: Value,
    output_sequence_length: Value,
}

impl Metrics {
    fn values(&self) -> [Option<f64>; 6] {
        [
            self.time_to_first_token.value,
            self.inter_token_latency.value,
            self.request_latency.value,
            self.output_token_throughput_per_user.value,
            self.input_sequence_length.value,
            self.output_sequence_length.value,
        ]
    }
}

/// The kept values of one file's profiling-phase requests.
#[derive(Default)]
struct Kept {
    /// Profiling-phase records, errored and cancelled ones included.
    records: usize,
    errored: u64,
    cancelled: u64,
    /// Over every profiling record: the phase's extent on the wall clock, in integer nanoseconds
    /// (stamps near 1.8e18 lose ~256 ns as floats).
    first_start_ns: Option<i64>,
    last_end_ns: Option<i64>,
    /// Per metric, the values of the requests that neither failed nor were cancelled.
    values: [Vec<f64>; 6],
    /// Those requests' TTFTs again, by turn index.
    ttft_by_turn: BTreeMap<u32, Vec<f64>>,
}

impl Kept {
    fn push(&mut self, record: &Line) {
        self.records += 1;
        let cancelled = record.metadata.was_cancelled.unwrap_or(false);
        if cancelled {
            self.cancelled += 1;
        } else if record.error.is_some() {
            self.errored += 1;
        }
        if let Some(start) = record.metadata.request_start_ns {
            self.first_start_ns = Some(self.first_start_ns.map_or(start, |s| s.min(start)));
        }
        if let Some(end) = record.metadata.request_end_ns {
            self.last_end_ns = Some(self.last_end_ns.map_or(end, |e| e.max(end)));
        }
        if cancelled || record.error.is_some() {
            return;
        }
        for (column, value) in self.values.iter_mut().zip(record.metrics.values()) {
            column.extend(value);
        }
        if let (Some(turn), Some(ttft)) =
            (record.metadata.turn_index, record.metrics.time_to_first_token.value)
        {
            self.ttft_by_turn.entry(turn).or_default().push(ttft);
        }
    }
}

/// Reads one file's profiling-phase records; the count is of lines that were not JSON.
fn read_file(path: &Path) -> Result<(Kept, usize), String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read ({e})"))?;
    let mut kept = Kept::default();
    let mut skipped = 0;
    for line in bytes.split(|&b| b == b'\n') {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let Ok(record) = serde_json::from_slice::<Line>(line) else {
            skipped += 1;
            continue;
        };
        if record.metadata.benchmark_phase.as_deref() == Some("profiling") {
            kept.push(&record);
        }
    }
    Ok((kept, skipped))
}

/// Figures for every input, in order. Files are dealt to the cores in turn, and each is reduced
/// to its figures as soon as it is read, so memory holds one file's values per core, however
/// many points a sweep has.
pub fn compute(inputs: &[Input]) -> Vec<Output> {
    if inputs.is_empty() {
        return Vec::new();
    }
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(inputs.len());
    let mut outputs: Vec<Option<Output>> = (0..inputs.len()).map(|_| None).collect();
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    let mine = inputs.iter().enumerate().skip(t).step_by(threads);
                    mine.map(|(i, input)| (i, one(input))).collect::<Vec<_>>()
                })
            })
            .collect();
        for worker in workers {
            for (i, output) in worker.join().expect("a records reader panicked") {
                outputs[i] = Some(output);
            }
        }
    });
    outputs.into_iter().map(|o| o.expect("every input has a worker")).collect()
}

fn one(input: &Input) -> Output {
    let (mut kept, skipped) = match read_file(&input.path) {
        Ok(read) => read,
        Err(why) => return Output { figures: None, ttft_by_turn: Vec::new(), warning: Some(why) },
    };
    let note = (skipped > 0).then(|| {
        format!(
            "{skipped} line(s) are not aiperf records (cut short by a crash, or corrupt) and were left out"
        )
    });
    if kept.records == 0 {
        let warning = note.unwrap_or_else(|| "no profiling-phase record in it".to_owned());
        return Output { figures: None, ttft_by_turn: Vec::new(), warning: Some(warning) };
    }
    let ttft_by_turn = by_turn(&mut kept.ttft_by_turn);
    Output { figures: Some(finish(kept, input)), ttft_by_turn, warning: note }
}

fn finish(mut kept: Kept, input: &Input) -> Figures {
    let mut figures = Figures::empty();
    for (slot, metric) in figures.0.iter_mut().zip(METRICS) {
        let Some(column) = PER_REQUEST.iter().position(|key| *key == metric.key) else { continue };
        let values = &mut kept.values[column];
        *slot = match metric.stat {
            Stat::Scalar => continue,
            Stat::Avg => mean(values),
            Stat::P(p) => {
                // Sorted once per metric; the later percentiles find it sorted already.
                if !values.is_sorted_by(|a, b| a <= b) {
                    values.sort_unstable_by(f64::total_cmp);
                }
                percentile(values, f64::from(p) / 100.0)
            }
        };
    }
    let valid = (kept.records as u64 - kept.errored - kept.cancelled) as f64;
    figures.set("request_count", Some(valid));
    figures.set("error_request_count", Some(kept.errored as f64));
    figures.set("cancelled_request_count", Some(kept.cancelled as f64));
    let span = kept.first_start_ns.zip(kept.last_end_ns).map(|(s, e)| e - s).filter(|ns| *ns > 0);
    let span = span.map(|ns| ns as f64 / 1e9);
    figures.set("benchmark_duration_s", span);
    // aiperf divides its throughputs by the profiling phase's own window (from before the first
    // request to after the last response), which only its phase manifest records.
    let window = input.phase_manifest.as_deref().and_then(phase_window).or(span);
    if let Some(seconds) = window.filter(|s| *s > 0.0) {
        let tokens = |key: &str| {
            let column = PER_REQUEST.iter().position(|k| *k == key).expect("a kept metric");
            kept.values[column].iter().sum::<f64>()
        };
        let (output, input) = (tokens("output_sequence_length"), tokens("input_sequence_length"));
        figures.set("request_throughput", Some(valid / seconds));
        figures.set("output_token_throughput", Some(output / seconds));
        figures.set("total_token_throughput", Some((output + input) / seconds));
    }
    figures
}

/// Per turn index, as the runner's summary has it: only for sessions (some turn above 0).
fn by_turn(turns: &mut BTreeMap<u32, Vec<f64>>) -> Vec<TurnTtft> {
    if !turns.keys().any(|&t| t > 0) {
        return Vec::new();
    }
    turns
        .iter_mut()
        .map(|(&turn_index, values)| {
            values.sort_unstable_by(f64::total_cmp);
            TurnTtft {
                turn_index,
                count: values.len() as u64,
                avg_ms: mean(values),
                p50_ms: percentile(values, 0.5),
                p99_ms: percentile(values, 0.99),
            }
        })
        .collect()
}

fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

/// The `q` quantile of sorted values by linear interpolation between the two nearest ranks
/// (numpy's default method, which aiperf uses).
fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    let last = sorted.len().checked_sub(1)?;
    let rank = q * last as f64;
    let (low, high) = (rank.floor() as usize, (rank.ceil() as usize).min(last));
    Some(sorted[low] + (sorted[high] - sorted[low]) * (rank - low as f64))
}

/// The profiling phase's duration in seconds from aiperf's `phase_manifest.json`.
fn phase_window(path: &Path) -> Option<f64> {
    let value: serde_json::Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    let phase = value["phases"].as_array()?.iter().find(|p| p["phase_kind"] == "profiling")?;
    let (start, end) = (phase["start_ns"].as_i64()?, phase["end_ns"].as_i64()?);
    (end > start).then(|| (end - start) as f64 / 1e9)
}
