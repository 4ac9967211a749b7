//! Real engines, end to end, through `sweep submit` on the development SLURM cluster: Dynamo
//! 1.6.1's own frontend and mocker workers (aggregated, disaggregated, and the same deployment
//! written as a custom engine), and vLLM 0.32's CPU build serving a tiny random-weight model (one
//! server with a boolean engine argument, two behind vllm-router at two request rates, one
//! refused at start), and the scraper's gauge filter against the vLLM venv's prometheus_client.
//! Knobs: Dynamo's router mode as an axis, two Dynamo releases as a venv axis, and vLLM's
//! `max_num_seqs` with an environment variable.
//!
//! The engines live in venvs under `$SWEEP_ENGINE_CACHE` (default `~/.cache/sweep/engines`),
//! installed by `scripts/install-engines.sh`, which `scripts/test.sh` runs first. A missing one
//! fails its tests with that advice: they never pass by skipping. The tests of this binary run
//! one at a time (`.config/nextest.toml`, and a lock for `cargo test`), since each engine takes
//! the machine's cores while it starts.

mod common;

use common::sweep;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// `cargo test` runs a binary's tests on threads; the engines must not start side by side.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn venv(name: &str) -> PathBuf {
    let cache = std::env::var_os("SWEEP_ENGINE_CACHE").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/sweep/engines")
    });
    let venv = cache.join(name);
    assert!(
        venv.join(".complete").is_file(),
        "{name} is not installed under {}: run scripts/install-engines.sh (scripts/test.sh does)",
        cache.display()
    );
    venv
}

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A sweep folder of one test, its jobs cancelled and its folder removed at the end (kept when
/// the test failed, for its logs).
struct Sweep {
    dir: PathBuf,
    venv: PathBuf,
    /// Held until the jobs are cancelled (fields drop after `drop` runs).
    _one_at_a_time: MutexGuard<'static, ()>,
}

impl Drop for Sweep {
    fn drop(&mut self) {
        let _ = Command::new(env!("CARGO_BIN_EXE_sweep")).arg("cancel").arg(self.dir.join("sweep")).output();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// `n` consecutive free TCP ports on this host (all the dev cluster's nodes share its network).
fn free_ports(n: u16) -> u16 {
    for _ in 0..200 {
        let first =
            std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
        if first > 65535 - n {
            continue;
        }
        if (first..first + n).all(|p| std::net::TcpListener::bind(("0.0.0.0", p)).is_ok()) {
            return first;
        }
    }
    panic!("no {n} consecutive free ports");
}

impl Sweep {
    /// A sweep folder with the tiny model (written by the engine's own `tokenizers`) and `spec`,
    /// in which `MODEL`, `BASE` and `FRONTEND` stand for the model's folder and free ports.
    fn new(name: &str, venv: PathBuf, spec: &str) -> Sweep {
        let one_at_a_time = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        let dir = std::env::temp_dir().join(format!("sweep-real-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let model = dir.join("tiny");
        let made = Command::new(venv.join("bin/python"))
            .arg(repository().join("scripts/tiny-model.py"))
            .arg(&model)
            .output()
            .expect("python runs");
        assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
        let base = free_ports(8);
        let spec = spec
            .replace("MODEL", &model.display().to_string())
            .replace("BASE", &base.to_string())
            .replace("FRONTEND", &(base + 7).to_string());
        std::fs::write(dir.join("spec.yaml"), spec).expect("spec");
        Sweep { dir, venv, _one_at_a_time: one_at_a_time }
    }

    /// `sweep ARGS` with the engine's venv first on PATH (jobs inherit the environment) and
    /// vLLM's CPU settings.
    fn sweep(&self, args: &[&str]) -> std::process::Output {
        let path =
            format!("{}:{}", self.venv.join("bin").display(), std::env::var("PATH").unwrap_or_default());
        Command::new(env!("CARGO_BIN_EXE_sweep"))
            .args(args)
            .current_dir(&self.dir)
            .env("PATH", path)
            .env("VLLM_TARGET_DEVICE", "cpu")
            .env("VLLM_CPU_KVCACHE_SPACE", "1")
            .env("VLLM_NO_USAGE_STATS", "1")
            .env("HF_HUB_OFFLINE", "1")
            .env("HF_DATASETS_OFFLINE", "1")
            .output()
            .expect("sweep runs")
    }

    /// `sweep submit` (which first runs `sweep check` against the installed engine); waits
    /// until every job ended; returns `sweep status` rows.
    fn submit_and_wait(&self, limit: Duration) -> Vec<serde_json::Value> {
        self.submit_and_wait_with(&[], limit)
    }

    fn submit_and_wait_with(&self, extra: &[&str], limit: Duration) -> Vec<serde_json::Value> {
        let output = self.sweep(&[&["submit", "spec.yaml", "-o", "sweep", "--sequential"], extra].concat());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{stderr}");
        if extra.is_empty() {
            assert!(
                stderr.contains("options checked against its"),
                "the engine's options were checked: {stderr}"
            );
        }
        let deadline = Instant::now() + limit;
        loop {
            let rows = self.status();
            if rows.iter().all(|r| {
                ["COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "REJECTED"]
                    .contains(&r["state"].as_str().unwrap_or(""))
            }) {
                return rows;
            }
            assert!(Instant::now() < deadline, "not finished after {limit:?}: {rows:#?}");
            std::thread::sleep(Duration::from_secs(1));
        }
    }

    fn status(&self) -> Vec<serde_json::Value> {
        let (code, stdout, stderr) = sweep(&["status", "sweep", "--points", "--format", "json"], &self.dir);
        assert_eq!(code, 0, "{stderr}");
        serde_json::from_str(&stdout).expect("JSON")
    }

    fn job(&self) -> PathBuf {
        let jobs = self.dir.join("sweep/jobs");
        let mut all: Vec<PathBuf> = std::fs::read_dir(&jobs)
            .expect("jobs")
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect();
        assert_eq!(all.len(), 1, "{all:?}");
        all.remove(0)
    }

    /// A job's log, for failure messages.
    fn logs(&self) -> String {
        let mut out = String::new();
        let Ok(jobs) = std::fs::read_dir(self.dir.join("sweep/jobs")) else { return out };
        for job in jobs.flatten() {
            for log in std::fs::read_dir(job.path().join("logs")).into_iter().flatten().flatten() {
                let text = std::fs::read_to_string(log.path()).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(15).collect();
                out.push_str(&format!("--- {} ---\n", log.path().display()));
                out.extend(tail.into_iter().rev().map(|l| format!("{l}\n")));
            }
        }
        out
    }
}

/// A measured point: its aiperf export, and what the runner scraped of the servers' `/metrics`.
struct Measured {
    export: serde_json::Value,
    scraped: sweep_folder::server_metrics::Summary,
}

/// A point's mean TTFT by the client and by the engine's histograms (ms), printed for the record;
/// the histograms saw exactly the point's measured requests.
fn ttft(m: &Measured) -> (f64, f64) {
    let client = m.export["time_to_first_token"]["avg"].as_f64().expect("client TTFT");
    let server =
        m.scraped.measures.time_to_first_token.unwrap_or_else(|| panic!("no server TTFT: {:#?}", m.scraped));
    let requests = m.export["request_count"]["avg"].as_f64().expect("count");
    assert_eq!(server.count, requests, "{:#?}", m.scraped.measures);
    let server = server.mean_ms.expect("mean");
    eprintln!(
        "concurrency {}: TTFT client {client:.2} ms, engine {server:.2} ms (+{:.2} ms)",
        m.export["point"]["concurrency"],
        client - server
    );
    (client, server)
}

/// Every job COMPLETED and every point `done`, each measured with the engine's own token counts
/// and with its servers scraped; returns each point's export and scrapes.
fn all_done_with_server_usage(s: &Sweep, rows: &[serde_json::Value], points: usize) -> Vec<Measured> {
    for row in rows {
        assert_eq!(row["state"], "COMPLETED", "{row:#}\n{}", s.logs());
    }
    let mut exports = Vec::new();
    for job in std::fs::read_dir(s.dir.join("sweep/jobs")).expect("jobs").flatten() {
        for point in std::fs::read_dir(job.path().join("points")).expect("points").flatten() {
            // A search's planned point holds its record; its steps are the measured points.
            if point.path().join("search.json").is_file() {
                continue;
            }
            let status: serde_json::Value = serde_json::from_str(
                &std::fs::read_to_string(point.path().join("status.json")).expect("status"),
            )
            .expect("JSON");
            assert_eq!(status["state"], "done", "{status:#}\n{}", s.logs());
            let export: serde_json::Value = serde_json::from_str(
                &std::fs::read_to_string(point.path().join("profile_export_aiperf.json")).expect("export"),
            )
            .expect("JSON");
            assert_eq!(export["token_source"], "server_usage", "{export:#}");
            assert_eq!(export["error_request_count"]["avg"].as_f64().unwrap_or(0.0), 0.0, "{export:#}");
            let osl = export["point"]["osl"].as_f64().expect("osl");
            assert_eq!(export["output_sequence_length"]["avg"].as_f64(), Some(osl), "{export:#}");
            let scraped = sweep_folder::PointDir::new(point.path())
                .read_server_metrics()
                .expect("readable")
                .unwrap_or_else(|| panic!("no server_metrics.json\n{}", s.logs()));
            exports.push(Measured { export, scraped });
        }
    }
    assert_eq!(exports.len(), points);
    exports
}

/// The job's `provenance.json`, read through the folder's own type: the engine's version, where
/// it was read, and the Python environment the serve steps found.
fn job_provenance(s: &Sweep) -> sweep_folder::provenance::JobProvenance {
    sweep_folder::JobDir::new(s.job())
        .read_provenance()
        .expect("readable")
        .unwrap_or_else(|| panic!("no provenance.json\n{}", s.logs()))
}

const DYNAMO_AGG: &str = "\
name: real-dynamo-agg
model: {path: MODEL, served_name: tiny}
engine: {kind: dynamo, backend: mocker, discovery: file, health: {interval: 1, timeout: 240}}
cluster: {gpus_per_node: 4, base_port: BASE, frontend_port: FRONTEND}
mode: agg
agg: {servers: 2, tp: 1, batch: 16, engine_args: {speedup_ratio: 10, enable_prefix_caching: false}}
workload: {isl: 64, osl: 16, concurrency: [1, 4], requests: 12, warmup: 0}
";

#[test]
fn dynamo_aggregated_two_mocker_workers_behind_the_real_frontend() {
    let s = Sweep::new("dynamo-agg", venv("dynamo-1.6.1"), DYNAMO_AGG);
    let rows = s.submit_and_wait(Duration::from_secs(300));
    let measured = all_done_with_server_usage(&s, &rows, 2);
    // The first point is measured like the others: nothing was lost to a frontend not yet ready.
    for m in &measured {
        assert_eq!(m.export["request_count"]["avg"], 12.0, "{:#}", m.export);
        // Against the frontend's own clock: never below it, and not tens of ms above it (the
        // client once left ACKs delayed and Dynamo's un-NODELAYed stream arrived 40 ms late).
        let (client, server) = ttft(m);
        assert!(client >= server && client - server < 20.0, "client {client} ms, frontend {server} ms");
        // Read from the frontend, the one that serves HTTP: its gauges and its token count,
        // which is the client's; the workers, which serve no HTTP, noted once each.
        let measures = &m.scraped.measures;
        assert_eq!(
            measures.families["requests_running"], "dynamo_frontend_inflight_requests",
            "{measures:#?}"
        );
        assert_eq!(measures.families["time_to_first_token"], "dynamo_frontend_time_to_first_token_seconds");
        assert_eq!(measures.output_tokens, Some(12.0 * 16.0), "{measures:#?}");
        let frontend = &m.scraped.servers["disagg_server_0"];
        assert!(frontend.scrapes >= 2 && frontend.failed_scrapes == 0, "{frontend:#?}");
        assert!(
            frontend.counters.len() + frontend.gauges.len() + frontend.histograms.len() > 60,
            "{frontend:#?}"
        );
        assert_eq!(m.scraped.notes.len(), 2, "{:#?}", m.scraped.notes);
        assert!(m.scraped.notes.iter().all(|n| n.contains("no metrics at")), "{:#?}", m.scraped.notes);
    }
    let job = s.job();
    let script = std::fs::read_to_string(job.join("job.sbatch")).expect("script");
    // `false` is the negative flag, with no value.
    assert!(script.contains(" --no-enable-prefix-caching"), "{script}");
    assert!(!script.contains("--enable-prefix-caching false"), "{script}");
    // Both workers registered in the job's own discovery folder; no etcd, no NATS.
    assert!(job.join("dynamo-discovery").is_dir(), "{}", s.logs());
    assert!(!job.join("logs/etcd.log").exists());
    // What ran it: Dynamo's own package, found beside the interpreter its workers ran in.
    let provenance = job_provenance(&s);
    assert_eq!(provenance.engine_version.as_deref(), Some("1.6.1"), "{provenance:#?}");
    let python =
        provenance.python.first().unwrap_or_else(|| panic!("no Python environment: {provenance:#?}"));
    assert!(python.python.contains("dynamo-1.6.1"), "{python:#?}");
    assert_eq!(python.package_version("ai-dynamo"), Some("1.6.1"));
}

const DYNAMO_DISAGG: &str = "\
name: real-dynamo-disagg
model: {path: MODEL, served_name: tiny}
engine: {kind: dynamo, backend: mocker, discovery: file, health: {interval: 1, timeout: 240}}
cluster: {gpus_per_node: 4, base_port: BASE, frontend_port: FRONTEND}
mode: disagg
ctx: {servers: 2, tp: 1, batch: 8, engine_args: {speedup_ratio: 10}}
gen: {servers: 1, tp: 1, batch: 16, engine_args: {speedup_ratio: 10}}
workload: {isl: 64, osl: 16, concurrency: [1, 4], requests: 12, warmup: 0}
";

#[test]
fn dynamo_disaggregated_two_prefill_one_decode_mocker_workers() {
    let s = Sweep::new("dynamo-disagg", venv("dynamo-1.6.1"), DYNAMO_DISAGG);
    let rows = s.submit_and_wait(Duration::from_secs(300));
    all_done_with_server_usage(&s, &rows, 2);
    let script = std::fs::read_to_string(s.job().join("job.sbatch")).expect("script");
    assert_eq!(script.matches("--disaggregation-mode prefill").count(), 2, "{script}");
    assert_eq!(script.matches("--disaggregation-mode decode").count(), 1, "{script}");
}

/// The same deployment as [`DYNAMO_DISAGG`], written as a user would without `kind: dynamo`.
const DYNAMO_CUSTOM: &str = r#"
name: real-dynamo-custom
model: {path: MODEL, served_name: tiny}
engine:
  kind: custom
  health: {interval: 1, timeout: 240}
  commands:
    ctx: "env DYN_FILE_KV={{ job.paths.job_dir }}/kv python3 -m dynamo.mocker --model-path {{ job.model.path }} --model-name {{ job.model.served_name }} --discovery-backend file --request-plane tcp --disaggregation-mode prefill --speedup-ratio 10"
    gen: "env DYN_FILE_KV={{ job.paths.job_dir }}/kv python3 -m dynamo.mocker --model-path {{ job.model.path }} --model-name {{ job.model.served_name }} --discovery-backend file --request-plane tcp --disaggregation-mode decode --speedup-ratio 10"
    frontend: "env DYN_FILE_KV={{ job.paths.job_dir }}/kv python3 -m dynamo.frontend --http-port {{ frontend.port }} --discovery-backend file --request-plane tcp"
cluster: {gpus_per_node: 4, base_port: BASE, frontend_port: FRONTEND}
mode: disagg
ctx: {servers: 2, tp: 1, batch: 8}
gen: {servers: 1, tp: 1, batch: 16}
workload: {isl: 64, osl: 16, concurrency: [1, 4], requests: 12, warmup: 0}
"#;

#[test]
fn dynamo_disaggregated_as_a_custom_engine() {
    let s = Sweep::new("dynamo-custom", venv("dynamo-1.6.1"), DYNAMO_CUSTOM);
    let rows = s.submit_and_wait(Duration::from_secs(300));
    all_done_with_server_usage(&s, &rows, 2);
}

/// One vLLM server on CPU: random weights (`load_format: dummy`), a boolean engine argument
/// (`enforce_eager`, which skips torch.compile and halves the start), and the engine's own
/// `/metrics` scraped around and during each point. The load is a search (`workload.search`) over
/// concurrency 1 to 4 within a TTFT SLO this server meets: it climbs 1, 2, 4 and stops at `to`.
const VLLM_ONE: &str = "\
name: real-vllm-one
model: {path: MODEL, served_name: tiny}
engine: {kind: vllm, health: {interval: 1, timeout: 400}}
cluster: {gpus_per_node: 4, base_port: BASE, frontend_port: FRONTEND}
mode: agg
agg: {tp: 1, batch: 8, max_seq_len: 1024, engine_args: {enforce_eager: true, load_format: dummy, dtype: bfloat16}}
workload: {isl: 32, osl: 16, requests: 8, warmup: 0, search: {axis: concurrency, from: 1, to: 4, slo: {time_to_first_token: {p99: 60000}}}}
accuracy:
  questions: builtin
  limit: 16
  max_tokens: 8
  concurrency: 4
  min_score: 0.5
  lm_eval: {tasks: [sweep_arith], limit: 8, command: LMEVAL, args: [--include_path, TASKS]}
";

/// One vLLM server on CPU with dummy (random) weights: a concurrency search, its exports and
/// metrics against the client's, its provenance; then the accuracy step: the built-in probe and
/// a real lm-eval 0.4.13 (a task of its YAML format over local questions, the hub being out of
/// reach), both of which random weights fail, so the deployment is flagged `inaccurate` and its
/// points stand on no frontier.
#[test]
fn vllm_one_server_with_a_boolean_argument_a_search_and_ttft_against_its_own_clock() {
    let s = Sweep::new("vllm-one", venv("vllm-0.32.0"), VLLM_ONE);
    let tasks = lm_eval_task(&s.dir);
    let spec = std::fs::read_to_string(s.dir.join("spec.yaml")).expect("spec");
    let lm_eval = venv("lm-eval-0.4.13").join("bin/lm_eval");
    let spec =
        spec.replace("LMEVAL", &lm_eval.display().to_string()).replace("TASKS", &tasks.display().to_string());
    std::fs::write(s.dir.join("spec.yaml"), spec).expect("spec");
    let rows = s.submit_and_wait(Duration::from_secs(600));
    let measured = all_done_with_server_usage(&s, &rows, 3);
    let search = std::fs::read_dir(s.job().join("points"))
        .expect("points")
        .flatten()
        .find_map(|p| std::fs::read_to_string(p.path().join("search.json")).ok())
        .expect("search.json");
    let search: serde_json::Value = serde_json::from_str(&search).expect("JSON");
    let loads: Vec<f64> =
        search["steps"].as_array().expect("steps").iter().filter_map(|s| s["load"].as_f64()).collect();
    assert_eq!(loads, [1.0, 2.0, 4.0], "{search:#}");
    assert_eq!(search["max_load_meeting_slo"].as_f64(), Some(4.0), "{search:#}");
    let script = std::fs::read_to_string(s.job().join("job.sbatch")).expect("script");
    assert!(script.contains(" --enforce-eager ") && !script.contains("--enforce-eager True"), "{script}");
    // What ran it: the version vLLM's `GET /version` gave, and its packages.
    let provenance = job_provenance(&s);
    assert_eq!(provenance.engine_version.as_deref(), Some("0.32.0"), "{provenance:#?}");
    assert_eq!(provenance.engine_version_source.as_deref(), Some("GET /version"));
    let python =
        provenance.python.first().unwrap_or_else(|| panic!("no Python environment: {provenance:#?}"));
    assert_eq!(python.package_version("vllm-cpu"), Some("0.32.0"), "{python:#?}");
    // The client's TTFT includes the network and HTTP the server's does not: never below it.
    for m in &measured {
        let (client_ttft, server_ttft) = ttft(m);
        let measures = &m.scraped.measures;
        let client_itl = m.export["inter_token_latency"]["avg"].as_f64().expect("itl");
        let server_itl = measures.inter_token_latency.and_then(|l| l.mean_ms).expect("server itl");
        eprintln!(
            "  ITL client {client_itl:.3} ms, engine {server_itl:.3} ms ({:+.3} ms)",
            client_itl - server_itl
        );
        assert!(client_ttft >= server_ttft, "client TTFT below the server's: {:#}", m.export);
        assert!(client_ttft - server_ttft < 50.0, "the client adds more than 50 ms: {:#}", m.export);
        assert!((client_itl - server_itl).abs() < 0.25 * server_itl + 2.0, "{:#}", m.export);
        // vLLM's own exposition, parsed whole, read through the documented mapping.
        assert_eq!(m.scraped.notes, Vec::<String>::new());
        for (measure, family) in [
            ("requests_running", "vllm:num_requests_running"),
            ("requests_waiting", "vllm:num_requests_waiting"),
            ("kv_cache_usage", "vllm:kv_cache_usage_perc"),
            ("preemptions", "vllm:num_preemptions"),
            ("output_tokens", "vllm:generation_tokens"),
            ("inter_token_latency", "vllm:inter_token_latency_seconds"),
        ] {
            assert_eq!(measures.families.get(measure).map(String::as_str), Some(family), "{measures:#?}");
        }
        let requests = m.export["request_count"]["avg"].as_f64().expect("count");
        assert_eq!(measures.output_tokens, Some(requests * 16.0), "{measures:#?}");
        assert_eq!(measures.preemptions, Some(0.0));
        // Gauges are read at the scrapes' moments (a point of a second may have none while
        // requests run), so only their bounds are sure: a fraction, not a percentage.
        let kv = measures.kv_cache_usage.expect("kv");
        assert!(kv.max < 0.5, "a few short requests in a 1 GiB cache: {kv:?}");
        let concurrency = m.export["point"]["concurrency"].as_f64().expect("concurrency");
        let running = measures.requests_running.expect("running");
        assert!(running.max <= concurrency, "{running:?} at concurrency {concurrency}");
        let server = &m.scraped.servers["agg_0"];
        let series = server.counters.len() + server.gauges.len() + server.histograms.len();
        assert!(series > 50, "vLLM's exposition, whole: {series} series");
    }
    // The jsonl holds every series at a point's edges: vLLM serves hundreds. (The steps are
    // shorter than the scrape interval, so the rounds between edges, asked for the gauges only,
    // are checked against vLLM's prometheus_client in the test after this one.)
    let mut lines = Vec::new();
    for step in std::fs::read_dir(s.job().join("points")).expect("points").flatten() {
        let path = step.path().join("server_metrics.jsonl");
        if path.is_file() {
            lines.extend(sweep_folder::server_metrics::read_scrapes(&path).expect("server_metrics.jsonl").0);
        }
    }
    let most = lines.iter().map(|l| l.samples.len()).max().unwrap_or(0);
    assert!(most >= 300, "vLLM 0.32 serves about 374 series; a scrape had {most}");
    // The accuracy probe, asked of the real server after the points.
    let (path, accuracy) =
        sweep_folder::JobDir::new(s.job()).read_accuracy().expect("readable").expect("accuracy.json");
    eprintln!("  accuracy of random weights: {}", accuracy.reason);
    assert_eq!(accuracy.state, sweep_folder::accuracy::AccuracyState::Done, "{accuracy:#?}");
    let score = &accuracy.scores[0];
    assert_eq!((score.samples, score.errors), (Some(16), 0), "{accuracy:#?}");
    assert!(score.score <= 0.2, "random weights do not do arithmetic: {accuracy:#?}");
    // lm-eval's own results file, read back: its task, its metric under its filter, its count.
    let task = &accuracy.scores[1];
    assert_eq!(
        (task.name.as_str(), task.source.as_str(), task.metric.as_str(), task.samples),
        ("sweep_arith", "lm_eval", "exact_match,first-number", Some(8)),
        "{accuracy:#?}"
    );
    assert!(task.score <= 0.25, "{accuracy:#?}");
    let log = std::fs::read_to_string(path.with_file_name("lm_eval/lm_eval.log")).expect("lm-eval's log");
    assert!(log.contains("sweep_arith"), "{log}");
    let answers = std::fs::read_to_string(path.with_file_name("answers.jsonl")).expect("answers");
    let answered = answers.lines().filter(|l| l.contains("\"response\"")).count();
    assert_eq!(answered, 16, "every question got an answer from vLLM: {answers}");
    let rows = results(&s);
    let measured: Vec<_> = rows.iter().filter(|r| !r["request_count"].is_empty()).collect();
    assert_eq!(measured.len(), 3, "the search's three steps: {rows:#?}");
    for row in measured {
        assert!(row["invalid_reason"].starts_with("inaccurate: exact_match"), "{row:#?}");
        assert_eq!(row["on_frontier"], "false", "{row:#?}");
    }
}

/// An lm-eval task in its own YAML format over the first 20 built-in questions, in a folder of
/// `dir` (for `--include_path`): the answer is the response's first number.
fn lm_eval_task(dir: &Path) -> PathBuf {
    let tasks = dir.join("lm-eval-tasks");
    std::fs::create_dir_all(&tasks).expect("tasks folder");
    let data = tasks.join("arith.jsonl");
    let questions = std::fs::read_to_string(repository().join("crates/sweep-spec/data/arithmetic.jsonl"))
        .expect("the shipped questions");
    std::fs::write(&data, questions.lines().take(20).map(|l| format!("{l}\n")).collect::<String>())
        .expect("data");
    let yaml = r#"task: sweep_arith
dataset_path: json
dataset_kwargs:
  data_files:
    test: DATA
test_split: test
output_type: generate_until
doc_to_text: "{{question}}"
doc_to_target: "{{answer}}"
generation_kwargs:
  until: ["\n"]
  max_gen_toks: 8
  do_sample: false
filter_list:
  - name: first-number
    filter:
      - function: regex
        regex_pattern: "(-?[0-9]+)"
      - function: take_first
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
"#
    .replace("DATA", &data.display().to_string());
    std::fs::write(tasks.join("sweep_arith.yaml"), yaml).expect("task");
    tasks
}

/// A child process killed when the test ends, however it ends.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Serves vLLM-named families with the `prometheus_client` of the vLLM venv (the library vLLM's
/// `/metrics` is), and profiles the simulated engine with it scraped every 100 ms: the rounds
/// before and between a point's edges ask for the mapped gauges only (`name[]`), and the real library
/// answers just those (not `vllm:cache_config_info`, a gauge outside the mapping, which a scrape
/// of everything would keep), while the edges have every series.
#[test]
fn vllm_prometheus_client_answers_the_scrapers_gauge_filter() {
    let python = venv("vllm-0.32.0").join("bin/python");
    let script = r#"
import sys, time
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
r = CollectorRegistry()
Gauge("vllm:num_requests_running", "running", ["model_name"], registry=r).labels("tiny").set(3)
Gauge("vllm:kv_cache_usage_perc", "kv", ["model_name"], registry=r).labels("tiny").set(0.25)
Gauge("vllm:cache_config_info", "a gauge the mapping does not read", ["block_size"], registry=r).labels("16").set(1)
Counter("vllm:generation_tokens", "tokens", ["model_name"], registry=r).labels("tiny").inc(7)
Histogram("vllm:time_to_first_token_seconds", "ttft", ["model_name"], registry=r).labels("tiny").observe(0.01)
server, _ = start_http_server(0, addr="127.0.0.1", registry=r)
print(server.server_address[1], flush=True)
time.sleep(600)
"#;
    let mut metrics = Child(
        Command::new(&python)
            .args(["-c", script])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python of the vLLM venv"),
    );
    let mut port = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(metrics.0.stdout.take().expect("stdout")),
        &mut port,
    )
    .expect("port");
    let metrics_url = format!("http://127.0.0.1:{}/metrics", port.trim());

    let bin = Path::new(env!("CARGO_BIN_EXE_sweep")).parent().expect("bin dir").to_path_buf();
    let tmp = tempfile::tempdir().expect("tmp");
    let port_file = tmp.path().join("engine.port");
    let _engine = Child(
        Command::new(bin.join("sweep-mock-engine"))
            .args(["--port", "0", "--model", "tiny", "--decode-base-ms", "10", "--port-file"])
            .arg(&port_file)
            .spawn()
            .expect("sweep-mock-engine"),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::fs::read_to_string(&port_file).map_or(true, |p| p.trim().is_empty()) {
        assert!(Instant::now() < deadline, "the simulated engine did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let engine_url =
        format!("http://127.0.0.1:{}", std::fs::read_to_string(&port_file).expect("port").trim());
    let artifacts = tmp.path().join("run");
    let output = Command::new(bin.join("sweep-runner"))
        .args(["profile", "--url", &engine_url, "--model", "tiny", "--progress", "off", "--concurrency", "2"])
        .args([
            "--requests",
            "20",
            "--warmup",
            "0",
            "--isl",
            "16",
            "--osl",
            "16",
            "--server-metrics",
            &metrics_url,
        ])
        .args(["--server-metrics-interval-ms", "100", "--artifact-dir"])
        .arg(&artifacts)
        .output()
        .expect("sweep-runner profile");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let (lines, _) =
        sweep_folder::server_metrics::read_scrapes(&artifacts.join("server_metrics.jsonl")).expect("scrapes");
    use sweep_folder::server_metrics::Phase;
    // The warm-up's rounds, like those between the edges, ask for the gauges only.
    let edges: Vec<_> = lines.iter().filter(|l| matches!(l.phase, Phase::Start | Phase::End)).collect();
    let during: Vec<_> = lines.iter().filter(|l| matches!(l.phase, Phase::Before | Phase::During)).collect();
    assert_eq!(edges.len(), 2, "{edges:?}");
    assert!(during.len() >= 3, "1.6 s of load scraped every 100 ms: {} rounds between edges", during.len());
    for line in &edges {
        assert!(line.error.is_none(), "{line:?}");
        assert!(line.samples.keys().any(|k| k.starts_with("vllm:generation_tokens_total")), "{line:?}");
        assert!(
            line.samples.keys().any(|k| k.starts_with("vllm:time_to_first_token_seconds_bucket")),
            "{line:?}"
        );
    }
    for line in &during {
        assert!(line.error.is_none(), "{line:?}");
        let names: std::collections::BTreeSet<&str> =
            line.samples.keys().map(|k| k.split('{').next().unwrap_or(k)).collect();
        assert_eq!(
            names,
            ["vllm:kv_cache_usage_perc", "vllm:num_requests_running"].into_iter().collect(),
            "only the gauges asked for"
        );
    }
}

/// Two vLLM servers behind vLLM's own router, loaded open-loop at two request rates (a point each,
/// both on the same deployment) with the concurrency as the cap.
const VLLM_TWO: &str = "\
name: real-vllm-two
model: {path: MODEL, served_name: tiny}
engine: {kind: vllm, health: {interval: 1, timeout: 500}}
cluster: {gpus_per_node: 4, base_port: BASE, frontend_port: FRONTEND}
mode: agg
agg: {servers: 2, tp: 1, batch: 8, max_seq_len: 1024, engine_args: {enforce_eager: true, load_format: dummy, dtype: bfloat16}}
workload: {isl: 32, osl: 16, concurrency: 4, arrival: constant, request_rate: [2, 4], requests: 12, warmup: 0}
";

#[test]
fn vllm_two_servers_behind_vllm_router_at_two_request_rates() {
    let s = Sweep::new("vllm-two", venv("vllm-0.32.0"), VLLM_TWO);
    let rows = s.submit_and_wait(Duration::from_secs(700));
    assert_eq!(rows.len(), 1, "both rates on one deployment: {rows:#?}");
    for Measured { export, .. } in all_done_with_server_usage(&s, &rows, 2) {
        let rate = export["point"]["request_rate"].as_f64().unwrap_or_else(|| panic!("{export:#}"));
        let measured = export["request_throughput"]["avg"].as_f64().expect("throughput");
        eprintln!("  request rate {rate}/s: measured {measured:.2}/s");
        // 12 requests 1/rate apart span 11/rate, plus the last one's latency: never faster than
        // the target, and not far below it on a server this small.
        assert!(measured <= rate * 12.0 / 11.0 * 1.05, "faster than the target {rate}: {export:#}");
        assert!(measured >= rate * 0.6, "well below the target {rate}: {export:#}");
    }
    // Both servers served: each one's own counter of finished requests moved.
    let job = s.job();
    for server in ["agg_0", "agg_1"] {
        let log = std::fs::read_to_string(job.join(format!("logs/{server}.log"))).expect("log");
        assert!(log.contains("POST /v1/chat/completions"), "{server} served nothing:\n{}", s.logs());
    }
}

/// An argument vLLM does not know: `sweep check` (and so `submit`) refuses it by vLLM's own
/// parser, naming the closest option; submitted anyway (`--no-check`), the server exits at
/// start and the points fail at once with vLLM's own message, not after the health timeout.
const VLLM_REFUSED: &str = "\
name: real-vllm-refused
model: {path: MODEL, served_name: tiny}
engine: {kind: vllm, health: {interval: 1, timeout: 600}}
cluster: {gpus_per_node: 4, base_port: BASE, frontend_port: FRONTEND}
mode: agg
agg: {tp: 1, batch: 8, engine_args: {enforce_eagr: true, load_format: dummy}}
workload: {isl: 32, osl: 16, concurrency: 1, requests: 4, warmup: 0}
";

#[test]
fn vllm_refusing_an_argument_fails_the_points_at_once_with_its_message() {
    let s = Sweep::new("vllm-refused", venv("vllm-0.32.0"), VLLM_REFUSED);
    for command in [&["check", "spec.yaml"][..], &["submit", "spec.yaml", "-o", "sweep"]] {
        let output = s.sweep(command);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(12), "{command:?}: {stderr}");
        assert!(
            stderr.contains("agg_0 (agg): `vllm serve` does not take `--enforce-eagr`; the closest it takes is `--enforce-eager`"),
            "{stderr}"
        );
        assert!(!s.dir.join("sweep").exists(), "nothing is written when the check fails");
    }
    let started = Instant::now();
    let rows = s.submit_and_wait_with(&["--no-check"], Duration::from_secs(300));
    assert!(started.elapsed() < Duration::from_secs(200), "failed only after {:?}", started.elapsed());
    assert_eq!(rows.len(), 1);
    let points = rows[0]["points"].as_array().expect("points");
    assert_eq!(points.len(), 1, "{rows:#?}");
    let point = std::fs::read_dir(s.job().join("points")).expect("points").flatten().next().expect("a point");
    let status: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(point.path().join("status.json")).expect("status"))
            .expect("JSON");
    assert_eq!(status["state"], "failed", "{status:#}");
    let reason = status["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("agg_0 ended"), "{reason}");
    let benchmark: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(s.job().join("status/benchmark.json")).expect("benchmark status"),
    )
    .expect("JSON");
    let full = benchmark["reason"].as_str().unwrap_or_default();
    assert!(full.contains("unrecognized arguments: --enforce-eagr"), "vLLM's message: {full}");
}

/// Dynamo's default discovery is etcd, whose step also starts `etcd` and `nats-server`; neither
/// is installed here. `sweep check` says so with the fix; submitted anyway, the job fails in its
/// first seconds with the service's own words, not two minutes later when the frontend gives up
/// on NATS for a reason that names neither.
const DYNAMO_WITHOUT_ETCD: &str = "\
name: real-dynamo-etcd
model: {path: MODEL, served_name: tiny}
engine: {kind: dynamo, backend: mocker, health: {interval: 1, timeout: 240}}
cluster: {gpus_per_node: 4, base_port: BASE, frontend_port: FRONTEND}
mode: agg
agg: {servers: 1, tp: 1, batch: 16, engine_args: {speedup_ratio: 10}}
workload: {isl: 64, osl: 16, concurrency: 1, requests: 4, warmup: 0}
";

#[test]
fn dynamo_with_etcd_discovery_and_no_etcd_fails_in_seconds_with_the_services_log() {
    let s = Sweep::new("dynamo-etcd", venv("dynamo-1.6.1"), DYNAMO_WITHOUT_ETCD);
    let check = s.sweep(&["check", "spec.yaml"]);
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert_eq!(check.status.code(), Some(12), "{stderr}");
    assert!(stderr.contains("`etcd` is not on PATH"), "{stderr}");
    assert!(stderr.contains("engine.discovery: file"), "{stderr}");
    let rows = s.submit_and_wait_with(&["--no-check"], Duration::from_secs(200));
    assert_eq!(rows[0]["state"], "FAILED", "{rows:#?}");
    let status =
        sweep_folder::JobDir::new(s.job()).read_benchmark_status().expect("readable").expect("marker");
    // Whichever of the two exits first ends the step.
    let said = ["etcd", "nats-server"].iter().any(|service| {
        status.reason.contains(&format!("{service} exited (status 127)"))
            && status.reason.contains(&format!("{service}: command not found"))
    });
    assert!(said, "{}", status.reason);
    let took = status.ended_at - status.started_at;
    assert!(took < 30.0, "failed after {took:.1} s");
}

/// The engine cache folder, for specs that name venvs (`engine.venv`).
fn engine_cache() -> PathBuf {
    venv("dynamo-1.6.1").parent().expect("the cache folder").to_owned()
}

/// `sweep aggregate` of the test's sweep; its results table.
fn results(s: &Sweep) -> Vec<std::collections::BTreeMap<String, String>> {
    let (code, _, stderr) = sweep(&["aggregate", "sweep"], &s.dir);
    assert_eq!(code, 0, "{stderr}");
    common::csv_rows(&s.dir.join("sweep/report/results.csv"))
}

/// Dynamo's frontend option as a knob: the KV-aware router against round-robin, two mocker
/// workers, 7 shared prefixes (90 % of each 512-token prompt) taken in turn by 28 requests one
/// at a time. Round-robin sends each prefix to both workers (7 is odd), so each is computed
/// twice; the KV router sends a prefix back to the worker that holds it, so once. The frontend's
/// own counts of the tokens each request found cached say so.
const DYNAMO_ROUTER: &str = "\
name: real-dynamo-router
model: {path: MODEL, served_name: tiny}
engine:
  kind: dynamo
  backend: mocker
  discovery: file
  health: {interval: 1, timeout: 240}
  frontend_args: {router_mode: {sweep: [kv, round-robin]}}
cluster: {gpus_per_node: 4, base_port: BASE, frontend_port: FRONTEND}
mode: agg
agg: {servers: 2, tp: 1, batch: 16, engine_args: {speedup_ratio: 10}}
workload: {isl: 512, osl: 4, concurrency: 1, requests: 28, warmup: 0, prefix_ratio: 0.9, prefix_prompts: 7}
";

#[test]
fn dynamo_router_mode_as_an_axis_kv_routing_hits_the_prefix_cache_more_than_round_robin() {
    let s = Sweep::new("dynamo-router", venv("dynamo-1.6.1"), DYNAMO_ROUTER);
    // Every value of the axis is held against the frontend's own choices first: a mode it
    // does not have is refused by name, with the job that would have run it (exit 12).
    let spec = std::fs::read_to_string(s.dir.join("spec.yaml")).expect("spec");
    std::fs::write(s.dir.join("bad.yaml"), spec.replace("[kv, round-robin]", "[kv, fastest]")).expect("spec");
    let refused = s.sweep(&["check", "bad.yaml"]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(12), "{stderr}");
    assert!(stderr.contains("_router_mode-fastest`"), "{stderr}");
    assert!(stderr.contains("does not take `--router-mode fastest`; it takes "), "{stderr}");
    let rows = s.submit_and_wait(Duration::from_secs(400));
    assert_eq!(rows.len(), 2, "a job per router mode: {rows:#?}");
    all_done_with_server_usage(&s, &rows, 2);
    let mut hit_rate = std::collections::BTreeMap::new();
    for row in results(&s) {
        let mode = row["engine.frontend_args.router_mode"].clone();
        assert!(row["job"].ends_with(&format!("_router_mode-{mode}")), "{row:#?}");
        let script = std::fs::read_to_string(s.dir.join("sweep/jobs").join(&row["job"]).join("job.sbatch"))
            .expect("script");
        assert!(script.contains(&format!("--router-mode {mode}")), "{script}");
        let rate: f64 = row["server_prefix_cache_hit_rate"].parse().unwrap_or_else(|_| panic!("{row:#?}"));
        hit_rate.insert(mode, rate);
    }
    eprintln!("prefix-cache hit rate by router mode: {hit_rate:?}");
    let (kv, round_robin) = (hit_rate["kv"], hit_rate["round-robin"]);
    assert!(kv >= round_robin + 0.1, "KV routing should reuse more: {hit_rate:?}");
}

/// Two Dynamo releases, each in its own venv (`scripts/install-engines.sh` installs both), as one
/// sweep's `engine.venv` axis: each job's steps run from its venv, its provenance records the
/// version found there, and the results keep the two apart (a frontier each, no mixed-version
/// refusal).
const DYNAMO_VERSIONS: &str = "\
name: real-dynamo-versions
model: {path: MODEL, served_name: tiny}
engine:
  kind: dynamo
  backend: mocker
  discovery: file
  health: {interval: 1, timeout: 240}
  venv: [CACHE/dynamo-1.6.0, CACHE/dynamo-1.6.1]
cluster: {gpus_per_node: 4, base_port: BASE, frontend_port: FRONTEND}
mode: agg
agg: {servers: 1, tp: 1, batch: 8, engine_args: {speedup_ratio: 10}}
workload: {isl: 64, osl: 8, concurrency: [1, 2], requests: 8, warmup: 0}
";

#[test]
fn two_dynamo_releases_in_their_own_venvs_are_one_axis_and_stay_apart_in_the_results() {
    let spec = DYNAMO_VERSIONS.replace("CACHE", &engine_cache().display().to_string());
    venv("dynamo-1.6.0");
    let s = Sweep::new("dynamo-versions", venv("dynamo-1.6.1"), &spec);
    let rows = s.submit_and_wait(Duration::from_secs(400));
    assert_eq!(rows.len(), 2, "a job per venv: {rows:#?}");
    all_done_with_server_usage(&s, &rows, 4);
    let table = results(&s);
    for row in &table {
        let venv = &row["engine.venv"];
        let version = venv.rsplit("dynamo-").next().expect("a version");
        assert_eq!(
            &row["engine_version"], version,
            "each point records the version its venv holds: {row:#?}"
        );
        assert!(row["job"].ends_with(&format!("_venv-dynamo-{version}")), "{row:#?}");
        let provenance = sweep_folder::JobDir::new(s.dir.join("sweep/jobs").join(&row["job"]))
            .read_provenance()
            .expect("readable")
            .expect("provenance.json");
        let python = provenance.python.first().unwrap_or_else(|| panic!("{provenance:#?}"));
        assert!(python.python.starts_with(venv.as_str()), "the venv's own interpreter: {python:#?}");
        assert_eq!(python.package_version("ai-dynamo"), Some(version));
    }
    let versions: std::collections::BTreeSet<&str> =
        table.iter().map(|r| r["engine_version"].as_str()).collect();
    assert_eq!(versions.into_iter().collect::<Vec<_>>(), ["1.6.0", "1.6.1"]);
    // The report draws a frontier per installation.
    let (code, _, stderr) = sweep(&["report", "sweep", "-o", "report"], &s.dir);
    assert_eq!(code, 0, "{stderr}");
    let md = std::fs::read_to_string(s.dir.join("report/report.md")).expect("report.md");
    for version in ["1.6.0", "1.6.1"] {
        let group = format!("agg ({}/dynamo-{version}, {version})", engine_cache().display());
        assert!(md.contains(&group), "no frontier group `{group}`:\n{md}");
    }
}

/// vLLM on CPU with speculative decoding (n-gram drafts, 2 per step): the acceptance rate and
/// tokens per step come from vLLM's own `spec_decode` counters through the mapping, into the
/// table and the report's chart. The prompts (a dataset) repeat a phrase, on which the random
/// weights, greedy, fall into a loop the n-grams find (sampled, or on synthetic prompts, they
/// give no draft at all).
const VLLM_SPEC: &str = r#"
name: real-vllm-spec
model: {path: MODEL, served_name: tiny}
engine: {kind: vllm, health: {interval: 1, timeout: 400}}
cluster: {gpus_per_node: 4, base_port: BASE, frontend_port: FRONTEND}
mode: agg
agg:
  tp: 1
  batch: 8
  max_seq_len: 1024
  engine_args:
    enforce_eager: true
    load_format: dummy
    dtype: bfloat16
    speculative_config: {method: ngram, num_speculative_tokens: 2, prompt_lookup_max: 3, prompt_lookup_min: 1}
workload: {isl: 32, osl: 32, concurrency: 2, requests: 8, warmup: 0, endpoint: completions, extra_body: {temperature: 0}, dataset: {path: DATASET}}
"#;

#[test]
fn vllm_speculative_decoding_acceptance_is_read_from_its_own_counters() {
    let s = Sweep::new("vllm-spec", venv("vllm-0.32.0"), VLLM_SPEC);
    let dataset = s.dir.join("prompts.jsonl");
    let line = serde_json::json!({"text": "the of and ".repeat(10).trim(), "output_length": 32});
    std::fs::write(&dataset, format!("{line}\n").repeat(8)).expect("dataset");
    let spec = std::fs::read_to_string(s.dir.join("spec.yaml")).expect("spec");
    std::fs::write(s.dir.join("spec.yaml"), spec.replace("DATASET", &dataset.display().to_string()))
        .expect("spec");
    let rows = s.submit_and_wait(Duration::from_secs(600));
    let measured = all_done_with_server_usage(&s, &rows, 1);
    let m = &measured[0].scraped.measures;
    for (measure, family) in [
        ("spec_drafts", "vllm:spec_decode_num_drafts"),
        ("spec_draft_tokens", "vllm:spec_decode_num_draft_tokens"),
        ("spec_accepted_tokens", "vllm:spec_decode_num_accepted_tokens"),
    ] {
        assert_eq!(m.families.get(measure).map(String::as_str), Some(family), "{m:#?}");
    }
    let rate = m.spec_acceptance_rate.unwrap_or_else(|| panic!("no acceptance: {m:#?}"));
    let per_step = m.spec_tokens_per_step.expect("tokens per step");
    eprintln!("vLLM n-gram speculation: acceptance {rate:.3}, {per_step:.3} tokens per step");
    assert!(rate > 0.0 && rate <= 1.0, "{m:#?}");
    // 2 drafts a step: 1 to 3 tokens per step, and the rate says where (each step proposes 2).
    assert!((1.0..=3.0).contains(&per_step), "{m:#?}");
    assert!((per_step - (1.0 + 2.0 * rate)).abs() < 0.05, "2 draft tokens per proposal: {m:#?}");
    let (code, _, stderr) = sweep(&["report", "sweep"], &s.dir);
    assert_eq!(code, 0, "{stderr}");
    let table = common::csv_rows(&s.dir.join("sweep/report/results.csv"));
    let column: f64 = table[0]["server_spec_acceptance_rate"].parse().expect("the column");
    assert!((column - rate).abs() < 1e-9, "{table:#?}");
    assert!(s.dir.join("sweep/report/plots/server_spec_acceptance.svg").is_file());
}

/// vLLM's own option and an environment variable as knobs, zipped: `max_num_seqs` 2 with a 1 GiB
/// CPU KV cache, and 6 with 2 GiB (`VLLM_CPU_KVCACHE_SPACE`, which the role's `env` sets over the
/// test's own 1). vLLM's log says which arguments it was given and how many KV-cache blocks it
/// made, and the second job has twice the first's.
const VLLM_KNOBS: &str = "\
name: real-vllm-knobs
model: {path: MODEL, served_name: tiny}
engine: {kind: vllm, health: {interval: 1, timeout: 400}}
cluster: {gpus_per_node: 4, base_port: BASE, frontend_port: FRONTEND}
mode: agg
agg:
  tp: 1
  batch: 8
  max_seq_len: 1024
  engine_args: {enforce_eager: true, load_format: dummy, dtype: bfloat16, max_num_seqs: {sweep: [2, 6]}}
  env: {VLLM_CPU_KVCACHE_SPACE: {sweep: ['1', '2']}}
workload: {isl: 32, osl: 8, concurrency: 4, requests: 8, warmup: 0}
sweep: {zip: [[agg.engine_args.max_num_seqs, agg.env.VLLM_CPU_KVCACHE_SPACE]]}
";

#[test]
fn vllm_max_num_seqs_and_its_kv_cache_space_as_knobs_reach_the_engine() {
    let s = Sweep::new("vllm-knobs", venv("vllm-0.32.0"), VLLM_KNOBS);
    let rows = s.submit_and_wait(Duration::from_secs(900));
    assert_eq!(rows.len(), 2, "a job per zipped pair: {rows:#?}");
    all_done_with_server_usage(&s, &rows, 2);
    let mut tokens = std::collections::BTreeMap::new();
    for row in results(&s) {
        let seqs: u64 = row["agg.engine_args.max_num_seqs"].parse().expect("the knob's column");
        let space = &row["agg.env.VLLM_CPU_KVCACHE_SPACE"];
        let log = std::fs::read_to_string(s.dir.join("sweep/jobs").join(&row["job"]).join("logs/agg_0.log"))
            .expect("log");
        // vLLM's own words: the arguments it was given, and the KV cache it made.
        assert!(
            log.contains(&format!("'max_num_seqs': {seqs}}}")),
            "max_num_seqs {seqs} not in vLLM's arguments"
        );
        assert!(log.contains(&format!("Explicitly set ({space}.0/")), "a {space} GiB KV cache:\n{log}");
        let size = log
            .lines()
            .find_map(|l| l.split("CPU KV cache size: ").nth(1))
            .and_then(|rest| rest.split(' ').next())
            .map(|n| n.replace(',', "").parse::<u64>().expect("a token count"))
            .unwrap_or_else(|| panic!("no KV cache size in the log:\n{log}"));
        tokens.insert(seqs, size);
    }
    eprintln!("KV cache tokens by max_num_seqs: {tokens:?}");
    assert_eq!(tokens[&6], 2 * tokens[&2], "twice the space, twice the tokens: {tokens:?}");
}

/// A space of vLLM's own `max_num_seqs` (1, 2, 4) at two loads, measured whole as a grid and
/// then explored: `sweep explore` runs the real engine in waves on the development SLURM
/// cluster; its frontier is held against the grid's (hypervolume ratio, noise allowed), every
/// grid job it did not measure is accounted for with a reason, and a replay of the same choice
/// on the grid starts from the same first wave.
const VLLM_EXPLORE: &str = "\
name: real-vllm-explore
model: {path: MODEL, served_name: tiny}
engine: {kind: vllm, health: {interval: 1, timeout: 400}}
cluster: {gpus_per_node: 4, base_port: BASE, frontend_port: FRONTEND}
mode: agg
agg:
  tp: 1
  batch: 8
  max_seq_len: 1024
  engine_args: {enforce_eager: true, load_format: dummy, dtype: bfloat16, max_num_seqs: {sweep: [1, 2, 4]}}
workload: {isl: 32, osl: 8, concurrency: [1, 4], requests: 8, warmup: 1}
";

#[test]
fn vllm_explored_over_its_own_max_num_seqs_against_the_full_grid() {
    let s = Sweep::new("vllm-explore", venv("vllm-0.32.0"), VLLM_EXPLORE);
    let rows = s.submit_and_wait(Duration::from_secs(900));
    assert_eq!(rows.len(), 3, "{rows:#?}");
    all_done_with_server_usage(&s, &rows, 6);

    let args = [
        "explore",
        "spec.yaml",
        "-o",
        "explore",
        "--budget-share",
        "1",
        "--wave",
        "1",
        "--executor",
        "slurm",
    ];
    let output = s.sweep(&args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}\n{}", s.logs());
    let log: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(s.dir.join("explore/explore.json")).expect("log"))
            .expect("json");
    let waves = log["waves"].as_array().expect("waves");
    let decisions: Vec<serde_json::Value> = waves
        .iter()
        .flat_map(|w| w["decisions"].as_array().cloned().unwrap_or_default())
        .filter(|d| d["choice"] == "chosen")
        .collect();
    let chosen: Vec<String> = decisions.iter().filter_map(|d| d["job"].as_str().map(str::to_owned)).collect();
    let last = waves.last().expect("a wave");
    eprintln!("explored {chosen:?}; stopped: {}", last["stop"]);
    // Each (job, load) is chosen once at most: 3 jobs of 2 loads.
    let pairs: Vec<(String, String)> = decisions
        .iter()
        .flat_map(|d| {
            let job = d["job"].as_str().unwrap_or_default().to_owned();
            d["measure"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(move |l| (job.clone(), l.to_string()))
        })
        .collect();
    let distinct: std::collections::BTreeSet<&(String, String)> = pairs.iter().collect();
    assert!(!pairs.is_empty() && pairs.len() <= 6 && distinct.len() == pairs.len(), "{pairs:?}");
    assert!(last["stop"].is_string(), "{last:#}");
    // Every grid job explore did not measure is in its last wave, with why.
    let grid_jobs: Vec<String> = rows
        .iter()
        .filter_map(|r| r["dir"].as_str())
        .map(|d| d.trim_start_matches("jobs/").to_owned())
        .collect();
    for job in grid_jobs.iter().filter(|j| !chosen.contains(j)) {
        let decision = last["decisions"]
            .as_array()
            .expect("decisions")
            .iter()
            .find(|d| d["job"] == job.as_str())
            .unwrap_or_else(|| panic!("{job} not accounted for: {last:#}"));
        assert!(decision["why"].as_str().is_some_and(|w| !w.is_empty()), "{decision:#}");
    }
    // Its frontier against the grid's. The same engine measured twice on two busy cores
    // differs by far more than a frontier job's absence would (this ratio read 1.45 once with
    // every job measured), so the ratio is reported, not bounded.
    let (code, stdout, stderr) = sweep(&["compare", "sweep", "explore", "--format", "json"], &s.dir);
    assert!(code == 0 || code == 17, "{stderr}");
    let compared: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    let ratio = compared["frontiers"][0]["ratio"].as_f64().expect("a hypervolume ratio");
    eprintln!("explore's hypervolume over the grid's: {ratio:.3}");
    assert!(ratio.is_finite() && ratio > 0.0, "{compared:#}");
    // The replay on the grid starts where the live run started, and a job the live run skipped
    // as unable to reach the frontier is one the grid's own frontier does not need.
    let replay = s.sweep(&[
        "explore",
        "spec.yaml",
        "-o",
        "x",
        "--replay",
        "sweep",
        "--budget-share",
        "1",
        "--wave",
        "1",
    ]);
    assert!(replay.status.success(), "{}", String::from_utf8_lossy(&replay.stderr));
    let run: serde_json::Value = serde_json::from_slice(&replay.stdout).expect("replay json");
    assert!(run["ratio"].as_f64().expect("ratio") > 0.0, "{run:#}");
    let first_wave: Vec<&str> = waves[0]["decisions"]
        .as_array()
        .expect("decisions")
        .iter()
        .filter(|d| d["choice"] == "chosen")
        .filter_map(|d| d["job"].as_str())
        .collect();
    assert_eq!(first_wave.len(), 1);
    assert_eq!(run["order"][0], first_wave[0], "{run:#}");
    assert!(run["growth"].as_array().is_some_and(|g| !g.is_empty()), "{run:#}");
}
