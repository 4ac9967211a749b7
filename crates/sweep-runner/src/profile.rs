//! `sweep-runner profile`: a closed-loop load generator for any OpenAI-compatible server.
//!
//! `concurrency` workers each keep one request in flight; together they send `warmup` requests
//! (left out of the results) and then `requests` measured ones. A response chunk's time is taken
//! when its bytes arrive, before any parsing. Latencies go into per-worker HDR histograms (µs, 3
//! significant digits: within 0.1 %) merged at the end; metric names and definitions follow
//! aiperf's (`docs/metrics.md`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use hdrhistogram::Histogram;
use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Endpoint {
    Chat,
    Completions,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ProfileArgs {
    /// The server's base URL, e.g. http://127.0.0.1:8000
    #[arg(long)]
    pub url: String,
    #[arg(long, value_enum, default_value_t = Endpoint::Chat)]
    pub endpoint: Endpoint,
    #[arg(long)]
    pub model: String,
    /// Requests kept in flight.
    #[arg(long, default_value_t = 1)]
    pub concurrency: u32,
    /// Measured requests.
    #[arg(long, default_value_t = 100)]
    pub requests: u64,
    /// Requests sent first and left out of the results.
    #[arg(long, default_value_t = 0)]
    pub warmup: u64,
    /// Prompt length in words (the simulated engine counts a word as a token).
    #[arg(long, default_value_t = 128)]
    pub isl: u32,
    /// Output tokens, asked for with max_tokens = min_tokens = OSL and ignore_eos.
    #[arg(long, default_value_t = 64)]
    pub osl: u32,
    /// Stream the response (SSE).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub stream: bool,
    /// Give up on one request after this many seconds.
    #[arg(long, default_value_t = 600.0)]
    pub request_timeout: f64,
    /// Runtime worker threads.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
}

/// One worker's share of the results.
struct Tally {
    ttft: Histogram<u64>,
    itl: Histogram<u64>,
    latency: Histogram<u64>,
    completed: u64,
    output_tokens: u64,
    errors: BTreeMap<String, u64>,
    first_start: Option<Instant>,
    last_end: Option<Instant>,
}

impl Tally {
    fn new() -> Self {
        let histogram = || {
            Histogram::new_with_bounds(1, 3_600_000_000, 3)
                .unwrap_or_else(|_| Histogram::new(3).expect("3 digits is valid"))
        };
        Self {
            ttft: histogram(),
            itl: histogram(),
            latency: histogram(),
            completed: 0,
            output_tokens: 0,
            errors: BTreeMap::new(),
            first_start: None,
            last_end: None,
        }
    }

    fn merge(&mut self, other: Tally) {
        let _ = self.ttft.add(&other.ttft);
        let _ = self.itl.add(&other.itl);
        let _ = self.latency.add(&other.latency);
        self.completed += other.completed;
        self.output_tokens += other.output_tokens;
        for (kind, n) in other.errors {
            *self.errors.entry(kind).or_default() += n;
        }
        self.first_start = [self.first_start, other.first_start].into_iter().flatten().min();
        self.last_end = [self.last_end, other.last_end].into_iter().flatten().max();
    }
}

/// What one request measured.
struct Outcome {
    start: Instant,
    end: Instant,
    first_token: Option<Instant>,
    output_tokens: u64,
    error: Option<String>,
}

#[derive(Deserialize)]
struct Event {
    #[serde(default)]
    choices: Vec<Choice>,
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Choice {
    delta: Option<Delta>,
    text: Option<String>,
    message: Option<Delta>,
}

#[derive(Deserialize)]
struct Delta {
    content: Option<String>,
}

#[derive(Deserialize)]
struct Usage {
    completion_tokens: u64,
}

impl Event {
    fn has_content(&self) -> bool {
        self.choices.iter().any(|c| {
            let delta = c.delta.as_ref().or(c.message.as_ref()).and_then(|d| d.content.as_deref());
            delta.or(c.text.as_deref()).is_some_and(|t| !t.is_empty())
        })
    }
}

fn body(args: &ProfileArgs) -> Bytes {
    let prompt = vec!["word"; args.isl as usize].join(" ");
    let mut body = serde_json::json!({
        "model": args.model,
        "max_tokens": args.osl,
        "min_tokens": args.osl,
        "ignore_eos": true,
        "stream": args.stream,
    });
    if args.stream {
        body["stream_options"] = serde_json::json!({"include_usage": true});
    }
    match args.endpoint {
        Endpoint::Chat => body["messages"] = serde_json::json!([{"role": "user", "content": prompt}]),
        Endpoint::Completions => body["prompt"] = serde_json::Value::from(prompt),
    }
    Bytes::from(body.to_string())
}

async fn one_request(
    client: &reqwest::Client,
    url: &str,
    body: Bytes,
    stream: bool,
    timeout: Duration,
) -> Outcome {
    let start = Instant::now();
    let mut outcome = Outcome { start, end: start, first_token: None, output_tokens: 0, error: None };
    let response = match client
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .timeout(timeout)
        .send()
        .await
    {
        Ok(response) => response,
        Err(e) => {
            outcome.end = Instant::now();
            outcome.error = Some(if e.is_timeout() { "timeout".into() } else { "transport".into() });
            return outcome;
        }
    };
    if !response.status().is_success() {
        outcome.end = Instant::now();
        outcome.error = Some(format!("http_{}", response.status().as_u16()));
        return outcome;
    }
    let mut chunks = response.bytes_stream();
    let mut buffer: Vec<u8> = Vec::new();
    let mut content_events = 0u64;
    let mut usage_tokens = None;
    while let Some(chunk) = chunks.next().await {
        // The arrival time, before anything is parsed.
        let now = Instant::now();
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(e) => {
                outcome.end = now;
                outcome.error =
                    Some(if e.is_timeout() { "timeout".into() } else { "stream_interrupted".into() });
                return outcome;
            }
        };
        outcome.end = now;
        buffer.extend_from_slice(&chunk);
        if !stream {
            continue;
        }
        // Several SSE events may arrive in one read: each is counted, all at this read's time.
        while let Some(end) = buffer.windows(2).position(|w| w == b"\n\n") {
            let event: Vec<u8> = buffer.drain(..end + 2).collect();
            let Some(payload) = event.strip_prefix(b"data: ") else { continue };
            let payload = &payload[..payload.len().saturating_sub(2)];
            if payload == b"[DONE]" {
                continue;
            }
            match serde_json::from_slice::<Event>(payload) {
                Ok(event) => {
                    if event.has_content() {
                        content_events += 1;
                        outcome.first_token.get_or_insert(now);
                    }
                    if let Some(usage) = event.usage {
                        usage_tokens = Some(usage.completion_tokens);
                    }
                }
                Err(_) => {
                    outcome.error = Some("malformed_stream".into());
                }
            }
        }
    }
    if !stream {
        match serde_json::from_slice::<Event>(&buffer) {
            Ok(event) => {
                outcome.first_token = Some(outcome.end);
                usage_tokens = event.usage.as_ref().map(|u| u.completion_tokens);
                content_events = u64::from(event.has_content());
            }
            Err(_) => outcome.error = Some("malformed_response".into()),
        }
    }
    outcome.output_tokens = usage_tokens.unwrap_or(content_events);
    if outcome.error.is_none() && outcome.output_tokens == 0 {
        outcome.error = Some("zero_output_tokens".into());
    }
    outcome
}

fn micros(d: Duration) -> u64 {
    (d.as_micros() as u64).max(1)
}

async fn worker(
    client: reqwest::Client,
    url: Arc<str>,
    body: Bytes,
    args: Arc<ProfileArgs>,
    next: Arc<AtomicU64>,
) -> Tally {
    let mut tally = Tally::new();
    let total = args.warmup + args.requests;
    let timeout = Duration::from_secs_f64(args.request_timeout);
    loop {
        let index = next.fetch_add(1, Ordering::Relaxed);
        if index >= total {
            return tally;
        }
        let outcome = one_request(&client, &url, body.clone(), args.stream, timeout).await;
        if index < args.warmup {
            continue;
        }
        tally.first_start = Some(tally.first_start.map_or(outcome.start, |s| s.min(outcome.start)));
        tally.last_end = Some(tally.last_end.map_or(outcome.end, |e| e.max(outcome.end)));
        if let Some(error) = outcome.error {
            *tally.errors.entry(error).or_default() += 1;
            continue;
        }
        tally.completed += 1;
        tally.output_tokens += outcome.output_tokens;
        let latency = outcome.end - outcome.start;
        let _ = tally.latency.record(micros(latency));
        if let Some(first) = outcome.first_token {
            let ttft = first - outcome.start;
            let _ = tally.ttft.record(micros(ttft));
            if outcome.output_tokens > 1 {
                let itl = (latency - ttft) / (outcome.output_tokens - 1) as u32;
                let _ = tally.itl.record(micros(itl));
            }
        }
    }
}

fn summary(histogram: &Histogram<u64>) -> serde_json::Value {
    if histogram.is_empty() {
        return serde_json::Value::Null;
    }
    let ms = |us: u64| us as f64 / 1000.0;
    serde_json::json!({
        "unit": "ms",
        "avg": histogram.mean() / 1000.0,
        "min": ms(histogram.min()),
        "p50": ms(histogram.value_at_quantile(0.50)),
        "p90": ms(histogram.value_at_quantile(0.90)),
        "p99": ms(histogram.value_at_quantile(0.99)),
        "max": ms(histogram.max()),
        "std": histogram.stdev() / 1000.0,
        "count": histogram.len(),
    })
}

/// This process's CPU time in seconds (user, system), from `/proc/self/stat` (clock ticks of
/// 1/100 s, the Linux default).
fn cpu_seconds() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> =
        stat.rsplit_once(") ").map(|(_, rest)| rest.split(' ').collect()).unwrap_or_default();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0) / 100.0;
    // After the command name: state is field 0, utime field 11, stime field 12.
    (ticks(11), ticks(12))
}

/// Runs the load and returns the results as JSON.
pub fn run(args: ProfileArgs) -> Result<serde_json::Value, String> {
    let runtime = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_multi_thread().worker_threads(args.threads).enable_all().build()
    }
    .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let path = match args.endpoint {
        Endpoint::Chat => "/v1/chat/completions",
        Endpoint::Completions => "/v1/completions",
    };
    let url: Arc<str> = Arc::from(format!("{}{path}", args.url.trim_end_matches('/')));
    let body = body(&args);
    let args = Arc::new(args);
    let (cpu_user_0, cpu_sys_0) = cpu_seconds();
    let tally = runtime.block_on(async {
        let client = reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(args.concurrency as usize)
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        let next = Arc::new(AtomicU64::new(0));
        let workers: Vec<_> = (0..args.concurrency.max(1))
            .map(|_| {
                tokio::spawn(worker(client.clone(), url.clone(), body.clone(), args.clone(), next.clone()))
            })
            .collect();
        let mut total = Tally::new();
        for handle in workers {
            total.merge(handle.await.map_err(|e| format!("a worker failed: {e}"))?);
        }
        Ok::<Tally, String>(total)
    })?;
    let (cpu_user, cpu_sys) = cpu_seconds();
    let duration = match (tally.first_start, tally.last_end) {
        (Some(start), Some(end)) => (end - start).as_secs_f64(),
        _ => 0.0,
    };
    let per_second = |n: u64| if duration > 0.0 { n as f64 / duration } else { 0.0 };
    Ok(serde_json::json!({
        "url": &*url,
        "concurrency": args.concurrency,
        "requests": args.requests,
        "warmup": args.warmup,
        "completed": tally.completed,
        "errors": tally.errors,
        "duration_s": duration,
        "request_throughput": per_second(tally.completed),
        "output_tokens": tally.output_tokens,
        "output_token_throughput": per_second(tally.output_tokens),
        "time_to_first_token": summary(&tally.ttft),
        "inter_token_latency": summary(&tally.itl),
        "request_latency": summary(&tally.latency),
        "client_cpu_s": {"user": cpu_user - cpu_user_0, "system": cpu_sys - cpu_sys_0},
    }))
}
