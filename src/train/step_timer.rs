//! Timing a training step on random data, built as the trainer builds it (the batch from u8
//! images and its expansion on the batch builder's thread, then forward, loss, backward, SGD), for
//! `sla bench` and the app's step estimate: one definition of "a step", so the estimate before a
//! run and the benchmark time the same work.

use std::sync::Arc;
use std::time::Instant;

use candle_core::{DType, Device};
use candle_nn::VarMap;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::data::{Augmentation, Dataset, ImageShape, Normalization};
use crate::model::{ModelKind, Network, seeded_var_builder};
use crate::process_memory::{peak_rss_mb, reset_peak_rss, resident_mb};
use crate::sla::transform::Expander;
use crate::sla::{Objective, TransformSet};

use super::optim::Sgd;
use super::prefetch::{BatchPlan, Prefetcher};

/// Batches of a [`SyntheticStep`]'s dataset: the steps walk through it, so the batches are read
/// from memory as a real dataset's are, not from cache.
const SYNTHETIC_BATCHES: usize = 16;

/// One training step's network, optimiser, and batches of a dataset of random images.
pub struct SyntheticStep {
    objective: Objective,
    net: Network,
    sgd: Sgd,
    batches: Prefetcher,
}

impl SyntheticStep {
    /// A `model` trained with `objective` on batches of `batch_size` random images of `shape`,
    /// expanded by `set` when the objective's mode expands batches.
    pub fn new(
        model: ModelKind,
        objective: Objective,
        set: &TransformSet,
        shape: ImageShape,
        batch_size: usize,
        device: &Device,
    ) -> candle_core::Result<Self> {
        let (c, h, w) = (shape.channels, shape.height, shape.width);
        let expander = if objective.mode.expands_batches() {
            Some(Expander::new(set, c, h, w, device)?)
        } else {
            None
        };
        let vars = VarMap::new();
        let vb = seeded_var_builder(&vars, 0, DType::F32, device);
        let net = Network::new(model, shape, &objective.head_sizes(), vb)?;
        // Sorted by name, as the trainer orders its parameters.
        let mut params: Vec<_> = vars
            .data()
            .lock()
            .map_err(|_| candle_core::Error::Msg("parameter map lock poisoned".into()))?
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        params.sort_by(|a, b| a.0.cmp(&b.0));
        let sgd = Sgd::new(params, 0.9, 1e-4, false);
        // CIFAR's augmentation (the heaviest of the usual ones: pad 4, crop, flip), and a
        // per-step random stream, as the trainer draws it.
        let plan = BatchPlan {
            dataset: Arc::new(random_dataset(
                shape,
                batch_size * SYNTHETIC_BATCHES,
                objective.num_classes,
            )),
            augmentation: Augmentation {
                crop_padding: 4,
                horizontal_flip: true,
            },
            normalization: Normalization::uniform(0.5, 0.25, c),
            expander,
            device: device.clone(),
        };
        let batches = Prefetcher::spawn(plan, 0..u64::MAX, move |step| {
            let first = (step as usize % SYNTHETIC_BATCHES) * batch_size;
            let indices = (first..first + batch_size).collect();
            (indices, ChaCha8Rng::seed_from_u64(step))
        })
        .map_err(candle_core::Error::wrap)?;
        Ok(Self {
            objective,
            net,
            sgd,
            batches,
        })
    }

    /// One step, on the next batch of the dataset; returns its loss (read back to the host, so a
    /// GPU step is timed to its end).
    pub fn run(&mut self) -> candle_core::Result<f64> {
        let batch = self.batches.next_batch()?;
        let (inputs, labels) = (batch.inputs, batch.labels);
        let features = self.net.features(&inputs, true)?;
        let outputs = self.objective.outputs(self.net.heads(), &features)?;
        let loss = self.objective.loss(&outputs, &labels)?;
        let grads = loss.backward()?;
        self.sgd.step(&grads, 0.1)?;
        loss.to_dtype(DType::F64)?.to_scalar::<f64>()
    }
}

/// How much evaluation to time: `images` test images in batches of `batch_size`, `repeats` times.
#[derive(Clone, Copy, Debug)]
pub struct EvaluationWork {
    pub images: usize,
    pub batch_size: usize,
    pub repeats: usize,
}

/// The trainer's evaluation (`evaluate`: every image under all M transformations, forward, the
/// inferences and their bookkeeping) by `model` of `work.images` random images of `shape`, timed
/// `work.repeats` times after one untimed pass (then `before_timed` is called); milliseconds of
/// each timed pass, fastest first.
pub fn time_evaluation(
    model: &super::setup::Model,
    shape: ImageShape,
    work: EvaluationWork,
    before_timed: impl FnOnce(),
) -> candle_core::Result<Vec<f64>> {
    let data = Arc::new(random_dataset(
        shape,
        work.images,
        model.objective.num_classes,
    ));
    let normalization = Normalization::uniform(0.5, 0.25, shape.channels);
    let evaluate =
        || super::evaluate::evaluate(model, &data, &normalization, work.batch_size, 0, &|| false);
    evaluate()?;
    before_timed();
    let mut sorted_ms = Vec::with_capacity(work.repeats.max(1));
    for _ in 0..work.repeats.max(1) {
        let start = Instant::now();
        evaluate()?;
        sorted_ms.push(start.elapsed().as_secs_f64() * 1e3);
    }
    sorted_ms.sort_by(f64::total_cmp);
    Ok(sorted_ms)
}

/// `images` images of `shape` with scrambled pixels, labelled round the `classes`: any pixels
/// will do, the time does not depend on them.
fn random_dataset(shape: ImageShape, images: usize, classes: usize) -> Dataset {
    Dataset {
        shape,
        images: (0..images * shape.image_len())
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect(),
        labels: (0..images).map(|i| (i % classes) as u32).collect(),
        class_names: (0..classes).map(|c| c.to_string()).collect(),
    }
}

/// What timing some steps measured.
#[derive(Clone, Debug, PartialEq)]
pub struct StepTiming {
    /// Milliseconds of each timed step, fastest first.
    pub sorted_ms: Vec<f64>,
    /// The process's peak resident memory during the timed steps (MiB; Linux only).
    pub peak_rss_mb: Option<f64>,
    /// How far that peak rose above the memory resident before the step was built: the step's
    /// own working set (parameters, activations, gradients) in host memory, which is all of it
    /// on the CPU and only the host side on a GPU.
    pub step_memory_mb: Option<f64>,
    pub last_loss: f64,
}

impl StepTiming {
    pub fn median_ms(&self) -> f64 {
        let t = &self.sorted_ms;
        if t.len() % 2 == 1 {
            t[t.len() / 2]
        } else {
            0.5 * (t[t.len() / 2 - 1] + t[t.len() / 2])
        }
    }

    pub fn min_ms(&self) -> f64 {
        self.sorted_ms[0]
    }
}

/// Build a step with `build`, run `warmup` untimed steps, call `before_timed`, then time `steps`
/// steps (at least one).
pub fn time_steps(
    build: impl FnOnce() -> candle_core::Result<SyntheticStep>,
    warmup: usize,
    steps: usize,
    before_timed: impl FnOnce(),
) -> candle_core::Result<StepTiming> {
    let resident_before = resident_mb();
    let mut step = build()?;
    let mut last_loss = f64::NAN;
    for _ in 0..warmup {
        last_loss = step.run()?;
    }
    // The peak is that of the timed steps: the first step's one-off allocations (caches, pools)
    // are not what every step needs. What stays resident from them still counts, as it would in a run.
    reset_peak_rss();
    before_timed();
    let mut sorted_ms = Vec::with_capacity(steps.max(1));
    for _ in 0..steps.max(1) {
        let start = Instant::now();
        last_loss = step.run()?;
        sorted_ms.push(start.elapsed().as_secs_f64() * 1e3);
    }
    sorted_ms.sort_by(f64::total_cmp);
    let peak = peak_rss_mb();
    Ok(StepTiming {
        sorted_ms,
        peak_rss_mb: peak,
        step_memory_mb: peak.zip(resident_before).map(|(p, r)| (p - r).max(0.0)),
        last_loss,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TrainConfig;
    use crate::sla::{Mode, TransformPreset};

    #[test]
    fn timing_runs_the_warmup_then_the_timed_steps_of_the_expanded_batch() {
        let set = TransformSet::preset(TransformPreset::Rotation);
        let config = TrainConfig {
            mode: Mode::Sla,
            model: crate::model::ModelKind::Cnn,
            ..Default::default()
        };
        let objective = config.objective(10, set.len());
        let shape = ImageShape {
            channels: 1,
            height: 28,
            width: 28,
        };
        let mut built = 0;
        let mut timed_after_warmup = false;
        let timing = time_steps(
            || {
                built += 1;
                SyntheticStep::new(ModelKind::Cnn, objective, &set, shape, 4, &Device::Cpu)
            },
            1,
            3,
            || timed_after_warmup = true,
        )
        .expect("timed");
        assert_eq!(built, 1);
        assert!(timed_after_warmup);
        assert_eq!(timing.sorted_ms.len(), 3);
        assert!(timing.sorted_ms.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(timing.median_ms(), timing.sorted_ms[1]);
        assert!(timing.min_ms() > 0.0);
        // A 40-way joint softmax starts near ln 40.
        assert!(
            timing.last_loss.is_finite() && timing.last_loss > 1.0,
            "{}",
            timing.last_loss
        );
        if cfg!(target_os = "linux") {
            assert!(timing.step_memory_mb.is_some() && timing.peak_rss_mb.is_some());
        }
    }
}
