//! `manifest.json`, the sweep folder's record of its jobs: one entry per job folder (a resume
//! adds folders, never replaces them) with its points, state, SLURM job id and reason. Written
//! through a temporary file and a rename after every change, so it is never half-written.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::Value;
use sweep_templates::Executor;

use crate::error::Error;

#[derive(Debug, Clone)]
pub struct Manifest(Value);

fn path(dir: &Path) -> PathBuf {
    dir.join("manifest.json")
}

impl Manifest {
    pub fn new(sweep: String, executor: Executor, jobs: Vec<Value>) -> Self {
        Manifest(serde_json::json!({
            "manifest_version": 1,
            "sweep": sweep,
            "executor": match executor { Executor::Slurm => "slurm", Executor::Local => "local" },
            "jobs": jobs,
        }))
    }

    pub fn read(dir: &Path) -> Result<Self, Error> {
        let path = path(dir);
        let text =
            std::fs::read_to_string(&path).map_err(|source| Error::Read { path: path.clone(), source })?;
        let value: Value = serde_json::from_str(&text)
            .map_err(|e| Error::Read { path: path.clone(), source: std::io::Error::other(e) })?;
        if !value["jobs"].is_array() {
            return Err(Error::Read {
                path,
                source: std::io::Error::other("no `jobs` list: not a sweep manifest"),
            });
        }
        Ok(Manifest(value))
    }

    pub fn to_bytes(&self) -> Result<Vec<u8>, Error> {
        serde_json::to_vec_pretty(&self.0).map_err(|e| Error::Output(e.into()))
    }

    pub fn write(&self, dir: &Path) -> Result<(), Error> {
        let path = path(dir);
        let tmp = dir.join(format!(".manifest.json.{}", std::process::id()));
        std::fs::write(&tmp, self.to_bytes()?)
            .map_err(|source| Error::Write { path: tmp.clone(), source })?;
        std::fs::rename(&tmp, &path).map_err(|source| Error::Write { path, source })
    }

    pub fn jobs(&self) -> &[Value] {
        self.0["jobs"].as_array().map_or(&[], Vec::as_slice)
    }

    pub fn job_mut(&mut self, index: usize) -> &mut Value {
        &mut self.0["jobs"][index]
    }

    /// Appends a job entry; returns its index.
    pub fn push(&mut self, entry: Value) -> usize {
        let jobs = self.0["jobs"].as_array_mut().expect("checked when read");
        jobs.push(entry);
        jobs.len() - 1
    }

    pub fn executor(&self) -> Executor {
        if self.0["executor"] == "local" {
            Executor::Local
        } else {
            Executor::Slurm
        }
    }

    pub fn resumes(&self) -> u64 {
        self.0["resumes"].as_u64().unwrap_or(0)
    }

    pub fn set_resumes(&mut self, n: u64) {
        self.0["resumes"] = n.into();
    }

    /// The SLURM job ids recorded, in manifest order.
    pub fn slurm_ids(&self) -> Vec<String> {
        self.jobs().iter().filter_map(|j| j["slurm_job_id"].as_str().map(str::to_owned)).collect()
    }
}

/// The ids of points with a complete (`done`) result anywhere under `<dir>/jobs`.
pub fn completed_points(dir: &Path) -> BTreeSet<String> {
    point_markers(dir)
        .into_iter()
        .filter(|(_, status)| status["state"] == "done")
        .filter_map(|(_, status)| status["point"].as_str().map(str::to_owned))
        .collect()
}

/// Every point marker (`jobs/*/points/*/status.json`) with its folder.
pub fn point_markers(dir: &Path) -> Vec<(PathBuf, Value)> {
    let mut out = Vec::new();
    let Ok(jobs) = std::fs::read_dir(dir.join("jobs")) else { return out };
    for job in jobs.flatten() {
        let Ok(points) = std::fs::read_dir(job.path().join("points")) else { continue };
        for point in points.flatten() {
            let marker = point.path().join("status.json");
            if let Some(status) =
                std::fs::read_to_string(&marker).ok().and_then(|t| serde_json::from_str(&t).ok())
            {
                out.push((point.path(), status));
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Holds `<dir>/.submit.lock` while it lives, so that two submits cannot work on one folder.
#[derive(Debug)]
pub struct Lock(PathBuf);

impl Lock {
    pub fn take(dir: &Path) -> Result<Self, Error> {
        let path = dir.join(".submit.lock");
        match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(mut file) => {
                let _ = writeln!(file, "pid {}", std::process::id());
                Ok(Lock(path))
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let holder = std::fs::read_to_string(&path).unwrap_or_default();
                Err(Error::Locked { path, holder: holder.trim().to_owned() })
            }
            Err(source) => Err(Error::Write { path, source }),
        }
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
