//! An episode's images as tensors: support and queries normalised (and augmented when training),
//! with the way of every image.

use candle_core::{Device, Result};

use crate::data::{Augmentation, Dataset, Normalization, make_batch};

use super::episode::Episode;
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
