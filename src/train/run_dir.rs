//! The run folder: `config.json`, `metrics.jsonl`, `steps.csv`, `snapshot.json`, confusion matrices
//! and the checkpoint. The CLI and the GUI write the same folder; `sla eval` and `sla render` read it.

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::config::TrainConfig;

use super::snapshot::{EvalMetrics, TrainingSnapshot};

pub const CONFIG_FILE: &str = "config.json";
pub const METRICS_FILE: &str = "metrics.jsonl";
pub const STEPS_FILE: &str = "steps.csv";
pub const SNAPSHOT_FILE: &str = "snapshot.json";
pub const JOINT_CONFUSION_FILE: &str = "confusion_joint.csv";
pub const CLASS_CONFUSION_FILE: &str = "confusion_classes.csv";
const STEPS_HEADER: &str = "step,epoch,loss,lr";

#[derive(Debug, thiserror::Error)]
pub enum RunDirError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{0} is not a run folder: it has no config.json")]
    NotARun(PathBuf),
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> RunDirError + '_ {
    move |source| RunDirError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Write `bytes` to `path` through a temporary file and a rename, so readers never see half a file.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), RunDirError> {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, bytes).map_err(io_error(&tmp))?;
    fs::rename(&tmp, path).map_err(io_error(path))
}

/// A run folder being written by a trainer.
pub struct RunDir {
    path: PathBuf,
    steps: BufWriter<File>,
}

impl RunDir {
    /// Start a new run in `path` (created if missing). A folder that already holds a run is refused,
    /// so nothing is overwritten by accident.
    pub fn create(path: &Path, config: &TrainConfig) -> Result<Self, RunDirError> {
        fs::create_dir_all(path).map_err(io_error(path))?;
        let config_path = path.join(CONFIG_FILE);
        if config_path.exists() {
            return Err(RunDirError::Io {
                path: path.to_path_buf(),
                source: std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    "already holds a run: resume it with --resume or choose another --out",
                ),
            });
        }
        let json = serde_json::to_vec_pretty(config).map_err(|source| RunDirError::Json {
            path: config_path.clone(),
            source,
        })?;
        write_atomically(&config_path, &json)?;
        let steps_path = path.join(STEPS_FILE);
        fs::write(&steps_path, format!("{STEPS_HEADER}\n")).map_err(io_error(&steps_path))?;
        let metrics_path = path.join(METRICS_FILE);
        File::create(&metrics_path).map_err(io_error(&metrics_path))?;
        Self::open_for_append(path)
    }

    /// Continue a run from `step`: drop logged steps and metrics at or after it (they are about to be
    /// recomputed), then append.
    pub fn resume(path: &Path, step: u64) -> Result<Self, RunDirError> {
        let steps_path = path.join(STEPS_FILE);
        let kept: Vec<String> = read_lines(&steps_path)?
            .into_iter()
            .filter(|line| {
                line.split(',')
                    .next()
                    .and_then(|s| s.parse::<u64>().ok())
                    .is_none_or(|s| s <= step)
            })
            .collect();
        write_atomically(&steps_path, (kept.join("\n") + "\n").as_bytes())?;
        let metrics = read_metrics(path)?
            .into_iter()
            .filter(|m| m.step <= step)
            .map(|m| serde_json::to_string(&m).unwrap_or_default())
            .collect::<Vec<_>>();
        let metrics_path = path.join(METRICS_FILE);
        let mut text = metrics.join("\n");
        if !text.is_empty() {
            text.push('\n');
        }
        write_atomically(&metrics_path, text.as_bytes())?;
        Self::open_for_append(path)
    }

    fn open_for_append(path: &Path) -> Result<Self, RunDirError> {
        let steps_path = path.join(STEPS_FILE);
        let file = OpenOptions::new()
            .append(true)
            .open(&steps_path)
            .map_err(io_error(&steps_path))?;
        Ok(Self {
            path: path.to_path_buf(),
            steps: BufWriter::new(file),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Log one step (`step` counts steps done, 1 after the first).
    pub fn log_step(
        &mut self,
        step: u64,
        epoch: usize,
        loss: f64,
        lr: f64,
    ) -> Result<(), RunDirError> {
        let path = self.path.join(STEPS_FILE);
        writeln!(self.steps, "{step},{epoch},{loss},{lr}").map_err(io_error(&path))
    }

    /// Record an evaluation: one line of metrics, the latest snapshot and the confusion matrices.
    pub fn record_evaluation(&mut self, snapshot: &TrainingSnapshot) -> Result<(), RunDirError> {
        let steps_path = self.path.join(STEPS_FILE);
        self.steps.flush().map_err(io_error(&steps_path))?;
        let metrics_path = self.path.join(METRICS_FILE);
        let line =
            serde_json::to_string(&snapshot.metrics).map_err(|source| RunDirError::Json {
                path: metrics_path.clone(),
                source,
            })?;
        let mut file = OpenOptions::new()
            .append(true)
            .open(&metrics_path)
            .map_err(io_error(&metrics_path))?;
        writeln!(file, "{line}").map_err(io_error(&metrics_path))?;
        let snapshot_path = self.path.join(SNAPSHOT_FILE);
        let json = serde_json::to_vec(snapshot).map_err(|source| RunDirError::Json {
            path: snapshot_path.clone(),
            source,
        })?;
        write_atomically(&snapshot_path, &json)?;
        let k = snapshot.num_classes() * snapshot.num_transforms();
        if !snapshot.joint_confusion.is_empty() {
            write_atomically(
                &self.path.join(JOINT_CONFUSION_FILE),
                matrix_csv(&snapshot.joint_confusion, k).as_bytes(),
            )?;
        }
        write_atomically(
            &self.path.join(CLASS_CONFUSION_FILE),
            matrix_csv(&snapshot.class_confusion, snapshot.num_classes()).as_bytes(),
        )
    }

    pub fn flush(&mut self) -> Result<(), RunDirError> {
        let path = self.path.join(STEPS_FILE);
        self.steps.flush().map_err(io_error(&path))
    }
}

fn matrix_csv(counts: &[u32], side: usize) -> String {
    counts
        .chunks(side.max(1))
        .map(|row| row.iter().map(u32::to_string).collect::<Vec<_>>().join(","))
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

fn read_lines(path: &Path) -> Result<Vec<String>, RunDirError> {
    let file = File::open(path).map_err(io_error(path))?;
    BufReader::new(file)
        .lines()
        .collect::<Result<Vec<_>, _>>()
        .map_err(io_error(path))
}

/// The configuration a run was started with.
pub fn read_config(run: &Path) -> Result<TrainConfig, RunDirError> {
    let path = run.join(CONFIG_FILE);
    if !path.exists() {
        return Err(RunDirError::NotARun(run.to_path_buf()));
    }
    let bytes = fs::read(&path).map_err(io_error(&path))?;
    serde_json::from_slice(&bytes).map_err(|source| RunDirError::Json { path, source })
}

/// Every evaluation of a run, in order.
pub fn read_metrics(run: &Path) -> Result<Vec<EvalMetrics>, RunDirError> {
    let path = run.join(METRICS_FILE);
    read_lines(&path)?
        .iter()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            serde_json::from_str(line).map_err(|source| RunDirError::Json {
                path: path.clone(),
                source,
            })
        })
        .collect()
}

/// The latest snapshot of a run.
pub fn read_snapshot(run: &Path) -> Result<TrainingSnapshot, RunDirError> {
    let path = run.join(SNAPSHOT_FILE);
    let bytes = fs::read(&path).map_err(io_error(&path))?;
    serde_json::from_slice(&bytes).map_err(|source| RunDirError::Json { path, source })
}
