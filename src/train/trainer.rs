//! The trainer: a named thread that trains a model from a config, reports through events and obeys commands.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use candle_core::DType;

use crate::config::{ConfigError, TrainConfig};
use crate::data::{self, DataError};
use crate::run::{self, EvalMetrics, GroupAccuracies, RunDir, RunError, RunLock, TrainingSnapshot};
use crate::sla::TransformError;

use super::best;
use super::checkpoint::{self, Checkpoint, CheckpointError, Fingerprint, TrainingState};
use super::commands;
use super::evaluate::{Evaluation, evaluate};
use super::events::{RunInfo, StepStats, Summary, TrainerCommand, TrainerEvent};
use super::optim::Sgd;
use super::prefetch::{Batch, BatchPlan, Prefetcher};
use super::sampler::Sampler;
use super::schedule::learning_rate;
use super::setup::{Model, RunData, build_model, fingerprint, load_data};

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
    Run(#[from] RunError),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error("computation failed: {0}")]
    Tensor(#[from] candle_core::Error),
    #[error(
        "the {what} became {value} at step {step}: lower the learning rate (\"lr\" in {}) and \
         resume with `sla train --resume {}`, which continues from the checkpoint at step \
         {checkpoint_step}, saved before it",
        run_dir.join(run::CONFIG_FILE).display(),
        run_dir.display()
    )]
    Diverged {
        what: &'static str,
        value: f64,
        step: u64,
        checkpoint_step: u64,
        run_dir: PathBuf,
    },
    #[error(
        "{} cannot be resumed as it is: {}. Put the old values back in its config.json, or start a new run",
        run_dir.display(),
        changes.join("; ")
    )]
    ResumeMismatch {
        run_dir: PathBuf,
        changes: Vec<String>,
    },
    #[error("the front end went away")]
    Disconnected,
    #[error("could not start the trainer thread: {0}")]
    Thread(String),
    #[error("the trainer failed unexpectedly: {0} (this is a bug; the last checkpoint is intact)")]
    Panicked(String),
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
    /// Set with every Stop: also seen inside evaluation, where commands are not read.
    stop: Arc<AtomicBool>,
    /// Whether `Finished` has been passed on (so a thread that vanished without it is reported once).
    finished: bool,
    thread: Option<JoinHandle<()>>,
}

impl TrainerHandle {
    /// Start training on a thread named "trainer". `waker` is called after every event is sent
    /// (the GUI passes `ctx.request_repaint`).
    pub fn spawn(start: RunStart, waker: impl Fn() + Send + 'static) -> Result<Self, TrainError> {
        let (command_tx, command_rx) = mpsc::channel();
        let (event_tx, event_rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let stop_seen = stop.clone();
        let thread = crate::worker::spawn("trainer", move || {
            let mut emit = |event: TrainerEvent| {
                let sent = event_tx.send(event).is_ok();
                waker();
                sent
            };
            // A panic anywhere in training (or in the front end's waker) ends the run as an error
            // the front end shows, never as a thread that silently vanished.
            let result =
                crate::worker::catch_panic(|| run_until(start, &command_rx, &stop_seen, &mut emit))
                    .unwrap_or_else(|message| Err(TrainError::Panicked(message)));
            emit(TrainerEvent::Finished(result));
        })
        .map_err(|e| TrainError::Thread(e.to_string()))?;
        Ok(Self {
            commands: command_tx,
            events: event_rx,
            stop,
            finished: false,
            thread: Some(thread),
        })
    }

    pub fn send(&self, command: TrainerCommand) {
        if command == TrainerCommand::Stop {
            self.stop.store(true, Ordering::SeqCst);
        }
        // A trainer that already finished ignores commands; nothing to report.
        let _ = self.commands.send(command);
    }

    /// A flag that stops the run when set, for callers on other threads (a Ctrl-C handler).
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }

    /// The events received so far, without blocking. A trainer thread that ended without saying how
    /// is reported as failed, so a front end never waits on a dead run.
    pub fn poll(&mut self) -> Vec<TrainerEvent> {
        let mut events = Vec::new();
        loop {
            match self.events.try_recv() {
                Ok(event) => {
                    self.finished |= matches!(event, TrainerEvent::Finished(_));
                    events.push(event);
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    if !self.finished {
                        self.finished = true;
                        events.push(TrainerEvent::Finished(Err(TrainError::Panicked(
                            "the trainer thread ended without reporting".into(),
                        ))));
                    }
                    break;
                }
            }
        }
        events
    }

    /// Wait for the next event (for the command line). `None` once the trainer is gone.
    pub fn next_event(&self) -> Option<TrainerEvent> {
        self.events.recv().ok()
    }
}

impl Drop for TrainerHandle {
    fn drop(&mut self) {
        self.send(TrainerCommand::Stop);
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            log::error!("the trainer thread panicked");
        }
    }
}

/// Train synchronously, reporting through `emit` (which returns false once nobody listens).
pub fn run(
    start: RunStart,
    commands: &Receiver<TrainerCommand>,
    emit: &mut dyn FnMut(TrainerEvent) -> bool,
) -> Result<Summary, TrainError> {
    run_until(start, commands, &AtomicBool::new(false), emit)
}

/// Where a run starts: its folder (locked, logs cut back to the checkpoint), its step and the
/// evaluation a stopped run still owes.
pub(crate) struct Opened {
    pub folder: RunDir,
    pub state: TrainingState,
    pub checkpoint: Option<Checkpoint>,
}

/// Lock the folder and find where to continue. A run folder without a checkpoint (killed before its
/// first one was complete) starts again from step 0 with its own config.
pub(crate) fn open_for_resume(
    run_dir: &Path,
    config: &TrainConfig,
    fingerprint: &Fingerprint,
) -> Result<Opened, TrainError> {
    let lock = RunLock::acquire(run_dir)?;
    let checkpoint = checkpoint::find(run_dir)?;
    if let Some(stored) = checkpoint.as_ref().and_then(|c| c.fingerprint.as_ref()) {
        let changes = fingerprint.differences(stored);
        if !changes.is_empty() {
            return Err(TrainError::ResumeMismatch {
                run_dir: run_dir.to_path_buf(),
                changes,
            });
        }
    }
    let state = checkpoint
        .as_ref()
        .map_or_else(|| fresh_state(config), |c| c.state.clone());
    Ok(Opened {
        folder: RunDir::resume(run_dir, lock, state.step)?,
        state,
        checkpoint,
    })
}

pub(crate) fn fresh_state(config: &TrainConfig) -> TrainingState {
    TrainingState {
        step: 0,
        seed: config.seed,
        elapsed_s: 0.0,
        pending_evaluation: false,
    }
}

/// Train synchronously until done or until `stop` is set (checked at every step and inside
/// evaluation), reporting through `emit` (which returns false once nobody listens).
pub fn run_until(
    start: RunStart,
    commands: &Receiver<TrainerCommand>,
    stop: &AtomicBool,
    emit: &mut dyn FnMut(TrainerEvent) -> bool,
) -> Result<Summary, TrainError> {
    let (config, run_dir, resume) = match start {
        RunStart::New { config, run_dir } => {
            config.validate()?;
            (*config, run_dir, false)
        }
        RunStart::Resume { run_dir } => (run::read_config(&run_dir)?, run_dir, true),
    };
    if config.fewshot.is_some() {
        return crate::fewshot::trainer::run_until(config, run_dir, resume, commands, stop, emit);
    }
    let stopped_before_start = || Summary {
        steps: 0,
        final_metrics: None,
        stopped_early: true,
        elapsed_s: 0.0,
        data_wait_s: 0.0,
    };
    let data = load_data(&config)?;
    if stop.load(Ordering::SeqCst) {
        return Ok(stopped_before_start());
    }
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
    let fingerprint = fingerprint(&config, &data.train, data.validation.as_deref());
    let opened = if resume {
        open_for_resume(&run_dir, &config, &fingerprint)?
    } else {
        Opened {
            folder: RunDir::create(&run_dir, &config)?,
            state: fresh_state(&config),
            checkpoint: None,
        }
    };
    let Opened {
        folder: mut run_folder,
        state,
        checkpoint,
    } = opened;
    let train_class_counts = data::class_counts(&data.train);
    let mut model = build_model(&config, data.train.shape, num_classes, checkpoint.as_ref())?;
    model.objective.class_weights = config
        .class_weights
        .weights(&train_class_counts, config.cb_beta);
    let mut sgd = Sgd::new(
        model.named_parameters(),
        config.momentum,
        config.weight_decay,
        config.nesterov,
    );
    if let Some(checkpoint) = &checkpoint {
        sgd.set_buffers(checkpoint.load_buffers(&model.device)?);
    }
    let mut loop_state = Loop {
        config: &config,
        data: &data,
        model: &model,
        fingerprint: &fingerprint,
        train_class_counts: &train_class_counts,
        stop,
        sampler: Sampler::new(config.seed, data.train.len(), config.batch_size),
        step: state.step,
        last_checkpoint: state.step,
        elapsed_before: state.elapsed_s,
        started: Instant::now(),
        data_wait: Duration::ZERO,
    };
    if checkpoint.is_none() {
        // Step 0 is a checkpoint too: a run killed before its first one can always be resumed.
        loop_state.save_checkpoint(&sgd, &mut run_folder, false)?;
    }
    let total_steps = config.total_steps(loop_state.sampler.steps_per_epoch());
    let info = RunInfo {
        run_dir: run_dir.clone(),
        device: config.device.clone(),
        train_images: data.train.len(),
        test_images: data.test.len(),
        num_classes,
        train_class_counts: train_class_counts.clone(),
        num_transforms: model.objective.num_transforms,
        steps_per_epoch: loop_state.sampler.steps_per_epoch(),
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
    let mut progress = Progress::since_last_evaluation(&run_dir, state.step)?;
    if state.pending_evaluation {
        // Stopped during this evaluation last time: owe it before training on.
        let Some(summary) = loop_state.evaluate_and_checkpoint(
            &sgd,
            &mut run_folder,
            &mut progress,
            emit,
            total_steps,
        )?
        else {
            return Ok(loop_state.summary(progress.final_metrics, true));
        };
        if summary.steps == total_steps {
            return Ok(summary);
        }
    }
    loop_state.train(
        &mut sgd,
        &mut run_folder,
        commands,
        emit,
        total_steps,
        progress,
    )
}

/// What the loop carries between evaluations (the standard and the episodic trainer alike).
pub(crate) struct Progress {
    pub loss_sum: f64,
    pub loss_count: usize,
    pub final_metrics: Option<EvalMetrics>,
}

impl Progress {
    /// Rebuilt from the logs when resuming, so the first evaluation after a resume reports the same
    /// mean training loss as an uninterrupted run would.
    pub(crate) fn since_last_evaluation(run_dir: &Path, step: u64) -> Result<Self, TrainError> {
        let mut progress = Progress {
            loss_sum: 0.0,
            loss_count: 0,
            final_metrics: None,
        };
        if step == 0 {
            return Ok(progress);
        }
        let metrics = run::read_metrics(run_dir)?.records;
        let evaluated = metrics.last().map_or(0, |m| m.step);
        for record in run::read_steps(run_dir)?.records {
            if record.step > evaluated && record.step <= step {
                progress.loss_sum += record.loss;
                progress.loss_count += 1;
            }
        }
        progress.final_metrics = metrics.into_iter().last();
        Ok(progress)
    }
}

struct Loop<'a> {
    config: &'a TrainConfig,
    data: &'a RunData,
    model: &'a Model,
    fingerprint: &'a Fingerprint,
    /// Training images per class, counted once: every evaluation's groups and snapshot use them.
    train_class_counts: &'a [usize],
    stop: &'a AtomicBool,
    sampler: Sampler,
    step: u64,
    /// The step of the newest complete checkpoint (named in divergence errors).
    last_checkpoint: u64,
    elapsed_before: f64,
    started: Instant,
    /// What the steps of this session waited for their batches, in all.
    data_wait: Duration,
}

impl Loop<'_> {
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

    fn save_checkpoint(
        &mut self,
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
        save_after_logs(run_folder, &self.model.vars, sgd, &state, self.fingerprint)?;
        self.last_checkpoint = self.step;
        Ok(())
    }

    /// `step` counts like `steps.csv`: the first step is 1.
    fn diverged(
        &self,
        what: &'static str,
        value: f64,
        step: u64,
        run_folder: &RunDir,
    ) -> TrainError {
        TrainError::Diverged {
            what,
            value,
            step,
            checkpoint_step: self.last_checkpoint,
            run_dir: run_folder.path().to_path_buf(),
        }
    }

    /// Evaluate at the current step, record it, then checkpoint. A non-finite test loss stops the run
    /// before the checkpoint, so the newest checkpoint is from before the divergence. `None`: stopped
    /// during the evaluation, with a checkpoint that owes it.
    fn evaluate_and_checkpoint(
        &mut self,
        sgd: &Sgd,
        run_folder: &mut RunDir,
        progress: &mut Progress,
        emit: &mut dyn FnMut(TrainerEvent) -> bool,
        total_steps: u64,
    ) -> Result<Option<Summary>, TrainError> {
        let completed_epochs = self.sampler.epoch_of(self.step);
        let train_loss = progress.loss_sum / progress.loss_count.max(1) as f64;
        let Some(snapshot) = self.snapshot(completed_epochs, train_loss)? else {
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
            return Err(self.diverged("test loss", eval_loss, self.step, run_folder));
        }
        if self.config.keep_best
            && let Some(metrics) = &progress.final_metrics
        {
            // Before the checkpoint: see `best` for why this order survives a crash between them.
            best::offer(run_folder.path(), &self.model.vars, metrics)?;
        }
        self.save_checkpoint(sgd, run_folder, false)?;
        Ok(Some(self.summary(
            progress.final_metrics.clone(),
            self.step < total_steps,
        )))
    }

    #[allow(clippy::too_many_arguments)]
    fn train(
        &mut self,
        sgd: &mut Sgd,
        run_folder: &mut RunDir,
        commands: &Receiver<TrainerCommand>,
        emit: &mut dyn FnMut(TrainerEvent) -> bool,
        total_steps: u64,
        mut progress: Progress,
    ) -> Result<Summary, TrainError> {
        let config = self.config;
        let batch = config.batch_size;
        let m = self.model.objective.num_transforms;
        let mut batches = self.prefetcher(total_steps)?;
        let mut images_per_s: Option<f64> = None;
        let mut paused = false;
        while self.step < total_steps {
            let obeyed = commands::obey(commands, self.stop, &mut paused, emit, &mut || {
                self.save_checkpoint(sgd, run_folder, false)?;
                Ok(run_folder.path().to_path_buf())
            })?;
            if obeyed == commands::Obeyed::Stop {
                return Ok(self.summary(progress.final_metrics, true));
            }
            let step_started = Instant::now();
            let epoch = self.sampler.epoch_of(self.step);
            let next = batches.next_batch()?;
            self.data_wait += next.waited;
            if next.step != self.step {
                return Err(TrainError::Panicked(format!(
                    "the batch builder made the batch of step {} for step {}",
                    next.step, self.step
                )));
            }
            let loss = self.train_step(sgd, next, total_steps)?;
            if !loss.is_finite() {
                // Nothing of this step is kept: the newest checkpoint is from before it.
                return Err(self.diverged("training loss", loss, self.step + 1, run_folder));
            }
            self.step += 1;
            progress.loss_sum += loss;
            progress.loss_count += 1;
            let lr = learning_rate(config.schedule, config.lr, self.step - 1, total_steps);
            let seconds = self.elapsed();
            let rate = batch as f64 / step_started.elapsed().as_secs_f64().max(1e-9);
            let smoothed = images_per_s.map_or(rate, |previous| 0.8 * previous + 0.2 * rate);
            images_per_s = Some(smoothed);
            log::trace!("step {} loss {loss:.4}", self.step);
            let stats = StepStats {
                step: self.step,
                epoch,
                loss,
                lr,
                seconds,
                images_per_s: smoothed,
                transformed_per_s: smoothed
                    * if config.mode.expands_batches() {
                        m as f64
                    } else {
                        1.0
                    },
                accuracy: None,
            };
            run_folder.log_step(stats.record())?;
            if !emit(TrainerEvent::Step(stats)) {
                return Err(TrainError::Disconnected);
            }
            let epoch_done = self.step.is_multiple_of(self.sampler.steps_per_epoch());
            let last = self.step == total_steps;
            let completed_epochs = self.sampler.epoch_of(self.step);
            let evaluate_now =
                last || (epoch_done && completed_epochs.is_multiple_of(config.eval_every));
            if evaluate_now {
                if self
                    .evaluate_and_checkpoint(sgd, run_folder, &mut progress, emit, total_steps)?
                    .is_none()
                {
                    return Ok(self.summary(progress.final_metrics, true));
                }
            } else if epoch_done
                || (config.checkpoint_every > 0
                    && self.step.is_multiple_of(config.checkpoint_every as u64))
            {
                self.save_checkpoint(sgd, run_folder, false)?;
            }
        }
        run_folder.sync()?;
        Ok(self.summary(progress.final_metrics, false))
    }

    /// The batches of the steps from this one to `total_steps`, built one ahead of the step on
    /// their own thread: each a pure function of (seed, step), as [`Sampler`] draws it.
    fn prefetcher(&self, total_steps: u64) -> Result<Prefetcher, TrainError> {
        let plan = BatchPlan {
            dataset: self.data.train.clone(),
            augmentation: self.data.augmentation,
            normalization: self.data.normalization.clone(),
            expander: self
                .config
                .mode
                .expands_batches()
                .then(|| self.model.expander.clone()),
            device: self.model.device.clone(),
        };
        let sampler = self.sampler;
        let mut order: Option<(usize, Vec<usize>)> = None;
        let draw = move |step| {
            let epoch = sampler.epoch_of(step);
            let order = match &mut order {
                Some((e, order)) if *e == epoch => order,
                slot => &mut slot.insert((epoch, sampler.epoch_order(epoch))).1,
            };
            (sampler.batch(order, step).to_vec(), sampler.step_rng(step))
        };
        Prefetcher::spawn(plan, self.step..total_steps, draw)
            .map_err(|e| TrainError::Thread(format!("the batch builder: {e}")))
    }

    fn train_step(&self, sgd: &mut Sgd, batch: Batch, total_steps: u64) -> Result<f64, TrainError> {
        let config = self.config;
        let model = self.model;
        let Batch { inputs, labels, .. } = batch;
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

    /// Evaluate on the test (and validation) set; `None` when stopped meanwhile.
    fn snapshot(
        &self,
        epoch: usize,
        train_loss: f64,
    ) -> Result<Option<TrainingSnapshot>, TrainError> {
        let should_stop = || self.stop.load(Ordering::SeqCst);
        let Some(eval) = evaluate(
            self.model,
            &self.data.test,
            &self.data.normalization,
            self.config.batch_size,
            SNAPSHOT_SAMPLES,
            &should_stop,
        )?
        else {
            return Ok(None);
        };
        let validation_single_acc = match &self.data.validation {
            Some(validation) => {
                let Some(result) = evaluate(
                    self.model,
                    validation,
                    &self.data.normalization,
                    self.config.batch_size,
                    0,
                    &should_stop,
                )?
                else {
                    return Ok(None);
                };
                Some(result.single_acc)
            }
            None => None,
        };
        Ok(Some(snapshot_from(
            self,
            epoch,
            train_loss,
            eval,
            validation_single_acc,
        )))
    }
}

fn snapshot_from(
    state: &Loop<'_>,
    epoch: usize,
    train_loss: f64,
    eval: Evaluation,
    validation_single_acc: Option<f64>,
) -> TrainingSnapshot {
    let train_class_counts = state.train_class_counts;
    let long_tailed = run::is_long_tailed(state.config.imbalance, train_class_counts);
    let groups = GroupAccuracies::of(&eval.per_class_acc, train_class_counts, long_tailed);
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
            group_rule: groups.map(|g| g.rule),
            many_acc: groups.and_then(|g| g.many),
            medium_acc: groups.and_then(|g| g.medium),
            few_acc: groups.and_then(|g| g.few),
            per_class_acc: Some(eval.per_class_acc),
            episodes: None,
        },
        class_names: state.data.train.class_names.clone(),
        transform_names: state.model.transforms.names(),
        joint_confusion: eval.joint_confusion,
        class_confusion: eval.class_confusion,
        row_predictions: eval.row_predictions,
        samples: eval.samples,
        train_class_counts: train_class_counts.to_vec(),
        top_losses: eval.top_losses,
    }
}

/// Save a checkpoint of `state` in the run folder, the standard and the episodic trainer alike.
pub(crate) fn save_after_logs(
    run_folder: &mut RunDir,
    vars: &candle_nn::VarMap,
    sgd: &Sgd,
    state: &TrainingState,
    fingerprint: &Fingerprint,
) -> Result<(), TrainError> {
    // The logs must hold every step the checkpoint claims before the checkpoint claims it.
    run_folder.sync()?;
    checkpoint::save(run_folder.path(), vars, sgd.buffers(), state, fingerprint)?;
    Ok(())
}

/// Whether `dir` holds a run that can be resumed (one with a checkpoint).
pub fn is_resumable(dir: &Path) -> bool {
    run::is_run_folder(dir) && checkpoint::exists(dir)
}
