//! What `sweep explore` did, for the report: the frontier's growth against the GPU-hours spent,
//! and every deployment it did not measure with the reason. `explore.json` itself is
//! `sweep-explore`'s; the caller reads it and hands this module what to draw (as with the
//! history's trend).

use crate::plot::{Chart, Series, XAxis};

#[derive(Debug, Clone, Default)]
pub struct Exploration {
    /// The budget, GPU-hours (the last wave's).
    pub budget: f64,
    /// (GPU-hours spent, hypervolume of the measured frontier) before each wave, in order.
    pub growth: Vec<(f64, f64)>,
    /// Why it ended.
    pub stop: Option<String>,
    /// Every job (or load of a job) not measured, and every job that ran and measured nothing.
    pub skipped: Vec<Skipped>,
}

#[derive(Debug, Clone)]
pub struct Skipped {
    pub job: String,
    /// `dominated`, `over_budget`, `deferred`, `infeasible`, or `failed`.
    pub decision: String,
    /// The loads not measured (a job that ran at some loads is listed for the others); empty
    /// for a job that ran and failed.
    pub loads: Vec<f64>,
    /// Predicted GPU-hours; `None` for a job that ran.
    pub cost: Option<f64>,
    pub why: String,
}

impl Exploration {
    /// The growth chart: hypervolume (reference (0, 0)) against GPU-hours spent.
    pub fn chart(&self) -> Chart {
        Chart {
            name: "explore_growth".to_owned(),
            title: "Exploration: the frontier's hypervolume against the GPU-hours spent".to_owned(),
            x_label: "GPU-hours spent (GPUs held × first point's start to last point's end)".to_owned(),
            y_label: "hypervolume (tokens/s/user × tokens/s/GPU)".to_owned(),
            x_axis: XAxis::Linear,
            series: vec![Series {
                label: "measured frontier, before each wave".to_owned(),
                color: 0,
                scatter: Vec::new(),
                line: self.growth.clone(),
                curve: Vec::new(),
                intervals: Vec::new(),
            }],
        }
    }
}
