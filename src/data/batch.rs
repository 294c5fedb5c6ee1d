//! Batching: augment u8 images on the CPU and turn them into one normalised f32 tensor `[B, C, H, W]`.

use candle_core::{Device, Tensor};

use super::augment::{Augmentation, Normalization};
use super::dataset::Dataset;

/// Builds the batch of images `indices` of `ds` as an f32 tensor `[B, C, H, W]` on `device` and
/// their labels as a u32 tensor `[B]`.
///
/// Per image, in this order: with `crop_padding = p > 0`, offsets `dy` then `dx` are drawn from
/// `0..=2p` and the output pixel `(y, x)` is the source pixel `(y + dy - p, x + dx - p)`, or 0 where
/// that falls outside the image (zero padding, applied before normalisation as with a padded PIL
/// image); then with `horizontal_flip` a coin with p = 0.5 decides whether the crop is mirrored.
pub fn make_batch(
    ds: &Dataset,
    indices: &[usize],
    aug: &Augmentation,
    norm: &Normalization,
    rng: &mut impl rand::Rng,
    device: &Device,
) -> candle_core::Result<(Tensor, Tensor)> {
    let shape = ds.shape;
    let (channels, height, width) = (shape.channels, shape.height, shape.width);
    if norm.mean.len() != channels || norm.std.len() != channels {
        candle_core::bail!(
            "normalisation has {} means and {} stds but the images have {channels} channels",
            norm.mean.len(),
            norm.std.len()
        );
    }
    if let Some(&bad) = indices.iter().find(|&&i| i >= ds.len()) {
        candle_core::bail!(
            "image index {bad} is out of range: the dataset has {} images",
            ds.len()
        );
    }
    let tables = norm.lookup_tables();
    let pad = aug.crop_padding as isize;
    let mut data = Vec::with_capacity(indices.len() * shape.image_len());
    let mut labels = Vec::with_capacity(indices.len());
    for &index in indices {
        let (dy, dx) = if pad > 0 {
            let dy = rng.random_range(0..=2 * aug.crop_padding) as isize - pad;
            let dx = rng.random_range(0..=2 * aug.crop_padding) as isize - pad;
            (dy, dx)
        } else {
            (0, 0)
        };
        let flip = aug.horizontal_flip && rng.random_bool(0.5);
        let image = ds.image(index);
        for (c, table) in tables.iter().enumerate() {
            let plane = &image[c * height * width..(c + 1) * height * width];
            let fill = table[0];
            for y in 0..height as isize {
                let sy = y + dy;
                if sy < 0 || sy >= height as isize {
                    data.extend(std::iter::repeat_n(fill, width));
                    continue;
                }
                let row = &plane[sy as usize * width..(sy as usize + 1) * width];
                // Output column x reads source column x + dx (before the flip), so the valid source
                // span is contiguous and the zero columns sit at one end.
                let value = |x: isize| {
                    let sx = x + dx;
                    if sx < 0 || sx >= width as isize {
                        fill
                    } else {
                        table[row[sx as usize] as usize]
                    }
                };
                if flip {
                    data.extend((0..width as isize).rev().map(value));
                } else {
                    data.extend((0..width as isize).map(value));
                }
            }
        }
        labels.push(ds.labels[index]);
    }
    let batch = indices.len();
    let images = Tensor::from_vec(data, (batch, channels, height, width), device)?;
    let labels = Tensor::from_vec(labels, batch, device)?;
    Ok((images, labels))
}
