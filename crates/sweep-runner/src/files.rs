//! What the runner's steps need of the node they run on. The job folder's files themselves are
//! read and written through `sweep-folder`, their one home.

use std::path::Path;

pub use sweep_folder::file::now;

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
/// wrong network), from the kernel's list of interface addresses (`getifaddrs`).
pub fn interface_address(interface: &str) -> Result<String, String> {
    let addresses =
        nix::ifaddrs::getifaddrs().map_err(|e| format!("cannot list this node's network interfaces: {e}"))?;
    addresses
        .filter(|a| a.interface_name == interface)
        .find_map(|a| a.address.and_then(|address| address.as_sockaddr_in().map(|v4| v4.ip().to_string())))
        .ok_or_else(|| format!("network interface `{interface}` has no IPv4 address on {}", node()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_loopback_interface_has_its_address_and_a_missing_one_is_named() {
        assert_eq!(super::interface_address("lo").as_deref(), Ok("127.0.0.1"));
        let error = super::interface_address("no-such-if0").expect_err("missing");
        assert!(error.contains("`no-such-if0` has no IPv4 address"), "{error}");
    }
}
