//! Paired differences over seeds: what an SLA inference gains on the baseline trained with the same
//! seeds (same data order and initial draws), with a 95 % Student t-interval.
//!
//! Pairing by seed removes the seed-to-seed spread the two arms share, so the interval of the
//! difference is narrower than the two arms' separate spreads would suggest, and it is the honest
//! one for "does SLA beat the baseline on this budget".

use serde::Serialize;
use statrs::distribution::{ContinuousCDF, StudentsT};

/// Confidence level of the intervals.
pub const CONFIDENCE: f64 = 0.95;

/// The mean of `value − reference` over pairs, with its t-interval.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct PairedDifference {
    pub mean: f64,
    /// Half the width of the 95 % interval, t(0.975, n − 1) · s / √n; none with fewer than two
    /// pairs, where the spread is unknown.
    pub half_width: Option<f64>,
    pub n: usize,
}

impl PairedDifference {
    /// From `(value, reference)` pairs; none when there are none.
    pub fn of(pairs: &[(f64, f64)]) -> Option<Self> {
        let n = pairs.len();
        if n == 0 {
            return None;
        }
        let differences: Vec<f64> = pairs.iter().map(|(v, r)| v - r).collect();
        let mean = differences.iter().sum::<f64>() / n as f64;
        let half_width = (n > 1).then(|| {
            let variance =
                differences.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
            t_quantile(n - 1) * (variance / n as f64).sqrt()
        });
        Some(Self {
            mean,
            half_width,
            n,
        })
    }

    /// The interval's ends, when known.
    pub fn interval(&self) -> Option<(f64, f64)> {
        self.half_width.map(|h| (self.mean - h, self.mean + h))
    }
}

/// The two-sided `CONFIDENCE` quantile of Student's t with `freedom` degrees of freedom.
fn t_quantile(freedom: usize) -> f64 {
    match StudentsT::new(0.0, 1.0, freedom as f64) {
        Ok(t) => t.inverse_cdf(0.5 + CONFIDENCE / 2.0),
        // Only for 0 degrees of freedom, which `of` never asks for.
        Err(_) => f64::INFINITY,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interval_is_the_hand_computed_t_interval() {
        // Differences 1, 2, 3: mean 2, s = 1; t(0.975, 2) = 4.302652729911275 (tables).
        let d = PairedDifference::of(&[(11.0, 10.0), (22.0, 20.0), (33.0, 30.0)]).expect("pairs");
        assert!((d.mean - 2.0).abs() < 1e-12);
        let expected = 4.302_652_729_911_275 / 3f64.sqrt();
        let half = d.half_width.expect("three pairs");
        assert!((half - expected).abs() < 1e-9, "{half} vs {expected}");
        let (low, high) = d.interval().expect("interval");
        assert!((low - (2.0 - expected)).abs() < 1e-9 && (high - (2.0 + expected)).abs() < 1e-9);
        // Five pairs: t(0.975, 4) = 2.776445105197793.
        let d = PairedDifference::of(&[(1.0, 0.0), (0.0, 0.0), (1.0, 0.0), (0.0, 0.0), (1.0, 0.0)])
            .expect("pairs");
        let s = (0.3f64).sqrt();
        assert!(
            (d.half_width.expect("five") - 2.776_445_105_197_793 * s / 5f64.sqrt()).abs() < 1e-9
        );
    }

    #[test]
    fn one_pair_has_a_mean_and_no_interval_and_none_has_nothing() {
        let d = PairedDifference::of(&[(0.8, 0.75)]).expect("one");
        assert!((d.mean - 0.05).abs() < 1e-12);
        assert_eq!(d.half_width, None);
        assert_eq!(PairedDifference::of(&[]), None);
    }
}
