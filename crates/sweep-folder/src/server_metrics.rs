//! A point's scrapes of its servers' Prometheus `/metrics` (`engine.metrics`), written by the
//! benchmark step and read by `sweep aggregate` and the report:
//!
//! - `points/<id>/server_metrics.jsonl`: one [`ScrapeLine`] per server and scrape, appended and
//!   flushed after each round of scrapes, so a point cut short keeps what was seen;
//! - `points/<id>/server_metrics.json`: the point's [`Summary`] (written once, atomically, when
//!   the point ends): counter increases and histogram quantiles over the measured phase, gauge
//!   statistics, the table's measures, and what could not be scraped.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::FolderError;

pub use sweep_prom::summary::{GaugeStats, HistogramStats, Latency, Level, Measures, ServerSummary};
pub use sweep_prom::Phase;

/// `server_metrics.json`.
pub type Summary = sweep_prom::PointSummary;

/// File names in a point's folder.
pub const SCRAPES: &str = "server_metrics.jsonl";
pub const SUMMARY: &str = "server_metrics.json";

/// One scrape of one server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScrapeLine {
    /// Unix seconds when the scrape's answer arrived.
    pub time: f64,
    /// Scrapes of all servers that started together share a round.
    pub round: usize,
    pub phase: Phase,
    pub server: String,
    /// Every sample by series key (`name{label="value",…}`, labels sorted); `null` for a value
    /// that is not finite (`NaN`, `±Inf`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub samples: BTreeMap<String, Option<f64>>,
    /// Why this scrape has no samples.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// [`ScrapeLine`] as the runner writes it, borrowing the scrape: the same JSON, without
/// copying a 50 KB exposition's 425 keys into a map for every edge scrape.
#[derive(Serialize)]
struct ScrapeLineOf<'a> {
    time: f64,
    round: usize,
    phase: Phase,
    server: &'a str,
    #[serde(skip_serializing_if = "Samples::is_empty")]
    samples: Samples<'a>,
}

/// An exposition's samples by key, written as [`ScrapeLine::samples`] is (served order; a
/// reader's map sorts them).
struct Samples<'a>(&'a sweep_prom::Exposition);

impl Samples<'_> {
    fn is_empty(&self) -> bool {
        self.0.samples.is_empty()
    }
}

impl Serialize for Samples<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer
            .collect_map(self.0.samples.iter().map(|s| (s.key(), Some(s.value).filter(|v| v.is_finite()))))
    }
}

/// Appends [`ScrapeLine`]s to `server_metrics.jsonl`; the runner flushes after each round.
#[derive(Debug)]
pub struct ScrapeLog {
    path: PathBuf,
    file: std::fs::File,
    /// The lines appended since the last flush, written in one go: a round's edge scrapes of
    /// 64 vLLM servers are 4 MB of JSON, and written in a buffered writer's 8 KB pieces they
    /// cost the scraper as much again as serializing them.
    pending: Vec<u8>,
}

impl ScrapeLog {
    pub fn open(dir: &Path) -> Result<Self, FolderError> {
        let path = dir.join(SCRAPES);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|source| FolderError::Write { path: path.clone(), source })?;
        Ok(ScrapeLog { path, file, pending: Vec::new() })
    }

    /// A scrape that failed, or any line.
    pub fn append(&mut self, line: &ScrapeLine) -> Result<(), FolderError> {
        self.write(line)
    }

    /// A scrape's samples.
    pub fn append_exposition(
        &mut self,
        time: f64,
        round: usize,
        phase: Phase,
        server: &str,
        exposition: &sweep_prom::Exposition,
    ) -> Result<(), FolderError> {
        self.write(&ScrapeLineOf { time, round, phase, server, samples: Samples(exposition) })
    }

    fn write(&mut self, line: &impl Serialize) -> Result<(), FolderError> {
        let before = self.pending.len();
        let written = serde_json::to_writer(&mut self.pending, line);
        self.pending.push(b'\n');
        written.map_err(|e| {
            // Nothing of a line that could not be serialized is kept.
            self.pending.truncate(before);
            FolderError::Write { path: self.path.clone(), source: std::io::Error::other(e) }
        })
    }

    /// Writes out what was appended: once a round, so a point cut short keeps every round but
    /// the one under way.
    pub fn flush(&mut self) -> Result<(), FolderError> {
        let written = self.file.write_all(&self.pending);
        self.pending.clear();
        written.map_err(|source| FolderError::Write { path: self.path.clone(), source })
    }
}

impl Drop for ScrapeLog {
    /// What was appended after the last flush is written still, as a buffered writer would.
    fn drop(&mut self) {
        let _ = self.file.write_all(&self.pending);
    }
}

/// Reads `server_metrics.jsonl`; a line that does not parse (the last one, cut by a crash) is
/// skipped and counted.
pub fn read_scrapes(path: &Path) -> Result<(Vec<ScrapeLine>, usize), FolderError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| FolderError::Read { path: path.to_owned(), source })?;
    let mut lines = Vec::new();
    let mut skipped = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        match serde_json::from_str(line) {
            Ok(l) => lines.push(l),
            Err(_) => skipped += 1,
        }
    }
    Ok((lines, skipped))
}

/// One scrape round of what the report plots over a point.
#[derive(Debug, Clone, PartialEq)]
pub struct TimelinePoint {
    /// Unix seconds of the round's first answer.
    pub time: f64,
    pub phase: Phase,
    /// Summed over servers.
    pub requests_running: Option<f64>,
    pub requests_waiting: Option<f64>,
    /// The fullest server's, 0 to 1.
    pub kv_cache_usage: Option<f64>,
}

/// Each round's requests running and waiting and KV-cache usage, read from the families the
/// summary used (`Measures::families`), in round order.
pub fn timeline(path: &Path, families: &BTreeMap<String, String>) -> Result<Vec<TimelinePoint>, FolderError> {
    let (lines, _) = read_scrapes(path)?;
    let family = |measure: &str| families.get(measure).map(String::as_str);
    let (running, waiting, kv) =
        (family("requests_running"), family("requests_waiting"), family("kv_cache_usage"));
    let mut rounds: BTreeMap<usize, TimelinePoint> = BTreeMap::new();
    for line in &lines {
        let point = rounds.entry(line.round).or_insert(TimelinePoint {
            time: line.time,
            phase: line.phase,
            requests_running: None,
            requests_waiting: None,
            kv_cache_usage: None,
        });
        point.time = point.time.min(line.time);
        for (key, value) in &line.samples {
            let (Some(value), name) = (value, key.split('{').next().unwrap_or(key)) else { continue };
            let add = |slot: &mut Option<f64>, f: fn(f64, f64) -> f64| {
                *slot = Some(slot.map_or(*value, |v| f(v, *value)))
            };
            if Some(name) == running {
                add(&mut point.requests_running, |a, b| a + b);
            } else if Some(name) == waiting {
                add(&mut point.requests_waiting, |a, b| a + b);
            } else if Some(name) == kv {
                add(&mut point.kv_cache_usage, f64::max);
            }
        }
    }
    Ok(rounds.into_values().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrape_lines_round_trip_with_values_that_are_not_finite() {
        let e = sweep_prom::parse("b NaN\na{x=\"1\"} 2\n").expect("parses");
        let line = ScrapeLine {
            time: 1.5,
            round: 3,
            phase: Phase::During,
            server: "agg_0".into(),
            samples: BTreeMap::from([("a{x=\"1\"}".into(), Some(2.0)), ("b".into(), None)]),
            error: None,
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = ScrapeLog::open(dir.path()).expect("opens");
        log.append_exposition(1.5, 3, Phase::During, "agg_0", &e).expect("appends");
        log.append(&ScrapeLine { error: Some("404".into()), samples: BTreeMap::new(), ..line.clone() })
            .expect("appends");
        log.flush().expect("flushes");
        std::fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join(SCRAPES))
            .expect("opens")
            .write_all(b"{\"time\": 2, \"rou")
            .expect("writes");
        let (lines, skipped) = read_scrapes(&dir.path().join(SCRAPES)).expect("reads");
        assert_eq!(skipped, 1, "the cut line");
        assert_eq!(lines[0], line);
        assert_eq!(lines[0].samples["a{x=\"1\"}"], Some(2.0));
        assert_eq!(lines[0].samples["b"], None);
        assert_eq!(lines[1].error.as_deref(), Some("404"));
    }

    #[test]
    fn the_timeline_sums_running_over_servers_and_takes_the_fullest_kv_cache() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = ScrapeLog::open(dir.path()).expect("opens");
        for (round, server, running, kv) in
            [(0, "a", 1.0, 0.5), (0, "b", 2.0, 0.25), (1, "a", 3.0, 0.1), (1, "b", 4.0, 0.75)]
        {
            let e = sweep_prom::parse(&format!(
                "# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running{{engine=\"0\"}} {running}\n\
                 # TYPE vllm:kv_cache_usage_perc gauge\nvllm:kv_cache_usage_perc{{engine=\"0\"}} {kv}\n"
            ))
            .expect("parses");
            log.append_exposition(10.0 + round as f64, round, Phase::During, server, &e).expect("appends");
        }
        log.flush().expect("flushes");
        let families = BTreeMap::from([
            ("requests_running".to_owned(), "vllm:num_requests_running".to_owned()),
            ("kv_cache_usage".to_owned(), "vllm:kv_cache_usage_perc".to_owned()),
        ]);
        let t = timeline(&dir.path().join(SCRAPES), &families).expect("reads");
        assert_eq!(t.len(), 2);
        assert_eq!(
            (t[0].time, t[0].requests_running, t[0].kv_cache_usage, t[0].requests_waiting),
            (10.0, Some(3.0), Some(0.5), None)
        );
        assert_eq!((t[1].requests_running, t[1].kv_cache_usage), (Some(7.0), Some(0.75)));
    }
}
