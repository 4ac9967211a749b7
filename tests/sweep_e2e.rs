//! Whole sweeps of the simulated engine: through `sweep submit` on the development SLURM cluster
//! and through the local executor — every point measured, artifacts for each, the same folder
//! layout from both; a cancelled job resumed alone; a changed spec resumed without touching what
//! was measured.

mod common;

use common::sweep;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

struct Sweep {
    dir: PathBuf,
}

impl Drop for Sweep {
    fn drop(&mut self) {
        // Whatever happened, nothing the test submitted stays queued.
        for name in ["slurm", "sweep"] {
            let _ = Command::new(env!("CARGO_BIN_EXE_sweep")).arg("cancel").arg(self.dir.join(name)).output();
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn new_sweep(name: &str, spec: &str) -> Sweep {
    let dir = std::env::temp_dir().join(format!("sweep-e2e-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("spec.yaml"), spec).expect("spec");
    Sweep { dir }
}

fn status(cwd: &Path, folder: &str) -> Vec<serde_json::Value> {
    let (code, stdout, stderr) = sweep(&["status", folder, "--format", "json"], cwd);
    assert_eq!(code, 0, "{stderr}");
    serde_json::from_str(&stdout).expect("JSON")
}

const FINAL: &[&str] =
    &["COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "ENDED", "REJECTED"];

/// Polls `sweep status` until `done(rows)` holds.
fn wait_for(
    cwd: &Path,
    folder: &str,
    limit: Duration,
    done: impl Fn(&[serde_json::Value]) -> bool,
) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + limit;
    loop {
        let rows = status(cwd, folder);
        if done(&rows) {
            return rows;
        }
        assert!(Instant::now() < deadline, "not there after {limit:?}: {rows:#?}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn all_final(rows: &[serde_json::Value]) -> bool {
    rows.iter().all(|r| FINAL.contains(&r["state"].as_str().unwrap_or_default()))
}

fn point_states(rows: &[serde_json::Value]) -> Vec<String> {
    rows.iter()
        .flat_map(|r| r["points"].as_array().cloned().unwrap_or_default())
        .map(|p| p["state"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Relative paths under `root`, with what differs by design between executors left out: the
/// script, SLURM's own output, and each step's launcher log.
fn layout(root: &Path) -> BTreeSet<String> {
    fn walk(dir: &Path, root: &Path, out: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).expect("readable").flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if path.is_dir() {
                walk(&path, root, out);
                continue;
            }
            let skip = ["job.sbatch", "job.local.sh", "local.out"].contains(&name.as_str())
                || name.starts_with("slurm-")
                || name.ends_with(".srun.log")
                || name.ends_with(".step.log");
            if !skip {
                out.insert(path.strip_prefix(root).expect("inside").display().to_string());
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(root, root, &mut out);
    out
}

const BOTH_MODES: &str = "\
name: e2e-modes
model: {path: /models/tiny, served_name: tiny}
engine: {kind: mock}
cluster: {gpus_per_node: 4, packing: packed, base_port: 18500, frontend_port: 18599}
mode: [agg, disagg]
agg: {tp: 1, batch: 8, engine_args: {speedup: 20}}
ctx: {servers: 2, tp: 1, batch: 8, engine_args: {speedup: 20}}
gen: {servers: 1, tp: 1, batch: 8, engine_args: {speedup: 20}}
workload: {isl: 32, osl: 8, concurrency: [1, 4], requests: 8, warmup: 2}
";

#[test]
fn agg_and_disagg_sweeps_complete_on_slurm_and_locally_with_the_same_layout() {
    let s = new_sweep("modes", BOTH_MODES);
    let (code, stdout, stderr) = sweep(&["submit", "spec.yaml", "-o", "slurm"], &s.dir);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout.lines().count(), 2, "two jobs: {stdout}");
    let rows = wait_for(&s.dir, "slurm", Duration::from_secs(240), all_final);
    for row in &rows {
        assert_eq!(row["state"], "COMPLETED", "{row:#}");
    }
    assert_eq!(point_states(&rows), ["done"; 4], "{rows:#?}");
    let slurm = s.dir.join("slurm");
    let disagg = slurm.join("jobs/ctx2_gen1_tep1_batch8_eplb0_mtp0");
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(disagg.join("metadata.json")).expect("metadata"))
            .expect("JSON");
    // Roles never share a node: CTX on one, GEN on another; 3 of the 8 GPUs work.
    assert_eq!(meta["gpus"], serde_json::json!({"allocated": 8, "working": 3}));
    assert_eq!(meta["executor"], "slurm");
    assert!(meta["node_list"].as_str().is_some_and(|n| n.starts_with('n')), "{meta}");
    assert_eq!(meta["servers"].as_array().map(Vec::len), Some(3));
    for point in std::fs::read_dir(disagg.join("points")).expect("points").flatten() {
        let export: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(point.path().join("profile_export_aiperf.json")).expect("export"),
        )
        .expect("JSON");
        assert_eq!(export["request_count"]["avg"], 8.0, "{export}");
        assert_eq!(export["output_sequence_length"]["avg"], 8.0);
    }

    let (code, _, stderr) = sweep(&["submit", "spec.yaml", "-o", "local", "--executor", "local"], &s.dir);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(point_states(&status(&s.dir, "local")), ["done"; 4]);
    let (a, b) = (layout(&slurm), layout(&s.dir.join("local")));
    assert_eq!(
        a,
        b,
        "only in SLURM's: {:?}; only in local: {:?}",
        a.difference(&b).collect::<Vec<_>>(),
        b.difference(&a).collect::<Vec<_>>()
    );
    assert!(a.iter().any(|p| p.ends_with("profile_export.jsonl")));

    // Which build rendered each folder, from which spec, where: SLURM's own version for the
    // SLURM sweep; each job's engine version from the mock's `GET /version`.
    let spec_sha =
        sweep_submit::provenance::sha256_hex(&std::fs::read(s.dir.join("spec.yaml")).expect("spec"));
    for folder in ["slurm", "local"] {
        let dir = sweep_folder::SweepDir::open(s.dir.join(folder)).expect("a sweep folder");
        let provenance = dir.read_provenance().expect("readable").expect("provenance.json");
        assert_eq!(provenance.sweep.version, env!("CARGO_PKG_VERSION"));
        assert_eq!(provenance.spec_sha256, spec_sha);
        let plan = std::fs::read(dir.plan_path()).expect("plan");
        assert_eq!(provenance.plan_sha256, sweep_submit::provenance::sha256_hex(&plan));
        assert!(provenance.sbatch.as_deref().is_some_and(|v| v.starts_with("slurm")), "{provenance:?}");
        let manifest = dir.read_manifest().expect("manifest");
        for (job, _) in dir.job_dirs(Some(&manifest)) {
            let job = job.read_provenance().expect("readable").expect("the job's provenance.json");
            let expected = format!("sweep-mock-engine {}", env!("CARGO_PKG_VERSION"));
            assert_eq!(job.engine_version.as_deref(), Some(expected.as_str()), "{job:?}");
            assert_eq!(job.engine_version_source.as_deref(), Some("GET /version"));
        }
    }

    // Aggregated: a row per point from either executor, with the GPUs each job really had.
    for folder in ["slurm", "local"] {
        let (code, stdout, stderr) = sweep(&["aggregate", folder], &s.dir);
        assert_eq!(code, 0, "{stderr}");
        assert!(
            stdout.contains("ctx2_gen1_tep1_batch8_eplb0_mtp0"),
            "the disagg job is on its frontier: {stdout}"
        );
        let rows = common::csv_rows(&s.dir.join(folder).join("report/results.csv"));
        assert_eq!(rows.len(), 4, "{rows:#?}");
        let (code, _, stderr) = sweep(&["report", folder, "-o", &format!("{folder}-report")], &s.dir);
        assert_eq!(code, 0, "{stderr}");
        let md =
            std::fs::read_to_string(s.dir.join(format!("{folder}-report/report.md"))).expect("report.md");
        assert!(md.contains("## Provenance of sweep e2e-modes"), "{md}");
        assert!(md.contains(&format!("| rendered by | sweep {}", env!("CARGO_PKG_VERSION"))), "{md}");
        assert!(md.contains(&format!("| spec sha256 | {spec_sha} |")), "{md}");
        for row in &rows {
            assert_eq!(row["state"], "done", "{row:#?}");
            assert_eq!(row["request_count"], "8.0");
            let (working, allocated) = if row["mode"] == "disagg" { (3, 8) } else { (1, 4) };
            assert_eq!(
                (&row["gpus_working"], &row["gpus_allocated"]),
                (&working.to_string(), &allocated.to_string())
            );
            let per_gpu: f64 = row["tps_per_gpu_working"].parse().expect("number");
            let output: f64 = row["output_token_throughput"].parse().expect("number");
            assert!((per_gpu - output / f64::from(working)).abs() < 1e-9 * output, "{row:#?}");
            let per_allocated: f64 = row["tps_per_gpu_allocated"].parse().expect("number");
            assert!((per_allocated - output / f64::from(allocated)).abs() < 1e-9 * output);
        }
    }
}

const TWO_JOBS: &str = "\
name: e2e-resume
model: {path: /models/tiny, served_name: tiny}
engine: {kind: mock}
cluster: {gpus_per_node: 4, base_port: 18600, frontend_port: 18699}
mode: agg
agg: {tp: [1, 2], batch: 4, engine_args: {speedup: 2}}
workload: {isl: 32, osl: 32, concurrency: 1, requests: 40, warmup: 0}
";

#[test]
fn a_cancelled_job_is_resumed_alone_and_nothing_measured_is_touched() {
    let s = new_sweep("resume", TWO_JOBS);
    let (code, stdout, stderr) = sweep(&["submit", "spec.yaml", "-o", "sweep", "--sequential"], &s.dir);
    assert_eq!(code, 0, "{stderr}");
    let ids: Vec<&str> = stdout.lines().filter_map(|l| l.split('\t').nth(1)).collect();
    assert_eq!(ids.len(), 2);
    wait_for(&s.dir, "sweep", Duration::from_secs(120), |rows| rows[0]["state"] == "COMPLETED");
    let first = s.dir.join("sweep/jobs/agg1_tep1_batch4_eplb0_mtp0/points");
    let before = layout(&first);
    let export = first
        .read_dir()
        .expect("points")
        .flatten()
        .next()
        .expect("a point")
        .path()
        .join("profile_export_aiperf.json");
    let measured = std::fs::read(&export).expect("export");
    let (code, _, stderr) = sweep(&["cancel", "sweep"], &s.dir);
    assert_eq!(code, 0, "{stderr}");
    let rows = wait_for(&s.dir, "sweep", Duration::from_secs(60), all_final);
    assert_eq!(rows[1]["state"], "CANCELLED", "{rows:#?}");

    let (code, stdout, stderr) = sweep(&["submit", "spec.yaml", "-o", "sweep", "--resume"], &s.dir);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("1 points already complete") && stderr.contains("1 to run in 1 new job folders"),
        "{stderr}"
    );
    assert_eq!(stdout.lines().count(), 1, "only the cancelled job's point is resubmitted: {stdout}");
    let rows = wait_for(&s.dir, "sweep", Duration::from_secs(120), all_final);
    assert_eq!(rows.len(), 3, "a new folder beside the cancelled one: {rows:#?}");
    assert_eq!(rows[2]["dir"], "jobs/agg1_tep2_batch4_eplb0_mtp0.2");
    assert_eq!(rows[2]["state"], "COMPLETED", "{rows:#?}");
    assert_eq!(layout(&first), before, "the completed job's files are as they were");
    assert_eq!(std::fs::read(&export).expect("export"), measured, "and its results unchanged");

    // Aggregated: both points done, the resumed one from its new folder; the cancelled folder's
    // attempt does not hide it.
    let (code, _, stderr) = sweep(&["aggregate", "sweep"], &s.dir);
    assert_eq!(code, 0, "{stderr}");
    let rows = common::csv_rows(&s.dir.join("sweep/report/results.csv"));
    assert_eq!(rows.iter().map(|r| r["state"].as_str()).collect::<Vec<_>>(), ["done", "done"], "{rows:#?}");
    assert!(rows.iter().any(|r| r["path"].contains("agg1_tep2_batch4_eplb0_mtp0.2")), "{rows:#?}");

    // Nothing left to do: a second resume adds nothing.
    let (code, stdout, stderr) = sweep(&["submit", "spec.yaml", "-o", "sweep", "--resume"], &s.dir);
    assert_eq!((code, stdout.as_str()), (0, ""), "{stderr}");
    assert!(stderr.contains("nothing to run"), "{stderr}");
}

#[test]
fn a_grown_spec_resumes_locally_with_only_its_new_points() {
    let spec: String = BOTH_MODES
        .replace("mode: [agg, disagg]", "mode: agg")
        .replace("18500", "18700")
        .replace("18599", "18799")
        .lines()
        .filter(|l| !l.starts_with("ctx:") && !l.starts_with("gen:"))
        .map(|l| format!("{l}\n"))
        .collect();
    let s = new_sweep("grow", &spec.replace("concurrency: [1, 4]", "concurrency: [1]"));
    let (code, _, stderr) = sweep(&["submit", "spec.yaml", "-o", "sweep", "--executor", "local"], &s.dir);
    assert_eq!(code, 0, "{stderr}");
    let job = s.dir.join("sweep/jobs/agg1_tep1_batch8_eplb0_mtp0");
    let before = std::fs::read(job.join("metadata.json")).expect("metadata");
    std::fs::write(s.dir.join("spec.yaml"), &spec).expect("grown spec");
    let (code, _, stderr) =
        sweep(&["submit", "spec.yaml", "-o", "sweep", "--resume", "--executor", "local"], &s.dir);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("1 points already complete") && stderr.contains("1 to run"), "{stderr}");
    let rows = status(&s.dir, "sweep");
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1]["dir"], "jobs/agg1_tep1_batch8_eplb0_mtp0.2");
    assert_eq!(rows[1]["points"].as_array().map(Vec::len), Some(1), "only the new concurrency");
    assert_eq!(point_states(&rows), ["done", "done"]);
    assert_eq!(std::fs::read(job.join("metadata.json")).expect("metadata"), before);
    assert!(s.dir.join("sweep/spec.resume-1.yaml").exists() && s.dir.join("sweep/spec.yaml").exists());
}

/// An open loop at two rates (constant arrivals, so the measured rate is predictable), with a
/// concurrency cap well above what the rates need.
const RATES: &str = "\
name: e2e-rates
model: {path: /models/tiny, served_name: tiny}
engine: {kind: mock}
cluster: {gpus_per_node: 4, base_port: 23000, frontend_port: 23099}
mode: agg
agg: {tp: 1, batch: 8, engine_args: {speedup: 20}}
workload: {isl: 32, osl: 8, concurrency: 8, arrival: constant, request_rate: [4, 8], requests: 24, warmup: 2}
";

#[test]
fn a_request_rate_sweep_measures_a_point_per_rate_and_a_new_rate_resumes_alone() {
    let s = new_sweep("rates", RATES);
    let (code, _, stderr) = sweep(&["submit", "spec.yaml", "-o", "sweep", "--executor", "local"], &s.dir);
    assert_eq!(code, 0, "{stderr}");
    let rows = status(&s.dir, "sweep");
    assert_eq!(rows.len(), 1, "both rates in one job: {rows:#?}");
    assert_eq!(point_states(&rows), ["done", "done"]);

    // A third rate: only its point runs; the two measured ones keep their ids and results.
    std::fs::write(s.dir.join("spec.yaml"), RATES.replace("[4, 8]", "[4, 8, 2]")).expect("spec");
    let (code, _, stderr) =
        sweep(&["submit", "spec.yaml", "-o", "sweep", "--resume", "--executor", "local"], &s.dir);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("2 points already complete") && stderr.contains("1 to run"), "{stderr}");

    let (code, stdout, stderr) = sweep(&["report", "sweep"], &s.dir);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("REQ/S"), "the frontier shows the rate: {stdout}");
    let rows = common::csv_rows(&s.dir.join("sweep/report/results.csv"));
    assert_eq!(rows.len(), 3, "{rows:#?}");
    let mut measured: Vec<(f64, f64)> = rows
        .iter()
        .map(|r| {
            let number = |key: &str| r[key].parse::<f64>().unwrap_or_else(|_| panic!("{key}: {r:?}"));
            (number("request_rate"), number("request_throughput"))
        })
        .collect();
    measured.sort_by(|a, b| a.0.total_cmp(&b.0));
    assert_eq!(measured.iter().map(|m| m.0).collect::<Vec<_>>(), [2.0, 4.0, 8.0]);
    for (rate, throughput) in &measured {
        // 24 requests sent 1/rate apart: the span is 23/rate plus one request's latency.
        let expected = 24.0 / (23.0 / rate);
        assert!(
            (throughput / expected - 1.0).abs() < 0.2,
            "the load generator held the rate {rate}: measured {throughput} req/s, expected about {expected}"
        );
    }
    let html = std::fs::read_to_string(s.dir.join("sweep/report/report.html")).expect("report.html");
    assert!(
        html.contains("id=\"request-rate\"") && html.contains("id=\"ttft_rate_isl32_osl8\""),
        "rate charts"
    );
}

/// A search for the highest concurrency meeting a TTFT SLO, on two simulated servers whose
/// batch (6 and 10 sequences) is where requests start to queue: the TTFT jumps from a prefill
/// (a few ms) to a whole request (about 90 ms) there, so the answer is known.
const SEARCH: &str = "\
name: e2e-search
model: {path: /models/tiny, served_name: tiny}
engine: {kind: mock}
cluster: {gpus_per_node: 4, base_port: 18900, frontend_port: 18999}
mode: agg
agg: {tp: 1, batch: [6, 10], engine_args: {speedup: 4}}
workload:
  isl: 32
  osl: 32
  requests: 10x
  warmup: 1x
  search: {axis: concurrency, from: 1, to: 64, slo: {time_to_first_token: {p99: 40}}}
";

fn search_record(job: &Path) -> serde_json::Value {
    let points = std::fs::read_dir(job.join("points")).expect("points");
    let record = points
        .flatten()
        .find_map(|p| std::fs::read_to_string(p.path().join("search.json")).ok())
        .expect("the planned point's search.json");
    serde_json::from_str(&record).expect("JSON")
}

#[test]
fn a_search_finds_the_concurrency_where_each_server_starts_to_queue() {
    let s = new_sweep("search", SEARCH);
    let (code, _, stderr) = sweep(&["submit", "spec.yaml", "-o", "sweep", "--executor", "local"], &s.dir);
    assert_eq!(code, 0, "{stderr}");
    // 2 × log2(64 / 1) + 3.
    let budget = 15;
    for batch in [6, 10] {
        let job = s.dir.join(format!("sweep/jobs/agg1_tep1_batch{batch}_eplb0_mtp0"));
        let record = search_record(&job);
        assert_eq!(record["max_load_meeting_slo"].as_f64(), Some(f64::from(batch)), "{record:#}");
        assert_eq!(record["finished"], true);
        let steps = record["steps"].as_array().expect("steps");
        // The figures docs/benchmarks.md quotes.
        let loads: Vec<f64> = steps.iter().filter_map(|s| s["load"].as_f64()).collect();
        eprintln!(
            "batch {batch}: found {} in {} steps: {loads:?}",
            record["max_load_meeting_slo"],
            steps.len()
        );
        assert!(steps.len() <= budget, "{} steps: {record:#}", steps.len());
        assert!(
            record["stopped_because"]
                .as_str()
                .unwrap_or_default()
                .starts_with(&format!("the SLO breaks at {}", batch + 1)),
            "{record:#}"
        );
        // Every step is a point of its own, with its exports and its marker.
        for step in steps {
            let dir = job.join("points").join(step["point"].as_str().expect("id"));
            assert!(dir.join("profile_export_aiperf.json").is_file(), "{}", dir.display());
            let point: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(dir.join("point.json")).expect("point"))
                    .expect("JSON");
            assert_eq!(point["concurrency"].as_f64(), step["load"].as_f64(), "{point}");
            assert_eq!(point["search"], record["point"], "{point}");
        }
    }

    let (code, stdout, stderr) = sweep(&["report", "sweep"], &s.dir);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("MAX LOAD MEETING THE SLO"), "{stdout}");
    let rows = common::csv_rows(&s.dir.join("sweep/report/results.csv"));
    let searched: Vec<&BTreeMap<String, String>> =
        rows.iter().filter(|r| !r["search_stopped_because"].is_empty()).collect();
    assert_eq!(searched.len(), 2, "a row per search: {rows:#?}");
    for row in &rows {
        assert!(!row["search"].is_empty(), "every row belongs to a search: {row:?}");
        let batch: f64 = row["batch"].parse().expect("batch");
        assert_eq!(row["max_load_meeting_slo"].parse::<f64>().ok(), Some(batch), "{row:?}");
    }
    let html = std::fs::read_to_string(s.dir.join("sweep/report/report.html")).expect("report.html");
    assert!(
        html.contains("id=\"search-table\"") && html.contains("id=\"search_max_load\""),
        "the search section"
    );
}

#[test]
fn a_saturation_search_without_an_slo_stops_at_the_knee() {
    // At the default speed and 64 output tokens a request takes ~60 steps, so the client's
    // gap between one request's end and the next one's admission (about a step) costs the full
    // batch under 2 % of its throughput: past the batch, more load adds nothing.
    let spec = SEARCH
        .replace("batch: [6, 10], engine_args: {speedup: 4}", "batch: 6")
        .replace("osl: 32", "osl: 64")
        .replace("requests: 10x", "requests: 6x")
        .replace("slo: {time_to_first_token: {p99: 40}}", "stop_when_gain_below: 0.05")
        .replace("18900", "23500")
        .replace("18999", "23599");
    let s = new_sweep("saturation", &spec);
    let (code, _, stderr) = sweep(&["submit", "spec.yaml", "-o", "sweep", "--executor", "local"], &s.dir);
    assert_eq!(code, 0, "{stderr}");
    let record = search_record(&s.dir.join("sweep/jobs/agg1_tep1_batch6_eplb0_mtp0"));
    // Past 6 sequences the server only queues: 6 is the lowest load within 5 % of the most.
    assert_eq!(record["max_load_meeting_slo"].as_f64(), Some(6.0), "{record:#}");
    assert!(
        record["stopped_because"].as_str().unwrap_or_default().starts_with("the throughput saturates"),
        "{record:#}"
    );
    assert!(record["steps"].as_array().expect("steps").len() <= 15, "{record:#}");
}

#[test]
fn a_search_near_its_jobs_time_limit_stops_and_keeps_its_steps() {
    // One minute of SLURM time, and a first step far longer than that: the runner stops it 30 s
    // before the limit, and the search ends there with what it measured.
    let spec = SEARCH
        .replace("batch: [6, 10]", "batch: 6")
        .replace("requests: 10x", "requests: 5000")
        .replace("gpus_per_node: 4,", "gpus_per_node: 4, time_limit: 1,")
        .replace("18900", "23600")
        .replace("18999", "23699");
    let s = new_sweep("search-limit", &spec);
    let (code, _, stderr) = sweep(&["submit", "spec.yaml", "-o", "sweep"], &s.dir);
    assert_eq!(code, 0, "{stderr}");
    let rows = wait_for(&s.dir, "sweep", Duration::from_secs(90), all_final);
    assert_eq!(point_states(&rows), ["timeout"], "the search's planned point: {rows:#?}");
    let job = s.dir.join("sweep/jobs/agg1_tep1_batch6_eplb0_mtp0");
    let record = search_record(&job);
    assert_eq!(record["finished"], false, "{record:#}");
    assert_eq!(record["stopped_because"], "step at 1 ended timeout", "{record:#}");
    let step = &record["steps"][0];
    assert_eq!(step["state"], "timeout", "{record:#}");
    let export: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            job.join("points").join(step["point"].as_str().expect("id")).join("profile_export_aiperf.json"),
        )
        .expect("the step's export"),
    )
    .expect("JSON");
    assert!(
        export["request_count"]["avg"].as_f64().unwrap_or(0.0) >= 10.0,
        "what it measured is kept: {export:#}"
    );
}

#[test]
fn a_dataset_sends_its_own_prompts_and_lengths_and_is_recorded() {
    let dataset =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/datasets/single-turn.jsonl");
    let dataset = dataset.canonicalize().expect("the fixture");
    let spec = format!(
        "name: e2e-dataset
model: {{path: /models/tiny, served_name: tiny}}
engine: {{kind: mock}}
cluster: {{gpus_per_node: 4, base_port: 23700, frontend_port: 23799}}
mode: agg
agg: {{tp: 1, batch: 8, engine_args: {{speedup: 20}}}}
workload: {{isl: 32, osl: 6, concurrency: 2, requests: 8, warmup: 2, dataset: {{path: {}}}}}
",
        dataset.display()
    );
    let s = new_sweep("dataset", &spec);
    let (code, _, stderr) = sweep(&["submit", "spec.yaml", "-o", "sweep", "--executor", "local"], &s.dir);
    assert_eq!(code, 0, "{stderr}");
    let point = only_point(&s.dir.join("sweep"));
    // The simulated engine counts a prompt's words (every message's, each text part's) and
    // makes `max_tokens`: the lengths it reports are the dataset's, entry by entry, twice over.
    let mut measured: Vec<(u64, u64)> = profiling_records(&point)
        .iter()
        .map(|r| {
            let m = &r["metrics"];
            (
                m["input_sequence_length"]["value"].as_f64().unwrap_or(0.0) as u64,
                m["output_sequence_length"]["value"].as_f64().unwrap_or(0.0) as u64,
            )
        })
        .collect();
    measured.sort_unstable();
    let mut expected = vec![(4, 3), (10, 5), (11, 6), (3, 2), (4, 3), (10, 5), (11, 6), (3, 2)];
    expected.sort_unstable();
    assert_eq!(measured, expected, "(prompt words, output tokens) per request");
    let export = summary(&point);
    let bytes = std::fs::read(&dataset).expect("fixture");
    assert_eq!(export["dataset"]["bytes"].as_u64(), Some(bytes.len() as u64), "{export:#}");
    assert_eq!(
        (export["dataset"]["sessions"].as_u64(), export["dataset"]["turns"].as_u64()),
        (Some(4), Some(4))
    );
    assert_eq!(export["dataset"]["format"], "single_turn");
    let sum = Command::new("sha256sum").arg(&dataset).output().expect("sha256sum");
    let sum = String::from_utf8_lossy(&sum.stdout).split_whitespace().next().unwrap_or_default().to_owned();
    assert_eq!(export["dataset"]["sha256"].as_str(), Some(sum.as_str()), "{export:#}");
}

/// The one point of the one job (`agg1_tep1_batch8_eplb0_mtp0`) of the sweep in `folder`.
fn only_point(folder: &Path) -> PathBuf {
    let points = folder.join("jobs/agg1_tep1_batch8_eplb0_mtp0/points");
    std::fs::read_dir(&points).expect("points").flatten().next().expect("a point").path()
}

/// A point's `profile_export_aiperf.json`.
fn summary(point: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(point.join("profile_export_aiperf.json")).expect("export"))
        .expect("JSON")
}

/// A point's profiling records, in the order they were written.
fn profiling_records(point: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(point.join("profile_export.jsonl"))
        .expect("records")
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("JSON"))
        .filter(|r| r["metadata"]["benchmark_phase"] == "profiling")
        .collect()
}

#[test]
fn multi_turn_sessions_run_their_turns_in_order_with_the_history_and_their_delays() {
    let dataset =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/datasets/multi-turn.jsonl");
    let dataset = dataset.canonicalize().expect("the fixture");
    // Two workers, two sessions in the file: each worker runs one session at a time, and the
    // sessions cycle. 10 requests are about two passes over the file's 5 turns; which session
    // the budget runs out in depends on timing, and that session is cut short.
    let spec = format!(
        "name: e2e-sessions
model: {{path: /models/tiny, served_name: tiny}}
engine: {{kind: mock}}
cluster: {{gpus_per_node: 4, base_port: 24000, frontend_port: 24099}}
mode: agg
agg: {{tp: 1, batch: 8, engine_args: {{speedup: 20}}}}
workload: {{isl: 32, osl: 6, concurrency: 2, requests: 10, warmup: 1, dataset: {{path: {}, format: multi_turn}}}}
",
        dataset.display()
    );
    let s = new_sweep("sessions", &spec);
    let (code, _, stderr) = sweep(&["submit", "spec.yaml", "-o", "sweep", "--executor", "local"], &s.dir);
    assert_eq!(code, 0, "{stderr}");
    let point = only_point(&s.dir.join("sweep"));
    let records = profiling_records(&point);
    assert_eq!(records.len(), 10);
    // The file's turns: (user words, output tokens, delay before it in ms).
    type Turns = &'static [(u64, u64, u64)];
    let sessions: [(&str, Turns); 2] =
        [("support-1", &[(5, 4, 0), (4, 3, 300), (1, 2, 200)]), ("support-2", &[(6, 5, 0), (1, 2, 250)])];
    let mut by_conversation: std::collections::BTreeMap<u64, Vec<&serde_json::Value>> = Default::default();
    for r in &records {
        assert_eq!(r["error"], serde_json::Value::Null, "{r:#}");
        by_conversation
            .entry(r["metadata"]["session_num"].as_u64().expect("session_num"))
            .or_default()
            .push(r);
    }
    let whole = by_conversation.iter().filter(|(n, turns)| turns.len() == sessions[**n as usize % 2].1.len());
    // At most one session per worker is cut, with at most two of its turns sent: the other six
    // or more requests are whole sessions.
    assert!(whole.count() >= 2, "at least two sessions run whole: {by_conversation:#?}");
    for (n, turns) in &by_conversation {
        let (id, file_turns) = sessions[*n as usize % 2];
        assert!(turns.len() <= file_turns.len(), "conversation {n} runs {id}'s turns, in order");
        // The simulated engine counts the prompt's words: each turn's are every earlier turn's
        // words and answer (one word per token) plus its own.
        let mut history = 0;
        for (i, (r, &(words, osl, delay))) in turns.iter().zip(file_turns).enumerate() {
            let m = &r["metadata"];
            assert_eq!((m["conversation_id"].as_str(), m["turn_index"].as_u64()), (Some(id), Some(i as u64)));
            let metric = |k: &str| r["metrics"][k]["value"].as_f64().unwrap_or(0.0) as u64;
            assert_eq!(metric("input_sequence_length"), history + words, "{id} turn {i}: {r:#}");
            assert_eq!(metric("output_sequence_length"), osl, "{id} turn {i}");
            history += words + osl;
            if i > 0 {
                let ended = turns[i - 1]["metadata"]["request_end_ns"].as_u64().expect("end");
                let started = m["request_start_ns"].as_u64().expect("start");
                let gap_ms = started.saturating_sub(ended) / 1_000_000;
                assert!(started > ended, "{id}: turn {i} waits for turn {}'s answer", i - 1);
                assert!(
                    (delay..delay + 150).contains(&gap_ms),
                    "{id} turn {i}: {gap_ms} ms after, not {delay}"
                );
            }
        }
    }
    let export = summary(&point);
    let by_turn = export["time_to_first_token_by_turn"].as_array().expect("TTFT by turn");
    let counts: Vec<(u64, u64)> = by_turn
        .iter()
        .map(|t| (t["turn_index"].as_u64().unwrap_or(99), t["count"].as_u64().unwrap_or(0)))
        .collect();
    let mut expected = std::collections::BTreeMap::<u64, u64>::new();
    for r in &records {
        *expected.entry(r["metadata"]["turn_index"].as_u64().unwrap_or(99)).or_default() += 1;
    }
    assert_eq!(counts, expected.into_iter().collect::<Vec<_>>(), "{by_turn:#?}");
    assert_eq!(counts.len(), 3, "turns 0, 1 and 2: {counts:?}");
    assert_eq!(
        (export["dataset"]["sessions"].as_u64(), export["dataset"]["turns"].as_u64()),
        (Some(2), Some(5))
    );
    // The report carries the same turns, from the summary and recomputed from the records.
    for (args, out) in [
        (&["report", "sweep"][..], "sweep/report"),
        (&["report", "sweep", "--from-records", "-o", "again"], "again"),
    ] {
        let (code, _, stderr) = sweep(args, &s.dir);
        assert_eq!(code, 0, "{stderr}");
        let rows = common::csv_rows(&s.dir.join(out).join("ttft_by_turn.csv"));
        let got: Vec<(u64, u64)> = rows
            .iter()
            .map(|r| (r["turn_index"].parse().unwrap_or(99), r["count"].parse().unwrap_or(0)))
            .collect();
        assert_eq!(got, counts, "{out}: {rows:?}");
        let html = std::fs::read_to_string(s.dir.join(out).join("report.html")).expect("report");
        assert!(html.contains("id=\"ttft_by_turn_isl32_osl6\""), "{out}: the chart by turn");
    }
}

/// The simulated engine's `--token-log` lines (what each streamed request carried) for the
/// measured requests of the one point of the sweep in `folder`.
fn token_log(path: &Path, folder: &Path) -> Vec<serde_json::Value> {
    let point = only_point(folder);
    let ids: Vec<serde_json::Value> =
        profiling_records(&point).iter().map(|r| r["metadata"]["x_request_id"].clone()).collect();
    std::fs::read_to_string(path)
        .expect("the token log")
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .filter(|l: &serde_json::Value| ids.contains(&l["x_request_id"]))
        .collect()
}

#[test]
fn images_reach_the_server_byte_for_byte_and_cost_their_prefill() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/datasets");
    let fixtures = fixtures.canonicalize().expect("the fixtures");
    let s = new_sweep("images", "");
    let sha256 = |bytes: &[u8]| {
        let path = s.dir.join("hash-me");
        std::fs::write(&path, bytes).expect("written");
        let out = Command::new("sha256sum").arg(&path).output().expect("sha256sum");
        String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap_or_default().to_owned()
    };
    // A dataset naming an image file (relative to the dataset's folder), and synthetic images.
    let log = |name: &str| s.dir.join(format!("{name}.tokens.jsonl"));
    let spec = |name: &str, port: u32, workload: &str| {
        format!(
            "name: e2e-{name}
model: {{path: /models/tiny, served_name: tiny}}
engine: {{kind: mock}}
cluster: {{gpus_per_node: 4, base_port: {port}, frontend_port: {}}}
mode: agg
agg: {{tp: 1, batch: 8, engine_args: {{speedup: 20, token_log: {}}}}}
workload: {{isl: 16, osl: 2, concurrency: 2, requests: 4, warmup: 1, {workload}}}
",
            port + 99,
            log(name).display()
        )
    };
    let dataset = format!("dataset: {{path: {}}}", fixtures.join("with-image.jsonl").display());
    let runs = [
        ("dataset-image", spec("dataset-image", 24100, &dataset)),
        ("synthetic-images", spec("synthetic-images", 24200, "images: {count: 2, width: 64, height: 32}")),
    ];
    for (name, text) in &runs {
        std::fs::write(s.dir.join(format!("{name}.yaml")), text).expect("spec");
        let (code, _, stderr) =
            sweep(&["submit", &format!("{name}.yaml"), "-o", name, "--executor", "local"], &s.dir);
        assert_eq!(code, 0, "{name}: {stderr}");
    }
    // The file's bytes, decoded by the server from the data URL, for every measured request.
    let pixel = std::fs::read(fixtures.join("images/pixel.png")).expect("the image");
    let lines = token_log(&log("dataset-image"), &s.dir.join("dataset-image"));
    assert_eq!(lines.len(), 4, "{lines:#?}");
    for line in &lines {
        assert_eq!(
            line["images"],
            serde_json::json!([{"bytes": pixel.len(), "sha256": sha256(&pixel)}]),
            "{line:#}"
        );
    }
    // Synthetic PNGs: two per request, each of the size the encoder predicts, none repeated.
    let raw = 32 * (1 + 64 * 3);
    let png = 8 + 25 + 12 + (2 + 5 + raw + 4) + 12;
    let lines = token_log(&log("synthetic-images"), &s.dir.join("synthetic-images"));
    assert_eq!(lines.len(), 4, "{lines:#?}");
    let mut seen = std::collections::BTreeSet::new();
    for line in &lines {
        let images = line["images"].as_array().expect("images");
        assert_eq!(images.len(), 2, "{line:#}");
        for image in images {
            assert_eq!(image["bytes"], png, "{image:#}");
            assert!(seen.insert(image["sha256"].as_str().expect("sha256").to_owned()), "a repeated image");
        }
    }
    // Each image costs the engine's 256 prompt tokens, on top of the text's words.
    for (name, words, images) in [("dataset-image", 2, 1), ("synthetic-images", 16, 2)] {
        let point = only_point(&s.dir.join(name));
        for r in profiling_records(&point) {
            let isl = r["metrics"]["input_sequence_length"]["value"].as_f64().unwrap_or(0.0) as u64;
            assert_eq!(isl, words + 256 * images, "{name}: {r:#}");
        }
    }
}

#[test]
fn a_higher_prefix_ratio_hits_the_engines_prefix_cache_and_cuts_ttft() {
    let s = new_sweep("prefix", "");
    let runner = Path::new(env!("CARGO_BIN_EXE_sweep")).with_file_name("sweep-runner");
    let mut ttft = Vec::new();
    for (ratio, port) in [(0.1_f64, 24300), (0.9, 24400)] {
        let name = format!("prefix-{ratio}");
        let trace = s.dir.join(format!("{name}.jsonl"));
        // 2,048-word prompts in 32 blocks of 64: 3 or 29 blocks shared by every request.
        let output = Command::new(&runner)
            .args([
                "trace",
                "prefix",
                "--ratio",
                &ratio.to_string(),
                "--requests",
                "12",
                "--request-rate",
                "10",
            ])
            .args(["--isl", "2048", "--osl", "4", "--block-size", "64", "-o"])
            .arg(&trace)
            .output()
            .expect("sweep-runner runs");
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let log = s.dir.join(format!("{name}.tokens.jsonl"));
        let spec = format!(
            "name: e2e-{name}
model: {{path: /models/tiny, served_name: tiny}}
engine: {{kind: mock}}
cluster: {{gpus_per_node: 4, base_port: {port}, frontend_port: {}}}
mode: agg
agg: {{tp: 1, batch: 8, engine_args: {{prefix_cache_blocks: 10000, token_log: {}}}}}
workload: {{isl: 2048, osl: 4, concurrency: 4, warmup: 0, trace: {}, trace_block_size: 64}}
",
            port + 99,
            log.display(),
            trace.display()
        );
        std::fs::write(s.dir.join(format!("{name}.yaml")), spec).expect("spec");
        let (code, _, stderr) =
            sweep(&["submit", &format!("{name}.yaml"), "-o", &name, "--executor", "local"], &s.dir);
        assert_eq!(code, 0, "{name}: {stderr}");
        // The engine held the shared blocks after the first request: each later one reused
        // the shared words (in the engine's blocks of 16), and nothing of its own.
        let lines = token_log(&log, &s.dir.join(&name));
        assert_eq!(lines.len(), 12, "{lines:#?}");
        let shared = (32.0 * ratio).round() as u64 * 64;
        let mut cached: Vec<u64> =
            lines.iter().map(|l| l["cached_tokens"].as_u64().expect("cached")).collect();
        cached.sort_unstable();
        assert_eq!(cached[0], 0, "the first request finds the cache cold: {cached:?}");
        assert!(cached[1..].iter().all(|&c| c == shared), "{ratio}: {cached:?}, not {shared}");
        let point = only_point(&s.dir.join(&name));
        let export = summary(&point);
        ttft.push(export["time_to_first_token"]["p50"].as_f64().expect("TTFT"));
    }
    eprintln!("TTFT p50 at prefix ratio 0.1: {:.1} ms, at 0.9: {:.1} ms", ttft[0], ttft[1]);
    // Prefill is 5 ms plus 20 µs a word: ~46 ms for the whole prompt, ~9 ms for a tenth of it.
    assert!(ttft[1] < ttft[0] * 0.5, "TTFT p50 at ratio 0.1 and 0.9: {ttft:?}");
}

/// `workload.prefix_ratio` as an axis, aggregated and disaggregated: a point per ratio in each
/// job, the synthetic prompts sharing that share of their words. The AGG server's and the CTX
/// worker's prefix caches serve the shared part, so the TTFT falls with the ratio, and the table
/// and the report carry the ratio.
const PREFIX_AXIS: &str = "\
name: e2e-prefix-axis
model: {path: /models/tiny, served_name: tiny}
engine: {kind: mock}
cluster: {gpus_per_node: 4, packing: packed, base_port: 24500, frontend_port: 24599}
mode: [agg, disagg]
agg: {tp: 1, batch: 8, engine_args: {prefix_cache_blocks: 10000, token_log: TOKEN_LOG}}
ctx: {tp: 1, batch: 8, engine_args: {prefix_cache_blocks: 10000}}
gen: {tp: 1, batch: 8}
workload: {isl: 2048, osl: 4, concurrency: 1, requests: 8, warmup: 0, prefix_ratio: [0.1, 0.9]}
";

#[test]
fn a_prefix_ratio_axis_runs_a_point_per_ratio_and_the_shared_words_come_from_the_cache() {
    let s = new_sweep("prefix-axis", "");
    let log = s.dir.join("agg.tokens.jsonl");
    std::fs::write(s.dir.join("spec.yaml"), PREFIX_AXIS.replace("TOKEN_LOG", &log.display().to_string()))
        .expect("spec");
    let (code, _, stderr) = sweep(&["submit", "spec.yaml", "-o", "sweep", "--executor", "local"], &s.dir);
    assert_eq!(code, 0, "{stderr}");
    let rows = status(&s.dir, "sweep");
    assert_eq!(point_states(&rows), ["done"; 4], "{rows:#?}");

    // The AGG server's log: per point, every request past the first found the shared words'
    // full blocks of 16 cached, and no request found more.
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&log)
        .expect("the token log")
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    let points = s.dir.join("sweep/jobs/agg1_tep1_batch8_eplb0_mtp0/points");
    let mut ratios = Vec::new();
    for point in std::fs::read_dir(&points).expect("points").flatten().map(|e| e.path()) {
        let planned: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(point.join("point.json")).expect("point.json"))
                .expect("JSON");
        let ratio = planned["prefix_ratio"].as_f64().expect("the point's ratio");
        ratios.push(ratio);
        let shared = ((2048.0 * ratio).round() as u64) / 16 * 16;
        let ids: Vec<serde_json::Value> =
            profiling_records(&point).iter().map(|r| r["metadata"]["x_request_id"].clone()).collect();
        let cached: Vec<u64> = lines
            .iter()
            .filter(|l| ids.contains(&l["x_request_id"]))
            .map(|l| l["cached_tokens"].as_u64().expect("a count"))
            .collect();
        assert_eq!(cached.len(), 8, "{ratio}: {cached:?}");
        assert!(cached.iter().all(|&c| c <= shared), "{ratio}: {cached:?} past {shared}");
        assert!(cached.iter().filter(|&&c| c == shared).count() >= 7, "{ratio}: {cached:?}, not {shared}");
    }
    ratios.sort_by(f64::total_cmp);
    assert_eq!(ratios, [0.1, 0.9]);

    let (code, _, stderr) = sweep(&["report", "sweep"], &s.dir);
    assert_eq!(code, 0, "{stderr}");
    let table = common::csv_rows(&s.dir.join("sweep/report/results.csv"));
    for mode in ["agg", "disagg"] {
        let ttft = |ratio: &str| {
            let row = table
                .iter()
                .find(|r| r["mode"] == mode && r["prefix_ratio"] == ratio)
                .unwrap_or_else(|| panic!("no {mode} row at ratio {ratio}: {table:#?}"));
            row["ttft_p50_ms"].parse::<f64>().expect("TTFT")
        };
        let (low, high) = (ttft("0.1"), ttft("0.9"));
        eprintln!("{mode}: TTFT p50 {low:.1} ms at prefix ratio 0.1, {high:.1} ms at 0.9");
        // One request at a time, so a TTFT is its prefill alone: 5 ms plus 20 µs a word, ~46 ms
        // for 1,856 uncached words and ~9 ms for 208.
        assert!(high < low * 0.5, "{mode}: TTFT p50 {low} at 0.1, {high} at 0.9");
    }
    let html = std::fs::read_to_string(s.dir.join("sweep/report/report.html")).expect("report.html");
    assert!(
        html.contains("id=\"prefix-ratio\"") && html.contains("id=\"ttft_prefix_isl2048_osl4\""),
        "prefix charts"
    );
    assert!(html.contains("ISL 2048 / OSL 4, prefix 0.9"), "each ratio is a workload of its own");
}

#[test]
fn a_dataset_only_the_compute_nodes_were_to_see_fails_its_points_with_the_reason() {
    // `check: false`: submit does not look; the benchmark step cannot read it either.
    let spec = "\
name: e2e-dataset-missing
model: {path: /models/tiny, served_name: tiny}
engine: {kind: mock}
cluster: {gpus_per_node: 4, base_port: 23800, frontend_port: 23899}
mode: agg
agg: {tp: 1, batch: 8, engine_args: {speedup: 20}}
workload: {isl: 32, osl: 6, concurrency: [1, 2], requests: 4, dataset: {path: /nonexistent/prompts.jsonl, check: false}}
";
    let s = new_sweep("dataset-missing", spec);
    let (code, _, stderr) = sweep(&["submit", "spec.yaml", "-o", "sweep", "--executor", "local"], &s.dir);
    assert_eq!(code, 10, "the job did not complete: {stderr}");
    let rows = status(&s.dir, "sweep");
    assert_eq!(point_states(&rows), ["failed", "failed"], "{rows:#?}");
    for point in rows[0]["points"].as_array().expect("points") {
        let reason = point["reason"].as_str().unwrap_or_default();
        assert!(reason.contains("/nonexistent/prompts.jsonl") && reason.contains("No such file"), "{reason}");
    }
}

#[test]
fn a_sinusoidal_trace_from_the_runner_is_replayed_by_a_sweep() {
    let s = new_sweep("sin-trace", "");
    // The runner is built beside `sweep`.
    let runner = Path::new(env!("CARGO_BIN_EXE_sweep")).with_file_name("sweep-runner");
    let trace = s.dir.join("sin.jsonl");
    let output = Command::new(&runner)
        .args(["trace", "sin", "--time-duration", "4", "--request-rate-min", "4", "--request-rate-max", "12"])
        .args(["--request-rate-period", "4", "--isl1", "16", "--osl1", "4", "--isl2", "48", "--osl2", "2"])
        .args(["--block-size", "16", "-o"])
        .arg(&trace)
        .output()
        .expect("sweep-runner runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let lines = std::fs::read_to_string(&trace).expect("trace").lines().count();
    assert!((15..=60).contains(&lines), "about 4 s × 8/s: {lines}");
    let spec = format!(
        "name: e2e-sin-trace
model: {{path: /models/tiny, served_name: tiny}}
engine: {{kind: mock}}
cluster: {{gpus_per_node: 4, base_port: 23900, frontend_port: 23999}}
mode: agg
agg: {{tp: 1, batch: 16, engine_args: {{speedup: 20}}}}
workload: {{isl: 16, osl: 4, concurrency: 64, requests: 1000, warmup: 0, trace: {}, trace_block_size: 16}}
",
        trace.display()
    );
    std::fs::write(s.dir.join("spec.yaml"), spec).expect("spec");
    let (code, _, stderr) = sweep(&["submit", "spec.yaml", "-o", "sweep", "--executor", "local"], &s.dir);
    assert_eq!(code, 0, "{stderr}");
    let (code, _, stderr) = sweep(&["aggregate", "sweep"], &s.dir);
    assert_eq!(code, 0, "{stderr}");
    let rows = common::csv_rows(&s.dir.join("sweep/report/results.csv"));
    assert_eq!(
        rows[0]["request_count"].parse::<f64>().ok(),
        Some(lines as f64),
        "every request of the trace: {rows:?}"
    );
}

#[test]
fn a_job_near_its_time_limit_stops_in_time_and_keeps_its_partial_results() {
    // One minute of SLURM time; the runner stops 30 s before it, mid-point, and writes results.
    let spec = TWO_JOBS
        .replace("tp: [1, 2]", "tp: 1")
        .replace("18600", "18800")
        .replace("18699", "18899")
        .replace("gpus_per_node: 4,", "gpus_per_node: 4, time_limit: 1,")
        .replace("concurrency: 1, requests: 40", "concurrency: [1, 2], requests: 2000");
    let s = new_sweep("limit", &spec);
    let (code, _, stderr) = sweep(&["submit", "spec.yaml", "-o", "sweep"], &s.dir);
    assert_eq!(code, 0, "{stderr}");
    let rows = wait_for(&s.dir, "sweep", Duration::from_secs(90), all_final);
    assert_eq!(point_states(&rows), ["timeout", "timeout"], "{rows:#?}");
    let job = s.dir.join("sweep/jobs/agg1_tep1_batch4_eplb0_mtp0");
    let bench: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(job.join("status/benchmark.json")).expect("marker"))
            .expect("JSON");
    assert_eq!(bench["state"], "timeout", "{bench}");
    let reasons: Vec<String> = rows[0]["points"]
        .as_array()
        .expect("points")
        .iter()
        .map(|p| p["reason"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(reasons.iter().any(|r| r.contains("time limit") && r.contains("kept")), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.starts_with("not run")), "{reasons:?}");
    let measured = std::fs::read_dir(job.join("points"))
        .expect("points")
        .flatten()
        .filter_map(|p| std::fs::read_to_string(p.path().join("profile_export_aiperf.json")).ok())
        .map(|t| serde_json::from_str::<serde_json::Value>(&t).expect("JSON"))
        .map(|j| j["request_count"]["avg"].as_f64().unwrap_or(0.0))
        .sum::<f64>();
    assert!(measured >= 10.0, "what finished before the stop is kept: {measured}");

    // Aggregated: both points are rows with their `timeout` state and reason, what they measured
    // is kept, and neither stands on a frontier.
    let (code, _, stderr) = sweep(&["aggregate", "sweep"], &s.dir);
    assert_eq!(code, 0, "{stderr}");
    let rows = common::csv_rows(&s.dir.join("sweep/report/results.csv"));
    assert_eq!(rows.len(), 2);
    for row in &rows {
        assert_eq!((row["state"].as_str(), row["on_frontier"].as_str()), ("timeout", "false"), "{row:#?}");
        assert!(!row["reason"].is_empty());
    }
    let counted: f64 = rows.iter().filter_map(|r| r["request_count"].parse::<f64>().ok()).sum();
    assert_eq!(counted, measured, "the table counts what the exports hold");
}

/// Six disaggregated jobs of the simulated engine, each on two nodes (CTX on one, GEN on the
/// other), all with the same ports as planned.
const IN_ALLOCATION: &str = "\
name: e2e-allocation
model: {path: /models/tiny, served_name: tiny}
engine: {kind: mock}
cluster: {gpus_per_node: 4, packing: packed, base_port: 20100, frontend_port: 20199}
mode: disagg
ctx: {servers: 1, tp: 1, batch: [4, 8], engine_args: {speedup: 20}}
gen: {servers: 1, tp: 1, batch: [4, 8, 16], engine_args: {speedup: 20}}
workload: {isl: 32, osl: 8, concurrency: 2, requests: 8, warmup: 2}
";

/// `sweep <args>` run with no SLURM allocation in its environment: its exit code and stderr.
fn sweep_outside_allocation(dir: &Path, args: &[&str]) -> (Option<i32>, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_sweep"))
        .args(args)
        .current_dir(dir)
        .env_remove("SLURM_JOB_ID")
        .env_remove("SLURM_JOB_NODELIST")
        .output()
        .expect("runs");
    (output.status.code(), String::from_utf8_lossy(&output.stderr).into_owned())
}

/// `sweep <args>` (a command line, spaces between its words) as the batch step of an sbatch
/// job of `nodes` nodes — inside an allocation — waited for: its exit code and its output.
fn sweep_in_allocation(dir: &Path, nodes: u32, args: &str) -> (i32, String) {
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let script = dir.join(format!("allocation-{n}.sh"));
    let sweep = env!("CARGO_BIN_EXE_sweep");
    std::fs::write(&script, format!("#!/bin/bash\ncd {}\nexec {sweep} {args}\n", dir.display()))
        .expect("script");
    let out = dir.join(format!("allocation-{n}.out"));
    let output = Command::new("sbatch")
        .args([
            "--wait",
            "--parsable",
            &format!("--nodes={nodes}"),
            "--time=10",
            "--job-name=sweep-e2e-allocation",
        ])
        .arg(format!("--output={}", out.display()))
        .arg(&script)
        .output()
        .expect("sbatch runs (is the dev cluster up? scripts/slurm-dev-cluster.sh start)");
    let log = std::fs::read_to_string(&out).unwrap_or_default();
    (output.status.code().unwrap_or(-1), format!("{}{log}", String::from_utf8_lossy(&output.stderr)))
}

#[test]
fn a_sweep_inside_a_four_node_allocation_runs_its_two_node_jobs_two_at_a_time_on_their_own_nodes_and_ports() {
    let s = new_sweep("allocation", IN_ALLOCATION);
    let (code, log) = sweep_in_allocation(&s.dir, 4, "submit spec.yaml -o sweep --in-allocation");
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("running 6 jobs inside allocation"), "{log}");
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(s.dir.join("sweep/manifest.json")).expect("manifest"))
            .expect("JSON");
    assert_eq!(manifest["executor"], "allocation");
    let jobs = manifest["jobs"].as_array().expect("jobs");
    assert_eq!(jobs.len(), 6);
    struct Ran {
        name: String,
        nodes: BTreeSet<String>,
        ports: BTreeSet<u64>,
        start: f64,
        end: f64,
    }
    let ran: Vec<Ran> = jobs
        .iter()
        .map(|job| {
            assert_eq!(job["state"], "completed", "{job:#}");
            assert!(job["slurm_job_id"].is_null(), "a step of the allocation, not a job of its own: {job}");
            let run = &job["allocation"];
            let context: serde_json::Value = serde_json::from_str(
                &std::fs::read_to_string(
                    s.dir.join("sweep").join(job["dir"].as_str().expect("dir")).join("job.json"),
                )
                .expect("job.json"),
            )
            .expect("JSON");
            let mut ports: BTreeSet<u64> = context["servers"]
                .as_array()
                .expect("servers")
                .iter()
                .filter_map(|s| s["port"].as_u64())
                .collect();
            ports.extend(context["frontend"]["port"].as_u64());
            // The runner knows the job's own nodes (its GPU telemetry samples those), not the
            // whole allocation's.
            let metadata: serde_json::Value = serde_json::from_str(
                &std::fs::read_to_string(
                    s.dir.join("sweep").join(job["dir"].as_str().expect("dir")).join("metadata.json"),
                )
                .expect("metadata.json"),
            )
            .expect("JSON");
            assert_eq!(metadata["nodes"], run["nodes"], "{job:#}");
            Ran {
                name: job["name"].as_str().unwrap_or_default().to_owned(),
                nodes: run["nodes"]
                    .as_array()
                    .expect("nodes")
                    .iter()
                    .map(|n| n.as_str().unwrap_or_default().to_owned())
                    .collect(),
                ports,
                start: run["started_at"].as_f64().expect("started"),
                end: run["ended_at"].as_f64().expect("ended"),
            }
        })
        .collect();
    let ids: BTreeSet<&str> = jobs.iter().filter_map(|j| j["allocation"]["job_id"].as_str()).collect();
    assert_eq!(ids.len(), 1, "every job ran in the one allocation: {ids:?}");
    for r in &ran {
        assert_eq!(r.nodes.len(), 2, "{}: {:?}", r.name, r.nodes);
    }
    // Two at a time, never more; jobs running at once share neither a node nor a port.
    let mut most = 0;
    for a in &ran {
        let at_once: Vec<&Ran> = ran.iter().filter(|b| b.start <= a.start && a.start < b.end).collect();
        most = most.max(at_once.len());
        for b in at_once.iter().filter(|b| b.name != a.name) {
            assert!(
                a.nodes.is_disjoint(&b.nodes),
                "{} and {} shared a node: {:?} {:?}",
                a.name,
                b.name,
                a.nodes,
                b.nodes
            );
            assert!(
                a.ports.is_disjoint(&b.ports),
                "{} and {} shared a port: {:?} {:?}",
                a.name,
                b.name,
                a.ports,
                b.ports
            );
        }
    }
    assert_eq!(most, 2, "four nodes hold two two-node jobs at once");

    // The same folder, markers and status as sbatch jobs: every point measured.
    let rows = status(&s.dir, "sweep");
    assert_eq!(point_states(&rows), ["done"; 6], "{rows:#?}");
    let (code, _, stderr) = sweep(&["wait", "sweep"], &s.dir);
    assert_eq!(code, 0, "{stderr}");
    let (code, stdout, stderr) = sweep(&["status", "sweep"], &s.dir);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains(ids.first().expect("an id")), "status shows the allocation's id: {stdout}");
}

#[test]
fn in_allocation_is_refused_outside_one_and_a_job_larger_than_the_allocation_before_anything_starts() {
    let s = new_sweep("allocation-refused", IN_ALLOCATION);
    let (code, stderr) =
        sweep_outside_allocation(&s.dir, &["submit", "spec.yaml", "-o", "sweep", "--in-allocation"]);
    assert_eq!(code, Some(9), "{stderr}");
    assert!(stderr.contains("not inside a SLURM allocation") && stderr.contains("salloc"), "{stderr}");
    assert!(!s.dir.join("sweep").exists());

    let (code, log) = sweep_in_allocation(&s.dir, 1, "submit spec.yaml -o sweep --in-allocation");
    assert_eq!(code, 4, "{log}");
    assert!(log.contains("needs 2 nodes; the allocation has 1 (n"), "{log}");
    assert!(!s.dir.join("sweep").exists(), "nothing written");
}

/// Aggregated and disaggregated serving at a batch of 4: at concurrency 16, twelve requests queue
/// at the AGG (or GEN) server while four decode; at 1, the AGG server never queues (a
/// disaggregated request may wait a step at the GEN server after its hand-off).
const SERVER_METRICS: &str = "\
name: e2e-server-metrics
model: {path: /models/tiny, served_name: tiny}
engine: {kind: mock, metrics: {interval_ms: 200}}
cluster: {gpus_per_node: 4, packing: packed, base_port: 25100, frontend_port: 25199}
mode: [agg, disagg]
agg: {tp: 1, batch: 4, engine_args: {speedup: 5}}
ctx: {servers: 1, tp: 1, batch: 8, engine_args: {speedup: 5}}
gen: {servers: 1, tp: 1, batch: 4, engine_args: {speedup: 5}}
workload: {isl: 64, osl: 32, concurrency: [1, 16], requests: 48, warmup: 4}
";

/// Each point's folder under `folder`, by whether its job is disaggregated and its planned
/// concurrency.
fn points_by_concurrency(folder: &Path) -> BTreeMap<(bool, u64), PathBuf> {
    let mut out = BTreeMap::new();
    for job in std::fs::read_dir(folder.join("jobs")).expect("jobs").flatten() {
        let disagg = job.file_name().to_string_lossy().starts_with("ctx");
        for point in std::fs::read_dir(job.path().join("points")).expect("points").flatten() {
            let planned: serde_json::Value = serde_json::from_str(
                &std::fs::read_to_string(point.path().join("point.json")).expect("point"),
            )
            .expect("JSON");
            out.insert((disagg, planned["concurrency"].as_u64().expect("concurrency")), point.path());
        }
    }
    out
}

#[test]
fn every_server_is_scraped_during_each_point_and_the_table_sets_the_servers_against_the_client() {
    let s = new_sweep("server-metrics", SERVER_METRICS);
    let (code, _, stderr) = sweep(&["submit", "spec.yaml", "-o", "sweep", "--executor", "local"], &s.dir);
    assert_eq!(code, 0, "{stderr}");
    let points = points_by_concurrency(&s.dir.join("sweep"));
    assert_eq!(points.keys().copied().collect::<Vec<_>>(), [(false, 1), (false, 16), (true, 1), (true, 16)]);
    for ((disagg, concurrency), point) in &points {
        let dir = sweep_folder::PointDir::new(point);
        let scraped = dir.read_server_metrics().expect("readable").expect("server_metrics.json");
        assert_eq!(scraped.notes, Vec::<String>::new(), "every server serves /metrics");
        let names: Vec<&str> = scraped.servers.keys().map(String::as_str).collect();
        assert_eq!(names, if *disagg { &["ctx_0", "disagg_server_0", "gen_0"][..] } else { &["agg_0"] });
        // The window's edges are the rounds taken around the measured requests, which every
        // server answered.
        let (lines, cut) = sweep_folder::server_metrics::read_scrapes(&dir.scrapes_path()).expect("jsonl");
        assert_eq!(cut, 0);
        for phase in [sweep_folder::server_metrics::Phase::Start, sweep_folder::server_metrics::Phase::End] {
            let answered = lines.iter().filter(|l| l.phase == phase && l.error.is_none()).count();
            assert_eq!(answered, names.len(), "{phase:?}");
        }
        // What scraping cost while the measured requests ran: a share of the whole runner's
        // CPU over the same span, and less than the whole point's scraping.
        let (thread, client, whole) = (
            scraped.scraper_cpu_measured_s.expect("scraper CPU while measuring"),
            scraped.client_cpu_measured_s.expect("client CPU while measuring"),
            scraped.scraper_cpu_s.expect("scraper CPU"),
        );
        assert!(0.0 <= thread && thread <= client && thread <= whole, "{thread} {client} {whole}");
        let export = summary(point);
        let requests = export["request_count"]["avg"].as_f64().expect("count");
        assert_eq!(requests, 48.0);
        let m = &scraped.measures;
        // The router's histograms saw exactly the measured requests: none of the warm-up's.
        let ttft = m.time_to_first_token.expect("server TTFT");
        assert_eq!(ttft.count, requests, "{m:#?}");
        assert_eq!(m.families["time_to_first_token"], "sweep_mock_time_to_first_token_seconds");
        assert_eq!(m.output_tokens, Some(requests * 32.0), "{m:#?}");
        // The client's TTFT adds the network and HTTP to the server's: above it, by little.
        let client_ttft = export["time_to_first_token"]["avg"].as_f64().expect("client TTFT");
        let server_ttft = ttft.mean_ms.expect("mean");
        eprintln!("disagg {disagg}, concurrency {concurrency}: TTFT client {client_ttft:.3} ms, server {server_ttft:.3} ms");
        assert!(
            client_ttft >= server_ttft && client_ttft - server_ttft < 25.0,
            "{client_ttft} vs {server_ttft}"
        );
        let waiting = m.requests_waiting.expect("waiting");
        let running = m.requests_running.expect("running");
        if *concurrency == 1 {
            assert!(waiting.max <= 1.0 && running.max <= 2.0, "{m:#?}");
        } else {
            // The scrapes catch the batch at moments: a full batch of 4 may fall between them
            // (CI saw 3 running once), the twelve queued behind it do not.
            let batches = if *disagg { 8.0 + 4.0 } else { 4.0 };
            assert!(waiting.max >= 8.0, "the GEN (or AGG) server queued: {m:#?}");
            assert!((1.0..=batches).contains(&running.max), "never more than the batches hold: {m:#?}");
        }
    }

    let (code, _, stderr) = sweep(&["report", "sweep"], &s.dir);
    assert_eq!(code, 0, "{stderr}");
    let rows = common::csv_rows(&s.dir.join("sweep/report/results.csv"));
    let flags = |mode: &str, c: &str| {
        rows.iter().find(|r| r["mode"] == mode && r["concurrency"] == c).expect("row")["server_flags"].clone()
    };
    assert_eq!(flags("agg", "1"), "");
    assert_eq!(flags("agg", "16"), "queued");
    assert_eq!(flags("disagg", "16"), "queued");
    for row in &rows {
        assert_eq!(row["server_output_tokens"], row["client_output_tokens"]);
        let difference: f64 = row["ttft_client_minus_server_avg_ms"].parse().expect("a number");
        assert!((0.0..25.0).contains(&difference), "{row:?}");
    }
    let html = std::fs::read_to_string(s.dir.join("sweep/report/report.html")).expect("report.html");
    assert!(html.contains("id=\"servers\"") && html.contains("id=\"server-table\""), "the servers section");
    assert_eq!(html.matches("class=\"server-panel\"").count(), 4, "a panel per point");
    assert!(
        html.contains("requests waited in the server&#39;s queue")
            || html.contains("requests waited in the server's queue")
    );
}

/// A `/metrics` answering an HTML page: noted once, with the line that did not parse; the point
/// still counts and its summary still says what else was seen.
#[test]
fn a_metrics_endpoint_answering_garbage_is_noted_and_the_point_still_counts() {
    let spec = "\
name: e2e-metrics-garbage
model: {path: /models/tiny, served_name: tiny}
engine: {kind: mock, metrics: {interval_ms: 200}}
cluster: {gpus_per_node: 4, base_port: 25200, frontend_port: 25299}
mode: agg
agg: {tp: 1, batch: 8, engine_args: {speedup: 20, fault_metrics_garbage: true}}
workload: {isl: 32, osl: 8, concurrency: 2, requests: 16, warmup: 2}
";
    let s = new_sweep("metrics-garbage", spec);
    let (code, _, stderr) = sweep(&["submit", "spec.yaml", "-o", "sweep", "--executor", "local"], &s.dir);
    assert_eq!(code, 0, "{stderr}");
    let point = only_point(&s.dir.join("sweep"));
    let dir = sweep_folder::PointDir::new(&point);
    assert_eq!(dir.read_status().expect("status").expect("marker").state, sweep_folder::PointState::Done);
    let scraped = dir.read_server_metrics().expect("readable").expect("server_metrics.json");
    assert_eq!(scraped.notes.len(), 1, "noted once: {:?}", scraped.notes);
    assert!(
        scraped.notes[0].starts_with("agg_0: http://")
            && scraped.notes[0]
                .contains("is not a Prometheus exposition: line 1: `<html><body>502` is not a metric name"),
        "{:?}",
        scraped.notes
    );
    let server = &scraped.servers["agg_0"];
    assert!(server.failed_scrapes >= 2 && server.scrapes == 0, "{server:?}");
    assert_eq!(scraped.measures, Default::default());
    let (code, _, stderr) = sweep(&["aggregate", "sweep"], &s.dir);
    assert_eq!(code, 0, "{stderr}");
    let rows = common::csv_rows(&s.dir.join("sweep/report/results.csv"));
    assert_eq!(rows[0]["state"], "done");
    assert_eq!(rows[0]["server_ttft_p50_ms"], "");
}

/// A BurstGPT log (BurstGPT's columns; rows made here) converted by the runner, filtered to one
/// model and log type and sped up, then replayed by a sweep: every kept row is one request with
/// the row's lengths, at the row's time over the speed ratio.
#[test]
fn a_burstgpt_log_converted_by_the_runner_is_replayed_by_a_sweep() {
    let s = new_sweep("burstgpt", "");
    let runner = Path::new(env!("CARGO_BIN_EXE_sweep")).with_file_name("sweep-runner");
    let csv = s.dir.join("burstgpt.csv");
    let mut text = String::from("Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n");
    // 12 ChatGPT conversation rows a second apart (kept), with other models' and API rows between.
    for i in 0..12 {
        let (request, response) = (16 + 4 * i, 2 + i % 3);
        text.push_str(&format!(
            "{},ChatGPT,{request},{response},{},Conversation log\n",
            100 + 2 * i,
            request + response
        ));
        text.push_str(&format!("{},GPT-4,40,5,45,Conversation log\n", 101 + 2 * i));
        text.push_str(&format!("{},ChatGPT,40,5,45,API log\n", 101 + 2 * i));
    }
    std::fs::write(&csv, text).expect("csv");
    let trace = s.dir.join("burstgpt.jsonl");
    let output = Command::new(&runner)
        .args(["trace", "burstgpt"])
        .arg(&csv)
        .args([
            "--model",
            "ChatGPT",
            "--log-type",
            "Conversation log",
            "--speed-ratio",
            "4",
            "--block-size",
            "16",
            "-o",
        ])
        .arg(&trace)
        .output()
        .expect("sweep-runner runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&trace)
        .expect("trace")
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    assert_eq!(lines.len(), 12, "the other models' and the API rows are left out");
    // Two seconds apart in the log, four times faster: 500 ms apart, from 0.
    let times: Vec<f64> = lines.iter().map(|l| l["timestamp"].as_f64().expect("timestamp")).collect();
    assert_eq!(times, (0..12).map(|i| f64::from(i) * 500.0).collect::<Vec<_>>());
    let spec = format!(
        "name: e2e-burstgpt
model: {{path: /models/tiny, served_name: tiny}}
engine: {{kind: mock}}
cluster: {{gpus_per_node: 4, base_port: 25300, frontend_port: 25399}}
mode: agg
agg: {{tp: 1, batch: 8, engine_args: {{speedup: 20}}}}
workload: {{isl: 16, osl: 4, concurrency: 16, warmup: 0, trace: {}, trace_block_size: 16}}
",
        trace.display()
    );
    std::fs::write(s.dir.join("spec.yaml"), spec).expect("spec");
    let (code, _, stderr) = sweep(&["submit", "spec.yaml", "-o", "sweep", "--executor", "local"], &s.dir);
    assert_eq!(code, 0, "{stderr}");
    let records = profiling_records(&only_point(&s.dir.join("sweep")));
    assert_eq!(records.len(), 12, "a request per kept row");
    let mut lengths: Vec<(u64, u64)> = records
        .iter()
        .map(|r| {
            let value = |m: &str| r["metrics"][m]["value"].as_f64().unwrap_or(0.0) as u64;
            (value("input_sequence_length"), value("output_sequence_length"))
        })
        .collect();
    lengths.sort();
    let expected: Vec<(u64, u64)> = (0..12).map(|i| (16 + 4 * i, 2 + i % 3)).collect();
    assert_eq!(lengths, expected, "each row's request and response tokens");
}

/// Four jobs a sweep, each of one or two TP4 servers, and no port given: every job plans port
/// 8000 up. The dev cluster's nodes share one network namespace (as containers with host
/// networking do), so jobs running at once, of one sweep or of two, meet on those ports; each
/// server that finds its port taken moves to a free one and says so in its registration.
const DEFAULT_PORTS_AGG: &str = "\
name: e2e-ports-agg
model: {path: /models/tiny, served_name: tiny}
engine: {kind: mock}
cluster: {gpus_per_node: 4}
mode: agg
agg: {servers: [1, 2], tp: 4, batch: [8, 16], engine_args: {speedup: 20}}
workload: {isl: 32, osl: 8, concurrency: [1, 4], requests: 8, warmup: 2}
";

const DEFAULT_PORTS_DISAGG: &str = "\
name: e2e-ports-disagg
model: {path: /models/tiny, served_name: tiny}
engine: {kind: mock}
cluster: {gpus_per_node: 4}
mode: disagg
ctx: {servers: [1, 2], tp: 4, batch: 8, engine_args: {speedup: 20}}
gen: {servers: 1, tp: 4, batch: [8, 16], engine_args: {speedup: 20}}
workload: {isl: 32, osl: 8, concurrency: [1, 4], requests: 8, warmup: 2}
";

#[test]
fn two_sweeps_submitted_at_once_with_default_ports_complete_every_point() {
    let agg = new_sweep("ports-agg", DEFAULT_PORTS_AGG);
    let disagg = new_sweep("ports-disagg", DEFAULT_PORTS_DISAGG);
    let submit = |s: &Sweep| {
        Command::new(env!("CARGO_BIN_EXE_sweep"))
            .args(["submit", "spec.yaml", "-o", "sweep"])
            .current_dir(&s.dir)
            .output()
            .expect("runs")
    };
    let (a, b) = std::thread::scope(|scope| {
        let a = scope.spawn(|| submit(&agg));
        let b = scope.spawn(|| submit(&disagg));
        (a.join().expect("agg"), b.join().expect("disagg"))
    });
    for (name, out) in [("agg", &a), ("disagg", &b)] {
        assert_eq!(out.status.code(), Some(0), "{name}: {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 4, "{name}: four jobs");
    }
    let mut moved = 0;
    for s in [&agg, &disagg] {
        let rows = wait_for(&s.dir, "sweep", Duration::from_secs(400), all_final);
        assert_eq!(point_states(&rows), ["done"; 8], "{rows:#?}");
        for job in std::fs::read_dir(s.dir.join("sweep/jobs")).expect("jobs").flatten() {
            let meta: serde_json::Value = serde_json::from_str(
                &std::fs::read_to_string(job.path().join("metadata.json")).expect("metadata"),
            )
            .expect("JSON");
            // Every server's own address is recorded; a moved one differs from its planned port.
            for server in meta["servers"].as_array().expect("servers") {
                let address = server["address"].as_str().expect("address");
                let port: u64 = address.rsplit(':').next().and_then(|p| p.parse().ok()).expect("port");
                moved += usize::from(Some(port) != server["port"].as_u64());
            }
        }
    }
    // How many moved depends on how SLURM overlapped the jobs (other tests share the nodes).
    eprintln!("{moved} servers listened elsewhere than planned");
}

/// Two local jobs whose one point takes seconds (a decode step of 100 ms, ten tokens, six
/// requests one at a time): time to be signalled while a point runs.
const SLOW: &str = "\
name: e2e-signals
model: {path: /models/tiny, served_name: tiny}
engine: {kind: mock}
cluster: {gpus_per_node: 4, base_port: 18700, frontend_port: 18799}
mode: agg
agg: {tp: [1, 2], batch: 8, engine_args: {decode_base_ms: 100}}
workload: {isl: 32, osl: 10, concurrency: 1, requests: 6, warmup: 0}
";

/// A `sweep submit --executor local` started in the background, as a terminal, `timeout` or a
/// CI runner would start it.
struct Submit {
    child: std::process::Child,
    folder: PathBuf,
}

impl Submit {
    fn start(s: &Sweep, folder: &str, extra: &[&str]) -> Self {
        let child = Command::new(env!("CARGO_BIN_EXE_sweep"))
            .args([&["submit", "spec.yaml", "-o", folder, "--executor", "local"], extra].concat())
            .current_dir(&s.dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(s.dir.join(format!("{folder}.stderr"))).expect("log"))
            .spawn()
            .expect("starts");
        Submit { child, folder: s.dir.join(folder) }
    }

    /// Waits until a point of the first job is being measured.
    fn wait_for_a_running_point(&self) {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let running = std::fs::read_dir(self.folder.join("jobs"))
                .into_iter()
                .flatten()
                .flatten()
                .flat_map(|job| std::fs::read_dir(job.path().join("points")).into_iter().flatten().flatten())
                .any(|point| {
                    std::fs::read_to_string(point.path().join("status.json")).is_ok_and(|t| {
                        t.contains("\"state\":\"running\"") || t.contains("\"state\": \"running\"")
                    })
                });
            if running {
                return;
            }
            assert!(Instant::now() < deadline, "no point started: {}", self.stderr());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill").args([&format!("-{name}"), &self.child.id().to_string()]).status();
        assert!(status.is_ok_and(|s| s.success()), "kill -{name}");
    }

    /// Its exit code and how long it took to exit, within `limit`.
    fn wait(&mut self, limit: Duration) -> (Option<i32>, Duration) {
        let began = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("waits") {
                return (status.code(), began.elapsed());
            }
            if began.elapsed() > limit {
                let _ = self.child.kill();
                panic!("still running after {limit:?}: {}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stderr(&self) -> String {
        let name = format!("{}.stderr", self.folder.file_name().expect("name").to_string_lossy());
        std::fs::read_to_string(self.folder.with_file_name(name)).unwrap_or_default()
    }

    /// Processes whose command line names the folder (the job's runners and engines), after
    /// waiting up to `limit` for them to go.
    fn processes_left(&self, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let out = Command::new("pgrep")
                .args(["-af", &self.folder.display().to_string()])
                .output()
                .expect("pgrep");
            let left = String::from_utf8_lossy(&out.stdout).into_owned();
            if left.trim().is_empty() || Instant::now() > deadline {
                return left;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Whether the folder's submit lock is free (`flock` takes it at once, then lets go).
    fn lock_is_free(&self) -> bool {
        let lock = self.folder.join(".submit.lock");
        !lock.exists()
            || Command::new("flock")
                .args(["-n", &lock.display().to_string(), "true"])
                .status()
                .is_ok_and(|s| s.success())
    }

    fn points(&self) -> Vec<serde_json::Value> {
        let dir = self.folder.parent().expect("parent");
        let folder = self.folder.file_name().expect("name").to_string_lossy().into_owned();
        status(dir, &folder)
            .iter()
            .flat_map(|r| r["points"].as_array().cloned().unwrap_or_default())
            .collect()
    }
}

/// SIGTERM or SIGINT to `sweep submit` alone (not its process group, as `kill`, `timeout` and
/// CI runners send them): the running job stops within seconds, its point is cancelled with the
/// reason, the lock is let go, the exit code says which signal, and `--resume` runs exactly what
/// was left.
#[test]
fn a_signal_to_submit_alone_stops_its_job_and_resume_runs_exactly_what_is_left() {
    let s = new_sweep("signals", SLOW);
    for (signal, code) in [("TERM", 143), ("INT", 130)] {
        let folder = format!("sweep-{signal}");
        let mut submit = Submit::start(&s, &folder, &[]);
        submit.wait_for_a_running_point();
        submit.signal(signal);
        let (exit, took) = submit.wait(Duration::from_secs(60));
        let stderr = submit.stderr();
        assert_eq!(exit, Some(code), "SIG{signal}: {stderr}");
        assert!(took < Duration::from_secs(15), "SIG{signal}: stopped in {took:?}: {stderr}");
        assert!(stderr.contains("--resume"), "{stderr}");
        assert_eq!(
            submit.processes_left(Duration::from_secs(10)),
            "",
            "SIG{signal}: nothing of the job is left"
        );
        assert!(submit.lock_is_free(), "SIG{signal}: the lock is let go");
        let points = submit.points();
        let states: Vec<&str> = points.iter().map(|p| p["state"].as_str().unwrap_or("?")).collect();
        // The first job's point was cut short; the second job never started.
        assert_eq!(states, ["cancelled", "not run"], "SIG{signal}: {points:#?}");
        let reason = points[0]["reason"].as_str().unwrap_or_default();
        assert!(reason.contains(&format!("SIG{signal}")), "SIG{signal}: {reason}");
    }
    let (code, _, stderr) =
        sweep(&["submit", "spec.yaml", "-o", "sweep-TERM", "--executor", "local", "--resume"], &s.dir);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("0 points already complete, 0 queued or running, 2 to run"), "{stderr}");
    // The interrupted run's folders stay as they were; the resume's new ones hold the results.
    assert_eq!(point_states(&status(&s.dir, "sweep-TERM")), ["cancelled", "not run", "done", "done"]);
}

/// A second Ctrl-C exits at once; SIGKILL (or the OOM killer) leaves no lock, and the job dies
/// with its `sweep submit`.
#[test]
fn a_second_interrupt_exits_at_once_and_a_killed_submit_leaves_neither_lock_nor_job() {
    let s = new_sweep("signals-hard", SLOW);
    let mut submit = Submit::start(&s, "twice", &[]);
    submit.wait_for_a_running_point();
    submit.signal("INT");
    std::thread::sleep(Duration::from_millis(100));
    submit.signal("INT");
    let (exit, took) = submit.wait(Duration::from_secs(30));
    assert_eq!(exit, Some(130), "{}", submit.stderr());
    assert!(took < Duration::from_secs(2), "at once: {took:?}");
    assert!(submit.lock_is_free());
    // The first Ctrl-C already told the job to stop.
    assert_eq!(submit.processes_left(Duration::from_secs(60)), "");

    let mut submit = Submit::start(&s, "killed", &[]);
    submit.wait_for_a_running_point();
    submit.signal("KILL");
    assert_eq!(submit.wait(Duration::from_secs(10)).0, None, "killed by a signal");
    assert!(submit.lock_is_free(), "the lock went with its process");
    assert_eq!(submit.processes_left(Duration::from_secs(60)), "", "the guard ended the job");
    let points = submit.points();
    assert_eq!(points[0]["state"], "cancelled", "{points:#?}");
}

/// A server that crashes mid-stream (the mock engine exits after 14 requests, at concurrency 8)
/// fails its point at once with the server's reason, and the next point is not sent to a dead
/// port. Before, a request whose stream the crash cut could wait out its whole timeout (600 s):
/// the close came with its last bytes, one edge for both. Run 20 times in a row to check.
#[test]
fn a_server_that_crashes_mid_stream_fails_its_point_in_seconds() {
    const CRASH: &str = "\
name: e2e-crash
model: {path: /models/tiny, served_name: tiny}
engine: {kind: mock}
cluster: {gpus_per_node: 4, base_port: 18800, frontend_port: 18899}
mode: agg
agg: {tp: 1, batch: 8, engine_args: {speedup: 20, fault_crash_after: 14}}
workload: {isl: 32, osl: 64, concurrency: [8, 4], requests: 32, warmup: 0}
";
    let s = new_sweep("crash", CRASH);
    let began = Instant::now();
    let (code, _, stderr) = sweep(&["submit", "spec.yaml", "-o", "sweep", "--executor", "local"], &s.dir);
    let took = began.elapsed();
    assert_eq!(code, 10, "{stderr}");
    assert!(took < Duration::from_secs(30), "the sweep took {took:?}: {stderr}");
    let rows = status(&s.dir, "sweep");
    let points: Vec<serde_json::Value> =
        rows.iter().flat_map(|r| r["points"].as_array().cloned().unwrap_or_default()).collect();
    assert_eq!(point_states(&rows), ["failed", "failed"], "{points:#?}");
    let reasons: Vec<&str> = points.iter().map(|p| p["reason"].as_str().unwrap_or_default()).collect();
    assert!(reasons[0].starts_with("server agg_0 ended (exited)"), "{reasons:?}");
    assert!(reasons[1].starts_with("not run: server agg_0 ended"), "{reasons:?}");
}

/// SIGTERM to a `sweep submit --in-allocation` alone (its allocation's batch step, which `exec`s
/// it): the running job's steps are stopped, its point cancelled with the reason, the job not
/// started marked so, the lock let go, and a resume inside a new allocation runs exactly the
/// points without a result.
#[test]
fn a_signal_to_submit_in_an_allocation_stops_its_steps_and_resume_runs_what_is_left() {
    let s = new_sweep("allocation-signal", &SLOW.replace("18700", "18900").replace("18799", "18999"));
    let script = s.dir.join("allocation.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/bash\ncd {}\nexec {} submit spec.yaml -o sweep --in-allocation\n",
            s.dir.display(),
            env!("CARGO_BIN_EXE_sweep")
        ),
    )
    .expect("script");
    let out = s.dir.join("allocation.out");
    let submitted = Command::new("sbatch")
        .args(["--parsable", "--nodes=1", "--time=10", "--job-name=sweep-e2e-allocation-signal"])
        .arg(format!("--output={}", out.display()))
        .arg(&script)
        .output()
        .expect("sbatch runs");
    assert!(submitted.status.success(), "{}", String::from_utf8_lossy(&submitted.stderr));
    let id = String::from_utf8_lossy(&submitted.stdout).trim().to_owned();
    let submit = Submit {
        child: Command::new("true").spawn().expect("a stand-in child"),
        folder: s.dir.join("sweep"),
    };
    submit.wait_for_a_running_point();
    let signalled_at = Instant::now();
    let signalled =
        Command::new("scancel").args(["--batch", "--signal=TERM", &id]).status().expect("scancel runs");
    assert!(signalled.success());
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let queue = Command::new("squeue").args(["-h", "-j", &id]).output().expect("squeue");
        if String::from_utf8_lossy(&queue.stdout).trim().is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the allocation did not end: {}",
            std::fs::read_to_string(&out).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let took = signalled_at.elapsed();
    let log = std::fs::read_to_string(&out).unwrap_or_default();
    assert!(took < Duration::from_secs(20), "the allocation ended {took:?} after the signal: {log}");
    assert!(log.contains("SIGTERM: stopping 1 running jobs"), "{log}");
    assert!(log.contains("SIGTERM stopped the sweep"), "{log}");
    assert_eq!(submit.processes_left(Duration::from_secs(30)), "", "nothing of the jobs is left");
    assert!(submit.lock_is_free());
    let states: Vec<String> = point_states(&status(&s.dir, "sweep"));
    assert_eq!(states, ["cancelled", "not run"], "{log}");
    let (code, log) = sweep_in_allocation(&s.dir, 1, "submit spec.yaml -o sweep --resume --in-allocation");
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("0 points already complete, 0 queued or running, 2 to run"), "{log}");
    assert_eq!(point_states(&status(&s.dir, "sweep")), ["cancelled", "not run", "done", "done"]);
}

/// An engine argument as an axis (`{sweep: [...]}`), with an environment variable as another:
/// a job per value, each named by it, each engine started with it, and the measured ITL follows
/// the simulated engine's time model (one decode step of `decode_base_ms` per token at
/// concurrency 1). The knob is a column of the table and is recorded in each job's metadata.
#[test]
fn an_engine_argument_axis_changes_the_engine_and_its_itl_follows_the_time_model() {
    let s = new_sweep(
        "knobs",
        "\
name: e2e-knobs
model: {path: /models/tiny, served_name: tiny}
engine: {kind: mock}
cluster: {gpus_per_node: 4, base_port: 24700, frontend_port: 24799}
mode: agg
agg:
  tp: 1
  batch: 8
  engine_args: {decode_base_ms: {sweep: [2, 12]}, decode_per_seq_us: 0, prefill_base_ms: {expr: 'batch'}}
  env: {SWEEP_E2E_PROBE: {sweep: ['x y']}}
workload: {isl: 64, osl: 24, concurrency: 1, requests: 6, warmup: 1}
",
    );
    let (code, _, stderr) = sweep(&["submit", "spec.yaml", "-o", "sweep", "--executor", "local"], &s.dir);
    assert_eq!(code, 0, "{stderr}");
    let (code, _, stderr) = sweep(&["aggregate", "sweep"], &s.dir);
    assert_eq!(code, 0, "{stderr}");
    let rows = common::csv_rows(&s.dir.join("sweep/report/results.csv"));
    assert_eq!(rows.len(), 2, "{rows:#?}");
    let mut itl = BTreeMap::new();
    for row in &rows {
        let value: u64 = row["agg.engine_args.decode_base_ms"].parse().expect("the knob's column");
        assert!(row["job"].ends_with(&format!("_decode_base_ms-{value}")), "{}", row["job"]);
        assert_eq!(row["state"], "done");
        itl.insert(value, row["itl_p50_ms"].parse::<f64>().expect("an ITL"));
        let job = s.dir.join("sweep/jobs").join(&row["job"]);
        // The engine was started with its value, the derived one and the environment, quoted.
        let script = std::fs::read_to_string(job.join("job.local.sh")).expect("the job's script");
        assert!(
            script.contains(&format!("--decode-base-ms {value} --decode-per-seq-us 0 --prefill-base-ms 8")),
            "{script}"
        );
        assert!(script.contains("env SWEEP_E2E_PROBE='x y' "), "{script}");
        let metadata: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(job.join("metadata.json")).expect("metadata"))
                .expect("json");
        assert_eq!(metadata["knobs"]["agg.engine_args.decode_base_ms"], value);
        assert_eq!(metadata["roles"][0]["engine_args"]["decode_base_ms"], value);
        assert_eq!(metadata["roles"][0]["env"]["SWEEP_E2E_PROBE"], "x y");
        let provenance: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(job.join("provenance.json")).expect("provenance"))
                .expect("json");
        assert_eq!(provenance["env"]["agg.SWEEP_E2E_PROBE"], "x y", "{provenance:#}");
    }
    eprintln!("ITL p50 by decode_base_ms: {itl:?}");
    // The engine's own clock paces each token; the client adds a little on a busy machine.
    for (value, ms) in &itl {
        let model = *value as f64;
        assert!(*ms >= model * 0.9 && *ms <= model + 4.0, "decode_base_ms {value}: ITL p50 {ms} ms");
    }
}

/// `workload.repeats: 3`: each point measured three times on its deployment, interleaved (the
/// job runs c1 c4 c1 c4 c1 c4), each repetition a folder of its own with its exports; the table
/// gives the first row of each point its repetitions' mean, spread and 95 % interval, and the
/// frontier stands at the means.
#[test]
fn repeats_are_interleaved_kept_apart_and_summarised_with_their_spread() {
    let s = new_sweep(
        "repeats",
        "\
name: e2e-repeats
model: {path: /models/tiny, served_name: tiny}
engine: {kind: mock}
cluster: {gpus_per_node: 4, base_port: 24800, frontend_port: 24899}
mode: agg
agg: {tp: 1, batch: 8, engine_args: {decode_base_ms: 2, speedup: 2}}
workload: {isl: 64, osl: 16, concurrency: [1, 4], requests: 8, warmup: 1, repeats: 3}
",
    );
    let (code, _, stderr) = sweep(&["submit", "spec.yaml", "-o", "sweep", "--executor", "local"], &s.dir);
    assert_eq!(code, 0, "{stderr}");
    // The order they ran in: by each point's start.
    let job =
        std::fs::read_dir(s.dir.join("sweep/jobs")).expect("jobs").flatten().next().expect("a job").path();
    let mut ran: Vec<(f64, u64, u64)> = Vec::new();
    for point in std::fs::read_dir(job.join("points")).expect("points").flatten() {
        let read = |name: &str| -> serde_json::Value {
            serde_json::from_str(&std::fs::read_to_string(point.path().join(name)).expect(name))
                .expect("json")
        };
        let (planned, status) = (read("point.json"), read("status.json"));
        assert_eq!(status["state"], "done", "{status:#}");
        assert!(
            point.path().join("profile_export_aiperf.json").is_file(),
            "each repetition keeps its exports"
        );
        ran.push((
            status["started_at"].as_f64().expect("started"),
            planned["concurrency"].as_u64().expect("concurrency"),
            planned["repeat"].as_u64().unwrap_or(0),
        ));
    }
    ran.sort_by(|a, b| a.0.total_cmp(&b.0));
    let order: Vec<(u64, u64)> = ran.iter().map(|r| (r.1, r.2)).collect();
    assert_eq!(order, [(1, 0), (4, 0), (1, 1), (4, 1), (1, 2), (4, 2)]);

    let (code, _, stderr) = sweep(&["aggregate", "sweep"], &s.dir);
    assert_eq!(code, 0, "{stderr}");
    let rows = common::csv_rows(&s.dir.join("sweep/report/results.csv"));
    assert_eq!(rows.len(), 6, "every repetition is a row");
    let speaking: Vec<_> = rows.iter().filter(|r| r["repeats"] == "3").collect();
    assert_eq!(speaking.len(), 2, "one row per point carries the spread: {rows:#?}");
    for row in &speaking {
        assert_eq!(row["repeat"], "0");
        let of = |c: &str| -> f64 { row[c].parse().unwrap_or_else(|_| panic!("{c}: {row:#?}")) };
        let mean = of("output_token_throughput_mean");
        let same: Vec<f64> = rows
            .iter()
            .filter(|r| r["concurrency"] == row["concurrency"])
            .map(|r| r["output_token_throughput"].parse().expect("figure"))
            .collect();
        assert_eq!(same.len(), 3);
        assert!((mean - same.iter().sum::<f64>() / 3.0).abs() < 1e-6 * mean, "{mean} against {same:?}");
        assert!(of("output_token_throughput_ci95") >= 0.0 && of("output_token_throughput_cv") >= 0.0);
        assert!(["true", "false"].contains(&row["unstable"].as_str()));
    }
    // Only the rows that speak for a point stand on a frontier.
    assert!(rows.iter().filter(|r| r["on_frontier"] == "true").all(|r| r["repeats"] == "3"), "{rows:#?}");
}

/// `sweep explore` on the local executor: a budget below the cheapest job is refused before
/// anything is written; an exploration stopped by SIGTERM between waves resumes from
/// `explore.json` without measuring any job twice; the folder is a normal sweep folder
/// (`status`, `report`); a folder that is not an exploration is refused; `--replay` reads it.
#[test]
fn explore_chooses_waves_within_its_budget_and_resumes_after_a_kill() {
    let spec = "name: explore\nmodel: {path: /models/tiny, served_name: tiny}\nengine: {kind: mock}\n\
                cluster: {gpus_per_node: 8, base_port: 19600, frontend_port: 19699}\nmode: agg\n\
                agg: {tp: [1, 2, 4], batch: [4, 32], engine_args: {speedup: 4}}\n\
                workload: {isl: 64, osl: 16, concurrency: [1, 8, 32], requests: \"2x\", warmup: 1}\n";
    let s = new_sweep("explore", spec);
    let dir = &s.dir;

    let (code, _, stderr) = sweep(
        &["explore", "spec.yaml", "-o", "tiny", "--budget-gpu-hours", "0.0001", "--executor", "local"],
        dir,
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("below the cheapest job's predicted cost: agg1_tep1_batch"), "{stderr}");
    assert!(!dir.join("tiny").exists(), "nothing written");

    // Stopped once its second wave is chosen (its first wave measured).
    let args = [
        "explore",
        "spec.yaml",
        "-o",
        "sweep",
        "--budget-share",
        "0.7",
        "--wave",
        "1",
        "--executor",
        "local",
    ];
    let mut child = Command::new(env!("CARGO_BIN_EXE_sweep"))
        .args(args)
        .current_dir(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("explore starts");
    let log = dir.join("sweep/explore.json");
    let waves = |log: &Path| -> Vec<serde_json::Value> {
        std::fs::read_to_string(log)
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v["waves"].as_array().cloned())
            .unwrap_or_default()
    };
    let started = Instant::now();
    while waves(&log).len() < 2 {
        assert!(started.elapsed() < Duration::from_secs(120), "no second wave");
        if let Some(status) = child.try_wait().expect("poll") {
            panic!("explore ended before its second wave: {status}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let ended = child.wait().expect("explore stops");
    assert!(!ended.success(), "stopped by SIGTERM: {ended}");
    let before = waves(&log);

    let (code, stdout, stderr) = sweep(&args, dir);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("resuming"), "{stderr}");
    let after = waves(&log);
    assert!(after.len() > before.len(), "the resume adds waves");
    assert_eq!(after[..before.len() - 1], before[..before.len() - 1], "earlier waves are kept as they were");
    // Each chosen job with the loads it measures. A load is chosen again only when its first
    // run was cancelled by the kill (it measured nothing): then in a job folder of its own.
    let mut chosen: Vec<(String, String)> = Vec::new();
    let mut partial = 0;
    for wave in &after {
        for d in wave["decisions"].as_array().expect("decisions") {
            if d["choice"] == "chosen" {
                let job = d["job"].as_str().expect("job").to_owned();
                let measure = d["measure"].as_array().expect("measure");
                assert!(!measure.is_empty(), "{d:#}");
                if measure.len() < d["loads"].as_array().expect("loads").len() {
                    partial += 1;
                }
                chosen.extend(measure.iter().map(|l| (job.clone(), l.to_string())));
            }
        }
    }
    let unique: BTreeSet<&String> = chosen.iter().map(|(job, _)| job).collect();
    let rows = status(dir, "sweep");
    let cancelled_first = |job: &str| {
        rows.iter().any(|r| {
            r["job"] == job
                && r["points"].as_array().is_some_and(|p| p.iter().any(|p| p["state"] == "cancelled"))
        })
    };
    let mut seen = BTreeSet::new();
    for (job, load) in &chosen {
        if !seen.insert((job, load)) {
            assert!(cancelled_first(job), "{job} at {load} chosen twice though not cancelled: {rows:#?}");
            assert!(dir.join(format!("sweep/jobs/{job}.2")).is_dir(), "rerun in a folder of its own");
        }
    }
    let last = after.last().expect("a last wave");
    assert!(last["stop"].is_string(), "it says why it stopped: {last:#}");
    assert!(unique.len() < 6, "not the whole grid: {unique:?}");
    assert!(stdout.contains("WAVE"), "{stdout}");
    for d in last["decisions"].as_array().expect("decisions") {
        assert!(d["why"].as_str().is_some_and(|w| !w.is_empty()), "every skip says why: {d:#}");
    }
    // No point measured twice, and every load chosen is measured (or says why not).
    let done: Vec<String> = rows
        .iter()
        .flat_map(|job| job["points"].as_array().cloned().unwrap_or_default())
        .filter(|p| p["state"] == "done")
        .map(|p| p["id"].as_str().unwrap_or_default().to_owned())
        .collect();
    let distinct: BTreeSet<&String> = done.iter().collect();
    assert_eq!(distinct.len(), done.len(), "a point measured twice: {rows:#?}");
    assert!(
        done.len() >= seen.len().saturating_sub(3),
        "{} points for {} loads: {rows:#?}",
        done.len(),
        seen.len()
    );
    // The loads a chosen job does not measure are marked skipped in its folder, with why, and
    // its runner left them alone.
    let skipped: Vec<&serde_json::Value> = rows
        .iter()
        .flat_map(|job| job["points"].as_array().map(|p| p.iter().collect::<Vec<_>>()).unwrap_or_default())
        .filter(|p| p["state"] == "skipped")
        .collect();
    if partial > 0 {
        assert!(!skipped.is_empty(), "{rows:#?}");
    }
    for p in &skipped {
        assert!(p["reason"].as_str().is_some_and(|r| r.contains("lies under the frontier")), "{p:#}");
    }
    let spent = last["spent"].as_f64().expect("spent");
    assert!(spent <= last["budget"].as_f64().expect("budget") * 1.5, "{last:#}");

    // The report shows the frontier's growth and every job not measured, with its reason.
    let (code, _, stderr) = sweep(&["report", "sweep"], dir);
    assert_eq!(code, 0, "{stderr}");
    assert!(dir.join("sweep/report/plots/explore_growth.svg").is_file());
    let html = std::fs::read_to_string(dir.join("sweep/report/report.html")).expect("report");
    assert!(html.contains("id=\"exploration\""), "an exploration section");
    let skipped: Vec<&str> =
        last["decisions"].as_array().expect("decisions").iter().filter_map(|d| d["job"].as_str()).collect();
    assert!(!skipped.is_empty());
    for job in &skipped {
        assert!(html.contains(job), "{job} is listed as skipped");
    }
    assert!(html.contains(last["stop"].as_str().expect("stop")), "the report says why it stopped");
    let (code, stdout, stderr) = sweep(
        &[
            "explore",
            "spec.yaml",
            "-o",
            "x",
            "--replay",
            "sweep",
            "--strategy",
            "random",
            "--budget-share",
            "0.5",
        ],
        dir,
    );
    assert_eq!(code, 0, "{stderr}");
    let run: serde_json::Value = serde_json::from_str(&stdout).expect("replay json");
    assert!(
        run["spent"].as_f64().expect("spent") <= run["budget"].as_f64().expect("budget") + 1e-12,
        "{run:#}"
    );
    assert!(!dir.join("x").exists(), "a replay writes no folder");

    // A spec changed since the exploration began is refused, the folder untouched.
    let changed = spec.replace("tp: [1, 2, 4]", "tp: [1, 2, 8]");
    std::fs::write(dir.join("changed.yaml"), changed).expect("spec");
    let before = std::fs::read_to_string(&log).expect("log");
    let (code, _, stderr) = sweep(&["explore", "changed.yaml", "-o", "sweep", "--budget-share", "0.7"], dir);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("changed since this exploration began"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&log).expect("log"), before);

    let (code, _, stderr) = sweep(&["submit", "spec.yaml", "-o", "plain", "--executor", "local"], dir);
    assert_eq!(code, 0, "{stderr}");
    let (code, _, stderr) = sweep(&["explore", "spec.yaml", "-o", "plain", "--budget-share", "0.5"], dir);
    assert_eq!(code, 6, "{stderr}");
    assert!(stderr.contains("holds no explore.json"), "{stderr}");
}

/// An exploration's `explore.json`, and every decision its waves chose, in order.
fn explore_log(path: &Path) -> (serde_json::Value, Vec<serde_json::Value>) {
    let log: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("explore.json")).expect("JSON");
    let chosen = log["waves"]
        .as_array()
        .expect("waves")
        .iter()
        .flat_map(|w| w["decisions"].as_array().cloned().unwrap_or_default())
        .filter(|d| d["choice"] == "chosen")
        .collect();
    (log, chosen)
}

/// `sweep explore` on the development SLURM cluster: each wave's jobs are submitted in
/// `--max-in-queue` dependency chains and waited for before the next wave is chosen; a job
/// never chosen stays rendered, unsubmitted; the folder's status reads like any sweep's. Its
/// first wave is a census (every job at its lowest load), so a later wave's other loads of a
/// job run as a job folder of their own.
#[test]
fn explore_runs_its_waves_on_slurm_under_max_in_queue() {
    let spec = "name: explore-slurm\nmodel: {path: /models/tiny, served_name: tiny}\nengine: {kind: mock}\n\
                cluster: {gpus_per_node: 4, base_port: 19640, frontend_port: 19689}\nmode: agg\n\
                agg: {tp: [1, 2, 4], batch: [4, 32], engine_args: {speedup: 8}}\n\
                workload: {isl: 64, osl: 16, concurrency: [1, 8], requests: \"2x\", warmup: 1}\n";
    let s = new_sweep("explore-slurm", spec);
    let dir = &s.dir;
    let (code, stdout, stderr) = sweep(
        &[
            "explore",
            "spec.yaml",
            "-o",
            "slurm",
            "--budget-share",
            "1",
            "--wave",
            "2",
            "--max-in-queue",
            "1",
            "--first-wave",
            "census",
            "--executor",
            "slurm",
        ],
        dir,
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("WAVE"), "{stdout}");
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("slurm/manifest.json")).expect("manifest"))
            .expect("json");
    assert_eq!(manifest["executor"], "slurm");
    let jobs = manifest["jobs"].as_array().expect("jobs");
    let submitted: Vec<&serde_json::Value> = jobs.iter().filter(|j| j["slurm_job_id"].is_string()).collect();
    assert!(submitted.len() >= 2, "{jobs:#?}");
    for job in jobs {
        if job["slurm_job_id"].is_null() {
            assert_eq!(job["state"], "rendered", "{job:#}");
        } else {
            // The runner's marker says how a SLURM job ended.
            let marker =
                dir.join("slurm").join(job["dir"].as_str().expect("dir")).join("status/benchmark.json");
            let marker: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(marker).expect("a marker")).expect("json");
            assert_eq!(marker["state"], "done", "{job:#} {marker:#}");
        }
    }
    // One chain: the jobs of a wave ran one after another.
    let mut spans: Vec<(f64, f64)> = submitted
        .iter()
        .filter_map(|j| {
            let text = std::fs::read_to_string(
                dir.join("slurm").join(j["dir"].as_str()?).join("status/benchmark.json"),
            )
            .ok()?;
            let b: serde_json::Value = serde_json::from_str(&text).ok()?;
            Some((b["started_at"].as_f64()?, b["ended_at"].as_f64()?))
        })
        .collect();
    spans.sort_by(|a, b| a.0.total_cmp(&b.0));
    assert_eq!(spans.len(), submitted.len());
    assert!(spans.windows(2).all(|w| w[1].0 >= w[0].1 - 0.5), "at most one at once: {spans:?}");
    let (log, chosen) = explore_log(&dir.join("slurm/explore.json"));
    assert_eq!(chosen.len(), submitted.len(), "every choice was submitted once: {log:#}");
    let rows = status(dir, "slurm");
    assert_eq!(rows.len(), jobs.len());
    // The census measured each job it took at load 1 alone; a job chosen again ran its other
    // load in a folder of its own, and no point ran twice.
    let first = &log["waves"][0]["decisions"];
    for d in first.as_array().expect("decisions").iter().filter(|d| d["choice"] == "chosen") {
        assert_eq!(d["measure"], serde_json::json!([1.0]), "{d:#}");
    }
    let done: Vec<&str> = rows
        .iter()
        .flat_map(|r| r["points"].as_array().map(|p| p.iter().collect::<Vec<_>>()).unwrap_or_default())
        .filter(|p| p["state"] == "done")
        .filter_map(|p| p["id"].as_str())
        .collect();
    let distinct: BTreeSet<&&str> = done.iter().collect();
    assert_eq!(distinct.len(), done.len(), "{rows:#?}");
    let again = jobs.iter().filter(|j| j["attempt"].as_u64().is_some_and(|a| a > 1)).count();
    assert!(
        again > 0,
        "a budget of the whole grid's cost measures more loads of the census's jobs: {jobs:#?}"
    );
}

/// `sweep explore --in-allocation` as the batch step of a two-node allocation: each wave's
/// jobs run as steps of it (no job of their own in the queue), the jobs never chosen stay
/// rendered, and outside an allocation it is refused before anything is written.
#[test]
fn explore_runs_its_waves_inside_an_allocation() {
    let spec =
        "name: explore-allocation\nmodel: {path: /models/tiny, served_name: tiny}\nengine: {kind: mock}\n\
                cluster: {gpus_per_node: 4, base_port: 19720, frontend_port: 19769}\nmode: agg\n\
                agg: {tp: [1, 2, 4], batch: [4, 32], engine_args: {speedup: 8}}\n\
                workload: {isl: 64, osl: 16, concurrency: [1, 8], requests: \"2x\", warmup: 1}\n";
    let s = new_sweep("explore-allocation", spec);
    let (code, stderr) = sweep_outside_allocation(
        &s.dir,
        &["explore", "spec.yaml", "-o", "sweep", "--budget-share", "0.6", "--in-allocation"],
    );
    assert_eq!(code, Some(9), "{stderr}");
    assert!(!s.dir.join("sweep").exists(), "nothing written");

    let (code, log) = sweep_in_allocation(
        &s.dir,
        2,
        "explore spec.yaml -o sweep --budget-share 0.6 --wave 2 --in-allocation",
    );
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("inside allocation"), "{log}");
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(s.dir.join("sweep/manifest.json")).expect("manifest"))
            .expect("JSON");
    assert_eq!(manifest["executor"], "allocation");
    let jobs = manifest["jobs"].as_array().expect("jobs");
    let ran: Vec<&serde_json::Value> = jobs.iter().filter(|j| j["state"] != "rendered").collect();
    assert!(!ran.is_empty() && ran.len() < jobs.len(), "some jobs, not all: {jobs:#?}");
    let ids: BTreeSet<&str> = ran.iter().filter_map(|j| j["allocation"]["job_id"].as_str()).collect();
    assert_eq!(ids.len(), 1, "every job ran in the one allocation: {jobs:#?}");
    for job in &ran {
        assert_eq!(job["state"], "completed", "{job:#}");
        assert!(job["slurm_job_id"].is_null(), "a step, not a job of its own: {job:#}");
    }
    let (explore, chosen) = explore_log(&s.dir.join("sweep/explore.json"));
    assert_eq!(chosen.len(), ran.len(), "a folder run per choice: {explore:#}");
}

/// The simulated engine's speculative decoding, MTP 1 and 2 at an acceptance of 0.6, read back
/// from its `/metrics` per point: the acceptance rate the engine was given (MTP 1: 0.6; MTP 2:
/// (0.6 + 0.36) / 2 of the draft tokens) and the tokens per step (1.6 and 1.96), as table
/// columns, and the report's chart of tokens/s/user against acceptance per MTP depth.
#[test]
fn the_simulated_engines_mtp_acceptance_is_read_from_its_metrics_per_point() {
    let s = new_sweep(
        "mtp",
        "name: e2e-mtp\nmodel: {path: /models/tiny, served_name: tiny}\n\
         engine: {kind: mock, metrics: {interval_ms: 200}}\n\
         cluster: {gpus_per_node: 4, base_port: 25300, frontend_port: 25399}\nmode: agg\n\
         agg: {tp: 1, batch: 8, mtp: [1, 2], engine_args: {speedup: 5, mtp_acceptance: 0.6}}\n\
         workload: {isl: 64, osl: 64, concurrency: [4], requests: 32, warmup: 2}\n",
    );
    let (code, _, stderr) = sweep(&["submit", "spec.yaml", "-o", "sweep", "--executor", "local"], &s.dir);
    assert_eq!(code, 0, "{stderr}");
    let (code, _, stderr) = sweep(&["report", "sweep"], &s.dir);
    assert_eq!(code, 0, "{stderr}");
    let mut reader = common::csv_rows(&s.dir.join("sweep/report/results.csv"));
    reader.sort_by(|a, b| a["job"].cmp(&b["job"]));
    assert_eq!(reader.len(), 2, "{reader:#?}");
    for (row, (rate, per_step)) in reader.iter().zip([(0.6, 1.6), (0.48, 1.96)]) {
        let got: f64 = row["server_spec_acceptance_rate"].parse().expect("an acceptance rate");
        let steps: f64 = row["server_spec_tokens_per_step"].parse().expect("tokens per step");
        assert!((got - rate).abs() < 0.02, "{}: {got} against {rate}", row["job"]);
        assert!((steps - per_step).abs() < 0.03, "{}: {steps} against {per_step}", row["job"]);
    }
    let html = std::fs::read_to_string(s.dir.join("sweep/report/report.html")).expect("report");
    assert!(html.contains("id=\"speculative\""), "a speculative-decoding section");
    assert!(s.dir.join("sweep/report/plots/server_spec_acceptance.svg").is_file());
}

/// GPU telemetry through `sweep submit` with a stand-in `nvidia-smi` (two GPUs at a constant
/// 300 W, sampled every 100 ms): each point's `gpu_metrics.json` holds both GPUs and the energy
/// of its measured window (600 W × the window), `gpu_metrics.jsonl` every sample, and the table
/// the energy and the output tokens per joule; without `nvidia-smi`, every point is measured and
/// says why it has no telemetry; and a DCGM exporter (a stand-in, 3 GPUs at 200 W) read instead of
/// `nvidia-smi` prices the points the same way.
#[test]
fn gpu_telemetry_prices_each_point_in_joules_and_its_absence_is_a_note() {
    let spec = "name: e2e-gpu\nmodel: {path: /models/tiny, served_name: tiny}\n\
                engine: {kind: mock, metrics: {gpu_interval_ms: 100}}\n\
                cluster: {gpus_per_node: 4, base_port: 25400, frontend_port: 25499}\nmode: agg\n\
                agg: {tp: 2, batch: 8, engine_args: {speedup: 2}}\n\
                workload: {isl: 64, osl: 32, concurrency: [2, 8], requests: 24, warmup: 2}\n";
    let s = new_sweep("gpu", spec);
    let standin = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/bench/nvidia-smi-standin.sh");
    let run = |folder: &str, smi: &Path| {
        let output = Command::new(env!("CARGO_BIN_EXE_sweep"))
            .args(["submit", "spec.yaml", "-o", folder, "--executor", "local"])
            .current_dir(&s.dir)
            .env("SWEEP_NVIDIA_SMI", smi)
            .env("STANDIN_GPUS", "2")
            .env("STANDIN_WATTS", "300")
            .output()
            .expect("sweep runs");
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let (code, _, stderr) = sweep(&["aggregate", folder], &s.dir);
        assert_eq!(code, 0, "{stderr}");
        common::csv_rows(&s.dir.join(folder).join("report/results.csv"))
    };
    let rows = run("sweep", &standin);
    assert_eq!(rows.len(), 2, "{rows:#?}");
    for point in points_by_concurrency(&s.dir.join("sweep")).values() {
        let dir = sweep_folder::PointDir::new(point);
        let gpu = dir.read_gpu_metrics().expect("readable").expect("gpu_metrics.json");
        assert_eq!(gpu.gpus.len(), 2, "{gpu:#?}");
        assert!(gpu.notes.is_empty(), "{gpu:#?}");
        let seconds = gpu.window.1 - gpu.window.0;
        let energy = gpu.energy_j.expect("energy");
        assert!((energy - 600.0 * seconds).abs() <= 1e-6 * energy.max(1.0), "{energy} J over {seconds} s");
        assert_eq!(gpu.power_w, Some(600.0));
        let lines = std::fs::read_to_string(dir.gpu_samples_path()).expect("samples");
        assert!(lines.lines().count() >= 4, "{lines}");
    }
    for row in &rows {
        let energy: f64 = row["gpu_energy_j"].parse().expect("energy");
        let per_joule: f64 = row["output_tokens_per_joule"].parse().expect("tokens per joule");
        let tokens: f64 =
            row["osl_avg"].parse::<f64>().expect("osl") * row["request_count"].parse::<f64>().expect("n");
        assert!((per_joule - tokens / energy).abs() < 1e-9 * per_joule, "{row:#?}");
    }

    assert!(s.dir.join("sweep/report/plots/energy_frontier.svg").is_file(), "the energy frontier is drawn");
    let panels = std::fs::read_dir(s.dir.join("sweep/report/plots/gpus")).expect("a panel per point");
    let svgs = panels.flatten().filter(|e| e.file_name().to_string_lossy().ends_with(".svg")).count();
    assert_eq!(svgs, 2, "a power panel per point");
    let (code, _, stderr) = sweep(&["report", "sweep"], &s.dir);
    assert_eq!(code, 0, "{stderr}");
    let html = std::fs::read_to_string(s.dir.join("sweep/report/report.html")).expect("report");
    assert!(
        html.contains("id=\"gpus\"") && html.matches("class=\"gpu-panel\"").count() == 2,
        "the GPUs section"
    );

    let rows = run("without", Path::new("/nonexistent/nvidia-smi"));
    assert!(rows.iter().all(|r| r["state"] == "done" && r["gpu_energy_j"].is_empty()), "{rows:#?}");
    for point in points_by_concurrency(&s.dir.join("without")).values() {
        let gpu = sweep_folder::PointDir::new(point).read_gpu_metrics().expect("readable").expect("summary");
        assert!(gpu.notes.iter().any(|n| n.contains("no GPUs to sample")), "{gpu:#?}");
    }

    // A DCGM exporter instead (`engine.metrics.dcgm_url`): a stand-in serving dcgm-exporter's
    // series for 3 GPUs at 200 W, read every 100 ms; `nvidia-smi` is not run at all.
    let exporter = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/bench/dcgm-exporter-standin.py");
    let mut child = Command::new("python3")
        .arg(&exporter)
        .arg("0")
        .env("STANDIN_GPUS", "3")
        .env("STANDIN_WATTS", "200")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("the stand-in exporter starts");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().expect("stdout")),
        &mut line,
    )
    .expect("it prints its port");
    let port = line.trim().strip_prefix("port ").expect("`port N`").to_owned();
    let dcgm = spec.replace(
        "metrics: {gpu_interval_ms: 100}",
        &format!("metrics: {{gpu_interval_ms: 100, dcgm_url: \"http://127.0.0.1:{port}/metrics\"}}"),
    );
    std::fs::write(s.dir.join("spec.yaml"), dcgm).expect("spec");
    let rows = run("dcgm", Path::new("/nonexistent/nvidia-smi"));
    let _ = child.kill();
    let _ = child.wait();
    assert!(rows.iter().all(|r| r["state"] == "done"), "{rows:#?}");
    for point in points_by_concurrency(&s.dir.join("dcgm")).values() {
        let gpu = sweep_folder::PointDir::new(point).read_gpu_metrics().expect("readable").expect("summary");
        assert_eq!(gpu.gpus.len(), 3, "{gpu:#?}");
        assert!(gpu.notes.is_empty(), "{gpu:#?}");
        assert_eq!(gpu.power_w, Some(600.0));
        let seconds = gpu.window.1 - gpu.window.0;
        let energy = gpu.energy_j.expect("energy");
        assert!((energy - 600.0 * seconds).abs() <= 1e-6 * energy.max(1.0), "{energy} J over {seconds} s");
    }
}

/// On the development SLURM cluster, a disaggregated job over two nodes (a GPU each): the
/// benchmark step samples its own node's GPUs and the other node's through `srun --overlap`, so
/// each point's telemetry holds both nodes.
#[test]
fn gpu_telemetry_samples_every_node_of_a_slurm_job() {
    let spec = "name: e2e-gpu-nodes\nmodel: {path: /models/tiny, served_name: tiny}\n\
                engine: {kind: mock, metrics: {gpu_interval_ms: 200}}\n\
                cluster: {gpus_per_node: 1, base_port: 25500, frontend_port: 25599}\nmode: disagg\n\
                ctx: {servers: 1, tp: 1, batch: 8, engine_args: {speedup: 5}}\n\
                gen: {servers: 1, tp: 1, batch: 8, engine_args: {speedup: 5}}\n\
                workload: {isl: 64, osl: 32, concurrency: [4], requests: 24, warmup: 2}\n";
    let s = new_sweep("gpu-nodes", spec);
    let standin = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/bench/nvidia-smi-standin.sh");
    let output = Command::new(env!("CARGO_BIN_EXE_sweep"))
        .args(["submit", "spec.yaml", "-o", "sweep", "--executor", "slurm"])
        .current_dir(&s.dir)
        .env("SWEEP_NVIDIA_SMI", &standin)
        .env("STANDIN_GPUS", "1")
        .output()
        .expect("sweep runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let (code, _, stderr) = sweep(&["wait", "sweep", "--timeout", "300"], &s.dir);
    assert_eq!(code, 0, "{stderr}");
    let points = points_by_concurrency(&s.dir.join("sweep"));
    assert_eq!(points.len(), 1);
    for point in points.values() {
        let gpu = sweep_folder::PointDir::new(point).read_gpu_metrics().expect("readable").expect("summary");
        let hosts: BTreeSet<&str> = gpu.gpus.iter().map(|g| g.host.as_str()).collect();
        assert_eq!(hosts.len(), 2, "both nodes sampled: {gpu:#?}");
        assert!(gpu.gpus.iter().all(|g| g.samples > 0 && g.energy_j.is_some()), "{gpu:#?}");
        assert!(gpu.notes.is_empty(), "{gpu:#?}");
    }
}

/// The accuracy step through `sweep submit`, aggregated and disaggregated, with the simulated
/// engine answering the built-in arithmetic questions (`SWEEP_MOCK_ANSWERS`, which reaches the
/// disaggregated router through `engine.env`) and, as an axis, answering half of them wrong:
/// the honest deployments score 1.0 over the 40 questions asked; the corrupted ones score what
/// their answers file says, are flagged `inaccurate` against `min_score`, and stand on no
/// frontier, while their points keep their measurements.
#[test]
fn accuracy_scores_each_deployment_and_keeps_the_inaccurate_off_the_frontier() {
    let s = new_sweep(
        "accuracy",
        "name: e2e-accuracy\nmodel: {path: /models/tiny, served_name: tiny}\n\
         engine: {kind: mock, env: {SWEEP_MOCK_ANSWERS: arithmetic, SWEEP_MOCK_FAULT_WRONG_ANSWER_RATE: {sweep: [\"0\", \"0.5\"]}}}\n\
         cluster: {gpus_per_node: 4, base_port: 25600, frontend_port: 25699}\nmode: [agg, disagg]\n\
         agg: {tp: 1, batch: 8, engine_args: {speedup: 5}}\n\
         ctx: {servers: 1, tp: 1, batch: 8, engine_args: {speedup: 5}}\n\
         gen: {servers: 1, tp: 1, batch: 8, engine_args: {speedup: 5}}\n\
         workload: {isl: 64, osl: 32, concurrency: [4], requests: 16, warmup: 2}\n\
         accuracy: {limit: 40, concurrency: 4, min_score: 0.9}\n",
    );
    let (code, _, stderr) = sweep(&["submit", "spec.yaml", "-o", "sweep", "--executor", "local"], &s.dir);
    assert_eq!(code, 0, "{stderr}");
    let (code, _, stderr) = sweep(&["report", "sweep"], &s.dir);
    assert_eq!(code, 0, "{stderr}");
    let rows = common::csv_rows(&s.dir.join("sweep/report/results.csv"));
    assert_eq!(rows.len(), 4, "{rows:#?}");
    let knob = "engine.env.SWEEP_MOCK_FAULT_WRONG_ANSWER_RATE";
    let mut modes = BTreeSet::new();
    for row in &rows {
        assert_eq!(row["state"], "done", "{row:#?}");
        modes.insert(row["mode"].clone());
        let job = sweep_folder::JobDir::new(s.dir.join("sweep/jobs").join(&row["job"]));
        let (path, result) = job.read_accuracy().expect("readable").expect("accuracy.json");
        let answers = std::fs::read_to_string(path.with_file_name("answers.jsonl")).expect("answers");
        let answers: Vec<serde_json::Value> =
            answers.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect();
        assert_eq!(answers.len(), 40, "the first `limit` questions");
        let right = answers.iter().filter(|a| a["correct"] == true).count();
        let score = &result.scores[0];
        assert_eq!(result.state, sweep_folder::accuracy::AccuracyState::Done, "{result:#?}");
        assert_eq!(
            (score.samples, score.correct, score.errors),
            (Some(40), Some(right as u64), 0),
            "{result:#?}"
        );
        assert_eq!(row["accuracy_samples"], "40");
        if row[knob] == "0" {
            assert_eq!(right, 40, "every answer right: {answers:#?}");
            assert_eq!(row["accuracy_score"], "1.0");
            assert_eq!(row["invalid_reason"], "", "{row:#?}");
            assert_eq!(row["on_frontier"], "true", "{row:#?}");
        } else {
            assert!((8..=32).contains(&right), "about half right: {right}");
            // A wrong answer is the result plus one: what was extracted is off by one.
            for a in answers.iter().filter(|a| a["correct"] == false) {
                let expected: i64 = a["expected"].as_str().expect("text").parse().expect("a number");
                assert_eq!(a["extracted"], (expected + 1).to_string(), "{a}");
            }
            let reason = &row["invalid_reason"];
            assert!(reason.starts_with("inaccurate: exact_match"), "{row:#?}");
            assert!(reason.contains("below accuracy.min_score 0.9"), "{reason}");
            assert_eq!(row["on_frontier"], "false", "{row:#?}");
            assert!(row["output_token_throughput"].parse::<f64>().expect("measured") > 0.0);
        }
    }
    assert_eq!(modes, BTreeSet::from(["agg".to_owned(), "disagg".to_owned()]));
    let html = std::fs::read_to_string(s.dir.join("sweep/report/report.html")).expect("report");
    assert!(html.contains("id=\"accuracy\""), "an accuracy section");
    assert_eq!(html.matches("<td>inaccurate</td>").count(), 2, "both corrupted deployments flagged");
}

/// `sweep explore` over an honest and a corrupted deployment with an accuracy bound: the
/// corrupted one measures nothing valid, so it is recorded as failed, saying it is inaccurate,
/// and never chosen again.
#[test]
fn explore_records_an_inaccurate_deployment_as_failed_with_why() {
    let s = new_sweep(
        "explore-accuracy",
        "name: e2e-explore-accuracy
model: {path: /models/tiny, served_name: tiny}
\
         engine: {kind: mock, env: {SWEEP_MOCK_ANSWERS: arithmetic, SWEEP_MOCK_FAULT_WRONG_ANSWER_RATE: {sweep: [\"0\", \"0.5\"]}}}\n\
         cluster: {gpus_per_node: 4, base_port: 25800, frontend_port: 25899}\nmode: agg\n\
         agg: {tp: 1, batch: 8, engine_args: {speedup: 5}}\n\
         workload: {isl: 64, osl: 16, concurrency: [1, 4], requests: 8, warmup: 1}\n\
         accuracy: {limit: 20, min_score: 0.9}\n",
    );
    let (code, _, stderr) = sweep(
        &["explore", "spec.yaml", "-o", "explored", "--budget-gpu-hours", "1", "--executor", "local"],
        &s.dir,
    );
    assert_eq!(code, 0, "{stderr}");
    let (log, _) = explore_log(&s.dir.join("explored/explore.json"));
    let failed = log["waves"].as_array().expect("waves").iter().find_map(|w| {
        w["failed"].as_object()?.iter().find(|(job, _)| job.ends_with("RATE-0.5")).map(|(_, why)| why.clone())
    });
    let why = failed.unwrap_or_else(|| panic!("the corrupted job recorded as failed: {log:#}"));
    assert!(why.as_str().is_some_and(|w| w.starts_with("no valid point: inaccurate: exact_match")), "{why}");
}

/// lm-eval named but missing where the job runs: the accuracy step fails with that reason, and
/// the points keep their results and stand on the frontier. Then a stand-in `lm_eval` (it asks
/// the frontend once and writes lm-eval 0.4's results file, since the tasks' datasets cannot be
/// downloaded here): its task's score is read back, and below `min_score` it flags the job.
#[test]
fn lm_eval_missing_fails_only_the_accuracy_step_and_its_results_are_read_when_present() {
    let spec = |command: &str| {
        format!(
            "name: e2e-lm-eval\nmodel: {{path: /models/tiny, served_name: tiny}}\nengine: {{kind: mock}}\n\
             cluster: {{gpus_per_node: 4, base_port: 25700, frontend_port: 25799}}\nmode: agg\n\
             agg: {{tp: 1, batch: 8, engine_args: {{speedup: 5}}}}\n\
             workload: {{isl: 64, osl: 32, concurrency: [4], requests: 16, warmup: 2, endpoint: completions}}\n\
             accuracy: {{min_score: 0.5, lm_eval: {{tasks: [gsm8k], limit: 20, command: {command}}}}}\n"
        )
    };
    let s = new_sweep("lm-eval", &spec("lm_eval_not_installed_here"));
    let (code, _, stderr) = sweep(&["submit", "spec.yaml", "-o", "missing", "--executor", "local"], &s.dir);
    assert_eq!(code, 0, "the points are measured: {stderr}");
    let (code, _, stderr) = sweep(&["aggregate", "missing"], &s.dir);
    assert_eq!(code, 0, "{stderr}");
    let rows = common::csv_rows(&s.dir.join("missing/report/results.csv"));
    assert_eq!(rows.len(), 1, "{rows:#?}");
    let row = &rows[0];
    assert_eq!((row["state"].as_str(), row["on_frontier"].as_str()), ("done", "true"), "{row:#?}");
    assert_eq!(row["accuracy_state"], "failed");
    let job = sweep_folder::JobDir::new(s.dir.join("missing/jobs").join(&row["job"]));
    let (_, result) = job.read_accuracy().expect("readable").expect("accuracy.json");
    assert!(result.reason.contains("`lm_eval_not_installed_here` was not found on"), "{result:#?}");
    assert!(result.reason.contains("pip install"), "says what to do: {}", result.reason);
    assert!(result.scores.is_empty(), "no built-in probe was asked for: {result:#?}");
    let benchmark = job.read_benchmark_status().expect("readable").expect("marker");
    assert_eq!(benchmark.state, sweep_folder::BenchmarkState::Done, "{benchmark:#?}");

    let standin =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/accuracy/lm-eval-standin.sh");
    std::fs::write(s.dir.join("spec.yaml"), spec(&standin.display().to_string())).expect("spec");
    let (code, _, stderr) = sweep(&["submit", "spec.yaml", "-o", "present", "--executor", "local"], &s.dir);
    assert_eq!(code, 0, "{stderr}");
    let (code, _, stderr) = sweep(&["aggregate", "present"], &s.dir);
    assert_eq!(code, 0, "{stderr}");
    let rows = common::csv_rows(&s.dir.join("present/report/results.csv"));
    let row = &rows[0];
    let job = sweep_folder::JobDir::new(s.dir.join("present/jobs").join(&row["job"]));
    let (path, result) = job.read_accuracy().expect("readable").expect("accuracy.json");
    assert_eq!(result.state, sweep_folder::accuracy::AccuracyState::Done, "{result:#?}");
    let score = &result.scores[0];
    assert_eq!(
        (score.name.as_str(), score.metric.as_str(), score.score, score.samples),
        ("gsm8k", "exact_match,strict-match", 0.25, Some(20))
    );
    let log = std::fs::read_to_string(path.with_file_name("lm_eval/lm_eval.log")).expect("its log");
    assert!(log.contains("/v1/completions"), "pointed at the frontend: {log}");
    assert_eq!(row["accuracy_score"], "0.25");
    assert!(row["invalid_reason"].starts_with("inaccurate: gsm8k 0.250 (20 samples)"), "{row:#?}");
    assert_eq!(row["on_frontier"], "false");
}
