//! `sla fewshot train | eval`: the few-shot setting from the command line. Training goes through
//! the same trainer thread, run folder and progress display as `sla train`; evaluation prints the
//! mean accuracy over test episodes with its 95 % confidence interval.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};

use crate::config::{ScheduleKind, TrainConfig, TransformChoice};
use crate::data::{DatasetKind, DatasetSource};
use crate::fewshot::classes::ClassSplit;
use crate::fewshot::evaluate::{evaluate_episodes, test_sampler};
use crate::fewshot::results::{read_runs, results_markdown};
use crate::fewshot::setup::{build_episode_model, fewshot_of, load_episode_data};
use crate::fewshot::trainer::{EvaluationAt, episode_snapshot};
use crate::fewshot::{FewShotConfig, Method};
use crate::model::ModelKind;
use crate::run::read_config;
use crate::sla::{Mode, TransformPreset};
use crate::train::{RunStart, checkpoint};

use super::train::{episodes_line, follow};

#[derive(Debug, Args)]
pub struct FewShotArgs {
    #[command(subcommand)]
    pub command: FewShotCommand,
}

#[derive(Debug, Subcommand)]
pub enum FewShotCommand {
    /// Meta-train on the base classes' episodes and write a run folder.
    Train(Box<FewShotTrainArgs>),
    /// Evaluate a few-shot run on test episodes of its novel classes.
    Eval(FewShotEvalArgs),
    /// Tabulate a folder of finished few-shot runs (Markdown): each mode's accuracy over seeds.
    Table(FewShotTableArgs),
}

#[derive(Debug, Args)]
pub struct FewShotTableArgs {
    /// The folder holding the run folders.
    pub dir: PathBuf,
    /// Write the tables to this file instead of printing them.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Named class splits; explicit lists come with --base-classes and --novel-classes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SplitName {
    /// The dataset's usual split: classes 0–4 base and 5–9 novel for the 10-class sets, CIFAR-FS
    /// for cifar100, the train/ val/ test/ folders of an image folder.
    Usual,
    /// CIFAR-FS (64 / 16 / 20 CIFAR-100 classes).
    CifarFs,
    /// FC100 (CIFAR-100 by superclass, 60 / 20 / 20 classes).
    Fc100,
}

#[derive(Debug, Args)]
pub struct FewShotTrainArgs {
    #[arg(long, value_enum, default_value_t = DatasetKind::FashionMini)]
    pub dataset: DatasetKind,
    /// Folder holding the dataset's files (for image folders: ROOT with train/, test/ and
    /// optionally val/, one folder per class, no class in two of them).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Side in pixels that image-folder and tiny-ImageNet images are resized to.
    #[arg(long, default_value_t = 32)]
    pub image_size: usize,
    #[arg(long, value_enum, default_value_t = SplitName::Usual)]
    pub split: SplitName,
    /// Base (training) classes by index, e.g. 0,1,2,3,4; with --novel-classes, instead of --split.
    #[arg(long, value_delimiter = ',', requires = "novel_classes")]
    pub base_classes: Option<Vec<u32>>,
    /// Novel (test) classes by index.
    #[arg(long, value_delimiter = ',', requires = "base_classes")]
    pub novel_classes: Option<Vec<u32>>,
    /// Validation classes by index (optional).
    #[arg(long, value_delimiter = ',', requires = "base_classes")]
    pub validation_classes: Option<Vec<u32>>,
    #[arg(long, value_enum, default_value_t = ModelKind::Conv4)]
    pub backbone: ModelKind,
    #[arg(long, value_enum, default_value_t = Method::Protonet)]
    pub method: Method,
    /// baseline, da or sla.
    #[arg(long, value_enum, default_value_t = Mode::Sla)]
    pub mode: Mode,
    #[arg(long, value_enum, default_value_t = TransformPreset::Rotation)]
    pub transforms: TransformPreset,
    #[arg(long, default_value_t = 5)]
    pub ways: usize,
    #[arg(long, default_value_t = 5)]
    pub shots: usize,
    /// Query images per way.
    #[arg(long, default_value_t = 15)]
    pub queries: usize,
    /// Ways of the test episodes (default: --ways).
    #[arg(long)]
    pub test_ways: Option<usize>,
    /// Shots of the test episodes (default: --shots).
    #[arg(long)]
    pub test_shots: Option<usize>,
    /// Queries per way of the test episodes.
    #[arg(long, default_value_t = 15)]
    pub test_queries: usize,
    /// Training episodes.
    #[arg(long, default_value_t = 2_000)]
    pub episodes: u64,
    /// Evaluate every N training episodes (and after the last).
    #[arg(long, default_value_t = 500, value_name = "N")]
    pub eval_every: u64,
    /// Test episodes per evaluation while training (`sla fewshot eval` takes its own count).
    #[arg(long, default_value_t = 200)]
    pub eval_episodes: usize,
    /// The ridge head's regulariser λ.
    #[arg(long, default_value_t = crate::fewshot::ridge::DEFAULT_LAMBDA)]
    pub lambda: f64,
    /// SGD with Nesterov momentum as MetaOptNet trains its meta-learners.
    #[arg(long, default_value_t = 0.1)]
    pub lr: f64,
    #[arg(long, default_value_t = 0.9)]
    pub momentum: f64,
    #[arg(long, default_value_t = 5e-4)]
    pub weight_decay: f64,
    #[arg(long, value_enum, default_value_t = ScheduleKind::MultiStep)]
    pub schedule: ScheduleKind,
    /// Turn random crop and flip of the training episodes off.
    #[arg(long)]
    pub no_augment: bool,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// cpu, cuda, cuda:N or metal.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Also save a checkpoint every N episodes (0: at every evaluation only).
    #[arg(long, default_value_t = 0)]
    pub checkpoint_every: usize,
    /// Run folder to create.
    #[arg(long, conflicts_with = "resume")]
    pub out: Option<PathBuf>,
    /// Continue the run in this folder from its last checkpoint.
    #[arg(long)]
    pub resume: Option<PathBuf>,
}

impl FewShotTrainArgs {
    pub fn config(&self) -> TrainConfig {
        let classes = match (&self.base_classes, &self.novel_classes) {
            (Some(base), Some(novel)) => ClassSplit::Lists {
                base: base.clone(),
                validation: self.validation_classes.clone().unwrap_or_default(),
                novel: novel.clone(),
            },
            _ => match self.split {
                SplitName::Usual => ClassSplit::Usual,
                SplitName::CifarFs => ClassSplit::CifarFs,
                SplitName::Fc100 => ClassSplit::Fc100,
            },
        };
        TrainConfig {
            dataset: DatasetSource {
                kind: self.dataset,
                dir: self.data_dir.clone(),
                image_size: self.image_size,
            },
            augment: !self.no_augment,
            model: self.backbone,
            mode: self.mode,
            transforms: TransformChoice::Preset(self.transforms),
            lr: self.lr,
            momentum: self.momentum,
            weight_decay: self.weight_decay,
            nesterov: self.momentum > 0.0,
            schedule: self.schedule,
            seed: self.seed,
            device: self.device.clone(),
            checkpoint_every: self.checkpoint_every,
            fewshot: Some(FewShotConfig {
                method: self.method,
                classes,
                ways: self.ways,
                shots: self.shots,
                queries: self.queries,
                test_ways: self.test_ways.unwrap_or(self.ways),
                test_shots: self.test_shots.unwrap_or(self.shots),
                test_queries: self.test_queries,
                episodes: self.episodes,
                eval_every: self.eval_every,
                eval_episodes: self.eval_episodes,
                lambda: self.lambda,
            }),
            ..TrainConfig::default()
        }
    }
}

#[derive(Debug, Args)]
pub struct FewShotEvalArgs {
    /// The run folder written by `sla fewshot train`.
    #[arg(long)]
    pub run: PathBuf,
    /// Test episodes to average over.
    #[arg(long, default_value_t = 1_000)]
    pub episodes: usize,
    /// Ways of the test episodes (default: the run's).
    #[arg(long)]
    pub ways: Option<usize>,
    /// Shots of the test episodes (default: the run's).
    #[arg(long)]
    pub shots: Option<usize>,
    /// Queries per way (default: the run's).
    #[arg(long)]
    pub queries: Option<usize>,
    /// Folder of the dataset, when it moved since training.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    #[arg(long)]
    pub device: Option<String>,
    /// Also write the result as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

pub fn run(args: FewShotArgs) -> anyhow::Result<()> {
    match args.command {
        FewShotCommand::Train(args) => train(*args),
        FewShotCommand::Eval(args) => eval(args),
        FewShotCommand::Table(args) => table(args),
    }
}

fn table(args: FewShotTableArgs) -> anyhow::Result<()> {
    let (runs, skipped) = read_runs(&args.dir)
        .with_context(|| format!("reading the runs in {}", args.dir.display()))?;
    for line in &skipped {
        eprintln!("skipped {line}");
    }
    if runs.is_empty() {
        bail!(
            "{} holds no finished few-shot run (train them with `sla fewshot train --out {}/NAME`)",
            args.dir.display(),
            args.dir.display()
        );
    }
    let command = format!("sla fewshot table {}", args.dir.display());
    let text = results_markdown(&runs, &command);
    match &args.out {
        Some(path) => crate::run::write_atomically(path, text.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?,
        None => print!("{text}"),
    }
    Ok(())
}

fn train(args: FewShotTrainArgs) -> anyhow::Result<()> {
    let start = match (&args.resume, &args.out) {
        (Some(run_dir), _) => RunStart::Resume {
            run_dir: run_dir.clone(),
        },
        (None, Some(run_dir)) => {
            let config = args.config();
            config.validate()?;
            RunStart::New {
                config: Box::new(config),
                run_dir: run_dir.clone(),
            }
        }
        (None, None) => bail!("pass --out RUN_DIR for a new run or --resume RUN_DIR"),
    };
    follow(start, "sla fewshot train")
}

fn eval(args: FewShotEvalArgs) -> anyhow::Result<()> {
    let mut config = read_config(&args.run)?;
    if config.fewshot.is_none() {
        bail!(
            "{} is a standard run, not a few-shot one: evaluate it with `sla eval --run {}`",
            args.run.display(),
            args.run.display()
        );
    }
    if let Some(dir) = &args.data_dir {
        config.dataset.dir = Some(dir.clone());
    }
    if let Some(device) = &args.device {
        config.device = device.clone();
    }
    if let Some(fewshot) = config.fewshot.as_mut() {
        fewshot.test_ways = args.ways.unwrap_or(fewshot.test_ways);
        fewshot.test_shots = args.shots.unwrap_or(fewshot.test_shots);
        fewshot.test_queries = args.queries.unwrap_or(fewshot.test_queries);
    }
    config.validate()?;
    let fewshot = fewshot_of(&config)?.clone();
    let data = load_episode_data(&config)?;
    let checkpoint = checkpoint::require(&args.run)?;
    let model = build_episode_model(&config, &data, Some(&checkpoint))
        .with_context(|| format!("loading the checkpoint of {}", args.run.display()))?;
    let sampler = test_sampler(&data, fewshot.test_shape(), config.seed)?;
    let bar = ProgressBar::new(args.episodes as u64).with_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} test episodes  ETA {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    let never_stop = || false;
    let evaluation = evaluate_episodes(
        &model,
        &data.novel,
        &data.normalization,
        &sampler,
        args.episodes,
        &never_stop,
        &mut |done| bar.set_position(done as u64),
    )?
    .context("the evaluation was interrupted")?;
    bar.finish_and_clear();
    let snapshot = episode_snapshot(
        &config,
        &model,
        evaluation,
        EvaluationAt {
            epoch: 0,
            step: checkpoint.state.step,
            train_loss: f64::NAN,
            validation_single_acc: None,
            elapsed_s: checkpoint.state.elapsed_s,
        },
    );
    let metrics = &snapshot.metrics;
    println!(
        "{} {} {} after {} training episodes, on {}",
        fewshot.method.name(),
        config.mode.name(),
        config.model.name(),
        checkpoint.state.step,
        fewshot.classes.describe(config.dataset.kind)
    );
    if let Some(episodes) = &metrics.episodes {
        println!("{}", episodes_line(metrics, episodes));
    }
    if let Some(path) = &args.json {
        let json = serde_json::to_vec_pretty(metrics)?;
        crate::run::write_atomically(path, &json)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
