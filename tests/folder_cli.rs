//! The sweep folder's formats through the `sweep` command: a folder written by sweep 0.1.0 is
//! still shown and aggregated; a file from a newer sweep is refused by name with its own exit
//! code; a corrupted marker is a warning naming its file and line, and the rest is aggregated.

mod common;

use std::path::{Path, PathBuf};

use common::{copy_dir, csv_rows, sweep, Scratch};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/sweep-folder-format-1")
}

/// A copy of the fixture in a folder of its own.
fn scratch(name: &str) -> Scratch {
    let dir = std::env::temp_dir().join(format!("sweep-folder-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    copy_dir(&fixture(), &dir.join("sweep"));
    Scratch(dir)
}

#[test]
fn a_folder_of_sweep_0_1_is_shown_and_aggregated() {
    let s = scratch("old");
    let (code, stdout, stderr) = sweep(&["status", "sweep", "--points"], &s.0);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("agg1_tep1_batch8_eplb0_mtp0") && stdout.contains("FAILED"), "{stdout}");
    assert!(stdout.contains("ctx1_gen1_tep1_batch8_eplb0_mtp0") && stdout.contains("COMPLETED"), "{stdout}");
    assert_eq!(stdout.matches("  done ").count(), 3, "{stdout}");
    assert_eq!(stdout.matches("  failed ").count(), 1, "{stdout}");

    let (code, _, stderr) = sweep(&["report", "sweep", "-o", "report"], &s.0);
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains("warning:"), "a format-1 folder reads without warnings: {stderr}");
    let rows = csv_rows(&s.0.join("report/results.csv"));
    let mut states: Vec<&str> = rows.iter().map(|r| r["state"].as_str()).collect();
    states.sort_unstable();
    assert_eq!(states, ["done", "done", "done", "failed"], "{rows:#?}");
    let md = std::fs::read_to_string(s.0.join("report/report.md")).expect("report.md");
    assert!(md.contains("not recorded (a folder of sweep 0.1)"), "{md}");
}

#[test]
fn a_manifest_from_a_newer_sweep_is_refused_by_name_with_exit_13() {
    let s = scratch("newer");
    let path = s.0.join("sweep/manifest.json");
    let text = std::fs::read_to_string(&path).expect("manifest");
    std::fs::write(&path, text.replacen('{', "{\"format\": 9, \"written_by\": \"sweep 9.1.0\",", 1))
        .expect("written");
    let (code, stdout, stderr) = sweep(&["status", "sweep"], &s.0);
    assert_eq!(code, 13, "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(stderr.contains("manifest.json was written by sweep 9.1.0 in format 9"), "{stderr}");
    assert!(stderr.contains(&format!("this is sweep {}", env!("CARGO_PKG_VERSION"))), "{stderr}");
}

#[test]
fn a_corrupted_marker_is_a_warning_with_its_line_and_the_rest_is_aggregated() {
    let s = scratch("corrupt");
    let manifest: sweep_folder::Manifest =
        sweep_folder::SweepDir::open(s.0.join("sweep")).expect("sweep").read_manifest().expect("manifest");
    let job = &manifest.jobs[1];
    let marker = s.0.join("sweep").join(&job.dir).join("points").join(&job.points[0]).join("status.json");
    std::fs::write(&marker, "{\n  \"point\": \"x\",\n  \"state\": ").expect("truncated");
    let (code, _, stderr) = sweep(&["aggregate", "sweep", "-o", "out"], &s.0);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("status.json: line 3, column 11, at `state`: EOF while parsing a value; ignored"),
        "{stderr}"
    );
    let rows = csv_rows(&s.0.join("out/results.csv"));
    assert_eq!(rows.len(), 4, "the point with the broken marker is still a row: {rows:#?}");
    // Its exports are whole, so their figures still count (the marker only said how it ended).
    let broken = rows.iter().find(|r| r["point"] == job.points[0]).expect("its row");
    assert_eq!(broken["state"], "done", "{broken:#?}");
}
