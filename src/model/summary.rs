//! What a model costs before it trains: its parameters, its heads and the multiply-adds of one
//! image, for the app's model summary.

use candle_core::{DType, Device, Result};
use candle_nn::{VarBuilder, VarMap};

use super::{ModelKind, Network, cnn, conv4, resnet};
use crate::data::ImageShape;

/// The size and cost of a network with its heads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelSummary {
    /// Trainable parameters (batch-norm running statistics are not trained, so not counted).
    pub parameters: usize,
    /// Outputs of each head (N·M for SLA's joint head).
    pub head_sizes: Vec<usize>,
    /// Multiply-adds of one forward pass of one image through the convolutions and the heads.
    pub multiply_adds: u64,
}

impl ModelSummary {
    /// Build the network once on the CPU (its parameters are counted, not computed from a formula
    /// that could drift from the code) and add up its multiply-adds for `channels`×`height`×`width`
    /// images.
    pub fn new(
        kind: ModelKind,
        (channels, height, width): (usize, usize, usize),
        head_sizes: &[usize],
    ) -> Result<Self> {
        let map = VarMap::new();
        let vb = VarBuilder::from_varmap(&map, DType::F32, &Device::Cpu);
        let shape = ImageShape {
            channels,
            height,
            width,
        };
        let features = Network::new(kind, shape, head_sizes, vb)?.feature_size();
        let parameters = map
            .data()
            .lock()
            .map_err(|_| candle_core::Error::Msg("the parameter map is poisoned".into()))?
            .iter()
            .filter(|(name, _)| !name.contains("running"))
            .map(|(_, var)| var.elem_count())
            .sum();
        let backbone = match (kind, kind.resnet_depth()) {
            (ModelKind::Conv4, _) => conv4::Conv4::multiply_adds(channels, height, width),
            (_, None) => cnn::SmallCnn::multiply_adds(channels, height, width),
            (_, Some(depth)) => resnet::CifarResNet::multiply_adds(depth, channels, height, width),
        };
        let heads: u64 = head_sizes
            .iter()
            .map(|&size| (features * size) as u64)
            .sum();
        Ok(Self {
            parameters,
            head_sizes: head_sizes.to_vec(),
            multiply_adds: backbone + heads,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resnet20_on_cifar_matches_the_published_counts() -> Result<()> {
        // The CIFAR ResNet-20 of the paper: 0.27 M parameters, 40.55 M multiply-adds (option A).
        // By hand: convolutions 432 + 6 × 2,304 + 4,608 + 5 × 9,216 + 18,432 + 5 × 36,864, batch
        // norms 2 × (16 + 6 × 16 + 6 × 32 + 6 × 64), head 64 × 10 + 10.
        let summary = ModelSummary::new(ModelKind::Resnet20, (3, 32, 32), &[10])?;
        assert_eq!(summary.parameters, 269_722);
        // Stem 442,368 + stage 1 6 × 2,359,296 + stages 2 and 3 (1,179,648 + 5 × 2,359,296 each)
        // + head 640.
        assert_eq!(summary.multiply_adds, 40_551_040);
        Ok(())
    }

    #[test]
    fn the_small_cnn_with_a_joint_head_by_hand() -> Result<()> {
        // 28×28 grey, N·M = 40: convolutions 1→16 at 28², 16→32 at 14², 32→64 at 7²; a 64×40 head.
        let summary = ModelSummary::new(ModelKind::Cnn, (1, 28, 28), &[40])?;
        assert_eq!(
            summary.parameters,
            144 + 4_608 + 18_432 + 2 * (16 + 32 + 64) + 64 * 40 + 40
        );
        assert_eq!(
            summary.multiply_adds,
            28 * 28 * 16 * 9 + 14 * 14 * 32 * 16 * 9 + 7 * 7 * 64 * 32 * 9 + 64 * 40
        );
        assert_eq!(summary.head_sizes, [40]);
        Ok(())
    }
}
