//! `sweep check FILE` (also run by `render` and `submit` unless `--no-check`): every option a
//! job's launch commands give an engine, held against the options that engine's own parser
//! lists, where the engine is installed on this node (`sweep_submit::check` does the checking;
//! this prints what it found).

use std::io::Write;

use sweep_submit::check::Outcome;

use crate::error::Error;
use crate::prepare::{prepare, report_check, Settings};

pub fn run(settings: &Settings, json: bool) -> Result<(), Error> {
    let prepared = prepare(settings)?;
    let report = sweep_submit::check::check(&prepared)?;
    let mut stdout = std::io::stdout().lock();
    if json {
        let programs: Vec<serde_json::Value> = report
            .programs
            .iter()
            .map(|(program, steps, outcome)| {
                let (state, known, reason) = match outcome {
                    Outcome::Checked { known, .. } => ("checked", Some(*known), None),
                    Outcome::NotChecked(why) => ("not_checked", None, Some(why.as_str())),
                };
                serde_json::json!({
                    "program": program.name, "help": program.help, "steps": steps,
                    "state": state, "known_options": known, "reason": reason,
                })
            })
            .collect();
        writeln!(stdout, "{}", serde_json::json!({"file": settings.file, "programs": programs}))
            .map_err(Error::Output)?;
    } else {
        writeln!(stdout, "{:<36} {:<12} {:>6}  STEPS", "PROGRAM", "STATE", "KNOWN").map_err(Error::Output)?;
        for (program, steps, outcome) in &report.programs {
            let (state, known) = match outcome {
                Outcome::Checked { known, .. } => ("checked", known.to_string()),
                Outcome::NotChecked(_) => ("not checked", "-".to_owned()),
            };
            writeln!(stdout, "{:<36} {:<12} {:>6}  {}", program.name, state, known, steps.join(" "))
                .map_err(Error::Output)?;
        }
    }
    report_check(report)
}
