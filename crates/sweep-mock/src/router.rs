//! The router (DISAGG_SERVER): knows the job's workers. With CTX and GEN workers it sends each
//! request's prompt to a CTX worker, then hands it to a GEN worker and relays the decode as token
//! events; with AGG workers (an aggregated job of several servers) it sends each request whole
//! to one of them.
//!
//! Workers come from `--ctx`/`--gen`/`--agg` flags and from registration files in the rendezvous
//! folder (`{"role": "ctx", "address": "host:port"}`), which is rescanned while the router runs.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::mpsc;

use sweep_folder::markers::ServerRole;

use crate::config::{Role, Routing, Settings};

/// Why the router could not relay a request; each names the worker (or role) at fault, and
/// reaches the client as the stream's error.
#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    #[error("no {role} worker is registered")]
    NoWorker { role: &'static str },
    #[error("{role} worker {address}: {problem}")]
    Worker { role: &'static str, address: String, problem: String },
}

impl RouterError {
    fn of(worker: &Worker, problem: impl Into<String>) -> Self {
        RouterError::Worker {
            role: worker.role.as_str(),
            address: worker.address.clone(),
            problem: problem.into(),
        }
    }
}
use crate::engine::Event;

#[derive(Debug)]
pub struct Worker {
    pub role: Role,
    pub address: String,
    in_flight: AtomicU64,
    served: AtomicU64,
}

#[derive(Debug)]
pub struct Workers {
    ctx: RwLock<Vec<Arc<Worker>>>,
    gen: RwLock<Vec<Arc<Worker>>>,
    agg: RwLock<Vec<Arc<Worker>>>,
    /// Round-robin position per role: one shared counter would advance twice per request (a CTX
    /// and a GEN pick) and keep sending GEN work to the same worker.
    next_ctx: AtomicUsize,
    next_gen: AtomicUsize,
    next_agg: AtomicUsize,
    routing: Routing,
    client: reqwest::Client,
}

/// Counts a worker's request as in flight until dropped.
struct InFlight(Arc<Worker>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Workers {
    pub fn start(settings: &Settings) -> Arc<Self> {
        let workers = Arc::new(Self {
            ctx: RwLock::new(Vec::new()),
            gen: RwLock::new(Vec::new()),
            agg: RwLock::new(Vec::new()),
            next_ctx: AtomicUsize::new(0),
            next_gen: AtomicUsize::new(0),
            next_agg: AtomicUsize::new(0),
            routing: settings.routing,
            client: reqwest::Client::builder().no_proxy().build().unwrap_or_default(),
        });
        for address in &settings.ctx_workers {
            workers.add(Role::Ctx, address);
        }
        for address in &settings.gen_workers {
            workers.add(Role::Gen, address);
        }
        for address in &settings.agg_workers {
            workers.add(Role::Agg, address);
        }
        if let Some(dir) = settings.rendezvous.clone() {
            tokio::spawn(watch(Arc::downgrade(&workers), dir));
        }
        workers
    }

    fn list(&self, role: Role) -> &RwLock<Vec<Arc<Worker>>> {
        match role {
            Role::Ctx => &self.ctx,
            Role::Gen => &self.gen,
            Role::Agg | Role::Router => &self.agg,
        }
    }

    fn next(&self, role: Role) -> &AtomicUsize {
        match role {
            Role::Ctx => &self.next_ctx,
            Role::Gen => &self.next_gen,
            Role::Agg | Role::Router => &self.next_agg,
        }
    }

    /// Whether requests go whole to AGG workers: only AGG workers are known. (A router never
    /// mixes the two kinds; a job is aggregated or disaggregated.)
    fn aggregated(&self) -> bool {
        let known = |role| !self.list(role).read().unwrap_or_else(|e| e.into_inner()).is_empty();
        known(Role::Agg) && !known(Role::Ctx) && !known(Role::Gen)
    }

    fn add(&self, role: Role, address: &str) {
        let mut list = self.list(role).write().unwrap_or_else(|e| e.into_inner());
        if !list.iter().any(|w| w.address == address) {
            tracing::info!(role = role.as_str(), address, "worker registered");
            list.push(Arc::new(Worker {
                role,
                address: address.to_owned(),
                in_flight: AtomicU64::new(0),
                served: AtomicU64::new(0),
            }));
        }
    }

    fn pick(&self, role: Role) -> Option<InFlight> {
        let list = self.list(role).read().unwrap_or_else(|e| e.into_inner());
        let worker = match self.routing {
            Routing::RoundRobin => {
                let n = list.len();
                (n > 0).then(|| list[self.next(role).fetch_add(1, Ordering::Relaxed) % n].clone())
            }
            Routing::LeastLoaded => list.iter().min_by_key(|w| w.in_flight.load(Ordering::Relaxed)).cloned(),
        }?;
        worker.in_flight.fetch_add(1, Ordering::Relaxed);
        worker.served.fetch_add(1, Ordering::Relaxed);
        Some(InFlight(worker))
    }

    /// Whether the router can serve (an AGG worker, or a CTX and a GEN worker known), and the
    /// workers as listed by `/health`.
    pub fn instances(&self) -> (bool, Vec<serde_json::Value>) {
        let mut instances = Vec::new();
        let mut count = |role: Role| {
            let list = self.list(role).read().unwrap_or_else(|e| e.into_inner());
            instances.extend(
                list.iter().map(|w| serde_json::json!({"role": role.as_str(), "address": w.address})),
            );
            list.len()
        };
        let (ctx, gen, agg) = (count(Role::Ctx), count(Role::Gen), count(Role::Agg));
        (agg > 0 || (ctx > 0 && gen > 0), instances)
    }

    pub fn metrics(&self) -> String {
        let mut text = String::from(
            "# HELP sweep_mock_router_in_flight Requests a worker is serving for this router.\n\
             # TYPE sweep_mock_router_in_flight gauge\n",
        );
        let mut served = String::from(
            "# HELP sweep_mock_router_requests_total Requests sent to a worker.\n\
             # TYPE sweep_mock_router_requests_total counter\n",
        );
        for role in [Role::Ctx, Role::Gen, Role::Agg] {
            for w in self.list(role).read().unwrap_or_else(|e| e.into_inner()).iter() {
                let labels = format!("{{role=\"{}\",worker=\"{}\"}}", role.as_str(), w.address);
                text.push_str(&format!(
                    "sweep_mock_router_in_flight{labels} {}\n",
                    w.in_flight.load(Ordering::Relaxed)
                ));
                served.push_str(&format!(
                    "sweep_mock_router_requests_total{labels} {}\n",
                    w.served.load(Ordering::Relaxed)
                ));
            }
        }
        text + &served
    }

    /// Runs one request through a CTX and a GEN worker; its events arrive on the receiver.
    pub fn dispatch(
        self: Arc<Self>,
        prompt_tokens: u32,
        output_tokens: u32,
        words: Option<String>,
    ) -> mpsc::UnboundedReceiver<Event> {
        let (events, receiver) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            if let Err(error) = self.relay(prompt_tokens, output_tokens, words, &events).await {
                let _ = events.send(Event::Failed(error.to_string().into()));
            }
        });
        receiver
    }

    /// Posts a hand-off to a worker's `/internal/<step>`; an error names the worker.
    async fn post(
        &self,
        worker: &Worker,
        step: &str,
        body: String,
    ) -> Result<reqwest::Response, RouterError> {
        let response = self
            .client
            .post(format!("http://{}/internal/{step}", worker.address))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| RouterError::of(worker, e.to_string()))?;
        if !response.status().is_success() {
            let status = response.status();
            let text = response.text().await.unwrap_or_default();
            return Err(RouterError::of(worker, format!("answered {status}: {text}")));
        }
        Ok(response)
    }

    async fn relay(
        &self,
        prompt_tokens: u32,
        output_tokens: u32,
        words: Option<String>,
        events: &mpsc::UnboundedSender<Event>,
    ) -> Result<(), RouterError> {
        // The words go to the worker that prefills, for its prefix cache.
        let prefill_body = |output_tokens: Option<u32>| {
            let mut body = serde_json::json!({"prompt_tokens": prompt_tokens, "words": words});
            if let Some(n) = output_tokens {
                body["output_tokens"] = n.into();
            }
            body.to_string()
        };
        if self.aggregated() {
            let agg = self.pick(Role::Agg).ok_or(RouterError::NoWorker { role: "agg" })?;
            let response = self.post(&agg.0, "generate", prefill_body(Some(output_tokens))).await?;
            if relay_counts(&agg.0, response, output_tokens, events).await? {
                let _ = events.send(Event::Done);
            }
            return Ok(());
        }
        let ctx = self.pick(Role::Ctx).ok_or(RouterError::NoWorker { role: "ctx" })?;
        let answer = self.post(&ctx.0, "prefill", prefill_body(None)).await?;
        let answer: serde_json::Value =
            answer.json().await.map_err(|e| RouterError::of(&ctx.0, format!("its prefill answer: {e}")))?;
        drop(ctx);
        if let Some(cached) = answer["cached_tokens"].as_u64() {
            let _ = events.send(Event::Cached(cached as u32));
        }
        // The CTX worker's prefill produced the first token.
        if events.send(Event::Tokens(1)).is_err() {
            return Ok(());
        }
        let remaining = output_tokens - 1;
        if remaining > 0 {
            let gen = self.pick(Role::Gen).ok_or(RouterError::NoWorker { role: "gen" })?;
            let body = format!("{{\"prompt_tokens\":{prompt_tokens},\"output_tokens\":{remaining}}}");
            let response = self.post(&gen.0, "decode", body).await?;
            if !relay_counts(&gen.0, response, remaining, events).await? {
                return Ok(());
            }
        }
        let _ = events.send(Event::Done);
        Ok(())
    }
}

/// Relays a worker's token counts (one decimal count per line) as events, checking that all
/// `expected` came. `Ok(false)`: the client left (dropping the stream ends the worker's sequence).
async fn relay_counts(
    worker: &Worker,
    response: reqwest::Response,
    expected: u32,
    events: &mpsc::UnboundedSender<Event>,
) -> Result<bool, RouterError> {
    let mut received = 0u32;
    let mut pending = Vec::new();
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| RouterError::of(worker, format!("stream: {e}")))?;
        pending.extend_from_slice(&chunk);
        while let Some(end) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line[..end]).into_owned();
            if let Some(cached) = line.strip_prefix("cached ").and_then(|n| n.parse().ok()) {
                if events.send(Event::Cached(cached)).is_err() {
                    return Ok(false);
                }
                continue;
            }
            let n: u32 = line.parse().map_err(|_| RouterError::of(worker, line.clone()))?;
            received += n;
            if events.send(Event::Tokens(n)).is_err() {
                return Ok(false);
            }
        }
    }
    if received != expected {
        return Err(RouterError::of(worker, format!("stopped after {received} of {expected} tokens")));
    }
    Ok(true)
}

/// Rescans the rendezvous folder for worker registrations while the router lives.
async fn watch(workers: std::sync::Weak<Workers>, dir: PathBuf) {
    loop {
        let Some(workers) = workers.upgrade() else { return };
        for registration in sweep_folder::paths::registrations_in(&dir) {
            let role = match registration.role {
                ServerRole::Ctx => Role::Ctx,
                ServerRole::Gen => Role::Gen,
                ServerRole::Agg => Role::Agg,
                ServerRole::DisaggServer => continue,
            };
            workers.add(role, &registration.address);
        }
        drop(workers);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
