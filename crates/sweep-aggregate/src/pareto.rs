//! Pareto frontiers of tokens/s/GPU (y) against tokens/s/user (x), the best configuration at
//! tokens/s/user floors, and how the disaggregated frontier compares to the aggregated one.
//! Pure: rows in, indices and numbers out.

use std::collections::BTreeMap;

use crate::table::Row;
use crate::{GpuBasis, Options};

/// Indices of the points no other point dominates. `q` dominates `p` when it is at least as
/// good on both axes and better on one; identical points therefore both stay (one anchor's
/// script dropped both). Points with a non-finite coordinate are never on it. O(n log n).
pub fn frontier(points: &[(f64, f64)]) -> Vec<usize> {
    let mut order: Vec<usize> =
        (0..points.len()).filter(|&i| points[i].0.is_finite() && points[i].1.is_finite()).collect();
    // x descending, then y descending.
    order.sort_by(|&a, &b| points[b].0.total_cmp(&points[a].0).then(points[b].1.total_cmp(&points[a].1)));
    let mut keep = Vec::new();
    // Best y among points of strictly greater x.
    let mut best_right = f64::NEG_INFINITY;
    let mut i = 0;
    while i < order.len() {
        let x = points[order[i]].0;
        let mut j = i;
        while j < order.len() && points[order[j]].0 == x {
            j += 1;
        }
        let group_best = points[order[i]].1;
        for &k in &order[i..j] {
            let y = points[k].1;
            if y == group_best && y > best_right {
                keep.push(k);
            }
        }
        best_right = best_right.max(group_best);
        i = j;
    }
    keep.sort_unstable();
    keep
}

/// A prefix ratio as part of a key (`workload.prefix_ratio`). Ratios are finite and ≥ 0, and
/// the bit patterns of such floats order as their values do, so the bits give the key a total
/// order and a hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Share(u64);

impl Share {
    pub fn new(ratio: f64) -> Share {
        // -0.0 has the sign bit set: it would order after every other ratio.
        Share(if ratio == 0.0 { 0.0_f64 } else { ratio }.to_bits())
    }

    pub fn get(self) -> f64 {
        f64::from_bits(self.0)
    }
}

/// A group whose points share a frontier: serving mode, MTP on or off, ISL/OSL and the prefix
/// ratio (prompts that share more are a different workload).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Group {
    pub isl: Option<i64>,
    pub osl: Option<i64>,
    pub prefix: Option<Share>,
    pub mode: String,
    pub mtp: bool,
    /// The engine's version, when versions are merged (`--allow-mixed-versions`).
    pub version: Option<String>,
}

impl Group {
    pub fn of(row: &Row) -> Group {
        Group {
            isl: row.isl,
            osl: row.osl,
            prefix: row.prefix_ratio.map(Share::new),
            mode: row.config.mode.clone().unwrap_or_else(|| "unknown".to_owned()),
            mtp: row.config.decode_role().and_then(|r| r.mtp).unwrap_or(0) > 0,
            version: row.config.version_group.clone(),
        }
    }

    /// `disagg MTP` / `agg` …
    pub fn series(&self) -> String {
        let version = self.version.as_ref().map(|v| format!(" ({v})")).unwrap_or_default();
        format!("{}{}{version}", self.mode, if self.mtp { " MTP" } else { "" })
    }

    /// `ISL 1024 / OSL 128`, and `, prefix 0.5` with a prefix ratio.
    pub fn workload(&self) -> String {
        let n = |v: Option<i64>| v.map_or("?".to_owned(), |v| v.to_string());
        let prefix = self.prefix.map(|p| format!(", prefix {}", p.get())).unwrap_or_default();
        format!("ISL {} / OSL {}{prefix}", n(self.isl), n(self.osl))
    }
}

impl std::fmt::Display for Group {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}, {}", self.series(), self.workload())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Frontier {
    pub group: Group,
    /// Row indices, by tokens/s/user ascending.
    pub rows: Vec<usize>,
}

/// The best configuration of a group at a tokens/s/user floor.
#[derive(Debug, Clone, PartialEq)]
pub struct Best {
    pub min_tps_user: f64,
    pub group: Group,
    /// None when no point of the group reaches the floor.
    pub row: Option<usize>,
}

/// The disaggregated frontier over the aggregated one, at sampled tokens/s/user.
#[derive(Debug, Clone, PartialEq)]
pub struct Ratio {
    /// The workload and MTP setting both frontiers share.
    pub group: Group,
    /// (tokens/s/user, disagg tokens/s/GPU, agg tokens/s/GPU); empty when the frontiers'
    /// tokens/s/user ranges do not overlap.
    pub samples: Vec<(f64, f64, f64)>,
}

/// One value of a varied knob within a group: its own frontier, and its best point at each
/// tokens/s/user floor (`docs/aggregate.md`, "By knob").
#[derive(Debug, Clone, PartialEq)]
pub struct KnobValue {
    /// The knob's axis name (`gen.engine_args.max_num_seqs`).
    pub knob: String,
    pub group: Group,
    pub value: String,
    /// Row indices of this value's frontier, by tokens/s/user ascending.
    pub frontier: Vec<usize>,
    /// (floor, the best row reaching it), per `--min-tps-user` floor.
    pub best: Vec<(f64, Option<usize>)>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Analysis {
    pub basis: GpuBasis,
    pub frontiers: Vec<Frontier>,
    pub best: Vec<Best>,
    pub ratios: Vec<Ratio>,
    /// Per knob that takes several values among the measured points, per group, per value.
    pub knobs: Vec<KnobValue>,
}

impl Analysis {
    pub fn frontier_rows(&self) -> impl Iterator<Item = usize> + '_ {
        self.frontiers.iter().flat_map(|f| f.rows.iter().copied())
    }
}

/// The area a 2-D maximisation frontier dominates above `reference` (its hypervolume): by x
/// descending, each point that raises the best y so far adds `(x − r.x) × (y − best y)`.
/// Points at or below the reference add nothing.
pub fn hypervolume(points: &[(f64, f64)], reference: (f64, f64)) -> f64 {
    let mut by_x: Vec<(f64, f64)> =
        points.iter().copied().filter(|p| p.0.is_finite() && p.1.is_finite() && p.0 > reference.0).collect();
    by_x.sort_by(|a, b| b.0.total_cmp(&a.0));
    let (mut area, mut best) = (0.0, reference.1);
    for (x, y) in by_x {
        if y > best {
            area += (x - reference.0) * (y - best);
            best = y;
        }
    }
    area
}

/// The point's coordinates: (tokens/s/user, tokens/s/GPU on the chosen basis).
pub fn coordinates(row: &Row, basis: GpuBasis) -> Option<(f64, f64)> {
    (row.measured() && row.invalid.is_none() && row.repeat_of.is_none()).then_some(())?;
    // A point measured several times stands at its repetitions' means.
    if let Some(stats) = &row.repeats {
        let mean = |name| stats.spread.get(name).map(|s| s.mean);
        if let (Some(x), Some(y)) = (mean("tps_per_user"), mean(basis.column())) {
            return Some((x, y));
        }
    }
    Some((row.tps_per_user?, row.tps_per_gpu(basis)?))
}

/// The frontier of `members` (row index, (x, y)): row indices by tokens/s/user ascending.
fn frontier_of(members: &[(usize, (f64, f64))]) -> Vec<usize> {
    let xy: Vec<(f64, f64)> = members.iter().map(|m| m.1).collect();
    let mut on: Vec<usize> = frontier(&xy);
    on.sort_by(|&a, &b| xy[a].0.total_cmp(&xy[b].0).then(xy[b].1.total_cmp(&xy[a].1)));
    on.iter().map(|&k| members[k].0).collect()
}

/// The member with the most tokens/s/GPU at `floor` tokens/s/user or more.
fn best_at(members: &[(usize, (f64, f64))], floor: f64) -> Option<usize> {
    members
        .iter()
        .filter(|m| m.1 .0 >= floor)
        .max_by(|a, b| a.1 .1.total_cmp(&b.1 .1).then(a.1 .0.total_cmp(&b.1 .0)))
        .map(|m| m.0)
}

/// The highest tokens/s/GPU the frontier offers at `x` tokens/s/user or more.
fn step(frontier: &[(f64, f64)], x: f64) -> Option<f64> {
    frontier.iter().filter(|p| p.0 >= x).map(|p| p.1).reduce(f64::max)
}

pub fn analyse(rows: &[Row], options: &Options) -> Analysis {
    let basis = options.gpu_basis;
    // Per group: each plotted row's index and its (x, y).
    type Members = Vec<(usize, (f64, f64))>;
    let mut groups: BTreeMap<Group, Members> = BTreeMap::new();
    for (i, row) in rows.iter().enumerate() {
        if let Some(xy) = coordinates(row, basis) {
            groups.entry(Group::of(row)).or_default().push((i, xy));
        }
    }
    let mut analysis = Analysis { basis, ..Analysis::default() };
    for (group, members) in &groups {
        // The knobs that vary among the group's points, and their values.
        let mut knob_values: BTreeMap<&str, std::collections::BTreeSet<&str>> = BTreeMap::new();
        for &(i, _) in members {
            for (knob, value) in &rows[i].config.knobs {
                knob_values.entry(knob).or_default().insert(value);
            }
        }
        knob_values.retain(|_, values| values.len() > 1);
        let on = frontier_of(members);
        analysis.frontiers.push(Frontier { group: group.clone(), rows: on });
        for &floor in &options.min_tps_user {
            analysis.best.push(Best {
                min_tps_user: floor,
                group: group.clone(),
                row: best_at(members, floor),
            });
        }
        for (knob, values) in &knob_values {
            for value in values {
                let with: Members = members
                    .iter()
                    .filter(|(i, _)| rows[*i].config.knobs.get(*knob).map(String::as_str) == Some(*value))
                    .copied()
                    .collect();
                if with.is_empty() {
                    continue;
                }
                analysis.knobs.push(KnobValue {
                    knob: (*knob).to_owned(),
                    group: group.clone(),
                    value: (*value).to_owned(),
                    frontier: frontier_of(&with),
                    best: options.min_tps_user.iter().map(|&floor| (floor, best_at(&with, floor))).collect(),
                });
            }
        }
    }
    analysis.best.sort_by(|a, b| a.min_tps_user.total_cmp(&b.min_tps_user).then(a.group.cmp(&b.group)));
    // Disagg against agg, for each workload and MTP setting that has both.
    let points_of = |f: &Frontier| -> Vec<(f64, f64)> {
        f.rows.iter().filter_map(|&i| coordinates(&rows[i], basis)).collect()
    };
    for disagg in analysis.frontiers.iter().filter(|f| f.group.mode == "disagg") {
        let twin = Group { mode: "agg".to_owned(), ..disagg.group.clone() };
        let Some(agg) = analysis.frontiers.iter().find(|f| f.group == twin) else { continue };
        let (d, a) = (points_of(disagg), points_of(agg));
        let lo = min_x(&d).max(min_x(&a));
        let hi = max_x(&d).min(max_x(&a));
        let mut samples = Vec::new();
        if lo.is_finite() && hi.is_finite() && lo <= hi {
            const N: usize = 8;
            for k in 0..N {
                let x = if hi > lo { lo * (hi / lo).powf(k as f64 / (N - 1) as f64) } else { lo };
                if let (Some(dy), Some(ay)) = (step(&d, x), step(&a, x)) {
                    samples.push((x, dy, ay));
                }
                if hi <= lo {
                    break;
                }
            }
        }
        analysis
            .ratios
            .push(Ratio { group: Group { mode: "disagg/agg".to_owned(), ..disagg.group.clone() }, samples });
    }
    analysis
}

fn min_x(points: &[(f64, f64)]) -> f64 {
    points.iter().map(|p| p.0).fold(f64::INFINITY, f64::min)
}

fn max_x(points: &[(f64, f64)]) -> f64 {
    points.iter().map(|p| p.0).fold(f64::NEG_INFINITY, f64::max)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The O(n²) definition, to check the fast one against.
    fn brute(points: &[(f64, f64)]) -> Vec<usize> {
        (0..points.len())
            .filter(|&i| {
                let p = points[i];
                !points.iter().any(|q| q.0 >= p.0 && q.1 >= p.1 && (q.0 > p.0 || q.1 > p.1))
            })
            .collect()
    }

    #[test]
    fn identical_points_both_stay() {
        let pts = [(10.0, 100.0), (10.0, 100.0), (5.0, 50.0)];
        assert_eq!(frontier(&pts), vec![0, 1]);
    }

    #[test]
    fn ties_on_one_axis() {
        // Same x: only the higher y stays. Same y: only the higher x stays.
        let pts = [(10.0, 100.0), (10.0, 90.0), (20.0, 100.0), (30.0, 40.0), (25.0, 40.0)];
        assert_eq!(frontier(&pts), vec![2, 3]);
    }

    #[test]
    fn dominated_and_staircase() {
        let pts = [(1.0, 10.0), (2.0, 8.0), (3.0, 9.0), (4.0, 3.0), (0.5, 10.0), (4.0, 3.0), (3.5, 1.0)];
        // (2,8) is dominated by (3,9); (0.5,10) by (1,10); (3.5,1) by (4,3).
        assert_eq!(frontier(&pts), vec![0, 2, 3, 5]);
    }

    #[test]
    fn non_finite_points_are_skipped() {
        let pts = [(f64::NAN, 1.0), (1.0, f64::INFINITY), (1.0, 1.0)];
        assert_eq!(frontier(&pts), vec![2]);
    }

    #[test]
    fn matches_the_definition_on_random_sets() {
        // A small deterministic generator; values on a coarse grid so ties and duplicates occur.
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % 12) as f64
        };
        for n in 0..200 {
            let pts: Vec<(f64, f64)> = (0..n % 40).map(|_| (next(), next())).collect();
            assert_eq!(frontier(&pts), brute(&pts), "{pts:?}");
        }
    }

    #[test]
    fn hypervolume_of_a_staircase() {
        // Three steps above the origin: 40×10 + 20×(50−10) + 10×(100−50).
        let f = [(10.0, 100.0), (20.0, 50.0), (40.0, 10.0)];
        assert_eq!(hypervolume(&f, (0.0, 0.0)), 400.0 + 800.0 + 500.0);
        // Dominated points and order change nothing; points below the reference add nothing.
        let g = [(20.0, 50.0), (5.0, 5.0), (40.0, 10.0), (10.0, 100.0), (15.0, 40.0)];
        assert_eq!(hypervolume(&g, (0.0, 0.0)), 1700.0);
        assert_eq!(hypervolume(&f, (50.0, 0.0)), 0.0);
        assert_eq!(hypervolume(&[], (0.0, 0.0)), 0.0);
    }

    #[test]
    fn step_function() {
        let f = [(10.0, 100.0), (20.0, 50.0), (40.0, 10.0)];
        assert_eq!(step(&f, 5.0), Some(100.0));
        assert_eq!(step(&f, 10.0), Some(100.0));
        assert_eq!(step(&f, 15.0), Some(50.0));
        assert_eq!(step(&f, 40.0), Some(10.0));
        assert_eq!(step(&f, 41.0), None);
    }
}
