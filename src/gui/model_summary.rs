//! The model summary under the model choice: parameters, heads and multiply-adds, for the data
//! and transformations chosen, so the cost of a choice (a deeper ResNet, more transformations) is
//! seen before training. Recomputed only when one of those changes: counting the parameters builds
//! the network once.

use eframe::egui;

use crate::config::TrainConfig;
use crate::data::ImageShape;
use crate::model::{ModelKind, ModelSummary};

type Key = (ModelKind, (usize, usize, usize), Vec<usize>);

/// The last summary and what it was computed for.
#[derive(Default)]
pub struct SummaryCache {
    key: Option<Key>,
    value: Option<Result<ModelSummary, String>>,
}

impl SummaryCache {
    /// The summary for `config` on images of `shape` with `classes` classes.
    fn get(
        &mut self,
        config: &TrainConfig,
        shape: ImageShape,
        classes: usize,
    ) -> Option<&Result<ModelSummary, String>> {
        let m = config.transforms.set().ok()?.len();
        // A meta-learner classifies from the episode's support set: no linear head.
        let heads = match config.fewshot {
            Some(_) => Vec::new(),
            None => config.objective(classes, m).head_sizes(),
        };
        let key = (
            config.model,
            (shape.channels, shape.height, shape.width),
            heads,
        );
        if self.key.as_ref() != Some(&key) {
            self.value = Some(ModelSummary::new(key.0, key.1, &key.2).map_err(|e| e.to_string()));
            self.key = Some(key);
        }
        self.value.as_ref()
    }
}

/// Draw the summary (nothing until the dataset's shape is known).
pub(super) fn show(
    ui: &mut egui::Ui,
    cache: &mut SummaryCache,
    config: &TrainConfig,
    shape: Option<(ImageShape, usize)>,
) {
    let Some((shape, classes)) = shape else {
        return;
    };
    let Some(summary) = cache.get(config, shape, classes) else {
        return;
    };
    let summary = match summary {
        Ok(summary) => summary,
        Err(error) => {
            ui.label(format!("model summary unavailable: {error}"));
            return;
        }
    };
    let m = config.transforms.set().map(|s| s.len()).unwrap_or(1);
    let (source, step) = match &config.fewshot {
        Some(fewshot) => (fewshot.train_shape().images(), "episode"),
        None => (config.batch_size, "step"),
    };
    let images = if config.mode.expands_batches() {
        source * m
    } else {
        source
    };
    let heads: Vec<String> = summary.head_sizes.iter().map(|s| s.to_string()).collect();
    let heads = match heads.len() {
        0 => "no head (the meta-learner's classifier comes from the support set)".to_string(),
        1 => format!("head {}", heads[0]),
        _ => format!("heads {}", heads.join(" + ")),
    };
    let text = format!(
        "{} parameters, {heads}\n{} multiply-adds per image\nabout {} per {step} ({images} \
         images, forward and backward)",
        grouped(summary.parameters as u64),
        scaled(summary.multiply_adds as f64),
        scaled(3.0 * summary.multiply_adds as f64 * images as f64),
    );
    ui.label(egui::RichText::new(text).small()).on_hover_text(
        "Counted from the network itself; multiply-adds of the convolutions and heads. A \
         backward pass costs about twice the forward one.",
    );
}

/// 269722 → "269,722".
fn grouped(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// 40551040 → "40.6 M".
fn scaled(value: f64) -> String {
    for (unit, size) in [("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)] {
        if value >= size {
            return format!("{:.1} {unit}", value / size);
        }
    }
    format!("{value:.0}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_read_as_people_write_them() {
        assert_eq!(grouped(269_722), "269,722");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1_000_000), "1,000,000");
        assert_eq!(scaled(40_551_040.0), "40.6 M");
        assert_eq!(scaled(62_279_000_000.0), "62.3 G");
        assert_eq!(scaled(512.0), "512");
    }
}
