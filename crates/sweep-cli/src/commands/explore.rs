//! `sweep explore FILE -o DIR`: the spec's jobs measured in waves that `sweep_explore::choose`
//! picks, until the budget is spent or nothing left can add to the frontier. The folder is a
//! normal sweep folder (every job rendered, only the chosen ones run); `explore.json` beside its
//! manifest records every wave and is rewritten atomically after each. Rerunning on the folder
//! resumes: what was measured is read back from the folder, never measured again.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use sweep_explore::log::{BudgetRecord, Log, WaveRecord};
use sweep_explore::{Candidate, Feature, Measured, Observed};
use sweep_folder::{JobState, SweepDir};
use sweep_submit::submit as library;

use crate::error::Error;
use crate::exploring::{read_log, write_log};
use crate::prepare::{self, Console};

#[derive(Debug, Clone, Copy)]
pub enum Budget {
    GpuHours(f64),
    /// A share of the grid's estimated cost.
    Share(f64),
}

#[derive(Debug)]
pub struct Settings {
    pub file: PathBuf,
    pub output: PathBuf,
    pub budget: Budget,
    /// Everything but the budget, which is worked out per wave.
    pub choice: sweep_explore::Settings,
    pub replay: Option<(PathBuf, sweep_explore::replay::Strategy)>,
    pub render: sweep_submit::render::Options,
    pub max_in_queue: Option<u32>,
    pub limits: sweep_submit::pipeline::Limits,
    pub options: sweep_aggregate::Options,
}

pub fn run(settings: &Settings) -> Result<(), Error> {
    let prepare_settings = prepare::Settings {
        file: settings.file.clone(),
        output: settings.output.clone(),
        limits: settings.limits,
        options: settings.render.clone(),
        no_check: false,
        print: false,
        job: None,
    };
    let prepared = prepare::prepare(&prepare_settings)?;
    let candidates = candidates(prepared.plan());
    if let Some((grid, strategy)) = &settings.replay {
        return replay(settings, &candidates, grid, *strategy);
    }
    let log_path = sweep_folder::paths::explore_log_path(&settings.output);
    let (sweep, mut log) = if settings.output.exists() {
        if !log_path.is_file() {
            return Err(Error::NotExplore { dir: settings.output.clone() });
        }
        let log: Log = read_log(&log_path)?;
        eprintln!("resuming {}: {} waves so far", settings.output.display(), log.waves.len());
        (SweepDir::open(&settings.output)?, log)
    } else {
        // The budget is checked before anything is written.
        check_budget(settings, &candidates)?;
        prepare::check_unless_told(&prepared, &prepare_settings)?;
        let sweep = library::render_only(&prepared, &settings.output)?;
        let (kind, value) = match settings.budget {
            Budget::GpuHours(h) => ("gpu_hours", h),
            Budget::Share(s) => ("share", s),
        };
        let log = Log {
            spec: settings.file.display().to_string(),
            budget: BudgetRecord { kind: kind.to_owned(), value },
            waves: Vec::new(),
        };
        write_log(&log_path, &log)?;
        (sweep, log)
    };
    // Held while choosing and running: a second `sweep explore` (or `sweep submit --resume`) on
    // the folder is refused (exit 8) rather than writing waves beside this one.
    let _lock = sweep.lock()?;
    // The folder's jobs must be the spec's candidates: a spec changed since the exploration
    // began would have it choose jobs the folder cannot run.
    let manifest = sweep.read_manifest()?;
    let rendered: std::collections::BTreeSet<&str> = manifest.jobs.iter().map(|j| j.name.as_str()).collect();
    let planned: std::collections::BTreeSet<&str> = candidates.iter().map(|c| c.job.as_str()).collect();
    if rendered != planned {
        let differ: Vec<&str> = rendered.symmetric_difference(&planned).copied().take(3).collect();
        return Err(Error::Usage(format!(
            "{}: the spec's jobs are not the folder's (e.g. {}): it changed since this exploration began; explore it into a new folder",
            settings.output.display(),
            differ.join(", ")
        )));
    }
    if !log.waves.is_empty() {
        log = read_log(&log_path)?;
        // A wave a killed `sweep explore` submitted may still be queued or running: its
        // results are waited for before anything is chosen.
        let manifest = sweep.read_manifest()?;
        let unheard = |j: &sweep_folder::ManifestJob| {
            sweep.job(&j.dir).read_benchmark_status().ok().flatten().is_none()
        };
        if manifest.jobs.iter().any(|j| j.slurm_job_id.is_some() && unheard(j)) {
            eprintln!("waiting for the jobs an earlier run submitted");
            sweep_submit::wait::wait(&sweep, &prepare::wait_options(), &mut Console)?;
        }
    }
    loop {
        let measured = measured(&sweep, &candidates, &settings.options)?;
        let (budget, wave) = match settings.budget {
            Budget::GpuHours(budget) => {
                let choice = sweep_explore::Settings { budget, ..settings.choice };
                (budget, sweep_explore::choose(&candidates, &measured, &choice))
            }
            Budget::Share(share) => {
                sweep_explore::choose_share(&candidates, &measured, &settings.choice, share)
            }
        };
        let record = WaveRecord {
            number: log.waves.len() + 1,
            chosen_at: sweep_folder::file::now(),
            spent: sweep_explore::spent(&measured),
            budget,
            hypervolume: sweep_explore::frontier_hypervolume(&measured),
            measured: measured.len(),
            failed: measured.iter().filter_map(|(j, m)| Some((j.clone(), m.failed.clone()?))).collect(),
            wave,
        };
        let chosen: Vec<String> = record.wave.chosen().map(|d| d.job.clone()).collect();
        eprintln!(
            "wave {}: {:.4} of {:.4} GPU-hours spent, hypervolume {:.1}; {}",
            record.number,
            record.spent,
            budget,
            record.hypervolume,
            match &record.wave.stop {
                Some(stop) => format!("stop: {stop}"),
                None => format!("measuring {}", chosen.join(", ")),
            }
        );
        let stop = record.wave.stop.clone();
        log.waves.push(record);
        write_log(&log_path, &log)?;
        if stop.is_some() {
            break;
        }
        let manifest = sweep.read_manifest()?;
        let indices: Vec<usize> =
            chosen.iter().filter_map(|name| manifest.jobs.iter().position(|j| &j.name == name)).collect();
        // Chains, not held waves: every chosen job is submitted at once (in N dependency
        // chains), and the jobs never chosen stay `rendered`, which `wait` leaves alone.
        let queue_limit = settings
            .max_in_queue
            .map(|n| sweep_folder::QueueLimit { max_in_queue: n, mode: sweep_folder::QueueMode::Chains });
        let outcome = library::run_jobs(&prepared, &sweep, &indices, queue_limit, &mut Console)?;
        prepare::run_to_end(outcome, &sweep)?;
    }
    let measured = measured(&sweep, &candidates, &settings.options)?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{:>4}  {:>10}  {:>10}  {:>14}  CHOSEN", "WAVE", "SPENT", "BUDGET", "HYPERVOLUME")
        .map_err(Error::Output)?;
    for w in &log.waves {
        let chosen: Vec<&str> = w.wave.chosen().map(|d| d.job.as_str()).collect();
        let what = match &w.wave.stop {
            Some(stop) => format!("(stop: {stop})"),
            None => chosen.join(", "),
        };
        writeln!(
            stdout,
            "{:>4}  {:>10.4}  {:>10.4}  {:>14.1}  {what}",
            w.number, w.spent, w.budget, w.hypervolume
        )
        .map_err(Error::Output)?;
    }
    eprintln!(
        "explored {} of {} jobs for {:.4} GPU-hours; `sweep report {}` draws the frontier",
        measured.len(),
        candidates.len(),
        sweep_explore::spent(&measured),
        settings.output.display()
    );
    Ok(())
}

/// Refuses a budget below the cheapest feasible job's predicted cost before anything is
/// measured (the budget as given, or the share of every job's predicted cost).
fn check_budget(settings: &Settings, candidates: &[Candidate]) -> Result<(), Error> {
    let all = sweep_explore::costs(candidates, &BTreeMap::new(), &settings.choice);
    let costs: Vec<(&str, f64)> = candidates
        .iter()
        .zip(all)
        .filter(|(c, _)| c.infeasible.is_none())
        .map(|(c, cost)| (c.job.as_str(), cost))
        .collect();
    let budget = match settings.budget {
        Budget::GpuHours(h) => h,
        Budget::Share(s) => s * costs.iter().map(|(_, c)| c).sum::<f64>(),
    };
    if let Some((job, cost)) = costs.iter().copied().min_by(|a, b| a.1.total_cmp(&b.1)) {
        if cost > budget {
            return Err(Error::BudgetTooSmall { budget, job: job.to_owned(), cost });
        }
    }
    Ok(())
}

/// Every planned job as a candidate: its GPUs held, its loads and what tells it apart.
pub fn candidates(plan: &sweep_plan::Plan) -> Vec<Candidate> {
    plan.jobs
        .iter()
        .map(|job| {
            let mut features = BTreeMap::new();
            features.insert("mode".to_owned(), Feature::Text(job.mode.as_str().to_owned()));
            for role in &job.roles {
                let name = role.role.as_str();
                for (key, value) in [
                    ("servers", role.servers),
                    ("tp", role.tp),
                    ("pp", role.pp),
                    ("batch", role.batch),
                    ("mtp", role.mtp),
                    ("eplb", role.eplb),
                ] {
                    features.insert(format!("{name}.{key}"), Feature::Number(f64::from(value)));
                }
                features.insert(format!("{name}.parallel"), Feature::Text(role.parallel.as_str().to_owned()));
            }
            for knob in &job.knobs {
                let value = match &knob.value {
                    serde_json::Value::Number(n) => {
                        n.as_f64().map_or_else(|| Feature::Text(n.to_string()), Feature::Number)
                    }
                    serde_json::Value::String(s) => Feature::Text(s.clone()),
                    other => Feature::Text(other.to_string()),
                };
                features.insert(knob.knob.name.clone(), value);
            }
            // The capacity estimate: a job none of whose points fits its KV cache is never run
            // (one with some points that fit is, whole: loads are not chosen within a job).
            let over: Vec<&sweep_plan::capacity::Shortfall> =
                plan.capacity.iter().flat_map(|a| a.over.iter()).filter(|s| s.job == job.name).collect();
            let infeasible = (!over.is_empty() && over.len() >= job.points.len()).then(|| {
                let s = over[0];
                format!(
                    "the capacity estimate: {} needs {} KV-cache tokens ({} sequences × {}), its servers hold {}",
                    s.role,
                    s.demand_tokens,
                    s.sequences,
                    s.tokens_per_sequence,
                    s.capacity_tokens
                )
            });
            let mut loads: Vec<f64> =
                plan.points[job.points.clone()].iter().map(|p| p.effective_concurrency as f64).collect();
            loads.sort_by(f64::total_cmp);
            loads.dedup();
            Candidate {
                job: job.name.clone(),
                gpus: f64::from(job.layout.gpus_allocated),
                loads,
                features,
                infeasible,
            }
        })
        .collect()
}

/// What the folder has measured, per job that ran: its valid points (the repetitions' means,
/// with their 95 % half-widths), its GPU-hours from the point markers, or why it failed.
fn measured(
    sweep: &SweepDir,
    candidates: &[Candidate],
    options: &sweep_aggregate::Options,
) -> Result<BTreeMap<String, Measured>, Error> {
    let manifest = sweep.read_manifest()?;
    let gpus: BTreeMap<&str, f64> = candidates.iter().map(|c| (c.job.as_str(), c.gpus)).collect();
    // Every job not `rendered` was chosen once and is never chosen again. Explore waits for a
    // wave before choosing the next, so by now each has ended: its runner's marker says how
    // (SLURM's jobs stay `submitted` in the manifest), and one without a marker ended unheard.
    let ran: Vec<&sweep_folder::ManifestJob> =
        manifest.jobs.iter().filter(|j| j.state != JobState::Rendered).collect();
    let mut out = BTreeMap::new();
    if ran.is_empty() {
        return Ok(out);
    }
    let agg = sweep_aggregate::aggregate(&[sweep.path().to_owned()], options).map_err(Error::Aggregate)?;
    let basis = options.gpu_basis;
    for job in ran {
        let rows: Vec<&sweep_aggregate::table::Row> =
            agg.rows.iter().filter(|r| r.config.job == job.name).collect();
        let (mut first, mut last) = (f64::INFINITY, f64::NEG_INFINITY);
        let mut points = Vec::new();
        for row in &rows {
            let marker: Option<sweep_folder::PointStatus> =
                sweep_folder::file::read_optional(&row.dir.join("status.json")).ok().flatten();
            let seconds = marker.as_ref().map_or(0.0, |m| {
                first = first.min(m.started_at);
                last = last.max(m.ended_at);
                (m.ended_at - m.started_at).max(0.0)
            });
            if !row.measured() || row.invalid.is_some() || row.repeat_of.is_some() {
                continue;
            }
            let Some((x, y)) = sweep_aggregate::pareto::coordinates(row, basis) else { continue };
            let half =
                |name: &str| row.repeats.as_ref().and_then(|r| r.spread.get(name)).map_or(0.0, |s| s.ci95);
            let load = row.effective_concurrency.or(row.concurrency).unwrap_or(1) as f64;
            points.push(Observed { load, x, y, dx: half("tps_per_user"), dy: half(basis.column()), seconds });
        }
        // A job an interrupt stopped keeps what it measured and is not run again here (its
        // folder holds the stop request; `sweep submit --resume` measures what it missed).
        points.sort_by(|a, b| a.load.total_cmp(&b.load));
        let span = if last > first { last - first } else { 0.0 };
        let failed = points.is_empty().then(|| {
            let marker = job_dir_status(sweep, job);
            match (marker, &job.reason) {
                (Some(reason), _) => reason,
                (None, Some(reason)) => reason.clone(),
                (None, None) if matches!(job.state, JobState::Submitted | JobState::Running) => {
                    "ended without a result marker (killed, or lost by SLURM)".to_owned()
                }
                (None, None) => format!("{}: no valid point", job.state.as_str()),
            }
        });
        // The job starts with its servers: the benchmark step's start, or a server's if earlier.
        let job_dir = sweep.job(&job.dir);
        let metadata: Option<sweep_folder::metadata::Metadata> =
            sweep_folder::file::read_optional(&job_dir.metadata_path()).ok().flatten();
        let start = metadata.map_or(first, |m| m.started_at.min(first));
        let held = gpus.get(job.name.as_str()).copied().unwrap_or(0.0);
        let gpu_hours = held * span / 3600.0;
        let gpu_hours_with_startup = if last > start { held * (last - start) / 3600.0 } else { gpu_hours };
        out.insert(job.name.clone(), Measured { points, gpu_hours, gpu_hours_with_startup, failed });
    }
    Ok(out)
}

/// The benchmark step's own account of a job that measured nothing: its state and first line.
fn job_dir_status(sweep: &SweepDir, job: &sweep_folder::ManifestJob) -> Option<String> {
    let status = sweep.job(&job.dir).read_benchmark_status().ok().flatten()?;
    Some(format!("{}: {}", status.state.as_str(), status.reason.lines().next().unwrap_or_default()))
}

/// `--replay GRID`: the choice replayed against a grid measured whole; JSON on stdout.
fn replay(
    settings: &Settings,
    candidates: &[Candidate],
    grid: &Path,
    strategy: sweep_explore::replay::Strategy,
) -> Result<(), Error> {
    let sweep = SweepDir::open(grid)?;
    let measured = measured(&sweep, candidates, &settings.options)?;
    let budget = match settings.budget {
        Budget::GpuHours(h) => h,
        Budget::Share(s) => s * sweep_explore::spent(&measured),
    };
    let run = sweep_explore::replay::replay(
        strategy,
        candidates,
        &measured,
        &sweep_explore::Settings { budget, ..settings.choice },
    );
    let text = serde_json::to_string_pretty(&run).map_err(|e| Error::Output(e.into()))?;
    writeln!(std::io::stdout().lock(), "{text}").map_err(Error::Output)?;
    Ok(())
}
