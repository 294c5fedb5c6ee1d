//! The read-out under the pointer on a chart: the step (and epoch) at the pointer's column, and
//! the value of each series at its point nearest to that step, with a guide line drawn through
//! the plot. In the comparison each series is a run on its own step map, so in epochs or wall
//! time each line also names its run's step.

use eframe::egui;

use crate::gpu::curves::Axes;

use super::x_axis::{XAxis, XUnit, duration};
use crate::number_format;
use crate::run::Chart;

/// The data x at a horizontal position `offset` points into the chart image, if inside the plot.
pub fn x_at(axes: &Axes, offset: f32, pixels_per_point: f32) -> Option<f64> {
    let [left, _, width, _] = axes.plot;
    let pixel = f64::from(offset * pixels_per_point) - f64::from(left);
    if width == 0 || !(0.0..=f64::from(width)).contains(&pixel) {
        return None;
    }
    let (lo, hi) = axes.x_range;
    Some(lo + (hi - lo) * pixel / f64::from(width))
}

/// How a read-out turns data x into steps.
#[derive(Clone, Copy)]
pub enum ReadoutAxes<'a> {
    /// One run's charts: every series on the run's axis.
    Run(&'a XAxis<'a>),
    /// Compared runs: x counts `unit`, and series `name` maps back to steps on `axis_of(name)`.
    PerRun {
        unit: XUnit,
        axis_of: &'a dyn Fn(&str) -> Option<XAxis<'a>>,
    },
}

impl ReadoutAxes<'_> {
    fn header(&self, x: f64) -> String {
        match self {
            Self::Run(axis) => axis.describe(x),
            Self::PerRun { unit, .. } => match unit {
                XUnit::Steps => format!("step {:.0}", x.round().max(0.0)),
                XUnit::Epochs => format!("epoch {x:.2}"),
                XUnit::WallTime => duration(x),
            },
        }
    }

    /// The note after a series' value: the step it shows, when that is not the header's.
    fn note(&self, name: &str, sx: f32, header_x: f32) -> Option<String> {
        let step = match self {
            Self::Run(axis) => (sx != header_x).then(|| axis.step_of(f64::from(sx)))?,
            // Runs differ in steps per epoch and speed: in those units each names its own step.
            Self::PerRun { unit, axis_of } => {
                let axis = axis_of(name)?;
                (sx != header_x || *unit != XUnit::Steps).then(|| axis.step_of(f64::from(sx)))?
            }
        };
        Some(format!(" (step {step:.0})"))
    }
}

/// The read-out at data x: a header naming the x of the nearest point of any series (step and
/// epoch), then one "name value" line per series with a finite point, in chart order.
pub fn readout(chart: &Chart, x: f64, axes: ReadoutAxes<'_>) -> Option<String> {
    let nearest: Vec<(&str, f32, String)> = chart
        .series
        .iter()
        .filter_map(|series| {
            let index = nearest_index(&series.xs, x)?;
            let y = *series.ys.get(index)?;
            let value = |v: f32| number_format::significant(f64::from(v), 4);
            // A band reads as its interval, low to high.
            let text = match &series.low {
                Some(low) => format!("{}–{}", value(*low.get(index)?), value(y)),
                None => value(y),
            };
            y.is_finite()
                .then(|| (series.name.as_str(), series.xs[index], text))
        })
        .collect();
    let step = nearest.iter().map(|(_, sx, _)| *sx).min_by(|a, b| {
        (f64::from(*a) - x)
            .abs()
            .total_cmp(&(f64::from(*b) - x).abs())
    })?;
    let mut text = axes.header(f64::from(step));
    for (name, sx, value) in nearest {
        text.push_str(&format!("\n{name} {value}"));
        if let Some(note) = axes.note(name, sx, step) {
            text.push_str(&note);
        }
    }
    Some(text)
}

/// The index of the point of sorted `xs` nearest to `x`.
fn nearest_index(xs: &[f32], x: f64) -> Option<usize> {
    let after = xs.partition_point(|&v| f64::from(v) < x);
    [after.checked_sub(1), (after < xs.len()).then_some(after)]
        .into_iter()
        .flatten()
        .min_by(|&a, &b| {
            (f64::from(xs[a]) - x)
                .abs()
                .total_cmp(&(f64::from(xs[b]) - x).abs())
        })
}

/// Show the read-out as a tooltip of the chart `response` and draw the guide line.
pub fn show(
    ui: &egui::Ui,
    response: egui::Response,
    axes: &Axes,
    chart: &Chart,
    readout_axes: ReadoutAxes<'_>,
) {
    let Some(pos) = response.hover_pos() else {
        return;
    };
    let ppp = ui.ctx().pixels_per_point();
    let Some(x) = x_at(axes, pos.x - response.rect.left(), ppp) else {
        return;
    };
    let Some(text) = readout(chart, x, readout_axes) else {
        return;
    };
    let top = response.rect.top() + axes.plot[1] as f32 / ppp;
    let bottom = top + axes.plot[3] as f32 / ppp;
    ui.painter().line_segment(
        [egui::pos2(pos.x, top), egui::pos2(pos.x, bottom)],
        egui::Stroke::new(1.0, ui.visuals().weak_text_color()),
    );
    response.on_hover_text_at_pointer(text);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::{ChartKind, ChartSeries};

    fn chart() -> Chart {
        Chart {
            kind: ChartKind::Loss,
            series: vec![
                ChartSeries {
                    name: "train loss".into(),
                    xs: vec![1.0, 2.0, 3.0, 4.0],
                    ys: vec![2.5, 2.0, 1.5, 1.25],
                    colour: [0; 4],
                    smooth: true,
                    low: None,
                },
                ChartSeries {
                    name: "test loss".into(),
                    xs: vec![2.0, 4.0],
                    ys: vec![2.25, f32::NAN],
                    colour: [0; 4],
                    smooth: false,
                    low: None,
                },
            ],
        }
    }

    #[test]
    fn the_readout_names_the_step_epoch_and_each_series_value() {
        assert_eq!(
            readout(&chart(), 2.2, ReadoutAxes::Run(&steps(2))).as_deref(),
            Some("step 2 (epoch 1)\ntrain loss 2\ntest loss 2.25")
        );
        // At step 4 the test loss is not finite (a diverged evaluation): its line is left out,
        // and a series whose nearest point is elsewhere says which step it shows.
        assert_eq!(
            readout(&chart(), 3.9, ReadoutAxes::Run(&XAxis::default())).as_deref(),
            Some("step 4\ntrain loss 1.25")
        );
        assert_eq!(
            readout(&chart(), 2.9, ReadoutAxes::Run(&steps(2))).as_deref(),
            Some("step 3 (epoch 2)\ntrain loss 1.5\ntest loss 2.25 (step 2)")
        );
        assert_eq!(
            readout(
                &Chart {
                    kind: ChartKind::Loss,
                    series: vec![]
                },
                1.0,
                ReadoutAxes::Run(&XAxis::default())
            ),
            None
        );
    }

    #[test]
    fn a_band_reads_as_its_interval() {
        let band = Chart {
            kind: ChartKind::Accuracy,
            series: vec![ChartSeries {
                name: "single 95% CI".into(),
                xs: vec![10.0, 20.0],
                ys: vec![0.54, 0.77],
                colour: [0; 4],
                smooth: false,
                low: Some(vec![0.46, 0.73]),
            }],
        };
        assert_eq!(
            readout(&band, 19.0, ReadoutAxes::Run(&XAxis::default())).as_deref(),
            Some("step 20\nsingle 95% CI 0.73–0.77")
        );
    }

    fn steps(per_epoch: u64) -> XAxis<'static> {
        XAxis {
            unit: XUnit::Steps,
            steps_per_epoch: Some(per_epoch),
            seconds: &[],
        }
    }

    #[test]
    fn in_epochs_the_header_names_the_fractional_epoch_and_its_step() {
        let axis = XAxis {
            unit: XUnit::Epochs,
            steps_per_epoch: Some(4),
            seconds: &[],
        };
        // The charts' x were scaled to epochs: step 3 of 4 per epoch is x = 0.75.
        let mut chart = chart();
        for series in &mut chart.series {
            series.xs.iter_mut().for_each(|x| *x /= 4.0);
        }
        assert_eq!(
            readout(&chart, 0.7, ReadoutAxes::Run(&axis)).as_deref(),
            Some("epoch 0.75 (step 3)\ntrain loss 1.5\ntest loss 2.25 (step 2)")
        );
    }

    #[test]
    fn compared_runs_in_wall_time_each_name_their_own_step() {
        // Two runs, one twice as fast: 1 s per step and 0.5 s per step. Their losses at 2 s are
        // the first's step 2 and the second's step 4.
        const FAST: [(f32, f64); 4] = [(1.0, 0.5), (2.0, 1.0), (3.0, 1.5), (4.0, 2.0)];
        const SLOW: [(f32, f64); 4] = [(1.0, 1.0), (2.0, 2.0), (3.0, 3.0), (4.0, 4.0)];
        let (fast, slow) = (&FAST, &SLOW);
        let axis = |seconds: &'static [(f32, f64)]| XAxis {
            unit: XUnit::WallTime,
            steps_per_epoch: Some(2),
            seconds,
        };
        let axis_of = move |name: &str| match name {
            "slow" => Some(axis(slow)),
            "fast" => Some(axis(fast)),
            _ => None,
        };
        let line = |name: &str, seconds: &[(f32, f64)]| ChartSeries {
            name: name.into(),
            xs: seconds.iter().map(|&(_, t)| t as f32).collect(),
            ys: vec![2.0, 1.5, 1.25, 1.0],
            colour: [0; 4],
            smooth: true,
            low: None,
        };
        let chart = Chart {
            kind: ChartKind::Loss,
            series: vec![line("slow", slow), line("fast", fast)],
        };
        let axes = ReadoutAxes::PerRun {
            unit: XUnit::WallTime,
            axis_of: &axis_of,
        };
        assert_eq!(
            readout(&chart, 2.1, axes).as_deref(),
            Some("2.0 s\nslow 1.5 (step 2)\nfast 1 (step 4)")
        );
        // In steps every run shares the axis: only a point off the header's step is named.
        let by_steps = |_: &str| Some(XAxis::default());
        let axes = ReadoutAxes::PerRun {
            unit: XUnit::Steps,
            axis_of: &by_steps,
        };
        let mut by_step = chart.clone();
        by_step.series[1].xs = vec![2.0, 4.0, 6.0, 8.0];
        by_step.series[0].xs = vec![1.0, 2.0, 3.0, 4.0];
        assert_eq!(
            readout(&by_step, 3.1, axes).as_deref(),
            Some("step 3\nslow 1.25\nfast 1.5 (step 4)")
        );
    }

    #[test]
    fn pointer_columns_map_to_data_x_inside_the_plot_only() {
        let axes = Axes {
            plot: [40, 10, 200, 100],
            x_range: (0.0, 1000.0),
            y_range: (0.0, 1.0),
            log_y: false,
            x_ticks: vec![],
            y_ticks: vec![],
        };
        // 2 pixels per point: 70 points = pixel 140 = 100 pixels into the plot = half way.
        assert_eq!(x_at(&axes, 70.0, 2.0), Some(500.0));
        assert_eq!(x_at(&axes, 10.0, 2.0), None);
        assert_eq!(x_at(&axes, 130.0, 2.0), None);
    }
}
