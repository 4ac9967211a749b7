//! Recomputing a point's figures from its per-request records (`profile_export.jsonl`).
//!
//! Each file is read on its own, one line at a time, by a typed reader that keeps the profiling
//! phase's few fields a figure needs and skips the rest (most of a line is the list of
//! inter-chunk gaps) without converting it; files are spread over the cores. The kept values of
//! every file go into one polars frame, where one lazy group-by computes each file's figures with
//! aiperf's definitions: errors and cancelled requests counted apart and kept out of the latency
//! statistics, percentiles by linear interpolation between ranks. Files go through in batches,
//! so memory is bounded by one batch's kept columns, never by the size or number of the files.
//!
//! Why not polars' own NDJSON scan: it builds every value of a line, the gap lists included, and
//! ran at ≈110 MB/s per core here — 13.9 s for the benchmark's 2.6 GB, over the 10 s target. The
//! typed reader does the same work in a fraction of that (docs/benchmarks.md).
//!
//! A line that is not valid JSON (cut short by `kill -9`, a corrupt byte) is left out, and the
//! warning says how many.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use polars::prelude::*;
use serde::de::IgnoredAny;
use serde::Deserialize;

use crate::metrics::{Figures, Stat, METRICS};

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

/// The kept values of the profiling-phase requests of some files, as columns.
#[derive(Default)]
struct Columns {
    file: Vec<u32>,
    start_ns: Vec<Option<i64>>,
    end_ns: Vec<Option<i64>>,
    cancelled: Vec<bool>,
    errored: Vec<bool>,
    metrics: [Vec<Option<f64>>; 6],
}

impl Columns {
    fn append(&mut self, other: Columns) {
        self.file.extend(other.file);
        self.start_ns.extend(other.start_ns);
        self.end_ns.extend(other.end_ns);
        self.cancelled.extend(other.cancelled);
        self.errored.extend(other.errored);
        for (a, b) in self.metrics.iter_mut().zip(other.metrics) {
            a.extend(b);
        }
    }

    fn frame(self) -> PolarsResult<DataFrame> {
        let mut columns = vec![
            Column::new("file".into(), self.file),
            Column::new("start_ns".into(), self.start_ns),
            Column::new("end_ns".into(), self.end_ns),
            Column::new("cancelled".into(), self.cancelled),
            Column::new("errored".into(), self.errored),
        ];
        for (name, values) in PER_REQUEST.iter().zip(self.metrics) {
            columns.push(Column::new((*name).into(), values));
        }
        DataFrame::new_infer_height(columns)
    }
}

/// How one file's reading went, beside its columns.
enum Read {
    Ok { skipped: usize },
    Failed(String),
}

fn read_file(path: &Path, index: u32, out: &mut Columns) -> Read {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => return Read::Failed(format!("cannot read ({e})")),
    };
    let mut skipped = 0;
    for line in bytes.split(|&b| b == b'\n') {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let Ok(record) = serde_json::from_slice::<Line>(line) else {
            skipped += 1;
            continue;
        };
        if record.metadata.benchmark_phase.as_deref() != Some("profiling") {
            continue;
        }
        out.file.push(index);
        out.start_ns.push(record.metadata.request_start_ns);
        out.end_ns.push(record.metadata.request_end_ns);
        out.cancelled.push(record.metadata.was_cancelled.unwrap_or(false));
        out.errored.push(record.error.is_some());
        for (column, value) in out.metrics.iter_mut().zip(record.metrics.values()) {
            column.push(value);
        }
    }
    Read::Ok { skipped }
}

/// Each file's figures, from a frame of all their kept values.
fn per_file(frame: DataFrame) -> PolarsResult<DataFrame> {
    let valid = col("errored").not().and(col("cancelled").not());
    let mut aggs = vec![
        valid.clone().sum().alias("request_count"),
        col("errored").and(col("cancelled").not()).sum().alias("error_request_count"),
        col("cancelled").sum().alias("cancelled_request_count"),
        // In integer nanoseconds: wall-clock stamps near 1.8e18 lose ~256 ns as floats.
        (col("end_ns").max() - col("start_ns").min()).alias("span_ns"),
        col("output_sequence_length").filter(valid.clone()).sum().alias("output_tokens"),
        col("input_sequence_length").filter(valid.clone()).sum().alias("input_tokens"),
    ];
    for metric in METRICS {
        let column = col(metric.key).filter(valid.clone());
        let expr = match metric.stat {
            Stat::Scalar => continue,
            Stat::Avg => column.mean(),
            Stat::P(p) => column.quantile(lit(f64::from(p) / 100.0), QuantileMethod::Linear),
        };
        aggs.push(expr.alias(metric.column));
    }
    frame.lazy().group_by([col("file")]).agg(aggs).collect()
}

/// Files read and aggregated together: bounds the kept columns (≈60 bytes a request) to what
/// this many files hold, however many points a sweep has.
const FILES_PER_BATCH: usize = 256;

/// Figures for every input, in order.
pub fn compute(inputs: &[Input]) -> Vec<Output> {
    inputs.chunks(FILES_PER_BATCH).flat_map(compute_batch).collect()
}

fn compute_batch(inputs: &[Input]) -> Vec<Output> {
    if inputs.is_empty() {
        return Vec::new();
    }
    // Files are dealt to the cores in turn; each thread keeps its own columns.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(inputs.len());
    let parts: Vec<(Columns, Vec<(usize, Read)>)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    let mut columns = Columns::default();
                    let mut reads = Vec::new();
                    for (i, input) in inputs.iter().enumerate().skip(t).step_by(threads) {
                        reads.push((i, read_file(&input.path, i as u32, &mut columns)));
                    }
                    (columns, reads)
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().expect("a records reader panicked")).collect()
    });
    let mut columns = Columns::default();
    let mut reads: Vec<Option<Read>> = (0..inputs.len()).map(|_| None).collect();
    for (part, part_reads) in parts {
        columns.append(part);
        for (i, read) in part_reads {
            reads[i] = Some(read);
        }
    }
    let by_file: std::collections::HashMap<u32, Raw> = match columns.frame().and_then(per_file) {
        Ok(frame) => rows(&frame).into_iter().collect(),
        // Only a bug (a schema mismatch between the columns above) can fail here.
        Err(e) => {
            return inputs
                .iter()
                .map(|_| Output { figures: None, warning: Some(format!("polars: {e}")) })
                .collect()
        }
    };
    inputs
        .iter()
        .zip(reads)
        .enumerate()
        .map(|(i, (input, read))| {
            let skipped = match read {
                Some(Read::Ok { skipped }) => skipped,
                Some(Read::Failed(why)) => return Output { figures: None, warning: Some(why) },
                None => 0,
            };
            let note = (skipped > 0).then(|| {
                format!("{skipped} line(s) are not aiperf records (cut short by a crash, or corrupt) and were left out")
            });
            match by_file.get(&(i as u32)) {
                Some(raw) => Output { figures: Some(finish(raw, input)), warning: note },
                None => Output {
                    figures: None,
                    warning: Some(note.unwrap_or_else(|| "no profiling-phase record in it".to_owned())),
                },
            }
        })
        .collect()
}

/// One file's aggregates, by column name.
type Raw = Vec<(String, Option<f64>)>;

fn rows(frame: &DataFrame) -> Vec<(u32, Raw)> {
    let files = frame.column("file").ok().and_then(|c| c.u32().ok().cloned());
    let Some(files) = files else { return Vec::new() };
    let columns: Vec<(String, Float64Chunked)> = frame
        .columns()
        .iter()
        .filter(|c| c.name() != "file")
        .filter_map(|c| {
            let cast = c.cast(&DataType::Float64).ok()?;
            Some((c.name().to_string(), cast.f64().ok()?.clone()))
        })
        .collect();
    (0..frame.height())
        .map(|i| {
            let file = files.get(i).unwrap_or(u32::MAX);
            let raw = columns.iter().map(|(name, values)| (name.clone(), values.get(i))).collect();
            (file, raw)
        })
        .collect()
}

fn finish(raw: &Raw, input: &Input) -> Figures {
    let get = |name: &str| raw.iter().find(|(n, _)| n == name).and_then(|(_, v)| *v);
    let mut figures = Figures::empty();
    for (slot, metric) in figures.0.iter_mut().zip(METRICS) {
        if metric.stat != Stat::Scalar {
            *slot = get(metric.column);
        }
    }
    let count = get("request_count");
    figures.set("request_count", count);
    figures.set("error_request_count", get("error_request_count"));
    figures.set("cancelled_request_count", get("cancelled_request_count"));
    let span = get("span_ns").filter(|ns| *ns > 0.0).map(|ns| ns / 1e9);
    figures.set("benchmark_duration_s", span);
    // aiperf divides its throughputs by the profiling phase's own window (from before the first
    // request to after the last response), which only its phase manifest records.
    let window = input.phase_manifest.as_deref().and_then(phase_window).or(span);
    if let Some(seconds) = window.filter(|s| *s > 0.0) {
        let rate = |v: Option<f64>| v.map(|v| v / seconds);
        figures.set("request_throughput", rate(count));
        figures.set("output_token_throughput", rate(get("output_tokens")));
        let total = get("output_tokens").zip(get("input_tokens")).map(|(o, i)| o + i);
        figures.set("total_token_throughput", rate(total));
    }
    figures
}

/// The profiling phase's duration in seconds from aiperf's `phase_manifest.json`.
fn phase_window(path: &Path) -> Option<f64> {
    let value: serde_json::Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    let phase = value["phases"].as_array()?.iter().find(|p| p["phase_kind"] == "profiling")?;
    let (start, end) = (phase["start_ns"].as_i64()?, phase["end_ns"].as_i64()?);
    (end > start).then(|| (end - start) as f64 / 1e9)
}
