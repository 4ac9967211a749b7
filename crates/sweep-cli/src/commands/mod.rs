//! One module per subcommand.

pub mod plan;
pub mod render;
pub mod slurm;
