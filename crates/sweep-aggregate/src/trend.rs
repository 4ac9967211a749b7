//! A configuration over time: the report's trend charts, from the sweeps a history holds
//! (`sweep report DIR --history`). The history itself lives in `sweep-history`; this module
//! only draws what it is given.

use crate::compare::Point;
use crate::plot::{Chart, Series, XAxis};
use crate::GpuBasis;

/// The most configurations charted; the rest are counted in the report.
pub const MAX_CHARTS: usize = 24;

/// One sweep of the history (or the one being reported), oldest first.
#[derive(Debug, Clone)]
pub struct Run {
    /// `#3 · 2026-12-06 09:30 · nightly`.
    pub label: String,
    /// The history's id; `None` for the sweep being reported when it is not in the history.
    pub id: Option<i64>,
    pub points: Vec<Point>,
}

#[derive(Debug, Clone, Default)]
pub struct Trend {
    /// The configurations to follow (the matching keys of the sweep being reported).
    pub keys: Vec<String>,
    pub runs: Vec<Run>,
}

impl Trend {
    /// The configurations that at least two runs measured, in key order.
    fn followed(&self) -> Vec<&str> {
        let mut keys: Vec<&str> = self.keys.iter().map(String::as_str).collect();
        keys.sort_unstable();
        keys.dedup();
        keys.retain(|key| {
            self.runs.iter().filter(|run| run.points.iter().any(|p| p.key == *key)).count() >= 2
        });
        keys
    }

    /// Configurations measured more than once that are not charted (past [`MAX_CHARTS`]).
    pub fn uncharted(&self) -> usize {
        self.followed().len().saturating_sub(MAX_CHARTS)
    }

    /// A chart per followed configuration (at most [`MAX_CHARTS`]): each run's tokens/s/GPU on
    /// `basis`, with the 95 % interval of its repetitions.
    pub fn charts(&self, basis: GpuBasis) -> Vec<Chart> {
        let mut charts = Vec::new();
        for key in self.followed().into_iter().take(MAX_CHARTS) {
            let mut line = Vec::new();
            let mut intervals = Vec::new();
            for (k, run) in self.runs.iter().enumerate() {
                let Some(s) =
                    run.points.iter().find(|p| p.key == key).and_then(|p| p.figures.get(basis.column()))
                else {
                    continue;
                };
                let x = (k + 1) as f64;
                line.push((x, s.mean));
                if let (Some(std), true) = (s.std, s.n > 1) {
                    let half = crate::repeats::t_975(s.n as usize - 1) * std / f64::from(s.n).sqrt();
                    intervals.push([(x, s.mean - half), (x, s.mean + half)]);
                }
            }
            charts.push(Chart {
                name: format!("trend_{}", charts.len() + 1),
                title: format!("Over time: {key}"),
                x_label: "run (oldest first; the table below names each)".to_owned(),
                y_label: format!(
                    "output tokens/s per GPU ({})",
                    basis.column().trim_start_matches("tps_per_gpu_")
                ),
                x_axis: XAxis::Numbered,
                series: vec![Series {
                    label: "tokens/s/GPU, 95 % interval".to_owned(),
                    color: 0,
                    scatter: Vec::new(),
                    line,
                    curve: Vec::new(),
                    intervals,
                }],
            });
        }
        charts
    }
}
