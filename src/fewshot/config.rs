//! `FewShotConfig`: the settings of the few-shot setting, kept inside `TrainConfig` (as its
//! `fewshot` entry) so a few-shot run folder has the same config file, checkpoints and resume as
//! any other run.

use serde::{Deserialize, Serialize};

use crate::config::ConfigError;
use crate::sla::Mode;

use super::classes::ClassSplit;
use super::episode::EpisodeShape;
use super::objective::{FEWSHOT_MODES, Method};
use super::ridge::DEFAULT_LAMBDA;

/// Upper bounds far beyond real use, so that a typo is an error at once.
pub const MAX_WAYS: usize = 1_000;
pub const MAX_SHOTS: usize = 1_000;
pub const MAX_EPISODES: u64 = 100_000_000;

/// Episodic training and evaluation. One training step is one episode.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FewShotConfig {
    pub method: Method,
    /// Which classes are base (training), validation and novel (test).
    pub classes: ClassSplit,
    /// Training episodes: ways, shots and queries per way.
    pub ways: usize,
    pub shots: usize,
    pub queries: usize,
    /// Test episodes (drawn from the novel classes).
    pub test_ways: usize,
    pub test_shots: usize,
    pub test_queries: usize,
    /// Training episodes of the whole run.
    pub episodes: u64,
    /// Evaluate every this many training episodes (and after the last).
    pub eval_every: u64,
    /// Test episodes per evaluation during training (`sla fewshot eval` takes its own count).
    pub eval_episodes: usize,
    /// The ridge head's regulariser λ (MetaOptNet's R2-D2 value by default).
    pub lambda: f64,
}

impl Default for FewShotConfig {
    fn default() -> Self {
        Self {
            method: Method::Protonet,
            classes: ClassSplit::Usual,
            ways: 5,
            shots: 5,
            queries: 15,
            test_ways: 5,
            test_shots: 5,
            test_queries: 15,
            episodes: 2_000,
            eval_every: 500,
            eval_episodes: 200,
            lambda: DEFAULT_LAMBDA,
        }
    }
}

fn invalid(field: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        field,
        reason: reason.into(),
    }
}

impl FewShotConfig {
    pub fn train_shape(&self) -> EpisodeShape {
        EpisodeShape {
            ways: self.ways,
            shots: self.shots,
            queries: self.queries,
        }
    }

    pub fn test_shape(&self) -> EpisodeShape {
        EpisodeShape {
            ways: self.test_ways,
            shots: self.test_shots,
            queries: self.test_queries,
        }
    }

    /// Check every setting that can be checked without the data, for a run of `mode`.
    pub fn validate(&self, mode: Mode) -> Result<(), ConfigError> {
        if !FEWSHOT_MODES.contains(&mode) {
            return Err(invalid(
                "mode",
                format!(
                    "the few-shot setting trains baseline, da or sla, not {}",
                    mode.name()
                ),
            ));
        }
        for (field, ways) in [("ways", self.ways), ("test ways", self.test_ways)] {
            if !(2..=MAX_WAYS).contains(&ways) {
                return Err(invalid(
                    field,
                    format!("must be between 2 and {MAX_WAYS}, got {ways}"),
                ));
            }
        }
        for (field, count) in [
            ("shots", self.shots),
            ("queries", self.queries),
            ("test shots", self.test_shots),
            ("test queries", self.test_queries),
        ] {
            if !(1..=MAX_SHOTS).contains(&count) {
                return Err(invalid(
                    field,
                    format!("must be between 1 and {MAX_SHOTS}, got {count}"),
                ));
            }
        }
        if !(1..=MAX_EPISODES).contains(&self.episodes) {
            return Err(invalid(
                "episodes",
                format!(
                    "must be between 1 and {MAX_EPISODES}, got {}",
                    self.episodes
                ),
            ));
        }
        if !(1..=MAX_EPISODES).contains(&self.eval_every) {
            return Err(invalid(
                "eval every",
                format!(
                    "must be between 1 and {MAX_EPISODES} episodes, got {}",
                    self.eval_every
                ),
            ));
        }
        if !(1..=MAX_EPISODES as usize).contains(&self.eval_episodes) {
            return Err(invalid(
                "eval episodes",
                format!(
                    "must be between 1 and {MAX_EPISODES}, got {}",
                    self.eval_episodes
                ),
            ));
        }
        if !(self.lambda.is_finite() && self.lambda > 0.0) {
            return Err(invalid(
                "lambda",
                format!(
                    "the ridge regulariser must be positive, got {}",
                    self.lambda
                ),
            ));
        }
        Ok(())
    }
}
