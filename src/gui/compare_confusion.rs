//! The comparison's difference of two runs' confusion matrices: run B − run A, cell by cell, on the
//! same test set, at the class, joint or transformation level, drawn by the confusion renderer in
//! its diverging map. It answers where one run fixes or adds mistakes.

use eframe::egui;

use crate::gpu::confusion::{ConfusionInput, ConfusionView, cell_at};
use crate::gpu::style::category_colour;
use crate::run::TrainingSnapshot;

use super::compare_panel::ComparedRun;
use super::views::{ConfusionCounts, ConfusionSettings, ConfusionSlot, GpuViews};
use super::watch_panel::describe_label;

/// Which confusion matrix of the two runs is subtracted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DifferenceLevel {
    /// N×N over the runs' headline inference: any two runs of one dataset.
    #[default]
    Classes,
    /// N·M × N·M joint labels: two runs that both predict joint labels with the same M.
    Joint,
    /// M×M, the joint matrices summed over classes: which transformations one run tells apart better.
    Transformations,
}

impl DifferenceLevel {
    pub const ALL: [DifferenceLevel; 3] = [Self::Classes, Self::Joint, Self::Transformations];

    pub fn name(self) -> &'static str {
        match self {
            Self::Classes => "classes",
            Self::Joint => "joint labels",
            Self::Transformations => "transformations",
        }
    }
}

/// The two runs subtracted and how their difference is shown.
#[derive(Clone, Debug, PartialEq)]
pub struct DifferenceView {
    /// Indices into the compared runs: the difference is `b` − `a`.
    pub a: usize,
    pub b: usize,
    pub level: DifferenceLevel,
    pub normalise_rows: bool,
    pub log_scale: bool,
    highlight: Option<(usize, usize)>,
    /// Changes with anything above, so the matrix is redrawn only then.
    revision: u64,
}

impl Default for DifferenceView {
    fn default() -> Self {
        Self {
            a: 0,
            b: 1,
            level: DifferenceLevel::default(),
            normalise_rows: false,
            log_scale: false,
            highlight: None,
            revision: 1,
        }
    }
}

/// Run B's matrix minus run A's at `level`, as the renderer takes it; why not, for the user.
pub fn difference_input<'a>(
    a: &'a TrainingSnapshot,
    b: &'a TrainingSnapshot,
    level: DifferenceLevel,
) -> Result<ConfusionInput<'a>, String> {
    let n = b.num_classes();
    if a.num_classes() != n {
        return Err(format!(
            "the runs have different classes ({} and {n})",
            a.num_classes()
        ));
    }
    let input = match level {
        DifferenceLevel::Classes => ConfusionInput {
            minus: Some(&a.class_confusion),
            ..ConfusionInput::classes(n, &b.class_confusion)
        },
        DifferenceLevel::Joint | DifferenceLevel::Transformations => {
            if a.joint_confusion.is_empty() || b.joint_confusion.is_empty() {
                return Err(
                    "only runs that predict joint labels (the SLA modes) have a joint matrix: \
                     compare classes"
                        .into(),
                );
            }
            let m = b.num_transforms();
            if a.num_transforms() != m {
                return Err(format!(
                    "the runs use different transformations (M = {} and {m})",
                    a.num_transforms()
                ));
            }
            let view = if level == DifferenceLevel::Joint {
                ConfusionView::Full
            } else {
                ConfusionView::TransformMarginal
            };
            ConfusionInput {
                block: m,
                view,
                minus: Some(&a.joint_confusion),
                ..ConfusionInput::classes(n * m, &b.joint_confusion)
            }
        }
    };
    // Validation alone (the same test set): this runs every frame, the subtraction only on redraw.
    input.matrix().map_err(|error| error.to_string())?;
    Ok(input)
}

impl DifferenceView {
    /// The difference of the chosen runs at the chosen level: its side and row-major B − A.
    pub fn matrix(&self, runs: &[ComparedRun]) -> Result<(usize, Vec<i64>), String> {
        let (a, b) = self.snapshots(runs)?;
        difference_input(a, b, self.level)?
            .difference()
            .map_err(|error| error.to_string())?
            .ok_or_else(|| "no difference".into())
    }

    fn snapshots<'r>(
        &self,
        runs: &'r [ComparedRun],
    ) -> Result<(&'r TrainingSnapshot, &'r TrainingSnapshot), String> {
        let snapshot = |index: usize| -> Result<&'r TrainingSnapshot, String> {
            let run = runs
                .get(index)
                .ok_or_else(|| "choose two runs".to_string())?;
            run.snapshot
                .as_ref()
                .ok_or_else(|| format!("{} has no evaluation yet (no snapshot.json)", run.label))
        };
        Ok((snapshot(self.a)?, snapshot(self.b)?))
    }

    /// The run pickers, the level and scale choices, and the matrix with its hover read-out.
    pub fn show(&mut self, ui: &mut egui::Ui, runs: &[ComparedRun], views: Option<&mut GpuViews>) {
        let before = self.clone();
        ui.horizontal_wrapped(|ui| {
            run_picker(ui, "difference run B", "B", &mut self.b, runs);
            run_picker(ui, "difference run A", "minus A", &mut self.a, runs);
        });
        ui.horizontal_wrapped(|ui| {
            ui.label("Level");
            for level in DifferenceLevel::ALL {
                ui.selectable_value(&mut self.level, level, level.name());
            }
            ui.checkbox(&mut self.normalise_rows, "per row")
                .on_hover_text("Divide each row by its images (the true label's test images)");
            ui.checkbox(&mut self.log_scale, "log");
        });
        let (a, b) = match self.snapshots(runs) {
            Ok(pair) => pair,
            Err(why) => {
                ui.label(why);
                return;
            }
        };
        let input = match difference_input(a, b, self.level) {
            Ok(input) => input,
            Err(why) => {
                ui.label(why);
                return;
            }
        };
        ui.label(
            "Red: run B puts more test images in the cell than run A; blue: fewer. Off the \
             diagonal red is a mistake B adds, blue one it fixes; each row sums to zero.",
        );
        let settings = ConfusionSettings {
            view: input.view,
            normalise_rows: self.normalise_rows,
            log_scale: self.log_scale,
            highlight: self.highlight,
        };
        if *self != before {
            self.revision += 1;
        }
        let Some(views) = views else { return };
        let side = ui.available_width().clamp(100.0, 520.0);
        let matrix = ConfusionCounts {
            counts: input.counts,
            k: input.k,
            block: input.block,
            minus: input.minus,
        };
        let Some((response, drawn)) = views.show_confusion(
            ui,
            ConfusionSlot::Difference,
            matrix,
            settings,
            self.revision,
            side,
        ) else {
            return;
        };
        let hovered = response.hover_pos().and_then(|pos| {
            let x = ((pos.x - response.rect.left()) / response.rect.width() * 1000.0) as u32;
            let y = ((pos.y - response.rect.top()) / response.rect.height() * 1000.0) as u32;
            cell_at(drawn, 1000, 1000, x, y)
        });
        if hovered != self.highlight {
            // The ring is part of the drawn settings: the next frame redraws with it.
            self.highlight = hovered;
            ui.ctx().request_repaint();
        }
        let Some((row, col)) = hovered else { return };
        let (Ok((_, b_cells)), Ok((_, a_cells))) = (
            input.matrix(),
            ConfusionInput {
                counts: input.minus.unwrap_or(input.counts),
                ..input
            }
            .matrix(),
        ) else {
            return;
        };
        let m = b.num_transforms().max(1);
        let label = |index: usize| -> String {
            match self.level {
                DifferenceLevel::Classes => b.class_names.get(index).cloned().unwrap_or_default(),
                DifferenceLevel::Joint => {
                    describe_label(index as u32, true, m, &b.class_names, &b.transform_names)
                }
                DifferenceLevel::Transformations => {
                    b.transform_names.get(index).cloned().unwrap_or_default()
                }
            }
        };
        let cell = row * drawn + col;
        let (a_count, b_count) = (a_cells[cell], b_cells[cell]);
        let (a_name, b_name) = (&runs[self.a].label, &runs[self.b].label);
        response.on_hover_text(format!(
            "true {}\npredicted {}\n{b_name}: {b_count} images\n{a_name}: {a_count} images\n\
             B − A: {:+}",
            label(row),
            label(col),
            i64::from(b_count) - i64::from(a_count)
        ));
    }
}

/// A combo box over the compared runs, each in its chart colour.
fn run_picker(ui: &mut egui::Ui, id: &str, label: &str, chosen: &mut usize, runs: &[ComparedRun]) {
    let label = ui.label(label);
    let name = |index: usize| runs.get(index).map_or("–", |r| r.label.as_str());
    egui::ComboBox::from_id_salt(id)
        .selected_text(name(*chosen))
        .show_ui(ui, |ui| {
            for (index, run) in runs.iter().enumerate() {
                let [r, g, b, _] = category_colour(index);
                let text = egui::RichText::new(&run.label).color(egui::Color32::from_rgb(r, g, b));
                ui.selectable_value(chosen, index, text);
            }
        })
        // Named by the label before it, for screen readers (and the app's tests).
        .response
        .labelled_by(label.id);
}
