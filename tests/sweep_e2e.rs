//! Whole sweeps of the simulated engine: through `sweep submit` on the development SLURM cluster
//! and through the local executor — every point measured, artifacts for each, the same folder
//! layout from both; a cancelled job resumed alone; a changed spec resumed without touching what
//! was measured.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

struct Sweep {
    dir: PathBuf,
}

impl Drop for Sweep {
    fn drop(&mut self) {
        // Whatever happened, nothing the test submitted stays queued.
        for name in ["slurm", "sweep"] {
            let _ = Command::new(env!("CARGO_BIN_EXE_sweep")).arg("cancel").arg(self.dir.join(name)).output();
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn new_sweep(name: &str, spec: &str) -> Sweep {
    let dir = std::env::temp_dir().join(format!("sweep-e2e-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("spec.yaml"), spec).expect("spec");
    Sweep { dir }
}

fn sweep(args: &[&str], cwd: &Path) -> (i32, String, String) {
    let output =
        Command::new(env!("CARGO_BIN_EXE_sweep")).args(args).current_dir(cwd).output().expect("runs");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn status(cwd: &Path, folder: &str) -> Vec<serde_json::Value> {
    let (code, stdout, stderr) = sweep(&["status", folder, "--format", "json"], cwd);
    assert_eq!(code, 0, "{stderr}");
    serde_json::from_str(&stdout).expect("JSON")
}

const FINAL: &[&str] =
    &["COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "ENDED", "REJECTED"];

/// Polls `sweep status` until `done(rows)` holds.
fn wait_for(
    cwd: &Path,
    folder: &str,
    limit: Duration,
    done: impl Fn(&[serde_json::Value]) -> bool,
) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + limit;
    loop {
        let rows = status(cwd, folder);
        if done(&rows) {
            return rows;
        }
        assert!(Instant::now() < deadline, "not there after {limit:?}: {rows:#?}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn all_final(rows: &[serde_json::Value]) -> bool {
    rows.iter().all(|r| FINAL.contains(&r["state"].as_str().unwrap_or_default()))
}

fn point_states(rows: &[serde_json::Value]) -> Vec<String> {
    rows.iter()
        .flat_map(|r| r["points"].as_array().cloned().unwrap_or_default())
        .map(|p| p["state"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Relative paths under `root`, with what differs by design between executors left out: the
/// script, SLURM's own output, and each step's launcher log.
fn layout(root: &Path) -> BTreeSet<String> {
    fn walk(dir: &Path, root: &Path, out: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).expect("readable").flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if path.is_dir() {
                walk(&path, root, out);
                continue;
            }
            let skip = ["job.sbatch", "job.local.sh", "local.out"].contains(&name.as_str())
                || name.starts_with("slurm-")
                || name.ends_with(".srun.log")
                || name.ends_with(".step.log");
            if !skip {
                out.insert(path.strip_prefix(root).expect("inside").display().to_string());
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(root, root, &mut out);
    out
}

const BOTH_MODES: &str = "\
name: e2e-modes
model: {path: /models/tiny, served_name: tiny}
engine: {kind: mock}
cluster: {gpus_per_node: 4, packing: packed, base_port: 18500, frontend_port: 18599}
mode: [agg, disagg]
agg: {tp: 1, batch: 8, engine_args: {speedup: 20}}
ctx: {servers: 2, tp: 1, batch: 8, engine_args: {speedup: 20}}
gen: {servers: 1, tp: 1, batch: 8, engine_args: {speedup: 20}}
workload: {isl: 32, osl: 8, concurrency: [1, 4], requests: 8, warmup: 2}
";

#[test]
fn agg_and_disagg_sweeps_complete_on_slurm_and_locally_with_the_same_layout() {
    let s = new_sweep("modes", BOTH_MODES);
    // One job at a time: the dev cluster's nodes share one network, so two jobs' ports collide.
    let (code, stdout, stderr) = sweep(&["submit", "spec.yaml", "-o", "slurm", "--sequential"], &s.dir);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout.lines().count(), 2, "two jobs: {stdout}");
    let rows = wait_for(&s.dir, "slurm", Duration::from_secs(240), all_final);
    for row in &rows {
        assert_eq!(row["state"], "COMPLETED", "{row:#}");
    }
    assert_eq!(point_states(&rows), ["done"; 4], "{rows:#?}");
    let slurm = s.dir.join("slurm");
    let disagg = slurm.join("jobs/ctx2_gen1_tep1_batch8_eplb0_mtp0");
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(disagg.join("metadata.json")).expect("metadata"))
            .expect("JSON");
    // Roles never share a node: CTX on one, GEN on another; 3 of the 8 GPUs work.
    assert_eq!(meta["gpus"], serde_json::json!({"allocated": 8, "working": 3}));
    assert_eq!(meta["executor"], "slurm");
    assert!(meta["node_list"].as_str().is_some_and(|n| n.starts_with('n')), "{meta}");
    assert_eq!(meta["servers"].as_array().map(Vec::len), Some(3));
    for point in std::fs::read_dir(disagg.join("points")).expect("points").flatten() {
        let export: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(point.path().join("profile_export_aiperf.json")).expect("export"),
        )
        .expect("JSON");
        assert_eq!(export["request_count"]["avg"], 8.0, "{export}");
        assert_eq!(export["output_sequence_length"]["avg"], 8.0);
    }

    let (code, _, stderr) = sweep(&["submit", "spec.yaml", "-o", "local", "--executor", "local"], &s.dir);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(point_states(&status(&s.dir, "local")), ["done"; 4]);
    let (a, b) = (layout(&slurm), layout(&s.dir.join("local")));
    assert_eq!(
        a,
        b,
        "only in SLURM's: {:?}; only in local: {:?}",
        a.difference(&b).collect::<Vec<_>>(),
        b.difference(&a).collect::<Vec<_>>()
    );
    assert!(a.iter().any(|p| p.ends_with("profile_export.jsonl")));

    // Aggregated: a row per point from either executor, with the GPUs each job really had.
    for folder in ["slurm", "local"] {
        let (code, stdout, stderr) = sweep(&["aggregate", folder], &s.dir);
        assert_eq!(code, 0, "{stderr}");
        assert!(
            stdout.contains("ctx2_gen1_tep1_batch8_eplb0_mtp0"),
            "the disagg job is on its frontier: {stdout}"
        );
        let rows = common::csv_rows(&s.dir.join(folder).join("report/results.csv"));
        assert_eq!(rows.len(), 4, "{rows:#?}");
        for row in &rows {
            assert_eq!(row["state"], "done", "{row:#?}");
            assert_eq!(row["request_count"], "8.0");
            let (working, allocated) = if row["mode"] == "disagg" { (3, 8) } else { (1, 4) };
            assert_eq!(
                (&row["gpus_working"], &row["gpus_allocated"]),
                (&working.to_string(), &allocated.to_string())
            );
            let per_gpu: f64 = row["tps_per_gpu_working"].parse().expect("number");
            let output: f64 = row["output_token_throughput"].parse().expect("number");
            assert!((per_gpu - output / f64::from(working)).abs() < 1e-9 * output, "{row:#?}");
            let per_allocated: f64 = row["tps_per_gpu_allocated"].parse().expect("number");
            assert!((per_allocated - output / f64::from(allocated)).abs() < 1e-9 * output);
        }
    }
}
