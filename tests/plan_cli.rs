//! `sweep plan` end to end: the real binary on the example sweeps and on every kind of bad input
//! the spec can contain, with its output, its messages and its exit codes.

mod common;

use std::io::{BufRead, BufReader};

use common::Scratch;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("workspace root")
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn sweep(args: &[&str]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_sweep"))
        .args(args)
        .current_dir(workspace())
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        .output()
        .expect("sweep runs");
    Run {
        code: output.status.code().expect("exited normally"),
        stdout: String::from_utf8(output.stdout).expect("utf-8 stdout"),
        stderr: String::from_utf8(output.stderr).expect("utf-8 stderr"),
    }
}

fn yaml_files(dir: &str) -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(workspace().join(dir))
        .expect("directory exists")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".yaml"))
        .collect();
    files.sort();
    files
}

macro_rules! snapshot {
    ($name:expr, $value:expr) => {
        insta::with_settings!({ prepend_module_to_snapshot => false, omit_expression => true }, {
            insta::assert_snapshot!($name, $value);
        })
    };
}

#[test]
fn plans_every_example_sweep_as_a_table() {
    let examples = yaml_files("sweeps");
    assert!(examples.len() >= 5, "the examples are missing: {examples:?}");
    for file in examples {
        let run = sweep(&["plan", &format!("sweeps/{file}")]);
        assert_eq!(run.code, 0, "{file}: {}", run.stderr);
        assert_eq!(run.stderr, "", "{file} should plan without warnings");
        snapshot!(format!("table-{}", file.trim_end_matches(".yaml")), run.stdout);
    }
}

#[test]
fn plans_every_example_sweep_as_json() {
    for file in yaml_files("sweeps") {
        let run = sweep(&["plan", &format!("sweeps/{file}"), "--format", "json"]);
        assert_eq!(run.code, 0, "{file}: {}", run.stderr);
        let mut plan: serde_json::Value = serde_json::from_str(&run.stdout).expect("valid JSON");
        assert_eq!(plan["written_by"], format!("sweep {}", env!("CARGO_PKG_VERSION")));
        // The version changes with every release, the plan does not.
        plan["written_by"] = "sweep VERSION".into();
        let jobs = plan["jobs"].as_array().expect("jobs");
        let points: usize = jobs.iter().map(|j| j["points"].as_array().expect("points").len()).sum();
        assert_eq!(plan["totals"]["points"].as_u64(), Some(points as u64), "{file}");
        // The JSON pins every id: a change in hashing shows up here as a failed snapshot.
        let pretty = serde_json::to_string_pretty(&plan).expect("serialises");
        snapshot!(format!("json-{}", file.trim_end_matches(".yaml")), pretty);
    }
}

/// Each bad spec, the exit code it must give (3: invalid spec, 4: cannot be planned).
const BAD: &[(&str, i32)] = &[
    ("accuracy-bad-line", 3),
    ("accuracy-min-score-out-of-range", 3),
    ("dataset-bad-line", 3),
    ("dcgm-url-not-http", 3),
    ("dataset-image-unreadable", 3),
    ("dataset-missing", 3),
    ("dataset-session-out-of-order", 3),
    ("dataset-sessions-at-a-rate", 3),
    ("dep6-on-4-gpu-nodes", 4),
    ("derived-division-by-zero", 4),
    ("duplicate-value", 3),
    ("empty", 3),
    ("empty-after-filter", 4),
    ("expression-cycle", 3),
    ("isl-and-isl-osl", 3),
    ("larger-than-max-nodes", 4),
    ("missing-batch", 3),
    ("missing-key", 3),
    ("out-of-range", 3),
    ("prefix-prompts-without-a-ratio", 3),
    ("prefix-ratio-out-of-range", 3),
    ("prefix-ratio-with-a-trace", 3),
    ("rate-closed-loop", 3),
    ("rate-in-where", 3),
    ("rate-twice", 3),
    ("rate-zero", 3),
    ("metrics-interval-too-short", 3),
    ("metrics-path-relative", 3),
    ("role-without-mode", 3),
    ("search-and-concurrency", 3),
    ("search-unknown-slo", 3),
    ("search-without-a-stop", 3),
    ("syntax", 3),
    ("too-many-points", 4),
    ("unknown-key", 3),
    ("unknown-role-key", 3),
    ("unknown-variant", 3),
    ("where-syntax", 3),
    ("where-unknown-axis", 3),
    ("wrong-type", 3),
    ("zip-unequal", 3),
    ("zip-unknown-axis", 3),
    ("model-config-unreadable", 3),
    ("gpu-memory-zero", 3),
    ("gpu-interval-too-short", 3),
    ("gpu-memory-utilization-too-high", 3),
    ("knob-ambiguous", 3),
    ("knob-env-name", 3),
    ("knob-not-an-axis", 3),
    ("knob-sweep-not-a-list", 3),
];

#[test]
fn bad_input_gets_a_located_error_the_right_exit_code_and_no_output() {
    let files = yaml_files("tests/fixtures/bad");
    let mut listed: Vec<String> = BAD.iter().map(|(name, _)| format!("{name}.yaml")).collect();
    listed.sort();
    assert_eq!(files, listed, "every bad fixture needs an expected exit code here");
    for (name, code) in BAD {
        let run = sweep(&["plan", &format!("tests/fixtures/bad/{name}.yaml"), "--max-points", "10000"]);
        assert_eq!(run.code, *code, "{name}: {}", run.stderr);
        assert_eq!(run.stdout, "", "{name}: nothing may reach stdout on error");
        assert!(run.stderr.starts_with("error: "), "{name}: {}", run.stderr);
        assert!(run.stderr.contains(&format!("tests/fixtures/bad/{name}.yaml")), "{name} names the file");
        snapshot!(format!("bad-{name}"), format!("exit: {}\n{}", run.code, run.stderr));
    }
}

#[test]
fn the_capacity_check_shows_its_arithmetic_and_prunes_on_request() {
    for name in ["llama-8b", "deepseek-v3", "missing-field"] {
        let file = format!("tests/fixtures/capacity/{name}.yaml");
        let run = sweep(&["plan", &file]);
        assert_eq!(run.code, 0, "{name}: {}", run.stderr);
        snapshot!(format!("capacity-{name}"), format!("{}\n--- stderr\n{}", run.stdout, run.stderr));
    }
    // Llama 8B: the two points at 256 sequences are over, and pruned they are gone from the table
    // and the JSON; the JSON carries every role's estimate and what was over.
    let pruned =
        sweep(&["plan", "tests/fixtures/capacity/llama-8b.yaml", "--prune-infeasible", "--format", "json"]);
    assert_eq!(pruned.code, 0, "{}", pruned.stderr);
    assert!(pruned.stderr.contains("dropped by --prune-infeasible"), "{}", pruned.stderr);
    let plan: serde_json::Value = serde_json::from_str(&pruned.stdout).expect("json");
    assert_eq!(plan["stats"]["infeasible"], 2);
    assert_eq!(plan["capacity"]["params"], 8_030_261_248u64);
    assert_eq!(plan["capacity"]["over"].as_array().map(Vec::len), Some(2));
    assert_eq!(plan["capacity"]["over"][0]["demand_tokens"], 2_359_296);
    for job in plan["jobs"].as_array().expect("jobs") {
        assert_eq!(job["points"].as_array().map(Vec::len), Some(1), "{job}");
        assert_eq!(job["points"][0]["concurrency"], 32);
        assert!(job["capacity"][0]["capacity_tokens"].as_u64().expect("capacity") > 32 * 9216);
    }
    // Without the estimate's inputs there is nothing to prune by: a usage error.
    let run = sweep(&["plan", "sweeps/quickstart.yaml", "--prune-infeasible"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("set `cluster.gpu_memory_gb`"), "{}", run.stderr);
    assert_eq!(run.stdout, "");
    // Pruning every point is an error that says why.
    let run = sweep(&["plan", "tests/fixtures/capacity/nothing-fits.yaml", "--prune-infeasible"]);
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert_eq!(run.stdout, "");
    snapshot!("capacity-nothing-fits", run.stderr);
}

#[test]
fn a_misspelt_key_suggests_the_valid_one_with_its_line() {
    let run = sweep(&["plan", "tests/fixtures/bad/unknown-key.yaml"]);
    assert!(run.stderr.contains("unknown-key.yaml:8:3"), "{}", run.stderr);
    assert!(run.stderr.contains("did you mean `gpus_per_node`?"), "{}", run.stderr);
}

#[test]
fn a_missing_file_is_an_io_error() {
    let run = sweep(&["plan", "sweeps/does-not-exist.yaml"]);
    assert_eq!(run.code, 5);
    assert_eq!(run.stdout, "");
    assert!(run.stderr.contains("cannot read `sweeps/does-not-exist.yaml`"), "{}", run.stderr);
}

#[test]
fn usage_errors_exit_2_and_help_exits_0() {
    assert_eq!(sweep(&["plan"]).code, 2);
    assert_eq!(sweep(&["plan", "sweeps/quickstart.yaml", "--format", "xml"]).code, 2);
    assert_eq!(sweep(&["frobnicate"]).code, 2);
    let help = sweep(&["plan", "--help"]);
    assert_eq!(help.code, 0);
    assert!(help.stdout.contains("--max-points"), "{}", help.stdout);
}

#[test]
fn max_points_guards_the_space_before_filtering() {
    let refused = sweep(&["plan", "tests/fixtures/bad/too-many-points.yaml"]);
    assert_eq!(refused.code, 0, "11,520 points are under the default limit of 100,000");
    let refused = sweep(&["plan", "tests/fixtures/bad/too-many-points.yaml", "--max-points", "11519"]);
    assert_eq!(refused.code, 4);
    let accepted = sweep(&["plan", "tests/fixtures/bad/too-many-points.yaml", "--max-points", "11520"]);
    assert_eq!(accepted.code, 0, "{}", accepted.stderr);
}

#[test]
fn a_reader_that_stops_early_is_not_an_error() {
    // Megabytes of JSON: far more than a pipe holds, so the write really meets a closed pipe.
    let mut child = Command::new(env!("CARGO_BIN_EXE_sweep"))
        .args(["plan", "tests/fixtures/bad/too-many-points.yaml", "--format", "json"])
        .current_dir(workspace())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawns");
    let mut first = String::new();
    let mut reader = BufReader::new(child.stdout.take().expect("stdout"));
    // Compact JSON is one long line: read a first chunk only, then hang up.
    let chunk = reader.fill_buf().expect("reads");
    first.push_str(&String::from_utf8_lossy(&chunk[..chunk.len().min(64)]));
    drop(reader);
    let header = format!("{{\"format\":{},\"written_by\":\"sweep ", sweep_folder::FORMAT);
    assert!(first.starts_with(&header), "{first}");
    let output = child.wait_with_output().expect("exits");
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(output.stderr.is_empty(), "{}", String::from_utf8_lossy(&output.stderr));
}

#[test]
fn an_exclude_that_matches_nothing_is_a_warning_on_stderr() {
    let dir = std::env::temp_dir().join(format!("sweep-plan-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let spec = dir.join("unused-exclude.yaml");
    let text = std::fs::read_to_string(workspace().join("sweeps/quickstart.yaml"))
        .expect("quickstart")
        .replace("sweep:\n", "sweep:\n  exclude:\n    - {agg.tp: 8}\n");
    std::fs::write(&spec, text).expect("write spec");
    let run = sweep(&["plan", spec.to_str().expect("utf-8 path")]);
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.starts_with("warning: this exclude entry matches no point"), "{}", run.stderr);
    assert!(run.stderr.contains("unused-exclude.yaml:"), "{}", run.stderr);
    assert!(run.stdout.starts_with("JOB "), "the plan itself still goes to stdout");
}

/// `sweep check` where the engine is not installed (no TensorRT-LLM on this machine): it says
/// so, checks nothing, and does not fail.
#[test]
fn check_reports_an_engine_that_is_not_installed_and_goes_on() {
    let run = sweep(&["check", "sweeps/trtllm-wideep-packed.yaml"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains("trtllm-serve serve") && run.stdout.contains("not checked"),
        "{}",
        run.stdout
    );
    assert!(run.stderr.contains("`trtllm-serve` is not installed on this node"), "{}", run.stderr);
}

fn scratch(name: &str) -> Scratch {
    let dir = std::env::temp_dir().join(format!("sweep-plan-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    Scratch(dir)
}

/// Paths that differ from run to run (the scratch folder, the build's binaries) as names, and
/// the sizes in file headers, which hold those paths and so vary with where the build is.
fn normalise(text: &str, scratch: &Path) -> String {
    let bin = Path::new(env!("CARGO_BIN_EXE_sweep")).parent().expect("bin dir").display().to_string();
    let text = text.replace(&scratch.display().to_string(), "[SCRATCH]").replace(&bin, "[BIN]");
    text.lines()
        .map(|line| match (line.strip_prefix("--- "), line.rfind(" (")) {
            (Some(_), Some(at)) if line.ends_with(") ---") => format!("{} (SIZE) ---", &line[..at]),
            _ => line.to_owned(),
        })
        .map(|line| line + "\n")
        .collect()
}

#[test]
fn a_dry_run_prints_one_jobs_script_and_engine_configs_with_its_chain() {
    let s = scratch("dry-run");
    let out = s.0.join("sweep").display().to_string();
    // Three TensorRT-LLM jobs: each has engine configs beside its script.
    let text = std::fs::read_to_string(workspace().join("sweeps/trtllm-wideep-packed.yaml")).expect("spec");
    let text = text.replace("  batch: 128\n", "  batch: [32, 64, 128]\n");
    assert!(text.contains("[32, 64, 128]"), "the example's GEN batch is where the test expects it");
    let spec_path = s.0.join("spec.yaml");
    std::fs::write(&spec_path, text).expect("spec");
    let spec = spec_path.to_str().expect("utf-8 path");
    let plan = sweep(&["plan", spec, "--format", "json"]);
    let plan: serde_json::Value = serde_json::from_str(&plan.stdout).expect("plan JSON");
    let names: Vec<&str> =
        plan["jobs"].as_array().expect("jobs").iter().map(|j| j["name"].as_str().expect("name")).collect();
    assert_eq!(names.len(), 3, "{names:?}");
    let run = sweep(&[
        "submit",
        spec,
        "-o",
        &out,
        "--dry-run",
        "--no-check",
        "--max-in-queue",
        "2",
        "--job",
        names[2],
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    // The third job is the second of chain 0: it waits for the first.
    assert!(run.stdout.contains(&format!("--dependency=afterany:<id of {}>", names[0])), "{}", run.stdout);
    assert_eq!(run.stdout.matches("==> job ").count(), 1, "only the job asked for: {}", run.stdout);
    snapshot!("submit-dry-run-one-job", normalise(&run.stdout, &s.0));
    // Each header gives its file's size (left out of the snapshot, as it holds build paths).
    let script = s.0.join(format!("sweep/jobs/{}/job.sbatch", names[2]));
    let size = std::fs::metadata(&script).expect("the script").len() as f64 / 1024.0;
    assert!(run.stdout.contains(&format!("job.sbatch ({size:.1} KiB) ---")), "{size:.1} KiB: {}", run.stdout);
    assert!(run.stderr.contains(&format!("dry run: {} jobs rendered", names.len())), "{}", run.stderr);

    // Every job, and the first of each chain depends on nothing.
    let all = sweep(&[
        "submit",
        spec,
        "-o",
        &format!("{out}-all"),
        "--dry-run",
        "--no-check",
        "--max-in-queue",
        "2",
    ]);
    assert_eq!(all.code, 0, "{}", all.stderr);
    let commands: Vec<&str> = all.stdout.lines().filter(|l| l.starts_with("$ ")).collect();
    assert_eq!(commands.len(), names.len(), "{}", all.stdout);
    assert!(!commands[0].contains("--dependency") && !commands[1].contains("--dependency"), "{commands:?}");
    assert!(commands[1].ends_with("# chain 1"), "{commands:?}");
}

#[test]
fn render_says_what_it_wrote_and_prints_every_file_when_asked() {
    let s = scratch("render-print");
    let out = s.0.join("sweep").display().to_string();
    let run = sweep(&["render", "sweeps/quickstart.yaml", "-o", &out, "--no-check"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout.trim(), out, "the folder on stdout, for scripts");
    let files = walk(&s.0.join("sweep"));
    let bytes: u64 = files.iter().map(|f| f.metadata().expect("metadata").len()).sum();
    assert!(
        run.stderr.contains(&format!("{} files, ", files.len())),
        "the summary counts what is there ({} files, {bytes} bytes): {}",
        files.len(),
        run.stderr
    );
    let printed =
        sweep(&["render", "sweeps/quickstart.yaml", "-o", &format!("{out}-print"), "--no-check", "--print"]);
    assert_eq!(printed.code, 0, "{}", printed.stderr);
    let jobs = std::fs::read_dir(s.0.join("sweep-print/jobs")).expect("jobs").count();
    assert_eq!(printed.stdout.matches("==> job ").count(), jobs, "{}", printed.stdout);
    assert_eq!(printed.stdout.matches("/job.local.sh (").count(), jobs, "each job's script, with its size");
    assert!(printed.stdout.contains("#!/bin/bash") || printed.stdout.contains("#!/usr/bin/env bash"));
}

#[test]
fn queue_limits_and_job_names_are_checked_before_anything_is_written() {
    let s = scratch("queue-usage");
    let out = s.0.join("sweep").display().to_string();
    let zero = sweep(&["submit", "sweeps/quickstart.yaml", "-o", &out, "--max-in-queue", "0"]);
    assert_eq!(zero.code, 2, "{}", zero.stderr);
    assert!(zero.stderr.contains("--max-in-queue"), "{}", zero.stderr);
    let unknown = sweep(&["submit", "sweeps/quickstart.yaml", "-o", &out, "--dry-run", "--job", "nope"]);
    assert_eq!(unknown.code, 2, "{}", unknown.stderr);
    assert!(
        unknown.stderr.contains("--job nope: the plan has no such job; its jobs are "),
        "{}",
        unknown.stderr
    );
    let waves = sweep(&["submit", "sweeps/quickstart.yaml", "-o", &out, "--waves"]);
    assert_eq!(waves.code, 2, "--waves needs --max-in-queue: {}", waves.stderr);
    let both =
        sweep(&["submit", "sweeps/quickstart.yaml", "-o", &out, "--sequential", "--max-in-queue", "2"]);
    assert_eq!(both.code, 2, "{}", both.stderr);
    assert!(!s.0.join("sweep").exists(), "nothing written");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("readable").flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// `engine.discovery: etcd` (Dynamo's default) needs `etcd` and `nats-server` where the jobs
/// run: the check names each one missing and the fix, and passes once they are there.
#[test]
fn check_names_the_services_a_dynamo_job_needs_that_are_missing() {
    let empty = scratch("no-services");
    let run = |path: &Path| {
        let output = Command::new(env!("CARGO_BIN_EXE_sweep"))
            .args(["check", "sweeps/dynamo-agg-dep8.yaml"])
            .current_dir(workspace())
            .env("PATH", path)
            .output()
            .expect("runs");
        (output.status.code(), String::from_utf8_lossy(&output.stderr).into_owned())
    };
    let (code, stderr) = run(&empty.0);
    assert_eq!(code, Some(12), "{stderr}");
    assert!(
        stderr.contains("`etcd` is not on PATH") && stderr.contains("`nats-server` is not on PATH"),
        "{stderr}"
    );
    assert!(stderr.contains("set `engine.discovery: file`"), "{stderr}");
    for program in ["etcd", "nats-server"] {
        let path = empty.0.join(program);
        std::fs::write(&path, "#!/bin/sh\n").expect("stand-in");
        let mut permissions = std::fs::metadata(&path).expect("meta").permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
        std::fs::set_permissions(&path, permissions).expect("chmod");
    }
    let (code, stderr) = run(&empty.0);
    assert_eq!(code, Some(0), "both there: {stderr}");
}

/// A panic is a bug: exit 1 (docs/exit-codes.md), with a request for a report, not Rust's 101.
#[test]
fn a_panic_exits_1_and_asks_for_a_bug_report() {
    let output = Command::new(env!("CARGO_BIN_EXE_sweep"))
        .args(["plan", "sweeps/quickstart.yaml"])
        .current_dir(workspace())
        .env("SWEEP_INTERNAL_TEST_PANIC", "1")
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("hit a bug") && stderr.contains("please report it"), "{stderr}");
}

#[test]
fn wait_refuses_an_interval_that_would_poll_without_a_pause() {
    for flag in ["--interval", "--max-interval"] {
        let run = sweep(&["wait", "sweeps", flag, "0"]);
        assert_eq!(run.code, 2, "{flag} 0: {}", run.stderr);
        assert!(run.stderr.contains("poll at most every 0.1 s"), "{}", run.stderr);
    }
}

/// `sweep explore` never runs a job the capacity estimate finds too large at every load: it is
/// a candidate marked infeasible, with the estimate's arithmetic, and exploring says so when
/// nothing else is left (here, before anything runs).
#[test]
fn explore_skips_jobs_whose_kv_cache_cannot_fit() {
    let dir = tempfile::tempdir().expect("tmp");
    let out = dir.path().join("explored");
    let run = sweep(&[
        "explore",
        "tests/fixtures/capacity/nothing-fits.yaml",
        "-o",
        out.to_str().expect("utf-8"),
        "--budget-share",
        "0.5",
        "--executor",
        "local",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let log: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("explore.json")).expect("log")).expect("json");
    let wave = &log["waves"][0];
    assert_eq!(wave["stop"], "every unmeasured candidate is infeasible (the capacity estimate)", "{wave:#}");
    for d in wave["decisions"].as_array().expect("decisions") {
        assert_eq!(d["choice"], "infeasible", "{d:#}");
        assert!(d["why"].as_str().is_some_and(|w| w.contains("KV-cache tokens")), "{d:#}");
    }
}
