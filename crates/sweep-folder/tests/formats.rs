//! Every file of the sweep folder: read from a folder written by sweep 0.1.0 (format 1, kept as
//! a fixture), written and read back in today's format, and refused when a newer sweep wrote it.

use std::path::{Path, PathBuf};

use sweep_folder::{
    file, BenchmarkState, Executor, FolderError, JobState, PointState, ServerState, SweepDir,
};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/sweep-folder-format-1")
}

/// A copy of the fixture to change.
fn copy_of_fixture() -> (tempfile::TempDir, SweepDir) {
    let tmp = tempfile::tempdir().expect("a temporary folder");
    let dest = tmp.path().join("sweep");
    copy_dir(&fixture(), &dest);
    (tmp, SweepDir::open(dest).expect("a sweep folder"))
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("created");
    for entry in std::fs::read_dir(from).expect("listed").flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copied");
        }
    }
}

#[test]
fn a_folder_written_by_sweep_0_1_reads_through_every_type() {
    let sweep = SweepDir::open(fixture()).expect("a sweep folder");
    let manifest = sweep.read_manifest().expect("manifest.json");
    assert_eq!(manifest.executor, Executor::Local);
    assert_eq!(manifest.jobs.len(), 2);
    assert!(manifest.jobs.iter().all(|j| j.attempt == 1 && j.points.len() == 2), "{manifest:?}");
    let bytes = std::fs::read(sweep.manifest_path()).expect("read");
    assert_eq!(
        file::format_of(&sweep.manifest_path(), &bytes).expect("a header"),
        1,
        "the fixture is format 1"
    );

    let plan = sweep.read_plan().expect("plan.json");
    assert_eq!(plan.jobs.len(), 2);
    assert_eq!(plan.jobs.iter().map(|j| j.points.len()).sum::<usize>(), 4);
    assert!(sweep.read_provenance().expect("no error").is_none(), "0.1.0 wrote no provenance");

    let mut states = Vec::new();
    for (job_dir, index) in sweep.job_dirs(Some(&manifest)) {
        let entry = &manifest.jobs[index.expect("every folder is in the manifest")];
        let job = job_dir.read_job().expect("job.json");
        assert_eq!(job.name, entry.name);
        assert_eq!(job.id, entry.id);
        assert_eq!(job.points.len(), 2);
        assert!(job.roles.iter().all(|r| r.serving_type == r.config.role.serving_type()), "{:?}", job.roles);
        let metadata = job_dir.read_metadata().expect("metadata.json").expect("written");
        assert_eq!(metadata.job.id, job.id);
        assert_eq!(metadata.gpus.working, job.gpus_working());
        assert_eq!(metadata.executor, Executor::Local);
        for name in job.server_names() {
            let registration = job_dir.read_registration(&name).expect("readable").expect("registered");
            assert!(registration.address.contains(':'), "{registration:?}");
            let status = job_dir.read_server_status(&name).expect("readable").expect("ended");
            assert!(matches!(status.state, ServerState::Stopped | ServerState::Exited), "{status:?}");
        }
        let benchmark = job_dir.read_benchmark_status().expect("readable").expect("ended");
        for point_dir in job_dir.point_dirs() {
            let point = point_dir.read_point().expect("point.json").expect("written");
            let status = point_dir.read_status().expect("status.json").expect("written");
            assert_eq!(status.point, point.id.to_string());
            assert_eq!(status.job, job.name);
            states.push((job.mode.clone(), status.state, benchmark.state));
        }
    }
    states.sort_by_key(|(mode, state, _)| (mode.clone(), *state));
    assert_eq!(
        states,
        [
            ("agg".into(), PointState::Done, BenchmarkState::Failed),
            ("agg".into(), PointState::Failed, BenchmarkState::Failed),
            ("disagg".into(), PointState::Done, BenchmarkState::Done),
            ("disagg".into(), PointState::Done, BenchmarkState::Done),
        ]
    );
    assert_eq!(sweep.completed_points().len(), 3);
    let local_states: Vec<JobState> = manifest.jobs.iter().map(|j| j.state).collect();
    assert!(local_states.contains(&JobState::Completed) && local_states.contains(&JobState::Failed));
}

#[test]
fn every_file_is_rewritten_in_todays_format_and_reads_back_the_same() {
    let (_tmp, sweep) = copy_of_fixture();
    let manifest = sweep.read_manifest().expect("manifest.json");
    sweep.write_manifest(&manifest).expect("written");
    let bytes = std::fs::read(sweep.manifest_path()).expect("read");
    assert_eq!(file::format_of(&sweep.manifest_path(), &bytes).expect("a header"), sweep_folder::FORMAT);
    assert_eq!(sweep.read_manifest().expect("reads"), manifest);
    for (job_dir, _) in sweep.job_dirs(Some(&manifest)) {
        let job = job_dir.read_job().expect("job.json");
        file::write(&job_dir.job_path(), &job).expect("written");
        assert_eq!(job_dir.read_job().expect("reads"), job);
        let metadata = job_dir.read_metadata().expect("reads").expect("there");
        job_dir.write_metadata(&metadata).expect("written");
        assert_eq!(job_dir.read_metadata().expect("reads"), Some(metadata));
        for name in job.server_names() {
            let registration = job_dir.read_registration(&name).expect("reads").expect("there");
            job_dir.write_registration(&name, &registration).expect("written");
            assert_eq!(job_dir.read_registration(&name).expect("reads"), Some(registration));
            let status = job_dir.read_server_status(&name).expect("reads").expect("there");
            job_dir.write_server_status(&name, &status).expect("written");
            assert_eq!(job_dir.read_server_status(&name).expect("reads"), Some(status));
        }
        let benchmark = job_dir.read_benchmark_status().expect("reads").expect("there");
        job_dir.write_benchmark_status(&benchmark).expect("written");
        assert_eq!(job_dir.read_benchmark_status().expect("reads"), Some(benchmark));
        for point_dir in job_dir.point_dirs() {
            let point = point_dir.read_point().expect("reads").expect("there");
            point_dir.write_point(&point).expect("written");
            assert_eq!(point_dir.read_point().expect("reads"), Some(point));
            let status = point_dir.read_status().expect("reads").expect("there");
            point_dir.write_status(&status).expect("written");
            assert_eq!(point_dir.read_status().expect("reads"), Some(status));
        }
    }
}

#[test]
fn a_file_from_a_newer_sweep_is_refused_by_name() {
    let (_tmp, sweep) = copy_of_fixture();
    let path = sweep.manifest_path();
    let text = std::fs::read_to_string(&path).expect("read");
    let next = sweep_folder::FORMAT + 1;
    let newer =
        text.replacen('{', &format!("{{\n  \"format\": {next},\n  \"written_by\": \"sweep 9.0.0\","), 1);
    std::fs::write(&path, newer).expect("written");
    let error = sweep.read_manifest().expect_err("refused");
    assert!(matches!(error, FolderError::Newer { format, .. } if format == next), "{error:?}");
    let message = error.to_string();
    assert!(
        message.contains(&format!("manifest.json was written by sweep 9.0.0 in format {next}")),
        "{message}"
    );
    assert!(message.contains("read it with a newer sweep"), "{message}");
}

#[test]
fn a_corrupted_marker_names_its_file_and_line_and_the_walk_goes_on() {
    let (_tmp, sweep) = copy_of_fixture();
    let (job, _) = sweep.job_dirs(None).into_iter().next().expect("a job folder");
    let point = job.point_dirs().into_iter().next().expect("a point");
    std::fs::write(point.status_path(), "{\n  \"point\": \"x\",\n  \"state\": \"exploded\"\n}")
        .expect("written");
    let markers = sweep.point_markers();
    assert_eq!(markers.len(), 4, "the walk still sees every marker");
    let (_, broken) = markers.iter().find(|(dir, _)| *dir == point).expect("the broken one");
    let error = broken.as_ref().expect_err("not a state");
    let message = error.to_string();
    assert!(message.contains("status.json:3:"), "{message}");
    assert!(message.contains("at `state`"), "{message}");
}

#[test]
fn job_folders_not_in_the_manifest_are_still_walked_and_staging_folders_are_not() {
    let (_tmp, sweep) = copy_of_fixture();
    std::fs::create_dir_all(sweep.jobs_path().join("lost-job/points")).expect("created");
    std::fs::create_dir_all(sweep.jobs_path().join(".x.rendering-1")).expect("created");
    let manifest = sweep.read_manifest().expect("reads");
    let dirs: Vec<(String, Option<usize>)> =
        sweep.job_dirs(Some(&manifest)).into_iter().map(|(d, i)| (d.name(), i)).collect();
    assert_eq!(dirs.len(), 3, "{dirs:?}");
    assert_eq!(dirs[2], ("lost-job".to_owned(), None));
    assert_eq!(
        sweep.free_job_dir(&manifest.jobs[0].name).0,
        2,
        "the next attempt of a job is its second folder"
    );
}

#[test]
fn the_lock_is_held_once() {
    let (_tmp, sweep) = copy_of_fixture();
    let lock = sweep.lock().expect("free");
    let error = sweep.lock().expect_err("held");
    assert!(matches!(error, FolderError::Locked { .. }), "{error:?}");
    drop(lock);
    sweep.lock().expect("free again");
}

/// A `sweep submit` killed with SIGKILL (or by the OOM killer) left its lock file behind: the
/// lock was the dead process's, so the folder is free.
#[test]
fn a_lock_file_left_by_a_killed_submit_does_not_hold_the_folder() {
    let (_tmp, sweep) = copy_of_fixture();
    let path = sweep.path().join(".submit.lock");
    std::fs::write(&path, "pid 999999\n").expect("a stale lock file");
    let lock = sweep.lock().expect("free: nobody holds the lock");
    assert_eq!(std::fs::read_to_string(&path).expect("held"), format!("pid {}\n", std::process::id()));
    drop(lock);
    assert!(!path.exists(), "let go, the file is removed");
}

/// Each file's on-disk form as this build writes it, from the fixture's contents read back:
/// snapshots kept per format number. The folder's types are its own (`sweep_folder::settings`
/// holds its copies of the spec's and the plan's values); a change to any of them that changes
/// what is written fails here, and asks for `sweep_folder::FORMAT` to be bumped (with a reader
/// for the format before) instead of changing the folder's format silently.
#[test]
fn the_written_form_of_every_file_changes_only_with_a_format_bump() {
    let sweep = SweepDir::open(fixture()).expect("a sweep folder");
    let mut files: Vec<(String, serde_json::Value)> = Vec::new();
    let mut add = |name: &str, value: serde_json::Value| files.push((name.to_owned(), value));
    add("manifest", serde_json::to_value(sweep.read_manifest().expect("manifest")).expect("json"));
    let (job, _) = sweep.job_dirs(None).into_iter().next().expect("a job");
    add("job", serde_json::to_value(job.read_job().expect("job.json")).expect("json"));
    add("metadata", serde_json::to_value(job.read_metadata().expect("metadata")).expect("json"));
    add(
        "benchmark-status",
        serde_json::to_value(job.read_benchmark_status().expect("marker")).expect("json"),
    );
    add(
        "server-status",
        serde_json::to_value(job.read_server_status("agg_0").expect("marker")).expect("json"),
    );
    add(
        "registration",
        serde_json::to_value(job.read_registration("agg_0").expect("rendezvous")).expect("json"),
    );
    let point = job.point_dirs().into_iter().next().expect("a point");
    add("point", serde_json::to_value(point.read_point().expect("point.json")).expect("json"));
    add("point-status", serde_json::to_value(point.read_status().expect("status.json")).expect("json"));
    for (name, value) in files {
        insta::with_settings!({
            description => "this file's on-disk form changed: bump sweep_folder::FORMAT, keep reading the format before, and accept the new snapshot",
            omit_expression => true,
        }, {
            insta::assert_json_snapshot!(format!("format-{}-{name}", sweep_folder::FORMAT), value);
        });
    }
}
