//! Which deployments of a sweep to measure next (`sweep explore`, `docs/explore.md`). Pure: the
//! caller reads the measured results and runs the chosen jobs; this only decides.
//!
//! Each candidate is one planned job (a deployment and its loads). After every wave of
//! measurements, each candidate with loads not yet tried gets a predicted curve (tokens/s/user
//! against tokens/s/GPU at each of those loads) from its nearest measured neighbours (itself
//! first, when it has measured some loads), an optimistic bound above it (the neighbours'
//! disagreement, the distance to them and their own measurement noise), and a cost in
//! GPU-hours. Only the loads whose bound could add to the frontier are to be measured; a
//! candidate with none is skipped with that reason. The rest are ranked by the hypervolume
//! their bound would add per GPU-hour of those loads, and the wave takes the best that fit the
//! budget, each one's predicted points joining the frontier before the next is chosen so a wave
//! does not buy one gain twice.

pub mod log;
mod predict;
pub mod replay;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sweep_aggregate::pareto::hypervolume;

pub use predict::Prediction;

/// The fixed reference point of every hypervolume here: (0 tokens/s/user, 0 tokens/s/GPU).
pub const REFERENCE: (f64, f64) = (0.0, 0.0);

/// A planned job that exploration may measure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    /// The job's name (its folder under `jobs/`).
    pub job: String,
    /// GPUs the job holds: its cost per hour.
    pub gpus: f64,
    /// The load of each of its points (effective concurrency), ascending.
    pub loads: Vec<f64>,
    /// What tells it from its neighbours: `mode`, each role's `tp`, `batch`, `mtp`, `servers`,
    /// and every knob.
    pub features: BTreeMap<String, Feature>,
    /// Why it cannot run (the capacity estimate): never chosen.
    pub infeasible: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Feature {
    Number(f64),
    Text(String),
}

/// One measured point of a job.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Observed {
    pub load: f64,
    /// Tokens/s/user.
    pub x: f64,
    /// Tokens/s/GPU.
    pub y: f64,
    /// The 95 % half-widths of `x` and `y` over the point's repetitions; 0 when measured once.
    #[serde(default)]
    pub dx: f64,
    #[serde(default)]
    pub dy: f64,
    /// How long the point took, seconds.
    pub seconds: f64,
}

/// What measuring a job gave.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measured {
    /// Its valid points.
    pub points: Vec<Observed>,
    /// The loads it tried (measured, failed, or stopped by a time limit), in any of its runs:
    /// never chosen again. A load not tried (skipped as unable to add to the frontier, or never
    /// reached because the run was cancelled) may be chosen by a later wave.
    #[serde(default)]
    pub tried: Vec<f64>,
    /// GPUs held × the span from its first point's start to its last point's end, summed over
    /// its runs.
    pub gpu_hours: f64,
    /// GPUs held × the span from the job's start (its servers starting) to its last point's
    /// end: the cost with the engine's start-up.
    #[serde(default)]
    pub gpu_hours_with_startup: f64,
    /// Why it did not measure (a failed job, or no valid point): none of its loads is chosen
    /// again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<String>,
}

/// How to choose.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// GPU-hours to spend in all.
    pub budget: f64,
    /// Jobs per wave at most.
    pub wave: usize,
    /// How optimistic a bound is: the prediction plus this many spreads.
    pub kappa: f64,
    /// Before anything is measured, a point's assumed duration in seconds.
    pub prior_point_seconds: f64,
    /// Orders the first wave's design and breaks ties.
    pub seed: u64,
    /// What the first wave measures.
    pub first_wave: FirstWave,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            budget: f64::INFINITY,
            wave: 4,
            kappa: 1.0,
            prior_point_seconds: 60.0,
            seed: 0,
            first_wave: FirstWave::Spread,
        }
    }
}

/// What the first wave (nothing measured yet) measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FirstWave {
    /// `wave` jobs spread over the space, each at every load: few engine start-ups.
    Spread,
    /// Every job at its lowest load (as many as fit, spread, when a budget share limits the
    /// wave): each later prediction starts from the job's own point, at one engine start-up
    /// per job more.
    Census,
}

/// What a wave decided for one candidate with loads not yet tried.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub job: String,
    /// Its loads not yet tried: what `predicted` and `bound` are at.
    #[serde(default)]
    pub loads: Vec<f64>,
    /// The loads to measure (when chosen): those whose bound could add to the frontier, or all
    /// of them before anything is measured. Empty when none could.
    #[serde(default)]
    pub measure: Vec<f64>,
    /// Predicted (tokens/s/user, tokens/s/GPU) at each load; empty in the first wave.
    pub predicted: Vec<[f64; 2]>,
    /// The optimistic bound at each load.
    pub bound: Vec<[f64; 2]>,
    /// Predicted GPU-hours of the loads to measure (of all its loads when none could add).
    pub cost: f64,
    /// Hypervolume the bound would add to the frontier as it stood.
    pub gain: f64,
    /// `gain / cost`: the rank among candidates whose predicted points add nothing.
    pub score: f64,
    /// Hypervolume the predicted points would add, per predicted GPU-hour: the rank first.
    #[serde(default)]
    pub likely: f64,
    pub choice: Choice,
    /// Why, in words.
    pub why: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Choice {
    /// Measured in this wave.
    Chosen,
    /// Could add to the frontier but ranked below this wave's choices: a later wave may take it.
    Deferred,
    /// Its bound lies under the frontier: measuring it cannot add to it.
    Dominated,
    /// Its predicted cost exceeds what is left of the budget.
    OverBudget,
    /// The capacity estimate says it cannot run.
    Infeasible,
}

/// One wave's choice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Wave {
    /// Every unmeasured candidate's decision, the chosen first in the order to run them.
    pub decisions: Vec<Decision>,
    /// Why exploration ends here (nothing chosen), or `None`.
    pub stop: Option<String>,
}

impl Wave {
    pub fn chosen(&self) -> impl Iterator<Item = &Decision> {
        self.decisions.iter().filter(|d| d.choice == Choice::Chosen)
    }
}

/// The frontier's points, every valid measured point of every job.
pub fn measured_points(measured: &BTreeMap<String, Measured>) -> Vec<(f64, f64)> {
    measured.values().flat_map(|m| m.points.iter().map(|p| (p.x, p.y))).collect()
}

/// GPU-hours spent on the measured jobs.
pub fn spent(measured: &BTreeMap<String, Measured>) -> f64 {
    // Starts from +0.0: an empty f64 sum is −0.0, which prints as "-0.0000".
    measured.values().map(|m| m.gpu_hours).fold(0.0, |a, b| a + b)
}

/// The hypervolume of the measured points' frontier against [`REFERENCE`].
pub fn frontier_hypervolume(measured: &BTreeMap<String, Measured>) -> f64 {
    hypervolume(&measured_points(measured), REFERENCE)
}

/// The loads of `candidate` not tried yet: all of them before it ran; none once it failed.
pub fn open_loads(candidate: &Candidate, measured: Option<&Measured>) -> Vec<f64> {
    match measured {
        None => candidate.loads.clone(),
        Some(m) if m.failed.is_some() => Vec::new(),
        Some(m) => candidate.loads.iter().copied().filter(|l| !m.tried.contains(l)).collect(),
    }
}

/// Each candidate's cost in GPU-hours: what it spent plus the predicted cost of its loads not
/// tried yet — the whole grid's, for `--budget-share`, in candidate order.
pub fn costs(
    candidates: &[Candidate],
    measured: &BTreeMap<String, Measured>,
    settings: &Settings,
) -> Vec<f64> {
    let model = predict::Model::new(candidates, measured);
    (0..candidates.len())
        .map(|i| {
            let m = measured.get(&candidates[i].job);
            let open = open_loads(&candidates[i], m);
            let predicted = if open.is_empty() { 0.0 } else { model.predict(i, &open, settings).cost() };
            m.map_or(0.0, |m| m.gpu_hours) + predicted
        })
        .collect()
}

/// A candidate that may be chosen: its decision's index, its own, its prediction, the indices
/// (into the prediction's loads) of the loads to measure and their predicted GPU-hours.
struct Live {
    decision: usize,
    candidate: usize,
    prediction: Prediction,
    measure: Vec<usize>,
    cost: f64,
}

/// Chooses the next wave: up to `settings.wave` feasible candidates with loads not yet tried
/// whose bound can add to the frontier, within what is left of the budget, and which of their
/// loads to measure.
pub fn choose(candidates: &[Candidate], measured: &BTreeMap<String, Measured>, settings: &Settings) -> Wave {
    let model = predict::Model::new(candidates, measured);
    let predictions = predict_open(&model, candidates, measured, settings);
    // A budget in GPU-hours cannot be held against the prior's guessed costs: the first wave is
    // `settings.wave` jobs.
    decide(candidates, measured, settings, &model, predictions, settings.budget, f64::INFINITY)
}

/// [`choose`] with the budget a `share` of the grid's cost as now estimated: the GPU-hours
/// spent plus the predicted cost of every feasible candidate's loads not yet tried
/// (`--budget-share`). Returns that budget in GPU-hours with the wave; each candidate is
/// predicted once for both.
pub fn choose_share(
    candidates: &[Candidate],
    measured: &BTreeMap<String, Measured>,
    settings: &Settings,
    share: f64,
) -> (f64, Wave) {
    let model = predict::Model::new(candidates, measured);
    let predictions = predict_open(&model, candidates, measured, settings);
    let unmeasured: f64 = predictions
        .iter()
        .filter(|(i, _)| candidates[*i].infeasible.is_none())
        .map(|(_, p)| p.cost())
        .fold(0.0, |a, b| a + b);
    let budget = share * (spent(measured) + unmeasured);
    // Here the budget and the first wave's costs are both the prior's: the first wave takes at
    // most half of it, leaving the rest to waves that know something.
    let first_wave = budget / 2.0;
    (budget, decide(candidates, measured, settings, &model, predictions, budget, first_wave))
}

/// Every candidate with loads not yet tried: its index with its prediction at those loads.
fn predict_open(
    model: &predict::Model,
    candidates: &[Candidate],
    measured: &BTreeMap<String, Measured>,
    settings: &Settings,
) -> Vec<(usize, Prediction)> {
    (0..candidates.len())
        .filter_map(|i| {
            let open = open_loads(&candidates[i], measured.get(&candidates[i].job));
            (!open.is_empty()).then(|| (i, model.predict(i, &open, settings)))
        })
        .collect()
}

/// Whether `p` is weakly dominated by a point of `front`: then it adds no hypervolume.
fn dominated(front: &[(f64, f64)], p: (f64, f64)) -> bool {
    front.iter().any(|q| q.0 >= p.0 && q.1 >= p.1)
}

/// The wave, given each open candidate's prediction, the budget in GPU-hours and the most a
/// first wave may cost.
fn decide(
    candidates: &[Candidate],
    measured: &BTreeMap<String, Measured>,
    settings: &Settings,
    model: &predict::Model,
    predictions: Vec<(usize, Prediction)>,
    budget: f64,
    first_wave: f64,
) -> Wave {
    let left = budget - spent(measured);
    // The frontier a candidate must beat: each measured point lowered by its noise, so a
    // candidate within noise of the frontier still counts as able to add to it.
    let floor: Vec<(f64, f64)> = measured
        .values()
        .flat_map(|m| m.points.iter().map(|p| ((p.x - p.dx).max(0.0), (p.y - p.dy).max(0.0))))
        .collect();
    let front = pareto_front(&floor);
    let open = predictions.len();
    // Before anything is measured, costs are the prior's guess: the budget does not rule a
    // candidate out yet (the first wave takes the cheaper half's spread instead).
    let first = measured.values().all(|m| m.points.is_empty());
    let mut decisions: Vec<Decision> = Vec::with_capacity(open);
    let mut live: Vec<Live> = Vec::new();
    for (i, prediction) in predictions {
        let candidate = &candidates[i];
        // Within the job, only the loads whose bound could add to the frontier are measured:
        // the others' points would lie under it. Before anything is measured, all of them.
        let measure: Vec<usize> = (0..prediction.loads.len())
            .filter(|&k| prediction.bound.get(k).is_none_or(|&b| !dominated(&front, b)))
            .collect();
        let cost = if measure.is_empty() {
            prediction.cost()
        } else {
            measure.iter().map(|&k| prediction.hours[k]).fold(0.0, |a, b| a + b)
        };
        let mut decision = Decision {
            job: candidate.job.clone(),
            loads: prediction.loads.clone(),
            measure: measure.iter().map(|&k| prediction.loads[k]).collect(),
            predicted: prediction.predicted.iter().map(|&(x, y)| [x, y]).collect(),
            bound: prediction.bound.iter().map(|&(x, y)| [x, y]).collect(),
            cost,
            gain: 0.0,
            score: 0.0,
            likely: 0.0,
            choice: Choice::Deferred,
            why: String::new(),
        };
        if let Some(reason) = &candidate.infeasible {
            decision.choice = Choice::Infeasible;
            decision.why = reason.clone();
        } else if cost > left && !first {
            decision.choice = Choice::OverBudget;
            decision.why = format!("predicted {:.3} GPU-hours, {:.3} left", cost, left.max(0.0));
        } else {
            live.push(Live { decision: decisions.len(), candidate: i, prediction, measure, cost });
        }
        decisions.push(decision);
    }
    let order = if first {
        design(model, &live, &mut decisions, first_wave, settings)
    } else {
        greedy(&floor, &live, &mut decisions, left, settings)
    };
    let mut chosen: Vec<Decision> = order.iter().map(|&i| decisions[i].clone()).collect();
    let mut rest: Vec<Decision> = decisions.into_iter().filter(|d| d.choice != Choice::Chosen).collect();
    rest.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.job.cmp(&b.job)));
    let stop = chosen.is_empty().then(|| {
        if open == 0 {
            "every load of every candidate is measured (or failed)".to_owned()
        } else if rest.iter().all(|d| d.choice == Choice::Infeasible) {
            "every unmeasured candidate is infeasible (the capacity estimate)".to_owned()
        } else if rest.iter().any(|d| d.choice == Choice::OverBudget)
            && !rest.iter().any(|d| d.choice == Choice::Deferred)
        {
            format!(
                "the budget is spent: {:.3} GPU-hours left, less than any candidate that could add to the frontier costs",
                left.max(0.0)
            )
        } else {
            "no unmeasured candidate can add to the frontier: every bound lies under it".to_owned()
        }
    });
    chosen.append(&mut rest);
    Wave { decisions: chosen, stop }
}

/// The first wave, with nothing measured: a spread of the space. From a seeded start among the
/// cheaper half (by predicted cost, which before any measurement is GPUs × points × the prior),
/// each next pick is the cheaper-half candidate farthest from those picked (features only),
/// until the wave is full or the picks' prior cost would pass `cap`. The first pick is always
/// made. A census ([`FirstWave::Census`]) measures each pick at its lowest load only, draws
/// from every candidate, and has no wave size: every candidate when all fit under `cap`.
fn design(
    model: &predict::Model,
    live: &[Live],
    decisions: &mut [Decision],
    cap: f64,
    settings: &Settings,
) -> Vec<usize> {
    let census = settings.first_wave == FirstWave::Census;
    // What a pick costs: every load, or a census's lowest one.
    let unit = |i: usize| {
        if census {
            live[i].prediction.hours.first().copied().unwrap_or(0.0)
        } else {
            live[i].cost
        }
    };
    let mut order: Vec<usize> = Vec::new();
    let pool: Vec<usize> = if census {
        (0..live.len()).collect()
    } else {
        let mut by_cost: Vec<usize> = (0..live.len()).collect();
        by_cost.sort_by(|&a, &b| live[a].cost.total_cmp(&live[b].cost));
        by_cost.truncate(live.len().div_ceil(2));
        by_cost
    };
    if pool.is_empty() {
        return order;
    }
    let most = if census { usize::MAX } else { settings.wave.max(1) };
    let total: f64 = pool.iter().map(|&i| unit(i)).sum();
    let picked: Vec<usize> = if census && total <= cap {
        // Everything fits: no spread to work out (which would cost a distance per pair).
        pool.clone()
    } else {
        let start = pool[(splitmix(settings.seed) % pool.len() as u64) as usize];
        let mut picked: Vec<usize> = vec![start];
        let mut taken = vec![false; pool.len()];
        taken[pool.iter().position(|&i| i == start).unwrap_or(0)] = true;
        let mut cost = unit(start);
        // Each pool member's distance to the nearest pick so far.
        let mut nearest: Vec<f64> =
            pool.iter().map(|&i| model.distance(live[i].candidate, live[start].candidate, None)).collect();
        while picked.len() < most {
            let next = (0..pool.len())
                .filter(|&k| !taken[k] && cost + unit(pool[k]) <= cap)
                .max_by(|&a, &b| nearest[a].total_cmp(&nearest[b]).then_with(|| pool[b].cmp(&pool[a])));
            let Some(k) = next else { break };
            let i = pool[k];
            taken[k] = true;
            cost += unit(i);
            picked.push(i);
            for (m, &j) in pool.iter().enumerate() {
                nearest[m] = nearest[m].min(model.distance(live[j].candidate, live[i].candidate, None));
            }
        }
        picked
    };
    for &i in &picked {
        let d = &mut decisions[live[i].decision];
        d.choice = Choice::Chosen;
        if census {
            d.measure = d.loads.first().copied().into_iter().collect();
            d.cost = unit(i);
            d.why = "first wave: a census, each job at its lowest load (nothing measured to predict from)"
                .to_owned();
        } else {
            d.why =
                "first wave: spread over the space, every load (nothing measured to predict from)".to_owned();
        }
        order.push(live[i].decision);
    }
    let full = picked.len() >= most || picked.len() == pool.len();
    for l in live {
        if decisions[l.decision].choice == Choice::Deferred {
            decisions[l.decision].why = match (census, full) {
                (_, false) => "first wave: not in it, which stops at half the budget".to_owned(),
                (true, true) => "first wave: not in the census".to_owned(),
                (false, true) => "first wave: not in the spread".to_owned(),
            };
        }
    }
    order
}

/// A rank in a max-heap: the predicted gain per GPU-hour, then the optimistic one, ties to the
/// earlier candidate.
#[derive(PartialEq, Clone, Copy)]
struct Ranked(Score, std::cmp::Reverse<usize>);

/// Gain per GPU-hour of a candidate's predicted points, and of its optimistic bound.
#[derive(PartialEq, Clone, Copy, Debug)]
struct Score {
    likely: f64,
    possible: f64,
}

impl Score {
    fn cmp(&self, other: &Score) -> std::cmp::Ordering {
        self.likely.total_cmp(&other.likely).then_with(|| self.possible.total_cmp(&other.possible))
    }
}

impl Eq for Ranked {}

impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Ranked {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.cmp(&other.0).then_with(|| self.1.cmp(&other.1))
    }
}

/// Later waves: by gain per GPU-hour. After each pick its predicted curve joins the frontier, so
/// the next pick is judged against what the wave will know. A gain can only shrink as the
/// frontier grows, so only the top of the ranking is recomputed (lazy greedy): the result is
/// the same as recomputing every candidate after every pick.
fn greedy(
    floor: &[(f64, f64)],
    live: &[Live],
    decisions: &mut [Decision],
    left: f64,
    settings: &Settings,
) -> Vec<usize> {
    let mut frontier = pareto_front(floor);
    let base = hypervolume(&frontier, REFERENCE);
    let added = |frontier: &[(f64, f64)], base: f64, points: &[(f64, f64)]| {
        let mut with = frontier.to_vec();
        with.extend(points.iter().copied());
        (hypervolume(&with, REFERENCE) - base).max(0.0)
    };
    let score_of = |frontier: &[(f64, f64)], base: f64, l: &Live| {
        let cost = l.cost.max(1e-9);
        let possible = added(frontier, base, &l.prediction.bound) / cost;
        let likely = if possible > 0.0 { added(frontier, base, &l.prediction.predicted) / cost } else { 0.0 };
        Score { likely, possible }
    };
    let mut heap = std::collections::BinaryHeap::new();
    for (k, l) in live.iter().enumerate() {
        let score = score_of(&frontier, base, l);
        let d = &mut decisions[l.decision];
        d.gain = score.possible * l.cost.max(1e-9);
        d.score = score.possible;
        d.likely = score.likely;
        if d.gain <= base * 1e-9 {
            d.choice = Choice::Dominated;
            d.why = "its optimistic bound lies under the measured frontier (less its noise)".to_owned();
        } else {
            heap.push(Ranked(score, std::cmp::Reverse(k)));
        }
    }
    let mut order = Vec::new();
    let mut budget = left;
    let mut current = base;
    let mut unaffordable = Vec::new();
    while order.len() < settings.wave.max(1) {
        let Some(Ranked(_, std::cmp::Reverse(k))) = heap.pop() else { break };
        let l = &live[k];
        if l.cost > budget {
            unaffordable.push(k);
            continue;
        }
        // The loads to measure were fixed against the frontier the wave began with, so a
        // candidate's cost stays put and its score only shrinks: the lazy greedy holds.
        let score = score_of(&frontier, current, l);
        if heap.peek().is_some_and(|top| top.0.cmp(&score) == std::cmp::Ordering::Greater) {
            heap.push(Ranked(score, std::cmp::Reverse(k)));
            continue;
        }
        if score.possible <= 0.0 {
            heap.push(Ranked(score, std::cmp::Reverse(k)));
            break;
        }
        budget -= l.cost;
        let d = &mut decisions[l.decision];
        d.choice = Choice::Chosen;
        let loads = |loads: &[f64]| loads.iter().map(|l| l.to_string()).collect::<Vec<_>>().join(", ");
        let which = if d.measure.len() == d.loads.len() {
            "every load not yet tried".to_owned()
        } else {
            format!(
                "loads {} of {} (the others' bounds lie under the frontier)",
                loads(&d.measure),
                loads(&d.loads)
            )
        };
        d.why = if score.likely > 0.0 {
            format!(
                "best predicted gain per GPU-hour left: {:.4} of hypervolume per GPU-hour ({} in this wave); {which}",
                score.likely,
                order.len() + 1
            )
        } else {
            format!(
                "no prediction adds to the frontier; best optimistic gain per GPU-hour left: {:.4} ({} in this wave); {which}",
                score.possible,
                order.len() + 1
            )
        };
        order.push(l.decision);
        // What the wave will know afterwards: its predicted points at the loads it measures.
        frontier.extend(l.measure.iter().map(|&k| l.prediction.predicted[k]));
        frontier = pareto_front(&frontier);
        current = hypervolume(&frontier, REFERENCE);
    }
    for k in unaffordable.into_iter().chain(heap.into_iter().map(|r| r.1 .0)) {
        let d = &mut decisions[live[k].decision];
        d.why = if d.cost > budget {
            "could add to the frontier; the budget left after this wave's choices does not cover it"
                .to_owned()
        } else {
            "could add to the frontier; ranked below this wave's choices".to_owned()
        };
    }
    order
}

/// The non-dominated subset of `points` (maximising both coordinates).
fn pareto_front(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    sweep_aggregate::pareto::frontier(points).into_iter().map(|i| points[i]).collect()
}

/// A 64-bit mix of `x` (SplitMix64's finaliser): seeded choices without a generator crate.
pub fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A synthetic space shaped like the simulated engine's: TP speeds a user up by tp^0.8 and
    /// costs tp GPUs; a batch caps the load that raises throughput.
    pub(crate) fn space() -> (Vec<Candidate>, BTreeMap<String, Measured>) {
        let mut candidates = Vec::new();
        let mut grid = BTreeMap::new();
        for tp in [1.0f64, 2.0, 4.0, 8.0] {
            for batch in [4.0f64, 16.0, 64.0, 256.0] {
                let job = format!("tp{tp}_batch{batch}");
                let loads = vec![1.0, 4.0, 16.0, 64.0, 256.0];
                let points = loads
                    .iter()
                    .map(|&load: &f64| {
                        let running = load.min(batch);
                        let step = (10.0 + 0.15 * running) / tp.powf(0.8);
                        let x = 1000.0 / step * (running / load).max(0.0);
                        let y = x * load / tp;
                        Observed { load, x, y, dx: 0.0, dy: 0.0, seconds: 10.0 + load / running }
                    })
                    .collect::<Vec<_>>();
                let gpu_hours = tp * points.iter().map(|p| p.seconds).sum::<f64>() / 3600.0;
                let features = BTreeMap::from([
                    ("agg.tp".to_owned(), Feature::Number(tp)),
                    ("agg.batch".to_owned(), Feature::Number(batch)),
                    ("mode".to_owned(), Feature::Text("agg".to_owned())),
                ]);
                candidates.push(Candidate { job: job.clone(), gpus: tp, loads, features, infeasible: None });
                let tried = points.iter().map(|p| p.load).collect();
                grid.insert(
                    job,
                    Measured {
                        points,
                        tried,
                        gpu_hours,
                        gpu_hours_with_startup: gpu_hours * 1.2,
                        failed: None,
                    },
                );
            }
        }
        (candidates, grid)
    }

    #[test]
    fn the_first_wave_spreads_over_the_cheaper_half() {
        let (candidates, _) = space();
        let settings = Settings { budget: 1.0, wave: 4, ..Settings::default() };
        let wave = choose(&candidates, &BTreeMap::new(), &settings);
        let chosen: Vec<&Decision> = wave.chosen().collect();
        assert_eq!(chosen.len(), 4, "{wave:#?}");
        // The cheaper half is TP 1 and 2 (GPUs × points); the spread takes both, and batches
        // far apart.
        let tps: std::collections::BTreeSet<&str> =
            chosen.iter().map(|d| d.job.split('_').next().unwrap_or_default()).collect();
        assert_eq!(tps.len(), 2, "{tps:?}");
        let batches: std::collections::BTreeSet<&str> =
            chosen.iter().map(|d| d.job.split('_').nth(1).unwrap_or_default()).collect();
        assert!(batches.len() >= 3, "{batches:?}");
        assert!(wave.stop.is_none());
        // Another seed starts elsewhere.
        let first: Vec<String> = chosen.iter().map(|d| d.job.clone()).collect();
        let differs = (1..6).any(|seed| {
            let other = choose(&candidates, &BTreeMap::new(), &Settings { seed, ..settings });
            other.chosen().map(|d| d.job.clone()).collect::<Vec<_>>() != first
        });
        assert!(differs, "every seed chose {first:?}");
        // With `--budget-share`, the first wave's prior cost stays within half the budget.
        let wide = Settings { wave: 8, ..settings };
        let (budget, wave) = choose_share(&candidates, &BTreeMap::new(), &wide, 0.1);
        let cost: f64 = wave.chosen().map(|d| d.cost).sum();
        assert!(wave.chosen().count() >= 1, "{wave:#?}");
        assert!(wave.chosen().count() < 8 && cost <= budget / 2.0, "{cost} of {budget}: {wave:#?}");
    }

    #[test]
    fn infeasible_and_unaffordable_candidates_are_never_chosen_and_say_why() {
        let (mut candidates, grid) = space();
        candidates[5].infeasible = Some("KV cache: needs 90 GiB, 80 GiB per GPU".to_owned());
        let measured: BTreeMap<String, Measured> =
            grid.iter().take(3).map(|(k, v)| (k.clone(), v.clone())).collect();
        let settings = Settings { budget: spent(&measured) + 0.02, wave: 8, ..Settings::default() };
        let wave = choose(&candidates, &measured, &settings);
        let by_job: BTreeMap<&str, &Decision> = wave.decisions.iter().map(|d| (d.job.as_str(), d)).collect();
        assert_eq!(by_job[candidates[5].job.as_str()].choice, Choice::Infeasible);
        assert!(by_job[candidates[5].job.as_str()].why.contains("KV cache"));
        for d in wave.chosen() {
            assert!(d.cost <= 0.02 + 1e-12, "{d:#?}");
        }
        assert!(wave.decisions.iter().any(|d| d.choice == Choice::OverBudget && d.why.contains("left")));
        assert!(
            !wave.decisions.iter().any(|d| measured.contains_key(&d.job)),
            "measured jobs are not candidates"
        );
    }

    #[test]
    fn exploring_the_synthetic_space_finds_its_frontier_for_less_than_the_grid() {
        let (candidates, grid) = space();
        let total: f64 = grid.values().map(|m| m.gpu_hours).sum();
        let settings = Settings { budget: total / 3.0, wave: 3, ..Settings::default() };
        let run = replay::replay(replay::Strategy::Explore, &candidates, &grid, &settings);
        assert!(run.spent <= total / 3.0 + 1e-9, "{run:#?}");
        // 16 candidates leave little to choose after a first wave of 3; the benchmark
        // (`scripts/bench/explore.sh`) holds the method to its targets on 144.
        assert!(run.ratio >= 0.9, "{run:#?}");
        assert!(run.growth.windows(2).all(|w| w[1].0 >= w[0].0 && w[1].1 >= w[0].1), "{run:#?}");
        let random = replay::replay(replay::Strategy::Random, &candidates, &grid, &settings);
        assert!(random.spent <= total / 3.0 + 1e-9);
    }

    #[test]
    fn a_candidate_whose_bound_is_under_the_frontier_is_skipped_as_dominated() {
        let (candidates, grid) = space();
        // Everything but one job measured: the last one (TP 8, batch 256) is predicted from its
        // neighbours; a copy of a dominated job is dominated.
        let mut measured = grid.clone();
        let mut twin = candidates[0].clone();
        twin.job = "twin".to_owned();
        measured.remove("tp8_batch256");
        let mut all = candidates.clone();
        all.push(twin);
        let wave = choose(&all, &measured, &Settings { budget: 100.0, kappa: 0.0, ..Settings::default() });
        let twin = wave.decisions.iter().find(|d| d.job == "twin").expect("twin decided");
        assert_eq!(twin.choice, Choice::Dominated, "{twin:#?}");
    }

    /// Under a budget, what is likely comes first: a candidate whose predicted points add to
    /// the frontier is chosen before one that only its optimistic bound could add to, however
    /// much larger that bound's gain; the latter still ranks by it, above a dominated one.
    #[test]
    fn a_likely_gain_ranks_before_a_merely_possible_one() {
        let floor = vec![(100.0, 100.0)];
        let prediction = |predicted: (f64, f64), bound: (f64, f64)| Prediction {
            loads: vec![1.0],
            predicted: vec![predicted],
            bound: vec![bound],
            hours: vec![1.0],
        };
        let live = vec![
            // Possible only: predicted under the frontier, its bound far past it.
            Live {
                decision: 0,
                candidate: 0,
                prediction: prediction((50.0, 50.0), (1000.0, 1000.0)),
                measure: vec![0],
                cost: 1.0,
            },
            // Likely: predicted a little past the frontier.
            Live {
                decision: 1,
                candidate: 1,
                prediction: prediction((110.0, 110.0), (120.0, 120.0)),
                measure: vec![0],
                cost: 1.0,
            },
            // Dominated: even its bound is under.
            Live {
                decision: 2,
                candidate: 2,
                prediction: prediction((10.0, 10.0), (90.0, 90.0)),
                measure: vec![0],
                cost: 1.0,
            },
        ];
        let decision = |job: &str| Decision {
            job: job.to_owned(),
            loads: vec![1.0],
            measure: vec![1.0],
            predicted: Vec::new(),
            bound: Vec::new(),
            cost: 1.0,
            gain: 0.0,
            score: 0.0,
            likely: 0.0,
            choice: Choice::Deferred,
            why: String::new(),
        };
        let mut decisions = vec![decision("possible"), decision("likely"), decision("dominated")];
        let one = Settings { wave: 1, ..Settings::default() };
        let order = greedy(&floor, &live, &mut decisions, 10.0, &one);
        assert_eq!(order, vec![1], "{decisions:#?}");
        assert!(decisions[1].why.starts_with("best predicted gain"), "{}", decisions[1].why);
        assert!(decisions[0].score > decisions[1].score, "the bound's gain alone would rank it first");
        assert_eq!((decisions[0].likely, decisions[2].choice), (0.0, Choice::Dominated));
        // With room for both, the possible one follows, by its bound.
        let two = Settings { wave: 2, ..Settings::default() };
        let mut decisions = vec![decision("possible"), decision("likely"), decision("dominated")];
        assert_eq!(greedy(&floor, &live, &mut decisions, 10.0, &two), vec![1, 0]);
        assert!(decisions[0].why.starts_with("no prediction adds"), "{}", decisions[0].why);
    }

    #[test]
    fn only_the_loads_whose_bound_can_add_to_the_frontier_are_measured() {
        let (candidates, grid) = space();
        let settings = Settings { budget: 100.0, kappa: 0.0, ..Settings::default() };
        let mut strict = 0;
        for c in &candidates {
            let mut measured = grid.clone();
            measured.remove(&c.job);
            let front = pareto_front(&measured_points(&measured));
            let wave = choose(&candidates, &measured, &settings);
            let d = wave.decisions.iter().find(|d| d.job == c.job).expect("decided");
            assert_eq!(d.loads, c.loads);
            let able: Vec<f64> = d
                .loads
                .iter()
                .zip(&d.bound)
                .filter(|(_, b)| !dominated(&front, (b[0], b[1])))
                .map(|(l, _)| *l)
                .collect();
            assert_eq!(d.measure, able, "{d:#?}");
            if !d.measure.is_empty() && d.measure.len() < d.loads.len() {
                strict += 1;
                assert!(d.cost > 0.0 && d.cost < c.gpus * 60.0, "{d:#?}");
            }
        }
        assert!(strict > 0, "some job measures only part of its loads");
    }

    #[test]
    fn a_job_measured_at_some_loads_is_a_candidate_for_the_others_and_never_for_those() {
        let (candidates, grid) = space();
        let mut measured = grid.clone();
        let job = "tp8_batch256";
        let whole = measured.remove(job).expect("in the grid");
        let part: Vec<Observed> = whole.points.iter().filter(|p| p.load <= 4.0).copied().collect();
        measured.insert(
            job.to_owned(),
            Measured {
                tried: part.iter().map(|p| p.load).collect(),
                points: part,
                gpu_hours: whole.gpu_hours / 3.0,
                gpu_hours_with_startup: whole.gpu_hours / 2.0,
                failed: None,
            },
        );
        let settings = Settings { budget: 100.0, ..Settings::default() };
        let wave = choose(&candidates, &measured, &settings);
        let d = wave.decisions.iter().find(|d| d.job == job).expect("a candidate for its other loads");
        assert_eq!(d.loads, vec![16.0, 64.0, 256.0]);
        assert!(d.measure.iter().all(|l| d.loads.contains(l)), "{d:#?}");
        // Every other job was measured whole: it is no candidate.
        assert_eq!(wave.decisions.len(), 1, "{wave:#?}");
        // Its cost counts what it spent and the predicted rest.
        let all = costs(&candidates, &measured, &settings);
        let at = candidates.iter().position(|c| c.job == job).expect("a candidate");
        assert!(all[at] > whole.gpu_hours / 3.0, "{}", all[at]);
        // A failed job is no candidate at all.
        measured.get_mut(job).expect("measured").failed = Some("servers never ready".to_owned());
        let wave = choose(&candidates, &measured, &settings);
        assert!(wave.decisions.is_empty(), "{wave:#?}");
        assert!(wave.stop.as_deref().is_some_and(|s| s.contains("every load")), "{wave:#?}");
    }

    #[test]
    fn a_load_between_two_measured_loads_of_a_job_is_bounded_by_the_corner_they_make() {
        let (candidates, grid) = space();
        let job = "tp2_batch64";
        let mut measured = grid.clone();
        let whole = measured.remove(job).expect("in the grid");
        let part: Vec<Observed> =
            whole.points.iter().filter(|p| p.load == 1.0 || p.load == 16.0).copied().collect();
        let (low, high) = (part[0], part[1]);
        measured.insert(
            job.to_owned(),
            Measured {
                tried: vec![1.0, 16.0],
                points: part,
                gpu_hours: 0.01,
                gpu_hours_with_startup: 0.02,
                failed: None,
            },
        );
        // However optimistic the bound, a load between 1 and 16 is no better than tokens/s/user
        // at 1 and tokens/s/GPU at 16 (plus a point's slack).
        let settings = Settings { budget: 100.0, kappa: 5.0, ..Settings::default() };
        let wave = choose(&candidates, &measured, &settings);
        let d = wave.decisions.iter().find(|d| d.job == job).expect("decided");
        let at = d.loads.iter().position(|&l| l == 4.0).expect("load 4 open");
        let [x, y] = d.bound[at];
        assert!(x <= low.x * 1.03 + 1e-9 && y <= high.y * 1.03 + 1e-9, "{d:#?}");
        // Above the highest measured load, only tokens/s/user is capped.
        let above = d.loads.iter().position(|&l| l == 64.0).expect("load 64 open");
        assert!(d.bound[above][0] <= high.x * 1.03 + 1e-9, "{d:#?}");
    }

    #[test]
    fn a_census_measures_every_job_at_its_lowest_load_or_a_spread_of_them_within_half_the_share() {
        let (candidates, _) = space();
        let settings = Settings { first_wave: FirstWave::Census, ..Settings::default() };
        let wave = choose(&candidates, &BTreeMap::new(), &settings);
        assert_eq!(wave.chosen().count(), candidates.len(), "every job, whatever --wave says");
        for d in wave.chosen() {
            assert_eq!(d.measure, vec![1.0], "{d:#?}");
        }
        // A share of the prior's cost: within half of it, spread over TP and batch.
        let (budget, wave) = choose_share(&candidates, &BTreeMap::new(), &settings, 0.2);
        let chosen: Vec<&Decision> = wave.chosen().collect();
        let cost: f64 = chosen.iter().map(|d| d.cost).sum();
        assert!(chosen.len() > 1 && chosen.len() < candidates.len(), "{wave:#?}");
        assert!(cost <= budget / 2.0 + 1e-12, "{cost} of {budget}");
        let tps: std::collections::BTreeSet<&str> =
            chosen.iter().map(|d| d.job.split('_').next().unwrap_or_default()).collect();
        assert!(tps.len() >= 3, "{tps:?}");
        assert!(wave
            .decisions
            .iter()
            .filter(|d| d.choice != Choice::Chosen)
            .all(|d| d.why.contains("half the budget")));
    }
}
