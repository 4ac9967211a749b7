//! `sweep-runner`: what each `srun` step of a sweep job runs (`serve`, `benchmark`), and the load
//! generator (`sweep-load`) on its own (`profile`). See `docs/runner.md`.

pub mod accuracy;
pub mod benchmark;
mod error;
pub mod files;
pub mod gpu;
pub mod group;
pub mod provenance;
pub mod readiness;
pub mod scrape;
pub mod search;
pub mod serve;
pub mod workers;

pub use error::RunnerError;
