//! The run folders used lately (opened, compared or trained into), newest first, remembered
//! between launches, so that one click opens or compares one again.

use std::path::{Path, PathBuf};

use eframe::egui;
use serde::{Deserialize, Serialize};

/// How many folders the list keeps.
pub const RECENT_RUNS: usize = 8;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RecentRuns(Vec<PathBuf>);

/// What the user asked of a listed folder.
#[derive(Clone, Debug, PartialEq)]
pub enum RecentAction {
    Open(PathBuf),
    Compare(PathBuf),
}

impl RecentRuns {
    /// Put `dir` first, once, dropping the oldest past `RECENT_RUNS`.
    pub fn remember(&mut self, dir: &Path) {
        self.0.retain(|known| known != dir);
        self.0.insert(0, dir.to_path_buf());
        self.0.truncate(RECENT_RUNS);
    }

    pub fn folders(&self) -> &[PathBuf] {
        &self.0
    }

    /// The list, folded under a header: each folder as its name (the whole path on hover) with
    /// Open (when `can_open`: nothing is training) and Compare; a folder that is gone says so and
    /// can be forgotten.
    pub fn show(&mut self, ui: &mut egui::Ui, can_open: bool) -> Option<RecentAction> {
        if self.0.is_empty() {
            return None;
        }
        let mut action = None;
        let mut forget = None;
        egui::CollapsingHeader::new(format!("Recent runs ({})", self.0.len()))
            .id_salt("recent runs")
            .show(ui, |ui| {
                for (index, dir) in self.0.iter().enumerate() {
                    let name = dir
                        .file_name()
                        .map_or_else(|| dir.display().to_string(), |n| n.to_string_lossy().into());
                    ui.horizontal(|ui| {
                        if !dir.exists() {
                            ui.weak(format!("{name} (gone)"))
                                .on_hover_text(format!("{} no longer exists", dir.display()));
                            if ui.small_button("Forget").clicked() {
                                forget = Some(index);
                            }
                            return;
                        }
                        ui.label(&name).on_hover_text(dir.display().to_string());
                        if ui
                            .add_enabled(can_open, egui::Button::new("Open").small())
                            .on_hover_text("Inspect or resume this run")
                            .clicked()
                        {
                            action = Some(RecentAction::Open(dir.clone()));
                        }
                        if ui
                            .small_button("Compare")
                            .on_hover_text(
                                "Add this run, or an experiment's runs, to the comparison",
                            )
                            .clicked()
                        {
                            action = Some(RecentAction::Compare(dir.clone()));
                        }
                    });
                }
            });
        if let Some(index) = forget {
            self.0.remove(index);
        }
        action
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_comes_first_once_and_the_oldest_drop_off() {
        let mut recent = RecentRuns::default();
        for i in 0..RECENT_RUNS + 2 {
            recent.remember(Path::new(&format!("runs/{i}")));
        }
        recent.remember(Path::new("runs/5"));
        let names: Vec<String> = recent
            .folders()
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        assert_eq!(
            names,
            [
                "runs/5", "runs/9", "runs/8", "runs/7", "runs/6", "runs/4", "runs/3", "runs/2"
            ]
        );
    }
}
