//! The command line: `sla train | eval | render | data | gui`; each subcommand in its own file.

pub mod bench;
pub mod data;
pub mod eval;
pub mod experiment;
pub mod gui;
pub mod render;
pub mod train;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "sla",
    version,
    about = "Train image classifiers with Self-supervised Label Augmentation"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train a model and write a run folder.
    Train(train::TrainArgs),
    /// Evaluate a run's checkpoint with every inference mode it supports.
    Eval(eval::EvalArgs),
    /// Train several modes on the same data and seeds and tabulate their accuracies.
    Experiment(Box<experiment::ExperimentArgs>),
    /// Draw a run folder's views (inputs, confusion matrices, curves) to PNG files.
    Render(render::RenderArgs),
    /// List, download or import datasets.
    Data(data::DataArgs),
    /// Open the desktop app (the default without a command).
    Gui(Box<gui::GuiArgs>),
    /// Time training steps on random data (fast or stock CPU ops).
    Bench(bench::BenchArgs),
}

/// Run a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Some(Command::Train(args)) => train::run(args),
        Some(Command::Eval(args)) => eval::run(args),
        Some(Command::Data(args)) => data::run(args),
        Some(Command::Render(args)) => render::run(args),
        Some(Command::Experiment(args)) => experiment::run(*args),
        Some(Command::Gui(args)) => gui::run(*args),
        Some(Command::Bench(args)) => bench::run(args),
        None => crate::gui::run(crate::gui::GuiOptions::default()),
    }
}

/// Format a fraction in [0, 1] as a percentage.
pub fn percent(value: f64) -> String {
    format!("{:.2}%", 100.0 * value)
}
