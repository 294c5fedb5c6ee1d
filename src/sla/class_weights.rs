//! Class-balanced re-weighting by the effective number of samples (Cui et al., CVPR 2019): the
//! re-balancing baseline of the imbalanced setting.

use serde::{Deserialize, Serialize};

/// How the loss weighs the classes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum ClassWeighting {
    /// Every image counts the same (plain cross-entropy).
    #[default]
    None,
    /// Class c weighs (1 − β) / (1 − β^n_c), normalised to sum to N.
    Effective,
}

impl ClassWeighting {
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Effective => "effective",
        }
    }

    /// The weight of each class for training counts `counts`, or `None` when unweighted.
    pub fn weights(self, counts: &[usize], beta: f64) -> Option<Vec<f64>> {
        match self {
            Self::None => None,
            Self::Effective => Some(effective_number_weights(counts, beta)),
        }
    }
}

/// w_c = (1 − β) / (1 − β^n_c): the inverse of the effective number of samples E_n = (1 − β^n) /
/// (1 − β), normalised so the weights sum to the class count N, as the reference code does. A class
/// with no training image never appears in a loss; it gets weight 0 rather than infinity.
pub fn effective_number_weights(counts: &[usize], beta: f64) -> Vec<f64> {
    let raw: Vec<f64> = counts
        .iter()
        .map(|&n| {
            if n == 0 {
                0.0
            } else {
                (1.0 - beta) / (1.0 - beta.powf(n as f64))
            }
        })
        .collect();
    let sum: f64 = raw.iter().sum();
    if sum > 0.0 && sum.is_finite() {
        raw.iter().map(|w| w * counts.len() as f64 / sum).collect()
    } else {
        vec![1.0; counts.len()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn effective_weights_match_hand_values() {
        // β = 0.9, counts 1 and 2: E_1 = 1, E_2 = (1 − 0.81) / 0.1 = 1.9; raw weights 1 and 1/1.9,
        // normalised to sum 2: 2 · 1.9 / 2.9 and 2 / 2.9.
        let w = effective_number_weights(&[1, 2], 0.9);
        assert!((w[0] - 3.8 / 2.9).abs() < 1e-12, "{w:?}");
        assert!((w[1] - 2.0 / 2.9).abs() < 1e-12, "{w:?}");
        // β = 0.999 and counts 6000 / 60: E = (1 − 0.999^n) / 0.001 ≈ 997.53 and 58.26.
        let w = effective_number_weights(&[6000, 60], 0.999);
        let e = |n: f64| (1.0 - 0.999f64.powf(n)) / 0.001;
        let (a, b) = (1.0 / e(6000.0), 1.0 / e(60.0));
        assert!((w[0] - 2.0 * a / (a + b)).abs() < 1e-12);
        assert!((w[1] - 2.0 * b / (a + b)).abs() < 1e-12);
        assert!((w.iter().sum::<f64>() - 2.0).abs() < 1e-12);
    }

    #[test]
    fn equal_counts_give_uniform_weights_and_none_gives_no_weights() {
        let w = effective_number_weights(&[500; 4], 0.999);
        assert!(w.iter().all(|x| (x - 1.0).abs() < 1e-12), "{w:?}");
        assert_eq!(ClassWeighting::None.weights(&[1, 2], 0.9), None);
        assert_eq!(effective_number_weights(&[0, 3], 0.9)[0], 0.0);
    }
}
