//! Recomputing a point's figures from its per-request records (`profile_export.jsonl`), with one
//! lazy polars scan over every file at once: only the fields needed are materialised, memory
//! stays bounded by polars' streaming batches, and the figures follow aiperf's definitions —
//! profiling phase only, errors and cancelled requests counted apart, percentiles by linear
//! interpolation.
//!
//! A file the batch scan cannot parse (a line cut short by `kill -9`, a corrupt byte) is read
//! again alone with its unparseable lines left out, and the warning says how many.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use polars::prelude::*;

use crate::metrics::{Figures, Stat, METRICS};

/// One point's records file.
#[derive(Debug, Clone)]
pub struct Input {
    pub path: PathBuf,
    /// aiperf's `phase_manifest.json` beside it, when there is one.
    pub phase_manifest: Option<PathBuf>,
}

/// What the scan made of one file.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    pub figures: Option<Figures>,
    /// A sentence for a warning (lines skipped, nothing usable).
    pub warning: Option<String>,
}

/// The per-request metrics the table needs, as aiperf's record tags.
const PER_REQUEST: &[&str] = &[
    "time_to_first_token",
    "inter_token_latency",
    "request_latency",
    "output_token_throughput_per_user",
    "input_sequence_length",
    "output_sequence_length",
];

fn schema() -> Schema {
    let value = DataType::Struct(vec![Field::new("value".into(), DataType::Float64)]);
    let metrics =
        DataType::Struct(PER_REQUEST.iter().map(|k| Field::new((*k).into(), value.clone())).collect());
    let metadata = DataType::Struct(vec![
        Field::new("benchmark_phase".into(), DataType::String),
        Field::new("request_start_ns".into(), DataType::Int64),
        Field::new("request_end_ns".into(), DataType::Int64),
        Field::new("was_cancelled".into(), DataType::Boolean),
    ]);
    let error = DataType::Struct(vec![Field::new("type".into(), DataType::String)]);
    Schema::from_iter([
        Field::new("metadata".into(), metadata),
        Field::new("metrics".into(), metrics),
        Field::new("error".into(), error),
    ])
}

/// The per-file aggregation, on a frame of raw records with a `file` column.
fn per_file(lf: LazyFrame) -> LazyFrame {
    let meta = |name: &str| col("metadata").struct_().field_by_name(name);
    let mut columns = vec![
        col("file"),
        meta("benchmark_phase").alias("phase"),
        meta("request_start_ns").alias("start_ns"),
        meta("request_end_ns").alias("end_ns"),
        meta("was_cancelled").fill_null(lit(false)).alias("cancelled"),
        col("error").is_not_null().alias("errored"),
    ];
    for key in PER_REQUEST {
        columns
            .push(col("metrics").struct_().field_by_name(key).struct_().field_by_name("value").alias(*key));
    }
    let valid = col("errored").not().and(col("cancelled").not());
    let mut aggs = vec![
        len().alias("records"),
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
    lf.select(columns).filter(col("phase").eq(lit("profiling"))).group_by([col("file")]).agg(aggs)
}

fn scan(sources: ScanSources) -> LazyFrame {
    LazyJsonLineReader::new_with_sources(sources)
        .with_schema(Some(Arc::new(schema())))
        .with_include_file_paths(Some("file".into()))
        .finish()
        .map(per_file)
        // Building the plan does no I/O; an error here is a bug in the schema above.
        .expect("records scan plan")
}

/// Figures for every input, in order.
pub fn compute(inputs: &[Input]) -> Vec<Output> {
    if inputs.is_empty() {
        return Vec::new();
    }
    let paths: Vec<PlRefPath> =
        inputs.iter().map(|i| PlRefPath::new(i.path.to_string_lossy().as_ref())).collect();
    match scan(ScanSources::Paths(paths.into())).collect() {
        Ok(frame) => {
            let by_file = rows(&frame);
            inputs
                .iter()
                .map(|input| {
                    let key = input.path.to_string_lossy();
                    match by_file.iter().find(|(file, _)| *file == key) {
                        Some((_, raw)) => finish(raw, input),
                        // No profiling record at all.
                        None => Output {
                            figures: None,
                            warning: Some("no profiling-phase record in it".to_owned()),
                        },
                    }
                })
                .collect()
        }
        // Some file broke the batch: every file alone, the broken ones line by line.
        Err(_) if inputs.len() > 1 => inputs.iter().map(|i| compute_one(i)).collect(),
        Err(_) => vec![compute_one(&inputs[0])],
    }
}

/// One file alone: as is, else keeping only the lines that parse as JSON.
fn compute_one(input: &Input) -> Output {
    let bytes = match std::fs::read(&input.path) {
        Ok(b) => b,
        Err(e) => return Output { figures: None, warning: Some(format!("cannot read ({e})")) },
    };
    let mut kept = Vec::with_capacity(bytes.len());
    let mut skipped = 0usize;
    for line in bytes.split(|&b| b == b'\n') {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if serde_json::from_slice::<serde::de::IgnoredAny>(line).is_ok() {
            kept.extend_from_slice(line);
            kept.push(b'\n');
        } else {
            skipped += 1;
        }
    }
    let name: PlSmallStr = input.path.to_string_lossy().as_ref().into();
    let frame = JsonReader::new(std::io::Cursor::new(kept))
        .with_json_format(JsonFormat::JsonLines)
        .with_schema(Arc::new(schema()))
        .finish()
        .and_then(|raw| per_file(raw.lazy().with_column(lit(name.clone()).alias("file"))).collect());
    let skipped_note = (skipped > 0)
        .then(|| format!("{skipped} line(s) are not valid JSON (cut short by a crash?) and were left out"));
    match frame {
        Ok(frame) => match rows(&frame).into_iter().next() {
            Some((_, raw)) => {
                let mut out = finish(&raw, input);
                out.warning = skipped_note;
                out
            }
            None => Output {
                figures: None,
                warning: Some(skipped_note.unwrap_or_else(|| "no profiling-phase record in it".to_owned())),
            },
        },
        Err(e) => {
            Output { figures: None, warning: Some(format!("records do not have aiperf's shape ({e})")) }
        }
    }
}

/// One file's aggregates, by column name.
type Raw = Vec<(String, Option<f64>)>;

fn rows(frame: &DataFrame) -> Vec<(String, Raw)> {
    let files = frame.column("file").ok().and_then(|c| c.str().ok().cloned());
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
            let file = files.get(i).unwrap_or("").to_owned();
            let raw = columns.iter().map(|(name, values)| (name.clone(), values.get(i))).collect();
            (file, raw)
        })
        .collect()
}

fn finish(raw: &Raw, input: &Input) -> Output {
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
    Output { figures: Some(figures), warning: None }
}

/// The profiling phase's duration in seconds from aiperf's `phase_manifest.json`.
fn phase_window(path: &Path) -> Option<f64> {
    let value: serde_json::Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    let phase = value["phases"].as_array()?.iter().find(|p| p["phase_kind"] == "profiling")?;
    let (start, end) = (phase["start_ns"].as_i64()?, phase["end_ns"].as_i64()?);
    (end > start).then(|| (end - start) as f64 / 1e9)
}
