//! `sweep aggregate` and `sweep report`: the aggregator crate behind a command line. Data (the
//! frontier) goes to stdout, what was written and every warning to stderr.

use std::io::Write;
use std::path::PathBuf;

use serde_json::json;
use sweep_aggregate::pareto::Group;
use sweep_aggregate::{Aggregate, GpuBasis, Options, Outputs};

use crate::error::Error;

#[derive(Debug)]
pub struct Settings {
    pub dirs: Vec<PathBuf>,
    pub output: PathBuf,
    pub options: Options,
    pub outputs: Outputs,
    pub json: bool,
    /// Draw each configuration's trend from this results history.
    pub history: Option<PathBuf>,
}

impl Settings {
    /// Resolves the output folder: `-o`, else `<DIR>/report` for a single folder.
    pub fn resolve_output(dirs: &[PathBuf], output: Option<PathBuf>) -> Result<PathBuf, Error> {
        match (output, dirs) {
            (Some(out), _) => Ok(out),
            (None, [one]) => Ok(one.join("report")),
            (None, _) => Err(Error::Usage(
                "several folders given: choose where the merged results go with `-o DIR`".to_owned(),
            )),
        }
    }
}

pub fn run(settings: &Settings) -> Result<(), Error> {
    let mut agg = sweep_aggregate::aggregate(&settings.dirs, &settings.options).map_err(Error::Aggregate)?;
    if let Some(db) = &settings.history {
        agg.trend = Some(trend(db, &agg, &settings.dirs)?);
    }
    if let [dir] = settings.dirs.as_slice() {
        agg.exploration = crate::exploring::exploration(dir)?;
    }
    let mut stderr = std::io::stderr().lock();
    for warning in &agg.warnings {
        let _ = writeln!(stderr, "warning: {warning}");
    }
    let written =
        sweep_aggregate::write(&agg, &settings.output, settings.outputs).map_err(Error::Aggregate)?;
    let mut stdout = std::io::stdout().lock();
    if settings.json {
        serde_json::to_writer_pretty(&mut stdout, &summary_json(&agg))
            .map_err(|e| Error::Output(e.into()))?;
        writeln!(stdout).map_err(Error::Output)?;
    } else {
        stdout.write_all(frontier_table(&agg).as_bytes()).map_err(Error::Output)?;
        stdout.write_all(search_lines(&agg).as_bytes()).map_err(Error::Output)?;
    }
    let done = agg.rows.iter().filter(|r| r.state == "done").count();
    let _ = writeln!(
        stderr,
        "{} points ({} done, {} without a result), {} warning(s); wrote {} files to {}",
        agg.rows.len(),
        done,
        agg.rows.len() - done,
        agg.warnings.len(),
        written.len(),
        settings.output.display()
    );
    if settings.outputs == Outputs::Report {
        let _ = writeln!(
            stderr,
            "report: {} (summary: {})",
            settings.output.join("report.html").display(),
            settings.output.join("report.md").display()
        );
    }
    Ok(())
}

/// The history's sweeps of this aggregate's configurations, oldest first, then this one unless
/// the history already holds it (by path).
fn trend(
    db: &std::path::Path,
    agg: &Aggregate,
    dirs: &[PathBuf],
) -> Result<sweep_aggregate::trend::Trend, Error> {
    use sweep_aggregate::trend::{Run, Trend};
    let current = sweep_aggregate::compare::Results::of(agg);
    let keys: Vec<String> = current.points.iter().map(|p| p.key.clone()).collect();
    let history = sweep_history::History::open(db)?;
    let here: Vec<String> = dirs
        .iter()
        .map(|d| std::fs::canonicalize(d).unwrap_or_else(|_| d.clone()).display().to_string())
        .collect();
    let mut runs: Vec<Run> = history
        .trend(&keys.iter().cloned().collect())?
        .into_iter()
        .map(|(entry, points)| {
            let mut label =
                format!("{} · {} (history {})", crate::text::utc(entry.time()), entry.keys.name, entry.id);
            if let Some(v) = &entry.keys.version {
                label.push_str(&format!(" · {v}"));
            }
            if !entry.keys.tags.is_empty() {
                label.push_str(&format!(" · {}", entry.keys.tags.join(", ")));
            }
            Run { label, id: Some(entry.id), points }
        })
        .collect();
    let held = history.list(None, None)?.into_iter().any(|e| here.contains(&e.keys.path));
    if !held {
        runs.push(Run { label: "this report's sweep".to_owned(), id: None, points: current.points });
    }
    Ok(Trend { keys, runs })
}

/// The frontier points of every group, as an aligned text table; the target request rate is a
/// column only when the sweep has open-loop points.
fn frontier_table(agg: &Aggregate) -> String {
    let fmt = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}"));
    let rated = agg.rows.iter().any(|r| r.request_rate.is_some());
    let mut header = vec!["GROUP", "CONFIGURATION", "CONC"];
    if rated {
        header.push("REQ/S");
    }
    header.extend(["TOK/S/USER", "TOK/S/GPU", "TTFT P50 MS", "ITL P50 MS"]);
    let mut lines: Vec<Vec<String>> = vec![header.into_iter().map(str::to_owned).collect()];
    for f in &agg.analysis.frontiers {
        for &i in &f.rows {
            let r = &agg.rows[i];
            let mut line = vec![
                f.group.to_string(),
                r.config.job.clone(),
                r.effective_concurrency.or(r.concurrency).map_or_else(|| "-".to_owned(), |c| c.to_string()),
            ];
            if rated {
                line.push(r.request_rate.map_or_else(|| "-".to_owned(), |v| v.to_string()));
            }
            line.extend([
                fmt(r.tps_per_user),
                fmt(r.tps_per_gpu(agg.analysis.basis)),
                fmt(r.figures.get("ttft_p50_ms")),
                fmt(r.figures.get("itl_p50_ms")),
            ]);
            lines.push(line);
        }
    }
    crate::text::aligned(&lines, 2)
}

/// After the frontier, a line per search (`workload.search`): what it found and why it stopped.
fn search_lines(agg: &Aggregate) -> String {
    let mut out = String::new();
    for (k, r) in sweep_aggregate::plot::searches(&agg.rows).iter().enumerate() {
        if k == 0 {
            out.push_str("\nSEARCH  CONFIGURATION  MAX LOAD MEETING THE SLO  STOPPED BECAUSE\n");
        }
        let max = r.max_load_meeting_slo.map_or_else(|| "none".to_owned(), |m| m.to_string());
        out.push_str(&format!(
            "#{}  {}  {max}  {}\n",
            k + 1,
            r.config.job,
            r.search_stopped_because.as_deref().unwrap_or_default()
        ));
    }
    out
}

fn group_json(g: &Group) -> serde_json::Value {
    json!({"mode": g.mode, "mtp": g.mtp, "isl": g.isl, "osl": g.osl, "prefix_ratio": g.prefix.map(|p| p.get())})
}

fn summary_json(agg: &Aggregate) -> serde_json::Value {
    let point = |i: usize| {
        let r = &agg.rows[i];
        json!({
            "job": r.config.job, "point": r.point, "concurrency": r.concurrency,
            "effective_concurrency": r.effective_concurrency, "request_rate": r.request_rate,
            "prefix_ratio": r.prefix_ratio,
            "search": r.search, "max_load_meeting_slo": r.max_load_meeting_slo,
            "tps_per_user": r.tps_per_user, "tps_per_gpu": r.tps_per_gpu(agg.analysis.basis),
        })
    };
    let mut states = serde_json::Map::new();
    for r in &agg.rows {
        let n = states.entry(r.state.clone()).or_insert(json!(0));
        *n = json!(n.as_u64().unwrap_or(0) + 1);
    }
    json!({
        "points": agg.rows.len(),
        "states": states,
        "gpu_basis": match agg.analysis.basis { GpuBasis::Working => "working", GpuBasis::Allocated => "allocated" },
        "frontiers": agg.analysis.frontiers.iter().map(|f| json!({
            "group": group_json(&f.group),
            "points": f.rows.iter().map(|&i| point(i)).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "best": agg.analysis.best.iter().map(|b| json!({
            "min_tps_user": b.min_tps_user, "group": group_json(&b.group), "point": b.row.map(point),
        })).collect::<Vec<_>>(),
        "disagg_over_agg": agg.analysis.ratios.iter().map(|r| json!({
            "group": group_json(&r.group),
            "samples": r.samples.iter().map(|&(x, d, a)| json!({
                "tps_per_user": x, "disagg_tps_per_gpu": d, "agg_tps_per_gpu": a, "ratio": d / a,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "warnings": agg.warnings.iter().map(|w| json!({"path": w.path, "message": w.message})).collect::<Vec<_>>(),
    })
}
