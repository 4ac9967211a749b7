//! Host-list expansion against SLURM's own: `scontrol show hostnames` on the development cluster
//! (`scripts/slurm-dev-cluster.sh start`) is the oracle for many generated lists.

use std::process::Command;

use proptest::prelude::*;

/// SLURM's expansion, or `None` when it calls the list invalid (it says so on stderr and still
/// exits 0).
fn scontrol(list: &str) -> Option<Vec<String>> {
    let output = Command::new("scontrol").args(["show", "hostnames", list]).output().expect(
        "scontrol runs: start the development cluster with `scripts/slurm-dev-cluster.sh start` \
         (scripts/test.sh does)",
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() || stderr.contains("Invalid hostlist") {
        return None;
    }
    Some(String::from_utf8_lossy(&output.stdout).lines().map(str::to_owned).collect())
}

/// One host expression: a prefix, then brackets of numbers and ranges, some zero-padded.
fn host_expression() -> impl Strategy<Value = String> {
    let number = (0u32..40, 1usize..4).prop_map(|(n, width)| format!("{n:0width$}"));
    let range = (0u32..30, 0u32..8, 1usize..4)
        .prop_map(|(low, span, width)| format!("{low:0width$}-{:0width$}", low + span));
    let part = prop_oneof![number, range];
    let bracket = prop::collection::vec(part, 1..4).prop_map(|parts| format!("[{}]", parts.join(",")));
    (
        prop::sample::select(vec!["n", "gpu", "rack", "node-"]),
        prop::option::of(bracket),
        prop::option::of("[a-z]{1,3}"),
    )
        .prop_map(|(prefix, bracket, tail)| {
            format!("{prefix}{}{}", bracket.unwrap_or_else(|| "7".into()), tail.unwrap_or_default())
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(150))]

    #[test]
    fn expansion_matches_scontrol(items in prop::collection::vec(host_expression(), 1..4)) {
        let list = items.join(",");
        let ours = sweep_slurm::hostlist::expand(&list).ok();
        prop_assert_eq!(&ours, &scontrol(&list), "{}", list);
    }
}

#[test]
fn worked_examples_match_scontrol() {
    for list in
        ["n[01-04,07],gpu[1-2]", "n[8-10]", "n[1-4]", "rack[1-2]-node[01-02]", "a,b,c", "n[1,1]", "n[1-002]"]
    {
        assert_eq!(sweep_slurm::hostlist::expand(list).ok(), scontrol(list), "{list}");
    }
    for refused in ["n[1-2]a", "a[1]-b", "n[3-1]", "n[]"] {
        assert_eq!(scontrol(refused), None, "SLURM accepts {refused}");
        assert!(sweep_slurm::hostlist::expand(refused).is_err(), "{refused}");
    }
}
