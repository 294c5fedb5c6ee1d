//! Benchmark and trial (not wired into the ops): the forward pass of each stride-1 ResNet layer
//! shape as Winograd F(2×2, 3×3) beside the direct kernels (`sla::ops::conv2d`), with the largest
//! difference between their outputs. The measured lead toward a step at 0.6× PyTorch's time:
//! F(2×2, 3×3) does 2.25× fewer multiply-adds, and on a 2-core Zen 4 it beat the direct kernels
//! on every stride-1 layer (docs/performance.md).
//!
//! `RAYON_NUM_THREADS=2 cargo run --release --example winograd_pass -- [batch] [repeats]`
//!
//! Per image, in blocks of 16 output tiles of 2×2 pixels: each tile's 4×4 input window is
//! transformed (`Bᵀ d B`, additions only) into a block buffer, the 16 positions are multiplied
//! by the transformed weights (`G g Gᵀ`, made once per pass) on a register tile of 16 tiles × one
//! vector of output channels, and the products are transformed back (`Aᵀ m A`) and stored. The
//! block's buffers stay in the first- and second-level caches; transforming a whole image first
//! (256 KB for 32×32×16) and multiplying it afterwards was half as slow again on the 16-channel
//! layers (32×32: 16.5 against 10.7 ms).

use std::cell::RefCell;

use candle_core::{Device, Tensor};
use pulp::{Simd, WithSimd};
use rayon::prelude::*;
use sla::ops::{conv2d, keep_freed_memory, profile, simd};

/// Output tiles per block: the register tile's rows.
const TILES: usize = 16;

/// (name, height = width, input channels, output channels) of the stride-1 3×3 layers of ResNet-32
/// on 32×32 images and ResNet-20 on 28×28.
const LAYERS: [(&str, usize, usize, usize); 5] = [
    ("32x32 16->16", 32, 16, 16),
    ("16x16 32->32", 16, 32, 32),
    ("8x8 64->64", 8, 64, 64),
    ("28x28 16->16", 28, 16, 16),
    ("14x14 32->32", 14, 32, 32),
];

#[inline(always)]
unsafe fn load<S: Simd>(ptr: *const f32) -> S::f32s {
    // SAFETY: the caller keeps F32_LANES floats from `ptr` inside one buffer.
    unsafe { ptr.cast::<S::f32s>().read_unaligned() }
}

#[inline(always)]
unsafe fn store<S: Simd>(ptr: *mut f32, value: S::f32s) {
    // SAFETY: the caller keeps F32_LANES floats from `ptr` inside one buffer.
    unsafe { ptr.cast::<S::f32s>().write_unaligned(value) }
}

/// Each worker's buffers, reused from image to image: the padded image, a block's transformed
/// inputs `[16 positions][TILES][cin]` and one channel vector's products `[16][TILES][lanes]`.
#[derive(Default)]
struct Scratch {
    padded: Vec<f32>,
    inputs: Vec<f32>,
    products: Vec<f32>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// One image's convolution: `x` `[h, w, cin]` into `out` `[h, w, cout]`, with the transformed
/// weights `u` `[16][cin][cout]`. `h` and `w` even, the channels whole vectors.
struct Image<'a> {
    x: &'a [f32],
    out: &'a mut [f32],
    u: &'a [f32],
    dims: (usize, usize, usize, usize),
    scratch: &'a mut Scratch,
}

impl WithSimd for Image<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let Image {
            x,
            out,
            u,
            dims: (h, w, cin, cout),
            scratch,
        } = self;
        let lanes = S::F32_LANES;
        let (rows, width) = (h + 2, w + 2);
        let zero = simd.splat_f32s(0.0);
        // The image in a frame of zeros, as the direct kernels copy it.
        scratch.padded.resize(rows * width * cin, 0.0);
        for (r, row) in scratch.padded.chunks_exact_mut(width * cin).enumerate() {
            match r.checked_sub(1).filter(|&y| y < h) {
                Some(y) => {
                    row[..cin].fill(0.0);
                    row[(width - 1) * cin..].fill(0.0);
                    row[cin..(width - 1) * cin].copy_from_slice(&x[y * w * cin..][..w * cin]);
                }
                None => row.fill(0.0),
            }
        }
        scratch.inputs.resize(16 * TILES * cin, 0.0);
        scratch.products.resize(16 * TILES * lanes, 0.0);
        let padded = scratch.padded.as_ptr();
        let inputs = scratch.inputs.as_mut_ptr();
        let products = scratch.products.as_mut_ptr();
        let (tiles_wide, tiles) = (w / 2, (h / 2) * (w / 2));
        for first in (0..tiles).step_by(TILES) {
            let count = TILES.min(tiles - first);
            // Bᵀ d B of each tile's 4×4 window, a vector of input channels at a time.
            for i in 0..count {
                let (ty, tx) = ((first + i) / tiles_wide, (first + i) % tiles_wide);
                for c0 in (0..cin).step_by(lanes) {
                    let mut d = [[zero; 4]; 4];
                    for (r, row) in d.iter_mut().enumerate() {
                        for (c, value) in row.iter_mut().enumerate() {
                            let at = ((2 * ty + r) * width + 2 * tx + c) * cin + c0;
                            // SAFETY: the window lies in the frame, c0 + lanes ≤ cin.
                            *value = unsafe { load::<S>(padded.add(at)) };
                        }
                    }
                    let mut t = [[zero; 4]; 4];
                    for c in 0..4 {
                        t[0][c] = simd.sub_f32s(d[0][c], d[2][c]);
                        t[1][c] = simd.add_f32s(d[1][c], d[2][c]);
                        t[2][c] = simd.sub_f32s(d[2][c], d[1][c]);
                        t[3][c] = simd.sub_f32s(d[1][c], d[3][c]);
                    }
                    for (r, row) in t.iter().enumerate() {
                        let v = [
                            simd.sub_f32s(row[0], row[2]),
                            simd.add_f32s(row[1], row[2]),
                            simd.sub_f32s(row[2], row[1]),
                            simd.sub_f32s(row[1], row[3]),
                        ];
                        for (c, &v) in v.iter().enumerate() {
                            let at = ((r * 4 + c) * TILES + i) * cin + c0;
                            // SAFETY: position < 16, i < TILES, c0 + lanes ≤ cin.
                            unsafe { store::<S>(inputs.add(at), v) };
                        }
                    }
                }
            }
            for co in (0..cout).step_by(lanes) {
                // The 16 positions' products for this vector of output channels.
                for position in 0..16 {
                    let mut acc = [zero; TILES];
                    for ci in 0..cin {
                        // SAFETY: u holds 16·cin·cout values, co + lanes ≤ cout.
                        let weights =
                            unsafe { load::<S>(u.as_ptr().add((position * cin + ci) * cout + co)) };
                        for (i, acc) in acc.iter_mut().enumerate() {
                            // SAFETY: the block buffer holds 16·TILES·cin values.
                            let input = unsafe { *inputs.add((position * TILES + i) * cin + ci) };
                            *acc = simd.mul_add_e_f32s(simd.splat_f32s(input), weights, *acc);
                        }
                    }
                    for (i, &acc) in acc.iter().enumerate() {
                        // SAFETY: the products buffer holds 16·TILES·lanes values.
                        unsafe { store::<S>(products.add((position * TILES + i) * lanes), acc) };
                    }
                }
                // Aᵀ m A of each tile, stored at its 2×2 pixels.
                for i in 0..count {
                    let (ty, tx) = ((first + i) / tiles_wide, (first + i) % tiles_wide);
                    let mut m = [[zero; 4]; 4];
                    for (r, row) in m.iter_mut().enumerate() {
                        for (c, value) in row.iter_mut().enumerate() {
                            let at = ((r * 4 + c) * TILES + i) * lanes;
                            // SAFETY: as above.
                            *value = unsafe { load::<S>(products.add(at)) };
                        }
                    }
                    let mut rows_of = [[zero; 4]; 2];
                    for c in 0..4 {
                        rows_of[0][c] = simd.add_f32s(simd.add_f32s(m[0][c], m[1][c]), m[2][c]);
                        rows_of[1][c] = simd.sub_f32s(simd.sub_f32s(m[1][c], m[2][c]), m[3][c]);
                    }
                    for (r, row) in rows_of.iter().enumerate() {
                        let left = simd.add_f32s(simd.add_f32s(row[0], row[1]), row[2]);
                        let right = simd.sub_f32s(simd.sub_f32s(row[1], row[2]), row[3]);
                        let at = ((2 * ty + r) * w + 2 * tx) * cout + co;
                        // SAFETY: pixels (2ty + r, 2tx and 2tx + 1) lie in the h × w output.
                        unsafe {
                            store::<S>(out.as_mut_ptr().add(at), left);
                            store::<S>(out.as_mut_ptr().add(at + cout), right);
                        }
                    }
                }
            }
        }
    }
}

/// `G g Gᵀ` of each (input, output) channel pair's 3×3 kernel, as `[16][cin][cout]`.
fn transform_weights(weights: &[f32], cin: usize, cout: usize) -> Vec<f32> {
    const G: [[f32; 3]; 4] = [
        [1.0, 0.0, 0.0],
        [0.5, 0.5, 0.5],
        [0.5, -0.5, 0.5],
        [0.0, 0.0, 1.0],
    ];
    let mut u = vec![0f32; 16 * cin * cout];
    for co in 0..cout {
        for ci in 0..cin {
            let kernel = &weights[(co * cin + ci) * 9..][..9];
            for (xi, g_row) in G.iter().enumerate() {
                for (nu, g_col) in G.iter().enumerate() {
                    let mut sum = 0.0;
                    for a in 0..3 {
                        for b in 0..3 {
                            sum += g_row[a] * kernel[a * 3 + b] * g_col[b];
                        }
                    }
                    u[((xi * 4 + nu) * cin + ci) * cout + co] = sum;
                }
            }
        }
    }
    u
}

/// The padding-1 convolution of channels-last `x` `[batch, h, w, cin]` with `weights`
/// `[cout, cin, 3, 3]`, images in parallel.
fn winograd(
    x: &[f32],
    weights: &[f32],
    (batch, h, w, cin, cout): (usize, usize, usize, usize, usize),
) -> Vec<f32> {
    let u = transform_weights(weights, cin, cout);
    let mut out = vec![0f32; batch * h * w * cout];
    out.par_chunks_mut(h * w * cout)
        .zip(x.par_chunks(h * w * cin))
        .for_each(|(out, x)| {
            SCRATCH.with_borrow_mut(|scratch| {
                let image = Image {
                    x,
                    out,
                    u: &u,
                    dims: (h, w, cin, cout),
                    scratch,
                };
                pulp::Arch::new().dispatch(image);
            });
        });
    out
}

fn main() -> candle_core::Result<()> {
    let mut args = std::env::args().skip(1);
    let batch: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(512);
    let repeats: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(7).max(1);
    keep_freed_memory();
    let threads = rayon::current_num_threads();
    let peak = simd::measure_peak_gflops(simd::current(), threads);
    println!(
        "{:?}, {threads} threads, peak {peak:.0} GFLOP/s, batch {batch}",
        simd::current()
    );
    for (name, size, cin, cout) in LAYERS {
        let x = Tensor::randn(0f32, 1.0, (batch, size, size, cin), &Device::Cpu)?;
        let weights = Tensor::randn(0f32, 0.1, (cout, cin, 3, 3), &Device::Cpu)?;
        let (x_values, w_values) = (
            x.flatten_all()?.to_vec1::<f32>()?,
            weights.flatten_all()?.to_vec1::<f32>()?,
        );
        let (mut direct, mut winograd_times) = (Vec::new(), Vec::new());
        let mut largest_difference = 0f32;
        // One untimed round first: the buffers and the thread pool warm up, and the outputs
        // are compared.
        for repeat in 0..=repeats {
            profile::reset_profile();
            let expected = conv2d(&x, &weights, 1, 1)?;
            let seconds: f64 = profile::snapshot()
                .iter()
                .filter(|(phase, _, _)| *phase == profile::Phase::ConvForward)
                .map(|(_, seconds, _)| seconds)
                .sum();
            let start = std::time::Instant::now();
            let out = winograd(&x_values, &w_values, (batch, size, size, cin, cout));
            let winograd_seconds = start.elapsed().as_secs_f64();
            if repeat == 0 {
                let expected = expected.flatten_all()?.to_vec1::<f32>()?;
                largest_difference = expected
                    .iter()
                    .zip(&out)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0, f32::max);
                continue;
            }
            direct.push(seconds);
            winograd_times.push(winograd_seconds);
        }
        let gflop = 2.0 * (batch * size * size * cin * cout * 9) as f64 * 1e-9;
        let show = |times: &mut Vec<f64>| {
            times.sort_by(f64::total_cmp);
            let (min, median) = (times[0], times[times.len() / 2]);
            format!(
                "min {:6.2} ms ({:3.0} % of peak as direct FLOPs), median {:6.2} ms",
                min * 1e3,
                100.0 * gflop / min / peak,
                median * 1e3
            )
        };
        println!(
            "{name:>13}: direct {} | Winograd {} | largest difference {largest_difference:.1e}",
            show(&mut direct),
            show(&mut winograd_times)
        );
    }
    Ok(())
}
