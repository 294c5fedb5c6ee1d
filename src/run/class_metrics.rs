//! Per-class test accuracy and the many / medium / few group accuracies of the imbalanced setting,
//! as `metrics.jsonl` records them.

use serde::{Deserialize, Serialize};

use super::float;

/// One value for each inference: single (SLA+SI, or the plain head), aggregated over the M views
/// (SLA+AG; DA and MT average their N-way head) and the self-distilled head (SLA+SD).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ByInference {
    #[serde(with = "float")]
    pub single: f64,
    #[serde(
        default,
        with = "float::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub aggregated: Option<f64>,
    #[serde(
        default,
        with = "float::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub self_distilled: Option<f64>,
}

impl ByInference {
    /// The names of the inferences, in table order.
    pub const NAMES: [&'static str; 3] = ["single", "aggregated", "self-distilled"];

    /// Each inference's value in the order of `NAMES` (`None` where the mode lacks it).
    pub fn values(&self) -> [Option<f64>; 3] {
        [Some(self.single), self.aggregated, self.self_distilled]
    }
}

/// Test accuracy of each class (length N) for each inference; an inference the mode lacks is empty.
/// A class without test images has accuracy NaN.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PerClassAcc {
    #[serde(with = "float::vec")]
    pub single: Vec<f64>,
    #[serde(default, with = "float::vec", skip_serializing_if = "Vec::is_empty")]
    pub aggregated: Vec<f64>,
    #[serde(default, with = "float::vec", skip_serializing_if = "Vec::is_empty")]
    pub self_distilled: Vec<f64>,
}

impl PerClassAcc {
    /// The per-class accuracies of each inference present, with its name.
    pub fn inferences(&self) -> Vec<(&'static str, &[f64])> {
        [
            ("single", self.single.as_slice()),
            ("aggregated", &self.aggregated),
            ("self-distilled", &self.self_distilled),
        ]
        .into_iter()
        .filter(|(_, values)| !values.is_empty())
        .collect()
    }

    /// Mean accuracy over the classes of `group` for each inference; `None` when no class of the
    /// group has test images.
    pub fn group_mean(&self, groups: &[Group], group: Group) -> Option<ByInference> {
        let mean = |values: &[f64]| -> Option<f64> {
            let members: Vec<f64> = values
                .iter()
                .zip(groups)
                .filter(|(v, g)| **g == group && v.is_finite())
                .map(|(v, _)| *v)
                .collect();
            (!members.is_empty()).then(|| members.iter().sum::<f64>() / members.len() as f64)
        };
        Some(ByInference {
            single: mean(&self.single)?,
            aggregated: mean(&self.aggregated),
            self_distilled: mean(&self.self_distilled),
        })
    }
}

/// How classes were split into many / medium / few.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GroupRule {
    /// Fewer than 30 classes: thirds of the classes sorted by training count.
    Thirds,
    /// 30 classes or more: many > 100, medium 20–100, few < 20 training images (Liu et al., 2019).
    Counts,
}

impl GroupRule {
    /// How the groups were formed, for printed output.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Thirds => "many / medium / few: thirds of the classes sorted by training count",
            Self::Counts => "many / medium / few: over 100, 20 to 100, under 20 training images",
        }
    }
}

/// A class's group by its training count.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Group {
    Many,
    Medium,
    Few,
}

impl Group {
    pub const ALL: [Group; 3] = [Group::Many, Group::Medium, Group::Few];

    pub fn name(self) -> &'static str {
        match self {
            Self::Many => "many",
            Self::Medium => "medium",
            Self::Few => "few",
        }
    }
}

/// The group of each class from the training counts, and the rule used. With fewer than 30
/// classes, the count thresholds would put every class of a small dataset in one group, so the
/// classes sorted by count (ties by class order) are cut in thirds: the first and last ⌊N/3⌉ are
/// many and few, the rest medium.
pub fn class_groups(train_counts: &[usize]) -> (GroupRule, Vec<Group>) {
    let n = train_counts.len();
    if n >= 30 {
        let groups = train_counts
            .iter()
            .map(|&count| match count {
                101.. => Group::Many,
                20..=100 => Group::Medium,
                _ => Group::Few,
            })
            .collect();
        return (GroupRule::Counts, groups);
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&c| std::cmp::Reverse(train_counts[c]));
    let third = (n + 1) / 3;
    let mut groups = vec![Group::Medium; n];
    for (rank, &class) in order.iter().enumerate() {
        if rank < third {
            groups[class] = Group::Many;
        } else if rank >= n - third {
            groups[class] = Group::Few;
        }
    }
    (GroupRule::Thirds, groups)
}

/// The many / medium / few accuracies of one evaluation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GroupAccuracies {
    pub rule: GroupRule,
    pub many: Option<ByInference>,
    pub medium: Option<ByInference>,
    pub few: Option<ByInference>,
}

impl GroupAccuracies {
    /// The group accuracies for a training set with these per-class counts; `None` unless the run
    /// is `long_tailed` (a balanced set has no many / few classes).
    pub fn of(per_class: &PerClassAcc, train_counts: &[usize], long_tailed: bool) -> Option<Self> {
        if !long_tailed {
            return None;
        }
        let (rule, groups) = class_groups(train_counts);
        Some(Self {
            rule,
            many: per_class.group_mean(&groups, Group::Many),
            medium: per_class.group_mean(&groups, Group::Medium),
            few: per_class.group_mean(&groups, Group::Few),
        })
    }
}

/// Whether a training set with these counts is long-tailed, so that the imbalanced setting's group
/// accuracies mean something: a run made long-tailed (ρ > 1) always is; otherwise the largest class
/// must hold at least twice the images of the smallest (a naturally long-tailed dataset), so that a
/// balanced set cut short by a limit, off by a few images per class, is not split into groups.
pub fn is_long_tailed(imbalance_ratio: f64, train_counts: &[usize]) -> bool {
    let (Some(&max), Some(&min)) = (train_counts.iter().max(), train_counts.iter().min()) else {
        return false;
    };
    imbalance_ratio > 1.0 || max >= 2 * min
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thirds_by_count_with_ties_in_class_order() {
        let (rule, groups) = class_groups(&[6000, 3596, 2156, 1292, 774, 464, 278, 166, 100, 60]);
        assert_eq!(rule, GroupRule::Thirds);
        use Group::*;
        assert_eq!(
            groups,
            [
                Many, Many, Many, Medium, Medium, Medium, Medium, Few, Few, Few
            ]
        );
        // Sorted by count, not by class index; equal counts keep class order.
        let (_, groups) = class_groups(&[5, 50, 5, 500, 50]);
        assert_eq!(groups, [Few, Many, Few, Many, Medium]);
    }

    #[test]
    fn thirty_classes_or_more_use_the_count_thresholds() {
        let counts: Vec<usize> = (0..30).map(|c| [500, 101, 100, 20, 19, 1][c % 6]).collect();
        let (rule, groups) = class_groups(&counts);
        assert_eq!(rule, GroupRule::Counts);
        use Group::*;
        assert_eq!(&groups[..6], [Many, Many, Medium, Medium, Few, Few]);
    }

    #[test]
    fn group_means_average_the_classes_of_each_group() {
        use Group::*;
        let groups = [Many, Many, Medium, Few];
        let acc = PerClassAcc {
            single: vec![1.0, 0.5, 0.25, 0.0],
            aggregated: vec![1.0, 1.0, 0.5, f64::NAN],
            self_distilled: vec![],
        };
        let many = acc.group_mean(&groups, Many).expect("many");
        assert_eq!(many.single, 0.75);
        assert_eq!(many.aggregated, Some(1.0));
        assert_eq!(many.self_distilled, None);
        let few = acc.group_mean(&groups, Few).expect("few");
        assert_eq!(few.single, 0.0);
        // The only few class has no test image for the aggregated inference here.
        assert_eq!(few.aggregated, None);
        let json = serde_json::to_string(&acc).expect("json");
        assert_eq!(
            json,
            r#"{"single":[1.0,0.5,0.25,0.0],"aggregated":[1.0,1.0,0.5,"NaN"]}"#
        );
        let back: PerClassAcc = serde_json::from_str(&json).expect("parse");
        assert_eq!(back.single, acc.single);
        assert!(back.aggregated[3].is_nan());
    }

    #[test]
    fn long_tailed_means_made_so_or_a_factor_two_between_classes() {
        assert!(!is_long_tailed(1.0, &[500; 10]));
        assert!(!is_long_tailed(1.0, &[21, 19, 24]));
        assert!(is_long_tailed(1.0, &[500, 250]));
        assert!(is_long_tailed(1.5, &[500, 333]));
        assert!(!is_long_tailed(2.0, &[]));
    }
}
