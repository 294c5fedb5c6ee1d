//! The tables of a folder of few-shot runs: for each meta-learner and episode shape, the mean
//! test-episode accuracy of every mode over seeds, and every run with its own 95 % interval.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::{Path, PathBuf};

use crate::config::TrainConfig;
use crate::run::{EvalMetrics, RunError, Spread, is_run_folder, read_config, read_metrics};
use crate::sla::Mode;

use super::objective::FEWSHOT_MODES;

/// One finished few-shot run: its config and its last evaluation.
#[derive(Clone, Debug)]
pub struct FewShotRun {
    pub name: String,
    pub config: TrainConfig,
    pub metrics: EvalMetrics,
}

/// The few-shot runs in `dir` (its subfolders, by name), and a line for each folder that was
/// skipped with the reason: a standard run, or one with no evaluation yet.
pub fn read_runs(dir: &Path) -> Result<(Vec<FewShotRun>, Vec<String>), RunError> {
    let mut folders: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| RunError::io(dir, e))?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| is_run_folder(path))
        .collect();
    folders.sort();
    let (mut runs, mut skipped) = (Vec::new(), Vec::new());
    for folder in folders {
        let name = folder
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        let config = read_config(&folder)?;
        if config.fewshot.is_none() {
            skipped.push(format!("{name}: not a few-shot run"));
            continue;
        }
        let Some(metrics) = read_metrics(&folder)?.records.pop() else {
            skipped.push(format!("{name}: no evaluation yet"));
            continue;
        };
        runs.push(FewShotRun {
            name,
            config,
            metrics,
        });
    }
    Ok((runs, skipped))
}

/// What a row of the summary gathers: a meta-learner, backbone and episode shape.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct RowKey {
    method: &'static str,
    backbone: &'static str,
    ways: usize,
    shots: usize,
    training_episodes: u64,
}

fn row_key(run: &FewShotRun) -> Option<RowKey> {
    let fewshot = run.config.fewshot.as_ref()?;
    Some(RowKey {
        method: fewshot.method.name(),
        backbone: run.config.model.name(),
        ways: fewshot.test_ways,
        shots: fewshot.test_shots,
        training_episodes: fewshot.episodes,
    })
}

fn percent_ci(mean: f64, ci: Option<f64>) -> String {
    match ci {
        Some(ci) => format!("{:.2} ± {:.2}", 100.0 * mean, 100.0 * ci),
        None => format!("{:.2}", 100.0 * mean),
    }
}

/// The Markdown tables, headed by the command that made them.
pub fn results_markdown(runs: &[FewShotRun], command: &str) -> String {
    let mut rows: BTreeMap<RowKey, Vec<&FewShotRun>> = BTreeMap::new();
    for run in runs {
        if let Some(key) = row_key(run) {
            rows.entry(key).or_default().push(run);
        }
    }
    let modes: Vec<Mode> = FEWSHOT_MODES
        .into_iter()
        .filter(|mode| runs.iter().any(|run| run.config.mode == *mode))
        .collect();
    let mut text = format!(
        "Made by `{command}`. Test accuracy (%) on episodes of the novel classes: the mean over \
         seeds of each run's mean episode accuracy ± the standard deviation over seeds (n = \
         seeds). SI: the untransformed query; AG: the M views aggregated.\n\n"
    );
    let mut header = "| method | backbone | episode | training episodes |".to_string();
    let mut rule = "|---|---|---|---|".to_string();
    for mode in &modes {
        header += &format!(" {} SI |", mode.name());
        rule += "---|";
        if mode.expands_batches() {
            header += &format!(" {} AG |", mode.name());
            rule += "---|";
        }
    }
    header += " seeds |";
    rule += "---|";
    let _ = writeln!(text, "{header}\n{rule}");
    for (key, group) in &rows {
        let mut line = format!(
            "| {} | {} | {}-way {}-shot | {} |",
            key.method, key.backbone, key.ways, key.shots, key.training_episodes
        );
        let mut seeds = 0;
        for mode in &modes {
            let of_mode: Vec<&&FewShotRun> = group
                .iter()
                .filter(|run| run.config.mode == *mode)
                .collect();
            seeds = seeds.max(of_mode.len());
            let single: Vec<f64> = of_mode.iter().map(|run| run.metrics.single_acc).collect();
            line += &format!(" {} |", Spread::cell(Spread::of(&single), true));
            if mode.expands_batches() {
                let aggregated: Vec<f64> = of_mode
                    .iter()
                    .filter_map(|run| run.metrics.agg_acc)
                    .collect();
                line += &format!(" {} |", Spread::cell(Spread::of(&aggregated), true));
            }
        }
        let _ = writeln!(text, "{line} {seeds} |");
    }
    let _ = writeln!(
        text,
        "\nEvery run, with the 95 % confidence interval of its mean over test episodes \
         (1.96·σ/√episodes), and its time from the first episode to the end of its last evaluation:\n\n| run | mode | seed | test episodes | SI | AG | time (s) |\n|---|---|---|---|---|---|---|"
    );
    for run in runs {
        let episodes = run.metrics.episodes;
        let _ = writeln!(
            text,
            "| {} | {} | {} | {} | {} | {} | {:.0} |",
            run.name,
            run.config.mode.name(),
            run.config.seed,
            episodes.map_or(0, |e| e.episodes),
            percent_ci(run.metrics.single_acc, episodes.map(|e| e.single_ci95)),
            run.metrics.agg_acc.map_or("–".to_string(), |agg| {
                percent_ci(agg, episodes.and_then(|e| e.agg_ci95))
            }),
            run.metrics.elapsed_s
        );
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fewshot::{FewShotConfig, Method};
    use crate::run::EpisodeStats;

    fn run(name: &str, mode: Mode, seed: u64, single: f64, agg: Option<f64>) -> FewShotRun {
        FewShotRun {
            name: name.into(),
            config: TrainConfig {
                mode,
                seed,
                model: crate::model::ModelKind::Conv4,
                fewshot: Some(FewShotConfig {
                    method: Method::Ridge,
                    test_shots: 1,
                    episodes: 500,
                    ..FewShotConfig::default()
                }),
                ..TrainConfig::default()
            },
            metrics: EvalMetrics {
                step: 500,
                single_acc: single,
                agg_acc: agg,
                elapsed_s: 12.3,
                episodes: Some(EpisodeStats {
                    episodes: 1000,
                    ways: 5,
                    shots: 1,
                    queries: 15,
                    single_ci95: 0.006,
                    agg_ci95: agg.map(|_| 0.005),
                }),
                ..EvalMetrics::default()
            },
        }
    }

    #[test]
    fn the_summary_averages_seeds_and_every_run_keeps_its_interval() {
        let runs = [
            run("a", Mode::Baseline, 0, 0.40, None),
            run("b", Mode::Baseline, 1, 0.42, None),
            run("c", Mode::Sla, 0, 0.45, Some(0.50)),
            run("d", Mode::Sla, 1, 0.47, Some(0.52)),
        ];
        let text = results_markdown(&runs, "sla fewshot table X");
        assert!(
            text.contains(
                "| method | backbone | episode | training episodes | baseline SI | sla SI | sla AG | seeds |"
            ),
            "{text}"
        );
        // Means 41 / 46 / 51 with the sample deviation of two values 1 point apart: 1.41.
        assert!(
            text.contains("| ridge | conv4 | 5-way 1-shot | 500 | 41.00 ± 1.41 | 46.00 ± 1.41 | 51.00 ± 1.41 | 2 |"),
            "{text}"
        );
        assert!(
            text.contains("| c | sla | 0 | 1000 | 45.00 ± 0.60 | 50.00 ± 0.50 | 12 |"),
            "{text}"
        );
        assert!(text.contains("| a | baseline | 0 | 1000 | 40.00 ± 0.60 | – | 12 |"));
    }
}
