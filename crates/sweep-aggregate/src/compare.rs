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

use serde::Serialize;

use crate::repeats::Spread;
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
}

impl Default for Settings {
    fn default() -> Self {
        Settings { thresholds: Vec::new(), noise_floor: DEFAULT_NOISE_FLOOR, basis: GpuBasis::Working }
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

/// A side's value of `metric` for the row that speaks for a point: the repetitions' spread, or
/// the one measurement.
fn sample(row: &Row, metric: &str, basis: GpuBasis) -> Option<(f64, Option<Spread>)> {
    let name = if metric == "tps_per_gpu" { basis.column() } else { metric };
    let spread = row.repeats.as_ref().and_then(|s| s.spread.get(name)).copied();
    match spread {
        Some(s) => Some((s.mean, Some(s))),
        None => row.figure(name).map(|v| (v, None)),
    }
}

/// The rows that speak for points: measured, valid, and not a later repetition.
fn points(agg: &Aggregate) -> BTreeMap<String, &Row> {
    agg.rows
        .iter()
        .filter(|r| r.measured() && r.invalid.is_none() && r.repeat_of.is_none())
        .map(|r| (key(r), r))
        .collect()
}

fn count_of(spread: &Option<Spread>, n: Option<usize>) -> Option<(Spread, f64)> {
    Some((spread.as_ref().copied()?, n? as f64))
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

pub fn compare(base: &Aggregate, candidate: &Aggregate, settings: &Settings) -> Comparison {
    let (b, c) = (points(base), points(candidate));
    let mut matched: Vec<(&String, &Row, &Row, Vec<Raw>)> = Vec::new();
    for (key, brow) in &b {
        let Some(crow) = c.get(key) else { continue };
        let mut raws = Vec::new();
        for (metric, better) in METRICS {
            let (Some((bv, bs)), Some((cv, cs))) =
                (sample(brow, metric, settings.basis), sample(crow, metric, settings.basis))
            else {
                continue;
            };
            if bv == 0.0 {
                continue;
            }
            let bn = brow.repeats.as_ref().map(|s| s.n);
            let cn = crow.repeats.as_ref().map(|s| s.n);
            let welch = match (count_of(&bs, bn), count_of(&cs, cn)) {
                (Some((bs, bn)), Some((cs, cn))) => {
                    let (vb, vc) = (bs.std * bs.std / bn, cs.std * cs.std / cn);
                    let se = (vb + vc).sqrt();
                    let df = if se > 0.0 {
                        (vb + vc).powi(2) / (vb * vb / (bn - 1.0) + vc * vc / (cn - 1.0))
                    } else {
                        bn + cn - 2.0
                    };
                    Some((se / bv.abs(), df))
                }
                _ => None,
            };
            raws.push(Raw { metric, better, base: bv, candidate: cv, delta: (cv - bv) / bv, welch });
        }
        matched.push((key, brow, crow, raws));
    }
    // Every delta tested at once: the family's chance of a false alarm is held at 5 % by
    // giving each of the m tests 5 % / m (Bonferroni), so one comparison of many points and
    // metrics does not cry wolf.
    let tests = matched.iter().flat_map(|m| &m.3).filter(|r| r.welch.is_some()).count().max(1);
    let t = |df: f64| crate::repeats::t_quantile(1.0 - 0.025 / tests as f64, df);
    let mut out = Vec::new();
    for (key, brow, crow, raws) in matched {
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
            base_job: Some(brow.config.job.clone()),
            candidate_job: Some(crow.config.job.clone()),
            verdict,
            metrics,
        });
    }
    for (key, brow) in b.iter().filter(|(k, _)| !c.contains_key(*k)) {
        out.push(PointComparison {
            key: key.clone(),
            base_job: Some(brow.config.job.clone()),
            candidate_job: None,
            verdict: Verdict::Missing,
            metrics: Vec::new(),
        });
    }
    for (key, crow) in c.iter().filter(|(k, _)| !b.contains_key(*k)) {
        out.push(PointComparison {
            key: key.clone(),
            base_job: None,
            candidate_job: Some(crow.config.job.clone()),
            verdict: Verdict::New,
            metrics: Vec::new(),
        });
    }
    out.sort_by(|a, b| (a.verdict, &a.key).cmp(&(b.verdict, &b.key)));
    let mut counts = BTreeMap::new();
    for p in &out {
        *counts.entry(p.verdict.as_str()).or_insert(0) += 1;
    }
    Comparison { points: out, counts }
}

/// Why two result sets cannot be compared: a different model or engine, named, unless allowed.
pub fn incomparable(base: &Aggregate, candidate: &Aggregate, allow: &[String]) -> Option<String> {
    let set = |agg: &Aggregate, f: &dyn Fn(&Row) -> Option<String>| -> std::collections::BTreeSet<String> {
        agg.rows.iter().filter_map(f).collect()
    };
    for (what, f) in [
        ("model", &(|r: &Row| r.config.model.clone()) as &dyn Fn(&Row) -> Option<String>),
        ("engine", &|r: &Row| r.config.engine.clone()),
        ("workload", &|r: &Row| Some(format!("ISL {:?} / OSL {:?}", r.isl, r.osl))),
    ] {
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
        let deltas: Vec<String> = p
            .metrics
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
            .collect();
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            p.verdict.as_str(),
            p.key.replace('|', "/"),
            p.base_job.as_deref().unwrap_or("–"),
            p.candidate_job.as_deref().unwrap_or("–"),
            deltas.join("; ")
        ));
    }
    s
}

/// JUnit XML: a test case per point and metric (a regression is a failure; a point only one
/// side has is a skipped case), which Jenkins and GitLab read.
pub fn junit(comparison: &Comparison) -> String {
    let escape = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
            .replace('\'', "&apos;")
    };
    let mut cases = String::new();
    let (mut tests, mut failures, mut skipped) = (0, 0, 0);
    for p in &comparison.points {
        let class = escape(&p.key);
        if p.metrics.is_empty() {
            tests += 1;
            skipped += 1;
            cases.push_str(&format!(
                "    <testcase classname=\"{class}\" name=\"{}\"><skipped message=\"{}\"/></testcase>\n",
                p.verdict.as_str(),
                escape(&format!("the point is {} in the candidate", p.verdict.as_str()))
            ));
            continue;
        }
        for m in &p.metrics {
            tests += 1;
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
                failures += 1;
                cases.push_str(&format!(
                    "    <testcase classname=\"{class}\" name=\"{}\"><failure message=\"regressed\">{}</failure></testcase>\n",
                    m.metric,
                    escape(&detail)
                ));
            } else {
                cases.push_str(&format!(
                    "    <testcase classname=\"{class}\" name=\"{}\"><system-out>{}</system-out></testcase>\n",
                    m.metric,
                    escape(&detail)
                ));
            }
        }
    }
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n  <testsuite name=\"sweep compare\" tests=\"{tests}\" failures=\"{failures}\" skipped=\"{skipped}\" errors=\"0\">\n{cases}  </testsuite>\n</testsuites>\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

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
