//! The end of a residual block, `relu(y + shortcut(x))`, in one pass: the shortcut is the identity
//! or option A (every second pixel, channels beyond x's count zero), never materialised.

use candle_core::{CpuStorage, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::profile::{Phase, record};
use super::{Real, contiguous_slice, with_slice};

struct AddRelu {
    downsample: bool,
}

/// `relu(y + x)`, or with `downsample`, `relu(y + pad_channels(x[:, :, ::2, ::2]))` (option A).
/// `y`: `[B, C, H', W']`; `x`: `[B, C, H', W']`, or `[B, C' ≤ C, H, W]` with H' = ⌈H/2⌉, W' = ⌈W/2⌉.
pub fn add_relu(y: &Tensor, x: &Tensor, downsample: bool) -> Result<Tensor> {
    y.contiguous()?
        .apply_op2(&x.contiguous()?, AddRelu { downsample })
}

/// Shapes of y and x as (batch, y channels, y rows, y cols, x channels, x rows, x cols).
type Dims = (usize, usize, usize, usize, usize, usize, usize);

fn dims(y: &Shape, x: &Shape, downsample: bool) -> Result<Dims> {
    let (b, c, h, w) = y.dims4()?;
    let (xb, xc, xh, xw) = x.dims4()?;
    let fits = if downsample {
        xb == b && xc <= c && xh.div_ceil(2) == h && xw.div_ceil(2) == w
    } else {
        (xb, xc, xh, xw) == (b, c, h, w)
    };
    if !fits {
        candle_core::bail!(
            "residual add: shapes {y:?} and {x:?} do not fit (downsample {downsample})"
        );
    }
    Ok((b, c, h, w, xc, xh, xw))
}

fn forward<T: Real>(y: &[T], x: &[T], d: Dims, downsample: bool) -> Vec<T> {
    let (_, c, h, w, xc, xh, xw) = d;
    let zero = T::from_f64(0.0);
    let relu = |v: T| if v > zero { v } else { zero };
    let mut out = vec![zero; y.len()];
    if !downsample {
        out.par_chunks_mut(4096)
            .zip(y.par_chunks(4096).zip(x.par_chunks(4096)))
            .for_each(|(o, (y, x))| {
                for ((o, &a), &b) in o.iter_mut().zip(y).zip(x) {
                    *o = relu(a + b);
                }
            });
        return out;
    }
    out.par_chunks_mut(h * w)
        .zip(y.par_chunks(h * w))
        .enumerate()
        .for_each(|(index, (o, y))| {
            let (b, ch) = (index / c, index % c);
            if ch >= xc {
                for (o, &a) in o.iter_mut().zip(y) {
                    *o = relu(a);
                }
                return;
            }
            let plane = &x[(b * xc + ch) * xh * xw..][..xh * xw];
            for i in 0..h {
                let row = &plane[2 * i * xw..][..xw];
                for j in 0..w {
                    o[i * w + j] = relu(y[i * w + j] + row[2 * j]);
                }
            }
        });
    out
}

/// (dy, dx); dx is left empty for the identity shortcut, whose gradient is dy.
fn backward<T: Real>(out: &[T], grad: &[T], d: Dims, downsample: bool) -> (Vec<T>, Vec<T>) {
    let (b, c, h, w, xc, xh, xw) = d;
    let zero = T::from_f64(0.0);
    let dy: Vec<T> = out
        .par_iter()
        .zip(grad.par_iter())
        .with_min_len(4096)
        .map(|(&o, &g)| if o > zero { g } else { zero })
        .collect();
    if !downsample {
        return (dy, Vec::new());
    }
    let mut dx = vec![zero; b * xc * xh * xw];
    dx.par_chunks_mut(xh * xw)
        .enumerate()
        .for_each(|(index, plane)| {
            let (bi, ch) = (index / xc, index % xc);
            let g = &dy[(bi * c + ch) * h * w..][..h * w];
            for i in 0..h {
                for j in 0..w {
                    plane[2 * i * xw + 2 * j] = g[i * w + j];
                }
            }
        });
    (dy, dx)
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
        let start = std::time::Instant::now();
        let (dy, dx) = with_slice::<T, _>(res, |out| {
            with_slice::<T, _>(grad, |grad| Ok(backward(out, grad, d, self.downsample)))
        })?;
        record(Phase::AddReluBackward, start);
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
        let start = std::time::Instant::now();
        let storage = match (s1, s2) {
            (CpuStorage::F32(_), CpuStorage::F32(_)) => CpuStorage::F32(forward::<f32>(
                contiguous_slice(s1, l1)?,
                contiguous_slice(s2, l2)?,
                d,
                self.downsample,
            )),
            (CpuStorage::F64(_), CpuStorage::F64(_)) => CpuStorage::F64(forward::<f64>(
                contiguous_slice(s1, l1)?,
                contiguous_slice(s2, l2)?,
                d,
                self.downsample,
            )),
            _ => candle_core::bail!("fast add-relu: f32 or f64 inputs of one dtype"),
        };
        record(Phase::AddReluForward, start);
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
