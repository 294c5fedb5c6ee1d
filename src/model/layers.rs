//! Layers with the reference implementation's initialisation: He-normal convolutions (fan-out),
//! PyTorch-default linear heads, and batch norm with PyTorch's defaults.

use candle_core::{Result, Tensor};
use candle_nn::{BatchNorm, BatchNormConfig, Conv2d, Conv2dConfig, Init, Linear, VarBuilder};

/// 3×3 (or k×k) convolution without bias, weights ~ N(0, √(2 / (k·k·out))) as the reference's CIFAR ResNet.
pub fn conv(
    in_channels: usize,
    out_channels: usize,
    kernel: usize,
    stride: usize,
    vb: VarBuilder,
) -> Result<Conv2d> {
    let stdev = (2.0 / (kernel * kernel * out_channels) as f64).sqrt();
    let weight = vb.get_with_hints(
        (out_channels, in_channels, kernel, kernel),
        "weight",
        Init::Randn { mean: 0.0, stdev },
    )?;
    let config = Conv2dConfig {
        padding: kernel / 2,
        stride,
        ..Default::default()
    };
    Ok(Conv2d::new(weight, None, config))
}

/// Batch norm with PyTorch's defaults (eps 1e-5, momentum 0.1, γ = 1, β = 0).
pub fn batch_norm(channels: usize, vb: VarBuilder) -> Result<BatchNorm> {
    let config = BatchNormConfig {
        eps: 1e-5,
        remove_mean: true,
        affine: true,
        momentum: 0.1,
    };
    candle_nn::batch_norm(channels, config, vb)
}

/// A linear head with PyTorch's default init: weight and bias ~ U(−1/√fan_in, 1/√fan_in).
pub fn linear(in_features: usize, out_features: usize, vb: VarBuilder) -> Result<Linear> {
    let bound = 1.0 / (in_features as f64).sqrt();
    let init = Init::Uniform {
        lo: -bound,
        up: bound,
    };
    let weight = vb.get_with_hints((out_features, in_features), "weight", init)?;
    let bias = vb.get_with_hints(out_features, "bias", init)?;
    Ok(Linear::new(weight, Some(bias)))
}

/// Global average pooling `[B, C, H, W]` → `[B, C]`.
pub fn global_average_pool(xs: &Tensor) -> Result<Tensor> {
    xs.mean((2, 3))
}
