//! `explore.json`: every wave of an exploration, rewritten atomically after each
//! (`docs/explore.md`, "Auditing a run").

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Wave;

/// `explore.json`. Its format header (`format`, `written_by`) is the sweep folder's, written and
/// checked by `sweep_folder::file`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Log {
    pub spec: String,
    pub budget: BudgetRecord,
    pub waves: Vec<WaveRecord>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct BudgetRecord {
    /// `gpu_hours` or `share`.
    pub kind: String,
    pub value: f64,
}

/// One wave as `explore.json` keeps it.
#[derive(Debug, Serialize, Deserialize)]
pub struct WaveRecord {
    pub number: usize,
    /// Seconds since the epoch when it was chosen.
    pub chosen_at: f64,
    /// GPU-hours spent before it, and the budget in GPU-hours it was chosen under.
    pub spent: f64,
    pub budget: f64,
    /// The measured frontier's hypervolume before it (reference (0, 0)).
    pub hypervolume: f64,
    /// Jobs measured before it; failed ones with their reason.
    pub measured: usize,
    pub failed: BTreeMap<String, String>,
    #[serde(flatten)]
    pub wave: Wave,
}
