//! `sweep`: plan, submit and analyse LLM inference benchmark sweeps on SLURM.

use std::process::ExitCode;

fn main() -> ExitCode {
    sweep_cli::run(std::env::args_os())
}
