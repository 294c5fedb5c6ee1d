//! Batch norm over `[B, C, …]` fused with an optional ReLU: training mode (batch statistics, handed
//! back for the running-statistics update) and eval mode, with a one-pass backward; output contiguous.

use std::sync::{Arc, Mutex};

use candle_core::{CpuStorage, Layout, Result, Shape, Tensor, Var};
use rayon::prelude::*;

use super::profile::{Phase, record};
use super::{Real, contiguous_slice, with_slice};

/// Per-channel batch mean and biased variance of one training-mode forward pass.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BatchNormStats {
    pub mean: Vec<f64>,
    pub var: Vec<f64>,
    /// Values per channel (B·H·W), for the unbiased running variance.
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

/// Training-mode batch norm (+ ReLU) with batch statistics; returns the output and the statistics.
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

/// Eval-mode batch norm (+ ReLU) with the running statistics.
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

/// Batch, channels and values per (image, channel) of a `[B, C, …]` shape.
fn split_dims(shape: &Shape) -> Result<(usize, usize, usize)> {
    let dims = shape.dims();
    if dims.len() < 2 {
        candle_core::bail!("batch norm needs [B, C, …], got {dims:?}");
    }
    Ok((dims[0], dims[1], dims[2..].iter().product()))
}

const LANES: usize = 16;

/// Σ(x − shift) and Σ(x − shift)², accumulated in T over 16 lanes (so the loop vectorises) and
/// returned in f64; the shift (a value of the same channel) keeps the one-pass variance accurate.
fn sum_and_squares<T: Real>(xs: &[T], shift: T) -> (f64, f64) {
    let zero = T::from_f64(0.0);
    let mut sum = [zero; LANES];
    let mut squares = [zero; LANES];
    let chunks = xs.chunks_exact(LANES);
    let rest = chunks.remainder();
    for chunk in chunks {
        for lane in 0..LANES {
            let v = chunk[lane] - shift;
            sum[lane] += v;
            squares[lane] += v * v;
        }
    }
    let (mut s, mut q) = (0f64, 0f64);
    for lane in 0..LANES {
        s += sum[lane].to_f64();
        q += squares[lane].to_f64();
    }
    for &v in rest {
        let v = (v - shift).to_f64();
        s += v;
        q += v * v;
    }
    (s, q)
}

/// Σg and Σg·(x − mean) where g = dy on the active side of the ReLU (x·sa + sb > 0).
fn masked_sums<T: Real>(x: &[T], dy: &[T], (sa, sb): (T, T), mean: T) -> (f64, f64) {
    let zero = T::from_f64(0.0);
    let mut sg = [zero; LANES];
    let mut sgx = [zero; LANES];
    let xc = x.chunks_exact(LANES);
    let dc = dy.chunks_exact(LANES);
    let (xr, dr) = (xc.remainder(), dc.remainder());
    for (xs, ds) in xc.zip(dc) {
        for lane in 0..LANES {
            let g = if xs[lane] * sa + sb > zero {
                ds[lane]
            } else {
                zero
            };
            sg[lane] += g;
            sgx[lane] += g * (xs[lane] - mean);
        }
    }
    let (mut s, mut q) = (0f64, 0f64);
    for lane in 0..LANES {
        s += sg[lane].to_f64();
        q += sgx[lane].to_f64();
    }
    for (&xv, &d) in xr.iter().zip(dr) {
        if xv * sa + sb > zero {
            s += d.to_f64();
            q += (d * (xv - mean)).to_f64();
        }
    }
    (s, q)
}

/// Rayon splits of at least this many values keep per-task overhead small on 8×8 maps.
fn min_chunks(inner: usize) -> usize {
    (4096 / inner.max(1)).max(1)
}

fn forward<T: Real>(
    x: &[T],
    gamma: &[T],
    beta: &[T],
    (batch, channels, inner): (usize, usize, usize),
    eps: f64,
    relu: bool,
    fixed: Option<&BatchNormStats>,
) -> (Vec<T>, BatchNormStats) {
    let count = batch * inner;
    let stats = match fixed {
        Some(stats) => stats.clone(),
        None => {
            let moments: Vec<(f64, f64)> = (0..channels)
                .into_par_iter()
                .map(|ch| {
                    let (mut s, mut q) = (0.0, 0.0);
                    let shift = x.get(ch * inner).copied().unwrap_or(T::from_f64(0.0));
                    for b in 0..batch {
                        let (bs, bq) =
                            sum_and_squares(&x[(b * channels + ch) * inner..][..inner], shift);
                        s += bs;
                        q += bq;
                    }
                    let n = count.max(1) as f64;
                    let shifted_mean = s / n;
                    (
                        shift.to_f64() + shifted_mean,
                        (q / n - shifted_mean * shifted_mean).max(0.0),
                    )
                })
                .collect();
            BatchNormStats {
                mean: moments.iter().map(|m| m.0).collect(),
                var: moments.iter().map(|m| m.1).collect(),
                count,
            }
        }
    };
    let (scale, shift) = affine(gamma, beta, &stats, eps);
    let zero = T::from_f64(0.0);
    let mut out = vec![zero; x.len()];
    out.par_chunks_mut(inner)
        .zip(x.par_chunks(inner))
        .enumerate()
        .with_min_len(min_chunks(inner))
        .for_each(|(index, (out, x))| {
            let (a, b) = (scale[index % channels], shift[index % channels]);
            if relu {
                for (o, &v) in out.iter_mut().zip(x) {
                    let y = v * a + b;
                    *o = if y > zero { y } else { zero };
                }
            } else {
                for (o, &v) in out.iter_mut().zip(x) {
                    *o = v * a + b;
                }
            }
        });
    (out, stats)
}

/// Per channel `y = x·scale + shift`; the backward pass recomputes the ReLU mask with the very same
/// expression, bit for bit, instead of reading the output back.
fn affine<T: Real>(gamma: &[T], beta: &[T], stats: &BatchNormStats, eps: f64) -> (Vec<T>, Vec<T>) {
    (0..gamma.len())
        .map(|ch| {
            let a = gamma[ch].to_f64() / (stats.var[ch] + eps).sqrt();
            (
                T::from_f64(a),
                T::from_f64(beta[ch].to_f64() - stats.mean[ch] * a),
            )
        })
        .unzip()
}

struct Gradients<T> {
    dx: Vec<T>,
    dgamma: Vec<T>,
    dbeta: Vec<T>,
}

#[allow(clippy::too_many_arguments)]
fn backward<T: Real>(
    x: &[T],
    dy: &[T],
    gamma: &[T],
    beta: &[T],
    stats: &BatchNormStats,
    (batch, channels, inner): (usize, usize, usize),
    eps: f64,
    relu: bool,
    batch_statistics: bool,
) -> Gradients<T> {
    let zero = T::from_f64(0.0);
    let (scale, shift) = affine(gamma, beta, stats, eps);
    // Without ReLU every value is active: 0·x + 1 > 0.
    let mask: Vec<(T, T)> = (0..channels)
        .map(|ch| {
            if relu {
                (scale[ch], shift[ch])
            } else {
                (zero, T::from_f64(1.0))
            }
        })
        .collect();
    // Per channel: Σg and Σg·(x − mean), where g is dy masked by the ReLU.
    let sums: Vec<(f64, f64)> = (0..channels)
        .into_par_iter()
        .map(|ch| {
            let mean = T::from_f64(stats.mean[ch]);
            let (mut sum_g, mut sum_gx) = (0.0, 0.0);
            for b in 0..batch {
                let start = (b * channels + ch) * inner;
                let (s, q) = masked_sums(
                    &x[start..start + inner],
                    &dy[start..start + inner],
                    mask[ch],
                    mean,
                );
                sum_g += s;
                sum_gx += q;
            }
            (sum_g, sum_gx)
        })
        .collect();
    let n = (batch * inner).max(1) as f64;
    let mut dgamma = Vec::with_capacity(channels);
    let mut dbeta = Vec::with_capacity(channels);
    // dx = a·g + b·x + c per channel.
    let mut coefficients = Vec::with_capacity(channels);
    for ch in 0..channels {
        let (sum_g, sum_g_centred) = sums[ch];
        let mean = stats.mean[ch];
        let invstd = 1.0 / (stats.var[ch] + eps).sqrt();
        let sum_g_xhat = sum_g_centred * invstd;
        dgamma.push(T::from_f64(sum_g_xhat));
        dbeta.push(T::from_f64(sum_g));
        let a = gamma[ch].to_f64() * invstd;
        if batch_statistics {
            let k = a / n;
            let b = -k * sum_g_xhat * invstd;
            coefficients.push((
                T::from_f64(a),
                T::from_f64(b),
                T::from_f64(-k * sum_g - b * mean),
            ));
        } else {
            coefficients.push((T::from_f64(a), zero, zero));
        }
    }
    let mut dx = vec![zero; x.len()];
    dx.par_chunks_mut(inner)
        .enumerate()
        .with_min_len(min_chunks(inner))
        .for_each(|(index, dx)| {
            let ch = index % channels;
            let (a, b, c) = coefficients[ch];
            let (sa, sb) = mask[ch];
            let start = index * inner;
            let (x, dy) = (&x[start..start + inner], &dy[start..start + inner]);
            for ((d, &xv), &g) in dx.iter_mut().zip(x).zip(dy) {
                let g = if xv * sa + sb > zero { g } else { zero };
                *d = a * g + b * xv + c;
            }
        });
    Gradients { dx, dgamma, dbeta }
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
        dims: (usize, usize, usize),
    ) -> Result<Vec<T>> {
        if gamma.len() != dims.1 || beta.len() != dims.1 {
            candle_core::bail!(
                "batch norm: {} channels but γ has {} and β {}",
                dims.1,
                gamma.len(),
                beta.len()
            );
        }
        let fixed = match &self.statistics {
            Statistics::Fixed(stats) => Some(stats),
            Statistics::Batch(_) => None,
        };
        let (out, stats) = forward(x, gamma, beta, dims, self.eps, self.relu, fixed);
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
        let dims = split_dims(x.shape())?;
        let stats = self.fixed_or_batch()?;
        let batch_statistics = matches!(self.statistics, Statistics::Batch(_));
        let start = std::time::Instant::now();
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
                            dims,
                            self.eps,
                            self.relu,
                            batch_statistics,
                        ))
                    })
                })
            })
        })?;
        record(Phase::BatchNormBackward, start);
        let device = x.device();
        Ok((
            Some(Tensor::from_vec(grads.dx, x.shape(), device)?),
            Some(Tensor::from_vec(grads.dgamma, dims.1, device)?),
            Some(Tensor::from_vec(grads.dbeta, dims.1, device)?),
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
        let dims = split_dims(l1.shape())?;
        let start = std::time::Instant::now();
        let storage = match s1 {
            CpuStorage::F32(_) => CpuStorage::F32(self.forward_typed::<f32>(
                contiguous_slice(s1, l1)?,
                contiguous_slice(s2, l2)?,
                contiguous_slice(s3, l3)?,
                dims,
            )?),
            CpuStorage::F64(_) => CpuStorage::F64(self.forward_typed::<f64>(
                contiguous_slice(s1, l1)?,
                contiguous_slice(s2, l2)?,
                contiguous_slice(s3, l3)?,
                dims,
            )?),
            _ => candle_core::bail!("fast batch norm: f32 or f64 only"),
        };
        record(Phase::BatchNormForward, start);
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
