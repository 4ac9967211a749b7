//! Scraping the servers' Prometheus endpoints while a point runs (`engine.metrics`).
//!
//! A thread of its own, with its own single-threaded runtime, so the load generator's threads
//! never wait on it. Every `interval` it scrapes every target at once (a round). It also takes a
//! round between the warm-up and the first measured request (the load generator waits for it:
//! [`sweep_load::MeasuredStart`]) and one after the last answer, so the summary's counters and
//! histograms cover the measured requests exactly, not to the nearest interval. Each
//! round is appended to `server_metrics.jsonl` as it ends; the summary is made when the
//! point ends.
//!
//! A target that does not serve the path (nothing listens, as for Dynamo's workers, or 404) is
//! noted once and left alone for the rest of the point. An answer that is not an exposition is
//! noted once per target and scraped again next round.

use std::path::Path;
use std::time::{Duration, Instant};

use sweep_folder::server_metrics::{Phase, ScrapeLine, ScrapeLog, Summary};
use sweep_load::MeasuredStart;

/// One endpoint to scrape.
#[derive(Debug, Clone)]
pub struct Target {
    /// The server's name (`agg_0`, `disagg_server_0`).
    pub name: String,
    /// `ctx`, `gen`, `agg` or `frontend`.
    pub role: String,
    /// The whole URL, `http://host:port/metrics`.
    pub url: String,
}

/// A running scraper; [`Scraper::finish`] takes the last round and returns the summary.
#[derive(Debug)]
pub struct Scraper {
    stop: tokio::sync::watch::Sender<bool>,
    thread: std::thread::JoinHandle<Summary>,
}

impl Scraper {
    /// Starts scraping now (a first round before the warm-up ends), into `dir`'s
    /// `server_metrics.jsonl`.
    pub fn start(
        dir: &Path,
        targets: Vec<Target>,
        interval: Duration,
        measured: MeasuredStart,
    ) -> Result<Self, String> {
        let log = ScrapeLog::open(dir).map_err(|e| e.to_string())?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the scraper's runtime: {e}"))?;
        // A scrape slower than the interval would stack rounds up; one that takes seconds is
        // noted and skipped.
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(interval.max(Duration::from_secs(2)))
            .build()
            .map_err(|e| format!("cannot build the scraper's HTTP client: {e}"))?;
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        measured.watch();
        let thread = {
            let interval_ms = interval.as_millis() as u64;
            std::thread::Builder::new()
                .name("scrape".into())
                .spawn(move || {
                    let mut run = Run {
                        collector: sweep_prom::Collector::new(interval_ms),
                        targets: targets
                            .into_iter()
                            .map(|t| {
                                let gauges_url = gauges_url(&t.url);
                                (t, State { gauges_url, ..State::default() })
                            })
                            .collect(),
                        client,
                        log,
                        log_failed: false,
                    };
                    for (t, _) in &run.targets {
                        run.collector.add_server(&t.name, &t.role, &t.url);
                    }
                    runtime.block_on(run.rounds(interval, &mut stopped, &measured));
                    // Never leave the run waiting, whatever ended the rounds.
                    measured.acknowledge();
                    run.collector.finish()
                })
                .map_err(|e| format!("cannot start the scraper's thread: {e}"))?
        };
        Ok(Scraper { stop, thread })
    }

    /// Takes the round after the last answer, stops, and returns the point's summary.
    pub fn finish(self) -> Summary {
        let _ = self.stop.send(true);
        self.thread.join().unwrap_or_else(|_| Summary {
            notes: vec!["the scraper's thread panicked; its scrapes are in server_metrics.jsonl".into()],
            ..Default::default()
        })
    }
}

#[derive(Debug, Default)]
struct State {
    /// The URL of the rounds between the edges: the mapping's gauges only, by Prometheus'
    /// `name[]` filter. prometheus_client's `/metrics` (vLLM, SGLang) answers just those, a few
    /// hundred bytes instead of 50 KB; a server that ignores the filter answers everything, and
    /// only its gauges are read.
    gauges_url: String,
    /// Not scraped again this point (noted why).
    gone: bool,
    /// Noted that its answer was not an exposition.
    noted_garbage: bool,
    noted_slow: bool,
}

struct Run {
    collector: sweep_prom::Collector,
    targets: Vec<(Target, State)>,
    client: reqwest::Client,
    log: ScrapeLog,
    log_failed: bool,
}

impl Run {
    async fn rounds(
        &mut self,
        interval: Duration,
        stop: &mut tokio::sync::watch::Receiver<bool>,
        measured: &MeasuredStart,
    ) {
        let mut started = false;
        let mut stopping = false;
        let mut next = Instant::now();
        loop {
            let now = Instant::now();
            let phase = if stopping || *stop.borrow() {
                Phase::End
            } else if !started && measured.get().is_some() {
                started = true;
                Phase::Start
            } else if now >= next {
                if started {
                    Phase::During
                } else {
                    Phase::Before
                }
            } else {
                // Until the measured requests start, their start is looked for every 10 ms (the
                // load generator waits for that round); then the thread sleeps until the next
                // round or the stop.
                let wake = if started { next } else { next.min(now + Duration::from_millis(10)) };
                tokio::select! {
                    _ = tokio::time::sleep_until(wake.into()) => {}
                    changed = stop.changed() => stopping = changed.is_err() || *stop.borrow(),
                }
                continue;
            };
            self.round(phase).await;
            match phase {
                Phase::End => return,
                Phase::Start => measured.acknowledge(),
                _ => {}
            }
            next = Instant::now() + interval;
        }
    }

    async fn round(&mut self, phase: Phase) {
        let round = self.collector.round(sweep_folder::file::now(), phase);
        let client = &self.client;
        let answers = futures_util::future::join_all(self.targets.iter().filter(|(_, s)| !s.gone).map(
            |(t, s)| async move {
                let url = if phase == Phase::During { &s.gauges_url } else { &t.url };
                let answer = get(client, url).await;
                (t.name.clone(), answer, sweep_folder::file::now())
            },
        ))
        .await;
        for (name, answer, time) in answers {
            let Some((target, state)) = self.targets.iter_mut().find(|(t, _)| t.name == name) else {
                continue;
            };
            let line = match answer {
                // Between the edges only gauges are read, and kept: every series of a vLLM server
                // is 50 KB a scrape, 3 MB/s of file for 64 servers.
                Ok(text) => match if phase == Phase::During {
                    sweep_prom::parse_gauges(&text)
                } else {
                    sweep_prom::parse(&text)
                } {
                    Ok(exposition) => {
                        let keys: Vec<String> =
                            exposition.samples.iter().map(sweep_prom::Sample::key).collect();
                        let line = ScrapeLine::from_exposition(time, round, phase, &name, &exposition, &keys);
                        self.collector.record_keyed(&name, exposition, &keys);
                        line
                    }
                    Err(e) => {
                        let first = !std::mem::replace(&mut state.noted_garbage, true);
                        let note = format!("{name}: {} is not a Prometheus exposition: {e}", target.url);
                        self.collector.failed(&name, first.then_some(note));
                        error_line(time, round, phase, &name, format!("not an exposition: {e}"))
                    }
                },
                Err(Failure::Absent(why)) => {
                    state.gone = true;
                    self.collector.failed(
                        &name,
                        Some(format!("{name}: no metrics at {} ({why}); not scraped", target.url)),
                    );
                    error_line(time, round, phase, &name, why)
                }
                Err(Failure::Transient(why)) => {
                    let first = !std::mem::replace(&mut state.noted_slow, true);
                    let note =
                        format!("{name}: a scrape of {} failed ({why}); later ones went on", target.url);
                    self.collector.failed(&name, first.then_some(note));
                    error_line(time, round, phase, &name, why)
                }
            };
            if let Err(e) = self.log.append(&line) {
                if !std::mem::replace(&mut self.log_failed, true) {
                    self.collector.failed(&name, Some(format!("cannot append to server_metrics.jsonl: {e}")));
                }
            }
        }
    }
}

/// `url` asking for the mapping's gauges only: `?name%5B%5D=vllm%3Anum_requests_running&…`.
fn gauges_url(url: &str) -> String {
    let mut out = url.to_owned();
    for (i, family) in sweep_prom::mapping::gauge_families().enumerate() {
        let separator = if i == 0 && !url.contains('?') { '?' } else { '&' };
        out.push(separator);
        out.push_str("name%5B%5D=");
        out.push_str(&family.replace(':', "%3A"));
    }
    out
}

fn error_line(time: f64, round: usize, phase: Phase, server: &str, error: String) -> ScrapeLine {
    ScrapeLine {
        time,
        round,
        phase,
        server: server.to_owned(),
        samples: Default::default(),
        error: Some(error),
    }
}

enum Failure {
    /// The server does not serve the path: nothing listens there, or it answers 404.
    Absent(String),
    /// A timeout, a 5xx: the next round may do better.
    Transient(String),
}

async fn get(client: &reqwest::Client, url: &str) -> Result<String, Failure> {
    let response = client.get(url).send().await.map_err(|e| {
        if e.is_connect() {
            Failure::Absent("connection refused".into())
        } else if e.is_timeout() {
            Failure::Transient("timed out".into())
        } else {
            Failure::Transient(e.to_string())
        }
    })?;
    let status = response.status();
    if status == reqwest::StatusCode::NOT_FOUND || status == reqwest::StatusCode::METHOD_NOT_ALLOWED {
        return Err(Failure::Absent(format!("HTTP {}", status.as_u16())));
    }
    if !status.is_success() {
        return Err(Failure::Transient(format!("HTTP {}", status.as_u16())));
    }
    // The body as it came (no lossy decoding into a new string): a parse error names a line
    // that is not UTF-8.
    let bytes = response.bytes().await.map_err(|e| Failure::Transient(e.to_string()))?;
    String::from_utf8(bytes.into()).map_err(|e| Failure::Transient(format!("not UTF-8: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gauges_url_names_every_mapped_gauge_family() {
        let url = gauges_url("http://10.0.0.1:8000/metrics");
        assert!(
            url.starts_with("http://10.0.0.1:8000/metrics?name%5B%5D=vllm%3Anum_requests_running&"),
            "{url}"
        );
        for family in
            ["vllm%3Akv_cache_usage_perc", "sglang%3Anum_queue_reqs", "sweep_mock_num_requests_waiting"]
        {
            assert!(url.contains(&format!("&name%5B%5D={family}")), "{family}: {url}");
        }
        assert!(!url.contains("time_to_first_token"), "no histogram: {url}");
        assert!(gauges_url("http://h/metrics?x=1").starts_with("http://h/metrics?x=1&name%5B%5D="));
    }
}
