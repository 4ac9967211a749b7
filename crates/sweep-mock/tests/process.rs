//! The `sweep-mock-engine` binary as a process: faults that end the process, signals, and the
//! official OpenAI Python client speaking to it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running engine on a free port; killed when dropped.
struct Engine {
    child: Child,
    base: String,
    _dir: TempDir,
}

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn spawn(args: &[&str]) -> Engine {
    let dir =
        std::env::temp_dir().join(format!("sweep-mock-proc-{}-{:?}", std::process::id(), Instant::now()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let port_file = dir.join("port");
    let child = Command::new(env!("CARGO_BIN_EXE_sweep-mock-engine"))
        .args(["--port", "0", "--model", "tiny", "--port-file"])
        .arg(&port_file)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawns");
    let deadline = Instant::now() + Duration::from_secs(10);
    let port = loop {
        if let Ok(port) = std::fs::read_to_string(&port_file) {
            break port;
        }
        assert!(Instant::now() < deadline, "the engine did not start");
        std::thread::sleep(Duration::from_millis(20));
    };
    Engine { child, base: format!("http://127.0.0.1:{port}"), _dir: TempDir(dir) }
}

/// A bare HTTP/1.1 request over a new connection; `None` when the connection fails.
fn post(base: &str, path: &str, body: &str) -> Option<String> {
    use std::io::{Read, Write};
    let address = base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    (!response.is_empty()).then_some(response)
}

const REQUEST: &str = r#"{"model":"tiny","prompt":"a b c","max_tokens":2}"#;

#[test]
fn fault_crash_exits_on_the_request_after_n() {
    let mut engine = spawn(&["--no-delay", "--fault-crash-after", "2"]);
    for _ in 0..2 {
        let response = post(&engine.base, "/v1/completions", REQUEST).expect("served");
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    }
    assert_eq!(post(&engine.base, "/v1/completions", REQUEST), None, "request 3 gets no answer");
    let status = engine.child.wait().expect("exits");
    assert_eq!(status.code(), Some(1));
}

#[test]
fn sigterm_stops_the_engine_cleanly() {
    let mut engine = spawn(&["--no-delay"]);
    assert!(post(&engine.base, "/v1/completions", REQUEST).is_some_and(|r| r.starts_with("HTTP/1.1 200")));
    let pid = engine.child.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().expect("kill runs");
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = engine.child.try_wait().expect("waits") {
            assert_eq!(status.code(), Some(0));
            break;
        }
        assert!(Instant::now() < deadline, "still running 10 s after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn workspace() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

#[test]
fn the_official_openai_python_client_conforms() {
    let engine = spawn(&["--no-delay"]);
    let script = workspace().join("tests/openai_conformance.py");
    let output = Command::new("python3")
        .arg(&script)
        .arg(&engine.base)
        .output()
        .expect("python3 runs; scripts/test.sh installs the Python packages of tests/requirements.txt");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "conformance failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("all passed"), "{stdout}");
    assert!(stdout.matches("\nok ").count() >= 10, "{stdout}");
}
