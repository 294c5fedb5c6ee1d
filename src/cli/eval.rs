//! `sla eval`: load a run's checkpoint and print the accuracy of every inference mode it supports.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use crate::data::{DatasetKind, class_counts};
use crate::run::{EvalMetrics, GroupAccuracies, PerClassAcc, is_long_tailed, read_config};
use crate::train::evaluate::evaluate;
use crate::train::setup::{build_model, load_data};
use crate::train::{best, checkpoint};

use super::percent;
use super::train::group_line;

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// The run folder written by `sla train`.
    #[arg(long)]
    pub run: PathBuf,
    /// Evaluate on another dataset of the same shape and classes.
    #[arg(long, value_enum)]
    pub dataset: Option<DatasetKind>,
    /// Folder of that dataset.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Evaluate on the first N test images only.
    #[arg(long)]
    pub limit_test: Option<usize>,
    #[arg(long)]
    pub device: Option<String>,
    /// Evaluate the weights with the best validation accuracy (runs trained with --keep-best)
    /// instead of the last checkpoint's.
    #[arg(long)]
    pub best: bool,
}

pub fn run(args: EvalArgs) -> anyhow::Result<()> {
    let mut config = read_config(&args.run)?;
    if config.fewshot.is_some() {
        anyhow::bail!(
            "{} is a few-shot run: evaluate it on test episodes with `sla fewshot eval --run {}`",
            args.run.display(),
            args.run.display()
        );
    }
    if let Some(kind) = args.dataset {
        config.dataset.kind = kind;
        config.dataset.dir = args.data_dir.clone();
    } else if args.data_dir.is_some() {
        config.dataset.dir = args.data_dir.clone();
    }
    if args.limit_test.is_some() {
        config.limit_test = args.limit_test;
    }
    if let Some(device) = &args.device {
        config.device = device.clone();
    }
    let data = load_data(&config)?;
    let checkpoint = checkpoint::require(&args.run)?;
    let mut model = build_model(
        &config,
        data.test.shape,
        data.train.num_classes(),
        Some(&checkpoint),
    )
    .with_context(|| format!("loading the checkpoint of {}", args.run.display()))?;
    if args.best {
        let kept = best::find(&args.run)?.with_context(|| {
            format!(
                "{} kept no best weights: train with --keep-best (and --validation N)",
                args.run.display()
            )
        })?;
        kept.load_weights(&mut model.vars)?;
        println!(
            "best weights: step {}, validation single {}",
            kept.metrics.step,
            kept.metrics
                .validation_single_acc
                .map_or("–".to_string(), percent)
        );
    }
    let never_stop = || false;
    let result = evaluate(
        &model,
        &data.test,
        &data.normalization,
        config.batch_size,
        0,
        &never_stop,
    )?
    .context("the evaluation was stopped")?;
    println!(
        "{} on {} ({} test images), mode {}, {} transformations",
        config.model.name(),
        config.dataset.kind,
        data.test.len(),
        config.mode.name(),
        model.transforms.len()
    );
    let single_name = if config.mode.is_joint() {
        "single (SLA+SI)"
    } else {
        "single"
    };
    println!("{single_name:<28} {}", percent(result.single_acc));
    if let Some(agg) = result.agg_acc {
        let name = if config.mode.is_joint() {
            "aggregated (SLA+AG)"
        } else {
            "averaged over views"
        };
        println!("{name:<28} {}", percent(agg));
    }
    if let Some(sd) = result.sd_acc {
        println!("{:<28} {}", "self-distilled (SLA+SD)", percent(sd));
    }
    if let Some(joint) = result.joint_acc {
        println!("{:<28} {}", "joint (class, transform)", percent(joint));
    }
    for (name, acc) in model
        .transforms
        .names()
        .iter()
        .zip(&result.per_transform_acc)
    {
        println!("  view {name:<24} {}", percent(*acc));
    }
    let counts = class_counts(&data.train);
    print!(
        "{}",
        per_class_table(&data.train.class_names, &counts, &result.per_class_acc)
    );
    let long_tailed = is_long_tailed(config.imbalance, &counts);
    if let Some(groups) = GroupAccuracies::of(&result.per_class_acc, &counts, long_tailed) {
        let metrics = EvalMetrics {
            group_rule: Some(groups.rule),
            many_acc: groups.many,
            medium_acc: groups.medium,
            few_acc: groups.few,
            ..Default::default()
        };
        println!("{}", groups.rule.describe());
        if let Some(line) = group_line(&metrics) {
            println!("{line}");
        }
    }
    Ok(())
}

/// Per-class test accuracy beside each class's training count, one row a class, one column an
/// inference.
pub fn per_class_table(names: &[String], counts: &[usize], per_class: &PerClassAcc) -> String {
    let inferences = per_class.inferences();
    let mut text = format!("{:<24} {:>7}", "class", "train");
    for (name, _) in &inferences {
        text += &format!(" {name:>15}");
    }
    text.push('\n');
    for (c, name) in names.iter().enumerate() {
        text += &format!("{name:<24} {:>7}", counts.get(c).copied().unwrap_or(0));
        for (_, values) in &inferences {
            let value = values.get(c).copied().unwrap_or(f64::NAN);
            let cell = if value.is_finite() {
                percent(value)
            } else {
                "–".to_string()
            };
            text += &format!(" {cell:>15}");
        }
        text.push('\n');
    }
    text
}
