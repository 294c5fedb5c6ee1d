//! The integration tests, one binary with a module per area.

mod cli;
mod data;
mod download;
mod ops;
mod training;
