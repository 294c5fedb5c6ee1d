//! The read-out under the pointer on a chart: the step (and epoch) at the pointer's column, and
//! the value of each series at its point nearest to that step, with a guide line drawn through
//! the plot.

use eframe::egui;

use crate::gpu::curves::Axes;

use super::x_axis::XAxis;
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

/// The read-out at data x: a header naming the x of the nearest point of any series (step and
/// epoch), then one "name value" line per series with a finite point, in chart order.
pub fn readout(chart: &Chart, x: f64, axis: &XAxis) -> Option<String> {
    let nearest: Vec<(&str, f32, f32)> = chart
        .series
        .iter()
        .filter_map(|series| {
            let index = nearest_index(&series.xs, x)?;
            let y = *series.ys.get(index)?;
            y.is_finite()
                .then(|| (series.name.as_str(), series.xs[index], y))
        })
        .collect();
    let step = nearest.iter().map(|&(_, sx, _)| sx).min_by(|a, b| {
        (f64::from(*a) - x)
            .abs()
            .total_cmp(&(f64::from(*b) - x).abs())
    })?;
    let mut text = axis.describe(f64::from(step));
    for (name, sx, y) in nearest {
        text.push_str(&format!(
            "\n{name} {}",
            number_format::significant(f64::from(y), 4)
        ));
        if sx != step {
            text.push_str(&format!(" (step {:.0})", axis.step_of(f64::from(sx))));
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
pub fn show(ui: &egui::Ui, response: egui::Response, axes: &Axes, chart: &Chart, axis: &XAxis) {
    let Some(pos) = response.hover_pos() else {
        return;
    };
    let ppp = ui.ctx().pixels_per_point();
    let Some(x) = x_at(axes, pos.x - response.rect.left(), ppp) else {
        return;
    };
    let Some(text) = readout(chart, x, axis) else {
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
    use crate::gui::x_axis::XUnit;
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
                },
                ChartSeries {
                    name: "test loss".into(),
                    xs: vec![2.0, 4.0],
                    ys: vec![2.25, f32::NAN],
                    colour: [0; 4],
                    smooth: false,
                },
            ],
        }
    }

    #[test]
    fn the_readout_names_the_step_epoch_and_each_series_value() {
        assert_eq!(
            readout(&chart(), 2.2, &steps(2)).as_deref(),
            Some("step 2 (epoch 1)\ntrain loss 2\ntest loss 2.25")
        );
        // At step 4 the test loss is not finite (a diverged evaluation): its line is left out,
        // and a series whose nearest point is elsewhere says which step it shows.
        assert_eq!(
            readout(&chart(), 3.9, &XAxis::default()).as_deref(),
            Some("step 4\ntrain loss 1.25")
        );
        assert_eq!(
            readout(&chart(), 2.9, &steps(2)).as_deref(),
            Some("step 3 (epoch 2)\ntrain loss 1.5\ntest loss 2.25 (step 2)")
        );
        assert_eq!(
            readout(
                &Chart {
                    kind: ChartKind::Loss,
                    series: vec![]
                },
                1.0,
                &XAxis::default()
            ),
            None
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
            readout(&chart, 0.7, &axis).as_deref(),
            Some("epoch 0.75 (step 3)\ntrain loss 1.5\ntest loss 2.25 (step 2)")
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
