//! Long-tailed training sets: keep fewer images of later classes, the way the imbalanced-classification
//! literature builds long-tailed CIFAR (Cao et al., 2019, LDAM-DRW; Cui et al., 2019).

use serde::{Deserialize, Serialize};

use super::dataset::{DataError, Dataset};
use super::split::select;

/// How the per-class counts fall from the first class to the last.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum ImbalanceProfile {
    /// Class c keeps ⌊n_max · ρ^(−c/(N−1))⌋ images (long-tailed CIFAR).
    #[default]
    Exp,
    /// The first ⌊N/2⌋ classes keep n_max images, the others ⌊n_max/ρ⌋.
    Step,
}

impl ImbalanceProfile {
    pub fn name(self) -> &'static str {
        match self {
            Self::Exp => "exp",
            Self::Step => "step",
        }
    }
}

/// A long-tailed subsample: the imbalance ratio ρ = n_max / n_min and the profile.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Imbalance {
    pub ratio: f64,
    pub profile: ImbalanceProfile,
}

impl Imbalance {
    /// Whether this leaves the data as it is (ρ = 1).
    pub fn is_balanced(&self) -> bool {
        self.ratio == 1.0
    }

    /// How many training images class c (of `available` per class, in class order) keeps.
    ///
    /// n_max is the smallest class's available count, so every class can give its share. The
    /// exponential profile is computed as the reference code computes it (`n_max * (1/ρ)^(c/(N−1))`,
    /// truncated), so the counts match the published long-tailed sets exactly. A ρ that leaves a
    /// class with no image is refused, naming the class and the largest usable ρ (n_max, for both
    /// profiles: the last class then keeps one image).
    pub fn class_counts(
        &self,
        available: &[usize],
        class_names: &[String],
    ) -> Result<Vec<usize>, DataError> {
        let name = |c: usize| {
            class_names
                .get(c)
                .cloned()
                .unwrap_or_else(|| format!("class {c}"))
        };
        if !(self.ratio.is_finite() && self.ratio >= 1.0) {
            return Err(DataError::Invalid(format!(
                "the imbalance ratio must be a number of at least 1 (1: the data as it is), got {}",
                self.ratio
            )));
        }
        let Some((smallest, &n_max)) = available.iter().enumerate().min_by_key(|(_, n)| **n) else {
            return Ok(Vec::new());
        };
        if n_max == 0 {
            return Err(DataError::Invalid(format!(
                "class {:?} has no training image, so no imbalance can be built",
                name(smallest)
            )));
        }
        let n = available.len();
        let counts: Vec<usize> = (0..n)
            .map(|c| match self.profile {
                _ if n == 1 => n_max,
                ImbalanceProfile::Exp => {
                    (n_max as f64 * (1.0 / self.ratio).powf(c as f64 / (n - 1) as f64)) as usize
                }
                ImbalanceProfile::Step if c < n / 2 => n_max,
                ImbalanceProfile::Step => (n_max as f64 / self.ratio) as usize,
            })
            .collect();
        if let Some(empty) = counts.iter().position(|&k| k == 0) {
            return Err(DataError::Invalid(format!(
                "an imbalance ratio of {} leaves class {:?} with no training image \
                 (n_max = {n_max}, the smallest class's count); the largest usable ratio is {n_max}",
                self.ratio,
                name(empty)
            )));
        }
        Ok(counts)
    }

    /// The long-tailed training set: the first `class_counts[c]` images of each class c, in file
    /// order (deterministic: the same data and ρ always keep the same images).
    pub fn apply(&self, train: &Dataset) -> Result<Dataset, DataError> {
        let counts = self.class_counts(&class_counts(train), &train.class_names)?;
        let mut kept = vec![0usize; counts.len()];
        let indices: Vec<usize> = (0..train.len())
            .filter(|&i| {
                let class = train.labels[i] as usize;
                let keep = kept[class] < counts[class];
                kept[class] += usize::from(keep);
                keep
            })
            .collect();
        Ok(select(train, &indices))
    }
}

/// Images per class (length: the dataset's class count).
pub fn class_counts(data: &Dataset) -> Vec<usize> {
    let mut counts = vec![0usize; data.num_classes()];
    for &label in &data.labels {
        if let Some(count) = counts.get_mut(label as usize) {
            *count += 1;
        }
    }
    counts
}

/// A compact one-line histogram of per-class counts, e.g. `6000 ▇▇▇ … 60 ▁` with the numbers.
pub fn histogram_line(counts: &[usize]) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let max = counts.iter().copied().max().unwrap_or(0).max(1);
    let bars: String = counts
        .iter()
        .map(|&k| BARS[(k * (BARS.len() - 1) + max / 2) / max])
        .collect();
    format!("{bars}  {}", counts_line(counts))
}

/// The per-class counts and their total, e.g. `100 50 1 (total 151)`.
pub fn counts_line(counts: &[usize]) -> String {
    let numbers: Vec<String> = counts.iter().map(|k| k.to_string()).collect();
    format!(
        "{} (total {})",
        numbers.join(" "),
        counts.iter().sum::<usize>()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::ImageShape;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|c| format!("c{c}")).collect()
    }

    fn exp(ratio: f64) -> Imbalance {
        Imbalance {
            ratio,
            profile: ImbalanceProfile::Exp,
        }
    }

    #[test]
    fn exponential_counts_match_hand_values() {
        // 6000 · 100^(−c/9): 6000, 3596.9, 2156.3, 1292.7, 774.9, 464.6, 278.5, 166.8, 100.0, 60.0.
        let counts = exp(100.0)
            .class_counts(&[6000; 10], &names(10))
            .expect("counts");
        assert_eq!(
            counts,
            [6000, 3596, 2156, 1292, 774, 464, 278, 166, 100, 60]
        );
        // 6000 · 10^(−c/9): 6000, 4645.3, 3596.9, 2784.7, 2156.3, 1669.3, 1292.7, 1000.0, 774.9, 600.0.
        let counts = exp(10.0)
            .class_counts(&[6000; 10], &names(10))
            .expect("counts");
        assert_eq!(
            counts,
            [6000, 4645, 3596, 2784, 2156, 1669, 1292, 1000, 774, 600]
        );
    }

    #[test]
    fn step_counts_and_n_max_is_the_smallest_class() {
        let step = |ratio| Imbalance {
            ratio,
            profile: ImbalanceProfile::Step,
        };
        let mut available = [6000; 10];
        available[3] = 5000;
        assert_eq!(
            step(100.0)
                .class_counts(&available, &names(10))
                .expect("counts"),
            [5000, 5000, 5000, 5000, 5000, 50, 50, 50, 50, 50]
        );
        assert_eq!(
            step(10.0)
                .class_counts(&[6000; 10], &names(10))
                .expect("counts"),
            [6000, 6000, 6000, 6000, 6000, 600, 600, 600, 600, 600]
        );
        assert_eq!(
            exp(1.0)
                .class_counts(&available, &names(10))
                .expect("counts"),
            [5000; 10]
        );
    }

    #[test]
    fn a_ratio_that_empties_a_class_names_it_and_the_largest_usable_ratio() {
        let error = exp(61.0)
            .class_counts(&[60, 80, 70], &names(3))
            .expect_err("60 · 61^(−1) < 1");
        let text = error.to_string();
        assert!(text.contains("\"c2\""), "{text}");
        assert!(text.contains("largest usable ratio is 60"), "{text}");
        assert_eq!(
            exp(60.0)
                .class_counts(&[60, 80, 70], &names(3))
                .expect("ρ = n_max"),
            [60, 7, 1]
        );
        assert!(exp(0.5).class_counts(&[60; 3], &names(3)).is_err());
        assert!(exp(f64::NAN).class_counts(&[60; 3], &names(3)).is_err());
    }

    #[test]
    fn apply_keeps_the_first_images_of_each_class_in_file_order() {
        let labels = [0u32, 1, 0, 1, 0, 1, 0, 1, 1, 0];
        let data = Dataset {
            shape: ImageShape {
                channels: 1,
                height: 1,
                width: 1,
            },
            images: (0..labels.len() as u8).collect(),
            labels: labels.to_vec(),
            class_names: names(2),
        };
        let kept = exp(5.0).apply(&data).expect("apply");
        // n_max = 5; class 0 keeps 5, class 1 keeps ⌊5/5⌋ = 1: its first image, index 1.
        assert_eq!(kept.images, [0, 1, 2, 4, 6, 9]);
        assert_eq!(kept.labels, [0, 1, 0, 0, 0, 0]);
        assert_eq!(class_counts(&kept), [5, 1]);
        let again = exp(5.0).apply(&data).expect("apply");
        assert_eq!(again.images, kept.images);
    }

    #[test]
    fn histogram_line_shows_counts_and_total() {
        assert_eq!(histogram_line(&[100, 50, 1]), "█▅▁  100 50 1 (total 151)");
    }
}
