//! `metadata.json`: what a job really had, written by its benchmark step before the first
//! point (and again once the servers are ready, with their addresses and what the engine says
//! of itself). `sweep aggregate` trusts it over the plan.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::job::RoleContext;
use crate::Executor;

/// The job a metadata file belongs to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRef {
    pub id: String,
    pub name: String,
    /// `agg` or `disagg`.
    pub mode: String,
}

/// One server where it ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerRecord {
    pub name: String,
    pub role: crate::settings::Role,
    /// Host names of its nodes.
    pub nodes: Vec<String>,
    pub cuda_visible_devices: String,
    pub port: u16,
    /// `host:port` it registered, once it has.
    pub address: Option<String>,
}

/// The frontend where it ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrontendRecord {
    /// Host name of its node.
    pub node: String,
    pub port: u16,
    pub address: Option<String>,
}

/// GPUs of the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gpus {
    /// Nodes × GPUs per node: what SLURM gave the job.
    pub allocated: u64,
    /// What the servers use: per-GPU throughput divides by this.
    pub working: u64,
}

/// `metadata.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    pub sweep: String,
    pub job: JobRef,
    pub engine: String,
    /// The served model name.
    pub model: String,
    pub roles: Vec<RoleContext>,
    pub servers: Vec<ServerRecord>,
    pub frontend: Option<FrontendRecord>,
    pub gpus: Gpus,
    pub slurm_job_id: Option<String>,
    /// SLURM's compressed node list (`node[1-4]`).
    pub node_list: Option<String>,
    /// The allocation's host names, in SLURM's order.
    pub nodes: Vec<String>,
    pub executor: Executor,
    /// Versions of this project's parts that ran the job (`sweep-runner`).
    pub versions: BTreeMap<String, String>,
    pub seed: u64,
    pub load: crate::settings::Load,
    /// Unix time the benchmark step started.
    pub started_at: f64,
    /// `GET /version` and `GET /v1/models` of the endpoint, once it was ready (JSON as the
    /// engine answered, text when it was not JSON, `null` when it did not answer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine_info: Option<EngineInfo>,
    /// Every knob that is an axis of the sweep, with this job's value (`job.json`'s `knobs`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub knobs: BTreeMap<String, serde_json::Value>,
    /// The environment every step ran with (`engine.env`; each role's own is in `roles`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Where the engine came from: the container image and the venv its steps ran from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub venv: Option<String>,
}

/// What the engine says of itself.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct EngineInfo {
    pub version: Option<serde_json::Value>,
    pub models: Option<serde_json::Value>,
}

impl EngineInfo {
    /// The version the engine reported: `{"version": "0.32.0"}` (vLLM, SGLang, the mock) or a
    /// bare string.
    pub fn version_text(&self) -> Option<String> {
        match self.version.as_ref()? {
            serde_json::Value::String(text) => Some(text.clone()),
            serde_json::Value::Object(map) => map.get("version").and_then(|v| v.as_str()).map(str::to_owned),
            _ => None,
        }
    }
}
