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
use crate::gpu::{
    GpuContext, ModeCurves, PerClassLine, render_mode_curves, render_per_class, render_run,
};
use crate::run::{self, ByInference, EvalMetrics, GroupRule, PerClassAcc, Spread};
use crate::sla::{ClassWeighting, Mode};
use crate::train::TrainerEvent;
use crate::train::trainer::{self, RunStart};
use crate::train::{best, checkpoint};

use super::interrupt::{Interrupted, stop_on_interrupt};
use super::paired::{self, PairedDifference};
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

/// One arm of an experiment: a mode, trained with class-balanced weights or as the flags say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arm {
    pub mode: Mode,
    pub class_balanced: bool,
}

impl Arm {
    /// The name in tables and run folders: the mode's, with `+cb` when class-balanced.
    pub fn name(self) -> String {
        let suffix = if self.class_balanced { "+cb" } else { "" };
        format!("{}{suffix}", self.mode.name())
    }

    fn config(self, base: &TrainConfig, seed: u64, imbalance: f64) -> TrainConfig {
        TrainConfig {
            mode: self.mode,
            seed,
            imbalance,
            class_weights: if self.class_balanced {
                ClassWeighting::Effective
            } else {
                base.class_weights
            },
            ..base.clone()
        }
    }
}

fn parse_arm(text: &str) -> Result<Arm, String> {
    let (mode, class_balanced) = match text.strip_suffix("+cb") {
        Some(mode) => (mode, true),
        None => (text, false),
    };
    let mode = <Mode as clap::ValueEnum>::from_str(mode, true).map_err(|_| {
        let names: Vec<&str> = Mode::ALL.iter().map(|m| m.name()).collect();
        format!(
            "{text:?} is not a mode: use one of {}, optionally with +cb",
            names.join(", ")
        )
    })?;
    Ok(Arm {
        mode,
        class_balanced,
    })
}

/// One mode's results over the seeds.
#[derive(Debug, Serialize)]
pub struct ModeResult {
    pub mode: String,
    /// The imbalance ratio the runs trained at (1: the data as it is).
    pub imbalance: f64,
    /// Run folders, relative to the experiment folder.
    pub runs: Vec<String>,
    pub single_acc: Option<Spread>,
    pub agg_acc: Option<Spread>,
    pub sd_acc: Option<Spread>,
    /// The same accuracies at each run's best validation evaluation (runs with `keep_best`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub best: Option<BestResult>,
    pub train_seconds: Option<Spread>,
    /// Many / medium / few accuracies per inference (imbalanced runs only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<GroupResult>,
    /// Per-class test accuracy per inference, mean over seeds, and the training count of each class.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_class_acc: Option<PerClassAcc>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub train_class_counts: Vec<usize>,
}

/// Test accuracies of the best-validation weights, over the seeds.
#[derive(Debug, Serialize)]
pub struct BestResult {
    pub single_acc: Option<Spread>,
    pub agg_acc: Option<Spread>,
    pub sd_acc: Option<Spread>,
    /// The steps the best evaluations came from, one per run.
    pub steps: Vec<u64>,
}

/// An SLA inference against the baseline at one imbalance ratio, paired by seed.
#[derive(Debug, Serialize)]
pub struct Comparison {
    /// e.g. `SLA+AG`.
    pub name: String,
    pub mode: String,
    /// `single`, `aggregated` or `self-distilled`.
    pub inference: String,
    pub against: String,
    pub imbalance: f64,
    /// The seeds both arms finished.
    pub seeds: Vec<u64>,
    /// Test accuracy difference (a fraction: 0.01 is one point), mean with a 95 % t-interval.
    pub difference: PairedDifference,
}

/// One inference's group accuracies over the seeds.
#[derive(Debug, Serialize)]
pub struct GroupResult {
    pub inference: String,
    pub many: Option<Spread>,
    pub medium: Option<Spread>,
    pub few: Option<Spread>,
}

impl RunOutcome {
    /// The final evaluation (`outcome` refuses runs without one).
    fn last(&self) -> &EvalMetrics {
        &self.evaluations[self.evaluations.len() - 1]
    }
}

/// What one finished run contributes to the tables.
struct RunOutcome {
    name: String,
    seed: u64,
    /// Every evaluation of the run, in order; the last is the one the tables read.
    evaluations: Vec<EvalMetrics>,
    /// The best-validation evaluation, for runs that kept one.
    best: Option<EvalMetrics>,
    train_class_counts: Vec<usize>,
}

#[derive(Debug, Serialize)]
pub struct Results {
    pub config: TrainConfig,
    pub seeds: Vec<u64>,
    /// How classes were grouped into many / medium / few, when the runs are imbalanced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_rule: Option<GroupRule>,
    pub modes: Vec<ModeResult>,
    /// SLA+SI, SLA+AG and SLA+SD minus the baseline, per imbalance ratio, where both arms ran.
    pub paired: Vec<Comparison>,
}

/// The run folder of an arm and seed, inside `rho<ρ>/` when the experiment sweeps ratios.
fn run_name(arm: Arm, seed: u64, sweep: Option<f64>) -> String {
    let name = format!("{}-seed{seed}", arm.name());
    match sweep {
        Some(ratio) => format!("rho{ratio}/{name}"),
        None => name,
    }
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
        // A run is complete once its final evaluation is recorded (what the tables read), even
        // when its weights were left out of an archive of the logs.
        let finished = run::read_metrics(dir)?
            .records
            .last()
            .filter(|m| config.is_final_evaluation(m.epoch, m.step))
            .map(|m| m.step);
        if let Some(step) = finished {
            println!("{}: already complete at step {step}", dir.display());
            return Ok(());
        }
        let step = checkpoint::find(dir)?.map_or(0, |c| c.state.step);
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

fn summarise(arm: Arm, imbalance: f64, runs: &[RunOutcome]) -> ModeResult {
    let pick = |f: &dyn Fn(&EvalMetrics) -> Option<f64>| {
        let values: Vec<f64> = runs.iter().filter_map(|r| f(r.last())).collect();
        Spread::of(&values)
    };
    let groups = ByInference::NAMES
        .iter()
        .enumerate()
        .map(|(i, inference)| GroupResult {
            inference: inference.to_string(),
            many: pick(&|m| m.many_acc.and_then(|b| b.values()[i])),
            medium: pick(&|m| m.medium_acc.and_then(|b| b.values()[i])),
            few: pick(&|m| m.few_acc.and_then(|b| b.values()[i])),
        })
        .filter(|g| g.many.is_some() || g.medium.is_some() || g.few.is_some())
        .collect();
    ModeResult {
        mode: arm.name(),
        imbalance,
        runs: runs.iter().map(|r| r.name.clone()).collect(),
        single_acc: pick(&|m| Some(m.single_acc)),
        agg_acc: pick(&|m| m.agg_acc),
        sd_acc: pick(&|m| m.sd_acc),
        best: best_result(runs),
        train_seconds: pick(&|m| Some(m.elapsed_s)),
        groups,
        per_class_acc: mean_per_class(runs),
        train_class_counts: runs
            .first()
            .map(|r| r.train_class_counts.clone())
            .unwrap_or_default(),
    }
}

fn best_result(runs: &[RunOutcome]) -> Option<BestResult> {
    let best: Vec<&EvalMetrics> = runs.iter().filter_map(|r| r.best.as_ref()).collect();
    if best.is_empty() {
        return None;
    }
    let pick = |f: &dyn Fn(&EvalMetrics) -> Option<f64>| {
        Spread::of(&best.iter().filter_map(|m| f(m)).collect::<Vec<_>>())
    };
    Some(BestResult {
        single_acc: pick(&|m| Some(m.single_acc)),
        agg_acc: pick(&|m| m.agg_acc),
        sd_acc: pick(&|m| m.sd_acc),
        steps: best.iter().map(|m| m.step).collect(),
    })
}

/// The paper's three SLA inferences, each against the baseline: (name, mode, inference, accuracy).
type Inference = fn(&EvalMetrics) -> Option<f64>;
const AGAINST_BASELINE: [(&str, Mode, &str, Inference); 3] = [
    ("SLA+SI", Mode::Sla, "single", |m| Some(m.single_acc)),
    ("SLA+AG", Mode::Sla, "aggregated", |m| m.agg_acc),
    ("SLA+SD", Mode::SlaSd, "self-distilled", |m| m.sd_acc),
];

/// SLA+SI, SLA+AG and SLA+SD minus the baseline (same class weighting, same ratio), paired by seed.
fn paired_comparisons(arms: &[(Arm, f64, Vec<RunOutcome>)]) -> Vec<Comparison> {
    let mut comparisons = Vec::new();
    for (baseline, ratio, reference) in arms.iter().filter(|(a, _, _)| a.mode == Mode::Baseline) {
        for (name, mode, inference, accuracy) in AGAINST_BASELINE {
            let Some((arm, _, runs)) = arms.iter().find(|(a, r, _)| {
                a.mode == mode && a.class_balanced == baseline.class_balanced && r == ratio
            }) else {
                continue;
            };
            let pairs: Vec<(u64, f64, f64)> = runs
                .iter()
                .filter_map(|run| {
                    let base = reference.iter().find(|b| b.seed == run.seed)?;
                    Some((run.seed, accuracy(run.last())?, base.last().single_acc))
                })
                .collect();
            let values: Vec<(f64, f64)> = pairs.iter().map(|&(_, v, b)| (v, b)).collect();
            let Some(difference) = PairedDifference::of(&values) else {
                continue;
            };
            let suffix = if baseline.class_balanced { "+cb" } else { "" };
            comparisons.push(Comparison {
                name: format!("{name}{suffix}"),
                mode: arm.name(),
                inference: inference.to_string(),
                against: baseline.name(),
                imbalance: *ratio,
                seeds: pairs.iter().map(|&(seed, _, _)| seed).collect(),
                difference,
            });
        }
    }
    comparisons
}

/// Per-class accuracy of each inference averaged over the runs (seeds).
fn mean_per_class(runs: &[RunOutcome]) -> Option<PerClassAcc> {
    let all: Vec<&PerClassAcc> = runs
        .iter()
        .filter_map(|r| r.last().per_class_acc.as_ref())
        .collect();
    if all.is_empty() || all.len() != runs.len() {
        return None;
    }
    let mean = |pick: &dyn Fn(&PerClassAcc) -> &Vec<f64>| -> Vec<f64> {
        let n = pick(all[0]).len();
        if all.iter().any(|p| pick(p).len() != n) {
            return Vec::new();
        }
        (0..n)
            .map(|c| all.iter().map(|p| pick(p)[c]).sum::<f64>() / all.len() as f64)
            .collect()
    };
    Some(PerClassAcc {
        single: mean(&|p| &p.single),
        aggregated: mean(&|p| &p.aggregated),
        self_distilled: mean(&|p| &p.self_distilled),
    })
}

/// The results table in Markdown.
pub fn results_markdown(results: &Results, command: &str) -> String {
    let c = &results.config;
    let mut text = String::from("# SLA experiment\n\n");
    let _ = writeln!(text, "Command: `{command}`\n");
    let length = match c.iterations {
        Some(n) => format!("{n} iterations"),
        None => format!("{} epochs", c.epochs),
    };
    let per_class = c.train_per_class.map_or(String::new(), |k| {
        format!(" (first {k} training images per class)")
    });
    let augmentation = if c.augment {
        let padding = c
            .crop_padding
            .map_or("the dataset's usual crop".to_string(), |p| {
                format!("random crop with padding {p}")
            });
        let flip = match c.horizontal_flip {
            Some(false) => "no flip",
            Some(true) => "horizontal flip",
            None => "the dataset's usual flip",
        };
        format!("{padding} and {flip}")
    } else {
        "no augmentation".to_string()
    };
    let _ = writeln!(
        text,
        "Dataset {}{per_class}, {augmentation}, model {}, transformations {:?}, {length}, batch {}, lr {} ({:?} schedule), seeds {:?}.\n",
        c.dataset.kind,
        c.model.name(),
        c.transforms,
        c.batch_size,
        c.lr,
        c.schedule,
        results.seeds
    );
    let imbalanced = results.modes.iter().any(|m| m.imbalance != 1.0);
    if imbalanced {
        let _ = writeln!(
            text,
            "Long-tailed training sets: {} profile, ρ = n_max / n_min as in the first column; the test set is balanced.\n",
            c.imbalance_profile.name()
        );
    }
    text += "Test accuracy (%) at the end of training, mean ± sample std over seeds.\n\n";
    let rho = |m: &ModeResult| {
        if imbalanced {
            format!("| {} ", m.imbalance)
        } else {
            String::new()
        }
    };
    let rho_head = if imbalanced {
        ["| ρ ", "|---"]
    } else {
        ["", ""]
    };
    let _ = writeln!(
        text,
        "{}| mode | single | aggregated | self-distilled | training time (s) | runs |\n{}|---|---|---|---|---|---|",
        rho_head[0], rho_head[1]
    );
    for m in &results.modes {
        let _ = writeln!(
            text,
            "{}| {} | {} | {} | {} | {} | {} |",
            rho(m),
            m.mode,
            Spread::cell(m.single_acc, true),
            Spread::cell(m.agg_acc, true),
            Spread::cell(m.sd_acc, true),
            Spread::cell(m.train_seconds, false),
            m.runs.len()
        );
    }
    if !results.paired.is_empty() {
        let _ = writeln!(
            text,
            "\nDifference to the baseline trained with the same seeds (percentage points): mean and {:.0} % t-interval over the seeds.\n",
            100.0 * paired::CONFIDENCE
        );
        let _ = writeln!(
            text,
            "{}| inference | minus | mean | {:.0} % interval | seeds |\n{}|---|---|---|---|---|",
            rho_head[0],
            100.0 * paired::CONFIDENCE,
            rho_head[1]
        );
        for p in &results.paired {
            let d = p.difference;
            let interval = d
                .interval()
                .map_or("– (one seed)".to_string(), |(low, high)| {
                    format!("[{:+.2}, {:+.2}]", 100.0 * low, 100.0 * high)
                });
            let _ = writeln!(
                text,
                "{}| {} | {} | {:+.2} | {interval} | {} |",
                if imbalanced {
                    format!("| {} ", p.imbalance)
                } else {
                    String::new()
                },
                p.name,
                p.against,
                100.0 * d.mean,
                d.n
            );
        }
    }
    if results.modes.iter().any(|m| m.best.is_some()) {
        let _ = writeln!(
            text,
            "\nTest accuracy (%) of the weights with the best validation single accuracy (kept with `--keep-best`), mean ± sample std over seeds.\n"
        );
        let _ = writeln!(
            text,
            "{}| mode | single | aggregated | self-distilled | best steps |\n{}|---|---|---|---|---|",
            rho_head[0], rho_head[1]
        );
        for m in &results.modes {
            if let Some(best) = &m.best {
                let steps: Vec<String> = best.steps.iter().map(u64::to_string).collect();
                let _ = writeln!(
                    text,
                    "{}| {} | {} | {} | {} | {} |",
                    rho(m),
                    m.mode,
                    Spread::cell(best.single_acc, true),
                    Spread::cell(best.agg_acc, true),
                    Spread::cell(best.sd_acc, true),
                    steps.join(", ")
                );
            }
        }
    }
    if let Some(rule) = results.group_rule {
        let _ = writeln!(
            text,
            "\nAccuracy (%) of the class groups, mean of the per-class accuracies in each group ({}).\n",
            rule.describe()
        );
        let _ = writeln!(
            text,
            "{}| mode | inference | many | medium | few |\n{}|---|---|---|---|---|",
            rho_head[0], rho_head[1]
        );
        for m in &results.modes {
            for g in &m.groups {
                let _ = writeln!(
                    text,
                    "{}| {} | {} | {} | {} | {} |",
                    rho(m),
                    m.mode,
                    g.inference,
                    Spread::cell(g.many, true),
                    Spread::cell(g.medium, true),
                    Spread::cell(g.few, true)
                );
            }
        }
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
    let sweep = args.imbalances.clone();
    let ratios = sweep.clone().unwrap_or_else(|| vec![base.imbalance]);
    for &ratio in &ratios {
        TrainConfig {
            imbalance: ratio,
            ..base.clone()
        }
        .validate()?;
    }
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let stop = Arc::new(AtomicBool::new(false));
    stop_on_interrupt(stop.clone());
    let mut arms = Vec::new();
    let mut group_rule = None;
    for &ratio in &ratios {
        for &arm in &args.modes {
            let mut runs = Vec::new();
            for &seed in &args.seeds {
                let name = run_name(arm, seed, sweep.as_ref().map(|_| ratio));
                println!("{name}");
                let dir = out.join(&name);
                train_run(&arm.config(&base, seed, ratio), &dir, &stop)
                    .with_context(|| format!("run {name}"))?;
                let outcome = outcome(name, seed, &dir)?;
                group_rule = group_rule.or(outcome.last().group_rule);
                runs.push(outcome);
            }
            arms.push((arm, ratio, runs));
        }
    }
    let results = Results {
        config: base,
        seeds: args.seeds.clone(),
        group_rule,
        modes: arms
            .iter()
            .map(|(arm, ratio, runs)| summarise(*arm, *ratio, runs))
            .collect(),
        paired: paired_comparisons(&arms),
    };
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    std::fs::write(out.join("results.md"), results_markdown(&results, &command))?;
    std::fs::write(
        out.join("results.json"),
        serde_json::to_vec_pretty(&results)?,
    )?;
    let curves = mode_curves(&out, &arms)?;
    render_figures(&out, &results, &curves)?;
    println!("{}", results_markdown(&results, &command));
    println!("results in {}", out.display());
    Ok(())
}

/// The last (and best) evaluation of a finished run and its training counts.
fn outcome(name: String, seed: u64, dir: &Path) -> anyhow::Result<RunOutcome> {
    let metrics = run::read_metrics(dir)?;
    if let Some(torn) = &metrics.torn_tail {
        eprintln!("warning: {torn}");
    }
    if metrics.records.is_empty() {
        bail!("run {name} has no evaluation");
    }
    let train_class_counts = run::read_snapshot(dir)?.train_class_counts;
    Ok(RunOutcome {
        name,
        seed,
        evaluations: metrics.records,
        best: best::best_metrics(dir)?,
        train_class_counts,
    })
}

/// The modes' curves of each imbalance ratio, for the overlaid figure: loss and headline accuracy,
/// each averaged over the seeds (step by step; runs of one experiment share their steps).
fn mode_curves(
    out: &Path,
    arms: &[(Arm, f64, Vec<RunOutcome>)],
) -> anyhow::Result<Vec<(f64, ModeCurves)>> {
    let mut curves = Vec::new();
    for (arm, ratio, runs) in arms {
        let mut losses = Vec::new();
        let mut accuracies = Vec::new();
        let mut eval_steps = Vec::new();
        for run in runs {
            let dir = out.join(&run.name);
            losses.push(
                run::read_steps(&dir)?
                    .records
                    .iter()
                    .map(|s| s.loss)
                    .collect::<Vec<_>>(),
            );
            eval_steps = run.evaluations.iter().map(|m| m.step as f32).collect();
            accuracies.push(
                run.evaluations
                    .iter()
                    .map(|m| headline(arm.mode, m.agg_acc.is_some(), m.sd_acc.is_some()).1(m))
                    .collect::<Vec<_>>(),
            );
        }
        let loss = mean_by_index(&losses);
        let steps = (1..=loss.len()).map(|s| s as f32).collect();
        let accuracy = mean_by_index(&accuracies);
        eval_steps.truncate(accuracy.len());
        let inference = runs.first().map_or("single", |r| {
            headline(
                arm.mode,
                r.last().agg_acc.is_some(),
                r.last().sd_acc.is_some(),
            )
            .0
        });
        curves.push((
            *ratio,
            ModeCurves {
                name: format!("{} {inference}", arm.name()),
                steps,
                loss,
                eval_steps,
                accuracy,
            },
        ));
    }
    Ok(curves)
}

/// Element-wise mean of equally long series, over the shortest's length, as f32 for the renderer.
fn mean_by_index(series: &[Vec<f64>]) -> Vec<f32> {
    let len = series.iter().map(Vec::len).min().unwrap_or(0);
    (0..len)
        .map(|i| (series.iter().map(|s| s[i]).sum::<f64>() / series.len() as f64) as f32)
        .collect()
}

/// The inference a mode is shown by in the figures: self-distilled for SLA+SD, aggregated for SLA,
/// single otherwise; with the accuracy it reads (NaN, a gap, where an evaluation lacks it).
fn headline(mode: Mode, has_agg: bool, has_sd: bool) -> (&'static str, fn(&EvalMetrics) -> f64) {
    if has_sd {
        ("self-distilled", |m| m.sd_acc.unwrap_or(f64::NAN))
    } else if mode.is_joint() && has_agg {
        ("aggregated", |m| m.agg_acc.unwrap_or(f64::NAN))
    } else {
        ("single", |m| m.single_acc)
    }
}

/// Curves and confusion matrices of every run, by the GPU renderers, under `figures/<run>/`; the
/// modes' curves overlaid (`figures/curves-modes*.png`); for imbalanced runs the per-class accuracy
/// of every mode at each ratio.
fn render_figures(
    out: &Path,
    results: &Results,
    curves: &[(f64, ModeCurves)],
) -> anyhow::Result<Vec<PathBuf>> {
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
    let mut ratios: Vec<f64> = results.modes.iter().map(|m| m.imbalance).collect();
    ratios.dedup();
    let swept = ratios.len() > 1 || ratios.first().is_some_and(|&r| r != 1.0);
    for &ratio in &ratios {
        let modes: Vec<ModeCurves> = curves
            .iter()
            .filter(|(r, _)| *r == ratio)
            .map(|(_, c)| c.clone())
            .collect();
        let name = if swept {
            format!("curves-modes-rho{ratio}.png")
        } else {
            "curves-modes.png".to_string()
        };
        let path = out.join("figures").join(name);
        render_mode_curves(&modes, &path, &ctx)?;
        written.push(path);
    }
    if results.group_rule.is_some() {
        for ratio in ratios {
            let modes: Vec<&ModeResult> = results
                .modes
                .iter()
                .filter(|m| m.imbalance == ratio)
                .collect();
            let lines = per_class_lines(&modes);
            let path = out
                .join("figures")
                .join(format!("per-class-rho{ratio}.png"));
            render_per_class(&lines, &path, &ctx)?;
            written.push(path);
        }
    }
    Ok(written)
}

/// Each mode's headline per-class accuracy (aggregated for SLA, self-distilled for SLA+SD, single
/// otherwise), with classes ordered from the most to the fewest training images.
pub fn per_class_lines(modes: &[&ModeResult]) -> Vec<PerClassLine> {
    modes
        .iter()
        .filter_map(|m| {
            let per_class = m.per_class_acc.as_ref()?;
            let joint = m.mode.starts_with("sla");
            let (inference, values) = match (&per_class.self_distilled, &per_class.aggregated) {
                (sd, _) if !sd.is_empty() => ("self-distilled", sd.as_slice()),
                (_, agg) if joint && !agg.is_empty() => ("aggregated", agg.as_slice()),
                _ => ("single", per_class.single.as_slice()),
            };
            let mut order: Vec<usize> = (0..values.len()).collect();
            order.sort_by_key(|&c| std::cmp::Reverse(m.train_class_counts.get(c).copied()));
            Some(PerClassLine {
                name: format!("{} {inference}", m.mode),
                values: order.iter().map(|&c| values[c] as f32).collect(),
            })
        })
        .collect()
}
