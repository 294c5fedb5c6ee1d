//! A small fast CNN for demos: three conv–BN–ReLU stages (16, 32, 64 channels) and global pooling.

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;

use super::layers::{
    Channels, Conv, Norm, Pooling, batch_norm, conv, global_average_pool, max_pool_2x2,
};

const WIDTHS: [usize; 3] = [16, 32, 64];

pub struct SmallCnn {
    stages: Vec<(Conv, Norm)>,
}

impl SmallCnn {
    pub fn new(in_channels: usize, vb: VarBuilder) -> Result<Self> {
        let mut stages = Vec::with_capacity(WIDTHS.len());
        let mut channels = in_channels;
        for (index, &width) in WIDTHS.iter().enumerate() {
            let vb = vb.pp(format!("stage{}", index + 1));
            stages.push((
                conv(channels, width, 3, 1, vb.pp("conv"))?,
                batch_norm(width, vb.pp("bn"))?,
            ));
            channels = width;
        }
        Ok(Self { stages })
    }

    pub fn feature_size(&self) -> usize {
        WIDTHS[WIDTHS.len() - 1]
    }

    /// Multiply-adds of the convolutions for one `in_channels`×`height`×`width` image, pooling as
    /// `forward_t` does.
    pub fn multiply_adds(in_channels: usize, height: usize, width: usize) -> u64 {
        let (mut channels, mut h, mut w) = (in_channels, height, width);
        let mut total = 0u64;
        for (index, &out) in WIDTHS.iter().enumerate() {
            total += (h * w * out * channels * 9) as u64;
            channels = out;
            if index + 1 < WIDTHS.len() && h >= 2 && w >= 2 {
                (h, w) = (h.div_ceil(2), w.div_ceil(2));
            }
        }
        total
    }

    /// Features `[B, 64]` of images in the `channels` layout.
    pub fn forward_t(&self, xs: &Tensor, train: bool, channels: Channels) -> Result<Tensor> {
        let (rows, cols) = channels.spatial_dims();
        let mut xs = xs.clone();
        for (index, (conv, bn)) in self.stages.iter().enumerate() {
            xs = bn.forward_t(&conv.forward(&xs, channels)?, train, true, channels)?;
            // Pool after all but the last stage; tiny inputs stop pooling instead of vanishing.
            if index + 1 < self.stages.len() && xs.dim(rows)? >= 2 && xs.dim(cols)? >= 2 {
                xs = max_pool_2x2(&xs, channels, Pooling::Ceil)?;
            }
        }
        global_average_pool(&xs, channels)
    }
}
