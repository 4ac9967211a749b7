//! Every option a job's launch commands give an engine, held against the options that engine's
//! own parser lists (`vllm serve --help=all`, `python3 -m dynamo.<component> --help`, `python3 -m
//! sglang.launch_server --help`, `trtllm-serve serve --help`, `vllm-router --help`) where the
//! engine is installed on this node — before any GPU-hour is spent on an engine that exits at
//! its first argument. An engine that is not installed here is said so and not checked.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sweep_templates::check::{self, Invocation, Program};

use crate::render::{self, Prepared};
use crate::SubmitError;

/// An engine's help is read once per program; a slow import (vLLM's takes seconds) is waited
/// for this long.
const HELP_TIMEOUT: Duration = Duration::from_secs(300);

/// What was found for one program.
#[derive(Debug)]
pub enum Outcome {
    /// Its help was read: this many options known, this many of ours held against them.
    Checked { known: usize, given: usize },
    /// It is not installed here (or its help could not be read): why.
    NotChecked(String),
}

#[derive(Debug)]
pub struct Report {
    /// Per program: the steps that run it, and what was found.
    pub programs: Vec<(Program, Vec<String>, Outcome)>,
    pub unknown: Vec<UnknownOption>,
    /// Services the jobs start beside the engine that are not on this node's `PATH`.
    pub missing: Vec<MissingProgram>,
}

/// A program a job's step starts (a service beside the engine) that is not installed here: the
/// step would die in its first second and the job fail later for another reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingProgram {
    pub program: String,
    /// Why the job needs it.
    pub needed_for: String,
    /// What to do instead.
    pub fix: String,
}

/// The services the spec's jobs start beside the engine, missing from this node's `PATH`. Inside
/// a container they come with the image, and are not looked for here.
pub fn missing_programs(spec: &sweep_spec::Spec) -> Vec<MissingProgram> {
    let etcd = spec.engine.dynamo.is_some_and(|planes| planes.discovery == sweep_spec::Discovery::Etcd);
    if !etcd || spec.cluster.container.is_some() {
        return Vec::new();
    }
    ["etcd", "nats-server"]
        .into_iter()
        .filter(|program| !on_path(program))
        .map(|program| MissingProgram {
            program: program.to_owned(),
            needed_for: "`engine.discovery: etcd` (the frontend's step starts etcd and NATS)".to_owned(),
            fix: "set `engine.discovery: file` (no etcd or NATS needed), or install it where the jobs run"
                .to_owned(),
        })
        .collect()
}

/// Whether `program` is an executable file in a folder of `PATH`.
fn on_path(program: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).any(|dir| {
        std::fs::metadata(dir.join(program)).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

/// An option a launch command gives an engine that the engine's `--help` does not list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownOption {
    pub job: String,
    /// The step (`gen_0`, `disagg_server_0`), hence the role.
    pub step: String,
    pub program: String,
    pub option: String,
    /// Set when the option is known but this value is not among its choices (argparse's
    /// `{a,b}`, clap's `[possible values: …]`): the value, and the choices.
    pub value: Option<(String, Vec<String>)>,
    /// The closest option it takes, or (for a refused value) the closest choice.
    pub closest: Option<String>,
}

/// Renders every job's launch commands and holds each engine's options against its help.
pub fn check(prepared: &Prepared) -> Result<Report, SubmitError> {
    let commands = render::launch_commands(prepared, Path::new("/sweep"))?;
    let mut by_program: BTreeMap<Program, Vec<(String, String, Invocation)>> = BTreeMap::new();
    for (job, step, command) in commands {
        for invocation in check::invocations(&command) {
            by_program.entry(invocation.program.clone()).or_default().push((
                job.clone(),
                step.clone(),
                invocation,
            ));
        }
    }
    let mut report =
        Report { programs: Vec::new(), unknown: Vec::new(), missing: missing_programs(prepared.spec()) };
    for (program, uses) in by_program {
        let mut steps: Vec<String> = uses.iter().map(|(_, step, _)| step.clone()).collect();
        steps.sort();
        steps.dedup();
        let outcome = match read_help(&program) {
            Err(why) => Outcome::NotChecked(why),
            Ok(help) => {
                let known = check::known_options(&help);
                let choices = check::choices(&help);
                let mut given = std::collections::BTreeSet::new();
                for (job, step, invocation) in &uses {
                    given.extend(invocation.options.iter().cloned());
                    let unknown = check::unknown_options(invocation, &known)
                        .into_iter()
                        .map(|u| (u.option, None, u.closest));
                    // Every value of every axis reaches some job's command: each is held
                    // against the option's choices.
                    let refused = check::refused_values(invocation, &choices).into_iter().map(|r| {
                        let closest = sweep_spec::closest(&r.value, r.choices.iter().map(String::as_str));
                        (r.option, Some((r.value, r.choices)), closest)
                    });
                    for (option, value, closest) in unknown.chain(refused) {
                        let duplicate = report.unknown.iter().any(|u| {
                            u.program == program.name
                                && u.step == *step
                                && u.option == option
                                && u.value == value
                        });
                        if !duplicate {
                            report.unknown.push(UnknownOption {
                                job: job.clone(),
                                step: step.clone(),
                                program: program.name.clone(),
                                option,
                                value,
                                closest,
                            });
                        }
                    }
                }
                Outcome::Checked { known: known.len(), given: given.len() }
            }
        };
        report.programs.push((program, steps, outcome));
    }
    Ok(report)
}

/// The program's help text (stdout and stderr), or why it cannot be had.
fn read_help(program: &Program) -> Result<String, String> {
    let shown = program.help.join(" ");
    let mut child = Command::new(&program.help[0])
        .args(&program.help[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                format!("`{}` is not installed on this node (not on PATH)", program.help[0])
            }
            _ => format!("cannot run `{shown}`: {e}"),
        })?;
    // Read both pipes while waiting, so a long help text cannot fill a pipe and stall it.
    let (mut out, mut err) = (child.stdout.take(), child.stderr.take());
    let out = std::thread::spawn(move || read_all(out.as_mut()));
    let err = std::thread::spawn(move || read_all(err.as_mut()));
    let deadline = Instant::now() + HELP_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("`{shown}` did not answer within {HELP_TIMEOUT:?}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let text = out.join().unwrap_or_default() + &err.join().unwrap_or_default();
    if status.success() {
        return Ok(text);
    }
    let last = text.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim().to_owned();
    Err(if last.contains("No module named") {
        format!("not installed on this node ({last})")
    } else {
        format!("`{shown}` failed ({status}): {last}")
    })
}

fn read_all(pipe: Option<&mut impl std::io::Read>) -> String {
    let mut bytes = Vec::new();
    if let Some(pipe) = pipe {
        let _ = pipe.read_to_end(&mut bytes);
    }
    String::from_utf8_lossy(&bytes).into_owned()
}
