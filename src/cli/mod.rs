//! The command line: `sla train | eval | render | data | gui`; each subcommand in its own file.

pub mod bench;
pub mod data;
pub mod data_counts;
pub mod eval;
pub mod experiment;
pub mod fewshot;
pub mod gui;
pub mod interrupt;
pub mod render;
pub mod train;

use clap::{Parser, Subcommand};

#[cfg(test)]
mod tests {
    use anyhow::Context;

    #[test]
    fn each_cause_is_printed_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file");
        #[derive(Debug, thiserror::Error)]
        #[error("data/x.gz: {0}")]
        struct Repeats(#[source] std::io::Error);
        let error = Err::<(), _>(Repeats(io))
            .context("loading the data")
            .expect_err("error");
        assert_eq!(
            super::error_line(&error),
            "loading the data: data/x.gz: No such file"
        );
    }
}

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
    Train(Box<train::TrainArgs>),
    /// Evaluate a run's checkpoint with every inference mode it supports.
    Eval(eval::EvalArgs),
    /// Train several modes on the same data and seeds and tabulate their accuracies.
    Experiment(Box<experiment::ExperimentArgs>),
    /// The few-shot setting: episodic training on base classes, evaluation on novel ones.
    Fewshot(fewshot::FewShotArgs),
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
        Some(Command::Train(args)) => train::run(*args),
        Some(Command::Eval(args)) => eval::run(args),
        Some(Command::Data(args)) => data::run(args),
        Some(Command::Render(args)) => render::run(args),
        Some(Command::Experiment(args)) => experiment::run(*args),
        Some(Command::Fewshot(args)) => fewshot::run(args),
        Some(Command::Gui(args)) => gui::run(*args),
        Some(Command::Bench(args)) => bench::run(args),
        None => crate::gui::run(crate::gui::GuiOptions::default()),
    }
}

/// An error and its causes on one line, each said once: many errors repeat their cause in their own
/// message (`"{path}: {source}"`), and printing the chain as well would say it twice.
pub fn error_line(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain().map(ToString::to_string) {
        if line.contains(&cause) {
            continue;
        }
        if !line.is_empty() {
            line += ": ";
        }
        line += &cause;
    }
    line
}

/// Format a fraction in [0, 1] as a percentage.
pub fn percent(value: f64) -> String {
    format!("{:.2}%", 100.0 * value)
}
