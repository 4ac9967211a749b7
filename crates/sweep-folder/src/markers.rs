//! The small files the job's steps leave for each other and for `sweep status`: a server's
//! registration (`rendezvous/<name>.json`), how a server and the benchmark step ended
//! (`status/<name>.json`, `status/benchmark.json`), and each point's marker
//! (`points/<id>/status.json`).

use serde::{Deserialize, Serialize};

/// A process of a job: a role's server, or the frontend (`disagg_server`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServerRole {
    Ctx,
    Gen,
    Agg,
    /// The router or frontend in front of the servers.
    DisaggServer,
}

impl ServerRole {
    /// From a serving type as the job scripts pass it (`CTX`, `GEN`, `AGG`, `DISAGG_SERVER`),
    /// in either case.
    pub fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_lowercase().as_str() {
            "ctx" => Some(ServerRole::Ctx),
            "gen" => Some(ServerRole::Gen),
            "agg" => Some(ServerRole::Agg),
            "disagg_server" => Some(ServerRole::DisaggServer),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ServerRole::Ctx => "ctx",
            ServerRole::Gen => "gen",
            ServerRole::Agg => "agg",
            ServerRole::DisaggServer => "disagg_server",
        }
    }

    /// `CTX`, `GEN`, `AGG`, `DISAGG_SERVER`.
    pub fn serving_type(self) -> String {
        self.as_str().to_ascii_uppercase()
    }

    /// `gen_0`: the name of the server's log, registration and status files.
    pub fn server_name(self, index: u32) -> String {
        format!("{}_{index}", self.as_str())
    }
}

/// `rendezvous/<name>.json`: a server says where it listens, once its engine has started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Registration {
    pub role: ServerRole,
    /// `CTX`, `GEN`, `AGG` or `DISAGG_SERVER`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serving_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u32>,
    /// `host:port`.
    pub address: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
}

/// How a server's process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServerState {
    /// Stopped because the job asked (or the runner was signalled).
    Stopped,
    /// Exited by itself: a crash, or an engine that refused its arguments.
    Exited,
    /// Never started, or could not be run.
    Failed,
}

impl ServerState {
    pub fn as_str(self) -> &'static str {
        match self {
            ServerState::Stopped => "stopped",
            ServerState::Exited => "exited",
            ServerState::Failed => "failed",
        }
    }
}

/// `status/<name>.json`: written when a server's process has ended, never before.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerStatus {
    pub state: ServerState,
    #[serde(default)]
    pub exit_code: Option<i32>,
    pub node: String,
    pub reason: String,
    #[serde(default)]
    pub started_at: Option<f64>,
    pub ended_at: f64,
}

/// How the benchmark step, and so the job, ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BenchmarkState {
    /// Every point done (or deployed and checked, with `workload.load: false`).
    Done,
    Failed,
    /// Stopped before the job's time limit.
    Timeout,
    /// Cancelled (SIGTERM or SIGINT).
    Cancelled,
}

impl BenchmarkState {
    pub fn as_str(self) -> &'static str {
        match self {
            BenchmarkState::Done => "done",
            BenchmarkState::Failed => "failed",
            BenchmarkState::Timeout => "timeout",
            BenchmarkState::Cancelled => "cancelled",
        }
    }
}

/// `status/benchmark.json`: how the benchmark step ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchmarkStatus {
    pub state: BenchmarkState,
    pub node: String,
    pub reason: String,
    pub started_at: f64,
    pub ended_at: f64,
}

/// How a point ended (or that it is running).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PointState {
    /// Started, not ended: the job is running, or died without a word.
    Running,
    /// Measured; its exports are complete.
    Done,
    Failed,
    /// Stopped by the job's time limit; what finished before is kept.
    Timeout,
    /// Stopped by a cancel; what finished before is kept.
    Cancelled,
    /// Not run on purpose (`workload.load: false`).
    Skipped,
}

impl PointState {
    pub fn as_str(self) -> &'static str {
        match self {
            PointState::Running => "running",
            PointState::Done => "done",
            PointState::Failed => "failed",
            PointState::Timeout => "timeout",
            PointState::Cancelled => "cancelled",
            PointState::Skipped => "skipped",
        }
    }
}

impl From<BenchmarkState> for PointState {
    fn from(state: BenchmarkState) -> Self {
        match state {
            BenchmarkState::Done => PointState::Done,
            BenchmarkState::Failed => PointState::Failed,
            BenchmarkState::Timeout => PointState::Timeout,
            BenchmarkState::Cancelled => PointState::Cancelled,
        }
    }
}

/// `points/<id>/status.json`: the point's marker, rewritten as it starts and as it ends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PointStatus {
    /// The point's id (its folder may be `<id>.2` when a job folder reran it).
    pub point: String,
    /// The job's name.
    pub job: String,
    pub state: PointState,
    pub reason: String,
    pub started_at: f64,
    pub ended_at: f64,
}

impl PointStatus {
    /// The reason's first line (reasons of failed points carry a log's tail after it).
    pub fn short_reason(&self) -> &str {
        self.reason.lines().next().unwrap_or_default()
    }
}
