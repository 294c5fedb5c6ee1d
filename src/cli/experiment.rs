//! `sla experiment`: every chosen mode on the same data, split, schedule and seeds, run one after
//! another (resumable), then a table of mean ± std accuracies and the views of every run. The plan,
//! the resume rules and the tables are `crate::experiment`'s; this is the command line around them.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc;

use anyhow::{Context, bail};
use clap::Args;

use crate::experiment::{Arm, ExperimentPlan, PlannedRun, RunPlan, parse_arm, write_results};
use crate::train::TrainerEvent;
use crate::train::trainer;

use super::interrupt::{Interrupted, stop_on_interrupt};
use super::train::{TrainArgs, metrics_line};

#[derive(Debug, Args)]
pub struct ExperimentArgs {
    /// Modes to compare, e.g. baseline,da,mt,sla,sla-sd. `MODE+cb` trains the mode with
    /// class-balanced weights (`--class-weights effective`), e.g. baseline+cb.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "baseline,da,mt,sla,sla-sd",
        value_parser = parse_arm
    )]
    pub modes: Vec<Arm>,
    /// Seeds: each mode is trained once per seed.
    #[arg(long, value_delimiter = ',', default_value = "0")]
    pub seeds: Vec<u64>,
    /// Several imbalance ratios, e.g. 100,10: every mode and seed is trained at each, in the
    /// sub-folders rho100/, rho10/ (instead of the one `--imbalance`).
    #[arg(long, value_delimiter = ',', value_name = "RHO,...")]
    pub imbalances: Option<Vec<f64>>,
    /// Every `sla train` flag; `--out` is the experiment folder.
    #[command(flatten)]
    pub train: TrainArgs,
}

/// Train one planned run to its end, printing each evaluation; a complete run is skipped.
fn train_run(run: &PlannedRun, stop: &AtomicBool) -> anyhow::Result<()> {
    let start = match run.plan()? {
        RunPlan::Complete(step) => {
            println!("{}: already complete at step {step}", run.dir.display());
            return Ok(());
        }
        RunPlan::Train { start, from_step } => {
            if from_step > 0 {
                println!("{}: resuming from step {from_step}", run.dir.display());
            }
            start
        }
    };
    let (_commands, inbox) = mpsc::channel();
    let mut report = |event: TrainerEvent| {
        if let TrainerEvent::Snapshot(snapshot) = &event {
            println!("  {}", metrics_line(&snapshot.metrics));
        }
        true
    };
    let summary = trainer::run_until(start, &inbox, stop, &mut report)?;
    if summary.stopped_early {
        return Err(Interrupted(format!(
            "{} saved at step {}; run the same command again to continue",
            run.dir.display(),
            summary.steps
        ))
        .into());
    }
    Ok(())
}

pub fn run(args: ExperimentArgs) -> anyhow::Result<()> {
    let Some(out) = args.train.out.clone() else {
        bail!("pass --out EXP_DIR for the experiment folder");
    };
    let base = args.train.config()?;
    base.validate()?;
    let plan = ExperimentPlan {
        out,
        base,
        arms: args.modes.clone(),
        seeds: args.seeds.clone(),
        sweep: args.imbalances.clone(),
    };
    plan.validate()?;
    std::fs::create_dir_all(&plan.out)
        .with_context(|| format!("creating {}", plan.out.display()))?;
    let stop = Arc::new(AtomicBool::new(false));
    stop_on_interrupt(stop.clone());
    for run in plan.runs() {
        println!("{}", run.name);
        train_run(&run, &stop).with_context(|| format!("run {}", run.name))?;
    }
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let markdown = write_results(&plan, &command)?;
    println!("{markdown}");
    println!("results in {}", plan.out.display());
    Ok(())
}
