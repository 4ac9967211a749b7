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
    assert_eq!(r["completed"], 4, "{r}");
    assert_eq!(r["output_tokens"], 36, "warm-up requests are not counted");
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
    assert_eq!((r["completed"].as_u64(), r["output_tokens"].as_u64()), (Some(6), Some(54)), "{r}");
}

#[test]
fn counts_errors_by_type_and_completes_nothing_silently() {
    let url = engine(&["--no-delay", "--fault-error-rate", "1", "--fault-error-status", "503"]);
    let r = profile(&url, &["--requests", "5", "--osl", "4"]);
    assert_eq!(r["completed"], 0);
    assert_eq!(r["errors"], serde_json::json!({"http_503": 5}));

    let url = engine(&["--no-delay", "--fault-reset-after-tokens", "2"]);
    let r = profile(&url, &["--requests", "3", "--osl", "8"]);
    assert_eq!(r["errors"], serde_json::json!({"stream_interrupted": 3}), "{r}");

    let url = engine(&["--no-delay"]);
    let r =
        profile(&url, &["--requests", "4", "--osl", "5", "--stream", "false", "--endpoint", "completions"]);
    assert_eq!((r["completed"].as_u64(), r["output_tokens"].as_u64()), (Some(4), Some(20)), "{r}");
}
