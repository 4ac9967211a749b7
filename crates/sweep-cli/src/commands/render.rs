//! `sweep render FILE -o DIR`: the sweep folder as `sweep submit` would create it, without
//! submitting anything (the writing is `sweep_submit::render`'s).

use std::io::Write;

use sweep_submit::render as library;

use crate::error::Error;
use crate::prepare::{check_unless_told, prepare, print_jobs, size, Listed, Settings};

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
