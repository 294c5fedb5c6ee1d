//! Experiments: several arms (modes) × seeds (× imbalance ratios) trained one after another on the
//! same settings, resumable, then summarised as tables and figures. Used by `sla experiment` and
//! by the app's experiment queue.

mod paired;
mod plan;
mod results;

pub use paired::PairedDifference;
pub use plan::{Arm, ExperimentPlan, PlannedRun, RunPlan, parse_arm, run_name};
pub use results::{
    BestResult, Comparison, GroupResult, ModeResult, RESULTS_JSON, RESULTS_MARKDOWN, Results,
    per_class_lines, results_markdown, write_results,
};
