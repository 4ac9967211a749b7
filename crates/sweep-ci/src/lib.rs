//! Named performance cases for CI (`sweep ci CASES`), as TensorRT-LLM's perf-sanity case lists
//! are: each case a sweep spec with the thresholds its comparison holds it to.
//!
//! ```yaml
//! defaults:                      # optional; every case starts from these
//!   threshold: {tps_per_gpu: -3%, ttft_p99_ms: +10%}
//!   noise_floor: 0.05
//! cases:
//!   - name: agg-tp1
//!     spec: sweeps/quickstart.yaml   # relative to this file
//!     threshold: {tps_per_gpu: -5%}  # beats the default for this metric
//!     allow: [engine]
//! ```
//!
//! Reading a cases file is pure: [`parse`] takes its text and checks every case (names unique
//! and usable as folder names, thresholds on known metrics, `allow` values), each error with the
//! key it is about so the command can show its line. Whether each spec exists is checked by
//! [`Cases::missing_specs`] before anything runs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sweep_aggregate::compare::{parse_thresholds, Threshold};
use sweep_spec::KeyPath;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    defaults: RawDefaults,
    cases: Vec<RawCase>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDefaults {
    #[serde(default)]
    threshold: BTreeMap<String, String>,
    noise_floor: Option<f64>,
    #[serde(default)]
    allow: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCase {
    name: String,
    spec: PathBuf,
    #[serde(default)]
    threshold: BTreeMap<String, String>,
    noise_floor: Option<f64>,
    #[serde(default)]
    allow: Vec<String>,
}

/// A case, resolved: its spec's path (relative to the cases file's folder), and its comparison's
/// settings with the defaults filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    pub name: String,
    pub spec: PathBuf,
    pub thresholds: Vec<Threshold>,
    pub noise_floor: f64,
    pub allow: Vec<String>,
    /// Where the case is in the file (`cases[2]`), for messages.
    pub path: KeyPath,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Cases {
    pub cases: Vec<Case>,
}

/// What is wrong with a cases file, and at which key.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct CasesError {
    pub path: KeyPath,
    pub message: String,
    pub help: Option<String>,
}

impl CasesError {
    fn at(path: KeyPath, message: impl Into<String>) -> Self {
        CasesError { path, message: message.into(), help: None }
    }

    fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

/// The differences between the sides a case may declare intended.
pub const ALLOWED: [&str; 3] = ["model", "engine", "workload"];

/// Reads a cases file's text; `dir` is the folder its spec paths are relative to.
pub fn parse(text: &str, dir: &Path) -> Result<Cases, CasesError> {
    let de = serde_yaml::Deserializer::from_str(text);
    let raw: RawFile = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = key_path(&e.path().to_string());
        CasesError::at(path, e.into_inner().to_string())
    })?;
    let defaults_path = KeyPath::keys("defaults");
    let default_thresholds = thresholds(&raw.defaults.threshold, &defaults_path.key("threshold"))?;
    check_allow(&raw.defaults.allow, &defaults_path.key("allow"))?;
    let default_floor = raw.defaults.noise_floor.unwrap_or(sweep_aggregate::compare::DEFAULT_NOISE_FLOOR);
    check_floor(default_floor, &defaults_path.key("noise_floor"))?;
    if raw.cases.is_empty() {
        return Err(CasesError::at(KeyPath::keys("cases"), "no case")
            .help("list at least one case: `- {name: …, spec: …}`"));
    }
    let mut cases: Vec<Case> = Vec::new();
    for (k, c) in raw.cases.into_iter().enumerate() {
        let path = KeyPath::keys("cases").index(k);
        if c.name.is_empty()
            || !c.name.chars().all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '-' | '_' | '.'))
        {
            return Err(CasesError::at(path.key("name"), format!("`{}` is not a usable case name", c.name))
                .help("use letters, digits, `-`, `_` and `.`: the name is a folder and a JUnit suite"));
        }
        if let Some(first) = cases.iter().find(|other| other.name == c.name) {
            return Err(CasesError::at(
                path.key("name"),
                format!("`{}` is also the name of {}", c.name, first.path),
            )
            .help("give every case its own name"));
        }
        let mut own = default_thresholds.clone();
        for t in thresholds(&c.threshold, &path.key("threshold"))? {
            own.retain(|d| d.metric != t.metric);
            own.push(t);
        }
        check_allow(&c.allow, &path.key("allow"))?;
        let noise_floor = c.noise_floor.unwrap_or(default_floor);
        check_floor(noise_floor, &path.key("noise_floor"))?;
        let mut allow = raw.defaults.allow.clone();
        allow.extend(c.allow);
        allow.sort();
        allow.dedup();
        cases.push(Case { name: c.name, spec: dir.join(c.spec), thresholds: own, noise_floor, allow, path });
    }
    Ok(Cases { cases })
}

impl Cases {
    /// The cases whose name contains one of `patterns` (all of them when none is given), in
    /// file order; a pattern that selects nothing is an error listing the names.
    pub fn select(&self, patterns: &[String]) -> Result<Vec<&Case>, String> {
        if patterns.is_empty() {
            return Ok(self.cases.iter().collect());
        }
        if let Some(unmatched) =
            patterns.iter().find(|p| !self.cases.iter().any(|c| c.name.contains(p.as_str())))
        {
            let names: Vec<&str> = self.cases.iter().map(|c| c.name.as_str()).collect();
            return Err(format!(
                "-k {unmatched}: no case's name contains it; the cases are {}",
                names.join(", ")
            ));
        }
        Ok(self.cases.iter().filter(|c| patterns.iter().any(|p| c.name.contains(p.as_str()))).collect())
    }

    /// The cases whose spec file is not there, with the key to point at.
    pub fn missing_specs<'a>(&self, selected: &[&'a Case]) -> Vec<&'a Case> {
        selected.iter().copied().filter(|c| !c.spec.is_file()).collect()
    }
}

/// `{tps_per_gpu: -3%}` as thresholds; an unknown metric or a threshold the wrong way is an
/// error at its key, listing the valid metrics.
fn thresholds(map: &BTreeMap<String, String>, path: &KeyPath) -> Result<Vec<Threshold>, CasesError> {
    let mut out = Vec::new();
    for (metric, value) in map {
        let parsed = parse_thresholds(&format!("{metric}={value}"))
            .map_err(|e| CasesError::at(path.key(metric), e))?;
        out.extend(parsed);
    }
    Ok(out)
}

fn check_allow(allow: &[String], path: &KeyPath) -> Result<(), CasesError> {
    match allow.iter().position(|a| !ALLOWED.contains(&a.as_str())) {
        Some(k) => {
            Err(CasesError::at(path.index(k), format!("`{}` is not a difference sweep knows", allow[k]))
                .help(format!("the differences a case may allow are {}", ALLOWED.join(", "))))
        }
        None => Ok(()),
    }
}

fn check_floor(floor: f64, path: &KeyPath) -> Result<(), CasesError> {
    if (0.0..=1.0).contains(&floor) {
        Ok(())
    } else {
        Err(CasesError::at(path.clone(), format!("{floor} is not a share from 0 to 1"))
            .help("0.05 is 5 % of the base"))
    }
}

/// `cases[1].threshold` (serde_path_to_error's form) as a key path.
fn key_path(text: &str) -> KeyPath {
    let mut path = KeyPath::root();
    for part in text.split('.').filter(|p| !p.is_empty() && *p != "?") {
        let (key, rest) = part.split_once('[').map_or((part, ""), |(k, r)| (k, r));
        if !key.is_empty() {
            path = path.key(key);
        }
        for index in rest.split('[').filter_map(|i| i.trim_end_matches(']').parse::<usize>().ok()) {
            path = path.index(index);
        }
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "defaults:\n  threshold: {tps_per_gpu: -3%, ttft_p99_ms: +10%}\ncases:\n  - name: agg-tp1\n    spec: a.yaml\n    threshold: {tps_per_gpu: -5%}\n  - name: disagg\n    spec: sub/b.yaml\n    allow: [engine]\n    noise_floor: 0.1\n";

    #[test]
    fn cases_take_the_defaults_and_override_them() {
        let cases = parse(FILE, Path::new("/ci")).expect("valid");
        let [a, b] = &cases.cases[..] else { panic!("two cases") };
        assert_eq!(a.spec, Path::new("/ci/a.yaml"));
        let mut t: Vec<(&str, f64)> = a.thresholds.iter().map(|t| (t.metric, t.share)).collect();
        t.sort_by(|x, y| x.0.cmp(y.0));
        assert_eq!(t, [("tps_per_gpu", -0.05), ("ttft_p99_ms", 0.10)]);
        assert_eq!((a.noise_floor, b.noise_floor), (0.05, 0.1));
        assert_eq!(b.allow, ["engine"]);
        assert_eq!(b.path.to_string(), "cases[1]");
    }

    /// The example the docs and `scripts/ci-perf-example.sh` use reads, and its specs are there.
    #[test]
    fn the_shipped_cases_file_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sweeps/ci/cases.yaml");
        let text = std::fs::read_to_string(&path).expect("sweeps/ci/cases.yaml");
        let cases = parse(&text, path.parent().expect("folder")).expect("valid");
        let all = cases.select(&[]).expect("all");
        assert!(cases.missing_specs(&all).is_empty(), "{:?}", cases.missing_specs(&all));
        for case in &all {
            let spec = std::fs::read_to_string(&case.spec).expect("spec");
            sweep_spec::load(&spec).unwrap_or_else(|e| panic!("{}: {e}", case.spec.display()));
        }
    }

    #[test]
    fn selection_by_name() {
        let cases = parse(FILE, Path::new("/ci")).expect("valid");
        let names = |p: &[&str]| -> Vec<String> {
            let p: Vec<String> = p.iter().map(|s| (*s).to_owned()).collect();
            cases.select(&p).expect("selects").iter().map(|c| c.name.clone()).collect()
        };
        assert_eq!(names(&[]), ["agg-tp1", "disagg"]);
        assert_eq!(names(&["tp1"]), ["agg-tp1"]);
        assert_eq!(names(&["agg"]), ["agg-tp1", "disagg"]);
        let err = cases.select(&["nope".to_owned()]).expect_err("nothing");
        assert!(err.contains("the cases are agg-tp1, disagg"), "{err}");
    }

    #[test]
    fn bad_cases_files_name_the_key() {
        let at = |text: &str| parse(text, Path::new("/")).expect_err("refused");
        let e = at("cases:\n  - name: a\n    spec: a.yaml\n    threshold: {tps: -3%}\n");
        assert_eq!(e.path.to_string(), "cases[0].threshold.tps");
        assert!(e.message.contains("valid names: tps_per_gpu"), "{e}");
        let e = at("cases:\n  - name: a\n    spec: a.yaml\n    thresholds: {}\n");
        assert_eq!(e.path.to_string(), "cases[0].thresholds");
        assert!(e.message.contains("unknown field `thresholds`"), "{e}");
        let e = at("cases:\n  - {name: a, spec: a.yaml}\n  - {name: a, spec: b.yaml}\n");
        assert_eq!(
            (e.path.to_string(), e.message.as_str()),
            ("cases[1].name".to_owned(), "`a` is also the name of cases[0]")
        );
        let e = at("cases:\n  - {name: 'a/b', spec: a.yaml}\n");
        assert_eq!(e.path.to_string(), "cases[0].name");
        let e = at("cases:\n  - {name: a, spec: a.yaml, allow: [gpu]}\n");
        assert_eq!(e.path.to_string(), "cases[0].allow[0]");
        let e = at("cases: []\n");
        assert_eq!(e.path.to_string(), "cases");
        let e = at("defaults: {noise_floor: 5}\ncases:\n  - {name: a, spec: a.yaml}\n");
        assert_eq!(e.path.to_string(), "defaults.noise_floor");
        let e = at("cases:\n  - {name: a, spec: a.yaml, threshold: {tps_per_gpu: +3%}}\n");
        assert!(e.message.contains("is a drop"), "{e}");
    }
}
