//! Evaluation: accuracy of every inference mode, per-transformation accuracy and confusion matrices.

use candle_core::{D, DType, Result, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::data::{Augmentation, Dataset, Normalization, make_batch};
use crate::sla::{Mode, joint};

use super::setup::Model;
use crate::run::{PerClassAcc, SampleGrid};

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
/// all M transformations, so per-transformation accuracy exists for every mode. `should_stop` is asked
/// before every batch: a long evaluation must not hold up a user who stops the run (`Ok(None)`).
pub fn evaluate(
    model: &Model,
    data: &Dataset,
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
    // Evaluation batches are never augmented; the RNG is required by the batcher and unused.
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let indices: Vec<usize> = (0..data.len()).collect();
    for chunk in indices.chunks(batch_size.max(1)) {
        if should_stop() {
            return Ok(None);
        }
        let (images, labels) = make_batch(
            data,
            chunk,
            &Augmentation::none(),
            normalization,
            &mut rng,
            &model.device,
        )?;
        let expanded = model.expander.expand(&images)?;
        let features = model.net.features(&expanded, false)?;
        let outputs = objective.outputs(model.net.heads(), &features)?;
        let predictions = objective.predictions(&outputs)?;
        let loss = if objective.mode == Mode::Baseline {
            objective.class_loss(&predictions.single, &labels)?
        } else {
            objective.loss(&outputs, &labels)?
        };
        let label_values = labels.to_vec1::<u32>()?;
        tally.loss_sum += loss.to_dtype(DType::F64)?.to_scalar::<f64>()? * chunk.len() as f64;
        tally.images += chunk.len();
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
    }))
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
    })
}
