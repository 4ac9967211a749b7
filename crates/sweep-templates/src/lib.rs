//! Renders a planned job into its sbatch script and its engines' launch commands and configs.
//!
//! Templates live in the workspace's `templates/` folder and are compiled into the binary; a
//! user folder (`cluster.templates_dir` or `--templates DIR`) overrides any of them by path.
//! Safety does not depend on template authors: in `*.sh.j2` templates every interpolated value is
//! shell-quoted by the formatter unless a filter of ours produced it as safe shell text, and
//! `#SBATCH` values go through `directive`, which refuses line breaks. Undefined variables are
//! errors, never empty strings. `docs/templates.md` lists the context.

pub mod check;
mod shell;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use minijinja::{AutoEscape, Environment, UndefinedBehavior, Value};

pub use shell::quote;
pub use sweep_folder::job::{JobContext, JobPaths, ServerContext};
pub use sweep_folder::Executor;

/// The templates shipped with sweep, by path under `templates/`.
pub const BUILTIN: &[(&str, &str)] = &[
    ("sbatch.sh.j2", include_str!("../../../templates/sbatch.sh.j2")),
    ("local.sh.j2", include_str!("../../../templates/local.sh.j2")),
    ("engines/mock/command.sh.j2", include_str!("../../../templates/engines/mock/command.sh.j2")),
    ("engines/mock/frontend.sh.j2", include_str!("../../../templates/engines/mock/frontend.sh.j2")),
    ("engines/trtllm/command.sh.j2", include_str!("../../../templates/engines/trtllm/command.sh.j2")),
    ("engines/trtllm/frontend.sh.j2", include_str!("../../../templates/engines/trtllm/frontend.sh.j2")),
    ("engines/trtllm/config.yaml.j2", include_str!("../../../templates/engines/trtllm/config.yaml.j2")),
    ("engines/sglang/command.sh.j2", include_str!("../../../templates/engines/sglang/command.sh.j2")),
    ("engines/sglang/frontend.sh.j2", include_str!("../../../templates/engines/sglang/frontend.sh.j2")),
    ("engines/vllm/command.sh.j2", include_str!("../../../templates/engines/vllm/command.sh.j2")),
    ("engines/vllm/frontend.sh.j2", include_str!("../../../templates/engines/vllm/frontend.sh.j2")),
    ("engines/dynamo/command.sh.j2", include_str!("../../../templates/engines/dynamo/command.sh.j2")),
    ("engines/dynamo/frontend.sh.j2", include_str!("../../../templates/engines/dynamo/frontend.sh.j2")),
];

/// Engine kinds with launch templates.
pub const ENGINES: &[&str] = &["mock", "custom", "trtllm", "vllm", "sglang", "dynamo"];

/// Why a job could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// A user template folder could not be read.
    #[error("cannot read the template `{}`: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A `custom` engine's job needs a command the spec does not give.
    #[error("a custom engine needs `engine.commands.{0}` for this job; add it to the spec")]
    MissingCommand(String),
    /// The engine kind has no launch templates.
    #[error("engine kind `{0}` has no launch templates; a `custom` engine takes each role's command in `engine.commands`")]
    UnsupportedEngine(String),
    /// The engine's templates cannot launch this job's layout.
    #[error("job `{job}`: {why}")]
    UnsupportedLayout { job: String, why: String },
    /// A template does not parse or failed while rendering (an undefined variable, a value a
    /// filter refused).
    #[error("template `{template}`: {source}")]
    Template {
        template: String,
        #[source]
        source: minijinja::Error,
    },
}

/// The template a job of `executor` is rendered from.
fn script_template(executor: Executor) -> &'static str {
    match executor {
        // In an allocation the same script runs with `bash`: its `#SBATCH` lines are comments.
        Executor::Slurm | Executor::Allocation => "sbatch.sh.j2",
        Executor::Local => "local.sh.j2",
    }
}

/// The rendered script of one job, and the files its engines read (path relative to the job's
/// folder, contents): e.g. TensorRT-LLM's per-role `configs/<role>.yaml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedJob {
    pub script: String,
    pub files: Vec<(String, String)>,
    /// Each step's launch command (server name, or `disagg_server_0`, and its shell text), as
    /// the script runs it: what `sweep check` holds against the engines' own options.
    pub commands: Vec<(String, String)>,
}

/// CUDA-graph batch sizes for a batch limit: 1, 2, 4, … below it, and the limit itself.
fn cuda_graph_batch_sizes(batch: u32) -> Vec<u32> {
    let mut sizes: Vec<u32> =
        std::iter::successors(Some(1u32), |s| s.checked_mul(2)).take_while(|&s| s < batch).collect();
    sizes.push(batch.max(1));
    sizes
}

/// Layouts an engine's templates cannot launch, said before anything is rendered.
fn check_layout(job: &JobContext) -> Result<(), RenderError> {
    let refuse =
        |why: &str| Err(RenderError::UnsupportedLayout { job: job.name.clone(), why: why.to_owned() });
    match job.engine.as_str() {
        "trtllm" if job.frontend.is_some() && job.mode == "agg" => refuse(
            "TensorRT-LLM's disaggregated server routes prefill/decode pairs only, not several aggregated servers; run one aggregated server per job, or use `engine: {kind: dynamo, backend: trtllm}`",
        ),
        _ => Ok(()),
    }
}

/// The template environment: built-ins, overridden by a user folder.
#[derive(Debug)]
pub struct Templates {
    env: Environment<'static>,
}

impl Templates {
    /// Built-in templates, each replaced by `overrides/<same path>` when that file exists, plus a
    /// `custom` engine's commands (`engine.commands`), compiled once as `engine.commands.<key>`.
    pub fn new(overrides: Option<&Path>, commands: &BTreeMap<String, String>) -> Result<Self, RenderError> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_keep_trailing_newline(true);
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_auto_escape_callback(|name| {
            if name.ends_with(".sh.j2") {
                AutoEscape::Custom("sh")
            } else {
                AutoEscape::None
            }
        });
        env.set_formatter(shell::formatter);
        env.add_filter("argv", shell::argv);
        env.add_filter("directive", shell::directive);
        env.add_filter("nodelist", shell::nodelist);
        env.add_filter("flags", shell::flags);
        env.add_filter("cuda_graph_batch_sizes", cuda_graph_batch_sizes);
        // minijinja's own `tojson` marks its output safe, which in a `.sh.j2` template would skip
        // shell quoting — and JSON's `{a,b}` is brace expansion to bash. Ours returns plain text,
        // which the formatter quotes like any other value.
        env.add_filter("tojson", |value: Value| -> Result<String, minijinja::Error> {
            serde_json::to_string(&value).map_err(|e| {
                minijinja::Error::new(
                    minijinja::ErrorKind::InvalidOperation,
                    format!("cannot write JSON: {e}"),
                )
            })
        });
        for (name, source) in BUILTIN {
            let source = match overrides.map(|dir| dir.join(name)).filter(|path| path.is_file()) {
                Some(path) => {
                    std::fs::read_to_string(&path).map_err(|source| RenderError::Read { path, source })?
                }
                None => (*source).to_owned(),
            };
            env.add_template_owned(*name, source)
                .map_err(|source| RenderError::Template { template: (*name).to_owned(), source })?;
        }
        // The `.sh.j2` suffix gives them the same shell quoting as the built-in templates.
        for (key, source) in commands {
            let name = format!("engine.commands.{key}.sh.j2");
            env.add_template_owned(name.clone(), source.clone())
                .map_err(|source| RenderError::Template { template: name, source })?;
        }
        Ok(Self { env })
    }

    fn render(&self, name: &str, context: &Value) -> Result<String, RenderError> {
        let template = self
            .env
            .get_template(name)
            .map_err(|source| RenderError::Template { template: name.to_owned(), source })?;
        template.render(context).map_err(|source| RenderError::Template { template: name.to_owned(), source })
    }

    /// Renders one job: each server's launch command, the frontend's, then the script (sbatch
    /// or local) that runs them all.
    pub fn render_job(&self, mut job: JobContext, executor: Executor) -> Result<RenderedJob, RenderError> {
        let kind = job.engine.clone();
        if !ENGINES.contains(&kind.as_str()) {
            return Err(RenderError::UnsupportedEngine(kind));
        }
        check_layout(&job)?;
        let (command_template, frontend_template) = if kind == "custom" {
            (None, "engine.commands.frontend.sh.j2".to_owned())
        } else {
            (Some(format!("engines/{kind}/command.sh.j2")), format!("engines/{kind}/frontend.sh.j2"))
        };
        // The job is turned into a template value once and shared by every server's context
        // (values are reference-counted); commands are not part of what command templates see.
        let job_value = Value::from_serialize(&job);
        // TensorRT-LLM (alone or behind Dynamo) reads each role's options from a YAML file.
        let mut files = Vec::new();
        if kind == "trtllm" || job.backend.as_deref() == Some("trtllm") && kind == "dynamo" {
            for role in &job.roles {
                let context =
                    minijinja::context! { job => job_value.clone(), role => Value::from_serialize(role) };
                let config = self.render("engines/trtllm/config.yaml.j2", &context)?;
                files.push((format!("configs/{}.yaml", role.config.role.as_str()), config));
            }
        }
        for index in 0..job.servers.len() {
            let server = &job.servers[index];
            let role = job.roles.iter().find(|r| r.config.role == server.role);
            let context = minijinja::context! {
                job => job_value.clone(),
                server => Value::from_serialize(server),
                role => Value::from_serialize(role),
            };
            let template = match &command_template {
                Some(name) => name.clone(),
                None => format!("engine.commands.{}.sh.j2", server.role.as_str()),
            };
            let command = self.render_command(&template, &context)?;
            job.servers[index].command = with_env(&job, role.map(|r| &r.env), command);
        }
        if let Some(frontend) = job.frontend.clone() {
            let context = minijinja::context! { job => job_value.clone(), frontend => Value::from_serialize(&frontend) };
            let command = with_env(&job, None, self.render_command(&frontend_template, &context)?);
            job.frontend = Some(sweep_folder::job::FrontendContext { command, ..frontend });
        }
        let script = self
            .render(script_template(executor), &minijinja::context! { job => Value::from_serialize(&job) })?;
        let mut commands: Vec<(String, String)> =
            job.servers.iter().map(|s| (s.name.clone(), s.command.clone())).collect();
        commands.extend(job.frontend.map(|f| ("disagg_server_0".to_owned(), f.command)));
        Ok(RenderedJob { script, files, commands })
    }

    /// A launch command: the template's text, trimmed; a `custom` engine's missing command is an
    /// error, never an empty step.
    fn render_command(&self, name: &str, context: &Value) -> Result<String, RenderError> {
        if self.env.get_template(name).is_err() {
            if let Some(key) = name.strip_prefix("engine.commands.").and_then(|n| n.strip_suffix(".sh.j2")) {
                return Err(RenderError::MissingCommand(key.to_owned()));
            }
        }
        Ok(self.render(name, context)?.trim().to_owned())
    }
}

/// `command` run with the job's environment (`engine.env`, `engine.venv`) and its role's
/// (`<role>.env`, which wins), as `env NAME=value … command`: quoted here, once, for every
/// engine's template and a custom engine's command alike. A venv puts its `bin` first on the
/// `PATH` the step already has (expanded by the job's shell).
fn with_env(
    job: &JobContext,
    role: Option<&std::collections::BTreeMap<String, String>>,
    command: String,
) -> String {
    let vars: Vec<String> = job
        .env
        .iter()
        .chain(role.into_iter().flatten())
        .map(|(name, value)| format!("{name}={}", shell::quote(value)))
        .collect();
    let venv = job.venv.as_deref().map(|venv| {
        let venv = venv.trim_end_matches('/');
        format!("VIRTUAL_ENV={} PATH={}:\"$PATH\"", shell::quote(venv), shell::quote(&format!("{venv}/bin")))
    });
    if vars.is_empty() && venv.is_none() {
        return command;
    }
    let mut out = String::from("env");
    for part in venv.into_iter().chain(vars) {
        out.push(' ');
        out.push_str(&part);
    }
    out.push(' ');
    out.push_str(&command);
    out
}
