//! 3×3, stride-1, padding-1 convolutions as Winograd F(m×m, 3×3) on channels-last images: the
//! forward pass, the input gradient (the same convolution on the flipped, transposed kernel) and
//! the weight gradient, as F(4×4, 3×3) or F(2×2, 3×3) ([`Tiling`]), with 4 and 2.25 times fewer
//! multiply-adds than the direct kernel; and the 2×2 convolution a stride-2 input gradient is,
//! as F(4×4, 2×2).
//!
//! Per image, in blocks of up to [`TILES`] output tiles of m×m pixels: each tile's window of
//! (m + r − 1)² pixels of the padded frame is transformed (`Bᵀ d B`) into a block buffer, each
//! position is multiplied by the transformed weights (`G g Gᵀ`, made once per pass) on a
//! register tile of the block's tiles (4, 8 or 16 rows) × one vector of output channels (two or
//! four on 4 rows), and the products are transformed back (`Aᵀ m A`), through the direct kernels'
//! epilogue, and stored. The block's buffers stay in the first- and second-level caches:
//! transforming a whole image first (256 KB for 32×32×16) and multiplying it afterwards was half
//! as slow again on the 16-channel layers.
//! The weight gradient transforms the same windows and each tile's dY (`A dY Aᵀ`), and sums
//! their products per position over the batch ([`WinogradWeightGrad`], whose blocks run on
//! over the images a call is given); `Gᵀ P G` of those sums P is dW.
//!
//! On a 2-core Zen 4 (batch 512, `examples/conv_pass.rs`, minima of two runs), F(4×4) took
//! 0.89–0.91 of F(2×2)'s time forward on 32×32 16→16, 0.76–0.77 on 16×16 32→32, 0.78–0.82 on
//! 8×8 64→64, 0.87–0.90 on 28×28 16→16, 0.85 on 14×14 32→32 and 0.79–0.80 on 7×7 64→64; backward
//! (dX and dW) 0.89, 0.77–0.78, 0.75–0.84, 0.87–0.93, 0.87–0.95 and 0.76–0.78. F(2×2) had taken
//! 0.62–0.92 of the direct kernel's time forward and 0.84–0.91 backward. The rounding
//! (`examples/conv_error.rs`, relative RMS error against f64 at batch 64) is F(4×4)'s larger
//! matrices' entries showing: outputs 0.99–1.81e-6, dX 1.02–1.82e-6, dW 1.09–2.62e-6, where
//! F(2×2) gives 1.7–2.8e-7, 1.7–2.8e-7 and 2.6–7.0e-7, and candle's own f32 convolution
//! 2.2–3.7e-7, 0.9–1.1e-7 and 3.9–4.5e-7; full training runs came out level (docs/performance.md).

use std::cell::RefCell;
use std::mem::MaybeUninit;

use pulp::{Simd, WithSimd};
use rayon::prelude::*;

use super::direct::{Epilogue, Padded, Parities, load, store, store_interleaved};
use crate::ops::fill_parallel;

/// Output tiles per block: the register tile's rows at most.
const TILES: usize = 16;

/// The tiles of a block for `cin` input channels: [`TILES`], or 8 for 32 channels or fewer. A
/// block's transformed inputs and products (F(4×4): 36 positions × 16 tiles × 16 channels, 37 KB
/// each for 16 channels, twice that for 32) overflowed the 32 KB first-level cache. With blocks of
/// 8 for 16 channels, 32×32 16→16 ran 8.70–8.87 ms forward where it had run 9.65–9.98, and
/// 15.8–16.2 backward against 17.5–18.0; 28×28 16→16 7.09–7.34 against 7.54–7.80, and 13.1–14.2
/// against 14.2–14.4. For 32 channels too, 16×16 32→32 6.04–6.42 against 6.59–6.75 forward and
/// 12.8–13.8 against 13.6–14.3 backward, 14×14 32→32 5.69–6.09 against 6.16–6.65 and 12.2–12.9
/// against 12.7–13.5, and the stride-2 input gradients with 32-channel dY 3–5 % faster (2-core
/// Zen 4, batch 512, `examples/conv_pass.rs`, minima of three alternating runs). The buffers
/// must be laid out for the block's tiles, not for [`TILES`]: with 8 of 16 rows used, a block of
/// 16-channel tiles ran as slowly as a whole one (its lines fall in half the cache's sets). With
/// 64 channels blocks of 8 lost (8×8 64→64: 5.86 → 6.13–6.27 ms forward, 12.6 → 13.4–13.6
/// backward).
pub(super) fn block_tiles(cin: usize) -> usize {
    if cin <= 32 { 8 } else { TILES }
}

/// The Winograd algorithm a convolution runs as: F(m×m, r×r) computes each m×m tile of the
/// output from the (m + r − 1)² pixels of its window, with (m + r − 1)² multiplications per
/// input and output channel where the direct kernel does r²m².
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Tiling {
    /// F(2×2, 3×3): 16 positions for 4 pixels. Its transforms are additions only.
    F2,
    /// F(4×4, 3×3): 36 positions for 16 pixels. Its transforms scale by up to 8 (and its
    /// weights by 1/24), so it rounds a little more.
    F4,
    /// F(4×4, 2×2), for the 2×2 convolution a stride-2 input gradient is (its four pixel
    /// parities, see `conv::input_grad_stride2_direct`): 25 positions for 16 pixels where the
    /// direct kernel does 64. Points 0, ±1, 2: transforms scale by up to 8 and weights by 1/6.
    /// Run by [`WinogradConv`] only: its weight gradient is not written.
    F4K2,
}

impl Tiling {
    /// The output tile's side m.
    pub(super) fn side(self) -> usize {
        match self {
            Tiling::F2 => 2,
            Tiling::F4 | Tiling::F4K2 => 4,
        }
    }

    /// The kernel's side r.
    pub(super) fn kernel(self) -> usize {
        match self {
            Tiling::F2 | Tiling::F4 => 3,
            Tiling::F4K2 => 2,
        }
    }

    /// The positions of a transformed window, (m + r − 1)².
    pub(super) fn positions(self) -> usize {
        (self.side() + self.kernel() - 1).pow(2)
    }

    /// The frame (rows, width) the kernels read: for a 3×3 kernel the image with one row and
    /// column of zeros around, for a 2×2 one the image with one after it (pixel (y, x) of the
    /// output reads (y, x) to (y + 1, x + 1)); and more zeros below and right of a side that is
    /// not a whole number of tiles, where the last tiles' windows reach.
    pub(super) fn frame(self, (h, w): (usize, usize)) -> (usize, usize) {
        let (m, reach) = (self.side(), self.kernel() - 1);
        (m * h.div_ceil(m) + reach, m * w.div_ceil(m) + reach)
    }

    /// The tiles covering an `h` × `w` image: (tiles per row, tiles). A side that is not a whole
    /// number of tiles has last tiles reaching past the image, computed from the frame's zeros
    /// and not stored.
    pub(super) fn tiles(self, (h, w): (usize, usize)) -> (usize, usize) {
        let m = self.side();
        (w.div_ceil(m), h.div_ceil(m) * w.div_ceil(m))
    }

    /// How many `h` × `w` images' tiles fit in one block of [`block_tiles`]`(cin)`: 1 from a
    /// block's tiles up.
    pub(super) fn images_per_block(self, (h, w): (usize, usize), cin: usize) -> usize {
        (block_tiles(cin) / self.tiles((h, w)).1.max(1)).max(1)
    }

    /// `G g Gᵀ` of each (input, output) channel pair's r×r kernel, given OIHW as `weight(co, ci,
    /// ky, kx)`, as `[positions][cin][cout]`, summed in f64.
    pub(super) fn transform_weights(
        self,
        channels: (usize, usize),
        weight: impl Fn(usize, usize, usize, usize) -> f32 + Sync,
    ) -> Vec<f32> {
        match self {
            Tiling::F2 => transform_weights(&G2, channels, weight),
            Tiling::F4 => transform_weights(&G4, channels, weight),
            Tiling::F4K2 => transform_weights(&G4K2, channels, weight),
        }
    }

    /// The G that takes the weight gradient's products to dW: F(2×2)'s with its last row
    /// negated, for the sign [`Z2`] leaves out; F(4×4)'s as it is; none for F(4×4, 2×2), whose
    /// weight gradient is not written.
    fn gradient_g(self) -> Option<&'static [[f64; 3]]> {
        const G2_NEGATED: [[f64; 3]; 4] = [G2[0], G2[1], G2[2], [0.0, 0.0, -1.0]];
        match self {
            Tiling::F2 => Some(&G2_NEGATED),
            Tiling::F4 => Some(&G4),
            Tiling::F4K2 => None,
        }
    }
}

/// [`Tiling::transform_weights`] with the tiling's G (positions per side × r).
///
/// Each value is `Σ gy·w·gx` over the taps in (ky, kx) order, in f64, one sum per position and
/// (input, output) channel pair. The positions run in parallel, and within one the sums of eight
/// output channels at a time run side by side in registers: summed one pair after another, each
/// value was a chain of 9 dependent additions, and the weight transforms took 8 ms of the
/// ResNet-20 SLA step on one thread while the other waited (`perf`, 2-core Zen 4). The order of
/// each sum is unchanged, so the values are too, bit for bit.
fn transform_weights<const R: usize>(
    g: &[[f64; R]],
    (cin, cout): (usize, usize),
    weight: impl Fn(usize, usize, usize, usize) -> f32 + Sync,
) -> Vec<f32> {
    /// Output channels summed side by side.
    const SIDE_BY_SIDE: usize = 8;
    let side = g.len();
    // The taps as f64, `[ci][ky][kx][co]`, an input channel's on each worker. Both arrays are
    // written whole by the workers, not zeroed first on the calling thread (`fill_parallel`):
    // 590 KB and twice that in f64 for 64 channels, a memset while the other core waits.
    let tap_fill = |ci: usize, taps: &mut [MaybeUninit<f64>]| {
        for (co, tap) in (0..cout).flat_map(|co| (0..R * R).map(move |tap| (co, tap))) {
            taps[tap * cout + co].write(f64::from(weight(co, ci, tap / R, tap % R)));
        }
    };
    // SAFETY: each chunk is one input channel's R·R·cout taps, every one written above.
    let taps = unsafe { fill_parallel(cin * R * R * cout, R * R * cout, tap_fill) };
    let position_fill = |position: usize, u: &mut [MaybeUninit<f32>]| {
        let (g_row, g_col) = (&g[position / side], &g[position % side]);
        for (ci, u) in u.chunks_exact_mut(cout).enumerate() {
            for (chunk, u) in u.chunks_mut(SIDE_BY_SIDE).enumerate() {
                let mut sums = [0f64; SIDE_BY_SIDE];
                for (ky, &gy) in g_row.iter().enumerate() {
                    for (kx, &gx) in g_col.iter().enumerate() {
                        let at = ((ci * R + ky) * R + kx) * cout + chunk * SIDE_BY_SIDE;
                        for (sum, &w) in sums.iter_mut().zip(&taps[at..at + u.len()]) {
                            *sum += gy * w * gx;
                        }
                    }
                }
                for (u, &sum) in u.iter_mut().zip(&sums) {
                    u.write(sum as f32);
                }
            }
        }
    };
    // SAFETY: each chunk is one position's cin·cout values, every one written above.
    unsafe { fill_parallel(side * side * cin * cout, cin * cout, position_fill) }
}

/// F(2×2, 3×3)'s G (4 × 3).
const G2: [[f64; 3]; 4] = [
    [1.0, 0.0, 0.0],
    [0.5, 0.5, 0.5],
    [0.5, -0.5, 0.5],
    [0.0, 0.0, 1.0],
];

/// F(4×4, 3×3)'s G (6 × 3).
const G4: [[f64; 3]; 6] = [
    [1.0 / 4.0, 0.0, 0.0],
    [-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
    [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
    [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0],
    [1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0],
    [0.0, 0.0, 1.0],
];

/// F(4×4, 2×2)'s G (5 × 2), points 0, 1, −1, 2 and ∞.
const G4K2: [[f64; 2]; 5] = [
    [1.0 / 2.0, 0.0],
    [-1.0 / 2.0, -1.0 / 2.0],
    [-1.0 / 6.0, 1.0 / 6.0],
    [1.0 / 6.0, 1.0 / 3.0],
    [0.0, 1.0],
];

/// One tiling's transforms, as the one-dimensional [`Line`]s its two-sided ones are made of:
/// windows of W × W pixels, output tiles of M × M (W = M + r − 1).
trait Tiles<const W: usize, const M: usize> {
    /// The tiling these transforms are.
    const TILING: Tiling;
    /// `Bᵀ d` (`Bᵀ d B` of a window).
    type B: Line<W, W>;
    /// `Aᵀ m` (`Aᵀ m A` of a tile's products).
    type A: Line<W, M>;
}

/// A 3×3 tiling's weight-gradient transform.
trait GradientTiles<const W: usize, const M: usize>: Tiles<W, M> {
    /// `A dY` (`A dY Aᵀ` of an output gradient's tile), up to the signs
    /// [`Tiling::gradient_g`] restores.
    type Z: Line<M, W>;
}

/// F(2×2, 3×3).
struct F2x2;

impl Tiles<4, 2> for F2x2 {
    const TILING: Tiling = Tiling::F2;
    type B = B2;
    type A = A2;
}

impl GradientTiles<4, 2> for F2x2 {
    type Z = Z2;
}

/// F(4×4, 3×3) (Lavin and Gray's matrices, points 0, ±1, ±2 and ∞).
struct F4x4;

impl Tiles<6, 4> for F4x4 {
    const TILING: Tiling = Tiling::F4;
    type B = B4;
    type A = A4;
}

impl GradientTiles<6, 4> for F4x4 {
    type Z = Z4;
}

/// F(4×4, 2×2).
struct F4x4K2;

impl Tiles<5, 4> for F4x4K2 {
    const TILING: Tiling = Tiling::F4K2;
    type B = B4K2;
    type A = A4K2;
}

/// A one-dimensional transform of N vectors into M. Applied to a block's columns and then to
/// the rows of the result, it is a tiling's two-sided transform (`Bᵀ d B`, `A dY Aᵀ`, `Aᵀ m A`).
/// A type, not a closure: a closure is compiled apart from the instruction set's function, and
/// its vector operations become calls (F(4×4) ran five times slower than the direct kernel).
trait Line<const N: usize, const M: usize> {
    fn apply<S: Simd>(simd: S, d: [S::f32s; N]) -> [S::f32s; M];
}

/// `L` applied to the columns of the N × N block of vectors at `block` (vector (r, c) at
/// `block + r·row + c·pixel`) and then to the rows of the result.
///
/// # Safety
/// The block's vectors must lie inside their slice.
#[inline(always)]
unsafe fn both_sides<S: Simd, L: Line<N, M>, const N: usize, const M: usize>(
    simd: S,
    block: *const f32,
    (pixel, row): (usize, usize),
) -> [[S::f32s; M]; M] {
    let zero = simd.splat_f32s(0.0);
    let mut columns = [[zero; M]; N];
    for (col, column) in columns.iter_mut().enumerate() {
        let mut d = [zero; N];
        for (r, d) in d.iter_mut().enumerate() {
            // SAFETY: the caller's contract.
            *d = unsafe { load::<S>(block.add(r * row + col * pixel)) };
        }
        *column = L::apply(simd, d);
    }
    let mut out = [[zero; M]; M];
    for (out, &row) in out.iter_mut().zip(&transpose(columns, zero)) {
        *out = L::apply(simd, row);
    }
    out
}

/// The M × M values, (r, c) stored at `out + (r·M + c)·stride`.
///
/// # Safety
/// Every stored vector must lie inside its slice.
#[inline(always)]
unsafe fn store_positions<S: Simd, const M: usize>(
    values: &[[S::f32s; M]; M],
    out: *mut f32,
    stride: usize,
) {
    for (r, row) in values.iter().enumerate() {
        for (c, &value) in row.iter().enumerate() {
            // SAFETY: the caller's contract.
            unsafe { store::<S>(out.add((r * M + c) * stride), value) };
        }
    }
}

/// The columns of `m` as rows (`fill` only sizes the result: every value is overwritten).
#[inline(always)]
fn transpose<V: Copy, const R: usize, const C: usize>(m: [[V; C]; R], fill: V) -> [[V; R]; C] {
    let mut t = [[fill; R]; C];
    for (r, row) in m.iter().enumerate() {
        for (c, &value) in row.iter().enumerate() {
            t[c][r] = value;
        }
    }
    t
}

/// F(2×2)'s `Bᵀ d`: Bᵀ = [1 0 −1 0; 0 1 1 0; 0 −1 1 0; 0 1 0 −1].
struct B2;

impl Line<4, 4> for B2 {
    #[inline(always)]
    fn apply<S: Simd>(simd: S, d: [S::f32s; 4]) -> [S::f32s; 4] {
        [
            simd.sub_f32s(d[0], d[2]),
            simd.add_f32s(d[1], d[2]),
            simd.sub_f32s(d[2], d[1]),
            simd.sub_f32s(d[1], d[3]),
        ]
    }
}

/// F(2×2)'s `Aᵀ m`: Aᵀ = [1 1 1 0; 0 1 −1 −1].
struct A2;

impl Line<4, 2> for A2 {
    #[inline(always)]
    fn apply<S: Simd>(simd: S, m: [S::f32s; 4]) -> [S::f32s; 2] {
        [
            simd.add_f32s(simd.add_f32s(m[0], m[1]), m[2]),
            simd.sub_f32s(simd.sub_f32s(m[1], m[2]), m[3]),
        ]
    }
}

/// F(2×2)'s `A d` with A's last row's sign left out: A = [1 0; 1 1; 1 −1; 0 −1] taken as
/// [1 0; 1 1; 1 −1; 0 1], so position (i, j) of `A dY Aᵀ` holds its value times σᵢσⱼ (σ = 1, 1,
/// 1, −1), which G's negated last row undoes: no negation in this transform.
struct Z2;

impl Line<2, 4> for Z2 {
    #[inline(always)]
    fn apply<S: Simd>(simd: S, d: [S::f32s; 2]) -> [S::f32s; 4] {
        [
            d[0],
            simd.add_f32s(d[0], d[1]),
            simd.sub_f32s(d[0], d[1]),
            d[1],
        ]
    }
}

/// F(4×4)'s `Bᵀ d`: Bᵀ = [4 0 −5 0 1 0; 0 −4 −4 1 1 0; 0 4 −4 −1 1 0; 0 −2 −1 2 1 0;
/// 0 2 −1 −2 1 0; 0 4 0 −5 0 1], rows 1–2 and 3–4 sharing their sums: 13 operations where the
/// matrix has 20 nonzeros.
struct B4;

impl Line<6, 6> for B4 {
    #[inline(always)]
    fn apply<S: Simd>(simd: S, d: [S::f32s; 6]) -> [S::f32s; 6] {
        let (four, minus_four, minus_five, two) = (
            simd.splat_f32s(4.0),
            simd.splat_f32s(-4.0),
            simd.splat_f32s(-5.0),
            simd.splat_f32s(2.0),
        );
        let a = simd.mul_add_e_f32s(minus_four, d[2], d[4]);
        let b = simd.mul_add_e_f32s(minus_four, d[1], d[3]);
        let c = simd.sub_f32s(d[4], d[2]);
        let e = simd.mul_f32s(two, simd.sub_f32s(d[3], d[1]));
        [
            simd.mul_add_e_f32s(four, d[0], simd.mul_add_e_f32s(minus_five, d[2], d[4])),
            simd.add_f32s(a, b),
            simd.sub_f32s(a, b),
            simd.add_f32s(c, e),
            simd.sub_f32s(c, e),
            simd.mul_add_e_f32s(four, d[1], simd.mul_add_e_f32s(minus_five, d[3], d[5])),
        ]
    }
}

/// F(4×4)'s `Aᵀ m`: Aᵀ = [1 1 1 1 1 0; 0 1 −1 2 −2 0; 0 1 1 4 4 0; 0 1 −1 8 −8 1].
struct A4;

impl Line<6, 4> for A4 {
    #[inline(always)]
    fn apply<S: Simd>(simd: S, m: [S::f32s; 6]) -> [S::f32s; 4] {
        let (two, four, eight) = (
            simd.splat_f32s(2.0),
            simd.splat_f32s(4.0),
            simd.splat_f32s(8.0),
        );
        let (p, q) = (simd.add_f32s(m[1], m[2]), simd.sub_f32s(m[1], m[2]));
        let (r, s) = (simd.add_f32s(m[3], m[4]), simd.sub_f32s(m[3], m[4]));
        [
            simd.add_f32s(simd.add_f32s(m[0], p), r),
            simd.mul_add_e_f32s(two, s, q),
            simd.mul_add_e_f32s(four, r, p),
            simd.add_f32s(simd.mul_add_e_f32s(eight, s, q), m[5]),
        ]
    }
}

/// F(4×4)'s `A d`: A = [1 0 0 0; 1 1 1 1; 1 −1 1 −1; 1 2 4 8; 1 −2 4 −8; 0 0 0 1], rows 1–2
/// and 3–4 sharing their sums.
struct Z4;

impl Line<4, 6> for Z4 {
    #[inline(always)]
    fn apply<S: Simd>(simd: S, d: [S::f32s; 4]) -> [S::f32s; 6] {
        let (two, four, eight) = (
            simd.splat_f32s(2.0),
            simd.splat_f32s(4.0),
            simd.splat_f32s(8.0),
        );
        let (even, odd) = (simd.add_f32s(d[0], d[2]), simd.add_f32s(d[1], d[3]));
        let even4 = simd.mul_add_e_f32s(four, d[2], d[0]);
        let odd8 = simd.mul_add_e_f32s(eight, d[3], simd.mul_f32s(two, d[1]));
        [
            d[0],
            simd.add_f32s(even, odd),
            simd.sub_f32s(even, odd),
            simd.add_f32s(even4, odd8),
            simd.sub_f32s(even4, odd8),
            d[3],
        ]
    }
}

/// F(4×4, 2×2)'s `Bᵀ d`: Bᵀ = [2 −1 −2 1 0; 0 −2 −1 1 0; 0 2 −3 1 0; 0 −1 0 1 0;
/// 0 2 −1 −2 1], every row but the fourth built on the fourth, e = d₃ − d₁: 9 operations where
/// the matrix has 16 nonzeros.
struct B4K2;

impl Line<5, 5> for B4K2 {
    #[inline(always)]
    fn apply<S: Simd>(simd: S, d: [S::f32s; 5]) -> [S::f32s; 5] {
        let (two, three, minus_two) = (
            simd.splat_f32s(2.0),
            simd.splat_f32s(3.0),
            simd.splat_f32s(-2.0),
        );
        let e = simd.sub_f32s(d[3], d[1]);
        [
            simd.mul_add_e_f32s(two, simd.sub_f32s(d[0], d[2]), e),
            simd.sub_f32s(e, simd.add_f32s(d[1], d[2])),
            simd.mul_add_e_f32s(three, simd.sub_f32s(d[1], d[2]), e),
            e,
            simd.mul_add_e_f32s(minus_two, e, simd.sub_f32s(d[4], d[2])),
        ]
    }
}

/// F(4×4, 2×2)'s `Aᵀ m`: Aᵀ = [1 1 1 1 0; 0 1 −1 2 0; 0 1 1 4 0; 0 1 −1 8 1].
struct A4K2;

impl Line<5, 4> for A4K2 {
    #[inline(always)]
    fn apply<S: Simd>(simd: S, m: [S::f32s; 5]) -> [S::f32s; 4] {
        let (two, four, eight) = (
            simd.splat_f32s(2.0),
            simd.splat_f32s(4.0),
            simd.splat_f32s(8.0),
        );
        let (p, q) = (simd.add_f32s(m[1], m[2]), simd.sub_f32s(m[1], m[2]));
        [
            simd.add_f32s(simd.add_f32s(m[0], p), m[3]),
            simd.mul_add_e_f32s(two, m[3], q),
            simd.mul_add_e_f32s(four, m[3], p),
            simd.add_f32s(simd.mul_add_e_f32s(eight, m[3], q), m[4]),
        ]
    }
}

thread_local! {
    /// Each worker's block buffers, reused from image to image: the transformed inputs
    /// `[positions][block][cin]` and the products of the register tile's vectors of output
    /// channels `[positions][block][lanes]`.
    pub(super) static BLOCK: RefCell<(Vec<f32>, Vec<f32>)> =
        const { RefCell::new((Vec::new(), Vec::new())) };
}

/// One image: `input` (a frame at least as large as the tiling's [`Tiling::frame`], for a 3×3
/// kernel the image one row and column in, for a 2×2 one at its origin) convolved with the
/// transformed weights `u`, through `epilogue`, into `out` `[h, w, cout]`, or for a stride-2
/// input gradient's parities the image they interleave into (see [`Parities`]).
pub(super) struct WinogradConv<'a> {
    pub tiling: Tiling,
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
        let (rows, width) = self.tiling.frame((self.h, self.w));
        self.cin.is_multiple_of(lanes)
            && self.cout.is_multiple_of(lanes)
            && self.input.width >= width
            && self.input.rows(self.cin) >= rows
            && self.u.len() >= self.tiling.positions() * self.cin * self.cout
            && self.out.len()
                >= self
                    .epilogue
                    .parities
                    .map_or(self.h * self.w * self.cout, |Parities { cin, h, w }| {
                        h * w * cin
                    })
            && self.epilogue.parities.is_none_or(|Parities { cin, h, w }| {
                // Each vector of output channels within one parity, stored whole; the residual
                // would be read in the parities' layout.
                self.cout == 4 * cin
                    && cin.is_multiple_of(lanes)
                    && h <= 2 * self.h
                    && w <= 2 * self.w
                    && self.epilogue.residual.is_none()
            })
            && self.epilogue.covers(self.h * self.w * self.cout, self.cout)
    }
}

impl WithSimd for WinogradConv<'_> {
    type Output = bool;

    #[inline(always)]
    fn with_simd<S: Simd>(mut self, simd: S) -> bool {
        if !self.fits(S::F32_LANES) {
            return false;
        }
        let (mut inputs, mut products) = std::mem::take(self.block);
        let (positions, block) = (self.tiling.positions(), block_tiles(self.cin));
        inputs.resize(positions * block * self.cin, 0.0);
        products.resize(positions * block * S::F32_LANES, 0.0);
        let buffers = (&mut inputs[..], &mut products[..]);
        // SAFETY: `fits` checked the frame, weight, output, bias and residual sizes, and the
        // buffers were just sized for the block.
        unsafe {
            match self.tiling {
                Tiling::F2 => convolve::<S, F2x2, 4, 2>(simd, &mut self, buffers),
                Tiling::F4 => convolve::<S, F4x4, 6, 4>(simd, &mut self, buffers),
                Tiling::F4K2 => convolve::<S, F4x4K2, 5, 4>(simd, &mut self, buffers),
            }
        }
        *self.block = (inputs, products);
        true
    }
}

/// # Safety
/// `c.fits(S::F32_LANES)` must hold, `c.tiling` be T's, `inputs` hold positions·block·cin values
/// and `products` positions·block·lanes ([`block_tiles`]).
#[inline(always)]
unsafe fn convolve<S: Simd, T: Tiles<W, M>, const W: usize, const M: usize>(
    simd: S,
    c: &mut WinogradConv<'_>,
    (inputs, products): (&mut [f32], &mut [f32]),
) {
    let out = c.out.as_mut_ptr().cast::<f32>();
    let c = &*c;
    let lanes = S::F32_LANES;
    let (cin, cout, w) = (c.cin, c.cout, c.w);
    let inputs = inputs.as_mut_ptr();
    let products = products.as_mut_ptr();
    let (tiles_wide, tiles) = T::TILING.tiles((c.h, w));
    let tile_at = |tile: usize| (tile / tiles_wide, tile % tiles_wide);
    let block = block_tiles(cin);
    // The transformed inputs are laid out for the tiles an image has where a register tile of up
    // to 8 rows takes them all (every row it reads is then one of them): a 7 × 7 map's 4 tiles
    // of 64 channels in a layout for 16 put each position's inputs 4 KB apart, all in the same
    // few sets of the first-level cache. 7×7 64→64 forward 4.91–5.03 → 4.78–4.90 ms (minima,
    // three alternating runs; 2-core Zen 4, batch 512).
    let input_block = if tiles <= 8 { tiles } else { block };
    for first in (0..tiles).step_by(block) {
        let count = block.min(tiles - first);
        // SAFETY: the caller's `fits` and buffer sizes are `transform_inputs`' contract.
        unsafe {
            let frames = (std::slice::from_ref(c.input), cin);
            transform_inputs::<S, T, W, M>(
                simd,
                frames,
                (first, count, input_block),
                (tiles_wide, tiles),
                inputs,
            );
        };
        // The register tile: the block's tiles rounded up to 4, 8 or 16 rows (an 8×8 map is 4
        // tiles of F(4×4), which a 16-row tile would compute four times over), and on 4 rows
        // four vectors of output channels where they are (16 accumulators, each weight and
        // input loaded once for four multiply-adds), else two, so that 8 hide the multiply-adds'
        // latency. Four rather than two took 8×8 64→64 from 5.97–6.12 to 5.63–5.72 ms forward
        // and 7×7 64→64 from 5.75–5.82 to 5.33–5.35 (2-core Zen 4, batch 512, two runs). Four
        // need a block of 16 slots for their products, and more than AVX2's 16 registers.
        let sixteen_accumulators = block >= 16 && lanes != 8;
        let vectors = if count <= 4 && cout.is_multiple_of(4 * lanes) && sixteen_accumulators {
            4
        } else if count <= 4 && cout.is_multiple_of(2 * lanes) {
            2
        } else {
            1
        };
        // The tiles of a register tile of up to 8 rows skip positions (a block of 16 runs its
        // rows whole, so its slots are not worked out): the 14 × 14 maps' blocks of 8 tiles,
        // 3 of them on a last side, run 6 or 7 rows at those positions. 14×14 32→32 forward
        // 6.04–6.23 → 5.75–5.93 ms (minima, three alternating runs); bit for bit the same.
        let needed =
            (count <= 8).then(|| NeededSlots::new(count, |i| tile_at(first + i), M, (c.h, w)));
        for co in (0..cout).step_by(vectors * lanes) {
            for position in 0..W * W {
                // SAFETY: u holds positions·cin·cout values, co + vectors·lanes ≤ cout; the
                // buffers hold a block, and the slots lie in it.
                unsafe {
                    let weights = (c.u.as_ptr().add(co), cin, cout);
                    let buffers = (inputs.cast_const(), products, (input_block, block));
                    let slots = needed
                        .as_ref()
                        .map_or(&[][..], |n| n.for_position::<W>(position));
                    let slots = (position, slots);
                    match (count, vectors) {
                        (0..=4, 4) => multiply_slots::<S, W, 4>(simd, weights, buffers, slots),
                        (0..=4, 2) => multiply_slots::<S, W, 2>(simd, weights, buffers, slots),
                        (0..=8, _) => multiply_slots::<S, W, 1>(simd, weights, buffers, slots),
                        _ => {
                            let rows = std::array::from_fn(|i| i);
                            multiply::<S, W, TILES, 1>(simd, weights, buffers, (position, rows));
                        }
                    }
                }
            }
            // Aᵀ m A of each tile, through the epilogue, stored at its m×m pixels.
            for (i, v) in (0..count).flat_map(|i| (0..vectors).map(move |v| (i, v))) {
                let (ty, tx) = tile_at(first + i);
                let (slot, co) = (i * vectors + v, co + v * lanes);
                // SAFETY: the products buffer holds positions·block·lanes values, position
                // (r, c) of this slot's at ((r·W + c)·block + slot)·lanes.
                let y = unsafe {
                    let pitches = (block * lanes, W * block * lanes);
                    both_sides::<S, T::A, W, M>(simd, products.add(slot * lanes), pitches)
                };
                // A side that is not whole tiles has last tiles reaching past the image: only
                // its pixels are stored.
                let (tile_rows, tile_columns) = ((c.h - M * ty).min(M), (w - M * tx).min(M));
                for (r, row) in y.iter().enumerate().take(tile_rows) {
                    let (oy, ox) = (M * ty + r, M * tx);
                    for (col, &value) in row.iter().enumerate().take(tile_columns) {
                        let at = (oy * w + ox + col) * cout + co;
                        // SAFETY: the pixel lies in the h × w output; `fits` checked the bias
                        // and residual sizes, and the parities' image.
                        unsafe {
                            let value = c.epilogue.apply(simd, (at, co), value);
                            match c.epilogue.parities {
                                None => store::<S>(out.add(at), value),
                                Some(parities) => {
                                    let pixel = (oy, ox + col, co);
                                    store_interleaved::<S>(out, parities, pixel, value);
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// [`multiply`] of the block's tiles in `slots` (8 at most: the register tile's rows, 4 for
/// more than one vector) at `position`, on a register tile of as many rows as there are slots.
/// `buffers` are (inputs, products, (input_block, block)), as [`multiply`] takes them.
///
/// # Safety
/// [`multiply`]'s, for the slots' rows.
#[inline(always)]
unsafe fn multiply_slots<S: Simd, const W: usize, const V: usize>(
    simd: S,
    weights: (*const f32, usize, usize),
    buffers: (*const f32, *mut f32, (usize, usize)),
    (position, slots): (usize, &[u8]),
) {
    let row = |i: usize| usize::from(slots[i]);
    // SAFETY: the caller's contract.
    unsafe {
        match slots.len() {
            0 => {}
            1 => multiply::<S, W, 1, V>(simd, weights, buffers, (position, [row(0)])),
            2 => {
                let rows = [row(0), row(1)];
                multiply::<S, W, 2, V>(simd, weights, buffers, (position, rows));
            }
            3 => {
                let rows = [row(0), row(1), row(2)];
                multiply::<S, W, 3, V>(simd, weights, buffers, (position, rows));
            }
            4 => {
                let rows = [row(0), row(1), row(2), row(3)];
                multiply::<S, W, 4, V>(simd, weights, buffers, (position, rows));
            }
            5 => {
                let rows = std::array::from_fn(row);
                multiply::<S, W, 5, V>(simd, weights, buffers, (position, rows));
            }
            6 => {
                let rows = std::array::from_fn(row);
                multiply::<S, W, 6, V>(simd, weights, buffers, (position, rows));
            }
            7 => {
                let rows = std::array::from_fn(row);
                multiply::<S, W, 7, V>(simd, weights, buffers, (position, rows));
            }
            _ => {
                let rows = std::array::from_fn(row);
                multiply::<S, W, 8, V>(simd, weights, buffers, (position, rows));
            }
        }
    }
}

/// The products at `position` of the block's tiles in slots `rows` (their transformed inputs,
/// `[positions][input_block][cin]`) and `V` vectors of output channels of the transformed weights
/// (`weights`, the first vector's first value at position 0 and input channel 0, of a
/// `[positions][cin][cout]` array), into `products` `[positions][block][lanes]`, slot i's vector
/// v in slot i·V + v. Slots past the block's count multiply stale values and are not stored.
///
/// # Safety
/// The buffers must hold W² positions of their blocks, `weights` V vectors at every (position,
/// input channel), and every row r satisfy r < input_block and (r + 1)·V ≤ block.
#[inline(always)]
unsafe fn multiply<S: Simd, const W: usize, const R: usize, const V: usize>(
    simd: S,
    (weights, cin, cout): (*const f32, usize, usize),
    (inputs, products, (input_block, block)): (*const f32, *mut f32, (usize, usize)),
    (position, rows): (usize, [usize; R]),
) {
    let lanes = S::F32_LANES;
    let zero = simd.splat_f32s(0.0);
    let mut acc = [[zero; V]; R];
    for ci in 0..cin {
        let mut vectors = [zero; V];
        for (v, vector) in vectors.iter_mut().enumerate() {
            // SAFETY: the caller's contract.
            *vector = unsafe { load::<S>(weights.add((position * cin + ci) * cout + v * lanes)) };
        }
        for (&i, acc) in rows.iter().zip(acc.iter_mut()) {
            // SAFETY: the caller's contract.
            let input =
                simd.splat_f32s(unsafe { *inputs.add((position * input_block + i) * cin + ci) });
            for (acc, &vector) in acc.iter_mut().zip(&vectors) {
                *acc = simd.mul_add_e_f32s(input, vector, *acc);
            }
        }
    }
    for (&i, acc) in rows.iter().zip(&acc) {
        for (v, &acc) in acc.iter().enumerate() {
            // SAFETY: the caller's contract.
            unsafe { store::<S>(products.add((position * block + i * V + v) * lanes), acc) };
        }
    }
}

/// Which of a block's tiles need each position's products. The last position of a side
/// (W − 1) enters only the last output pixel of that side: `Aᵀ m A` adds it into the last row
/// and column alone (every tiling's Aᵀ has a single 1 in its last column, in its last row), and
/// `A dY Aᵀ` makes it of the tile's last dY pixel alone. A side that is not whole tiles (7 × 7
/// and 14 × 14 maps of F(4×4)) has last tiles whose last row or column lies past the image: the
/// forward pass never stores those pixels, and the weight gradient reads zeros of the frame
/// there, whose products add nothing (the sums, which start at +0, stay bit for bit the same).
/// So such a tile skips the positions of that side: on a 7 × 7 map 121 multiplications of a
/// channel pair per image where all four tiles take 144.
struct NeededSlots {
    /// The slots, in order, of the tiles that need the positions on neither last side, on the
    /// last column only, on the last row only, and on both.
    slots: [[u8; TILES]; 4],
    len: [usize; 4],
}

impl NeededSlots {
    /// The first `count` slots' tiles (`tile(slot)`: its row and column of tiles in the image)
    /// of `m` × `m` pixels in an `h` × `w` image.
    fn new(
        count: usize,
        tile: impl Fn(usize) -> (usize, usize),
        m: usize,
        (h, w): (usize, usize),
    ) -> Self {
        let mut needed = Self {
            slots: [[0; TILES]; 4],
            len: [0; 4],
        };
        for slot in 0..count.min(TILES) {
            let (ty, tx) = tile(slot);
            let (last_column, last_row) = (m * (tx + 1) <= w, m * (ty + 1) <= h);
            let cases = [true, last_column, last_row, last_column && last_row];
            for (case, takes) in cases.into_iter().enumerate() {
                if takes {
                    // A slot below TILES (16) fits a byte.
                    needed.slots[case][needed.len[case]] = slot as u8;
                    needed.len[case] += 1;
                }
            }
        }
        needed
    }

    /// The slots whose tiles need position `position` of W × W.
    fn for_position<const W: usize>(&self, position: usize) -> &[u8] {
        let case = usize::from(position % W == W - 1) + 2 * usize::from(position / W == W - 1);
        &self.slots[case][..self.len[case]]
    }
}

/// `Bᵀ d B` of the windows of tiles `first..first + count` of the padded frames `frames` (the
/// images one after the other, each `tiles_wide` tiles wide and `tiles_per_image` tiles in
/// all), a vector of their `cin` channels at a time, into `inputs` `[positions][block][cin]`.
///
/// # Safety
/// Every frame must be at least as large as T's [`Tiling::frame`] (the image one row and
/// column in), the tiles lie in the frames' images, `cin` be whole vectors and `inputs` hold
/// positions·block·cin values; `count` ≤ block.
#[inline(always)]
unsafe fn transform_inputs<S: Simd, T: Tiles<W, M>, const W: usize, const M: usize>(
    simd: S,
    (frames, cin): (&[Padded], usize),
    (first, count, block): (usize, usize, usize),
    (tiles_wide, tiles_per_image): (usize, usize),
    inputs: *mut f32,
) {
    for i in 0..count {
        let (image, tile) = ((first + i) / tiles_per_image, (first + i) % tiles_per_image);
        let (ty, tx) = (tile / tiles_wide, tile % tiles_wide);
        // SAFETY: the tile lies in the frames' images (the caller's contract).
        let input = unsafe { frames.get_unchecked(image) };
        let (padded, width) = (input.data.as_ptr(), input.width);
        for c0 in (0..cin).step_by(S::F32_LANES) {
            let window = (M * ty * width + M * tx) * cin + c0;
            // SAFETY: the window lies in the frame; position < positions, i < block,
            // c0 + lanes ≤ cin.
            unsafe {
                let v = both_sides::<S, T::B, W, W>(simd, padded.add(window), (cin, width * cin));
                store_positions::<S, W>(&v, inputs.add(i * cin + c0), block * cin);
            }
        }
    }
}

/// The weight gradient's products of one or more images added into `products`
/// `[positions][cin][cout]`:
/// at each position, `Σ_tiles V ⊗ Z` of the tiles' transformed inputs `V = Bᵀ d B` (as the
/// forward pass makes them) and transformed output gradients `Z = A dY Aᵀ`. The forward pass is
/// linear in the transformed weights `U = G g Gᵀ`, so these sums are dL/dU, and
/// [`weight_grad_from_products`] takes them to dL/dg once the batch's are added: per m×m tile
/// (m + 2)²·cin·cout multiply-adds where the direct kernel does 9m²·cin·cout. The blocks run on
/// over the images: a small map's few tiles share a block with the next image's, and the
/// products are loaded and stored once per block of tiles, not once per image.
pub(super) struct WinogradWeightGrad<'a> {
    pub tiling: Tiling,
    /// Each image's x in its frame (one row and column of zeros around, as for the forward
    /// pass).
    pub inputs: &'a [Padded],
    /// Each image's dY in a frame, one row and column in (as the backward pass's dY frame holds
    /// it), with the rows and columns of zeros after it that the tiling's frame has.
    pub dys: &'a [Padded],
    pub h: usize,
    pub w: usize,
    pub cin: usize,
    pub cout: usize,
    /// `[positions][cin][cout]`, added to.
    pub products: &'a mut [f32],
    /// The worker's [`BLOCK`] buffers (borrowed outside the kernel, as for [`WinogradConv`]).
    pub block: &'a mut (Vec<f32>, Vec<f32>),
}

/// Input channels a weight-gradient register tile takes: its rows.
pub(super) const WEIGHT_GRAD_ROWS: usize = 16;

impl WinogradWeightGrad<'_> {
    /// Whether every read and write stays inside the slices.
    fn fits(&self, lanes: usize) -> bool {
        let (rows, width) = self.tiling.frame((self.h, self.w));
        self.tiling.gradient_g().is_some()
            && self.cin.is_multiple_of(WEIGHT_GRAD_ROWS)
            && self.cin.is_multiple_of(lanes)
            && self.cout.is_multiple_of(lanes)
            && self.inputs.len() == self.dys.len()
            && self
                .inputs
                .iter()
                .all(|x| x.width >= width && x.rows(self.cin) >= rows)
            && (self.dys.iter()).all(|dy| dy.width + 1 >= width && dy.rows(self.cout) + 1 >= rows)
            && self.products.len() >= self.tiling.positions() * self.cin * self.cout
    }
}

impl WithSimd for WinogradWeightGrad<'_> {
    type Output = bool;

    #[inline(always)]
    fn with_simd<S: Simd>(mut self, simd: S) -> bool {
        if self.h == 0 || self.w == 0 {
            return true;
        }
        if !self.fits(S::F32_LANES) {
            return false;
        }
        let (mut inputs, mut grads) = std::mem::take(self.block);
        let (positions, block) = (self.tiling.positions(), block_tiles(self.cin));
        inputs.resize(positions * block * self.cin, 0.0);
        grads.resize(positions * block * self.cout, 0.0);
        let buffers = (&mut inputs[..], &mut grads[..]);
        // SAFETY: `fits` checked the frame, dY and products sizes, and the buffers were just
        // sized for the block. AVX2's 16 registers hold a tile of 8 rows, the others' 16.
        unsafe {
            match (self.tiling, S::F32_LANES == 8) {
                (Tiling::F2, true) => accumulate::<S, F2x2, 4, 2, 8>(simd, &mut self, buffers),
                (Tiling::F4, true) => accumulate::<S, F4x4, 6, 4, 8>(simd, &mut self, buffers),
                (Tiling::F2, false) => {
                    accumulate::<S, F2x2, 4, 2, WEIGHT_GRAD_ROWS>(simd, &mut self, buffers);
                }
                (Tiling::F4, false) => {
                    accumulate::<S, F4x4, 6, 4, WEIGHT_GRAD_ROWS>(simd, &mut self, buffers);
                }
                // Refused by `fits`: no weight-gradient transform.
                (Tiling::F4K2, _) => {}
            }
        }
        *self.block = (inputs, grads);
        true
    }
}

/// # Safety
/// `c.fits(S::F32_LANES)` must hold, `c.tiling` be T's, `R` divide `WEIGHT_GRAD_ROWS`, `inputs`
/// hold positions·block·cin values and `grads` positions·block·cout ([`block_tiles`]).
#[inline(always)]
unsafe fn accumulate<
    S: Simd,
    T: GradientTiles<W, M>,
    const W: usize,
    const M: usize,
    const R: usize,
>(
    simd: S,
    c: &mut WinogradWeightGrad<'_>,
    (inputs, grads): (&mut [f32], &mut [f32]),
) {
    let products = c.products.as_mut_ptr();
    let c = &*c;
    let lanes = S::F32_LANES;
    let zero = simd.splat_f32s(0.0);
    let (cin, cout) = (c.cin, c.cout);
    let (inputs, grads) = (inputs.as_mut_ptr(), grads.as_mut_ptr());
    let (tiles_wide, per_image) = T::TILING.tiles((c.h, c.w));
    let tiles = per_image * c.inputs.len();
    let block = block_tiles(cin);
    for first in (0..tiles).step_by(block) {
        let count = block.min(tiles - first);
        // SAFETY: the caller's `fits` and buffer sizes are `transform_inputs`' contract.
        unsafe {
            let frames = (c.inputs, cin);
            transform_inputs::<S, T, W, M>(
                simd,
                frames,
                (first, count, block),
                (tiles_wide, per_image),
                inputs,
            );
        }
        // A dY Aᵀ of each tile's m×m pixels, a vector of output channels at a time.
        for i in 0..count {
            let (image, tile) = ((first + i) / per_image, (first + i) % per_image);
            let (ty, tx) = (tile / tiles_wide, tile % tiles_wide);
            let frame = &c.dys[image];
            let (dy, dy_pitch) = (frame.data.as_ptr(), frame.width * cout);
            // dY's pixel (y, x) lies one row and column into its frame.
            let tile = (M * ty + 1) * dy_pitch + (M * tx + 1) * cout;
            for co in (0..cout).step_by(lanes) {
                // SAFETY: the tile's pixels lie in the frame (`fits`), co + lanes ≤ cout;
                // position < positions, i < block.
                unsafe {
                    let z = both_sides::<S, T::Z, M, W>(simd, dy.add(tile + co), (cout, dy_pitch));
                    store_positions::<S, W>(&z, grads.add(i * cout + co), block * cout);
                }
            }
        }
        // Each position's products: a register tile of R input channels × one vector of output
        // channels, summed over the block's tiles in order (the last block's unused tiles hold
        // stale values and are left out, and so are the tiles whose dY is zero there).
        let tile_at = |slot: usize| {
            let tile = (first + slot) % per_image;
            (tile / tiles_wide, tile % tiles_wide)
        };
        let needed = NeededSlots::new(count, tile_at, M, (c.h, c.w));
        for position in 0..W * W {
            let slots = needed.for_position::<W>(position);
            for ci0 in (0..cin).step_by(R) {
                for co in (0..cout).step_by(lanes) {
                    let at = |r: usize| (position * cin + ci0 + r) * cout + co;
                    let mut acc = [zero; R];
                    for (r, acc) in acc.iter_mut().enumerate() {
                        // SAFETY: products hold positions·cin·cout values, ci0 + R ≤ cin,
                        // co + lanes ≤ cout.
                        *acc = unsafe { load::<S>(products.add(at(r))) };
                    }
                    for &i in slots {
                        let i = usize::from(i);
                        // SAFETY: the block buffers hold positions·block·cout and
                        // positions·block·cin values.
                        let z = unsafe { load::<S>(grads.add((position * block + i) * cout + co)) };
                        let v = unsafe { inputs.add((position * block + i) * cin + ci0) };
                        for (r, acc) in acc.iter_mut().enumerate() {
                            let v = simd.splat_f32s(unsafe { *v.add(r) });
                            *acc = simd.mul_add_e_f32s(v, z, *acc);
                        }
                    }
                    for (r, &acc) in acc.iter().enumerate() {
                        // SAFETY: as for the loads.
                        unsafe { store::<S>(products.add(at(r)), acc) };
                    }
                }
            }
        }
    }
}

/// dW `[3, 3, cin, cout]` from the batch's summed [`WinogradWeightGrad`] products
/// `[positions][cin][cout]`: `Gᵀ P G` at every (input, output) channel pair, with the tiling's
/// G for the gradient ([`Tiling::gradient_g`]), summed in f64; `None` for a tiling without one.
pub(super) fn weight_grad_from_products(
    tiling: Tiling,
    products: &[f32],
    (cin, cout): (usize, usize),
) -> Option<Vec<f32>> {
    let g = tiling.gradient_g()?;
    let pairs = cin * cout;
    let mut dw = vec![0f32; 9 * pairs];
    // A tap on each worker; each value's sum runs over the positions in order.
    dw.par_chunks_mut(pairs.max(1))
        .enumerate()
        .for_each(|(tap, dw)| {
            let (ky, kx) = (tap / 3, tap % 3);
            let mut sums = vec![0f64; pairs];
            for (position, products) in products
                .chunks_exact(pairs)
                .take(g.len().pow(2))
                .enumerate()
            {
                let factor = g[position / g.len()][ky] * g[position % g.len()][kx];
                if factor != 0.0 {
                    for (sum, &p) in sums.iter_mut().zip(products) {
                        *sum += factor * f64::from(p);
                    }
                }
            }
            for (dw, &sum) in dw.iter_mut().zip(&sums) {
                *dw = sum as f32;
            }
        });
    Some(dw)
}

#[cfg(test)]
mod tests {
    use std::mem::MaybeUninit;

    use super::{Tiling, WinogradConv, WinogradWeightGrad, weight_grad_from_products};
    use crate::ops::conv::direct::{Epilogue, Padded, Parities, Source};
    use crate::ops::simd;

    /// A small deterministic pseudo-random value in [-1, 1).
    fn value(seed: usize) -> f32 {
        let x = (seed as u32).wrapping_mul(2_654_435_761).rotate_left(13) ^ 0x9e37_79b9;
        (x % 2001) as f32 / 1000.0 - 1.0
    }

    /// The kernel against a plain 3×3 convolution in f64, through every epilogue step, with
    /// both tilings on every instruction set. F(2×2): 6 × 10 pixels make 15 tiles, a block and a
    /// part, so the last block's unused tiles must not be stored; 5 × 13 pixels (21 tiles) have
    /// odd sides, whose last tiles' pixels past the image must not be stored either (the
    /// output's guard values after it stay). F(4×4): 6 × 10 pixels make 6 tiles on the 8-row
    /// register tile, 5 × 13 make 8, 17 × 14 make 20 (blocks of 8, 8 and 4 tiles with 16 input
    /// channels, of 16 and 4 with 64: [`super::block_tiles`]), and every side but 8 ends in a
    /// part of a tile; 8 × 8 makes 4, on 4 rows by 2 vectors of 16 output channels (32 of them)
    /// or 4 (64), and so does 7 × 7, whose last tiles skip the positions only their pixels past
    /// the image take ([`super::NeededSlots`]), on 3, 2 and 1 rows.
    #[test]
    fn winograd_matches_a_plain_convolution_with_the_epilogue() {
        let shapes = [(6, 10), (5, 13), (8, 8), (7, 7), (17, 14)];
        let channels = [(16, 32), (64, 64)];
        for ((h, w), (cin, cout)) in shapes.into_iter().flat_map(|s| channels.map(|c| (s, c))) {
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
                                let iy = (oy + ky).wrapping_sub(1);
                                let ix = (ox + kx).wrapping_sub(1);
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
            for (tiling, isa) in [Tiling::F2, Tiling::F4]
                .into_iter()
                .flat_map(|tiling| simd::available().into_iter().map(move |isa| (tiling, isa)))
            {
                let u = tiling.transform_weights((cin, cout), at);
                let mut padded = Padded::new();
                padded.fill(
                    Source::Values(&x),
                    (h, w, cin),
                    1,
                    tiling.frame((h, w)),
                    isa,
                );
                let guard = (w + 1) * cout;
                let mut out = vec![MaybeUninit::new(f32::NAN); h * w * cout + guard];
                let mut block = (Vec::new(), Vec::new());
                let kernel = WinogradConv {
                    tiling,
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
                assert_eq!(
                    simd::dispatch(isa, kernel),
                    Some(true),
                    "{tiling:?} {isa:?} {h}×{w} {cin}→{cout}"
                );
                // SAFETY: every value was initialised (NaN) before the kernel ran.
                let out: Vec<f64> = out
                    .iter()
                    .map(|out| f64::from(unsafe { out.assume_init() }))
                    .collect();
                // F(4×4)'s rounding grows with the sum's terms: up to 2.4e-5 seen on 64
                // channels.
                let tolerance = 1e-5 * cin as f64 / 16.0;
                for (i, (out, expected)) in out.iter().zip(&expected).enumerate() {
                    assert!(
                        (out - expected).abs() <= tolerance,
                        "{tiling:?} {isa:?} {h}×{w} {cin}→{cout} value {i}: {out} against {expected}"
                    );
                }
                assert!(
                    out[h * w * cout..].iter().all(|out| out.is_nan()),
                    "{tiling:?} {isa:?} {h}×{w} {cin}→{cout}: stored past the image"
                );
            }
        }
    }

    /// F(4×4, 2×2) against a plain 2×2 convolution in f64 on every instruction set, its 4·16
    /// output channels stored as the four pixel parities of a 16-channel image twice as large,
    /// as a stride-2 input gradient stores them. 6 × 6 and 9 × 3 pixels end in parts of tiles
    /// and interleave into images with an odd side (11 × 11, 17 × 6), whose last parities are
    /// not stored; 7 × 5 make 4 tiles on the 4-row register tile, 8 × 8 a whole 16-row block.
    #[test]
    fn winograd_2x2_matches_a_plain_convolution_into_parities() {
        for ((h, w), (image_h, image_w)) in [
            ((6, 6), (11, 11)),
            ((9, 3), (17, 6)),
            ((7, 5), (14, 10)),
            ((8, 8), (16, 16)),
        ] {
            let (cin, parity_cin) = (32, 16);
            let cout = 4 * parity_cin;
            let x: Vec<f32> = (0..h * w * cin).map(value).collect();
            let weights: Vec<f32> = (0..cout * cin * 4).map(|i| 0.1 * value(i + 7)).collect();
            let at = |co: usize, ci: usize, ky: usize, kx: usize| {
                weights[((co * cin + ci) * 2 + ky) * 2 + kx]
            };
            // NaN where no parity lands: nothing may be stored there.
            let mut expected = vec![f64::NAN; image_h * image_w * parity_cin];
            for oy in 0..h {
                for ox in 0..w {
                    for co in 0..cout {
                        let mut sum = 0f64;
                        for (ky, kx) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                            let (iy, ix) = (oy + ky, ox + kx);
                            if iy < h && ix < w {
                                for ci in 0..cin {
                                    sum += f64::from(x[(iy * w + ix) * cin + ci])
                                        * f64::from(at(co, ci, ky, kx));
                                }
                            }
                        }
                        let (parity, ci) = (co / parity_cin, co % parity_cin);
                        let (y, x) = (2 * oy + parity / 2, 2 * ox + parity % 2);
                        if y < image_h && x < image_w {
                            expected[(y * image_w + x) * parity_cin + ci] = sum;
                        }
                    }
                }
            }
            let tiling = Tiling::F4K2;
            let u = tiling.transform_weights((cin, cout), at);
            for isa in simd::available() {
                let mut padded = Padded::new();
                let frame = tiling.frame((h, w));
                padded.fill(Source::Values(&x), (h, w, cin), 0, frame, isa);
                let len = image_h * image_w * parity_cin;
                let mut out = vec![MaybeUninit::new(f32::NAN); len + parity_cin];
                let mut block = (Vec::new(), Vec::new());
                let parities = Parities {
                    cin: parity_cin,
                    h: image_h,
                    w: image_w,
                };
                let kernel = WinogradConv {
                    tiling,
                    input: &padded,
                    u: &u,
                    h,
                    w,
                    cin,
                    cout,
                    out: &mut out,
                    epilogue: Epilogue {
                        parities: Some(parities),
                        ..Epilogue::default()
                    },
                    block: &mut block,
                };
                let case = format!("{isa:?} {h}×{w} into {image_h}×{image_w}");
                assert_eq!(simd::dispatch(isa, kernel), Some(true), "{case}");
                // SAFETY: every value was initialised (NaN) before the kernel ran.
                let out: Vec<f64> = out
                    .iter()
                    .map(|out| f64::from(unsafe { out.assume_init() }))
                    .collect();
                for (i, (out, expected)) in out.iter().zip(&expected).enumerate() {
                    assert!(
                        (out - expected).abs() <= 1e-5 || (out.is_nan() && expected.is_nan()),
                        "{case} value {i}: {out} against {expected}"
                    );
                }
                assert!(
                    out[len..].iter().all(|out| out.is_nan()),
                    "{case}: stored past the image"
                );
            }
        }
    }

    /// The weight gradient's products, taken to dW, against a plain one in f64 with both
    /// tilings on every instruction set: two images added into the same products (the kernel
    /// adds to them), one call each and both in one call, in a dY frame one row short of x's and
    /// wider. F(2×2): 6 × 10 pixels make 15 tiles, a block and a part,
    /// whose stale tiles must be left out; 5 × 13 (21 tiles) have odd sides, whose last tiles
    /// read the frame's zeros past the image. F(4×4): 6 × 10 make 6 tiles, 5 × 13 8, 17 × 14 20
    /// (blocks and a part: of 8 tiles with 16 input channels, of 16 with 64), 7 × 7 4, and every
    /// side but 8 ends in a part of a tile, whose last tiles skip the positions where their dY
    /// is the frame's zeros.
    #[test]
    fn winograd_weight_gradient_matches_a_plain_one() {
        let shapes = [(6, 10), (5, 13), (8, 8), (7, 7), (17, 14)];
        for ((h, w), cin) in shapes
            .into_iter()
            .flat_map(|s| [16, 64].map(|cin| (s, cin)))
        {
            let cout = 16;
            let images: Vec<(Vec<f32>, Vec<f32>)> = (0..2)
                .map(|image| {
                    let x = (0..h * w * cin).map(|i| value(i + 1000 * image)).collect();
                    let dy = (0..h * w * cout)
                        .map(|i| value(i + 1000 * image + 17))
                        .collect();
                    (x, dy)
                })
                .collect();
            let mut expected = vec![0f64; 9 * cin * cout];
            for (x, dy) in &images {
                for (tap, expected) in expected.chunks_exact_mut(cin * cout).enumerate() {
                    let (ky, kx) = (tap / 3, tap % 3);
                    for oy in 0..h {
                        for ox in 0..w {
                            let iy = (oy + ky).wrapping_sub(1);
                            let ix = (ox + kx).wrapping_sub(1);
                            if iy >= h || ix >= w {
                                continue;
                            }
                            for ci in 0..cin {
                                let input = f64::from(x[(iy * w + ix) * cin + ci]);
                                for co in 0..cout {
                                    let grad = f64::from(dy[(oy * w + ox) * cout + co]);
                                    expected[ci * cout + co] += input * grad;
                                }
                            }
                        }
                    }
                }
            }
            for (tiling, isa) in [Tiling::F2, Tiling::F4]
                .into_iter()
                .flat_map(|tiling| simd::available().into_iter().map(move |isa| (tiling, isa)))
            {
                let frame = tiling.frame((h, w));
                // One row fewer than x's frame (the last tiles read dY's rows only up to the
                // one before the frame's last) and wider, as a backward pass may hand it over.
                let dy_frame = (frame.0 - 1, frame.1 + 3);
                let (mut inputs, mut dys) = (Vec::new(), Vec::new());
                for (x, dy) in &images {
                    let (mut padded, mut dy_padded) = (Padded::new(), Padded::new());
                    padded.fill(Source::Values(x), (h, w, cin), 1, frame, isa);
                    dy_padded.fill(Source::Values(dy), (h, w, cout), 1, dy_frame, isa);
                    inputs.push(padded);
                    dys.push(dy_padded);
                }
                // The images one call each, and both in one call (their tiles sharing blocks).
                for together in [false, true] {
                    let mut products = vec![0f32; tiling.positions() * cin * cout];
                    let mut block = (Vec::new(), Vec::new());
                    let calls: &[(usize, usize)] = if together {
                        &[(0, 2)]
                    } else {
                        &[(0, 1), (1, 2)]
                    };
                    for &(from, to) in calls {
                        let kernel = WinogradWeightGrad {
                            tiling,
                            inputs: &inputs[from..to],
                            dys: &dys[from..to],
                            h,
                            w,
                            cin,
                            cout,
                            products: &mut products,
                            block: &mut block,
                        };
                        let case =
                            format!("{tiling:?} {isa:?} {h}×{w} {cin}→{cout} together {together}");
                        assert_eq!(simd::dispatch(isa, kernel), Some(true), "{case}");
                    }
                    let dw = weight_grad_from_products(tiling, &products, (cin, cout))
                        .expect("a 3×3 tiling has a gradient G");
                    for (i, (&dw, &expected)) in dw.iter().zip(&expected).enumerate() {
                        assert!(
                            (f64::from(dw) - expected).abs() <= 1e-4 * expected.abs().max(1.0),
                            "{tiling:?} {isa:?} {h}×{w} {cin}→{cout} together {together} value {i}: {dw} \
                             against {expected}"
                        );
                    }
                }
            }
        }
    }

    /// An image in a frame without the zero rows and columns its last tiles reach (one more for
    /// an odd side of F(2×2), up to three for F(4×4)), F(2×2)'s 16 positions of weights given
    /// to F(4×4), and parities that are not a quarter of the output channels or come with a
    /// residual, are refused; the same images in their frames with the plain epilogue run, on
    /// every tiling.
    #[test]
    fn winograd_refuses_what_it_cannot_compute() {
        let run = |tiling: Tiling,
                   (h, w): (usize, usize),
                   (frame, positions): ((usize, usize), usize),
                   epilogue: Epilogue| {
            let isa = simd::current();
            let x = vec![0f32; h * w * 16];
            let mut padded = Padded::new();
            padded.fill(Source::Values(&x), (h, w, 16), 1, frame, isa);
            let u = vec![0f32; positions * 16 * 16];
            let mut out = vec![MaybeUninit::new(0f32); h * w * 16];
            let mut block = (Vec::new(), Vec::new());
            let kernel = WinogradConv {
                tiling,
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
        let (f2, f4, plain) = (Tiling::F2, Tiling::F4, Epilogue::default);
        let cases = [
            (f2, (5, 4), ((7, 6), 16), "F2, odd rows, short frame"),
            (f2, (4, 3), ((6, 5), 16), "F2, odd columns, short frame"),
            (f4, (6, 8), (f2.frame((6, 8)), 36), "F4, rows, F2's frame"),
            (
                f4,
                (8, 5),
                (f2.frame((8, 5)), 36),
                "F4, columns, F2's frame",
            ),
            (f4, (8, 8), (f4.frame((8, 8)), 16), "F4, F2's weights"),
        ];
        for (tiling, image, frame, case) in cases {
            assert_eq!(run(tiling, image, frame, plain()), Some(false), "{case}");
        }
        // Parities need 4 of them in the output channels, and no residual (read in their layout).
        let residual = vec![0f32; 4 * 4 * 16];
        let parities = |cin: usize, with_residual: bool| Epilogue {
            parities: Some(Parities { cin, h: 8, w: 8 }),
            residual: with_residual.then_some(&residual[..]),
            ..Epilogue::default()
        };
        for tiling in [f2, f4, Tiling::F4K2] {
            let frame = (tiling.frame((4, 4)), tiling.positions());
            for (epilogue, case) in [
                (parities(8, false), "8 channels a parity of 16"),
                (parities(4, true), "a residual"),
            ] {
                assert_eq!(
                    run(tiling, (4, 4), frame, epilogue),
                    Some(false),
                    "{tiling:?} parities, {case}"
                );
            }
            for image in [(5, 3), (6, 8), (8, 5)] {
                let frame = (tiling.frame(image), tiling.positions());
                assert_eq!(
                    run(tiling, image, frame, plain()),
                    Some(true),
                    "{tiling:?} {image:?}"
                );
            }
        }
    }
}
