//! An unmeasured candidate's curve, from its nearest measured neighbours.
//!
//! Features are compared on a log₂ scale (a doubling of TP or batch is one unit) and a text
//! feature that differs counts [`TEXT_DISTANCE`] units. A batch size (any feature whose name
//! ends in `batch`) does not count at a load both batches hold: below its batch limit a server
//! runs the same whatever the limit is — the one place the engines' structure tells exactly what
//! a neighbour implies. At each of the candidate's loads, each neighbour's curve is read by
//! log-linear interpolation; the prediction is the inverse-distance-weighted mean of the
//! [`NEIGHBOURS`] nearest (in logs), and its spread is their weighted disagreement plus
//! [`DISTANCE_SPREAD`] per unit of distance to the nearest plus the neighbours' own noise. The
//! optimistic bound is `exp(mean + kappa × spread)` on both axes, capped by the job's own
//! measured loads where it has some: a curve's tokens/s/user falls with the load and its
//! tokens/s/GPU rises, so a load between two measured ones can be no better than the corner
//! they make.

use std::collections::BTreeMap;

use crate::{Candidate, Feature, Measured, Observed, Settings};

pub const NEIGHBOURS: usize = 4;
pub const TEXT_DISTANCE: f64 = 2.0;
/// Log-units of spread per unit of distance to the nearest neighbour.
pub const DISTANCE_SPREAD: f64 = 0.5;
/// A load beyond a neighbour's measured range is this much farther per doubling.
const EXTRAPOLATION: f64 = 0.5;
/// The slack of the monotone caps over a measured point without repetitions (relative): a
/// point measured once may read a little low.
const MONOTONE_SLACK: f64 = 0.03;

#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// The loads predicted: the candidate's loads not yet tried.
    pub loads: Vec<f64>,
    /// (tokens/s/user, tokens/s/GPU) at each load; empty before anything is measured.
    pub predicted: Vec<(f64, f64)>,
    pub bound: Vec<(f64, f64)>,
    /// GPU-hours at each load.
    pub hours: Vec<f64>,
}

impl Prediction {
    /// GPU-hours of every load predicted.
    pub fn cost(&self) -> f64 {
        self.hours.iter().fold(0.0, |a, b| a + b)
    }
}

/// A feature's value, encoded once so distances need no lookups by name.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Slot {
    Missing,
    /// `log2(1 + value)`, and the value for the batch rule.
    Number {
        log: f64,
        raw: f64,
    },
    /// An interned text.
    Text(u32),
}

pub(crate) struct Model<'a> {
    candidates: &'a [Candidate],
    /// Per candidate, its features by the feature index.
    encoded: Vec<Vec<Slot>>,
    /// Per feature index: whether it is a batch size.
    batch: Vec<bool>,
    /// Measured jobs with valid points: the candidate's index and its points by load.
    known: Vec<(usize, &'a [Observed])>,
}

impl<'a> Model<'a> {
    pub fn new(candidates: &'a [Candidate], measured: &'a BTreeMap<String, Measured>) -> Model<'a> {
        let mut index: BTreeMap<&str, usize> = BTreeMap::new();
        for c in candidates {
            for name in c.features.keys() {
                let next = index.len();
                index.entry(name.as_str()).or_insert(next);
            }
        }
        let mut batch = vec![false; index.len()];
        for (name, &i) in &index {
            batch[i] = name.ends_with("batch");
        }
        let mut texts: std::collections::HashMap<&str, u32> = std::collections::HashMap::new();
        let encoded = candidates
            .iter()
            .map(|c| {
                let mut slots = vec![Slot::Missing; index.len()];
                for (name, feature) in &c.features {
                    slots[index[name.as_str()]] = match feature {
                        Feature::Number(v) => Slot::Number { log: (1.0 + v.max(0.0)).log2(), raw: *v },
                        Feature::Text(t) => {
                            let next = texts.len() as u32;
                            Slot::Text(*texts.entry(t.as_str()).or_insert(next))
                        }
                    };
                }
                slots
            })
            .collect();
        let known = candidates
            .iter()
            .enumerate()
            .filter_map(|(i, c)| {
                let m = measured.get(&c.job)?;
                (m.failed.is_none() && !m.points.is_empty()).then_some((i, m.points.as_slice()))
            })
            .collect();
        Model { candidates, encoded, batch, known }
    }

    /// How far apart candidates `a` and `b` are, at `load` (a batch both hold at that load does
    /// not count).
    pub fn distance(&self, a: usize, b: usize, load: Option<f64>) -> f64 {
        let (ea, eb) = (&self.encoded[a], &self.encoded[b]);
        let mut sum = 0.0;
        for k in 0..ea.len() {
            let d = match (ea[k], eb[k]) {
                (Slot::Missing, Slot::Missing) => 0.0,
                (Slot::Number { log: la, raw: ra }, Slot::Number { log: lb, raw: rb }) => {
                    if self.batch[k] && load.is_some_and(|l| l <= ra.min(rb)) {
                        0.0
                    } else {
                        la - lb
                    }
                }
                (Slot::Text(x), Slot::Text(y)) if x == y => 0.0,
                _ => TEXT_DISTANCE,
            };
            sum += d * d;
        }
        sum.sqrt()
    }

    /// Candidate `at`'s curve at `loads`. A candidate measured at some of its loads is its own
    /// nearest neighbour (distance 0, plus the extrapolation beyond its measured loads).
    pub fn predict(&self, at: usize, loads: &[f64], settings: &Settings) -> Prediction {
        let candidate = &self.candidates[at];
        if self.known.is_empty() {
            return Prediction {
                loads: loads.to_vec(),
                predicted: Vec::new(),
                bound: Vec::new(),
                hours: vec![candidate.gpus * settings.prior_point_seconds / 3600.0; loads.len()],
            };
        }
        let mut predicted = Vec::with_capacity(loads.len());
        let mut bound = Vec::with_capacity(loads.len());
        let mut hours = Vec::with_capacity(loads.len());
        // (distance, the neighbour's index, its reading, its noise); ties go to the earlier
        // neighbour, so a choice never depends on the sort's whims.
        let mut near: Vec<(f64, usize, [f64; 3], f64)> = Vec::with_capacity(self.known.len());
        let own: &[Observed] = self.known.iter().find(|(k, _)| *k == at).map_or(&[], |(_, points)| points);
        let by_distance = |a: &(f64, usize, [f64; 3], f64), b: &(f64, usize, [f64; 3], f64)| {
            a.0.total_cmp(&b.0).then(a.1.cmp(&b.1))
        };
        for &load in loads {
            near.clear();
            near.extend(self.known.iter().map(|&(k, points)| {
                let (values, noise, outside) = read(points, load);
                (self.distance(at, k, Some(load)) + outside * EXTRAPOLATION, k, values, noise)
            }));
            let take = NEIGHBOURS.min(near.len());
            near.select_nth_unstable_by(take - 1, by_distance);
            near.truncate(take);
            near.sort_by(by_distance);
            let weights: Vec<f64> = near.iter().map(|(d, _, _, _)| 1.0 / (d * d + 0.05)).collect();
            let total: f64 = weights.iter().sum();
            let mut mean = [0.0; 3];
            for ((_, _, v, _), w) in near.iter().zip(&weights) {
                for k in 0..3 {
                    mean[k] += w * v[k] / total;
                }
            }
            let mut spread = [0.0; 2];
            for ((_, _, v, _), w) in near.iter().zip(&weights) {
                for k in 0..2 {
                    spread[k] += w * (v[k] - mean[k]).powi(2) / total;
                }
            }
            let noise: f64 = near.iter().zip(&weights).map(|((_, _, _, n), w)| w * n / total).sum();
            let extra = DISTANCE_SPREAD * near[0].0 + noise;
            let s = [spread[0].sqrt() + extra, spread[1].sqrt() + extra];
            let (cap_x, cap_y) = monotone_caps(own, load);
            let b = (
                (mean[0] + settings.kappa * s[0]).exp().min(cap_x),
                (mean[1] + settings.kappa * s[1]).exp().min(cap_y),
            );
            predicted.push((mean[0].exp().min(b.0), mean[1].exp().min(b.1)));
            bound.push(b);
            hours.push(candidate.gpus * mean[2].exp() / 3600.0);
        }
        Prediction { loads: loads.to_vec(), predicted, bound, hours }
    }
}

/// What a job's own measured points say of it at another `load`, by the monotone structure of
/// a curve: tokens/s/user falls as the load rises, so no higher than at a lower measured load;
/// tokens/s/GPU rises (to a plateau), so no higher than at a higher measured load. Each cap
/// is the nearest such point plus its noise (at least [`MONOTONE_SLACK`]); infinite without
/// one.
fn monotone_caps(own: &[Observed], load: f64) -> (f64, f64) {
    let slack = |value: f64, half: f64| value + half.max(MONOTONE_SLACK * value);
    let x = own.iter().filter(|p| p.load < load).max_by(|a, b| a.load.total_cmp(&b.load));
    let y = own.iter().filter(|p| p.load > load).min_by(|a, b| a.load.total_cmp(&b.load));
    (x.map_or(f64::INFINITY, |p| slack(p.x, p.dx)), y.map_or(f64::INFINITY, |p| slack(p.y, p.dy)))
}

/// A measured curve read at `load`: (ln x, ln y, ln seconds), its relative noise, and how many
/// doublings `load` lies outside the measured loads (0 inside).
fn read(points: &[Observed], load: f64) -> ([f64; 3], f64, f64) {
    let value = |p: &Observed| [p.x.max(1e-9).ln(), p.y.max(1e-9).ln(), p.seconds.max(1e-3).ln()];
    let noise = |p: &Observed| (p.dx / p.x.max(1e-9)).max(p.dy / p.y.max(1e-9));
    let (first, last) = (&points[0], &points[points.len() - 1]);
    if load <= first.load {
        return (value(first), noise(first), (first.load / load.max(1e-9)).log2().max(0.0));
    }
    if load >= last.load {
        return (value(last), noise(last), (load / last.load.max(1e-9)).log2().max(0.0));
    }
    let i = points.iter().position(|p| p.load >= load).unwrap_or(points.len() - 1);
    let (a, b) = (&points[i - 1], &points[i]);
    let t = if b.load > a.load { (load.ln() - a.load.ln()) / (b.load.ln() - a.load.ln()) } else { 0.0 };
    let (va, vb) = (value(a), value(b));
    let mixed = [va[0] + t * (vb[0] - va[0]), va[1] + t * (vb[1] - va[1]), va[2] + t * (vb[2] - va[2])];
    (mixed, noise(a).max(noise(b)), 0.0)
}
