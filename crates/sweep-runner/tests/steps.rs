//! `sweep-runner serve` and `benchmark` as processes on this machine, without SLURM.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

struct JobDir(PathBuf);

impl Drop for JobDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn job_dir(name: &str, job_json: &str) -> JobDir {
    let dir = std::env::temp_dir().join(format!("sweep-runner-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("job dir");
    std::fs::write(dir.join("job.json"), job_json).expect("job.json");
    JobDir(dir)
}

fn runner() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sweep-runner"))
}

fn serve(dir: &Path, role: &str, index: u32, command: &[&str]) -> Child {
    runner()
        .args(["serve", "--job-dir"])
        .arg(dir)
        .args(["--role", role, "--index", &index.to_string(), "--port", "9000", "--gpus", "0,1", "--"])
        .args(command)
        .env_remove("SLURM_PROCID")
        .spawn()
        .expect("spawns")
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .expect("JSON")
}

fn wait(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("waits") {
            return status;
        }
        assert!(Instant::now() < deadline, "still running after {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A job description as `sweep render` writes it: one entry per (name, role, port) server,
/// `health`/`load` settings, and `points` as (id, concurrency, requests, warmup).
fn job(servers: &[(&str, &str, u16)], health: serde_json::Value, load: serde_json::Value, points: &[(&str, u64, u64, u64)]) -> String {
    let servers: Vec<serde_json::Value> = servers
        .iter()
        .map(|(name, role, port)| serde_json::json!({
            "name": name, "role": role, "nodes": [0], "cuda_visible_devices": "0", "port": port,
        }))
        .collect();
    let roles: Vec<serde_json::Value> = ["agg", "ctx", "gen"]
        .iter()
        .map(|role| {
            let n = servers.iter().filter(|s| s["role"] == *role).count();
            serde_json::json!({"role": role, "servers": n, "tp": 1, "parallel": "tep", "world_size": 1})
        })
        .filter(|r| r["servers"] != 0)
        .collect();
    let points: Vec<serde_json::Value> = points
        .iter()
        .map(|(id, c, requests, warmup)| serde_json::json!({
            "id": id, "isl": 16, "osl": 8, "concurrency": c, "effective_concurrency": c,
            "requests": requests, "warmup": warmup,
        }))
        .collect();
    serde_json::json!({
        "sweep": "test", "id": "00000000000000aa", "name": "agg1_tep1_batch8_eplb0_mtp0", "mode": "agg",
        "engine": "mock", "model": {"path": "/models/tiny", "served_name": "tiny"},
        "slurm": {"nodes": 1, "gpus_per_node": 4}, "roles": roles, "servers": servers, "frontend": null,
        "load": load, "health": health, "points": points,
    })
    .to_string()
}

/// Servers without an HTTP endpoint: ready once registered, no load.
fn deploy_only(servers: &[(&str, &str, u16)]) -> String {
    job(servers, serde_json::json!({"path": null}), serde_json::json!({"enabled": false}), &[])
}

#[test]
fn servers_register_run_their_command_and_stop_when_the_benchmark_ends() {
    let dir = job_dir("stop", &deploy_only(&[("gen_0", "gen", 9000), ("ctx_0", "ctx", 9001)]));
    let script = "echo started on $CUDA_VISIBLE_DEVICES; trap 'echo got TERM; exit 0' TERM; while :; do sleep 0.05; done";
    let mut gen = serve(&dir.0, "GEN", 0, &["bash", "-c", script]);
    let mut ctx = serve(&dir.0, "CTX", 0, &["bash", "-c", script]);
    let mut bench = runner().args(["benchmark", "--job-dir"]).arg(&dir.0).spawn().expect("spawns");
    assert!(wait(&mut bench, Duration::from_secs(20)).success());
    assert!(wait(&mut gen, Duration::from_secs(20)).success());
    assert!(wait(&mut ctx, Duration::from_secs(20)).success());
    let registration = json(&dir.0.join("rendezvous/gen_0.json"));
    assert_eq!(registration["role"], "gen");
    assert!(registration["address"].as_str().is_some_and(|a| a.ends_with(":9000")), "{registration}");
    for name in ["gen_0", "ctx_0"] {
        let status = json(&dir.0.join(format!("status/{name}.json")));
        assert_eq!(status["state"], "stopped", "{status}");
        let log = std::fs::read_to_string(dir.0.join(format!("logs/{name}.log"))).expect("log");
        assert!(log.contains("started on 0,1") && log.contains("got TERM"), "{log}");
    }
    assert_eq!(json(&dir.0.join("status/benchmark.json"))["state"], "done");
}

#[test]
fn a_server_that_dies_fails_the_benchmark_at_once_with_its_status() {
    let dir = job_dir("dies", &deploy_only(&[("gen_0", "gen", 9000), ("ctx_0", "ctx", 9001)]));
    let mut gen = serve(&dir.0, "GEN", 0, &["bash", "-c", "sleep 30"]);
    // CTX's command does not exist: it never registers, and says why.
    let mut ctx = serve(&dir.0, "CTX", 0, &["/nonexistent/engine"]);
    assert!(!wait(&mut ctx, Duration::from_secs(10)).success());
    let started = Instant::now();
    let mut bench = runner().args(["benchmark", "--job-dir"]).arg(&dir.0).spawn().expect("spawns");
    assert!(!wait(&mut bench, Duration::from_secs(20)).success());
    assert!(started.elapsed() < Duration::from_secs(10), "failed fast, not at the 30-minute timeout");
    let status = json(&dir.0.join("status/benchmark.json"));
    assert_eq!(status["state"], "failed");
    assert!(
        status["reason"].as_str().is_some_and(|r| r.contains("ctx_0") && r.contains("cannot start")),
        "{status}"
    );
    assert!(
        wait(&mut gen, Duration::from_secs(40)).success(),
        "the benchmark's failure still stops the others"
    );
}

#[test]
fn logs_are_appended_never_truncated() {
    let dir = job_dir("append", &deploy_only(&[]));
    std::fs::create_dir_all(dir.0.join("logs")).expect("logs");
    std::fs::write(dir.0.join("logs/agg_0.log"), "earlier run\n").expect("write");
    let mut agg = serve(&dir.0, "AGG", 0, &["echo", "this run"]);
    assert!(!wait(&mut agg, Duration::from_secs(10)).success(), "an engine exiting by itself is a failure");
    let log = std::fs::read_to_string(dir.0.join("logs/agg_0.log")).expect("log");
    assert_eq!(log, "earlier run\nthis run\n");
    assert_eq!(json(&dir.0.join("status/agg_0.json"))["state"], "exited");
}
