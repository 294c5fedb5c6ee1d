//! The settings a first run does not need but `sla train` accepts: the data subset and validation
//! split, augmentation, the run length in iterations, the optimiser and loss variants, and the
//! evaluation and checkpoint intervals. Folded under one header so the first screen stays short;
//! each control carries the flag's explanation as its tooltip.

use eframe::egui;

use crate::config::{MAX_ITERATIONS, TrainConfig};
use crate::data::Augmentation;
use crate::sla::Mode;

/// The header's label (tests open it by this name).
pub const HEADER: &str = "More settings";

/// Draw the folded section. `side` is the dataset's image side once its preview has loaded: the
/// crop and flip controls start from the dataset's usual augmentation, which depends on it.
pub(super) fn show(ui: &mut egui::Ui, config: &mut TrainConfig, side: Option<usize>) {
    egui::CollapsingHeader::new(HEADER)
        .id_salt("more-settings")
        .show(ui, |ui| {
            egui::Grid::new("more-settings-grid")
                .num_columns(2)
                .show(ui, |ui| {
                    data_rows(ui, config);
                    augmentation_rows(ui, config, side);
                    training_rows(ui, config);
                });
        });
}

fn data_rows(ui: &mut egui::Ui, config: &mut TrainConfig) {
    optional_count(
        ui,
        "Images per class",
        &mut config.train_per_class,
        1_000_000,
        "Keep the first K training images of each class, in file order (the limited-data \
         setting; 0 = all)",
    );
    let label = ui.label("Validation images");
    ui.add(egui::DragValue::new(&mut config.validation).range(0..=1_000_000))
        .labelled_by(label.id)
        .on_hover_text(
            "Hold this many training images out (drawn with the seed); each evaluation then also \
             reports the validation accuracy. 0 = none",
        );
    ui.end_row();
    if config.validation == 0 {
        config.keep_best = false;
    }
    let label = ui.label("Keep best weights");
    ui.add_enabled(
        config.validation > 0,
        egui::Checkbox::without_text(&mut config.keep_best),
    )
    .labelled_by(label.id)
    .on_hover_text(
        "Also keep the weights of the evaluation with the best validation single accuracy \
         (best.json), and report their test accuracy beside the last",
    )
    .on_disabled_hover_text("needs validation images");
    ui.end_row();
}

fn augmentation_rows(ui: &mut egui::Ui, config: &mut TrainConfig, side: Option<usize>) {
    let label = ui.label("Augment");
    ui.checkbox(&mut config.augment, "")
        .labelled_by(label.id)
        .on_hover_text("Random crop and horizontal flip of the training images");
    ui.end_row();
    let Some(side) = side.filter(|_| config.augment) else {
        return;
    };
    let usual = Augmentation::default_for(config.dataset.kind, side);
    let shown = config.augmentation(config.dataset.kind, side);
    let label = ui.label("Crop padding");
    let mut padding = shown.crop_padding;
    ui.add(egui::DragValue::new(&mut padding).range(0..=side))
        .labelled_by(label.id)
        .on_hover_text(format!(
            "Zero padding before the random crop, in pixels (0 = no crop; this dataset's usual: {})",
            usual.crop_padding
        ));
    if padding != shown.crop_padding {
        config.crop_padding = Some(padding);
    }
    ui.end_row();
    let label = ui.label("Horizontal flip");
    let mut flip = shown.horizontal_flip;
    ui.checkbox(&mut flip, "")
        .labelled_by(label.id)
        .on_hover_text(format!(
            "Mirror left-right with probability 0.5 (this dataset's usual: {})",
            if usual.horizontal_flip { "on" } else { "off" }
        ));
    if flip != shown.horizontal_flip {
        config.horizontal_flip = Some(flip);
    }
    ui.end_row();
    if config.crop_padding.is_some() || config.horizontal_flip.is_some() {
        ui.label("");
        if ui
            .button("Dataset's usual")
            .on_hover_text("Crop and flip as usual for this dataset")
            .clicked()
        {
            config.crop_padding = None;
            config.horizontal_flip = None;
        }
        ui.end_row();
    }
}

fn training_rows(ui: &mut egui::Ui, config: &mut TrainConfig) {
    let mut iterations = config.iterations.unwrap_or(0);
    let label = ui.label("Iterations");
    ui.add(egui::DragValue::new(&mut iterations).range(0..=MAX_ITERATIONS))
        .labelled_by(label.id)
        .on_hover_text(
            "Train this many steps instead of whole epochs (the multi-step milestones then sit \
             at N/2 and 3N/4; 0 = count epochs)",
        );
    config.iterations = (iterations > 0).then_some(iterations);
    ui.end_row();
    let label = ui.label("Nesterov");
    ui.checkbox(&mut config.nesterov, "")
        .labelled_by(label.id)
        .on_hover_text("Nesterov momentum for SGD");
    ui.end_row();
    let joint = matches!(config.mode, Mode::Sla | Mode::SlaSd);
    let label = ui.label("Large loss");
    ui.add_enabled(joint, egui::Checkbox::without_text(&mut config.large_loss))
        .labelled_by(label.id)
        .on_hover_text(
            "Sum the joint cross-entropy over the M transformations instead of averaging it (the \
             reference code's large-loss option)",
        )
        .on_disabled_hover_text("only the joint-label objectives (sla, sla-sd) have it");
    ui.end_row();
    if config.mode == Mode::SlaSd {
        let label = ui.label("Distillation β");
        ui.add(
            egui::DragValue::new(&mut config.beta)
                .speed(0.05)
                .range(0.0..=100.0),
        )
        .labelled_by(label.id)
        .on_hover_text("Weight of the self-distilled head's cross-entropy with the labels");
        ui.end_row();
    }
    let label = ui.label("Evaluate every");
    ui.add(
        egui::DragValue::new(&mut config.eval_every)
            .range(1..=10_000)
            .suffix(" epochs"),
    )
    .labelled_by(label.id)
    .on_hover_text("Test (and validation) evaluation interval; the last epoch is always evaluated");
    ui.end_row();
    let label = ui.label("Checkpoint every");
    ui.add(
        egui::DragValue::new(&mut config.checkpoint_every)
            .range(0..=1_000_000)
            .suffix(" steps"),
    )
    .labelled_by(label.id)
    .on_hover_text(
        "Also save a resumable checkpoint every this many steps (0 = at the end of each epoch only)",
    );
    ui.end_row();
}

/// A count where 0 means "not set".
fn optional_count(
    ui: &mut egui::Ui,
    name: &str,
    value: &mut Option<usize>,
    max: usize,
    hint: &str,
) {
    let label = ui.label(name);
    let mut shown = value.unwrap_or(0);
    ui.add(egui::DragValue::new(&mut shown).range(0..=max))
        .labelled_by(label.id)
        .on_hover_text(hint);
    *value = (shown > 0).then_some(shown);
    ui.end_row();
}
