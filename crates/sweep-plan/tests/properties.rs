//! Properties of expansion and layout over randomly generated specs. The point count is checked
//! against a brute-force enumeration written independently of the planner.

use std::collections::HashSet;

use proptest::prelude::*;
use proptest::sample::subsequence;
use sweep_plan::{plan, PlanOptions};

#[derive(Debug, Clone)]
struct Case {
    disagg: bool,
    gpus_per_node: u32,
    packed: bool,
    servers: Vec<u32>,
    tp: Vec<u32>,
    batch: Vec<u32>,
    mtp: Vec<u32>,
    isl: Vec<u32>,
    concurrency: Vec<u32>,
    /// Excluded (tp, batch) pairs of the serving role (`gen` or `agg`).
    excludes: Vec<(u32, u32)>,
}

fn list(values: &[u32], max: usize) -> impl Strategy<Value = Vec<u32>> {
    subsequence(values.to_vec(), 1..=max)
}

fn case() -> impl Strategy<Value = Case> {
    (
        any::<bool>(),
        prop::sample::select(vec![1u32, 2, 4, 8]),
        any::<bool>(),
        list(&[1, 2, 3, 4], 3),
        list(&[1, 2, 4, 8, 16], 3),
        list(&[1, 8, 32, 128, 512], 3),
        list(&[0, 1, 3], 2),
        list(&[128, 1024, 8192], 2),
        list(&[1, 4, 16, 64], 3),
        prop::collection::vec((0usize..3, 0usize..3), 0..3),
    )
        .prop_map(|(disagg, gpus_per_node, packed, servers, tp, batch, mtp, isl, concurrency, picks)| {
            // Excludes name values that exist, so that they really remove points.
            let excludes =
                picks.into_iter().map(|(t, b)| (tp[t % tp.len()], batch[b % batch.len()])).collect();
            Case { disagg, gpus_per_node, packed, servers, tp, batch, mtp, isl, concurrency, excludes }
        })
}

fn yaml_list(values: &[u32]) -> String {
    format!("[{}]", values.iter().map(u32::to_string).collect::<Vec<_>>().join(", "))
}

fn spec_text(case: &Case) -> String {
    let role = if case.disagg { "gen" } else { "agg" };
    let mut text = format!(
        "name: prop\nmodel: {{path: /m}}\nengine: {{kind: trtllm}}\ncluster:\n  gpus_per_node: {}\n  packing: {}\n",
        case.gpus_per_node,
        if case.packed { "packed" } else { "spread" }
    );
    text += &format!("mode: {}\n", if case.disagg { "disagg" } else { "agg" });
    if case.disagg {
        text += "ctx: {servers: 2, tp: 2, batch: 4}\n";
    }
    text += &format!(
        "{role}:\n  servers: {}\n  tp: {}\n  batch: {}\n  mtp: {}\n",
        yaml_list(&case.servers),
        yaml_list(&case.tp),
        yaml_list(&case.batch),
        yaml_list(&case.mtp)
    );
    text += &format!(
        "workload:\n  isl: {}\n  osl: 64\n  concurrency: {}\n  concurrency_per_gen_server: true\n",
        yaml_list(&case.isl),
        yaml_list(&case.concurrency)
    );
    if !case.excludes.is_empty() {
        text += "sweep:\n  exclude:\n";
        for (tp, batch) in &case.excludes {
            text += &format!("    - {{{role}.tp: {tp}, {role}.batch: {batch}}}\n");
        }
    }
    text
}

/// The number of points, by enumerating every combination by hand.
fn brute_force_count(case: &Case) -> usize {
    let mut count = 0;
    for _servers in &case.servers {
        for tp in &case.tp {
            for batch in &case.batch {
                for _mtp in &case.mtp {
                    if case.excludes.contains(&(*tp, *batch)) {
                        continue;
                    }
                    count += case.isl.len() * case.concurrency.len();
                }
            }
        }
    }
    count
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn expansion_layout_and_ids_hold_their_invariants(case in case()) {
        let text = spec_text(&case);
        let document = sweep_spec::load(&text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        let expected = brute_force_count(&case);
        let result = plan(&document.spec, &PlanOptions::default());
        if expected == 0 {
            let empty = matches!(result, Err(sweep_plan::PlanError::Empty { .. }));
            prop_assert!(empty, "an emptied space is an error");
            return Ok(());
        }
        let planned = result.map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;

        // Point count = product of axis lengths minus exclusions.
        prop_assert_eq!(planned.points.len(), expected);
        let space: usize = [case.servers.len(), case.tp.len(), case.batch.len(), case.mtp.len(), case.isl.len(), case.concurrency.len()]
            .iter().product();
        prop_assert_eq!(planned.stats.space, space as u128);
        prop_assert_eq!(planned.stats.excluded as usize, space - expected);

        // Ids are unique, and stable: planning again gives the same ids in the same order.
        let ids: HashSet<_> = planned.points.iter().map(|p| p.id).collect();
        prop_assert_eq!(ids.len(), planned.points.len());
        let job_ids: HashSet<_> = planned.jobs.iter().map(|j| j.id).collect();
        prop_assert_eq!(job_ids.len(), planned.jobs.len());
        let again = plan(&sweep_spec::load(&text).expect("loads").spec, &PlanOptions::default()).expect("plans");
        prop_assert_eq!(
            planned.points.iter().map(|p| p.id).collect::<Vec<_>>(),
            again.points.iter().map(|p| p.id).collect::<Vec<_>>()
        );

        // One job per deployment; its points are contiguous and differ only in workload.
        let mut covered = 0;
        for (j, job) in planned.jobs.iter().enumerate() {
            prop_assert_eq!(job.points.start, covered);
            covered = job.points.end;
            for point in &planned.points[job.points.clone()] {
                prop_assert_eq!(point.job as usize, j);
            }
        }
        prop_assert_eq!(covered, planned.points.len());
        let names: HashSet<_> = planned.jobs.iter().map(|j| j.name.clone()).collect();
        prop_assert_eq!(names.len(), planned.jobs.len(), "job directory names are unique");

        // Every server's GPUs lie inside its job's nodes, and no GPU is given twice.
        for job in &planned.jobs {
            let layout = &job.layout;
            let mut taken = HashSet::new();
            let mut working = 0u64;
            for server in layout.servers() {
                let world = job.role(server.role).expect("role").world_size();
                let devices: Vec<u32> = server.cuda_visible_devices.split(',').map(|d| d.parse().expect("index")).collect();
                prop_assert_eq!((devices.len() * server.nodes.len()) as u64, world, "a server gets exactly its world size");
                for &node in &server.nodes {
                    prop_assert!(node < layout.nodes);
                    for &gpu in &devices {
                        prop_assert!(gpu < layout.gpus_per_node);
                        prop_assert!(taken.insert((node, gpu)), "GPU {} of node {} given twice", gpu, node);
                    }
                }
                working += world;
            }
            prop_assert_eq!(working, u64::from(layout.gpus_working));
            prop_assert_eq!(u64::from(layout.gpus_allocated), u64::from(layout.nodes) * u64::from(layout.gpus_per_node));
            prop_assert!(layout.gpus_working <= layout.gpus_allocated);
            // Effective concurrency is the listed value times the serving role's servers.
            let serving = job.role(if case.disagg { sweep_spec::Role::Gen } else { sweep_spec::Role::Agg }).expect("role");
            for point in &planned.points[job.points.clone()] {
                prop_assert_eq!(point.effective_concurrency, u64::from(point.concurrency) * u64::from(serving.servers));
            }
        }
    }
}
