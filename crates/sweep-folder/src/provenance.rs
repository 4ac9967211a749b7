//! Which build ran a sweep, from what, where: so that two sweeps can be compared knowing what
//! differed. `provenance.json` in the sweep folder is written when it is rendered (and
//! `provenance.resume-<n>.json` by each resume); `jobs/<job>/provenance.json` by each job's
//! benchmark step, once its servers are ready.

use serde::{Deserialize, Serialize};

/// The build of `sweep` or `sweep-runner` that wrote a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Build {
    pub version: String,
    /// The git commit built from; `null` when built outside a git checkout.
    pub commit: Option<String>,
    /// `rustc --version` of the compiler.
    pub rustc: Option<String>,
}

impl Build {
    /// This build.
    pub fn current() -> Self {
        Build {
            version: crate::build::VERSION.to_owned(),
            commit: crate::build::commit().map(str::to_owned),
            rustc: crate::build::rustc().map(str::to_owned),
        }
    }
}

/// `provenance.json`: the sweep as submitted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    pub sweep: Build,
    /// sha256 of `spec.yaml` as given (hex).
    pub spec_sha256: String,
    /// sha256 of `plan.json` (hex): the same spec planned by another build may differ.
    pub plan_sha256: String,
    /// Where and by whom: the login node's host name, `$USER` (or the uid).
    pub host: String,
    pub user: String,
    /// Unix time of the render.
    pub created_at: f64,
    /// `sbatch --version` (`slurm-wlm 22.05.8` on Debian 12), `null` where there is no `sbatch`.
    pub sbatch: Option<String>,
    /// `cluster.container.image`, when the jobs run in one.
    pub container_image: Option<String>,
    /// The image's digest where the image itself says it (`…@sha256:…`); an image named by a
    /// tag or a squashfs path has none without asking the registry.
    pub container_digest: Option<String>,
}

/// One GPU, as `nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gpu {
    pub name: String,
    pub memory_total: String,
    pub driver_version: String,
}

/// The Python environment an engine's program runs in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PythonEnvironment {
    /// The program of the launch command (`vllm`, `python3`), as found on `PATH`.
    pub program: String,
    /// The interpreter that runs it.
    pub python: String,
    /// `pip list --format=freeze` of that interpreter: `name==version`, sorted.
    pub packages: Vec<String>,
}

impl PythonEnvironment {
    /// The version of package `name` (case and `-`/`_` insensitive), as installed.
    pub fn package_version(&self, name: &str) -> Option<&str> {
        let wanted = normalise(name);
        self.packages.iter().find_map(|line| {
            let (package, version) = line.split_once("==")?;
            (normalise(package) == wanted).then_some(version)
        })
    }
}

fn normalise(name: &str) -> String {
    name.to_ascii_lowercase().replace('_', "-")
}

/// `jobs/<job>/provenance.json`: what ran this job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobProvenance {
    pub runner: Build,
    /// `engine.kind` of the job.
    pub engine: String,
    /// The engine's version: what `GET /version` answered, else the engine's package in its
    /// Python environment (`vllm`, `ai-dynamo`, `sglang`, `tensorrt-llm`); `null` when neither
    /// says.
    pub engine_version: Option<String>,
    /// Where the version came from: `GET /version` or `pip`.
    pub engine_version_source: Option<String>,
    /// The Python environments of the job's launch commands (one per interpreter).
    pub python: Vec<PythonEnvironment>,
    /// The benchmark node's GPUs (none without `nvidia-smi`).
    pub gpus: Vec<Gpu>,
    /// The benchmark node's host name.
    pub node: String,
    pub collected_at: f64,
    /// The environment variables the job's launch commands set: `engine.env` by name, each
    /// role's own `env` as `<role>.<NAME>`.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub env: std::collections::BTreeMap<String, String>,
    /// Where the engine came from: the container image and the venv its steps ran from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub venv: Option<String>,
}
