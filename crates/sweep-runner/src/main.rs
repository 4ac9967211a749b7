//! The `sweep-runner` binary: parses arguments and hands them to the library.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use sweep_load::{self as load, progress, Arrival, Endpoint, Slos};
use sweep_runner::{benchmark, group, scrape, serve, workers, RunnerError};

#[derive(Debug, Parser)]
#[command(name = "sweep-runner", version, about = "The in-job runner of sweep, and a load generator")]
struct Cli {
    #[command(subcommand)]
    command: Step,
}

#[derive(Debug, Subcommand)]
enum Step {
    /// Run one server of a role until the job says stop.
    Serve {
        #[arg(long)]
        job_dir: PathBuf,
        /// CTX, GEN, AGG or DISAGG_SERVER (default: $DISAGG_SERVING_TYPE).
        #[arg(long, env = "DISAGG_SERVING_TYPE")]
        role: String,
        #[arg(long, default_value_t = 0)]
        index: u32,
        #[arg(long)]
        port: u16,
        /// `CUDA_VISIBLE_DEVICES` for the engine.
        #[arg(long)]
        gpus: Option<String>,
        /// Publish this network interface's address instead of the node's name.
        #[arg(long, env = "SWEEP_INTERFACE")]
        interface: Option<String>,
        /// Publish this host name or address (the local executor uses 127.0.0.1).
        #[arg(long, conflicts_with = "interface")]
        host: Option<String>,
        /// The engine's command and arguments.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// A frontend's launcher: wait for every worker of the job to register, hand their
    /// addresses to the command (a config file or arguments), then become that command.
    WithWorkers {
        #[arg(long)]
        job_dir: PathBuf,
        #[arg(long, value_enum)]
        format: workers::Format,
        /// The config file to write (`trtllm-disagg`).
        #[arg(long)]
        config: Option<PathBuf>,
        /// The frontend's port, for the config.
        #[arg(long, default_value_t = 8333)]
        port: u16,
        /// Seconds to wait for the workers to register.
        #[arg(long, default_value_t = 3600.0)]
        timeout: f64,
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Load an OpenAI-compatible server and report aiperf-compatible measurements.
    // Boxed: its flags outweigh every other step's.
    Profile(Box<ProfileArgs>),
    /// Write a synthetic trace (mooncake JSONL) for `workload.trace` or `profile --trace`.
    #[command(subcommand)]
    Trace(TraceKind),
    /// Started by `serve`: ends the engine's process group when `serve` dies.
    #[command(hide = true)]
    Guard {
        #[arg(long)]
        group: i32,
        #[arg(long)]
        parent: i32,
    },
    /// The job's BENCHMARK role: wait for its servers, run its points, stop the servers.
    Benchmark {
        #[arg(long)]
        job_dir: PathBuf,
        /// Seconds to wait for the servers (default: `engine.health.timeout`).
        #[arg(long)]
        ready_timeout: Option<f64>,
        /// Unix time by which the points must stop (default: from SLURM's time left).
        #[arg(long)]
        deadline: Option<f64>,
        /// Seconds before the deadline to stop, to leave time for writing results.
        #[arg(long, default_value_t = 30.0)]
        deadline_margin: f64,
        #[arg(long, value_enum, default_value_t = ProgressArg::Auto)]
        progress: ProgressArg,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ProgressArg {
    Auto,
    Bar,
    Lines,
    Off,
}

impl From<ProgressArg> for progress::Mode {
    fn from(p: ProgressArg) -> Self {
        match p {
            ProgressArg::Auto => progress::Mode::Auto,
            ProgressArg::Bar => progress::Mode::Bar,
            ProgressArg::Lines => progress::Mode::Lines,
            ProgressArg::Off => progress::Mode::Off,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum FormatArg {
    Table,
    Json,
}

/// aiperf's input-file formats (`--custom-dataset-type`).
#[derive(Debug, Clone, Copy, ValueEnum)]
#[value(rename_all = "snake_case")]
enum InputFormatArg {
    SingleTurn,
    MultiTurn,
    MooncakeTrace,
}

impl From<InputFormatArg> for sweep_spec::DatasetFormat {
    fn from(format: InputFormatArg) -> Self {
        match format {
            InputFormatArg::SingleTurn => sweep_spec::DatasetFormat::SingleTurn,
            InputFormatArg::MultiTurn => sweep_spec::DatasetFormat::MultiTurn,
            InputFormatArg::MooncakeTrace => sweep_spec::DatasetFormat::MooncakeTrace,
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ArrivalArg {
    Closed,
    Constant,
    Poisson,
    Gamma,
}

#[derive(Debug, Subcommand)]
enum TraceKind {
    /// A sinusoidal request rate and a sinusoidal mix of two ISL/OSL pairs, as Dynamo's
    /// `sin_synth.py` makes them (same flags and defaults).
    Sin(SinArgs),
    /// Convert a BurstGPT CSV log to a trace: timestamps shifted to start at 0 and divided by
    /// --speed-ratio, rows filtered by model and log type, failed requests (0 response tokens)
    /// left out.
    Burstgpt(BurstGptArgs),
    /// Requests at a constant rate whose first --ratio of blocks is one of --prefix-groups
    /// shared prefixes and the rest their own (Dynamo's prefix-ratio benchmark), to measure
    /// prefix caching and KV-cache-aware routing.
    Prefix(PrefixArgs),
}

#[derive(Debug, clap::Args)]
struct PrefixArgs {
    /// The share of each prompt's blocks that is shared, 0 to 1.
    #[arg(long)]
    ratio: f64,
    #[arg(long, default_value_t = 1000)]
    requests: u64,
    #[arg(long, default_value_t = 10.0)]
    request_rate: f64,
    #[arg(long, default_value_t = 2048)]
    isl: u32,
    #[arg(long, default_value_t = 128)]
    osl: u32,
    /// Tokens per hash id (give the same `workload.trace_block_size` to replay it).
    #[arg(long, default_value_t = 512)]
    block_size: u32,
    /// Distinct shared prefixes; request i takes prefix i mod N.
    #[arg(long, default_value_t = 1)]
    prefix_groups: u32,
    /// The file to write; it must not exist.
    #[arg(long, short)]
    output: PathBuf,
}

fn trace_prefix(args: &PrefixArgs) -> Result<ExitCode, RunnerError> {
    let prefix = load::synth::Prefix {
        requests: args.requests,
        rate: args.request_rate,
        isl: args.isl,
        osl: args.osl,
        block_size: args.block_size,
        ratio: args.ratio,
        groups: args.prefix_groups,
    };
    prefix.check()?;
    let n = write_trace(&args.output, |file| prefix.write(file).map_err(|e| write_error(&args.output, e)))?;
    eprintln!(
        "sweep-runner: wrote {n} requests to {}, each sharing {} of its {} blocks",
        args.output.display(),
        prefix.shared_blocks(),
        args.isl.div_ceil(args.block_size)
    );
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, clap::Args)]
struct BurstGptArgs {
    /// BurstGPT's CSV (`Timestamp`, `Model`, `Request tokens`, `Response tokens`, `Log Type`).
    input: PathBuf,
    /// Keep only this model's rows, e.g. `ChatGPT` or `GPT-4`.
    #[arg(long)]
    model: Option<String>,
    /// Keep only this log type's rows: `Conversation log` or `API log`.
    #[arg(long)]
    log_type: Option<String>,
    /// Replay this many times faster.
    #[arg(long, default_value_t = 1.0)]
    speed_ratio: f64,
    /// Stop after this many requests.
    #[arg(long)]
    num_prompts: Option<u64>,
    #[arg(long, default_value_t = 512)]
    block_size: u32,
    #[arg(long, default_value_t = 10_000)]
    total_blocks: u64,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// The file to write; it must not exist.
    #[arg(long, short)]
    output: PathBuf,
}

fn trace_burstgpt(args: &BurstGptArgs) -> Result<ExitCode, RunnerError> {
    if args.block_size == 0 || args.total_blocks == 0 {
        return Err(RunnerError::flag("--block-size", "--block-size and --total-blocks must be at least 1"));
    }
    let csv = std::fs::read_to_string(&args.input).map_err(|source| RunnerError::File {
        action: "read",
        path: args.input.clone(),
        source,
    })?;
    let convert = load::synth::BurstGpt {
        model: args.model.clone(),
        log_type: args.log_type.clone(),
        speed_ratio: args.speed_ratio,
        num_requests: args.num_prompts,
        block_size: args.block_size,
        total_blocks: args.total_blocks,
        seed: args.seed,
    };
    let done = write_trace(&args.output, |file| {
        convert.convert(&csv, file).map_err(|e| RunnerError::Csv { path: args.input.clone(), source: e })
    })?;
    eprintln!(
        "sweep-runner: wrote {} requests to {} ({} rows of other models or log types, {} failed requests left out)",
        done.written,
        args.output.display(),
        done.filtered,
        done.failed
    );
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, clap::Args)]
struct SinArgs {
    /// Tokens per hash id.
    #[arg(long, default_value_t = 512)]
    block_size: u32,
    /// Hash ids are drawn from 0..this.
    #[arg(long, default_value_t = 10_000)]
    total_blocks: u64,
    /// Seconds of trace.
    #[arg(long, default_value_t = 100.0)]
    time_duration: f64,
    /// Seconds per step of the sinusoids.
    #[arg(long, default_value_t = 1.0)]
    process_interval: f64,
    #[arg(long, default_value_t = 5.0)]
    request_rate_min: f64,
    #[arg(long, default_value_t = 10.0)]
    request_rate_max: f64,
    #[arg(long, default_value_t = 10.0)]
    request_rate_period: f64,
    #[arg(long, default_value_t = 100)]
    isl1: u32,
    #[arg(long, default_value_t = 2000)]
    osl1: u32,
    #[arg(long, default_value_t = 5000)]
    isl2: u32,
    #[arg(long, default_value_t = 100)]
    osl2: u32,
    /// The share of requests that take ISL2/OSL2, at its lowest.
    #[arg(long, default_value_t = 0.2)]
    isl_osl_ratio_min: f64,
    #[arg(long, default_value_t = 0.8)]
    isl_osl_ratio_max: f64,
    #[arg(long, default_value_t = 10.0)]
    isl_osl_ratio_period: f64,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// The file to write; it must not exist.
    #[arg(long, short)]
    output: PathBuf,
}

fn trace_sin(args: &SinArgs) -> Result<ExitCode, RunnerError> {
    let sin = load::synth::Sin {
        block_size: args.block_size,
        total_blocks: args.total_blocks,
        duration: args.time_duration,
        time_step: args.process_interval,
        rate_min: args.request_rate_min,
        rate_max: args.request_rate_max,
        rate_period: args.request_rate_period,
        isl1: args.isl1,
        osl1: args.osl1,
        isl2: args.isl2,
        osl2: args.osl2,
        ratio_min: args.isl_osl_ratio_min,
        ratio_max: args.isl_osl_ratio_max,
        ratio_period: args.isl_osl_ratio_period,
        seed: args.seed,
    };
    sin.check()?;
    let n = write_trace(&args.output, |file| sin.write(file).map_err(|e| write_error(&args.output, e)))?;
    eprintln!("sweep-runner: wrote {n} requests over {} s to {}", args.time_duration, args.output.display());
    Ok(ExitCode::SUCCESS)
}

fn write_error(path: &std::path::Path, source: std::io::Error) -> RunnerError {
    RunnerError::File { action: "write", path: path.to_owned(), source }
}

/// Writes a trace beside `out` under a temporary name, then renames it: never half a file,
/// never over an existing one.
fn write_trace<T>(
    out: &std::path::Path,
    write: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> Result<T, RunnerError>,
) -> Result<T, RunnerError> {
    if out.exists() {
        return Err(RunnerError::Exists { path: out.to_owned() });
    }
    let tmp = out.with_file_name(format!(
        ".{}.{}.tmp",
        out.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let file = std::fs::File::create(&tmp).map_err(|e| write_error(out, e))?;
        let mut file = std::io::BufWriter::with_capacity(1 << 20, file);
        let value = write(&mut file)?;
        use std::io::Write as _;
        file.flush().map_err(|e| write_error(out, e))?;
        std::fs::rename(&tmp, out).map_err(|e| write_error(out, e))?;
        Ok(value)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[derive(Debug, clap::Args)]
struct ProfileArgs {
    /// The server's base URL, e.g. http://127.0.0.1:8000
    #[arg(long)]
    url: String,
    #[arg(long, value_enum, default_value_t = Endpoint::Chat)]
    endpoint: Endpoint,
    #[arg(long)]
    model: String,
    /// Closed loop: requests in flight. Open loop: the most in flight (0: no cap).
    #[arg(long, default_value_t = 1)]
    concurrency: u32,
    /// Measured requests (with a trace: at most this many of its entries).
    #[arg(long)]
    requests: Option<u64>,
    /// Stop sending measured requests after this many seconds.
    #[arg(long)]
    duration: Option<f64>,
    /// Requests sent first, in a closed loop, and left out of the results.
    #[arg(long, default_value_t = 0)]
    warmup: u64,
    #[arg(long, value_enum, default_value_t = ArrivalArg::Closed)]
    arrival: ArrivalArg,
    /// Requests per second, for an open loop.
    #[arg(long)]
    request_rate: Option<f64>,
    /// Gamma shape: below 1 bursty, above 1 regular.
    #[arg(long, default_value_t = 1.0)]
    burstiness: f64,
    /// Replay a mooncake-style JSONL trace (timestamp ms, input_length, output_length, hash_ids).
    #[arg(long, value_name = "FILE")]
    trace: Option<PathBuf>,
    /// Tokens per hash id of a trace.
    #[arg(long, default_value_t = 512)]
    block_size: u32,
    /// Replay a trace this many times faster.
    #[arg(long, default_value_t = 1.0)]
    trace_speedup: f64,
    /// Prompt length in tokens: words, or tokens of --tokenizer when given.
    #[arg(long, default_value_t = 128)]
    isl: u32,
    #[arg(long, default_value_t = 0.0)]
    isl_stddev: f64,
    /// Output tokens, asked for with max_tokens = min_tokens = OSL and ignore_eos.
    #[arg(long, default_value_t = 64)]
    osl: u32,
    #[arg(long, default_value_t = 0.0)]
    osl_stddev: f64,
    /// Stream the response (SSE).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    stream: bool,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Give up on one request after this many seconds.
    #[arg(long, default_value_t = 600.0)]
    request_timeout: f64,
    /// A JSON object merged into every request body, e.g. '{"temperature": 0}'.
    #[arg(long, value_name = "JSON")]
    extra_body: Option<String>,
    /// SLOs for goodput, aiperf's syntax: "time_to_first_token:200 inter_token_latency:20" (ms).
    #[arg(long)]
    goodput: Option<String>,
    /// Write profile_export.jsonl, profile_export_aiperf.json and .csv into this folder.
    #[arg(long, value_name = "DIR")]
    artifact_dir: Option<PathBuf>,
    /// `table`: a summary of the measured phase (avg, min, p50, p90, p99, max per metric), as
    /// aiperf's console prints; `json`: the aiperf-format JSON on one line, for scripts.
    #[arg(long, value_enum, default_value_t = FormatArg::Table)]
    format: FormatArg,
    #[arg(long, value_enum, default_value_t = ProgressArg::Auto)]
    progress: ProgressArg,
    /// Threads that send and read (async runtime threads, one reading task each).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Count tokens with this tokenizer.json (or a model folder holding one) instead of the
    /// server's usage; prompts are then cut to exactly --isl of its tokens.
    #[arg(long, value_name = "PATH")]
    tokenizer: Option<PathBuf>,
    /// Prompts from this JSONL file, in --input-format, cycled in order.
    #[arg(long, value_name = "FILE")]
    input_file: Option<PathBuf>,
    /// The --input-file's format (aiperf's): a request per line (`text` or OpenAI `messages`,
    /// optional `image`s and `output_length`), a session per line (`{session_id, turns}`; its
    /// turns run in order with the history so far), or mooncake lines (`input_length` and
    /// `hash_ids`, or `text_input`; lines sharing a `session_id` are one session).
    #[arg(long, value_enum, value_name = "FORMAT", default_value = "single_turn", requires = "input_file")]
    input_format: InputFormatArg,
    /// With --input-file: cut or pad each text prompt to --isl.
    #[arg(long)]
    fit_to_isl: bool,
    /// Synthetic prompts: this share of each prompt (0 < R < 1) is one of --prefix-prompts
    /// shared prefixes, as Dynamo's prefix-ratio benchmark sends them.
    #[arg(long, value_name = "R")]
    prefix_ratio: Option<f64>,
    /// With --prefix-ratio: how many distinct prefixes the requests take in turn.
    #[arg(long, value_name = "N", default_value_t = 1, requires = "prefix_ratio")]
    prefix_prompts: u32,
    /// Send N synthetic PNG images (seeded noise, different per request) with each prompt, as
    /// OpenAI `image_url` parts (chat endpoint).
    #[arg(long, value_name = "N")]
    images: Option<u32>,
    /// With --images: their width and height in pixels.
    #[arg(long, value_name = "PX", default_value_t = 512, requires = "images")]
    image_width: u32,
    #[arg(long, value_name = "PX", default_value_t = 512, requires = "images")]
    image_height: u32,
    /// Scrape this server's Prometheus endpoint during the run (repeat for each server; `/metrics`
    /// when the URL has no path), into server_metrics.jsonl and server_metrics.json in
    /// --artifact-dir.
    #[arg(long, value_name = "URL", requires = "artifact_dir")]
    server_metrics: Vec<String>,
    /// Milliseconds between scrapes of --server-metrics.
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    server_metrics_interval_ms: u64,
}

impl ProfileArgs {
    /// `--server-metrics` as scrape targets, named by `host:port`.
    fn scrape_targets(&self) -> Result<Vec<scrape::Target>, RunnerError> {
        self.server_metrics
            .iter()
            .map(|given| {
                let url = reqwest::Url::parse(given).map_err(|e| {
                    RunnerError::flag("--server-metrics", format!("--server-metrics `{given}`: {e}"))
                })?;
                let name = format!(
                    "{}:{}",
                    url.host_str().unwrap_or_default(),
                    url.port_or_known_default().unwrap_or(80)
                );
                let url = if url.path() == "/" { format!("{}metrics", url) } else { url.to_string() };
                Ok(scrape::Target { name, role: "server".to_owned(), url })
            })
            .collect()
    }
}

fn positive(flag: &'static str, value: f64) -> Result<f64, RunnerError> {
    if value.is_finite() && value > 0.0 {
        Ok(value)
    } else {
        Err(RunnerError::flag(flag, format!("{flag} must be a number > 0, not {value}")))
    }
}

impl ProfileArgs {
    /// Every setting checked before anything is sent.
    fn settings(&self) -> Result<load::Settings, RunnerError> {
        let rate = || {
            self.request_rate
                .ok_or_else(|| {
                    RunnerError::flag(
                        "--request-rate",
                        "an open loop needs --request-rate (requests per second)",
                    )
                })
                .and_then(|r| positive("--request-rate", r))
        };
        let arrival = match (&self.trace, self.arrival) {
            (Some(path), ArrivalArg::Closed) => Arrival::Trace {
                entries: Arc::new(load::prompts::read_trace(path)?),
                block_size: self.block_size.max(1),
                speedup: positive("--trace-speedup", self.trace_speedup)?,
            },
            (Some(_), _) => {
                return Err(RunnerError::flag(
                    "--trace",
                    "--trace sets its own arrival times; drop --arrival",
                ))
            }
            (None, ArrivalArg::Closed) => Arrival::Closed,
            (None, ArrivalArg::Constant) => Arrival::Constant { rate: rate()? },
            (None, ArrivalArg::Poisson) => Arrival::Poisson { rate: rate()? },
            (None, ArrivalArg::Gamma) => {
                Arrival::Gamma { rate: rate()?, shape: positive("--burstiness", self.burstiness)? }
            }
        };
        if arrival == Arrival::Closed && self.requests.is_none() && self.duration.is_none() {
            return Err(RunnerError::flag(
                "--requests",
                "say how much load: --requests N or --duration SECONDS",
            ));
        }
        let extra_body = match &self.extra_body {
            None => serde_json::Map::new(),
            Some(text) => match serde_json::from_str(text) {
                Ok(serde_json::Value::Object(map)) => map,
                _ => {
                    return Err(RunnerError::flag(
                        "--extra-body",
                        format!("--extra-body must be a JSON object, not `{text}`"),
                    ))
                }
            },
        };
        Ok(load::Settings {
            url: self.url.clone(),
            endpoint: self.endpoint,
            model: self.model.clone(),
            stream: self.stream,
            arrival,
            concurrency: self.concurrency,
            requests: self.requests,
            duration: self
                .duration
                .map(|d| positive("--duration", d).map(Duration::from_secs_f64))
                .transpose()?,
            warmup: self.warmup,
            isl: self.isl.max(1),
            isl_stddev: self.isl_stddev.max(0.0),
            osl: self.osl.max(1),
            osl_stddev: self.osl_stddev.max(0.0),
            seed: self.seed,
            request_timeout: Duration::from_secs_f64(positive("--request-timeout", self.request_timeout)?),
            extra_body,
            slos: self.goodput.as_deref().map(Slos::parse).transpose()?.unwrap_or_default(),
            threads: self.threads,
            tokenizer: self
                .tokenizer
                .as_deref()
                .map(load::tokens::TokenCounter::load)
                .transpose()?
                .map(Arc::new),
            dataset: self
                .input_file
                .as_deref()
                .map(|path| {
                    load::Dataset::read(path, self.input_format.into(), self.fit_to_isl, self.block_size)
                })
                .transpose()?
                .map(Arc::new),
            prefix: self
                .prefix_ratio
                .map(|ratio| {
                    if !(ratio > 0.0 && ratio < 1.0) {
                        return Err(RunnerError::flag(
                            "--prefix-ratio",
                            format!("--prefix-ratio must be between 0 and 1, not {ratio}"),
                        ));
                    }
                    if self.prefix_prompts == 0 {
                        return Err(RunnerError::flag(
                            "--prefix-prompts",
                            "--prefix-prompts must be at least 1",
                        ));
                    }
                    Ok(load::source::SharedPrefix { ratio, count: self.prefix_prompts, salt: 0 })
                })
                .transpose()?,
            images: match self.images {
                None => None,
                Some(_) if self.endpoint != load::Endpoint::Chat => {
                    return Err(RunnerError::flag(
                        "--images",
                        "--images go with the chat endpoint (`--endpoint chat`)",
                    ))
                }
                Some(count) => {
                    if self.image_width == 0 || self.image_height == 0 {
                        return Err(RunnerError::flag(
                            "--image-width",
                            "--image-width and --image-height must be at least 1",
                        ));
                    }
                    Some(load::images::Synthetic {
                        count,
                        width: self.image_width,
                        height: self.image_height,
                    })
                }
            },
            measured_start: Default::default(),
        })
    }
}

fn profile(args: &ProfileArgs) -> Result<ExitCode, RunnerError> {
    let settings = args.settings()?;
    if let Some(dir) = &args.artifact_dir {
        std::fs::create_dir_all(dir).map_err(|source| RunnerError::File {
            action: "create",
            path: dir.clone(),
            source,
        })?;
    }
    let cancel = load::Cancel::new();
    {
        let cancel = cancel.clone();
        std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                return;
            };
            runtime.block_on(async {
                let _ = tokio::signal::ctrl_c().await;
                cancel.cancel("cancelled", "interrupted (SIGINT)");
            });
        });
    }
    let targets = args.scrape_targets()?;
    if args.server_metrics_interval_ms < 100 {
        return Err(RunnerError::flag(
            "--server-metrics-interval-ms",
            "--server-metrics-interval-ms must be at least 100",
        ));
    }
    let scraper = match (&args.artifact_dir, targets.is_empty()) {
        (Some(dir), false) => Some(scrape::Scraper::start(
            dir,
            targets,
            Duration::from_millis(args.server_metrics_interval_ms),
            settings.measured_start.clone(),
        )?),
        _ => None,
    };
    let outcome = load::run(settings.clone(), cancel, args.artifact_dir.as_deref(), args.progress.into());
    if let (Some(scraper), Some(dir)) = (scraper, &args.artifact_dir) {
        let summary = scraper.finish();
        for note in &summary.notes {
            eprintln!("sweep-runner: {note}");
        }
        sweep_folder::PointDir::new(dir).write_server_metrics(&summary)?;
    }
    let outcome = outcome?;
    let json = outcome.to_json(&settings, serde_json::json!({}));
    if let Some(dir) = &args.artifact_dir {
        load::write_exports(dir, &json, &outcome.profiling)?;
    }
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let text = match args.format {
        FormatArg::Json => format!("{json}\n"),
        FormatArg::Table => load::console::summary_table(&json),
    };
    stdout.write_all(text.as_bytes()).map_err(|e| write_error(std::path::Path::new("stdout"), e))?;
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    // A panic is a bug: exit 1 as every other failure does (docs/runner.md), not Rust's 101.
    std::panic::set_hook(Box::new(|info| {
        eprintln!("sweep-runner: bug: {info}; please report it with the job's folder");
        std::process::exit(1);
    }));
    let cli = Cli::parse();
    let result = match &cli.command {
        Step::Serve { job_dir, role, index, port, gpus, interface, host, command } => {
            serve::run(&serve::Serve {
                job_dir,
                role,
                index: *index,
                port: *port,
                gpus: gpus.as_deref(),
                interface: interface.as_deref(),
                host: host.as_deref(),
                command,
            })
        }
        Step::Benchmark { job_dir, ready_timeout, deadline, deadline_margin, progress } => {
            benchmark::run(&benchmark::Benchmark {
                job_dir: job_dir.clone(),
                ready_timeout: ready_timeout.map(Duration::from_secs_f64),
                deadline: *deadline,
                margin: Duration::from_secs_f64(deadline_margin.max(0.0)),
                progress: (*progress).into(),
            })
        }
        Step::Profile(args) => profile(args),
        Step::Trace(TraceKind::Sin(args)) => trace_sin(args),
        Step::Trace(TraceKind::Burstgpt(args)) => trace_burstgpt(args),
        Step::Trace(TraceKind::Prefix(args)) => trace_prefix(args),
        Step::Guard { group, parent } => group::run_guard(*group, *parent),
        Step::WithWorkers { job_dir, format, config, port, timeout, command } => {
            workers::with_workers(&workers::WithWorkers {
                job_dir,
                format: *format,
                config: config.as_deref(),
                port: *port,
                timeout: Duration::from_secs_f64(timeout.max(0.0)),
                command,
            })
        }
    };
    match result {
        Ok(code) => code,
        Err(message) => {
            eprintln!("sweep-runner: {message}");
            ExitCode::from(1)
        }
    }
}
