//! Exploration replayed against a grid that was measured whole: each job "measured" is read
//! from the grid instead of run, so strategies and seeds can be compared at equal budgets on
//! the same measurements (`sweep explore --replay`, `scripts/bench/explore.sh`).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::{choose, frontier_hypervolume, measured_points, spent, splitmix, Candidate, Measured, Settings};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// `sweep explore`'s choice (this crate's [`choose`]).
    Explore,
    /// Deployments in a seeded random order, each measured whole while the budget lasts.
    Random,
    /// Every deployment at its lowest load, then the best of them (by non-dominated rank of
    /// that one point) at all loads while the budget lasts.
    Halving,
}

/// How a replayed exploration went.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Run {
    pub strategy: Strategy,
    pub seed: u64,
    pub budget: f64,
    pub spent: f64,
    /// The same with each measured job's engine start-up.
    pub spent_with_startup: f64,
    /// The grid's GPU-hours, without and with start-up.
    pub grid_spent: f64,
    pub grid_spent_with_startup: f64,
    pub hypervolume: f64,
    /// The grid's.
    pub grid_hypervolume: f64,
    /// `hypervolume / grid_hypervolume`.
    pub ratio: f64,
    /// Jobs measured whole (and, for halving, at one load only).
    pub jobs: usize,
    /// The jobs measured, in the order they were chosen (a job measured again at more of its
    /// loads appears again).
    pub order: Vec<String>,
    pub probed: usize,
    /// The grid's frontier points that were never measured: (job, load).
    pub missed: Vec<(String, f64)>,
    /// (GPU-hours spent, hypervolume) after each wave or job.
    pub growth: Vec<(f64, f64)>,
}

/// Replays `strategy` over `candidates` measured whole in `grid`.
pub fn replay(
    strategy: Strategy,
    candidates: &[Candidate],
    grid: &BTreeMap<String, Measured>,
    settings: &Settings,
) -> Run {
    let mut measured: BTreeMap<String, Measured> = BTreeMap::new();
    let mut growth = Vec::new();
    let mut probed = 0;
    let mut measured_order: Vec<String> = Vec::new();
    match strategy {
        Strategy::Explore => loop {
            let wave = choose(candidates, &measured, settings);
            let chosen: Vec<(String, Vec<f64>)> =
                wave.chosen().map(|d| (d.job.clone(), d.measure.clone())).collect();
            if chosen.is_empty() {
                break;
            }
            for (job, loads) in chosen {
                reveal(&mut measured, &job, &loads, grid.get(&job));
                measured_order.push(job);
            }
            growth.push((spent(&measured), frontier_hypervolume(&measured)));
        },
        Strategy::Random => {
            let mut order: Vec<&Candidate> = candidates.iter().filter(|c| c.infeasible.is_none()).collect();
            order.sort_by_key(|c| splitmix(settings.seed ^ hash(&c.job)));
            for c in order {
                let Some(m) = grid.get(&c.job) else { continue };
                if spent(&measured) + m.gpu_hours > settings.budget {
                    continue;
                }
                measured_order.push(c.job.clone());
                measured.insert(c.job.clone(), m.clone());
                growth.push((spent(&measured), frontier_hypervolume(&measured)));
            }
        }
        Strategy::Halving => {
            // Stage one: each deployment's lowest load, in a seeded order while it fits.
            let mut order: Vec<&Candidate> = candidates.iter().filter(|c| c.infeasible.is_none()).collect();
            order.sort_by_key(|c| splitmix(settings.seed ^ hash(&c.job)));
            let mut probes: Vec<(&Candidate, crate::Observed, f64)> = Vec::new();
            let mut used = 0.0;
            for c in order {
                let Some(m) = grid.get(&c.job) else { continue };
                let Some(first) = m.points.first() else { continue };
                let cost = c.gpus * first.seconds / 3600.0;
                if used + cost > settings.budget {
                    continue;
                }
                used += cost;
                probes.push((c, *first, cost));
            }
            probed = probes.len();
            let mut frontier: Vec<(f64, f64)> = probes.iter().map(|(_, p, _)| (p.x, p.y)).collect();
            growth.push((used, sweep_aggregate::pareto::hypervolume(&frontier, crate::REFERENCE)));
            // Stage two: by non-dominated rank of the probe, then tokens/s/GPU, whole curves.
            let ranks = rank(&probes.iter().map(|(_, p, _)| (p.x, p.y)).collect::<Vec<_>>());
            let mut by_rank: Vec<usize> = (0..probes.len()).collect();
            by_rank.sort_by(|&a, &b| ranks[a].cmp(&ranks[b]).then(probes[b].1.y.total_cmp(&probes[a].1.y)));
            for i in by_rank {
                let (c, _, probe_cost) = probes[i];
                let m = &grid[&c.job];
                let rest = (m.gpu_hours - probe_cost).max(0.0);
                if used + rest > settings.budget {
                    continue;
                }
                used += rest;
                measured_order.push(c.job.clone());
                measured.insert(c.job.clone(), m.clone());
                frontier.extend(m.points.iter().map(|p| (p.x, p.y)));
                growth.push((used, sweep_aggregate::pareto::hypervolume(&frontier, crate::REFERENCE)));
            }
            // The probes' points count towards the frontier found.
            // A probe is a deployment of its own, so it pays its job's start-up too (a job
            // measured whole afterwards pays it twice).
            for (c, p, cost) in probes {
                let startup = (grid[&c.job].gpu_hours_with_startup - grid[&c.job].gpu_hours).max(0.0);
                match measured.get_mut(&c.job) {
                    Some(whole) => whole.gpu_hours_with_startup += startup,
                    None => {
                        let probe = Measured {
                            points: vec![p],
                            tried: vec![p.load],
                            gpu_hours: cost,
                            gpu_hours_with_startup: cost + startup,
                            failed: None,
                        };
                        measured.insert(c.job.clone(), probe);
                    }
                }
            }
        }
    }
    let grid_hypervolume = frontier_hypervolume(grid);
    let hypervolume = frontier_hypervolume(&measured);
    let found = measured_points(&measured);
    let all: Vec<(String, f64, (f64, f64))> = grid
        .iter()
        .flat_map(|(job, m)| m.points.iter().map(move |p| (job.clone(), p.load, (p.x, p.y))))
        .collect();
    let coords: Vec<(f64, f64)> = all.iter().map(|a| a.2).collect();
    let missed = sweep_aggregate::pareto::frontier(&coords)
        .into_iter()
        .filter(|&i| !found.contains(&all[i].2))
        .map(|i| (all[i].0.clone(), all[i].1))
        .collect();
    let jobs = measured.values().filter(|m| m.points.len() > 1 || strategy != Strategy::Halving).count();
    Run {
        strategy,
        seed: settings.seed,
        budget: settings.budget,
        spent: spent(&measured),
        spent_with_startup: measured.values().map(|m| m.gpu_hours_with_startup).fold(0.0, |a, b| a + b),
        grid_spent: spent(grid),
        grid_spent_with_startup: grid.values().map(|m| m.gpu_hours_with_startup).fold(0.0, |a, b| a + b),
        hypervolume,
        grid_hypervolume,
        ratio: if grid_hypervolume > 0.0 { hypervolume / grid_hypervolume } else { 0.0 },
        jobs,
        order: measured_order,
        probed,
        missed,
        growth,
    }
}

/// `loads` of `job` measured as the grid measured them: their points; their share of the job's
/// GPU-hours in the grid (by the points' durations); and one engine start-up for this run of it.
fn reveal(measured: &mut BTreeMap<String, Measured>, job: &str, loads: &[f64], grid: Option<&Measured>) {
    let entry = measured.entry(job.to_owned()).or_insert_with(|| Measured {
        points: Vec::new(),
        tried: Vec::new(),
        gpu_hours: 0.0,
        gpu_hours_with_startup: 0.0,
        failed: None,
    });
    entry.tried.extend_from_slice(loads);
    let Some(grid) = grid else {
        entry.failed = Some("not in the grid".to_owned());
        return;
    };
    let these: Vec<crate::Observed> =
        grid.points.iter().filter(|p| loads.contains(&p.load)).copied().collect();
    let all: f64 = grid.points.iter().map(|p| p.seconds).sum();
    let share = if all > 0.0 { these.iter().map(|p| p.seconds).sum::<f64>() / all } else { 1.0 };
    let hours = grid.gpu_hours * share;
    entry.gpu_hours += hours;
    entry.gpu_hours_with_startup += hours + (grid.gpu_hours_with_startup - grid.gpu_hours).max(0.0);
    entry.points.extend(these);
    entry.points.sort_by(|a, b| a.load.total_cmp(&b.load));
    if entry.points.is_empty() {
        entry.failed = Some(grid.failed.clone().unwrap_or_else(|| "no valid point at its loads".to_owned()));
    }
}

/// FNV-1a of a job name: a stable per-job salt for seeded orders.
fn hash(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// Non-dominated sorting: 0 for the frontier, 1 for the frontier of the rest, and so on.
fn rank(points: &[(f64, f64)]) -> Vec<usize> {
    let mut ranks = vec![usize::MAX; points.len()];
    let mut left: Vec<usize> = (0..points.len()).collect();
    let mut r = 0;
    while !left.is_empty() {
        let sub: Vec<(f64, f64)> = left.iter().map(|&i| points[i]).collect();
        let front = sweep_aggregate::pareto::frontier(&sub);
        if front.is_empty() {
            break;
        }
        for &k in &front {
            ranks[left[k]] = r;
        }
        let taken: Vec<usize> = front.iter().map(|&k| left[k]).collect();
        left.retain(|i| !taken.contains(i));
        r += 1;
    }
    ranks
}
