//! The comparison view: several finished runs (or every run of an `sla experiment` folder) side
//! by side, one overlaid curve per run and a table of their settings and final accuracies.

use std::path::{Path, PathBuf};

use eframe::egui;

use crate::config::{TrainConfig, TransformChoice};
use crate::gpu::style::category_colour;
use crate::run::{self, Chart, ComparedSeries, RunHistory, Spread, TrainingSnapshot, overlay};

use super::chart_hover::{self, ReadoutAxes};
use super::compare_confusion::DifferenceView;
use super::views::{COMPARE_CHART, GpuViews};
use super::x_axis::{XAxis, XUnit};

/// Smoothing of an overlaid training loss: enough to tell runs apart through the step noise.
const LOSS_SMOOTHING: f32 = 0.9;

/// One run in the comparison.
pub struct ComparedRun {
    pub dir: PathBuf,
    /// The folder's name: what the legend and the table call the run.
    pub label: String,
    pub config: TrainConfig,
    pub history: RunHistory,
    /// The last evaluation's snapshot (its confusion matrices), once the run has one.
    pub snapshot: Option<TrainingSnapshot>,
    pub visible: bool,
}

impl ComparedRun {
    /// The run's own step ↔ x map in `unit`.
    fn axis(&self, unit: XUnit) -> XAxis<'_> {
        XAxis {
            unit,
            steps_per_epoch: self.history.steps_per_epoch(),
            seconds: &self.history.seconds,
        }
    }
}

/// The runs compared and how they are shown.
pub struct ComparePanel {
    pub runs: Vec<ComparedRun>,
    pub series: ComparedSeries,
    /// The x axis as chosen; shown only when every run has what it needs (see `shown_unit`).
    pub x_unit: XUnit,
    /// What could not be read, for the user.
    pub problems: Vec<String>,
    /// The difference of two runs' confusion matrices.
    pub difference: DifferenceView,
    /// Changes with the runs, their visibility or the series, so the chart redraws only then.
    revision: u64,
    /// The chart of `revision`: rebuilding it copies every run's curves, too much for every frame.
    drawn_chart: Option<(u64, Chart)>,
}

impl Default for ComparePanel {
    fn default() -> Self {
        Self {
            runs: Vec::new(),
            series: ComparedSeries::default(),
            x_unit: XUnit::default(),
            problems: Vec::new(),
            difference: DifferenceView::default(),
            revision: 1,
            drawn_chart: None,
        }
    }
}

impl ComparePanel {
    /// Add the run in `dir`, or every run folder directly inside it (an experiment folder), in
    /// name order. A folder already compared is not added twice. Returns how many were added.
    pub fn add(&mut self, dir: &Path) -> usize {
        let folders = if run::is_run_folder(dir) {
            vec![dir.to_path_buf()]
        } else {
            let mut inside: Vec<PathBuf> = std::fs::read_dir(dir)
                .map(|entries| {
                    entries
                        .filter_map(|entry| entry.ok().map(|e| e.path()))
                        .filter(|path| run::is_run_folder(path))
                        .collect()
                })
                .unwrap_or_default();
            inside.sort();
            inside
        };
        if folders.is_empty() {
            self.problems.push(format!(
                "{}: neither a run folder nor a folder of runs (no {} in it or in its folders)",
                dir.display(),
                run::CONFIG_FILE
            ));
            return 0;
        }
        let mut added = 0;
        for folder in folders {
            if self.runs.iter().any(|r| r.dir == folder) {
                continue;
            }
            let config = match run::read_config(&folder) {
                Ok(config) => config,
                Err(error) => {
                    self.problems.push(error.to_string());
                    continue;
                }
            };
            let loaded = RunHistory::read_logs(&folder, u64::MAX);
            self.problems.extend(loaded.problems());
            // A run not evaluated yet has no snapshot: not a problem, only no matrix to compare.
            let snapshot = if folder.join(run::SNAPSHOT_FILE).exists() {
                run::read_snapshot(&folder)
                    .map_err(|error| self.problems.push(error.to_string()))
                    .ok()
            } else {
                None
            };
            let name = |path: &Path| path.file_name().map(|n| n.to_string_lossy().into_owned());
            let mut label = name(&folder).unwrap_or_else(|| folder.display().to_string());
            // Two experiments both have a baseline-seed0: the folder above tells them apart.
            if self.runs.iter().any(|r| r.label == label)
                && let Some(parent) = folder.parent().and_then(name)
            {
                label = format!("{parent}/{label}");
            }
            self.runs.push(ComparedRun {
                dir: folder,
                label,
                config,
                history: loaded.history,
                snapshot,
                visible: true,
            });
            added += 1;
        }
        self.revision += 1;
        added
    }

    /// The overlaid chart of the visible runs, each keeping its colour (its place in the list).
    pub fn chart(&self) -> Chart {
        let runs: Vec<(&str, &RunHistory)> = self
            .runs
            .iter()
            .map(|r| (r.label.as_str(), &r.history))
            .collect();
        let mut chart = overlay(&runs, self.series);
        let hidden: Vec<&str> = self
            .runs
            .iter()
            .filter(|r| !r.visible)
            .map(|r| r.label.as_str())
            .collect();
        chart.series.retain(|s| !hidden.contains(&s.name.as_str()));
        let unit = self.shown_unit();
        for line in &mut chart.series {
            if let Some(run) = self.runs.iter().find(|r| r.label == line.name) {
                let axis = run.axis(unit);
                for x in &mut line.xs {
                    *x = axis.x_of(f64::from(*x)) as f32;
                }
            }
        }
        chart
    }

    /// The chosen x unit when every run can show it (one axis for all lines), else steps.
    pub fn shown_unit(&self) -> XUnit {
        if self.unavailable(self.x_unit).is_none() {
            self.x_unit
        } else {
            XUnit::Steps
        }
    }

    /// Why some run cannot show `unit`, naming the run.
    fn unavailable(&self, unit: XUnit) -> Option<String> {
        self.runs.iter().find_map(|run| {
            run.axis(unit)
                .unavailable(unit)
                .map(|why| format!("{}: {why}", run.label))
        })
    }

    pub fn show(&mut self, ui: &mut egui::Ui, mut views: Option<&mut GpuViews>) {
        ui.horizontal(|ui| {
            ui.label(format!("Comparing {} runs", self.runs.len()));
            if ui.button("Clear").clicked() {
                *self = Self {
                    revision: self.revision + 1,
                    ..Self::default()
                };
            }
        });
        for problem in &self.problems {
            ui.colored_label(super::ERROR_COLOUR, problem);
        }
        if self.runs.is_empty() {
            ui.label(
                "Open runs to compare with \"Compare\" under Open run, or sla gui --open DIR.",
            );
            return;
        }
        ui.horizontal_wrapped(|ui| {
            ui.label("Curve");
            let before = self.series;
            for series in ComparedSeries::ALL {
                ui.selectable_value(&mut self.series, series, series.name());
            }
            if self.series != before {
                self.revision += 1;
            }
        });
        ui.horizontal(|ui| {
            ui.label("x axis");
            let before = self.x_unit;
            for unit in XUnit::ALL {
                let reason = self.unavailable(unit);
                ui.add_enabled_ui(reason.is_none(), |ui| {
                    ui.selectable_value(&mut self.x_unit, unit, unit.name())
                        .on_disabled_hover_text(reason.unwrap_or_default());
                });
            }
            if self.x_unit != before {
                self.revision += 1;
            }
        });
        ui.horizontal_wrapped(|ui| {
            for (index, run) in self.runs.iter_mut().enumerate() {
                let [r, g, b, _] = category_colour(index);
                let text = egui::RichText::new(&run.label).color(egui::Color32::from_rgb(r, g, b));
                if ui
                    .checkbox(&mut run.visible, text)
                    .on_hover_text(run.dir.display().to_string())
                    .changed()
                {
                    self.revision += 1;
                }
            }
        });
        let chart = match self.drawn_chart.take() {
            Some((revision, chart)) if revision == self.revision => chart,
            _ => self.chart(),
        };
        if let Some(views) = views.as_deref_mut() {
            let last_x = chart
                .series
                .iter()
                .filter_map(|s| s.xs.last())
                .fold(1.0f64, |last, &x| last.max(f64::from(x)));
            let size = egui::vec2(ui.available_width(), 300.0);
            let log_y = chart.kind.log_y_by_default();
            if let Some((response, axes)) = views.show_chart(
                ui,
                COMPARE_CHART,
                &chart,
                LOSS_SMOOTHING,
                log_y,
                Some((0.0, last_x)),
                self.revision,
                size,
            ) {
                let unit = self.shown_unit();
                let axis_of = |name: &str| {
                    let run = self.runs.iter().find(|r| r.label == name)?;
                    Some(run.axis(unit))
                };
                let readout_axes = ReadoutAxes::PerRun {
                    unit,
                    axis_of: &axis_of,
                };
                chart_hover::show(ui, response, &axes, &chart, readout_axes);
            }
        }
        self.drawn_chart = Some((self.revision, chart));
        ui.separator();
        self.table(ui);
        let groups = self.groups();
        if groups.iter().any(|g| g.runs > 1) {
            ui.separator();
            ui.label(
                "By mode: test accuracy (%) at the end of training, mean ± sample std over seeds",
            );
            by_mode_table(ui, &groups);
        }
        ui.separator();
        ui.strong("Difference of confusion matrices (run B − run A, same test set)");
        self.difference.show(ui, &self.runs, views);
    }

    /// The runs grouped as `sla experiment` names its arms: the folder name without its
    /// `-seed<k>` suffix, in order of first appearance; each group's final accuracies and
    /// training time as mean ± std.
    pub fn groups(&self) -> Vec<ModeGroup> {
        let mut names: Vec<&str> = Vec::new();
        for run in &self.runs {
            let name = arm_name(&run.label);
            if !names.contains(&name) {
                names.push(name);
            }
        }
        names
            .into_iter()
            .map(|name| {
                let finals: Vec<&run::EvalMetrics> = self
                    .runs
                    .iter()
                    .filter(|r| arm_name(&r.label) == name)
                    .filter_map(|r| r.history.metrics.last())
                    .collect();
                let spread = |pick: &dyn Fn(&run::EvalMetrics) -> Option<f64>| {
                    let values: Vec<f64> = finals.iter().filter_map(|m| pick(m)).collect();
                    Spread::of(&values)
                };
                ModeGroup {
                    name: name.to_string(),
                    single: spread(&|m| Some(m.single_acc)),
                    aggregated: spread(&|m| m.agg_acc),
                    self_distilled: spread(&|m| m.sd_acc),
                    train_seconds: spread(&|m| Some(m.elapsed_s)),
                    runs: finals.len(),
                }
            })
            .collect()
    }

    /// Settings and final accuracies of every run, in the list's order.
    fn table(&self, ui: &mut egui::Ui) {
        let percent =
            |value: Option<f64>| value.map_or("–".to_string(), |v| format!("{:.2}", 100.0 * v));
        egui::Grid::new("compared runs")
            .striped(true)
            .spacing([12.0, 4.0])
            .show(ui, |ui| {
                for heading in [
                    "run",
                    "mode",
                    "transforms",
                    "model",
                    "data",
                    "steps",
                    "single %",
                    "aggregated %",
                    "self-distilled %",
                    "time (s)",
                ] {
                    ui.strong(heading);
                }
                ui.end_row();
                for run in &self.runs {
                    let last = run.history.metrics.last();
                    let config = &run.config;
                    ui.label(&run.label);
                    ui.label(config.mode.name());
                    ui.label(describe_transforms(&config.transforms));
                    ui.label(config.model.name());
                    ui.label(config.dataset.kind.name());
                    ui.label(last.map_or("–".to_string(), |m| m.step.to_string()));
                    ui.label(percent(last.map(|m| m.single_acc)));
                    ui.label(percent(last.and_then(|m| m.agg_acc)));
                    ui.label(percent(last.and_then(|m| m.sd_acc)));
                    ui.label(last.map_or("–".to_string(), |m| format!("{:.0}", m.elapsed_s)));
                    ui.end_row();
                }
            });
    }
}

/// A preset by its command-line name, a custom set by its size.
fn describe_transforms(choice: &TransformChoice) -> String {
    match choice {
        TransformChoice::Preset(preset) => preset.name().to_string(),
        TransformChoice::Custom { .. } => match choice.set() {
            Ok(set) => format!("custom, M = {}", set.len()),
            Err(_) => "custom".to_string(),
        },
    }
}

/// One arm of the compared runs, over its seeds.
#[derive(Clone, Debug, PartialEq)]
pub struct ModeGroup {
    pub name: String,
    pub single: Option<Spread>,
    pub aggregated: Option<Spread>,
    pub self_distilled: Option<Spread>,
    pub train_seconds: Option<Spread>,
    /// Runs with a final evaluation.
    pub runs: usize,
}

/// `sla experiment` names a run `<arm>-seed<k>`; the arm is what its table groups by.
fn arm_name(label: &str) -> &str {
    match label.rsplit_once("-seed") {
        Some((arm, seed)) if !seed.is_empty() && seed.bytes().all(|b| b.is_ascii_digit()) => arm,
        _ => label,
    }
}

/// The groups as `results.md` prints them: same columns, same cells.
fn by_mode_table(ui: &mut egui::Ui, groups: &[ModeGroup]) {
    egui::Grid::new("compared modes")
        .striped(true)
        .spacing([12.0, 4.0])
        .show(ui, |ui| {
            for heading in [
                "mode",
                "single",
                "aggregated",
                "self-distilled",
                "training time (s)",
                "runs",
            ] {
                ui.strong(heading);
            }
            ui.end_row();
            for group in groups {
                ui.label(&group.name);
                ui.label(Spread::cell(group.single, true));
                ui.label(Spread::cell(group.aggregated, true));
                ui.label(Spread::cell(group.self_distilled, true));
                ui.label(Spread::cell(group.train_seconds, false));
                ui.label(group.runs.to_string());
                ui.end_row();
            }
        });
}

#[cfg(test)]
mod tests {
    use super::arm_name;

    #[test]
    fn the_arm_is_the_run_name_without_its_seed() {
        assert_eq!(arm_name("sla-sd-seed12"), "sla-sd");
        assert_eq!(arm_name("sla+cb-seed0"), "sla+cb");
        assert_eq!(arm_name("my-run"), "my-run");
        assert_eq!(arm_name("odd-seedling"), "odd-seedling");
    }
}
