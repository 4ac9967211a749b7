//! A point's GPU telemetry (`engine.metrics.gpu_interval_ms`), written by the benchmark step and
//! read by `sweep aggregate`:
//!
//! - `points/<id>/gpu_metrics.jsonl`: one [`Sample`] per GPU and sample over the point's
//!   measured window;
//! - `points/<id>/gpu_metrics.json`: its [`GpuSummary`]: per GPU and over all of them, the mean
//!   power, the energy over the window, utilisation, memory and clocks, and what could not be
//!   sampled.

use serde::{Deserialize, Serialize};

/// File names in a point's folder.
pub const SAMPLES: &str = "gpu_metrics.jsonl";
pub const SUMMARY: &str = "gpu_metrics.json";

/// One GPU's reading. A field the GPU does not report (`[N/A]`, `[Not Supported]`) is `None`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Unix seconds when the line was read.
    pub time: f64,
    /// The node the GPU is in.
    pub host: String,
    /// `nvidia-smi`'s index on that node.
    pub gpu: u32,
    pub power_w: Option<f64>,
    /// Percent of the time a kernel ran (`utilization.gpu`).
    pub util_pct: Option<f64>,
    pub memory_mib: Option<f64>,
    pub sm_clock_mhz: Option<f64>,
}

/// One GPU over the window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuStats {
    pub host: String,
    pub gpu: u32,
    pub samples: u64,
    pub power_mean_w: Option<f64>,
    pub power_max_w: Option<f64>,
    /// Joules: power integrated over the window (trapezoids between samples; the first and last
    /// reading held to the window's edges).
    pub energy_j: Option<f64>,
    pub util_mean_pct: Option<f64>,
    pub memory_max_mib: Option<f64>,
    pub sm_clock_mean_mhz: Option<f64>,
}

/// `gpu_metrics.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GpuSummary {
    pub interval_ms: u64,
    /// Unix seconds: the point's measured window (its first request sent to its last answer).
    pub window: (f64, f64),
    pub gpus: Vec<GpuStats>,
    /// Over every GPU that reported power: the sum of their energies and of their mean powers.
    pub energy_j: Option<f64>,
    pub power_w: Option<f64>,
    /// What could not be sampled, once per node and cause (no `nvidia-smi`, a hang, a line it
    /// did not expect).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl GpuSummary {
    /// The summary of `samples` (any order) over `window`.
    pub fn of(samples: &[Sample], window: (f64, f64), interval_ms: u64, notes: Vec<String>) -> GpuSummary {
        let mut keys: Vec<(&str, u32)> = samples.iter().map(|s| (s.host.as_str(), s.gpu)).collect();
        keys.sort();
        keys.dedup();
        let gpus: Vec<GpuStats> = keys
            .into_iter()
            .map(|(host, gpu)| {
                let mut mine: Vec<&Sample> =
                    samples.iter().filter(|s| s.host == host && s.gpu == gpu).collect();
                mine.sort_by(|a, b| a.time.total_cmp(&b.time));
                let values = |f: &dyn Fn(&Sample) -> Option<f64>| -> Vec<f64> {
                    mine.iter().filter_map(|s| f(s)).filter(|v| v.is_finite()).collect()
                };
                let mean = |v: Vec<f64>| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
                let max = |v: Vec<f64>| v.into_iter().reduce(f64::max);
                let power: Vec<(f64, f64)> = mine
                    .iter()
                    .filter_map(|s| Some((s.time, s.power_w.filter(|p| p.is_finite())?)))
                    .collect();
                GpuStats {
                    host: host.to_owned(),
                    gpu,
                    samples: mine.len() as u64,
                    power_mean_w: mean(values(&|s| s.power_w)),
                    power_max_w: max(values(&|s| s.power_w)),
                    energy_j: energy(&power, window),
                    util_mean_pct: mean(values(&|s| s.util_pct)),
                    memory_max_mib: max(values(&|s| s.memory_mib)),
                    sm_clock_mean_mhz: mean(values(&|s| s.sm_clock_mhz)),
                }
            })
            .collect();
        let sum = |f: &dyn Fn(&GpuStats) -> Option<f64>| {
            let v: Vec<f64> = gpus.iter().filter_map(f).collect();
            (!v.is_empty()).then(|| v.iter().sum())
        };
        GpuSummary {
            interval_ms,
            window,
            energy_j: sum(&|g| g.energy_j),
            power_w: sum(&|g| g.power_mean_w),
            gpus,
            notes,
        }
    }
}

/// Joules from (time, watts) readings sorted by time, over `window`: trapezoids between
/// readings, the first and last held flat to the window's edges. `None` without a reading.
pub fn energy(readings: &[(f64, f64)], window: (f64, f64)) -> Option<f64> {
    let (start, end) = window;
    let (first, last) = (readings.first()?, readings.last()?);
    let mut joules = 0.0;
    if first.0 > start {
        joules += first.1 * (first.0.min(end) - start);
    }
    for pair in readings.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        // The part of the segment inside the window, with the power interpolated at its ends.
        let (from, to) = (a.0.max(start), b.0.min(end));
        if to <= from || b.0 <= a.0 {
            continue;
        }
        let at = |t: f64| a.1 + (b.1 - a.1) * (t - a.0) / (b.0 - a.0);
        joules += (at(from) + at(to)) / 2.0 * (to - from);
    }
    if last.0 < end {
        joules += last.1 * (end - last.0.max(start));
    }
    Some(joules)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(time: f64, gpu: u32, power: Option<f64>) -> Sample {
        Sample {
            time,
            host: "n0".into(),
            gpu,
            power_w: power,
            util_pct: Some(50.0),
            memory_mib: Some(1000.0 + time),
            sm_clock_mhz: Some(1400.0),
        }
    }

    #[test]
    fn energy_integrates_power_over_the_window_holding_the_edges() {
        // 100 W then 300 W a second later: 200 J between them, 100 J held before, 300 J after.
        assert_eq!(energy(&[(1.0, 100.0), (2.0, 300.0)], (0.0, 3.0)), Some(600.0));
        // Only the part inside the window counts: from 1.5 (200 W) to 2.
        assert_eq!(energy(&[(1.0, 100.0), (2.0, 300.0)], (1.5, 2.0)), Some(125.0));
        assert_eq!(energy(&[], (0.0, 1.0)), None);
    }

    #[test]
    fn a_summary_sums_the_gpus_and_leaves_unreported_power_out() {
        let samples = vec![
            sample(0.0, 0, Some(100.0)),
            sample(1.0, 0, Some(100.0)),
            sample(0.0, 1, Some(200.0)),
            sample(1.0, 1, Some(200.0)),
            sample(0.5, 2, None),
        ];
        let s = GpuSummary::of(&samples, (0.0, 1.0), 500, Vec::new());
        assert_eq!(s.gpus.len(), 3);
        assert_eq!(s.energy_j, Some(300.0));
        assert_eq!(s.power_w, Some(300.0));
        assert_eq!(s.gpus[2].energy_j, None);
        assert_eq!(s.gpus[0].memory_max_mib, Some(1001.0));
    }
}
