//! Property-based fuzzing of every reader of the sweep folder: each file of the format-1
//! fixture (and its rewrite in today's format), truncated, with bytes flipped, inserted or
//! removed, must read into its type or fail with a typed error that names the file — never
//! panic, never hang. `cargo test --release -p sweep-folder -- --ignored fuzz` runs 100,000
//! cases per reader; the test suite runs 2,000.

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde::de::DeserializeOwned;
use sweep_folder::job::JobContext;
use sweep_folder::manifest::Manifest;
use sweep_folder::metadata::Metadata;
use sweep_folder::plan::PlanFile;
use sweep_folder::{file, BenchmarkStatus, FolderError, PointStatus, Registration, ServerStatus};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/sweep-folder-format-1")
}

/// A file of the fixture's first job folder (`rel` under it), or of the sweep folder.
fn sample(rel: &str) -> (PathBuf, Vec<u8>) {
    let sweep = fixture();
    let path = if rel.contains('/') || rel == "job.json" || rel == "metadata.json" {
        let manifest: Manifest = file::read(&sweep.join("manifest.json")).expect("the fixture's manifest");
        let job = sweep.join(&manifest.jobs[0].dir);
        if let Some(point_file) = rel.strip_prefix("points/") {
            let point =
                std::fs::read_dir(job.join("points")).expect("points").flatten().next().expect("a point");
            point.path().join(point_file)
        } else {
            job.join(rel)
        }
    } else {
        sweep.join(rel)
    };
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (path, bytes)
}

#[derive(Debug, Clone)]
enum Mutation {
    Truncate(usize),
    Flip(usize, u8),
    Insert(usize, Vec<u8>),
    Remove(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), any::<u8>()).prop_map(|(at, b)| Mutation::Flip(at, b)),
        (
            any::<usize>(),
            prop::collection::vec(
                prop_oneof![Just(b'"'), Just(b'{'), Just(b'}'), Just(b','), Just(b'9'), any::<u8>()],
                1..8
            )
        )
            .prop_map(|(at, bytes)| Mutation::Insert(at, bytes)),
        (any::<usize>(), 1usize..64).prop_map(|(at, n)| Mutation::Remove(at, n)),
    ]
}

fn apply(bytes: &[u8], mutations: &[Mutation]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    for m in mutations {
        let len = out.len().max(1);
        match m {
            Mutation::Truncate(at) => out.truncate(at % len),
            Mutation::Flip(at, b) if !out.is_empty() => out[at % len] ^= b | 1,
            Mutation::Flip(..) => {}
            Mutation::Insert(at, bytes) => {
                let at = at % (out.len() + 1);
                out.splice(at..at, bytes.iter().copied());
            }
            Mutation::Remove(at, n) if !out.is_empty() => {
                let at = at % out.len();
                let end = (at + n).min(out.len());
                out.drain(at..end);
            }
            Mutation::Remove(..) => {}
        }
    }
    out
}

fn fuzz<T: DeserializeOwned>(rel: &str, cases: u32) {
    let (path, bytes) = sample(rel);
    // The original reads: the mutations start from a valid file.
    file::parse::<T>(&path, &bytes).unwrap_or_else(|e| panic!("the sample must read: {e}"));
    let refused = std::cell::Cell::new(0u32);
    let mut runner = TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() });
    runner
        .run(&prop::collection::vec(mutation(), 1..4), |mutations| {
            let mutated = apply(&bytes, &mutations);
            match file::parse::<T>(&path, &mutated) {
                Ok(_) => {}
                Err(error @ (FolderError::Parse { .. } | FolderError::Newer { .. })) => {
                    refused.set(refused.get() + 1);
                    prop_assert_eq!(error.path(), path.as_path());
                    prop_assert!(error.to_string().contains(&*path.to_string_lossy()));
                }
                Err(other) => prop_assert!(false, "not a parse error: {other:?}"),
            }
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{rel}: {e}"));
    // The mutations reach the parser: most mutated files are refused (a flipped byte inside a
    // string or a number can still read).
    assert!(refused.get() > cases / 2, "{rel}: only {} of {cases} mutated files were refused", refused.get());
}

const SHORT: u32 = 2_000;
const LONG: u32 = 100_000;

macro_rules! targets {
    ($($name:ident, $long:ident: $ty:ty = $rel:expr;)*) => {$(
        #[test]
        fn $name() {
            fuzz::<$ty>($rel, SHORT);
        }

        #[test]
        #[ignore = "100,000 cases: cargo test --release -p sweep-folder -- --ignored fuzz"]
        fn $long() {
            fuzz::<$ty>($rel, LONG);
        }
    )*};
}

targets! {
    fuzz_manifest, fuzz_manifest_long: Manifest = "manifest.json";
    fuzz_plan, fuzz_plan_long: PlanFile = "plan.json";
    fuzz_job, fuzz_job_long: JobContext = "job.json";
    fuzz_metadata, fuzz_metadata_long: Metadata = "metadata.json";
    fuzz_registration, fuzz_registration_long: Registration = "rendezvous/agg_0.json";
    fuzz_server_status, fuzz_server_status_long: ServerStatus = "status/agg_0.json";
    fuzz_benchmark_status, fuzz_benchmark_status_long: BenchmarkStatus = "status/benchmark.json";
    fuzz_point_status, fuzz_point_status_long: PointStatus = "points/status.json";
    fuzz_point, fuzz_point_long: sweep_plan::Point = "points/point.json";
}
