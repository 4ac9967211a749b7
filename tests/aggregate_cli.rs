//! `sweep aggregate` and `sweep report` as users run them: on real aiperf 0.13.0 output, on a
//! sweep the local executor ran with a crashing engine, and the report opened in a real browser
//! (Debian's headless Chromium).

mod common;

use common::{aiperf_fixture as fixture, copy_dir, sweep};
use std::path::Path;
use std::process::Command;

fn workdir(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new().prefix(&format!("sweep-aggregate-{name}-")).tempdir().expect("tmp")
}

#[test]
fn aggregate_prints_the_frontier_of_the_aiperf_fixture() {
    let tmp = workdir("fixture");
    copy_dir(&fixture(), &tmp.path().join("runs"));
    let (code, stdout, stderr) = sweep(&["aggregate", "runs"], tmp.path());
    assert_eq!(code, 0, "{stderr}");
    insta::assert_snapshot!("aggregate_fixture_frontier", stdout);
    assert!(stderr.contains("3 points (3 done, 0 without a result), 0 warning(s)"), "{stderr}");
    for file in ["results.parquet", "results.csv", "pareto.csv", "plots/pareto_isl128_osl64.png"] {
        assert!(tmp.path().join("runs/report").join(file).is_file(), "{file}");
    }
    // The fixture's own files are untouched.
    let (a, b) = (
        std::fs::read(
            fixture().join("agg-bm-128-64/agg_tp1/aiperf_artifacts/concurrency_4/profile_export_aiperf.json"),
        ),
        std::fs::read(
            tmp.path()
                .join("runs/agg-bm-128-64/agg_tp1/aiperf_artifacts/concurrency_4/profile_export_aiperf.json"),
        ),
    );
    assert_eq!(a.expect("a"), b.expect("b"));

    let (code, stdout, stderr) =
        sweep(&["aggregate", "runs", "-o", "json-out", "--format", "json"], tmp.path());
    assert_eq!(code, 0, "{stderr}");
    let json: serde_json::Value = serde_json::from_str(&stdout).expect("JSON on stdout");
    assert_eq!(json["points"], 3);
    assert_eq!(json["states"]["done"], 3);
    assert_eq!(json["frontiers"][0]["group"]["mode"], "agg");
}

#[test]
fn bad_command_lines_and_empty_folders_have_their_exit_codes() {
    let tmp = workdir("codes");
    std::fs::create_dir_all(tmp.path().join("empty")).expect("mkdir");
    let (code, stdout, stderr) = sweep(&["aggregate", "empty"], tmp.path());
    assert_eq!(code, 11, "{stderr}");
    assert!(stdout.is_empty());
    assert!(stderr.contains("empty") && stderr.contains("help:"), "{stderr}");
    assert!(!tmp.path().join("empty/report").exists(), "nothing written when nothing was found");

    let (code, _, stderr) = sweep(&["report", "empty", "empty"], tmp.path());
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("-o DIR"), "{stderr}");

    let (code, _, stderr) = sweep(&["aggregate", "missing"], tmp.path());
    assert_eq!(code, 5, "{stderr}");
    assert!(stderr.contains("missing"), "{stderr}");

    let run = tmp.path().join("broken/run");
    std::fs::create_dir_all(&run).expect("mkdir");
    std::fs::write(run.join("profile_export_aiperf.json"), "{\"request_count\": ").expect("write");
    let (code, _, stderr) = sweep(&["aggregate", "broken"], tmp.path());
    assert_eq!(code, 11, "{stderr}");
    assert!(
        stderr.contains("warning:") && stderr.contains("broken/run/profile_export_aiperf.json"),
        "{stderr}"
    );
}

const PROFILED: &str = "\
name: profiled
model: {path: /models/tiny, served_name: tiny}
engine: {kind: mock}
cluster: {gpus_per_node: 4, packing: packed, base_port: 19300, frontend_port: 19399}
mode: disagg
ctx: {servers: 1, batch: 4, engine_args: {speedup: 20}}
gen: {servers: 1, batch: 8, engine_args: {speedup: 20}}
workload: {isl: [64, 256, 1024], osl: 8, concurrency: [1, 4], requests: \"4x\", warmup: \"1x\"}
";

#[test]
fn the_profiler_analyses_of_a_disaggregated_sweep_are_reported_in_a_real_browser() {
    let tmp = workdir("profiled");
    std::fs::write(tmp.path().join("spec.yaml"), PROFILED).expect("spec");
    let (code, _, stderr) = sweep(&["submit", "spec.yaml", "-o", "sweep", "--executor", "local"], tmp.path());
    assert_eq!(code, 0, "{stderr}");
    // An unknown SLO is a usage error naming the valid ones, before anything is read.
    let (code, _, stderr) = sweep(&["report", "sweep", "--slo", "ttft_p99=5"], tmp.path());
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("valid names: ttft_avg_ms"), "{stderr}");
    assert!(!tmp.path().join("sweep/report").exists());
    let args = ["report", "sweep", "--slo", "ttft_p99_ms=60000,itl_p50_ms=60000", "--gpu-hour-cost", "3"];
    let (code, _, stderr) = sweep(&[&args[..], &["--target-tokens-per-s", "1000"]].concat(), tmp.path());
    assert_eq!(code, 0, "{stderr}");
    let out = tmp.path().join("sweep/report");
    let md = std::fs::read_to_string(out.join("report.md")).expect("md");
    // Ceilings of a minute: every one of the 6 points meets them.
    assert!(md.contains("6 point(s) meet them, 0 do not"), "{md}");
    assert!(md.contains("TTFT = a·ISL² + b·ISL + c"), "{md}");
    assert!(md.contains("Prefill:decode balance"), "{md}");
    for name in [
        "profile_ttft_vs_isl",
        "profile_itl_vs_context",
        "profile_itl_vs_concurrency",
        "profile_cost",
        "profile_balance",
    ] {
        assert!(out.join(format!("plots/{name}.svg")).is_file(), "{name}");
    }
    let profile = tmp.path().join("chromium-profile");
    let dom = dump_dom(&format!("file://{}", out.join("report.html").display()), &profile);
    for id in [
        "profile",
        "cost",
        "cheapest",
        "cost-table",
        "ttft-fit-table",
        "itl-table",
        "balance-table",
        "profile_cost",
        "profile_ttft_vs_isl",
        "profile_balance",
    ] {
        assert!(dom.contains(&format!("id=\"{id}\"")), "{id} missing");
    }
    // The fit over ISL 64, 256, 1024 at concurrency 1 has its three coefficients.
    let fit = column(&dom, "ttft-fit-table", 1);
    assert_eq!(fit, vec!["64, 256, 1024"], "{fit:?}");
    assert!(column(&dom, "ttft-fit-table", 2).iter().all(|a| a.contains('e')), "a in scientific notation");
    // Cost: 6 rows, cheapest first, each priced and sized for 1000 tokens/s.
    let usd: Vec<f64> = column(&dom, "cost-table", 8).iter().map(|c| c.parse().expect("usd")).collect();
    assert_eq!(usd.len(), 6);
    assert!(usd.windows(2).all(|w| w[0] <= w[1]), "cheapest first: {usd:?}");
    let gpus: Vec<u64> = column(&dom, "cost-table", 10).iter().map(|c| c.parse().expect("gpus")).collect();
    assert!(gpus.iter().all(|g| *g >= 2 && g % 2 == 0), "whole deployments of 2 GPUs: {gpus:?}");
    // Balance: a row per point, the run ratio 1:1.
    let run = column(&dom, "balance-table", 7);
    assert_eq!(run.len(), 6);
    assert!(run.iter().all(|r| r == "1:1"), "{run:?}");
}

/// The browser Debian ships; the test suite's script installs it.
fn chromium() -> &'static str {
    let found = Command::new("chromium").arg("--version").output().is_ok_and(|o| o.status.success());
    assert!(found, "chromium is not installed: scripts/test.sh installs it (apt install chromium)");
    "chromium"
}

/// Loads `url` in headless Chromium and returns the DOM after the page's scripts ran.
fn dump_dom(url: &str, profile: &Path) -> String {
    let output = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--virtual-time-budget=3000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(url)
        .output()
        .expect("chromium runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The text of each cell of column `col` of the table with id `id`, in DOM order.
fn column(dom: &str, id: &str, col: usize) -> Vec<String> {
    let start = dom.find(&format!("id=\"{id}\"")).unwrap_or_else(|| panic!("no table {id}"));
    let body = &dom[start..];
    let body = &body[body.find("<tbody>").expect("tbody")..body.find("</tbody>").expect("/tbody")];
    // Rows may carry attributes (`<tr data-row="3">`).
    body.split("<tr")
        .skip(1)
        .map(|row| {
            let cell = row.split("<td>").nth(col + 1).expect("cell");
            cell[..cell.find("</td>").expect("/td")].to_owned()
        })
        .collect()
}

const CRASHING: &str = "\
name: crashing
model: {path: /models/tiny, served_name: tiny}
engine: {kind: mock}
cluster: {gpus_per_node: 4, packing: packed, base_port: 19100, frontend_port: 19199}
mode: agg
agg: {tp: [1, 2], batch: 8, engine_args: {speedup: 20, fault_crash_after: 14}}
workload: {isl: 32, osl: 8, concurrency: [1, 4, 2], requests: \"4x\", warmup: \"1x\"}
";

#[test]
fn a_local_sweep_with_a_crashing_engine_is_reported_in_a_real_browser() {
    let tmp = workdir("report");
    std::fs::write(tmp.path().join("spec.yaml"), CRASHING).expect("spec");
    // Concurrency 1 uses 5 requests, 4 uses 20: the engine dies at request 15, in the second
    // point, and the third point never gets a server.
    let (code, _, stderr) = sweep(&["submit", "spec.yaml", "-o", "sweep", "--executor", "local"], tmp.path());
    assert_eq!(code, 10, "jobs did not all complete: {stderr}");
    let (code, stdout, stderr) = sweep(&["report", "sweep", "--min-tps-user", "1,1000000"], tmp.path());
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.lines().count() >= 2, "a frontier: {stdout}");
    let out = tmp.path().join("sweep/report");
    let rows = common::csv_rows(&out.join("results.csv"));
    assert_eq!(rows.len(), 6, "6 points, none dropped: {rows:#?}");
    let states: Vec<&str> = rows.iter().map(|r| r["state"].as_str()).collect();
    assert_eq!(states.iter().filter(|s| **s == "done").count(), 2, "{states:?}");
    assert_eq!(states.iter().filter(|s| **s == "failed").count(), 4, "{states:?}");
    for row in rows.iter().filter(|r| r["state"] == "failed") {
        assert!(row["reason"].contains("crash fault"), "the engine's log tail says why: {row:#?}");
        assert_eq!(row["on_frontier"], "false");
    }
    let md = std::fs::read_to_string(out.join("report.md")).expect("md");
    assert!(md.contains("Points without a result (4)"), "{md}");

    let html = out.join("report.html");
    let text = std::fs::read_to_string(&html).expect("html");
    assert!(
        !text.contains("src=") && !text.contains("<link"),
        "self-contained: nothing loaded from elsewhere"
    );
    let profile = tmp.path().join("chromium-profile");
    let url = format!("file://{}", html.display());
    let dom = dump_dom(&url, &profile);
    // The charts are there: the Pareto chart and three against concurrency, as inline SVG, and
    // a panel of what the servers saw per point that reached its server (the two measured
    // points and the one the crash cut short, in each job).
    let panels = dom.matches("class=\"server-panel\"").count();
    assert_eq!(panels, 4, "a server panel per point that reached a server");
    // The profiler's charts: TTFT against ISL (the two concurrency-1 points) and ITL against
    // context and concurrency.
    assert_eq!(dom.matches("<figure").count(), 4 + 3 + panels, "seven charts and the panels");
    assert!(dom.matches("<svg").count() >= 4 + panels);
    for id in
        ["best-table", "frontier-table", "problem-table", "all-table", "counts", "servers", "server-table"]
    {
        assert!(dom.contains(&format!("id=\"{id}\"")), "{id} missing");
    }
    assert!(dom.contains("2 done, 4 failed"), "counts by state");
    let reasons = column(&dom, "problem-table", 4);
    assert_eq!(reasons.len(), 4);
    assert!(reasons.iter().all(|r| !r.is_empty()), "every failed point says why: {reasons:?}");
    assert!(dom.contains("sweep-runner"), "versions are shown");
    assert!(dom.contains("no point reaches it"), "the 1,000,000 tok/s/user floor is unreachable");

    // Mixed sources and versions in one table: this sweep's runner output beside aiperf's own.
    copy_dir(&fixture(), &tmp.path().join("aiperf"));
    let (code, _, stderr) = sweep(&["aggregate", "sweep", "aiperf", "-o", "merged"], tmp.path());
    assert_eq!(code, 0, "{stderr}");
    let merged = common::csv_rows(&tmp.path().join("merged/results.csv"));
    assert_eq!(merged.len(), 9, "6 + 3 points");
    let generators: std::collections::BTreeSet<&str> =
        merged.iter().map(|r| r["generator"].as_str()).collect();
    assert!(
        generators.contains("aiperf 0.13.0") && generators.iter().any(|g| g.starts_with("sweep-runner")),
        "{generators:?}"
    );

    // Sorting runs in the browser: the full table by concurrency, descending.
    let sorted = dump_dom(&format!("{url}#sort=all-table.4.desc"), &profile);
    let numbers =
        |cells: Vec<String>| -> Vec<i64> { cells.iter().map(|c| c.parse().expect("number")).collect() };
    let concurrency = numbers(column(&sorted, "all-table", 4));
    let mut expected = concurrency.clone();
    expected.sort_by(|a, b| b.cmp(a));
    assert_eq!(concurrency, expected);
    assert_ne!(numbers(column(&dom, "all-table", 4)), concurrency, "the unsorted page is in another order");
}

const KNOBS: &str = "\
name: knobs
model: {path: /models/tiny, served_name: tiny}
engine: {kind: mock}
cluster: {gpus_per_node: 4, packing: packed, base_port: 19500, frontend_port: 19599}
mode: agg
agg: {tp: [1, 2], batch: 8, engine_args: {speedup: 4, decode_base_ms: {sweep: [2, 10]}}}
workload: {isl: 32, osl: 8, concurrency: [1, 4], requests: \"4x\", warmup: \"1x\"}
";

/// A sweep that varies a knob, reported: a frontier per value side by side, each value's best
/// at each floor, and an explorer whose filters (one per varied dimension: the GPUs and the
/// knob) redraw the chart and its frontier and hide the tables' other rows, in a real browser.
#[test]
fn a_knob_sweep_is_reported_per_value_and_filtered_in_a_real_browser() {
    let tmp = workdir("knobs");
    std::fs::write(tmp.path().join("spec.yaml"), KNOBS).expect("spec");
    let (code, _, stderr) = sweep(&["submit", "spec.yaml", "-o", "sweep", "--executor", "local"], tmp.path());
    assert_eq!(code, 0, "{stderr}");
    let (code, _, stderr) = sweep(&["report", "sweep", "--min-tps-user", "1,100"], tmp.path());
    assert_eq!(code, 0, "{stderr}");
    let out = tmp.path().join("sweep/report");
    assert!(out.join("plots/knob_agg.engine_args.decode_base_ms_agg_isl32_osl8.svg").is_file());
    let md = std::fs::read_to_string(out.join("report.md")).expect("md");
    assert!(md.contains("## By knob"), "{md}");
    let rows = common::csv_rows(&out.join("results.csv"));
    assert_eq!(rows.len(), 8);
    let at_2 = rows.iter().filter(|r| r["agg.engine_args.decode_base_ms"] == "2").count();
    assert_eq!(at_2, 4, "{rows:#?}");

    let html = out.join("report.html");
    let profile = tmp.path().join("chromium-profile");
    // Unfiltered: every point drawn, no row hidden; a filter for each varied dimension.
    let dom = dump_dom(&format!("file://{}", html.display()), &profile);
    assert_eq!(dom.matches("class=\"pt").count(), 8, "every measured point is drawn");
    assert!(dom.contains("8 of 8 points shown"), "the count says so");
    assert!(!dom.contains("display: none"), "no row hidden");
    for dimension in ["GPUs", "parallelism", "agg.engine_args.decode_base_ms"] {
        assert!(dom.contains(&format!("data-dimension=\"{dimension}\"")), "a filter for {dimension}");
    }
    assert!(!dom.contains("data-dimension=\"mode\""), "the mode does not vary: no filter");
    // Hovering shows the configuration: each point's title names its job and the knob's value.
    assert!(dom.contains("agg.engine_args.decode_base_ms = 10"), "a point's configuration on hover");
    // Both values side by side, each with its best at each floor.
    let values = column(&dom, "knob-table", 3);
    assert_eq!(values.iter().filter(|v| *v == "2").count(), 2, "{values:?}");
    assert_eq!(values.iter().filter(|v| *v == "10").count(), 2, "{values:?}");

    // Filtered to one value and one GPU count: one job's two points, the rest of each table hidden.
    let url = format!("file://{}#filter=agg.engine_args.decode_base_ms:2;GPUs:1", html.display());
    let dom = dump_dom(&url, &profile);
    assert_eq!(dom.matches("class=\"pt").count(), 2, "only the chosen job's points");
    assert!(dom.contains("2 of 8 points shown"));
    let hidden = dom.matches("style=\"display: none;\"").count();
    let all_rows = dom[dom.find("id=\"all-table\"").expect("all-table")..].matches("<tr data-row").count();
    assert_eq!(all_rows, 8);
    assert!(hidden >= 6, "the six other points' rows are hidden: {hidden}");
}

/// A sweep of the simulated engine with 5 repetitions a point, run as `name` with its speed.
fn repeated_sweep(dir: &Path, name: &str, speedup: f64) {
    let spec = format!(
        "name: cmp\nmodel: {{path: /models/tiny, served_name: tiny}}\nengine: {{kind: mock}}\n\
         cluster: {{gpus_per_node: 4, base_port: 19700, frontend_port: 19799}}\nmode: agg\n\
         agg: {{tp: 1, batch: 8, engine_args: {{decode_base_ms: 4, speedup: {speedup}}}}}\n\
         workload: {{isl: 64, osl: 16, concurrency: 1, requests: 8, warmup: 1, repeats: 5}}\n"
    );
    std::fs::write(dir.join(format!("{name}.yaml")), spec).expect("spec");
    let (code, _, stderr) =
        sweep(&["submit", &format!("{name}.yaml"), "-o", name, "--executor", "local"], dir);
    assert_eq!(code, 0, "{stderr}");
}

/// `sweep compare`: A/A (the same configuration twice, 5 repetitions each) flags nothing; A/B
/// (the engine 5 % slower, `speedup` 1/1.05) flags the point regressed, its ITL delta's 95 %
/// interval holding the injected 5 %; the JUnit XML is read by a real JUnit parser; an unknown
/// threshold metric is a usage error naming the valid ones. One point at concurrency 1, run
/// alone (`.config/nextest.toml`): beside the rest of the suite, a batch of 4 on two busy cores
/// widened the interval past zero (CI, stop 41).
///
/// Both comparisons gate with the same tolerances, as a CI job would: a 2.5 % change of a
/// throughput or median, 5 % of a tail. Without them, the A/A pair once differed by +1.9 % in
/// TTFT p99 [+0.1, +3.6] (CI, stop 42): the host's load drifted between the two sweeps, which
/// one sweep's repetitions cannot see (docs/compare.md, "Statistics").
#[test]
fn compare_tells_a_five_percent_slower_engine_from_noise_and_writes_junit() {
    let tmp = workdir("compare");
    let dir = tmp.path();
    repeated_sweep(dir, "a1", 1.0);
    repeated_sweep(dir, "a2", 1.0);
    repeated_sweep(dir, "b", 1.0 / 1.05);
    let tolerances = "tps_per_gpu=-2.5%,tps_per_user=-2.5%,output_token_throughput=-2.5%,\
                      ttft_p50_ms=+2.5%,itl_p50_ms=+2.5%,ttft_p99_ms=+5%,itl_p99_ms=+5%";

    let (code, stdout, stderr) =
        sweep(&["compare", "a1", "a2", "--threshold", tolerances, "--format", "json"], dir);
    assert_eq!(code, 0, "A/A: {stdout}\n{stderr}");
    let same: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(same["counts"]["unchanged"], 1, "{same:#}");

    let (code, stdout, stderr) = sweep(
        &[
            "compare",
            "a1",
            "b",
            "--threshold",
            tolerances,
            "-o",
            "cmp",
            "--junit",
            "cmp/junit.xml",
            "--format",
            "json",
        ],
        dir,
    );
    assert_eq!(code, 17, "A/B: {stderr}");
    assert!(stderr.contains("1 point(s) regressed"), "{stderr}");
    let slower: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(slower["counts"]["regressed"], 1, "{slower:#}");
    for point in slower["points"].as_array().expect("points") {
        let itl = point["metrics"]
            .as_array()
            .expect("metrics")
            .iter()
            .find(|m| m["metric"] == "itl_p50_ms")
            .expect("ITL");
        let (low, high) = (itl["low"].as_f64().expect("low"), itl["high"].as_f64().expect("high"));
        eprintln!(
            "{}: ITL p50 {:+.2} % [{:+.2}, {:+.2}]",
            point["key"],
            itl["delta"].as_f64().unwrap_or(0.0) * 100.0,
            low * 100.0,
            high * 100.0
        );
        assert_eq!(itl["test"], "welch");
        assert!(low <= 0.05 && 0.05 <= high, "the injected 5 % lies in the interval: {itl:#}");
        assert_eq!(itl["regressed"], true);
    }
    assert!(dir.join("cmp/compare.md").is_file() && dir.join("cmp/compare.json").is_file());
    // A real JUnit parser reads it: a case per point and metric, the regressions as failures.
    let parsed = std::process::Command::new("python3")
        .arg("-c")
        .arg(
            "import sys\nfrom junitparser import JUnitXml, Failure\nxml = JUnitXml.fromfile(sys.argv[1])\n\
             cases = [c for s in xml for c in s]\nfailed = [c for c in cases if any(isinstance(r, Failure) for r in c.result)]\n\
             print(len(cases), len(failed), sorted({c.name for c in failed}))",
        )
        .arg(dir.join("cmp/junit.xml"))
        .output()
        .expect("python3 runs");
    let out = String::from_utf8_lossy(&parsed.stdout);
    assert!(parsed.status.success(), "{out}{}", String::from_utf8_lossy(&parsed.stderr));
    let fields: Vec<&str> = out.trim().splitn(3, ' ').collect();
    assert_eq!(fields[0], "7", "1 point × 7 metrics: {out}");
    assert!(fields[1].parse::<u32>().expect("failures") >= 2, "{out}");
    assert!(fields[2].contains("itl_p50_ms") && fields[2].contains("tps_per_user"), "{out}");

    let (code, _, stderr) = sweep(&["compare", "a1", "b", "--threshold", "tps=-3%"], dir);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("valid names: tps_per_gpu"), "{stderr}");
}

/// A small local mock sweep with 3 repetitions per point (`extra` adds workload keys).
fn history_sweep(dir: &Path, name: &str, speedup: f64, extra: &str) {
    let spec = format!(
        "name: hist\nmodel: {{path: /models/tiny, served_name: tiny}}\nengine: {{kind: mock}}\n\
         cluster: {{gpus_per_node: 4, base_port: 19720, frontend_port: 19789}}\nmode: agg\n\
         agg: {{tp: 1, batch: [4, 8], engine_args: {{decode_base_ms: 2, speedup: {speedup}}}}}\n\
         workload: {{isl: 32, osl: 8, concurrency: 1, requests: 6, warmup: 1, repeats: 3{extra}}}\n"
    );
    std::fs::write(dir.join(format!("{name}.yaml")), spec).expect("spec");
    let (code, _, stderr) =
        sweep(&["submit", &format!("{name}.yaml"), "-o", name, "--executor", "local"], dir);
    assert_eq!(code, 0, "{stderr}");
}

/// The history: three sweeps added (one deployed twice), listed, shown by tag, charted over time
/// in the report (checked in Chromium), and a comparison's page with both frontiers; then
/// `sweep ci`: a first run recorded, a case twice as slow held against it (exit 17, JUnit read
/// by junitparser), and a bad cases file pointing at its line.
#[test]
fn a_history_charts_configurations_over_time_and_ci_gates_cases_on_it() {
    let tmp = workdir("history");
    let dir = tmp.path();
    let db = "db/history.sqlite";
    history_sweep(dir, "s1", 1.0, "");
    history_sweep(dir, "s2", 1.0, ", deployment_repeats: 2");
    history_sweep(dir, "s3", 1.0, "");
    for (name, tag) in [("s1", "base"), ("s2", "nightly"), ("s3", "nightly")] {
        let (code, stdout, stderr) = sweep(&["history", "add", name, "--tag", tag, "--db", db], dir);
        assert_eq!(code, 0, "{stderr}");
        assert!(stdout.trim().parse::<i64>().is_ok(), "the id on stdout: {stdout}");
    }
    let (code, stdout, stderr) = sweep(&["history", "list", "--format", "json", "--db", db], dir);
    assert_eq!(code, 0, "{stderr}");
    let list: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    let ids: Vec<i64> =
        list.as_array().expect("list").iter().map(|e| e["id"].as_i64().expect("id")).collect();
    assert_eq!(ids, [3, 2, 1], "newest first");
    assert_eq!(list[2]["tags"], serde_json::json!(["base"]));
    assert_eq!(list[0]["points"], 2, "one per configuration, repetitions summarised");
    let (code, stdout, _) = sweep(&["history", "show", "nightly", "--db", db], dir);
    assert_eq!(code, 0);
    assert!(stdout.starts_with("sweep 3 (hist)"), "{stdout}");
    let (code, _, stderr) = sweep(&["history", "show", "nope", "--db", db], dir);
    assert_eq!(code, 19, "{stderr}");
    // A sweep that measured nothing is no baseline: refused, nothing added.
    std::fs::write(dir.join("never.yaml"), std::fs::read_to_string(dir.join("s1.yaml")).expect("spec"))
        .expect("spec");
    let (code, _, stderr) = sweep(&["render", "never.yaml", "-o", "never", "--executor", "local"], dir);
    assert_eq!(code, 0, "{stderr}");
    let (code, _, stderr) = sweep(&["history", "add", "never", "--db", db], dir);
    assert_eq!(code, 11, "{stderr}");
    assert!(stderr.contains("nothing was added"), "{stderr}");

    // A history written by a newer sweep is refused untouched; one another process is writing
    // is waited for, then refused; neither is written.
    let sql = |path: &str, script: &str| {
        let mut command = Command::new("python3");
        command
            .arg("-c")
            .arg(format!("import sqlite3, sys, time\ndb = sqlite3.connect(sys.argv[1], isolation_level=None)\n{script}"))
            .arg(dir.join(path));
        command
    };
    assert!(sql("newer.sqlite", "db.execute('PRAGMA user_version = 99')")
        .status()
        .expect("python3")
        .success());
    let before = std::fs::read(dir.join("newer.sqlite")).expect("db");
    let (code, _, stderr) = sweep(&["history", "add", "s1", "--db", "newer.sqlite"], dir);
    assert_eq!(code, 13, "{stderr}");
    assert!(stderr.contains("schema 99"), "{stderr}");
    assert_eq!(std::fs::read(dir.join("newer.sqlite")).expect("db"), before);
    let mut holder = sql(db, "db.execute('BEGIN IMMEDIATE')\nprint('locked', flush=True)\ntime.sleep(30)")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(holder.stdout.take().expect("stdout")),
        &mut line,
    )
    .expect("read");
    assert_eq!(line.trim(), "locked");
    let (code, _, stderr) = sweep(&["history", "add", "s1", "--db", db], dir);
    let _ = holder.kill();
    let _ = holder.wait();
    assert_eq!(code, 8, "{stderr}");
    assert!(stderr.contains("locked by another process"), "{stderr}");
    let (_, stdout, _) = sweep(&["history", "list", "--format", "json", "--db", db], dir);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&stdout).expect("json").as_array().map(Vec::len),
        Some(3)
    );

    // Deployed twice: each point's 6 repetitions came from 2 deployments.
    let (code, _, stderr) = sweep(&["aggregate", "s2", "-o", "s2-agg"], dir);
    assert_eq!(code, 0, "{stderr}");
    let mut table = csv::Reader::from_path(dir.join("s2-agg/results.csv")).expect("csv");
    let header = table.headers().expect("header").clone();
    let at = |name: &str| header.iter().position(|h| h == name).unwrap_or_else(|| panic!("{name}"));
    let rows: Vec<csv::StringRecord> = table.records().map(|r| r.expect("row")).collect();
    let summarised: Vec<&csv::StringRecord> = rows.iter().filter(|r| !r[at("repeats")].is_empty()).collect();
    assert_eq!((rows.len(), summarised.len()), (12, 2), "2 configurations × 3 repeats × 2 deployments");
    assert!(summarised.iter().all(|r| &r[at("repeats")] == "6" && &r[at("deployments")] == "2"), "{rows:?}");

    let (code, _, stderr) = sweep(&["report", "s3", "--history", "--db", db, "-o", "s3-report"], dir);
    assert_eq!(code, 0, "{stderr}");
    // The frontier stands at the means, with each point's 95 % intervals drawn across it.
    let pareto = std::fs::read_to_string(dir.join("s3-report/plots/pareto_isl32_osl8.svg")).expect("svg");
    let bars = pareto.matches("opacity=\"0.7\" stroke=\"#0072B2\"").count();
    assert_eq!(bars, 4, "2 points × 2 axes");
    let profile = dir.join("chromium-profile");
    let dom = dump_dom(&format!("file://{}", dir.join("s3-report/report.html").display()), &profile);
    assert!(dom.contains("id=\"trend\""), "the trend section");
    let charts = dom.matches("<figure id=\"trend_").count();
    assert_eq!(charts, 2, "a chart per configuration");
    let runs = column(&dom, "trend-table", 1);
    assert_eq!(runs, ["1", "2", "3"], "s3 is in the history, so not added again: {runs:?}");
    // Each chart draws the three runs' means and their intervals.
    let trend = &dom[dom.find("<figure id=\"trend_1\"").expect("trend_1")..];
    let trend = &trend[..trend.find("</figure>").expect("end")];
    assert!(trend.matches("<circle").count() >= 3, "{trend}");

    let lenient = "tps_per_gpu=-90%,tps_per_user=-90%,output_token_throughput=-90%,ttft_p50_ms=+900%,ttft_p99_ms=+900%,itl_p50_ms=+900%,itl_p99_ms=+900%";
    let (code, stdout, stderr) =
        sweep(&["compare", "--baseline", "base", "s3", "--db", db, "--threshold", lenient, "-o", "cmp"], dir);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("hypervolume base"), "{stdout}");
    let dom = dump_dom(&format!("file://{}", dir.join("cmp/compare.html").display()), &profile);
    assert!(dom.contains("history sweep 1 (hist"), "the base is named");
    let svg = &dom[dom.find("<figure>").expect("a chart")..];
    let labels: Vec<&str> =
        svg.split("</text>").filter_map(|t| t.rsplit_once('>')).map(|(_, text)| text.trim()).collect();
    assert!(
        labels.contains(&"base") && labels.contains(&"candidate"),
        "both frontiers on one chart: {labels:?}"
    );
    let (code, _, stderr) = sweep(&["compare", "--baseline", "base", "s1", "s3", "--db", db], dir);
    assert_eq!(code, 2, "{stderr}");
    // Both sides from the history.
    let (code, stdout, stderr) = sweep(
        &["compare", "history:base", "history:2", "--db", db, "--threshold", lenient, "--format", "json"],
        dir,
    );
    assert_eq!(code, 0, "{stderr}");
    let both: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(both["points"].as_array().map(Vec::len), Some(2), "{both:#}");
    // A results file `sweep aggregate` wrote is a side; one of a newer format is refused.
    let (code, _, stderr) = sweep(&["compare", "s2-agg/results.json", "s3", "--threshold", lenient], dir);
    assert_eq!(code, 0, "{stderr}");
    std::fs::write(dir.join("newer.json"), r#"{"format": 9, "points": []}"#).expect("json");
    let (code, _, stderr) = sweep(&["compare", "newer.json", "s3"], dir);
    assert_eq!(code, 13, "{stderr}");
    assert!(stderr.contains("results format 9"), "{stderr}");
    let (code, _, stderr) = sweep(&["compare", "s1", "s3", "--min-tps-user=-5"], dir);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("non-negative tokens/s/user"), "{stderr}");

    // `sweep ci`: the first run has no baseline and is recorded; a case twice as slow regresses.
    history_sweep(dir, "unused", 0.5, "");
    std::fs::copy(dir.join("s1.yaml"), dir.join("fast.yaml")).expect("copy");
    std::fs::copy(dir.join("unused.yaml"), dir.join("slow.yaml")).expect("copy");
    let cases = |spec: &str| {
        format!("defaults:\n  threshold: {{tps_per_gpu: -10%}}\ncases:\n  - name: agg-small\n    spec: {spec}\n  - name: other\n    spec: fast.yaml\n")
    };
    std::fs::write(dir.join("cases.yaml"), cases("fast.yaml")).expect("cases");
    let (code, stdout, stderr) = sweep(
        &["ci", "cases.yaml", "-o", "ci1", "-k", "small", "--record", "--db", db, "--executor", "local"],
        dir,
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("agg-small  no baseline"), "{stdout}");
    assert!(!stdout.contains("other"), "-k selects: {stdout}");
    std::fs::write(dir.join("cases.yaml"), cases("slow.yaml")).expect("cases");
    let (code, stdout, stderr) = sweep(
        &[
            "ci",
            "cases.yaml",
            "-o",
            "ci2",
            "-k",
            "small",
            "--baseline",
            "latest",
            "--db",
            db,
            "--executor",
            "local",
        ],
        dir,
    );
    assert_eq!(code, 17, "{stdout}{stderr}");
    assert!(stdout.contains("agg-small  REGRESSED"), "{stdout}");
    assert!(dir.join("ci2/compare/agg-small/compare.html").is_file());
    let parsed = Command::new("python3")
        .arg("-c")
        .arg(
            "import sys\nfrom junitparser import JUnitXml, Failure\nxml = JUnitXml.fromfile(sys.argv[1])\n\
             print(' '.join(f'{s.name}:{s.tests}:{s.failures}' for s in xml))",
        )
        .arg(dir.join("ci2/junit.xml"))
        .output()
        .expect("python3 runs");
    let out = String::from_utf8_lossy(&parsed.stdout);
    assert!(parsed.status.success(), "{}", String::from_utf8_lossy(&parsed.stderr));
    let fields: Vec<&str> = out.trim().split(':').collect();
    assert_eq!((fields[0], fields[1]), ("agg-small", "14"), "2 points × 7 metrics: {out}");
    assert!(fields[2].parse::<u32>().expect("failures") >= 2, "{out}");

    std::fs::write(
        dir.join("bad.yaml"),
        "cases:\n  - name: a\n    spec: fast.yaml\n    threshold: {tps: -3%}\n",
    )
    .expect("bad");
    let (code, _, stderr) = sweep(&["ci", "bad.yaml", "-o", "ci3", "--executor", "local"], dir);
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("bad.yaml:4:") && stderr.contains("valid names: tps_per_gpu"), "{stderr}");
    let (code, _, stderr) = sweep(&["ci", "cases.yaml", "-o", "ci3", "-k", "zzz"], dir);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("the cases are agg-small, other"), "{stderr}");
    assert!(!dir.join("ci3").exists(), "nothing written for bad input");
}
