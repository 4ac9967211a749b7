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
    pub max_points: u64,
    pub options: library::Options,
    /// Skip `sweep check` (the engines' own option parsers) before writing.
    pub no_check: bool,
}

pub fn run(settings: &Settings) -> Result<(), Error> {
    let prepared = prepare(settings)?;
    check_unless_told(&prepared, settings)?;
    let rendered = library::write(&prepared, &settings.output)?;
    eprintln!(
        "rendered {} job scripts for {} points into {}",
        rendered.jobs,
        rendered.points,
        rendered.dir.display()
    );
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{}", rendered.dir.display()).map_err(Error::Output)
}

/// The spec read, planned and made ready to render: nothing is written yet.
pub fn prepare(settings: &Settings) -> Result<Prepared, Error> {
    let (text, document, plan) = load_and_plan(&settings.file, settings.max_points)?;
    Ok(Prepared::new(text.into_bytes(), document, plan, &settings.options)?)
}

/// `sweep check` before anything is written, unless `--no-check`.
pub fn check_unless_told(prepared: &Prepared, settings: &Settings) -> Result<(), Error> {
    if settings.no_check {
        return Ok(());
    }
    crate::commands::check::finish(sweep_submit::check::check(prepared)?)
}
