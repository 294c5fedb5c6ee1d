//! Plain-data pictures of a training run: what the views, the GUI and `sla render` draw from.
//!
//! Nothing here holds a tensor. A run folder keeps the latest snapshot as `snapshot.json`,
//! one `EvalMetrics` per evaluation as a line of `metrics.jsonl`, and the per-step loss in `steps.csv`
//! (`step,epoch,loss,lr`).

use serde::{Deserialize, Serialize};

/// The metrics of one evaluation on the test (or validation) set. Accuracies are fractions in [0, 1].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EvalMetrics {
    pub epoch: usize,
    pub step: u64,
    /// Mean training loss since the previous evaluation.
    pub train_loss: f64,
    /// Mean loss of the run's objective on the evaluation set.
    pub eval_loss: f64,
    /// Single inference: the identity view alone (SLA+SI; the plain head for baseline/DA/MT).
    pub single_acc: f64,
    /// Aggregated inference over all M views (SLA+AG, and DA/MT's averaged N-way head); absent for baseline.
    pub agg_acc: Option<f64>,
    /// The self-distilled head (SLA+SD only).
    pub sd_acc: Option<f64>,
    /// Joint (class, transformation) accuracy over all N·M labels and all views (SLA modes only).
    pub joint_acc: Option<f64>,
    /// Accuracy of the class prediction made from view j alone, one entry per transformation.
    pub per_transform_acc: Vec<f64>,
    /// Single accuracy on the held-out validation split, when the run has one.
    pub validation_single_acc: Option<f64>,
    /// Seconds of training so far.
    pub elapsed_s: f64,
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
}

impl TrainingSnapshot {
    pub fn num_classes(&self) -> usize {
        self.class_names.len()
    }

    pub fn num_transforms(&self) -> usize {
        self.transform_names.len()
    }
}
