//! Zoom and pan of the charts' shared x axis: the wheel zooms around the pointer, a drag pans,
//! a double click shows the whole run again. Both charts follow one range, so a step lines up
//! across them.

use eframe::egui;

use crate::gpu::curves::Axes;

/// The narrowest window, in steps: closer than this the curves are single segments.
pub const MIN_STEPS: f64 = 4.0;

/// `range` scaled by `factor` (< 1 zooms in) around data x `at`, kept inside `full` and no
/// narrower than `min_width`; `None` once it covers all of `full`.
pub fn zoom(
    range: (f64, f64),
    at: f64,
    factor: f64,
    full: (f64, f64),
    min_width: f64,
) -> Option<(f64, f64)> {
    let width = ((range.1 - range.0) * factor).max(min_width.min(full.1 - full.0));
    let share = if range.1 > range.0 {
        ((at - range.0) / (range.1 - range.0)).clamp(0.0, 1.0)
    } else {
        0.5
    };
    fit((at - share * width, at - share * width + width), full)
}

/// `range` moved by `by` data units, kept inside `full`.
pub fn pan(range: (f64, f64), by: f64, full: (f64, f64)) -> Option<(f64, f64)> {
    fit((range.0 + by, range.1 + by), full)
}

/// Slide `range` back inside `full` without changing its width; `None` when it is as wide.
fn fit(range: (f64, f64), full: (f64, f64)) -> Option<(f64, f64)> {
    let width = range.1 - range.0;
    if width >= full.1 - full.0 {
        return None;
    }
    let lo = range.0.clamp(full.0, full.1 - width);
    Some((lo, lo + width))
}

/// Apply the pointer's wheel, drag and double click on a chart's `response` to `view` (the shown
/// range, `None` for all of `full`); `per_step` is the data x of one step.
pub fn interact(
    ui: &egui::Ui,
    response: &egui::Response,
    axes: &Axes,
    (full, per_step): ((f64, f64), f64),
    view: &mut Option<(f64, f64)>,
) {
    if response.double_clicked() {
        *view = None;
        return;
    }
    let range = view.unwrap_or(full);
    let ppp = ui.ctx().pixels_per_point();
    let plot_points = axes.plot[2] as f32 / ppp;
    if plot_points <= 0.0 {
        return;
    }
    let per_point = (range.1 - range.0) / f64::from(plot_points);
    if response.dragged() {
        let dx = f64::from(response.drag_delta().x);
        if dx != 0.0 {
            *view = pan(range, -dx * per_point, full);
        }
    }
    if let Some(pos) = response.hover_pos() {
        let scroll = ui.input(|i| i.smooth_scroll_delta.y);
        if scroll != 0.0 {
            let left = response.rect.left() + axes.plot[0] as f32 / ppp;
            let at = range.0 + f64::from(pos.x - left) * per_point;
            let factor = (-f64::from(scroll) * 0.004).exp();
            *view = zoom(range, at, factor, full, MIN_STEPS * per_step);
            // The wheel zoomed the chart: it must not also scroll the panel.
            ui.ctx().input_mut(|i| i.smooth_scroll_delta.y = 0.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zooming_keeps_the_point_under_the_pointer_in_place() {
        // Halving 0..1000 around 250 (a quarter in) gives 125..625: 250 is still a quarter in.
        assert_eq!(
            zoom((0.0, 1000.0), 250.0, 0.5, (0.0, 1000.0), MIN_STEPS),
            Some((125.0, 625.0))
        );
        // Zooming out past the whole run shows the whole run.
        assert_eq!(
            zoom((100.0, 600.0), 300.0, 3.0, (0.0, 1000.0), MIN_STEPS),
            None
        );
        // Never narrower than a few steps.
        assert_eq!(
            zoom((10.0, 20.0), 15.0, 0.01, (0.0, 1000.0), MIN_STEPS),
            Some((13.0, 17.0))
        );
    }

    #[test]
    fn panning_stops_at_the_ends_of_the_run() {
        assert_eq!(
            pan((100.0, 300.0), 50.0, (0.0, 1000.0)),
            Some((150.0, 350.0))
        );
        assert_eq!(
            pan((100.0, 300.0), -500.0, (0.0, 1000.0)),
            Some((0.0, 200.0))
        );
        assert_eq!(
            pan((100.0, 300.0), 5000.0, (0.0, 1000.0)),
            Some((800.0, 1000.0))
        );
    }
}
