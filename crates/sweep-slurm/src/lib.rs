//! SLURM facts and commands the rest of sweep needs: [`hostlist`] is pure; [`driver`] runs
//! `sbatch`, `squeue` and `scancel`.

pub mod driver;
pub mod hostlist;
