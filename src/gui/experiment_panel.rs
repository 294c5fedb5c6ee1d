//! The setup panel's experiment section: train several modes × seeds on the current settings,
//! one after another, into the run folder field's folder (an experiment folder), with a one-click
//! "baseline vs the chosen mode", and the queue's progress.

use std::path::PathBuf;

use eframe::egui;

use crate::experiment::{Arm, ExperimentPlan};
use crate::sla::Mode;

use super::app::SlaApp;
use super::experiment_queue::{ExperimentQueue, QueueStatus, QueueStep};
use super::run_state::Phase;
use super::setup_panel::{SetupAction, SetupFrame};

/// The experiment's choices in the setup panel.
#[derive(Clone, Debug, PartialEq)]
pub struct ExperimentChoice {
    /// One tick per `Mode::ALL`.
    pub modes: [bool; 5],
    /// Comma-separated seeds.
    pub seeds: String,
}

impl Default for ExperimentChoice {
    fn default() -> Self {
        Self {
            modes: [true, false, false, true, false],
            seeds: "0".into(),
        }
    }
}

impl ExperimentChoice {
    fn seeds(&self) -> Result<Vec<u64>, String> {
        self.seeds
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse()
                    .map_err(|_| format!("seed {s:?} is not a whole number"))
            })
            .collect()
    }
}

impl SetupFrame<'_> {
    pub(super) fn experiment_section(&mut self, ui: &mut egui::Ui, blocker: Option<&str>) {
        let idle = !self.state.is_active() && self.queue.as_ref().is_none_or(|q| !q.is_running());
        egui::CollapsingHeader::new("Experiment")
            .id_salt("experiment")
            .show(ui, |ui| {
                ui.label(
                    "Train several modes on these settings, one after another, into the run \
                     folder above; the comparison fills in as they finish.",
                );
                ui.add_enabled_ui(idle, |ui| {
                    ui.horizontal_wrapped(|ui| {
                        let allowed = super::fewshot_settings::modes(self.config);
                        for (mode, on) in Mode::ALL.iter().zip(&mut self.panel.experiment.modes) {
                            ui.add_enabled(
                                allowed.contains(mode),
                                egui::Checkbox::new(on, mode.name()),
                            );
                        }
                    });
                    ui.horizontal(|ui| {
                        let label = ui.label("Seeds");
                        ui.add(
                            egui::TextEdit::singleline(&mut self.panel.experiment.seeds)
                                .desired_width(80.0),
                        )
                        .labelled_by(label.id)
                        .on_hover_text("Comma-separated: each mode trains once per seed");
                    });
                    let ready = idle && blocker.is_none();
                    ui.horizontal(|ui| {
                        let chosen: Vec<Mode> = Mode::ALL
                            .iter()
                            .zip(self.panel.experiment.modes)
                            .filter(|(mode, on)| {
                                *on && super::fewshot_settings::modes(self.config).contains(mode)
                            })
                            .map(|(mode, _)| *mode)
                            .collect();
                        if ui
                            .add_enabled(
                                ready && !chosen.is_empty(),
                                egui::Button::new("Run experiment"),
                            )
                            .clicked()
                        {
                            self.actions.push(SetupAction::StartExperiment(chosen));
                        }
                        let pair = ExperimentQueue::against_baseline(self.config.mode);
                        let text = format!("Baseline vs {}", pair[1].name());
                        if ui
                            .add_enabled(ready, egui::Button::new(text))
                            .on_hover_text(
                                "One click: the baseline and the chosen mode on these settings",
                            )
                            .clicked()
                        {
                            self.actions.push(SetupAction::StartExperiment(pair));
                        }
                    });
                });
                let progress = self.run_progress();
                if let Some(queue) = self.queue {
                    queue.show(ui, progress);
                    let halted = queue
                        .runs
                        .iter()
                        .any(|r| matches!(r.status, QueueStatus::Stopped | QueueStatus::Failed(_)));
                    if halted && idle && ui.button("Continue experiment").clicked() {
                        self.actions.push(SetupAction::ContinueExperiment);
                    }
                }
            });
    }

    /// How far the current run is, 0 to 1.
    fn run_progress(&self) -> Option<f32> {
        let (info, stats) = (self.state.info.as_ref()?, self.state.last_step?);
        Some(stats.step as f32 / info.total_steps.max(1) as f32)
    }
}

impl SlaApp {
    /// Go on with a stopped or failed experiment from its first unfinished run.
    pub(super) fn continue_experiment(&mut self) {
        if let Some(queue) = &mut self.queue {
            queue.continue_runs();
            self.advance_queue();
        }
    }

    /// Plan an experiment of `modes` × the chosen seeds on the current settings, in the run
    /// folder field's folder, and start its first run.
    pub(super) fn start_experiment(&mut self, modes: Vec<Mode>) {
        let seeds = match self.setup.experiment.seeds() {
            Ok(seeds) => seeds,
            Err(why) => {
                self.state.message = Some(why);
                return;
            }
        };
        let plan = ExperimentPlan {
            out: PathBuf::from(self.setup.run_dir_text.trim()),
            base: self.config.clone(),
            arms: modes
                .into_iter()
                .map(|mode| Arm {
                    mode,
                    class_balanced: false,
                })
                .collect(),
            seeds,
            sweep: None,
        };
        if let Err(error) = plan
            .validate()
            .and_then(|()| Ok(std::fs::create_dir_all(&plan.out)?))
        {
            self.state.message = Some(format!("experiment: {error:#}"));
            return;
        }
        self.queue = Some(ExperimentQueue::new(plan));
        self.advance_queue();
    }

    /// Start the queue's next run, skipping complete ones into the comparison; when all are
    /// done, write the experiment's tables and show the comparison of its runs.
    pub(super) fn advance_queue(&mut self) {
        loop {
            let Some(queue) = &mut self.queue else { return };
            match queue.next_step() {
                QueueStep::Train(start) => {
                    self.spawn(start);
                    return;
                }
                QueueStep::Skipped(index) => {
                    let dir = queue.runs[index].run.dir.clone();
                    self.compare.add(&dir);
                }
                QueueStep::Finished => {
                    let result =
                        crate::experiment::write_results(&queue.plan, "the app's experiment queue")
                            .map(|_| ())
                            .map_err(|error| format!("the tables could not be written: {error:#}"));
                    queue.results = Some(result);
                    let out = queue.plan.out.clone();
                    self.recent_runs.remember(&out);
                    self.show_compare = true;
                    return;
                }
                QueueStep::Idle => return,
            }
        }
    }

    /// A run of the queue ended (the trainer reported its end): record how, and go on.
    pub(super) fn queue_run_ended(&mut self) {
        let Some(queue) = &mut self.queue else { return };
        let Some(index) = queue.training() else {
            return;
        };
        let status = match &self.state.phase {
            Phase::Finished {
                stopped_early: false,
            } => QueueStatus::Done,
            Phase::Finished {
                stopped_early: true,
            } => QueueStatus::Stopped,
            Phase::Failed(why) => QueueStatus::Failed(why.clone()),
            _ => return,
        };
        let done = status == QueueStatus::Done;
        queue.ended(status);
        if done {
            // It joins the comparison (which skips a run it has); the central panel stays on the
            // next run's live views until the last one ends.
            let dir = queue.runs[index].run.dir.clone();
            self.compare.add(&dir);
            self.advance_queue();
        }
    }
}
