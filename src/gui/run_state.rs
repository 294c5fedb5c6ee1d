//! What the GUI knows about the run it shows: drained from trainer events, or read from a run folder.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crate::run::RunHistory;
use crate::train::{RunInfo, StepStats, TrainerEvent, TrainingEpisode};

static REVISIONS: AtomicU64 = AtomicU64::new(1);

fn next_revision() -> u64 {
    REVISIONS.fetch_add(1, Ordering::Relaxed)
}

/// Where the run is in its life.
#[derive(Clone, Debug, PartialEq)]
pub enum Phase {
    Idle,
    Loading,
    Training,
    Paused,
    Finished { stopped_early: bool },
    Failed(String),
}

/// The plain data every panel draws from; the trainer never sees it.
pub struct RunState {
    pub phase: Phase,
    pub info: Option<RunInfo>,
    pub last_step: Option<StepStats>,
    /// The curves, evaluations and latest snapshot, as `sla render` reads them from the folder.
    pub history: RunHistory,
    /// Few-shot runs while they train: the latest training episode, for the input grid.
    pub training_episode: Option<Arc<TrainingEpisode>>,
    pub message: Option<String>,
    /// Changes whenever curves or snapshot change, so views re-render only then. Drawn from one
    /// process-wide counter, so a new run never reuses an old run's revision (and its cached pictures).
    pub revision: u64,
    started: Option<Instant>,
}

impl Default for RunState {
    fn default() -> Self {
        Self {
            phase: Phase::Idle,
            info: None,
            last_step: None,
            history: RunHistory::default(),
            training_episode: None,
            message: None,
            revision: next_revision(),
            started: None,
        }
    }
}

impl RunState {
    pub fn loading() -> Self {
        Self {
            phase: Phase::Loading,
            started: Some(Instant::now()),
            ..Default::default()
        }
    }

    pub fn is_active(&self) -> bool {
        matches!(self.phase, Phase::Loading | Phase::Training | Phase::Paused)
    }

    /// Fold one trainer event into the state.
    pub fn apply(&mut self, event: TrainerEvent) {
        match event {
            TrainerEvent::Started(info) => {
                self.phase = Phase::Training;
                if info.first_step > 0 {
                    self.reload_history(&info.run_dir.clone(), info.first_step);
                }
                self.info = Some(info);
            }
            TrainerEvent::Step(stats) => {
                self.history.push_step(&stats.record());
                self.last_step = Some(stats);
                self.revision = next_revision();
            }
            TrainerEvent::Snapshot(snapshot) => {
                self.history.push_evaluation(snapshot);
                self.revision = next_revision();
            }
            TrainerEvent::Episode(episode) => {
                self.training_episode = Some(episode);
                self.revision = next_revision();
            }
            TrainerEvent::Paused => self.phase = Phase::Paused,
            TrainerEvent::Resumed => self.phase = Phase::Training,
            TrainerEvent::CheckpointSaved(path) => {
                self.message = Some(format!("checkpoint saved in {}", path.display()));
            }
            TrainerEvent::Finished(Ok(summary)) => {
                self.phase = Phase::Finished {
                    stopped_early: summary.stopped_early,
                };
                self.message = Some(format!(
                    "{} after {} steps ({:.0} s)",
                    if summary.stopped_early {
                        "stopped"
                    } else {
                        "finished"
                    },
                    summary.steps,
                    summary.elapsed_s
                ));
            }
            TrainerEvent::Finished(Err(error)) => self.phase = Phase::Failed(error.to_string()),
        }
    }

    /// Load the curves and latest snapshot a run folder already holds (to inspect or resume it).
    /// Whatever cannot be read is said in `message`, never dropped: a torn final log line (a run
    /// killed mid-write) is skipped with a note, a corrupt file leaves its view empty with the reason.
    pub fn reload_history(&mut self, run: &Path, up_to_step: u64) {
        let loaded = RunHistory::read(run, up_to_step);
        let problems = loaded.problems();
        self.history = loaded.history;
        if !problems.is_empty() {
            self.message = Some(problems.join("\n"));
        }
        self.revision = next_revision();
    }

    /// A finished run folder opened for inspection.
    pub fn from_folder(run: &Path) -> Self {
        let mut state = Self {
            phase: Phase::Finished {
                stopped_early: false,
            },
            message: Some(format!("opened {}", run.display())),
            ..Default::default()
        };
        state.reload_history(run, u64::MAX);
        state
    }

    /// Estimated seconds left, from the smoothed rate, once a few steps are done.
    pub fn eta_s(&self) -> Option<f64> {
        let (info, stats) = (self.info.as_ref()?, self.last_step?);
        if stats.step < info.first_step + 3 || stats.images_per_s <= 0.0 {
            return None;
        }
        let steps_left = info.total_steps.saturating_sub(stats.step) as f64;
        let images_per_step = info.train_images as f64 / info.steps_per_epoch.max(1) as f64;
        Some(steps_left * images_per_step / stats.images_per_s)
    }

    pub fn elapsed_s(&self) -> f64 {
        self.started.map_or(0.0, |s| s.elapsed().as_secs_f64())
    }

    pub fn run_dir(&self) -> Option<&PathBuf> {
        self.info.as_ref().map(|i| &i.run_dir)
    }
}
