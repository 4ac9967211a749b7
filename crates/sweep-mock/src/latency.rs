//! The engine's own clock, as real engines serve it on `/metrics`: Prometheus histograms of
//! time to first token (from the request's arrival to its first token leaving) and of the gaps
//! between tokens. The client's figures should sit just above these; the difference is the
//! network, HTTP and the client itself.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds in seconds: finer than vLLM's below 100 ms, where the simulated engine's
/// latencies are, so a quantile read from the buckets is within a millisecond or two.
const BOUNDS: &[f64] = &[
    0.001, 0.002, 0.003, 0.004, 0.005, 0.006, 0.008, 0.01, 0.0125, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05,
    0.06, 0.08, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// A histogram updated by request tasks without a lock.
#[derive(Debug)]
pub struct Histogram {
    name: &'static str,
    help: &'static str,
    /// Per bucket (not cumulative); the last is `+Inf`.
    counts: Vec<AtomicU64>,
    sum_ns: AtomicU64,
}

impl Histogram {
    pub fn new(name: &'static str, help: &'static str) -> Self {
        Histogram {
            name,
            help,
            counts: (0..=BOUNDS.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_ns: AtomicU64::new(0),
        }
    }

    /// Records `n` observations of `each`.
    pub fn observe(&self, each: Duration, n: u64) {
        let seconds = each.as_secs_f64();
        let bucket = BOUNDS.iter().position(|&b| seconds <= b).unwrap_or(BOUNDS.len());
        self.counts[bucket].fetch_add(n, Ordering::Relaxed);
        self.sum_ns.fetch_add(each.as_nanos() as u64 * n, Ordering::Relaxed);
    }

    /// The exposition's lines, with `labels` (`role="agg"`) on every sample.
    pub fn render(&self, labels: &str, out: &mut String) {
        use std::fmt::Write;
        let name = self.name;
        let _ = writeln!(out, "# HELP {name} {}\n# TYPE {name} histogram", self.help);
        let mut cumulative = 0;
        for (i, count) in self.counts.iter().enumerate() {
            cumulative += count.load(Ordering::Relaxed);
            let le = BOUNDS.get(i).map_or("+Inf".to_owned(), |b| b.to_string());
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {cumulative}");
        }
        let sum = self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}\n{name}_count{{{labels}}} {cumulative}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_cumulative_buckets_that_parse() {
        let h = Histogram::new("sweep_mock_time_to_first_token_seconds", "TTFT.");
        h.observe(Duration::from_micros(1500), 1);
        h.observe(Duration::from_millis(7), 3);
        h.observe(Duration::from_secs(100), 1);
        let mut text = String::new();
        h.render("role=\"agg\"", &mut text);
        let e = sweep_prom::parse(&text).expect("parses");
        let buckets =
            &sweep_prom::summary::histograms(&e)["sweep_mock_time_to_first_token_seconds{role=\"agg\"}"];
        assert_eq!(buckets.count, 5.0);
        assert!((buckets.sum - (0.0015 + 0.021 + 100.0)).abs() < 1e-9);
        let at = |le: f64| buckets.buckets.iter().find(|b| b.0 == le).expect("bound").1;
        assert_eq!(
            (at(0.001), at(0.002), at(0.006), at(0.008), at(60.0), at(f64::INFINITY)),
            (0.0, 1.0, 1.0, 4.0, 4.0, 5.0)
        );
    }
}
