//! The aggregator against real aiperf 0.13.0 output and hand-built sweep folders: numbers equal
//! the exporter's own, nothing guessed, nothing dropped, broken files named.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use sweep_aggregate::{aggregate, GpuBasis, Options, Outputs, Row};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/aiperf-0.13.0")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read").flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}

/// A copy of the fixture to damage.
fn fixture_copy() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path().join("aiperf");
    copy_dir(&fixture(), &root);
    (tmp, root)
}

fn artifacts(root: &Path) -> PathBuf {
    root.join("agg-bm-128-64/agg_tp1/aiperf_artifacts")
}

fn summary(root: &Path, c: u32) -> Value {
    let text =
        std::fs::read_to_string(artifacts(root).join(format!("concurrency_{c}/profile_export_aiperf.json")))
            .expect("summary");
    serde_json::from_str(&text).expect("JSON")
}

fn by_concurrency(rows: &[Row], c: i64) -> &Row {
    rows.iter().find(|r| r.concurrency == Some(c)).unwrap_or_else(|| panic!("no row for concurrency {c}"))
}

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * b.abs().max(1e-12)
}

#[test]
fn the_aiperf_fixture_aggregates_to_its_own_numbers() {
    let agg = aggregate(&[fixture()], &Options::default()).expect("aggregates");
    assert!(agg.warnings.is_empty(), "{:?}", agg.warnings);
    assert_eq!(agg.rows.len(), 3);
    for c in [1, 4, 16] {
        let row = by_concurrency(&agg.rows, c);
        let s = summary(&fixture(), c as u32);
        assert_eq!(row.state, "done");
        assert_eq!(row.source.as_str(), "dynamo");
        assert_eq!(row.config.mode.as_deref(), Some("agg"));
        assert_eq!(row.config.decode_role().and_then(|r| r.tp), Some(1));
        assert_eq!((row.isl, row.osl), (Some(128), Some(64)));
        assert_eq!(row.config.gpus_working, Some(1), "deployment_config.json says total_gpus 1");
        let f = &row.figures;
        assert_eq!(f.get("request_count"), s["request_count"]["avg"].as_f64());
        assert_eq!(f.get("error_request_count"), Some(0.0), "empty error_summary: zero errors");
        assert_eq!(f.get("ttft_p50_ms"), s["time_to_first_token"]["p50"].as_f64());
        assert_eq!(f.get("ttft_p99_ms"), s["time_to_first_token"]["p99"].as_f64());
        assert_eq!(f.get("itl_avg_ms"), s["inter_token_latency"]["avg"].as_f64());
        assert_eq!(f.get("latency_p90_ms"), s["request_latency"]["p90"].as_f64());
        assert_eq!(f.get("output_token_throughput"), s["output_token_throughput"]["avg"].as_f64());
        assert_eq!(f.get("request_throughput"), s["request_throughput"]["avg"].as_f64());
        assert_eq!(row.tps_per_user, s["output_token_throughput_per_user"]["avg"].as_f64());
        assert_eq!(row.tps_per_gpu_working, s["output_token_throughput"]["avg"].as_f64(), "one GPU");
        let srt = 1000.0 / s["inter_token_latency"]["p50"].as_f64().expect("p50");
        assert_eq!(row.tps_per_user_srt, Some(srt));
        assert_eq!(row.generator.as_deref(), Some("aiperf 0.13.0"));
        assert_eq!(row.token_source.as_deref(), Some("server_usage"));
    }
}

#[test]
fn records_recompute_the_same_figures_as_the_summary() {
    let options = Options { from_records: true, ..Options::default() };
    let agg = aggregate(&[fixture()], &options).expect("aggregates");
    assert!(agg.warnings.is_empty(), "{:?}", agg.warnings);
    for c in [1, 4, 16] {
        let row = by_concurrency(&agg.rows, c);
        assert_eq!(row.metrics_from, Some("records"));
        let s = summary(&fixture(), c as u32);
        let pairs = [
            ("request_count", &s["request_count"]["avg"]),
            ("benchmark_duration_s", &s["benchmark_duration"]["avg"]),
            ("request_throughput", &s["request_throughput"]["avg"]),
            ("output_token_throughput", &s["output_token_throughput"]["avg"]),
            ("ttft_avg_ms", &s["time_to_first_token"]["avg"]),
            ("ttft_p50_ms", &s["time_to_first_token"]["p50"]),
            ("ttft_p99_ms", &s["time_to_first_token"]["p99"]),
            ("itl_avg_ms", &s["inter_token_latency"]["avg"]),
            ("itl_p90_ms", &s["inter_token_latency"]["p90"]),
            ("latency_p50_ms", &s["request_latency"]["p50"]),
            ("output_token_throughput_per_user_avg", &s["output_token_throughput_per_user"]["avg"]),
            ("osl_avg", &s["output_sequence_length"]["avg"]),
        ];
        for (column, expected) in pairs {
            let expected = expected.as_f64().expect("in the summary");
            let got = row.figures.get(column).unwrap_or_else(|| panic!("{column} missing"));
            assert!(
                close(got, expected, 1e-6),
                "concurrency {c} {column}: {got} from records, {expected} in the summary"
            );
        }
    }
}

#[test]
fn a_missing_gpu_count_stays_empty_and_is_reported_never_one() {
    let (_tmp, root) = fixture_copy();
    let config = artifacts(&root).join("deployment_config.json");
    std::fs::remove_file(&config).expect("rm");
    let agg = aggregate(std::slice::from_ref(&root), &Options::default()).expect("aggregates");
    assert_eq!(agg.rows.len(), 3);
    for row in &agg.rows {
        assert_eq!(row.config.gpus_working, None);
        assert_eq!(row.tps_per_gpu_working, None);
        assert!(row.tps_per_user.is_some(), "the rest is still there");
    }
    assert!(
        agg.warnings.iter().any(|w| w.path == config && w.message.contains("never assumed")),
        "{:?}",
        agg.warnings
    );
    assert!(agg.analysis.frontiers.is_empty(), "no per-GPU figure, no frontier");

    // A config without total_gpus: the same.
    std::fs::write(&config, r#"{"kind": "agg", "model": "tiny"}"#).expect("write");
    let agg = aggregate(&[root], &Options::default()).expect("aggregates");
    assert!(agg.rows.iter().all(|r| r.config.gpus_working.is_none()));
    assert!(agg.warnings.iter().any(|w| w.path == config && w.message.contains("no total_gpus")));
}

#[test]
fn broken_files_are_named_and_the_rest_is_aggregated() {
    let (_tmp, root) = fixture_copy();
    let dir = artifacts(&root);
    // c=1: summary truncated → recomputed from records. c=4: records cut mid-line too → the
    // complete lines count. c=16: nothing readable left → unreadable, with the reason.
    let s1 = dir.join("concurrency_1/profile_export_aiperf.json");
    let text = std::fs::read_to_string(&s1).expect("read");
    std::fs::write(&s1, &text[..text.len() / 2]).expect("truncate");

    let s4 = dir.join("concurrency_4/profile_export_aiperf.json");
    std::fs::write(&s4, "{not json").expect("corrupt");
    let r4 = dir.join("concurrency_4/profile_export.jsonl");
    let records = std::fs::read_to_string(&r4).expect("read");
    let cut = records.trim_end().rfind('\n').expect("lines") + 40;
    std::fs::write(&r4, &records[..cut]).expect("cut");

    let s16 = dir.join("concurrency_16/profile_export_aiperf.json");
    std::fs::write(&s16, "").expect("empty");
    std::fs::write(dir.join("concurrency_16/profile_export.jsonl"), "garbage\n").expect("garbage");

    let agg = aggregate(&[root], &Options::default()).expect("aggregates");
    assert_eq!(agg.rows.len(), 3, "no point dropped");
    let c1 = by_concurrency(&agg.rows, 1);
    assert_eq!((c1.state.as_str(), c1.metrics_from), ("done", Some("records")));
    assert_eq!(c1.figures.get("request_count"), Some(10.0));
    let c4 = by_concurrency(&agg.rows, 4);
    assert_eq!((c4.state.as_str(), c4.metrics_from), ("done", Some("records")));
    assert_eq!(c4.figures.get("request_count"), Some(39.0), "the cut line is left out, the 39 others count");
    let c16 = by_concurrency(&agg.rows, 16);
    assert_eq!(c16.state, "unreadable");
    assert!(c16.reason.as_deref().is_some_and(|r| r.contains("concurrency_16")), "{:?}", c16.reason);
    let named = |p: &Path| agg.warnings.iter().any(|w| w.path == p);
    assert!(named(&s1) && named(&s4) && named(&r4) && named(&s16), "{:#?}", agg.warnings);
    assert!(agg.warnings.iter().any(|w| w.path == r4 && w.message.contains("1 line")), "{:#?}", agg.warnings);
}

#[test]
fn nothing_readable_is_an_error_and_nothing_found_too() {
    let tmp = tempfile::tempdir().expect("tmp");
    let err = aggregate(&[tmp.path().to_owned()], &Options::default()).expect_err("empty folder");
    assert!(matches!(err, sweep_aggregate::Error::NothingFound { .. }), "{err}");
    let point = tmp.path().join("run");
    std::fs::create_dir_all(&point).expect("mkdir");
    std::fs::write(point.join("profile_export_aiperf.json"), "[1, 2").expect("write");
    let err = aggregate(&[tmp.path().to_owned()], &Options::default()).expect_err("nothing readable");
    assert!(matches!(err, sweep_aggregate::Error::NothingReadable { points: 1, .. }), "{err}");
}

#[test]
fn session_records_give_ttft_per_turn_and_single_requests_none() {
    let tmp = tempfile::tempdir().expect("tmp");
    let run = tmp.path().join("run");
    std::fs::create_dir_all(&run).expect("mkdir");
    // Three sessions of two turns, and a third turn in one; a failed turn stays out.
    let line = |turn: u32, ttft: f64, start: i64, error: bool| {
        let mut v = json!({
            "metadata": {"benchmark_phase": "profiling", "turn_index": turn, "request_start_ns": start,
                         "request_end_ns": start + 1_000_000},
            "metrics": {"time_to_first_token": {"value": ttft, "unit": "ms"}},
        });
        if error {
            v["error"] = json!({"code": 500, "message": "boom"});
        }
        v.to_string()
    };
    let lines = [
        line(0, 10.0, 1, false),
        line(0, 20.0, 2, false),
        line(0, 30.0, 3, false),
        line(1, 40.0, 4, false),
        line(1, 60.0, 5, false),
        line(1, 999.0, 6, true),
        line(2, 90.0, 7, false),
    ];
    std::fs::write(run.join("profile_export.jsonl"), lines.join("\n")).expect("write");
    let agg = aggregate(&[tmp.path().to_owned()], &Options::default()).expect("aggregates");
    let turns: Vec<_> =
        agg.rows[0].ttft_by_turn.iter().map(|t| (t.turn_index, t.count, t.avg_ms, t.p50_ms)).collect();
    assert_eq!(
        turns,
        [(0, 3, Some(20.0), Some(20.0)), (1, 2, Some(50.0), Some(50.0)), (2, 1, Some(90.0), Some(90.0))]
    );
    // 1 % of the way from 40 to 60, numpy's linear interpolation.
    assert_eq!(agg.rows[0].ttft_by_turn[1].p99_ms, Some(59.8));
    let out = tmp.path().join("report");
    sweep_aggregate::write(&agg, &out, Outputs::Report).expect("writes");
    let csv = std::fs::read_to_string(out.join("ttft_by_turn.csv")).expect("ttft_by_turn.csv");
    assert_eq!(csv.lines().count(), 4, "a header and a line per turn: {csv}");
    let html = std::fs::read_to_string(out.join("report.html")).expect("report");
    assert!(html.contains("id=\"by-turn\"") && html.contains("id=\"ttft_by_turn_isl0_osl0\""), "{html}");
    assert!(out.join("plots/ttft_by_turn_isl0_osl0.svg").is_file());

    // Requests that are all first turns are no sessions: no per-turn figures, no file.
    let single = tmp.path().join("single");
    std::fs::create_dir_all(single.join("run")).expect("mkdir");
    std::fs::write(
        single.join("run/profile_export.jsonl"),
        [line(0, 10.0, 1, false), line(0, 20.0, 2, false)].join("\n"),
    )
    .expect("write");
    let agg = aggregate(std::slice::from_ref(&single), &Options::default()).expect("aggregates");
    assert!(agg.rows[0].ttft_by_turn.is_empty());
    sweep_aggregate::write(&agg, &single.join("report"), Outputs::Report).expect("writes");
    assert!(!single.join("report/ttft_by_turn.csv").exists());
    let html = std::fs::read_to_string(single.join("report/report.html")).expect("report");
    assert!(!html.contains("id=\"by-turn\""));
}

/// Point ids of the hand-built sweep: 16 hex digits, as the planner makes them.
const P1: &str = "00000000000000a1";
const P2: &str = "00000000000000a2";
const P3: &str = "00000000000000b3";
const P4: &str = "00000000000000c4";

/// A sweep folder as `sweep submit` leaves it, built by hand through the folder's own types:
/// job A ran both points (one done, one failed), job B was cancelled before it started, job C
/// was never submitted, and job A's failed point was rerun by a resume and is now done.
fn hand_sweep(root: &Path) {
    use sweep_folder::job::RoleContext;
    use sweep_folder::metadata::{Gpus, JobRef, Metadata};
    use sweep_folder::{Executor, JobState, Manifest, ManifestJob, PointState, PointStatus, SweepDir};

    let summary_text = std::fs::read_to_string(
        fixture().join("agg-bm-128-64/agg_tp1/aiperf_artifacts/concurrency_4/profile_export_aiperf.json"),
    )
    .expect("summary");
    let point = |id: &str, c: i64| json!({"id": id, "isl": 128, "osl": 64, "concurrency": c, "effective_concurrency": c, "requests": 40, "warmup": 4});
    let role = |role: &str, tp: i64, mtp: i64| {
        json!({"role": role, "servers": 1, "tp": tp, "pp": 1, "cp": 1, "parallel": "tep", "batch": 8,
               "max_num_tokens": null, "max_seq_len": null, "mtp": mtp, "eplb": 0})
    };
    let layout = |allocated: i64, working: i64| json!({"nodes": 1, "gpus_allocated": allocated, "gpus_working": working});
    let plan = json!({
        "format": 2, "written_by": "sweep test",
        "sweep": "hand", "engine": {"kind": "mock"}, "model": {"path": "/models/tiny", "served_name": "tiny"},
        "jobs": [
            {"id": "000000000000000a", "name": "agg1_tep1", "mode": "agg", "roles": [role("agg", 1, 0)],
             "layout": layout(4, 1), "points": [point(P1, 1), point(P2, 4)]},
            {"id": "000000000000000b", "name": "ctx1_gen1_tep2", "mode": "disagg", "roles": [role("ctx", 1, 0), role("gen", 2, 0)],
             "layout": layout(8, 3), "points": [point(P3, 1)]},
            {"id": "000000000000000c", "name": "agg1_tep2", "mode": "agg", "roles": [role("agg", 2, 0)],
             "layout": layout(4, 2), "points": [point(P4, 1)]},
        ]
    });
    let entry =
        |id: &str, name: &str, dir: &str, points: &[&str], state: JobState, slurm: &str| ManifestJob {
            id: id.to_owned(),
            name: name.to_owned(),
            dir: dir.to_owned(),
            script: "job.sbatch".to_owned(),
            attempt: if dir.ends_with(".2") { 2 } else { 1 },
            state,
            slurm_job_id: Some(slurm.to_owned()),
            reason: (state == JobState::Cancelled).then(|| "cancelled by sweep cancel".to_owned()),
            points: points.iter().map(|p| (*p).to_owned()).collect(),
            chain: None,
            after: None,
            allocation: None,
        };
    let manifest = Manifest {
        sweep: "hand".to_owned(),
        executor: Executor::Slurm,
        resumes: 1,
        queue_limit: None,
        jobs: vec![
            entry("000000000000000a", "agg1_tep1", "jobs/agg1_tep1", &[P1, P2], JobState::Completed, "101"),
            entry(
                "000000000000000b",
                "ctx1_gen1_tep2",
                "jobs/ctx1_gen1_tep2",
                &[P3],
                JobState::Cancelled,
                "102",
            ),
            entry("000000000000000a", "agg1_tep1", "jobs/agg1_tep1.2", &[P2], JobState::Completed, "103"),
        ],
    };
    std::fs::create_dir_all(root).expect("mkdir");
    let sweep = SweepDir::new(root);
    std::fs::write(sweep.plan_path(), plan.to_string()).expect("plan");
    sweep.write_manifest(&manifest).expect("manifest");
    std::fs::write(sweep.spec_path(), "name: hand\n").expect("spec");
    let write_point = |job: &str, id: &str, state: PointState, reason: &str, with_summary: bool| {
        let dir = sweep_folder::PointDir::new(root.join("jobs").join(job).join("points").join(id));
        std::fs::create_dir_all(dir.path()).expect("mkdir");
        let status = PointStatus {
            point: id.to_owned(),
            job: job.trim_end_matches(".2").to_owned(),
            state,
            reason: reason.to_owned(),
            started_at: 1.0,
            ended_at: 2.0,
        };
        dir.write_status(&status).expect("status");
        if with_summary {
            std::fs::write(dir.path().join(sweep_folder::exports::SUMMARY), &summary_text).expect("summary");
        }
    };
    write_point("agg1_tep1", P1, PointState::Done, "40 requests, 0 errors", true);
    write_point("agg1_tep1", P2, PointState::Failed, "server agg_0 exited with status 1", false);
    write_point("agg1_tep1.2", P2, PointState::Done, "40 requests, 0 errors", true);
    let roles: Vec<RoleContext> =
        serde_json::from_value(json!([{"serving_type": "AGG", "world_size": 1, "engine_args": {},
            "role": "agg", "servers": 1, "tp": 1, "pp": 1, "cp": 1, "parallel": "tep", "batch": 8,
            "max_num_tokens": null, "max_seq_len": null, "mtp": 0, "eplb": 0}]))
        .expect("a role");
    let metadata = Metadata {
        sweep: "hand".to_owned(),
        job: JobRef {
            id: "000000000000000a".to_owned(),
            name: "agg1_tep1".to_owned(),
            mode: "agg".to_owned(),
        },
        engine: "mock".to_owned(),
        model: "tiny".to_owned(),
        roles,
        servers: Vec::new(),
        frontend: None,
        gpus: Gpus { allocated: 4, working: 1 },
        slurm_job_id: Some("101".to_owned()),
        node_list: Some("n1".to_owned()),
        nodes: vec!["n1".to_owned()],
        executor: Executor::Slurm,
        versions: [("sweep-runner".to_owned(), "0.2.0".to_owned())].into(),
        seed: 0,
        load: sweep_folder::settings::Load::default(),
        started_at: 1.0,
        engine_info: None,
        knobs: Default::default(),
        env: Default::default(),
        image: None,
        venv: None,
    };
    sweep.job("jobs/agg1_tep1").write_metadata(&metadata).expect("meta");
}

#[test]
fn every_planned_point_is_a_row_failed_cancelled_and_never_submitted_ones_too() {
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path().join("hand");
    hand_sweep(&root);
    let agg = aggregate(std::slice::from_ref(&root), &Options::default()).expect("aggregates");
    let state = |id: &str| {
        let r = agg.rows.iter().find(|r| r.point == id).unwrap_or_else(|| panic!("no row {id}"));
        (r.state.as_str(), r.reason.clone().unwrap_or_default(), r.attempts)
    };
    assert_eq!(agg.rows.len(), 4);
    assert!(agg.warnings.is_empty(), "{:?}", agg.warnings);
    assert_eq!(state(P1).0, "done");
    let (s, _, attempts) = state(P2);
    assert_eq!((s, attempts), ("done", 2), "the resumed attempt speaks for the point");
    let (s, reason, _) = state(P3);
    assert_eq!(s, "not_run");
    assert!(reason.contains("cancelled by sweep cancel"), "{reason}");
    let (s, reason, _) = state(P4);
    assert_eq!(s, "not_run");
    assert!(reason.contains("never submitted"), "{reason}");
    let p1 = agg.rows.iter().find(|r| r.point == P1).expect("p1");
    assert_eq!((p1.config.gpus_allocated, p1.config.gpus_working), (Some(4), Some(1)));
    let out = p1.figures.get("output_token_throughput").expect("measured");
    assert_eq!(p1.tps_per_gpu_working, Some(out));
    assert_eq!(p1.tps_per_gpu_allocated, Some(out / 4.0), "allocated counts idle GPUs");
    // The two done points are identical: both stay on the frontier.
    assert_eq!(agg.analysis.frontiers.len(), 1);
    assert_eq!(agg.analysis.frontiers[0].rows.len(), 2, "{:?}", agg.analysis.frontiers);
    let sweep = &agg.sweeps[0];
    assert_eq!(sweep.slurm_job_ids, ["101", "102", "103"]);
    assert!(sweep.nodes.contains("n1"));

    // Written out: a row per point in results.csv, the failed ones with their reasons.
    let out_dir = tmp.path().join("out");
    let files = sweep_aggregate::write(&agg, &out_dir, Outputs::Report).expect("writes");
    let csv = std::fs::read_to_string(out_dir.join("results.csv")).expect("csv");
    assert_eq!(csv.lines().count(), 5, "{csv}");
    assert!(csv.contains("never submitted") && csv.contains("cancelled by sweep cancel"));
    let pareto = std::fs::read_to_string(out_dir.join("pareto.csv")).expect("pareto");
    assert_eq!(pareto.lines().count(), 3, "{pareto}");
    let md = std::fs::read_to_string(out_dir.join("report.md")).expect("md");
    assert!(md.contains("Points without a result (2)") && md.contains("never submitted"), "{md}");
    for file in &files {
        assert!(file.is_file(), "{}", file.display());
    }
    // Nothing half-written is left beside them.
    let stray: Vec<_> = std::fs::read_dir(&out_dir)
        .expect("out")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(stray.is_empty(), "{stray:?}");
}

#[test]
fn plots_are_valid_png_and_svg_and_the_parquet_reads_back() {
    let tmp = tempfile::tempdir().expect("tmp");
    let options = Options {
        min_tps_user: vec![50.0, 150.0, 10_000.0],
        gpu_basis: GpuBasis::Working,
        ..Options::default()
    };
    let agg = aggregate(&[fixture()], &options).expect("aggregates");
    let files = sweep_aggregate::write(&agg, tmp.path(), Outputs::Tables).expect("writes");
    let pngs: Vec<&PathBuf> = files.iter().filter(|f| f.extension().is_some_and(|e| e == "png")).collect();
    let svgs: Vec<&PathBuf> = files.iter().filter(|f| f.extension().is_some_and(|e| e == "svg")).collect();
    // One workload: the Pareto chart and TTFT, ITL and throughput against concurrency; and the
    // profiler's TTFT against ISL (its concurrency-1 point) and ITL against context and
    // concurrency.
    assert_eq!((pngs.len(), svgs.len()), (7, 7), "{files:?}");
    for png in pngs {
        let bytes = std::fs::read(png).expect("png");
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{}", png.display());
        assert_eq!(&bytes[12..16], b"IHDR");
        let width = u32::from_be_bytes(bytes[16..20].try_into().expect("4 bytes"));
        let height = u32::from_be_bytes(bytes[20..24].try_into().expect("4 bytes"));
        assert_eq!((width, height), (1080, 540));
        assert_eq!(&bytes[bytes.len() - 8..bytes.len() - 4], b"IEND", "{} is complete", png.display());
    }
    for svg in svgs {
        let text = std::fs::read_to_string(svg).expect("svg");
        assert!(text.contains("<svg") && text.trim_end().ends_with("</svg>"), "{}", svg.display());
        assert!(text.contains("<text"), "labels are drawn");
    }
    let pareto = std::fs::read_to_string(tmp.path().join("plots/pareto_isl128_osl64.svg")).expect("svg");
    assert!(pareto.contains("output tokens/s per GPU (working GPUs)"), "the y axis says its unit and basis");
    // Best at floors: 50 and 150 tok/s/user are reached, 10,000 is not.
    let best: Vec<Option<usize>> = agg.analysis.best.iter().map(|b| b.row).collect();
    assert_eq!(best.len(), 3);
    assert!(best[0].is_some() && best[1].is_some() && best[2].is_none(), "{:?}", agg.analysis.best);

    use polars::prelude::*;
    let file = std::fs::File::open(tmp.path().join("results.parquet")).expect("parquet");
    let frame = ParquetReader::new(file).finish().expect("reads back");
    assert_eq!(frame.height(), 3);
    let ttft = frame.column("ttft_p50_ms").expect("column").f64().expect("f64").get(0);
    assert_eq!(ttft, agg.rows[0].figures.get("ttft_p50_ms"));
}

/// The hand-built sweep, with its job A run on `version` of the engine.
fn hand_sweep_on(root: &Path, version: &str) {
    use sweep_folder::provenance::{Build, JobProvenance};
    hand_sweep(root);
    let provenance = JobProvenance {
        runner: Build { version: "0.2.0".into(), commit: None, rustc: None },
        engine: "mock".into(),
        engine_version: Some(version.into()),
        engine_version_source: Some("GET /version".into()),
        python: Vec::new(),
        gpus: Vec::new(),
        node: "n1".into(),
        collected_at: 1.0,
        env: Default::default(),
        image: None,
        venv: None,
    };
    for job in ["jobs/agg1_tep1", "jobs/agg1_tep1.2"] {
        let dir = sweep_folder::SweepDir::new(root).job(job);
        dir.write_provenance(&provenance).expect("provenance");
    }
}

#[test]
fn sweeps_of_different_engine_versions_are_merged_only_when_asked_and_then_per_version() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (old, new) = (tmp.path().join("old"), tmp.path().join("new"));
    hand_sweep_on(&old, "0.31.0");
    hand_sweep_on(&new, "0.32.0");
    let both = [old.clone(), new.clone()];
    let error = aggregate(&both, &Options::default()).expect_err("mixed versions");
    let message = error.to_string();
    assert!(matches!(error, sweep_aggregate::Error::MixedVersions { .. }), "{error:?}");
    assert!(message.contains("mock") && message.contains("0.31.0, 0.32.0"), "{message}");
    // One version alone is no difference.
    let one = aggregate(std::slice::from_ref(&old), &Options::default()).expect("one version");
    assert!(one.analysis.frontiers.iter().all(|f| f.group.version.is_none()));
    assert_eq!(
        one.rows.iter().find(|r| r.point == P1).and_then(|r| r.config.engine_version.clone()).as_deref(),
        Some("0.31.0")
    );

    let merged =
        aggregate(&both, &Options { allow_mixed_versions: true, ..Options::default() }).expect("merged");
    let versions: BTreeSet<Option<String>> =
        merged.analysis.frontiers.iter().map(|f| f.group.version.clone()).collect();
    assert_eq!(versions, BTreeSet::from([Some("0.31.0".to_owned()), Some("0.32.0".to_owned())]));
    let labels: Vec<String> = merged.analysis.frontiers.iter().map(|f| f.group.to_string()).collect();
    assert!(labels.iter().any(|l| l.starts_with("agg (0.32.0), ISL 128")), "{labels:?}");
}

/// A point is compared only when valid: the aiperf fixture's concurrency-4 run given 3 failed
/// requests (above the default 1 %) and its concurrency-16 run no output, both stay in the table
/// with their reasons and out of the frontier; a looser `--max-error-rate` lets the first back.
#[test]
fn invalid_points_stay_in_the_table_with_their_reason_and_out_of_the_frontier() {
    let (_tmp, root) = fixture_copy();
    let damage = |c: u32, change: &dyn Fn(&mut Value)| {
        let path = artifacts(&root).join(format!("concurrency_{c}/profile_export_aiperf.json"));
        let mut summary = summary(&root, c);
        change(&mut summary);
        std::fs::write(&path, serde_json::to_string(&summary).expect("json")).expect("written");
    };
    damage(4, &|s| s["error_request_count"] = serde_json::json!({"avg": 3.0, "unit": "requests"}));
    damage(16, &|s| s["output_token_throughput"]["avg"] = serde_json::json!(0.0));
    let agg = aggregate(std::slice::from_ref(&root), &Options::default()).expect("aggregates");
    assert_eq!(agg.rows.len(), 3, "nothing dropped");
    let four = by_concurrency(&agg.rows, 4);
    let why = four.invalid.as_deref().expect("invalid");
    assert!(why.contains("3 of") && why.contains("more than --max-error-rate 0.01"), "{why}");
    assert!(!four.on_frontier);
    assert_eq!(by_concurrency(&agg.rows, 16).invalid.as_deref(), Some("no output tokens"));
    assert!(by_concurrency(&agg.rows, 1).invalid.is_none());
    let on: Vec<usize> = agg.analysis.frontier_rows().collect();
    assert!(on.iter().all(|&i| agg.rows[i].concurrency == Some(1)), "{on:?}");
    let md = sweep_aggregate::report::markdown(&agg);
    assert!(md.contains("## Points left out of the frontiers (2)"), "{md}");

    let loose = Options { max_error_rate: 0.5, ..Options::default() };
    let agg = aggregate(&[root], &loose).expect("aggregates");
    assert!(by_concurrency(&agg.rows, 4).invalid.is_none(), "3 failed of many is under half");
}
