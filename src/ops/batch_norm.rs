//! Batch norm over channels-last tensors (`[B, H, W, C]`, or any `[…, C]` such as `[B, C]`) fused
//! with an optional ReLU: training mode (batch statistics, handed back for the running-statistics
//! update) and eval mode, with a one-pass backward; output contiguous.
//!
//! With the channel last, the data is a sequence of rows of C channels: the kernels keep per-channel
//! sums in arrays with one lane per channel, so the loops over a row vectorise, and take the sums
//! image by image, the images' partial sums combined in image order, so results do not depend on
//! scheduling. Outputs are written once, in parallel, without a zeroing pass first
//! ([`super::fill_parallel`]).
//!
//! The batch statistics are gathered per image (its moments about its first pixel), then combined
//! in image order: the unit a convolution's epilogue sees as it stores an image, so inside a
//! residual block the convolutions gather them and the batch norm reads nothing. Measured side by
//! side (`sla bench`'s per-op table, the same build alternating, 2-core Xeon): the ResNet-32 SLA
//! step's batch-norm forward fell from 47–56 to 9–15 ms and its convolutions' forward rose by
//! 20–30 ms; ResNet-20 on 1×28×28, 23–24 to 6–7 ms against 0–8 ms; convolutions and batch norm
//! together about 15 ms less per step on both (docs/performance.md).
//!
//! The backward pass's sums are taken per image too ([`GradientSums`]), so that a block's first
//! batch norm has them taken by the convolution after it, as it stores each image of its input
//! gradient. On the ResNet-20 SLA step (2-core Zen 4, four alternating runs) batch norm backward
//! fell from 26.9–28.1 to 19.3–20.5 ms, convolution backward did not rise (236.7–243.4 against
//! 232.6–239.9) and the median step fell from 391–403 to 383–392 ms.

use std::mem::MaybeUninit;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use candle_core::{CpuStorage, Layout, Result, Shape, Tensor, Var};
use rayon::prelude::*;

use super::profile::{Phase, record};
use super::simd::PlainLoop;
use super::{Real, contiguous_slice, fill_parallel, simd, with_slice};

/// Per-channel batch mean and biased variance of one training-mode forward pass.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BatchNormStats {
    pub mean: Vec<f64>,
    pub var: Vec<f64>,
    /// Values per channel (B·H·W: every dimension but the last), for the unbiased running variance.
    pub count: usize,
}

enum Statistics {
    /// Computed by the forward pass and kept for the backward pass.
    Batch(Arc<Mutex<BatchNormStats>>),
    /// Running statistics (eval mode).
    Fixed(BatchNormStats),
}

struct BatchNormOp {
    eps: f64,
    relu: bool,
    statistics: Statistics,
}

/// Training-mode batch norm (+ ReLU) of a channels-last `xs` (`[…, C]`, rank ≥ 2) with batch
/// statistics per channel over all other dimensions; returns the output and the statistics.
pub fn batch_norm_train(
    xs: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f64,
    relu: bool,
) -> Result<(Tensor, BatchNormStats)> {
    let shared = Arc::new(Mutex::new(BatchNormStats::default()));
    let op = BatchNormOp {
        eps,
        relu,
        statistics: Statistics::Batch(shared.clone()),
    };
    let out = xs.contiguous()?.apply_op3(gamma, beta, op)?;
    let stats = lock(&shared)?.clone();
    Ok((out, stats))
}

/// Eval-mode batch norm (+ ReLU) of a channels-last `xs` (`[…, C]`) with the running statistics.
pub fn batch_norm_eval(
    xs: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    running_mean: &Tensor,
    running_var: &Tensor,
    eps: f64,
    relu: bool,
) -> Result<Tensor> {
    let fixed = BatchNormStats {
        mean: running_mean.to_dtype(candle_core::DType::F64)?.to_vec1()?,
        var: running_var.to_dtype(candle_core::DType::F64)?.to_vec1()?,
        count: 0,
    };
    let op = BatchNormOp {
        eps,
        relu,
        statistics: Statistics::Fixed(fixed),
    };
    xs.contiguous()?.apply_op3(gamma, beta, op)
}

/// PyTorch's (and candle-nn's) update: `r ← (1 − m)·r + m·s`, with the unbiased batch variance.
pub fn update_running_stats(
    running_mean: &Tensor,
    running_var: &Tensor,
    stats: &BatchNormStats,
    momentum: f64,
) -> Result<()> {
    let n = stats.count as f64;
    let unbiased = if n > 1.0 { n / (n - 1.0) } else { 1.0 };
    for (running, values, factor) in [
        (running_mean, &stats.mean, 1.0),
        (running_var, &stats.var, unbiased),
    ] {
        let batch = Tensor::from_vec(
            values.iter().map(|v| v * factor).collect::<Vec<_>>(),
            values.len(),
            running.device(),
        )?
        .to_dtype(running.dtype())?;
        let updated = ((running.detach() * (1.0 - momentum))? + (batch * momentum)?)?;
        // The running tensors are the VarMap's variables, so this Var shares their storage.
        Var::from_tensor(running)?.set(&updated)?;
    }
    Ok(())
}

fn lock(shared: &Mutex<BatchNormStats>) -> Result<std::sync::MutexGuard<'_, BatchNormStats>> {
    shared
        .lock()
        .map_err(|_| candle_core::Error::Msg("batch-norm statistics lock poisoned".into()))
}

/// The channel count of a channels-last `[…, C]` shape; every other dimension is a row of C values.
fn channel_count(shape: &Shape) -> Result<usize> {
    match shape.dims() {
        [outer @ .., channels] if !outer.is_empty() && *channels > 0 => Ok(*channels),
        dims => candle_core::bail!("batch norm needs channels last, […, C ≥ 1], got {dims:?}"),
    }
}

/// Rows summed in the element type before the sums move into f64: short enough that f32 sums of
/// shifted values stay accurate, long enough that the f64 flush costs nothing.
const BLOCK_ROWS: usize = 64;

/// About this many values per parallel task, at least: so that small images (or `[B, C]` rows)
/// do not each pay a task's overhead. The sums do not depend on it: they are taken per image and
/// added in image order, so the statistics and gradients are the same bit for bit however rayon
/// schedules the tasks, and training is reproducible.
const CHUNK_VALUES: usize = 1 << 14;

/// Rows per parallel chunk: whole blocks, at least one.
fn chunk_rows(channels: usize) -> usize {
    BLOCK_ROWS * (CHUNK_VALUES / (BLOCK_ROWS * channels.max(1))).max(1)
}

/// Split the channels of a row into groups of 16, 8, 4 and 1 adjacent channels: each group's loop
/// runs over a compile-time number of lanes (one per channel) and vectorises, also when the channel
/// count is not a multiple of the vector width.
fn for_each_group(channels: usize, mut f: impl FnMut(usize, usize)) {
    let mut start = 0;
    while start < channels {
        let width = group_width(channels - start);
        f(start, width);
        start += width;
    }
}

/// The next group's width, with `left` channels left.
#[inline(always)]
fn group_width(left: usize) -> usize {
    if left >= 16 {
        16
    } else if left >= 8 {
        8
    } else if left >= 4 {
        4
    } else {
        1
    }
}

/// Batch norm's backward sums, Σg and Σg·(x − mean) per channel, where g is the output gradient
/// on the active side of the ReLU (`x·scale + shift > 0`, the forward pass's own expression):
/// taken image by image, each image's sums one partial (its rows in blocks of [`BLOCK_ROWS`]
/// summed in the element type, then in f64), and the partials added in image order. So they do
/// not depend on scheduling, nor on who takes an image's sums: the batch norm's own pass over
/// its input and output gradient ([`GradientSums::batch`]), or a convolution's backward pass as
/// it stores an image of its input gradient, while the image is still in cache
/// ([`super::conv::backward_values_with`]), which saves the pass over two activations.
pub(crate) struct GradientSums<T> {
    mask_scale: Vec<T>,
    mask_shift: Vec<T>,
    mean: Vec<T>,
}

impl<T: Real> GradientSums<T> {
    /// The sums of the batch norm with `gamma`, `beta`, the batch's `stats` and `eps`, followed
    /// by a ReLU when `relu`.
    pub(crate) fn new(
        gamma: &[T],
        beta: &[T],
        stats: &BatchNormStats,
        eps: f64,
        relu: bool,
    ) -> Self {
        let channels = gamma.len();
        let Normalization { scale, shift, .. } = Normalization::new(gamma, beta, stats, eps, relu);
        // Without ReLU every value is active: 0·x + 1 > 0.
        let (mask_scale, mask_shift) = if relu {
            (scale, shift)
        } else {
            (
                vec![T::from_f64(0.0); channels],
                vec![T::from_f64(1.0); channels],
            )
        };
        let mean = stats.mean.iter().map(|&m| T::from_f64(m)).collect();
        Self {
            mask_scale,
            mask_shift,
            mean,
        }
    }

    pub(crate) fn channels(&self) -> usize {
        self.mean.len()
    }

    /// Values per image's partial sums: Σg and Σg·(x − mean) per channel.
    pub(crate) fn partial_len(&self) -> usize {
        2 * self.channels()
    }

    /// These sums for the f32 kernels, when `T` is f32.
    pub(crate) fn to_f32(&self) -> Option<GradientSums<f32>> {
        Some(GradientSums {
            mask_scale: f32_copy(&self.mask_scale)?,
            mask_shift: f32_copy(&self.mask_shift)?,
            mean: f32_copy(&self.mean)?,
        })
    }

    /// Adds the sums of the rows of `x` and `dy` (one image, or one block of its rows) to
    /// `partial` (`[Σg; C]`, `[Σg·(x − mean); C]`), compiled for the machine's vector
    /// instructions (as the baseline x86-64 code it ran 4 floats wide: in cache, behind a
    /// convolution, that is what it costs).
    pub(crate) fn image(&self, x: &[T], dy: &[T], partial: &mut [f64]) {
        simd::vectorized(&mut ImageSums {
            sums: self,
            x,
            dy,
            partial,
        });
    }

    /// Each of the `images` images' partial sums over `x` and the output gradient `dy` (given
    /// or produced here, see [`OutputGradientSource`]): the produced output gradient, and the
    /// partials, image by image.
    fn batch(
        &self,
        x: &[T],
        dy: OutputGradientSource<'_, T>,
        images: usize,
    ) -> (Option<Vec<T>>, Vec<f64>) {
        let image_len = (x.len() / images.max(1)).max(1);
        let width = self.partial_len().max(1);
        let min_images = (CHUNK_VALUES / image_len).max(1);
        let mut partials = vec![0f64; x.len().div_ceil(image_len) * width];
        let produced = match dy {
            OutputGradientSource::Values(dy) => {
                partials
                    .par_chunks_mut(width)
                    .zip(x.par_chunks(image_len).zip(dy.par_chunks(image_len)))
                    .with_min_len(min_images)
                    .for_each(|(partial, (x, dy))| self.image(x, dy, partial));
                None
            }
            OutputGradientSource::Produced(produce) => {
                let block = BLOCK_ROWS * self.channels().max(1);
                let mut dy = Vec::with_capacity(x.len());
                dy.spare_capacity_mut()[..x.len()]
                    .par_chunks_mut(image_len)
                    .zip(partials.par_chunks_mut(width))
                    .zip(x.par_chunks(image_len))
                    .enumerate()
                    .with_min_len(min_images)
                    .for_each(|(index, ((dy, partial), x))| {
                        let blocks = dy.chunks_mut(block).zip(x.chunks(block));
                        for (number, (dy, x)) in blocks.enumerate() {
                            produce(index * image_len + number * block, &mut *dy);
                            // SAFETY: `produce` writes every value of the block it is given
                            // (its contract), so the block is initialised.
                            let dy = unsafe { &*(std::ptr::from_ref(dy) as *const [T]) };
                            self.image(x, dy, partial);
                        }
                    });
                // SAFETY: the chunks cover the first x.len() values, each block written above.
                unsafe { dy.set_len(x.len()) };
                Some(dy)
            }
        };
        (produced, partials)
    }

    /// Each of the `images` images' partial sums over `x` and the output gradient `dy`.
    pub(crate) fn of_images(&self, x: &[T], dy: &[T], images: usize) -> Vec<f64> {
        self.batch(x, OutputGradientSource::Values(dy), images).1
    }

    /// dx's coefficients, dγ and dβ from the images' `partials`, added in image order.
    fn gradient(
        &self,
        partials: &[f64],
        gamma: &[T],
        stats: &BatchNormStats,
        eps: f64,
        batch_statistics: bool,
    ) -> (InputGradient<T>, Vec<T>, Vec<T>) {
        let zero = T::from_f64(0.0);
        let channels = self.channels();
        let (sums_g, sums_gx) = combine(partials, channels);
        let n = stats.count.max(1) as f64;
        let mut dgamma = Vec::with_capacity(channels);
        let mut dbeta = Vec::with_capacity(channels);
        // dx = a·g + b·x + c per channel, kept as three vectors so the row loop vectorises.
        let mut coef_a = Vec::with_capacity(channels);
        let mut coef_b = Vec::with_capacity(channels);
        let mut coef_c = Vec::with_capacity(channels);
        for ch in 0..channels {
            let (sum_g, sum_g_centred) = (sums_g[ch], sums_gx[ch]);
            let invstd = 1.0 / (stats.var[ch] + eps).sqrt();
            let sum_g_xhat = sum_g_centred * invstd;
            dgamma.push(T::from_f64(sum_g_xhat));
            dbeta.push(T::from_f64(sum_g));
            let a = gamma[ch].to_f64() * invstd;
            coef_a.push(T::from_f64(a));
            if batch_statistics {
                let k = a / n;
                let b = -k * sum_g_xhat * invstd;
                coef_b.push(T::from_f64(b));
                coef_c.push(T::from_f64(-k * sum_g - b * stats.mean[ch]));
            } else {
                coef_b.push(zero);
                coef_c.push(zero);
            }
        }
        let gradient = InputGradient {
            mask_scale: self.mask_scale.clone(),
            mask_shift: self.mask_shift.clone(),
            a: coef_a,
            b: coef_b,
            c: coef_c,
        };
        (gradient, dgamma, dbeta)
    }
}

/// [`GradientSums::image`] as a vectorised kernel.
struct ImageSums<'a, T> {
    sums: &'a GradientSums<T>,
    x: &'a [T],
    dy: &'a [T],
    partial: &'a mut [f64],
}

impl<T: Real> PlainLoop for ImageSums<'_, T> {
    #[inline(always)]
    fn run(&mut self) {
        image_sums(self.sums, self.x, self.dy, self.partial);
    }
}

/// [`GradientSums::image`]: each block of [`BLOCK_ROWS`] rows, each group of channels. No
/// closures: a closure is compiled apart from the vectorised function that calls it.
#[inline(always)]
fn image_sums<T: Real>(sums: &GradientSums<T>, x: &[T], dy: &[T], partial: &mut [f64]) {
    let channels = sums.channels();
    let block = BLOCK_ROWS * channels.max(1);
    let (sum_g, sum_gx) = partial.split_at_mut(channels);
    for (x, dy) in x.chunks(block).zip(dy.chunks(block)) {
        let mut start = 0;
        while start < channels {
            let width = group_width(channels - start);
            let acc = (&mut *sum_g, &mut *sum_gx);
            match width {
                16 => gradient_sums_group::<T, 16>((x, dy), start, sums, acc),
                8 => gradient_sums_group::<T, 8>((x, dy), start, sums, acc),
                4 => gradient_sums_group::<T, 4>((x, dy), start, sums, acc),
                _ => gradient_sums_group::<T, 1>((x, dy), start, sums, acc),
            }
            start += width;
        }
    }
}

/// Adds Σg and Σg·(x − mean) over the rows of a block for channels `start..start + W`, where g is
/// dy on the active side of the ReLU.
#[inline(always)]
fn gradient_sums_group<T: Real, const W: usize>(
    (x, dy): (&[T], &[T]),
    start: usize,
    mask: &GradientSums<T>,
    (sum_g, sum_gx): (&mut [f64], &mut [f64]),
) {
    let zero = T::from_f64(0.0);
    let channels = mask.channels();
    let mut sg = [zero; W];
    let mut sgx = [zero; W];
    let scale: [T; W] = std::array::from_fn(|lane| mask.mask_scale[start + lane]);
    let shift: [T; W] = std::array::from_fn(|lane| mask.mask_shift[start + lane]);
    let mean: [T; W] = std::array::from_fn(|lane| mask.mean[start + lane]);
    for (xr, dr) in x.chunks_exact(channels).zip(dy.chunks_exact(channels)) {
        let (xv, dv) = (&xr[start..start + W], &dr[start..start + W]);
        for lane in 0..W {
            // Both loads before the comparison: with a load inside the branch the compiler keeps a
            // branch per value (mispredicted half the time) instead of a vector select.
            let (xl, d) = (xv[lane], dv[lane]);
            let g = if xl * scale[lane] + shift[lane] > zero {
                d
            } else {
                zero
            };
            sg[lane] += g;
            sgx[lane] += g * (xl - mean[lane]);
        }
    }
    for lane in 0..W {
        sum_g[start + lane] += sg[lane].to_f64();
        sum_gx[start + lane] += sgx[lane].to_f64();
    }
}

/// Adds the f64 partial sums of each chunk (two per-channel vectors each) in chunk order.
fn combine(partials: &[f64], channels: usize) -> (Vec<f64>, Vec<f64>) {
    let mut first = vec![0f64; channels];
    let mut second = vec![0f64; channels];
    for partial in partials.chunks_exact(2 * channels) {
        let (a, b) = partial.split_at(channels);
        for (total, v) in first.iter_mut().zip(a) {
            *total += v;
        }
        for (total, v) in second.iter_mut().zip(b) {
            *total += v;
        }
    }
    (first, second)
}

/// Values per image moment: the shift, Σ(x − shift) and Σ(x − shift)², per channel.
pub(crate) const MOMENTS_PER_CHANNEL: usize = 3;

/// Adds Σ(x − shift) and Σ(x − shift)² over the rows of one image for channels
/// `start..start + W`, in row order, in `T`: the one expression a convolution's epilogue
/// evaluates too ([`super::conv`]'s moments), so both give the same statistics bit for bit.
fn image_moments_group<T: Real, const W: usize>(
    image: &[T],
    start: usize,
    (shift, sums, squares): (&[T], &mut [T], &mut [T]),
) {
    let channels = shift.len();
    let mut s: [T; W] = std::array::from_fn(|lane| sums[start + lane]);
    let mut q: [T; W] = std::array::from_fn(|lane| squares[start + lane]);
    let shift: [T; W] = std::array::from_fn(|lane| shift[start + lane]);
    for row in image.chunks_exact(channels) {
        let v = &row[start..start + W];
        for lane in 0..W {
            let d = v[lane] - shift[lane];
            s[lane] += d;
            q[lane] += d * d;
        }
    }
    sums[start..start + W].copy_from_slice(&s);
    squares[start..start + W].copy_from_slice(&q);
}

/// One image's moments into `moments` (`[shift; C]`, `[Σ(x − shift); C]`, `[Σ(x − shift)²; C]`),
/// the shift being the image's first row: centred on a value of their own, the sums keep the
/// variance accurate in one pass.
pub(crate) fn image_moments<T: Real>(image: &[T], channels: usize, moments: &mut [T]) {
    let (shift, rest) = moments.split_at_mut(channels);
    let (sums, squares) = rest.split_at_mut(channels);
    shift.copy_from_slice(&image[..channels]);
    sums.fill(T::from_f64(0.0));
    squares.fill(T::from_f64(0.0));
    for block in image.chunks(BLOCK_ROWS * channels) {
        for_each_group(channels, |start, width| {
            let acc = (&*shift, &mut *sums, &mut *squares);
            match width {
                16 => image_moments_group::<T, 16>(block, start, acc),
                8 => image_moments_group::<T, 8>(block, start, acc),
                4 => image_moments_group::<T, 4>(block, start, acc),
                _ => image_moments_group::<T, 1>(block, start, acc),
            }
        });
    }
}

/// Per-channel mean and biased variance of `images` images of `rows` rows each, from their
/// moments ([`image_moments`], or a convolution's epilogue), combined in image order in f64
/// (Chan, Golub and LeVeque's pairwise update: each image's mean and squared deviations, merged
/// into the running ones), so the result does not depend on scheduling.
pub(crate) fn combine_image_moments<T: Real>(
    moments: &[T],
    channels: usize,
    rows: usize,
) -> BatchNormStats {
    let images = moments.len() / (MOMENTS_PER_CHANNEL * channels).max(1);
    let n = rows as f64;
    let mut mean = vec![0f64; channels];
    let mut m2 = vec![0f64; channels];
    for (index, image) in moments
        .chunks_exact(MOMENTS_PER_CHANNEL * channels)
        .enumerate()
    {
        let (shift, rest) = image.split_at(channels);
        let (sums, squares) = rest.split_at(channels);
        let before = index as f64 * n;
        for ch in 0..channels {
            let sum = sums[ch].to_f64();
            let image_mean = shift[ch].to_f64() + sum / n;
            let image_m2 = (squares[ch].to_f64() - sum * sum / n).max(0.0);
            let delta = image_mean - mean[ch];
            let total = before + n;
            mean[ch] += delta * n / total;
            m2[ch] += image_m2 + delta * delta * before * n / total;
        }
    }
    let count = images * rows;
    let var = m2
        .iter()
        .map(|&m2| if count > 0 { m2 / count as f64 } else { 0.0 })
        .collect();
    BatchNormStats { mean, var, count }
}

/// Per-channel mean and biased variance over a channels-last `x` of `images` images (the rows of
/// one image are contiguous), each image's moments in parallel.
fn batch_moments<T: Real>(x: &[T], channels: usize, images: usize) -> BatchNormStats {
    let images = images.max(1);
    let image_len = x.len() / images;
    if image_len < channels || channels == 0 {
        return BatchNormStats::default();
    }
    let mut moments = vec![T::from_f64(0.0); images * MOMENTS_PER_CHANNEL * channels];
    moments
        .par_chunks_mut(MOMENTS_PER_CHANNEL * channels)
        .zip(x.par_chunks(image_len))
        .with_min_len((CHUNK_VALUES / image_len).max(1))
        .for_each(|(moments, image)| image_moments(image, channels, moments));
    combine_image_moments(&moments, channels, image_len / channels)
}

/// The forward pass over channels-last rows: with `fixed` statistics (eval mode) or the batch's,
/// which it returns. Timed for the benchmark's breakdown.
pub(crate) fn forward<T: Real>(
    x: &[T],
    gamma: &[T],
    beta: &[T],
    channels: usize,
    eps: f64,
    relu: bool,
    (fixed, images): (Option<&BatchNormStats>, usize),
) -> (Vec<T>, BatchNormStats) {
    let start = Instant::now();
    let stats = match fixed {
        Some(stats) => stats.clone(),
        None => batch_moments(x, channels, images),
    };
    let normalization = Normalization::new(gamma, beta, &stats, eps, relu);
    let out = normalization.apply(x);
    record(Phase::BatchNormForward, start);
    (out, stats)
}

/// A training-mode forward pass that stops at the batch statistics: the normalisation is left to
/// whoever reads the values next (the following convolution as it loads its input, or the
/// residual add), so the normalised activation is never written out. Timed for the benchmark's
/// breakdown.
///
/// The statistics come from `moments`, each image's as a convolution's epilogue gathered them
/// while storing `x` (so `x` is not read again), or are computed here from `x`'s `images` images.
#[allow(clippy::too_many_arguments)]
pub(crate) fn batch_normalization<T: Real>(
    x: &[T],
    moments: Option<&[T]>,
    gamma: &[T],
    beta: &[T],
    (channels, images): (usize, usize),
    eps: f64,
    relu: bool,
) -> (Normalization<T>, BatchNormStats) {
    let start = Instant::now();
    let stats = match moments {
        Some(moments) => {
            combine_image_moments(moments, channels, x.len() / (channels * images).max(1))
        }
        None => batch_moments(x, channels, images),
    };
    let normalization = Normalization::new(gamma, beta, &stats, eps, relu);
    record(Phase::BatchNormForward, start);
    (normalization, stats)
}

/// Batch norm's per-channel `y = x·scale + shift`, then ReLU when `relu`: the one expression of
/// the forward pass wherever it is evaluated (here, in a convolution's load, in the residual add),
/// and the one the backward pass recomputes the ReLU mask with, so all of them agree bit for bit.
#[derive(Clone, Debug)]
pub(crate) struct Normalization<T> {
    pub scale: Vec<T>,
    pub shift: Vec<T>,
    pub relu: bool,
}

impl<T: Real> Normalization<T> {
    pub(crate) fn new(
        gamma: &[T],
        beta: &[T],
        stats: &BatchNormStats,
        eps: f64,
        relu: bool,
    ) -> Self {
        let (scale, shift) = (0..gamma.len())
            .map(|ch| {
                let a = gamma[ch].to_f64() / (stats.var[ch] + eps).sqrt();
                (
                    T::from_f64(a),
                    T::from_f64(beta[ch].to_f64() - stats.mean[ch] * a),
                )
            })
            .unzip();
        Self { scale, shift, relu }
    }

    pub(crate) fn channels(&self) -> usize {
        self.scale.len()
    }

    /// This normalisation for the f32 kernels, when `T` is f32.
    pub(crate) fn to_f32(&self) -> Option<Normalization<f32>> {
        Some(Normalization {
            scale: f32_copy(&self.scale)?,
            shift: f32_copy(&self.shift)?,
            relu: self.relu,
        })
    }

    /// `v` of a channel with this `scale` and `shift`, normalised: the one place of the expression.
    #[inline(always)]
    pub(crate) fn value(&self, v: T, scale: T, shift: T) -> T {
        let y = v * scale + shift;
        if !self.relu || y > T::from_f64(0.0) {
            y
        } else {
            T::from_f64(0.0)
        }
    }

    /// One pixel's channels `first..first + x.len()`, given in `x`, normalised.
    #[inline(always)]
    pub(crate) fn pixel<'a>(&'a self, x: &'a [T], first: usize) -> impl Iterator<Item = T> + 'a {
        let (scale, shift) = (&self.scale[first..], &self.shift[first..]);
        x.iter()
            .zip(scale.iter().zip(shift))
            .map(|(&v, (&a, &b))| self.value(v, a, b))
    }

    /// The normalised copy of channels-last `x`, written once, in parallel.
    pub(crate) fn apply(&self, x: &[T]) -> Vec<T> {
        let channels = self.channels();
        per_pixel(x.len(), channels, |at| self.pixel(&x[at..][..channels], 0))
    }
}

/// `values` as f32, when `T` is f32.
fn f32_copy<T: Real>(values: &[T]) -> Option<Vec<f32>> {
    Some(T::as_f32(values)?.to_vec())
}

/// A channels-last tensor of `len` values, the pixel whose values start at `at` given by
/// `pixel(at)`: written once, in parallel chunks of whole pixels. A pixel that yields fewer than
/// `channels` values has the rest zeroed, so every value is written.
fn per_pixel<T: Real, P: Iterator<Item = T>>(
    len: usize,
    channels: usize,
    pixel: impl Fn(usize) -> P + Sync,
) -> Vec<T> {
    let channels = channels.max(1);
    let chunk = chunk_rows(channels) * channels;
    let kernel = |index: usize, out: &mut [MaybeUninit<T>]| {
        for (p, out) in out.chunks_mut(channels).enumerate() {
            let mut written = 0;
            for (o, v) in out.iter_mut().zip(pixel(index * chunk + p * channels)) {
                o.write(v);
                written += 1;
            }
            for o in &mut out[written..] {
                o.write(T::from_f64(0.0));
            }
        }
    };
    // SAFETY: the chunks cover the output, and each of its values is written once above.
    unsafe { fill_parallel(len, chunk, kernel) }
}

pub(crate) struct Gradients<T> {
    pub dx: Vec<T>,
    pub dgamma: Vec<T>,
    pub dbeta: Vec<T>,
}

/// The one-pass backward: dx, dγ and dβ for the output gradient `dy` over `images` images of
/// `channels` channels. Timed for the benchmark's breakdown.
#[allow(clippy::too_many_arguments)]
pub(crate) fn backward<T: Real>(
    x: &[T],
    dy: &[T],
    gamma: &[T],
    beta: &[T],
    stats: &BatchNormStats,
    (channels, images): (usize, usize),
    eps: f64,
    relu: bool,
    batch_statistics: bool,
) -> Gradients<T> {
    let start = Instant::now();
    let (_, gradient, dgamma, dbeta) = backward_sums(
        x,
        OutputGradientSource::Values(dy),
        gamma,
        beta,
        stats,
        (channels, images),
        eps,
        relu,
        batch_statistics,
    );
    let dx = gradient.apply(x, dy);
    record(Phase::BatchNormBackward, start);
    Gradients { dx, dgamma, dbeta }
}

/// The backward pass up to its per-channel sums: dγ, dβ, and dx as an [`InputGradient`] still to
/// be evaluated, by whoever reads dx next (a convolution's backward pass, as it loads each
/// image), so dx is never written out whole; and the output gradient, when `dy` had it made here
/// ([`OutputGradientSource::Produced`]). Over `images` images of `channels` channels. Timed for
/// the benchmark's breakdown.
#[allow(clippy::too_many_arguments)]
pub(crate) fn backward_deferred<T: Real>(
    x: &[T],
    dy: OutputGradientSource<'_, T>,
    gamma: &[T],
    beta: &[T],
    stats: &BatchNormStats,
    shape: (usize, usize),
    eps: f64,
    relu: bool,
) -> (Option<Vec<T>>, InputGradient<T>, Vec<T>, Vec<T>) {
    let start = Instant::now();
    let parts = backward_sums(x, dy, gamma, beta, stats, shape, eps, relu, true);
    record(Phase::BatchNormBackward, start);
    parts
}

/// Batch norm's input gradient per channel, `dx = a·g + b·x + c`, where g is the output gradient
/// where the ReLU passed (`x·scale + shift > 0`, the forward pass's own expression): the one place
/// of that expression, wherever dx is evaluated.
#[derive(Clone, Debug)]
pub(crate) struct InputGradient<T> {
    pub mask_scale: Vec<T>,
    pub mask_shift: Vec<T>,
    pub a: Vec<T>,
    pub b: Vec<T>,
    pub c: Vec<T>,
}

impl<T: Real> InputGradient<T> {
    pub(crate) fn channels(&self) -> usize {
        self.a.len()
    }

    /// These coefficients for the f32 kernels, when `T` is f32.
    pub(crate) fn to_f32(&self) -> Option<InputGradient<f32>> {
        Some(InputGradient {
            mask_scale: f32_copy(&self.mask_scale)?,
            mask_shift: f32_copy(&self.mask_shift)?,
            a: f32_copy(&self.a)?,
            b: f32_copy(&self.b)?,
            c: f32_copy(&self.c)?,
        })
    }

    /// One pixel's dx, from its input values `x` and output gradients `g`.
    #[inline(always)]
    pub(crate) fn pixel<'a>(&'a self, x: &'a [T], g: &'a [T]) -> impl Iterator<Item = T> + 'a {
        let zero = T::from_f64(0.0);
        let mask = self.mask_scale.iter().zip(&self.mask_shift);
        let coefficients = self.a.iter().zip(&self.b).zip(&self.c);
        // Zipped slices, so the loop runs over indices without checks and vectorises; the mask
        // is a select, not a branch, as both values are loaded first.
        x.iter().zip(g).zip(mask).zip(coefficients).map(
            move |(((&xv, &gv), (&sa, &sb)), ((&a, &b), &c))| {
                let gv = if xv * sa + sb > zero { gv } else { zero };
                a * gv + b * xv + c
            },
        )
    }

    /// dx for the input `x` and output gradient `dy`, written once, in parallel.
    pub(crate) fn apply(&self, x: &[T], dy: &[T]) -> Vec<T> {
        let channels = self.channels();
        per_pixel(x.len(), channels, |at| {
            self.pixel(&x[at..][..channels], &dy[at..][..channels])
        })
    }
}

/// dx's coefficients, dγ and dβ: the sums over the batch of [`backward`], over `images` images
/// of `channels` channels.
#[allow(clippy::too_many_arguments)]
fn backward_sums<T: Real>(
    x: &[T],
    dy: OutputGradientSource<'_, T>,
    gamma: &[T],
    beta: &[T],
    stats: &BatchNormStats,
    (channels, images): (usize, usize),
    eps: f64,
    relu: bool,
    batch_statistics: bool,
) -> (Option<Vec<T>>, InputGradient<T>, Vec<T>, Vec<T>) {
    debug_assert_eq!(gamma.len(), channels);
    let sums = GradientSums::new(gamma, beta, stats, eps, relu);
    let (produced, partials) = sums.batch(x, dy, images);
    let (gradient, dgamma, dbeta) = sums.gradient(&partials, gamma, stats, eps, batch_statistics);
    (produced, gradient, dgamma, dbeta)
}

/// [`backward_deferred`] from the images' partial sums (`sums`' [`GradientSums::image`] of each
/// image, in order), taken by whoever had the images in cache. Timed for the benchmark's
/// breakdown.
pub(crate) fn backward_from_sums<T: Real>(
    sums: &GradientSums<T>,
    partials: &[f64],
    gamma: &[T],
    stats: &BatchNormStats,
    eps: f64,
) -> (InputGradient<T>, Vec<T>, Vec<T>) {
    let start = Instant::now();
    let parts = sums.gradient(partials, gamma, stats, eps, true);
    record(Phase::BatchNormBackward, start);
    parts
}

/// The output gradient a backward pass sums over: given, or computed block by block as the sums
/// are taken (`produce(first, block)` writes the values `first..` of dy into `block`, every one
/// of them), so it is summed while still in cache and not read back from memory.
pub(crate) enum OutputGradientSource<'a, T> {
    Values(&'a [T]),
    Produced(&'a (dyn Fn(usize, &mut [MaybeUninit<T>]) + Sync)),
}

impl BatchNormOp {
    fn fixed_or_batch(&self) -> Result<BatchNormStats> {
        match &self.statistics {
            Statistics::Fixed(stats) => Ok(stats.clone()),
            Statistics::Batch(shared) => Ok(lock(shared)?.clone()),
        }
    }

    fn forward_typed<T: Real>(
        &self,
        x: &[T],
        gamma: &[T],
        beta: &[T],
        (channels, images): (usize, usize),
    ) -> Result<Vec<T>> {
        if gamma.len() != channels || beta.len() != channels {
            candle_core::bail!(
                "batch norm: {} channels but γ has {} and β {}",
                channels,
                gamma.len(),
                beta.len()
            );
        }
        let fixed = match &self.statistics {
            Statistics::Fixed(stats) => Some(stats),
            Statistics::Batch(_) => None,
        };
        let (out, stats) = forward(
            x,
            gamma,
            beta,
            channels,
            self.eps,
            self.relu,
            (fixed, images),
        );
        if let Statistics::Batch(shared) = &self.statistics {
            *lock(shared)? = stats;
        }
        Ok(out)
    }

    fn backward_typed<T: Real>(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        beta: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let channels = channel_count(x.shape())?;
        // The leading dimension counts the images (or, for `[B, C]`, rows of one value each).
        let images = x.dims().first().copied().unwrap_or(1);
        let stats = self.fixed_or_batch()?;
        let batch_statistics = matches!(self.statistics, Statistics::Batch(_));
        let grads = with_slice::<T, _>(x, |x| {
            with_slice::<T, _>(beta, |beta| {
                with_slice::<T, _>(grad, |dy| {
                    with_slice::<T, _>(gamma, |gamma| {
                        Ok(backward(
                            x,
                            dy,
                            gamma,
                            beta,
                            &stats,
                            (channels, images),
                            self.eps,
                            self.relu,
                            batch_statistics,
                        ))
                    })
                })
            })
        })?;
        let device = x.device();
        Ok((
            Some(Tensor::from_vec(grads.dx, x.shape(), device)?),
            Some(Tensor::from_vec(grads.dgamma, channels, device)?),
            Some(Tensor::from_vec(grads.dbeta, channels, device)?),
        ))
    }
}

impl candle_core::CustomOp3 for BatchNormOp {
    fn name(&self) -> &'static str {
        "fast-batch-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let channels = channel_count(l1.shape())?;
        // The leading dimension counts the images (or, for `[B, C]`, rows of one value each).
        let images = l1.shape().dims().first().copied().unwrap_or(1);
        let storage = match s1 {
            CpuStorage::F32(_) => CpuStorage::F32(self.forward_typed::<f32>(
                contiguous_slice(s1, l1)?,
                contiguous_slice(s2, l2)?,
                contiguous_slice(s3, l3)?,
                (channels, images),
            )?),
            CpuStorage::F64(_) => CpuStorage::F64(self.forward_typed::<f64>(
                contiguous_slice(s1, l1)?,
                contiguous_slice(s2, l2)?,
                contiguous_slice(s3, l3)?,
                (channels, images),
            )?),
            _ => candle_core::bail!("fast batch norm: f32 or f64 only"),
        };
        Ok((storage, l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        beta: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        match x.dtype() {
            candle_core::DType::F32 => self.backward_typed::<f32>(x, gamma, beta, grad),
            candle_core::DType::F64 => self.backward_typed::<f64>(x, gamma, beta, grad),
            other => candle_core::bail!("fast batch norm: unsupported dtype {other:?}"),
        }
    }
}
