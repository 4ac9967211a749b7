//! `sweep compare BASE CANDIDATE` (or `--baseline SEL CANDIDATE`): each side read into
//! [`Results`] (a sweep folder aggregated, a `results.json`, or a history entry), the candidate
//! held against the base (`sweep_aggregate::compare`). The table (or JSON) goes to stdout, what
//! was written to stderr; a regression past its threshold is exit code 17.

use std::io::Write;
use std::path::PathBuf;

use sweep_aggregate::compare;
use sweep_aggregate::Options;

use crate::comparing::{self, Side};
use crate::error::Error;

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

pub fn run(settings: &Settings) -> Result<(), Error> {
    let (base, base_label) = comparing::read(&settings.base, &settings.options)?;
    let (candidate, candidate_label) = comparing::read(&settings.candidate, &settings.options)?;
    if let Some(why) = compare::incomparable(&base, &candidate, &settings.allow) {
        return Err(Error::Incomparable(why));
    }
    let comparison = compare::compare(&base, &candidate, &settings.compare);
    let table = comparing::text(&comparison);
    let json = serde_json::to_string_pretty(&comparison).map_err(|e| Error::Output(e.into()))?;
    let mut written = Vec::new();
    if let Some(dir) = &settings.output {
        written.extend(comparing::write(dir, &comparison, &base_label, &candidate_label)?);
    }
    if let Some(path) = &settings.junit {
        sweep_folder::file::write_atomically(path, compare::junit(&comparison).as_bytes())?;
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
