//! A small fast CNN for demos: three conv–BN–ReLU stages (16, 32, 64 channels) and global pooling.

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;

use super::layers::{Conv, Norm, batch_norm, conv, global_average_pool};

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

    pub fn forward_t(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        let mut xs = xs.clone();
        for (index, (conv, bn)) in self.stages.iter().enumerate() {
            xs = bn.forward_t(&conv.forward(&xs)?, train, true)?;
            // Pool after all but the last stage; tiny inputs stop pooling instead of vanishing.
            if index + 1 < self.stages.len() && xs.dim(2)? >= 2 && xs.dim(3)? >= 2 {
                xs = pool_rounding_up(&xs)?;
            }
        }
        global_average_pool(&xs)
    }
}

/// 2×2 max pooling that keeps odd edges (ceil(H/2)); zero padding after a ReLU never changes a
/// maximum. Built from reshapes and max reductions because candle 0.11's `max_pool2d` backward
/// scales gradients by 1/4 (it multiplies by the window's count of maxima instead of dividing),
/// which the finite-difference test catches.
fn pool_rounding_up(xs: &Tensor) -> Result<Tensor> {
    let (_, _, h, w) = xs.dims4()?;
    let xs = xs
        .pad_with_zeros(2, 0, h % 2)?
        .pad_with_zeros(3, 0, w % 2)?;
    let (b, c, h, w) = xs.dims4()?;
    xs.reshape((b, c, h / 2, 2, w / 2, 2))?.max(5)?.max(3)
}
