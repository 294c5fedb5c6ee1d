//! 3×3, stride-1, padding-1 convolutions as Winograd F(2×2, 3×3) on channels-last images (the
//! forward pass, and the input gradient on the flipped, transposed kernel): 2.25× fewer
//! multiply-adds than the direct kernel.
//!
//! Per image, in blocks of [`TILES`] output tiles of 2×2 pixels: each tile's 4×4 window of the
//! padded frame is transformed (`Bᵀ d B`, additions only) into a block buffer, the 16 positions
//! are multiplied by the transformed weights (`G g Gᵀ`, made once per pass) on a register tile of
//! [`TILES`] tiles × one vector of output channels, and the products are transformed back
//! (`Aᵀ m A`), through the direct kernels' epilogue, and stored. The block's buffers stay in
//! the first- and second-level caches: transforming a whole image first (256 KB for 32×32×16)
//! and multiplying it afterwards was half as slow again on the 16-channel layers.
//!
//! On a 2-core Zen 4 (`examples/winograd_pass.rs`, batch 512, medians) it took 0.84–0.89 of the
//! direct kernel's time on 32×32 16→16, 0.70–0.76 on 16×16 32→32, 0.62–0.64 on 8×8 64→64, 0.90–0.92
//! on 28×28 16→16 and 0.82–0.84 on 14×14 32→32. Its values differ from the direct kernel's by
//! rounding (at most 1.2e-5 on outputs of order 1).

use std::cell::RefCell;
use std::mem::MaybeUninit;

use pulp::{Simd, WithSimd};

use super::direct::{Epilogue, Padded, load, store};

/// Output tiles per block: the register tile's rows.
const TILES: usize = 16;

/// `G g Gᵀ` of each (input, output) channel pair's 3×3 kernel, given OIHW as `weight(co, ci, ky,
/// kx)`, as `[16 positions][cin][cout]`.
pub(super) fn transform_weights(
    (cin, cout): (usize, usize),
    weight: impl Fn(usize, usize, usize, usize) -> f32,
) -> Vec<f32> {
    const G: [[f32; 3]; 4] = [
        [1.0, 0.0, 0.0],
        [0.5, 0.5, 0.5],
        [0.5, -0.5, 0.5],
        [0.0, 0.0, 1.0],
    ];
    let mut u = vec![0f32; 16 * cin * cout];
    for co in 0..cout {
        for ci in 0..cin {
            for (xi, g_row) in G.iter().enumerate() {
                for (nu, g_col) in G.iter().enumerate() {
                    let mut sum = 0.0;
                    for (ky, &gy) in g_row.iter().enumerate() {
                        for (kx, &gx) in g_col.iter().enumerate() {
                            sum += gy * weight(co, ci, ky, kx) * gx;
                        }
                    }
                    u[((xi * 4 + nu) * cin + ci) * cout + co] = sum;
                }
            }
        }
    }
    u
}

/// The frame (rows, width) the kernel reads: the image with one row and column of zeros around.
pub(super) fn frame((h, w): (usize, usize)) -> (usize, usize) {
    (h + 2, w + 2)
}

thread_local! {
    /// Each worker's block buffers, reused from image to image: the transformed inputs
    /// `[16][TILES][cin]` and one vector of output channels' products `[16][TILES][lanes]`.
    pub(super) static BLOCK: RefCell<(Vec<f32>, Vec<f32>)> =
        const { RefCell::new((Vec::new(), Vec::new())) };
}

/// One image: `input` (a padded frame at least as large as [`frame`]'s, the image one row and
/// column in) convolved with the transformed weights
/// `u`, through `epilogue`, into `out` `[h, w, cout]`.
pub(super) struct WinogradConv<'a> {
    pub input: &'a Padded,
    pub u: &'a [f32],
    pub h: usize,
    pub w: usize,
    pub cin: usize,
    pub cout: usize,
    pub out: &'a mut [MaybeUninit<f32>],
    pub epilogue: Epilogue<'a>,
    /// The worker's [`BLOCK`] buffers. Borrowed outside the kernel: a kernel body inside a
    /// closure is compiled apart from the instruction set's function, every vector operation
    /// then a call (a forward pass 35 times slower).
    pub block: &'a mut (Vec<f32>, Vec<f32>),
}

impl WinogradConv<'_> {
    /// Whether every read and write stays inside the slices.
    fn fits(&self, lanes: usize) -> bool {
        let (rows, width) = frame((self.h, self.w));
        self.h.is_multiple_of(2)
            && self.w.is_multiple_of(2)
            && self.cin.is_multiple_of(lanes)
            && self.cout.is_multiple_of(lanes)
            && self.input.width >= width
            && self.input.rows(self.cin) >= rows
            && self.u.len() >= 16 * self.cin * self.cout
            && self.out.len() >= self.h * self.w * self.cout
            && self.epilogue.parities.is_none()
            && self
                .epilogue
                .bias
                .is_none_or(|bias| bias.len() >= self.cout)
            && self
                .epilogue
                .residual
                .is_none_or(|residual| residual.len() >= self.h * self.w * self.cout)
    }
}

impl WithSimd for WinogradConv<'_> {
    type Output = bool;

    #[inline(always)]
    fn with_simd<S: Simd>(mut self, simd: S) -> bool {
        if !self.fits(S::F32_LANES) {
            return false;
        }
        let (inputs, products) = std::mem::take(self.block);
        let (mut inputs, mut products) = (inputs, products);
        inputs.resize(16 * TILES * self.cin, 0.0);
        products.resize(16 * TILES * S::F32_LANES, 0.0);
        // SAFETY: `fits` checked the frame, weight, output, bias and residual sizes, and the
        // buffers were just sized for the block.
        unsafe { convolve(simd, &mut self, (&mut inputs, &mut products)) };
        *self.block = (inputs, products);
        true
    }
}

/// # Safety
/// `c.fits(S::F32_LANES)` must hold, `inputs` hold 16·TILES·cin values and `products`
/// 16·TILES·lanes.
#[inline(always)]
unsafe fn convolve<S: Simd>(
    simd: S,
    c: &mut WinogradConv<'_>,
    (inputs, products): (&mut [f32], &mut [f32]),
) {
    let out = c.out.as_mut_ptr().cast::<f32>();
    let c = &*c;
    let lanes = S::F32_LANES;
    let (cin, cout, w) = (c.cin, c.cout, c.w);
    let width = c.input.width;
    let zero = simd.splat_f32s(0.0);
    let padded = c.input.data.as_ptr();
    let inputs = inputs.as_mut_ptr();
    let products = products.as_mut_ptr();
    let (tiles_wide, tiles) = (w / 2, (c.h / 2) * (w / 2));
    for first in (0..tiles).step_by(TILES) {
        let count = TILES.min(tiles - first);
        // Bᵀ d B of each tile's 4×4 window, a vector of input channels at a time.
        for i in 0..count {
            let (ty, tx) = ((first + i) / tiles_wide, (first + i) % tiles_wide);
            for c0 in (0..cin).step_by(lanes) {
                let mut d = [[zero; 4]; 4];
                for (r, row) in d.iter_mut().enumerate() {
                    for (col, value) in row.iter_mut().enumerate() {
                        let at = ((2 * ty + r) * width + 2 * tx + col) * cin + c0;
                        // SAFETY: the window lies in the (h + 2) × (w + 2) frame.
                        *value = unsafe { load::<S>(padded.add(at)) };
                    }
                }
                let mut t = [[zero; 4]; 4];
                for col in 0..4 {
                    t[0][col] = simd.sub_f32s(d[0][col], d[2][col]);
                    t[1][col] = simd.add_f32s(d[1][col], d[2][col]);
                    t[2][col] = simd.sub_f32s(d[2][col], d[1][col]);
                    t[3][col] = simd.sub_f32s(d[1][col], d[3][col]);
                }
                for (r, row) in t.iter().enumerate() {
                    let v = [
                        simd.sub_f32s(row[0], row[2]),
                        simd.add_f32s(row[1], row[2]),
                        simd.sub_f32s(row[2], row[1]),
                        simd.sub_f32s(row[1], row[3]),
                    ];
                    for (col, &v) in v.iter().enumerate() {
                        let at = ((r * 4 + col) * TILES + i) * cin + c0;
                        // SAFETY: position < 16, i < TILES, c0 + lanes ≤ cin.
                        unsafe { store::<S>(inputs.add(at), v) };
                    }
                }
            }
        }
        for co in (0..cout).step_by(lanes) {
            // The 16 positions' products for this vector of output channels. Tiles past
            // `count` multiply stale values and are not stored.
            for position in 0..16 {
                let mut acc = [zero; TILES];
                for ci in 0..cin {
                    // SAFETY: u holds 16·cin·cout values, co + lanes ≤ cout.
                    let weights =
                        unsafe { load::<S>(c.u.as_ptr().add((position * cin + ci) * cout + co)) };
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
            // Aᵀ m A of each tile, through the epilogue, stored at its 2×2 pixels.
            for i in 0..count {
                let (ty, tx) = ((first + i) / tiles_wide, (first + i) % tiles_wide);
                let mut m = [[zero; 4]; 4];
                for (r, row) in m.iter_mut().enumerate() {
                    for (col, value) in row.iter_mut().enumerate() {
                        // SAFETY: as above.
                        *value =
                            unsafe { load::<S>(products.add(((r * 4 + col) * TILES + i) * lanes)) };
                    }
                }
                let mut rows = [[zero; 4]; 2];
                for col in 0..4 {
                    rows[0][col] = simd.add_f32s(simd.add_f32s(m[0][col], m[1][col]), m[2][col]);
                    rows[1][col] = simd.sub_f32s(simd.sub_f32s(m[1][col], m[2][col]), m[3][col]);
                }
                for (r, row) in rows.iter().enumerate() {
                    let left = simd.add_f32s(simd.add_f32s(row[0], row[1]), row[2]);
                    let right = simd.sub_f32s(simd.sub_f32s(row[1], row[2]), row[3]);
                    let pixel = (2 * ty + r) * w + 2 * tx;
                    for (p, value) in [(pixel, left), (pixel + 1, right)] {
                        let at = p * cout + co;
                        // SAFETY: the pixel lies in the h × w output; `fits` checked the bias
                        // and residual sizes.
                        unsafe {
                            let value = c.epilogue.apply(simd, (at, co), value);
                            store::<S>(out.add(at), value);
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::mem::MaybeUninit;

    use super::{WinogradConv, frame, transform_weights};
    use crate::ops::conv::direct::{Epilogue, Padded, Parities, Source};
    use crate::ops::simd;

    /// A small deterministic pseudo-random value in [-1, 1).
    fn value(seed: usize) -> f32 {
        let x = (seed as u32).wrapping_mul(2_654_435_761).rotate_left(13) ^ 0x9e37_79b9;
        (x % 2001) as f32 / 1000.0 - 1.0
    }

    /// The kernel against a plain 3×3 convolution in f64, through every epilogue step, on every
    /// instruction set: 6 × 10 pixels make 15 tiles, a block and a part, so the last block's
    /// unused tiles must not be stored.
    #[test]
    fn winograd_matches_a_plain_convolution_with_the_epilogue() {
        let (h, w, cin, cout) = (6, 10, 16, 32);
        let x: Vec<f32> = (0..h * w * cin).map(value).collect();
        let weights: Vec<f32> = (0..cout * cin * 9).map(|i| 0.1 * value(i + 7)).collect();
        let bias: Vec<f32> = (0..cout).map(|i| value(i + 11)).collect();
        let residual: Vec<f32> = (0..h * w * cout).map(|i| value(i + 13)).collect();
        let at = |co: usize, ci: usize, ky: usize, kx: usize| {
            weights[((co * cin + ci) * 3 + ky) * 3 + kx]
        };
        let mut expected = vec![0f64; h * w * cout];
        for oy in 0..h {
            for ox in 0..w {
                for (co, &b) in bias.iter().enumerate() {
                    let mut sum = 0f64;
                    for ky in 0..3 {
                        for kx in 0..3 {
                            let (iy, ix) = ((oy + ky).wrapping_sub(1), (ox + kx).wrapping_sub(1));
                            if iy < h && ix < w {
                                for ci in 0..cin {
                                    sum += f64::from(x[(iy * w + ix) * cin + ci])
                                        * f64::from(at(co, ci, ky, kx));
                                }
                            }
                        }
                    }
                    let i = (oy * w + ox) * cout + co;
                    let y = sum + f64::from(b) + f64::from(residual[i]);
                    expected[i] = y.max(0.0);
                }
            }
        }
        let u = transform_weights((cin, cout), at);
        for isa in simd::available() {
            let mut padded = Padded::new();
            padded.fill(Source::Values(&x), (h, w, cin), 1, frame((h, w)), isa);
            let mut out = vec![MaybeUninit::new(f32::NAN); h * w * cout];
            let mut block = (Vec::new(), Vec::new());
            let kernel = WinogradConv {
                input: &padded,
                u: &u,
                h,
                w,
                cin,
                cout,
                out: &mut out,
                epilogue: Epilogue {
                    bias: Some(&bias),
                    residual: Some(&residual),
                    relu: true,
                    parities: None,
                },
                block: &mut block,
            };
            assert_eq!(simd::dispatch(isa, kernel), Some(true), "{isa:?}");
            for (i, (out, expected)) in out.iter().zip(&expected).enumerate() {
                // SAFETY: every value was initialised (NaN) before the kernel ran.
                let out = f64::from(unsafe { out.assume_init() });
                assert!(
                    (out - expected).abs() <= 1e-5,
                    "{isa:?} value {i}: {out} against {expected}"
                );
            }
        }
    }

    /// Odd images and the stride-2 gradient's interleaving epilogue are refused; the same
    /// kernel on an even image with the plain epilogue runs.
    #[test]
    fn winograd_refuses_shapes_it_does_not_take() {
        let run = |(h, w): (usize, usize), epilogue: Epilogue| {
            let isa = simd::current();
            let x = vec![0f32; h * w * 16];
            let mut padded = Padded::new();
            padded.fill(Source::Values(&x), (h, w, 16), 1, frame((h, w)), isa);
            let u = vec![0f32; 16 * 16 * 16];
            let mut out = vec![MaybeUninit::new(0f32); h * w * 16];
            let mut block = (Vec::new(), Vec::new());
            let kernel = WinogradConv {
                input: &padded,
                u: &u,
                h,
                w,
                cin: 16,
                cout: 16,
                out: &mut out,
                epilogue,
                block: &mut block,
            };
            simd::dispatch(isa, kernel)
        };
        assert_eq!(run((5, 4), Epilogue::default()), Some(false), "odd rows");
        assert_eq!(run((4, 3), Epilogue::default()), Some(false), "odd columns");
        let parities = Epilogue {
            parities: Some(Parities { cin: 4, h: 8, w: 8 }),
            ..Epilogue::default()
        };
        assert_eq!(run((4, 4), parities), Some(false), "interleaved parities");
        assert_eq!(
            run((4, 4), Epilogue::default()),
            Some(true),
            "an even image"
        );
    }
}
