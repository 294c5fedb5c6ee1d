//! The desktop app: set up a run, train it, and watch it through the GPU views.

pub mod app;
mod chart_hover;
mod chart_zoom;
mod class_bars;
pub mod compare_confusion;
pub mod compare_panel;
mod download_job;
mod experiment_panel;
pub mod experiment_queue;
pub mod fewshot_settings;
mod folder_dialog;
mod model_summary;
pub mod more_settings;
mod most_confused;
mod notice;
mod preview;
mod recent_runs;
pub mod remembered;
pub mod run_state;
mod setup_panel;
mod shortcuts;
mod status_bar;
mod step_estimate;
mod top_losses;
mod views;
mod watch_panel;
mod x_axis;

use std::path::PathBuf;

use eframe::egui;

use crate::config::TrainConfig;

pub use app::SlaApp;
pub use folder_dialog::{FolderChooser, FolderField};

/// The colour of errors and failures, readable on the dark and the light theme.
const ERROR_COLOUR: egui::Color32 = egui::Color32::from_rgb(240, 110, 100);

/// How the app starts (the `sla gui` flags).
#[derive(Clone, Debug, Default)]
pub struct GuiOptions {
    pub config: TrainConfig,
    /// Run folder for the next run (default: `runs/run-<time>`).
    pub run_dir: Option<PathBuf>,
    /// Start training at once.
    pub autostart: bool,
    /// Close after this many epochs have been evaluated.
    pub exit_after_epochs: Option<usize>,
    /// Save a PNG of the whole window when closing through `exit_after_epochs`.
    pub screenshot: Option<PathBuf>,
    /// Hide everything that depends on timing (rates, ETA, durations), for snapshot tests.
    pub deterministic: bool,
    /// Start from the settings the last launch remembered, if any (instead of `config`).
    pub restore: bool,
    /// Runs (or experiment folders of runs) to open in the comparison view at start; with
    /// `screenshot` and no `exit_after_epochs`, the window is saved once drawn and closes.
    pub open: Vec<PathBuf>,
    /// The window's inner size in points, instead of the remembered one (e.g. a tall window that
    /// shows the whole comparison in one screenshot).
    pub window_size: Option<[f32; 2]>,
}

/// Open the window and run until it closes.
pub fn run(options: GuiOptions) -> anyhow::Result<()> {
    let native = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_inner_size(options.window_size.unwrap_or([1280.0, 800.0]))
            .with_min_inner_size([800.0, 500.0])
            .with_title("sla — Self-supervised Label Augmentation"),
        // A size asked for must not be replaced by the one the last launch remembered.
        persist_window: options.window_size.is_none(),
        renderer: eframe::Renderer::Wgpu,
        wgpu_options: eframe::egui_wgpu::WgpuConfiguration {
            wgpu_setup: crate::gpu::wgpu_setup_for_compute(),
            ..Default::default()
        },
        ..Default::default()
    };
    eframe::run_native(
        "sla",
        native,
        Box::new(move |cc| Ok(Box::new(SlaApp::new(cc, options)))),
    )
    .map_err(|e| anyhow::anyhow!("the window could not be opened: {e}"))
}
