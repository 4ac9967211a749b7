//! Charts as PNG and SVG (plotters): the Pareto chart of each workload, and TTFT, ITL and
//! tokens/s/GPU against concurrency per configuration (and against the request rate and the
//! prefix ratio when the sweep has them, and TTFT by turn for multi-turn sessions).
//!
//! Text is laid out with a TrueType font read at run time (DejaVu Sans from Debian's
//! `fonts-dejavu-core`, or `SWEEP_FONT`), so the binary needs no system font libraries. The
//! legend has its own panel right of the plot, so it never covers a point.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::pareto::{coordinates, Analysis, Group, Share};
use crate::table::Row;
use crate::{Error, GpuBasis};

const WIDTH: u32 = 1080;
const HEIGHT: u32 = 540;
const LEGEND: u32 = 310;
const FONT: &str = "sans-serif";

/// Where the font is looked for, in order (after `SWEEP_FONT`).
const FONT_PATHS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
];

/// Registers the font once per process; the error says how to get one.
pub fn font() -> Result<(), String> {
    static LOADED: OnceLock<Result<(), String>> = OnceLock::new();
    LOADED
        .get_or_init(|| {
            let candidates: Vec<PathBuf> = std::env::var_os("SWEEP_FONT")
                .map(PathBuf::from)
                .into_iter()
                .chain(FONT_PATHS.iter().map(PathBuf::from))
                .collect();
            let path = candidates.iter().find(|p| p.is_file()).ok_or_else(|| {
                "no TrueType font found: install Debian's fonts-dejavu-core (apt install \
                 fonts-dejavu-core) or point SWEEP_FONT at a .ttf file"
                    .to_owned()
            })?;
            let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
            // plotters keeps fonts for the life of the process.
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            for style in [FontStyle::Normal, FontStyle::Bold] {
                plotters::style::register_font(FONT, style, bytes)
                    .map_err(|_| format!("{}: not a usable TrueType font", path.display()))?;
            }
            Ok(())
        })
        .clone()
}

/// One line or set of markers on a chart.
#[derive(Debug, Clone)]
pub struct Series {
    pub label: String,
    pub color: usize,
    /// Drawn as small markers.
    pub scatter: Vec<(f64, f64)>,
    /// Drawn as a line with large markers.
    pub line: Vec<(f64, f64)>,
    /// A fitted curve: drawn as a line without markers (many samples, not measurements).
    pub curve: Vec<(f64, f64)>,
    /// Error bars: segments from one end to the other (a point's 95 % confidence interval over
    /// its repetitions, along each axis).
    pub intervals: Vec<[(f64, f64); 2]>,
}

impl Series {
    /// A series of markers only.
    pub fn points(label: String, color: usize, scatter: Vec<(f64, f64)>) -> Series {
        Series { label, color, scatter, line: Vec::new(), curve: Vec::new(), intervals: Vec::new() }
    }

    /// A series of joined markers only.
    pub fn line(label: String, color: usize, line: Vec<(f64, f64)>) -> Series {
        Series { label, color, scatter: Vec::new(), line, curve: Vec::new(), intervals: Vec::new() }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XAxis {
    Linear,
    /// Concurrency ramps are geometric.
    Log2,
    /// Items numbered 1, 2, …: a tick on each.
    Numbered,
    /// Indices 0, 1, 2, … (a session's turns): a tick on each, no fractions.
    Index,
}

#[derive(Debug, Clone)]
pub struct Chart {
    /// File stem: `pareto_isl1024_osl128`.
    pub name: String,
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub x_axis: XAxis,
    pub series: Vec<Series>,
}

/// Colour-blind-safe palette (Okabe–Ito), then a few more.
const PALETTE: &[RGBColor] = &[
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
    RGBColor(0, 0, 0),
    RGBColor(240, 228, 66),
    RGBColor(128, 0, 0),
    RGBColor(0, 0, 128),
    RGBColor(128, 128, 0),
    RGBColor(100, 100, 100),
];

fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// A figure of a row, as a chart plots it.
type Measure = dyn Fn(&Row) -> Option<f64>;

/// What stays fixed along one line of a chart, beside the configuration: each value with how it
/// reads in the legend (`5 req/s`, `conc 16`).
type Facets<'a> = dyn Fn(&Row) -> Vec<(f64, String)> + 'a;

/// A line per configuration and facet values, through the rows `keep` selects, at `x`.
fn lines(
    rows: &[Row],
    keep: &dyn Fn(&Row) -> bool,
    x: &Measure,
    by: &Facets<'_>,
    value: &Measure,
) -> Vec<Series> {
    let key = |r: &Row| {
        let facets = by(r);
        let values: Vec<f64> = facets.iter().map(|f| f.0).collect();
        let label =
            std::iter::once(r.config.job.clone()).chain(facets.into_iter().map(|f| f.1)).collect::<Vec<_>>();
        (r.config.job.clone(), values, label.join(", "))
    };
    let mut keys: Vec<(String, Vec<f64>, String)> = rows.iter().filter(|r| keep(r)).map(key).collect();
    keys.sort_by(|a, b| {
        a.0.cmp(&b.0).then_with(|| {
            a.1.iter()
                .zip(&b.1)
                .map(|(x, y)| x.total_cmp(y))
                .find(|o| o.is_ne())
                .unwrap_or(a.1.len().cmp(&b.1.len()))
        })
    });
    keys.dedup_by(|a, b| a.0 == b.0 && a.1 == b.1);
    keys.iter()
        .enumerate()
        .map(|(k, (job, at, label))| {
            let mut line: Vec<(f64, f64)> = rows
                .iter()
                .filter(|r| keep(r))
                .filter(|r| &r.config.job == job && by(r).iter().map(|f| f.0).eq(at.iter().copied()))
                .filter_map(|r| Some((x(r)?, value(r)?)))
                .collect();
            line.sort_by(|a, b| a.0.total_cmp(&b.0));
            Series {
                label: label.clone(),
                color: k,
                scatter: Vec::new(),
                line,
                curve: Vec::new(),
                intervals: Vec::new(),
            }
        })
        .filter(|s| !s.line.is_empty())
        .collect()
}

/// A point's 95 % confidence intervals over its repetitions, along tokens/s/user and
/// tokens/s/GPU, as two segments through its means; none for a point measured once.
fn intervals(row: &Row, basis: GpuBasis) -> Vec<[(f64, f64); 2]> {
    let (Some((x, y)), Some(stats)) = (coordinates(row, basis), &row.repeats) else { return Vec::new() };
    let mut out = Vec::new();
    if let Some(s) = stats.spread.get("tps_per_user") {
        out.push([(x - s.ci95, y), (x + s.ci95, y)]);
    }
    if let Some(s) = stats.spread.get(basis.column()) {
        out.push([(x, y - s.ci95), (x, y + s.ci95)]);
    }
    out
}

/// `0.5` → `0p5`: a number as a file-name part.
fn stem(v: f64) -> String {
    v.to_string().replace('.', "p").replace('-', "m")
}

/// The charts for a set of rows.
pub fn charts(rows: &[Row], analysis: &Analysis) -> Vec<Chart> {
    let basis_label = match analysis.basis {
        GpuBasis::Working => "working GPUs",
        GpuBasis::Allocated => "allocated GPUs",
    };
    let basis = analysis.basis;
    let measures: [(&str, &str, String, &Measure); 3] = [
        ("ttft", "Time to first token, median", "TTFT p50 (ms)".to_owned(), &|r| {
            r.figures.get("ttft_p50_ms")
        }),
        ("itl", "Inter-token latency, median", "ITL p50 (ms)".to_owned(), &|r| r.figures.get("itl_p50_ms")),
        (
            "throughput",
            "Output throughput per GPU",
            format!("output tokens/s per GPU ({basis_label})"),
            &move |r| r.tps_per_gpu(basis),
        ),
    ];
    let concurrency = |r: &Row| r.effective_concurrency.or(r.concurrency).map(|c| c as f64);
    let rate = |r: &Row| r.request_rate;
    let prefix = |r: &Row| r.prefix_ratio;
    let mut workloads: Vec<Group> = rows
        .iter()
        .filter(|r| r.measured())
        .map(|r| Group { mode: String::new(), mtp: false, version: None, ..Group::of(r) })
        .collect();
    workloads.sort();
    workloads.dedup();
    let mut out = Vec::new();
    for w in &workloads {
        let in_workload = |r: &Row| {
            r.measured() && r.isl == w.isl && r.osl == w.osl && r.prefix_ratio.map(Share::new) == w.prefix
        };
        let suffix = format!(
            "isl{}_osl{}{}",
            w.isl.unwrap_or(0),
            w.osl.unwrap_or(0),
            w.prefix.map(|p| format!("_prefix{}", stem(p.get()))).unwrap_or_default()
        );
        let workload = w.workload();
        // Pareto: every point of a group small, its frontier as a line.
        let mut series = Vec::new();
        for (k, f) in analysis
            .frontiers
            .iter()
            .filter(|f| f.group.isl == w.isl && f.group.osl == w.osl && f.group.prefix == w.prefix)
            .enumerate()
        {
            let all = rows
                .iter()
                .filter(|r| in_workload(r))
                .filter(|r| Group::of(r) == f.group)
                .filter_map(|r| coordinates(r, analysis.basis))
                .collect();
            let line = f.rows.iter().filter_map(|&i| coordinates(&rows[i], analysis.basis)).collect();
            let intervals = rows
                .iter()
                .filter(|r| in_workload(r) && Group::of(r) == f.group)
                .flat_map(|r| intervals(r, analysis.basis))
                .collect();
            series.push(Series {
                label: f.group.series(),
                color: k,
                scatter: all,
                line,
                curve: Vec::new(),
                intervals,
            });
        }
        out.push(Chart {
            name: format!("pareto_{suffix}"),
            title: format!("Pareto frontier — {workload}"),
            x_label: "output tokens/s per user (mean of 1000/ITL)".to_owned(),
            y_label: format!("output tokens/s per GPU ({basis_label})"),
            x_axis: XAxis::Linear,
            series,
        });
        // Per configuration against concurrency. Open-loop points add a line per configuration
        // and rate there, and charts against the rate with a line per configuration and
        // concurrency cap.
        let rated = rows.iter().filter(|r| in_workload(r)).any(|r| r.request_rate.is_some());
        let by_rate = |r: &Row| {
            r.request_rate.filter(|_| rated).map(|v| (v, format!("{v} req/s"))).into_iter().collect()
        };
        let by_concurrency = |r: &Row| concurrency(r).map(|v| (v, format!("conc {v}"))).into_iter().collect();
        for (name, title, y_label, value) in &measures {
            out.push(Chart {
                name: format!("{name}_{suffix}"),
                title: format!("{title} — {workload}"),
                x_label: "concurrency (requests in flight)".to_owned(),
                y_label: y_label.clone(),
                x_axis: XAxis::Log2,
                series: lines(rows, &in_workload, &concurrency, &by_rate, *value),
            });
        }
        if rated {
            for (name, title, y_label, value) in &measures {
                out.push(Chart {
                    name: format!("{name}_rate_{suffix}"),
                    title: format!("{title} against the request rate — {workload}"),
                    x_label: "request rate (requests/s, target)".to_owned(),
                    y_label: y_label.clone(),
                    x_axis: XAxis::Log2,
                    series: lines(rows, &in_workload, &rate, &by_concurrency, *value),
                });
            }
        }
    }
    // Against the prefix ratio, per ISL/OSL: a line per configuration, concurrency and rate,
    // as Dynamo's prefix-ratio benchmark plots TTFT and throughput.
    let mut lengths: Vec<(Option<i64>, Option<i64>)> =
        workloads.iter().filter(|w| w.prefix.is_some()).map(|w| (w.isl, w.osl)).collect();
    lengths.dedup();
    for (isl, osl) in lengths {
        let keep = |r: &Row| r.measured() && r.isl == isl && r.osl == osl && r.prefix_ratio.is_some();
        let workload =
            Group { isl, osl, prefix: None, mode: String::new(), mtp: false, version: None }.workload();
        let by_load = |r: &Row| {
            let mut facets: Vec<(f64, String)> =
                concurrency(r).map(|v| (v, format!("conc {v}"))).into_iter().collect();
            facets.extend(r.request_rate.map(|v| (v, format!("{v} req/s"))));
            facets
        };
        for (name, title, y_label, value) in &measures {
            out.push(Chart {
                name: format!("{name}_prefix_isl{}_osl{}", isl.unwrap_or(0), osl.unwrap_or(0)),
                title: format!("{title} against the prefix ratio — {workload}"),
                x_label: "prefix ratio (shared share of each prompt)".to_owned(),
                y_label: y_label.clone(),
                x_axis: XAxis::Linear,
                series: lines(rows, &keep, &prefix, &by_load, *value),
            });
        }
    }
    out.extend(turn_charts(rows));
    if let Some(chart) = search_chart(rows) {
        out.push(chart);
    }
    out.extend(knob_charts(rows, analysis, basis_label));
    out
}

/// Per varied knob and group: each value's points and its own frontier, side by side on one
/// chart, so what the knob buys shows at every tokens/s/user.
fn knob_charts(rows: &[Row], analysis: &Analysis, basis_label: &str) -> Vec<Chart> {
    let mut out: Vec<Chart> = Vec::new();
    for value in &analysis.knobs {
        let g = &value.group;
        let name = format!(
            "knob_{}_{}{}_isl{}_osl{}{}{}",
            stem_text(&value.knob),
            g.mode,
            if g.mtp { "_mtp" } else { "" },
            g.isl.unwrap_or(0),
            g.osl.unwrap_or(0),
            g.prefix.map(|p| format!("_prefix{}", stem(p.get()))).unwrap_or_default(),
            g.version.as_deref().map(|v| format!("_{}", stem_text(v))).unwrap_or_default(),
        );
        let all = rows
            .iter()
            .filter(|r| Group::of(r) == *g && r.config.knobs.get(&value.knob) == Some(&value.value))
            .filter_map(|r| coordinates(r, analysis.basis))
            .collect();
        let line = value.frontier.iter().filter_map(|&i| coordinates(&rows[i], analysis.basis)).collect();
        let chart = match out.iter_mut().find(|c| c.name == name) {
            Some(chart) => chart,
            None => {
                out.push(Chart {
                    name,
                    title: format!("Frontier per {} — {g}", value.knob),
                    x_label: "output tokens/s per user (mean of 1000/ITL)".to_owned(),
                    y_label: format!("output tokens/s per GPU ({basis_label})"),
                    x_axis: XAxis::Linear,
                    series: Vec::new(),
                });
                out.last_mut().expect("pushed")
            }
        };
        let color = chart.series.len();
        chart.series.push(Series {
            label: value.value.clone(),
            color,
            scatter: all,
            line,
            curve: Vec::new(),
            intervals: Vec::new(),
        });
    }
    out
}

/// Text as a file stem: letters, digits, `.` and `-` kept, anything else `_`.
fn stem_text(text: &str) -> String {
    text.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '-') { c } else { '_' }).collect()
}

/// TTFT p50 against the turn index, per workload of session points: a line per configuration
/// and load, so a growing history's cost shows.
fn turn_charts(rows: &[Row]) -> Vec<Chart> {
    let with_turns = |r: &&Row| r.measured() && !r.ttft_by_turn.is_empty();
    let mut workloads: Vec<Group> = rows
        .iter()
        .filter(with_turns)
        .map(|r| Group { mode: String::new(), mtp: false, version: None, ..Group::of(r) })
        .collect();
    workloads.sort();
    workloads.dedup();
    workloads
        .into_iter()
        .map(|w| {
            let series = rows
                .iter()
                .filter(with_turns)
                .filter(|r| r.isl == w.isl && r.osl == w.osl && r.prefix_ratio.map(Share::new) == w.prefix)
                .enumerate()
                .map(|(k, r)| Series {
                    label: format!("{}, {}", r.config.job, load_label(r)),
                    color: k,
                    scatter: Vec::new(),
                    line: r
                        .ttft_by_turn
                        .iter()
                        .filter_map(|t| Some((f64::from(t.turn_index), t.p50_ms?)))
                        .collect(),
                    curve: Vec::new(),
                    intervals: Vec::new(),
                })
                .collect();
            Chart {
                name: format!("ttft_by_turn_isl{}_osl{}", w.isl.unwrap_or(0), w.osl.unwrap_or(0)),
                title: format!("Time to first token by turn, median — {}", w.workload()),
                x_label: "turn index (0: a session's first request)".to_owned(),
                y_label: "TTFT p50 (ms)".to_owned(),
                x_axis: XAxis::Index,
                series,
            }
        })
        .collect()
}

/// `conc 4` or `conc 4, 8 req/s`: a point's load in a legend.
pub fn load_label(r: &Row) -> String {
    let concurrency = r.effective_concurrency.or(r.concurrency).map(|c| format!("conc {c}"));
    let rate = r.request_rate.map(|v| format!("{v} req/s"));
    concurrency.into_iter().chain(rate).collect::<Vec<_>>().join(", ")
}

/// The searches' planned points (`workload.search`), in table order.
pub fn searches(rows: &[Row]) -> Vec<&Row> {
    rows.iter().filter(|r| r.search_stopped_because.is_some()).collect()
}

/// A chart per point that has scrapes: requests running and waiting (summed over servers) and
/// the fullest server's KV-cache usage, against seconds since the measured requests started.
/// A timeline that cannot be read is left out (its summary's figures are still in the table).
pub fn server_charts(rows: &[Row]) -> Vec<Chart> {
    rows.iter()
        .filter_map(|r| {
            let server = r.server.as_ref()?;
            let path = sweep_folder::PointDir::new(&r.dir).scrapes_path();
            let timeline = sweep_folder::server_metrics::timeline(&path, &server.measures.families).ok()?;
            let zero = timeline
                .iter()
                .find(|t| t.phase == sweep_folder::server_metrics::Phase::Start)
                .or(timeline.first())?
                .time;
            let line = |f: &dyn Fn(&sweep_folder::server_metrics::TimelinePoint) -> Option<f64>| {
                timeline.iter().filter_map(|t| Some((t.time - zero, f(t)?))).collect::<Vec<_>>()
            };
            let series: Vec<Series> = [
                ("requests running", line(&|t| t.requests_running)),
                ("requests waiting", line(&|t| t.requests_waiting)),
                ("KV-cache usage (%)", line(&|t| t.kv_cache_usage.map(|v| v * 100.0))),
            ]
            .into_iter()
            .enumerate()
            .filter(|(_, (_, line))| !line.is_empty())
            .map(|(k, (label, line))| Series::line(label.to_owned(), k, line))
            .collect();
            (!series.is_empty()).then(|| Chart {
                name: server_chart_name(r),
                title: format!("What the servers saw — {}, {}", r.config.job, load_label(r)),
                x_label: "seconds since the measured requests started".to_owned(),
                y_label: "requests, or KV-cache usage (%)".to_owned(),
                x_axis: XAxis::Linear,
                series,
            })
        })
        .collect()
}

/// Speculative decoding: tokens/s/user against the acceptance rate the servers reported, a
/// series per MTP depth (the decoding role's `mtp`: GEN's, else AGG's). `None` without any
/// point whose servers report acceptance.
pub fn spec_chart(rows: &[Row]) -> Option<Chart> {
    let mut by_mtp: std::collections::BTreeMap<i64, Vec<(f64, f64)>> = Default::default();
    for r in rows.iter().filter(|r| r.measured()) {
        let Some(rate) = r.server.as_ref().and_then(|s| s.measures.spec_acceptance_rate) else { continue };
        let Some(x) = r.tps_per_user else { continue };
        let decoding = r
            .config
            .roles
            .iter()
            .find(|c| c.role == "gen")
            .or_else(|| r.config.roles.iter().find(|c| c.role == "agg"));
        let mtp = decoding.and_then(|c| c.mtp).unwrap_or(0);
        by_mtp.entry(mtp).or_default().push((rate * 100.0, x));
    }
    (!by_mtp.is_empty()).then(|| Chart {
        name: SPEC_CHART.to_owned(),
        title: "Speculative decoding: tokens/s/user against the acceptance rate, per MTP depth".to_owned(),
        x_label: "draft tokens accepted (%), as the servers report".to_owned(),
        y_label: "output tokens/s per user (mean of 1000/ITL)".to_owned(),
        x_axis: XAxis::Linear,
        series: by_mtp
            .into_iter()
            .enumerate()
            .map(|(k, (mtp, scatter))| Series::points(format!("MTP {mtp}"), k, scatter))
            .collect(),
    })
}

/// The energy frontier: output tokens per joule against tokens/s/user for every point with GPU
/// telemetry, the non-dominated ones joined. `None` without any.
pub fn energy_chart(rows: &[Row]) -> Option<Chart> {
    let points: Vec<(f64, f64)> = rows
        .iter()
        .filter(|r| r.measured() && r.invalid.is_none())
        .filter_map(|r| Some((r.tps_per_user?, r.tokens_per_joule()?)))
        .collect();
    if points.is_empty() {
        return None;
    }
    let mut line: Vec<(f64, f64)> = crate::pareto::frontier(&points).into_iter().map(|i| points[i]).collect();
    line.sort_by(|a, b| a.0.total_cmp(&b.0));
    Some(Chart {
        name: ENERGY_CHART.to_owned(),
        title: "Energy: output tokens per joule against tokens/s/user".to_owned(),
        x_label: "output tokens/s per user (mean of 1000/ITL)".to_owned(),
        y_label: "output tokens per joule (the job's GPUs, measured window)".to_owned(),
        x_axis: XAxis::Linear,
        series: vec![Series {
            label: "points; the frontier joined".to_owned(),
            color: 0,
            scatter: points,
            line,
            curve: Vec::new(),
            intervals: Vec::new(),
        }],
    })
}

/// The speculative-decoding chart's file stem (the report shows it with the servers' figures).
pub const SPEC_CHART: &str = "server_spec_acceptance";

/// The energy frontier's file stem (the report shows it with the GPUs' panels).
pub const ENERGY_CHART: &str = "energy_frontier";

/// `<prefix>_<job>_<point>`: the file stem of a point's panel.
fn point_chart_name(prefix: &str, r: &Row) -> String {
    let clean = |s: &str| {
        s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect::<String>()
    };
    format!("{prefix}_{}_{}", clean(&r.config.job), clean(&r.point))
}

/// `server_<job>_<point>`: the file stem of a point's server chart.
pub fn server_chart_name(r: &Row) -> String {
    point_chart_name("server", r)
}

/// `gpu_<job>_<point>`: the file stem of a point's GPU chart.
pub fn gpu_chart_name(r: &Row) -> String {
    point_chart_name("gpu", r)
}

/// A chart per point with GPU telemetry: each GPU's power against seconds since the point's
/// measured window opened, the window's samples and the one each side of it (what its energy
/// integrates). Samples that cannot be read leave the panel out; the table keeps the summary.
pub fn gpu_charts(rows: &[Row]) -> Vec<Chart> {
    rows.iter()
        .filter_map(|r| {
            let summary = r.gpu.as_ref()?;
            let samples = sweep_folder::PointDir::new(&r.dir).read_gpu_samples().ok()?;
            let zero = summary.window.0;
            let mut by_gpu: std::collections::BTreeMap<(&str, u32), Vec<(f64, f64)>> = Default::default();
            for s in &samples {
                if let Some(watts) = s.power_w {
                    by_gpu.entry((s.host.as_str(), s.gpu)).or_default().push((s.time - zero, watts));
                }
            }
            let series: Vec<Series> = by_gpu
                .into_iter()
                .enumerate()
                .map(|(k, ((host, gpu), line))| Series::line(format!("{host} GPU {gpu}"), k, line))
                .collect();
            let energy = summary.energy_j.map(|j| format!(", {j:.0} J")).unwrap_or_default();
            (!series.is_empty()).then(|| Chart {
                name: gpu_chart_name(r),
                title: format!("GPU power — {}, {}{energy}", r.config.job, load_label(r)),
                x_label: format!(
                    "seconds since the measured window opened (it closed at {:.1} s)",
                    summary.window.1 - zero
                ),
                y_label: "power (W)".to_owned(),
                x_axis: XAxis::Linear,
                series,
            })
        })
        .collect()
}

/// What each search found: a marker per search at its number in the report's table.
fn search_chart(rows: &[Row]) -> Option<Chart> {
    let searches = searches(rows);
    let series: Vec<Series> = searches
        .iter()
        .enumerate()
        .filter_map(|(k, r)| {
            let max = r.max_load_meeting_slo?;
            let label = format!(
                "#{} {}, ISL {} / OSL {}",
                k + 1,
                r.config.job,
                r.isl.unwrap_or(0),
                r.osl.unwrap_or(0)
            );
            Some(Series {
                label,
                color: k,
                scatter: Vec::new(),
                line: vec![((k + 1) as f64, max)],
                curve: Vec::new(),
                intervals: Vec::new(),
            })
        })
        .collect();
    if series.is_empty() {
        return None;
    }
    Some(Chart {
        name: "search_max_load".to_owned(),
        title: "Highest load meeting the SLO, per search".to_owned(),
        x_label: "search (# in the table below)".to_owned(),
        y_label: "load (concurrency or requests/s)".to_owned(),
        x_axis: XAxis::Numbered,
        series,
    })
}

/// Draws `chart` as an SVG document.
pub fn svg(chart: &Chart) -> Result<String, String> {
    font()?;
    let mut text = String::new();
    {
        let area = SVGBackend::with_string(&mut text, (WIDTH, HEIGHT)).into_drawing_area();
        draw(&area, chart)?;
        area.present().map_err(|e| e.to_string())?;
    }
    Ok(text)
}

/// Writes `chart` as `<dir>/<name>.png` and `.svg`; returns both paths and the SVG's text.
pub fn write(chart: &Chart, dir: &Path) -> Result<(PathBuf, PathBuf, String), Error> {
    let fail = |path: &Path, message: String| Error::Plot { path: path.to_owned(), message };
    let svg_path = dir.join(format!("{}.svg", chart.name));
    let svg_text = svg(chart).map_err(|m| fail(&svg_path, m))?;
    crate::write_atomic(&svg_path, svg_text.as_bytes())?;
    let png_path = dir.join(format!("{}.png", chart.name));
    // The backend picks the format from the extension, so the temporary name keeps `.png`.
    let tmp = dir.join(format!(".{}.{}.png", chart.name, std::process::id()));
    {
        let area = BitMapBackend::new(&tmp, (WIDTH, HEIGHT)).into_drawing_area();
        draw(&area, chart).map_err(|m| fail(&png_path, m))?;
        area.present().map_err(|e| fail(&png_path, e.to_string()))?;
    }
    std::fs::rename(&tmp, &png_path).map_err(|source| Error::Write { path: png_path.clone(), source })?;
    Ok((png_path, svg_path, svg_text))
}

fn range(values: impl Iterator<Item = f64>, log2: bool) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    if log2 {
        // Half a step of margin on each side of the first and last concurrency.
        return (lo - 0.5, hi + 0.5);
    }
    // Throughputs and latencies start at zero so that ratios read true.
    let hi = if hi > 0.0 { hi * 1.08 } else { 1.0 };
    (0.0_f64.min(lo), hi)
}

fn draw<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, chart: &Chart) -> Result<(), String> {
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(err)?;
    let (plot, legend) = root.split_horizontally(WIDTH - LEGEND);
    let log2 = chart.x_axis == XAxis::Log2;
    let tx = |x: f64| if log2 { x.max(f64::MIN_POSITIVE).log2() } else { x };
    let all = || {
        chart.series.iter().flat_map(|s| s.scatter.iter().chain(&s.line).chain(s.intervals.iter().flatten()))
    };
    let (x0, x1) = match chart.x_axis {
        XAxis::Numbered => (0.5, all().map(|p| p.0).fold(1.0, f64::max) + 0.5),
        XAxis::Index => (-0.5, all().map(|p| p.0).fold(1.0, f64::max) + 0.5),
        _ => range(all().map(|p| tx(p.0)), log2),
    };
    let (y0, y1) = range(all().map(|p| p.1), false);
    let mut ctx = ChartBuilder::on(&plot)
        .caption(&chart.title, (FONT, 20))
        .margin(12)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(err)?;
    let numbered = chart.x_axis == XAxis::Numbered;
    let index = chart.x_axis == XAxis::Index;
    let x_format = move |v: &f64| {
        let whole = (v - v.round()).abs() < 1e-6;
        if numbered {
            if whole && *v >= 1.0 {
                format!("#{}", v.round())
            } else {
                String::new()
            }
        } else if index {
            if whole && *v >= 0.0 {
                format!("{}", v.round())
            } else {
                String::new()
            }
        } else if log2 {
            let value = v.exp2();
            if (value - value.round()).abs() < 1e-6 {
                format!("{}", value.round())
            } else {
                String::new()
            }
        } else {
            compact(*v)
        }
    };
    let mut mesh = ctx.configure_mesh();
    mesh.x_desc(chart.x_label.as_str())
        .y_desc(chart.y_label.as_str())
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 15))
        .x_label_formatter(&x_format)
        .y_label_formatter(&|v| compact(*v))
        .x_max_light_lines(1)
        .y_max_light_lines(1)
        .light_line_style(RGBColor(240, 240, 240));
    if log2 || numbered || index {
        // One tick per power of two, or per item, in range.
        mesh.x_labels(((x1 - x0).ceil() as usize + 1).max(2));
    }
    mesh.draw().map_err(err)?;
    for s in &chart.series {
        let c = color(s.color);
        ctx.draw_series(s.scatter.iter().map(|p| Circle::new((tx(p.0), p.1), 3, c.mix(0.45).filled())))
            .map_err(err)?;
        for [a, b] in &s.intervals {
            ctx.draw_series(LineSeries::new([(tx(a.0), a.1), (tx(b.0), b.1)], c.mix(0.7).stroke_width(1)))
                .map_err(err)?;
        }
        if !s.curve.is_empty() {
            ctx.draw_series(LineSeries::new(s.curve.iter().map(|p| (tx(p.0), p.1)), c.stroke_width(2)))
                .map_err(err)?;
        }
        if !s.line.is_empty() {
            // Measured points joined, unless a fitted curve is drawn through them.
            if s.curve.is_empty() {
                ctx.draw_series(LineSeries::new(s.line.iter().map(|p| (tx(p.0), p.1)), c.stroke_width(2)))
                    .map_err(err)?;
            }
            ctx.draw_series(s.line.iter().map(|p| Circle::new((tx(p.0), p.1), 5, c.filled())))
                .map_err(err)?;
        }
    }
    // The legend panel: one row per series, as many as fit, then how many more.
    let row = 22;
    let fits = ((HEIGHT as i32 - 60) / row) as usize;
    let shown = if chart.series.len() > fits { fits - 1 } else { chart.series.len() };
    let label_style = TextStyle::from((FONT, 13).into_font()).color(&BLACK);
    for (k, s) in chart.series.iter().take(shown).enumerate() {
        let y = 50 + k as i32 * row;
        let c = color(s.color);
        legend.draw(&PathElement::new(vec![(4, y), (26, y)], c.stroke_width(2))).map_err(err)?;
        legend.draw(&Circle::new((15, y), 4, c.filled())).map_err(err)?;
        legend.draw(&Text::new(ellipsize(&s.label, 38), (34, y - 7), label_style.clone())).map_err(err)?;
    }
    if shown < chart.series.len() {
        let y = 50 + shown as i32 * row;
        let more = format!("… and {} more", chart.series.len() - shown);
        legend.draw(&Text::new(more, (34, y - 7), label_style)).map_err(err)?;
    }
    Ok(())
}

/// `12,345.6` → `12.3k`; keeps tick labels short enough not to collide.
fn compact(v: f64) -> String {
    let a = v.abs();
    if a >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if a >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else if a >= 10.0 || a == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

fn ellipsize(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let kept: String = s.chars().take(max - 1).collect();
        format!("{kept}…")
    }
}

/// The profiler's charts (`profile_*`): TTFT against ISL with each configuration's fit, ITL
/// against context length and against concurrency, cost against tokens/s/user at the SLOs, and
/// CTX servers run against balanced. Each only when it has something to show.
pub fn profile_charts(agg: &crate::Aggregate) -> Vec<Chart> {
    let p = &agg.profile;
    let mut out = Vec::new();
    if !p.ttft.is_empty() {
        let series = p
            .ttft
            .iter()
            .enumerate()
            .map(|(k, t)| {
                let curve = match (t.fit, t.points.first(), t.points.last()) {
                    (Some(fit), Some(&(lo, _)), Some(&(hi, _))) => (0..=24)
                        .map(|i| lo + (hi - lo) * f64::from(i) / 24.0)
                        .map(|x| (x, fit.at(x)))
                        .collect(),
                    _ => Vec::new(),
                };
                Series {
                    label: t.config.clone(),
                    color: k,
                    scatter: Vec::new(),
                    line: t.points.clone(),
                    curve,
                    intervals: Vec::new(),
                }
            })
            .collect();
        out.push(Chart {
            name: "profile_ttft_vs_isl".to_owned(),
            title: "TTFT against ISL at concurrency 1, with quadratic fits".to_owned(),
            x_label: "input sequence length (tokens)".to_owned(),
            y_label: "TTFT, mean (ms)".to_owned(),
            x_axis: XAxis::Linear,
            series,
        });
    }
    if !p.itl.is_empty() {
        // A line per configuration and concurrency (against context), per configuration and
        // ISL/OSL (against concurrency), drawn as every other chart's lines are.
        let rows = &agg.rows;
        let measured = |r: &Row| r.measured();
        let itl = |r: &Row| r.figures.get("itl_p50_ms");
        let concurrency = |r: &Row| r.effective_concurrency.map(|c| c as f64);
        let by_concurrency = |r: &Row| concurrency(r).map(|c| (c, format!("conc {c}"))).into_iter().collect();
        let by_lengths = |r: &Row| {
            crate::profile::context(r)
                .map(|c| (c, format!("ISL {} / OSL {}", r.isl.unwrap_or(0), r.osl.unwrap_or(0))))
                .into_iter()
                .collect()
        };
        out.push(Chart {
            name: "profile_itl_vs_context".to_owned(),
            title: "ITL against context length (ISL + OSL/2)".to_owned(),
            x_label: "context length, ISL + OSL/2 (tokens)".to_owned(),
            y_label: "ITL p50 (ms)".to_owned(),
            x_axis: XAxis::Linear,
            series: lines(rows, &measured, &crate::profile::context, &by_concurrency, &itl),
        });
        out.push(Chart {
            name: "profile_itl_vs_concurrency".to_owned(),
            title: "ITL against concurrency".to_owned(),
            x_label: "concurrency (requests in flight)".to_owned(),
            y_label: "ITL p50 (ms)".to_owned(),
            x_axis: XAxis::Log2,
            series: lines(rows, &measured, &concurrency, &by_lengths, &itl),
        });
    }
    if let Some(cost) = p.cost.as_ref().filter(|c| c.meeting.iter().any(|m| m.usd_per_million.is_some())) {
        let mut by_config: std::collections::BTreeMap<String, Vec<(f64, f64)>> = Default::default();
        for m in &cost.meeting {
            let row = &agg.rows[m.row];
            if let (Some(x), Some(y)) = (row.tps_per_user, m.usd_per_million) {
                by_config.entry(crate::profile::config_label(row)).or_default().push((x, y));
            }
        }
        out.push(Chart {
            name: "profile_cost".to_owned(),
            title: "Cost of the points meeting the SLOs".to_owned(),
            x_label: "output tokens/s per user (mean of 1000/ITL)".to_owned(),
            y_label: "USD per million output tokens".to_owned(),
            x_axis: XAxis::Linear,
            series: by_config
                .into_iter()
                .enumerate()
                .map(|(k, (label, scatter))| Series::points(label, k, scatter))
                .collect(),
        });
    }
    if !p.balance.is_empty() {
        let numbered = |f: &dyn Fn(&crate::profile::Balance) -> f64| {
            p.balance.iter().enumerate().map(|(i, b)| ((i + 1) as f64, f(b))).collect::<Vec<_>>()
        };
        out.push(Chart {
            name: "profile_balance".to_owned(),
            title: "CTX servers: run against balanced with the GEN servers' demand".to_owned(),
            x_label: "point (numbered as in the balance table)".to_owned(),
            y_label: "CTX servers".to_owned(),
            x_axis: XAxis::Numbered,
            series: vec![
                Series {
                    label: "run".to_owned(),
                    color: 0,
                    scatter: numbered(&|b| b.ctx_servers),
                    line: Vec::new(),
                    curve: Vec::new(),
                    intervals: Vec::new(),
                },
                Series {
                    label: "balanced".to_owned(),
                    color: 1,
                    scatter: numbered(&|b| b.balanced_ctx_servers),
                    line: Vec::new(),
                    curve: Vec::new(),
                    intervals: Vec::new(),
                },
            ],
        });
    }
    out
}
