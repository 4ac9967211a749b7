//! `manifest.json`: the sweep's record of its job folders. One entry per job folder (a resume
//! adds folders, never replaces them) with its points, state, SLURM job id and reason.
//! `sweep submit` rewrites it (atomically) after every change, so an interrupted submit loses
//! nothing it did.

use serde::{Deserialize, Deserializer, Serialize};

/// Where a sweep's jobs run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Executor {
    /// An `sbatch` job per job folder, an `srun` step per role.
    Slurm,
    /// Every role a process on this machine, one job after another.
    Local,
    /// Inside an existing allocation (`sweep submit --in-allocation`): each job's sbatch script
    /// runs with `bash` on a subset of the allocation's nodes, its roles `srun` steps; jobs on
    /// disjoint nodes run side by side.
    Allocation,
}

impl Executor {
    /// The job script's file name in its folder.
    pub fn script_name(self) -> &'static str {
        match self {
            Executor::Slurm | Executor::Allocation => "job.sbatch",
            Executor::Local => "job.local.sh",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Executor::Slurm => "slurm",
            Executor::Local => "local",
            Executor::Allocation => "allocation",
        }
    }
}

/// A job folder's state as `sweep` last recorded it. SLURM's own state, when it still knows
/// the job, is newer: `sweep status` asks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Written, not submitted.
    Rendered,
    /// Accepted by `sbatch`.
    Submitted,
    /// Refused by `sbatch` (the reason says why).
    Rejected,
    /// Running under the local executor.
    Running,
    /// Its benchmark step ended `done`.
    Completed,
    Failed,
    Timeout,
    Cancelled,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Rendered => "rendered",
            JobState::Submitted => "submitted",
            JobState::Rejected => "rejected",
            JobState::Running => "running",
            JobState::Completed => "completed",
            JobState::Failed => "failed",
            JobState::Timeout => "timeout",
            JobState::Cancelled => "cancelled",
        }
    }
}

/// One job folder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManifestJob {
    /// The job's content-hashed id (the same for every attempt).
    pub id: String,
    pub name: String,
    /// Relative to the sweep folder: `jobs/<name>`, or `jobs/<name>.<n>` for a resume's.
    pub dir: String,
    /// The script's file name in `dir`.
    pub script: String,
    /// 1 for the first folder of this job, 2 for the first resume's, …
    pub attempt: u32,
    pub state: JobState,
    #[serde(default, deserialize_with = "id_text")]
    pub slurm_job_id: Option<String>,
    /// Why it was rejected or how it ended (the first line of the runner's reason).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The ids of the points this folder runs.
    pub points: Vec<String>,
    /// With `--max-in-queue`: the dependency chain the job was put in (0-based).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<u32>,
    /// The SLURM job it was submitted to wait for (`--dependency=afterany:<id>`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    /// In an allocation: where and when it ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocation: Option<AllocationRun>,
}

/// A job run inside an allocation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AllocationRun {
    /// The allocation's SLURM job id.
    pub job_id: String,
    /// The allocation's nodes the job was given, in its order (its `NODES[0]`, `NODES[1]`, …).
    pub nodes: Vec<String>,
    /// Its port slot: every port of the job is shifted by `slot` × the sweep's port span, so that
    /// jobs running at once never share one.
    pub slot: u32,
    /// Seconds since the epoch; `ended_at` once it has ended.
    pub started_at: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<f64>,
}

/// SLURM job ids are text (`1234`, `1234_5` for an array task); a number is taken too.
fn id_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Id {
        Text(String),
        Number(u64),
    }
    Ok(Option::<Id>::deserialize(d)?.map(|id| match id {
        Id::Text(t) => t,
        Id::Number(n) => n.to_string(),
    }))
}

/// `manifest.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// The sweep's name.
    pub sweep: String,
    pub executor: Executor,
    /// How many times `sweep submit --resume` added folders.
    #[serde(default)]
    pub resumes: u32,
    /// How the jobs were queued (`--max-in-queue`, `--waves`); absent: all at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_limit: Option<QueueLimit>,
    pub jobs: Vec<ManifestJob>,
}

/// At most `max_in_queue` of the sweep's jobs pending or running at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueLimit {
    pub max_in_queue: u32,
    /// `chains`: every job submitted at once, in `max_in_queue` dependency chains. `waves`: only
    /// `max_in_queue` submitted; `sweep wait --submit-more` submits the rest as jobs end.
    pub mode: QueueMode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QueueMode {
    Chains,
    Waves,
}

impl Manifest {
    /// The SLURM job ids recorded, in manifest order.
    pub fn slurm_ids(&self) -> Vec<String> {
        self.jobs.iter().filter_map(|j| j.slurm_job_id.clone()).collect()
    }

    /// The last job folder that lists point `id`.
    pub fn job_of_point(&self, id: &str) -> Option<&ManifestJob> {
        self.jobs.iter().rev().find(|j| j.points.iter().any(|p| p == id))
    }
}
