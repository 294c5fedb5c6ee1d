//! Which images each step trains on, and its augmentation stream: pure functions of (seed, step), so a
//! resumed run draws exactly the batches an uninterrupted one would.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

/// Epochs of `len` images in batches of `batch`; the last partial batch of an epoch is dropped, as in
/// the reference implementation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sampler {
    seed: u64,
    len: usize,
    batch: usize,
}

impl Sampler {
    /// `batch` must be between 1 and `len` (the config checks this against the data).
    pub fn new(seed: u64, len: usize, batch: usize) -> Self {
        Self {
            seed,
            len,
            batch: batch.clamp(1, len.max(1)),
        }
    }

    pub fn steps_per_epoch(&self) -> u64 {
        (self.len / self.batch).max(1) as u64
    }

    /// The sample order of an epoch: a permutation drawn from the epoch's own stream of the seed.
    pub fn epoch_order(&self, epoch: usize) -> Vec<usize> {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        rng.set_stream(epoch as u64);
        let mut order: Vec<usize> = (0..self.len).collect();
        order.shuffle(&mut rng);
        order
    }

    /// The epoch a step (counted from 0) belongs to.
    pub fn epoch_of(&self, step: u64) -> usize {
        (step / self.steps_per_epoch()) as usize
    }

    /// The images of `step` (counted from 0), given its epoch's order.
    pub fn batch<'a>(&self, order: &'a [usize], step: u64) -> &'a [usize] {
        let position = (step % self.steps_per_epoch()) as usize;
        let end = ((position + 1) * self.batch).min(order.len());
        &order[(position * self.batch).min(end)..end]
    }

    /// The augmentation stream of a step.
    pub fn step_rng(&self, step: u64) -> ChaCha8Rng {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed ^ 0x5A17_A5A1_0000_0001);
        rng.set_stream(step);
        rng
    }
}
