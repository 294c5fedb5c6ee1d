//! Models: a backbone (CIFAR ResNet family, a small CNN or the few-shot Conv-4) with the heads an
//! objective asks for.

pub mod cnn;
pub mod conv4;
pub mod init;
pub mod layers;
pub mod resnet;
mod summary;

use candle_core::{Result, Tensor};
use candle_nn::{Linear, VarBuilder};
use serde::{Deserialize, Serialize};

use crate::data::ImageShape;

pub use init::seeded_var_builder;
pub use summary::ModelSummary;

/// The architectures a user can pick.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum ModelKind {
    /// Small 3-stage CNN, fast enough for demos on a laptop CPU.
    Cnn,
    /// Four conv–BN–ReLU–pool blocks of 64 channels, flattened: the standard few-shot backbone.
    Conv4,
    Resnet20,
    Resnet32,
    Resnet44,
    Resnet56,
    Resnet110,
}

impl ModelKind {
    pub const ALL: [ModelKind; 7] = [
        ModelKind::Cnn,
        ModelKind::Conv4,
        ModelKind::Resnet20,
        ModelKind::Resnet32,
        ModelKind::Resnet44,
        ModelKind::Resnet56,
        ModelKind::Resnet110,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Cnn => "cnn",
            ModelKind::Conv4 => "conv4",
            ModelKind::Resnet20 => "resnet20",
            ModelKind::Resnet32 => "resnet32",
            ModelKind::Resnet44 => "resnet44",
            ModelKind::Resnet56 => "resnet56",
            ModelKind::Resnet110 => "resnet110",
        }
    }

    pub(crate) fn resnet_depth(self) -> Option<usize> {
        match self {
            ModelKind::Cnn | ModelKind::Conv4 => None,
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
    Conv4(conv4::Conv4),
    ResNet(resnet::CifarResNet),
}

/// A backbone producing one feature vector per image, and linear heads on those features.
/// Parameter names: `backbone.*` and `heads.<k>.{weight,bias}`.
pub struct Network {
    backbone: Backbone,
    heads: Vec<Linear>,
    features: usize,
}

impl Network {
    /// For images of `shape` (Conv-4's feature size depends on their size; the others pool it away).
    pub fn new(
        kind: ModelKind,
        shape: ImageShape,
        head_sizes: &[usize],
        vb: VarBuilder,
    ) -> Result<Self> {
        let backbone_vb = vb.pp("backbone");
        let in_channels = shape.channels;
        let (backbone, features) = match (kind, kind.resnet_depth()) {
            (ModelKind::Conv4, _) => {
                let net = conv4::Conv4::new(in_channels, shape.height, shape.width, backbone_vb)?;
                let features = net.feature_size();
                (Backbone::Conv4(net), features)
            }
            (_, None) => {
                let net = cnn::SmallCnn::new(in_channels, backbone_vb)?;
                let features = net.feature_size();
                (Backbone::Cnn(net), features)
            }
            (_, Some(depth)) => {
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
        Ok(Self {
            backbone,
            heads,
            features,
        })
    }

    /// Length of a feature vector.
    pub fn feature_size(&self) -> usize {
        self.features
    }

    /// Backbone features `[B, F]` of images `[B, C, H, W]`; `train` selects batch statistics in BN.
    /// On the CPU the images are repacked channels-last once, here, for the fast ops.
    pub fn features(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        let channels = layers::Channels::for_input(xs);
        let xs = channels.from_channels_first(xs)?;
        match &self.backbone {
            Backbone::Cnn(net) => net.forward_t(&xs, train, channels),
            Backbone::Conv4(net) => net.forward_t(&xs, train, channels),
            Backbone::ResNet(net) => net.forward_t(&xs, train, channels),
        }
    }

    pub fn heads(&self) -> &[Linear] {
        &self.heads
    }
}
