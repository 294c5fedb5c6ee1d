//! The run folder as a whole: `config.json`, `snapshot.json`, the confusion matrices, and the writer a
//! trainer holds (with the folder's lock) while it appends to the logs. The CLI, `sla experiment`,
//! `sla render` and the app all read a run through here.

use std::fs;
use std::path::{Path, PathBuf};

use crate::config::TrainConfig;

use super::files::{RunError, TEMPORARY_SUFFIX, io_error, write_atomically};
use super::lock::{LOCK_FILE, RunLock};
use super::logs::{self, LogWriter, StepRecord};
use super::snapshot::TrainingSnapshot;

pub const CONFIG_FILE: &str = "config.json";
pub const SNAPSHOT_FILE: &str = "snapshot.json";
pub const JOINT_CONFUSION_FILE: &str = "confusion_joint.csv";
pub const CLASS_CONFUSION_FILE: &str = "confusion_classes.csv";

/// Whether `dir` holds a run (its `config.json`).
pub fn is_run_folder(dir: &Path) -> bool {
    dir.join(CONFIG_FILE).is_file()
}

/// A run folder being written by a trainer, locked against other writers while it lives.
pub struct RunDir {
    path: PathBuf,
    logs: LogWriter,
    _lock: RunLock,
}

impl RunDir {
    /// Start a new run in `path`, which must be missing, empty, or hold nothing but a stale lock file.
    /// Anything else is refused untouched: a folder with a run is resumed, not overwritten, and a
    /// folder of other files is not ours to write into.
    pub fn create(path: &Path, config: &TrainConfig) -> Result<Self, RunError> {
        fs::create_dir_all(path).map_err(io_error(path))?;
        check_empty(path)?;
        let lock = RunLock::acquire(path)?;
        // Checked again under the lock: another process may have started a run here meanwhile.
        check_empty(path)?;
        remove_temporaries(path);
        let json = serde_json::to_vec_pretty(config)
            .map_err(|e| RunError::format(&path.join(CONFIG_FILE), e))?;
        // The config first: from the moment it exists the folder is a run that `--resume` can
        // continue (creating the logs it lacks); a start killed before it leaves only what
        // `check_empty` lets a new start reuse.
        write_atomically(&path.join(CONFIG_FILE), &json)?;
        logs::create_logs(path)?;
        Self::open(path, lock)
    }

    /// Continue the run in `path` from `step`: drop logged steps and metrics after it (they are about
    /// to be recomputed), then append. Step 0 restarts a run that never reached a checkpoint.
    /// The caller holds the folder's lock already (it read the checkpoint under it).
    pub fn resume(path: &Path, lock: RunLock, step: u64) -> Result<Self, RunError> {
        if !is_run_folder(path) {
            return Err(RunError::NotARun(path.to_path_buf()));
        }
        remove_temporaries(path);
        let has_logs =
            path.join(logs::STEPS_FILE).exists() && path.join(logs::METRICS_FILE).exists();
        if step == 0 || !has_logs {
            logs::create_logs(path)?;
        } else {
            logs::truncate_logs(path, step)?;
        }
        Self::open(path, lock)
    }

    fn open(path: &Path, lock: RunLock) -> Result<Self, RunError> {
        Ok(Self {
            path: path.to_path_buf(),
            logs: LogWriter::open(path)?,
            _lock: lock,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn log_step(&mut self, record: StepRecord) -> Result<(), RunError> {
        self.logs.log_step(record)
    }

    /// Record an evaluation: one line of metrics, the latest snapshot and the confusion matrices.
    pub fn record_evaluation(&mut self, snapshot: &TrainingSnapshot) -> Result<(), RunError> {
        self.logs.log_metrics(&snapshot.metrics)?;
        let snapshot_path = self.path.join(SNAPSHOT_FILE);
        let json = serde_json::to_vec(snapshot).map_err(|e| RunError::format(&snapshot_path, e))?;
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

    /// Flush the logs to disk; a checkpoint calls this before it names a step complete.
    pub fn sync(&mut self) -> Result<(), RunError> {
        self.logs.sync()
    }
}

/// Delete temporary files a killed writer left behind (only the lock holder calls this, so none of
/// them is being written). A failure costs disk space, not correctness: logged only.
fn remove_temporaries(path: &Path) {
    let Ok(entries) = fs::read_dir(path) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        if entry
            .file_name()
            .to_string_lossy()
            .ends_with(TEMPORARY_SUFFIX)
            && let Err(error) = fs::remove_file(entry.path())
        {
            log::warn!("could not remove {}: {error}", entry.path().display());
        }
    }
}

/// What a start killed before its config landed leaves: the lock and the config's temporary.
fn is_left_by_a_killed_start(name: &str) -> bool {
    name == LOCK_FILE
        || (name.starts_with(&format!("{CONFIG_FILE}.")) && name.ends_with(TEMPORARY_SUFFIX))
}

/// Refuse a folder holding anything but what a killed start of ours leaves.
fn check_empty(path: &Path) -> Result<(), RunError> {
    if is_run_folder(path) {
        return Err(RunError::refused(
            path,
            "already holds a run: continue it with --resume, or choose another folder",
        ));
    }
    let others: Vec<String> = fs::read_dir(path)
        .map_err(io_error(path))?
        .filter_map(Result::ok)
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| !is_left_by_a_killed_start(name))
        .collect();
    if let Some(first) = others.first() {
        return Err(RunError::refused(
            path,
            format!(
                "is not empty ({} entries, e.g. {first}) and holds no run: choose a new or empty folder; nothing in it was changed",
                others.len()
            ),
        ));
    }
    Ok(())
}

fn matrix_csv(counts: &[u32], side: usize) -> String {
    counts
        .chunks(side.max(1))
        .map(|row| row.iter().map(u32::to_string).collect::<Vec<_>>().join(","))
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// The configuration a run was started with. Unknown keys are refused (a misspelt key must not
/// silently become a default), and so are settings that make no sense.
pub fn read_config(run: &Path) -> Result<TrainConfig, RunError> {
    let path = run.join(CONFIG_FILE);
    if !path.exists() {
        return Err(RunError::NotARun(run.to_path_buf()));
    }
    let bytes = fs::read(&path).map_err(io_error(&path))?;
    parse_config(&path, &bytes)
}

/// `config.json`'s bytes to a validated config (public for the fuzzer and tests).
pub fn parse_config(path: &Path, bytes: &[u8]) -> Result<TrainConfig, RunError> {
    let config: TrainConfig =
        serde_json::from_slice(bytes).map_err(|e| RunError::format(path, e))?;
    config.validate().map_err(|e| RunError::format(path, e))?;
    Ok(config)
}

/// The latest snapshot of a run, checked for consistency before any view indexes into it.
pub fn read_snapshot(run: &Path) -> Result<TrainingSnapshot, RunError> {
    let path = run.join(SNAPSHOT_FILE);
    let bytes = fs::read(&path).map_err(io_error(&path))?;
    parse_snapshot(&path, &bytes)
}

/// `snapshot.json`'s bytes to a checked snapshot (public for the fuzzer and tests).
pub fn parse_snapshot(path: &Path, bytes: &[u8]) -> Result<TrainingSnapshot, RunError> {
    let snapshot: TrainingSnapshot =
        serde_json::from_slice(bytes).map_err(|e| RunError::format(path, e))?;
    snapshot.validate().map_err(|e| RunError::format(path, e))?;
    Ok(snapshot)
}
