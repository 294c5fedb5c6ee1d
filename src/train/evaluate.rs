//! Evaluation: accuracy of every inference mode, per-transformation accuracy and confusion matrices.

use std::sync::Arc;

use candle_core::{D, DType, Result, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::data::{Augmentation, Dataset, Normalization};
use crate::sla::{Mode, joint};

use super::prefetch::{BatchPlan, Prefetcher};
use super::setup::Model;
use crate::run::{ImageLoss, PerClassAcc, SampleGrid};

/// How many of the highest-loss images an evaluation keeps for the app's top-losses gallery.
pub const TOP_LOSSES: usize = 32;

/// Everything one pass over an evaluation set measures.
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluation {
    pub loss: f64,
    pub single_acc: f64,
    pub agg_acc: Option<f64>,
    pub sd_acc: Option<f64>,
    pub joint_acc: Option<f64>,
    pub per_transform_acc: Vec<f64>,
    /// (N·M)² joint counts, joint modes only.
    pub joint_confusion: Vec<u32>,
    /// N² counts of the headline inference.
    pub class_confusion: Vec<u32>,
    /// The first few images with their M views and predictions.
    pub samples: SampleGrid,
    /// The prediction of every row (image b, view j at b·M + j): joint label or class.
    pub row_predictions: Vec<u32>,
    /// Accuracy of each class for every inference the mode has.
    pub per_class_acc: PerClassAcc,
    /// The `TOP_LOSSES` images with the highest headline loss, highest first.
    pub top_losses: Vec<ImageLoss>,
}

#[derive(Default)]
struct Tally {
    loss_sum: f64,
    images: usize,
    single: usize,
    agg: usize,
    sd: usize,
    joint: usize,
    per_view: Vec<usize>,
    /// Per class: test images, then hits of the single, aggregated and self-distilled inference.
    class_images: Vec<usize>,
    class_hits: [Vec<usize>; 3],
}

impl Tally {
    fn count_classes(&mut self, inference: usize, predicted: &[u32], labels: &[u32]) {
        for (&p, &l) in predicted.iter().zip(labels) {
            if p == l {
                self.class_hits[inference][l as usize] += 1;
            }
        }
    }

    /// Hits over images of each class; NaN for a class without test images.
    fn class_accuracy(&self, inference: usize) -> Vec<f64> {
        self.class_hits[inference]
            .iter()
            .zip(&self.class_images)
            .map(|(&hits, &images)| {
                if images == 0 {
                    f64::NAN
                } else {
                    hits as f64 / images as f64
                }
            })
            .collect()
    }
}

fn argmax(logits: &Tensor) -> Result<Vec<u32>> {
    logits.argmax(D::Minus1)?.flatten_all()?.to_vec1::<u32>()
}

fn hits(predicted: &[u32], labels: &[u32]) -> usize {
    predicted.iter().zip(labels).filter(|(p, l)| p == l).count()
}

/// Evaluate `model` on `data` in batches of `batch_size` source images. Every batch is expanded by
/// all M transformations, so per-transformation accuracy exists for every mode; the next batch is
/// made and expanded on a thread of its own while the network runs on this one. `should_stop` is
/// asked before every batch: a long evaluation must not hold up a user who stops the run
/// (`Ok(None)`).
pub fn evaluate(
    model: &Model,
    data: &Arc<Dataset>,
    normalization: &Normalization,
    batch_size: usize,
    sample_count: usize,
    should_stop: &dyn Fn() -> bool,
) -> Result<Option<Evaluation>> {
    if data.is_empty() {
        candle_core::bail!("the evaluation set holds no images");
    }
    let objective = &model.objective;
    let (n, m) = (objective.num_classes, objective.num_transforms);
    let k = n * m;
    let joint_mode = objective.mode.is_joint();
    let mut tally = Tally {
        per_view: vec![0; m],
        class_images: vec![0; n],
        class_hits: [vec![0; n], vec![0; n], vec![0; n]],
        ..Default::default()
    };
    let mut joint_confusion = if joint_mode {
        vec![0u32; k * k]
    } else {
        Vec::new()
    };
    let mut class_confusion = vec![0u32; n * n];
    let sample_count = sample_count.min(data.len());
    let mut sample_predictions = Vec::with_capacity(sample_count * m);
    let mut all_predictions = Vec::with_capacity(data.len() * m);
    let mut top_losses = Vec::new();
    let batch_size = batch_size.max(1);
    let batches = data.len().div_ceil(batch_size) as u64;
    let plan = BatchPlan {
        dataset: data.clone(),
        augmentation: Augmentation::none(),
        normalization: normalization.clone(),
        expander: Some(model.expander.clone()),
        device: model.device.clone(),
    };
    let images = data.len();
    let mut prefetcher = Prefetcher::spawn(plan, 0..batches, move |batch| {
        let first = batch as usize * batch_size;
        // Evaluation batches are never augmented; the RNG is required by the batcher and unused.
        let indices = (first..(first + batch_size).min(images)).collect();
        (indices, ChaCha8Rng::seed_from_u64(0))
    })?;
    for _ in 0..batches {
        if should_stop() {
            return Ok(None);
        }
        let batch = prefetcher.next_batch()?;
        let (expanded, labels) = (batch.inputs, batch.labels);
        let first = batch.step as usize * batch_size;
        let features = model.net.features(&expanded, false)?;
        let outputs = objective.outputs(model.net.heads(), &features)?;
        let predictions = objective.predictions(&outputs)?;
        let loss = if objective.mode == Mode::Baseline {
            objective.class_loss(&predictions.single, &labels)?
        } else {
            objective.loss(&outputs, &labels)?
        };
        let label_values = labels.to_vec1::<u32>()?;
        tally.loss_sum +=
            loss.to_dtype(DType::F64)?.to_scalar::<f64>()? * label_values.len() as f64;
        tally.images += label_values.len();
        for &label in &label_values {
            tally.class_images[label as usize] += 1;
        }
        let single = argmax(&predictions.single)?;
        tally.single += hits(&single, &label_values);
        tally.count_classes(0, &single, &label_values);
        let aggregated = predictions.aggregated.as_ref().map(argmax).transpose()?;
        if let Some(agg) = &aggregated {
            tally.agg += hits(agg, &label_values);
            tally.count_classes(1, agg, &label_values);
        }
        let distilled = predictions
            .self_distilled
            .as_ref()
            .map(argmax)
            .transpose()?;
        if let Some(sd) = &distilled {
            tally.sd += hits(sd, &label_values);
            tally.count_classes(2, sd, &label_values);
        }
        let per_view = argmax(&predictions.per_view)?;
        for (row, &predicted) in per_view.iter().enumerate() {
            if predicted == label_values[row / m] {
                tally.per_view[row % m] += 1;
            }
        }
        let headline = match objective.mode {
            Mode::Sla => aggregated.as_ref().unwrap_or(&single),
            Mode::SlaSd => distilled.as_ref().unwrap_or(&single),
            _ => &single,
        };
        let headline_logits = match objective.mode {
            Mode::Sla => predictions.aggregated.as_ref(),
            Mode::SlaSd => predictions.self_distilled.as_ref(),
            _ => None,
        }
        .unwrap_or(&predictions.single);
        // The single logits are a strided view of the expanded batch's; softmax needs them packed.
        let headline_logits = headline_logits.to_dtype(DType::F32)?.contiguous()?;
        let probabilities = candle_nn::ops::softmax_last_dim(&headline_logits)?.to_vec2::<f32>()?;
        top_losses = highest_losses(
            top_losses,
            image_losses(&probabilities, &label_values, first),
            TOP_LOSSES,
        );
        for (&truth, &predicted) in label_values.iter().zip(headline) {
            class_confusion[truth as usize * n + predicted as usize] += 1;
        }
        let row_predictions = if joint_mode {
            let predicted = argmax(&outputs.primary)?;
            let truths = joint::joint_labels(&labels, m)?.to_vec1::<u32>()?;
            tally.joint += hits(&predicted, &truths);
            for (&truth, &p) in truths.iter().zip(&predicted) {
                joint_confusion[truth as usize * k + p as usize] += 1;
            }
            predicted
        } else {
            per_view
        };
        let wanted = sample_count * m - sample_predictions.len();
        sample_predictions.extend(row_predictions.iter().take(wanted));
        all_predictions.extend_from_slice(&row_predictions);
    }
    let count = tally.images.max(1) as f64;
    let samples = sample_grid(model, data, sample_count, sample_predictions)?;
    let has_agg = objective.mode != Mode::Baseline;
    let has_sd = objective.mode == Mode::SlaSd;
    let per_class_acc = PerClassAcc {
        single: tally.class_accuracy(0),
        aggregated: if has_agg {
            tally.class_accuracy(1)
        } else {
            Vec::new()
        },
        self_distilled: if has_sd {
            tally.class_accuracy(2)
        } else {
            Vec::new()
        },
    };
    Ok(Some(Evaluation {
        loss: tally.loss_sum / count,
        single_acc: tally.single as f64 / count,
        agg_acc: has_agg.then(|| tally.agg as f64 / count),
        sd_acc: has_sd.then(|| tally.sd as f64 / count),
        joint_acc: joint_mode.then(|| tally.joint as f64 / (count * m as f64)),
        per_transform_acc: tally.per_view.iter().map(|&h| h as f64 / count).collect(),
        joint_confusion,
        class_confusion,
        samples,
        row_predictions: all_predictions,
        per_class_acc,
        top_losses,
    }))
}

/// The loss and prediction of each image of a batch from its class probabilities; `first` is the
/// evaluation-set index of the batch's first image.
fn image_losses(probabilities: &[Vec<f32>], labels: &[u32], first: usize) -> Vec<ImageLoss> {
    probabilities
        .iter()
        .zip(labels)
        .enumerate()
        .map(|(offset, (row, &label))| {
            let (predicted, p_predicted) =
                row.iter()
                    .enumerate()
                    .fold((0, f32::NEG_INFINITY), |best, (class, &p)| {
                        if p > best.1 { (class, p) } else { best }
                    });
            let p_true = f64::from(row.get(label as usize).copied().unwrap_or(0.0));
            ImageLoss {
                image: first + offset,
                label,
                predicted: predicted as u32,
                p_predicted: f64::from(p_predicted),
                p_true,
                // A probability that underflowed to 0 still ranks as the worst, not as infinity.
                loss: -p_true.max(f64::from(f32::MIN_POSITIVE)).ln(),
            }
        })
        .collect()
}

/// The `keep` highest losses of `kept` and `new`, highest first; equal losses keep image order.
fn highest_losses(kept: Vec<ImageLoss>, new: Vec<ImageLoss>, keep: usize) -> Vec<ImageLoss> {
    let mut all = kept;
    all.extend(new);
    // A diverged (NaN) loss sorts first: it is the one to look at.
    all.sort_by(|a, b| {
        b.loss
            .partial_cmp(&a.loss)
            .unwrap_or_else(|| b.loss.is_nan().cmp(&a.loss.is_nan()))
            .then(a.image.cmp(&b.image))
    });
    all.truncate(keep);
    all
}

/// The first `count` images of `data` expanded exactly as the model saw them (un-normalised u8).
fn sample_grid(
    model: &Model,
    data: &Dataset,
    count: usize,
    predicted_labels: Vec<u32>,
) -> Result<SampleGrid> {
    let shape = data.shape;
    let m = model.objective.num_transforms;
    let len = shape.image_len();
    let pixels = model.expander.expand_bytes(
        &data.images[..count * len],
        count,
        (shape.channels, shape.height, shape.width),
    )?;
    let true_labels = data.labels[..count]
        .iter()
        .flat_map(|&y| {
            (0..m as u32).map(move |j| {
                if model.objective.mode.is_joint() {
                    y * m as u32 + j
                } else {
                    y
                }
            })
        })
        .collect();
    Ok(SampleGrid {
        samples: count,
        num_transforms: m,
        channels: shape.channels,
        height: shape.height,
        width: shape.width,
        pixels,
        true_labels,
        predicted_labels,
        support_samples: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_losses_are_the_cross_entropy_of_the_true_class() {
        let probabilities = vec![vec![0.7, 0.2, 0.1], vec![0.25, 0.5, 0.25]];
        let losses = image_losses(&probabilities, &[2, 1], 10);
        assert_eq!(losses[0].image, 10);
        assert_eq!((losses[0].label, losses[0].predicted), (2, 0));
        assert!((losses[0].p_predicted - 0.7).abs() < 1e-7);
        // −ln 0.1 = 2.302585, −ln 0.5 = 0.693147.
        assert!(
            (losses[0].loss - std::f64::consts::LN_10).abs() < 1e-6,
            "{}",
            losses[0].loss
        );
        assert_eq!((losses[1].image, losses[1].predicted), (11, 1));
        assert!((losses[1].loss - std::f64::consts::LN_2).abs() < 1e-6);
    }

    #[test]
    fn the_highest_losses_are_kept_across_batches_highest_first() {
        let loss = |image: usize, loss: f64| ImageLoss {
            image,
            loss,
            ..Default::default()
        };
        let first = vec![loss(0, 0.5), loss(1, 2.0), loss(2, 1.0)];
        let kept = highest_losses(Vec::new(), first, 3);
        let second = vec![loss(3, 3.0), loss(4, 1.0), loss(5, f64::NAN)];
        let kept = highest_losses(kept, second, 4);
        let order: Vec<usize> = kept.iter().map(|l| l.image).collect();
        // NaN first, then 3.0, 2.0, and of the two 1.0s the earlier image.
        assert_eq!(order, [5, 3, 1, 2]);
    }
}
