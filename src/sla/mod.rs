//! The SLA method: input transformations, the joint-label arithmetic and the training objectives.

pub mod class_weights;
pub mod joint;
pub mod objective;
pub mod transform;

pub use class_weights::ClassWeighting;
pub use objective::{Mode, Objective, Outputs, Predictions};
pub use transform::{Transform, TransformError, TransformPreset, TransformSet};
