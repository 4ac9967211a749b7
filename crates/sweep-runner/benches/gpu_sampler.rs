//! What GPU telemetry costs the benchmark step (issue 39: at most 1 % of one core sampling 8
//! GPUs at 10 Hz). The sampler reads a stand-in `nvidia-smi` (`scripts/bench/nvidia-smi-standin.sh`,
//! 8 GPUs, a line each every 100 ms) for `SECONDS` (default 60), taking a point's window every
//! 10 s as the benchmark step does, and prints this process's CPU time (user + system: the
//! reader and watchdog threads; the stand-in is a process of its own) as a share of one core.
//! `cargo bench -p sweep-runner --bench gpu_sampler`.

use std::time::{Duration, Instant};

/// This process's CPU seconds (user + system), from `/proc/self/stat` (clock ticks of 10 ms).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // The fields after the command name (which is in parentheses and may hold spaces).
    let rest = &stat[stat.rfind(')').expect("a command name") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().expect("utime") + fields[12].parse::<f64>().expect("stime");
    ticks / 100.0
}

fn main() {
    let standin = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/bench/nvidia-smi-standin.sh");
    let seconds: u64 = std::env::var("SECONDS_TO_RUN").ok().and_then(|s| s.parse().ok()).unwrap_or(60);
    let hosts = vec!["bench".to_owned()];
    let (cpu0, wall0) = (cpu_seconds(), Instant::now());
    let sampler = sweep_runner::gpu::Sampler::start_with(standin, &hosts, "bench", 100);
    let mut samples = 0;
    let mut notes = Vec::new();
    let mut start = sweep_runner::files::now();
    while wall0.elapsed() < Duration::from_secs(seconds) {
        std::thread::sleep(
            Duration::from_secs(10).min(Duration::from_secs(seconds).saturating_sub(wall0.elapsed())),
        );
        let end = sweep_runner::files::now();
        let (window, n) = sampler.window((start, end));
        let summary = sweep_folder::gpu_metrics::GpuSummary::of(&window, (start, end), 100, n.clone());
        samples += window.len();
        notes = n;
        assert_eq!(summary.gpus.len(), 8, "{summary:?}");
        sampler.forget_before(end);
        start = end;
    }
    let (cpu, wall) = (cpu_seconds() - cpu0, wall0.elapsed().as_secs_f64());
    drop(sampler);
    println!(
        "gpu sampler: 8 GPUs every 100 ms for {wall:.1} s: {samples} samples, {cpu:.2} CPU s = {:.3} % of one core{}",
        100.0 * cpu / wall,
        if notes.is_empty() { String::new() } else { format!(" (notes: {notes:?})") }
    );
}
