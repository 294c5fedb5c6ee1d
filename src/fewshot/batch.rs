//! An episode's images as tensors: support and queries normalised (and augmented when training),
//! with the way of every image; and the episodes of a run made one ahead on a thread of their own,
//! so neither a training step nor an evaluation waits for its episode.

use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use candle_core::{Device, Result};
use rand_chacha::ChaCha8Rng;

use crate::data::{Augmentation, Dataset, Normalization, make_batch};
use crate::ops::profile::{Phase, record_duration};
use crate::train::ahead::Ahead;

use super::episode::{Episode, EpisodeSampler};
use super::objective::EpisodeImages;

/// The tensors of `episode` drawn from `data`. `rng` drives the augmentation, support first.
pub fn episode_images(
    data: &Dataset,
    episode: &Episode,
    augmentation: &Augmentation,
    normalization: &Normalization,
    rng: &mut impl rand::Rng,
    device: &Device,
) -> Result<EpisodeImages> {
    let (support, _) = make_batch(
        data,
        &episode.support,
        augmentation,
        normalization,
        rng,
        device,
    )?;
    let (queries, _) = make_batch(
        data,
        &episode.queries,
        augmentation,
        normalization,
        rng,
        device,
    )?;
    Ok(EpisodeImages {
        support,
        queries,
        support_ways: episode.support_ways(),
        query_ways: episode.query_ways(),
        ways: episode.classes.len(),
    })
}

/// What the episodes of a run are drawn from: the split, its sampler, the augmentation (none for
/// an evaluation) and normalisation, and the device the episodes are used on.
pub struct EpisodePlan {
    pub data: Arc<Dataset>,
    pub sampler: EpisodeSampler,
    pub augmentation: Augmentation,
    pub normalization: Normalization,
    pub device: Device,
}

/// An episode with its images on the device.
pub struct ReadyEpisode {
    pub episode: Episode,
    pub images: EpisodeImages,
    /// How long its user waited for it: what of its making the work on the episode before did not
    /// hide.
    pub waited: Duration,
}

/// An episode as the builder thread hands it over: its images on the CPU, and how long they took.
struct BuiltEpisode {
    episode: Episode,
    images: EpisodeImages,
    assembly: Duration,
}

/// The episodes of a range of indices, each drawn by the plan's sampler and made into images one
/// ahead on a thread of its own. Each is a pure function of its index (the sampler's episode and
/// `augmentation_stream(index)`), so the episodes are those a sequential loop would make.
pub struct EpisodesAhead {
    device: Device,
    built: Ahead<BuiltEpisode>,
}

impl EpisodesAhead {
    pub fn spawn(
        plan: EpisodePlan,
        indices: Range<u64>,
        augmentation_stream: impl Fn(u64) -> ChaCha8Rng + Send + 'static,
    ) -> std::io::Result<Self> {
        let device = plan.device.clone();
        let built = Ahead::spawn("episode", "sla-episodes", indices, move |index| {
            let started = Instant::now();
            let episode = plan.sampler.episode(index);
            let images = episode_images(
                &plan.data,
                &episode,
                &plan.augmentation,
                &plan.normalization,
                &mut augmentation_stream(index),
                &Device::Cpu,
            )?;
            Ok(BuiltEpisode {
                episode,
                images,
                assembly: started.elapsed(),
            })
        })?;
        Ok(Self { device, built })
    }

    /// The next episode on the device. The wait for it is the profile's [`Phase::DataWait`], its
    /// making on the builder thread [`Phase::BatchAssembly`].
    pub fn next_episode(&mut self) -> Result<ReadyEpisode> {
        let (built, waited) = self.built.take()?;
        record_duration(Phase::DataWait, waited);
        record_duration(Phase::BatchAssembly, built.assembly);
        let images = EpisodeImages {
            support: built.images.support.to_device(&self.device)?,
            queries: built.images.queries.to_device(&self.device)?,
            ..built.images
        };
        Ok(ReadyEpisode {
            episode: built.episode,
            images,
            waited,
        })
    }
}
