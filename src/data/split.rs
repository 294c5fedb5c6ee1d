//! Dataset subsets: a stratified, seeded validation split held out of the training set, and prefixes.

use rand::SeedableRng;
use rand::seq::SliceRandom;

use super::dataset::{DataError, Dataset};

/// The images `indices` of `ds` (in the given order) as a new dataset.
pub fn select(ds: &Dataset, indices: &[usize]) -> Dataset {
    let mut images = Vec::with_capacity(indices.len() * ds.shape.image_len());
    for &i in indices {
        images.extend_from_slice(ds.image(i));
    }
    Dataset {
        shape: ds.shape,
        images,
        labels: indices.iter().map(|&i| ds.labels[i]).collect(),
        class_names: ds.class_names.clone(),
    }
}

/// The first `limit` images of `ds` (all of them when it has fewer), in order.
pub fn subset(ds: &Dataset, limit: usize) -> Dataset {
    let count = limit.min(ds.len());
    Dataset {
        shape: ds.shape,
        images: ds.images[..count * ds.shape.image_len()].to_vec(),
        labels: ds.labels[..count].to_vec(),
        class_names: ds.class_names.clone(),
    }
}

/// The first `per_class` images of each class of `ds` (all of a class's images when it has fewer),
/// in file order: the limited-data setting, which keeps the classes balanced where a plain prefix
/// keeps whatever the file's order gives.
pub fn first_per_class(ds: &Dataset, per_class: usize) -> Dataset {
    let mut taken = vec![0usize; ds.num_classes()];
    let keep: Vec<usize> = (0..ds.len())
        .filter(|&i| {
            let label = ds.labels[i] as usize;
            if label >= taken.len() {
                taken.resize(label + 1, 0);
            }
            taken[label] += 1;
            taken[label] <= per_class
        })
        .collect();
    select(ds, &keep)
}

/// Holds `count` images out of `train` for validation and returns `(train, validation)`.
///
/// The split is stratified: each class gives `count * class_size / len` images (rounded by largest
/// remainder, ties to the lower class), at most all but one of the class, chosen by a shuffle seeded
/// with `seed` (ChaCha8), so the same seed always gives the same split. Both parts keep the original
/// order of their images.
pub fn split_validation(
    train: Dataset,
    count: usize,
    seed: u64,
) -> Result<(Dataset, Dataset), DataError> {
    if count >= train.len() {
        return Err(DataError::Invalid(format!(
            "cannot hold out {count} validation images from a training set of {}: \
             at least one must stay for training",
            train.len()
        )));
    }
    let num_classes = train.num_classes().max(
        train
            .labels
            .iter()
            .map(|&l| l as usize + 1)
            .max()
            .unwrap_or(0),
    );
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); num_classes];
    for (i, &label) in train.labels.iter().enumerate() {
        by_class[label as usize].push(i);
    }
    let total = train.len();
    // Every class keeps at least one training image: a long-tailed set's rarest class may hold only
    // a few, and a class with none would make its accuracy meaningless.
    let room = |c: usize| by_class[c].len().saturating_sub(1);
    let capacity: usize = (0..num_classes).map(room).sum();
    if count > capacity {
        return Err(DataError::Invalid(format!(
            "cannot hold out {count} validation images: every class must keep one training image, \
             which leaves at most {capacity}"
        )));
    }
    let mut quotas: Vec<usize> = (0..num_classes)
        .map(|c| (count * by_class[c].len() / total).min(room(c)))
        .collect();
    let mut remaining = count - quotas.iter().sum::<usize>();
    let mut order: Vec<usize> = (0..num_classes).collect();
    // Largest remainder first; the stable sort keeps lower classes first among equal remainders.
    order.sort_by_key(|&c| std::cmp::Reverse(count * by_class[c].len() % total));
    for &c in order.iter().cycle() {
        if remaining == 0 {
            break;
        }
        if quotas[c] < room(c) {
            quotas[c] += 1;
            remaining -= 1;
        }
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut held_out = vec![false; total];
    for (members, &quota) in by_class.iter_mut().zip(&quotas) {
        members.shuffle(&mut rng);
        for &i in &members[..quota] {
            held_out[i] = true;
        }
    }
    let (valid, keep): (Vec<usize>, Vec<usize>) = (0..total).partition(|&i| held_out[i]);
    log::info!(
        "held out {} of {} training images for validation (seed {seed})",
        valid.len(),
        total
    );
    Ok((select(&train, &keep), select(&train, &valid)))
}
