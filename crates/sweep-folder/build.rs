//! Records which build this is, for each sweep's `provenance.json`: the git commit the sources
//! came from (none when built outside a git checkout, e.g. from a source archive) and the
//! compiler's version. `SWEEP_GIT_COMMIT` set in the environment wins (packagers' builds).

use std::process::Command;

fn output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .filter(|s| !s.is_empty())
}

fn main() {
    println!("cargo:rerun-if-env-changed=SWEEP_GIT_COMMIT");
    let commit = std::env::var("SWEEP_GIT_COMMIT")
        .ok()
        .or_else(|| output("git", &["rev-parse", "HEAD"]))
        .unwrap_or_default();
    // Rerun when HEAD moves (a commit, a checkout); not on every edit, which would rebuild
    // every crate downstream each time.
    if let Some(git_dir) = output("git", &["rev-parse", "--absolute-git-dir"]) {
        println!("cargo:rerun-if-changed={git_dir}/HEAD");
        if let Some(reference) = output("git", &["symbolic-ref", "-q", "HEAD"]) {
            println!("cargo:rerun-if-changed={git_dir}/{reference}");
        }
    }
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let rustc_version = output(&rustc, &["--version"]).unwrap_or_default();
    println!("cargo:rustc-env=SWEEP_BUILD_COMMIT={commit}");
    println!("cargo:rustc-env=SWEEP_BUILD_RUSTC={rustc_version}");
}
