//! The left panel: dataset, transformations, objective, model, hyper-parameters, run controls.

use std::path::PathBuf;

use eframe::egui;

use crate::config::{MAX_IMBALANCE, ScheduleKind, TransformChoice};
use crate::data::{DatasetKind, ImbalanceProfile};
use crate::model::ModelKind;
use crate::sla::transform::ALL_PERMUTATIONS;
use crate::sla::{ClassWeighting, Mode, TransformPreset, TransformSet};
use crate::train::TrainerCommand;

use crate::config::TrainConfig;
use crate::train::trainer;

use super::class_bars;
use super::download_job::DownloadJob;
use super::experiment_panel::ExperimentChoice;
use super::experiment_queue::ExperimentQueue;
use super::fewshot_settings;
use super::folder_dialog::FolderDialogs;
use super::folder_dialog::FolderField;
use super::model_summary;
use super::model_summary::SummaryCache;
use super::more_settings;
use super::preview::DatasetPreview;
use super::recent_runs::RecentAction;
use super::recent_runs::RecentRuns;
use super::run_state::Phase;
use super::run_state::RunState;
use super::shortcuts;
use super::step_estimate;
use super::step_estimate::StepEstimate;

const DATASETS: [DatasetKind; 7] = [
    DatasetKind::FashionMini,
    DatasetKind::FashionMnist,
    DatasetKind::Mnist,
    DatasetKind::Cifar10,
    DatasetKind::Cifar100,
    DatasetKind::TinyImagenet,
    DatasetKind::Folder,
];

/// A folder row after its label: the "Browse…" button at the right end, the typed path filling
/// what is left, so a long path never widens the panel.
fn button_then_field() -> egui::Layout {
    egui::Layout::right_to_left(egui::Align::Center)
}

/// The setup panel's own state: the editors of the settings that are not the settings themselves
/// (typed folders, the custom transformation ticks, the experiment's choices) and its caches.
#[derive(Default)]
pub struct SetupPanel {
    /// Custom transformation set: rotations 0/90/180/270 × the six channel orders.
    pub custom_transforms: bool,
    pub custom_rotations: [bool; 4],
    pub custom_permutations: [bool; 6],
    pub run_dir_text: String,
    pub open_dir_text: String,
    pub data_dir_text: String,
    pub model_summary: SummaryCache,
    pub step_estimate: StepEstimate,
    pub folder_dialogs: FolderDialogs,
    pub experiment: ExperimentChoice,
}

/// What the user asked of the setup panel this frame, for the app to carry out.
#[derive(Clone, Debug, PartialEq)]
pub enum SetupAction {
    /// The dataset changed: load its preview.
    ReloadPreview,
    ResetToDefaults,
    /// Train the settings into the run folder field's folder.
    Start,
    Command(TrainerCommand),
    /// Inspect a run folder (its settings replace the panel's).
    Open(PathBuf),
    /// Open a run folder and resume its training.
    OpenAndResume(PathBuf),
    /// Add a run, or an experiment's runs, to the comparison.
    Compare(PathBuf),
    /// Download the chosen dataset into the cache.
    Download,
    /// Train these modes × the chosen seeds, one after another.
    StartExperiment(Vec<Mode>),
    /// Go on with a stopped or failed experiment.
    ContinueExperiment,
}

/// What the setup panel draws from besides its own state. It edits `config`; the rest it only
/// reads (the recent runs are folded and unfolded in place).
pub struct SetupInput<'a> {
    pub config: &'a mut TrainConfig,
    pub state: &'a RunState,
    pub preview: &'a Option<Result<DatasetPreview, String>>,
    pub download: Option<&'a DownloadJob>,
    pub queue: Option<&'a ExperimentQueue>,
    pub recent_runs: &'a mut RecentRuns,
    /// Hide the run folder (a time-stamped name) for snapshot tests.
    pub deterministic: bool,
}

impl SetupPanel {
    /// Draw the settings and the run controls; returns what the user asked for.
    pub fn show(&mut self, ui: &mut egui::Ui, input: SetupInput<'_>) -> Vec<SetupAction> {
        let mut frame = SetupFrame {
            panel: self,
            config: input.config,
            state: input.state,
            preview: input.preview,
            download: input.download,
            queue: input.queue,
            recent_runs: input.recent_runs,
            deterministic: input.deterministic,
            actions: Vec::new(),
        };
        frame.show(ui);
        frame.actions
    }

    /// Why `config` cannot start in the run folder field's folder, if it cannot.
    pub fn start_blocker(
        &self,
        config: &TrainConfig,
        preview: &Option<Result<DatasetPreview, String>>,
    ) -> Option<String> {
        if let Err(error) = config.validate() {
            return Some(error.to_string());
        }
        match preview {
            None => return Some("the dataset is still loading".into()),
            Some(Err(error)) => return Some(error.clone()),
            Some(Ok(preview)) => {
                let shape = preview.shape;
                let set = config.transforms.set().ok()?;
                if let Err(error) = set.check_image_shape(shape.channels, shape.height, shape.width)
                {
                    return Some(error.to_string());
                }
                let train: usize = match preview.train_counts(config) {
                    Ok(counts) => counts.iter().sum(),
                    Err(error) => return Some(error),
                };
                if train.saturating_sub(config.validation) < config.batch_size {
                    return Some(format!(
                        "the batch size {} is larger than the {} training images",
                        config.batch_size, train
                    ));
                }
            }
        }
        if self.run_dir_text.trim().is_empty() {
            return Some("choose a run folder".into());
        }
        if crate::run::is_run_folder(std::path::Path::new(self.run_dir_text.trim())) {
            return Some(
                "the run folder already holds a run: open it to resume, or choose another".into(),
            );
        }
        None
    }

    /// Set the transformation controls to `config`'s set, so that the next frame, which rebuilds
    /// the config from the controls, keeps a custom set (from `sla gui --rotations …` or an opened
    /// run) instead of replacing it with the preset.
    pub fn show_transforms_of(&mut self, config: &TrainConfig) {
        let TransformChoice::Custom {
            quarter_turns,
            permutations,
        } = &config.transforms
        else {
            self.custom_transforms = false;
            return;
        };
        self.custom_transforms = true;
        for (turns, on) in self.custom_rotations.iter_mut().enumerate() {
            *on = quarter_turns.contains(&(turns as u8));
        }
        for (permutation, on) in ALL_PERMUTATIONS.iter().zip(&mut self.custom_permutations) {
            *on = permutations.contains(permutation);
        }
    }
}

/// One frame of the setup panel: its state, what it draws from, and the actions asked so far.
pub(super) struct SetupFrame<'a> {
    pub(super) panel: &'a mut SetupPanel,
    pub(super) config: &'a mut TrainConfig,
    pub(super) state: &'a RunState,
    pub(super) preview: &'a Option<Result<DatasetPreview, String>>,
    pub(super) download: Option<&'a DownloadJob>,
    pub(super) queue: Option<&'a ExperimentQueue>,
    pub(super) recent_runs: &'a mut RecentRuns,
    pub(super) deterministic: bool,
    pub(super) actions: Vec<SetupAction>,
}

impl SetupFrame<'_> {
    fn show(&mut self, ui: &mut egui::Ui) {
        self.take_chosen_folder();
        let locked = self.state.is_active();
        ui.add_enabled_ui(!locked, |ui| {
            fewshot_settings::setting_choice(ui, self.config);
            ui.separator();
            self.dataset_section(ui);
            ui.separator();
            self.transform_section(ui);
            ui.separator();
            self.objective_section(ui);
            ui.separator();
            if let Some(fewshot) = self.config.fewshot.as_mut() {
                fewshot_settings::show(ui, fewshot);
                ui.separator();
            }
            self.hyper_parameter_section(ui);
            let side = match &self.preview {
                Some(Ok(preview)) => Some(preview.shape.height),
                _ => None,
            };
            more_settings::show(ui, self.config, side);
            if ui
                .button("Reset to defaults")
                .on_hover_text("Every setting above back to its default")
                .clicked()
            {
                self.actions.push(SetupAction::ResetToDefaults);
            }
        });
        ui.separator();
        self.run_controls(ui);
    }

    /// A "Browse…" button that opens the folder dialog for `field`.
    fn browse_button(&mut self, ui: &mut egui::Ui, field: FolderField, hint: &str) {
        let open = self.panel.folder_dialogs.is_open();
        let clicked = ui
            .add_enabled(!open, egui::Button::new("Browse…"))
            .on_hover_text(hint)
            .on_disabled_hover_text("a folder dialog is open")
            .clicked();
        if clicked {
            let typed = match field {
                FolderField::Data => &self.panel.data_dir_text,
                FolderField::Run => &self.panel.run_dir_text,
                FolderField::Open => &self.panel.open_dir_text,
            };
            let start = PathBuf::from(typed.trim());
            self.panel.folder_dialogs.open(field, &start, ui.ctx());
        }
    }

    /// Put a folder chosen in a dialog into its field, as if typed and confirmed.
    fn take_chosen_folder(&mut self) {
        let Some((field, path)) = self.panel.folder_dialogs.poll() else {
            return;
        };
        let text = path.display().to_string();
        match field {
            FolderField::Data => {
                self.panel.data_dir_text = text;
                let before = self.config.dataset.clone();
                self.apply_data_dir_text();
                if self.config.dataset != before {
                    self.actions.push(SetupAction::ReloadPreview);
                }
            }
            FolderField::Run => self.panel.run_dir_text = text,
            FolderField::Open => {
                self.panel.open_dir_text = text;
                if !self.state.is_active() {
                    self.actions.push(SetupAction::Open(path));
                }
            }
        }
    }

    /// The typed data folder becomes the dataset's folder (empty: the default places).
    fn apply_data_dir_text(&mut self) {
        let text = self.panel.data_dir_text.trim();
        self.config.dataset.dir = (!text.is_empty()).then(|| PathBuf::from(text));
    }

    fn dataset_section(&mut self, ui: &mut egui::Ui) {
        let heading = ui.heading("Dataset");
        let before = self.config.dataset.clone();
        egui::ComboBox::from_id_salt("dataset")
            .selected_text(self.config.dataset.kind.name())
            .show_ui(ui, |ui| {
                for kind in DATASETS {
                    ui.selectable_value(&mut self.config.dataset.kind, kind, kind.name());
                }
            })
            .response
            .labelled_by(heading.id);
        if self.config.dataset.kind != DatasetKind::FashionMini {
            ui.horizontal(|ui| {
                let label = ui.label("Folder");
                ui.with_layout(button_then_field(), |ui| {
                    self.browse_button(ui, FolderField::Data, "Choose the dataset's folder");
                    let field = egui::TextEdit::singleline(&mut self.panel.data_dir_text)
                        .desired_width(ui.available_width());
                    let response = ui.add(field).labelled_by(label.id).on_hover_text(
                        "Leave empty for the Debian Fashion-MNIST or the dataset cache (sla data get \
                         NAME); a typed folder takes effect on Enter or when the field loses focus",
                    );
                    // Enter ends a single-line edit too, so this covers both.
                    if response.lost_focus() {
                        self.apply_data_dir_text();
                    }
                });
            });
        }
        if self.config.dataset.kind.resizes() {
            ui.horizontal(|ui| {
                let label = ui.label("Image size");
                ui.add(egui::DragValue::new(&mut self.config.dataset.image_size).range(8..=256))
                    .labelled_by(label.id);
            });
        }
        if self.config.dataset != before {
            self.actions.push(SetupAction::ReloadPreview);
        }
        match &self.preview {
            None => {
                ui.horizontal(|ui| {
                    ui.spinner();
                    ui.label("loading…");
                });
            }
            Some(Ok(p)) => {
                ui.label(format!(
                    "{} train / {} test images, {} classes, {}×{}×{}",
                    p.train_len,
                    p.test_len,
                    p.class_names.len(),
                    p.shape.channels,
                    p.shape.height,
                    p.shape.width
                ));
            }
            Some(Err(error)) => {
                ui.colored_label(super::ERROR_COLOUR, error);
            }
        }
        self.download_controls(ui);
        ui.horizontal(|ui| {
            let label = ui.label("Limit train");
            let mut limit = self.config.limit_train.unwrap_or(0);
            ui.add(egui::DragValue::new(&mut limit).range(0..=1_000_000))
                .labelled_by(label.id)
                .on_hover_text("0 = all images");
            self.config.limit_train = (limit > 0).then_some(limit);
            let label = ui.label("test");
            let mut limit = self.config.limit_test.unwrap_or(0);
            ui.add(egui::DragValue::new(&mut limit).range(0..=1_000_000))
                .labelled_by(label.id);
            self.config.limit_test = (limit > 0).then_some(limit);
        });
        self.imbalance_controls(ui);
    }

    /// ρ, the profile and the class weights, with the per-class counts they give drawn live.
    fn imbalance_controls(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            let label = ui.label("Imbalance ρ");
            ui.add(
                egui::DragValue::new(&mut self.config.imbalance)
                    .range(1.0..=MAX_IMBALANCE)
                    .speed(0.5),
            )
            .labelled_by(label.id)
            .on_hover_text(
                "n_max / n_min: 1 keeps the data as it is; 100 leaves the last class 100× fewer \
                 training images than the first (the test set stays balanced)",
            );
            let label = ui.label("profile");
            egui::ComboBox::from_id_salt("imbalance-profile")
                .selected_text(self.config.imbalance_profile.name())
                .show_ui(ui, |ui| {
                    for profile in [ImbalanceProfile::Exp, ImbalanceProfile::Step] {
                        ui.selectable_value(
                            &mut self.config.imbalance_profile,
                            profile,
                            profile.name(),
                        )
                        .on_hover_text(match profile {
                            ImbalanceProfile::Exp => "class c keeps n_max · ρ^(−c/(N−1)) images",
                            ImbalanceProfile::Step => {
                                "the second half of the classes keeps n_max / ρ"
                            }
                        });
                    }
                })
                .response
                .labelled_by(label.id);
        });
        ui.horizontal(|ui| {
            let label = ui.label("Class weights");
            egui::ComboBox::from_id_salt("class-weights")
                .selected_text(self.config.class_weights.name())
                .show_ui(ui, |ui| {
                    for weighting in [ClassWeighting::None, ClassWeighting::Effective] {
                        ui.selectable_value(
                            &mut self.config.class_weights,
                            weighting,
                            weighting.name(),
                        );
                    }
                })
                .response
                .labelled_by(label.id)
                .on_hover_text(
                    "effective: each class weighs (1 − β) / (1 − β^n), the inverse of its effective \
                     number of samples (class-balanced loss)",
                );
            if self.config.class_weights == ClassWeighting::Effective {
                let label = ui.label("β");
                ui.add(
                    egui::DragValue::new(&mut self.config.cb_beta)
                        .range(0.0..=0.99999)
                        .speed(0.0001)
                        .max_decimals(5),
                )
                .labelled_by(label.id);
            }
        });
        let Some(Ok(preview)) = &self.preview else {
            return;
        };
        match preview.train_counts(self.config) {
            Ok(counts) => {
                let groups = class_bars::groups_of(self.config.imbalance, &counts);
                class_bars::count_chart(ui, &preview.class_names, &counts, groups.as_deref());
            }
            Err(error) => {
                ui.colored_label(super::ERROR_COLOUR, error);
            }
        }
    }

    /// A missing downloadable set offers its download; a running one shows progress and Cancel.
    fn download_controls(&mut self, ui: &mut egui::Ui) {
        if let Some(job) = &self.download {
            let (text, fraction) = job.status();
            ui.label(text);
            ui.horizontal(|ui| {
                match fraction {
                    Some(f) => ui.add(
                        egui::ProgressBar::new(f)
                            .desired_width(200.0)
                            .show_percentage(),
                    ),
                    None => ui.spinner(),
                };
                if ui.button("Cancel").clicked() {
                    job.cancel();
                }
            });
            return;
        }
        let downloadable = self.config.dataset.kind.downloadable();
        let missing = self.config.dataset.dir.is_none()
            && crate::download::locate(self.config.dataset.kind.name(), None).is_none();
        if downloadable && missing && matches!(self.preview, Some(Err(_))) {
            let size = crate::download::spec(self.config.dataset.kind.name())
                .ok()
                .and_then(|spec| spec.files.iter().map(|f| f.size).sum::<Option<u64>>())
                .map(|bytes| format!(" ({:.0} MiB)", bytes as f64 / 1048576.0))
                .unwrap_or_default();
            if ui
                .button(format!(
                    "Download {}{size}",
                    self.config.dataset.kind.name()
                ))
                .clicked()
            {
                self.actions.push(SetupAction::Download);
            }
        }
    }

    fn channels(&self) -> Option<usize> {
        match &self.preview {
            Some(Ok(p)) => Some(p.shape.channels),
            _ => None,
        }
    }

    fn transform_section(&mut self, ui: &mut egui::Ui) {
        let heading = ui.heading("Transformations");
        let grey = self.channels().is_some_and(|c| c != 3);
        let grey_reason = "colour permutations need RGB images; this dataset is grey";
        ui.checkbox(
            &mut self.panel.custom_transforms,
            "Custom rotations × channel orders",
        );
        if self.panel.custom_transforms {
            egui::Grid::new("custom transforms").show(ui, |ui| {
                for (index, degrees) in [0, 90, 180, 270].iter().enumerate() {
                    ui.checkbox(
                        &mut self.panel.custom_rotations[index],
                        format!("{degrees}°"),
                    );
                }
                ui.end_row();
                for (index, permutation) in ALL_PERMUTATIONS.iter().enumerate() {
                    let name: String = permutation
                        .iter()
                        .map(|&c| ['R', 'G', 'B'][usize::from(c)])
                        .collect();
                    let enabled = index == 0 || !grey;
                    ui.add_enabled(
                        enabled,
                        egui::Checkbox::new(&mut self.panel.custom_permutations[index], name),
                    )
                    .on_disabled_hover_text(grey_reason);
                    if index == 2 {
                        ui.end_row();
                    }
                }
                ui.end_row();
            });
            let quarter_turns: Vec<u8> = (0..4u8)
                .filter(|&i| self.panel.custom_rotations[usize::from(i)])
                .collect();
            let permutations: Vec<[u8; 3]> = ALL_PERMUTATIONS
                .iter()
                .enumerate()
                .filter(|(i, _)| self.panel.custom_permutations[*i] && !(grey && *i > 0))
                .map(|(_, p)| *p)
                .collect();
            // Only a change of the ticked set replaces the config's: a set opened from a run keeps
            // its own order of transformations (its joint labels depend on it).
            let unchanged = match &self.config.transforms {
                TransformChoice::Custom {
                    quarter_turns: turns,
                    permutations: orders,
                } => same_members(turns, &quarter_turns) && same_members(orders, &permutations),
                TransformChoice::Preset(_) => false,
            };
            if !unchanged {
                self.config.transforms = TransformChoice::Custom {
                    quarter_turns,
                    permutations,
                };
            }
        } else {
            let current = match self.config.transforms {
                TransformChoice::Preset(preset) => preset,
                TransformChoice::Custom { .. } => TransformPreset::Rotation,
            };
            let mut chosen = current;
            egui::ComboBox::from_id_salt("preset")
                .selected_text(current.name())
                .show_ui(ui, |ui| {
                    for preset in TransformPreset::ALL {
                        let colour = TransformSet::preset(preset)
                            .transforms()
                            .iter()
                            .any(|t| t.is_colour_permutation());
                        ui.add_enabled_ui(!(grey && colour), |ui| {
                            ui.selectable_value(&mut chosen, preset, preset.name());
                        })
                        .response
                        .on_disabled_hover_text(grey_reason);
                    }
                })
                .response
                .labelled_by(heading.id);
            self.config.transforms = TransformChoice::Preset(chosen);
        }
        match self.config.transforms.set() {
            Ok(set) => {
                ui.label(format!("M = {}: {}", set.len(), set.names().join(", ")));
            }
            Err(error) => {
                ui.colored_label(super::ERROR_COLOUR, error.to_string());
            }
        }
    }

    fn objective_section(&mut self, ui: &mut egui::Ui) {
        let label = ui.heading("Objective and model");
        egui::ComboBox::from_id_salt("mode")
            .selected_text(self.config.mode.name())
            .show_ui(ui, |ui| {
                for &mode in fewshot_settings::modes(self.config) {
                    ui.selectable_value(&mut self.config.mode, mode, mode.name())
                        .on_hover_text(mode.explanation());
                }
            })
            .response
            .labelled_by(label.id);
        ui.label(egui::RichText::new(self.config.mode.explanation()).small());
        egui::ComboBox::from_id_salt("model")
            .selected_text(self.config.model.name())
            .show_ui(ui, |ui| {
                for model in ModelKind::ALL {
                    ui.selectable_value(&mut self.config.model, model, model.name());
                }
            })
            .response
            .labelled_by(label.id);
        let shape = match &self.preview {
            Some(Ok(preview)) => Some((preview.shape, preview.class_names.len())),
            _ => None,
        };
        model_summary::show(ui, &mut self.panel.model_summary, self.config, shape);
        // The step timer times a standard step; a few-shot step is an episode.
        if let Some(shape) = shape.filter(|_| self.config.fewshot.is_none()) {
            let busy = self.state.is_active();
            step_estimate::show(ui, &mut self.panel.step_estimate, self.config, shape, busy);
        }
    }

    fn hyper_parameter_section(&mut self, ui: &mut egui::Ui) {
        ui.heading("Training");
        egui::Grid::new("hyper-parameters")
            .num_columns(2)
            .show(ui, |ui| {
                // Few-shot runs count episodes (above), and an episode is its own batch.
                if self.config.fewshot.is_none() {
                    let label = ui.label("Epochs");
                    ui.add(egui::DragValue::new(&mut self.config.epochs).range(1..=10_000))
                        .labelled_by(label.id);
                    ui.end_row();
                    let label = ui.label("Batch size");
                    ui.add(egui::DragValue::new(&mut self.config.batch_size).range(1..=4096))
                        .labelled_by(label.id);
                    ui.end_row();
                }
                let label = ui.label("Learning rate");
                ui.add(
                    egui::DragValue::new(&mut self.config.lr)
                        .speed(0.001)
                        .range(1e-6..=10.0),
                )
                .labelled_by(label.id);
                ui.end_row();
                let label = ui.label("Schedule");
                egui::ComboBox::from_id_salt("schedule")
                    .selected_text(match self.config.schedule {
                        ScheduleKind::MultiStep => "multi-step",
                        ScheduleKind::Cosine => "cosine",
                    })
                    .show_ui(ui, |ui| {
                        ui.selectable_value(
                            &mut self.config.schedule,
                            ScheduleKind::MultiStep,
                            "multi-step",
                        );
                        ui.selectable_value(
                            &mut self.config.schedule,
                            ScheduleKind::Cosine,
                            "cosine",
                        );
                    })
                    .response
                    .labelled_by(label.id);
                ui.end_row();
                let label = ui.label("Momentum");
                ui.add(
                    egui::DragValue::new(&mut self.config.momentum)
                        .speed(0.01)
                        .range(0.0..=0.999),
                )
                .labelled_by(label.id);
                ui.end_row();
                let label = ui.label("Weight decay");
                ui.add(
                    egui::DragValue::new(&mut self.config.weight_decay)
                        .speed(1e-5)
                        .range(0.0..=0.1),
                )
                .labelled_by(label.id);
                ui.end_row();
                if self.config.mode == Mode::SlaSd {
                    let label = ui.label("Temperature");
                    ui.add(
                        egui::DragValue::new(&mut self.config.temperature)
                            .speed(0.1)
                            .range(0.1..=20.0),
                    )
                    .labelled_by(label.id);
                    ui.end_row();
                }
                let label = ui.label("Seed");
                ui.add(egui::DragValue::new(&mut self.config.seed))
                    .labelled_by(label.id);
                ui.end_row();
                let label = ui.label("Device");
                egui::ComboBox::from_id_salt("device")
                    .selected_text(self.config.device.clone())
                    .show_ui(ui, |ui| {
                        for device in crate::device::available_devices() {
                            ui.selectable_value(
                                &mut self.config.device,
                                device.to_string(),
                                device,
                            );
                        }
                    })
                    .response
                    .labelled_by(label.id);
                ui.end_row();
            });
    }

    fn run_controls(&mut self, ui: &mut egui::Ui) {
        ui.heading("Run");
        if !self.deterministic {
            ui.horizontal(|ui| {
                let label = ui.label("Folder");
                ui.with_layout(button_then_field(), |ui| {
                    let idle = !self.state.is_active();
                    if idle {
                        self.browse_button(ui, FolderField::Run, "Choose where the run is written");
                    }
                    let field = egui::TextEdit::singleline(&mut self.panel.run_dir_text)
                        .desired_width(ui.available_width());
                    ui.add_enabled(idle, field).labelled_by(label.id);
                });
            });
        }
        let blocker = self.panel.start_blocker(self.config, self.preview);
        ui.horizontal_wrapped(|ui| {
            match self.state.phase {
                Phase::Training => {
                    if ui.button("Pause").on_hover_text("Space").clicked() {
                        self.actions
                            .push(SetupAction::Command(TrainerCommand::Pause));
                    }
                }
                Phase::Paused => {
                    if ui.button("Resume").on_hover_text("Space").clicked() {
                        self.actions
                            .push(SetupAction::Command(TrainerCommand::Resume));
                    }
                }
                _ => {
                    let start = ui
                        .add_enabled(
                            blocker.is_none() && !self.state.is_active(),
                            egui::Button::new("Start"),
                        )
                        .on_hover_text(shortcuts::hint(
                            ui.ctx(),
                            "Train with these settings",
                            &shortcuts::START,
                        ));
                    if start.clicked() {
                        self.actions.push(SetupAction::Start);
                    }
                }
            }
            let active = self.state.is_active();
            if ui
                .add_enabled(active, egui::Button::new("Stop"))
                .on_hover_text("Finish the step, save a checkpoint, end")
                .clicked()
            {
                self.actions
                    .push(SetupAction::Command(TrainerCommand::Stop));
            }
            if ui
                .add_enabled(active, egui::Button::new("Save checkpoint"))
                .on_hover_text(shortcuts::hint(
                    ui.ctx(),
                    "Save a resumable checkpoint now",
                    &shortcuts::SAVE_CHECKPOINT,
                ))
                .clicked()
            {
                self.actions
                    .push(SetupAction::Command(TrainerCommand::SaveCheckpoint));
            }
        });
        if let Some(reason) = blocker.as_ref().filter(|_| !self.state.is_active()) {
            ui.colored_label(super::ERROR_COLOUR, reason);
        }
        self.experiment_section(ui, blocker.as_deref());
        ui.separator();
        ui.horizontal(|ui| {
            let label = ui.label("Open run");
            ui.with_layout(button_then_field(), |ui| {
                if !self.state.is_active() {
                    self.browse_button(ui, FolderField::Open, "Choose a run folder and open it");
                }
                let field = ui
                    .add(
                        egui::TextEdit::singleline(&mut self.panel.open_dir_text)
                            .id(shortcuts::open_run_field())
                            .desired_width(ui.available_width()),
                    )
                    .labelled_by(label.id)
                    .on_hover_text(shortcuts::hint(
                        ui.ctx(),
                        "A run folder to inspect or resume; Enter opens it",
                        &shortcuts::OPEN_RUN,
                    ));
                let entered = field.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
                if entered && !self.state.is_active() && !self.panel.open_dir_text.trim().is_empty()
                {
                    let dir = PathBuf::from(self.panel.open_dir_text.trim());
                    self.actions.push(SetupAction::Open(dir));
                }
            });
        });
        let dir = PathBuf::from(self.panel.open_dir_text.trim());
        ui.horizontal(|ui| {
            let idle = !self.state.is_active() && !self.panel.open_dir_text.trim().is_empty();
            if ui.add_enabled(idle, egui::Button::new("Inspect")).clicked() {
                self.actions.push(SetupAction::Open(dir.clone()));
            }
            let resumable = idle && trainer::is_resumable(&dir);
            if ui
                .add_enabled(resumable, egui::Button::new("Resume"))
                .clicked()
            {
                self.actions.push(SetupAction::OpenAndResume(dir.clone()));
            }
            let comparable = !self.panel.open_dir_text.trim().is_empty();
            if ui
                .add_enabled(comparable, egui::Button::new("Compare"))
                .on_hover_text(
                    "Add this run, or every run of an experiment folder, to the comparison view",
                )
                .clicked()
            {
                self.actions.push(SetupAction::Compare(dir.clone()));
            }
        });
        match self.recent_runs.show(ui, !self.state.is_active()) {
            Some(RecentAction::Open(dir)) => {
                self.panel.open_dir_text = dir.display().to_string();
                self.actions.push(SetupAction::Open(dir));
            }
            Some(RecentAction::Compare(dir)) => self.actions.push(SetupAction::Compare(dir)),
            None => {}
        }
    }
}

/// Whether two lists hold the same items, in any order.
fn same_members<T: PartialEq>(a: &[T], b: &[T]) -> bool {
    a.len() == b.len() && a.iter().all(|x| b.contains(x))
}
