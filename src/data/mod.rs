//! Datasets: readers for the supported formats, the embedded default set, batching and augmentation.

pub mod dataset;

pub use dataset::{DataError, Dataset, ImageShape};
