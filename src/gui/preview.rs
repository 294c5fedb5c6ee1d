//! The dataset preview: loaded on a background thread, and expanded by the chosen transformations
//! into a sample grid before any training.

use std::sync::mpsc::{self, Receiver};

use candle_core::Device;

use crate::config::TrainConfig;
use crate::data::{self, DatasetSource, ImageShape};
use crate::run::SampleGrid;
use crate::sla::TransformSet;
use crate::sla::transform::Expander;
use crate::train::setup::resolve_source;

/// Facts about a loaded dataset and a few test images to show.
pub struct DatasetPreview {
    pub train_len: usize,
    pub test_len: usize,
    pub class_names: Vec<String>,
    pub shape: ImageShape,
    /// The first test image of each class (up to 8), CHW u8, and their labels.
    pub images: Vec<u8>,
    pub labels: Vec<u32>,
    /// The whole test set, to show the images behind a confusion cell.
    pub test: std::sync::Arc<crate::data::Dataset>,
    /// The training labels in file order, to count what a limit and an imbalance leave per class.
    pub train_labels: Vec<u32>,
}

/// A dataset being loaded off the UI thread.
pub struct PreviewLoader {
    receiver: Receiver<Result<DatasetPreview, String>>,
}

const PREVIEW_SAMPLES: usize = 8;

impl PreviewLoader {
    pub fn start(source: DatasetSource, waker: impl Fn() + Send + 'static) -> Result<Self, String> {
        let (sender, receiver) = mpsc::channel();
        crate::worker::spawn("data-preview", move || {
            let result = crate::worker::catch_panic(|| load(&source)).unwrap_or_else(|panic| {
                Err(format!("loading the data failed unexpectedly: {panic}"))
            });
            let _ = sender.send(result);
            waker();
        })
        .map_err(|e| format!("cannot start the data loader: {e}"))?;
        Ok(Self { receiver })
    }

    /// The result once the loader is done.
    pub fn poll(&self) -> Option<Result<DatasetPreview, String>> {
        self.receiver.try_recv().ok()
    }
}

fn load(source: &DatasetSource) -> Result<DatasetPreview, String> {
    let splits = data::load(&resolve_source(source)).map_err(|e| e.to_string())?;
    let test = &splits.test;
    let mut picked = Vec::new();
    for class in 0..test.num_classes() as u32 {
        if let Some(index) = test.labels.iter().position(|&l| l == class) {
            picked.push(index);
        }
        if picked.len() == PREVIEW_SAMPLES {
            break;
        }
    }
    let images = picked
        .iter()
        .flat_map(|&i| test.image(i).iter().copied())
        .collect();
    Ok(DatasetPreview {
        train_len: splits.train.len(),
        test_len: test.len(),
        class_names: splits.train.class_names.clone(),
        shape: test.shape,
        images,
        labels: picked.iter().map(|&i| test.labels[i]).collect(),
        test: std::sync::Arc::new(splits.test),
        train_labels: splits.train.labels,
    })
}

impl DatasetPreview {
    /// The training images per class a run with `config` would train on (before its validation
    /// split), or why the imbalance cannot be built.
    pub fn train_counts(&self, config: &TrainConfig) -> Result<Vec<usize>, String> {
        // As the loader does: the first K of each class in file order, then the first N of those.
        let per_class = config.train_per_class.unwrap_or(usize::MAX);
        let mut limit = config.limit_train.unwrap_or(usize::MAX);
        let mut available = vec![0usize; self.class_names.len()];
        for &label in &self.train_labels {
            if limit == 0 {
                break;
            }
            if let Some(count) = available.get_mut(label as usize)
                && *count < per_class
            {
                *count += 1;
                limit -= 1;
            }
        }
        match config.imbalance() {
            None => Ok(available),
            Some(imbalance) => imbalance
                .class_counts(&available, &self.class_names)
                .map_err(|e| e.to_string()),
        }
    }

    /// The preview images with their M transformed copies; labels are the joint labels y·M + j.
    pub fn expanded(&self, transforms: &TransformSet) -> Result<SampleGrid, String> {
        let shape = self.shape;
        transforms
            .check_image_shape(shape.channels, shape.height, shape.width)
            .map_err(|e| e.to_string())?;
        let count = self.labels.len();
        let expander = Expander::new(
            transforms,
            shape.channels,
            shape.height,
            shape.width,
            &Device::Cpu,
        )
        .map_err(|e| e.to_string())?;
        let pixels = expander
            .expand_bytes(
                &self.images,
                count,
                (shape.channels, shape.height, shape.width),
            )
            .map_err(|e| e.to_string())?;
        let m = transforms.len() as u32;
        let labels: Vec<u32> = self
            .labels
            .iter()
            .flat_map(|&y| (0..m).map(move |j| y * m + j))
            .collect();
        Ok(SampleGrid {
            samples: count,
            num_transforms: transforms.len(),
            channels: shape.channels,
            height: shape.height,
            width: shape.width,
            pixels,
            true_labels: labels.clone(),
            predicted_labels: labels,
            support_samples: 0,
        })
    }
}
