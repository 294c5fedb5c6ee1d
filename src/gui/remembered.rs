//! What the app remembers between launches: the settings of the next run, the data and open-run
//! folders, the view toggles and the theme. eframe keeps them (as RON, in the platform's app-data
//! folder) together with the window's size and place and egui's own layout memory (panel widths,
//! folded sections).

use eframe::egui;
use serde::{Deserialize, Serialize};

use crate::config::TrainConfig;

use super::recent_runs::RecentRuns;
use super::x_axis::XUnit;

/// The key of the app's settings in eframe's storage.
pub const STORAGE_KEY: &str = "sla-settings";

/// Keys missing from a stored copy (written by an older version) take their defaults; a copy that
/// cannot be read at all is ignored with a warning, and the app starts from the defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RememberedSettings {
    pub config: TrainConfig,
    /// The custom transformation set's ticks, kept while a preset is chosen.
    pub custom_rotations: [bool; 4],
    pub custom_permutations: [bool; 6],
    pub open_dir: String,
    pub smoothing: f32,
    pub log_y: bool,
    /// What the charts' x axis counts.
    pub x_unit: XUnit,
    pub normalise_rows: bool,
    pub log_scale: bool,
    pub theme: egui::ThemePreference,
    /// Run folders opened, compared or trained into lately, newest first.
    pub recent_runs: RecentRuns,
}

impl Default for RememberedSettings {
    fn default() -> Self {
        Self {
            config: TrainConfig::default(),
            custom_rotations: [true, false, false, false],
            custom_permutations: [true, false, false, false, false, false],
            open_dir: String::new(),
            smoothing: 0.6,
            log_y: false,
            x_unit: XUnit::Steps,
            normalise_rows: true,
            log_scale: false,
            theme: egui::ThemePreference::System,
            recent_runs: RecentRuns::default(),
        }
    }
}

impl RememberedSettings {
    /// The copy in `storage`, if there is a readable one.
    pub fn load(storage: &dyn eframe::Storage) -> Option<Self> {
        eframe::get_value(storage, STORAGE_KEY)
    }

    pub fn save(&self, storage: &mut dyn eframe::Storage) {
        eframe::set_value(storage, STORAGE_KEY, self);
    }
}
