//! A point's scrapes, summed up: what each server's counters did over the measured phase, what
//! its gauges were, the quantiles of what its histograms observed, and the measures of
//! [`crate::mapping`] over all servers.
//!
//! The measured phase is bracketed by two scrapes: the one taken when the load generator
//! started its measured requests (after the warm-up had finished) and the one taken after the
//! last answer. Counter and histogram figures are the differences between those two; gauge
//! figures are over every scrape from the first to the second.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::mapping::{self, Measure};
use crate::parse::{Exposition, Kind, Sample};

/// Where a scrape round falls relative to the measured phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Before the measured requests (the warm-up).
    Before,
    /// The round taken as the measured requests start: the window's first edge.
    Start,
    During,
    /// The round taken after the last answer: the window's second edge.
    End,
}

/// A gauge over the measured phase.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GaugeStats {
    pub mean: f64,
    pub max: f64,
    /// Nearest rank over the scrapes.
    pub p99: f64,
    pub scrapes: usize,
}

/// What a histogram observed over the measured phase, in the histogram's own unit.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HistogramStats {
    pub count: f64,
    pub sum: f64,
    pub mean: Option<f64>,
    /// Interpolated within buckets, as Prometheus' `histogram_quantile` does.
    pub p50: Option<f64>,
    pub p90: Option<f64>,
    pub p99: Option<f64>,
}

/// One server's scrapes over a point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerSummary {
    /// The URL scraped.
    pub url: String,
    /// `ctx`, `gen`, `agg` or `frontend`.
    pub role: String,
    pub scrapes: u64,
    pub failed_scrapes: u64,
    /// Counters' increase over the measured phase, by series key.
    pub counters: BTreeMap<String, f64>,
    pub gauges: BTreeMap<String, GaugeStats>,
    /// By family and labels (without `le`).
    pub histograms: BTreeMap<String, HistogramStats>,
}

/// A gauge measure over all servers.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Level {
    pub mean: f64,
    pub max: f64,
}

/// A latency measure over all servers, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    pub count: f64,
    pub mean_ms: Option<f64>,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

/// The measures the results table shows, over every server of the point ([`crate::mapping`]
/// says which family each comes from, per engine). `None` where no server serves it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Measures {
    /// Requests in the running batches, summed over servers per scrape.
    pub requests_running: Option<Level>,
    /// Requests queued, summed over servers per scrape.
    pub requests_waiting: Option<Level>,
    /// Share of the measured phase's scrapes in which some request waited.
    pub waiting_share: Option<f64>,
    /// KV-cache usage, 0 to 1: the mean over servers and scrapes, and the fullest server's
    /// highest.
    pub kv_cache_usage: Option<Level>,
    pub preemptions: Option<f64>,
    /// Prompt tokens found in the prefix cache over prompt tokens looked up.
    pub prefix_cache_hit_rate: Option<f64>,
    pub time_to_first_token: Option<Latency>,
    pub inter_token_latency: Option<Latency>,
    /// Output tokens the servers generated (the serving side: the frontend's count when it has
    /// one, else every server's but the prefill (CTX) servers').
    pub output_tokens: Option<f64>,
    /// Speculative decoding (MTP, a draft model): the draft tokens accepted over those proposed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec_acceptance_rate: Option<f64>,
    /// Speculative decoding: the mean tokens a decode step yields, the bonus token included
    /// (`1 + accepted / drafts`, or the engine's own gauge).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec_tokens_per_step: Option<f64>,
    /// The family each measure came from.
    pub families: BTreeMap<String, String>,
}

/// Everything a point's `server_metrics.json` holds but its format's envelope.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PointSummary {
    pub interval_ms: u64,
    /// Unix seconds of the scrapes that bracket the measured phase.
    pub window: Option<(f64, f64)>,
    pub servers: BTreeMap<String, ServerSummary>,
    pub measures: Measures,
    /// What went wrong, once per server and cause: an endpoint without `/metrics`, an answer
    /// that is not an exposition.
    pub notes: Vec<String>,
    /// CPU seconds (user + system) the runner's scraper thread took over the point, this
    /// summary included: what scraping cost the client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scraper_cpu_s: Option<f64>,
    /// While the measured requests ran (from the end of the `start` round to the beginning of
    /// the `end` round): the scraper thread's CPU seconds, and the whole runner's (load
    /// generator and scraper). Their ratio is what scraping took of the client's CPU while it
    /// was measuring; the edges and the summary fall outside, when no measured request is in
    /// flight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scraper_cpu_measured_s: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cpu_measured_s: Option<f64>,
}

/// What one server's scrapes leave to summarise.
#[derive(Debug, Default)]
struct Server {
    url: String,
    role: String,
    scrapes: u64,
    failed: u64,
    /// The whole scrapes of the start and end rounds: the window's edges.
    base: Option<Exposition>,
    last: Option<Exposition>,
    /// Gauge values by series key: (family, [(round, value)]).
    gauges: BTreeMap<String, (String, Vec<(usize, f64)>)>,
}

/// Gathers a point's scrapes round by round, then sums them up ([`Collector::finish`]).
#[derive(Debug, Default)]
pub struct Collector {
    interval_ms: u64,
    servers: BTreeMap<String, Server>,
    /// Each round's time (unix seconds) and phase.
    rounds: Vec<(f64, Phase)>,
    notes: Vec<String>,
}

impl Collector {
    pub fn new(interval_ms: u64) -> Self {
        Collector { interval_ms, ..Default::default() }
    }

    pub fn add_server(&mut self, name: &str, role: &str, url: &str) {
        self.servers.insert(
            name.to_owned(),
            Server { url: url.to_owned(), role: role.to_owned(), ..Default::default() },
        );
    }

    /// Starts a round; returns its index.
    pub fn round(&mut self, time: f64, phase: Phase) -> usize {
        self.rounds.push((time, phase));
        self.rounds.len() - 1
    }

    /// A server's exposition in the current round: the whole of it ([`crate::parse`]) in the
    /// `start` and `end` rounds, whose counters and histograms are differenced; its gauges alone
    /// ([`crate::parse_gauges`]) do in the `before` and `during` ones, which are read for their
    /// gauges only.
    pub fn record(&mut self, server: &str, exposition: Exposition) {
        let round = self.rounds.len().saturating_sub(1);
        let phase = self.rounds.last().map_or(Phase::Before, |r| r.1);
        let Some(s) = self.servers.get_mut(server) else { return };
        s.scrapes += 1;
        for sample in exposition.samples.iter().filter(|s| gauge_like(s)) {
            match s.gauges.get_mut(sample.key()) {
                Some((_, values)) => values.push((round, sample.value)),
                None => {
                    s.gauges.insert(
                        sample.key().to_owned(),
                        (sample.family.to_string(), vec![(round, sample.value)]),
                    );
                }
            }
        }
        match phase {
            Phase::Start => s.base = Some(exposition),
            Phase::End => s.last = Some(exposition),
            Phase::Before | Phase::During => {}
        }
    }

    /// A scrape that failed, with what to note of it (once: a note already kept is not
    /// repeated).
    pub fn failed(&mut self, server: &str, note: Option<String>) {
        if let Some(s) = self.servers.get_mut(server) {
            s.failed += 1;
        }
        if let Some(note) = note.filter(|n| !self.notes.contains(n)) {
            self.notes.push(note);
        }
    }

    pub fn finish(self) -> PointSummary {
        // The window: from the start round (else the first) to the end round (else the last).
        let started = self.rounds.iter().position(|r| r.1 == Phase::Start);
        let start = started.unwrap_or(0);
        let end = self
            .rounds
            .iter()
            .rposition(|r| r.1 == Phase::End)
            .unwrap_or(self.rounds.len().saturating_sub(1));
        let window = (!self.rounds.is_empty()).then(|| (self.rounds[start].0, self.rounds[end].0));
        let in_window = |round: usize| round >= start && round <= end;
        // Each server's deltas once: its summary and every measure read them (a summary of 64
        // servers built them eight times each, most of the scraper's CPU at the end of a point).
        let deltas: Vec<(&String, &Server, Deltas)> =
            self.servers.iter().map(|(name, s)| (name, s, Deltas::of(s))).collect();
        let measures = self.measures(start, end, &deltas);
        let mut servers = BTreeMap::new();
        for (name, s, d) in deltas {
            let gauges = s
                .gauges
                .iter()
                .filter_map(|(key, (_, values))| {
                    let values: Vec<f64> = values
                        .iter()
                        .filter(|(r, v)| in_window(*r) && v.is_finite())
                        .map(|(_, v)| *v)
                        .collect();
                    stats(&values).map(|g| (key.clone(), g))
                })
                .collect();
            servers.insert(
                name.clone(),
                ServerSummary {
                    url: s.url.clone(),
                    role: s.role.clone(),
                    scrapes: s.scrapes,
                    failed_scrapes: s.failed,
                    counters: d.counters,
                    gauges,
                    histograms: d.histograms.into_iter().map(|(k, h)| (k, h.stats())).collect(),
                },
            );
        }
        let mut notes = self.notes;
        if started.is_none() && !self.rounds.is_empty() {
            notes.push("the measured requests never started: no counter or histogram figures".into());
        }
        PointSummary { interval_ms: self.interval_ms, window, servers, measures, notes, ..Default::default() }
    }

    fn measures(&self, start: usize, end: usize, deltas: &[(&String, &Server, Deltas)]) -> Measures {
        let mut m = Measures::default();
        let rounds = start..=end;
        // Gauges, per round over servers.
        let per_round = |measure: Measure, families: &mut BTreeMap<String, String>| {
            let family = mapping::families(measure)
                .iter()
                .find(|f| self.servers.values().any(|s| s.gauges.values().any(|(g, _)| g == *f)))?;
            families.insert(measure.name().to_owned(), (*family).to_owned());
            let mut by_round: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
            for s in self.servers.values() {
                for (g, values) in s.gauges.values() {
                    if g == family {
                        for &(r, v) in values {
                            if rounds.contains(&r) && v.is_finite() {
                                by_round.entry(r).or_default().push(v);
                            }
                        }
                    }
                }
            }
            (!by_round.is_empty()).then_some(by_round)
        };
        let level =
            |rounds: &BTreeMap<usize, Vec<f64>>, per: fn(&[f64]) -> f64, max: fn(&[f64]) -> f64| Level {
                mean: rounds.values().map(|v| per(v)).sum::<f64>() / rounds.len() as f64,
                max: rounds.values().map(|v| max(v)).fold(f64::NEG_INFINITY, f64::max),
            };
        let sum = |v: &[f64]| v.iter().sum::<f64>();
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
        let max = |v: &[f64]| v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if let Some(r) = per_round(Measure::RequestsRunning, &mut m.families) {
            m.requests_running = Some(level(&r, sum, sum));
        }
        if let Some(r) = per_round(Measure::RequestsWaiting, &mut m.families) {
            m.requests_waiting = Some(level(&r, sum, sum));
            m.waiting_share = Some(r.values().filter(|v| sum(v) > 0.0).count() as f64 / r.len() as f64);
        }
        if let Some(r) = per_round(Measure::KvCacheUsage, &mut m.families) {
            m.kv_cache_usage = Some(level(&r, mean, max));
        }
        // Counters and histograms, over the window's two edges.
        // The servers a measure is read from: the frontend's, when it serves the family (the
        // workers behind it saw the same requests); else every server's (but the prefill
        // servers', for output tokens: their one token per request is not an answer's).
        let sources = |family: &str, skip_ctx: bool| -> Vec<&Deltas> {
            let frontend = deltas.iter().any(|(_, s, d)| s.role == "frontend" && d.serves(family));
            deltas
                .iter()
                .filter(|(_, s, d)| {
                    d.windowed
                        && d.serves(family)
                        && (!frontend || s.role == "frontend")
                        && !(skip_ctx && s.role == "ctx")
                })
                .map(|(_, _, d)| d)
                .collect()
        };
        let found = |measure: Measure| {
            mapping::families(measure).iter().copied().find(|f| deltas.iter().any(|(_, _, d)| d.serves(f)))
        };
        let counter = |measure: Measure, families: &mut BTreeMap<String, String>, skip_ctx: bool| {
            let family = found(measure)?;
            families.insert(measure.name().to_owned(), family.to_owned());
            let sources = sources(family, skip_ctx);
            // No server with both edges scraped: nothing was measured, which is not zero.
            (!sources.is_empty()).then(|| {
                sources
                    .into_iter()
                    .map(|d| {
                        // A histogram of per-request amounts (Dynamo's cached and input
                        // tokens) counts them in its sum.
                        let histograms =
                            d.histograms.iter().filter(|(k, _)| family_of_key(k, family)).map(|(_, h)| h.sum);
                        d.counters
                            .iter()
                            .filter(|(k, _)| family_of_key(k, family))
                            .map(|(_, v)| *v)
                            .chain(histograms)
                            .sum::<f64>()
                    })
                    .sum::<f64>()
            })
        };
        m.preemptions = counter(Measure::Preemptions, &mut m.families, false);
        m.output_tokens = counter(Measure::OutputTokens, &mut m.families, true);
        let hits = counter(Measure::PrefixCacheHits, &mut m.families, false);
        let queries = counter(Measure::PrefixCacheQueries, &mut m.families, false);
        m.prefix_cache_hit_rate = match (hits, queries) {
            (Some(h), Some(q)) if q > 0.0 => Some(h / q),
            _ => per_round(Measure::PrefixCacheHitRate, &mut m.families).map(|r| level(&r, mean, max).mean),
        };
        let drafts = counter(Measure::SpecDrafts, &mut m.families, false);
        let proposed = counter(Measure::SpecDraftTokens, &mut m.families, false);
        let accepted = counter(Measure::SpecAcceptedTokens, &mut m.families, false);
        m.spec_acceptance_rate = match (accepted, proposed) {
            (Some(a), Some(p)) if p > 0.0 => Some(a / p),
            _ => per_round(Measure::SpecAcceptanceRate, &mut m.families).map(|r| level(&r, mean, max).mean),
        };
        m.spec_tokens_per_step = match (accepted, drafts) {
            (Some(a), Some(d)) if d > 0.0 => Some(1.0 + a / d),
            _ => per_round(Measure::SpecAcceptanceLength, &mut m.families).map(|r| level(&r, mean, max).mean),
        };
        let latency = |measure: Measure, families: &mut BTreeMap<String, String>| {
            let family = found(measure)?;
            families.insert(measure.name().to_owned(), family.to_owned());
            let labelled = format!("{family}{{");
            let sources = sources(family, false);
            if sources.is_empty() {
                return None;
            }
            let mut merged = Buckets::default();
            for d in sources {
                for (key, h) in &d.histograms {
                    if key == family || key.starts_with(&labelled) {
                        merged.merge(h);
                    }
                }
            }
            let s = merged.stats();
            let ms = |v: Option<f64>| v.map(|v| v * 1000.0);
            Some(Latency { count: s.count, mean_ms: ms(s.mean), p50_ms: ms(s.p50), p99_ms: ms(s.p99) })
        };
        m.time_to_first_token = latency(Measure::TimeToFirstToken, &mut m.families);
        m.inter_token_latency = latency(Measure::InterTokenLatency, &mut m.families);
        m
    }
}

/// What one server's counters and histograms did over the window (from its start scrape to its
/// end scrape; nothing when either failed), and the families its end scrape serves.
struct Deltas<'a> {
    /// Both edges were scraped.
    windowed: bool,
    counters: BTreeMap<String, f64>,
    histograms: BTreeMap<String, Buckets>,
    families: HashSet<&'a str>,
}

impl<'a> Deltas<'a> {
    fn of(s: &'a Server) -> Self {
        // A family's samples come one after another: each is hashed once, not once a sample.
        let mut families = HashSet::new();
        let mut previous: Option<&Arc<str>> = None;
        for sample in s.last.iter().flat_map(|e| &e.samples) {
            if !previous.is_some_and(|p| Arc::ptr_eq(p, &sample.family)) {
                families.insert(&*sample.family);
                previous = Some(&sample.family);
            }
        }
        match (s.base.as_ref(), s.last.as_ref()) {
            (Some(base), Some(last)) => Deltas {
                windowed: true,
                counters: counter_deltas(base, last),
                histograms: histogram_deltas(base, last),
                families,
            },
            _ => Deltas {
                windowed: false,
                counters: Default::default(),
                histograms: Default::default(),
                families,
            },
        }
    }

    /// Whether the last scrape serves `family` (a counter's may be typed with `_total`, as
    /// Python's `prometheus_client` types them).
    fn serves(&self, family: &str) -> bool {
        self.families.contains(family) || self.families.contains(format!("{family}_total").as_str())
    }
}

/// Gauges, and untyped samples that are not counters by name: what is averaged over scrapes.
fn gauge_like(sample: &Sample) -> bool {
    match sample.kind {
        Kind::Gauge => true,
        Kind::Untyped => !sample.name().ends_with("_total"),
        _ => false,
    }
}

fn counter_like(sample: &Sample) -> bool {
    match sample.kind {
        Kind::Counter => !sample.name().ends_with("_created"),
        Kind::Untyped => sample.name().ends_with("_total"),
        _ => false,
    }
}

/// Whether a series key belongs to `family` (a counter's samples may add `_total`).
fn family_of_key(key: &str, family: &str) -> bool {
    let name = key.split('{').next().unwrap_or(key);
    name == family || name.strip_suffix("_total") == Some(family)
}

/// Each counter's increase from `base` to `last`; a counter that went down was reset (the
/// server restarted) and counts from zero.
pub fn counter_deltas(base: &Exposition, last: &Exposition) -> BTreeMap<String, f64> {
    let before: HashMap<&str, f64> =
        base.samples.iter().filter(|s| counter_like(s)).map(|s| (s.key(), s.value)).collect();
    last.samples
        .iter()
        .filter(|s| counter_like(s))
        .map(|s| {
            let delta = match before.get(s.key()) {
                Some(&b) if s.value >= b => s.value - b,
                _ => s.value,
            };
            (s.key().to_owned(), delta)
        })
        .collect()
}

/// One histogram's buckets (upper bound, cumulative count), sum and count.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Buckets {
    pub buckets: Vec<(f64, f64)>,
    pub sum: f64,
    pub count: f64,
}

impl Buckets {
    /// Adds another server's observations (same bucket bounds; others are added where they
    /// match).
    pub fn merge(&mut self, other: &Buckets) {
        if self.buckets.is_empty() {
            self.buckets = other.buckets.clone();
        } else {
            for (le, n) in &mut self.buckets {
                if let Some((_, m)) = other.buckets.iter().find(|(l, _)| l == le) {
                    *n += m;
                }
            }
        }
        self.sum += other.sum;
        self.count += other.count;
    }

    /// The `q` quantile, interpolated linearly inside its bucket (Prometheus'
    /// `histogram_quantile`): the lowest bucket starts at 0, and a quantile in the `+Inf` bucket
    /// is the highest finite bound.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.buckets.last()?.1;
        if total <= 0.0 {
            return None;
        }
        let rank = q * total;
        let mut lower = (0.0, 0.0);
        for &(le, n) in &self.buckets {
            if n >= rank {
                if le.is_infinite() {
                    return Some(lower.0);
                }
                if n == lower.1 {
                    return Some(le);
                }
                return Some(lower.0 + (le - lower.0) * (rank - lower.1) / (n - lower.1));
            }
            lower = (le, n);
        }
        Some(lower.0)
    }

    pub fn stats(&self) -> HistogramStats {
        HistogramStats {
            count: self.count,
            sum: self.sum,
            mean: (self.count > 0.0).then(|| self.sum / self.count),
            p50: self.quantile(0.5),
            p90: self.quantile(0.9),
            p99: self.quantile(0.99),
        }
    }
}

/// Each histogram's buckets, by family and labels without `le`.
pub fn histograms(exposition: &Exposition) -> BTreeMap<String, Buckets> {
    let mut out: BTreeMap<String, Buckets> = BTreeMap::new();
    // A histogram's samples come one after another and share a key: it is built into one
    // string, and the map is looked up only when the key changes.
    let mut key = String::new();
    let mut current: Option<(String, Buckets)> = None;
    for s in exposition.samples.iter().filter(|s| s.kind == Kind::Histogram) {
        s.push_key_without(&mut key, &s.family, "le");
        let (_, entry) = match &mut current {
            Some((k, _)) if *k == key => current.as_mut().expect("matched"),
            _ => {
                if let Some((k, b)) = current.take() {
                    out.insert(k, b);
                }
                let b = out.remove(key.as_str()).unwrap_or_default();
                current.insert((key.clone(), b))
            }
        };
        match s.name().strip_prefix(&*s.family) {
            Some("_bucket") => {
                if let Some(le) = s.label("le").and_then(|le| match le {
                    "+Inf" | "Inf" => Some(f64::INFINITY),
                    le => le.parse().ok(),
                }) {
                    entry.buckets.push((le, s.value));
                }
            }
            Some("_sum") => entry.sum = s.value,
            Some("_count") => entry.count = s.value,
            _ => {}
        }
    }
    if let Some((k, b)) = current {
        out.insert(k, b);
    }
    for b in out.values_mut() {
        b.buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    out
}

/// What each histogram observed between `base` and `last`.
pub fn histogram_deltas(base: &Exposition, last: &Exposition) -> BTreeMap<String, Buckets> {
    let before = histograms(base);
    histograms(last)
        .into_iter()
        .map(|(key, mut h)| {
            // A histogram that went down was reset: it counts from zero.
            if let Some(b) = before.get(&key).filter(|b| b.count <= h.count) {
                for (le, n) in &mut h.buckets {
                    if let Some((_, m)) = b.buckets.iter().find(|(l, _)| l == le) {
                        *n -= m;
                    }
                }
                h.sum -= b.sum;
                h.count -= b.count;
            }
            (key, h)
        })
        .collect()
}

fn stats(values: &[f64]) -> Option<GaugeStats> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((0.99 * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(GaugeStats {
        mean: values.iter().sum::<f64>() / values.len() as f64,
        max: sorted[sorted.len() - 1],
        p99: sorted[rank - 1],
        scrapes: values.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::parse;

    fn histogram(buckets: &[(&str, f64)], sum: f64, count: f64) -> String {
        let mut text = String::from("# TYPE vllm:time_to_first_token_seconds histogram\n");
        for (le, n) in buckets {
            text.push_str(&format!(
                "vllm:time_to_first_token_seconds_bucket{{le=\"{le}\",model_name=\"m\"}} {n}\n"
            ));
        }
        text.push_str(&format!("vllm:time_to_first_token_seconds_sum{{model_name=\"m\"}} {sum}\n"));
        text.push_str(&format!("vllm:time_to_first_token_seconds_count{{model_name=\"m\"}} {count}\n"));
        text
    }

    /// Worked by hand: before, 2 observations (both ≤ 0.1 s); after, 12 (4 ≤ 0.1, 10 ≤ 0.5,
    /// 12 ≤ 1). The point saw 10: 2 in (0, 0.1], 6 in (0.1, 0.5], 2 in (0.5, 1].
    /// p50: rank 5 falls in (0.1, 0.5] with 2 below: 0.1 + 0.4 × (5 − 2) / 6 = 0.3.
    /// p90: rank 9 falls in (0.5, 1] with 8 below: 0.5 + 0.5 × (9 − 8) / 2 = 0.75.
    /// p99: rank 9.9: 0.5 + 0.5 × 1.9 / 2 = 0.975. Mean: (4.2 − 0.2) / 10 = 0.4.
    #[test]
    fn histogram_deltas_and_quantiles_by_hand() {
        let base = parse(&histogram(&[("0.1", 2.0), ("0.5", 2.0), ("1.0", 2.0), ("+Inf", 2.0)], 0.2, 2.0))
            .expect("base");
        let last =
            parse(&histogram(&[("0.1", 4.0), ("0.5", 10.0), ("1.0", 12.0), ("+Inf", 12.0)], 4.2, 12.0))
                .expect("last");
        let deltas = histogram_deltas(&base, &last);
        let h = &deltas["vllm:time_to_first_token_seconds{model_name=\"m\"}"];
        assert_eq!(h.buckets, vec![(0.1, 2.0), (0.5, 8.0), (1.0, 10.0), (f64::INFINITY, 10.0)]);
        let s = h.stats();
        assert_eq!(s.count, 10.0);
        let close = |a: Option<f64>, b: f64| assert!((a.expect("some") - b).abs() < 1e-9, "{a:?} != {b}");
        close(s.mean, 0.4);
        close(s.p50, 0.3);
        close(s.p90, 0.75);
        close(s.p99, 0.975);
        // All in the +Inf bucket: the highest finite bound, as Prometheus answers.
        let over = Buckets { buckets: vec![(0.1, 0.0), (f64::INFINITY, 3.0)], sum: 3.0, count: 3.0 };
        assert_eq!(over.quantile(0.5), Some(0.1));
        assert_eq!(Buckets::default().quantile(0.5), None);
    }

    #[test]
    fn counters_increase_and_reset() {
        let base = parse("# TYPE a counter\na_total{x=\"1\"} 10\na_total{x=\"2\"} 50\n").expect("base");
        let last = parse("# TYPE a counter\na_total{x=\"1\"} 25\na_total{x=\"2\"} 5\na_total{x=\"3\"} 1\n")
            .expect("last");
        let d = counter_deltas(&base, &last);
        assert_eq!(d["a_total{x=\"1\"}"], 15.0);
        assert_eq!(d["a_total{x=\"2\"}"], 5.0, "reset: counts from zero");
        assert_eq!(d["a_total{x=\"3\"}"], 1.0, "new series: from zero");
    }

    fn vllm(running: f64, waiting: f64, kv: f64, tokens: f64, hits: f64, queries: f64) -> Exposition {
        parse(&format!(
            "# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running{{engine=\"0\"}} {running}\n\
             # TYPE vllm:num_requests_waiting gauge\nvllm:num_requests_waiting{{engine=\"0\"}} {waiting}\n\
             # TYPE vllm:kv_cache_usage_perc gauge\nvllm:kv_cache_usage_perc{{engine=\"0\"}} {kv}\n\
             # TYPE vllm:generation_tokens_total counter\nvllm:generation_tokens_total{{engine=\"0\"}} {tokens}\n\
             # TYPE vllm:prefix_cache_hits counter\nvllm:prefix_cache_hits_total{{engine=\"0\"}} {hits}\n\
             # TYPE vllm:prefix_cache_queries counter\nvllm:prefix_cache_queries_total{{engine=\"0\"}} {queries}\n"
        ))
        .expect("parses")
    }

    /// Two vLLM servers over five rounds; the warm-up round is outside the window.
    #[test]
    fn measures_sum_running_over_servers_per_round_and_take_the_fullest_kv_cache() {
        let mut c = Collector::new(1000);
        c.add_server("agg_0", "agg", "http://a/metrics");
        c.add_server("agg_1", "agg", "http://b/metrics");
        let rounds = [
            (Phase::Before, [(9.0, 9.0, 0.9, 0.0), (9.0, 9.0, 0.9, 0.0)]),
            (Phase::Start, [(0.0, 0.0, 0.0, 100.0), (0.0, 0.0, 0.1, 200.0)]),
            (Phase::During, [(4.0, 2.0, 0.5, 150.0), (3.0, 0.0, 0.2, 260.0)]),
            (Phase::During, [(4.0, 0.0, 0.6, 190.0), (4.0, 0.0, 0.3, 300.0)]),
            (Phase::End, [(0.0, 0.0, 0.0, 200.0), (0.0, 0.0, 0.0, 330.0)]),
        ];
        for (i, (phase, servers)) in rounds.iter().enumerate() {
            c.round(100.0 + i as f64, *phase);
            for (name, (running, waiting, kv, tokens)) in ["agg_0", "agg_1"].iter().zip(servers) {
                c.record(name, vllm(*running, *waiting, *kv, *tokens, tokens / 2.0, *tokens));
            }
        }
        c.failed("agg_1", Some("agg_1: no /metrics (404)".into()));
        c.failed("agg_1", Some("agg_1: no /metrics (404)".into()));
        let s = c.finish();
        assert_eq!(s.window, Some((101.0, 104.0)));
        assert_eq!(s.notes, vec!["agg_1: no /metrics (404)"], "noted once");
        assert_eq!(s.servers["agg_1"].failed_scrapes, 2);
        let m = &s.measures;
        // Sums per round in the window: 0, 7, 8, 0.
        assert_eq!(m.requests_running, Some(Level { mean: 15.0 / 4.0, max: 8.0 }));
        assert_eq!(m.requests_waiting, Some(Level { mean: 0.5, max: 2.0 }));
        assert_eq!(m.waiting_share, Some(0.25));
        let kv = m.kv_cache_usage.expect("kv");
        assert!((kv.mean - (0.05 + 0.35 + 0.45 + 0.0) / 4.0).abs() < 1e-12, "{kv:?}");
        assert_eq!(kv.max, 0.6);
        assert_eq!(m.output_tokens, Some(100.0 + 130.0));
        assert_eq!(m.prefix_cache_hit_rate, Some(0.5));
        assert_eq!(m.families["requests_running"], "vllm:num_requests_running");
        let g = &s.servers["agg_0"].gauges["vllm:num_requests_running{engine=\"0\"}"];
        assert_eq!((g.mean, g.max, g.p99, g.scrapes), (2.0, 4.0, 4.0, 4));
    }

    /// vLLM's speculative-decoding counters (as 0.32 names them) give the acceptance rate and
    /// the tokens per step; TensorRT-LLM's own acceptance-length gauge stands in for the second.
    #[test]
    fn speculative_decoding_acceptance_from_vllm_counters_and_tensorrt_llm_gauges() {
        let vllm = |drafts: f64, proposed: f64, accepted: f64| {
            parse(&format!(
                "# TYPE vllm:spec_decode_num_drafts counter\nvllm:spec_decode_num_drafts_total{{engine=\"0\",model_name=\"m\"}} {drafts}\n\
                 # TYPE vllm:spec_decode_num_draft_tokens counter\nvllm:spec_decode_num_draft_tokens_total{{engine=\"0\",model_name=\"m\"}} {proposed}\n\
                 # TYPE vllm:spec_decode_num_accepted_tokens counter\nvllm:spec_decode_num_accepted_tokens_total{{engine=\"0\",model_name=\"m\"}} {accepted}\n"
            ))
            .expect("parses")
        };
        let mut c = Collector::new(1000);
        c.add_server("agg_0", "agg", "http://a");
        c.round(1.0, Phase::Start);
        c.record("agg_0", vllm(10.0, 20.0, 12.0));
        c.round(2.0, Phase::End);
        // 100 drafts of 2 tokens, 120 of the 200 accepted.
        c.record("agg_0", vllm(110.0, 220.0, 132.0));
        let m = c.finish().measures;
        assert_eq!(m.spec_acceptance_rate, Some(0.6));
        assert_eq!(m.spec_tokens_per_step, Some(2.2));
        assert_eq!(m.families["spec_accepted_tokens"], "vllm:spec_decode_num_accepted_tokens");

        let trtllm = |proposed: f64, accepted: f64, length: f64| {
            parse(&format!(
                "# TYPE trtllm_spec_decode_num_draft_tokens counter\ntrtllm_spec_decode_num_draft_tokens_total{{model_name=\"m\",engine_type=\"trtllm\"}} {proposed}\n\
                 # TYPE trtllm_spec_decode_num_accepted_tokens counter\ntrtllm_spec_decode_num_accepted_tokens_total{{model_name=\"m\",engine_type=\"trtllm\"}} {accepted}\n\
                 # TYPE trtllm_spec_decode_acceptance_length gauge\ntrtllm_spec_decode_acceptance_length{{model_name=\"m\",engine_type=\"trtllm\"}} {length}\n"
            ))
            .expect("parses")
        };
        let mut c = Collector::new(1000);
        c.add_server("agg_0", "agg", "http://a");
        c.round(1.0, Phase::Start);
        c.record("agg_0", trtllm(0.0, 0.0, 2.5));
        c.round(2.0, Phase::During);
        c.record("agg_0", trtllm(30.0, 21.0, 2.7));
        c.round(3.0, Phase::End);
        c.record("agg_0", trtllm(300.0, 210.0, 2.9));
        let m = c.finish().measures;
        assert_eq!(m.spec_acceptance_rate, Some(0.7));
        let per_step = m.spec_tokens_per_step.expect("the gauge");
        assert!((per_step - 2.7).abs() < 1e-9, "{per_step}");

        // SGLang serves both as gauges (its collector's `spec_accept_rate`, `spec_accept_length`).
        let sglang = |rate: f64, length: f64| {
            parse(&format!(
                "# TYPE sglang:spec_accept_rate gauge\nsglang:spec_accept_rate{{model_name=\"m\",tp_rank=\"0\"}} {rate}\n\
                 # TYPE sglang:spec_accept_length gauge\nsglang:spec_accept_length{{model_name=\"m\",tp_rank=\"0\"}} {length}\n"
            ))
            .expect("parses")
        };
        let mut c = Collector::new(1000);
        c.add_server("agg_0", "agg", "http://a");
        c.round(1.0, Phase::Start);
        c.record("agg_0", sglang(0.5, 2.0));
        c.round(2.0, Phase::During);
        c.record("agg_0", sglang(0.6, 2.2));
        c.round(3.0, Phase::End);
        c.record("agg_0", sglang(0.7, 2.4));
        let m = c.finish().measures;
        assert!((m.spec_acceptance_rate.expect("the gauge") - 0.6).abs() < 1e-9, "{m:?}");
        assert!((m.spec_tokens_per_step.expect("the gauge") - 2.2).abs() < 1e-9, "{m:?}");
        assert_eq!(m.families["spec_acceptance_rate"], "sglang:spec_accept_rate");
    }

    /// A frontend that serves the family is read alone: its workers saw the same requests.
    #[test]
    fn the_frontends_histogram_is_preferred_and_prefill_tokens_are_not_answers() {
        let mut c = Collector::new(1000);
        c.add_server("ctx_0", "ctx", "http://c");
        c.add_server("gen_0", "gen", "http://g");
        let tokens = |n: f64| {
            parse(&format!(
                "# TYPE sweep_mock_generation_tokens counter\nsweep_mock_generation_tokens_total {n}\n"
            ))
            .expect("parses")
        };
        c.round(1.0, Phase::Start);
        c.record("ctx_0", tokens(0.0));
        c.record("gen_0", tokens(0.0));
        c.round(2.0, Phase::End);
        c.record("ctx_0", tokens(10.0));
        c.record("gen_0", tokens(640.0));
        assert_eq!(c.finish().measures.output_tokens, Some(640.0));

        let mut c = Collector::new(1000);
        c.add_server("agg_0", "agg", "http://a");
        c.add_server("disagg_server_0", "frontend", "http://f");
        let base = histogram(&[("0.1", 0.0), ("+Inf", 0.0)], 0.0, 0.0);
        let last = histogram(&[("0.1", 4.0), ("+Inf", 4.0)], 0.2, 4.0);
        c.round(1.0, Phase::Start);
        c.record("agg_0", parse(&base).expect("parses"));
        c.record("disagg_server_0", parse(&base).expect("parses"));
        c.round(2.0, Phase::End);
        c.record("agg_0", parse(&last).expect("parses"));
        c.record("disagg_server_0", parse(&last).expect("parses"));
        let ttft = c.finish().measures.time_to_first_token.expect("ttft");
        assert_eq!(ttft.count, 4.0, "not 8: the worker's copy is left out");
        assert!((ttft.mean_ms.expect("mean") - 50.0).abs() < 1e-9);
    }

    /// Counters are differenced between the start and end scrapes only: a warm-up scrape is not
    /// a base, and a point whose measured requests never started has no counter figures.
    #[test]
    fn counters_span_the_start_and_end_scrapes_only() {
        let tokens = |n: f64| {
            parse(&format!(
                "# TYPE sweep_mock_generation_tokens counter\nsweep_mock_generation_tokens_total {n}\n"
            ))
            .expect("parses")
        };
        let mut c = Collector::new(1000);
        c.add_server("agg_0", "agg", "http://a");
        for (time, phase, n) in [
            (0.0, Phase::Before, 5.0),
            (1.0, Phase::Start, 40.0),
            (2.0, Phase::During, 70.0),
            (3.0, Phase::End, 100.0),
        ] {
            c.round(time, phase);
            c.record("agg_0", tokens(n));
        }
        let s = c.finish();
        assert_eq!(s.measures.output_tokens, Some(60.0));
        assert_eq!(s.servers["agg_0"].counters["sweep_mock_generation_tokens_total"], 60.0);
        assert!(s.notes.is_empty(), "{:?}", s.notes);

        let mut c = Collector::new(1000);
        c.add_server("agg_0", "agg", "http://a");
        for (time, phase, n) in [(0.0, Phase::Before, 5.0), (1.0, Phase::End, 9.0)] {
            c.round(time, phase);
            c.record("agg_0", tokens(n));
        }
        let s = c.finish();
        assert!(s.servers["agg_0"].counters.is_empty());
        assert_eq!(s.measures.output_tokens, None, "nothing was measured, which is not zero");
        assert_eq!(s.notes, vec!["the measured requests never started: no counter or histogram figures"]);
    }
}
