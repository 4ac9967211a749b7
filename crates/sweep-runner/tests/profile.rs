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
        .args(["profile", "--url", url, "--model", "tiny"])
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
