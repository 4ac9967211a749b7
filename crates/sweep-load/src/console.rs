//! The summary `sweep-runner profile` prints on a terminal, read from the point's aiperf-format
//! JSON so that it shows exactly the figures the exports hold: a row per distribution (avg, min,
//! p50, p90, p99, max) — with sessions, TTFT again for each turn index — then the rates and
//! counts, as aiperf's console does.

use std::fmt::Write as _;

/// Distributions, with their labels.
const ROWS: &[(&str, &str)] = &[
    ("time_to_first_token", "time to first token (ms)"),
    ("inter_token_latency", "inter-token latency (ms)"),
    ("request_latency", "request latency (ms)"),
    ("output_token_throughput_per_user", "output tokens/s per user"),
    ("input_sequence_length", "input sequence length"),
    ("output_sequence_length", "output sequence length"),
];

const STATS: [&str; 6] = ["avg", "min", "p50", "p90", "p99", "max"];

/// The table for `json` (the output of [`crate::Outcome::to_json`]); a metric it lacks (no
/// request finished) is left out.
pub fn summary_table(json: &serde_json::Value) -> String {
    let cell = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.2}"));
    let mut rows: Vec<(String, Vec<String>)> = Vec::new();
    let cells = |metric: &serde_json::Value| STATS.iter().map(|s| cell(metric[*s].as_f64())).collect();
    for (key, label) in ROWS {
        let metric = &json[*key];
        if metric.is_object() {
            rows.push(((*label).to_owned(), cells(metric)));
        }
        if *key == "time_to_first_token" {
            for turn in json["time_to_first_token_by_turn"].as_array().into_iter().flatten() {
                rows.push((format!("  turn {} (ms)", turn["turn_index"]), cells(turn)));
            }
        }
    }
    let label_width =
        ROWS.iter().map(|(_, l)| l.len()).chain(rows.iter().map(|(l, _)| l.len())).max().unwrap_or(0);
    let width = rows
        .iter()
        .flat_map(|(_, cells)| cells.iter().map(String::len))
        .chain(STATS.map(str::len))
        .max()
        .unwrap_or(0);
    let mut out = format!("{:label_width$}", "");
    for stat in STATS {
        let _ = write!(out, "  {stat:>width$}");
    }
    out.push('\n');
    for (label, cells) in &rows {
        let _ = write!(out, "{label:label_width$}");
        for c in cells {
            let _ = write!(out, "  {c:>width$}");
        }
        out.push('\n');
    }
    out.push('\n');
    let value = |key: &str| json[key]["avg"].as_f64();
    let lines = [
        ("request throughput", value("request_throughput").map(|v| format!("{v:.2} requests/s"))),
        ("output token throughput", value("output_token_throughput").map(|v| format!("{v:.2} tokens/s"))),
        (
            "requests",
            value("request_count").map(|n| {
                format!(
                    "{n} ({} errors, {} cancelled)",
                    value("error_request_count").unwrap_or(0.0),
                    value("cancelled_request_count").unwrap_or(0.0)
                )
            }),
        ),
        ("duration", value("benchmark_duration").map(|v| format!("{v:.2} s"))),
    ];
    for (label, text) in lines {
        if let Some(text) = text {
            let _ = writeln!(out, "{label:label_width$}  {text}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_per_distribution_then_the_rates() {
        let json = serde_json::json!({
            "time_to_first_token": {"unit": "ms", "avg": 12.5, "min": 10.0, "p50": 12.0, "p90": 14.0, "p99": 15.25, "max": 16.0},
            "time_to_first_token_by_turn": [
                {"turn_index": 0, "avg": 11.0, "min": 10.0, "p50": 11.0, "p90": 12.0, "p99": 12.0, "max": 12.0},
                {"turn_index": 1, "avg": 14.0, "min": 13.0, "p50": 14.0, "p90": 15.0, "p99": 16.0, "max": 16.0},
            ],
            "request_throughput": {"unit": "requests/sec", "avg": 4.0},
            "output_token_throughput": {"unit": "tokens/sec", "avg": 64.0},
            "request_count": {"unit": "requests", "avg": 20.0},
            "error_request_count": {"unit": "requests", "avg": 1.0},
            "benchmark_duration": {"unit": "sec", "avg": 5.0},
        });
        let text = summary_table(&json);
        // (A raw string: a `\` line continuation would eat the header's leading spaces.)
        let expected = r"
                            avg    min    p50    p90    p99    max
time to first token (ms)  12.50  10.00  12.00  14.00  15.25  16.00
  turn 0 (ms)             11.00  10.00  11.00  12.00  12.00  12.00
  turn 1 (ms)             14.00  13.00  14.00  15.00  16.00  16.00

request throughput        4.00 requests/s
output token throughput   64.00 tokens/s
requests                  20 (1 errors, 0 cancelled)
duration                  5.00 s
";
        assert_eq!(text, &expected[1..]);
    }
}
