//! `cargo bench -p sweep-prom`: parsing a real vLLM 0.32 exposition (425 samples, 50 KB, saved
//! from a CPU server here: tests/fixtures/prometheus/) and a real Dynamo 1.6.1 frontend's (the
//! parse builds each sample's series key, as `server_metrics.jsonl` stores it; the second line
//! also reads every key), and a point's summary of two scrapes. Prints the median
//! and p90 of many runs of each; the target for the vLLM parse is 200 µs.

use std::time::{Duration, Instant};

fn fixture(name: &str) -> String {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/prometheus").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Median and p90 of `runs` timings of `f`, after a warm-up.
fn time(runs: usize, mut f: impl FnMut()) -> (Duration, Duration) {
    for _ in 0..runs / 10 {
        f();
    }
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    times.sort();
    (times[runs / 2], times[runs * 9 / 10])
}

fn main() {
    for name in ["vllm-0.32.0-cpu.metrics", "dynamo-1.6.1-frontend.metrics"] {
        let text = fixture(name);
        let samples = sweep_prom::parse(&text).expect("parses").samples.len();
        let (p50, p90) = time(5000, || {
            std::hint::black_box(sweep_prom::parse(std::hint::black_box(&text)).expect("parses"));
        });
        println!("parse {name} ({samples} samples, {} bytes): median {p50:?}, p90 {p90:?}", text.len());
        let (p50, p90) = time(5000, || {
            let e = sweep_prom::parse(&text).expect("parses");
            std::hint::black_box(e.samples.iter().map(|s| s.key().len()).sum::<usize>());
        });
        println!("parse and key every series {name}: median {p50:?}, p90 {p90:?}");
        let e = sweep_prom::parse(&text).expect("parses");
        let (p50, p90) = time(2000, || {
            let mut c = sweep_prom::Collector::new(1000);
            c.add_server("a", "agg", "http://a/metrics");
            c.round(0.0, sweep_prom::Phase::Start);
            c.record("a", e.clone());
            c.round(1.0, sweep_prom::Phase::End);
            c.record("a", e.clone());
            std::hint::black_box(c.finish());
        });
        println!("summary of two scrapes {name}: median {p50:?}, p90 {p90:?}");
    }
}
