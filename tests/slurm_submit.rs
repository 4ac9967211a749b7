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

/// Polls `sweep status` until every job is in `state`: SLURM records a cancel when its
/// controller gets to it, sooner or later on a busy machine.
fn eventually_all(dir: &Path, state: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let rows = status(dir);
        if rows.iter().all(|r| r["state"] == state) {
            return;
        }
        assert!(Instant::now() < deadline, "not all {state} after 30 s: {rows:#?}");
        std::thread::sleep(Duration::from_millis(200));
    }
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
        .replace("frontend_port: 19099}", "frontend_port: 19099, sbatch: [\"--begin=now+600\"]}")
        .replace("tp: [4, 32]", "tp: 4");
    // Held ten minutes by SLURM itself, so the jobs are still queued when they are cancelled.
    assert!(spec.contains("--begin=now+600"), "{spec}");
    let sweep_dir = new_sweep("cancel", &spec);
    let (code, stdout, stderr) = sweep(&["submit", "spec.yaml", "-o", "sweep"], &sweep_dir.dir);
    assert_eq!(code, 0, "{stderr}");
    let ids: Vec<String> = stdout.lines().map(|l| l.split('\t').nth(1).expect("id").to_owned()).collect();
    assert_eq!(ids.len(), 2);
    let rows = status(&sweep_dir.dir);
    assert!(rows.iter().all(|r| r["state"] == "PENDING"), "{rows:#?}");

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
    eventually_all(&sweep_dir.dir, "CANCELLED");
}

/// Six one-node aggregated jobs (TP4 on 4-GPU nodes), three of them TP32: more nodes than the
/// partition has, so SLURM rejects them. Nothing holds a port, but each runner checks its port
/// is free: the simulated nodes share one network, so each test moves PORTS to its own range.
const QUEUE_SPEC: &str = "\
name: e2e-queue
model: {path: /m}
engine:
  kind: custom
  commands: {agg: \"sleep 600\"}
  health: {path: null}
cluster: {gpus_per_node: 4, max_nodes: 16, base_port: PORTS00, frontend_port: PORTS99}
mode: agg
agg: {tp: TPS, batch: [1, 2, 3]}
workload: {isl: 8, osl: 8, concurrency: 1, load: false}
";

fn manifest(dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("sweep/manifest.json")).expect("manifest");
    serde_json::from_str(&text).expect("JSON")
}

/// Each job's benchmark step as its marker recorded it: (job folder, started_at, ended_at).
fn benchmark_spans(dir: &Path, manifest: &serde_json::Value) -> Vec<(String, f64, f64)> {
    let jobs = manifest["jobs"].as_array().expect("jobs");
    jobs.iter()
        .filter_map(|job| {
            let folder = job["dir"].as_str()?.to_owned();
            let text = std::fs::read_to_string(dir.join("sweep").join(&folder).join("status/benchmark.json"))
                .ok()?;
            let status: serde_json::Value = serde_json::from_str(&text).ok()?;
            Some((folder, status["started_at"].as_f64()?, status["ended_at"].as_f64()?))
        })
        .collect()
}

/// The most spans open at one moment.
fn most_at_once(spans: &[(String, f64, f64)]) -> usize {
    spans
        .iter()
        .map(|(_, start, _)| spans.iter().filter(|(_, s, e)| s <= start && start < e).count())
        .max()
        .unwrap_or(0)
}

#[test]
fn max_in_queue_chains_the_jobs_and_a_rejected_job_leaves_its_chain_waiting_on_the_one_before() {
    let sweep_dir = new_sweep("chains", &QUEUE_SPEC.replace("TPS", "[4, 32]").replace("PORTS", "192"));
    let (code, stdout, stderr) =
        sweep(&["submit", "spec.yaml", "-o", "sweep", "--max-in-queue", "2"], &sweep_dir.dir);
    assert_eq!(code, 9, "three jobs are rejected: {stderr}");
    assert_eq!(stdout.lines().count(), 3, "{stdout}");
    let m = manifest(&sweep_dir.dir);
    assert_eq!(m["queue_limit"], serde_json::json!({"max_in_queue": 2, "mode": "chains"}));
    // Jobs are dealt to chains 0, 1, 0, 1, …; each waits for its chain's last accepted job: chain
    // 1 is TP4 batch 2, then two rejected TP32 jobs, both recorded against the TP4 one.
    let mut tails: [Option<String>; 2] = [None, None];
    for (n, job) in m["jobs"].as_array().expect("jobs").iter().enumerate() {
        let chain = job["chain"].as_u64().expect("chain") as usize;
        assert_eq!(chain, n % 2, "{job}");
        assert_eq!(
            job["after"].as_str(),
            tails[chain].as_deref(),
            "job {n} waits for its chain's last accepted: {m:#}"
        );
        if job["state"] == "submitted" {
            tails[chain] = job["slurm_job_id"].as_str().map(str::to_owned);
        } else {
            assert_eq!(job["state"], "rejected", "{job}");
        }
    }

    // `sweep wait` blocks until they end; the rejected jobs' points never ran: exit 15.
    let (code, _, stderr) =
        sweep(&["wait", "sweep", "--timeout", "180", "--interval", "0.5"], &sweep_dir.dir);
    assert_eq!(code, 15, "{stderr}");
    assert!(
        stderr.contains("the sweep ended with 0 of 6 points done, 3 skipped on purpose; 3 not run"),
        "{stderr}"
    );
    assert!(stderr.contains("COMPLETED"), "a line per state change: {stderr}");
    // A job waited for the one before it in its chain to end.
    let spans = benchmark_spans(&sweep_dir.dir, &m);
    assert_eq!(spans.len(), 3, "{spans:?}");
    // (A rejected job never ran; the tail it was recorded against is checked above.)
    for job in m["jobs"].as_array().expect("jobs").iter().filter(|j| j["state"] == "submitted") {
        let Some(after) = job["after"].as_str() else { continue };
        let before = m["jobs"]
            .as_array()
            .expect("jobs")
            .iter()
            .find(|j| j["slurm_job_id"] == after)
            .expect("its chain's job");
        let span =
            |dir: &serde_json::Value| spans.iter().find(|s| s.0 == dir.as_str().unwrap_or_default()).cloned();
        let (Some(this), Some(prev)) = (span(&job["dir"]), span(&before["dir"])) else { panic!("{spans:?}") };
        assert!(this.1 >= prev.2, "{} started before {} ended: {spans:?}", this.0, prev.0);
    }
}

#[test]
fn waves_submit_the_limit_and_wait_submits_the_rest_as_jobs_end_while_status_watches() {
    let sweep_dir = new_sweep(
        "waves",
        &QUEUE_SPEC
            .replace("PORTS", "193")
            .replace("TPS", "4")
            .replace("batch: [1, 2, 3]", "batch: [1, 2, 3, 4, 5]"),
    );
    let (code, stdout, stderr) =
        sweep(&["submit", "spec.yaml", "-o", "sweep", "--max-in-queue", "2", "--waves"], &sweep_dir.dir);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout.lines().count(), 2, "only the limit goes in: {stdout}");
    assert!(stderr.contains("3 jobs wait in the folder: `sweep wait"), "{stderr}");
    let held = |m: &serde_json::Value| {
        m["jobs"].as_array().expect("jobs").iter().filter(|j| j["state"] == "rendered").count()
    };
    assert_eq!(held(&manifest(&sweep_dir.dir)), 3);

    // `status --watch` refreshes until every job has ended, held ones included, then exits.
    let watch = Command::new(env!("CARGO_BIN_EXE_sweep"))
        .args(["status", "sweep", "--watch", "0.5"])
        .current_dir(&sweep_dir.dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("status --watch starts");

    let (code, stdout, stderr) = sweep(
        &["wait", "sweep", "--submit-more", "--timeout", "240", "--interval", "0.5", "--max-interval", "2"],
        &sweep_dir.dir,
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout.lines().count(), 3, "the held jobs' ids: {stdout}");
    assert!(stderr.contains("every job ended: 0 of 5 points done, 5 skipped"), "{stderr}");
    let m = manifest(&sweep_dir.dir);
    assert_eq!(held(&m), 0);
    let spans = benchmark_spans(&sweep_dir.dir, &m);
    assert_eq!(spans.len(), 5, "{spans:?}");
    assert!(most_at_once(&spans) <= 2, "never more than the limit at once: {spans:?}");

    let output = watch.wait_with_output().expect("status --watch ends by itself");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.matches("JOB ").count() >= 2, "it refreshed: {text}");
    let last = text.rsplit("JOB ").next().unwrap_or_default();
    assert_eq!(last.matches("COMPLETED").count(), 5, "the last table has every job ended: {text}");
}

#[test]
fn wait_retries_an_unreachable_controller_with_backoff_and_gives_up_at_its_timeout() {
    let sweep_dir = new_sweep(
        "wait-down",
        &QUEUE_SPEC.replace("PORTS", "194").replace("TPS", "4").replace("batch: [1, 2, 3]", "batch: 1"),
    );
    let (code, _, stderr) = sweep(&["render", "spec.yaml", "-o", "sweep", "--no-check"], &sweep_dir.dir);
    assert_eq!(code, 0, "{stderr}");
    // The job as if submitted, to a controller nobody listens for: a copy of the cluster's
    // configuration with the controller's port moved to one that is closed.
    let path = sweep_dir.dir.join("sweep/manifest.json");
    let mut m = manifest(&sweep_dir.dir);
    m["jobs"][0]["state"] = "submitted".into();
    m["jobs"][0]["slurm_job_id"] = "999999".into();
    std::fs::write(&path, serde_json::to_vec_pretty(&m).expect("JSON")).expect("manifest");
    let conf = std::fs::read_to_string("/etc/slurm/slurm.conf").expect("the dev cluster's slurm.conf");
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
    let conf: String = conf
        .lines()
        .filter(|l| !l.starts_with("SlurmctldPort") && !l.starts_with("MessageTimeout"))
        .chain([format!("SlurmctldPort={port}").as_str(), "MessageTimeout=2"])
        .map(|l| format!("{l}\n"))
        .collect();
    let conf_path = sweep_dir.dir.join("slurm.conf");
    std::fs::write(&conf_path, conf).expect("conf");
    std::fs::copy("/etc/slurm/gres.conf", sweep_dir.dir.join("gres.conf")).expect("gres.conf");
    let start = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_sweep"))
        .args(["wait", "sweep", "--timeout", "8", "--interval", "1"])
        .current_dir(&sweep_dir.dir)
        .env("SLURM_CONF", &conf_path)
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(16), "{stderr}");
    assert!(stderr.contains("squeue failed") && stderr.contains("retrying in 1 s"), "{stderr}");
    assert!(stderr.contains("timed out after 8 s with 1 job(s) still queued or running"), "{stderr}");
    assert!(start.elapsed() < Duration::from_secs(60), "gave up near its timeout: {:?}", start.elapsed());
}

/// The sweep's job ids in the manifest, in plan order, for jobs of `attempt`.
fn job_ids(m: &serde_json::Value, attempt: u64) -> Vec<String> {
    m["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .filter(|j| j["attempt"].as_u64() == Some(attempt))
        .filter_map(|j| j["slurm_job_id"].as_str().map(str::to_owned))
        .collect()
}

/// Lets jobs held by `--begin` start now.
fn release(ids: &[String]) {
    for id in ids {
        let status = Command::new("scontrol")
            .args(["update", &format!("JobId={id}"), "StartTime=now"])
            .status()
            .expect("scontrol runs");
        assert!(status.success(), "scontrol update JobId={id} StartTime=now");
    }
}

#[test]
fn cancel_and_resume_keep_working_on_a_sweep_in_chains() {
    let spec = QUEUE_SPEC
        .replace("TPS", "4")
        .replace("batch: [1, 2, 3]", "batch: [1, 2, 3, 4]")
        .replace("PORTS99}", "PORTS99, sbatch: [\"--begin=now+600\"]}")
        .replace("PORTS", "195");
    assert!(spec.contains("--begin=now+600"), "{spec}");
    let sweep_dir = new_sweep("chains-cancel", &spec);
    let (code, _, stderr) =
        sweep(&["submit", "spec.yaml", "-o", "sweep", "--max-in-queue", "2"], &sweep_dir.dir);
    assert_eq!(code, 0, "{stderr}");
    let first = job_ids(&manifest(&sweep_dir.dir), 1);
    assert_eq!(first.len(), 4);

    // Cancel takes every job of every chain: the heads held by --begin, the rest by dependency.
    let (code, stdout, stderr) = sweep(&["cancel", "sweep"], &sweep_dir.dir);
    assert_eq!(code, 0, "{stderr}");
    let mut cancelled: Vec<String> = stdout.lines().map(str::to_owned).collect();
    cancelled.sort();
    let mut expected = first.clone();
    expected.sort();
    assert_eq!(cancelled, expected, "the chained jobs are cancelled too");
    eventually_all(&sweep_dir.dir, "CANCELLED");

    // A resume builds new chains: the cancelled jobs have ended, so no new job waits for them.
    let (code, stdout, stderr) =
        sweep(&["submit", "spec.yaml", "-o", "sweep", "--resume", "--max-in-queue", "2"], &sweep_dir.dir);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout.lines().count(), 4, "every point again: {stdout}");
    let m = manifest(&sweep_dir.dir);
    let second = job_ids(&m, 2);
    assert_eq!(second.len(), 4, "{m:#}");
    let resumed: Vec<&serde_json::Value> =
        m["jobs"].as_array().expect("jobs").iter().filter(|j| j["attempt"] == 2).collect();
    for (n, job) in resumed.iter().enumerate() {
        let after = job["after"].as_str();
        if n < 2 {
            assert_eq!(after, None, "a new chain's head waits for nothing: {job}");
        } else {
            assert_eq!(after, Some(second[n - 2].as_str()), "{job}");
        }
        assert!(!first.iter().any(|id| Some(id.as_str()) == after), "{job}");
    }
    release(&second);
    let (code, _, stderr) = sweep(
        &["wait", "sweep", "--timeout", "180", "--interval", "0.5", "--max-interval", "2"],
        &sweep_dir.dir,
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("every job ended: 0 of 4 points done, 4 skipped"), "{stderr}");
    let spans = benchmark_spans(&sweep_dir.dir, &m);
    assert!(most_at_once(&spans) <= 2, "never more than the limit at once: {spans:?}");
}

/// `sweep wait` run by another user, on a cluster whose PrivateData hides root's jobs from them
/// (the dev cluster's `sweep-other`): squeue shows nothing, so the jobs are followed by their
/// markers in the folder, and the wait says so.
#[test]
fn wait_on_another_users_sweep_follows_the_markers_of_jobs_squeue_hides() {
    let spec = QUEUE_SPEC
        .replace("TPS", "4")
        .replace("batch: [1, 2, 3]", "batch: 1")
        .replace("PORTS99}", "PORTS99, sbatch: [\"--begin=now+600\"]}")
        .replace("PORTS", "196");
    let sweep_dir = new_sweep("wait-other-user", &spec);
    let (code, _, stderr) = sweep(&["submit", "spec.yaml", "-o", "sweep"], &sweep_dir.dir);
    assert_eq!(code, 0, "{stderr}");
    let ids = job_ids(&manifest(&sweep_dir.dir), 1);
    // A copy the other user can run wherever the build is.
    let binary = sweep_dir.dir.join("sweep-bin");
    std::fs::copy(env!("CARGO_BIN_EXE_sweep"), &binary).expect("copy");
    let as_other = |args: &[&str]| {
        let output = Command::new("runuser")
            .args(["-u", "sweep-other", "--"])
            .arg(&binary)
            .args(args)
            .current_dir(&sweep_dir.dir)
            .output()
            .expect("runuser runs");
        (output.status.code(), String::from_utf8_lossy(&output.stderr).into_owned())
    };
    let (code, stderr) = as_other(&["wait", "sweep", "--timeout", "3", "--interval", "0.5"]);
    assert_eq!(code, Some(16), "the job is still held: {stderr}");
    assert!(
        stderr.contains("squeue does not show 1 of the sweep's jobs")
            && stderr.contains("PrivateData=jobs")
            && stderr.contains("retrying in 1 s"),
        "{stderr}"
    );
    assert!(stderr.contains("UNSEEN"), "{stderr}");

    release(&ids);
    let (code, stderr) =
        as_other(&["wait", "sweep", "--timeout", "120", "--interval", "0.5", "--max-interval", "2"]);
    assert_eq!(code, Some(0), "its marker says it is done: {stderr}");
    assert!(stderr.contains("COMPLETED (from the job's status marker)"), "{stderr}");
    assert!(stderr.contains("every job ended: 0 of 1 points done, 1 skipped"), "{stderr}");
}

/// A reader that hung up on the job ids (`sweep submit … | head -0`) stops nothing: every job is
/// still submitted and recorded, and the exit code is 0 as for every other command.
#[test]
fn a_closed_stdout_stops_no_submission() {
    let spec = SPEC.replace("tp: [4, 32]", "tp: 4").replace("servers: [1, 2]", "servers: [1, 2, 3]");
    let sweep_dir = new_sweep("closed-stdout", &spec);
    let mut child = Command::new(env!("CARGO_BIN_EXE_sweep"))
        .args(["submit", "spec.yaml", "-o", "sweep"])
        .current_dir(&sweep_dir.dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("runs");
    drop(child.stdout.take());
    let output = child.wait_with_output().expect("exits");
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    let m = manifest(&sweep_dir.dir);
    let jobs = m["jobs"].as_array().expect("jobs");
    assert_eq!(jobs.len(), 3);
    assert!(jobs.iter().all(|j| j["slurm_job_id"].is_string()), "{m:#}");
}
