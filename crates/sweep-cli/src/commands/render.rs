//! `sweep render FILE -o DIR`: the sweep folder as `sweep submit` would create it, without
//! submitting anything (the writing is `sweep_submit::render`'s).

use std::io::Write;
use std::path::PathBuf;

use sweep_submit::render::{self as library, Prepared};

use crate::commands::plan::load_and_plan;
use crate::error::Error;

#[derive(Debug)]
pub struct Settings {
    pub file: PathBuf,
    pub output: PathBuf,
    pub limits: crate::commands::plan::Limits,
    pub options: library::Options,
    /// Skip `sweep check` (the engines' own option parsers) before writing.
    pub no_check: bool,
    /// Print each job's script and engine configs on stdout (`render --print`, `submit
    /// --dry-run`), only job `job`'s when given.
    pub print: bool,
    pub job: Option<String>,
}

pub fn run(settings: &Settings) -> Result<(), Error> {
    let prepared = prepare(settings)?;
    check_unless_told(&prepared, settings)?;
    let rendered = library::write(&prepared, &settings.output)?;
    eprintln!(
        "rendered {} jobs ({} points) into {}: {} files, {}",
        rendered.jobs,
        rendered.points,
        rendered.dir.display(),
        rendered.files,
        size(rendered.bytes)
    );
    let mut stdout = std::io::stdout().lock();
    if !settings.print {
        return writeln!(stdout, "{}", rendered.dir.display()).map_err(Error::Output);
    }
    let sweep = sweep_folder::SweepDir::open(&rendered.dir)?;
    let manifest = sweep.read_manifest()?;
    let jobs: Vec<Listed> = (0..manifest.jobs.len()).map(|index| Listed { index, command: None }).collect();
    print_jobs(&mut stdout, &sweep, &manifest, &jobs, settings.job.as_deref())
}

/// The spec read, planned and made ready to render: nothing is written yet. `--job` must name
/// one of the plan's jobs.
pub fn prepare(settings: &Settings) -> Result<Prepared, Error> {
    let (text, document, plan) = load_and_plan(&settings.file, settings.limits)?;
    if let Some(name) = &settings.job {
        if !plan.jobs.iter().any(|j| &j.name == name) {
            let names: Vec<&str> = plan.jobs.iter().map(|j| j.name.as_str()).collect();
            return Err(Error::Usage(format!(
                "--job {name}: the plan has no such job; its jobs are {}",
                names.join(", ")
            )));
        }
    }
    Ok(Prepared::new(text.into_bytes(), document, plan, &settings.options)?)
}

/// A job to print: its manifest index and the command that would start it.
pub struct Listed {
    pub index: usize,
    pub command: Option<String>,
}

/// Each job's files under a header, in the order given; only job `only`'s when set. The
/// headers (`==> job … <==` per job, `--- path ---` per file) are `head`'s style, so a reader
/// can split the output again.
pub fn print_jobs(
    out: &mut impl Write,
    sweep: &sweep_folder::SweepDir,
    manifest: &sweep_folder::Manifest,
    jobs: &[Listed],
    only: Option<&str>,
) -> Result<(), Error> {
    let total = jobs.len();
    for (n, listed) in jobs.iter().enumerate() {
        let job = &manifest.jobs[listed.index];
        if only.is_some_and(|name| name != job.name) {
            continue;
        }
        let files = library::job_files(sweep, job)?;
        let w = |out: &mut dyn Write| -> std::io::Result<()> {
            let points = match job.points.len() {
                1 => "1 point".to_owned(),
                n => format!("{n} points"),
            };
            writeln!(out, "==> job {} ({} of {total}, {points}): {} <==", job.name, n + 1, job.dir)?;
            if let Some(command) = &listed.command {
                writeln!(out, "$ {command}")?;
            }
            for (path, text) in &files {
                writeln!(out, "--- {path} ({}) ---", size(text.len() as u64))?;
                out.write_all(text.as_bytes())?;
                if !text.ends_with('\n') {
                    writeln!(out)?;
                }
            }
            writeln!(out)
        };
        w(out).map_err(Error::Output)?;
    }
    Ok(())
}

/// A size for people: bytes, KiB or MiB.
pub fn size(bytes: u64) -> String {
    match bytes {
        0..=1023 => format!("{bytes} B"),
        1024..=1_048_575 => format!("{:.1} KiB", bytes as f64 / 1024.0),
        _ => format!("{:.1} MiB", bytes as f64 / 1_048_576.0),
    }
}

/// `sweep check` before anything is written, unless `--no-check`.
pub fn check_unless_told(prepared: &Prepared, settings: &Settings) -> Result<(), Error> {
    if settings.no_check {
        return Ok(());
    }
    crate::commands::check::finish(sweep_submit::check::check(prepared)?)
}
