//! `sweep-runner benchmark`: the BENCHMARK role of a job.
//!
//! 1. writes the job's `metadata.json` (deployment, GPUs allocated and working, nodes, engine,
//!    versions, seed) before anything is measured;
//! 2. waits until every server has registered and answers its health check (with the expected
//!    instances behind a router), then sends one smoke request that must return a token — and
//!    fails at once, with the log's tail, when a server process ends while it waits;
//! 3. runs each point into `points/<id>/`: per-request records as they finish, the
//!    aiperf-compatible exports, and a `status.json` marker (`done`, `failed`, `timeout`,
//!    `cancelled`) with the reason — stopping in time before the job's time limit, and on
//!    SIGTERM, with what was measured kept and what was not run marked;
//! 4. with `accuracy` in the spec, asks the servers its questions ([`crate::accuracy`]) into
//!    `accuracy/`;
//! 5. writes `status/benchmark.json` and tells the servers to stop, so the job ends by itself.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sweep_folder::job::JobContext;
use sweep_folder::metadata::{EngineInfo, FrontendRecord, Gpus, JobRef, Metadata, ServerRecord};
use sweep_folder::settings::{ArrivalKind, Endpoint, Parallel, Point, Search, Slo};
use sweep_folder::{
    BenchmarkState, BenchmarkStatus, Executor, JobDir, PointDir, PointState, PointStatus, ServerState,
};

use crate::files;
use crate::RunnerError;
use crate::{provenance, readiness, scrape};
use sweep_load::{self as load, progress, Arrival, Cancel, Slos};

#[derive(Debug)]
pub struct Benchmark {
    pub job_dir: PathBuf,
    /// Overrides `engine.health.timeout`.
    pub ready_timeout: Option<Duration>,
    /// Unix time by which every point must have stopped; else found from SLURM's time left.
    pub deadline: Option<f64>,
    /// How long before the deadline to stop, leaving time to write results.
    pub margin: Duration,
    pub progress: progress::Mode,
}

/// The job's host names, in SLURM's order: the nodes it was given inside an allocation
/// (`SWEEP_NODELIST`, as its script takes them), else its own job's; this host's name outside
/// SLURM.
fn hosts() -> Vec<String> {
    match std::env::var("SWEEP_NODELIST").or_else(|_| std::env::var("SLURM_JOB_NODELIST")) {
        Ok(list) => sweep_slurm::hostlist::expand(&list).unwrap_or_else(|_| vec![list]),
        Err(_) => vec![files::node()],
    }
}

/// SLURM's time left for this job, from `squeue -o %L` (`[days-]hours:minutes:seconds`).
fn slurm_time_left() -> Option<Duration> {
    let id = std::env::var("SLURM_JOB_ID").ok()?;
    let output = std::process::Command::new("squeue").args(["-h", "-j", &id, "-o", "%L"]).output().ok()?;
    parse_time_left(String::from_utf8_lossy(&output.stdout).trim())
}

pub fn parse_time_left(text: &str) -> Option<Duration> {
    let (days, rest) = match text.split_once('-') {
        Some((d, rest)) => (d.parse::<u64>().ok()?, rest),
        None => (0, text),
    };
    let parts: Vec<u64> = rest.split(':').map(|p| p.parse().ok()).collect::<Option<_>>()?;
    let seconds = match parts.as_slice() {
        [h, m, s] => h * 3600 + m * 60 + s,
        [m, s] => m * 60 + s,
        [s] => *s,
        _ => return None,
    };
    Some(Duration::from_secs(days * 86_400 + seconds))
}

/// How often the job's servers' markers are read while it waits or loads.
const WATCH_INTERVAL: Duration = Duration::from_millis(250);

/// A server of `names` that has ended: its state, and its status and log tail; with `stopped:
/// false`, only one that ended by itself (a server told to stop is no fault of its own).
fn ended_server(dir: &JobDir, names: &[String], stopped: bool) -> Option<(ServerState, String)> {
    names.iter().find_map(|name| {
        // A marker being written (or unreadable) is not taken for an end: the next poll reads
        // it whole.
        let status = dir.read_server_status(name).ok().flatten()?;
        if !stopped && status.state == ServerState::Stopped {
            return None;
        }
        let log = files::tail(&dir.log_path(name), 20);
        let reason = format!(
            "server {name} ended ({}): {}\n--- last lines of logs/{name}.log ---\n{log}",
            status.state.as_str(),
            status.reason
        );
        Some((status.state, reason))
    })
}

/// Watches the job's servers (their steps write a marker when their process exits), and
/// `control/cancel`, until the benchmark is over. A cancel stops the load as SIGTERM does. Of the
/// servers, the first one that ends fails the job's load at once — the point running
/// stops with what it measured, and no later point is sent to a dead port. Without it a
/// request to a crashed server could wait out its whole timeout.
fn watch_servers(dir: JobDir, names: Vec<String>, cancel: Cancel, over: Arc<AtomicBool>) {
    std::thread::spawn(move || {
        while !over.load(Ordering::SeqCst) && !cancel.is_cancelled() {
            // Whoever runs the job asked it to stop (`control/cancel`): as SIGTERM does.
            if let Some(reason) = dir.cancel_requested() {
                cancel.cancel("cancelled", reason);
                return;
            }
            if let Some((_, reason)) = ended_server(&dir, &names, false) {
                if !over.load(Ordering::SeqCst) {
                    cancel.cancel("failed", reason);
                }
                return;
            }
            std::thread::sleep(WATCH_INTERVAL);
        }
    });
}

struct Run {
    dir: JobDir,
    job: JobContext,
    hosts: Vec<String>,
    started: f64,
    cancel: Cancel,
    progress: progress::Mode,
    /// `workload.tokenizer`, loaded once for every point.
    tokenizer: Option<Arc<load::tokens::TokenCounter>>,
    /// `workload.dataset`, read once for every point.
    dataset: Option<Arc<load::Dataset>>,
    /// Every server's and the frontend's `/metrics` (`engine.metrics`), known once they are
    /// ready; empty when scraping is off.
    scrape_targets: Vec<scrape::Target>,
    /// Every GPU of the job's nodes, sampled from when the servers are ready
    /// (`engine.metrics.gpu_interval_ms`); `None` when off.
    gpu: Option<crate::gpu::Sampler>,
}

impl Run {
    /// The host of the job's node `node`. Outside SLURM (the local executor) every node is
    /// this host.
    fn host(&self, node: u32) -> String {
        let host = if self.hosts.len() == 1 { self.hosts.first() } else { self.hosts.get(node as usize) };
        host.cloned().unwrap_or_else(|| format!("node{node}"))
    }

    fn metadata(&self, addresses: &BTreeMap<String, String>) -> Metadata {
        let job = &self.job;
        let slurm_job_id = std::env::var("SLURM_JOB_ID").ok();
        Metadata {
            sweep: job.sweep.clone(),
            job: JobRef { id: job.id.clone(), name: job.name.clone(), mode: job.mode.clone() },
            engine: job.engine.clone(),
            model: job.model.served_name.clone(),
            roles: job.roles.clone(),
            servers: job
                .servers
                .iter()
                .map(|s| ServerRecord {
                    name: s.name.clone(),
                    role: s.role,
                    nodes: s.nodes.iter().map(|&n| self.host(n)).collect(),
                    cuda_visible_devices: s.cuda_visible_devices.clone(),
                    port: s.port,
                    address: addresses.get(&s.name).cloned(),
                })
                .collect(),
            frontend: job.frontend.as_ref().map(|f| FrontendRecord {
                node: self.host(f.node),
                port: f.port,
                address: addresses.get("disagg_server_0").cloned(),
            }),
            gpus: Gpus { allocated: job.gpus_allocated(), working: job.gpus_working() },
            executor: if slurm_job_id.is_some() { Executor::Slurm } else { Executor::Local },
            slurm_job_id,
            node_list: std::env::var("SLURM_JOB_NODELIST").ok(),
            nodes: self.hosts.clone(),
            versions: BTreeMap::from([("sweep-runner".to_owned(), env!("CARGO_PKG_VERSION").to_owned())]),
            seed: job.load.seed,
            load: job.load.clone(),
            started_at: self.started,
            engine_info: None,
            knobs: job.knobs.clone(),
            env: job.env.clone(),
            image: job.container.as_ref().map(|c| c.image.clone()),
            venv: job.venv.clone(),
        }
    }

    /// A server that has ended, with its status and log tail: the reason a wait or point fails.
    fn ended_server(&self) -> Option<(ServerState, String)> {
        ended_server(&self.dir, &self.job.server_names(), true)
    }

    /// Sleeps `pause`, waking early when a server ends or the job is cancelled.
    fn nap(&self, pause: Duration) {
        let until = Instant::now() + pause;
        while Instant::now() < until && !self.cancel.is_cancelled() {
            std::thread::sleep(WATCH_INTERVAL.min(until.saturating_duration_since(Instant::now())));
        }
    }

    /// Waits until the job can be loaded; returns every server's address by name.
    ///
    /// Readiness is decided where the load goes (the frontend, or the job's one server): every
    /// server registered; the endpoint answers its health path with 200 and, when the body
    /// lists instances, lists the job's servers per role; `/v1/models` names the served model;
    /// and one smoke request returns a token. Workers behind a frontend need not serve HTTP
    /// (Dynamo's do not); they are watched through their status markers instead, and one that
    /// ends fails the wait at once. With the health check off, the smoke request still has to
    /// succeed, so the first point never meets an endpoint that is not listening yet.
    fn wait_ready(&self, timeout: Duration) -> Result<BTreeMap<String, String>, String> {
        let deadline = Instant::now() + timeout;
        let names = self.job.server_names();
        let mut addresses = BTreeMap::new();
        while addresses.len() < names.len() {
            for name in &names {
                if let Ok(Some(r)) = self.dir.read_registration(name) {
                    addresses.insert(name.clone(), r.address);
                }
            }
            if addresses.len() == names.len() {
                break;
            }
            self.still_waiting(deadline, || {
                let missing: Vec<&str> =
                    names.iter().filter(|n| !addresses.contains_key(*n)).map(String::as_str).collect();
                format!("servers not registered after {timeout:?}: {}", missing.join(", "))
            })?;
            std::thread::sleep(Duration::from_millis(200));
        }
        let (target, address) = self.target(&addresses)?;
        let url = format!("http://{address}");
        let interval = Duration::from_secs_f64(self.job.health.interval);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the runtime: {e}"))?;
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| e.to_string())?;
        let get = |url: &str| {
            runtime.block_on(async {
                let response = client.get(url).send().await.map_err(|e| e.to_string())?;
                let status = response.status();
                Ok::<_, String>((status, response.text().await.unwrap_or_default()))
            })
        };
        // Polls `check` every interval until it passes; a check's `Err` is the last reason, told
        // when the timeout is reached.
        let poll = |what: &str, check: &mut dyn FnMut() -> Result<(), Check>| -> Result<(), String> {
            loop {
                let last = match check() {
                    Ok(()) => return Ok(()),
                    Err(Check::Fail(reason)) => return Err(reason),
                    Err(Check::Wait(last)) => last,
                };
                self.still_waiting(deadline, || {
                    let log = files::tail(&self.dir.log_path(&target), 20);
                    format!(
                        "{target} {what} after {timeout:?} ({last})\n--- last lines of logs/{target}.log ---\n{log}"
                    )
                })?;
                self.nap(interval);
            }
        };
        if let Some(path) = &self.job.health.path {
            // A router that lists no instances (vllm-router, SGLang's) may call itself ready
            // before every worker is: where the engine's workers serve HTTP of their own, each
            // must answer its health path first. Dynamo's serve none (its frontend lists them),
            // and a custom engine's are not assumed to.
            if self.job.frontend.is_some() && !matches!(self.job.engine.as_str(), "dynamo" | "custom") {
                for server in &self.job.servers {
                    let worker_url = format!("http://{}{path}", addresses[&server.name]);
                    poll(&format!("has a worker that is not healthy ({})", server.name), &mut || match get(
                        &worker_url,
                    ) {
                        Ok((status, _)) if status.is_success() => Ok(()),
                        Ok((status, _)) => Err(Check::Wait(format!("{worker_url}: HTTP {status}"))),
                        Err(e) => Err(Check::Wait(format!("{worker_url}: {e}"))),
                    })?;
                }
            }
            let expected = self.expected_instances();
            let disaggregated = self.job.mode == "disagg";
            let health_url = format!("{url}{path}");
            poll("not healthy", &mut || match get(&health_url) {
                Ok((status, body)) if status.is_success() => {
                    match readiness::missing_instances(&body, &expected, disaggregated) {
                        None => Ok(()),
                        Some(what) => Err(Check::Wait(format!("{health_url}: healthy, but {what}"))),
                    }
                }
                Ok((status, body)) => Err(Check::Wait(format!(
                    "{health_url}: HTTP {status}: {}",
                    body.chars().take(200).collect::<String>()
                ))),
                Err(e) => Err(Check::Wait(format!("{health_url}: {e}"))),
            })?;
            let models_url = format!("{url}/v1/models");
            let model = &self.job.model.served_name;
            poll("does not list the model", &mut || match get(&models_url) {
                // A server without a model list is not held to one.
                Ok((status, _)) if status == reqwest::StatusCode::NOT_FOUND => Ok(()),
                Ok((status, body)) if status.is_success() => readiness::lists_model(&body, model)
                    .map_err(|e| Check::Wait(format!("{models_url}: {e}"))),
                Ok((status, _)) => Err(Check::Wait(format!("{models_url}: HTTP {status}"))),
                Err(e) => Err(Check::Wait(format!("{models_url}: {e}"))),
            })?;
        }
        // `load: false` with no health check is for servers without HTTP: registered is ready.
        if self.job.health.path.is_some() || self.job.load.enabled {
            poll("did not answer a smoke request", &mut || self.smoke(&url))?;
        }
        Ok(addresses)
    }

    /// Ok while the wait may go on; else why not: a server ended (with its log's tail), the job
    /// was cancelled, or the deadline passed (`late` says what was not ready).
    fn still_waiting(&self, deadline: Instant, late: impl FnOnce() -> String) -> Result<(), String> {
        if let Some((_, reason)) = self.ended_server() {
            return Err(reason);
        }
        if let Some(reason) = self.cancel.reason() {
            return Err(reason);
        }
        if Instant::now() > deadline {
            return Err(late());
        }
        Ok(())
    }

    /// The server the benchmark loads: the frontend, or the job's one server.
    fn target<'m>(&self, addresses: &'m BTreeMap<String, String>) -> Result<(String, &'m String), String> {
        let name = if self.job.frontend.is_some() {
            "disagg_server_0".to_owned()
        } else {
            self.job.servers.first().map(|s| s.name.clone()).ok_or("the job has no server to load")?
        };
        let address = addresses.get(&name).ok_or_else(|| format!("{name} has not registered"))?;
        Ok((name, address))
    }

    /// What a router must list behind it: servers per role.
    fn expected_instances(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        if self.job.frontend.is_some() {
            for server in &self.job.servers {
                *out.entry(server.role.as_str().to_owned()).or_default() += 1;
            }
        }
        out
    }

    fn settings(&self, url: &str, point: &Point) -> Result<load::Settings, String> {
        let l = &self.job.load;
        // Planned with the open loop's arrival: every such point has a rate.
        let rate = || point.request_rate.ok_or("an open-loop point without `request_rate`");
        let arrival = match l.arrival {
            ArrivalKind::Closed => Arrival::Closed,
            ArrivalKind::Constant => Arrival::Constant { rate: rate()? },
            ArrivalKind::Poisson => Arrival::Poisson { rate: rate()? },
            ArrivalKind::Gamma => Arrival::Gamma { rate: rate()?, shape: l.burstiness },
            ArrivalKind::Trace => {
                let path = l.trace.as_deref().ok_or("trace replay without a trace")?;
                let entries = load::prompts::read_trace(Path::new(path)).map_err(|e| e.to_string())?;
                Arrival::Trace {
                    entries: Arc::new(entries),
                    block_size: l.trace_block_size,
                    speedup: l.trace_speedup,
                }
            }
        };
        Ok(load::Settings {
            url: url.to_owned(),
            endpoint: match l.endpoint {
                Endpoint::Chat => load::Endpoint::Chat,
                Endpoint::Completions => load::Endpoint::Completions,
            },
            model: self.job.model.served_name.clone(),
            stream: l.streaming,
            arrival,
            concurrency: u32::try_from(point.effective_concurrency).unwrap_or(u32::MAX),
            requests: Some(point.requests),
            duration: l.duration.map(Duration::from_secs_f64),
            warmup: point.warmup,
            isl: point.isl,
            isl_stddev: l.isl_stddev,
            osl: point.osl,
            osl_stddev: l.osl_stddev,
            seed: l.seed,
            request_timeout: Duration::from_secs_f64(l.request_timeout),
            extra_body: l.extra_body.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            slos: Slos {
                time_to_first_token: l.goodput.time_to_first_token,
                inter_token_latency: l.goodput.inter_token_latency,
                request_latency: l.goodput.request_latency,
            },
            threads: 2,
            tokenizer: self.tokenizer.clone(),
            dataset: self.dataset.clone(),
            prefix: point.prefix_ratio.map(|r| load::source::SharedPrefix {
                ratio: r,
                count: l.prefix_prompts.unwrap_or(1),
                salt: point.id.0,
            }),
            images: l.images.map(|i| load::images::Synthetic {
                count: i.count,
                width: i.width,
                height: i.height,
            }),
            measured_start: Default::default(),
        })
    }

    /// Every server's and the frontend's metrics URL, by name and role.
    fn scrape_targets(&self, addresses: &BTreeMap<String, String>) -> Vec<scrape::Target> {
        let Some(path) = &self.job.metrics.path else { return Vec::new() };
        let roles = self.job.servers.iter().map(|s| (s.name.clone(), s.role.as_str().to_owned())).chain(
            self.job.frontend.as_ref().map(|_| {
                (sweep_folder::markers::ServerRole::DisaggServer.server_name(0), "frontend".to_owned())
            }),
        );
        roles
            .filter_map(|(name, role)| {
                let address = addresses.get(&name)?;
                Some(scrape::Target { url: format!("http://{address}{path}"), name, role })
            })
            .collect()
    }

    /// Starts scraping for a point, when `engine.metrics` asks for it; a scraper that cannot
    /// start is said on stderr and the point goes on without it.
    fn start_scraper(&self, dir: &PointDir, settings: &load::Settings) -> Option<scrape::Scraper> {
        if self.scrape_targets.is_empty() {
            return None;
        }
        let interval = Duration::from_millis(self.job.metrics.interval_ms);
        scrape::Scraper::start(
            dir.path(),
            self.scrape_targets.clone(),
            interval,
            settings.measured_start.clone(),
        )
        .map_err(|e| eprintln!("sweep-runner: point {}: not scraping /metrics: {e}", dir.name()))
        .ok()
    }

    /// One request that must come back with at least one token. A refused connection or a
    /// server error (5xx: still loading) is worth waiting for; any other answer fails now.
    fn smoke(&self, url: &str) -> Result<(), Check> {
        let point = Point {
            id: sweep_plan::Id(0),
            isl: 8,
            osl: 2,
            concurrency: 1,
            effective_concurrency: 1,
            // Any rate: the arrival is replaced by a closed loop below.
            request_rate: Some(1.0),
            prefix_ratio: None,
            requests: 1,
            warmup: 0,
            search: None,
            repeat: 0,
        };
        let mut settings = self.settings(url, &point).map_err(Check::Fail)?;
        settings.arrival = Arrival::Closed;
        settings.slos = Slos::default();
        let outcome = load::run(settings, self.cancel.clone(), None, progress::Mode::Off)
            .map_err(|e| Check::Fail(e.into()))?;
        if outcome.profiling.completed == 1 {
            return Ok(());
        }
        let Some(((code, kind), (_, message))) = outcome.profiling.errors.iter().next() else {
            return Err(Check::Wait(format!("the smoke request to {url} got no answer")));
        };
        let reason = format!(
            "the smoke request to {url} failed: {kind}{} {message}",
            code.map(|c| format!(" {c}")).unwrap_or_default()
        );
        match code {
            None | Some(500..) => Err(Check::Wait(reason)),
            Some(_) => Err(Check::Fail(reason)),
        }
    }

    fn mark(
        &self,
        dir: &PointDir,
        point: &Point,
        state: PointState,
        reason: &str,
        started: f64,
    ) -> Result<(), RunnerError> {
        let status = PointStatus {
            point: point.id.to_string(),
            job: self.job.name.clone(),
            state,
            reason: reason.to_owned(),
            started_at: started,
            ended_at: files::now(),
        };
        Ok(dir.write_status(&status)?)
    }

    /// Runs one point; returns its state and, when it measured, its aiperf export.
    fn point(
        &self,
        url: &str,
        point: &Point,
    ) -> Result<(PointState, Option<serde_json::Value>), RunnerError> {
        let dir = self.dir.new_point_dir(&point.id.to_string())?;
        let started = files::now();
        dir.write_point(point)?;
        if let (Some(state), Some(reason)) = (stopped(&self.cancel), self.cancel.reason()) {
            self.mark(&dir, point, state.into(), &format!("not run: {reason}"), started)?;
            return Ok((state.into(), None));
        }
        self.mark(&dir, point, PointState::Running, "", started)?;
        let settings = match self.settings(url, point) {
            Ok(settings) => settings,
            Err(reason) => {
                self.mark(&dir, point, PointState::Failed, &reason, started)?;
                return Ok((PointState::Failed, None));
            }
        };
        let scraper = self.start_scraper(&dir, &settings);
        let outcome = load::run(settings.clone(), self.cancel.clone(), Some(dir.path()), self.progress);
        // Written whatever the load's outcome: what the servers saw of a failed point is the
        // best clue to why it failed.
        if let Some(scraper) = scraper {
            dir.write_server_metrics(&scraper.finish())?;
        }
        let outcome = outcome?;
        if let Some(gpu) = &self.gpu {
            // The measured window: the first measured request sent to the last answer.
            let window = (outcome.start_ns as f64 / 1e9, outcome.end_ns as f64 / 1e9);
            let (samples, notes) = gpu.window(window);
            let summary =
                sweep_folder::gpu_metrics::GpuSummary::of(&samples, window, gpu.interval_ms(), notes);
            dir.write_gpu_metrics(&samples, &summary)?;
            gpu.forget_before(window.1);
        }
        let mut extra = serde_json::json!({
            "point": point,
            "job": {"id": self.job.id, "name": self.job.name},
        });
        if let Some(dataset) = &self.dataset {
            extra["dataset"] = dataset.info.clone();
        }
        if self.job.load.dep_ttft_correction && outcome.cancelled.is_none() {
            if let Some(corrected) = self.dep_ttft(&settings)? {
                extra["time_to_first_token_dep_corrected"] = corrected;
            }
        }
        let json = outcome.to_json(&settings, extra);
        load::write_exports(dir.path(), &json, &outcome.profiling)?;
        let p = &outcome.profiling;
        // A server that died shows up first as failed connections; its marker follows within
        // the serve step's poll interval.
        let lost_connections =
            p.errors.keys().any(|(_, kind)| matches!(*kind, "transport" | "stream_interrupted"));
        let ended = match self.ended_server() {
            None if lost_connections => {
                std::thread::sleep(Duration::from_secs(2));
                self.ended_server()
            }
            ended => ended,
        };
        let (state, reason) = if let Some(reason) = &outcome.cancelled {
            let state = stopped(&self.cancel).unwrap_or(BenchmarkState::Cancelled).into();
            // A server's end comes with its log's last lines: the count goes on the first line.
            let (first, rest) = reason.split_once('\n').map_or((reason.as_str(), ""), |(f, r)| (f, r));
            let rest = if rest.is_empty() { String::new() } else { format!("\n{rest}") };
            (state, format!("{first}; {} requests finished before it, kept{rest}", p.completed))
        } else if let Some((ServerState::Stopped, server)) = ended {
            // Stopped from outside the benchmark (the job cancelled, the `sweep submit` running
            // it interrupted), which may tell the benchmark itself a moment later: cancelled, not
            // failed, and no later point is sent to the stopped servers.
            self.cancel.cancel("cancelled", first_line(&server).to_owned());
            let why = self.cancel.reason().unwrap_or(server);
            (
                PointState::Cancelled,
                format!("{}; {} requests finished before it, kept", first_line(&why), p.completed),
            )
        } else if let Some((_, server)) = ended {
            (PointState::Failed, server)
        } else if p.completed == 0 {
            let why =
                p.errors.iter().next().map_or("no request was sent".to_owned(), |((code, kind), (n, m))| {
                    format!(
                        "all {n} requests failed: {kind}{} {m}",
                        code.map(|c| format!(" {c}")).unwrap_or_default()
                    )
                });
            (PointState::Failed, why)
        } else {
            (PointState::Done, format!("{} requests, {} errors", p.completed, p.error_count()))
        };
        self.mark(&dir, point, state, &reason, started)?;
        Ok((state, Some(json)))
    }

    /// Runs the search of a planned point (`workload.search`): each load it asks for is a step,
    /// a point of its own; `search.json` in the planned point's folder is rewritten after every
    /// step, so a job stopped halfway keeps what was found. Returns the planned point's state.
    fn search(&self, url: &str, planned: &Point, search: &Search) -> Result<PointState, RunnerError> {
        let dir = self.dir.new_point_dir(&planned.id.to_string())?;
        let started = files::now();
        dir.write_point(planned)?;
        self.mark(&dir, planned, PointState::Running, "searching", started)?;
        // The job's id is one `sweep render` wrote; one that does not parse is a folder edited by hand.
        let job_id = self.job.id.parse::<sweep_plan::Id>().map_err(|e| {
            RunnerError::Folder(sweep_folder::FolderError::Parse {
                path: self.dir.job_path(),
                line: 0,
                column: 0,
                key: "id".into(),
                message: format!("job id {}: {e}", self.job.id),
            })
        })?;
        let mut searcher = crate::search::Searcher::new(search);
        let mut record = sweep_folder::search::SearchRecord {
            point: planned.id.to_string(),
            search: search.clone(),
            steps: Vec::new(),
            max_load_meeting_slo: None,
            stopped_because: "searching".to_owned(),
            finished: false,
        };
        let (state, reason) = loop {
            let (load, phase) = match searcher.next().clone() {
                crate::search::Next::Measure { load, phase } => (load, phase),
                crate::search::Next::Done { max_load_meeting_slo, stopped_because } => {
                    record.max_load_meeting_slo = max_load_meeting_slo;
                    record.stopped_because = stopped_because.clone();
                    record.finished = true;
                    let answer = max_load_meeting_slo.map_or_else(|| "none".to_owned(), |l| l.to_string());
                    break (
                        PointState::Done,
                        format!(
                            "max {} meeting the SLO: {answer} ({stopped_because}; {} steps)",
                            search.axis.as_str(),
                            record.steps.len()
                        ),
                    );
                }
            };
            let step = planned.search_step(job_id, &self.job.load, search, load);
            let (step_state, export) = self.point(url, &step)?;
            let broken = export.as_ref().map(|e| slo_breaches(e, &search.slo)).unwrap_or_default();
            let throughput = export.as_ref().and_then(|e| e["output_token_throughput"]["avg"].as_f64());
            record.steps.push(sweep_folder::search::SearchStep {
                point: step.id.to_string(),
                load,
                phase: phase.to_owned(),
                output_token_throughput: throughput,
                broken: broken.clone(),
                state: step_state.as_str().to_owned(),
            });
            if step_state != PointState::Done {
                // A server that died, or the job's time limit: the search ends with what it has.
                record.max_load_meeting_slo = searcher.so_far();
                record.stopped_because = format!("step at {load} ended {}", step_state.as_str());
                let state = if step_state == PointState::Skipped { PointState::Failed } else { step_state };
                break (state, format!("the search stopped: {}", record.stopped_because));
            }
            searcher.record(crate::search::Measured { load, throughput: throughput.unwrap_or(0.0), broken });
            record.max_load_meeting_slo = searcher.so_far();
            dir.write_search(&record)?;
        };
        dir.write_search(&record)?;
        self.mark(&dir, planned, state, &reason, started)?;
        Ok(state)
    }

    /// Dynamo's DEP TTFT correction: one burst of `attention_dp_size × 4` requests, reporting
    /// max(TTFT) / 4. Only for a DEP serving role.
    fn dep_ttft(&self, settings: &load::Settings) -> Result<Option<serde_json::Value>, RunnerError> {
        let Some(role) = self.job.serving_role().filter(|r| r.config.parallel == Parallel::Dep) else {
            return Ok(None);
        };
        let adp = u64::from(role.config.tp);
        let burst = adp * 4;
        let mut s = settings.clone();
        s.arrival = Arrival::Closed;
        s.concurrency = u32::try_from(burst).unwrap_or(u32::MAX);
        s.requests = Some(burst);
        s.warmup = 0;
        s.duration = None;
        let outcome = load::run(s, self.cancel.clone(), None, progress::Mode::Off)?;
        let Some(ttft) = outcome.profiling.stat("time_to_first_token").filter(|s| s.count() > 0) else {
            return Ok(None);
        };
        let max = ttft.quantile(1.0);
        Ok(Some(serde_json::json!({
            "unit": "ms", "avg": max / 4.0, "burst": burst, "attention_dp_size": adp,
            "definition": "max(TTFT) / 4 over one burst of attention_dp_size × 4 requests (Dynamo's profiler)",
        })))
    }
}

/// SIGTERM or SIGINT cancels the load; results so far are kept and marked.
fn on_signal(cancel: Cancel) {
    std::thread::spawn(move || {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
        runtime.block_on(async {
            use tokio::signal::unix::{signal, SignalKind};
            let (Ok(mut term), Ok(mut int)) =
                (signal(SignalKind::terminate()), signal(SignalKind::interrupt()))
            else {
                return;
            };
            let name = tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            };
            cancel.cancel(
                "cancelled",
                format!("received {name} (the job was cancelled or reached its time limit)"),
            );
        });
    });
}

/// How a cancel stopped the job: at its time limit, by a server that ended, or cancelled.
fn stopped(cancel: &Cancel) -> Option<BenchmarkState> {
    cancel.state().map(|s| match s {
        "timeout" => BenchmarkState::Timeout,
        "failed" => BenchmarkState::Failed,
        _ => BenchmarkState::Cancelled,
    })
}

pub fn run(b: &Benchmark) -> Result<ExitCode, RunnerError> {
    let dir = JobDir::new(&b.job_dir);
    let started = files::now();
    let node = files::node();
    dir.create_folders()?;
    // Set once the outcome is decided: the servers stopping after it are no fault.
    let over = Arc::new(AtomicBool::new(false));
    let finish = |state: BenchmarkState, reason: &str| -> Result<ExitCode, RunnerError> {
        over.store(true, Ordering::SeqCst);
        let status = BenchmarkStatus {
            state,
            node: node.clone(),
            reason: reason.to_owned(),
            started_at: started,
            ended_at: files::now(),
        };
        dir.write_benchmark_status(&status)?;
        // The servers stop when they see this; the job then ends by itself, COMPLETED.
        let _ = dir.request_stop();
        eprintln!("sweep-runner: benchmark {}: {reason}", state.as_str());
        Ok(if state == BenchmarkState::Done { ExitCode::SUCCESS } else { ExitCode::from(1) })
    };
    let mut job = match dir.read_job() {
        Ok(job) => job,
        Err(error) => return finish(BenchmarkState::Failed, &error.to_string()),
    };
    // Points marked skipped before the job started (`sweep explore` measures only the loads
    // that can still add to the frontier) are not run: they keep their marker and its reason.
    let marked = dir.skipped_points();
    let planned = job.points.len();
    job.points.retain(|p| !marked.contains(&p.id.to_string()));
    let skipped = planned - job.points.len();
    let cancel = Cancel::new();
    on_signal(cancel.clone());
    watch_servers(dir.clone(), job.server_names(), cancel.clone(), over.clone());
    let deadline = b
        .deadline
        .map(|unix| Duration::from_secs_f64((unix - files::now()).max(0.0)))
        .or_else(slurm_time_left)
        .map(|left| left.saturating_sub(b.margin));
    if let Some(left) = deadline {
        let cancel = cancel.clone();
        let margin = b.margin;
        std::thread::spawn(move || {
            std::thread::sleep(left);
            cancel.cancel(
                "timeout",
                format!("the job's time limit is near (stopped {} s before it)", margin.as_secs()),
            );
        });
    }
    let mut run = Run {
        dir: dir.clone(),
        job,
        hosts: hosts(),
        started,
        cancel,
        progress: b.progress,
        tokenizer: None,
        dataset: None,
        scrape_targets: Vec::new(),
        gpu: None,
    };
    dir.write_metadata(&run.metadata(&BTreeMap::new()))?;
    // A tokenizer that cannot be read fails the job now, not after the servers have loaded.
    if let Some(path) = &run.job.load.tokenizer {
        match load::tokens::TokenCounter::load(Path::new(path)) {
            Ok(tokenizer) => run.tokenizer = Some(Arc::new(tokenizer)),
            Err(reason) => {
                mark_unrun(&run, PointState::Failed, &format!("not run: {reason}"))?;
                return finish(BenchmarkState::Failed, &reason.to_string());
            }
        }
    }
    // So does a dataset that cannot be read here, with the file and line.
    if let Some(dataset) = &run.job.load.dataset {
        match load::Dataset::read(
            Path::new(&dataset.path),
            dataset.format.into(),
            dataset.fit_to_isl,
            run.job.load.trace_block_size,
        ) {
            Ok(read) => run.dataset = Some(Arc::new(read)),
            Err(reason) => {
                mark_unrun(&run, PointState::Failed, &format!("not run: {reason}"))?;
                return finish(BenchmarkState::Failed, &reason.to_string());
            }
        }
    }
    let timeout = b.ready_timeout.unwrap_or(Duration::from_secs_f64(run.job.health.timeout));
    let addresses = match run.wait_ready(timeout) {
        Ok(addresses) => addresses,
        Err(reason) => {
            let state = stopped(&run.cancel).unwrap_or(BenchmarkState::Failed);
            mark_unrun(
                &run,
                state.into(),
                &format!("the servers never became ready: {}", first_line(&reason)),
            )?;
            return finish(state, &reason);
        }
    };
    // Every address was registered for readiness to pass, the target's among them.
    let (_, target) = match run.target(&addresses) {
        Ok(found) => found,
        Err(reason) => return finish(BenchmarkState::Failed, &reason),
    };
    let url = format!("http://{target}");
    run.scrape_targets = run.scrape_targets(&addresses);
    run.gpu = run.job.metrics.gpu_interval_ms.map(|ms| match &run.job.metrics.dcgm_url {
        Some(url) => crate::gpu::Sampler::start_dcgm(url, &run.hosts, ms),
        None => crate::gpu::Sampler::start(&run.hosts, &node, ms),
    });
    let mut metadata = run.metadata(&addresses);
    if run.job.health.path.is_some() {
        metadata.engine_info = Some(engine_info(&url));
    }
    dir.write_metadata(&metadata)?;
    // What ran this job, for comparing sweeps: not worth failing the job over.
    let provenance = provenance::collect(&dir, &run.job, metadata.engine_info.as_ref());
    if let Err(error) = dir.write_provenance(&provenance) {
        eprintln!("sweep-runner: {error}");
    }
    if !run.job.load.enabled {
        mark_unrun(&run, PointState::Skipped, "`workload.load: false`: deployed and checked only")?;
        return finish(
            BenchmarkState::Done,
            &format!("all {} servers ready; no load asked for", addresses.len()),
        );
    }
    let mut states: BTreeMap<PointState, usize> = BTreeMap::new();
    if skipped > 0 {
        states.insert(PointState::Skipped, skipped);
    }
    for point in &run.job.points {
        let state = match &run.job.load.search {
            Some(search) => run.search(&url, point, search)?,
            None => run.point(&url, point)?.0,
        };
        *states.entry(state).or_default() += 1;
    }
    let summary: Vec<String> = states.iter().map(|(s, n)| format!("{n} {}", s.as_str())).collect();
    // The deployment's answers, after its speed: the points' results stand whatever this finds.
    let accuracy = run.job.accuracy.as_ref().map(|accuracy| {
        let result = crate::accuracy::run(&dir, &run.job, accuracy, &url, &node, &run.cancel);
        format!("; accuracy {}: {}", result.state.as_str(), result.reason)
    });
    let total = planned;
    let state = if states.get(&PointState::Done).copied().unwrap_or(0) + skipped == total {
        BenchmarkState::Done
    } else if states.contains_key(&PointState::Timeout) {
        BenchmarkState::Timeout
    } else if states.contains_key(&PointState::Cancelled) {
        BenchmarkState::Cancelled
    } else {
        BenchmarkState::Failed
    };
    finish(state, &format!("{total} points: {}{}", summary.join(", "), accuracy.unwrap_or_default()))
}

/// The SLOs a point's aiperf export breaks, as `time_to_first_token p99 2100.0 ms > 2000 ms`;
/// failed requests break every SLO (a load the server cannot answer is not met).
fn slo_breaches(export: &serde_json::Value, slos: &[Slo]) -> Vec<String> {
    let mut out = Vec::new();
    let errors = export["error_request_count"]["avg"].as_f64().unwrap_or(0.0);
    if errors > 0.0 {
        out.push(format!("{errors} requests failed"));
    }
    for slo in slos {
        match export[slo.metric.as_str()][slo.stat.as_str()].as_f64() {
            Some(value) if value > slo.max_ms => {
                out.push(format!("{} {} {value:.1} ms > {} ms", slo.metric, slo.stat, slo.max_ms));
            }
            Some(_) => {}
            None => out.push(format!("{} {} was not measured", slo.metric, slo.stat)),
        }
    }
    out
}

/// What the engine says of itself, for the record: `GET /version` (vLLM, SGLang, TensorRT-LLM,
/// the mock) and `GET /v1/models`, each as JSON (or text), `null` when it does not answer.
fn engine_info(url: &str) -> EngineInfo {
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
        return EngineInfo::default();
    };
    let Ok(client) = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(5)).build() else {
        return EngineInfo::default();
    };
    let get = |path: &str| {
        runtime.block_on(async {
            let response = client.get(format!("{url}{path}")).send().await.ok()?;
            if !response.status().is_success() {
                return None;
            }
            let text = response.text().await.ok()?;
            Some(
                serde_json::from_str(&text)
                    .unwrap_or_else(|_| serde_json::Value::from(text.chars().take(1000).collect::<String>())),
            )
        })
    };
    EngineInfo { version: get("/version"), models: get("/v1/models") }
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or_default()
}

/// Every point gets a marker even when none ran, so no point disappears.
fn mark_unrun(run: &Run, state: PointState, reason: &str) -> Result<(), RunnerError> {
    let now = files::now();
    for point in &run.job.points {
        let dir = run.dir.new_point_dir(&point.id.to_string())?;
        dir.write_point(point)?;
        run.mark(&dir, point, state, reason, now)?;
    }
    Ok(())
}

/// A readiness check that did not pass: worth another poll, or failed for good.
#[derive(Debug)]
enum Check {
    Wait(String),
    Fail(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_left_in_squeue_formats() {
        assert_eq!(parse_time_left("29:45"), Some(Duration::from_secs(29 * 60 + 45)));
        assert_eq!(parse_time_left("1:00:00"), Some(Duration::from_secs(3600)));
        assert_eq!(
            parse_time_left("2-03:04:05"),
            Some(Duration::from_secs(2 * 86400 + 3 * 3600 + 4 * 60 + 5))
        );
        assert_eq!(parse_time_left("UNLIMITED"), None);
        assert_eq!(parse_time_left("INVALID"), None);
    }
}
