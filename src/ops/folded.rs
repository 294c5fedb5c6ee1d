//! Evaluation on the fast ops with batch norm folded into the convolutions: forward only, with no
//! autograd graph.
//!
//! In eval mode batch norm is a fixed per-channel affine map, `y = x·s + t` with
//! `s = γ / √(running var + ε)` and `t = β − running mean · s`. Applied to a convolution's output it
//! equals the convolution with every output channel's weights scaled by `s`, plus a bias `t`; the
//! direct kernels add the bias and the ReLU as they store each value, so a convolution and its
//! batch norm are one pass over the activations instead of two. The results differ from the
//! unfolded ones by f32 rounding only (the test bounds it).
//!
//! The outputs are plain tensors made from the computed values, never results of a candle op, so
//! an evaluation records no graph however the parameters track gradients.

use candle_core::{DType, Result, Tensor};

use super::conv::{self, Geometry};
use super::residual;
use super::{Real, with_slice};

/// An eval-mode batch norm's parameters and running statistics, each `[C]`.
pub struct EvalBatchNorm<'a> {
    pub gamma: &'a Tensor,
    pub beta: &'a Tensor,
    pub running_mean: &'a Tensor,
    pub running_var: &'a Tensor,
    pub eps: f64,
}

/// The parameters of one residual block for [`residual_block_eval`].
pub struct EvalBlockParameters<'a> {
    pub conv1: &'a Tensor,
    pub bn1: EvalBatchNorm<'a>,
    pub conv2: &'a Tensor,
    pub bn2: EvalBatchNorm<'a>,
}

/// Eval-mode `bn(conv(x))`, then ReLU when `relu`, of channels-last `x` (`[B, H, W, Cin]`), with a
/// `[Cout, Cin, k, k]` weight, the given stride and padding k/2, as one folded convolution.
pub fn conv_batch_norm_eval(
    x: &Tensor,
    weight: &Tensor,
    bn: &EvalBatchNorm,
    stride: usize,
    relu: bool,
) -> Result<Tensor> {
    match x.dtype() {
        DType::F32 => conv_batch_norm_typed::<f32>(x, weight, bn, stride, relu),
        DType::F64 => conv_batch_norm_typed::<f64>(x, weight, bn, stride, relu),
        other => candle_core::bail!("folded evaluation: unsupported dtype {other:?}"),
    }
}

/// The eval-mode residual block: folded conv1 (stride 2 when `downsample`) + ReLU, folded conv2,
/// then the residual add + ReLU with the identity or option-A shortcut.
pub fn residual_block_eval(
    x: &Tensor,
    parameters: &EvalBlockParameters,
    downsample: bool,
) -> Result<Tensor> {
    match x.dtype() {
        DType::F32 => residual_block_typed::<f32>(x, parameters, downsample),
        DType::F64 => residual_block_typed::<f64>(x, parameters, downsample),
        other => candle_core::bail!("folded evaluation: unsupported dtype {other:?}"),
    }
}

/// A convolution with its batch norm folded in: scaled weights and a bias, in the input's dtype.
struct Folded<T> {
    weight: Vec<T>,
    bias: Vec<T>,
}

fn values_f64(t: &Tensor) -> Result<Vec<f64>> {
    t.to_dtype(DType::F64)?.flatten_all()?.to_vec1()
}

fn fold<T: Real>(weight: &Tensor, bn: &EvalBatchNorm) -> Result<Folded<T>> {
    let (cout, _, _, _) = weight.dims4()?;
    let (gamma, beta) = (values_f64(bn.gamma)?, values_f64(bn.beta)?);
    let (mean, var) = (values_f64(bn.running_mean)?, values_f64(bn.running_var)?);
    if [gamma.len(), beta.len(), mean.len(), var.len()] != [cout; 4] {
        candle_core::bail!("folded evaluation: batch norm of the wrong size for {cout} channels");
    }
    let scale: Vec<f64> = (0..cout)
        .map(|c| gamma[c] / (var[c] + bn.eps).sqrt())
        .collect();
    let weights = values_f64(weight)?;
    let per_channel = weights.len() / cout;
    let weight = weights
        .iter()
        .enumerate()
        .map(|(i, &w)| T::from_f64(w * scale[i / per_channel]))
        .collect();
    let bias = (0..cout)
        .map(|c| T::from_f64(beta[c] - mean[c] * scale[c]))
        .collect();
    Ok(Folded { weight, bias })
}

fn geometry(x: &Tensor, weight: &Tensor, stride: usize) -> Result<Geometry> {
    let k = weight.dim(2)?;
    Geometry::new(x.shape(), weight.shape(), stride, k / 2)
}

fn conv_batch_norm_typed<T: Real>(
    x: &Tensor,
    weight: &Tensor,
    bn: &EvalBatchNorm,
    stride: usize,
    relu: bool,
) -> Result<Tensor> {
    let g = geometry(x, weight, stride)?;
    let folded = fold::<T>(weight, bn)?;
    let out = with_slice::<T, _>(x, |x| {
        Ok(conv::forward_biased_values(
            x,
            &folded.weight,
            (&folded.bias, None),
            relu,
            &g,
        ))
    })?;
    Tensor::from_vec(out, g.output_shape(), x.device())
}

fn residual_block_typed<T: Real>(
    x: &Tensor,
    p: &EvalBlockParameters,
    downsample: bool,
) -> Result<Tensor> {
    let first = geometry(x, p.conv1, if downsample { 2 } else { 1 })?;
    let out_shape = first.output_shape();
    let second = Geometry::new(&out_shape, p.conv2.shape(), 1, p.conv2.dim(2)? / 2)?;
    let shortcut = residual::dims(&out_shape, x.shape(), downsample)?;
    let (folded1, folded2) = (fold::<T>(p.conv1, &p.bn1)?, fold::<T>(p.conv2, &p.bn2)?);
    let out = with_slice::<T, _>(x, |x| {
        let bias1 = (&folded1.bias[..], None);
        let hidden = conv::forward_biased_values(x, &folded1.weight, bias1, true, &first);
        if downsample {
            let bias2 = (&folded2.bias[..], None);
            let normed =
                conv::forward_biased_values(&hidden, &folded2.weight, bias2, false, &second);
            return Ok(residual::forward(&normed, None, x, shortcut, downsample));
        }
        // The identity shortcut is added, and the ReLU applied, as conv2 stores each value: one
        // pass over the output instead of two (the add was 8 % of an evaluation).
        let bias2 = (&folded2.bias[..], Some(x));
        Ok(conv::forward_biased_values(
            &hidden,
            &folded2.weight,
            bias2,
            true,
            &second,
        ))
    })?;
    Tensor::from_vec(out, out_shape, x.device())
}
