//! End to end on the development SLURM cluster (`scripts/slurm-dev-cluster.sh start`; the test
//! command starts it): `sweep render` writes the jobs, `sbatch` runs them on real nodes with the
//! real runner and the simulated engine, and every role must run on the node the plan gave it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("workspace root")
}

/// Cancels what the test submitted and removes its folder, whatever happens.
struct Cleanup {
    dir: PathBuf,
    jobs: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if !self.jobs.is_empty() {
            let _ = Command::new("scancel").args(&self.jobs).status();
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

const SPEC: &str = "\
name: e2e-render
model: {path: /models/tiny, served_name: tiny}
engine: {kind: mock}
cluster: {gpus_per_node: 4, packing: spread}
mode: [agg, disagg]
agg: {tp: 2, batch: 8}
ctx: {servers: 2, tp: 1, batch: 8}
gen: {servers: 1, tp: 4, batch: 8}
workload: {isl: 16, osl: 4, concurrency: [1, 2]}
";

fn run(command: &mut Command) -> String {
    let output = command.output().unwrap_or_else(|e| {
        panic!("{command:?}: {e} (is the dev cluster up? scripts/slurm-dev-cluster.sh start)")
    });
    assert!(output.status.success(), "{command:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn job_field(id: &str, field: &str) -> Option<String> {
    let text = run(Command::new("scontrol").args(["show", "job", id]));
    text.split_whitespace().find_map(|kv| kv.strip_prefix(&format!("{field}=")).map(str::to_owned))
}

#[test]
fn rendered_jobs_run_on_slurm_with_every_role_on_its_planned_nodes() {
    let dir = std::env::temp_dir().join(format!("sweep-e2e-render-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let mut cleanup = Cleanup { dir: dir.clone(), jobs: Vec::new() };
    let spec = dir.join("spec.yaml");
    std::fs::write(&spec, SPEC).expect("spec");
    let sweep_dir = dir.join("sweep");
    run(Command::new(env!("CARGO_BIN_EXE_sweep"))
        .arg("render")
        .arg(&spec)
        .arg("-o")
        .arg(&sweep_dir)
        .current_dir(workspace()));

    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(sweep_dir.join("manifest.json")).expect("manifest"))
            .expect("JSON");
    let jobs: Vec<String> = manifest["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .map(|j| j["name"].as_str().expect("name").to_owned())
        .collect();
    assert_eq!(jobs, ["agg1_tep2_batch8_eplb0_mtp0", "ctx2_gen1_tep4_batch8_eplb0_mtp0"]);

    // One after the other: the dev cluster's nodes share one network namespace, and the planned
    // ports (8000, 8001, …) of two jobs running at once would collide.
    let mut submitted = BTreeMap::new();
    for job in &jobs {
        let script = sweep_dir.join("jobs").join(job).join("job.sbatch");
        let mut sbatch = Command::new("sbatch");
        sbatch.arg("--parsable");
        if let Some(previous) = cleanup.jobs.last() {
            sbatch.arg(format!("--dependency=afterany:{previous}"));
        }
        let id = run(sbatch.arg(&script)).trim().to_owned();
        cleanup.jobs.push(id.clone());
        submitted.insert(job.clone(), id);
    }

    let deadline = Instant::now() + Duration::from_secs(120);
    let mut seen_states: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (job, id) in &submitted {
        loop {
            let state = job_field(id, "JobState").unwrap_or_default();
            let states = seen_states.entry(job.clone()).or_default();
            if states.last() != Some(&state) {
                states.push(state.clone());
            }
            if ["COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY"]
                .contains(&state.as_str())
            {
                break;
            }
            assert!(Instant::now() < deadline, "{job} still {state} after 120 s");
            std::thread::sleep(Duration::from_millis(250));
        }
    }
    for (job, id) in &submitted {
        let job_dir = sweep_dir.join("jobs").join(job);
        let log = std::fs::read_to_string(job_dir.join(format!("slurm-{id}.out"))).unwrap_or_default();
        assert_eq!(
            seen_states[job].last().map(String::as_str),
            Some("COMPLETED"),
            "{job}: {:?}\n{log}",
            seen_states[job]
        );
        assert_eq!(job_field(id, "ExitCode").as_deref(), Some("0:0"), "{job}");

        // Node indices of the plan → the job's real node names, in SLURM's order.
        let nodelist = job_field(id, "NodeList").expect("NodeList");
        let nodes: Vec<String> = run(Command::new("scontrol").args(["show", "hostnames", &nodelist]))
            .lines()
            .map(str::to_owned)
            .collect();
        assert_eq!(nodes, sweep_slurm_expand(&nodelist), "our host-list expansion agrees");
        let context: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(job_dir.join("job.json")).expect("job.json"))
                .expect("JSON");
        let mut planned: Vec<(String, u64)> = context["servers"]
            .as_array()
            .expect("servers")
            .iter()
            .map(|s| (s["name"].as_str().expect("name").to_owned(), s["nodes"][0].as_u64().expect("node")))
            .collect();
        if let Some(node) = context["frontend"]["node"].as_u64() {
            planned.push(("disagg_server_0".to_owned(), node));
        }
        planned.push(("benchmark".to_owned(), context["benchmark_node"].as_u64().expect("benchmark node")));
        for (name, index) in planned {
            let status: serde_json::Value = serde_json::from_str(
                &std::fs::read_to_string(job_dir.join("status").join(format!("{name}.json")))
                    .unwrap_or_else(|e| panic!("{job}/{name}: {e}\n{log}")),
            )
            .expect("status JSON");
            assert_eq!(
                status["node"].as_str(),
                Some(nodes[index as usize].as_str()),
                "{job}/{name} ran elsewhere: {status}"
            );
            let expected = if name == "benchmark" { "done" } else { "stopped" };
            assert_eq!(status["state"], expected, "{job}/{name}: {status}");
        }
    }
    cleanup.jobs.clear();
}

fn sweep_slurm_expand(list: &str) -> Vec<String> {
    sweep_slurm::hostlist::expand(list).expect("valid host list")
}
