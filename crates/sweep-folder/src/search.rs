//! `points/<id>/search.json`: a search for the highest load meeting the SLOs (`workload.search`),
//! written by the runner after every step so that a job stopped halfway keeps what it found, and
//! read by `sweep aggregate`. Each step is a point of its own, `points/<step id>/`, whose
//! `point.json` names the search.

use serde::{Deserialize, Serialize};

/// One search, as far as it went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchRecord {
    /// The planned point that searches.
    pub point: String,
    pub search: crate::settings::Search,
    /// In the order they ran.
    pub steps: Vec<SearchStep>,
    /// The highest load found meeting every SLO (below the saturation knee, with a saturation
    /// rule); `None` when the lowest load already breaks one, or before the first step ends.
    pub max_load_meeting_slo: Option<f64>,
    /// Why the search stopped where it did, or that it is still going.
    pub stopped_because: String,
    /// `true` once the search has concluded; `false` while it runs or when it was stopped.
    pub finished: bool,
}

/// One measured load.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchStep {
    /// The step's own point id (its folder under `points/`).
    pub point: String,
    pub load: f64,
    /// `climb` or `bisect`.
    pub phase: String,
    /// Output tokens/s.
    pub output_token_throughput: Option<f64>,
    /// The SLOs it broke, as `time_to_first_token p99 2100.0 ms > 2000 ms`; empty when it met
    /// them all.
    pub broken: Vec<String>,
    /// The step point's own state (`done`, `failed`, …).
    pub state: String,
}
