//! `sweep submit`, `status` and `cancel` end to end on the development SLURM cluster.

mod common;

use common::sweep;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

struct Sweep {
    dir: PathBuf,
}

impl Drop for Sweep {
    fn drop(&mut self) {
        // Whatever happened, nothing the test submitted stays queued.
        let _ = Command::new(env!("CARGO_BIN_EXE_sweep")).arg("cancel").arg(self.dir.join("sweep")).output();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn status(dir: &Path) -> Vec<serde_json::Value> {
    let (code, stdout, stderr) = sweep(&["status", "sweep", "--format", "json"], dir);
    assert_eq!(code, 0, "{stderr}");
    serde_json::from_str(&stdout).expect("JSON")
}

fn new_sweep(name: &str, spec: &str) -> Sweep {
    let dir = std::env::temp_dir().join(format!("sweep-e2e-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("spec.yaml"), spec).expect("spec");
    Sweep { dir }
}

/// Roles that hold no port: `sleep` stands in for a server until the benchmark stops it; with no
/// health endpoint and no load, the job deploys, checks every role registered, and ends.
const SPEC: &str = "\
name: e2e-submit
model: {path: /m}
engine:
  kind: custom
  commands: {ctx: \"sleep 600\", gen: \"sleep 600\", frontend: \"sleep 600\"}
  health: {path: null}
cluster: {gpus_per_node: 4, max_nodes: 16, base_port: 19000, frontend_port: 19099}
mode: disagg
ctx: {servers: [1, 2], tp: 4, batch: 1}
gen: {servers: 1, tp: [4, 32], batch: 8}
workload: {isl: 8, osl: 8, concurrency: [1, 2], load: false}
";

#[test]
fn submit_watches_jobs_to_completion_and_reports_rejections_with_slurms_reason() {
    let sweep_dir = new_sweep("submit", SPEC);
    let (code, stdout, stderr) = sweep(&["submit", "spec.yaml", "-o", "sweep"], &sweep_dir.dir);
    // GEN TP32 needs 8 nodes; the partition has 4: SLURM refuses those two jobs, the others go in.
    assert_eq!(code, 9, "{stderr}");
    assert_eq!(stdout.lines().count(), 2, "{stdout}");
    assert!(
        stderr.contains("sbatch: error: Batch job submission failed:"),
        "SLURM's own reason is shown: {stderr}"
    );

    let mut seen: Vec<Vec<String>> = vec![Vec::new(); 4];
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let rows = status(&sweep_dir.dir);
        assert_eq!(rows.len(), 4);
        for (i, row) in rows.iter().enumerate() {
            let state = row["state"].as_str().expect("state").to_owned();
            if seen[i].last() != Some(&state) {
                seen[i].push(state);
            }
        }
        let done =
            rows.iter().all(|r| ["COMPLETED", "REJECTED"].contains(&r["state"].as_str().unwrap_or("")));
        if done {
            break;
        }
        assert!(Instant::now() < deadline, "not finished after 120 s: {rows:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let rows = status(&sweep_dir.dir);
    let rejected: Vec<&serde_json::Value> = rows.iter().filter(|r| r["state"] == "REJECTED").collect();
    assert_eq!(rejected.len(), 2);
    assert!(rejected
        .iter()
        .all(|r| r["job"].as_str().is_some_and(|j| j.contains("dep32") || j.contains("tep32"))));
    assert!(rejected
        .iter()
        .all(|r| r["reason"].as_str().is_some_and(|m| m.contains("Batch job submission failed"))));
    for states in seen.iter().filter(|s| s.last().map(String::as_str) == Some("COMPLETED")) {
        assert!(states.len() >= 2, "a job was seen queued or running before it completed: {states:?}");
    }
    // The manifest kept every id as it came back.
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(sweep_dir.dir.join("sweep/manifest.json")).expect("manifest"),
    )
    .expect("JSON");
    let ids =
        manifest["jobs"].as_array().expect("jobs").iter().filter(|j| j["slurm_job_id"].is_string()).count();
    assert_eq!(ids, 2);
}

#[test]
fn cancel_stops_a_queued_sweep_by_job_id_and_a_second_submit_cannot_take_the_folder_over() {
    let spec = SPEC
        .replace("max_nodes: 16}", "max_nodes: 16, sbatch: [\"--begin=now+600\"]}")
        .replace("tp: [4, 32]", "tp: 4");
    let sweep_dir = new_sweep("cancel", &spec);
    let (code, stdout, stderr) = sweep(&["submit", "spec.yaml", "-o", "sweep"], &sweep_dir.dir);
    assert_eq!(code, 0, "{stderr}");
    let ids: Vec<String> = stdout.lines().map(|l| l.split('\t').nth(1).expect("id").to_owned()).collect();
    assert_eq!(ids.len(), 2);
    assert!(status(&sweep_dir.dir).iter().all(|r| r["state"] == "PENDING"));

    // The folder exists: a second submit refuses it and leaves it as it was.
    let (code, _, stderr) = sweep(&["submit", "spec.yaml", "-o", "sweep"], &sweep_dir.dir);
    assert_eq!(code, 6, "{stderr}");

    let (code, stdout, stderr) = sweep(&["cancel", "sweep"], &sweep_dir.dir);
    assert_eq!(code, 0, "{stderr}");
    let mut cancelled: Vec<String> = stdout.lines().map(str::to_owned).collect();
    cancelled.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(cancelled, expected, "exactly the sweep's own jobs, by id");
    std::thread::sleep(Duration::from_millis(500));
    assert!(status(&sweep_dir.dir).iter().all(|r| r["state"] == "CANCELLED"), "{:?}", status(&sweep_dir.dir));
}
