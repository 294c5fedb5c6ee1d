//! An experiment launched from the window: the runs of an `ExperimentPlan` trained one after
//! another by the app's trainer (so the watch view shows each live), each started, resumed or
//! skipped by the plan's own rules, as `sla experiment` does; the comparison view fills in as runs
//! finish, and the experiment's tables are written when the last one does.

use eframe::egui;

use crate::experiment::{ExperimentPlan, PlannedRun, RunPlan};
use crate::sla::Mode;
use crate::train::trainer::RunStart;

/// Where one run of the queue is.
#[derive(Clone, Debug, PartialEq)]
pub enum QueueStatus {
    Waiting,
    Training,
    Done,
    /// Stopped by the user: the queue waits, and Continue resumes it from its checkpoint.
    Stopped,
    Failed(String),
}

#[derive(Clone, Debug)]
pub struct QueuedRun {
    pub run: PlannedRun,
    pub status: QueueStatus,
}

/// What the queue asks of the app next.
#[derive(Debug)]
pub enum QueueStep {
    /// Train this run (marked as training).
    Train(RunStart),
    /// A run was already complete: add it to the comparison.
    Skipped(usize),
    /// Every run is done: write the experiment's tables.
    Finished,
    /// Nothing to do (waiting for the user, or failed).
    Idle,
}

pub struct ExperimentQueue {
    pub plan: ExperimentPlan,
    pub runs: Vec<QueuedRun>,
    /// The tables' outcome once written, for the user.
    pub results: Option<Result<(), String>>,
}

impl ExperimentQueue {
    pub fn new(plan: ExperimentPlan) -> Self {
        let runs = plan
            .runs()
            .into_iter()
            .map(|run| QueuedRun {
                run,
                status: QueueStatus::Waiting,
            })
            .collect();
        Self {
            plan,
            runs,
            results: None,
        }
    }

    /// The modes a one-click comparison trains: the baseline against the chosen mode (SLA when
    /// the chosen mode is the baseline itself).
    pub fn against_baseline(mode: Mode) -> Vec<Mode> {
        let other = if mode == Mode::Baseline {
            Mode::Sla
        } else {
            mode
        };
        vec![Mode::Baseline, other]
    }

    /// The index of the run being trained.
    pub fn training(&self) -> Option<usize> {
        self.runs
            .iter()
            .position(|r| r.status == QueueStatus::Training)
    }

    /// Whether the queue has runs left to train and nothing stops it.
    pub fn is_running(&self) -> bool {
        self.training().is_some()
            || (self.results.is_none()
                && !self
                    .runs
                    .iter()
                    .any(|r| matches!(r.status, QueueStatus::Stopped | QueueStatus::Failed(_))))
    }

    /// The next thing to do: the first waiting run, planned from its folder (a folder trained
    /// with other settings fails the queue with the reason), or the tables once all are done.
    pub fn next_step(&mut self) -> QueueStep {
        if self.training().is_some() || !self.is_running() {
            return QueueStep::Idle;
        }
        let Some(index) = self
            .runs
            .iter()
            .position(|r| r.status == QueueStatus::Waiting)
        else {
            return QueueStep::Finished;
        };
        let queued = &mut self.runs[index];
        match queued.run.plan() {
            Ok(RunPlan::Complete(_)) => {
                queued.status = QueueStatus::Done;
                QueueStep::Skipped(index)
            }
            Ok(RunPlan::Train { start, .. }) => {
                queued.status = QueueStatus::Training;
                QueueStep::Train(start)
            }
            Err(error) => {
                queued.status = QueueStatus::Failed(format!("{error:#}"));
                QueueStep::Idle
            }
        }
    }

    /// The run in training ended: finished, stopped by the user, or failed.
    pub fn ended(&mut self, status: QueueStatus) {
        if let Some(index) = self.training() {
            self.runs[index].status = status;
        }
    }

    /// Put stopped and failed runs back in the queue (a stopped run resumes from its checkpoint).
    pub fn continue_runs(&mut self) {
        for run in &mut self.runs {
            if matches!(run.status, QueueStatus::Stopped | QueueStatus::Failed(_)) {
                run.status = QueueStatus::Waiting;
            }
        }
    }

    /// Each run with its status; the one in training with `progress` (0 to 1).
    pub fn show(&self, ui: &mut egui::Ui, progress: Option<f32>) {
        let done = self
            .runs
            .iter()
            .filter(|r| r.status == QueueStatus::Done)
            .count();
        ui.label(format!(
            "Experiment in {}: {done} of {} runs done",
            self.plan.out.display(),
            self.runs.len()
        ));
        for queued in &self.runs {
            ui.horizontal(|ui| {
                ui.label(&queued.run.name);
                match &queued.status {
                    QueueStatus::Waiting => {
                        ui.weak("waiting");
                    }
                    QueueStatus::Training => {
                        ui.add(
                            egui::ProgressBar::new(progress.unwrap_or(0.0))
                                .desired_width(120.0)
                                .show_percentage(),
                        );
                    }
                    QueueStatus::Done => {
                        ui.label("done");
                    }
                    QueueStatus::Stopped => {
                        ui.label("stopped");
                    }
                    QueueStatus::Failed(why) => {
                        ui.colored_label(super::ERROR_COLOUR, "failed")
                            .on_hover_text(why);
                    }
                }
            });
        }
        match &self.results {
            Some(Ok(())) => {
                ui.label(format!(
                    "Tables written: {}",
                    self.plan
                        .out
                        .join(crate::experiment::RESULTS_MARKDOWN)
                        .display()
                ));
            }
            Some(Err(why)) => {
                ui.colored_label(super::ERROR_COLOUR, why);
            }
            None => {}
        }
    }
}
