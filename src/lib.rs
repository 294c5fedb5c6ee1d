//! `sla`: train image classifiers with Self-supervised Label Augmentation (Lee, Hwang, Shin, ICML 2020).
//!
//! The trainer (`train`) runs on candle and talks to the front ends (`cli`, `gui`) only through
//! events, commands and plain-data snapshots; the GPU views (`gpu`) never see a tensor.

pub mod cli;
pub mod config;
pub mod data;
pub mod device;
pub mod download;
pub mod experiment;
pub mod fewshot;
pub mod gpu;
pub mod gui;
pub mod model;
pub mod number_format;
pub mod ops;
pub mod process_memory;
pub mod run;
pub mod sla;
pub mod train;
pub mod worker;
