//! The simulated engine: one task that runs continuous batching in steps.
//!
//! Each step admits waiting requests while the batch has room (`max_batch`), the KV cache has
//! room (a request reserves prompt + output tokens), and the step's prefill budget
//! (`max_num_tokens`) allows; the step then takes the model's time for its prefills plus one
//! decode step over the sequences already running, and every sequence advances: a new one gets
//! its first token from its prefill, a running one gets 1 + accepted MTP tokens. Steps are laid
//! on an absolute clock (each deadline is the previous one plus the step time), so timer jitter
//! never accumulates into the measured inter-token latency.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::config::SimParams;

/// What part of a request this engine runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Prefill, then decode to the end (agg).
    Full,
    /// Prefill and the first token only (ctx).
    PrefillOnly,
    /// Decode only: the prompt's KV cache arrived from a ctx worker (gen).
    DecodeOnly,
}

/// What the engine (or, behind a router, the workers) report about a request, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// This many more output tokens.
    Tokens(u32),
    /// Behind a router: the prompt tokens the prefilling worker's prefix cache held. Comes
    /// before the first token; an engine of its own never sends it.
    Cached(u32),
    /// The request finished; no more events follow.
    Done,
    /// The request can never fit the KV cache.
    Rejected,
    /// A worker behind the router failed; the text says which and how.
    Failed(Arc<str>),
}

#[derive(Debug)]
pub struct Request {
    pub prompt_tokens: u32,
    /// Leading prompt tokens the prefix cache held: they cost no prefill.
    pub cached_tokens: u32,
    /// Output tokens to produce in this engine (for `PrefillOnly`, 1).
    pub output_tokens: u32,
    pub phase: Phase,
    pub events: mpsc::UnboundedSender<Event>,
}

/// Live counters, read by `/metrics`.
#[derive(Debug, Default)]
pub struct Stats {
    pub running: AtomicU64,
    pub waiting: AtomicU64,
    pub kv_used_tokens: AtomicU64,
    pub kv_capacity_tokens: AtomicU64,
    pub prompt_tokens_total: AtomicU64,
    pub generated_tokens_total: AtomicU64,
    pub requests_finished_total: AtomicU64,
    pub steps_total: AtomicU64,
    /// With MTP: decode steps that drafted, draft tokens proposed, and draft tokens accepted
    /// (the tokens a step yields beyond its one bonus token), as vLLM counts them.
    pub spec_drafts_total: AtomicU64,
    pub spec_draft_tokens_total: AtomicU64,
    pub spec_accepted_tokens_total: AtomicU64,
}

/// The handle handlers submit requests through.
#[derive(Debug, Clone)]
pub struct Engine {
    submit: mpsc::UnboundedSender<Request>,
    pub stats: Arc<Stats>,
}

impl Engine {
    /// Starts the scheduler task on the current runtime.
    pub fn start(params: SimParams) -> Self {
        let (submit, receiver) = mpsc::unbounded_channel();
        let stats = Arc::new(Stats::default());
        stats.kv_capacity_tokens.store(params.kv_capacity_tokens, Ordering::Relaxed);
        tokio::spawn(Scheduler::new(params, receiver, stats.clone()).run());
        Self { submit, stats }
    }

    /// Queues a request; its events arrive on the returned receiver.
    pub fn submit(
        &self,
        prompt_tokens: u32,
        output_tokens: u32,
        phase: Phase,
    ) -> mpsc::UnboundedReceiver<Event> {
        self.submit_cached(prompt_tokens, 0, output_tokens, phase)
    }

    /// [`Engine::submit`] for a prompt whose first `cached_tokens` the prefix cache held.
    pub fn submit_cached(
        &self,
        prompt_tokens: u32,
        cached_tokens: u32,
        output_tokens: u32,
        phase: Phase,
    ) -> mpsc::UnboundedReceiver<Event> {
        let (events, receiver) = mpsc::unbounded_channel();
        self.stats.waiting.fetch_add(1, Ordering::Relaxed);
        let request = Request { prompt_tokens, cached_tokens, output_tokens, phase, events };
        if let Err(mpsc::error::SendError(request)) = self.submit.send(request) {
            // The scheduler is gone only while the runtime shuts down.
            let _ = request.events.send(Event::Rejected);
        }
        receiver
    }
}

/// How many zero-time steps run between two yields to the connections.
const INSTANT_STEPS_PER_YIELD: u32 = 8;

struct Sequence {
    request: Request,
    generated: u32,
    /// Context tokens held in the KV cache.
    context: u64,
    reserved: u64,
    /// Fractional MTP tokens carried to the next step.
    carry: f64,
    prefilled: bool,
}

struct Scheduler {
    params: SimParams,
    receiver: mpsc::UnboundedReceiver<Request>,
    stats: Arc<Stats>,
    waiting: VecDeque<Request>,
    running: Vec<Sequence>,
    kv_used: u64,
    tokens_per_step: f64,
}

impl Scheduler {
    fn new(params: SimParams, receiver: mpsc::UnboundedReceiver<Request>, stats: Arc<Stats>) -> Self {
        let tokens_per_step = params.tokens_per_step();
        Self {
            params,
            receiver,
            stats,
            waiting: VecDeque::new(),
            running: Vec::new(),
            kv_used: 0,
            tokens_per_step,
        }
    }

    async fn run(mut self) {
        let mut clock: Option<Instant> = None;
        let mut instant_steps = 0u32;
        loop {
            if self.running.is_empty() && self.waiting.is_empty() {
                match self.receiver.recv().await {
                    Some(request) => self.waiting.push_back(request),
                    None => return,
                }
                // Idle: the next step starts now, not on the old clock.
                clock = None;
            }
            while let Ok(request) = self.receiver.try_recv() {
                self.waiting.push_back(request);
            }
            self.drop_abandoned();
            let (admitted, prefill_tokens) = self.admit();
            let decoding = self.running.len() - admitted;
            let kv_context: u64 = self.running[..decoding].iter().map(|s| s.context).sum();
            let step =
                self.params.prefill_time(prefill_tokens) + self.params.decode_time(decoding, kv_context);
            if step.is_zero() {
                // Zero-time steps (`--no-delay`) have no timing to keep: yield to the connections
                // every few steps, so each stream finds several tokens to write at once.
                instant_steps += 1;
                if instant_steps.is_multiple_of(INSTANT_STEPS_PER_YIELD) {
                    tokio::task::yield_now().await;
                }
                clock = None;
            } else {
                clock = Some(self.wait(clock, step).await);
            }
            self.advance(decoding);
            self.publish();
        }
    }

    /// Sleeps until the end of a step of length `step` and returns that instant. Deadlines chain
    /// from the previous one, so a late wake-up (the timer ticks every millisecond) is caught up by
    /// the next steps and the mean step time stays exact even for steps shorter than a tick; only
    /// a lag beyond `MAX_LAG` (the machine was starved) restarts the clock.
    async fn wait(&self, clock: Option<Instant>, step: Duration) -> Instant {
        const MAX_LAG: Duration = Duration::from_millis(20);
        let now = Instant::now();
        let start = match clock {
            Some(previous) if now.saturating_duration_since(previous) < MAX_LAG => previous,
            _ => now,
        };
        let deadline = start + step;
        tokio::time::sleep_until(deadline).await;
        deadline
    }

    /// Removes requests whose client went away, freeing their KV reservation.
    fn drop_abandoned(&mut self) {
        let before = self.running.len();
        let mut freed = 0;
        self.running.retain(|s| {
            let keep = !s.request.events.is_closed();
            if !keep {
                freed += s.reserved;
            }
            keep
        });
        self.kv_used -= freed;
        if before != self.running.len() || self.waiting.iter().any(|r| r.events.is_closed()) {
            self.waiting.retain(|r| !r.events.is_closed());
        }
    }

    /// Moves waiting requests into the batch; returns how many and their prefill tokens. New
    /// sequences go to the end of `running`.
    fn admit(&mut self) -> (usize, u64) {
        let (mut admitted, mut prefill_tokens) = (0usize, 0u64);
        let capacity = self.params.kv_capacity_tokens;
        while (self.running.len() as u64) < u64::from(self.params.max_batch) {
            let Some(front) = self.waiting.front() else { break };
            let reserve = u64::from(front.prompt_tokens) + u64::from(front.output_tokens);
            if reserve > capacity {
                if let Some(request) = self.waiting.pop_front() {
                    let _ = request.events.send(Event::Rejected);
                }
                continue;
            }
            if self.kv_used + reserve > capacity {
                break;
            }
            let prefills = front.phase != Phase::DecodeOnly;
            let uncached = u64::from(front.prompt_tokens - front.cached_tokens.min(front.prompt_tokens));
            if prefills
                && prefill_tokens > 0
                && prefill_tokens + uncached > u64::from(self.params.max_num_tokens)
            {
                break;
            }
            let Some(request) = self.waiting.pop_front() else { break };
            if prefills {
                prefill_tokens += uncached;
            }
            self.kv_used += reserve;
            self.stats.prompt_tokens_total.fetch_add(u64::from(request.prompt_tokens), Ordering::Relaxed);
            self.running.push(Sequence {
                context: u64::from(request.prompt_tokens),
                generated: 0,
                reserved: reserve,
                carry: 0.0,
                prefilled: !prefills,
                request,
            });
            admitted += 1;
        }
        (admitted, prefill_tokens)
    }

    /// Emits this step's tokens and retires finished sequences. The first `decoding` sequences
    /// decoded in this step; the ones after them were admitted in it.
    fn advance(&mut self, decoding: usize) {
        let (mut generated, mut finished, mut freed) = (0u64, 0u64, 0u64);
        let (mut drafts, mut accepted) = (0u64, 0u64);
        let tokens_per_step = self.tokens_per_step;
        let mtp = self.params.mtp;
        let mut index = 0;
        self.running.retain_mut(|sequence| {
            let admitted_now = index >= decoding;
            index += 1;
            let tokens = if admitted_now && !sequence.prefilled {
                // A prefill yields the first token.
                sequence.prefilled = true;
                1
            } else {
                sequence.carry += tokens_per_step;
                let whole = sequence.carry.floor();
                sequence.carry -= whole;
                // The step drafted `mtp` tokens and kept all it yields but the bonus one (before
                // the answer's end cuts them: the engine verified them all the same).
                if mtp > 0 {
                    drafts += 1;
                    accepted += (whole as u64).saturating_sub(1);
                }
                whole as u32
            };
            let tokens = tokens.min(sequence.request.output_tokens - sequence.generated);
            sequence.generated += tokens;
            sequence.context += u64::from(tokens);
            generated += u64::from(tokens);
            if tokens > 0 {
                let _ = sequence.request.events.send(Event::Tokens(tokens));
            }
            let done = sequence.generated >= sequence.request.output_tokens;
            if done {
                let _ = sequence.request.events.send(Event::Done);
                freed += sequence.reserved;
                finished += 1;
            }
            !done
        });
        self.kv_used -= freed;
        self.stats.generated_tokens_total.fetch_add(generated, Ordering::Relaxed);
        self.stats.requests_finished_total.fetch_add(finished, Ordering::Relaxed);
        self.stats.steps_total.fetch_add(1, Ordering::Relaxed);
        if drafts > 0 {
            self.stats.spec_drafts_total.fetch_add(drafts, Ordering::Relaxed);
            self.stats.spec_draft_tokens_total.fetch_add(drafts * u64::from(mtp), Ordering::Relaxed);
            self.stats.spec_accepted_tokens_total.fetch_add(accepted, Ordering::Relaxed);
        }
    }

    fn publish(&self) {
        self.stats.running.store(self.running.len() as u64, Ordering::Relaxed);
        self.stats.waiting.store(self.waiting.len() as u64 + self.receiver.len() as u64, Ordering::Relaxed);
        self.stats.kv_used_tokens.store(self.kv_used, Ordering::Relaxed);
    }
}
