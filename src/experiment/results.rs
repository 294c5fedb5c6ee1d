//! What an experiment reports once its runs are trained: per arm the mean ± std of the final test
//! accuracies, SLA's inferences minus the baseline paired by seed, `results.md`, `results.json`,
//! and the figures of every run and of the arms overlaid.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Serialize;

use crate::config::TrainConfig;
use crate::gpu::{
    GpuContext, ModeCurves, PerClassLine, render_mode_curves, render_per_class, render_run,
};
use crate::run::{self, ByInference, EvalMetrics, GroupRule, PerClassAcc, Spread};
use crate::sla::Mode;
use crate::train::best;

use super::paired::{self, PairedDifference};
use super::plan::{Arm, ExperimentPlan};

/// The experiment's tables' file names in its folder.
pub const RESULTS_MARKDOWN: &str = "results.md";
pub const RESULTS_JSON: &str = "results.json";

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

/// The last (and best) evaluation of a finished run and its training counts.
fn outcome(name: String, seed: u64, dir: &Path) -> anyhow::Result<RunOutcome> {
    let metrics = run::read_metrics(dir)?;
    if let Some(torn) = &metrics.torn_tail {
        log::warn!("{torn}");
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

/// Read every planned run's results (each must have its final evaluation), write `results.md` and
/// `results.json` into the experiment folder and render the figures; returns the Markdown.
/// `command` is what the Markdown says produced it.
pub fn write_results(plan: &ExperimentPlan, command: &str) -> anyhow::Result<String> {
    let mut arms: Vec<(Arm, f64, Vec<RunOutcome>)> = Vec::new();
    let mut group_rule = None;
    for planned in plan.runs() {
        let outcome = outcome(planned.name.clone(), planned.seed, &planned.dir)?;
        group_rule = group_rule.or(outcome.last().group_rule);
        match arms.last_mut() {
            Some((arm, ratio, runs)) if *arm == planned.arm && *ratio == planned.imbalance => {
                runs.push(outcome)
            }
            _ => arms.push((planned.arm, planned.imbalance, vec![outcome])),
        }
    }
    let results = Results {
        config: plan.base.clone(),
        seeds: plan.seeds.clone(),
        group_rule,
        modes: arms
            .iter()
            .map(|(arm, ratio, runs)| summarise(*arm, *ratio, runs))
            .collect(),
        paired: paired_comparisons(&arms),
    };
    let markdown = results_markdown(&results, command);
    let out = &plan.out;
    std::fs::write(out.join(RESULTS_MARKDOWN), &markdown)?;
    std::fs::write(out.join(RESULTS_JSON), serde_json::to_vec_pretty(&results)?)?;
    let curves = mode_curves(out, &arms)?;
    render_figures(out, &results, &curves)?;
    Ok(markdown)
}
