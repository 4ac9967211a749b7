//! `sweep-runner serve` and `benchmark` as processes on this machine, without SLURM.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// Point ids: 16 hex digits, as the planner makes them.
const P1: &str = "00000000000000f1";
const P2: &str = "00000000000000f2";
const P3: &str = "00000000000000f3";

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
    // A port of its own: tests run at once, and a busy port is refused.
    let port = free_port().to_string();
    runner()
        .args(["serve", "--job-dir"])
        .arg(dir)
        .args(["--role", role, "--index", &index.to_string(), "--port", &port, "--gpus", "0,1", "--"])
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
fn job(
    servers: &[(&str, &str, u16)],
    health: serde_json::Value,
    load: serde_json::Value,
    points: &[(&str, u64, u64, u64)],
) -> String {
    let servers: Vec<serde_json::Value> = servers
        .iter()
        .map(|(name, role, port)| {
            let index: u32 = name.rsplit('_').next().and_then(|i| i.parse().ok()).unwrap_or(0);
            serde_json::json!({
                "name": name, "role": role, "serving_type": role.to_uppercase(), "index": index,
                "nodes": [0], "ntasks": 1, "ntasks_per_node": 1, "cuda_visible_devices": "0", "port": port,
                "command": "",
            })
        })
        .collect();
    let roles: Vec<serde_json::Value> = ["agg", "ctx", "gen"]
        .iter()
        .map(|role| {
            let n = servers.iter().filter(|s| s["role"] == *role).count();
            serde_json::json!({
                "role": role, "serving_type": role.to_uppercase(), "servers": n, "tp": 1, "pp": 1, "cp": 1,
                "parallel": "tep", "batch": 8, "max_num_tokens": null, "max_seq_len": null, "mtp": 0, "eplb": 0,
                "world_size": 1, "engine_args": {},
            })
        })
        .filter(|r| r["servers"] != 0)
        .collect();
    let points: Vec<serde_json::Value> = points
        .iter()
        .map(|(id, c, requests, warmup)| {
            serde_json::json!({
                "id": id, "isl": 16, "osl": 8, "concurrency": c, "effective_concurrency": c,
                "requests": requests, "warmup": warmup,
            })
        })
        .collect();
    serde_json::json!({
        "sweep": "test", "id": "00000000000000aa", "name": "agg1_tep1_batch8_eplb0_mtp0", "mode": "agg",
        "engine": "mock", "model": {"path": "/models/tiny", "served_name": "tiny"},
        "backend": null, "dynamo": null,
        "slurm": {"job_name": "test.agg1", "nodes": 1, "ntasks": 1, "ntasks_per_node": 1, "gpus_per_node": 4,
                  "segment": null, "time_limit": null, "partition": null, "account": null, "qos": null, "extra": []},
        "container": null,
        "paths": {"sweep_dir": "/tmp", "job_dir": "/tmp", "runner": "sweep-runner", "bin_dir": "/tmp"},
        "roles": roles, "servers": servers, "frontend": null, "benchmark_node": 0,
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
    assert!(registration["address"].as_str().is_some_and(|a| a.contains(':')), "{registration}");
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

/// The pids whose command line holds `marker`, from /proc.
fn processes_with(marker: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(marker))
        })
        .collect()
}

/// An engine that is a tree of processes (as vLLM is: API server, EngineCore, resource
/// tracker): when its runner is killed outright, none of them is left.
#[test]
fn no_engine_process_outlives_a_runner_killed_with_sigkill() {
    let dir = job_dir("sigkill", &deploy_only(&[]));
    let marker = format!("sweep-orphan-check-{}", std::process::id());
    // A shell with two child shells, each waiting on a grandchild: the marker is every shell's
    // `$0`, so it shows in their command lines (`; :` keeps bash from exec-ing the last one).
    let tree = "bash -c 'sleep 300; :' $0 & bash -c 'sleep 300; :' $0 & sleep 300; :";
    let mut agg = serve(&dir.0, "AGG", 0, &["bash", "-c", tree, &marker]);
    let deadline = Instant::now() + Duration::from_secs(20);
    // Three shells, and the runner's own command line.
    while processes_with(&marker).len() < 4 {
        assert!(Instant::now() < deadline, "the engine's processes did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    agg.kill().expect("SIGKILL");
    let _ = agg.wait();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = processes_with(&marker);
        if left.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "left running after the runner was killed: {left:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("binds").local_addr().expect("address").port()
}

fn mock_engine() -> String {
    Path::new(env!("CARGO_BIN_EXE_sweep-runner")).with_file_name("sweep-mock-engine").display().to_string()
}

/// One mock AGG server (with `flags`) served through the runner, and the benchmark step.
struct Deployment {
    dir: JobDir,
    server: Child,
    bench: Child,
}

impl Drop for Deployment {
    fn drop(&mut self) {
        for child in [&mut self.server, &mut self.bench] {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn deploy(
    name: &str,
    flags: &[&str],
    load: serde_json::Value,
    points: &[(&str, u64, u64, u64)],
    bench_args: &[&str],
) -> Deployment {
    let port = free_port();
    let health = serde_json::json!({"path": "/health", "interval": 0.1, "timeout": 30});
    let dir = job_dir(name, &job(&[("agg_0", "agg", port)], health, load, points));
    let port_text = port.to_string();
    let engine = mock_engine();
    let mut command = vec![engine.as_str(), "--model", "tiny", "--port", &port_text];
    command.extend_from_slice(flags);
    let server = runner()
        .args(["serve", "--job-dir"])
        .arg(&dir.0)
        .args(["--role", "AGG", "--index", "0", "--port", &port_text, "--"])
        .args(&command)
        .env_remove("SLURM_PROCID")
        .spawn()
        .expect("spawns");
    let bench = runner()
        .args(["benchmark", "--progress", "off", "--job-dir"])
        .arg(&dir.0)
        .args(bench_args)
        .env_remove("SLURM_JOB_ID")
        .spawn()
        .expect("spawns");
    Deployment { dir, server, bench }
}

fn point_status(dir: &Path, id: &str) -> serde_json::Value {
    json(&dir.join("points").join(id).join("status.json"))
}

fn jsonl(dir: &Path, id: &str) -> Vec<serde_json::Value> {
    let text =
        std::fs::read_to_string(dir.join("points").join(id).join("profile_export.jsonl")).unwrap_or_default();
    text.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect()
}

#[test]
fn the_benchmark_runs_every_point_and_writes_its_artifacts() {
    let load = serde_json::json!({"seed": 3});
    let mut d = deploy("points", &["--speedup", "20"], load, &[(P1, 1, 3, 1), (P2, 2, 6, 2)], &[]);
    assert!(wait(&mut d.bench, Duration::from_secs(60)).success(), "benchmark failed");
    wait(&mut d.server, Duration::from_secs(40));
    let dir = &d.dir.0;
    let meta = json(&dir.join("metadata.json"));
    assert_eq!(meta["gpus"], serde_json::json!({"allocated": 4, "working": 1}), "{meta}");
    assert!(meta["servers"][0]["address"]
        .as_str()
        .is_some_and(|a| a.ends_with(&meta["servers"][0]["port"].to_string())));
    assert_eq!(meta["seed"], 3);
    assert_eq!(
        meta["engine_info"]["models"]["data"][0]["id"], "tiny",
        "what the engine says of itself: {meta}"
    );
    for (id, requests, warmup) in [(P1, 3, 1), (P2, 6, 2)] {
        assert_eq!(point_status(dir, id)["state"], "done", "{id}");
        let lines = jsonl(dir, id);
        assert_eq!(lines.len(), requests + warmup, "{id}: every request, warm-up included, one line each");
        let measured = lines.iter().filter(|l| l["metadata"]["benchmark_phase"] == "profiling").count();
        assert_eq!(measured, requests);
        let export = json(&dir.join("points").join(id).join("profile_export_aiperf.json"));
        assert_eq!(export["request_count"]["avg"], requests as f64, "{export}");
        assert_eq!(export["output_sequence_length"]["avg"], 8.0);
        assert_eq!(export["point"]["id"], id);
        assert!(dir.join("points").join(id).join("profile_export_aiperf.csv").exists());
    }
    assert_eq!(json(&dir.join("status/benchmark.json"))["state"], "done");
    assert_eq!(json(&dir.join("status/agg_0.json"))["state"], "stopped");
}

#[test]
fn a_server_crashing_mid_point_fails_that_point_and_keeps_what_finished() {
    // Request 1 is the smoke test, 2–5 are p1, 6 and 7 succeed in p2, 8 kills the server.
    let mut d = deploy(
        "crash",
        &["--no-delay", "--fault-crash-after", "7"],
        serde_json::json!({"request_timeout": 5}),
        &[(P1, 1, 4, 0), (P2, 1, 4, 0), (P3, 1, 2, 0)],
        &[],
    );
    assert!(!wait(&mut d.bench, Duration::from_secs(60)).success());
    let dir = &d.dir.0;
    assert_eq!(point_status(dir, P1)["state"], "done");
    let p2 = point_status(dir, P2);
    assert_eq!(p2["state"], "failed");
    assert!(p2["reason"].as_str().is_some_and(|r| r.contains("agg_0") && r.contains("exited")), "{p2}");
    let ok = jsonl(dir, P2).iter().filter(|l| l["error"].is_null()).count();
    assert_eq!(ok, 2, "the two requests that finished before the crash are kept");
    assert_eq!(point_status(dir, P3)["state"], "failed", "later points still run and are recorded");
    let bench = json(&dir.join("status/benchmark.json"));
    assert_eq!(bench["state"], "failed");
    assert!(
        bench["reason"].as_str().is_some_and(|r| r.contains("1 done") && r.contains("2 failed")),
        "{bench}"
    );
}

#[test]
fn a_hung_stream_times_out_and_the_point_finishes() {
    let mut d = deploy(
        "hang",
        &[
            "--no-delay",
            "--fault-hang-after-tokens",
            "2",
            "--fault-hang-probability",
            "0.5",
            "--fault-seed",
            "1",
        ],
        serde_json::json!({"request_timeout": 1.5}),
        &[(P1, 4, 8, 0)],
        &[],
    );
    wait(&mut d.bench, Duration::from_secs(60));
    let dir = &d.dir.0;
    let export = json(&dir.join(format!("points/{P1}/profile_export_aiperf.json")));
    let timeouts = export["errors"]["timeout"].as_u64().unwrap_or(0);
    let done = export["request_count"]["avg"].as_f64().unwrap_or(0.0) as u64;
    assert!(timeouts > 0 && done > 0 && timeouts + done == 8, "{export}");
    assert_eq!(point_status(dir, P1)["state"], "done", "errors are counted; the point still finished");
}

#[test]
fn the_deadline_stops_a_point_in_time_and_keeps_its_partial_results() {
    let deadline =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs_f64()
            + 4.0;
    let started = Instant::now();
    let mut d = deploy(
        "deadline",
        &["--prefill-base-ms", "5", "--decode-base-ms", "20"],
        serde_json::json!({}),
        &[(P1, 1, 1000, 0), (P2, 1, 10, 0)],
        &["--deadline", &deadline.to_string(), "--deadline-margin", "1"],
    );
    assert!(!wait(&mut d.bench, Duration::from_secs(30)).success());
    assert!(started.elapsed() < Duration::from_secs(10), "stopped at the deadline, not after 1000 requests");
    let dir = &d.dir.0;
    let p1 = point_status(dir, P1);
    assert_eq!(p1["state"], "timeout", "{p1}");
    let export = json(&dir.join(format!("points/{P1}/profile_export_aiperf.json")));
    assert!(export["request_count"]["avg"].as_f64().unwrap_or(0.0) >= 1.0, "finished requests are kept");
    assert_eq!(export["was_cancelled"], true);
    assert_eq!(export["errors"]["cancelled"], 1, "the request in flight is recorded as cancelled");
    let p2 = point_status(dir, P2);
    assert_eq!(p2["state"], "timeout");
    assert!(p2["reason"].as_str().is_some_and(|r| r.starts_with("not run")), "{p2}");
    assert_eq!(json(&dir.join("status/benchmark.json"))["state"], "timeout");
}

#[test]
fn sigterm_keeps_what_was_measured_and_marks_the_rest() {
    let mut d = deploy(
        "sigterm",
        &["--prefill-base-ms", "5", "--decode-base-ms", "20"],
        serde_json::json!({}),
        &[(P1, 1, 1000, 0), (P2, 1, 10, 0)],
        &[],
    );
    let dir = d.dir.0.clone();
    let deadline = Instant::now() + Duration::from_secs(20);
    while jsonl(&dir, P1).len() < 2 {
        assert!(Instant::now() < deadline, "no request finished");
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = Command::new("kill").args(["-TERM", &d.bench.id().to_string()]).status();
    assert!(!wait(&mut d.bench, Duration::from_secs(20)).success());
    let p1 = point_status(&dir, P1);
    assert_eq!(p1["state"], "cancelled");
    assert!(p1["reason"].as_str().is_some_and(|r| r.contains("SIGTERM")), "{p1}");
    assert!(jsonl(&dir, P1).len() >= 2, "records are kept");
    assert_eq!(point_status(&dir, P2)["state"], "cancelled");
}

#[test]
fn a_server_that_never_becomes_healthy_fails_with_its_log() {
    let mut d = deploy(
        "unhealthy",
        &["--fault-slow-start", "120"],
        serde_json::json!({}),
        &[(P1, 1, 2, 0)],
        &["--ready-timeout", "2"],
    );
    assert!(!wait(&mut d.bench, Duration::from_secs(30)).success());
    let dir = &d.dir.0;
    let bench = json(&dir.join("status/benchmark.json"));
    let reason = bench["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("agg_0 not healthy") && reason.contains("HTTP 503"), "{reason}");
    assert!(reason.contains("last lines of logs/agg_0.log"), "{reason}");
    assert_eq!(point_status(dir, P1)["state"], "failed", "the point is recorded, not dropped");
}

#[test]
fn dep_serving_roles_get_dynamos_ttft_correction() {
    let port = free_port();
    let health = serde_json::json!({"path": "/health", "interval": 0.1, "timeout": 30});
    let load = serde_json::json!({"dep_ttft_correction": true});
    let mut job: serde_json::Value =
        serde_json::from_str(&job(&[("agg_0", "agg", port)], health, load, &[(P1, 2, 4, 0)])).expect("job");
    job["roles"][0]["parallel"] = "dep".into();
    job["roles"][0]["tp"] = 2.into();
    let dir = job_dir("dep", &job.to_string());
    let port_text = port.to_string();
    let mut server = runner()
        .args(["serve", "--job-dir"])
        .arg(&dir.0)
        .args(["--role", "AGG", "--index", "0", "--port", &port_text, "--"])
        .args([mock_engine().as_str(), "--model", "tiny", "--port", &port_text, "--speedup", "10"])
        .env_remove("SLURM_PROCID")
        .spawn()
        .expect("spawns");
    let mut bench =
        runner().args(["benchmark", "--progress", "off", "--job-dir"]).arg(&dir.0).spawn().expect("spawns");
    assert!(wait(&mut bench, Duration::from_secs(60)).success());
    wait(&mut server, Duration::from_secs(40));
    let export = json(&dir.0.join(format!("points/{P1}/profile_export_aiperf.json")));
    let corrected = &export["time_to_first_token_dep_corrected"];
    // One burst of attention_dp_size × 4 = 8 requests; max(TTFT) / 4.
    assert_eq!(corrected["burst"], 8, "{export}");
    let avg = corrected["avg"].as_f64().expect("corrected TTFT");
    assert!(
        avg > 0.0 && avg < export["time_to_first_token"]["max"].as_f64().expect("max") * 2.0,
        "{corrected}"
    );
    // Not applied to TEP roles.
    assert!(json(&dir.0.join("metadata.json"))["roles"][0]["parallel"] == "dep");
}

#[test]
fn with_workers_waits_for_every_worker_then_hands_over_their_addresses() {
    let dir = job_dir(
        "with-workers",
        &deploy_only(&[("ctx_0", "ctx", 9101), ("ctx_1", "ctx", 9102), ("gen_0", "gen", 9103)]),
    );
    let config = dir.0.join("configs/disagg_server.yaml");
    let frontend = runner()
        .args(["with-workers", "--job-dir"])
        .arg(&dir.0)
        .args(["--format", "trtllm-disagg", "--config"])
        .arg(&config)
        .args(["--port", "8333", "--", "bash", "-c", "echo \"$SWEEP_CTX_URLS|$SWEEP_GEN_URLS\"; cat \"$0\""])
        .arg(&config)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawns");
    // The frontend waits while the workers are still starting.
    std::thread::sleep(Duration::from_millis(500));
    assert!(!config.exists(), "no config before every worker registered");
    let mut workers: Vec<Child> = [("CTX", 0), ("CTX", 1), ("GEN", 0)]
        .iter()
        .map(|(role, index)| serve(&dir.0, role, *index, &["bash", "-c", "sleep 30"]))
        .collect();
    let output = frontend.wait_with_output().expect("ends");
    std::fs::write(dir.0.join("control/stop"), b"").expect("stop");
    for worker in &mut workers {
        wait(worker, Duration::from_secs(40));
    }
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    let first = text.lines().next().unwrap_or_default();
    let (ctx, gen) = first.split_once('|').expect("two lists");
    assert_eq!((ctx.split(',').count(), gen.split(',').count()), (2, 1), "{text}");
    assert!(
        text.contains("context_servers:\n  num_instances: 2\n")
            && text.contains("generation_servers:\n  num_instances: 1\n"),
        "{text}"
    );
    assert!(text.contains(&format!("    - \"{gen}\"")), "the GEN worker's address as it registered: {text}");
}

#[test]
fn a_jobs_tokenizer_counts_every_point_and_a_missing_one_fails_the_job_at_once() {
    let tokens = std::env::temp_dir().join(format!("sweep-steps-tokenizer-{}", std::process::id()));
    std::fs::create_dir_all(&tokens).expect("dir");
    // Whitespace-split words: the engine's " tok0 tok1 …" is one token a word, as its usage says.
    let tokenizer = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": [], "normalizer": null,
        "pre_tokenizer": {"type": "WhitespaceSplit"}, "post_processor": null, "decoder": null,
        "model": {"type": "WordLevel", "vocab": {"[UNK]": 0}, "unk_token": "[UNK]"},
    });
    std::fs::write(tokens.join("tokenizer.json"), tokenizer.to_string()).expect("tokenizer.json");
    let load = serde_json::json!({"tokenizer": tokens.display().to_string()});
    let mut d = deploy("tokenizer", &["--speedup", "20"], load, &[(P1, 1, 3, 0)], &[]);
    assert!(wait(&mut d.bench, Duration::from_secs(60)).success(), "benchmark failed");
    wait(&mut d.server, Duration::from_secs(40));
    let export = json(&d.dir.0.join(format!("points/{P1}/profile_export_aiperf.json")));
    assert_eq!(export["token_source"], "tokenizer", "{export}");
    assert_eq!(export["output_sequence_length"]["avg"], 8.0);
    assert!(jsonl(&d.dir.0, P1).iter().all(|l| l["metadata"]["token_source"] == "tokenizer"));

    let missing = tokens.join("nowhere");
    let load = serde_json::json!({"tokenizer": missing.display().to_string()});
    let started = Instant::now();
    let mut d = deploy("no-tokenizer", &["--fault-slow-start", "120"], load, &[(P1, 1, 3, 0)], &[]);
    assert!(!wait(&mut d.bench, Duration::from_secs(30)).success());
    wait(&mut d.server, Duration::from_secs(40));
    assert!(started.elapsed() < Duration::from_secs(20), "failed before waiting for the servers");
    let status = json(&d.dir.0.join("status/benchmark.json"));
    let reason = status["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("nowhere") && reason.contains("does not exist"), "{status}");
    let point = point_status(&d.dir.0, P1);
    assert_eq!(point["state"], "failed", "the point is recorded, not dropped: {point}");
    assert!(d.dir.0.join("metadata.json").exists(), "metadata comes first");
    let _ = std::fs::remove_dir_all(&tokens);
}
