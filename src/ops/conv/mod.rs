//! 2-D convolution without bias on channels-last images (`[B, H, W, Cin]`, weights kept in candle's
//! `[Cout, Cin, k, k]`), forward and both gradients.
//!
//! f32 runs on the direct SIMD kernels of [`direct`] whenever the shapes allow: the forward pass and
//! the input gradient (stride 1, or 3×3 stride 2 through its four pixel parities) when the output
//! channels are a multiple of the vector width, and the weight gradient when there are also at
//! least as many input channels as a tile has rows. All three passes of a 3×3, stride-1,
//! padding-1 convolution run as Winograd ([`winograd`]) instead: the forward pass and the input
//! gradient as F(4×4, 3×3) (F(2×2, 3×3) on maps where that needs no more multiplications, as
//! 5×5, 6×6 or 2×2), the weight gradient likewise when the input channels are whole tiles of 16.
//! In the CIFAR ResNets no pass is left to [`im2col`] (the stems' weight gradient, with 1 or 3
//! input channels, fills the tile with a kernel row's taps), which takes f64 and odd channel
//! counts. Images run in parallel on rayon; each kernel call is single-threaded, so no pass waits
//! on another.

mod direct;
mod im2col;
mod winograd;

use std::borrow::Cow;
use std::cell::RefCell;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicBool, Ordering};

use candle_core::{CpuStorage, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::batch_norm::{self, GradientSums, InputGradient, Normalization};
use super::profile::{Phase, add_conv_flops, count_conv_pass, record, timed};
use super::simd::{self, Isa};
use super::{Real, contiguous_slice, residual, with_slice};
use direct::{Epilogue, Padded, Parities, SlidingConv, Source, Tile, WeightGrad};

/// Convolution of the channels-last `x` `[B, H, W, Cin]` with `weight` `[Cout, Cin, k, k]`, giving
/// `[B, Ho, Wo, Cout]`.
pub fn conv2d(x: &Tensor, weight: &Tensor, stride: usize, padding: usize) -> Result<Tensor> {
    x.contiguous()?
        .apply_op2(&weight.contiguous()?, Conv { stride, padding })
}

struct Conv {
    stride: usize,
    padding: usize,
}

/// The shapes of one convolution: the input `[batch, h, w, cin]`, the `k`×`k` kernel, and the
/// output `[batch, ho, wo, cout]`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Geometry {
    batch: usize,
    h: usize,
    w: usize,
    cin: usize,
    cout: usize,
    k: usize,
    stride: usize,
    pad: usize,
    ho: usize,
    wo: usize,
}

impl Geometry {
    pub(crate) fn new(x: &Shape, weight: &Shape, stride: usize, pad: usize) -> Result<Self> {
        let (batch, h, w, cin) = x.dims4()?;
        let (cout, wcin, k, k2) = weight.dims4()?;
        if wcin != cin || k != k2 || k == 0 || stride == 0 || h + 2 * pad < k || w + 2 * pad < k {
            candle_core::bail!(
                "conv2d: channels-last input {x:?} and weight {weight:?} (stride {stride}, \
                 padding {pad}) do not fit"
            );
        }
        Ok(Self {
            batch,
            h,
            w,
            cin,
            cout,
            k,
            stride,
            pad,
            ho: (h + 2 * pad - k) / stride + 1,
            wo: (w + 2 * pad - k) / stride + 1,
        })
    }

    fn macs(&self) -> u64 {
        (self.batch * self.cout * self.cin * self.k * self.k * self.ho * self.wo) as u64
    }

    fn input_len(&self) -> usize {
        self.h * self.w * self.cin
    }

    fn output_len(&self) -> usize {
        self.ho * self.wo * self.cout
    }

    pub(crate) fn output_shape(&self) -> Shape {
        Shape::from((self.batch, self.ho, self.wo, self.cout))
    }

    /// The input pixel that kernel tap (ky, kx) of output pixel (oy, ox) reads, if inside the image.
    fn input_pixel(&self, oy: usize, ox: usize, ky: usize, kx: usize) -> Option<(usize, usize)> {
        let iy = (oy * self.stride + ky).checked_sub(self.pad)?;
        let ix = (ox * self.stride + kx).checked_sub(self.pad)?;
        (iy < self.h && ix < self.w).then_some((iy, ix))
    }

    /// The frame of the input the weight-gradient kernel reads: every row and column a tap reaches.
    fn weight_grad_frame(&self) -> (usize, usize) {
        (
            (self.ho - 1) * self.stride + self.k,
            (self.wo - 1) * self.stride + self.k,
        )
    }

    /// The sliding kernel for one image of this convolution (gathering the image's moments into
    /// `moments` when given).
    fn sliding<'a>(
        &self,
        (tile, input): (Tile, &'a Padded),
        weights: &'a [f32],
        (out, moments): (&'a mut [MaybeUninit<f32>], Option<&'a mut [f32]>),
        epilogue: Epilogue<'a>,
    ) -> SlidingConv<'a> {
        SlidingConv {
            tile,
            input,
            cin: self.cin,
            k: self.k,
            stride: self.stride,
            ho: self.ho,
            wo: self.wo,
            weights,
            cout: self.cout,
            out,
            epilogue,
            moments,
        }
    }

    /// The weight-gradient kernel for one image of this convolution, its dY rows `dy_pitch`
    /// floats apart.
    fn weight_grad<'a>(
        &self,
        (tile, input): (Tile, &'a Padded),
        (dy, dy_pitch): (&'a [f32], usize),
        dw: &'a mut [f32],
    ) -> WeightGrad<'a> {
        WeightGrad {
            tile,
            input,
            cin: self.cin,
            k: self.k,
            stride: self.stride,
            ho: self.ho,
            wo: self.wo,
            dy,
            dy_pitch,
            cout: self.cout,
            dw,
        }
    }

    /// For stride 1, the input gradient is the convolution of dY (padded by k − 1 − pad) with the
    /// flipped, transposed kernel: this is its geometry.
    fn transposed(&self) -> Option<Geometry> {
        // `then`, not `then_some`: k − 1 − pad exists only when the condition holds.
        (self.stride == 1 && self.pad < self.k).then(|| Geometry {
            h: self.ho,
            w: self.wo,
            cin: self.cout,
            cout: self.cin,
            pad: self.k - 1 - self.pad,
            ho: self.h,
            wo: self.w,
            ..*self
        })
    }
}

/// `[Cout, Cin, k, k]` → `[k, k, Cin, Cout]` (HWIO), the layout of the im2col path.
fn to_hwio<T: Real>(weight: &[T], g: &Geometry) -> Vec<T> {
    let mut out = Vec::with_capacity(weight.len());
    for ky in 0..g.k {
        for kx in 0..g.k {
            for ci in 0..g.cin {
                for co in 0..g.cout {
                    out.push(weight[((co * g.cin + ci) * g.k + ky) * g.k + kx]);
                }
            }
        }
    }
    out
}

/// `[k, k, Cin, Cout]` → `[Cout, Cin, k, k]`.
fn from_hwio<T: Real>(hwio: &[T], g: &Geometry) -> Vec<T> {
    let mut out = Vec::with_capacity(hwio.len());
    for co in 0..g.cout {
        for ci in 0..g.cin {
            for ky in 0..g.k {
                for kx in 0..g.k {
                    out.push(hwio[((ky * g.k + kx) * g.cin + ci) * g.cout + co]);
                }
            }
        }
    }
    out
}

/// The weight gradient in HWIO, summed over fixed groups of images, each with its own partial sum
/// added in order afterwards: the result does not depend on how rayon schedules the groups, so
/// training is reproducible. `per_image` adds one image's share and says whether it could.
fn weight_grad_groups<T: Real, S>(
    g: &Geometry,
    scratch: impl Fn() -> S + Sync,
    per_image: impl Fn(usize, &mut [T], &mut S) -> bool + Sync,
) -> Option<Vec<T>> {
    let zero = T::from_f64(0.0);
    let len = g.k * g.k * g.cin * g.cout;
    let group = images_per_group(g, len);
    let partials: Option<Vec<Vec<T>>> = (0..g.batch.div_ceil(group))
        .into_par_iter()
        .map(|index| {
            let mut dw = vec![zero; len];
            let mut scratch = scratch();
            for b in index * group..((index + 1) * group).min(g.batch) {
                if !per_image(b, &mut dw, &mut scratch) {
                    return None;
                }
            }
            Some(dw)
        })
        .collect();
    Some(add_in_order(&partials?, len))
}

/// Images per group of [`weight_grad_groups`] whose partial sums have `partial_len` values: a
/// split of the batch fixed by the shapes, 32 groups, or 16 where each partial sum is larger
/// than 256 KB. The groups' partial sums are zeroed and then added: for a 64-channel Winograd
/// weight gradient (36·64·64 products, 590 KB a group) 32 of them cost 0.7–0.9 ms more of the
/// 7×7 64→64 backward pass than 16 (11.3–11.6 against 10.5–11.1 ms; 2-core Zen 4, batch 512,
/// four alternating runs), and 16 groups still keep 16 workers busy.
fn images_per_group(g: &Geometry, partial_len: usize) -> usize {
    /// Values of a partial sum (f32) above which the batch is split into fewer groups.
    const LARGE_PARTIAL: usize = 64 * 1024;
    let groups = if partial_len > LARGE_PARTIAL { 16 } else { 32 };
    g.batch.div_ceil(groups).max(1)
}

/// The groups' partial weight gradients added in group order, each chunk of the sum on its own
/// worker. Each value is still `0 + p₀ + p₁ + …` in group order, so the result is the same bit
/// for bit as one thread's; the chunk stays in the first-level cache while every group's part
/// is added to it. Added whole on the calling thread, this took 7 ms of the ResNet-20 SLA step
/// while the other core waited (`perf`, 2-core Zen 4; Winograd's products are 36·Cin·Cout per
/// group, 590 KB at 64 channels).
fn add_in_order<T: Real>(partials: &[Vec<T>], len: usize) -> Vec<T> {
    /// Values per chunk: 16 KB of f32.
    const CHUNK: usize = 4096;
    let mut dw = vec![T::from_f64(0.0); len];
    dw.par_chunks_mut(CHUNK)
        .enumerate()
        .for_each(|(index, dw)| {
            for partial in partials {
                for (a, &b) in dw.iter_mut().zip(&partial[index * CHUNK..]) {
                    *a += b;
                }
            }
        });
    dw
}

fn image<T>(data: &[T], index: usize, len: usize) -> &[T] {
    &data[index * len..][..len]
}

/// The general forward path: im2col + GEMM per image.
fn forward_im2col<T: Real>(x: &[T], weight: &[T], g: &Geometry) -> Vec<T> {
    let hwio = to_hwio(weight, g);
    let mut out = vec![T::from_f64(0.0); g.batch * g.output_len()];
    out.par_chunks_mut(g.output_len())
        .zip(x.par_chunks(g.input_len()))
        .for_each_init(
            || im2col::Scratch::new(g),
            |scratch, (out, x)| im2col::forward_image(x, &hwio, g, out, scratch),
        );
    out
}

/// The general input gradient: columns of dY·Wᵀ folded back per image.
fn input_grad_im2col<T: Real>(dy: &[T], weight: &[T], g: &Geometry) -> Vec<T> {
    let hwio = to_hwio(weight, g);
    let mut dx = vec![T::from_f64(0.0); g.batch * g.input_len()];
    dx.par_chunks_mut(g.input_len())
        .zip(dy.par_chunks(g.output_len()))
        .for_each_init(
            || im2col::Scratch::new(g),
            |scratch, (dx, dy)| im2col::input_grad_image(dy, &hwio, g, dx, scratch),
        );
    dx
}

/// The general weight gradient, in candle's `[Cout, Cin, k, k]`.
fn weight_grad_im2col<T: Real>(x: &[T], dy: &[T], g: &Geometry) -> Vec<T> {
    let hwio = weight_grad_groups::<T, _>(
        g,
        || im2col::Scratch::new(g),
        |b, dw, scratch| {
            let (x, dy) = (image(x, b, g.input_len()), image(dy, b, g.output_len()));
            im2col::weight_grad_image(x, dy, g, dw, scratch);
            true
        },
    );
    // The closure never fails, so the groups always give a gradient.
    from_hwio(&hwio.unwrap_or_default(), g)
}

thread_local! {
    /// Each rayon worker's padded copy of the image it works on, reused from image to image.
    static PADDED: RefCell<Padded> = RefCell::new(Padded::new());
}

/// The convolution `g` of every image with the sliding kernel, weights given by
/// `weight(co, ci, ky, kx)`, each output written once (no zeroing pass first), with each image's
/// moments of its output for batch norm (`batch_norm::MOMENTS_PER_CHANNEL` values per channel)
/// when `with_moments`; `None` when the shapes do not suit the kernels.
fn sliding_direct(
    input: &Images,
    g: &Geometry,
    weight: impl Fn(usize, usize, usize, usize) -> f32,
    (epilogue, with_moments): (Epilogue, bool),
    isa: Isa,
) -> Option<(Vec<f32>, Option<Vec<f32>>)> {
    let tile = Tile::for_row(isa, g.cout, g.wo)?;
    let packed = direct::pack_sliding(&tile, (g.cout, g.cin, g.k), weight);
    let (rows, width) = direct::frame(&tile, (g.ho, g.wo), g.k, g.stride);
    // Each image's output: `[ho, wo, cout]`, or the image its parities interleave into.
    let image_len = epilogue
        .parities
        .map_or(g.output_len(), |Parities { cin, h, w }| h * w * cin);
    each_image(g, image_len, with_moments, |index, out, moments| {
        let image = input.image(index, g.input_len());
        let epilogue = epilogue.for_image(index, g.output_len());
        PADDED.with_borrow_mut(|padded| {
            padded.fill(image, (g.h, g.w, g.cin), g.pad, (rows, width), isa);
            let kernel = g.sliding((tile, padded), &packed, (out, moments), epilogue);
            simd::dispatch(isa, kernel).unwrap_or(false)
        })
    })
}

/// Every image's output (`image_len` values) by `run(index, out, moments)`, in parallel, each
/// written once (no zeroing pass first), with each image's moments of its output for batch norm
/// (`batch_norm::MOMENTS_PER_CHANNEL` values per output channel, zeroed) when `with_moments`;
/// `None` when `run` refused an image (it returns whether it wrote the image's output whole).
fn each_image(
    g: &Geometry,
    image_len: usize,
    with_moments: bool,
    run: impl Fn(usize, &mut [MaybeUninit<f32>], Option<&mut [f32]>) -> bool + Sync,
) -> Option<(Vec<f32>, Option<Vec<f32>>)> {
    let refused = AtomicBool::new(false);
    let image_moments = if with_moments {
        batch_norm::MOMENTS_PER_CHANNEL * g.cout
    } else {
        0
    };
    let fill = |index: usize, out: &mut [MaybeUninit<f32>], moments: Option<&mut [f32]>| {
        if !run(index, &mut *out, moments) {
            out.fill(MaybeUninit::new(0.0));
            refused.store(true, Ordering::Relaxed);
        }
    };
    let len = g.batch * image_len;
    let mut out = Vec::with_capacity(len);
    let mut moments = vec![0f32; g.batch * image_moments];
    let images = out.spare_capacity_mut()[..len].par_chunks_mut(image_len.max(1));
    if with_moments {
        images
            .zip(moments.par_chunks_mut(image_moments.max(1)))
            .enumerate()
            .for_each(|(index, (out, moments))| fill(index, out, Some(moments)));
    } else {
        images
            .enumerate()
            .for_each(|(index, out)| fill(index, out, None));
    }
    // SAFETY: the images' chunks cover the first `len` values; `run` writes its image's output
    // whole when it returns true (the sliding kernel every pixel and channel chunk of the shapes
    // `Tile::for_row` admits, interleaved parities included, since pixel (iy, ix) is output
    // (⌊iy/2⌋, ⌊ix/2⌋) of its parity; the Winograd kernel every pixel of the image), and
    // `fill` zeroes it otherwise.
    unsafe { out.set_len(len) };
    (!refused.load(Ordering::Relaxed)).then_some((out, with_moments.then_some(moments)))
}

/// The Winograd tiling the convolution `g` runs as with vectors of `lanes` floats, if any (3×3,
/// stride 1, padding 1, input and output channels whole vectors): the one with fewer
/// multiply-adds over the map's tiles, F(2×2) on a tie, as it rounds less. F(4×4) takes every
/// map from 7×7 up (on a 2-core Zen 4 it took 0.76–0.91 of F(2×2)'s time forward and
/// 0.75–0.95 backward on the ResNets' layers, `examples/conv_pass.rs`); F(2×2) maps such as
/// 5×5, 6×6 or 2×2, where F(4×4)'s tiles reach far past the image.
fn winograd_tiling(g: &Geometry, lanes: usize) -> Option<winograd::Tiling> {
    use winograd::Tiling::{F2, F4};
    let suits = (g.k, g.stride, g.pad) == (3, 1, 1)
        && g.cin.is_multiple_of(lanes)
        && g.cout.is_multiple_of(lanes);
    let multiplications =
        |tiling: winograd::Tiling| tiling.tiles((g.h, g.w)).1 * tiling.positions();
    let tiling = if multiplications(F4) < multiplications(F2) {
        F4
    } else {
        F2
    };
    suits.then_some(tiling)
}

/// The Winograd tiling the weight gradient of `g` runs as with vectors of `lanes` floats, if
/// any: [`winograd_tiling`]'s when the input channels are whole register tiles. On a 2-core
/// Zen 4, backward (dX and dW) with F(4×4)'s weight gradient against F(2×2)'s (minima, two
/// rounds, `examples/conv_pass.rs`): 32×32 16→16 16.95 / 17.23 ms against 18.96 / 18.84, 16×16
/// 32→32 13.18 / 13.67 against 15.77 / 14.64, 28×28 16→16 13.71 / 13.96 against 14.63 / 15.15;
/// on 8×8 64→64 (4 tiles an image) 12.96 / 12.57 against 15.24 / 14.88, once its blocks run on
/// over the images (with a block per image it lost: 15.50 / 15.94).
fn weight_grad_tiling(g: &Geometry, lanes: usize) -> Option<winograd::Tiling> {
    let whole_tiles = g.cin.is_multiple_of(winograd::WEIGHT_GRAD_ROWS);
    winograd_tiling(g, lanes).filter(|_| whole_tiles)
}

/// The forward pass as Winograd ([`winograd_tiling`]'s), or `None` for shapes it does not
/// take: 3×3, stride 1, padding 1, channels whole vectors of `isa`. The moments are
/// taken from each stored image in row order, as `batch_norm` takes them, so the statistics
/// agree bit for bit with a separate batch norm's.
fn forward_winograd(
    input: &Images,
    weight: &[f32],
    g: &Geometry,
    (epilogue, with_moments): (Epilogue, bool),
    isa: Isa,
) -> Option<(Vec<f32>, Option<Vec<f32>>)> {
    let lanes = Tile::for_channels(isa, g.cout)?.lanes;
    let tiling = winograd_tiling(g, lanes)?;
    if epilogue.parities.is_some() {
        return None;
    }
    let at = |co, ci, ky, kx| weight[((co * g.cin + ci) * 3 + ky) * 3 + kx];
    let u = tiling.transform_weights((g.cin, g.cout), at);
    winograd_images(input, g, (tiling, &u), (epilogue, with_moments), isa)
}

/// Every image of `input` convolved (the convolution `g`, stride 1, each output `g.ho` × `g.wo`)
/// on the Winograd kernel with `tiling` and its transformed weights `u`, each image `g.pad` rows
/// and columns into its frame, through `epilogue` (into the image the parities interleave into,
/// when it gives them), with each image's moments of its output when `with_moments`; `None`
/// when the kernel refused an image.
fn winograd_images(
    input: &Images,
    g: &Geometry,
    (tiling, u): (winograd::Tiling, &[f32]),
    (epilogue, with_moments): (Epilogue, bool),
    isa: Isa,
) -> Option<(Vec<f32>, Option<Vec<f32>>)> {
    let frame = tiling.frame((g.ho, g.wo));
    let image_len = epilogue
        .parities
        .map_or(g.output_len(), |Parities { cin, h, w }| h * w * cin);
    each_image(g, image_len, with_moments, |index, out, moments| {
        let image = input.image(index, g.input_len());
        let epilogue = epilogue.for_image(index, g.output_len());
        let done = PADDED.with_borrow_mut(|padded| {
            padded.fill(image, (g.h, g.w, g.cin), g.pad, frame, isa);
            winograd::BLOCK.with_borrow_mut(|block| {
                let kernel = winograd::WinogradConv {
                    tiling,
                    input: padded,
                    u,
                    h: g.ho,
                    w: g.wo,
                    cin: g.cin,
                    cout: g.cout,
                    out: &mut *out,
                    epilogue,
                    block,
                };
                simd::dispatch(isa, kernel).unwrap_or(false)
            })
        });
        if let (true, Some(moments)) = (done, moments) {
            // SAFETY: the kernel wrote the image's output whole (it returned true).
            let out = unsafe { &*(std::ptr::from_ref(&*out) as *const [f32]) };
            batch_norm::image_moments(out, g.cout, moments);
        }
        done
    })
}

/// The direct f32 forward pass (with each image's moments when `with_moments`), or `None` when
/// the shapes do not suit the kernels.
fn forward_direct(
    x: &Images,
    weight: &[f32],
    g: &Geometry,
    epilogue: (Epilogue, bool),
    isa: Isa,
) -> Option<(Vec<f32>, Option<Vec<f32>>)> {
    if let Some(result) = forward_winograd(x, weight, g, epilogue, isa) {
        return Some(result);
    }
    let at = |co, ci, ky, kx| weight[((co * g.cin + ci) * g.k + ky) * g.k + kx];
    sliding_direct(x, g, at, epilogue, isa)
}

/// The direct f32 input gradient for stride 1 (a forward pass over dY with the flipped, transposed
/// kernel), or `None` when the shapes do not suit the kernels.
fn input_grad_direct(dy: &[f32], weight: &[f32], g: &Geometry, isa: Isa) -> Option<Vec<f32>> {
    let t = g.transposed()?;
    let flipped = flipped_transposed(weight, g);
    sliding_plain(dy, &t, flipped, isa)
}

/// [`sliding_direct`] over plain values, with no epilogue and no moments.
fn sliding_plain(
    input: &[f32],
    g: &Geometry,
    weight: impl Fn(usize, usize, usize, usize) -> f32,
    isa: Isa,
) -> Option<Vec<f32>> {
    let plain = (Epilogue::default(), false);
    sliding_direct(&Images::Values(input), g, weight, plain, isa).map(|(out, _)| out)
}

/// `weight(co, ci, ky, kx)` of the input gradient's convolution: `W` flipped and transposed.
fn flipped_transposed<'a>(
    weight: &'a [f32],
    g: &Geometry,
) -> impl Fn(usize, usize, usize, usize) -> f32 + Sync + 'a {
    let (k, cin) = (g.k, g.cin);
    move |ci, co, ky, kx| weight[((co * cin + ci) * k + (k - 1 - ky)) * k + (k - 1 - kx)]
}

/// dX and dW (in HWIO) of a stride-1 convolution in one pass over the images, or `None` when the
/// shapes do not suit the kernels. Each image's dY is loaded into its padded frame once (the
/// batch norm's input gradient evaluated there, when fused) and both kernels read it from cache:
/// dX slides the flipped kernel over it, dW pairs it with the input's frame. Done as two passes,
/// dY went through memory three times (written whole, read for dX's frame, read again for dW),
/// and on a 2-core machine that moves about 13 GB/s the backward pass is as much memory traffic
/// as arithmetic. Images go in the fixed groups of [`weight_grad_groups`], so a direct dW is
/// summed in the same order as there, bit for bit; a Winograd dW sums its products in those
/// groups and takes them to dW once.
fn backward_direct(
    x: &Images,
    dy: &Images,
    weight: &[f32],
    (g, end): (&Geometry, &InputGradientEnd<f32>),
    isa: Isa,
) -> Option<DirectGradients> {
    let (dx_plus, dx_sums) = (end.plus, end.sums);
    let t = g.transposed()?;
    let dx_tile = Tile::for_row(isa, t.cout, t.wo)?;
    let dw_tile = Tile::for_channels(isa, g.cout)?;
    let k = g.k;
    // The input gradient as Winograd where its convolution suits it (as the forward pass's
    // does; see `forward_winograd`), on the same dY frame; else on the sliding kernel. Only the
    // kernel that runs gets its weights.
    let flipped = flipped_transposed(weight, g);
    let dx_weights = if let Some(tiling) = winograd_tiling(&t, dx_tile.lanes) {
        let u = tiling.transform_weights((t.cin, t.cout), flipped);
        InputGradWeights::Winograd(tiling, u)
    } else {
        InputGradWeights::Sliding(direct::pack_sliding(&dx_tile, (t.cout, t.cin, k), flipped))
    };
    // The weight gradient as Winograd's products where its convolution suits it (summed over
    // the batch, then taken to dW once), else on the direct kernel.
    let winograd_dw = weight_grad_tiling(g, dw_tile.lanes);
    // The frames both kernels read: a side that is not whole Winograd tiles has last tiles
    // reaching past it.
    let frame_of =
        |tiling: Option<winograd::Tiling>| tiling.map_or((0, 0), |tiling| tiling.frame((g.h, g.w)));
    let dx_tiling = match &dx_weights {
        InputGradWeights::Winograd(tiling, _) => Some(*tiling),
        InputGradWeights::Sliding(_) => None,
    };
    let winograd_frame = larger(frame_of(dx_tiling), frame_of(winograd_dw));
    let dy_frame = larger(direct::frame(&dx_tile, (t.ho, t.wo), k, 1), winograd_frame);
    let x_frame = larger(g.weight_grad_frame(), frame_of(winograd_dw));
    // dY's first pixel in its frame (t.pad rows and columns in), and the floats from row to row.
    let dy_first = (t.pad * dy_frame.1 + t.pad) * g.cout;
    let dy_pitch = dy_frame.1 * g.cout;
    let taps = winograd_dw.map_or(k * k, winograd::Tiling::positions);
    let len = taps * g.cin * g.cout;
    let group = images_per_group(g, len);
    // Images whose frames a Winograd weight gradient takes at once: a small map's few tiles
    // share its blocks with the next images'.
    let shared = winograd_dw.map_or(1, |tiling| tiling.images_per_block((g.h, g.w), g.cin));
    let sums_len = dx_sums.map_or(0, GradientSums::partial_len);
    let mut dx = Vec::with_capacity(g.batch * g.input_len());
    let partials: Option<Vec<(Vec<f32>, Vec<f64>)>> = dx.spare_capacity_mut()
        [..g.batch * g.input_len()]
        .par_chunks_mut(group * g.input_len())
        .enumerate()
        .map(|(index, dx)| {
            let mut dw = vec![0f32; len];
            let mut sums = vec![0f64; sums_len * dx.len() / g.input_len().max(1)];
            let (mut dy_frames, mut x_frames) = (Vec::new(), Vec::new());
            dy_frames.resize_with(shared, Padded::new);
            x_frames.resize_with(shared, Padded::new);
            let mut block = (Vec::new(), Vec::new());
            let images = dx.len() / g.input_len();
            for (i, dx) in dx.chunks_exact_mut(g.input_len()).enumerate() {
                let (b, slot) = (index * group + i, i % shared);
                let dy_image = dy.image(b, g.output_len());
                let dy_padded = &mut dy_frames[slot];
                dy_padded.fill(dy_image, (g.ho, g.wo, g.cout), t.pad, dy_frame, isa);
                let dy_padded = &*dy_padded;
                let epilogue = Epilogue {
                    residual: dx_plus.map(|plus| image(plus, b, g.input_len())),
                    ..Epilogue::default()
                };
                let input_grad_done = match &dx_weights {
                    InputGradWeights::Winograd(tiling, u) => {
                        let kernel = winograd::WinogradConv {
                            tiling: *tiling,
                            input: dy_padded,
                            u,
                            h: t.h,
                            w: t.w,
                            cin: t.cin,
                            cout: t.cout,
                            out: dx,
                            epilogue,
                            block: &mut block,
                        };
                        simd::dispatch(isa, kernel).unwrap_or(false)
                    }
                    InputGradWeights::Sliding(packed) => {
                        let kernel = t.sliding((dx_tile, dy_padded), packed, (dx, None), epilogue);
                        simd::dispatch(isa, kernel).unwrap_or(false)
                    }
                };
                let x_image = x.image(b, g.input_len());
                x_frames[slot].fill(x_image, (g.h, g.w, g.cin), g.pad, x_frame, isa);
                if input_grad_done && (end.through_relu || dx_sums.is_some()) {
                    // While the image's dX and x are in cache (x just loaded into its frame).
                    // SAFETY: the kernel wrote the image's dX whole (it returned true).
                    let dx = unsafe { &mut *(std::ptr::from_mut(dx) as *mut [f32]) };
                    let x = x.values(b, g.input_len())?;
                    if end.through_relu {
                        residual::through_relu_in_place(x, dx);
                    }
                    if let Some(dx_sums) = dx_sums {
                        dx_sums.image(x, dx, &mut sums[i * sums_len..][..sums_len]);
                    }
                }
                let weight_grad_done = if let Some(tiling) = winograd_dw {
                    // Once the shared frames are full, or at the group's last image.
                    let filled = slot + 1 == shared || i + 1 == images;
                    let kernel = winograd::WinogradWeightGrad {
                        tiling,
                        inputs: &x_frames[..=slot],
                        dys: &dy_frames[..=slot],
                        h: g.h,
                        w: g.w,
                        cin: g.cin,
                        cout: g.cout,
                        products: &mut dw,
                        block: &mut block,
                    };
                    !filled || simd::dispatch(isa, kernel).unwrap_or(false)
                } else {
                    let dy = (dy_padded.data.get(dy_first..)?, dy_pitch);
                    let kernel = g.weight_grad((dw_tile, &x_frames[slot]), dy, &mut dw);
                    simd::dispatch(isa, kernel).unwrap_or(false)
                };
                let done = input_grad_done && weight_grad_done;
                if !done {
                    return None;
                }
            }
            Some((dw, sums))
        })
        .collect();
    let (partials, sums): (Vec<_>, Vec<_>) = partials?.into_iter().unzip();
    let dw = add_in_order(&partials, len);
    let dw = match winograd_dw {
        Some(tiling) => winograd::weight_grad_from_products(tiling, &dw, (g.cin, g.cout))?,
        None => dw,
    };
    // SAFETY: the groups cover the batch's images, and every group returned Some, so the sliding
    // kernel wrote each image's dX whole (it writes all of its output when it returns true).
    unsafe { dx.set_len(g.batch * g.input_len()) };
    Some((dx, dw, dx_sums.map(|_| sums.concat())))
}

/// [`backward_direct`]'s dX, dW (HWIO) and, when asked for, the batch norm sums of dX.
type DirectGradients = (Vec<f32>, Vec<f32>, Option<Vec<f64>>);

/// The larger of two frames (rows, width) in each dimension.
fn larger(a: (usize, usize), b: (usize, usize)) -> (usize, usize) {
    (a.0.max(b.0), a.1.max(b.1))
}

/// The stride-1 input gradient's weights, made for the kernel that runs it.
enum InputGradWeights {
    /// The tiling's `transform_weights` of the flipped, transposed kernel.
    Winograd(winograd::Tiling, Vec<f32>),
    /// `direct::pack_sliding` of it.
    Sliding(Vec<f32>),
}

/// The direct f32 input gradient of a 3×3, stride-2, padding-1 convolution (the ResNets'
/// downsampling layers), or `None` for other shapes or channel counts.
///
/// Input pixel (2a + p, 2b + q) receives from dY pixels (a, b) to (a + 1, b + 1) only, through the
/// taps of its parities (p, q). So the four parities are one stride-1, 2×2 convolution of dY with
/// 4·Cin outputs, whose weights are W's taps (zero where a parity has none), which stores each
/// parity's values at their pixels of dX. Directly the 2×2 kernel does 16 multiply-adds where 9
/// are needed (on a kernel several times faster than im2col + GEMM, which ran these two passes at
/// 23–37 GFLOP/s against 83–165 for the direct ones, docs/performance.md); as Winograd F(4×4,
/// 2×2), when the channels are whole vectors, 6.25. On a 2-core Zen 4 (batch 512,
/// `examples/conv_pass.rs`, minima of two runs) the backward pass (dX and dW) of the ResNets'
/// stride-2 layers went from 18.8–18.9 to 15.2–15.4 ms on 32×32 16→32, 17.8–17.9 to 14.4–14.6 on
/// 16×16 32→64, 14.9–15.6 to 13.2–13.3 on 28×28 16→32 and 13.3–13.8 to 11.9–12.0 on 14×14
/// 32→64; dX rounds to 5.8–8.5e-7 of its norm (`examples/conv_error.rs`, batch 64), where the
/// sliding kernel gave 1.7–2.4e-7 and candle 8.1–8.6e-8.
fn input_grad_stride2_direct(
    dy: &Images,
    weight: &[f32],
    g: &Geometry,
    isa: Isa,
) -> Option<Vec<f32>> {
    if (g.k, g.stride, g.pad) != (3, 2, 1) {
        return None;
    }
    let cin = g.cin;
    let parities = Geometry {
        h: g.ho,
        w: g.wo,
        cin: g.cout,
        cout: 4 * cin,
        k: 2,
        stride: 1,
        pad: 0,
        ..*g
    };
    // The forward tap of rows (or columns) of parity p that reads dY at offset t from pixel a:
    // even rows 2a take ky = 1 at a; odd rows 2a + 1 take ky = 2 at a and ky = 0 at a + 1.
    let tap = |parity: usize, offset: usize| match (parity, offset) {
        (0, 0) => Some(1),
        (1, 0) => Some(2),
        (1, 1) => Some(0),
        _ => None,
    };
    let taps = |out: usize, co: usize, ty: usize, tx: usize| {
        let (parity, ci) = (out / cin, out % cin);
        match (tap(parity / 2, ty), tap(parity % 2, tx)) {
            (Some(ky), Some(kx)) => weight[((co * cin + ci) * 3 + ky) * 3 + kx],
            _ => 0.0,
        }
    };
    // The frame's extra zero row and column below and right of dY stand for the pixels a + 1
    // past its edge. The kernel stores each parity's values at their pixels of dX: interleaved
    // by a pass of its own, they went through memory twice more (3.9–5.5 ms of the 32×32
    // 16-channel layer's backward pass at batch 512).
    let interleaved = Epilogue {
        parities: Some(Parities {
            cin,
            h: g.h,
            w: g.w,
        }),
        ..Epilogue::default()
    };
    let whole_vectors = Tile::for_channels(isa, parities.cout)
        .is_some_and(|tile| cin.is_multiple_of(tile.lanes) && g.cout.is_multiple_of(tile.lanes));
    if whole_vectors {
        let tiling = winograd::Tiling::F4K2;
        let u = tiling.transform_weights((parities.cin, parities.cout), taps);
        let winograd = (tiling, &u[..]);
        if let Some((dx, _)) = winograd_images(dy, &parities, winograd, (interleaved, false), isa) {
            return Some(dx);
        }
    }
    sliding_direct(dy, &parities, taps, (interleaved, false), isa).map(|(dx, _)| dx)
}

/// The direct f32 weight gradient in `[Cout, Cin, k, k]`, or `None` when the shapes do not suit
/// the kernels. An input with fewer channels than the tile has rows (the stem's 1 or 3) fills
/// the tile with its k·k taps instead (see `direct::weight_grad_all_taps`). A batch norm's input
/// gradient as `dy` is evaluated one image at a time into a buffer the kernel reads from cache,
/// never written out whole: for ResNet-20's stem (1×28×28, batch 512) that is a 25.7 MB write
/// and read fewer.
fn weight_grad_direct(x: &Images, dy: &Images, g: &Geometry, isa: Isa) -> Option<Vec<f32>> {
    let tile = Tile::for_channels(isa, g.cout)?;
    let frame = g.weight_grad_frame();
    let scratch = || (Padded::new(), Padded::new());
    let hwio = weight_grad_groups::<f32, _>(g, scratch, |b, dw, (x_frame, dy_buffer)| {
        let x_image = x.image(b, g.input_len());
        x_frame.fill(x_image, (g.h, g.w, g.cin), g.pad, frame, isa);
        let dy_image = match dy {
            Images::Values(dy) => image(dy, b, g.output_len()),
            dy => {
                let dims = (g.ho, g.wo, g.cout);
                dy_buffer.fill(dy.image(b, g.output_len()), dims, 0, (g.ho, g.wo), isa);
                &dy_buffer.data[..g.output_len()]
            }
        };
        let kernel = g.weight_grad((tile, x_frame), (dy_image, g.wo * g.cout), dw);
        simd::dispatch(isa, kernel).unwrap_or(false)
    })?;
    Some(from_hwio(&hwio, g))
}

/// The convolution of channels-last `x` with `weight` (`[Cout, Cin, k, k]`): on the direct kernels
/// for f32 when the shapes suit them, on im2col otherwise. Timed for the benchmark's breakdown.
pub(crate) fn forward_values<T: Real>(x: &[T], weight: &[T], g: &Geometry) -> Vec<T> {
    forward_with_epilogue(x, None, weight, g, (None, None), (false, false)).0
}

/// [`forward_values`], with each image's moments of the output for the batch norm that follows
/// (`batch_norm::batch_normalization`'s `moments`) when the direct kernels ran: gathered as the
/// values are stored, so the batch norm does not read the output again.
pub(crate) fn forward_values_with_moments<T: Real>(
    x: &[T],
    weight: &[T],
    g: &Geometry,
) -> (Vec<T>, Option<Vec<T>>) {
    forward_with_epilogue(x, None, weight, g, (None, None), (false, true))
}

/// [`forward_values_with_moments`] of `normalization` applied to `x` (batch norm's affine map and
/// ReLU): on the direct kernels as each image is loaded, so the normalised activation is never
/// written out; on im2col from a normalised copy.
pub(crate) fn forward_normalized_values<T: Real>(
    x: &[T],
    normalization: &Normalization<T>,
    weight: &[T],
    g: &Geometry,
) -> (Vec<T>, Option<Vec<T>>) {
    forward_with_epilogue(
        x,
        Some(normalization),
        weight,
        g,
        (None, None),
        (false, true),
    )
}

/// [`forward_values`] plus a per-channel `bias` (`[Cout]`), plus `residual` (the output's shape)
/// when given, then a ReLU when `relu`: on the direct kernels in the same pass, as each value is
/// stored; on im2col in a second pass.
pub(crate) fn forward_biased_values<T: Real>(
    x: &[T],
    weight: &[T],
    (bias, residual): (&[T], Option<&[T]>),
    relu: bool,
    g: &Geometry,
) -> Vec<T> {
    forward_with_epilogue(x, None, weight, g, (Some(bias), residual), (relu, false)).0
}

/// The forward pass with its epilogue, and the images' moments when `with_moments` and the direct
/// kernels ran.
fn forward_with_epilogue<T: Real>(
    x: &[T],
    normalization: Option<&Normalization<T>>,
    weight: &[T],
    g: &Geometry,
    (bias, residual): (Option<&[T]>, Option<&[T]>),
    (relu, with_moments): (bool, bool),
) -> (Vec<T>, Option<Vec<T>>) {
    add_conv_flops(2 * g.macs());
    timed(Phase::ConvForward, || {
        let direct = || -> Option<(Vec<T>, Option<Vec<T>>)> {
            let w = T::as_f32(weight)?;
            let bias = bias.map(T::as_f32).map_or(Some(None), |b| b.map(Some))?;
            let residual = residual
                .map(T::as_f32)
                .map_or(Some(None), |r| r.map(Some))?;
            let x = Images::of(x, normalization)?;
            let epilogue = Epilogue {
                bias,
                residual,
                relu,
                parities: None,
            };
            let (out, moments) =
                forward_direct(&x, w, g, (epilogue, with_moments), simd::current())?;
            let moments = match moments {
                Some(moments) => Some(T::from_f32(moments)?),
                None => None,
            };
            Some((T::from_f32(out)?, moments))
        };
        let direct = direct();
        count_conv_pass(direct.is_some());
        direct.unwrap_or_else(|| {
            let mut out = forward_im2col(&normalized(x, normalization), weight, g);
            apply_epilogue(&mut out, (bias, residual), relu, g.cout);
            (out, None)
        })
    })
}

/// The f32 images a direct kernel loads: the values, or values a batch norm is still to be applied
/// to as each image is copied into its padded frame (see [`direct::Source`]).
enum Images<'a> {
    Values(&'a [f32]),
    Normalized(&'a [f32], Normalization<f32>),
    BatchNormGradient {
        x: &'a [f32],
        dy: &'a [f32],
        gradient: InputGradient<f32>,
    },
}

impl<'a> Images<'a> {
    /// `x`, normalised when `normalization` is given, when `T` is f32.
    fn of<T: Real>(x: &'a [T], normalization: Option<&Normalization<T>>) -> Option<Self> {
        let x = T::as_f32(x)?;
        Some(match normalization {
            None => Images::Values(x),
            Some(n) => Images::Normalized(x, n.to_f32()?),
        })
    }

    /// The output gradient `dy` when `T` is f32.
    fn of_gradient<T: Real>(dy: &OutputGradient<'a, T>) -> Option<Self> {
        Some(match *dy {
            OutputGradient::Values(values) => Images::Values(T::as_f32(values)?),
            OutputGradient::BatchNorm { x, dy, gradient } => Images::BatchNormGradient {
                x: T::as_f32(x)?,
                dy: T::as_f32(dy)?,
                gradient: gradient.to_f32()?,
            },
        })
    }

    /// Image `index` of `len` values as stored, before any batch norm is applied to them; `None`
    /// for an output gradient still to be evaluated.
    fn values(&self, index: usize, len: usize) -> Option<&'a [f32]> {
        match *self {
            Images::Values(x) | Images::Normalized(x, _) => Some(image(x, index, len)),
            Images::BatchNormGradient { .. } => None,
        }
    }

    /// Image `index` of `len` values.
    fn image(&self, index: usize, len: usize) -> Source<'_> {
        match self {
            Images::Values(x) => Source::Values(image(x, index, len)),
            Images::Normalized(x, n) => Source::Normalized(image(x, index, len), n),
            Images::BatchNormGradient { x, dy, gradient } => Source::BatchNormGradient {
                x: image(x, index, len),
                dy: image(dy, index, len),
                gradient,
            },
        }
    }
}

/// The output gradient a convolution's backward pass receives: the values, or the input gradient
/// of the batch norm that follows the convolution, still to be evaluated from that batch norm's
/// input `x` and output gradient `dy` (so the direct path computes it as it loads each image and
/// never writes it out whole).
#[derive(Clone, Copy)]
pub(crate) enum OutputGradient<'a, T> {
    Values(&'a [T]),
    BatchNorm {
        x: &'a [T],
        dy: &'a [T],
        gradient: &'a InputGradient<T>,
    },
}

impl<'a, T: Real> OutputGradient<'a, T> {
    /// The gradient's values, evaluated when they are not given.
    fn values(&self) -> Cow<'a, [T]> {
        match *self {
            OutputGradient::Values(values) => Cow::Borrowed(values),
            OutputGradient::BatchNorm { x, dy, gradient } => Cow::Owned(gradient.apply(x, dy)),
        }
    }
}

/// `x` with `normalization` applied, for the general path, which convolves plain values.
fn normalized<'a, T: Real>(x: &'a [T], normalization: Option<&Normalization<T>>) -> Cow<'a, [T]> {
    match normalization {
        None => Cow::Borrowed(x),
        Some(n) => Cow::Owned(n.apply(x)),
    }
}

/// The direct kernels' epilogue as its own pass over channels-last values: `+ bias`, `+ residual`,
/// then ReLU.
fn apply_epilogue<T: Real>(
    values: &mut [T],
    (bias, residual): (Option<&[T]>, Option<&[T]>),
    relu: bool,
    channels: usize,
) {
    if bias.is_none() && residual.is_none() && !relu {
        return;
    }
    let zero = T::from_f64(0.0);
    let channels = channels.max(1);
    values
        .par_chunks_mut(channels)
        .enumerate()
        .with_min_len(64)
        .for_each(|(index, pixel)| {
            if let Some(bias) = bias {
                for (v, &b) in pixel.iter_mut().zip(bias) {
                    *v += b;
                }
            }
            if let Some(residual) = residual {
                for (v, &r) in pixel.iter_mut().zip(&residual[index * channels..]) {
                    *v += r;
                }
            }
            if relu {
                for v in pixel.iter_mut() {
                    if *v < zero {
                        *v = zero;
                    }
                }
            }
        });
}

/// (dX when `want_dx`, dW in `[Cout, Cin, k, k]`) for the output gradient `dy`, where the
/// forward pass convolved `x`, or `normalization` applied to `x` when given (see
/// [`forward_normalized_values`]). `dx_plus` (x's shape), when given, is added to dX: as the
/// direct kernel stores each value where it can (a residual block's shortcut gradient). Timed for
/// the benchmark's breakdown (a batch norm's input gradient evaluated here counts as convolution
/// time).
pub(crate) fn backward_values<T: Real>(
    x: &[T],
    normalization: Option<&Normalization<T>>,
    weight: &[T],
    dy: OutputGradient<T>,
    (g, dx_plus): (&Geometry, Option<&[T]>),
    want_dx: bool,
) -> (Option<Vec<T>>, Vec<T>) {
    let end = InputGradientEnd {
        plus: dx_plus,
        through_relu: false,
        sums: None,
    };
    let gradients = backward_values_with(x, normalization, weight, dy, (g, end), want_dx);
    (gradients.dx, gradients.dw)
}

/// What becomes of a convolution's dX as each image of it is stored
/// ([`backward_values_with`]), in this order.
pub(crate) struct InputGradientEnd<'a, T> {
    /// Added to dX (x's shape): a residual block's shortcut gradient.
    pub plus: Option<&'a [T]>,
    /// dX taken through the ReLU whose output x is (dX where x > 0, else 0), and stored so: the
    /// gradient of the residual sum of the block before, from its output's (`residual`'s
    /// backward pass, with x in cache instead of read again).
    pub through_relu: bool,
    /// The backward sums of the batch norm whose output x is (normalised on load), taken of
    /// dX: see [`GradientSums`].
    pub sums: Option<&'a GradientSums<T>>,
}

/// A convolution's gradients: dX when asked for, dW `[Cout, Cin, k, k]`, and the batch norm
/// sums of dX image by image when asked for ([`backward_values_with`]).
pub(crate) struct Gradients<T> {
    pub dx: Option<Vec<T>>,
    pub dw: Vec<T>,
    pub dx_sums: Option<Vec<f64>>,
}

/// [`backward_values`], with what becomes of dX as each image is stored given by `end`. The
/// direct path takes an image's batch norm sums, and its ReLU, as soon as it has stored the
/// image's dX and loaded its x, both still in cache, which saves a pass over the two (measured
/// in `batch_norm`'s and `block`'s notes). Counted as convolution time.
pub(crate) fn backward_values_with<T: Real>(
    x: &[T],
    normalization: Option<&Normalization<T>>,
    weight: &[T],
    dy: OutputGradient<T>,
    (g, end): (&Geometry, InputGradientEnd<T>),
    want_dx: bool,
) -> Gradients<T> {
    let isa = simd::current();
    let start = std::time::Instant::now();
    add_conv_flops(if want_dx { 4 } else { 2 } * g.macs());
    let InputGradientEnd {
        plus: dx_plus,
        through_relu,
        sums: dx_sums,
    } = end;
    let both = || -> Option<Gradients<T>> {
        let (x, dy) = (Images::of(x, normalization)?, Images::of_gradient(&dy)?);
        let plus = dx_plus.map(T::as_f32).map_or(Some(None), |p| p.map(Some))?;
        let sums = dx_sums
            .map(GradientSums::to_f32)
            .map_or(Some(None), |s| s.map(Some))?;
        let end = InputGradientEnd {
            plus,
            through_relu,
            sums: sums.as_ref(),
        };
        let weight = T::as_f32(weight)?;
        let (dx, dw, sums) = backward_direct(&x, &dy, weight, (g, &end), isa)?;
        Some(Gradients {
            dx: Some(T::from_f32(dx)?),
            dw: T::from_f32(from_hwio(&dw, g))?,
            dx_sums: sums,
        })
    };
    if let Some(gradients) = want_dx.then(both).flatten() {
        count_conv_pass(true);
        count_conv_pass(true);
        record(Phase::ConvBackward, start);
        return gradients;
    }
    // dY's values, made only where a pass reads them whole (the direct weight gradient
    // evaluates a batch norm's input gradient image by image).
    let values = std::cell::OnceCell::new();
    let dy_values = || &values.get_or_init(|| dy.values())[..];
    let direct = |dx: bool| -> Option<Vec<T>> {
        let w = T::as_f32(weight)?;
        let out = if dx {
            // A stride-2 input gradient loads dY image by image too, evaluating a batch norm's
            // input gradient as it does.
            match input_grad_stride2_direct(&Images::of_gradient(&dy)?, w, g, isa) {
                Some(out) => out,
                None => input_grad_direct(T::as_f32(dy_values())?, w, g, isa)?,
            }
        } else {
            let (x, dy) = (Images::of(x, normalization)?, Images::of_gradient(&dy)?);
            weight_grad_direct(&x, &dy, g, isa)?
        };
        T::from_f32(out)
    };
    let either = |dx: bool, general: &dyn Fn() -> Vec<T>| {
        let result = direct(dx);
        count_conv_pass(result.is_some());
        result.unwrap_or_else(general)
    };
    let mut dx = want_dx.then(|| {
        let mut dx = either(true, &|| input_grad_im2col(dy_values(), weight, g));
        if let Some(plus) = dx_plus {
            dx.par_iter_mut()
                .zip(plus.par_iter())
                .with_min_len(4096)
                .for_each(|(a, &b)| *a += b);
        }
        dx
    });
    let dw = either(false, &|| {
        weight_grad_im2col(&normalized(x, normalization), dy_values(), g)
    });
    if let (true, Some(dx)) = (through_relu, dx.as_mut()) {
        residual::through_relu_in_place(x, dx);
    }
    let dx_sums = dx_sums
        .zip(dx.as_ref())
        .map(|(sums, dx)| sums.of_images(x, dx, g.batch));
    record(Phase::ConvBackward, start);
    Gradients { dx, dw, dx_sums }
}

impl Conv {
    /// (dX, dW); dX only when `x` is part of the graph (not for the network's input images).
    fn backward_typed<T: Real>(
        &self,
        x: &Tensor,
        weight: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let g = Geometry::new(x.shape(), weight.shape(), self.stride, self.padding)?;
        let want_dx = x.track_op();
        let (dx, dw) = with_slice::<T, _>(x, |x| {
            with_slice::<T, _>(weight, |w| {
                with_slice::<T, _>(grad, |dy| {
                    let dy = OutputGradient::Values(dy);
                    Ok(backward_values(x, None, w, dy, (&g, None), want_dx))
                })
            })
        })?;
        let dx = dx
            .map(|dx| Tensor::from_vec(dx, x.shape(), x.device()))
            .transpose()?;
        Ok((
            dx,
            Some(Tensor::from_vec(dw, weight.shape(), weight.device())?),
        ))
    }
}

impl candle_core::CustomOp2 for Conv {
    fn name(&self) -> &'static str {
        "fast-conv2d"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = Geometry::new(l1.shape(), l2.shape(), self.stride, self.padding)?;
        let storage = match (s1, s2) {
            (CpuStorage::F32(_), CpuStorage::F32(_)) => CpuStorage::F32(forward_values::<f32>(
                contiguous_slice(s1, l1)?,
                contiguous_slice(s2, l2)?,
                &g,
            )),
            (CpuStorage::F64(_), CpuStorage::F64(_)) => CpuStorage::F64(forward_values::<f64>(
                contiguous_slice(s1, l1)?,
                contiguous_slice(s2, l2)?,
                &g,
            )),
            _ => candle_core::bail!("fast conv2d: f32 or f64 inputs of one dtype"),
        };
        Ok((storage, g.output_shape()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        weight: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        match x.dtype() {
            candle_core::DType::F32 => self.backward_typed::<f32>(x, weight, grad),
            candle_core::DType::F64 => self.backward_typed::<f64>(x, weight, grad),
            other => candle_core::bail!("fast conv2d: unsupported dtype {other:?}"),
        }
    }
}
