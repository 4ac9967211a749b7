//! Metric math on hand-made records, and the exports checked against real aiperf 0.13.0 files.

use std::path::PathBuf;
use std::time::Duration;

use sweep_load::{Aggregate, Phase, Record, RequestError, Slos, TokenSource};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/aiperf-0.13.0/agg-bm-128-64/agg_tp1/aiperf_artifacts/concurrency_4")
        .join(name)
}

/// A request sent at `start_ms` whose content arrived at the given offsets (ms).
fn record(index: u64, start_ms: u64, content_ms: &[u64], end_ms: u64, tokens: u64) -> Record {
    Record {
        index,
        phase: Phase::Profiling,
        conversation: index,
        turn: 0,
        session_id: None,
        credit_ns: start_ms * 1_000_000,
        start_ns: start_ms * 1_000_000,
        end_ns: end_ms * 1_000_000,
        content_times: content_ms.iter().map(|&t| Duration::from_millis(t - start_ms)).collect(),
        output_tokens: tokens,
        input_tokens: 100,
        token_source: TokenSource::ServerUsage,
        error: None,
        cancelled: false,
    }
}

#[test]
fn metrics_match_hand_computed_values() {
    // Request A: sent at 0, content at 100, 120, 140, 160 ms, done at 160: TTFT 100,
    // ITL (160 − 100) / 3 = 20, 50 tokens/s/user, chunk gaps 20, 20, 20.
    // Request B: sent at 50, content at 250 and 290 (the second read held 3 events), done at
    // 290 with 4 tokens: TTFT 200, ITL (240 − 200) / 3 = 13.33…, gaps [40].
    // Request C failed; request D finished with no tokens (an error, not a success).
    let a = record(0, 0, &[100, 120, 140, 160], 160, 4);
    let b = record(1, 50, &[250, 290], 290, 4);
    let mut c = record(2, 10, &[], 30, 0);
    c.error = Some(RequestError { code: Some(503), kind: "http_error", message: "busy".into() });
    let mut d = record(3, 20, &[], 400, 0);
    d.error = Some(RequestError { code: None, kind: "zero_output_tokens", message: "none".into() });
    let mut agg = Aggregate::new(Slos::parse("time_to_first_token:150").expect("valid"));
    for r in [&a, &b, &c, &d] {
        agg.add(r);
    }
    let json = agg.to_aiperf_json(serde_json::Map::new());
    let close = |key: &str, field: &str, want: f64| {
        let got = json[key][field].as_f64().unwrap_or_else(|| panic!("{key}.{field} missing: {json}"));
        assert!((got - want).abs() <= want.abs() * 0.001 + 1e-9, "{key}.{field}: {got}, expected {want}");
    };
    close("time_to_first_token", "avg", 150.0);
    close("time_to_first_token", "min", 100.0);
    close("time_to_first_token", "max", 200.0);
    close("time_to_first_token", "std", 50.0);
    close("time_to_first_token", "sum", 300.0);
    close("inter_token_latency", "avg", (20.0 + 40.0 / 3.0) / 2.0);
    close("output_token_throughput_per_user", "avg", (50.0 + 75.0) / 2.0);
    close("request_latency", "avg", (160.0 + 240.0) / 2.0);
    close("inter_chunk_latency", "avg", (20.0 * 3.0 + 40.0) / 4.0);
    assert_eq!(json["inter_chunk_latency"]["count"], 4);
    assert_eq!(json["time_to_first_token"]["count"], 2, "failed requests are not in the latencies");
    // Duration: first start 0 → last end 400 ms (every profiling request counts).
    close("benchmark_duration", "avg", 0.4);
    close("request_throughput", "avg", 2.0 / 0.4);
    close("output_token_throughput", "avg", 8.0 / 0.4);
    close("total_token_throughput", "avg", 208.0 / 0.4);
    assert_eq!(json["request_count"]["avg"], 2.0);
    assert_eq!(json["error_request_count"]["avg"], 2.0);
    // Goodput: only A meets TTFT ≤ 150 ms.
    assert_eq!(json["good_request_count"]["avg"], 1.0);
    close("goodput", "avg", 1.0 / 0.4);
    let errors = json["error_summary"].as_array().expect("error summary");
    assert_eq!(errors.len(), 2);
    let find = |kind: &str| errors.iter().find(|e| e["error_details"]["type"] == kind).expect(kind).clone();
    assert_eq!(find("http_error")["error_details"]["code"], 503);
    assert_eq!(find("http_error")["count"], 1);
    assert_eq!(find("zero_output_tokens")["count"], 1);
    // One record: ITL needs two tokens, TTFT does not.
    let one = record(0, 0, &[30], 30, 1);
    assert_eq!(one.derived().inter_token_latency, None);
    assert_eq!(one.derived().time_to_first_token, Some(30.0));
}

#[test]
fn percentiles_are_within_a_thousandth() {
    let mut agg = Aggregate::new(Slos::default());
    // TTFTs 1, 2, …, 1000 ms.
    for i in 1..=1000u64 {
        agg.add(&record(i, 0, &[i, i + 1], i + 1, 2));
    }
    let ttft = agg.stat("time_to_first_token").expect("ttft");
    for (q, exact) in [(0.5, 500.0), (0.9, 900.0), (0.99, 990.0), (0.01, 10.0)] {
        let got = ttft.quantile(q);
        assert!((got - exact).abs() <= exact * 0.001 + 0.001, "p{q}: {got} vs {exact}");
    }
}

#[test]
fn exports_have_aiperfs_keys_and_csv_layout() {
    let aiperf: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("profile_export_aiperf.json")).expect("fixture"),
    )
    .expect("fixture JSON");
    let mut agg = Aggregate::new(Slos::default());
    for i in 0..10 {
        agg.add(&record(i, i * 10, &[i * 10 + 50, i * 10 + 60, i * 10 + 70], i * 10 + 70, 3));
    }
    let ours = agg.to_aiperf_json(serde_json::Map::new());
    assert_eq!(ours["schema_version"], aiperf["schema_version"]);
    // Every metric downstream scripts read is there, with aiperf's unit and the same fields.
    for key in [
        "request_throughput",
        "request_latency",
        "time_to_first_token",
        "inter_token_latency",
        "output_token_throughput",
        "output_token_throughput_per_user",
        "output_sequence_length",
        "input_sequence_length",
        "request_count",
        "inter_chunk_latency",
        "total_output_tokens",
        "benchmark_duration",
        "total_isl",
        "total_osl",
    ] {
        let (a, o) = (&aiperf[key], &ours[key]);
        assert!(o.is_object(), "{key} missing");
        assert_eq!(o["unit"], a["unit"], "{key} unit");
        let fields = |v: &serde_json::Value| {
            let mut k: Vec<String> = v.as_object().expect("object").keys().cloned().collect();
            k.sort();
            k
        };
        assert_eq!(fields(o), fields(a), "{key} fields");
    }
    assert!(ours["error_summary"].is_array());

    // The CSV: the same two header lines, a blank line between the blocks, and the rows that
    // Dynamo's post-processing reads, named exactly as aiperf names them.
    let theirs = std::fs::read_to_string(fixture("profile_export_aiperf.csv")).expect("fixture");
    let csv = agg.to_aiperf_csv();
    assert!(theirs.contains("\r\n") && csv.contains("\r\n"), "both end lines as Python's csv module does");
    assert!(!csv.replace("\r\n", "").contains('\n'), "no bare line feed");
    let (theirs, csv) = (theirs.replace("\r\n", "\n"), csv.replace("\r\n", "\n"));
    let first = |t: &str| t.lines().next().unwrap_or_default().to_owned();
    assert_eq!(first(&csv), first(&theirs));
    assert!(csv.contains("\n\nMetric,Value\n") && theirs.contains("\n\nMetric,Value\n"));
    let names = |t: &str| -> Vec<String> {
        t.lines().filter_map(|l| l.split(',').next()).map(str::to_owned).collect()
    };
    let their_names = names(&theirs);
    for row in [
        "Output Token Throughput (tokens/sec)",
        "Output Token Throughput Per User (tokens/sec/user)",
        "Time to First Token (ms)",
        "Inter Token Latency (ms)",
        "Request Latency (ms)",
        "Request Throughput (requests/sec)",
        "Benchmark Duration (sec)",
    ] {
        assert!(their_names.iter().any(|n| n == row), "the fixture has {row}");
        assert!(names(&csv).iter().any(|n| n == row), "ours lacks {row}:\n{csv}");
    }
    // Every row of ours that aiperf also has sits in the same block as in aiperf's file.
    let block = |t: &str, row: &str| {
        t.split("\n\n").position(|b| b.lines().any(|l| l.starts_with(&format!("{row},"))))
    };
    for row in names(&csv).iter().filter(|n| n.as_str() != "Metric" && their_names.contains(n)) {
        assert_eq!(block(&csv, row), block(&theirs, row), "{row} is in another block");
    }
    // Parsed back, the CSV gives the JSON's numbers (to its two decimals).
    let line = csv.lines().find(|l| l.starts_with("Time to First Token (ms),")).expect("TTFT row");
    let avg: f64 = line.split(',').nth(1).expect("avg").parse().expect("number");
    assert!((avg - ours["time_to_first_token"]["avg"].as_f64().expect("avg")).abs() < 0.006);
}

#[test]
fn sessions_report_ttft_by_turn_index_and_single_requests_do_not() {
    let mut aggregate = Aggregate::new(Default::default());
    // Two sessions of two turns; the second turns wait longer for their first token.
    for (index, (conversation, turn, ttft)) in
        [(0, 0, 10), (0, 1, 30), (1, 0, 20), (1, 1, 50)].into_iter().enumerate()
    {
        let start = index as u64 * 1000;
        let mut r = record(index as u64, start, &[start + ttft, start + ttft + 5], start + ttft + 5, 2);
        r.conversation = conversation;
        r.turn = turn;
        r.session_id = Some(std::sync::Arc::from(format!("s{conversation}")));
        assert_eq!(r.to_json("w")["metadata"]["conversation_id"], format!("s{conversation}"));
        assert_eq!(r.to_json("w")["metadata"]["turn_index"], turn);
        aggregate.add(&r);
    }
    let json = aggregate.to_aiperf_json(Default::default());
    let by_turn = json["time_to_first_token_by_turn"].as_array().expect("by turn");
    assert_eq!(by_turn.len(), 2);
    assert_eq!((by_turn[0]["turn_index"].as_u64(), by_turn[0]["avg"].as_f64()), (Some(0), Some(15.0)));
    assert_eq!((by_turn[1]["turn_index"].as_u64(), by_turn[1]["avg"].as_f64()), (Some(1), Some(40.0)));
    assert_eq!(by_turn[1]["count"], 2);

    let mut single = Aggregate::new(Default::default());
    single.add(&record(0, 0, &[10, 12], 12, 2));
    assert!(single.to_aiperf_json(Default::default()).get("time_to_first_token_by_turn").is_none());
}
