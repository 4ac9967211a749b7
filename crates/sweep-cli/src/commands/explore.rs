//! `sweep explore FILE -o DIR`: the spec's jobs measured in waves that `sweep_explore::choose`
//! picks, with the loads of each worth measuring, until the budget is spent or nothing left can
//! add to the frontier. The folder is a normal sweep folder (every job rendered, only the chosen
//! ones run, their other loads marked skipped; more loads of a job measured later run in a job
//! folder of their own); `explore.json` beside its manifest records every wave and is
//! rewritten atomically after each. Rerunning on the folder resumes: what was measured is read
//! back from the folder, never measured again.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use sweep_explore::log::{BudgetRecord, Log, WaveRecord};
use sweep_explore::{Candidate, Decision, Feature, Measured, Observed};
use sweep_folder::{JobState, PointState, SweepDir};
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
    /// Run the waves as steps of the allocation this shell is in.
    pub in_allocation: bool,
    pub limits: sweep_submit::pipeline::Limits,
    pub options: sweep_aggregate::Options,
}

pub fn run(settings: &Settings) -> Result<(), Error> {
    let mut render = settings.render.clone();
    if settings.in_allocation {
        // Resolved before anything is written: outside an allocation, nothing is.
        render.allocation =
            Some(sweep_submit::allocation::Allocation::from_env(|key| std::env::var(key).ok())?);
    }
    let prepare_settings = prepare::Settings {
        file: settings.file.clone(),
        output: settings.output.clone(),
        limits: settings.limits,
        options: render,
        no_check: false,
        print: false,
        job: None,
    };
    let prepared = prepare::prepare(&prepare_settings)?;
    let candidates = candidates(prepared.plan());
    let loads: BTreeMap<String, f64> =
        prepared.plan().points.iter().map(|p| (p.id.to_string(), p.effective_concurrency as f64)).collect();
    if let Some((grid, strategy)) = &settings.replay {
        return replay(settings, &candidates, &loads, grid, *strategy);
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
        let measured = measured(&sweep, &candidates, &loads, &settings.options)?;
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
        let chosen: Vec<String> = record.wave.chosen().map(|d| described(d, &candidates)).collect();
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
        let number = record.number;
        let picks: Vec<Decision> = record.wave.chosen().cloned().collect();
        log.waves.push(record);
        write_log(&log_path, &log)?;
        if stop.is_some() {
            break;
        }
        let indices = job_folders(&prepared, &sweep, &picks, number)?;
        // Chains, not held waves: every chosen job is submitted at once (in N dependency
        // chains), and the jobs never chosen stay `rendered`, which `wait` leaves alone.
        let queue_limit = settings
            .max_in_queue
            .map(|n| sweep_folder::QueueLimit { max_in_queue: n, mode: sweep_folder::QueueMode::Chains });
        let outcome = library::run_jobs(&prepared, &sweep, &indices, queue_limit, &mut Console)?;
        prepare::run_to_end(outcome, &sweep)?;
    }
    let measured = measured(&sweep, &candidates, &loads, &settings.options)?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{:>4}  {:>10}  {:>10}  {:>14}  CHOSEN", "WAVE", "SPENT", "BUDGET", "HYPERVOLUME")
        .map_err(Error::Output)?;
    for w in &log.waves {
        let chosen: Vec<String> = w.wave.chosen().map(|d| described(d, &candidates)).collect();
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

/// A chosen job as the wave's line names it: with its loads when not all of the job's.
fn described(d: &Decision, candidates: &[Candidate]) -> String {
    let all = candidates.iter().find(|c| c.job == d.job).map_or(0, |c| c.loads.len());
    if d.measure.len() == all {
        d.job.clone()
    } else {
        let loads: Vec<String> = d.measure.iter().map(|l| l.to_string()).collect();
        format!("{} at {}", d.job, loads.join(","))
    }
}

/// The manifest indices of the job folders that measure this wave's picks. The first time a job
/// is chosen, its rendered folder, with the loads not chosen marked skipped and why (its runner
/// leaves them alone); when it ran before (or a killed wave marked its folder already), a new
/// folder of its own (`jobs/<name>.<n>`) with only the chosen loads.
fn job_folders(
    prepared: &sweep_submit::render::Prepared,
    sweep: &SweepDir,
    picks: &[Decision],
    wave: usize,
) -> Result<Vec<usize>, Error> {
    let mut manifest = sweep.read_manifest()?;
    let plan = prepared.plan();
    let mut indices = Vec::with_capacity(picks.len());
    let mut added = false;
    for pick in picks {
        let measured = |load: u64| pick.measure.contains(&(load as f64));
        let runs: Vec<usize> =
            (0..manifest.jobs.len()).filter(|&i| manifest.jobs[i].name == pick.job).collect();
        let fresh = match runs.as_slice() {
            [only] if manifest.jobs[*only].state == JobState::Rendered => {
                let dir = sweep.job(&manifest.jobs[*only].dir);
                dir.point_dirs().is_empty().then_some((*only, dir))
            }
            _ => None,
        };
        if let Some((index, dir)) = fresh {
            for point in dir.read_job()?.points.iter().filter(|p| !measured(p.effective_concurrency)) {
                let load = point.effective_concurrency as f64;
                let bound = pick.loads.iter().position(|&l| l == load).and_then(|k| pick.bound.get(k));
                let why = match bound {
                    Some([x, y]) => format!(
                        "sweep explore, wave {wave}: not measured: at load {load} its optimistic bound ({x:.1} tokens/s/user, {y:.1} tokens/s/GPU) lies under the frontier; a later wave may measure it"
                    ),
                    // Not a load of the candidate: none of its points fits (`sweep plan` shows
                    // the arithmetic).
                    None => format!(
                        "sweep explore, wave {wave}: not measured: the capacity estimate says load {load} cannot fit the KV cache"
                    ),
                };
                dir.skip_point(point, &pick.job, &why)?;
            }
            indices.push(index);
        } else if let Some(index) = plan.jobs.iter().position(|j| j.name == pick.job) {
            let points: Vec<sweep_plan::Point> = plan.points[plan.jobs[index].points.clone()]
                .iter()
                .filter(|p| measured(p.effective_concurrency))
                .copied()
                .collect();
            indices.push(sweep_submit::render::add_job_folder(
                prepared,
                sweep,
                &mut manifest,
                index,
                points,
            )?);
            added = true;
        }
    }
    if added {
        sweep.write_manifest(&manifest)?;
    }
    Ok(indices)
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
            // The capacity estimate: a load none of whose points fits its KV cache is never
            // measured, and a job with no such load is never run.
            let over: Vec<&sweep_plan::capacity::Shortfall> =
                plan.capacity.iter().flat_map(|a| a.over.iter()).filter(|s| s.job == job.name).collect();
            let loads_of = |fits: bool| {
                let mut loads: Vec<f64> = plan.points[job.points.clone()]
                    .iter()
                    .filter(|p| !fits || !over.iter().any(|s| s.point == p.id))
                    .map(|p| p.effective_concurrency as f64)
                    .collect();
                loads.sort_by(f64::total_cmp);
                loads.dedup();
                loads
            };
            let mut loads = loads_of(true);
            let infeasible = loads.is_empty().then(|| {
                // Every point is over, so there is a first. Its loads are listed all the same.
                loads = loads_of(false);
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
/// with their 95 % half-widths), the loads it tried, its GPU-hours from the point markers of
/// each of its job folders, or why it failed. `loads` is each planned point's load by id.
fn measured(
    sweep: &SweepDir,
    candidates: &[Candidate],
    loads: &BTreeMap<String, f64>,
    options: &sweep_aggregate::Options,
) -> Result<BTreeMap<String, Measured>, Error> {
    let manifest = sweep.read_manifest()?;
    let gpus: BTreeMap<&str, f64> = candidates.iter().map(|c| (c.job.as_str(), c.gpus)).collect();
    // Every job folder not `rendered` ran. Explore waits for a wave before choosing the next,
    // so by now each has ended: its runner's markers say how (SLURM's jobs stay `submitted` in
    // the manifest), and one without a marker ended unheard.
    let mut runs: BTreeMap<&str, Vec<&sweep_folder::ManifestJob>> = BTreeMap::new();
    for job in manifest.jobs.iter().filter(|j| j.state != JobState::Rendered) {
        runs.entry(job.name.as_str()).or_default().push(job);
    }
    let mut out = BTreeMap::new();
    if runs.is_empty() {
        return Ok(out);
    }
    let agg = sweep_aggregate::aggregate(&[sweep.path().to_owned()], options).map_err(Error::Aggregate)?;
    let basis = options.gpu_basis;
    for (name, folders) in runs {
        // The table's row of each point speaks for its latest finished attempt.
        let mut points = Vec::new();
        // Why measured points were not valid (an inaccurate deployment, failed requests).
        let mut invalid = None;
        for row in agg.rows.iter().filter(|r| r.config.job == name) {
            if row.measured() && invalid.is_none() {
                invalid = row.invalid.clone();
            }
            if !row.measured() || row.invalid.is_some() || row.repeat_of.is_some() {
                continue;
            }
            let Some((x, y)) = sweep_aggregate::pareto::coordinates(row, basis) else { continue };
            let marker: Option<sweep_folder::PointStatus> =
                sweep_folder::file::read_optional(&row.dir.join("status.json")).ok().flatten();
            let seconds = marker.map_or(0.0, |m| (m.ended_at - m.started_at).max(0.0));
            let half =
                |name: &str| row.repeats.as_ref().and_then(|r| r.spread.get(name)).map_or(0.0, |s| s.ci95);
            let load = row.effective_concurrency.or(row.concurrency).unwrap_or(1) as f64;
            points.push(Observed { load, x, y, dx: half("tps_per_user"), dy: half(basis.column()), seconds });
        }
        points.sort_by(|a, b| a.load.total_cmp(&b.load));
        // The spend and the loads tried, from each folder's point markers: a folder costs its
        // GPUs × the span of the points it ran (those marked skipped before it ran cost
        // nothing); with its start-up, from its servers' start.
        let held = gpus.get(name).copied().unwrap_or(0.0);
        let (mut gpu_hours, mut gpu_hours_with_startup) = (0.0, 0.0);
        let mut tried: Vec<f64> = Vec::new();
        let mut only_cancelled = true;
        for job in &folders {
            let dir = sweep.job(&job.dir);
            let (mut first, mut last) = (f64::INFINITY, f64::NEG_INFINITY);
            for status in dir.point_dirs().iter().filter_map(|p| p.read_status().ok().flatten()) {
                if matches!(status.state, PointState::Skipped | PointState::Running) {
                    continue;
                }
                first = first.min(status.started_at);
                last = last.max(status.ended_at);
                // A cancelled point measured nothing: a later wave may choose its load again.
                if status.state != PointState::Cancelled {
                    tried.extend(loads.get(&status.point));
                }
            }
            if last > first {
                let metadata: Option<sweep_folder::metadata::Metadata> =
                    sweep_folder::file::read_optional(&dir.metadata_path()).ok().flatten();
                let start = metadata.map_or(first, |m| m.started_at.min(first));
                gpu_hours += held * (last - first) / 3600.0;
                gpu_hours_with_startup += held * (last - start) / 3600.0;
            }
            let state = dir.read_benchmark_status().ok().flatten().map(|b| b.state);
            only_cancelled &= state == Some(sweep_folder::BenchmarkState::Cancelled);
        }
        tried.sort_by(f64::total_cmp);
        tried.dedup();
        // A job with no valid point is not chosen again, unless all it did was get cancelled
        // (a killed `sweep explore`) before trying a load.
        let closed = points.is_empty() && !(tried.is_empty() && only_cancelled);
        let failed = closed.then(|| {
            let job = folders[folders.len() - 1];
            if let Some(why) = &invalid {
                return format!("no valid point: {why}");
            }
            match (job_dir_status(sweep, job), &job.reason) {
                (Some(reason), _) => reason,
                (None, Some(reason)) => reason.clone(),
                (None, None) if matches!(job.state, JobState::Submitted | JobState::Running) => {
                    "ended without a result marker (killed, or lost by SLURM)".to_owned()
                }
                (None, None) => format!("{}: no valid point", job.state.as_str()),
            }
        });
        out.insert(name.to_owned(), Measured { points, tried, gpu_hours, gpu_hours_with_startup, failed });
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
    loads: &BTreeMap<String, f64>,
    grid: &Path,
    strategy: sweep_explore::replay::Strategy,
) -> Result<(), Error> {
    let sweep = SweepDir::open(grid)?;
    let measured = measured(&sweep, candidates, loads, &settings.options)?;
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
