//! N-way K-shot episodes: which classes and images an episode holds, drawn as a pure function of
//! (seed, episode index), so a resumed run meets exactly the episodes an uninterrupted one would.

use rand::SeedableRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand_chacha::ChaCha8Rng;

/// The size of an episode: `ways` classes, each with `shots` support and `queries` query images.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EpisodeShape {
    pub ways: usize,
    pub shots: usize,
    pub queries: usize,
}

impl EpisodeShape {
    /// Images of one class an episode takes.
    pub fn per_class(&self) -> usize {
        self.shots + self.queries
    }

    /// Images of a whole episode, support and queries.
    pub fn images(&self) -> usize {
        self.ways * self.per_class()
    }
}

/// One episode. Way `w` is dataset class `classes[w]`; its support images are
/// `support[w·K .. (w+1)·K]` and its queries `queries[w·Q .. (w+1)·Q]` (indices into the dataset).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Episode {
    pub classes: Vec<u32>,
    pub support: Vec<usize>,
    pub queries: Vec<usize>,
}

impl Episode {
    /// The way of each support image, in order.
    pub fn support_ways(&self) -> Vec<u32> {
        ways_of(self.support.len(), self.classes.len())
    }

    /// The way of each query image, in order.
    pub fn query_ways(&self) -> Vec<u32> {
        ways_of(self.queries.len(), self.classes.len())
    }
}

fn ways_of(len: usize, ways: usize) -> Vec<u32> {
    let per_way = len / ways.max(1);
    (0..len).map(|i| (i / per_way.max(1)) as u32).collect()
}

/// An episode shape the data cannot fill.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum EpisodeError {
    #[error(
        "an episode needs at least 1 way, 1 shot and 1 query, got {ways}-way {shots}-shot with {queries} queries"
    )]
    Empty {
        ways: usize,
        shots: usize,
        queries: usize,
    },
    #[error(
        "{what}: {ways}-way episodes need {ways} classes with at least {per_class} images each \
         ({shots} shots + {queries} queries), but only {eligible} of the {classes} classes have that many"
    )]
    TooFewClasses {
        what: &'static str,
        ways: usize,
        shots: usize,
        queries: usize,
        per_class: usize,
        eligible: usize,
        classes: usize,
    },
}

/// Draws episodes from one class-disjoint split.
#[derive(Clone, Debug)]
pub struct EpisodeSampler {
    shape: EpisodeShape,
    seed: u64,
    /// The images of each class that can take part (every class has at least `per_class`).
    by_class: Vec<(u32, Vec<usize>)>,
}

impl EpisodeSampler {
    /// Episodes of `shape` over a split with these image labels; `what` names the split in errors.
    pub fn new(
        what: &'static str,
        labels: &[u32],
        num_classes: usize,
        shape: EpisodeShape,
        seed: u64,
    ) -> Result<Self, EpisodeError> {
        if shape.ways == 0 || shape.shots == 0 || shape.queries == 0 {
            return Err(EpisodeError::Empty {
                ways: shape.ways,
                shots: shape.shots,
                queries: shape.queries,
            });
        }
        let mut images = vec![Vec::new(); num_classes];
        for (index, &label) in labels.iter().enumerate() {
            if let Some(list) = images.get_mut(label as usize) {
                list.push(index);
            }
        }
        let by_class: Vec<(u32, Vec<usize>)> = images
            .into_iter()
            .enumerate()
            .filter(|(_, list)| list.len() >= shape.per_class())
            .map(|(class, list)| (class as u32, list))
            .collect();
        if by_class.len() < shape.ways {
            return Err(EpisodeError::TooFewClasses {
                what,
                ways: shape.ways,
                shots: shape.shots,
                queries: shape.queries,
                per_class: shape.per_class(),
                eligible: by_class.len(),
                classes: num_classes,
            });
        }
        Ok(Self {
            shape,
            seed,
            by_class,
        })
    }

    pub fn shape(&self) -> EpisodeShape {
        self.shape
    }

    /// Episode `index`: `ways` distinct classes, then for each `shots + queries` distinct images,
    /// the first `shots` of them support and the rest queries, so no image is in both.
    pub fn episode(&self, index: u64) -> Episode {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        rng.set_stream(index);
        let EpisodeShape {
            ways,
            shots,
            queries,
        } = self.shape;
        let chosen: Vec<&(u32, Vec<usize>)> =
            self.by_class.choose_multiple(&mut rng, ways).collect();
        let mut episode = Episode {
            classes: Vec::with_capacity(ways),
            support: Vec::with_capacity(ways * shots),
            queries: Vec::with_capacity(ways * queries),
        };
        for (class, images) in chosen {
            let mut drawn: Vec<usize> = images
                .choose_multiple(&mut rng, shots + queries)
                .copied()
                .collect();
            // rand documents the order of a `choose_multiple` sample as not random; a shuffle
            // makes the support/query cut independent of where an image sits in the file.
            drawn.shuffle(&mut rng);
            episode.classes.push(*class);
            episode.support.extend_from_slice(&drawn[..shots]);
            episode.queries.extend_from_slice(&drawn[shots..]);
        }
        episode
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use proptest::prelude::*;

    use super::*;

    fn labels(classes: usize, per_class: usize) -> Vec<u32> {
        (0..classes * per_class)
            .map(|i| (i % classes) as u32)
            .collect()
    }

    proptest! {
        /// Exact counts, distinct classes, no image twice, every image of its way's class, and the
        /// same episode from scratch for the same (seed, index).
        #[test]
        fn episodes_have_exact_counts_and_no_overlap(
            seed in any::<u64>(),
            index in 0u64..10_000,
            classes in 5usize..20,
            ways in 1usize..5,
            shots in 1usize..6,
            queries in 1usize..6,
        ) {
            let labels = labels(classes, 12);
            let shape = EpisodeShape { ways, shots, queries };
            let sampler = EpisodeSampler::new("test", &labels, classes, shape, seed).expect("fits");
            let episode = sampler.episode(index);
            prop_assert_eq!(episode.classes.len(), ways);
            prop_assert_eq!(episode.classes.iter().collect::<HashSet<_>>().len(), ways);
            prop_assert_eq!(episode.support.len(), ways * shots);
            prop_assert_eq!(episode.queries.len(), ways * queries);
            let all: HashSet<usize> = episode.support.iter().chain(&episode.queries).copied().collect();
            prop_assert_eq!(all.len(), ways * (shots + queries));
            for (image, way) in episode.support.iter().zip(episode.support_ways()) {
                prop_assert_eq!(labels[*image], episode.classes[way as usize]);
            }
            for (image, way) in episode.queries.iter().zip(episode.query_ways()) {
                prop_assert_eq!(labels[*image], episode.classes[way as usize]);
            }
            let again = EpisodeSampler::new("test", &labels, classes, shape, seed).expect("fits");
            prop_assert_eq!(again.episode(index), episode);
        }
    }

    #[test]
    fn indices_and_seeds_draw_different_episodes() {
        let labels = labels(10, 30);
        let shape = EpisodeShape {
            ways: 5,
            shots: 1,
            queries: 5,
        };
        let sampler = EpisodeSampler::new("test", &labels, 10, shape, 1).expect("fits");
        let other = EpisodeSampler::new("test", &labels, 10, shape, 2).expect("fits");
        assert_ne!(sampler.episode(0), sampler.episode(1));
        assert_ne!(sampler.episode(0), other.episode(0));
        // Over many episodes every class takes part.
        let seen: HashSet<u32> = (0..200).flat_map(|i| sampler.episode(i).classes).collect();
        assert_eq!(seen.len(), 10);
    }

    #[test]
    fn shapes_the_data_cannot_fill_are_explained() {
        // Class 2 has only 3 images: too few for 2 shots + 2 queries.
        let labels = [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2];
        let shape = EpisodeShape {
            ways: 3,
            shots: 2,
            queries: 2,
        };
        let error = EpisodeSampler::new("novel classes", &labels, 3, shape, 0).expect_err("short");
        assert_eq!(
            error.to_string(),
            "novel classes: 3-way episodes need 3 classes with at least 4 images each (2 shots + 2 \
             queries), but only 2 of the 3 classes have that many"
        );
        let two_way = EpisodeShape { ways: 2, ..shape };
        let sampler = EpisodeSampler::new("novel classes", &labels, 3, two_way, 0).expect("fits");
        for index in 0..20 {
            assert!(!sampler.episode(index).classes.contains(&2));
        }
        let empty = EpisodeShape {
            queries: 0,
            ..shape
        };
        assert!(matches!(
            EpisodeSampler::new("x", &labels, 3, empty, 0),
            Err(EpisodeError::Empty { .. })
        ));
    }
}
