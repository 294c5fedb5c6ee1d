//! The app's state and frame loop: trainer events in, commands out, autostart and screenshots.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use eframe::egui;

use crate::config::TrainConfig;
use crate::train::{RunStart, TrainerCommand, TrainerHandle};

use super::GuiOptions;
use super::compare_panel::ComparePanel;
use super::download_job::DownloadJob;
use super::experiment_queue::ExperimentQueue;
use super::notice::Notice;
use super::preview::{DatasetPreview, PreviewLoader};
use super::recent_runs::RecentRuns;
use super::remembered::RememberedSettings;
use super::run_state::{Phase, RunState};
use super::setup_panel::{SetupAction, SetupInput, SetupPanel};
use super::shortcuts;
use super::status_bar::{self, StatusInput};
use super::views::GpuViews;
use super::watch_panel::{WatchInput, WatchPanel};

pub struct SlaApp {
    /// The settings the next run starts with, edited in the setup panel.
    pub(super) config: TrainConfig,
    /// The left panel's editors of the settings, run folders and experiment choices.
    pub(super) setup: SetupPanel,
    pub(super) preview: Option<Result<DatasetPreview, String>>,
    pub(super) loader: Option<PreviewLoader>,
    pub(super) download: Option<DownloadJob>,
    pub(super) preview_revision: u64,
    pub(super) trainer: Option<TrainerHandle>,
    pub(super) state: RunState,
    pub(super) views: Option<GpuViews>,
    /// The central panel's view of the current run.
    pub(super) watch: WatchPanel,
    /// How the last run ended, shown in a banner until dismissed or the next run starts.
    pub(super) notice: Option<Notice>,
    pub(super) compare: ComparePanel,
    /// The central panel shows the comparison instead of the current run.
    pub(super) show_compare: bool,
    pub(super) recent_runs: RecentRuns,
    /// The experiment launched from the window, while it runs and after.
    pub(super) queue: Option<ExperimentQueue>,
    options: GuiOptions,
    ctx: egui::Context,
    screenshot_saved: Arc<AtomicBool>,
    /// When `--exit-after-epochs` began closing, and when the screenshot was last asked for.
    closing: Option<Instant>,
    screenshot_asked: Option<Instant>,
}

impl SlaApp {
    /// The app as `options` ask: from the settings the last launch remembered when
    /// `options.restore` is set and there are some, else from `options.config`.
    pub fn new(cc: &eframe::CreationContext<'_>, options: GuiOptions) -> Self {
        let remembered = cc
            .storage
            .filter(|_| options.restore)
            .and_then(RememberedSettings::load);
        Self::with_settings(cc, options, remembered)
    }

    /// The app starting from `remembered` settings (when given) instead of `options.config`.
    pub fn with_settings(
        cc: &eframe::CreationContext<'_>,
        options: GuiOptions,
        remembered: Option<RememberedSettings>,
    ) -> Self {
        let views = cc.wgpu_render_state.as_ref().map(GpuViews::new);
        if views.is_none() {
            log::error!("no wgpu render state: the GPU views are off");
        }
        let settings = remembered.unwrap_or_else(|| RememberedSettings {
            config: options.config.clone(),
            ..Default::default()
        });
        let mut app = Self {
            config: TrainConfig::default(),
            setup: SetupPanel {
                custom_rotations: [true, false, false, false],
                custom_permutations: [true, false, false, false, false, false],
                run_dir_text: options
                    .run_dir
                    .as_ref()
                    .map(|d| d.display().to_string())
                    .unwrap_or_else(default_run_dir),
                ..SetupPanel::default()
            },
            preview: None,
            loader: None,
            download: None,
            preview_revision: 0,
            trainer: None,
            state: RunState::default(),
            views,
            watch: WatchPanel::default(),
            notice: None,
            compare: ComparePanel::default(),
            show_compare: false,
            recent_runs: RecentRuns::default(),
            queue: None,
            options,
            ctx: cc.egui_ctx.clone(),
            screenshot_saved: Arc::new(AtomicBool::new(false)),
            closing: None,
            screenshot_asked: None,
        };
        app.recent_runs = settings.recent_runs.clone();
        app.apply(settings);
        for dir in app.options.open.clone() {
            app.compare_runs(&dir);
        }
        app.reload_preview();
        if app.options.autostart {
            app.start();
        }
        app
    }

    /// Show `settings` in the controls (and the theme in the window).
    fn apply(&mut self, settings: RememberedSettings) {
        self.setup.data_dir_text = settings
            .config
            .dataset
            .dir
            .as_ref()
            .map(|d| d.display().to_string())
            .unwrap_or_default();
        self.config = settings.config;
        self.setup.custom_rotations = settings.custom_rotations;
        self.setup.custom_permutations = settings.custom_permutations;
        self.setup.open_dir_text = settings.open_dir;
        self.watch.smoothing = settings.smoothing;
        self.watch.log_y = settings.log_y;
        self.watch.x_unit = settings.x_unit;
        self.watch.confusion.normalise_rows = settings.normalise_rows;
        self.watch.confusion.log_scale = settings.log_scale;
        // Snapshot tests must not depend on the theme of the machine they run on.
        let theme = if self.options.deterministic {
            egui::ThemePreference::Dark
        } else {
            settings.theme
        };
        self.ctx.set_theme(theme);
        self.setup.show_transforms_of(&self.config);
    }

    /// What the next launch starts from.
    pub fn remembered(&self) -> RememberedSettings {
        RememberedSettings {
            config: self.config.clone(),
            custom_rotations: self.setup.custom_rotations,
            custom_permutations: self.setup.custom_permutations,
            open_dir: self.setup.open_dir_text.clone(),
            smoothing: self.watch.smoothing,
            log_y: self.watch.log_y,
            x_unit: self.watch.x_unit,
            normalise_rows: self.watch.confusion.normalise_rows,
            log_scale: self.watch.confusion.log_scale,
            theme: self.ctx.options(|o| o.theme_preference),
            recent_runs: self.recent_runs.clone(),
        }
    }

    /// Answer folder dialogs with `chooser` instead of the system's dialog (tests cannot click a
    /// system window; an embedder may bring its own).
    pub fn set_folder_chooser(&mut self, chooser: super::folder_dialog::FolderChooser) {
        self.setup.folder_dialogs.set_chooser(chooser);
    }

    /// Every setting back to its default (the run folder, the run shown and the recent runs stay).
    pub(super) fn reset_to_defaults(&mut self) {
        let before = self.config.dataset.clone();
        self.apply(RememberedSettings::default());
        if self.config.dataset != before {
            self.reload_preview();
        }
    }

    /// The settings the next run starts with (what the controls show).
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// The run state (for tests and the status bar).
    pub fn run_state(&self) -> &RunState {
        &self.state
    }

    /// The experiment launched from the window, if any (for tests).
    pub fn experiment_queue(&self) -> Option<&ExperimentQueue> {
        self.queue.as_ref()
    }

    /// The runs being compared (for tests).
    pub fn compare(&self) -> &ComparePanel {
        &self.compare
    }

    /// Where the confusion matrix is on screen.
    pub fn confusion_rect(&self) -> Option<egui::Rect> {
        self.watch.confusion_rect
    }

    /// The charts' zoomed x range, if zoomed.
    pub fn chart_x_view(&self) -> Option<(f64, f64)> {
        self.watch.x_view
    }

    /// Where chart `index` (0: losses, 1: accuracies, 2: learning rate) is on screen.
    pub fn chart_rect(&self, index: usize) -> Option<egui::Rect> {
        self.watch.chart_rects.get(index).copied()
    }

    /// The selected confusion cell and the number of test images shown for it.
    pub fn selected_cell(&self) -> Option<((usize, usize), usize)> {
        self.watch
            .selected_cell
            .map(|cell| (cell, self.watch.gallery_images))
    }

    /// Whether the dataset preview has loaded (successfully or not).
    pub fn preview_loaded(&self) -> bool {
        self.preview.is_some()
    }

    pub(super) fn deterministic(&self) -> bool {
        self.options.deterministic
    }

    /// Load the chosen dataset's preview on a background thread.
    pub(super) fn reload_preview(&mut self) {
        let ctx = self.ctx.clone();
        match PreviewLoader::start(self.config.dataset.clone(), move || ctx.request_repaint()) {
            Ok(loader) => {
                self.loader = Some(loader);
                self.preview = None;
            }
            Err(error) => self.preview = Some(Err(error)),
        }
    }

    /// Why the current settings cannot start, if they cannot.
    pub(super) fn start_blocker(&self) -> Option<String> {
        self.setup.start_blocker(&self.config, &self.preview)
    }

    pub(super) fn start(&mut self) {
        if let Some(reason) = self.start_blocker().filter(|_| self.preview.is_some()) {
            self.state.message = Some(reason);
            return;
        }
        let run_dir = PathBuf::from(self.setup.run_dir_text.trim());
        self.recent_runs.remember(&run_dir);
        self.spawn(RunStart::New {
            config: Box::new(self.config.clone()),
            run_dir,
        });
    }

    pub(super) fn resume(&mut self, run_dir: PathBuf) {
        self.spawn(RunStart::Resume { run_dir });
    }

    pub(super) fn spawn(&mut self, start: RunStart) {
        let ctx = self.ctx.clone();
        // At most five frames a second from training events: drawing the window (in software, on
        // machines without a GPU) must not take the cores the trainer needs.
        let waker = move || ctx.request_repaint_after(Duration::from_millis(200));
        match TrainerHandle::spawn(start, waker) {
            Ok(handle) => {
                self.trainer = Some(handle);
                self.notice = None;
                self.state = RunState::loading();
                self.watch.new_run();
            }
            Err(error) => self.state.phase = Phase::Failed(error.to_string()),
        }
    }

    /// Download the chosen dataset into the cache, with progress in the dataset section.
    pub(super) fn start_download(&mut self) {
        let ctx = self.ctx.clone();
        let waker = move || ctx.request_repaint_after(Duration::from_millis(100));
        match DownloadJob::start(self.config.dataset.kind.name(), waker) {
            Ok(job) => self.download = Some(job),
            Err(error) => self.state.message = Some(error),
        }
    }

    pub(super) fn command(&mut self, command: TrainerCommand) {
        if let Some(trainer) = &self.trainer {
            trainer.send(command);
        }
    }

    /// Open a run folder: resume it if it has a checkpoint and is not finished, else inspect it.
    pub(super) fn open_run(&mut self, dir: &Path) {
        let config = match crate::run::read_config(dir) {
            Ok(config) => config,
            Err(error) => {
                self.state.message = Some(error.to_string());
                return;
            }
        };
        self.recent_runs.remember(dir);
        self.trainer = None;
        self.state = RunState::from_folder(dir);
        self.config = config;
        self.setup.show_transforms_of(&self.config);
        self.reload_preview();
    }

    /// Add the run in `dir`, or an experiment's runs, to the comparison and show it (it says why
    /// when nothing was added).
    pub(super) fn compare_runs(&mut self, dir: &Path) {
        if self.compare.add(dir) > 0 {
            self.recent_runs.remember(dir);
        }
        self.show_compare = true;
    }

    /// Do what the setup panel was asked.
    fn carry_out(&mut self, action: SetupAction) {
        match action {
            SetupAction::ReloadPreview => self.reload_preview(),
            SetupAction::ResetToDefaults => self.reset_to_defaults(),
            SetupAction::Start => self.start(),
            SetupAction::Command(command) => self.command(command),
            SetupAction::Open(dir) => self.open_run(&dir),
            SetupAction::OpenAndResume(dir) => {
                self.open_run(&dir);
                self.resume(dir);
            }
            SetupAction::Compare(dir) => self.compare_runs(&dir),
            SetupAction::Download => self.start_download(),
            SetupAction::StartExperiment(modes) => self.start_experiment(modes),
            SetupAction::ContinueExperiment => self.continue_experiment(),
        }
    }

    fn drain_events(&mut self) {
        let mut ended = false;
        if let Some(trainer) = &mut self.trainer {
            let was_active = self.state.is_active();
            for event in trainer.poll() {
                self.state.apply(event);
            }
            if was_active
                && let Some(notice) =
                    Notice::for_end(&self.state.phase, self.state.history.metrics.last())
            {
                notice.request_attention(&self.ctx);
                self.notice = Some(notice);
            }
            // A finished run keeps its folder; the next run gets a fresh one.
            let finished = matches!(self.state.phase, Phase::Finished { .. } | Phase::Failed(_));
            if finished && crate::run::is_run_folder(Path::new(self.setup.run_dir_text.trim())) {
                self.setup.run_dir_text = default_run_dir();
            }
            ended = was_active && finished;
        }
        if ended {
            self.queue_run_ended();
        }
        if let Some(job) = &self.download
            && let Some(result) = job.finished()
        {
            self.state.message = Some(match result {
                Ok(()) => format!("{} is ready", job.title),
                Err(error) => format!("{}: {error}", job.title),
            });
            self.download = None;
            self.reload_preview();
        }
        if let Some(loader) = &self.loader
            && let Some(result) = loader.poll()
        {
            self.preview = Some(result);
            self.loader = None;
            self.preview_revision += 1;
        }
    }

    /// `--exit-after-epochs`: once enough epochs are evaluated (or the run ended), take the
    /// screenshot if asked, then close. `--open` with `--screenshot`: the same once the comparison
    /// is drawn.
    fn exit_when_done(&mut self, ui: &egui::Ui) {
        let done = match self.options.exit_after_epochs {
            Some(epochs) => {
                let enough = self
                    .state
                    .history
                    .metrics
                    .last()
                    .is_some_and(|m| m.epoch >= epochs);
                enough || matches!(self.state.phase, Phase::Finished { .. } | Phase::Failed(_))
            }
            // `--open … --screenshot`: once the comparison has been drawn a few times.
            None => {
                !self.options.open.is_empty()
                    && self.options.screenshot.is_some()
                    && ui.ctx().cumulative_pass_nr() > 3
            }
        };
        if !done {
            if !self.options.open.is_empty() && self.options.screenshot.is_some() {
                ui.ctx().request_repaint();
            }
            return;
        }
        if self.closing.is_none() {
            self.closing = Some(Instant::now());
            self.command(TrainerCommand::Stop);
        }
        let Some(path) = self.options.screenshot.clone() else {
            ui.ctx().send_viewport_cmd(egui::ViewportCommand::Close);
            return;
        };
        if self.screenshot_saved.load(Ordering::SeqCst) {
            ui.ctx().send_viewport_cmd(egui::ViewportCommand::Close);
            return;
        }
        // Ask again if a request went unanswered (a frame painted while the window was not yet
        // exposed can drop it), and keep frames coming until the picture arrives.
        if self
            .screenshot_asked
            .is_none_or(|asked| asked.elapsed() > Duration::from_secs(2))
        {
            self.screenshot_asked = Some(Instant::now());
            let saved = self.screenshot_saved.clone();
            let ctx = ui.ctx().clone();
            ui.ctx().request_screenshot(move |image| {
                if saved.load(Ordering::SeqCst) {
                    return;
                }
                match save_screenshot(&path, &image) {
                    Ok(()) => log::info!("screenshot saved in {}", path.display()),
                    Err(error) => log::error!("screenshot: {error}"),
                }
                saved.store(true, Ordering::SeqCst);
                ctx.request_repaint();
            });
        }
        if self
            .closing
            .is_some_and(|since| since.elapsed() > Duration::from_secs(60))
        {
            log::error!("no screenshot arrived within a minute; closing without one");
            ui.ctx().send_viewport_cmd(egui::ViewportCommand::Close);
        }
        ui.ctx().request_repaint_after(Duration::from_millis(100));
    }
}

impl SlaApp {
    /// Space pauses and resumes (unless a text field has the keyboard); the others are in
    /// `shortcuts`.
    fn keyboard_shortcuts(&mut self, ui: &egui::Ui) {
        let typing = ui.ctx().memory(|m| m.focused().is_some());
        if !typing && ui.input(|i| i.key_pressed(egui::Key::Space)) {
            match self.state.phase {
                Phase::Training => self.command(TrainerCommand::Pause),
                Phase::Paused => self.command(TrainerCommand::Resume),
                _ => {}
            }
        }
        if ui.input_mut(|i| i.consume_shortcut(&shortcuts::START))
            && !self.state.is_active()
            && self.start_blocker().is_none()
        {
            self.start();
        }
        if ui.input_mut(|i| i.consume_shortcut(&shortcuts::SAVE_CHECKPOINT)) {
            self.command(TrainerCommand::SaveCheckpoint);
        }
        if ui.input_mut(|i| i.consume_shortcut(&shortcuts::OPEN_RUN)) {
            ui.ctx()
                .memory_mut(|m| m.request_focus(shortcuts::open_run_field()));
        }
    }
}

fn save_screenshot(path: &Path, image: &egui::ColorImage) -> Result<(), String> {
    let [width, height] = image.size;
    let pixels: Vec<u8> = image.pixels.iter().flat_map(|c| c.to_array()).collect();
    let buffer = image::RgbaImage::from_raw(width as u32, height as u32, pixels)
        .ok_or_else(|| "screenshot of the wrong size".to_string())?;
    buffer
        .save(path)
        .map_err(|e| format!("{}: {e}", path.display()))
}

fn default_run_dir() -> String {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!("runs/run-{seconds}")
}

impl eframe::App for SlaApp {
    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        self.remembered().save(storage);
    }

    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        self.drain_events();
        self.keyboard_shortcuts(ui);
        egui::Panel::top("status").show(ui, |ui| {
            let input = StatusInput {
                state: &self.state,
                adapter: self.views.as_ref().map(GpuViews::adapter),
                deterministic: self.deterministic(),
            };
            status_bar::show(ui, input);
        });
        if let Some(notice) = self.notice.clone() {
            egui::Panel::top("notice").show(ui, |ui| {
                if notice.show(ui) {
                    self.notice = None;
                }
            });
        }
        egui::Panel::left("setup")
            .resizable(true)
            .default_size(310.0)
            .show(ui, |ui| {
                let input = SetupInput {
                    config: &mut self.config,
                    state: &self.state,
                    preview: &self.preview,
                    download: self.download.as_ref(),
                    queue: self.queue.as_ref(),
                    recent_runs: &mut self.recent_runs,
                    deterministic: self.options.deterministic,
                };
                let actions = egui::ScrollArea::vertical()
                    .show(ui, |ui| self.setup.show(ui, input))
                    .inner;
                for action in actions {
                    self.carry_out(action);
                }
            });
        egui::CentralPanel::default().show(ui, |ui| {
            if !self.compare.runs.is_empty() || self.show_compare {
                ui.horizontal(|ui| {
                    ui.selectable_value(&mut self.show_compare, false, "Current run");
                    let label = format!("Compare ({})", self.compare.runs.len());
                    ui.selectable_value(&mut self.show_compare, true, label);
                });
                ui.separator();
            }
            if self.show_compare {
                egui::ScrollArea::vertical().show(ui, |ui| {
                    self.compare.show(ui, self.views.as_mut());
                });
            } else {
                let input = WatchInput {
                    state: &self.state,
                    config: &self.config,
                    preview: &self.preview,
                    preview_revision: self.preview_revision,
                };
                self.watch.show(ui, input, self.views.as_mut());
            }
        });
        self.exit_when_done(ui);
    }
}
