//! Per-dataset normalisation and augmentation settings (random crop with zero padding, horizontal flip).

use super::DatasetKind;

/// Per-channel mean and standard deviation on the 0..1 scale: a pixel `v` becomes
/// `(v / 255 - mean[c]) / std[c]`.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Normalization {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

impl Normalization {
    /// The same mean and std for every channel.
    pub fn uniform(mean: f32, std: f32, channels: usize) -> Self {
        Self {
            mean: vec![mean; channels],
            std: vec![std; channels],
        }
    }

    /// The normalisation used for `kind`:
    /// - CIFAR-10/100 and image folders: mean = std = 0.5 per channel, as in the SLA reference code;
    /// - Fashion-MNIST (and fashion-mini): mean 0.2860, std 0.3530, the statistics of its training set;
    /// - MNIST: mean 0.1307, std 0.3081, the statistics of its training set.
    pub fn for_kind(kind: DatasetKind, channels: usize) -> Self {
        match kind {
            DatasetKind::FashionMini | DatasetKind::FashionMnist => {
                Self::uniform(0.2860, 0.3530, channels)
            }
            DatasetKind::Mnist => Self::uniform(0.1307, 0.3081, channels),
            DatasetKind::Cifar10 | DatasetKind::Cifar100 | DatasetKind::Folder => {
                Self::uniform(0.5, 0.5, channels)
            }
        }
    }

    /// For each channel, the normalised value of every byte: batching becomes one table look-up per
    /// pixel.
    pub(crate) fn lookup_tables(&self) -> Vec<[f32; 256]> {
        self.mean
            .iter()
            .zip(&self.std)
            .map(|(&mean, &std)| {
                let mut table = [0.0f32; 256];
                for (v, out) in table.iter_mut().enumerate() {
                    *out = (v as f32 / 255.0 - mean) / std;
                }
                table
            })
            .collect()
    }
}

/// Training-time augmentation applied to the u8 images before they become a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Augmentation {
    /// Pad each side with this many zero pixels, then crop back to the original size at a random
    /// offset in `0..=2 * crop_padding` along each axis. 0 turns cropping off.
    pub crop_padding: usize,
    /// Mirror left-right with probability 0.5.
    pub horizontal_flip: bool,
}

impl Augmentation {
    /// No augmentation (evaluation batches).
    pub fn none() -> Self {
        Self {
            crop_padding: 0,
            horizontal_flip: false,
        }
    }

    /// The usual augmentation for `kind`: CIFAR and image folders pad 4 + flip, Fashion-MNIST pad 2 +
    /// flip, MNIST pad 2 without flip (a mirrored digit is another symbol).
    pub fn default_for(kind: DatasetKind) -> Self {
        match kind {
            DatasetKind::Cifar10 | DatasetKind::Cifar100 | DatasetKind::Folder => Self {
                crop_padding: 4,
                horizontal_flip: true,
            },
            DatasetKind::FashionMini | DatasetKind::FashionMnist => Self {
                crop_padding: 2,
                horizontal_flip: true,
            },
            DatasetKind::Mnist => Self {
                crop_padding: 2,
                horizontal_flip: false,
            },
        }
    }
}
