//! The trainer: a named thread that trains a model from a config, reports through events and obeys commands.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::thread::JoinHandle;
use std::time::Instant;

use candle_core::DType;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::config::{ConfigError, TrainConfig};
use crate::data::{DataError, make_batch};
use crate::sla::TransformError;

use super::checkpoint::{self, CheckpointError, TrainingState};
use super::evaluate::{Evaluation, evaluate};
use super::events::{RunInfo, StepStats, Summary, TrainerCommand, TrainerEvent};
use super::optim::Sgd;
use super::run_dir::{RunDir, RunDirError};
use super::schedule::learning_rate;
use super::setup::{Model, RunData, build_model, load_data};
use super::snapshot::{EvalMetrics, TrainingSnapshot};

/// Test images shown with their transformed copies in every snapshot.
const SNAPSHOT_SAMPLES: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Data(#[from] DataError),
    #[error("transformations: {0}")]
    Transform(#[from] TransformError),
    #[error("device: {0}")]
    Device(String),
    #[error(transparent)]
    RunDir(#[from] RunDirError),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error("computation failed: {0}")]
    Tensor(#[from] candle_core::Error),
    #[error("the training loss became {0}: lower the learning rate")]
    Diverged(f64),
    #[error("the front end went away")]
    Disconnected,
    #[error("could not start the trainer thread: {0}")]
    Thread(std::io::Error),
}

/// How a run starts: fresh into a new folder, or continuing the checkpoint in a folder.
#[derive(Clone, Debug, PartialEq)]
pub enum RunStart {
    New {
        config: Box<TrainConfig>,
        run_dir: PathBuf,
    },
    Resume {
        run_dir: PathBuf,
    },
}

/// A running trainer. Dropping it stops the run (with a checkpoint) and joins the thread.
pub struct TrainerHandle {
    commands: Sender<TrainerCommand>,
    events: Receiver<TrainerEvent>,
    thread: Option<JoinHandle<()>>,
}

impl TrainerHandle {
    /// Start training on a thread named "trainer". `waker` is called after every event is sent
    /// (the GUI passes `ctx.request_repaint`).
    pub fn spawn(start: RunStart, waker: impl Fn() + Send + 'static) -> Result<Self, TrainError> {
        let (command_tx, command_rx) = mpsc::channel();
        let (event_tx, event_rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("trainer".into())
            .spawn(move || {
                let mut emit = |event: TrainerEvent| {
                    let sent = event_tx.send(event).is_ok();
                    waker();
                    sent
                };
                let result = run(start, &command_rx, &mut emit);
                emit(TrainerEvent::Finished(result));
            })
            .map_err(TrainError::Thread)?;
        Ok(Self {
            commands: command_tx,
            events: event_rx,
            thread: Some(thread),
        })
    }

    pub fn send(&self, command: TrainerCommand) {
        // A trainer that already finished ignores commands; nothing to report.
        let _ = self.commands.send(command);
    }

    /// The events received so far, without blocking.
    pub fn poll(&self) -> Vec<TrainerEvent> {
        self.events.try_iter().collect()
    }

    /// Wait for the next event (for the command line). `None` once the trainer is gone.
    pub fn next_event(&self) -> Option<TrainerEvent> {
        self.events.recv().ok()
    }
}

impl Drop for TrainerHandle {
    fn drop(&mut self) {
        let _ = self.commands.send(TrainerCommand::Stop);
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            log::error!("the trainer thread panicked");
        }
    }
}

/// The sample order of an epoch: a permutation drawn from its own stream of the seed.
fn epoch_order(seed: u64, epoch: usize, len: usize) -> Vec<usize> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(epoch as u64);
    let mut order: Vec<usize> = (0..len).collect();
    order.shuffle(&mut rng);
    order
}

/// The augmentation stream of a step.
fn step_rng(seed: u64, step: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5A17_A5A1_0000_0001);
    rng.set_stream(step);
    rng
}

/// Train synchronously, reporting through `emit` (which returns false once nobody listens).
pub fn run(
    start: RunStart,
    commands: &Receiver<TrainerCommand>,
    emit: &mut dyn FnMut(TrainerEvent) -> bool,
) -> Result<Summary, TrainError> {
    let (config, run_dir, resume) = match start {
        RunStart::New { config, run_dir } => {
            config.validate()?;
            (*config, run_dir, false)
        }
        RunStart::Resume { run_dir } => (super::run_dir::read_config(&run_dir)?, run_dir, true),
    };
    let data = load_data(&config)?;
    if data.train.len() < config.batch_size {
        return Err(ConfigError {
            field: "batch size",
            reason: format!(
                "{} is larger than the {} training images",
                config.batch_size,
                data.train.len()
            ),
        }
        .into());
    }
    let num_classes = data.train.num_classes();
    let model = build_model(
        &config,
        data.train.shape,
        num_classes,
        resume.then_some(run_dir.as_path()),
    )?;
    let mut sgd = Sgd::new(
        model.named_parameters(),
        config.momentum,
        config.weight_decay,
        config.nesterov,
    );
    let (state, mut run_folder) = if resume {
        let state = checkpoint::load_state(&run_dir)?;
        sgd.set_buffers(checkpoint::load_buffers(&run_dir, &model.device)?);
        let folder = RunDir::resume(&run_dir, state.step)?;
        (state, folder)
    } else {
        let state = TrainingState {
            step: 0,
            seed: config.seed,
            elapsed_s: 0.0,
        };
        (state, RunDir::create(&run_dir, &config)?)
    };
    let mut loop_state = Loop {
        config: &config,
        data: &data,
        model: &model,
        steps_per_epoch: (data.train.len() / config.batch_size).max(1) as u64,
        step: state.step,
        elapsed_before: state.elapsed_s,
        started: Instant::now(),
    };
    let total_steps = loop_state.steps_per_epoch * config.epochs as u64;
    let info = RunInfo {
        run_dir: run_dir.clone(),
        device: config.device.clone(),
        train_images: data.train.len(),
        test_images: data.test.len(),
        num_classes,
        num_transforms: model.objective.num_transforms,
        steps_per_epoch: loop_state.steps_per_epoch,
        total_steps,
        first_step: state.step,
    };
    log::info!(
        "training {} steps from step {} into {}",
        total_steps,
        state.step,
        run_dir.display()
    );
    if !emit(TrainerEvent::Started(info)) {
        return Err(TrainError::Disconnected);
    }
    loop_state.train(&mut sgd, &mut run_folder, commands, emit, total_steps)
}

struct Loop<'a> {
    config: &'a TrainConfig,
    data: &'a RunData,
    model: &'a Model,
    steps_per_epoch: u64,
    step: u64,
    elapsed_before: f64,
    started: Instant,
}

impl Loop<'_> {
    fn elapsed(&self) -> f64 {
        self.elapsed_before + self.started.elapsed().as_secs_f64()
    }

    fn save_checkpoint(&self, sgd: &Sgd, run_folder: &mut RunDir) -> Result<(), TrainError> {
        run_folder.flush()?;
        let state = TrainingState {
            step: self.step,
            seed: self.config.seed,
            elapsed_s: self.elapsed(),
        };
        checkpoint::save(run_folder.path(), &self.model.vars, sgd.buffers(), &state)?;
        Ok(())
    }

    fn train(
        &mut self,
        sgd: &mut Sgd,
        run_folder: &mut RunDir,
        commands: &Receiver<TrainerCommand>,
        emit: &mut dyn FnMut(TrainerEvent) -> bool,
        total_steps: u64,
    ) -> Result<Summary, TrainError> {
        let config = self.config;
        let batch = config.batch_size;
        let m = self.model.objective.num_transforms;
        let mut order: Option<(usize, Vec<usize>)> = None;
        let mut loss_sum = 0.0;
        let mut loss_count = 0usize;
        let mut images_per_s: Option<f64> = None;
        let mut final_metrics = None;
        let mut paused = false;
        while self.step < total_steps {
            // Commands: drain without blocking; while paused, wait for the next one.
            loop {
                let command = if paused {
                    commands.recv().map_err(|_| TrainError::Disconnected)?
                } else {
                    match commands.try_recv() {
                        Ok(command) => command,
                        Err(TryRecvError::Empty) => break,
                        Err(TryRecvError::Disconnected) => return Err(TrainError::Disconnected),
                    }
                };
                match command {
                    TrainerCommand::Pause if !paused => {
                        paused = true;
                        emit(TrainerEvent::Paused);
                    }
                    TrainerCommand::Resume if paused => {
                        paused = false;
                        emit(TrainerEvent::Resumed);
                    }
                    TrainerCommand::SaveCheckpoint => {
                        self.save_checkpoint(sgd, run_folder)?;
                        emit(TrainerEvent::CheckpointSaved(
                            run_folder.path().to_path_buf(),
                        ));
                    }
                    TrainerCommand::Stop => {
                        self.save_checkpoint(sgd, run_folder)?;
                        return Ok(Summary {
                            steps: self.step,
                            final_metrics,
                            stopped_early: true,
                            elapsed_s: self.elapsed(),
                        });
                    }
                    _ => {}
                }
            }
            let step_started = Instant::now();
            let epoch = (self.step / self.steps_per_epoch) as usize;
            let position = (self.step % self.steps_per_epoch) as usize;
            if order.as_ref().is_none_or(|(e, _)| *e != epoch) {
                order = Some((
                    epoch,
                    epoch_order(config.seed, epoch, self.data.train.len()),
                ));
            }
            let indices = match &order {
                Some((_, order)) => &order[position * batch..(position + 1) * batch],
                None => unreachable!("the epoch order was just set"),
            };
            let loss = self.train_step(sgd, indices, total_steps)?;
            if !loss.is_finite() {
                return Err(TrainError::Diverged(loss));
            }
            self.step += 1;
            loss_sum += loss;
            loss_count += 1;
            let lr = learning_rate(config.schedule, config.lr, self.step - 1, total_steps);
            run_folder.log_step(self.step, epoch, loss, lr)?;
            let rate = batch as f64 / step_started.elapsed().as_secs_f64().max(1e-9);
            let smoothed = images_per_s.map_or(rate, |previous| 0.8 * previous + 0.2 * rate);
            images_per_s = Some(smoothed);
            log::trace!("step {} loss {loss:.4}", self.step);
            let stats = StepStats {
                step: self.step,
                epoch,
                loss,
                lr,
                images_per_s: smoothed,
                transformed_per_s: smoothed
                    * if config.mode.expands_batches() {
                        m as f64
                    } else {
                        1.0
                    },
            };
            if !emit(TrainerEvent::Step(stats)) {
                return Err(TrainError::Disconnected);
            }
            let epoch_done = self.step.is_multiple_of(self.steps_per_epoch);
            let last = self.step == total_steps;
            if epoch_done || last {
                let completed_epochs = (self.step / self.steps_per_epoch) as usize;
                if last || completed_epochs.is_multiple_of(config.eval_every) {
                    let train_loss = loss_sum / loss_count.max(1) as f64;
                    loss_sum = 0.0;
                    loss_count = 0;
                    let snapshot = self.snapshot(completed_epochs, train_loss)?;
                    run_folder.record_evaluation(&snapshot)?;
                    final_metrics = Some(snapshot.metrics.clone());
                    emit(TrainerEvent::Snapshot(Arc::new(snapshot)));
                }
                self.save_checkpoint(sgd, run_folder)?;
            }
        }
        run_folder.flush()?;
        Ok(Summary {
            steps: self.step,
            final_metrics,
            stopped_early: false,
            elapsed_s: self.elapsed(),
        })
    }

    fn train_step(
        &self,
        sgd: &mut Sgd,
        indices: &[usize],
        total_steps: u64,
    ) -> Result<f64, TrainError> {
        let config = self.config;
        let model = self.model;
        let mut rng = step_rng(config.seed, self.step);
        let (images, labels) = make_batch(
            &self.data.train,
            indices,
            &self.data.augmentation,
            &self.data.normalization,
            &mut rng,
            &model.device,
        )?;
        let inputs = if config.mode.expands_batches() {
            model.expander.expand(&images)?
        } else {
            images
        };
        let features = model.net.features(&inputs, true)?;
        let outputs = model.objective.outputs(model.net.heads(), &features)?;
        let loss = model.objective.loss(&outputs, &labels)?;
        let grads = loss.backward()?;
        sgd.step(
            &grads,
            learning_rate(config.schedule, config.lr, self.step, total_steps),
        )?;
        Ok(loss.to_dtype(DType::F64)?.to_scalar::<f64>()?)
    }

    fn snapshot(&self, epoch: usize, train_loss: f64) -> Result<TrainingSnapshot, TrainError> {
        let eval = evaluate(
            self.model,
            &self.data.test,
            &self.data.normalization,
            self.config.batch_size,
            SNAPSHOT_SAMPLES,
        )?;
        let validation_single_acc = match &self.data.validation {
            Some(validation) => Some(
                evaluate(
                    self.model,
                    validation,
                    &self.data.normalization,
                    self.config.batch_size,
                    0,
                )?
                .single_acc,
            ),
            None => None,
        };
        Ok(snapshot_from(
            self,
            epoch,
            train_loss,
            eval,
            validation_single_acc,
        ))
    }
}

fn snapshot_from(
    state: &Loop<'_>,
    epoch: usize,
    train_loss: f64,
    eval: Evaluation,
    validation_single_acc: Option<f64>,
) -> TrainingSnapshot {
    TrainingSnapshot {
        metrics: EvalMetrics {
            epoch,
            step: state.step,
            train_loss,
            eval_loss: eval.loss,
            single_acc: eval.single_acc,
            agg_acc: eval.agg_acc,
            sd_acc: eval.sd_acc,
            joint_acc: eval.joint_acc,
            per_transform_acc: eval.per_transform_acc,
            validation_single_acc,
            elapsed_s: state.elapsed(),
        },
        class_names: state.data.train.class_names.clone(),
        transform_names: state.model.transforms.names(),
        joint_confusion: eval.joint_confusion,
        class_confusion: eval.class_confusion,
        row_predictions: eval.row_predictions,
        samples: eval.samples,
    }
}

/// Whether `dir` holds a run that can be resumed.
pub fn is_resumable(dir: &Path) -> bool {
    dir.join(super::run_dir::CONFIG_FILE).exists() && dir.join(checkpoint::STATE_FILE).exists()
}
