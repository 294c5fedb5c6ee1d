//! `sla train`: flags → `TrainConfig`, the trainer on its thread, and a progress bar.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use crate::config::{ScheduleKind, TrainConfig, TransformChoice, TransformChoiceError};
use crate::data::imbalance::histogram_line;
use crate::data::{DatasetKind, DatasetSource, ImbalanceProfile};
use crate::model::ModelKind;
use crate::run::{ByInference, EpisodeStats, Group};
use crate::sla::{ClassWeighting, Mode, TransformPreset};
use crate::train::setup::resolve_source;
use crate::train::{EvalMetrics, RunStart, TrainerEvent, TrainerHandle};

use super::percent;

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Dataset to train on.
    #[arg(long, value_enum, default_value_t = DatasetKind::FashionMini)]
    pub dataset: DatasetKind,
    /// Folder holding the dataset's files (Fashion-MNIST defaults to the Debian package's folder).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Side in pixels that image-folder and tiny-ImageNet images are resized to (tiny-ImageNet's own: 64).
    #[arg(long, default_value_t = 32)]
    pub image_size: usize,
    #[arg(long, value_enum, default_value_t = TrainConfig::default().model)]
    pub model: ModelKind,
    #[arg(long, value_enum, default_value_t = Mode::Sla)]
    pub mode: Mode,
    /// Transformation set (reference presets).
    #[arg(long, value_enum, default_value_t = TransformPreset::Rotation)]
    pub transforms: TransformPreset,
    /// Custom set instead of a preset: rotations in degrees, e.g. 0,90,180.
    #[arg(long, value_delimiter = ',')]
    pub rotations: Option<Vec<u32>>,
    /// Custom set instead of a preset: channel orders, e.g. RGB,GBR,BRG.
    #[arg(long, value_delimiter = ',')]
    pub permutations: Option<Vec<String>>,
    #[arg(long, default_value_t = 10)]
    pub epochs: usize,
    /// Train for N steps instead of whole epochs (the multi-step schedule's milestones then sit at
    /// N/2 and 3N/4; evaluations still come every --eval-every epochs and after the last step).
    #[arg(long, value_name = "N")]
    pub iterations: Option<u64>,
    #[arg(long, default_value_t = 128)]
    pub batch_size: usize,
    #[arg(long, default_value_t = 0.1)]
    pub lr: f64,
    #[arg(long, default_value_t = 0.9)]
    pub momentum: f64,
    #[arg(long, default_value_t = 1e-4)]
    pub weight_decay: f64,
    /// Nesterov momentum.
    #[arg(long)]
    pub nesterov: bool,
    #[arg(long, value_enum, default_value_t = ScheduleKind::MultiStep)]
    pub schedule: ScheduleKind,
    /// SLA+SD distillation temperature.
    #[arg(long, default_value_t = 1.0)]
    pub temperature: f64,
    /// SLA+SD weight of the distilled head's own cross-entropy.
    #[arg(long, default_value_t = 1.0)]
    pub beta: f64,
    /// Sum the joint loss over transformations instead of averaging it.
    #[arg(long)]
    pub large_loss: bool,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// cpu, cuda, cuda:N or metal.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Keep the first K training images of each class, in file order (the limited-data setting).
    #[arg(long, value_name = "K")]
    pub train_per_class: Option<usize>,
    /// Train on the first N training images only.
    #[arg(long)]
    pub limit_train: Option<usize>,
    /// Evaluate on the first N test images only.
    #[arg(long)]
    pub limit_test: Option<usize>,
    /// Hold N training images out for validation.
    #[arg(long, default_value_t = 0)]
    pub validation: usize,
    /// Turn random crop and flip off.
    #[arg(long)]
    pub no_augment: bool,
    /// Zero padding of the random crop in pixels (default: the dataset's usual, 4 for CIFAR and
    /// image folders, 2 for the MNIST sets; 0 turns cropping off).
    #[arg(long, value_name = "P")]
    pub crop_padding: Option<usize>,
    /// No random horizontal flip.
    #[arg(long)]
    pub no_flip: bool,
    /// Evaluate every N epochs.
    #[arg(long, default_value_t = 1)]
    pub eval_every: usize,
    /// Also save a checkpoint every N steps (0: at the end of each epoch only).
    #[arg(long, default_value_t = 0)]
    pub checkpoint_every: usize,
    /// Keep the weights of the evaluation with the best validation single accuracy as well as the
    /// last, and report the test accuracies of both (needs --validation).
    #[arg(long)]
    pub keep_best: bool,
    /// Make the training set long-tailed: the imbalance ratio ρ = n_max / n_min (1: as it is). n_max
    /// is the smallest class's count; class c keeps its first n_c images in file order.
    #[arg(long, default_value_t = 1.0, value_name = "RHO")]
    pub imbalance: f64,
    /// How the counts fall: exp (n_c = n_max · ρ^(−c/(N−1))) or step (the second half of the
    /// classes keeps n_max / ρ).
    #[arg(long, value_enum, default_value_t = ImbalanceProfile::Exp)]
    pub imbalance_profile: ImbalanceProfile,
    /// Class re-weighting of the loss: none, or effective (the effective number of samples).
    #[arg(long, value_enum, default_value_t = ClassWeighting::None)]
    pub class_weights: ClassWeighting,
    /// β of the effective number of samples (1 − β^n) / (1 − β).
    #[arg(long, default_value_t = 0.999)]
    pub cb_beta: f64,
    /// Run folder to create.
    #[arg(long, conflicts_with = "resume")]
    pub out: Option<PathBuf>,
    /// Continue the run in this folder from its last checkpoint (its config is used).
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// Download the dataset first if it is not on this machine (MNIST, CIFAR-10/100).
    #[arg(long)]
    pub download: bool,
}

impl TrainArgs {
    /// The configuration these flags describe.
    pub fn config(&self) -> Result<TrainConfig, TransformChoiceError> {
        let transforms = match (&self.rotations, &self.permutations) {
            (None, None) => TransformChoice::Preset(self.transforms),
            (rotations, permutations) => TransformChoice::custom_from_names(
                rotations.as_deref().unwrap_or(&[0]),
                permutations.as_deref().unwrap_or(&["RGB".to_string()]),
            )?,
        };
        Ok(TrainConfig {
            dataset: DatasetSource {
                kind: self.dataset,
                dir: self.data_dir.clone(),
                image_size: self.image_size,
            },
            train_per_class: self.train_per_class,
            limit_train: self.limit_train,
            limit_test: self.limit_test,
            validation: self.validation,
            augment: !self.no_augment,
            crop_padding: self.crop_padding,
            horizontal_flip: self.no_flip.then_some(false),
            model: self.model,
            mode: self.mode,
            transforms,
            epochs: self.epochs,
            iterations: self.iterations,
            batch_size: self.batch_size,
            lr: self.lr,
            momentum: self.momentum,
            weight_decay: self.weight_decay,
            nesterov: self.nesterov,
            schedule: self.schedule,
            temperature: self.temperature,
            beta: self.beta,
            large_loss: self.large_loss,
            seed: self.seed,
            device: self.device.clone(),
            eval_every: self.eval_every,
            checkpoint_every: self.checkpoint_every,
            keep_best: self.keep_best,
            imbalance: self.imbalance,
            imbalance_profile: self.imbalance_profile,
            class_weights: self.class_weights,
            cb_beta: self.cb_beta,
            fewshot: None,
        })
    }
}

/// A downloadable dataset that is missing is fetched with `--download`, or named with the command
/// that fetches it.
fn offer_download(args: &TrainArgs, config: &TrainConfig) -> anyhow::Result<()> {
    let source = &config.dataset;
    if !source.kind.downloadable() || resolve_source(source).dir.is_some() {
        return Ok(());
    }
    let name = source.kind.name();
    if !args.download {
        bail!(
            "{name} is not on this machine: add --download, run `sla data get {name}`, or pass --data-dir DIR"
        );
    }
    let manager = crate::download::Manager::new(None)?;
    super::data::get(&manager, name, false)
}

/// One line per evaluation, the same in the CLI and the logs.
pub fn metrics_line(metrics: &EvalMetrics) -> String {
    let mut line = format!(
        "epoch {:>3} step {:>6}  train loss {:.4}  test loss {:.4}  single {}",
        metrics.epoch,
        metrics.step,
        metrics.train_loss,
        metrics.eval_loss,
        percent(metrics.single_acc)
    );
    if let Some(agg) = metrics.agg_acc {
        line += &format!("  aggregated {}", percent(agg));
    }
    if let Some(sd) = metrics.sd_acc {
        line += &format!("  self-distilled {}", percent(sd));
    }
    if let Some(episodes) = &metrics.episodes {
        line += &format!("\n    {}", episodes_line(metrics, episodes));
    }
    if let Some(validation) = metrics.validation_single_acc {
        line += &format!("  validation single {}", percent(validation));
    }
    if let Some(groups) = group_line(metrics) {
        line += &format!("\n    {groups}");
    }
    line
}

/// A few-shot evaluation's episodes and confidence intervals, e.g. `600 test episodes (5-way
/// 1-shot, 15 queries): single 48.20% ± 0.81  aggregated 50.10% ± 0.79`.
pub fn episodes_line(metrics: &EvalMetrics, episodes: &EpisodeStats) -> String {
    let mut line = format!(
        "{} test episodes ({}-way {}-shot, {} queries): single {} ± {:.2}",
        episodes.episodes,
        episodes.ways,
        episodes.shots,
        episodes.queries,
        percent(metrics.single_acc),
        100.0 * episodes.single_ci95
    );
    if let (Some(agg), Some(ci)) = (metrics.agg_acc, episodes.agg_ci95) {
        line += &format!("  aggregated {} ± {:.2}", percent(agg), 100.0 * ci);
    }
    line
}

/// The many / medium / few accuracies of an imbalanced run, per inference, e.g.
/// `many / medium / few  single 91.00% / 72.50% / 40.00%  aggregated …`.
pub fn group_line(metrics: &EvalMetrics) -> Option<String> {
    metrics.group_rule?;
    let value = |group: Group, i: usize| metrics.group_acc(group).and_then(|b| b.values()[i]);
    let mut line = "many / medium / few".to_string();
    for (i, name) in ByInference::NAMES.iter().enumerate() {
        let values: Vec<Option<f64>> = Group::ALL.iter().map(|&g| value(g, i)).collect();
        if values.iter().all(Option::is_none) {
            continue;
        }
        let cells: Vec<String> = values
            .into_iter()
            .map(|v| v.map_or("–".to_string(), percent))
            .collect();
        line += &format!("  {name} {}", cells.join(" / "));
    }
    Some(line)
}

/// The test accuracies of the best-validation weights beside the last (runs with `--keep-best`).
fn print_best(run_dir: &std::path::Path) -> anyhow::Result<()> {
    if let Some(best) = crate::train::best::best_metrics(run_dir)? {
        println!(
            "best validation at step {} (kept beside the last):\n{}",
            best.step,
            metrics_line(&best)
        );
    }
    Ok(())
}

pub fn run(args: TrainArgs) -> anyhow::Result<()> {
    let start = match (&args.resume, &args.out) {
        (Some(run_dir), _) => RunStart::Resume {
            run_dir: run_dir.clone(),
        },
        (None, Some(run_dir)) => {
            let config = args.config()?;
            config.validate()?;
            offer_download(&args, &config)?;
            RunStart::New {
                config: Box::new(config),
                run_dir: run_dir.clone(),
            }
        }
        (None, None) => bail!("pass --out RUN_DIR for a new run or --resume RUN_DIR"),
    };
    follow(start, "sla train")
}

/// Train on the trainer thread and show its progress until it ends. `command` is how the user
/// resumes an interrupted run (`sla train` or `sla fewshot train`).
pub fn follow(start: RunStart, command: &str) -> anyhow::Result<()> {
    let trainer = TrainerHandle::spawn(start, || {}).context("starting the trainer")?;
    super::interrupt::stop_on_interrupt(trainer.stop_flag());
    let mut run_dir = None;
    let bar = ProgressBar::new_spinner().with_message("loading data");
    bar.enable_steady_tick(Duration::from_millis(200));
    while let Some(event) = trainer.next_event() {
        match event {
            TrainerEvent::Started(info) => {
                run_dir = Some(info.run_dir.clone());
                bar.set_length(info.total_steps);
                bar.set_position(info.first_step);
                bar.reset_eta();
                bar.set_style(
                    ProgressStyle::with_template("{bar:30} {pos}/{len} steps  {msg}  ETA {eta}")
                        .unwrap_or_else(|_| ProgressStyle::default_bar()),
                );
                bar.suspend(|| println!(
                    "training on {}: {} train / {} test images, {} classes × {} transformations, {} steps per epoch, run folder {}",
                    info.device,
                    info.train_images,
                    info.test_images,
                    info.num_classes,
                    info.num_transforms,
                    info.steps_per_epoch,
                    info.run_dir.display()
                ));
                bar.suspend(|| {
                    println!(
                        "training images per class: {}",
                        histogram_line(&info.train_class_counts)
                    )
                });
            }
            TrainerEvent::Step(stats) => {
                bar.set_position(stats.step);
                bar.set_message(format!(
                    "epoch {}  loss {:.4}  {:.0} img/s ({:.0} transformed/s)",
                    stats.epoch + 1,
                    stats.loss,
                    stats.images_per_s,
                    stats.transformed_per_s
                ));
            }
            TrainerEvent::Snapshot(snapshot) => {
                bar.suspend(|| println!("{}", metrics_line(&snapshot.metrics)))
            }
            TrainerEvent::CheckpointSaved(path) => {
                bar.suspend(|| println!("checkpoint saved in {}", path.display()))
            }
            TrainerEvent::Paused | TrainerEvent::Resumed | TrainerEvent::Episode(_) => {}
            TrainerEvent::Finished(result) => {
                bar.finish_and_clear();
                let summary = result?;
                if summary.stopped_early && super::interrupt::interrupted() {
                    let how = match &run_dir {
                        Some(dir) => format!(
                            "checkpoint saved at step {}; continue with `{command} --resume {}`",
                            summary.steps,
                            dir.display()
                        ),
                        None => "stopped before training began".to_string(),
                    };
                    return Err(super::interrupt::Interrupted(how).into());
                }
                println!(
                    "done: {} steps in {:.1} s, {:.2} s of it waiting for batches{}",
                    summary.steps,
                    summary.elapsed_s,
                    summary.data_wait_s,
                    if summary.stopped_early {
                        " (stopped early)"
                    } else {
                        ""
                    }
                );
                if let Some(dir) = &run_dir {
                    print_best(dir)?;
                }
                return Ok(());
            }
        }
    }
    bail!("the trainer stopped without reporting")
}
