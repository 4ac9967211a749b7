//! The four worked cases of `shared/reference/layouts.md`, as the example sweeps in `sweeps/`.
//! Every number the reference gives is asserted here; the comment on each test quotes its case.

use std::path::Path;

use sweep_plan::{plan, Job, Plan, PlanOptions};
use sweep_spec::Role;

fn plan_example(file: &str) -> Plan {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sweeps").join(file);
    let text = std::fs::read_to_string(&path).expect("example exists");
    let document = sweep_spec::load(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
    plan(&document.spec, &PlanOptions::default()).unwrap_or_else(|e| panic!("{file}: {e}"))
}

fn only_job(plan: &Plan) -> &Job {
    assert_eq!(plan.jobs.len(), 1, "one deployment, one job");
    &plan.jobs[0]
}

fn effective(plan: &Plan, job: &Job) -> Vec<u64> {
    plan.points[job.points.clone()].iter().map(|p| p.effective_concurrency).collect()
}

#[test]
fn case_1_dynamo_wideep_disagg() {
    // ctx_num=12 gen_num=1 gen_tp=16 batch=256 attn_dp=true mtp=0 eplb=288, concurrency 4096 6144,
    // ISL 8150 / OSL 1024: CTX TP4 → 12 nodes; GEN DEP16 → 4 nodes; 16 nodes,
    // --ntasks=64 --ntasks-per-node=4 --segment=16; 64 GPUs;
    // ctx12_gen1_dep16_batch256_eplb288_mtp0; gen max_seq_len = ISL + OSL + 203 = 9377.
    let plan = plan_example("dynamo-wideep-disagg.yaml");
    let job = only_job(&plan);
    let layout = &job.layout;
    let nodes_of = |role| layout.roles.iter().find(|r| r.role == role).expect("role").nodes;
    assert_eq!(nodes_of(Role::Ctx), 12);
    assert_eq!(nodes_of(Role::Gen), 4);
    assert_eq!((layout.nodes, layout.ntasks, layout.ntasks_per_node), (16, 64, 4));
    assert_eq!(layout.segment, Some(16));
    assert_eq!((layout.gpus_allocated, layout.gpus_working), (64, 64));
    assert_eq!(job.name, "ctx12_gen1_dep16_batch256_eplb288_mtp0");
    assert_eq!(job.role(Role::Gen).expect("gen").max_seq_len, Some(9377));
    assert_eq!(effective(&plan, job), vec![4096, 6144]);
}

#[test]
fn case_2_dynamo_tep_with_four_gen_servers() {
    // ctx_num=1 gen_num=4 gen_tp=4 batch=8 attn_dp=false mtp=3, concurrency 1 2 4 8 12:
    // 5 nodes, --ntasks=20, 20 GPUs; effective concurrency 4 8 16 32 48.
    let plan = plan_example("dynamo-tep-multi-gen.yaml");
    let job = only_job(&plan);
    assert_eq!((job.layout.nodes, job.layout.ntasks, job.layout.gpus_allocated), (5, 20, 20));
    assert_eq!(job.name, "ctx1_gen4_tep4_batch8_eplb0_mtp3");
    assert_eq!(effective(&plan, job), vec![4, 8, 16, 32, 48]);
    let listed: Vec<u32> = plan.points.iter().map(|p| p.concurrency).collect();
    assert_eq!(listed, vec![1, 2, 4, 8, 12], "the listed values are kept beside the effective ones");
    // requests "10x" and warmup "2x" apply to the effective concurrency.
    assert_eq!((plan.points[4].requests, plan.points[4].warmup), (480, 96));
}

#[test]
fn case_3_dynamo_aggregated_dep8() {
    // max_batch=1024 mtp=0 ISL=8150: 2 nodes, --ntasks=8, 8 GPUs, max_num_tokens = 9344.
    let plan = plan_example("dynamo-agg-dep8.yaml");
    let job = only_job(&plan);
    assert_eq!((job.layout.nodes, job.layout.ntasks, job.layout.gpus_allocated), (2, 8, 8));
    assert_eq!(job.role(Role::Agg).expect("agg").max_num_tokens, Some(9344));
    assert_eq!(job.name, "agg1_dep8_batch1024_eplb0_mtp0");
    // Dynamo serves through its own frontend even for one server; it shares node 0.
    let frontend = job.layout.frontend.expect("Dynamo always has a frontend");
    assert_eq!((frontend.node, frontend.port), (0, 8333));
}

#[test]
fn case_4_trtllm_wideep_packed() {
    // ctx2_gen1_dep32_bs128_eplb288_mtp3, ISL 8192 / OSL 1024: CTX TP4 × 2 → 2 nodes,
    // GEN TP32 × 1 → 8 nodes; 10 nodes, --ntasks=40 --ntasks-per-node=4 --segment=10;
    // GEN_0 on nodes 0–7 (port 8000), CTX_0 on node 8, CTX_1 on node 9, disagg server on node 0
    // (port 8333).
    let plan = plan_example("trtllm-wideep-packed.yaml");
    let job = only_job(&plan);
    let layout = &job.layout;
    assert_eq!((layout.nodes, layout.ntasks, layout.ntasks_per_node, layout.segment), (10, 40, 4, Some(10)));
    assert_eq!(job.name, "ctx2_gen1_dep32_batch128_eplb288_mtp3");
    let servers = layout.servers();
    let gen0 = servers.iter().find(|s| s.role == Role::Gen && s.index == 0).expect("GEN_0");
    assert_eq!((gen0.nodes.clone(), gen0.port), ((0..8).collect::<Vec<u32>>(), 8000));
    assert_eq!((gen0.ntasks, gen0.ntasks_per_node), (32, 4));
    let ctx: Vec<_> = servers.iter().filter(|s| s.role == Role::Ctx).map(|s| s.nodes.clone()).collect();
    assert_eq!(ctx, vec![vec![8], vec![9]]);
    let frontend = layout.frontend.expect("disagg server");
    assert_eq!((frontend.node, frontend.port), (0, 8333));
}

/// `workload.repeats: 3`: each point three times in its job, the repetitions interleaved across
/// the job's points; the first repetition keeps the id the point has without repeats.
#[test]
fn repeats_are_interleaved_and_the_first_keeps_the_points_id() {
    let spec = |repeats: &str| {
        format!(
            "version: 1\nname: r\nmodel: {{path: /m}}\nengine: {{kind: mock}}\ncluster: {{gpus_per_node: 4}}\n\
             mode: agg\nagg: {{batch: 8}}\nworkload: {{isl: 64, osl: 8, concurrency: [1, 4]{repeats}}}\n"
        )
    };
    let planned = |text: &str| {
        let document = sweep_spec::load(text).expect("valid");
        plan(&document.spec, &PlanOptions::default()).expect("plans")
    };
    let once = planned(&spec(""));
    let thrice = planned(&spec(", repeats: 3"));
    let job = only_job(&thrice);
    let points = &thrice.points[job.points.clone()];
    let order: Vec<(u32, u32)> = points.iter().map(|p| (p.concurrency, p.repeat)).collect();
    assert_eq!(order, [(1, 0), (4, 0), (1, 1), (4, 1), (1, 2), (4, 2)]);
    let ids: std::collections::HashSet<_> = points.iter().map(|p| p.id).collect();
    assert_eq!(ids.len(), 6, "every repetition has an id of its own");
    let first: Vec<_> = points.iter().filter(|p| p.repeat == 0).map(|p| p.id).collect();
    let without: Vec<_> = once.points.iter().map(|p| p.id).collect();
    assert_eq!(first, without, "adding repeats to a sweep keeps what it measured");
    assert_eq!(job.name, only_job(&once).name);
    let error = sweep_spec::load(&spec(", repeats: 0")).expect_err("refused");
    assert_eq!(error.path.to_string(), "workload.repeats");
}

/// `workload.deployment_repeats: 3`: each configuration deployed three times as jobs of their
/// own, all first deployments before the second ones; the first keeps its job and point ids,
/// the others have their own and share the first's as their configuration.
#[test]
fn deployment_repeats_are_jobs_of_their_own_after_every_first_deployment() {
    let spec = |extra: &str| {
        format!(
            "version: 1\nname: r\nmodel: {{path: /m}}\nengine: {{kind: mock}}\ncluster: {{gpus_per_node: 4}}\n\
             mode: agg\nagg: {{batch: [4, 8]}}\nworkload: {{isl: 64, osl: 8, concurrency: [1, 4]{extra}}}\n"
        )
    };
    let planned = |text: &str| {
        let document = sweep_spec::load(text).expect("valid");
        plan(&document.spec, &PlanOptions::default()).expect("plans")
    };
    let once = planned(&spec(""));
    let thrice = planned(&spec(", repeats: 2, deployment_repeats: 3"));
    let names: Vec<&str> = thrice.jobs.iter().map(|j| j.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "agg1_tep1_batch4_eplb0_mtp0",
            "agg1_tep1_batch8_eplb0_mtp0",
            "agg1_tep1_batch4_eplb0_mtp0_d1",
            "agg1_tep1_batch8_eplb0_mtp0_d1",
            "agg1_tep1_batch4_eplb0_mtp0_d2",
            "agg1_tep1_batch8_eplb0_mtp0_d2",
        ]
    );
    let first: Vec<_> = thrice.jobs[..2].iter().map(|j| j.id).collect();
    assert_eq!(
        first,
        once.jobs.iter().map(|j| j.id).collect::<Vec<_>>(),
        "the first deployment keeps its id"
    );
    for (k, job) in thrice.jobs.iter().enumerate() {
        assert_eq!(job.deployment, (k / 2) as u32);
        assert_eq!(job.configuration, thrice.jobs[k % 2].id);
        let points = &thrice.points[job.points.clone()];
        assert_eq!(points.len(), 4, "2 loads × 2 repeats");
        assert!(points.iter().all(|p| p.job as usize == k), "points belong to their own job");
    }
    let jobs: std::collections::HashSet<_> = thrice.jobs.iter().map(|j| j.id).collect();
    let points: std::collections::HashSet<_> = thrice.points.iter().map(|p| p.id).collect();
    assert_eq!((jobs.len(), points.len()), (6, 24), "every deployment and point has an id of its own");
    let error = sweep_spec::load(&spec(", deployment_repeats: 0")).expect_err("refused");
    assert_eq!(error.path.to_string(), "workload.deployment_repeats");
}
