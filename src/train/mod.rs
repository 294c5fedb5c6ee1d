//! Training: the trainer loop, optimiser and schedule, events, snapshots, metrics and checkpoints.

pub mod snapshot;

pub use snapshot::{EvalMetrics, SampleGrid, TrainingSnapshot};
