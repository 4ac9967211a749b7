//! The HTTP server of every role: the OpenAI endpoints, `/health`, `/metrics`, `/v1/models`,
//! and the internal hand-off endpoints of disaggregated workers; faults are injected here.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::StreamExt;
use tokio::sync::mpsc;

use crate::config::{Role, Settings};
use crate::engine::{Engine, Event, Phase};
use crate::faults::Dice;
use crate::latency::Histogram;
use crate::openai::{self, ApiError, Endpoint, Parsed, Renderer};
use crate::router::Workers;

/// Everything a handler needs.
#[derive(Debug)]
pub struct App {
    pub settings: Settings,
    /// `host:port` this server is reachable at.
    pub address: String,
    pub engine: Option<Engine>,
    pub workers: Option<Arc<Workers>>,
    started: Instant,
    requests: AtomicU64,
    token_log: Option<TokenLog>,
    /// `--prefix-cache-blocks`: the blocks this server holds (AGG and CTX, which prefill).
    prefix_cache: Option<std::sync::Mutex<crate::prefix::PrefixCache>>,
    /// Prompt tokens looked up in the prefix cache, and those found (vLLM's
    /// `prefix_cache_queries` and `prefix_cache_hits`).
    prefix_queries: AtomicU64,
    prefix_hits: AtomicU64,
    /// Streamed answers' time to first token and gaps between tokens, on this server's clock.
    ttft: Histogram,
    itl: Histogram,
    /// Output tokens sent to clients: a router's count of generated tokens (its workers'
    /// counts split each answer between the CTX and the GEN worker).
    answered_tokens: AtomicU64,
}

/// Lines for `--token-log`, written by a thread of their own so handlers never wait on a disk.
#[derive(Debug, Clone)]
struct TokenLog(std::sync::mpsc::Sender<String>);

impl TokenLog {
    fn open(path: &std::path::Path) -> io::Result<Self> {
        use std::io::Write;
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        let (sender, lines) = std::sync::mpsc::channel::<String>();
        std::thread::spawn(move || {
            let mut out = std::io::BufWriter::new(file);
            // Every line waiting is written, then flushed: a burst costs one write, and a line
            // is on disk microseconds after its request's first token, before the server can be
            // stopped (a flush on a pause lost the last lines of a point stopped at once).
            while let Ok(line) = lines.recv() {
                let _ = writeln!(out, "{line}");
                while let Ok(line) = lines.try_recv() {
                    let _ = writeln!(out, "{line}");
                }
                let _ = out.flush();
            }
        });
        Ok(TokenLog(sender))
    }
}

/// What `--token-log` says of a request's images: the size and SHA-256 of each decoded one, or
/// its URL.
fn image_log(images: &[openai::Image]) -> Vec<serde_json::Value> {
    use sha2::Digest as _;
    images
        .iter()
        .map(|image| match image {
            openai::Image::Data(bytes) => {
                let sha256: String = sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect();
                serde_json::json!({"bytes": bytes.len(), "sha256": sha256})
            }
            openai::Image::Url(url) => serde_json::json!({"url": url}),
        })
        .collect()
}

fn wall_ns() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos())
}

impl App {
    pub fn new(settings: Settings, address: String) -> Arc<Self> {
        let engine = (settings.role != Role::Router).then(|| Engine::start(settings.sim.clone()));
        let workers = (settings.role == Role::Router).then(|| Workers::start(&settings));
        let token_log = settings.token_log.as_deref().and_then(|path| match TokenLog::open(path) {
            Ok(log) => Some(log),
            Err(error) => {
                tracing::error!(%error, path = %path.display(), "cannot open the token log");
                None
            }
        });
        let prefix_cache = (settings.prefix_cache_blocks > 0 && settings.prefix_block_size > 0)
            .then(|| std::sync::Mutex::new(crate::prefix::PrefixCache::new(settings.prefix_cache_blocks)));
        Arc::new(Self {
            settings,
            address,
            engine,
            workers,
            started: Instant::now(),
            requests: AtomicU64::new(0),
            token_log,
            prefix_cache,
            prefix_queries: AtomicU64::new(0),
            prefix_hits: AtomicU64::new(0),
            ttft: Histogram::new(
                "sweep_mock_time_to_first_token_seconds",
                "From a streamed request's arrival to its first token leaving.",
            ),
            answered_tokens: AtomicU64::new(0),
            itl: Histogram::new(
                "sweep_mock_inter_token_latency_seconds",
                "Gaps between a stream's tokens, per token.",
            ),
        })
    }
}

pub fn router(app: Arc<App>) -> axum::Router {
    axum::Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/completions", post(completions))
        .route("/v1/models", get(models))
        .route("/version", get(version))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/internal/prefill", post(prefill))
        .route("/internal/decode", post(decode))
        .route("/internal/generate", post(generate))
        .with_state(app)
}

fn error_response(error: &ApiError) -> Response {
    let status = StatusCode::from_u16(error.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, [(header::CONTENT_TYPE, "application/json")], error.body()).into_response()
}

fn json(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// The faults every request meets on arrival: slow start, crash and injected errors. Returns the
/// request's number (from 1) or the error to answer instead.
fn admit(app: &App) -> Result<u64, ApiError> {
    let faults = &app.settings.faults;
    still_starting(app)?;
    let number = app.requests.fetch_add(1, Ordering::Relaxed) + 1;
    if let Some(limit) = faults.fault_crash_after {
        if number > limit {
            tracing::error!(limit, "crash fault: exiting on request {number}");
            std::process::exit(1);
        }
    }
    if Dice::new(faults.fault_seed, number, 1).chance(faults.fault_error_rate) {
        return Err(ApiError::server(faults.fault_error_status, "injected error (error-rate fault)"));
    }
    Ok(number)
}

/// The leading prompt tokens this server's prefix cache holds for a prompt of these block
/// names (0 without a cache); at least one token is always prefilled.
fn cached_tokens(app: &App, blocks: &[u64], prompt_tokens: u32) -> u32 {
    app.prefix_cache.as_ref().map_or(0, |cache| {
        let hits = cache.lock().unwrap_or_else(|e| e.into_inner()).admit(blocks);
        let hits =
            (hits * app.settings.prefix_block_size).min(prompt_tokens.saturating_sub(1) as usize) as u32;
        app.prefix_queries.fetch_add(u64::from(prompt_tokens), Ordering::Relaxed);
        app.prefix_hits.fetch_add(u64::from(hits), Ordering::Relaxed);
        hits
    })
}

/// The block names of a hand-off's words, when this worker has a prefix cache.
fn handoff_blocks(app: &App, words: Option<&str>) -> Vec<u64> {
    match (&app.prefix_cache, words) {
        (Some(_), Some(words)) => {
            crate::prefix::block_names(words.split_whitespace(), app.settings.prefix_block_size)
        }
        _ => Vec::new(),
    }
}

/// The slow-start fault: every endpoint answers 503 until its time is up.
fn still_starting(app: &App) -> Result<(), ApiError> {
    match app.settings.faults.fault_slow_start {
        Some(seconds) if app.started.elapsed().as_secs_f64() < seconds => {
            Err(ApiError::server(503, "the engine is still starting (slow-start fault)"))
        }
        _ => Ok(()),
    }
}

async fn chat(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    openai_request(app, Endpoint::Chat, &headers, body).await
}

async fn completions(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    openai_request(app, Endpoint::Completions, &headers, body).await
}

async fn openai_request(app: Arc<App>, endpoint: Endpoint, headers: &HeaderMap, body: Bytes) -> Response {
    let arrived_ns = wall_ns();
    let arrived = Instant::now();
    if matches!(app.settings.role, Role::Ctx | Role::Gen) {
        let message = format!("a {} worker serves the router, not clients", app.settings.role.as_str());
        return error_response(&ApiError {
            status: 404,
            kind: "invalid_request_error",
            code: None,
            param: None,
            message,
        });
    }
    let number = match admit(&app) {
        Ok(number) => number,
        Err(error) => return error_response(&error),
    };
    // A router hands the words on: the worker that prefills has the cache and its block size.
    let keep = match (&app.workers, &app.prefix_cache) {
        (Some(_), _) => openai::KeepWords::Words,
        (None, Some(_)) => openai::KeepWords::Blocks(app.settings.prefix_block_size),
        (None, None) => openai::KeepWords::Nothing,
    };
    let mut parsed = match openai::parse(
        endpoint,
        &body,
        &app.settings.model,
        app.settings.eos_after,
        app.settings.image_tokens,
        keep,
        app.settings.answers,
    ) {
        Ok(parsed) => parsed,
        Err(error) => return error_response(&error),
    };
    let faults = &app.settings.faults;
    if let Some(answer) = parsed.answer.as_mut() {
        if Dice::new(faults.fault_seed, number, 4).chance(faults.fault_wrong_answer_rate) {
            *answer = answer.parse::<i64>().map_or_else(|_| format!("not {answer}"), |v| (v + 1).to_string());
        }
    }
    // Known here for a server of its own; a router learns it from its worker (`Event::Cached`).
    let mut cached = None;
    let events = match (&app.engine, &app.workers) {
        (Some(engine), _) => {
            let hits = cached_tokens(&app, &parsed.blocks, parsed.prompt_tokens);
            cached = Some(hits);
            engine.submit_cached(parsed.prompt_tokens, hits, parsed.output_tokens, Phase::Full)
        }
        (None, Some(workers)) => {
            workers.clone().dispatch(parsed.prompt_tokens, parsed.output_tokens, parsed.words.take())
        }
        (None, None) => unreachable!("every role has an engine or workers"),
    };
    let plan = FaultPlan::for_request(&app, number);
    let renderer = Renderer::new(endpoint, number, &parsed.model);
    if parsed.stream {
        let log = app.token_log.clone().map(|log| {
            let id = headers.get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
            LogEntry { log, id, arrived_ns, images: image_log(&parsed.images), cached }
        });
        stream_response(parsed, events, renderer, plan, log, Clock { app: app.clone(), arrived, last: None })
    } else {
        whole_response(&app, parsed, events, renderer, plan).await
    }
}

/// The stream faults that apply to one request, decided when it arrives.
#[derive(Debug, Clone, Copy)]
struct FaultPlan {
    hang_after: Option<u32>,
    reset_after: Option<u32>,
    malformed_rate: f64,
    seed: u64,
    number: u64,
}

impl FaultPlan {
    fn for_request(app: &App, number: u64) -> Self {
        let f = &app.settings.faults;
        let hang_after = f
            .fault_hang_after_tokens
            .filter(|_| Dice::new(f.fault_seed, number, 2).chance(f.fault_hang_probability));
        let reset_after = f
            .fault_reset_after_tokens
            .filter(|_| Dice::new(f.fault_seed, number, 3).chance(f.fault_reset_probability));
        Self { hang_after, reset_after, malformed_rate: f.fault_malformed_rate, seed: f.fault_seed, number }
    }

    /// Tokens that may still be sent before a hang or a reset.
    fn allowance(&self, sent: u32) -> Option<u32> {
        [self.hang_after, self.reset_after]
            .into_iter()
            .flatten()
            .min()
            .map(|limit| limit.saturating_sub(sent))
    }
}

fn finish_reason(parsed: &Parsed, generated: u32) -> &'static str {
    if generated >= parsed.output_tokens && parsed.hit_max_tokens {
        "length"
    } else {
        "stop"
    }
}

async fn whole_response(
    app: &App,
    parsed: Parsed,
    mut events: mpsc::UnboundedReceiver<Event>,
    renderer: Renderer,
    plan: FaultPlan,
) -> Response {
    let mut generated = 0u32;
    loop {
        match events.recv().await {
            Some(Event::Tokens(n)) => generated += n,
            Some(Event::Cached(_)) => {}
            Some(Event::Done) => break,
            Some(Event::Rejected) => return error_response(&kv_rejection()),
            Some(Event::Failed(message)) => {
                return error_response(&ApiError::server(502, message.to_string()))
            }
            None => return error_response(&ApiError::server(500, "the engine stopped")),
        }
    }
    if plan.hang_after.is_some_and(|h| h < generated) {
        std::future::pending::<()>().await;
    }
    if plan.reset_after.is_some_and(|r| r < generated) {
        return abort_body();
    }
    app.answered_tokens.fetch_add(u64::from(generated), Ordering::Relaxed);
    let text = openai::token_text(parsed.answer.as_deref(), 0, generated);
    json(
        StatusCode::OK,
        renderer.complete(&text, finish_reason(&parsed, generated), parsed.prompt_tokens, generated),
    )
}

fn kv_rejection() -> ApiError {
    ApiError::invalid("the prompt and max_tokens exceed the KV-cache capacity", None)
}

/// A 200 whose body breaks off at once: the client sees the connection drop.
fn abort_body() -> Response {
    let stream = futures_util::stream::once(async {
        Err::<Bytes, io::Error>(io::Error::new(io::ErrorKind::ConnectionReset, "reset fault"))
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// `--token-log`: what is noted of a streamed request when its first token goes out.
struct LogEntry {
    log: TokenLog,
    /// Its `X-Request-ID`.
    id: String,
    arrived_ns: u128,
    images: Vec<serde_json::Value>,
    /// `None` until a router's worker says (it then always does, before the first token).
    cached: Option<u32>,
}

/// Where a stream's tokens are timed on the server's clock.
struct Clock {
    app: Arc<App>,
    arrived: Instant,
    /// When the previous token went out.
    last: Option<Instant>,
}

impl Clock {
    fn tokens(&mut self, n: u32) {
        self.app.answered_tokens.fetch_add(u64::from(n), Ordering::Relaxed);
        let now = Instant::now();
        match self.last {
            None => self.app.ttft.observe(now - self.arrived, 1),
            // A chunk of n tokens after a gap: n gaps of a share each, as per-token ITL counts.
            Some(last) if n > 0 => self.app.itl.observe((now - last) / n, u64::from(n)),
            Some(_) => {}
        }
        // The first chunk's other tokens came with the first: gaps of zero.
        if self.last.is_none() && n > 1 {
            self.app.itl.observe(std::time::Duration::ZERO, u64::from(n - 1));
        }
        self.last = Some(now);
    }
}

struct Streaming {
    clock: Clock,
    parsed: Parsed,
    events: mpsc::UnboundedReceiver<Event>,
    renderer: Renderer,
    plan: FaultPlan,
    sent: u32,
    chunk_number: u64,
    tail: Vec<String>,
    ended: bool,
    /// `--token-log`: where to note the first token, the request's id and its arrival.
    log: Option<LogEntry>,
}

impl Streaming {
    /// The next piece of the body, or `None` at its end.
    async fn next(&mut self) -> Option<Result<Bytes, io::Error>> {
        if let Some(piece) = self.tail.pop() {
            return Some(Ok(Bytes::from(piece)));
        }
        if self.ended {
            return None;
        }
        let event = loop {
            match self.events.recv().await {
                // Before the first token: what the worker's prefix cache held, for the log.
                Some(Event::Cached(n)) => {
                    if let Some(log) = &mut self.log {
                        log.cached = Some(n);
                    }
                }
                other => break other,
            }
        };
        let piece = match event {
            Some(Event::Tokens(n)) => {
                let allowed = self.plan.allowance(self.sent).map_or(n, |a| a.min(n));
                if allowed == 0 {
                    if self.plan.hang_after.is_some_and(|h| self.sent >= h) {
                        // Hang fault: keep the connection open and send nothing, ever.
                        std::future::pending::<()>().await;
                    }
                    self.ended = true;
                    // Reset fault: let the tokens before it reach the client first (an error in
                    // the same write would abort the connection with them still unsent).
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    return Some(Err(io::Error::new(io::ErrorKind::ConnectionReset, "reset fault")));
                }
                let text = openai::token_text(self.parsed.answer.as_deref(), self.sent, allowed);
                let first = self.sent == 0;
                self.clock.tokens(allowed);
                if first {
                    if let Some(entry) = self.log.take() {
                        let mut line = serde_json::json!({
                            "x_request_id": entry.id, "received_ns": entry.arrived_ns,
                            "first_token_ns": wall_ns(), "cached_tokens": entry.cached,
                        });
                        if !entry.images.is_empty() {
                            line["images"] = entry.images.into();
                        }
                        let _ = entry.log.0.send(line.to_string());
                    }
                }
                self.sent += allowed;
                self.chunk_number += 1;
                let dice = Dice::new(self.plan.seed, self.plan.number, 100 + self.chunk_number);
                if dice.chance(self.plan.malformed_rate) {
                    // Malformed-SSE fault: a JSON object cut short.
                    "data: {\"id\":\"malformed\",\"choices\":[{\"delta\":{\"content\":\n\n".to_owned()
                } else {
                    self.renderer.chunk(&text, first)
                }
            }
            Some(Event::Done) => {
                self.ended = true;
                // The tail is popped from the back: usage, then [DONE].
                self.tail.push(openai::DONE.to_owned());
                if self.parsed.include_usage {
                    self.tail.push(self.renderer.usage(self.parsed.prompt_tokens, self.sent));
                }
                self.renderer.finish(finish_reason(&self.parsed, self.sent))
            }
            Some(Event::Cached(_)) => unreachable!("the loop above takes every cache report"),
            Some(Event::Rejected) | Some(Event::Failed(_)) | None => {
                let error = match event {
                    Some(Event::Rejected) => kv_rejection(),
                    Some(Event::Failed(message)) => ApiError::server(502, message.to_string()),
                    _ => ApiError::server(500, "the engine stopped"),
                };
                self.ended = true;
                self.tail.push(openai::DONE.to_owned());
                format!("data: {}\n\n", error.body())
            }
        };
        Some(Ok(Bytes::from(piece)))
    }
}

/// Joins consecutive pieces into one; an error stays in its place, after what came before it.
fn coalesce(pieces: Vec<Result<Bytes, io::Error>>) -> Vec<Result<Bytes, io::Error>> {
    let mut out = Vec::new();
    let mut joined = bytes::BytesMut::new();
    for piece in pieces {
        match piece {
            Ok(bytes) => joined.extend_from_slice(&bytes),
            Err(error) => {
                if !joined.is_empty() {
                    out.push(Ok(joined.split().freeze()));
                }
                out.push(Err(error));
            }
        }
    }
    if !joined.is_empty() {
        out.push(Ok(joined.freeze()));
    }
    out
}

fn stream_response(
    parsed: Parsed,
    events: mpsc::UnboundedReceiver<Event>,
    renderer: Renderer,
    plan: FaultPlan,
    log: Option<LogEntry>,
    clock: Clock,
) -> Response {
    let state = Streaming {
        clock,
        parsed,
        events,
        renderer,
        plan,
        sent: 0,
        chunk_number: 0,
        tail: Vec::new(),
        ended: false,
        log,
    };
    // Events already waiting go out in one write (at most 64): no token is held back, but a
    // stream that fell behind catches up in few syscalls instead of one per token.
    let body = futures_util::stream::unfold(state, |mut state| async move {
        let item = state.next().await?;
        Some((item, state))
    })
    .ready_chunks(64)
    .flat_map(|pieces| futures_util::stream::iter(coalesce(pieces)));
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(body))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// `GET /version`, as vLLM and SGLang answer it: what a sweep records as the engine's version.
async fn version() -> Response {
    json(
        StatusCode::OK,
        serde_json::json!({"version": concat!("sweep-mock-engine ", env!("CARGO_PKG_VERSION"))}).to_string(),
    )
}

async fn models(State(app): State<Arc<App>>) -> Response {
    if let Err(error) = still_starting(&app) {
        return error_response(&error);
    }
    let created =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let body = serde_json::json!({
        "object": "list",
        "data": [{"id": app.settings.model, "object": "model", "created": created, "owned_by": "sweep-mock"}],
    });
    json(StatusCode::OK, body.to_string())
}

/// 200 with the instances behind this endpoint and their roles, as Dynamo's frontend lists its
/// workers; a router answers 503 until it has at least one CTX and one GEN worker.
async fn health(State(app): State<Arc<App>>) -> Response {
    if let Err(error) = still_starting(&app) {
        return error_response(&error);
    }
    let (ready, instances) = match &app.workers {
        Some(workers) => workers.instances(),
        None => (true, vec![serde_json::json!({"role": app.settings.role.as_str(), "address": app.address})]),
    };
    let body = serde_json::json!({
        "status": if ready { "healthy" } else { "waiting for workers" },
        "role": app.settings.role.as_str(),
        "model": app.settings.model,
        "instances": instances,
    });
    json(if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }, body.to_string())
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    if app.settings.faults.fault_metrics_garbage {
        let page = "<html><body>502 Bad Gateway</body></html>\n";
        return (StatusCode::OK, [(header::CONTENT_TYPE, "text/html")], page).into_response();
    }
    let mut text = String::new();
    let role = app.settings.role.as_str();
    let mut metric = |name: &str, kind: &str, help: &str, value: f64| {
        text.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name}{{role=\"{role}\"}} {value}\n"
        ));
    };
    metric(
        "sweep_mock_requests_total",
        "counter",
        "Requests received.",
        app.requests.load(Ordering::Relaxed) as f64,
    );
    if let Some(engine) = &app.engine {
        let s = &engine.stats;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed) as f64;
        let kv_usage = load(&s.kv_used_tokens) / load(&s.kv_capacity_tokens).max(1.0);
        for (name, kind, help, value) in [
            ("sweep_mock_num_requests_running", "gauge", "Sequences in the running batch.", load(&s.running)),
            (
                "sweep_mock_num_requests_waiting",
                "gauge",
                "Requests waiting to be scheduled.",
                load(&s.waiting),
            ),
            ("sweep_mock_kv_cache_usage_ratio", "gauge", "Share of KV-cache tokens reserved.", kv_usage),
            (
                "sweep_mock_prompt_tokens_total",
                "counter",
                "Prompt tokens admitted.",
                load(&s.prompt_tokens_total),
            ),
            (
                "sweep_mock_generation_tokens_total",
                "counter",
                "Output tokens generated.",
                load(&s.generated_tokens_total),
            ),
            (
                "sweep_mock_requests_finished_total",
                "counter",
                "Requests finished.",
                load(&s.requests_finished_total),
            ),
            ("sweep_mock_steps_total", "counter", "Engine steps run.", load(&s.steps_total)),
            // The simulated engine refuses what does not fit instead of preempting.
            ("sweep_mock_preemptions_total", "counter", "Running requests preempted (always 0).", 0.0),
        ] {
            metric(name, kind, help, value);
        }
        // Speculative decoding (`--mtp`), as vLLM exports it: only when the engine drafts.
        if app.settings.sim.mtp > 0 {
            for (name, help, value) in [
                (
                    "sweep_mock_spec_decode_num_drafts_total",
                    "Decode steps that drafted.",
                    load(&s.spec_drafts_total),
                ),
                (
                    "sweep_mock_spec_decode_num_draft_tokens_total",
                    "Draft tokens proposed.",
                    load(&s.spec_draft_tokens_total),
                ),
                (
                    "sweep_mock_spec_decode_num_accepted_tokens_total",
                    "Draft tokens accepted.",
                    load(&s.spec_accepted_tokens_total),
                ),
            ] {
                metric(name, "counter", help, value);
            }
        }
    }
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed) as f64;
    let mut more = Vec::new();
    if app.prefix_cache.is_some() {
        more.push((
            "sweep_mock_prefix_cache_queries_total",
            "Prompt tokens looked up in the prefix cache.",
            load(&app.prefix_queries),
        ));
        more.push((
            "sweep_mock_prefix_cache_hits_total",
            "Prompt tokens found in the prefix cache.",
            load(&app.prefix_hits),
        ));
    }
    if app.engine.is_none() {
        more.push((
            "sweep_mock_generation_tokens_total",
            "Output tokens sent to clients.",
            load(&app.answered_tokens),
        ));
    }
    for (name, help, value) in more {
        metric(name, "counter", help, value);
    }
    if let Some(workers) = &app.workers {
        text.push_str(&workers.metrics());
    }
    // Only the servers clients talk to stream answers (a CTX or GEN worker answers its router).
    if matches!(app.settings.role, Role::Agg | Role::Router) {
        let labels = format!("role=\"{role}\"");
        app.ttft.render(&labels, &mut text);
        app.itl.render(&labels, &mut text);
    }
    (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

#[derive(serde::Deserialize)]
struct Handoff {
    prompt_tokens: u32,
    #[serde(default)]
    output_tokens: u32,
    /// The prompt's words, for this worker's prefix cache (the router sends them).
    #[serde(default)]
    words: Option<String>,
}

/// A hand-off request from the router, after the arrival faults.
fn handoff(app: &App, body: &[u8]) -> Result<Handoff, ApiError> {
    admit(app)?;
    serde_json::from_slice(body).map_err(|e| ApiError::invalid(format!("bad hand-off: {e}"), None))
}

/// CTX: prefill a prompt and answer once its first token exists.
async fn prefill(State(app): State<Arc<App>>, body: Bytes) -> Response {
    let (Role::Ctx, Some(engine)) = (app.settings.role, &app.engine) else {
        return error_response(&ApiError::invalid("only a ctx worker prefills for the router", None));
    };
    let handoff = match handoff(&app, &body) {
        Ok(h) => h,
        Err(error) => return error_response(&error),
    };
    let blocks = handoff_blocks(&app, handoff.words.as_deref());
    let cached = cached_tokens(&app, &blocks, handoff.prompt_tokens);
    let mut events = engine.submit_cached(handoff.prompt_tokens, cached, 1, Phase::PrefillOnly);
    loop {
        match events.recv().await {
            Some(Event::Tokens(_) | Event::Cached(_)) => {}
            Some(Event::Done) => {
                let answer =
                    serde_json::json!({"prompt_tokens": handoff.prompt_tokens, "cached_tokens": cached});
                return json(StatusCode::OK, answer.to_string());
            }
            Some(Event::Rejected) => return error_response(&kv_rejection()),
            Some(Event::Failed(m)) => return error_response(&ApiError::server(500, m.to_string())),
            None => return error_response(&ApiError::server(500, "the engine stopped")),
        }
    }
}

/// GEN: take over a prefilled request after the KV transfer and stream its token counts.
async fn decode(State(app): State<Arc<App>>, body: Bytes) -> Response {
    let (Role::Gen, Some(engine)) = (app.settings.role, app.engine.clone()) else {
        return error_response(&ApiError::invalid("only a gen worker decodes for the router", None));
    };
    let handoff = match handoff(&app, &body) {
        Ok(h) => h,
        Err(error) => return error_response(&error),
    };
    tokio::time::sleep(app.settings.sim.kv_transfer_time(u64::from(handoff.prompt_tokens))).await;
    token_counts(engine.submit(handoff.prompt_tokens, handoff.output_tokens, Phase::DecodeOnly), None)
}

/// AGG behind a router: run a whole request (prefill and decode) and stream its token counts.
async fn generate(State(app): State<Arc<App>>, body: Bytes) -> Response {
    let (Role::Agg, Some(engine)) = (app.settings.role, app.engine.clone()) else {
        return error_response(&ApiError::invalid(
            "only an agg worker generates whole requests for the router",
            None,
        ));
    };
    let handoff = match handoff(&app, &body) {
        Ok(h) => h,
        Err(error) => return error_response(&error),
    };
    let blocks = handoff_blocks(&app, handoff.words.as_deref());
    let cached = cached_tokens(&app, &blocks, handoff.prompt_tokens);
    let events = engine.submit_cached(handoff.prompt_tokens, cached, handoff.output_tokens, Phase::Full);
    token_counts(events, Some(cached))
}

/// A request's events for the router, one decimal token count per line; a line `error …`
/// reports a failure (which the router then reports as its worker's). A worker that prefilled
/// starts with `cached N`: the prompt tokens its prefix cache held.
fn token_counts(events: mpsc::UnboundedReceiver<Event>, cached: Option<u32>) -> Response {
    let first = cached.map(|n| Ok::<Bytes, io::Error>(Bytes::from(format!("cached {n}\n"))));
    let lines = futures_util::stream::unfold(events, |mut events| async move {
        let line = match events.recv().await? {
            Event::Tokens(n) => format!("{n}\n"),
            Event::Cached(n) => format!("cached {n}\n"),
            Event::Done => return None,
            Event::Rejected => "error the request exceeds the worker's KV cache\n".to_owned(),
            Event::Failed(m) => format!("error {m}\n"),
        };
        Some((Ok::<Bytes, io::Error>(Bytes::from(line)), events))
    });
    let lines = futures_util::stream::iter(first).chain(lines).boxed();
    Response::builder()
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from_stream(lines))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}
