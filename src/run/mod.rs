//! The run folder: the one owner of every file a run writes except the checkpoint's (which
//! `train::checkpoint` owns). `config.json`, `metrics.jsonl`, `steps.csv`, `snapshot.json`, the
//! confusion matrices and the folder's lock are written and read here, by the trainer, the CLI,
//! `sla experiment`, `sla render` and the app alike, as are the history they hold (`RunHistory`)
//! and the charts drawn from it.
//!
//! Writes are crash-safe: whole files go through a synced temporary and a rename, log records are
//! single appends whose torn tail readers skip and report, and a lock keeps a second process out.

mod charts;
mod class_metrics;
mod files;
mod float;
mod folder;
mod history;
mod lock;
mod logs;
mod snapshot;
mod spread;

pub use charts::{Chart, ChartKind, ChartSeries, ComparedSeries, overlay};
pub use class_metrics::{
    ByInference, Group, GroupAccuracies, GroupRule, PerClassAcc, class_groups, is_long_tailed,
};
pub use files::{RunError, sync_dir, sync_file, write_atomically};
pub use folder::{
    CLASS_CONFUSION_FILE, CONFIG_FILE, JOINT_CONFUSION_FILE, RunDir, SNAPSHOT_FILE, is_run_folder,
    parse_config, parse_snapshot, read_config, read_snapshot,
};
pub use history::{LoadedHistory, RunHistory};
pub use lock::{LOCK_FILE, RunLock};
pub use logs::{
    Log, METRICS_FILE, STEPS_FILE, StepRecord, TornTail, parse_metrics, parse_steps, read_metrics,
    read_steps,
};
pub use snapshot::{EpisodeStats, EvalMetrics, ImageLoss, SampleGrid, TrainingSnapshot};
pub use spread::Spread;
