//! A small fast CNN for demos: three conv–BN–ReLU stages (16, 32, 64 channels) and global pooling.

use candle_core::{Result, Tensor};
use candle_nn::{BatchNorm, Conv2d, Module, ModuleT, VarBuilder};

use super::layers::{batch_norm, conv, global_average_pool};

const WIDTHS: [usize; 3] = [16, 32, 64];

pub struct SmallCnn {
    stages: Vec<(Conv2d, BatchNorm)>,
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
            xs = bn.forward_t(&conv.forward(&xs)?, train)?.relu()?;
            // Pool after all but the last stage; tiny inputs stop pooling instead of vanishing.
            if index + 1 < self.stages.len() && xs.dim(2)? >= 2 && xs.dim(3)? >= 2 {
                xs = xs.max_pool2d(2)?;
            }
        }
        global_average_pool(&xs)
    }
}
