//! `sla experiment`: every chosen mode on the same data, split, schedule and seeds, run one after
//! another (resumable), then a table of mean ± std accuracies and the views of every run.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc;

use anyhow::{Context, bail};
use clap::Args;
use serde::Serialize;

use crate::config::TrainConfig;
use crate::gpu::{GpuContext, render_run};
use crate::run::{self, EvalMetrics};
use crate::sla::Mode;
use crate::train::TrainerEvent;
use crate::train::checkpoint;
use crate::train::trainer::{self, RunStart};

use super::interrupt::{Interrupted, stop_on_interrupt};
use super::train::{TrainArgs, metrics_line};

#[derive(Debug, Args)]
pub struct ExperimentArgs {
    /// Modes to compare, e.g. baseline,da,mt,sla,sla-sd.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "baseline,da,mt,sla,sla-sd"
    )]
    pub modes: Vec<Mode>,
    /// Seeds: each mode is trained once per seed.
    #[arg(long, value_delimiter = ',', default_value = "0")]
    pub seeds: Vec<u64>,
    /// Every `sla train` flag; `--out` is the experiment folder.
    #[command(flatten)]
    pub train: TrainArgs,
}

/// Mean and sample standard deviation.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Spread {
    pub mean: f64,
    pub std: f64,
    pub n: usize,
}

impl Spread {
    fn of(values: &[f64]) -> Option<Self> {
        if values.is_empty() {
            return None;
        }
        let n = values.len();
        let mean = values.iter().sum::<f64>() / n as f64;
        let var = if n > 1 {
            values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64
        } else {
            0.0
        };
        Some(Self {
            mean,
            std: var.sqrt(),
            n,
        })
    }
}

/// One mode's results over the seeds.
#[derive(Debug, Serialize)]
pub struct ModeResult {
    pub mode: String,
    pub runs: Vec<String>,
    pub single_acc: Option<Spread>,
    pub agg_acc: Option<Spread>,
    pub sd_acc: Option<Spread>,
    pub train_seconds: Option<Spread>,
}

#[derive(Debug, Serialize)]
pub struct Results {
    pub config: TrainConfig,
    pub seeds: Vec<u64>,
    pub modes: Vec<ModeResult>,
}

fn run_name(mode: Mode, seed: u64) -> String {
    format!("{}-seed{seed}", mode.name())
}

/// Settings that may differ between an experiment's earlier runs and this command: they change where
/// and how often a run reports, not what it trains.
const FREE_SETTINGS: [&str; 3] = ["device", "eval_every", "checkpoint_every"];

/// The settings of an existing run that differ from what this command asks for.
fn changed_settings(existing: &TrainConfig, wanted: &TrainConfig) -> anyhow::Result<Vec<String>> {
    let (serde_json::Value::Object(old), serde_json::Value::Object(new)) = (
        serde_json::to_value(existing)?,
        serde_json::to_value(wanted)?,
    ) else {
        bail!("a config is not a JSON object");
    };
    Ok(new
        .iter()
        .filter(|(key, _)| !FREE_SETTINGS.contains(&key.as_str()))
        .filter(|(key, value)| old.get(*key) != Some(*value))
        .map(|(key, value)| {
            let was = old.get(key).cloned().unwrap_or(serde_json::Value::Null);
            format!("{key} {was} (asked: {value})")
        })
        .collect())
}

/// Train one run to its end, starting, resuming or skipping it as its folder says. A folder trained
/// with other settings is refused, so its results are never labelled with this command's flags.
fn train_run(config: &TrainConfig, dir: &Path, stop: &AtomicBool) -> anyhow::Result<()> {
    let start = if run::is_run_folder(dir) {
        let existing = run::read_config(dir)?;
        let changes = changed_settings(&existing, config)?;
        if !changes.is_empty() {
            bail!(
                "{} was trained with other settings: {}. Use another --out, or the flags it was run with",
                dir.display(),
                changes.join(", ")
            );
        }
        let state = checkpoint::find(dir)?.map(|c| c.state);
        let done = state.as_ref().is_some_and(|s| !s.pending_evaluation)
            && run::read_metrics(dir)?
                .records
                .last()
                .is_some_and(|m| m.epoch >= config.epochs);
        let step = state.map_or(0, |s| s.step);
        if done {
            println!("{}: already complete at step {step}", dir.display());
            return Ok(());
        }
        println!("{}: resuming from step {step}", dir.display());
        RunStart::Resume {
            run_dir: dir.to_path_buf(),
        }
    } else {
        RunStart::New {
            config: Box::new(config.clone()),
            run_dir: dir.to_path_buf(),
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
            dir.display(),
            summary.steps
        ))
        .into());
    }
    Ok(())
}

fn summarise(mode: Mode, runs: &[(String, EvalMetrics)]) -> ModeResult {
    let pick = |f: &dyn Fn(&EvalMetrics) -> Option<f64>| {
        let values: Vec<f64> = runs.iter().filter_map(|(_, m)| f(m)).collect();
        Spread::of(&values)
    };
    ModeResult {
        mode: mode.name().to_string(),
        runs: runs.iter().map(|(name, _)| name.clone()).collect(),
        single_acc: pick(&|m| Some(m.single_acc)),
        agg_acc: pick(&|m| m.agg_acc),
        sd_acc: pick(&|m| m.sd_acc),
        train_seconds: pick(&|m| Some(m.elapsed_s)),
    }
}

fn cell(spread: Option<Spread>, percent: bool) -> String {
    match spread {
        Some(s) if percent => format!("{:.2} ± {:.2}", 100.0 * s.mean, 100.0 * s.std),
        Some(s) => format!("{:.1} ± {:.1}", s.mean, s.std),
        None => "–".to_string(),
    }
}

/// The results table in Markdown.
pub fn results_markdown(results: &Results, command: &str) -> String {
    let c = &results.config;
    let mut text = String::from("# SLA experiment\n\n");
    let _ = writeln!(text, "Command: `{command}`\n");
    let _ = writeln!(
        text,
        "Dataset {}, model {}, transformations {:?}, {} epochs, batch {}, lr {}, seeds {:?}.\n",
        c.dataset.kind,
        c.model.name(),
        c.transforms,
        c.epochs,
        c.batch_size,
        c.lr,
        results.seeds
    );
    text += "Test accuracy (%) at the end of training, mean ± sample std over seeds.\n\n";
    text += "| mode | single | aggregated | self-distilled | training time (s) | runs |\n|---|---|---|---|---|---|\n";
    for m in &results.modes {
        let _ = writeln!(
            text,
            "| {} | {} | {} | {} | {} | {} |",
            m.mode,
            cell(m.single_acc, true),
            cell(m.agg_acc, true),
            cell(m.sd_acc, true),
            cell(m.train_seconds, false),
            m.runs.len()
        );
    }
    text
}

pub fn run(args: ExperimentArgs) -> anyhow::Result<()> {
    let Some(out) = args.train.out.clone() else {
        bail!("pass --out EXP_DIR for the experiment folder");
    };
    if args.modes.is_empty() || args.seeds.is_empty() {
        bail!("name at least one mode and one seed");
    }
    let base = args.train.config()?;
    base.validate()?;
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let stop = Arc::new(AtomicBool::new(false));
    stop_on_interrupt(stop.clone());
    let mut results = Vec::new();
    for &mode in &args.modes {
        let mut runs = Vec::new();
        for &seed in &args.seeds {
            let name = run_name(mode, seed);
            println!("{name}");
            let config = TrainConfig {
                mode,
                seed,
                ..base.clone()
            };
            let dir = out.join(&name);
            train_run(&config, &dir, &stop).with_context(|| format!("run {name}"))?;
            let metrics = run::read_metrics(&dir)?;
            if let Some(torn) = &metrics.torn_tail {
                eprintln!("warning: {torn}");
            }
            let last = metrics
                .records
                .last()
                .cloned()
                .with_context(|| format!("run {name} has no evaluation"))?;
            runs.push((name, last));
        }
        results.push(summarise(mode, &runs));
    }
    let results = Results {
        config: base,
        seeds: args.seeds.clone(),
        modes: results,
    };
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    std::fs::write(out.join("results.md"), results_markdown(&results, &command))?;
    std::fs::write(
        out.join("results.json"),
        serde_json::to_vec_pretty(&results)?,
    )?;
    render_figures(&out, &results)?;
    println!("{}", results_markdown(&results, &command));
    println!("results in {}", out.display());
    Ok(())
}

/// Curves and confusion matrices of every run, by the GPU renderers, under `figures/<run>/`.
fn render_figures(out: &Path, results: &Results) -> anyhow::Result<Vec<PathBuf>> {
    let ctx = GpuContext::headless()
        .context("no GPU adapter for the figures (on Debian: apt install mesa-vulkan-drivers)")?;
    let mut written = Vec::new();
    for run in results.modes.iter().flat_map(|m| &m.runs) {
        written.extend(render_run(
            &out.join(run),
            &out.join("figures").join(run),
            &ctx,
        )?);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_is_mean_and_sample_deviation() {
        let s = Spread::of(&[0.7, 0.8, 0.9]).expect("values");
        assert!((s.mean - 0.8).abs() < 1e-12);
        assert!((s.std - 0.1).abs() < 1e-12);
        assert_eq!(Spread::of(&[0.5]).expect("one").std, 0.0);
        assert!(Spread::of(&[]).is_none());
    }
}
