//! `sweep-runner profile` against the simulated engine on loopback.

use std::process::Command;

use clap::Parser;

/// Starts the simulated engine on a free port in a background thread; returns its base URL.
fn engine(args: &[&str]) -> String {
    let mut argv = vec!["sweep-mock-engine", "--model", "tiny"];
    argv.extend_from_slice(args);
    let settings = sweep_mock::Settings::try_parse_from(argv).expect("flags");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binds");
    let address = listener.local_addr().expect("address");
    listener.set_nonblocking(true).expect("nonblocking");
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async {
            let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
            let _ = sweep_mock::serve(settings, listener, std::future::pending()).await;
        });
    });
    format!("http://{address}")
}

fn profile(url: &str, extra: &[&str]) -> serde_json::Value {
    let output = Command::new(env!("CARGO_BIN_EXE_sweep-runner"))
        .args(["profile", "--url", url, "--model", "tiny", "--format", "json"])
        .args(extra)
        .output()
        .expect("runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("JSON on stdout")
}

fn count(r: &serde_json::Value, key: &str) -> u64 {
    r[key]["avg"].as_f64().unwrap_or_else(|| panic!("{key} missing: {r}")) as u64
}

#[test]
fn measures_the_engine_model_closely() {
    let url = engine(&[
        "--prefill-base-ms",
        "60",
        "--prefill-per-token-us",
        "0",
        "--decode-base-ms",
        "25",
        "--decode-per-seq-us",
        "0",
        "--decode-per-kv-token-ns",
        "0",
    ]);
    // One at a time, so that no prefill shares a step with another request's decode.
    let r = profile(
        &url,
        &["--concurrency", "1", "--requests", "4", "--warmup", "1", "--isl", "32", "--osl", "9"],
    );
    assert_eq!(r["request_count"]["avg"], 4.0, "{r}");
    assert_eq!(r["total_output_tokens"]["avg"], 36.0, "warm-up requests are not counted");
    assert_eq!(r["warmup_metrics"]["request_count"], 1);
    assert_eq!(r["errors"], serde_json::json!({}));
    let ttft = r["time_to_first_token"]["avg"].as_f64().expect("ttft");
    let itl = r["inter_token_latency"]["avg"].as_f64().expect("itl");
    let latency = r["request_latency"]["avg"].as_f64().expect("latency");
    assert!((57.0..=63.0).contains(&ttft), "TTFT {ttft} ms, model 60 ms");
    assert!((23.75..=26.25).contains(&itl), "ITL {itl} ms, model 25 ms");
    assert!((247.0..=273.0).contains(&latency), "latency {latency} ms, model 60 + 8 × 25 = 260 ms");

    let r = profile(
        &url,
        &["--concurrency", "2", "--requests", "6", "--warmup", "2", "--isl", "32", "--osl", "9"],
    );
    assert_eq!((count(&r, "request_count"), count(&r, "total_output_tokens")), (6, 54), "{r}");
}

#[test]
fn counts_errors_by_type_and_completes_nothing_silently() {
    let url = engine(&["--no-delay", "--fault-error-rate", "1", "--fault-error-status", "503"]);
    let r = profile(&url, &["--requests", "5", "--osl", "4"]);
    assert_eq!(count(&r, "request_count"), 0);
    assert_eq!(r["errors"], serde_json::json!({"http_503": 5}));
    assert_eq!(count(&r, "error_request_count"), 5);

    let url = engine(&["--no-delay", "--fault-reset-after-tokens", "2"]);
    let r = profile(&url, &["--requests", "3", "--osl", "8"]);
    assert_eq!(r["errors"], serde_json::json!({"stream_interrupted": 3}), "{r}");

    let url = engine(&["--no-delay"]);
    let r =
        profile(&url, &["--requests", "4", "--osl", "5", "--stream", "false", "--endpoint", "completions"]);
    assert_eq!((count(&r, "request_count"), count(&r, "total_output_tokens")), (4, 20), "{r}");
}

/// Tokens/s per user and per GPU from one closed-loop run.
fn rates(engine_args: &[&str], concurrency: u32, tp: f64) -> (f64, f64) {
    let url = engine(&[engine_args, &["--speedup", "5"]].concat());
    let c = concurrency.to_string();
    let requests = (concurrency * 2).to_string();
    let r = profile(
        &url,
        &["--concurrency", &c, "--requests", &requests, "--warmup", &c, "--isl", "64", "--osl", "32"],
    );
    let per_user = 1000.0 / r["inter_token_latency"]["avg"].as_f64().expect("itl");
    let per_gpu = r["output_token_throughput"]["avg"].as_f64().expect("throughput") / tp;
    (per_user, per_gpu)
}

#[test]
fn the_default_model_shows_the_trade_offs_of_real_sweeps() {
    // Batch: throughput per GPU rises with batch while tokens per user fall.
    let (user_b1, gpu_b1) = rates(&["--max-batch", "1"], 1, 1.0);
    let (user_b32, gpu_b32) = rates(&["--max-batch", "32"], 32, 1.0);
    assert!(gpu_b32 > 5.0 * gpu_b1, "per-GPU {gpu_b1:.0} → {gpu_b32:.0} tokens/s");
    assert!(user_b32 < 0.9 * user_b1, "per-user {user_b1:.0} → {user_b32:.0} tokens/s");
    // TP: faster per user, less per GPU (tp^0.8 speed-up for tp GPUs).
    let (user_tp4, gpu_tp4) = rates(&["--max-batch", "8", "--tp", "4"], 8, 4.0);
    let (user_tp1, gpu_tp1) = rates(&["--max-batch", "8"], 8, 1.0);
    assert!(user_tp4 > 2.0 * user_tp1, "per-user TP1 {user_tp1:.0}, TP4 {user_tp4:.0}");
    assert!(gpu_tp4 < gpu_tp1, "per-GPU TP1 {gpu_tp1:.0}, TP4 {gpu_tp4:.0}");
    // MTP: more tokens per step than the longer step costs.
    let (user_mtp3, _) = rates(&["--max-batch", "8", "--mtp", "3"], 8, 1.0);
    assert!(user_mtp3 > 1.5 * user_tp1, "per-user MTP0 {user_tp1:.0}, MTP3 {user_mtp3:.0}");
}

#[test]
fn an_open_loop_sends_on_its_schedule_and_writes_every_request() {
    let url = engine(&["--no-delay"]);
    let dir = std::env::temp_dir().join(format!("sweep-open-loop-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let r = profile(
        &url,
        &[
            "--arrival",
            "poisson",
            "--request-rate",
            "200",
            "--requests",
            "200",
            "--warmup",
            "5",
            "--osl",
            "4",
            "--seed",
            "9",
            "--artifact-dir",
            dir.to_str().expect("utf-8"),
        ],
    );
    assert_eq!(count(&r, "request_count"), 200, "{r}");
    // 199 exponential gaps with mean 5 ms: about 1 s (the seeded draw, ± the last response).
    let duration = r["benchmark_duration"]["avg"].as_f64().expect("duration");
    assert!((0.7..1.4).contains(&duration), "{duration} s");
    let lag = r["credit_to_start_latency"]["p99"].as_f64().expect("send lag");
    // Loose: tests share two cores; the benchmark (docs/benchmarks.md) measures the real lag.
    assert!(lag < 100.0, "sends leave on time: p99 lag {lag} ms");
    assert_eq!(r["input_config"]["phases"][1]["type"], "request_rate");
    let lines = std::fs::read_to_string(dir.join("profile_export.jsonl")).expect("records");
    assert_eq!(lines.lines().count(), 205, "every request, warm-up included");
    let csv = std::fs::read_to_string(dir.join("profile_export_aiperf.csv")).expect("csv");
    assert!(csv.contains("Request Count (requests),200.00"), "{csv}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("profile_export_aiperf.json")).expect("json"))
            .expect("JSON");
    assert_eq!(json["request_count"], r["request_count"]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A server that answers each request with one streamed token and, as servers' keep-alive
/// timeouts do, closes a connection once it has been idle for 30 ms; counts its connections.
fn closing_server() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binds");
    let address = listener.local_addr().expect("address");
    let connections = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = connections.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            std::thread::spawn(move || {
                stream.set_read_timeout(Some(std::time::Duration::from_millis(30))).expect("timeout");
                let body = "data: {\"choices\":[{\"text\":\"x\"}]}\n\n\
                            data: {\"choices\":[],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":1}}\n\n\
                            data: [DONE]\n\n";
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                );
                let (mut pending, mut chunk) = (Vec::new(), [0u8; 4096]);
                loop {
                    // Idle too long (or closed): drop the connection.
                    let Ok(n @ 1..) = stream.read(&mut chunk) else { return };
                    pending.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&pending).into_owned();
                    let Some(head) = text.find("\r\n\r\n") else { continue };
                    let length: usize = text[..head]
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().to_owned())
                        })
                        .and_then(|v| v.parse().ok())
                        .expect("content-length");
                    if pending.len() >= head + 4 + length {
                        pending.drain(..head + 4 + length);
                        stream.write_all(answer.as_bytes()).expect("answers");
                    }
                }
            });
        }
    });
    (format!("http://{address}"), connections)
}

#[test]
fn an_open_loop_resends_on_a_new_connection_when_the_server_closed_the_idle_one() {
    // 10 requests/s: each request after the first finds its kept-alive connection closed by
    // the server 70 ms earlier; the timing thread's write on it goes nowhere and the request
    // is sent again on a new connection, not lost or counted as an error.
    let (url, connections) = closing_server();
    let r = profile(
        &url,
        &[
            "--endpoint",
            "completions",
            "--arrival",
            "constant",
            "--request-rate",
            "10",
            "--requests",
            "6",
            "--osl",
            "1",
        ],
    );
    assert_eq!(count(&r, "request_count"), 6, "{r}");
    assert_eq!(r["error_request_count"]["avg"].as_f64().unwrap_or(0.0), 0.0, "{r}");
    assert_eq!(connections.load(std::sync::atomic::Ordering::SeqCst), 6, "one connection per request");
}

/// A server that records each prompt and answers with one streamed token.
fn capturing_server() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use axum::routing::post;
    let prompts = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = prompts.clone();
    let app = axum::Router::new().route(
        "/v1/completions",
        post(move |body: String| {
            let seen = seen.clone();
            async move {
                let v: serde_json::Value = serde_json::from_str(&body).expect("JSON body");
                seen.lock().expect("lock").push(v["prompt"].as_str().expect("prompt").to_owned());
                let words = v["prompt"].as_str().unwrap_or_default().split(' ').count();
                format!(
                    "data: {{\"choices\":[{{\"text\":\"x\"}}]}}\n\ndata: {{\"choices\":[],\"usage\":{{\"prompt_tokens\":{words},\"completion_tokens\":1}}}}\n\ndata: [DONE]\n\n"
                )
            }
        }),
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binds");
    let address = listener.local_addr().expect("address");
    listener.set_nonblocking(true).expect("nonblocking");
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            let _ = axum::serve(listener, app).await;
        });
    });
    (format!("http://{address}"), prompts)
}

#[test]
fn a_trace_replays_its_timing_and_shared_prefixes_reach_the_server() {
    let (url, prompts) = capturing_server();
    let dir = std::env::temp_dir().join(format!("sweep-trace-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let trace = dir.join("trace.jsonl");
    std::fs::write(
        &trace,
        concat!(
            "{\"timestamp\": 0, \"input_length\": 10, \"output_length\": 1, \"hash_ids\": [1, 2, 3]}\n",
            "{\"timestamp\": 300, \"input_length\": 12, \"output_length\": 1, \"hash_ids\": [1, 2, 4]}\n",
            "{\"timestamp\": 600, \"input_length\": 8, \"output_length\": 1, \"hash_ids\": [5, 6]}\n",
        ),
    )
    .expect("trace");
    let started = std::time::Instant::now();
    let r = profile(
        &url,
        &["--endpoint", "completions", "--trace", trace.to_str().expect("utf-8"), "--block-size", "4"],
    );
    assert!(started.elapsed() >= std::time::Duration::from_millis(600), "the timestamps were kept");
    assert_eq!(count(&r, "request_count"), 3, "{r}");
    assert_eq!(count(&r, "total_isl"), 30, "ISL from the server's usage");
    let prompts = prompts.lock().expect("lock").clone();
    let words: Vec<Vec<&str>> = prompts.iter().map(|p| p.split(' ').collect()).collect();
    assert_eq!(words.iter().map(Vec::len).collect::<Vec<_>>(), [10, 12, 8]);
    assert_eq!(words[0][..8], words[1][..8], "hash ids 1 and 2: the same 8-token prefix");
    assert_ne!(words[0][8..10], words[1][8..10], "block 3 and block 4 differ");
    assert_ne!(words[0][..4], words[2][..4], "block 1 and block 5 differ");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A tokenizer.json that makes every character one token, so its counts differ from the
/// simulated engine's (which counts words) and from prompt words.
fn char_tokenizer(dir: &std::path::Path) -> std::path::PathBuf {
    let json = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
        "normalizer": null,
        "pre_tokenizer": {"type": "Split", "pattern": {"Regex": "."}, "behavior": "Isolated", "invert": false},
        "post_processor": null, "decoder": null,
        "model": {"type": "WordLevel", "vocab": {"[UNK]": 0, "t": 1, "o": 2, "k": 3}, "unk_token": "[UNK]"},
    });
    let path = dir.join("tokenizer.json");
    std::fs::write(&path, json.to_string()).expect("tokenizer.json");
    path
}

#[test]
fn token_counts_come_from_a_local_tokenizer_when_given_and_say_so() {
    let dir = std::env::temp_dir().join(format!("sweep-tokenizer-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let tokenizer = char_tokenizer(&dir);
    let url = engine(&["--no-delay"]);
    let base = ["--requests", "3", "--isl", "20", "--osl", "12"];

    // By default: the server's usage (the engine counts words).
    let r = profile(&url, &base);
    assert_eq!(r["token_source"], "server_usage", "{r}");
    assert_eq!(count(&r, "output_sequence_length"), 12);
    assert_eq!(r["input_config"]["tokenizer"]["name"], serde_json::Value::Null);

    // With a tokenizer: the streamed text " tok0 … tok11" is 10 × 5 + 2 × 6 characters.
    let artifacts = dir.join("out");
    let mut args = base.to_vec();
    args.extend([
        "--tokenizer",
        dir.to_str().expect("utf-8"),
        "--artifact-dir",
        artifacts.to_str().expect("utf-8"),
    ]);
    let r = profile(&url, &args);
    assert_eq!(r["token_source"], "tokenizer", "{r}");
    assert_eq!(r["input_config"]["tokenizer"]["name"], tokenizer.display().to_string());
    assert_eq!(r["input_config"]["endpoint"]["use_server_token_count"], false);
    assert_eq!(count(&r, "output_sequence_length"), 62, "{r}");
    assert_eq!(count(&r, "input_sequence_length"), 20, "prompts fitted to ISL in the tokenizer's tokens");
    let records = std::fs::read_to_string(artifacts.join("profile_export.jsonl")).expect("records");
    for line in records.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("JSON line");
        assert_eq!(v["metadata"]["token_source"], "tokenizer");
        assert_eq!(v["metrics"]["output_sequence_length"]["value"].as_f64(), Some(62.0));
        assert_eq!(v["metrics"]["input_sequence_length"]["value"].as_f64(), Some(20.0));
    }

    // What reaches the server is what was counted: 20 characters.
    let (url, seen) = capturing_server();
    let r = profile(
        &url,
        &[
            "--endpoint",
            "completions",
            "--requests",
            "2",
            "--isl",
            "20",
            "--tokenizer",
            tokenizer.to_str().expect("utf-8"),
        ],
    );
    assert_eq!(count(&r, "output_sequence_length"), 1, "{r}");
    let prompts = seen.lock().expect("lock").clone();
    assert_eq!(prompts.iter().map(|p| p.chars().count()).collect::<Vec<_>>(), [20, 20], "{prompts:?}");

    // A tokenizer that is not there stops the run before anything is sent.
    let output = Command::new(env!("CARGO_BIN_EXE_sweep-runner"))
        .args(["profile", "--url", &url, "--model", "tiny", "--requests", "1", "--tokenizer"])
        .arg(dir.join("missing.json"))
        .output()
        .expect("runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("missing.json") && stderr.contains("does not exist"), "{stderr}");
    assert_eq!(seen.lock().expect("lock").len(), 2, "nothing sent");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_default_output_is_a_summary_table_and_json_is_asked_for() {
    let url = engine(&[]);
    let output = Command::new(env!("CARGO_BIN_EXE_sweep-runner"))
        .args(["profile", "--url", &url, "--model", "tiny", "--requests", "4", "--progress", "off"])
        .output()
        .expect("runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let text = String::from_utf8_lossy(&output.stdout);
    let header: Vec<&str> = text.lines().next().unwrap_or_default().split_whitespace().collect();
    assert_eq!(header, ["avg", "min", "p50", "p90", "p99", "max"], "{text}");
    for row in ["time to first token (ms)", "inter-token latency (ms)", "request throughput", "requests "] {
        assert!(text.contains(row), "{row}: {text}");
    }
    assert!(text.contains("4 (0 errors, 0 cancelled)"), "{text}");
    assert!(serde_json::from_str::<serde_json::Value>(&text).is_err(), "not JSON unless asked");
}
