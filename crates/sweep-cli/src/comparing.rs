//! What `sweep compare` and `sweep ci` share, so that neither calls the other: reading a side
//! into [`Results`] and writing a comparison's files.

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
            let label = format!(
                "history sweep {} ({}, {})",
                entry.id,
                entry.keys.name,
                crate::text::utc(entry.time())
            );
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
        Some(format) if format > u64::from(compare::RESULTS_FORMAT) => {
            Err(Error::ResultsNewer { path: path.to_owned(), format })
        }
        Some(_) => serde_json::from_value(value).map_err(|e| fail(format!("not a results file: {e}"))),
        None => Err(fail("no `format`: not the results.json `sweep aggregate` writes".to_owned())),
    }
}

/// The console form: the points' table, then the frontiers'.
pub fn text(comparison: &Comparison) -> String {
    format!("{}\n{}", compare::table(comparison), compare::frontier_table(comparison))
}

/// Writes `compare.md`, `compare.json` and `compare.html` into `dir` (created if missing), each
/// whole or not at all; returns their paths.
pub fn write(
    dir: &Path,
    comparison: &Comparison,
    base: &str,
    candidate: &str,
) -> Result<Vec<PathBuf>, Error> {
    std::fs::create_dir_all(dir).map_err(|e| Error::Write { path: dir.to_owned(), source: e })?;
    let json = serde_json::to_string_pretty(comparison).map_err(|e| Error::Output(e.into()))?;
    let html = compare::html(comparison, base, candidate).map_err(|message| {
        Error::Aggregate(sweep_aggregate::Error::Plot { path: dir.join("compare.html"), message })
    })?;
    let counts: Vec<String> = comparison.counts.iter().map(|(k, n)| format!("{n} {k}")).collect();
    let markdown = format!(
        "# Comparison\n\nBase: `{base}`. Candidate: `{candidate}`.\n\n{} points: {}.\n\n{}",
        comparison.points.len(),
        counts.join(", "),
        text(comparison)
    );
    let mut written = Vec::new();
    for (name, text) in [("compare.md", markdown), ("compare.json", json), ("compare.html", html)] {
        let path = dir.join(name);
        sweep_folder::file::write_atomically(&path, text.as_bytes())?;
        written.push(path);
    }
    Ok(written)
}
