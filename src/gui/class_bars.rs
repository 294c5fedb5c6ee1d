//! The per-class charts of the imbalanced setting, drawn by egui: the training count of each class
//! before a run (with the chosen imbalance applied), and each class's test accuracy while it trains.
//! Classes are sorted from the most to the fewest training images and coloured by their group.

use eframe::egui;

use crate::data::imbalance::counts_line;
use crate::run::{ByInference, Group, PerClassAcc, class_groups, is_long_tailed};

const MANY: egui::Color32 = egui::Color32::from_rgb(90, 160, 255);
const MEDIUM: egui::Color32 = egui::Color32::from_rgb(240, 170, 60);
const FEW: egui::Color32 = egui::Color32::from_rgb(235, 100, 100);
const NO_GROUP: egui::Color32 = egui::Color32::from_rgb(150, 150, 160);

/// Height of the count chart's bars area.
const COUNT_CHART_HEIGHT: f32 = 56.0;

fn group_colour(group: Option<Group>) -> egui::Color32 {
    match group {
        Some(Group::Many) => MANY,
        Some(Group::Medium) => MEDIUM,
        Some(Group::Few) => FEW,
        None => NO_GROUP,
    }
}

/// The classes' groups when the set is long-tailed, else `None` (every class drawn alike). A run's
/// recorded `group_rule` says the same for a finished evaluation.
pub fn groups_of(imbalance_ratio: f64, counts: &[usize]) -> Option<Vec<Group>> {
    is_long_tailed(imbalance_ratio, counts).then(|| class_groups(counts).1)
}

/// Class indices from the most to the fewest training images (ties in class order).
fn by_count(counts: &[usize]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..counts.len()).collect();
    order.sort_by_key(|&c| std::cmp::Reverse(counts[c]));
    order
}

fn legend(ui: &mut egui::Ui) {
    ui.horizontal(|ui| {
        for group in Group::ALL {
            ui.colored_label(group_colour(Some(group)), group.name());
        }
    });
}

/// The training images per class as bars in class order (the order the imbalance profile falls
/// in), with a one-line summary that names every count.
pub fn count_chart(
    ui: &mut egui::Ui,
    names: &[String],
    counts: &[usize],
    groups: Option<&[Group]>,
) {
    // Plain numbers: egui's fonts have no block characters for the terminal's histogram.
    ui.label(format!(
        "Training images per class: {}",
        counts_line(counts)
    ));
    let max = counts.iter().copied().max().unwrap_or(0).max(1) as f32;
    let width = ui.available_width().min(320.0);
    let (rect, response) =
        ui.allocate_exact_size(egui::vec2(width, COUNT_CHART_HEIGHT), egui::Sense::hover());
    let painter = ui.painter_at(rect);
    painter.rect_filled(rect, 2.0, ui.visuals().extreme_bg_color);
    let slot = rect.width() / counts.len().max(1) as f32;
    for (c, &count) in counts.iter().enumerate() {
        let height = rect.height() * count as f32 / max;
        let left = rect.left() + c as f32 * slot;
        let bar = egui::Rect::from_min_max(
            egui::pos2(left + 0.15 * slot, rect.bottom() - height),
            egui::pos2(left + 0.85 * slot, rect.bottom()),
        );
        let group = groups.and_then(|g| g.get(c).copied());
        painter.rect_filled(bar, 1.0, group_colour(group));
    }
    if let Some(pointer) = response.hover_pos() {
        let c = ((pointer.x - rect.left()) / slot) as usize;
        if let (Some(name), Some(count)) = (names.get(c), counts.get(c)) {
            response.on_hover_text(format!("{name}: {count} training images"));
        }
    }
    if groups.is_some() {
        legend(ui);
    }
}

/// Per-class test accuracy of each inference (single, aggregated, self-distilled), one row per
/// class sorted by training count, the class name coloured by its group.
pub fn accuracy_bars(
    ui: &mut egui::Ui,
    names: &[String],
    counts: &[usize],
    per_class: &PerClassAcc,
    groups: Option<&[Group]>,
) {
    let inferences = per_class.inferences();
    ui.strong("Per-class accuracy, classes by training count");
    if groups.is_some() {
        legend(ui);
    }
    egui::Grid::new("per-class").striped(true).show(ui, |ui| {
        ui.label("class");
        ui.label("train");
        for (name, _) in &inferences {
            ui.label(*name);
        }
        ui.end_row();
        for c in by_count(counts) {
            let group = groups.and_then(|g| g.get(c).copied());
            let name = names
                .get(c)
                .cloned()
                .unwrap_or_else(|| format!("class {c}"));
            ui.colored_label(group_colour(group), name);
            ui.label(counts[c].to_string());
            for (inference, values) in &inferences {
                let value = values.get(c).copied().unwrap_or(f64::NAN);
                let text = if value.is_finite() {
                    format!("{:.1}%", 100.0 * value)
                } else {
                    "–".to_string()
                };
                ui.add(
                    egui::ProgressBar::new(if value.is_finite() { value as f32 } else { 0.0 })
                        .text(text)
                        .fill(group_colour(group).gamma_multiply(0.8))
                        .desired_width(110.0),
                )
                .on_hover_text(*inference);
            }
            ui.end_row();
        }
    });
}

/// "many a / medium b / few c" for one inference of one evaluation, in percent.
pub fn group_summary(
    many: Option<&ByInference>,
    medium: Option<&ByInference>,
    few: Option<&ByInference>,
    inference: usize,
) -> Option<String> {
    let parts: Vec<String> = [("many", many), ("medium", medium), ("few", few)]
        .iter()
        .filter_map(|(name, b)| {
            let value = b.and_then(|b| b.values()[inference])?;
            Some(format!("{name} {:.1}%", 100.0 * value))
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join(" / "))
}
