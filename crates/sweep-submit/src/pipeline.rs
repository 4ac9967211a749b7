//! The one planning pipeline every command that plans goes through (`plan`, `check`, `render`,
//! `submit`, and `explore` to come): read the spec file, parse and validate it, check the inputs
//! it names (datasets, traces), plan it, and estimate each point's memory when the spec gives
//! the GPUs' memory. [`Planned::prepare`] then makes it ready to render, and
//! [`crate::check::check`] holds the launch commands against the engines' own option parsers.
//!
//! Nothing is printed here: the plan's warnings stay in [`sweep_plan::Plan::warnings`] for the
//! caller to show, with the spec's text and positions kept in [`Planned`] to point at.

use std::path::{Path, PathBuf};

use sweep_plan::{Plan, PlanOptions};
use sweep_spec::{Document, SourceMap};

use crate::render::{Options, Prepared};
use crate::SubmitError;

/// What planning drops or refuses, the same for every command that plans.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The most points the space may expand to, before filters (`--max-points`).
    pub max_points: u64,
    /// Drop the points the capacity estimate finds over their servers' KV cache.
    pub prune_infeasible: bool,
}

/// A spec file read, validated and planned.
#[derive(Debug)]
pub struct Planned {
    pub file: PathBuf,
    /// The file's text as given (a sweep folder keeps it byte for byte).
    pub text: String,
    pub document: Document,
    pub plan: Plan,
}

/// Why a spec file could not be planned; each carries what a message needs to point into it.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("cannot read `{}`: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The spec is invalid (or an input it names is).
    #[error("{error}")]
    Spec { file: String, text: String, error: Box<sweep_spec::SpecError> },
    /// The spec is valid but cannot be planned.
    #[error("{error}")]
    Plan { file: String, text: String, source_map: Box<SourceMap>, error: Box<sweep_plan::PlanError> },
    /// An option asks for what the spec cannot give (`--prune-infeasible` without the capacity
    /// estimate's inputs).
    #[error("{0}")]
    Usage(String),
}

/// Reads, validates and plans the spec at `file`.
pub fn plan(file: &Path, limits: Limits) -> Result<Planned, PipelineError> {
    let text = std::fs::read_to_string(file)
        .map_err(|source| PipelineError::Read { path: file.to_owned(), source })?;
    let display = file.display().to_string();
    let document = match sweep_spec::load(&text)
        .and_then(|d| sweep_spec::check_inputs(&d, |path| std::fs::read(path)).map(|()| d))
    {
        Ok(document) => document,
        Err(error) => return Err(PipelineError::Spec { file: display, text, error: Box::new(error) }),
    };
    let planned = sweep_plan::plan(&document.spec, &PlanOptions { max_points: limits.max_points })
        .map_err(Failed::Plan)
        .and_then(|plan| estimate_capacity(&document, plan, limits.prune_infeasible));
    match planned {
        Ok(plan) => Ok(Planned { file: file.to_owned(), text, document, plan }),
        Err(Failed::Plan(error)) => Err(PipelineError::Plan {
            file: display,
            text,
            source_map: Box::new(document.source_map),
            error: Box::new(error),
        }),
        Err(Failed::Spec(error)) => Err(PipelineError::Spec { file: display, text, error: Box::new(error) }),
        Err(Failed::Usage(message)) => Err(PipelineError::Usage(message)),
    }
}

impl Planned {
    /// Ready to render with `options` (templates loaded, executor chosen, allocation checked);
    /// nothing is written yet.
    pub fn prepare(self, options: &Options) -> Result<Prepared, SubmitError> {
        Prepared::new(self.text.into_bytes(), self.document, self.plan, options)
    }
}

enum Failed {
    Plan(sweep_plan::PlanError),
    Spec(sweep_spec::SpecError),
    Usage(String),
}

/// The capacity check, when the spec gives `cluster.gpu_memory_gb` and the model's `config.json`
/// can be read here; a config the estimate cannot use is a warning and planning goes on.
fn estimate_capacity(document: &Document, mut plan: Plan, prune: bool) -> Result<Plan, Failed> {
    let spec = &document.spec;
    let config = sweep_spec::read_model_config(document, |path| std::fs::read(path)).map_err(Failed::Spec)?;
    let Some(gpu_memory_gb) = spec.cluster.gpu_memory_gb else {
        if prune {
            return Err(Failed::Usage(
                "--prune-infeasible needs the capacity estimate: set `cluster.gpu_memory_gb` (one GPU's memory in GiB) in the spec".into(),
            ));
        }
        return Ok(plan);
    };
    let skipped = |why: String| {
        if prune {
            Err(Failed::Usage(format!("--prune-infeasible needs the capacity estimate, and {why}")))
        } else {
            Ok(sweep_plan::Warning {
                path: sweep_spec::KeyPath::keys("model.config"),
                message: format!("capacity not estimated: {why}"),
            })
        }
    };
    let warning = match config {
        None => skipped(format!(
            "`{}/config.json` cannot be read here; set `model.config` to the model's config.json",
            spec.model.path.trim_end_matches('/')
        ))?,
        Some((path, text)) => match sweep_plan::capacity::ModelShape::from_config(&text) {
            Ok(shape) => {
                let settings = sweep_plan::capacity::Settings::new(spec, &shape, gpu_memory_gb);
                return sweep_plan::capacity::assess(spec, plan, &shape, &settings, prune)
                    .map_err(Failed::Plan);
            }
            Err(error) => skipped(format!("`{path}`: {error}"))?,
        },
    };
    plan.warnings.push(warning);
    Ok(plan)
}
