//! `sweep-load`: the load generator, whose callers are `sweep-runner profile` (on its own) and
//! the benchmark step of a job. Closed loop (concurrency), open loop (a seeded absolute schedule of
//! constant, Poisson or gamma arrivals, optionally capped), and trace replay; a warm-up phase
//! left out of the results; a deadline and signals that cancel what is in flight and record it.
//!
//! Requests run on a tokio runtime. Every finished request goes, as a [`Record`], to one
//! collector thread that appends it to `profile_export.jsonl` (flushed at least every second,
//! so a `kill -9` loses at most the last second) and adds it to the phase's [`Aggregate`].
//! Open-loop arrivals are timed by a dedicated thread with the OS's sleep, not tokio's
//! millisecond timer, and that thread writes each request itself, so that sends leave within a
//! fraction of a millisecond of their slot however busy the runtime is with answers.

pub mod answer;
pub mod client;
pub mod console;
mod error;
pub mod event;
pub mod http;
pub mod images;
pub mod progress;
pub mod prompts;
pub mod reader;
pub mod record;
pub mod rng;
pub mod source;
pub mod stats;
pub mod synth;
pub mod tokens;

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::{watch, Semaphore};

pub use error::LoadError;
pub use record::{Phase, Record, RequestError, TokenSource};
pub use stats::{Aggregate, Slos};

use prompts::TraceEntry;
use rng::Rng;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Endpoint {
    Chat,
    Completions,
}

impl Endpoint {
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::Chat => "/v1/chat/completions",
            Endpoint::Completions => "/v1/completions",
        }
    }
}

/// When requests are sent.
#[derive(Debug, Clone, PartialEq)]
pub enum Arrival {
    /// `concurrency` requests in flight; each finished one is replaced at once.
    Closed,
    /// `rate` requests per second, evenly spaced.
    Constant { rate: f64 },
    /// `rate` requests per second with exponential gaps.
    Poisson { rate: f64 },
    /// `rate` requests per second with gamma gaps of `shape` (< 1 bursty, > 1 regular).
    Gamma { rate: f64, shape: f64 },
    /// At the trace's timestamps, divided by `speedup`.
    Trace { entries: Arc<Vec<TraceEntry>>, block_size: u32, speedup: f64 },
}

impl Arrival {
    pub fn describe(&self) -> String {
        match self {
            Arrival::Closed => "closed loop".into(),
            Arrival::Constant { rate } => format!("constant {rate} req/s"),
            Arrival::Poisson { rate } => format!("poisson {rate} req/s"),
            Arrival::Gamma { rate, shape } => format!("gamma {rate} req/s, shape {shape}"),
            Arrival::Trace { entries, speedup, .. } => {
                format!("trace of {} requests at ×{speedup}", entries.len())
            }
        }
    }
}

/// Everything a load needs, resolved before anything is sent.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The server's base URL, e.g. `http://127.0.0.1:8000`.
    pub url: String,
    pub endpoint: Endpoint,
    pub model: String,
    pub stream: bool,
    pub arrival: Arrival,
    /// Closed loop: requests in flight. Open loop: the most in flight (0: no cap).
    pub concurrency: u32,
    /// Measured requests (a trace: at most this many of its entries).
    pub requests: Option<u64>,
    /// Stop sending measured requests after this long.
    pub duration: Option<Duration>,
    /// Requests sent first, in a closed loop at `concurrency`, and left out of the results.
    pub warmup: u64,
    pub isl: u32,
    pub isl_stddev: f64,
    pub osl: u32,
    pub osl_stddev: f64,
    pub seed: u64,
    pub request_timeout: Duration,
    /// Merged into every request body (after the fields this tool sets).
    pub extra_body: serde_json::Map<String, serde_json::Value>,
    pub slos: Slos,
    /// Runtime worker threads, each running one reading task (1: a single-threaded runtime).
    pub threads: usize,
    /// Counts tokens (and fits prompts to ISL) instead of the server's `usage`.
    pub tokenizer: Option<Arc<tokens::TokenCounter>>,
    /// The measured requests' prompts, from a file; synthetic ones when unset.
    pub dataset: Option<Arc<Dataset>>,
    /// Synthetic prompts: the share of each that is one of a few shared prefixes.
    pub prefix: Option<source::SharedPrefix>,
    /// Synthetic prompts: images sent with each.
    pub images: Option<images::Synthetic>,
    /// Set when the measured requests start (the warm-up has ended), for whoever watches the
    /// servers meanwhile.
    pub measured_start: MeasuredStart,
}

/// The moment a run's measured requests start (the warm-up has ended), shared between clones
/// with whoever watches the servers meanwhile. A watcher ([`MeasuredStart::watch`]) gets to
/// take its own reading first: the run waits for its [`MeasuredStart::acknowledge`] (at most
/// [`MeasuredStart::WAIT`]) before the first measured request, so the reading sees every
/// warm-up request and none of the measured ones.
#[derive(Debug, Clone, Default)]
pub struct MeasuredStart(Arc<Gate>);

#[derive(Debug, Default)]
struct Gate {
    /// Unix ns when the run reached its measured phase; 0 before.
    at_ns: AtomicU64,
    watched: AtomicBool,
    acknowledged: Mutex<bool>,
    wake: std::sync::Condvar,
}

impl MeasuredStart {
    /// The longest a run waits for its watcher.
    pub const WAIT: Duration = Duration::from_secs(10);

    /// Says a watcher will acknowledge the start.
    pub fn watch(&self) {
        self.0.watched.store(true, Ordering::SeqCst);
    }

    /// When the run reached its measured phase (Unix ns).
    pub fn get(&self) -> Option<u64> {
        Some(self.0.at_ns.load(Ordering::SeqCst)).filter(|&ns| ns > 0)
    }

    /// The watcher has taken its reading (or gives up watching): the run may go on.
    pub fn acknowledge(&self) {
        *self.0.acknowledged.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.0.wake.notify_all();
    }

    /// Marks the start and waits for a watcher, if there is one.
    fn reach(&self, ns: u64) {
        self.0.at_ns.store(ns.max(1), Ordering::SeqCst);
        if !self.0.watched.load(Ordering::SeqCst) {
            return;
        }
        let done = self.0.acknowledged.lock().unwrap_or_else(|e| e.into_inner());
        let _ = self.0.wake.wait_timeout_while(done, Self::WAIT, |done| !*done);
    }
}

/// A dataset's requests or sessions, cycled through in file order by the measured requests.
/// Warm-up requests keep synthetic prompts, so that they never warm a cache for the measured
/// ones.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    pub parsed: sweep_spec::dataset::Dataset,
    /// Cut or pad text prompts to the ISL (tokenizer tokens with a tokenizer, else words).
    pub fit_to_isl: bool,
    /// Words per `hash_ids` block of a mooncake line (the spec's `trace_block_size`).
    pub block_size: u32,
    /// Each turn's images as URLs, read once: (session, turn) → URLs.
    pub images: HashMap<(usize, usize), Vec<Arc<str>>>,
    /// What was read, for the point's record: `{path, format, bytes, sha256, sessions, turns,
    /// images}`.
    pub info: serde_json::Value,
}

impl Dataset {
    /// Reads and parses a dataset, and reads its image files; the error names the file and the
    /// line.
    pub fn read(
        path: &std::path::Path,
        format: sweep_spec::DatasetFormat,
        fit_to_isl: bool,
        block_size: u32,
    ) -> Result<Dataset, LoadError> {
        use sha2::Digest as _;
        use sweep_spec::dataset as spec;
        let bytes =
            std::fs::read(path).map_err(|source| LoadError::DatasetRead { path: path.to_owned(), source })?;
        let text = std::str::from_utf8(&bytes)
            .map_err(|source| LoadError::DatasetText { path: path.to_owned(), source })?;
        let parsed = spec::parse(text, format)
            .map_err(|source| LoadError::DatasetLine { path: path.to_owned(), source })?;
        let mut images = HashMap::new();
        let mut image_bytes = 0usize;
        let name = path.display().to_string();
        for (s, session) in parsed.sessions.iter().enumerate() {
            for (t, turn) in session.turns.iter().enumerate().filter(|(_, t)| !t.images.is_empty()) {
                let mut urls = Vec::with_capacity(turn.images.len());
                for image in &turn.images {
                    if spec::is_url(image) {
                        urls.push(Arc::from(image.as_str()));
                        continue;
                    }
                    let file = spec::image_path(&name, image);
                    let bad = |problem: String| LoadError::Image {
                        path: path.to_owned(),
                        line: turn.line,
                        image: image.clone(),
                        problem,
                    };
                    let mime = spec::image_mime(image)
                        .ok_or_else(|| bad("is not a .png, .jpg, .gif or .webp file".into()))?;
                    let data = std::fs::read(&file)
                        .map_err(|e| bad(format!("cannot be read ({}: {e})", file.display())))?;
                    image_bytes += data.len();
                    urls.push(Arc::from(images::data_url(mime, &data)));
                }
                images.insert((s, t), urls);
            }
        }
        let sha256: String = sha2::Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
        let info = serde_json::json!({
            "path": name, "format": format, "bytes": bytes.len(), "sha256": sha256,
            "sessions": parsed.sessions.len(), "turns": parsed.turns(),
            "images": parsed.images().count(), "image_bytes": image_bytes,
        });
        Ok(Dataset { parsed, fit_to_isl, block_size: block_size.max(1), images, info })
    }
}

/// Why a load stopped early: the state it leaves points in (`timeout` for a deadline,
/// `cancelled` for a signal) and the reason.
#[derive(Debug, Clone, Default)]
pub struct Cancel {
    reason: Arc<Mutex<Option<(&'static str, String)>>>,
    flag: Arc<AtomicBool>,
    sender: Arc<Mutex<Option<watch::Sender<bool>>>>,
}

impl Cancel {
    pub fn new() -> Self {
        Cancel::default()
    }

    /// Stops the load: nothing new is sent; what is in flight is recorded as cancelled. The
    /// first call wins; `state` is what the unfinished points become.
    pub fn cancel(&self, state: &'static str, reason: impl Into<String>) {
        let mut slot = self.reason.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            *slot = Some((state, reason.into()));
        }
        self.flag.store(true, Ordering::SeqCst);
        if let Some(sender) = &*self.sender.lock().unwrap_or_else(|e| e.into_inner()) {
            let _ = sender.send(true);
        }
    }

    pub fn reason(&self) -> Option<String> {
        self.reason.lock().unwrap_or_else(|e| e.into_inner()).as_ref().map(|(_, r)| r.clone())
    }

    /// The state unfinished points take (`timeout` or `cancelled`), once cancelled.
    pub fn state(&self) -> Option<&'static str> {
        self.reason.lock().unwrap_or_else(|e| e.into_inner()).as_ref().map(|(s, _)| *s)
    }

    pub fn is_cancelled(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    fn subscribe(&self) -> watch::Receiver<bool> {
        let mut slot = self.sender.lock().unwrap_or_else(|e| e.into_inner());
        let sender = slot.get_or_insert_with(|| watch::channel(false).0);
        if self.is_cancelled() {
            let _ = sender.send(true);
        }
        sender.subscribe()
    }
}

/// Wall-clock nanoseconds for monotonic instants, from one anchor taken at the start.
#[derive(Debug, Clone, Copy)]
struct Clock {
    instant: Instant,
    wall_ns: u64,
}

impl Clock {
    fn now() -> Self {
        let wall_ns = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        Clock { instant: Instant::now(), wall_ns }
    }

    fn wall(&self, t: Instant) -> u64 {
        self.wall_ns + t.saturating_duration_since(self.instant).as_nanos() as u64
    }
}

/// What one run (warm-up and profiling) produced.
#[derive(Debug)]
pub struct Outcome {
    pub profiling: Aggregate,
    pub warmup: Aggregate,
    /// Profiling requests sent.
    pub sent: u64,
    pub start_ns: u64,
    pub end_ns: u64,
    /// Set when the load was cancelled (deadline, signal), with the reason.
    pub cancelled: Option<String>,
    /// The per-request file, when one was written.
    pub records: Option<PathBuf>,
    pub client_cpu_s: (f64, f64),
}

struct Shared {
    /// Connections to the server, kept alive.
    pool: http::Pool,
    /// The endpoint's path.
    path: String,
    settings: Settings,
    /// The measured requests' source, and the warm-up's (synthetic prompts of their own).
    source: Arc<dyn source::Source>,
    warmup: source::Synthetic,
    clock: Clock,
    sink: Arc<Sink>,
    cancel: Cancel,
    /// Prefix of the `X-Request-ID` of every request (the records' `x_request_id`).
    worker: String,
    /// The tasks that read the answers, one per runtime thread.
    readers: reader::Readers,
}

/// Why a request stopped waiting for its answer.
enum Stop {
    Timeout,
    Cancelled,
}

/// A request built before it is sent: its bytes, its prompt length and where it belongs.
struct Prepared {
    request: client::Request,
    prompt_tokens: u64,
    turn: Turn,
}

/// Which conversation a request is a turn of.
#[derive(Debug, Clone)]
struct Turn {
    conversation: u64,
    turn: u32,
    session_id: Option<Arc<str>>,
}

/// The source of measured requests `settings` ask for; an open loop cannot run sessions.
fn source_for(settings: &Settings) -> Result<Arc<dyn source::Source>, LoadError> {
    let counter = source::Counter { tokenizer: settings.tokenizer.clone(), seed: settings.seed };
    let source: Arc<dyn source::Source> = match (&settings.arrival, &settings.dataset) {
        (Arrival::Trace { entries, block_size, .. }, _) => {
            Arc::new(source::Trace { entries: entries.clone(), block_size: *block_size, counter })
        }
        (_, Some(dataset)) => {
            Arc::new(source::Dataset { data: dataset.clone(), isl: settings.isl, osl: settings.osl, counter })
        }
        _ => Arc::new(synthetic(settings, 0)),
    };
    if source.multi_turn() && settings.arrival != Arrival::Closed {
        return Err(LoadError::Setting {
            setting: "arrival",
            problem: "a dataset of multi-turn sessions runs in a closed loop (each turn waits for the \
                      answer before it); give a concurrency instead of a request rate"
                .into(),
        });
    }
    Ok(source)
}

fn synthetic(settings: &Settings, stream_base: u64) -> source::Synthetic {
    source::Synthetic {
        isl: settings.isl,
        isl_stddev: settings.isl_stddev,
        osl: settings.osl,
        osl_stddev: settings.osl_stddev,
        counter: source::Counter { tokenizer: settings.tokenizer.clone(), seed: settings.seed },
        prefix: settings.prefix,
        images: settings.images,
        stream_base,
    }
}

impl Shared {
    /// Turn `turn` of conversation `n` of `phase`'s source, given its answers so far.
    fn ask(&self, phase: Phase, n: u64, turn: u32, answers: &[String]) -> Option<source::Ask> {
        match phase {
            Phase::Warmup => source::Source::turn(&self.warmup, n, turn, answers),
            Phase::Profiling => self.source.turn(n, turn, answers),
        }
    }

    /// Request `index`, turn `turn` of conversation `n`, as bytes.
    fn prepare(&self, index: u64, phase: Phase, ask: source::Ask, n: u64, turn: u32) -> Prepared {
        let s = &self.settings;
        let source::Ask { prompt, prompt_tokens, osl, images, extra, .. } = ask;
        let mut body = serde_json::Map::new();
        body.insert("model".into(), s.model.clone().into());
        match s.endpoint {
            Endpoint::Chat => {
                body.insert("messages".into(), prompt.into_messages(&images));
            }
            Endpoint::Completions => {
                let text = match prompt {
                    source::Prompt::Text(text) => text,
                    other => other.text(),
                };
                body.insert("prompt".into(), text.into());
            }
        }
        // OSL is fixed the way sweeps fix it: max = min = OSL and the end-of-sequence ignored.
        body.insert("max_tokens".into(), osl.into());
        body.insert("min_tokens".into(), osl.into());
        body.insert("ignore_eos".into(), true.into());
        body.insert("stream".into(), s.stream.into());
        if s.stream {
            body.insert("stream_options".into(), serde_json::json!({"include_usage": true}));
        }
        for (key, value) in &s.extra_body {
            body.insert(key.clone(), value.clone());
        }
        // The request's own fields (a dataset line's `extra`) win, as aiperf merges them.
        body.extend(extra.into_iter().flatten());
        let body = serde_json::Value::Object(body).to_string();
        let id = record::request_id(&self.worker, phase, index);
        let request = client::Request::new(&self.path, self.pool.host(), &id, body.as_bytes(), s.stream);
        let session_id = match phase {
            Phase::Profiling => self.source.session_id(n),
            Phase::Warmup => None,
        };
        Prepared { request, prompt_tokens, turn: Turn { conversation: n, turn, session_id } }
    }

    /// Sends `prepared` (unless it was `written` already, at `start`), waits for its answer and
    /// records it. Returns the answer's text when it succeeded (empty unless the source keeps
    /// answers for the next turn), `None` when it failed.
    async fn request(
        self: &Arc<Self>,
        index: u64,
        phase: Phase,
        credit: Instant,
        prepared: Prepared,
        written: Option<(client::Written, Instant)>,
    ) -> Option<String> {
        let Prepared { request, prompt_tokens, turn } = prepared;
        let mut cancelled = self.cancel.subscribe();
        let (written, start) = match written {
            Some((written, start)) => (Some(written), start),
            None => (None, Instant::now()),
        };
        let mut measured = client::Measured::default();
        if self.settings.tokenizer.is_some() || self.source.multi_turn() {
            measured.text = Some(String::new());
        }
        let timeout = self.settings.request_timeout.saturating_sub(start.elapsed());
        let at = client::At { start, wall_ns: self.clock.wall(start) };
        // Polled only when a timer or the cancellation fires, not at each token: the answer is
        // read by a reading task.
        let stop = async {
            tokio::select! {
                () = tokio::time::sleep(timeout) => Stop::Timeout,
                _ = cancelled.wait_for(|c| *c) => Stop::Cancelled,
            }
        };
        let was_cancelled =
            match client::send(&self.readers, &self.pool, &request, written, at, &mut measured, stop).await {
                None => false,
                Some(Stop::Timeout) => {
                    measured.end = Some(start.elapsed());
                    measured.error = Some(RequestError {
                        code: None,
                        kind: "timeout",
                        message: format!("unfinished after {:?}", self.settings.request_timeout),
                    });
                    false
                }
                Some(Stop::Cancelled) => true,
            };
        let end = measured.end.unwrap_or_else(|| start.elapsed());
        let mut error = measured.error;
        if was_cancelled {
            error = Some(RequestError {
                code: None,
                kind: "cancelled",
                message: self.cancel.reason().unwrap_or_else(|| "cancelled".into()),
            });
        }
        let (token_source, output_tokens, input_tokens) =
            match (&self.settings.tokenizer, measured.output_tokens) {
                (Some(tokenizer), _) => (
                    TokenSource::Tokenizer,
                    measured.text.as_deref().map_or(0, |t| tokenizer.count(t)),
                    prompt_tokens,
                ),
                (None, Some(output)) => {
                    (TokenSource::ServerUsage, output, measured.input_tokens.unwrap_or(prompt_tokens))
                }
                (None, None) => (TokenSource::ClientCount, measured.content_events, prompt_tokens),
            };
        if error.is_none() && output_tokens == 0 {
            error = Some(RequestError {
                code: None,
                kind: "zero_output_tokens",
                message: "the response finished with no output tokens".into(),
            });
        }
        let ok = error.is_none();
        let answer = match (ok, self.source.multi_turn(), measured.text) {
            (true, true, Some(text)) => Some(text),
            (true, _, _) => Some(String::new()),
            (false, _, _) => None,
        };
        let record = Record {
            index,
            phase,
            conversation: turn.conversation,
            turn: turn.turn,
            session_id: turn.session_id,
            credit_ns: self.clock.wall(credit),
            start_ns: self.clock.wall(start),
            end_ns: self.clock.wall(start + end),
            content_times: measured.content_times,
            output_tokens,
            input_tokens,
            token_source,
            error,
            cancelled: was_cancelled,
        };
        self.sink.push(record);
        answer
    }
}

/// Closed loop: `concurrency` workers, each running one conversation at a time (a request, for
/// single-turn sources) turn by turn, share counters of conversations and of requests. A
/// session ends early when one of its turns fails (the next turn would lack its history).
async fn closed_loop(shared: Arc<Shared>, phase: Phase, total: Option<u64>, until: Option<Instant>) -> u64 {
    let next = Arc::new(AtomicU64::new(0));
    let conversations = Arc::new(AtomicU64::new(0));
    let concurrency = shared.settings.concurrency.max(1);
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (shared, next, conversations) = (shared.clone(), next.clone(), conversations.clone());
        workers.spawn(async move {
            let over =
                |shared: &Shared| shared.cancel.is_cancelled() || until.is_some_and(|u| Instant::now() >= u);
            loop {
                if over(&shared) {
                    return;
                }
                let n = conversations.fetch_add(1, Ordering::Relaxed);
                let mut answers: Vec<String> = Vec::new();
                for turn in 0u32.. {
                    let Some(ask) = shared.ask(phase, n, turn, &answers) else { break };
                    if !ask.delay.is_zero() {
                        let mut cancelled = shared.cancel.subscribe();
                        let wake = until.map_or(ask.delay, |u| {
                            ask.delay.min(u.saturating_duration_since(Instant::now()))
                        });
                        tokio::select! {
                            () = tokio::time::sleep(wake) => {}
                            _ = cancelled.wait_for(|c| *c) => return,
                        }
                    }
                    if over(&shared) {
                        return;
                    }
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if total.is_some_and(|t| index >= t) {
                        return;
                    }
                    let prepared = shared.prepare(index, phase, ask, n, turn);
                    match shared.request(index, phase, Instant::now(), prepared, None).await {
                        Some(answer) => answers.push(answer),
                        None => break,
                    }
                }
            }
        });
    }
    while workers.join_next().await.is_some() {}
    let sent = next.load(Ordering::Relaxed);
    total.map_or(sent, |t| sent.min(t))
}

/// The offsets from the start at which an open loop sends, in order.
#[derive(Debug)]
pub struct Schedule {
    arrival: Arrival,
    rng: Rng,
    index: u64,
    at: f64,
}

impl Schedule {
    pub fn new(arrival: Arrival, seed: u64) -> Self {
        Schedule { arrival, rng: Rng::new(seed ^ 0x0a22_17a1), index: 0, at: 0.0 }
    }
}

impl Iterator for Schedule {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let index = self.index;
        self.index += 1;
        // The first request leaves at once; each gap is drawn after the previous send's slot,
        // and slots are absolute, so a late send does not push the rest back.
        let at = match &self.arrival {
            Arrival::Closed => return None,
            Arrival::Trace { entries, speedup, .. } => {
                let first = entries.first()?.timestamp;
                return entries.get(index as usize).map(|e| e.at(first, *speedup));
            }
            _ if index == 0 => 0.0,
            Arrival::Constant { rate } => self.at + 1.0 / rate,
            Arrival::Poisson { rate } => self.at + self.rng.exponential(1.0 / rate),
            Arrival::Gamma { rate, shape } => self.at + self.rng.gamma(*shape, 1.0 / rate),
        };
        self.at = at;
        Some(Duration::from_secs_f64(at))
    }
}

/// Open loop: a thread builds each request ahead of its slot, sleeps until the slot and writes
/// the request itself on an idle kept-alive connection, then hands the answer to the runtime, so
/// that a send never waits for a busy runtime. A request with no idle connection to go on, or
/// over the concurrency cap, is handed over whole at once (its send lag then says so).
///
/// Written requests are handed over in batches, at most [`HAND_OVER`] after the first of them:
/// waking the runtime for each one cost more CPU at 20,000 requests/s than anything else the
/// client did for it, and a later hand-over moves no time (reads are stamped by the kernel).
async fn open_loop(shared: Arc<Shared>, total: Option<u64>, until: Option<Instant>) -> u64 {
    let runtime = tokio::runtime::Handle::current();
    let cap = match shared.settings.concurrency {
        0 => None,
        n => Some(Arc::new(Semaphore::new(n as usize))),
    };
    let in_flight = Arc::new(AtomicU64::new(0));
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let scheduler = {
        let shared = shared.clone();
        let in_flight = in_flight.clone();
        let thread = std::thread::Builder::new().name("sweep-timing".into());
        thread.spawn(move || {
            let mut batch: Vec<Slot> = Vec::new();
            let mut batch_since = Instant::now();
            let hand_over = |batch: &mut Vec<Slot>| {
                if batch.is_empty() {
                    return;
                }
                let slots = std::mem::take(batch);
                let (shared, cap, in_flight) = (shared.clone(), cap.clone(), in_flight.clone());
                runtime.spawn(async move {
                    for slot in slots {
                        tokio::spawn(slot.run(shared.clone(), cap.clone(), in_flight.clone()));
                    }
                });
            };
            // A short lead, so that the first slot is not already late.
            let start = Instant::now() + Duration::from_millis(5);
            let mut sent = 0u64;
            for offset in Schedule::new(shared.settings.arrival.clone(), shared.settings.seed) {
                if total.is_some_and(|t| sent >= t) || shared.cancel.is_cancelled() {
                    break;
                }
                let at = start + offset;
                if until.is_some_and(|u| at >= u) {
                    break;
                }
                let index = sent;
                // Single turns only: `source_for` refuses sessions in an open loop.
                let Some(ask) = shared.ask(Phase::Profiling, index, 0, &[]) else { break };
                let prepared = shared.prepare(index, Phase::Profiling, ask, index, 0);
                let now = Instant::now();
                if at.saturating_duration_since(now) >= HAND_OVER || now - batch_since >= HAND_OVER {
                    hand_over(&mut batch);
                }
                if at > now {
                    std::thread::sleep(at - now);
                }
                if shared.cancel.is_cancelled() {
                    break;
                }
                // `None`: no cap; `Some(None)`: the cap is reached and the request must wait.
                let permit = cap.as_ref().map(|cap| cap.clone().try_acquire_owned().ok());
                let written = match permit {
                    Some(None) => None,
                    _ => write_now(&shared.pool, &prepared.request.bytes),
                };
                let whole = written.is_none();
                in_flight.fetch_add(1, Ordering::SeqCst);
                if batch.is_empty() {
                    batch_since = Instant::now();
                }
                batch.push(Slot { index, at, prepared, written, permit });
                if whole {
                    hand_over(&mut batch);
                }
                sent += 1;
            }
            hand_over(&mut batch);
            let _ = done_tx.send(sent);
        })
    };
    let scheduler = match scheduler {
        Ok(thread) => thread,
        Err(e) => {
            shared.cancel.cancel("failed", format!("cannot start the timing thread: {e}"));
            return 0;
        }
    };
    let sent = done_rx.await.unwrap_or(0);
    let _ = scheduler.join();
    // Every spawned request records itself (cancelled ones too) before it is counted out.
    while in_flight.load(Ordering::SeqCst) > 0 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    sent
}

/// How long the open loop's written requests may wait to be handed to the runtime.
const HAND_OVER: Duration = Duration::from_millis(1);

/// One open-loop request at its slot `at`, written (or not) by the timing thread.
struct Slot {
    index: u64,
    at: Instant,
    prepared: Prepared,
    written: Option<(client::Written, Instant)>,
    /// `None`: no cap; `Some(None)`: the cap was reached and the request must wait for a permit.
    permit: Option<Option<tokio::sync::OwnedSemaphorePermit>>,
}

impl Slot {
    async fn run(self, shared: Arc<Shared>, cap: Option<Arc<Semaphore>>, in_flight: Arc<AtomicU64>) {
        let _permit = match (self.permit, &cap) {
            (Some(None), Some(cap)) => cap.clone().acquire_owned().await.ok(),
            (permit, _) => permit.flatten(),
        };
        shared.request(self.index, Phase::Profiling, self.at, self.prepared, self.written).await;
        in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Writes `bytes` on an idle connection at once, from the calling thread: the connection, how
/// much went out and when it started. `None` when no idle connection takes them now.
fn write_now(pool: &http::Pool, bytes: &[u8]) -> Option<(client::Written, Instant)> {
    let connection = pool.try_get()?;
    let start = Instant::now();
    match connection.try_write(bytes) {
        Ok(n) if n > 0 => Some((client::Written { connection, bytes: n }, start)),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
            pool.give_back(connection);
            None
        }
        // A connection the server closed: the runtime sends on another.
        _ => None,
    }
}

/// Runs the warm-up and the measured phase. With `artifact_dir`, every request is appended to
/// `profile_export.jsonl` there as it finishes.
pub fn run(
    settings: Settings,
    cancel: Cancel,
    artifact_dir: Option<&std::path::Path>,
    progress: progress::Mode,
) -> Result<Outcome, LoadError> {
    let source = source_for(&settings)?;
    let mut builder = if settings.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(settings.threads);
        builder
    };
    let pace = Arc::new(reader::Pace::default());
    let runtime = {
        let pace = pace.clone();
        builder.on_thread_park(move || {
            if let Some(pause) = pace.pause() {
                std::thread::sleep(pause);
            }
        })
    }
    .enable_all()
    .build()
    .map_err(|source| LoadError::Start { what: "runtime", source })?;
    let readers = {
        let _runtime = runtime.enter();
        reader::Readers::start(settings.threads, pace)
    }
    .map_err(|source| LoadError::Start { what: "reading tasks", source })?;
    let bad_url = |problem: String| LoadError::Url { url: settings.url.clone(), problem };
    let url = reqwest::Url::parse(&settings.url).map_err(|e| bad_url(format!("not a URL: {e}")))?;
    if url.scheme() != "http" {
        return Err(bad_url("the load generator speaks plain http".into()));
    }
    let host = url.host_str().ok_or_else(|| bad_url("no host".into()))?.to_owned();
    let port = url.port_or_known_default().unwrap_or(80);
    let address = runtime
        .block_on(tokio::net::lookup_host((host.as_str(), port)))
        .map_err(|e| bad_url(format!("cannot resolve {host}: {e}")))?
        .next()
        .ok_or_else(|| bad_url(format!("{host} has no address")))?;
    let pool = http::Pool::new(address, format!("{host}:{port}"));
    let path = format!("{}{}", url.path().trim_end_matches('/'), settings.endpoint.path());
    let records_path = artifact_dir.map(|d| d.join(sweep_folder::exports::RECORDS));
    let file = match &records_path {
        Some(path) => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|source| LoadError::Write { path: path.clone(), source })?,
        ),
        None => None,
    };
    let sink = Arc::new(Sink::default());
    let expected = settings.requests.or(match &settings.arrival {
        Arrival::Trace { entries, .. } => Some(entries.len() as u64),
        _ => None,
    });
    let worker = record::worker_id();
    let collector = {
        let slos = settings.slos.clone();
        let warmup_total = settings.warmup;
        let duration = settings.duration;
        let sink = sink.clone();
        let worker = worker.clone();
        let records = file.zip(records_path.clone()).map(|(f, path)| (f, path, worker));
        std::thread::spawn(move || collect(sink, records, slos, progress, warmup_total, expected, duration))
    };
    let clock = Clock::now();
    let cpu_0 = cpu_seconds();
    let shared = Arc::new(Shared {
        pool,
        path,
        source,
        warmup: synthetic(&settings, 1 << 63),
        settings,
        clock,
        sink: sink.clone(),
        cancel: cancel.clone(),
        worker,
        readers,
    });
    let (start_ns, sent) = runtime.block_on(async {
        if shared.settings.warmup > 0 {
            closed_loop(shared.clone(), Phase::Warmup, Some(shared.settings.warmup), None).await;
        }
        // Blocks this (the runtime's outer) thread only: no request is in flight now.
        shared.settings.measured_start.reach(clock.wall(Instant::now()));
        let start_ns = clock.wall(Instant::now());
        let until = shared.settings.duration.map(|d| Instant::now() + d);
        let total = match &shared.settings.arrival {
            Arrival::Trace { entries, .. } => {
                Some(shared.settings.requests.map_or(entries.len() as u64, |r| r.min(entries.len() as u64)))
            }
            _ => shared.settings.requests,
        };
        let sent = match shared.settings.arrival {
            Arrival::Closed => closed_loop(shared.clone(), Phase::Profiling, total, until).await,
            _ => open_loop(shared.clone(), total, until).await,
        };
        (start_ns, sent)
    });
    let end_ns = clock.wall(Instant::now());
    let cpu_1 = cpu_seconds();
    drop(shared);
    drop(runtime);
    // Every request task has ended with the runtime: its record is in the sink.
    sink.closed.store(true, Ordering::SeqCst);
    let (profiling, warmup) = collector.join().map_err(|_| LoadError::Collector)??;
    Ok(Outcome {
        profiling,
        warmup,
        sent,
        start_ns,
        end_ns,
        cancelled: cancel.reason(),
        records: records_path,
        client_cpu_s: (cpu_1.0 - cpu_0.0, cpu_1.1 - cpu_0.1),
    })
}

/// Finished requests on their way to the collector. Requests push under an uncontended lock;
/// the collector takes the whole batch every few milliseconds, so no request pays for waking a
/// thread (at 20,000 requests/s a channel's wake-ups cost more than the records).
#[derive(Debug, Default)]
struct Sink {
    records: Mutex<Vec<Record>>,
    closed: AtomicBool,
}

impl Sink {
    fn push(&self, record: Record) {
        self.records.lock().unwrap_or_else(|e| e.into_inner()).push(record);
    }

    fn take(&self, into: &mut Vec<Record>) {
        std::mem::swap(&mut *self.records.lock().unwrap_or_else(|e| e.into_inner()), into);
    }
}

/// The collector thread: appends records to the file (flushed at least every second) and
/// aggregates them by phase.
fn collect(
    sink: Arc<Sink>,
    // The records' file, its path, and the worker id their lines carry.
    file: Option<(std::fs::File, std::path::PathBuf, String)>,
    slos: Slos,
    progress: progress::Mode,
    warmup_total: u64,
    expected: Option<u64>,
    duration: Option<Duration>,
) -> Result<(Aggregate, Aggregate), LoadError> {
    let (file, records, worker) =
        file.map_or((None, Default::default(), String::new()), |(f, p, w)| (Some(f), p, w));
    let mut out = file.map(|f| std::io::BufWriter::with_capacity(1 << 16, f));
    let mut profiling = Aggregate::new(slos.clone());
    let mut warmup = Aggregate::new(slos);
    let mut last_flush = Instant::now();
    let mut bar = progress::Progress::new(progress, warmup_total, expected, duration);
    let mut write_error = None;
    let mut batch = Vec::new();
    let mut line = Vec::with_capacity(4096);
    loop {
        // Read before taking the batch: once closed, this batch is the last.
        let closed = sink.closed.load(Ordering::SeqCst);
        sink.take(&mut batch);
        for record in batch.drain(..) {
            if let Some(out) = out.as_mut().filter(|_| write_error.is_none()) {
                line.clear();
                record.write_json(&worker, &mut line);
                line.push(b'\n');
                if let Err(e) = out.write_all(&line) {
                    write_error = Some(e);
                }
            }
            match record.phase {
                Phase::Warmup => warmup.add(&record),
                Phase::Profiling => profiling.add(&record),
            }
            bar.count(record.phase);
        }
        bar.tick(&profiling);
        if closed || last_flush.elapsed() >= Duration::from_secs(1) {
            if let Some(out) = out.as_mut() {
                if let Err(e) = out.flush() {
                    write_error.get_or_insert(e);
                }
            }
            last_flush = Instant::now();
        }
        if closed {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    bar.finish(&profiling);
    if let Some(source) = write_error {
        return Err(LoadError::Write { path: records, source });
    }
    Ok((profiling, warmup))
}

/// This process's CPU time in seconds (user, system), from `/proc/self/stat` (clock ticks of
/// 1/100 s, the Linux default).
pub fn cpu_seconds() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> =
        stat.rsplit_once(") ").map(|(_, rest)| rest.split(' ').collect()).unwrap_or_default();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0) / 100.0;
    // After the command name: state is field 0, utime field 11, stime field 12.
    (ticks(11), ticks(12))
}

/// `2026-11-22T10:08:27.436080` (UTC), the shape of aiperf's `start_time` and `end_time`.
pub fn iso_time(ns: u64) -> String {
    let micros = (ns % 1_000_000_000) / 1000;
    let (year, month, day, hour, minute, second) = sweep_folder::file::civil_utc((ns / 1_000_000_000) as i64);
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{micros:06}")
}

impl Outcome {
    /// Errors by type, compactly: `{"http_503": 5, "timeout": 1}`.
    pub fn error_counts(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut out = serde_json::Map::new();
        for ((code, kind), (count, _)) in &self.profiling.errors {
            let key = match code {
                Some(code) => format!("http_{code}"),
                None => (*kind).to_owned(),
            };
            let total = out.get(&key).and_then(serde_json::Value::as_u64).unwrap_or(0) + count;
            out.insert(key, total.into());
        }
        out
    }

    /// `profile_export_aiperf.json`: the metrics in aiperf's shape plus how they were made.
    pub fn to_json(&self, settings: &Settings, extra: serde_json::Value) -> serde_json::Value {
        let mut info = serde_json::Map::new();
        info.insert(
            "generator".into(),
            serde_json::json!({"name": "sweep-runner", "version": env!("CARGO_PKG_VERSION")}),
        );
        info.insert("start_time".into(), iso_time(self.start_ns).into());
        info.insert("end_time".into(), iso_time(self.end_ns).into());
        info.insert("was_cancelled".into(), self.cancelled.is_some().into());
        info.insert("cancel_reason".into(), self.cancelled.clone().into());
        let expected = settings.requests.unwrap_or(self.sent);
        let finished = self.profiling.completed + self.profiling.error_count();
        info.insert("is_complete".into(), (self.cancelled.is_none() && finished >= expected).into());
        info.insert("sent_request_count".into(), self.sent.into());
        info.insert("errors".into(), self.error_counts().into());
        info.insert(
            "warmup_metrics".into(),
            serde_json::json!({
                "request_count": self.warmup.completed,
                "error_request_count": self.warmup.error_count(),
            }),
        );
        info.insert(
            "client_cpu_s".into(),
            serde_json::json!({"user": self.client_cpu_s.0, "system": self.client_cpu_s.1}),
        );
        info.insert("input_config".into(), input_config(settings));
        if let serde_json::Value::Object(extra) = extra {
            info.extend(extra);
        }
        self.profiling.to_aiperf_json(info)
    }
}

/// The settings in the shape of aiperf's `input_config`, plus what aiperf has no key for.
fn input_config(s: &Settings) -> serde_json::Value {
    let (phase_type, rate) = match &s.arrival {
        Arrival::Closed => ("concurrency", None),
        Arrival::Constant { rate } | Arrival::Poisson { rate } | Arrival::Gamma { rate, .. } => {
            ("request_rate", Some(*rate))
        }
        Arrival::Trace { .. } => ("trace", None),
    };
    serde_json::json!({
        "models": {"items": [{"name": s.model}]},
        "endpoint": {
            "urls": [s.url],
            "type": s.endpoint,
            "path": s.endpoint.path(),
            "streaming": s.stream,
            "use_server_token_count": s.tokenizer.is_none(),
            "extra": s.extra_body,
        },
        "tokenizer": {"name": s.tokenizer.as_ref().map(|t| t.path().display().to_string())},
        "datasets": [{
            "name": "main",
            "type": match (&s.arrival, &s.dataset) {
                (Arrival::Trace { .. }, _) => serde_json::json!("mooncake_trace"),
                (_, Some(dataset)) => dataset.info["format"].clone(),
                _ => serde_json::json!("synthetic"),
            },
            "file": s.dataset.as_ref().map(|d| d.info.clone()),
            "prefix": s.prefix.map(|p| serde_json::json!({"ratio": p.ratio, "prompts": p.count})),
            "images": s.images.map(|i| serde_json::json!({"count": i.count, "width": i.width, "height": i.height, "format": "png"})),
            "random_seed": s.seed,
            "prompts": {
                "isl": {"mean": s.isl, "stddev": s.isl_stddev},
                "osl": {"mean": s.osl, "stddev": s.osl_stddev},
            },
        }],
        "phases": [
            {"name": "warmup", "kind": "warmup", "type": "concurrency", "exclude_from_results": true,
             "requests": s.warmup, "concurrency": s.concurrency.max(1)},
            {"name": "profiling", "kind": "profiling", "type": phase_type, "requests": s.requests,
             "duration_s": s.duration.map(|d| d.as_secs_f64()), "concurrency": s.concurrency,
             "request_rate": rate, "arrival": s.arrival.describe()},
        ],
        "request_timeout_s": s.request_timeout.as_secs_f64(),
        "goodput": {
            "time_to_first_token": s.slos.time_to_first_token,
            "inter_token_latency": s.slos.inter_token_latency,
            "request_latency": s.slos.request_latency,
        },
    })
}

/// Writes `profile_export_aiperf.json` and `.csv` into `dir`, each through a temporary name.
pub fn write_exports(
    dir: &std::path::Path,
    json: &serde_json::Value,
    aggregate: &Aggregate,
) -> Result<(), LoadError> {
    use sweep_folder::{exports, file};
    // A `Value` always serializes.
    let text = serde_json::to_string_pretty(json).unwrap_or_default();
    for (name, bytes) in
        [(exports::SUMMARY, text.into_bytes()), (exports::CSV, aggregate.to_aiperf_csv().into_bytes())]
    {
        let path = dir.join(name);
        file::write_atomically(&path, &bytes)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_times_are_utc_civil_dates() {
        assert_eq!(iso_time(0), "1970-01-01T00:00:00.000000");
        // 2026-11-22T10:08:27.436080Z
        assert_eq!(iso_time(1_795_342_107_436_080_000), "2026-11-22T10:08:27.436080");
        assert_eq!(iso_time(951_782_400_000_000_000), "2000-02-29T00:00:00.000000");
    }

    #[test]
    fn schedules_are_absolute_seeded_and_at_the_asked_rate() {
        let constant: Vec<Duration> = Schedule::new(Arrival::Constant { rate: 4.0 }, 1).take(5).collect();
        assert_eq!(constant, [0.0, 0.25, 0.5, 0.75, 1.0].map(Duration::from_secs_f64));
        for arrival in [Arrival::Poisson { rate: 1000.0 }, Arrival::Gamma { rate: 1000.0, shape: 0.25 }] {
            let a: Vec<Duration> = Schedule::new(arrival.clone(), 7).take(20_000).collect();
            let b: Vec<Duration> = Schedule::new(arrival.clone(), 7).take(20_000).collect();
            assert_eq!(a, b, "same seed, same schedule");
            let rate = 19_999.0 / a[19_999].as_secs_f64();
            assert!((rate - 1000.0).abs() < 30.0, "{arrival:?}: {rate} req/s");
            assert!(a.windows(2).all(|w| w[0] <= w[1]));
        }
        let trace = Arrival::Trace {
            entries: Arc::new(vec![
                TraceEntry { timestamp: 1000.0, input_length: 1, output_length: 1, hash_ids: vec![] },
                TraceEntry { timestamp: 1500.0, input_length: 1, output_length: 1, hash_ids: vec![] },
            ]),
            block_size: 512,
            speedup: 2.0,
        };
        let t: Vec<Duration> = Schedule::new(trace, 0).collect();
        assert_eq!(t, [Duration::ZERO, Duration::from_millis(250)]);
    }
}
