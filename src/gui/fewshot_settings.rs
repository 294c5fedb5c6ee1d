//! The setup panel's choice of setting (standard or few-shot) and the few-shot settings: the
//! meta-learner, the shape of training and test episodes, and how long and how often.

use eframe::egui;

use crate::config::TrainConfig;
use crate::fewshot::config::{MAX_EPISODES, MAX_SHOTS, MAX_WAYS};
use crate::fewshot::objective::FEWSHOT_MODES;
use crate::fewshot::{FewShotConfig, Method};
use crate::model::ModelKind;
use crate::sla::Mode;

pub const HEADING: &str = "Setting";
pub const STANDARD: &str = "standard";
pub const FEW_SHOT: &str = "few-shot";

/// The two settings as radio buttons. Switching to few-shot starts from the few-shot defaults:
/// the Conv-4 backbone and MetaOptNet's optimiser (weight decay 5·10⁻⁴, Nesterov momentum), and
/// SLA when the current mode is one the setting does not train.
pub(super) fn setting_choice(ui: &mut egui::Ui, config: &mut TrainConfig) {
    ui.heading(HEADING);
    ui.horizontal(|ui| {
        if ui
            .radio(config.fewshot.is_none(), STANDARD)
            .on_hover_text("Train on every class, test on the test images of the same classes")
            .clicked()
        {
            config.fewshot = None;
        }
        if ui
            .radio(config.fewshot.is_some(), FEW_SHOT)
            .on_hover_text(
                "Meta-train on N-way K-shot episodes of base classes, test on episodes of novel \
                 classes never seen in training",
            )
            .clicked()
            && config.fewshot.is_none()
        {
            switch_to_few_shot(config);
        }
    });
}

/// The few-shot defaults on top of the current settings.
pub fn switch_to_few_shot(config: &mut TrainConfig) {
    config.fewshot = Some(FewShotConfig::default());
    config.model = ModelKind::Conv4;
    config.weight_decay = 5e-4;
    config.nesterov = config.momentum > 0.0;
    if !FEWSHOT_MODES.contains(&config.mode) {
        config.mode = Mode::Sla;
    }
}

/// The modes the mode menu offers in this setting.
pub(super) fn modes(config: &TrainConfig) -> &'static [Mode] {
    if config.fewshot.is_some() {
        &FEWSHOT_MODES
    } else {
        &Mode::ALL
    }
}

/// The meta-learner and the episodes, one labelled row each.
pub(super) fn show(ui: &mut egui::Ui, fewshot: &mut FewShotConfig) {
    ui.heading("Meta-learner and episodes");
    egui::Grid::new("few-shot").num_columns(2).show(ui, |ui| {
        let label = ui.label("Meta-learner");
        egui::ComboBox::from_id_salt("method")
            .selected_text(fewshot.method.name())
            .show_ui(ui, |ui| {
                for method in Method::ALL {
                    ui.selectable_value(&mut fewshot.method, method, method.name())
                        .on_hover_text(match method {
                            Method::Protonet => "Nearest mean support embedding (ProtoNet)",
                            Method::Ridge => {
                                "Ridge regression solved on the support set (R2-D2, MetaOptNet)"
                            }
                        });
                }
            })
            .response
            .labelled_by(label.id);
        ui.end_row();
        let counts: [(&str, &mut usize, usize, &str); 6] = [
            (
                "Ways",
                &mut fewshot.ways,
                MAX_WAYS,
                "Classes per training episode",
            ),
            (
                "Shots",
                &mut fewshot.shots,
                MAX_SHOTS,
                "Support images per class",
            ),
            (
                "Queries",
                &mut fewshot.queries,
                MAX_SHOTS,
                "Query images per class",
            ),
            (
                "Test ways",
                &mut fewshot.test_ways,
                MAX_WAYS,
                "Novel classes per test episode",
            ),
            (
                "Test shots",
                &mut fewshot.test_shots,
                MAX_SHOTS,
                "Support images per novel class",
            ),
            (
                "Test queries",
                &mut fewshot.test_queries,
                MAX_SHOTS,
                "Query images per novel class",
            ),
        ];
        for (name, value, max, hint) in counts {
            let label = ui.label(name);
            let low = if name.ends_with("ays") { 2 } else { 1 };
            ui.add(egui::DragValue::new(value).range(low..=max))
                .labelled_by(label.id)
                .on_hover_text(hint);
            ui.end_row();
        }
        let label = ui.label("Episodes");
        ui.add(egui::DragValue::new(&mut fewshot.episodes).range(1..=MAX_EPISODES))
            .labelled_by(label.id)
            .on_hover_text("Training episodes; one step is one episode");
        ui.end_row();
        let label = ui.label("Evaluate every");
        ui.add(egui::DragValue::new(&mut fewshot.eval_every).range(1..=MAX_EPISODES))
            .labelled_by(label.id)
            .on_hover_text("Training episodes between two evaluations");
        ui.end_row();
        let label = ui.label("Test episodes");
        ui.add(egui::DragValue::new(&mut fewshot.eval_episodes).range(1..=100_000))
            .labelled_by(label.id)
            .on_hover_text(
                "Test episodes per evaluation: the mean accuracy comes with its 95 % interval",
            );
        ui.end_row();
    });
}
