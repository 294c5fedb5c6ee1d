//! The integration tests, one binary with a module per area.

mod cli;
mod conv;
mod crash;
mod data;
mod download;
mod fewshot;
mod fuzz_regressions;
mod gpu;
mod gui;
mod hostile;
mod imbalanced;
mod ops;
mod properties;
mod reference_options;
mod support;
mod tiny_imagenet;
mod training;
