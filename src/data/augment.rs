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
    /// - MNIST: mean 0.1307, std 0.3081, the statistics of its training set;
    /// - tiny-ImageNet (RGB): like the MNIST sets, the statistics of its own training set, per
    ///   channel (mean 0.4802, 0.4481, 0.3975; std 0.2770, 0.2691, 0.2821, as widely recorded for
    ///   its 100 000 training images); 0.5 for any other channel count, which its reader never gives.
    pub fn for_kind(kind: DatasetKind, channels: usize) -> Self {
        match kind {
            DatasetKind::FashionMini | DatasetKind::FashionMnist => {
                Self::uniform(0.2860, 0.3530, channels)
            }
            DatasetKind::Mnist => Self::uniform(0.1307, 0.3081, channels),
            DatasetKind::TinyImagenet if channels == 3 => Self {
                mean: vec![0.4802, 0.4481, 0.3975],
                std: vec![0.2770, 0.2691, 0.2821],
            },
            DatasetKind::Cifar10
            | DatasetKind::Cifar100
            | DatasetKind::Folder
            | DatasetKind::TinyImagenet => Self::uniform(0.5, 0.5, channels),
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

    /// The usual augmentation for `kind` with images `side` pixels high: CIFAR and image folders pad
    /// 4 + flip, tiny-ImageNet pads an eighth of the side + flip (CIFAR's 4 of 32, scaled to the size
    /// it is resized to), Fashion-MNIST pad 2 + flip, MNIST pad 2 without flip (a mirrored digit is
    /// another symbol).
    pub fn default_for(kind: DatasetKind, side: usize) -> Self {
        match kind {
            DatasetKind::TinyImagenet => Self {
                crop_padding: (side / 8).max(1),
                horizontal_flip: true,
            },
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiny_imagenet_has_its_own_statistics_and_a_crop_scaled_to_its_size() {
        let norm = Normalization::for_kind(DatasetKind::TinyImagenet, 3);
        assert_eq!(norm.mean, [0.4802, 0.4481, 0.3975]);
        assert_eq!(norm.std, [0.2770, 0.2691, 0.2821]);
        assert_eq!(
            Normalization::for_kind(DatasetKind::TinyImagenet, 1),
            Normalization::uniform(0.5, 0.5, 1)
        );
        // CIFAR's 4 pixels of 32, at tiny-ImageNet's own 64 and at the default 32.
        for (side, padding) in [(64, 8), (32, 4), (4, 1)] {
            assert_eq!(
                Augmentation::default_for(DatasetKind::TinyImagenet, side),
                Augmentation {
                    crop_padding: padding,
                    horizontal_flip: true
                }
            );
        }
        assert_eq!(
            Augmentation::default_for(DatasetKind::Cifar10, 64).crop_padding,
            4
        );
    }
}
