//! `sweep-runner`: what each `srun` step of a sweep job runs.
//!
//! - `serve`: one server of a role (CTX, GEN, AGG, DISAGG_SERVER). Publishes the server's address
//!   in the job's rendezvous folder, runs the engine's command with its own log (appended, never
//!   truncated), stops it when the job's `control/stop` file appears, and writes a status marker.
//! - `benchmark`: waits until every server of the job has registered, then tells them to stop.
//!   (Readiness checks and load generation within the job are not written yet.)
//! - `profile`: a closed-loop load generator against any OpenAI-compatible server.
//!
//! The job folder is on the cluster's shared filesystem; every file is written through a
//! temporary name and a rename, so readers never see half a file.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::{Parser, Subcommand};

mod profile;

#[derive(Debug, Parser)]
#[command(name = "sweep-runner", version, about = "The in-job runner of sweep")]
struct Cli {
    #[command(subcommand)]
    command: Step,
}

#[derive(Debug, Subcommand)]
enum Step {
    /// Run one server of a role until the job says stop.
    Serve {
        #[arg(long)]
        job_dir: PathBuf,
        /// CTX, GEN, AGG or DISAGG_SERVER (default: $DISAGG_SERVING_TYPE).
        #[arg(long, env = "DISAGG_SERVING_TYPE")]
        role: String,
        #[arg(long, default_value_t = 0)]
        index: u32,
        #[arg(long)]
        port: u16,
        /// `CUDA_VISIBLE_DEVICES` for the engine.
        #[arg(long)]
        gpus: Option<String>,
        /// The engine's command and arguments.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Load an OpenAI-compatible server in a closed loop and print the measurements as JSON.
    Profile(profile::ProfileArgs),
    /// Wait for the job's servers, then stop them.
    Benchmark {
        #[arg(long)]
        job_dir: PathBuf,
        /// Give up when a server has not registered after this many seconds.
        #[arg(long, default_value_t = 1800)]
        ready_timeout: u64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Step::Serve { job_dir, role, index, port, gpus, command } => {
            serve(&job_dir, &role, index, port, gpus.as_deref(), &command)
        }
        Step::Benchmark { job_dir, ready_timeout } => benchmark(&job_dir, Duration::from_secs(ready_timeout)),
        Step::Profile(args) => profile::run(args).and_then(|results| {
            use std::io::Write;
            let mut stdout = std::io::stdout().lock();
            writeln!(stdout, "{results}").map_err(|e| format!("cannot write the results: {e}"))?;
            Ok(ExitCode::SUCCESS)
        }),
    };
    match result {
        Ok(code) => code,
        Err(message) => {
            eprintln!("sweep-runner: {message}");
            ExitCode::from(1)
        }
    }
}

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// The node this step runs on: SLURM's name for it (resolvable on the cluster), else the host's.
fn node() -> String {
    std::env::var("SLURMD_NODENAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok().map(|h| h.trim().to_owned()))
        .unwrap_or_else(|| "localhost".to_owned())
}

fn write_atomically(path: &Path, value: &serde_json::Value) -> Result<(), String> {
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    std::fs::write(&tmp, value.to_string()).map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn serve(
    job_dir: &Path,
    role: &str,
    index: u32,
    port: u16,
    gpus: Option<&str>,
    command: &[String],
) -> Result<ExitCode, String> {
    let name = format!("{}_{index}", role.to_ascii_lowercase());
    // An MPI-launched server runs one task per GPU; task 0 speaks for the server.
    let leader = std::env::var("SLURM_PROCID").map_or(true, |id| id == "0");
    let node = node();
    for dir in ["logs", "rendezvous", "status", "control"] {
        std::fs::create_dir_all(job_dir.join(dir)).map_err(|e| format!("cannot create {dir}: {e}"))?;
    }
    let log_path = job_dir.join("logs").join(format!("{name}.log"));
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| format!("cannot open {}: {e}", log_path.display()))?;
    let err_log = log.try_clone().map_err(|e| e.to_string())?;
    let started = now();
    let mut engine = Command::new(&command[0]);
    engine.args(&command[1..]).stdin(Stdio::null()).stdout(log).stderr(err_log);
    if let Some(gpus) = gpus {
        engine.env("CUDA_VISIBLE_DEVICES", gpus);
    }
    let mut child = match engine.spawn() {
        Ok(child) => child,
        Err(e) => {
            let reason = format!("cannot start `{}`: {e}", command[0]);
            if leader {
                write_status(job_dir, &name, "failed", None, &node, &reason, started)?;
            }
            return Err(reason);
        }
    };
    if leader {
        let registration = serde_json::json!({
            "role": role.to_ascii_lowercase(),
            "serving_type": role,
            "index": index,
            "address": format!("{node}:{port}"),
            "node": node,
            "pid": child.id(),
        });
        write_atomically(&job_dir.join("rendezvous").join(format!("{name}.json")), &registration)?;
    }
    let stop = job_dir.join("control").join("stop");
    loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            let (state, reason) = if stop.exists() {
                ("stopped", "the job asked it to stop".to_owned())
            } else {
                ("exited", format!("the engine exited by itself with {status}"))
            };
            if leader {
                write_status(job_dir, &name, state, status.code(), &node, &reason, started)?;
            }
            return Ok(if state == "stopped" { ExitCode::SUCCESS } else { ExitCode::from(1) });
        }
        if stop.exists() {
            // SIGTERM first, as SLURM would; the loop then records how it ended.
            let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
            let deadline = Instant::now() + Duration::from_secs(30);
            while child.try_wait().map_err(|e| e.to_string())?.is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            if child.try_wait().map_err(|e| e.to_string())?.is_none() {
                let _ = child.kill();
            }
            continue;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn write_status(
    job_dir: &Path,
    name: &str,
    state: &str,
    code: Option<i32>,
    node: &str,
    reason: &str,
    started: f64,
) -> Result<(), String> {
    let status = serde_json::json!({
        "state": state,
        "exit_code": code,
        "node": node,
        "reason": reason,
        "started_at": started,
        "ended_at": now(),
    });
    write_atomically(&job_dir.join("status").join(format!("{name}.json")), &status)
}

/// The names (`gen_0`, …, `disagg_server_0`) of the servers `job.json` says the job runs.
fn expected_servers(job_dir: &Path) -> Result<Vec<String>, String> {
    let path = job_dir.join("job.json");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let job: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{} is not JSON: {e}", path.display()))?;
    let mut names: Vec<String> = job["servers"]
        .as_array()
        .ok_or_else(|| format!("{} lists no servers", path.display()))?
        .iter()
        .filter_map(|s| s["name"].as_str().map(str::to_owned))
        .collect();
    if !job["frontend"].is_null() {
        names.push("disagg_server_0".to_owned());
    }
    Ok(names)
}

fn benchmark(job_dir: &Path, ready_timeout: Duration) -> Result<ExitCode, String> {
    let started = now();
    let node = node();
    let stop = || std::fs::write(job_dir.join("control").join("stop"), b"");
    std::fs::create_dir_all(job_dir.join("control")).map_err(|e| e.to_string())?;
    let finish = |state: &str, reason: String| -> Result<ExitCode, String> {
        write_status(job_dir, "benchmark", state, None, &node, &reason, started)?;
        let _ = stop();
        if state == "done" {
            Ok(ExitCode::SUCCESS)
        } else {
            Err(reason)
        }
    };
    let expected = match expected_servers(job_dir) {
        Ok(names) => names,
        Err(reason) => return finish("failed", reason),
    };
    let deadline = Instant::now() + ready_timeout;
    loop {
        let missing: Vec<&String> = expected
            .iter()
            .filter(|n| !job_dir.join("rendezvous").join(format!("{n}.json")).exists())
            .collect();
        if missing.is_empty() {
            break;
        }
        // A server that already ended will never register: fail now, not at the timeout.
        for name in &missing {
            let status = job_dir.join("status").join(format!("{name}.json"));
            if let Ok(text) = std::fs::read_to_string(&status) {
                return finish("failed", format!("server {name} ended before registering: {text}"));
            }
        }
        if Instant::now() > deadline {
            let names: Vec<&str> = missing.iter().map(|n| n.as_str()).collect();
            return finish(
                "failed",
                format!("servers not registered after {ready_timeout:?}: {}", names.join(", ")),
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    finish(
        "done",
        format!("all {} servers registered; load generation is not implemented yet", expected.len()),
    )
}
