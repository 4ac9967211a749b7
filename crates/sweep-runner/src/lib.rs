//! `sweep-runner`: what each `srun` step of a sweep job runs (`serve`, `benchmark`), and a load
//! generator usable on its own (`profile`). See `docs/runner.md`.

pub mod benchmark;
pub mod files;
pub mod load;
pub mod serve;
pub mod workers;
