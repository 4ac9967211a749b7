//! The SLURM commands sweep runs: `sbatch`, `squeue`, `scancel`. Jobs are found and cancelled by
//! id only, never by name (a shared name would reach other users' jobs), and `squeue` is called
//! once for all of a sweep's jobs, never once per job, to spare the controller.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

#[derive(Debug, thiserror::Error)]
pub enum SlurmError {
    /// The command is not installed here.
    #[error("`{command}` is not on PATH; run sweep on a SLURM login node")]
    Missing { command: &'static str },
    /// The command ran and refused; the text is SLURM's own.
    #[error("{command} failed: {message}")]
    Refused { command: &'static str, message: String },
    #[error("cannot run `{command}`: {source}")]
    Io {
        command: &'static str,
        #[source]
        source: std::io::Error,
    },
}

fn run(command: &'static str, args: &[&str]) -> Result<String, SlurmError> {
    let output = Command::new(command).args(args).output().map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            SlurmError::Missing { command }
        } else {
            SlurmError::Io { command, source }
        }
    })?;
    if !output.status.success() {
        let message = String::from_utf8_lossy(&output.stderr).trim().to_owned();
        return Err(SlurmError::Refused { command, message });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Whether `sbatch` is installed.
pub fn available() -> bool {
    Command::new("sbatch").arg("--version").output().is_ok_and(|o| o.status.success())
}

/// Submits a script; returns the job id. A refusal carries SLURM's message.
/// Submits `script` with `options` (e.g. `--dependency=afterany:12`) before it; returns the
/// job id.
pub fn sbatch(script: &Path, options: &[String]) -> Result<String, SlurmError> {
    let script = script.to_string_lossy();
    let mut args: Vec<&str> = vec!["--parsable"];
    args.extend(options.iter().map(String::as_str));
    args.push(&script);
    let out = run("sbatch", &args)?;
    // `--parsable` prints `id` or `id;cluster`.
    let id = out.trim().split(';').next().unwrap_or_default().to_owned();
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit() || b == b'_') {
        return Err(SlurmError::Refused {
            command: "sbatch",
            message: format!("unexpected output: {out:?}"),
        });
    }
    Ok(id)
}

/// The final states `sacct` recorded for `ids`, when the cluster keeps accounting; empty when
/// it does not (no error: accounting is optional).
pub fn sacct(ids: &[String]) -> BTreeMap<String, QueueEntry> {
    let mut out = BTreeMap::new();
    if ids.is_empty() {
        return out;
    }
    let list = ids.join(",");
    let Ok(text) = run("sacct", &["-n", "-P", "-X", "-j", &list, "-o", "JobID,State,ExitCode"]) else {
        return out;
    };
    for line in text.lines() {
        let mut fields = line.split('|');
        if let (Some(id), Some(state), Some(code)) = (fields.next(), fields.next(), fields.next()) {
            // `CANCELLED by 0` → `CANCELLED`.
            let state = state.split_whitespace().next().unwrap_or_default().to_owned();
            out.insert(
                id.to_owned(),
                QueueEntry { state, reason: format!("from accounting, exit code {code}") },
            );
        }
    }
    out
}

/// A job as `squeue` sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueEntry {
    pub state: String,
    pub reason: String,
}

/// The state of each of `ids` that the controller still knows, in one call. Jobs it has
/// forgotten (ended more than `MinJobAge` ago) are absent.
pub fn squeue(ids: &[String]) -> Result<BTreeMap<String, QueueEntry>, SlurmError> {
    if ids.is_empty() {
        return Ok(BTreeMap::new());
    }
    let list = ids.join(",");
    let out = match run(
        "squeue",
        &["--noheader", "--states=all", "--format=%i|%T|%r", &format!("--jobs={list}")],
    ) {
        Ok(out) => out,
        // Asked for a single id it no longer knows, squeue fails instead of printing nothing.
        Err(SlurmError::Refused { message, .. }) if message.contains("Invalid job id") => String::new(),
        Err(error) => return Err(error),
    };
    Ok(out
        .lines()
        .filter_map(|line| {
            let mut fields = line.splitn(3, '|');
            let (id, state, reason) = (fields.next()?, fields.next()?, fields.next().unwrap_or(""));
            Some((
                id.trim().to_owned(),
                QueueEntry { state: state.trim().to_owned(), reason: reason.trim().to_owned() },
            ))
        })
        .collect())
}

/// What this cluster's `PrivateData` hides from users other than a job's owner (`jobs`,
/// `usage`, …), from `scontrol show config`; empty when it hides nothing or cannot be asked.
pub fn private_data() -> Vec<String> {
    let Ok(text) = run("scontrol", &["show", "config"]) else { return Vec::new() };
    text.lines()
        .filter_map(|line| line.split_once('='))
        .find(|(key, _)| key.trim() == "PrivateData")
        .map(|(_, value)| {
            value.split(',').map(|v| v.trim().to_owned()).filter(|v| !v.is_empty() && v != "none").collect()
        })
        .unwrap_or_default()
}

/// Cancels jobs by id.
pub fn scancel(ids: &[String]) -> Result<(), SlurmError> {
    if ids.is_empty() {
        return Ok(());
    }
    let args: Vec<&str> = ids.iter().map(String::as_str).collect();
    run("scancel", &args).map(|_| ())
}

/// Whether a state is final.
pub fn is_final(state: &str) -> bool {
    !matches!(
        state,
        "PENDING" | "RUNNING" | "CONFIGURING" | "COMPLETING" | "SUSPENDED" | "REQUEUED" | "RESIZING"
    )
}
