//! The episodic trainer: one step is one training episode from the base classes; every
//! `eval_every` episodes (and after the last) the novel classes' test episodes are evaluated. It
//! keeps the run-folder contract of the standard trainer (config, steps, metrics, snapshot,
//! checkpoints with their fingerprint, exact resume) and speaks the same events, so the CLI and
//! the app follow a few-shot run as any other.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use candle_core::DType;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::config::{ConfigError, TrainConfig};
use crate::run::{EpisodeStats, EvalMetrics, RunDir, TrainingSnapshot};
use crate::train::checkpoint::{self, Fingerprint, TrainingState};
use crate::train::commands::{self, Obeyed};
use crate::train::optim::Sgd;
use crate::train::schedule::learning_rate;
use crate::train::setup::{fingerprint, named_parameters};
use crate::train::trainer::{Opened, Progress, fresh_state, open_for_resume, save_after_logs};
use crate::train::{
    RunInfo, StepStats, Summary, TrainError, TrainerCommand, TrainerEvent, TrainingEpisode,
};

use super::FewShotConfig;
use super::batch::{EpisodePlan, EpisodesAhead, ReadyEpisode};
use super::episode::{EpisodeError, EpisodeSampler};
use super::evaluate::{
    EpisodeEvaluation, episode_grid, evaluate_episodes, mean_and_ci95, snapshot_transforms,
    test_sampler, validation_sampler,
};
use super::objective::predicted;
use super::setup::{EpisodeData, EpisodeModel, build_episode_model, fewshot_of, load_episode_data};

impl From<EpisodeError> for TrainError {
    fn from(error: EpisodeError) -> Self {
        TrainError::Config(ConfigError {
            field: "episodes",
            reason: error.to_string(),
        })
    }
}

/// Train a few-shot run until done or until `stop` is set, reporting through `emit`.
pub fn run_until(
    config: TrainConfig,
    run_dir: PathBuf,
    resume: bool,
    commands: &Receiver<TrainerCommand>,
    stop: &AtomicBool,
    emit: &mut dyn FnMut(TrainerEvent) -> bool,
) -> Result<Summary, TrainError> {
    let fewshot = fewshot_of(&config)?.clone();
    let data = load_episode_data(&config)?;
    if stop.load(Ordering::SeqCst) {
        return Ok(Summary {
            steps: 0,
            final_metrics: None,
            stopped_early: true,
            elapsed_s: 0.0,
            data_wait_s: 0.0,
        });
    }
    let train_sampler = EpisodeSampler::new(
        "base classes",
        &data.base.labels,
        data.base.num_classes(),
        fewshot.train_shape(),
        config.seed,
    )?;
    let test = test_sampler(&data, fewshot.test_shape(), config.seed)?;
    let validation = validation_sampler(&data, fewshot.test_shape(), config.seed)?;
    let fingerprint = fingerprint(&config, &data.base, data.validation.as_deref());
    let Opened {
        folder: mut run_folder,
        state,
        checkpoint,
    } = if resume {
        open_for_resume(&run_dir, &config, &fingerprint)?
    } else {
        Opened {
            folder: RunDir::create(&run_dir, &config)?,
            state: fresh_state(&config),
            checkpoint: None,
        }
    };
    let model = build_episode_model(&config, &data, checkpoint.as_ref())?;
    let mut sgd = Sgd::new(
        named_parameters(&model.vars),
        config.momentum,
        config.weight_decay,
        config.nesterov,
    );
    if let Some(checkpoint) = &checkpoint {
        sgd.set_buffers(checkpoint.load_buffers(&model.device)?);
    }
    let mut episodic = Episodic {
        config: &config,
        fewshot: &fewshot,
        data: &data,
        model: &model,
        fingerprint: &fingerprint,
        stop,
        train_sampler,
        test,
        validation,
        step: state.step,
        elapsed_before: state.elapsed_s,
        started: Instant::now(),
        data_wait: Duration::ZERO,
    };
    if checkpoint.is_none() {
        episodic.save_checkpoint(&sgd, &mut run_folder, false)?;
    }
    let info = RunInfo {
        run_dir: run_dir.clone(),
        device: config.device.clone(),
        train_images: data.base.len(),
        test_images: data.novel.len(),
        num_classes: data.base.num_classes(),
        train_class_counts: crate::data::class_counts(&data.base),
        num_transforms: model.objective.num_transforms,
        steps_per_epoch: fewshot.eval_every,
        total_steps: fewshot.episodes,
        first_step: state.step,
    };
    log::info!(
        "few-shot training: {} episodes from episode {} into {}",
        fewshot.episodes,
        state.step,
        run_dir.display()
    );
    if !emit(TrainerEvent::Started(info)) {
        return Err(TrainError::Disconnected);
    }
    let mut progress = Progress::since_last_evaluation(&run_dir, state.step)?;
    if state.pending_evaluation {
        match episodic.evaluate_and_checkpoint(&sgd, &mut run_folder, &mut progress, emit)? {
            Some(summary) if summary.steps == fewshot.episodes => return Ok(summary),
            Some(_) => {}
            None => return Ok(episodic.summary(progress.final_metrics, true)),
        }
    }
    episodic.train(&mut sgd, &mut run_folder, commands, emit, progress)
}

struct Episodic<'a> {
    config: &'a TrainConfig,
    fewshot: &'a FewShotConfig,
    data: &'a EpisodeData,
    model: &'a EpisodeModel,
    fingerprint: &'a Fingerprint,
    stop: &'a AtomicBool,
    train_sampler: EpisodeSampler,
    test: EpisodeSampler,
    validation: Option<EpisodeSampler>,
    step: u64,
    elapsed_before: f64,
    started: Instant,
    /// How long this session's steps waited for their episodes.
    data_wait: Duration,
}

impl Episodic<'_> {
    fn elapsed(&self) -> f64 {
        self.elapsed_before + self.started.elapsed().as_secs_f64()
    }

    fn summary(&self, final_metrics: Option<EvalMetrics>, stopped_early: bool) -> Summary {
        Summary {
            steps: self.step,
            final_metrics,
            stopped_early,
            elapsed_s: self.elapsed(),
            data_wait_s: self.data_wait.as_secs_f64(),
        }
    }

    /// "Epochs" of a few-shot run are the stretches between evaluations.
    fn epoch_of(&self, step: u64) -> usize {
        (step / self.fewshot.eval_every) as usize
    }

    fn save_checkpoint(
        &self,
        sgd: &Sgd,
        run_folder: &mut RunDir,
        pending_evaluation: bool,
    ) -> Result<(), TrainError> {
        let state = TrainingState {
            step: self.step,
            seed: self.config.seed,
            elapsed_s: self.elapsed(),
            pending_evaluation,
        };
        save_after_logs(run_folder, &self.model.vars, sgd, &state, self.fingerprint)
    }

    fn train(
        &mut self,
        sgd: &mut Sgd,
        run_folder: &mut RunDir,
        commands: &Receiver<TrainerCommand>,
        emit: &mut dyn FnMut(TrainerEvent) -> bool,
        mut progress: Progress,
    ) -> Result<Summary, TrainError> {
        let total = self.fewshot.episodes;
        let shape = self.fewshot.train_shape();
        let images_per_episode = shape.images() as f64;
        let m = self.model.objective.num_transforms;
        let mut paused = false;
        let mut images_per_s: Option<f64> = None;
        let mut last_episode_shown: Option<Instant> = None;
        let mut episodes = self.training_episodes(total)?;
        while self.step < total {
            let obeyed = commands::obey(commands, self.stop, &mut paused, emit, &mut || {
                self.save_checkpoint(sgd, run_folder, false)?;
                Ok(run_folder.path().to_path_buf())
            })?;
            if obeyed == Obeyed::Stop {
                return Ok(self.summary(progress.final_metrics, true));
            }
            let step_started = Instant::now();
            let epoch = self.epoch_of(self.step);
            let show_episode = last_episode_shown
                .is_none_or(|shown: Instant| shown.elapsed() >= EPISODE_GRID_INTERVAL);
            let ready = episodes.next_episode()?;
            self.data_wait += ready.waited;
            let (loss, accuracy, episode) = self.train_step(sgd, total, ready, show_episode)?;
            if !loss.is_finite() {
                return Err(TrainError::Diverged {
                    what: "training loss",
                    value: loss,
                    step: self.step + 1,
                    checkpoint_step: checkpoint::find(run_folder.path())?
                        .map_or(0, |c| c.state.step),
                    run_dir: run_folder.path().to_path_buf(),
                });
            }
            self.step += 1;
            progress.loss_sum += loss;
            progress.loss_count += 1;
            let rate = images_per_episode / step_started.elapsed().as_secs_f64().max(1e-9);
            let smoothed = images_per_s.map_or(rate, |previous| 0.8 * previous + 0.2 * rate);
            images_per_s = Some(smoothed);
            let stats = StepStats {
                step: self.step,
                epoch,
                loss,
                lr: learning_rate(self.config.schedule, self.config.lr, self.step - 1, total),
                seconds: self.elapsed(),
                images_per_s: smoothed,
                transformed_per_s: smoothed
                    * if self.config.mode.expands_batches() {
                        m as f64
                    } else {
                        1.0
                    },
                accuracy: Some(accuracy),
            };
            run_folder.log_step(stats.record())?;
            if !emit(TrainerEvent::Step(stats)) {
                return Err(TrainError::Disconnected);
            }
            if let Some(episode) = episode {
                last_episode_shown = Some(Instant::now());
                emit(TrainerEvent::Episode(Arc::new(episode)));
            }
            let evaluate_now =
                self.step == total || self.step.is_multiple_of(self.fewshot.eval_every);
            if evaluate_now {
                if self
                    .evaluate_and_checkpoint(sgd, run_folder, &mut progress, emit)?
                    .is_none()
                {
                    return Ok(self.summary(progress.final_metrics, true));
                }
            } else if self.config.checkpoint_every > 0
                && self
                    .step
                    .is_multiple_of(self.config.checkpoint_every as u64)
            {
                self.save_checkpoint(sgd, run_folder, false)?;
            }
        }
        run_folder.sync()?;
        Ok(self.summary(progress.final_metrics, false))
    }

    /// The training episodes from this step to `total`, made one ahead on their own thread: each
    /// step's episode from the base classes, its images augmented from the step's own stream.
    fn training_episodes(&self, total: u64) -> Result<EpisodesAhead, TrainError> {
        let plan = EpisodePlan {
            data: self.data.base.clone(),
            sampler: self.train_sampler.clone(),
            augmentation: self.data.augmentation,
            normalization: self.data.normalization.clone(),
            device: self.model.device.clone(),
        };
        let seed = self.config.seed;
        let augmentation_stream = move |step| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed ^ AUGMENTATION_STREAM);
            rng.set_stream(step);
            rng
        };
        EpisodesAhead::spawn(plan, self.step..total, augmentation_stream)
            .map_err(|e| TrainError::Thread(format!("the episode builder: {e}")))
    }

    /// One training episode: the loss of the mode on its images, and an SGD step. Returns the
    /// loss, the episode's query accuracy (single inference, before the step) and, when `show`
    /// asks for it, the episode as the grid draws it.
    fn train_step(
        &self,
        sgd: &mut Sgd,
        total: u64,
        ready: ReadyEpisode,
        show: bool,
    ) -> Result<(f64, f64, Option<TrainingEpisode>), TrainError> {
        let model = self.model;
        let ReadyEpisode {
            episode, images, ..
        } = ready;
        let outputs =
            model
                .objective
                .outputs(&model.net, &model.expander, &model.scale, &images, true)?;
        let grads = outputs.loss.backward()?;
        sgd.step(
            &grads,
            learning_rate(self.config.schedule, self.config.lr, self.step, total),
        )?;
        let hits = predicted(&outputs.single)?
            .iter()
            .zip(&images.query_ways)
            .filter(|(p, t)| p == t)
            .count();
        let accuracy = hits as f64 / images.query_ways.len().max(1) as f64;
        let shown = if show {
            let base = &self.data.base;
            Some(TrainingEpisode {
                step: self.step + 1,
                grid: episode_grid(
                    model,
                    base,
                    &episode,
                    self.train_sampler.shape(),
                    &outputs.grid_verdicts()?,
                )?,
                class_names: episode
                    .classes
                    .iter()
                    .enumerate()
                    .map(|(way, &class)| {
                        let name = base.class_names.get(class as usize);
                        format!("way {}: {}", way + 1, name.map_or("?", String::as_str))
                    })
                    .collect(),
            })
        } else {
            None
        };
        Ok((
            outputs.loss.to_dtype(DType::F64)?.to_scalar::<f64>()?,
            accuracy,
            shown,
        ))
    }

    /// Evaluate, record and checkpoint; `None` when stopped during the evaluation (the checkpoint
    /// then owes it).
    fn evaluate_and_checkpoint(
        &self,
        sgd: &Sgd,
        run_folder: &mut RunDir,
        progress: &mut Progress,
        emit: &mut dyn FnMut(TrainerEvent) -> bool,
    ) -> Result<Option<Summary>, TrainError> {
        let train_loss = progress.loss_sum / progress.loss_count.max(1) as f64;
        let Some(snapshot) = self.snapshot(train_loss)? else {
            self.save_checkpoint(sgd, run_folder, true)?;
            return Ok(None);
        };
        progress.loss_sum = 0.0;
        progress.loss_count = 0;
        run_folder.record_evaluation(&snapshot)?;
        let eval_loss = snapshot.metrics.eval_loss;
        progress.final_metrics = Some(snapshot.metrics.clone());
        emit(TrainerEvent::Snapshot(Arc::new(snapshot)));
        if !eval_loss.is_finite() {
            return Err(TrainError::Diverged {
                what: "test loss",
                value: eval_loss,
                step: self.step,
                checkpoint_step: checkpoint::find(run_folder.path())?.map_or(0, |c| c.state.step),
                run_dir: run_folder.path().to_path_buf(),
            });
        }
        self.save_checkpoint(sgd, run_folder, false)?;
        Ok(Some(self.summary(
            progress.final_metrics.clone(),
            self.step < self.fewshot.episodes,
        )))
    }

    fn snapshot(&self, train_loss: f64) -> Result<Option<TrainingSnapshot>, TrainError> {
        let should_stop = || self.stop.load(Ordering::SeqCst);
        let episodes = self.fewshot.eval_episodes;
        let Some(evaluation) = evaluate_episodes(
            self.model,
            &self.data.novel,
            &self.data.normalization,
            &self.test,
            episodes,
            &should_stop,
            &mut |_| {},
        )?
        else {
            return Ok(None);
        };
        let validation_single_acc = match (&self.validation, &self.data.validation) {
            (Some(sampler), Some(validation)) => {
                let Some(result) = evaluate_episodes(
                    self.model,
                    validation,
                    &self.data.normalization,
                    sampler,
                    episodes,
                    &should_stop,
                    &mut |_| {},
                )?
                else {
                    return Ok(None);
                };
                Some(mean_and_ci95(&result.single).0)
            }
            _ => None,
        };
        Ok(Some(episode_snapshot(
            self.config,
            self.model,
            evaluation,
            EvaluationAt {
                epoch: self.epoch_of(self.step),
                step: self.step,
                train_loss,
                validation_single_acc,
                elapsed_s: self.elapsed(),
            },
        )))
    }
}

/// Where in the run an evaluation was made.
pub struct EvaluationAt {
    pub epoch: usize,
    pub step: u64,
    pub train_loss: f64,
    pub validation_single_acc: Option<f64>,
    pub elapsed_s: f64,
}

/// The snapshot of an evaluation over test episodes. Its classes are the episode's ways (the
/// novel classes change from one episode to the next), named "way 1" … "way N".
pub fn episode_snapshot(
    config: &TrainConfig,
    model: &EpisodeModel,
    evaluation: EpisodeEvaluation,
    at: EvaluationAt,
) -> TrainingSnapshot {
    let (single_acc, single_ci95) = mean_and_ci95(&evaluation.single);
    let aggregated = evaluation.aggregated.as_deref().map(mean_and_ci95);
    let ways = match &config.fewshot {
        Some(fewshot) => fewshot.test_shape(),
        None => super::episode::EpisodeShape {
            ways: 0,
            shots: 0,
            queries: 0,
        },
    };
    let m = snapshot_transforms(config.mode, model.objective.num_transforms);
    let mut transform_names = model.transforms.names();
    transform_names.truncate(m);
    TrainingSnapshot {
        metrics: EvalMetrics {
            epoch: at.epoch,
            step: at.step,
            train_loss: at.train_loss,
            eval_loss: evaluation.loss,
            single_acc,
            agg_acc: aggregated.map(|(mean, _)| mean),
            joint_acc: evaluation.joint_acc,
            per_transform_acc: evaluation.per_transform_acc,
            validation_single_acc: at.validation_single_acc,
            elapsed_s: at.elapsed_s,
            episodes: Some(EpisodeStats {
                episodes: evaluation.episodes,
                ways: ways.ways,
                shots: ways.shots,
                queries: ways.queries,
                single_ci95,
                agg_ci95: aggregated.map(|(_, ci)| ci),
            }),
            ..Default::default()
        },
        class_names: (1..=ways.ways).map(|w| format!("way {w}")).collect(),
        transform_names,
        joint_confusion: evaluation.joint_confusion,
        class_confusion: evaluation.class_confusion,
        samples: evaluation.samples,
        ..Default::default()
    }
}

/// How often a training episode is sent to the app's grid: often enough to watch, rarely enough
/// that building it (a few dozen small images) stays out of the step's time.
const EPISODE_GRID_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

const AUGMENTATION_STREAM: u64 = 0xA06_0000_0000_0003;
