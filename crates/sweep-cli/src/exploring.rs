//! What `sweep explore` and `sweep report` share: reading and writing an exploration's
//! `explore.json` (its types are `sweep_explore::log`'s), and what the report draws from it.

use std::path::Path;

use sweep_explore::log::Log;

use crate::error::Error;

/// What an exploration folder's `explore.json` tells the report (`None` for any other folder):
/// the growth before each wave, how it ended, and the last wave's account of every job (or
/// load of a job) not measured, then the jobs that ran and measured nothing.
pub fn exploration(dir: &Path) -> Result<Option<sweep_aggregate::exploration::Exploration>, Error> {
    use sweep_aggregate::exploration::{Exploration, Skipped};
    let path = sweep_folder::paths::explore_log_path(dir);
    if !path.is_file() {
        return Ok(None);
    }
    let log = read_log(&path)?;
    let Some(last) = log.waves.last() else { return Ok(None) };
    let mut skipped: Vec<Skipped> = last
        .wave
        .decisions
        .iter()
        .filter(|d| d.choice != sweep_explore::Choice::Chosen)
        .map(|d| Skipped {
            job: d.job.clone(),
            loads: d.loads.clone(),
            decision: serde_json::to_value(d.choice)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            cost: Some(d.cost),
            why: d.why.clone(),
        })
        .collect();
    skipped.extend(last.failed.iter().map(|(job, why)| Skipped {
        job: job.clone(),
        loads: Vec::new(),
        decision: "failed".to_owned(),
        cost: None,
        why: why.clone(),
    }));
    Ok(Some(Exploration {
        budget: last.budget,
        growth: log.waves.iter().map(|w| (w.spent, w.hypervolume)).collect(),
        stop: last.wave.stop.clone(),
        skipped,
    }))
}

/// `explore.json` read like every file of the sweep folder: its format header checked (a newer
/// one is refused, exit 13) and a bad field located by line and key.
pub fn read_log(path: &Path) -> Result<Log, Error> {
    Ok(sweep_folder::file::read(path)?)
}

/// `explore.json` written like every file of the sweep folder: the format header, atomically.
pub fn write_log(path: &Path, log: &Log) -> Result<(), Error> {
    Ok(sweep_folder::file::write(path, log)?)
}
