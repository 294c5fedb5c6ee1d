//! Conv-4, the standard few-shot backbone (Vinyals et al. 2016; Snell et al. 2017): four blocks of
//! 3×3 convolution with 64 channels, batch norm, ReLU and 2×2 max pooling, flattened.

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;

use super::layers::{Channels, Conv, Norm, Pooling, batch_norm, conv, max_pool_2x2};

const WIDTH: usize = 64;
const BLOCKS: usize = 4;

pub struct Conv4 {
    blocks: Vec<(Conv, Norm)>,
    feature_size: usize,
}

impl Conv4 {
    /// For `in_channels`×`height`×`width` images: the flattened final map sets the feature size
    /// (64 for 28×28, 256 for 32×32, 1,600 for mini-ImageNet's 84×84).
    pub fn new(in_channels: usize, height: usize, width: usize, vb: VarBuilder) -> Result<Self> {
        let mut blocks = Vec::with_capacity(BLOCKS);
        let mut channels = in_channels;
        for index in 0..BLOCKS {
            let vb = vb.pp(format!("block{}", index + 1));
            blocks.push((
                conv(channels, WIDTH, 3, 1, vb.pp("conv"))?,
                batch_norm(WIDTH, vb.pp("bn"))?,
            ));
            channels = WIDTH;
        }
        let (h, w) = Self::final_map(height, width);
        if h == 0 || w == 0 {
            candle_core::bail!(
                "Conv-4 pools four times by 2: {height}×{width} images are too small (16×16 at least)"
            );
        }
        Ok(Self {
            blocks,
            feature_size: WIDTH * h * w,
        })
    }

    /// The side of the map after the four poolings, which round down as PyTorch's `MaxPool2d(2)`.
    fn final_map(height: usize, width: usize) -> (usize, usize) {
        (height >> BLOCKS, width >> BLOCKS)
    }

    pub fn feature_size(&self) -> usize {
        self.feature_size
    }

    /// Multiply-adds of the convolutions for one image.
    pub fn multiply_adds(in_channels: usize, height: usize, width: usize) -> u64 {
        let (mut channels, mut h, mut w) = (in_channels, height, width);
        let mut total = 0u64;
        for _ in 0..BLOCKS {
            total += (h * w * WIDTH * channels * 9) as u64;
            channels = WIDTH;
            (h, w) = (h / 2, w / 2);
        }
        total
    }

    /// Features `[B, 64·h·w]` of images in the `channels` layout, flattened channels-first so that
    /// a feature means the same on every device.
    pub fn forward_t(&self, xs: &Tensor, train: bool, channels: Channels) -> Result<Tensor> {
        let mut xs = xs.clone();
        for (conv, bn) in &self.blocks {
            xs = bn.forward_t(&conv.forward(&xs, channels)?, train, true, channels)?;
            xs = max_pool_2x2(&xs, channels, Pooling::Floor)?;
        }
        let xs = match channels {
            Channels::First => xs,
            Channels::Last => xs.permute((0, 3, 1, 2))?,
        };
        xs.flatten_from(1)
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device};
    use candle_nn::VarMap;

    use super::*;
    use crate::model::layers::Channels;

    #[test]
    fn flattens_the_pooled_map_whatever_the_layout() -> Result<()> {
        let vars = VarMap::new();
        let vb = VarBuilder::from_varmap(&vars, DType::F64, &Device::Cpu);
        let net = Conv4::new(1, 28, 28, vb)?;
        assert_eq!(net.feature_size(), 64);
        let xs = Tensor::randn(0f64, 1.0, (3, 1, 28, 28), &Device::Cpu)?;
        let first = net.forward_t(&xs, false, Channels::First)?;
        let last = net.forward_t(
            &xs.permute((0, 2, 3, 1))?.contiguous()?,
            false,
            Channels::Last,
        )?;
        assert_eq!(first.dims(), [3, 64]);
        let gap = (first - last)?.abs()?.max_all()?.to_scalar::<f64>()?;
        assert!(gap < 1e-9, "layouts differ by {gap}");
        let vb = VarBuilder::from_varmap(&VarMap::new(), DType::F32, &Device::Cpu);
        assert_eq!(Conv4::new(3, 84, 84, vb.clone())?.feature_size(), 1600);
        assert!(Conv4::new(3, 8, 8, vb).is_err());
        Ok(())
    }
}
