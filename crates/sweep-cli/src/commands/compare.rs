//! `sweep compare BASE CANDIDATE`: both sides aggregated, the candidate held against the base
//! (`sweep_aggregate::compare`). The table (or JSON) goes to stdout, what was written to
//! stderr; a regression past its threshold is exit code 17.

use std::io::Write;
use std::path::PathBuf;

use sweep_aggregate::compare::{self, Comparison};
use sweep_aggregate::Options;

use crate::error::Error;

#[derive(Debug)]
pub struct Settings {
    pub base: PathBuf,
    pub candidate: PathBuf,
    pub options: Options,
    pub compare: compare::Settings,
    /// Differences between the sides that are intended (`model`, `engine`, `workload`).
    pub allow: Vec<String>,
    /// Where `compare.md` and `compare.json` go.
    pub output: Option<PathBuf>,
    pub junit: Option<PathBuf>,
    pub json: bool,
}

pub fn run(settings: &Settings) -> Result<(), Error> {
    let base = sweep_aggregate::aggregate(std::slice::from_ref(&settings.base), &settings.options)
        .map_err(Error::Aggregate)?;
    let candidate = sweep_aggregate::aggregate(std::slice::from_ref(&settings.candidate), &settings.options)
        .map_err(Error::Aggregate)?;
    if let Some(why) = compare::incomparable(&base, &candidate, &settings.allow) {
        return Err(Error::Incomparable(why));
    }
    let comparison = compare::compare(&base, &candidate, &settings.compare);
    let table = compare::table(&comparison);
    let json = serde_json::to_string_pretty(&comparison).map_err(|e| Error::Output(e.into()))?;
    let mut written = Vec::new();
    if let Some(dir) = &settings.output {
        std::fs::create_dir_all(dir).map_err(|e| Error::Write { path: dir.clone(), source: e })?;
        for (name, text) in [("compare.md", markdown(&comparison, &table)), ("compare.json", json.clone())] {
            let path = dir.join(name);
            std::fs::write(&path, text).map_err(|e| Error::Write { path: path.clone(), source: e })?;
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

fn markdown(comparison: &Comparison, table: &str) -> String {
    let counts: Vec<String> = comparison.counts.iter().map(|(k, n)| format!("{n} {k}")).collect();
    format!("# Comparison\n\n{} points: {}.\n\n{table}", comparison.points.len(), counts.join(", "))
}
