//! `sweep history add|list|show`: the results history (`sweep_history`). Ids and tables go to
//! stdout, what was done to stderr.

use std::io::Write;
use std::path::PathBuf;

use sweep_aggregate::compare::Results;
use sweep_history::{Entry, History, NewSweep};

use crate::error::Error;
use crate::text::{aligned, utc};

#[derive(Debug)]
pub enum Action {
    /// Aggregate a sweep and keep its points and provenance.
    Add {
        dir: PathBuf,
        tags: Vec<String>,
        commit: Option<String>,
        options: sweep_aggregate::Options,
    },
    List {
        tag: Option<String>,
        limit: Option<usize>,
    },
    Show {
        selector: String,
    },
}

#[derive(Debug)]
pub struct Settings {
    pub db: PathBuf,
    pub action: Action,
    pub json: bool,
}

pub fn run(settings: &Settings) -> Result<(), Error> {
    let mut stdout = std::io::stdout().lock();
    let mut stderr = std::io::stderr().lock();
    match &settings.action {
        Action::Add { dir, tags, commit, options } => {
            let agg =
                sweep_aggregate::aggregate(std::slice::from_ref(dir), options).map_err(Error::Aggregate)?;
            let sweep = NewSweep::of(dir, &agg, tags, commit.clone());
            // A sweep that measured nothing valid would be an empty baseline: refuse it.
            if sweep.points.is_empty() {
                return Err(Error::NothingToKeep { dir: dir.clone(), points: agg.rows.len() });
            }
            let mut history = History::create(&settings.db)?;
            let id = history.add(&sweep)?;
            writeln!(stdout, "{id}").map_err(Error::Output)?;
            let _ = writeln!(
                stderr,
                "added {} as sweep {id} ({} points) to {}",
                dir.display(),
                sweep.points.len(),
                settings.db.display()
            );
        }
        Action::List { tag, limit } => {
            let entries = History::open(&settings.db)?.list(tag.as_deref(), *limit)?;
            if settings.json {
                serde_json::to_writer_pretty(&mut stdout, &entries).map_err(|e| Error::Output(e.into()))?;
                writeln!(stdout).map_err(Error::Output)?;
            } else {
                stdout.write_all(list_table(&entries).as_bytes()).map_err(Error::Output)?;
            }
        }
        Action::Show { selector } => {
            let history = History::open(&settings.db)?;
            let entry = history.resolve(selector)?;
            let results = history.results(entry.id)?;
            if settings.json {
                let both = serde_json::json!({ "sweep": entry, "results": results });
                serde_json::to_writer_pretty(&mut stdout, &both).map_err(|e| Error::Output(e.into()))?;
                writeln!(stdout).map_err(Error::Output)?;
            } else {
                stdout.write_all(show_text(&entry, &results).as_bytes()).map_err(Error::Output)?;
            }
        }
    }
    Ok(())
}

fn or_dash(v: &Option<String>) -> String {
    v.clone().unwrap_or_else(|| "-".to_owned())
}

fn list_table(entries: &[Entry]) -> String {
    let mut lines = vec![["ID", "TIME", "SWEEP", "ENGINE", "VERSION", "COMMIT", "TAGS", "POINTS"]
        .map(str::to_owned)
        .to_vec()];
    for e in entries {
        lines.push(vec![
            e.id.to_string(),
            utc(e.time()),
            e.keys.name.clone(),
            or_dash(&e.keys.engine),
            or_dash(&e.keys.version),
            e.keys.commit.as_deref().map_or_else(|| "-".to_owned(), |c| c.chars().take(12).collect()),
            if e.keys.tags.is_empty() { "-".to_owned() } else { e.keys.tags.join(",") },
            e.points.to_string(),
        ]);
    }
    aligned(&lines, 7)
}

fn show_text(e: &Entry, results: &Results) -> String {
    let mut out = format!(
        "sweep {} ({}), {}\n  path     {}\n  engine   {} {}\n  image    {}\n  commit   {}\n  spec     {}\n  tags     {}\n\n",
        e.id,
        e.keys.name,
        utc(e.time()),
        e.keys.path,
        or_dash(&e.keys.engine),
        or_dash(&e.keys.version),
        or_dash(&e.keys.image),
        or_dash(&e.keys.commit),
        or_dash(&e.keys.spec_sha256),
        if e.keys.tags.is_empty() { "-".to_owned() } else { e.keys.tags.join(", ") },
    );
    let fmt = |p: &sweep_aggregate::compare::Point, name: &str| {
        p.figures.get(name).map_or_else(|| "-".to_owned(), |s| format!("{:.1}", s.mean))
    };
    let mut lines = vec![["POINT", "JOB", "N", "TOK/S/USER", "TOK/S/GPU", "TTFT P50 MS", "ITL P50 MS"]
        .map(str::to_owned)
        .to_vec()];
    for p in &results.points {
        lines.push(vec![
            p.key.clone(),
            p.job.clone(),
            p.figures.values().map(|s| s.n).max().unwrap_or(1).to_string(),
            fmt(p, "tps_per_user"),
            fmt(p, "tps_per_gpu_working"),
            fmt(p, "ttft_p50_ms"),
            fmt(p, "itl_p50_ms"),
        ]);
    }
    out.push_str(&aligned(&lines, 2));
    out
}
