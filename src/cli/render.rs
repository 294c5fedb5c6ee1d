//! `sla render`: the GPU views of a run folder as PNG files, headless.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use crate::gpu::{GpuContext, render_run};

#[derive(Debug, Args)]
pub struct RenderArgs {
    /// The run folder written by `sla train` or the app.
    #[arg(long)]
    pub run: PathBuf,
    /// Where to write inputs.png, confusion.png, confusion_classes.png and curves.png.
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run(args: RenderArgs) -> anyhow::Result<()> {
    let ctx = GpuContext::headless()
        .context("no GPU adapter for rendering (on Debian: apt install mesa-vulkan-drivers)")?;
    let written = render_run(&args.run, &args.out, &ctx)
        .with_context(|| format!("rendering {}", args.run.display()))?;
    println!("rendered on {}:", ctx.describe());
    for path in written {
        println!("  {}", path.display());
    }
    Ok(())
}
