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
    /// The window's inner size, WIDTHxHEIGHT in points (default: the last launch's, or 1280x800).
    #[arg(long, value_name = "WxH", value_parser = parse_window_size)]
    pub window_size: Option<[f32; 2]>,
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
        window_size: args.window_size,
    })
}

/// "1280x1000" → [1280, 1000]; at least the window's minimum of 800×500.
fn parse_window_size(text: &str) -> Result<[f32; 2], String> {
    let invalid = || format!("{text:?} is not a size like 1280x1000 (width x height in points)");
    let (width, height) = text.split_once(['x', 'X']).ok_or_else(invalid)?;
    let width: u16 = width.trim().parse().map_err(|_| invalid())?;
    let height: u16 = height.trim().parse().map_err(|_| invalid())?;
    if width < 800 || height < 500 {
        return Err(format!("{text}: the window is at least 800x500"));
    }
    Ok([f32::from(width), f32::from(height)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_sizes_are_width_x_height_and_at_least_the_minimum() {
        assert_eq!(parse_window_size("1280x1000"), Ok([1280.0, 1000.0]));
        assert_eq!(parse_window_size("900X600"), Ok([900.0, 600.0]));
        for bad in [
            "1280",
            "x1000",
            "1280x",
            "wide x tall",
            "-5x600",
            "99999x600",
        ] {
            let error = parse_window_size(bad).expect_err(bad);
            assert!(error.contains("is not a size"), "{error}");
        }
        let small = parse_window_size("640x480").expect_err("too small");
        assert!(small.contains("at least 800x500"), "{small}");
    }
}
