//! An engine's processes end with the runner that started them.
//!
//! Real engines are trees of processes: `vllm serve` starts an EngineCore and a resource tracker,
//! a wrapper shell starts etcd and NATS. Killing the engine's first process leaves the rest
//! running, holding ports and memory. So `serve` starts the engine as the leader of a process
//! group of its own and signals the whole group. And since the runner itself may be killed with
//! SIGKILL (a test's cleanup, an OOM kill), which it cannot act on, a small guard process
//! (`sweep-runner guard`, hidden) watches it: the kernel sends the guard SIGTERM when the runner
//! dies (a parent-death signal), and the guard then ends the engine's group — SIGTERM, and
//! SIGKILL for whatever is left after a grace period. The guard is in the runner's group, not the
//! engine's, so the engine's own stop does not reach it; it exits once the group is empty.

use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::{getppid, Pid};

use crate::RunnerError;

/// How long a group gets between SIGTERM and SIGKILL when its runner died.
const GRACE_AFTER_RUNNER_DIED: Duration = Duration::from_secs(10);

/// The process group of an engine (its id is the engine's first process's id).
#[derive(Debug, Clone, Copy)]
pub struct EngineGroup(Pid);

impl EngineGroup {
    /// The group led by the process `leader`, which was started with `process_group(0)`.
    pub fn of(leader: u32) -> Self {
        Self(Pid::from_raw(i32::try_from(leader).unwrap_or(i32::MAX)))
    }

    pub fn id(self) -> i32 {
        self.0.as_raw()
    }

    /// Sends `signal` to every process of the group; false when none is left.
    pub fn signal(self, signal: Signal) -> bool {
        !matches!(killpg(self.0, signal), Err(Errno::ESRCH))
    }

    /// Whether any process of the group is still running (or not yet reaped).
    pub fn alive(self) -> bool {
        !matches!(killpg(self.0, None), Err(Errno::ESRCH))
    }

    /// SIGTERM to the group's leader (the engine's first process), then to the whole group once
    /// the leader is gone or `grace` has passed, then SIGKILL to whatever is left. The leader
    /// goes first because real engines shut their own children down in order (vLLM's API server
    /// stops its EngineCore); signalled all at once, the children die under a live parent,
    /// which then logs their deaths as failures. `on_wait` is called while waiting (e.g. to reap
    /// the leader, whose zombie otherwise counts as alive).
    pub fn stop(self, grace: Duration, mut on_wait: impl FnMut() -> bool) {
        let deadline = Instant::now() + grace;
        if nix::sys::signal::kill(self.0, Signal::SIGTERM).is_ok() {
            while !on_wait() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        if !self.signal(Signal::SIGTERM) {
            return;
        }
        // What the leader left behind gets a short grace of its own.
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.alive() && Instant::now() < deadline {
            on_wait();
            std::thread::sleep(Duration::from_millis(100));
        }
        self.signal(Signal::SIGKILL);
    }

    /// Starts the guard that ends this group when the calling process dies. Call it from the
    /// thread that lives as long as the runner: the kernel ties the parent-death signal to it.
    pub fn guard(self) -> std::io::Result<Child> {
        Command::new(std::env::current_exe()?)
            .args(["guard", "--group", &self.id().to_string(), "--parent", &std::process::id().to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
    }
}

/// The guard's life: wait until the runner (`parent`) dies or the group empties; when the runner
/// died first, end the group.
pub fn run_guard(group: i32, parent: i32) -> Result<ExitCode, RunnerError> {
    let group = EngineGroup(Pid::from_raw(group));
    let process = |what: &'static str| move |source: std::io::Error| RunnerError::Process { what, source };
    nix::sys::prctl::set_pdeathsig(Signal::SIGTERM)
        .map_err(|e| process("set the parent-death signal")(e.into()))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(process("start the runtime"))?;
    runtime.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).map_err(process("handle SIGTERM"))?;
        let mut int = signal(SignalKind::interrupt()).map_err(process("handle SIGINT"))?;
        loop {
            // The runner may have died before the parent-death signal was set.
            if getppid().as_raw() != parent {
                break;
            }
            if !group.alive() {
                return Ok(());
            }
            tokio::select! {
                _ = term.recv() => break,
                _ = int.recv() => break,
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
        Ok::<(), RunnerError>(())
    })?;
    // The group's processes are not the guard's children: nothing to reap; the leader is gone
    // when no signal reaches it (or it is a zombie of the dead runner's, reaped by init).
    group.stop(GRACE_AFTER_RUNNER_DIED, || nix::sys::signal::kill(group.0, None).is_err());
    Ok(ExitCode::SUCCESS)
}
