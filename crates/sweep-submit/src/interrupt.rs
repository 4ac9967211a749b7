//! What SIGINT and SIGTERM do to a `sweep submit` that runs jobs itself (the local executor and
//! `--in-allocation`).
//!
//! Each job's script runs in a process group of its own, so a signal meant for `sweep` alone
//! (`kill`, `timeout`, systemd, a CI runner) and a terminal's Ctrl-C (sent to `sweep`'s group
//! only) reach the jobs the same way: `sweep` writes `control/cancel` into every running job's
//! folder, whose benchmark step then stops the load as SIGTERM would (what was not measured is
//! marked `cancelled`, with the reason) and stops the servers, so the job's script ends by
//! itself. A file, not a signal: inside an allocation the steps' tasks are `srun`'s, not ours,
//! and `srun` answers SIGTERM by killing its step before the benchmark can write a word. `sweep`
//! waits for each job's group to empty (SIGTERM, then SIGKILL, to what is left after
//! [`GRACE`]), records each job's end and returns. A second signal exits at once, with 128 +
//! the signal's number, leaving the steps to finish stopping on their own.

use std::process::Child;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use signal_hook::consts::{SIGINT, SIGTERM};

use crate::SubmitError;

/// How long a job's steps get to stop after SIGTERM before their group is killed: a serve step
/// gives its engine 30 s before SIGKILL.
pub const GRACE: Duration = Duration::from_secs(45);

/// The signals received so far; cheap to clone and poll.
#[derive(Debug, Clone)]
pub struct Interrupts {
    received: Arc<AtomicBool>,
    which: Arc<AtomicUsize>,
}

impl Interrupts {
    /// Takes over SIGINT and SIGTERM for the rest of the process: the first sets the flag, the
    /// second exits at once (130 or 143).
    pub fn install() -> Result<Self, SubmitError> {
        let received = Arc::new(AtomicBool::new(false));
        let which = Arc::new(AtomicUsize::new(0));
        for signal in [SIGINT, SIGTERM] {
            let registered =
                signal_hook::flag::register_conditional_shutdown(signal, 128 + signal, received.clone())
                    .and_then(|_| signal_hook::flag::register_usize(signal, which.clone(), signal as usize))
                    .and_then(|_| signal_hook::flag::register(signal, received.clone()));
            registered.map_err(|e| SubmitError::Signals(e.to_string()))?;
        }
        Ok(Interrupts { received, which })
    }

    /// The signal received, once one was.
    pub fn received(&self) -> Option<Interrupted> {
        if !self.received.load(Ordering::SeqCst) {
            return None;
        }
        Some(if self.which.load(Ordering::SeqCst) == SIGTERM as usize {
            Interrupted::Terminate
        } else {
            Interrupted::Interrupt
        })
    }
}

/// Which signal stopped the jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interrupted {
    /// SIGINT (Ctrl-C).
    Interrupt,
    /// SIGTERM.
    Terminate,
}

impl Interrupted {
    pub fn name(self) -> &'static str {
        match self {
            Interrupted::Interrupt => "SIGINT",
            Interrupted::Terminate => "SIGTERM",
        }
    }
}

/// A job script running in a process group of its own (spawned with `process_group(0)`), and
/// the guard that ends the group if `sweep` dies first.
#[derive(Debug)]
pub struct Group {
    pub child: Child,
    pub guard: Child,
    /// The job's folder, where a cancel is asked for.
    pub job_dir: sweep_folder::JobDir,
}

impl Drop for Group {
    fn drop(&mut self) {
        // Left while it runs (`sweep` is returning an error): told to stop, as on a signal.
        if self.alive() {
            self.terminate();
        }
        let _ = self.guard.kill();
        let _ = self.guard.wait();
    }
}

impl Group {
    fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }

    /// Whether any process of the group is left (the script, or a step it started).
    fn alive(&self) -> bool {
        !matches!(killpg(self.pid(), None), Err(Errno::ESRCH))
    }

    /// SIGTERM to every process of the group.
    pub fn terminate(&self) {
        let _ = killpg(self.pid(), Signal::SIGTERM);
    }

    /// Asks the job to stop because of `signal` (`control/cancel`); its benchmark step does the
    /// rest. A folder that cannot be written leaves SIGTERM to the group.
    pub fn cancel(&self, signal: Interrupted) {
        let reason = format!("`sweep submit` got {}; `--resume` runs what was not measured", signal.name());
        if self.job_dir.request_cancel(&reason).is_err() {
            self.terminate();
        }
    }

    /// Waits until the whole group is gone, killing what is left after `grace`; reaps the
    /// script. Returns its exit status.
    pub fn wait_gone(&mut self, grace: Duration) -> std::io::Result<std::process::ExitStatus> {
        let deadline = Instant::now() + grace;
        let mut status = None;
        loop {
            if status.is_none() {
                status = self.child.try_wait()?;
            }
            if status.is_some() && !self.alive() {
                break;
            }
            if Instant::now() > deadline {
                // SIGTERM first, as SLURM does at a job's end; what is left 10 s later is killed.
                self.terminate();
                let killed = Instant::now() + Duration::from_secs(10);
                while self.alive() && Instant::now() < killed {
                    let _ = self.child.try_wait();
                    std::thread::sleep(Duration::from_millis(100));
                }
                let _ = killpg(self.pid(), Signal::SIGKILL);
                if status.is_none() {
                    status = Some(self.child.wait()?);
                }
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        status.map_or_else(|| self.child.wait(), Ok)
    }
}
