//! Reading a point's `profile_export_aiperf.json` — aiperf's own or the runner's, which writes the
//! same keys — into [`Figures`] plus what the file says about how it was measured.

use std::path::Path;

use serde_json::Value;

use crate::metrics::{Figures, Stat, TurnTtft, METRICS};

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Summary {
    pub figures: Figures,
    /// From `input_config`: the synthetic dataset's mean ISL/OSL and the profiling phase's
    /// concurrency. Used only where no plan says them (plain aiperf exports).
    pub isl: Option<i64>,
    pub osl: Option<i64>,
    pub concurrency: Option<i64>,
    /// The profiling phase's target rate (aiperf's `request_rate` phases, and ours).
    pub request_rate: Option<f64>,
    /// The runner's shared-prefix share of each synthetic prompt (`--prefix-ratio`).
    pub prefix_ratio: Option<f64>,
    /// `server_usage`, `tokenizer` or `client_count` (the runner), or from aiperf's `use_server_token_count`.
    pub token_source: Option<String>,
    /// `aiperf 0.13.0` or `sweep-runner 0.1.0`.
    pub generator: Option<String>,
    pub model: Option<String>,
    /// False when the producer says the run stopped early.
    pub is_complete: Option<bool>,
    /// The runner's `time_to_first_token_by_turn`, for points of multi-turn sessions.
    pub ttft_by_turn: Vec<TurnTtft>,
}

/// Reads and interprets one summary file; the error is a sentence for a warning.
pub fn read(path: &Path) -> Result<Summary, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read: {e}"))?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|e| format!("not valid JSON ({e})"))?;
    parse(&value)
}

pub fn parse(value: &Value) -> Result<Summary, String> {
    let Some(object) = value.as_object() else {
        return Err("not a JSON object: not an aiperf summary".to_owned());
    };
    if !object.contains_key("request_count") && !object.contains_key("request_throughput") {
        return Err("no request_count or request_throughput: not an aiperf summary".to_owned());
    }
    let mut figures = Figures::empty();
    for (slot, metric) in figures.0.iter_mut().zip(METRICS) {
        let entry = &value[metric.key];
        *slot = match metric.stat {
            Stat::Scalar | Stat::Avg => entry["avg"].as_f64(),
            Stat::P(p) => entry[format!("p{p}")].as_f64(),
        };
    }
    // aiperf 0.13 writes no error count when nothing failed, only an empty `error_summary`
    // (a list of {error_details, count}); zero is then a fact, not a guess.
    if figures.get("error_request_count").is_none() {
        if let Some(list) = value["error_summary"].as_array() {
            let total: f64 = list.iter().filter_map(|e| e["count"].as_f64()).sum();
            figures.set("error_request_count", Some(total));
        }
    }
    let config = &value["input_config"];
    let dataset = &config["datasets"][0]["prompts"];
    let as_int = |v: &Value| v.as_f64().map(|f| f.round() as i64);
    let profiling = config["phases"]
        .as_array()
        .and_then(|phases| phases.iter().find(|p| p["kind"] == "profiling" || p["name"] == "profiling"));
    let token_source = value["token_source"].as_str().map(str::to_owned).or_else(|| {
        config["endpoint"]["use_server_token_count"]
            .as_bool()
            .map(|server| if server { "server_usage" } else { "tokenizer" }.to_owned())
    });
    let generator = match (value["aiperf_version"].as_str(), &value["generator"]) {
        (Some(v), _) => Some(format!("aiperf {v}")),
        (None, g) if g.is_object() => {
            Some(format!("{} {}", g["name"].as_str().unwrap_or("?"), g["version"].as_str().unwrap_or("?")))
        }
        _ => None,
    };
    Ok(Summary {
        figures,
        isl: as_int(&dataset["isl"]["mean"]),
        osl: as_int(&dataset["osl"]["mean"]),
        concurrency: profiling.and_then(|p| as_int(&p["concurrency"])),
        request_rate: profiling.and_then(|p| p["request_rate"].as_f64()),
        prefix_ratio: config["datasets"][0]["prefix"]["ratio"].as_f64(),
        token_source,
        generator,
        model: config["models"]["items"][0]["name"].as_str().map(str::to_owned),
        is_complete: value["is_complete"].as_bool(),
        ttft_by_turn: by_turn(&value["time_to_first_token_by_turn"]),
    })
}

/// `[{turn_index, count, avg, p50, p99, ...}]`; an entry without a turn index is left out.
fn by_turn(value: &Value) -> Vec<TurnTtft> {
    let entries = value.as_array().map(Vec::as_slice).unwrap_or_default();
    entries
        .iter()
        .filter_map(|e| {
            Some(TurnTtft {
                turn_index: u32::try_from(e["turn_index"].as_u64()?).ok()?,
                count: e["count"].as_u64().unwrap_or(0),
                avg_ms: e["avg"].as_f64(),
                p50_ms: e["p50"].as_f64(),
                p99_ms: e["p99"].as_f64(),
            })
        })
        .collect()
}
