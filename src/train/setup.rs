//! Everything a run is built from a config: device, data, transformations, objective and network.

use std::sync::Arc;

use candle_core::{DType, Device};
use candle_nn::VarMap;

use crate::config::{ConfigError, TrainConfig};
use crate::data::{self, Augmentation, Dataset, DatasetSource, Normalization};
use crate::model::{Network, seeded_var_builder};
use crate::sla::transform::Expander;
use crate::sla::{Objective, TransformSet};

use super::checkpoint::{Checkpoint, Fingerprint};
use super::trainer::TrainError;

/// The data of a run, limited and split as the config says. The training set is shared with the
/// thread that builds its batches.
pub struct RunData {
    pub train: Arc<Dataset>,
    pub test: Arc<Dataset>,
    pub validation: Option<Arc<Dataset>>,
    pub normalization: Normalization,
    pub augmentation: Augmentation,
}

/// A network ready to train or evaluate, with its parameters and the method around it.
pub struct Model {
    pub device: Device,
    pub transforms: TransformSet,
    pub expander: Expander,
    pub objective: Objective,
    pub vars: VarMap,
    pub net: Network,
}

/// The dataset source with its folder filled in from the dataset manager's cache (or the system
/// copy) when the user named none.
pub fn resolve_source(source: &DatasetSource) -> DatasetSource {
    let mut resolved = source.clone();
    if resolved.dir.is_none() && source.kind.downloadable() {
        resolved.dir = crate::download::locate(source.kind.name(), None);
    }
    resolved
}

/// Load the dataset the config names, apply limits and the validation split.
pub fn load_data(config: &TrainConfig) -> Result<RunData, TrainError> {
    let splits = data::load(&resolve_source(&config.dataset))?;
    let mut train = splits.train;
    let mut test = splits.test;
    if let Some(per_class) = config.train_per_class {
        train = data::first_per_class(&train, per_class);
    }
    if let Some(limit) = config.limit_train {
        train = data::subset(&train, limit);
    }
    // After the limit (n_max is the smallest class of what is left), before the validation split
    // (drawn per class from the long-tailed set, never emptying a class).
    if let Some(imbalance) = config.imbalance() {
        train = imbalance.apply(&train)?;
    }
    if let Some(limit) = config.limit_test {
        test = data::subset(&test, limit);
    }
    let validation = if config.validation > 0 {
        let (rest, held_out) = data::split_validation(train, config.validation, config.seed)?;
        train = rest;
        Some(Arc::new(held_out))
    } else {
        None
    };
    let channels = train.shape.channels;
    let side = train.shape.height;
    let augmentation = config.augmentation(config.dataset.kind, side);
    if augmentation.crop_padding > side {
        return Err(ConfigError {
            field: "crop padding",
            reason: format!(
                "{} pixels around {side}-pixel images: most crops would be padding",
                augmentation.crop_padding
            ),
        }
        .into());
    }
    Ok(RunData {
        train: Arc::new(train),
        test: Arc::new(test),
        validation,
        normalization: Normalization::for_kind(config.dataset.kind, channels),
        augmentation,
    })
}

/// The settings that fix which batches a step draws and which model it updates: a resume that
/// changes any of them would continue a different run. (The learning rate, schedule, epochs, device
/// and the like may change: they steer the rest of the run without changing what was done.)
const STEP_SETTINGS: [&str; 16] = [
    "dataset",
    "train_per_class",
    "limit_train",
    "imbalance",
    "imbalance_profile",
    "class_weights",
    "cb_beta",
    "validation",
    "augment",
    "crop_padding",
    "horizontal_flip",
    "model",
    "mode",
    "transforms",
    "batch_size",
    "seed",
];

const FEWSHOT_STEP_SETTINGS: [&str; 6] =
    ["method", "classes", "ways", "shots", "queries", "lambda"];

/// What a step of this run means, to store with each checkpoint and compare on resume: the step
/// settings and the images it trains on (`train`) or selects with (`validation`).
pub fn fingerprint(
    config: &TrainConfig,
    train: &Dataset,
    validation: Option<&Dataset>,
) -> Fingerprint {
    use sha2::{Digest, Sha256};
    let settings = match serde_json::to_value(config) {
        Ok(serde_json::Value::Object(all)) => all
            .into_iter()
            .filter(|(key, _)| STEP_SETTINGS.contains(&key.as_str()))
            .collect(),
        _ => serde_json::Map::new(),
    };
    let mut settings = settings;
    // The few-shot settings that fix which episodes a step draws and what the model learns from
    // them, as `fewshot.<key>`: the number of episodes (the schedule's length) and everything about
    // evaluation may change on resume, as epochs and evaluation may in the standard setting.
    if let Some(Ok(serde_json::Value::Object(fewshot))) =
        config.fewshot.as_ref().map(serde_json::to_value)
    {
        for (key, value) in fewshot {
            if FEWSHOT_STEP_SETTINGS.contains(&key.as_str()) {
                settings.insert(format!("fewshot.{key}"), value);
            }
        }
    }
    let mut hash = Sha256::new();
    for set in std::iter::once(train).chain(validation) {
        hash.update((set.len() as u64).to_le_bytes());
        hash.update(&set.images);
        for label in &set.labels {
            hash.update(label.to_le_bytes());
        }
    }
    Fingerprint {
        settings,
        train_images: train.len(),
        validation_images: validation.map_or(0, Dataset::len),
        num_classes: train.num_classes(),
        data_sha256: hash.finalize().iter().map(|b| format!("{b:02x}")).collect(),
    }
}

/// Build the model for data of this shape and class count; with a checkpoint, load its weights.
pub fn build_model(
    config: &TrainConfig,
    shape: data::ImageShape,
    num_classes: usize,
    checkpoint: Option<&Checkpoint>,
) -> Result<Model, TrainError> {
    config.validate()?;
    let device = crate::device::open_device(&config.device).map_err(TrainError::Device)?;
    let (transforms, expander) = transforms_for(config, shape, &device)?;
    let objective = config.objective(num_classes, transforms.len());
    let mut vars = VarMap::new();
    let vb = seeded_var_builder(&vars, config.seed, DType::F32, &device);
    let net = Network::new(config.model, shape, &objective.head_sizes(), vb)?;
    if let Some(checkpoint) = checkpoint {
        checkpoint.load_weights(&mut vars)?;
    }
    Ok(Model {
        device,
        transforms,
        expander,
        objective,
        vars,
        net,
    })
}

/// The config's transformation set, checked against images of `shape`, and its batch expander.
pub fn transforms_for(
    config: &TrainConfig,
    shape: data::ImageShape,
    device: &Device,
) -> Result<(TransformSet, Expander), TrainError> {
    let transforms = config.transforms.set()?;
    transforms.check_image_shape(shape.channels, shape.height, shape.width)?;
    let expander = Expander::new(
        &transforms,
        shape.channels,
        shape.height,
        shape.width,
        device,
    )?;
    Ok((transforms, expander))
}

impl Model {
    /// Parameters by name, sorted, for the optimiser.
    pub fn named_parameters(&self) -> Vec<(String, candle_core::Var)> {
        named_parameters(&self.vars)
    }
}

/// The parameters of `vars` by name, sorted, so the optimiser's order never depends on a hash.
pub fn named_parameters(vars: &VarMap) -> Vec<(String, candle_core::Var)> {
    let mut params: Vec<_> = match vars.data().lock() {
        Ok(map) => map.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        Err(_) => Vec::new(),
    };
    params.sort_by(|a, b| a.0.cmp(&b.0));
    params
}
