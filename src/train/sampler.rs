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

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use rand::RngCore;

    use super::*;

    proptest! {
        /// Every epoch's batches are disjoint, of the batch size, and together hold
        /// ⌊len / batch⌋ · batch distinct images of the set.
        #[test]
        fn an_epoch_draws_each_image_at_most_once(
            seed in any::<u64>(),
            len in 1usize..400,
            batch_fraction in 0.0f64..1.0,
            epoch in 0usize..50,
        ) {
            let batch = 1 + ((len - 1) as f64 * batch_fraction) as usize;
            let sampler = Sampler::new(seed, len, batch);
            let order = sampler.epoch_order(epoch);
            let steps = sampler.steps_per_epoch();
            prop_assert_eq!(steps as usize, len / batch);
            let first = epoch as u64 * steps;
            let mut seen = vec![false; len];
            for step in first..first + steps {
                prop_assert_eq!(sampler.epoch_of(step), epoch);
                let indices = sampler.batch(&order, step);
                prop_assert_eq!(indices.len(), batch);
                for &i in indices {
                    prop_assert!(i < len);
                    prop_assert!(!seen[i], "image {} drawn twice in epoch {}", i, epoch);
                    seen[i] = true;
                }
            }
            prop_assert_eq!(seen.iter().filter(|&&s| s).count(), (len / batch) * batch);
        }

        /// A resumed run computes the batch and augmentation stream of a step from nothing but
        /// (seed, step): the same as a run that went through every step before it.
        #[test]
        fn a_step_is_drawn_the_same_from_scratch(
            seed in any::<u64>(),
            len in 2usize..200,
            step in 0u64..500,
        ) {
            let sampler = Sampler::new(seed, len, 1 + len / 3);
            let again = Sampler::new(seed, len, 1 + len / 3);
            let order = sampler.epoch_order(sampler.epoch_of(step));
            let fresh = again.epoch_order(again.epoch_of(step));
            prop_assert_eq!(sampler.batch(&order, step), again.batch(&fresh, step));
            let (mut a, mut b) = (sampler.step_rng(step), again.step_rng(step));
            prop_assert_eq!(a.next_u64(), b.next_u64());
            prop_assert_ne!(sampler.step_rng(step).next_u64(), sampler.step_rng(step + 1).next_u64());
        }
    }

    #[test]
    fn seeds_and_epochs_shuffle_differently() {
        let sampler = Sampler::new(1, 100, 10);
        assert_ne!(sampler.epoch_order(0), sampler.epoch_order(1));
        assert_ne!(
            sampler.epoch_order(0),
            Sampler::new(2, 100, 10).epoch_order(0)
        );
        let mut sorted = sampler.epoch_order(3);
        sorted.sort_unstable();
        assert_eq!(sorted, (0..100).collect::<Vec<_>>());
    }
}
