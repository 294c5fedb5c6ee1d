//! Global average pooling of channels-last images (`[B, H, W, C]` to `[B, C]`), forward and
//! backward, each one pass over the activation.
//!
//! Why an op of its own: candle's `mean` over the two spatial dimensions of a channels-last tensor
//! reduces over dimensions that are not the last, on its general strided path (an index
//! computation per value). Under `perf`, that reduction was the largest part of an evaluation's
//! time outside the fast ops (ResNet-20 on 1×28×28: about 4 % of a `sla bench --eval` run's
//! samples). Here each image's H·W rows of C channels are summed as rows, the loop over a row
//! vectorising, images in parallel.

use std::mem::MaybeUninit;

use candle_core::{CpuStorage, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::{Real, contiguous_slice, fill_parallel, with_slice};

struct GlobalAveragePool;

/// The mean over the spatial dimensions of a channels-last `xs` (`[B, H, W, C]`): `[B, C]`.
pub fn global_average_pool(xs: &Tensor) -> Result<Tensor> {
    xs.contiguous()?.apply_op1(GlobalAveragePool)
}

/// (images, values per image, channels) of a `[B, H, W, C]` shape.
fn dims(shape: &Shape) -> Result<(usize, usize, usize)> {
    let (b, h, w, c) = shape.dims4()?;
    Ok((b, h * w * c, c))
}

/// Each image's mean over its rows of `channels` values: the rows summed in order, then divided
/// by their count, as candle's `mean` does.
fn forward<T: Real>(x: &[T], (images, image_len, channels): (usize, usize, usize)) -> Vec<T> {
    let mut out = vec![T::from_f64(0.0); images * channels];
    if channels == 0 || image_len == 0 {
        return out;
    }
    let count = T::from_f64((image_len / channels) as f64);
    out.par_chunks_mut(channels)
        .zip(x.par_chunks(image_len))
        .for_each(|(sums, image)| {
            for row in image.chunks_exact(channels) {
                for (sum, &v) in sums.iter_mut().zip(row) {
                    *sum += v;
                }
            }
            for sum in sums.iter_mut() {
                *sum /= count;
            }
        });
    out
}

/// Every pixel of image b gets `grad[b] / (H·W)`.
fn backward<T: Real>(grad: &[T], (images, image_len, channels): (usize, usize, usize)) -> Vec<T> {
    if channels == 0 || image_len == 0 {
        return vec![T::from_f64(0.0); images * image_len];
    }
    let count = T::from_f64((image_len / channels) as f64);
    let fill = |index: usize, dx: &mut [MaybeUninit<T>]| {
        let share: Vec<T> = grad[index * channels..][..channels]
            .iter()
            .map(|&g| g / count)
            .collect();
        for row in dx.chunks_exact_mut(channels) {
            row.write_copy_of_slice(&share);
        }
    };
    // SAFETY: each task is one image of `image_len` values, whole rows of `channels`, and `fill`
    // writes every row.
    unsafe { fill_parallel(images * image_len, image_len, fill) }
}

impl candle_core::CustomOp1 for GlobalAveragePool {
    fn name(&self) -> &'static str {
        "fast-global-average-pool"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let d = dims(layout.shape())?;
        let out = match storage {
            CpuStorage::F32(_) => CpuStorage::F32(forward(contiguous_slice(storage, layout)?, d)),
            CpuStorage::F64(_) => CpuStorage::F64(forward(contiguous_slice(storage, layout)?, d)),
            _ => candle_core::bail!("fast global average pooling: f32 or f64 only"),
        };
        Ok((out, Shape::from((d.0, d.2))))
    }

    fn bwd(&self, xs: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let d = dims(xs.shape())?;
        let dx = match xs.dtype() {
            candle_core::DType::F32 => Tensor::from_vec(
                with_slice::<f32, _>(grad, |g| Ok(backward(g, d)))?,
                xs.shape(),
                xs.device(),
            )?,
            candle_core::DType::F64 => Tensor::from_vec(
                with_slice::<f64, _>(grad, |g| Ok(backward(g, d)))?,
                xs.shape(),
                xs.device(),
            )?,
            other => candle_core::bail!("fast global average pooling: unsupported dtype {other:?}"),
        };
        Ok(Some(dx))
    }
}
