//! Everything a few-shot run is built from its config: the class-disjoint data, the backbone with
//! the meta-learner around it, and the transformations.

use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use candle_nn::{Init, VarMap};

use crate::config::{ConfigError, TrainConfig};
use crate::data::{Augmentation, Dataset, Normalization};
use crate::model::{Network, seeded_var_builder};
use crate::sla::TransformSet;
use crate::sla::transform::Expander;
use crate::train::TrainError;
use crate::train::checkpoint::Checkpoint;
use crate::train::setup::{resolve_source, transforms_for};

use super::FewShotConfig;
use super::classes::load_class_splits;
use super::objective::{EpisodeObjective, Method};

/// The data of a few-shot run: base classes to train on, novel classes to test on.
pub struct EpisodeData {
    pub base: Arc<Dataset>,
    pub validation: Option<Arc<Dataset>>,
    pub novel: Arc<Dataset>,
    pub normalization: Normalization,
    /// Applied to training episodes only.
    pub augmentation: Augmentation,
}

/// The few-shot settings of a config that must have them.
pub fn fewshot_of(config: &TrainConfig) -> Result<&FewShotConfig, TrainError> {
    config.fewshot.as_ref().ok_or_else(|| {
        ConfigError {
            field: "fewshot",
            reason: "this run is not a few-shot run".into(),
        }
        .into()
    })
}

pub fn load_episode_data(config: &TrainConfig) -> Result<EpisodeData, TrainError> {
    let fewshot = fewshot_of(config)?;
    let splits = load_class_splits(&resolve_source(&config.dataset), &fewshot.classes)?;
    let shape = splits.base.shape;
    Ok(EpisodeData {
        normalization: Normalization::for_kind(config.dataset.kind, shape.channels),
        augmentation: config.augmentation(config.dataset.kind, shape.height),
        base: Arc::new(splits.base),
        validation: splits.validation.map(Arc::new),
        novel: Arc::new(splits.novel),
    })
}

/// A backbone with the meta-learner around it, ready to train or evaluate.
pub struct EpisodeModel {
    pub device: Device,
    pub transforms: TransformSet,
    pub expander: Expander,
    pub objective: EpisodeObjective,
    pub vars: VarMap,
    pub net: Network,
    /// The ridge head's learnable logit scale (`head.scale`); a constant 1 for ProtoNet, whose
    /// logits are plain negative squared distances.
    pub scale: Tensor,
}

/// Build the model for images of `data`'s shape; with a checkpoint, load its weights.
pub fn build_episode_model(
    config: &TrainConfig,
    data: &EpisodeData,
    checkpoint: Option<&Checkpoint>,
) -> Result<EpisodeModel, TrainError> {
    config.validate()?;
    let fewshot = fewshot_of(config)?;
    let shape = data.base.shape;
    let device = crate::device::open_device(&config.device).map_err(TrainError::Device)?;
    let (transforms, expander) = transforms_for(config, shape, &device)?;
    let mut vars = VarMap::new();
    let vb = seeded_var_builder(&vars, config.seed, DType::F32, &device);
    let net = Network::new(config.model, shape, &[], vb.clone())?;
    let scale = match fewshot.method {
        Method::Ridge => vb.pp("head").get_with_hints(1, "scale", Init::Const(1.0))?,
        Method::Protonet => Tensor::ones(1, DType::F32, &device)?,
    };
    if let Some(checkpoint) = checkpoint {
        checkpoint.load_weights(&mut vars)?;
    }
    Ok(EpisodeModel {
        device,
        objective: EpisodeObjective {
            mode: config.mode,
            method: fewshot.method,
            num_transforms: transforms.len(),
            lambda: fewshot.lambda,
        },
        transforms,
        expander,
        vars,
        net,
        scale,
    })
}
