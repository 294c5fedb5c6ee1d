//! A run's history: every step's loss, learning rate and time, every evaluation and the latest
//! snapshot. Read from a run folder (`sla render`, an opened run, a resumed one) or grown step by
//! step while the run trains (the app), so both show the same thing.

use std::path::Path;
use std::sync::Arc;

use super::files::RunError;
use super::folder::read_snapshot;
use super::logs::{StepRecord, TornTail, read_metrics, read_steps};
use super::snapshot::{EvalMetrics, TrainingSnapshot};

/// What a run has recorded so far.
#[derive(Clone, Debug, Default)]
pub struct RunHistory {
    /// (step, loss) of every step.
    pub losses: Vec<(f32, f32)>,
    /// (step, learning rate) of every step.
    pub learning_rates: Vec<(f32, f32)>,
    /// (step, wall-clock seconds since the run began) of every step whose time is known.
    pub seconds: Vec<(f32, f64)>,
    /// (step, query accuracy) of every few-shot training episode.
    pub episode_accuracies: Vec<(f32, f32)>,
    pub metrics: Vec<EvalMetrics>,
    pub snapshot: Option<Arc<TrainingSnapshot>>,
}

/// A history read from a folder, with what could not be read: a torn final log line is skipped
/// and reported; a file that is corrupt leaves its part empty and is reported. A file that does not
/// exist yet (a run that has not evaluated) is neither.
#[derive(Debug, Default)]
pub struct LoadedHistory {
    pub history: RunHistory,
    pub torn_tails: Vec<TornTail>,
    pub errors: Vec<RunError>,
}

impl LoadedHistory {
    /// Every problem, for a user: the errors, then the skipped lines.
    pub fn problems(&self) -> Vec<String> {
        let errors = self.errors.iter().map(ToString::to_string);
        errors
            .chain(self.torn_tails.iter().map(ToString::to_string))
            .collect()
    }
}

impl RunHistory {
    /// The history of the run in `run`, up to and including `up_to_step` (a resumed run's logs
    /// may run past its checkpoint; those steps will be trained again).
    pub fn read(run: &Path, up_to_step: u64) -> LoadedHistory {
        let mut loaded = Self::read_logs(run, up_to_step);
        match read_snapshot(run) {
            Ok(snapshot) => loaded.history.snapshot = Some(Arc::new(snapshot)),
            Err(error) if error.is_not_found() => {}
            Err(error) => loaded.errors.push(error),
        }
        loaded
    }

    /// The curves only, `metrics.jsonl` and `steps.csv`, without the snapshot (for a reader that
    /// has read it already).
    pub fn read_logs(run: &Path, up_to_step: u64) -> LoadedHistory {
        let mut loaded = LoadedHistory::default();
        let note = |loaded: &mut LoadedHistory, error: RunError| {
            if !error.is_not_found() {
                loaded.errors.push(error);
            }
        };
        match read_metrics(run) {
            Ok(log) => {
                loaded.torn_tails.extend(log.torn_tail);
                loaded.history.metrics = log
                    .records
                    .into_iter()
                    .filter(|m| m.step <= up_to_step)
                    .collect();
            }
            Err(error) => note(&mut loaded, error),
        }
        match read_steps(run) {
            Ok(log) => {
                loaded.torn_tails.extend(log.torn_tail);
                for record in log.records.iter().filter(|r| r.step <= up_to_step) {
                    loaded.history.push_step(record);
                }
            }
            Err(error) => note(&mut loaded, error),
        }
        loaded
    }

    /// Steps per epoch, from an evaluation that fell on an epoch's end (a run opened from its
    /// folder does not say it otherwise).
    pub fn steps_per_epoch(&self) -> Option<u64> {
        self.metrics
            .iter()
            .find(|m| m.epoch > 0 && m.step % m.epoch as u64 == 0)
            .map(|m| m.step / m.epoch as u64)
            .filter(|&s| s > 0)
    }

    /// One more training step.
    pub fn push_step(&mut self, record: &StepRecord) {
        let step = record.step as f32;
        self.losses.push((step, record.loss as f32));
        self.learning_rates.push((step, record.lr as f32));
        if let Some(seconds) = record.seconds {
            self.seconds.push((step, seconds));
        }
        if let Some(accuracy) = record.accuracy {
            self.episode_accuracies.push((step, accuracy as f32));
        }
    }

    /// One more evaluation, with the snapshot it came with.
    pub fn push_evaluation(&mut self, snapshot: Arc<TrainingSnapshot>) {
        self.metrics.push(snapshot.metrics.clone());
        self.snapshot = Some(snapshot);
    }
}
