//! Layers with the reference implementation's initialisation: He-normal convolutions (fan-out),
//! PyTorch-default linear heads, and batch norm with PyTorch's defaults; on the CPU the convolution
//! and batch norm run on the fast ops of `crate::ops` with channels-last activations, elsewhere on
//! candle's own with channels-first ones.

use candle_core::{Result, Tensor};
use candle_nn::{
    BatchNorm, BatchNormConfig, Conv2d, Conv2dConfig, Init, Linear, Module, ModuleT, VarBuilder,
};

use crate::ops;

/// Where the activations keep their channel axis. The fast CPU ops work channels-last (`[B, H, W,
/// C]`) from the first convolution to the pooling, so no layer repacks its input; candle's own ops
/// (CUDA, Metal, and the stock reference path) work channels-first (`[B, C, H, W]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Channels {
    First,
    Last,
}

impl Channels {
    /// The layout a network uses for these input images.
    pub fn for_input(xs: &Tensor) -> Self {
        if ops::use_fast(xs) {
            Channels::Last
        } else {
            Channels::First
        }
    }

    /// Images `[B, C, H, W]` in this layout (one repack of the input for channels-last).
    pub fn from_channels_first(self, xs: &Tensor) -> Result<Tensor> {
        match self {
            Channels::First => Ok(xs.clone()),
            Channels::Last => xs.permute((0, 2, 3, 1))?.contiguous(),
        }
    }

    /// The (row, column) dimensions of a 4-D activation.
    pub fn spatial_dims(self) -> (usize, usize) {
        match self {
            Channels::First => (2, 3),
            Channels::Last => (1, 2),
        }
    }
}

/// A convolution without bias: the fast CPU op on channels-last activations, candle's otherwise.
pub struct Conv {
    inner: Conv2d,
}

impl Conv {
    pub fn forward(&self, xs: &Tensor, channels: Channels) -> Result<Tensor> {
        match channels {
            Channels::Last => {
                let config = self.inner.config();
                ops::conv2d(xs, self.inner.weight(), config.stride, config.padding)
            }
            Channels::First => self.inner.forward(xs),
        }
    }

    /// The weights, `[Cout, Cin, k, k]`.
    pub fn weight(&self) -> &Tensor {
        self.inner.weight()
    }

    pub fn stride(&self) -> usize {
        self.inner.config().stride
    }
}

/// Batch norm, optionally followed by a ReLU (fused on the CPU).
pub struct Norm {
    inner: BatchNorm,
}

impl Norm {
    pub fn forward_t(
        &self,
        xs: &Tensor,
        train: bool,
        relu: bool,
        channels: Channels,
    ) -> Result<Tensor> {
        if channels == Channels::Last {
            let (gamma, beta) = self.affine()?;
            let bn = &self.inner;
            return if train {
                let (out, stats) = ops::batch_norm_train(xs, gamma, beta, bn.eps(), relu)?;
                self.update_running_stats(&stats)?;
                Ok(out)
            } else {
                ops::batch_norm_eval(
                    xs,
                    gamma,
                    beta,
                    bn.running_mean(),
                    bn.running_var(),
                    bn.eps(),
                    relu,
                )
            };
        }
        let out = self.inner.forward_t(xs, train)?;
        if relu { out.relu() } else { Ok(out) }
    }

    /// The eval-mode parameters and running statistics, for a convolution to fold in.
    pub fn eval_parameters(&self) -> Result<ops::EvalBatchNorm<'_>> {
        let (gamma, beta) = self.affine()?;
        Ok(ops::EvalBatchNorm {
            gamma,
            beta,
            running_mean: self.inner.running_mean(),
            running_var: self.inner.running_var(),
            eps: self.inner.eps(),
        })
    }

    /// (γ, β).
    pub fn affine(&self) -> Result<(&Tensor, &Tensor)> {
        match self.inner.weight_and_bias() {
            Some(affine) => Ok(affine),
            None => candle_core::bail!("channels-last batch norm needs an affine layer"),
        }
    }

    pub fn eps(&self) -> f64 {
        self.inner.eps()
    }

    /// Fold one training batch's statistics into the running ones.
    pub fn update_running_stats(&self, stats: &ops::BatchNormStats) -> Result<()> {
        let bn = &self.inner;
        ops::batch_norm::update_running_stats(
            bn.running_mean(),
            bn.running_var(),
            stats,
            bn.momentum(),
        )
    }
}

/// 3×3 (or k×k) convolution without bias, weights ~ N(0, √(2 / (k·k·out))) as the reference's CIFAR ResNet.
pub fn conv(
    in_channels: usize,
    out_channels: usize,
    kernel: usize,
    stride: usize,
    vb: VarBuilder,
) -> Result<Conv> {
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
    Ok(Conv {
        inner: Conv2d::new(weight, None, config),
    })
}

/// Batch norm with PyTorch's defaults (eps 1e-5, momentum 0.1, γ = 1, β = 0).
pub fn batch_norm(channels: usize, vb: VarBuilder) -> Result<Norm> {
    let config = BatchNormConfig {
        eps: 1e-5,
        remove_mean: true,
        affine: true,
        momentum: 0.1,
    };
    Ok(Norm {
        inner: candle_nn::batch_norm(channels, config, vb)?,
    })
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

/// Global average pooling to `[B, C]`: the fast op on channels-last CPU activations, candle's
/// `mean` otherwise.
pub fn global_average_pool(xs: &Tensor, channels: Channels) -> Result<Tensor> {
    if channels == Channels::Last && ops::use_fast(xs) {
        return ops::global_average_pool(xs);
    }
    let (rows, cols) = channels.spatial_dims();
    xs.mean((rows, cols))
}

/// How 2×2 max pooling treats an odd edge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pooling {
    /// Keep it (⌈H/2⌉ rows): zero padding after a ReLU never changes a maximum.
    Ceil,
    /// Drop it (⌊H/2⌋ rows), as PyTorch's `MaxPool2d(2)`.
    Floor,
}

/// 2×2 max pooling with stride 2. Built from reshapes and max reductions because candle 0.11's
/// `max_pool2d` backward scales gradients by 1/4 (it multiplies by the window's count of maxima
/// instead of dividing), which the finite-difference test catches.
pub fn max_pool_2x2(xs: &Tensor, channels: Channels, pooling: Pooling) -> Result<Tensor> {
    let (rows, cols) = channels.spatial_dims();
    let (h, w) = (xs.dim(rows)?, xs.dim(cols)?);
    let xs = match pooling {
        Pooling::Ceil => xs
            .pad_with_zeros(rows, 0, h % 2)?
            .pad_with_zeros(cols, 0, w % 2)?,
        Pooling::Floor => xs.narrow(rows, 0, h - h % 2)?.narrow(cols, 0, w - w % 2)?,
    };
    let (b, d1, d2, d3) = xs.dims4()?;
    match channels {
        Channels::First => xs.reshape((b, d1, d2 / 2, 2, d3 / 2, 2))?.max(5)?.max(3),
        Channels::Last => xs.reshape((b, d1 / 2, 2, d2 / 2, 2, d3))?.max(4)?.max(2),
    }
}
