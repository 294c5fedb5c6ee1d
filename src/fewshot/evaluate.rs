//! Evaluation on held-out episodes: mean accuracy with its 95 % confidence interval for single
//! (SI) and aggregated (AG) inference, the joint confusion accumulated over episodes, and a sample
//! grid of one episode's queries.

use std::sync::Arc;

use candle_core::{DType, Result};

use crate::data::{Augmentation, Dataset};
use crate::run::SampleGrid;
use crate::sla::Mode;

use super::batch::{EpisodePlan, EpisodesAhead, ReadyEpisode};
use super::episode::{Episode, EpisodeSampler, EpisodeShape};
use super::objective::predicted;
use super::setup::{EpisodeData, EpisodeModel};

/// What `episodes` test episodes gave.
#[derive(Clone, Debug, PartialEq)]
pub struct EpisodeEvaluation {
    pub episodes: usize,
    /// Accuracy of every episode, single inference.
    pub single: Vec<f64>,
    /// Accuracy of every episode, aggregated over the M views (DA and SLA).
    pub aggregated: Option<Vec<f64>>,
    /// Mean loss of the run's objective.
    pub loss: f64,
    /// Joint (way, transformation) accuracy over all views (SLA).
    pub joint_acc: Option<f64>,
    /// Accuracy of the class predicted from view j alone (DA and SLA).
    pub per_transform_acc: Vec<f64>,
    /// (N·M)² joint confusion over all episodes, rows true `way·M + j` (SLA; empty otherwise).
    pub joint_confusion: Vec<u32>,
    /// N×N confusion of the headline inference (AG for DA and SLA, SI for the baseline), by way.
    pub class_confusion: Vec<u32>,
    /// The first test episode: the first support image and the first query of each way, with
    /// their views and the queries' verdicts.
    pub samples: SampleGrid,
}

/// Mean and half-width of the 95 % confidence interval, 1.96·σ/√n with σ the standard deviation
/// over episodes (divided by n, as the reference few-shot code's `np.std`).
pub fn mean_and_ci95(values: &[f64]) -> (f64, f64) {
    let n = values.len().max(1) as f64;
    let mean = values.iter().sum::<f64>() / n;
    let variance = values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
    (mean, 1.96 * variance.sqrt() / n.sqrt())
}

/// Tiles of the sample grid: views per image in a snapshot of this mode (the baseline trains on
/// untransformed images only, so its grid and confusion have the identity alone).
pub fn snapshot_transforms(mode: Mode, num_transforms: usize) -> usize {
    if mode.expands_batches() {
        num_transforms
    } else {
        1
    }
}

/// Evaluate `episodes` episodes of `sampler` over `data` (never augmented). `None` when
/// `should_stop` said so meanwhile; `progress` hears of each episode done.
pub fn evaluate_episodes(
    model: &EpisodeModel,
    data: &Arc<Dataset>,
    normalization: &crate::data::Normalization,
    sampler: &EpisodeSampler,
    episodes: usize,
    should_stop: &dyn Fn() -> bool,
    progress: &mut dyn FnMut(usize),
) -> Result<Option<EpisodeEvaluation>> {
    let shape = sampler.shape();
    let n = shape.ways;
    let mode = model.objective.mode;
    let m = model.objective.num_transforms;
    let k = n * m;
    let mut evaluation = EpisodeEvaluation {
        episodes: 0,
        single: Vec::with_capacity(episodes),
        aggregated: mode.expands_batches().then(|| Vec::with_capacity(episodes)),
        loss: 0.0,
        joint_acc: None,
        per_transform_acc: Vec::new(),
        joint_confusion: if mode == Mode::Sla {
            vec![0; k * k]
        } else {
            Vec::new()
        },
        class_confusion: vec![0; n * n],
        samples: SampleGrid::default(),
    };
    let mut view_hits = vec![0usize; m];
    let (mut joint_hits, mut view_rows) = (0usize, 0usize);
    let plan = EpisodePlan {
        data: data.clone(),
        sampler: sampler.clone(),
        augmentation: Augmentation::none(),
        normalization: normalization.clone(),
        device: model.device.clone(),
    };
    // Unaugmented, so the generator is never drawn from; any seed will do.
    let mut ahead = EpisodesAhead::spawn(plan, 0..episodes as u64, |_| {
        <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(0)
    })?;
    for index in 0..episodes {
        if should_stop() {
            return Ok(None);
        }
        let ReadyEpisode {
            episode, images, ..
        } = ahead.next_episode()?;
        let outputs =
            model
                .objective
                .outputs(&model.net, &model.expander, &model.scale, &images, false)?;
        let truth = &images.query_ways;
        let single = predicted(&outputs.single)?;
        evaluation.single.push(accuracy(&single, truth));
        let headline = match (&outputs.aggregated, &mut evaluation.aggregated) {
            (Some(logits), Some(accuracies)) => {
                let aggregated = predicted(logits)?;
                accuracies.push(accuracy(&aggregated, truth));
                aggregated
            }
            _ => single.clone(),
        };
        for (&t, &p) in truth.iter().zip(&headline) {
            evaluation.class_confusion[t as usize * n + p as usize] += 1;
        }
        evaluation.loss += outputs.loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
        let view_predictions = match &outputs.views {
            Some(views) => Some(predicted(views)?),
            None => None,
        };
        if let Some(views) = &view_predictions {
            for (row, &p) in views.iter().enumerate() {
                if p == truth[row / m] {
                    view_hits[row % m] += 1;
                }
            }
            view_rows += views.len();
        }
        let joint_predictions = match &outputs.joint {
            Some(joint) => Some(predicted(joint)?),
            None => None,
        };
        if let Some(joint) = &joint_predictions {
            for (row, &p) in joint.iter().enumerate() {
                let t = truth[row / m] as usize * m + row % m;
                joint_hits += usize::from(p as usize == t);
                evaluation.joint_confusion[t * k + p as usize] += 1;
            }
        }
        if index == 0 {
            let verdicts = outputs.grid_verdicts()?;
            evaluation.samples = episode_grid(model, data, &episode, shape, &verdicts)?;
        }
        evaluation.episodes += 1;
        progress(evaluation.episodes);
    }
    let done = evaluation.episodes.max(1);
    evaluation.loss /= done as f64;
    if view_rows > 0 {
        let per_view = (view_rows / m) as f64;
        evaluation.per_transform_acc = view_hits.iter().map(|&h| h as f64 / per_view).collect();
    }
    if mode == Mode::Sla {
        evaluation.joint_acc = Some(joint_hits as f64 / view_rows.max(1) as f64);
    }
    Ok(Some(evaluation))
}

fn accuracy(predicted: &[u32], truth: &[u32]) -> f64 {
    let hits = predicted.iter().zip(truth).filter(|(p, t)| p == t).count();
    hits as f64 / truth.len().max(1) as f64
}

/// The episode as a grid: the first support image of every way, then its first query, each with
/// its views. `verdicts` holds one prediction per query (the baseline) or per view, rows `q·M + j`,
/// in the label space of the grid (joint for SLA); support images have their true label.
pub fn episode_grid(
    model: &EpisodeModel,
    data: &Dataset,
    episode: &Episode,
    shape: EpisodeShape,
    verdicts: &[u32],
) -> Result<SampleGrid> {
    let mode = model.objective.mode;
    let m = snapshot_transforms(mode, model.objective.num_transforms);
    let image = data.shape;
    let ways = episode.classes.len();
    // (dataset image, way, its row among the queries if it is one)
    let support = (0..ways).map(|w| (episode.support[w * shape.shots], w, None));
    let queries = (0..ways).map(|w| {
        let q = w * shape.queries;
        (episode.queries[q], w, Some(q))
    });
    let chosen: Vec<(usize, usize, Option<usize>)> = support.chain(queries).collect();
    let mut bytes = Vec::with_capacity(chosen.len() * image.image_len());
    for &(index, _, _) in &chosen {
        bytes.extend_from_slice(data.image(index));
    }
    let pixels = if m == 1 {
        bytes
    } else {
        model.expander.expand_bytes(
            &bytes,
            chosen.len(),
            (image.channels, image.height, image.width),
        )?
    };
    let per_view = verdicts.len() > episode.queries.len();
    let mut true_labels = Vec::with_capacity(chosen.len() * m);
    let mut predicted_labels = Vec::with_capacity(chosen.len() * m);
    for &(_, way, query) in &chosen {
        for j in 0..m {
            let truth = if mode == Mode::Sla {
                (way * m + j) as u32
            } else {
                way as u32
            };
            let verdict = match query {
                Some(q) if per_view => verdicts.get(q * m + j),
                Some(q) => verdicts.get(q),
                None => None,
            };
            true_labels.push(truth);
            predicted_labels.push(verdict.copied().unwrap_or(truth));
        }
    }
    Ok(SampleGrid {
        samples: chosen.len(),
        num_transforms: m,
        channels: image.channels,
        height: image.height,
        width: image.width,
        pixels,
        true_labels,
        predicted_labels,
        support_samples: ways,
    })
}

/// The sampler of the test episodes of a run: the novel classes, a stream of the seed of its own,
/// so every evaluation of a run (and `sla fewshot eval`) meets the same episodes.
pub fn test_sampler(
    data: &EpisodeData,
    shape: super::episode::EpisodeShape,
    seed: u64,
) -> std::result::Result<EpisodeSampler, super::episode::EpisodeError> {
    EpisodeSampler::new(
        "novel classes",
        &data.novel.labels,
        data.novel.num_classes(),
        shape,
        seed ^ TEST_STREAM,
    )
}

/// Validation episodes (from the validation classes), when the split has them.
pub fn validation_sampler(
    data: &EpisodeData,
    shape: super::episode::EpisodeShape,
    seed: u64,
) -> std::result::Result<Option<EpisodeSampler>, super::episode::EpisodeError> {
    data.validation
        .as_ref()
        .map(|validation| {
            EpisodeSampler::new(
                "validation classes",
                &validation.labels,
                validation.num_classes(),
                shape,
                seed ^ VALIDATION_STREAM,
            )
        })
        .transpose()
}

const TEST_STREAM: u64 = 0x7E57_0000_0000_0001;
const VALIDATION_STREAM: u64 = 0x7A11_0000_0000_0002;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interval_is_196_standard_errors() {
        // Mean 0.5, population σ = 0.5 over 4 episodes: 1.96 · 0.5 / 2.
        let (mean, ci) = mean_and_ci95(&[0.0, 1.0, 0.0, 1.0]);
        assert_eq!(mean, 0.5);
        assert!((ci - 0.49).abs() < 1e-12, "{ci}");
        assert_eq!(mean_and_ci95(&[0.8, 0.8]), (0.8, 0.0));
    }
}
