//! The next batch, built on a thread of its own ([`Ahead`]) while the current step trains, so a
//! step starts on a batch that is already there: the u8 images cropped, flipped and normalised
//! (`make_batch`), then expanded by the M transformations. The trainer, `sla bench` and the
//! evaluation take their batches from it.
//!
//! The batches do not depend on the order threads run in: each is a pure function of its step (the
//! sampler's indices and augmentation stream), so a prefetched run draws the very batches a
//! sequential one would (the resume test checks it bit for bit). One batch waits at most (an
//! expanded ResNet-32 SLA batch is 6 MB, under 1 % of the step's memory).
//!
//! On a GPU the expansion stays with the step: the builder makes the batch on the CPU, and the step
//! uploads it and expands it on the device, where the gather is queued with the rest of its work.

use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use candle_core::{Device, Tensor};
use rand_chacha::ChaCha8Rng;

use crate::data::{Augmentation, Dataset, Normalization, make_batch};
use crate::ops::profile::{Phase, record_duration};
use crate::sla::transform::Expander;

use super::ahead::Ahead;

/// What a batch is made of: the images, their augmentation and normalisation, the expansion (when
/// the objective expands batches) and the device the step runs on.
pub struct BatchPlan {
    pub dataset: Arc<Dataset>,
    pub augmentation: Augmentation,
    pub normalization: Normalization,
    pub expander: Option<Expander>,
    pub device: Device,
}

/// One step's batch, ready for the network: inputs `[B·M, C, H, W]` (or `[B, …]` unexpanded) and
/// the original images' labels `[B]`, on the step's device.
pub struct Batch {
    pub step: u64,
    pub inputs: Tensor,
    pub labels: Tensor,
    /// How long the step waited for it: what of its data work the step before did not hide.
    pub waited: Duration,
}

/// A batch as the builder thread hands it over, with the time its two parts took there.
struct Built {
    step: u64,
    /// Expanded already when the step runs on the CPU; otherwise still to upload and expand.
    images: Tensor,
    labels: Tensor,
    assembly: Duration,
    expansion: Duration,
}

/// The batches of a range of steps, built one ahead on their own thread. Dropping it stops the
/// thread (after the batch it is building, if any) and joins it.
pub struct Prefetcher {
    plan: Arc<BatchPlan>,
    built: Ahead<Built>,
}

impl Prefetcher {
    /// Starts building the batches of `steps` in order, each from `draw(step)`: the dataset indices
    /// of the step's images and the step's augmentation stream.
    pub fn spawn(
        plan: BatchPlan,
        steps: Range<u64>,
        mut draw: impl FnMut(u64) -> (Vec<usize>, ChaCha8Rng) + Send + 'static,
    ) -> std::io::Result<Self> {
        let plan = Arc::new(plan);
        let builder_plan = plan.clone();
        let built = Ahead::spawn("batch", "sla-batches", steps, move |step| {
            let (indices, mut rng) = draw(step);
            build(&builder_plan, step, &indices, &mut rng)
        })?;
        Ok(Self { plan, built })
    }

    /// The next step's batch. The time spent waiting for it is the profile's
    /// [`Phase::DataWait`]; the time its assembly and expansion took on the builder thread is
    /// recorded under their phases, work done beside the step (a GPU step's expansion is not
    /// timed: it is queued device work).
    pub fn next_batch(&mut self) -> candle_core::Result<Batch> {
        let (built, waited) = self.built.take()?;
        record_duration(Phase::DataWait, waited);
        record_duration(Phase::BatchAssembly, built.assembly);
        // A CPU step's batch comes expanded (see `build`).
        let inputs = if self.plan.device.is_cpu() {
            record_duration(Phase::Expansion, built.expansion);
            built.images
        } else {
            // On an accelerator: the upload and the gather join the step's queue of device work.
            expand(&self.plan, built.images.to_device(&self.plan.device)?)?
        };
        let labels = built.labels.to_device(&self.plan.device)?;
        Ok(Batch {
            step: built.step,
            inputs,
            labels,
            waited,
        })
    }
}

/// A step's batch on the builder thread: made on the CPU, and expanded there when the step runs on
/// the CPU too.
fn build(
    plan: &BatchPlan,
    step: u64,
    indices: &[usize],
    rng: &mut ChaCha8Rng,
) -> candle_core::Result<Built> {
    let on_cpu = plan.device.is_cpu();
    let started = Instant::now();
    let (images, labels) = make_batch(
        &plan.dataset,
        indices,
        &plan.augmentation,
        &plan.normalization,
        rng,
        &Device::Cpu,
    )?;
    let assembly = started.elapsed();
    let started = Instant::now();
    let images = if on_cpu {
        expand(plan, images)?
    } else {
        images
    };
    Ok(Built {
        step,
        images,
        labels,
        assembly,
        expansion: started.elapsed(),
    })
}

fn expand(plan: &BatchPlan, images: Tensor) -> candle_core::Result<Tensor> {
    match &plan.expander {
        Some(expander) => expander.expand(&images),
        None => Ok(images),
    }
}
