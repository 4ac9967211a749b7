//! `sweep submit --in-allocation`: the sweep's jobs run inside the allocation this process is
//! in (`salloc`, an `sbatch` script, a reservation's job), as `srun` steps, instead of as new
//! jobs in the queue.
//!
//! Each job's sbatch script runs with `bash` (its `#SBATCH` lines are comments) and
//! `SWEEP_NODELIST` set to the nodes it is given, which the script takes in place of
//! `SLURM_JOB_NODELIST`; its roles are `srun --overlap` steps on those nodes as usual. Jobs are
//! started in plan order as soon as their nodes and port slot are free (first fit), so jobs that
//! fit side by side on disjoint nodes run at once and the rest wait their turn.
//!
//! Ports: on a real cluster disjoint nodes never share a port, but nodes can share a network
//! namespace (containers with host networking on one host, the development cluster), so every
//! job's ports are shifted by its slot × the sweep's port span at render time: jobs running at
//! once never share a port anywhere. A sweep has as many slots as its smallest jobs fit in the
//! allocation side by side.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sweep_folder::{AllocationRun, JobState, Manifest, SweepDir};
use sweep_slurm::hostlist;

use crate::interrupt::{Group, Interrupts, GRACE};
use crate::local::Ran;
use crate::{Reporter, SubmitError};

/// The allocation this process runs in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocation {
    /// Its SLURM job id.
    pub job_id: String,
    /// Its nodes, in SLURM's order.
    pub nodes: Vec<String>,
}

impl Allocation {
    /// From SLURM's environment (`SLURM_JOB_ID`, `SLURM_JOB_NODELIST`), as `get` reads it.
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Result<Self, SubmitError> {
        let (Some(job_id), Some(list)) = (get("SLURM_JOB_ID"), get("SLURM_JOB_NODELIST")) else {
            return Err(SubmitError::NotInAllocation);
        };
        let nodes = hostlist::expand(&list).map_err(|e| SubmitError::Allocation(e.to_string()))?;
        if nodes.is_empty() {
            return Err(SubmitError::NotInAllocation);
        }
        Ok(Allocation { job_id, nodes })
    }
}

/// How many jobs may run at once as far as ports go, and how far apart their ports are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortSlots {
    pub count: u32,
    pub span: u16,
}

impl PortSlots {
    /// The shift of every port of the job at plan index `index`.
    pub fn offset(&self, index: usize) -> u16 {
        self.slot(index) as u16 * self.span
    }

    pub fn slot(&self, index: usize) -> u32 {
        (index % self.count as usize) as u32
    }
}

/// Multi-node servers also listen on their port + 1000 (vLLM's and SGLang's rendezvous).
const SIDE_PORT: u16 = 1000;

/// Checks that every job fits in the allocation (refused with the numbers otherwise, before
/// anything is written) and works out the port slots.
pub fn slots(plan: &sweep_plan::Plan, allocation: &Allocation) -> Result<PortSlots, SubmitError> {
    let has = allocation.nodes.len() as u32;
    if let Some(job) = plan.jobs.iter().find(|j| j.layout.nodes > has) {
        return Err(SubmitError::TooLarge {
            job: job.name.clone(),
            needs: job.layout.nodes,
            has,
            nodelist: hostlist::compress(&allocation.nodes),
        });
    }
    let smallest = plan.jobs.iter().map(|j| j.layout.nodes).min().unwrap_or(1).max(1);
    let count = (has / smallest).max(1);
    let ports: Vec<u16> = plan
        .jobs
        .iter()
        .flat_map(|j| {
            let servers = j.layout.servers().into_iter().map(|s| s.port);
            servers.chain(j.layout.frontend.iter().map(|f| f.port)).collect::<Vec<_>>()
        })
        .collect();
    let low = ports.iter().copied().min().unwrap_or(0);
    let high = u32::from(ports.iter().copied().max().unwrap_or(0)) + u32::from(SIDE_PORT);
    let span = high - u32::from(low) + 1;
    let top = high + (count - 1) * span;
    if top > u32::from(u16::MAX) {
        return Err(SubmitError::Allocation(format!(
            "{count} jobs side by side need ports up to {top} (each job's ports span {span}, from {low}); \
             lower `cluster.base_port` or `cluster.frontend_port`"
        )));
    }
    Ok(PortSlots { count, span: span as u16 })
}

/// One job to run: its manifest index, how many nodes it needs, its port slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Item {
    pub index: usize,
    pub nodes: u32,
    pub slot: u32,
}

struct Running {
    item: Item,
    group: Group,
    /// Indices into the allocation's nodes.
    nodes: Vec<usize>,
    log: PathBuf,
}

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// Runs `items` inside `allocation`, recording each job's nodes, times and state in the
/// manifest as it goes. SIGINT or SIGTERM stops the running jobs and starts no more.
pub fn run(
    sweep: &SweepDir,
    manifest: &mut Manifest,
    allocation: &Allocation,
    items: &[Item],
    reporter: &mut dyn Reporter,
) -> Result<Ran, SubmitError> {
    let interrupts = Interrupts::install()?;
    let total = items.len();
    let mut pending: Vec<Item> = items.to_vec();
    let mut free = vec![true; allocation.nodes.len()];
    let mut running: Vec<Running> = Vec::new();
    let mut ran = Ran::default();
    let mut started = 0usize;
    let mut interrupted = false;
    loop {
        // First fit in plan order: a job whose nodes or slot are taken lets later ones go first.
        let mut i = 0;
        while !interrupted && i < pending.len() {
            let item = pending[i];
            let slot_free = running.iter().all(|r| r.item.slot != item.slot);
            let idle: Vec<usize> = (0..free.len()).filter(|&n| free[n]).collect();
            if !slot_free || idle.len() < item.nodes as usize {
                i += 1;
                continue;
            }
            pending.remove(i);
            let nodes: Vec<usize> = idle[..item.nodes as usize].to_vec();
            for &n in &nodes {
                free[n] = false;
            }
            started += 1;
            running.push(start(sweep, manifest, allocation, item, nodes, (started, total), reporter)?);
        }
        if running.is_empty() {
            break;
        }
        if let Some(signal) = interrupts.received().filter(|_| ran.interrupted.is_none()) {
            ran.interrupted = Some(signal);
            interrupted = true;
            reporter.note(&format!(
                "{}: stopping {} running jobs (their steps get up to {} s)",
                signal.name(),
                running.len(),
                GRACE.as_secs()
            ));
            for job in &running {
                job.group.cancel(signal);
            }
        }
        std::thread::sleep(Duration::from_millis(200));
        let mut k = 0;
        while k < running.len() {
            let script = sweep.job(&manifest.jobs[running[k].item.index].dir).path().to_owned();
            let run_error = |source| SubmitError::Run { script, source };
            let status = if ran.interrupted.is_some() {
                Some(running[k].group.wait_gone(GRACE).map_err(run_error)?)
            } else {
                running[k].group.child.try_wait().map_err(run_error)?
            };
            let Some(status) = status else {
                k += 1;
                continue;
            };
            let done = running.swap_remove(k);
            for &n in &done.nodes {
                free[n] = true;
            }
            let entry = &mut manifest.jobs[done.item.index];
            let (state, reason) = crate::local::outcome(&sweep.job(&entry.dir), status, &done.log);
            entry.state = state;
            entry.reason = Some(reason.clone());
            if let Some(run) = entry.allocation.as_mut() {
                run.ended_at = Some(now());
            }
            let name = entry.name.clone();
            sweep.write_manifest(manifest)?;
            reporter.note(&format!("{name}: {} — {reason}", state.as_str()));
            if state == JobState::Completed {
                ran.completed += 1;
            } else {
                ran.failed += 1;
            }
            // The allocation cancelled (its steps' markers say so): start nothing more.
            if state == JobState::Cancelled {
                interrupted = true;
            }
        }
    }
    if let Some(signal) = ran.interrupted {
        let indices: Vec<usize> = pending.iter().map(|item| item.index).collect();
        crate::local::not_started(sweep, manifest, &indices, signal)?;
    }
    if interrupted && !pending.is_empty() {
        reporter.note(&format!(
            "interrupted: {} jobs were not started; `sweep submit --resume --in-allocation` runs them",
            pending.len()
        ));
    }
    Ok(ran)
}

fn start(
    sweep: &SweepDir,
    manifest: &mut Manifest,
    allocation: &Allocation,
    item: Item,
    nodes: Vec<usize>,
    (n, total): (usize, usize),
    reporter: &mut dyn Reporter,
) -> Result<Running, SubmitError> {
    let job = manifest.jobs[item.index].clone();
    let job_dir = sweep.job(&job.dir);
    let script = job_dir.script_path(&job.script);
    let names: Vec<String> = nodes.iter().map(|&i| allocation.nodes[i].clone()).collect();
    let log = job_dir.allocation_output_path();
    let group = crate::local::spawn(&job_dir, &script, Some(names.join(",")), &log)?;
    let entry = &mut manifest.jobs[item.index];
    entry.state = JobState::Running;
    entry.allocation = Some(AllocationRun {
        job_id: allocation.job_id.clone(),
        nodes: names.clone(),
        slot: item.slot,
        started_at: now(),
        ended_at: None,
    });
    sweep.write_manifest(manifest)?;
    reporter.note(&format!(
        "[{n}/{total}] {}: {} points on {} (port slot {})",
        job.name,
        job.points.len(),
        names.join(","),
        item.slot
    ));
    Ok(Running { item, group, nodes, log })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_allocation_comes_from_slurms_environment() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |key: &str| vars.iter().find(|(k, _)| *k == key).map(|(_, v)| (*v).to_owned())
        };
        let allocation =
            Allocation::from_env(env(&[("SLURM_JOB_ID", "42"), ("SLURM_JOB_NODELIST", "n[1-3],m7")]))
                .expect("inside one");
        assert_eq!(
            allocation,
            Allocation {
                job_id: "42".into(),
                nodes: vec!["n1".into(), "n2".into(), "n3".into(), "m7".into()]
            }
        );
        let outside = Allocation::from_env(env(&[("SLURM_JOB_NODELIST", "n1")]));
        assert!(matches!(outside, Err(SubmitError::NotInAllocation)), "{outside:?}");
    }

    #[test]
    fn slots_are_as_many_as_the_smallest_jobs_fit_and_never_share_a_port() {
        let slots = PortSlots { count: 2, span: 1100 };
        assert_eq!((slots.slot(0), slots.slot(1), slots.slot(2)), (0, 1, 0));
        assert_eq!((slots.offset(0), slots.offset(1), slots.offset(3)), (0, 1100, 1100));
    }
}
