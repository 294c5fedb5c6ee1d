//! The CIFAR ResNet family (20/32/44/56/110) with option-A shortcuts, for any input size and channel count.

use candle_core::{IndexOp, Result, Tensor};
use candle_nn::VarBuilder;

use super::layers::{Channels, Conv, Norm, batch_norm, conv, global_average_pool};
use crate::ops;

const WIDTHS: [usize; 3] = [16, 32, 64];

/// Two 3×3 conv–BN pairs and a shortcut; option A on downsampling: subsample by 2, zero-pad channels.
struct BasicBlock {
    conv1: Conv,
    bn1: Norm,
    conv2: Conv,
    bn2: Norm,
    downsample: bool,
    extra_channels: usize,
}

impl BasicBlock {
    fn new(in_channels: usize, out_channels: usize, stride: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            conv1: conv(in_channels, out_channels, 3, stride, vb.pp("conv1"))?,
            bn1: batch_norm(out_channels, vb.pp("bn1"))?,
            conv2: conv(out_channels, out_channels, 3, 1, vb.pp("conv2"))?,
            bn2: batch_norm(out_channels, vb.pp("bn2"))?,
            downsample: stride != 1,
            extra_channels: out_channels - in_channels,
        })
    }

    fn forward_t(&self, xs: &Tensor, train: bool, channels: Channels) -> Result<Tensor> {
        if channels == Channels::Last {
            return if train {
                train_as_one_op(None, std::slice::from_ref(self), xs)
            } else {
                self.evaluate_folded(xs)
            };
        }
        let out = self
            .bn1
            .forward_t(&self.conv1.forward(xs, channels)?, train, true, channels)?;
        let out =
            self.bn2
                .forward_t(&self.conv2.forward(&out, channels)?, train, false, channels)?;
        if channels == Channels::Last {
            return ops::add_relu(&out, xs, self.downsample);
        }
        let shortcut = if self.downsample {
            subsample(xs)?.pad_with_zeros(1, 0, self.extra_channels)?
        } else {
            xs.clone()
        };
        (out + shortcut)?.relu()
    }
}

impl BasicBlock {
    /// The training-mode parameters for the fast ops, and the batch norms' ε.
    fn parameters(&self) -> Result<(ops::BlockParameters<'_>, f64)> {
        let parameters = ops::BlockParameters {
            conv1: self.conv1.weight(),
            bn1: self.bn1.affine()?,
            conv2: self.conv2.weight(),
            bn2: self.bn2.affine()?,
        };
        Ok((parameters, self.bn1.eps()))
    }

    /// The running statistics' updates the separate batch norms would have made.
    fn update_running_stats(&self, [stats1, stats2]: &[ops::BatchNormStats; 2]) -> Result<()> {
        self.bn1.update_running_stats(stats1)?;
        self.bn2.update_running_stats(stats2)
    }

    /// The eval-mode block on the fast ops with batch norm folded into the convolutions, recording
    /// no graph (see `ops::folded`).
    fn evaluate_folded(&self, xs: &Tensor) -> Result<Tensor> {
        let parameters = ops::EvalBlockParameters {
            conv1: self.conv1.weight(),
            bn1: self.bn1.eval_parameters()?,
            conv2: self.conv2.weight(),
            bn2: self.bn2.eval_parameters()?,
        };
        ops::residual_block_eval(xs, &parameters, self.downsample)
    }
}

/// Training-mode `blocks` in turn on the fast ops as a single autograd node (see `ops::block`),
/// after the `stem` convolution and batch norm + ReLU when given, then the running statistics'
/// updates the separate batch norms would have made.
fn train_as_one_op(
    stem: Option<(&Conv, &Norm)>,
    blocks: &[BasicBlock],
    xs: &Tensor,
) -> Result<Tensor> {
    let parameters: Vec<_> = blocks
        .iter()
        .map(BasicBlock::parameters)
        .collect::<Result<_>>()?;
    let eps = match (stem, parameters.first()) {
        (Some((_, bn)), _) => bn.eps(),
        (None, Some(&(_, eps))) => eps,
        (None, None) => return Ok(xs.clone()),
    };
    let same_eps = |block: &BasicBlock| block.bn1.eps() == eps && block.bn2.eps() == eps;
    if !blocks.iter().all(same_eps) {
        candle_core::bail!("residual blocks as one op need all their batch norms' ε equal");
    }
    let stack: Vec<_> = parameters
        .iter()
        .zip(blocks)
        .map(|((parameters, _), block)| (parameters, block.downsample))
        .collect();
    let (out, stats) = match stem {
        Some((conv, bn)) => {
            let stem = ops::StemParameters {
                conv: conv.weight(),
                stride: conv.stride(),
                bn: bn.affine()?,
            };
            let (out, stem_stats, stats) = ops::resnet_trunk_train(xs, &stem, &stack, eps)?;
            bn.update_running_stats(&stem_stats)?;
            (out, stats)
        }
        None => ops::residual_blocks_train(xs, &stack, eps)?,
    };
    for (block, stats) in blocks.iter().zip(&stats) {
        block.update_running_stats(stats)?;
    }
    Ok(out)
}

/// Every second pixel from the first (`AvgPool2d(kernel_size=1, stride=2)`), ceil(H/2) × ceil(W/2),
/// the same size as a stride-2, padding-1, 3×3 convolution's output.
fn subsample(xs: &Tensor) -> Result<Tensor> {
    let (_, _, h, w) = xs.dims4()?;
    let xs = xs
        .pad_with_zeros(2, 0, h % 2)?
        .pad_with_zeros(3, 0, w % 2)?;
    let (b, c, h, w) = xs.dims4()?;
    xs.reshape((b, c, h / 2, 2, w / 2, 2))?
        .i((.., .., .., 0, .., 0))
}

/// The CIFAR ResNet of depth 6n + 2: a 16-channel stem, three stages of n blocks (16, 32, 64 channels).
pub struct CifarResNet {
    stem: Conv,
    stem_bn: Norm,
    blocks: Vec<BasicBlock>,
}

impl CifarResNet {
    /// `depth` must be 6n + 2 (20, 32, 44, 56, 110).
    pub fn new(depth: usize, in_channels: usize, vb: VarBuilder) -> Result<Self> {
        if depth < 8 || !(depth - 2).is_multiple_of(6) {
            candle_core::bail!("CIFAR ResNet depth must be 6n + 2, got {depth}");
        }
        let per_stage = (depth - 2) / 6;
        let mut blocks = Vec::with_capacity(3 * per_stage);
        let mut channels = WIDTHS[0];
        for (stage, &width) in WIDTHS.iter().enumerate() {
            for index in 0..per_stage {
                let stride = if stage > 0 && index == 0 { 2 } else { 1 };
                let vb = vb.pp(format!("layer{}", stage + 1)).pp(index);
                blocks.push(BasicBlock::new(channels, width, stride, vb)?);
                channels = width;
            }
        }
        Ok(Self {
            stem: conv(in_channels, WIDTHS[0], 3, 1, vb.pp("conv1"))?,
            stem_bn: batch_norm(WIDTHS[0], vb.pp("bn1"))?,
            blocks,
        })
    }

    pub fn feature_size(&self) -> usize {
        WIDTHS[2]
    }

    /// Multiply-adds of the convolutions of the depth-`depth` network for one
    /// `in_channels`×`height`×`width` image (the option-A shortcuts cost none).
    pub fn multiply_adds(depth: usize, in_channels: usize, height: usize, width: usize) -> u64 {
        let per_stage = depth.saturating_sub(2) / 6;
        let (mut h, mut w) = (height, width);
        let mut total = (h * w * WIDTHS[0] * in_channels * 9) as u64;
        let mut channels = WIDTHS[0];
        for (stage, &out) in WIDTHS.iter().enumerate() {
            for index in 0..per_stage {
                if stage > 0 && index == 0 {
                    // A stride-2, padding-1 3×3 convolution keeps ceil(H/2) rows.
                    (h, w) = (h.div_ceil(2), w.div_ceil(2));
                }
                total += (h * w * out * channels * 9 + h * w * out * out * 9) as u64;
                channels = out;
            }
        }
        total
    }

    /// Features `[B, 64]` of images in the `channels` layout.
    pub fn forward_t(&self, xs: &Tensor, train: bool, channels: Channels) -> Result<Tensor> {
        if channels == Channels::Last && train {
            // The stem and all blocks as one autograd node: between separate nodes candle zeroes
            // and adds each one's input gradient (see `ops::block`).
            let stem = (&self.stem, &self.stem_bn);
            let xs = train_as_one_op(Some(stem), &self.blocks, xs)?;
            return global_average_pool(&xs, channels);
        }
        let mut xs = if channels == Channels::Last {
            let bn = self.stem_bn.eval_parameters()?;
            ops::conv_batch_norm_eval(xs, self.stem.weight(), &bn, self.stem.stride(), true)?
        } else {
            self.stem_bn
                .forward_t(&self.stem.forward(xs, channels)?, train, true, channels)?
        };
        for block in &self.blocks {
            xs = block.forward_t(&xs, train, channels)?;
        }
        global_average_pool(&xs, channels)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use candle_nn::VarMap;

    #[test]
    fn resnet32_has_the_reference_parameter_count() -> Result<()> {
        let map = VarMap::new();
        let vb = VarBuilder::from_varmap(&map, DType::F32, &Device::Cpu);
        CifarResNet::new(32, 3, vb)?;
        let trainable: usize = map
            .data()
            .lock()
            .expect("lock")
            .iter()
            .filter(|(name, _)| !name.contains("running"))
            .map(|(_, var)| var.elem_count())
            .sum();
        assert_eq!(trainable, 463_504);
        Ok(())
    }

    #[test]
    fn subsample_takes_every_second_pixel_and_rounds_up() -> Result<()> {
        let xs = Tensor::arange(0f32, 25., &Device::Cpu)?.reshape((1, 1, 5, 5))?;
        let sub: Vec<f32> = subsample(&xs)?.flatten_all()?.to_vec1()?;
        assert_eq!(sub, [0., 2., 4., 10., 12., 14., 20., 22., 24.]);
        Ok(())
    }

    #[test]
    fn works_on_grey_28_pixel_images() -> Result<()> {
        let map = VarMap::new();
        let vb = VarBuilder::from_varmap(&map, DType::F32, &Device::Cpu);
        let net = CifarResNet::new(20, 1, vb)?;
        let xs = Tensor::randn(0f32, 1., (2, 1, 28, 28), &Device::Cpu)?;
        assert_eq!(net.forward_t(&xs, true, Channels::First)?.dims(), [2, 64]);
        Ok(())
    }
}
