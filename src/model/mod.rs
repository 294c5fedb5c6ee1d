//! Models: a backbone (CIFAR ResNet family or a small CNN) with the heads an objective asks for.

pub mod cnn;
pub mod init;
pub mod layers;
pub mod resnet;
mod summary;

use candle_core::{Result, Tensor};
use candle_nn::{Linear, VarBuilder};
use serde::{Deserialize, Serialize};

pub use init::seeded_var_builder;
pub use summary::ModelSummary;

/// The architectures a user can pick.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum ModelKind {
    /// Small 3-stage CNN, fast enough for demos on a laptop CPU.
    Cnn,
    Resnet20,
    Resnet32,
    Resnet44,
    Resnet56,
    Resnet110,
}

impl ModelKind {
    pub const ALL: [ModelKind; 6] = [
        ModelKind::Cnn,
        ModelKind::Resnet20,
        ModelKind::Resnet32,
        ModelKind::Resnet44,
        ModelKind::Resnet56,
        ModelKind::Resnet110,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Cnn => "cnn",
            ModelKind::Resnet20 => "resnet20",
            ModelKind::Resnet32 => "resnet32",
            ModelKind::Resnet44 => "resnet44",
            ModelKind::Resnet56 => "resnet56",
            ModelKind::Resnet110 => "resnet110",
        }
    }

    pub(crate) fn resnet_depth(self) -> Option<usize> {
        match self {
            ModelKind::Cnn => None,
            ModelKind::Resnet20 => Some(20),
            ModelKind::Resnet32 => Some(32),
            ModelKind::Resnet44 => Some(44),
            ModelKind::Resnet56 => Some(56),
            ModelKind::Resnet110 => Some(110),
        }
    }
}

enum Backbone {
    Cnn(cnn::SmallCnn),
    ResNet(resnet::CifarResNet),
}

/// A backbone producing one feature vector per image, and linear heads on those features.
/// Parameter names: `backbone.*` and `heads.<k>.{weight,bias}`.
pub struct Network {
    backbone: Backbone,
    heads: Vec<Linear>,
}

impl Network {
    pub fn new(
        kind: ModelKind,
        in_channels: usize,
        head_sizes: &[usize],
        vb: VarBuilder,
    ) -> Result<Self> {
        let backbone_vb = vb.pp("backbone");
        let (backbone, features) = match kind.resnet_depth() {
            None => {
                let net = cnn::SmallCnn::new(in_channels, backbone_vb)?;
                let features = net.feature_size();
                (Backbone::Cnn(net), features)
            }
            Some(depth) => {
                let net = resnet::CifarResNet::new(depth, in_channels, backbone_vb)?;
                let features = net.feature_size();
                (Backbone::ResNet(net), features)
            }
        };
        let heads = head_sizes
            .iter()
            .enumerate()
            .map(|(index, &size)| layers::linear(features, size, vb.pp("heads").pp(index)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { backbone, heads })
    }

    /// Backbone features `[B, F]` of images `[B, C, H, W]`; `train` selects batch statistics in BN.
    /// On the CPU the images are repacked channels-last once, here, for the fast ops.
    pub fn features(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        let channels = layers::Channels::for_input(xs);
        let xs = channels.from_channels_first(xs)?;
        match &self.backbone {
            Backbone::Cnn(net) => net.forward_t(&xs, train, channels),
            Backbone::ResNet(net) => net.forward_t(&xs, train, channels),
        }
    }

    pub fn heads(&self) -> &[Linear] {
        &self.heads
    }
}
