//! Plain-data pictures of a training run: what the views, the GUI and `sla render` draw from.
//!
//! Nothing here holds a tensor. A run folder keeps the latest snapshot as `snapshot.json`,
//! one `EvalMetrics` per evaluation as a line of `metrics.jsonl`, and the per-step loss in `steps.csv`
//! (its columns: `logs::STEPS_HEADER`).

use serde::{Deserialize, Serialize};

use super::class_metrics::{ByInference, Group, GroupRule, PerClassAcc};
use super::float;

/// The metrics of one evaluation on the test (or validation) set. Accuracies are fractions in [0, 1].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EvalMetrics {
    pub epoch: usize,
    pub step: u64,
    /// Mean training loss since the previous evaluation.
    #[serde(with = "float")]
    pub train_loss: f64,
    /// Mean loss of the run's objective on the evaluation set.
    #[serde(with = "float")]
    pub eval_loss: f64,
    /// Single inference: the identity view alone (SLA+SI; the plain head for baseline/DA/MT).
    #[serde(with = "float")]
    pub single_acc: f64,
    /// Aggregated inference over all M views (SLA+AG, and DA/MT's averaged N-way head); absent for baseline.
    #[serde(default, with = "float::option")]
    pub agg_acc: Option<f64>,
    /// The self-distilled head (SLA+SD only).
    #[serde(default, with = "float::option")]
    pub sd_acc: Option<f64>,
    /// Joint (class, transformation) accuracy over all N·M labels and all views (SLA modes only).
    #[serde(default, with = "float::option")]
    pub joint_acc: Option<f64>,
    /// Accuracy of the class prediction made from view j alone, one entry per transformation.
    #[serde(with = "float::vec")]
    pub per_transform_acc: Vec<f64>,
    /// Single accuracy on the held-out validation split, when the run has one.
    #[serde(default, with = "float::option")]
    pub validation_single_acc: Option<f64>,
    /// Seconds of training so far.
    #[serde(with = "float")]
    pub elapsed_s: f64,
    /// Test accuracy of each class, per inference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_class_acc: Option<PerClassAcc>,
    /// How classes were grouped into many / medium / few (imbalanced training sets only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_rule: Option<GroupRule>,
    /// Mean per-class accuracy of the many-shot classes, per inference (imbalanced only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub many_acc: Option<ByInference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub medium_acc: Option<ByInference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub few_acc: Option<ByInference>,
    /// Few-shot runs: the test episodes behind the accuracies, which are then means over episodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub episodes: Option<EpisodeStats>,
}

/// What a few-shot evaluation averaged over: `episodes` test episodes of `ways` ways with `shots`
/// support and `queries` query images each; the half-widths of the 95 % confidence intervals of
/// the mean single and aggregated accuracies (1.96·σ/√episodes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EpisodeStats {
    pub episodes: usize,
    pub ways: usize,
    pub shots: usize,
    pub queries: usize,
    #[serde(with = "float")]
    pub single_ci95: f64,
    #[serde(default, with = "float::option")]
    pub agg_ci95: Option<f64>,
}

impl EvalMetrics {
    /// The group accuracy recorded for `group`.
    pub fn group_acc(&self, group: Group) -> Option<&ByInference> {
        match group {
            Group::Many => self.many_acc.as_ref(),
            Group::Medium => self.medium_acc.as_ref(),
            Group::Few => self.few_acc.as_ref(),
        }
    }
}

/// A few evaluation images with their M transformed copies, as the model saw them, and its verdicts.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SampleGrid {
    pub samples: usize,
    pub num_transforms: usize,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    /// `samples * num_transforms` tiles, tile `b * M + j` = t_j(x_b), each CHW u8 (un-normalised).
    pub pixels: Vec<u8>,
    /// True joint label of each tile, `y_b * M + j` (for non-joint modes the class `y_b`).
    pub true_labels: Vec<u32>,
    /// Predicted label of each tile in the same label space as `true_labels`.
    pub predicted_labels: Vec<u32>,
    /// Few-shot episodes: the first `support_samples` samples are support images, labelled and
    /// never predicted (their predicted label is their true one); the rest are queries.
    #[serde(default)]
    pub support_samples: usize,
}

/// Everything a live view needs at one evaluation.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainingSnapshot {
    pub metrics: EvalMetrics,
    pub class_names: Vec<String>,
    pub transform_names: Vec<String>,
    /// Joint confusion counts, row-major K×K with K = N·M: row = true joint label `y·M + j`,
    /// column = the joint label argmax over all N·M logits of view j. Empty for non-joint modes.
    pub joint_confusion: Vec<u32>,
    /// Class confusion counts, row-major N×N (row = true, column = predicted) of the run's headline
    /// inference: aggregated for SLA, self-distilled for SLA+SD, single otherwise.
    pub class_confusion: Vec<u32>,
    /// The prediction for every evaluation row (test image b under transformation j at `b·M + j`):
    /// the joint label for SLA modes, the class otherwise. Lets a view open the images behind any
    /// confusion cell.
    #[serde(default)]
    pub row_predictions: Vec<u32>,
    pub samples: SampleGrid,
    /// Training images of each class (length N), as the run trained on them.
    #[serde(default)]
    pub train_class_counts: Vec<usize>,
    /// The evaluation images the headline inference got most wrong, highest loss first.
    #[serde(default)]
    pub top_losses: Vec<ImageLoss>,
}

/// One evaluation image's loss under the headline inference (the class cross-entropy of its
/// softmax), with what that inference predicted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ImageLoss {
    /// Index of the image in the evaluation set.
    pub image: usize,
    pub label: u32,
    pub predicted: u32,
    /// Probability of the predicted class, and of the true one (whose −ln is the loss).
    #[serde(with = "super::float")]
    pub p_predicted: f64,
    #[serde(with = "super::float")]
    pub p_true: f64,
    #[serde(with = "super::float")]
    pub loss: f64,
}

impl TrainingSnapshot {
    pub fn num_classes(&self) -> usize {
        self.class_names.len()
    }

    pub fn num_transforms(&self) -> usize {
        self.transform_names.len()
    }

    /// Check that every count and label agrees with the class and transformation lists, so that views
    /// can index without bounds checks of their own. A snapshot read from a file passes this first.
    pub fn validate(&self) -> Result<(), String> {
        let (n, m) = (self.num_classes(), self.num_transforms());
        if n == 0 || m == 0 {
            return Err(format!(
                "{n} classes and {m} transformations: both must be at least 1"
            ));
        }
        let k = n.checked_mul(m).ok_or("too many joint labels")?;
        let square = |side: usize| side.checked_mul(side).ok_or("matrix too large");
        if !self.joint_confusion.is_empty() && self.joint_confusion.len() != square(k)? {
            return Err(format!(
                "the joint confusion matrix has {} cells, expected {k}² = {}",
                self.joint_confusion.len(),
                square(k)?
            ));
        }
        if !self.class_confusion.is_empty() && self.class_confusion.len() != square(n)? {
            return Err(format!(
                "the class confusion matrix has {} cells, expected {n}² = {}",
                self.class_confusion.len(),
                square(n)?
            ));
        }
        if self.metrics.per_transform_acc.len() > m {
            return Err(format!(
                "{} per-transformation accuracies for {m} transformations",
                self.metrics.per_transform_acc.len()
            ));
        }
        if !self.train_class_counts.is_empty() && self.train_class_counts.len() != n {
            return Err(format!(
                "{} training counts for {n} classes",
                self.train_class_counts.len()
            ));
        }
        if let Some(per_class) = &self.metrics.per_class_acc
            && let Some((name, values)) = per_class
                .inferences()
                .into_iter()
                .find(|(_, values)| values.len() != n)
        {
            return Err(format!(
                "{} {name} per-class accuracies for {n} classes",
                values.len()
            ));
        }
        let label_bound = if self.joint_confusion.is_empty() {
            n
        } else {
            k
        };
        if self
            .row_predictions
            .iter()
            .any(|&p| p as usize >= label_bound)
        {
            return Err(format!("a row prediction is not below {label_bound}"));
        }
        if let Some(bad) = self
            .top_losses
            .iter()
            .find(|l| l.label as usize >= n || l.predicted as usize >= n)
        {
            return Err(format!(
                "a top-loss image has class {} or prediction {}, not below {n}",
                bad.label, bad.predicted
            ));
        }
        self.samples.validate(n, m)
    }
}

impl SampleGrid {
    /// `count` images packed in `pixels` (CHW u8 of `shape` each), laid out as an unlabelled
    /// gallery of at most `max_columns` to a row; the last row is padded with black tiles.
    pub fn gallery(
        shape: crate::data::ImageShape,
        mut pixels: Vec<u8>,
        count: usize,
        max_columns: usize,
    ) -> Self {
        let columns = count.clamp(1, max_columns.max(1));
        let rows = count.div_ceil(columns);
        pixels.resize(rows * columns * shape.image_len(), 0);
        let labels = vec![0; rows * columns];
        Self {
            samples: rows,
            num_transforms: columns,
            channels: shape.channels,
            height: shape.height,
            width: shape.width,
            pixels,
            true_labels: labels.clone(),
            predicted_labels: labels,
            support_samples: 0,
        }
    }

    fn validate(&self, num_classes: usize, num_transforms: usize) -> Result<(), String> {
        if self.samples == 0 {
            return Ok(());
        }
        if self.support_samples > self.samples {
            return Err(format!(
                "the sample grid has {} support samples among {}",
                self.support_samples, self.samples
            ));
        }
        if self.num_transforms != num_transforms {
            return Err(format!(
                "the sample grid has {} transformations, the run {num_transforms}",
                self.num_transforms
            ));
        }
        if !matches!(self.channels, 1 | 3) || self.height == 0 || self.width == 0 {
            return Err(format!(
                "sample images of {}×{}×{} are not grey or RGB images",
                self.channels, self.height, self.width
            ));
        }
        let tiles = self
            .samples
            .checked_mul(num_transforms)
            .ok_or("too many tiles")?;
        let pixels = [self.channels, self.height, self.width]
            .iter()
            .try_fold(tiles, |acc, &d| acc.checked_mul(d))
            .ok_or("sample images too large")?;
        if self.pixels.len() != pixels {
            return Err(format!(
                "the sample grid holds {} bytes, expected {pixels}",
                self.pixels.len()
            ));
        }
        if self.true_labels.len() != tiles || self.predicted_labels.len() != tiles {
            return Err(format!(
                "the sample grid has {} true and {} predicted labels for {tiles} tiles",
                self.true_labels.len(),
                self.predicted_labels.len()
            ));
        }
        let bound = (num_classes * num_transforms) as u32;
        if self
            .true_labels
            .iter()
            .chain(&self.predicted_labels)
            .any(|&label| label >= bound)
        {
            return Err(format!("a sample label is not below {bound}"));
        }
        Ok(())
    }
}
