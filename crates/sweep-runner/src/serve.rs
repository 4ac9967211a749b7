//! `sweep-runner serve`: one server of a role. Publishes the server's address in the job's
//! rendezvous folder, runs the engine's command with its own log (appended, never truncated) in
//! a process group of its own, forwards SIGTERM/SIGINT to that group, stops it when the job's
//! `control/stop` file appears, and writes a status marker when it ends. No process of the
//! engine outlives the runner, even one killed with SIGKILL ([`crate::group`]).

use std::fs::OpenOptions;
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::Signal;
use std::os::unix::process::CommandExt;

use sweep_folder::markers::ServerRole;
use sweep_folder::{JobDir, Registration, ServerState, ServerStatus};

use crate::files;
use crate::group::EngineGroup;
use crate::RunnerError;

#[derive(Debug)]
pub struct Serve<'a> {
    pub job_dir: &'a Path,
    pub role: &'a str,
    pub index: u32,
    pub port: u16,
    pub gpus: Option<&'a str>,
    /// Publish this interface's address instead of the node's name.
    pub interface: Option<&'a str>,
    /// Publish this host name or address.
    pub host: Option<&'a str>,
    pub command: &'a [String],
}

/// SIGTERM and SIGINT set the flag instead of killing the runner, which then passes the
/// signal on to the engine and records how it ended.
fn signal_flag() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let set = flag.clone();
    std::thread::spawn(move || {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
        runtime.block_on(async {
            use tokio::signal::unix::{signal, SignalKind};
            let (Ok(mut term), Ok(mut int)) =
                (signal(SignalKind::terminate()), signal(SignalKind::interrupt()))
            else {
                return;
            };
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            set.store(true, Ordering::SeqCst);
        });
    });
    flag
}

/// A claim on `port` among the runners that share this network namespace (jobs on nodes of one
/// network, two sweeps at once), so that two servers starting together never pick the same
/// port: an abstract Unix socket named after it, which one process at a time can bind and which
/// the kernel frees with its process, whatever ends it — no file is left behind. `None`: another
/// runner holds it.
fn claim(port: u16) -> std::io::Result<Option<std::os::unix::net::UnixListener>> {
    use std::os::linux::net::SocketAddrExt;
    let name = std::os::unix::net::SocketAddr::from_abstract_name(format!("sweep-port-{port}"))?;
    match std::os::unix::net::UnixListener::bind_addr(&name) {
        Ok(held) => Ok(Some(held)),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Ok(None),
        Err(e) => Err(e),
    }
}

/// How far above its planned port a server looks for a free one.
const PORT_SEARCH: u16 = 500;

/// The port this server listens on, and the claim that holds it while the runner lives: the
/// planned one when no other runner claimed it and it can be bound here, else the first such
/// port above it. Jobs that run at once on nodes sharing one network (or two sweeps at once)
/// plan the same ports; the port each server took is published in its registration, where the
/// benchmark, the routers and the report read it.
/// `movable`: the engine's command takes its port from `@SWEEP_PORT@`; one that names its port
/// itself keeps it, and fails when it is taken.
fn claim_port(
    planned: u16,
    movable: bool,
) -> Result<(u16, Option<std::os::unix::net::UnixListener>), String> {
    let node = files::node();
    if !movable {
        // Kept whatever other runners claim: only a port in use stops it.
        return if bindable(planned, 5) {
            Ok((planned, None))
        } else {
            Err(format!(
                "port {planned} on {node} is already in use (another job or process shares this node's network), \
                 and the engine's command names its port itself: put `@SWEEP_PORT@` where the port goes, give \
                 each concurrent sweep its own `cluster.base_port`, or submit with --sequential"
            ))
        };
    }
    let last = planned.saturating_add(PORT_SEARCH);
    for port in planned..=last {
        // Where no socket can be bound (no such namespace support) the bind of the port alone
        // decides.
        let held = match claim(port) {
            Ok(Some(held)) => Some(held),
            Ok(None) => continue,
            Err(_) => None,
        };
        // The planned port is asked a few times over a second: the previous job of a chain
        // may still be closing its server on this node.
        let attempts = if port == planned { 5 } else { 1 };
        if bindable(port, attempts) {
            return Ok((port, held));
        }
    }
    Err(format!(
        "no free port from {planned} to {last} on {node}: every one is in use or claimed by another runner"
    ))
}

fn bindable(port: u16, attempts: u32) -> bool {
    for attempt in 0..attempts {
        if std::net::TcpListener::bind(("0.0.0.0", port)).is_ok() {
            return true;
        }
        if attempt + 1 < attempts {
            std::thread::sleep(std::time::Duration::from_millis(250));
        }
    }
    false
}

pub fn run(s: &Serve) -> Result<ExitCode, RunnerError> {
    let role = ServerRole::parse(s.role).ok_or_else(|| {
        RunnerError::flag("--role", format!("--role {}: give CTX, GEN, AGG or DISAGG_SERVER", s.role))
    })?;
    let name = role.server_name(s.index);
    let job = JobDir::new(s.job_dir);
    // An MPI-launched server runs one task per GPU; task 0 speaks for the server.
    let leader = std::env::var("SLURM_PROCID").map_or(true, |id| id == "0");
    let node = files::node();
    let host = match (s.host, s.interface) {
        (Some(host), _) => host.to_owned(),
        (None, Some(interface)) => files::interface_address(interface)
            .map_err(|problem| RunnerError::flag("--interface", problem))?,
        (None, None) => node.clone(),
    };
    // A port another process holds (another job sharing this node's network) would fail the
    // engine obscurely, or worse, another server would answer for it: the server takes the
    // next free one. Tasks after the first of a multi-node server serve no HTTP of their own.
    let movable = s.command.iter().any(|a| a.contains("@SWEEP_PORT@"));
    let (port, _claim) = if leader && s.port != 0 {
        match claim_port(s.port, movable) {
            Ok(claimed) => claimed,
            Err(reason) => {
                let status = ServerStatus {
                    state: ServerState::Failed,
                    exit_code: None,
                    node,
                    reason: reason.clone(),
                    started_at: None,
                    ended_at: files::now(),
                };
                job.write_server_status(&name, &status)?;
                return Err(RunnerError::server(&name, reason));
            }
        }
    } else {
        (s.port, None)
    };
    if port != s.port {
        eprintln!("sweep-runner: {name}: port {} is taken on {node}; listening on {port} instead", s.port);
    }
    job.create_folders()?;
    let signalled = signal_flag();
    let log_path = job.log_path(&name);
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|source| RunnerError::File { action: "open", path: log_path.clone(), source })?;
    let err_log = log.try_clone().map_err(|source| RunnerError::File {
        action: "open",
        path: log_path.clone(),
        source,
    })?;
    let started = files::now();
    let command = crate::workers::substitute(s.job_dir, s.command, port);
    let mut engine = Command::new(&command[0]);
    // Its own group: every process the engine starts is signalled with it.
    engine.args(&command[1..]).stdin(Stdio::null()).stdout(log).stderr(err_log).process_group(0);
    if let Some(gpus) = s.gpus {
        engine.env("CUDA_VISIBLE_DEVICES", gpus);
    }
    let status = |state: ServerState, code: Option<i32>, reason: &str| -> Result<(), RunnerError> {
        if !leader {
            return Ok(());
        }
        let status = ServerStatus {
            state,
            exit_code: code,
            node: node.clone(),
            reason: reason.to_owned(),
            started_at: Some(started),
            ended_at: files::now(),
        };
        Ok(job.write_server_status(&name, &status)?)
    };
    let mut child = match engine.spawn() {
        Ok(child) => child,
        Err(e) => {
            let reason = format!("cannot start `{}`: {e}", s.command[0]);
            status(ServerState::Failed, None, &reason)?;
            return Err(RunnerError::server(&name, reason));
        }
    };
    let group = EngineGroup::of(child.id());
    // Without a guard the engine could outlive a runner killed by SIGKILL; it still runs.
    let mut guard = match group.guard() {
        Ok(guard) => Some(guard),
        Err(e) => {
            eprintln!("sweep-runner: cannot start the guard of the engine's processes: {e}");
            None
        }
    };
    if leader {
        let registration = Registration {
            role,
            serving_type: Some(role.serving_type()),
            index: Some(s.index),
            address: format!("{host}:{port}"),
            node: Some(node.clone()),
            pid: Some(child.id()),
        };
        job.write_registration(&name, &registration)?;
        // The engine's Python packages, for the job's provenance: found beside the engine
        // (its node, its container), while it loads.
        let (dir, name, command) = (job.clone(), name.clone(), command.clone());
        std::thread::spawn(move || {
            if let Some(environment) = crate::provenance::python_environment(&command) {
                let _ = dir.write_environment(&name, &environment);
            }
        });
    }
    loop {
        if let Some(exit) =
            child.try_wait().map_err(|source| RunnerError::Process { what: "wait for the engine", source })?
        {
            let (state, reason) = if job.stop_requested() {
                (ServerState::Stopped, "the job asked it to stop".to_owned())
            } else if signalled.load(Ordering::SeqCst) {
                (
                    ServerState::Stopped,
                    "the runner was signalled (SIGTERM/SIGINT) and passed it on".to_owned(),
                )
            } else {
                (ServerState::Exited, format!("the engine exited by itself with {exit}"))
            };
            // What the engine started and left behind ends with it.
            group.signal(Signal::SIGKILL);
            if let Some(mut guard) = guard.take() {
                let _ = guard.kill();
                let _ = guard.wait();
            }
            status(state, exit.code(), &reason)?;
            return Ok(if state == ServerState::Stopped { ExitCode::SUCCESS } else { ExitCode::from(1) });
        }
        if job.stop_requested() || signalled.load(Ordering::SeqCst) {
            // SIGTERM first, as SLURM would, to every process of the engine; SIGKILL after 30 s.
            // The loop then records how it ended.
            group.stop(Duration::from_secs(30), || matches!(child.try_wait(), Ok(Some(_)) | Err(_)));
            let _ = child.kill();
            let _ = child.wait();
            continue;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
