//! Property-based fuzzing of the spec parser: the example sweeps of `sweeps/`, with lines
//! deleted, duplicated, swapped, re-indented, truncated, or a value replaced by a random token,
//! must load or fail with a [`sweep_spec::SpecError`] whose location is inside the text —
//! never panic, never hang. `cargo test --release -p sweep-spec -- --ignored fuzz` runs 100,000
//! cases; the test suite runs 1,000.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

fn examples() -> Vec<(String, String)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sweeps");
    let mut out: Vec<(String, String)> = std::fs::read_dir(&dir)
        .expect("the example sweeps")
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "yaml"))
        .map(|e| {
            (e.file_name().to_string_lossy().into_owned(), std::fs::read_to_string(e.path()).expect("read"))
        })
        .collect();
    out.sort();
    assert!(out.len() >= 3, "{out:?}");
    out
}

#[derive(Debug, Clone)]
enum Mutation {
    Delete(usize),
    Duplicate(usize),
    Swap(usize, usize),
    Indent(usize, i8),
    Replace(usize, String),
    Truncate(usize),
}

fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("null".to_owned()),
        Just("[]".to_owned()),
        Just("{}".to_owned()),
        Just("-1".to_owned()),
        Just("1e309".to_owned()),
        Just("'unterminated".to_owned()),
        Just("&anchor".to_owned()),
        Just("*alias".to_owned()),
        Just("!!binary x".to_owned()),
        Just("[1, 2, 3".to_owned()),
        Just("18446744073709551616".to_owned()),
        "[a-z_]{1,12}",
        "[ -~]{0,24}",
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<usize>().prop_map(Mutation::Delete),
        any::<usize>().prop_map(Mutation::Duplicate),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::Swap(a, b)),
        (any::<usize>(), -4i8..5).prop_map(|(a, by)| Mutation::Indent(a, by)),
        (any::<usize>(), token()).prop_map(|(a, t)| Mutation::Replace(a, t)),
        any::<usize>().prop_map(Mutation::Truncate),
    ]
}

fn apply(text: &str, mutations: &[Mutation]) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    for m in mutations {
        if lines.is_empty() {
            break;
        }
        let n = lines.len();
        match m {
            Mutation::Delete(i) => drop(lines.remove(i % n)),
            Mutation::Duplicate(i) => {
                let line = lines[i % n].clone();
                lines.insert(i % n, line);
            }
            Mutation::Swap(a, b) => lines.swap(a % n, b % n),
            Mutation::Indent(i, by) => {
                let line = &mut lines[i % n];
                if *by >= 0 {
                    *line = format!("{}{line}", " ".repeat(*by as usize));
                } else {
                    let strip = line.len() - line.trim_start().len();
                    *line = line[strip.min(by.unsigned_abs() as usize)..].to_owned();
                }
            }
            Mutation::Replace(i, token) => {
                let line = &mut lines[i % n];
                *line = match line.split_once(':') {
                    Some((key, _)) => format!("{key}: {token}"),
                    None => token.clone(),
                };
            }
            Mutation::Truncate(i) => {
                let line = &mut lines[i % n];
                let cut = line.char_indices().map(|(i, _)| i).nth(line.chars().count() / 2).unwrap_or(0);
                line.truncate(cut);
            }
        }
    }
    lines.join("\n")
}

fn fuzz(cases: u32) {
    let examples = examples();
    for (name, text) in &examples {
        sweep_spec::load(text).unwrap_or_else(|e| panic!("{name} must load: {e}"));
    }
    let mut runner = TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() });
    runner
        .run(&(0..examples.len(), prop::collection::vec(mutation(), 1..5)), |(which, mutations)| {
            let text = apply(&examples[which].1, &mutations);
            if let Err(error) = sweep_spec::load(&text) {
                let lines = text.lines().count().max(1);
                if let Some(at) = error.location {
                    prop_assert!(
                        at.line >= 1 && at.line <= lines + 1,
                        "line {} of {lines}: {error}",
                        at.line
                    );
                }
                prop_assert!(!error.to_string().is_empty());
            }
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn fuzz_spec() {
    fuzz(1_000);
}

#[test]
#[ignore = "100,000 cases: cargo test --release -p sweep-spec -- --ignored fuzz"]
fn fuzz_spec_long() {
    fuzz(100_000);
}
