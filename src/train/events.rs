//! The trainer's messages to a front end, and the front end's commands to the trainer.

use std::path::PathBuf;
use std::sync::Arc;

use super::trainer::TrainError;
use crate::run::{EvalMetrics, SampleGrid, StepRecord, TrainingSnapshot};

/// What happened in the trainer. After each event is sent the trainer calls the front end's waker.
// A few events a second at most (one per step): the size of the rare `Finished` costs nothing
// worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum TrainerEvent {
    /// Data loaded and model built; training is about to begin (or continue, when resumed).
    Started(RunInfo),
    Step(StepStats),
    /// An evaluation finished.
    Snapshot(Arc<TrainingSnapshot>),
    /// Few-shot runs: a training episode just stepped on, as the input grid shows it (about one a
    /// second, not every step: the app draws the latest).
    Episode(Arc<TrainingEpisode>),
    Paused,
    Resumed,
    CheckpointSaved(PathBuf),
    Finished(Result<Summary, TrainError>),
}

/// Facts about a run that do not change while it trains.
#[derive(Clone, Debug, PartialEq)]
pub struct RunInfo {
    pub run_dir: PathBuf,
    pub device: String,
    pub train_images: usize,
    pub test_images: usize,
    pub num_classes: usize,
    /// Training images of each class (after limits, imbalance and the validation split).
    pub train_class_counts: Vec<usize>,
    pub num_transforms: usize,
    pub steps_per_epoch: u64,
    pub total_steps: u64,
    /// The step training starts from (0, or the checkpoint's step when resumed).
    pub first_step: u64,
}

/// One optimisation step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepStats {
    /// Steps done so far (1 after the first).
    pub step: u64,
    pub epoch: usize,
    pub loss: f64,
    pub lr: f64,
    /// Wall-clock seconds since the run began (as `steps.csv` records them).
    pub seconds: f64,
    /// Source images per second, smoothed over recent steps.
    pub images_per_s: f64,
    /// Transformed images (source × M) per second.
    pub transformed_per_s: f64,
    /// Few-shot runs: the training episode's query accuracy.
    pub accuracy: Option<f64>,
}

impl StepStats {
    /// The step as `steps.csv` records it.
    pub fn record(&self) -> StepRecord {
        StepRecord {
            step: self.step,
            epoch: self.epoch,
            loss: self.loss,
            lr: self.lr,
            seconds: Some(self.seconds),
            accuracy: self.accuracy,
        }
    }
}

/// A training episode of a few-shot run with the verdicts of its queries (made before the step).
#[derive(Clone, Debug, PartialEq)]
pub struct TrainingEpisode {
    /// Steps done, this episode's included.
    pub step: u64,
    pub grid: SampleGrid,
    /// The ways of the episode with the base class each stands for ("way 1: Sandal").
    pub class_names: Vec<String>,
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    pub steps: u64,
    pub final_metrics: Option<EvalMetrics>,
    /// Stopped by the user before the last step; the checkpoint allows resuming.
    pub stopped_early: bool,
    pub elapsed_s: f64,
    /// Seconds the steps of this session waited for their batches (or episodes).
    pub data_wait_s: f64,
}

/// What a front end may ask of a running trainer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrainerCommand {
    Pause,
    Resume,
    /// Finish the current step, save a checkpoint and end.
    Stop,
    SaveCheckpoint,
}
