//! The search for the highest load meeting the SLOs (`workload.search`), as a pure state
//! machine: it says which load to measure next from what the loads measured so far gave, and
//! never touches a server, so every path through it is tested on made-up curves.
//!
//! 1. **Climb**: `from`, then twice the load each step (capped at `to`), until a step breaks an
//!    SLO or, with `stop_when_gain_below: g`, adds less than `g` of output throughput over the
//!    step before (saturation).
//! 2. **Bisect** between the last load that passed and the first that did not:
//!    - after an SLO broke: a load meeting every SLO raises the lower end; the answer is the
//!      highest passing load;
//!    - after saturation: the target is `(1 − g) ×` the most throughput measured, and the answer
//!      is the lowest load reaching it (the knee: more load only adds latency). A load breaking
//!      an SLO on the way turns it into the SLO bisection.
//!
//!    It stops when the two ends are within `resolution × lower end` (and one request apart, for
//!    concurrency, which is whole).
//!
//! A climb takes at most `log2(to / from) + 2` steps and a bisection of `(x, 2x)` at most
//! `log2(x / resolution)`, so a search of concurrency ends within `2 × log2(to / from) + 3`.

use sweep_folder::settings::{Search, SearchAxis};

/// What one step measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Measured {
    pub load: f64,
    /// Output tokens/s.
    pub throughput: f64,
    /// The SLOs it broke (empty: it met them all).
    pub broken: Vec<String>,
}

/// What the search wants next.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    Measure { load: f64, phase: &'static str },
    Done { max_load_meeting_slo: Option<f64>, stopped_because: String },
}

#[derive(Debug, Clone, PartialEq)]
enum Phase {
    Climb,
    /// `lo` passed (or nothing below `hi` was measured), `hi` did not.
    Slo {
        lo: Option<f64>,
        hi: f64,
    },
    /// The knee lies in `(lo, hi]`: `hi` reaches `target`, `lo` does not.
    Knee {
        lo: Option<f64>,
        hi: f64,
        target: f64,
        best: f64,
    },
    Done,
}

#[derive(Debug, Clone)]
pub struct Searcher {
    search: Search,
    steps: Vec<Measured>,
    phase: Phase,
    next: Next,
}

impl Searcher {
    pub fn new(search: &Search) -> Self {
        let first = whole(search, search.from);
        Searcher {
            search: search.clone(),
            steps: Vec::new(),
            phase: Phase::Climb,
            next: Next::Measure { load: first, phase: "climb" },
        }
    }

    pub fn next(&self) -> &Next {
        &self.next
    }

    pub fn steps(&self) -> &[Measured] {
        &self.steps
    }

    /// The best answer so far, for a search stopped before it concluded.
    pub fn so_far(&self) -> Option<f64> {
        match &self.phase {
            Phase::Knee { hi, .. } => Some(*hi),
            Phase::Slo { lo, .. } => *lo,
            _ => self.steps.iter().filter(|s| s.broken.is_empty()).map(|s| s.load).reduce(f64::max),
        }
    }

    /// Takes the result of the load [`Searcher::next`] asked for.
    pub fn record(&mut self, step: Measured) {
        let load = step.load;
        let (throughput, broken) = (step.throughput, !step.broken.is_empty());
        let previous = self.steps.last().cloned();
        self.steps.push(step);
        self.phase = match std::mem::replace(&mut self.phase, Phase::Done) {
            Phase::Climb => {
                let gain = self.search.stop_when_gain_below;
                if broken {
                    let lo = previous.map(|p| p.load);
                    Phase::Slo { lo, hi: load }
                } else if let (Some(g), Some(prev)) = (gain, previous.filter(|p| p.broken.is_empty())) {
                    if throughput < (1.0 + g) * prev.throughput {
                        self.knee(g)
                    } else {
                        Phase::Climb
                    }
                } else {
                    Phase::Climb
                }
            }
            Phase::Slo { lo, hi } => {
                if broken {
                    Phase::Slo { lo, hi: load }
                } else {
                    Phase::Slo { lo: Some(load), hi }
                }
            }
            Phase::Knee { lo, hi, target, best } => {
                if broken {
                    // The SLO gives out below the knee: it is the limit now.
                    Phase::Slo { lo, hi: load }
                } else if throughput >= target {
                    Phase::Knee { lo, hi: load, target, best }
                } else {
                    Phase::Knee { lo: Some(load), hi, target, best }
                }
            }
            Phase::Done => Phase::Done,
        };
        self.next = self.decide();
        if matches!(self.next, Next::Done { .. }) {
            self.phase = Phase::Done;
        }
    }

    /// The bisection after saturation: the most throughput measured and the loads either side
    /// of `(1 − g)` of it.
    fn knee(&self, g: f64) -> Phase {
        let passing: Vec<&Measured> = self.steps.iter().filter(|s| s.broken.is_empty()).collect();
        let best = passing.iter().map(|s| s.throughput).fold(0.0, f64::max);
        let target = (1.0 - g) * best;
        let hi =
            passing.iter().filter(|s| s.throughput >= target).map(|s| s.load).fold(f64::INFINITY, f64::min);
        let lo =
            passing.iter().filter(|s| s.throughput < target && s.load < hi).map(|s| s.load).reduce(f64::max);
        Phase::Knee { lo, hi, target, best }
    }

    fn decide(&self) -> Next {
        let s = &self.search;
        let last = self.steps.last().expect("a step was recorded");
        match &self.phase {
            Phase::Climb => {
                if last.load >= s.to {
                    return Next::Done {
                        max_load_meeting_slo: Some(last.load),
                        stopped_because: format!(
                            "reached `to` ({}) with every SLO met{}",
                            s.to,
                            if s.stop_when_gain_below.is_some() {
                                " and the throughput still growing"
                            } else {
                                ""
                            }
                        ),
                    };
                }
                Next::Measure { load: whole(s, (last.load * 2.0).min(s.to)), phase: "climb" }
            }
            Phase::Slo { lo, hi } => {
                let why = self
                    .steps
                    .iter()
                    .find(|m| m.load == *hi)
                    .and_then(|m| m.broken.first().cloned())
                    .unwrap_or_default();
                let Some(lo) = lo else {
                    return Next::Done {
                        max_load_meeting_slo: None,
                        stopped_because: format!("the lowest load, {}, already breaks the SLO: {why}", hi),
                    };
                };
                match self.midpoint(*lo, *hi) {
                    Some(load) => Next::Measure { load, phase: "bisect" },
                    None => Next::Done {
                        max_load_meeting_slo: Some(*lo),
                        stopped_because: format!("the SLO breaks at {hi}: {why}"),
                    },
                }
            }
            Phase::Knee { lo, hi, target, best } => {
                let done = || {
                    Next::Done {
                    max_load_meeting_slo: Some(*hi),
                    stopped_because: format!(
                        "the throughput saturates: {hi} reaches {target:.1} tokens/s, {:.0} % of the most measured ({best:.1})",
                        100.0 * (1.0 - s.stop_when_gain_below.unwrap_or(0.0))
                    ),
                }
                };
                let Some(lo) = lo else { return done() };
                match self.midpoint(*lo, *hi) {
                    Some(load) => Next::Measure { load, phase: "bisect" },
                    None => done(),
                }
            }
            Phase::Done => Next::Done { max_load_meeting_slo: self.so_far(), stopped_because: String::new() },
        }
    }

    /// The load halfway between `lo` and `hi`, or `None` when they are within the resolution.
    fn midpoint(&self, lo: f64, hi: f64) -> Option<f64> {
        let s = &self.search;
        let step = (s.resolution * lo).max(if s.axis == SearchAxis::Concurrency { 1.0 } else { 0.0 });
        if hi - lo <= step {
            return None;
        }
        let mid = whole(s, (lo + hi) / 2.0);
        (mid > lo && mid < hi).then_some(mid)
    }
}

/// Concurrency is a whole number of requests; a rate is any number.
fn whole(search: &Search, load: f64) -> f64 {
    match search.axis {
        SearchAxis::Concurrency => load.floor().max(1.0),
        SearchAxis::RequestRate => load,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sweep_folder::settings::{Count, Slo};

    fn search(axis: SearchAxis, from: f64, to: f64, gain: Option<f64>, slo: bool) -> Search {
        Search {
            axis,
            from,
            to,
            slo: if slo {
                vec![Slo { metric: "time_to_first_token".into(), stat: "p99".into(), max_ms: 100.0 }]
            } else {
                Vec::new()
            },
            stop_when_gain_below: gain,
            resolution: 0.05,
            requests: Count::PerConcurrency(10),
            warmup: Count::PerConcurrency(1),
        }
    }

    /// Runs a search against `curve` (load → (throughput, SLO broken)); returns the answer and
    /// the loads it measured.
    fn run(search: &Search, curve: impl Fn(f64) -> (f64, bool)) -> (Option<f64>, Vec<f64>, String) {
        let mut searcher = Searcher::new(search);
        for _ in 0..200 {
            match searcher.next().clone() {
                Next::Measure { load, .. } => {
                    let (throughput, broken) = curve(load);
                    let broken = if broken { vec![format!("broken at {load}")] } else { Vec::new() };
                    searcher.record(Measured { load, throughput, broken });
                }
                Next::Done { max_load_meeting_slo, stopped_because } => {
                    return (
                        max_load_meeting_slo,
                        searcher.steps().iter().map(|s| s.load).collect(),
                        stopped_because,
                    )
                }
            }
        }
        panic!("the search did not end")
    }

    /// A server with `batch` slots: throughput grows with load up to the batch, then stays; the
    /// TTFT SLO breaks once requests queue.
    fn server(batch: f64) -> impl Fn(f64) -> (f64, bool) {
        move |load: f64| (100.0 * load.min(batch) / (1.0 + 0.01 * load.min(batch)), load > batch)
    }

    fn budget(from: f64, to: f64) -> usize {
        (2.0 * (to / from).log2()).floor() as usize + 3
    }

    #[test]
    fn finds_every_slo_limit_of_a_concurrency_range_within_its_resolution_and_step_budget() {
        let s = search(SearchAxis::Concurrency, 1.0, 1024.0, None, true);
        let mut most = 0;
        for batch in 1..=1023 {
            let (found, steps, why) = run(&s, server(f64::from(batch)));
            // Above 20 the resolution (5 % of the lower end) allows a few requests of slack.
            let slack = (0.05 * f64::from(batch)).max(1.0);
            let found = found.unwrap_or_else(|| panic!("batch {batch}: {why}"));
            assert!(
                found <= f64::from(batch) && found > f64::from(batch) - slack,
                "batch {batch}: found {found}"
            );
            assert!(steps.len() <= budget(1.0, 1024.0), "batch {batch}: {} steps: {steps:?}", steps.len());
            assert!(why.starts_with("the SLO breaks at"), "{why}");
            most = most.max(steps.len());
        }
        // The figure docs/benchmarks.md quotes.
        eprintln!(
            "the most steps over every limit 1..=1023 in 1..1024: {most} (budget {})",
            budget(1.0, 1024.0)
        );
    }

    #[test]
    fn finds_the_saturation_knee_without_an_slo() {
        let s = search(SearchAxis::Concurrency, 1.0, 1024.0, Some(0.05), false);
        for batch in [3.0, 6.0, 8.0, 13.0, 100.0, 700.0] {
            // No SLO: the curve's queueing does not count.
            let curve = |load: f64| (server(batch)(load).0, false);
            let (found, steps, why) = run(&s, curve);
            let found = found.expect("a knee");
            // The knee: the lowest load within 5 % of the most throughput.
            let best = curve(batch).0;
            let knee = (1..=1024).map(f64::from).find(|&l| curve(l).0 >= 0.95 * best).expect("knee");
            assert!(curve(found).0 >= 0.95 * best, "batch {batch}: {found} is below the knee {knee} ({why})");
            assert!(found - knee <= (0.05 * found).max(1.0), "batch {batch}: {found}, the knee is {knee}");
            assert!(steps.len() <= budget(1.0, 1024.0), "batch {batch}: {steps:?}");
            assert!(why.starts_with("the throughput saturates"), "{why}");
        }
    }

    #[test]
    fn a_rate_search_bisects_to_its_resolution() {
        let s = search(SearchAxis::RequestRate, 0.5, 64.0, None, true);
        let limit = 11.3;
        let (found, steps, _) = run(&s, |rate| (rate * 10.0, rate > limit));
        let found = found.expect("a limit");
        assert!(found <= limit && found >= limit * 0.95 - 1e-9, "{found} {steps:?}");
        assert!(steps.len() <= budget(0.5, 64.0), "{steps:?}");
    }

    #[test]
    fn the_edges_say_why_they_stopped() {
        let s = search(SearchAxis::Concurrency, 4.0, 32.0, None, true);
        let (found, steps, why) = run(&s, |_| (1.0, true));
        assert_eq!((found, steps), (None, vec![4.0]));
        assert!(why.contains("the lowest load, 4, already breaks the SLO"), "{why}");
        let (found, steps, why) = run(&s, |l| (l, false));
        assert_eq!((found, steps), (Some(32.0), vec![4.0, 8.0, 16.0, 32.0]));
        assert!(why.starts_with("reached `to` (32)"), "{why}");
        // An SLO that gives out below the saturation knee is the limit.
        let s = search(SearchAxis::Concurrency, 1.0, 64.0, Some(0.05), true);
        let (found, _, why) = run(&s, |l| (100.0 * l.min(16.0), l > 12.0));
        assert_eq!(found, Some(12.0), "{why}");
    }
}
