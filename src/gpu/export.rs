//! Headless export: a run folder's four views written as PNG files with the same renderers as the GUI.

use std::fs;
use std::path::{Path, PathBuf};

use super::annotate::{Annotator, FigureText, LegendEntry};
use super::curves::Axes;
use super::style::category_colour;
use super::{
    BorderMode, ConfusionInput, ConfusionRenderer, ConfusionView, CurvesInput, CurvesRenderer,
    CurvesView, GpuContext, GpuError, GridInput, GridLayout, InputGridRenderer, Margins,
    RenderTarget, Series, ViewStyle, read_back,
};
use crate::run::{self, Chart, ChartKind, ChartSeries, RunHistory};

/// Side the confusion pictures aim for; cells are whole pixels, so large matrices come out a bit bigger.
const CONFUSION_SIDE: u32 = 800;

/// Width of every chart figure, height of each loss and accuracy chart (title, legend and axis
/// labels included: about 400 − 100 pixels of plot).
const CHART_SIZE: (u32, u32) = (1000, 400);

/// Height of the learning-rate chart: context, not the subject, so a strip (as in the app), tall
/// enough for its text and about 100 pixels of plot.
const LEARNING_RATE_HEIGHT: u32 = 200;

/// Name of the x axis of the run and mode charts.
const STEP_AXIS: &str = "step";

/// Source images are scaled by a whole factor to about this many pixels.
const TILE_SIDE: usize = 64;

/// Smoothing of the loss chart: per-step losses are noisy.
const LOSS_SMOOTHING: f32 = 0.9;

fn save_png(path: &Path, width: u32, height: u32, pixels: Vec<u8>) -> Result<(), GpuError> {
    let image = image::RgbaImage::from_raw(width, height, pixels).ok_or_else(|| {
        GpuError::InvalidInput(format!("{width}x{height} picture of the wrong size"))
    })?;
    image.save(path).map_err(|source| GpuError::Image {
        path: path.to_path_buf(),
        source,
    })
}

/// Renders `inputs.png`, `confusion.png` (the joint matrix with its transformation blocks, or the class
/// matrix for runs without joint labels), `confusion_classes.png` and `curves.png` (the app's charts,
/// `RunHistory::charts`, top to bottom: loss, accuracies, learning rate, each with its title, legend
/// and labelled axes; 1000×1000 pixels) into `out_dir` from the run
/// folder's `snapshot.json`, `metrics.jsonl` and `steps.csv`. A log that does not exist yet leaves
/// its chart empty and a torn final line is skipped, both with a warning; a corrupt file is an error.
pub fn render_run(
    run_dir: &Path,
    out_dir: &Path,
    ctx: &GpuContext,
) -> Result<Vec<PathBuf>, GpuError> {
    let snapshot = run::read_snapshot(run_dir)?;
    let loaded = RunHistory::read_logs(run_dir, u64::MAX);
    if let Some(error) = loaded.errors.into_iter().next() {
        return Err(error.into());
    }
    for torn in &loaded.torn_tails {
        log::warn!("{torn}");
    }
    let charts = loaded.history.charts(&snapshot.transform_names);
    fs::create_dir_all(out_dir).map_err(|source| GpuError::Io {
        path: out_dir.to_path_buf(),
        source,
    })?;
    let style = ViewStyle::dark();
    let mut written = Vec::new();
    let mut write =
        |name: &str, width: u32, height: u32, pixels: Vec<u8>| -> Result<(), GpuError> {
            let path = out_dir.join(name);
            save_png(&path, width, height, pixels)?;
            log::info!("wrote {}", path.display());
            written.push(path);
            Ok(())
        };

    let grid = &snapshot.samples;
    if grid.samples == 0 {
        log::warn!("the snapshot holds no sample images; inputs.png stays empty");
    }
    let scale = (TILE_SIDE / grid.height.max(grid.width).max(1)).max(1) as u32;
    let input = GridInput::from_sample_grid(
        grid,
        BorderMode::Correctness,
        GridLayout::scaled(grid.width, grid.height, scale),
        style,
    );
    let (width, height) = input.size();
    let target = RenderTarget::new(&ctx.device, width, height)?;
    let mut renderer = InputGridRenderer::new(&ctx.device);
    ctx.submit(|encoder| renderer.render(ctx, encoder, &input, &target))?;
    write("inputs.png", width, height, read_back(ctx, &target)?)?;

    let n = snapshot.num_classes();
    let m = snapshot.num_transforms().max(1);
    let joint = (!snapshot.joint_confusion.is_empty()).then(|| ConfusionInput {
        block: m,
        ..ConfusionInput::classes(n * m, &snapshot.joint_confusion)
    });
    let classes = if snapshot.class_confusion.is_empty() {
        joint.map(|j| ConfusionInput {
            view: ConfusionView::ClassMarginal,
            ..j
        })
    } else {
        Some(ConfusionInput::classes(n, &snapshot.class_confusion))
    };
    let full = joint
        .or(classes)
        .ok_or_else(|| GpuError::InvalidInput("the snapshot holds no confusion matrix".into()))?;
    let mut confusion = ConfusionRenderer::new(&ctx.device);
    for (name, input) in [
        ("confusion.png", Some(full)),
        ("confusion_classes.png", classes),
    ] {
        let input = input.unwrap_or(full);
        let (side, _) = input.matrix()?;
        let side = u32::try_from(side).unwrap_or(u32::MAX);
        let size = side.saturating_mul(CONFUSION_SIDE.div_ceil(side.max(1)));
        let target = RenderTarget::new(&ctx.device, size, size)?;
        ctx.submit(|encoder| confusion.render(ctx, encoder, &input, &target))?;
        write(name, size, size, read_back(ctx, &target)?)?;
    }

    let (width, height, pixels) = render_run_charts(ctx, &charts, style)?;
    write("curves.png", width, height, pixels)?;
    Ok(written)
}

/// The charts of a run drawn by the curve renderer as the app draws them (the loss smoothed on a
/// log axis, accuracies on 0 to 1, every chart over the whole run's steps), each with its title,
/// legend and labelled axes, stacked top to bottom: width, height and RGBA rows.
fn render_run_charts(
    ctx: &GpuContext,
    charts: &[Chart],
    style: ViewStyle,
) -> Result<(u32, u32, Vec<u8>), GpuError> {
    let last_step = charts
        .iter()
        .flat_map(|chart| chart.series.iter().filter_map(|s| s.xs.last()))
        .fold(1.0f64, |last, &x| last.max(f64::from(x)));
    let stack: Vec<StackedChart<'_>> = charts
        .iter()
        .map(|chart| StackedChart {
            height: match chart.kind {
                ChartKind::LearningRate => LEARNING_RATE_HEIGHT,
                ChartKind::Loss | ChartKind::Accuracy => CHART_SIZE.1,
            },
            input: CurvesInput {
                series: chart.series.iter().map(ChartSeries::as_series).collect(),
                smoothing: LOSS_SMOOTHING,
                raw_shadow: chart.kind == ChartKind::Loss,
                view: CurvesView {
                    x_range: Some((0.0, last_step)),
                    y_range: (chart.kind == ChartKind::Accuracy).then_some((0.0, 1.0)),
                    log_y: chart.kind.log_y_by_default(),
                    style,
                    ..CurvesView::default()
                },
            },
            text: FigureText {
                title: chart.kind.title().into(),
                x_name: STEP_AXIS.into(),
                legend: chart
                    .series
                    .iter()
                    .filter_map(|line| legend_entry(&line.name, line.colour, &line.ys))
                    .collect(),
            },
        })
        .collect();
    let height = stack.iter().map(|chart| chart.height).sum();
    Ok((CHART_SIZE.0, height, render_stack(ctx, &stack)?))
}

/// A legend entry for a series that draws something: a line with no finite point is not drawn, so
/// naming it would promise a line the reader cannot find.
fn legend_entry(name: &str, colour: [u8; 4], ys: &[f32]) -> Option<LegendEntry> {
    ys.iter().any(|y| y.is_finite()).then(|| LegendEntry {
        name: name.into(),
        colour,
    })
}

/// One chart of a figure: its RGBA rows, where its plot and ticks landed, and the view it was
/// drawn with (the input's view with the margins the text needs).
#[derive(Clone, Debug)]
pub struct FigureChart {
    pub pixels: Vec<u8>,
    pub axes: Axes,
    pub view: CurvesView,
}

/// Margins that fit `text` around `input`'s plot in a `width`×`height` chart: the widest y tick
/// label sets the left one, the legend's rows the top one. Uploads `input` to find its y ticks.
pub fn fit_margins(
    ctx: &GpuContext,
    curves: &mut CurvesRenderer,
    annotator: &Annotator,
    input: &CurvesInput<'_>,
    text: &FigureText,
    (width, height): (u32, u32),
) -> Result<Margins, GpuError> {
    curves.upload(ctx, &input.series, input.smoothing, input.raw_shadow)?;
    // The y ticks follow the plot's height alone, which the top and bottom margins fix whatever
    // the left one: resolve once with those for the labels, then size the left margin to them.
    let view = CurvesView {
        margins: annotator.margins(text, width, &[]),
        ..input.view
    };
    let labels = curves.axes(&view, width, height).y_tick_labels();
    Ok(annotator.margins(text, width, &labels))
}

/// Draws `input` into a `width`×`height` chart with `margins` (from [`fit_margins`], or wider),
/// reads it back and writes `text` around the plot; the plot itself stays exactly as the renderer
/// drew it.
pub fn render_chart(
    ctx: &GpuContext,
    curves: &mut CurvesRenderer,
    annotator: &Annotator,
    (input, text): (&CurvesInput<'_>, &FigureText),
    (width, height): (u32, u32),
    margins: Margins,
) -> Result<FigureChart, GpuError> {
    curves.upload(ctx, &input.series, input.smoothing, input.raw_shadow)?;
    let view = CurvesView {
        margins,
        ..input.view
    };
    let target = RenderTarget::new(&ctx.device, width, height)?;
    let mut axes = None;
    ctx.submit(|encoder| {
        axes = Some(curves.draw(ctx, encoder, &view, &target)?);
        Ok(())
    })?;
    let axes = axes.unwrap_or_else(|| curves.axes(&view, width, height));
    let mut pixels = read_back(ctx, &target)?;
    annotator.annotate(&mut pixels, (width, height), &axes, text, &view.style)?;
    Ok(FigureChart { pixels, axes, view })
}

/// One chart of a stacked figure: what it plots, what its text says, and its height.
struct StackedChart<'a> {
    input: CurvesInput<'a>,
    text: FigureText,
    height: u32,
}

/// Charts `CHART_SIZE.0` wide drawn with their text and stacked top to bottom (RGBA rows), all
/// with the widest left margin any of them needs, so that their plots (and x axes, which the
/// stacked charts share) line up.
fn render_stack(ctx: &GpuContext, charts: &[StackedChart<'_>]) -> Result<Vec<u8>, GpuError> {
    let width = CHART_SIZE.0;
    let mut curves = CurvesRenderer::new(&ctx.device);
    let annotator = Annotator::new()?;
    let mut fitted = Vec::with_capacity(charts.len());
    for chart in charts {
        let size = (width, chart.height);
        fitted.push(fit_margins(
            ctx,
            &mut curves,
            &annotator,
            &chart.input,
            &chart.text,
            size,
        )?);
    }
    let left = fitted.iter().map(|m| m.left).max().unwrap_or(0);
    let mut stacked = Vec::new();
    for (chart, margins) in charts.iter().zip(fitted) {
        let figure = render_chart(
            ctx,
            &mut curves,
            &annotator,
            (&chart.input, &chart.text),
            (width, chart.height),
            Margins { left, ..margins },
        )?;
        stacked.extend(figure.pixels);
    }
    Ok(stacked)
}

/// One line of the per-class accuracy chart: a mode's accuracy of each class, classes in the order
/// the chart shows them (most to fewest training images).
#[derive(Clone, Debug, PartialEq)]
pub struct PerClassLine {
    pub name: String,
    pub values: Vec<f32>,
}

/// `per-class-*.png`: per-class test accuracy (y from 0 to 1) against the class rank by training
/// count (x, 0 the class with the most images), one line per mode in the categorical colours, in
/// order (blue, orange, red, teal, green, …), with a title, labelled axes and a legend of `lines`'
/// names in that order.
pub fn render_per_class(
    lines: &[PerClassLine],
    path: &Path,
    ctx: &GpuContext,
) -> Result<(), GpuError> {
    let classes = lines.iter().map(|l| l.values.len()).max().unwrap_or(0);
    let chart = CurvesInput {
        series: lines
            .iter()
            .enumerate()
            .map(|(i, line)| Series {
                ys: &line.values,
                xs: None,
                colour: category_colour(i),
                smooth: false,
                low: None,
            })
            .collect(),
        smoothing: 0.0,
        raw_shadow: false,
        view: CurvesView {
            x_range: Some((0.0, classes.saturating_sub(1).max(1) as f64)),
            y_range: Some((0.0, 1.0)),
            line_width: 2.5,
            style: ViewStyle::dark(),
            ..CurvesView::default()
        },
    };
    let text = FigureText {
        title: "per-class test accuracy".into(),
        x_name: "class rank by training images (0: the most)".into(),
        legend: lines
            .iter()
            .enumerate()
            .filter_map(|(i, line)| legend_entry(&line.name, category_colour(i), &line.values))
            .collect(),
    };
    let pixels = render_stack(
        ctx,
        &[StackedChart {
            input: chart,
            text,
            height: CHART_SIZE.1,
        }],
    )?;
    save_figure(path, 1, pixels)
}

/// `charts` stacked charts of `CHART_SIZE` saved at `path`, its folder made if needed.
fn save_figure(path: &Path, charts: u32, pixels: Vec<u8>) -> Result<(), GpuError> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(|source| GpuError::Io {
            path: parent.to_path_buf(),
            source,
        })?;
    }
    let (width, height) = CHART_SIZE;
    save_png(path, width, height * charts, pixels)
}

/// One mode of an experiment in the overlaid figure: its training loss at each step and one test
/// accuracy at each evaluation (each the mean over the mode's seeds).
#[derive(Clone, Debug, PartialEq)]
pub struct ModeCurves {
    pub name: String,
    pub steps: Vec<f32>,
    pub loss: Vec<f32>,
    pub eval_steps: Vec<f32>,
    pub accuracy: Vec<f32>,
}

/// `curves-modes*.png`: the modes overlaid, one categorical colour each in the order of `modes`
/// (blue, orange, red, teal, green, …): the smoothed training loss (log y) above, the test accuracy
/// below (y fitted to the data, so gaps of a point or two stay visible), x the step in both; each
/// chart titled, with labelled axes and a legend of the modes' names.
pub fn render_mode_curves(
    modes: &[ModeCurves],
    path: &Path,
    ctx: &GpuContext,
) -> Result<(), GpuError> {
    let last = modes
        .iter()
        .flat_map(|m| m.steps.last().into_iter().chain(m.eval_steps.last()))
        .fold(1.0f32, |a, &b| a.max(b));
    let view = CurvesView {
        x_range: Some((0.0, f64::from(last))),
        line_width: 2.0,
        style: ViewStyle::dark(),
        ..CurvesView::default()
    };
    let text = |title: &str, values: fn(&ModeCurves) -> &[f32]| FigureText {
        title: title.into(),
        x_name: STEP_AXIS.into(),
        legend: modes
            .iter()
            .enumerate()
            .filter_map(|(i, m)| legend_entry(&m.name, category_colour(i), values(m)))
            .collect(),
    };
    // One line per mode, in its categorical colour: (xs, ys) picked from each mode.
    type Points = fn(&ModeCurves) -> (&[f32], &[f32]);
    let lines = |points: Points, smooth: bool| -> Vec<Series<'_>> {
        modes
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let (xs, ys) = points(m);
                Series {
                    ys,
                    xs: Some(xs),
                    colour: category_colour(i),
                    smooth,
                    low: None,
                }
            })
            .collect()
    };
    let charts = [
        (
            CurvesInput {
                series: lines(|m| (&m.steps, &m.loss), true),
                smoothing: LOSS_SMOOTHING,
                raw_shadow: false,
                view: CurvesView {
                    log_y: true,
                    ..view
                },
            },
            text("train loss", |m| &m.loss),
        ),
        (
            CurvesInput {
                series: lines(|m| (&m.eval_steps, &m.accuracy), false),
                smoothing: 0.0,
                raw_shadow: false,
                view,
            },
            text(ChartKind::Accuracy.title(), |m| &m.accuracy),
        ),
    ];
    let charts = charts.map(|(input, text)| StackedChart {
        input,
        text,
        height: CHART_SIZE.1,
    });
    let pixels = render_stack(ctx, &charts)?;
    save_figure(path, 2, pixels)
}
