//! `sweep compare BASE CANDIDATE`: each point of the candidate against the same configuration and
//! workload in the base (matched by what was measured, not by id, so renamed jobs still match),
//! each headline metric's delta with its interval, and a verdict per point (`docs/compare.md`).
//!
//! - Both sides with repetitions: Welch's t interval of the difference of the means; the delta
//!   is significant when the interval excludes 0. The intervals are simultaneous at 95 % over
//!   every metric of every point compared (Bonferroni), so an A/A comparison of many points
//!   raises a false alarm at most 5 % of the time.
//! - Otherwise one measurement a side: the delta is significant when it is larger than the
//!   declared noise floor (`--noise-floor`, a share of the base).
//!
//! A metric regresses when its delta is significant, in the worse direction, and past its
//! threshold (`--threshold tps_per_gpu=-3%`: a drop of more than 3 %; by default any significant
//! worsening). A point is `regressed` when any metric is, `improved` when one is significantly
//! better and none regressed, `unchanged` otherwise, and `new` / `missing` when only one side has
//! it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::table::Row;
use crate::{Aggregate, GpuBasis};

/// The metrics compared, with the direction that is better.
pub const METRICS: [(&str, Better); 7] = [
    ("tps_per_gpu", Better::Higher),
    ("tps_per_user", Better::Higher),
    ("output_token_throughput", Better::Higher),
    ("ttft_p50_ms", Better::Lower),
    ("ttft_p99_ms", Better::Lower),
    ("itl_p50_ms", Better::Lower),
    ("itl_p99_ms", Better::Lower),
];

/// The noise floor when a side has one measurement: deltas within it are noise.
pub const DEFAULT_NOISE_FLOOR: f64 = 0.05;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Better {
    Higher,
    Lower,
}

/// A metric's regression threshold, as a signed share of the base: `-0.03` for a throughput that
/// may drop 3 %, `0.10` for a latency that may grow 10 %.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Threshold {
    pub metric: &'static str,
    pub share: f64,
}

/// Parses `tps_per_gpu=-3%,ttft_p99_ms=+10%`; an unknown metric is an error listing the valid
/// ones, and a threshold in the better direction is refused (it would flag improvements).
pub fn parse_thresholds(text: &str) -> Result<Vec<Threshold>, String> {
    let mut out = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, value) = part.split_once('=').ok_or_else(|| format!("`{part}` is not NAME=±N%"))?;
        let Some(&(metric, better)) = METRICS.iter().find(|(m, _)| *m == name.trim()) else {
            let valid: Vec<&str> = METRICS.iter().map(|(m, _)| *m).collect();
            return Err(format!(
                "`{}` is not a compared metric; valid names: {}",
                name.trim(),
                valid.join(", ")
            ));
        };
        let number = value.trim().trim_end_matches('%');
        let share = number
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .ok_or_else(|| format!("`{value}` is not a percentage such as -3% or +10%"))?
            / 100.0;
        let worse = match better {
            Better::Higher => share <= 0.0,
            Better::Lower => share >= 0.0,
        };
        if !worse {
            return Err(format!(
                "`{part}`: {metric} is better {}, so its threshold is a {} (e.g. {metric}={}5%)",
                if better == Better::Higher { "higher" } else { "lower" },
                if better == Better::Higher { "drop" } else { "rise" },
                if better == Better::Higher { "-" } else { "+" },
            ));
        }
        out.push(Threshold { metric, share });
    }
    Ok(out)
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub thresholds: Vec<Threshold>,
    pub noise_floor: f64,
    pub basis: GpuBasis,
    /// Tokens/s/user floors at which the frontiers' best tokens/s/GPU are set side by side;
    /// five spread over the frontiers' range when empty.
    pub min_tps_user: Vec<f64>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            thresholds: Vec::new(),
            noise_floor: DEFAULT_NOISE_FLOOR,
            basis: GpuBasis::Working,
            min_tps_user: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Regressed,
    Improved,
    Unchanged,
    New,
    Missing,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Regressed => "regressed",
            Verdict::Improved => "improved",
            Verdict::Unchanged => "unchanged",
            Verdict::New => "new",
            Verdict::Missing => "missing",
        }
    }
}

/// One metric of one matched point.
#[derive(Debug, Clone, Serialize)]
pub struct MetricDelta {
    pub metric: &'static str,
    pub base: f64,
    pub candidate: f64,
    /// (candidate − base) / base.
    pub delta: f64,
    /// The interval of `delta` (Welch's, simultaneous 95 % over the comparison), or `delta ±
    /// noise floor` with one measurement.
    pub low: f64,
    pub high: f64,
    /// `welch` or `noise floor`.
    pub test: &'static str,
    pub significant: bool,
    pub regressed: bool,
    pub improved: bool,
}

/// One point of either side.
#[derive(Debug, Clone, Serialize)]
pub struct PointComparison {
    /// The configuration and workload it was matched by.
    pub key: String,
    pub base_job: Option<String>,
    pub candidate_job: Option<String>,
    pub verdict: Verdict,
    pub metrics: Vec<MetricDelta>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub points: Vec<PointComparison>,
    pub counts: BTreeMap<&'static str, usize>,
    /// Per workload: both frontiers and how they compare.
    pub frontiers: Vec<FrontierComparison>,
}

/// Both sides' frontiers of one workload.
#[derive(Debug, Clone, Serialize)]
pub struct FrontierComparison {
    /// `ISL 1024 / OSL 128`.
    pub workload: String,
    /// The area each frontier dominates above the origin (tokens/s/user × tokens/s/GPU).
    pub base_hypervolume: f64,
    pub candidate_hypervolume: f64,
    /// Candidate's hypervolume over the base's.
    pub ratio: Option<f64>,
    /// The best tokens/s/GPU each side offers at each tokens/s/user floor.
    pub floors: Vec<Floor>,
    /// The frontiers' points, (tokens/s/user, tokens/s/GPU), by tokens/s/user ascending.
    pub base: Vec<(f64, f64)>,
    pub candidate: Vec<(f64, f64)>,
    /// Every valid point of each side, for the chart.
    #[serde(skip)]
    pub base_points: Vec<(f64, f64)>,
    #[serde(skip)]
    pub candidate_points: Vec<(f64, f64)>,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Floor {
    pub min_tps_user: f64,
    pub base: Option<f64>,
    pub candidate: Option<f64>,
}

impl Comparison {
    pub fn regressed(&self) -> bool {
        self.points.iter().any(|p| p.verdict == Verdict::Regressed)
    }
}

/// What a point is matched by: its configuration (mode, roles, knobs but the installation) and
/// its workload.
fn key(row: &Row) -> String {
    let knobs: Vec<String> = row
        .config
        .knobs
        .iter()
        .filter(|(k, _)| !crate::discover::INSTALLATION_KNOBS.contains(&k.as_str()))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let n = |v: Option<i64>| v.map_or("?".to_owned(), |v| v.to_string());
    let mut key = format!(
        "{} {} | ISL {} OSL {} conc {}",
        row.config.mode.as_deref().unwrap_or("?"),
        row.roles_label(),
        n(row.isl),
        n(row.osl),
        n(row.effective_concurrency.or(row.concurrency))
    );
    if let Some(rate) = row.request_rate {
        key.push_str(&format!(" rate {rate}"));
    }
    if let Some(prefix) = row.prefix_ratio {
        key.push_str(&format!(" prefix {prefix}"));
    }
    let batch: Vec<String> =
        row.config.roles.iter().map(|r| format!("{}:b{}m{}", r.role, n(r.batch), n(r.mtp))).collect();
    key.push_str(&format!(" | {}", batch.join(",")));
    if !knobs.is_empty() {
        key.push_str(&format!(" | {}", knobs.join(",")));
    }
    key
}

/// The version of [`Results`]' written form (`results.json`, the history's points).
pub const RESULTS_FORMAT: u32 = 1;

/// What a comparison needs of a sweep, and what the history keeps of it: each valid point's key
/// and figures. `sweep aggregate` writes it as `results.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Results {
    pub format: u32,
    pub points: Vec<Point>,
}

/// One valid, measured point: the row that speaks for its repetitions, or its one measurement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// The configuration and workload it is matched by.
    pub key: String,
    pub job: String,
    pub model: Option<String>,
    pub engine: Option<String>,
    pub isl: Option<i64>,
    pub osl: Option<i64>,
    /// Per results-table column ([`crate::repeats::MEASURED`]).
    pub figures: BTreeMap<String, Sample>,
}

/// A figure: the mean of `n` repetitions with their standard deviation, or one measurement
/// (`n` = 1, no deviation).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub mean: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub std: Option<f64>,
    pub n: u32,
}

impl Results {
    /// The points that may be compared: measured, valid, and each point once (the row that
    /// speaks for its repetitions).
    pub fn of(agg: &Aggregate) -> Results {
        let points = agg
            .rows
            .iter()
            .filter(|r| r.measured() && r.invalid.is_none() && r.repeat_of.is_none())
            .map(|row| {
                let figures = crate::repeats::MEASURED
                    .iter()
                    .filter_map(|&name| {
                        let sample = match row.repeats.as_ref().and_then(|s| Some((s.n, s.spread.get(name)?)))
                        {
                            Some((n, s)) => Sample { mean: s.mean, std: Some(s.std), n: n as u32 },
                            None => Sample { mean: row.figure(name)?, std: None, n: 1 },
                        };
                        Some((name.to_owned(), sample))
                    })
                    .collect();
                Point {
                    key: key(row),
                    job: row.config.job.clone(),
                    model: row.config.model.clone(),
                    engine: row.config.engine.clone(),
                    isl: row.isl,
                    osl: row.osl,
                    figures,
                }
            })
            .collect();
        Results { format: RESULTS_FORMAT, points }
    }

    /// The workloads (ISL, OSL) its points measured: a frontier is drawn for each.
    fn workloads(&self) -> std::collections::BTreeSet<(Option<i64>, Option<i64>)> {
        self.points.iter().map(|p| (p.isl, p.osl)).collect()
    }
}

/// A side's value of `metric` for a point: the repetitions' mean with their deviation, or the
/// one measurement.
fn sample(point: &Point, metric: &str, basis: GpuBasis) -> Option<Sample> {
    let name = if metric == "tps_per_gpu" { basis.column() } else { metric };
    point.figures.get(name).copied()
}

/// One metric of a matched point before its interval: the relative delta, and (with
/// repetitions on both sides) the standard error of the difference and Welch's degrees of
/// freedom, relative to the base.
struct Raw {
    metric: &'static str,
    better: Better,
    base: f64,
    candidate: f64,
    delta: f64,
    welch: Option<(f64, f64)>,
}

/// Welch's standard error of the difference of two means and its degrees of freedom; `None`
/// unless both sides have repetitions.
fn welch(b: Sample, c: Sample) -> Option<(f64, f64)> {
    let (bs, cs) = (b.std?, c.std?);
    let (bn, cn) = (f64::from(b.n), f64::from(c.n));
    if bn < 2.0 || cn < 2.0 {
        return None;
    }
    let (vb, vc) = (bs * bs / bn, cs * cs / cn);
    let se = (vb + vc).sqrt();
    let df = if se > 0.0 {
        (vb + vc).powi(2) / (vb * vb / (bn - 1.0) + vc * vc / (cn - 1.0))
    } else {
        bn + cn - 2.0
    };
    Some((se, df))
}

fn by_key(results: &Results) -> BTreeMap<String, &Point> {
    results.points.iter().map(|p| (p.key.clone(), p)).collect()
}

pub fn compare(base: &Results, candidate: &Results, settings: &Settings) -> Comparison {
    let (b, c) = (by_key(base), by_key(candidate));
    let mut matched: Vec<(&String, &Point, &Point, Vec<Raw>)> = Vec::new();
    for (key, bp) in &b {
        let Some(cp) = c.get(key) else { continue };
        let mut raws = Vec::new();
        for (metric, better) in METRICS {
            let (Some(bs), Some(cs)) =
                (sample(bp, metric, settings.basis), sample(cp, metric, settings.basis))
            else {
                continue;
            };
            if bs.mean == 0.0 {
                continue;
            }
            let welch = welch(bs, cs).map(|(se, df)| (se / bs.mean.abs(), df));
            raws.push(Raw {
                metric,
                better,
                base: bs.mean,
                candidate: cs.mean,
                delta: (cs.mean - bs.mean) / bs.mean,
                welch,
            });
        }
        matched.push((key, bp, cp, raws));
    }
    // Every delta tested at once: the family's chance of a false alarm is held at 5 % by
    // giving each of the m tests 5 % / m (Bonferroni), so one comparison of many points and
    // metrics does not cry wolf.
    let tests = matched.iter().flat_map(|m| &m.3).filter(|r| r.welch.is_some()).count().max(1);
    let t = |df: f64| crate::repeats::t_quantile(1.0 - 0.025 / tests as f64, df);
    let mut out = Vec::new();
    for (key, bp, cp, raws) in matched {
        let metrics: Vec<MetricDelta> = raws
            .into_iter()
            .map(|r| {
                let (low, high, test) = match r.welch {
                    Some((se, df)) => (r.delta - t(df) * se, r.delta + t(df) * se, "welch"),
                    None => (r.delta - settings.noise_floor, r.delta + settings.noise_floor, "noise floor"),
                };
                let significant = low > 0.0 || high < 0.0;
                let worse = match r.better {
                    Better::Higher => r.delta < 0.0,
                    Better::Lower => r.delta > 0.0,
                };
                let threshold =
                    settings.thresholds.iter().find(|t| t.metric == r.metric).map_or(0.0, |t| t.share);
                let past = match r.better {
                    Better::Higher => r.delta < threshold,
                    Better::Lower => r.delta > threshold,
                };
                MetricDelta {
                    metric: r.metric,
                    base: r.base,
                    candidate: r.candidate,
                    delta: r.delta,
                    low,
                    high,
                    test,
                    significant,
                    regressed: significant && worse && past,
                    improved: significant && !worse,
                }
            })
            .collect();
        let verdict = if metrics.iter().any(|m| m.regressed) {
            Verdict::Regressed
        } else if metrics.iter().any(|m| m.improved) {
            Verdict::Improved
        } else {
            Verdict::Unchanged
        };
        out.push(PointComparison {
            key: key.clone(),
            base_job: Some(bp.job.clone()),
            candidate_job: Some(cp.job.clone()),
            verdict,
            metrics,
        });
    }
    for (key, bp) in b.iter().filter(|(k, _)| !c.contains_key(*k)) {
        out.push(PointComparison {
            key: key.clone(),
            base_job: Some(bp.job.clone()),
            candidate_job: None,
            verdict: Verdict::Missing,
            metrics: Vec::new(),
        });
    }
    for (key, cp) in c.iter().filter(|(k, _)| !b.contains_key(*k)) {
        out.push(PointComparison {
            key: key.clone(),
            base_job: None,
            candidate_job: Some(cp.job.clone()),
            verdict: Verdict::New,
            metrics: Vec::new(),
        });
    }
    out.sort_by(|a, b| (a.verdict, &a.key).cmp(&(b.verdict, &b.key)));
    let mut counts = BTreeMap::new();
    for p in &out {
        *counts.entry(p.verdict.as_str()).or_insert(0) += 1;
    }
    let frontiers = frontiers(base, candidate, settings);
    Comparison { points: out, counts, frontiers }
}

/// Points as (tokens/s/user, tokens/s/GPU).
type Coordinates = Vec<(f64, f64)>;

/// A side's frontier for one workload, by tokens/s/user ascending, and every valid point.
fn frontier_of(
    results: &Results,
    workload: (Option<i64>, Option<i64>),
    basis: GpuBasis,
) -> (Coordinates, Coordinates) {
    let all: Vec<(f64, f64)> = results
        .points
        .iter()
        .filter(|p| (p.isl, p.osl) == workload)
        .filter_map(|p| Some((sample(p, "tps_per_user", basis)?.mean, sample(p, "tps_per_gpu", basis)?.mean)))
        .collect();
    let mut on: Vec<(f64, f64)> = crate::pareto::frontier(&all).into_iter().map(|i| all[i]).collect();
    on.sort_by(|a, b| a.0.total_cmp(&b.0).then(b.1.total_cmp(&a.1)));
    (on, all)
}

/// Both sides' frontiers of each workload either has: hypervolumes against the origin, and the
/// best tokens/s/GPU at each tokens/s/user floor.
fn frontiers(base: &Results, candidate: &Results, settings: &Settings) -> Vec<FrontierComparison> {
    let mut workloads = base.workloads();
    workloads.extend(candidate.workloads());
    workloads
        .into_iter()
        .map(|w| {
            let (b, b_all) = frontier_of(base, w, settings.basis);
            let (c, c_all) = frontier_of(candidate, w, settings.basis);
            let (bh, ch) =
                (crate::pareto::hypervolume(&b, (0.0, 0.0)), crate::pareto::hypervolume(&c, (0.0, 0.0)));
            let floors = if settings.min_tps_user.is_empty() {
                auto_floors(&b, &c)
            } else {
                settings.min_tps_user.clone()
            };
            let best = |f: &[(f64, f64)], floor: f64| {
                f.iter().filter(|p| p.0 >= floor).map(|p| p.1).reduce(f64::max)
            };
            let n = |v: Option<i64>| v.map_or("?".to_owned(), |v| v.to_string());
            FrontierComparison {
                workload: format!("ISL {} / OSL {}", n(w.0), n(w.1)),
                base_hypervolume: bh,
                candidate_hypervolume: ch,
                ratio: (bh > 0.0).then(|| ch / bh),
                floors: floors
                    .into_iter()
                    .map(|floor| Floor {
                        min_tps_user: floor,
                        base: best(&b, floor),
                        candidate: best(&c, floor),
                    })
                    .collect(),
                base: b,
                candidate: c,
                base_points: b_all,
                candidate_points: c_all,
            }
        })
        .collect()
}

/// Five tokens/s/user floors spread evenly (geometrically) over both frontiers' range.
fn auto_floors(b: &[(f64, f64)], c: &[(f64, f64)]) -> Vec<f64> {
    let xs = || b.iter().chain(c).map(|p| p.0).filter(|x| *x > 0.0);
    let (lo, hi) = (xs().fold(f64::INFINITY, f64::min), xs().fold(f64::NEG_INFINITY, f64::max));
    if !lo.is_finite() {
        return Vec::new();
    }
    if hi <= lo {
        return vec![lo];
    }
    (0..5).map(|k| lo * (hi / lo).powf(f64::from(k) / 4.0)).collect()
}

/// Why two result sets cannot be compared: a different model, engine or workload, named,
/// unless allowed.
pub fn incomparable(base: &Results, candidate: &Results, allow: &[String]) -> Option<String> {
    type Of = dyn Fn(&Point) -> Option<String>;
    let set = |r: &Results, f: &Of| -> std::collections::BTreeSet<String> {
        r.points.iter().filter_map(f).collect()
    };
    let checks: [(&str, &Of); 3] = [
        ("model", &|p| p.model.clone()),
        ("engine", &|p| p.engine.clone()),
        ("workload", &|p| Some(format!("ISL {:?} / OSL {:?}", p.isl, p.osl))),
    ];
    for (what, f) in checks {
        if allow.iter().any(|a| a == what) {
            continue;
        }
        let (b, c) = (set(base, f), set(candidate, f));
        if !b.is_empty() && !c.is_empty() && b.is_disjoint(&c) {
            let list =
                |s: &std::collections::BTreeSet<String>| s.iter().cloned().collect::<Vec<_>>().join(", ");
            return Some(format!("the {what} differs: base {}, candidate {}", list(&b), list(&c)));
        }
    }
    None
}

fn percent(v: f64) -> String {
    format!("{:+.1}%", v * 100.0)
}

/// One line per point: its verdict, key, and each metric's delta with its interval.
pub fn table(comparison: &Comparison) -> String {
    let mut s = String::from("| verdict | point | base job | candidate job | metric deltas (95 % interval) |\n| --- | --- | --- | --- | --- |\n");
    for p in &comparison.points {
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            p.verdict.as_str(),
            p.key.replace('|', "/"),
            p.base_job.as_deref().unwrap_or("–"),
            p.candidate_job.as_deref().unwrap_or("–"),
            deltas(p)
        ));
    }
    s
}

/// Per workload: each frontier's hypervolume and, at each tokens/s/user floor, the best
/// tokens/s/GPU on either side.
pub fn frontier_table(comparison: &Comparison) -> String {
    let mut s = String::new();
    for f in &comparison.frontiers {
        s.push_str(&format!(
            "{}: hypervolume base {}, candidate {}{}\n",
            f.workload,
            number(f.base_hypervolume),
            number(f.candidate_hypervolume),
            f.ratio.map_or(String::new(), |r| format!(" (×{r:.3})"))
        ));
        if !f.floors.is_empty() {
            s.push_str("| tokens/s/user ≥ | base best tokens/s/GPU | candidate | change |\n| --- | --- | --- | --- |\n");
            for row in floor_rows(f) {
                s.push_str(&format!("| {} |\n", row.join(" | ")));
            }
        }
    }
    s
}

fn number(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

fn floor_rows(f: &FrontierComparison) -> Vec<[String; 4]> {
    let cell = |v: Option<f64>| v.map_or("–".to_owned(), number);
    f.floors
        .iter()
        .map(|floor| {
            let change = match (floor.base, floor.candidate) {
                (Some(b), Some(c)) if b > 0.0 => percent((c - b) / b),
                _ => "–".to_owned(),
            };
            [number(floor.min_tps_user), cell(floor.base), cell(floor.candidate), change]
        })
        .collect()
}

fn deltas(p: &PointComparison) -> String {
    p.metrics
        .iter()
        .map(|m| {
            let mark = if m.regressed {
                " ✗"
            } else if m.improved {
                " ✓"
            } else {
                ""
            };
            format!("{} {} [{}, {}]{mark}", m.metric, percent(m.delta), percent(m.low), percent(m.high))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// `compare.html`: each workload's two frontiers on one chart (all points faint, the frontier
/// joined), the hypervolumes and floors, and every point's verdict.
pub fn html(comparison: &Comparison, base: &str, candidate: &str) -> Result<String, String> {
    #[derive(Serialize)]
    struct FrontierView {
        workload: String,
        base_hypervolume: String,
        candidate_hypervolume: String,
        ratio: Option<String>,
        floors: Vec<[String; 4]>,
        svg: String,
    }
    #[derive(Serialize)]
    struct PointView<'a> {
        verdict: &'static str,
        key: &'a str,
        base_job: &'a str,
        candidate_job: &'a str,
        deltas: String,
    }
    #[derive(Serialize)]
    struct Page<'a> {
        base: &'a str,
        candidate: &'a str,
        points: usize,
        counts: String,
        frontiers: Vec<FrontierView>,
        rows: Vec<PointView<'a>>,
    }
    let mut frontiers = Vec::new();
    for (k, f) in comparison.frontiers.iter().enumerate() {
        let series = |label: &str, color, scatter: &[(f64, f64)], line: &[(f64, f64)]| crate::plot::Series {
            label: label.to_owned(),
            color,
            scatter: scatter.to_vec(),
            line: line.to_vec(),
            curve: Vec::new(),
            intervals: Vec::new(),
        };
        let chart = crate::plot::Chart {
            name: format!("compare_{k}"),
            title: format!("Frontiers, {}", f.workload),
            x_label: "output tokens/s per user".to_owned(),
            y_label: "output tokens/s per GPU".to_owned(),
            x_axis: crate::plot::XAxis::Linear,
            series: vec![
                series("base", 0, &f.base_points, &f.base),
                series("candidate", 1, &f.candidate_points, &f.candidate),
            ],
        };
        let svg = crate::plot::svg(&chart)?;
        frontiers.push(FrontierView {
            workload: f.workload.clone(),
            base_hypervolume: number(f.base_hypervolume),
            candidate_hypervolume: number(f.candidate_hypervolume),
            ratio: f.ratio.map(|r| format!("×{r:.3}")),
            floors: floor_rows(f),
            svg: crate::page::strip_xml_header(&svg).to_owned(),
        });
    }
    let counts: Vec<String> = comparison.counts.iter().map(|(k, n)| format!("{n} {k}")).collect();
    let page = Page {
        base,
        candidate,
        points: comparison.points.len(),
        counts: counts.join(", "),
        frontiers,
        rows: comparison
            .points
            .iter()
            .map(|p| PointView {
                verdict: p.verdict.as_str(),
                key: &p.key,
                base_job: p.base_job.as_deref().unwrap_or("–"),
                candidate_job: p.candidate_job.as_deref().unwrap_or("–"),
                deltas: deltas(p),
            })
            .collect(),
    };
    Ok(crate::page::render("compare.html", include_str!("../templates/compare.html.j2"), &page))
}

/// JUnit XML: a test case per point and metric (a regression is a failure; a point only one
/// side has is a skipped case), which Jenkins and GitLab read.
pub fn junit(comparison: &Comparison) -> String {
    junit_document(&[Suite::of("sweep compare", comparison)])
}

/// One `<testsuite>` of a JUnit document: a comparison's cases, or a case that could not run.
#[derive(Debug, Clone)]
pub struct Suite {
    name: String,
    tests: usize,
    failures: usize,
    errors: usize,
    skipped: usize,
    cases: String,
}

impl Suite {
    /// A test case per point and metric of `comparison`.
    pub fn of(name: &str, comparison: &Comparison) -> Suite {
        let mut suite = Suite {
            name: name.to_owned(),
            tests: 0,
            failures: 0,
            errors: 0,
            skipped: 0,
            cases: String::new(),
        };
        for p in &comparison.points {
            let class = crate::page::escape(&p.key);
            if p.metrics.is_empty() {
                suite.tests += 1;
                suite.skipped += 1;
                suite.cases.push_str(&format!(
                    "    <testcase classname=\"{class}\" name=\"{}\"><skipped message=\"{}\"/></testcase>\n",
                    p.verdict.as_str(),
                    crate::page::escape(&format!("the point is {} in the candidate", p.verdict.as_str()))
                ));
                continue;
            }
            for m in &p.metrics {
                suite.tests += 1;
                let detail = format!(
                    "{}: base {:.4}, candidate {:.4}, delta {} (95 % interval {} to {}, {})",
                    m.metric,
                    m.base,
                    m.candidate,
                    percent(m.delta),
                    percent(m.low),
                    percent(m.high),
                    m.test
                );
                if m.regressed {
                    suite.failures += 1;
                    suite.cases.push_str(&format!(
                        "    <testcase classname=\"{class}\" name=\"{}\"><failure message=\"regressed\">{}</failure></testcase>\n",
                        m.metric,
                        crate::page::escape(&detail)
                    ));
                } else {
                    suite.cases.push_str(&format!(
                        "    <testcase classname=\"{class}\" name=\"{}\"><system-out>{}</system-out></testcase>\n",
                        m.metric,
                        crate::page::escape(&detail)
                    ));
                }
            }
        }
        suite
    }

    /// One case that errored: a sweep that could not run or be read.
    pub fn error(name: &str, message: &str) -> Suite {
        Suite {
            name: name.to_owned(),
            tests: 1,
            failures: 0,
            errors: 1,
            skipped: 0,
            cases: format!(
                "    <testcase classname=\"{0}\" name=\"run\"><error message=\"{1}\">{1}</error></testcase>\n",
                crate::page::escape(name),
                crate::page::escape(message)
            ),
        }
    }

    /// One skipped case: nothing to compare against (no baseline yet).
    pub fn skipped(name: &str, message: &str) -> Suite {
        Suite {
            name: name.to_owned(),
            tests: 1,
            failures: 0,
            errors: 0,
            skipped: 1,
            cases: format!(
                "    <testcase classname=\"{}\" name=\"baseline\"><skipped message=\"{}\"/></testcase>\n",
                crate::page::escape(name),
                crate::page::escape(message)
            ),
        }
    }
}

/// A JUnit document of `suites`.
pub fn junit_document(suites: &[Suite]) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n");
    for s in suites {
        out.push_str(&format!(
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" skipped=\"{}\" errors=\"{}\">\n{}  </testsuite>\n",
            crate::page::escape(&s.name),
            s.tests,
            s.failures,
            s.skipped,
            s.errors,
            s.cases
        ));
    }
    out.push_str("</testsuites>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A point measured `n` times with this mean tokens/s/user and tokens/s/GPU.
    fn point(key: &str, user: f64, gpu: f64, n: u32) -> Point {
        let sample = |mean: f64| Sample { mean, std: (n > 1).then_some(mean * 0.01), n };
        let figures =
            [("tps_per_user", user), ("tps_per_gpu_working", gpu), ("output_token_throughput", gpu)]
                .into_iter()
                .map(|(name, v)| (name.to_owned(), sample(v)))
                .collect();
        Point {
            key: key.to_owned(),
            job: key.to_owned(),
            model: Some("m".to_owned()),
            engine: Some("e".to_owned()),
            isl: Some(128),
            osl: Some(16),
            figures,
        }
    }

    #[test]
    fn frontiers_are_compared_by_hypervolume_and_at_floors() {
        let base = Results {
            format: RESULTS_FORMAT,
            points: vec![point("a", 10.0, 100.0, 5), point("b", 20.0, 50.0, 5), point("c", 5.0, 40.0, 5)],
        };
        // The candidate loses the fast end: `b` is half as good; `d` is new.
        let candidate = Results {
            format: RESULTS_FORMAT,
            points: vec![point("a", 10.0, 100.0, 5), point("b", 20.0, 25.0, 5), point("d", 40.0, 5.0, 5)],
        };
        let settings = Settings { min_tps_user: vec![5.0, 15.0, 30.0, 50.0], ..Settings::default() };
        let c = compare(&base, &candidate, &settings);
        let [f] = &c.frontiers[..] else { panic!("one workload: {:?}", c.frontiers) };
        assert_eq!(f.workload, "ISL 128 / OSL 16");
        // Base: 20×50 + 10×(100−50) = 1500 (c is dominated). Candidate: 40×5 + 20×20 + 10×75.
        assert_eq!((f.base_hypervolume, f.candidate_hypervolume), (1500.0, 1350.0));
        assert_eq!(f.ratio, Some(0.9));
        assert_eq!(f.base, [(10.0, 100.0), (20.0, 50.0)]);
        let floors: Vec<(f64, Option<f64>, Option<f64>)> =
            f.floors.iter().map(|x| (x.min_tps_user, x.base, x.candidate)).collect();
        assert_eq!(
            floors,
            [
                (5.0, Some(100.0), Some(100.0)),
                (15.0, Some(50.0), Some(25.0)),
                (30.0, None, Some(5.0)),
                (50.0, None, None)
            ]
        );
        assert_eq!(
            (c.counts["regressed"], c.counts["unchanged"], c.counts["new"], c.counts["missing"]),
            (1, 1, 1, 1)
        );
        // What the history and results.json keep reads back the same.
        let text = serde_json::to_string(&base).expect("json");
        assert_eq!(serde_json::from_str::<Results>(&text).expect("reads"), base);
    }

    #[test]
    fn thresholds_parse_and_refuse_what_they_should() {
        let t = parse_thresholds("tps_per_gpu=-3%, ttft_p99_ms=+10%").expect("valid");
        assert_eq!(
            t,
            [
                Threshold { metric: "tps_per_gpu", share: -0.03 },
                Threshold { metric: "ttft_p99_ms", share: 0.10 }
            ]
        );
        let unknown = parse_thresholds("tps=-3%").expect_err("unknown");
        assert!(unknown.contains("valid names: tps_per_gpu, tps_per_user"), "{unknown}");
        assert!(parse_thresholds("tps_per_gpu=+3%").expect_err("the better way").contains("is a drop"));
        assert!(parse_thresholds("itl_p50_ms=fast").is_err());
    }
}
