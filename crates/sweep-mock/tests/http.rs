//! The simulated engine over real HTTP on loopback, in process: protocol, token accounting,
//! timing, queueing, the disaggregated path and every in-process fault.

use std::time::{Duration, Instant};

use clap::Parser;
use futures_util::StreamExt;
use sweep_mock::Settings;

/// A server on a free loopback port, stopped when dropped.
struct Server {
    base: String,
    address: String,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn start(args: &[&str]) -> Server {
    let mut argv = vec!["sweep-mock-engine", "--model", "tiny"];
    argv.extend_from_slice(args);
    let settings = Settings::try_parse_from(argv).expect("valid flags");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("binds");
    let address = listener.local_addr().expect("address").to_string();
    let task = tokio::spawn(sweep_mock::serve(settings, listener, std::future::pending()));
    Server { base: format!("http://{address}"), address, task }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().expect("client")
}

async fn get_json(url: String) -> serde_json::Value {
    client().get(url).send().await.expect("sends").json().await.expect("JSON")
}

async fn get_text(url: String) -> String {
    client().get(url).send().await.expect("sends").text().await.expect("text")
}

async fn post_json(url: String, body: impl Into<reqwest::Body>) -> serde_json::Value {
    client().post(url).body(body).send().await.expect("sends").json().await.expect("JSON")
}

fn chat_body(words: usize, max_tokens: u32, stream: bool) -> String {
    let prompt = vec!["word"; words].join(" ");
    serde_json::json!({
        "model": "tiny",
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "min_tokens": max_tokens,
        "ignore_eos": true,
        "stream": stream,
        "stream_options": {"include_usage": true},
    })
    .to_string()
}

/// One streamed response: each SSE event's arrival time and payload.
struct Streamed {
    started: Instant,
    events: Vec<(Instant, String)>,
    error: Option<String>,
}

impl Streamed {
    fn json_events(&self) -> Vec<serde_json::Value> {
        self.events
            .iter()
            .filter(|(_, e)| e != "[DONE]")
            .map(|(_, e)| serde_json::from_str(e).expect("event is JSON"))
            .collect()
    }

    fn content_times(&self) -> Vec<Instant> {
        self.events
            .iter()
            .filter(|(_, e)| e.contains("\"content\":\"") || e.contains("\"text\":\" "))
            .map(|(t, _)| *t)
            .collect()
    }

    fn text(&self) -> String {
        self.json_events()
            .iter()
            .filter_map(|e| {
                let choice = &e["choices"][0];
                choice["delta"]["content"].as_str().or(choice["text"].as_str()).map(str::to_owned)
            })
            .collect()
    }
}

async fn stream(base: &str, path: &str, body: String, limit: Duration) -> Streamed {
    // Time from the send, not from building the client: that is no part of the engine's TTFT,
    // and on a loaded machine it took long enough to push TTFT past the model's 5 %.
    let client = client();
    let started = Instant::now();
    let response = client
        .post(format!("{base}{path}"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("sends");
    assert_eq!(response.status(), 200);
    let mut body = response.bytes_stream();
    let mut buffer = String::new();
    let mut events = Vec::new();
    let mut error = None;
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, body.next()).await {
            Err(_) => {
                error = Some("timed out".to_owned());
                break;
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                error = Some(e.to_string());
                break;
            }
            Ok(Some(Ok(bytes))) => {
                let now = Instant::now();
                buffer.push_str(std::str::from_utf8(&bytes).expect("utf-8"));
                while let Some(end) = buffer.find("\n\n") {
                    let event: String = buffer.drain(..end + 2).collect();
                    let payload = event.trim_end().strip_prefix("data: ").expect("SSE data line").to_owned();
                    events.push((now, payload));
                }
            }
        }
    }
    Streamed { started, events, error }
}

#[tokio::test]
async fn streams_chat_with_exact_tokens_and_usage() {
    let server = start(&["--no-delay"]).await;
    let s =
        stream(&server.base, "/v1/chat/completions", chat_body(128, 64, true), Duration::from_secs(10)).await;
    assert_eq!(s.error, None);
    assert_eq!(s.events.last().map(|(_, e)| e.as_str()), Some("[DONE]"));
    let events = s.json_events();
    assert_eq!(events[0]["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(s.text().split_whitespace().count(), 64, "exactly max_tokens output tokens");
    let finish = &events[events.len() - 2];
    assert_eq!(finish["choices"][0]["finish_reason"], "length");
    let usage = &events[events.len() - 1];
    assert_eq!(usage["choices"].as_array().map(Vec::len), Some(0));
    assert_eq!(usage["usage"]["prompt_tokens"], 128);
    assert_eq!(usage["usage"]["completion_tokens"], 64);
    assert_eq!(usage["usage"]["total_tokens"], 192);
}

#[tokio::test]
async fn completions_stream_and_whole_responses() {
    let server = start(&["--no-delay"]).await;
    let body =
        serde_json::json!({"model": "tiny", "prompt": "one two three", "max_tokens": 5, "stream": true})
            .to_string();
    let s = stream(&server.base, "/v1/completions", body, Duration::from_secs(10)).await;
    assert_eq!(s.text().split_whitespace().count(), 5);
    assert!(s.json_events().iter().all(|e| e["object"] == "text_completion"));
    assert!(s.json_events().iter().all(|e| e.get("usage").is_none()), "no usage unless asked");

    let whole: serde_json::Value =
        post_json(format!("{}/v1/chat/completions", server.base), chat_body(10, 7, false)).await;
    assert_eq!(whole["object"], "chat.completion");
    assert_eq!(
        whole["choices"][0]["message"]["content"].as_str().map(|t| t.split_whitespace().count()),
        Some(7)
    );
    assert_eq!(whole["usage"]["prompt_tokens"], 10);
    assert_eq!(whole["usage"]["completion_tokens"], 7);

    // Without ignore_eos the simulated EOS ends the output early, with finish reason "stop".
    let eos: serde_json::Value = post_json(
        format!("{}/v1/completions", server.base),
        r#"{"model":"tiny","prompt":"a","max_tokens":100}"#,
    )
    .await;
    assert_eq!(eos["usage"]["completion_tokens"], 16);
    assert_eq!(eos["choices"][0]["finish_reason"], "stop");
}

#[tokio::test]
async fn bad_requests_get_openai_error_bodies() {
    let server = start(&["--no-delay"]).await;
    let cases: &[(&str, &str, u16)] = &[
        ("/v1/chat/completions", "{\"model\": \"tiny\", \"messages\": [", 400),
        ("/v1/chat/completions", r#"{"messages":[{"role":"user","content":"x"}]}"#, 400),
        ("/v1/chat/completions", r#"{"model":"gpt-4","messages":[{"role":"user","content":"x"}]}"#, 404),
        ("/v1/chat/completions", r#"{"model":"tiny"}"#, 400),
        ("/v1/chat/completions", r#"{"model":"tiny","messages":"hello"}"#, 400),
        ("/v1/completions", r#"{"model":"tiny"}"#, 400),
        ("/v1/completions", r#"{"model":"tiny","prompt":"x","max_tokens":0}"#, 400),
        ("/v1/completions", r#"{"model":"tiny","prompt":"x","max_tokens":4,"min_tokens":8}"#, 400),
    ];
    for (path, body, status) in cases {
        let response =
            client().post(format!("{}{path}", server.base)).body(*body).send().await.expect("sends");
        assert_eq!(response.status().as_u16(), *status, "{body}");
        let error: serde_json::Value = response.json().await.expect("error body is JSON");
        assert!(error["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}: {error}");
        assert!(error["error"]["type"].is_string(), "{body}: {error}");
    }
    let unknown = client().get(format!("{}/v1/nothing", server.base)).send().await.expect("sends");
    assert_eq!(unknown.status(), 404);
}

#[tokio::test]
async fn models_health_and_metrics() {
    let server = start(&["--no-delay"]).await;
    let models: serde_json::Value = get_json(format!("{}/v1/models", server.base)).await;
    assert_eq!(models["data"][0]["id"], "tiny");
    let health: serde_json::Value = get_json(format!("{}/health", server.base)).await;
    assert_eq!(health["instances"][0]["role"], "agg");
    assert_eq!(health["instances"][0]["address"], server.address);
    stream(&server.base, "/v1/chat/completions", chat_body(8, 3, true), Duration::from_secs(5)).await;
    let metrics = get_text(format!("{}/metrics", server.base)).await;
    for line in [
        "sweep_mock_generation_tokens_total{role=\"agg\"} 3",
        "sweep_mock_prompt_tokens_total{role=\"agg\"} 8",
        "sweep_mock_num_requests_running{role=\"agg\"} 0",
        "sweep_mock_num_requests_waiting{role=\"agg\"} 0",
        "# TYPE sweep_mock_kv_cache_usage_ratio gauge",
    ] {
        assert!(metrics.contains(line), "missing {line} in\n{metrics}");
    }
}

/// A model with round numbers: prefill 200 ms, decode steps of 50 ms, nothing else.
const TIMED: &[&str] = &[
    "--prefill-base-ms",
    "200",
    "--prefill-per-token-us",
    "0",
    "--decode-base-ms",
    "50",
    "--decode-per-seq-us",
    "0",
    "--decode-per-kv-token-ns",
    "0",
];

/// The mean of a histogram family the engine exports, from its `_sum` and `_count`.
fn engine_mean(metrics: &str, family: &str) -> f64 {
    let value = |suffix: &str| -> f64 {
        metrics
            .lines()
            .find(|l| l.starts_with(&format!("{family}_{suffix}")))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {family}_{suffix} in {metrics}"))
    };
    value("sum") / value("count")
}

/// Timed by the engine's own clock (its TTFT and inter-token histograms), which a client
/// slowed by a busy machine does not move: only the engine's own sleeps count.
#[tokio::test]
async fn ttft_and_inter_token_gaps_follow_the_model_within_5_percent() {
    let server = start(TIMED).await;
    let s =
        stream(&server.base, "/v1/chat/completions", chat_body(100, 11, true), Duration::from_secs(10)).await;
    assert_eq!(s.content_times().len(), 11);
    let metrics = get_text(format!("{}/metrics", server.base)).await;
    let ttft = engine_mean(&metrics, "sweep_mock_time_to_first_token_seconds") * 1000.0;
    let itl = engine_mean(&metrics, "sweep_mock_inter_token_latency_seconds") * 1000.0;
    assert!((190.0..=210.0).contains(&ttft), "TTFT {ttft:.1} ms, model 200 ms");
    assert!((47.5..=52.5).contains(&itl), "mean inter-token gap {itl:.2} ms, model 50 ms");

    // MTP with acceptance 1: each decode step yields mtp + 1 tokens and costs 1 + 0.1 × mtp more:
    // 65 ms a step, 16.25 ms a token.
    let server = start(&[TIMED, &["--mtp", "3", "--mtp-acceptance", "1"]].concat()).await;
    let s =
        stream(&server.base, "/v1/chat/completions", chat_body(100, 13, true), Duration::from_secs(10)).await;
    assert_eq!(s.content_times().len(), 4, "1 token from prefill, then 3 steps of 4 tokens");
    assert_eq!(s.text().split_whitespace().count(), 13);
    let metrics = get_text(format!("{}/metrics", server.base)).await;
    let itl = engine_mean(&metrics, "sweep_mock_inter_token_latency_seconds") * 1000.0;
    assert!((15.44..=17.06).contains(&itl), "MTP per-token gap {itl:.2} ms, model 16.25 ms");
}

#[tokio::test]
async fn requests_queue_when_the_batch_is_full() {
    let server = start(&[TIMED, &["--max-batch", "2", "--prefill-base-ms", "20"]].concat()).await;
    let runs = (0..4).map(|_| {
        stream(&server.base, "/v1/chat/completions", chat_body(10, 6, true), Duration::from_secs(10))
    });
    let probe = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        get_text(format!("{}/metrics", server.base)).await
    };
    let (results, metrics) = tokio::join!(futures_util::future::join_all(runs), probe);
    assert!(metrics.contains("sweep_mock_num_requests_running{role=\"agg\"} 2"), "{metrics}");
    assert!(metrics.contains("sweep_mock_num_requests_waiting{role=\"agg\"} 2"), "{metrics}");
    let mut ttfts: Vec<f64> =
        results.iter().map(|s| (s.content_times()[0] - s.started).as_secs_f64() * 1000.0).collect();
    ttfts.sort_by(f64::total_cmp);
    // Two run at once (prefill 20 ms); two wait for them: 20 + 5 × 50 ms, then their own prefill.
    assert!(ttfts[1] < 60.0, "{ttfts:?}");
    assert!(ttfts[2] > 250.0, "{ttfts:?}");
}

/// A router's `/health` once it answers 200 listing `n` workers (its last answer after 2.5 s).
async fn health_listing(base: &str, n: usize) -> serde_json::Value {
    let mut health = serde_json::Value::Null;
    for _ in 0..50 {
        let response = client().get(format!("{base}/health")).send().await.expect("sends");
        let ok = response.status() == 200;
        health = response.json().await.expect("JSON");
        if ok && health["instances"].as_array().is_some_and(|i| i.len() == n) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    health
}

#[tokio::test]
async fn disaggregated_path_spreads_over_two_ctx_and_two_gen_workers() {
    let dir = std::env::temp_dir().join(format!("sweep-mock-rdv-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("rendezvous dir");
    let rdv = dir.to_str().expect("utf-8");
    let fast = ["--no-delay", "--rendezvous", rdv];
    let workers = [
        start(&[&["--role", "ctx"], &fast[..]].concat()).await,
        start(&[&["--role", "ctx"], &fast[..]].concat()).await,
        start(&[&["--role", "gen"], &fast[..]].concat()).await,
        start(&[&["--role", "gen"], &fast[..]].concat()).await,
    ];
    let router = start(&["--role", "router", "--rendezvous", rdv]).await;
    // The router finds the workers through the rendezvous folder.
    let health = health_listing(&router.base, 4).await;
    let roles: Vec<&str> = health["instances"]
        .as_array()
        .expect("instances")
        .iter()
        .filter_map(|i| i["role"].as_str())
        .collect();
    assert_eq!(roles, ["ctx", "ctx", "gen", "gen"], "{health}");

    let runs = (0..8).map(|i| {
        stream(&router.base, "/v1/chat/completions", chat_body(50 + i, 20, true), Duration::from_secs(10))
    });
    for (i, s) in futures_util::future::join_all(runs).await.iter().enumerate() {
        assert_eq!(s.error, None);
        assert_eq!(s.text().split_whitespace().count(), 20);
        let usage = &s.json_events()[s.json_events().len() - 1]["usage"];
        assert_eq!(usage["prompt_tokens"], 50 + i as u64);
        assert_eq!(usage["completion_tokens"], 20);
    }
    let metrics = get_text(format!("{}/metrics", router.base)).await;
    for worker in &workers {
        let line = metrics
            .lines()
            .find(|l| l.starts_with("sweep_mock_router_requests_total") && l.contains(&worker.address));
        assert!(
            line.is_some_and(|l| l.ends_with(" 4")),
            "round robin sends 4 of 8 to {}:\n{metrics}",
            worker.address
        );
    }
    // Each gen worker decoded 4 × 19 tokens; each ctx worker prefilled 4 prompts.
    for worker in &workers[2..] {
        let text = get_text(format!("{}/metrics", worker.base)).await;
        assert!(text.contains("sweep_mock_generation_tokens_total{role=\"gen\"} 76"), "{text}");
    }
    // Clients cannot bypass the router.
    let direct = client()
        .post(format!("{}/v1/chat/completions", workers[0].base))
        .body(chat_body(5, 5, false))
        .send()
        .await
        .expect("sends");
    assert_eq!(direct.status(), 404);
    std::fs::remove_dir_all(&dir).ok();
}

/// An aggregated job of several servers: the router sends each request whole to one AGG worker
/// (it once knew only CTX and GEN workers and answered "waiting for workers" forever).
#[tokio::test]
async fn aggregated_workers_behind_the_router_each_serve_whole_requests() {
    let dir = std::env::temp_dir().join(format!("sweep-mock-rdv-agg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("rendezvous dir");
    let rdv = dir.to_str().expect("utf-8");
    let fast = ["--role", "agg", "--no-delay", "--rendezvous", rdv];
    let workers = [start(&fast).await, start(&fast).await];
    let router = start(&["--role", "router", "--rendezvous", rdv]).await;
    let health = health_listing(&router.base, 2).await;
    assert_eq!(health["status"], "healthy", "{health}");
    let roles: Vec<&str> = health["instances"]
        .as_array()
        .expect("instances")
        .iter()
        .filter_map(|i| i["role"].as_str())
        .collect();
    assert_eq!(roles, ["agg", "agg"], "{health}");
    let runs = (0..6).map(|i| {
        stream(&router.base, "/v1/chat/completions", chat_body(30 + i, 12, true), Duration::from_secs(10))
    });
    for s in futures_util::future::join_all(runs).await {
        assert_eq!(s.error, None);
        assert_eq!(s.text().split_whitespace().count(), 12);
    }
    // Round robin: 3 whole requests each, prefill and decode on the same worker.
    for worker in &workers {
        let text = get_text(format!("{}/metrics", worker.base)).await;
        assert!(text.contains("sweep_mock_generation_tokens_total{role=\"agg\"} 36"), "{text}");
        assert!(text.contains("sweep_mock_requests_finished_total{role=\"agg\"} 3"), "{text}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn least_loaded_routing_spares_the_busy_worker() {
    let ctx = start(&["--role", "ctx", "--no-delay"]).await;
    // One slow GEN worker (200 ms decode steps) and one instant one.
    let slow = start(&["--role", "gen", "--decode-base-ms", "200", "--decode-per-seq-us", "0"]).await;
    let fast = start(&["--role", "gen", "--no-delay"]).await;
    let served = |routing: &'static str| {
        let (ctx, slow, fast) = (ctx.address.clone(), slow.address.clone(), fast.address.clone());
        async move {
            let router = start(&[
                "--role",
                "router",
                "--routing",
                routing,
                "--ctx",
                &ctx,
                "--gen",
                &slow,
                "--gen",
                &fast,
            ])
            .await;
            // Two clients, each sending its next request when the last one ends, 16 in all: a
            // request that lands on the slow worker holds it while the other client carries on.
            let left = std::sync::atomic::AtomicU32::new(16);
            let client_loop = || async {
                while left
                    .fetch_update(
                        std::sync::atomic::Ordering::Relaxed,
                        std::sync::atomic::Ordering::Relaxed,
                        |n| n.checked_sub(1),
                    )
                    .is_ok()
                {
                    let body =
                        r#"{"model":"tiny","prompt":"a b","max_tokens":4,"ignore_eos":true,"stream":true}"#;
                    stream(&router.base, "/v1/completions", body.to_owned(), Duration::from_secs(20)).await;
                }
            };
            tokio::join!(client_loop(), client_loop());
            let metrics = get_text(format!("{}/metrics", router.base)).await;
            let count = |address: &str| -> u64 {
                metrics
                    .lines()
                    .find(|l| l.starts_with("sweep_mock_router_requests_total") && l.contains(address))
                    .and_then(|l| l.rsplit(' ').next())
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0)
            };
            (count(&slow), count(&fast))
        }
    };
    assert_eq!(served("round-robin").await, (8, 8));
    let (to_slow, to_fast) = served("least-loaded").await;
    assert_eq!(to_slow + to_fast, 16);
    assert!(to_slow <= 5, "least-loaded sent {to_slow} of 16 to the busy worker");
}

#[tokio::test]
async fn router_without_workers_is_not_healthy_and_says_why() {
    let router = start(&["--role", "router"]).await;
    let response = client().get(format!("{}/health", router.base)).send().await.expect("sends");
    assert_eq!(response.status(), 503);
    let body: serde_json::Value =
        post_json(format!("{}/v1/chat/completions", router.base), chat_body(5, 5, false)).await;
    assert!(body["error"]["message"].as_str().is_some_and(|m| m.contains("no ctx worker")), "{body}");
}

#[tokio::test]
async fn fault_slow_start_answers_503_then_serves() {
    let server = start(&["--no-delay", "--fault-slow-start", "0.4"]).await;
    let early = client().get(format!("{}/health", server.base)).send().await.expect("sends");
    assert_eq!(early.status(), 503);
    let early = client()
        .post(format!("{}/v1/chat/completions", server.base))
        .body(chat_body(5, 2, false))
        .send()
        .await
        .expect("sends");
    assert_eq!(early.status(), 503);
    tokio::time::sleep(Duration::from_millis(450)).await;
    let late = client().get(format!("{}/health", server.base)).send().await.expect("sends");
    assert_eq!(late.status(), 200);
}

#[tokio::test]
async fn fault_hang_stalls_the_stream_after_n_tokens_and_keeps_it_open() {
    let server = start(&["--no-delay", "--fault-hang-after-tokens", "5"]).await;
    let s = stream(&server.base, "/v1/chat/completions", chat_body(5, 20, true), Duration::from_millis(800))
        .await;
    assert_eq!(s.error.as_deref(), Some("timed out"), "the connection stays open");
    assert_eq!(s.text().split_whitespace().count(), 5);
}

#[tokio::test]
async fn fault_reset_drops_the_connection_after_n_tokens() {
    let server = start(&["--no-delay", "--fault-reset-after-tokens", "3"]).await;
    let s =
        stream(&server.base, "/v1/chat/completions", chat_body(5, 20, true), Duration::from_secs(5)).await;
    assert!(s.error.as_deref().is_some_and(|e| e != "timed out"), "{:?}", s.error);
    assert_eq!(s.text().split_whitespace().count(), 3);
    assert!(!s.events.iter().any(|(_, e)| e == "[DONE]"));
}

#[tokio::test]
async fn fault_error_rate_fails_exactly_the_requests_its_dice_pick() {
    let server = start(&[
        "--no-delay",
        "--fault-error-rate",
        "0.3",
        "--fault-error-status",
        "503",
        "--fault-seed",
        "9",
    ])
    .await;
    let mut failed = Vec::new();
    for n in 1..=60u64 {
        let response = client()
            .post(format!("{}/v1/completions", server.base))
            .body(r#"{"model":"tiny","prompt":"a","max_tokens":1}"#)
            .send()
            .await
            .expect("sends");
        match response.status().as_u16() {
            200 => {}
            503 => failed.push(n),
            other => panic!("unexpected status {other}"),
        }
    }
    let expected: Vec<u64> =
        (1..=60).filter(|&n| sweep_mock::faults::Dice::new(9, n, 1).chance(0.3)).collect();
    assert_eq!(failed, expected);
    assert!((8..=30).contains(&failed.len()), "{failed:?}");
}

#[tokio::test]
async fn fault_malformed_corrupts_content_events_only() {
    let server = start(&["--no-delay", "--fault-malformed-rate", "1"]).await;
    let s = stream(&server.base, "/v1/chat/completions", chat_body(5, 4, true), Duration::from_secs(5)).await;
    let payloads: Vec<&str> = s.events.iter().map(|(_, e)| e.as_str()).collect();
    assert_eq!(payloads.len(), 4 + 3, "4 content events, finish, usage, [DONE]");
    for content in &payloads[..4] {
        assert!(serde_json::from_str::<serde_json::Value>(content).is_err(), "{content} should be malformed");
    }
    assert!(serde_json::from_str::<serde_json::Value>(payloads[4]).is_ok());
    assert_eq!(payloads[6], "[DONE]");
}

/// The router's `--token-log` lines, once `n` are there.
async fn token_log_lines(path: &std::path::Path, n: usize) -> Vec<serde_json::Value> {
    for _ in 0..100 {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<serde_json::Value> =
            text.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect();
        if lines.len() >= n {
            return lines;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the token log at {} never had {n} lines", path.display());
}

/// Behind the router the worker that prefills has the cache: the router hands it the prompt's
/// words, and the cache's hits come back to the router's token log. Before, the cache worked on
/// a server of its own only.
#[tokio::test]
async fn the_prefilling_worker_behind_the_router_serves_a_repeated_prefix_from_its_cache() {
    for (name, roles) in [("disagg", &["ctx", "gen"][..]), ("agg", &["agg", "agg"][..])] {
        let dir = std::env::temp_dir().join(format!("sweep-mock-rdv-prefix-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("rendezvous dir");
        let rdv = dir.to_str().expect("utf-8");
        let cache = ["--no-delay", "--rendezvous", rdv, "--prefix-cache-blocks", "100"];
        let mut workers = Vec::new();
        for role in roles {
            workers.push(start(&[&["--role", role][..], &cache[..]].concat()).await);
        }
        let log = dir.join("tokens.jsonl");
        let router =
            start(&["--role", "router", "--rendezvous", rdv, "--token-log", log.to_str().expect("utf-8")])
                .await;
        health_listing(&router.base, 2).await;
        // 40 shared words (2 full blocks of 16, then 8), then words of each request's own.
        let shared: Vec<String> = (0..40).map(|i| format!("s{i}")).collect();
        let body = |own: &str, id: usize| {
            let prompt = format!("{} {own}", shared.join(" "));
            let body = serde_json::json!({
                "model": "tiny", "messages": [{"role": "user", "content": prompt}],
                "max_tokens": 4, "stream": true,
            });
            client()
                .post(format!("{}/v1/chat/completions", router.base))
                .header("x-request-id", format!("r{id}"))
                .body(body.to_string())
        };
        // In order, so that each request meets the cache its predecessors left. With two AGG
        // workers in round robin, requests 0 and 1 each meet an empty cache; 2 and 3 do not.
        for (id, own) in ["a b c", "d e f", "g h i", "j k l"].iter().enumerate() {
            let text = body(own, id).send().await.expect("sends").text().await.expect("body");
            assert!(text.contains("[DONE]"), "{text}");
        }
        let lines = token_log_lines(&log, 4).await;
        let cached: Vec<u64> = lines.iter().map(|l| l["cached_tokens"].as_u64().expect("a count")).collect();
        let expected: &[u64] = if name == "disagg" { &[0, 32, 32, 32] } else { &[0, 0, 32, 32] };
        assert_eq!(cached, expected, "{name}: {lines:?}");
        drop(workers);
        std::fs::remove_dir_all(&dir).ok();
    }
}
