//! `sweep ci CASES -o DIR`: every selected case of a cases file (`sweep_ci`) run as a sweep,
//! held against its baseline, and written up as one JUnit document. A summary line per case
//! goes to stdout, progress to stderr. Exit 17 when a case regressed, 10 when a case's sweep
//! could not run or measured nothing.

use std::io::Write;
use std::path::{Path, PathBuf};

use sweep_aggregate::compare::{self, Suite};
use sweep_ci::Case;
use sweep_submit::submit as library;

use crate::comparing::{self, Side};
use crate::error::Error;
use crate::prepare::{self, Console};

/// Where each case's base comes from.
#[derive(Debug, Clone)]
pub enum Baseline {
    /// No comparison: the first run (seed the history with `--record`).
    None,
    /// A previous `sweep ci -o DIR`: each case's base is `DIR/cases/<name>`.
    Dir(PathBuf),
    /// The history: `latest` (the case's newest sweep, tagged `ci:<name>`), a tag (the newest
    /// with both), or a sweep's id.
    History(String),
}

#[derive(Debug)]
pub struct Settings {
    pub file: PathBuf,
    pub output: PathBuf,
    /// `-k`: names containing any of these; every case when empty.
    pub select: Vec<String>,
    pub baseline: Baseline,
    pub db: PathBuf,
    /// Add each case's sweep to the history, tagged `ci:<name>` and these.
    pub record: Option<Vec<String>>,
    pub commit: Option<String>,
    /// How each case's sweep is rendered (its executor among them).
    pub render: sweep_submit::render::Options,
    pub limits: sweep_submit::pipeline::Limits,
    pub options: sweep_aggregate::Options,
    pub basis: sweep_aggregate::GpuBasis,
}

/// What became of a case.
enum Verdict {
    Compared { counts: String, regressed: bool, suite: Suite },
    NoBaseline(String),
    Failed(String),
}

pub fn run(settings: &Settings) -> Result<(), Error> {
    let text = std::fs::read_to_string(&settings.file)
        .map_err(|source| Error::Read { path: settings.file.clone(), source })?;
    let dir = settings.file.parent().unwrap_or(Path::new("."));
    let cases = sweep_ci::parse(&text, dir).map_err(|error| Error::Cases {
        file: settings.file.clone(),
        text: text.clone(),
        error,
    })?;
    let selected = cases.select(&settings.select).map_err(Error::Usage)?;
    if let Some(case) = cases.missing_specs(&selected).first() {
        let error = sweep_ci::CasesError {
            path: case.path.key("spec"),
            message: format!("{}: no such spec file", case.spec.display()),
            help: Some("spec paths are relative to the cases file's folder".to_owned()),
        };
        return Err(Error::Cases { file: settings.file.clone(), text, error });
    }
    if settings.output.exists() {
        return Err(sweep_submit::SubmitError::Exists { path: settings.output.clone() }.into());
    }
    let mut suites = Vec::new();
    let mut lines = Vec::new();
    for case in selected {
        eprintln!("case {}: {}", case.name, case.spec.display());
        let verdict = run_case(case, settings).unwrap_or_else(|e| Verdict::Failed(first_line(&e.render())));
        let (suite, line) = match &verdict {
            Verdict::Compared { counts, regressed, suite } => {
                (suite.clone(), format!("{} {counts}", if *regressed { "REGRESSED" } else { "ok" }))
            }
            Verdict::NoBaseline(why) => (Suite::skipped(&case.name, why), format!("no baseline ({why})")),
            Verdict::Failed(why) => (Suite::error(&case.name, why), format!("FAILED: {why}")),
        };
        suites.push(suite);
        lines.push((case.name.clone(), line, verdict));
    }
    let junit = settings.output.join("junit.xml");
    sweep_folder::file::write_atomically(&junit, compare::junit_document(&suites).as_bytes())?;
    let mut stdout = std::io::stdout().lock();
    let width = lines.iter().map(|l| l.0.len()).max().unwrap_or(0);
    for (name, line, _) in &lines {
        writeln!(stdout, "{name:<width$}  {line}").map_err(Error::Output)?;
    }
    eprintln!("wrote {}", junit.display());
    let failed = lines.iter().filter(|l| matches!(l.2, Verdict::Failed(_))).count();
    let regressed = lines.iter().filter(|l| matches!(l.2, Verdict::Compared { regressed: true, .. })).count();
    if failed > 0 {
        return Err(Error::CasesFailed { failed, total: lines.len() });
    }
    if regressed > 0 {
        return Err(Error::Regressed(regressed));
    }
    Ok(())
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().trim_start_matches("error: ").to_owned()
}

/// The case's sweep folder and its comparison's, under the run's output.
fn case_dirs(output: &Path, case: &Case) -> (PathBuf, PathBuf) {
    (output.join("cases").join(&case.name), output.join("compare").join(&case.name))
}

/// Runs one case's sweep to its end, records it if asked, and compares it with its baseline.
fn run_case(case: &Case, settings: &Settings) -> Result<Verdict, Error> {
    let (sweep_dir, compare_dir) = case_dirs(&settings.output, case);
    let prepare_settings = prepare::Settings {
        file: case.spec.clone(),
        output: sweep_dir.clone(),
        limits: settings.limits,
        options: settings.render.clone(),
        no_check: false,
        print: false,
        job: None,
    };
    let prepared = prepare::prepare(&prepare_settings)?;
    prepare::check_unless_told(&prepared, &prepare_settings)?;
    let options = library::Options { dry_run: false, resume: false, queue_limit: None };
    let outcome =
        library::run(prepared, &sweep_dir, settings.render.executor.is_some(), options, &mut Console)?;
    prepare::run_to_end(outcome, &sweep_folder::SweepDir::open(&sweep_dir)?)?;
    let agg = sweep_aggregate::aggregate(std::slice::from_ref(&sweep_dir), &settings.options)
        .map_err(Error::Aggregate)?;
    let candidate = compare::Results::of(&agg);
    if candidate.points.is_empty() {
        let mut states: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
        for row in &agg.rows {
            *states.entry(row.state.as_str()).or_default() += 1;
        }
        let states: Vec<String> = states.iter().map(|(s, n)| format!("{n} {s}")).collect();
        return Err(Error::Usage(format!("no valid point was measured ({})", states.join(", "))));
    }
    if let Some(tags) = &settings.record {
        let mut all = vec![format!("ci:{}", case.name)];
        all.extend(tags.iter().cloned());
        let mut history = sweep_history::History::create(&settings.db)?;
        let id =
            history.add(&sweep_history::NewSweep::of(&sweep_dir, &agg, &all, settings.commit.clone()))?;
        eprintln!("case {}: recorded as history sweep {id}", case.name);
    }
    let base = match &settings.baseline {
        Baseline::None => return Ok(Verdict::NoBaseline("no --baseline given".to_owned())),
        Baseline::Dir(dir) => {
            let base = dir.join("cases").join(&case.name);
            if !base.is_dir() {
                return Ok(Verdict::NoBaseline(format!("{} does not exist", base.display())));
            }
            Side::Path(base)
        }
        Baseline::History(selector) => {
            let history = sweep_history::History::open(&settings.db)?;
            let tag = format!("ci:{}", case.name);
            let entry = if selector.parse::<i64>().is_ok() {
                Some(history.resolve(selector)?)
            } else if selector == "latest" {
                // The newest sweep of this case other than the one just recorded.
                newest_before(&history, &[&tag], &sweep_dir)?
            } else {
                newest_before(&history, &[&tag, selector], &sweep_dir)?
            };
            match entry {
                Some(e) => Side::History { db: settings.db.clone(), selector: e.id.to_string() },
                None => return Ok(Verdict::NoBaseline(format!("no history sweep tagged {tag}"))),
            }
        }
    };
    let (base, base_label) = comparing::read(&base, &settings.options)?;
    if let Some(why) = compare::incomparable(&base, &candidate, &case.allow) {
        return Err(Error::Incomparable(why));
    }
    let compare_settings = compare::Settings {
        thresholds: case.thresholds.clone(),
        noise_floor: case.noise_floor,
        basis: settings.basis,
        min_tps_user: Vec::new(),
    };
    let comparison = compare::compare(&base, &candidate, &compare_settings);
    comparing::write(&compare_dir, &comparison, &base_label, &sweep_dir.display().to_string())?;
    let counts: Vec<String> = comparison.counts.iter().map(|(k, n)| format!("{n} {k}")).collect();
    eprint!("{}", comparing::text(&comparison));
    Ok(Verdict::Compared {
        counts: counts.join(", "),
        regressed: comparison.regressed(),
        suite: Suite::of(&case.name, &comparison),
    })
}

/// The newest history sweep with `tags` that is not the sweep at `dir` (just recorded).
fn newest_before(
    history: &sweep_history::History,
    tags: &[&str],
    dir: &Path,
) -> Result<Option<sweep_history::Entry>, Error> {
    let here = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_owned()).display().to_string();
    let mut entries = history.list(tags.first().copied(), None)?;
    entries.retain(|e| e.keys.path != here && tags.iter().all(|t| e.keys.tags.iter().any(|have| have == t)));
    Ok(entries.into_iter().next())
}
