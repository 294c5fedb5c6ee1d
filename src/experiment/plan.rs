//! What an experiment trains: every arm (a mode, optionally class-balanced) at every seed (and
//! imbalance ratio), each in its own run folder named after them, and how each run starts: new,
//! resumed from its checkpoint, or skipped when its final evaluation is recorded. `sla experiment`
//! and the app's experiment queue both go through here, so a folder started in one finishes in the
//! other.

use std::path::{Path, PathBuf};

use anyhow::bail;

use crate::config::TrainConfig;
use crate::run;
use crate::sla::{ClassWeighting, Mode};
use crate::train::checkpoint;
use crate::train::trainer::RunStart;

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

    pub fn config(self, base: &TrainConfig, seed: u64, imbalance: f64) -> TrainConfig {
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

pub fn parse_arm(text: &str) -> Result<Arm, String> {
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

/// The run folder of an arm and seed, inside `rho<ρ>/` when the experiment sweeps ratios.
pub fn run_name(arm: Arm, seed: u64, sweep: Option<f64>) -> String {
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

/// An experiment: the arms, seeds and (optionally several) imbalance ratios to train on `base`'s
/// settings, with its folder.
#[derive(Clone, Debug, PartialEq)]
pub struct ExperimentPlan {
    pub out: PathBuf,
    pub base: TrainConfig,
    pub arms: Vec<Arm>,
    pub seeds: Vec<u64>,
    /// Several imbalance ratios, each in its own `rho<ρ>/` sub-folder; `None`: `base.imbalance`.
    pub sweep: Option<Vec<f64>>,
}

/// One run of a plan.
#[derive(Clone, Debug, PartialEq)]
pub struct PlannedRun {
    /// The folder's path inside the experiment folder, e.g. `sla-seed0` or `rho10/sla-seed0`.
    pub name: String,
    pub arm: Arm,
    pub seed: u64,
    pub imbalance: f64,
    pub config: TrainConfig,
    pub dir: PathBuf,
}

/// How a planned run goes on from what its folder holds.
#[derive(Debug)]
pub enum RunPlan {
    /// Its final evaluation is recorded at this step: nothing to train.
    Complete(u64),
    /// Train it: from scratch, or from the checkpoint at this step.
    Train { start: RunStart, from_step: u64 },
}

impl ExperimentPlan {
    /// The imbalance ratios trained.
    pub fn ratios(&self) -> Vec<f64> {
        self.sweep
            .clone()
            .unwrap_or_else(|| vec![self.base.imbalance])
    }

    /// Refuse a plan with nothing to train or settings that make no sense at some ratio.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.arms.is_empty() || self.seeds.is_empty() {
            bail!("name at least one mode and one seed");
        }
        for ratio in self.ratios() {
            TrainConfig {
                imbalance: ratio,
                ..self.base.clone()
            }
            .validate()?;
        }
        Ok(())
    }

    /// Every run, in training order: ratio, then arm, then seed.
    pub fn runs(&self) -> Vec<PlannedRun> {
        let mut runs = Vec::new();
        for ratio in self.ratios() {
            for &arm in &self.arms {
                for &seed in &self.seeds {
                    let name = run_name(arm, seed, self.sweep.as_ref().map(|_| ratio));
                    runs.push(PlannedRun {
                        dir: self.out.join(&name),
                        name,
                        arm,
                        seed,
                        imbalance: ratio,
                        config: arm.config(&self.base, seed, ratio),
                    });
                }
            }
        }
        runs
    }
}

impl PlannedRun {
    /// Start, resume or skip the run as its folder says. A folder trained with other settings is
    /// refused, so its results are never labelled with this plan's settings.
    pub fn plan(&self) -> anyhow::Result<RunPlan> {
        plan_run(&self.config, &self.dir)
    }
}

fn plan_run(config: &TrainConfig, dir: &Path) -> anyhow::Result<RunPlan> {
    if !run::is_run_folder(dir) {
        return Ok(RunPlan::Train {
            start: RunStart::New {
                config: Box::new(config.clone()),
                run_dir: dir.to_path_buf(),
            },
            from_step: 0,
        });
    }
    let existing = run::read_config(dir)?;
    let changes = changed_settings(&existing, config)?;
    if !changes.is_empty() {
        bail!(
            "{} was trained with other settings: {}. Use another experiment folder, or the \
             settings it was run with",
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
        return Ok(RunPlan::Complete(step));
    }
    let from_step = checkpoint::find(dir)?.map_or(0, |c| c.state.step);
    Ok(RunPlan::Train {
        start: RunStart::Resume {
            run_dir: dir.to_path_buf(),
        },
        from_step,
    })
}
