//! The sweep's `provenance.json`: which build rendered it, from which spec and plan, where, by
//! whom, for which SLURM and container image.

use std::process::Command;

use sha2::{Digest, Sha256};
use sweep_folder::provenance::{Build, Provenance};

/// Lower-case hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

fn first_line(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    out.status
        .success()
        .then(|| text.lines().next().unwrap_or_default().trim().to_owned())
        .filter(|l| !l.is_empty())
}

fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| first_line("hostname", &[]))
        .unwrap_or_else(|| "unknown".to_owned())
}

fn user() -> String {
    std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .or_else(|| first_line("id", &["-un"]))
        .unwrap_or_else(|| "unknown".to_owned())
}

/// The digest an image reference pins (`repo@sha256:…`), when it pins one.
pub fn pinned_digest(image: &str) -> Option<String> {
    image.rsplit_once('@').map(|(_, digest)| digest.to_owned()).filter(|d| d.starts_with("sha256:"))
}

/// Provenance of a render of `spec` now.
pub fn collect(spec: &sweep_spec::Spec, spec_text: &[u8], plan_json: &[u8]) -> Provenance {
    // An image axis has no one image: each job's own is in its `job.json`.
    let image = spec.cluster.container.as_ref().and_then(|c| c.image.clone());
    Provenance {
        sweep: Build::current(),
        spec_sha256: sha256_hex(spec_text),
        plan_sha256: sha256_hex(plan_json),
        host: host(),
        user: user(),
        created_at: sweep_folder::file::now(),
        sbatch: first_line("sbatch", &["--version"]),
        container_digest: image.as_deref().and_then(pinned_digest),
        container_image: image,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_known_text() {
        assert_eq!(sha256_hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn only_a_pinned_image_has_a_digest() {
        assert_eq!(pinned_digest("nvcr.io/nvidia/vllm@sha256:abcd"), Some("sha256:abcd".to_owned()));
        assert_eq!(pinned_digest("nvcr.io/nvidia/vllm:25.01"), None);
        assert_eq!(pinned_digest("/images/vllm.sqsh"), None);
    }
}
