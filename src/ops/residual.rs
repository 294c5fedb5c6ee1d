//! The end of a residual block, `relu(y + shortcut(x))`, in one pass over channels-last (NHWC)
//! tensors: the shortcut is the identity or option A (every second pixel, channels beyond x's count
//! zero), never materialised.

use std::mem::MaybeUninit;

use candle_core::{CpuStorage, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::batch_norm::Normalization;
use super::profile::{Phase, timed};
use super::simd::PlainLoop;
use super::{Real, contiguous_slice, fill_parallel, simd, with_slice};

struct AddRelu {
    downsample: bool,
}

/// `relu(y + x)`, or with `downsample`, `relu(y + pad_channels(x[:, ::2, ::2, :]))` (option A),
/// on channels-last tensors. `y`: `[B, H', W', C]`; `x`: `[B, H', W', C]`, or `[B, H, W, C']`
/// with 1 ≤ C' ≤ C, H' = ⌈H/2⌉, W' = ⌈W/2⌉. Gradients flow to both.
pub fn add_relu(y: &Tensor, x: &Tensor, downsample: bool) -> Result<Tensor> {
    y.contiguous()?
        .apply_op2(&x.contiguous()?, AddRelu { downsample })
}

/// Shapes of y and x as (batch, y rows, y cols, y channels, x rows, x cols, x channels).
pub(crate) type Dims = (usize, usize, usize, usize, usize, usize, usize);

pub(crate) fn dims(y: &Shape, x: &Shape, downsample: bool) -> Result<Dims> {
    let (b, h, w, c) = y.dims4()?;
    let (xb, xh, xw, xc) = x.dims4()?;
    let fits = if downsample {
        xb == b && (1..=c).contains(&xc) && xh.div_ceil(2) == h && xw.div_ceil(2) == w
    } else {
        (xb, xh, xw, xc) == (b, h, w, c)
    };
    if !fits {
        candle_core::bail!(
            "residual add: NHWC shapes {y:?} and {x:?} do not fit (downsample {downsample})"
        );
    }
    Ok((b, h, w, c, xh, xw, xc))
}

/// Rayon splits of at least this many values keep per-task overhead small on 8×8 maps.
const MIN_TASK_VALUES: usize = 4096;

/// Image rows (of `row_len` values) per rayon task.
fn min_rows(row_len: usize) -> usize {
    (MIN_TASK_VALUES / row_len.max(1)).max(1)
}

/// max(v, 0). A plain function rather than a closure over a local zero: through a captured
/// reference the compiler reloaded the zero for every value and kept the loops scalar.
#[inline]
fn relu<T: Real>(v: T) -> T {
    let zero = T::from_f64(0.0);
    if v > zero { v } else { zero }
}

/// `relu(y + shortcut(x))` over the shapes `d`, or `relu(normalization(y) + shortcut(x))` with
/// batch norm's affine map applied to y as it is read (so the block's last batch norm never
/// writes its output out whole). Timed for the benchmark's breakdown.
pub(crate) fn forward<T: Real>(
    y: &[T],
    normalization: Option<&Normalization<T>>,
    x: &[T],
    d: Dims,
    downsample: bool,
) -> Vec<T> {
    timed(Phase::AddReluForward, || {
        forward_untimed(y, normalization, x, d, downsample)
    })
}

/// `out = relu(y + shortcut)` over one pixel's channels (y normalised first when `normalization`
/// is given); channels past the shortcut's end add nothing (option A's zeros).
#[inline(always)]
fn add_relu_pixel<T: Real>(
    out: &mut [MaybeUninit<T>],
    y: &[T],
    normalization: Option<&Normalization<T>>,
    shortcut: &[T],
) {
    let (out, rest) = out.split_at_mut(shortcut.len().min(out.len()));
    let (y, y_rest) = y.split_at(out.len());
    match normalization {
        None => {
            for ((o, &a), &s) in out.iter_mut().zip(y).zip(shortcut) {
                o.write(relu(a + s));
            }
            for (o, &a) in rest.iter_mut().zip(y_rest) {
                o.write(relu(a));
            }
        }
        Some(n) => {
            for ((o, a), &s) in out.iter_mut().zip(n.pixel(y, 0)).zip(shortcut) {
                o.write(relu(a + s));
            }
            for (o, a) in rest.iter_mut().zip(n.pixel(y_rest, y.len())) {
                o.write(relu(a));
            }
        }
    }
}

fn forward_untimed<T: Real>(
    y: &[T],
    normalization: Option<&Normalization<T>>,
    x: &[T],
    d: Dims,
    downsample: bool,
) -> Vec<T> {
    let (_, h, w, c, xh, xw, xc) = d;
    if y.is_empty() {
        return Vec::new();
    }
    if !downsample {
        let chunk = min_rows(c) * c;
        let kernel = |task: usize, out: &mut [MaybeUninit<T>]| {
            let (y, x) = (
                &y[task * chunk..][..out.len()],
                &x[task * chunk..][..out.len()],
            );
            simd::vectorized(&mut AddReluPixels {
                out,
                y,
                normalization,
                x,
                c,
            });
        };
        // SAFETY: chunk is a whole number of pixels, as is y.len() (= x.len(), by `dims`), so
        // every task's output, y and x slices have one length, and each value is written once.
        return unsafe { fill_parallel(y.len(), chunk, kernel) };
    }
    // Per output image row: its pixels add x's pixels (2i, 2j), whose C' channels are contiguous,
    // so the channel loops vectorise; channels C'.. pass y through the ReLU alone.
    let row_len = w * c;
    let rows_per_task = min_rows(row_len);
    let kernel = |task: usize, out: &mut [MaybeUninit<T>]| {
        let first_row = task * rows_per_task;
        let y = &y[first_row * row_len..][..out.len()];
        for ((o, y), index) in out
            .chunks_exact_mut(row_len)
            .zip(y.chunks_exact(row_len))
            .zip(first_row..)
        {
            let (b, i) = (index / h, index % h);
            let x_row = &x[(b * xh + 2 * i) * xw * xc..][..xw * xc];
            for ((o, y), shortcut) in o
                .chunks_exact_mut(c)
                .zip(y.chunks_exact(c))
                .zip(x_row.chunks(2 * xc))
            {
                add_relu_pixel(o, y, normalization, &shortcut[..xc]);
            }
        }
    };
    // SAFETY: tasks cover whole output rows (row_len divides every task's length, as it divides
    // y.len()); a row has w pixels of c channels, x's row has ⌈xw/2⌉ = w pixel pairs (the last maybe
    // a single pixel, still ≥ xc values), and each pixel writes its xc + (c − xc) values.
    unsafe { fill_parallel(y.len(), rows_per_task * row_len, kernel) }
}

/// [`add_relu_pixel`] of each of a task's pixels with the identity shortcut (`c` channels). Run
/// through [`simd::vectorized`], so that its loops are compiled for the machine's vector unit, not
/// for baseline x86-64's four floats: the residual add's forward pass, 12.2–17.0 → 12.2–16.1 ms
/// of the ResNet-20 SLA step (three alternating runs; a pass over memory, mostly).
struct AddReluPixels<'a, T> {
    out: &'a mut [MaybeUninit<T>],
    y: &'a [T],
    normalization: Option<&'a Normalization<T>>,
    x: &'a [T],
    c: usize,
}

impl<T: Real> PlainLoop for AddReluPixels<'_, T> {
    #[inline(always)]
    fn run(&mut self) {
        let c = self.c;
        for ((o, y), x) in (self.out.chunks_exact_mut(c))
            .zip(self.y.chunks_exact(c))
            .zip(self.x.chunks_exact(c))
        {
            add_relu_pixel(o, y, self.normalization, x);
        }
    }
}

/// (dy, dx); dx is left empty for the identity shortcut, whose gradient is dy. Timed for the
/// benchmark's breakdown.
pub(crate) fn backward<T: Real>(
    out: &[T],
    grad: &[T],
    d: Dims,
    downsample: bool,
) -> (Vec<T>, Vec<T>) {
    timed(Phase::AddReluBackward, || {
        backward_untimed(out, grad, d, downsample)
    })
}

/// The gradient through the ReLU at one value: `grad` where the output passed it, else 0.
#[inline(always)]
fn through_relu<T: Real>(out: T, grad: T) -> T {
    if out > T::from_f64(0.0) {
        grad
    } else {
        T::from_f64(0.0)
    }
}

/// `grad` through the ReLU whose output is `out`, in place ([`through_relu`] at every value),
/// compiled for the machine's vector instructions: for a pass that has both in cache (the next
/// block's backward pass, image by image).
pub(crate) fn through_relu_in_place<T: Real>(out: &[T], grad: &mut [T]) {
    simd::vectorized(&mut ThroughReluInPlace { out, grad });
}

struct ThroughReluInPlace<'a, T> {
    out: &'a [T],
    grad: &'a mut [T],
}

impl<T: Real> PlainLoop for ThroughReluInPlace<'_, T> {
    #[inline(always)]
    fn run(&mut self) {
        for (g, &o) in self.grad.iter_mut().zip(self.out) {
            *g = through_relu(o, *g);
        }
    }
}

/// The gradient of `y` (before the ReLU) as a producer of blocks of values (`first..`), for a
/// pass that consumes it as it is made (batch norm's backward sums,
/// `batch_norm::OutputGradientSource::Produced`): the same values as [`backward`]'s dy.
pub(crate) fn relu_gradient<'a, T: Real>(
    out: &'a [T],
    grad: &'a [T],
) -> impl Fn(usize, &mut [MaybeUninit<T>]) + Sync + 'a {
    move |first, block| {
        let len = block.len();
        for ((value, &o), &g) in block
            .iter_mut()
            .zip(&out[first..][..len])
            .zip(&grad[first..][..len])
        {
            value.write(through_relu(o, g));
        }
    }
}

fn backward_untimed<T: Real>(out: &[T], grad: &[T], d: Dims, downsample: bool) -> (Vec<T>, Vec<T>) {
    let dy: Vec<T> = out
        .par_iter()
        .zip(grad.par_iter())
        .with_min_len(MIN_TASK_VALUES)
        .map(|(&o, &g)| through_relu(o, g))
        .collect();
    if !downsample {
        return (dy, Vec::new());
    }
    let dx = shortcut_gradient_untimed(&dy, d);
    (dy, dx)
}

/// Adds the option-A shortcut's gradient from dy (the gradient of `y`, before the ReLU) into x's
/// gradient `dx` in place: x's pixel (2i, 2j) gets dy's pixel (i, j), channels 0..C', and no
/// other value of dx changes, so only those pixels are read and written. Made whole
/// ([`shortcut_gradient_untimed`], three quarters of it zeros) and then added, it was four passes
/// over an x-sized buffer: 3.6 ms of ResNet-20's SLA step for its two downsampling blocks (2-core
/// Zen 4). Timed for the benchmark's breakdown.
pub(crate) fn add_shortcut_gradient<T: Real>(dx: &mut [T], dy: &[T], d: Dims) {
    let (_, h, w, c, xh, xw, xc) = d;
    let x_row_len = xw * xc;
    if x_row_len == 0 {
        return;
    }
    timed(Phase::AddReluBackward, || {
        dx.par_chunks_mut(x_row_len)
            .with_min_len(min_rows(x_row_len))
            .enumerate()
            .filter(|(index, _)| index % xh % 2 == 0)
            .for_each(|(index, row)| {
                let (bi, xi) = (index / xh, index % xh);
                let g = &dy[(bi * h + xi / 2) * w * c..][..w * c];
                // Pixel pairs (2j, 2j + 1); with an odd width the last chunk is pixel 2j alone.
                for (pair, g) in row.chunks_mut(2 * xc).zip(g.chunks_exact(c)) {
                    for (a, &b) in pair[..xc].iter_mut().zip(&g[..xc]) {
                        *a += b;
                    }
                }
            });
    });
}

fn shortcut_gradient_untimed<T: Real>(dy: &[T], d: Dims) -> Vec<T> {
    let (b, h, w, c, xh, xw, xc) = d;
    // Option A: x's pixel (2i, 2j) gets dy's pixel (i, j), channels 0..C'; every other value of x
    // is zero. Rows of x in parallel, written once each (no zeroing pass first).
    let x_row_len = xw * xc;
    if x_row_len == 0 {
        return Vec::new();
    }
    let rows_per_task = min_rows(x_row_len);
    let kernel = |task: usize, dx: &mut [MaybeUninit<T>]| {
        let zero = MaybeUninit::new(T::from_f64(0.0));
        let first_row = task * rows_per_task;
        for (row, index) in dx.chunks_exact_mut(x_row_len).zip(first_row..) {
            let (bi, xi) = (index / xh, index % xh);
            if xi % 2 == 1 {
                row.fill(zero);
                continue;
            }
            let g = &dy[(bi * h + xi / 2) * w * c..][..w * c];
            // Pixel pairs (2j, 2j + 1); with an odd width the last chunk is pixel 2j alone.
            for (pair, g) in row.chunks_mut(2 * xc).zip(g.chunks_exact(c)) {
                let (even, odd) = pair.split_at_mut(xc);
                even.write_copy_of_slice(&g[..xc]);
                odd.fill(zero);
            }
        }
    };
    // SAFETY: tasks cover whole rows of x (x_row_len divides each task's length); odd rows are
    // filled; an even row's ⌈xw/2⌉ = w chunks of up to two pixels pair with dy's w pixels, and each
    // writes its first pixel from dy and the rest with zeros.
    unsafe { fill_parallel(b * xh * x_row_len, rows_per_task * x_row_len, kernel) }
}

impl AddRelu {
    fn backward_typed<T: Real>(
        &self,
        y: &Tensor,
        x: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let d = dims(y.shape(), x.shape(), self.downsample)?;
        let (dy, dx) = with_slice::<T, _>(res, |out| {
            with_slice::<T, _>(grad, |grad| Ok(backward(out, grad, d, self.downsample)))
        })?;
        let dy = Tensor::from_vec(dy, y.shape(), y.device())?;
        // The identity shortcut's gradient is dy itself: share the tensor instead of copying it.
        let dx = if self.downsample {
            Tensor::from_vec(dx, x.shape(), x.device())?
        } else {
            dy.clone()
        };
        Ok((Some(dy), Some(dx)))
    }
}

impl candle_core::CustomOp2 for AddRelu {
    fn name(&self) -> &'static str {
        "fast-add-relu"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let d = dims(l1.shape(), l2.shape(), self.downsample)?;
        let storage = match (s1, s2) {
            (CpuStorage::F32(_), CpuStorage::F32(_)) => CpuStorage::F32(forward::<f32>(
                contiguous_slice(s1, l1)?,
                None,
                contiguous_slice(s2, l2)?,
                d,
                self.downsample,
            )),
            (CpuStorage::F64(_), CpuStorage::F64(_)) => CpuStorage::F64(forward::<f64>(
                contiguous_slice(s1, l1)?,
                None,
                contiguous_slice(s2, l2)?,
                d,
                self.downsample,
            )),
            _ => candle_core::bail!("fast add-relu: f32 or f64 inputs of one dtype"),
        };
        Ok((storage, l1.shape().clone()))
    }

    fn bwd(
        &self,
        y: &Tensor,
        x: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        match y.dtype() {
            candle_core::DType::F32 => self.backward_typed::<f32>(y, x, res, grad),
            candle_core::DType::F64 => self.backward_typed::<f64>(y, x, res, grad),
            other => candle_core::bail!("fast add-relu: unsupported dtype {other:?}"),
        }
    }
}
