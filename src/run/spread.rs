//! Mean ± sample standard deviation over runs, and how the tables print it: one definition, so
//! the app's comparison table reads exactly like `sla experiment`'s `results.md`.

use serde::Serialize;

/// Mean and sample standard deviation.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Spread {
    pub mean: f64,
    pub std: f64,
    pub n: usize,
}

impl Spread {
    /// `None` without values; the deviation of one value is 0.
    pub fn of(values: &[f64]) -> Option<Self> {
        if values.is_empty() {
            return None;
        }
        let n = values.len();
        let mean = values.iter().sum::<f64>() / n as f64;
        let var = if n > 1 {
            values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64
        } else {
            0.0
        };
        Some(Self {
            mean,
            std: var.sqrt(),
            n,
        })
    }

    /// A table cell: accuracies (fractions) as "88.72 ± 0.06" percent, other values (seconds) as
    /// "598.0 ± 46.0", a missing value as "–".
    pub fn cell(spread: Option<Spread>, percent: bool) -> String {
        match spread {
            Some(s) if percent => format!("{:.2} ± {:.2}", 100.0 * s.mean, 100.0 * s.std),
            Some(s) => format!("{:.1} ± {:.1}", s.mean, s.std),
            None => "–".to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spread_is_the_mean_and_the_sample_deviation() {
        let s = Spread::of(&[0.88, 0.90, 0.92]).expect("values");
        assert!((s.mean - 0.90).abs() < 1e-12);
        assert!((s.std - 0.02).abs() < 1e-12, "{}", s.std);
        assert_eq!(Spread::cell(Some(s), true), "90.00 ± 2.00");
        assert_eq!(
            Spread::cell(Spread::of(&[598.0]), false),
            "598.0 ± 0.0",
            "one run has no spread"
        );
        assert_eq!(Spread::cell(None, true), "–");
        assert_eq!(Spread::of(&[]), None);
        let s = Spread::of(&[0.7, 0.8, 0.9]).expect("values");
        assert!((s.mean - 0.8).abs() < 1e-12);
        assert!((s.std - 0.1).abs() < 1e-12);
        assert_eq!(Spread::of(&[0.5]).expect("one").std, 0.0);
    }
}
