//! Which build of sweep this is (see the crate's build script).

/// The workspace's version: the same for `sweep` and `sweep-runner`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The git commit built from, or `None` when built outside a checkout.
pub fn commit() -> Option<&'static str> {
    Some(env!("SWEEP_BUILD_COMMIT")).filter(|c| !c.is_empty())
}

/// `rustc --version` of the compiler that built it, or `None` when it could not be asked.
pub fn rustc() -> Option<&'static str> {
    Some(env!("SWEEP_BUILD_RUSTC")).filter(|c| !c.is_empty())
}

/// `sweep 0.3.0`: what a file's `written_by` says.
pub fn written_by() -> String {
    format!("sweep {VERSION}")
}
