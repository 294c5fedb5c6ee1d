//! 2-D convolution without bias (square kernels, any stride and padding): forward as one GEMM per
//! image over its im2col, backward in one pass per image giving both the weight gradient
//! (dY·colᵀ, summed per thread) and the input gradient (Wᵀ·dY, folded back by col2im).
//! Images run in parallel on rayon; each GEMM is single-threaded so no pass waits on another.

use candle_core::{CpuStorage, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::profile::{Phase, add_conv_flops, record};
use super::{Real, contiguous_slice, with_slice};

/// Convolution of `x` `[B, Cin, H, W]` with `weight` `[Cout, Cin, k, k]`.
pub fn conv2d(x: &Tensor, weight: &Tensor, stride: usize, padding: usize) -> Result<Tensor> {
    x.contiguous()?
        .apply_op2(&weight.contiguous()?, Conv { stride, padding })
}

struct Conv {
    stride: usize,
    padding: usize,
}

#[derive(Clone, Copy, Debug)]
struct Geometry {
    batch: usize,
    cin: usize,
    h: usize,
    w: usize,
    cout: usize,
    k: usize,
    stride: usize,
    pad: usize,
    ho: usize,
    wo: usize,
}

impl Geometry {
    fn new(x: &Shape, weight: &Shape, stride: usize, pad: usize) -> Result<Self> {
        let (batch, cin, h, w) = x.dims4()?;
        let (cout, wcin, k, k2) = weight.dims4()?;
        if wcin != cin || k != k2 || stride == 0 || h + 2 * pad < k || w + 2 * pad < k {
            candle_core::bail!(
                "conv2d: input {x:?} and weight {weight:?} (stride {stride}, padding {pad}) do not fit"
            );
        }
        Ok(Self {
            batch,
            cin,
            h,
            w,
            cout,
            k,
            stride,
            pad,
            ho: (h + 2 * pad - k) / stride + 1,
            wo: (w + 2 * pad - k) / stride + 1,
        })
    }

    /// Rows of the im2col matrix (Cin·k·k) and its columns (Ho·Wo).
    fn macs(&self) -> u64 {
        (self.batch * self.cout * self.cin * self.k * self.k * self.ho * self.wo) as u64
    }

    fn col_dims(&self) -> (usize, usize) {
        (self.cin * self.k * self.k, self.ho * self.wo)
    }

    /// Output columns `ox` whose input column `ox·s + kx − pad` lies inside the image.
    fn valid_cols(&self, kx: usize) -> (usize, usize) {
        let (s, pad) = (self.stride, self.pad);
        let lo = if pad > kx { (pad - kx).div_ceil(s) } else { 0 };
        let hi = if self.w + pad > kx {
            (self.w + pad - kx).div_ceil(s).min(self.wo)
        } else {
            0
        };
        (lo, hi.max(lo))
    }

    /// Stride 1 with "same" padding: the input gradient is then a forward convolution of dY with
    /// the flipped, transposed kernel, which writes dX directly instead of scattering columns.
    fn transposed(&self) -> Option<Geometry> {
        let same = self.stride == 1 && self.k % 2 == 1 && self.pad == self.k / 2 && self.k > 1;
        same.then_some(Geometry {
            cin: self.cout,
            h: self.ho,
            w: self.wo,
            cout: self.cin,
            ho: self.h,
            wo: self.w,
            ..*self
        })
    }

    /// The 1×1, stride-1, unpadded case, whose im2col is the image itself.
    fn is_pointwise(&self) -> bool {
        self.k == 1 && self.stride == 1 && self.pad == 0
    }
}

/// `col[(ci·k + ky)·k + kx, oy·Wo + ox] = x[ci, oy·s + ky − pad, ox·s + kx − pad]` (0 outside).
fn im2col<T: Real>(x: &[T], g: &Geometry, col: &mut [T]) {
    let zero = T::from_f64(0.0);
    let hw = g.ho * g.wo;
    for ci in 0..g.cin {
        for ky in 0..g.k {
            for kx in 0..g.k {
                let row = ((ci * g.k + ky) * g.k + kx) * hw;
                let dst = &mut col[row..row + hw];
                let (lo, hi) = g.valid_cols(kx);
                for oy in 0..g.ho {
                    let d = &mut dst[oy * g.wo..(oy + 1) * g.wo];
                    let iy = oy * g.stride + ky;
                    if iy < g.pad || iy - g.pad >= g.h {
                        d.fill(zero);
                        continue;
                    }
                    let src = &x[(ci * g.h + iy - g.pad) * g.w..][..g.w];
                    d[..lo].fill(zero);
                    d[hi..].fill(zero);
                    if g.stride == 1 {
                        d[lo..hi].copy_from_slice(&src[lo + kx - g.pad..hi + kx - g.pad]);
                    } else {
                        for (ox, v) in d.iter_mut().enumerate().take(hi).skip(lo) {
                            *v = src[ox * g.stride + kx - g.pad];
                        }
                    }
                }
            }
        }
    }
}

/// The adjoint of [`im2col`]: adds every column entry back onto its input pixel.
fn col2im<T: Real>(col: &[T], g: &Geometry, dx: &mut [T]) {
    let hw = g.ho * g.wo;
    for ci in 0..g.cin {
        for ky in 0..g.k {
            for kx in 0..g.k {
                let row = ((ci * g.k + ky) * g.k + kx) * hw;
                let src_rows = &col[row..row + hw];
                let (lo, hi) = g.valid_cols(kx);
                for oy in 0..g.ho {
                    let iy = oy * g.stride + ky;
                    if iy < g.pad || iy - g.pad >= g.h {
                        continue;
                    }
                    let s = &src_rows[oy * g.wo..(oy + 1) * g.wo];
                    let d = &mut dx[(ci * g.h + iy - g.pad) * g.w..][..g.w];
                    if g.stride == 1 {
                        for (dv, &sv) in d[lo + kx - g.pad..hi + kx - g.pad]
                            .iter_mut()
                            .zip(&s[lo..hi])
                        {
                            *dv += sv;
                        }
                    } else {
                        for (ox, &sv) in s.iter().enumerate().take(hi).skip(lo) {
                            d[ox * g.stride + kx - g.pad] += sv;
                        }
                    }
                }
            }
        }
    }
}

/// A row-major `m×n` destination `dst (+)= A·B`, where A (m×k) and B (k×n) are given by their row
/// and column strides, so transposes cost nothing.
struct Operand<'a, T> {
    data: &'a [T],
    row_stride: usize,
    col_stride: usize,
}

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

/// `W̃[ci, (co·k + ky)·k + kx] = W[co, ci, k−1−ky, k−1−kx]`: the kernel of the transposed convolution.
fn flipped_kernel<T: Real>(weight: &[T], g: &Geometry) -> Vec<T> {
    let k = g.k;
    let mut out = Vec::with_capacity(weight.len());
    for ci in 0..g.cin {
        for co in 0..g.cout {
            for ky in 0..k {
                for kx in 0..k {
                    out.push(weight[((co * g.cin + ci) * k + (k - 1 - ky)) * k + (k - 1 - kx)]);
                }
            }
        }
    }
    out
}

fn forward<T: Real>(x: &[T], weight: &[T], g: &Geometry) -> Vec<T> {
    let (kk, hw) = g.col_dims();
    let image = g.cin * g.h * g.w;
    let mut out = vec![T::from_f64(0.0); g.batch * g.cout * hw];
    out.par_chunks_mut(g.cout * hw).enumerate().for_each_init(
        || vec![T::from_f64(0.0); if g.is_pointwise() { 0 } else { kk * hw }],
        |col, (b, out)| {
            let x = &x[b * image..][..image];
            let col: &[T] = if g.is_pointwise() {
                x
            } else {
                im2col(x, g, col);
                col
            };
            matmul(
                (g.cout, hw, kk),
                out,
                Operand {
                    data: weight,
                    row_stride: kk,
                    col_stride: 1,
                },
                Operand {
                    data: col,
                    row_stride: hw,
                    col_stride: 1,
                },
                false,
            );
        },
    );
    out
}

/// Both gradients in one pass over the images: (dx, dweight).
fn backward<T: Real>(x: &[T], weight: &[T], dy: &[T], g: &Geometry) -> (Vec<T>, Vec<T>) {
    let zero = T::from_f64(0.0);
    let (kk, hw) = g.col_dims();
    let image = g.cin * g.h * g.w;
    let out_image = g.cout * hw;
    let mut dx = vec![zero; x.len()];
    // Fixed groups of images, each with its own partial dW, summed in order afterwards: the result
    // does not depend on how rayon schedules the groups, so training runs are reproducible.
    let group = g.batch.div_ceil(32).max(1);
    let transposed = g.transposed().map(|t| (t, flipped_kernel(weight, g)));
    let partials: Vec<Vec<T>> = dx
        .par_chunks_mut(group * image)
        .enumerate()
        .map(|(index, dx_group)| {
            let mut dw = vec![zero; g.cout * kk];
            let mut col = vec![zero; if g.is_pointwise() { 0 } else { kk * hw }];
            // Columns of dY for the transposed convolution, or of dX for col2im.
            let mut dcol = vec![
                zero;
                match (&transposed, g.is_pointwise()) {
                    (Some((t, _)), _) => t.col_dims().0 * t.col_dims().1,
                    (None, true) => 0,
                    (None, false) => kk * hw,
                }
            ];
            for (offset, dx) in dx_group.chunks_mut(image).enumerate() {
                let b = index * group + offset;
                let x = &x[b * image..][..image];
                let dy = &dy[b * out_image..][..out_image];
                let cols: &[T] = if g.is_pointwise() {
                    x
                } else {
                    im2col(x, g, &mut col);
                    &col
                };
                // dW[cout, kk] += dY[cout, hw] · colᵀ[hw, kk]
                matmul(
                    (g.cout, kk, hw),
                    &mut dw,
                    Operand {
                        data: dy,
                        row_stride: hw,
                        col_stride: 1,
                    },
                    Operand {
                        data: cols,
                        row_stride: 1,
                        col_stride: hw,
                    },
                    true,
                );
                let dyo = Operand {
                    data: dy,
                    row_stride: hw,
                    col_stride: 1,
                };
                if let Some((t, flipped)) = &transposed {
                    // dX[cin, HW] = W̃[cin, cout·k·k] · im2col(dY)
                    let (tk, thw) = t.col_dims();
                    im2col(dy, t, &mut dcol);
                    matmul(
                        (g.cin, thw, tk),
                        dx,
                        Operand {
                            data: flipped,
                            row_stride: tk,
                            col_stride: 1,
                        },
                        Operand {
                            data: &dcol,
                            row_stride: thw,
                            col_stride: 1,
                        },
                        false,
                    );
                    continue;
                }
                // dcol[kk, hw] = Wᵀ[kk, cout] · dY[cout, hw]
                let wt = Operand {
                    data: weight,
                    row_stride: 1,
                    col_stride: kk,
                };
                if g.is_pointwise() {
                    matmul((kk, hw, g.cout), dx, wt, dyo, false);
                } else {
                    matmul((kk, hw, g.cout), &mut dcol, wt, dyo, false);
                    col2im(&dcol, g, dx);
                }
            }
            dw
        })
        .collect();
    let mut dw = vec![zero; g.cout * kk];
    for partial in &partials {
        for (a, &b) in dw.iter_mut().zip(partial) {
            *a += b;
        }
    }
    (dx, dw)
}

impl Conv {
    fn backward_typed<T: Real>(
        &self,
        x: &Tensor,
        weight: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let g = Geometry::new(x.shape(), weight.shape(), self.stride, self.padding)?;
        let start = std::time::Instant::now();
        let (dx, dw) = with_slice::<T, _>(x, |x| {
            with_slice::<T, _>(weight, |w| {
                with_slice::<T, _>(grad, |dy| Ok(backward(x, w, dy, &g)))
            })
        })?;
        record(Phase::ConvBackward, start);
        add_conv_flops(4 * g.macs());
        Ok((
            Some(Tensor::from_vec(dx, x.shape(), x.device())?),
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
        let start = std::time::Instant::now();
        let storage = match (s1, s2) {
            (CpuStorage::F32(_), CpuStorage::F32(_)) => CpuStorage::F32(forward::<f32>(
                contiguous_slice(s1, l1)?,
                contiguous_slice(s2, l2)?,
                &g,
            )),
            (CpuStorage::F64(_), CpuStorage::F64(_)) => CpuStorage::F64(forward::<f64>(
                contiguous_slice(s1, l1)?,
                contiguous_slice(s2, l2)?,
                &g,
            )),
            _ => candle_core::bail!("fast conv2d: f32 or f64 inputs of one dtype"),
        };
        record(Phase::ConvForward, start);
        add_conv_flops(2 * g.macs());
        Ok((storage, Shape::from((g.batch, g.cout, g.ho, g.wo))))
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
