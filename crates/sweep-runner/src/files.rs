//! What the runner's steps need of the node they run on. The job folder's files themselves are
//! read and written through `sweep-folder`, their one home.

use std::path::Path;

pub use sweep_folder::file::now;

/// A folder error as the runner's steps report it (their errors are messages for the job's
/// log and markers).
pub trait Reported<T> {
    fn reported(self) -> Result<T, String>;
}

impl<T> Reported<T> for Result<T, sweep_folder::FolderError> {
    fn reported(self) -> Result<T, String> {
        self.map_err(|e| e.to_string())
    }
}

/// The last `lines` lines of a log, for failure reasons.
pub fn tail(path: &Path, lines: usize) -> String {
    let Ok(text) = std::fs::read(path) else {
        return format!("(no log at {})", path.display());
    };
    let text = String::from_utf8_lossy(&text);
    let all: Vec<&str> = text.lines().collect();
    let start = all.len().saturating_sub(lines);
    all[start..].join("\n")
}

/// The node this step runs on: SLURM's name for it (resolvable on the cluster), else the host's.
pub fn node() -> String {
    std::env::var("SLURMD_NODENAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok().map(|h| h.trim().to_owned()))
        .unwrap_or_else(|| "localhost".to_owned())
}

/// The IPv4 address of a network interface (for clusters whose host names resolve to the
/// wrong network), from `ip -4 -o addr show dev IF`.
pub fn interface_address(interface: &str) -> Result<String, String> {
    let output = std::process::Command::new("ip")
        .args(["-4", "-o", "addr", "show", "dev", interface])
        .output()
        .map_err(|e| format!("cannot run `ip` to find the address of {interface}: {e}"))?;
    let text = String::from_utf8_lossy(&output.stdout);
    text.split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .and_then(|cidr| cidr.split('/').next())
        .map(str::to_owned)
        .ok_or_else(|| format!("network interface `{interface}` has no IPv4 address on {}", node()))
}
