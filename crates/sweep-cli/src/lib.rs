//! The `sweep` command. `main` hands the arguments to [`run`]; each subcommand lives in
//! [`commands`] and returns data for stdout or an [`Error`] that knows its exit code.

mod commands;
mod comparing;
mod diagnostic;
mod error;
mod exit;
mod exploring;
mod prepare;
mod text;

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

pub use error::Error;
pub use exit::Exit;

#[derive(Debug, Parser)]
#[command(name = "sweep", version, about = "SLURM-native sweeps of LLM inference serving configurations")]
struct Cli {
    /// More log output on stderr (-v: info, -vv: debug). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Expand a sweep spec into jobs and points with exact node, task and GPU layouts.
    Plan(PlanArgs),
    /// Hold every option the jobs' launch commands give an engine against the engine's own
    /// `--help`, where the engine is installed on this node.
    Check(CheckArgs),
    /// Write the sweep folder — spec, plan, manifest, every job's sbatch script — without
    /// submitting anything.
    Render {
        #[command(flatten)]
        render: RenderArgs,
        /// Also print every job's script and engine configs on stdout, each under a header.
        #[arg(long)]
        print: bool,
        /// With `--print`: only this job's files.
        #[arg(long, value_name = "NAME", requires = "print")]
        job: Option<String>,
    },
    /// Render the sweep folder, then submit every job with `sbatch` (recording each job id), or
    /// run them on this machine with `--executor local`.
    Submit {
        #[command(flatten)]
        render: RenderArgs,
        /// Render, then print every job's sbatch (or bash) command line, script and engine
        /// configs, each under a header; run nothing.
        #[arg(long, conflicts_with = "resume")]
        dry_run: bool,
        /// With `--dry-run`: only this job's.
        #[arg(long, value_name = "NAME", requires = "dry_run")]
        job: Option<String>,
        /// Continue the existing sweep folder: run only the points with no complete result
        /// (failed, cancelled, timed out, never run, or new in the spec). Nothing is overwritten.
        #[arg(long)]
        resume: bool,
        /// At most N of the sweep's jobs pending or running at once: N dependency chains
        /// (`--dependency=afterany`), each job waiting for the one before it in its chain.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
        max_in_queue: Option<u32>,
        /// With `--max-in-queue N`: submit only N jobs now and leave the rest in the folder for
        /// `sweep wait --submit-more` (for sites where held jobs count against MaxSubmitJobs).
        #[arg(long, requires = "max_in_queue")]
        waves: bool,
        /// One job at a time: `--max-in-queue 1`.
        #[arg(long, conflicts_with = "max_in_queue")]
        sequential: bool,
        /// Run the jobs as steps of the allocation this shell is in (`salloc`, an sbatch
        /// script), side by side where their nodes fit, instead of as new jobs in the queue.
        #[arg(long, conflicts_with_all = ["max_in_queue", "sequential", "executor"])]
        in_allocation: bool,
    },
    /// Each job's state: SLURM's (one squeue call) while it remembers the job, else the runner's
    /// status markers.
    Status {
        /// The sweep folder.
        dir: PathBuf,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// A line per point under each job.
        #[arg(long)]
        points: bool,
        /// Refresh every SECONDS until every job has ended.
        #[arg(long, value_name = "SECONDS", num_args = 0..=1, default_missing_value = "5")]
        watch: Option<f64>,
    },
    /// Block until every job of the sweep has ended; exit 0 when every point is done (15 when
    /// some are not, 16 on `--timeout`). Prints a line on stderr whenever a job changes state.
    Wait {
        /// The sweep folder.
        dir: PathBuf,
        /// Give up after this many seconds (the jobs go on).
        #[arg(long, value_name = "SECONDS", value_parser = seconds)]
        timeout: Option<f64>,
        /// Submit the jobs a `submit --waves` left in the folder as queued ones end, keeping at
        /// most its `--max-in-queue` pending or running.
        #[arg(long)]
        submit_more: bool,
        /// The first poll interval; each later one is half as long again, up to
        /// `--max-interval`.
        #[arg(long, value_name = "SECONDS", default_value_t = 2.0, value_parser = poll_seconds)]
        interval: f64,
        #[arg(long, value_name = "SECONDS", default_value_t = 60.0, value_parser = poll_seconds)]
        max_interval: f64,
    },
    /// Cancel the sweep's queued and running jobs, by job id.
    Cancel {
        /// The sweep folder.
        dir: PathBuf,
    },
    /// Merge every point under the folders into one table (results.parquet, results.csv), Pareto
    /// frontiers (pareto.csv) and plots; print the frontiers.
    Aggregate(AggregateArgs),
    /// Everything `aggregate` writes, plus a self-contained report.html and a report.md summary.
    Report(AggregateArgs),
    /// Hold a candidate's results against a base's: each point matched by its configuration and
    /// workload, each metric's delta with its interval, a verdict per point; exit 17 when a
    /// point regressed.
    Compare(CompareArgs),
    /// The results history: keep a sweep's results and provenance (`add`), list them, show
    /// one; `compare --baseline` and `report --history` read it.
    #[command(subcommand)]
    History(HistoryCommand),
    /// Run named performance cases (a cases file: spec and thresholds each) and hold each
    /// against its baseline: one command for a CI job, JUnit XML for its test report; exit 17
    /// when a case regressed.
    Ci(CiArgs),
    /// Measure the spec's jobs in waves, each chosen for the hypervolume it could add to the
    /// Pareto frontier per GPU-hour, until the budget is spent or nothing left can add to it
    /// (`docs/explore.md`). Rerunning it on the same folder resumes.
    Explore(ExploreArgs),
}

#[derive(Debug, clap::Args)]
struct ExploreArgs {
    /// The sweep spec (YAML): its planned jobs are the candidates.
    file: PathBuf,
    /// The sweep folder; an existing one written by `sweep explore` is resumed.
    #[arg(short, long, value_name = "DIR")]
    output: PathBuf,
    /// The budget in GPU-hours (GPUs held × the span from a job's first point's start to its
    /// last point's end).
    #[arg(long, value_name = "H", value_parser = positive, required_unless_present = "budget_share", conflicts_with = "budget_share")]
    budget_gpu_hours: Option<f64>,
    /// The budget as a share of the whole grid's cost, as estimated after each wave.
    #[arg(long, value_name = "SHARE", value_parser = share)]
    budget_share: Option<f64>,
    /// Jobs per wave at most.
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..))]
    wave: u32,
    /// How optimistic each unmeasured job's bound is, in spreads of its prediction.
    #[arg(long, value_name = "K", default_value_t = 1.0, value_parser = non_negative)]
    kappa: f64,
    /// Seeds the first wave's spread of the space.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// The first wave: `spread` (`--wave` jobs far apart, every load; few engine start-ups)
    /// or `census` (every job at its lowest load; a start-up per job, for when start-ups are
    /// cheap next to points).
    #[arg(long, value_enum, default_value_t = FirstWaveArg::Spread)]
    first_wave: FirstWaveArg,
    /// Before anything is measured, a point's assumed duration.
    #[arg(long, value_name = "SECONDS", default_value_t = 60.0, value_parser = positive)]
    prior_point_seconds: f64,
    /// Measure nothing: replay the choice against DIR, a sweep of the same spec measured
    /// whole, and print how it went (JSON) — for auditing a method or a budget.
    #[arg(long, value_name = "DIR")]
    replay: Option<PathBuf>,
    /// With `--replay`: `explore` (this command's choice), or a baseline: `random` or
    /// `halving`.
    #[arg(long, value_enum, default_value_t = StrategyArg::Explore, requires = "replay")]
    strategy: StrategyArg,
    /// `slurm` or `local`; beats the spec's `executor`.
    #[arg(long, value_enum)]
    executor: Option<ExecutorArg>,
    /// On SLURM: at most N of the sweep's jobs pending or running at once.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    max_in_queue: Option<u32>,
    /// Run each wave's jobs as steps of the allocation this shell is in (`salloc`, an sbatch
    /// script), side by side where their nodes fit, instead of as new jobs in the queue.
    #[arg(long, conflicts_with_all = ["max_in_queue", "executor", "replay"])]
    in_allocation: bool,
    /// The `sweep-runner` binary as compute nodes see it (default: beside `sweep`).
    #[arg(long, value_name = "PATH")]
    runner: Option<PathBuf>,
    #[command(flatten)]
    limits: LimitArgs,
    /// Tokens/s per GPU over the GPUs the servers use (`working`) or the job holds (`allocated`).
    #[arg(long, value_enum, default_value_t = GpusArg::Working)]
    gpus: GpusArg,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum FirstWaveArg {
    Spread,
    Census,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum StrategyArg {
    Explore,
    Random,
    Halving,
}

#[derive(Debug, clap::Args)]
struct CiArgs {
    /// The cases file (YAML): `cases: [{name, spec, threshold, noise_floor, allow}]`.
    #[arg(value_name = "CASES")]
    file: PathBuf,
    /// Where each case's sweep (`cases/<name>`), comparison (`compare/<name>`) and
    /// `junit.xml` go; it must not exist.
    #[arg(short, long, value_name = "DIR")]
    output: PathBuf,
    /// Only the cases whose name contains NAME; repeat for several.
    #[arg(short = 'k', value_name = "NAME")]
    select: Vec<String>,
    /// What each case is held against: a previous `sweep ci -o DIR`, or the history: `latest`
    /// (the case's newest sweep), a tag (its newest sweep with it), or an id. Without it,
    /// nothing is compared.
    #[arg(long, value_name = "DIR|latest|TAG|ID")]
    baseline: Option<String>,
    /// Add each case's sweep to the history, tagged `ci:<name>` and `--tag`s.
    #[arg(long)]
    record: bool,
    /// A tag for the recorded sweeps (`--record`); repeat for several.
    #[arg(long = "tag", value_name = "TAG", requires = "record")]
    tags: Vec<String>,
    /// The commit under test, for the recorded sweeps.
    #[arg(long, value_name = "SHA")]
    commit: Option<String>,
    #[command(flatten)]
    db: DbArg,
    /// `slurm` or `local`; beats each spec's `executor`.
    #[arg(long, value_enum)]
    executor: Option<ExecutorArg>,
    /// The `sweep-runner` binary as compute nodes see it (default: beside `sweep`).
    #[arg(long, value_name = "PATH")]
    runner: Option<PathBuf>,
    #[command(flatten)]
    limits: LimitArgs,
    /// Tokens/s per GPU over the GPUs the servers use (`working`) or the job holds (`allocated`).
    #[arg(long, value_enum, default_value_t = GpusArg::Working)]
    gpus: GpusArg,
    /// The largest share of a point's requests that may fail for it to be compared.
    #[arg(long, value_name = "SHARE", default_value_t = sweep_aggregate::DEFAULT_MAX_ERROR_RATE, value_parser = share)]
    max_error_rate: f64,
}

/// The history database's location, shared by every command that reads or writes it.
#[derive(Debug, clap::Args)]
struct DbArg {
    /// The history database (default: `$XDG_DATA_HOME/sweep/history.sqlite`, else
    /// `~/.local/share/sweep/history.sqlite`).
    #[arg(long, value_name = "PATH", env = "SWEEP_HISTORY")]
    db: Option<PathBuf>,
}

impl DbArg {
    fn path(self) -> PathBuf {
        self.db.unwrap_or_else(sweep_history::default_path)
    }
}

#[derive(Debug, Subcommand)]
enum HistoryCommand {
    /// Aggregate a sweep folder and keep its points and provenance (one transaction); prints
    /// its id.
    Add {
        #[arg(value_name = "DIR")]
        dir: PathBuf,
        /// A label to find it by (`--baseline TAG`); repeat for several.
        #[arg(long = "tag", value_name = "TAG")]
        tags: Vec<String>,
        /// The commit under test (default: the commit `sweep` was built from, as the sweep's
        /// provenance recorded it).
        #[arg(long, value_name = "SHA")]
        commit: Option<String>,
        /// The largest share of a point's requests that may fail for it to be kept as valid.
        #[arg(long, value_name = "SHARE", default_value_t = sweep_aggregate::DEFAULT_MAX_ERROR_RATE, value_parser = share)]
        max_error_rate: f64,
        #[command(flatten)]
        db: DbArg,
    },
    /// The sweeps kept, newest first.
    List {
        /// Only sweeps with this tag.
        #[arg(long, value_name = "TAG")]
        tag: Option<String>,
        /// At most this many.
        #[arg(long, value_name = "N")]
        limit: Option<usize>,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        #[command(flatten)]
        db: DbArg,
    },
    /// One sweep: its provenance and points. SWEEP is its id, `latest`, or a tag (the newest
    /// sweep with it).
    Show {
        #[arg(value_name = "SWEEP")]
        selector: String,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        #[command(flatten)]
        db: DbArg,
    },
}

#[derive(Debug, clap::Args)]
struct CompareArgs {
    /// BASE and CANDIDATE: each a sweep folder, aiperf runs, a `results.json`, or
    /// `history:ID|latest|TAG` (a sweep of the history); with `--baseline`, only CANDIDATE.
    #[arg(value_name = "BASE CANDIDATE", num_args = 1..=2, required = true)]
    sides: Vec<PathBuf>,
    /// Take the base from the history: a sweep's id, `latest`, or a tag (its newest sweep).
    #[arg(long, value_name = "ID|latest|TAG")]
    baseline: Option<String>,
    #[command(flatten)]
    db: DbArg,
    /// Set the frontiers' best tokens/s/GPU side by side at these tokens/s/user (default: five
    /// spread over their range).
    #[arg(long, value_delimiter = ',', value_name = "TPS")]
    min_tps_user: Vec<f64>,
    /// What counts as a regression, per metric, as a share of the base: `tps_per_gpu=-3%,ttft_p99_ms=+10%`
    /// (default: any significant worsening).
    #[arg(long, value_name = "METRIC=±N%,...", value_parser = thresholds)]
    threshold: Option<Thresholds>,
    /// Deltas within this share of the base are noise when a side measured a point once.
    #[arg(long, value_name = "SHARE", default_value_t = sweep_aggregate::compare::DEFAULT_NOISE_FLOOR, value_parser = share)]
    noise_floor: f64,
    /// Differences between the sides that are intended: `model`, `engine`, `workload`.
    #[arg(long, value_delimiter = ',', value_name = "WHAT")]
    allow: Vec<String>,
    /// Write `compare.md`, `compare.json` and `compare.html` (both frontiers on one chart) here.
    #[arg(short, long, value_name = "DIR")]
    output: Option<PathBuf>,
    /// Write JUnit XML here: a test case per point and metric.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Tokens/s per GPU over the GPUs the servers use (`working`) or the job holds (`allocated`).
    #[arg(long, value_enum, default_value_t = GpusArg::Working)]
    gpus: GpusArg,
    /// The largest share of a point's requests that may fail for it to be compared.
    #[arg(long, value_name = "SHARE", default_value_t = sweep_aggregate::DEFAULT_MAX_ERROR_RATE, value_parser = share)]
    max_error_rate: f64,
    /// `table` for people, `json` for scripts.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

/// `--threshold`'s list, as one value.
#[derive(Debug, Clone)]
struct Thresholds(Vec<sweep_aggregate::compare::Threshold>);

fn thresholds(text: &str) -> Result<Thresholds, String> {
    sweep_aggregate::compare::parse_thresholds(text).map(Thresholds)
}

#[derive(Debug, clap::Args)]
struct AggregateArgs {
    /// Sweep folders, aiperf run folders (Dynamo's layout included), or folders holding them.
    #[arg(required = true, value_name = "DIR")]
    dirs: Vec<PathBuf>,
    /// Where to write (default: `DIR/report` when one folder is given).
    #[arg(short, long, value_name = "DIR")]
    output: Option<PathBuf>,
    /// Recompute every point from its per-request records (profile_export.jsonl) instead of
    /// reading its summary.
    #[arg(long)]
    from_records: bool,
    /// Report the best configuration reaching each of these tokens/s/user, e.g. `50,100`.
    #[arg(long, value_delimiter = ',', value_name = "TPS")]
    min_tps_user: Vec<f64>,
    /// Tokens/s per GPU over the GPUs the servers use (`working`) or the job holds (`allocated`).
    #[arg(long, value_enum, default_value_t = GpusArg::Working)]
    gpus: GpusArg,
    /// Merge points that ran on different versions of an engine (as their jobs recorded it),
    /// with a frontier per version; without it that is an error (exit 14).
    #[arg(long)]
    allow_mixed_versions: bool,
    /// `table` (the frontiers) for people, `json` for scripts.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// SLOs the cost analysis holds every point to, as results-table latency columns in ms,
    /// e.g. `ttft_p99_ms=500,itl_p50_ms=20`.
    #[arg(long, value_name = "NAME=MS,...", value_parser = slo_list)]
    slo: Option<SloList>,
    /// USD per GPU-hour: prices the points meeting the SLOs per million output tokens.
    #[arg(long, value_name = "USD", value_parser = positive)]
    gpu_hour_cost: Option<f64>,
    /// Output tokens/s to serve: the replicas and GPUs each configuration meeting the SLOs needs.
    #[arg(long, value_name = "TOKENS_PER_S", value_parser = positive)]
    target_tokens_per_s: Option<f64>,
    /// The largest share of a point's requests that may fail for the point to stand on a
    /// frontier; a point above it is listed with its reason instead.
    #[arg(long, value_name = "SHARE", default_value_t = sweep_aggregate::DEFAULT_MAX_ERROR_RATE, value_parser = share)]
    max_error_rate: f64,
    /// The coefficient of variation of a point's repetitions (`workload.repeats`) above which
    /// it is flagged `unstable`.
    #[arg(long, value_name = "CV", default_value_t = sweep_aggregate::repeats::DEFAULT_MAX_CV, value_parser = share)]
    max_cv: f64,
    /// Chart each configuration over time from the results history (`sweep history add`).
    #[arg(long)]
    history: bool,
    #[command(flatten)]
    db: DbArg,
}

/// `--slo`'s list, as one value (clap would take a `Vec` for a repeated flag).
#[derive(Debug, Clone)]
struct SloList(Vec<sweep_aggregate::profile::Slo>);

fn slo_list(text: &str) -> Result<SloList, String> {
    sweep_aggregate::profile::parse_slos(text).map(SloList)
}

/// A share from 0 to 1.
fn share(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!("`{text}` is not a share from 0 to 1 (0.05 is 5 %)")),
    }
}

/// A finite number, 0 or above.
fn non_negative(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!("`{text}` is not a number of 0 or above")),
    }
}

/// A finite number above 0.
fn positive(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("`{text}` is not a number above 0")),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum GpusArg {
    Working,
    Allocated,
}

impl From<GpusArg> for sweep_aggregate::GpuBasis {
    fn from(gpus: GpusArg) -> Self {
        match gpus {
            GpusArg::Working => sweep_aggregate::GpuBasis::Working,
            GpusArg::Allocated => sweep_aggregate::GpuBasis::Allocated,
        }
    }
}

impl AggregateArgs {
    fn into_settings(
        self,
        outputs: sweep_aggregate::Outputs,
    ) -> Result<commands::aggregate::Settings, Error> {
        if let Some(bad) = self.min_tps_user.iter().find(|v| !v.is_finite() || **v < 0.0) {
            return Err(Error::Usage(format!(
                "--min-tps-user {bad}: give non-negative tokens/s/user, e.g. 50,100"
            )));
        }
        Ok(commands::aggregate::Settings {
            output: commands::aggregate::Settings::resolve_output(&self.dirs, self.output)?,
            dirs: self.dirs,
            options: sweep_aggregate::Options {
                from_records: self.from_records,
                min_tps_user: self.min_tps_user,
                gpu_basis: self.gpus.into(),
                allow_mixed_versions: self.allow_mixed_versions,
                profile: sweep_aggregate::profile::Settings {
                    gpu_hour_cost: self.gpu_hour_cost,
                    slo: self.slo.map(|s| s.0).unwrap_or_default(),
                    target_tokens_per_s: self.target_tokens_per_s,
                },
                max_error_rate: self.max_error_rate,
                max_cv: self.max_cv,
            },
            outputs,
            json: self.format == Format::Json,
            history: self.history.then(|| self.db.path()),
        })
    }
}

#[derive(Debug, clap::Args)]
struct RenderArgs {
    /// The sweep spec (YAML).
    file: PathBuf,
    /// The sweep folder to create; it must not exist.
    #[arg(short, long, value_name = "DIR")]
    output: PathBuf,
    /// Templates overriding the built-in ones, by path (beats `cluster.templates_dir`).
    #[arg(long, value_name = "DIR")]
    templates: Option<PathBuf>,
    /// The `sweep-runner` binary as compute nodes see it (default: beside `sweep`).
    #[arg(long, value_name = "PATH")]
    runner: Option<PathBuf>,
    #[command(flatten)]
    limits: LimitArgs,
    /// `slurm` (sbatch scripts) or `local` (every role a process on this machine); beats the
    /// spec's `executor`.
    #[arg(long, value_enum)]
    executor: Option<ExecutorArg>,
    /// Do not hold the launch commands against the engines' own options first (`sweep check`).
    #[arg(long)]
    no_check: bool,
}

#[derive(Debug, clap::Args)]
struct CheckArgs {
    /// The sweep spec (YAML).
    file: PathBuf,
    /// Templates overriding the built-in ones, by path (beats `cluster.templates_dir`).
    #[arg(long, value_name = "DIR")]
    templates: Option<PathBuf>,
    #[command(flatten)]
    limits: LimitArgs,
    /// `table` for people, `json` for scripts.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

/// What planning refuses or drops, for every command that plans.
#[derive(Debug, Clone, Copy, clap::Args)]
struct LimitArgs {
    /// Refuse spaces larger than this (counted before `exclude` and `where`).
    #[arg(long, default_value_t = 100_000, value_name = "N")]
    max_points: u64,
    /// Drop the points whose KV cache the capacity estimate finds too large for their servers
    /// (needs `cluster.gpu_memory_gb` and the model's config.json); without it they are warned
    /// about and kept.
    #[arg(long)]
    prune_infeasible: bool,
}

impl LimitArgs {
    fn resolve(self) -> sweep_submit::pipeline::Limits {
        sweep_submit::pipeline::Limits {
            max_points: self.max_points,
            prune_infeasible: self.prune_infeasible,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ExecutorArg {
    Slurm,
    Local,
}

/// How a command that runs a spec's jobs itself (`sweep ci`, `sweep explore`) renders them: the
/// built-in templates, the runner beside `sweep` unless given, the executor given or the spec's.
fn run_options(executor: Option<ExecutorArg>, runner: Option<PathBuf>) -> sweep_submit::render::Options {
    sweep_submit::render::Options {
        templates: None,
        runner,
        executor: executor.map(|e| match e {
            ExecutorArg::Slurm => sweep_spec::ExecutorKind::Slurm,
            ExecutorArg::Local => sweep_spec::ExecutorKind::Local,
        }),
        allocation: None,
    }
}

#[derive(Debug, clap::Args)]
struct PlanArgs {
    /// The sweep spec (YAML).
    file: PathBuf,
    /// `table` for people, `json` for scripts (every job, layout and point).
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    #[command(flatten)]
    limits: LimitArgs,
}

impl RenderArgs {
    fn into_settings(self) -> prepare::Settings {
        prepare::Settings {
            file: self.file,
            output: self.output,
            limits: self.limits.resolve(),
            options: sweep_submit::render::Options {
                templates: self.templates,
                runner: self.runner,
                executor: self.executor.map(|e| match e {
                    ExecutorArg::Slurm => sweep_spec::ExecutorKind::Slurm,
                    ExecutorArg::Local => sweep_spec::ExecutorKind::Local,
                }),
                allocation: None,
            },
            no_check: self.no_check,
            print: false,
            job: None,
        }
    }
}

/// A duration in seconds: finite and not negative.
fn seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!("`{text}` is not a number of seconds (e.g. 600 or 0.5)")),
    }
}

/// The shortest pause between two `squeue` calls: polling in a loop without one would load the
/// controller for nothing (SLURM's own state changes are seconds apart).
const SHORTEST_POLL: f64 = 0.1;

fn poll_seconds(text: &str) -> Result<f64, String> {
    match seconds(text)? {
        v if v < SHORTEST_POLL => {
            Err(format!("`{text}`: poll at most every {SHORTEST_POLL} s (give {SHORTEST_POLL} or more)"))
        }
        v => Ok(v),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    Table,
    Json,
}

/// Parses `args`, runs the command and returns the process's exit code.
pub fn run(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    install_panic_hook();
    // For the test of the hook alone: no user input reaches a panic on purpose.
    if std::env::var_os("SWEEP_INTERNAL_TEST_PANIC").is_some() {
        panic!("SWEEP_INTERNAL_TEST_PANIC is set");
    }
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return match error.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => Exit::Success,
                _ => Exit::Usage,
            }
            .into();
        }
    };
    init_logging(cli.verbose);
    let result = match cli.command {
        Command::Plan(args) => commands::plan::run(&commands::plan::Settings {
            file: args.file,
            format: args.format,
            limits: args.limits.resolve(),
        }),
        Command::Check(args) => commands::check::run(
            &prepare::Settings {
                file: args.file,
                output: PathBuf::from("/sweep"),
                limits: args.limits.resolve(),
                options: sweep_submit::render::Options { templates: args.templates, ..Default::default() },
                no_check: true,
                print: false,
                job: None,
            },
            args.format == Format::Json,
        ),
        Command::Render { render, print, job } => {
            commands::render::run(&prepare::Settings { print, job, ..render.into_settings() })
        }
        Command::Submit { render, dry_run, job, resume, max_in_queue, waves, sequential, in_allocation } => {
            let mode = if waves { sweep_folder::QueueMode::Waves } else { sweep_folder::QueueMode::Chains };
            let max_in_queue = if sequential { Some(1) } else { max_in_queue };
            let mut settings = prepare::Settings { print: dry_run, job, ..render.into_settings() };
            commands::submit::submit(
                &mut settings,
                in_allocation,
                commands::submit::Options {
                    dry_run,
                    resume,
                    queue_limit: max_in_queue
                        .map(|max_in_queue| sweep_folder::QueueLimit { max_in_queue, mode }),
                },
            )
        }
        Command::Status { dir, format, points, watch } => {
            commands::submit::status(&dir, format == Format::Json, points, watch)
        }
        Command::Wait { dir, timeout, submit_more, interval, max_interval } => commands::submit::wait(
            &dir,
            &sweep_submit::wait::Options {
                timeout: timeout.map(std::time::Duration::from_secs_f64),
                submit_more,
                interval: std::time::Duration::from_secs_f64(interval),
                max_interval: std::time::Duration::from_secs_f64(max_interval.max(interval)),
            },
        ),
        Command::Cancel { dir } => commands::submit::cancel(&dir),
        Command::Aggregate(args) => {
            args.into_settings(sweep_aggregate::Outputs::Tables).and_then(|s| commands::aggregate::run(&s))
        }
        Command::Report(args) => {
            args.into_settings(sweep_aggregate::Outputs::Report).and_then(|s| commands::aggregate::run(&s))
        }
        Command::Compare(args) => {
            let basis: sweep_aggregate::GpuBasis = args.gpus.into();
            let unknown = args.allow.iter().find(|a| !["model", "engine", "workload"].contains(&a.as_str()));
            let db = args.db.path();
            // `history:SEL` names a sweep of the history, unless a path of that name exists.
            let side = |path: PathBuf| match path.to_str().and_then(|p| p.strip_prefix("history:")) {
                Some(selector) if !path.exists() => {
                    comparing::Side::History { db: db.clone(), selector: selector.to_owned() }
                }
                _ => comparing::Side::Path(path),
            };
            let mut paths = args.sides.into_iter().map(side);
            let sides = match (args.baseline, paths.len()) {
                (Some(selector), 1) => {
                    Ok((comparing::Side::History { db: db.clone(), selector }, paths.next()))
                }
                (None, 2) => Ok((paths.next().expect("two"), paths.next())),
                (Some(_), _) => Err("with --baseline, give only CANDIDATE"),
                (None, _) => Err("give BASE and CANDIDATE, or --baseline ID|latest|TAG and CANDIDATE"),
            };
            let negative = args.min_tps_user.iter().find(|v| !v.is_finite() || **v < 0.0).copied();
            match (unknown, sides) {
                (Some(bad), _) => Err(Error::Usage(format!(
                    "--allow {bad}: the differences are model, engine and workload"
                ))),
                (None, _) if negative.is_some() => Err(Error::Usage(format!(
                    "--min-tps-user {}: give non-negative tokens/s/user, e.g. 50,100",
                    negative.unwrap_or_default()
                ))),
                (None, Err(usage)) => Err(Error::Usage(usage.to_owned())),
                (None, Ok((base, candidate))) => commands::compare::run(&commands::compare::Settings {
                    base,
                    candidate: candidate.expect("a candidate"),
                    options: sweep_aggregate::Options {
                        gpu_basis: basis,
                        max_error_rate: args.max_error_rate,
                        allow_mixed_versions: true,
                        ..Default::default()
                    },
                    compare: sweep_aggregate::compare::Settings {
                        thresholds: args.threshold.map(|t| t.0).unwrap_or_default(),
                        noise_floor: args.noise_floor,
                        basis,
                        min_tps_user: args.min_tps_user,
                    },
                    allow: args.allow,
                    output: args.output,
                    junit: args.junit,
                    json: args.format == Format::Json,
                }),
            }
        }
        Command::Ci(args) => {
            let basis: sweep_aggregate::GpuBasis = args.gpus.into();
            let baseline = match args.baseline {
                None => commands::ci::Baseline::None,
                Some(b) if std::path::Path::new(&b).is_dir() => commands::ci::Baseline::Dir(PathBuf::from(b)),
                Some(b) => commands::ci::Baseline::History(b),
            };
            commands::ci::run(&commands::ci::Settings {
                file: args.file,
                output: args.output,
                select: args.select,
                baseline,
                db: args.db.path(),
                record: args.record.then_some(args.tags),
                commit: args.commit,
                render: run_options(args.executor, args.runner),
                limits: args.limits.resolve(),
                options: sweep_aggregate::Options {
                    gpu_basis: basis,
                    max_error_rate: args.max_error_rate,
                    allow_mixed_versions: true,
                    ..Default::default()
                },
                basis,
            })
        }
        Command::Explore(args) => {
            let basis: sweep_aggregate::GpuBasis = args.gpus.into();
            commands::explore::run(&commands::explore::Settings {
                file: args.file,
                output: args.output,
                budget: match (args.budget_gpu_hours, args.budget_share) {
                    (Some(hours), _) => commands::explore::Budget::GpuHours(hours),
                    (None, share) => commands::explore::Budget::Share(share.unwrap_or(1.0)),
                },
                choice: sweep_explore::Settings {
                    budget: f64::INFINITY,
                    wave: args.wave as usize,
                    kappa: args.kappa,
                    prior_point_seconds: args.prior_point_seconds,
                    seed: args.seed,
                    first_wave: match args.first_wave {
                        FirstWaveArg::Spread => sweep_explore::FirstWave::Spread,
                        FirstWaveArg::Census => sweep_explore::FirstWave::Census,
                    },
                },
                replay: args.replay.map(|dir| {
                    let strategy = match args.strategy {
                        StrategyArg::Explore => sweep_explore::replay::Strategy::Explore,
                        StrategyArg::Random => sweep_explore::replay::Strategy::Random,
                        StrategyArg::Halving => sweep_explore::replay::Strategy::Halving,
                    };
                    (dir, strategy)
                }),
                render: run_options(args.executor, args.runner),
                max_in_queue: args.max_in_queue,
                in_allocation: args.in_allocation,
                limits: args.limits.resolve(),
                options: sweep_aggregate::Options { gpu_basis: basis, ..Default::default() },
            })
        }
        Command::History(command) => {
            use commands::history::{Action, Settings};
            let settings = match command {
                HistoryCommand::Add { dir, tags, commit, max_error_rate, db } => Settings {
                    db: db.path(),
                    action: Action::Add {
                        dir,
                        tags,
                        commit,
                        options: sweep_aggregate::Options {
                            max_error_rate,
                            allow_mixed_versions: true,
                            ..Default::default()
                        },
                    },
                    json: false,
                },
                HistoryCommand::List { tag, limit, format, db } => Settings {
                    db: db.path(),
                    action: Action::List { tag, limit },
                    json: format == Format::Json,
                },
                HistoryCommand::Show { selector, format, db } => Settings {
                    db: db.path(),
                    action: Action::Show { selector },
                    json: format == Format::Json,
                },
            };
            commands::history::run(&settings)
        }
    };
    match result {
        Ok(()) => Exit::Success.into(),
        // A reader that stops early (`sweep plan … | head`) is not an error.
        Err(Error::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => Exit::Success.into(),
        Err(error) => {
            let mut stderr = std::io::stderr().lock();
            let _ = stderr.write_all(error.render().as_bytes());
            error.exit().into()
        }
    }
}

/// A panic is a bug of ours: said so, with where to report it, and exit 1 as
/// docs/exit-codes.md promises (not Rust's 101).
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        eprintln!(
            "error: sweep {} hit a bug: {info}\n  = help: please report it with the command, the spec and this message (RUST_BACKTRACE=1 shows where)",
            env!("CARGO_PKG_VERSION")
        );
        if std::env::var_os("RUST_BACKTRACE").is_some() {
            eprintln!("{}", std::backtrace::Backtrace::force_capture());
        }
        std::process::exit(Exit::Internal as i32);
    }));
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let ansi = std::env::var_os("NO_COLOR").is_none() && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_target(false)
        .without_time()
        .try_init();
}
