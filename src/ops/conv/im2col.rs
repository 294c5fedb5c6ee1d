//! The general convolution path, for every dtype and shape: per image, the channels-last im2col
//! matrix (one row of k·k·Cin values per output pixel) times the HWIO weight matrix, with `gemm`.
//! The direct SIMD kernels cover the common f32 shapes; this path covers f64 (the gradient tests),
//! channel counts that are not a multiple of the vector width, and the stride-2 input gradient.

use super::Geometry;
use crate::ops::Real;

/// `col[p, (ky·k + kx)·Cin + ci] = x[oy·s + ky − pad, ox·s + kx − pad, ci]` (0 outside), p = oy·Wo + ox.
fn im2col<T: Real>(x: &[T], g: &Geometry, col: &mut [T]) {
    let zero = T::from_f64(0.0);
    let row = g.k * g.k * g.cin;
    for oy in 0..g.ho {
        for ox in 0..g.wo {
            let dst = &mut col[(oy * g.wo + ox) * row..][..row];
            for ky in 0..g.k {
                for kx in 0..g.k {
                    let d = &mut dst[(ky * g.k + kx) * g.cin..][..g.cin];
                    match g.input_pixel(oy, ox, ky, kx) {
                        Some((iy, ix)) => d.copy_from_slice(&x[(iy * g.w + ix) * g.cin..][..g.cin]),
                        None => d.fill(zero),
                    }
                }
            }
        }
    }
}

/// The adjoint of [`im2col`]: adds every column entry back onto its input pixel.
fn col2im<T: Real>(col: &[T], g: &Geometry, dx: &mut [T]) {
    let row = g.k * g.k * g.cin;
    for oy in 0..g.ho {
        for ox in 0..g.wo {
            let src = &col[(oy * g.wo + ox) * row..][..row];
            for ky in 0..g.k {
                for kx in 0..g.k {
                    if let Some((iy, ix)) = g.input_pixel(oy, ox, ky, kx) {
                        let d = &mut dx[(iy * g.w + ix) * g.cin..][..g.cin];
                        for (d, &s) in d.iter_mut().zip(&src[(ky * g.k + kx) * g.cin..][..g.cin]) {
                            *d += s;
                        }
                    }
                }
            }
        }
    }
}

/// A matrix operand given by its row and column strides, so transposes cost nothing.
struct Operand<'a, T> {
    data: &'a [T],
    row_stride: usize,
    col_stride: usize,
}

/// Row-major `dst[m×n] (+)= A[m×k]·B[k×n]`, single-threaded (images run in parallel instead).
fn matmul<T: Real>(
    (m, n, k): (usize, usize, usize),
    dst: &mut [T],
    a: Operand<'_, T>,
    b: Operand<'_, T>,
    accumulate: bool,
) {
    let reach = |o: &Operand<'_, T>, rows: usize, cols: usize| {
        rows == 0
            || cols == 0
            || (rows - 1) * o.row_stride + (cols - 1) * o.col_stride < o.data.len()
    };
    // Every caller derives the sizes from one validated `Geometry`; a mismatch is a bug here.
    if dst.len() < m * n || !reach(&a, m, k) || !reach(&b, k, n) {
        log::error!("conv matmul: operand sizes do not match ({m}×{n}×{k})");
        return;
    }
    let one = T::from_f64(1.0);
    // SAFETY: the checks above keep every index of dst, a and b inside their slices; dst does not
    // alias a or b (it is a distinct &mut).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.data.as_ptr(),
            a.col_stride as isize,
            a.row_stride as isize,
            b.data.as_ptr(),
            b.col_stride as isize,
            b.row_stride as isize,
            one,
            one,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// Reusable per-thread buffers for one image's columns.
pub(super) struct Scratch<T> {
    col: Vec<T>,
}

impl<T: Real> Scratch<T> {
    pub(super) fn new(g: &Geometry) -> Self {
        Self {
            col: vec![T::from_f64(0.0); g.ho * g.wo * g.k * g.k * g.cin],
        }
    }
}

/// One image's output `[Ho, Wo, Cout]` from its input `[H, W, Cin]` and the HWIO weights.
pub(super) fn forward_image<T: Real>(
    x: &[T],
    hwio: &[T],
    g: &Geometry,
    out: &mut [T],
    scratch: &mut Scratch<T>,
) {
    let kk = g.k * g.k * g.cin;
    im2col(x, g, &mut scratch.col);
    matmul(
        (g.ho * g.wo, g.cout, kk),
        out,
        Operand {
            data: &scratch.col,
            row_stride: kk,
            col_stride: 1,
        },
        Operand {
            data: hwio,
            row_stride: g.cout,
            col_stride: 1,
        },
        false,
    );
}

/// Adds one image's weight gradient `colᵀ·dY` onto `dw_hwio` `[k·k·Cin, Cout]`.
pub(super) fn weight_grad_image<T: Real>(
    x: &[T],
    dy: &[T],
    g: &Geometry,
    dw_hwio: &mut [T],
    scratch: &mut Scratch<T>,
) {
    let kk = g.k * g.k * g.cin;
    im2col(x, g, &mut scratch.col);
    matmul(
        (kk, g.cout, g.ho * g.wo),
        dw_hwio,
        Operand {
            data: &scratch.col,
            row_stride: 1,
            col_stride: kk,
        },
        Operand {
            data: dy,
            row_stride: g.cout,
            col_stride: 1,
        },
        true,
    );
}

/// One image's input gradient: the columns `dY·Wᵀ` folded back onto the pixels they came from.
pub(super) fn input_grad_image<T: Real>(
    dy: &[T],
    hwio: &[T],
    g: &Geometry,
    dx: &mut [T],
    scratch: &mut Scratch<T>,
) {
    let kk = g.k * g.k * g.cin;
    matmul(
        (g.ho * g.wo, kk, g.cout),
        &mut scratch.col,
        Operand {
            data: dy,
            row_stride: g.cout,
            col_stride: 1,
        },
        Operand {
            data: hwio,
            row_stride: 1,
            col_stride: g.cout,
        },
        false,
    );
    dx.fill(T::from_f64(0.0));
    col2im(&scratch.col, g, dx);
}
