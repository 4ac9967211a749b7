//! Rendered sbatch scripts: snapshots of the example sweeps, `bash -n` on every script, and hostile
//! values run through a real shell to prove they arrive literally and execute nothing.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use sweep_plan::{plan, PlanOptions};
use sweep_templates::{Executor, JobContext, JobPaths, RenderedJob, Templates};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("workspace")
}

fn paths(sweep_dir: &str, job: &str) -> JobPaths {
    JobPaths {
        sweep_dir: sweep_dir.to_owned(),
        job_dir: format!("{sweep_dir}/jobs/{job}"),
        runner: "/opt/sweep/bin/sweep-runner".to_owned(),
        bin_dir: "/opt/sweep/bin".to_owned(),
    }
}

/// Every job of a spec, rendered.
fn render_spec(text: &str, sweep_dir: &str) -> Vec<(String, RenderedJob)> {
    let document = sweep_spec::load(text).expect("valid spec");
    let planned = plan(&document.spec, &PlanOptions::default()).expect("plans");
    let templates = Templates::new(None, &document.spec.engine.commands).expect("built-in templates");
    planned
        .jobs
        .iter()
        .map(|job| {
            let context = JobContext::new(&document.spec, &planned, job, paths(sweep_dir, &job.name));
            (job.name.clone(), templates.render_job(context, Executor::Slurm).expect("renders"))
        })
        .collect()
}

fn bash_n(script: &str) {
    let dir = tempdir();
    let file = dir.0.join("job.sbatch");
    std::fs::write(&file, script).expect("write");
    let output = Command::new("bash").arg("-n").arg(&file).output().expect("bash runs");
    assert!(output.status.success(), "bash -n: {}\n{script}", String::from_utf8_lossy(&output.stderr));
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tempdir() -> TempDir {
    static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("sweep-templates-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    TempDir(dir)
}

#[test]
fn the_quickstart_renders_one_script_per_job_and_each_parses() {
    let text = std::fs::read_to_string(workspace().join("sweeps/quickstart.yaml")).expect("quickstart");
    let jobs = render_spec(&text, "/shared/sweeps/quickstart");
    assert_eq!(jobs.len(), 10);
    for (_, job) in &jobs {
        bash_n(&job.script);
        assert!(job.script.contains("#SBATCH --nodes="));
    }
    let first =
        |mode: &str| jobs.iter().find(|(name, _)| name.starts_with(mode)).expect("job").1.script.clone();
    insta::with_settings!({ prepend_module_to_snapshot => false, omit_expression => true }, {
        insta::assert_snapshot!("quickstart-agg", first("agg"));
        insta::assert_snapshot!("quickstart-disagg", first("ctx"));
    });
}

#[test]
fn sbatch_lines_come_from_the_layout_and_cluster_settings() {
    let text = std::fs::read_to_string(workspace().join("sweeps/quickstart.yaml"))
        .expect("quickstart")
        .replace("  packing: packed\n", "  packing: packed\n  partition: gpu\n  account: perf\n  qos: high\n  time_limit: \"01:30:00\"\n  segment: true\n  sbatch: [\"--exclusive\", \"--constraint=h100\"]\n  container: {image: \"nvcr.io/nvidia/mock:1\", mounts: [\"/models:/models\"]}\n");
    let jobs = render_spec(&text, "/shared/q");
    let (_, disagg) = jobs.iter().find(|(name, _)| name.starts_with("ctx")).expect("disagg job");
    for line in [
        "#SBATCH --job-name=quickstart.ctx1_gen1_tep1_batch8_eplb0_mtp0",
        "#SBATCH --nodes=2",
        "#SBATCH --ntasks=2",
        "#SBATCH --ntasks-per-node=1",
        "#SBATCH --gpus-per-node=4",
        "#SBATCH --segment=2",
        "#SBATCH --time=01:30:00",
        "#SBATCH --partition=gpu",
        "#SBATCH --account=perf",
        "#SBATCH --qos=high",
        "#SBATCH --output=/shared/q/jobs/ctx1_gen1_tep1_batch8_eplb0_mtp0/slurm-%j.out",
        "#SBATCH --exclusive",
        "#SBATCH --constraint=h100",
        "--container-image=nvcr.io/nvidia/mock:1 --container-mounts=/models:/models,/shared/q:/shared/q,/opt/sweep/bin:/opt/sweep/bin --no-container-mount-home",
        "--export=ALL,DISAGG_SERVING_TYPE=GEN",
        "--export=ALL,DISAGG_SERVING_TYPE=CTX",
        "--export=ALL,DISAGG_SERVING_TYPE=DISAGG_SERVER",
        "--export=ALL,DISAGG_SERVING_TYPE=BENCHMARK",
    ] {
        assert!(disagg.script.contains(line), "missing `{line}` in\n{}", disagg.script);
    }
    bash_n(&disagg.script);
}

/// Values that would run commands if they reached a shell unquoted.
const HOSTILE: &[&str] = &[
    "$(touch PWNED_subst)",
    "`touch PWNED_backtick`",
    "x; touch PWNED_semicolon",
    "it's \"quoted\" 'twice'",
    "line one\ntouch PWNED_newline",
    "a|b&c>d<e*?[x]~{y,z}#!",
];

/// Runs a rendered script with a fake `srun` (drops its options, runs the command) and a fake
/// `scontrol`, and a fake runner that records its argv; returns each runner call's argv.
fn execute(script: &str, dir: &Path) -> Vec<Vec<String>> {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).expect("bin");
    let fake = |name: &str, body: &str| {
        let path = bin.join(name);
        std::fs::write(&path, format!("#!/bin/bash\n{body}\n")).expect("write fake");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    };
    fake("srun", "while [[ \"$1\" == --* ]]; do shift; done\nexec \"$@\"");
    fake("scontrol", "printf 'n%s\\n' 1 2 3 4");
    fake("sweep-runner", "printf '%s\\0' \"$@\" > \"$ARGV_DIR/$(date +%s%N).$$\"");
    let argv_dir = dir.join("argv");
    std::fs::create_dir_all(&argv_dir).expect("argv dir");
    let script =
        script.replace("/opt/sweep/bin/sweep-runner", &bin.join("sweep-runner").display().to_string());
    let file = dir.join("job.sbatch");
    std::fs::write(&file, script).expect("script");
    let status = Command::new("bash")
        .arg(&file)
        .current_dir(dir)
        .env("PATH", format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default()))
        .env("SLURM_JOB_NODELIST", "n[1-4]")
        .env("ARGV_DIR", &argv_dir)
        .status()
        .expect("bash runs");
    assert!(status.success());
    let mut calls: Vec<(String, Vec<String>)> = std::fs::read_dir(&argv_dir)
        .expect("argv files")
        .map(|e| {
            let path = e.expect("entry").path();
            let bytes = std::fs::read(&path).expect("argv");
            let args = bytes
                .split(|&b| b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            (path.display().to_string(), args)
        })
        .collect();
    calls.sort();
    calls.into_iter().map(|(_, args)| args).collect()
}

#[test]
fn hostile_values_reach_the_engine_literally_and_run_nothing() {
    for (i, hostile) in HOSTILE.iter().enumerate() {
        let dir = tempdir();
        let sweep_dir = dir.0.join(format!("sweep dir {i} 'x'"));
        let spec = format!(
            "name: hostile\nmodel: {{path: /m, served_name: {}}}\nengine: {{kind: mock}}\ncluster: {{gpus_per_node: 4}}\n\
             mode: agg\nagg:\n  batch: 8\n  engine_args: {{decode_base_ms: {}}}\nworkload: {{isl: 8, osl: 8, concurrency: 1}}\n",
            serde_json::to_string(hostile).expect("json"),
            serde_json::to_string(hostile).expect("json"),
        );
        let jobs = render_spec(&spec, &sweep_dir.display().to_string());
        let calls = execute(&jobs[0].1.script, &dir.0);
        let serve = calls
            .iter()
            .find(|argv| argv.first().map(String::as_str) == Some("serve"))
            .expect("a serve call");
        let command = &serve[serve.iter().position(|a| a == "--").expect("--") + 1..];
        let after = |flag: &str| command.iter().position(|a| a == flag).map(|p| command[p + 1].clone());
        assert_eq!(after("--model").as_deref(), Some(*hostile), "{command:?}");
        assert_eq!(after("--decode-base-ms").as_deref(), Some(*hostile), "{command:?}");
        assert!(serve.contains(&sweep_dir.join("jobs").join(&jobs[0].0).display().to_string()), "{serve:?}");
        let pwned: Vec<_> = std::fs::read_dir(&dir.0)
            .expect("dir")
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with("PWNED"))
            .collect();
        assert!(pwned.is_empty(), "{hostile:?} executed something: {pwned:?}");
    }
}

#[test]
fn a_line_break_cannot_escape_an_sbatch_comment() {
    let document = sweep_spec::load(
        "name: q\nmodel: {path: /m}\nengine: {kind: mock}\ncluster: {gpus_per_node: 4}\nmode: agg\nagg: {batch: 8}\n\
         workload: {isl: 8, osl: 8, concurrency: 1}\n",
    )
    .expect("valid");
    let planned = plan(&document.spec, &PlanOptions::default()).expect("plans");
    let templates = Templates::new(None, &document.spec.engine.commands).expect("templates");
    let mut context = JobContext::new(&document.spec, &planned, &planned.jobs[0], paths("/s", "j"));
    context.slurm.partition = Some("gpu\ntouch PWNED".to_owned());
    let error = templates.render_job(context, Executor::Slurm).expect_err("refused");
    assert!(error.to_string().contains("line break"), "{error}");
}

#[test]
fn custom_engines_render_the_spec_commands_with_quoting() {
    let spec = "name: custom\nmodel: {path: /m}\nengine:\n  kind: custom\n  commands:\n    ctx: \"my-server --port {{ server.port }} --model {{ job.model.path }} --tp {{ role.tp }}\"\n    gen: \"my-server --port {{ server.port }} --batch {{ role.batch }}\"\n    frontend: \"my-router --port {{ frontend.port }}\"\ncluster: {gpus_per_node: 4}\nmode: disagg\nctx: {batch: 1}\ngen: {batch: 8, tp: 2}\nworkload: {isl: 8, osl: 8, concurrency: 1}\n";
    let jobs = render_spec(spec, "/s");
    let dir = tempdir();
    let calls = execute(&jobs[0].1.script, &dir.0);
    let commands: BTreeMap<String, Vec<String>> = calls
        .iter()
        .filter(|argv| argv[0] == "serve")
        .map(|argv| {
            let role = argv[argv.iter().position(|a| a == "--role").expect("role") + 1].clone();
            (role, argv[argv.iter().position(|a| a == "--").expect("--") + 1..].to_vec())
        })
        .collect();
    assert_eq!(commands["GEN"], ["my-server", "--port", "8000", "--batch", "8"]);
    assert_eq!(commands["CTX"], ["my-server", "--port", "8001", "--model", "/m", "--tp", "1"]);
    assert_eq!(commands["DISAGG_SERVER"], ["my-router", "--port", "8333"]);
    assert!(calls.iter().any(|argv| argv[0] == "benchmark"));
}

#[test]
fn user_templates_override_the_built_ins_and_typos_are_errors() {
    let dir = tempdir();
    std::fs::create_dir_all(dir.0.join("engines/mock")).expect("dirs");
    std::fs::write(dir.0.join("engines/mock/command.sh.j2"), "my-mock --port {{ server.port }}")
        .expect("write");
    let document = sweep_spec::load(
        "name: q\nmodel: {path: /m}\nengine: {kind: mock}\ncluster: {gpus_per_node: 4}\nmode: agg\nagg: {batch: 8}\nworkload: {isl: 8, osl: 8, concurrency: 1}\n",
    )
    .expect("valid");
    let planned = plan(&document.spec, &PlanOptions::default()).expect("plans");
    let templates = Templates::new(Some(&dir.0), &document.spec.engine.commands).expect("templates");
    let context = JobContext::new(&document.spec, &planned, &planned.jobs[0], paths("/s", "j"));
    let rendered = templates.render_job(context.clone(), Executor::Slurm).expect("renders");
    assert!(rendered.script.contains("-- my-mock --port 8000 &"), "{}", rendered.script);

    std::fs::write(dir.0.join("engines/mock/command.sh.j2"), "my-mock --port {{ server.prot }}")
        .expect("write");
    let templates = Templates::new(Some(&dir.0), &document.spec.engine.commands).expect("templates");
    let error = templates.render_job(context, Executor::Slurm).expect_err("undefined variable");
    assert!(error.to_string().contains("engines/mock/command.sh.j2"), "{error}");
}

#[test]
fn a_custom_engine_without_a_frontend_command_is_an_error_not_an_empty_step() {
    let spec = "name: nofront\nmodel: {path: /m}\nengine:\n  kind: custom\n  commands: {ctx: \"a\", gen: \"b\"}\ncluster: {gpus_per_node: 4}\nmode: disagg\nctx: {batch: 1}\ngen: {batch: 1}\nworkload: {isl: 8, osl: 8, concurrency: 1}\n";
    let document = sweep_spec::load(spec).expect("valid");
    let planned = plan(&document.spec, &PlanOptions::default()).expect("plans");
    let templates = Templates::new(None, &document.spec.engine.commands).expect("templates");
    let context = JobContext::new(&document.spec, &planned, &planned.jobs[0], paths("/s", "j"));
    let error = templates.render_job(context, Executor::Slurm).expect_err("no frontend command");
    assert!(error.to_string().contains("engine.commands.frontend"), "{error}");
}

fn example(name: &str) -> String {
    std::fs::read_to_string(workspace().join("sweeps").join(format!("{name}.yaml"))).expect("example")
}

fn config(job: &RenderedJob, role: &str) -> serde_yaml::Value {
    let (_, text) =
        job.files.iter().find(|(path, _)| path == &format!("configs/{role}.yaml")).expect("config");
    // serde_yaml refuses duplicate keys: an engine_args key never appears twice.
    serde_yaml::from_str(text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

#[test]
fn tensorrt_llm_jobs_get_their_launch_commands_and_engine_configs() {
    let jobs = render_spec(&example("trtllm-wideep-packed"), "/shared/w");
    let (_, job) = &jobs[0];
    bash_n(&job.script);
    assert!(job.script.contains("trtllm-llmapi-launch trtllm-serve /models/DeepSeek-R1-FP4 --host 0.0.0.0 --port @SWEEP_PORT@ --backend pytorch --extra_llm_api_options /shared/w/jobs/ctx2_gen1_dep32_batch128_eplb288_mtp3/configs/gen.yaml"), "{}", job.script);
    assert!(job.script.contains(
        "with-workers --job-dir /shared/w/jobs/ctx2_gen1_dep32_batch128_eplb288_mtp3 --format trtllm-disagg"
    ));
    let gen = config(job, "gen");
    assert_eq!(gen["tensor_parallel_size"], 32);
    assert_eq!(gen["moe_expert_parallel_size"], 32);
    assert_eq!(gen["enable_attention_dp"], true);
    assert_eq!(gen["max_batch_size"], 128);
    assert_eq!(gen["moe_config"]["backend"], "WIDEEP");
    assert_eq!(gen["moe_config"]["load_balancer"]["num_slots"], 288);
    assert_eq!(gen["speculative_config"]["decoding_type"], "MTP");
    assert_eq!(gen["speculative_config"]["num_nextn_predict_layers"], 3);
    let sizes = gen["cuda_graph_config"]["batch_sizes"].as_sequence().expect("batch sizes").clone();
    assert_eq!(sizes.first().and_then(serde_yaml::Value::as_u64), Some(1));
    assert_eq!(sizes.last().and_then(serde_yaml::Value::as_u64), Some(128));
    assert_eq!(gen["cache_transceiver_config"]["backend"], "DEFAULT");
    let ctx = config(job, "ctx");
    assert_eq!((ctx["tensor_parallel_size"].as_u64(), ctx["max_batch_size"].as_u64()), (Some(4), Some(1)));
    assert_eq!(ctx["disable_overlap_scheduler"], true);
    assert!(ctx.get("speculative_config").is_none() && ctx.get("cuda_graph_config").is_none());
    insta::with_settings!({ prepend_module_to_snapshot => false, omit_expression => true }, {
        insta::assert_snapshot!("trtllm-disagg", job.script);
        insta::assert_snapshot!("trtllm-gen-config", job.files.iter().find(|(p, _)| p == "configs/gen.yaml").expect("gen").1);
    });

    // A role's engine_args replace generated keys and add new ones, each once.
    let text = example("trtllm-wideep-packed").replace(
        "  eplb: 288\n",
        "  eplb: 288\n  engine_args: {max_batch_size: 64, kv_cache_config: {dtype: fp8, free_gpu_memory_fraction: 0.8}}\n",
    );
    let jobs = render_spec(&text, "/shared/w");
    let gen = config(&jobs[0].1, "gen");
    assert_eq!(gen["max_batch_size"], 64);
    assert_eq!(gen["kv_cache_config"]["dtype"], "fp8");
}

#[test]
fn dynamo_sglang_and_vllm_render_or_say_why_not() {
    for name in ["dynamo-wideep-disagg", "dynamo-tep-multi-gen", "dynamo-agg-dep8"] {
        let jobs = render_spec(&example(name), "/shared/d");
        insta::with_settings!({ prepend_module_to_snapshot => false, omit_expression => true }, {
            insta::assert_snapshot!(name, jobs[0].1.script);
        });
        for (job_name, job) in jobs {
            bash_n(&job.script);
            assert!(job.script.contains("python3 -m dynamo.trtllm"), "{job_name}");
            assert!(
                job.script.contains("python3 -m dynamo.frontend"),
                "{job_name}: Dynamo always has its frontend"
            );
            assert!(job.script.contains("ETCD_ENDPOINTS=http://@SWEEP_FRONTEND_HOST@:2379"), "{job_name}");
            assert!(job.files.iter().any(|(p, _)| p.starts_with("configs/")), "{job_name}");
        }
    }
    let sglang = "name: s\nmodel: {path: /m, served_name: m}\nengine: {kind: sglang}\ncluster: {gpus_per_node: 4}\n\
                  mode: [agg, disagg]\nagg: {tp: 8, parallel: dep, batch: 16, mtp: 2}\nctx: {tp: 4, batch: 4}\ngen: {tp: 4, batch: 32}\n\
                  workload: {isl: 8, osl: 8, concurrency: 1}\n";
    let jobs = render_spec(sglang, "/shared/s");
    let (_, agg) = jobs.iter().find(|(n, _)| n.starts_with("agg")).expect("agg");
    bash_n(&agg.script);
    assert!(
        agg.script
            .contains("--tp-size 8 --dp-size 8 --enable-dp-attention --ep-size 8 --max-running-requests 128"),
        "{}",
        agg.script
    );
    assert!(agg
        .script
        .contains("--nnodes 2 --node-rank @SWEEP_NODE_RANK@ --dist-init-addr @SWEEP_HEAD@:9000"));
    assert!(agg.script.contains("--speculative-algorithm EAGLE --speculative-num-steps 2"));
    let (_, disagg) = jobs.iter().find(|(n, _)| n.starts_with("ctx")).expect("disagg");
    bash_n(&disagg.script);
    assert!(
        disagg.script.contains("--disaggregation-mode prefill")
            && disagg.script.contains("--disaggregation-mode decode")
    );
    assert!(disagg
        .script
        .contains("--format router -- python3 -m sglang_router.launch_router --pd-disaggregation"));

    let vllm =
        "name: v\nmodel: {path: /m, served_name: m}\nengine: {kind: vllm}\ncluster: {gpus_per_node: 4}\n\
                mode: agg\nagg: {tp: 4, batch: 16, mtp: 2}\nworkload: {isl: 8, osl: 8, concurrency: 1}\n";
    let jobs = render_spec(vllm, "/shared/v");
    bash_n(&jobs[0].1.script);
    assert!(jobs[0].1.script.contains("vllm serve /m --served-model-name m --host 0.0.0.0 --port @SWEEP_PORT@ --tensor-parallel-size 4 --max-num-seqs 16 --speculative-config '{\"method\":\"deepseek_mtp\",\"num_speculative_tokens\":2}'"), "{}", jobs[0].1.script);
    // JSON in an argument stays one argument: bash would brace-expand `{a,b}` left unquoted.
    let dir = tempdir();
    let calls = execute(&jobs[0].1.script, &dir.0);
    let serve = calls.iter().find(|argv| argv.first().is_some_and(|a| a == "serve")).expect("serve call");
    assert!(
        serve.iter().any(|a| a == r#"{"method":"deepseek_mtp","num_speculative_tokens":2}"#),
        "{serve:?}"
    );
    // vLLM disaggregated: prefill/decode servers with NixlConnector behind vllm-router.
    let jobs = render_spec(
        &vllm.replace(
            "mode: agg\nagg: {tp: 4, batch: 16, mtp: 2}",
            "mode: disagg\nctx: {servers: 2, tp: 1, batch: 4}\ngen: {tp: 1, batch: 4}",
        ),
        "/shared/v",
    );
    let script = &jobs[0].1.script;
    bash_n(script);
    assert_eq!(
        script
            .matches(r#"--kv-transfer-config '{"kv_connector":"NixlConnector","kv_role":"kv_both"}'"#)
            .count(),
        3,
        "{script}"
    );
    assert!(script.contains("--format router -- vllm-router --host 0.0.0.0 --port @SWEEP_PORT@ --vllm-pd-disaggregation --worker-startup-timeout-secs 1800 --worker-startup-check-interval 1"), "{script}");
}

/// Engine arguments by type, per engine: booleans as bare or negative flags (or nothing), lists
/// and maps as one word of JSON, keys and values quoted.
#[test]
fn engine_arguments_render_by_each_engines_rules() {
    let args = "engine_args: {enforce_eager: true, enable_prefix_caching: false, max_model_len: 2048, \
                kv_transfer_config: {kv_connector: SharedStorageConnector, kv_role: kv_both}, \
                ranks: [1, 2], note: \"it's $HOME\"}";
    let mut commands = String::new();
    for engine in
        ["vllm", "dynamo, backend: mocker, discovery: file", "dynamo, backend: vllm", "sglang", "mock"]
    {
        let spec = format!(
            "name: e\nmodel: {{path: /m, served_name: m}}\nengine: {{kind: {engine}}}\ncluster: {{gpus_per_node: 4}}\n\
             mode: agg\nagg: {{tp: 1, batch: 8, {args}}}\nworkload: {{isl: 8, osl: 8, concurrency: 1}}\n"
        );
        let jobs = render_spec(&spec, "/shared/e");
        let job = &jobs[0].1;
        bash_n(&job.script);
        commands.push_str(&format!("# kind: {engine}\n"));
        for (step, command) in &job.commands {
            commands.push_str(&format!("{step}: {command}\n"));
        }
        // What the engine receives: each option one argument, values literal.
        let dir = tempdir();
        let calls = execute(&job.script, &dir.0);
        let argv =
            calls.iter().find(|argv| argv.iter().any(|a| a == "--max-model-len")).expect("the server's call");
        let at = |flag: &str| argv.iter().position(|a| a == flag);
        assert!(at("--enforce-eager").is_some(), "{engine}: {argv:?}");
        assert!(!argv.iter().any(|a| a == "True" || a == "true"), "{engine}: {argv:?}");
        let config = &argv[at("--kv-transfer-config").expect("JSON option") + 1];
        assert_eq!(config, r#"{"kv_connector":"SharedStorageConnector","kv_role":"kv_both"}"#);
        assert_eq!(argv[at("--note").expect("note") + 1], "it's $HOME");
        if engine.starts_with("dynamo") {
            let plane = &argv[at("--discovery-backend").expect("its own argument") + 1];
            assert!(plane == "file" || plane == "etcd", "{argv:?}");
        }
        let negative = at("--no-enable-prefix-caching").is_some();
        assert_eq!(
            negative,
            engine.starts_with("vllm") || engine.starts_with("dynamo"),
            "{engine}: {argv:?}"
        );
    }
    insta::with_settings!({ prepend_module_to_snapshot => false, omit_expression => true }, {
        insta::assert_snapshot!("engine-arguments", commands);
    });
    // `null` says neither a flag nor a value: refused, naming the key.
    let spec = "name: e\nmodel: {path: /m}\nengine: {kind: vllm}\ncluster: {gpus_per_node: 4}\nmode: agg\n\
                agg: {tp: 1, batch: 8, engine_args: {enforce_eager: null}}\nworkload: {isl: 8, osl: 8, concurrency: 1}\n";
    let document = sweep_spec::load(spec).expect("valid");
    let planned = plan(&document.spec, &PlanOptions::default()).expect("plans");
    let templates = Templates::new(None, &document.spec.engine.commands).expect("templates");
    let context = JobContext::new(&document.spec, &planned, &planned.jobs[0], paths("/shared/e", "j"));
    let error = format!("{:#}", templates.render_job(context, Executor::Slurm).expect_err("refused"));
    assert!(error.contains("engine_args `enforce_eager` is null"), "{error}");
}

/// A vLLM server over two nodes: TP with vLLM's multi-node flags, DEP as data-parallel ranks per
/// node, the second node headless.
#[test]
fn vllm_servers_over_several_nodes_use_its_multi_node_flags() {
    let spec = "name: v\nmodel: {path: /m, served_name: m}\nengine: {kind: vllm}\ncluster: {gpus_per_node: 4}\n\
                mode: agg\nagg: {tp: 8, parallel: [tep, dep], batch: 16}\nworkload: {isl: 8, osl: 8, concurrency: 1}\n";
    let jobs = render_spec(spec, "/shared/v");
    let command = |parallel: &str| {
        let (_, job) = jobs.iter().find(|(n, _)| n.contains(parallel)).expect("job");
        bash_n(&job.script);
        job.commands[0].1.clone()
    };
    let tep = command("tep8");
    assert!(tep.contains("--tensor-parallel-size 8 --nnodes 2 --node-rank @SWEEP_NODE_RANK@ --master-addr @SWEEP_HEAD@ --master-port 9000 @SWEEP_HEADLESS@"), "{tep}");
    let dep = command("dep8");
    assert!(dep.contains("--data-parallel-size 8 --tensor-parallel-size 1 --enable-expert-parallel --data-parallel-size-local 4 --data-parallel-start-rank '@SWEEP_NODE_RANK*4@' --data-parallel-address @SWEEP_HEAD@ --data-parallel-rpc-port 9000 @SWEEP_HEADLESS@"), "{dep}");
}
