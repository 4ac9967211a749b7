//! `sweep compare BASE CANDIDATE` (or `--baseline SEL CANDIDATE`): each side read into
//! [`Results`] (a sweep folder aggregated, a `results.json`, or a history entry), the candidate
//! held against the base (`sweep_aggregate::compare`). The table (or JSON) goes to stdout, what
//! was written to stderr; a regression past its threshold is exit code 17.

use std::io::Write;
use std::path::{Path, PathBuf};

use sweep_aggregate::compare::{self, Comparison, Results};
use sweep_aggregate::Options;

use crate::error::Error;

/// Where a side's results come from.
#[derive(Debug, Clone)]
pub enum Side {
    /// A sweep folder or aiperf runs (aggregated), or a `results.json` file.
    Path(PathBuf),
    /// A sweep of the history: its id, `latest`, or a tag.
    History { db: PathBuf, selector: String },
}

#[derive(Debug)]
pub struct Settings {
    pub base: Side,
    pub candidate: Side,
    pub options: Options,
    pub compare: compare::Settings,
    /// Differences between the sides that are intended (`model`, `engine`, `workload`).
    pub allow: Vec<String>,
    /// Where `compare.md`, `compare.json` and `compare.html` go.
    pub output: Option<PathBuf>,
    pub junit: Option<PathBuf>,
    pub json: bool,
}

/// A side's results, and how the page names it.
pub fn read(side: &Side, options: &Options) -> Result<(Results, String), Error> {
    match side {
        Side::Path(path) if path.is_file() => Ok((read_results_file(path)?, path.display().to_string())),
        Side::Path(path) => {
            let agg =
                sweep_aggregate::aggregate(std::slice::from_ref(path), options).map_err(Error::Aggregate)?;
            Ok((Results::of(&agg), path.display().to_string()))
        }
        Side::History { db, selector } => {
            let history = sweep_history::History::open(db)?;
            let entry = history.resolve(selector)?;
            let label =
                format!("history sweep {} ({}, {})", entry.id, entry.name, crate::text::utc(entry.time()));
            Ok((history.results(entry.id)?, label))
        }
    }
}

fn read_results_file(path: &Path) -> Result<Results, Error> {
    let fail = |message: String| Error::Results { path: path.to_owned(), message };
    let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        fail(format!("not JSON ({e}); give a sweep folder or the results.json `sweep aggregate` writes"))
    })?;
    let format = value.get("format").and_then(serde_json::Value::as_u64);
    match format {
        Some(f) if f > u64::from(compare::RESULTS_FORMAT) => Err(fail(format!(
            "written in results format {f} by a newer sweep (this one reads up to {}); upgrade sweep",
            compare::RESULTS_FORMAT
        ))),
        Some(_) => serde_json::from_value(value).map_err(|e| fail(format!("not a results file: {e}"))),
        None => Err(fail("no `format`: not the results.json `sweep aggregate` writes".to_owned())),
    }
}

pub fn run(settings: &Settings) -> Result<(), Error> {
    let (base, base_label) = read(&settings.base, &settings.options)?;
    let (candidate, candidate_label) = read(&settings.candidate, &settings.options)?;
    if let Some(why) = compare::incomparable(&base, &candidate, &settings.allow) {
        return Err(Error::Incomparable(why));
    }
    let comparison = compare::compare(&base, &candidate, &settings.compare);
    let table = format!("{}\n{}", compare::table(&comparison), compare::frontier_table(&comparison));
    let json = serde_json::to_string_pretty(&comparison).map_err(|e| Error::Output(e.into()))?;
    let mut written = Vec::new();
    if let Some(dir) = &settings.output {
        std::fs::create_dir_all(dir).map_err(|e| Error::Write { path: dir.clone(), source: e })?;
        let html = compare::html(&comparison, &base_label, &candidate_label).map_err(|message| {
            Error::Aggregate(sweep_aggregate::Error::Plot { path: dir.join("compare.html"), message })
        })?;
        for (name, text) in [
            ("compare.md", markdown(&comparison, &table, &base_label, &candidate_label)),
            ("compare.json", json.clone()),
            ("compare.html", html),
        ] {
            let path = dir.join(name);
            sweep_folder::file::write_atomically(&path, text.as_bytes())?;
            written.push(path);
        }
    }
    if let Some(path) = &settings.junit {
        std::fs::write(path, compare::junit(&comparison))
            .map_err(|e| Error::Write { path: path.clone(), source: e })?;
        written.push(path.clone());
    }
    let mut stdout = std::io::stdout().lock();
    let shown = if settings.json { format!("{json}\n") } else { table };
    stdout.write_all(shown.as_bytes()).map_err(Error::Output)?;
    let mut stderr = std::io::stderr().lock();
    let counts: Vec<String> = comparison.counts.iter().map(|(k, n)| format!("{n} {k}")).collect();
    let _ = writeln!(stderr, "{} points compared: {}", comparison.points.len(), counts.join(", "));
    for path in written {
        let _ = writeln!(stderr, "wrote {}", path.display());
    }
    if comparison.regressed() {
        return Err(Error::Regressed(comparison.counts.get("regressed").copied().unwrap_or(0)));
    }
    Ok(())
}

fn markdown(comparison: &Comparison, table: &str, base: &str, candidate: &str) -> String {
    let counts: Vec<String> = comparison.counts.iter().map(|(k, n)| format!("{n} {k}")).collect();
    format!(
        "# Comparison\n\nBase: `{base}`. Candidate: `{candidate}`.\n\n{} points: {}.\n\n{table}",
        comparison.points.len(),
        counts.join(", ")
    )
}
