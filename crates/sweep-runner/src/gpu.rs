//! GPU telemetry (`engine.metrics.gpu_interval_ms`, `docs/metrics.md`): one `nvidia-smi` per node
//! of the job, started once and streaming a line per GPU every interval (`-lms`), each read by a
//! thread into one list of samples; each point keeps the samples of its measured window.
//!
//! With `engine.metrics.dcgm_url`, a DCGM exporter's Prometheus endpoint on each node is read
//! every interval instead ([`Sampler::start_dcgm`]).
//!
//! Faults are notes, never errors, and never block a point: no `nvidia-smi` on a node (no GPUs),
//! one that prints something unexpected (each line left out, noted once per node), and one that
//! hangs (nothing for [`SILENCE`] or ten intervals: it is stopped and noted); an exporter that
//! does not answer, or answers without DCGM's series, is noted once per node and asked again.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sweep_folder::gpu_metrics::Sample;

/// What each line holds, in order (`--format=csv,noheader,nounits`).
pub const QUERY: &str = "index,power.draw,utilization.gpu,memory.used,clocks.sm";
/// The least silence after which a sampler is taken to hang.
pub const SILENCE: Duration = Duration::from_secs(5);

#[derive(Default)]
struct State {
    samples: Vec<Sample>,
    notes: BTreeSet<String>,
}

struct Node {
    child: Arc<Mutex<Option<Child>>>,
}

pub struct Sampler {
    state: Arc<Mutex<State>>,
    nodes: Vec<Node>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    interval_ms: u64,
}

/// The sampling program: `$SWEEP_NVIDIA_SMI` (a stand-in, in tests and the benchmark) or
/// `nvidia-smi`.
fn program() -> String {
    std::env::var("SWEEP_NVIDIA_SMI").unwrap_or_else(|_| "nvidia-smi".to_owned())
}

impl Sampler {
    /// Starts sampling every GPU of `hosts` every `interval_ms`: this node's `nvidia-smi`
    /// directly, another node's through `srun --overlap` in this SLURM job.
    pub fn start(hosts: &[String], this: &str, interval_ms: u64) -> Sampler {
        Sampler::start_with(&program(), hosts, this, interval_ms)
    }

    /// [`Sampler::start`] with `smi` as the sampling program.
    pub fn start_with(smi: &str, hosts: &[String], this: &str, interval_ms: u64) -> Sampler {
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let smi = smi.to_owned();
        let args = [
            format!("--query-gpu={QUERY}"),
            "--format=csv,noheader,nounits".to_owned(),
            format!("--loop-ms={interval_ms}"),
        ];
        let job = std::env::var("SLURM_JOB_ID").ok();
        let mut nodes = Vec::new();
        for host in hosts {
            let mut command = match (&job, host == this) {
                (Some(job), false) => {
                    let mut c = Command::new("srun");
                    c.args([
                        "--overlap",
                        "--jobid",
                        job,
                        "--nodes=1",
                        "--ntasks=1",
                        "--nodelist",
                        host,
                        "--quiet",
                    ]);
                    c.arg(&smi);
                    c
                }
                _ => Command::new(&smi),
            };
            command.args(&args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::null());
            let mut child = match command.spawn() {
                Ok(child) => child,
                Err(e) => {
                    let why = if e.kind() == std::io::ErrorKind::NotFound {
                        format!("{host}: no `{smi}` (no GPUs to sample)")
                    } else {
                        format!("{host}: `{smi}` did not start: {e}")
                    };
                    lock(&state).notes.insert(why);
                    continue;
                }
            };
            let Some(stdout) = child.stdout.take() else { continue };
            let child = Arc::new(Mutex::new(Some(child)));
            let heard = Arc::new(Mutex::new(Instant::now()));
            {
                let (state, heard, host, smi) = (state.clone(), heard.clone(), host.clone(), smi.clone());
                std::thread::spawn(move || read(stdout, &state, &heard, &host, &smi));
            }
            {
                // The watchdog: a sampler silent for too long is stopped, with a note.
                let (state, child, stop, host, smi) =
                    (state.clone(), child.clone(), stop.clone(), host.clone(), smi.clone());
                let limit = SILENCE.max(Duration::from_millis(interval_ms * 10));
                std::thread::spawn(move || loop {
                    std::thread::sleep(Duration::from_millis(200));
                    if stop.load(std::sync::atomic::Ordering::Relaxed) {
                        return;
                    }
                    let quiet = heard.lock().map(|t| t.elapsed()).unwrap_or_default();
                    let mut guard = child.lock().unwrap_or_else(|e| e.into_inner());
                    let Some(c) = guard.as_mut() else { return };
                    if let Ok(Some(_)) = c.try_wait() {
                        return;
                    }
                    if quiet > limit {
                        let _ = c.kill();
                        let _ = c.wait();
                        *guard = None;
                        lock(&state).notes.insert(format!(
                            "{host}: `{smi}` printed nothing for {} s: stopped, no more samples from it",
                            limit.as_secs()
                        ));
                        return;
                    }
                });
            }
            nodes.push(Node { child });
        }
        Sampler { state, nodes, stop, interval_ms }
    }

    /// Starts reading a DCGM exporter's Prometheus endpoint every `interval_ms` on each of
    /// `hosts`: `url` with `{host}` replaced by the host's name (a URL without it is read once,
    /// as the first host's).
    pub fn start_dcgm(url: &str, hosts: &[String], interval_ms: u64) -> Sampler {
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let targets: Vec<(String, String)> = if url.contains("{host}") {
            hosts.iter().map(|h| (h.clone(), url.replace("{host}", h))).collect()
        } else {
            hosts.first().map(|h| vec![(h.clone(), url.to_owned())]).unwrap_or_default()
        };
        for (host, target) in targets {
            let (state, stop) = (state.clone(), stop.clone());
            std::thread::spawn(move || poll_dcgm(&target, &host, interval_ms, &state, &stop));
        }
        Sampler { state, nodes: Vec::new(), stop, interval_ms }
    }

    pub fn interval_ms(&self) -> u64 {
        self.interval_ms
    }

    /// The samples that bear on `window` (Unix seconds): those inside it, and the last before
    /// and first after it per GPU (the energy holds a reading to the window's edge), with every
    /// note so far.
    pub fn window(&self, window: (f64, f64)) -> (Vec<Sample>, Vec<String>) {
        let state = lock(&self.state);
        let (start, end) = window;
        let inside: Vec<Sample> =
            state.samples.iter().filter(|s| s.time >= start && s.time <= end).cloned().collect();
        let mut out = inside;
        let mut gpus: Vec<(&str, u32)> = state.samples.iter().map(|s| (s.host.as_str(), s.gpu)).collect();
        gpus.sort();
        gpus.dedup();
        for (host, gpu) in gpus {
            let mine = state.samples.iter().filter(|s| s.host == host && s.gpu == gpu);
            let before = mine.clone().filter(|s| s.time < start).max_by(|a, b| a.time.total_cmp(&b.time));
            let after = mine.filter(|s| s.time > end).min_by(|a, b| a.time.total_cmp(&b.time));
            out.extend(before.cloned());
            out.extend(after.cloned());
        }
        out.sort_by(|a, b| a.time.total_cmp(&b.time).then(a.host.cmp(&b.host)).then(a.gpu.cmp(&b.gpu)));
        (out, state.notes.iter().cloned().collect())
    }

    /// Drops the samples before `time`: a job's later points do not need them.
    pub fn forget_before(&self, time: f64) {
        lock(&self.state).samples.retain(|s| s.time >= time);
    }
}

impl std::fmt::Debug for Sampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sampler")
            .field("nodes", &self.nodes.len())
            .field("interval_ms", &self.interval_ms)
            .finish()
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for node in &self.nodes {
            let mut guard = node.child.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(mut c) = guard.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

/// Reads one node's lines until its sampler ends.
fn read(
    stdout: std::process::ChildStdout,
    state: &Mutex<State>,
    heard: &Mutex<Instant>,
    host: &str,
    smi: &str,
) {
    let mut lines = BufReader::new(stdout).lines();
    let mut odd = false;
    while let Some(Ok(line)) = lines.next() {
        if let Ok(mut t) = heard.lock() {
            *t = Instant::now();
        }
        if line.trim().is_empty() {
            continue;
        }
        let time = crate::files::now();
        match parse(&line) {
            Ok((gpu, [power_w, util_pct, memory_mib, sm_clock_mhz])) => lock(state).samples.push(Sample {
                time,
                host: host.to_owned(),
                gpu,
                power_w,
                util_pct,
                memory_mib,
                sm_clock_mhz,
            }),
            Err(why) if !odd => {
                odd = true;
                lock(state).notes.insert(format!("{host}: `{smi}` printed {why}; such lines are left out"));
            }
            Err(_) => {}
        }
    }
}

/// DCGM's fields, as dcgm-exporter names them by default: power (W), utilisation (%),
/// framebuffer memory used (MiB) and SM clock (MHz), a series per GPU (label `gpu`).
pub const DCGM_FIELDS: [&str; 4] =
    ["DCGM_FI_DEV_POWER_USAGE", "DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_FB_USED", "DCGM_FI_DEV_SM_CLOCK"];

/// Reads one node's exporter every interval until stopped; what cannot be read is noted once.
fn poll_dcgm(
    url: &str,
    host: &str,
    interval_ms: u64,
    state: &Mutex<State>,
    stop: &std::sync::atomic::AtomicBool,
) {
    let interval = Duration::from_millis(interval_ms);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
    let client = reqwest::Client::builder().no_proxy().timeout(interval.max(Duration::from_secs(1))).build();
    let (Ok(runtime), Ok(client)) = (runtime, client) else {
        lock(state).notes.insert(format!("{host}: no HTTP client to read {url}"));
        return;
    };
    let mut noted = false;
    let mut next = Instant::now();
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let time = crate::files::now();
        let read = runtime.block_on(async {
            let response = client.get(url).send().await.map_err(|e| format!("did not answer: {e}"))?;
            if !response.status().is_success() {
                return Err(format!("answered {}", response.status()));
            }
            response.text().await.map_err(|e| format!("answer cut short: {e}"))
        });
        match read.and_then(|text| dcgm_samples(&text, host, time)) {
            Ok(samples) => lock(state).samples.extend(samples),
            Err(why) if !noted => {
                noted = true;
                lock(state)
                    .notes
                    .insert(format!("{host}: the DCGM exporter at {url} {why}; asked again each interval"));
            }
            Err(_) => {}
        }
        next += interval;
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else {
            next = now;
        }
    }
}

/// The GPUs' readings in a DCGM exporter's answer: a [`Sample`] per `gpu` label of its fields.
pub fn dcgm_samples(text: &str, host: &str, time: f64) -> Result<Vec<Sample>, String> {
    let exposition =
        sweep_prom::parse::parse(text).map_err(|e| format!("answered text that does not parse ({e})"))?;
    let mut gpus: std::collections::BTreeMap<u32, Sample> = std::collections::BTreeMap::new();
    for sample in &exposition.samples {
        let Some(field) = DCGM_FIELDS.iter().position(|f| sample.name() == *f) else { continue };
        let Some(gpu) = sample.label("gpu").and_then(|g| g.parse::<u32>().ok()) else { continue };
        let entry = gpus.entry(gpu).or_insert_with(|| Sample {
            time,
            host: host.to_owned(),
            gpu,
            power_w: None,
            util_pct: None,
            memory_mib: None,
            sm_clock_mhz: None,
        });
        let value = Some(sample.value).filter(|v| v.is_finite());
        match field {
            0 => entry.power_w = value,
            1 => entry.util_pct = value,
            2 => entry.memory_mib = value,
            _ => entry.sm_clock_mhz = value,
        }
    }
    if gpus.is_empty() {
        return Err(format!("answered without a series of {}", DCGM_FIELDS.join(", ")));
    }
    Ok(gpus.into_values().collect())
}

/// One line of `nvidia-smi --query-gpu=QUERY --format=csv,noheader,nounits`: the GPU's index
/// and its power (W), utilisation (%), memory used (MiB) and SM clock (MHz); a field the GPU
/// does not report (`[N/A]`, `[Not Supported]`, `N/A`) is `None`.
pub fn parse(line: &str) -> Result<(u32, [Option<f64>; 4]), String> {
    let fields: Vec<&str> = line.split(',').map(str::trim).collect();
    let unexpected = || format!("`{}`, not `{QUERY}`", line.trim());
    if fields.len() != 5 {
        return Err(unexpected());
    }
    let gpu: u32 = fields[0].parse().map_err(|_| unexpected())?;
    let mut values = [None; 4];
    for (value, field) in values.iter_mut().zip(&fields[1..]) {
        *value = match *field {
            f if f.contains("N/A") || f.contains("Not Supported") || f.contains("Unknown") => None,
            f => Some(f.parse::<f64>().map_err(|_| unexpected())?),
        };
    }
    Ok((gpu, values))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A script standing in for `nvidia-smi`, written to a temporary folder.
    fn standin(name: &str, body: &str) -> (tempfile::TempDir, String) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(name);
        std::fs::write(&path, format!("#!/bin/bash\n{body}\n")).expect("script");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let path = path.display().to_string();
        (dir, path)
    }

    #[test]
    fn a_sampler_reads_every_gpu_and_notes_what_it_cannot_read() {
        let (_dir, smi) = standin(
            "smi",
            "echo 'Unable to determine the device handle'; \
             while :; do echo '0, 100.00, 50, 1024, 1400'; echo '1, [N/A], 0, 0, 210'; sleep 0.1; done",
        );
        let hosts = vec!["n0".to_owned()];
        let sampler = Sampler::start_with(&smi, &hosts, "n0", 100);
        let start = crate::files::now();
        std::thread::sleep(Duration::from_millis(700));
        let end = crate::files::now();
        let (samples, notes) = sampler.window((start, end));
        assert!(samples.iter().filter(|s| s.gpu == 0).count() >= 4, "{samples:?}");
        assert!(samples.iter().any(|s| s.gpu == 1 && s.power_w.is_none()));
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(notes[0].contains("Unable to determine"), "{notes:?}");
        drop(sampler);
    }

    #[test]
    fn no_sampling_program_is_a_note_and_a_silent_one_is_stopped() {
        let hosts = vec!["n0".to_owned()];
        let sampler = Sampler::start_with("/nonexistent/nvidia-smi", &hosts, "n0", 100);
        let (samples, notes) = sampler.window((0.0, f64::MAX));
        assert!(samples.is_empty());
        assert!(notes.len() == 1 && notes[0].contains("no GPUs to sample"), "{notes:?}");

        let (_dir, smi) = standin("hangs", "exec sleep 600");
        let sampler = Sampler::start_with(&smi, &hosts, "n0", 100);
        let started = Instant::now();
        let noted = loop {
            let (_, notes) = sampler.window((0.0, f64::MAX));
            if !notes.is_empty() || started.elapsed() > SILENCE * 3 {
                break notes;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        assert!(noted.len() == 1 && noted[0].contains("printed nothing"), "{noted:?}");
        assert!(started.elapsed() < SILENCE * 2, "stopped within its bound: {:?}", started.elapsed());
    }

    /// dcgm-exporter's default exposition (its counters file's fields, with its labels).
    const DCGM: &str = "\
# HELP DCGM_FI_DEV_SM_CLOCK SM clock frequency (in MHz).
# TYPE DCGM_FI_DEV_SM_CLOCK gauge
DCGM_FI_DEV_SM_CLOCK{gpu=\"0\",UUID=\"GPU-a\",device=\"nvidia0\",modelName=\"NVIDIA H100 80GB HBM3\",Hostname=\"n1\"} 1980
DCGM_FI_DEV_SM_CLOCK{gpu=\"1\",UUID=\"GPU-b\",device=\"nvidia1\",modelName=\"NVIDIA H100 80GB HBM3\",Hostname=\"n1\"} 345
# HELP DCGM_FI_DEV_POWER_USAGE Power draw (in W).
# TYPE DCGM_FI_DEV_POWER_USAGE gauge
DCGM_FI_DEV_POWER_USAGE{gpu=\"0\",UUID=\"GPU-a\",device=\"nvidia0\",modelName=\"NVIDIA H100 80GB HBM3\",Hostname=\"n1\"} 612.5
DCGM_FI_DEV_POWER_USAGE{gpu=\"1\",UUID=\"GPU-b\",device=\"nvidia1\",modelName=\"NVIDIA H100 80GB HBM3\",Hostname=\"n1\"} 71.2
# HELP DCGM_FI_DEV_GPU_UTIL GPU utilization (in %).
# TYPE DCGM_FI_DEV_GPU_UTIL gauge
DCGM_FI_DEV_GPU_UTIL{gpu=\"0\",UUID=\"GPU-a\",device=\"nvidia0\",modelName=\"NVIDIA H100 80GB HBM3\",Hostname=\"n1\"} 98
# HELP DCGM_FI_DEV_FB_USED Framebuffer memory used (in MiB).
# TYPE DCGM_FI_DEV_FB_USED gauge
DCGM_FI_DEV_FB_USED{gpu=\"0\",UUID=\"GPU-a\",device=\"nvidia0\",modelName=\"NVIDIA H100 80GB HBM3\",Hostname=\"n1\"} 75123
DCGM_FI_DEV_FB_USED{gpu=\"1\",UUID=\"GPU-b\",device=\"nvidia1\",modelName=\"NVIDIA H100 80GB HBM3\",Hostname=\"n1\"} 0
# HELP DCGM_FI_DEV_MEM_COPY_UTIL Memory utilization (in %).
# TYPE DCGM_FI_DEV_MEM_COPY_UTIL gauge
DCGM_FI_DEV_MEM_COPY_UTIL{gpu=\"0\",UUID=\"GPU-a\",device=\"nvidia0\",modelName=\"NVIDIA H100 80GB HBM3\",Hostname=\"n1\"} 40
";

    #[test]
    fn a_dcgm_exporters_series_are_read_per_gpu() {
        let samples = dcgm_samples(DCGM, "n1", 5.0).expect("reads");
        assert_eq!(samples.len(), 2);
        let (a, b) = (&samples[0], &samples[1]);
        assert_eq!(
            (a.gpu, a.power_w, a.util_pct, a.memory_mib, a.sm_clock_mhz),
            (0, Some(612.5), Some(98.0), Some(75123.0), Some(1980.0))
        );
        assert_eq!(
            (b.gpu, b.power_w, b.util_pct, b.memory_mib),
            (1, Some(71.2), None, Some(0.0)),
            "a field it lacks is None"
        );
        assert_eq!((a.host.as_str(), a.time), ("n1", 5.0));
        let err = dcgm_samples("# TYPE up gauge\nup 1\n", "n1", 0.0).expect_err("no DCGM series");
        assert!(err.contains("DCGM_FI_DEV_POWER_USAGE"), "{err}");
        assert!(dcgm_samples("<html>", "n1", 0.0).is_err());
    }

    /// A stand-in exporter on a free loopback port, read through `{host}`; a node whose exporter
    /// does not answer (127.0.0.2, where nothing listens) is noted once.
    #[test]
    fn a_dcgm_sampler_reads_each_nodes_exporter_and_notes_one_that_does_not_answer() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
        let port = listener.local_addr().expect("address").port();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                use std::io::{Read, Write};
                let mut stream = stream;
                let mut buf = [0u8; 2048];
                let _ = stream.read(&mut buf);
                let reply = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{DCGM}",
                    DCGM.len()
                );
                let _ = stream.write_all(reply.as_bytes());
            }
        });
        let hosts = vec!["127.0.0.1".to_owned(), "127.0.0.2".to_owned()];
        let sampler = Sampler::start_dcgm(&format!("http://{{host}}:{port}/metrics"), &hosts, 100);
        let start = crate::files::now();
        std::thread::sleep(Duration::from_millis(1200));
        let (samples, notes) = sampler.window((start, crate::files::now()));
        let mine: Vec<&Sample> = samples.iter().filter(|s| s.host == "127.0.0.1" && s.gpu == 0).collect();
        assert!(mine.len() >= 5, "every 100 ms: {samples:?}");
        assert!(mine.iter().all(|s| s.power_w == Some(612.5)));
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(notes[0].starts_with("127.0.0.2: the DCGM exporter at http://127.0.0.2:"), "{notes:?}");
    }

    #[test]
    fn lines_in_nvidia_smis_csv_format_parse_and_others_are_refused() {
        assert_eq!(parse("0, 71.61, 0, 1, 345"), Ok((0, [Some(71.61), Some(0.0), Some(1.0), Some(345.0)])));
        assert_eq!(
            parse("7, 699.31, 100, 80623, 1980"),
            Ok((7, [Some(699.31), Some(100.0), Some(80623.0), Some(1980.0)]))
        );
        assert_eq!(
            parse("1, [N/A], 12, 2048, [Not Supported]"),
            Ok((1, [None, Some(12.0), Some(2048.0), None]))
        );
        assert!(parse("No devices were found").is_err());
        assert!(parse("0, 71.61 W, 0 %, 1 MiB, 345 MHz").is_err(), "units: the query was not ours");
        assert!(parse("0, 71.61, 0, 1").is_err());
    }
}
