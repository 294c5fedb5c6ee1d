//! Training: the trainer loop, optimiser and schedule, events, snapshots, metrics and checkpoints.

pub mod ahead;
pub mod best;
pub mod checkpoint;
pub mod commands;
pub mod evaluate;
pub mod events;
pub mod optim;
pub mod prefetch;
pub mod sampler;
pub mod schedule;
pub mod setup;
pub mod step_timer;
pub mod trainer;

pub use crate::run::{EvalMetrics, SampleGrid, TrainingSnapshot};
pub use events::{RunInfo, StepStats, Summary, TrainerCommand, TrainerEvent, TrainingEpisode};
pub use trainer::{RunStart, TrainError, TrainerHandle};
