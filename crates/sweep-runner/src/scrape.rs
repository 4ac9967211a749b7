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

mod endpoint;

use crate::RunnerError;
use std::path::Path;
use std::time::{Duration, Instant};

use endpoint::{Endpoint, Failure};
use nix::time::ClockId;

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
    ) -> Result<Self, RunnerError> {
        let log = ScrapeLog::open(dir)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|source| RunnerError::Process { what: "start the scraper's runtime", source })?;
        // Every endpoint's URL is read before anything is scraped: one that is not an http://
        // URL is an error of the start, said before the point runs.
        let query = gauges_query();
        let targets = targets
            .into_iter()
            .map(|t| {
                let endpoint = Endpoint::new(&t.url, &query)
                    .map_err(|problem| RunnerError::Scrape { url: t.url.clone(), problem })?;
                Ok((t, State { endpoint, gone: false, noted_garbage: false, noted_slow: false }))
            })
            .collect::<Result<Vec<_>, RunnerError>>()?;
        // A scrape slower than the interval would stack rounds up; one that takes seconds is
        // noted and skipped.
        let timeout = interval.max(Duration::from_secs(2));
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        measured.watch();
        let thread = {
            let interval_ms = interval.as_millis() as u64;
            std::thread::Builder::new()
                .name("scrape".into())
                .spawn(move || {
                    let mut run = Run {
                        collector: sweep_prom::Collector::new(interval_ms),
                        targets,
                        timeout,
                        log,
                        log_failed: false,
                    };
                    for (t, _) in &run.targets {
                        run.collector.add_server(&t.name, &t.role, &t.url);
                    }
                    let window = runtime.block_on(run.rounds(interval, &mut stopped, &measured));
                    // Never leave the run waiting, whatever ended the rounds.
                    measured.acknowledge();
                    let mut summary = run.collector.finish();
                    summary.scraper_cpu_s = cpu_s(ClockId::CLOCK_THREAD_CPUTIME_ID);
                    if let Some((start, end)) = window {
                        summary.scraper_cpu_measured_s = Some(end.thread - start.thread);
                        summary.client_cpu_measured_s = Some(end.process - start.process);
                    }
                    summary
                })
                .map_err(|source| RunnerError::Process { what: "start the scraper's thread", source })?
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

#[derive(Debug)]
struct State {
    /// Asks for the whole exposition at the edges, and for the mapping's gauges only between
    /// them, by Prometheus' `name[]` filter: prometheus_client's `/metrics` (vLLM, SGLang)
    /// answers just those, a few hundred bytes instead of 50 KB; a server that ignores the
    /// filter answers everything, and only its gauges are read.
    endpoint: Endpoint,
    /// Not scraped again this point (noted why).
    gone: bool,
    /// Noted that its answer was not an exposition.
    noted_garbage: bool,
    noted_slow: bool,
}

struct Run {
    collector: sweep_prom::Collector,
    targets: Vec<(Target, State)>,
    timeout: Duration,
    log: ScrapeLog,
    log_failed: bool,
}

impl Run {
    /// Scrapes round after round until stopped; returns the CPU clocks at the end of the
    /// `start` round and at the beginning of the `end` one, when both were taken.
    async fn rounds(
        &mut self,
        interval: Duration,
        stop: &mut tokio::sync::watch::Receiver<bool>,
        measured: &MeasuredStart,
    ) -> Option<(Clocks, Clocks)> {
        let mut measuring = None;
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
            let ending = if phase == Phase::End { Clocks::now() } else { None };
            self.round(phase).await;
            match phase {
                Phase::End => return measuring.zip(ending),
                Phase::Start => {
                    measuring = Clocks::now();
                    measured.acknowledge();
                }
                _ => {}
            }
            next = Instant::now() + interval;
        }
    }

    async fn round(&mut self, phase: Phase) {
        let round = self.collector.round(sweep_folder::file::now(), phase);
        // Only the edges are differenced: the rounds before and between them read gauges.
        let gauges_only = matches!(phase, Phase::Before | Phase::During);
        let deadline = tokio::time::Instant::now() + self.timeout;
        let timed_out = || Failure::Transient("timed out".into());
        // Every request is written first, then the thread sleeps while the answers arrive, and
        // reads them together: a wake-up for each answer (64 a round) cost more than reading.
        let sent = futures_util::future::join_all(
            self.targets.iter_mut().enumerate().filter(|(_, (_, s))| !s.gone).map(|(i, (_, s))| async move {
                (i, tokio::time::timeout_at(deadline, s.endpoint.send(gauges_only)).await.is_ok())
            }),
        )
        .await;
        std::thread::sleep(SETTLE);
        // The same targets, in the same order: none is marked gone in between.
        let receiving = self.targets.iter_mut().filter(|(_, s)| !s.gone).zip(sent);
        let answers = futures_util::future::join_all(receiving.map(|((_, s), (i, sent))| async move {
            let answer = match sent {
                true => tokio::time::timeout_at(deadline, s.endpoint.receive(gauges_only))
                    .await
                    .unwrap_or_else(|_| Err(timed_out())),
                false => Err(timed_out()),
            };
            (i, answer, sweep_folder::file::now())
        }))
        .await;
        for (i, answer, time) in answers {
            let (target, state) = &mut self.targets[i];
            let name = &target.name;
            let text = answer.and_then(|()| {
                // The body as it came (no lossy decoding): a parse error names a line that is
                // not UTF-8.
                std::str::from_utf8(state.endpoint.body())
                    .map_err(|e| Failure::Transient(format!("not UTF-8: {e}")))
            });
            let written = match text {
                // Between the edges only gauges are read, and kept: every series of a vLLM server
                // is 50 KB a scrape, 3 MB/s of file for 64 servers.
                Ok(text) => {
                    match if gauges_only { sweep_prom::parse_gauges(text) } else { sweep_prom::parse(text) } {
                        Ok(exposition) => {
                            let written = self.log.append_exposition(time, round, phase, name, &exposition);
                            self.collector.record(name, exposition);
                            written
                        }
                        Err(e) => {
                            let first = !std::mem::replace(&mut state.noted_garbage, true);
                            let note = format!("{name}: {} is not a Prometheus exposition: {e}", target.url);
                            self.collector.failed(name, first.then_some(note));
                            self.log.append(&error_line(
                                time,
                                round,
                                phase,
                                name,
                                format!("not an exposition: {e}"),
                            ))
                        }
                    }
                }
                Err(Failure::Absent(why)) => {
                    state.gone = true;
                    self.collector.failed(
                        name,
                        Some(format!("{name}: no metrics at {} ({why}); not scraped", target.url)),
                    );
                    self.log.append(&error_line(time, round, phase, name, why))
                }
                Err(Failure::Transient(why)) => {
                    let first = !std::mem::replace(&mut state.noted_slow, true);
                    let note =
                        format!("{name}: a scrape of {} failed ({why}); later ones went on", target.url);
                    self.collector.failed(name, first.then_some(note));
                    self.log.append(&error_line(time, round, phase, name, why))
                }
            };
            note_log_failure(&mut self.log_failed, &mut self.collector, written);
        }
        let flushed = self.log.flush();
        note_log_failure(&mut self.log_failed, &mut self.collector, flushed);
    }
}

/// CPU seconds from one of the kernel's CPU clocks: this thread's, or the whole process's.
fn cpu_s(clock: ClockId) -> Option<f64> {
    let t = nix::time::clock_gettime(clock).ok()?;
    Some(t.tv_sec() as f64 + t.tv_nsec() as f64 * 1e-9)
}

/// The scraper thread's CPU seconds and the runner's, read together.
#[derive(Debug, Clone, Copy)]
struct Clocks {
    thread: f64,
    process: f64,
}

impl Clocks {
    fn now() -> Option<Self> {
        Some(Clocks {
            thread: cpu_s(ClockId::CLOCK_THREAD_CPUTIME_ID)?,
            process: cpu_s(ClockId::CLOCK_PROCESS_CPUTIME_ID)?,
        })
    }
}

/// Notes once that `server_metrics.jsonl` could not be written; the summary is still made.
fn note_log_failure(
    noted: &mut bool,
    collector: &mut sweep_prom::Collector,
    result: Result<(), sweep_folder::FolderError>,
) {
    if let Err(e) = result {
        if !std::mem::replace(noted, true) {
            // A note of the point's, not a failed scrape of a server's.
            collector.failed("", Some(format!("cannot append to server_metrics.jsonl: {e}")));
        }
    }
}

/// How long a round sleeps between writing its requests and reading the answers: a vLLM
/// server answers its `/metrics` in about 5 ms.
const SETTLE: Duration = Duration::from_millis(5);

/// The query asking for the mapping's gauges only: `name%5B%5D=vllm%3Anum_requests_running&…`.
fn gauges_query() -> String {
    sweep_prom::mapping::gauge_families()
        .map(|family| format!("name%5B%5D={}", family.replace(':', "%3A")))
        .collect::<Vec<_>>()
        .join("&")
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gauges_url_names_every_mapped_gauge_family() {
        let query = gauges_query();
        let url = Endpoint::new("http://10.0.0.1:8000/metrics", &query).expect("a URL").gauges_url();
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
        let url = Endpoint::new("http://h/metrics?x=1", &query).expect("a URL").gauges_url();
        assert!(url.starts_with("http://h/metrics?x=1&name%5B%5D="), "{url}");
    }
}
