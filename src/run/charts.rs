//! The charts of a run, defined once: which series, in which order, named and coloured how. The
//! app's watch panel and `sla render` both draw `RunHistory::charts`, so a figure in the docs shows
//! what the window shows.

use super::history::RunHistory;
use super::snapshot::EvalMetrics;
use crate::gpu::style::category_colour;

/// Alpha of the per-view accuracy lines: context for the headline lines, drawn under them.
const VIEW_ALPHA: u8 = 120;

/// Alpha of the confidence-interval bands of few-shot accuracies: the headline line must stay
/// readable inside its band.
const BAND_ALPHA: u8 = 60;

/// What a chart plots; its title and how a viewer scales it follow from this.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChartKind {
    Loss,
    Accuracy,
    LearningRate,
}

impl ChartKind {
    pub fn title(self) -> &'static str {
        match self {
            ChartKind::Loss => "loss",
            ChartKind::Accuracy => "test accuracy",
            ChartKind::LearningRate => "learning rate",
        }
    }

    /// Losses span decades; accuracies and the schedule read best on a linear axis.
    pub fn log_y_by_default(self) -> bool {
        self == ChartKind::Loss
    }
}

/// One line of a chart. Its x is the step as built; a viewer may map it to its own unit (epoch,
/// seconds).
#[derive(Clone, Debug, PartialEq)]
pub struct ChartSeries {
    pub name: String,
    pub xs: Vec<f32>,
    pub ys: Vec<f32>,
    pub colour: [u8; 4],
    /// Whether smoothing applies (per-step losses, not evaluation points).
    pub smooth: bool,
    /// A band instead of a line: filled from these values up to `ys`.
    pub low: Option<Vec<f32>>,
}

impl ChartSeries {
    /// The line as the curve renderer draws it, in the app and in the headless figures alike.
    pub fn as_series(&self) -> crate::gpu::Series<'_> {
        crate::gpu::Series {
            ys: &self.ys,
            xs: Some(&self.xs),
            colour: self.colour,
            smooth: self.smooth,
            low: self.low.as_deref(),
        }
    }
}

/// One chart's lines.
#[derive(Clone, Debug, PartialEq)]
pub struct Chart {
    pub kind: ChartKind,
    pub series: Vec<ChartSeries>,
}

/// Picks one value out of an evaluation.
type Pick<'a> = &'a dyn Fn(&EvalMetrics) -> Option<f64>;

impl RunHistory {
    /// The loss, accuracy and learning-rate charts, with one accuracy line per view named after
    /// `transform_names`. An accuracy the run never measured has no line.
    pub fn charts(&self, transform_names: &[String]) -> Vec<Chart> {
        let metrics = &self.metrics;
        let eval_steps: Vec<f32> = metrics.iter().map(|m| m.step as f32).collect();
        let eval = |pick: Pick<'_>| -> Vec<f32> {
            metrics
                .iter()
                .map(|m| pick(m).map_or(f32::NAN, |v| v as f32))
                .collect()
        };
        let per_step = |values: &[(f32, f32)], name: &str, colour, smooth| ChartSeries {
            name: name.into(),
            xs: values.iter().map(|v| v.0).collect(),
            ys: values.iter().map(|v| v.1).collect(),
            colour,
            smooth,
            low: None,
        };
        let loss = Chart {
            kind: ChartKind::Loss,
            series: vec![
                per_step(&self.losses, "train loss", category_colour(0), true),
                ChartSeries {
                    name: "test loss".into(),
                    xs: eval_steps.clone(),
                    ys: eval(&|m| Some(m.eval_loss)),
                    colour: category_colour(1),
                    smooth: false,
                    low: None,
                },
            ],
        };
        let headline: [(&str, Pick<'_>); 5] = [
            ("single", &|m| Some(m.single_acc)),
            ("aggregated", &|m| m.agg_acc),
            ("self-distilled", &|m| m.sd_acc),
            ("joint", &|m| m.joint_acc),
            ("validation single", &|m| m.validation_single_acc),
        ];
        let mut accuracy = Chart {
            kind: ChartKind::Accuracy,
            series: Vec::new(),
        };
        for (index, (name, pick)) in headline.into_iter().enumerate() {
            if metrics.iter().any(|m| pick(m).is_some()) {
                accuracy.series.push(ChartSeries {
                    name: name.into(),
                    xs: eval_steps.clone(),
                    ys: eval(pick),
                    colour: category_colour(index),
                    smooth: false,
                    low: None,
                });
            }
        }
        // Few-shot runs: each training episode's query accuracy, smoothed like the loss; a
        // colour after the five headline ones.
        if !self.episode_accuracies.is_empty() {
            accuracy.series.push(per_step(
                &self.episode_accuracies,
                "training episodes",
                category_colour(5),
                true,
            ));
        }
        // Few-shot accuracies are means over test episodes: their 95 % intervals are faint bands
        // in the headline's colour.
        let intervals: [(&str, usize, Pick<'_>, Pick<'_>); 2] = [
            ("single", 0, &|m| Some(m.single_acc), &|m| {
                m.episodes.map(|e| e.single_ci95)
            }),
            ("aggregated", 1, &|m| m.agg_acc, &|m| {
                m.episodes.and_then(|e| e.agg_ci95)
            }),
        ];
        for (name, index, mean, half_width) in intervals {
            if !metrics.iter().any(|m| half_width(m).is_some()) {
                continue;
            }
            let [r, g, b, _] = category_colour(index);
            accuracy.series.push(ChartSeries {
                name: format!("{name} 95% CI"),
                xs: eval_steps.clone(),
                ys: eval(&|m| Some(mean(m)? + half_width(m)?)),
                colour: [r, g, b, BAND_ALPHA],
                smooth: false,
                low: Some(eval(&|m| Some(mean(m)? - half_width(m)?))),
            });
        }
        let views = metrics
            .iter()
            .map(|m| m.per_transform_acc.len())
            .max()
            .unwrap_or(0);
        for j in 0..views {
            let name = transform_names
                .get(j)
                .map_or_else(|| format!("view {j}"), |name| format!("view {name}"));
            let [r, g, b, _] = category_colour(j);
            accuracy.series.push(ChartSeries {
                name,
                xs: eval_steps.clone(),
                ys: eval(&|m| m.per_transform_acc.get(j).copied()),
                colour: [r, g, b, VIEW_ALPHA],
                smooth: false,
                low: None,
            });
        }
        let learning_rate = Chart {
            kind: ChartKind::LearningRate,
            series: vec![per_step(
                &self.learning_rates,
                "learning rate",
                category_colour(2),
                false,
            )],
        };
        vec![loss, accuracy, learning_rate]
    }
}

/// A line the comparison view overlays, one per run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ComparedSeries {
    #[default]
    TrainLoss,
    TestLoss,
    Single,
    Aggregated,
    SelfDistilled,
}

impl ComparedSeries {
    pub const ALL: [ComparedSeries; 5] = [
        ComparedSeries::TrainLoss,
        ComparedSeries::TestLoss,
        ComparedSeries::Single,
        ComparedSeries::Aggregated,
        ComparedSeries::SelfDistilled,
    ];

    /// The name of the series in a run's own charts (`RunHistory::charts`).
    pub fn name(self) -> &'static str {
        match self {
            ComparedSeries::TrainLoss => "train loss",
            ComparedSeries::TestLoss => "test loss",
            ComparedSeries::Single => "single",
            ComparedSeries::Aggregated => "aggregated",
            ComparedSeries::SelfDistilled => "self-distilled",
        }
    }

    pub fn kind(self) -> ChartKind {
        match self {
            ComparedSeries::TrainLoss | ComparedSeries::TestLoss => ChartKind::Loss,
            _ => ChartKind::Accuracy,
        }
    }
}

/// One chart with `which` of every run in `runs` (label, history), each in its own colour (the
/// run's place in `runs`) and named by its label; a run that never measured it has no line. The
/// lines are the runs' own chart series, so the comparison shows what each run's charts show.
pub fn overlay(runs: &[(&str, &RunHistory)], which: ComparedSeries) -> Chart {
    let series = runs
        .iter()
        .enumerate()
        .filter_map(|(index, (label, history))| {
            let line = history
                .charts(&[])
                .into_iter()
                .flat_map(|chart| chart.series)
                .find(|line| line.name == which.name())?;
            Some(ChartSeries {
                name: (*label).to_string(),
                colour: category_colour(index),
                ..line
            })
        })
        .collect();
    Chart {
        kind: which.kind(),
        series,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::EpisodeStats;

    #[test]
    fn few_shot_accuracies_are_drawn_with_their_confidence_bounds_and_training_episodes() {
        let evaluation = |step: u64, single: f64, ci: f64| EvalMetrics {
            step,
            single_acc: single,
            agg_acc: Some(single + 0.05),
            episodes: Some(EpisodeStats {
                episodes: 100,
                ways: 5,
                shots: 1,
                queries: 15,
                single_ci95: ci,
                agg_ci95: Some(ci / 2.0),
            }),
            ..Default::default()
        };
        let history = RunHistory {
            metrics: vec![evaluation(10, 0.5, 0.04), evaluation(20, 0.75, 0.02)],
            episode_accuracies: vec![(1.0, 0.25), (2.0, 0.5)],
            ..Default::default()
        };
        let charts = history.charts(&[]);
        let accuracy = &charts[1];
        let line = |name: &str| -> &ChartSeries {
            accuracy
                .series
                .iter()
                .find(|s| s.name == name)
                .unwrap_or_else(|| panic!("no {name} line"))
        };
        // Each interval is one band: its high values are the line, its low values the fill's floor.
        let single = line("single 95% CI");
        assert_eq!(single.low.as_deref(), Some(&[0.46, 0.73][..]));
        assert_eq!(single.ys, [0.54, 0.77]);
        assert_eq!(single.xs, [10.0, 20.0]);
        let aggregated = line("aggregated 95% CI");
        assert_eq!(aggregated.ys, [0.57, 0.81]);
        assert_eq!(aggregated.low.as_deref(), Some(&[0.53, 0.79][..]));
        assert!(line("single").low.is_none());
        let episodes = line("training episodes");
        assert_eq!(
            (episodes.xs.as_slice(), episodes.ys.as_slice()),
            (&[1.0, 2.0][..], &[0.25, 0.5][..])
        );
        assert!(episodes.smooth);
        // A standard run has no bounds.
        let standard = RunHistory {
            metrics: vec![EvalMetrics {
                single_acc: 0.5,
                ..Default::default()
            }],
            ..Default::default()
        };
        assert!(
            standard.charts(&[])[1]
                .series
                .iter()
                .all(|s| !s.name.contains("CI"))
        );
    }
}
