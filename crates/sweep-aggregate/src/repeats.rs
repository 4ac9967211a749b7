//! Repetitions of a point (`workload.repeats`): their spread, for telling a difference from
//! noise. The rows of one point's repetitions are grouped (`table::summarise_repeats`); the
//! first speaks for them with the
//! mean, standard deviation, coefficient of variation and 95 % confidence interval of each
//! headline figure, and is the one a frontier considers (at the means). A point whose
//! throughput varies by more than `--max-cv` is flagged `unstable`.

use std::collections::BTreeMap;

/// The figures whose spread is measured, as results-table columns.
pub const MEASURED: [&str; 8] = [
    "output_token_throughput",
    "tps_per_gpu_working",
    "tps_per_gpu_allocated",
    "tps_per_user",
    "ttft_p50_ms",
    "ttft_p99_ms",
    "itl_p50_ms",
    "itl_p99_ms",
];

/// The coefficient of variation above which a point is `unstable`, unless `--max-cv` says
/// otherwise.
pub const DEFAULT_MAX_CV: f64 = 0.05;

/// Mean, sample standard deviation, coefficient of variation and the half-width of the 95 %
/// confidence interval of the mean (Student's t).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    pub mean: f64,
    pub std: f64,
    pub cv: f64,
    pub ci95: f64,
}

impl Spread {
    /// `None` for fewer than two values.
    pub fn of(values: &[f64]) -> Option<Spread> {
        let n = values.len();
        if n < 2 {
            return None;
        }
        let mean = values.iter().sum::<f64>() / n as f64;
        let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        let std = variance.sqrt();
        Some(Spread {
            mean,
            std,
            cv: if mean != 0.0 { std / mean.abs() } else { 0.0 },
            ci95: t_975(n - 1) * std / (n as f64).sqrt(),
        })
    }
}

/// The `p` quantile of Student's t with `df` degrees of freedom (`statrs`).
pub fn t_quantile(p: f64, df: f64) -> f64 {
    use statrs::distribution::{ContinuousCDF, StudentsT};
    StudentsT::new(0.0, 1.0, df.max(1.0)).map_or(1.96, |t| t.inverse_cdf(p))
}

/// The 97.5th percentile of Student's t with `df` degrees of freedom (two-sided 95 %).
pub fn t_975(df: usize) -> f64 {
    t_quantile(0.975, df as f64)
}

/// The spread of a point's repetitions, on the row that speaks for them.
#[derive(Debug, Clone, PartialEq)]
pub struct RepeatStats {
    /// Valid repetitions measured.
    pub n: usize,
    /// Over how many deployments of the configuration (`workload.deployment_repeats`).
    pub deployments: usize,
    /// Per [`MEASURED`] figure that every repetition has.
    pub spread: BTreeMap<&'static str, Spread>,
    /// The throughput (or tokens/s/user) varies by more than the allowed CV.
    pub unstable: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spread_of_known_values() {
        let s = Spread::of(&[10.0, 12.0, 14.0]).expect("three values");
        assert!((s.mean - 12.0).abs() < 1e-12);
        assert!((s.std - 2.0).abs() < 1e-12);
        assert!((s.cv - 2.0 / 12.0).abs() < 1e-12);
        // t(0.975, 2) = 4.303: 4.303 × 2 / √3.
        assert!((s.ci95 - 4.303 * 2.0 / 3f64.sqrt()).abs() < 1e-3, "{s:?}");
        assert_eq!(Spread::of(&[1.0]), None);
        // The table's values: t(0.975, 2) = 4.303, t(0.975, 30) = 2.042, and the normal's 1.960.
        assert!((t_975(2) - 4.303).abs() < 1e-3 && (t_975(30) - 2.042).abs() < 1e-3);
        assert!((t_975(100_000) - 1.960).abs() < 1e-3);
    }
}
