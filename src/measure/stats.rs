//! Statistics over repeated timings: min, median, max, median absolute
//! deviation, and a bootstrap 95 % confidence interval of the median.

use serde::{Deserialize, Serialize};

/// Which figure decides the budget when a patch is timed several times.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Statistic {
    Median,
    /// The upper end of the 95 % confidence interval of the median.
    UpperCi,
    Max,
    /// The predicted time at production size (needs --prod-stats); the
    /// staging runs are summarised by their median.
    Estimate,
}

impl std::fmt::Display for Statistic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Statistic::Median => "median",
            Statistic::UpperCi => "upper-ci",
            Statistic::Max => "max",
            Statistic::Estimate => "estimate",
        })
    }
}

/// Summary of repeated timings, in seconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub runs: usize,
    pub min: f64,
    pub median: f64,
    pub max: f64,
    /// Median absolute deviation from the median.
    pub mad: f64,
    /// 95 % bootstrap confidence interval of the median.
    pub ci_low: f64,
    pub ci_high: f64,
    /// Every run's seconds, in the order they ran.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub samples: Vec<f64>,
}

impl Stats {
    pub fn get(&self, s: Statistic) -> f64 {
        match s {
            Statistic::Median => self.median,
            Statistic::UpperCi => self.ci_high,
            Statistic::Max => self.max,
            Statistic::Estimate => self.median,
        }
    }
}

fn median_of_sorted(v: &[f64]) -> f64 {
    let n = v.len();
    if n == 0 {
        return 0.0;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn sorted(v: &[f64]) -> Vec<f64> {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s
}

/// A small deterministic generator (SplitMix64): the same samples always give
/// the same interval.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// Resamples for the bootstrap.
pub const BOOTSTRAP_RESAMPLES: usize = 2000;

/// Summarise timings; `None` for no samples.
pub fn summarise(samples: &[f64]) -> Option<Stats> {
    if samples.is_empty() {
        return None;
    }
    let s = sorted(samples);
    let median = median_of_sorted(&s);
    let deviations = sorted(&s.iter().map(|x| (x - median).abs()).collect::<Vec<_>>());
    let mad = median_of_sorted(&deviations);
    let (ci_low, ci_high) = if s.len() < 2 {
        (median, median)
    } else {
        let mut rng = SplitMix(s.len() as u64 ^ median.to_bits());
        let mut medians = Vec::with_capacity(BOOTSTRAP_RESAMPLES);
        let mut resample = vec![0.0; s.len()];
        for _ in 0..BOOTSTRAP_RESAMPLES {
            for slot in resample.iter_mut() {
                *slot = s[(rng.next() % s.len() as u64) as usize];
            }
            resample.sort_by(f64::total_cmp);
            medians.push(median_of_sorted(&resample));
        }
        medians.sort_by(f64::total_cmp);
        let at = |q: f64| {
            medians[((q * (BOOTSTRAP_RESAMPLES - 1) as f64).round() as usize)
                .min(BOOTSTRAP_RESAMPLES - 1)]
        };
        (at(0.025), at(0.975))
    };
    Some(Stats {
        runs: s.len(),
        min: s[0],
        median,
        max: s[s.len() - 1],
        mad,
        ci_low,
        ci_high,
        samples: samples.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_of_known_samples() {
        let s = summarise(&[0.52, 0.50, 0.51, 0.49, 0.90]).unwrap();
        assert_eq!(s.runs, 5);
        assert_eq!(s.min, 0.49);
        assert_eq!(s.max, 0.90);
        assert_eq!(s.median, 0.51);
        assert!((s.mad - 0.01).abs() < 1e-9);
        assert!(s.ci_low <= s.median && s.median <= s.ci_high);
        assert!(s.ci_low >= 0.49 && s.ci_high <= 0.90);
        assert_eq!(summarise(&[1.0, 1.0, 1.0]).unwrap().ci_high, 1.0);
        assert_eq!(summarise(&[2.0]).unwrap().ci_low, 2.0);
        assert!(summarise(&[]).is_none());
        assert_eq!(s.get(Statistic::UpperCi), s.ci_high);
        // Deterministic.
        assert_eq!(summarise(&[0.52, 0.50, 0.51, 0.49, 0.90]).unwrap(), s);
    }
}
