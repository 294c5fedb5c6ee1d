//! `sla gui` (and `sla` alone): open the desktop app, optionally starting a run at once.

use std::path::PathBuf;

use clap::Args;

use crate::config::TrainConfig;
use crate::gui::GuiOptions;

use super::train::TrainArgs;

#[derive(Debug, Args)]
pub struct GuiArgs {
    /// Start training at once with the given (or default) settings.
    #[arg(long)]
    pub autostart: bool,
    /// Close the window after this many epochs (for demos, tests and screenshots).
    #[arg(long)]
    pub exit_after_epochs: Option<usize>,
    /// Open a run folder, or an `sla experiment` folder (all its runs), in the comparison view;
    /// repeat to compare several.
    #[arg(long, value_name = "DIR")]
    pub open: Vec<PathBuf>,
    /// Save a PNG of the whole window, then close: after --exit-after-epochs epochs, or with
    /// --open once the comparison is drawn.
    #[arg(long)]
    pub screenshot: Option<PathBuf>,
    #[command(flatten)]
    pub train: TrainArgs,
}

pub fn run(args: GuiArgs) -> anyhow::Result<()> {
    let config = args.train.config()?;
    // Settings given on the command line win; without any, the app starts where the last launch
    // left off.
    let restore = config == TrainConfig::default() && args.train.out.is_none() && !args.autostart;
    for dir in &args.open {
        if !dir.is_dir() {
            anyhow::bail!("--open {}: no such folder", dir.display());
        }
    }
    crate::gui::run(GuiOptions {
        restore,
        config,
        run_dir: args.train.out.clone(),
        autostart: args.autostart,
        exit_after_epochs: args.exit_after_epochs,
        screenshot: args.screenshot,
        deterministic: false,
        open: args.open,
    })
}
