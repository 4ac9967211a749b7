//! SLURM facts the rest of sweep needs. [`hostlist`] is pure; the drivers of `sbatch`, `squeue`,
//! `sacct` and `scancel` will live beside it.

pub mod hostlist;
