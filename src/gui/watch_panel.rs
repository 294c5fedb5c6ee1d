//! The central panel: loss and accuracy curves, the joint confusion matrix, the transformed-input
//! grid and per-transformation accuracy, all drawn by the GPU views.

use eframe::egui;

use crate::gpu::confusion::{ConfusionInput, ConfusionView, cell_at};
use crate::gpu::input_grid::BorderMode;
use candle_core::Device;

use crate::config::TrainConfig;
use crate::data::Dataset;
use crate::run::ChartKind;
use crate::sla::TransformSet;
use crate::sla::transform::Expander;
use crate::train::{SampleGrid, TrainingSnapshot};

use super::chart_hover::{self, ReadoutAxes};
use super::chart_zoom;
use super::class_bars;
use super::most_confused;
use super::preview::DatasetPreview;
use super::run_state::RunState;
use super::top_losses;
use super::views::{CHARTS, ConfusionCounts, ConfusionSettings, ConfusionSlot, Gallery, GpuViews};
use super::x_axis::{XAxis, XUnit};

/// How the current run is viewed: the panel's own state, kept between frames and launches.
#[derive(Default)]
pub struct WatchPanel {
    pub smoothing: f32,
    pub log_y: bool,
    /// What the charts' x axis counts.
    pub x_unit: XUnit,
    pub confusion: ConfusionSettings,
    /// The confusion cell whose images are shown.
    pub selected_cell: Option<(usize, usize)>,
    /// The curves' data, keyed by (run revision, number of views, x unit shown).
    charts: Option<((u64, usize, XUnit), Vec<crate::run::Chart>)>,
    /// Where the confusion matrix was drawn last frame (read by tests that click the matrix).
    pub confusion_rect: Option<egui::Rect>,
    /// Where each chart was drawn last frame (read by tests that hover over them).
    pub chart_rects: Vec<egui::Rect>,
    /// The charts' zoomed x range (`None`: the whole run).
    pub x_view: Option<(f64, f64)>,
    /// How many images the selected cell's gallery showed.
    pub gallery_images: usize,
}

/// What the watch panel draws from; it changes none of it.
pub struct WatchInput<'a> {
    pub state: &'a RunState,
    /// The settings in the setup panel: their transformations name the views before a run has.
    pub config: &'a TrainConfig,
    /// The dataset's preview: the input grid before training, the test images of galleries.
    pub preview: &'a Option<Result<DatasetPreview, String>>,
    pub preview_revision: u64,
}

impl WatchPanel {
    /// Draw the run of `input` with the GPU `views` (none: a message saying why).
    pub fn show(&mut self, ui: &mut egui::Ui, input: WatchInput<'_>, views: Option<&mut GpuViews>) {
        WatchFrame {
            panel: self,
            state: input.state,
            config: input.config,
            preview: input.preview,
            preview_revision: input.preview_revision,
            views,
        }
        .show(ui);
    }

    /// Forget the confusion cell selected in the run shown before (a new run starts).
    pub fn new_run(&mut self) {
        self.selected_cell = None;
    }
}

/// One frame of the panel: its own state and what it draws from.
struct WatchFrame<'a> {
    panel: &'a mut WatchPanel,
    state: &'a RunState,
    config: &'a TrainConfig,
    preview: &'a Option<Result<DatasetPreview, String>>,
    preview_revision: u64,
    views: Option<&'a mut GpuViews>,
}

impl WatchFrame<'_> {
    fn show(&mut self, ui: &mut egui::Ui) {
        if self.views.is_none() {
            ui.colored_label(
                egui::Color32::RED,
                "The GPU views need the wgpu renderer; none is available.",
            );
            return;
        }
        if let Some(views) = &mut self.views {
            views.set_dark(ui.visuals().dark_mode);
        }
        let full = ui.available_size();
        egui::ScrollArea::vertical()
            .id_salt("watch")
            .show(ui, |ui| {
                ui.columns(2, |columns| {
                    self.curves_column(&mut columns[0], full.y);
                    self.confusion_column(&mut columns[1], full.y);
                    self.input_grid(&mut columns[1]);
                });
            });
        if let Some(error) = self.views.as_ref().and_then(|v| v.error.clone()) {
            ui.colored_label(egui::Color32::RED, format!("view error: {error}"));
        }
    }

    fn transform_names(&self) -> Vec<String> {
        match &self.state.history.snapshot {
            Some(snapshot) => snapshot.transform_names.clone(),
            None => self
                .config
                .transforms
                .set()
                .map(|s| s.names())
                .unwrap_or_default(),
        }
    }

    /// The run's steps per epoch: from the trainer, or for an opened folder from an evaluation
    /// that fell on an epoch's end.
    fn steps_per_epoch(&self) -> Option<u64> {
        self.state
            .info
            .as_ref()
            .map(|i| i.steps_per_epoch)
            .or_else(|| self.state.history.steps_per_epoch())
            .filter(|&s| s > 0)
    }

    fn curves_column(&mut self, ui: &mut egui::Ui, height: f32) {
        ui.horizontal(|ui| {
            ui.strong("Curves");
            ui.add(egui::Slider::new(&mut self.panel.smoothing, 0.0..=0.99).text("smoothing"));
            ui.checkbox(&mut self.panel.log_y, "log y");
        });
        let axis = XAxis {
            unit: self.panel.x_unit,
            steps_per_epoch: self.steps_per_epoch(),
            seconds: &self.state.history.seconds,
        };
        ui.horizontal(|ui| {
            let label = ui.label("x axis");
            let before = self.panel.x_unit;
            ui.horizontal(|ui| {
                for unit in XUnit::ALL {
                    let reason = axis.unavailable(unit);
                    ui.add_enabled_ui(reason.is_none(), |ui| {
                        ui.selectable_value(&mut self.panel.x_unit, unit, unit.name())
                            .on_disabled_hover_text(reason.unwrap_or_default());
                    });
                }
            })
            .response
            .labelled_by(label.id);
            if self.panel.x_unit != before {
                self.panel.x_view = None;
            }
        });
        let axis = XAxis {
            unit: self.panel.x_unit,
            ..axis
        };
        let revision = self.state.revision;
        let names = self.transform_names();
        // Rebuilt only when the run's data or the axis changes: copying a long loss history every
        // frame is waste.
        let key = (revision, names.len(), axis.shown_unit());
        if self.panel.charts.as_ref().is_none_or(|(k, _)| *k != key) {
            let mut charts = self.state.history.charts(&names);
            for series in charts.iter_mut().flat_map(|c| c.series.iter_mut()) {
                series
                    .xs
                    .iter_mut()
                    .for_each(|x| *x = axis.x_of(f64::from(*x)) as f32);
            }
            self.panel.charts = Some((key, charts));
        }
        let Some((_, charts)) = self.panel.charts.take() else {
            return;
        };
        let chart_height = ((height - 290.0) / 2.0).clamp(120.0, 320.0);
        // The whole run: all its steps once known (the curves grow into the chart), else as far
        // as the curves reach; in wall time as far as the run has got.
        let per_step = axis.per_step();
        let last_x = charts
            .iter()
            .flat_map(|c| c.series.iter().filter_map(|s| s.xs.last()))
            .fold(per_step, |m, &x| m.max(f64::from(x)));
        let total_steps = self.state.info.as_ref().map(|i| i.total_steps as f64);
        let full = (
            0.0,
            match total_steps {
                Some(total) if axis.shown_unit() != XUnit::WallTime => axis.x_of(total),
                _ => last_x,
            }
            .max(per_step),
        );
        if self
            .panel
            .x_view
            .is_some_and(|(lo, hi)| lo < full.0 || hi > full.1)
        {
            self.panel.x_view = None;
        }
        let x_range = Some(self.panel.x_view.unwrap_or(full));
        let (smoothing, log_y) = (self.panel.smoothing, self.panel.log_y);
        self.panel.chart_rects.clear();
        if let Some(views) = &mut self.views {
            for (index, chart) in charts.iter().enumerate().take(CHARTS) {
                // The learning rate is context, not the subject: a short strip.
                let height = if chart.kind == ChartKind::LearningRate {
                    90.0
                } else {
                    chart_height
                };
                let size = egui::vec2(ui.available_width(), height);
                if let Some((response, axes)) = views.show_chart(
                    ui,
                    index,
                    chart,
                    smoothing,
                    log_y && chart.kind != ChartKind::LearningRate,
                    x_range,
                    revision,
                    size,
                ) {
                    self.panel.chart_rects.push(response.rect);
                    chart_zoom::interact(
                        ui,
                        &response,
                        &axes,
                        (full, per_step),
                        &mut self.panel.x_view,
                    );
                    chart_hover::show(ui, response, &axes, chart, ReadoutAxes::Run(&axis));
                }
            }
        }
        self.panel.charts = Some((key, charts));
        self.per_transform_accuracy(ui);
        self.per_class_accuracy(ui);
    }

    /// Per-class bars of the latest evaluation, sorted by training count and coloured by group,
    /// with the many / medium / few accuracies of a long-tailed run above them.
    fn per_class_accuracy(&self, ui: &mut egui::Ui) {
        let (Some(metrics), Some(snapshot)) = (
            self.state.history.metrics.last(),
            &self.state.history.snapshot,
        ) else {
            return;
        };
        let Some(per_class) = &metrics.per_class_acc else {
            return;
        };
        let counts = if snapshot.train_class_counts.is_empty() {
            self.state
                .info
                .as_ref()
                .map(|i| i.train_class_counts.clone())
                .unwrap_or_default()
        } else {
            snapshot.train_class_counts.clone()
        };
        if counts.len() != snapshot.num_classes() {
            return;
        }
        ui.separator();
        if metrics.group_rule.is_some() {
            for (i, name) in crate::run::ByInference::NAMES.iter().enumerate() {
                if let Some(line) = class_bars::group_summary(
                    metrics.many_acc.as_ref(),
                    metrics.medium_acc.as_ref(),
                    metrics.few_acc.as_ref(),
                    i,
                ) {
                    ui.label(format!("{name}: {line}"));
                }
            }
        }
        let groups = metrics
            .group_rule
            .map(|_| crate::run::class_groups(&counts).1);
        class_bars::accuracy_bars(
            ui,
            &snapshot.class_names,
            &counts,
            per_class,
            groups.as_deref(),
        );
    }

    fn per_transform_accuracy(&self, ui: &mut egui::Ui) {
        let Some(metrics) = self.state.history.metrics.last() else {
            ui.label("Accuracy appears after the first evaluation.");
            return;
        };
        let mut line = format!("single {:.1}%", 100.0 * metrics.single_acc);
        if let Some(agg) = metrics.agg_acc {
            line += &format!(
                "   aggregated {:.1}% (gain {:+.1})",
                100.0 * agg,
                100.0 * (agg - metrics.single_acc)
            );
        }
        if let Some(sd) = metrics.sd_acc {
            line += &format!("   self-distilled {:.1}%", 100.0 * sd);
        }
        ui.label(line);
        let names = self.transform_names();
        let hardest = metrics
            .per_transform_acc
            .iter()
            .enumerate()
            .min_by(|a, b| a.1.total_cmp(b.1))
            .map(|(j, _)| j);
        egui::Grid::new("per-transform").show(ui, |ui| {
            for (j, acc) in metrics.per_transform_acc.iter().enumerate() {
                let name = names.get(j).cloned().unwrap_or_else(|| format!("t{j}"));
                let label = if Some(j) == hardest && metrics.per_transform_acc.len() > 1 {
                    egui::RichText::new(format!("{name} (hardest)"))
                        .color(egui::Color32::from_rgb(240, 160, 80))
                } else {
                    egui::RichText::new(name)
                };
                ui.label(label);
                ui.add(
                    egui::ProgressBar::new(*acc as f32)
                        .text(format!("{:.1}%", 100.0 * acc))
                        .desired_width(160.0),
                );
                ui.end_row();
            }
        });
    }

    fn input_grid(&mut self, ui: &mut egui::Ui) {
        let training_episode = self
            .state
            .training_episode
            .clone()
            .filter(|_| self.state.is_active());
        let (grid, border, revision, title): (SampleGrid, BorderMode, u64, String) =
            match (&training_episode, &self.state.history.snapshot) {
                (Some(episode), _) => (
                    episode.grid.clone(),
                    BorderMode::Correctness,
                    self.state.revision,
                    format!(
                        "Training episode {}: a support image of each way (bordered by \
                         transformation), then a query of each (green: right, red: wrong, \
                         before the step)",
                        episode.step
                    ),
                ),
                (None, Some(snapshot)) => (
                    snapshot.samples.clone(),
                    BorderMode::Correctness,
                    self.state.revision,
                    if snapshot.samples.support_samples > 0 {
                        "A test episode: a support image of each way (bordered by transformation), \
                         then a query of each (green: right, red: wrong)"
                    } else {
                        "Test images as the model saw them (green: right, red: wrong)"
                    }
                    .to_string(),
                ),
                (None, None) => match &self.preview {
                    Some(Ok(preview)) => match self
                        .config
                        .transforms
                        .set()
                        .map_err(|e| e.to_string())
                        .and_then(|s| preview.expanded(&s))
                    {
                        Ok(grid) => (
                            grid,
                            BorderMode::Transform,
                            self.preview_revision ^ hash_transforms(self.config),
                            "Preview: each image with its M transformed copies".to_string(),
                        ),
                        Err(error) => {
                            ui.colored_label(super::ERROR_COLOUR, error);
                            return;
                        }
                    },
                    _ => return,
                },
            };
        ui.strong(title);
        let names = self.transform_names();
        let classes = match (
            &training_episode,
            &self.state.history.snapshot,
            &self.preview,
        ) {
            (Some(episode), _, _) => episode.class_names.clone(),
            (None, Some(s), _) => s.class_names.clone(),
            (None, None, Some(Ok(p))) => p.class_names.clone(),
            _ => Vec::new(),
        };
        let Some(views) = &mut self.views else { return };
        egui::ScrollArea::vertical().id_salt("grid").show(ui, |ui| {
            if let Some((response, layout)) = views.show_grid(ui, &grid, border, revision)
                && let Some(pos) = response.hover_pos()
            {
                let scale =
                    layout.size(grid.samples, grid.num_transforms).0 as f32 / response.rect.width();
                let x = ((pos.x - response.rect.left()) * scale) as u32;
                let y = ((pos.y - response.rect.top()) * scale) as u32;
                if let Some((b, j)) = layout.tile_at(grid.samples, grid.num_transforms, x, y) {
                    let tile = b * grid.num_transforms + j;
                    let joint = grid.num_transforms > 1
                        && grid.true_labels.get(tile).copied().unwrap_or(0) as usize
                            >= classes.len();
                    let describe = |label: u32| {
                        describe_label(label, joint, grid.num_transforms, &classes, &names)
                    };
                    let text = format!(
                        "{} · {}\nlabel {}\npredicted {}",
                        classes
                            .get(
                                grid.true_labels[tile] as usize
                                    / if joint { grid.num_transforms } else { 1 }
                            )
                            .cloned()
                            .unwrap_or_default(),
                        names.get(j).cloned().unwrap_or_default(),
                        describe(grid.true_labels[tile]),
                        describe(grid.predicted_labels[tile]),
                    );
                    response.on_hover_text(text);
                }
            }
        });
    }

    fn confusion_column(&mut self, ui: &mut egui::Ui, height: f32) {
        let Some(snapshot) = self.state.history.snapshot.clone() else {
            ui.strong("Confusion matrix");
            ui.label("It appears after the first evaluation.");
            return;
        };
        let n = snapshot.num_classes();
        let m = snapshot.num_transforms().max(1);
        let joint = !snapshot.joint_confusion.is_empty();
        ui.horizontal(|ui| {
            ui.strong(if joint {
                "Joint confusion (N·M)"
            } else {
                "Class confusion"
            });
            if joint {
                ui.selectable_value(&mut self.panel.confusion.view, ConfusionView::Full, "joint");
                ui.selectable_value(
                    &mut self.panel.confusion.view,
                    ConfusionView::ClassMarginal,
                    "classes",
                );
                ui.selectable_value(
                    &mut self.panel.confusion.view,
                    ConfusionView::TransformMarginal,
                    "transformations",
                );
            }
        });
        ui.horizontal(|ui| {
            ui.checkbox(&mut self.panel.confusion.normalise_rows, "row-normalised");
            ui.checkbox(&mut self.panel.confusion.log_scale, "log");
        });
        let (counts, k, block) = if joint {
            (&snapshot.joint_confusion, n * m, m)
        } else {
            self.panel.confusion.view = ConfusionView::Full;
            (&snapshot.class_confusion, n, 1)
        };
        let side = ui.available_width().min(height * 0.55).max(100.0);
        let settings = self.panel.confusion;
        let revision = self.state.revision;
        let Some(views) = &mut self.views else { return };
        let matrix = ConfusionCounts {
            counts,
            k,
            block,
            minus: None,
        };
        let Some((response, drawn)) =
            views.show_confusion(ui, ConfusionSlot::Run, matrix, settings, revision, side)
        else {
            return;
        };
        self.panel.confusion_rect = Some(response.rect);
        let hovered = response.hover_pos().and_then(|pos| {
            let x = ((pos.x - response.rect.left()) / response.rect.width() * 1000.0) as u32;
            let y = ((pos.y - response.rect.top()) / response.rect.height() * 1000.0) as u32;
            cell_at(drawn, 1000, 1000, x, y)
        });
        if hovered != self.panel.confusion.highlight {
            self.panel.confusion.highlight = hovered;
            ui.ctx().request_repaint();
        }
        let names = self.transform_names();
        let label = |index: usize| -> String {
            match (joint, self.panel.confusion.view) {
                (true, ConfusionView::Full) => {
                    describe_label(index as u32, true, m, &snapshot.class_names, &names)
                }
                (true, ConfusionView::TransformMarginal) => {
                    names.get(index).cloned().unwrap_or_default()
                }
                _ => snapshot.class_names.get(index).cloned().unwrap_or_default(),
            }
        };
        // The drawn matrix (marginals summed as the renderer sums them), for hover and selection text.
        let drawn_input = ConfusionInput {
            k,
            block,
            view: self.panel.confusion.view,
            ..ConfusionInput::classes(k, counts)
        };
        let Ok((_, matrix)) = drawn_input.matrix() else {
            return;
        };
        if let Some((row, col)) = hovered {
            let count = matrix[row * drawn + col];
            let row_sum: u32 = matrix[row * drawn..(row + 1) * drawn].iter().sum();
            let text = format!(
                "true {}\npredicted {}\n{count} images ({:.1}% of the row)",
                label(row),
                label(col),
                100.0 * f64::from(count) / f64::from(row_sum.max(1))
            );
            let response = response.on_hover_text(text);
            if response.clicked() {
                self.panel.selected_cell = Some((row, col));
            }
        }
        let pairs = most_confused::most_confused(&matrix, drawn, most_confused::SHOWN);
        if let Some(cell) = most_confused::show(ui, &pairs, self.panel.selected_cell, label) {
            self.panel.selected_cell = Some(cell);
        }
        if let Some((row, col)) = self.panel.selected_cell.filter(|(r, c)| r.max(c) < &drawn) {
            ui.horizontal(|ui| {
                ui.label(format!(
                    "True {}, predicted {}: {} images, as the model saw them",
                    label(row),
                    label(col),
                    matrix.get(row * drawn + col).copied().unwrap_or(0)
                ));
                if ui.small_button("close").clicked() {
                    self.panel.selected_cell = None;
                }
            });
            let view = if joint {
                self.panel.confusion.view
            } else {
                ConfusionView::Full
            };
            let transforms = self.config.transforms.set().ok();
            if let Some(Ok(preview)) = &self.preview
                && let Some(transforms) = &transforms
                && let Some((gallery, count)) =
                    cell_gallery(&snapshot, &preview.test, transforms, view, (row, col))
                && let Some(views) = &mut self.views
            {
                let key = self.state.revision.wrapping_mul(1_000_003)
                    ^ ((row * 100_003 + col) as u64)
                    ^ ((view as u64) << 60);
                self.panel.gallery_images = count;
                views.show_gallery(ui, Gallery::Cell, &gallery, key);
            }
        }
        self.top_losses(ui, &snapshot);
    }

    /// The highest-loss test images under a folding header.
    fn top_losses(&mut self, ui: &mut egui::Ui, snapshot: &TrainingSnapshot) {
        if snapshot.top_losses.is_empty() {
            return;
        }
        let revision = self.state.revision;
        egui::CollapsingHeader::new("Top losses")
            .id_salt("top-losses")
            .show(ui, |ui| {
                if let Some(Ok(preview)) = &self.preview
                    && let Some(grid) = top_losses::grid(&snapshot.top_losses, &preview.test)
                    && let Some(views) = &mut self.views
                {
                    views.show_gallery(ui, Gallery::TopLosses, &grid, revision);
                }
                let captions = top_losses::captions(&snapshot.top_losses, &snapshot.class_names);
                top_losses::show_captions(ui, &captions);
            });
    }
}

/// Tiles shown for a clicked confusion cell at most.
const GALLERY_TILES: usize = 32;
const GALLERY_COLUMNS: usize = 8;

/// The evaluation rows behind cell (row, col) of the drawn matrix: each test image under the
/// transformation it was seen with, up to `GALLERY_TILES`, eight to a row. For non-joint runs the
/// class matrix is the identity view's, so only those rows count.
fn cell_gallery(
    snapshot: &TrainingSnapshot,
    test: &Dataset,
    transforms: &TransformSet,
    view: ConfusionView,
    cell: (usize, usize),
) -> Option<(SampleGrid, usize)> {
    let joint = !snapshot.joint_confusion.is_empty();
    let m = transforms.len();
    if snapshot.num_transforms() != m {
        return None;
    }
    let index = |label: usize| match view {
        ConfusionView::Full => label,
        ConfusionView::ClassMarginal => label / m,
        ConfusionView::TransformMarginal => label % m,
    };
    let shape = test.shape;
    let expander = Expander::new(
        transforms,
        shape.channels,
        shape.height,
        shape.width,
        &Device::Cpu,
    )
    .ok()?;
    let mut pixels = Vec::new();
    let mut count = 0;
    for (row, &predicted) in snapshot.row_predictions.iter().enumerate() {
        let (image, j) = (row / m, row % m);
        if image >= test.len() {
            break;
        }
        let y = test.labels[image] as usize;
        let truth = if joint { y * m + j } else { y };
        if (!joint && j != 0) || index(truth) != cell.0 || index(predicted as usize) != cell.1 {
            continue;
        }
        let views = expander
            .expand_bytes(
                test.image(image),
                1,
                (shape.channels, shape.height, shape.width),
            )
            .ok()?;
        let len = shape.image_len();
        pixels.extend_from_slice(&views[j * len..(j + 1) * len]);
        count += 1;
        if count == GALLERY_TILES {
            break;
        }
    }
    if count == 0 {
        return None;
    }
    Some((
        SampleGrid::gallery(shape, pixels, count, GALLERY_COLUMNS),
        count,
    ))
}

/// "class · transformation" for a joint label, or the class name.
pub(super) fn describe_label(
    label: u32,
    joint: bool,
    m: usize,
    classes: &[String],
    transforms: &[String],
) -> String {
    let label = label as usize;
    if joint {
        format!(
            "{} · {} (joint {label})",
            classes
                .get(label / m)
                .cloned()
                .unwrap_or_else(|| format!("class {}", label / m)),
            transforms.get(label % m).cloned().unwrap_or_default()
        )
    } else {
        classes
            .get(label)
            .cloned()
            .unwrap_or_else(|| format!("class {label}"))
    }
}

fn hash_transforms(config: &crate::config::TrainConfig) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    format!("{:?}", config.transforms).hash(&mut hasher);
    hasher.finish()
}
